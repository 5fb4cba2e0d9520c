"""Model and data loading for the experiments."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from nfr import data as D
from nfr import models as M
from nfr import train as T
from nfr.errors import NFRError

MODELS = ("vgg16", "vgg16_bn", "alexnet", "resnet18", "resnet50", "efficientnet_lite0",
          "cifar_resnet20", "cifar_resnet56", "cifar_vgg16")


# ============================================================================== setup
@dataclass
class Setup:
    """A loaded model and normalised inputs; ``x`` on ``device``, ``target`` a LongTensor.

    Parameters
    ----------
    model : torch.nn.Module
        The network, in eval mode on the device.
    x : torch.Tensor
        The normalised images ``[N, 3, H, W]`` on the device.
    raw : torch.Tensor
        The images in [0, 1] (CPU), for figures.
    target : torch.Tensor
        The class indices ``[N]`` (int64) on the device.
    labels : list of int, optional
        The data labels (None for unlabelled data).
    low, high : torch.Tensor
        DTD's box bounds ``(1, 3, 1, 1)`` on the device.
    config : dict
        What was loaded (model, weights, data, preprocess, targets, predictions, ...), as
        stored in the result's config.
    """
    model: object
    x: object           # normalised images [N, 3, H, W] on device
    raw: object         # images in [0, 1] (CPU), for figures
    target: object      # class indices [N] on device
    labels: list | None
    low: object         # DTD box bounds (1, 3, 1, 1) on device
    high: object
    config: dict


def is_cifar(model: str) -> bool:
    """A CIFAR-10 network (32 x 32 inputs, CIFAR-10 sample images).

    Parameters
    ----------
    model : str
        The model name.

    Returns
    -------
    bool
        Whether the name starts with ``cifar_resnet`` or ``cifar_vgg``.
    """
    return model.startswith(("cifar_resnet", "cifar_vgg"))


def _cifar_vgg16(weights: str, seed: int):
    """The VGG16-layout CIFAR-10 network: 'pretrained' / 'imagenet' = the trained weights that ship
    with nfr (``nfr/resources/models/cifar_vgg16``), 'random' = its initialisation under ``seed``
    (Zheng et al.'s "Random" row), or a state dict of the same width."""
    width = T.bundled_manifest("cifar_vgg16")["width"]
    if weights in ("imagenet", "pretrained"):
        return T.load_bundled("cifar_vgg16")[0].net.float().eval()
    net = M.cifar_vgg16(width, seed=seed).eval()
    if weights is None or weights == "random":
        return net
    M.load_weights_file(net, weights, "cifar_vgg16", weights_only=True)
    return net.eval()


#: the --data names that are not paths
DATA_NAMES = ("samples", "skimage", "cifar10", "cifar10-original")


def is_custom(model: str) -> bool:
    """``package.module:factory``: the user's own network (see :func:`nfr.models.custom_model`).

    Parameters
    ----------
    model : str
        The model name.

    Returns
    -------
    bool
        Whether ``model`` is a string with exactly one ``:`` that is not a name of ``MODELS``.
    """
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
    if model not in MODELS and not is_custom(model):
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
    if is_custom(model):
        return M.custom_model(model, weights, seed=seed)
    pretrained = weights in ("imagenet", "pretrained")
    if model == "cifar_vgg16":
        return _cifar_vgg16(weights, seed)
    if weights is None or weights == "random":
        if model == "efficientnet_lite0":
            return M.efficientnet_lite0(pretrained=False, seed=seed)
        if is_cifar(model):
            return M.cifar_resnet(int(model[len("cifar_resnet"):]), seed=seed)
        return M.torchvision_model(model, None, seed=seed)
    if is_cifar(model):
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


def subset(n_total: int, n: int | None, seed: int) -> list[int]:
    """Seeded subset of image indices (the data loaders' own selection, one implementation).

    Parameters
    ----------
    n_total : int
        The number of images to choose from.
    n : int or None
        The subset's size (all when None or >= ``n_total``).
    seed : int
        The seed of the selection.

    Returns
    -------
    list of int
        The sorted indices.

    Raises
    ------
    nfr.NFRError
        If ``n`` is less than 1.
    """
    if n is not None and n < 1:
        raise NFRError(f"n_images must be >= 1, got {n}")
    return D.select_indices(n_total, n, seed)


def load_data(data: str, model: str, n_images: int | None, size: int, seed: int = 0,
              download: bool = False):
    """``(x, labels)``: images in [0, 1] at ``size`` x ``size`` and their labels (None if unlabelled).

    Parameters
    ----------
    data : str
        ``"samples"`` (foolbox's ImageNet photos, or its CIFAR-10 images for a CIFAR model),
        ``"skimage"``, ``"cifar10"``, ``"cifar10-original"``, or the path of an ImageNet
        validation folder or a CIFAR-10 folder / file.
    model : str
        The model name (decides which sample images).
    n_images : int or None
        The number of images, a seeded subset (None: all).
    size : int
        The resolution; other sizes are resized (bilinear, antialiased).
    seed : int
        The seed of the subset. Default 0.
    download : bool
        ``data="cifar10-original"`` reads the lossless CIFAR-10 test split from the cache,
        fetching it first (md5 checked) when ``download`` is True. Default False.

    Returns
    -------
    x : torch.Tensor
        The images ``[N, 3, size, size]`` in [0, 1].
    labels : torch.Tensor or None
        Their labels, None for unlabelled data (``"skimage"``).

    Raises
    ------
    nfr.NFRError
        If ``data`` is neither a known name nor an existing path (and, from the loaders, for
        missing files or a bad ``n_images``).
    """
    cifar_model = is_cifar(model)
    labels = None
    if data == "samples":
        if cifar_model:
            x, y = D.foolbox_cifar10()
        else:
            x, y = D.foolbox_imagenet(size)
        pick = subset(len(x), n_images, seed)
        x, labels = x[pick], y[pick]
    elif data == "skimage":
        x, _ = D.skimage_photos(size=size)
        x = x[subset(len(x), n_images, seed)]
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
    return getattr(torch, dtype)


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
    default = "efficientnet" if model == "efficientnet_lite0" else "imagenet"
    if isinstance(preprocess, (tuple, list)):
        if len(preprocess) != 2:
            raise NFRError(f"preprocess must be a preset name or (mean, std), got {preprocess!r}")
        name, m, sd = D.preprocess_stats(None, *preprocess, default=default)
    elif isinstance(preprocess, dict):
        name, m, sd = D.preprocess_stats(None, preprocess["mean"], preprocess["std"], default=default)
        name = preprocess.get("name", name)
    else:
        name, m, sd = D.preprocess_stats(preprocess, default=default)
    return dict(name=name, mean=list(m), std=list(sd))


def load_setup(model: str = "vgg16", weights: str = "random", data: str = "samples",
               n_images: int | None = 4, size: int | None = None, device: str = "cpu",
               seed: int = 0, target: str = "pred", batch_size: int = 16, dtype: str = "float32",
               preprocess=None, download: bool = False) -> Setup:
    """Load model and data, normalise the images for the model and pick the target classes.

    The arguments are those of the experiments (module docstring).

    Parameters
    ----------
    model : str
        A name of ``MODELS`` or ``"package.module:factory"``. Default ``"vgg16"``.
    weights : str
        ``"random"`` (default), ``"imagenet"`` / ``"pretrained"`` or the path of a state dict.
    data : str
        The images, as in ``load_data``. Default ``"samples"``.
    n_images : int or None
        The number of images (None: all). Default 4.
    size : int, optional
        The resolution (None: 224; 32 for a CIFAR model; efficientnet_lite0 needs 224).
    device : str
        ``"cpu"`` (default) or ``"cuda"``.
    seed : int
        Seeds the random model and the image subset. Default 0.
    target : str
        ``"pred"`` (the model's prediction; default) or ``"label"``.
    batch_size : int
        Images per forward pass when predicting. Default 16.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.
    preprocess : str, tuple or None
        Chooses the normalisation (:func:`preprocessing`; default the model's own).
    download : bool
        Allows fetching torchvision's ImageNet weights or the original CIFAR-10 (checksums
        verified). Default False.

    Returns
    -------
    Setup
        The model, the normalised images, the targets, DTD's box and the config.

    Raises
    ------
    nfr.NFRError
        On bad arguments, missing files or data: e.g. ``"cuda"`` without a GPU, a ``target``
        other than ``"pred"`` / ``"label"``, efficientnet_lite0 at a size other than 224.
    """
    check_args(model, weights, data, device)
    if device == "cuda" and not torch.cuda.is_available():
        raise NFRError("device 'cuda' requested but torch sees no CUDA GPU; use --device cpu")
    if target not in ("pred", "label"):
        raise NFRError(f"target must be 'pred' or 'label', got {target!r}")
    size = int(size) if size else (32 if is_cifar(model) else 224)
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

    Parameters
    ----------
    model : str
        The model name, as in ``load_setup``.
    weights : str
        The weights, as in ``load_setup``.
    raw : torch.Tensor
        The images ``[N, C, H, W]`` in [0, 1].
    labels : torch.Tensor, sequence of int or None
        Their class labels, or None.
    device : str
        ``"cpu"`` (default) or ``"cuda"``.
    seed : int
        Seeds a random model. Default 0.
    target : str
        ``"pred"`` (default) or ``"label"``.
    batch_size : int
        Images per forward pass when predicting. Default 16.
    cfg : dict, optional
        Adds to the config (e.g. ``data`` and ``size``).
    dtype : str
        ``"float32"`` (default) or ``"float64"``.
    preprocess : str, tuple or None
        As in :func:`preprocessing` (stored in the config as ``preprocess``).
    download : bool
        Allow downloading the weights. Default False.

    Returns
    -------
    Setup
        The loaded setup.

    Raises
    ------
    nfr.NFRError
        For ``"cuda"`` without a GPU, images whose channels do not match the normalisation's,
        ``target="label"`` without labels or with a label beyond the model's classes (and, from
        the helpers, a bad ``dtype``, model, weights or preprocess).
    """
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

