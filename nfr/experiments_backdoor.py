"""Fig 9 of Zheng et al. as a command: ``python -m nfr backdoor --weights <trained .pt> ...``.

The network and its trigger come from a file written by ``python -m nfr train`` (the state dict,
its manifest ``<stem>.json`` and, for attacks with a learned generator or warp field,
``<stem>_trigger.pt``; :func:`nfr.train.load_trained`). For clean and poisoned copies of the test
images, :func:`nfr.backdoors.analyze` gives the decided class, the attribution map, its KIS (seed
eq 20) and the share of the map's energy on the trigger region against the region's area. This is
chapter 10's analysis, for any of the four attacks and any number of images.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nfr.errors import NFRError
from nfr.experiments import _finish, _plt, _stats, load_data

__all__ = ["backdoor"]


def backdoor(model=None, weights=None, data="cifar10", n_images=200, size=None, device="cpu", seed=0,
             target="pred", batch_size=50, rules=None, control="badnet", out=None, progress=True) -> dict:
    """KIS and trigger energy of clean vs poisoned images for a network saved by ``nfr train``.

    ``weights``: the ``.pt`` file (its manifest and trigger file beside it). A clean network (no
    attack in its manifest) is probed with the ``control`` trigger (default BadNet, as chapter 10
    does), which it never learned. ``rules``: attribution rules (default "gbp"). Explains the decided
    class (``target`` must be "pred"). Writes ``backdoor.json`` and ``backdoor.png``.
    """
    import torch
    from nfr.backdoors import analyze, make_attack
    from nfr.train import load_trained
    if weights in (None, "random", "imagenet", "pretrained") or not Path(weights).is_file():
        raise NFRError(f"--weights must be a network file written by `python -m nfr train` (got "
                       f"{weights!r}), e.g. results/badnet/resnet18_badnet.pt, with its .json manifest")
    if device != "cpu":
        raise NFRError("backdoor runs on the CPU (the attacks' triggers are drawn there); the CIFAR-10 "
                       "networks take about a second per image: use --device cpu")
    if target != "pred":
        raise NFRError("backdoor explains the decided class (the trigger's target when it works): "
                       "use --target pred")
    rules = [r for r in (rules or "gbp").split(",") if r]
    net, attack = load_trained(weights)
    trained_attack = attack.name if attack is not None else None
    if attack is None:
        attack = make_attack(control)
    x, labels = load_data(data, "cifar_resnet20", n_images, size or 32, seed)
    per_rule, first = {}, None
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for rule in rules:
            res = analyze(net.net, attack, x, rule=rule, seed=seed, batch_size=batch_size)
            d = {"kis_clean": _stats(res["clean_kis"]), "kis_poisoned": _stats(res["poisoned_kis"]),
                 "pred_target_clean": float(np.mean(res["clean_pred"] == attack.target)),
                 "pred_target_poisoned": float(np.mean(res["poisoned_pred"] == attack.target))}
            if res.get("area") is not None:
                d["trigger_energy_clean"] = _stats(res["clean_energy"])
                d["trigger_energy_poisoned"] = _stats(res["poisoned_energy"])
                d["trigger_area"] = _stats(res["area"])
            per_rule[rule] = d
            if first is None:
                first = (x[0], res["x_poisoned"][0], res["R_clean"][0], res["R_poisoned"][0],
                         res["clean_kis"], res["poisoned_kis"])
    result = dict(experiment="backdoor",
                  config=dict(weights=str(weights), trained_attack=trained_attack, probe=attack.config(),
                              data=data, n_images=int(len(x)), seed=seed, rules=rules),
                  results=per_rule, figures=[])
    from nfr.plotting import rgb_map
    plt = _plt()
    fig, ax = plt.subplots(1, 5, figsize=(13, 3.1))
    x0, xp0, R0, Rp0, kc, kp = first
    ax[0].imshow(x0.permute(1, 2, 0).numpy())
    ax[0].set_title("clean image", fontsize=8)
    ax[1].imshow(xp0.permute(1, 2, 0).numpy())
    ax[1].set_title(f"poisoned ({attack.name})", fontsize=8)
    ax[2].imshow(rgb_map(R0))
    ax[2].set_title(f"{rules[0]} map, clean", fontsize=8)
    ax[3].imshow(rgb_map(Rp0))
    ax[3].set_title(f"{rules[0]} map, poisoned", fontsize=8)
    for a in ax[:4]:
        a.axis("off")
    both = np.concatenate([kc, kp])
    both = both[np.isfinite(both)]
    bins = np.linspace(both.min(), both.max(), 21) if both.size and both.max() > both.min() else 10
    ax[4].hist(kc, bins, alpha=0.6, label="clean")
    ax[4].hist(kp, bins, alpha=0.6, label="poisoned")
    ax[4].set_xlabel(f"KIS ({rules[0]})")
    ax[4].legend(fontsize=7)
    fig.tight_layout()
    return _finish("backdoor", result, out, {"backdoor.png": fig})
