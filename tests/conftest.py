import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from notebook_defs import ROOT, load_notebook  # noqa: E402


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    """A scratch working directory holding a copy of the shipped MNIST files (the notebook writes
    figures/, checkpoints/ and data/samples/ relative to its working directory)."""
    work = tmp_path_factory.mktemp("work")
    shutil.copytree(ROOT / "data" / "MNIST" / "raw", work / "data" / "MNIST" / "raw",
                    ignore=shutil.ignore_patterns("*-ubyte"))
    return work


@pytest.fixture(scope="session")
def nb(workdir):
    """The notebook's definitions, loaded with the smoke profile inside the scratch directory."""
    old = os.getcwd()
    os.chdir(workdir)
    try:
        module = load_notebook("smoke")
        module.CKPT_DIR = workdir / "checkpoints"  # the tests' trainings never write into the repository
        yield module
    finally:
        os.chdir(old)


@pytest.fixture(scope="session")
def mnist(nb, workdir):
    old = os.getcwd()
    os.chdir(workdir)
    try:
        return nb.load_mnist("data", nb.DEVICE)
    finally:
        os.chdir(old)
