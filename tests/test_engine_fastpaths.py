"""The engine's fast paths are exact: the selection quantile and the cached W+ never change a result."""
import numpy as np
import torch
import torch.nn as nn

import nfr
from nfr.engine import rules
from nfr.engine.rules import row_quantile


def _g(seed):
    return torch.Generator().manual_seed(seed)


def _check(p, q):
    """Bit-equal to torch.quantile and NumPy in float64. (In float32 torch.quantile and NumPy
    themselves disagree by ulps at q = 0.999, from the precision of the rank q (n - 1).)"""
    p = p.double()
    got = row_quantile(p, q).reshape(-1)
    want = torch.quantile(p.reshape(p.shape[0], -1), q, dim=1)
    assert torch.equal(got, want), (got, want)
    np.testing.assert_array_equal(got.numpy(), np.quantile(p.reshape(p.shape[0], -1).numpy(), q, axis=1))


def test_quantile_large_rows_match_torch_quantile_exactly():
    p = torch.randn(3, 300_000, generator=_g(0))
    p[p < 0.2] = 0.0                                   # half zeros, as after a ReLU
    for q in (0.9, 0.5, 0.05, 0.999):
        _check(p, q)
    assert torch.equal(row_quantile(p, 0.9).reshape(-1), torch.quantile(p, 0.9, dim=1))  # float32


def test_quantile_ties_at_the_quantile():
    p = torch.zeros(2, 200_000)
    p[0, :1000] = torch.rand(1000, generator=_g(1))   # q=0.9 falls in the run of zeros
    p[1, ::3] = 1.0                                    # two values only
    for q in (0.9, 0.5, 0.7):
        _check(p, q)


def test_quantile_periodic_pattern():
    n, stride = 2 ** 18, 16
    p = torch.randn(2, n, generator=_g(2)).abs()
    p[:, ::stride] = -1.0                              # the strided sample sees only -1
    for q in (0.9, 0.3):
        _check(p, q)


def test_positive_weight_cache_follows_in_place_updates():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.rand(2, 6, generator=_g(3))
    r1 = nfr.attribute(model, x, 0, "zplus")
    with torch.no_grad():
        model[0].weight.mul_(-1.0)                       # in place: same tensor, new version
    r2 = nfr.attribute(model, x, 0, "zplus")
    fresh = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(r2, nfr.attribute(fresh, x, 0, "zplus"), rtol=0, atol=0)
    assert not torch.allclose(r1, r2)
    W = model[0].weight
    assert rules._positive(W).data_ptr() == rules._positive(W).data_ptr()   # a cache hit
    np.testing.assert_array_equal(rules._positive(W).numpy(), W.detach().clamp(min=0).numpy())


def test_alignment_survives_float32_overflow_of_the_norm():
    x = torch.rand(2, 3, 8, 8, generator=_g(4))
    R = x * 1e22                                          # ||R||^2 overflows float32
    a = nfr.alignment(R, x)
    torch.testing.assert_close(a, torch.ones(2), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(nfr.alignment(-R, x), -torch.ones(2), rtol=1e-5, atol=1e-5)
