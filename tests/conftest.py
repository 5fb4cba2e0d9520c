"""Shared fixtures: the book is built once per test session (test_book_build and test_browser use it)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MATHJAX = ROOT / "book/_static/mathjax/tex-chtml.js"


class BookBuild:
    """The result of ``jupyter-book build . -W -n --keep-going`` into a temporary folder."""

    def __init__(self, proc: subprocess.CompletedProcess, html: Path):
        self.proc, self.html = proc, html

    @property
    def log(self) -> str:
        return self.proc.stdout[-3000:] + self.proc.stderr[-3000:]


@pytest.fixture(scope="session")
def book_build(tmp_path_factory) -> BookBuild:
    """Build the book from the committed notebook outputs, once, warning-free or not (tests assert)."""
    if not MATHJAX.exists():
        pytest.skip("local MathJax missing: run `make mathjax` (make test does)")
    jb = Path(sys.executable).with_name("jupyter-book")
    assert jb.exists() or shutil.which("jupyter-book"), "jupyter-book not installed"
    out = tmp_path_factory.mktemp("book")
    proc = subprocess.run([str(jb if jb.exists() else "jupyter-book"), "build", str(ROOT), "--path-output",
                           str(out), "-W", "-n", "--keep-going"], capture_output=True, text=True)
    return BookBuild(proc, out / "_build" / "html")


@pytest.fixture
def one_thread():
    """Tiny convolutions run far faster on one thread on the shared 2-core CI machine (two
    threads per process are many times slower there); the thread count is restored after."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print (and write to _build/oracle_differences.json) the largest relative difference
    measured against each oracle: the NumPy reference, literal formulas, Captum, Zennit."""
    import json
    try:
        from _oracle_log import LOG
    except ImportError:
        return
    if not LOG:
        return
    rows = {k: max(v, key=lambda t: t[1]) for k, v in LOG.items()}
    terminalreporter.write_sep("-", "largest relative difference per oracle (max|ours - oracle| / max|oracle|)")
    for k, (where, rel) in sorted(rows.items()):
        terminalreporter.write_line(f"{k:40s} {rel:9.2e}  ({len(LOG[k])} comparisons; worst: {where.split(' ')[0]})")
    out = ROOT / "_build" / "oracle_differences.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({k: {"max_relative_difference": r, "worst": w, "comparisons": len(LOG[k])}
                               for k, (w, r) in rows.items()}, indent=1) + "\n")
