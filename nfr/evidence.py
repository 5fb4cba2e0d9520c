"""Evidence runs: the units behind each computed verdict (``python -m nfr evidence KEY``).

Each setting of the criteria file (``book/data/criteria.yaml``, see :mod:`nfr.verdicts`) that has
an evidence run is registered here with :func:`setting`: a function ``units(draws, n_images,
quiet)`` returning one record per unit (an image under one weight draw), each with its ``draw``,
its ``image`` and the quantities the criterion's parts read. :func:`run` measures every unit at the
setting's full size, judges the units against the criterion and writes
``book/data/evidence/<key>.json``; :func:`recompute` measures a few units again along the same code
path with the same seeds, which the chapters and the tests compare with the stored values
(:func:`check_units`), so evidence the current code no longer produces fails ``make test``.

Seeds: weight draw ``k`` of the law with index ``i`` (gaussian 0, ring 1, uniform 2) is drawn with
seed ``1000 * k + i``, so the laws never share a draw (Gaussian and ring used to share one).
"""
from __future__ import annotations

import gc
import json
import math
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nfr import verdicts
from nfr.claims import book_root
from nfr.data import normalize, select_indices
from nfr.engine.attribute import alignment, attribute
from nfr.engine.weights import randomize, weight_layers, weight_stats
from nfr.errors import NFRError
from nfr.experiments import activations, cascade, failure, removal, sanity, table1
from nfr.metrics import colour_fidelity
from nfr.setup import load_model, load_setup
from nfr import backdoors, kis, metrics, mprt, predictable, train, trgbp
from nfr.reference import nie, sweeps, theorem1, theorem2


@dataclass(frozen=True)
class Setting:
    key: str
    units: object        # callable(draws, n_images, quiet) -> list[dict]
    draws: int           # full run: draws 0..draws-1
    n_images: int        # full run: images per draw
    config: dict         # what the run measures, stored in the evidence file


SETTINGS: dict[str, Setting] = {}


def setting(key: str, draws: int, n_images: int, **config):
    def deco(fn):
        SETTINGS[key] = Setting(key, fn, draws, n_images, dict(config))
        return fn
    return deco


def _get(key: str) -> Setting:
    if key not in SETTINGS:
        raise NFRError(f"no evidence run for {key!r}; one of: {', '.join(sorted(SETTINGS))}")
    return SETTINGS[key]


#: images in each data set the settings draw from (foolbox's ImageNet samples; the CIFAR-10 test split)
N_TOTAL = {"samples": 20, "cifar10": 10000}


def image_index(data: str, n_images: int, seed: int) -> list[int]:
    """Data-set indices of the subset the setup draws with ``seed`` (:func:`nfr.data.select_indices`):
    each unit stores its index, so a live recomputation on fewer images (a subset of the same
    seeded permutation) is matched image by image."""
    return select_indices(N_TOTAL[data], n_images, seed)


LAWS = ("gaussian", "ring", "uniform")
NFR3 = ("gbp", "rectgrad", "zplus")


def law_seed(draw: int, law: str) -> int:
    """Seed of weight draw ``draw`` of ``law``: independent across laws and draws."""
    return 1000 * int(draw) + LAWS.index(law)


# ----------------------------------------------------------------------------- C10
@setting("C10/vgg16-random-224", draws=10, n_images=10, model="vgg16", data="samples", size=224,
         laws=list(LAWS), rules=list(NFR3), scale="he", bias="zero", level="N = L (all 16 layers)",
         target="class predicted by each randomized network", maps="R w/o B")
def c10_vgg16(draws, n_images, quiet=True) -> list[dict]:
    """Per (draw, photo): alignment and chroma alignment of GBP / RectGrad / z+ (w/o B) after every
    weight layer of VGG16 is redrawn from each law (He scale, biases zero), and max |R| (overflow)."""
    return _c10("C10/vgg16-random-224", draws, n_images, quiet)


def _c10(key, draws, n_images, quiet) -> list[dict]:
    """The C10 units of setting ``key``: the same photos for every draw of the ImageNet samples (there
    are 20), each draw's own seeded subset for CIFAR-10."""
    cfg = SETTINGS[key].config
    units = []
    bar = tqdm(total=len(draws) * len(LAWS), desc=f"{key} evidence (draw x law)", disable=quiet)
    for k in draws:
        img_seed = 0 if cfg["data"] == "samples" else int(k)
        s = load_setup(model=cfg["model"], weights=cfg.get("weights", "random"), data=cfg["data"],
                       n_images=n_images, size=cfg.get("size"), seed=img_seed, dtype="float32")
        x = s.x
        idx = image_index(cfg["data"], n_images, img_seed)
        mine = [dict(draw=int(k), image=i, index=idx[i]) for i in range(len(x))]
        for law in LAWS:
            m = randomize(s.model, law, law_seed(k, law), scale=cfg["scale"], bias=cfg["bias"])
            with torch.no_grad():
                tgt = torch.cat([m(xb).argmax(1) for xb in x.split(5)])
            for r in NFR3:
                R = torch.cat([attribute(m, xb, tb, r, bottom=False) for xb, tb in zip(x.split(5), tgt.split(5))])
                a = alignment(R.double(), x.double()).cpu().numpy()
                col = colour_fidelity(R.double(), x.double())
                mx = R.abs().flatten(1).max(1).values.double().cpu().numpy()
                for i, u in enumerate(mine):
                    u[f"{r}_{law}"] = float(a[i])
                    u[f"chroma_{r}_{law}"] = float(col["chroma"][i])
                    u[f"maxabs_{r}_{law}"] = float(mx[i])
            del m
            gc.collect()                  # a VGG16 copy per law: free it before the next is drawn
            bar.update(1)
        units += mine
    bar.close()
    return units


@setting("C10/cifar_resnet56-redrawn", draws=10, n_images=100, model="cifar_resnet56", weights="pretrained",
         data="cifar10", laws=list(LAWS), rules=list(NFR3), scale="he", bias="zero",
         level="N = L (all 56 weight layers redrawn; trained BatchNorm kept)",
         target="class predicted by each randomized network", maps="R w/o B")
def c10_resnet56(draws, n_images, quiet=True) -> list[dict]:
    """C10 on the CIFAR ResNet-56 with every weight layer redrawn and its trained BatchNorm kept."""
    return _c10("C10/cifar_resnet56-redrawn", draws, n_images, quiet)


@setting("C10/cifar_vgg16-redrawn", draws=10, n_images=100, model="cifar_vgg16", weights="pretrained",
         data="cifar10", laws=list(LAWS), rules=list(NFR3), scale="he", bias="zero",
         level="N = L (all 16 weight layers redrawn; trained BatchNorm kept)",
         target="class predicted by each randomized network", maps="R w/o B")
def c10_cifar_vgg16(draws, n_images, quiet=True) -> list[dict]:
    """C10 on the trained CIFAR VGG16 layout with every weight layer redrawn and its BatchNorm kept."""
    return _c10("C10/cifar_vgg16-redrawn", draws, n_images, quiet)


# ----------------------------------------------------------------------------- C11, C16 on the trained VGG16 layout
@setting("C11/cifar_vgg16-trained", draws=10, n_images=200, model="cifar_vgg16", weights="pretrained",
         data="cifar10", k=3, rules=list(NFR3), randomization="gaussian, He scale, biases zero; draw = "
         "the experiment's --seed, which also draws the draw's image subset", target="pred")
def c11_vgg(draws, n_images, quiet=True) -> list[dict]:
    """Per (draw, image): alignment of the map w/o B after randomizing vs removing the top 3 layers."""
    return _c11("cifar_vgg16", draws, n_images, quiet)


#: the setup of the random ImageNet-layout VGG16 settings of C11, C12 and C16 (foolbox's photos at 224 px)
VGG16_RANDOM_224 = dict(weights="random", data="samples", size=224, batch_size=5)


def _c11(model, draws, n_images, quiet, weights="pretrained", data="cifar10", size=None,
         batch_size=100) -> list[dict]:
    units = []
    for k in tqdm(list(draws), desc="C11 evidence (draws)", disable=quiet):
        res = removal.run(removal.Config(model=model, weights=weights, data=data, size=size,
                                         n_images=n_images, k=[3], rules=list(NFR3), seed=int(k),
                                         quiet=True, batch_size=batch_size))
        idx = image_index(data, n_images, int(k))
        gc.collect()
        for i in range(len(idx)):
            u = dict(draw=int(k), image=i, index=idx[i])
            for r in NFR3:
                u[f"original_{r}"] = res["original"][r]["per_image"][i]
                u[f"random_{r}"] = res["random"]["3"][r]["per_image"][i]
                u[f"removal_{r}"] = res["removal"]["3"][r]["per_image"][i]
            units.append(u)
    return units


NFR4 = ("gbp", "rectgrad", "zplus", "dtd")


@setting("C16/cifar_vgg16-trained", draws=10, n_images=200, model="cifar_vgg16", weights="pretrained",
         data="cifar10", k=3, rules=list(NFR4) + ["grad"], maps="with bottom process, sum |R_c|",
         randomization="gaussian, He scale, biases zero; draw = the experiment's --seed, which also "
         "draws the draw's image subset", target="pred")
def c16_vgg(draws, n_images, quiet=True) -> list[dict]:
    """Per (draw, image): SSIM and Spearman between the original map and the map after the top 3
    layers are randomized (sanity check)."""
    return _c16("cifar_vgg16", draws, n_images, quiet)


def _c16(model, draws, n_images, quiet, weights="pretrained", data="cifar10", size=None,
         batch_size=100) -> list[dict]:
    units = []
    for k in tqdm(list(draws), desc="C16 evidence (draws)", disable=quiet):
        res = sanity.run(sanity.Config(model=model, weights=weights, data=data, size=size,
                                       n_images=n_images, steps=[3], rules=list(NFR4) + ["grad"],
                                       seed=int(k), quiet=True, batch_size=batch_size))
        j = res["steps"].index(3)
        idx = image_index(data, n_images, int(k))
        gc.collect()
        for i in range(len(idx)):
            u = dict(draw=int(k), image=i, index=idx[i])
            for r in list(NFR4) + ["grad"]:
                u[f"ssim_{r}"] = res["ssim"][r]["per_image"][i][j]
                u[f"spearman_{r}"] = res["spearman"][r]["per_image"][i][j]
            units.append(u)
    return units


@setting("C11/cifar_resnet56-trained", draws=10, n_images=100, model="cifar_resnet56", weights="pretrained",
         data="cifar10", k=3, rules=list(NFR3), randomization="gaussian, He scale, biases zero; draw = the "
         "experiment's --seed, which also draws the draw's image subset", target="pred")
def c11_resnet56(draws, n_images, quiet=True) -> list[dict]:
    """C11 on the trained CIFAR ResNet-56 (as :func:`c11_vgg`)."""
    return _c11("cifar_resnet56", draws, n_images, quiet)


@setting("C16/cifar_resnet56-trained", draws=10, n_images=100, model="cifar_resnet56", weights="pretrained",
         data="cifar10", k=3, rules=list(NFR4) + ["grad"], maps="with bottom process, sum |R_c|",
         randomization="gaussian, He scale, biases zero; draw = the experiment's --seed, which also "
         "draws the draw's image subset", target="pred")
def c16_resnet56(draws, n_images, quiet=True) -> list[dict]:
    """C16 on the trained CIFAR ResNet-56 (as :func:`c16_vgg`)."""
    return _c16("cifar_resnet56", draws, n_images, quiet)


VGG16_RANDOM_INIT = ("torchvision's VGG16 initialisation under the draw's seed (He-normal convolutions, "
                     "N(0, 0.01^2) linear layers, biases zero), which also draws the draw's 10 of "
                     "foolbox's 20 photos")


@setting("C11/vgg16-random-224", draws=10, n_images=10, model="vgg16", data="samples", size=224,
         dtype="float32", k=3, rules=list(NFR3), init=VGG16_RANDOM_INIT,
         randomization="gaussian, He scale, biases zero, layer l drawn from (draw, l)", target="pred")
def c11_vgg16_random(draws, n_images, quiet=True) -> list[dict]:
    """C11 on torchvision's VGG16 with random weights, ImageNet photos at 224 px (as :func:`c11_vgg`)."""
    return _c11("vgg16", draws, n_images, quiet, **VGG16_RANDOM_224)


@setting("C16/vgg16-random-224", draws=10, n_images=10, model="vgg16", data="samples", size=224,
         dtype="float32", k=3, rules=list(NFR4) + ["grad"], maps="with bottom process, sum |R_c|",
         init=VGG16_RANDOM_INIT, randomization="gaussian, He scale, biases zero, layer l drawn from (draw, l)",
         target="pred")
def c16_vgg16_random(draws, n_images, quiet=True) -> list[dict]:
    """C16 on torchvision's VGG16 with random weights, ImageNet photos at 224 px (as :func:`c16_vgg`)."""
    return _c16("vgg16", draws, n_images, quiet, **VGG16_RANDOM_224)


# ----------------------------------------------------------------------------- C8 on the trained VGG16 layout
#: the networks of C8's VGG16-layout settings: the trained network and its random-initialisation twin
C8_NETS = {"trained": "pretrained", "random": "random"}
C8_CONFIG = dict(model="cifar_vgg16", data="cifar10", rules=list(NFR4), control="grad", target="pred",
                 maps="w/o bottom process", dtype="float64", edges="top-decile Sobel edges of the image",
                 centre="central box of half the side",
                 twin="cifar_vgg16 --weights random: its initialisation under the draw's seed (the draw's seed "
                      "also draws the image subset, the same images for the trained network and the twin)")


def _c8_quantities(model, s, target, net: str) -> dict:
    """Chapter 4's per-image quantities of one network on the setup's images (maps w/o bottom process
    of ``target``): each NFR map's input alignment, its edge and centre enrichment
    (:func:`nfr.metrics.location_profile`), and the mean pairwise cosine and SSIM within the four NFR
    maps and between the gradient and each of them (:func:`nfr.metrics.similarity`); keys end in
    ``net``."""
    mp = table1.maps(model, s.x, target, ("grad",) + NFR4, layer=len(weight_layers(model)) // 2,
                     low=s.low, high=s.high)
    wo = {r: mp[r]["w/o B"] for r in mp}
    sim = metrics.similarity(wo, ["grad"] + list(NFR4))["per_image"]
    pairs = [(a, b) for a in range(1, 5) for b in range(a + 1, 5)]
    per = {}
    for q in ("cosine", "ssim"):
        per[f"{q}_nfr_{net}"] = sum(sim[q][a, b] for a, b in pairs) / len(pairs)
        per[f"{q}_grad_{net}"] = sum(sim[q][0, b] for b in range(1, 5)) / 4
    for r in NFR4:
        per[f"align_{net}_{r}"] = alignment(wo[r].to(s.x), s.x).double().cpu().numpy()
        prof = metrics.location_profile(wo[r], s.raw)
        per[f"edges_{net}_{r}"], per[f"centre_{net}_{r}"] = prof["edges"], prof["centre"]
    return per


def _c8_vgg(draws, n_images, quiet) -> list[dict]:
    """Per (draw, image): :func:`_c8_quantities` of the trained VGG16 layout and of its random twin
    (the draw's seed draws the twin's initialisation and the image subset)."""
    units = []
    for k in tqdm(list(draws), desc="C8 evidence (draws)", disable=quiet):
        idx = image_index("cifar10", n_images, int(k))
        per = {}
        for net, w in C8_NETS.items():
            s = load_setup("cifar_vgg16", w, "cifar10", n_images, 32, seed=int(k), dtype="float64")
            per.update(_c8_quantities(s.model, s, s.target, net))
        for i in range(n_images):
            units.append(dict(draw=int(k), image=i, index=idx[i], **{q: float(v[i]) for q, v in per.items()}))
    return units


def _c8_imagenet(key, draws, n_images, quiet) -> list[dict]:
    """Per (draw, photo): :func:`_c8_quantities` of the setting's network with its random
    initialisation under the draw's seed, on the same foolbox photos for every draw."""
    cfg = SETTINGS[key].config
    s = load_setup(cfg["model"], "random", "samples", n_images, cfg["size"], seed=0, dtype=cfg["dtype"])
    idx = image_index("samples", n_images, 0)
    units = []
    for k in tqdm(list(draws), desc=f"{key} evidence (draws)", disable=quiet):
        net = load_model(cfg["model"], "random", seed=int(k)).to(s.x.dtype).eval()
        with torch.no_grad():
            tgt = torch.cat([net(xb).argmax(1) for xb in s.x.split(5)])
        per = _c8_quantities(net, s, tgt, "random")
        for i in range(len(s.x)):
            units.append(dict(draw=int(k), image=i, index=idx[i], **{q: float(v[i]) for q, v in per.items()}))
        del net
        gc.collect()
    return units


@setting("C8/vgg16-random-224", draws=10, n_images=10, model="vgg16", data="samples", size=224, dtype="float32",
         rules=list(NFR4), control="grad", target="class predicted by each random network",
         maps="w/o bottom process", init="torchvision's VGG16 initialisation under the draw's seed (He-normal "
         "convolutions, N(0, 0.01^2) linear layers, biases zero); the same 10 photos for every draw")
def c8_vgg16_random(draws, n_images, quiet=True) -> list[dict]:
    """C8 on torchvision's VGG16 with random weights, ImageNet photos at 224 px."""
    return _c8_imagenet("C8/vgg16-random-224", draws, n_images, quiet)


@setting("C8/efficientnet_lite0-random-224", draws=10, n_images=10, model="efficientnet_lite0", data="samples",
         size=224, dtype="float64", rules=list(NFR4), control="grad",
         target="class predicted by each random network", maps="w/o bottom process",
         init="EfficientNet-Lite0's initialisation under the draw's seed; the same 10 photos for every draw")
def c8_effnet_random(draws, n_images, quiet=True) -> list[dict]:
    """C8 on EfficientNet-Lite0 with random weights, ImageNet photos at 224 px."""
    return _c8_imagenet("C8/efficientnet_lite0-random-224", draws, n_images, quiet)


@setting("C8/cifar_vgg16-trained", draws=10, n_images=100, weights="pretrained", **C8_CONFIG)
def c8_vgg_trained(draws, n_images, quiet=True) -> list[dict]:
    """C8 on the trained VGG16 layout, paired with its random twin on the same images."""
    return _c8_vgg(draws, n_images, quiet)


@setting("C8/cifar_vgg16-random", draws=10, n_images=100, weights="random", **C8_CONFIG)
def c8_vgg_random(draws, n_images, quiet=True) -> list[dict]:
    """C8 on the VGG16 layout's random twin (the units also carry the trained network's values)."""
    return _c8_vgg(draws, n_images, quiet)


# ----------------------------------------------------------------------------- C9 on the trained VGG16 layout
CASCADE4 = ("gbp", "rectgrad", "zplus", "activation")


@setting("C9/cifar_vgg16-trained-vs-random", draws=10, n_images=100, model="cifar_vgg16", data="cifar10",
         levels=[0, 8, 16], rules=list(CASCADE4), target="pred",
         twin="cifar_vgg16 --weights random: its initialisation under the draw's seed (the draw's seed "
              "also draws the image subset, the same images for the trained network and the twin)")
def c9_vgg(draws, n_images, quiet=True) -> list[dict]:
    """Per (draw, image): alignment at cascade levels 0, L/2 = 8 and L = 16 of the trained network and
    of its random twin (draw = the twin's initialisation seed)."""
    return _c9("cifar_vgg16", 16, draws, n_images, quiet)


def _c9(model, L, draws, n_images, quiet) -> list[dict]:
    units = []
    for k in tqdm(list(draws), desc="C9 evidence (draws)", disable=quiet):
        res = {w: cascade.run(cascade.Config(model=model, weights=w, data="cifar10", n_images=n_images,
                                             levels=[0, L // 2, L], rules=list(CASCADE4), seed=int(k),
                                             quiet=True, batch_size=100))
               for w in ("pretrained", "random")}
        idx = image_index("cifar10", n_images, int(k))
        for i in range(n_images):
            u = dict(draw=int(k), image=i, index=idx[i])
            for w, tag in (("pretrained", "trained"), ("random", "random")):
                for r in CASCADE4:
                    per = res[w]["curves"][r]["per_image"][i]
                    u[f"{tag}_{r}_N0"], u[f"{tag}_{r}_NH"], u[f"{tag}_{r}_NL"] = per
            units.append(u)
    return units


@setting("C9/vgg16-random-224", draws=10, n_images=10, model="vgg16", weights="random", data="samples", size=224,
         levels=[0, 8, 16], rules=list(CASCADE4), target="pred", dtype="float32",
         init="torchvision's VGG16 initialisation under the draw's seed (which also draws the 10 of foolbox's 20 photos)")
def c9_vgg16_random(draws, n_images, quiet=True) -> list[dict]:
    """Per (draw, photo): alignment of random VGG16 at cascade levels 0, L/2 = 8 and L = 16 (224 px)."""
    units = []
    for k in tqdm(list(draws), desc="C9 evidence (draws)", disable=quiet):
        res = cascade.run(cascade.Config(model="vgg16", weights="random", data="samples", size=224, n_images=n_images,
                                         levels=[0, 8, 16], rules=list(CASCADE4), seed=int(k), quiet=True, batch_size=5))
        idx = image_index("samples", n_images, int(k))
        for i in range(len(idx)):
            u = dict(draw=int(k), image=i, index=idx[i])
            for r in CASCADE4:
                u[f"random_{r}_N0"], u[f"random_{r}_NH"], u[f"random_{r}_NL"] = res["curves"][r]["per_image"][i]
            units.append(u)
        gc.collect()
    return units


@setting("C9/cifar_resnet56-trained-vs-random", draws=10, n_images=100, model="cifar_resnet56", data="cifar10",
         levels=[0, 28, 56], rules=list(CASCADE4), target="pred",
         twin="cifar_resnet56 --weights random: its initialisation under the draw's seed (the draw's "
              "seed also draws the image subset)")
def c9_resnet56(draws, n_images, quiet=True) -> list[dict]:
    """C9 on the trained CIFAR ResNet-56 and its random twin (as :func:`c9_vgg`)."""
    return _c9("cifar_resnet56", 56, draws, n_images, quiet)


# ----------------------------------------------------------------------------- C12 on the trained VGG16 layout
@setting("C12/cifar_vgg16-trained", draws=1, n_images=1000, model="cifar_vgg16", weights="pretrained",
         data="cifar10", layers=[1, 15], frac=0.1, rules=["gbp", "zplus"], target="pred")
def c12_vgg(draws, n_images, quiet=True) -> list[dict]:
    """Per image: |alpha(max) - alpha(min)| at start layers 1 and 15 and the smaller cosine of the two
    started maps with the ordinary attribution at layer 15 (GBP, z+; trained network, no draw)."""
    return _c12("cifar_vgg16", 15, draws, n_images, quiet)


@setting("C12/cifar_resnet56-trained", draws=1, n_images=1000, model="cifar_resnet56", weights="pretrained",
         data="cifar10", layers=[1, 55], frac=0.1, rules=["gbp", "zplus"], target="pred")
def c12_resnet56(draws, n_images, quiet=True) -> list[dict]:
    """C12 on the trained CIFAR ResNet-56 (as :func:`c12_vgg`, top start layer 55)."""
    return _c12("cifar_resnet56", 55, draws, n_images, quiet)


@setting("C12/vgg16-random-224", draws=10, n_images=10, model="vgg16", data="samples", size=224,
         dtype="float32", layers=[1, 15], frac=0.1, rules=["gbp", "zplus"], init=VGG16_RANDOM_INIT,
         target="pred")
def c12_vgg16_random(draws, n_images, quiet=True) -> list[dict]:
    """C12 on torchvision's VGG16 with random weights, ImageNet photos at 224 px (as :func:`c12_vgg`,
    start layers 1 and 15 of 16; draw = the network's initialisation seed)."""
    return _c12("vgg16", 15, draws, n_images, quiet, **VGG16_RANDOM_224)


def _c12(model, top, draws, n_images, quiet, weights="pretrained", data="cifar10", size=None,
         batch_size=100) -> list[dict]:
    units = []
    for k in tqdm(list(draws), desc="C12 evidence (draws)", disable=quiet or len(draws) < 2):
        res = activations.run(activations.Config(model=model, weights=weights, data=data, size=size,
                                                 n_images=n_images, layers=[1, top], rules=["gbp", "zplus"],
                                                 seed=int(k), quiet=quiet or len(draws) > 1,
                                                 batch_size=batch_size))
        idx = image_index(data, n_images, int(k))
        gc.collect()
        for i in range(len(idx)):
            u = dict(draw=int(k), image=i, index=idx[i])
            for r in ("gbp", "zplus"):
                c = res["curves"][r]
                mx, mn = c["max"]["per_image"], c["min"]["per_image"]
                u[f"{r}_diff_bottom"] = abs(mx[0][i] - mn[0][i])
                u[f"{r}_diff_top"] = abs(mx[-1][i] - mn[-1][i])
                u[f"{r}_cos_top"] = min(c["cos_to_ordinary_max"]["per_image"][-1][i],
                                        c["cos_to_ordinary_min"]["per_image"][-1][i])
            units.append(u)
    return units


# ----------------------------------------------------------------------------- C13: wrong vs correct
C13_LAYERS = {"cifar_resnet56": [1, 10, 19, 28, 37, 46, 55], "cifar_vgg16": [1, 3, 5, 7, 9, 11, 13, 15]}


def _c13(model, draws, n_images, quiet) -> list[dict]:
    """Per image: its group (wrong / correct prediction) and the drop of each measure from the lowest
    to the highest start layer (colour alignment, share outside the central box, alignment)."""
    units = []
    for k in draws:
        res = failure.run(failure.Config(model=model, weights="pretrained", data="cifar10",
                                         n_images=n_images, layers=C13_LAYERS[model], rules=["gbp"],
                                         seed=int(k), quiet=quiet, batch_size=100))
        wrong = set(res["groups"].get("wrong", []))
        per = res["per_image"]
        idx = image_index("cifar10", n_images, int(k))
        for i in range(n_images):
            u = dict(draw=int(k), image=i, index=idx[i], group="wrong" if i in wrong else "correct")
            for m in ("colour", "outside", "alignment"):
                u[f"{m}_drop"] = per[m][0][i] - per[m][-1][i]
            units.append(u)
    return units


@setting("C13/cifar_resnet56-trained", draws=1, n_images=1200, model="cifar_resnet56", weights="pretrained",
         data="cifar10", layers=C13_LAYERS["cifar_resnet56"], below="gbp", box_frac=0.5, target="pred")
def c13_resnet56(draws, n_images, quiet=True) -> list[dict]:
    return _c13("cifar_resnet56", draws, n_images, quiet)


@setting("C13/cifar_vgg16-trained", draws=1, n_images=1200, model="cifar_vgg16", weights="pretrained",
         data="cifar10", layers=C13_LAYERS["cifar_vgg16"], below="gbp", box_frac=0.5, target="pred")
def c13_vgg16(draws, n_images, quiet=True) -> list[dict]:
    return _c13("cifar_vgg16", draws, n_images, quiet)


# ----------------------------------------------------------------------------- C7: weight statistics
#: architectures of C7 and their trained weights (None: no trained weights offline)
C7_NETS = {"vgg16": None, "cifar_resnet56": "pretrained", "efficientnet_lite0": "imagenet", "cifar_vgg16": "pretrained"}


def isotropic_layer(d: dict) -> bool:
    """Chapter 5's test of one layer's statistics (:func:`nfr.engine.weights.weight_stats`): mean
    pairwise cosine within 0.05 of 0, sqrt(n) sd(cos) in [0.8, 1.25], sqrt(2n) CV(norm) <= 1.5."""
    n = d["fan_in"]
    return abs(d["cos_mean"]) <= 0.05 and 0.8 <= math.sqrt(n) * d["cos_std"] <= 1.25 and math.sqrt(2 * n) * d["norm_cv"] <= 1.5


def rms_cos(d: dict) -> float:
    """Root mean square pairwise cosine of one layer's neurons."""
    return math.hypot(d["cos_mean"], d["cos_std"])


@setting("C7/weight-stats", draws=10, n_images=1, models=C7_NETS, max_neurons=512,
         random="the architecture's default initialisation under seed = draw (nfr.setup.load_model)",
         neuron_subset="seeded with (draw, layer) when a layer has more than 512 neurons")
def c7_weights(draws, n_images, quiet=True) -> list[dict]:
    """Per architecture and draw: the share of isotropic layers of the random initialisation of seed
    ``draw``, and (architectures with trained weights) the shares of layers whose RMS cosine and norm
    CV are larger in the trained network than in that random one."""
    units, trained = [], {}
    for k in tqdm(list(draws), desc="C7 (draws)", disable=quiet):
        for net, w in C7_NETS.items():
            rand = weight_stats(load_model(net, "random", int(k)), max_neurons=512, seed=int(k))
            u = dict(draw=int(k), image=0, index=int(k), net=net,
                     isotropic_share=float(sum(map(isotropic_layer, rand)) / len(rand)))
            if w is not None:
                if (net, k) not in trained:
                    trained[net, k] = weight_stats(load_model(net, w, 0), max_neurons=512, seed=int(k))
                t = trained[net, k]
                u["rms_larger_share"] = float(sum(rms_cos(a) > rms_cos(b) for a, b in zip(t, rand)) / len(rand))
                u["cv_larger_share"] = float(sum(a["norm_cv"] > b["norm_cv"] for a, b in zip(t, rand)) / len(rand))
            units.append(u)
    return units


# ----------------------------------------------------------------------------- C9 on Theorem 2's toy networks
C9_TOY_CONFIGS = {"L4w512": [256, 512, 512, 512, 10], "L10w256": [256] + [256] * 9 + [10]}
C9_TOY_SEED0 = 10_000  # draw k is the network of seed 10,000 + k (the chapter's sample uses seeds 0-15)


@setting("C9/toy-cascade", draws=100, n_images=1, model="random bias-free ReLU MLPs (nfr.reference.theorem2)",
         widths=C9_TOY_CONFIGS, weights="N(0, 1/d_in)", x="chapter 3's 16 x 16 toy image", maps="r_0 without bottom process",
         rules=["gbp", "rectgrad", "zplus", "activation"], q=0.9, seeds=f"draw k: numpy default_rng({C9_TOY_SEED0} + k)")
def c9_toy(draws, n_images, quiet=True) -> list[dict]:
    """Per draw (one network per architecture): alpha(r_0, x) at the levels N = 0, L/2 and L of cascade
    substitution for GBP, RectGrad, z+ and Activation."""
    x = sweeps.toy_image(16)
    units = []
    for k in draws:
        u = dict(draw=int(k), image=0, index=int(k))
        for name, widths in C9_TOY_CONFIGS.items():
            al = theorem2.cascade_alignment(widths, [C9_TOY_SEED0 + int(k)], x=x)
            L = len(widths) - 1
            for rule, a in al.items():
                for tag, lev in (("N0", 0), ("NH", L // 2), ("NL", L)):
                    u[f"{name}_{rule}_{tag}"] = float(a[0, lev])
        units.append(u)
    return units


# ----------------------------------------------------------------------------- C10 on Theorem 1's toy networks
C10_TOY_N, C10_TOY_SEED = 4096, 1
C10_TOY_X2 = (math.cos(math.pi / 6), math.sin(math.pi / 6))


@setting("C10/toy-one-hidden", draws=100, n_images=1, model="one hidden layer, bias-free ReLU (nfr.reference.theorem1)",
         width=C10_TOY_N, rule="gbp", laws={"d = 2": ["gaussian", "sphere (ring)", "uniform (square)"],
                                           "d = 64": ["gaussian", "sphere", "uniform (cube)"]},
         x={"d = 2": "unit vector at 30 degrees", "d = 64": "N(0, I) drawn with the draw"},
         seeds="theorem1.draw(1, law, d, N, [draw]): every law, dimension and draw its own generator")
def c10_toy(draws, n_images, quiet=True) -> list[dict]:
    """Per draw: GBP's alignment alpha(R, x) of a width-4096 one-hidden-layer network whose hidden
    weights come from each law (top weights v ~ N(0, 1) independent of them), for d = 2 and d = 64."""
    units = []
    for k in draws:
        u = dict(draw=int(k), image=0, index=int(k))
        xs = {2: np.array(C10_TOY_X2), 64: np.random.default_rng([C10_TOY_SEED, 64, int(k)]).standard_normal(64)}
        for d, x in xs.items():
            for law in ("gaussian", "sphere", "uniform"):
                W, v = theorem1.draw(C10_TOY_SEED, law, d, C10_TOY_N, [int(k)])
                R = theorem1.one_hidden_maps(W, v, x)
                u[f"gbp_{law}_d{d}"] = float(theorem1.alignments(R, x)[0, theorem1.RULES.index("gbp")])
        units.append(u)
    return units


# ----------------------------------------------------------------------------- T4: the noise of GBP (NumPy)
T4_NS, T4_KS, T4_C = (16, 64, 256, 1024), (3, 5, 7), 0.5
T4_VGG = ((3, 64), (64, 128), (128, 256), (256, 512), (512, 512))


def _t4_seed(draw: int, *key: int) -> int:
    """Seed of one random network of draw ``draw`` (every network of every draw its own)."""
    return int(np.random.SeedSequence([int(draw), *map(int, key)]).generate_state(1)[0])


@setting("T4/nie-random", draws=100, n_images=1, model="Nie et al.'s three-layer CNN (nfr.reference.nie)",
         weights="i.i.d. N(0, c^2), c = 0.5, one generator per network from (draw, k, N)", image="32 x 32 random-sign image drawn with the draw",
         filters=list(T4_NS), kernels=list(T4_KS), vgg_layers=[list(v) for v in T4_VGG], vgg_image="12 x 12 random-sign, C_in channels")
def t4_nie(draws, n_images, quiet=True) -> list[dict]:
    """Per draw (one random-sign image, a fresh network for every filter number N and size k): the
    log-log slope of GBP's relative residual ||s - E s|| / ||E s|| in N for k = 3, 5, 7 (plus 0.5:
    the 1/sqrt(N) law is 0), the residual ratio k = 7 / k = 3 at N = 1024, and the residual of the
    first minus the last VGG16-shaped layer (3x3 filters)."""
    units = []
    for d in tqdm(list(draws), desc="T4 (draws)", disable=quiet):
        x = nie.sign_image((32, 32), int(d))
        res = {k: np.array([nie.measure(x, k, N, T4_C, [_t4_seed(d, k, N)])["residual"][0] for N in T4_NS])
               for k in T4_KS}
        u = dict(draw=int(d), image=0, index=int(d))
        for k in T4_KS:
            u[f"slope_dev_k{k}"] = float(np.polyfit(np.log(T4_NS), np.log(res[k]), 1)[0]) + 0.5
        u["ratio_k7_k3"] = float(res[7][-1] / res[3][-1])
        layer = [nie.measure(nie.sign_image((cin, 12, 12), int(d)), 3, n, T4_C, [_t4_seed(d, 0, cin, n)])["residual"][0]
                 for cin, n in T4_VGG]
        u["vgg_first_minus_last"] = float(layer[0] - layer[-1])
        units.append(u)
    return units


# ----------------------------------------------------------------------------- C14: KIS against Insertion
C14_SCORES = ("kis", "insertion", "insertion_abs")


def _c14(model: str, draws, n_images: int, quiet: bool) -> list[dict]:
    """Per CIFAR-10 test image: KIS, Insertion and Insertion(ABS) of the GBP map for the decided class
    (:func:`nfr.kis.evaluate`, float64) and whether the decision is correct (``group``)."""
    units = []
    for k in draws:
        s = load_setup(model=model, weights="pretrained", data="cifar10", n_images=n_images, seed=int(k),
                       dtype="float64", batch_size=100)
        mean, std = s.config["preprocess"]["mean"], s.config["preprocess"]["std"]
        res = kis.evaluate(s.model, s.raw.double(), s.labels, lambda t: normalize(t, mean, std), rule="gbp",
                           batch_size=100, progress=not quiet)
        idx = image_index("cifar10", n_images, int(k))
        for i in range(len(idx)):
            units.append(dict(draw=int(k), image=i, index=idx[i], group="correct" if res["correct"][i] else "wrong",
                              **{q: float(res[q][i]) for q in C14_SCORES}))
    return units


@setting("C14/cifar_resnet20-trained", draws=1, n_images=10000, model="cifar_resnet20", weights="pretrained",
         data="cifar10", rule="gbp", dtype="float64", target="pred", scores=list(C14_SCORES),
         baseline="0 in the model's input space", groups=["correct", "wrong"])
def c14_resnet20(draws, n_images, quiet=True) -> list[dict]:
    return _c14("cifar_resnet20", draws, n_images, quiet)


@setting("C14/cifar_resnet56-trained", draws=1, n_images=10000, model="cifar_resnet56", weights="pretrained",
         data="cifar10", rule="gbp", dtype="float64", target="pred", scores=list(C14_SCORES),
         baseline="0 in the model's input space", groups=["correct", "wrong"])
def c14_resnet56(draws, n_images, quiet=True) -> list[dict]:
    return _c14("cifar_resnet56", draws, n_images, quiet)


# ----------------------------------------------------------------------------- T2, T3: TR-GBP
def _t2(model: str, weights: str, data: str, draws, n_images: int, size, quiet: bool) -> list[dict]:
    """Per image: the mean pairwise Pearson correlation of its top-5 class maps under GBP, eq 9 and
    TR-GBP (:func:`nfr.trgbp.class_maps`, float64)."""
    units = []
    for k in draws:
        s = load_setup(model=model, weights=weights, data=data, n_images=n_images, size=size, seed=int(k),
                       dtype="float64", batch_size=50)
        idx = image_index(data, n_images, int(k))
        corr = {"gbp": [], "eq9": [], "trgbp": []}
        for xb in tqdm(s.x.split(20), desc=f"T2 {model} (batches)", disable=quiet):
            _, G, R, Rt = trgbp.class_maps(s.model, xb)
            for q, m in (("gbp", G), ("eq9", R), ("trgbp", Rt)):
                corr[q] += [float(c) for c in predictable.class_correlation(m)]
        units += [dict(draw=int(k), image=i, index=idx[i], **{f"corr_{q}": v[i] for q, v in corr.items()})
                  for i in range(len(idx))]
    return units


@setting("T2/cifar_resnet56-trained", draws=1, n_images=1000, model="cifar_resnet56", weights="pretrained",
         data="cifar10", dtype="float64", top=5, maps="GBP (channel sum), eq 9, TR-GBP (eq 10)")
def t2_resnet56(draws, n_images, quiet=True) -> list[dict]:
    return _t2("cifar_resnet56", "pretrained", "cifar10", draws, n_images, None, quiet)


@setting("T2/efficientnet_lite0-trained", draws=1, n_images=20, model="efficientnet_lite0", weights="imagenet",
         data="samples", size=224, dtype="float64", top=5, maps="GBP (channel sum), eq 9, TR-GBP (eq 10)")
def t2_lite0(draws, n_images, quiet=True) -> list[dict]:
    return _t2("efficientnet_lite0", "imagenet", "samples", draws, n_images, 224, quiet)


@setting("T3/cifar_resnet56-random", draws=10, n_images=100, model="cifar_resnet56", weights="pretrained",
         data="cifar10", dtype="float64", top=5, target="the trained network's prediction",
         randomization="all weight layers Gaussian He (seed = draw, layer l from (draw, l)) and every bias "
                       "(BatchNorm merged into them) N(0, He std^2) (nfr.trgbp.randomize_biases, seed = draw)",
         border=2)
def t3_resnet56(draws, n_images, quiet=True) -> list[dict]:
    """Per (draw, image): TR-GBP's map of the trained network's predicted class under the trained
    network and under the fully random one (weights and biases): the Spearman correlation of their
    |maps|, and each map's border/centre ratio and centre CV (:func:`nfr.predictable.sanity_stats`,
    border band of 2 pixels)."""
    units = []
    for k in tqdm(list(draws), desc="T3 (draws)", disable=quiet):
        s = load_setup(model="cifar_resnet56", weights="pretrained", data="cifar10", n_images=n_images, seed=int(k),
                       dtype="float64", batch_size=50)
        rand = trgbp.randomize_biases(randomize(s.model, "gaussian", int(k), bias="keep"), int(k))
        idx = image_index("cifar10", n_images, int(k))
        for i0 in range(0, len(idx), 20):
            xb, tb = s.x[i0:i0 + 20], s.target[i0:i0 + 20]
            Rt0, Rt1 = trgbp.trgbp(s.model, xb, tb), trgbp.trgbp(rand, xb, tb)
            for j in range(len(xb)):
                sp, bc1, cv1 = predictable.sanity_stats(Rt1[j:j + 1], Rt0[j:j + 1], 2)
                _, bc0, cv0 = predictable.sanity_stats(Rt0[j:j + 1], Rt0[j:j + 1], 2)
                units.append(dict(draw=int(k), image=i0 + j, index=idx[i0 + j], spearman_random=sp,
                                  bc_random=bc1, bc_trained=bc0, cv_random=cv1, cv_trained=cv0))
    return units


# ----------------------------------------------------------------------------- B1-B4: the MPRT's variants
#: the book's own predictions of chapter 13 (not claims of the papers): networks of the settings, each
#: with its data, images per draw and (``steps``) the randomization steps B1 averages over (None: all)
MPRT_NETS = {
    "cifar_resnet20-trained": dict(model="cifar_resnet20", weights="pretrained", data="cifar10", n_images=100),
    "cifar_vgg16-trained": dict(model="cifar_vgg16", weights="pretrained", data="cifar10", n_images=100),
    "cifar_vgg16-random": dict(model="cifar_vgg16", weights="random", data="cifar10", n_images=100),
    # ImageNet's EfficientNet-Lite0 on foolbox's 20 photos at 224 px: 10 photos per draw; of its 50 weight
    # layers B1 averages over the steps 5, 10, ..., 50 (all 50 would take about 2.7 CPU hours)
    "efficientnet_lite0-trained": dict(model="efficientnet_lite0", weights="imagenet", data="samples",
                                       n_images=10, size=224, steps=list(range(5, 51, 5)), smooth_n=20),
}
MPRT_RULES = ("grad",) + NFR4
MPRT_PREPS = {"abs": True, "signed": False}
MPRT_MEASURES = ("ssim_original", "ssim_skimage", "spearman", "pearson", "kendall", "cosine")


def _mprt_maps(s, model, rules, smooth_seed=None, smooth_n=50):
    """{rule: [float64 map per image]} of the setup's images under ``model`` (smooth MPRT maps when
    ``smooth_seed`` is given: the mean over ``smooth_n`` noisy copies, noise 0.1 of each image's range)."""
    out = {}
    for r in rules:
        kw = dict(low=s.low, high=s.high) if r == "dtd" else {}
        maps = []
        for xb, tb in zip(s.x.split(100), s.target.split(100)):
            if smooth_seed is None:
                maps += mprt.maps(model, xb, tb, r, **kw)
            else:
                g = torch.Generator().manual_seed(int(smooth_seed))
                R = mprt.smooth_maps(model, xb, tb, r, n=smooth_n, noise=0.1, generator=g, **kw)
                maps += [m.detach().cpu().double().numpy() for m in R]
        out[r] = maps
    return out


def _mprt_units(net, part, draws, n_images, quiet) -> list[dict]:
    """Units of the MPRT settings: per (draw, image) the quantities of ``part`` (``"orders"``,
    ``"variants"``, ``"smooth"`` or ``"emprt"``). Draw k: randomization seed k (layer l from (k, l)) and
    the image subset drawn with seed k (and, for a random network, its weights)."""
    net_cfg = MPRT_NETS[net]
    units = []
    for k in tqdm(list(draws), desc=f"MPRT {part} {net} (draws)", disable=quiet):
        s = load_setup(model=net_cfg["model"], weights=net_cfg["weights"], data=net_cfg["data"],
                       n_images=n_images, size=net_cfg.get("size"), seed=int(k), batch_size=100)
        idx = image_index(net_cfg["data"], n_images, int(k))
        mine = [dict(draw=int(k), image=i, index=idx[i]) for i in range(len(s.x))]
        if part == "orders":
            base = _mprt_maps(s, s.model, MPRT_RULES)
            base = {r: [mprt.prepare(m) for m in v] for r, v in base.items()}
            for order in mprt.ORDERS:
                tot = {r: [0.0] * len(mine) for r in MPRT_RULES}
                n_steps = 0
                for _, _, mk in mprt.randomization_steps(s.model, order, int(k), steps=net_cfg.get("steps")):
                    for r, v in _mprt_maps(s, mk, MPRT_RULES).items():
                        for i, m in enumerate(v):
                            tot[r][i] += mprt.similarity(base[r][i], mprt.prepare(m), "spearman")
                    n_steps += 1
                    del mk
                for r in MPRT_RULES:
                    for i, u in enumerate(mine):
                        u[f"{order}_{r}"] = tot[r][i] / n_steps
        else:
            full = randomize(s.model, "gaussian", int(k))
            seeds = (1_000_003 * int(k), 1_000_003 * int(k) + 1) if part == "smooth" else (None, None)
            sn = net_cfg.get("smooth_n", 50)
            a = _mprt_maps(s, s.model, MPRT_RULES, seeds[0], smooth_n=sn)
            b = _mprt_maps(s, full, MPRT_RULES, seeds[1], smooth_n=sn)
            for i, u in enumerate(mine):
                if part == "emprt":
                    for r in MPRT_RULES:
                        u[f"emprt_{r}"] = mprt.emprt(mprt.prepare(a[r][i]), mprt.prepare(b[r][i]))
                    continue
                for prep, absolute in (MPRT_PREPS.items() if part == "variants" else [("abs", True)]):
                    for me in (MPRT_MEASURES if part == "variants" else ("spearman",)):
                        sim = {r: mprt.similarity(mprt.prepare(a[r][i], absolute=absolute),
                                                  mprt.prepare(b[r][i], absolute=absolute), me)
                               for r in MPRT_RULES}
                        if part == "variants":
                            u[f"{prep}_{me}_grad"] = sim["grad"]
                            u[f"{prep}_{me}_nfr"] = sum(sim[r] for r in NFR4) / len(NFR4)
                        else:
                            for r in MPRT_RULES:
                                u[f"smooth_{r}"] = sim[r]
        units += mine
    return units


def _mprt_setting(claim, part, what):
    for net, c in MPRT_NETS.items():
        def units(draws, n_images, quiet=True, net=net):
            return _mprt_units(net, part, draws, n_images, quiet)
        units.__doc__ = f"{claim} ({what}) on {net}: per (draw, image), see _mprt_units."
        extra = {}
        if part == "smooth":
            extra = {"smooth_n": c.get("smooth_n", 50), "smooth_noise": 0.1}
        if part == "orders" and c.get("steps"):
            extra = {"steps": c["steps"]}
        if part == "variants":
            extra = {"measures": list(MPRT_MEASURES)}
        setting(f"{claim}/{net}", draws=10, n_images=c["n_images"], model=c["model"], weights=c["weights"],
                data=c["data"], **({"size": c["size"]} if c.get("size") else {}),
                rules=list(MPRT_RULES), randomization="gaussian, He scale, biases zero, layer l from (draw, l)",
                maps="with bottom process", target="pred", part=part, **extra)(units)


_mprt_setting("B1", "orders", "layer orders")
_mprt_setting("B2", "variants", "preprocessing and similarity measures")
_mprt_setting("B3", "smooth", "smooth MPRT")
_mprt_setting("B4", "emprt", "efficient MPRT")


MPRT_LABELS = {"grad": "Grad", "gbp": "GBP", "rectgrad": "RectGrad", "zplus": "LRP(z+)", "dtd": "DTD", "nfr": "NFR mean"}


def mprt_table(root: Path | None = None, digits: int = 2) -> dict:
    """The MPRT evidence as one table: rows (network, variant), columns the methods, each cell the mean
    over units with its 95% interval (clustered by draw, :func:`nfr.verdicts.estimate`).

    Parameters
    ----------
    root : pathlib.Path, optional
        The book's root (the installed book by default).
    digits : int
        Decimals of the cells. Default 2.

    Returns
    -------
    dict
        ``{row label: {method label: "mean [lo, hi]"}}`` (an empty string where a row has no such
        method) for every B1-B4 setting with an evidence file
        (B1: Spearman averaged over the steps of each order; B2: full randomization, per preprocessing
        and measure, the gradient and the mean of the NFR rules; B3: smooth MPRT; B4: eMPRT).
    """
    root = Path(root or book_root())
    rows = {}

    def cell(units, q):
        e = verdicts.estimate(units, q, cluster="draw")
        lo, hi = e["interval"]
        return f"{e['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"

    for net in MPRT_NETS:
        for claim in ("B1", "B2", "B3", "B4"):
            ev = verdicts.load_evidence(root, f"{claim}/{net}")
            if ev is None:
                continue
            u = ev["units"]
            if claim == "B1":
                for order in mprt.ORDERS:
                    rows[f"{net}: {order.replace('_', '-')} (Spearman, mean over steps)"] = {
                        MPRT_LABELS[r]: cell(u, f"{order}_{r}") for r in MPRT_RULES}
            elif claim == "B2":
                for prep in MPRT_PREPS:
                    for me in MPRT_MEASURES:
                        rows[f"{net}: full, {prep}, {me}"] = {MPRT_LABELS[r]: cell(u, f"{prep}_{me}_{r}")
                                                             for r in ("grad", "nfr")}
            elif claim == "B3":
                rows[f"{net}: smooth MPRT, full (Spearman)"] = {MPRT_LABELS[r]: cell(u, f"smooth_{r}")
                                                               for r in MPRT_RULES}
            else:
                rows[f"{net}: eMPRT"] = {MPRT_LABELS[r]: cell(u, f"emprt_{r}") for r in MPRT_RULES}
    return {name: {c: row.get(c, "") for c in MPRT_LABELS.values()} for name, row in rows.items()}


# ----------------------------------------------------------------------------- C15: backdoors
BACKDOORS = ("badnet", "dynamic", "inputaware", "wanet")
C15_SEED_STRIDE = 100_003  # trigger seed of an image: stride x draw + its index in the test split


@setting("C15/resnet20-backdoors", draws=1, n_images=700, models="resnet20_<attack> (bundled)",
         data="jpeg test split", rule="gbp", dtype="float64", target_class=0,
         images="the seeded subset of n_images test images minus those of the target class",
         trigger_seed=f"per image: {C15_SEED_STRIDE} x draw + the image's index in the test split")
def c15_backdoors(draws, n_images, quiet=True) -> list[dict]:
    """Per attack and test image (true class not the target): KIS of the GBP map of its triggered
    copy, whether the trigger fires (decided class = target), and KIS of the clean image (chapter 10's
    computation, in float64)."""
    return _c15(draws, n_images, quiet, BACKDOORS, energy=False)


@setting("C15/resnet20-trigger-energy", draws=1, n_images=700, models="resnet20_<attack> (bundled)",
         attacks=["badnet", "dynamic", "inputaware"], target_class=0, rule="gbp", data="jpeg test split",
         dtype="float64", quantity="energy fraction of sum_c |R_c| on the trigger region (nfr.backdoors."
         "trigger_energy), over the region's area fraction; the same region in the clean image's map",
         trigger_seed=f"per image: {C15_SEED_STRIDE} x draw + the image's index in the test split")
def c15_trigger_energy(draws, n_images, quiet=True) -> list[dict]:
    """Per attack with a trigger region and test image (true class not the target): the energy
    fraction of the triggered copy's GBP map on the trigger region, the same region's fraction in the
    clean image's map, the region's area fraction and their ratio (with KIS, as C15's units)."""
    return _c15(draws, n_images, quiet, ("badnet", "dynamic", "inputaware"), energy=True)


def _c15(draws, n_images, quiet, attacks, energy) -> list[dict]:
    units = []
    for k in draws:
        xt, yt, _ = train.load_data("jpeg", "test", n_images, int(k))
        idx = select_indices(N_TOTAL["cifar10"], n_images, int(k))
        keep = torch.nonzero(yt != 0)[:, 0]
        x = xt[keep].double() / 255
        for a in tqdm(attacks, desc="C15 evidence (attacks)", disable=quiet):
            model, atk = train.load_bundled(f"resnet20_{a}")
            model, atk = model.double(), atk.to(torch.float64)
            for j, i in enumerate(keep.tolist()):
                # one image at a time, its trigger drawn from (draw, data-set index): Dynamic places a
                # random pattern, and a batch-wide generator would make an image's trigger depend on
                # which other images share its batch (a subset re-run would not reproduce it)
                r = backdoors.analyze(model.net, atk, x[j:j + 1], seed=C15_SEED_STRIDE * int(k) + idx[i])
                u = dict(draw=int(k), image=i, index=idx[i], attack=a, fired=bool(r["poisoned_pred"][0] == atk.target),
                         kis_poisoned=float(r["poisoned_kis"][0]), kis_clean=float(r["clean_kis"][0]))
                if energy:
                    area = float(r["area"][0])
                    u.update(energy_poisoned=float(r["poisoned_energy"][0]), energy_clean=float(r["clean_energy"][0]),
                             area=area, enrichment_poisoned=float(r["poisoned_energy"][0]) / area if area > 0 else math.nan)
                units.append(u)
    return units


# ----------------------------------------------------------------------------- running and checking
def _commit(root: Path) -> str:
    """The checkout's commit when the run starts, with ``+dirty`` if ``nfr/`` has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "nfr"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def run(key: str, root: Path | None = None, quiet: bool = False, draws: int | None = None,
        n_images: int | None = None, first_draw: int = 0, out: Path | None = None) -> dict:
    """Measure every unit of ``key`` (full size unless ``draws`` / ``n_images`` say otherwise; draws
    ``first_draw .. first_draw + draws - 1``), judge them against the criterion and write the
    evidence file (``out``: elsewhere, e.g. a repetition with other seeds). Returns the evidence."""
    root = Path(root or book_root())
    st = _get(key)
    criteria = verdicts.load_criteria(root)
    if key not in criteria:
        raise NFRError(f"{key} has no criterion in {verdicts.criteria_path(root)}: write it before the run")
    entry = criteria[key]
    nd, ni = draws or st.draws, n_images or st.n_images
    commit = _commit(root)
    t0 = time.process_time()
    units = st.units(list(range(first_draw, first_draw + nd)), ni, quiet)
    cpu = time.process_time() - t0
    units = [{k: _clean(v) for k, v in u.items()} for u in units]
    j = verdicts.judge(entry, [{k: (math.nan if v is None else v) for k, v in u.items()} for u in units])
    ev = dict(claim=entry["claim"], key=key, setting=entry["setting"],
              config=dict(st.config, draws=nd, first_draw=first_draw, n_images_per_draw=ni,
                          draw_seeds="see nfr.evidence"),
              commit=commit, n=len(units), unit=entry["unit"], units=units, effect=j["effect"],
              interval=j["interval"], verdict=j["verdict"], judgement=j, judge_seed=0,
              criterion_sha256=verdicts.criterion_sha256(entry), cpu_seconds=round(cpu, 1),
              torch_threads=torch.get_num_threads())
    path = Path(out) if out else verdicts.evidence_path(root, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ev, indent=1, default=float) + "\n")
    return ev


def recompute(key: str, draws=(0,), n_images: int = 2) -> list[dict]:
    """Units of ``n_images`` images of each of ``draws``, measured again (same code path and seeds;
    the images are a subset of the full run's, matched by their data-set ``index``)."""
    return _get(key).units(list(draws), n_images, True)


# Tolerances of the live check. The evidence files hold float32 computations; the same code on
# another CPU's kernels (make test's second nbval pass: generic ATen, SSE4.1 oneDNN) moved RectGrad's
# values on a random VGG16 at 224 px, whose thresholds sit on a quantile of 150 000 values, by up to
# 1.3e-4 (cosines, chroma) and 0.28 % (a map's largest magnitude); every other setting moved by less
# than 1e-5. The tolerances sit about 8 and 3.5 times above that spread, and far below any effect a
# criterion judges (0.02 and more), so a change of the code is caught and a change of CPU is not.
CHECK_ATOL = 1e-3
CHECK_MAXABS_RTOL = 1e-2


def check_units(key: str, root: Path | None = None, draws=(0,), n_images: int = 2,
                atol: float = CHECK_ATOL, maxabs_rtol: float = CHECK_MAXABS_RTOL) -> int:
    """Recompute a few units and compare them with the evidence file; raise :class:`NFRError` on a
    difference larger than ``atol`` (a map's largest magnitude: relative ``maxabs_rtol``), see
    :data:`CHECK_ATOL`. Returns the number of values compared."""
    root = Path(root or book_root())
    ev = verdicts.load_evidence(root, key)
    if ev is None:
        raise NFRError(f"no evidence file for {key}")
    stored = {(u["draw"], u["index"], u.get("attack"), u.get("net")): u for u in ev["units"]}
    n = 0
    for u in recompute(key, draws, n_images):
        s = stored.get((u["draw"], u["index"], u.get("attack"), u.get("net")))
        if s is None:
            raise NFRError(f"{key}: image {u['index']} of draw {u['draw']} is not in the evidence file")
        for q, v in u.items():
            if q in ("image", "group", "draw", "index", "attack", "fired", "net"):
                if q in ("group", "fired") and v != s[q]:
                    raise NFRError(f"{key}: image {u['index']} is {v} now, {s[q]} in the evidence file")
                continue
            if s[q] is None:
                ok = not math.isfinite(v)
            elif q.startswith("maxabs_"):
                ok = math.isclose(v, s[q], rel_tol=maxabs_rtol)
            else:
                ok = abs(v - s[q]) <= atol
            if not ok:
                raise NFRError(f"{key}: unit (draw {u['draw']}, image {u['image']}) {q} = {v} now, "
                               f"{s[q]} in the evidence file: the code no longer produces this evidence")
            n += 1
    return n


def describe() -> str:
    return "\n".join(f"  {k:32s} {s.draws} draws x {s.n_images} images" for k, s in sorted(SETTINGS.items()))
