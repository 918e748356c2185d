"""Definitions that load as a module without side effects."""
import os

from notebook_defs import load_notebook


def test_loading_the_definitions_creates_no_folder(tmp_path):
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        nb = load_notebook("smoke", name="hw2_notebook_no_side_effects")
        assert callable(nb.train_diffusion) and nb.PROFILES["smoke"].ddpm.train.budget_s is None
    finally:
        os.chdir(old)
    assert list(tmp_path.iterdir()) == []
