"""Table I of Zheng et al.: each method's map with and without the bottom process, and its alignment.

Methods (``rules``): grad_x_input, gbp, rectgrad, zplus, dtd (box bounds = the normalised
[0, 1] box), activation (A_l of layer ``layer`` propagated with the raw gradient; default
layer = L // 2, a middle layer). ``alignment[rule]["with_bottom" | "without_bottom"]`` holds
the mean, std and per-image alignment alpha(R, x). Figure ``table1.png``: the first ``n_show``
images, one row with and one row without the bottom process each.
"""
from __future__ import annotations

from dataclasses import dataclass

from nfr.distributed import gather
from nfr.engine.attribute import alignment, attribute
from nfr.engine.composites import bottom_process
from nfr.errors import NFRError
from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.setup import load_setup

RULES = ("grad_x_input", "gbp", "rectgrad", "zplus", "dtd", "activation")
#: the columns of Table I of Zheng et al. (the raw gradient as the control)
METHODS = ("grad",) + RULES


@dataclass
class Config(B.ImageConfig):
    rules: list[str] = option(list(RULES), "the methods", choices=RULES, metavar="R1,R2")
    layer: int | None = option(None, "layer l of the Activation column (1..L; default L // 2)", minimum=1)
    n_show: int = option(4, "images shown in table1.png", minimum=0)


@B.experiment("table1", "Table I: maps with / without bottom process and their alignment", sharded=True)
def run(config: Config) -> B.Result:
    s = load_setup(**B.setup_kwargs(config))
    rules = list(config.rules)
    L = B.num_layers(s.model)
    layer = int(config.layer) if config.layer is not None else max(1, L // 2)
    al = {r: {"with_bottom": [], "without_bottom": []} for r in rules}
    show = {r: {} for r in rules}
    k = min(config.n_show, len(s.x))
    for sl in B.batches(s, config.batch_size, not config.quiet, "table1", shard=True):
        M = maps(s.model, s.x[sl], s.target[sl], rules, layer=layer, low=s.low, high=s.high)
        for r in rules:
            for key, b in (("with_bottom", "B"), ("without_bottom", "w/o B")):
                R = M[r][b]
                al[r][key] += alignment(R, s.x[sl].cpu()).tolist()
                for i in range(sl.start, min(sl.stop, k)):
                    show[r].setdefault(key, []).append(R[i - sl.start])
    al = {r: {key: gather(v) for key, v in d.items()} for r, d in al.items()}
    show = {r: {key: gather(show[r].get(key, [])) for key in d} for r, d in al.items()}
    res = dict(experiment="table1", config=dict(s.config, rules=rules, activation_layer=layer, L=L),
               methods=rules, labels={r: B.LABELS[r] for r in rules},
               alignment={r: {key: B.stats(v) for key, v in d.items()} for r, d in al.items()})
    return B.Result(res, arrays=dict(raw=s.raw[:k], show=show))


def maps(model, x, target, methods=METHODS, *, layer=None, low=None, high=None):
    """Every method's map with ("B") and without ("w/o B") the bottom process (Table I of Zheng et al.).

    Returns ``{method: {"B": R, "w/o B": r}}`` (CPU tensors shaped like ``x``). The map w/o B is
    ``attribute(..., bottom=False)``: r_0 for grad, grad_x_input, gbp, rectgrad and
    activation, c_0 for zplus and alphabeta, and for dtd c_1 passed through layer 1 by the raw
    gradient. The map with B is the method's ordinary output, the engine's own
    :func:`nfr.engine.composites.bottom_process` applied to the map w/o B (x * c_0 for zplus and
    alphabeta, relu(x * r_0) for rectgrad, ...); dtd's bottom process is the z^B rule at layer 1
    (box [``low``, ``high``]), the one method that needs a second backward pass. ``layer`` is the
    start layer of ``activation`` (1..L).
    """
    out = {}
    for m in methods:
        kw = {}
        if m == "activation":
            if layer is None:
                raise NFRError("table1.maps: method 'activation' needs layer= (1..L)")
            kw["layer"] = int(layer)
        if m == "dtd":
            kw.update(low=low, high=high)
        r0 = attribute(model, x, target, m, bottom=False, **kw)
        if m == "dtd":
            R = attribute(model, x, target, m, bottom=True, **kw)
        else:
            R = bottom_process(m, x, r0)
        out[m] = {"B": R.detach().cpu(), "w/o B": r0.detach().cpu()}
    return out


def figures(result: B.Result) -> dict:
    rules, show, raw = result["methods"], result.arrays["show"], result.arrays["raw"]
    k = len(raw)
    if k == 0:
        return {}
    cols = 1 + len(rules)
    fig = B.new_figure(figsize=(1.6 * cols, 1.6 * 2 * k + 0.4))
    axes = fig.subplots(2 * k, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(k):
        for j, key in enumerate(("with_bottom", "without_bottom")):
            row = 2 * i + j
            axes[row, 0].imshow(B.img(raw[i]))
            axes[row, 0].set_title(f"image {i}" + (" (B)" if j == 0 else " (w/o B)"), fontsize=7)
            for c, r in enumerate(rules, 1):
                axes[row, c].imshow(B.rgb(show[r][key][i]))
                a = result["alignment"][r][key]["per_image"][i]
                axes[row, c].set_title(f"{B.LABELS[r]}\n{'R' if j == 0 else 'R w/o B'} a={a:.2f}",
                                       fontsize=7)
    fig.tight_layout()
    return {"table1.png": fig}


def summary(result: B.Result) -> str:
    return "\n".join(f"  {r:14s} alpha with B {d['with_bottom']['mean']:+.3f}  "
                     f"w/o B {d['without_bottom']['mean']:+.3f}" for r, d in result["alignment"].items())
