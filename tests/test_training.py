"""Training for a seconds budget, the profiles and their precision, and plain checkpoints keyed by what makes the weights."""
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

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


def test_profiles_are_diffs_of_the_cpu_base_and_only_smoke_is_fixed(nb):
    assert set(nb.PROFILES) == {"cpu", "smoke", "gpu"}
    for name, cfg in nb.PROFILES.items():
        budgets = nb.training_budgets(cfg)
        assert {"classifier", "vae", "ddpm", "vae_gaussian256"} <= set(budgets)
        fixed = [t.budget_s is None for t in budgets.values()]
        assert all(fixed) if name == "smoke" else not any(fixed), name  # CI is deterministic; the rest are sized by seconds
    cpu = nb.PROFILES["cpu"]
    assert sum(t.budget_s for t in nb.training_budgets(cpu).values()) + cpu.other_s <= 3600  # the 60 min a CPU run promises
    gpu = nb.PROFILES["gpu"]
    assert sum(t.budget_s for t in nb.training_budgets(gpu).values()) + gpu.other_s <= 1200  # the 20 min on any Colab GPU


def test_a_slower_machine_trains_fewer_steps_in_the_same_budget_with_its_schedule_sized_to_them(nb, tmp_path, monkeypatch):
    monkeypatch.setattr(nb, "CKPT_DIR", tmp_path)
    images = torch.rand(256, 28, 28)
    planned = {}
    for delay in (0.0, 0.02):
        sizes = []
        real = nb.vae_step(images, 1e-3)

        def make(modules, n_steps, delay=delay, real=real, sizes=sizes):
            sizes.append(n_steps)
            step = real(modules, n_steps)
            return lambda idx, i: (time.sleep(delay), step(idx, i))[1]

        model = nb.new_model(nb.ConvVAE, 2, 4, 8)
        info = nb.fit(f"slow{delay}", {"model": model}, make, nb.Train(1.0, 10_000, 16, 1e-3), len(images), recipe={}, retrain=True)
        assert sizes[-1] == info["steps"] == info["planned_steps"]  # the optimiser's schedule was built for the planned steps
        assert info["steps"] < 10_000 and info["probe_s_per_step"] >= delay
        planned[delay] = info["steps"]
    assert planned[0.02] < planned[0.0] / 2 and planned[0.02] <= 1.0 / 0.02  # at most budget / per-step seconds
    # the cap wins when the machine is fast enough
    info = nb.fit("capped", {"model": nb.new_model(nb.ConvVAE, 2, 4, 8)}, nb.vae_step(images, 1e-3), nb.Train(30.0, 5, 16, 1e-3),
                  len(images), recipe={}, retrain=True)
    assert info["steps"] == 5


def test_the_schedules_span_exactly_the_planned_steps(nb):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = nb.warmup_cosine(opt, 100, warmup=10)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1, abs=1e-3)
    # the EMA of a 40-step run decays at 1 - 10/40 = 0.75 (not the configured 0.999): it averages its last tenth or so
    model = nb.LatentDenoiser(2, 8, 1)
    modules = {"model": model, "ema": nb.copy.deepcopy(model)}
    start = [p.detach().clone() for p in model.parameters()]
    step = nb.diffusion_step(nb.Diffusion(nb.make_schedule("linear", 50), clip=None), torch.randn(32, 2), 1e-2, 0.0, 0.999)(modules, 40)
    step(torch.arange(16), 10**6)  # far past the warm-up: the decay is the run's cap
    for p0, p, e in zip(start, model.parameters(), modules["ema"].parameters()):
        assert torch.allclose(e, 0.75 * p0 + 0.25 * p.detach(), atol=1e-6)


BUDGET_SCRIPT = """
import os, sys, time, torch
sys.path.insert(0, {tests!r})
os.chdir({work!r})
from notebook_defs import load_notebook
nb = load_notebook("smoke")
nb.CKPT_DIR = nb.Path({work!r}) / "ckpt"
torch.manual_seed(0)
x = nb.to_signed(torch.rand(512, 28, 28))
diffusion = nb.Diffusion(nb.make_schedule("linear", 50), target="v")
model = nb.new_model(nb.UNet, 8)
t0 = time.perf_counter()
info = nb.fit("budget", {{"model": model, "ema": nb.copy.deepcopy(model)}}, nb.diffusion_step(diffusion, x, 2e-3, 0.1, 0.999),
              nb.Train({budget}, 100_000, 16, 2e-3), len(x), recipe={{}}, sampled="ema", retrain=True)
print("RESULT", info["steps"], info["seconds"], info["probe_s_per_step"], time.perf_counter() - t0)
"""


def run_budget(tmp_path, budget, cpus=None):
    script = BUDGET_SCRIPT.format(tests=os.path.dirname(__file__), work=str(tmp_path), budget=budget)
    cmd = ([shutil.which("taskset"), "-c", cpus] if cpus else []) + [sys.executable, "-c", script]
    env = {**os.environ, **({"OMP_NUM_THREADS": "1"} if cpus == "0" else {})}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    steps, seconds, per_step, _ = map(float, out.stdout.split("RESULT")[1].split())
    return steps, seconds, per_step


@pytest.mark.parametrize("cpus", ["0", None], ids=["1 core", "all cores"])
def test_a_smoke_sized_run_with_a_budget_finishes_inside_it(nb, tmp_path, cpus):
    """A U-Net of the smoke profile trained for a 10-second budget: its optimiser steps take at most 10% more than the
    budget, on one core (taskset -c 0) and on all; printed, the steps each machine fit in."""
    if cpus and not shutil.which("taskset"):
        pytest.skip("no taskset on this machine")
    steps, seconds, per_step = run_budget(tmp_path, 10.0, cpus)
    print(f"{'1 core' if cpus else 'all cores'}: {steps:.0f} steps planned at {per_step:.4f} s/step, {seconds:.2f} s used of 10 s")
    assert steps > 10 and seconds <= 10.0 * 1.10


def test_checkpoints_are_plain_dicts_keyed_by_what_makes_the_weights(nb, tmp_path, monkeypatch):
    """A checkpoint holds state_dicts, the key, the info and the snapshots, loadable with weights_only=True. Train the same
    thing twice and the second loads; change the model, the loss, the schedule, the optimiser, the data or the upstream
    model and it trains again."""
    monkeypatch.setattr(nb, "CKPT_DIR", tmp_path)
    codes = torch.randn(64, 4)

    def trains(width=16, target="eps", schedule="linear", lr=1e-3, data=codes, upstream="vae-a"):
        before = set(tmp_path.iterdir())
        diffusion = nb.Diffusion(nb.make_schedule(schedule, 30), target=target, clip=None)
        nb.train_diffusion("ld", nb.new_model(nb.LatentDenoiser, 4, width, 1), diffusion, data, nb.Train(None, 3, 16, lr), 0.1, 0.9,
                           upstream=upstream, n_snapshots=2)
        return len(set(tmp_path.iterdir()) - before) == 1

    assert trains() and not trains()
    for change in ({"width": 8}, {"target": "v"}, {"schedule": "cosine"}, {"lr": 2e-3}, {"data": torch.randn(80, 4)}, {"upstream": "vae-b"}):
        assert trains(**change), change
    ckpt = torch.load(next(tmp_path.iterdir()), weights_only=True)
    assert set(ckpt) == {"key", "info", "state", "snapshots"} and set(ckpt["state"]) == {"model", "ema"}
    assert len(ckpt["snapshots"]) == len(ckpt["info"]["snapshots"]) == 2


def test_scoring_settings_are_not_in_the_key(nb, tmp_path, monkeypatch):
    """How a model is scored (sample counts, the classifier, the snapshot scoring) never enters fit(): it takes no
    evaluation argument, so changing an evaluation setting re-scores the loaded model."""
    import inspect

    monkeypatch.setattr(nb, "CKPT_DIR", tmp_path)
    assert not {"ref", "n_curve", "n_eval", "classifier"} & set(inspect.signature(nb.fit).parameters)
    images = torch.rand(64, 28, 28)
    cfg = nb.PROFILES["smoke"].vae
    first = nb.train_vae("v", cfg, cfg.small, images)[1]
    second = nb.train_vae("v", cfg, cfg.small, images)[1]
    assert first["key"] == second["key"]
    snaps = nb.load_snapshots(second, nb.new_model(nb.ConvVAE, cfg.latent_dim, cfg.width, cfg.hidden, "bernoulli"))
    assert [s["step"] for s in snaps] == [s["step"] for s in first["snapshots"]]
