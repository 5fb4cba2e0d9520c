"""book/course.md: the course map has a row for each of the 13 chapters and links every chapter
that exists (a new chapter must be linked there with {ref}`ch-...`)."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "book" / "course.md"


def test_course_map_has_a_row_per_chapter():
    rows = re.findall(r"^\| (\d+) \|", COURSE.read_text(), re.M)
    assert [int(r) for r in rows] == list(range(1, 14))


def test_course_map_links_every_existing_chapter():
    text = COURSE.read_text()
    for nb in sorted(ROOT.glob("chapters/*.ipynb")):
        first = "".join(json.loads(nb.read_text())["cells"][0]["source"])
        label = re.match(r"\((ch-[\w-]+)\)=", first).group(1)
        assert f"<{label}>" in text, f"book/course.md does not link {nb.name}: add {{ref}}`... <{label}>` to its row"
