"""Execute the whole notebook top to bottom in the smoke profile, as the render does (HW2_PROFILE and HW2_BARS=0, nothing
injected), and check what it wrote; then once more with another latent size and the cosine schedule."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from notebook_defs import NOTEBOOK, ROOT


def execute(work, notebook=NOTEBOOK):
    """Run scripts/execute.py on a copy of the notebook in `work` (with a copy of the shipped MNIST files), as the render
    runs it: the smoke profile from HW2_PROFILE, no progress bars (HW2_BARS=0)."""
    shutil.copytree(ROOT / "data" / "MNIST" / "raw", work / "data" / "MNIST" / "raw", ignore=shutil.ignore_patterns("*-ubyte"))
    out = work / "executed.ipynb"
    try:
        run = subprocess.run([sys.executable, str(ROOT / "scripts" / "execute.py"), str(notebook), str(out), "--cwd", str(work)],
                             capture_output=True, text=True, env={**os.environ, "HW2_PROFILE": "smoke", "HW2_BARS": "0"}, timeout=1500)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"the smoke run of {notebook.name} did not finish in {err.timeout} s: the machine is overloaded or a cell hangs")
    return json.loads(out.read_text()), run


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    work = tmp_path_factory.mktemp("smoke")
    nb, run = execute(work)
    return work, nb, run


@pytest.fixture(scope="module")
def ran(executed):
    work, nb, run = executed
    if run.returncode != 0:
        pytest.skip("the notebook did not run to the end (see test_the_notebook_runs_to_the_end)")
    return work, nb


@pytest.fixture(scope="module")
def metrics(ran):
    return json.loads((ran[0] / "figures" / "metrics.json").read_text())


def outputs(nb, kind):
    """Every stream text (kind 'stream') or Markdown output (kind 'markdown') of the executed notebook, in order."""
    out = []
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            if kind == "stream" and o["output_type"] == "stream":
                out.append("".join(o["text"]))
            elif kind == "markdown" and "text/markdown" in o.get("data", {}):
                out.append("".join(o["data"]["text/markdown"]))
    return out


def test_the_notebook_runs_to_the_end(executed):
    """Every code cell ran, in order, and none raised; the counts are the kernel's own, nothing injected."""
    _, nb, run = executed
    assert run.returncode == 0, run.stderr[-3000:]
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    assert not any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])


def test_the_printed_profile_is_the_one_that_ran_and_says_why(ran, metrics):
    text = "\n".join(outputs(ran[1], "stream"))
    assert "profile 'smoke': set by the HW2_PROFILE environment variable" in text
    assert metrics["run"]["profile"] == "smoke" and metrics["run"]["profile_reason"] == "set by the HW2_PROFILE environment variable"
    forecast = "".join(f"\n  about {minutes} min on {machine} ({how})" for machine, minutes, how in metrics["run"]["wait_forecast"])
    assert metrics["run"]["wait_forecast"] and "expected wait for the whole notebook (a forecast):" + forecast in text


def test_no_progress_bars_widgets_or_warnings_in_the_saved_outputs(ran):
    """HW2_BARS=0: no bar in any output; no stderr (warnings) and no widget, which only a live kernel can draw."""
    outputs = [o for c in ran[1]["cells"] for o in c.get("outputs", [])]
    for o in outputs:
        assert o.get("name") != "stderr", "".join(o.get("text", ""))[:300]
        assert "application/vnd.jupyter.widget-view+json" not in o.get("data", {})
    saved = json.dumps(outputs)
    assert "%|" not in saved, saved[max(0, saved.find("%|") - 200): saved.find("%|") + 100]


def test_the_metrics_file_follows_its_schema(metrics):
    schema = metrics["schema"]
    assert list(metrics["models"]) == [m for m in schema["models"] if m in metrics["models"]]  # the schema's order
    assert set(metrics["models"]) == set(schema["models"])
    for name, m in metrics["models"].items():
        for key in ("n", "fid", "fid_low", "fid_high", "precision", "recall", "density", "coverage", "class_hist",
                    "confident_frac", "class_kl_uniform", "memorisation_ratio"):
            assert key in m and (key == "class_hist" or np.isfinite(m[key])), (name, key)
        assert m["fid_low"] < m["fid"] < m["fid_high"] and sum(m["class_hist"]) == m["n"], name
    assert metrics["real"] and all(row["n"] == int(n) for n, row in metrics["real"].items())  # the reference row at each N
    assert metrics["classifier"]["test_accuracy"] > 0.5
    assert set(metrics["bounds"]["models"]) == {"VAE, 256-level decoder", "DDPM, T = 100"}
    cfg = metrics["run"]["config"]
    for method, series in metrics["sweeps"]["sampling_steps"].items():
        assert sorted(int(s) for s in series) == cfg["eval"]["sampler_steps"] + ([cfg["ddpm"]["T"]] if method == "ddpm" else [])
    assert sorted(int(t) for t in metrics["sweeps"]["chain_length"]["models"]) == cfg["ddpm"]["chain_T"] == [25, 50, 100]
    assert metrics["sweeps"]["chain_length"]["equal_steps"] == 25
    assert "claims" not in metrics and "sampling" not in metrics and set(metrics["answers"]) == set(schema["parts"])
    assert not {"wait_seconds", "expected_seconds", "wait_plan"} & set(metrics["run"])


def test_every_training_runs_the_steps_its_profile_sets_and_every_score_its_n(metrics):
    trainings, cfg = metrics["trainings"], metrics["run"]["config"]
    vae, ddpm, ev = cfg["vae"], cfg["ddpm"], cfg["eval"]
    expected = {"classifier": ev["clf"], "vae_d16": vae["train"], "vae_d2": vae["small"], "vae_d16_gaussian256": vae["bound"],
                "ddpm_linear_T100": ddpm["train"], **{f"ddpm_chain_T{T}": ddpm["chain_train"] for T in ddpm["chain_T"]}}
    assert set(trainings) == set(expected)
    for name, t in trainings.items():
        assert set(t) == {"name", "steps", "seconds", "s_per_step", "batch", "loaded", "key"}, name  # no budget, no cap
        assert t["name"] == name and (t["steps"], t["batch"]) == (expected[name]["steps"], expected[name]["batch"]), name
        assert t["seconds"] > 0 and not t["loaded"] and t["key"].startswith(f"{name}-"), name
    assert set(metrics["run"]["seconds_by_section"]) >= {"yardstick", "Q1 VAE", "Q2 DDPM", "Q3 comparison"}
    assert all(m["n"] == ev["n_eval"] for m in metrics["models"].values())
    for T, row in metrics["sweeps"]["chain_length"]["models"].items():
        assert row["own"]["n"] == row["equal_steps"]["n"] == ev["n_chain"] and row["train_steps"] == ddpm["chain_train"]["steps"], T
    assert all(point["n"] == ev["n_sweep"] for series in metrics["sweeps"]["sampling_steps"].values() for point in series.values())


def test_sample_files_are_exactly_the_evaluated_samples(ran, metrics):
    files = {p.stem for p in (ran[0] / "data" / "samples").glob("*.npz")}
    assert files == set(metrics["models"])
    for name in files:
        with np.load(ran[0] / "data" / "samples" / f"{name}.npz") as f:
            assert f["images"].dtype == np.uint8 and f["images"].shape == (metrics["models"][name]["n"], 28, 28)
            assert str(f["run_id"]) == metrics["run"]["run_id"]


def test_every_part_ends_in_an_answer_its_verdicts_are_recorded_and_the_glance_is_filled(ran, metrics):
    md = "\n".join(outputs(ran[1], "markdown"))
    for part in metrics["schema"]["parts"]:
        assert f"**Answer {part}.**" in md, part
        assert metrics["answers"][part] and f"**Answer {part}.** **{metrics['answers'][part]}**" in md, part  # its opening verdict
    assert "nan" not in md.replace("nan(", "") and "indistinguishable" not in md and "suffice" not in md and "Finding" not in md
    assert not re.findall(r"\{[A-Za-z_]\w*[\[(:]|\{[A-Z_]{2,}\}", md)  # no format field left unfilled (an f missing)
    assert metrics["verdicts"] and {v["part"] for v in metrics["verdicts"]} <= set(metrics["schema"]["parts"])
    for v in metrics["verdicts"]:  # each word is what its two recorded intervals give
        word = "lower" if v["a"][1] < v["b"][0] else "higher" if v["a"][0] > v["b"][1] else "not resolved"
        assert v["word"] == word, v
    code = [c for c in ran[1]["cells"] if c["cell_type"] == "code"]
    first = next(c for c in code if "answers-at-a-glance" in c["metadata"].get("tags", []))
    assert code.index(first) == 0 and [o["output_type"] for o in first["outputs"]] == ["display_data"]
    table = "".join(first["outputs"][0]["data"]["text/markdown"])
    rows = re.findall(r"^\| \[(\d\([a-e]\))\]\(#q\d[a-e]\) \| (.*) \|$", table, flags=re.M)
    assert rows == [(part, metrics["answers"][part].replace("|", "/")) for part in metrics["schema"]["parts"]]


def test_every_code_cell_that_runs_work_prints_what_it_did(ran):
    silent = [i for i, c in enumerate(ran[1]["cells"]) if c["cell_type"] == "code" and not c["outputs"]
              and "tags" not in c["metadata"] and "#@title" not in "".join(c["source"])]
    assert not silent, silent


def test_every_figure_is_saved_and_no_other(ran):
    """Each figure name the code saves is a file of this run, and each file in figures/ is one the code names."""
    source = "\n".join("".join(c["source"]) for c in ran[1]["cells"] if c["cell_type"] == "code")
    names = set(re.findall(r'"((?:q\d[a-z]?|data|ax)_[A-Za-z0-9_]+)"', source))
    written = {p.stem for p in (ran[0] / "figures").glob("*.png")}
    assert names == written, (names - written, written - names)
    assert (ran[0] / "figures" / "q2c_reverse_process.gif").stat().st_size > 10_000


def test_the_render_stamp_records_the_run(ran, metrics, tmp_path):
    import hashlib

    path = tmp_path / "executed.ipynb"
    path.write_text(json.dumps(ran[1]))
    subprocess.run([sys.executable, str(ROOT / "scripts" / "stamp_render.py"), str(path), "--metrics",
                    str(ran[0] / "figures" / "metrics.json")], check=True)
    stamped = json.loads(path.read_text())
    code = [c for c in stamped["cells"] if c["cell_type"] == "code"]
    assert all(c["metadata"]["source_sha256"] == hashlib.sha256("".join(c["source"]).encode()).hexdigest() for c in code)
    assert [c["execution_count"] for c in code] == [c["execution_count"] for c in ran[1]["cells"] if c["cell_type"] == "code"]
    assert stamped["metadata"]["render"]["run_id"] == metrics["run"]["run_id"]


def test_another_latent_size_and_the_cosine_schedule_run_to_the_end(tmp_path):
    """Every shape, label and heading comes from the configuration: the smoke run with d = 8 and the cosine schedule."""
    nb = json.loads(NOTEBOOK.read_text())
    cell = next(c for c in nb["cells"] if "class VAEConfig" in "".join(c["source"]))
    source = "".join(cell["source"])
    source = source.replace("latent_dim: int = 16", "latent_dim: int = 8").replace('schedule: str = "linear"', 'schedule: str = "cosine"')
    assert "latent_dim: int = 8" in source and 'schedule: str = "cosine"' in source
    cell["source"] = source
    variant = tmp_path / "variant.ipynb"
    variant.write_text(json.dumps(nb))
    executed, run = execute(tmp_path, variant)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((tmp_path / "figures" / "metrics.json").read_text())
    assert metrics["run"]["config"]["vae"]["latent_dim"] == 8 and metrics["run"]["config"]["ddpm"]["schedule"] == "cosine"
    assert "ddpm_cosine_T100" in metrics["trainings"] and "vae_d8" in metrics["trainings"]
    assert metrics["models"]["vae"]["dims_over_0.1_nats"] <= 8
