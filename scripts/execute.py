"""Execute a notebook top to bottom, as the kernel runs it: nothing injected, execution counts as the kernel numbers them.

    HW2_PROFILE=cpu python3 scripts/execute.py rollno-hw2.ipynb out/executed.ipynb [--cwd .]

The profile comes from the HW2_PROFILE environment variable, which the notebook's parameters cell reads. Exits 1 and
prints the failing cell when a cell raises; the partly executed notebook is written either way.
"""
import argparse
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook")
    parser.add_argument("out")
    parser.add_argument("--cwd", default=".", help="the working directory of the kernel (where figures/ and data/ are)")
    args = parser.parse_args()
    nb = nbformat.read(args.notebook, as_version=4)
    start, rc = time.time(), 0
    try:
        NotebookClient(nb, timeout=None, kernel_name="python3", resources={"metadata": {"path": args.cwd}}).execute()
    except CellExecutionError as err:
        print(str(err)[-4000:], file=sys.stderr)
        rc = 1
    nbformat.write(nb, args.out)
    print(f"executed {args.notebook} -> {args.out} in {time.time() - start:.0f} s" + (" (a cell raised)" if rc else ""))
    return rc


if __name__ == "__main__":
    sys.exit(main())
