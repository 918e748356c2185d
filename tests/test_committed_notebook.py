"""The committed notebook, as a grader opens it in Colab: what "Run all" will execute."""
import json

from notebook_defs import NOTEBOOK

CELLS = json.loads(NOTEBOOK.read_text())["cells"]


def tagged(tag):
    return [c for c in CELLS if tag in c.get("metadata", {}).get("tags", [])]


def test_exactly_one_parameters_cell_and_no_injected_parameters():
    # papermill's injected copy runs after the parameters cell in Colab and silently overrides it
    assert len(tagged("parameters")) == 1
    assert tagged("injected-parameters") == []
    assert not any("# Parameters\nPROFILE" in "".join(c["source"]) for c in CELLS)


def test_parameters_cell_defaults_to_auto():
    source = "".join(tagged("parameters")[0]["source"])
    assert 'PROFILE = "auto"' in source and 'USE_COMPILE = "auto"' in source and "RETRAIN = False" in source


def test_no_pip_install_or_restart_in_the_notebook():
    code = "\n".join("".join(c["source"]) for c in CELLS if c["cell_type"] == "code")
    assert "pip install" not in code and "os.kill" not in code and "exit()" not in code


def test_every_anchor_the_intro_links_to_exists():
    import re

    text = "\n".join("".join(c["source"]) for c in CELLS if c["cell_type"] == "markdown")
    links = set(re.findall(r"\]\(#([\w-]+)\)", text))
    anchors = set(re.findall(r'<a id="([\w-]+)"></a>', text))
    assert links and links <= anchors, links - anchors
