"""Check a built book for external references: ``python -m nfr.tools.check_html _build/html``.

The book must work offline in a classroom: no page may load a script, stylesheet or font from
another host. Exits 1 and lists the offenders otherwise.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

# src=/href= attributes of <script> and <link> tags, and url(...) inside CSS
_TAG = re.compile(r"<(script|link)\b[^>]*?\b(?:src|href)\s*=\s*[\"']([^\"']+)[\"']", re.I)
_CSS_URL = re.compile(r"url\(\s*[\"']?((?:https?:)?//[^)\"']+)", re.I)


def external_references(root: str | Path) -> list[str]:
    """Every ``<script src>``/``<link href>`` or CSS ``url()`` that points to another host."""
    root = Path(root)
    bad = []
    for page in sorted(root.rglob("*.html")):
        for tag, url in _TAG.findall(page.read_text(encoding="utf-8", errors="replace")):
            if url.startswith(("http://", "https://", "//")):
                if tag.lower() == "link" and not re.search(r"\.(css|js|woff2?|ttf)(\?|$)", url):
                    continue  # canonical/alternate links are not loaded by the browser
                bad.append(f"{page.relative_to(root)}: <{tag}> {url}")
    for css in sorted(root.rglob("*.css")):
        for url in _CSS_URL.findall(css.read_text(encoding="utf-8", errors="replace")):
            bad.append(f"{css.relative_to(root)}: url({url})")
    return bad


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0] if args else "_build/html")
    if not (root / "index.html").exists():
        print(f"no built book at {root}: run `make book` first")
        return 1
    bad = external_references(root)
    for line in bad:
        print("external reference:", line)
    print(f"checked {len(list(root.rglob('*.html')))} pages: {len(bad)} external references")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
