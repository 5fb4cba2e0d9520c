"""Fig 6 of Zheng et al.: maps started from the top / bottom ``frac`` of non-zero activations per layer.

For each rule (gbp, rectgrad, zplus; the rule acts in layers 1..l) and hidden layer l (``layers``,
default 1..L-1): ``max`` / ``min`` / ``all`` = alignment of the map started from A_l restricted to
its largest / smallest ``frac`` (10%) non-zero entries / all of A_l; ``cos_to_ordinary_max`` /
``_min``: cosine between that map and the ordinary attribution (the rule over all layers from the
target logit), which converge to 1 at higher layers (Zheng et al.'s claim). ``curves[rule][key]``: mean, std and
``per_image`` ([layer][image]) per start layer. ``ordinary[rule]``:
alignment of the ordinary attribution. All maps w/o B. Figure ``activations.png``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from nfr.engine.attribute import alignment, attribute
from nfr.errors import NFRError
from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.setup import load_setup

RULES = B.NFR_RULES
VALID = ("grad", "gbp", "rectgrad", "zplus")
KEYS = ("max", "min", "all", "cos_to_ordinary_max", "cos_to_ordinary_min")


@dataclass
class Config(B.ImageConfig):
    rules: list[str] = option(list(RULES), "the rules of the layers below the start layer", choices=VALID,
                              metavar="R1,R2")
    layers: list[int] | None = option(None, "start layers l (1..L; default 1..L-1)", minimum=1,
                                      metavar="L1,L2")
    frac: float = option(0.1, "fraction of the non-zero activations kept (the top / bottom ones)",
                         above=0, maximum=1)


@B.experiment("activations", "Fig 6: maps from the top / bottom 10% of activations per layer")
def run(config: Config) -> B.Result:
    s = load_setup(**B.setup_kwargs(config))
    rules = B.rule_list(config.rules, RULES, VALID)
    L = B.num_layers(s.model)
    layers = list(range(1, L)) if config.layers is None else [int(l) for l in config.layers]
    for l in layers:
        if not 1 <= l <= L:
            raise NFRError(f"layer {l} out of range 1..{L}")
    frac = config.frac
    acc = {r: {k: {l: [] for l in layers} for k in KEYS} for r in rules}
    ordinary = {r: [] for r in rules}
    for sl in B.batches(s, config.batch_size, not config.quiet, "activations"):
        xb, tb = s.x[sl], s.target[sl]
        for r in rules:
            R0 = attribute(s.model, xb, tb, r, bottom=False)
            ordinary[r] += alignment(R0, xb).tolist()
            for l in tqdm(layers, desc=f"layers ({r})", disable=config.quiet, leave=False):
                for which, rule in (("max", "activation_max"), ("min", "activation_min"),
                                    ("all", "activation")):
                    R = attribute(s.model, xb, tb, rule, layer=l, below=r, frac=frac, bottom=False)
                    acc[r][which][l] += alignment(R, xb).tolist()
                    if which != "all":
                        acc[r][f"cos_to_ordinary_{which}"][l] += alignment(R, R0).tolist()
    res = dict(experiment="activations", config=dict(s.config, rules=rules, layers=layers, L=L,
                                                     frac=frac),
               layers=layers, ordinary={r: B.stats(v) for r, v in ordinary.items()},
               curves={r: {k: dict(mean=[float(np.nanmean(acc[r][k][l])) for l in layers],
                                   std=[float(np.nanstd(acc[r][k][l])) for l in layers],
                                   per_image=[[float(v) for v in acc[r][k][l]] for l in layers])
                           for k in KEYS} for r in rules})
    return B.Result(res)


def figures(result: B.Result) -> dict:
    rules, layers, frac = result["config"]["rules"], result["layers"], result["config"]["frac"]
    fig = B.new_figure(figsize=(3.6 * len(rules), 3))
    axes = fig.subplots(1, len(rules), squeeze=False)
    for ax, r in zip(axes[0], rules):
        c = result["curves"][r]
        for k, st in (("max", "-o"), ("min", "-s"), ("all", "-^")):
            ax.plot(layers, c[k]["mean"], st, ms=3, label=f"{k} {frac:.0%}" if k != "all" else "all A_l")
        ax.axhline(result["ordinary"][r]["mean"], color="k", ls="--", lw=0.8, label="ordinary")
        ax.set_title(B.LABELS[r], fontsize=9)
        ax.set_xlabel("start layer l")
    axes[0, 0].set_ylabel(r"alignment $\alpha$")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return {"activations.png": fig}


def _f(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:+.3f}"


def summary(result: B.Result) -> str:
    layers = result["layers"]
    if not layers:
        return "  no start layers"
    a, b = layers[0], layers[-1]
    lines = []
    for r, c in result["curves"].items():
        lines.append(f"  {r:9s} alpha ordinary {_f(result['ordinary'][r]['mean'])}; from layer {a} -> {b}: "
                     f"max {_f(c['max']['mean'][0])} -> {_f(c['max']['mean'][-1])}, "
                     f"min {_f(c['min']['mean'][0])} -> {_f(c['min']['mean'][-1])}, "
                     f"cos to ordinary (max) {_f(c['cos_to_ordinary_max']['mean'][0])} -> "
                     f"{_f(c['cos_to_ordinary_max']['mean'][-1])}")
    return "\n".join(lines)
