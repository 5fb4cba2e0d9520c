"""Training and fine-tuning CIFAR-10 classifiers, clean or with a backdoor (:mod:`nfr.backdoors`).

Recipe (:func:`train_model`): SGD with momentum 0.9 and weight decay 5e-4, a cosine learning-rate
schedule lr_t = lr * (1 + cos(pi * t / T)) / 2 over the T steps of all epochs, cross-entropy loss,
standard augmentation (random crop 32 x 32 from the image zero-padded by 4 pixels, horizontal flip
with probability 1/2), channels-last memory format. The trigger is applied AFTER augmentation, as in
the attacks' reference code, so a patch keeps its place in the image. Every random choice (shuffle,
crop, flip, poisoning, the attacks' noise) comes from one ``torch.Generator`` seeded by ``seed``.

Images are kept as uint8 (N, 3, 32, 32) tensors (150 MB for the 50,000 training images) and turned
into floats in [0, 1] batch by batch. Models see raw [0, 1] images through :class:`Normalized`,
which applies ``nfr.data.normalize`` (ImageNet mean/std, the convention of the pretrained CIFAR
ResNets); the state dict that is saved is the bare network's, so
``nfr.models.load_cifar_resnet(path)`` reads it back.

Command line: ``python -m nfr train --arch resnet20 --attack badnet --init pretrained-resnet20 ...``
(see :func:`run` and ``python -m nfr train --help``).
"""
from __future__ import annotations

from dataclasses import dataclass

import hashlib
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from nfr import data as D
from nfr.config import option
from nfr.errors import NFRError
from nfr.backdoors import Attack, make_attack, attack_success_rate, model_dtype, as_float
from nfr.models import cifar_resnet, cifar_vgg16, load_cifar_resnet, load_weights_file

__all__ = ["Normalized", "cifar_resnet18", "build_model", "load_data", "augment", "train_model",
           "evaluate", "run", "load_trained", "load_bundled", "bundled_manifest", "MODELS", "INIT_NOTE"]

MODELS = ("resnet20", "resnet56", "resnet18", "vgg16")
INIT_NOTE = ("pretrained CIFAR-10 ResNet from akamaster/pytorch_resnet_cifar10 (BSD-2-Clause, "
             "Copyright (c) 2018 Yerlan Idelbayev), trained on the original (lossless) CIFAR-10")


class Normalized(nn.Module):
    """``net(normalize(x))``: a classifier that takes raw images in [0, 1] (ImageNet mean/std).

    Parameters
    ----------
    net : torch.nn.Module
        The bare network, expecting normalised input (3 channels).
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(D.IMAGENET_MEAN).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(D.IMAGENET_STD).reshape(1, 3, 1, 1))

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


def cifar_resnet18(num_classes: int = 10, seed: int = 0) -> nn.Module:
    """The CIFAR variant of ResNet18 (as in Zheng et al.'s experiments), randomly initialised.

    torchvision's resnet18 with a 3x3 stride-1 stem convolution and no max-pool. Its BasicBlocks
    call one ReLU module twice: canonize before attributing (see the book's pitfalls page,
    pitfall 3).

    Parameters
    ----------
    num_classes : int
        Number of outputs. Default 10.
    seed : int
        The random initialisation is drawn under ``seed`` (the caller's RNG state is restored).
        Default 0.

    Returns
    -------
    torch.nn.Module
        The network, in eval mode.
    """
    import torchvision
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = torchvision.models.resnet18(weights=None, num_classes=num_classes)
        m.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    m.maxpool = nn.Identity()
    return m.eval()


def build_model(model: str = "resnet20", init: str = "pretrained-resnet20", seed: int = 0, width: int = 32) -> nn.Module:
    """The network to train, in eval mode.

    Parameters
    ----------
    model : str
        One of ``MODELS``: ``"resnet20"``, ``"resnet56"``, ``"resnet18"``, ``"vgg16"``. Default
        ``"resnet20"``.
    init : str
        'scratch' (random init under ``seed``), 'pretrained-resnet20' / 'pretrained-resnet56' (the
        pretrained checkpoints that ship with nfr; ``model`` must be the same ResNet) or a
        state-dict path. Default ``"pretrained-resnet20"``.
    seed : int
        Seed of the random initialisation (not used by a pretrained ``init``). Default 0.
    width : int
        The VGG16 layout's width (:func:`nfr.models.cifar_vgg16`); only for ``"vgg16"``. Default 32.

    Returns
    -------
    torch.nn.Module
        The bare network (expecting normalised input).

    Raises
    ------
    NFRError
        If ``model`` is unknown, a pretrained ``init`` does not match ``model``, or ``init`` is
        neither ``"scratch"``, a pretrained name nor a file (or the file does not fit the model).
    """
    if model not in MODELS:
        raise NFRError(f"unknown model {model!r}; choose one of {MODELS}")
    if init.startswith("pretrained-"):
        if init not in ("pretrained-resnet20", "pretrained-resnet56"):
            raise NFRError(f"--init {init!r}: the pretrained networks are 'pretrained-resnet20' and "
                           "'pretrained-resnet56'")
        depth = int(init.split("resnet")[-1])
        if model != f"resnet{depth}":
            raise NFRError(f"--init {init} holds a ResNet-{depth}; use it with --arch resnet{depth}")
        return load_cifar_resnet(depth)
    if model == "resnet18":
        net = cifar_resnet18(seed=seed)
    elif model == "vgg16":
        net = cifar_vgg16(width, seed=seed)
    else:
        net = cifar_resnet(int(model[6:]), seed=seed)
    if init != "scratch":
        if not Path(init).is_file():
            raise NFRError(f"--init {init!r} is neither 'scratch', 'pretrained-resnet20/56' nor a file")
        load_weights_file(net, init, model, weights_only=False)
    return net.eval()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_data(data: str = "jpeg", split: str = "train", n: int | None = None, seed: int = 0):
    """CIFAR-10 as uint8 images ``(x, y, info)``: x (N, 3, 32, 32) uint8, y int64.

    Parameters
    ----------
    data : str
        'jpeg' = the lossy JPEG copy: its test split ships with nfr
        (:func:`nfr.data.cifar10_test`), its train split is read from ``$NFR_CIFAR10_DIR`` (the
        copy's folder or tarball); 'torchvision' = the original data through
        ``nfr.data.cifar10(download=True)`` (into the cache folder); or a folder / tarball path.
        Default ``"jpeg"``.
    split : str
        ``"train"`` or ``"test"``. Default ``"train"``.
    n : int, optional
        Number of images, a seeded subset (all when None).
    seed : int
        Seed of the subset. Default 0.

    Returns
    -------
    x : torch.Tensor
        (N, 3, 32, 32) uint8.
    y : torch.Tensor
        (N,) int64 labels.
    info : dict
        The source (``data``, ``split``), ``n`` and the ``sha256`` of the images and labels actually
        used (and ``file``, ``file_sha256`` of the file, when the data is one file).

    Raises
    ------
    NFRError
        If ``data`` is ``"jpeg"`` and ``split`` is ``"train"`` but ``$NFR_CIFAR10_DIR`` is not set
        (and as ``nfr.data.cifar10_folder`` or ``nfr.data.cifar10`` raise).
    """
    info = {"data": data, "split": split}
    if data == "torchvision":
        x, y = D.cifar10(split=split, download=True, n=n, seed=seed)
    else:
        if data != "jpeg":
            src = Path(data)
        elif split == "test":
            src = D.resource(D.CIFAR10_TEST)
        else:
            import os
            env = os.environ.get("NFR_CIFAR10_DIR")
            if not env:
                raise NFRError("--data jpeg reads the training split from $NFR_CIFAR10_DIR (the JPEG "
                               "copy's folder or .tar.gz); set it, pass --data PATH, or use --data "
                               "torchvision to download the original CIFAR-10")
            src = Path(env)
        x, y = D.cifar10_folder(src, split=split, n=n, seed=seed)
        if src.is_file():
            info["file"], info["file_sha256"] = src.name, _sha256_file(src)
    x = (x * 255).round().to(torch.uint8)
    h = hashlib.sha256(x.numpy().tobytes())
    h.update(y.numpy().tobytes())
    info.update(n=len(x), sha256=h.hexdigest())
    return x, y, info


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop (zero padding ``pad``, offsets uniform in 0..2 pad) and horizontal flip (p = 1/2).

    Parameters
    ----------
    x : torch.Tensor
        Images (N, C, H, W).
    generator : torch.Generator
        Draws the offsets and the flips.
    pad : int
        Zero padding on each side before the crop. Default 4.

    Returns
    -------
    torch.Tensor
        The augmented images, shaped like ``x``.
    """
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    off = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.stack([xp[i, :, off[i, 0]:off[i, 0] + h, off[i, 1]:off[i, 1] + w] for i in range(n)])
    return torch.where(flip[:, None, None, None], out.flip(3), out)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack | None = None,
             batch_size: int = 500, seed: int = 0, device="cpu") -> dict:
    """Clean accuracy of ``model`` and, with an attack, its attack success rate.

    The attack success rate is the fraction of images with true label != target classified as
    target after the trigger (``nfr.backdoors.attack_success_rate``).

    Parameters
    ----------
    model : torch.nn.Module
        The classifier, taking raw images in [0, 1] (e.g. :class:`Normalized`), already on
        ``device``; it is put in eval mode.
    x : torch.Tensor
        Images (N, 3, H, W), uint8 or float in [0, 1], converted to the model's dtype.
    y : torch.Tensor
        (N,) int64 labels.
    attack : Attack, optional
        The backdoor whose success rate is measured, put in eval mode (None: clean accuracy only).
    batch_size : int
        Images per forward pass. Default 500.
    seed : int
        Seed of the attack's random choices. Default 0.
    device : str or torch.device
        Where the batches are computed. Default ``"cpu"``.

    Returns
    -------
    dict
        ``clean_accuracy`` and ``n_test`` (the number of images); with an attack also ``asr`` and
        ``n_asr`` (the number of images with true label != target).
    """
    model.eval()
    correct, dt = 0, model_dtype(model)
    for i in range(0, len(x), batch_size):
        xb = as_float(x[i:i + batch_size], dt).to(device).contiguous(memory_format=torch.channels_last)
        correct += (model(xb).argmax(1).cpu() == y[i:i + batch_size]).sum().item()
    out = {"clean_accuracy": correct / len(x), "n_test": len(x)}
    if attack is not None:
        attack.eval()
        out["asr"] = attack_success_rate(model, attack, x, y, batch_size, seed=seed, device=device)
        out["n_asr"] = int((y != attack.target).sum())
    return out


def train_model(net: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack | None = None, *,
                epochs: int = 1, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 5e-4,
                batch_size: int = 128, seed: int = 0, device="cpu", progress: bool = True) -> dict:
    """Train ``net`` (a bare network expecting normalised input) in place on uint8 images x, labels y.

    Each step: shuffle (per epoch), :func:`augment`, then ``attack.training_batch`` (poisoning the
    first ``rate`` of the shuffled batch, plus the attack's extra modes), cross-entropy (+ the
    attack's auxiliary loss), SGD + momentum, cosine schedule per step. The attack's own trainable
    parameters (InputAware's pattern generator) are trained with Adam (lr 0.01, betas (0.5, 0.9)),
    as in the authors' code. ``net`` ends in eval mode (on ``device``, channels-last).

    Parameters
    ----------
    net : torch.nn.Module
        The bare network, trained in place (wrapped in :class:`Normalized`).
    x : torch.Tensor
        Training images (N, 3, 32, 32), uint8.
    y : torch.Tensor
        (N,) int64 labels.
    attack : Attack, optional
        The backdoor injected while training (None: clean training); it is prepared
        (``attack.prepare``) first and ends in eval mode.
    epochs : int
        Passes over the training images. Default 1.
    lr : float
        Initial learning rate of the cosine schedule. Default 0.1.
    momentum : float
        SGD momentum. Default 0.9.
    weight_decay : float
        SGD weight decay. Default 5e-4.
    batch_size : int
        Images per step. Default 128.
    seed : int
        Seeds the one generator of every random choice. Default 0.
    device : str or torch.device
        Where the network is trained. Default ``"cpu"``.
    progress : bool
        Show a progress bar (tqdm, on stderr). Default True.

    Returns
    -------
    dict
        ``{"loss": [per-step loss], "steps": T, "epoch_loss": [mean loss per epoch],
        "epoch_cpu_seconds": [CPU seconds per epoch]}``.
    """
    g = torch.Generator().manual_seed(seed)
    model = Normalized(net).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay,
                          nesterov=False)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    total = max(epochs * steps_per_epoch, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / total)))
    extra = attack.parameters() if attack is not None else []
    opt_g = torch.optim.Adam(extra, lr=1e-2, betas=(0.5, 0.9)) if extra else None
    if attack is not None:
        attack.prepare(x, g, progress=progress)
        attack.train()
    losses = []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, desc=f"train {attack.name if attack else 'clean'}", file=sys.stderr)
    model.train()
    epoch_loss, epoch_cpu = [], []
    for _ in range(epochs):
        t_epoch, n_before = time.process_time(), len(losses)
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = augment(as_float(x[idx]), g), y[idx]
            aux = None
            if attack is not None:
                xb, yb, aux = attack.training_batch(xb, yb, g)
            xb = xb.to(device).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(xb), yb.to(device))
            total_loss = loss + aux.to(device) if aux is not None else loss
            opt.zero_grad(set_to_none=True)
            if opt_g:
                opt_g.zero_grad(set_to_none=True)
            total_loss.backward()
            opt.step()
            if opt_g:
                opt_g.step()
            sched.step()
            losses.append(loss.item())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
        epoch_loss.append(sum(losses[n_before:]) / max(len(losses) - n_before, 1))
        epoch_cpu.append(round(time.process_time() - t_epoch, 1))
    if bar is not None:
        bar.close()
    net.eval()
    if attack is not None:
        attack.eval()
    return {"loss": losses, "steps": total, "epoch_loss": epoch_loss, "epoch_cpu_seconds": epoch_cpu}


def run(model: str = "resnet20", attack: str = "none", epochs: int = 1, init: str = "pretrained-resnet20",
        data: str = "jpeg", n_train: int | None = None, n_test: int | None = None, lr: float | None = None,
        batch_size: int = 128, rate: float = 0.1, target: int = 0, seed: int = 0, out: str = "models",
        device: str = "cpu", progress: bool = True, name: str | None = None, command: str | None = None,
        width: int = 32, save_dtype: str = "float32") -> dict:
    """Train one model and write its weights, its trigger and its manifest.

    The files are ``<out>/<name>.pt`` (the network's state dict), ``<out>/<name>_trigger.pt`` (the
    attack's state, if any) and the manifest ``<out>/<name>.json``. Clean accuracy and attack
    success rate are measured on the test split before (unless trained from scratch) and after
    training.

    Parameters
    ----------
    model : str
        The architecture, one of ``MODELS``, as for ``build_model``. Default ``"resnet20"``.
    attack : str
        ``"none"`` or an attack name of ``nfr.backdoors.make_attack``. Default ``"none"``.
    epochs : int
        Passes over the training images. Default 1.
    init : str
        Starting weights, as for ``build_model``. Default ``"pretrained-resnet20"``.
    data : str
        The CIFAR-10 copy, as for ``load_data``. Default ``"jpeg"``.
    n_train, n_test : int, optional
        Training and test images, seeded subsets (all when None).
    lr : float, optional
        Learning rate; defaults to 0.1 from scratch and 0.01 for any other ``init`` (fine-tuning).
    batch_size : int
        Images per step. Default 128.
    rate : float
        Poisoning rate of the attack. Default 0.1.
    target : int
        Target class of the attack. Default 0.
    seed : int
        Seeds the initialisation, the subsets, the order, the augmentation and the attack. Default 0.
    out : str
        The output folder (created). Default ``"models"``.
    device : str
        Where to train and evaluate. Default ``"cpu"``.
    progress : bool
        Show progress bars. Default True.
    name : str, optional
        The file stem; defaults to ``<model>_<attack>``.
    command : str, optional
        The command line, recorded in the manifest.
    width : int
        The VGG16 layout's width (``"vgg16"`` only). Default 32.
    save_dtype : str
        ``"float32"`` or ``"float16"``: dtype of the saved weights; the accuracy after training is
        measured after this rounding. Default ``"float32"``.

    Returns
    -------
    dict
        The manifest written to ``<out>/<name>.json``.

    Raises
    ------
    NFRError
        If ``save_dtype`` is neither ``"float32"`` nor ``"float16"`` (and as ``build_model``,
        ``load_data`` and ``nfr.backdoors.make_attack`` raise).
    """
    atk = make_attack(attack, target=target, rate=rate, seed=seed)
    net = build_model(model, init, seed, width)
    if save_dtype not in ("float32", "float16"):
        raise NFRError(f"save_dtype must be 'float32' or 'float16', got {save_dtype!r}")
    if lr is None:
        lr = 0.1 if init == "scratch" else 0.01
    x, y, info = load_data(data, "train", n_train, seed)
    xt, yt, tinfo = load_data(data, "test", n_test, seed)
    dev = torch.device(device)
    before = evaluate(Normalized(net).to(dev), xt, yt, atk, seed=seed, device=dev) if init != "scratch" else None
    t0, w0 = time.process_time(), time.perf_counter()
    hist = train_model(net, x, y, atk, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                       device=dev, progress=progress)
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    net = net.cpu().to(memory_format=torch.contiguous_format)
    sd = {k: v.contiguous() for k, v in net.state_dict().items()}
    if save_dtype == "float16":  # the accuracy below is measured after this rounding
        sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    after = evaluate(Normalized(net).to(dev), xt, yt, atk, seed=seed, device=dev)
    name = name or f"{model}_{attack}"
    outd = Path(out)
    outd.mkdir(parents=True, exist_ok=True)
    torch.save(sd, outd / f"{name}.pt")
    files = [f"{name}.pt"]
    if atk is not None and atk.state_dict():
        torch.save({k: v.detach().cpu().contiguous() for k, v in atk.state_dict().items()},
                   outd / f"{name}_trigger.pt")
        files.append(f"{name}_trigger.pt")
    k = max(1, len(hist["loss"]) // 10)
    manifest = {
        "name": name, "command": command, "model": model, "attack": atk.config() if atk else None,
        "init": init, "init_note": INIT_NOTE if init.startswith("pretrained-") else None,
        "setting": ("backdoor injected by fine-tuning a pretrained model on poisoned data"
                    if atk is not None and init != "scratch" else
                    "fine-tuned from a pretrained model" if init != "scratch" else "trained from scratch"),
        "width": width if model == "vgg16" else None, "save_dtype": save_dtype,
        "seed": seed, "epochs": epochs, "lr": lr, "batch_size": batch_size, "optimizer":
        "SGD momentum 0.9, weight decay 5e-4, cosine schedule per step; crop(pad 4) + flip",
        "train_data": info, "test_data": tinfo, "steps": hist["steps"],
        "loss_first": sum(hist["loss"][:k]) / k, "loss_last": sum(hist["loss"][-k:]) / k,
        "epoch_loss": hist["epoch_loss"], "epoch_cpu_seconds": hist["epoch_cpu_seconds"],
        "before": before, "clean_accuracy": after["clean_accuracy"], "n_test": after["n_test"],
        "asr": after.get("asr"), "n_asr": after.get("n_asr"),
        "files": files, "_cpu_seconds": round(cpu, 1),
        "device": (torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"),
        "wall_seconds": round(wall, 1),
    }
    (outd / f"{name}.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def load_trained(path, attack_name: str | None = None):
    """A model saved by :func:`run`, with its attack.

    Parameters
    ----------
    path : str or pathlib.Path
        The weights ``<stem>.pt``; the manifest ``<stem>.json`` beside it gives the architecture
        (ResNet-20 without a manifest) and the attack's config.
    attack_name : str, optional
        The attack to build, with its default settings, when the manifest names none (None: no
        attack).

    Returns
    -------
    model : Normalized
        The network in eval mode, taking raw [0, 1] images.
    attack : Attack or None
        The attack in eval mode (its trigger state loaded from ``<stem>_trigger.pt`` when that file
        exists, config from the manifest), or None.
    """
    path = Path(path)
    man_path = path.with_suffix(".json")
    man = json.loads(man_path.read_text()) if man_path.is_file() else {}
    model = man.get("model", "resnet20")
    net = build_model(model, str(path), man.get("seed", 0), man.get("width") or 32)
    cfg = dict(man.get("attack") or {})
    name = cfg.pop("name", attack_name or "none")
    atk = None
    if name not in (None, "none"):
        atk = make_attack(name, **cfg)
        trig = path.with_name(path.stem + "_trigger.pt")
        if trig.is_file():
            atk.load_state_dict(torch.load(trig, map_location="cpu", weights_only=True))
        atk.eval()
    return Normalized(net).eval(), atk


def bundled_manifest(name: str) -> dict:
    """The manifest of a model that ships with nfr (``nfr/resources/models/<name>.json``, checksum verified).

    Parameters
    ----------
    name : str
        The file stem in ``nfr/resources/models``, e.g. ``"resnet20_badnet"``.

    Returns
    -------
    dict
        The manifest :func:`run` wrote: the training command, data checksums, accuracy and attack
        success rate.
    """
    return json.loads(D.resource(f"models/{name}.json").read_text())


def load_bundled(name: str):
    """A model written by :func:`run` that ships with nfr, e.g. ``"resnet20_badnet"``.

    Parameters
    ----------
    name : str
        The file stem in ``nfr/resources/models``.

    Returns
    -------
    (model, attack)
        As :func:`load_trained`; every file read (weights, trigger, manifest) is checksum-verified.

    Raises
    ------
    NFRError
        If the model does not ship with nfr or a file fails its checksum.
    """
    man = bundled_manifest(name)
    for f in man.get("files", []):
        D.resource(f"models/{f}")
    return load_trained(D.RESOURCES / "models" / f"{name}.pt")


# --------------------------------------------------------------------------------------------
# command line: python -m nfr train ...
# --------------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """The options of ``python -m nfr train`` (the only place their defaults live)."""
    arch: str = option("resnet20", "architecture: the CIFAR ResNet-20/56, ResNet-18 or the "
                       "VGG16-layout network", choices=MODELS)
    attack: str = option("none", "backdoor injected while training",
                         choices=("none", "badnet", "dynamic", "inputaware", "wanet"))
    epochs: int = option(1, "passes over the training images", minimum=1)
    init: str = option("pretrained-resnet20", "starting weights: scratch, pretrained-resnet20, "
                       "pretrained-resnet56 (the checkpoints that ship with nfr) or a state-dict file",
                       metavar="{scratch,pretrained-resnet20,pretrained-resnet56,PATH}")
    data: str = option("jpeg", "'jpeg' = the lossy JPEG copy (test split bundled with nfr, train "
                       "split from $NFR_CIFAR10_DIR), 'torchvision' = download the original CIFAR-10, "
                       "or a folder/tarball <split>/<class>/<img>", metavar="{jpeg,torchvision,PATH}")
    n_train: int = option(0, "training images, a seeded subset (0 = all)", minimum=0)
    n_test: int = option(0, "test images for accuracy / attack success (0 = all)", minimum=0)
    lr: float | None = option(None, "learning rate (default: 0.1 from scratch, 0.01 fine-tuning)", above=0)
    batch_size: int = option(128, "images per step", minimum=1)
    rate: float = option(0.1, "poisoning rate", minimum=0, maximum=1)
    target_class: int = option(0, "target class of the backdoor", minimum=0, maximum=9)
    seed: int = option(0, "seeds the initialisation, the order, the augmentation and the attack", minimum=0)
    name: str | None = option(None, "file stem (default: <arch>_<attack>)")
    device: str = option("cpu", "where to compute", choices=("cpu", "cuda"))
    width: int = option(32, "vgg16 only: channels of the first block (64 = VGG16's own 64..512, "
                        "32 = half width)", minimum=1)
    save_dtype: str = option("float32", "dtype of the saved weights; accuracy is measured after "
                             "rounding", choices=("float32", "float16"))
    quiet: bool = option(False, "no progress bars")


def cli_run(cfg: TrainConfig, out: str = "models", argv=None) -> int:
    """Run ``python -m nfr train`` with ``cfg``; prints a summary, returns the exit code."""
    cmd = "python -m nfr " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        man = run(model=cfg.arch, attack=cfg.attack, epochs=cfg.epochs, init=cfg.init,
                  data=cfg.data, n_train=cfg.n_train or None, n_test=cfg.n_test or None,
                  lr=cfg.lr, batch_size=cfg.batch_size, rate=cfg.rate, target=cfg.target_class,
                  seed=cfg.seed, out=out, device=cfg.device, progress=not cfg.quiet,
                  name=cfg.name, command=cmd, width=cfg.width, save_dtype=cfg.save_dtype)
    except NFRError as e:
        print(f"nfr train: error: {e}", file=sys.stderr)
        return 2
    asr = f", ASR {man['asr']:.3f}" if man["asr"] is not None else ""
    print(f"train: wrote {', '.join(man['files'])} and {man['name']}.json in {out}/\n"
          f"  clean accuracy {man['clean_accuracy']:.4f}{asr}")
    return 0
