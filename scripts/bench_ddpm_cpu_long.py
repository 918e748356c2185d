"""Full-length DDPM runs of the `cpu` profile's recipe and its variants (a benchmark, not a test).

bench_ddpm_recipe.py chose the recipe from 150-s runs. This script checks the choices that only show at the
notebook's own length: each candidate is trained exactly as the notebook trains its main DDPM (train_ddpm
with the profile's U-Net, batch, learning rate, warm-up and EMA), and its EMA weights are scored at the
checkpoints on N = n_eval (500) samples of the notebook's headline sampler (ancestral, 100 steps) with the
notebook's `cpu` yardstick (its classifier, trained as in the notebook), then on as many DDIM-25 samples.
Every number is read at the same N as the real floor printed first.

The fourth pass widens the low-resolution levels (`mults`) for about the training seconds of the third pass's
11,000 steps. Since then every run also samples its end point with two more seeds, so its confident fraction is
also read as a mean over 1,500 samples (three draws of N); the earlier rows have one draw.

Usage: python3 scripts/bench_ddpm_cpu_long.py [candidate ...]   (default: all; about 3 h on 2 cores)
       python3 scripts/bench_ddpm_cpu_long.py --table              (only rewrite the table from the JSON)
       python3 scripts/bench_ddpm_cpu_long.py --dry-run            (one candidate, 4 steps, smoke yardstick; writes nothing)
Writes benchmarks/ddpm_cpu_long.md (the table) and benchmarks/ddpm_cpu_long.json (everything); runs of earlier
invocations stay in the JSON and the table unless run again.
"""
import argparse
import functools
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
parser.add_argument("candidates", nargs="*", help="names of CANDIDATES to run (default: all)")
parser.add_argument("--table", action="store_true", help="only rewrite the table from the JSON")
parser.add_argument("--dry-run", action="store_true", help="one candidate, 4 steps, the smoke profile's yardstick; writes nothing")
ARGS = parser.parse_args()
SAMPLE_STEPS, DDIM_STEPS = (5, 5) if ARGS.dry_run else (100, 25)
nb = load_notebook("smoke" if ARGS.dry_run else "cpu")
CFG, SEED, dev = nb.CFG, nb.SEED, nb.DEVICE
if ARGS.dry_run:
    nb.CKPT_DIR = Path(tempfile.mkdtemp())  # a dry run leaves no checkpoint behind
BASE = {"T": CFG.ddpm_T, "dropout": CFG.unet_dropout, "steps": 4 if ARGS.dry_run else CFG.ddpm_steps, "ema": CFG.ddpm_ema,
        "amp_dtype": nb.AMP_DTYPE, "mults": CFG.unet_mults}
SECOND = {"ema": 0.995, "amp_dtype": torch.float32, "mults": (1, 2, 2)}  # the second pass's rows: fp32, EMA 0.995 (changed by
# ddpm_cpu_bf16_ema.md), and the U-Net's multipliers before the fourth pass
CANDIDATES = {
    "first cpu recipe: dropout 0.1, 3600 steps": {**SECOND, "dropout": 0.1, "steps": 3600},
    "dropout 0, 3600 steps": {**SECOND, "dropout": 0.0, "steps": 3600},
    "T 1000 (sampled on 100 respaced steps), dropout 0.1, 3600 steps": {**SECOND, "T": 1000, "dropout": 0.1, "steps": 3600},
    "second-pass cpu profile: 7200 steps, fp32, EMA 0.995": {**SECOND, "steps": 7200},
    # fourth pass: more channels where the digit's shape is decided (7 x 7 and the middle), for about the training seconds
    # of the third pass's 11,000 steps; bf16 steps of batch 64 timed alone on the development CPU: 115 ms for (1, 2, 2),
    # 120 ms for (1, 2, 3), 139 ms for (1, 2, 4)
    "mults (1, 2, 4), 9,000 steps": {"mults": (1, 2, 4), "steps": 9000},
    # the `cpu` profile (its render reproduced this row); a later profile change gets a row of its own
    "mults (1, 2, 4), 12,000 steps (does the confident fraction still rise?)": {"mults": (1, 2, 4), "steps": 12000},
}
EXTRA_SEEDS = (1000, 2000)  # added to SEED: further draws of N samples at the end (runs since the fourth pass)
FIXED = ("unet_ch", "ddpm_batch", "ddpm_lr", "ddpm_warmup", "ddpm_target")  # profile knobs no candidate varies


def write_table(meta, results):
    """benchmarks/ddpm_cpu_long.md from the runs in `results` (every invocation's), read at meta's floor."""
    floor, n, fixed = meta["floor"], meta["n_eval"], meta["fixed"]
    lines = [f"# Full-length DDPM runs of the `cpu` recipe, scored at N = {n}", "",
             f"{meta['machine']}, torch {meta['torch']}. Each run is the notebook's train_ddpm with the `cpu` profile's "
             f"recipe (width {fixed['unet_ch']}, target {fixed['ddpm_target']}, batch {fixed['ddpm_batch']}, lr {fixed['ddpm_lr']}, "
             f"warm-up {fixed['ddpm_warmup']:.0%} then cosine decay, and T, dropout, steps, EMA, "
             f"precision and width multipliers as in its row); its EMA weights are scored on {n} ancestral samples "
             f"({meta['sample_steps']} steps) halfway and at the end, and on {n} DDIM-{meta['ddim_steps']} samples at the end. "
             f"Runs since the fourth pass also draw {n} samples with two more seeds at the end: their mean confident fraction "
             f"is over three draws. Real floor at the same N: FID {floor['fid']:.2f}, confident {floor['confident_frac']:.3f}, "
             f"class KL {floor['class_kl_uniform']:.4f}. Train seconds are those of the machine that ran the row.", "",
             "| run | T | dropout | precision | EMA | mults | steps | train s | FID half | FID end [95%] | x floor | confident "
             "| confident, 3 draws: mean | class KL | DDIM-25 FID | DDIM / DDPM |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, res in results.items():
        r = res["recipe"]
        points = list(res["points"].values())
        half, end, ddim = points[0], points[-1], res["ddim"]
        draws = [end] + res.get("more_seeds", [])
        mean = sum(d["confident_frac"] for d in draws) / len(draws) if len(draws) > 1 else None
        lines.append(f"| {name} | {r['T']} | {r['dropout']} | {str(r['amp_dtype']).removeprefix('torch.')} | {r['ema']} | "
                     f"{tuple(r['mults'])} | {r['steps']} | {res['train_seconds']:.0f} | {half['fid']:.1f} | "
                     f"{end['fid']:.2f} [{end['fid_low']:.1f}, {end['fid_high']:.1f}] | {end['fid'] / floor['fid']:.1f} | "
                     f"{end['confident_frac']:.3f} | {'' if mean is None else f'{mean:.3f}'} | {end['class_kl_uniform']:.4f} | "
                     f"{ddim['fid']:.2f} | {ddim['fid'] / end['fid']:.2f} |")
    (ROOT / "benchmarks" / "ddpm_cpu_long.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if ARGS.table:  # rewrite the table from the JSON, training nothing
    write_table(**json.loads((ROOT / "benchmarks" / "ddpm_cpu_long.json").read_text()))
    raise SystemExit
if ARGS.dry_run:
    CANDIDATES = {"dry run": {"steps": 4}}
chosen = ARGS.candidates or list(CANDIDATES)
unknown = set(chosen) - set(CANDIDATES)
if unknown:
    raise SystemExit(f"unknown candidates {sorted(unknown)}: choose from {list(CANDIDATES)}")

mnist = nb.load_mnist(str(ROOT / "data"), dev)
(X, Y), (X_TEST, _) = mnist["train"], mnist["test"]
DATA = nb.to_signed(X)
N = 32 if ARGS.dry_run else CFG.n_eval
n_clf = CFG.clf_train_n
clf, _ = nb.train_classifier(nb.Run("classifier", steps=CFG.clf_epochs * (n_clf // CFG.clf_batch), batch=CFG.clf_batch, seed=SEED),
                             nb.new_model(nb.DigitClassifier, SEED), (X[:n_clf], Y[:n_clf]), lr=nb.scaled_lr(nb.CLF_LR, CFG.clf_batch),
                             label_smoothing=nb.CLF_LABEL_SMOOTHING, max_shift=nb.CLF_MAX_SHIFT)
ref = nb.build_reference(clf, X_TEST, X, n_memo=N)
nb.seed_everything(SEED)
floor = nb.evaluate_u8(nb.to_uint8(X[torch.randperm(len(X), device=dev)[:N]]), ref, CFG.n_boot, SEED)
KEYS = ("fid", "fid_low", "fid_high", "confident_frac", "class_kl_uniform", "precision", "recall")
print(f"real floor at N={N}: " + ", ".join(f"{k} {floor[k]:.3f}" for k in KEYS), flush=True)


def quality(model, schedule, steps, method, seed=SEED):
    # samples in the machine's AMP_DTYPE (the notebook's way), whatever precision the candidate trained in
    diffusion = nb.Diffusion(schedule, target=CFG.ddpm_target, amp_dtype=nb.AMP_DTYPE)
    images = nb.DiffusionSampler(model, diffusion, steps, method, batch=CFG.sample_batch)(N, seed)
    m = nb.evaluate_u8(images, ref, CFG.n_boot, SEED)  # as the notebook scores its samples
    return {k: m[k] for k in KEYS}


out = ROOT / "benchmarks"
meta = {"n_eval": N, "sample_steps": SAMPLE_STEPS, "ddim_steps": DDIM_STEPS, "floor": {k: floor[k] for k in KEYS}, "base": BASE,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads", "torch": torch.__version__,
        "fixed": {k: getattr(CFG, k) for k in FIXED}}
results = {} if ARGS.dry_run or not (out / "ddpm_cpu_long.json").exists() else json.loads((out / "ddpm_cpu_long.json").read_text())["results"]
nb.CKPT_DIR = Path(tempfile.mkdtemp())  # every run trains (retrain): keep its checkpoint out of the notebook's
for name in chosen:
    r = {**BASE, **CANDIDATES[name]}
    noise_sched = nb.make_schedule("linear", r["T"])
    unet_args = {**nb.unet_args(CFG), "dropout": r["dropout"], "mults": r["mults"]}
    diffusion = nb.Diffusion(noise_sched, target=CFG.ddpm_target, min_snr_gamma=CFG.ddpm_min_snr, amp_dtype=r["amp_dtype"])
    measure = functools.partial(lambda m, i, schedule: quality(m, schedule, SAMPLE_STEPS, "ddpm"), schedule=noise_sched)
    run = nb.Run(f"bench_{len(results)}", steps=r["steps"], batch=CFG.ddpm_batch, seed=SEED, retrain=True,
                 progress=nb.Progress(at=tuple(sorted({r["steps"] // 2, r["steps"]})), measure=measure))
    t0 = time.perf_counter()
    model, info = nb.train_diffusion(run, nb.new_model(nb.UNet, SEED, **unet_args), diffusion, DATA,
                                     **{**nb.ddpm_recipe(CFG), "ema": r["ema"]})
    results[name] = {"recipe": r, "train_seconds": info["train_seconds"], "final_loss": info["history"]["loss"][-1],
                     "points": {str(i): p for i, p in info["progress"].items()},
                     "ddim": quality(model, noise_sched, DDIM_STEPS, "ddim"), "n_params": nb.n_params(model),
                     "more_seeds": [quality(model, noise_sched, SAMPLE_STEPS, "ddpm", SEED + s) for s in EXTRA_SEEDS],
                     "wall_seconds": time.perf_counter() - t0}
    end = info["progress"][r["steps"]]
    print(f"{name}: {r['steps']} steps in {info['train_seconds']:.1f} s | FID {end['fid']:.2f} conf {end['confident_frac']:.3f} "
          f"KL {end['class_kl_uniform']:.4f} | DDIM-{DDIM_STEPS} FID {results[name]['ddim']['fid']:.2f}", flush=True)
    if not ARGS.dry_run:  # after every run
        (out / "ddpm_cpu_long.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))

if not ARGS.dry_run:
    write_table(meta, results)
