"""Evaluation metrics of the TR-GBP paper (Section 5): energy-based pointing game (eq 11), intensity of
boundary dependencies (IBD, eq 12) with its ROC-AUC for predicting errors, class sensitivity, and
pixel perturbation curves (MoRF / LeRF, Samek et al. 2017).

Conventions (see the book's pitfalls page, pitfall 11): maps are 2D (B, H, W) (or 3D (B, C, H, W),
reduced by a plain channel sum); energy is the positive part R^+ = max(R, 0); boxes are (y1, y2, x1,
x2), half-open, rows first; pixel perturbation removes a pixel in ALL channels at once.
"""
from __future__ import annotations

import numpy as np
import torch

from nfr import kis
from nfr.errors import NFRError
from nfr.metrics import border_centre_ratio, border_mask, energy_in_box, spearman

__all__ = ["ebpg", "ibd", "ibd_border", "roc_auc", "class_correlation", "perturbation_curve",
           "aopc", "centre_cv", "sanity_stats"]


def _maps(R) -> np.ndarray:
    a = R.detach().cpu().double().numpy() if hasattr(R, "detach") else np.asarray(R, float)
    if a.ndim == 4:
        a = a.sum(1)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise NFRError(f"maps must be (B, H, W) or (B, C, H, W), got shape {a.shape}")
    return a


def _region(box, shape) -> np.ndarray | None:
    """Boolean (H, W) mask of a list of boxes (their union) or of a mask; None for a single box."""
    H, W = shape
    arr = np.asarray(box.detach().cpu() if hasattr(box, "detach") else box)
    if arr.dtype == bool:
        if arr.shape != (H, W):
            raise NFRError(f"mask of shape {arr.shape} for a {(H, W)} map")
        return arr
    if arr.size == 0:
        raise NFRError("empty list of boxes for a map; drop the image or give a box")
    if arr.ndim == 1:
        return None
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise NFRError(f"expected a box (y1, y2, x1, x2), a list of boxes or a mask, got shape {arr.shape}")
    m = np.zeros((H, W), bool)
    for b in arr:
        y1, y2, x1, x2 = (int(v) for v in b)
        if not (0 <= y1 < y2 <= H and 0 <= x1 < x2 <= W):
            raise NFRError(f"box (y1, y2, x1, x2) = {tuple(b)} is empty or outside the {(H, W)} map")
        m[y1:y2, x1:x2] = True
    return m


def ebpg(R, boxes) -> np.ndarray:
    """Energy-based pointing game (Wang et al. 2020; eq 11 of the TR-GBP paper), one value per map:

        EBPG = sum_{in box} R^+ / (sum_{in box} R^+ + sum_{outside} R^+).

    ``boxes``: one entry per map, each either a box (y1, y2, x1, x2) (half-open, rows first;
    :func:`nfr.metrics.energy_in_box`), a list of such boxes (the region is their union: an image
    with several objects of its class) or a boolean (H, W) mask. nan for a map without positive
    energy.
    """
    a = _maps(R)
    if len(boxes) != len(a):
        raise NFRError(f"{len(boxes)} boxes for {len(a)} maps")
    out = []
    for m, b in zip(a, boxes):
        region = _region(b, m.shape)
        if region is None:
            out.append(energy_in_box(m, b, positive=True, reduce=None))
            continue
        e = np.maximum(m, 0)
        tot = float(e.sum())
        out.append(float(e[region].sum()) / tot if tot > 0 else float("nan"))
    return np.array(out)


def ibd_border(size: int, border_224: int = 16) -> int:
    """The TR-GBP paper's 16-pixel boundary at 224 px, scaled to ``size``: max(1, round(16 size / 224))."""
    return max(1, int(round(border_224 * size / 224)))


def ibd(R, border: int | None = None) -> np.ndarray:
    """Intensity of boundary dependencies (eq 12 of the TR-GBP paper), one value per map:

        IBD = sum_{boundary} R^+ / (sum_{boundary} R^+ + sum_{not boundary} R^+),

    the boundary being the band of ``border`` pixels along the edges (default
    :func:`ibd_border` of the map size: 16 px at 224). nan for a map without positive energy.
    """
    a = np.maximum(_maps(R), 0)
    H, W = a.shape[-2:]
    b = ibd_border(min(H, W)) if border is None else border
    mask = border_mask(H, W, b)
    tot = a.reshape(len(a), -1).sum(1)
    inb = a[:, mask].sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, inb / np.where(tot > 0, tot, 1), np.nan)


def roc_auc(scores, labels) -> float:
    """ROC-AUC of ``scores`` for binary ``labels`` (Mann-Whitney, average ranks for ties; nan when
    a class is empty): the one implementation, :func:`nfr.stats.roc_auc`."""
    return kis.roc_auc(scores, labels)


def class_correlation(maps) -> np.ndarray:
    """Mean pairwise Pearson correlation between the class maps of each image.

    ``maps`` (B, K, H, W): K class maps per image. Returns (B,). 1 = the same map for every class
    (class-insensitive). Note: K maps with a common mean removed (eq 10 of the TR-GBP paper) sum to zero,
    which forces the mean pairwise correlation down to about -1/(K-1) when their norms are equal.
    """
    a = np.asarray(maps.detach().cpu().double() if hasattr(maps, "detach") else maps, float)
    B, K = a.shape[:2]
    z = a.reshape(B, K, -1)
    z = z - z.mean(-1, keepdims=True)
    n = np.linalg.norm(z, axis=-1, keepdims=True)
    z = np.where(n > 0, z / np.where(n > 0, n, 1), 0)
    C = np.einsum("bkd,bld->bkl", z, z)
    iu = np.triu_indices(K, 1)
    return C[:, iu[0], iu[1]].mean(1)


@torch.no_grad()
def perturbation_curve(model, x, target, R, fractions=np.linspace(0, 1, 11), order: str = "morf",
                       fill=0.0) -> np.ndarray:
    """Target-class probability as pixels are removed in the order of the map R (Samek et al.).

    ``order="morf"`` removes the most relevant pixels first, ``"lerf"`` the least relevant. A
    removed pixel is set to ``fill`` in every channel (0 = the dataset mean for normalised
    inputs). Ties are broken by pixel index (stable sort). Returns (B, len(fractions)) softmax
    probabilities of ``target``.
    """
    if order not in ("morf", "lerf"):
        raise NFRError(f"order must be 'morf' or 'lerf', got {order!r}")
    a = _maps(R)
    B, C, H, W = x.shape
    if a.shape != (B, H, W):
        raise NFRError(f"maps of shape {a.shape} do not match images {tuple(x.shape)}")
    flat = a.reshape(B, -1)
    key = -flat if order == "morf" else flat
    ranks = np.argsort(np.argsort(key, axis=1, kind="stable"), axis=1, kind="stable")
    t = torch.as_tensor(target).long().reshape(-1).expand(B)
    out = np.empty((B, len(fractions)))
    for i, q in enumerate(fractions):
        drop = torch.as_tensor(ranks < int(round(q * H * W))).view(B, 1, H, W).to(x.device)
        xp = torch.where(drop, torch.as_tensor(fill, dtype=x.dtype, device=x.device), x)
        p = torch.softmax(model(xp), 1)
        out[:, i] = p[torch.arange(B), t].cpu().double().numpy()
    return out


def aopc(curve: np.ndarray) -> np.ndarray:
    """Area over the perturbation curve (Samek et al. 2017): mean_i (p_0 - p_i), per image."""
    c = np.asarray(curve, float)
    return (c[:, :1] - c).mean(1)


def centre_cv(R, border: int) -> np.ndarray:
    """Spatial coefficient of variation std/mean of |R| inside the centre (border band removed),
    per map: 0 for a uniform map."""
    a = np.abs(_maps(R))[:, border:-border, border:-border]
    return a.std((1, 2)) / a.mean((1, 2))


def sanity_stats(R, ref, border: int) -> tuple[float, float, float]:
    """Means over maps of (Spearman of |R| with |ref|, border/centre ratio of |R|, centre CV of |R|)
    (``nfr.metrics.spearman`` and ``border_centre_ratio``; border band of ``border`` pixels)."""
    a, r = _maps(R), _maps(ref)
    sp = np.mean([spearman(np.abs(u), np.abs(v)) for u, v in zip(a, r)])
    bc = np.mean([border_centre_ratio(u, border, reduce=None) for u in a])
    return float(sp), float(bc), float(centre_cv(a, border).mean())
