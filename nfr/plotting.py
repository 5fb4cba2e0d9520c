"""Figures shared by the chapters (matplotlib only; no torch).

Maps are shown with a symmetric diverging colour scale centred at zero, so that the sign of an
attribution is visible, unless ``signed=False``.
"""
from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib.pyplot as plt

    return plt


#: the display name of every method, one table for the whole book and package
LABELS = {"grad": "Grad", "grad_x_input": "Grad x Input", "gbp": "GBP", "rectgrad": "RectGrad",
          "zplus": "LRP(z+)", "alphabeta": "LRP(alpha-beta)", "dtd": "DTD", "activation": "Activation",
          "saliency": "Saliency", "ig": "IG", "gig": "GIG", "fullgrad": "FullGrad",
          "gradcam": "GradCAM", "cameras": "CAMERAS", "trgbp": "TR-GBP"}


def to_image(x) -> np.ndarray:
    """An image (3, H, W) with values in [0, 1] (tensor or array) as an (H, W, 3) float array."""
    a = np.asarray(x.detach().cpu().double() if hasattr(x, "detach") else x, dtype=float)
    return a.clip(0, 1).transpose(1, 2, 0)


def rgb_map(R, pct: float = 100.0) -> np.ndarray:
    """A signed (3, H, W) map as an (H, W, 3) RGB image: 0 is grey, R / (2 v) + 1/2 clipped to
    [0, 1], with v the ``pct`` percentile of |R| (100: the maximum, as Zheng et al. show maps; a lower
    ``pct`` keeps a few large values of a sparse map from hiding the rest). Accepts a tensor."""
    a = np.asarray(R.detach().cpu().double() if hasattr(R, "detach") else R, dtype=float)
    v = float(np.percentile(np.abs(a), pct)) or float(np.abs(a).max()) or 1.0
    return np.clip(a / (2 * v) + 0.5, 0, 1).transpose(1, 2, 0)


def show_maps(maps: dict[str, np.ndarray], shape=None, *, ncols: int | None = None,
              signed: bool = True, size: float = 1.9, titles: dict[str, str] | None = None):
    """A row (or grid) of maps, one panel per entry, each scaled to its own maximum |value|."""
    plt = _plt()
    n = len(maps)
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (name, m) in zip(axes.ravel(), maps.items()):
        m = np.asarray(m, dtype=float)
        m = m.reshape(shape) if shape is not None else m
        if signed:
            v = np.abs(m).max() or 1.0
            ax.imshow(m, cmap="RdBu_r", vmin=-v, vmax=v, interpolation="nearest")
        else:
            ax.imshow(m, cmap="gray", interpolation="nearest")
        ax.set_title((titles or {}).get(name, name), fontsize=9)
    fig.tight_layout()
    return fig


def alignment_bars(table: dict[str, np.ndarray], *, ylabel: str = r"input alignment $\alpha(R, x)$",
                   title: str | None = None):
    """Bar chart of mean alignment per method with one-standard-deviation error bars."""
    plt = _plt()
    names = list(table)
    means = [float(np.mean(table[k])) for k in names]
    stds = [float(np.std(table[k])) for k in names]
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 1.5, 2.8))
    ax.bar(names, means, yerr=stds, capsize=3, color=["0.6"] + ["C0"] * (len(names) - 1))
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.set_ylim(min(0, min(means) - 0.1), 1.0)
    fig.tight_layout()
    return fig


def curves(x, ys: dict[str, np.ndarray], *, xlabel: str, ylabel: str, spread: dict | None = None,
           logx: bool = False, title: str | None = None):
    """Line plot of several curves sharing ``x``; optional shaded ``spread`` (same keys, 1 std)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 3.0))
    for name, y in ys.items():
        ax.plot(x, y, marker="o", ms=3, label=name)
        if spread and name in spread:
            ax.fill_between(x, y - spread[name], y + spread[name], alpha=0.2)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def layer_strips(images, maps, layers, *, titles=None, clip: float = 99.5, size: float = 1.1):
    """One row per image: the image, then its maps started at each layer (bottom to top).

    ``images`` (B, H, W, 3) in [0, 1]; ``maps`` (len(layers), B, 3, H, W) signed, each shown as
    RGB with 0 -> grey, scaled by its own ``clip`` percentile of |value| (so a few extreme pixels
    do not wash out the rest); ``titles``: one string per image (e.g. "true -> predicted").
    """
    plt = _plt()
    maps = np.asarray(maps, dtype=float)
    n_l, B = maps.shape[:2]
    fig, axes = plt.subplots(B, n_l + 1, figsize=(size * (n_l + 1), (size + 0.12) * B + 0.2), squeeze=False)
    for b in range(B):
        axes[b, 0].imshow(np.clip(np.asarray(images[b], dtype=float), 0, 1))
        axes[b, 0].set_title((titles or [""] * B)[b], fontsize=6)
        for c in range(n_l):
            m = maps[c, b]
            v = np.percentile(np.abs(m), clip) or 1.0
            axes[b, c + 1].imshow(np.clip(m / (2 * v) + 0.5, 0, 1).transpose(1, 2, 0))
            if b == 0:
                axes[b, c + 1].set_title(f"l = {layers[c]}", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(pad=0.2)
    return fig


def measure_curves(layers, profiles: dict, measures, *, labels: dict | None = None):
    """One panel per measure: its median over samples against the start layer, one line per
    entry of ``profiles`` (name -> {measure: array [len(layers), B]}), with the interquartile
    range shaded."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(measures), figsize=(2.6 * len(measures), 2.5), squeeze=False)
    for ax, m in zip(axes[0], measures):
        for name, prof in profiles.items():
            v = np.asarray(prof[m], dtype=float)
            q1, med, q3 = np.nanpercentile(v, [25, 50, 75], axis=1)
            ax.plot(layers, med, marker="o", ms=3, label=name)
            ax.fill_between(layers, q1, q3, alpha=0.15)
        ax.set_xlabel("start layer l")
        ax.set_title((labels or {}).get(m, m), fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def score_histograms(res: dict, keys, *, titles: dict | None = None, bins: int = 30):
    """The layout of Fig 8 of Zheng et al.: one panel per score, density histograms of the correctly (blue) and
    incorrectly (orange) classified samples of ``res`` (arrays under ``keys`` and ``correct``)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.6), squeeze=False)
    c = np.asarray(res["correct"], dtype=bool)
    for ax, k in zip(axes[0], keys):
        v = np.asarray(res[k], dtype=float)
        ok = np.isfinite(v)
        edges = np.histogram_bin_edges(v[ok], bins=bins)
        ax.hist(v[ok & c], bins=edges, density=True, alpha=0.6, label="correct")
        ax.hist(v[ok & ~c], bins=edges, density=True, alpha=0.6, label="incorrect")
        ax.axvline(0, color="k", lw=0.6)
        ax.set_title((titles or {}).get(k, k), fontsize=9)
        ax.set_xlabel("score S")
    axes[0, 0].set_ylabel("density")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig
