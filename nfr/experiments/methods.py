"""TR-GBP paper Fig 4: attribution methods side by side, with map statistics.

The maps of seven methods (``rules``, default saliency, GBP, Guided IG, FullGrad, GradCAM,
CAMERAS, TR-GBP; IG on request) for the predicted class of each image. GradCAM and CAMERAS read
the module ``cam_layer`` (default :func:`nfr.baselines.cam_layer`, the last feature block); IG and
GIG take ``ig_steps`` steps (zero baseline). Per method and image, image-free statistics of the 2D
map (:func:`method_maps`'s conventions): ``ibd`` (the share of the positive energy in the 16-px
border band, eq 12 of the TR-GBP paper), ``border_centre`` (mean |R| on the border over the
centre), ``negative_share`` (:func:`negative_share`, sum R^- / sum |R|; 0 for the methods whose
maps are non-negative by construction) and ``alignment`` (input alignment alpha(R, x) = <R, x> /
(||R|| ||x||) of the raw map where it has the input's shape, i.e. saliency's plain gradient, GBP,
IG, GIG; null for the 2D-only methods). Figure ``methods.png``: rows images (up to 8), columns
methods, each map on the book's signed scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from nfr.baselines import (METHODS, attribute_2d, guided_ig, input_gradient,
                           integrated_gradients)
from nfr.engine.attribute import alignment, attribute
from nfr.errors import NFRError
from nfr.experiments import base as B
from nfr.experiments.base import negative_share, option
from nfr.metrics import border_centre_ratio
from nfr.predictable import ibd, ibd_border
from nfr.setup import load_setup

FIG4_METHODS = ("saliency", "gbp", "gig", "fullgrad", "gradcam", "cameras", "trgbp")


METHOD_LABELS = {"saliency": "Saliency", "gbp": "GBP", "ig": "IG", "gig": "GIG",
                 "fullgrad": "FullGrad", "gradcam": "GradCAM", "cameras": "CAMERAS",
                 "trgbp": "TR-GBP"}


STAT_KEYS = ("ibd", "border_centre", "negative_share", "alignment")


@dataclass
class Config(B.ImageConfig):
    rules: list[str] = option(list(FIG4_METHODS), "the methods", choices=METHODS, metavar="R1,R2")
    cam_layer: str | None = option(None, "module read by GradCAM and CAMERAS (default: the last "
                                   "feature block, e.g. layer4 for resnet50, features.29 for vgg16)",
                                   metavar="MODULE")
    ig_steps: int = option(32, "steps of IG and Guided IG", minimum=1)


# ============================================================================== Fig 4
def method_maps(method, model, x, target, cam_layer, ig_steps):
    """(2D map (B, H, W), raw map with the input's shape or None) of one method, both explaining
    ``target``. The 2D maps follow :func:`nfr.baselines.attribute_2d`'s conventions (saliency:
    max_c |grad|; GBP, IG, GIG: sum_c |R_c|; the others 2D by construction); ``cam_layer``: the
    module GradCAM and CAMERAS read."""
    if method == "saliency":
        raw = input_gradient(model, x, target)
        return raw.abs().amax(1), raw
    if method == "gbp":
        raw = attribute(model, x, target, rule="gbp")
        return raw.abs().sum(1), raw
    if method == "gig":
        raw = guided_ig(model, x, target, steps=ig_steps, reduce=False)
        return raw.abs().sum(1), raw
    if method == "ig":
        raw = integrated_gradients(model, x, target, steps=ig_steps, reduce=False)
        return raw.abs().sum(1), raw
    return attribute_2d(method, model, x, target, layer=cam_layer), None


@B.experiment("methods", "TR-GBP paper Fig 4: seven attribution methods side by side, with map statistics")
def run(config: Config) -> B.Result:
    if config.target != "pred":
        raise NFRError("the methods figure explains the predicted class: use --target pred")
    meths = B.rule_list(config.rules, FIG4_METHODS, METHODS)
    ig_steps = int(config.ig_steps)
    s = load_setup(**B.setup_kwargs(config))
    layer = config.cam_layer or B.cam_layer(s.model)
    if any(m in ("gradcam", "cameras") for m in meths):
        names = dict(s.model.named_modules())
        if layer not in names:
            raise NFRError(f"--cam-layer {layer!r} is not a module of {config.model}; give one of its "
                           f"feature modules, e.g. {', '.join(list(names)[1:6])}")
    size = int(s.config["size"])
    border = ibd_border(size)
    acc = {m: {k: [] for k in STAT_KEYS} for m in meths}
    show = {m: [] for m in meths}
    n_show = min(8, len(s.x))
    for sl in B.batches(s, config.batch_size, not config.quiet, "methods"):
        xb, tb = s.x[sl], s.target[sl]
        for m in tqdm(meths, desc="methods", disable=config.quiet, leave=False):
            R2, raw = method_maps(m, s.model, xb, tb, layer, ig_steps)
            a = B.np2(R2)
            acc[m]["ibd"] += ibd(a, border).tolist()
            with np.errstate(invalid="ignore", divide="ignore"):
                acc[m]["border_centre"] += [border_centre_ratio(u, border) for u in a]
            acc[m]["negative_share"] += negative_share(a).tolist()
            acc[m]["alignment"] += ([float("nan")] * len(a) if raw is None else
                                    alignment(raw, xb).cpu().tolist())
            if sl.start < n_show:
                show[m] += list(a[:n_show - sl.start])
    stats = {m: {k: (None if k == "alignment" and all(v != v for v in acc[m][k])
                     else B.stats(acc[m][k])) for k in STAT_KEYS} for m in meths}
    res = dict(experiment="methods",
               config=dict(s.config, methods=meths, cam_layer=layer, ig_steps=ig_steps, border=border),
               stats=stats)
    return B.Result(res, arrays=dict(raw=s.raw[:n_show], show=show))


def figures(result: B.Result) -> dict:
    raw, show = result.arrays["raw"], result.arrays["show"]
    meths, cfg = result["config"]["methods"], result["config"]
    n_show = len(raw)
    fig = B.new_figure(figsize=(1.5 * (len(meths) + 1), 1.55 * n_show + 0.2))
    axes = fig.subplots(n_show, len(meths) + 1, squeeze=False)
    lab = cfg.get("labels")
    for i in range(n_show):
        axes[i, 0].imshow(B.img(raw[i]))
        axes[i, 0].axis("off")
        t = f"pred {int(cfg['targets'][i])}" + ("" if lab is None else f" (label {lab[i]})")
        axes[i, 0].set_title(t, fontsize=6)
        for j, m in enumerate(meths):
            B.signed_map(axes[i, j + 1], show[m][i], METHOD_LABELS.get(m, m) if i == 0 else None)
    fig.tight_layout()
    return {"methods.png": fig}


def _f(v) -> str:
    return "n/a" if v is None or v != v else f"{v:+.3f}"


def summary(result: B.Result) -> str:
    lines = []
    for k, d in result["stats"].items():
        al = "n/a" if d["alignment"] is None else _f(d["alignment"]["mean"])
        lines.append(f"  {k:9s} IBD {_f(d['ibd']['mean'])}  alignment {al}")
    return "\n".join(lines)
