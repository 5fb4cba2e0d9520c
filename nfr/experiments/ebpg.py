"""TR-GBP paper Table 1: energy-based pointing game (eq 11) of each method for the LABEL class.

Boxes: ``data="samples"`` uses the hand-drawn boxes of 5 of foolbox's 20 sample photos
(:func:`nfr.data.sample_boxes`; only those 5 photos are used; ``boxes`` None or "samples"). For an
ImageNet validation folder ``boxes`` is the folder of ILSVRC2012 validation annotations
(``ILSVRC2012_val_XXXXXXXX.xml``, mapped through the same resize / centre crop,
:func:`nfr.data.imagenet_boxes`); the region is the union of the boxes of the image's class (the
folder name in ImageFolder layout, else all objects). Images are drawn in a seeded order until
``n_images`` have a usable box (0: all of them); the paper's setting (Wang et al. 2020) also drops
images with more than one box of the class (``single_box``) or whose boxes cover more than
``max_box_frac`` of the image (0.5); the skipped images are counted by reason. Methods
(``rules``): default saliency, gbp, gig, fullgrad, gradcam, cameras, trgbp; GradCAM and CAMERAS
read the module ``cam_layer``. ``ebpg[method]``: mean, std and per-image values (null for a map
without positive energy, left out of the mean; ``no_positive_energy[method]`` counts them).
Figure ``ebpg.png``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.patches import Rectangle
from PIL import Image
from tqdm import tqdm

from nfr import data as D
from nfr.errors import NFRError
from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.predictable import ebpg
from nfr.setup import check_args, is_cifar, setup_from_images

EBPG_METHODS = ("saliency", "gbp", "gig", "fullgrad", "gradcam", "cameras", "trgbp")


@dataclass
class Config(B.ImageConfig):
    n_images: int = option(0, "number of images with a usable box, drawn in a --seed order until N "
                           "have one (0 = every image with a usable box)", minimum=0, metavar="N")
    target: str = option("label", "class to explain: the data label (the class of the box) or the "
                         "model's prediction", choices=("pred", "label"))
    rules: list[str] = option(list(EBPG_METHODS), "the methods", choices=B.ALL_METHODS, metavar="R1,R2")
    boxes: str | None = option(None, "folder of the ILSVRC2012 validation box annotations "
                               "(ILSVRC2012_val_XXXXXXXX.xml), needed when --data is an ImageNet "
                               "folder; --data samples uses the bundled hand-drawn boxes of 5 sample "
                               "photos ('samples', the default)", metavar="DIR")
    single_box: bool = option(False, "keep only images with exactly one box of their class (the "
                              "TR-GBP paper's setting)")
    max_box_frac: float | None = option(None, "drop images whose boxes cover more than F of the image "
                                        "(the TR-GBP paper: 0.5)", above=0, maximum=1, metavar="F")
    cam_layer: str | None = option(None, "module read by GradCAM / CAMERAS (default: the last feature "
                                   "block, e.g. features.29 of VGG16, layer4 of ResNet50)",
                                   metavar="MODULE")


# ============================================================================== EBPG (Table 1)
def ebpg_scores(model, x, target, boxes, methods, cam_layer: str | None = None, batch_size: int = 16,
                progress: bool = False, keep: int = 0):
    """EBPG (eq 11, :func:`nfr.predictable.ebpg`) of every method's map of every image.

    ``boxes[i]``: a box (y1, y2, x1, x2), a list of boxes (union) or a mask for image i;
    ``cam_layer``: the module GradCAM and CAMERAS read.
    Returns ({method: array (N,)}, {method: the first ``keep`` maps as numpy (H, W)}).
    """
    n, bs = len(x), max(1, int(batch_size))
    vals = {m: [] for m in methods}
    first = {m: [] for m in methods}
    fns = {m: B.maps_fn(model, m, cam_layer) for m in methods}
    for i in tqdm(range(0, n, bs), desc="ebpg", disable=not progress, unit="batch", leave=False):
        sl = slice(i, min(n, i + bs))
        for m in methods:
            R = fns[m](x[sl], target[sl])
            vals[m] += ebpg(R, boxes[sl]).tolist()
            first[m] += [r.detach().cpu().double().numpy() for r in R[:max(0, keep - i)]]
    return {m: np.asarray(v, float) for m, v in vals.items()}, first


def sample_images(size: int, n_images, seed: int, max_box_frac: float | None):
    """The foolbox sample photos with a hand-drawn box (:func:`nfr.data.sample_boxes`), at most
    ``n_images`` of them (None: all) drawn with ``seed``, those whose box covers more than
    ``max_box_frac`` of the photo left out: (raw images, labels, boxes per image, info per image,
    skipped counts)."""
    sb = D.sample_boxes(size)
    skipped = {"box_too_large": 0}
    if max_box_frac is not None:
        frac = [(b["box"][1] - b["box"][0]) * (b["box"][3] - b["box"][2]) / size ** 2 for b in sb]
        skipped["box_too_large"] = sum(f > max_box_frac for f in frac)
        sb = [b for b, f in zip(sb, frac) if f <= max_box_frac]
        if not sb:
            raise NFRError(f"every sample box covers more than {max_box_frac} of its photo")
    pick = D.select_indices(len(sb), n_images, seed)
    sb = [sb[i] for i in pick]
    raw, labels = D.foolbox_imagenet(size, indices=[b["index"] for b in sb])
    info = [dict(image=f"foolbox imagenet sample {b['index']}", label=b["label"], name=b["name"],
                 boxes=[list(b["box"])]) for b in sb]
    return raw, labels.tolist(), [[b["box"]] for b in sb], info, skipped


def _box_area_fraction(objs, width, height) -> float:
    m = np.zeros((height, width), bool)
    for _, x1, y1, x2, y2 in objs:
        m[max(0, y1 - 1):y2, max(0, x1 - 1):x2] = True
    return float(m.mean())

def _folder_images(data, boxes_dir, size: int, n_images, seed: int, single_box: bool,
                   max_box_frac: float | None, progress: bool):
    """Walk a seeded permutation of the folder's images and keep the first ``n_images`` whose
    annotation passes the filters; counts of the skipped ones by reason."""
    root, bdir = Path(data), Path(boxes_dir)
    if not bdir.is_dir():
        raise NFRError(f"--boxes {boxes_dir} is not a folder; give the folder of the ILSVRC2012 "
                       "validation box annotations (ILSVRC2012_val_XXXXXXXX.xml)")
    items = D.imagenet_items(root)
    resize = round(size * 256 / 224)
    perm = torch.randperm(len(items), generator=torch.Generator().manual_seed(int(seed))).tolist()
    want = len(items) if n_images is None else int(n_images)
    skipped = {"no_annotation": 0, "no_box_of_class": 0, "several_boxes": 0, "box_too_large": 0,
               "box_outside_crop": 0}
    chosen = []
    bar = tqdm(total=want, desc="ebpg: images with boxes", disable=not progress, leave=False)
    for k in perm:
        if len(chosen) >= want:
            break
        path, label = items[k]
        xml = bdir / f"{path.stem}.xml"
        if not xml.is_file():
            skipped["no_annotation"] += 1
            continue
        a = D.parse_voc_xml(xml)
        wnid = path.parent.name if path.parent != root else None
        objs = [o for o in a["objects"] if wnid is None or o[0] == wnid]
        if not objs:
            skipped["no_box_of_class"] += 1
            continue
        if single_box and len(objs) != 1:
            skipped["several_boxes"] += 1
            continue
        if max_box_frac is not None and _box_area_fraction(objs, a["width"], a["height"]) > max_box_frac:
            skipped["box_too_large"] += 1
            continue
        bx = [b for b in (D.map_box(o[1:], a["width"], a["height"], size, resize) for o in objs)
              if b is not None]
        if not bx:
            skipped["box_outside_crop"] += 1
            continue
        chosen.append((k, path, label, bx))
        bar.update(1)
    bar.close()
    if not chosen:
        raise NFRError(f"no image of {root} has a usable box in {bdir} (skipped: {skipped}); check "
                       "that --boxes holds the validation annotations of these images")
    chosen.sort()
    xs = []
    for _, path, _, _ in chosen:
        with Image.open(path) as im:
            w, h = im.size
        a = D.parse_voc_xml(bdir / f"{path.stem}.xml")
        if (w, h) != (a["width"], a["height"]):
            raise NFRError(f"{path} is {w} x {h} px but its annotation says {a['width']} x "
                           f"{a['height']}: --boxes does not belong to --data")
        xs.append(D.load_image(path, size=size, resize=resize))
    info = [dict(image=str(p.relative_to(root)), label=int(lab), boxes=[list(b) for b in bx])
            for _, p, lab, bx in chosen]
    return (torch.stack(xs), [c[2] for c in chosen], [c[3] for c in chosen], info, skipped)


@B.experiment("ebpg", "TR-GBP paper Table 1: energy-based pointing game of each method for the label class")
def run(config: Config) -> B.Result:
    model, weights, data, boxes = config.model, config.weights, config.data, config.boxes
    check_args(model, weights, data, config.device)
    if is_cifar(model):
        raise NFRError("the boxes are of ImageNet photos: use an ImageNet model (vgg16, resnet50, ...)")
    methods = B.rule_list(config.rules, EBPG_METHODS, B.ALL_METHODS)
    size = int(config.size) if config.size else 224
    if model == "efficientnet_lite0" and size != 224:
        raise NFRError("efficientnet_lite0 needs --size 224")
    n_images = config.n_images or None
    progress = not config.quiet
    if data == "samples":
        if boxes not in (None, "samples"):
            raise NFRError("--data samples uses the bundled boxes of the sample photos; drop --boxes "
                           "(or give --data an ImageNet validation folder)")
        raw, labels, bx, info, skipped = sample_images(size, n_images, config.seed, config.max_box_frac)
        box_source = ("hand-drawn boxes of 5 of the 20 foolbox sample photos (nfr/resources/"
                      "ebpg_boxes.json: by eye, about +-8 px, not ImageNet annotations); only "
                      "these photos are used")
    elif data in ("skimage", "cifar10"):
        raise NFRError(f"data {data!r} has no bounding boxes; use --data samples or an ImageNet "
                       "validation folder with --boxes")
    else:
        if boxes in (None, "samples"):
            raise NFRError("an ImageNet folder needs --boxes DIR, the folder of the ILSVRC2012 "
                           "validation box annotations (ILSVRC2012_val_XXXXXXXX.xml)")
        raw, labels, bx, info, skipped = _folder_images(data, boxes, size, n_images, config.seed,
                                                        config.single_box, config.max_box_frac, progress)
        box_source = (f"ILSVRC2012 validation annotations in {boxes} (1-based inclusive pixel "
                      "coordinates), mapped through the resize / centre crop; union of the boxes "
                      "of the image's class")
    cfg = dict(data=str(data), size=size, boxes=str(boxes) if boxes else "samples",
               box_source=box_source, single_box=bool(config.single_box),
               max_box_frac=config.max_box_frac, skipped=skipped)
    s = setup_from_images(model, weights, raw, labels, config.device, config.seed, config.target,
                          config.batch_size, cfg, config.dtype, B.preprocess_spec(config),
                          config.download)
    lay = config.cam_layer or B.cam_layer(s.model)
    vals, first = ebpg_scores(s.model, s.x, s.target, bx, methods, lay, config.batch_size, progress,
                              keep=1)
    res = dict(experiment="ebpg", config=dict(s.config, methods=methods, cam_layer=lay),
               n_images=int(len(s.x)), methods=methods, labels={m: B.NAMES[m] for m in methods},
               ebpg={m: B.st(v) for m, v in vals.items()},
               no_positive_energy={m: int(np.isnan(v).sum()) for m, v in vals.items()},
               images=info)
    return B.Result(res, arrays=dict(raw=s.raw[:1], boxes=bx[0], first={m: v[0] for m, v in first.items()},
                                      first_ebpg={m: float(v[0]) for m, v in vals.items()}))


def figures(result: B.Result) -> dict:
    a, methods, cfg = result.arrays, result["methods"], result["config"]
    k = len(methods)
    fig = B.new_figure(figsize=(max(6, 1.5 * (k + 1)), 5.6))
    gs = fig.add_gridspec(2, k + 1, height_ratios=[1.6, 1])
    ax = fig.add_subplot(gs[0, :])
    means = [result["ebpg"][m]["mean"] for m in methods]
    stds = [result["ebpg"][m]["std"] for m in methods]
    ax.bar([B.NAMES[m] for m in methods], means, yerr=stds, capsize=3, color="tab:blue")
    ax.set_ylabel("EBPG (share of R+ in the box)")
    ax.set_ylim(0, 1)
    ax.set_title(f"{cfg['model']} ({cfg['weights']}), {result['n_images']} images, class = "
                 f"{cfg['target']}", fontsize=9)

    def boxes_on(axis):
        for y1, y2, x1, x2 in a["boxes"]:
            axis.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec="lime", lw=1))
        axis.axis("off")
    a0 = fig.add_subplot(gs[1, 0])
    a0.imshow(B.img(a["raw"][0]))
    a0.set_title("image 0, box", fontsize=7)
    boxes_on(a0)
    for j, m in enumerate(methods, 1):
        axis = fig.add_subplot(gs[1, j])
        axis.imshow(np.maximum(a["first"][m], 0), cmap="hot")
        axis.set_title(f"{B.NAMES[m]}\n{a['first_ebpg'][m]:.2f}", fontsize=7)
        boxes_on(axis)
    fig.tight_layout()
    return {"ebpg.png": fig}


def summary(result: B.Result) -> str:
    lines = [f"  {result['n_images']} images with boxes"]
    f = lambda v: "n/a" if v is None or v != v else f"{v:.3f}"  # noqa: E731
    for m, d in result["ebpg"].items():
        lines.append(f"  {m:10s} EBPG {f(d['mean'])} +- {f(d['std'])}"
                     + (f"  ({result['no_positive_energy'][m]} maps without positive energy)"
                        if result["no_positive_energy"][m] else ""))
    return "\n".join(lines)
