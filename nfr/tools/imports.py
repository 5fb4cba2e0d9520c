"""The package's import graph, read from the source with :mod:`ast` (nothing is imported).

``python -m nfr.tools.imports`` prints the counts the architecture tests hold the package to:
import cycles between modules, imports that run back up the layers, imports of another module's
``_private`` names, imports hidden inside functions, and the largest functions.

Layers, top to bottom (a module may import only from its own layer or below; see
``tests/test_architecture.py``)::

    cli, tools, bench, claims, evidence          the command line, the book's ledger, evidence runs
    experiments                                  one module per experiment
    setup, train                                 model + data loading; training
    kis, predictable, trgbp, baselines, failure, backdoors, spectrum   methods and their measures
    metrics, data, models, interop, distributed  measures, data, models, other libraries
    engine                                       the torch engine
    reference, plotting                          the NumPy specification; drawing
    config, errors, verdicts                     option fields; errors; verdicts from criteria + evidence
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]

# lower number = lower layer; a module may import modules of the same or a lower number
LAYERS = {
    "errors": 0,
    "config": 1, "verdicts": 1, "stats": 1,
    "reference": 2, "plotting": 2,
    "engine": 3,
    "metrics": 4, "data": 4, "models": 4, "interop": 4, "distributed": 4, "resources": 4,
    "kis": 5, "predictable": 5, "mprt": 5, "trgbp": 5, "baselines": 5, "failure": 5, "backdoors": 5, "spectrum": 5,
    "setup": 6, "train": 6,
    "experiments": 7, "explorables": 7,
    "cli": 8, "tools": 8, "bench": 8, "claims": 8, "evidence": 8,
    "__main__": 9, "__init__": 9,
}


@dataclass
class ImportGraph:
    edges: dict = field(default_factory=dict)          # module -> {imported module: [(line, top_level)]}
    private: list = field(default_factory=list)        # (module, line, imported module, name):
    # a _private name of another module, or anything of a _private module
    functions: list = field(default_factory=list)      # (lines, module, qualified name)
    code: list = field(default_factory=list)           # (lines without the docstring, module, name)

    @property
    def modules(self):
        return sorted(self.edges)

    def cycles(self) -> list[list[str]]:
        """Strongly connected components with more than one module (Tarjan)."""
        index, low, stack, on, out = {}, {}, [], set(), []
        counter = [0]

        def visit(v):
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in self.edges.get(v, {}):
                if w not in self.edges:
                    continue
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))

        sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
        for v in self.modules:
            if v not in index:
                visit(v)
        return out

    def upward(self) -> list[tuple[str, str, int]]:
        """Imports from a module to a module of a higher layer: (importer, imported, line)."""
        out = []
        for m, targets in self.edges.items():
            for t, sites in targets.items():
                if layer(t) > layer(m):
                    out.extend((m, t, line) for line, _ in sites)
        return out

    def local_imports(self) -> list[tuple[str, str, int]]:
        """nfr imports inside functions (hidden from a reader of the module's top)."""
        return [(m, t, line) for m, targets in self.edges.items() for t, sites in targets.items()
                for line, top in sites if not top]


def layer(module: str) -> int:
    """The layer of ``nfr.a.b``: that of its first component below ``nfr``."""
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else "__init__"
    return LAYERS.get(head, LAYERS.get(head.lstrip("_"), 5))


def module_name(path: Path, root: Path = PACKAGE) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_pkg else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _known(name: str, modules: set) -> str | None:
    """The longest prefix of ``name`` that is a module of the package."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        cand = ".".join(parts[:k])
        if cand in modules:
            return cand
    return None


def _private_module(module: str) -> bool:
    """A module whose own name, or a package on its path, starts with one underscore."""
    return any(p.startswith("_") and not p.startswith("__") for p in module.split("."))


def _same_module(importer: str, target: str) -> bool:
    return importer == target


def scan(root: Path = PACKAGE) -> ImportGraph:
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    modules = set(files)
    g = ImportGraph()
    for mod, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        is_pkg = path.name == "__init__.py"
        g.edges.setdefault(mod, {})
        top_nodes = set(map(id, tree.body))
        # imports under `if TYPE_CHECKING:` or `try:` at module level count as top-level
        for node in tree.body:
            if isinstance(node, (ast.If, ast.Try)):
                top_nodes.update(id(n) for n in ast.walk(node))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    t = _known(a.name, modules)
                    if t and t != mod:
                        g.edges[mod].setdefault(t, []).append((node.lineno, id(node) in top_nodes))
                        if _private_module(t):
                            g.private.append((mod, node.lineno, t, a.name))
            elif isinstance(node, ast.ImportFrom):
                src = _resolve(mod, is_pkg, node)
                for a in node.names:
                    full = f"{src}.{a.name}"
                    t = _known(full, modules) or _known(src, modules)
                    if not t or t == mod:
                        continue
                    g.edges[mod].setdefault(t, []).append((node.lineno, id(node) in top_nodes))
                    if t == _known(src, modules) and a.name.startswith("_") and not a.name.startswith("__"):
                        g.private.append((mod, node.lineno, t, a.name))
                    elif _private_module(t) and not _same_module(mod, t):
                        g.private.append((mod, node.lineno, t, a.name))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                g.functions.append((n, mod, node.name))
                g.code.append((n - _docstring_lines(node), mod, node.name))
    g.functions.sort(reverse=True)
    g.code.sort(reverse=True)
    return g


def _docstring_lines(node) -> int:
    first = node.body[0] if node.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return (first.end_lineno or first.lineno) - first.lineno + 1
    return 0


def report(g: ImportGraph | None = None) -> dict:
    g = g or scan()
    return {
        "modules": len(g.modules),
        "cycles": g.cycles(),
        "upward_imports": len(g.upward()),
        "private_imports": len(g.private),
        "imports_inside_functions": len(g.local_imports()),
        "largest_functions": [f"{m}.{f} ({n} lines)" for n, m, f in g.functions[:5]],
        "largest_function_bodies": [f"{m}.{f} ({n} lines without its docstring)" for n, m, f in g.code[:5]],
    }


def main(argv=None) -> int:
    g = scan()
    r = report(g)
    print(f"modules: {r['modules']}")
    print(f"import cycles: {len(r['cycles'])}" + "".join(f"\n  {' <-> '.join(c)}" for c in r["cycles"]))
    print(f"imports that run back up the layers: {r['upward_imports']}")
    for m, t, line in g.upward():
        print(f"  {m}:{line} -> {t}")
    print(f"imports of another module's private names: {r['private_imports']}")
    for m, line, t, name in g.private:
        print(f"  {m}:{line} {t}.{name}")
    print(f"nfr imports inside functions: {r['imports_inside_functions']}")
    print("largest functions: " + "; ".join(r["largest_functions"]))
    print("largest function bodies: " + "; ".join(r["largest_function_bodies"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
