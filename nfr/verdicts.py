"""Verdicts computed from pre-registered criteria and evidence files (torch-free).

The empirical rows of the claims ledger are not typed; they are computed here:

* ``book/data/criteria.yaml`` holds one **criterion** per claim and setting, written before its
  evidence run: the quantity measured on each unit, the unit, the clustering (weight draws), the
  minimum n and one decision rule per part of the claim. Its sha256 (:func:`criterion_sha256`) is
  stored in the evidence file judged against it, so a criterion edited after its run is detected.
* ``book/data/evidence/<key>.json`` holds an evidence run (written by :mod:`nfr.evidence`): the
  configuration and seeds, the commit, the value of every unit, n, the CPU time, and the judgement.
* :func:`judge` maps the units and a criterion to the effect, its 95% interval and the verdict;
  :func:`ledger_rows` builds the ledger rows from criteria + evidence, recomputing every judgement.

Statistics (per part). ``mean``: the mean of the unit values; ``paired``: units carry two
quantities (``quantity`` minus ``minus``) on the same unit, and the statistic is the mean
difference; ``groups``: the difference of the means of two groups of units (``group`` field: first
listed minus second); ``bimodality``: Sarle's bimodality coefficient of the quantity over all units
(:func:`nfr.stats.bimodality_coefficient`); ``auc_difference``: AUC(``quantity``) - AUC(``minus``),
each the ROC-AUC of telling the first group (the positives) from the second by that quantity, both
on the same units (:func:`nfr.stats.roc_auc`). A part with ``where`` (a dict of unit fields and values) reads only the units
that match it, e.g. one attack's triggered images. Interval: a 95% bootstrap interval (``scipy.stats.bootstrap``, BCa, 9,999
resamples, seeded) over units (for ``bimodality`` and ``auc_difference`` a percentile interval, the
groups of ``auc_difference`` resampled separately, so each resample keeps both and each unit keeps
its pair of scores); with ``cluster`` set (e.g. the weight draw), units are first averaged
within each cluster and the bootstrap runs over clusters, so images that share a draw are not
counted as independent. Two-group parts also report a permutation test's p-value
(``scipy.stats.permutation_test``, difference of means, two-sided).

Decision rules on the interval [lo, hi] (the statistic's 95% interval):

* ``greater`` ``threshold`` t: confirmed if lo > t, refuted if hi < t, else inconclusive;
* ``less`` t: confirmed if hi < t, refuted if lo > t, else inconclusive;
* ``within`` ``margin`` m (equivalence): confirmed if -m < lo and hi < m; refuted if lo > m or
  hi < -m; else inconclusive.

Parts combine as follows: all confirmed -> confirmed; all refuted -> refuted; some confirmed and
some not -> partly; none confirmed, some refuted and the rest inconclusive -> partly when the
criterion says ``combine: any_refuted_partly``, otherwise refuted only if every part is refuted and
inconclusive in the remaining cases. Fewer units than ``min_n`` (or fewer clusters than
``min_clusters``) -> ``inconclusive`` whatever the interval says.
"""
from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path

import numpy as np

from nfr.stats import auc_weighted, bimodality_rows

VERDICTS = ("confirmed", "partly", "refuted", "inconclusive", "not testable here")
RULES = ("greater", "less", "within")
STATISTICS = ("mean", "paired", "groups", "bimodality", "auc_difference")
N_RESAMPLES = 9999
N_RESAMPLES_SAMPLE = 1999  # whole-sample statistics (bimodality, AUC): each resample ranks all units
LEVEL = 0.95


class CriterionError(ValueError):
    """A criterion entry or an evidence file is malformed or does not match."""


# ----------------------------------------------------------------------------- files
def criteria_path(root: Path) -> Path:
    return Path(root) / "book" / "data" / "criteria.yaml"


def evidence_dir(root: Path) -> Path:
    return Path(root) / "book" / "data" / "evidence"


def load_criteria(root: Path) -> dict[str, dict]:
    """The criteria file as {key: entry}, each entry checked (:func:`check_criterion`)."""
    import yaml  # noqa: PLC0415  (optional at import time: only the ledger needs it)

    data = yaml.safe_load(criteria_path(root).read_text())
    for key, entry in data.items():
        if key == "_replaces":
            unknown = [k for k in entry if k not in data]
            if unknown:
                raise CriterionError(f"_replaces names criteria that do not exist: {unknown}")
            continue
        check_criterion(key, entry)
    return data


def criterion_sha256(entry: dict) -> str:
    """sha256 of the entry as canonical JSON (sorted keys): any edit to the entry changes it."""
    return hashlib.sha256(json.dumps(entry, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def check_criterion(key: str, entry: dict) -> None:
    need = ("claim", "statement", "setting", "chapter", "kind")
    missing = [k for k in need if k not in entry]
    if missing:
        raise CriterionError(f"criterion {key}: missing {missing}")
    if entry["kind"] == "not testable here":
        for k in ("reason", "command"):
            if not entry.get(k):
                raise CriterionError(f"criterion {key}: 'not testable here' needs a {k}")
        return
    if entry["kind"] != "empirical":
        raise CriterionError(f"criterion {key}: kind must be 'empirical' or 'not testable here'")
    for k in ("unit", "min_n", "parts", "criterion"):
        if k not in entry:
            raise CriterionError(f"criterion {key}: missing {k!r}")
    for p in entry["parts"]:
        if p.get("rule") not in RULES:
            raise CriterionError(f"criterion {key}, part {p.get('name')}: rule must be one of {RULES}")
        if p.get("statistic", "mean") not in STATISTICS:
            raise CriterionError(f"criterion {key}, part {p.get('name')}: statistic must be one of {STATISTICS}")
        if "quantity" not in p or "name" not in p:
            raise CriterionError(f"criterion {key}: every part needs a name and a quantity")
        if p.get("statistic") == "paired" and "minus" not in p:
            raise CriterionError(f"criterion {key}, part {p['name']}: a paired part needs 'minus'")
        if p.get("statistic") == "auc_difference" and ("minus" not in p or len(p.get("groups", ())) != 2):
            raise CriterionError(f"criterion {key}, part {p['name']}: an auc_difference part needs 'minus' and "
                                 "two groups (positive first)")
        if p.get("statistic") == "groups" and len(p.get("groups", ())) != 2:
            raise CriterionError(f"criterion {key}, part {p['name']}: a groups part needs two groups")
        bound = "margin" if p["rule"] == "within" else "threshold"
        if not isinstance(p.get(bound), (int, float)) or isinstance(p.get(bound), bool):
            raise CriterionError(f"criterion {key}, part {p['name']}: rule {p['rule']!r} needs a number "
                                 f"as its {bound}, got {p.get(bound)!r}")


# ----------------------------------------------------------------------------- statistics
def _interval(values: np.ndarray, seed: int) -> tuple[float, float]:
    """95% BCa bootstrap interval of the mean of ``values`` (percentile where BCa is degenerate)."""
    from scipy import stats  # noqa: PLC0415

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return (math.nan, math.nan)
    if np.all(v == v[0]):
        return (float(v[0]), float(v[0]))
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():     # BCa on near-constant data: fall back to percentile
            warnings.simplefilter("ignore")
            res = stats.bootstrap((v,), np.mean, confidence_level=LEVEL, n_resamples=N_RESAMPLES,
                                  method=method, random_state=np.random.default_rng(seed))
        lo, hi = res.confidence_interval
        if math.isfinite(lo) and math.isfinite(hi):
            return (float(lo), float(hi))
    return (math.nan, math.nan)


def _two_group(a: np.ndarray, b: np.ndarray, seed: int) -> tuple[tuple[float, float], float]:
    """95% bootstrap interval of mean(a) - mean(b) (independent samples) and a permutation p."""
    from scipy import stats  # noqa: PLC0415

    diff = lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis)  # noqa: E731
    rng = np.random.default_rng(seed)
    if len(a) < 2 or len(b) < 2:
        return (math.nan, math.nan), math.nan
    ci = stats.bootstrap((a, b), diff, confidence_level=LEVEL, n_resamples=N_RESAMPLES,
                         method="percentile", random_state=rng).confidence_interval
    p = stats.permutation_test((a, b), diff, n_resamples=N_RESAMPLES, alternative="two-sided",
                               random_state=np.random.default_rng(seed + 1)).pvalue
    return (float(ci[0]), float(ci[1])), float(p)


def _sample_statistic(kind: str, arrays: tuple, seed: int) -> tuple[float, tuple[float, float]]:
    """A statistic of the whole sample and its 95% percentile bootstrap interval over units.

    ``kind`` ``"bimodality"``: ``arrays = (v,)``; ``"auc_difference"``: ``arrays = (pos, neg)``, each
    ``(n_g, 2)`` with columns (quantity, minus) of the group's units."""
    from scipy import stats  # noqa: PLC0415

    if kind == "bimodality":
        (v,) = arrays
        if len(v) < 4:
            return math.nan, (math.nan, math.nan)

        def stat(x, axis=-1):
            x = np.moveaxis(np.asarray(x), axis, -1)
            return bimodality_rows(x.reshape(-1, x.shape[-1])).reshape(x.shape[:-1])
        data, effect = (v,), float(bimodality_rows(v[None, :])[0])
    else:
        pos, neg = arrays
        if len(pos) < 2 or len(neg) < 2:
            return math.nan, (math.nan, math.nan)
        ip, ineg = np.arange(len(pos)), np.arange(len(neg))

        def counts(i, n):  # (B, n) resampled indices -> (B, n) multiplicities
            B = i.shape[0]
            return np.bincount((np.arange(B)[:, None] * n + i).ravel(), minlength=B * n).reshape(B, n)

        def stat(i, j, axis=-1):
            i, j = np.moveaxis(np.asarray(i), axis, -1), np.moveaxis(np.asarray(j), axis, -1)
            shape = i.shape[:-1]
            i, j = i.reshape(-1, i.shape[-1]), j.reshape(-1, j.shape[-1])
            cp, cn = counts(i, len(pos)), counts(j, len(neg))
            return (auc_weighted(pos[:, 0], neg[:, 0], cp, cn) - auc_weighted(pos[:, 1], neg[:, 1], cp, cn)).reshape(shape)
        one_p, one_n = np.ones((1, len(pos))), np.ones((1, len(neg)))
        data, effect = (ip, ineg), float(auc_weighted(pos[:, 0], neg[:, 0], one_p, one_n)[0]
                                         - auc_weighted(pos[:, 1], neg[:, 1], one_p, one_n)[0])
    res = stats.bootstrap(data, stat, confidence_level=LEVEL, n_resamples=N_RESAMPLES_SAMPLE, batch=200,
                          vectorized=True, method="percentile", random_state=np.random.default_rng(seed))
    lo, hi = res.confidence_interval
    return effect, (float(lo), float(hi))


def _cluster_means(values: np.ndarray, clusters: list | None) -> np.ndarray:
    if clusters is None:
        return values
    keys = sorted(set(clusters), key=str)
    cl = np.array([str(c) for c in clusters])
    return np.array([values[cl == str(k)].mean() for k in keys])


def decide(rule: str, interval: tuple[float, float], threshold: float | None = None,
           margin: float | None = None) -> str:
    """``confirmed`` / ``refuted`` / ``inconclusive`` from a 95% interval (module doc)."""
    lo, hi = interval
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    if rule == "greater":
        return "confirmed" if lo > threshold else "refuted" if hi < threshold else "inconclusive"
    if rule == "less":
        return "confirmed" if hi < threshold else "refuted" if lo > threshold else "inconclusive"
    if rule == "within":
        return ("confirmed" if -margin < lo and hi < margin
                else "refuted" if lo > margin or hi < -margin else "inconclusive")
    raise CriterionError(f"unknown rule {rule!r}; one of {RULES}")


def combine(verdicts: list[str], mode: str = "strict") -> str:
    """One verdict from the parts' verdicts (module doc)."""
    s = set(verdicts)
    if s == {"confirmed"}:
        return "confirmed"
    if s == {"refuted"}:
        return "refuted"
    if "confirmed" in s:
        return "partly"
    if "refuted" in s and mode == "any_refuted_partly":
        return "partly"
    return "inconclusive"


def _values(units: list[dict], q: str) -> np.ndarray:
    try:
        # a non-finite value is stored as None (nan) or "inf" / "-inf" in an evidence file
        return np.array([math.nan if u[q] is None else float(u[q]) for u in units])
    except KeyError as e:
        raise CriterionError(f"a unit has no quantity {q!r}") from e


def judge_part(part: dict, units: list[dict], cluster: str | None, seed: int = 0) -> dict:
    """Effect, interval, verdict (and n) of one part over ``units``."""
    stat = part.get("statistic", "mean")
    out = dict(name=part["name"])
    where = part.get("where") or {}
    units = [u for u in units if all(u.get(k) == v for k, v in where.items())]
    if stat in ("bimodality", "auc_difference"):
        if stat == "bimodality":
            v = _values(units, part["quantity"])
            v = v[np.isfinite(v)]
            effect, ci = _sample_statistic(stat, (v,), seed)
            n = len(v)
            out.update(n=n)
        else:
            g1, g2 = part["groups"]
            pair = [np.stack([_values(gu, part["quantity"]), _values(gu, part["minus"])], axis=1)
                    for gu in ([u for u in units if u["group"] == g1], [u for u in units if u["group"] == g2])]
            pos, neg = (a[np.isfinite(a).all(axis=1)] for a in pair)
            effect, ci = _sample_statistic(stat, (pos, neg), seed)
            n = min(len(pos), len(neg))
            out.update(n={g1: len(pos), g2: len(neg)})
    elif stat == "groups":
        g1, g2 = part["groups"]
        a = _values([u for u in units if u["group"] == g1], part["quantity"])
        b = _values([u for u in units if u["group"] == g2], part["quantity"])
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        ci, p = _two_group(a, b, seed)
        effect = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
        out.update(n={g1: len(a), g2: len(b)}, p_value=p)
        n = min(len(a), len(b))
    else:
        v = _values(units, part["quantity"])
        if stat == "paired":
            v = v - _values(units, part["minus"])
        keep = np.isfinite(v)
        cl = [u[cluster] for u, k in zip(units, keep) if k] if cluster else None
        v = v[keep]
        agg = _cluster_means(v, cl)
        effect = float(agg.mean()) if len(agg) else math.nan
        ci = _interval(agg, seed)
        n = len(v)
        out.update(n=n, n_clusters=len(agg) if cluster else None, n_nonfinite=int((~keep).sum()))
    out.update(effect=effect, interval=list(ci),
               verdict=decide(part["rule"], ci, part.get("threshold"), part.get("margin")))
    out["_n"] = n
    return out


def estimate(units: list[dict], quantity: str, *, minus: str | None = None, cluster: str | None = None,
             seed: int = 0) -> dict:
    """The mean of one quantity over units (or of ``quantity - minus``) with its 95% interval, computed
    exactly as a criterion's part is (clustered bootstrap), for tables that report effects without a
    decision rule.

    Parameters
    ----------
    units : list of dict
        The units of an evidence file.
    quantity : str
        The quantity read from each unit.
    minus : str, optional
        A second quantity subtracted on the same unit (a paired difference).
    cluster : str, optional
        The unit field whose clusters are averaged first (e.g. ``"draw"``).
    seed : int
        The bootstrap's seed.

    Returns
    -------
    dict
        ``mean``, ``interval`` (95%, [lo, hi]), ``n`` (units) and ``n_clusters``.
    """
    part = dict(name=quantity, statistic="paired" if minus else "mean", quantity=quantity, minus=minus,
                rule="greater", threshold=0.0)
    j = judge_part(part, units, cluster, seed)
    return dict(mean=j["effect"], interval=j["interval"], n=j["n"], n_clusters=j["n_clusters"])


def judge(entry: dict, units: list[dict], seed: int = 0) -> dict:
    """The judgement of ``units`` under the criterion ``entry``: parts, effect (the first part's),
    its interval, n and the verdict (``inconclusive`` below ``min_n`` / ``min_clusters``)."""
    cluster = entry.get("cluster")
    parts = [judge_part(p, units, cluster, seed + i) for i, p in enumerate(entry["parts"])]
    n = len(units)
    n_cl = len({str(u[cluster]) for u in units}) if cluster else None
    verdict = combine([p["verdict"] for p in parts], entry.get("combine", "strict"))
    short = []
    if n < int(entry["min_n"]) or min(p.pop("_n") for p in parts) < int(entry.get("min_n_part", 1)):
        short.append(f"n = {n} below the minimum {entry['min_n']}")
    if cluster and n_cl < int(entry.get("min_clusters", 1)):
        short.append(f"{n_cl} {cluster}s below the minimum {entry['min_clusters']}")
    for p in parts:
        p.pop("_n", None)
    if short:
        verdict = "inconclusive"
    first = parts[0]
    return dict(n=n, n_clusters=n_cl, parts=parts, effect=first["effect"], interval=first["interval"],
                verdict=verdict, too_little_data="; ".join(short) or None)


# ----------------------------------------------------------------------------- ledger
def evidence_path(root: Path, key: str) -> Path:
    return evidence_dir(root) / f"{key.replace('/', '-')}.json"


def load_evidence(root: Path, key: str) -> dict | None:
    p = evidence_path(root, key)
    return json.loads(p.read_text()) if p.exists() else None


def verify(entry: dict, evidence: dict, key: str) -> dict:
    """Recompute the judgement of ``evidence`` under ``entry``; raise :class:`CriterionError` if the
    criterion changed after the run (hash) or the stored judgement differs from the recomputed one."""
    if evidence.get("criterion_sha256") != criterion_sha256(entry):
        raise CriterionError(f"{key}: the criterion changed after its evidence was produced "
                             "(sha256 mismatch); re-run `python -m nfr evidence " + key + "`")
    j = judge(entry, evidence["units"], int(evidence.get("judge_seed", 0)))
    stored = evidence["judgement"]
    if j["verdict"] != stored["verdict"] or not _close(j["effect"], stored["effect"]) \
            or not all(_close(a, b) for a, b in zip(j["interval"], stored["interval"])):
        raise CriterionError(f"{key}: stored judgement {stored['verdict']} {stored['effect']} "
                             f"{stored['interval']} differs from the recomputed {j['verdict']} "
                             f"{j['effect']} {j['interval']}")
    if len(evidence["units"]) != evidence["n"]:
        raise CriterionError(f"{key}: n = {evidence['n']} but {len(evidence['units'])} units stored")
    return j


def _close(a, b, tol=1e-9) -> bool:
    a, b = float(a), float(b)
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol * max(1.0, abs(a), abs(b))


#: claims proved in the book and checked by code that raises when they fail (their rows come from
#: the chapters' check cells, kind ``math``)
MATH_IDS = ("C1", "C2", "C3", "C4", "C5", "C6", "T1")


def chapter_results_path(root: Path) -> Path:
    return Path(root) / "book" / "data" / "chapter_results.json"


def _criterion_row(root: Path, key: str, entry: dict) -> dict:
    row = dict(key=key, id=entry["claim"], statement=entry["statement"], setting=entry["setting"],
               chapter=entry["chapter"], kind=entry["kind"],
               criterion=entry.get("criterion") or entry.get("reason"), unit=entry.get("unit"),
               n=None, effect=None, interval=None, evidence=None, note=None)
    if entry["kind"] == "not testable here":
        row.update(verdict="not testable here", command=entry["command"])
        return row
    ev = load_evidence(root, key)
    if ev is None:
        row.update(verdict="inconclusive", note=f"no evidence run yet (minimum n = {entry['min_n']})")
    else:
        j = verify(entry, ev, key)
        row.update(n=j["n"], effect=j["effect"], interval=j["interval"], verdict=j["verdict"],
                   parts=j["parts"], note=j["too_little_data"],
                   evidence=str(evidence_path(root, key).relative_to(root)))
    return row


def criterion_rows(root: Path, keys) -> list[dict]:
    """The ledger rows of the criteria ``keys`` alone, judged as :func:`ledger_rows` judges them (for a
    chapter that prints its own rows without recomputing the whole ledger).

    Parameters
    ----------
    root : pathlib.Path
        The book's root.
    keys : iterable of str
        Criteria keys (``"B2/cifar_resnet20-trained"``).

    Returns
    -------
    list of dict
        One ledger row per key, in the order given.

    Raises
    ------
    nfr.verdicts.CriterionError
        For a key the criteria file does not have.
    """
    crit = load_criteria(root)
    missing = [k for k in keys if k not in crit or k == "_replaces"]
    if missing:
        raise CriterionError(f"no criterion for {', '.join(missing)} in {criteria_path(root)}")
    return [_criterion_row(root, k, crit[k]) for k in keys]


def ledger_rows(root: Path) -> list[dict]:
    """The claims ledger: one row per claim and setting, every empirical verdict recomputed.

    * every criterion of ``criteria.yaml``: judged from its evidence file (:func:`verify`), or
      ``inconclusive`` while it has none, or ``not testable here`` with its reason and command;
    * the chapters' rows (``chapter_results.json``, written by :func:`nfr.claims.record`) of the
      claims in :data:`MATH_IDS`: kind ``math``, their verdict from the chapter's check cells;
    * every other chapter row that no criterion replaces (``_replaces`` in the criteria file: setting
      prefixes): ``inconclusive``, as its sample has no pre-registered evidence run at the minimum n
      yet; the note quotes what the chapter measured and how its own rule read it (exploratory).
    """
    crit = load_criteria(root)
    replaces = crit.pop("_replaces", {})
    rows = [_criterion_row(root, key, entry) for key, entry in crit.items()]
    p = chapter_results_path(root)
    chapter_rows = json.loads(p.read_text()) if p.exists() else []
    for c in chapter_rows:
        if any(c["setting"].startswith(pre) for key, pres in replaces.items() for pre in pres
               if crit[key]["claim"] == c["id"]):
            continue
        row = dict(key=None, id=c["id"], statement=c["statement"], setting=c["setting"], chapter=c["chapter"],
                   criterion=c["criterion"], unit=None, n=None, effect=None, interval=None, evidence=None)
        if c["id"] in MATH_IDS:
            row.update(kind="math", verdict=c["verdict"], note=f"measured: {c['value']}")
        else:
            row.update(kind="empirical", verdict="inconclusive",
                       note=(f"no pre-registered evidence run yet; exploratory, the chapter's sample: "
                             f"{c['value']} (its own rule read it as {c['verdict']})"))
        rows.append(row)
    return sorted(rows, key=lambda r: (r["id"][0], int("".join(ch for ch in r["id"] if ch.isdigit()) or 0),
                                       r["kind"] != "math", r["evidence"] is None, r["setting"]))


def _fmt(v, digits=3) -> str:
    return "n/a" if v is None or not math.isfinite(float(v)) else f"{float(v):+.{digits}f}"


def table_markdown(rows: list[dict]) -> str:
    """The computed ledger as Markdown: a count of verdicts, then one block per claim (its
    statement once) with one row per setting: setting, n, effect [95% interval], verdict, criterion,
    evidence file and chapter. Narrow columns, so it reads at 1280 px without sideways scrolling."""
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    out = ["**" + ", ".join(f"{n} {v}" for v, n in counts.items() if n) + f"** ({len(rows)} rows)\n"]
    order = sorted({r["id"] for r in rows}, key=lambda i: (i[0], int("".join(c for c in i if c.isdigit()) or 0)))
    for cid in order:
        mine = [r for r in rows if r["id"] == cid]
        out.append(f"#### {cid}\n\n{mine[0]['statement']}\n")
        out.append("| setting | n | effect [95% interval] | verdict | criterion |")
        out.append("|---|---|---|---|---|")
        for r in mine:
            eff = (f"{_fmt(r['effect'])} [{_fmt(r['interval'][0])}, {_fmt(r['interval'][1])}]"
                   if r.get("interval") else "")
            ev = f" ([evidence](../{r['evidence']}))" if r.get("evidence") else ""
            note = f" *{r['note']}*" if r.get("note") else ""
            cmd = f" Command where the data exist: `{r['command']}`" if r.get("command") else ""
            setting = (f"{r['setting']}{ev}; {{doc}}`chapter <../chapters/{r['chapter']}>`").replace("|", "\\|")
            crit = (str(r["criterion"]) + cmd).replace("|", "\\|")
            out.append(f"| {setting} | {r['n'] if r['n'] is not None else ''} | {eff} | "
                       f"**{r['verdict']}**{note} | {crit} |")
        out.append("")
    return "\n".join(out) + "\n"


def runs_markdown(root: Path) -> str:
    """The evidence runs as a Markdown table for the reproduce page: key, n, CPU minutes, threads,
    commit and the command that repeats the run."""
    lines = ["| evidence run | n | CPU min | commit | command |", "|---|---|---|---|---|"]
    for p in sorted(evidence_dir(root).glob("*.json")):
        ev = json.loads(p.read_text())
        lines.append(f"| {ev['key']} | {ev['n']} | {ev['cpu_seconds'] / 60:.1f} | `{ev['commit'][:7]}` | "
                     f"`python -m nfr evidence {ev['key']}` |")
    reps = sorted((evidence_dir(root) / "repeats").glob("*.json"))
    if reps:
        crit = load_criteria(root)
        lines += ["", "Repetitions with other seeds (other weight draws or image subsets), judged by the "
                  "same criteria; they do not enter the ledger:", "",
                  "| evidence run | draws | n | verdict (ledger run) | verdict (repetition) | first part "
                  "[95% interval] | command |", "|---|---|---|---|---|---|---|"]
        for p in reps:
            ev = json.loads(p.read_text())
            main = load_evidence(root, ev["key"])
            j = verify(crit[ev["key"]], ev, ev["key"])
            c = ev["config"]
            first = c.get("first_draw", 0)
            lo, hi = j["interval"]
            lines.append(f"| {ev['key']} | {first}..{first + c['draws'] - 1} | {ev['n']} | "
                         f"{main['verdict'] if main else 'n/a'} | {j['verdict']} | {_fmt(j['effect'])} "
                         f"[{_fmt(lo)}, {_fmt(hi)}] | `python -m nfr evidence {ev['key']} --first-draw {first} "
                         f"--file {p.relative_to(root)}` |")
    return "\n".join(lines) + "\n"


def describe(row: dict) -> str:
    """A ledger row as the chapters print it: verdict, n, then each part's effect, interval, verdict."""
    head = f"{row['id']} [{row.get('key') or row['setting'][:40]}]: {row['verdict'].upper()}"
    if row.get("n") is not None:
        head += f" (n = {row['n']})"
    if row.get("note"):
        head += f"; {row['note']}"
    lines = [head]
    for p in row.get("parts") or ():
        lo, hi = p["interval"]
        extra = f", p = {p['p_value']:.2g}" if p.get("p_value") is not None else ""
        if p.get("n_nonfinite"):
            extra += f" (n = {p['n']}: {p['n_nonfinite']} units without a finite value left out)"
        lines.append(f"  {p['name']}: {_fmt(p['effect'])} [{_fmt(lo)}, {_fmt(hi)}] {p['verdict']}{extra}")
    return "\n".join(lines)


def write_ledger(root: Path) -> list[dict]:
    """Recompute every row (:func:`ledger_rows`) and write the ledger ``book/data/claims.json`` and
    ``book/data/claims_table.md`` (included by the claims page)."""
    rows = ledger_rows(root)
    d = Path(root) / "book" / "data"
    (d / "claims.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False, default=float) + "\n")
    (d / "claims_table.md").write_text(table_markdown(rows))
    (d / "evidence_runs.md").write_text(runs_markdown(root))
    return rows
