"""The engine's fast paths are exact: the selection quantile and the cached W+ never change a result."""
import numpy as np
import pytest
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


def test_quantile_at_the_boundary_of_the_positive_entries():
    """Every split of v_(k), v_(k+1) around the positives: both positive (selected from the
    positives alone), the last two entries, and v_(k) the largest non-positive with v_(k+1) the
    smallest positive (the general path)."""
    n = 1000
    for npos in (1, 2, 3, 50, 101, 999, 1000):
        p = torch.zeros(3, n, dtype=torch.float64)
        p[0, :npos] = torch.rand(npos, generator=_g(npos), dtype=torch.float64) + 0.5
        p[1, :npos] = torch.rand(npos, generator=_g(npos + 1), dtype=torch.float64) + 0.5
        p[1, npos:] = -torch.rand(n - npos, generator=_g(npos + 2), dtype=torch.float64)
        p[2] = p[0].flip(0)
        for k in {n - npos - 1, n - npos, n - npos + 1, n - 2, n - 1} & set(range(n)):
            _check(p, k / (n - 1))             # rank q (n - 1) = k: v_(k) and v_(k+1) exactly
            _check(p, (k + 0.5) / (n - 1) if k < n - 1 else 1.0)


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


def _naive_rect(g, out, q, upper):
    p = out * g
    tau = torch.quantile(p.reshape(p.shape[0], -1), q, dim=1).view(-1, *([1] * (p.dim() - 1)))
    M = (out > 0) if upper is None else (out > 0) & (out < upper)
    return g * (p > tau) * M


def test_rectgrad_fused_gate_equals_the_textbook_mask():
    """The fused RectGrad gate (one threshold_backward per sample) equals g * 1(A g > tau) * M,
    also when tau < 0 (most products negative: the ReLU mask must still act) and for a clamp
    gate (ReLU6, M also 0 at the upper bound)."""
    from nfr.engine.rules import _rect_gate
    gen = _g(7)
    out = torch.randn(3, 4, 9, 9, generator=gen, dtype=torch.float64).clamp(min=0)
    out[:, :, :3] = 0.0
    g = torch.randn(3, 4, 9, 9, generator=gen, dtype=torch.float64)
    g_neg = -g.abs() - 0.1                       # every product <= 0: tau <= 0 ...
    g_neg[0, 0, 5, 5] = 1.0                      # ... with a few positive ones
    out6 = out.clamp(max=1.0)                    # units at the ReLU6-style upper bound
    cases = [(g, out, None), (g_neg, out, None), (g, out6, 1.0), (g_neg, out6, 1.0)]
    for gg, oo, up in cases:
        for q in (0.9, 0.5, 0.1):
            want = _naive_rect(gg, oo, q, up)
            got = _rect_gate(gg, oo, q, up)
            assert torch.equal(got, want + 0.0), (q, up)   # + 0.0: -0 -> 0
    # tau < 0 really happened, and there the ReLU mask mattered
    tau = torch.quantile((out * g_neg).reshape(3, -1), 0.1, dim=1)
    assert (tau < 0).all()


def test_stacked_first_layer_equals_unstacked_path():
    """The signed z+ layer and z^B stack their two/three maps into one convolution (groups == 1).
    A grouped first convolution takes the unstacked path; the same layer written as a dense
    convolution with zero blocks takes the stacked one: both give the same z+ and DTD maps."""
    torch.manual_seed(3)
    grouped = nn.Conv2d(3, 6, 3, padding=1, groups=3).double()
    dense = nn.Conv2d(3, 6, 3, padding=1).double()
    with torch.no_grad():
        dense.weight.zero_()
        for o in range(6):
            dense.weight[o, o // 2] = grouped.weight[o, 0]
        dense.bias.copy_(grouped.bias)

    def net(first):
        torch.manual_seed(4)
        return nn.Sequential(first, nn.ReLU(), nn.Conv2d(6, 5, 3, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(20, 4)).double().eval()

    a, b = net(grouped), net(dense)
    x = torch.randn(2, 3, 8, 8, generator=_g(5), dtype=torch.float64)
    assert torch.allclose(a(x), b(x), rtol=1e-12, atol=1e-12)
    for rule, kw in (("zplus", {}), ("dtd", {"low": -3.0, "high": 3.0}),
                     ("alphabeta", {"alpha": 2.0, "beta": 1.0})):
        ra = nfr.attribute(a, x, torch.tensor([1, 2]), rule, **kw)
        rb = nfr.attribute(b, x, torch.tensor([1, 2]), rule, **kw)
        assert ra.abs().sum() > 0
        torch.testing.assert_close(ra, rb, rtol=1e-10, atol=1e-12)


class _FanOut(nn.Module):
    """conv output read by its ReLU AND by a residual add (two users): that gate must not
    overwrite it. The add's output has one user (the last ReLU): that gate may."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 16, 5)

    def forward(self, x):
        z = self.c1(x)
        y = self.c2(torch.relu(z)) + z
        return self.fc(torch.relu(y).flatten(1))


def _fan_out_net():
    torch.manual_seed(6)
    return _FanOut().double().eval()


class _Readers(nn.Module):
    """Every kind of reader of a gate's output, for the backward's in-place mask: a conv and a
    max-pool (one reader each, fresh gradients: in place), a residual add as the only reader
    (its backward hands one gradient to both branches: not in place), two readers, and a flatten
    before the classifier (not in place)."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.c3, self.c4 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.c5 = nn.Conv2d(4, 4, 1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 16, 5)

    def forward(self, x):
        a = torch.relu(self.c1(x))                          # read by c2
        b = nn.functional.relu6(self.c2(a))                 # read by the pool (a clamp gate)
        p = self.pool(b)
        h = self.c5(p) + torch.relu(self.c3(p))             # a gate read by an add only
        k = torch.relu(h)                                   # read by c4 and by the add
        u = self.c4(k) + k
        return self.fc(torch.relu(u).flatten(1))


def _readers_net():
    torch.manual_seed(11)
    net = _Readers().double().eval()
    with torch.no_grad():
        net.c2.weight.mul_(20.0)            # some inputs of the ReLU6 gate above 6, some below 0
    return net


def _gate_nodes(gm):
    """(fx node, Gate module) for every gate call of a canonical graph, in graph order."""
    from nfr.engine.canonize import Gate
    return [(n, gm.get_submodule(n.target)) for n in gm.graph.nodes
            if n.op == "call_module" and isinstance(gm.get_submodule(n.target), Gate)]


def _reader_kind(gm, u):
    return type(gm.get_submodule(u.target)) if u.op == "call_module" else \
        getattr(u.target, "__name__", u.target)


def test_gate_gradients_are_overwritten_only_when_nobody_else_holds_them():
    from nfr.engine.canonize import Tap, canonical
    gm = canonical(_readers_net())
    marks = [(tuple(getattr(k, "__name__", k) for k in (_reader_kind(gm, u) for u in n.users)),
              gate.grad_inplace) for n, gate in _gate_nodes(gm)]
    assert marks == [(("Weighted",), True), (("MaxPool2d",), True), (("Add",), False),
                     (("Weighted", "Add"), False), (("flatten",), False)], marks
    tapped = canonical(_readers_net(), taps=True)     # the cascade's taps hold the gradient
    read_by = [({_reader_kind(tapped, u) for u in n.users}, gate.grad_inplace)
               for n, gate in _gate_nodes(tapped)]
    assert any(Tap in k for k, _ in read_by)
    assert all(not ip for k, ip in read_by if Tap in k)
    assert [ip for k, ip in read_by if k == {nn.MaxPool2d}] == [True]


def test_gates_overwrite_only_tensors_nothing_else_reads():
    from nfr.engine.canonize import Add, Gate, Weighted, canonical
    gm = canonical(_fan_out_net())
    marks = {type(gm.get_submodule(n.args[0].target)): gate.inplace for n, gate in _gate_nodes(gm)}
    assert marks == {Weighted: False, Add: True}
    import torchvision
    vgg = canonical(torchvision.models.vgg11(weights=None).eval())
    assert all(g.inplace for g in vgg.modules() if isinstance(g, Gate))


@pytest.mark.parametrize("net", ["fan_out", "readers"])
@pytest.mark.parametrize("rule", ["grad", "gbp", "rectgrad", "zplus", "dtd", "alphabeta",
                                  "activation"])
def test_in_place_gates_change_no_result(rule, net, monkeypatch):
    """Every rule, attribute and cascade, with and without the in-place gates (forward: into
    the input's buffer; backward: the mask applied to the incoming gradient): bit-identical.
    The fan-out conv output keeps its pre-ReLU values for the add (a wrong in-place gate would
    change the logits); a gate read by an add must leave the gradient the add's other branch
    receives alone; ``record=True`` and the activation rule's start keep their gradients."""
    from nfr.engine import canonize
    model = _fan_out_net() if net == "fan_out" else _readers_net()
    side = 4 if net == "fan_out" else 8
    x = torch.randn(2, 3, side, side, generator=_g(8), dtype=torch.float64)
    kw = {"layer": 2} if rule == "activation" else {}
    kw.update({"alpha": 2.0, "beta": 1.0} if rule == "alphabeta" else {})

    def run():
        R, rec = nfr.attribute(model, x, torch.tensor([1, 3]), rule, record=True, **kw)
        C = nfr.cascade(model, x, torch.tensor([1, 3]), rule) if rule != "alphabeta" else R
        return R, rec, C

    R1, rec1, C1 = run()
    monkeypatch.setattr(canonize, "_mark_inplace", lambda gm: None)
    R2, rec2, C2 = run()
    assert torch.equal(R1, R2) and torch.equal(C1, C2)
    for key in ("relevance", "activation"):
        assert rec1[key].keys() == rec2[key].keys()
        for l in rec1[key]:
            assert torch.equal(rec1[key][l], rec2[key][l]), (key, l)
    assert R1.abs().sum() > 0


def test_kept_weight_output_is_not_overwritten(monkeypatch):
    """A caller that keeps a weight layer's output Z to take gradients at it (the TR-GBP bias
    maps) must get the gradient at Z, not at relu(Z): its gate runs out of place for that call."""
    from nfr import trgbp
    from nfr.engine import canonize
    torch.manual_seed(10)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                          nn.ReLU(), nn.Flatten(), nn.Linear(64, 5)).double().eval()
    x = torch.randn(2, 3, 4, 4, generator=_g(9), dtype=torch.float64)
    got = [trgbp.layer_maps(model, x, torch.tensor([0, 2]), rule) for rule in ("gbp", "grad")]
    monkeypatch.setattr(canonize, "_mark_inplace", lambda gm: None)
    want = [trgbp.layer_maps(model, x, torch.tensor([0, 2]), rule) for rule in ("gbp", "grad")]
    for (r0, maps, f), (w0, wmaps, wf) in zip(got, want):
        assert torch.equal(r0, w0) and torch.equal(f, wf) and maps.keys() == wmaps.keys()
        for l in maps:
            assert torch.equal(maps[l], wmaps[l]), l
        assert any(float(m.abs().sum()) > 0 for m in maps.values())
