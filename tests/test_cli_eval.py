"""Seed 002 Table 1 (``python -m nfr ebpg``) and Fig 6 (``python -m nfr perturbation``): the box
loaders, the pointing game and the perturbation curves on cases with a known answer, and both
commands end to end on tiny settings."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from nfr import cli
from nfr import data as D
from nfr.baselines import cam_layer
from nfr.experiments.ebpg import sample_images
from nfr.experiments.perturbation import perturbation_curves
from nfr.predictable import ebpg

ROOT = Path(__file__).resolve().parents[1]
WNID = "n01440764"
OTHER = "n01443537"


def _xml(path: Path, width: int, height: int, objects) -> None:
    objs = "".join(f"<object><name>{n}</name><pose>Unspecified</pose><truncated>0</truncated>"
                   f"<difficult>0</difficult><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
                   f"<xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>" for n, a, b, c, d in objects)
    path.write_text(f"<annotation><folder>val</folder><filename>{path.stem}</filename>"
                    f"<source><database>ILSVRC_2012</database></source><size><width>{width}</width>"
                    f"<height>{height}</height><depth>3</depth></size><segmented>0</segmented>"
                    f"{objs}</annotation>")


def _image(path: Path, width: int, height: int, box=None) -> None:
    """Black image with a white rectangle on the 1-based inclusive box (xmin, ymin, xmax, ymax)."""
    from PIL import Image
    a = np.zeros((height, width, 3), np.uint8)
    if box is not None:
        xmin, ymin, xmax, ymax = box
        a[ymin - 1:ymax, xmin - 1:xmax] = 255
    Image.fromarray(a).save(path)


# ------------------------------------------------------------------ boxes: parser and mapping
def test_voc_parser_and_box_mapping(tmp_path):
    # 40 x 20 image, size 16, resize 16: r = 0.8, resized 32 x 16, crop starts at x = 8, y = 0.
    # The box covers x in [15, 25), y in [5, 15) (0-based edges) -> x [4, 12), y [4, 12) in the crop.
    f = tmp_path / "ILSVRC2012_val_00000001.xml"
    _xml(f, 40, 20, [(WNID, 16, 6, 25, 15), (OTHER, 28, 2, 40, 8), (WNID, 1, 1, 5, 20)])
    a = D.parse_voc_xml(f)
    assert (a["width"], a["height"]) == (40, 20)
    assert a["objects"][0] == (WNID, 16, 6, 25, 15) and len(a["objects"]) == 3
    assert D.map_box((16, 6, 25, 15), 40, 20, size=16, resize=16) == (4, 12, 4, 12)
    # left of the crop (x < 8 after resizing): vanishes; right edge clipped to the crop
    assert D.map_box((1, 1, 5, 20), 40, 20, size=16, resize=16) is None
    assert D.map_box((28, 2, 40, 8), 40, 20, size=16, resize=16) == (1, 6, 14, 16)
    assert D.imagenet_boxes(f, size=16, resize=16, wnid=WNID) == [(4, 12, 4, 12)]
    assert D.imagenet_boxes(f, size=16, resize=16) == [(4, 12, 4, 12), (1, 6, 14, 16)]
    assert D.imagenet_boxes(tmp_path, size=16, resize=16, wnid=OTHER) == {f.stem: [(1, 6, 14, 16)]}
    assert D.imagenet_boxes(tmp_path, size=16, resize=16, wnid="n00000000") == {f.stem: []}


def test_box_mapping_matches_the_image_transform(tmp_path):
    # a white rectangle drawn on the annotated pixels lands on the mapped box after load_image
    w, h, box = 300, 200, (91, 41, 210, 150)
    _image(tmp_path / "a.png", w, h, box)
    size, resize = 64, 73
    img = D.load_image(tmp_path / "a.png", size=size, resize=resize)[0].numpy()
    y1, y2, x1, x2 = D.map_box(box, w, h, size=size, resize=resize)
    ys, xs = np.nonzero(img > 0.5)
    assert abs(ys.min() - y1) <= 1 and abs(ys.max() + 1 - y2) <= 1
    assert abs(xs.min() - x1) <= 1 and abs(xs.max() + 1 - x2) <= 1
    assert img[y1 + 1:y2 - 1, x1 + 1:x2 - 1].min() > 0.9


def test_imagenet_items_is_what_imagenet_folder_draws(tmp_path):
    for k, wn in enumerate((WNID, OTHER)):
        (tmp_path / wn).mkdir()
        for j in range(3):
            _image(tmp_path / wn / f"ILSVRC2012_val_0000000{3 * k + j}.png", 20 + 5 * j, 16)
    items = D.imagenet_items(tmp_path)
    assert [lab for _, lab in items] == [0, 0, 0, 1, 1, 1]
    x, y = D.imagenet_folder(tmp_path, n=4, seed=1, size=8)
    pick = D.select_indices(len(items), 4, 1)
    assert y.tolist() == [items[i][1] for i in pick] and x.shape == (4, 3, 8, 8)


def test_sample_boxes_are_packaged_and_match_the_book_copy():
    pkg = (ROOT / "nfr" / "resources" / "ebpg_boxes.json").read_bytes()
    assert pkg == (ROOT / "book" / "data" / "ebpg_boxes.json").read_bytes()
    b224, b32 = D.sample_boxes(224), D.sample_boxes(32)
    assert [b["index"] for b in b224] == [0, 6, 7, 18, 19]
    assert b224[0]["box"] == (30, 215, 28, 135)
    assert b32[0]["box"] == tuple(round(v * 32 / 224) for v in (30, 215, 28, 135))
    assert "resources/*.json" in (ROOT / "pyproject.toml").read_text()


# ------------------------------------------------------------------ the pointing game
def test_ebpg_known_values():
    R = np.zeros((4, 6, 6))
    R[:, 1:3, 1:3] = 1.0          # 4 units of energy in the box
    R[:, 5, 5] = 2.0              # 2 outside it
    R[:, 0, 5] = -7.0             # negative: no energy
    inside = np.zeros((6, 6))
    inside[2:4, 2:5] = 3.0
    assert ebpg(inside[None], [(2, 4, 2, 5)])[0] == 1.0
    v = ebpg(R, [(1, 3, 1, 3),                          # single box: 4 / 6
                 [(1, 3, 1, 3), (5, 6, 5, 6)],          # union of two boxes: all energy
                 [(1, 3, 1, 2), (1, 3, 1, 3)],          # overlapping boxes counted once: 4 / 6
                 np.eye(6, dtype=bool)])                # mask: diagonal (1,1), (2,2), (5,5) = 4 / 6
    np.testing.assert_allclose(v, [4 / 6, 1.0, 4 / 6, 4 / 6])
    assert np.isnan(ebpg(-np.ones((1, 4, 4)), [(0, 2, 0, 2)])[0])
    # channel-first maps are summed over channels, boxes are rows first
    R3 = np.zeros((1, 3, 4, 8))
    R3[0, :, 0, 6] = 1.0
    assert ebpg(R3, [(0, 1, 6, 7)])[0] == 1.0 and ebpg(R3, [(0, 4, 0, 4)])[0] == 0.0
    with pytest.raises(Exception):
        ebpg(R3, [(6, 7, 0, 1)])                        # (x1, x2, y1, y2) order: outside the map


def test_ebpg_rejects_bad_regions():
    from nfr.errors import NFRError
    with pytest.raises(NFRError):
        ebpg(np.ones((1, 4, 4)), [[]])
    with pytest.raises(NFRError):
        ebpg(np.ones((1, 4, 4)), [np.ones((3, 3), bool)])


# ------------------------------------------------------------------ pixel perturbation
class OnePixel(nn.Module):
    """Two logits; logit 0 = 10 x[0, 0, py, px], logit 1 = 0: p(class 0) depends on one pixel."""

    def __init__(self, py, px):
        super().__init__()
        self.py, self.px = py, px

    def forward(self, x):
        z = 10 * x[:, 0, self.py, self.px]
        return torch.stack([z, torch.zeros_like(z)], 1)


def test_perturbation_curves_known_answer():
    m = OnePixel(2, 1).eval()
    x = torch.full((2, 3, 4, 4), 0.5)
    t = torch.zeros(2, dtype=torch.long)
    fr = np.linspace(0, 1, 5)
    cur = perturbation_curves(m, x, t, ["saliency"], fr, batch_size=1)["saliency"]
    p_on, p_off = torch.sigmoid(torch.tensor(5.0)).item(), 0.5
    # MoRF removes the one pixel the saliency map points at in the first step
    np.testing.assert_allclose(cur["morf"], [[p_on] + [p_off] * 4] * 2, atol=1e-6)
    # LeRF keeps it until every pixel is gone
    np.testing.assert_allclose(cur["lerf"], [[p_on] * 4 + [p_off]] * 2, atol=1e-6)
    from nfr.predictable import aopc
    np.testing.assert_allclose(aopc(cur["morf"]), (p_on - p_off) * 4 / 5)
    np.testing.assert_allclose(aopc(cur["lerf"]), (p_on - p_off) / 5)


def test_cam_layer_picks_the_last_feature_block():
    from nfr.setup import load_model
    assert cam_layer(load_model("vgg16", "random", 0)) == "features.29"
    assert cam_layer(load_model("resnet18", "random", 0)) == "layer4"
    assert cam_layer(load_model("cifar_resnet20", "random", 0)) == "layer3"


# ------------------------------------------------------------------ the commands
def test_cli_ebpg_samples(tmp_path, capsys):
    rc = cli.main(["ebpg", "--model", "resnet18", "--weights", "random", "--data", "samples",
                   "--size", "32", "--n-images", "2", "--rules", "saliency,gbp,gradcam",
                   "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    d = json.loads((tmp_path / "ebpg.json").read_text())
    assert d["experiment"] == "ebpg" and d["n_images"] == 2 and d["config"]["target"] == "label"
    assert set(d["ebpg"]) == {"saliency", "gbp", "gradcam"}
    assert all(len(v["per_image"]) == 2 for v in d["ebpg"].values())
    assert "only these photos are used" in d["config"]["box_source"]
    assert d["config"]["cam_layer"] == "layer4" and (tmp_path / "ebpg.png").is_file()
    assert all(im["label"] in (243, 609, 317, 305) for im in d["images"])


def test_cli_ebpg_imagenet_folder_with_boxes(tmp_path):
    val, boxes = tmp_path / "val", tmp_path / "boxes"
    for wn in (WNID, OTHER):
        (val / wn).mkdir(parents=True)
    boxes.mkdir()
    # 1: usable box; 2: box only left of the centre crop; 3: no annotation file;
    # 4: only an object of another class; 5: two boxes of its class (union)
    spec = {1: (WNID, [(WNID, 16, 6, 25, 15)]), 2: (WNID, [(WNID, 1, 1, 5, 20)]), 3: (OTHER, None),
            4: (OTHER, [(WNID, 16, 6, 25, 15)]), 5: (OTHER, [(OTHER, 16, 6, 25, 15), (OTHER, 28, 2, 40, 8)])}
    for i, (wn, objs) in spec.items():
        stem = f"ILSVRC2012_val_0000000{i}"
        _image(val / wn / f"{stem}.png", 40, 20)
        if objs is not None:
            _xml(boxes / f"{stem}.xml", 40, 20, objs)
    out = tmp_path / "out"
    args = ["ebpg", "--model", "resnet18", "--data", str(val), "--size", "32", "--rules", "saliency",
            "--out", str(out), "--quiet"]
    assert cli.main(args) == 2                      # an ImageNet folder needs --boxes
    assert cli.main(args + ["--boxes", str(boxes)]) == 0
    d = json.loads((out / "ebpg.json").read_text())
    assert d["n_images"] == 2
    assert d["config"]["skipped"] == {"no_annotation": 1, "no_box_of_class": 1, "several_boxes": 0,
                                      "box_too_large": 0, "box_outside_crop": 1}
    im = {Path(i["image"]).stem: i for i in d["images"]}
    # size 32, resize round(32 * 256 / 224) = 37: r = 1.85, resized 74 x 37, crop x from 21, y from 2
    assert im["ILSVRC2012_val_00000001"]["boxes"] == [list(D.map_box((16, 6, 25, 15), 40, 20, 32, 37))]
    assert len(im["ILSVRC2012_val_00000005"]["boxes"]) == 2 and im["ILSVRC2012_val_00000005"]["label"] == 1
    assert cli.main(args + ["--boxes", str(boxes), "--single-box"]) == 0
    d = json.loads((out / "ebpg.json").read_text())
    assert d["n_images"] == 1 and d["config"]["skipped"]["several_boxes"] == 1


def test_cli_ebpg_errors(tmp_path):
    assert cli.main(["ebpg", "--data", "samples", "--boxes", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert cli.main(["ebpg", "--model", "cifar_resnet20", "--out", str(tmp_path)]) == 2
    # every sample box covers more than 1% of its photo
    assert cli.main(["ebpg", "--max-box-frac", "0.01", "--out", str(tmp_path)]) == 2


def test_sample_boxes_filter():
    _, labels, bx, info, skipped = sample_images(224, None, 0, 0.45)
    # 185 x 107, 100 x 155, 100 x 185, 195 x 125 (48.6%), 130 x 155 pixels of 224 x 224
    assert skipped == {"box_too_large": 1} and len(bx) == 4 and 317 not in labels


def test_cli_perturbation(tmp_path):
    rc = cli.main(["perturbation", "--model", "cifar_resnet20", "--weights", "random", "--data",
                   "samples", "--size", "32", "--n-images", "2", "--rules", "saliency,gbp,gradcam",
                   "--n-fractions", "4", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    d = json.loads((tmp_path / "perturbation.json").read_text())
    assert d["experiment"] == "perturbation" and d["fractions"] == [0, 1 / 3, 2 / 3, 1]
    for m in ("saliency", "gbp", "gradcam"):
        for o in ("morf", "lerf"):
            c = d["curves"][m][o]
            assert len(c["mean"]) == 4 and len(c["per_image"]) == 2
            # every curve starts at the unperturbed probability of the explained class
            assert c["per_image"][0][0] == pytest.approx(d["curves"]["saliency"]["morf"]["per_image"][0][0])
            assert "mean" in d["aopc"][m][o]
    assert (tmp_path / "perturbation.png").is_file()
    assert cli.main(["perturbation", "--n-fractions", "1", "--out", str(tmp_path)]) == 2


def test_gradcam_module_option_is_cam_layer():
    """GradCAM / CAMERAS's module is --cam-layer (a module name) in ebpg, perturbation and methods;
    --layer (an int 1..L elsewhere) is not theirs, and perturbation's fractions are --n-fractions."""
    import dataclasses

    from nfr import experiments as X
    for name in ("ebpg", "perturbation", "methods"):
        fields = {f.name for f in dataclasses.fields(X.get(name).config)}
        assert "cam_layer" in fields and "layer" not in fields, name
    assert X.config("perturbation").n_fractions == 11 and X.config("ebpg").n_images == 0
    assert X.config("ebpg").target == "label"
