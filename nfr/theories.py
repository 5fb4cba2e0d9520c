"""Randomization distributions and the competing theories (Zheng et al., Sec. IV, Figs 3-6; book ch. 6-7).

Helpers that the chapters on randomization distributions and on the earlier theories (Nie et al.,
Sixt et al., Binder et al., Adebayo et al.'s sanity check) share. They sit on the torch engine
(:func:`nfr.randomize`, :func:`nfr.cascade`, :func:`nfr.attribute`) and never modify a model.

* :func:`distribution_curves` -- cascade-substitution alignment after redrawing every weight layer
  from one distribution (Figs 3-4 of Zheng et al.), with the full-substitution maps for colour analysis;
* :func:`colour_fidelity` (from :mod:`nfr.metrics`) -- alignment of the luminance and of the chroma (colour) part of a map
  with those of the input: a colour distortion shows up as a low chroma alignment;
* :func:`halfspace_mean_expansion` -- the mean weight vector of the neurons that an input activates,
  by the cumulant expansion (why per-entry uniform weights are *almost* isotropic; the exact value
  for the uniform cube is :func:`nfr.reference.theorem1.cube_half_mean`);
* :func:`relevance_spectrum` -- effective rank and sign of the relevance vectors that a rule
  produces at every layer for several target classes (Sixt et al.'s rank-1 argument);
* plotting: :func:`panel_curves`, :func:`map_grid`.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from nfr.errors import NFRError
from nfr.engine import attribute as engine
from nfr.engine.weights import randomize, weight_layers
from nfr.metrics import colour_fidelity, effective_rank
from nfr.plotting import rgb_map

__all__ = ["distribution_curves", "colour_fidelity", "halfspace_mean_expansion", "angle",
           "relevance_spectrum", "c10_criteria", "panel_curves", "map_grid", "rgb"]



# ----------------------------------------------------------------------------- Figs 3-4
def distribution_curves(model, x, dists=("gaussian", "ring", "uniform"), rules=("gbp", "rectgrad", "zplus"),
                        seed: int = 0, levels=None, scale="he") -> dict:
    """Cascade alignment after redrawing ALL weight layers of ``model`` from each distribution.

    For each ``dist``: m = randomize(model, dist, seed, scale=scale) (biases zero), the target
    is m's predicted class for each image, and for each rule C = engine.cascade(m, x, target, rule,
    levels) (maps w/o B). Returns ``levels``, ``targets[dist]`` (list of ints),
    ``curves[dist][rule]`` (array [len(levels), N] of alpha(r_0^N, x)) and ``maps[dist][rule]``
    (the maps of the highest level, [N, C, H, W], float64 on the CPU).
    """
    L = len(weight_layers(model))
    levels = list(range(L + 1)) if levels is None else [int(n) for n in levels]
    out = dict(levels=levels, targets={}, curves={}, maps={})
    for d in dists:
        m = randomize(model, d, seed, scale=scale)
        with torch.no_grad():
            tgt = m(x).argmax(1)
        out["targets"][d] = tgt.tolist()
        out["curves"][d], out["maps"][d] = {}, {}
        for r in rules:
            C = engine.cascade(m, x, tgt, r, levels)
            out["curves"][d][r] = np.stack([engine.alignment(C[i], x).double().cpu().numpy()
                                            for i in range(len(levels))])
            out["maps"][d][r] = C[-1].double().cpu()
        del m
    return out


def c10_criteria(res: dict, x, tol: float = 0.05, rules=None) -> dict:
    """Claim C10's three criteria on the output of :func:`distribution_curves` (needs gaussian, ring, uniform).

    With mean alignment curves a_d(N) over images and mean chroma alignment c_d of the maps at the
    highest level (:func:`colour_fidelity`), for every rule:

    (a) ring ~ Gaussian: max_N |a_ring(N) - a_gauss(N)| <= tol;
    (b) uniform clearly worse: a_gauss(top) - a_unif(top) >= tol;
    (c) colour distortion of uniform: c_gauss - c_unif >= tol.

    Verdict: "confirmed" if (a), (b), (c) hold for every rule; "refuted" if (b) and (c) both fail for
    every rule; "partly" otherwise. Returns the per-rule numbers, the flags and the verdict.
    """
    rules = list(res["curves"]["gaussian"]) if rules is None else list(rules)
    mean = {d: {r: np.asarray(res["curves"][d][r]).mean(1) for r in rules} for d in res["curves"]}
    chroma = {d: {r: float(colour_fidelity(res["maps"][d][r], x)["chroma"].mean()) for r in rules}
              for d in res["maps"]}
    ring = {r: float(np.max(np.abs(mean["ring"][r] - mean["gaussian"][r]))) for r in rules}
    unif = {r: float(mean["gaussian"][r][-1] - mean["uniform"][r][-1]) for r in rules}
    col = {r: chroma["gaussian"][r] - chroma["uniform"][r] for r in rules}
    a = all(v <= tol for v in ring.values())
    b = all(v >= tol for v in unif.values())
    c = all(v >= tol for v in col.values())
    b_none = not any(v >= tol for v in unif.values())
    c_none = not any(v >= tol for v in col.values())
    verdict = "confirmed" if a and b and c else ("refuted" if b_none and c_none else "partly")
    return dict(ring_gap=ring, uniform_gap=unif, chroma_gap=col, chroma=chroma,
                top={d: {r: float(mean[d][r][-1]) for r in rules} for d in mean},
                a=a, b=b, c=c, verdict=verdict)


# ----------------------------------------------------------------------------- isotropy
def halfspace_mean_expansion(x, excess_kurtosis: float) -> np.ndarray:
    """E[w 1(<w, x> > 0)] to first order in the fourth cumulant, for i.i.d. symmetric unit-variance entries.

    The cumulant expansion E[w_i g(S)] = sum_m kappa_{m+1} x_i^m E[g^(m)(S)] / m! with
    S = <w, x>, g = 1(. > 0), kappa_2 = 1, kappa_3 = 0, kappa_4 = gamma_2 (the excess kurtosis) and
    S treated as N(0, ||x||^2) in E[g'(S)] = p(0), E[g'''(S)] = p''(0) = -p(0) / ||x||^2 gives

        E[w 1(<w, x> > 0)] ~= (1 / (sqrt(2 pi) ||x||)) * (x - gamma_2 x^3 / (6 ||x||^2)),

    x^3 entrywise. gamma_2 = 0 (Gaussian) gives the exact Gaussian result; uniform entries have
    gamma_2 = -6/5, so the mean tilts towards the large entries of x by 0.2 x^3 / ||x||^2, an angle
    of order 0.2 max_i x_i^2 / ||x||^2 (first order only: it gets the size of the tilt, not its
    exact direction, for fan-ins of a few dozen).
    """
    x = np.asarray(x, dtype=float).ravel()
    nx = np.linalg.norm(x)
    if nx == 0:
        raise NFRError("halfspace_mean_expansion needs a non-zero x")
    return (x - excess_kurtosis * x ** 3 / (6 * nx ** 2)) / (math.sqrt(2 * math.pi) * nx)


def angle(a, b) -> float:
    """Angle in radians between two non-zero vectors (flattened), arccos of their cosine."""
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    c = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.arccos(np.clip(c, -1.0, 1.0)))


# ----------------------------------------------------------------------------- Sixt et al.
def relevance_spectrum(model, x, targets, rule: str = "zplus", **kwargs) -> dict:
    """Effective rank and sign of the relevance a rule sends down for several target classes.

    ``x`` is ONE input [1, C, H, W] (or [C, H, W]); ``targets`` K class indices. The rule runs on
    K copies of x, one per target (``engine.attribute(..., record=True, bottom=False)``), giving
    relevance vectors r_l^(k) at every layer l = 0..L (r_0 the map w/o B, r_L the start vector).
    For each layer: ``erank[l]`` = :func:`nfr.metrics.effective_rank` of the K x d_l matrix of
    the flattened r_l^(k) (1 when all classes get the same direction: Sixt et al.'s rank-1
    convergence; K when they are orthogonal with equal norms), and ``mixed[l]`` = mean over k of
    min(fraction positive, fraction negative) among the non-zero entries of r_l^(k): 0 when every
    vector has one sign, as for a product of non-negative matrices applied to a one-signed start
    vector; near 0.5 for signed products. Lists indexed by l = 0..L.
    """
    x = x if x.dim() == 4 else x.unsqueeze(0)
    if x.shape[0] != 1:
        raise NFRError(f"relevance_spectrum takes one input, got a batch of {x.shape[0]}")
    t = torch.as_tensor(list(targets), dtype=torch.long, device=x.device)
    xs = x.expand(len(t), *x.shape[1:]).contiguous()
    R, rec = engine.attribute(model, xs, t, rule, bottom=False, record=True, **kwargs)
    rel = {0: R, **rec["relevance"]}
    L = max(rel)
    erank, mixed = [], []
    for l in range(L + 1):
        M = rel[l].reshape(len(t), -1).double().cpu().numpy()
        erank.append(effective_rank(M))
        fr = [min((row > 0).sum(), (row < 0).sum()) / max(1, (row != 0).sum()) for row in M]
        mixed.append(float(np.mean(fr)))
    return dict(erank=erank, mixed=mixed, L=L)


# ----------------------------------------------------------------------------- plotting
def rgb(R) -> np.ndarray:
    """A signed (3, H, W) map as an RGB image scaled by its max |value| (:func:`nfr.plotting.rgb_map`)."""
    return rgb_map(R)


def panel_curves(x, panels: dict, *, xlabel: str, ylabel: str, size=(3.3, 2.8), sharey=True):
    """One panel per key of ``panels`` ({title: {label: array [len(x), N]}}); mean line and 1-std band."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(size[0] * len(panels), size[1]),
                             squeeze=False, sharey=sharey)
    for ax, (title, lines) in zip(axes[0], panels.items()):
        for label, arr in lines.items():
            a = np.asarray(arr, dtype=float).reshape(len(x), -1)
            m, s = np.nanmean(a, 1), np.nanstd(a, 1)
            ax.plot(x, m, marker="o", ms=3, label=label)
            ax.fill_between(x, m - s, m + s, alpha=0.2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
    axes[0, 0].set_ylabel(ylabel)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def map_grid(rows: dict, *, size: float = 1.7):
    """A grid of images: ``rows`` = {row title: {column title: (H, W, 3) image or (3, H, W) signed map}}."""
    import matplotlib.pyplot as plt

    ncols = max(len(r) for r in rows.values())
    fig, axes = plt.subplots(len(rows), ncols, figsize=(size * ncols, size * len(rows) + 0.2),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (rt, cols) in enumerate(rows.items()):
        for j, (ct, im) in enumerate(cols.items()):
            im = np.asarray(im.detach().cpu() if hasattr(im, "detach") else im, dtype=float)
            axes[i, j].imshow(rgb(im) if im.shape[0] == 3 and im.ndim == 3 else np.clip(im, 0, 1))
            axes[i, j].set_title(f"{rt}: {ct}" if j else f"{rt}\n{ct}", fontsize=7)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- chapter 7 figures
def plot_rank(spec_v: dict, spec_c: dict, LV: int, LC: int):
    """Fig (ch. 7): effective rank and minority-sign fraction along depth (:func:`relevance_spectrum` outputs)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 2.9))
    for r, v in spec_v.items():
        axes[0].plot(range(LV + 1), v["erank"], marker="o", ms=3, label=r)
        axes[1].plot(range(LV + 1), v["mixed"], marker="o", ms=3, label=r)
    for r, v in spec_c.items():
        axes[2].plot(range(LC + 1), v["erank"], marker=".", ms=3, label=r)
    for ax, t in zip(axes, ("VGG16 random: effective rank", "VGG16 random: fraction of minority signs",
                            "ResNet-56 trained: effective rank")):
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("layer l (0 = input)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_removal(rem: dict, rules, k: int = 3):
    """Fig 5 of Zheng et al. as bars: original / random top k / removal top k per rule, one panel per setting
    (``rem`` = {setting: :func:`nfr.experiments.removal` result})."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rem), figsize=(4.5 * len(rem), 2.9), sharey=True, squeeze=False)
    for ax, (name, rr) in zip(axes[0], rem.items()):
        xs = np.arange(len(rules))
        for i, (key, lab) in enumerate((("original", "original"), ("random", f"random top {k}"),
                                        ("removal", f"removal top {k}"))):
            st = [rr[key][r] if key == "original" else rr[key][str(k)][r] for r in rules]
            ax.bar(xs + (i - 1) * 0.27, [v["mean"] for v in st], 0.27, yerr=[v["std"] for v in st],
                   capsize=2, label=lab)
        ax.set_xticks(xs, [{"gbp": "GBP", "rectgrad": "RectGrad", "zplus": "LRP(z+)"}.get(r, r) for r in rules])
        ax.set_title(name, fontsize=9)
    axes[0, 0].set_ylabel(r"alignment $\alpha(r_0, x)$")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_activations(act: dict):
    """Fig 6 of Zheng et al.: alignment of the max / min 10% starts and their cosine to the ordinary map, per
    setting and rule (``act`` = {setting: :func:`nfr.experiments.activations` result})."""
    import matplotlib.pyplot as plt

    n = sum(len(a["curves"]) for a in act.values())
    fig, axes = plt.subplots(1, n, figsize=(3.25 * n, 2.9), squeeze=False)
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
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def plot_sanity(san: dict, labels: dict):
    """Sanity-check curves: SSIM and Spearman to the original map against the number of randomized top
    layers, per setting (``san`` = {setting: :func:`nfr.experiments.sanity` result})."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 * len(san), figsize=(3.25 * 2 * len(san), 2.9), sharey=True, squeeze=False)
    for j, (name, sr) in enumerate(san.items()):
        for i, key in enumerate(("ssim", "spearman")):
            ax = axes[0, 2 * j + i]
            for r, c in sr[key].items():
                ax.plot(sr["steps"], c["mean"], marker="o", ms=3, label=labels.get(r, r))
            ax.set_title(f"{name}: {key}", fontsize=9)
            ax.set_xlabel("top k layers randomized")
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    return fig
