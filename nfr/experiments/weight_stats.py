"""Fig 2b,c of Zheng et al.: pairwise cosine between neuron weights and their norm spread, per layer.

``stats[setting]`` is a list of per-layer dicts (see :func:`nfr.engine.weights.weight_stats`) for
``weights`` and, if ``compare_random`` and ``weights`` is not "random", for the seeded random
initialisation of the same architecture. No images are loaded, so the experiment has no data,
device, dtype or normalisation options (the statistics are computed in float64 on the CPU).
Figure ``weight-stats.png``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nfr.engine.weights import weight_stats
from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.setup import check_args, load_model


@dataclass
class Config(B.NetworkConfig):
    max_neurons: int = option(512, "neurons sampled per layer", minimum=1)
    compare_random: bool = option(True, "add the seeded random initialisation of the same architecture "
                                        "for comparison when --weights is not random "
                                        "(--no-compare-random: leave it out)")


@B.experiment("weight-stats", "Fig 2b,c: pairwise cosine and norm per layer (no images needed)")
def run(config: Config) -> B.Result:
    model, weights, seed = config.model, str(config.weights), config.seed
    check_args(model, weights)
    settings = {weights: load_model(model, weights, seed, config.download)}
    if config.compare_random and weights != "random":
        settings["random"] = load_model(model, "random", seed)
    stats = {k: weight_stats(m, max_neurons=config.max_neurons, seed=seed) for k, m in settings.items()}
    res = dict(experiment="weight-stats",
               config=dict(model=model, weights=weights, seed=int(seed), max_neurons=config.max_neurons),
               stats=stats)
    return B.Result(res)


def figures(result: B.Result) -> dict:
    fig = B.new_figure(figsize=(8, 3))
    axes = fig.subplots(1, 2)
    for k, st in result["stats"].items():
        idx = [d["index"] for d in st]
        cm = np.array([d["cos_mean"] for d in st], dtype=float)
        cs = np.array([d["cos_std"] for d in st], dtype=float)
        axes[0].errorbar(idx, cm, yerr=cs, marker="o", ms=3, capsize=2, label=k)
        nm = np.array([d["norm_mean"] for d in st], dtype=float)
        ns = np.array([d["norm_std"] for d in st], dtype=float)
        axes[1].plot(idx, ns / np.where(nm > 0, nm, np.nan), marker="o", ms=3, label=k)
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_xlabel("layer l")
    axes[0].set_ylabel("pairwise cosine (mean ± std)")
    axes[1].set_xlabel("layer l")
    axes[1].set_ylabel("norm std / norm mean")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle(f"{result['config']['model']}: orthogonality and norm equality of neuron weights",
                 fontsize=9)
    fig.tight_layout()
    return {"weight-stats.png": fig}


def _f(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:+.3f}"


def _g(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.3f}"


def summary(result: B.Result) -> str:
    lines = []
    for k, st in result["stats"].items():
        cos = [d["cos_mean"] for d in st]
        cv = [d["norm_cv"] for d in st]
        lines.append(f"  {k:8s} {len(st)} layers: pairwise cosine {_f(cos[0])} (layer 1) .. "
                     f"{_f(cos[-1])} (layer L), norm std / mean {_g(cv[0])} .. {_g(cv[-1])}")
    return "\n".join(lines)
