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


def rerun(path: str | Path, timeout: int = 600) -> None:
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
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
