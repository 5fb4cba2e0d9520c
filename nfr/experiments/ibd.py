"""TR-GBP paper Table 2: ROC-AUC of the border intensity IBD for prediction errors.

IBD (eq 12; 16 px at 224, scaled: :func:`nfr.predictable.ibd`) of each method's map (``rules``:
methods of :func:`nfr.baselines.attribute_2d`, default TR-GBP, GBP and saliency) for the
predicted class, and its ROC-AUC (:func:`nfr.predictable.roc_auc`) for predicting a wrong
prediction. With ``keep_half`` the half of the images with the lowest IBD of each method is
discarded before the AUC, as in the TR-GBP paper. Needs labelled images. ``auc[method]``, ``n``
(images) and ``errors`` (wrong predictions). Figure ``ibd.png``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nfr import predictable as P
from nfr.baselines import attribute_2d
from nfr.errors import NFRError
from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.setup import load_setup

METHODS = ("trgbp", "gbp", "saliency")


@dataclass
class Config(B.ImageConfig):
    n_images: int = B.redefault("n_images", 20)
    rules: list[str] = option(list(METHODS), "the methods", choices=B.ALL_METHODS, metavar="M1,M2")
    keep_half: bool = option(True, "discard the half of the images with the lowest IBD of each "
                             "method before the AUC (the TR-GBP paper's protocol)")


@B.experiment("ibd", "TR-GBP paper Table 2: ROC-AUC of the border intensity IBD for prediction errors")
def run(config: Config) -> B.Result:
    if config.target != "pred":
        raise NFRError("IBD predicts errors of the decided class: use --target pred")
    s = load_setup(**B.setup_kwargs(config))
    if s.labels is None:
        raise NFRError(f"data {config.data!r} has no labels; IBD's AUC needs labelled images")
    wrong = (s.target.cpu() != torch.as_tensor(s.labels)).numpy()
    auc = {}
    for m in config.rules:
        vals = np.concatenate([P.ibd(attribute_2d(m, s.model, s.x[sl], s.target[sl]))
                               for sl in B.batches(s, config.batch_size, not config.quiet, f"ibd {m}")])
        keep = vals >= np.nanmedian(vals) if config.keep_half else np.ones(len(vals), bool)
        auc[m] = P.roc_auc(vals[keep], wrong[keep])
    res = {"n": int(len(wrong)), "errors": int(wrong.sum()), "auc": auc}
    cfg = dict(model=config.model, weights=config.weights, data=config.data, n_images=res["n"],
               size=config.size, seed=config.seed)
    return B.Result(dict(experiment="ibd", config=cfg, **res))


def figures(result: B.Result) -> dict:
    fig = B.new_figure(figsize=(4, 3))
    ax = fig.subplots()
    names = list(result["auc"])
    ax.bar(names, [result["auc"][k] for k in names])
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set_ylabel("ROC-AUC of IBD for errors")
    return {"ibd.png": fig}


def summary(result: B.Result) -> str:
    lines = []
    for k, v in result["auc"].items():
        auc = "n/a (needs right and wrong predictions)" if v is None or v != v else f"{v:.3f}"
        lines.append(f"  {k:10s} ROC-AUC {auc}  ({result['errors']} errors in {result['n']})")
    return "\n".join(lines)
