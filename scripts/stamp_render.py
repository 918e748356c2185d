"""Stamp an executed notebook so that a test can tell it is one run of the committed code: each code cell's metadata
gets the sha256 of its source (`source_sha256`), and the notebook's metadata a `render` block (run id, profile, device,
torch, seconds) read from the run's figures/metrics.json, whose run id every data/samples/*.npz carries too. Outputs
and execution counts are left as the kernel made them.

    python3 scripts/stamp_render.py executed.ipynb --metrics figures/metrics.json
"""
import argparse
import hashlib
import json
from pathlib import Path


def source_hash(cell):
    return hashlib.sha256("".join(cell["source"]).encode()).hexdigest()


def stamp(nb, metrics):
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["metadata"]["source_sha256"] = source_hash(cell)
    run = metrics["run"]
    nb["metadata"]["render"] = {k: run[k] for k in ("run_id", "profile", "profile_reason", "device", "torch", "amp_dtype",
                                                    "seconds_total")}
    nb["metadata"]["render"]["loaded"] = sorted(k for k, t in metrics["trainings"].items() if t.get("loaded"))  # trained elsewhere
    return nb


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", help="an executed notebook, rewritten in place")
    parser.add_argument("--metrics", required=True, help="the run's figures/metrics.json")
    args = parser.parse_args()
    nb = stamp(json.loads(Path(args.notebook).read_text()), json.loads(Path(args.metrics).read_text()))
    Path(args.notebook).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    print(f"stamped {args.notebook} with run {nb['metadata']['render']['run_id']}")


if __name__ == "__main__":
    main()
