"""TR-GBP paper Fig 6: pixel perturbation (Samek et al. 2017), MoRF and LeRF, per method, and AOPC.

For ``n_fractions`` fractions q = 0, 1/(n-1), ..., 1 the q H W pixels with the highest (MoRF) or
lowest (LeRF) map value are set to 0 in every channel of the normalised input (the data set mean;
the paper's "zero pixels") and the softmax probability of the explained class (the prediction by
default) is recorded. Maps as :func:`nfr.baselines.attribute_2d` returns them (saliency, GBP and
GIG are absolute values, as the paper's Appendix D asks; TR-GBP is signed); GradCAM and CAMERAS
read the module ``cam_layer``. ``curves[method][order]``: mean, std and per-image curves;
``aopc[method][order]``: area over the perturbation curve mean_i (p_0 - p_i) (MoRF: higher is
better; LeRF: lower is better). Methods (``rules``): default saliency, gbp, gig, fullgrad,
gradcam, trgbp. Figure ``perturbation.png``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.predictable import aopc, perturbation_curve
from nfr.setup import load_setup

PERTURBATION_METHODS = ("saliency", "gbp", "gig", "fullgrad", "gradcam", "trgbp")


@dataclass
class Config(B.ImageConfig):
    rules: list[str] = option(list(PERTURBATION_METHODS), "the methods", choices=B.ALL_METHODS,
                              metavar="R1,R2")
    n_fractions: int = option(11, "fractions of removed pixels, evenly spaced from 0 to 1 (11: 0, 10%, "
                              "..., 100%)", minimum=2)
    cam_layer: str | None = option(None, "module read by GradCAM / CAMERAS (default: the last feature "
                                   "block)", metavar="MODULE")


# ============================================================================== Fig 6
def perturbation_curves(model, x, target, methods, fractions, cam_layer: str | None = None,
                        batch_size: int = 16, progress: bool = False, map_fns: dict | None = None):
    """MoRF and LeRF curves (:func:`nfr.predictable.perturbation_curve`) of every method, batched.

    ``cam_layer``: the module GradCAM and CAMERAS read. ``map_fns`` (optional) {name:
    callable(xb, tb) -> maps (B, H, W)} replaces :func:`nfr.baselines.attribute_2d`. Returns
    {method: {"morf" | "lerf": array (N, len(fractions))}}.
    """
    fns = map_fns or {m: B.maps_fn(model, m, cam_layer) for m in methods}
    n, bs = len(x), max(1, int(batch_size))
    acc = {m: {"morf": [], "lerf": []} for m in fns}
    for i in tqdm(range(0, n, bs), desc="perturbation", disable=not progress, unit="batch", leave=False):
        sl = slice(i, min(n, i + bs))
        for m, fn in fns.items():
            R = fn(x[sl], target[sl])
            for order in ("morf", "lerf"):
                acc[m][order].append(perturbation_curve(model, x[sl], target[sl], R, fractions, order))
    return {m: {o: np.concatenate(v, 0) for o, v in d.items()} for m, d in acc.items()}


@B.experiment("perturbation", "TR-GBP paper Fig 6: MoRF / LeRF pixel perturbation curves and AOPC per method")
def run(config: Config) -> B.Result:
    methods = B.rule_list(config.rules, PERTURBATION_METHODS, B.ALL_METHODS)
    n_fr = int(config.n_fractions)
    s = load_setup(**B.setup_kwargs(config))
    lay = config.cam_layer or B.cam_layer(s.model)
    fr = np.linspace(0, 1, n_fr)
    cur = perturbation_curves(s.model, s.x, s.target, methods, fr, lay, config.batch_size,
                              not config.quiet)
    res = dict(experiment="perturbation",
               config=dict(s.config, methods=methods, n_fractions=n_fr, cam_layer=lay,
                           fill="0 in the normalised input (the data set mean), all channels"),
               fractions=fr.tolist(), methods=methods, labels={m: B.NAMES[m] for m in methods},
               curves={m: {o: B.curve(a.T) for o, a in d.items()} for m, d in cur.items()},
               aopc={m: {o: B.st(aopc(a)) for o, a in d.items()} for m, d in cur.items()})
    return B.Result(res, arrays=dict(mean={m: {o: a.mean(0) for o, a in d.items()} for m, d in cur.items()}))


def figures(result: B.Result) -> dict:
    fr, mean, cfg = np.asarray(result["fractions"]), result.arrays["mean"], result["config"]
    fig = B.new_figure(figsize=(9, 3.4))
    axes = fig.subplots(1, 2)
    for ax, o, t in zip(axes, ("morf", "lerf"), ("MoRF (higher AOPC is better)",
                                                 "LeRF (lower AOPC is better)")):
        for m in result["methods"]:
            ax.plot(100 * fr, mean[m][o], marker="o", ms=3,
                    label=f"{B.NAMES[m]} (AOPC {result['aopc'][m][o]['mean']:.3g})")
        ax.set_xlabel("pixels removed (%)")
        ax.set_title(t, fontsize=9)
        ax.legend(fontsize=6)
    axes[0].set_ylabel("probability of the explained class")
    fig.suptitle(f"{cfg['model']} ({cfg['weights']}), {cfg['n_images']} images", fontsize=9)
    fig.tight_layout()
    return {"perturbation.png": fig}


def summary(result: B.Result) -> str:
    f = lambda v: "n/a" if v is None or v != v else f"{v:+.3f}"  # noqa: E731
    return "\n".join(f"  {m:10s} AOPC MoRF {f(d['morf']['mean'])}  LeRF {f(d['lerf']['mean'])}"
                     for m, d in result["aopc"].items())
