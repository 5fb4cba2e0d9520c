"""What every experiment shares (the one module each experiment imports besides its own code): its configuration's common fields, the registry, the result
type and the helpers (one module per experiment beside this one; no experiment imports a sibling).

An experiment module holds

* ``Config``: a dataclass, the ONLY place its defaults live; each field made with :func:`option`
  (default, help text, valid choices or range), from which the command line builds its options;
* ``run(config) -> Result``: the numbers only (no plotting, no files), registered with
  :func:`experiment`;
* ``figures(result) -> {file name: matplotlib Figure}`` and ``summary(result) -> str``.
"""
from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass, fields
from typing import Callable

import numpy as np
import torch.nn.functional as F
from matplotlib.figure import Figure
from tqdm import tqdm

from nfr.distributed import gather_columns, rank, shard_batches
from nfr.engine import attribute as engine
from nfr.engine.weights import weight_layers
from nfr.baselines import attribute_2d
from nfr.baselines import cam_layer as pick_cam_layer
from nfr.config import check_config, option
from nfr.errors import NFRError
from nfr.plotting import LABELS as PLOT_LABELS
from nfr.plotting import rgb_map, to_image
from nfr.setup import DTYPES, MODELS, Setup, setup_from_images

__all__ = ["option", "check_config", "RunConfig", "NetworkConfig", "ImageConfig", "Result", "Spec", "REGISTRY",
           "experiment", "new_figure", "setup_kwargs"]


# ============================================================================== configuration
@dataclass
class RunConfig:
    """Fields of every experiment.

    Parameters
    ----------
    seed : int
        Seeds the random model, the image subset and every randomization (local generators;
        nothing is seeded globally); >= 0. Default 0.
    quiet : bool
        No progress bars. Default False.
    """
    seed: int = option(0, "seeds the random model, the image subset and every randomization "
                          "(local generators; nothing is seeded globally)", minimum=0)
    quiet: bool = option(False, "no progress bars")


@dataclass
class NetworkConfig(RunConfig):
    """Fields of the experiments that load a network.

    Parameters
    ----------
    seed : int
        As in ``RunConfig``. Default 0.
    quiet : bool
        As in ``RunConfig``. Default False.
    model : str
        The network: a name of ``nfr.setup.MODELS`` or your own as ``package.module:factory``
        (a callable returning a ``torch.nn.Module``). Default ``"vgg16"``.
    weights : str
        ``"random"`` (the architecture's initialisation under ``seed``; default),
        ``"imagenet"`` (pretrained; the bundled checkpoints for efficientnet_lite0 and
        cifar_resnet20/56) or the path of a state dict.
    download : bool
        Allow downloads: torchvision's ImageNet weights for ``weights="imagenet"``, the original
        CIFAR-10 for ``data="cifar10-original"`` (checksums verified). Default False.
    """
    model: str = option("vgg16", "network: one of " + ", ".join(MODELS) + ", or your own as "
                        "package.module:factory (a callable returning a torch.nn.Module)",
                        metavar="{" + ",".join(MODELS) + "} or MODULE:FACTORY")
    weights: str = option("random", "'random' (the architecture's initialisation under --seed), "
                          "'imagenet' (pretrained; the bundled checkpoints for efficientnet_lite0 and "
                          "cifar_resnet20/56) or the path of a state dict", metavar="{random,imagenet,PATH}")
    download: bool = option(False, "allow downloads: torchvision's ImageNet weights for --weights "
                            "imagenet, the original CIFAR-10 for --data cifar10-original (checksums verified)")


@dataclass
class ImageConfig(NetworkConfig):
    """Fields of the experiments that explain images.

    Parameters
    ----------
    seed : int
        As in ``RunConfig``. Default 0.
    quiet : bool
        As in ``RunConfig``. Default False.
    model : str
        As in ``NetworkConfig``. Default ``"vgg16"``.
    weights : str
        As in ``NetworkConfig``. Default ``"random"``.
    download : bool
        As in ``NetworkConfig``. Default False.
    device : str
        Where to compute: ``"cpu"`` (default) or ``"cuda"``.
    preprocess : str, optional
        Input normalisation preset: ``"imagenet"``, ``"efficientnet"``, ``"cifar"`` or
        ``"none"`` (None, default: efficientnet for efficientnet_lite0, imagenet for every other
        model).
    mean : list of float, optional
        Per-channel mean of the normalisation (x - mean) / std, in [0, 1], instead of a preset
        (with ``std``); the images are in [0, 1].
    std : list of float, optional
        Per-channel std, > 0 (with ``mean``).
    dtype : str
        The model's parameters and inputs: ``"float32"`` (default) or ``"float64"`` (no printed
        digit depends on the CPU's float32 kernels).
    data : str
        The images: ``"samples"`` (default; foolbox's 20 ImageNet photos, CIFAR-10 images for
        cifar_resnet*), ``"skimage"``, ``"cifar10"`` (the test split that ships with nfr),
        ``"cifar10-original"`` (fetched with ``download``) or a folder.
    n_images : int
        Number of images, a subset drawn with ``seed`` (0 = all); >= 0. Default 4.
    size : int, optional
        Input resolution, >= 1 (None, default: 224; 32 for cifar_resnet*).
    batch_size : int
        Images per batch, >= 1. Default 16.
    target : str
        The class to explain: ``"pred"`` (the model's prediction; default) or ``"label"`` (the
        data label).
    """
    device: str = option("cpu", "where to compute", choices=("cpu", "cuda"))
    preprocess: str | None = option(None, "input normalisation preset (default: efficientnet for "
                                    "efficientnet_lite0, imagenet for every other model)",
                                    choices=("imagenet", "efficientnet", "cifar", "none"))
    mean: list[float] | None = option(None, "per-channel mean of the normalisation (x - mean) / std, "
                                      "instead of a preset (with --std); the images are in [0, 1]",
                                      minimum=0, maximum=1, metavar="R,G,B")
    std: list[float] | None = option(None, "per-channel std (with --mean)", above=0, metavar="R,G,B")
    dtype: str = option("float32", "the model's parameters and inputs (float64: no printed digit "
                        "depends on the CPU's float32 kernels)", choices=DTYPES)
    data: str = option("samples", "images: 'samples' (foolbox's 20 ImageNet photos; CIFAR-10 images "
                       "for cifar_resnet*), 'skimage', 'cifar10' (the test split that ships with nfr), "
                       "'cifar10-original' (fetched with --download) or a folder",
                       metavar="{samples,skimage,cifar10,cifar10-original,PATH}")
    n_images: int = option(4, "number of images, a subset drawn with --seed (0 = all)", minimum=0,
                           metavar="N")
    size: int | None = option(None, "input resolution (default: 224; 32 for cifar_resnet*)", minimum=1,
                              metavar="PX")
    batch_size: int = option(16, "images per batch", minimum=1, metavar="B")
    target: str = option("pred", "class to explain: the model's prediction or the data label",
                         choices=("pred", "label"))


def redefault(name: str, default):
    """:class:`ImageConfig`'s field ``name`` (its help, choices and range) with another default,
    for an experiment whose own setting differs (e.g. kis: the pretrained CIFAR ResNet-56)."""
    m = next(f.metadata for f in fields(ImageConfig) if f.name == name)
    return option(default, m["help"], choices=m["choices"], minimum=m["minimum"],
                  maximum=m["maximum"], above=m["above"], metavar=m["metavar"])


def preprocess_spec(config):
    """``preprocess`` for :func:`nfr.setup.load_setup`: the preset, or (mean, std)."""
    if config.mean is not None or config.std is not None:
        if config.preprocess is not None:
            raise NFRError("give either --preprocess or --mean/--std, not both")
        if config.mean is None or config.std is None:
            raise NFRError("--mean and --std go together")
        return (list(config.mean), list(config.std))
    return config.preprocess


def setup_kwargs(config) -> dict:
    """The keyword arguments of :func:`nfr.setup.load_setup` from an :class:`ImageConfig`."""
    return dict(model=config.model, weights=config.weights, data=config.data,
                n_images=config.n_images or None, size=config.size, device=config.device,
                seed=config.seed, target=config.target, batch_size=config.batch_size,
                dtype=config.dtype, preprocess=preprocess_spec(config), download=config.download)


# ============================================================================== results and registry
class Result(dict):
    """An experiment's numbers (a JSON-able dict: ``experiment``, ``config`` and the results) and,
    in ``arrays``, what its figures draw (maps, images; not written to the JSON).

    Parameters
    ----------
    numbers : dict
        The dict's contents.
    arrays : dict, optional
        Stored (copied) as the attribute ``arrays``; empty when None.
    """

    def __init__(self, numbers: dict, arrays: dict | None = None):
        super().__init__(numbers)
        self.arrays = dict(arrays or {})


@dataclass(frozen=True)
class Spec:
    """A registered experiment: its name, one-line help, module and Config class.

    Parameters
    ----------
    name : str
        The experiment's name.
    help : str
        Its one-line help.
    module : str
        The name of its module (which defines ``figures`` and ``summary``).
    config : type
        Its ``Config`` dataclass.
    run : callable
        Its ``run(config) -> Result``.
    sharded : bool
        Whether its images can be split over torchrun processes. Default False.
    """
    name: str
    help: str
    module: str
    config: type
    run: Callable
    sharded: bool = False

    def figures(self, result: Result) -> dict:
        return sys.modules[self.module].figures(result)

    def summary(self, result: Result) -> str:
        return sys.modules[self.module].summary(result)


#: name -> Spec, filled by :func:`experiment` as each experiment module is imported
REGISTRY: dict[str, Spec] = {}


def experiment(name: str, help: str, *, sharded: bool = False):
    """Register ``run(config: Config) -> Result`` as the experiment ``name`` (as Zennit registers
    composites); ``sharded``: its images can be split over torchrun processes."""
    def register(run):
        mod = sys.modules[run.__module__]
        if name in REGISTRY and REGISTRY[name].module != run.__module__:
            raise NFRError(f"experiment {name!r} registered twice ({REGISTRY[name].module}, {run.__module__})")
        REGISTRY[name] = Spec(name, help, run.__module__, mod.Config, run, sharded)
        return run
    return register


def new_figure(*args, **kwargs) -> Figure:
    """A matplotlib Figure that belongs to no pyplot state and needs no backend (nothing to close)."""
    return Figure(*args, **kwargs)


TABLE1_RULES = ("grad_x_input", "gbp", "rectgrad", "zplus", "dtd", "activation")


CASCADE_RULES = ("gbp", "rectgrad", "zplus", "activation")


NFR_RULES = ("gbp", "rectgrad", "zplus")


SANITY_RULES = ("grad", "grad_x_input", "gbp", "rectgrad", "zplus", "dtd")


#: display names (the one table of :mod:`nfr.plotting`)
LABELS = PLOT_LABELS


# ============================================================================== helpers
def rule_list(rules, default, valid=None):
    if rules is None:
        return list(default)
    if isinstance(rules, str):
        rules = [r.strip() for r in rules.split(",") if r.strip()]
    valid = valid or default
    bad = [r for r in rules if r not in valid]
    if bad or not rules:
        raise NFRError(f"unknown rule(s) {bad or rules} for this experiment; choose from "
                       f"{', '.join(valid)}")
    return list(rules)


def batches(s: Setup, batch_size: int, progress: bool, desc: str, shard: bool = False):
    """The batches (slices of ``s.x``); ``shard``: only this rank's (:mod:`nfr.distributed`)."""
    n = len(s.x)
    bs = max(1, int(batch_size))
    if shard:
        slices = shard_batches(n, bs)
    else:
        slices = [slice(i, min(n, i + bs)) for i in range(0, n, bs)]
    for sl in tqdm(slices, desc=desc, disable=not progress or rank() != 0, unit="batch", leave=False):
        yield sl


def stats(a) -> dict:
    a = np.asarray(a, dtype=float)
    return dict(mean=float(np.nanmean(a)) if a.size else float("nan"),
                std=float(np.nanstd(a)) if a.size else float("nan"), per_image=a.tolist())


def curve(arr) -> dict:
    """arr [levels, N] -> mean / std per level (over images) and the per-image values."""
    a = np.asarray(arr, dtype=float)
    return dict(mean=np.nanmean(a, 1).tolist(), std=np.nanstd(a, 1).tolist(), per_image=a.T.tolist())


def num_layers(model) -> int:
    """L, the number of weight layers of ``model``."""
    return len(weight_layers(model))


def rgb(R) -> np.ndarray:
    """A map as an RGB image (:func:`nfr.plotting.rgb_map`)."""
    return rgb_map(R)


def img(x) -> np.ndarray:
    """An image (3, H, W) in [0, 1] for imshow (:func:`nfr.plotting.to_image`)."""
    return to_image(x)




def jsonable(o):
    """``o`` with numpy scalars as Python numbers and non-finite floats as None (JSON null)."""
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, (np.floating, np.integer)):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o






# ============================================================================== Fig 2a
def cascade_curves(model, s: Setup, rules, batch_size, progress, desc, shard=False, levels=None):
    """alignment [levels, N] per rule (maps w/o B), and the maps of the highest level measured for
    the first image (``shard``: this rank's images, gathered over ranks; the maps on rank 0 only).
    ``levels``: the cascade levels N measured, a subset of 0..L (None: all; the cost of level N
    grows with L - N, so a subset saves time on deep networks)."""
    L = num_layers(model)
    lv = list(range(L + 1)) if levels is None else [int(n) for n in levels]
    curves = {r: [] for r in rules}
    first = {}
    for sl in batches(s, batch_size, progress, desc, shard=shard):
        for r in rules:
            kw = dict(low=s.low, high=s.high) if r == "dtd" else {}
            C = engine.cascade(model, s.x[sl], s.target[sl], r, None if levels is None else lv, **kw)
            xb = s.x[sl]
            curves[r].append(np.stack([engine.alignment(C[i], xb).cpu().numpy() for i in range(len(lv))]))
            if sl.start == 0:
                first[r] = C[len(lv) - 1, 0].cpu()
    local = {r: np.concatenate(v, 1) if v else np.zeros((len(lv), 0)) for r, v in curves.items()}
    return L, {r: gather_columns(v) if shard else v for r, v in local.items()}, first


ALL_METHODS = ("saliency", "gbp", "ig", "gig", "fullgrad", "gradcam", "cameras", "trgbp")


NAMES = PLOT_LABELS


# ============================================================================== helpers
def cam_layer(model) -> str:
    """The module GradCAM and CAMERAS read: :func:`nfr.baselines.cam_layer`."""
    return pick_cam_layer(model)


def st(v) -> dict:
    """:func:`nfr.experiments.stats` without numpy's warning for an all-nan method."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return stats(v)


def maps_fn(model, method: str, layer: str | None):
    lay = layer if method in ("gradcam", "cameras") else None
    return lambda xb, tb: attribute_2d(method, model, xb, tb, layer=lay)


def make_setup(model: str, weights: str, raw, labels, device: str, seed: int, target: str,
                batch_size: int, cfg: dict) -> Setup:
    """A :class:`nfr.experiments.Setup` from images already loaded (one implementation:
    :func:`nfr.experiments.setup_from_images`)."""
    return setup_from_images(model, weights, raw, labels, device, seed, target, batch_size, cfg)


def np2(R) -> np.ndarray:
    return np.asarray(R.detach().cpu().double() if hasattr(R, "detach") else R, dtype=float)


def signed_map(ax, m, title=None, pct: float = 100.0):
    """Show a 2D signed map with the book's signed-map scaling (:func:`nfr.plotting.rgb_map`:
    0 at the middle of the scale, R / (2 v) + 1/2 with v the ``pct`` percentile of |R|) and a
    diverging colour map (red positive, blue negative)."""
    a = np2(m)
    ax.imshow(rgb_map(a[None], pct)[..., 0], cmap="RdBu_r", vmin=0, vmax=1,
              interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def pick(values, n: int) -> list:
    """At most ``n`` entries of ``values`` evenly spaced, first and last included."""
    values = list(values)
    if len(values) <= n:
        return values
    idx = np.unique(np.round(np.linspace(0, len(values) - 1, n)).astype(int))
    return [values[i] for i in idx]


def psi(m, size):
    return F.interpolate(m[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]



def negative_share(R) -> np.ndarray:
    """Share of a map's absolute mass that is negative, sum R^- / sum |R|, per map of a (B, H, W)
    stack (or one (H, W) map); nan for an all-zero map."""
    a = np2(R)
    a = a[None] if a.ndim == 2 else a
    tot = np.abs(a).reshape(len(a), -1).sum(1)
    neg = np.maximum(-a, 0).reshape(len(a), -1).sum(1)
    return np.where(tot > 0, neg / np.where(tot > 0, tot, 1), np.nan)

