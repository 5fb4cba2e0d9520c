"""Tests for nfr.data: sample photos, folders, CIFAR-10 readers, normalisation."""
import numpy as np
import pytest
import torch
from PIL import Image

import nfr.data as D
from nfr.errors import NFRError

SHARED = D.shared_dir()
TARBALL = SHARED / "data" / "cifar10-jpeg.tar.gz" if SHARED is not None else None
needs_tarball = pytest.mark.skipif(TARBALL is None or not TARBALL.is_file(),
                                   reason="../shared/data/cifar10-jpeg.tar.gz absent")


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
def test_cifar10_folder_shared_tarball():
    x, y = D.cifar10_folder(TARBALL, n=200, seed=0)
    assert x.shape == (200, 3, 32, 32) and x.dtype == torch.float32
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert int(y.min()) >= 0 and int(y.max()) <= 9 and len(set(y.tolist())) == 10
    x2, y2 = D.cifar10_folder(TARBALL, n=200, seed=0)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = D.cifar10_folder(TARBALL, n=200, seed=1)
    assert not torch.equal(x, x3)
    assert torch.equal(D.cifar10_folder(n=200, seed=0)[0], x)  # default location via shared_dir


def test_cifar10_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("NFR_CIFAR10_DIR", raising=False)
    monkeypatch.setattr(D, "shared_dir", lambda: None)
    with pytest.raises(NFRError, match="NFR_CIFAR10_DIR"):
        D.cifar10_folder()
    with pytest.raises(NFRError, match="download=True"):
        D.cifar10(tmp_path)
    with pytest.raises(NFRError, match="split"):
        D.cifar10_folder(tmp_path, split="val")
