"""The profiles and their precision; the training loop (fixed steps, its schedule, EMA and fp16 scaler, determinism,
progress bars); checkpoints keyed by configuration, and what happens when one is stale or broken."""
import dataclasses
import gzip
import inspect

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


def test_every_profile_has_a_wait_forecast_and_its_chain_lengths(nb):
    for name in nb.PROFILES:
        forecast = nb.WAIT_FORECAST[name]
        assert forecast and all(isinstance(machine, str) and minutes > 0 and how for machine, minutes, how in forecast), name
    assert nb.PROFILES["cpu"].ddpm.chain_T == nb.PROFILES["smoke"].ddpm.chain_T == (25, 50, 100)
    assert nb.PROFILES["gpu"].ddpm.chain_T == (100, 250, 1000) and nb.PROFILES["gpu"].ddpm.T == 1000
    for cfg in nb.PROFILES.values():  # 2(b)'s chain study includes the main model's T, and the linear schedule needs T > 20
        assert cfg.ddpm.T in cfg.ddpm.chain_T and min(cfg.ddpm.chain_T) > 20


@pytest.mark.parametrize("change", [{"sampler_steps": (10, 25, 100)}, {"fast_steps": 40}, {"n_eval": 10}])
def test_mismatched_settings_fail_when_the_configuration_is_built(nb, change):
    with pytest.raises(ValueError):
        dataclasses.replace(nb.PROFILES["cpu"], eval=dataclasses.replace(nb.PROFILES["cpu"].eval, **change))


def test_the_lr_schedule_warms_up_and_decays_to_its_floor(nb):
    f = [nb.lr_factor(i, 100, 0.1, 0.1) for i in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(b <= a + 1e-12 for a, b in zip(f[9:], f[10:]))


def tiny_vae_run(nb, train, images):
    """train_loop on a tiny ConvVAE, its initial weights and the loop's random draws both seeded."""
    model = nb.new_model(nb.ConvVAE, 2, 4, 8)
    nb.seed_everything(0)
    return model, *nb.train_loop("tiny", model, lambda x: nb.negative_elbo(model, x), (images,), train)


class RunawayClock:
    """perf_counter for the notebook that jumps an hour at every reading: a machine slower than any the profile knows."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 3600.0
        return self.now


def test_the_schedule_and_the_ema_depend_on_the_step_count_alone(nb, monkeypatch):
    """The same steps twice give the same weights, EMA and learning rates, on a clock that reads an hour per step too:
    every step runs (no budget stops a slow machine) and the learning rate ends at its floor."""
    images = torch.rand(64, 28, 28)
    train = nb.Train(12, 16, 1e-3, warmup=0.2, lr_floor=0.1, grad_clip=1.0, ema=0.9, snapshots=3)
    runs = [tiny_vae_run(nb, train, images)]
    monkeypatch.setattr(nb.time, "perf_counter", RunawayClock())
    runs.append(tiny_vae_run(nb, train, images))
    (model_a, ema_a, history_a, _, snaps_a), (model_b, ema_b, history_b, seconds_b, snaps_b) = runs
    assert ema_a is not model_a  # train.ema: the sampled copy is the EMA
    for a, b in zip([*model_a.state_dict().values(), *ema_a.state_dict().values()], [*model_b.state_dict().values(), *ema_b.state_dict().values()]):
        assert torch.equal(a, b)
    assert history_a == history_b and history_b["step"][-1] == 12 and seconds_b > 3600
    assert history_b["lr"][-1] == pytest.approx(0.1 * 1e-3)  # decayed to the floor at the last of its fixed steps
    assert [s for s, _, _ in snaps_a] == [s for s, _, _ in snaps_b] == nb.snapshot_steps(12, 3)
    assert all(torch.equal(snaps_a[i][2][k], snaps_b[i][2][k]) for i in range(len(snaps_a)) for k in snaps_a[i][2])


def fp16_run(nb, steps, inf_at=()):
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
    return model, *nb.train_loop("fp16", model, loss, (torch.randn(64, 4),), train, fp16=True)


def test_fp16_with_a_scaler_skips_a_non_finite_step_and_the_ema_skips_it_too(nb):
    model_a, ema_a, *_ = fp16_run(nb, 6)
    model_b, ema_b, history, *_ = fp16_run(nb, 7, inf_at={7})  # one more step, and it is inf
    for a, b in zip([*model_a.parameters(), *ema_a.parameters()], [*model_b.parameters(), *ema_b.parameters()]):
        assert torch.equal(a, b)  # the skipped step moved neither the weights nor their EMA
    _, _, history, *_ = fp16_run(nb, 12, inf_at={3})
    assert history["step"][-1] == 12 and all(map(torch.isfinite, torch.tensor(history["loss"])))  # training went on
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        fp16_run(nb, 12, inf_at=set(range(1, 13)))  # a whole logging window non-finite


@pytest.mark.parametrize("amp,scaler", [(torch.float16, True), (torch.bfloat16, False), (torch.float32, False)])
def test_fit_turns_the_gradient_scaler_on_for_fp16_alone(nb, tmp_path, monkeypatch, amp, scaler):
    """The diffusion's precision travels in its config, the loss's settings fit receives; fp16 alone needs the scaler."""
    monkeypatch.setattr(nb, "CKPT_DIR", tmp_path)
    seen, loop = [], nb.train_loop
    monkeypatch.setattr(nb, "train_loop", lambda *args, fp16=False: seen.append(fp16) or loop(*args, fp16=fp16))
    diffusion = nb.Diffusion(nb.make_schedule("linear", 30), target="v", amp_dtype=amp, clip=None)
    torch.manual_seed(0)
    model = CodeDenoiser(8)
    model.config = {"class": "CodeDenoiser"}
    nb.fit("amp", model, nb.diffusion_loss(diffusion, model), (torch.randn(32, 4),), nb.Train(2, 8, 1e-3), diffusion.config)
    assert seen == [scaler]


@pytest.fixture
def vae_trainer(nb, tmp_path, monkeypatch):
    """train(**changes) -> (model, info, whether it trained a new checkpoint): a tiny VAE through the notebook's train_vae,
    with Train(6, 16, 1e-3) changed by `changes`; fit's METRICS is a fresh one."""
    monkeypatch.setattr(nb, "CKPT_DIR", tmp_path)
    monkeypatch.setattr(nb, "METRICS", {"trainings": {}})
    images = torch.rand(64, 28, 28)
    cfg = dataclasses.replace(nb.PROFILES["smoke"].vae, width=4, hidden=8)

    def train(data=images, cfg=cfg, **train_changes):
        before = set(tmp_path.glob("*.pt"))
        model, info = nb.train_vae("v", cfg, dataclasses.replace(nb.Train(6, 16, 1e-3), **train_changes), data, latent_dim=2)
        return model, info, set(tmp_path.glob("*.pt")) != before
    return train


def test_the_same_training_loads_with_its_weights_and_a_changed_one_retrains(nb, vae_trainer, monkeypatch):
    model, info, trained = vae_trainer()
    assert trained and not info["loaded"] and info["steps"] == 6 and info["history"]["step"][-1] == 6
    record = nb.METRICS["trainings"]["v"]  # fit records every training itself
    assert set(record) == {"name", "steps", "seconds", "s_per_step", "batch", "loaded", "key"} and record["loaded"] is False
    loaded, info2, trained = vae_trainer()
    assert not trained and info2["loaded"] and info2["key"] == info["key"] and info2["steps"] == 6
    assert nb.METRICS["trainings"]["v"]["loaded"] is True and nb.METRICS["trainings"]["v"]["key"] == info["key"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))  # the round trip
    for change in ({"lr_floor": 0.1}, {"grad_clip": 1.0}, {"weight_decay": 1e-4}, {"ema": 0.9}, {"steps": 7}, {"batch": 8}):
        assert vae_trainer(**change)[2], change
    assert vae_trainer(data=torch.rand(64, 28, 28))[2]  # other data
    assert vae_trainer(cfg=dataclasses.replace(nb.PROFILES["smoke"].vae, width=8, hidden=8))[2]  # another model
    monkeypatch.setattr(nb, "SEED", 1)
    assert vae_trainer()[2]  # another seed


def test_a_changed_loss_config_retrains_and_the_same_one_loads(nb, tmp_path, monkeypatch):
    """What the loss is set to enters the key: the diffusion's target, schedule, schedule constants and precision, or a
    classifier's label smoothing. The clip of x0-hat only changes sampling and stays out."""
    monkeypatch.setattr(nb, "CKPT_DIR", tmp_path)
    data, unet, train = torch.rand(16, 1, 28, 28) * 2 - 1, nb.UNetArgs(ch=8, mults=(1, 2)), nb.Train(2, 4, 1e-3)
    linear = nb.make_schedule("linear", 30)

    def trains(**diffusion_args):
        before = set(tmp_path.glob("*.pt"))
        model, info = nb.train_diffusion("d", unet, nb.Diffusion(**{"schedule": linear, "target": "v", **diffusion_args}), data, train)
        assert info["loaded"] == (set(tmp_path.glob("*.pt")) == before)
        return not info["loaded"]

    assert trains() and not trains() and not trains(clip=0.5)
    assert trains(target="eps") and not trains(target="eps")
    assert trains(schedule=nb.make_schedule("cosine", 30)) and trains(amp_dtype=torch.bfloat16)
    assert trains(schedule={**linear, "alpha_bar": linear["alpha_bar"] * 0.999})  # the same name and T, other constants

    def smoothing(value):
        before = set(tmp_path.glob("*.pt"))
        model = nb.new_model(torch.nn.Linear, 3, 2)
        loss = lambda x, y: {"loss": torch.nn.functional.cross_entropy(model(x), y, label_smoothing=value)}  # noqa: E731
        nb.fit("clf", model, loss, (torch.randn(32, 3), torch.randint(0, 2, (32,))), train, {"label_smoothing": value})
        return set(tmp_path.glob("*.pt")) != before

    assert smoothing(0.05) and not smoothing(0.05) and smoothing(0.1)


def test_train_diffusion_builds_the_unet_its_args_describe(nb, tmp_path, monkeypatch):
    monkeypatch.setattr(nb, "CKPT_DIR", tmp_path)
    args = nb.UNetArgs(ch=8, mults=(1, 2), attn_levels=(1,), dropout=0.2)
    model, info = nb.train_diffusion("u", args, nb.Diffusion(nb.make_schedule("linear", 30)), torch.zeros(8, 1, 28, 28), nb.Train(1, 4, 1e-3))
    reference = nb.UNet(**dataclasses.asdict(args))
    assert [tuple(p.shape) for p in model.parameters()] == [tuple(p.shape) for p in reference.parameters()]
    assert {k: model.config[k] for k in ("ch", "mults", "attn_levels", "dropout")} == dataclasses.asdict(args) and info["steps"] == 1


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
        nb.fit("probe", model, lambda x: {"loss": model.lin(x).pow(2).mean()}, data, nb.Train(3, 8, 1e-3), {})
        return set(tmp_path.iterdir()) != before

    assert trains(4) and not trains(4) and trains(5)


def test_a_checkpoint_that_fails_half_way_through_loading_leaves_the_model_untouched(nb, vae_trainer):
    """A broken checkpoint retrains from the model's own initial weights, not from what half a load left in it."""
    _, info, _ = vae_trainer()
    clean = torch.load(info["path"], weights_only=True)
    broken = {**clean, "state": {**clean["state"], "sampled": {"no such weight": torch.zeros(1)}}}
    torch.save(broken, info["path"])
    _, info2, _ = vae_trainer()
    again = torch.load(info2["path"], weights_only=True)["state"]["model"]
    assert all(torch.equal(again[k], clean["state"]["model"][k]) for k in again)  # the same weights as the first training


def test_a_corrupt_checkpoint_retrains_and_says_so(nb, vae_trainer, capsys):
    _, info, _ = vae_trainer()
    with open(info["path"], "r+b") as f:
        f.truncate(100)
    capsys.readouterr()
    _, info2, trained = vae_trainer()
    assert trained is False and not info2["loaded"]  # the same key: the file was rewritten in place
    assert "did not load" in capsys.readouterr().out
    assert torch.load(info2["path"], weights_only=True)["info"]["steps"] == 6


@pytest.mark.parametrize("family", ["vae", "ddpm"])
def test_the_same_training_twice_gives_bit_identical_weights_history_and_scores(nb, tmp_path, monkeypatch, family):
    """Two fresh trainings of one configuration (two checkpoint folders, one thread) agree to the bit: weights, EMA,
    snapshots, history and the scores computed from them."""
    images = torch.rand(64, 28, 28)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = []
        for i in range(2):
            monkeypatch.setattr(nb, "CKPT_DIR", tmp_path / str(i))
            if family == "vae":
                cfg = dataclasses.replace(nb.PROFILES["smoke"].vae, width=4, hidden=8)
                model, info = nb.train_vae("same", cfg, nb.Train(8, 16, 1e-3, warmup=0.2, grad_clip=1.0, snapshots=3), images, latent_dim=2)
                torch.manual_seed(5)
                score = nb.vae_test_terms(model, images[:20], batch=7)
            else:
                diffusion = nb.Diffusion(nb.make_schedule("linear", 30), target="v")
                train = nb.Train(4, 8, 2e-3, warmup=0.25, lr_floor=0.1, grad_clip=1.0, ema=0.9)
                model, info = nb.train_diffusion("same", nb.UNetArgs(ch=8, mults=(1, 2)), diffusion, images.unsqueeze(1) * 2 - 1, train)
                score = {"images": nb.DiffusionSampler(model, diffusion, 5, "ddim", batch=4)(6, 3)}
            assert not info["loaded"]
            runs.append((model.state_dict(), info, torch.load(info["path"], weights_only=True), score))
    finally:
        torch.set_num_threads(threads)
    (state_a, info_a, ckpt_a, score_a), (state_b, info_b, ckpt_b, score_b) = runs
    assert info_a["key"] == info_b["key"] and info_a["history"] == info_b["history"]
    assert state_a.keys() == state_b.keys() and all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    for part in ("model", "sampled"):
        assert all(torch.equal(ckpt_a["state"][part][k], ckpt_b["state"][part][k]) for k in ckpt_a["state"][part])
    assert len(ckpt_a["snapshots"]) == len(ckpt_b["snapshots"]) > 0
    assert all(torch.equal(a[k], b[k]) for a, b in zip(ckpt_a["snapshots"], ckpt_b["snapshots"]) for k in a)
    assert score_a.keys() == score_b.keys() and all(torch.equal(score_a[k], score_b[k]) for k in score_a)


def test_the_checkpoint_key_is_the_same_in_another_process(nb, tmp_path):
    """A new kernel (another hash seed) gives the same key, so checkpoints load across runs."""
    import os
    import subprocess
    import sys

    script = (f"import sys, torch; sys.path.insert(0, {os.path.dirname(__file__)!r}); from notebook_defs import load_notebook; "
              "nb = load_notebook('smoke'); nb.CKPT_DIR = nb.Path(sys.argv[1]); "
              "_, info = nb.train_diffusion('k', nb.UNetArgs(ch=8, mults=(1, 2)), nb.Diffusion(nb.make_schedule('linear', 30), target='v'), "
              "torch.zeros(8, 1, 28, 28), nb.Train(1, 4, 1e-3)); print(info['key'])")
    keys = {subprocess.run([sys.executable, "-c", script, str(tmp_path / seed)], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                           env={**os.environ, "PYTHONHASHSEED": seed, "HW2_BARS": "0", "OMP_NUM_THREADS": "1"}).stdout.split()[-1]
            for seed in ("1", "2")}
    assert len(keys) == 1 and keys.pop().startswith("k-")


def test_scoring_settings_never_enter_a_training(nb):
    """fit() takes no evaluation setting: its key is made of the training, the model, the loss's settings, the data and
    the seed, so a profile with another sample batch or N trains and loads the same keys."""
    params = list(inspect.signature(nb.fit).parameters)
    assert params == ["name", "model", "loss_fn", "data", "train", "loss_config"]
    assert not {f.name for f in dataclasses.fields(nb.Train)} & {f.name for f in dataclasses.fields(nb.EvalConfig)} - {"clf"}


def test_progress_bars_show_only_when_turned_on(nb, capsys, monkeypatch):
    """A bar with its count goes to stderr while BARS is on (HW2_BARS unset or not '0'); with it off nothing is written,
    by a bare loop or by a training."""
    train = nb.Train(3, 16, 1e-3)
    for bars in (True, False):
        monkeypatch.setattr(nb, "BARS", bars)
        capsys.readouterr()
        for _ in nb.progress(range(50), "x"):
            pass
        tiny_vae_run(nb, train, torch.rand(32, 28, 28))
        err = capsys.readouterr().err
        if bars:
            assert "x:" in err and "%|" in err and "/50" in err and "training tiny" in err
        else:
            assert err == ""


def test_section_times_add_a_section_that_began_twice(nb, monkeypatch):
    clock = iter([10.0, 30.0, 35.0, 50.0])
    monkeypatch.setattr(nb.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(nb, "SECTION_STARTS", [("setup and data", 0.0)])
    for name in ("a", "b", "a"):  # at 10, 30 and 35 s; read at 50 s
        nb.start_section(name)
    assert nb.seconds_by_section() == {"setup and data": 10.0, "a": 20.0 + 15.0, "b": 5.0}


def test_a_corrupt_mnist_file_is_deleted_and_leaves_no_partial_file(nb, tmp_path, capsys):
    gz = tmp_path / "train-images-idx3-ubyte.gz"
    whole = gzip.compress(bytes(range(256)) * 400 + torch.randint(0, 256, (50_000,), dtype=torch.uint8).numpy().tobytes())
    gz.write_bytes(whole[: len(whole) // 2])  # truncated half-way
    nb.decompress(gz, tmp_path / "train-images-idx3-ubyte")
    assert list(tmp_path.iterdir()) == [] and "is corrupt" in capsys.readouterr().out
