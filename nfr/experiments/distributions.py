"""Figs 3-4 of Zheng et al.: cascade curves after randomizing ALL layers with each distribution.

Every weight layer is redrawn (He scale; biases zero) from gaussian, ring (isotropic, equal
norms) or uniform (i.i.d. U[-a, a], not isotropic); the target is the class predicted by the
randomized model. ``curves[dist][rule]``: alignment per level (mean, std, per image);
``colour[dist][rule]``: luminance and chroma alignment of the full (level-L) maps with the input
(:func:`nfr.metrics.colour_fidelity`, mean over images). Figures ``distributions.png`` (curves) and
``distributions-maps.png``. :func:`curves` is the computation (the book's chapter calls it with its
own model and images); :func:`c10_criteria` reads claim C10's three numbers off its result.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from nfr.engine.attribute import alignment, cascade
from nfr.engine.weights import randomize, weight_layers
from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.metrics import colour_fidelity
from nfr.setup import load_setup

RULES = B.NFR_RULES
VALID = ("gbp", "rectgrad", "zplus", "activation")
DISTS = ("gaussian", "ring", "uniform", "orthogonal")


@dataclass
class Config(B.ImageConfig):
    rules: list[str] = option(list(RULES), "the methods", choices=VALID, metavar="R1,R2")
    dists: list[str] = option(["gaussian", "ring", "uniform"], "distributions of the randomized weights",
                              choices=DISTS, metavar="D1,D2")


def curves(model, x, dists=("gaussian", "ring", "uniform"), rules=("gbp", "rectgrad", "zplus"),
           seed: int = 0, levels=None, scale="he", batch_size: int | None = None, progress: bool = False) -> dict:
    """Cascade alignment after redrawing ALL weight layers of ``model`` from each distribution.

    For each ``dist``: m = randomize(model, dist, seed, scale=scale) (biases zero), the target
    is m's predicted class for each image, and for each rule C = cascade(m, x, target, rule,
    levels) (maps w/o B), in batches of ``batch_size`` images (None: all at once). Returns
    ``levels``, ``targets[dist]`` (list of ints), ``curves[dist][rule]`` (array [len(levels), N] of
    alpha(r_0^N, x)) and ``maps[dist][rule]`` (the maps of the highest level, [N, C, H, W], float64
    on the CPU). The ``distributions`` experiment and the book's chapter both call this.
    """
    L = len(weight_layers(model))
    levels = list(range(L + 1)) if levels is None else [int(n) for n in levels]
    bs = len(x) if batch_size is None else max(1, int(batch_size))
    slices = [slice(i, min(len(x), i + bs)) for i in range(0, len(x), bs)]
    out = dict(levels=levels, targets={}, curves={}, maps={})
    for d in dists:
        m = randomize(model, d, seed, scale=scale)
        with torch.no_grad():
            tgt = torch.cat([m(x[sl]).argmax(1) for sl in slices])
        out["targets"][d] = tgt.tolist()
        cur, top = {r: [] for r in rules}, {r: [] for r in rules}
        for sl in tqdm(slices, desc=f"distributions:{d}", disable=not progress, unit="batch", leave=False):
            for r in rules:
                C = cascade(m, x[sl], tgt[sl], r, levels)
                cur[r].append(np.stack([alignment(C[i], x[sl]).double().cpu().numpy()
                                        for i in range(len(levels))]))
                top[r].append(C[-1].double().cpu())
        out["curves"][d] = {r: np.concatenate(cur[r], 1) for r in rules}
        out["maps"][d] = {r: torch.cat(top[r]) for r in rules}
        del m
    return out


def c10_criteria(res: dict, x, tol: float = 0.05, rules=None) -> dict:
    """Claim C10's three criteria on the output of :func:`curves` (needs gaussian, ring, uniform).

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


@B.experiment("distributions", "Figs 3-4: cascade curves under gaussian / ring / uniform weights")
def run(config: Config) -> B.Result:
    s = load_setup(**B.setup_kwargs(config))
    rules = B.rule_list(config.rules, RULES, VALID)
    dists = B.rule_list(list(config.dists), DISTS)
    res = curves(s.model, s.x, dists, rules, config.seed, batch_size=config.batch_size,
                 progress=not config.quiet)
    L = res["levels"][-1]
    colour = {d: {r: {k: float(v.mean()) for k, v in colour_fidelity(res["maps"][d][r], s.x).items()}
                  for r in rules} for d in dists}
    out = dict(experiment="distributions", config=dict(s.config, rules=rules, dists=dists, L=L),
               levels=res["levels"], curves={d: {r: B.curve(v) for r, v in c.items()} for d, c in res["curves"].items()},
               colour=colour)
    maps = {d: {r: R[0] for r, R in m.items()} for d, m in res["maps"].items()}
    return B.Result(out, arrays=dict(raw=s.raw[:1], maps=maps))


def figures(result: B.Result) -> dict:
    rules, dists, L = result["config"]["rules"], result["config"]["dists"], result["config"]["L"]
    curves, maps, raw = result["curves"], result.arrays["maps"], result.arrays["raw"]
    fig = B.new_figure(figsize=(3.6 * len(rules), 3))
    axes = fig.subplots(1, len(rules), squeeze=False)
    lv = np.arange(L + 1)
    for ax, r in zip(axes[0], rules):
        for d in dists:
            mean, std = np.array(curves[d][r]["mean"]), np.array(curves[d][r]["std"])
            ax.plot(lv, mean, marker="o", ms=3, label=d)
            ax.fill_between(lv, mean - std, mean + std, alpha=0.2)
        ax.set_title(B.LABELS[r], fontsize=9)
        ax.set_xlabel("cascade level N")
    axes[0, 0].set_ylabel(r"alignment $\alpha$")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig2 = B.new_figure(figsize=(1.8 * (1 + len(dists)), 1.8 * len(rules) + 0.3))
    ax2 = fig2.subplots(len(rules), 1 + len(dists), squeeze=False)
    for i, r in enumerate(rules):
        ax2[i, 0].imshow(B.img(raw[0]))
        ax2[i, 0].set_title("image", fontsize=7)
        for j, d in enumerate(dists, 1):
            ax2[i, j].imshow(B.rgb(maps[d][r]))
            ax2[i, j].set_title(f"{B.LABELS[r]}, {d}", fontsize=7)
    for ax in ax2.ravel():
        ax.axis("off")
    fig2.tight_layout()
    return {"distributions.png": fig, "distributions-maps.png": fig2}


def _f(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:+.3f}"


def summary(result: B.Result) -> str:
    return "\n".join(f"  {d:10s} alpha at level L: "
                     + ", ".join(f"{r} {_f(c['mean'][-1])}" for r, c in per_rule.items())
                     for d, per_rule in result["curves"].items())
