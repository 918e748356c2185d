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


def test_no_progress_bars_in_the_committed_outputs():
    """No code cell's saved stderr holds text progress bars (tqdm without the notebook widget)."""
    for i, cell in enumerate(CELLS):
        text = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("name") == "stderr")
        assert "it/s]" not in text, (i, text[:200])


def test_the_glance_table_is_filled_and_links_its_figures():
    """The answers under the title were filled by the last cell's update, one row per homework part, each figure
    it names is a link to a committed file."""
    import re

    glance = next(c for c in CELLS if "answers-at-a-glance" in c.get("metadata", {}).get("tags", []))
    assert [o["output_type"] for o in glance["outputs"]] == ["display_data"]  # the table alone, no display handle
    text = "".join("".join(o.get("data", {}).get("text/markdown", "")) for o in glance["outputs"])
    parts = re.findall(r"^\| \[(\d\([a-e]\))\]", text, flags=re.M)
    assert parts == ["1(a)", "1(b)", "1(c)", "1(d)", "2(a)", "2(b)", "2(c)", "2(d)", "2(e)", "3(a)", "3(b)", "3(c)"]
    figures = re.findall(r"\]\((figures/[\w.]+)\)", text)
    assert figures and all((ROOT / f).is_file() for f in figures), figures


def test_collapsed_cells_say_what_they_hold():
    """A code cell is collapsed in Colab (cellView form) and in Jupyter (source_hidden) exactly when its first line is a
    #@title saying what it holds, so a grader sees the title of every hidden cell."""
    for i, cell in enumerate(CODE):
        source, meta = "".join(cell["source"]), cell.get("metadata", {})
        titled = source.startswith("#@title ") and len(source.splitlines()[0]) > len("#@title ") + 10
        form = meta.get("cellView") == "form" and meta.get("jupyter", {}).get("source_hidden") is True
        assert titled == form, (i, source.splitlines()[0])


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
