"""Fig 8 of Zheng et al.: Key Information Sufficiency for correct vs incorrect predictions.

KIS, Insertion and Insertion(ABS) (:mod:`nfr.kis`) for correct and incorrect predictions. The map
is ``rules`` (one rule, default gbp) for the decided class (``target`` must be "pred");
``scores[name]`` holds the per-image values, ``summary`` the ROC-AUC for predicting a correct
decision, the bimodality coefficient, the share below 0 and the medians, ``auc_difference``
AUC(KIS) - AUC(baseline) with a paired bootstrap 95% interval. Figure ``kis.png`` (histograms as
in Fig 8 of Zheng et al.).
"""
from __future__ import annotations

from dataclasses import dataclass

from nfr import data as D
from nfr import kis as K
from nfr.errors import NFRError
from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.plotting import score_histograms
from nfr.setup import load_setup

RULES = ("grad", "gbp", "rectgrad", "zplus", "grad_x_input")
#: the scores kis.png shows (one panel each)
SHOWN = ("kis", "insertion", "insertion_abs")


@dataclass
class Config(B.ImageConfig):
    # the paper's setting: the pretrained CIFAR-10 ResNet-56 on 500 test images
    model: str = B.redefault("model", "cifar_resnet56")
    weights: str = B.redefault("weights", "imagenet")
    data: str = B.redefault("data", "cifar10")
    n_images: int = B.redefault("n_images", 500)
    batch_size: int = B.redefault("batch_size", 100)
    rules: list[str] = option(["gbp"], "the rule of the map (one rule)", choices=RULES, metavar="R")
    variants: bool = option(False, "also KIS rescaled in image space and Insertion with a black baseline")
    n_boot: int = option(2000, "bootstrap resamples of the AUC difference", minimum=1)


@B.experiment("kis", "Fig 8: KIS, Insertion, Insertion(ABS): ROC-AUC for correctness, bimodality")
def run(config: Config) -> B.Result:
    if config.target != "pred":
        raise NFRError("KIS explains the decided class: use --target pred")
    rule = list(config.rules)
    if len(rule) != 1:
        raise NFRError(f"the kis experiment takes one rule, got {rule}")
    s = load_setup(**B.setup_kwargs(config))
    if s.labels is None:
        raise NFRError(f"data {config.data!r} has no labels; KIS needs correct / incorrect predictions")
    stats = (s.config["preprocess"]["mean"], s.config["preprocess"]["std"])
    dev = s.x.device
    res = K.evaluate(s.model, s.raw.to(dev), s.labels, lambda t: D.normalize(t, *stats),
                     rule=rule[0], batch_size=config.batch_size, variants=config.variants,
                     progress=not config.quiet)
    keys = [k for k in ("kis", "insertion", "insertion_abs", "kis_image", "insertion_black",
                        "insertion_abs_black") if k in res]
    summ = K.summary(res, keys)
    diffs = {b: K.auc_difference(res["kis"], res[b], res["correct"], config.n_boot, config.seed)
             for b in ("insertion", "insertion_abs")}
    result = dict(experiment="kis", config=dict(s.config, rule=rule[0], variants=config.variants),
                  accuracy=float(res["correct"].mean()), summary=summ, auc_difference=diffs,
                  scores={k: res[k].tolist() for k in keys}, correct=res["correct"].tolist())
    return B.Result(result, arrays={k: res[k] for k in SHOWN + ("correct",)})


def figures(result: B.Result) -> dict:
    # nfr.plotting.score_histograms draws on a pyplot figure (a helper shared with the chapters)
    return {"kis.png": score_histograms(result.arrays, list(SHOWN))}


def _f(v) -> str:
    return "n/a" if v is None or v != v else f"{v:+.3f}"


def summary(result: B.Result) -> str:
    lines = [f"  accuracy {result['accuracy']:.3f}"]
    for k, d in result["summary"].items():
        no_auc = d["auc"] is None or d["auc"] != d["auc"]
        lines.append(f"  {k:20s} AUC {_f(d['auc'])}  bimodality {_f(d['bc'])}"
                     + ("  (AUC needs right and wrong predictions)" if no_auc else ""))
    return "\n".join(lines)
