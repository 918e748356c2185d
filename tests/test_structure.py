"""Definitions that load as a module without side effects."""
import os

from notebook_defs import load_notebook


def test_loading_the_definitions_creates_no_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HW2_BARS", "0")  # as the render and the smoke run set it
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        nb = load_notebook("smoke", name="hw2_notebook_no_side_effects")
        assert callable(nb.train_diffusion) and callable(nb.fit) and callable(nb.progress)
        smoke = nb.PROFILES["smoke"]
        assert (smoke.ddpm.train.steps, smoke.ddpm.chain_train.steps, smoke.vae.train.steps, smoke.eval.clf.steps) == (30, 10, 40, 40)
        assert set(nb.PROFILES) == set(nb.WAIT_FORECAST) == {"cpu", "smoke", "gpu"}
        assert nb.BARS is False and nb.progress(range(3), "x").disable  # HW2_BARS=0: no bars
    finally:
        os.chdir(old)
    assert list(tmp_path.iterdir()) == []
