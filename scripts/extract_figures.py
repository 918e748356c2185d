"""Write the figures embedded in an executed notebook to figures/<name>.png (and the GIF), using the
names each cell passes to the figure helpers, in call order. Used when a render's figures/ folder
could not be brought back from the GPU machine but its executed notebook could.
Usage: python3 scripts/extract_figures.py executed.ipynb figures/"""
import base64
import json
import re
import sys
from pathlib import Path

NAME = re.compile(r'"((?:q\d[a-z]?|data)_[A-Za-z0-9_]+)"')


def main(notebook, out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    nb = json.loads(Path(notebook).read_text())
    written = 0
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        names = NAME.findall("".join(cell["source"]))
        pngs = [o["data"]["image/png"] for o in cell["outputs"] if "image/png" in o.get("data", {})]
        gifs = [o["data"]["image/gif"] for o in cell["outputs"] if "image/gif" in o.get("data", {})]
        if len(names) != len(pngs):
            raise SystemExit(f"cell {i}: {len(names)} figure names but {len(pngs)} images: {names}")
        for name, data in zip(names, pngs):
            (out / f"{name}.png").write_bytes(base64.b64decode(data))
            written += 1
        for data in gifs:
            (out / "q2c_reverse_process.gif").write_bytes(base64.b64decode(data))
            written += 1
    print(f"{written} figures written to {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
