"""The chapters whose kernel loads torch: ``python -m nfr.tools.torch_chapters [chapters/]``.

``make test`` runs nbval twice, the second time under another CPU's torch kernels (generic ATen,
SSE4.1 oneDNN). Those settings reach torch only: a chapter that never loads torch computes the
same bits in both passes, so the second pass re-executes only the chapters printed here. A chapter
counts as a torch chapter when running every import statement of its code cells, together, in a
fresh interpreter leaves ``torch`` in ``sys.modules`` (the package imports at the top of its
modules, so a function can only reach torch through a module that imports it). A chapter whose
imports fail counts as a torch chapter, so that it is never skipped by mistake.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path


def import_lines(path: Path) -> list[str]:
    """Every import statement of the notebook's code cells (IPython magics skipped)."""
    out = []
    for cell in json.loads(Path(path).read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        code = "\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(code)
        except SyntaxError:
            out.append("import torch  # unparsable cell: counted as a torch chapter")
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                out.append(ast.unparse(node))
    return out


def loads_torch(path: Path) -> bool:
    code = "\n".join(import_lines(path) + ["import sys", "raise SystemExit(0 if 'torch' in sys.modules else 3)"])
    r = subprocess.run([sys.executable, "-c", code], cwd=Path(path).parent, capture_output=True)
    return r.returncode != 3


def torch_chapters(folder: str | Path = "chapters") -> list[Path]:
    return [p for p in sorted(Path(folder).glob("*.ipynb")) if loads_torch(p)]


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print(" ".join(str(p) for p in torch_chapters(args[0] if args else "chapters")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
