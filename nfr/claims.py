"""Check cells and the chapters' results, without torch.

Two kinds of cell output:

* :func:`check` -- a mathematical statement the book proves (an identity, a theorem as corrected
  here). It prints ``PASS ...`` or ``FAIL ...`` and raises :class:`CheckFailed` on failure, so a
  broken computation fails nbval and the build.
* :func:`verdict` -- what a chapter's own (small, exploratory) sample says about an empirical claim
  under the chapter's rule. It prints and never raises. It is NOT the ledger's verdict: that is
  computed by :mod:`nfr.verdicts` from the pre-registered criteria and the evidence files.

:func:`record` writes a chapter's rows into ``book/data/chapter_results.json`` (and its table
``chapter_results_table.md``), then regenerates the claims ledger ``book/data/claims.json`` and
``claims_table.md`` from criteria + evidence + the chapters' math rows
(:func:`nfr.verdicts.write_ledger`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from nfr import verdicts as V

VERDICTS = V.VERDICTS
FIELDS = ("id", "statement", "criterion", "value", "verdict", "chapter", "setting")


class CheckFailed(AssertionError):
    """A check cell's mathematical statement did not hold."""


def check(label: str, value, passed: bool, criterion: str) -> None:
    """Print ``PASS label = value criterion`` (or FAIL) and raise :class:`CheckFailed` on failure."""
    line = f"{'PASS' if passed else 'FAIL'} {label} = {value} {criterion}"
    print(line)
    if not passed:
        raise CheckFailed(line)


def verdict(claim_id: str, value, verdict: str, criterion: str) -> None:
    """Print a chapter's reading of a claim (never raises).

    For the claims the book proves (:data:`nfr.verdicts.MATH_IDS`) the line is the verdict of the
    chapter's check cells: ``ID: VERDICT (value; criterion: ...)``. For an empirical claim it is
    labelled exploratory: what the chapter's own sample shows under the chapter's rule; the ledger's
    verdict is computed from the pre-registered criterion and its evidence run (:mod:`nfr.verdicts`)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    head = claim_id.replace("(", " ").split()[0]
    if head in V.MATH_IDS:
        print(f"{claim_id}: {verdict.upper()} ({value}; criterion: {criterion})")
    else:
        print(f"{claim_id}, this chapter's sample (exploratory): {verdict} by the chapter's rule "
              f"({value}; rule: {criterion})")


def tiny(err: float, floor: float = 1e-12) -> str:
    """Format a rounding-level error stably: ``'< 1e-12'`` below ``floor``, else ``'3.1e-05'``.

    Errors at the level of float64 rounding differ between BLAS builds; printing them exactly would
    make nbval comparisons flaky, and the check only needs to know they are below the tolerance.
    """
    return f"< {floor:.0e}" if err < floor else f"{err:.1e}"


def book_root() -> Path:
    """The book's root folder: ``$NFR_BOOK_ROOT``, else the nearest parent of the working
    directory holding ``_toc.yml``, else the checkout this package lives in."""
    if os.environ.get("NFR_BOOK_ROOT"):
        return Path(os.environ["NFR_BOOK_ROOT"])
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "_toc.yml").exists():
            return folder
    return Path(__file__).resolve().parents[1]


def results_path(root: Path | None = None) -> Path:
    """The chapters' own results: ``book/data/chapter_results.json``."""
    return V.chapter_results_path(root or book_root())


def load(root: Path | None = None) -> list[dict]:
    """The chapters' rows (:func:`record`)."""
    path = results_path(root)
    return json.loads(path.read_text()) if path.exists() else []


def entry(id: str, statement: str, criterion: str, value, verdict: str, chapter: str, setting: str) -> dict:
    """One ledger row; ``value`` is stored as a string (round it before)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    return dict(id=id, statement=statement, criterion=criterion, value=str(value), verdict=verdict,
                chapter=chapter, setting=setting)


def _sort_key(e: dict):
    prefix, num = e["id"][0], int("".join(c for c in e["id"] if c.isdigit()) or 0)
    return (prefix, num, e["chapter"], e["setting"])


def table_markdown(entries: list[dict]) -> str:
    """The chapters' results as a Markdown table (one row per claim and setting)."""
    def cell(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| id | claim | the chapter's rule | measured | the chapter's reading | setting | chapter |",
             "|---|---|---|---|---|---|---|"]
    for e in sorted(entries, key=_sort_key):
        lines.append("| " + " | ".join(cell(e[k]) for k in
                     ("id", "statement", "criterion", "value", "verdict", "setting")) +
                     f" | {{doc}}`{e['chapter']} <../chapters/{e['chapter']}>` |")
    if not entries:
        lines.append("| | no claim recorded yet | | | | | |")
    return "\n".join(lines) + "\n"


def record(chapter: str, entries: list[dict], root: Path | None = None) -> list[dict]:
    """Replace every row of ``chapter`` in the chapters' results by ``entries``; rewrite that JSON and
    its table, then regenerate the claims ledger from criteria + evidence (:func:`V.write_ledger`).

    Rows of other chapters are kept, so chapters can run in any order. Returns the chapters' rows.
    """
    for e in entries:
        missing = [k for k in FIELDS if k not in e]
        if missing or e["chapter"] != chapter:
            raise ValueError(f"bad ledger entry {e.get('id')}: missing {missing} or chapter != {chapter!r}")
    rows = [e for e in load(root) if e["chapter"] != chapter] + [dict(e) for e in entries]
    rows.sort(key=_sort_key)
    path = results_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    (path.parent / "chapter_results_table.md").write_text(table_markdown(rows))
    if V.criteria_path(path.parents[2]).exists():
        V.write_ledger(path.parents[2])
    print(f"claims ledger: {len(entries)} verdicts of {chapter} recorded")
    return rows
