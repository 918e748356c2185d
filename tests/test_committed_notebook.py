"""The committed notebook, as a grader opens it in Colab: what "Run all" will execute."""
import hashlib
import json

import numpy as np
from notebook_defs import NOTEBOOK, ROOT

NB = json.loads(NOTEBOOK.read_text())
CELLS = NB["cells"]
CODE = [c for c in CELLS if c["cell_type"] == "code"]


def tagged(tag):
    return [c for c in CELLS if tag in c.get("metadata", {}).get("tags", [])]


def test_exactly_one_parameters_cell_and_no_injected_parameters():
    # papermill's injected copy runs after the parameters cell in Colab and silently overrides it
    assert len(tagged("parameters")) == 1
    assert tagged("injected-parameters") == []
    assert not any("# Parameters\nPROFILE" in "".join(c["source"]) for c in CELLS)


def test_parameters_cell_defaults_to_auto():
    source = "".join(tagged("parameters")[0]["source"])
    assert 'PROFILE = "auto"' in source and 'USE_COMPILE = "auto"' in source and "RETRAIN = False" in source


def test_no_pip_install_or_restart_in_the_notebook():
    code = "\n".join("".join(c["source"]) for c in CELLS if c["cell_type"] == "code")
    assert "pip install" not in code and "os.kill" not in code and "exit()" not in code


def test_every_anchor_the_intro_links_to_exists():
    import re

    text = "\n".join("".join(c["source"]) for c in CELLS if c["cell_type"] == "markdown")
    links = set(re.findall(r"\]\(#([\w-]+)\)", text))
    anchors = set(re.findall(r'<a id="([\w-]+)"></a>', text))
    assert links and links <= anchors, links - anchors


def test_the_committed_notebook_is_one_run_of_its_code():
    """Its outputs come from one top-to-bottom run of exactly this code: execution counts 1..n in order, every code
    cell's source hash as the render stamped it, no error output. A changed code cell needs a re-render
    (scripts/render.sh) before it lands."""
    assert [c.get("execution_count") for c in CODE] == list(range(1, len(CODE) + 1)), "execution counts are not 1..n: re-render"
    changed = [i for i, c in enumerate(CODE)
               if c["metadata"].get("source_sha256") != hashlib.sha256("".join(c["source"]).encode()).hexdigest()]
    assert not changed, f"code cells {changed} changed since the render (or were never rendered): re-render the notebook"
    assert not [o for c in CODE for o in c.get("outputs", []) if o["output_type"] == "error"]


def test_metrics_and_samples_come_from_the_committed_run():
    """figures/metrics.json and every data/samples/*.npz carry the run id that the committed notebook was stamped with,
    and there is one sample file per evaluated model, no more."""
    run_id = NB["metadata"]["render"]["run_id"]
    metrics = json.loads((ROOT / "figures" / "metrics.json").read_text())
    assert metrics["run"]["run_id"] == run_id and metrics["run"]["profile"] == NB["metadata"]["render"]["profile"]
    files = {p.stem: p for p in (ROOT / "data" / "samples").glob("*.npz")}
    assert set(files) == set(metrics["models"])
    for name, path in files.items():
        with np.load(path) as f:
            assert str(f["run_id"]) == run_id, name
            assert f["images"].shape == (metrics["models"][name]["n"], 28, 28) and f["images"].dtype == np.uint8


def test_the_readme_results_are_the_committed_runs():
    """The README's results block is exactly what scripts/results_table.py makes of figures/metrics.json."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import results_table

    metrics = json.loads((ROOT / "figures" / "metrics.json").read_text())
    assert results_table.readme_copy((ROOT / "README.md").read_text()) == results_table.table(metrics)
