"""Guard tests for /work/shared/PITFALLS.md: each pitfall either gives the right rule or a clear
NFRError."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import nfr
from nfr import NFRError
from nfr.engine.canonize import canonize

DT = torch.float64
ALL = ("grad", "grad_x_input", "gbp", "rectgrad", "zplus", "dtd")


def _gen(s):
    return torch.Generator().manual_seed(s)


def _init(m, seed, scale=0.4):
    g = _gen(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return m.eval()


class FunctionalNet(nn.Module):                               # PITFALLS #2
    def __init__(self, inplace=False):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 4 * 4, 5)
        self.inplace = inplace

    def forward(self, x):
        x = F.relu(self.c1(x), inplace=self.inplace)
        x = F.max_pool2d(x, 2)
        x = self.c2(x).relu()
        return self.fc(torch.flatten(x, 1))


class ReusedResidual(nn.Module):                              # PITFALLS #1, #3, #4
    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(3, 4, 3, padding=1)
        self.c1, self.c2 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        x = self.relu(self.c0(x))
        y = self.relu(self.c1(x))
        y = self.c2(y)
        y += x
        y = self.relu(y)
        return self.fc(y.mean((2, 3)))


def _x(shape=(3, 3, 8, 8), seed=0):
    return torch.randn(shape, generator=_gen(seed), dtype=DT)


def test_functional_relu_gbp_differs_from_grad():
    m = _init(FunctionalNet().double(), 1)
    x = _x()
    gbp, grad = nfr.attribute(m, x, 2, "gbp"), nfr.attribute(m, x, 2, "grad")
    assert not torch.allclose(gbp, grad)
    # and equals GBP of the same net written with modules
    assert (gbp >= 0).float().mean() > 0  # smoke; exact check: gate-level identity below
    gm = canonize(m)
    assert len(gm.nfr_layers) == 3 and all(len(l.gates) == 1 for l in gm.nfr_layers[:2])


def test_inplace_functional_relu_matches_out_of_place():
    m1 = _init(FunctionalNet(inplace=True).double(), 2)
    m2 = copy.deepcopy(m1)
    m2.inplace = False
    x = _x()
    for rule in ("gbp", "rectgrad", "zplus"):
        assert torch.equal(nfr.attribute(m1, x, 1, rule), nfr.attribute(m2, x, 1, rule))


def _reference_reused(m, x, t, rule):
    """Same net with every ReLU its own module and no in-place op."""
    class Clean(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0, self.c1, self.c2, self.fc = m.c0, m.c1, m.c2, m.fc
            self.r0, self.r1, self.r2 = nn.ReLU(), nn.ReLU(), nn.ReLU()

        def forward(self, x):
            x = self.r0(self.c0(x))
            y = self.c2(self.r1(self.c1(x)))
            return self.fc(self.r2(y + x).mean((2, 3)))
    return nfr.attribute(Clean().eval(), x, t, rule)


@pytest.mark.parametrize("rule", ["gbp", "rectgrad", "zplus"])
def test_reused_inplace_relu_and_inplace_add(rule):
    m = _init(ReusedResidual().double(), 3)
    x = _x()
    got = nfr.attribute(m, x, 4, rule)
    assert torch.equal(got, _reference_reused(m, x, 4, rule))
    assert not torch.allclose(got, nfr.attribute(m, x, 4, "grad_x_input" if rule != "gbp"
                                                 else "grad"))
    gm = canonize(m)
    from nfr.engine.canonize import Add, Gate
    gates = [n for n in gm.graph.nodes if n.op == "call_module"
             and isinstance(gm.get_submodule(n.target), Gate)]
    assert len(gates) == 3 and len({g.target for g in gates}) == 3
    assert sum(isinstance(mm, Add) for mm in gm.modules()) == 1


def test_batchnorm_merge_exact():
    m = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5, eps=1e-3), nn.ReLU(),
                      nn.Flatten(), nn.Linear(5 * 16, 6), nn.BatchNorm1d(6), nn.ReLU(),
                      nn.Linear(6, 3)).double()
    g = _gen(4)
    with torch.no_grad():
        for mod in m:
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=g, dtype=DT))
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g, dtype=DT) + 0.1)
                mod.weight.copy_(torch.randn(mod.num_features, generator=g, dtype=DT))
                mod.bias.copy_(torch.randn(mod.num_features, generator=g, dtype=DT))
    m.eval()
    x = _x((4, 3, 4, 4))
    gm = canonize(m)
    assert not any(isinstance(mm, nn.modules.batchnorm._BatchNorm) for mm in gm.modules())
    assert float((gm(x) - m(x)).abs().max()) <= 1e-10
    assert len(gm.nfr_layers) == 3


def test_bn_not_after_conv_raises_naming_it():
    class PreAct(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(3)
            self.c = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.c(torch.relu(self.bn(x))).mean((2, 3)))
    with pytest.raises(NFRError, match="bn"):
        nfr.attribute(PreAct().eval(), torch.randn(1, 3, 6, 6), 0, "gbp")


def test_all_inactive_layer_gives_zeros_not_nan():
    m = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double().eval()
    with torch.no_grad():
        m[0].weight.fill_(-1.0)
        m[0].bias.fill_(-1.0)
    x = torch.rand(2, 4, generator=_gen(5), dtype=DT)
    for rule in ALL:
        R = nfr.attribute(m, x, 1, rule, low=0.0, high=1.0)
        assert torch.isfinite(R).all() and float(R.abs().max()) == 0.0, rule
    C = nfr.cascade(m, x, 1, "zplus")
    assert torch.isfinite(C).all() and float(C.abs().max()) == 0.0


@pytest.mark.parametrize("rule", ALL + ("activation",))
def test_model_untouched_after_call(rule):
    m = _init(ReusedResidual().double(), 6)
    x = _x()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    out = m(x).clone()
    grads = [p.grad for p in m.parameters()]
    nfr.attribute(m, x, 1, rule, layer=2)
    nfr.cascade(m, x, 1, rule if rule != "grad_x_input" else "gbp", levels=[0, 2])
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert torch.equal(m(x), out)
    assert all(g is None for g in grads) and all(p.grad is None for p in m.parameters())
    assert not m._forward_hooks and all(not mm._forward_hooks and not mm._backward_hooks
                                        for mm in m.modules())


def test_model_untouched_after_exception():
    m = _init(ReusedResidual().double(), 7)
    x = _x()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    out = m(x).clone()
    with pytest.raises(NFRError):
        nfr.attribute(m, x, 99, "gbp")            # target out of range, found after forward
    with pytest.raises(NFRError):
        nfr.cascade(m, x, [0, 1], "zplus")        # wrong target length
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert torch.equal(m(x), out)
    assert nfr.attribute(m, x, 1, "gbp").shape == x.shape


@pytest.mark.parametrize("rule", ALL)
def test_batch_equals_one_by_one(rule):
    m = _init(FunctionalNet().double(), 8)
    x = _x((4, 3, 8, 8), 9)
    t = torch.tensor([0, 3, 1, 4])
    R = nfr.attribute(m, x, t, rule, low=-4.0, high=4.0)
    for b in range(4):
        Rb = nfr.attribute(m, x[b:b + 1], int(t[b]), rule, low=-4.0, high=4.0)
        assert torch.allclose(R[b:b + 1], Rb, rtol=1e-12, atol=1e-14)
    C = nfr.cascade(m, x, t, "rectgrad")
    for b in (0, 3):
        assert torch.allclose(C[:, b:b + 1], nfr.cascade(m, x[b:b + 1], int(t[b]), "rectgrad"),
                              rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("layer", [nn.Sigmoid(), nn.SiLU(), nn.Tanh(), nn.LayerNorm(6),
                                   nn.Softmax(dim=1)])
def test_unsupported_layer_raises_naming_it(layer):
    m = nn.Sequential(nn.Linear(4, 6), layer, nn.Linear(6, 3)).eval()
    with pytest.raises(NFRError, match=type(layer).__name__):
        nfr.attribute(m, torch.randn(2, 4), 0, "gbp")


def test_unsupported_function_raises():
    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 2)

        def forward(self, x):
            return self.b(torch.sigmoid(self.a(x)) * x.sum())
    with pytest.raises(NFRError, match="sigmoid"):
        nfr.attribute(Gated().eval(), torch.randn(2, 4), 0, "gbp")


def test_untraceable_control_flow_raises():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 2)

        def forward(self, x):
            if x.sum() > 0:
                return self.a(x)
            return -self.a(x)
    with pytest.raises(NFRError, match="fx-traceable"):
        nfr.attribute(Branchy().eval(), torch.randn(2, 4), 0, "gbp")


def test_input_validation():
    m = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    x = torch.randn(2, 4)
    with pytest.raises(NFRError, match="valid rules"):
        nfr.attribute(m, x, 0, "guided")
    with pytest.raises(NFRError, match="valid rules"):
        nfr.cascade(m, x, 0, "nope")
    with pytest.raises(NFRError, match="floating"):
        nfr.attribute(m, x.long(), 0, "gbp")
    with pytest.raises(NFRError, match="NaN"):
        nfr.attribute(m, x.masked_fill(x > 0, float("nan")), 0, "gbp")
    with pytest.raises(NFRError, match="NaN"):
        nfr.attribute(m, x.masked_fill(x > 0, float("inf")), 0, "gbp")
    with pytest.raises(NFRError):
        nfr.attribute(m, torch.randn(4), 0, "gbp")
    with pytest.raises(NFRError):
        nfr.attribute(m, torch.randn(2, 5), 0, "gbp")            # wrong feature size
    with pytest.raises(NFRError, match="out of range"):
        nfr.attribute(m, x, 3, "gbp")
    with pytest.raises(NFRError, match="out of range"):
        nfr.attribute(m, x, -1, "gbp")
    with pytest.raises(NFRError, match="entries"):
        nfr.attribute(m, x, torch.tensor([0, 1, 2]), "gbp")
    with pytest.raises(NFRError, match="dtype"):
        nfr.attribute(m, x.double(), 0, "gbp")
    with pytest.raises(NFRError, match="layer"):
        nfr.attribute(m, x, 0, "activation")
    with pytest.raises(NFRError, match="train mode"):
        nfr.attribute(m.train(), x, 0, "gbp")
    m.eval()
    with pytest.raises(NFRError, match="train mode"):
        canonize(copy.deepcopy(m).train())
    with pytest.raises(NFRError, match="level"):
        nfr.cascade(m, x, 0, "gbp", levels=[5])
    assert nfr.attribute(m, x, torch.tensor([0, 2]), "gbp").shape == x.shape
