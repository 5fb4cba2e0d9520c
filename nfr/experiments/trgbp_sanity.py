"""TR-GBP paper Fig 5 and Figs 9, 10: TR-GBP (and GBP) under cascading randomization (claim T3).

Step k (``steps``, default 0..L; 0 is always added) gives the top k weight layers Gaussian
He-scaled weights (:func:`nfr.randomize`, layer l always the same draw under ``seed``; biases
``bias``: "keep" the model's (trained) biases, as chapter 12, or "zero" them in the randomized
layers), exactly as :func:`nfr.trgbp.cascade_maps`. Maps (``rules``, default all): "trgbp" (eq 10,
minus the mean of the randomized model's own ``top`` classes), "eq9" (eq 9) and "gbp" (GBP's
signed channel sum), all for the original target class. Per map and step, :func:`map_stats`
against step 0: ``spearman``, ``ssim``, ``border_centre``, ``centre_cv`` (curves over the steps:
mean, std, per image). Claim T3 predicts that the fully randomized TR-GBP tends to a nearly
uniform map (low centre CV) with weaker borders (ratio < 1).

``layer_maps`` (Figs 9, 10): for the first image, the upsampled bias maps psi(R^l) of the layers
``layers`` (default: up to 4 with spatial maps, spread from bottom to top) at the shown steps (up
to 6, always 0 and L; L is computed for this image when not in ``steps``), with their Spearman to
step 0 and border/centre ratio. Figures ``trgbp_sanity.png`` (curves and the first image's maps
per step) and ``trgbp_layers.png`` (rows: TR-GBP, eq 9, the input part R^0 and psi(R^l) of the
shown layers; columns: steps).

Conventions: every map is 2D (H, W) at the input size; GBP's map is the signed channel sum of the
guided gradient, i.e. TR-GBP's input part R^0. The statistics compare |map| (Adebayo et al.'s
absolute maps). The border band is the paper's 16 px at 224, scaled to the input size
(:func:`nfr.predictable.ibd_border`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from nfr.engine.attribute import attribute
from nfr.engine.weights import randomize
from nfr.errors import NFRError
from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.metrics import normalize_map, ssim
from nfr.predictable import ibd_border, sanity_stats
from nfr.setup import load_setup
from nfr.trgbp import aggregate, layer_maps, trgbp_maps

SANITY_MAPS = ("trgbp", "eq9", "gbp")


MAP_LABELS = {"trgbp": "TR-GBP (eq 10)", "eq9": "eq 9 (no class mean)", "gbp": "GBP"}


SHORT = {"trgbp": "TR-GBP", "eq9": "eq 9", "gbp": "GBP"}


STAT_KEYS = ("spearman", "ssim", "border_centre", "centre_cv")


@dataclass
class Config(B.ImageConfig):
    rules: list[str] = option(list(SANITY_MAPS), "the maps compared: TR-GBP eq 10, its eq-9 sum, GBP",
                              choices=SANITY_MAPS, metavar="R1,R2")
    steps: list[int] | None = option(None, "numbers k of top layers randomized to evaluate "
                                     "(default 0..L; 0 is always added)", minimum=0, metavar="K1,K2")
    layers: list[int] | None = option(None, "layers l (1..L) whose bias maps psi(R^l) trgbp_layers.png "
                                      "shows (default: up to 4 spread from bottom to top)", minimum=1,
                                      metavar="L1,L2")
    bias: str = option("keep", "biases of the randomized layers: keep the model's or zero them",
                       choices=("keep", "zero"))
    top: int = option(5, "classes whose mean eq 10 subtracts", minimum=1)


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
    a, r = B.np2(R), B.np2(ref)
    if a.ndim != 2 or a.shape != r.shape:
        raise NFRError(f"map_stats takes two 2D maps of equal shape, got {a.shape} and {r.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):
        sp, bc, cv = sanity_stats(a, r, border)
        ss = ssim(normalize_map(np.abs(r)), normalize_map(np.abs(a)), data_range=1.0)
    return dict(spearman=sp, ssim=ss, border_centre=bc, centre_cv=cv)


def _cascade_step(model, x, target, top: int):
    """Eq-9 map R, TR-GBP map Rt (eq 10: R minus the mean of the eq-9 maps of the model's own top
    classes, as :func:`nfr.trgbp.cascade_maps`), GBP's signed channel sum G, and the input part and
    bias maps of :func:`nfr.trgbp.layer_maps`, for one batch."""
    R0, maps, _ = layer_maps(model, x, target)
    R = aggregate(R0, maps)
    _, Rk, _ = trgbp_maps(model, x, top)
    G = attribute(model, x, target, rule="gbp").sum(1)
    return R, R - Rk.mean(1), G, R0, maps


def _layers_to_show(maps: dict, layers, L: int) -> list[int]:
    if layers is not None:
        layers = [int(l) for l in layers]
        bad = [l for l in layers if l not in maps]
        if bad:
            raise NFRError(f"--layers {bad} out of range 1..{L}")
        return layers
    spatial = [l for l, m in sorted(maps.items()) if m.shape[-1] > 1 or m.shape[-2] > 1]
    return B.pick(spatial or sorted(maps), 4)


# ============================================================================== Fig 5, Figs 9, 10
@B.experiment("trgbp-sanity", "TR-GBP paper Figs 5, 9, 10: TR-GBP under cascading randomization from the top")
def run(config: Config) -> B.Result:
    kinds = B.rule_list(config.rules, SANITY_MAPS)
    top, bias, seed = int(config.top), config.bias, config.seed
    s = load_setup(**B.setup_kwargs(config))
    L = B.num_layers(s.model)
    steps = sorted({0} | set(range(L + 1) if config.steps is None else (int(k) for k in config.steps)))
    if steps[0] < 0 or steps[-1] > L:
        raise NFRError(f"--steps must lie in 0..{L} (the model has L = {L} weight layers), got {steps}")
    size = int(s.config["size"])
    border = ibd_border(size)
    if 2 * border >= size:
        raise NFRError(f"--size {size} leaves no centre inside the {border}-px border; use a larger --size")
    N = len(s.x)
    vals = {r: {q: np.full((len(steps), N), np.nan) for q in STAT_KEYS} for r in kinds}
    fig_steps = B.pick(sorted(set(steps) | {L}), 6)
    base, first, layer_first = {}, {}, {}
    shown_layers = None

    def keep_first(k, R, Rt, G, R0, maps):
        first[k] = dict(trgbp=Rt[0].cpu(), eq9=R[0].cpu(), gbp=G[0].cpu())
        layer_first[k] = (R0[0].cpu(), {l: B.psi(m[:1], (size, size))[0].cpu()
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

    for j, k in enumerate(tqdm(steps, desc="trgbp-sanity (k)", disable=config.quiet, leave=False)):
        m = cascade(k)
        outs = {r: [] for r in kinds}
        for sl in B.batches(s, config.batch_size, False, ""):
            R, Rt, G, R0, maps = _cascade_step(m, s.x[sl], s.target[sl], top)
            if shown_layers is None:
                shown_layers = _layers_to_show(maps, config.layers, L)
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
                for q in STAT_KEYS:
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
               config=dict(s.config, maps=kinds, L=L, bias=bias, top=top, border=border),
               steps=steps, curves={r: {q: B.curve(vals[r][q]) for q in STAT_KEYS} for r in kinds},
               layer_maps=dict(image=0, steps=fig_steps, layers=shown_layers,
                               stats={l: d for l, d in lay.items()}))
    return B.Result(res, arrays=dict(raw=s.raw[:1], first=first, layer_first=layer_first,
                                      curves={r: {q: vals[r][q] for q in STAT_KEYS} for r in kinds}))


def figures(result: B.Result) -> dict:
    return {"trgbp_sanity.png": _sanity_figure(result), "trgbp_layers.png": _layers_figure(result)}


def _sanity_figure(result: B.Result):
    raw, first, vals = result.arrays["raw"], result.arrays["first"], result.arrays["curves"]
    kinds, fig_steps = result["config"]["maps"], result["layer_maps"]["steps"]
    ncol = max(4, len(fig_steps) + 1)
    fig = B.new_figure(figsize=(1.7 * ncol, 2.6 + 1.6 * len(kinds)))
    gs = fig.add_gridspec(1 + len(kinds), ncol, height_ratios=[1.5] + [1] * len(kinds))
    ks = np.array(result["steps"])
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
        ax.imshow(B.img(raw[0]))
        ax.set_title(f"input, class {int(result['config']['targets'][0])}" if i == 0 else MAP_LABELS[r],
                     fontsize=7)
        ax.axis("off")
        for c, k in enumerate(fig_steps):
            B.signed_map(fig.add_subplot(gs[1 + i, 1 + c]), first[k][r], f"{SHORT[r]}, k = {k}")
    fig.tight_layout()
    return fig


def _layers_figure(result: B.Result):
    raw, first, layer_first = result.arrays["raw"], result.arrays["first"], result.arrays["layer_first"]
    fig_steps, shown_layers = result["layer_maps"]["steps"], result["layer_maps"]["layers"]
    L = result["config"]["L"]
    rows = [("TR-GBP (eq 10)", lambda k: first[k]["trgbp"]), ("eq 9: sum", lambda k: first[k]["eq9"]),
            ("R^0 (input)", lambda k: layer_first[k][0])]
    rows += [(f"psi(R^{l})", lambda k, l=l: layer_first[k][1][l]) for l in reversed(shown_layers)]
    fig = B.new_figure(figsize=(1.5 * (len(fig_steps) + 1), 1.5 * len(rows) + 0.4))
    axes = fig.subplots(len(rows), len(fig_steps) + 1, squeeze=False)
    for i, (name, get) in enumerate(rows):
        axes[i, 0].axis("off")
        if i == 0:
            axes[i, 0].imshow(B.img(raw[0]))
            axes[i, 0].set_title("input", fontsize=7)
        axes[i, 0].text(0.5, -0.15 if i == 0 else 0.5, name, fontsize=7, ha="center",
                        va="top" if i == 0 else "center", transform=axes[i, 0].transAxes)
        for c, k in enumerate(fig_steps):
            title = ("original" if k == 0 else f"top {k} of {L} random") if i == 0 else None
            B.signed_map(axes[i, c + 1], get(k), title)
    fig.tight_layout()
    return fig


def _f(v) -> str:
    return "n/a" if v is None or v != v else f"{v:+.3f}"


def summary(result: B.Result) -> str:
    L = result["config"]["L"]
    lines = []
    for k, d in result["curves"].items():
        sp, bc = d["spearman"]["mean"], d["border_centre"]["mean"]
        lines.append(f"  {k:6s} k = {result['steps'][-1]} of {L}: Spearman {_f(sp[-1])}, border/centre "
                     f"{_f(bc[0])} -> {_f(bc[-1])}, centre CV {_f(d['centre_cv']['mean'][-1])}")
    return "\n".join(lines)
