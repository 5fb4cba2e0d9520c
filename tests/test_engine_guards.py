"""Guard tests for the pitfalls the book's pitfalls page lists: each pitfall either gives the right
rule or a clear NFRError."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import nfr
from nfr import NFRError
from nfr.engine.attribute import CASCADE_RULES, RULES
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


class FunctionalNet(nn.Module):                   # pitfall 2 of the book's pitfalls page
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


class ReusedResidual(nn.Module):                  # pitfalls 1, 3, 4 of the book's pitfalls page
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


# ----------------------------------------------------------------------------- what tracing drops
def _mlp(seed=11):
    return _init(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).double(), seed)


def _autograd(m, x, t):
    xg = x.clone().requires_grad_(True)
    m(xg)[:, t].sum().backward()
    return xg.grad


_HOOKS = {
    "forward hook on a ReLU": (lambda m: m[1].register_forward_hook(lambda mod, i, o: o * 0.5),
                               "'1'"),
    "forward pre-hook on a Linear": (lambda m: m[0].register_forward_pre_hook(
        lambda mod, i: (i[0] * 2,)), "'0'"),
    "forward hook on the model": (lambda m: m.register_forward_hook(lambda mod, i, o: o * 3),
                                  "the model itself"),
    "full backward hook": (lambda m: m[2].register_full_backward_hook(
        lambda mod, gi, go: (gi[0] * 2,)), "'2'"),
    "backward pre-hook": (lambda m: m[2].register_full_backward_pre_hook(
        lambda mod, go: (go[0] * 2,)), "'2'"),
    "global forward hook": (lambda m: nn.modules.module.register_module_forward_hook(
        lambda mod, i, o: None), "global module forward hook"),
    "global forward pre-hook": (lambda m: nn.modules.module.register_module_forward_pre_hook(
        lambda mod, i: None), "global module forward pre hook"),
}


@pytest.mark.parametrize("kind", list(_HOOKS))
def test_user_hooks_are_refused_by_name(kind):
    """A hook the traced graph would skip (measured before the guard: "grad" differed from
    autograd by 50% to 100% of its largest entry) is refused, naming the module."""
    m, x = _mlp(), _x((4, 6))
    register, name = _HOOKS[kind]
    handle = register(m)
    try:
        for call in (lambda: nfr.attribute(m, x, 1, "grad"), lambda: nfr.cascade(m, x, 1, "gbp"),
                     lambda: canonize(m)):
            with pytest.raises(NFRError, match=name):
                call()
    finally:
        handle.remove()
    assert torch.allclose(nfr.attribute(m, x, 1, "grad"), _autograd(m, x, 1), rtol=1e-12,
                          atol=1e-14)


class _QuarterLinear(nn.Linear):
    def forward(self, x):
        return super().forward(x) / 4


class _ThresholdReLU(nn.ReLU):
    def forward(self, x):
        return F.threshold(x, 0.5, 0.0)


class _ClippedReLU6(nn.ReLU6):
    def forward(self, x):
        return super().forward(x) - 1


class _ScaledBN(nn.BatchNorm1d):
    def forward(self, x):
        return 2 * super().forward(x)


class _DoubledPool(nn.MaxPool1d):
    def forward(self, x):
        return super().forward(x) * 2


class _PlainLinear(nn.Linear):        # a subclass that does not override forward: still fine
    pass


@pytest.mark.parametrize("net", [
    lambda: nn.Sequential(_QuarterLinear(6, 8), nn.ReLU(), nn.Linear(8, 3)),
    lambda: nn.Sequential(nn.Linear(6, 8), _ThresholdReLU(), nn.Linear(8, 3)),
    lambda: nn.Sequential(nn.Linear(6, 8), _ClippedReLU6(), nn.Linear(8, 3)),
    lambda: nn.Sequential(nn.Linear(6, 8), _ScaledBN(8), nn.ReLU(), nn.Linear(8, 3)),
    lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Unflatten(1, (1, 8)), _DoubledPool(2),
                          nn.Flatten(), nn.Linear(4, 3)),
], ids=["Linear", "ReLU", "ReLU6", "BatchNorm1d", "MaxPool1d"])
def test_subclass_with_own_forward_is_refused(net):
    """Before the guard, the subclass ran as its base class: "grad" differed from autograd by
    300% (Linear / 4) and 150% (thresholded ReLU) of its largest entry."""
    m = _init(net().double(), 12)
    sub = next(mm for mm in m if type(mm).__module__ == __name__)
    with pytest.raises(NFRError, match=type(sub).__name__ + ".*overrides forward"):
        nfr.attribute(m, _x((4, 6)), 1, "grad")


def test_subclass_without_own_forward_is_its_base():
    m = _init(nn.Sequential(_PlainLinear(6, 8), nn.ReLU(), nn.Linear(8, 3)).double(), 13)
    x = _x((4, 6))
    assert torch.allclose(nfr.attribute(m, x, 2, "grad"), _autograd(m, x, 2), rtol=1e-12,
                          atol=1e-14)


# ----------------------------------------------------------------------------- per-image defaults
def test_dtd_default_box_is_per_image():
    """One image's DTD map does not depend on its batch (before: the batch's min / max made it
    change by 56% of its largest entry when a brighter image joined the batch)."""
    g = _gen(14)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                      nn.Linear(4 * 36, 3)).double()
    m = _init(m, 15)
    x1 = torch.rand(1, 3, 6, 6, generator=g, dtype=DT)
    alone = nfr.attribute(m, x1, 1, "dtd")
    with_bright = nfr.attribute(m, torch.cat([x1, 3 * x1 + 2]), 1, "dtd")[:1]
    with_dark = nfr.attribute(m, torch.cat([x1, -x1 - 5]), 1, "dtd")[:1]
    assert torch.equal(with_bright, with_dark)          # same batch size: bit-identical
    assert torch.allclose(alone, with_bright, rtol=1e-12, atol=1e-15)
    explicit = nfr.attribute(m, x1, 1, "dtd", low=float(x1.min()), high=float(x1.max()))
    assert torch.equal(alone, explicit)
    C = nfr.cascade(m, torch.cat([x1, 3 * x1 + 2]), 1, "dtd", bottom=True)
    assert torch.allclose(C[-1, :1], alone, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------- clear errors
class _TwoHeads(nn.Module):
    def __init__(self, as_dict=False):
        super().__init__()
        self.body, self.head, self.aux = nn.Linear(6, 8), nn.Linear(8, 3), nn.Linear(8, 2)
        self.as_dict = as_dict

    def forward(self, x):
        h = torch.relu(self.body(x))
        logits, aux = self.head(h), torch.sigmoid(self.aux(h))     # aux: not a ReLU network
        return {"logits": logits, "aux": aux} if self.as_dict else (logits, aux)


def test_tuple_or_dict_output_needs_a_selector():
    x = _x((3, 6))
    for as_dict, sel in ((False, 0), (True, "logits"), (False, lambda o: o[0]),
                         (True, lambda o: o["logits"])):
        m = _init(_TwoHeads(as_dict).double(), 16)
        with pytest.raises(NFRError, match="output="):
            nfr.attribute(m, x, 1, "gbp")
        plain = nn.Sequential(m.body, nn.ReLU(), m.head).eval()
        for rule in ("grad", "gbp", "zplus"):
            assert torch.equal(nfr.attribute(m, x, 1, rule, output=sel),
                               nfr.attribute(plain, x, 1, rule))
        assert torch.equal(nfr.cascade(m, x, 1, "gbp", output=sel), nfr.cascade(plain, x, 1, "gbp"))
    with pytest.raises(NFRError, match="output="):
        nfr.attribute(m, x, 1, "gbp", output="nope")
    with pytest.raises(NFRError, match="sigmoid"):
        nfr.attribute(m, x, 1, "gbp", output="aux")


def test_inference_mode_is_refused():
    m, x = _mlp(), _x((2, 6))
    with torch.inference_mode():
        with pytest.raises(NFRError, match="inference_mode"):
            nfr.attribute(m, x, 0, "gbp")
        xi = x.clone()
    with pytest.raises(NFRError, match="inference tensor"):
        nfr.attribute(m, xi, 0, "gbp")
    with pytest.raises(NFRError, match="inference tensor"):
        nfr.cascade(m, xi, 0, "gbp")


def test_argument_validation_names_the_argument():
    m, x = _mlp(), _x((2, 6))
    with pytest.raises(NFRError, match="low has shape"):
        nfr.attribute(m, x, 0, "dtd", low=torch.zeros(3), high=1.0)
    with pytest.raises(NFRError, match="high has shape"):
        nfr.cascade(m, x, 0, "dtd", low=-1.0, high=torch.ones(2, 6, 1))
    with pytest.raises(NFRError, match="low > high"):
        nfr.attribute(m, x, 0, "dtd", low=1.0, high=-1.0)
    with pytest.raises(NFRError, match="low must be"):
        nfr.attribute(m, x, 0, "dtd", low=True, high=1.0)
    with pytest.raises(NFRError, match="layer = an int"):
        nfr.attribute(m, x, 0, "activation", layer=True)
    with pytest.raises(NFRError, match="levels must hold ints"):
        nfr.cascade(m, x, 0, "gbp", levels=[0, 1.5])
    with pytest.raises(NFRError, match="levels must hold ints"):
        nfr.cascade(m, x, 0, "gbp", levels=[True])
    with pytest.raises(NFRError, match="levels must be a list"):
        nfr.cascade(m, x, 0, "gbp", levels=2)
    assert nfr.cascade(m, x, 0, "gbp", levels=torch.tensor([0, 2])).shape == (2, 2, 6)


# ----------------------------------------------------------------------------- shape arithmetic
class _Shuffle(nn.Module):
    """ShuffleNet's channel shuffle and split: size(), floordiv, view, transpose, chunk, cat."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(2, 2, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        a, b = x.chunk(2, dim=1)
        x = torch.cat((a, torch.relu(self.c2(b))), dim=1)
        n, c, h, w = x.size()
        torch._assert(h == x.shape[2], "height")
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, -1, h, w)
        return self.fc(x.permute(0, 2, 3, 1).flatten(1, 2).mean(1))


def test_shape_arithmetic_passes():
    m = _init(_Shuffle().double(), 17)
    x = _x((2, 3, 5, 5))
    assert torch.allclose(nfr.attribute(m, x, 1, "grad"), _autograd(m, x, 1), rtol=1e-12,
                          atol=1e-14)
    assert nfr.attribute(m, x, 1, "zplus").shape == x.shape


def test_vit_fails_at_layernorm_not_at_a_shape_check():
    from torchvision.models.vision_transformer import VisionTransformer
    vit = VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=2,
                            hidden_dim=8, mlp_dim=16, num_classes=3).eval()
    with pytest.raises(NFRError) as err:
        nfr.attribute(vit, torch.randn(1, 3, 32, 32), 0, "gbp")
    msg = str(err.value)
    assert "LayerNorm" in msg and "normalisation" in msg and "assert" not in msg


def test_wrong_input_shape_prints_nothing(capfd):
    m = _init(FunctionalNet().double(), 18)
    capfd.readouterr()
    with pytest.raises(NFRError, match="check the input shape"):
        nfr.attribute(m, _x((2, 3, 10, 10)), 0, "gbp")
    with pytest.raises(NFRError, match="check the input shape"):
        nfr.cascade(m, _x((2, 4, 8, 8)), 0, "gbp")
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize("rule", RULES)
def test_input_requiring_grad_gives_detached_map(rule):
    m = _init(FunctionalNet().double(), 19)
    x = _x((2, 3, 8, 8)).requires_grad_(True)
    R = nfr.attribute(m, x, 1, rule, layer=2)
    assert not R.requires_grad and R.grad_fn is None
    assert torch.equal(R, nfr.attribute(m, x.detach(), 1, rule, layer=2))
    R2, rec = nfr.attribute(m, x, 1, rule, layer=2, record=True)
    assert R2.grad_fn is None and all(t.grad_fn is None for d in rec.values()
                                      for t in d.values())
    if rule in CASCADE_RULES:
        for bottom in (False, True):
            C = nfr.cascade(m, x, 1, rule, bottom=bottom)
            assert not C.requires_grad and C.grad_fn is None
    assert x.grad is None


def test_model_errors_reach_the_caller_as_themselves(monkeypatch):
    from nfr.engine import canonize as cz
    m, x = _mlp(), _x((2, 6))

    def boom(*a, **k):
        raise RuntimeError("the sensor driver failed")
    monkeypatch.setattr(cz.F, "linear", boom)
    with pytest.raises(RuntimeError, match="sensor driver") as err:
        nfr.attribute(m, x, 0, "grad")
    assert not isinstance(err.value, NFRError)

    def oom(*a, **k):
        raise torch.OutOfMemoryError("out of memory: tried to allocate a tensor of size 2 GiB")
    monkeypatch.setattr(cz.F, "linear", oom)
    with pytest.raises(torch.OutOfMemoryError):
        nfr.cascade(m, x, 0, "gbp")


# ----------------------------------------------------------------------------- forward arguments
class _Optional(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x, x2=None, return_features=False, scale=1.0):
        if x2 is not None:
            x = x + x2
        h = torch.relu(self.a(x))
        if return_features:
            return h
        return self.b(h) * scale if scale != 1.0 else self.b(h)


def test_optional_forward_arguments():
    m = _init(_Optional().double(), 20)
    x = _x((2, 6))
    plain = nn.Sequential(m.a, nn.ReLU(), m.b).eval()
    assert torch.equal(nfr.attribute(m, x, 1, "gbp"), nfr.attribute(plain, x, 1, "gbp"))
    assert torch.equal(nfr.attribute(m, x, 1, "gbp", forward_kwargs={"return_features": False}),
                       nfr.attribute(plain, x, 1, "gbp"))
    feats = nfr.attribute(m, x, 5, "grad", forward_kwargs={"return_features": True})
    assert torch.allclose(feats, nfr.attribute(nn.Sequential(m.a, nn.ReLU()).eval(), x, 5, "grad"))
    with pytest.raises(NFRError, match="mul"):          # a scale of the logits is not a layer
        nfr.attribute(m, x, 1, "gbp", forward_kwargs={"scale": 2.0})
    with pytest.raises(NFRError, match="does not take"):
        nfr.attribute(m, x, 1, "gbp", forward_kwargs={"nope": 1})
    assert not any(k.startswith("_tensor_constant") for k in vars(m))


def test_second_required_input_is_refused():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(6, 3)

        def forward(self, x, y):
            return self.a(x + y)
    with pytest.raises(NFRError, match="second input 'y'.*forward_kwargs"):
        nfr.attribute(Two().eval(), torch.randn(2, 6), 0, "gbp")


def test_control_flow_error_names_the_cause_and_line():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 2)

        def forward(self, x):
            if x.sum() > 0:                       # the line the error must name
                return self.a(x)
            return -self.a(x)
    with pytest.raises(NFRError, match=r"control flow on an input at .*test_engine_guards\.py:\d+"
                                       r" in Branchy\.forward \(`if x\.sum\(\) > 0:") as err:
        nfr.attribute(Branchy().eval(), torch.randn(2, 4), 0, "gbp")
    assert "input shape" not in str(err.value)


def test_python_assert_on_the_input_becomes_a_check():
    """A plain ``assert`` on the input's shape passes as a check (the class is compiled here
    outside pytest's assertion rewriting, which turns asserts into ``if`` statements)."""
    src = ("class Checked(nn.Module):\n"
           "    def __init__(self):\n"
           "        super().__init__()\n"
           "        self.a = nn.Linear(4, 3)\n"
           "    def forward(self, x):\n"
           "        assert x.dim() == 2 and x.shape[1] == 4, 'a [B, 4] input'\n"
           "        return self.a(torch.relu(x))\n")
    ns = {"nn": nn, "torch": torch}
    exec(compile(src, "<checked model>", "exec"), ns)
    m = _init(ns["Checked"]().double(), 21)
    x = _x((2, 4))
    assert torch.allclose(nfr.attribute(m, x, 1, "grad"), _autograd(m, x, 1), rtol=1e-12,
                          atol=1e-14)
    with pytest.raises(NFRError, match="assert.*check the input shape"):
        nfr.attribute(m, _x((2, 1, 4)), 1, "grad")


def test_argument_errors_found_while_documenting_are_nfr_errors():
    """Bad arguments the numpydoc review found escaping as KeyError / ValueError, or accepted silently."""
    from nfr.engine.composites import composite_for
    from nfr.train import build_model
    from nfr.trgbp import randomize_biases
    from _nets import small_cnn
    model = small_cnn()
    with pytest.raises(NFRError, match="unknown rule"):
        composite_for("smoothgrad", 4)
    assert composite_for("activation", 3, below="gbp") == {1: "gbp", 2: "gbp", 3: "gbp"}
    with pytest.raises(NFRError, match="scale"):
        randomize_biases(model, scale="xavier")
    with pytest.raises(NFRError, match="scale"):
        nfr.randomize(model, cascade_from_top=0, scale="xavier")  # no layer selected: still checked
    with pytest.raises(NFRError, match="pretrained"):
        build_model("resnet20", init="pretrained-vgg")
    with pytest.raises(NFRError, match="--arch resnet56"):
        build_model("resnet20", init="pretrained-resnet56")
