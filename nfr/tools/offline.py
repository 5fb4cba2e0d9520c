"""A Sphinx extension that keeps the built book offline-clean.

jupyter-book always loads ``sphinx_thebe``, which writes the URL of its CDN script into every page
even when live code (thebe) is switched off, as it is in this book. This extension drops those
script entries from each page, so no page references a script on another host
(``python -m nfr.tools.check_html`` verifies it after every build).
"""
from __future__ import annotations


def _is_thebe(js) -> bool:
    filename = getattr(js, "filename", None) or str(js)
    body = (getattr(js, "attributes", None) or {}).get("body", "") or ""
    return "thebe" in str(filename) or "THEBE_JS_URL" in body


def _drop_thebe(app, pagename, templatename, context, doctree):
    files = context.get("script_files")
    if files:
        context["script_files"] = [js for js in files if not _is_thebe(js)]


def setup(app):
    app.connect("html-page-context", _drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
