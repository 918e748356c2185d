"""Likelihood bounds in bits per dimension (Q3(a)), checked against references and against toy problems whose answer is
known; the verdicts every Answer reads off two intervals, and the Answers themselves."""
import math

import pytest
import torch
from oracles import GaussianOracle, PointOracle

LEVELS = torch.arange(256, dtype=torch.float64) / 127.5 - 1  # the 256 grey levels of 8-bit data on [-1, 1]


@pytest.mark.parametrize("mean,log_scale", [(0.3, -2.0), (-0.99, -5.0), (0.0, 0.5), (1.4, -1.0)])
def test_discretized_gaussian_probabilities_over_the_256_levels_sum_to_one(nb, mean, log_scale):
    logp = nb.discretized_gaussian_log_likelihood(LEVELS, torch.full_like(LEVELS, mean), torch.full_like(LEVELS, log_scale))
    assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-6)
    assert (logp <= 0).all()
    # an interior level holds the Gaussian's mass over its bin of width 2/255: the level nearest the mean
    k = min(max(round((mean + 1) * 127.5), 1), 254)
    normal = torch.distributions.Normal(torch.tensor(mean, dtype=torch.float64), math.exp(log_scale))
    mass = normal.cdf(LEVELS[k] + 1 / 255) - normal.cdf(LEVELS[k] - 1 / 255)
    assert logp[k].exp().item() == pytest.approx(mass.item(), rel=1e-6, abs=1e-12)


def test_normal_kl_matches_torch_distributions(nb):
    torch.manual_seed(0)
    m1, m2, lv1, lv2 = torch.randn(4, 50).unbind(0)
    ours = nb.normal_kl(m1, lv1, m2, lv2)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(m1, (0.5 * lv1).exp()), torch.distributions.Normal(m2, (0.5 * lv2).exp()))
    assert torch.allclose(ours, ref, atol=1e-5)


def log_snr_schedule(nb, T, hi=9.0, lo=-9.0):
    """T steps evenly spaced in log-SNR over a fixed range: more steps, finer steps (the rescaled linear schedule keeps
    its first steps' SNR ratio as T grows, so its discretisation gap does not vanish)."""
    ab = torch.sigmoid(torch.linspace(hi, lo, T, dtype=torch.float64))
    return {"name": "log-SNR", "T": T, "betas": 1 - ab / torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]]), "alpha_bar": ab}


def test_ddpm_bound_with_an_exact_denoiser_is_above_the_true_nll_and_approaches_it(nb):
    """Gaussian data, whose negative log-likelihood is known: 0.5 log(2 pi s^2) + 1/2 nats per dimension. The bound
    of the exact denoiser (continuous Gaussian decoder) is at least that, and its gap shrinks towards 0 as T grows."""
    s, dims = 0.5, 4
    true_nll = 0.5 * math.log(2 * math.pi * s * s) + 0.5
    torch.manual_seed(0)
    x0 = torch.randn(20000, dims) * s
    gaps = {}
    for T in (50, 200, 1000):
        schedule = log_snr_schedule(nb, T)
        terms = nb.Diffusion(schedule, clip=None).bound_terms(GaussianOracle(schedule["alpha_bar"], s), x0,
                                                              torch.Generator().manual_seed(0), decoder="gaussian")
        assert terms["steps"].shape == (len(x0), T - 1) and (terms["steps"] >= 0).all() and (terms["prior"] >= 0).all()
        per_dim = (terms["prior"] + terms["steps"].sum(1) + terms["decoder"]) / dims
        se = per_dim.std().item() / math.sqrt(len(per_dim))
        gaps[T] = per_dim.mean().item() - true_nll
        assert gaps[T] > -3 * se, (T, gaps[T])  # a bound: never below the truth beyond Monte Carlo noise
    assert gaps[1000] < gaps[200] < gaps[50] and gaps[1000] < 0.06, gaps


def test_ddpm_bound_of_one_data_point_with_its_exact_denoiser(nb):
    """A data set of one 8-bit image: its true NLL is 0. With the exact denoiser every L_{t-1} is 0 and L_T tiny; what
    remains is L_0, the mass of each pixel's own bin under the decoder N(x_0, beta_1), which shrinks towards 0 as T
    grows (beta_1 = 0.1 / T in the rescaled linear schedule). A wrong denoiser pays for every step."""
    point = (torch.randint(0, 256, (1, 1, 28, 28)).double() / 127.5 - 1).float()

    decoder_bits = {}
    for T in (100, 1000):
        schedule = nb.make_schedule("linear", T)
        exact = nb.Diffusion(schedule).bound_terms(PointOracle(schedule["alpha_bar"], point), point.expand(3, -1, -1, -1),
                                                   torch.Generator().manual_seed(0))
        assert exact["steps"].abs().max() < 1e-3 and exact["prior"].max() < 1e-2
        sigma = math.sqrt(schedule["betas"][0].item())
        normal = torch.distributions.Normal(point.double(), sigma)
        upper = torch.where(point > 0.999, torch.ones_like(point.double()), normal.cdf(point.double() + 1 / 255))
        lower = torch.where(point < -0.999, torch.zeros_like(point.double()), normal.cdf(point.double() - 1 / 255))
        assert exact["decoder"][0].item() == pytest.approx(-(upper - lower).log().sum().item(), rel=1e-3)
        decoder_bits[T] = nb.bits_per_dim(exact["decoder"][0]).item()
    assert 0 < decoder_bits[1000] < decoder_bits[100]
    schedule = nb.make_schedule("linear", 100)
    wrong = nb.Diffusion(schedule).bound_terms(PointOracle(schedule["alpha_bar"], -point), point.expand(3, -1, -1, -1),
                                               torch.Generator().manual_seed(0))
    assert nb.bits_per_dim(wrong["steps"].sum(1)).min() > 1


def test_vae_256_level_decoder(nb):
    torch.manual_seed(0)
    vae = nb.ConvVAE(latent_dim=3, width=4, hidden=8, likelihood="gaussian256")
    x = torch.randint(0, 256, (5, 28, 28)).float() / 255
    out, mu, logvar = vae(x)
    assert out.shape == (5, 2, 28, 28)
    nll = vae.nll(out, x)
    assert nll.shape == (5,) and (nll > 0).all()
    terms = nb.negative_elbo(vae, x)
    assert torch.allclose(terms["loss"], terms["rec"] + terms["kl"]) and terms["loss"].shape == (5,)
    assert vae.mean_image(torch.randn(2, 3)).shape == (2, 28, 28)
    assert nb.iwae_bound(vae, x, k=8, chunk=4).shape == (5,)
    with pytest.raises(ValueError, match="unknown decoder likelihood"):
        nb.ConvVAE(likelihood="laplace")


def m(fid, half=1.0, n=1000):
    return {"n": n, "fid": fid, "fid_low": fid - half, "fid_high": fid + half}


def test_a_verdict_reads_two_intervals_never_calls_an_overlap_equal_and_is_recorded(nb, monkeypatch):
    monkeypatch.setattr(nb, "METRICS", {"verdicts": []})
    assert nb.verdict("9(z)", "A vs B", (9.0, 11.0), (19.0, 21.0)) == "lower"
    assert nb.verdict("9(z)", "B vs A", nb.fid_interval(m(20)), nb.fid_interval(m(10))) == "higher"
    assert nb.verdict("9(y)", "close", nb.fid_interval(m(10, 3)), nb.fid_interval(m(14, 3))) == "not resolved"
    assert nb.verdict("9(y)", "touching", (1.0, 2.0), (2.0, 3.0)) == "not resolved"  # a shared end point is an overlap
    assert nb.verdict("9(y)", "a change against 0", (-0.5, -0.1), (0.0, 0.0)) == "lower"
    assert nb.fid_interval(m(10, 3)) == (7.0, 13.0)
    assert nb.METRICS["verdicts"][0] == {"part": "9(z)", "what": "A vs B", "a": [9.0, 11.0], "b": [19.0, 21.0], "word": "lower"}
    assert [(v["part"], v["what"], v["word"]) for v in nb.METRICS["verdicts"]] == [
        ("9(z)", "A vs B", "lower"), ("9(z)", "B vs A", "higher"), ("9(y)", "close", "not resolved"),
        ("9(y)", "touching", "not resolved"), ("9(y)", "a change against 0", "lower")]
    assert nb.verdict("9(z)", "A vs B", (30.0, 31.0), (19.0, 21.0)) == "higher"  # a re-run cell replaces its verdict
    assert [v for v in nb.METRICS["verdicts"] if v["what"] == "A vs B"] == [
        {"part": "9(z)", "what": "A vs B", "a": [30.0, 31.0], "b": [19.0, 21.0], "word": "higher"}]
    assert len(nb.METRICS["verdicts"]) == 5
    assert all(type(x) is float for v in nb.METRICS["verdicts"] for x in v["a"] + v["b"])  # plain floats: JSON-ready
    assert nb.verdict("9(x)", "tensors", torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])) == "lower"
    assert nb.METRICS["verdicts"][-1]["a"] == [1.0, 2.0]


def test_compared_words_each_verdict(nb):
    assert nb.compared("lower", "A", "B") == "A is better than B"
    assert nb.compared("higher", "A", "B") == "A is worse than B"
    assert nb.compared("not resolved", "A", "B") == "A is not resolved from B"
    with pytest.raises(KeyError):
        nb.compared("equal", "A", "B")
    assert nb.fid_text(m(10, 3)) == "10.00 [7.00, 13.00]"


def test_an_answer_opens_with_its_verdict_and_the_glance_records_it(nb, monkeypatch):
    shown = []
    monkeypatch.setattr(nb, "display", lambda md: shown.append(md.data))
    monkeypatch.setattr(nb, "METRICS", {"answers": {}, "verdicts": []})
    nb.answer("9(z)", "**A is better than B.** Because.")
    assert shown == ["**Answer 9(z).** **A is better than B.** Because."]
    assert nb.METRICS["answers"] == {"9(z)": "A is better than B."}
    nb.answer("9(z)", "**B is better than A.** Re-run.")  # a re-run cell replaces its answer
    assert nb.METRICS["answers"] == {"9(z)": "B is better than A."}
    with pytest.raises(ValueError, match="opens with its verdict in bold"):
        nb.answer("9(y)", "A is better than B. **Bold later.**")
    assert "9(y)" not in nb.METRICS["answers"] and len(shown) == 2  # a rejected answer shows and records nothing


def test_the_decoder_floor_is_below_every_decoder_mean_and_reached_at_the_best_one(nb):
    """-log of the discretised Gaussian's mass, for any clamped mean, is at least the floor; the floor is reached with the
    mean at an interior bin's centre and on the edge for an edge bin."""
    torch.manual_seed(0)
    beta_1 = 1e-3
    x0 = (torch.randint(0, 256, (4, 1, 6, 6)).double() / 127.5 - 1)
    x0[0, 0, 0] = -1.0
    x0[1, 0, 0] = 1.0
    floor = nb.decoder_floor_nats(x0, beta_1)
    log_scale = torch.full_like(x0, 0.5 * math.log(beta_1))
    for _ in range(20):
        mean = (x0 + 0.05 * torch.randn_like(x0)).clamp(-1, 1)
        nll = -nb.discretized_gaussian_log_likelihood(x0, mean, log_scale).sum((1, 2, 3))
        assert (nll >= floor - 1e-6).all()
    best = -nb.discretized_gaussian_log_likelihood(x0, x0, log_scale).sum((1, 2, 3))
    assert torch.allclose(best, floor, atol=1e-6)
