"""Figures shared by the chapters (matplotlib only; no torch).

Maps are shown with a symmetric diverging colour scale centred at zero, so that the sign of an
attribution is visible, unless ``signed=False``.
"""
from __future__ import annotations

import numpy as np

from nfr.errors import NFRError


def _plt():
    import matplotlib.pyplot as plt

    return plt


#: the display name of every method, one table for the whole book and package
LABELS = {"grad": "Grad", "grad_x_input": "Grad x Input", "gbp": "GBP", "rectgrad": "RectGrad",
          "zplus": "LRP(z+)", "alphabeta": "LRP(alpha-beta)", "dtd": "DTD", "activation": "Activation",
          "saliency": "Saliency", "ig": "IG", "gig": "GIG", "fullgrad": "FullGrad",
          "gradcam": "GradCAM", "cameras": "CAMERAS", "trgbp": "TR-GBP"}


#: the PNG text chunk in which the book's figures record the height of their smallest text, in
#: pixels of the PNG (``tests/test_browser.py`` turns it into CSS pixels as the page shows the figure)
TEXT_PX_KEY = "nfr:min-text-px"


def figure_png(fig, dpi: float | None = None) -> bytes:
    """The figure as PNG bytes, drawn as Jupyter's inline backend draws it (tight bounding box, the
    figure's dpi), with the size of its smallest drawn text, in pixels of the PNG, recorded in the PNG
    text chunk :data:`TEXT_PX_KEY` (``"none"`` for a figure without text).

    Only text that is drawn counts (visible, not empty): tick labels, titles, legends, keys. The book
    keeps that text at 9 CSS pixels or more as the page shows the figure; a test reads the chunk back.
    """
    import io
    import struct
    import zlib

    from matplotlib import text as mtext

    dpi = float(dpi or fig.dpi)
    sizes: list[float] = []
    draw = mtext.Text.draw

    def recording(self, renderer):
        if self.get_visible() and self.get_text().strip():
            sizes.append(float(self.get_fontsize()))
        return draw(self, renderer)

    buf = io.BytesIO()
    mtext.Text.draw = recording  # record while savefig draws (a Figure made without pyplot has no
    try:                         # canvas of its own to draw on before)
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor=fig.get_facecolor(),
                    edgecolor=fig.get_edgecolor())
    finally:
        mtext.Text.draw = draw
    value = f"{min(sizes) * dpi / 72:.2f}" if sizes else "none"
    body = TEXT_PX_KEY.encode("latin-1") + b"\0" + value.encode("latin-1")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    png = buf.getvalue()
    ihdr_end = 8 + 12 + struct.unpack(">I", png[8:12])[0]  # the text chunk goes right after IHDR
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def png_text_px(png: bytes) -> float | None:
    """The smallest text size :func:`figure_png` recorded in a PNG, in pixels of the PNG (``inf``
    for a figure without text; ``None`` when the PNG carries no record)."""
    import struct

    pos = 8
    while pos + 8 <= len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + n]
        if kind == b"tEXt":  # figure_png writes a plain tEXt chunk
            key, _, text = body.partition(b"\0")
            if key.decode("latin-1") == TEXT_PX_KEY:
                text = text.decode("latin-1")
                return float("inf") if text == "none" else float(text)
        if kind == b"IEND":
            break
        pos += 12 + n
    return None


def book_figures() -> None:
    """Show matplotlib figures in this IPython session as :func:`figure_png` draws them: the inline
    backend with PNG output (``%matplotlib inline``, ``InlineBackend.figure_formats = ['png']``), then
    our PNG formatter in place of the backend's. The book's chapters call it once, in their first cell.
    Outside IPython it does nothing."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the book, not of the package
        return
    ip = get_ipython()
    if ip is None:
        return
    import base64

    from matplotlib.figure import Figure

    ip.run_line_magic("matplotlib", "inline")  # the backend registers its own formatter here ...
    ip.run_line_magic("config", "InlineBackend.figure_formats = ['png']")
    ip.display_formatter.formatters["image/png"].for_type(  # ... which ours then replaces
        Figure, lambda fig: base64.b64encode(figure_png(fig)).decode("ascii"))


#: one colour, marker and line style per method for every figure of the book: GBP and RectGrad
#: often coincide, so RectGrad is dashed with open squares and GBP stays visible under it
STYLES = {"grad": dict(color="0.45", marker="x", ls="-"), "grad_x_input": dict(color="0.7", marker="+", ls="-"),
          "gbp": dict(color="C0", marker="o", ls="-"),
          "rectgrad": dict(color="C1", marker="s", ls="--", mfc="none"),
          "zplus": dict(color="C2", marker="^", ls="-"), "alphabeta": dict(color="C8", marker="v", ls="-"),
          "dtd": dict(color="C4", marker="D", ls=":"), "trgbp": dict(color="C3", marker="*", ls="-"),
          "saliency": dict(color="0.3", marker=".", ls="-"), "ig": dict(color="C5", marker="p", ls="-"),
          "gig": dict(color="C6", marker="h", ls="-"), "fullgrad": dict(color="C7", marker="<", ls="-"),
          "gradcam": dict(color="C9", marker=">", ls="-"), "cameras": dict(color="olive", marker="d", ls="-"),
          "activation": dict(color="k", marker=".", ls="-")}


_STYLE_ALIASES = {**{v.lower(): k for k, v in LABELS.items()}, "z+": "zplus"}


def style(name: str, **defaults) -> dict:
    """The book's line style of a method, found by its key (``"gbp"``), its label (``"GBP"``) or
    ``"z+"``, on top of ``defaults`` (e.g. ``marker="o"`` for anything else, which then keeps
    matplotlib's own colour cycle)."""
    key = name if name in STYLES else _STYLE_ALIASES.get(str(name).lower())
    return {**defaults, **STYLES.get(key, {})}


def _arr(a) -> np.ndarray:
    """A tensor (detached, on the CPU) or array as a float64 NumPy array."""
    return np.asarray(a.detach().cpu().double() if hasattr(a, "detach") else a, dtype=float)


def to_image(x) -> np.ndarray:
    """An image (3, H, W) with values in [0, 1] (tensor or array) as an (H, W, 3) float array."""
    return _arr(x).clip(0, 1).transpose(1, 2, 0)


def rgb_map(R, pct: float = 100.0) -> np.ndarray:
    """A signed (3, H, W) map as an (H, W, 3) RGB image: 0 is grey, R / (2 v) + 1/2 clipped to
    [0, 1], with v the ``pct`` percentile of |R| (100: the maximum, as Zheng et al. show maps; a lower
    ``pct`` keeps a few large values of a sparse map from hiding the rest). Accepts a tensor."""
    a = _arr(R)
    v = float(np.percentile(np.abs(a), pct)) or float(np.abs(a).max()) or 1.0
    return np.clip(a / (2 * v) + 0.5, 0, 1).transpose(1, 2, 0)


def map_key(fig, kind: str = "rgb", pct: float = 100.0, width: float = 0.34):
    """Add the colour scale of a map figure below its panels (call after ``tight_layout``).

    Every map of the book is scaled to its own size, so the key says how: ``kind="rgb"`` (maps shown
    by :func:`rgb_map`: each channel from black, -v, through grey, 0, to full, +v), ``"signed"``
    (a diverging colour map, blue -v, white 0, red +v) or ``"unsigned"`` (grey levels from each map's
    own minimum to its maximum, as ``imshow`` scales them); v is each map's own largest ``|R|`` (``pct`` = 100) or its ``pct`` percentile (larger values
    clipped).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure (its panels already laid out).
    kind : str
        ``"rgb"``, ``"signed"`` or ``"unsigned"``.
    pct : float
        The percentile of ``|R|`` that defines v. Default 100 (the maximum).
    width : float
        The key's width as a fraction of the figure's. Default 0.34.

    Returns
    -------
    matplotlib.axes.Axes
        The key's axes.

    Raises
    ------
    NFRError
        If ``kind`` is unknown.
    """
    ramp = np.linspace(0, 1, 256)[None, :]
    if kind == "rgb":
        img, ticks = np.repeat(ramp[..., None], 3, axis=2), ["\u2212v", "0", "+v"]
    elif kind == "signed":
        img, ticks = ramp, ["\u2212v", "0", "+v"]
    elif kind == "unsigned":
        img, ticks = ramp, ["min", "", "max"]
    else:
        raise NFRError(f"map_key: kind must be 'rgb', 'signed' or 'unsigned', not {kind!r}")
    h_in = fig.get_size_inches()[1]
    ax = fig.add_axes([0.5 - width / 2, -0.16 / h_in, width, 0.1 / h_in])
    ax.imshow(img, aspect="auto", cmap={"signed": "RdBu_r", "unsigned": "gray"}.get(kind),
              extent=(0, 1, 0, 1))
    ax.set_yticks([])
    ax.set_xticks([0, 0.5, 1], ticks, fontsize=8)
    v = "max |R|" if pct >= 100 else f"{pct:g}th percentile of |R| (larger values clipped)"
    what = "each colour channel" if kind == "rgb" else "colour"
    ax.set_xlabel("grey level: from the map's own minimum to its maximum" if kind == "unsigned"
                  else f"{what}: v = the map's own {v}", fontsize=8)
    return ax


def show_maps(maps: dict[str, np.ndarray], shape=None, *, ncols: int | None = None,
              signed: bool = True, size: float = 1.9, titles: dict[str, str] | None = None,
              image=None, pct: float = 100.0):
    """A row (or grid) of maps, one panel per entry, each scaled to its own ``pct`` percentile of
    |value| (100: its maximum; larger values clipped). ``image`` (an (H, W, 3) or (3, H, W) picture in
    [0, 1]) is shown first, in a column of its own, so the maps can be read against their input."""
    plt = _plt()
    n = len(maps)
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    lead = 0 if image is None else 1
    fig, axes = plt.subplots(nrows, ncols + lead, figsize=(size * (ncols + lead), size * nrows + 0.3),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    if image is not None:
        im = _arr(image)
        axes[0, 0].imshow(np.clip(im.transpose(1, 2, 0) if im.shape[0] == 3 else im, 0, 1))
        axes[0, 0].set_title("input", fontsize=9)
    for k, (name, m) in enumerate(maps.items()):
        ax = axes[k // ncols, k % ncols + lead]
        m = np.asarray(m, dtype=float)
        m = m.reshape(shape) if shape is not None else m
        if signed:
            v = float(np.percentile(np.abs(m), pct)) or float(np.abs(m).max()) or 1.0
            ax.imshow(m, cmap="RdBu_r", vmin=-v, vmax=v, interpolation="nearest")
        else:
            ax.imshow(m, cmap="gray", interpolation="nearest")
        ax.set_title((titles or {}).get(name, name), fontsize=9)
    fig.tight_layout()
    map_key(fig, "signed" if signed else "unsigned", pct)
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
        line, = ax.plot(x, y, **style(name, marker="o"), ms=3, label=name)
        if spread and name in spread:
            ax.fill_between(x, y - spread[name], y + spread[name], color=line.get_color(), alpha=0.2)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def layer_strips(images, maps, layers, *, titles=None, clip: float = 99.5, size: float = 0.85):
    """One row per image: the image, then its maps started at each layer (bottom to top).

    ``images`` (B, H, W, 3) in [0, 1]; ``maps`` (len(layers), B, 3, H, W) signed, each shown as
    RGB with 0 -> grey, scaled by its own ``clip`` percentile of |value| (so a few extreme pixels
    do not wash out the rest); ``titles``: one string per image (e.g. "true -> predicted").
    """
    plt = _plt()
    maps = np.asarray(maps, dtype=float)
    n_l, B = maps.shape[:2]
    fig, axes = plt.subplots(B, n_l + 1, figsize=(size * (n_l + 1), (size + 0.3) * B + 0.2), squeeze=False)
    for b in range(B):
        axes[b, 0].imshow(np.clip(np.asarray(images[b], dtype=float), 0, 1))
        axes[b, 0].set_title((titles or [""] * B)[b].replace(" -> ", " \u2192\n"), fontsize=8)
        for c in range(n_l):
            m = maps[c, b]
            v = np.percentile(np.abs(m), clip) or 1.0
            axes[b, c + 1].imshow(np.clip(m / (2 * v) + 0.5, 0, 1).transpose(1, 2, 0))
            if b == 0:
                axes[b, c + 1].set_title(f"l = {layers[c]}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(pad=0.2)
    map_key(fig, "rgb", clip, width=min(0.6, 2.4 / fig.get_size_inches()[0]))
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
            line, = ax.plot(layers, med, **style(name, marker="o"), ms=3, label=name)
            ax.fill_between(layers, q1, q3, color=line.get_color(), alpha=0.15)
        ax.set_xlabel("start layer l")
        ax.set_title((labels or {}).get(m, m), fontsize=9)
    axes[0, 0].legend(fontsize=8)
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
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ the chapters' figures
def map_table(raw, rows: dict, methods, labels=None, size: float = 1.35, pct: float = 99.5):
    """Table I of Zheng et al. as a grid: one row per entry of ``rows`` (``{row label: {method: map}}``, each
    map (3, H, W) or [1, 3, H, W]), one column per method, the photo ``raw`` (3, H, W) first
    (``raw`` may be a dict keyed like ``rows``). Maps are shown with :func:`rgb_map` at the ``pct`` percentile (99.5: a few large values of a sparse map do not hide the rest)."""
    plt = _plt()
    labels = labels or {}
    nr, nc = len(rows), 1 + len(methods)
    fig, axes = plt.subplots(nr, nc, figsize=(size * nc, size * nr + 0.3), squeeze=False)
    for i, (name, maps) in enumerate(rows.items()):
        ph = raw[name] if isinstance(raw, dict) else raw
        axes[i, 0].imshow(to_image(ph))
        axes[i, 0].set_ylabel(name, fontsize=8)
        for j, m in enumerate(methods, 1):
            R = _arr(maps[m])
            axes[i, j].imshow(rgb_map(R[0] if R.ndim == 4 else R, pct))
            if i == 0:
                axes[i, j].set_title(labels.get(m, m), fontsize=8)
        if i == 0:
            axes[i, 0].set_title("photo", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(pad=0.3)
    map_key(fig, "rgb", pct)
    return fig


def cascade_panels(results: dict, rules, labels=None, size=(3.3, 2.7)):
    """Fig 2a of Zheng et al.: one panel per network, alignment alpha(r_0^N, x) against the cascade level N,
    mean +- std over images per rule. ``results[name]`` is the dict returned by
    :mod:`nfr.experiments.cascade` (``levels`` and ``curves[rule]["mean" | "std"]``)."""
    plt = _plt()
    labels = labels or {}
    fig, axes = plt.subplots(1, len(results), figsize=(size[0] * len(results), size[1]), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items()):
        lv = np.asarray(res["levels"])
        for r in rules:
            m, s = np.asarray(res["curves"][r]["mean"]), np.asarray(res["curves"][r]["std"])
            line, = ax.plot(lv, m, **style(r, marker="o"), ms=2.5, lw=1, label=labels.get(r, r))
            ax.fill_between(lv, m - s, m + s, color=line.get_color(), alpha=0.15)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("substituted layers N")
        ax.set_ylim(-0.25, 1.02)
    axes[0, 0].set_ylabel(r"alignment $\alpha(r_0^N, x)$")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def weight_stats_panels(stats: dict, size=(4.2, 2.7)):
    """Fig 2b,c of Zheng et al.: per layer, (b) mean +- std of the pairwise cosine between neurons' weights
    and (c) the mean +- std of the neurons' weight norms divided by the layer's mean norm.
    ``stats[name]`` is a list of per-layer dicts of :func:`nfr.engine.weights.weight_stats`."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(2 * size[0], size[1]))
    for name, st in stats.items():  # mean as a line with markers, +- std as a band (no error-bar forest)
        idx = np.array([d["index"] for d in st], dtype=float)
        cm, cs = np.array([d["cos_mean"] for d in st]), np.array([d["cos_std"] for d in st])
        cv = np.array([d["norm_cv"] for d in st])
        for ax, m, s in ((axes[0], cm, cs), (axes[1], np.ones_like(cv), cv)):
            line, = ax.plot(idx, m, marker="o", ms=2.5, lw=1, label=name)
            ax.fill_between(idx, m - s, m + s, color=line.get_color(), alpha=0.15, lw=0)
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_ylabel("pairwise cosine (mean ± std)")
    axes[1].set_ylabel("norm / layer mean (1 ± CV)")
    for ax, t in zip(axes, ("(b) orthogonality", "(c) norm equality")):
        ax.set_xlabel("layer l")
        ax.set_title(t, fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def panel_curves(x, panels: dict, *, xlabel: str, ylabel: str, size=(3.3, 2.8), sharey=True):
    """One panel per key of ``panels`` ({title: {label: array [len(x), N]}}); mean line and 1-std band."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(size[0] * len(panels), size[1]),
                             squeeze=False, sharey=sharey)
    for ax, (title, lines) in zip(axes[0], panels.items()):
        for label, arr in lines.items():
            a = np.asarray(arr, dtype=float).reshape(len(x), -1)
            m, s = np.nanmean(a, 1), np.nanstd(a, 1)
            line, = ax.plot(x, m, **style(label, marker="o"), ms=3, label=label)
            ax.fill_between(x, m - s, m + s, color=line.get_color(), alpha=0.2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
    axes[0, 0].set_ylabel(ylabel)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def map_grid(rows: dict, *, size: float = 1.7):
    """A grid of images: ``rows`` = {row title: {column title: (H, W, 3) image or (3, H, W) signed map}}."""
    plt = _plt()
    ncols = max(len(r) for r in rows.values())
    fig, axes = plt.subplots(len(rows), ncols, figsize=(size * ncols, size * len(rows) + 0.2),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (rt, cols) in enumerate(rows.items()):
        for j, (ct, im) in enumerate(cols.items()):
            im = _arr(im)
            axes[i, j].imshow(rgb_map(im) if im.shape[0] == 3 and im.ndim == 3 else np.clip(im, 0, 1))
            axes[i, j].set_title(f"{rt}: {ct}" if j else f"{rt}\n{ct}", fontsize=8)
    fig.tight_layout()
    map_key(fig, "rgb")
    return fig


def rank_panels(spec_v: dict, spec_c: dict, LV: int, LC: int):
    """Fig (ch. 7): effective rank and minority-sign fraction along depth (:func:`nfr.spectrum.relevance_spectrum` outputs)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 2.9))
    for r, v in spec_v.items():
        axes[0].plot(range(LV + 1), v["erank"], **style(r, marker="o"), ms=3, label=r)
        axes[1].plot(range(LV + 1), v["mixed"], **style(r, marker="o"), ms=3, label=r)
    for r, v in spec_c.items():
        axes[2].plot(range(LC + 1), v["erank"], **style(r, marker="."), ms=3, label=r)
    for ax, t in zip(axes, ("VGG16 random: effective rank", "VGG16 random: fraction of minority signs",
                            "ResNet-56 trained: effective rank")):
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("layer l (0 = input)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def removal_bars(rem: dict, rules, k: int = 3):
    """Fig 5 of Zheng et al. as bars: original / random top k / removal top k per rule, one panel per setting
    (``rem`` = {setting: :func:`nfr.experiments.removal` result})."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(rem), figsize=(4.5 * len(rem), 2.9), sharey=True, squeeze=False)
    for ax, (name, rr) in zip(axes[0], rem.items()):
        xs = np.arange(len(rules))
        for i, (key, lab) in enumerate((("original", "original"), ("random", f"random top {k}"),
                                        ("removal", f"removal top {k}"))):
            st = [rr[key][r] if key == "original" else rr[key][str(k)][r] for r in rules]
            ax.bar(xs + (i - 1) * 0.27, [v["mean"] for v in st], 0.27, yerr=[v["std"] for v in st],
                   capsize=2, label=lab)
        ax.set_xticks(xs, [LABELS.get(r, r) for r in rules])
        ax.set_title(name, fontsize=9)
    axes[0, 0].set_ylabel(r"alignment $\alpha(r_0, x)$")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def activation_panels(act: dict):
    """Fig 6 of Zheng et al.: alignment of the max / min 10% starts and their cosine to the ordinary map, per
    setting and rule (``act`` = {setting: :func:`nfr.experiments.activations` result})."""
    plt = _plt()
    n = sum(len(a["curves"]) for a in act.values())
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.9), squeeze=False)
    names = {"max": "alpha max 10%", "min": "alpha min 10%"}
    j = 0
    for name, a in act.items():
        for r, c in a["curves"].items():
            ax = axes[0, j]
            for k, st in (("max", "-o"), ("min", "-s"), ("cos_to_ordinary_max", ":^"), ("cos_to_ordinary_min", ":v")):
                ax.plot(a["layers"], c[k]["mean"], st, ms=3,
                        label=names.get(k, k.replace("cos_to_ordinary_", "cos to ordinary, ")))
            ax.axhline(a["ordinary"][r]["mean"], color="k", lw=0.7, ls="--")
            ax.set_title(f"{name}: {r}", fontsize=8)
            ax.set_xlabel("start layer l")
            j += 1
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def sanity_panels(san: dict, labels: dict):
    """Sanity-check curves: SSIM and Spearman to the original map against the number of randomized top
    layers, per setting (``san`` = {setting: :func:`nfr.experiments.sanity` result})."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2 * len(san), figsize=(2.6 * 2 * len(san), 2.9), sharey=True, squeeze=False)
    for j, (name, sr) in enumerate(san.items()):
        for i, key in enumerate(("ssim", "spearman")):
            ax = axes[0, 2 * j + i]
            pos = np.arange(len(sr["steps"]))  # only the measured steps, equally spaced: no line
            for r, c in sr[key].items():       # suggests values between two steps that were never run
                ax.plot(pos, c["mean"], **{**style(r, marker="o"), "ls": ":"}, ms=3.5, lw=0.8, label=labels.get(r, r))
            ax.set_xticks(pos, [str(k) for k in sr["steps"]], fontsize=8)
            ax.set_title(f"{name}: {key}", fontsize=9)
            ax.set_xlabel("top k randomized (measured k)", fontsize=9)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ tables
class Table:
    """A table of numbers for a notebook: an HTML table in the rendered book (``_repr_html_``) and
    aligned plain text elsewhere (``str``). ``rows[name][col]`` is a number, a (mean, std) pair or a
    string; numbers are written with ``fmt`` (round them to what their spread supports)."""

    def __init__(self, rows: dict, cols, fmt: str = "{:.3f}", *, caption: str | None = None,
                 labels: dict | None = None):
        self.rows, self.cols, self.fmt, self.caption = rows, list(cols), fmt, caption
        self.labels = labels or {}

    def _cell(self, v) -> str:
        if isinstance(v, str):
            return v
        if isinstance(v, (tuple, list)) and len(v) == 2:
            return f"{self.fmt.format(v[0])} ± {self.fmt.format(v[1])}"
        return self.fmt.format(v)

    def _head(self, c) -> str:
        return str(self.labels.get(c, c))

    def __str__(self) -> str:
        cells = [[str(r)] + [self._cell(d[c]) for c in self.cols] for r, d in self.rows.items()]
        head = [""] + [self._head(c).replace("\n", " ") for c in self.cols]
        width = [max(len(row[k]) for row in cells + [head]) for k in range(len(head))]
        line = lambda row: "  ".join(v.ljust(w) if k == 0 else v.rjust(w)  # noqa: E731
                                     for k, (v, w) in enumerate(zip(row, width)))
        return "\n".join([line(head)] + [line(row) for row in cells])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        from html import escape
        cap = f"<caption>{escape(self.caption)}</caption>" if self.caption else ""
        head = "".join(f"<th>{escape(self._head(c))}</th>" for c in self.cols)
        body = "".join("<tr><th>" + escape(str(r)) + "</th>"
                       + "".join(f"<td>{escape(self._cell(d[c]))}</td>" for c in self.cols) + "</tr>"
                       for r, d in self.rows.items())
        return (f'<table class="nfr-table">{cap}<thead><tr><th></th>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table>")
