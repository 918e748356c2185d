"""The VAE and DDPM maths of the notebook, checked against references."""
import math

import pytest
import torch
from oracles import CodeDenoiser, PointOracle


def test_reparameterize_passes_gradients_to_mu_and_logvar(nb):
    mu = torch.randn(5, 4, requires_grad=True)
    logvar = torch.randn(5, 4, requires_grad=True)
    eps = torch.randn(5, 4)
    z = nb.reparameterize(mu, logvar, eps)
    assert torch.allclose(z, mu + torch.exp(0.5 * logvar) * eps)
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones_like(mu))
    assert torch.allclose(logvar.grad, 0.5 * torch.exp(0.5 * logvar) * eps)


def test_kl_matches_torch_distributions(nb):
    mu, logvar = torch.randn(6, 3), torch.randn(6, 3)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(0.0, 1.0)
    assert torch.allclose(nb.kl_to_standard_normal(mu, logvar), torch.distributions.kl_divergence(q, p), atol=1e-5)


def test_vae_shapes_and_elbo_terms(nb):
    torch.manual_seed(0)
    model = nb.ConvVAE(latent_dim=5)
    x = torch.rand(3, 28, 28)
    logits, mu, logvar = model(x)
    assert logits.shape == (3, 28, 28) and mu.shape == logvar.shape == (3, 5)
    terms = nb.negative_elbo(model, x)
    assert all(v.shape == (3,) for v in terms.values())  # per image
    assert torch.allclose(terms["loss"], terms["rec"] + terms["kl"])
    assert (terms["kl"] >= 0).all()
    # the reconstruction term is a sum over 784 pixels, not a mean: about 784 * log 2 for an untrained decoder
    assert (terms["rec"] > 300).all()


def test_iwae_bound_is_tighter_than_the_elbo(nb):
    torch.manual_seed(0)
    model = nb.ConvVAE(latent_dim=4).eval()
    x = torch.rand(4, 28, 28).round()
    elbo = torch.stack([-nb.negative_elbo(model, x)["loss"].mean() for _ in range(200)]).mean()
    iwae = nb.iwae_bound(model, x, k=200, chunk=64).mean()
    assert iwae >= elbo - 0.05


def test_mutual_information_estimator(nb):
    torch.manual_seed(0)
    n = 300
    informative = nb.mutual_information(torch.randn(n, 4) * 3, torch.full((n, 4), -6.0))
    assert 0.9 * math.log(n) < informative <= math.log(n) + 1e-6  # well separated posteriors: ~ log N
    blind = nb.mutual_information(torch.zeros(n, 4), torch.zeros(n, 4))
    assert abs(blind) < 1e-6  # q(z|x) = q(z): no information


def test_slerp_endpoints_and_norm(nb):
    a, b = torch.randn(3, 100), torch.randn(3, 100)
    t = torch.linspace(0, 1, 5)
    path = nb.slerp(a, b, t)
    assert path.shape == (5, 3, 100)
    assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    lin = nb.lerp(a, b, t)
    assert (path[2].norm(dim=1) > lin[2].norm(dim=1)).all()  # the straight line cuts towards the origin


def test_linear_probe_reads_separable_classes(nb):
    torch.manual_seed(0)
    centers = torch.randn(10, 8) * 5
    y = torch.arange(10).repeat(50)
    x = centers[y] + torch.randn(500, 8)
    assert nb.linear_probe_accuracy(x, y, x, y) > 0.95


def test_schedules(nb):
    lin, cos = nb.make_schedule("linear", 1000), nb.make_schedule("cosine", 1000)
    assert lin["betas"][0].item() == pytest.approx(1e-4) and lin["betas"][-1].item() == pytest.approx(0.02)
    assert lin["alpha_bar"][-1] < 1e-4 and cos["alpha_bar"][-1] < 1e-4
    assert nb.make_schedule("linear", 50)["alpha_bar"][-1] < 1e-3  # rescaled betas keep alpha-bar_T ~ 0
    assert (cos["alpha_bar"][500] > lin["alpha_bar"][500]).item()     # cosine keeps more signal mid-chain
    with pytest.raises(ValueError, match="unknown noise schedule 'sigmoid'"):
        nb.make_schedule("sigmoid", 1000)


def test_worked_example_and_closed_form(nb):
    betas = torch.tensor([0.1, 0.2], dtype=torch.float64)
    s = {"name": "worked example", "T": 2, "betas": betas, "alpha_bar": torch.cumprod(1 - betas, 0)}
    assert s["alpha_bar"][1].item() == pytest.approx(0.72)
    x0 = torch.full((200_000,), 2.0)
    xt = nb.Diffusion(s).q_sample(x0, torch.ones(200_000, dtype=torch.long), torch.randn(200_000))
    assert xt.mean().item() == pytest.approx(1.6971, abs=0.01) and xt.var().item() == pytest.approx(0.28, abs=0.01)


def test_ddim_with_eta_one_is_the_ancestral_step(nb):
    sched = nb.make_schedule("linear", 1000)
    ab = sched["alpha_bar"].tolist()
    torch.manual_seed(0)
    for t in (999, 500, 10, 1):
        x_t, x0 = torch.randn(4, 1, 28, 28, dtype=torch.float64), torch.rand(4, 1, 28, 28, dtype=torch.float64) * 2 - 1
        eps = (x_t - math.sqrt(ab[t]) * x0) / math.sqrt(1 - ab[t])
        m1, s1 = nb.ddpm_mean_std(x_t, x0, ab[t], ab[t - 1])
        m2, s2 = nb.ddim_mean_std(x0, eps, ab[t], ab[t - 1], eta=1.0)
        assert torch.allclose(m1, m2, atol=1e-10) and s1 == pytest.approx(s2, rel=1e-10)
        # and Ho et al.'s beta-tilde: (1 - abar_{t-1}) / (1 - abar_t) * beta_t
        assert s1 ** 2 == pytest.approx((1 - ab[t - 1]) / (1 - ab[t]) * sched["betas"][t].item(), rel=1e-9)


def test_sampling_with_a_perfect_denoiser_recovers_the_data_point(nb):
    """For data that is a single point x*, the optimal eps-predictor is known in closed form; every
    sampler must then return x* (a check of the whole reverse loop, respacing included)."""
    sched = nb.make_schedule("linear", 100)
    target = torch.rand(1, 1, 28, 28) * 1.6 - 0.8
    oracle = PointOracle(sched["alpha_bar"], target)

    diffusion = nb.Diffusion(sched)
    for method, steps, eta in (("ddpm", 100, 0.0), ("ddpm", 10, 0.0), ("ddim", 10, 0.0), ("ddim", 100, 1.0)):
        x, _ = diffusion.sample(oracle, torch.randn(3, 1, 28, 28), steps, method, eta=eta)
        assert torch.allclose(x, target.expand_as(x), atol=1e-4), (method, steps)
    with pytest.raises(ValueError, match="unknown sampler"):
        diffusion.sample(oracle, torch.randn(1, 1, 28, 28), 10, "euler")


def test_spaced_timesteps(nb):
    assert nb.spaced_timesteps(1000, 1000) == list(range(999, -1, -1))
    ts = nb.spaced_timesteps(1000, 10)
    assert len(ts) == 10 and ts[0] == 999 and ts[-1] == 0 and ts == sorted(ts, reverse=True)
    with pytest.raises(ValueError):
        nb.spaced_timesteps(100, 0)


def test_unet_shapes_and_zero_init(nb):
    torch.manual_seed(0)
    net = nb.UNet(ch=8)
    x = torch.randn(2, 1, 28, 28)
    out = net(x, torch.tensor([0.0, 999.0]))
    assert out.shape == x.shape and torch.count_nonzero(out) == 0  # zero-initialised output layer
    torch.nn.init.normal_(net.out[-1].weight)
    out = net(x, torch.tensor([0.0, 999.0]))
    assert out.shape == x.shape and out.abs().sum() > 0
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_ema_update_and_warmup(nb):
    ema, p = [torch.zeros(3)], [torch.ones(3)]
    nb.ema_update(ema, p, 0.9)
    assert torch.allclose(ema[0], torch.full((3,), 0.1))


def test_linear_schedule_refuses_a_chain_too_short_for_its_betas(nb):
    assert nb.make_schedule("linear", 25)["betas"].max() < 1
    with pytest.raises(ValueError, match="needs T > 20"):
        nb.make_schedule("linear", 10)


def test_trace_draws_what_the_sampler_draws(nb):
    """trace(n, seed) returns the images sampler(n, seed) returns: one latent draw, shared."""
    torch.manual_seed(0)
    unet = nb.new_model(nb.UNet, 8)
    torch.nn.init.normal_(unet.out[-1].weight, std=0.1)
    draw = nb.DiffusionSampler(unet, nb.Diffusion(nb.make_schedule("linear", 50), target="v"), 5, "ddpm", batch=8)
    images, trace = draw.trace(3, 7, record=(0, 4))
    assert torch.equal(images, draw(3, 7)) and len(trace) == 2


def test_the_diffusion_loss_is_the_formula_written_out(nb):
    """fit's diffusion loss on (B, d) codes, for each target: the formula computed independently with the same t and
    noise (for v: the MSE of v, which is the eps-MSE weighted by 1 / abar)."""
    sched = nb.make_schedule("linear", 1000)
    ab = sched["alpha_bar"].float()
    codes = torch.randn(16, 4)
    for target in ("eps", "v"):
        torch.manual_seed(1)
        model = CodeDenoiser()
        torch.manual_seed(3)
        t, noise = torch.randint(0, 1000, (16,)), torch.randn(16, 4)
        a = ab[t][:, None]
        x_t = a.sqrt() * codes + (1 - a).sqrt() * noise
        with torch.no_grad():
            out = model(x_t, t.float())
        want = noise if target == "eps" else a.sqrt() * noise - (1 - a).sqrt() * codes
        if target == "v":  # the same number as the eps-MSE of the implied eps, weighted by 1 / abar
            eps_hat = a.sqrt() * out + (1 - a).sqrt() * x_t
            assert torch.allclose(((out - want) ** 2).mean(1), ((eps_hat - noise) ** 2 / a).mean(1), rtol=1e-4, atol=1e-6)
        torch.manual_seed(3)
        loss = nb.diffusion_loss(nb.Diffusion(sched, target=target, clip=None), model)(codes)["loss"]
        assert loss.item() == pytest.approx((out - want).pow(2).mean().item(), rel=1e-5), target


def test_the_negative_elbo_is_the_hand_computed_sum_over_pixels_and_latents(nb):
    """-ELBO = sum over pixels of the Bernoulli cross-entropy + sum over latent dimensions of the KL, per image, with the
    reparameterised draw: a mean over pixels or latents, or a dropped term, fails."""
    torch.manual_seed(0)
    model, x = nb.ConvVAE(3, 4, 8), torch.rand(5, 28, 28)
    torch.manual_seed(1)
    terms = nb.negative_elbo(model, x)
    mu, logvar = model.encode(x)
    torch.manual_seed(1)
    z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
    p = torch.sigmoid(model.decode(z))
    rec = -(x * p.log() + (1 - x) * (1 - p).log()).sum((1, 2))
    q, prior = torch.distributions.Normal(mu, (0.5 * logvar).exp()), torch.distributions.Normal(0.0, 1.0)
    kl = torch.distributions.kl_divergence(q, prior).sum(1)
    assert torch.allclose(terms["rec"], rec, rtol=1e-4) and torch.allclose(terms["kl"], kl, rtol=1e-4)
    assert torch.allclose(terms["loss"], rec + kl, rtol=1e-4)


def test_the_iwae_bound_is_exact_when_the_posterior_is_the_prior_and_the_decoder_ignores_z(nb):
    """With q(z|x) = p(z) and a decoder that ignores z, every importance weight is p(x): the IWAE bound equals log p(x) for
    any K (a dropped -log K would add log K)."""
    model = nb.ConvVAE(2, 4, 8)
    with torch.no_grad():
        for layer in (model.to_mu, model.to_logvar, model.decoder[-1]):
            layer.weight.zero_()
            layer.bias.zero_()
    x = torch.rand(3, 28, 28)
    log_px = -torch.nn.functional.binary_cross_entropy_with_logits(torch.zeros_like(x), x, reduction="none").sum((1, 2))
    for k in (1, 7, 64):
        assert torch.allclose(nb.iwae_bound(model, x, k, chunk=5), log_px, atol=1e-3), k


def test_ancestral_sampling_draws_fresh_noise_and_ddim_does_not(nb):
    torch.manual_seed(0)
    unet = nb.new_model(nb.UNet, 8)
    torch.nn.init.normal_(unet.out[-1].weight, std=0.1)
    unet.eval()  # no dropout: what differs between the runs is the sampler's own noise
    diffusion, x_T = nb.Diffusion(nb.make_schedule("linear", 30), target="v"), torch.randn(2, 1, 28, 28)
    runs = {method: [diffusion.sample(unet, x_T, 10, method, generator=torch.Generator().manual_seed(s))[0] for s in (1, 2)]
            for method in ("ddpm", "ddim")}
    assert not torch.allclose(*runs["ddpm"]) and torch.equal(*runs["ddim"])


def test_the_unet_sees_the_timestep(nb):
    torch.manual_seed(0)
    unet = nb.new_model(nb.UNet, 8)
    torch.nn.init.normal_(unet.out[-1].weight, std=0.1)
    unet.eval()
    x = torch.randn(1, 1, 28, 28).repeat(2, 1, 1, 1)
    with torch.no_grad():
        out = unet(x, torch.tensor([10.0, 900.0]))
    assert not torch.allclose(out[0], out[1], atol=1e-4)


def test_v_prediction_gives_back_eps(nb):
    """Diffusion.predict_eps turns a v-model's output into eps: a model that outputs the true v returns the true eps."""
    sched = nb.make_schedule("linear", 1000)
    ab = sched["alpha_bar"].float()
    x0, eps = torch.randn(3, 1, 28, 28), torch.randn(3, 1, 28, 28)
    t = 400
    x_t = ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * eps

    class TrueV(torch.nn.Module):
        def forward(self, x, tt):
            return ab[t].sqrt() * eps - (1 - ab[t]).sqrt() * x0

    assert torch.allclose(nb.Diffusion(sched, target="v").predict_eps(TrueV(), x_t, t), eps, atol=1e-5)
    with pytest.raises(ValueError, match="unknown prediction target"):
        nb.Diffusion(sched, target="x0")


def test_digit_commitment_of_a_process_that_knows_its_digit_from_the_start(nb):
    """With the exact denoiser of one data point, x0_hat is that point at every t: every run is committed from t = T and
    x0_hat always shows the final digit. A stand-in classifier reads the digit as the brightest of the first ten pixels."""
    sched = nb.make_schedule("linear", 50)
    point = torch.full((1, 1, 28, 28), -0.8)
    point.view(-1)[3] = 0.8  # "digit" 3

    class FirstTenPixels(torch.nn.Module):
        def features(self, x):
            return x.flatten(1)[:, :10]

        def head(self, f):
            return 50 * f

    draw = nb.DiffusionSampler(PointOracle(sched["alpha_bar"], point), nb.Diffusion(sched), 50, "ddpm", batch=16)
    images, trace = nb.traced(draw, 12, 0, 100)  # more points than steps: every step is recorded
    assert images.dtype == torch.uint8 and images.shape == (12, 28, 28) and sorted(trace) == list(range(50))
    c = nb.digit_commitment(images, trace, FirstTenPixels())
    assert c["t"][0] == 50 and c["t"][-1] == 1 and len(c["commit_t"]) == 12 and set(c) == {"t", "x0_agree", "commit_t"}
    assert c["commit_t"] == [50] * 12 and all(a == 1.0 for a in c["x0_agree"])
    # a process that changes its mind half-way: x0_hat shows digit 5 while t > T/2, then digit 3, the final one
    other = torch.full((1, 1, 28, 28), -0.8)
    other.view(-1)[5] = 0.8

    class Switch(PointOracle):
        def forward(self, x, t):
            a = self.abar(t, x)
            target = torch.where((t > 500).view(-1, 1, 1, 1), other, point)
            return (x - a.sqrt() * target) / (1 - a).sqrt()

    switch = nb.DiffusionSampler(Switch(sched["alpha_bar"], point), nb.Diffusion(sched), 50, "ddpm", batch=16)
    c = nb.digit_commitment(*nb.traced(switch, 12, 0, 50), FirstTenPixels())
    assert c["commit_t"] == [26] * 12  # 0-based t = 25 is the last with t * 1000 / T <= 500
    assert c["x0_agree"][: 50 - 26] == [0.0] * 24 and c["x0_agree"][50 - 26:] == [1.0] * 26
    # a run that never settles on its final digit commits at 0; the final images decide what "final" means
    five = torch.full((12, 28, 28), 25, dtype=torch.uint8)
    five[:, 0, 5] = 230  # final images of "digit" 5, which no x0_hat of the trace shows
    c = nb.digit_commitment(five, trace, FirstTenPixels())
    assert c["commit_t"] == [0] * 12 and all(a == 0.0 for a in c["x0_agree"])


def test_traced_records_evenly_spaced_steps_from_t_to_the_end(nb):
    sched = nb.make_schedule("linear", 50)
    draw = nb.DiffusionSampler(PointOracle(sched["alpha_bar"], torch.zeros(1, 1, 28, 28)), nb.Diffusion(sched), 25, "ddim", batch=4)
    images, trace = nb.traced(draw, 3, 0, 5)
    assert len(trace) == 5 and max(trace) == 49 and min(trace) == 0 and set(trace) <= set(nb.spaced_timesteps(50, 25))
    assert torch.equal(images, draw(3, 0)) and all(x.shape == x0.shape == (3, 1, 28, 28) for x, x0 in trace.values())


def test_every_batch_starts_from_the_latents_one_draw_gives(nb):
    """The latents of all n samples are drawn before the first batch, so a sampler that also draws noise (ancestral) starts
    from the same z or x_T as one that draws none (DDIM), whatever the batch size."""
    class NoisyProbe(nb.Sampler):
        def generate(self, z, generator):
            torch.randn(z.shape, generator=generator)  # per-step noise, as the ancestral sampler draws it
            return torch.sigmoid(z)

    model = torch.nn.Linear(1, 1)
    small, whole = NoisyProbe(model, (3,), batch=2)(5, 0), NoisyProbe(model, (3,), batch=5)(5, 0)
    assert small.shape == (5, 3) and torch.equal(small, whole)


def test_vae_test_terms_are_per_image_across_batches(nb):
    """vae_test_terms gives one -ELBO, reconstruction and KL per test image (not a mean), batch by batch, as
    negative_elbo gives them for the same draws."""
    torch.manual_seed(0)
    model, x = nb.ConvVAE(3, 4, 8), torch.rand(7, 28, 28)
    torch.manual_seed(1)
    terms = nb.vae_test_terms(model, x, batch=3)
    assert set(terms) == {"loss", "rec", "kl"} and all(v.shape == (7,) for v in terms.values())
    assert torch.allclose(terms["loss"], terms["rec"] + terms["kl"])
    torch.manual_seed(1)
    with torch.no_grad():
        by_hand = torch.cat([nb.negative_elbo(model, chunk)["loss"] for chunk in x.split(3)])
    assert torch.allclose(terms["loss"], by_hand)


def test_timed_samples_draws_once_and_reports_seconds_per_thousand(nb, monkeypatch):
    calls, clock = [], iter([100.0, 102.0])
    monkeypatch.setattr(nb.time, "perf_counter", lambda: next(clock))

    def draw(n, seed):
        calls.append((n, seed))
        return torch.zeros(n, 28, 28, dtype=torch.uint8)

    images, per_1000 = nb.timed_samples(draw, 500, 3)
    assert calls == [(500, 3)] and images.shape == (500, 28, 28) and per_1000 == pytest.approx(4.0)  # no warm-up draw
