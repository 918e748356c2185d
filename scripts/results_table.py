"""The README's results, generated from a run's figures/metrics.json with the schema the notebook wrote into it: the
run (profile, hardware, time against the forecast), every model beside the real-data reference row, the likelihood bounds
in bits per dimension, and each training's fixed steps and what they took. The README holds this output between its `results:start` and `results:end`
markers; a test fails when they differ.

    python3 scripts/results_table.py            # print the table
    python3 scripts/results_table.py --write    # replace the README's copy
"""
import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- results:start -->", "<!-- results:end -->"
COLUMNS = ("fid", "precision", "recall", "coverage", "confident_frac", "class_kl_uniform", "train_seconds", "sample_seconds_per_1000")


def cell(m, key, formats):
    if key == "fid":
        return formats["fid_interval"].format(**m)  # the notebook's own format, from the schema
    return formats[key].format(m[key]) if key in m else "–"


def table(metrics):
    run, schema = metrics["run"], metrics["schema"]
    n = metrics["models"]["ddpm"]["n"]
    reference = next(iter(schema["models"].values()))  # the schema's first row: real digits scored like a model's samples
    forecast = "; ".join(f"about {minutes} min on {machine}" for machine, minutes, _ in run["wait_forecast"])
    lines = [f"Profile `{run['profile']}` on {run['device']} (torch {run['torch']}, U-Nets in {run['amp_dtype'].removeprefix('torch.')}), "
             f"run `{run['run_id']}`: {run['seconds_total'] / 60:.1f} min for the whole notebook (forecast: {forecast}). "
             f"Classifier (the yardstick): {metrics['classifier']['test_accuracy']:.2%} test accuracy. {n:,} samples per model against "
             f"the test set; the first row, {reference}, is scored the same way (the reference row).",
             "", "| model | " + " | ".join(schema["columns"][k] for k in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, label in schema["models"].items():
        m = metrics["models"][name]
        lines.append(f"| {label} | " + " | ".join(cell(m, k, schema["formats"]) for k in COLUMNS) + " |")
    lines += ["", f"Likelihood bounds, bits per dimension of 8-bit data, {metrics['bounds']['n']} test images (95% intervals):", "",
              "| model | prior term | reconstruction | the rest | total (-ELBO) | -IWAE |", "|---|---|---|---|---|---|"]
    for name, terms in metrics["bounds"]["models"].items():
        cells = [f"{terms[k]['mean']:.3f} [{terms[k]['low']:.3f}, {terms[k]['high']:.3f}]" if k in terms else "–"
                 for k in ("prior", "reconstruction", "rest", "total", "iwae")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Each training's fixed steps and what they took on that machine (a loaded one: when it was trained):", "",
              "| training | steps x batch | s / step | seconds | |", "|---|---|---|---|---|"]
    for name, t in metrics["trainings"].items():
        lines.append(f"| {name} | {t['steps']:,} x {t['batch']} | {t['s_per_step']:.3g} | {t['seconds']:.0f} | "
                     + ("loaded" if t["loaded"] else "trained") + " |")
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
