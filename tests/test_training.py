"""The profiles and their precision; the training loop's caps, budgets and precision (on a fake clock); checkpoints keyed by
configuration and code, and what happens when one is stale or broken."""
import dataclasses
import gzip

import pytest
import torch
from oracles import CodeDenoiser

CPU = {"type": "cpu", "name": "CPU", "capability": None, "bf16": False}
T4 = {"type": "cuda", "name": "Tesla T4", "capability": (7, 5)}
L4 = {"type": "cuda", "name": "NVIDIA L4", "capability": (8, 9)}
A100 = {"type": "cuda", "name": "NVIDIA A100-SXM4-40GB", "capability": (8, 0)}
H100 = {"type": "cuda", "name": "NVIDIA H100 80GB HBM3", "capability": (9, 0)}


@pytest.mark.parametrize("info,profile,dtype", [(CPU, "cpu", torch.float32), ({**CPU, "bf16": True}, "cpu", torch.bfloat16),
                                                (T4, "gpu", torch.float16), (L4, "gpu", torch.bfloat16),
                                                (A100, "gpu", torch.bfloat16), (H100, "gpu", torch.bfloat16)])
def test_auto_maps_every_machine_to_one_profile_and_a_precision(nb, info, profile, dtype):
    name, cfg, reason = nb.resolve_profile("auto", info, "the parameters cell")
    assert name == profile and cfg is nb.PROFILES[profile] and "'auto' (the parameters cell) picked it" in reason
    assert nb.pick_amp_dtype(info) == dtype  # fp16 with a scaler below capability 8.0, where bf16 is only emulated
    if info["type"] == "cuda":
        assert info["name"] in reason


def test_a_named_profile_says_where_it_was_set_and_a_bad_name_is_an_error(nb):
    assert nb.resolve_profile("smoke", CPU, "the HW2_PROFILE environment variable")[2] == "set by the HW2_PROFILE environment variable"
    with pytest.raises(ValueError, match="unknown PROFILE 'fast'"):
        nb.resolve_profile("fast", CPU, "the parameters cell")


def test_profiles_fit_their_wait_and_only_smoke_has_no_budgets(nb):
    for name, cfg in nb.PROFILES.items():
        budgets = nb.training_budgets(cfg).values()
        assert all(t.budget_s is None for t in budgets) if name == "smoke" else all(t.budget_s for t in budgets), name
        for t in budgets:  # a budget covers its cap at the sized-for rate, with the margin
            assert t.budget_s is None or t.budget_s >= t.max_steps * t.s_per_step * 1.2
    expected = sum(e for e, _ in nb.wait_plan(nb.PROFILES["cpu"]).values())
    assert expected <= 77 * 60  # about 76 min on the slowest 2-core machine seen, every training to its cap (the target was 60)


def test_the_announced_wait_is_the_sum_of_every_budget(nb):
    """The most the first output announces: each section's training budgets, budgeted sampling and other work."""
    cfg = nb.PROFILES["gpu"]
    plan = nb.wait_plan(cfg)
    at_most = sum(m for _, m in plan.values())
    assert at_most == pytest.approx(sum(t.budget_s for t in nb.training_budgets(cfg).values())
                                    + sum(w.budget_s for w in nb.sampling_budgets(cfg).values()) + sum(s for _, s in cfg.other_s))
    assert set(plan) == {"yardstick", "Q1 VAE", "Q2 DDPM", "Q3 comparison"} and plan["Q2 DDPM"][1] > plan["Q1 VAE"][1]


def test_the_sweep_budget_counts_every_network_pass_of_its_points(nb):
    """cpu: the headline samples (100 + 25 passes each, at n_eval) and the other sweep points (S summed) at n_sweep; the
    chain study's own chains and S = 25 for the longer ones."""
    work = nb.sampling_budgets(nb.PROFILES["cpu"])
    assert (work["sweep"].fixed, work["sweep"].per_sample) == (1000 * (100 + 25), (10 + 25 + 50) * 3 - 25)
    assert work["chain"].per_sample == 25 + (100 + 25)


@pytest.mark.parametrize("slowdown", [1, 4])
def test_a_slower_device_draws_fewer_samples_inside_the_same_sampling_budget(nb, slowdown):
    """On a fake clock, the probe reads the pass time of the device; at the sized-for rate the whole N is drawn, four
    times slower the N shrinks (in multiples of 50) so that the passes still fit the budget."""
    clock = FakeClock(0.0)
    work = nb.SamplingWork(fixed=20_000, per_sample=200, n_max=1000, s_per_pass=1e-3)
    pass_s = nb.seconds_per_pass(lambda: setattr(clock, "now", clock.now + 500 * 1e-3 * slowdown), 500, clock=clock)
    assert pass_s == pytest.approx(1e-3 * slowdown)
    n = work.samples_within_budget(pass_s)
    assert (work.fixed + n * work.per_sample) * pass_s <= work.budget_s
    assert n == 1000 if slowdown == 1 else (100 <= n < 1000 and n % 50 == 0 and (work.fixed + (n + 50) * work.per_sample) * pass_s > work.budget_s)
    assert nb.SamplingWork(0, 200, 1000, None).samples_within_budget(1.0) == 1000  # no budget (smoke): always the whole N


@pytest.mark.parametrize("change", [{"sampler_steps": (10, 25, 100)}, {"fast_steps": 40}, {"n_eval": 10}])
def test_mismatched_settings_fail_when_the_configuration_is_built(nb, change):
    with pytest.raises(ValueError):
        dataclasses.replace(nb.PROFILES["cpu"], eval=dataclasses.replace(nb.PROFILES["cpu"].eval, **change))


class FakeClock:
    """perf_counter for the notebook: time moves only when a training step runs, by `per_step` seconds."""

    def __init__(self, per_step):
        self.now, self.per_step = 0.0, per_step

    def __call__(self):
        return self.now


def clocked_vae(nb, clock, images):
    model = nb.new_model(nb.ConvVAE, 2, 4, 8)

    def loss(x):
        clock.now += clock.per_step
        return nb.negative_elbo(model, x)
    return model, loss


@pytest.mark.parametrize("slowdown", [1, 4])
def test_the_cap_binds_on_the_sized_machine_and_the_budget_on_a_slower_one(nb, tmp_path, monkeypatch, slowdown):
    """Sized for 0.01 s/step with a 1,000-step cap: at that rate every step runs; four times slower, the re-planned run
    stops inside the same budget, with its learning rate decayed to the floor at its last step."""
    clock = FakeClock(0.01 * slowdown)
    monkeypatch.setattr(nb, "CKPT_DIR", tmp_path)
    monkeypatch.setattr(nb.time, "perf_counter", clock)
    images = torch.rand(64, 28, 28)
    model, loss = clocked_vae(nb, clock, images)
    train = nb.Train(1000, 16, 1e-3, s_per_step=0.01, lr_floor=0.1)
    _, info = nb.fit(f"clock{slowdown}", model, loss, (images,), train)
    assert info["seconds"] <= train.budget_s + 1e-9
    if slowdown == 1:
        assert info["steps"] == 1000
    else:
        assert 0.7 * train.budget_s / 0.04 <= info["steps"] < 1000
    assert info["history"]["lr"][-1] == pytest.approx(0.1 * 1e-3, rel=0.05)  # the schedule followed the plan to its end


def test_the_lr_schedule_warms_up_and_decays_to_its_floor(nb):
    f = [nb.lr_factor(i, 100, 0.1, 0.1) for i in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(b <= a + 1e-12 for a, b in zip(f[9:], f[10:]))


def fp16_run(nb, tmp_path, monkeypatch, steps, inf_at=()):
    monkeypatch.setattr(nb, "CKPT_DIR", tmp_path)
    monkeypatch.setattr(nb, "AMP_DTYPE", torch.float16)  # fit's GradScaler turns on with fp16
    diffusion = nb.Diffusion(nb.make_schedule("linear", 50), target="v", amp_dtype=torch.float16, clip=None)
    torch.manual_seed(0)
    model = CodeDenoiser(32)
    model.config = {"class": "CodeDenoiser"}
    calls = {"n": 0}

    def loss(x0):
        calls["n"] += 1
        terms = nb.diffusion_loss(diffusion, model)(x0)
        return {"loss": terms["loss"] * float("inf")} if calls["n"] in inf_at else terms

    train = nb.Train(steps, 8, 1e-2, lr_floor=1.0, grad_clip=1.0, ema=0.5, snapshots=1)  # constant lr; EMA decay 0.5 up to 20 steps
    return model, *nb.train_loop("fp16", model, loss, (torch.randn(64, 4),), train)


def test_fp16_with_a_scaler_skips_a_non_finite_step_and_the_ema_skips_it_too(nb, tmp_path, monkeypatch):
    model_a, ema_a, *_ = fp16_run(nb, tmp_path, monkeypatch, 6)
    model_b, ema_b, history, *_ = fp16_run(nb, tmp_path, monkeypatch, 7, inf_at={7})  # one more step, and it is inf
    for a, b in zip([*model_a.parameters(), *ema_a.parameters()], [*model_b.parameters(), *ema_b.parameters()]):
        assert torch.equal(a, b)  # the skipped step moved neither the weights nor their EMA
    _, _, history, *_ = fp16_run(nb, tmp_path, monkeypatch, 12, inf_at={3})
    assert history["step"][-1] == 12 and all(map(torch.isfinite, torch.tensor(history["loss"])))  # training went on
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        fp16_run(nb, tmp_path, monkeypatch, 12, inf_at=set(range(1, 13)))  # a whole logging window non-finite


@pytest.fixture
def vae_trainer(nb, tmp_path, monkeypatch):
    """train(**changes) -> (info, whether it trained a new checkpoint): a tiny VAE through the notebook's train_vae."""
    monkeypatch.setattr(nb, "CKPT_DIR", tmp_path)
    images = torch.rand(64, 28, 28)
    cfg = dataclasses.replace(nb.PROFILES["smoke"].vae, width=4, hidden=8)

    def train(data=images, cfg=cfg, **train_changes):
        before = set(tmp_path.glob("*.pt"))
        _, info = nb.train_vae("v", cfg, nb.Train(6, 16, 1e-3, **train_changes), data, latent_dim=2)
        return info, set(tmp_path.glob("*.pt")) != before
    return train


def test_the_same_training_loads_with_its_weights_and_a_changed_one_retrains(nb, vae_trainer):
    info, trained = vae_trainer()
    assert trained and not info["loaded"]
    info2, trained = vae_trainer()
    assert not trained and info2["loaded"] and info2["key"] == info["key"] and info2["steps"] == 6
    state = torch.load(info["path"], weights_only=True)
    model = nb.new_model(nb.ConvVAE, 2, 4, 8)
    model.load_state_dict(state["state"]["model"])  # the round trip: what was saved is a model's weights
    for change in ({"lr_floor": 0.1}, {"grad_clip": 1.0}, {"weight_decay": 1e-4}, {"s_per_step": 1.0}):
        assert vae_trainer(**change)[1], change
    assert vae_trainer(data=torch.rand(64, 28, 28))[1]  # other data


EDITED_LOSS = """
def negative_elbo(model, x):
    out, mu, logvar = model(x)
    rec, kl = model.nll(out, x), kl_to_standard_normal(mu, logvar).sum(1)
    return {"loss": rec + 0.5 * kl, "rec": rec, "kl": kl}
"""


def test_re_executing_an_edited_loss_retrains(nb, vae_trainer):
    """An edited function re-executed in the notebook's namespace, as a kernel runs an edited cell, changes the key."""
    vae_trainer()
    original = nb.negative_elbo
    exec(compile(EDITED_LOSS, "an edited cell", "exec"), nb.__dict__)
    try:
        assert vae_trainer()[1]
    finally:
        nb.negative_elbo = original
    assert not vae_trainer()[1]  # the original code again: its checkpoint loads


def test_a_changed_default_retrains(nb, tmp_path, monkeypatch):
    monkeypatch.setattr(nb, "CKPT_DIR", tmp_path)
    data = (torch.randn(32, 3),)

    def trains(width_default):
        class Probe(torch.nn.Module):
            def __init__(self, width=width_default):
                super().__init__()
                self.lin = torch.nn.Linear(3, width)

        before = set(tmp_path.iterdir())
        model = nb.new_model(Probe)  # the default is not passed: new_model binds it into the key
        nb.fit("probe", model, lambda x: {"loss": model.lin(x).pow(2).mean()}, data, nb.Train(3, 8, 1e-3))
        return set(tmp_path.iterdir()) != before

    assert trains(4) and not trains(4) and trains(5)


def test_a_changed_default_deeper_down_or_a_schedule_constant_changes_the_fingerprint_and_a_sampler_edit_does_not(nb, monkeypatch):
    """Defaults of functions the loss reaches and the schedule's numbers enter the key; sampling-only methods stay out."""
    def fingerprint():
        model = nb.new_model(nb.UNet, 8)
        return nb.code_fingerprint(nb.diffusion_loss(nb.Diffusion(nb.make_schedule("linear", 30), target="v"), model), nb.UNet, nb.train_loop)

    base = fingerprint()
    monkeypatch.setattr(nb.Diffusion, "sample", lambda self, *a, **k: None)  # an edited sampler
    assert fingerprint() == base
    monkeypatch.setattr(nb.Diffusion, "loss", lambda self, model, x0, t, noise: 0.0)  # an edited loss
    assert fingerprint() != base
    monkeypatch.undo()
    helper = "def _scaled(x, scale={}):\n    return x * scale\n\ndef _probe_loss(x):\n    return {{'loss': _scaled(x)}}\n"
    prints = []
    for scale in (1.0, 1.0, 2.0):  # the same cell twice, then with one default edited
        exec(compile(helper.format(scale), "an edited cell", "exec"), nb.__dict__)
        prints.append(nb.code_fingerprint(nb.__dict__["_probe_loss"]))
    assert prints[0] == prints[1] != prints[2]
    linear = nb.make_schedule("linear", 30)
    other = {**linear, "alpha_bar": linear["alpha_bar"] * 0.999}
    assert nb.Diffusion(linear).config != nb.Diffusion(other).config


def test_a_checkpoint_that_fails_half_way_through_loading_leaves_the_model_untouched(nb, vae_trainer):
    """A broken checkpoint retrains from the model's own initial weights, not from what half a load left in it."""
    info, _ = vae_trainer()
    clean = torch.load(info["path"], weights_only=True)
    broken = {**clean, "state": {**clean["state"], "sampled": {"no such weight": torch.zeros(1)}}}
    torch.save(broken, info["path"])
    info2, _ = vae_trainer()
    again = torch.load(info2["path"], weights_only=True)["state"]["model"]
    assert all(torch.equal(again[k], clean["state"]["model"][k]) for k in again)  # the same weights as the first training


def test_a_corrupt_checkpoint_retrains_and_says_so(nb, vae_trainer, capsys):
    info, _ = vae_trainer()
    with open(info["path"], "r+b") as f:
        f.truncate(100)
    capsys.readouterr()
    info2, trained = vae_trainer()
    assert trained is False and not info2["loaded"]  # the same key: the file was rewritten in place
    assert "did not load" in capsys.readouterr().out
    assert torch.load(info2["path"], weights_only=True)["info"]["steps"] == 6


def test_a_training_stopped_by_its_budget_says_so_when_loaded(nb, tmp_path, monkeypatch, capsys):
    clock = FakeClock(0.05)
    monkeypatch.setattr(nb, "CKPT_DIR", tmp_path)
    monkeypatch.setattr(nb.time, "perf_counter", clock)
    images = torch.rand(64, 28, 28)
    train = nb.Train(400, 16, 1e-3, s_per_step=0.01)
    model, loss = clocked_vae(nb, clock, images)
    nb.fit("short", model, loss, (images,), train)
    model, loss = clocked_vae(nb, clock, images)
    capsys.readouterr()
    _, info = nb.fit("short", model, loss, (images,), train)
    assert info["loaded"] and info["steps"] < 400 and "short of the 400-step cap" in capsys.readouterr().out


def test_scoring_settings_never_enter_a_training(nb, vae_trainer):
    """fit() takes no evaluation setting: a profile with another sample batch or N trains and loads the same keys."""
    import inspect

    assert not {"ref", "n_curve", "n_eval", "sample_batch", "classifier"} & set(inspect.signature(nb.fit).parameters)
    assert len(inspect.signature(nb.fit).parameters) <= 6
    cpu = nb.PROFILES["cpu"]
    other = dataclasses.replace(cpu, eval=dataclasses.replace(cpu.eval, sample_batch=7, n_curve=20))
    assert nb.training_budgets(other) == nb.training_budgets(cpu)


def test_the_code_fingerprint_is_the_same_in_another_process(nb, tmp_path):
    """A new kernel (another hash seed, other file names) gives the same fingerprint, so checkpoints load across runs."""
    import os
    import subprocess
    import sys

    script = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); from notebook_defs import load_notebook; "
              "nb = load_notebook('smoke'); print(nb.code_fingerprint(nb.train_loop, nb.UNet, nb.diffusion_loss))")
    prints = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout.split()[-1] for seed in ("1", "2")}
    assert len(prints) == 1


def test_a_corrupt_mnist_file_is_deleted_and_leaves_no_partial_file(nb, tmp_path, capsys):
    gz = tmp_path / "train-images-idx3-ubyte.gz"
    whole = gzip.compress(bytes(range(256)) * 400 + torch.randint(0, 256, (50_000,), dtype=torch.uint8).numpy().tobytes())
    gz.write_bytes(whole[: len(whole) // 2])  # truncated half-way
    nb.decompress(gz, tmp_path / "train-images-idx3-ubyte")
    assert list(tmp_path.iterdir()) == [] and "is corrupt" in capsys.readouterr().out
