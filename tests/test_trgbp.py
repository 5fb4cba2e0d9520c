"""Tests of nfr.trgbp: completeness of the plain-gradient decomposition, the bias maps against a
hand-written guided backward, eq 9's aggregation and eq 10's class-mean subtraction."""
import pytest
import torch
import torch.nn as nn

from nfr import trgbp


def _net(seed=0, bn=True):
    g = torch.Generator().manual_seed(seed)
    layers = [nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6) if bn else nn.Identity(), nn.ReLU(inplace=True),
              nn.MaxPool2d(2), nn.Conv2d(6, 5, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 4 * 4, 7)]
    m = nn.Sequential(*layers).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
        if bn:
            m[1].running_mean.copy_(torch.randn(6, generator=g, dtype=torch.float64))
            m[1].running_var.copy_(torch.rand(6, generator=g, dtype=torch.float64) + 0.5)
    return m.eval()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_completeness_relu_net_with_bn(seed):
    m = _net(seed)
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    tot, f = trgbp.completeness(m, x, torch.tensor([0, 3, 6]))
    torch.testing.assert_close(tot, f, atol=1e-10, rtol=1e-10)


def _manual_gbp_bias_maps(m, x, k):
    """Literal guided backward through conv1-relu-pool-conv2-relu-linear, recording dZ."""
    a1 = m[0](x)
    z1 = m[1](a1)
    r1 = torch.relu(z1)
    p1 = m[3](r1)
    z2 = m[4](p1)
    r2 = torch.relu(z2)
    g_r2 = m[7].weight[k].view(1, 5, 4, 4).expand_as(r2)
    g_z2 = torch.relu(g_r2) * (z2 > 0)
    g_p1 = torch.nn.grad.conv2d_input(p1.shape, m[4].weight, g_z2, padding=1)
    g_r1 = torch.zeros_like(r1)
    _, idx = torch.nn.functional.max_pool2d(r1, 2, return_indices=True)
    g_r1.view(1, 6, -1).scatter_add_(2, idx.view(1, 6, -1), g_p1.view(1, 6, -1))
    g_z1 = torch.relu(g_r1) * (z1 > 0)
    # merged BN: Z1 = s * (conv(x) + b0 - mu) + beta with s = gamma / sqrt(var + eps)
    bn = m[1]
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    b1 = s * (m[0].bias - bn.running_mean) + bn.bias
    R1 = (g_z1 * b1.view(1, -1, 1, 1)).sum(1)
    R2 = (g_z2 * m[4].bias.view(1, -1, 1, 1)).sum(1)
    R3 = m[7].bias[k].view(1, 1, 1)
    g_x = torch.nn.grad.conv2d_input(x.shape, m[0].weight * s.view(-1, 1, 1, 1), g_z1, padding=1)
    return g_x.sum(1), {1: R1, 2: R2, 3: R3}


def test_gbp_bias_maps_equal_literal_backward():
    m = _net(4)
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    R0, maps, _ = trgbp.layer_maps(m, x, 2, "gbp")
    with torch.no_grad():
        R0_ref, ref = _manual_gbp_bias_maps(m, x, 2)
    torch.testing.assert_close(R0, R0_ref)
    for l in ref:
        torch.testing.assert_close(maps[l], ref[l])


def test_aggregate_and_class_mean():
    m = _net(5)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    R0, maps, _ = trgbp.layer_maps(m, x, torch.tensor([1, 2]))
    R = trgbp.aggregate(R0, maps)
    assert R.shape == (2, 8, 8)
    torch.testing.assert_close(trgbp.aggregate(R0, maps, layers=[]), R0)
    # a 1x1 map (the Linear layer's bias) upsamples to a constant
    torch.testing.assert_close(trgbp.aggregate(R0, {3: maps[3]}) - R0, maps[3].expand(2, 8, 8))
    classes, Rk, Rt = trgbp.trgbp_maps(m, x, top=5)
    torch.testing.assert_close(Rt.sum(1), torch.zeros(2, 8, 8, dtype=torch.float64))
    torch.testing.assert_close(trgbp.trgbp(m, x), Rt[:, 0])
    out = m(x)
    assert torch.equal(classes[:, 0], out.argmax(1))
    low = out.argmin(1)                       # never in the top 5 of 7 classes
    R0l, mapsl, _ = trgbp.layer_maps(m, x, low)
    torch.testing.assert_close(trgbp.trgbp(m, x, low), trgbp.aggregate(R0l, mapsl) - Rk.mean(1))


def test_model_unchanged_and_bias_randomization():
    m = _net(6)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    trgbp.trgbp(m, x)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    r1, r2 = trgbp.randomize_biases(m, 0), trgbp.randomize_biases(m, 0)
    assert torch.equal(r1[4].bias, r2[4].bias) and not torch.equal(r1[4].bias, m[4].bias)
    assert torch.equal(r1[4].weight, m[4].weight)


def test_cascade_maps_level0_is_the_model():
    m = _net(7)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t = m(x).argmax(1)
    out = trgbp.cascade_maps(m, x, t, [0, 1, 3])
    torch.testing.assert_close(out[0][1], trgbp.trgbp(m, x, t))
    assert not torch.allclose(out[3][0], out[0][0])
