"""Execute the whole notebook top to bottom in the smoke profile and check what it wrote."""
import json
import math
import re
import shutil

import numpy as np
import papermill
import pytest

from notebook_defs import NOTEBOOK, ROOT, load_notebook

MODELS = ("real_train_vs_test", "vae", "ddpm", "ddim", "gan", "latent_diffusion", "vae_reconstruction")
METRIC_KEYS = ("n", "fid", "classifier_score", "precision", "recall", "density", "coverage", "class_hist",
               "class_kl_uniform", "confident_frac", "memorisation_ratio")


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    work = tmp_path_factory.mktemp("smoke")
    shutil.copytree(ROOT / "data" / "MNIST" / "raw", work / "data" / "MNIST" / "raw",
                    ignore=shutil.ignore_patterns("*-ubyte"))
    out = work / "executed.ipynb"
    try:
        papermill.execute_notebook(str(NOTEBOOK), str(out), parameters={"PROFILE": "smoke"}, cwd=str(work),
                                   kernel_name="python3", progress_bar=False)
        error = None
    except papermill.PapermillExecutionError as err:  # reported by the first test; the others skip
        error = err
    return work, json.loads(out.read_text()), error


@pytest.fixture(scope="module")
def ran(executed):
    work, nb, error = executed
    if error is not None:
        pytest.skip(f"the notebook did not run to the end (see test_the_notebook_runs_to_the_end): {error.ename}")
    return work, nb


@pytest.fixture(scope="module")
def metrics(ran):
    return json.loads((ran[0] / "figures" / "metrics.json").read_text())


def test_the_notebook_runs_to_the_end(executed):
    """Every code cell ran, in order, and none raised: the failing cell and its error are named otherwise."""
    _, nb, error = executed
    assert error is None, f"cell {error.exec_count} raised {error.ename}: {error.evalue}"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))


def stderr_lines(nb):
    """{code cell index: stderr lines} of a saved notebook, for the cells that wrote any."""
    lines = {}
    for i, cell in enumerate(nb["cells"]):
        text = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("name") == "stderr")
        if text:
            lines[i] = text.replace("\r", "\n").splitlines()
    return lines


def test_no_progress_bars_in_the_saved_outputs(ran):
    """Text progress bars (tqdm without the notebook widget) would write hundreds of lines into a saved run."""
    for i, lines in stderr_lines(ran[1]).items():
        assert not any("it/s]" in line for line in lines), (i, lines[:3])


def test_metrics_file_has_the_promised_keys(metrics):
    import torch

    smoke = load_notebook("smoke").PROFILES["smoke"]
    run = metrics["run"]
    assert run["profile"] == "smoke" and run["torch"] == torch.__version__
    assert run["device"] == (torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
    assert run["config"]["ddpm_steps"] == smoke.ddpm_steps and run["budget_seconds"] == smoke.budget_seconds
    assert run["seconds_total"] > 0 and set(run["seconds_by_section"]) >= {"yardstick", "Q1 VAE", "Q2 DDPM"}
    assert run["profile_reason"]
    # the forecast printed before Q2: every forecast section was also timed, with a positive forecast
    assert set(run["forecast_seconds"]) <= set(run["seconds_by_section"])
    assert all(v > 0 for v in run["forecast_seconds"].values()) and all(v > 0 for v in run["unit_seconds"].values())
    # floors at every sample count the notebook compares at, each with a bootstrap FID interval
    floors = metrics["floors"]
    assert {int(n) for n in floors} >= {smoke.n_eval, smoke.n_small, smoke.n_curve}
    for n, floor in floors.items():
        assert floor["n"] == int(n) and floor["fid_low"] < floor["fid"] < floor["fid_high"]
    clf = metrics["classifier"]
    assert clf["feature_dim"] == 128
    assert clf["test_accuracy"] > 0.5  # far above the 10% of chance, even after one short smoke epoch
    for name in MODELS:
        m = metrics["models"][name]
        for key in METRIC_KEYS:
            assert key in m, (name, key)
        for key in ("fid", "precision", "recall", "density", "coverage", "classifier_score"):
            assert math.isfinite(m[key]), (name, key)
        assert 1 <= m["classifier_score"] <= 10 and sum(m["class_hist"]) == m["n"]
        assert m["fid_low"] < m["fid"] < m["fid_high"], name
    for name in ("vae", "ddpm", "ddim", "gan", "latent_diffusion"):
        assert metrics["models"][name]["params"] > 0 and metrics["models"][name]["sample_seconds_per_1000"] > 0
    sweeps = metrics["sweeps"]
    for series in list(sweeps["sampling_steps"].values()) + [sweeps["chain_length"], sweeps["vae_latent_size"]]:
        for point in series.values():
            assert point["fid_low"] < point["fid"] < point["fid_high"]
    # the profile's settings reach the models: the shorter chains, the linear T, the cosine T; the DDPM's steps and batch
    assert len(sweeps["chain_length"]) == len(smoke.cmp_T) + 2
    assert {s["n"] for s in sweeps["chain_length"].values()} == {smoke.n_small}
    for name in ("ddpm", "ddim"):
        m = metrics["models"][name]
        assert (m["train_steps"], m["train_batch"]) == (smoke.ddpm_steps, smoke.ddpm_batch) and m["n"] == smoke.n_eval
    assert set(metrics["targets"]) and all(isinstance(v, bool) for v in metrics["targets"].values())
    assert metrics["sweeps"]["ddim_recommended_steps"] in metrics["sweeps"]["sampling_steps"]["ddim"] or \
        str(metrics["sweeps"]["ddim_recommended_steps"]) in metrics["sweeps"]["sampling_steps"]["ddim"]


def test_sample_files_are_exactly_the_evaluated_samples(ran, metrics):
    work, _ = ran
    for name in MODELS:
        images = np.load(work / "data" / "samples" / f"{name}.npz")["images"]
        assert images.dtype == np.uint8 and images.shape == (metrics["models"][name]["n"], 28, 28), name
        assert images.max() > 0, name


def test_forecast_and_answers_at_a_glance_are_printed(ran):
    """The forecast and the timing table are printed; the answers at a glance fill the last cell and the display
    under the title (a placeholder until the last cell updates it), one line per homework part."""
    _, nb = ran
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    text = "\n".join("".join(o["text"]) for c in code for o in c["outputs"] if o["output_type"] == "stream")
    assert "this run should end in about" in text and "actual/forecast" in text

    def markdown(cell):
        return ["".join(o["data"]["text/markdown"]) for o in cell["outputs"] if "text/markdown" in o.get("data", {})]

    first = next(c for c in code if "answers-at-a-glance" in c["metadata"].get("tags", []))
    assert code.index(first) < 3  # on the first screen, under the title
    for table in (markdown(first)[0], markdown(code[-1])[-1]):
        for part in ("1(a)", "1(b)", "1(c)", "1(d)", "2(a)", "2(b)", "2(c)", "2(d)", "2(e)", "3(a)", "3(b)", "3(c)"):
            assert f"| [{part}](#q{part[0]}{part[2]}) |" in table, part
        assert "nan" not in table and "filled in by" not in table


def test_the_render_script_strips_the_injected_cell_and_stamps_the_run(ran, metrics, tmp_path):
    import hashlib
    import subprocess
    import sys

    work, nb = ran
    path = tmp_path / "executed.ipynb"
    path.write_text(json.dumps(nb))
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])  # papermill added one
    subprocess.run([sys.executable, str(ROOT / "scripts" / "stamp_render.py"), str(path), "--metrics",
                    str(work / "figures" / "metrics.json")], check=True)
    stamped = json.loads(path.read_text())
    assert not any("injected-parameters" in c["metadata"].get("tags", []) for c in stamped["cells"])
    assert len(stamped["cells"]) == len(nb["cells"]) - 1
    code = [c for c in stamped["cells"] if c["cell_type"] == "code"]
    assert all(c["metadata"]["source_sha256"] == hashlib.sha256("".join(c["source"]).encode()).hexdigest() for c in code)
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))  # numbered without the injected cell
    assert stamped["metadata"]["render"]["run_id"] == metrics["run"]["run_id"]
    for name in MODELS:  # every sample file of the run carries its id
        assert str(np.load(work / "data" / "samples" / f"{name}.npz")["run_id"]) == metrics["run"]["run_id"]


def test_every_figure_is_saved_and_no_other(ran):
    """Each figure name the code saves (save_fig, show_images, plot helpers) is a file of this run, and each file
    in figures/ is one the code names: nothing missing, nothing stale."""
    work, nb = ran
    source = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    names = set(re.findall(r'"((?:q\d[a-z]?|data)_[A-Za-z0-9_]+)"', source))
    written = {p.stem for p in (work / "figures").glob("*.png")}
    assert names and names == written, (names - written, written - names)
    assert (work / "figures" / "q2c_reverse_process.gif").stat().st_size > 10_000
