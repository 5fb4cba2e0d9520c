"""Tests of nfr.reference.theorem2 against slow literal implementations and closed forms."""
import numpy as np
import pytest

import nfr.reference as ref
from nfr.reference import sweeps
from nfr.reference import theorem2 as t2


def test_orthogonal_columns_gram():
    W = t2.orthogonal_columns(12, 7, 5, seed=1, scale=2.5)
    G = np.swapaxes(W, -1, -2) @ W
    assert np.allclose(G, 6.25 * np.eye(7), atol=1e-12)


def test_broken_weights_cosine_and_norms():
    rho = 0.7
    W = t2.broken_weights(10, 4, 3, rho=rho, sigma=0.0, seed=2)
    n = np.linalg.norm(W, axis=1)
    assert np.allclose(n, np.sqrt(1 + rho ** 2))
    cos = (np.swapaxes(W, -1, -2) @ W) / (n[:, :, None] * n[:, None, :])
    off = cos[:, ~np.eye(4, dtype=bool)]
    assert np.allclose(off, rho ** 2 / (1 + rho ** 2))
    # sigma alone: directions orthogonal, norms unequal
    W = t2.broken_weights(10, 4, 3, rho=0.0, sigma=1.0, seed=2)
    G = np.swapaxes(W, -1, -2) @ W
    assert np.allclose(G[:, ~np.eye(4, dtype=bool)], 0, atol=1e-12)
    assert np.ptp(np.diagonal(G, axis1=1, axis2=2)) > 0.1


def test_theorem2_trials_literal():
    """alpha_a, alpha_b, alpha_mean computed one trial at a time with the reference alignment."""
    rng = np.random.default_rng(3)
    W = t2.orthogonal_columns(9, 6, 20, rng, scale=1.3)
    x = rng.standard_normal((20, 9))
    rb = rng.standard_normal((20, 6))
    res = t2.theorem2_trials(W, x, rb, "gbp")
    for t in range(20):
        z = W[t].T @ x[t]
        m = z > 0
        A = np.maximum(z, 0)
        assert np.isclose(res["alpha_a"][t], ref.alignment(W[t] @ A, x[t]))
        assert np.isclose(res["alpha_b"][t], ref.alignment(W[t] @ (m * np.maximum(rb[t], 0)), x[t]))
        assert np.isclose(res["alpha_mean"][t], ref.alignment(W[t] @ m.astype(float), x[t]))
        # closed form ||A|| / (s ||x||)
        assert np.isclose(res["alpha_a"][t], np.linalg.norm(A) / (1.3 * np.linalg.norm(x[t])))
    # raw treatment keeps negative entries
    raw = t2.theorem2_trials(W, x, rb, "raw")
    z = np.einsum("tdm,td->tm", W, x)
    lit = [ref.alignment(W[t] @ ((z[t] > 0) * rb[t]), x[t]) for t in range(20)]
    assert np.allclose(raw["alpha_b"], lit)


def test_cauchy_schwarz_inequality_and_equality():
    rng = np.random.default_rng(4)
    W = t2.orthogonal_columns(30, 15, 300, rng)
    x = rng.standard_normal((300, 30))
    for dist in t2.RELEVANCE_DISTS:
        res = t2.theorem2_trials(W, x, t2.sample_relevance(dist, (300, 15), rng), "raw")
        assert np.all(res["alpha_b"] <= res["alpha_a"] + 1e-12)
    # equality exactly for relevance parallel to A on the active units (anything off them)
    A, m = t2.hidden(W, x)
    r = 3.0 * A + (~m) * rng.standard_normal(A.shape)
    res = t2.theorem2_trials(W, x, r, "raw")
    assert np.allclose(res["alpha_b"], res["alpha_a"], atol=1e-12)


def test_equal_activation_inputs_give_equality():
    rng = np.random.default_rng(5)
    W = t2.orthogonal_columns(20, 8, 50, rng, scale=0.7)
    x = t2.equal_activation_inputs(W, 0.5, rng)
    A, m = t2.hidden(W, x)
    assert np.allclose(A[m], 1.0) and np.all(m.sum(1) >= 1)
    res = t2.theorem2_trials(W, x, np.ones_like(A))
    assert np.allclose(res["alpha_mean"], res["alpha_a"], atol=1e-12)
    # Gaussian inputs: strict inequality of the mean direction whenever two active A differ
    x = rng.standard_normal((50, 20))
    res = t2.theorem2_trials(W, x, np.ones((50, 8)))
    k = (t2.hidden(W, x)[1]).sum(1)
    gap = res["alpha_a"] - res["alpha_mean"]
    assert np.all(gap[k >= 2] > 1e-9) and np.allclose(gap[k <= 1], 0, atol=1e-12)


def test_optimal_alignment_is_projection():
    rng = np.random.default_rng(6)
    W = rng.standard_normal((15, 10, 6))
    x = rng.standard_normal((15, 10))
    opt = t2.optimal_alignment(W, x)
    for t in range(15):
        Ws = W[t][:, W[t].T @ x[t] > 0]
        P = Ws @ np.linalg.pinv(Ws)
        assert np.isclose(opt[t], np.linalg.norm(P @ x[t]) / np.linalg.norm(x[t]))
        for _ in range(20):  # no relevance beats the projection
            v = rng.standard_normal(6)
            assert ref.alignment(W[t] @ ((W[t].T @ x[t] > 0) * v), x[t]) <= opt[t] + 1e-12
    # against the pseudo-inverse, with more columns than dimensions too
    for d, m in ((10, 6), (8, 20)):
        W2, x2 = rng.standard_normal((30, d, m)), rng.standard_normal((30, d))
        Wa = W2 * (np.einsum("tdm,td->tm", W2, x2) > 0)[:, None, :]
        P = Wa @ np.linalg.pinv(Wa)
        lit = np.linalg.norm(np.einsum("tij,tj->ti", P, x2), axis=-1) / np.linalg.norm(x2, axis=-1)
        assert np.allclose(t2.optimal_alignment(W2, x2), lit)
    # more active columns than dimensions: the projection is x itself
    W = rng.standard_normal((5, 6, 40))
    assert np.allclose(t2.optimal_alignment(W, rng.standard_normal((5, 6))), 1.0)
    # under Theorem 2's hypotheses the activation attains the optimum
    W = t2.orthogonal_columns(10, 6, 15, rng)
    res = t2.theorem2_trials(W, x, np.ones((15, 6)))
    assert np.allclose(t2.optimal_alignment(W, x), res["alpha_a"])


@pytest.mark.parametrize("dist", t2.RELEVANCE_DISTS)
def test_rms_ratio_monte_carlo(dist):
    g = np.maximum(t2.sample_relevance(dist, 400_000, seed=7), 0)
    assert abs(g.mean() / np.sqrt((g ** 2).mean()) - t2.rms_ratio(dist)) < 5e-3


def test_large_width_ratio():
    c = t2.shortfall_ratio(4096, 100, "exponential", seed=8)
    assert abs(c.mean() - t2.large_width_ratio("exponential")) < 5e-3


@pytest.mark.parametrize("widths,img", [([256, 64, 64, 64, 10], True), ([20, 30, 16, 12, 5], False),
                                        ([12, 9, 4], False)])
@pytest.mark.parametrize("rule", t2.CASCADE_RULES)
def test_batched_cascade_matches_reference(widths, img, rule):
    x = sweeps.toy_image(16) if img else None
    seeds = range(4)
    Ws, X, ks = t2.stacked_networks(widths, seeds, x)
    B = t2.batched_cascade(Ws, X, ks, rule)
    for s in seeds:
        net, xs, k = sweeps.random_case(s, widths, x=x)
        C = ref.cascade(net, xs, k, rule)
        assert np.allclose(B[s], C, rtol=1e-10, atol=1e-12 * np.abs(C).max())


def test_spearman_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(9)
    for _ in range(20):
        a = rng.integers(0, 4, 9).astype(float)
        b = rng.standard_normal(9)
        assert np.isclose(t2.spearman(a, b), stats.spearmanr(a, b)[0])


def test_cosine_spread_order():
    cs = t2.cosine_spread([16, 256], 4000, seed=10)
    assert np.allclose(cs["cos_sd"] * np.sqrt(cs["d"]), 1.0, atol=0.06)
    assert np.allclose(cs["norm_rel_sd"] * np.sqrt(2 * cs["d"]), 1.0, atol=0.1)


def test_broken_hypotheses_can_fail():
    """Guard against a vacuous check: without Theorem 2's hypotheses a random r_b can win."""
    b = t2.break_sweep(64, 16, 400, [0.0, 0.0], [0.0, 2.0], seed=11)
    assert b["fail"][0] == 0 and b["fail"][1] > 0.1


def test_cascade_verdicts_shapes():
    sweep = t2.cascade_sweep({"a": [12, 10, 8, 4]}, range(3))
    v = t2.cascade_verdicts(sweep)
    assert len(v["rise"]) == 4 and len(v["act"]) == 3 * 2 and len(v["cross"]) == 3
    assert t2.rises(np.array([0.1, 0.1, 0.2])) and not t2.rises(np.array([0.2, 0.1]))


def test_spearman_of_a_constant_is_nan_in_reference_and_metrics():
    """One meaning for Spearman of a constant map in the whole package: undefined (nan)."""
    from nfr.metrics import spearman as sp_metrics
    from nfr.reference.theorem2 import spearman as sp_ref
    a, c = np.arange(5.0), np.ones(5)
    assert np.isnan(sp_ref(a, c)) and np.isnan(sp_metrics(a, c))
    assert sp_ref(a, a ** 2) == pytest.approx(sp_metrics(a, a ** 2)) == pytest.approx(1.0)
