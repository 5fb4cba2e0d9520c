"""Fig 5 of Zheng et al.: alignment after randomizing (Gaussian, He scale) vs removing the top k layers.

Removal (:func:`nfr.engine.weights.remove`): a Linear layer keeps 0.25% of its input columns, a
conv kernel its first row and column. For each k in ``k`` and rule: alignment of the map w/o B
(target: the original model's class). ``original[rule]`` is the unmodified model; ``random[k]``
and ``removal[k]`` (keys: k as a string, as in the JSON) the changed ones. Figure
``removal.png``: image, original, random and removal maps for the largest k.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from tqdm import tqdm

from nfr.distributed import gather
from nfr.engine.attribute import alignment, attribute
from nfr.engine.weights import randomize, remove
from nfr.errors import NFRError
from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.setup import load_setup

RULES = B.NFR_RULES
VALID = ("grad", "grad_x_input", "gbp", "rectgrad", "zplus", "dtd")


@dataclass
class Config(B.ImageConfig):
    rules: list[str] = option(list(RULES), "the methods", choices=VALID, metavar="R1,R2")
    k: list[int] = option([1, 2, 3], "numbers of top layers changed (0..L)", minimum=0, metavar="K1,K2")


@B.experiment("removal", "Fig 5: alignment after randomizing vs removing the top k layers", sharded=True)
def run(config: Config) -> B.Result:
    s = load_setup(**B.setup_kwargs(config))
    rules = B.rule_list(config.rules, RULES, VALID)
    L = B.num_layers(s.model)
    ks = [int(k) for k in config.k]
    if not ks:
        raise NFRError("--k needs at least one number of top layers")
    for k in ks:
        if not 0 <= k <= L:
            raise NFRError(f"k = {k} out of range 0..{L} (the model has L = {L} weight layers)")

    def align(m):
        al, first = {}, {}
        for r in rules:
            vals = []
            for sl in B.batches(s, config.batch_size, False, "", shard=True):
                kw = dict(low=s.low, high=s.high) if r == "dtd" else {}
                R = attribute(m, s.x[sl], s.target[sl], r, bottom=False, **kw)
                vals += alignment(R, s.x[sl]).tolist()
                if sl.start == 0:
                    first[r] = R[0].cpu()
            al[r] = gather(vals)
        return al, first

    orig, orig_maps = align(s.model)
    rand, rem, maps = {}, {}, {}
    for k in tqdm(ks, desc="removal (k)", disable=config.quiet, leave=False):
        rand[k], mr = align(randomize(s.model, "gaussian", config.seed, cascade_from_top=k))
        rem[k], mm = align(remove(s.model, cascade_from_top=k))
        maps[k] = (mr, mm)
    res = dict(experiment="removal", config=dict(s.config, rules=rules, ks=ks, L=L),
               original={r: B.stats(v) for r, v in orig.items()},
               random={str(k): {r: B.stats(v) for r, v in d.items()} for k, d in rand.items()},
               removal={str(k): {r: B.stats(v) for r, v in d.items()} for k, d in rem.items()})
    kmax = max(ks)
    return B.Result(res, arrays=dict(raw=s.raw[:1], original=orig_maps, random=maps[kmax][0],
                                     removal=maps[kmax][1]))


def figures(result: B.Result) -> dict:
    rules, kmax, a = result["config"]["rules"], max(result["config"]["ks"]), result.arrays
    fig = B.new_figure(figsize=(7, 1.8 * len(rules) + 0.3))
    axes = fig.subplots(len(rules), 4, squeeze=False)
    for i, r in enumerate(rules):
        panels = [("image", B.img(a["raw"][0])), ("original", B.rgb(a["original"][r])),
                  (f"random top {kmax}", B.rgb(a["random"][r])),
                  (f"removal top {kmax}", B.rgb(a["removal"][r]))]
        for j, (t, im) in enumerate(panels):
            axes[i, j].imshow(im)
            axes[i, j].set_title(f"{B.LABELS[r]}: {t}" if j else t, fontsize=7)
            axes[i, j].axis("off")
    fig.tight_layout()
    return {"removal.png": fig}


def _f(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:+.3f}"


def summary(result: B.Result) -> str:
    k = str(max(result["config"]["ks"]))
    return "\n".join(f"  {r:14s} alpha original {_f(d['mean'])}  random top {k} "
                     f"{_f(result['random'][k][r]['mean'])}  removal top {k} "
                     f"{_f(result['removal'][k][r]['mean'])}" for r, d in result["original"].items())
