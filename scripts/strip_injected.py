"""Remove papermill's `injected-parameters` cell from an executed notebook, in place.

Committed, that cell would run after the parameters cell in Colab and silently override what a
grader sets there (tests/test_committed_notebook.py fails if one is ever committed).
Usage: python3 scripts/strip_injected.py executed.ipynb"""
import argparse
import json


def strip(path):
    nb = json.loads(open(path).read())
    kept = [c for c in nb["cells"] if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    removed = len(nb["cells"]) - len(kept)
    nb["cells"] = kept
    with open(path, "w") as f:
        json.dump(nb, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return removed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", help="an executed notebook, rewritten in place")
    args = parser.parse_args()
    print(f"removed {strip(args.notebook)} injected-parameters cell(s) from {args.notebook}")
