"""TR-GBP paper Figs 1, 3, 7, 8: GBP vs TR-GBP class maps and the TR-GBP pipeline.

GBP and TR-GBP maps of each image's ``top`` classes (eq 9: input plus upsampled bias maps; eq 10:
minus the mean over the top classes) and their class sensitivity, the mean pairwise correlation
between an image's class maps (1 = the same map for every class;
:func:`nfr.predictable.class_correlation`). Figure ``trgbp.png``: the first image's class maps;
figure ``trgbp_pipeline.png`` (Fig 1 of the TR-GBP paper, :func:`pipeline_figure`): the parts of
the first image's TR-GBP map of its top class (R^0, a few psi(R^l), eq 9, eq 10).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from nfr.errors import NFRError
from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.predictable import class_correlation
from nfr.setup import load_setup
from nfr.trgbp import class_maps, layer_maps, trgbp_maps


@dataclass
class Config(B.ImageConfig):
    top: int = option(5, "classes per image (eq 10)", minimum=1)


# ============================================================================== Fig 1
def pipeline_maps(model, x, target=None, top: int = 5) -> dict:
    """The parts of the TR-GBP map of one image ``x`` (1, C, H, W) for class ``target`` (default:
    the predicted class), Fig 1 of the TR-GBP paper / eqs 9, 10:

    ``cls``, ``input_part`` R^0 (H, W), ``bias_maps`` {l: psi(R^l) (H, W)} of every layer,
    ``eq9`` = R^0 + sum_l psi(R^l), ``classes`` (the top classes), ``top_mean`` (the mean of their
    eq-9 maps) and ``trgbp`` = eq9 - top_mean (eq 10), equal to :func:`nfr.trgbp.trgbp`;
    ``bias_shapes`` {l: (h_l, w_l)} the sizes of the bias maps before upsampling.
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise NFRError(f"pipeline_maps takes one image (1, C, H, W), got {tuple(x.shape)}")
    with torch.no_grad():
        t = int(model(x).argmax(1)[0]) if target is None else int(target)
    R0, maps, _ = layer_maps(model, x, t)
    size = tuple(x.shape[-2:])
    psi = {l: B.psi(m, size)[0] for l, m in maps.items()}
    eq9 = R0[0] + sum(psi.values()) if psi else R0[0]
    classes, Rk, _ = trgbp_maps(model, x, top)
    mean = Rk[0].mean(0)
    return dict(cls=t, input_part=R0[0], bias_maps=psi, eq9=eq9, classes=classes[0].tolist(),
                top_mean=mean, trgbp=eq9 - mean,
                bias_shapes={l: tuple(m.shape[-2:]) for l, m in maps.items()})


def pipeline_layers(parts: dict, n_layers: int = 4) -> list[int]:
    """The layers whose psi(R^l) :func:`pipeline_figure` shows: up to ``n_layers`` of those with a
    spatial bias map (h_l w_l > 1; all layers if none has), spread from bottom to top."""
    spatial = [l for l, hw in sorted(parts["bias_shapes"].items()) if hw[0] * hw[1] > 1] or \
        sorted(parts["bias_maps"])
    return B.pick(spatial, n_layers)


def pipeline_figure(raw, parts: dict, n_layers: int = 4):
    """Fig 1 of the TR-GBP paper: input, R^0, psi(R^l) of ``n_layers`` layers (bottom to top,
    :func:`pipeline_layers`), their sum over all layers (eq 9), the top-class mean and TR-GBP
    (eq 10), one panel each. Returns the Figure."""
    shown = pipeline_layers(parts, n_layers)
    panels = [("R^0 = sum_c d^g f / dx", parts["input_part"])]
    panels += [(f"psi(R^{l})", parts["bias_maps"][l]) for l in shown]
    panels += [(f"eq 9: R^0 + sum over {len(parts['bias_maps'])} layers", parts["eq9"]),
               (f"mean of top {len(parts['classes'])} classes", parts["top_mean"]),
               (f"eq 10: TR-GBP, class {parts['cls']}", parts["trgbp"])]
    fig = B.new_figure(figsize=(1.9 * (len(panels) + 1), 2.3))
    axes = fig.subplots(1, len(panels) + 1)
    axes[0].imshow(B.img(raw))
    axes[0].set_title("input", fontsize=7)
    axes[0].axis("off")
    for ax, (t, m) in zip(axes[1:], panels):
        B.signed_map(ax, m, t)
    fig.tight_layout()
    return fig


# ============================================================================== Figs 3, 7, 8
@B.experiment("trgbp", "TR-GBP paper Figs 3, 7, 8: GBP vs TR-GBP maps of the top classes, class sensitivity")
def run(config: Config) -> B.Result:
    if config.target != "pred":
        raise NFRError("the trgbp experiment explains each image's top classes (the prediction first): "
                       "use --target pred")
    s = load_setup(**B.setup_kwargs(config))
    top = config.top
    corr = {"gbp": [], "eq9": [], "trgbp": []}
    first = None
    for sl in B.batches(s, config.batch_size, not config.quiet, "trgbp"):
        cls, G, R, Rt = class_maps(s.model, s.x[sl], top)
        for k, m in (("gbp", G), ("eq9", R), ("trgbp", Rt)):
            corr[k] += class_correlation(m).tolist()
        if first is None:
            first = (cls[0].tolist(), G[0].detach().cpu().numpy(), Rt[0].detach().cpu().numpy())
    parts = pipeline_maps(s.model, s.x[:1], first[0][0], top)
    res = dict(experiment="trgbp", config=dict(s.config, top=top),
               class_correlation={k: B.stats(v) for k, v in corr.items()},
               pipeline=dict(image=0, cls=parts["cls"], classes=parts["classes"],
                             layers_shown=pipeline_layers(parts)))
    return B.Result(res, arrays=dict(raw=s.raw[:1], classes=first[0], gbp=first[1], trgbp=first[2],
                                      parts=parts))


def figures(result: B.Result) -> dict:
    a = result.arrays
    top = result["config"]["top"]
    fig = B.new_figure(figsize=(2 * top, 4.2))
    ax = fig.subplots(2, top, squeeze=False)
    for j in range(top):
        for r, (name, maps) in enumerate((("GBP", a["gbp"]), ("TR-GBP", a["trgbp"]))):
            ax[r, j].imshow(maps[j], cmap="bwr", vmin=-abs(maps[j]).max(), vmax=abs(maps[j]).max())
            ax[r, j].set_title(f"{name}, class {a['classes'][j]}", fontsize=8)
            ax[r, j].axis("off")
    return {"trgbp.png": fig, "trgbp_pipeline.png": pipeline_figure(a["raw"][0], a["parts"])}


def summary(result: B.Result) -> str:
    return "\n".join(f"  {k:8s} mean pairwise correlation of class maps {d['mean']:+.3f}"
                     for k, d in result["class_correlation"].items())
