"""Figs 3-4 of Zheng et al.: cascade curves after randomizing ALL layers with each distribution.

Every weight layer is redrawn (He scale; biases zero) from gaussian, ring (isotropic, equal
norms) or uniform (i.i.d. U[-a, a], not isotropic); the target is the class predicted by the
randomized model. ``curves[dist][rule]``: alignment per level (mean, std, per image);
``colour[dist][rule]``: per-channel colour bias of the full (level-L) maps against the input
(see ``_colour``). Figures ``distributions.png`` (curves) and ``distributions-maps.png``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from nfr.engine.attribute import attribute
from nfr.engine.weights import randomize
from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.metrics import colour_fidelity
from nfr.setup import Setup, load_setup

RULES = B.NFR_RULES
VALID = ("gbp", "rectgrad", "zplus", "activation")
DISTS = ("gaussian", "ring", "uniform", "orthogonal")


@dataclass
class Config(B.ImageConfig):
    rules: list[str] = option(list(RULES), "the methods", choices=VALID, metavar="R1,R2")
    dists: list[str] = option(["gaussian", "ring", "uniform"], "distributions of the randomized weights",
                              choices=DISTS, metavar="D1,D2")


def _colour(R, x) -> dict:
    """Per-channel colour statistics of maps R vs inputs x ([N, 3, H, W]), averaged over images.

    ``map_channel_mean`` / ``input_channel_mean``: mean of channel c over pixels divided by the RMS
    of the whole map (resp. input); ``bias`` = their difference (a colour cast of the map that the
    input does not have); ``channel_alignment``: alpha(R_c, x_c) per channel.
    """
    R, x = R.double(), x.double().to(R.device)
    rms = lambda t: t.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-30)  # noqa: E731
    mr = (R / rms(R)).mean(dim=(2, 3))
    mx = (x / rms(x)).mean(dim=(2, 3))
    num = (R * x).sum(dim=(2, 3))
    den = R.pow(2).sum(dim=(2, 3)).sqrt() * x.pow(2).sum(dim=(2, 3)).sqrt()
    ca = torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))
    return dict(map_channel_mean=mr.mean(0).tolist(), input_channel_mean=mx.mean(0).tolist(),
                bias=(mr - mx).mean(0).tolist(), channel_alignment=ca.mean(0).tolist())


@B.experiment("distributions", "Figs 3-4: cascade curves under gaussian / ring / uniform weights")
def run(config: Config) -> B.Result:
    s = load_setup(**B.setup_kwargs(config))
    rules = B.rule_list(config.rules, RULES, VALID)
    dists = B.rule_list(list(config.dists), DISTS)
    bs = config.batch_size
    curves, colour, maps = {}, {}, {}
    for d in dists:
        m = randomize(s.model, d, config.seed)
        with torch.no_grad():
            tgt = torch.cat([m(xb).argmax(1) for xb in s.x.split(max(1, bs))])
        sd = Setup(m, s.x, s.raw, tgt, s.labels, s.low, s.high, s.config)
        L, c, _ = B.cascade_curves(m, sd, rules, bs, not config.quiet, f"distributions:{d}")
        curves[d] = {r: B.curve(v) for r, v in c.items()}
        colour[d], maps[d] = {}, {}
        for r in rules:
            R = torch.cat([attribute(m, s.x[sl], tgt[sl], r, bottom=False,
                                     **({"layer": 1} if r == "activation" else {}))
                           for sl in B.batches(sd, bs, False, "")])
            colour[d][r] = dict(_colour(R, s.x), **{k: float(v.mean()) for k, v in colour_fidelity(R, s.x).items()})
            maps[d][r] = R[0].cpu()
    res = dict(experiment="distributions", config=dict(s.config, rules=rules, dists=dists, L=L),
               levels=list(range(L + 1)), curves=curves, colour=colour)
    return B.Result(res, arrays=dict(raw=s.raw[:1], maps=maps))


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
