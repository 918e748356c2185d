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
    for name in ("vae", "ddpm", "ddim", "gan", "latent_diffusion"):
        assert metrics["models"][name]["params"] > 0 and metrics["models"][name]["sample_seconds_per_1000"] > 0
    assert metrics["sweeps"]["ddim_recommended_steps"] in metrics["sweeps"]["sampling_steps"]["ddim"] or \
        str(metrics["sweeps"]["ddim_recommended_steps"]) in metrics["sweeps"]["sampling_steps"]["ddim"]


def test_sample_files_are_exactly_the_evaluated_samples(executed):
    work, _ = executed
    metrics = json.loads((work / "figures" / "metrics.json").read_text())
    for name in MODELS:
        images = np.load(work / "data" / "samples" / f"{name}.npz")["images"]
        assert images.dtype == np.uint8 and images.shape == (metrics["models"][name]["n"], 28, 28), name
        assert images.max() > 0, name


def test_every_figure_is_saved(executed):
    work, nb = executed
    source = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    names = set(re.findall(r'"((?:q\d[a-z]?|data)_[A-Za-z0-9_]+)"', source))
    assert len(names) >= 35
    missing = [n for n in names if not (work / "figures" / f"{n}.png").exists()]
    assert not missing, missing
    assert (work / "figures" / "q2c_reverse_process.gif").stat().st_size > 10_000
