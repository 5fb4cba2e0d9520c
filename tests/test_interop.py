"""nfr.interop: the Captum-style classes, the Zennit RectGrad rule and the Quantus explain_func.

Oracles (float64, tolerance relative to the largest magnitude of the oracle's map):
* the Captum-style classes return exactly (bit for bit) what ``nfr.attribute`` returns;
* Captum's own GuidedBackprop, Saliency (abs=False) and InputXGradient equal the adapters to 1e-10
  on torchvision's VGG16 and ResNet-18 with random weights (64-px inputs). Captum hooks ReLU
  modules, so it runs on ``distinct_relus(model)``: a traced copy in which every ReLU call has its
  own non-inplace module (ResNet's blocks call one module twice);
* Zennit with nfr's RectGrad composite equals ``nfr.attribute(..., "rectgrad")`` to 1e-10 (VGG16,
  and ResNet-18 under Zennit's ResNetCanonizer), and Zennit's own GuidedBackprop composite equals
  "gbp"; the Zennit rule computes the threshold with ``torch.quantile``, nfr's engine by selection;
* Quantus's MPRT run through ``nfr.interop.quantus.explain`` gives the per-layer Spearman numbers
  that nfr's own pipeline computes from the same randomized weights (see the test's docstring).
"""
import copy
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision

import nfr
from nfr.errors import NFRError
from nfr.interop import captum as nc

DT = torch.float64


def _close(a, b, tol, oracle):
    import os
    from _oracle_log import record
    rel = record(oracle, a, b, os.environ.get("PYTEST_CURRENT_TEST", ""))
    assert rel <= tol, (oracle, rel)
    return rel


def _tv(arch, seed=0):
    with torch.random.fork_rng():          # torchvision's initialisers use the global RNG
        torch.manual_seed(seed)
        return getattr(torchvision.models, arch)(weights=None).eval().to(DT)


@pytest.fixture(scope="module", params=["vgg16", "resnet18"])
def net(request):
    model = _tv(request.param)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=DT)
    return request.param, model, x, torch.tensor([7, 123])


# ----------------------------------------------------------------------------- package wiring
def test_import_nfr_interop_is_torch_free():
    code = ("import sys, nfr, nfr.interop; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'captum' not in sys.modules and 'zennit' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_optional_dependency_raises_nfrerror():
    from nfr.interop.deps import require
    with pytest.raises(NFRError, match="'nfr_no_such_package'"):
        require("nfr_no_such_package", "nfr.interop.test")


# ----------------------------------------------------------------------------- Captum style
def _small():
    from _nets import X, small_cnn
    return small_cnn(3), X


@pytest.mark.parametrize("cls", list(nc.METHODS.values()), ids=list(nc.METHODS))
def test_captum_style_classes_equal_the_engine_exactly(cls):
    model, x = _small()
    kw = {"layer": 2} if cls is nc.Activation else {}
    want = nfr.attribute(model, x, 2, cls.rule, **{**cls._options, **kw})
    got = cls(model, **kw).attribute(x, target=2)
    assert torch.equal(got, want)
    (one,) = cls(model, **kw).attribute((x,), target=torch.tensor([2, 2, 2]))
    assert torch.equal(one, want)


def test_captum_style_options_and_errors():
    model, x = _small()
    assert torch.equal(nc.RectGrad(model, q=0.7).attribute(x, 1),
                       nfr.attribute(model, x, 1, "rectgrad", q=0.7))
    assert torch.equal(nc.RectGrad(model).attribute(x, 1, q=0.5),
                       nfr.attribute(model, x, 1, "rectgrad", q=0.5))
    assert torch.equal(nc.DTD(model, low=-4.0, high=4.0).attribute(x, 1, bottom=False),
                       nfr.attribute(model, x, 1, "dtd", low=-4.0, high=4.0, bottom=False))
    with pytest.raises(NFRError, match="forward_func"):
        nc.GuidedBackprop(lambda t: t)
    with pytest.raises(NFRError, match="'q'"):
        nc.GuidedBackprop(model, q=0.5)
    with pytest.raises(NFRError, match="additional_forward_args"):
        nc.Gradient(model).attribute(x, 1, additional_forward_args=(1,))
    with pytest.raises(NFRError, match="tuple of 2"):
        nc.Gradient(model).attribute((x, x), 1)
    with pytest.raises(NFRError, match="layer="):
        nc.Activation(model).attribute(x)
    with pytest.raises(NFRError, match="target"):
        nc.GuidedBackprop(model).attribute(x, target=99)


def test_distinct_relus_gives_one_module_per_call():
    model = _tv("resnet18")
    gm = nc.distinct_relus(model)
    relus = [m for m in gm.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 17 and not any(m.inplace for m in relus)   # 1 stem + 2 per block
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2), dtype=DT)
    with torch.no_grad():
        assert torch.equal(gm(x), model(x))
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 9          # caller untouched
    with pytest.raises(NFRError, match="model"):
        nc.distinct_relus("vgg")


def test_captum_oracles(net):
    from captum.attr import GuidedBackprop, InputXGradient, Saliency
    arch, model, x, t = net
    hooked = nc.distinct_relus(model)
    pairs = [(nc.GuidedBackprop, GuidedBackprop(hooked).attribute(x.clone(), target=t)),
             (nc.Gradient, Saliency(hooked).attribute(x.clone(), target=t, abs=False)),
             (nc.GradientXInput, InputXGradient(hooked).attribute(x.clone(), target=t))]
    for ours, theirs in pairs:
        _close(ours(model).attribute(x, target=t), theirs, 1e-10, f"Captum {ours.__name__}")


# ----------------------------------------------------------------------------- Zennit
def _zennit_grad(model, x, t, composite):
    from zennit.attribution import Gradient
    out = model(x)
    onehot = torch.zeros_like(out)
    onehot[torch.arange(len(t)), t] = 1.0
    with Gradient(model=model, composite=composite) as attributor:
        _, r0 = attributor(x.clone(), onehot)
    return r0


def _canonizers(arch):
    from zennit.torchvision import ResNetCanonizer
    return [ResNetCanonizer()] if arch == "resnet18" else None


def _for_zennit(model):
    """A copy for Zennit's canonizers: each BatchNorm's eps moved into its running variance
    (var + eps, eps = 0: the same function). Zennit 0.5.1's MergeBatchNorm folds
    1/sqrt(var + eps) into the convolution but leaves eps in the BatchNorm it resets to the
    identity, so the canonized ResNet-18 would compute x / sqrt(1 + 1e-5) after every BatchNorm
    (relative differences of 5e-5 in the maps, measured)."""
    m = copy.deepcopy(model)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_var.add_(mod.eps)
            mod.eps = 0.0
    return m


def test_zennit_rectgrad_equals_engine(net):
    from nfr.interop.zennit import RectGrad
    arch, model, x, t = net
    m = _for_zennit(model)
    for q in (0.9, 0.5):
        r0 = _zennit_grad(m, x, t, RectGrad(q=q, canonizers=_canonizers(arch)))
        _close(r0, nfr.attribute(model, x, t, "rectgrad", q=q, bottom=False), 1e-10,
               "Zennit RectGrad (nfr rule)")
        R = RectGrad.bottom(x, r0)
        _close(R, nfr.attribute(model, x, t, "rectgrad", q=q), 1e-10, "Zennit RectGrad (nfr rule)")
        assert not torch.allclose(R, torch.relu(x * nfr.attribute(model, x, t, "grad")))
    for p, p0 in zip(m.parameters(), model.parameters()):      # canonizers were undone
        assert torch.equal(p, p0)
    if arch == "resnet18":          # the rule also works without the canonizer (ReLU reused)
        r0 = _zennit_grad(copy.deepcopy(model), x, t, RectGrad())
        _close(r0, nfr.attribute(model, x, t, "rectgrad", bottom=False), 1e-10,
               "Zennit RectGrad (nfr rule)")


def test_zennit_guided_backprop_equals_gbp(net):
    from zennit.composites import GuidedBackprop
    arch, model, x, t = net
    r0 = _zennit_grad(_for_zennit(model), x, t, GuidedBackprop(canonizers=_canonizers(arch)))
    _close(r0, nfr.attribute(model, x, t, "gbp"), 1e-10, "Zennit GuidedBackprop")


def test_zennit_rectgrad_rule_keeps_ties_out():
    """tau is the interpolated quantile and the comparison strict: equal products never pass."""
    from nfr.interop.zennit import rectgrad_gate
    A = torch.tensor([[0.0, 1.0, 1.0, 1.0, 2.0]], dtype=DT)
    g = torch.ones_like(A)
    assert rectgrad_gate(g, A, 0.5).tolist() == [[0.0, 0.0, 0.0, 0.0, 1.0]]   # tau = 1
    assert rectgrad_gate(g, A, 0.1).tolist() == [[0.0, 1.0, 1.0, 1.0, 1.0]]   # tau = 0.4
    with pytest.raises(NFRError, match="q"):
        rectgrad_gate(g, A, 1.0)


# ----------------------------------------------------------------------------- Quantus
def _mprt_cnn():
    g = torch.Generator().manual_seed(5)
    m = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 10)).to(DT)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT) * 0.3)
    return m.eval()


def _quantus_cascade(model, seed):
    """Quantus's cascading randomization (quantus.helpers.model.pytorch_model), as nfr.mprt.quantus_steps
    re-does it: modules with ``reset_parameters`` from the top, each reset right after
    ``torch.manual_seed(seed + 1)``; yields (k, name, model_k)."""
    from nfr.mprt import quantus_steps
    for k, (name, mk) in enumerate(quantus_steps(model, "top_down", seed), 1):
        yield k, name, mk


@pytest.mark.parametrize("rule", ["gbp", "rectgrad"])
def test_quantus_mprt_through_explain_equals_nfr_pipeline(rule):
    """Quantus's MPRT (Adebayo et al., "Sanity checks for saliency maps") against nfr.

    Settings that coincide here: order top-down over the weight layers (the CNN has no BatchNorm,
    so Quantus's modules with ``reset_parameters`` are exactly nfr's ``weight_layers``),
    cascading (layer_order="top_down"); maps reduced to sum_c |R_c| (``reduce="abs_sum"``, nfr's
    ``metrics.to_2d``), so Quantus's abs and normalise_by_max leave the ranks unchanged; the
    similarity is Spearman's rank correlation (scipy in Quantus, ``nfr.metrics.spearman`` here).
    Seeding differs: Quantus resets every layer with PyTorch's default initialiser right after
    ``torch.manual_seed(seed + 1)`` (layers of equal shape receive equal weights; biases drawn),
    nfr.randomize draws Gaussian He weights per layer from (seed, l) with zero biases. So the exact
    comparison uses Quantus's weights on nfr's side; nfr's own randomization (the sanity
    experiment's setting) is computed beside it and only reported.
    """
    quantus = pytest.importorskip("quantus")
    from nfr.engine.weights import weight_layers
    from nfr.interop.quantus import explain
    from nfr.metrics import spearman, to_2d
    model = _mprt_cnn()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(6), dtype=DT)
    with torch.no_grad():
        y = model(x).argmax(1)
    metric = quantus.MPRT(layer_order="top_down", seed=42, abs=True, normalise=True,
                          similarity_func=quantus.similarity_func.correlation_spearman,
                          disable_warnings=True, display_progressbar=False)
    with torch.random.fork_rng():
        scores = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), device="cpu",
                        explain_func=explain,
                        explain_func_kwargs={"method": rule, "reduce": "abs_sum"})
    names = [n for n, _ in weight_layers(model)][::-1]
    assert list(scores) == ["original"] + names
    base = nfr.attribute(model, x, y, rule)
    for k, name, mk in _quantus_cascade(model, 42):
        Rk = nfr.attribute(mk, x, y, rule)
        ours = [spearman(to_2d(base[i]), to_2d(Rk[i])) for i in range(len(x))]
        _close(np.array(ours), np.array(scores[name]), 1e-10, "Quantus MPRT (same weights)")
    # nfr's own cascading randomization (Gaussian He, seed 42): reported beside Quantus's
    own = []
    for k in range(1, len(names) + 1):
        Rk = nfr.attribute(nfr.randomize(model, "gaussian", 42, cascade_from_top=k), x, y, rule)
        own.append(np.mean([spearman(to_2d(base[i]), to_2d(Rk[i])) for i in range(len(x))]))
    print(f"\n{rule} mean Spearman per step (top k layers randomized), Quantus reset / nfr.randomize:")
    for k, name in enumerate(names, 1):
        print(f"  k={k} {name:>3}: {np.mean(scores[name]):+.4f} / {own[k - 1]:+.4f}")
    assert np.all(np.isfinite(own))


def test_quantus_explain_shapes_and_errors():
    from nfr.interop.quantus import explain
    model, x = _small()
    a = explain(model, x.numpy(), np.array([0, 1, 2]), method="gbp")
    assert isinstance(a, np.ndarray) and a.shape == tuple(x.shape)
    np.testing.assert_array_equal(a, nfr.attribute(model, x, torch.tensor([0, 1, 2]), "gbp").numpy())
    assert explain(model, x.numpy(), [0, 1, 2], method="grad", reduce="sum").shape == (3, 1, 8, 8)
    act = explain(model, x.numpy(), None, method="activation", layer=2, reduce="abs_sum")
    assert act.shape == (3, 1, 8, 8) and (act >= 0).all()
    with pytest.raises(NFRError, match="method"):
        explain(model, x.numpy(), [0, 1, 2], method="lime")
    with pytest.raises(NFRError, match="reduce"):
        explain(model, x.numpy(), [0, 1, 2], reduce="max")
