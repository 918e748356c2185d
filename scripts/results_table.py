"""The README's results, generated from a run's figures/metrics.json: the run (profile, hardware, time), every model's
metrics against the real-data floor, the likelihood bounds in bits per dimension, and the notebook's own targets.
The README holds this output between its `results:start` and `results:end` markers; a test fails when they differ.

    python3 scripts/results_table.py            # print the table
    python3 scripts/results_table.py --write    # replace the README's copy
"""
import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- results:start -->", "<!-- results:end -->"
MODELS = ("real_train_vs_test", "vae", "ddpm", "ddim", "gan", "latent_diffusion", "vae_reconstruction")


def fid(m):
    return f"{m['fid']:.2f} [{m['fid_low']:.2f}, {m['fid_high']:.2f}]"


def table(metrics):
    run = metrics["run"]
    lines = [f"Profile `{run['profile']}` on {run['device']} (torch {run['torch']}, U-Nets in {run['amp_dtype'].removeprefix('torch.')}), "
             f"run `{run['run_id']}`: {run['seconds_total'] / 60:.1f} min for the whole notebook (budget "
             f"{run['budget_seconds'] / 60:.0f} min). Classifier (the yardstick): {metrics['classifier']['test_accuracy']:.2%} test "
             f"accuracy. {metrics['models']['ddpm']['n']:,} samples per model against the test set; the first row is training "
             "images scored the same way (the floor).", "",
             "| model | FID [95%] | precision | recall | coverage | confident | class KL | train s | s / 1000 samples |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in MODELS:
        m = metrics["models"][name]
        train = f"{m['train_seconds']:.0f}" if "train_seconds" in m else "–"
        sample = f"{m['sample_seconds_per_1000']:.3g}" if "sample_seconds_per_1000" in m else "–"
        lines.append(f"| {name} | {fid(m)} | {m['precision']:.3f} | {m['recall']:.3f} | {m['coverage']:.3f} | {m['confident_frac']:.1%} | "
                     f"{m['class_kl_uniform']:.4f} | {train} | {sample} |")
    if "bounds" in metrics:
        b = metrics["bounds"]
        lines += ["", f"Likelihood bounds, bits per dimension of 8-bit data, {b['n']} test images (95% intervals):", "",
                  "| model | prior term | reconstruction | the rest | total (-ELBO) | -IWAE |", "|---|---|---|---|---|---|"]
        for name, terms in b["models"].items():
            cells = [f"{terms[k]['mean']:.3f} [{terms[k]['low']:.3f}, {terms[k]['high']:.3f}]" if k in terms else "–"
                     for k in ("prior", "reconstruction", "rest", "total", "iwae")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    fast = metrics["sweeps"]["recommended_fast_sampler"]
    lines += ["", f"Recommended DDIM steps: {metrics['sweeps']['ddim_recommended_steps']}; fastest sampler to reach the "
                  f"{metrics['models']['ddpm']['sampling_steps']}-step DDPM's FID interval: {fast['method']} with {fast['steps']} steps"
                  + ("" if fast["reaches_ddpm"] else " (none reached it)") + ".",
              "The notebook's own targets: " + "; ".join(f"{k}: {'met' if ok else 'missed'}" for k, ok in metrics["targets"].items()) + "."]
    return "\n".join(lines)


def readme_copy(readme_text):
    match = re.search(re.escape(START) + r"\n(.*?)\n" + re.escape(END), readme_text, re.S)
    return match.group(1) if match else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", default=str(ROOT / "figures" / "metrics.json"))
    parser.add_argument("--write", action="store_true", help="replace the table between the README's markers")
    args = parser.parse_args()
    text = table(json.loads(Path(args.metrics).read_text()))
    if args.write:
        readme = ROOT / "README.md"
        old = readme.read_text()
        if readme_copy(old) is None:
            raise SystemExit(f"README.md has no {START} ... {END} block")
        readme.write_text(old.replace(readme_copy(old), text))
    print(text)


if __name__ == "__main__":
    main()
