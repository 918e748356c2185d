"""Which DDPM recipe learns MNIST digits fastest per CPU second? (a benchmark, not a test)

Trains short runs of candidate recipes with the notebook's own U-Net, loss, EMA and samplers, each for
the same wall-clock budget of training (the step count is the budget divided by the recipe's own
measured seconds per step, timed for all candidates first, before anything else runs), and scores the
EMA model halfway and at the end with the notebook's evaluate() on N samples drawn by DDIM (25 steps):
FID against the real floor at the same N, the fraction of confidently classified samples, and the KL of
the class histogram to uniform. One factor changes at a time from a baseline: width, where attention
sits, batch, learning rate, EMA decay, the target (eps or v), the loss weighting (min-SNR-5) and T.

Usage: python3 scripts/bench_ddpm_recipe.py [--budget SECONDS]   (default 150; about 10 x (budget + 25) s)
       python3 scripts/bench_ddpm_recipe.py --dry-run   (two recipes, 2-s budget, smoke classifier; writes nothing)
Writes benchmarks/ddpm_recipe_cpu.md (the table) and benchmarks/ddpm_recipe_cpu.json (everything).
"""
import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from notebook_defs import load_notebook  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--budget", type=float, default=150.0, help="training seconds per recipe")
parser.add_argument("--dry-run", action="store_true", help="two recipes, 2 s each, a smoke-sized yardstick; writes nothing")
ARGS = parser.parse_args()
BUDGET = 2.0 if ARGS.dry_run else ARGS.budget
N_EVAL, DDIM_STEPS, N_DATA = (32, 5, 4000) if ARGS.dry_run else (250, 25, 60000)
BASE = {"width": 16, "attn": (2,), "batch": 64, "lr": 2e-3, "warmup": 100, "ema": 0.995, "target": "eps",
        "min_snr": None, "T": 1000}
CANDIDATES = {
    "earlier cpu profile (w8, EMA 0.999)": {"width": 8, "ema": 0.999, "warmup": None},
    "w8": {"width": 8},
    "baseline: w16, b64, lr 2e-3, EMA 0.995, eps, T 1000": {},
    "v-prediction": {"target": "v"},
    "min-SNR-5 weighting": {"min_snr": 5.0},
    "batch 128": {"batch": 128},
    "lr 4e-3": {"lr": 4e-3},
    "T 250": {"T": 250},
    "no attention at 7x7 (middle only)": {"attn": ()},
    "w24": {"width": 24},
}

if ARGS.dry_run:
    CANDIDATES = {k: CANDIDATES[k] for k in ("w8", "v-prediction")}
    BASE = {**BASE, "width": 8}
nb = load_notebook("smoke" if ARGS.dry_run else "cpu")
dev = nb.DEVICE
if ARGS.dry_run:
    nb.CKPT_DIR = Path(tempfile.mkdtemp())  # a dry run leaves no checkpoint behind
mnist = nb.load_mnist(str(ROOT / "data"), dev)
(X, Y), (X_TEST, _) = mnist["train"], mnist["test"]
X, Y = X[:N_DATA], Y[:N_DATA]
DATA = nb.to_signed(X)


def build(r, n_steps):
    """The notebook's diffusion and training step (diffusion_trainer) for recipe r, in fp32 as this benchmark ran;
    the model seeded, so every run starts alike. Returns (EMA model, diffusion, step)."""
    model = nb.new_model(nb.UNet, 0, r["width"], attn_levels=r["attn"])
    warmup = min(500, n_steps // 10) if r["warmup"] is None else r["warmup"]
    diffusion = nb.Diffusion(nb.make_schedule("linear", r["T"]), target=r["target"], min_snr_gamma=r["min_snr"])
    step, ema = nb.diffusion_trainer(model, diffusion, DATA, n_steps=n_steps, lr=r["lr"], warmup=warmup / n_steps, ema=r["ema"])
    return ema, diffusion, step


def seconds_per_step(r, reps=10):
    _, _, step = build(r, 100)
    step(torch.randint(0, N_DATA, (r["batch"],), device=dev), 1)
    return nb.time_call(lambda: step(torch.randint(0, N_DATA, (r["batch"],), device=dev), 1), reps)


def cost_key(r):
    """What sets a step's cost: recipes that differ only in target, weighting, lr, EMA or T share one timing
    (and so train for the same number of steps), which keeps timing noise out of their comparison."""
    return r["width"], tuple(r["attn"]), r["batch"]


recipes = {name: {**BASE, **over} for name, over in CANDIDATES.items()}
timings = {}
for r in recipes.values():  # timed first, on an idle machine
    if cost_key(r) not in timings:
        timings[cost_key(r)] = seconds_per_step(r, reps=2 if ARGS.dry_run else 10)
speed = {name: timings[cost_key(r)] for name, r in recipes.items()}
for name, s in speed.items():
    print(f"{name:55s} {s * 1e3:7.1f} ms/step  {recipes[name]['batch'] / s:6.0f} img/s", flush=True)

clf, _ = nb.train_classifier(nb.Run("classifier", steps=(1 if ARGS.dry_run else 2) * (N_DATA // 128), batch=128, seed=0),
                             nb.new_model(nb.DigitClassifier, 0), (X, Y), lr=nb.CLF_LR, label_smoothing=nb.CLF_LABEL_SMOOTHING,
                             max_shift=nb.CLF_MAX_SHIFT)
ref = nb.build_reference(clf, X_TEST, X, n_memo=N_EVAL)
nb.seed_everything(0)
floor = nb.evaluate(X[torch.randperm(N_DATA, device=dev)[:N_EVAL]], ref)
KEYS = ("fid", "confident_frac", "class_kl_uniform", "precision", "recall", "coverage")
print("real floor at N=%d: " % N_EVAL + ", ".join(f"{k} {floor[k]:.3f}" for k in KEYS), flush=True)


def quality(ema, diffusion):
    images = nb.DiffusionSampler(ema, diffusion, DDIM_STEPS, "ddim", batch=N_EVAL)(N_EVAL, 1)
    m = nb.evaluate_u8(images, ref)
    return {k: m[k] for k in KEYS}


out = ROOT / "benchmarks"
meta = {"budget_seconds": BUDGET, "n_eval": N_EVAL, "ddim_steps": DDIM_STEPS, "floor": {k: floor[k] for k in KEYS},
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads", "torch": torch.__version__}
results = {}
for name, r in recipes.items():
    n_steps = max(20, int(BUDGET / speed[name]))
    ema, diffusion, step = build(r, n_steps)
    points = []

    def on_checkpoint(i, seconds, ema=ema, diffusion=diffusion, r=r, points=points):
        points.append({"step": i, "images_seen": i * r["batch"], "train_seconds": seconds, **quality(ema, diffusion)})

    t0 = time.perf_counter()
    hist, secs = nb.train_loop(step, N_DATA, n_steps, r["batch"], name[:20], log_every=max(1, n_steps // 10),
                                  checkpoints={n_steps // 2, n_steps}, on_checkpoint=on_checkpoint)
    results[name] = {"recipe": {k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()},
                     "sec_per_step": speed[name], "n_steps": n_steps, "train_seconds": secs, "final_loss": hist["loss"][-1],
                     "points": points, "wall_seconds": time.perf_counter() - t0}
    print(f"{name:55s} {n_steps:5d} steps in {secs:6.1f} s | " + " | ".join(
        f"{p['images_seen'] // 1000}k img: FID {p['fid']:7.1f} conf {p['confident_frac']:.2f} KL {p['class_kl_uniform']:.3f}"
        for p in points), flush=True)
    if not ARGS.dry_run:
        (out / "ddpm_recipe_cpu.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))  # after every run

lines = [f"# DDPM recipes on the CPU: {BUDGET:.0f} s of training each", "",
         f"{meta['machine']}, torch {torch.__version__}. EMA weights scored halfway and at the end on {N_EVAL} DDIM-{DDIM_STEPS} "
         f"samples; real floor at the same N: FID {floor['fid']:.2f}, confident {floor['confident_frac']:.2f}, "
         f"class KL {floor['class_kl_uniform']:.3f}. Baseline: " + ", ".join(f"{k} {v}" for k, v in BASE.items()) + ".", "",
         "| recipe | img/s | steps | images seen | FID half | FID end | FID / floor | confident | class KL | recall |",
         "|---|---|---|---|---|---|---|---|---|---|"]
for name, res in results.items():
    half, end = res["points"]
    lines.append(f"| {name} | {res['recipe']['batch'] / res['sec_per_step']:.0f} | {res['n_steps']} | {end['images_seen']:,} | "
                 f"{half['fid']:.1f} | {end['fid']:.1f} | {end['fid'] / floor['fid']:.1f} | {end['confident_frac']:.2f} | "
                 f"{end['class_kl_uniform']:.3f} | {end['recall']:.2f} |")
if not ARGS.dry_run:
    (out / "ddpm_recipe_cpu.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
