"""Verdicts computed from pre-registered criteria and evidence (nfr.verdicts, nfr.evidence)."""
import copy
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from nfr import verdicts as V

ROOT = Path(__file__).resolve().parents[1]


def _entry(**part):
    p = dict(name="p", quantity="q", rule="greater", threshold=0.0)
    p.update(part)
    return dict(claim="X1", statement="s", setting="toy", chapter="01_filtering_rules", kind="empirical",
                unit="a draw", min_n=20, criterion="c", parts=[p])


def _units(values, clusters=None, **extra):
    return [dict(q=float(v), draw=(clusters[i] if clusters else i), **{k: float(e[i]) for k, e in extra.items()})
            for i, v in enumerate(values)]


@pytest.mark.parametrize("rule,interval,kw,expected", [
    ("greater", (0.2, 0.4), dict(threshold=0.1), "confirmed"),
    ("greater", (-0.1, 0.05), dict(threshold=0.1), "refuted"),
    ("greater", (0.05, 0.2), dict(threshold=0.1), "inconclusive"),
    ("less", (0.0, 0.05), dict(threshold=0.1), "confirmed"),
    ("less", (0.2, 0.3), dict(threshold=0.1), "refuted"),
    ("within", (-0.01, 0.02), dict(margin=0.05), "confirmed"),
    ("within", (0.06, 0.1), dict(margin=0.05), "refuted"),
    ("within", (-0.2, -0.06), dict(margin=0.05), "refuted"),
    ("within", (0.0, 0.08), dict(margin=0.05), "inconclusive"),
    ("greater", (math.nan, math.nan), dict(threshold=0.0), "inconclusive"),
])
def test_decision_rules(rule, interval, kw, expected):
    assert V.decide(rule, interval, **kw) == expected


def test_parts_combine():
    assert V.combine(["confirmed", "confirmed"]) == "confirmed"
    assert V.combine(["refuted", "refuted"]) == "refuted"
    assert V.combine(["confirmed", "refuted"]) == "partly"
    assert V.combine(["confirmed", "inconclusive"]) == "partly"
    assert V.combine(["refuted", "inconclusive"]) == "inconclusive"
    assert V.combine(["refuted", "inconclusive"], "any_refuted_partly") == "partly"


def test_judge_mean_interval_covers_the_truth_and_decides():
    rng = np.random.default_rng(0)
    units = _units(rng.normal(0.3, 0.1, 200))
    j = V.judge(_entry(threshold=0.2), units)
    lo, hi = j["interval"]
    assert lo < 0.3 < hi and hi - lo < 0.06
    assert j["verdict"] == "confirmed" and j["n"] == 200
    assert V.judge(_entry(threshold=0.4), units)["verdict"] == "refuted"
    assert V.judge(_entry(threshold=0.3), units)["verdict"] == "inconclusive"


def test_too_few_units_are_inconclusive_whatever_the_interval():
    units = _units(np.linspace(1.0, 1.1, 10))
    j = V.judge(_entry(threshold=0.0), units)
    assert j["parts"][0]["verdict"] == "confirmed"
    assert j["verdict"] == "inconclusive" and "below the minimum 20" in j["too_little_data"]


def test_clustered_interval_is_wider_than_the_naive_one():
    """Units that share a draw are not independent: the interval runs over draws."""
    rng = np.random.default_rng(1)
    draw_effect = rng.normal(0, 0.2, 10)
    values = np.concatenate([d + rng.normal(0, 0.01, 20) for d in draw_effect])
    clusters = [k for k in range(10) for _ in range(20)]
    e = _entry()
    naive = V.judge(e, _units(values))
    e["cluster"], e["min_clusters"] = "draw", 10
    clustered = V.judge(e, _units(values, clusters))
    w = lambda j: j["interval"][1] - j["interval"][0]  # noqa: E731
    assert clustered["n_clusters"] == 10 and w(clustered) > 3 * w(naive)
    e["min_clusters"] = 11
    assert V.judge(e, _units(values, clusters))["verdict"] == "inconclusive"


def test_paired_and_groups_statistics():
    rng = np.random.default_rng(2)
    a = rng.normal(0, 1, 100)
    units = _units(a + 0.5, b=a)               # q - b = 0.5 exactly on every unit
    j = V.judge(_entry(statistic="paired", minus="b", threshold=0.4), units)
    assert j["effect"] == pytest.approx(0.5) and j["interval"] == [pytest.approx(0.5)] * 2
    g = [dict(q=float(v), group="wrong") for v in rng.normal(1.0, 0.5, 60)] + \
        [dict(q=float(v), group="right") for v in rng.normal(0.0, 0.5, 60)]
    j = V.judge(_entry(statistic="groups", groups=["wrong", "right"], threshold=0.5), g)
    assert j["verdict"] == "confirmed" and j["parts"][0]["p_value"] < 1e-3
    assert j["parts"][0]["n"] == {"wrong": 60, "right": 60}


def test_where_selects_the_units_of_a_part():
    units = [dict(q=1.0, attack="a") for _ in range(30)] + [dict(q=-1.0, attack="b") for _ in range(5)]
    e = _entry(where={"attack": "b"})
    e["min_n_part"] = 10
    j = V.judge(e, units)
    assert j["parts"][0]["n"] == 5 and j["effect"] == -1.0
    assert j["verdict"] == "inconclusive"          # 5 units of attack b: below min_n_part
    assert V.judge(_entry(where={"attack": "a"}), units)["verdict"] == "confirmed"


def test_nonfinite_units_are_counted_not_averaged():
    units = _units([0.5] * 30 + [math.nan] * 3)
    j = V.judge(_entry(), units)
    assert j["parts"][0]["n_nonfinite"] == 3 and j["effect"] == 0.5


def test_malformed_criteria_are_refused():
    with pytest.raises(V.CriterionError):
        V.check_criterion("k", _entry(rule="probably"))
    with pytest.raises(V.CriterionError):
        V.check_criterion("k", _entry(rule="within", threshold=0.1))
    with pytest.raises(V.CriterionError):
        V.check_criterion("k", dict(claim="T5", statement="s", setting="s", chapter="c", kind="not testable here"))


def _copy_book(tmp_path) -> Path:
    (tmp_path / "book" / "data").mkdir(parents=True)
    shutil.copy(V.criteria_path(ROOT), V.criteria_path(tmp_path))
    if V.evidence_dir(ROOT).exists():
        shutil.copytree(V.evidence_dir(ROOT), V.evidence_dir(tmp_path))
    return tmp_path


def test_every_committed_verdict_is_recomputed_and_matches():
    rows = V.ledger_rows(ROOT)
    stored = json.loads((ROOT / "book" / "data" / "claims.json").read_text())
    assert [(r["key"], r["verdict"], r["n"]) for r in rows] == [(r["key"], r["verdict"], r["n"]) for r in stored], \
        "run `python -m nfr evidence --ledger`: the ledger differs from the one computed from criteria + evidence"
    keys = {r["key"] for r in rows if r["key"]}
    for p in V.evidence_dir(ROOT).glob("*.json"):
        assert json.loads(p.read_text())["key"] in keys, f"{p.name} has no criterion"
    assert {r["verdict"] for r in rows} <= set(V.VERDICTS)
    assert (ROOT / "book" / "data" / "claims_table.md").read_text() == V.table_markdown(stored)
    assert (ROOT / "book" / "data" / "evidence_runs.md").read_text() == V.runs_markdown(ROOT)
    for r in rows:
        assert r["verdict"] in V.VERDICTS
        if r["evidence"]:
            ev = json.loads((ROOT / r["evidence"]).read_text())
            assert ev["n"] == len(ev["units"]) == r["n"]
            for k in ("claim", "setting", "config", "commit", "units", "effect", "interval", "verdict",
                      "criterion_sha256", "cpu_seconds"):
                assert k in ev, (r["key"], k)


def test_a_criterion_edited_after_its_evidence_fails(tmp_path):
    root = _copy_book(tmp_path)
    # one committed criterion beside the toy (judging the whole ledger three times would cost a minute)
    crit = {k: v for k, v in V.load_criteria(root).items() if k == "C7/weight-stats"}
    key = "TEST/toy"
    entry = _entry(threshold=0.1)
    units = _units(np.full(30, 0.5))
    j = V.judge(entry, units)
    ev = dict(claim="X1", key=key, setting="toy", units=units, n=30, judgement=j, effect=j["effect"],
              interval=j["interval"], verdict=j["verdict"], criterion_sha256=V.criterion_sha256(entry))
    import yaml
    crit[key] = entry
    V.criteria_path(root).write_text(yaml.safe_dump(crit, sort_keys=False))
    V.evidence_path(root, key).parent.mkdir(parents=True, exist_ok=True)
    V.evidence_path(root, key).write_text(json.dumps(ev))
    row = [r for r in V.ledger_rows(root) if r["key"] == key][0]
    assert row["verdict"] == "confirmed" and row["n"] == 30
    # the threshold moved after the run: the hash no longer matches
    edited = copy.deepcopy(crit)
    edited[key]["parts"][0]["threshold"] = 0.6
    V.criteria_path(root).write_text(yaml.safe_dump(edited, sort_keys=False))
    with pytest.raises(V.CriterionError, match="sha256"):
        V.ledger_rows(root)
    # a verdict typed into the evidence file instead of computed
    V.criteria_path(root).write_text(yaml.safe_dump(crit, sort_keys=False))
    ev["judgement"] = dict(j, verdict="refuted")
    V.evidence_path(root, key).write_text(json.dumps(ev))
    with pytest.raises(V.CriterionError, match="differs"):
        V.ledger_rows(root)


def test_evidence_cli_runs_judges_and_refuses(tmp_path, capsys):
    from nfr import cli, evidence
    assert cli.main(["evidence"]) == 2
    assert cli.main(["evidence", "C99/nothing"]) == 2
    assert "no evidence run for 'C99/nothing'" in capsys.readouterr().err
    out = tmp_path / "c16.json"
    assert cli.main(["evidence", "C16/cifar_vgg16-trained", "--draws", "2", "--n-images", "3",
                     "--first-draw", "5", "--file", str(out), "--quiet"]) == 0
    ev = json.loads(out.read_text())
    assert ev["n"] == 6 and {u["draw"] for u in ev["units"]} == {5, 6}
    assert ev["verdict"] == "inconclusive" and "below the minimum 1000" in ev["judgement"]["too_little_data"]
    assert ev["criterion_sha256"] == V.criterion_sha256(V.load_criteria(ROOT)["C16/cifar_vgg16-trained"])
    # the units are those the live recomputation measures: same code path, same seeds
    again = {u["index"]: u for u in evidence.recompute("C16/cifar_vgg16-trained", draws=(5,), n_images=3)}
    for u in ev["units"][:3]:
        assert u["ssim_gbp"] == pytest.approx(again[u["index"]]["ssim_gbp"], abs=1e-6)


def test_live_check_passes_on_the_evidence_and_fails_on_a_changed_value(tmp_path):
    from nfr import evidence
    from nfr.errors import NFRError
    key = "C16/cifar_vgg16-trained"
    ev = V.load_evidence(ROOT, key)
    assert evidence.check_units(key, ROOT, n_images=1) > 0
    dest = V.evidence_path(tmp_path, key)
    dest.parent.mkdir(parents=True)
    for u in ev["units"]:
        u["ssim_gbp"] -= 2 * evidence.CHECK_ATOL
    dest.write_text(json.dumps(ev))
    with pytest.raises(NFRError, match="no longer produces this evidence"):
        evidence.check_units(key, tmp_path, n_images=1)


def test_every_evidence_setting_has_a_criterion():
    from nfr import evidence
    crit = V.load_criteria(ROOT)
    assert set(evidence.SETTINGS) <= set(crit)


def test_estimate_and_criterion_rows_agree_with_the_ledger():
    """verdicts.estimate is a part's statistic without the decision; criterion_rows are the ledger's rows."""
    key = "B2/cifar_resnet20-trained"
    entry = V.load_criteria(ROOT)[key]
    ev = V.load_evidence(ROOT, key)
    part = entry["parts"][0]
    e = V.estimate(ev["units"], part["quantity"], minus=part["minus"], cluster="draw")
    j = V.judge_part(part, ev["units"], "draw", 0)
    assert e["mean"] == j["effect"] and e["interval"] == j["interval"] and e["n"] == 1000 and e["n_clusters"] == 10
    rows = {r["key"]: r for r in V.ledger_rows(ROOT)}
    (row,) = V.criterion_rows(ROOT, [key])
    assert row == rows[key]
    with pytest.raises(V.CriterionError, match="no criterion"):
        V.criterion_rows(ROOT, ["B9/nowhere"])


def test_mprt_table_cells_are_the_evidence_estimates():
    from nfr import evidence as E
    rows = E.mprt_table(ROOT)
    ev = V.load_evidence(ROOT, "B4/cifar_resnet20-trained")
    e = V.estimate(ev["units"], "emprt_gbp", cluster="draw")
    assert rows["cifar_resnet20-trained: eMPRT"]["GBP"] == f"{e['mean']:.2f} [{e['interval'][0]:.2f}, {e['interval'][1]:.2f}]"
    assert rows["cifar_resnet20-trained: full, abs, spearman"]["GBP"] == ""   # B2 reports Grad and the NFR mean
    assert all(set(r) == set(E.MPRT_LABELS.values()) for r in rows.values())


def test_whole_sample_statistics_equal_their_definitions_row_by_row():
    from nfr import stats as S
    g = np.random.default_rng(4)
    pos, neg = g.normal(0.5, 1, (5, 40)), g.normal(0, 1, (5, 30))
    pos[:, :3] = neg[:, :3]  # ties across the groups
    rows = S.auc_rows(pos, neg)
    for k in range(5):
        lab = np.r_[np.ones(40), np.zeros(30)]
        assert rows[k] == pytest.approx(S.roc_auc(np.r_[pos[k], neg[k]], lab), abs=1e-12)
        assert S.bimodality_rows(pos)[k] == pytest.approx(S.bimodality_coefficient(pos[k]), abs=1e-12)
    assert np.isnan(S.bimodality_rows(np.ones((1, 6)))[0])


def test_bimodality_statistic_decides_from_its_bootstrap_interval():
    g = np.random.default_rng(5)
    two = np.r_[g.normal(-3, 0.3, 300), g.normal(3, 0.3, 300)]
    one = g.normal(0, 1, 600)
    entry = _entry(statistic="bimodality", threshold=5 / 9)
    from nfr.stats import bimodality_coefficient
    j2, j1 = V.judge(entry, _units(two)), V.judge(entry, _units(one))
    assert j2["effect"] == pytest.approx(bimodality_coefficient(two)) and j2["verdict"] == "confirmed"
    assert j2["interval"][0] > 5 / 9
    assert j1["effect"] == pytest.approx(bimodality_coefficient(one)) and j1["verdict"] == "refuted"
    assert j1["interval"][0] < j1["effect"] < j1["interval"][1] < 5 / 9


def test_auc_difference_statistic_pairs_the_two_scores_of_each_unit():
    from sklearn.metrics import roc_auc_score
    g = np.random.default_rng(6)
    n = 400
    group = np.where(np.arange(n) < 150, "wrong", "correct")
    good = np.where(group == "correct", 1.0, 0.0) + g.normal(0, 0.7, n)   # separates the groups
    bad = g.normal(0, 1, n)                                                 # does not
    units = [dict(q=float(a), m=float(b), group=str(c), draw=0) for a, b, c in zip(good, bad, group)]
    entry = _entry(statistic="auc_difference", minus="m", groups=["correct", "wrong"], threshold=0.0)
    j = V.judge(entry, units)
    y = group == "correct"
    assert j["effect"] == pytest.approx(roc_auc_score(y, good) - roc_auc_score(y, bad), abs=1e-12)
    assert j["parts"][0]["n"] == {"correct": 250, "wrong": 150}
    assert j["verdict"] == "confirmed" and j["interval"][0] > 0
    # the same score twice: the difference is 0 in every resample (pairing kept), so never confirmed
    same = [dict(u, m=u["q"]) for u in units]
    j0 = V.judge(entry, same)
    assert j0["effect"] == 0 and j0["interval"] == [0.0, 0.0] and j0["verdict"] == "inconclusive"
    # reversed roles: refuted
    assert V.judge(_entry(statistic="auc_difference", minus="q", quantity="m", groups=["correct", "wrong"],
                          threshold=0.0), units)["verdict"] == "refuted"
    with pytest.raises(V.CriterionError, match="auc_difference"):
        V.check_criterion("k", _entry(statistic="auc_difference", groups=["correct", "wrong"]))


def test_weighted_auc_equals_the_auc_of_the_resampled_scores():
    from nfr import stats as S
    g = np.random.default_rng(8)
    pos, neg = np.round(g.normal(0.3, 1, 60), 1), np.round(g.normal(0, 1, 40), 1)  # rounded: many ties
    i, j = g.integers(0, 60, (7, 60)), g.integers(0, 40, (7, 40))
    wp = np.array([np.bincount(r, minlength=60) for r in i])
    wn = np.array([np.bincount(r, minlength=40) for r in j])
    np.testing.assert_allclose(S.auc_weighted(pos, neg, wp, wn), S.auc_rows(pos[i], neg[j]), atol=1e-12)
    assert S.auc_weighted(pos, neg, np.ones((1, 60)), np.ones((1, 40)))[0] == pytest.approx(
        S.roc_auc(np.r_[pos, neg], np.r_[np.ones(60), np.zeros(40)]), abs=1e-12)


def test_non_finite_values_stored_as_none_or_inf_are_dropped_as_in_the_run():
    units = _units(np.r_[np.full(25, 0.5), np.full(5, 0.4)])
    j = V.judge(_entry(threshold=0.1), [dict(u, q=float("nan")) if i < 3 else u for i, u in enumerate(units)])
    stored = [dict(u, q=None) if i < 3 else dict(u, q="inf") if i == 3 else u for i, u in enumerate(units)]
    k = V.judge(_entry(threshold=0.1), stored)
    assert k["parts"][0]["n_nonfinite"] == 4 and j["parts"][0]["n_nonfinite"] == 3
    assert k["parts"][0]["n"] == 26 and k["verdict"] == "confirmed"
