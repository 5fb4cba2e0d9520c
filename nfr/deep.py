"""Helpers of the deep-network chapters (Table I of Zheng et al. and Fig 2): maps of every Table I method
with and without the bottom process, pairwise similarity of maps, where a map puts its energy
(image edges, the centre of the photo), and the numerical criteria of cascade alignment.

Conventions: maps are torch tensors or NumPy arrays shaped like the input batch ``[N, C, H, W]``;
photos ``raw`` are in [0, 1]. A 2D "energy" map is sum_c |R_c| (:func:`nfr.metrics.to_2d`).
"""
from __future__ import annotations

import numpy as np

from nfr.errors import NFRError
from nfr import plotting
from nfr.metrics import energy_in_box, normalize_map, spearman, ssim, to_2d
from nfr.engine import attribute as engine
from nfr.plotting import to_image

__all__ = ["TABLE1_METHODS", "table1_maps", "map_cosine", "similarity", "group_similarity", "edge_mask", "edge_fraction",
           "centre_fraction", "location_profile", "cascade_trend", "activation_dominance",
           "table_text", "rgb_map", "plot_table1", "plot_cascade", "plot_weight_stats"]

TABLE1_METHODS = ("grad", "grad_x_input", "gbp", "rectgrad", "zplus", "dtd", "activation")


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def table1_maps(model, x, target, methods=TABLE1_METHODS, *, layer=None, low=None, high=None):
    """Every method's map with ("B") and without ("w/o B") the bottom process (Table I of Zheng et al.).

    Returns ``{method: {"B": R, "w/o B": r}}`` (CPU tensors shaped like ``x``). The map w/o B is
    ``engine.attribute(..., bottom=False)``: r_0 for grad, grad_x_input, gbp, rectgrad and
    activation, c_0 for zplus and alphabeta, and for dtd c_1 passed through layer 1 by the raw
    gradient. The map with B is the method's ordinary output, the engine's own
    :func:`nfr.engine.attribute.bottom_process` applied to the map w/o B (x * c_0 for zplus and
    alphabeta, relu(x * r_0) for rectgrad, ...); dtd's bottom process is the z^B rule at layer 1
    (box [``low``, ``high``]), the one method that needs a second backward pass. ``layer`` is the
    start layer of ``activation`` (1..L).
    """
    out = {}
    for m in methods:
        kw = {}
        if m == "activation":
            if layer is None:
                raise NFRError("table1_maps: method 'activation' needs layer= (1..L)")
            kw["layer"] = int(layer)
        if m == "dtd":
            kw.update(low=low, high=high)
        r0 = engine.attribute(model, x, target, m, bottom=False, **kw)
        if m == "dtd":
            R = engine.attribute(model, x, target, m, bottom=True, **kw)
        else:
            R = engine.bottom_process(m, x, r0)
        out[m] = {"B": R.detach().cpu(), "w/o B": r0.detach().cpu()}
    return out


def map_cosine(a, b) -> np.ndarray:
    """Cosine <a_i, b_i> / (||a_i|| ||b_i||) per sample i over all non-batch axes (0 if a norm is 0).

    With b = x this is the input alignment alpha of Definition 1 (``nfr.alignment``), in float64.
    """
    A, B = _np(a), _np(b)
    if A.shape != B.shape:
        raise NFRError(f"map_cosine: shapes differ, {A.shape} and {B.shape}")
    A, B = A.reshape(len(A), -1), B.reshape(len(B), -1)
    den = np.linalg.norm(A, axis=1) * np.linalg.norm(B, axis=1)
    num = (A * B).sum(1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _ssim_batch(a, b) -> np.ndarray:
    """SSIM per sample of |maps| reduced to 2D and min-max normalised (data_range 1)."""
    A, B = _np(a), _np(b)
    return np.array([ssim(normalize_map(to_2d(p)), normalize_map(to_2d(q)), data_range=1.0)
                     for p, q in zip(A, B)])


def similarity(maps: dict, names=None) -> dict:
    """Pairwise similarity of maps of the same images: ``{"names", "cosine", "ssim"}``.

    ``maps[name]`` is an ``[N, C, H, W]`` batch. ``cosine[i, j]`` is the mean over the N images of
    the signed cosine between map i and map j (all channels); ``ssim[i, j]`` the mean SSIM of the
    2D energy maps sum_c |R_c|, each min-max normalised to [0, 1] (``data_range=1``; the
    convention of the sanity checks, Adebayo et al. 2018). Both are k x k symmetric NumPy arrays
    with ones on the diagonal; ``per_image`` holds the ``[k, k, N]`` arrays.
    """
    names = list(maps) if names is None else list(names)
    k = len(names)
    if k < 2:
        raise NFRError("similarity needs at least two maps")
    n = len(_np(maps[names[0]]))
    cos, ss = np.ones((k, k, n)), np.ones((k, k, n))
    for i in range(k):
        for j in range(i + 1, k):
            cos[i, j] = cos[j, i] = map_cosine(maps[names[i]], maps[names[j]])
            ss[i, j] = ss[j, i] = _ssim_batch(maps[names[i]], maps[names[j]])
    return dict(names=names, cosine=cos.mean(2), ssim=ss.mean(2),
                per_image=dict(cosine=cos, ssim=ss))


def group_similarity(sim: dict, group, control: str = "grad") -> dict:
    """Mean similarity within a group of maps and between a control map and the group.

    ``sim`` is the result of :func:`similarity`. For each key "cosine" and "ssim" returns
    ``(within, control)``: the mean of sim[key][a, b] over the pairs a < b of ``group``, and the
    mean of sim[key][control, a] over a in ``group``.
    """
    idx = {n: i for i, n in enumerate(sim["names"])}
    group = list(group)
    if len(group) < 2 or any(g not in idx for g in group + [control]):
        raise NFRError(f"group {group} and control {control!r} must be among {sim['names']} (>= 2 maps)")
    pairs = [(idx[a], idx[b]) for i, a in enumerate(group) for b in group[i + 1:]]
    out = {}
    for key in ("cosine", "ssim"):
        M = sim[key]
        out[key] = (float(np.mean([M[i, j] for i, j in pairs])),
                    float(np.mean([M[idx[control], idx[a]] for a in group])))
    return out


def edge_mask(raw, q: float = 0.9) -> np.ndarray:
    """Edge pixels of photos: the top (1 - q) of the Sobel gradient magnitude of each photo.

    ``raw``: ``[N, 3, H, W]`` (or one ``[3, H, W]``) in [0, 1]. Grey = 0.299 R + 0.587 G + 0.114 B;
    g = sqrt(S_y(grey)^2 + S_x(grey)^2) with scipy's Sobel filters (reflect borders); the mask is
    g >= the q-quantile of g over the photo (q = 0.9: the top decile). Returns bool ``[N, H, W]``.
    """
    from scipy import ndimage
    a = _np(raw)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[1] != 3:
        raise NFRError(f"edge_mask expects RGB photos [N, 3, H, W], got shape {a.shape}")
    if not 0.0 < q < 1.0:
        raise NFRError(f"q must lie in (0, 1), got {q}")
    grey = 0.299 * a[:, 0] + 0.587 * a[:, 1] + 0.114 * a[:, 2]
    g = np.hypot(ndimage.sobel(grey, axis=1), ndimage.sobel(grey, axis=2))
    thr = np.quantile(g.reshape(len(g), -1), q, axis=1)
    return g >= thr[:, None, None]


def edge_fraction(R, mask) -> np.ndarray:
    """Share of each map's energy on the edge pixels: sum_{mask} E / sum E, E = sum_c |R_c|.

    ``R`` ``[N, C, H, W]``, ``mask`` bool ``[N, H, W]`` (:func:`edge_mask`). A map that spreads
    its energy evenly gets the mask's area share (0.1 for the top decile); nan for a zero map.
    """
    a, m = _np(R), np.asarray(mask, dtype=bool)
    if a.shape[0] != m.shape[0] or a.shape[2:] != m.shape[1:]:
        raise NFRError(f"edge_fraction: maps {a.shape} and mask {m.shape} do not match")
    e = np.abs(a).sum(1)
    tot = e.reshape(len(e), -1).sum(1)
    on = (e * m).reshape(len(e), -1).sum(1)
    return np.where(tot > 0, on / np.where(tot > 0, tot, 1.0), np.nan)


def centre_fraction(R, frac: float = 0.5) -> np.ndarray:
    """Share of each map's energy (sum_c |R_c|) in the central box of side ``frac`` x (H, W).

    The box is rows y1 = round((1 - frac) H / 2) .. y1 + round(frac H), columns likewise
    (``frac = 0.5``: a quarter of the area, so an even map gets about 0.25). Uses
    :func:`nfr.metrics.energy_in_box` with ``positive=False``, ``reduce="abs_sum"``.
    """
    a = _np(R)
    if not 0.0 < frac < 1.0:
        raise NFRError(f"frac must lie in (0, 1), got {frac}")
    H, W = a.shape[-2:]
    y1, x1 = int(round((1 - frac) * H / 2)), int(round((1 - frac) * W / 2))
    box = (y1, y1 + int(round(frac * H)), x1, x1 + int(round(frac * W)))
    return np.array([energy_in_box(r, box, positive=False, reduce="abs_sum") for r in a])


def location_profile(R, raw, q: float = 0.9, frac: float = 0.5) -> dict:
    """Where maps put their energy, as enrichment over an even spread (1 = no preference).

    ``edges``: :func:`edge_fraction` on :func:`edge_mask` (``q``) divided by the mask's area share;
    ``centre``: :func:`centre_fraction` divided by the box's area share. Per image (NumPy arrays).
    """
    m = edge_mask(raw, q)
    a = _np(R)
    H, W = a.shape[-2:]
    y, x = int(round(frac * H)), int(round(frac * W))
    return dict(edges=edge_fraction(R, m) / m.reshape(len(m), -1).mean(1),
                centre=centre_fraction(R, frac) / (y * x / (H * W)))


def cascade_trend(mean_curve) -> dict:
    """Trend of a cascade curve alpha(N), N = 0..L (mean over images, Fig 2a of Zheng et al.).

    ``spearman``: rank correlation of alpha with N (:func:`nfr.metrics.spearman`; ties averaged);
    ``rise``: alpha(L) - alpha(0); ``max_drop``: the largest decrease alpha(N-1) - alpha(N) from
    one level to the next (<= 0 when the curve never falls).
    """
    c = np.asarray(mean_curve, dtype=np.float64)
    if c.ndim != 1 or c.size < 2:
        raise NFRError(f"cascade_trend expects a 1D curve with >= 2 levels, got shape {c.shape}")
    return dict(spearman=spearman(np.arange(c.size), c), rise=float(c[-1] - c[0]),
                max_drop=float((c[:-1] - c[1:]).max()))


def activation_dominance(act_curve, rule_curve, levels=None) -> float:
    """Share of levels N at which Activation's mean alignment is >= the rule's (Fig 2a of Zheng et al.).

    Default ``levels``: 1..L-1 -- level 0 is the same plain gradient for both, and Activation's
    level L starts from A_0 = x, whose alignment is 1 by construction.
    """
    a, r = np.asarray(act_curve, dtype=np.float64), np.asarray(rule_curve, dtype=np.float64)
    if a.shape != r.shape or a.ndim != 1:
        raise NFRError(f"curves must be 1D of equal length, got {a.shape} and {r.shape}")
    lv = np.arange(1, a.size - 1) if levels is None else np.asarray(levels, dtype=int)
    if lv.size == 0:
        raise NFRError("no level to compare")
    return float(np.mean(a[lv] >= r[lv]))


# ------------------------------------------------------------------------------------ display
def table_text(rows: dict, cols, fmt="{:.3f}", width: int = 14) -> str:
    """A plain-text table: ``rows[name][col]`` is a number, a (mean, std) pair or a string."""
    def cell(v):
        if isinstance(v, str):
            return v
        if isinstance(v, (tuple, list)) and len(v) == 2:
            return f"{fmt.format(v[0])} ± {fmt.format(v[1])}"
        return fmt.format(v)
    first = max([len(str(r)) for r in rows] + [4]) + 1
    lines = [" " * first + "".join(f"{str(c):>{width}}" for c in cols)]
    for r, d in rows.items():
        lines.append(f"{str(r):<{first}}" + "".join(f"{cell(d[c]):>{width}}" for c in cols))
    return "\n".join(lines)


def rgb_map(R, pct: float = 99.5) -> np.ndarray:
    """:func:`nfr.plotting.rgb_map` scaled by the 99.5th percentile of |R| by default."""
    return plotting.rgb_map(R, pct)


def plot_table1(raw, rows: dict, methods, labels=None, size: float = 1.35, pct: float = 99.5):
    """Table I of Zheng et al. as a grid: one row per entry of ``rows`` (``{row label: {method: map}}``, each
    map (3, H, W) or [1, 3, H, W]), one column per method, the photo ``raw`` (3, H, W) first
    (``raw`` may be a dict keyed like ``rows``). Maps are shown with :func:`rgb_map` (``pct``)."""
    import matplotlib.pyplot as plt

    labels = labels or {}
    nr, nc = len(rows), 1 + len(methods)
    fig, axes = plt.subplots(nr, nc, figsize=(size * nc, size * nr + 0.3), squeeze=False)
    for i, (name, maps) in enumerate(rows.items()):
        ph = raw[name] if isinstance(raw, dict) else raw
        axes[i, 0].imshow(to_image(ph))
        axes[i, 0].set_ylabel(name, fontsize=7)
        for j, m in enumerate(methods, 1):
            R = maps[m]
            axes[i, j].imshow(rgb_map(R[0] if R.dim() == 4 else R, pct))
            if i == 0:
                axes[i, j].set_title(labels.get(m, m), fontsize=8)
        if i == 0:
            axes[i, 0].set_title("photo", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(pad=0.3)
    return fig


def plot_cascade(results: dict, rules, labels=None, size=(3.3, 2.7)):
    """Fig 2a of Zheng et al.: one panel per network, alignment alpha(r_0^N, x) against the cascade level N,
    mean +- std over images per rule. ``results[name]`` is the dict returned by
    :mod:`nfr.experiments.cascade` (``levels`` and ``curves[rule]["mean" | "std"]``)."""
    import matplotlib.pyplot as plt
    labels = labels or {}
    fig, axes = plt.subplots(1, len(results), figsize=(size[0] * len(results), size[1]), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items()):
        lv = np.asarray(res["levels"])
        for r in rules:
            m, s = np.asarray(res["curves"][r]["mean"]), np.asarray(res["curves"][r]["std"])
            ax.plot(lv, m, marker="o", ms=2, lw=1, label=labels.get(r, r))
            ax.fill_between(lv, m - s, m + s, alpha=0.15)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("substituted layers N")
        ax.set_ylim(-0.25, 1.02)
    axes[0, 0].set_ylabel(r"alignment $\alpha(r_0^N, x)$")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_weight_stats(stats: dict, size=(4.2, 2.7)):
    """Fig 2b,c of Zheng et al.: per layer, (b) mean +- std of the pairwise cosine between neurons' weights
    and (c) the mean +- std of the neurons' weight norms divided by the layer's mean norm.
    ``stats[name]`` is a list of per-layer dicts of :func:`nfr.engine.weights.weight_stats`."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(2 * size[0], size[1]))
    for k, (name, st) in enumerate(stats.items()):
        idx = np.array([d["index"] for d in st], dtype=float) + 0.15 * (k - (len(stats) - 1) / 2)
        cm, cs = np.array([d["cos_mean"] for d in st]), np.array([d["cos_std"] for d in st])
        cv = np.array([d["norm_cv"] for d in st])
        axes[0].errorbar(idx, cm, yerr=cs, fmt="o", ms=2, lw=0.8, capsize=1.5, label=name)
        axes[1].errorbar(idx, np.ones_like(cv), yerr=cv, fmt="o", ms=2, lw=0.8, capsize=1.5, label=name)
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_ylabel("pairwise cosine (mean ± std)")
    axes[1].set_ylabel("norm / layer mean (1 ± CV)")
    for ax, t in zip(axes, ("(b) orthogonality", "(c) norm equality")):
        ax.set_xlabel("layer l")
        ax.set_title(t, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
