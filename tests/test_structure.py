"""Definitions that load as a module without side effects, and scripts that explain themselves."""
import os
import subprocess
import sys

import pytest
from notebook_defs import ROOT, load_notebook


def test_loading_the_definitions_creates_no_folder(tmp_path):
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        nb = load_notebook("smoke", name="hw2_notebook_no_side_effects")
        assert callable(nb.train_diffusion) and nb.PROFILES["smoke"].ddpm.train.budget_s is None
    finally:
        os.chdir(old)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "scripts").glob("*.py")))
def test_every_script_explains_itself(script):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "usage" in out.stdout.lower(), out.stderr[-2000:]


def test_the_render_script_parses_and_explains_itself():
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / "render.sh")]).returncode == 0
    out = subprocess.run(["bash", str(ROOT / "scripts" / "render.sh"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "scripts/render.sh PROFILE" in out.stdout
