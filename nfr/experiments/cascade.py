"""Fig 2a of Zheng et al.: alignment alpha(r_0^N, x) of cascade substitution at levels N = 0..L.

Rules: gbp, rectgrad, zplus, activation (also grad, grad_x_input, dtd). ``curves[rule]``: mean
and std over images per level and the per-image curves. Figure ``cascade.png``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.setup import load_setup

RULES = B.CASCADE_RULES
VALID = ("grad", "grad_x_input", "gbp", "rectgrad", "zplus", "dtd", "activation")


@dataclass
class Config(B.ImageConfig):
    rules: list[str] = option(list(RULES), "the methods", choices=VALID, metavar="R1,R2")
    levels: list[int] | None = option(None, "cascade levels N to measure, a subset of 0..L (default: "
                                      "all; level N costs more the smaller it is)", minimum=0,
                                      metavar="N1,N2")


@B.experiment("cascade", "Fig 2a: alignment vs cascade substitution level", sharded=True)
def run(config: Config) -> B.Result:
    s = load_setup(**B.setup_kwargs(config))
    rules = B.rule_list(config.rules, RULES, VALID)
    L, curves, _ = B.cascade_curves(s.model, s, rules, config.batch_size, not config.quiet, "cascade",
                                    shard=True, levels=config.levels)
    levels = list(range(L + 1)) if config.levels is None else [int(n) for n in config.levels]
    res = dict(experiment="cascade", config=dict(s.config, rules=rules, L=L),
               levels=levels, curves={r: B.curve(c) for r, c in curves.items()})
    return B.Result(res, arrays=dict(curves=curves))


def figures(result: B.Result) -> dict:
    cfg, curves = result["config"], result.arrays["curves"]
    fig = B.new_figure(figsize=(5, 3.2))
    ax = fig.subplots()
    lv = np.asarray(result["levels"])
    for r in cfg["rules"]:
        m, sd = np.nanmean(curves[r], 1), np.nanstd(curves[r], 1)
        ax.plot(lv, m, marker="o", ms=3, label=B.LABELS[r])
        ax.fill_between(lv, m - sd, m + sd, alpha=0.2)
    ax.set_xlabel("cascade level N (top N layers use the rule)")
    ax.set_ylabel(r"alignment $\alpha(r_0^N, x)$")
    ax.set_title(f"{cfg['model']} ({cfg['weights']}), {cfg['n_images']} images", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return {"cascade.png": fig}


def summary(result: B.Result) -> str:
    lo, hi = result["levels"][0], result["levels"][-1]
    return "\n".join(f"  {r:14s} alpha level {lo} {d['mean'][0]:+.3f} -> level {hi} {d['mean'][-1]:+.3f}"
                     for r, d in result["curves"].items())
