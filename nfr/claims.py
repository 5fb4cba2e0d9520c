"""Check cells and the claims ledger (``book/data/claims.json``), without torch.

Two kinds of verdict:

* :func:`check` -- a mathematical statement the book proves (an identity, a theorem as corrected
  here). It prints ``PASS ...`` or ``FAIL ...`` and raises :class:`CheckFailed` on failure, so a
  broken computation fails nbval and the build.
* :func:`verdict` -- an empirical claim of a paper, judged against a criterion stated before the
  measurement. It prints the verdict and never raises: a refuted claim is a result, not a bug.

:func:`record` writes a chapter's verdicts into the ledger (format: see ``book/claims.md``) and
regenerates the Markdown table ``book/data/claims_table.md`` that ``book/claims.md`` includes.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

VERDICTS = ("confirmed", "partly", "refuted", "not testable here")
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
    """Print ``claim_id: VERDICT (value; criterion)`` for an empirical claim (never raises)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    print(f"{claim_id}: {verdict.upper()} ({value}; criterion: {criterion})")


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


def ledger_path(root: Path | None = None) -> Path:
    return (root or book_root()) / "book" / "data" / "claims.json"


def load(root: Path | None = None) -> list[dict]:
    path = ledger_path(root)
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
    """The ledger as a Markdown table (one row per claim and setting)."""
    def cell(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| id | claim | criterion (fixed before measuring) | measured | verdict | setting | chapter |",
             "|---|---|---|---|---|---|---|"]
    for e in sorted(entries, key=_sort_key):
        lines.append("| " + " | ".join(cell(e[k]) for k in
                     ("id", "statement", "criterion", "value", "verdict", "setting")) +
                     f" | {{doc}}`{e['chapter']} <../chapters/{e['chapter']}>` |")
    if not entries:
        lines.append("| | no claim recorded yet | | | | | |")
    return "\n".join(lines) + "\n"


def record(chapter: str, entries: list[dict], root: Path | None = None) -> list[dict]:
    """Replace every ledger row of ``chapter`` by ``entries``; rewrite the JSON and the table.

    Rows of other chapters are kept, so chapters can run in any order. Returns the whole ledger.
    """
    for e in entries:
        missing = [k for k in FIELDS if k not in e]
        if missing or e["chapter"] != chapter:
            raise ValueError(f"bad ledger entry {e.get('id')}: missing {missing} or chapter != {chapter!r}")
    rows = [e for e in load(root) if e["chapter"] != chapter] + [dict(e) for e in entries]
    rows.sort(key=_sort_key)
    path = ledger_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    (path.parent / "claims_table.md").write_text(table_markdown(rows))
    print(f"claims ledger: {len(entries)} verdicts of {chapter} recorded")
    return rows
