"""Every chapter follows the house template and was executed top to bottom."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def test_there_are_chapters():
    assert CHAPTERS


@pytest.fixture(params=CHAPTERS, ids=lambda p: p.stem)
def nb(request):
    return json.loads(request.param.read_text())


def _src(cell):
    return "".join(cell["source"])


def test_title_label_and_claim(nb):
    first = _src(nb["cells"][0])
    assert re.match(r"\(ch-[\w-]+\)=\n# \d+\. ", first), "first cell: (ch-slug)= label then '# N. Title'"
    opening = first.split("\n\n")[1]
    assert "?" in opening and not opening.startswith("**"), \
        "the chapter opens with its question (why it matters, then what it will show), not a bold results block"


def test_imports_cell_is_removed(nb):
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "remove-cell" in code[0].get("metadata", {}).get("tags", [])


def test_has_prf_directive_and_check_cell(nb):
    md = "\n".join(_src(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert re.search(r"\{prf:(theorem|proposition|definition|lemma)\}", md)
    assert any("check" in c.get("metadata", {}).get("tags", []) for c in nb["cells"] if c["cell_type"] == "code")
    assert "{exercise}" in md and ("{solution}" in md or "{solution-start}" in md)


def test_outputs_committed_clean_and_in_order(nb):
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert any(c.get("outputs") for c in code), "no outputs committed"
    counts = [c["execution_count"] for c in code if c.get("execution_count")]
    assert counts == list(range(1, len(counts) + 1)), "not executed top to bottom"
    assert len(counts) == len(code), "some cells were not executed"
    for c in code:
        for o in c.get("outputs", []):
            assert o["output_type"] != "error", "committed error output"
            assert "image/svg+xml" not in o.get("data", {}), "SVG output (use PNG)"
            text = "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
            assert "FAIL" not in text.split(), "a check cell failed"
            assert not re.search(r"0x[0-9a-f]{6,}", text), "memory address in an output"


def test_cells_are_short(nb):
    lengths = sorted(len(_src(c).splitlines()) for c in nb["cells"] if c["cell_type"] == "code")
    assert lengths[len(lengths) // 2] <= 5 and lengths[-1] <= 15, lengths


def test_no_volatile_metadata(nb):
    for c in nb["cells"]:
        assert "execution" not in c.get("metadata", {}), "run `make rerun` (strips timestamps)"


def test_figures_have_captions(nb):
    for c in nb["cells"]:
        if c["cell_type"] == "code" and any("image/png" in o.get("data", {}) for o in c.get("outputs", [])):
            fig = c.get("metadata", {}).get("mystnb", {}).get("figure", {})
            assert fig.get("caption") and fig.get("name"), "figure without caption/name"


def test_at_least_two_exercises_with_collapsed_solutions(nb):
    md = "\n".join(_src(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert md.count("{exercise}") >= 2, "a chapter ends with at least two exercises"
    # a solution is one directive, or gated (solution-start ... code cells ... solution-end) when its
    # worked answer is computed in the chapter
    gated = md.count("{solution-start}")
    assert md.count("{solution-end}") == gated, "every {solution-start} needs its {solution-end}"
    assert md.count("{solution}") + gated == md.count("{exercise}")
    assert md.count(":class: dropdown") >= md.count("{solution}") + gated, "solutions are collapsed"


#: the text column and the full-width placement (cell tag ``full-width``) of the book's theme at a
#: 1280-px window, in CSS pixels; tests/test_browser.py measures both on the built pages
COLUMN_PX, FULL_WIDTH_PX = 660, 903


def test_figure_text_is_legible_as_shown(nb):
    """Every figure records its smallest text (nfr.plotting.figure_png, registered by the setup cell's
    ``book_figures()``) and, at the width the page shows it, that text is at least 9 CSS pixels."""
    import base64
    import struct

    from nfr.plotting import png_text_px

    for c in nb["cells"]:
        for o in c.get("outputs", []) if c["cell_type"] == "code" else []:
            png = o.get("data", {}).get("image/png")
            if not png:
                continue
            b = base64.b64decode(png)
            width = struct.unpack(">I", b[16:20])[0]
            px = png_text_px(b)
            assert px is not None, f"a figure without its text record (run the chapter again): {_src(c)[:60]!r}"
            room = FULL_WIDTH_PX if "full-width" in c["metadata"].get("tags", []) else COLUMN_PX
            shown = px * min(1.0, room / width)
            assert shown >= 9, (f"smallest text {shown:.1f} CSS px as shown ({px:.1f} px in a {width}-px figure "
                                f"shown {min(width, room)} px wide): {_src(c)[:60]!r}")
