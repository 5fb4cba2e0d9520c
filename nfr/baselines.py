"""Baseline attribution maps of the TR-GBP paper (Section 5): saliency, GBP, Integrated Gradients, Guided
Integrated Gradients, FullGrad, GradCAM and CAMERAS, each returning 2D maps (B, H, W).

Maintained libraries where they exist: Integrated Gradients from Captum, FullGrad and GradCAM from
``pytorch_grad_cam`` (the ``grad-cam`` package). Guided IG (Kapishnikov et al. 2021) and CAMERAS
(Jalwana et al. 2021) are implemented here. Reduction to 2D (see the book's pitfalls page, pitfall
11): gradient-type maps (saliency, GBP, IG, GIG) as the sum over channels of ``|R|``
(``nfr.metrics.to_2d``'s "abs_sum"; saliency uses the max over channels, as Simonyan et al.);
FullGrad, GradCAM and CAMERAS are 2D by construction. The model must be in eval mode; it is never
modified (a private copy with non-inplace ReLUs is used for the hook-based libraries; see the book's
pitfalls page, pitfall 1).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nfr.engine import attribute as engine
from nfr.errors import NFRError
from nfr.trgbp import trgbp

__all__ = ["saliency", "gbp", "integrated_gradients", "guided_ig", "fullgrad", "gradcam",
           "cameras", "METHODS", "attribute_2d"]


def class_targets(target, B):
    """``target`` (an int or B class indices) as a LongTensor of B entries."""
    t = torch.as_tensor(target).long().reshape(-1)
    return t.expand(B) if t.numel() == 1 else t


def input_gradient(model, x, target):
    """df_k/dx for a batch (plain autograd)."""
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = model(xg)
        t = class_targets(target, x.shape[0])
        sel = out[torch.arange(x.shape[0]), t.to(out.device)].sum()
        return torch.autograd.grad(sel, xg)[0].detach()


def _safe_copy(model: nn.Module) -> nn.Module:
    m = copy.deepcopy(model).eval()
    for mod in m.modules():
        if hasattr(mod, "inplace"):
            mod.inplace = False
    return m


def saliency(model, x, target) -> torch.Tensor:
    """Simonyan et al. (2014): max_c ``|df_k/dx_c|``.

    Parameters
    ----------
    model : torch.nn.Module
        An eval-mode classifier (not modified).
    x : torch.Tensor
        The input batch (B, C, H, W).
    target : int or torch.LongTensor
        The class (one, or one per sample).

    Returns
    -------
    torch.Tensor
        The map (B, H, W).
    """
    return input_gradient(model, x, target).abs().amax(1)


def gbp(model, x, target) -> torch.Tensor:
    """Guided Backprop (torch engine, ``nfr.attribute(rule="gbp")``), sum_c ``|R_c|``.

    Parameters
    ----------
    model : torch.nn.Module
        An eval-mode classifier (not modified).
    x : torch.Tensor
        The input batch (B, C, H, W).
    target : int or torch.LongTensor
        The class (one, or one per sample).

    Returns
    -------
    torch.Tensor
        The map (B, H, W).
    """
    return engine.attribute(model, x, target, rule="gbp").abs().sum(1)


def integrated_gradients(model, x, target, steps: int = 32, baseline=None,
                         reduce: bool = True) -> torch.Tensor:
    """Integrated Gradients (Sundararajan et al. 2017) from Captum.

    Zero baseline by default, Gauss-Legendre with ``steps`` points; sum_c ``|IG_c|``. Captum is
    imported here, when IG is asked for (an optional dependency).

    Parameters
    ----------
    model : torch.nn.Module
        An eval-mode classifier (not modified).
    x : torch.Tensor
        The input batch (B, C, H, W).
    target : int or torch.LongTensor
        The class (one, or one per sample).
    steps : int
        The number of integration points. Default 32.
    baseline : torch.Tensor or float, optional
        The baseline (Captum's ``baselines``); zeros like ``x`` by default.
    reduce : bool
        True (default): sum_c ``|IG_c|``; False: the signed map, shaped like x.

    Returns
    -------
    torch.Tensor
        The map (B, H, W), or (B, C, H, W) with ``reduce=False``; detached.
    """
    from captum.attr import IntegratedGradients
    ig = IntegratedGradients(model)
    b = torch.zeros_like(x) if baseline is None else baseline
    a = ig.attribute(x, baselines=b, target=class_targets(target, x.shape[0]).tolist(), n_steps=steps)
    return a.detach().abs().sum(1) if reduce else a.detach()


def _guided_ig_one(grad_fn, x, baseline, steps, fraction, max_dist):
    """Guided IG path for one input (NumPy path logic of the authors' reference code).

    At step t (alpha = (t+1)/steps) the L1 distance to the input must shrink to
    l1_total (1 - alpha); the features with the smallest ``|gradient|`` (the ``fraction`` quantile)
    are moved towards the input first, each kept within ``max_dist`` of the straight-line alpha.
    Attribution accumulates (x_new - x_old) * grad(x_old).
    """
    xin, xb = x.astype(np.float64), baseline.astype(np.float64)
    cur = xb.copy()
    diff = xin - xb
    l1_total = np.abs(diff).sum()
    attr = np.zeros_like(xin)
    if l1_total == 0:
        return attr
    for step in range(steps):
        g_actual = grad_fn(cur)
        g = g_actual.copy()
        alpha = (step + 1.0) / steps
        a_min, a_max = max(alpha - max_dist, 0.0), min(alpha + max_dist, 1.0)
        x_min, x_max = xb + diff * a_min, xb + diff * a_max
        l1_target = l1_total * (1 - alpha)
        gamma = math.inf
        while gamma > 1.0:
            old = cur.copy()
            with np.errstate(divide="ignore", invalid="ignore"):
                x_alpha = np.where(diff != 0, (cur - xb) / diff, np.nan)
            x_alpha[np.isnan(x_alpha)] = a_max
            low = x_alpha < a_min
            cur[low] = x_min[low]
            l1_cur = np.abs(cur - xin).sum()
            if math.isclose(l1_target, l1_cur, rel_tol=1e-9, abs_tol=1e-9):
                attr += (cur - old) * g_actual
                break
            g[cur == x_max] = np.inf
            thr = np.quantile(np.abs(g), fraction, method="lower")
            s = (np.abs(g) <= thr) & (g != np.inf)
            l1_s = (np.abs(cur - x_max) * s).sum()
            gamma = (l1_cur - l1_target) / l1_s if l1_s > 0 else math.inf
            if gamma > 1.0:
                cur[s] = x_max[s]
            else:
                cur[s] = (cur + (x_max - cur) * gamma)[s]
            attr += (cur - old) * g_actual
    return attr


def guided_ig(model, x, target, steps: int = 32, fraction: float = 0.25, max_dist: float = 0.02,
              baseline=None, reduce: bool = True):
    """Guided Integrated Gradients (Kapishnikov et al., CVPR 2021), zero baseline by default.

    An adaptive path from the baseline to x that moves, at each of ``steps`` steps, the features
    with the smallest absolute gradient first (``fraction`` = 0.25 of them at a time), never more
    than ``max_dist`` away from the straight line in alpha. sum(GIG) ~= f_k(x) - f_k(baseline).

    Parameters
    ----------
    model : torch.nn.Module
        An eval-mode classifier (not modified).
    x : torch.Tensor
        The input batch (B, C, H, W).
    target : int or torch.LongTensor
        The class (one, or one per sample).
    steps : int
        The number of path steps. Default 32.
    fraction : float
        The quantile of ``|gradient|`` below which features move at each step. Default 0.25.
    max_dist : float
        The largest distance, in alpha, from the straight line. Default 0.02.
    baseline : torch.Tensor or float, optional
        The path's start, broadcastable to ``x``; zeros by default.
    reduce : bool
        True (default): sum over channels of the absolute attribution.

    Returns
    -------
    torch.Tensor
        sum_c ``|GIG_c|`` (B, H, W), or the raw (B, C, H, W) attribution with ``reduce=False``.
    """
    t = class_targets(target, x.shape[0])
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        def grad_fn(a, b=b):
            xa = torch.as_tensor(a, dtype=x.dtype, device=x.device)[None]
            return input_gradient(model, xa, int(t[b]))[0].cpu().double().numpy()
        base = np.zeros(x.shape[1:]) if baseline is None else \
            torch.as_tensor(baseline).expand_as(x)[b].cpu().double().numpy()
        a = _guided_ig_one(grad_fn, x[b].detach().cpu().double().numpy(), base, steps, fraction,
                           max_dist)
        out[b] = torch.as_tensor(a, dtype=x.dtype)
    return out.abs().sum(1) if reduce else out


def _cam(cls, model, x, target, layer):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    m = _safe_copy(model)
    layers = [] if layer is None else [m.get_submodule(layer)]
    t = class_targets(target, x.shape[0])
    with cls(model=m, target_layers=layers) as cam:
        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(k)) for k in t])
    return torch.as_tensor(np.asarray(maps), dtype=x.dtype)


def fullgrad(model, x, target) -> torch.Tensor:
    """FullGrad (Srinivas & Fleuret 2019) from ``pytorch_grad_cam`` (min-max normalised per image).

    Parameters
    ----------
    model : torch.nn.Module
        An eval-mode classifier (not modified).
    x : torch.Tensor
        The input batch (B, C, H, W).
    target : int or torch.LongTensor
        The class (one, or one per sample).

    Returns
    -------
    torch.Tensor
        The map (B, H, W), on the CPU, in ``x``'s dtype.
    """
    from pytorch_grad_cam import FullGrad
    return _cam(FullGrad, model, x, target, None)


def gradcam(model, x, target, layer: str) -> torch.Tensor:
    """GradCAM (Selvaraju et al. 2017) at the module named ``layer`` (from ``pytorch_grad_cam``).

    Parameters
    ----------
    model : torch.nn.Module
        An eval-mode classifier (not modified).
    x : torch.Tensor
        The input batch (B, C, H, W).
    target : int or torch.LongTensor
        The class (one, or one per sample).
    layer : str
        The name of the module whose output GradCAM reads (e.g. ``"layer4"``).

    Returns
    -------
    torch.Tensor
        The map (B, H, W) as ``pytorch_grad_cam`` computes it, on the CPU, in ``x``'s dtype.
    """
    from pytorch_grad_cam import GradCAM
    return _cam(GradCAM, model, x, target, layer)


def cameras(model, x, target, layer: str, scales=(1.0, 1.5, 2.0, 2.5, 3.0)) -> torch.Tensor:
    """CAMERAS (Jalwana et al., CVPR 2021): multi-scale accumulated activation maps and gradients.

    For every scale s the input is upsampled bilinearly to s*H x s*W; the activations A^s and the
    gradients G^s = df_k/dA^s at module ``layer`` are upsampled to the feature size of the largest
    scale and averaged over scales; the map is relu(sum_c mean_s(A) * mean_s(G)), upsampled to
    H x W (bilinear) and divided by its maximum.

    Parameters
    ----------
    model : torch.nn.Module
        An eval-mode classifier (not modified).
    x : torch.Tensor
        The input batch (B, C, H, W).
    target : int or torch.LongTensor
        The class (one, or one per sample).
    layer : str
        The name of the module whose activations and gradients are read.
    scales : tuple of float
        The input scales s. Default (1.0, 1.5, 2.0, 2.5, 3.0).

    Returns
    -------
    torch.Tensor
        The map (B, H, W), each image divided by its maximum (values in [0, 1]).
    """
    m = _safe_copy(model)
    mod = m.get_submodule(layer)
    t = class_targets(target, x.shape[0])
    H, W = x.shape[-2:]
    feats = []
    handle = mod.register_forward_hook(lambda _m, _i, o: feats.append(o))
    acc_a, acc_g = [], []
    try:
        for s in scales:
            feats.clear()
            xs = F.interpolate(x, size=(round(s * H), round(s * W)), mode="bilinear",
                               align_corners=False) if s != 1.0 else x
            with torch.enable_grad():
                out = m(xs.detach().requires_grad_(True))
                sel = out[torch.arange(x.shape[0]), t].sum()
                g = torch.autograd.grad(sel, feats[0])[0]
            acc_a.append(feats[0].detach())
            acc_g.append(g.detach())
    finally:
        handle.remove()
    size = acc_a[-1].shape[-2:]
    up = lambda v: F.interpolate(v, size=size, mode="bilinear", align_corners=False)  # noqa: E731
    A = torch.stack([up(a) for a in acc_a]).mean(0)
    G = torch.stack([up(g) for g in acc_g]).mean(0)
    sal = torch.relu((A * G).sum(1, keepdim=True))
    sal = F.interpolate(sal, size=(H, W), mode="bilinear", align_corners=False)[:, 0]
    mx = sal.flatten(1).amax(1).clamp(min=torch.finfo(sal.dtype).tiny)
    return sal / mx.view(-1, 1, 1)


def cam_layer(model) -> str:
    """Name of the module GradCAM and CAMERAS read: the output of the last feature block.

    VGG / AlexNet (a ``features`` Sequential): its last ReLU (``features.29`` for VGG16);
    torchvision ResNets: ``layer4``; CIFAR ResNets: ``layer3``; EfficientNet-Lite0: ``_conv_head``;
    otherwise the last Conv2d.
    """
    import torch.nn as nn
    names = dict(model.named_modules())
    if "features" in names and isinstance(names["features"], nn.Sequential):
        relus = [f"features.{i}" for i, m in enumerate(names["features"]) if isinstance(m, nn.ReLU)]
        if relus:
            return relus[-1]
    for n in ("layer4", "layer3", "_conv_head"):
        if n in names:
            return n
    convs = [n for n, m in names.items() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise NFRError("the model has no Conv2d module for GradCAM / CAMERAS; give layer=")
    return convs[-1]


METHODS = ("saliency", "gbp", "ig", "gig", "fullgrad", "gradcam", "cameras", "trgbp")


def attribute_2d(method: str, model, x, target, layer: str | None = None, **kw) -> torch.Tensor:
    """One entry point for every method of ``METHODS`` -> 2D maps (B, H, W).

    "trgbp" is :func:`nfr.trgbp.trgbp`.

    Parameters
    ----------
    method : str
        One of ``METHODS``: "saliency", "gbp", "ig", "gig", "fullgrad", "gradcam", "cameras",
        "trgbp".
    model : torch.nn.Module
        An eval-mode classifier (not modified).
    x : torch.Tensor
        The input batch (B, C, H, W).
    target : int or torch.LongTensor
        The class (one, or one per sample); for "trgbp" None is the predicted class.
    layer : str, optional
        Names the module used by GradCAM and CAMERAS (required for them, ignored otherwise).
    **kw
        Further keyword arguments of the method's function (e.g. ``steps`` for "ig", ``top``
        for "trgbp").

    Returns
    -------
    torch.Tensor
        The maps (B, H, W) (for "ig" / "gig" with ``reduce=False``: shaped like x).

    Raises
    ------
    nfr.NFRError
        If ``method`` is not in ``METHODS``, or if "gradcam" or "cameras" is asked for without
        ``layer``.
    """
    if method not in METHODS:
        raise NFRError(f"unknown method {method!r}; choose one of {METHODS}")
    if method in ("gradcam", "cameras") and layer is None:
        raise NFRError(f"{method} needs layer= (the name of a feature module, e.g. '_conv_head')")
    if method == "trgbp":
        return trgbp(model, x, target, **kw)
    fn = {"saliency": saliency, "gbp": gbp, "ig": integrated_gradients, "gig": guided_ig,
          "fullgrad": fullgrad, "gradcam": gradcam, "cameras": cameras}[method]
    return fn(model, x, target, layer, **kw) if method in ("gradcam", "cameras") else \
        fn(model, x, target, **kw)
