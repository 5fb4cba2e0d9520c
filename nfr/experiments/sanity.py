"""Cascading randomization from the top (Adebayo et al. 2018; the sanity checks of Zheng et al., Sec. IV).

Step k (``steps``, default 0..L; 0 is always added) randomizes the top k layers (Gaussian, He
scale, biases zero; layer l always gets the same weights). Per rule (the method's ordinary output,
with bottom process) and k: SSIM (maps reduced to 2D by sum ``|R_c|``, min-max normalised,
data_range 1) and Spearman rank correlation (of the 2D ``|R|`` maps) between the original map
(k = 0) and the map at step k, for the original target class. Figure ``sanity.png``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from nfr.distributed import gather_columns
from nfr.engine.attribute import attribute
from nfr.engine.weights import randomize
from nfr.errors import NFRError
from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.metrics import normalize_map, spearman, ssim, to_2d
from nfr.setup import load_setup

RULES = B.SANITY_RULES


@dataclass
class Config(B.ImageConfig):
    rules: list[str] = option(list(RULES), "the methods", choices=RULES, metavar="R1,R2")
    steps: list[int] | None = option(None, "numbers k of top layers randomized to evaluate (0..L; "
                                     "default 0..L; 0 is always added)", minimum=0, metavar="K1,K2")


@B.experiment("sanity", "Sanity checks: cascading randomization, SSIM / Spearman to the original map",
              sharded=True)
def run(config: Config) -> B.Result:
    s = load_setup(**B.setup_kwargs(config))
    rules = B.rule_list(config.rules, RULES)
    L = B.num_layers(s.model)
    steps = sorted({0} | set(range(L + 1) if config.steps is None else (int(k) for k in config.steps)))
    if steps[-1] > L:
        raise NFRError(f"sanity step {steps[-1]} out of range 0..{L}")
    base = {}
    mine = list(B.batches(s, config.batch_size, False, "", shard=True))  # this rank's images
    n_mine = sum(sl.stop - sl.start for sl in mine)
    res_ssim = {r: np.zeros((len(steps), n_mine)) for r in rules}
    res_sp = {r: np.zeros((len(steps), n_mine)) for r in rules}
    for j, k in enumerate(tqdm(steps, desc="sanity (k)", disable=config.quiet, leave=False)):
        m = randomize(s.model, "gaussian", config.seed, cascade_from_top=k) if k else s.model
        for r in rules:
            kw = dict(low=s.low, high=s.high) if r == "dtd" else {}
            R = torch.cat([attribute(m, s.x[sl], s.target[sl], r, **kw).cpu() for sl in mine]
                          or [torch.zeros((0,) + tuple(s.x.shape[1:]))])
            maps = [to_2d(R[i]) for i in range(len(R))]
            if k == 0:
                base[r] = maps
            for i, mp in enumerate(maps):
                a, b = normalize_map(base[r][i]), normalize_map(mp)
                res_ssim[r][j, i] = ssim(a, b, data_range=1.0)
                res_sp[r][j, i] = spearman(base[r][i], mp)
        del m
    res_ssim = {r: gather_columns(v) for r, v in res_ssim.items()}
    res_sp = {r: gather_columns(v) for r, v in res_sp.items()}
    res = dict(experiment="sanity", config=dict(s.config, rules=rules, L=L),
               steps=steps, ssim={r: B.curve(v) for r, v in res_ssim.items()},
               spearman={r: B.curve(v) for r, v in res_sp.items()})
    return B.Result(res, arrays=dict(ssim=res_ssim, spearman=res_sp))


def figures(result: B.Result) -> dict:
    fig = B.new_figure(figsize=(8, 3))
    axes = fig.subplots(1, 2)
    ks = np.array(result["steps"])
    for r in result["config"]["rules"]:
        axes[0].plot(ks, np.nanmean(result.arrays["ssim"][r], 1), marker="o", ms=3, label=B.LABELS[r])
        axes[1].plot(ks, np.nanmean(result.arrays["spearman"][r], 1), marker="o", ms=3, label=B.LABELS[r])
    axes[0].set_ylabel("SSIM to original map")
    axes[1].set_ylabel("Spearman to original map")
    for ax in axes:
        ax.set_xlabel("top k layers randomized")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return {"sanity.png": fig}


def _f(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:+.3f}"


def summary(result: B.Result) -> str:
    k = result["steps"][-1]
    return "\n".join(f"  {r:14s} top {k} of {result['config']['L']} layers randomized: SSIM "
                     f"{_f(d['mean'][-1])}  Spearman {_f(result['spearman'][r]['mean'][-1])}"
                     for r, d in result["ssim"].items())
