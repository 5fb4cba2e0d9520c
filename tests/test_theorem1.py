"""Tests of nfr.reference.theorem1 against independent computations (the reference rules, closed
forms, exact low-dimensional integrals, large independent samples)."""
import math

import numpy as np
import pytest

import nfr.reference as ref
from nfr.reference import theorem1 as t1
from nfr.reference.network import ToyNet, forward


def _net(seed, d=7, N=30, K=3):
    rng = np.random.default_rng(seed)
    return ToyNet([rng.standard_normal((d, N)), rng.standard_normal((N, K))]), rng.standard_normal(d)


@pytest.mark.parametrize("seed", range(8))
def test_maps_equal_reference_rules(seed):
    """Batched maps == the literal whole-network reference (chapter 1's rules), k = 1."""
    net, x = _net(seed)
    k = 1
    W1, W2 = net.weights
    R = t1.one_hidden_maps(W1[None], W2[:, k][None], x)[0]
    for i, rule in enumerate(["grad", "gbp", "rectgrad"]):
        np.testing.assert_allclose(R[i], ref.attribute(net, x, k, rule, bottom_process=False), atol=1e-12)
    fwd = forward(net, x)
    gamma_k = fwd.logits[k] / np.maximum(fwd.A[1] * W2[:, k], 0).sum()     # output layer's scalar
    np.testing.assert_allclose(gamma_k * R[3], ref.attribute(net, x, k, "zplus", bottom_process=False), atol=1e-12)
    np.testing.assert_allclose(gamma_k * R[4], ref.attribute(net, x, k, "zplus"), atol=1e-12)


def test_zplus_with_zero_input_coordinate():
    net, x = _net(3)
    x[2] = 0.0
    W1, W2 = net.weights
    R = t1.one_hidden_maps(W1[None], W2[:, 0][None], x)[0]
    fwd = forward(net, x)
    gamma_k = fwd.logits[0] / np.maximum(fwd.A[1] * W2[:, 0], 0).sum()
    np.testing.assert_allclose(gamma_k * R[3], ref.attribute(net, x, 0, "zplus", bottom_process=False), atol=1e-12)


def test_sweep_independent_of_chunking_and_matches_loop():
    x = np.random.default_rng(1).standard_normal(8)
    a = t1.width_sweep(x, [4, 32], 5, chunk=8 * 32)           # one seed per chunk at N = 32
    b = t1.width_sweep(x, [4, 32], 5, chunk=2 ** 20)
    np.testing.assert_array_equal(a["alpha"], b["alpha"])
    # seed 3 at N = 32 by hand
    rng = t1.seed_rng(0, "gaussian", 8, 32, 3)
    W = t1.sample_hidden(8, 32, "gaussian", rng)
    v = rng.standard_normal(32)
    R = W @ ((W.T @ x > 0) * np.maximum(v, 0))
    assert abs(a["alpha"][1, 3, 1] - ref.alignment(R, x)) < 1e-12


def test_reflection_equivariance():
    """R(QW) = Q R(W) for rules whose coefficients see W only through W^T x (Lemma's engine)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(6)
    W, v = rng.standard_normal((3, 6, 40)), rng.standard_normal((3, 40))
    Q = t1.reflection(x)
    np.testing.assert_allclose(Q @ Q, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(Q @ x, x, atol=1e-12)
    R, RQ = t1.one_hidden_maps(W, v, x), t1.one_hidden_maps(Q @ W, v, x)
    np.testing.assert_allclose(RQ[:, :3], R[:, :3] @ Q.T, atol=1e-10)
    assert np.abs(RQ[:, 3] - R[:, 3] @ Q.T).max() > 1e-3          # z+ is not equivariant


def test_sphere_half_mean_closed_forms_and_sample():
    assert abs(t1.sphere_half_mean(2) - 1 / math.pi) < 1e-14
    assert abs(t1.sphere_half_mean(3) - 0.25) < 1e-14
    x = np.zeros(5)
    x[0] = 1.0
    m, se = t1.sampled_mean(x, "sphere", n=2 ** 18, seed=4)
    assert abs(m[0] - t1.sphere_half_mean(5)) < 4 * se[0]


def test_kappa_sphere_expansion():
    for d in (16, 64, 256):
        ratio = t1.kappa(d, "sphere") / t1.kappa(d)
        assert abs(ratio - (1 - 1 / (2 * d))) < 2 / d ** 2


def test_gaussian_half_mean_against_sample_and_quadrature():
    x = np.random.default_rng(2).standard_normal(5)
    np.testing.assert_allclose(t1.gaussian_entries_half_mean(x), t1.gaussian_half_mean(x), atol=1e-10)
    for mu in (0.0, 0.3):
        m, se = t1.sampled_mean(x, "shifted", n=2 ** 18, seed=1, mu=mu)
        pred = t1.gaussian_half_mean(x, sigma=1.0, mu=mu) / math.sqrt(5)    # 'shifted' divides by sqrt(d)
        assert np.all(np.abs(m - pred) < 4.5 * se)


def _cube_exact_2d(x):
    """d = 2: mu_i = (1/2) int_{-1}^{1} w F(x_i w) dw, F the CDF of x_k w_k (uniform on [-|x_k|, |x_k|])."""
    w = np.linspace(-1, 1, 400_001)
    out = []
    for i in range(2):
        a = abs(x[1 - i])
        out.append(0.5 * np.trapezoid(w * np.clip((x[i] * w + a) / (2 * a), 0, 1), w))
    return np.array(out)


@pytest.mark.parametrize("deg", [5.0, 22.5, 40.0])
def test_cube_half_mean_exact_2d(deg):
    x = 1.3 * np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg))])
    np.testing.assert_allclose(t1.cube_half_mean(x), _cube_exact_2d(x), atol=1e-9)


def test_cube_half_mean_symmetric_directions_parallel():
    """On the diagonal and on an axis the cube's symmetries force mu || x."""
    for x in (np.ones(4), np.array([2.0, 0, 0, 0])):
        mu = t1.cube_half_mean(x)
        assert 1 - t1.cosine(mu, x) < 1e-12


@pytest.mark.parametrize("d", [3, 16])
def test_cube_half_mean_against_sample(d):
    x = np.random.default_rng(d).standard_normal(d)
    m, se = t1.sampled_mean(x, "uniform", n=2 ** 19, seed=7)
    pred = t1.cube_half_mean(x) * math.sqrt(3 / d)               # 'uniform' scales entries by sqrt(3/d)
    z = (m - pred) / se
    assert np.abs(z).max() < 4.5 and np.mean(z ** 2) < 2.5


def test_fit_power_law_exact():
    N = 4.0 ** np.arange(1, 6)
    c, a = t1.fit_power_law(N, 3.0 * N ** -0.7)
    assert abs(c - 3.0) < 1e-10 and abs(a - 0.7) < 1e-12


def test_tan2_and_alignments():
    assert t1.tan2(np.array([1.0]))[0] == 0.0
    assert abs(t1.tan2(np.array([math.cos(0.3)]))[0] - math.tan(0.3) ** 2) < 1e-12
    assert np.isinf(t1.tan2(np.array([-0.2]))[0])
    x = np.array([1.0, 2.0, 0.0])
    assert t1.alignments(np.zeros((2, 3)), x).tolist() == [0.0, 0.0]


def test_gbp_limit_gaussian_rate():
    """N E[tan^2] approaches kappa = pi^2 (d - 1) (Theorem 1's constant), 64 seeds, d = 8."""
    x = np.random.default_rng(0).standard_normal(8)
    sw = t1.width_sweep(x, [2048], 64)
    ratio = 2048 * t1.tan2(sw["alpha"][0, :, 1]).mean() / t1.kappa(8)
    assert 0.75 < ratio < 1.3


def test_unknown_distribution_raises():
    with pytest.raises(Exception):
        t1.sample_hidden(3, 4, "laplace", 0)
