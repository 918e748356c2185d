"""The committed notebook, as a grader opens it in Colab: what "Run all" will execute, and the record of one run."""
import hashlib
import json
import re

import numpy as np
from notebook_defs import NOTEBOOK, ROOT

NB = json.loads(NOTEBOOK.read_text())
CELLS = NB["cells"]
CODE = [c for c in CELLS if c["cell_type"] == "code"]
METRICS = json.loads((ROOT / "figures" / "metrics.json").read_text())


def tagged(tag):
    return [c for c in CELLS if tag in c.get("metadata", {}).get("tags", [])]


def text_outputs(cell):
    return "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o["output_type"] == "stream")


def test_one_parameters_cell_read_from_the_environment_and_nothing_injected():
    (params,) = tagged("parameters")
    assert 'PROFILE = os.environ.get("HW2_PROFILE", "auto")' in "".join(params["source"]) and "RETRAIN = False" in "".join(params["source"])
    assert tagged("injected-parameters") == []


def test_the_printed_profile_agrees_with_the_parameters_cell():
    """The line the run printed names the profile that ran and where it came from; the parameters cell reads that source."""
    printed = next(text_outputs(c) for c in CODE if "profile '" in text_outputs(c))
    match = re.search(r"profile '(\w+)': (.*)", printed)
    assert match and match.group(1) == METRICS["run"]["profile"] == NB["metadata"]["render"]["profile"]
    reason = match.group(2)
    assert reason == METRICS["run"]["profile_reason"]
    assert reason == "set by the HW2_PROFILE environment variable" or reason.startswith("'auto' (the parameters cell) picked it")


def test_no_pip_install_or_restart_in_the_notebook():
    code = "\n".join("".join(c["source"]) for c in CODE)
    assert "pip install" not in code and "os.kill" not in code and "exit()" not in code


def test_no_stderr_in_the_committed_outputs():
    """No saved stderr: no text progress bars, no warnings."""
    assert not [c for c in CODE for o in c.get("outputs", []) if o.get("name") == "stderr"]


def test_the_glance_table_is_filled_and_every_claim_holds_in_the_committed_render():
    (glance,) = tagged("answers-at-a-glance")
    assert [o["output_type"] for o in glance["outputs"]] == ["display_data"]  # the table alone, no display handle
    text = "".join("".join(o.get("data", {}).get("text/markdown", "")) for o in glance["outputs"])
    assert re.findall(r"^\| \[(\d\([a-e]\))\]", text, flags=re.M) == METRICS["schema"]["parts"]
    markdown_out = "\n".join("".join(o.get("data", {}).get("text/markdown", "")) for c in CODE for o in c.get("outputs", []))
    contradicted = [c["sentence"] for c in METRICS["claims"] if not c["holds"]]
    assert METRICS["claims"] and markdown_out.count("This run contradicts a sentence above") == len(contradicted)  # shown, not hidden
    assert not contradicted, f"the committed render contradicts its own answers: rewrite them, then re-render: {contradicted}"


def test_every_homework_part_ends_in_an_answer_with_its_numbers_filled_in():
    markdown_out = "\n".join("".join(o.get("data", {}).get("text/markdown", "")) for c in CODE for o in c.get("outputs", []))
    for part in METRICS["schema"]["parts"]:
        assert f"**Answer {part}.**" in markdown_out, part
    assert not re.findall(r"\{[A-Za-z_]\w*[\[(:]|\{[A-Z_]{2,}\}", markdown_out)  # no format field left unfilled


def test_collapsed_cells_say_what_they_hold():
    """A code cell is collapsed in Colab (cellView form) and in Jupyter (source_hidden) exactly when its first line is a
    #@title saying what it holds."""
    for i, cell in enumerate(CODE):
        source, meta = "".join(cell["source"]), cell.get("metadata", {})
        titled = source.startswith("#@title ") and len(source.splitlines()[0]) > len("#@title ") + 10
        assert titled == (meta.get("cellView") == "form" and meta.get("jupyter", {}).get("source_hidden") is True), (i, source[:60])


def test_every_anchor_the_notebook_links_to_exists():
    text = "\n".join("".join(c["source"]) for c in CELLS if c["cell_type"] == "markdown")
    glance = "".join("".join(o.get("data", {}).get("text/markdown", "")) for o in tagged("answers-at-a-glance")[0]["outputs"])
    links = set(re.findall(r"\]\(#([\w-]+)\)", text + glance))
    anchors = set(re.findall(r'<a id="([\w-]+)"></a>', text))
    assert links and links <= anchors, links - anchors


def test_the_committed_notebook_is_one_run_of_its_code():
    """Execution counts 1..n in order as the kernel made them, every code cell's source hash as the render stamped it,
    no error output. A changed code cell needs a re-render (scripts/render.sh) before it lands."""
    assert [c.get("execution_count") for c in CODE] == list(range(1, len(CODE) + 1)), "execution counts are not 1..n: re-render"
    changed = [i for i, c in enumerate(CODE)
               if c["metadata"].get("source_sha256") != hashlib.sha256("".join(c["source"]).encode()).hexdigest()]
    assert not changed, f"code cells {changed} changed since the render (or were never rendered): re-render the notebook"
    assert not [o for c in CODE for o in c.get("outputs", []) if o["output_type"] == "error"]


def test_metrics_and_samples_come_from_the_committed_run():
    run_id = NB["metadata"]["render"]["run_id"]
    assert METRICS["run"]["run_id"] == run_id and any(run_id in text_outputs(c) for c in CODE[:3])  # printed by the setup cell
    files = {p.stem: p for p in (ROOT / "data" / "samples").glob("*.npz")}
    assert set(files) == set(METRICS["models"])
    for name, path in files.items():
        with np.load(path) as f:
            assert str(f["run_id"]) == run_id, name
            assert f["images"].shape == (METRICS["models"][name]["n"], 28, 28) and f["images"].dtype == np.uint8


def test_the_committed_cpu_run_fits_its_wait_and_says_which_training_its_budget_stopped():
    """The run ends inside the wait the first cell announced; every training stays inside its budget, and one that
    stopped short of its cap is named in the appendix as stopped by its budget (on the sized-for machine there is none)."""
    run = METRICS["run"]
    assert run["seconds_total"] <= run["wait_seconds"]  # the most the first cell announced
    (appendix,) = [c for c in CODE if "budgeted sampling" in "".join("".join(o.get("data", {}).get("text/markdown", ""))
                                                                    for o in c.get("outputs", []))]
    table = "".join("".join(o.get("data", {}).get("text/markdown", "")) for o in appendix["outputs"])
    for name, t in METRICS["trainings"].items():
        assert t["budget_s"] is None or t["seconds"] <= t["budget_s"], name
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        assert ("stopped by its budget" in row) == (t["steps"] < t["max_steps"]), row


def test_the_readme_results_are_the_committed_runs():
    """The README's results block is exactly what scripts/results_table.py makes of figures/metrics.json."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import results_table

    assert results_table.readme_copy((ROOT / "README.md").read_text()) == results_table.table(METRICS)
