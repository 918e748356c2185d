"""Finish a render: remove papermill's `injected-parameters` cell, and stamp the executed notebook so that a test can
tell it is one run of the committed code. Each code cell's metadata gets the sha256 of its source
(`source_sha256`), and the notebook's metadata a `render` block (run id, profile, device, torch, seconds) read from
the run's figures/metrics.json, whose run id every data/samples/*.npz of the run carries too.

Committed, the injected cell would run after the parameters cell in Colab and silently override what a grader sets
there (tests/test_committed_notebook.py fails if one is ever committed).

    python3 scripts/stamp_render.py executed.ipynb --metrics figures/metrics.json
"""
import argparse
import hashlib
import json
from pathlib import Path


def source_hash(cell):
    return hashlib.sha256("".join(cell["source"]).encode()).hexdigest()


def strip_injected(nb):
    """Drop papermill's injected-parameters cells and number the remaining code cells' executions 1..n in their order
    (the injected cell ran between the parameters cell and the next one; what it set is kept in the render stamp).
    Returns how many cells were dropped."""
    kept = [c for c in nb["cells"] if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    removed = len(nb["cells"]) - len(kept)
    nb["cells"] = kept
    code = [c for c in kept if c["cell_type"] == "code"]
    if removed and all(c.get("execution_count") for c in code):
        for n, cell in enumerate(sorted(code, key=lambda c: c["execution_count"]), 1):
            cell["execution_count"] = n
            for out in cell.get("outputs", []):
                if "execution_count" in out:
                    out["execution_count"] = n
    return removed


def stamp(nb, metrics):
    """Record each code cell's source hash and the run that executed them."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["metadata"]["source_sha256"] = source_hash(cell)
    run = metrics["run"]
    nb["metadata"]["render"] = {k: run[k] for k in ("run_id", "profile", "device", "torch", "amp_dtype", "seconds_total", "budget_seconds")}
    nb["metadata"]["render"]["parameters"] = nb["metadata"].get("papermill", {}).get("parameters", {})  # what papermill injected
    return nb


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", help="an executed notebook, rewritten in place")
    parser.add_argument("--metrics", help="the run's figures/metrics.json (without it: strip only, no stamp)")
    args = parser.parse_args()
    nb = json.loads(Path(args.notebook).read_text())
    removed = strip_injected(nb)
    if args.metrics:
        stamp(nb, json.loads(Path(args.metrics).read_text()))
    with open(args.notebook, "w") as f:
        json.dump(nb, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"removed {removed} injected-parameters cell(s) from {args.notebook}" + (f"; stamped run {nb['metadata']['render']['run_id']}"
                                                                                 if args.metrics else ""))


if __name__ == "__main__":
    main()
