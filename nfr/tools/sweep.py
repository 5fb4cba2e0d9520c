"""Architecture sweep: which torchvision classifiers the engine supports, checked against
independent references, written as the table of the book's pitfalls page.

Every architecture is built with random weights (torchvision's own initialisers, torch seed 0 in a
forked RNG), in eval mode and float64, and given one seeded input. It must either

* run, with nfr's ``"grad"`` equal to autograd on the user's model and nfr's ``"gbp"`` equal to
  (a) autograd on a copy of the user's model in which the backward of every ReLU call (module or
  functional, ReLU6 included) is replaced by the guided rule ``M relu(g)``, and (b) Captum's
  ``GuidedBackprop`` where its module hooks see every ReLU (no functional ReLU, no ReLU6), all to
  a relative 1e-10 of the largest entry; or
* raise ONE :class:`nfr.errors.NFRError` that names a layer.

``python -m nfr.tools.sweep`` rewrites the table in ``book/pitfalls.md`` (between the markers);
the test ``tests/test_engine_sweep.py`` checks the committed table equals a fresh run.
"""
from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from nfr.errors import NFRError
from nfr.engine import attribute as engine
from nfr.engine.canonize import Tracer, canonize
from nfr.interop.captum import distinct_relus

# (row label, torchvision builder, builder kwargs, input side)
ARCHS = (
    ("alexnet", "alexnet", {}, 64),
    ("vgg11_bn", "vgg11_bn", {}, 64),
    ("resnet18", "resnet18", {}, 64),
    ("resnet50", "resnet50", {}, 64),
    ("resnext50_32x4d", "resnext50_32x4d", {}, 64),
    ("wide_resnet50_2", "wide_resnet50_2", {}, 64),
    ("densenet121", "densenet121", {}, 64),
    ("mobilenet_v2", "mobilenet_v2", {}, 64),
    ("mobilenet_v3_small", "mobilenet_v3_small", {}, 64),
    ("shufflenet_v2_x0_5", "shufflenet_v2_x0_5", {}, 64),
    ("squeezenet1_0", "squeezenet1_0", {}, 64),
    ("googlenet", "googlenet", {"aux_logits": False, "init_weights": True}, 64),
    ("mnasnet0_5", "mnasnet0_5", {}, 64),
    ("efficientnet_b0", "efficientnet_b0", {}, 64),
    ("regnet_x_400mf", "regnet_x_400mf", {}, 64),
    ("convnext_tiny", "convnext_tiny", {}, 64),
    ("vit_b_16 (image_size=64)", "vit_b_16", {"image_size": 64}, 64),
)
TOL = 1e-10
TARGET = 3
BEGIN, END = "<!-- sweep-table: begin -->", "<!-- sweep-table: end -->"
PAGE = Path(__file__).resolve().parents[2] / "book" / "pitfalls.md"


class _Guided(torch.autograd.Function):
    """relu or clamp(0, upper) whose backward is the guided rule: M relu(g)."""

    @staticmethod
    def forward(ctx, x, upper):
        out = x.clamp(min=0) if upper is None else x.clamp(0.0, upper)   # (relu is patched)
        mask = (x > 0) if upper is None else (x > 0) & (x < upper)
        ctx.save_for_backward(mask)
        return out

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return g.clamp(min=0) * mask, None


class _GuidedReLU(nn.Module):
    def __init__(self, upper=None):
        super().__init__()
        self.upper = upper

    def forward(self, x):
        return _Guided.apply(x, self.upper)


def guided_reference(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    """GBP by plain autograd on a copy of ``model`` whose ReLU calls (modules: replaced, not in
    place; ``F.relu``/``torch.relu``: patched for the call) have the guided backward."""
    m = copy.deepcopy(model)
    for name, mod in list(m.named_modules()):
        for cname, child in list(mod.named_children()):
            if type(child) is nn.ReLU:
                setattr(mod, cname, _GuidedReLU())
            elif type(child) is nn.ReLU6:
                setattr(mod, cname, _GuidedReLU(6.0))
    saved = (F.relu, torch.relu)

    def relu(x, inplace=False):
        return _Guided.apply(x, None)
    F.relu, torch.relu = relu, relu
    try:
        xg = x.clone().requires_grad_(True)
        m(xg)[:, target].sum().backward()
    finally:
        F.relu, torch.relu = saved
    return xg.grad


def _autograd(model, x, target):
    xg = x.clone().requires_grad_(True)
    model(xg)[:, target].sum().backward()
    return xg.grad


def _captum_applies(model) -> bool:
    """Captum's GuidedBackprop hooks nn.ReLU modules: it sees every ReLU only when the model has
    no functional ReLU and no ReLU6."""
    graph = Tracer().trace(model)
    mods = dict(model.named_modules())
    for n in graph.nodes:
        if n.op == "call_module" and isinstance(mods[n.target], (nn.ReLU6, nn.Hardtanh)):
            return False
        if n.op in ("call_function", "call_method") and getattr(
                n.target, "__name__", n.target) in ("relu", "relu_", "relu6", "hardtanh"):
            return False
    return True


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-300))


def _where(msg: str) -> str:
    m = re.search(r"module '([^']*)' (?:\(|is of class )(\w+)", msg)
    if m:
        return f"`{m.group(1)}` ({m.group(2)})"
    m = re.search(r"(?:call_function|call_method) (\w+) inside module '([^']*)' \((\w+)\)", msg)
    if m:
        return f"`{m.group(2)}` ({m.group(3)}, calls {m.group(1)})"
    m = re.search(r"node '([^']*)': (?:call_function|call_method) (\w+)", msg)
    if m:
        return f"`{m.group(2)}` (node `{m.group(1)}`)"
    return msg.split(";")[0]


def run_one(label, builder, kwargs, side):
    """One row: (label, input, verdict, details dict)."""
    import torchvision
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = getattr(torchvision.models, builder)(weights=None, **kwargs).eval()
    shape = f"1x3x{side}x{side}"
    try:
        _check(model)
    except NFRError as e:
        return label, shape, f"NFRError at {_where(str(e))}", {"error": str(e)}
    model = model.double()
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    errs = {"grad vs autograd": _rel(engine.attribute(model, x, TARGET, "grad"),
                                     _autograd(model, x, TARGET))}
    gbp = engine.attribute(model, x, TARGET, "gbp")
    errs["gbp vs guided autograd"] = _rel(gbp, guided_reference(model, x, TARGET))
    refs = "autograd, guided autograd"
    if _captum_applies(model):
        try:                      # Captum is a test-only dependency (installed with .[test])
            from captum.attr import GuidedBackprop
        except ImportError:
            refs += " (Captum not installed)"
        else:
            errs["gbp vs Captum"] = _rel(gbp, GuidedBackprop(distinct_relus(model)).attribute(
                x.clone(), target=TARGET))
            refs += ", Captum"
    ok = all(v <= TOL for v in errs.values())
    verdict = (f"supported (canonized: every rule applies); grad and GBP equal {refs} to "
               f"{TOL:g}" if ok else
               "MISMATCH " + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    return label, shape, verdict, errs


def _check(model):
    canonize(model)


def run(archs=ARCHS, progress=False):
    rows = []
    for a in archs:
        rows.append(run_one(*a))
        if progress:
            print(rows[-1][:3], rows[-1][3], file=sys.stderr)
    return rows


def table(rows) -> str:
    lines = ["| Model (random weights, float64) | Input | Result |", "|---|---|---|"]
    lines += [f"| {label} | {shape} | {verdict} |" for label, shape, verdict, _ in rows]
    return "\n".join(lines)


def committed_table(page: Path = PAGE) -> str:
    text = page.read_text()
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip()


def write(rows, page: Path = PAGE):
    text = page.read_text()
    a, b = text.index(BEGIN) + len(BEGIN), text.index(END)
    page.write_text(text[:a] + "\n" + table(rows) + "\n" + text[b:])


if __name__ == "__main__":
    write(run(progress=True))
