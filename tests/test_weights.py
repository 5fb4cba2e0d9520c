"""Tests for nfr.engine.weights: randomization, removal, weight statistics (PITFALLS #8)."""
import math

import pytest
import torch
from torch import nn

from nfr.errors import NFRError
from nfr.engine.weights import (cascading_randomizations, he_std, randomize, remove,
                                removal_kept_inputs, weight_layers, weight_stats)


def small_net(seed=0):
    """Conv(3->8) conv(8->8) conv(8->8) [two equal-shape convs] flatten linear(8*4*4->16) linear(16->16) linear(16->10)."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 16), nn.ReLU(),
        nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return net.eval()


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def layer_weights(model):
    return [m.weight.detach().clone() for _, m in weight_layers(model)]


@pytest.mark.parametrize("dist", ["gaussian", "ring", "uniform", "orthogonal"])
def test_original_unchanged_and_all_layers_changed(dist):
    net = small_net()
    before = snapshot(net)
    new = randomize(net, dist, seed=1)
    after = snapshot(net)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert new is not net
    for w0, w1 in zip(layer_weights(net), layer_weights(new)):
        assert not torch.equal(w0, w1)
    # default bias handling: zero
    assert all(float(m.bias.detach().abs().sum()) == 0 for _, m in weight_layers(new))
    kept = randomize(net, dist, seed=1, bias="keep")
    for (_, m0), (_, m1) in zip(weight_layers(net), weight_layers(kept)):
        assert torch.equal(m0.bias, m1.bias)


def test_gaussian_moments_he_scale():
    lin = nn.Linear(400, 2000)
    w = randomize(lin, "gaussian", seed=3).weight.detach().double()
    N, s = w.numel(), math.sqrt(2 / 400)
    assert s == pytest.approx(he_std(lin))
    assert abs(float(w.mean())) < 5 * s / math.sqrt(N)
    # sample std of N i.i.d. normals: relative s.e. 1/sqrt(2N)
    assert abs(float(w.std()) / s - 1) < 5 / math.sqrt(2 * N)
    w1 = randomize(lin, "gaussian", seed=3, scale=None).weight.detach().double()
    assert abs(float(w1.std()) - 1) < 5 / math.sqrt(2 * N)
    w2 = randomize(lin, "gaussian", seed=3, scale=0.5).weight.detach().double()
    assert abs(float(w2.std()) / 0.5 - 1) < 5 / math.sqrt(2 * N)


def test_ring_equal_norms_isotropic():
    n, m = 3, 30000
    lin = nn.Linear(n, m)
    w = randomize(lin, "ring", seed=4).weight.detach().double()
    norms = w.norm(dim=1)
    expected = math.sqrt(2 / n) * math.sqrt(2) * math.gamma((n + 1) / 2) / math.gamma(n / 2)
    assert torch.allclose(norms, torch.full_like(norms, expected), rtol=1e-6)
    u = w / norms[:, None]
    # mean direction ~ 0: each coordinate of a uniform unit vector has variance 1/n
    assert float(u.mean(0).abs().max()) < 5 / math.sqrt(n * m)
    # second moment E[u u^T] = I/n (isotropy); entries of u u^T have variance <= 1/n^2 .. use 5 s.e.
    M = u.T @ u / m
    assert torch.allclose(M, torch.eye(n, dtype=M.dtype) / n, atol=5 / math.sqrt(m) / n * 2)
    # not Gaussian: entries are bounded by the norm and the norm never varies
    conv = nn.Conv2d(16, 64, 3)
    wc = randomize(conv, "ring", seed=4).weight.detach().reshape(64, -1).double()
    assert float(wc.norm(dim=1).std()) < 1e-6


def test_uniform_bounds_and_variance():
    lin = nn.Linear(300, 1000)
    s = math.sqrt(2 / 300)
    w = randomize(lin, "uniform", seed=5).weight.detach().double()
    a = math.sqrt(3) * s
    assert float(w.abs().max()) <= a * (1 + 1e-6)
    assert float(w.abs().max()) > 0.99 * a
    N = w.numel()
    assert abs(float(w.mean())) < 5 * s / math.sqrt(N)
    # var of U[-a,a]^2 gives relative s.e. of the std ~ sqrt(0.8/N)/2
    assert abs(float(w.std()) / s - 1) < 5 * math.sqrt(0.8 / N)
    w1 = randomize(lin, "uniform", seed=5, scale=None).weight.detach()
    assert float(w1.min()) >= -1 and float(w1.max()) <= 1 and float(w1.max()) > 0.99


def test_orthogonal_rows():
    lin = nn.Linear(50, 20)
    w = randomize(lin, "orthogonal", seed=6).weight.detach().double()
    G = w @ w.T
    r2 = float(G[0, 0])
    assert torch.allclose(G, torch.eye(20, dtype=G.dtype) * r2, atol=1e-5 * r2)
    # more rows than dimensions: blocks of n orthogonal rows, all with equal norm
    lin2 = nn.Linear(4, 10)
    w2 = randomize(lin2, "orthogonal", seed=6).weight.detach().double()
    nr = w2.norm(dim=1)
    assert torch.allclose(nr, nr[0].expand_as(nr), rtol=1e-6)
    G2 = w2[:4] @ w2[:4].T
    assert torch.allclose(G2, torch.eye(4, dtype=G2.dtype) * G2[0, 0], atol=1e-5)


@pytest.mark.parametrize("dist", ["gaussian", "ring", "uniform", "orthogonal"])
def test_equal_shape_layers_differ_and_seeding(dist):
    net = small_net()
    a = layer_weights(randomize(net, dist, seed=7))
    b = layer_weights(randomize(net, dist, seed=7))
    c = layer_weights(randomize(net, dist, seed=8))
    assert a[1].shape == a[2].shape and not torch.equal(a[1], a[2])  # PITFALLS #8
    assert a[3].shape != a[4].shape
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert all(not torch.equal(x, y) for x, y in zip(a, c))


def test_subsets_by_index_and_name():
    net = small_net()
    w0 = layer_weights(net)
    names = [n for n, _ in weight_layers(net)]
    new = randomize(net, "gaussian", seed=0, layers=[2, names[4]])
    w1 = layer_weights(new)
    changed = [i + 1 for i in range(len(w0)) if not torch.equal(w0[i], w1[i])]
    assert changed == [2, 5]
    # untouched layers keep their biases too
    for i, ((_, m0), (_, m1)) in enumerate(zip(weight_layers(net), weight_layers(new))):
        if i + 1 not in (2, 5):
            assert torch.equal(m0.bias, m1.bias)
    # a layer gets the same weights alone or with all others
    full = layer_weights(randomize(net, "gaussian", seed=0))
    assert torch.equal(full[1], w1[1]) and torch.equal(full[4], w1[4])


def test_bad_selectors_raise():
    net = small_net()
    with pytest.raises(NFRError, match="out of range"):
        randomize(net, "gaussian", 0, layers=[0])
    with pytest.raises(NFRError, match="no Conv2d/Linear layer named"):
        randomize(net, "gaussian", 0, layers=["nope"])
    with pytest.raises(NFRError, match="unknown distribution"):
        randomize(net, "cauchy", 0)
    with pytest.raises(NFRError, match="not both"):
        randomize(net, "gaussian", 0, layers=[1], cascade_from_top=1)


def test_cascading_touches_exactly_top_k():
    net = small_net()
    w0 = layer_weights(net)
    L = len(w0)
    seen = []
    prev = None
    for k, m in cascading_randomizations(net, "ring", seed=2):
        wk = layer_weights(m)
        changed = [i + 1 for i in range(L) if not torch.equal(w0[i], wk[i])]
        assert changed == list(range(L - k + 1, L + 1))
        if prev is not None:  # consecutive models differ in exactly layer L-k+1
            diff = [i + 1 for i in range(L) if not torch.equal(prev[i], wk[i])]
            assert diff == [L - k + 1]
        prev = wk
        seen.append(k)
    assert seen == list(range(L + 1))


def test_forward_order_with_example_input():
    class Swapped(nn.Module):  # registration order differs from call order
        def __init__(self):
            super().__init__()
            self.second = nn.Linear(4, 2)
            self.first = nn.Linear(3, 4)

        def forward(self, x):
            return self.second(torch.relu(self.first(x)))

    m = Swapped()
    assert [n for n, _ in weight_layers(m)] == ["second", "first"]
    assert [n for n, _ in weight_layers(m, torch.zeros(1, 3))] == ["first", "second"]
    assert not m.first._forward_pre_hooks and not m.second._forward_pre_hooks


def test_remove_linear_and_conv_pattern():
    lin = nn.Sequential(nn.Linear(25088, 5), nn.ReLU(), nn.Linear(100, 3))
    with torch.no_grad():
        for p in lin.parameters():
            p.fill_(1.0)
    r = remove(lin)
    k0 = removal_kept_inputs(25088)
    assert k0 == 63  # ceil(0.25% of 25088 = 62.72)
    w = r[0].weight.detach()
    assert torch.equal(w[:, :k0], torch.ones(5, k0)) and float(w[:, k0:].abs().sum()) == 0
    assert removal_kept_inputs(100) == 1 and int((r[2].weight != 0).sum()) == 3
    assert torch.equal(r[0].bias, lin[0].bias)
    assert float(lin[0].weight.detach().sum()) == 25088 * 5  # original unchanged
    rr = remove(lin, choice="random", seed=3)
    nz = (rr[0].weight != 0)
    assert int(nz.sum()) == 5 * k0 and torch.equal(nz[0], nz[1])  # same columns for all neurons
    assert not torch.equal(nz[0], w[0] != 0)

    conv = nn.Conv2d(2, 4, 3)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    rc = remove(conv)
    pattern = torch.tensor([[1., 1., 1.], [1., 0., 0.], [1., 0., 0.]])
    assert torch.equal(rc.weight, pattern.expand(4, 2, 3, 3))
    one = nn.Conv2d(2, 4, 1)
    assert torch.equal(remove(one).weight, one.weight)


def test_remove_subset():
    net = small_net()
    w0 = layer_weights(net)
    w1 = layer_weights(remove(net, cascade_from_top=2))
    changed = [i + 1 for i in range(len(w0)) if not torch.equal(w0[i], w1[i])]
    assert changed == [5, 6]


def test_weight_stats_gaussian_theory():
    # m neurons of fan-in n, i.i.d. isotropic: the P = m(m-1)/2 cosines are pairwise independent
    # with mean 0 and variance 1/n, so mean(c) has s.e. 1/sqrt(nP) and mean(c^2) relative s.e.
    # ~ sqrt(2/P) (std: half of it). Norm CV of a chi_n variable ~ 1/sqrt(2n).
    conv = nn.Conv2d(64, 300, 3)   # n = 576, m = 300 > max_neurons=256: subsampled
    lin = nn.Linear(1000, 200)
    for mod in (conv, lin):
        rnd = randomize(mod, "gaussian", seed=11)
        st = weight_stats(rnd, max_neurons=256, seed=0)[0]
        m, n = st["n_used"], st["fan_in"]
        P = m * (m - 1) / 2
        assert m == min(256, st["n_neurons"])
        assert abs(st["cos_mean"]) < 5 / math.sqrt(n * P)
        assert abs(st["cos_std"] * math.sqrt(n) - 1) < 5 * math.sqrt(2 / P) / 2 + 2 / n
        assert abs(st["norm_cv"] * math.sqrt(2 * n) - 1) < 5 / math.sqrt(2 * m) + 1 / n
        assert st["norm_mean"] == pytest.approx(math.sqrt(2), rel=0.05)  # s sqrt(n) = sqrt(2)


def test_weight_stats_leaves_model_unchanged():
    net = small_net()
    before = snapshot(net)
    weight_stats(net, max_neurons=4, seed=1)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_weight_stats_ring_and_orthogonal_and_hand_case():
    st = weight_stats(randomize(nn.Linear(64, 32), "orthogonal", seed=1))[0]
    assert abs(st["cos_mean"]) < 1e-6 and st["cos_std"] < 1e-6 and st["norm_cv"] < 1e-6  # float32
    assert weight_stats(randomize(nn.Linear(64, 32), "ring", seed=1))[0]["norm_cv"] < 1e-6
    lin = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]))
    st = weight_stats(lin)[0]
    assert st["n_zero"] == 1 and st["cos_mean"] == pytest.approx(1 / math.sqrt(2))
    assert st["cos_std"] == 0
    assert st["norm_mean"] == pytest.approx((1 + math.sqrt(2)) / 3)


def test_weight_stats_kurtosis_separates_uniform():
    # entrywise kurtosis mean(w^4)/mean(w^2)^2: 3 Gaussian, 3n/(n+2) ring, 9/5 uniform.
    # N = 256*500 entries: s.e. of the Gaussian estimate ~ sqrt(96/N) ~ 0.03 -> tolerance 0.15
    lin = nn.Linear(500, 256)
    k = {d: weight_stats(randomize(lin, d, seed=2))[0]["kurtosis"] for d in ("gaussian", "ring", "uniform")}
    assert k["gaussian"] == pytest.approx(3.0, abs=0.15)
    assert k["ring"] == pytest.approx(3 * 500 / 502, abs=0.15)
    assert k["uniform"] == pytest.approx(1.8, abs=0.05)
