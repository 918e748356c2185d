"""How the notebook's code is put together: definitions that load as a module without side effects, one
place that assembles a diffusion training step, results read from the METRICS registry, scripts that run."""
import os
import subprocess
import sys

import pytest
from notebook_defs import ROOT, load_notebook

sys.path.insert(0, str(ROOT / "scripts"))
import code_census  # noqa: E402


def test_loading_the_definitions_creates_no_folder(tmp_path):
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        nb = load_notebook("smoke", name="hw2_notebook_no_side_effects")
        assert callable(nb.train_diffusion) and nb.CFG is nb.PROFILES["smoke"]
    finally:
        os.chdir(old)
    assert list(tmp_path.iterdir()) == []


def test_the_code_census_holds():
    """No lowercase name crosses cells; no function takes more than 8 parameters; the diffusion optimiser, EMA and
    scaler are built in diffusion_trainer alone; the closing cells read results from METRICS alone."""
    census = code_census.census()
    assert census["lowercase_read_outside_their_cell"] == []
    assert census["functions_over_8_params"] == []
    assert census["ddpm_step_assembly"] == []
    assert census["results_read_by_closing_cells_besides_METRICS"] == []


def test_the_census_finds_what_it_counts(tmp_path):
    """The census is not blind: a notebook with a leaked lowercase name, a wide function, a hand-built scaler and a
    closing cell reading a result; the appendix's beyond-the-homework cells may read results."""
    import json

    cells = ["x = 1\n", "y = x + 1\n", "def wide(a, b, c, d, e, f, g, h, i):\n    return torch.amp.GradScaler('cpu')\n",
             'CLOCK.start("Q3 comparison")\nRESULT = 1\nOTHER = 2\n', "print(RESULT)\n",
             'CLOCK.start("beyond: an experiment")\nprint(OTHER)\n', "CLOCK.stop()\n"]
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": c} for c in cells]}
    path = tmp_path / "toy.ipynb"
    path.write_text(json.dumps(nb))
    census = code_census.census(path)
    assert census["lowercase_read_outside_their_cell"] == ["x (code cell 1)"]
    assert census["functions_over_8_params"] == ["wide (9)"]
    assert "notebook:wide" in census["ddpm_step_assembly"]
    assert census["results_read_by_closing_cells_besides_METRICS"] == ["RESULT"]


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "scripts").glob("*.py")))
def test_every_script_runs_in_its_quick_mode(script):
    """Each script's --help, and its --dry-run where it has one (a few steps of the real code on the CPU)."""
    path = ROOT / "scripts" / script
    help_text = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=300)
    assert help_text.returncode == 0, help_text.stderr[-2000:]
    if "--dry-run" in help_text.stdout:
        dry = subprocess.run([sys.executable, str(path), "--dry-run"], capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert dry.returncode == 0, (dry.stdout[-2000:], dry.stderr[-2000:])


def test_the_render_script_parses_and_explains_itself():
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / "render.sh")]).returncode == 0
    out = subprocess.run(["bash", str(ROOT / "scripts" / "render.sh"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage" in out.stdout.lower()
