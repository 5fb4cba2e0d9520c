"""Oracle tests (float64): the engine against slow literal implementations written here from the
seed's formulas, and against Captum (GBP) and Zennit (z+, z^B).

Tolerances: literal oracles 1e-10 (relative to the max magnitude); Captum GBP 1e-10; Zennit 1e-8
(Zennit needs a stabiliser; 1e-30 is used, which is invisible in float64).

Where the definitions differ and tests therefore use bias-free nets:
* Zennit's ZPlus/ZBox put the positive (negative) part of the bias into the denominator, the seed
  (and nfr) exclude the bias from z and s.
* Zennit starts from R_L = attr_output; nfr's filter form starts from c_L = e_k with
  gamma_k = f_k / s_k, so Zennit is given attr_output = e_k * f.
* Average pooling: nfr passes the filter-form c with the gradient, which equals LRP's
  proportional redistribution of R = A * c; Zennit needs its Norm rule on pooling for that.
* For a signed input exactly 0, nfr's c_0 uses the W > 0 mask (R = x * c_0 = 0 either way).
"""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision

import nfr

DT = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- toy networks
def mlp(sizes, seed, bias=True):
    g = _gen(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b, bias=bias).to(DT)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g, dtype=DT) / a ** 0.5)
            if bias:
                lin.bias.copy_(0.1 * torch.randn(b, generator=g, dtype=DT))
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


def tiny_cnn(seed, bias=True):
    g = _gen(seed)
    m = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1, bias=bias), nn.ReLU(),
                      nn.Conv2d(5, 6, 3, stride=2, padding=1, bias=bias), nn.ReLU(),
                      nn.AvgPool2d(2), nn.Flatten(), nn.Linear(6 * 2 * 2, 7, bias=bias),
                      nn.ReLU(), nn.Linear(7, 4, bias=bias)).to(DT)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT) * 0.5)
    return m.eval()


@torch.no_grad()
def dense_ops(model, x):
    """The network as a list of explicit matrices for ONE sample (slow, literal): ("w", W, b)
    with W of shape [in, out] (Z = W^T a + b), ("relu",), ("pass", P) for linear passes."""
    ops, a = [], x.reshape(1, *x.shape)
    for mod in model:
        n_in = a.numel()
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            bias = mod.bias
            f = (lambda v, mod=mod: (nn.functional.conv2d(v, mod.weight, None, mod.stride,
                                                          mod.padding)
                                     if isinstance(mod, nn.Conv2d) else
                                     nn.functional.linear(v, mod.weight)))
            cols = [f(torch.eye(n_in, dtype=DT)[i].view_as(a)).reshape(-1) for i in range(n_in)]
            W = torch.stack(cols)                           # [in, out]
            out = mod(a)
            b = (bias.view(-1, 1, 1).expand_as(out).reshape(-1) if isinstance(mod, nn.Conv2d)
                 else bias) if bias is not None else torch.zeros(out.numel(), dtype=DT)
            ops.append(("w", W, b))
            a = out
        elif isinstance(mod, nn.ReLU):
            ops.append(("relu",))
            a = mod(a)
        else:                                               # avgpool / flatten: linear passes
            cols = [mod(torch.eye(n_in, dtype=DT)[i].view_as(a)).reshape(-1) for i in range(n_in)]
            ops.append(("pass", torch.stack(cols)))
            a = mod(a)
    return ops


@torch.no_grad()
def literal(ops, x, k, rule, q=0.9, low=None, high=None):
    """r_0 (or R for 'zplus'/'dtd', relevance form) of one sample, written as the seed does."""
    a = x.reshape(-1)
    acts, zs = [a], []
    for op in ops:                                          # forward, keeping every A and Z
        if op[0] == "w":
            z = op[1].T @ a + op[2]
            zs.append((op, a, z))
            a = z
        elif op[0] == "relu":
            a = torch.clamp(a, min=0)
        else:
            a = op[1].T @ a
        acts.append(a)
    f = a
    if rule in ("zplus", "dtd"):
        # relevance form, bias-free nets: R_L = f_k e_k; R_{l-1,i} = sum_j (a_i w_ij)^+/s_j R_j
        R = torch.zeros_like(f)
        R[k] = f[k]
        first_w = next(i for i, op in enumerate(ops) if op[0] == "w")
        for idx in range(len(ops) - 1, -1, -1):
            op = ops[idx]
            if op[0] == "relu":
                continue                                    # R_j = A_j c_j passes the gate
            if op[0] == "pass":
                ain = acts[idx]
                zij = ain[:, None] * op[1]
                R = (zij / torch.where(zij.sum(0) == 0, 1.0, zij.sum(0)) * R).sum(1)
                continue
            W, ain = op[1], acts[idx]
            if rule == "dtd" and idx == first_w:
                lo = torch.full_like(ain, low)
                hi = torch.full_like(ain, high)
                num = ain[:, None] * W - lo[:, None] * W.clamp(min=0) - hi[:, None] * W.clamp(max=0)
            else:
                num = (ain[:, None] * W).clamp(min=0)
            den = num.sum(0)
            R = (num / torch.where(den == 0, 1.0, den) * torch.where(den == 0, 0.0, 1.0) * R).sum(1)
        return R
    r = torch.zeros_like(f)
    r[k] = 1.0
    for idx in range(len(ops) - 1, -1, -1):
        op = ops[idx]
        if op[0] == "relu":
            A = acts[idx + 1]
            M = (acts[idx] > 0).to(DT)
            if rule == "gbp":
                r = torch.clamp(r, min=0)
            elif rule == "rectgrad":
                p = (A * r).numpy()
                tau = np.quantile(p, q)                     # NumPy's default: linear
                r = r * torch.as_tensor(p > tau, dtype=DT)
            r = M * r
        elif op[0] == "pass":
            r = op[1] @ r
        else:
            r = op[1] @ r
    return r


@torch.no_grad()
def literal_zplus_filter(ops, x, k):
    """c_0 of the filter form of the conventions, with biases: gamma_j = z_j/s_j, z, s bias-free,
    mask 1(w > 0) where a_i >= 0, 1(w < 0) where a_i < 0."""
    a = x.reshape(-1)
    tape = []
    for op in ops:
        if op[0] == "w":
            W = op[1]
            z0 = W.T @ a
            s = (a[:, None] * W).clamp(min=0).sum(0)
            tape.append(("w", W, a, z0, s))
            a = z0 + op[2]
        elif op[0] == "relu":
            tape.append(("relu", a))
            a = torch.clamp(a, min=0)
        else:
            tape.append(("pass", op[1]))
            a = op[1].T @ a
    c = torch.zeros_like(a)
    c[k] = 1.0
    for t in reversed(tape):
        if t[0] == "relu":
            c = c * (t[1] > 0)
        elif t[0] == "pass":
            c = t[1] @ c
        else:
            _, W, ain, z0, s = t
            gamma = torch.where(s == 0, 0.0, z0 / torch.where(s == 0, 1.0, s))
            mask = torch.where(ain[:, None] >= 0, W > 0, W < 0).to(DT)
            c = (W * mask) @ (gamma * c)
    return c


def _close(a, b, tol=1e-10, oracle="literal formulas"):
    import os
    from _oracle_log import record
    record(oracle, a, b, os.environ.get("PYTEST_CURRENT_TEST", ""))
    scale = max(float(b.abs().max()), 1e-300)
    assert float((a - b).abs().max()) <= tol * scale, float((a - b).abs().max()) / scale


CASES = [("mlp", lambda: mlp([6, 9, 8, 7, 5], 1), (3, 6)),
         ("cnn", lambda: tiny_cnn(2), (3, 3, 8, 8))]


@pytest.mark.parametrize("name,make,shape", CASES)
@pytest.mark.parametrize("rule", ["grad", "gbp", "rectgrad"])
def test_gate_rules_match_literal(name, make, shape, rule):
    model = make()
    x = torch.randn(shape, generator=_gen(5), dtype=DT)
    target = torch.tensor([0, 2, 3])
    r0 = nfr.attribute(model, x, target, rule, bottom=False)
    for b in range(shape[0]):
        ops = dense_ops(model, x[b])
        _close(r0[b].reshape(-1), literal(ops, x[b], int(target[b]), rule))
    R = nfr.attribute(model, x, target, rule)
    want = {"grad": r0, "gbp": r0, "rectgrad": torch.relu(x * r0)}[rule]
    _close(R, want)
    assert not torch.allclose(r0, nfr.attribute(model, x, target, "grad", bottom=False)) or \
        rule == "grad"


@pytest.mark.parametrize("name,make,shape", [
    ("mlp", lambda: mlp([6, 9, 8, 7, 5], 3, bias=False), (3, 6)),
    ("cnn", lambda: tiny_cnn(4, bias=False), (3, 3, 8, 8))])
def test_zplus_and_dtd_match_literal_lrp(name, make, shape):
    model = make()
    x = torch.randn(shape, generator=_gen(6), dtype=DT)
    target = torch.tensor([1, 0, 3])
    Rz = nfr.attribute(model, x, target, "zplus")
    Rd = nfr.attribute(model, x, target, "dtd", low=-3.0, high=3.0)
    for b in range(shape[0]):
        ops = dense_ops(model, x[b])
        _close(Rz[b].reshape(-1), literal(ops, x[b], int(target[b]), "zplus"))
        _close(Rd[b].reshape(-1), literal(ops, x[b], int(target[b]), "dtd", low=-3.0, high=3.0))
    # conservation (bias-free): sum R = f_k for z+
    f = model(x)[torch.arange(3), target]
    _close(Rz.reshape(3, -1).sum(1), f, 1e-9, "conservation (sum R = logit)")
    _close(Rd.reshape(3, -1).sum(1), f, 1e-9, "conservation (sum R = logit)")
    assert not torch.allclose(Rz, Rd)


@pytest.mark.parametrize("name,make,shape", CASES)
def test_zplus_filter_form_with_bias(name, make, shape):
    model = make()
    x = torch.randn(shape, generator=_gen(7), dtype=DT)
    target = torch.tensor([3, 1, 0])
    c0 = nfr.attribute(model, x, target, "zplus", bottom=False)
    for b in range(shape[0]):
        _close(c0[b].reshape(-1), literal_zplus_filter(dense_ops(model, x[b]), x[b], int(target[b])))
    _close(nfr.attribute(model, x, target, "zplus"), x * c0)


def test_rectgrad_threshold_equals_numpy_quantile():
    from nfr.engine.rules import row_quantile
    g = _gen(0)
    for n in (7, 1000, 50000):
        p = torch.randn(3, n, generator=g, dtype=DT)
        p[p < 0.3] = 0.0                                     # many exact zeros, as after a ReLU
        want = np.quantile(p.numpy(), 0.9, axis=1)
        got = row_quantile(p, 0.9).reshape(-1).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
        np.testing.assert_allclose(got, torch.quantile(p, 0.9, dim=1).numpy(), rtol=1e-13)
    p = torch.randn(2, 40000, generator=g, dtype=torch.float32)
    assert torch.equal(row_quantile(p, 0.37).reshape(-1), torch.quantile(p, 0.37, dim=1))


def test_activation_rule_literal():
    model = mlp([6, 9, 8, 7, 5], 8)
    x = torch.randn(2, 6, generator=_gen(9), dtype=DT)
    for layer in (1, 2, 3):
        R = nfr.attribute(model, x, None, "activation", layer=layer)
        xs = x.clone().requires_grad_(True)
        A = model[: 2 * layer](xs)
        want = torch.autograd.grad(A, xs, A.detach())[0]
        _close(R, want)


def test_cascade_levels_equal_composites():
    model = tiny_cnn(11)
    x = torch.randn(2, 3, 8, 8, generator=_gen(12), dtype=DT)
    L = 4
    for rule in ("gbp", "rectgrad", "zplus", "dtd"):
        C = nfr.cascade(model, x, 2, rule, low=-3.0, high=3.0)
        assert C.shape == (L + 1, 2, 3, 8, 8)
        from nfr.engine.composites import composite_for
        for n in range(L + 1):
            comp = composite_for(rule, L, bottom=False, upto=n)
            want = nfr.attribute(model, x, 2, "grad", bottom=False, composite=comp)
            _close(C[n], want, oracle="nfr.cascade = nfr.attribute per level")
        _close(C[0], nfr.attribute(model, x, 2, "grad"), oracle="nfr.cascade = nfr.attribute per level")
        if rule in ("gbp", "rectgrad"):
            _close(C[1], C[0], oracle="nfr.cascade = nfr.attribute per level")  # layer L has no ReLU
            _close(C[L], nfr.attribute(model, x, 2, rule, bottom=False), oracle="nfr.cascade = nfr.attribute per level")
    Cb = nfr.cascade(model, x, 2, "dtd", bottom=True, low=-3.0, high=3.0)
    _close(Cb[L], nfr.attribute(model, x, 2, "dtd", low=-3.0, high=3.0), oracle="nfr.cascade = nfr.attribute per level")


def test_cascade_activation_levels():
    model = mlp([6, 9, 8, 7, 5], 13)
    x = torch.randn(2, 6, generator=_gen(14), dtype=DT)
    C = nfr.cascade(model, x, 1, "activation")
    _close(C[0], nfr.attribute(model, x, 1, "grad"), oracle="nfr.cascade = nfr.attribute per level")
    for n in (1, 2, 3):
        _close(C[n], nfr.attribute(model, x, 1, "activation", layer=4 - n), oracle="nfr.cascade = nfr.attribute per level")
    _close(C[4], x, oracle="nfr.cascade = nfr.attribute per level")


def _resnet_like():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(4, 4, 3, padding=1)
            self.c2 = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            y = torch.relu(self.c1(x))
            y = self.c2(y)
            y += x
            return torch.relu(y)

    g = _gen(21)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), Block(), Block(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)).to(DT)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT) * 0.4)
    return m.eval()


def test_cascade_on_residual_net_equals_composites():
    from nfr.engine.composites import composite_for
    model = _resnet_like()
    x = torch.randn(2, 3, 6, 6, generator=_gen(22), dtype=DT)
    L = 6
    for rule in ("gbp", "zplus"):
        C = nfr.cascade(model, x, 4, rule)
        for n in range(L + 1):
            want = nfr.attribute(model, x, 4, "grad", bottom=False,
                                 composite=composite_for(rule, L, upto=n))
            _close(C[n], want, oracle="nfr.cascade = nfr.attribute per level")


from nfr.bench import _noinplace  # noqa: E402  (one copy of the helper)


@pytest.mark.parametrize("arch", ["vgg16", "resnet18"])
def test_gbp_equals_captum(arch):
    """Captum's GuidedBackprop hooks ReLU modules; it is run on a copy whose ReLUs are not in
    place (where Captum is correct). Tolerance 1e-10 relative, float64."""
    from captum.attr import GuidedBackprop
    torch.manual_seed(0)  # torchvision's initialisers use the global RNG; isolated via fork_rng
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = getattr(torchvision.models, arch)(weights=None).eval().to(DT)
    x = torch.randn(1, 3, 64, 64, generator=_gen(1), dtype=DT)
    ours = nfr.attribute(model, x, 7, "gbp")
    theirs = GuidedBackprop(_noinplace(model)).attribute(x.clone(), target=7)
    _close(ours, theirs, 1e-10, "Captum GuidedBackprop")
    assert not torch.allclose(ours, nfr.attribute(model, x, 7, "grad"))


def _zennit(model, x, target, first=None, alpha_beta=None):
    from zennit.attribution import Gradient
    from zennit.composites import LayerMapComposite, SpecialFirstLayerMapComposite
    from zennit.rules import AlphaBeta, Norm, ZBox, ZPlus
    from zennit.types import AvgPool, Linear
    # average pooling must redistribute proportionally (Zennit's Norm rule, as in its own
    # composites); without a rule Zennit would pass R itself through the pooling gradient
    main = (ZPlus(stabilizer=1e-30) if alpha_beta is None else
            AlphaBeta(alpha=alpha_beta[0], beta=alpha_beta[1], stabilizer=1e-30))
    lm = [(Linear, main), (AvgPool, Norm(stabilizer=1e-30))]
    comp = (LayerMapComposite(layer_map=lm) if first is None else
            SpecialFirstLayerMapComposite(layer_map=lm, first_map=[
                (Linear, ZBox(first[0], first[1], stabilizer=1e-30))]))
    onehot = torch.zeros(x.shape[0], 1000 if model(x).shape[1] == 1000 else model(x).shape[1],
                         dtype=DT)
    onehot[:, target] = 1.0
    with Gradient(model=model, composite=comp) as attributor:
        _, R = attributor(x.clone(), lambda out: out * onehot)
    return R


def test_zplus_and_dtd_equal_zennit_on_toy():
    model = tiny_cnn(31, bias=False)
    x = torch.randn(2, 3, 8, 8, generator=_gen(32), dtype=DT)
    _close(nfr.attribute(model, x, 1, "zplus"), _zennit(model, x, 1), 1e-8, "Zennit")
    xp = x.abs()                                              # non-negative input, too
    _close(nfr.attribute(model, xp, 1, "zplus"), _zennit(model, xp, 1), 1e-8, "Zennit")
    _close(nfr.attribute(model, x, 1, "dtd", low=-3.0, high=3.0),
           _zennit(model, x, 1, first=(-3.0, 3.0)), 1e-8, "Zennit")


def test_alphabeta_equals_zennit_on_toy():
    """Zennit's AlphaBeta also splits the products a_i w_ij by sign (both input signs)."""
    model = tiny_cnn(34, bias=False)
    x = torch.randn(2, 3, 8, 8, generator=_gen(35), dtype=DT)
    for ab in ((2.0, 1.0), (1.0, 0.0)):
        _close(nfr.attribute(model, x, 1, "alphabeta", alpha=ab[0], beta=ab[1]),
               _zennit(model, x, 1, alpha_beta=ab), 1e-8, "Zennit")


def test_zplus_and_dtd_equal_zennit_on_vgg16():
    """torchvision's VGG16 initialises all biases to 0, so the definitions coincide."""
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = _noinplace(torchvision.models.vgg16(weights=None).eval().to(DT))
    x = torch.randn(1, 3, 64, 64, generator=_gen(33), dtype=DT)
    _close(nfr.attribute(model, x, 5, "zplus"), _zennit(model, x, 5), 1e-8, "Zennit")
    low = torch.tensor([-2.1, -2.0, -1.8], dtype=DT).view(1, 3, 1, 1)
    high = torch.tensor([2.2, 2.4, 2.6], dtype=DT).view(1, 3, 1, 1)
    _close(nfr.attribute(model, x, 5, "dtd", low=low, high=high),
           _zennit(model, x, 5, first=(low, high)), 1e-8, "Zennit")
