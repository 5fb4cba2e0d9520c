"""Images and labels: ImageNet sample photos, ImageNet validation folders, CIFAR-10.

Every loader returns ``(x, y)``: ``x`` a float32 tensor of shape (N, 3, H, W) with values in
[0, 1] (NOT normalised; see :func:`normalize`), ``y`` an int64 tensor of N class indices (or, for
unlabelled photos, a list of names). Subsets are drawn with a ``torch.Generator`` seeded by the
``seed`` argument and returned in sorted file order, so a loader call is deterministic.

Normalisation. torchvision's ImageNet models and the pretrained CIFAR ResNets expect
``(x - mean) / std`` per channel with the ImageNet constants ``IMAGENET_MEAN``,
``IMAGENET_STD``; EfficientNet-Lite0 expects (255 x - 127) / 128
(``EFFICIENTNET_LITE_STATS``). The box of valid inputs [0, 1]^3 maps to the
normalised box [low_c, high_c] = [(0 - mean_c) / std_c, (1 - mean_c) / std_c] per channel
(:func:`box_bounds`), the bounds of DTD's z^B rule (eq 11 of Zheng et al.).

Local files. Nothing here downloads at import or by default. The files the book reads ship inside
the package, in ``nfr/resources`` (listed with sha256 in its ``manifest.json`` and README):
:func:`resource` returns a verified path, :func:`cifar10_test` reads the bundled CIFAR-10 test split
(a lossy JPEG copy) in memory. Other data comes from a path the caller gives, or from torchvision's
download when asked (``cifar10(root, download=True)``; into ``NFR_CACHE`` or ``~/.cache/nfr``).
Nothing is ever written into the repository.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from nfr.errors import NFRError

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "EFFICIENTNET_LITE_STATS", "CIFAR10_CLASSES", "imagenet_classes", "normalize",
    "denormalize", "box_bounds", "resource", "RESOURCES", "cache_dir", "cifar10_test", "foolbox_imagenet", "foolbox_cifar10",
    "skimage_photos", "SKIMAGE_PHOTOS", "imagenet_folder", "imagenet_items",
    "sample_boxes", "parse_voc_xml", "map_box", "imagenet_boxes", "cifar10", "cifar10_folder",
    "load_image", "CIFAR10_MEAN", "CIFAR10_STD", "PREPROCESS", "preprocess_stats", "download",
    "CIFAR10_URL", "CIFAR10_MD5", "cifar10_original",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: (mean, std) of EfficientNet-Lite's TF preprocessing (255 x - 127) / 128, for normalize / box_bounds
EFFICIENTNET_LITE_STATS = ((127 / 255,) * 3, (128 / 255,) * 3)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
#: per-channel mean and standard deviation of the CIFAR-10 training images (all pixels of the
#: 50,000 images), the usual normalisation of CIFAR-10 classifiers trained from scratch
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
#: named input preprocessings, name -> (mean, std) per channel of ``(x - mean) / std`` on x in [0, 1]
PREPROCESS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "efficientnet": EFFICIENTNET_LITE_STATS,
              "cifar": (CIFAR10_MEAN, CIFAR10_STD), "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))}
#: scikit-image's bundled colour photos (no download needed)
SKIMAGE_PHOTOS = ("coffee", "chelsea", "astronaut", "rocket")



# --------------------------------------------------------------------------------------------
# constants and normalisation
# --------------------------------------------------------------------------------------------
def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in torchvision's index order (from torchvision's weights meta).

    Returns
    -------
    list of str
        The class names; entry k is the name of class index k.
    """
    from torchvision.models import VGG16_Weights
    return list(VGG16_Weights.IMAGENET1K_V1.meta["categories"])


def preprocess_stats(preprocess: str | None = None, mean=None, std=None,
                     default: str = "imagenet") -> tuple[str, tuple, tuple]:
    """The input normalisation chosen by a preset name or by explicit per-channel values.

    Parameters
    ----------
    preprocess : str or None
        A key of ``PREPROCESS`` (``"imagenet"``, ``"efficientnet"``, ``"cifar"``, ``"none"``),
        or None for ``default`` (or for the explicit ``mean`` / ``std``).
    mean, std : sequence of float or str, optional
        Per-channel values, given together, as numbers or as one string ``"R,G,B"``; they take the
        place of a preset and cannot be combined with ``preprocess``.
    default : str
        The preset used when nothing is given (the model's own, e.g. ``"efficientnet"``).

    Returns
    -------
    name : str
        The preset's name, or ``"custom"`` for explicit values.
    mean, std : tuple of float
        The values of ``(x - mean) / std``.

    Raises
    ------
    NFRError
        For an unknown preset, only one of ``mean`` / ``std``, both a preset and values, a
        non-positive std, or values that are not numbers (the message names the option).
    """
    def floats(v, opt):
        if isinstance(v, str):
            v = [t for t in v.split(",") if t.strip()]
        try:
            out = tuple(float(t) for t in v)
        except (TypeError, ValueError):
            raise NFRError(f"{opt} expects comma-separated numbers R,G,B, got {v!r}") from None
        if not out or not all(np.isfinite(out)):
            raise NFRError(f"{opt} expects finite numbers R,G,B, got {v!r}")
        return out

    if (mean is None) != (std is None):
        raise NFRError("--mean and --std go together: give both (or a --preprocess preset)")
    if mean is not None:
        if preprocess is not None:
            raise NFRError("give either --preprocess or --mean/--std, not both")
        m, sd = floats(mean, "--mean"), floats(std, "--std")
        if len(m) != len(sd):
            raise NFRError(f"--mean has {len(m)} values but --std has {len(sd)}")
        if min(sd) <= 0:
            raise NFRError(f"--std must be positive, got {sd}")
        return "custom", m, sd
    name = default if preprocess is None else str(preprocess)
    if name not in PREPROCESS:
        raise NFRError(f"--preprocess {name!r} is not one of {', '.join(PREPROCESS)}")
    m, sd = PREPROCESS[name]
    return name, tuple(m), tuple(sd)


def _stats(mean, std, x):
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    return m, s


def normalize(x: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """(x - mean_c) / std_c per channel of an NCHW tensor (ImageNet constants by default).

    Parameters
    ----------
    x : torch.Tensor
        Images (N, C, H, W).
    mean, std : sequence of float
        Per-channel values, converted to ``x``'s dtype and device. Default ``IMAGENET_MEAN``,
        ``IMAGENET_STD``.

    Returns
    -------
    torch.Tensor
        The normalised images, shaped like ``x``.
    """
    m, s = _stats(mean, std, x)
    return (x - m) / s


def denormalize(x: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """Inverse of :func:`normalize`: x * std_c + mean_c.

    Parameters
    ----------
    x : torch.Tensor
        Normalised images (N, C, H, W).
    mean, std : sequence of float
        Per-channel values, converted to ``x``'s dtype and device. Default ``IMAGENET_MEAN``,
        ``IMAGENET_STD``.

    Returns
    -------
    torch.Tensor
        The raw images, shaped like ``x``.
    """
    m, s = _stats(mean, std, x)
    return x * s + m


def box_bounds(mean=IMAGENET_MEAN, std=IMAGENET_STD, lo: float = 0.0, hi: float = 1.0,
               dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel bounds (low, high) of the normalised input box, each of shape (1, C, 1, 1).

    low_c = (lo - mean_c) / std_c and high_c = (hi - mean_c) / std_c, the box [lo, hi]^C of raw
    pixel values after :func:`normalize`; DTD's z^B rule (eq 11 of Zheng et al.) takes them as its bounds.

    Parameters
    ----------
    mean, std : sequence of float
        Per-channel values of the normalisation. Default ``IMAGENET_MEAN``, ``IMAGENET_STD``.
    lo, hi : float
        The range of raw pixel values. Default 0 and 1.
    dtype : torch.dtype
        The dtype of the bounds. Default ``torch.float32``.

    Returns
    -------
    low, high : torch.Tensor
        The bounds, each of shape (1, C, 1, 1).
    """
    m = torch.as_tensor(mean, dtype=dtype).reshape(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=dtype).reshape(1, -1, 1, 1)
    return (lo - m) / s, (hi - m) / s


# --------------------------------------------------------------------------------------------
# locations
# --------------------------------------------------------------------------------------------
#: the package's data folder, with the models and data the book reads (see its README.md)
RESOURCES = Path(__file__).resolve().parent / "resources"


@functools.lru_cache(maxsize=1)
def _manifest() -> dict:
    return json.loads((RESOURCES / "manifest.json").read_text())["files"]


@functools.lru_cache(maxsize=None)
def _verified(path: str, size: int, mtime: int, sha256: str) -> bool:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest() == sha256


def resource(name: str) -> Path:
    """The path of a file shipped in ``nfr/resources``, after checking its sha256.

    Parameters
    ----------
    name : str
        The file's name relative to ``nfr/resources`` as listed in its ``manifest.json``, e.g.
        ``"models/resnet56-4bfd9763.th"`` or ``"data/cifar10-test-jpeg.tar.gz"``.

    Returns
    -------
    pathlib.Path
        The verified file (checked once per process and file version).

    Raises
    ------
    NFRError
        If ``name`` is not in the manifest, the file is missing, or its checksum differs.
    """
    entry = _manifest().get(name)
    if entry is None:
        raise NFRError(f"{name!r} is not one of nfr's resources: {', '.join(sorted(_manifest()))}")
    p = RESOURCES / name
    if not p.is_file():
        raise NFRError(f"nfr's resource {p} is missing: reinstall nfr (or restore the file from git)")
    st = p.stat()
    if not _verified(str(p), st.st_size, st.st_mtime_ns, entry["sha256"]):
        raise NFRError(f"nfr's resource {p} does not match its sha256 {entry['sha256']} in "
                       "nfr/resources/manifest.json: the file was altered or truncated; restore it from git")
    return p


def cache_dir() -> Path:
    """Default download folder: ``$NFR_CACHE`` or ``~/.cache/nfr`` (created on demand).

    Returns
    -------
    pathlib.Path
        The folder, which exists on return.
    """
    d = Path(os.environ.get("NFR_CACHE") or Path.home() / ".cache" / "nfr")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _foolbox_dir() -> Path:
    """foolbox's ``data`` folder, located without importing foolbox (which is slow and noisy)."""
    import importlib.util
    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        raise NFRError("the sample images come from the pip package 'foolbox' (its foolbox/data "
                       "folder); install it with `pip install foolbox`")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


# --------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------
def load_image(path, size: int | None = None, resize: int | None = None) -> torch.Tensor:
    """One RGB image as a float32 tensor (3, H, W) in [0, 1].

    Parameters
    ----------
    path : str, pathlib.Path or file object
        The image file (anything ``PIL.Image.open`` reads); it is converted to RGB.
    size : int, optional
        Then center-crop to size x size (if ``resize`` is None and ``size`` is given, the shorter
        side is scaled to ``size`` first, so the crop keeps as much of the image as possible).
        None: no crop.
    resize : int, optional
        Scale the shorter side to ``resize`` pixels (bicubic). None: no resizing (unless ``size``
        is given).

    Returns
    -------
    torch.Tensor
        (3, H, W) float32 in [0, 1]; (3, size, size) when ``size`` is given.
    """
    from PIL import Image
    with Image.open(path) as im:
        return _pil_to_tensor(im.convert("RGB"), size, resize)


def _pil_to_tensor(im, size=None, resize=None) -> torch.Tensor:
    from PIL import Image
    if size is not None and resize is None:
        resize = size
    if resize is not None:
        w, h = im.size
        r = resize / min(w, h)
        nw, nh = max(size or 1, round(w * r)), max(size or 1, round(h * r))
        im = im.resize((nw, nh), Image.BICUBIC)
    if size is not None:
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
    a = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(a.copy()).permute(2, 0, 1).contiguous()


def select_indices(n_total: int, n: int | None, seed: int) -> list[int]:
    """Sorted indices of a seeded random subset of size n (all when n is None)."""
    if n is None or n >= n_total:
        return list(range(n_total))
    if n < 0:
        raise NFRError(f"n must be >= 0, got {n}")
    g = torch.Generator().manual_seed(int(seed))
    return sorted(torch.randperm(n_total, generator=g)[:n].tolist())


# --------------------------------------------------------------------------------------------
# ImageNet samples
# --------------------------------------------------------------------------------------------
def _foolbox_files(prefix: str) -> list[tuple[Path, int]]:
    d = _foolbox_dir()
    files = sorted(p for p in d.glob(f"{prefix}_*") if p.stem.split("_")[0] == prefix)
    if not files:
        raise NFRError(f"no {prefix}_<index>_<label> images in {d}; reinstall foolbox")
    return [(p, int(p.stem.split("_")[-1])) for p in files]


def foolbox_imagenet(size: int = 224, indices: Sequence[int] | None = None):
    """foolbox's 20 labelled ImageNet validation photos, ``(x, y)`` with x (N, 3, size, size) in [0, 1].

    Files ``foolbox/data/imagenet_<index>_<label>.jpg`` (512 x 512 JPEG in foolbox 3); each is
    resized to size x size with PIL's bicubic filter, exactly as ``foolbox.utils.samples`` does.

    Parameters
    ----------
    size : int
        Side of the resized square images. Default 224.
    indices : sequence of int, optional
        Picks a subset of 0..19, in the given order (all 20 when None).

    Returns
    -------
    x : torch.Tensor
        (N, 3, size, size) float32 in [0, 1].
    y : torch.Tensor
        (N,) int64, the torchvision class indices.

    Raises
    ------
    NFRError
        If the pip package foolbox is not installed or its ``data`` folder has no such images.
    """
    from PIL import Image
    files = _foolbox_files("imagenet")
    if indices is not None:
        files = [files[i] for i in indices]
    xs = []
    for p, _ in files:
        with Image.open(p) as im:
            xs.append(_pil_to_tensor(im.convert("RGB").resize((size, size), Image.BICUBIC)))
    return torch.stack(xs), torch.tensor([lab for _, lab in files], dtype=torch.int64)


def foolbox_cifar10(indices: Sequence[int] | None = None):
    """foolbox's 20 lossless CIFAR-10 test images (``cifar10_<index>_<label>.png``), x (N, 3, 32, 32) in [0, 1].

    Parameters
    ----------
    indices : sequence of int, optional
        Picks a subset of 0..19, in the given order (all 20 when None).

    Returns
    -------
    x : torch.Tensor
        (N, 3, 32, 32) float32 in [0, 1].
    y : torch.Tensor
        (N,) int64 labels, indices into ``CIFAR10_CLASSES``.

    Raises
    ------
    NFRError
        If the pip package foolbox is not installed or its ``data`` folder has no such images.
    """
    files = _foolbox_files("cifar10")
    if indices is not None:
        files = [files[i] for i in indices]
    x = torch.stack([load_image(p) for p, _ in files])
    return x, torch.tensor([lab for _, lab in files], dtype=torch.int64)


def skimage_photos(names: Sequence[str] = SKIMAGE_PHOTOS, size: int = 224):
    """scikit-image's bundled photos, shorter side resized to ``size`` (bicubic) then center-cropped.

    The photos carry no ImageNet label. Available colour photos include coffee, chelsea (a cat),
    astronaut, rocket.

    Parameters
    ----------
    names : sequence of str
        Names of functions of ``skimage.data`` (a grayscale image is repeated over the three
        channels). Default ``SKIMAGE_PHOTOS``.
    size : int
        Side of the square crop. Default 224.

    Returns
    -------
    x : torch.Tensor
        (N, 3, size, size) float32 in [0, 1].
    names : list of str
        The names, in the order of ``x``.

    Raises
    ------
    NFRError
        If ``skimage.data`` has no function of one of the names.
    """
    import skimage.data
    from PIL import Image
    xs = []
    for n in names:
        fn = getattr(skimage.data, n, None)
        if fn is None:
            raise NFRError(f"skimage.data has no photo {n!r}; try one of {SKIMAGE_PHOTOS}")
        a = fn()
        if a.ndim == 2:
            a = np.stack([a] * 3, -1)
        xs.append(_pil_to_tensor(Image.fromarray(a[..., :3]), size))
    return torch.stack(xs), list(names)


_IMG_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def imagenet_items(root, labels_file=None) -> list[tuple[Path, int]]:
    """The ``(path, class index)`` of every image of an ImageNet validation folder.

    In the order :func:`imagenet_folder` draws its subset from (see there for the two layouts).

    Parameters
    ----------
    root : str or pathlib.Path
        The folder: one subfolder per class, or flat image files.
    labels_file : str or pathlib.Path, optional
        The labels of the flat layout (default ``root/labels.txt`` or ``root/val.txt``); not read
        when ``root`` has subfolders.

    Returns
    -------
    list of (pathlib.Path, int)
        Every image (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``, ``.webp``) with its class index, in
        sorted folder and file order.

    Raises
    ------
    NFRError
        If ``root`` is not a folder, a flat folder has no labels file, the labels file's count or
        file names do not match the images, or no image is found.
    """
    root = Path(root)
    if not root.is_dir():
        raise NFRError(f"ImageNet folder {root} does not exist; give the path of an ImageNet "
                       "validation folder (ImageFolder layout or flat files + labels file)")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    items: list[tuple[Path, int]] = []
    if subdirs:
        for k, d in enumerate(subdirs):
            items += [(p, k) for p in sorted(d.iterdir()) if p.suffix.lower() in _IMG_EXT]
    else:
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in _IMG_EXT)
        lf = Path(labels_file) if labels_file else next(
            (root / f for f in ("labels.txt", "val.txt") if (root / f).is_file()), None)
        if lf is None or not lf.is_file():
            raise NFRError(f"{root} holds flat image files but no labels file; give labels_file= "
                           "(lines '<filename> <index>' or '<index>' in sorted filename order)")
        lines = [ln.split() for ln in lf.read_text().splitlines() if ln.strip()]
        if all(len(t) == 1 for t in lines):
            if len(lines) != len(files):
                raise NFRError(f"{lf} has {len(lines)} labels but {root} has {len(files)} images")
            items = list(zip(files, (int(t[0]) for t in lines)))
        else:
            lab = {t[0]: int(t[-1]) for t in lines}
            missing = [f.name for f in files if f.name not in lab]
            if missing:
                raise NFRError(f"{lf} has no label for {missing[0]} (and {len(missing) - 1} more)")
            items = [(f, lab[f.name]) for f in files]
    if not items:
        raise NFRError(f"no images found in {root}")
    return items


def imagenet_folder(root, n: int | None = None, seed: int = 0, size: int = 224,
                    resize: int | None = None, labels_file=None):
    """Images and labels from an ImageNet validation folder, ``(x, y)``, torchvision preprocessing.

    Two layouts are read (:func:`imagenet_items` lists the files):

    1. ImageFolder: ``root/<wnid>/<image>`` with one folder per class; the class index is the
       position of the folder name among the sorted folder names (for the 1000 ImageNet wnids
       this is torchvision's index order).
    2. Flat: all images directly in ``root`` plus ``labels_file`` (default ``root/labels.txt``
       or ``root/val.txt``) whose lines are either ``<filename> <index>`` or just ``<index>``
       (one per image, in sorted filename order). Indices are torchvision's 0-based class indices
       (as in the common ``val.txt``), not the devkit's 1-based ILSVRC2012 ids.

    Each image is resized and center-cropped: the standard ImageNet evaluation transform
    (:func:`imagenet_boxes` maps boxes through the same transform).

    Parameters
    ----------
    root : str or pathlib.Path
        The folder, in one of the two layouts.
    n : int, optional
        Number of images, drawn with a generator seeded by ``seed`` (all when None).
    seed : int
        Seed of the subset's generator. Default 0.
    size : int
        Side of the center crop. Default 224.
    resize : int, optional
        The shorter side is resized to ``resize`` first (default round(size * 256 / 224)).
    labels_file : str or pathlib.Path, optional
        The labels of the flat layout (default ``root/labels.txt`` or ``root/val.txt``).

    Returns
    -------
    x : torch.Tensor
        (n, 3, size, size) float32 in [0, 1].
    y : torch.Tensor
        (n,) int64 class indices.
    """
    items = imagenet_items(root, labels_file)
    pick = select_indices(len(items), n, seed)
    resize = resize if resize is not None else round(size * 256 / 224)
    x = torch.stack([load_image(items[i][0], size=size, resize=resize) for i in pick])
    return x, torch.tensor([items[i][1] for i in pick], dtype=torch.int64)


# --------------------------------------------------------------------------------------------
# bounding boxes (energy-based pointing game)
# --------------------------------------------------------------------------------------------
def sample_boxes(size: int = 224) -> list[dict]:
    """Hand-drawn boxes of 5 of foolbox's 20 ImageNet sample photos (``nfr/resources/ebpg_boxes.json``,
    read its header: determined by eye, about +-8 px, NOT ImageNet annotations).

    Parameters
    ----------
    size : int
        Side of the images the boxes are scaled to. Default 224.

    Returns
    -------
    list of dict
        One dict per boxed photo: ``index`` (0..19, as :func:`foolbox_imagenet`), ``label``,
        ``name`` and ``box`` = (y1, y2, x1, x2), half-open, rows first, scaled from the file's
        224 x 224 pixels to ``size`` (rounded).
    """
    import json
    from importlib import resources
    doc = json.loads(resources.files("nfr").joinpath("resources/ebpg_boxes.json").read_text())
    out = []
    for b in doc["boxes"]:
        d = dict(b)
        d["box"] = tuple(int(round(v * size / 224)) for v in b["box"])
        out.append(d)
    return out


def parse_voc_xml(path) -> dict:
    """One ILSVRC2012 / PASCAL-VOC annotation file, parsed with ``xml.etree``.

    Parameters
    ----------
    path : str or pathlib.Path
        The XML file.

    Returns
    -------
    dict
        ``{"filename", "width", "height", "objects": [(wnid, xmin, ymin, xmax, ymax), ...]}``
        with the coordinates as written (the devkit's 1-based, inclusive pixel coordinates),
        rounded to int; objects without ``<bndbox>`` are skipped.

    Raises
    ------
    NFRError
        If the file cannot be read or parsed, or has no ``<size>`` with ``<width>`` and
        ``<height>``.
    """
    import xml.etree.ElementTree as ET
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise NFRError(f"cannot read the annotation file {path}: {e}") from e
    size = root.find("size")
    if size is None or size.findtext("width") is None or size.findtext("height") is None:
        raise NFRError(f"{path} has no <size><width>/<height>: not an ILSVRC2012 box annotation")
    objs = []
    for o in root.iter("object"):
        bb = o.find("bndbox")
        if bb is None:
            continue
        objs.append((o.findtext("name", "").strip(),
                     *(int(round(float(bb.findtext(k)))) for k in ("xmin", "ymin", "xmax", "ymax"))))
    return dict(filename=root.findtext("filename", ""), width=int(size.findtext("width")),
                height=int(size.findtext("height")), objects=objs)


def map_box(box, width: int, height: int, size: int = 224, resize: int | None = None):
    """An annotation box through the evaluation transform of :func:`load_image` / :func:`imagenet_folder`.

    The shorter side is resized to ``resize``; the resized image is
    nw x nh = max(size, round(w r)) x max(size, round(h r)), r = resize / min(w, h), so x scales
    by nw / w and y by nh / h; the centre crop starts at ((nw - size) // 2, (nh - size) // 2). The
    mapped box is clipped to the crop and given as the pixels whose centre lies inside it.

    Parameters
    ----------
    box : sequence of 4 numbers
        ``(xmin, ymin, xmax, ymax)`` in the devkit's convention (1-based, inclusive pixel
        coordinates: the box covers the continuous interval [xmin - 1, xmax) in 0-based pixel edges).
    width, height : int
        Size w x h of the original image.
    size : int
        Side of the centre crop. Default 224.
    resize : int, optional
        The shorter side is resized to ``resize`` (default round(size * 256 / 224)).

    Returns
    -------
    tuple of int or None
        ``(y1, y2, x1, x2)``, half-open, rows first (:func:`nfr.metrics.energy_in_box`), or None
        when nothing of the box is left in the crop.
    """
    import math
    resize = resize if resize is not None else round(size * 256 / 224)
    r = resize / min(width, height)
    nw, nh = max(size, round(width * r)), max(size, round(height * r))
    left, top = (nw - size) // 2, (nh - size) // 2
    xmin, ymin, xmax, ymax = box
    sx, sy = nw / width, nh / height
    X1, X2 = (xmin - 1) * sx - left, xmax * sx - left
    Y1, Y2 = (ymin - 1) * sy - top, ymax * sy - top
    clip = lambda v: min(max(v, 0), size)  # noqa: E731
    x1, x2 = clip(math.ceil(X1 - 0.5)), clip(math.ceil(X2 - 0.5))
    y1, y2 = clip(math.ceil(Y1 - 0.5)), clip(math.ceil(Y2 - 0.5))
    if x2 <= x1 or y2 <= y1:
        return None
    return (y1, y2, x1, x2)


def imagenet_boxes(xml_path_or_dir, size: int = 224, resize: int | None = None,
                   wnid: str | None = None):
    """ILSVRC2012 validation boxes mapped into the ``size`` x ``size`` crop of :func:`imagenet_folder`.

    Boxes that vanish in the centre crop are dropped, so a list may be empty; the energy-based
    pointing game uses the union of an image's boxes (``nfr.predictable.ebpg``).

    Parameters
    ----------
    xml_path_or_dir : str or pathlib.Path
        One annotation file ``ILSVRC2012_val_XXXXXXXX.xml``, or a folder of them (its ``*.xml``
        files).
    size : int
        Side of the centre crop. Default 224.
    resize : int, optional
        The shorter side is resized to ``resize`` first (default round(size * 256 / 224)).
    wnid : str, optional
        Keep only the objects of that class (e.g. the ImageFolder folder name of the image); None
        keeps all objects of the file.

    Returns
    -------
    list or dict
        For one file, a list of boxes ``(y1, y2, x1, x2)`` (half-open, rows first; see
        :func:`map_box`); for a folder, a dict {file stem: list of boxes}.

    Raises
    ------
    NFRError
        If ``xml_path_or_dir`` is neither a folder nor a file (or a file cannot be parsed, through
        ``parse_voc_xml``).
    """
    p = Path(xml_path_or_dir)
    if p.is_dir():
        return {f.stem: imagenet_boxes(f, size, resize, wnid) for f in sorted(p.glob("*.xml"))}
    if not p.is_file():
        raise NFRError(f"box annotations {p} do not exist; give an ILSVRC2012 validation XML file "
                       "or the folder of them (ILSVRC2012_val_XXXXXXXX.xml)")
    a = parse_voc_xml(p)
    out = []
    for name, *b in a["objects"]:
        if wnid is not None and name != wnid:
            continue
        m = map_box(b, a["width"], a["height"], size, resize)
        if m is not None:
            out.append(m)
    return out


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------
def cifar10(root=None, split: str = "test", download: bool = False, n: int | None = None, seed: int = 0):
    """CIFAR-10 through ``torchvision.datasets.CIFAR10``, ``(x, y)`` with x (N, 3, 32, 32) in [0, 1].

    Parameters
    ----------
    root : str or pathlib.Path, optional
        torchvision's data folder; defaults to ``<cache_dir()>/cifar10``.
    split : str
        ``"train"`` or ``"test"``. Default ``"test"``.
    download : bool
        ``True`` fetches the original (lossless) data set into ``root`` (170 MB). Default False.
    n : int, optional
        Number of images, drawn with a generator seeded by ``seed`` (all when None).
    seed : int
        Seed of the subset's generator. Default 0.

    Returns
    -------
    x : torch.Tensor
        (n, 3, 32, 32) float32 in [0, 1].
    y : torch.Tensor
        (n,) int64 labels, indices into ``CIFAR10_CLASSES``.

    Raises
    ------
    NFRError
        If ``split`` is not ``"train"`` or ``"test"``, or torchvision does not find the data under
        ``root`` (a ``RuntimeError`` of torchvision, e.g. when ``download`` is False).
    """
    if split not in ("train", "test"):
        raise NFRError(f"split must be 'train' or 'test', got {split!r}")
    from torchvision.datasets import CIFAR10
    root = Path(root) if root is not None else cache_dir() / "cifar10"
    try:
        ds = CIFAR10(str(root), train=split == "train", download=download)
    except RuntimeError as e:
        raise NFRError(f"CIFAR-10 not found under {root}: call cifar10(root, download=True) to "
                       "download it with torchvision (needs internet), or use cifar10_folder(path) "
                       "for a JPEG copy") from e
    pick = select_indices(len(ds.data), n, seed)
    x = torch.from_numpy(ds.data[pick]).permute(0, 3, 1, 2).float() / 255.0
    return x.contiguous(), torch.tensor([ds.targets[i] for i in pick], dtype=torch.int64)


def _read_tar_split(tarball: Path, split: str) -> dict[tuple[str, str], bytes]:
    st = tarball.stat()
    return _read_tar_split_cached(str(tarball.resolve()), st.st_size, st.st_mtime_ns, split)


@functools.lru_cache(maxsize=2)
def _read_tar_split_cached(tarball: str, _size: int, _mtime: int, split: str) -> dict[tuple[str, str], bytes]:
    """The encoded image files ``<split>/<class>/<file>`` of a (gzipped) tarball, read in one pass.

    Nothing is written to disk (a test split is 10,000 files of ~1.5 kB;
    reading them takes about 3 s; the last two splits read stay in memory). Keys are (class, file name).
    """
    out = {}
    with tarfile.open(tarball) as tf:
        for m in tf:
            parts = Path(m.name).parts
            if not m.isfile() or split not in parts[:-2]:
                continue
            if Path(parts[-1]).suffix.lower() in _IMG_EXT:
                out[(parts[-2], parts[-1])] = tf.extractfile(m).read()
    if not out:
        raise NFRError(f"{tarball} has no '{split}/<class>/<file>' images")
    return out


def _find_split_root(base: Path, split: str) -> Path:
    for cand in (base, *sorted(p for p in base.iterdir() if p.is_dir())):
        if (cand / split).is_dir():
            return cand / split
    raise NFRError(f"{base} has no '{split}/<class>/' folder (expected layout <split>/<class>/<NNNN>.jpg)")


#: the bundled CIFAR-10 test split (10,000 lossy JPEG files), see :func:`cifar10_test`
CIFAR10_TEST = "data/cifar10-test-jpeg.tar.gz"


def cifar10_test(n: int | None = None, seed: int = 0):
    """The CIFAR-10 test split that ships with nfr (a LOSSY JPEG copy), ``(x, y)``.

    Parameters
    ----------
    n : int or None
        Number of images, a seeded subset drawn over all classes together (all 10,000 when None),
        returned in sorted (class, file) order.
    seed : int
        Seed of the subset's generator.

    Returns
    -------
    x : torch.Tensor
        (n, 3, 32, 32) float32 in [0, 1].
    y : torch.Tensor
        (n,) int64 labels, indices into ``CIFAR10_CLASSES``.

    Raises
    ------
    NFRError
        If the bundled file fails its checksum.

    Notes
    -----
    Against lossless copies of the same images the mean absolute pixel difference is 5.5 to 7.4
    (of 255); accuracies on it are lower than on the original data (the pretrained ResNet-56:
    83.2% here, 93.4% on the original), so say which copy a number comes from.
    """
    return cifar10_folder(resource(CIFAR10_TEST), "test", n, seed)


def cifar10_folder(path, split: str = "test", n: int | None = None, seed: int = 0):
    """CIFAR-10 from a JPEG/PNG folder tree ``<path>/<split>/<class>/<NNNN>.jpg``, ``(x, y)``.

    Class folders must be the ten CIFAR-10 class names; label = index in ``CIFAR10_CLASSES``. The
    test split that ships with nfr is :func:`cifar10_test`.

    Parameters
    ----------
    path : str or pathlib.Path
        The folder, or a ``.tar.gz`` of it (read in memory in one pass; nothing is extracted). The
        ``<split>`` folder may also be one level down, in a subfolder of ``path``.
    split : str
        ``"train"`` or ``"test"``. Default ``"test"``.
    n : int, optional
        Number of images, drawn with a generator seeded by ``seed`` (from all classes together),
        returned in sorted (class, file) order; all when None.
    seed : int
        Seed of the subset's generator. Default 0.

    Returns
    -------
    x : torch.Tensor
        (n, 3, H, W) float32 in [0, 1] (32 x 32 for CIFAR-10).
    y : torch.Tensor
        (n,) int64 labels, indices into ``CIFAR10_CLASSES``.

    Raises
    ------
    NFRError
        If ``split`` is not ``"train"`` or ``"test"``, ``path`` is None or does not exist, or the
        ``<split>`` folder or one of the ten class folders is missing (a tarball must hold exactly
        the ten).
    """
    if split not in ("train", "test"):
        raise NFRError(f"split must be 'train' or 'test', got {split!r}")
    if path is None:
        raise NFRError("cifar10_folder needs a path (a folder <split>/<class>/<NNNN>.jpg or its "
                       ".tar.gz); the bundled test split is nfr.data.cifar10_test(), and "
                       "nfr.data.cifar10(root, download=True) fetches CIFAR-10 with torchvision")
    path = Path(path)
    if not path.exists():
        raise NFRError(f"CIFAR-10 folder or tarball {path} does not exist")
    items = []  # (class index, file name, path or bytes)
    if path.is_file():
        blobs = _read_tar_split(path, split)
        found = {c for c, _ in blobs}
        if found != set(CIFAR10_CLASSES):
            raise NFRError(f"{path}: class folders {sorted(found)} are not the CIFAR-10 classes {CIFAR10_CLASSES}")
        items = [(CIFAR10_CLASSES.index(c), f, blobs[(c, f)]) for c, f in sorted(blobs, key=lambda t: (CIFAR10_CLASSES.index(t[0]), t[1]))]
    else:
        sroot = _find_split_root(path, split)
        for k, c in enumerate(CIFAR10_CLASSES):
            d = sroot / c
            if not d.is_dir():
                raise NFRError(f"{sroot} has no class folder {c!r}; expected {CIFAR10_CLASSES}")
            items += [(k, p.name, p) for p in sorted(d.iterdir()) if p.suffix.lower() in _IMG_EXT]
    pick = select_indices(len(items), n, seed)
    x = torch.stack([load_image(io.BytesIO(items[i][2]) if isinstance(items[i][2], bytes) else items[i][2])
                     for i in pick])
    return x, torch.tensor([items[i][0] for i in pick], dtype=torch.int64)


# --------------------------------------------------------------------------------------------
# downloads (only when asked)
# --------------------------------------------------------------------------------------------
#: the original CIFAR-10 (python pickles, 163 MB) and its published md5
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"


def download(url: str, dest, sha256: str | None = None, md5: str | None = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Fetch ``url`` into the file ``dest``, verifying its checksum, atomically.

    The body is streamed into ``dest`` + ``.part`` in the same folder while its digests are
    computed; only a file whose checksum matches is renamed to ``dest`` (``os.replace``, atomic
    on one file system). On any failure the partial file is removed and nothing is left at
    ``dest``.

    Parameters
    ----------
    url : str
        Address to fetch (http, https or file).
    dest : str or pathlib.Path
        The file to write; its folder is created.
    sha256 : str, optional
        Expected sha256 hex digest, or a prefix of it of at least 8 digits (torchvision's weight
        files carry such a prefix in their names, e.g. ``vgg16-397923af.pth``).
    md5 : str, optional
        Expected md5 hex digest (CIFAR-10 publishes one: ``CIFAR10_MD5``).
    progress : bool
        Show a progress bar (tqdm, on stderr).
    timeout : float
        Seconds to wait for the server on connecting and on each read.

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    NFRError
        On a network or HTTP error (e.g. 404) or a checksum mismatch; the message names the URL.
    """
    import urllib.error
    import urllib.request
    from tqdm.auto import tqdm

    dest = Path(dest)
    if sha256 is not None and len(sha256) < 8:
        raise NFRError(f"sha256 prefix {sha256!r} is too short to verify {url} (8 digits at least)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    h256, h5 = hashlib.sha256(), hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(part, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, disable=not progress,
                      desc=dest.name, leave=False) as bar:
                while True:
                    chunk = r.read(1 << 20)
                    if not chunk:
                        break
                    f.write(chunk)
                    h256.update(chunk)
                    h5.update(chunk)
                    bar.update(len(chunk))
        if sha256 is not None and not h256.hexdigest().startswith(sha256.lower()):
            raise NFRError(f"download of {url} has sha256 {h256.hexdigest()}, expected {sha256}; "
                           "the file was not kept")
        if md5 is not None and h5.hexdigest() != md5.lower():
            raise NFRError(f"download of {url} has md5 {h5.hexdigest()}, expected {md5}; "
                           "the file was not kept")
        os.replace(part, dest)
    except (urllib.error.URLError, OSError, ValueError) as e:
        if isinstance(e, NFRError):
            raise
        raise NFRError(f"could not download {url}: {e}") from e
    finally:
        if part.exists():
            part.unlink()
    return dest


_download = download  # for functions whose ``download`` argument shadows the name


def cifar10_original(n: int | None = None, seed: int = 0, download: bool = False, root=None,
                     progress: bool = True):
    """The original (lossless) CIFAR-10 test split, ``(x, y)``, from the cache or downloaded.

    Parameters
    ----------
    n : int or None
        Number of images, a seeded subset (all 10,000 when None).
    seed : int
        Seed of the subset's generator.
    download : bool
        Fetch ``CIFAR10_URL`` (163 MB) into ``root`` when it is not there, checking its md5
        ``CIFAR10_MD5``, and extract it. Without it a missing copy raises.
    root : str or pathlib.Path, optional
        Folder of the copy (default ``<cache_dir()>/cifar10``).
    progress : bool
        Show the download's progress bar.

    Returns
    -------
    x : torch.Tensor
        (n, 3, 32, 32) float32 in [0, 1].
    y : torch.Tensor
        (n,) int64 labels, indices into ``CIFAR10_CLASSES``.

    Raises
    ------
    NFRError
        If the copy is missing and ``download`` is False, or the download fails its md5.
    """
    root = Path(root) if root is not None else cache_dir() / "cifar10"
    if not (root / "cifar-10-batches-py" / "test_batch").is_file():
        archive = root / "cifar-10-python.tar.gz"
        if not archive.is_file():
            if not download:
                raise NFRError(f"the original CIFAR-10 is not in {root}; add --download to fetch it "
                               f"once ({CIFAR10_URL}, 163 MB, md5 checked), or use --data cifar10 "
                               "(the lossy JPEG copy that ships with nfr)")
            _download(CIFAR10_URL, archive, md5=CIFAR10_MD5, progress=progress)
        with tarfile.open(archive) as tf:
            tf.extractall(root, filter="data")
    return cifar10(root, "test", download=False, n=n, seed=seed)

