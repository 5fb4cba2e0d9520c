"""The book builds warning-free (-W -n) from the committed outputs and references no external script."""
from pathlib import Path

from nfr.tools.check_html import external_references

ROOT = Path(__file__).resolve().parents[1]


def test_book_builds_without_warnings_and_offline(book_build):
    assert book_build.proc.returncode == 0, book_build.log
    html = book_build.html
    assert (html / "index.html").exists()
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    assert external_references(html) == []
    for chapter in (ROOT / "chapters").glob("*.ipynb"):
        page = (html / "chapters" / f"{chapter.stem}.html").read_text()
        assert "prf:" in page or "proof" in page
        assert '<img alt="' in page, f"{chapter.stem}: figure without alt text or no figure"
        # the page's download button (sphinx-book-theme) offers the notebook itself
        assert f'href="../_sources/chapters/{chapter.name}"' in page, f"{chapter.stem}: no .ipynb download"
        assert (html / "_sources" / "chapters" / chapter.name).exists()
