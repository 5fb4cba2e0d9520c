"""The model-parameter randomization test in every variant (:mod:`nfr.mprt`; book chapter 13).

For every method (attribution rules and control maps), layer order (top-down, bottom-up,
independent) and step k of that order (``steps``, default 1..L), every preprocessing (absolute or signed channel sum;
as is or min-max normalised) and every similarity measure, the similarity of each image's map under
the step-k network to its map under the original network. Beside it, per method and preprocessing:
eMPRT (relative entropy rise from the original to the fully randomized network) and smooth MPRT
(top-down, the maps averaged over ``smooth_n`` noisy copies) at the steps ``smooth_steps``.

Layer l's random weights come from ``(seed, l)`` (Gaussian, He scale, biases zero) in every order;
the noise of the zero-covariance control and of smooth MPRT from generators seeded with ``seed``
and the step. The unit is the image: ``arrays["mprt"][key]`` is ``[steps, images]``, row j the step ``config["steps"][j]``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from nfr import mprt as M
from nfr.engine.weights import randomize
from nfr.errors import NFRError
from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.interop.quantus import explain
from nfr.setup import load_setup

RULES = B.SANITY_RULES
METHODS = RULES + ("control_input", "control_sobel", "control_noise")
PREPS = {"abs": (True, None), "signed": (False, None), "abs+minmax": (True, "minmax"),
         "signed+minmax": (False, "minmax")}


@dataclass
class Config(B.ImageConfig):
    methods: list[str] = option(list(METHODS), "attribution rules and control maps", choices=METHODS,
                                metavar="M1,M2")
    orders: list[str] = option(list(M.ORDERS), "layer orders", choices=M.ORDERS, metavar="O1,O2")
    smooth_n: int = option(50, "noisy copies per smooth-MPRT map (0: no smooth MPRT)", minimum=0, metavar="N")
    smooth_noise: float = option(0.1, "smooth-MPRT noise std relative to each image's range", minimum=0,
                                 metavar="S")
    steps: list[int] | None = option(None, "steps k of every order to evaluate (default 1..L)", minimum=1,
                                     metavar="K1,K2")
    smooth_steps: list[int] | None = option(None, "top-down steps of smooth MPRT (default: L, full "
                                            "randomization)", minimum=1, metavar="K1,K2")


def _key(order, method, prep, measure) -> str:
    return f"{order}|{method}|{prep}|{measure}"


def _scores(base: list, maps: list) -> dict:
    """{(prep, measure): [per-image similarity]} of the maps of one step against the originals."""
    out = {}
    for prep, (absolute, norm) in PREPS.items():
        a = [M.prepare(m, absolute=absolute, normalise=norm) for m in base]
        b = [M.prepare(m, absolute=absolute, normalise=norm) for m in maps]
        for measure in M.SIMILARITIES:
            out[prep, measure] = [M.similarity(u, v, measure) for u, v in zip(a, b)]
    return out


def _maps(s, model, method, step_seed, config):
    kw = dict(low=s.low, high=s.high) if method == "dtd" else {}
    g = np.random.default_rng([config.seed, step_seed])
    out = []
    for sl in B.batches(s, config.batch_size, False, ""):
        out += M.maps(model, s.x[sl], s.target[sl], method, generator=g, **kw)
    return out


def _smooth(s, model, rule, config, step):
    kw = dict(low=s.low, high=s.high) if rule == "dtd" else {}
    g = torch.Generator().manual_seed(int(config.seed) * 1000 + step)
    out = []
    for sl in B.batches(s, config.batch_size, False, ""):
        R = M.smooth_maps(model, s.x[sl], s.target[sl], rule, n=config.smooth_n, noise=config.smooth_noise,
                          generator=g, **kw)
        out += [r.detach().cpu().double().numpy() for r in R]
    return out


def _orders(s, config, methods, steps, base, bar):
    sims = {}
    for oi, order in enumerate(config.orders):
        for k, _, mk in M.randomization_steps(s.model, order, config.seed, steps=steps):
            for method in methods:
                sc = _scores(base[method], _maps(s, mk, method, 1 + oi * 1000 + k, config))
                for (prep, measure), v in sc.items():
                    sims.setdefault(_key(order, method, prep, measure),
                                    np.zeros((len(steps), len(v))))[steps.index(k)] = v
                bar.update(1)
            del mk
    return sims


@B.experiment("mprt", "MPRT variants: layer orders, preprocessing, similarities, sMPRT, eMPRT, controls")
def run(config: Config) -> B.Result:
    s = load_setup(**B.setup_kwargs(config))
    methods = B.rule_list(config.methods, METHODS)
    L = B.num_layers(s.model)
    steps = sorted(set(config.steps or range(1, L + 1)))
    smooth_steps = sorted(set(config.smooth_steps or [L]))
    if max(steps[-1], smooth_steps[-1]) > L:
        raise NFRError(f"mprt: step {max(steps[-1], smooth_steps[-1])} out of range 1..{L}")
    base = {m: _maps(s, s.model, m, 0, config) for m in methods}
    bar = tqdm(total=len(config.orders) * len(steps) * len(methods), desc="mprt", disable=config.quiet, leave=False)
    sims = _orders(s, config, methods, steps, base, bar)
    bar.close()
    full = randomize(s.model, "gaussian", config.seed)
    rand = {m: _maps(s, full, m, 999_999, config) for m in methods}
    emprt = {f"{m}|{p}": [M.emprt(M.prepare(a, absolute=ab, normalise=nm), M.prepare(b, absolute=ab, normalise=nm))
                          for a, b in zip(base[m], rand[m])]
             for m in methods for p, (ab, nm) in PREPS.items()}
    smooth = {}
    rules = [m for m in methods if not m.startswith("control_")]
    if config.smooth_n:
        for r in tqdm(rules, desc="smooth MPRT", disable=config.quiet, leave=False):
            sb = _smooth(s, s.model, r, config, 0)
            for k in smooth_steps:
                sc = _scores(sb, _smooth(s, randomize(s.model, "gaussian", config.seed, cascade_from_top=k),
                                         r, config, k))
                for (prep, measure), v in sc.items():
                    smooth.setdefault(_key("top_down", r, prep, measure), []).append(v)
    smooth = {key: np.array(v) for key, v in smooth.items()}
    res = dict(experiment="mprt", config=dict(s.config, methods=methods, orders=list(config.orders), L=L, steps=steps,
                                              smooth_n=config.smooth_n, smooth_noise=config.smooth_noise,
                                              smooth_steps=smooth_steps, preps=list(PREPS),
                                              measures=list(M.SIMILARITIES)),
               mprt={k: B.curve(v) for k, v in sims.items()}, emprt={k: B.stats(v) for k, v in emprt.items()},
               smooth={k: B.curve(v) for k, v in smooth.items()})
    return B.Result(res, arrays=dict(mprt=sims, emprt={k: np.array(v) for k, v in emprt.items()}, smooth=smooth))


def figures(result: B.Result) -> dict:
    """Mean similarity (|R| maps) to the original map against the step, per order (columns) and measure
    (rows: SSIM with the original settings, Spearman); one line per method, markers at the measured steps."""
    cfg = result["config"]
    orders, measures = cfg["orders"], ["ssim_original", "spearman"]
    fig = B.new_figure(figsize=(2.5 * len(orders) + 1.6, 2.1 * len(measures) + 0.3))
    axes = np.atleast_2d(fig.subplots(len(measures), len(orders), squeeze=False, sharey="row"))
    ks = np.array(cfg["steps"])
    for i, measure in enumerate(measures):
        for j, order in enumerate(orders):
            ax = axes[i, j]
            for m in cfg["methods"]:
                a = result.arrays["mprt"][_key(order, m, "abs", measure)]
                ls = {"control_input": "--", "control_sobel": ":"}.get(m, "-")  # the two coincide at 1
                ax.plot(ks, np.nanmean(a, 1), marker="o", ms=2.5, lw=1.6 if ls != "-" else 1.2, ls=ls,
                        label=B.LABELS.get(m, m.replace("control_", "control: ")))
            ax.set_title(f"{order.replace('_', '-')}", fontsize=10)
            ax.tick_params(labelsize=9)
            if i == len(measures) - 1:
                ax.set_xlabel("step k", fontsize=10)
        axes[i, 0].set_ylabel(f"{'SSIM (original)' if measure == 'ssim_original' else 'Spearman'}", fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 1.5 / fig.get_figwidth(), 1))
    return {"mprt.png": fig}


def _f(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:+.3f}"


def summary(result: B.Result) -> str:
    cfg = result["config"]
    lines = [f"  step {cfg['steps'][-1]} of {cfg['L']}, |R| maps: mean similarity per order and measure; eMPRT"]
    for m in cfg["methods"]:
        parts = [f"{o[0]}/{me[:4]} {_f(result['mprt'][_key(o, m, 'abs', me)]['mean'][-1])}"
                 for o in cfg["orders"] for me in ("ssim_original", "spearman")]
        lines.append(f"  {m:16s} " + "  ".join(parts) + f"  eMPRT {_f(result['emprt'][f'{m}|abs']['mean'])}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the chapter's readings
def end_table(result: B.Result) -> dict:
    """The live run at the end of each order, as ``{method label: {column: value}}`` for
    :class:`nfr.plotting.Table`: top-down at the last step under several preprocessings and measures,
    the independent order's last step, eMPRT and smooth MPRT (``"-"`` for the control maps).

    Parameters
    ----------
    result : nfr.experiments.base.Result
        A result of :func:`run`.

    Returns
    -------
    dict
        Rows keyed by the methods' display labels.
    """
    cols = {"td |R| SSIM-orig": ("top_down", "abs", "ssim_original"), "td |R| Spearman": ("top_down", "abs", "spearman"),
            "td signed Spearman": ("top_down", "signed", "spearman"),
            "td |R| SSIM-skimage": ("top_down", "abs", "ssim_skimage"),
            "td |R|+minmax SSIM-skimage": ("top_down", "abs+minmax", "ssim_skimage"),
            "ind. |R| Spearman": ("independent", "abs", "spearman")}
    rows = {}
    for m in result["config"]["methods"]:
        row = {c: float(np.mean(result.arrays["mprt"][_key(o, m, p, me)][-1])) for c, (o, p, me) in cols.items()}
        row["eMPRT"] = result["emprt"][f"{m}|abs"]["mean"]
        sm = result.arrays["smooth"].get(_key("top_down", m, "abs", "spearman"))
        row["sMPRT Spearman"] = float(np.mean(sm[-1])) if sm is not None else "-"
        rows[B.LABELS.get(m, m.replace("control_", "control: "))] = row
    return rows


def control_deviation(result: B.Result, methods=("control_input", "control_sobel")) -> float:
    """The largest |similarity - 1| of model-free control maps over every order, step, preprocessing and
    measure of a :func:`run` result (0 when the test treats them as it must).

    Parameters
    ----------
    result : nfr.experiments.base.Result
        A result of :func:`run` that includes ``methods``.
    methods : tuple of str
        The control maps checked.

    Returns
    -------
    float
        The largest deviation.
    """
    return max(float(np.abs(result.arrays["mprt"][_key(o, m, p, me)] - 1).max())
               for m in methods for o in result["config"]["orders"] for p in PREPS for me in M.SIMILARITIES)


def quantus_comparison(s, rule: str = "gbp", seed: int = 42) -> tuple[list, list]:
    """Quantus 0.6's MPRT (top-down, signed maps, Spearman) after its full randomization, and the package's
    similarity on the same randomized weights (:func:`nfr.mprt.quantus_steps`).

    Parameters
    ----------
    s : nfr.setup.Setup
        The network and images.
    rule : str
        The attribution rule. Default ``"gbp"``.
    seed : int
        Quantus's seed. Default 42.

    Returns
    -------
    tuple of (list of float, list of float)
        Quantus's scores and the package's, one per image.
    """
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantus
    metric = quantus.MPRT(layer_order="top_down", seed=seed, abs=False, normalise=False, skip_layers=True,
                          similarity_func=quantus.similarity_func.correlation_spearman,
                          disable_warnings=True, display_progressbar=False)
    with torch.random.fork_rng():
        q = metric(model=s.model, x_batch=s.x.cpu().numpy(), y_batch=s.target.cpu().numpy(), device="cpu",
                   explain_func=explain, explain_func_kwargs={"method": rule, "reduce": "sum"})
    *_, (last, full) = M.quantus_steps(s.model, "top_down", seed=seed)
    base = [M.prepare(m, absolute=False) for m in M.maps(s.model, s.x, s.target, rule)]
    ours = [M.similarity(b, M.prepare(m, absolute=False), "spearman")
            for b, m in zip(base, M.maps(full, s.x, s.target, rule))]
    return [float(v) for v in q[last]], ours


def quantus_defaults() -> dict:
    """What the installed Quantus documents and does: MPRT's documented and actual default layer order.

    Returns
    -------
    dict
        ``documented`` and ``code`` default of ``quantus.MPRT``'s ``layer_order``.
    """
    import inspect
    import re
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantus
    doc = re.search(r"layer_order.*?default=\"?(\w+)", quantus.MPRT.__init__.__doc__, re.S)
    return dict(documented=doc.group(1) if doc else None,
                code=inspect.signature(quantus.MPRT.__init__).parameters["layer_order"].default)
