"""The experiments of both papers, one module each, shared by the command line and the book.

Each module holds a ``Config`` dataclass (the only place its defaults live), ``run(config) ->
Result`` (numbers only), ``figures(result)`` and ``summary(result)``; :func:`run` and :func:`write`
here are what ``python -m nfr <experiment>`` calls::

    from nfr import experiments as X
    res = X.run("cascade", model="cifar_resnet20", n_images=2)      # or
    res = X.cascade.run(X.cascade.Config(model="cifar_resnet20", n_images=2))

Experiments of Zheng, Sang and Xu (Unifying Perplexing Behaviors in Modified BP Attributions
through Alignment Perspective): table1, cascade, weight-stats, distributions, removal,
activations, sanity, failure, kis, backdoor. Of the TR-GBP paper (Towards Predictable Feature
Attribution): trgbp, ibd, nie, ebpg, perturbation, trgbp-sanity, methods. The book's own: mprt
(the randomization test's variants, chapter 13).
"""
from __future__ import annotations

import gc
import json
from dataclasses import fields
from pathlib import Path

from nfr.distributed import rank, world_size
from nfr.errors import NFRError
from nfr.experiments import (activations, backdoor, base, cascade, distributions, ebpg, failure, ibd, kis,
                             methods, mprt, nie, perturbation, removal, sanity, table1, trgbp, trgbp_sanity,
                             weight_stats)
from nfr.experiments.base import (REGISTRY, ImageConfig, NetworkConfig, Result, RunConfig, Spec,
                                   check_config, jsonable)

__all__ = ["REGISTRY", "base", "Spec", "Result", "RunConfig", "NetworkConfig", "ImageConfig", "get", "config",
           "run", "write", "activations", "backdoor", "cascade", "distributions", "ebpg", "failure",
           "ibd", "kis", "methods", "mprt", "nie", "perturbation", "removal", "sanity", "table1", "trgbp",
           "trgbp_sanity", "weight_stats"]


def get(name: str) -> Spec:
    """The registered experiment ``name``.

    Parameters
    ----------
    name : str
        The experiment's name (``"cascade"``, ``"weight-stats"``, ...).

    Returns
    -------
    Spec
        Its registry entry.

    Raises
    ------
    nfr.NFRError
        When ``name`` is unknown; the message lists the names.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise NFRError(f"unknown experiment {name!r}; choose one of {', '.join(REGISTRY)}") from None


def config(name: str, **values):
    """The experiment's Config with ``values``, checked.

    Parameters
    ----------
    name : str
        The experiment's name.
    **values
        Values of the Config's fields; the others keep their defaults.

    Returns
    -------
    object
        The experiment's ``Config`` instance.

    Raises
    ------
    nfr.NFRError
        For an unknown field (the message lists the options), an unknown experiment, or a
        value outside its field's choices or range.
    """
    spec = get(name)
    known = {f.name for f in fields(spec.config)}
    bad = sorted(set(values) - known)
    if bad:
        raise NFRError(f"the {name} experiment has no option {', '.join(bad)}; its options: "
                       f"{', '.join(sorted(known))}")
    cfg = spec.config(**values)
    check_config(cfg)
    return cfg


def run(name: str, cfg=None, *, out=None, **values) -> Result:
    """Run the experiment ``name`` with ``cfg`` (its Config) or with ``values`` for its fields.

    Parameters
    ----------
    name : str
        The experiment's name.
    cfg : object, optional
        The experiment's ``Config`` (checked); give this or ``values``, not both.
    out : str or pathlib.Path, optional
        A folder: also write the result's JSON and figures there (:func:`write`).
    **values
        Values of the Config's fields, as in ``config``.

    Returns
    -------
    Result
        The experiment's numbers (and arrays).

    Raises
    ------
    nfr.NFRError
        When both ``cfg`` and ``values`` are given; also for an unknown experiment or option or
        a value outside its range.
    """
    spec = get(name)
    if cfg is None:
        cfg = config(name, **values)
    elif values:
        raise NFRError("give either a Config or field values, not both")
    else:
        check_config(cfg)
    # the networks of a run (randomized copies of a VGG16 in float64 take a gigabyte each) sit in
    # reference cycles (hooks); collect them when the run ends, not when the collector next happens to
    # run, or a chapter that runs several experiments holds them all at once (chapter 7 reached 24 GB)
    gc.collect()
    result = spec.run(cfg)
    gc.collect()
    if out is not None:
        write(name, result, out)
    return result


def write(name: str, result: Result, out) -> list[str]:
    """Write ``<out>/<name>.json`` (config and numbers, non-finite values as null) and the
    experiment's PNG figures (only rank 0 of a sharded run writes).

    Parameters
    ----------
    name : str
        The experiment's name.
    result : Result
        What its ``run`` returned; ``world_size`` and ``figures`` (the figure file names) are
        added to it.
    out : str or pathlib.Path
        The folder, created when missing.

    Returns
    -------
    list of str
        The names of the files written, the JSON first; empty on a rank other than 0.
    """
    spec = get(name)
    result["world_size"] = world_size()
    result["figures"] = []
    if rank() != 0:
        return []
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    for fn, fig in spec.figures(result).items():
        fig.savefig(d / fn, dpi=110)
        result["figures"].append(fn)
    (d / f"{name}.json").write_text(json.dumps(jsonable(dict(result)), indent=1, allow_nan=True))
    return [f"{name}.json"] + result["figures"]

