"""TR-GBP (TR-GBP paper, Section 4.1, eqs 8-10) on top of the torch engine.

The bias of every weight layer is treated as an extra input of ones (eq 8 of the TR-GBP paper):
Z_l = W~_l^T A~_{l-1} with W~ = [W, b] and A~ = [A, 1]. The (modified) gradient of logit k with
respect to that ones-input of layer l is the *bias map*

    R^l_k[h, w] = sum_c b_{l,c} * g_l[c, h, w],        g_l = d^g f_k / d Z_l,

where d^g is GBP's guided derivative (``rule="gbp"``) or the plain gradient (``rule="grad"``),
read at the output of the layer's :class:`~nfr.engine.canonize.Weighted` module (after any merged
BatchNorm, before the ReLU). A Linear layer gives a 1 x 1 map. The input part is
R^0_k = sum_c d^g f_k / d x_c (eq 9 of the TR-GBP paper, ``input_part="grad"``) or sum_c x_c d^g f_k/dx_c
(``"x_grad"``, FullGrad's input-gradient term). Eq 9 upsamples every bias map bilinearly to the
input size (psi) and adds: R_k = R^0_k + sum_l psi(R^l_k). Eq 10 subtracts the mean map of the
top-5 classes: R~_k = R_k - (1/5) sum_{i in top5} R_i.

Completeness (as FullGrad, Srinivas & Fleuret 2019): a ReLU network with max/avg pooling is
positively homogeneous in (x, all biases), so for the plain gradient
f_k(x) = sum(x * df_k/dx) + sum_l sum_{h,w} R^l_k[h, w] exactly (before upsampling). ReLU6
(EfficientNet-Lite) breaks it: its upper clamp acts like an extra bias that is not counted.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from nfr.engine.attribute import attribute, check_x, onehot, run_forward
from nfr.engine.composites import Session, composite_for
from nfr.engine.canonize import canonical
from nfr.engine.weights import he_std, randomize, weight_layers
from nfr.errors import NFRError

__all__ = ["layer_maps", "aggregate", "trgbp_maps", "trgbp", "completeness", "randomize_biases",
           "cascade_maps", "class_maps"]


def layer_maps(model: nn.Module, x: torch.Tensor, target, rule: str = "gbp",
               input_part: str = "grad"):
    """Input part R^0 (B, H, W) and bias maps {l: R^l (B, h_l, w_l)} of every weight layer l.

    Parameters
    ----------
    model : torch.nn.Module
        An eval-mode ReLU network (canonized internally; never modified).
    x : torch.Tensor
        An image batch [B, C, H, W].
    target : int or torch.LongTensor
        Class index per sample (int or LongTensor of length B).
    rule : str
        "gbp" (TR-GBP) or "grad" (the FullGrad-style decomposition). Default "gbp".
    input_part : str
        "grad" (R^0 = sum_c d^g f_k / d x_c) or "x_grad" (R^0 = sum_c x_c d^g f_k / d x_c).
        Default "grad".

    Returns
    -------
    R0 : torch.Tensor
        The input part R^0, (B, H, W).
    maps : dict
        Layer index l (1-based) -> bias map R^l (B, h_l, w_l), detached; (B, 1, 1) for a Linear
        layer, zeros for a layer without bias.
    f : torch.Tensor
        The logits (B, K) of the plain forward, detached.

    Raises
    ------
    nfr.NFRError
        If ``rule`` or ``input_part`` is not one of the values above, if ``x`` is not 4D, or if
        the model or ``x`` is refused (e.g. a model in train mode, a non-floating-point ``x``).
    """
    if rule not in ("gbp", "grad"):
        raise NFRError(f"rule must be 'gbp' or 'grad', got {rule!r}")
    if input_part not in ("grad", "x_grad"):
        raise NFRError(f"input_part must be 'grad' or 'x_grad', got {input_part!r}")
    check_x(model, x)
    if x.dim() != 4:
        raise NFRError(f"x must be an image batch [B, C, H, W], got shape {tuple(x.shape)}")
    gm = canonical(model)
    L = len(gm.nfr_layers)
    comp = composite_for(rule, L)
    sess = Session(gm, [comp], q=0.9, eps=0.0, low=None, high=None)
    for st in sess.weights.values():
        st.keep = True
    try:
        sess.set(comp)
        xg = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = run_forward(gm, xg)
            seed = onehot(out, target, x.shape[0])
            idx = sorted(sess.weights)
            zs = [sess.weights[l].output for l in idx]
            grads = torch.autograd.grad(out, [xg] + zs, seed, allow_unused=True)
        r0 = grads[0].detach()
        R0 = (x * r0 if input_part == "x_grad" else r0).sum(1)
        maps = {}
        for l, z, g in zip(idx, zs, grads[1:]):
            b = gm.get_submodule(gm.nfr_layers[l - 1].weight).bias
            g = torch.zeros_like(z) if g is None else g.detach()
            if b is None:
                m = torch.zeros((z.shape[0],) + tuple(z.shape[2:]), dtype=x.dtype, device=x.device)
            else:
                m = (g * b.detach().view((1, -1) + (1,) * (g.dim() - 2))).sum(1)
            maps[l] = m if m.dim() == 3 else m.reshape(-1, 1, 1)
        return R0, maps, out.detach()
    finally:
        sess.close()


def aggregate(R0: torch.Tensor, maps: dict, layers=None) -> torch.Tensor:
    """Eq 9: R = R^0 + sum_l psi(R^l), psi = bilinear upsampling to R^0's size (align_corners=False).

    Parameters
    ----------
    R0 : torch.Tensor
        The input part R^0 (B, H, W), as from :func:`layer_maps`.
    maps : dict
        Layer index l -> bias map R^l (B, h_l, w_l), as from :func:`layer_maps`.
    layers : collection of int, optional
        The bias layers to include (default all).

    Returns
    -------
    torch.Tensor
        R (B, H, W); ``R0`` is not modified.
    """
    H, W = R0.shape[-2:]
    R = R0.clone()
    for l, m in maps.items():
        if layers is None or l in layers:
            R = R + F.interpolate(m[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
    return R


def trgbp_maps(model: nn.Module, x: torch.Tensor, top: int = 5, rule: str = "gbp",
               input_part: str = "grad"):
    """Maps of the ``top`` highest-scoring classes of every image.

    The images are repeated ``top`` times and attributed in one batch.

    Parameters
    ----------
    model : torch.nn.Module
        An eval-mode ReLU network.
    x : torch.Tensor
        An image batch [B, C, H, W].
    top : int
        The number of classes. Default 5.
    rule : str
        "gbp" or "grad", as in :func:`layer_maps`. Default "gbp".
    input_part : str
        "grad" or "x_grad", as in :func:`layer_maps`. Default "grad".

    Returns
    -------
    classes : torch.Tensor
        The class indices (B, top) in decreasing logit order.
    R : torch.Tensor
        The eq-9 maps (B, top, H, W).
    Rt : torch.Tensor
        R - mean over the top classes (eq 10), (B, top, H, W).
    """
    with torch.no_grad():
        classes = model(x).topk(top, dim=1).indices
    B = x.shape[0]
    xr = x.repeat_interleave(top, 0)
    R0, maps, _ = layer_maps(model, xr, classes.reshape(-1), rule, input_part)
    R = aggregate(R0, maps).reshape((B, top) + tuple(x.shape[-2:]))
    return classes, R, R - R.mean(1, keepdim=True)


def trgbp(model: nn.Module, x: torch.Tensor, target=None, top: int = 5,
          input_part: str = "grad") -> torch.Tensor:
    """TR-GBP map R~_k (B, H, W) of class ``target`` (default: the predicted class), eq 10.

    R~_k = R_k - (1/top) sum_{i in top classes} R_i with R from eq 9. When ``target`` is not
    among the top classes its map is computed separately and the same mean is subtracted.

    Parameters
    ----------
    model : torch.nn.Module
        An eval-mode ReLU network.
    x : torch.Tensor
        An image batch [B, C, H, W].
    target : int or torch.LongTensor, optional
        The class (one, or one per sample); the predicted class by default.
    top : int
        The number of top classes whose mean map is subtracted. Default 5.
    input_part : str
        "grad" or "x_grad", as in :func:`layer_maps`. Default "grad".

    Returns
    -------
    torch.Tensor
        R~_k, (B, H, W), in ``x``'s dtype.
    """
    classes, R, Rt = trgbp_maps(model, x, top, "gbp", input_part)
    if target is None:
        return Rt[:, 0]
    t = torch.as_tensor(target, device=x.device).long().reshape(-1).expand(x.shape[0])
    hit = classes == t[:, None]
    out = torch.empty((x.shape[0],) + tuple(x.shape[-2:]), dtype=x.dtype, device=x.device)
    for b in range(x.shape[0]):
        if hit[b].any():
            out[b] = Rt[b, int(hit[b].nonzero()[0, 0])]
        else:
            R0, maps, _ = layer_maps(model, x[b:b + 1], int(t[b]), "gbp", input_part)
            out[b] = aggregate(R0, maps)[0] - R[b].mean(0)
    return out


def completeness(model: nn.Module, x: torch.Tensor, target) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of the plain-gradient decomposition, the logit): sum(x * df/dx) + sum_l sum R^l vs f_k.

    Equal for ReLU networks (with pooling, residual adds, merged BatchNorm); see module doc.

    Parameters
    ----------
    model : torch.nn.Module
        An eval-mode ReLU network.
    x : torch.Tensor
        An image batch [B, C, H, W].
    target : int or torch.LongTensor
        The class (one, or one per sample).

    Returns
    -------
    total : torch.Tensor
        sum(x * df_k/dx) + sum_l sum R^l per sample, (B,).
    logit : torch.Tensor
        f_k(x) per sample, (B,).
    """
    R0, maps, out = layer_maps(model, x, target, "grad", "x_grad")
    total = R0.flatten(1).sum(1) + sum(m.flatten(1).sum(1) for m in maps.values())
    t = torch.as_tensor(target, device=x.device).long().reshape(-1).expand(x.shape[0])
    return total, out[torch.arange(x.shape[0]), t]


@torch.no_grad()
def randomize_biases(model: nn.Module, seed: int = 0, scale: str | float = "he") -> nn.Module:
    """A copy of ``model`` whose Conv2d/Linear biases are i.i.d. N(0, s^2).

    s is the layer's He std for ``"he"``: the bias as one more random weight column of
    W~ = [W, b] (eq 8 of the TR-GBP paper). Layer l (1-based,
    :func:`~nfr.engine.weights.weight_layers` order) draws from its own generator seeded by
    (seed, l). Layers without a bias are left alone.

    Parameters
    ----------
    model : torch.nn.Module
        The network (not modified).
    seed : int
        The seed. Default 0.
    scale : str or float
        ``"he"`` (the layer's He std) or a float std s for every layer. Default ``"he"``.

    Returns
    -------
    torch.nn.Module
        The modified deep copy.

    Raises
    ------
    nfr.NFRError
        For a ``scale`` that is neither ``"he"`` nor a float >= 0.
    """
    if not (scale == "he" or (isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale >= 0)):
        raise NFRError(f"randomize_biases: scale must be 'he' or a float >= 0, got {scale!r}")
    new = copy.deepcopy(model)
    for l, (_, mod) in enumerate(weight_layers(new), start=1):
        if mod.bias is None:
            continue
        s = he_std(mod) if scale == "he" else float(scale)
        g = torch.Generator().manual_seed(10007 * int(seed) + l)
        mod.bias.copy_((s * torch.randn(mod.bias.shape, generator=g, dtype=torch.float64))
                       .to(mod.bias.dtype))
    return new


def cascade_maps(model: nn.Module, x: torch.Tensor, target, levels, seed: int = 0,
                 bias: str = "keep", top: int = 5) -> dict:
    """Cascading randomization (Adebayo et al. 2018) for TR-GBP: ``{k: (R, Rt)}``.

    For each k in ``levels`` the top k weight layers of ``model`` get Gaussian He-scaled weights
    (:func:`nfr.engine.weights.randomize` with ``cascade_from_top=k``, seed ``seed``, biases ``bias``: "keep" or
    "zero"); R (B, H, W) is the eq-9 map of class ``target`` (fixed, e.g. the original
    prediction) and Rt = R - mean of the eq-9 maps of the randomized model's top classes (eq 10).

    Parameters
    ----------
    model : torch.nn.Module
        The trained network (not modified).
    x : torch.Tensor
        An image batch [B, C, H, W].
    target : int or torch.LongTensor
        The class (one, or one per sample), the same at every level.
    levels : iterable of int
        The numbers k of randomized top layers.
    seed : int
        Seed of the random weights. Default 0.
    bias : str
        "keep" or "zero": the biases of the randomized layers. Default "keep".
    top : int
        The number of top classes whose mean map is subtracted. Default 5.

    Returns
    -------
    dict
        k (int) -> ``(R, Rt)``, both (B, H, W).
    """
    out = {}
    for k in levels:
        m = randomize(model, "gaussian", seed, cascade_from_top=int(k), bias=bias)
        R0, maps, _ = layer_maps(m, x, target)
        R = aggregate(R0, maps)
        _, Rk, _ = trgbp_maps(m, x, top)
        out[int(k)] = (R, R - Rk.mean(1))
    return out


def class_maps(model: nn.Module, x: torch.Tensor, top: int = 5):
    """GBP and TR-GBP maps of each image's ``top`` classes: ``(classes, G, R, Rt)``.

    G (B, top, H, W) is GBP's guided gradient summed over channels (``nfr.attribute``,
    rule "gbp"); R and Rt as in :func:`trgbp_maps` (eq 9 and eq 10).

    Parameters
    ----------
    model : torch.nn.Module
        An eval-mode ReLU network.
    x : torch.Tensor
        An image batch [B, C, H, W].
    top : int
        The number of classes. Default 5.

    Returns
    -------
    classes : torch.Tensor
        The class indices (B, top) in decreasing logit order.
    G : torch.Tensor
        The GBP maps (B, top, H, W).
    R, Rt : torch.Tensor
        The eq-9 and eq-10 maps (B, top, H, W).
    """
    cls, R, Rt = trgbp_maps(model, x, top)
    g = attribute(model, x.repeat_interleave(top, 0), cls.reshape(-1), rule="gbp").sum(1)
    return cls, g.reshape(R.shape), R, Rt
