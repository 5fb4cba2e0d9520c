"""Fig 7 of Zheng et al. (Sec. V-A): layer-wise failure analysis (:mod:`nfr.failure`, chapter 8).

For each start layer l in ``layers`` (default every hidden layer 1..L-1) the map R^(l) starts from
the activation A_l and is carried to the input by the rule ``rules`` below (one of gbp (default,
the chapter's choice), grad (the Activation of Table I of Zheng et al.), rectgrad, zplus), without
bottom process. Per map: ``alignment`` alpha(R, x), ``colour`` (alignment of the colour parts),
``chroma`` (colour share of the map's energy) and ``outside`` (share of sum_c |R_c| outside the
central box covering ``box_frac`` of height and width; a proxy for the object).

Groups as in chapter 8: ``wrong`` and ``correct`` predictions when the data have labels, and
``all``. ``profiles[group][measure]``: mean, median, quartiles and std per start layer;
``per_image[measure]``: the values [len(layers), n_images]; ``summary``: the per-group trends of
:func:`nfr.failure.summarize` (median Spearman rho between start layer and measure, median at the
lowest / highest layer); ``fades``: chapter 8's criterion for claim C13 (median rho <= -0.5) per
group for colour and outside; ``report``: :func:`nfr.failure.report`'s lines. The maps do not
depend on the class (they start from A_l); ``target`` only picks the classes recorded in the
config. Figures ``failure.png`` (one panel per measure, x = start layer, one line per group) and
``failure_strips.png`` (the maps of up to ``n_show`` images of the first batch, misclassified
first, at up to 12 of the start layers spread evenly).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from nfr import failure as FA
from nfr.errors import NFRError
from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.plotting import layer_strips, measure_curves
from nfr.setup import load_setup

#: the rules of the layers below the start layer
BELOW = ("gbp", "grad", "rectgrad", "zplus")
LABELS = {"alignment": "alignment", "colour": "colour (alignment)", "chroma": "saturation",
          "outside": "outside central box"}


@dataclass
class Config(B.ImageConfig):
    rules: list[str] = option(["gbp"], "the rule of the layers below the start layer (one rule)",
                              choices=BELOW, metavar="R")
    layers: list[int] | None = option(None, "start layers l (1..L-1; default all)", minimum=1,
                                      metavar="L1,L2")
    box_frac: float = option(0.5, "the central box (the object proxy of the 'outside' measure) covers "
                             "this fraction of height and width", above=0, maximum=1)
    n_show: int = option(4, "images of the first batch shown in failure_strips.png (misclassified "
                         "first)", minimum=1)


@B.experiment("failure", "Fig 7 (Sec. V-A): layer-wise failure analysis, measures per start layer")
def run(config: Config) -> B.Result:
    below = list(config.rules)
    if len(below) != 1:
        raise NFRError(f"the failure experiment takes one rule for the layers below, got {below}")
    below = below[0]
    box_frac = config.box_frac
    if not 0 < float(box_frac) <= 1:
        raise NFRError(f"--box-frac must lie in (0, 1], got {box_frac}")
    s = load_setup(**B.setup_kwargs(config))
    L = B.num_layers(s.model)
    layers = list(range(1, L)) if config.layers is None else [int(l) for l in config.layers]
    bad = [l for l in layers if not 1 <= l < L]
    if bad or not layers:
        raise NFRError(f"start layers {bad or layers} out of range 1..{L - 1} (the model has L = {L} "
                       "weight layers; layer L is the output)")
    layers = sorted(set(layers))
    H, W = s.x.shape[-2:]
    box = FA.central_box(H, W, float(box_frac))
    parts, first_maps = [], None
    for sl in B.batches(s, config.batch_size, not config.quiet, "failure"):
        M = FA.start_layer_maps(s.model, s.x[sl], layers, below).detach()
        xb = s.x[sl].detach()
        prof = FA.layer_profile(s.model, xb.cpu(), layers, box=box, maps=M.cpu())
        parts.append(prof)
        if first_maps is None:
            first_maps = (sl, M.cpu())
    prof = {m: np.concatenate([p[m] for p in parts], axis=-1) for m in parts[0]}
    n = len(s.x)
    preds = np.asarray(s.config["predictions"])
    groups = {}
    if s.labels is not None:
        lab = np.asarray(s.labels)
        wrong, right = np.nonzero(preds != lab)[0], np.nonzero(preds == lab)[0]
        if len(wrong):
            groups["wrong"] = wrong.tolist()
        if len(right):
            groups["correct"] = right.tolist()
    groups["all"] = list(range(n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # one layer: no trend (nan)
        summ = FA.summarize(layers, prof, groups)
        lines = FA.report(layers, prof, groups)
        profiles = {g: {m: _per_layer(prof[m][:, idx]) for m in FA.MEASURES} for g, idx in groups.items()}
    fades = {g: {m: bool(summ[g][m]["trend"] <= -0.5) for m in ("colour", "outside")}
             for g in groups}
    cfg = dict(s.config, below=below, layers=layers, L=L, box=list(box), box_frac=float(box_frac))
    result = dict(experiment="failure", config=cfg, layers=layers, groups=groups, profiles=profiles,
                  per_image={m: prof[m].tolist() for m in FA.MEASURES},
                  input={"chroma": B.stats(prof["input_chroma"]), "outside": B.stats(prof["input_outside"])},
                  summary=summ, fades=fades, report=lines)
    # the strips: up to n_show images of the first batch, misclassified first
    sl, M = first_maps
    wrong = set(groups.get("wrong", []))
    order = sorted(range(sl.stop - sl.start), key=lambda i: i + sl.start not in wrong)[:max(1, config.n_show)]
    shown = [sl.start + i for i in order]
    return B.Result(result, arrays=dict(profile={m: prof[m] for m in FA.MEASURES}, strip_index=shown,
                                        strip_images=s.raw[shown], strip_maps=M[:, order]))


def _per_layer(v) -> dict:
    v = np.asarray(v, dtype=float)
    q1, med, q3 = np.nanpercentile(v, [25, 50, 75], axis=1)
    return dict(mean=np.nanmean(v, 1).tolist(), median=med.tolist(), q25=q1.tolist(),
                q75=q3.tolist(), std=np.nanstd(v, 1).tolist())


def figures(result: B.Result) -> dict:
    # nfr.plotting.measure_curves and layer_strips draw on pyplot figures (helpers shared with the chapters)
    layers, groups, a = result["layers"], result["groups"], result.arrays
    curves = {f"{g} ({len(idx)})": {m: a["profile"][m][:, idx] for m in FA.MEASURES}
              for g, idx in groups.items()}
    fig = measure_curves(layers, curves, FA.MEASURES, labels=LABELS)
    preds, labels = result["config"]["predictions"], result["config"]["labels"]
    titles = [f"pred {preds[j]}" if labels is None else f"label {labels[j]} -> {preds[j]}"
              for j in a["strip_index"]]
    shown = sorted({int(round(v)) for v in np.linspace(0, len(layers) - 1, min(len(layers), 12))})
    fig2 = layer_strips(a["strip_images"].permute(0, 2, 3, 1).numpy(), a["strip_maps"][shown].numpy(),
                        [layers[i] for i in shown], titles=titles)
    return {"failure.png": fig, "failure_strips.png": fig2}


def summary(result: B.Result) -> str:
    return "\n".join("  " + line for line in result["report"])
