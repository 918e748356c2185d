"""Execute the whole notebook top to bottom in the smoke profile and check what it wrote."""
import json
import math
import re
import shutil

import numpy as np
import papermill
import pytest

from notebook_defs import NOTEBOOK, ROOT

MODELS = ("real_train_vs_test", "vae", "ddpm", "ddim", "gan", "latent_diffusion", "vae_reconstruction")
METRIC_KEYS = ("n", "fid", "classifier_score", "precision", "recall", "density", "coverage", "class_hist",
               "class_kl_uniform", "confident_frac", "memorisation_ratio")


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    work = tmp_path_factory.mktemp("smoke")
    shutil.copytree(ROOT / "data" / "MNIST" / "raw", work / "data" / "MNIST" / "raw",
                    ignore=shutil.ignore_patterns("*-ubyte"))
    out = work / "executed.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), parameters={"PROFILE": "smoke"}, cwd=str(work),
                               kernel_name="python3", progress_bar=False)
    return work, json.loads(out.read_text())


def test_notebook_ran_top_to_bottom_without_error(executed):
    _, nb = executed
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] is not None for c in code)
    counts = [c["execution_count"] for c in code]
    assert counts == sorted(counts)
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]


def test_metrics_file_has_the_promised_keys(executed):
    work, _ = executed
    metrics = json.loads((work / "figures" / "metrics.json").read_text())
    run = metrics["run"]
    assert run["profile"] == "smoke" and run["device"] == "cpu" and run["torch"]
    assert run["seconds_total"] > 0 and set(run["seconds_by_section"]) >= {"yardstick", "Q1 VAE", "Q2 DDPM"}
    assert run["profile_reason"] and run["budget_seconds"] == 240
    # the forecast printed before Q2: every forecast section was also timed, with a positive forecast
    assert set(run["forecast_seconds"]) <= set(run["seconds_by_section"])
    assert all(v > 0 for v in run["forecast_seconds"].values()) and all(v > 0 for v in run["unit_seconds"].values())
    # floors at every sample count the notebook compares at, each with a bootstrap FID interval
    floors = metrics["floors"]
    assert {int(n) for n in floors} >= {256, 128, 64}
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
    assert len(sweeps["chain_length"]) == 4  # two shorter linear chains, the linear T, the cosine T: all trained alike
    assert metrics["models"]["ddpm"]["train_steps"] == 40 and metrics["models"]["ddpm"]["train_batch"] == 16
    assert set(metrics["targets"]) and all(isinstance(v, bool) for v in metrics["targets"].values())
    assert metrics["sweeps"]["ddim_recommended_steps"] in metrics["sweeps"]["sampling_steps"]["ddim"] or \
        str(metrics["sweeps"]["ddim_recommended_steps"]) in metrics["sweeps"]["sampling_steps"]["ddim"]


def test_sample_files_are_exactly_the_evaluated_samples(executed):
    work, _ = executed
    metrics = json.loads((work / "figures" / "metrics.json").read_text())
    for name in MODELS:
        images = np.load(work / "data" / "samples" / f"{name}.npz")["images"]
        assert images.dtype == np.uint8 and images.shape == (metrics["models"][name]["n"], 28, 28), name
        assert images.max() > 0, name


def test_forecast_and_answers_at_a_glance_are_printed(executed):
    _, nb = executed
    text = "\n".join("".join(o["text"]) for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]
                     if o["output_type"] == "stream")
    assert "this run should end in about" in text and "actual/forecast" in text
    glance = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]
              if "text/markdown" in o.get("data", {}) and "| 2(e) |" in "".join(o["data"]["text/markdown"])]
    assert len(glance) == 1
    table = "".join(glance[0]["data"]["text/markdown"])
    for part in ("1(a)", "1(b)", "1(c)", "1(d)", "2(a)", "2(b)", "2(c)", "2(d)", "2(e)", "3(a)", "3(b)", "3(c)"):
        assert f"| {part} |" in table, part
    assert "nan" not in table


def test_injected_parameters_are_stripped_by_the_render_script(executed, tmp_path):
    import subprocess
    import sys

    _, nb = executed
    path = tmp_path / "executed.ipynb"
    path.write_text(json.dumps(nb))
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])  # papermill added one
    subprocess.run([sys.executable, str(ROOT / "scripts" / "strip_injected.py"), str(path)], check=True)
    stripped = json.loads(path.read_text())
    assert not any("injected-parameters" in c["metadata"].get("tags", []) for c in stripped["cells"])
    assert len(stripped["cells"]) == len(nb["cells"]) - 1


def test_every_figure_is_saved(executed):
    work, nb = executed
    source = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    names = set(re.findall(r'"((?:q\d[a-z]?|data)_[A-Za-z0-9_]+)"', source))
    assert len(names) >= 35
    missing = [n for n in names if not (work / "figures" / f"{n}.png").exists()]
    assert not missing, missing
    assert (work / "figures" / "q2c_reverse_process.gif").stat().st_size > 10_000
