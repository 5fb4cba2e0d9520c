"""The experiments of Zheng, Sang and Xu (Unifying Perplexing Behaviors ...), Section IV, as plain functions (used by ``python -m nfr`` and the book).

Every experiment function takes plain arguments (strings, ints, lists), returns a JSON-able dict
and, when ``out`` is a folder, writes ``<experiment>.json`` and its PNG figure(s) there. The dict
always holds ``experiment``, ``config`` (the arguments actually used, with the resolved image size
and number of images), ``figures`` (the PNG file names written) and the results.

Shared arguments (the CLI options of the same names, see ``python -m nfr --help``):

* ``model``: one of ``MODELS``. ``weights``: ``"random"`` (the model's own initialisation drawn
  under ``seed``: Zheng et al.'s "Random" setting), ``"imagenet"`` (torchvision's IMAGENET1K_V1 from
  the torch hub cache; the pip-packaged weights for EfficientNet-Lite0; the akamaster checkpoints
  that ship with nfr for the CIFAR ResNet-20/56; ``"pretrained"`` is a synonym) or the path of a
  state dict.
* ``data``: ``"samples"`` (foolbox's 20 labelled ImageNet photos, or its 20 CIFAR-10 images for
  the CIFAR ResNets), ``"skimage"`` (scikit-image's 4 photos, unlabelled), ``"cifar10"`` (the CIFAR-10
  test split that ships with nfr, a lossy JPEG copy), or a path: an ImageNet validation folder (ImageFolder or flat files
  with labels.txt) or a CIFAR-10 folder/``.tar.gz`` (``<split>/<class>/<file>``).
* ``n_images``: how many images (a subset drawn with ``seed``; all when None); ``size``: input
  resolution (default 224, 32 for the CIFAR ResNets); ``batch_size``; ``device`` ("cpu"/"cuda");
  ``seed``: seeds the random model, the image subset and every weight randomization (through
  local generators; nothing is seeded globally).
* ``target``: ``"pred"`` (the model's predicted class, default; works for unlabelled photos) or
  ``"label"`` (the data set's label).
* ``dtype``: ``"float32"`` (default) or ``"float64"``: the model's parameters and the inputs. The
  book computes every number it prints in float64, so that no printed digit depends on the float32
  kernels a CPU picks (they differ between instruction sets in the 4th to 8th digit).

Maps are taken "w/o B" (r_0, no bottom process) wherever Zheng et al. measure cascade alignment
(cascade, distributions, removal, activations); Table I reports both; the sanity check uses the
methods' ordinary output (with bottom process).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nfr.distributed import gather, gather_columns, rank, shard_batches, world_size
from nfr.errors import NFRError

__all__ = ["MODELS", "DATA_NAMES", "EXPERIMENTS", "preprocessing", "load_model", "check_args",
           "table1", "cascade", "weight_stats", "distributions", "removal", "activations", "sanity",
           "load_setup", "Setup"]

MODELS = ("vgg16", "vgg16_bn", "alexnet", "resnet18", "resnet50", "efficientnet_lite0",
          "cifar_resnet20", "cifar_resnet56")
TABLE1_RULES = ("grad_x_input", "gbp", "rectgrad", "zplus", "dtd", "activation")
CASCADE_RULES = ("gbp", "rectgrad", "zplus", "activation")
NFR_RULES = ("gbp", "rectgrad", "zplus")
SANITY_RULES = ("grad", "grad_x_input", "gbp", "rectgrad", "zplus", "dtd")
LABELS = {"grad": "Grad", "grad_x_input": "Grad x Input", "gbp": "GBP", "rectgrad": "RectGrad",
          "zplus": "LRP(z+)", "dtd": "DTD", "activation": "Activation"}


# ============================================================================== setup
@dataclass
class Setup:
    """A loaded model and normalised inputs; ``x`` on ``device``, ``target`` a LongTensor."""
    model: object
    x: object           # normalised images [N, 3, H, W] on device
    raw: object         # images in [0, 1] (CPU), for figures
    target: object      # class indices [N] on device
    labels: list | None
    low: object         # DTD box bounds (1, 3, 1, 1) on device
    high: object
    config: dict


def _torch():
    import torch
    return torch


def _is_cifar(model: str) -> bool:
    return model.startswith("cifar_resnet")


#: the --data names that are not paths
DATA_NAMES = ("samples", "skimage", "cifar10", "cifar10-original")


def _is_custom(model: str) -> bool:
    """``package.module:factory``: the user's own network (see :func:`nfr.models.custom_model`)."""
    return isinstance(model, str) and model.count(":") == 1 and model not in MODELS


def check_args(model: str, weights: str = "random", data: str | None = None,
               device: str = "cpu") -> None:
    """Fail fast, before a model is built, on bad arguments.

    Parameters
    ----------
    model : str
        One of ``MODELS`` or a factory spec ``"package.module:callable"``.
    weights : str
        ``"random"``, ``"imagenet"`` (``"pretrained"``) or the path of a state dict.
    data : str or None
        One of ``DATA_NAMES`` or an existing path (None: not checked).
    device : str
        ``"cpu"`` or ``"cuda"``.

    Raises
    ------
    NFRError
        On an unknown model, a missing weights file, a missing data path or a bad device name.
    """
    if model not in MODELS and not _is_custom(model):
        raise NFRError(f"unknown model {model!r}; choose one of {', '.join(MODELS)} or give your "
                       "own as --model package.module:factory")
    w = "random" if weights is None else str(weights)
    if w not in ("random", "imagenet", "pretrained") and not Path(w).is_file():
        raise NFRError(f"weights file {w} does not exist; give 'random', 'imagenet' or the path of "
                       f"a state dict saved with torch.save for {model}")
    if data is not None and str(data) not in DATA_NAMES and not Path(data).exists():
        raise NFRError(f"data {data!r} is neither {', '.join(map(repr, DATA_NAMES))} nor an "
                       "existing folder (an ImageNet validation folder or a CIFAR-10 folder/.tar.gz)")
    if device not in ("cpu", "cuda"):
        raise NFRError(f"device must be 'cpu' or 'cuda', got {device!r}")


def load_model(model: str, weights: str = "random", seed: int = 0, download: bool = False):
    """The network ``model`` with ``weights``, in eval mode on the CPU.

    Parameters
    ----------
    model : str
        One of ``MODELS``, or ``"package.module:factory"`` for your own network
        (:func:`nfr.models.custom_model`).
    weights : str
        ``"random"`` (the architecture's initialisation under ``seed``), ``"imagenet"`` /
        ``"pretrained"`` (built-in models only) or the path of a state dict.
    seed : int
        Seeds a random initialisation.
    download : bool
        Fetch torchvision's ImageNet weights when they are not cached (sha256 checked).

    Returns
    -------
    torch.nn.Module
        The network in eval mode.

    Raises
    ------
    NFRError
        On an unknown model, missing weights (the message mentions ``--download``) or weights
        that do not fit.
    """
    check_args(model, weights)
    from nfr import models as M
    torch = _torch()
    if _is_custom(model):
        return M.custom_model(model, weights, seed=seed)
    pretrained = weights in ("imagenet", "pretrained")
    if weights is None or weights == "random":
        if model == "efficientnet_lite0":
            return M.efficientnet_lite0(pretrained=False, seed=seed)
        if _is_cifar(model):
            return M.cifar_resnet(int(model[len("cifar_resnet"):]), seed=seed)
        return M.torchvision_model(model, None, seed=seed)
    if _is_cifar(model):
        depth = int(model[len("cifar_resnet"):])
        net = M.load_cifar_resnet(depth if pretrained else str(weights))
        if net.depth != depth:
            raise NFRError(f"weights file {weights} holds a CIFAR ResNet-{net.depth}, but --model is "
                           f"{model}; use --model cifar_resnet{net.depth} or the file for ResNet-{depth}")
        return net
    if model == "efficientnet_lite0":
        if pretrained:
            return M.efficientnet_lite0(pretrained=True, seed=seed)
        path = Path(weights)
        if not path.is_file():
            raise NFRError(f"weights {weights!r} is neither 'random', 'imagenet' nor an existing file")
        net = M.efficientnet_lite0(pretrained=False, seed=seed)
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
            sd = sd.get("state_dict", sd)
            net.load_state_dict({k.removeprefix("module."): v for k, v in sd.items()})
        except Exception as e:  # noqa: BLE001
            raise NFRError(f"could not load {path} into efficientnet_lite0: {str(e)[:300]}") from e
        return net.eval()
    return M.torchvision_model(model, "imagenet" if pretrained else weights, seed=seed,
                               download=download)


def _subset(n_total: int, n: int | None, seed: int) -> list[int]:
    """Seeded subset of image indices (the data loaders' own selection, one implementation)."""
    if n is not None and n < 1:
        raise NFRError(f"n_images must be >= 1, got {n}")
    from nfr.data import _select

    return _select(n_total, n, seed)


def load_data(data: str, model: str, n_images: int | None, size: int, seed: int = 0,
              download: bool = False):
    """``(x, labels)``: images in [0, 1] at ``size`` x ``size`` and their labels (None if unlabelled).

    ``data="cifar10-original"`` reads the lossless CIFAR-10 test split from the cache, fetching it
    first (md5 checked) when ``download`` is True."""
    from nfr import data as D
    torch = _torch()
    cifar_model = _is_cifar(model)
    labels = None
    if data == "samples":
        if cifar_model:
            x, y = D.foolbox_cifar10()
        else:
            x, y = D.foolbox_imagenet(size)
        pick = _subset(len(x), n_images, seed)
        x, labels = x[pick], y[pick]
    elif data == "skimage":
        x, _ = D.skimage_photos(size=size)
        x = x[_subset(len(x), n_images, seed)]
    elif data == "cifar10":
        x, labels = D.cifar10_test(n=n_images, seed=seed)
    elif data == "cifar10-original":
        x, labels = D.cifar10_original(n=n_images, seed=seed, download=download)
    else:
        p = Path(data)
        if not p.exists():
            raise NFRError(f"data {data!r} is neither {', '.join(map(repr, DATA_NAMES))} nor an "
                           "existing folder (an ImageNet validation folder or a CIFAR-10 folder/.tar.gz)")
        if p.is_file() or (p / "test").is_dir() or (p / "train").is_dir():
            x, labels = D.cifar10_folder(p, n=n_images, seed=seed)
        else:
            x, labels = D.imagenet_folder(p, n=n_images, seed=seed, size=size)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                            align_corners=False, antialias=True).clamp(0, 1)
    return x.contiguous(), labels


DTYPES = ("float32", "float64")


def _dtype(dtype: str):
    if dtype not in DTYPES:
        raise NFRError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return getattr(_torch(), dtype)


def preprocessing(model: str, preprocess=None) -> dict:
    """The input normalisation of ``model``: a named preset or explicit per-channel values.

    Parameters
    ----------
    model : str
        The model (its default: ``"efficientnet"`` for efficientnet_lite0, ``"imagenet"`` for
        every other model, the CIFAR ResNets and your own included).
    preprocess : str, tuple or None
        None (the model's default), a key of ``nfr.data.PREPROCESS``, or ``(mean, std)``
        with per-channel values (sequences or ``"R,G,B"`` strings).

    Returns
    -------
    dict
        ``name`` (the preset or ``"custom"``), ``mean`` and ``std`` (lists of floats), as
        stored in the result's config.

    Raises
    ------
    NFRError
        On an unknown preset or malformed values (see :func:`nfr.data.preprocess_stats`).
    """
    from nfr.data import preprocess_stats
    default = "efficientnet" if model == "efficientnet_lite0" else "imagenet"
    if isinstance(preprocess, (tuple, list)):
        if len(preprocess) != 2:
            raise NFRError(f"preprocess must be a preset name or (mean, std), got {preprocess!r}")
        name, m, sd = preprocess_stats(None, *preprocess, default=default)
    elif isinstance(preprocess, dict):
        name, m, sd = preprocess_stats(None, preprocess["mean"], preprocess["std"], default=default)
        name = preprocess.get("name", name)
    else:
        name, m, sd = preprocess_stats(preprocess, default=default)
    return dict(name=name, mean=list(m), std=list(sd))


def load_setup(model: str = "vgg16", weights: str = "random", data: str = "samples",
               n_images: int | None = 4, size: int | None = None, device: str = "cpu",
               seed: int = 0, target: str = "pred", batch_size: int = 16, dtype: str = "float32",
               preprocess=None, download: bool = False) -> Setup:
    """Load model and data, normalise the images for the model and pick the target classes.

    ``preprocess`` chooses the normalisation (:func:`preprocessing`; default the model's own);
    ``download`` allows fetching torchvision's ImageNet weights or the original CIFAR-10
    (checksums verified); the other arguments are those of the experiments (module docstring).
    Raises :class:`nfr.NFRError` on bad arguments, missing files or data."""
    check_args(model, weights, data, device)
    from nfr import data as D
    torch = _torch()
    if device == "cuda" and not torch.cuda.is_available():
        raise NFRError("device 'cuda' requested but torch sees no CUDA GPU; use --device cpu")
    if target not in ("pred", "label"):
        raise NFRError(f"target must be 'pred' or 'label', got {target!r}")
    size = int(size) if size else (32 if _is_cifar(model) else 224)
    if model == "efficientnet_lite0" and size != 224:
        raise NFRError("efficientnet_lite0 precomputes its 'same' padding for 224 x 224 inputs; "
                       "use --size 224")
    pre = preprocessing(model, preprocess)
    raw, labels = load_data(data, model, n_images, size, seed, download)
    return setup_from_images(model, weights, raw, labels, device, seed, target, batch_size,
                             dict(data=str(data), size=size), dtype, pre, download)


def setup_from_images(model: str, weights: str, raw, labels, device: str = "cpu", seed: int = 0,
                      target: str = "pred", batch_size: int = 16, cfg: dict | None = None,
                      dtype: str = "float32", preprocess=None, download: bool = False) -> Setup:
    """A :class:`Setup` from images already loaded (raw, in [0, 1]) and their labels (or None):
    the model, the normalised inputs, DTD's box bounds, and the classes to explain (the
    prediction, or the label checked against the model's classes), all in ``dtype``.
    ``cfg`` adds to the config; ``preprocess`` as in :func:`preprocessing` (stored in the config
    as ``preprocess``)."""
    from nfr import data as D
    torch = _torch()
    dt = _dtype(dtype)
    if device == "cuda" and not torch.cuda.is_available():
        raise NFRError("device 'cuda' requested but torch sees no CUDA GPU; use --device cpu")
    pre = preprocessing(model, preprocess)
    net = load_model(model, weights, seed, download).to(device=device, dtype=dt)
    stats = (pre["mean"], pre["std"])
    if raw.shape[1] != len(pre["mean"]):
        raise NFRError(f"the images have {raw.shape[1]} channels but --mean/--std give "
                       f"{len(pre['mean'])} values")
    x = D.normalize(raw.to(dt), *stats).to(device)
    low, high = (b.to(device=device, dtype=dt) for b in D.box_bounds(*stats, dtype=dt))
    with torch.no_grad():
        logits = torch.cat([net(xb) for xb in x.split(max(1, batch_size))])
    pred = logits.argmax(1)
    lab = None if labels is None else torch.as_tensor(labels, dtype=torch.int64)
    if target == "label":
        if lab is None:
            raise NFRError(f"data {(cfg or {}).get('data', '')!r} has no labels; use --target pred")
        if int(lab.max()) >= logits.shape[1]:
            raise NFRError(f"label {int(lab.max())} is out of range for {model}'s {logits.shape[1]} "
                           "classes; use an ImageNet model or --target pred")
        tgt = lab.to(device)
    else:
        tgt = pred
    cfg = dict(dict(model=model, weights=str(weights)), **(cfg or {}))
    cfg.update(preprocess=pre, n_images=int(len(x)), device=device, dtype=dtype, seed=int(seed), target=target,
               batch_size=int(batch_size), targets=tgt.tolist(), predictions=pred.tolist(),
               labels=None if lab is None else lab.tolist())
    labels_list = None if lab is None else lab.tolist()
    return Setup(net, x, raw, tgt, labels_list, low, high, cfg)


# ============================================================================== helpers
def _rules(rules, default, valid=None):
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


def _batches(s: Setup, batch_size: int, progress: bool, desc: str, shard: bool = False):
    """The batches (slices of ``s.x``); ``shard``: only this rank's (:mod:`nfr.distributed`)."""
    from tqdm.auto import tqdm
    n = len(s.x)
    bs = max(1, int(batch_size))
    if shard:
        slices = shard_batches(n, bs)
    else:
        slices = [slice(i, min(n, i + bs)) for i in range(0, n, bs)]
    for sl in tqdm(slices, desc=desc, disable=not progress or rank() != 0, unit="batch", leave=False):
        yield sl


def _stats(a) -> dict:
    a = np.asarray(a, dtype=float)
    return dict(mean=float(np.nanmean(a)) if a.size else float("nan"),
                std=float(np.nanstd(a)) if a.size else float("nan"), per_image=a.tolist())


def _curve(arr) -> dict:
    """arr [levels, N] -> mean / std per level (over images) and the per-image values."""
    a = np.asarray(arr, dtype=float)
    return dict(mean=np.nanmean(a, 1).tolist(), std=np.nanstd(a, 1).tolist(), per_image=a.T.tolist())


def _num_layers(model) -> int:
    from nfr.engine.weights import weight_layers
    return len(weight_layers(model))


def _rgb(R) -> np.ndarray:
    from nfr.plotting import rgb_map
    return rgb_map(R)


def _img(x) -> np.ndarray:
    return np.asarray(x.detach().cpu().double()).clip(0, 1).transpose(1, 2, 0)


def _finish(name: str, result: dict, out, figs: dict) -> dict:
    """Save figures (name -> matplotlib figure) and ``<name>.json`` under ``out``; close the figures."""
    plt = _plt()
    result["world_size"] = world_size()
    if rank() != 0:  # a sharded run: every rank holds the result, rank 0 writes it
        out = None
    if out is not None:
        d = Path(out)
        d.mkdir(parents=True, exist_ok=True)
        for fn, fig in figs.items():
            fig.savefig(d / fn, dpi=110)
            result["figures"].append(fn)
    for fig in figs.values():
        plt.close(fig)
    result = _jsonable(result)
    if out is not None:
        (Path(out) / f"{name}.json").write_text(json.dumps(result, indent=1, allow_nan=True))
    return result


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.floating, np.integer)):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def _plt():
    import matplotlib
    if matplotlib.get_backend().lower().startswith(("qt", "tk", "gtk", "wx", "macosx")):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _setup_kwargs(kw):
    keys = ("model", "weights", "data", "n_images", "size", "device", "seed", "target", "batch_size")
    return dict({k: kw[k] for k in keys}, dtype=kw.get("dtype", "float32"),
                preprocess=kw.get("preprocess"), download=kw.get("download", False))


# ============================================================================== Table I
def table1(model="vgg16", weights="random", data="samples", n_images=4, size=None, device="cpu",
           seed=0, dtype="float32", target="pred", batch_size=16, rules=None, layer=None, out=None, progress=True,
           n_show=4, preprocess=None, download=False) -> dict:
    """Table I of Zheng et al.: each method's map with and without the bottom process, and its alignment.

    Methods (``rules``): grad_x_input, gbp, rectgrad, zplus, dtd (box bounds = the normalised
    [0, 1] box), activation (A_l of layer ``layer`` propagated with the raw gradient; default
    layer = L // 2, a middle layer). ``alignment[rule]["with_bottom" | "without_bottom"]`` holds
    the mean, std and per-image alignment alpha(R, x). Figure ``table1.png``: the first ``n_show``
    images, one row with and one row without the bottom process each.
    """
    import nfr
    s = load_setup(**_setup_kwargs(locals()))
    rules = _rules(rules, TABLE1_RULES)
    L = _num_layers(s.model)
    layer = int(layer) if layer is not None else max(1, L // 2)
    al = {r: {"with_bottom": [], "without_bottom": []} for r in rules}
    show = {r: {} for r in rules}
    k = min(n_show, len(s.x))
    for sl in _batches(s, batch_size, progress, "table1", shard=True):
        for r in rules:
            for b in (True, False):
                kw = dict(bottom=b)
                if r == "activation":
                    kw["layer"] = layer
                if r == "dtd":
                    kw.update(low=s.low, high=s.high)
                R = nfr.attribute(s.model, s.x[sl], s.target[sl], r, **kw)
                key = "with_bottom" if b else "without_bottom"
                al[r][key] += nfr.alignment(R, s.x[sl]).tolist()
                for i in range(sl.start, min(sl.stop, k)):
                    show[r].setdefault(key, []).append(R[i - sl.start].cpu())
    al = {r: {key: gather(v) for key, v in d.items()} for r, d in al.items()}
    show = {r: {key: gather(show[r].get(key, [])) for key in d} for r, d in al.items()}
    res = dict(experiment="table1", config=dict(s.config, rules=rules, activation_layer=layer, L=L),
               methods=rules, labels={r: LABELS[r] for r in rules},
               alignment={r: {key: _stats(v) for key, v in d.items()} for r, d in al.items()},
               figures=[])
    plt = _plt()
    cols = 1 + len(rules)
    fig, axes = plt.subplots(2 * k, cols, figsize=(1.6 * cols, 1.6 * 2 * k + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(k):
        for j, key in enumerate(("with_bottom", "without_bottom")):
            row = 2 * i + j
            axes[row, 0].imshow(_img(s.raw[i]))
            axes[row, 0].set_title(f"image {i}" + (" (B)" if j == 0 else " (w/o B)"), fontsize=7)
            for c, r in enumerate(rules, 1):
                axes[row, c].imshow(_rgb(show[r][key][i]))
                a = al[r][key][i]
                axes[row, c].set_title(f"{LABELS[r]}\n{'R' if j == 0 else 'R w/o B'} a={a:.2f}",
                                       fontsize=7)
    fig.tight_layout()
    return _finish("table1", res, out, {"table1.png": fig})


# ============================================================================== Fig 2a
def _cascade_curves(model, s: Setup, rules, batch_size, progress, desc, shard=False):
    """alignment [levels, N] per rule (maps w/o B), and the level-L maps of the first image
    (``shard``: this rank's images, gathered over ranks; the maps on rank 0 only)."""
    import nfr
    L = _num_layers(model)
    curves = {r: [] for r in rules}
    first = {}
    for sl in _batches(s, batch_size, progress, desc, shard=shard):
        for r in rules:
            kw = dict(low=s.low, high=s.high) if r == "dtd" else {}
            C = nfr.cascade(model, s.x[sl], s.target[sl], r, **kw)     # [L+1, B, ...]
            xb = s.x[sl]
            curves[r].append(np.stack([nfr.alignment(C[n], xb).cpu().numpy() for n in range(L + 1)]))
            if sl.start == 0:
                first[r] = C[L, 0].cpu()
    local = {r: np.concatenate(v, 1) if v else np.zeros((L + 1, 0)) for r, v in curves.items()}
    return L, {r: gather_columns(v) if shard else v for r, v in local.items()}, first


def cascade(model="vgg16", weights="random", data="samples", n_images=4, size=None, device="cpu",
            seed=0, dtype="float32", target="pred", batch_size=16, rules=None, out=None, progress=True,
        preprocess=None, download=False) -> dict:
    """Fig 2a of Zheng et al.: alignment alpha(r_0^N, x) of cascade substitution at levels N = 0..L.

    Rules: gbp, rectgrad, zplus, activation (also grad, grad_x_input, dtd). ``curves[rule]``:
    mean and std over images per level and the per-image curves. Figure ``cascade.png``.
    """
    s = load_setup(**_setup_kwargs(locals()))
    rules = _rules(rules, CASCADE_RULES, ("grad", "grad_x_input", "gbp", "rectgrad", "zplus", "dtd",
                                          "activation"))
    L, curves, _ = _cascade_curves(s.model, s, rules, batch_size, progress, "cascade", shard=True)
    res = dict(experiment="cascade", config=dict(s.config, rules=rules, L=L),
               levels=list(range(L + 1)), curves={r: _curve(c) for r, c in curves.items()},
               figures=[])
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    lv = np.arange(L + 1)
    for r in rules:
        m, sd = np.nanmean(curves[r], 1), np.nanstd(curves[r], 1)
        ax.plot(lv, m, marker="o", ms=3, label=LABELS[r])
        ax.fill_between(lv, m - sd, m + sd, alpha=0.2)
    ax.set_xlabel("cascade level N (top N layers use the rule)")
    ax.set_ylabel(r"alignment $\alpha(r_0^N, x)$")
    ax.set_title(f"{s.config['model']} ({s.config['weights']}), {len(s.x)} images", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _finish("cascade", res, out, {"cascade.png": fig})


# ============================================================================== Fig 2b,c
def weight_stats(model="vgg16", weights="random", seed=0, max_neurons=512, compare_random=True,
                 out=None, progress=True, preprocess=None, download=False, **_ignored) -> dict:
    """Fig 2b,c of Zheng et al.: pairwise cosine between neuron weights and their norm spread, per layer.

    ``stats[setting]`` is a list of per-layer dicts (see :func:`nfr.engine.weights.weight_stats`)
    for ``weights`` and, if ``compare_random`` and ``weights`` is not "random", for the seeded
    random initialisation of the same architecture. Figure ``weight-stats.png``.
    """
    from nfr.engine.weights import weight_stats as ws
    check_args(model, weights)
    settings = {str(weights): load_model(model, weights, seed, download)}
    if compare_random and str(weights) != "random":
        settings["random"] = load_model(model, "random", seed)
    stats = {k: ws(m, max_neurons=max_neurons, seed=seed) for k, m in settings.items()}
    res = dict(experiment="weight-stats",
               config=dict(model=model, weights=str(weights), seed=int(seed), max_neurons=max_neurons),
               stats=stats, figures=[])
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for k, st in stats.items():
        idx = [d["index"] for d in st]
        cm = np.array([d["cos_mean"] for d in st], dtype=float)
        cs = np.array([d["cos_std"] for d in st], dtype=float)
        axes[0].errorbar(idx, cm, yerr=cs, marker="o", ms=3, capsize=2, label=k)
        nm = np.array([d["norm_mean"] for d in st], dtype=float)
        ns = np.array([d["norm_std"] for d in st], dtype=float)
        axes[1].plot(idx, ns / np.where(nm > 0, nm, np.nan), marker="o", ms=3, label=k)
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_xlabel("layer l")
    axes[0].set_ylabel("pairwise cosine (mean ± std)")
    axes[1].set_xlabel("layer l")
    axes[1].set_ylabel("norm std / norm mean")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle(f"{model}: orthogonality and norm equality of neuron weights", fontsize=9)
    fig.tight_layout()
    return _finish("weight-stats", res, out, {"weight-stats.png": fig})


# ============================================================================== Figs 3-4
def _colour(R, x) -> dict:
    """Per-channel colour statistics of maps R vs inputs x ([N, 3, H, W]), averaged over images.

    ``map_channel_mean`` / ``input_channel_mean``: mean of channel c over pixels divided by the RMS
    of the whole map (resp. input); ``bias`` = their difference (a colour cast of the map that the
    input does not have); ``channel_alignment``: alpha(R_c, x_c) per channel.
    """
    torch = _torch()
    R, x = R.double(), x.double().to(R.device)
    rms = lambda t: t.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-30)  # noqa: E731
    mr = (R / rms(R)).mean(dim=(2, 3))
    mx = (x / rms(x)).mean(dim=(2, 3))
    num = (R * x).sum(dim=(2, 3))
    den = R.pow(2).sum(dim=(2, 3)).sqrt() * x.pow(2).sum(dim=(2, 3)).sqrt()
    ca = torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))
    return dict(map_channel_mean=mr.mean(0).tolist(), input_channel_mean=mx.mean(0).tolist(),
                bias=(mr - mx).mean(0).tolist(), channel_alignment=ca.mean(0).tolist())


def distributions(model="vgg16", weights="random", data="samples", n_images=4, size=None,
                  device="cpu", seed=0, dtype="float32", target="pred", batch_size=16, rules=None,
                  dists=("gaussian", "ring", "uniform"), out=None, progress=True,
        preprocess=None, download=False) -> dict:
    """Figs 3-4 of Zheng et al.: cascade curves after randomizing ALL layers with each distribution.

    Every weight layer is redrawn (He scale; biases zero) from gaussian, ring (isotropic, equal
    norms) or uniform (i.i.d. U[-a, a], not isotropic); the target is the class predicted by the
    randomized model. ``curves[dist][rule]``: alignment per level (mean, std, per image);
    ``colour[dist][rule]``: per-channel colour bias of the full (level-L) maps against the input
    (see ``_colour``). Figures ``distributions.png`` (curves) and ``distributions-maps.png``.
    """
    import nfr
    torch = _torch()
    s = load_setup(**_setup_kwargs(locals()))
    rules = _rules(rules, NFR_RULES, ("gbp", "rectgrad", "zplus", "activation"))
    if isinstance(dists, str):
        dists = [d for d in dists.split(",") if d]
    dists = _rules(list(dists), ("gaussian", "ring", "uniform", "orthogonal"))
    curves, colour, maps = {}, {}, {}
    for d in dists:
        m = nfr.randomize(s.model, d, seed)
        with torch.no_grad():
            tgt = torch.cat([m(xb).argmax(1) for xb in s.x.split(max(1, batch_size))])
        sd = Setup(m, s.x, s.raw, tgt, s.labels, s.low, s.high, s.config)
        L, c, _ = _cascade_curves(m, sd, rules, batch_size, progress, f"distributions:{d}")
        curves[d] = {r: _curve(v) for r, v in c.items()}
        colour[d], maps[d] = {}, {}
        for r in rules:
            R = torch.cat([nfr.attribute(m, s.x[sl], tgt[sl], r, bottom=False,
                                         **({"layer": 1} if r == "activation" else {}))
                           for sl in _batches(sd, batch_size, False, "")])
            colour[d][r] = _colour(R, s.x)
            maps[d][r] = R[0].cpu()
    res = dict(experiment="distributions", config=dict(s.config, rules=rules, dists=dists, L=L),
               levels=list(range(L + 1)), curves=curves, colour=colour, figures=[])
    plt = _plt()
    fig, axes = plt.subplots(1, len(rules), figsize=(3.6 * len(rules), 3), squeeze=False)
    lv = np.arange(L + 1)
    for ax, r in zip(axes[0], rules):
        for d in dists:
            mean, std = np.array(curves[d][r]["mean"]), np.array(curves[d][r]["std"])
            ax.plot(lv, mean, marker="o", ms=3, label=d)
            ax.fill_between(lv, mean - std, mean + std, alpha=0.2)
        ax.set_title(LABELS[r], fontsize=9)
        ax.set_xlabel("cascade level N")
    axes[0, 0].set_ylabel(r"alignment $\alpha$")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig2, ax2 = plt.subplots(len(rules), 1 + len(dists), figsize=(1.8 * (1 + len(dists)),
                                                                   1.8 * len(rules) + 0.3),
                             squeeze=False)
    for i, r in enumerate(rules):
        ax2[i, 0].imshow(_img(s.raw[0]))
        ax2[i, 0].set_title("image", fontsize=7)
        for j, d in enumerate(dists, 1):
            ax2[i, j].imshow(_rgb(maps[d][r]))
            ax2[i, j].set_title(f"{LABELS[r]}, {d}", fontsize=7)
    for ax in ax2.ravel():
        ax.axis("off")
    fig2.tight_layout()
    return _finish("distributions", res, out, {"distributions.png": fig, "distributions-maps.png": fig2})


# ============================================================================== Fig 5
def removal(model="vgg16", weights="random", data="samples", n_images=4, size=None, device="cpu",
            seed=0, dtype="float32", target="pred", batch_size=16, rules=None, ks=(1, 2, 3), out=None,
            progress=True, preprocess=None, download=False) -> dict:
    """Fig 5 of Zheng et al.: alignment after randomizing (Gaussian, He scale) vs removing the top k layers.

    Removal (:func:`nfr.engine.weights.remove`): a Linear layer keeps 0.25% of its input columns,
    a conv kernel its first row and column. For each k in ``ks`` and rule: alignment of the map
    w/o B (target: the original model's class). ``original[rule]`` is the unmodified model.
    Figure ``removal.png``: image, original, random and removal maps for the largest k.
    """
    import nfr
    from nfr.engine.weights import remove
    s = load_setup(**_setup_kwargs(locals()))
    rules = _rules(rules, NFR_RULES, ("grad", "grad_x_input", "gbp", "rectgrad", "zplus", "dtd"))
    L = _num_layers(s.model)
    ks = [int(k) for k in ks]
    for k in ks:
        if not 0 <= k <= L:
            raise NFRError(f"k = {k} out of range 0..{L} (the model has L = {L} weight layers)")

    def run(m):
        al, first = {}, {}
        for r in rules:
            vals = []
            for sl in _batches(s, batch_size, False, "", shard=True):
                kw = dict(low=s.low, high=s.high) if r == "dtd" else {}
                R = nfr.attribute(m, s.x[sl], s.target[sl], r, bottom=False, **kw)
                vals += nfr.alignment(R, s.x[sl]).tolist()
                if sl.start == 0:
                    first[r] = R[0].cpu()
            al[r] = gather(vals)
        return al, first

    from tqdm.auto import tqdm
    orig, orig_maps = run(s.model)
    rand, rem, maps = {}, {}, {}
    for k in tqdm(ks, desc="removal (k)", disable=not progress, leave=False):
        rand[k], mr = run(nfr.randomize(s.model, "gaussian", seed, cascade_from_top=k))
        rem[k], mm = run(remove(s.model, cascade_from_top=k))
        maps[k] = (mr, mm)
    res = dict(experiment="removal", config=dict(s.config, rules=rules, ks=ks, L=L),
               original={r: _stats(v) for r, v in orig.items()},
               random={k: {r: _stats(v) for r, v in d.items()} for k, d in rand.items()},
               removal={k: {r: _stats(v) for r, v in d.items()} for k, d in rem.items()},
               figures=[])
    plt = _plt()
    kmax = max(ks)
    fig, axes = plt.subplots(len(rules), 4, figsize=(7, 1.8 * len(rules) + 0.3), squeeze=False)
    for i, r in enumerate(rules):
        panels = [("image", _img(s.raw[0])), ("original", _rgb(orig_maps[r])),
                  (f"random top {kmax}", _rgb(maps[kmax][0][r])),
                  (f"removal top {kmax}", _rgb(maps[kmax][1][r]))]
        for j, (t, im) in enumerate(panels):
            axes[i, j].imshow(im)
            axes[i, j].set_title(f"{LABELS[r]}: {t}" if j else t, fontsize=7)
            axes[i, j].axis("off")
    fig.tight_layout()
    return _finish("removal", res, out, {"removal.png": fig})


# ============================================================================== Fig 6
def activations(model="vgg16", weights="random", data="samples", n_images=4, size=None,
                device="cpu", seed=0, dtype="float32", target="pred", batch_size=16, rules=None, layers=None,
                frac=0.1, out=None, progress=True, preprocess=None, download=False) -> dict:
    """Fig 6 of Zheng et al.: maps started from the top / bottom ``frac`` of non-zero activations per layer.

    For each rule (gbp, rectgrad, zplus; the rule acts in layers 1..l) and hidden layer l
    (``layers``, default 1..L-1): ``max`` / ``min`` / ``all`` = alignment of the map started from
    A_l restricted to its largest / smallest 10% non-zero entries / all of A_l;
    ``cos_to_ordinary_max`` / ``_min``: cosine between that map and the ordinary attribution (the
    rule over all layers from the target logit), which converge to 1 at higher layers (Zheng et al.'s
    claim). ``ordinary[rule]``: alignment of the ordinary attribution. All maps w/o B.
    Figure ``activations.png``.
    """
    import nfr
    s = load_setup(**_setup_kwargs(locals()))
    rules = _rules(rules, NFR_RULES, ("grad", "gbp", "rectgrad", "zplus"))
    L = _num_layers(s.model)
    layers = list(range(1, L)) if layers is None else [int(l) for l in layers]
    for l in layers:
        if not 1 <= l <= L:
            raise NFRError(f"layer {l} out of range 1..{L}")
    keys = ("max", "min", "all", "cos_to_ordinary_max", "cos_to_ordinary_min")
    acc = {r: {k: {l: [] for l in layers} for k in keys} for r in rules}
    ordinary = {r: [] for r in rules}
    from tqdm.auto import tqdm
    for sl in _batches(s, batch_size, progress, "activations"):
        xb, tb = s.x[sl], s.target[sl]
        for r in rules:
            R0 = nfr.attribute(s.model, xb, tb, r, bottom=False)
            ordinary[r] += nfr.alignment(R0, xb).tolist()
            for l in tqdm(layers, desc=f"layers ({r})", disable=not progress, leave=False):
                for which, rule in (("max", "activation_max"), ("min", "activation_min"),
                                    ("all", "activation")):
                    R = nfr.attribute(s.model, xb, tb, rule, layer=l, below=r, frac=frac,
                                      bottom=False)
                    acc[r][which][l] += nfr.alignment(R, xb).tolist()
                    if which != "all":
                        acc[r][f"cos_to_ordinary_{which}"][l] += nfr.alignment(R, R0).tolist()
    res = dict(experiment="activations", config=dict(s.config, rules=rules, layers=layers, L=L,
                                                     frac=frac),
               layers=layers, ordinary={r: _stats(v) for r, v in ordinary.items()},
               curves={r: {k: dict(mean=[float(np.nanmean(acc[r][k][l])) for l in layers],
                                   std=[float(np.nanstd(acc[r][k][l])) for l in layers])
                           for k in keys} for r in rules},
               figures=[])
    plt = _plt()
    fig, axes = plt.subplots(1, len(rules), figsize=(3.6 * len(rules), 3), squeeze=False)
    for ax, r in zip(axes[0], rules):
        c = res["curves"][r]
        for k, st in (("max", "-o"), ("min", "-s"), ("all", "-^")):
            ax.plot(layers, c[k]["mean"], st, ms=3, label=f"{k} 10%" if k != "all" else "all A_l")
        ax.axhline(res["ordinary"][r]["mean"], color="k", ls="--", lw=0.8, label="ordinary")
        ax.set_title(LABELS[r], fontsize=9)
        ax.set_xlabel("start layer l")
    axes[0, 0].set_ylabel(r"alignment $\alpha$")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return _finish("activations", res, out, {"activations.png": fig})


# ============================================================================== sanity checks
def sanity(model="vgg16", weights="random", data="samples", n_images=4, size=None, device="cpu",
           seed=0, dtype="float32", target="pred", batch_size=16, rules=None, steps=None, out=None,
           progress=True, preprocess=None, download=False) -> dict:
    """Cascading randomization from the top (Adebayo et al. 2018; the sanity checks of Zheng et al., Sec. IV).

    Step k (``steps``, default 0..L; 0 is always added) randomizes the top k layers (Gaussian, He scale, biases zero; layer l always
    gets the same weights). Per rule (the method's ordinary output, with bottom process) and k:
    SSIM (maps reduced to 2D by sum ``|R_c|``, min-max normalised, data_range 1) and Spearman rank
    correlation (of the 2D ``|R|`` maps) between the original map (k = 0) and the map at step k, for
    the original target class. Figure ``sanity.png``.
    """
    import nfr
    from nfr.metrics import normalize_map, spearman, ssim, to_2d
    from tqdm.auto import tqdm
    s = load_setup(**_setup_kwargs(locals()))
    rules = _rules(rules, SANITY_RULES)
    L = _num_layers(s.model)
    steps = sorted({0} | set(range(L + 1) if steps is None else (int(k) for k in steps)))
    if steps[-1] > L:
        raise NFRError(f"sanity step {steps[-1]} out of range 0..{L}")
    base = {}
    mine = _batches(s, batch_size, False, "", shard=True)  # this rank's images (all, unsharded)
    mine = list(mine)
    n_mine = sum(sl.stop - sl.start for sl in mine)
    res_ssim = {r: np.zeros((len(steps), n_mine)) for r in rules}
    res_sp = {r: np.zeros((len(steps), n_mine)) for r in rules}
    for j, k in enumerate(tqdm(steps, desc="sanity (k)", disable=not progress, leave=False)):
        m = nfr.randomize(s.model, "gaussian", seed, cascade_from_top=k) if k else s.model
        for r in rules:
            kw = dict(low=s.low, high=s.high) if r == "dtd" else {}
            R = _torch().cat([nfr.attribute(m, s.x[sl], s.target[sl], r, **kw).cpu()
                              for sl in mine] or [_torch().zeros((0,) + tuple(s.x.shape[1:]))])
            maps = [to_2d(R[i]) for i in range(len(R))]
            if k == 0:
                base[r] = maps
            for i, mp in enumerate(maps):
                a, b = normalize_map(base[r][i]), normalize_map(mp)
                res_ssim[r][j, i] = ssim(a, b, data_range=1.0)
                res_sp[r][j, i] = spearman(base[r][i], mp)
        del m
    res_ssim = {r: gather_columns(v) for r, v in res_ssim.items()}
    res_sp = {r: gather_columns(v) for r, v in res_sp.items()}
    res = dict(experiment="sanity", config=dict(s.config, rules=rules, L=L),
               steps=steps, ssim={r: _curve(v) for r, v in res_ssim.items()},
               spearman={r: _curve(v) for r, v in res_sp.items()}, figures=[])
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    ks = np.array(steps)
    for r in rules:
        axes[0].plot(ks, np.nanmean(res_ssim[r], 1), marker="o", ms=3, label=LABELS[r])
        axes[1].plot(ks, np.nanmean(res_sp[r], 1), marker="o", ms=3, label=LABELS[r])
    axes[0].set_ylabel("SSIM to original map")
    axes[1].set_ylabel("Spearman to original map")
    for ax in axes:
        ax.set_xlabel("top k layers randomized")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return _finish("sanity", res, out, {"sanity.png": fig})


EXPERIMENTS = {"table1": table1, "cascade": cascade, "weight-stats": weight_stats,
               "distributions": distributions, "removal": removal, "activations": activations,
               "sanity": sanity}


# ============================================================================== Fig 8 (KIS)
def kis(model="cifar_resnet56", weights="imagenet", data="cifar10", n_images=500, size=None,
        device="cpu", seed=0, dtype="float32", target="pred", batch_size=100, rules=None, variants=False,
        n_boot=2000, out=None, progress=True, preprocess=None, download=False) -> dict:
    """Fig 8 of Zheng et al.: KIS, Insertion and Insertion(ABS) (:mod:`nfr.kis`) for correct and incorrect
    predictions. The map is ``rules`` (one rule, default gbp) for the decided class (``target``
    must be "pred"); ``scores[name]`` holds the per-image values, ``summary`` the ROC-AUC for
    predicting a correct decision, the bimodality coefficient, the share below 0 and the medians,
    ``auc_difference`` AUC(KIS) - AUC(baseline) with a paired bootstrap 95% interval. Figure
    ``kis.png`` (histograms as in Fig 8 of Zheng et al.)."""
    from nfr import data as D
    from nfr import kis as K
    from nfr.plotting import score_histograms
    if target != "pred":
        raise NFRError("KIS explains the decided class: use --target pred")
    rule = _rules(rules, ("gbp",), ("grad", "gbp", "rectgrad", "zplus", "grad_x_input"))
    if len(rule) != 1:
        raise NFRError(f"the kis experiment takes one rule, got {rule}")
    s = load_setup(**_setup_kwargs(locals()))
    if s.labels is None:
        raise NFRError(f"data {data!r} has no labels; KIS needs correct / incorrect predictions")
    stats = (s.config["preprocess"]["mean"], s.config["preprocess"]["std"])
    dev = s.x.device
    res = K.evaluate(s.model, s.raw.to(dev), s.labels, lambda t: D.normalize(t, *stats),
                     rule=rule[0], batch_size=batch_size, variants=variants, progress=progress)
    keys = [k for k in ("kis", "insertion", "insertion_abs", "kis_image", "insertion_black",
                        "insertion_abs_black") if k in res]
    summ = K.summary(res, keys)
    diffs = {b: K.auc_difference(res["kis"], res[b], res["correct"], n_boot, seed)
             for b in ("insertion", "insertion_abs")}
    result = dict(experiment="kis", config=dict(s.config, rule=rule[0], variants=variants),
                  accuracy=float(res["correct"].mean()), summary=summ, auc_difference=diffs,
                  scores={k: res[k].tolist() for k in keys}, correct=res["correct"].tolist(),
                  figures=[])
    fig = score_histograms(res, ["kis", "insertion", "insertion_abs"])
    return _finish("kis", result, out, {"kis.png": fig})


EXPERIMENTS["kis"] = kis
__all__.append("kis")


def trgbp(model="vgg16", weights="random", data="samples", n_images=4, size=None, device="cpu",
          seed=0, dtype="float32", target="pred", batch_size=4, rules=None, top=5, out=None, progress=True,
        preprocess=None, download=False) -> dict:
    """Figs 3, 7, 8 of the TR-GBP paper: GBP and TR-GBP maps of each image's ``top`` classes (eq 9: input
    plus upsampled bias maps; eq 10: minus the mean over the top classes) and their class
    sensitivity, the mean pairwise correlation between an image's class maps (1 = the same map
    for every class; ``nfr.predictable.class_correlation``). Figure ``trgbp.png``; figure
    ``trgbp_pipeline.png`` (Fig 1 of the TR-GBP paper, ``nfr.experiments_trgbp.pipeline_figure``): the
    parts of the first image's TR-GBP map of its top class (R^0, a few psi(R^l), eq 9, eq 10)."""
    from nfr.predictable import class_correlation
    from nfr.trgbp import class_maps
    s = load_setup(**_setup_kwargs(locals()))
    corr = {"gbp": [], "eq9": [], "trgbp": []}
    first = None
    for sl in _batches(s, batch_size, progress, "trgbp"):
        cls, G, R, Rt = class_maps(s.model, s.x[sl], top)
        for k, m in (("gbp", G), ("eq9", R), ("trgbp", Rt)):
            corr[k] += class_correlation(m).tolist()
        if first is None:
            first = (cls[0].tolist(), G[0].detach().cpu().numpy(), Rt[0].detach().cpu().numpy())
    result = dict(experiment="trgbp", config=dict(s.config, top=top),
                  class_correlation={k: _stats(v) for k, v in corr.items()}, figures=[])
    plt = _plt()
    fig, ax = plt.subplots(2, top, figsize=(2 * top, 4.2))
    for j in range(top):
        for r, (name, maps) in enumerate((("GBP", first[1]), ("TR-GBP", first[2]))):
            ax[r, j].imshow(maps[j], cmap="bwr", vmin=-abs(maps[j]).max(), vmax=abs(maps[j]).max())
            ax[r, j].set_title(f"{name}, class {first[0][j]}", fontsize=8)
            ax[r, j].axis("off")
    from nfr.experiments_trgbp import pipeline_figure, pipeline_maps  # Fig 1 of the TR-GBP paper
    parts = pipeline_maps(s.model, s.x[:1], first[0][0], top)
    fig1, shown = pipeline_figure(s.raw[0], parts)
    result["pipeline"] = dict(image=0, cls=parts["cls"], classes=parts["classes"], layers_shown=shown)
    return _finish("trgbp", result, out, {"trgbp.png": fig, "trgbp_pipeline.png": fig1})


def ibd(model="vgg16", weights="random", data="samples", n_images=20, size=None, device="cpu",
        seed=0, target="pred", batch_size=16, rules=None, out=None, progress=True) -> dict:
    """Table 2 of the TR-GBP paper: ROC-AUC of the border intensity IBD (eq 12; 16 px at 224, scaled) for
    predicting wrong predictions, for TR-GBP, GBP and saliency
    (``nfr.predictable.ibd_experiment``; the half of the images with the lowest IBD of each
    method is discarded, as in the TR-GBP paper). Needs labelled images. Figure ``ibd.png``."""
    from nfr.predictable import ibd_experiment
    if target != "pred":
        raise NFRError("IBD predicts errors of the decided class: use --target pred")
    res = ibd_experiment(model, weights, data, n_images, size, device, seed, batch_size)
    cfg = dict(model=model, weights=weights, data=data, n_images=res["n"], size=size, seed=seed)
    result = dict(experiment="ibd", config=cfg, **res, figures=[])
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 3))
    names = list(res["auc"])
    ax.bar(names, [res["auc"][k] for k in names])
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set_ylabel("ROC-AUC of IBD for errors")
    return _finish("ibd", result, out, {"ibd.png": fig})


EXPERIMENTS["trgbp"] = trgbp
EXPERIMENTS["ibd"] = ibd
__all__ += ["trgbp", "ibd"]

from nfr.experiments_theory import failure as _failure  # noqa: E402
from nfr.experiments_theory import nie as _nie  # noqa: E402

EXPERIMENTS["nie"] = _nie
EXPERIMENTS["failure"] = _failure

from nfr.experiments_eval import ebpg as _ebpg  # noqa: E402
from nfr.experiments_eval import perturbation as _perturbation  # noqa: E402

EXPERIMENTS["ebpg"] = _ebpg
EXPERIMENTS["perturbation"] = _perturbation

from nfr.experiments_trgbp import methods as _methods  # noqa: E402
from nfr.experiments_trgbp import trgbp_sanity as _trgbp_sanity  # noqa: E402
EXPERIMENTS["trgbp-sanity"] = _trgbp_sanity
EXPERIMENTS["methods"] = _methods

from nfr.experiments_backdoor import backdoor as _backdoor  # noqa: E402

EXPERIMENTS["backdoor"] = _backdoor
