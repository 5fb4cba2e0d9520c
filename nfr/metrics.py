"""Map metrics for sanity checks and analyses: SSIM, Spearman, normalisation, effective rank, ...

Inputs may be NumPy arrays or torch tensors (detached and moved to the CPU); results are Python
floats or arrays/tensors of the input's kind, as each docstring says. Nothing here depends on the
rules; input alignment (Definition 1) lives with the engine (``nfr.alignment``).

Conventions (see the book's pitfalls page, pitfall 11):

* a *map* is 2D (H, W) or has a leading channel axis (C, H, W); :func:`to_2d` reduces a (C, H, W)
  map to 2D by summing absolute values over channels (``reduce="abs_sum"``, the usual convention
  of Adebayo et al. 2018 for visualising and comparing maps), or by a plain sum (``"sum"``);
* images are indexed ``[..., y, x]`` (row, column); a bounding box is ``(y1, y2, x1, x2)`` and
  selects ``R[..., y1:y2, x1:x2]`` (half-open, as Python slices);
* a border of width b is the set of pixels with row < b or row >= H - b or column < b or
  column >= W - b; the centre is the rest.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from nfr.errors import NFRError

__all__ = ["colour_fidelity", "to_2d", "ssim", "spearman", "normalize_map", "effective_rank", "border_centre_ratio",
           "energy_in_box", "rescale_to_input_range", "map_cosine", "similarity", "group_similarity",
           "edge_mask", "edge_fraction", "centre_fraction", "location_profile", "cascade_trend",
           "activation_dominance"]


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def to_2d(R, reduce: str | None = "abs_sum") -> np.ndarray:
    """A (H, W) float64 array from a (H, W) or (C, H, W) map.

    A (1, C, H, W) batch of one is accepted.

    Parameters
    ----------
    R : numpy.ndarray or torch.Tensor
        The map, (H, W), (C, H, W) or (1, C, H, W).
    reduce : str or None
        ``"abs_sum"`` (default): sum_c ``|R_c|``; ``"sum"``: sum_c R_c; ``None``: R must already
        be 2D.

    Returns
    -------
    numpy.ndarray
        The (H, W) float64 map (a 2D ``R`` is not reduced, whatever ``reduce``).

    Raises
    ------
    nfr.NFRError
        If ``R`` is not 2D or 3D (after dropping a batch of one), or if it is 3D and ``reduce``
        is None or not one of the values above.
    """
    a = _np(R)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 2:
        return a
    if a.ndim != 3 or reduce is None:
        raise NFRError(f"expected a (H, W) map{'' if reduce is None else ' or a (C, H, W) map'}, "
                       f"got shape {a.shape}")
    if reduce == "abs_sum":
        return np.abs(a).sum(0)
    if reduce == "sum":
        return a.sum(0)
    raise NFRError(f"reduce must be 'abs_sum', 'sum' or None, got {reduce!r}")


def ssim(a, b, data_range: float | None = None, reduce: str | None = "abs_sum", **kwargs) -> float:
    """Structural similarity of two maps (Wang et al. 2004) via ``skimage.metrics.structural_similarity``.

    Both maps are reduced to 2D with :func:`to_2d` (``reduce``). With local means mu, variances
    sigma^2 and covariance sigma_ab over 7 x 7 windows (skimage's defaults: uniform window,
    sample covariance, K1 = 0.01, K2 = 0.03, borders of 3 pixels excluded),

        SSIM = mean over windows of (2 mu_a mu_b + C1)(2 sigma_ab + C2)
                                     / ((mu_a^2 + mu_b^2 + C1)(sigma_a^2 + sigma_b^2 + C2)),

    C1 = (K1 D)^2, C2 = (K2 D)^2, D = ``data_range``, which is always passed explicitly to
    skimage: by default the joint range max(a, b) - min(a, b) of the two 2D maps (1.0 if both are
    constant). For sanity checks normalise both maps first (:func:`normalize_map`) and pass
    ``data_range=1``.

    Parameters
    ----------
    a, b : numpy.ndarray or torch.Tensor
        The two maps, (H, W) or (C, H, W).
    data_range : float, optional
        D; by default the joint range of the two 2D maps (1.0 if both are constant).
    reduce : str or None
        The reduction of :func:`to_2d`. Default ``"abs_sum"``.
    **kwargs
        Extra arguments go to skimage (e.g. ``win_size``, ``gaussian_weights``).

    Returns
    -------
    float
        The SSIM.

    Raises
    ------
    nfr.NFRError
        If the two 2D maps have different shapes (or from :func:`to_2d`).
    """
    from skimage.metrics import structural_similarity
    x, y = to_2d(a, reduce), to_2d(b, reduce)
    if x.shape != y.shape:
        raise NFRError(f"ssim: maps have different shapes {x.shape} and {y.shape}")
    if data_range is None:
        data_range = float(max(x.max(), y.max()) - min(x.min(), y.min())) or 1.0
    return float(structural_similarity(x, y, data_range=float(data_range), **kwargs))


def _rank(v: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata
    return rankdata(v, method="average")


def spearman(a, b) -> float:
    """Spearman rank correlation of two maps, flattened: Pearson correlation of their ranks.

    Ties get their average rank; without ties this equals 1 - 6 sum d_i^2 / (n (n^2 - 1)),
    d_i the rank differences.

    Parameters
    ----------
    a, b : numpy.ndarray or torch.Tensor
        The two maps, of any shapes with the same number of elements.

    Returns
    -------
    float
        The rank correlation; nan if either map is constant.

    Raises
    ------
    nfr.NFRError
        If the maps have different numbers of elements.
    """
    x, y = _np(a).ravel(), _np(b).ravel()
    if x.shape != y.shape:
        raise NFRError(f"spearman: maps have different sizes {x.size} and {y.size}")
    rx, ry = _rank(x), _rank(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt(float((rx ** 2).sum() * (ry ** 2).sum()))
    return float((rx * ry).sum() / den) if den > 0 else float("nan")


def normalize_map(R, abs: bool = False):  # noqa: A002 - the conventional name
    """Min-max normalisation to [0, 1]: (R - min R) / (max R - min R), over all elements of R.

    A constant map gives all zeros.

    Parameters
    ----------
    R : numpy.ndarray or torch.Tensor
        The map, of any shape.
    abs : bool
        True: use ``|R|`` (sign-insensitive comparison, Adebayo et al. 2018's "absolute" maps).
        Default False.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        The normalised map, of the input's kind (NumPy array, float64, or torch tensor) and shape.
    """
    if hasattr(R, "detach"):
        t = R.abs() if abs else R
        lo, hi = t.min(), t.max()
        return (t - lo) / (hi - lo) if float(hi - lo) > 0 else t * 0
    t = np.abs(_np(R)) if abs else _np(R)
    rng = t.max() - t.min()
    return (t - t.min()) / rng if rng > 0 else np.zeros_like(t)


def effective_rank(matrix, eps: float = 0.0) -> float:
    """Effective rank (Roy & Vetterli 2007): exp(H(p)), p_i = s_i / sum_j s_j, H(p) = -sum p_i log p_i.

    s are the singular values of ``matrix`` (2D; a stack of vectors as rows, e.g. attribution maps
    of several classes flattened, as in Sixt et al. 2020's rank-1 convergence argument). It is 1
    for a rank-1 matrix and n for n orthogonal rows of equal norm. Terms with p_i <= eps are
    dropped (0 log 0 = 0). A zero matrix has effective rank 0.

    Parameters
    ----------
    matrix : numpy.ndarray or torch.Tensor
        The 2D matrix.
    eps : float
        Terms with p_i <= eps are dropped. Default 0.0.

    Returns
    -------
    float
        The effective rank.

    Raises
    ------
    nfr.NFRError
        If ``matrix`` is not 2D.
    """
    m = _np(matrix)
    if m.ndim != 2:
        raise NFRError(f"effective_rank expects a 2D matrix, got shape {m.shape}")
    s = np.linalg.svd(m, compute_uv=False)
    if s.sum() <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > eps]
    return float(np.exp(-(p * np.log(p)).sum()))


def border_mask(h: int, w: int, border: int) -> np.ndarray:
    if border < 1 or 2 * border >= min(h, w):
        raise NFRError(f"border must be >= 1 and leave a centre: got {border} for a {h}x{w} map")
    mask = np.zeros((h, w), dtype=bool)
    mask[:border, :] = mask[-border:, :] = True
    mask[:, :border] = mask[:, -border:] = True
    return mask


def border_centre_ratio(R, border: int, reduce: str | None = "abs_sum") -> float:
    """Mean ``|R|`` on the border band of width ``border`` divided by mean ``|R|`` in the centre.

    R is reduced to 2D with :func:`to_2d`; border = rows/columns within ``border`` pixels of the
    edge (see module doc). 1 means no preference, < 1 a map concentrated in the centre (e.g. on
    the object), > 1 one that piles up at the edges (padding artefacts).

    Parameters
    ----------
    R : numpy.ndarray or torch.Tensor
        The map, (H, W) or (C, H, W).
    border : int
        The width of the border band in pixels.
    reduce : str or None
        The reduction of :func:`to_2d`. Default ``"abs_sum"``.

    Returns
    -------
    float
        The ratio; inf if the centre mean is 0 (or nan if the border mean is 0 too).

    Raises
    ------
    nfr.NFRError
        If ``border`` < 1 or leaves no centre (2 ``border`` >= min(H, W)), or from :func:`to_2d`.
    """
    a = np.abs(to_2d(R, reduce))
    m = border_mask(*a.shape, border)
    b, c = float(a[m].mean()), float(a[~m].mean())
    if c == 0:
        return float("nan") if b == 0 else float("inf")
    return b / c


def energy_in_box(R, box: tuple[int, int, int, int], positive: bool = True,
                  reduce: str | None = "sum") -> float:
    """Fraction of a map's energy inside a bounding box ``box = (y1, y2, x1, x2)``: R[y1:y2, x1:x2].

    Energy = R^+ = max(R, 0) (``positive=True``, the energy-based pointing game of Wang et al.
    2020) or ``|R|``; R is first reduced to 2D with :func:`to_2d` (plain channel sum by default, so
    signs survive). Note the order: rows (y) first, then columns (x) (see the book's pitfalls
    page, pitfall 11).

    Parameters
    ----------
    R : numpy.ndarray or torch.Tensor
        The map, (H, W) or (C, H, W).
    box : tuple of int
        ``(y1, y2, x1, x2)``, half-open.
    positive : bool
        True (default): energy R^+; False: ``|R|``.
    reduce : str or None
        The reduction of :func:`to_2d`. Default ``"sum"``.

    Returns
    -------
    float
        sum_in / sum_all (nan when the energy is 0 everywhere, e.g. for an all-zero map).

    Raises
    ------
    nfr.NFRError
        If the box is empty or not inside the map (0 <= y1 < y2 <= H, 0 <= x1 < x2 <= W).
    """
    a = to_2d(R, reduce)
    e = np.maximum(a, 0) if positive else np.abs(a)
    y1, y2, x1, x2 = (int(v) for v in box)
    if not (0 <= y1 < y2 <= a.shape[0] and 0 <= x1 < x2 <= a.shape[1]):
        raise NFRError(f"box (y1, y2, x1, x2) = {box} is empty or outside the {a.shape} map")
    tot = float(e.sum())
    return float(e[y1:y2, x1:x2].sum()) / tot if tot > 0 else float("nan")


def rescale_to_input_range(R, x):
    """The R~ of eq 20 of Zheng et al.: R mapped affinely onto the value range of the input x.

        R~ = (R - min R)(max x - min x) / (max R - min R) + min x.

    Min and max are taken per sample over all non-batch axes when R is 4D (N, C, H, W) -- x must
    then have the same batch size -- and over all elements otherwise. A constant R maps to min x.

    Parameters
    ----------
    R : numpy.ndarray or torch.Tensor
        The attribution.
    x : numpy.ndarray or torch.Tensor
        The input whose range R is mapped onto.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        R~, of ``R``'s kind (NumPy array, float64, or torch tensor) and shape.
    """
    if hasattr(R, "detach"):
        import torch
        xt = x if hasattr(x, "detach") else torch.as_tensor(x, dtype=R.dtype)
        if R.ndim == 4:
            n = R.shape[0]
            rmin, rmax = R.reshape(n, -1).amin(1), R.reshape(n, -1).amax(1)
            xmin, xmax = xt.reshape(n, -1).amin(1), xt.reshape(n, -1).amax(1)
            rmin, rmax, xmin, xmax = (v.reshape(-1, 1, 1, 1) for v in (rmin, rmax, xmin, xmax))
        else:
            rmin, rmax, xmin, xmax = R.min(), R.max(), xt.min(), xt.max()
        den = rmax - rmin
        scaled = torch.where(den > 0, (R - rmin) / torch.where(den > 0, den, torch.ones_like(den)),
                             torch.zeros_like(R))
        return scaled * (xmax - xmin) + xmin
    r, xa = _np(R), _np(x)
    if r.ndim == 4:
        n = r.shape[0]
        rmin = r.reshape(n, -1).min(1).reshape(-1, 1, 1, 1)
        rmax = r.reshape(n, -1).max(1).reshape(-1, 1, 1, 1)
        xmin = xa.reshape(n, -1).min(1).reshape(-1, 1, 1, 1)
        xmax = xa.reshape(n, -1).max(1).reshape(-1, 1, 1, 1)
    else:
        rmin, rmax, xmin, xmax = r.min(), r.max(), xa.min(), xa.max()
    den = rmax - rmin
    scaled = np.where(den > 0, (r - rmin) / np.where(den > 0, den, 1.0), 0.0)
    return scaled * (xmax - xmin) + xmin


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-sample cosine over all non-batch dims (0 where a norm is 0): the input alignment of
    :func:`nfr.engine.attribute.alignment`, in float64 NumPy."""
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    a = a / np.maximum(np.abs(a).max(1, keepdims=True), np.finfo(float).tiny)   # scale-free, no overflow
    b = b / np.maximum(np.abs(b).max(1, keepdims=True), np.finfo(float).tiny)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1.0), 0.0)


def colour_fidelity(R, x) -> dict:
    """Luminance and chroma alignment of maps ``R`` with inputs ``x`` ([N, 3, H, W]), per sample.

    Split every pixel's colour vector v in R^3 into its luminance part (the channel mean, times
    (1, 1, 1)) and its chroma part v - mean_c(v). Then ``luminance`` = alpha(mean_c R, mean_c x) and
    ``chroma`` = alpha(R - mean_c R, x - mean_c x), alpha the cosine of Definition 1 over all pixels.
    The full alignment is their norm-weighted combination; a map with the right shapes but the
    wrong colours keeps a high luminance and a low chroma alignment. The one colour measure of the
    book and of the ``distributions`` experiment.

    Parameters
    ----------
    R : numpy.ndarray or torch.Tensor
        The maps, [N, C, H, W] (C >= 2; 3 for RGB).
    x : numpy.ndarray or torch.Tensor
        The inputs, the same shape as ``R``.

    Returns
    -------
    dict
        ``luminance`` and ``chroma``: float64 NumPy arrays [N].

    Raises
    ------
    nfr.NFRError
        If ``R`` is not 4D with at least 2 channels or ``x`` has another shape.
    """
    R, x = _np(R), _np(x)
    if R.ndim != 4 or R.shape != x.shape or R.shape[1] < 2:
        raise NFRError(f"colour_fidelity needs R and x of the same shape [N, C>=2, H, W], got "
                       f"{R.shape} and {x.shape}")
    lr, lx = R.mean(1, keepdims=True), x.mean(1, keepdims=True)
    return dict(luminance=_cosines(lr, lx), chroma=_cosines(R - lr, x - lx))


# ------------------------------------------------------------------ similarity between maps
def map_cosine(a, b) -> np.ndarray:
    """Cosine <a_i, b_i> / (||a_i|| ||b_i||) per sample i over all non-batch axes (0 if a norm is 0).

    With b = x this is the input alignment alpha of Definition 1 (``nfr.alignment``), in float64
    (the computation of :func:`colour_fidelity`'s cosines).

    Parameters
    ----------
    a, b : numpy.ndarray or torch.Tensor
        Two batches of the same shape [N, ...].

    Returns
    -------
    numpy.ndarray
        The cosines, float64 [N].

    Raises
    ------
    nfr.NFRError
        If the shapes differ.
    """
    A, B = _np(a), _np(b)
    if A.shape != B.shape:
        raise NFRError(f"map_cosine: shapes differ, {A.shape} and {B.shape}")
    return _cosines(A, B)


def _ssim_batch(a, b) -> np.ndarray:
    """SSIM per sample of |maps| reduced to 2D and min-max normalised (data_range 1)."""
    A, B = _np(a), _np(b)
    return np.array([ssim(normalize_map(to_2d(p)), normalize_map(to_2d(q)), data_range=1.0)
                     for p, q in zip(A, B)])


def similarity(maps: dict, names=None) -> dict:
    """Pairwise similarity of maps of the same images: ``{"names", "cosine", "ssim"}``.

    ``cosine[i, j]`` is the mean over the N images of the signed cosine between map i and map j
    (all channels); ``ssim[i, j]`` the mean SSIM of the 2D energy maps ``sum_c |R_c|``, each
    min-max normalised to [0, 1] (``data_range=1``; the convention of the sanity checks, Adebayo
    et al. 2018).

    Parameters
    ----------
    maps : dict
        Name -> an ``[N, C, H, W]`` batch (NumPy array or torch tensor), the same images for all.
    names : list of str, optional
        The k >= 2 maps to compare, in this order; all keys of ``maps`` by default.

    Returns
    -------
    dict
        ``names`` (list of str), ``cosine`` and ``ssim`` (k x k symmetric NumPy arrays with ones
        on the diagonal) and ``per_image`` (``{"cosine", "ssim"}``: the ``[k, k, N]`` arrays).

    Raises
    ------
    nfr.NFRError
        If fewer than two maps are named.
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

    Parameters
    ----------
    sim : dict
        The result of :func:`similarity`.
    group : iterable of str
        The names of the group's maps (at least two).
    control : str
        The name of the control map. Default "grad".

    Returns
    -------
    dict
        For each key "cosine" and "ssim", ``(within, control)``: the mean of sim[key][a, b] over
        the pairs a < b of ``group``, and the mean of sim[key][control, a] over a in ``group``
        (floats).

    Raises
    ------
    nfr.NFRError
        If ``group`` has fewer than two names or a name of ``group`` or ``control`` is not among
        ``sim["names"]``.
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


# ------------------------------------------------------------------ where a map puts its energy
def edge_mask(raw, q: float = 0.9) -> np.ndarray:
    """Edge pixels of photos: the top (1 - q) of the Sobel gradient magnitude of each photo.

    Grey = 0.299 R + 0.587 G + 0.114 B; g = sqrt(S_y(grey)^2 + S_x(grey)^2) with scipy's Sobel
    filters (reflect borders); the mask is g >= the q-quantile of g over the photo.

    Parameters
    ----------
    raw : numpy.ndarray or torch.Tensor
        The photos, ``[N, 3, H, W]`` (or one ``[3, H, W]``) in [0, 1].
    q : float
        The quantile, in (0, 1). Default 0.9 (the top decile).

    Returns
    -------
    numpy.ndarray
        The bool mask ``[N, H, W]`` (N = 1 for one photo).

    Raises
    ------
    nfr.NFRError
        If ``raw`` is not ``[N, 3, H, W]`` or ``[3, H, W]``, or ``q`` is not in (0, 1).
    """
    a = _np(raw)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[1] != 3:
        raise NFRError(f"edge_mask expects RGB photos [N, 3, H, W], got shape {a.shape}")
    if not 0.0 < q < 1.0:
        raise NFRError(f"q must lie in (0, 1), got {q}")
    grey = 0.299 * a[:, 0] + 0.587 * a[:, 1] + 0.114 * a[:, 2]
    # one photo at a time: ndimage.sobel smooths along every axis but the derivative's, so on the
    # [N, H, W] stack it would mix each photo with its neighbours in the batch
    g = np.stack([np.hypot(ndimage.sobel(p, axis=0), ndimage.sobel(p, axis=1)) for p in grey])
    thr = np.quantile(g.reshape(len(g), -1), q, axis=1)
    return g >= thr[:, None, None]


def edge_fraction(R, mask) -> np.ndarray:
    """Share of each map's energy on the edge pixels: sum_{mask} E / sum E, E = ``sum_c |R_c|``.

    A map that spreads its energy evenly gets the mask's area share (0.1 for the top decile).

    Parameters
    ----------
    R : numpy.ndarray or torch.Tensor
        The maps, ``[N, C, H, W]``.
    mask : numpy.ndarray
        The bool edge mask ``[N, H, W]`` (:func:`edge_mask`).

    Returns
    -------
    numpy.ndarray
        The share per map, float64 [N]; nan for a zero map.

    Raises
    ------
    nfr.NFRError
        If the shapes of ``R`` and ``mask`` do not match.
    """
    a, m = _np(R), np.asarray(mask, dtype=bool)
    if a.shape[0] != m.shape[0] or a.shape[2:] != m.shape[1:]:
        raise NFRError(f"edge_fraction: maps {a.shape} and mask {m.shape} do not match")
    e = np.abs(a).sum(1)
    tot = e.reshape(len(e), -1).sum(1)
    on = (e * m).reshape(len(e), -1).sum(1)
    return np.where(tot > 0, on / np.where(tot > 0, tot, 1.0), np.nan)


def centre_fraction(R, frac: float = 0.5) -> np.ndarray:
    """Share of each map's energy (``sum_c |R_c|``) in the central box of side ``frac`` x (H, W).

    The box is rows y1 = round((1 - frac) H / 2) .. y1 + round(frac H), columns likewise
    (``frac = 0.5``: a quarter of the area, so an even map gets about 0.25). Uses
    :func:`nfr.metrics.energy_in_box` with ``positive=False``, ``reduce="abs_sum"``.

    Parameters
    ----------
    R : numpy.ndarray or torch.Tensor
        The maps, ``[N, C, H, W]`` (or ``[N, H, W]``).
    frac : float
        The box's side as a fraction of (H, W), in (0, 1). Default 0.5.

    Returns
    -------
    numpy.ndarray
        The share per map, float64 [N] (nan for a zero map).

    Raises
    ------
    nfr.NFRError
        If ``frac`` is not in (0, 1).
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

    Parameters
    ----------
    R : numpy.ndarray or torch.Tensor
        The maps, ``[N, C, H, W]``.
    raw : numpy.ndarray or torch.Tensor
        The photos, ``[N, 3, H, W]`` in [0, 1] (see :func:`edge_mask`).
    q : float
        The quantile of :func:`edge_mask`. Default 0.9.
    frac : float
        The box side of :func:`centre_fraction`. Default 0.5.

    Returns
    -------
    dict
        ``edges``: :func:`edge_fraction` on :func:`edge_mask` (``q``) divided by the mask's area
        share; ``centre``: :func:`centre_fraction` divided by the box's area share. Per image
        (NumPy arrays [N]).
    """
    m = edge_mask(raw, q)
    a = _np(R)
    H, W = a.shape[-2:]
    y, x = int(round(frac * H)), int(round(frac * W))
    return dict(edges=edge_fraction(R, m) / m.reshape(len(m), -1).mean(1),
                centre=centre_fraction(R, frac) / (y * x / (H * W)))


# ------------------------------------------------------------------ curves along the depth
def cascade_trend(mean_curve) -> dict:
    """Trend of a cascade curve alpha(N), N = 0..L (mean over images, Fig 2a of Zheng et al.).

    Parameters
    ----------
    mean_curve : array_like
        alpha(N) for N = 0..L, 1D with at least 2 levels.

    Returns
    -------
    dict
        ``spearman``: rank correlation of alpha with N (:func:`nfr.metrics.spearman`; ties
        averaged); ``rise``: alpha(L) - alpha(0); ``max_drop``: the largest decrease
        alpha(N-1) - alpha(N) from one level to the next (<= 0 when the curve never falls).
        All floats.

    Raises
    ------
    nfr.NFRError
        If the curve is not 1D or has fewer than 2 levels.
    """
    c = np.asarray(mean_curve, dtype=np.float64)
    if c.ndim != 1 or c.size < 2:
        raise NFRError(f"cascade_trend expects a 1D curve with >= 2 levels, got shape {c.shape}")
    return dict(spearman=spearman(np.arange(c.size), c), rise=float(c[-1] - c[0]),
                max_drop=float((c[:-1] - c[1:]).max()))


def activation_dominance(act_curve, rule_curve, levels=None) -> float:
    """Share of levels N at which Activation's mean alignment is >= the rule's (Fig 2a of Zheng et al.).

    Parameters
    ----------
    act_curve : array_like
        Activation's mean alignment per level N = 0..L, 1D.
    rule_curve : array_like
        The rule's, the same length.
    levels : array_like of int, optional
        The levels compared. Default 1..L-1 -- level 0 is the same plain gradient for both, and
        Activation's level L starts from A_0 = x, whose alignment is 1 by construction.

    Returns
    -------
    float
        The share of ``levels`` at which act_curve >= rule_curve.

    Raises
    ------
    nfr.NFRError
        If the curves are not 1D of equal length, or there is no level to compare.
    """
    a, r = np.asarray(act_curve, dtype=np.float64), np.asarray(rule_curve, dtype=np.float64)
    if a.shape != r.shape or a.ndim != 1:
        raise NFRError(f"curves must be 1D of equal length, got {a.shape} and {r.shape}")
    lv = np.arange(1, a.size - 1) if levels is None else np.asarray(levels, dtype=int)
    if lv.size == 0:
        raise NFRError("no level to compare")
    return float(np.mean(a[lv] >= r[lv]))
