"""The package's structure, read from the source with ast (nfr.tools.imports): one direction of
imports through the layers, no import cycles, no module importing another's private names, imports
at the top of modules, and chapters that use only public names of nfr."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nfr.tools import imports as I

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def graph():
    return I.scan()


def test_no_function_body_over_80_lines(graph):
    """Functions stay readable: at most 80 lines of code each (docstrings not counted)."""
    assert graph.code[0][0] <= 80, graph.code[:3]


def test_no_import_cycles(graph):
    assert graph.cycles() == []


def test_no_import_runs_back_up_the_layers(graph):
    assert graph.upward() == [], "imports from a lower layer to a higher one (see nfr.tools.imports.LAYERS)"


def test_every_module_has_a_layer(graph):
    heads = {m.split(".")[1] for m in graph.modules if "." in m}
    assert heads <= set(I.LAYERS), sorted(heads - set(I.LAYERS))


def test_no_module_imports_another_modules_private_names(graph):
    assert graph.private == []


def test_imports_at_the_top_of_modules(graph):
    """nfr imports sit at the top of each module, where a reader sees the dependencies (the
    torch-free `import nfr` is kept by the package boundary: nfr/__init__ imports nothing heavy)."""
    assert graph.local_imports() == []


def test_experiments_never_import_a_sibling(graph):
    for m, targets in graph.edges.items():
        if m.startswith("nfr.experiments.") and m != "nfr.experiments.base":
            sib = [t for t in targets if t.startswith("nfr.experiments.") and t != "nfr.experiments.base"]
            assert not sib, (m, sib)


def test_the_engine_never_imports_the_reference(graph):
    for m, targets in graph.edges.items():
        if m.startswith("nfr.engine"):
            assert not any(t.startswith("nfr.reference") for t in targets), m


def test_import_nfr_stays_torch_free():
    code = "import sys, nfr, nfr.reference, nfr.config, nfr.errors; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _chapter_code():
    for p in sorted((ROOT / "chapters").glob("*.ipynb")):
        nb = json.loads(p.read_text())
        for i, c in enumerate(nb["cells"]):
            if c["cell_type"] == "code":
                src = "".join(c["source"])
                lines = [ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))]
                yield p.name, i, "\n".join(lines)


def test_chapters_use_only_public_names_of_nfr():
    """A chapter is read by students: it reaches no `_private` name of nfr."""
    bad, aliases = [], {}
    cells = list(_chapter_code())
    for name, i, src in cells:                        # the names each notebook binds to nfr
        al = aliases.setdefault(name, {"nfr"})
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nfr"):
                if any(part.startswith("_") for part in node.module.split(".")):
                    bad.append((name, i, node.module))
                for a in node.names:
                    if a.name.startswith("_"):
                        bad.append((name, i, a.name))
                    al.add(a.asname or a.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("nfr"):
                        al.add((a.asname or a.name).split(".")[0])
    for name, i, src in cells:
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                base = node.value
                while isinstance(base, ast.Attribute):
                    base = base.value
                if isinstance(base, ast.Name) and base.id in aliases[name]:
                    bad.append((name, i, node.attr))
    assert not bad, bad
