"""The TR-GBP paper, Section 5.3: the energy-based pointing game (Table 1, eq 11) and pixel perturbation
(Fig 6, MoRF / LeRF), as ``python -m nfr ebpg`` and ``python -m nfr perturbation``.

Both compare the 2D maps of :func:`nfr.baselines.attribute_2d` (saliency, GBP, IG, Guided IG,
FullGrad, GradCAM, CAMERAS, TR-GBP). GradCAM and CAMERAS read the module :func:`cam_layer` picks
(the last feature block: ``features.<last ReLU>`` of VGG / AlexNet, ``layer4`` of a torchvision
ResNet, ``layer3`` of a CIFAR ResNet, ``_conv_head`` of EfficientNet-Lite0) unless ``layer`` is
given. The conventions of the metrics (positive energy, boxes (y1, y2, x1, x2) rows first and
half-open, a removed pixel set to 0 in every channel of the normalised input, i.e. to the data
set mean) are those of :mod:`nfr.predictable`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nfr.errors import NFRError

__all__ = ["EBPG_METHODS", "PERTURBATION_METHODS", "cam_layer", "ebpg_scores", "perturbation_curves",
           "ebpg", "perturbation"]

EBPG_METHODS = ("saliency", "gbp", "gig", "fullgrad", "gradcam", "cameras", "trgbp")
PERTURBATION_METHODS = ("saliency", "gbp", "gig", "fullgrad", "gradcam", "trgbp")
ALL_METHODS = ("saliency", "gbp", "ig", "gig", "fullgrad", "gradcam", "cameras", "trgbp")
NAMES = {"saliency": "Saliency", "gbp": "GBP", "ig": "IG", "gig": "GIG", "fullgrad": "FullGrad",
         "gradcam": "GradCAM", "cameras": "CAMERAS", "trgbp": "TR-GBP"}


# ============================================================================== helpers
def cam_layer(model) -> str:
    """The module GradCAM and CAMERAS read: :func:`nfr.baselines.cam_layer` (imported lazily, so
    that importing the experiments does not import torch)."""
    from nfr.baselines import cam_layer as pick
    return pick(model)


def _st(v) -> dict:
    """:func:`nfr.experiments._stats` without numpy's warning for an all-nan method."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _stats(v)


def _maps_fn(model, method: str, layer: str | None):
    from nfr.baselines import attribute_2d
    lay = layer if method in ("gradcam", "cameras") else None
    return lambda xb, tb: attribute_2d(method, model, xb, tb, layer=lay)


def _make_setup(model: str, weights: str, raw, labels, device: str, seed: int, target: str,
                batch_size: int, cfg: dict) -> Setup:
    """A :class:`nfr.experiments.Setup` from images already loaded (one implementation:
    :func:`nfr.experiments.setup_from_images`)."""
    return setup_from_images(model, weights, raw, labels, device, seed, target, batch_size, cfg)


# ============================================================================== EBPG (Table 1)
def ebpg_scores(model, x, target, boxes, methods, layer: str | None = None, batch_size: int = 16,
                progress: bool = False, keep: int = 0):
    """EBPG (eq 11, :func:`nfr.predictable.ebpg`) of every method's map of every image.

    ``boxes[i]``: a box (y1, y2, x1, x2), a list of boxes (union) or a mask for image i.
    Returns ({method: array (N,)}, {method: the first ``keep`` maps as numpy (H, W)}).
    """
    from tqdm.auto import tqdm

    from nfr.predictable import ebpg as _ebpg
    n, bs = len(x), max(1, int(batch_size))
    vals = {m: [] for m in methods}
    first = {m: [] for m in methods}
    fns = {m: _maps_fn(model, m, layer) for m in methods}
    for i in tqdm(range(0, n, bs), desc="ebpg", disable=not progress, unit="batch", leave=False):
        sl = slice(i, min(n, i + bs))
        for m in methods:
            R = fns[m](x[sl], target[sl])
            vals[m] += _ebpg(R, boxes[sl]).tolist()
            first[m] += [r.detach().cpu().double().numpy() for r in R[:max(0, keep - i)]]
    return {m: np.asarray(v, float) for m, v in vals.items()}, first


def _sample_images(size: int, n_images, seed: int, max_box_frac: float | None):
    from nfr import data as D
    from nfr.data import _select
    sb = D.sample_boxes(size)
    skipped = {"box_too_large": 0}
    if max_box_frac is not None:
        frac = [(b["box"][1] - b["box"][0]) * (b["box"][3] - b["box"][2]) / size ** 2 for b in sb]
        skipped["box_too_large"] = sum(f > max_box_frac for f in frac)
        sb = [b for b, f in zip(sb, frac) if f <= max_box_frac]
        if not sb:
            raise NFRError(f"every sample box covers more than {max_box_frac} of its photo")
    pick = _select(len(sb), n_images, seed)
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
    import torch
    from tqdm.auto import tqdm

    from nfr import data as D
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
    from PIL import Image
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


def ebpg(model="vgg16", weights="random", data="samples", n_images=None, size=None, device="cpu",
         seed=0, target="label", batch_size=16, rules=None, boxes=None, layer=None,
         single_box=False, max_box_frac=None, out=None, progress=True) -> dict:
    """Table 1 of the TR-GBP paper: energy-based pointing game (eq 11) of each method for the LABEL class.

    Boxes: ``data="samples"`` uses the hand-drawn boxes of 5 of foolbox's 20 sample photos
    (:func:`nfr.data.sample_boxes`; only those 5 photos are used; ``boxes`` None or "samples").
    For an ImageNet validation folder ``boxes`` is the folder of ILSVRC2012 validation
    annotations (``ILSVRC2012_val_XXXXXXXX.xml``, mapped through the same resize / centre crop,
    :func:`nfr.data.imagenet_boxes`); the region is the union of the boxes of the image's class
    (the folder name in ImageFolder layout, else all objects). Images are drawn in a seeded order
    until ``n_images`` have a usable box; the paper's setting (Wang et al. 2020) also drops images
    with more than one box of the class (``single_box``) or whose boxes cover more than
    ``max_box_frac`` of the image (0.5); the skipped images are counted by reason.
    ``methods`` (``rules``): default saliency, gbp, gig, fullgrad, gradcam, cameras, trgbp.
    ``ebpg[method]``: mean, std and per-image values (null for a map without positive energy,
    left out of the mean; ``no_positive_energy[method]`` counts them). Figure ``ebpg.png``.
    """
    check_args(model, weights, data, device)
    if _is_cifar(model):
        raise NFRError("the boxes are of ImageNet photos: use an ImageNet model (vgg16, resnet50, ...)")
    if target not in ("pred", "label"):
        raise NFRError(f"target must be 'pred' or 'label', got {target!r}")
    methods = _rules(rules, EBPG_METHODS, ALL_METHODS)
    size = int(size) if size else 224
    if model == "efficientnet_lite0" and size != 224:
        raise NFRError("efficientnet_lite0 needs --size 224")
    if n_images is not None and n_images < 1:
        raise NFRError(f"n_images must be >= 1, got {n_images}")
    if data == "samples":
        if boxes not in (None, "samples"):
            raise NFRError("--data samples uses the bundled boxes of the sample photos; drop --boxes "
                           "(or give --data an ImageNet validation folder)")
        raw, labels, bx, info, skipped = _sample_images(size, n_images, seed, max_box_frac)
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
        raw, labels, bx, info, skipped = _folder_images(data, boxes, size, n_images, seed,
                                                        single_box, max_box_frac, progress)
        box_source = (f"ILSVRC2012 validation annotations in {boxes} (1-based inclusive pixel "
                      "coordinates), mapped through the resize / centre crop; union of the boxes "
                      "of the image's class")
    cfg = dict(data=str(data), size=size, boxes=str(boxes) if boxes else "samples",
               box_source=box_source, single_box=bool(single_box), max_box_frac=max_box_frac,
               skipped=skipped)
    s = _make_setup(model, weights, raw, labels, device, seed, target, batch_size, cfg)
    lay = layer or cam_layer(s.model)
    vals, first = ebpg_scores(s.model, s.x, s.target, bx, methods, lay, batch_size, progress, keep=1)
    res = dict(experiment="ebpg", config=dict(s.config, methods=methods, cam_layer=lay),
               n_images=int(len(s.x)), methods=methods, labels={m: NAMES[m] for m in methods},
               ebpg={m: _st(v) for m, v in vals.items()},
               no_positive_energy={m: int(np.isnan(v).sum()) for m, v in vals.items()},
               images=info, figures=[])
    plt = _plt()
    k = len(methods)
    fig = plt.figure(figsize=(max(6, 1.5 * (k + 1)), 5.6))
    gs = fig.add_gridspec(2, k + 1, height_ratios=[1.6, 1])
    ax = fig.add_subplot(gs[0, :])
    means = [res["ebpg"][m]["mean"] for m in methods]
    stds = [res["ebpg"][m]["std"] for m in methods]
    ax.bar([NAMES[m] for m in methods], means, yerr=stds, capsize=3, color="tab:blue")
    ax.set_ylabel("EBPG (share of R+ in the box)")
    ax.set_ylim(0, 1)
    ax.set_title(f"{model} ({weights}), {len(s.x)} images, class = {target}", fontsize=9)
    from matplotlib.patches import Rectangle

    def boxes_on(a):
        for y1, y2, x1, x2 in bx[0]:
            a.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec="lime", lw=1))
        a.axis("off")
    a0 = fig.add_subplot(gs[1, 0])
    a0.imshow(_img(s.raw[0]))
    a0.set_title("image 0, box", fontsize=7)
    boxes_on(a0)
    for j, m in enumerate(methods, 1):
        a = fig.add_subplot(gs[1, j])
        mp = first[m][0]
        a.imshow(np.maximum(mp, 0), cmap="hot")
        a.set_title(f"{NAMES[m]}\n{vals[m][0]:.2f}", fontsize=7)
        boxes_on(a)
    fig.tight_layout()
    return _finish("ebpg", res, out, {"ebpg.png": fig})


# ============================================================================== Fig 6
def perturbation_curves(model, x, target, methods, fractions, layer: str | None = None,
                        batch_size: int = 16, progress: bool = False, map_fns: dict | None = None):
    """MoRF and LeRF curves (:func:`nfr.predictable.perturbation_curve`) of every method, batched.

    ``map_fns`` (optional) {name: callable(xb, tb) -> maps (B, H, W)} replaces
    :func:`nfr.baselines.attribute_2d`. Returns {method: {"morf" | "lerf": array (N, len(fractions))}}.
    """
    from tqdm.auto import tqdm

    from nfr.predictable import perturbation_curve
    fns = map_fns or {m: _maps_fn(model, m, layer) for m in methods}
    n, bs = len(x), max(1, int(batch_size))
    acc = {m: {"morf": [], "lerf": []} for m in fns}
    for i in tqdm(range(0, n, bs), desc="perturbation", disable=not progress, unit="batch", leave=False):
        sl = slice(i, min(n, i + bs))
        for m, fn in fns.items():
            R = fn(x[sl], target[sl])
            for order in ("morf", "lerf"):
                acc[m][order].append(perturbation_curve(model, x[sl], target[sl], R, fractions, order))
    return {m: {o: np.concatenate(v, 0) for o, v in d.items()} for m, d in acc.items()}


def perturbation(model="vgg16", weights="random", data="samples", n_images=4, size=None,
                 device="cpu", seed=0, target="pred", batch_size=16, rules=None, steps=11,
                 layer=None, out=None, progress=True) -> dict:
    """Fig 6 of the TR-GBP paper: pixel perturbation (Samek et al. 2017), MoRF and LeRF, per method.

    For ``steps`` fractions q = 0, 1/(steps-1), ..., 1 the q H W pixels with the highest (MoRF) or
    lowest (LeRF) map value are set to 0 in every channel of the normalised input (the data set
    mean; the paper's "zero pixels") and the softmax probability of the explained class (the
    prediction by default) is recorded. Maps as :func:`nfr.baselines.attribute_2d` returns them
    (saliency, GBP and GIG are absolute values, as the paper's Appendix D asks; TR-GBP is signed).
    ``curves[method][order]``: mean, std and per-image curves; ``aopc[method][order]``: area over
    the perturbation curve mean_i (p_0 - p_i) (MoRF: higher is better; LeRF: lower is better).
    Methods (``rules``): default saliency, gbp, gig, fullgrad, gradcam, trgbp. Figure
    ``perturbation.png``.
    """
    from nfr.predictable import aopc
    methods = _rules(rules, PERTURBATION_METHODS, ALL_METHODS)
    steps = int(steps)
    if steps < 2:
        raise NFRError(f"--steps must be >= 2 (fractions 0 and 1 at least), got {steps}")
    s = load_setup(model, weights, data, n_images, size, device, seed, target, batch_size)
    lay = layer or cam_layer(s.model)
    fr = np.linspace(0, 1, steps)
    cur = perturbation_curves(s.model, s.x, s.target, methods, fr, lay, batch_size, progress)
    res = dict(experiment="perturbation",
               config=dict(s.config, methods=methods, steps=steps, cam_layer=lay,
                           fill="0 in the normalised input (the data set mean), all channels"),
               fractions=fr.tolist(), methods=methods, labels={m: NAMES[m] for m in methods},
               curves={m: {o: _curve(a.T) for o, a in d.items()} for m, d in cur.items()},
               aopc={m: {o: _st(aopc(a)) for o, a in d.items()} for m, d in cur.items()},
               figures=[])
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, o, t in zip(axes, ("morf", "lerf"), ("MoRF (higher AOPC is better)",
                                                 "LeRF (lower AOPC is better)")):
        for m in methods:
            ax.plot(100 * fr, cur[m][o].mean(0), marker="o", ms=3,
                    label=f"{NAMES[m]} (AOPC {res['aopc'][m][o]['mean']:.3g})")
        ax.set_xlabel("pixels removed (%)")
        ax.set_title(t, fontsize=9)
        ax.legend(fontsize=6)
    axes[0].set_ylabel("probability of the explained class")
    fig.suptitle(f"{model} ({weights}), {len(s.x)} images", fontsize=9)
    fig.tight_layout()
    return _finish("perturbation", res, out, {"perturbation.png": fig})


# at the end: nfr.experiments imports this module at its own end (to register the experiments),
# so either module can be imported first
from nfr.experiments import (Setup, _curve, _finish, _img, _is_cifar, _plt, _rules,  # noqa: E402
                             _stats, check_args, load_setup, setup_from_images)
