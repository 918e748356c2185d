"""The notebook's own definitions as a module: its cells tagged `setup`, `parameters` and `defs`, executed in
notebook order into one module namespace, so that tests and scripts call the functions the notebook runs
(`nb.train_diffusion`, `nb.Diffusion`), not a copy of them. Loading creates no folder: the notebook creates
figures/, data/samples/ and checkpoints/ only when it first writes there."""
import json
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "rollno-hw2.ipynb"
LOADED_TAGS = ("setup", "parameters", "defs")


def code_cells(tag, notebook=NOTEBOOK):
    """(index, source) of the notebook's code cells that carry `tag`."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "code" and tag in cell.get("metadata", {}).get("tags", []):
            yield i, "".join(cell["source"])


def load_notebook(profile="smoke", notebook=NOTEBOOK, name="hw2_notebook"):
    """The setup, parameters (PROFILE overridden by `profile`) and defs cells as a module named `name`."""
    module = types.ModuleType(name, f"definitions of {Path(notebook).name}, profile {profile!r}")
    module.__file__ = str(notebook)
    sys.modules[name] = module  # dataclasses and pickling look their module up by name
    cells = json.loads(Path(notebook).read_text())["cells"]
    for i, cell in enumerate(cells):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell["cell_type"] != "code" or not tags & set(LOADED_TAGS):
            continue
        source = "".join(cell["source"])
        if "parameters" in tags:
            source += f"\nPROFILE = {profile!r}\n"
        exec(compile(source, f"{Path(notebook).name}[cell {i}]", "exec"), module.__dict__)
    return module
