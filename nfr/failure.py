"""Failure analysis by cascade comparison (Zheng et al., Section V-A and Fig 7).

The map *started at layer l* is the Activation attribution of Table I of Zheng et al.: the relevance at layer
l is replaced by the activation A_l itself and propagated to the input with the raw gradient,

    R^(l) = r_0 = W_1 M_1 W_2 M_2 ... W_l M_l A_l = d <A_l, stopgrad(A_l)> / d x ,

(``engine.attribute(model, x, rule="activation", layer=l, bottom=False)``; the cascade of
``engine.cascade(..., "activation")`` computes all layers in one forward pass: level N = L - l).
By Theorem 2 an activation-aligned start keeps the alignment of the layers below, so comparing
R^(l) for l = 1, 2, ... shows what the layers up to l keep of the input and what they drop.
This module measures what disappears, per map and per sample, all returning tensors of shape (B,):

* :func:`nfr.alignment`: alpha(R, x) = <R, x> / (||R|| ||x||) (Definition 1);
* :func:`chroma_fraction` (colour saturation): the share of the map's energy that is colour,
  ||R - g(R)||^2 / ||R||^2, g(R) the per-pixel grey part (the channel mean repeated over the
  channels);
* :func:`colour_alignment` (colour information kept): alpha(R - g(R), x - g(x)), the alignment of
  the colour parts of map and input;
* :func:`outside_energy`: the share of sum_c |R_c| outside a bounding box (y1, y2, x1, x2)
  (:func:`central_box` as a proxy for the object when no box is annotated).
"""
from __future__ import annotations

import numpy as np
import torch

from nfr.errors import NFRError
from nfr.engine import attribute as engine
from nfr.engine.weights import weight_layers
from nfr.metrics import spearman

__all__ = ["central_box", "start_layer_maps", "chroma_fraction", "colour_alignment", "outside_energy",
           "layer_profile", "trend", "MEASURES", "summarize", "report"]

#: the per-layer measures of :func:`layer_profile`
MEASURES = ("alignment", "colour", "chroma", "outside")


def central_box(h: int, w: int, frac: float = 0.5) -> tuple[int, int, int, int]:
    """The centred box ``(y1, y2, x1, x2)`` covering ``frac`` of the height and of the width (so
    frac^2 of the area; 0.5 -> the central quarter), rows first (see the book's pitfalls page, pitfall 11)."""
    if not 0 < frac <= 1:
        raise NFRError(f"frac must lie in (0, 1], got {frac}")
    bh, bw = max(1, round(h * frac)), max(1, round(w * frac))
    y1, x1 = (h - bh) // 2, (w - bw) // 2
    return (y1, y1 + bh, x1, x1 + bw)


def start_layer_maps(model, x: torch.Tensor, layers, below: str = "grad") -> torch.Tensor:
    """Activation attributions started at each layer l in ``layers`` (1..L-1; 0 gives x itself),
    ``[len(layers), B, C, H, W]``, without bottom process.

    ``below``: the rule of the layers 1..l that carry A_l down to the input. ``"grad"`` (the raw
    gradient, the Activation of Table I of Zheng et al.) computes every layer from ONE forward pass with
    ``engine.cascade(model, x, 0, "activation", levels=[L - l])``; ``"gbp"``, ``"rectgrad"`` or
    ``"zplus"`` (an NFR below, Section V-A of Zheng et al.) call ``engine.attribute(model, x,
    rule="activation", layer=l, below=below, bottom=False)`` once per layer.
    """
    L = len(weight_layers(model))
    layers = [int(l) for l in layers]
    bad = [l for l in layers if not 0 <= l < L]
    if bad:
        raise NFRError(f"start layers {bad} out of range 0..{L - 1} (layer L = {L} is the output)")
    if below == "grad":
        return engine.cascade(model, x, 0, "activation", levels=[L - l for l in layers])
    return torch.stack([x.detach().clone() if l == 0 else
                        engine.attribute(model, x, rule="activation", layer=l, below=below,
                                      bottom=False) for l in layers])


def chroma_fraction(R: torch.Tensor) -> torch.Tensor:
    """Colour share of a batch of maps (B, C, H, W): ||R - g||^2 / ||R||^2 per sample, with
    g[:, c] = mean over channels of R (the grey part of each pixel). 0 for a grey map (all channels
    equal), (C - 1) / C on average for i.i.d. channels; 0 for an all-zero map."""
    if R.dim() != 4:
        raise NFRError(f"expected maps of shape (B, C, H, W), got {tuple(R.shape)}")
    Rd = R.double()
    chroma = (Rd - Rd.mean(1, keepdim=True)).pow(2).sum((1, 2, 3))
    tot = Rd.pow(2).sum((1, 2, 3))
    return torch.where(tot > 0, chroma / tot.clamp_min(1e-300), torch.zeros_like(tot))


def colour_alignment(R: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """alpha(R - g(R), x - g(x)) per sample: the input alignment (Definition 1) of the colour
    parts, g the per-pixel channel mean (see :func:`chroma_fraction`). 1 when the map carries the
    input's colours exactly (up to scale and an added grey map), 0 for colour-blind maps."""
    if R.shape != x.shape or R.dim() != 4:
        raise NFRError(f"R {tuple(R.shape)} and x {tuple(x.shape)} must be equal (B, C, H, W)")
    Rd, xd = R.double(), x.double()
    return engine.alignment(Rd - Rd.mean(1, keepdim=True), xd - xd.mean(1, keepdim=True))


def outside_energy(R: torch.Tensor, box) -> torch.Tensor:
    """Share of the energy E = sum_c |R_c| outside ``box = (y1, y2, x1, x2)`` (rows y first),
    per sample of a batch (B, C, H, W): 1 - E[y1:y2, x1:x2].sum() / E.sum(); nan for a zero map."""
    if R.dim() != 4:
        raise NFRError(f"expected maps of shape (B, C, H, W), got {tuple(R.shape)}")
    y1, y2, x1, x2 = (int(v) for v in box)
    H, W = R.shape[-2:]
    if not (0 <= y1 < y2 <= H and 0 <= x1 < x2 <= W):
        raise NFRError(f"box (y1, y2, x1, x2) = {box} is empty or outside the {H}x{W} map")
    E = R.double().abs().sum(1)
    tot = E.sum((1, 2))
    inside = E[:, y1:y2, x1:x2].sum((1, 2))
    nan = torch.full_like(tot, float("nan"))
    return torch.where(tot > 0, 1 - inside / tot.clamp_min(1e-300), nan)


def layer_profile(model, x: torch.Tensor, layers, box=None, maps=None, below="grad") -> dict:
    """Per-layer measures of the maps started at ``layers``: NumPy arrays of shape
    ``[len(layers), B]`` under ``alignment``, ``colour``, ``chroma`` and ``outside`` (see the module doc;
    ``box`` defaults to :func:`central_box` of x; ``below`` as in :func:`start_layer_maps`), plus the input's own values ``input_chroma``
    and ``input_outside`` (B,) for reference. ``maps``: reuse the result of :func:`start_layer_maps`."""
    M = start_layer_maps(model, x, layers, below) if maps is None else maps
    box = central_box(*x.shape[-2:]) if box is None else box
    prof = {"alignment": np.stack([engine.alignment(m, x).numpy() for m in M]),
            "colour": np.stack([colour_alignment(m, x).numpy() for m in M]),
            "chroma": np.stack([chroma_fraction(m).numpy() for m in M]),
            "outside": np.stack([outside_energy(m, box).numpy() for m in M])}
    prof["input_chroma"] = chroma_fraction(x).numpy()
    prof["input_outside"] = outside_energy(x, box).numpy()
    return prof


def trend(layers, values) -> np.ndarray:
    """Spearman rank correlation between the start layer and a measure, per sample: ``values``
    of shape [len(layers), B] -> (B,). -1: the measure falls at every step up the network;
    +1: it rises; nan for a constant measure (see :func:`nfr.metrics.spearman`)."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[0] != len(layers):
        raise NFRError(f"values must have shape [len(layers) = {len(layers)}, B], got {v.shape}")
    return np.array([spearman(np.asarray(layers, dtype=float), v[:, b]) for b in range(v.shape[1])])


def summarize(layers, prof: dict, groups: dict, measures=MEASURES) -> dict:
    """Medians over the samples of each group: ``{group: {measure: {"trend", "first", "last"}}}``
    with ``trend`` the median of :func:`trend` (Spearman rho of measure against start layer) and
    ``first`` / ``last`` the median measure at the lowest / highest start layer. ``groups`` maps a
    name to the sample indices (columns of ``prof[measure]``) that form it."""
    out = {}
    for g, idx in groups.items():
        idx = np.asarray(idx, dtype=int)
        out[g] = {m: {"trend": float(np.nanmedian(trend(layers, prof[m][:, idx]))),
                      "first": float(np.nanmedian(prof[m][0, idx])),
                      "last": float(np.nanmedian(prof[m][-1, idx]))} for m in measures}
    return out


def report(layers, prof: dict, groups: dict, measures=MEASURES) -> list[str]:
    """One printable line per group and measure from :func:`summarize` (3 decimals)."""
    s = summarize(layers, prof, groups, measures)
    return [f"{g:>9} {m:>9}: rho {v['trend']:+.3f}   l={layers[0]}: {v['first']:.3f} -> "
            f"l={layers[-1]}: {v['last']:.3f}" for g, d in s.items() for m, v in d.items()]
