"""The VAE and DDPM maths of the notebook, checked against references."""
import functools
import math

import pytest
import torch
import torch.nn.functional as F
from oracles import GaussianOracle, PointOracle


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


@pytest.mark.parametrize("arch", ["ConvVAE", "MLPVAE"])
def test_vae_shapes_and_elbo_terms(nb, arch):
    torch.manual_seed(0)
    model = getattr(nb, arch)(latent_dim=5)
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
    s = nb.schedule_from_betas([0.1, 0.2])
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
    x_T = diffusion.invert(oracle, target, 10)
    assert torch.isfinite(x_T).all()
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


def test_unet_dropout_knob_reaches_every_block_and_the_checkpoint_key(nb):
    """The profile's unet_dropout: at 0 a training-mode forward pass is deterministic (the `cpu` recipe),
    at 0.1 two passes differ; the rate is in UNet.config, which the checkpoint key hashes."""
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([10.0, 200.0, 500.0, 900.0])
    outs = {}
    for p in (0.0, 0.1):
        net = nb.new_model(nb.UNet, 0, 8, attn_levels=(), dropout=p).train()
        torch.nn.init.normal_(net.out[-1].weight)  # a non-zero output layer, so dropout shows in the output
        outs[p] = net(x, t), net(x, t)
        assert net.config["dropout"] == p
        assert all(m.p == p for m in net.modules() if isinstance(m, torch.nn.Dropout))
    assert torch.equal(*outs[0.0]) and not torch.allclose(*outs[0.1])
    for cfg in nb.PROFILES.values():  # unet_args: the one place a profile becomes U-Net arguments
        config = nb.UNet(**nb.unet_args(cfg)).config
        assert (config["ch"], tuple(config["mults"]), config["attn_levels"], config["dropout"]) == \
            (cfg.unet_ch, cfg.unet_mults, cfg.unet_attn, cfg.unet_dropout)
        recipe = nb.ddpm_recipe(cfg)
        assert recipe["ema"] == cfg.ddpm_ema and set(recipe) < set(nb.inspect.signature(nb.train_diffusion).parameters)


def test_ema_update_and_warmup(nb):
    ema, p = [torch.zeros(3)], [torch.ones(3)]
    nb.ema_update(ema, p, 0.9)
    assert torch.allclose(ema[0], torch.full((3,), 0.1))
    assert nb.ema_decay(0, 0.999) == pytest.approx(0.1) and nb.ema_decay(10**6, 0.999) == 0.999


def test_linear_schedule_refuses_a_chain_too_short_for_its_betas(nb):
    assert nb.make_schedule("linear", 25)["betas"].max() < 1
    with pytest.raises(ValueError, match="needs T > 20"):
        nb.make_schedule("linear", 10)


def test_sampler_pads_batches_for_a_compiled_carrier_and_returns_exactly_n(nb):
    sched = nb.make_schedule("linear", 100)
    target = torch.rand(1, 1, 28, 28) * 1.6 - 0.8
    shapes = set()

    class Oracle(PointOracle):  # the exact denoiser of `target`, recording the batch sizes it sees
        config = {"class": "Oracle"}

        def __init__(self):
            super().__init__(sched["alpha_bar"], target)

        def forward(self, x, t):
            shapes.add(x.shape[0])
            return super().forward(x, t)

    carrier = Oracle()
    diffusion = nb.Diffusion(sched)
    out = nb.DiffusionSampler(Oracle(), diffusion, 10, "ddim", fast=nb.CompiledUNet(carrier, carrier), batch=4)(7, 0)
    assert out.shape == (7, 28, 28) and out.dtype == torch.uint8 and shapes == {4}  # 4 + 3 padded to 4
    assert torch.equal(out, nb.to_uint8(nb.to_unit(target)).expand(7, 28, 28))
    shapes.clear()
    nb.DiffusionSampler(Oracle(), diffusion, 10, "ddim", batch=4)(7, 0)
    assert shapes == {4, 3}  # eagerly, no padding
    other = Oracle()
    other.config = {"class": "Other"}
    with pytest.raises(ValueError, match="compiled carrier"):
        nb.DiffusionSampler(other, diffusion, 10, "ddim", fast=nb.CompiledUNet(carrier, carrier), batch=4)(7, 0)


def test_trace_draws_what_the_sampler_draws_and_a_compiled_carrier_leaves_keys_alone(nb):
    """trace(n, seed) returns the images sampler(n, seed) returns (one latent draw, shared), and the checkpoint key of
    a progress measurement is the same whether sampling goes through a compiled carrier or runs eagerly."""
    torch.manual_seed(0)
    unet = nb.new_model(nb.UNet, 0, 8)
    torch.nn.init.normal_(unet.out[-1].weight, std=0.1)
    draw = nb.DiffusionSampler(unet, nb.Diffusion(nb.make_schedule("linear", 50), target="v"), 5, "ddpm", batch=8)
    images, trace = draw.trace(3, 7, record=(0, 4))
    assert torch.equal(images, draw(3, 7)) and len(trace) == 2
    carrier = nb.CompiledUNet(nb.UNet(8), nb.UNet(8))
    compiled = functools.partial(nb.ddpm_progress, fast=carrier, n_curve=10)
    eager = functools.partial(nb.ddpm_progress, fast=None, n_curve=10)
    assert nb.provenance(compiled) == nb.provenance(eager)
    assert nb.provenance(compiled) != nb.provenance(functools.partial(nb.ddpm_progress, fast=None, n_curve=20))


def test_section_workload_counts_follow_the_profile(nb):
    smoke, full = (nb.resolve_profile(p, {"type": "cpu", "name": "CPU", "capability": None})[1] for p in ("smoke", "full"))
    w_smoke, w_full = nb.section_workload(smoke), nb.section_workload(full)
    assert set(w_full) == {"Q1 VAE", "Q2 DDPM", "Q3 GAN and latent diffusion", "Q3(a) likelihood bounds", "beyond: VAE latent sizes"}
    for section, units in w_full.items():
        assert all(n > 0 for n in units.values()) and set(units) == set(w_smoke[section])
        assert all(units[u] > w_smoke[section][u] for u in units), section
    # the headline ancestral samples alone: n_eval x T U-Net passes
    assert w_full["Q2 DDPM"]["unet_forward"] > full.n_eval * full.ddpm_T
    assert w_full["Q2 DDPM"]["unet_step"] == full.ddpm_steps + (len(full.cmp_T) + 2) * full.ddpm_cmp_steps
    # counted from the constants block: more progress points means more progress passes
    more = nb.section_workload.__globals__
    old = more["PROGRESS_FRACTIONS"]
    try:
        more["PROGRESS_FRACTIONS"] = old + (0.9,)
        assert nb.section_workload(full)["Q2 DDPM"]["unet_pass_small"] > w_full["Q2 DDPM"]["unet_pass_small"]
    finally:
        more["PROGRESS_FRACTIONS"] = old


def test_forecast_is_count_times_unit_seconds(nb):
    workload = {"A": {"x": 10, "y": 2}, "B": {"y": 5}}
    assert nb.forecast_seconds(workload, {"x": 0.5, "y": 2.0}) == {"A": 9.0, "B": 10.0}


def test_calibration_times_every_unit_the_workload_uses(nb, mnist):
    cfg = nb.resolve_profile("smoke", {"type": "cpu", "name": "CPU", "capability": None})[1]
    units = nb.calibrate_units(cfg, mnist["train"][0][:512], None, torch.float32, reps=1)
    needed = {u for section in nb.section_workload(cfg).values() for u in section} - {"eval_image"}
    assert needed <= set(units) and all(0 < units[u] < 60 for u in needed)


def test_diffusion_step_matches_the_loss_written_out(nb):
    """One training step of a latent-diffusion MLP on (B, d) codes, for each target and weighting: the loss
    it returns is the formula computed independently with the same t and noise, and the EMA moves by
    (1 - decay) towards the updated weights."""
    sched = nb.make_schedule("linear", 1000)
    ab = sched["alpha_bar"].float()
    codes = torch.randn(64, 4)
    for target, gamma in (("eps", None), ("v", None), ("eps", 5.0), ("v", 5.0)):
        model = nb.new_model(nb.LatentDenoiser, 0, 4, 16, 1)
        start = [p.detach().clone() for p in model.parameters()]
        diffusion = nb.Diffusion(sched, target=target, min_snr_gamma=gamma, clip=None)
        step, ema = nb.diffusion_trainer(model, diffusion, codes, n_steps=10, lr=1e-2, warmup=0.0, ema=0.9)
        idx = torch.arange(16)
        torch.manual_seed(3)
        t, noise = torch.randint(0, 1000, (16,)), torch.randn(16, 4)
        a = ab[t][:, None]
        x_t = a.sqrt() * codes[idx] + (1 - a).sqrt() * noise
        with torch.no_grad():
            out = model(x_t, t.float())
        want = noise if target == "eps" else a.sqrt() * noise - (1 - a).sqrt() * codes[idx]
        per = (out - want).pow(2).mean(1)
        if gamma is not None:
            snr = (a / (1 - a))[:, 0]
            per = per * snr.clamp(max=gamma) / (snr + (target == "v"))
        torch.manual_seed(3)
        loss = step(idx, 1)["loss"]
        assert loss.item() == pytest.approx(per.mean().item(), rel=1e-5), (target, gamma)
        decay = nb.ema_decay(1, 0.9)  # the warm-up: (1 + 1) / (10 + 1)
        for p0, p, e in zip(start, model.parameters(), ema.parameters()):
            assert torch.allclose(e, p0 + (1 - decay) * (p - p0), atol=1e-6) and not torch.equal(p, p0)


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


def test_gan_step_trains_each_player_on_its_own_loss(nb):
    """D's step uses the logistic loss on real vs (detached) fake images with the weights before the update;
    with G's learning rate 0, G does not move, so D's loss sends no update into G; G's loss is the
    non-saturating -log D(G(z)) under the updated D."""
    G = nb.new_model(nb.DCGenerator, 0, 8, 8)
    D = nb.new_model(nb.DCDiscriminator, 0, 8)
    data = torch.rand(32, 1, 28, 28) * 2 - 1
    g_before, d_before = nb.copy.deepcopy(G), nb.copy.deepcopy(D)
    step = nb.make_gan_step(G, D, torch.optim.SGD(G.parameters(), lr=0.0), torch.optim.SGD(D.parameters(), lr=0.05), data)
    idx = torch.arange(16)
    torch.manual_seed(7)
    fake = g_before.train()(torch.randn(16, 8))
    d_ref = F.softplus(-d_before.train()(data[idx])).mean() + F.softplus(d_before(fake)).mean()
    torch.manual_seed(7)
    out = step(idx, 1)
    assert out["d_loss"].item() == pytest.approx(d_ref.item(), rel=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(G.parameters(), g_before.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(D.parameters(), d_before.parameters()))
    assert out["g_loss"].item() == pytest.approx(F.softplus(-D(fake)).mean().item(), rel=1e-5)


def test_ddim_inversion_then_generation_returns_the_input(nb):
    """For data x0 ~ N(0, s^2 I) the optimal noise predictor is linear, eps(x_t) = sqrt(1 - abar) x_t /
    (abar s^2 + 1 - abar); DDIM (eta = 0) is then a deterministic, invertible map, and inverting an input
    and generating from the result must return that input, up to a discretisation error that halves when
    the steps double (first order)."""
    sched = nb.make_schedule("linear", 1000)
    s = 0.2  # the input stays inside the sampler's [-1, 1] clip
    oracle = GaussianOracle(sched["alpha_bar"], s)

    torch.manual_seed(0)
    x0 = torch.randn(4, 1, 28, 28) * s
    errors = {}
    diffusion = nb.Diffusion(sched)
    for steps in (50, 200):
        x_T = diffusion.invert(oracle, x0, steps)
        assert 0.8 < x_T.std().item() < 1.2  # a noise-like code, not the input
        back, _ = diffusion.sample(oracle, x_T, steps, "ddim")
        errors[steps] = ((back - x0).norm() / x0.norm()).item()
    assert errors[200] < 0.08 and errors[200] < 0.4 * errors[50], errors
    other, _ = diffusion.sample(oracle, torch.randn_like(x_T), 200, "ddim")
    assert ((other - x0).norm() / x0.norm()).item() > 1  # another code gives another image


def test_every_sampler_has_one_shape_and_repeats_for_the_same_seed(nb, tmp_path, monkeypatch):
    """VAE, GAN, DDPM, DDIM and latent diffusion: sampler(n, seed) -> uint8 (n, 28, 28), the same for the same seed,
    another for another seed, the same whatever the batch size when the batch holds n; and a figure repeats."""
    monkeypatch.setattr(nb, "FIG_DIR", tmp_path)
    sched = nb.make_schedule("linear", 100)
    vae = nb.new_model(nb.ConvVAE, 0, 4, 4, 8)
    unet = nb.new_model(nb.UNet, 0, 8)
    torch.nn.init.normal_(unet.out[-1].weight, std=0.1)
    ld = nb.new_model(nb.LatentDenoiser, 0, 4, 16, 1)
    diffusion = nb.Diffusion(sched, target="v")
    samplers = {"vae": nb.VAESampler(vae), "gan": nb.GANSampler(nb.new_model(nb.DCGenerator, 0, 8, 8)),
                "ddpm": nb.DiffusionSampler(unet, diffusion, 5, "ddpm"), "ddim": nb.DiffusionSampler(unet, diffusion, 5, "ddim"),
                "latent diffusion": nb.latent_diffusion_sampler(ld, nb.Diffusion(sched, clip=None), vae, 5)}
    for name, draw in samplers.items():
        a, b, c = draw(3, 11), draw(3, 11), draw(3, 12)
        assert a.shape == (3, 28, 28) and a.dtype == torch.uint8 and a.device == nb.DEVICE, name
        assert torch.equal(a, b) and not torch.equal(a, c), name
        draw.batch = 2  # batched: two batches of the same stream give other draws, but the same shape
        assert draw(3, 11).shape == (3, 28, 28), name
    pngs = []
    for _ in range(2):
        nb.reverse_process_figure(samplers["ddpm"], 2, 3, 5, "test", "repeat")
        pngs.append((tmp_path / "repeat.png").read_bytes())
    assert pngs[0] == pngs[1]


def test_checkpoint_key_covers_constructor_and_optimiser_arguments(nb, tmp_path, monkeypatch):
    """Change any one argument and train_or_load trains again (a new checkpoint file); change nothing and it loads."""
    monkeypatch.setattr(nb, "CKPT_DIR", tmp_path)
    images, labels = torch.rand(64, 28, 28), torch.randint(0, 10, (64,))
    run = nb.Run("k", steps=2, batch=16, seed=0)

    def trained(family, **over):
        before = set(tmp_path.iterdir())
        if family == "vae":
            a = {"latent_dim": 2, "width": 4, "hidden": 8, "lr": 1e-3, **over}
            nb.train_vae(run, nb.new_model(nb.ConvVAE, 0, a["latent_dim"], a["width"], a["hidden"]), images, lr=a["lr"])
        elif family == "gan":
            a = {"z_dim": 8, "width": 8, "lr": 2e-4, "betas": (0.5, 0.999), **over}
            models = nb.new_model(nb.DCGenerator, 0, a["z_dim"], a["width"]), nb.new_model(nb.DCDiscriminator, 0, a["width"])
            nb.train_gan(run, models, images[:, None] * 2 - 1, lr=a["lr"], betas=a["betas"])
        elif family == "diffusion":
            a = {"T": 30, "target": "eps", "gamma": None, "lr": 1e-3, "ema": 0.9, **over}
            diffusion = nb.Diffusion(nb.make_schedule("linear", a["T"]), target=a["target"], min_snr_gamma=a["gamma"], clip=None)
            nb.train_diffusion(run, nb.new_model(nb.LatentDenoiser, 0, 4, 16, 1), diffusion, torch.randn(64, 4), lr=a["lr"],
                               warmup=0.1, ema=a["ema"])
        else:
            a = {"width": 4, "label_smoothing": 0.05, "max_shift": 2, **over}
            nb.train_classifier(run, nb.new_model(nb.DigitClassifier, 0, a["width"]), (images, labels),
                                lr=1e-3, label_smoothing=a["label_smoothing"], max_shift=a["max_shift"])
        return len(set(tmp_path.iterdir()) - before) == 1

    for family, changes in (("vae", [{"latent_dim": 3}, {"width": 5}, {"hidden": 9}, {"lr": 2e-3}]),
                            ("gan", [{"z_dim": 9}, {"width": 9}, {"lr": 1e-4}, {"betas": (0.0, 0.9)}]),
                            ("diffusion", [{"T": 40}, {"target": "v"}, {"gamma": 5.0}, {"lr": 2e-3}, {"ema": 0.99}]),
                            ("clf", [{"width": 5}, {"label_smoothing": 0.0}, {"max_shift": 1}])):
        assert trained(family) and not trained(family), family  # first trains, then loads
        for change in changes:
            assert trained(family, **change), (family, change)


def test_cache_keys_carry_upstream_models_and_the_progress_yardstick(nb, tmp_path, monkeypatch):
    """A model trained on another model's output loads only when that model is the same: the latent diffusion
    model's key holds the VAE's key, so a VAE trained for more steps (vae_epochs) makes it train again. A progress
    curve loads only when it was scored by the same classifier with the same n_curve."""
    monkeypatch.setattr(nb, "CKPT_DIR", tmp_path)
    images = torch.rand(64, 28, 28)
    def trains(fn, name):
        """Whether fn() wrote a new checkpoint of the model `name` (upstream models may write their own)."""
        before = set(tmp_path.glob(f"{name}-*.pt"))
        fn()
        return len(set(tmp_path.glob(f"{name}-*.pt")) - before) == 1

    def vae_of(steps):
        return nb.train_vae(nb.Run("vae", steps=steps, batch=16, seed=0), nb.new_model(nb.ConvVAE, 0, 4, 4, 8), images, lr=1e-3)[0]

    def latent_diffusion(vae):
        with torch.no_grad():
            codes = vae.encode(images)[0]
        diffusion = nb.Diffusion(nb.make_schedule("linear", 30), clip=None)
        nb.train_diffusion(nb.Run("ld", steps=2, batch=16, seed=0, upstream={"vae": vae}), nb.new_model(nb.LatentDenoiser, 0, 4, 16, 1),
                           diffusion, codes, lr=1e-3, warmup=0.1, ema=0.9)

    vae_a = vae_of(2)
    assert vae_a.ckpt_key.startswith("vae-")
    assert trains(lambda: latent_diffusion(vae_a), "ld") and not trains(lambda: latent_diffusion(vae_of(2)), "ld")  # same VAE
    assert trains(lambda: latent_diffusion(vae_of(3)), "ld")  # the VAE trained one more step: its codes moved, so train again

    def curve(classifier_width, n_curve):
        clf = nb.new_model(nb.DigitClassifier, 0, classifier_width)
        clf.eval()
        ref = {"classifier": clf, "provenance": {"classifier": nb.provenance(clf)}}
        measure = nb.functools.partial(lambda model, step, ref, n_curve: {"n": n_curve}, ref=ref, n_curve=n_curve)
        run = nb.Run("curve", steps=2, batch=16, seed=0, progress=nb.Progress(at=(2,), measure=measure))
        nb.train_vae(run, nb.new_model(nb.ConvVAE, 0, 4, 4, 8), images, lr=1e-3)

    assert trains(lambda: curve(4, 10), "curve") and not trains(lambda: curve(4, 10), "curve")
    assert trains(lambda: curve(5, 10), "curve")  # another classifier scored the curve
    assert trains(lambda: curve(4, 20), "curve")  # another sample count


def test_digit_commitment_of_a_process_that_knows_its_digit_from_the_start(nb):
    """With the exact denoiser of one data point, x0_hat is that point at every t: every run is committed from t = T,
    x0_hat always shows the final digit, and x_t shows it at t = 1. A stand-in classifier reads the digit as the
    brightest of the first ten pixels."""
    sched = nb.make_schedule("linear", 50)
    point = torch.full((1, 1, 28, 28), -0.8)
    point.view(-1)[3] = 0.8  # "digit" 3

    class FirstTenPixels(torch.nn.Module):
        def features(self, x):
            return x.flatten(1)[:, :10]

        def head(self, f):
            return 50 * f

    draw = nb.DiffusionSampler(PointOracle(sched["alpha_bar"], point), nb.Diffusion(sched), 50, "ddpm", batch=16)
    c = nb.digit_commitment(draw, 12, 0, FirstTenPixels())
    assert c["t"][0] == 50 and c["t"][-1] == 1 and len(c["commit_t"]) == 12
    assert c["commit_t"] == [50] * 12 and all(a == 1.0 for a in c["x0_agree"])
    assert c["xt_agree"][-1] == 1.0 and c["xt_agree"][0] < 0.9  # x_T is noise
    # a process that changes its mind half-way: x0_hat shows digit 5 while t > T/2, then digit 3, the final one
    other = torch.full((1, 1, 28, 28), -0.8)
    other.view(-1)[5] = 0.8

    class Switch(PointOracle):
        def forward(self, x, t):
            a = self.abar(t, x)
            target = torch.where((t > 500).view(-1, 1, 1, 1), other, point)
            return (x - a.sqrt() * target) / (1 - a).sqrt()

    switch = nb.DiffusionSampler(Switch(sched["alpha_bar"], point), nb.Diffusion(sched), 50, "ddpm", batch=16)
    c = nb.digit_commitment(switch, 12, 0, FirstTenPixels())
    assert c["commit_t"] == [26] * 12  # 0-based t = 25 is the last with t * 1000 / T <= 500
    assert c["x0_agree"][: 50 - 26] == [0.0] * 24 and c["x0_agree"][50 - 26:] == [1.0] * 26
