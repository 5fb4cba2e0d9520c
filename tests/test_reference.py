"""The NumPy reference against slow, literal implementations of seed 001's equations (float64).

Each ``literal_*`` function below is written from the paper's formula with explicit loops over i and
j, independently of ``nfr.reference``; the tests assert that both agree.
"""
import subprocess
import sys

import numpy as np
import pytest

import nfr.reference as ref
from nfr import NFRError
from nfr.reference import filters as flt
from nfr.reference import rules as rl
from nfr.reference.sweeps import random_case

WIDTHS = [12, 24, 20, 16, 5]


# ----------------------------------------------------------------------------- literal versions
def literal_forward(Ws, x, bs=None):
    A = [list(x)]
    for l, W in enumerate(Ws, start=1):
        d_in, d_out = W.shape
        z = [sum(A[-1][i] * W[i, j] for i in range(d_in)) + (bs[l - 1][j] if bs else 0.0) for j in range(d_out)]
        A.append([max(v, 0.0) for v in z] if l < len(Ws) else z)
    return [np.array(a) for a in A]


def literal_backward(Ws, A, k, rule, q=0.9):
    """r_{l-1,i} = sum_j w_ij * [mask_j] * g(r_lj) (eqs 5-7) with explicit loops."""
    L = len(Ws)
    r = [0.0] * Ws[-1].shape[1]
    r[k] = 1.0
    for l in range(L, 0, -1):
        W = Ws[l - 1]
        d_in, d_out = W.shape
        a = A[l]
        keep = []
        if rule == "rectgrad" and l < L:
            tau = float(np.quantile([a[j] * r[j] for j in range(d_out)], q))
        for j in range(d_out):
            active = (a[j] > 0) if l < L else True
            if rule == "grad" or l == L:
                keep.append(r[j] if active else 0.0)
            elif rule == "gbp":
                keep.append(max(r[j], 0.0) if active else 0.0)
            elif rule == "rectgrad":
                keep.append(r[j] if active and a[j] * r[j] > tau else 0.0)
        r = [sum(W[i, j] * keep[j] for j in range(d_out)) for i in range(d_in)]
    return np.array(r)


def literal_lrp(Ws, A, k, rule, low=None, high=None, alpha=1.0, beta=0.0):
    """Eqs 8-11 with explicit sums; R_L = f_k e_k."""
    L = len(Ws)
    R = [0.0] * Ws[-1].shape[1]
    R[k] = A[L][k]
    for l in range(L, 0, -1):
        W, a = Ws[l - 1], A[l - 1]
        d_in, d_out = W.shape
        new = [0.0] * d_in
        for j in range(d_out):
            z = [a[i] * W[i, j] for i in range(d_in)]
            if rule == "z":
                den = sum(z)
                for i in range(d_in):
                    new[i] += (z[i] / den if den != 0 else 0.0) * R[j]
            elif rule == "ab" or (rule == "dtd" and l > 1):
                zp = [max(v, 0.0) for v in z]
                zn = [min(v, 0.0) for v in z]
                sp, sn = sum(zp), sum(zn)
                for i in range(d_in):
                    pos = zp[i] / sp if sp != 0 else 0.0
                    neg = zn[i] / sn if sn != 0 else 0.0
                    new[i] += (alpha * pos - (beta * neg if rule == "ab" else 0.0)) * R[j]
            else:  # z^B
                zb = [a[i] * W[i, j] - low[i] * max(W[i, j], 0) - high[i] * min(W[i, j], 0) for i in range(d_in)]
                den = sum(zb)
                for i in range(d_in):
                    new[i] += (zb[i] / den if den != 0 else 0.0) * R[j]
        R = new
    return np.array(R)


@pytest.fixture(params=range(6))
def case(request):
    return random_case(request.param, WIDTHS)


# ----------------------------------------------------------------------------- forward
def test_forward_matches_literal(case):
    net, x, _ = case
    fwd = ref.forward(net, x)
    for a, b in zip(fwd.A, literal_forward(net.weights, x)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for l in range(1, net.L):
        np.testing.assert_array_equal(fwd.M[l], fwd.Z[l] > 0)
    assert fwd.M[net.L].all()


def test_forward_with_bias():
    net = ref.random_network(WIDTHS, seed=3, bias=True)
    x = np.random.default_rng(0).standard_normal(WIDTHS[0])
    for a, b in zip(ref.forward(net, x).A, literal_forward(net.weights, x, net.biases)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- gradient-like rules
@pytest.mark.parametrize("rule", ["grad", "gbp", "rectgrad"])
def test_backward_rules_match_literal(case, rule):
    net, x, k = case
    A = literal_forward(net.weights, x)
    got = ref.attribute(net, x, k, rule, bottom_process=False)
    np.testing.assert_allclose(got, literal_backward(net.weights, A, k, rule), rtol=1e-11, atol=1e-12)


def test_grad_is_the_true_gradient(case):
    net, x, k = case
    g = ref.attribute(net, x, k, "grad")
    h, num = 1e-6, np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        num[i] = (ref.forward(net, x + e).logits[k] - ref.forward(net, x - e).logits[k]) / (2 * h)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-7)


def test_bottom_processes(case):
    net, x, k = case
    r0 = {r: ref.attribute(net, x, k, r, bottom_process=False) for r in ("grad", "gbp", "rectgrad", "zplus")}
    np.testing.assert_array_equal(ref.attribute(net, x, k, "grad_x_input"), x * r0["grad"])
    np.testing.assert_array_equal(ref.attribute(net, x, k, "gbp"), r0["gbp"])
    np.testing.assert_array_equal(ref.attribute(net, x, k, "rectgrad"), np.maximum(x * r0["rectgrad"], 0))
    np.testing.assert_array_equal(ref.attribute(net, x, k, "zplus"), x * r0["zplus"])
    assert not np.allclose(r0["gbp"], r0["grad"]), "GBP silently degraded to the gradient"


# ----------------------------------------------------------------------------- LRP rules
def test_lrp_z_matches_literal_and_ancona(case):
    net, x, k = case
    A = literal_forward(net.weights, x)
    R0 = ref.lrp(net, x, k, "z")[0]
    np.testing.assert_allclose(R0, literal_lrp(net.weights, A, k, "z"), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(R0, ref.attribute(net, x, k, "grad_x_input"), rtol=1e-10, atol=1e-12)


def test_lrp_z_with_bias_absorbs_relevance_but_still_equals_grad_x_input():
    """With the bias in eq 8's denominator the bias soaks up relevance (no conservation), yet each
    input keeps x_i * df/dx_i: the bias share is lost, not redistributed."""
    net = ref.random_network(WIDTHS, seed=1, bias=True)
    x = np.random.default_rng(1).standard_normal(WIDTHS[0])
    k = int(np.argmax(ref.forward(net, x).logits))
    R = ref.lrp(net, x, k, "z")
    np.testing.assert_allclose(R[0], ref.attribute(net, x, k, "grad_x_input"), rtol=1e-10, atol=1e-13)
    assert abs(R[0].sum() - R[-1].sum()) > 1e-3


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (2.0, 1.0)])
def test_alpha_beta_matches_literal(case, alpha, beta):
    net, x, k = case
    fwd = ref.forward(net, x)
    A = literal_forward(net.weights, x)
    R = np.zeros(net.weights[-1].shape[1])
    R[k] = fwd.logits[k]
    for l in range(net.L, 0, -1):
        R = rl.lrp_alpha_beta_layer(fwd.A[l - 1], net.weights[l - 1], R, alpha, beta)
    np.testing.assert_allclose(R, literal_lrp(net.weights, A, k, "ab", alpha=alpha, beta=beta), rtol=1e-10, atol=1e-12)


def test_zplus_filter_form_equals_rule_form(case):
    """Proposition 3, exact form: A_{l-1} * (F^+ r_l) is eq 10's R_{l-1} at every layer."""
    net, x, k = case
    fwd = ref.forward(net, x)
    r = ref.backward(net, x, k, "zplus", fwd=fwd)
    R = ref.lrp(net, x, k, "zplus")
    A = literal_forward(net.weights, x)
    np.testing.assert_allclose(R[0], literal_lrp(net.weights, A, k, "ab"), rtol=1e-10, atol=1e-12)
    for l in range(net.L + 1):
        np.testing.assert_allclose(fwd.A[l] * r[l], R[l], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(R[l].sum(), fwd.logits[k], rtol=1e-10)


def test_zplus_gamma_is_per_neuron_and_in_unit_interval(case):
    net, x, _ = case
    fwd = ref.forward(net, x)
    g = flt.zplus_gamma(fwd.A[1], net.weights[1], fwd.A[2])
    active = fwd.A[2] > 0
    assert np.all((g[active] > 0) & (g[active] <= 1 + 1e-12)) and np.all(g[~active] == 0)
    assert np.ptp(g[active]) > 1e-3, "gamma should differ between neurons (not a scalar)"


def test_dtd_matches_literal(case):
    net, x, k = case
    low, high = np.full_like(x, x.min()), np.full_like(x, x.max())
    A = literal_forward(net.weights, x)
    want = literal_lrp(net.weights, A, k, "dtd", low=low, high=high)
    np.testing.assert_allclose(ref.lrp(net, x, k, "dtd", low=low, high=high)[0], want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ref.attribute(net, x, k, "dtd", low=low, high=high), want, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- filters and eq 13
def test_gbp_and_rectgrad_filters_equal_rules(case):
    net, x, k = case
    fwd = ref.forward(net, x)
    rng = np.random.default_rng(0)
    for l in range(1, net.L):
        W, m, a = net.weights[l - 1], fwd.M[l], fwd.A[l]
        r = rng.standard_normal(W.shape[1])
        np.testing.assert_allclose(flt.gbp_filter(W, m, r) @ r, rl.gbp_layer(W, m, r), rtol=1e-12, atol=1e-14)
        tau = rl.rectgrad_threshold(a, r)
        np.testing.assert_allclose(flt.rectgrad_filter(W, m, a, r, tau) @ r, rl.rectgrad_layer(W, m, a, r, tau),
                                   rtol=1e-12, atol=1e-14)


def test_gbp_gap_closed_form(case):
    net, x, k = case
    fwd = ref.forward(net, x)
    r = ref.backward(net, x, k, "gbp", fwd=fwd)
    for l, gap, _ in ref.nfr_gaps(net, x, k, "gbp"):
        want = fwd.A[l] @ np.maximum(-r[l], 0) if l < net.L else 0.0
        assert gap == pytest.approx(want, abs=1e-12)
        assert gap >= -1e-12


def test_rectgrad_can_violate_eq13_with_positive_threshold():
    """A hand-made layer where every active relevance is positive: q=0.9 removes positive terms."""
    W = np.eye(3)
    net = ref.ToyNet([W, np.ones((3, 1))])
    x = np.array([1.0, 2.0, 3.0])
    gaps = ref.nfr_gaps(net, x, 0, "rectgrad")
    assert min(g for _, g, _ in gaps) < 0
    assert min(g for _, g, _ in ref.nfr_gaps(net, x, 0, "rectgrad", tau=0.0)) >= 0


# ----------------------------------------------------------------------------- cascade and activation
def test_cascade_levels(case):
    net, x, k = case
    for rule in ("gbp", "rectgrad", "zplus"):
        C = ref.cascade(net, x, k, rule)
        assert C.shape == (net.L + 1, x.size)
        np.testing.assert_allclose(C[0], ref.attribute(net, x, k, "grad"), atol=1e-14)
        np.testing.assert_allclose(C[-1], ref.attribute(net, x, k, rule, bottom_process=False), atol=1e-14)
    gbp = ref.cascade(net, x, k, "gbp")
    np.testing.assert_allclose(gbp[1], gbp[0], atol=1e-14)  # the output layer has no ReLU


def test_cascade_level_is_literal_mix(case):
    """Level N: GBP in layers > L-N, the gradient below, written out by hand."""
    net, x, k = case
    fwd = ref.forward(net, x)
    N = 2
    r = np.zeros(net.weights[-1].shape[1])
    r[k] = 1
    for l in range(net.L, 0, -1):
        g = np.maximum(r, 0) if (l > net.L - N and l < net.L) else r
        r = net.weights[l - 1] @ (fwd.M[l] * g)
    np.testing.assert_allclose(ref.cascade(net, x, k, "gbp", levels=[N])[0], r, atol=1e-14)


def test_activation_rule(case):
    net, x, k = case
    fwd = ref.forward(net, x)
    l = 2
    r = fwd.A[l]
    for j in range(l, 0, -1):
        r = net.weights[j - 1] @ (fwd.M[j] * r)
    np.testing.assert_allclose(ref.attribute(net, x, k, "activation", layer=l), r, atol=1e-14)
    C = ref.cascade(net, x, k, "activation")
    np.testing.assert_allclose(C[net.L - l], r, atol=1e-14)
    np.testing.assert_allclose(C[-1], x, atol=1e-14)


# ----------------------------------------------------------------------------- stabiliser, dead layers, errors
def test_stabiliser_sign_and_zero():
    assert rl.sign0(0.0) == 1.0 and rl.sign0(-0.5) == -1.0
    np.testing.assert_array_equal(rl.safe_divide(np.array([0.0, 1.0]), np.array([0.0, 2.0])), [0.0, 0.5])
    assert rl.safe_divide(1.0, 0.0, eps=0.5) == 2.0
    assert rl.safe_divide(1.0, -0.0 - 1e-300, eps=0.5) == pytest.approx(-2.0)


def test_all_inactive_layer_gives_zeros_not_nan():
    rng = np.random.default_rng(0)
    W1 = -np.abs(rng.standard_normal((5, 6)))  # positive input -> every unit of layer 1 inactive
    net = ref.ToyNet([W1, rng.standard_normal((6, 6)), rng.standard_normal((6, 3))])
    x = np.abs(rng.standard_normal(5)) + 0.1
    low, high = np.zeros(5), np.full(5, 5.0)
    with np.errstate(all="raise"):
        for R in ref.lrp(net, x, 0, "zplus"), ref.lrp(net, x, 0, "z"), ref.lrp(net, x, 0, "dtd", low=low, high=high):
            assert all(np.isfinite(v).all() for v in R)
            np.testing.assert_array_equal(R[0], 0.0)
        for rule in ref.RULES:
            out = ref.attribute(net, x, 0, rule, low=low, high=high)
            assert np.isfinite(out).all() and not out.any()


def test_errors_are_clear():
    net, x, k = random_case(0, WIDTHS)
    with pytest.raises(NFRError, match="out of range"):
        ref.attribute(net, x, 99, "gbp")
    with pytest.raises(NFRError, match="unknown rule"):
        ref.attribute(net, x, k, "guided")
    with pytest.raises(NFRError, match="vector of length"):
        ref.attribute(net, x[:3], k, "gbp")
    with pytest.raises(NFRError, match="bounds"):
        ref.attribute(net, x, k, "dtd")
    with pytest.raises(NFRError, match="unknown weight distribution"):
        ref.random_network(WIDTHS, dist="cauchy")


@pytest.mark.parametrize("dist", ["gaussian", "sphere", "uniform", "orthogonal"])
def test_weight_distributions(dist):
    W = ref.sample_weights((400, 300), dist, np.random.default_rng(0))
    if dist == "sphere":
        np.testing.assert_allclose(np.linalg.norm(W, axis=0), 1.0)
    if dist == "orthogonal":
        np.testing.assert_allclose(W.T @ W, np.eye(300), atol=1e-12)
    if dist in ("gaussian", "uniform"):
        assert abs(W.mean()) < 3 * W.std() / np.sqrt(W.size)
        assert W.var() == pytest.approx(1 / 400, rel=0.02)
    if dist == "uniform":
        assert np.abs(W).max() <= np.sqrt(3 / 400)
    nets = [ref.random_network([20, 20, 20], seed=s, dist="gaussian") for s in (0, 0, 1)]
    np.testing.assert_array_equal(nets[0].weights[0], nets[1].weights[0])
    assert not np.allclose(nets[0].weights[0], nets[2].weights[0])
    assert not np.allclose(nets[0].weights[0], nets[0].weights[1]), "same-shape layers must differ"


def test_reference_never_imports_torch():
    code = ("import sys, nfr, nfr.reference, nfr.reference.sweeps, nfr.claims, nfr.plotting, nfr.errors; "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))")
    subprocess.run([sys.executable, "-c", code], check=True)
