"""Fig 9 of Zheng et al.: KIS and trigger energy of clean vs poisoned images.

For a network saved by ``python -m nfr train`` (``weights``: the ``.pt`` file, its manifest and
trigger file beside it; the architecture comes from the manifest): the images and their poisoned
copies, the decided class, the map of each rule in ``rules`` (default gbp), its KIS and, for an
attack with a trigger region, the share of the map's energy on the trigger and the region's area
(:func:`nfr.backdoors.analyze`). A clean network (no attack in its manifest) is probed with the
``control`` trigger (default BadNet, as chapter 10 does), which it never learned. Explains the
decided class. ``results[rule]``: ``kis_clean`` / ``kis_poisoned`` (mean, std, per image), the
share of clean / poisoned images decided as the attack's target, and the trigger energies and area.
Figure ``backdoor.png``: the first image, its poisoned copy, their maps of the first rule, and the
KIS histograms.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nfr.backdoors import ATTACKS, analyze, make_attack
from nfr.errors import NFRError
from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.plotting import rgb_map
from nfr.setup import load_data
from nfr.train import load_trained

#: the rules that need no further argument
RULES = ("grad", "grad_x_input", "gbp", "rectgrad", "zplus", "alphabeta", "dtd")


@dataclass
class Config(B.RunConfig):
    weights: str | None = option(None, "the .pt written by `python -m nfr train` (manifest .json and, "
                                 "for dynamic / inputaware / wanet, _trigger.pt beside it); the "
                                 "architecture comes from the manifest", metavar="PATH")
    data: str = option("cifar10", "images: 'cifar10' (the CIFAR-10 test split that ships with nfr), "
                       "'samples' (foolbox's 20 CIFAR-10 test photos) or a CIFAR-10 folder",
                       metavar="{cifar10,samples,PATH}")
    n_images: int = option(200, "number of images, a subset drawn with --seed (0 = all)", minimum=0,
                           metavar="N")
    size: int = option(32, "input resolution", minimum=1, metavar="PX")
    batch_size: int = option(50, "images per batch", minimum=1, metavar="B")
    rules: list[str] = option(["gbp"], "the rules (backdoor.png shows the first)", choices=RULES,
                              metavar="R1,R2")
    control: str = option("badnet", "trigger applied to a CLEAN network (one without an attack in its "
                          "manifest) as a control; a backdoored network is probed with its own trigger",
                          choices=tuple(ATTACKS))


@B.experiment("backdoor", "Fig 9: KIS and trigger energy, clean vs poisoned images, of a backdoored network")
def run(config: Config) -> B.Result:
    weights, seed, data = config.weights, config.seed, config.data
    if weights in (None, "random", "imagenet", "pretrained") or not Path(weights).is_file():
        raise NFRError(f"--weights must be a network file written by `python -m nfr train` (got "
                       f"{weights!r}), e.g. results/badnet/resnet18_badnet.pt, with its .json manifest")
    rules = list(config.rules)
    net, attack = load_trained(weights)
    trained_attack = attack.name if attack is not None else None
    if attack is None:
        attack = make_attack(config.control)
    x, _ = load_data(data, "cifar_resnet20", config.n_images or None, config.size or 32, seed)
    per_rule, first = {}, None
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for rule in tqdm(rules, desc="backdoor", unit="rule", disable=config.quiet, leave=False):
            res = analyze(net.net, attack, x, rule=rule, seed=seed, batch_size=config.batch_size)
            d = {"kis_clean": B.stats(res["clean_kis"]), "kis_poisoned": B.stats(res["poisoned_kis"]),
                 "pred_target_clean": float(np.mean(res["clean_pred"] == attack.target)),
                 "pred_target_poisoned": float(np.mean(res["poisoned_pred"] == attack.target))}
            if res.get("area") is not None:
                d["trigger_energy_clean"] = B.stats(res["clean_energy"])
                d["trigger_energy_poisoned"] = B.stats(res["poisoned_energy"])
                d["trigger_area"] = B.stats(res["area"])
            per_rule[rule] = d
            if first is None:
                first = dict(x=x[0], x_poisoned=res["x_poisoned"][0], R_clean=res["R_clean"][0],
                             R_poisoned=res["R_poisoned"][0], kis_clean=res["clean_kis"],
                             kis_poisoned=res["poisoned_kis"])
    result = dict(experiment="backdoor",
                  config=dict(weights=str(weights), trained_attack=trained_attack, probe=attack.config(),
                              data=data, n_images=int(len(x)), seed=seed, rules=rules),
                  results=per_rule)
    return B.Result(result, arrays=first)


def figures(result: B.Result) -> dict:
    a, rule, attack = result.arrays, result["config"]["rules"][0], result["config"]["probe"]["name"]
    fig = B.new_figure(figsize=(13, 3.1))
    ax = fig.subplots(1, 5)
    ax[0].imshow(a["x"].permute(1, 2, 0).numpy())
    ax[0].set_title("clean image", fontsize=8)
    ax[1].imshow(a["x_poisoned"].permute(1, 2, 0).numpy())
    ax[1].set_title(f"poisoned ({attack})", fontsize=8)
    ax[2].imshow(rgb_map(a["R_clean"]))
    ax[2].set_title(f"{rule} map, clean", fontsize=8)
    ax[3].imshow(rgb_map(a["R_poisoned"]))
    ax[3].set_title(f"{rule} map, poisoned", fontsize=8)
    for axis in ax[:4]:
        axis.axis("off")
    kc, kp = a["kis_clean"], a["kis_poisoned"]
    both = np.concatenate([kc, kp])
    both = both[np.isfinite(both)]
    bins = np.linspace(both.min(), both.max(), 21) if both.size and both.max() > both.min() else 10
    ax[4].hist(kc, bins, alpha=0.6, label="clean")
    ax[4].hist(kp, bins, alpha=0.6, label="poisoned")
    ax[4].set_xlabel(f"KIS ({rule})")
    ax[4].legend(fontsize=7)
    fig.tight_layout()
    return {"backdoor.png": fig}


def summary(result: B.Result) -> str:
    return "\n".join(f"  {r:8s} KIS clean {d['kis_clean']['mean']:.3f}  "
                     f"poisoned {d['kis_poisoned']['mean']:.3f}"
                     f"  (poisoned images decided as the target: {d['pred_target_poisoned']:.2f})"
                     for r, d in result["results"].items())
