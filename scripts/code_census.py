"""Count how the notebook's code is put together (its code cells read as one module, plus scripts/):

    top-level names       names bound at module level across all code cells (shared: those another cell reads)
    functions > 8 params  functions (and methods) taking more than 8 parameters
    DDPM-step assembly    places outside the step builder that build a diffusion optimiser, EMA or scaler by hand
    lowercase leaks       lowercase names read in a code cell other than the one that assigns them
    closing-cell globals  run results (uppercase, bound outside definition cells) that the comparison, appendix
                          and glance cells read from globals instead of METRICS (the appendix's experiments
                          beyond the homework, which train their own models, excepted)
    scripts               each script in scripts/ and the first line of its docstring
    grader's path         from Q1 to the end of Q3: cells, code lines shown and collapsed, markdown words, figures

    python3 scripts/code_census.py           # the summary
    python3 scripts/code_census.py --list    # and every name behind each count
"""
import argparse
import ast
import builtins
import json
import re
import symtable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "rollno-hw2.ipynb"
# The one place allowed to build a diffusion model's optimiser, EMA copy and gradient scaler.
STEP_BUILDER = "diffusion_trainer"
ASSEMBLY = re.compile(r"GradScaler\(|make_ddpm_step\(|deepcopy\(model\)")


def code_cells(path=NOTEBOOK, with_tags=False):
    cells = [c for c in json.loads(Path(path).read_text())["cells"] if c["cell_type"] == "code"]
    if with_tags:
        return [("".join(c["source"]), c.get("metadata", {}).get("tags", [])) for c in cells]
    return ["".join(c["source"]) for c in cells]


def _inline_reads(table):
    """Module-level names read by a scope that runs where it is written (comprehensions, lambdas)."""
    reads = set()
    for child in table.get_children():
        if child.get_type() == "function" and (child.get_name().startswith("<") or child.get_name() == "lambda"):
            reads |= {s.get_name() for s in child.get_symbols() if s.is_referenced() and (s.is_global() or s.is_free())}
            reads |= _inline_reads(child)
    return reads


def scan(source):
    """(names the cell binds at module level, of which the defs/classes/imports, names it reads at module level)."""
    table = symtable.symtable(source, "cell", "exec")
    bound = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    defined = {s.get_name() for s in table.get_symbols() if s.is_imported() or s.is_namespace()}
    tree = ast.parse(source)
    defined |= {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    reads = {s.get_name() for s in table.get_symbols() if s.is_referenced()} | _inline_reads(table)
    return bound, defined, reads


def census(path=NOTEBOOK):
    sources = code_cells(path)
    cells = [ast.parse(src) for src in sources]
    scans = [scan(src) for src in sources]
    top = set().union(*(b for b, _, _ in scans))
    wide = []
    for tree in cells:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                n = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) - (1 if a.args and a.args[0].arg in ("self", "cls") else 0)
                if n > 8:
                    wide.append(f"{node.name} ({n})")
    leaks = set()
    for i, (bound, _, reads) in enumerate(scans):
        for name in reads - bound:
            if name[0].islower() and not hasattr(builtins, name) and any(name in b - d for j, (b, d, _) in enumerate(scans) if j != i):
                leaks.add(f"{name} (code cell {i})")
    assembly = []
    for label, source in [("notebook", "\n".join(code_cells(path)))] + [(p.name, p.read_text()) for p in sorted((ROOT / "scripts").glob("*.py"))]:
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name != STEP_BUILDER:
                if ASSEMBLY.search(ast.get_source_segment(source, node) or ""):
                    assembly.append(f"{label}:{node.name}")
        # module-level code of scripts
        top_src = "\n".join(ast.get_source_segment(source, n) or "" for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef)))
        if ASSEMBLY.search(top_src):
            assembly.append(f"{label}:<module>")
    assembly = sorted(set(assembly))
    # Results the closing cells (from the comparison on) read from globals other than METRICS: uppercase names
    # bound by a cell that is not a definitions cell (a run's result, not a constant or a function).
    tags = [t for _, t in code_cells(path, with_tags=True)]
    results = {n for (b, d, _), t in zip(scans, tags) if not {"setup", "parameters", "defs"} & set(t) for n in b - d if n.isupper()}
    # The appendix's beyond-the-homework experiments (from CLOCK.start("beyond ...") to the run-times cell's
    # CLOCK.stop()) train and draw their own models: they are not closing cells.
    first = next((i for i, src in enumerate(sources) if 'CLOCK.start("Q3 comparison")' in src), len(sources))
    beyond = next((i for i, src in enumerate(sources) if 'CLOCK.start("beyond' in src), len(sources))
    stop = next((i for i, src in enumerate(sources) if "CLOCK.stop()" in src and i >= beyond), len(sources))
    closing_cells = [scan for i, scan in enumerate(scans) if i >= first and not beyond <= i < stop]
    closing = sorted({n for _, _, reads in closing_cells for n in reads & results} - {"METRICS", "SAMPLES", "CLOCK"})
    # names another cell can see and uses: defs, classes, imports, and bound names read by some other cell
    shared = set().union(*(d for _, d, _ in scans)) | {n for i, (b, d, _) in enumerate(scans) for n in b - d
                                                       if any(n in r and n not in b2 for j, (b2, _, r) in enumerate(scans) if j != i)}
    scripts = {}
    for p in sorted((ROOT / "scripts").iterdir()):
        text = p.read_text()
        if p.suffix == ".py":
            doc = ast.get_docstring(ast.parse(text)) or ""
        else:
            doc = "\n".join(line.lstrip("# ") for line in text.splitlines()[1:4] if line.startswith("#"))
        scripts[p.name] = doc.strip().splitlines()[0] if doc.strip() else "(no description)"
    return {"top_level_names": sorted(top), "shared_top_level_names": sorted(shared), "functions_over_8_params": sorted(wide),
            "ddpm_step_assembly": assembly,
            "lowercase_read_outside_their_cell": sorted(leaks), "results_read_by_closing_cells_besides_METRICS": closing,
            "scripts": scripts}


FIGURE_NAME = re.compile(r"[\"'](q\d[a-z]?_\w+?)(?:\.gif)?[\"']")


def grader_path(path=NOTEBOOK):
    """What a grader reads from Q1 to the end of Q3 (from the `q1` anchor to the `appendix` anchor): cells, code lines
    shown and collapsed, markdown words, and the figures those cells save; and the notebook's markdown words in all."""
    cells = json.loads(Path(path).read_text())["cells"]
    text = ["".join(c["source"]) for c in cells]
    start = next(i for i, t in enumerate(text) if '<a id="q1"></a>' in t)
    end = next(i for i, t in enumerate(text) if '<a id="appendix"></a>' in t)
    part = list(zip(cells[start:end], text[start:end]))
    code = [(c, t) for c, t in part if c["cell_type"] == "code"]
    hidden = [t for c, t in code if c.get("metadata", {}).get("jupyter", {}).get("source_hidden")]
    shown = [t for c, t in code if not c.get("metadata", {}).get("jupyter", {}).get("source_hidden")]
    return {"cells": len(part), "code_lines_shown": sum(len(t.splitlines()) for t in shown),
            "code_lines_collapsed": sum(len(t.splitlines()) for t in hidden),
            "markdown_words": sum(len(t.split()) for c, t in part if c["cell_type"] == "markdown"),
            "figures": len({m for _, t in code for m in FIGURE_NAME.findall(t)}),
            "markdown_words_whole_notebook": sum(len(t.split()) for c, t in zip(cells, text) if c["cell_type"] == "markdown")}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="print every name behind each count")
    parser.add_argument("notebook", nargs="?", default=str(NOTEBOOK))
    args = parser.parse_args()
    c = census(args.notebook)
    for key, value in c.items():
        print(f"{key}: {len(value)}")
        if key == "scripts":
            for name, doc in value.items():
                print(f"    {name}: {doc}")
        elif args.list or not key.endswith("top_level_names"):
            for v in value:
                print(f"    {v}")
    print("grader's path, Q1 to Q3: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in grader_path(args.notebook).items()))


if __name__ == "__main__":
    main()
