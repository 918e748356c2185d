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
    wait = printed.split("expected wait for the whole notebook (a forecast):\n")[1]
    forecast = re.findall(r"^  about (\d+) min on (.*) \((.*)\)$", wait, flags=re.M)
    assert forecast and forecast == [(str(minutes), machine, how) for machine, minutes, how in METRICS["run"]["wait_forecast"]]


def test_no_pip_install_or_restart_in_the_notebook():
    code = "\n".join("".join(c["source"]) for c in CODE)
    assert "pip install" not in code and "os.kill" not in code and "exit()" not in code


def test_no_stderr_no_progress_bar_and_no_widget_in_the_committed_outputs():
    """No saved stderr (no warnings), no text progress bar anywhere and no widget that only a live kernel can draw: the
    render runs with HW2_BARS=0."""
    outputs = [o for c in CODE for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("name") == "stderr"]
    assert not [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    saved = json.dumps(outputs)
    assert "%|" not in saved, saved[max(0, saved.find("%|") - 200): saved.find("%|") + 100]


def test_the_glance_table_repeats_every_answers_opening_verdict():
    (glance,) = tagged("answers-at-a-glance")
    assert [o["output_type"] for o in glance["outputs"]] == ["display_data"]  # the table alone, no display handle
    text = "".join("".join(o.get("data", {}).get("text/markdown", "")) for o in glance["outputs"])
    rows = re.findall(r"^\| \[(\d\([a-e]\))\]\(#q\d[a-e]\) \| (.*) \|$", text, flags=re.M)
    assert [part for part, _ in rows] == METRICS["schema"]["parts"] and set(METRICS["answers"]) == set(METRICS["schema"]["parts"])
    for part, verdict in rows:
        assert verdict == METRICS["answers"][part].replace("|", "/"), part


def test_every_recorded_verdict_is_the_word_its_two_intervals_give():
    """Each verdict an Answer printed is stored with the two 95% intervals it was read from; recomputed, they give the
    same word (lower: a lies wholly below b; higher: wholly above; else not resolved)."""
    verdicts = METRICS["verdicts"]
    assert verdicts
    for v in verdicts:
        (a_low, a_high), (b_low, b_high) = v["a"], v["b"]
        assert a_low <= a_high and b_low <= b_high, v
        word = "lower" if a_high < b_low else "higher" if a_low > b_high else "not resolved"
        assert v["word"] == word and v["part"] in METRICS["schema"]["parts"], v
    assert len({(v["part"], v["what"]) for v in verdicts}) == len(verdicts)  # one entry per verdict


def test_every_training_ran_its_configured_steps_and_every_score_its_configured_n():
    """Fixed work: each training ran the steps its profile sets, and each score is of the N its profile sets."""
    cfg = METRICS["run"]["config"]
    vae, ddpm, ev = cfg["vae"], cfg["ddpm"], cfg["eval"]
    expected = {"classifier": ev["clf"], f"vae_d{vae['latent_dim']}": vae["train"], "vae_d2": vae["small"],
                f"vae_d{vae['latent_dim']}_gaussian256": vae["bound"], f"ddpm_{ddpm['schedule']}_T{ddpm['T']}": ddpm["train"],
                **{f"ddpm_chain_T{T}": ddpm["chain_train"] for T in ddpm["chain_T"]}}
    assert set(METRICS["trainings"]) == set(expected)
    for name, t in METRICS["trainings"].items():
        assert (t["steps"], t["batch"]) == (expected[name]["steps"], expected[name]["batch"]), name
        assert t["seconds"] > 0 and abs(t["s_per_step"] * t["steps"] - t["seconds"]) <= 1e-6 * t["seconds"], name
    assert {name: m["n"] for name, m in METRICS["models"].items()} == {name: ev["n_eval"] for name in METRICS["schema"]["models"]}
    chain = METRICS["sweeps"]["chain_length"]
    assert sorted(int(T) for T in chain["models"]) == sorted(ddpm["chain_T"]) and chain["equal_steps"] == min(ddpm["chain_T"])
    for T, row in chain["models"].items():
        assert row["own"]["n"] == row["equal_steps"]["n"] == ev["n_chain"] and row["train_steps"] == ddpm["chain_train"]["steps"], T
    points = [point for series in METRICS["sweeps"]["sampling_steps"].values() for point in series.values()]
    assert points and all(point["n"] == ev["n_sweep"] for point in points)


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


def test_the_readme_results_are_the_committed_runs():
    """The README's results block is exactly what scripts/results_table.py makes of figures/metrics.json."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import results_table

    assert results_table.readme_copy((ROOT / "README.md").read_text()) == results_table.table(METRICS)
