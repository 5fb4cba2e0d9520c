"""Training (nfr.train): augmentation, one short epoch through the CLI, manifest, reloading."""
from __future__ import annotations

import json

import pytest
import torch

from nfr import train as T
from nfr.backdoors import BadNet
from nfr.cli import main



pytestmark = pytest.mark.usefixtures("one_thread")   # see conftest.py



def test_augment_crop_and_flip():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    out = T.augment(x, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == x.shape
    for i in range(2):  # every output is a (possibly flipped) window of the zero-padded image
        xp = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        wins = [xp[:, r:r + 8, c:c + 8] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(2)) for w in wins)
    torch.testing.assert_close(out, T.augment(x, torch.Generator().manual_seed(0), pad=2))


def test_normalized_matches_manual():
    from nfr.data import normalize
    from nfr.models import cifar_resnet
    net = cifar_resnet(20)
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(T.Normalized(net)(x), net(normalize(x)))


def test_cifar_resnet18_shape():
    assert T.cifar_resnet18()(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_build_model_errors():
    with pytest.raises(T.NFRError):
        T.build_model("resnet20", "pretrained-resnet56")
    with pytest.raises(T.NFRError):
        T.build_model("vgg", "scratch")


def _tiny_cifar(root, n_per_class, seed):
    """A synthetic CIFAR-10 folder <split>/<class>/<i>.png: one colour per class plus noise (learnable)."""
    from PIL import Image
    from nfr.data import CIFAR10_CLASSES
    g = torch.Generator().manual_seed(seed)
    cols = torch.rand(10, 3, 1, 1, generator=g)
    for split, n in (("train", n_per_class), ("test", 8)):
        for k, c in enumerate(CIFAR10_CLASSES):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                a = (cols[k] * 0.7 + 0.3 * torch.rand(3, 32, 32, generator=g)).clamp(0, 1)
                Image.fromarray((a.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(root / split / c / f"{i}.png")
    return root


def test_train_smoke_cli(tmp_path):
    """One short epoch (256 synthetic images, ResNet-20 from scratch) through the command line."""
    data = _tiny_cifar(tmp_path / "data", 26, 0)
    rc = main(["train", "--arch", "resnet20", "--attack", "badnet", "--init", "scratch",
               "--epochs", "1", "--n-train", "256", "--batch-size", "32", "--data", str(data),
               "--lr", "0.05", "--seed", "0", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    man = json.loads((tmp_path / "resnet20_badnet.json").read_text())
    assert man["command"].startswith("python -m nfr train")
    assert man["seed"] == 0 and man["epochs"] == 1 and man["steps"] == 8
    assert len(man["train_data"]["sha256"]) == 64 and man["train_data"]["n"] == 256
    assert man["test_data"]["n"] == 80
    assert 0 <= man["clean_accuracy"] <= 1 and 0 <= man["asr"] <= 1
    assert man["loss_last"] < man["loss_first"]
    model, atk = T.load_trained(tmp_path / "resnet20_badnet.pt")
    assert isinstance(atk, BadNet) and not model.training
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_load_data_jpeg_copy(monkeypatch):
    """'jpeg': the test split ships with nfr; the train split needs $NFR_CIFAR10_DIR."""
    x, y, info = T.load_data("jpeg", "test", n=8, seed=0)
    assert x.dtype == torch.uint8 and x.shape == (8, 3, 32, 32) and y.shape == (8,)
    assert info["file"] == "cifar10-test-jpeg.tar.gz" and len(info["sha256"]) == 64
    monkeypatch.delenv("NFR_CIFAR10_DIR", raising=False)
    with pytest.raises(T.NFRError, match="NFR_CIFAR10_DIR"):
        T.load_data("jpeg", "train", n=8, seed=0)


def test_cli_train_bad_init(tmp_path, capsys):
    rc = main(["train", "--init", str(tmp_path / "missing.pt"), "--arch", "resnet20",
               "--out", str(tmp_path), "--quiet"])
    assert rc == 2 and "error" in capsys.readouterr().err


def _manifests():
    from nfr.data import RESOURCES
    return sorted((RESOURCES / "models").glob("*.json"))


def _train_options(command: str) -> dict:
    """A manifest's ``python -m nfr train`` command as {flag: value, or None for a switch}."""
    import shlex
    argv = shlex.split(command)
    assert argv[:4] == ["python", "-m", "nfr", "train"]
    opts, i = {}, 4
    while i < len(argv):
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            opts[argv[i]], i = argv[i + 1], i + 2
        else:
            opts[argv[i]], i = None, i + 1
    return opts


@pytest.mark.parametrize("path", _manifests(), ids=lambda p: p.stem)
def test_committed_model_reproducible_from_its_manifest(path, tmp_path, monkeypatch):
    """Every model that ships with nfr: its manifest's command re-runs (a few steps, on a synthetic
    CIFAR-10 folder unless $NFR_CIFAR10_DIR names the real copy) and writes a manifest with the same
    settings; the committed files match the resources' checksums."""
    import os
    from nfr.data import resource
    man = json.loads(path.read_text())
    for f in man["files"]:
        resource(f"models/{f}")                      # checksum verified
    assert len(man["train_data"]["sha256"]) == 64 and man["train_data"]["n"] > 0
    assert len(man["test_data"]["sha256"]) == 64 and 0 <= man["clean_accuracy"] <= 1
    out = tmp_path / "out"
    data = None if os.environ.get("NFR_CIFAR10_DIR") else str(_tiny_cifar(tmp_path / "data", 4, 0))
    # a model trained in stages (e.g. continued from an earlier run's weights): every stage's
    # command re-runs in order, each --init that names an earlier stage's output pointed at out/
    stages = man.get("stages") or [man]
    for stage in stages:
        opts = _train_options(stage["command"])
        stage_out = opts.get("--out", "models")
        init = opts.get("--init", "")
        if init.startswith(stage_out.rstrip("/") + "/"):
            opts["--init"] = str(out / init[len(stage_out.rstrip("/")) + 1:])
        if data is not None:
            opts["--data"] = data
        opts.update({"--epochs": "1", "--n-train": "32", "--n-test": "16", "--batch-size": "16",
                     "--out": str(out), "--quiet": None})
        if "--device" in opts:                       # trained on a GPU: the re-run is on this CPU
            opts["--device"] = "cpu"
        args = ["train"] + [t for k, v in opts.items() for t in ([k] if v is None else [k, v])]
        assert main(args) == 0, stage["command"]
    new = json.loads((out / path.name).read_text())
    for key in ("name", "model", "attack", "init", "seed", "lr", "width", "save_dtype"):
        if key in man and key != "init":  # width and save_dtype: manifests written since they existed
            assert new[key] == man[key], key
    assert (new["init"] == man["init"]) or len(stages) > 1
    assert new["files"] == man["files"] and new["steps"] == 2


def test_cifar_vgg16_is_an_experiment_model():
    """The trained VGG16-layout network and its seeded random twin load by name in every
    experiment: 16 weight layers (cascade levels N = 0..16 as in Zheng et al.), the trained one
    classifies the bundled CIFAR-10 test images, the random one is reproducible from the seed."""
    import torch

    from nfr.data import cifar10_test, normalize
    from nfr.engine.weights import weight_layers
    from nfr.setup import load_model
    net = load_model("cifar_vgg16", "pretrained")
    assert len(weight_layers(net)) == 16
    x, y = cifar10_test(n=200, seed=0)
    with torch.no_grad():
        acc = (net(normalize(x)).argmax(1) == torch.as_tensor(y)).float().mean().item()
    assert acc > 0.8, acc
    a, b = load_model("cifar_vgg16", "random", seed=3), load_model("cifar_vgg16", "random", seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    c = load_model("cifar_vgg16", "random", seed=4)
    assert not torch.equal(next(iter(a.state_dict().values())), next(iter(c.state_dict().values())))


@pytest.mark.parametrize("attack", ["badnet", "dynamic", "inputaware", "wanet"])
def test_backdoor_manifest_standard_is_computed_from_its_numbers(attack):
    """Each bundled backdoor's manifest states whether it meets the attack's standard (ASR >= 0.95 on
    every non-target test image; clean accuracy within 3 points of a clean twin trained by the same
    recipe): the flags must follow from the manifest's own numbers, the twin must share the recipe,
    and the ASR must be measured on all 9,000 non-target test images."""
    from nfr.train import bundled_manifest
    m = bundled_manifest(f"resnet20_{attack}")
    t, twin = m["target"], m["clean_twin"]
    assert m["n_test"] == 10000 and m["n_asr"] == 9000 and twin["n_test"] == 10000
    assert t["asr_met"] == (m["asr"] >= t["asr_at_least"] == 0.95)
    assert t["clean_gap_points"] == round(100 * (twin["clean_accuracy"] - m["clean_accuracy"]), 2)
    assert t["clean_met"] == (t["clean_gap_points"] <= t["clean_within_points_of_twin"] == 3.0)
    assert (twin["epochs"], twin["lr"], twin["steps"]) == (m["epochs"], m["lr"], m["steps"])
    recipe = [{k: v for k, v in _train_options(c).items() if k not in ("--attack", "--name", "--rate")}
              for c in (twin["command"], m["command"])]
    assert recipe[0] == recipe[1]
