"""Experiments of the TR-GBP paper on TR-GBP's predictability and the visual comparison of methods.

* :func:`trgbp_sanity` (``python -m nfr trgbp-sanity``; Fig 5 of the TR-GBP paper and Figs 9, 10, claim T3):
  TR-GBP, its eq-9 map and GBP under cascading randomization from the classifier down (Adebayo
  et al. 2018), with the Spearman rank correlation and SSIM to the un-randomized map, the
  border/centre ratio and the centre's coefficient of variation per step, and the per-layer bias
  maps psi(R^l) of the first image.
* :func:`methods` (``python -m nfr methods``; Fig 4 of the TR-GBP paper): the maps of seven methods for the
  same images, with image-free statistics per map.
* :func:`pipeline_maps` / :func:`pipeline_figure` (Fig 1 of the TR-GBP paper): the parts of one TR-GBP map,
  drawn by the ``trgbp`` experiment as ``trgbp_pipeline.png``.

Conventions: every map is 2D (H, W) at the input size. TR-GBP's maps are signed (eq 9: R^0 plus the
upsampled bias maps; eq 10: minus the mean over the top classes); GBP's map for the sanity check
is the signed channel sum of the guided gradient, i.e. TR-GBP's input part R^0. The sanity
statistics compare |map| (Adebayo et al.'s absolute maps). The border band is the paper's 16 px at
224, scaled to the input size (:func:`nfr.predictable.ibd_border`).
"""
from __future__ import annotations

import numpy as np

from nfr.errors import NFRError

# nfr.experiments imports this module at its end (to register the experiments), so its helpers
# are imported inside the functions below.

__all__ = ["trgbp_sanity", "methods", "map_stats", "negative_share", "pipeline_maps", "pipeline_figure",
           "SANITY_MAPS", "FIG4_METHODS"]

SANITY_MAPS = ("trgbp", "eq9", "gbp")
MAP_LABELS = {"trgbp": "TR-GBP (eq 10)", "eq9": "eq 9 (no class mean)", "gbp": "GBP"}
SHORT = {"trgbp": "TR-GBP", "eq9": "eq 9", "gbp": "GBP"}
FIG4_METHODS = ("saliency", "gbp", "gig", "fullgrad", "gradcam", "cameras", "trgbp")
METHOD_LABELS = {"saliency": "Saliency", "gbp": "GBP", "ig": "IG", "gig": "GIG",
                 "fullgrad": "FullGrad", "gradcam": "GradCAM", "cameras": "CAMERAS",
                 "trgbp": "TR-GBP"}


def _torch():
    import torch
    return torch


def _np2(R) -> np.ndarray:
    return np.asarray(R.detach().cpu().double() if hasattr(R, "detach") else R, dtype=float)


def _signed(ax, m, title=None, pct: float = 100.0):
    """Show a 2D signed map with the book's signed-map scaling (:func:`nfr.plotting.rgb_map`:
    0 at the middle of the scale, R / (2 v) + 1/2 with v the ``pct`` percentile of |R|) and a
    diverging colour map (red positive, blue negative)."""
    from nfr.plotting import rgb_map
    a = _np2(m)
    ax.imshow(rgb_map(a[None], pct)[..., 0], cmap="RdBu_r", vmin=0, vmax=1,
              interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


# ============================================================================== statistics
def map_stats(R, ref, border: int) -> dict:
    """Sanity-check statistics of one 2D map ``R`` against the un-randomized map ``ref``.

    * ``spearman``: Spearman rank correlation of |R| with |ref| (:func:`nfr.metrics.spearman`);
    * ``ssim``: SSIM of |R| and |ref|, each min-max normalised to [0, 1], data range 1
      (:func:`nfr.metrics.ssim`, skimage's 7 x 7 window);
    * ``border_centre``: mean |R| in the border band of ``border`` pixels over mean |R| in the
      centre (:func:`nfr.metrics.border_centre_ratio`; < 1: weaker borders, claim T3);
    * ``centre_cv``: std / mean of |R| in the centre (:func:`nfr.predictable.centre_cv`; 0 for a
      uniform map).

    Values that are undefined (a constant map) are nan.
    """
    from nfr.metrics import normalize_map, ssim
    from nfr.predictable import sanity_stats
    a, r = _np2(R), _np2(ref)
    if a.ndim != 2 or a.shape != r.shape:
        raise NFRError(f"map_stats takes two 2D maps of equal shape, got {a.shape} and {r.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):
        sp, bc, cv = sanity_stats(a, r, border)
        ss = ssim(normalize_map(np.abs(r)), normalize_map(np.abs(a)), data_range=1.0)
    return dict(spearman=sp, ssim=ss, border_centre=bc, centre_cv=cv)


def negative_share(R) -> np.ndarray:
    """Share of a map's absolute mass that is negative, sum R^- / sum |R|, per map of a (B, H, W)
    stack (or one (H, W) map); nan for an all-zero map."""
    a = _np2(R)
    a = a[None] if a.ndim == 2 else a
    tot = np.abs(a).reshape(len(a), -1).sum(1)
    neg = np.maximum(-a, 0).reshape(len(a), -1).sum(1)
    return np.where(tot > 0, neg / np.where(tot > 0, tot, 1), np.nan)


def _pick(values, n: int) -> list:
    """At most ``n`` entries of ``values`` evenly spaced, first and last included."""
    values = list(values)
    if len(values) <= n:
        return values
    idx = np.unique(np.round(np.linspace(0, len(values) - 1, n)).astype(int))
    return [values[i] for i in idx]


def _cascade_step(model, x, target, top: int):
    """Eq-9 map R, TR-GBP map Rt (eq 10: R minus the mean of the eq-9 maps of the model's own top
    classes, as :func:`nfr.trgbp.cascade_maps`), GBP's signed channel sum G, and the input part and
    bias maps of :func:`nfr.trgbp.layer_maps`, for one batch."""
    from nfr.engine.attribute import attribute
    from nfr.trgbp import aggregate, layer_maps, trgbp_maps
    R0, maps, _ = layer_maps(model, x, target)
    R = aggregate(R0, maps)
    _, Rk, _ = trgbp_maps(model, x, top)
    G = attribute(model, x, target, rule="gbp").sum(1)
    return R, R - Rk.mean(1), G, R0, maps


def _psi(m, size):
    import torch.nn.functional as F
    return F.interpolate(m[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


# ============================================================================== Fig 5, Figs 9, 10
def trgbp_sanity(model="resnet50", weights="random", data="samples", n_images=4, size=None,
                 device="cpu", seed=0, target="pred", batch_size=8, rules=None, steps=None,
                 layers=None, bias="keep", top=5, out=None, progress=True,
            preprocess=None, download=False) -> dict:
    """Fig 5 of the TR-GBP paper and Figs 9, 10: TR-GBP (and GBP) under cascading randomization.

    Step k (``steps``, default 0..L; 0 is always added) gives the top k weight layers Gaussian
    He-scaled weights (:func:`nfr.randomize`, layer l always the same draw under ``seed``; biases
    ``bias``: "keep" the model's (trained) biases, as chapter 12, or "zero" them in the randomized
    layers), exactly as :func:`nfr.trgbp.cascade_maps`. Maps (``rules``, default all): "trgbp"
    (eq 10, minus the mean of the randomized model's own ``top`` classes), "eq9" (eq 9) and
    "gbp" (GBP's signed channel sum), all for the original target class. Per map and step,
    :func:`map_stats` against step 0: ``spearman``, ``ssim``, ``border_centre``, ``centre_cv``
    (curves over the steps: mean, std, per image). Claim T3 predicts that the fully randomized
    TR-GBP tends to a nearly uniform map (low centre CV) with weaker borders (ratio < 1).

    ``layer_maps`` (Figs 9, 10): for the first image, the upsampled bias maps psi(R^l) of the
    layers ``layers`` (default: up to 4 with spatial maps, spread from bottom to top) at the
    shown steps (up to 6, always 0 and L; L is computed for this image when not in ``steps``),
    with their Spearman to step 0 and border/centre ratio. Figures ``trgbp_sanity.png`` (curves
    and the first image's maps per step) and ``trgbp_layers.png`` (rows: TR-GBP, eq 9, the input
    part R^0 and psi(R^l) of the shown layers; columns: steps).
    """
    from tqdm.auto import tqdm

    from nfr.engine.weights import randomize
    from nfr.experiments import (_batches, _curve, _finish, _num_layers, _rules, _setup_kwargs,
                                 load_setup)
    from nfr.predictable import ibd_border
    torch = _torch()
    if bias not in ("keep", "zero"):
        raise NFRError(f"--bias must be 'keep' or 'zero', got {bias!r}")
    if int(top) < 1:
        raise NFRError(f"--top must be >= 1, got {top}")
    kinds = _rules(rules, SANITY_MAPS)
    s = load_setup(**_setup_kwargs(locals()))
    L = _num_layers(s.model)
    steps = sorted({0} | set(range(L + 1) if steps is None else (int(k) for k in steps)))
    if steps[0] < 0 or steps[-1] > L:
        raise NFRError(f"--steps must lie in 0..{L} (the model has L = {L} weight layers), got {steps}")
    size = int(s.config["size"])
    border = ibd_border(size)
    if 2 * border >= size:
        raise NFRError(f"--size {size} leaves no centre inside the {border}-px border; use a larger --size")
    keys = ("spearman", "ssim", "border_centre", "centre_cv")
    N = len(s.x)
    vals = {r: {q: np.full((len(steps), N), np.nan) for q in keys} for r in kinds}
    fig_steps = _pick(sorted(set(steps) | {L}), 6)
    base, first, layer_first = {}, {}, {}
    shown_layers = None

    def keep_first(k, R, Rt, G, R0, maps):
        first[k] = dict(trgbp=Rt[0].cpu(), eq9=R[0].cpu(), gbp=G[0].cpu())
        layer_first[k] = (R0[0].cpu(), {l: _psi(m[:1], (size, size))[0].cpu()
                                        for l, m in maps.items()})

    prev = [s.model, 0]

    def cascade(k):
        """The model with the top k layers random: the previous step's model with layers
        L-k+1..L-k_prev randomized too (layer l's draw depends only on (seed, l), so this is
        randomize(model, cascade_from_top=k) without redrawing the layers above)."""
        if k == 0:
            return s.model
        m = randomize(prev[0], "gaussian", seed, layers=list(range(L - k + 1, L - prev[1] + 1)),
                      bias=bias)
        prev[:] = [m, k]
        return m

    for j, k in enumerate(tqdm(steps, desc="trgbp-sanity (k)", disable=not progress, leave=False)):
        m = cascade(k)
        outs = {r: [] for r in kinds}
        for sl in _batches(s, batch_size, False, ""):
            R, Rt, G, R0, maps = _cascade_step(m, s.x[sl], s.target[sl], top)
            if shown_layers is None:
                shown_layers = _layers_to_show(maps, layers, L)
            for r, v in (("trgbp", Rt), ("eq9", R), ("gbp", G)):
                if r in outs:
                    outs[r].append(v.detach().cpu())
            if sl.start == 0 and k in fig_steps:
                keep_first(k, R, Rt, G, R0, maps)
        for r in kinds:
            mp = torch.cat(outs[r])
            if k == 0:
                base[r] = mp
            for i in range(N):
                st = map_stats(mp[i], base[r][i], border)
                for q in keys:
                    vals[r][q][j, i] = st[q]
    for k in fig_steps:
        if k not in first:  # the fully randomized network, for the layer figure only
            m = cascade(k)
            keep_first(k, *_cascade_step(m, s.x[:1], s.target[:1], top))
            del m
    lay = {l: {"spearman": [], "border_centre": []} for l in shown_layers}
    for l in shown_layers:
        for k in fig_steps:
            st = map_stats(layer_first[k][1][l], layer_first[0][1][l], border)
            lay[l]["spearman"].append(st["spearman"])
            lay[l]["border_centre"].append(st["border_centre"])
    res = dict(experiment="trgbp-sanity",
               config=dict(s.config, maps=kinds, L=L, bias=bias, top=int(top), border=border),
               steps=steps, curves={r: {q: _curve(vals[r][q]) for q in keys} for r in kinds},
               layer_maps=dict(image=0, steps=fig_steps, layers=shown_layers,
                               stats={l: d for l, d in lay.items()}),
               figures=[])
    figs = {"trgbp_sanity.png": _sanity_figure(s, res, vals, first, fig_steps, kinds),
            "trgbp_layers.png": _layers_figure(s, first, layer_first, fig_steps, shown_layers, L)}
    return _finish("trgbp-sanity", res, out, figs)


def _layers_to_show(maps: dict, layers, L: int) -> list[int]:
    if layers is not None:
        layers = [int(l) for l in layers]
        bad = [l for l in layers if l not in maps]
        if bad:
            raise NFRError(f"--layers {bad} out of range 1..{L}")
        return layers
    spatial = [l for l, m in sorted(maps.items()) if m.shape[-1] > 1 or m.shape[-2] > 1]
    return _pick(spatial or sorted(maps), 4)


def _sanity_figure(s, res, vals, first, fig_steps, kinds):
    from nfr.experiments import _img, _plt
    plt = _plt()
    ncol = max(4, len(fig_steps) + 1)
    fig = plt.figure(figsize=(1.7 * ncol, 2.6 + 1.6 * len(kinds)))
    gs = fig.add_gridspec(1 + len(kinds), ncol, height_ratios=[1.5] + [1] * len(kinds))
    ks = np.array(res["steps"])
    names = {"spearman": "Spearman |R| to k = 0", "ssim": "SSIM to k = 0",
             "border_centre": "border / centre |R|", "centre_cv": "centre CV of |R|"}
    cut = np.round(np.linspace(0, ncol, 5)).astype(int)
    for c, q in enumerate(names):
        ax = fig.add_subplot(gs[0, cut[c]:cut[c + 1]])
        for r in kinds:
            with np.errstate(all="ignore"):
                ax.plot(ks, np.nanmean(vals[r][q], 1), marker="o", ms=3, label=MAP_LABELS[r])
        if q == "border_centre":
            ax.axhline(1, color="grey", lw=0.6)
        ax.set_title(names[q], fontsize=8)
        ax.set_xlabel("top k layers randomized", fontsize=7)
        ax.tick_params(labelsize=6)
        if c == 0:
            ax.legend(fontsize=6)
    for i, r in enumerate(kinds):
        ax = fig.add_subplot(gs[1 + i, 0])
        ax.imshow(_img(s.raw[0]))
        ax.set_title(f"input, class {int(s.target[0])}" if i == 0 else MAP_LABELS[r], fontsize=7)
        ax.axis("off")
        for c, k in enumerate(fig_steps):
            _signed(fig.add_subplot(gs[1 + i, 1 + c]), first[k][r],
                    f"{SHORT[r]}, k = {k}")
    fig.tight_layout()
    return fig


def _layers_figure(s, first, layer_first, fig_steps, shown_layers, L):
    from nfr.experiments import _img, _plt
    plt = _plt()
    rows = [("TR-GBP (eq 10)", lambda k: first[k]["trgbp"]), ("eq 9: sum", lambda k: first[k]["eq9"]),
            ("R^0 (input)", lambda k: layer_first[k][0])]
    rows += [(f"psi(R^{l})", lambda k, l=l: layer_first[k][1][l]) for l in reversed(shown_layers)]
    fig, axes = plt.subplots(len(rows), len(fig_steps) + 1,
                             figsize=(1.5 * (len(fig_steps) + 1), 1.5 * len(rows) + 0.4), squeeze=False)
    for i, (name, get) in enumerate(rows):
        axes[i, 0].axis("off")
        if i == 0:
            axes[i, 0].imshow(_img(s.raw[0]))
            axes[i, 0].set_title("input", fontsize=7)
        axes[i, 0].text(0.5, -0.15 if i == 0 else 0.5, name, fontsize=7, ha="center",
                        va="top" if i == 0 else "center", transform=axes[i, 0].transAxes)
        for c, k in enumerate(fig_steps):
            title = ("original" if k == 0 else f"top {k} of {L} random") if i == 0 else None
            _signed(axes[i, c + 1], get(k), title)
    fig.tight_layout()
    return fig


# ============================================================================== Fig 1
def pipeline_maps(model, x, target=None, top: int = 5) -> dict:
    """The parts of the TR-GBP map of one image ``x`` (1, C, H, W) for class ``target`` (default:
    the predicted class), Fig 1 of the TR-GBP paper / eqs 9, 10:

    ``class``, ``input_part`` R^0 (H, W), ``bias_maps`` {l: psi(R^l) (H, W)} of every layer,
    ``eq9`` = R^0 + sum_l psi(R^l), ``classes`` (the top classes), ``top_mean`` (the mean of their
    eq-9 maps) and ``trgbp`` = eq9 - top_mean (eq 10), equal to :func:`nfr.trgbp.trgbp`;
    ``bias_shapes`` {l: (h_l, w_l)} the sizes of the bias maps before upsampling.
    """
    from nfr.trgbp import layer_maps, trgbp_maps
    torch = _torch()
    if x.dim() != 4 or x.shape[0] != 1:
        raise NFRError(f"pipeline_maps takes one image (1, C, H, W), got {tuple(x.shape)}")
    with torch.no_grad():
        t = int(model(x).argmax(1)[0]) if target is None else int(target)
    R0, maps, _ = layer_maps(model, x, t)
    size = tuple(x.shape[-2:])
    psi = {l: _psi(m, size)[0] for l, m in maps.items()}
    eq9 = R0[0] + sum(psi.values()) if psi else R0[0]
    classes, Rk, _ = trgbp_maps(model, x, top)
    mean = Rk[0].mean(0)
    return dict(cls=t, input_part=R0[0], bias_maps=psi, eq9=eq9, classes=classes[0].tolist(),
                top_mean=mean, trgbp=eq9 - mean,
                bias_shapes={l: tuple(m.shape[-2:]) for l, m in maps.items()})


def pipeline_figure(raw, parts: dict, n_layers: int = 4):
    """Fig 1 of the TR-GBP paper: input, R^0, psi(R^l) of ``n_layers`` layers (bottom to top), their sum over
    all layers (eq 9), the top-class mean and TR-GBP (eq 10), one panel each."""
    from nfr.experiments import _img, _plt
    plt = _plt()
    spatial = [l for l, hw in sorted(parts["bias_shapes"].items()) if hw[0] * hw[1] > 1] or \
        sorted(parts["bias_maps"])
    shown = _pick(spatial, n_layers)
    panels = [("R^0 = sum_c d^g f / dx", parts["input_part"])]
    panels += [(f"psi(R^{l})", parts["bias_maps"][l]) for l in shown]
    panels += [(f"eq 9: R^0 + sum over {len(parts['bias_maps'])} layers", parts["eq9"]),
               (f"mean of top {len(parts['classes'])} classes", parts["top_mean"]),
               (f"eq 10: TR-GBP, class {parts['cls']}", parts["trgbp"])]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(1.9 * (len(panels) + 1), 2.3))
    axes[0].imshow(_img(raw))
    axes[0].set_title("input", fontsize=7)
    axes[0].axis("off")
    for ax, (t, m) in zip(axes[1:], panels):
        _signed(ax, m, t)
    fig.tight_layout()
    return fig, shown


# ============================================================================== Fig 4
def _method_maps(method, model, x, target, layer, ig_steps):
    """(2D map (B, H, W), raw map with the input's shape or None) of one method, both explaining
    ``target``. The 2D maps follow :func:`nfr.baselines.attribute_2d`'s conventions (saliency:
    max_c |grad|; GBP, IG, GIG: sum_c |R_c|; the others 2D by construction)."""
    from nfr import baselines as B
    from nfr.engine.attribute import attribute
    if method == "saliency":
        raw = B._grad(model, x, target)
        return raw.abs().amax(1), raw
    if method == "gbp":
        raw = attribute(model, x, target, rule="gbp")
        return raw.abs().sum(1), raw
    if method == "gig":
        raw = B.guided_ig(model, x, target, steps=ig_steps, reduce=False)
        return raw.abs().sum(1), raw
    if method == "ig":
        from captum.attr import IntegratedGradients
        raw = IntegratedGradients(model).attribute(
            x, baselines=_torch().zeros_like(x), target=B._targets(target, x.shape[0]).tolist(),
            n_steps=ig_steps).detach()
        return raw.abs().sum(1), raw
    return B.attribute_2d(method, model, x, target, layer=layer), None


def methods(model="resnet50", weights="random", data="samples", n_images=4, size=None,
            device="cpu", seed=0, target="pred", batch_size=4, rules=None, cam_layer=None,
            ig_steps=32, out=None, progress=True,
            preprocess=None, download=False) -> dict:
    """Fig 4 of the TR-GBP paper: the maps of seven methods (``rules``, default saliency, GBP, Guided IG,
    FullGrad, GradCAM, CAMERAS, TR-GBP; IG on request) for the predicted class of each image.

    GradCAM and CAMERAS read the module ``cam_layer`` (default :func:`nfr.baselines.cam_layer`,
    the last feature block);
    IG and GIG take ``ig_steps`` steps (zero baseline). Per method and image, image-free
    statistics of the 2D map (:func:`_method_maps`'s conventions): ``ibd`` (the share of the
    positive energy in the 16-px border band, eq 12 of the TR-GBP paper), ``border_centre`` (mean |R| on
    the border over the centre), ``negative_share`` (:func:`negative_share`, sum R^- / sum |R|;
    0 for the methods whose maps are non-negative by construction) and ``alignment`` (input alignment
    alpha(R, x) = <R, x> / (||R|| ||x||) of the raw map where it has the input's shape, i.e.
    saliency's plain gradient, GBP, IG, GIG; null for the 2D-only methods). Figure
    ``methods.png``: rows images (up to 8), columns methods, each map on the book's signed scale.
    """
    import nfr
    from nfr.baselines import METHODS
    from nfr.experiments import (_batches, _finish, _img, _plt, _rules, _setup_kwargs, _stats,
                                 load_setup)
    from nfr.metrics import border_centre_ratio
    from nfr.predictable import ibd, ibd_border
    if target != "pred":
        raise NFRError("the methods figure explains the predicted class: use --target pred")
    if int(ig_steps) < 1:
        raise NFRError(f"--ig-steps must be >= 1, got {ig_steps}")
    meths = _rules(rules, FIG4_METHODS, METHODS)
    s = load_setup(**_setup_kwargs(locals()))
    from nfr.baselines import cam_layer as _default_cam_layer
    layer = cam_layer or _default_cam_layer(s.model)
    if any(m in ("gradcam", "cameras") for m in meths):
        names = dict(s.model.named_modules())
        if layer not in names:
            raise NFRError(f"--cam-layer {layer!r} is not a module of {model}; give one of its "
                           f"feature modules, e.g. {', '.join(list(names)[1:6])}")
    size = int(s.config["size"])
    border = ibd_border(size)
    keys = ("ibd", "border_centre", "negative_share", "alignment")
    acc = {m: {k: [] for k in keys} for m in meths}
    show = {m: [] for m in meths}
    n_show = min(8, len(s.x))
    from tqdm.auto import tqdm
    for sl in _batches(s, batch_size, progress, "methods"):
        xb, tb = s.x[sl], s.target[sl]
        for m in tqdm(meths, desc="methods", disable=not progress, leave=False):
            R2, raw = _method_maps(m, s.model, xb, tb, layer, int(ig_steps))
            a = _np2(R2)
            acc[m]["ibd"] += ibd(a, border).tolist()
            with np.errstate(invalid="ignore", divide="ignore"):
                acc[m]["border_centre"] += [border_centre_ratio(u, border) for u in a]
            acc[m]["negative_share"] += negative_share(a).tolist()
            acc[m]["alignment"] += ([float("nan")] * len(a) if raw is None else
                                    nfr.alignment(raw, xb).cpu().tolist())
            if sl.start < n_show:
                show[m] += list(a[:n_show - sl.start])
    stats = {m: {k: (None if k == "alignment" and all(v != v for v in acc[m][k])
                     else _stats(acc[m][k])) for k in keys} for m in meths}
    res = dict(experiment="methods",
               config=dict(s.config, methods=meths, cam_layer=layer, ig_steps=int(ig_steps),
                           border=border),
               stats=stats, figures=[])
    plt = _plt()
    fig, axes = plt.subplots(n_show, len(meths) + 1, figsize=(1.5 * (len(meths) + 1), 1.55 * n_show + 0.2),
                             squeeze=False)
    lab = s.config.get("labels")
    for i in range(n_show):
        axes[i, 0].imshow(_img(s.raw[i]))
        axes[i, 0].axis("off")
        t = f"pred {int(s.target[i])}" + ("" if lab is None else f" (label {lab[i]})")
        axes[i, 0].set_title(t, fontsize=6)
        for j, m in enumerate(meths):
            _signed(axes[i, j + 1], show[m][i], METHOD_LABELS.get(m, m) if i == 0 else None)
    fig.tight_layout()
    return _finish("methods", res, out, {"methods.png": fig})

