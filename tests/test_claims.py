"""The chapters' results (book/data/chapter_results.json) and the ledger generated from them."""
import json
from pathlib import Path

import pytest

from nfr import claims

ROOT = Path(__file__).resolve().parents[1]
LEDGER = ROOT / "book" / "data" / "chapter_results.json"


def test_chapter_results_format():
    rows = json.loads(LEDGER.read_text())
    assert rows, "the ledger is empty"
    chapters = {p.stem for p in (ROOT / "chapters").glob("*.ipynb")}
    seen = set()
    for row in rows:
        assert set(row) == set(claims.FIELDS), row
        assert row["verdict"] in claims.VERDICTS
        assert row["chapter"] in chapters, f"{row['id']} names a chapter that does not exist"
        assert all(isinstance(row[k], str) and row[k] for k in claims.FIELDS)
        key = (row["id"], row["setting"])
        assert key not in seen, f"duplicate ledger row {key}"
        seen.add(key)
        if row["verdict"] == "not testable here":
            assert "python -m nfr" in row["setting"] + row["value"], "needs the command that would test it"


def test_table_is_in_sync_with_chapter_results():
    table = (ROOT / "book" / "data" / "chapter_results_table.md").read_text()
    assert table == claims.table_markdown(claims.load(ROOT)), "run the chapter again: table and JSON drifted"


def test_record_replaces_only_its_chapter(tmp_path):
    e = lambda i, ch: claims.entry(i, "s", "c", 1, "confirmed", ch, "toy")  # noqa: E731
    claims.record("a", [e("C1", "a"), e("C2", "a")], root=tmp_path)
    claims.record("b", [e("C3", "b")], root=tmp_path)
    rows = claims.record("a", [e("C1", "a")], root=tmp_path)
    assert [(r["id"], r["chapter"]) for r in rows] == [("C1", "a"), ("C3", "b")]
    assert (tmp_path / "book" / "data" / "chapter_results_table.md").read_text().count("| C") == 2
    with pytest.raises(ValueError):
        claims.record("a", [e("C9", "b")], root=tmp_path)
    with pytest.raises(ValueError):
        claims.entry("C1", "s", "c", 1, "probably", "a", "toy")


def test_check_raises_and_verdict_does_not(capsys):
    claims.check("x", 1, True, "== 1")
    with pytest.raises(claims.CheckFailed):
        claims.check("x", 2, False, "== 1")
    claims.verdict("C0", "v", "refuted", "crit")
    out = capsys.readouterr().out
    assert "PASS x = 1 == 1" in out and "FAIL x = 2" in out
    assert "C0, this chapter's sample (exploratory): refuted by the chapter's rule" in out
    claims.verdict("C2 RectGrad is an NFR", "v", "refuted", "crit")          # a claim the book proves
    assert "C2 RectGrad is an NFR: REFUTED (v; criterion: crit)" in capsys.readouterr().out
    assert claims.tiny(1e-17) == "< 1e-12" and claims.tiny(3e-5) == "3.0e-05"
