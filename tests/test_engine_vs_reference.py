"""Oracle: the torch engine against the NumPy reference (float64), on toy MLPs and on a toy CNN
whose convolutions are turned into the equivalent dense matrices for the reference."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import nfr  # noqa: E402
import nfr.reference as ref  # noqa: E402
from nfr.reference.sweeps import random_case  # noqa: E402

RULES = ["grad", "grad_x_input", "gbp", "rectgrad", "zplus"]


def mlp_from_reference(net):
    layers = []
    for l, W in enumerate(net.weights, start=1):
        lin = nn.Linear(*W.shape, bias=False).double()
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.T))
        layers.append(lin)
        if l < net.L:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


def _ref_close(got, want, err_msg=""):
    import os
    from _oracle_log import record
    record("NumPy reference (float64)", got, want, os.environ.get("PYTEST_CURRENT_TEST", ""))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=err_msg)


@pytest.fixture(params=range(4))
def toy(request):
    net, x, k = random_case(request.param, [20, 32, 24, 16, 6])
    return net, x, k, mlp_from_reference(net), torch.from_numpy(x)[None]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("bottom", [True, False])
def test_mlp_rules_equal_reference(toy, rule, bottom):
    net, x, k, model, xt = toy
    want = ref.attribute(net, x, k, rule, bottom_process=bottom)
    got = nfr.attribute(model, xt, k, rule, bottom=bottom)[0].numpy()
    _ref_close(got, want)


def test_mlp_dtd_equals_reference(toy):
    net, x, k, model, xt = toy
    low, high = float(x.min()), float(x.max())
    want = ref.attribute(net, x, k, "dtd", low=low, high=high)
    got = nfr.attribute(model, xt, k, "dtd", low=low, high=high)[0].numpy()
    _ref_close(got, want)


@pytest.mark.parametrize("rule", ["gbp", "rectgrad", "zplus", "activation"])
def test_mlp_cascade_equals_reference(toy, rule):
    net, x, k, model, xt = toy
    want = ref.cascade(net, x, k, rule)
    got = nfr.cascade(model, xt, k, rule)[:, 0].numpy()
    assert got.shape == want.shape
    _ref_close(got, want)


def test_alignment_equals_reference(toy):
    net, x, k, model, xt = toy
    R = ref.attribute(net, x, k, "gbp")
    got = nfr.alignment(torch.from_numpy(R)[None], xt)
    assert got.shape == (1,) and float(got[0]) == pytest.approx(ref.alignment(R, x), abs=1e-12)


def dense(linear_map, in_shape):
    """The matrix [d_in, d_out] of a bias-free linear torch map (columns = neurons), for the reference."""
    d_in = int(np.prod(in_shape))
    eye = torch.eye(d_in, dtype=torch.float64).reshape(d_in, *in_shape)
    with torch.no_grad():
        return linear_map(eye).reshape(d_in, -1).numpy()


def test_cnn_equals_reference_through_dense_matrices():
    g = torch.Generator().manual_seed(0)
    conv1 = nn.Conv2d(2, 4, 3, stride=2, padding=1, bias=False).double()
    conv2 = nn.Conv2d(4, 6, 3, stride=1, padding=1, bias=False).double()
    fc = nn.Linear(6 * 4 * 4, 5, bias=False).double()
    for m in (conv1, conv2, fc):
        with torch.no_grad():
            m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64) * 0.4)
    model = nn.Sequential(conv1, nn.ReLU(), conv2, nn.ReLU(), nn.Flatten(), fc).eval()
    net = ref.ToyNet([dense(conv1, (2, 8, 8)), dense(conv2, (4, 4, 4)), dense(fc, (96,))])
    xt = torch.randn(1, 2, 8, 8, generator=g, dtype=torch.float64)
    x = xt.reshape(-1).numpy()
    k = int(np.argmax(ref.forward(net, x).logits))
    np.testing.assert_allclose(model(xt)[0].detach().numpy(), ref.forward(net, x).logits, rtol=1e-10)
    for rule in RULES:
        want = ref.attribute(net, x, k, rule)
        got = nfr.attribute(model, xt, k, rule)[0].reshape(-1).numpy()
        _ref_close(got, want, err_msg=rule)
    np.testing.assert_allclose(nfr.cascade(model, xt, k, "gbp")[:, 0].reshape(4, -1).numpy(),
                               ref.cascade(net, x, k, "gbp"), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (2.0, 1.0), (1.5, 0.5)])
def test_mlp_alphabeta_equals_reference_relevance_form(toy, alpha, beta):
    """LRP-alpha-beta (eq 9): the engine's filter form equals the literal relevance form R_0,
    with a signed input (the products' signs decide z+ / z-)."""
    net, x, k, model, xt = toy
    want = ref.lrp(net, x, k, "alphabeta", alpha=alpha, beta=beta)[0]
    got = nfr.attribute(model, xt, k, "alphabeta", alpha=alpha, beta=beta)[0].numpy()
    _ref_close(got, want)
    assert (x < 0).any()
    if beta == 0.0:
        np.testing.assert_allclose(got, nfr.attribute(model, xt, k, "zplus")[0].numpy(), rtol=1e-12)


def test_alphabeta_needs_conservation():
    model = nn.Sequential(nn.Linear(3, 2)).eval()
    with pytest.raises(nfr.NFRError, match="alpha - beta = 1"):
        nfr.attribute(model, torch.rand(1, 3), 0, "alphabeta", alpha=2.0, beta=0.5)
