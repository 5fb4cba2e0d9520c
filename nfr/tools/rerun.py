"""Execute a chapter notebook in place, top to bottom, and strip volatile metadata.

Usage: ``python -m nfr.tools.rerun chapters/01_filtering_rules.ipynb [...]``

The run happens with the chapter's folder as working directory (as nbval runs it). Afterwards
execution timestamps and kernel-specific metadata are removed so that diffs show only real changes.
"""
from __future__ import annotations

import sys
from pathlib import Path

VOLATILE_CELL_KEYS = ("execution",)
KEEP_NB_METADATA = ("kernelspec", "language_info")


def strip(nb) -> None:
    """Remove timestamps and other volatile metadata from a notebook (in place)."""
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in KEEP_NB_METADATA}
    nb.metadata.get("language_info", {}).pop("version", None)
    for cell in nb.cells:
        for key in VOLATILE_CELL_KEYS:
            cell.metadata.pop(key, None)


def timing(nb, name: str = "", top: int = 5) -> str:
    """The run's wall time and its slowest code cells (from the execution timestamps nbclient
    records, before :func:`strip` removes them)."""
    from datetime import datetime

    def t(s):
        return datetime.fromisoformat(s.replace("Z", "+00:00"))
    cells = []
    for i, c in enumerate(nb.cells):
        e = c.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in e and "shell.execute_reply" in e:
            d = (t(e["shell.execute_reply"]) - t(e["iopub.execute_input"])).total_seconds()
            cells.append((d, i, "".join(c.source).split("\n")[0][:60]))
    total = sum(d for d, _, _ in cells)
    slow = "".join(f"\n  {d:7.1f} s  cell {i}: {src}" for d, i, src in sorted(cells, reverse=True)[:top])
    return f"{name}: {total:.0f} s in {len(cells)} code cells; slowest:{slow}"


def rerun(path: str | Path, timeout: int = 600) -> None:
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    print(timing(nb, path.name))
    strip(nb)
    nbformat.write(nb, path)
    print(f"re-executed {path}")


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__)
        return 2
    for p in args:
        rerun(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
