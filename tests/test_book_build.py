"""The book builds warning-free (-W -n) from the committed outputs and references no external script."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nfr.tools.check_html import external_references

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not (ROOT / "book/_static/mathjax/tex-chtml.js").exists(),
                    reason="local MathJax missing: run `make mathjax` (make test does)")
def test_book_builds_without_warnings_and_offline(tmp_path):
    jb = Path(sys.executable).with_name("jupyter-book")
    assert jb.exists() or shutil.which("jupyter-book"), "jupyter-book not installed"
    proc = subprocess.run([str(jb if jb.exists() else "jupyter-book"), "build", str(ROOT), "--path-output",
                           str(tmp_path), "-W", "-n", "--keep-going"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    html = tmp_path / "_build" / "html"
    assert (html / "index.html").exists()
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    assert external_references(html) == []
    for chapter in (ROOT / "chapters").glob("*.ipynb"):
        page = (html / "chapters" / f"{chapter.stem}.html").read_text()
        assert "prf:" in page or "proof" in page
        assert '<img alt="' in page, f"{chapter.stem}: figure without alt text or no figure"
