"""Tests of nfr.reference.nie: vectorised eq 6 == a literal loop == the torch engine's GBP on the
same three-layer network (float64); the exact expectation and the coverage counts."""
import numpy as np
import pytest

from nfr.reference import nie


def _setup(seed, H=7, Wd=6, k=3, stride=1, N=5, K=4, S=3, Cin=None):
    shape = (H, Wd) if Cin is None else (Cin, H, Wd)
    x = np.random.default_rng(100 + seed).standard_normal(shape)
    J = nie.patch_index(shape, k, stride).shape[1]
    W, V = nie.random_weights((Cin or 1) * k * k, N, J, K, c=0.7, seeds=range(seed, seed + S))
    return x, W, V


@pytest.mark.parametrize("stride", [1, 2])
def test_patches_and_fold_are_adjoint(stride):
    """<D x, P> == <x, D^T P>: fold is the transpose of patch extraction."""
    g = np.random.default_rng(0)
    x = g.standard_normal((8, 9))
    C = nie.patches(x, 3, stride)
    P = g.standard_normal(C.shape)
    assert np.isclose((C * P).sum(), (x * nie.fold(P, x.shape, 3, stride)).sum())


def test_coverage_counts():
    cov = nie.coverage((6, 6), 3)
    assert cov[2:4, 2:4].min() == 9 and cov[0, 0] == 1 and cov[0, 2] == 3 and cov[1, 1] == 4


@pytest.mark.parametrize("seed,stride,cin", [(0, 1, None), (1, 2, None), (2, 1, 2)])
def test_gbp_equals_loop(seed, stride, cin):
    x, W, V = _setup(seed, stride=stride, Cin=cin)
    np.testing.assert_allclose(nie.gbp(x, W, V, 2, 3, stride, Z=1.5),
                               nie.gbp_loop(x, W, V, 2, 3, stride, Z=1.5), atol=1e-12)


def _torch_net(W, V, k, stride):
    torch = pytest.importorskip("torch")
    p, N = W.shape
    cin = p // (k * k)
    conv = torch.nn.Conv2d(cin, N, k, stride=stride, bias=False).double()
    lin = torch.nn.Linear(V.shape[0], V.shape[1], bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(W.T.reshape(N, cin, k, k)))
        lin.weight.copy_(torch.from_numpy(V.T))
    return torch.nn.Sequential(conv, torch.nn.ReLU(inplace=True), torch.nn.Flatten(), lin).eval()


@pytest.mark.parametrize("seed,stride,cin", [(0, 1, None), (3, 2, None), (4, 1, 3)])
def test_gbp_equals_torch_engine(seed, stride, cin):
    torch = pytest.importorskip("torch")
    import nfr
    x, W, V = _setup(seed, stride=stride, Cin=cin)
    ref = nie.gbp(x, W, V, 1, 3, stride)
    f = nie.logits(x, W, V, 3, stride)
    for s in range(W.shape[0]):
        net = _torch_net(W[s], V[s], 3, stride)
        xt = torch.from_numpy(x.reshape((-1,) + x.shape[-2:]))[None]
        np.testing.assert_allclose(net(xt).detach().numpy()[0], f[s], atol=1e-12)
        R = nfr.attribute(net, xt, target=1, rule="gbp")[0].numpy().reshape(x.shape)
        np.testing.assert_allclose(R, ref[s], atol=1e-12)


def test_expectation_is_the_mean_of_many_draws():
    """The exact expectation matches the Monte-Carlo mean over many seeds (relative 6%; the noise is about 0.5/sqrt(400))."""
    x = nie.sign_image((6, 6), seed=1)
    J = nie.patch_index(x.shape, 3).shape[1]
    W, V = nie.random_weights(9, 64, J, 1, seeds=range(400))
    mean = nie.gbp(x, W, V, 0, 3).mean(0)
    E = nie.expected_gbp(x, 3, 64)
    assert np.linalg.norm(mean - E) / np.linalg.norm(E) < 0.06


def test_constants_and_sign_image():
    x = nie.sign_image((10, 10), seed=0)
    C = nie.patches(x, 3)
    assert np.allclose(np.linalg.norm(C, axis=0), 0.3) and np.isclose(np.linalg.norm(x), 1)
    assert np.isclose(nie.paper_constant(1, 9, 8, 0.3), 4 * nie.derived_constant(1, 9, 8, 0.3))
    # interior pixels of the exact expectation follow the derived constant exactly
    E = nie.expected_gbp(x, 3, 8)
    assert np.allclose(E[2:-2, 2:-2], nie.derived_constant(1, 9, 8, 0.3) * x[2:-2, 2:-2])


def test_measure_and_noise_prediction():
    """At N = 256 the centre ratio is the derived constant (2%) and the residual matches the
    independent-terms prediction (20%); the prediction is pi sqrt(C_in / N) for 3 x 3 filters."""
    x = nie.sign_image((16, 16), seed=2)
    m = nie.measure(x, 3, 256, c=0.5, seeds=range(8))
    assert abs(m["ratio"].mean() / nie.derived_constant(0.5, 9, 256, 3 / 16) - 1) < 0.02
    pred = nie.noise_prediction(x, 3) / 16
    assert abs(m["residual"].mean() / pred - 1) < 0.2
    assert np.all(m["cos_E"] > 0.9) and m["s"].shape == (8, 16, 16)
    xc = nie.sign_image((4, 40, 40), seed=0)
    assert abs(nie.noise_prediction(xc, 3) / (np.pi * 2) - 1) < 0.1
