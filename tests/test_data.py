"""Tests for nfr.data: bundled resources, sample photos, folders, CIFAR-10 readers, normalisation."""
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nfr.data as D
from nfr.errors import NFRError

# Optional: the full JPEG copy of CIFAR-10 (train + test, e.g. the project's own copy) at the path in
# $NFR_CIFAR10_DIR. Only these tests read a file outside the repository; they skip without it.
_ENV = os.environ.get("NFR_CIFAR10_DIR")
TARBALL = Path(_ENV) if _ENV else None
needs_tarball = pytest.mark.skipif(TARBALL is None or not TARBALL.is_file(),
                                   reason="set NFR_CIFAR10_DIR to the full CIFAR-10 JPEG copy (.tar.gz)")
#: sha256 of the decoded pixels (uint8, N x 3 x 32 x 32, sorted class/file order) and labels of the
#: bundled test split: a JPEG decoder that gives other pixels fails here, not in the book's numbers
CIFAR10_TEST_PIXELS_SHA256 = "56408e16fefefc2d653e651fc019204c8b6c429b1f1e97679865d69cf85adbcf"


def test_foolbox_imagenet():
    x, y = D.foolbox_imagenet()
    assert x.shape == (20, 3, 224, 224) and x.dtype == torch.float32
    assert float(x.min()) >= 0 and float(x.max()) <= 1 and float(x.std()) > 0.1
    assert y.tolist()[:5] == [243, 559, 438, 990, 949] and y.dtype == torch.int64
    x2, y2 = D.foolbox_imagenet(size=64, indices=[0, 3])
    assert x2.shape == (2, 3, 64, 64) and y2.tolist() == [243, 990]
    assert torch.equal(D.foolbox_imagenet(indices=[3])[0][0], x[3])
    assert len(D.imagenet_classes()) == 1000 and D.imagenet_classes()[243] == "bull mastiff"


def test_foolbox_cifar10():
    x, y = D.foolbox_cifar10()
    assert x.shape == (20, 3, 32, 32)
    assert y.tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert D.CIFAR10_CLASSES[3] == "cat" and len(D.CIFAR10_CLASSES) == 10


def test_skimage_photos():
    x, names = D.skimage_photos(size=128)
    assert x.shape == (4, 3, 128, 128) and names == list(D.SKIMAGE_PHOTOS)
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    with pytest.raises(NFRError, match="no photo"):
        D.skimage_photos(["nope"])


def test_normalize_and_box_bounds():
    x = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    z = D.normalize(x)
    assert torch.allclose(D.denormalize(z), x, atol=1e-6)
    assert torch.allclose(z[:, 1], (x[:, 1] - 0.456) / 0.224)
    low, high = D.box_bounds()
    assert low.shape == (1, 3, 1, 1)
    assert torch.allclose(low, D.normalize(torch.zeros(1, 3, 1, 1)))
    assert torch.allclose(high, D.normalize(torch.ones(1, 3, 1, 1)))
    assert bool((z >= low - 1e-6).all() and (z <= high + 1e-6).all())
    lo, hi = D.box_bounds(*D.EFFICIENTNET_LITE_STATS)
    assert torch.allclose(lo, torch.full_like(lo, -127 / 128)) and torch.allclose(hi, torch.ones_like(hi))


def _write_png(path, value, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def test_imagenet_folder_imagefolder_layout(tmp_path):
    for k, wnid in enumerate(["n01", "n02", "n03"]):
        for i in range(4):
            _write_png(tmp_path / wnid / f"img{i}.png", 10 * k + i)
    x, y = D.imagenet_folder(tmp_path, size=16)
    assert x.shape == (12, 3, 16, 16) and y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert float(x[5, 0, 0, 0]) == pytest.approx(11 / 255)
    a = D.imagenet_folder(tmp_path, n=5, seed=1, size=16)
    b = D.imagenet_folder(tmp_path, n=5, seed=1, size=16)
    c = D.imagenet_folder(tmp_path, n=5, seed=2, size=16)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and len(a[1]) == 5
    assert not torch.equal(a[0], c[0])


def test_imagenet_folder_flat_layouts(tmp_path):
    for i in range(3):
        _write_png(tmp_path / f"ILSVRC2012_val_{i:08d}.JPEG.png", i)
    with pytest.raises(NFRError, match="labels file"):
        D.imagenet_folder(tmp_path, size=8)
    (tmp_path / "val.txt").write_text("\n".join(f"ILSVRC2012_val_{i:08d}.JPEG.png {7 * i}" for i in (2, 0, 1)))
    assert D.imagenet_folder(tmp_path, size=8)[1].tolist() == [0, 7, 14]
    lf = tmp_path / "only_idx.txt"
    lf.write_text("5\n6\n7\n")
    assert D.imagenet_folder(tmp_path, size=8, labels_file=lf)[1].tolist() == [5, 6, 7]
    with pytest.raises(NFRError, match="does not exist"):
        D.imagenet_folder(tmp_path / "nope")


def test_cifar10_folder_directory_layout(tmp_path):
    for k, c in enumerate(D.CIFAR10_CLASSES):
        for i in range(2):
            _write_png(tmp_path / "test" / c / f"{i:04d}.png", 20 * k + i, size=(32, 32))
    x, y = D.cifar10_folder(tmp_path)
    assert x.shape == (20, 3, 32, 32) and y.tolist() == sorted(list(range(10)) * 2)
    assert float(x[3, 2, 5, 5]) == pytest.approx(21 / 255)
    with pytest.raises(NFRError, match="train"):
        D.cifar10_folder(tmp_path, split="train")


@needs_tarball
def test_cifar10_folder_full_copy_matches_bundled_test_split():
    x, y = D.cifar10_folder(TARBALL, n=200, seed=0)
    assert x.shape == (200, 3, 32, 32) and x.dtype == torch.float32
    assert int(y.min()) >= 0 and int(y.max()) <= 9 and len(set(y.tolist())) == 10
    xb, yb = D.cifar10_test(n=200, seed=0)  # the bundled split holds the same files
    assert torch.equal(x, xb) and torch.equal(y, yb)


def test_cifar10_test_bundled():
    x, y = D.cifar10_test(n=200, seed=0)
    assert x.shape == (200, 3, 32, 32) and x.dtype == torch.float32
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert len(set(y.tolist())) == 10
    x2, y2 = D.cifar10_test(n=200, seed=0)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, D.cifar10_test(n=200, seed=1)[0])


def test_cifar10_test_decoded_pixels_checksum():
    x, y = D.cifar10_test()
    assert x.shape == (10000, 3, 32, 32) and torch.bincount(y).tolist() == [1000] * 10
    h = hashlib.sha256((x * 255).round().to(torch.uint8).numpy().tobytes())
    h.update(y.numpy().tobytes())
    assert h.hexdigest() == CIFAR10_TEST_PIXELS_SHA256


def test_resources_manifest_readme_and_files():
    man = json.loads((D.RESOURCES / "manifest.json").read_text())["files"]
    readme = (D.RESOURCES / "README.md").read_text()
    present = {p.relative_to(D.RESOURCES).as_posix() for p in D.RESOURCES.rglob("*") if p.is_file()}
    own = {"manifest.json", "README.md", "ebpg_boxes.json", "models/LICENSE-akamaster.txt"}
    assert present - own == set(man), "every shipped file is in the manifest, and only those"
    total = 0
    for name, e in man.items():
        p = D.resource(name)
        assert p.stat().st_size == e["bytes"]
        assert hashlib.sha256(p.read_bytes()).hexdigest() == e["sha256"]
        assert f"`{name}`" in readme and e["sha256"] in readme and f"{e['bytes']:,}" in readme
        assert e["origin"] and e["licence"]
        total += e["bytes"]
    assert total < 50e6
    assert "BSD" in (D.RESOURCES / "models" / "LICENSE-akamaster.txt").read_text()


def test_resource_checksum_guard(tmp_path, monkeypatch):
    name = "models/resnet20_clean.json"
    (tmp_path / "models").mkdir()
    shutil.copy(D.RESOURCES / "manifest.json", tmp_path / "manifest.json")
    shutil.copy(D.RESOURCES / name, tmp_path / name)
    monkeypatch.setattr(D, "RESOURCES", tmp_path)
    assert D.resource(name) == tmp_path / name
    (tmp_path / name).write_text("{}")
    with pytest.raises(NFRError, match="sha256"):
        D.resource(name)
    (tmp_path / name).unlink()
    with pytest.raises(NFRError, match="missing"):
        D.resource(name)
    with pytest.raises(NFRError, match="not one of"):
        D.resource("models/nope.pt")


def test_no_discovery_outside_the_package():
    src = "".join(p.read_text() for p in Path(D.__file__).parent.rglob("*.py"))
    assert "NFR_SHARED" not in src and "shared_dir" not in src and "../shared" not in src


def test_cifar10_errors(tmp_path):
    with pytest.raises(NFRError, match="cifar10_test"):
        D.cifar10_folder(None)
    with pytest.raises(NFRError, match="download=True"):
        D.cifar10(tmp_path)
    with pytest.raises(NFRError, match="split"):
        D.cifar10_folder(tmp_path, split="val")
