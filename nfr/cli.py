"""Command line of nfr: ``python -m nfr <experiment> [options]`` runs one experiment of Zheng et al.,
Section IV (see :mod:`nfr.experiments`), writes ``<experiment>.json`` and PNG figures to ``--out``
and prints a short summary. Errors of the user's making (missing weights or data, bad options)
print the message on stderr and exit with code 2, without a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nfr.errors import NFRError

DESCRIPTION = """\
Run the experiments of both papers on a real network: Zheng et al., "Unifying Perplexing Behaviors
in Modified BP Attributions through Alignment Perspective" (negative filtering rules, Sections IV-V),
and "Towards Predictable Feature Attribution" (TR-GBP; lines marked "TR-GBP paper").

Each experiment writes <experiment>.json (config + numbers) and PNG figure(s) into --out.
  table1         Table I: Grad x Input, GBP, RectGrad, LRP(z+), DTD and Activation maps,
                 with and without the bottom process, and their input alignment
  cascade        Fig 2a: alignment vs cascade level N = 0..L (gbp, rectgrad, zplus, activation)
  weight-stats   Fig 2b,c: pairwise cosine and norm spread of neuron weights per layer
  distributions  Figs 3-4: cascade curves after gaussian / ring / uniform randomization,
                 maps and per-channel colour bias
  removal        Fig 5: alignment after randomizing vs removing the top k layers
  activations    Fig 6: maps started from the top / bottom 10% of activations at each layer
  sanity         Sanity checks: cascading randomization from the top, SSIM and Spearman
                 between original and randomized maps
  kis            Fig 8: Key Information Sufficiency, Insertion and Insertion(ABS) for
                 correct vs incorrect predictions, ROC-AUC and bimodality (Section V-B)
  trgbp          TR-GBP paper Figs 3, 7, 8 and Fig 1: GBP vs TR-GBP class maps, their class sensitivity,
                 and the TR-GBP pipeline (R^0, bias maps, eq 9 sum, eq 10) of the first image
  ibd            TR-GBP paper Table 2: ROC-AUC of the border intensity IBD for prediction errors
  failure        Fig 7 (Sec. V-A): maps started at each layer l (A_l carried down by GBP) and
                 what they keep of the input (alignment, colour, background) per start layer,
                 for wrong vs correct predictions
  nie            TR-GBP paper Sec. 3.2 / Fig 2: Nie et al.'s reconstruction theorem on random
                 three-layer CNNs: GBP -> constant x input, weaker borders, noise vs N and p
                 (no network or weights needed)
  ebpg           TR-GBP paper Table 1: energy-based pointing game (share of R+ inside the box)
  perturbation   TR-GBP paper Fig 6: pixel perturbation curves (MoRF, LeRF) and their AOPC
  trgbp-sanity   TR-GBP paper Figs 5, 9, 10: TR-GBP and GBP under cascading randomization (Spearman,
                 SSIM, border/centre ratio, centre CV per step) and the per-layer bias maps
  methods        TR-GBP paper Fig 4: saliency, GBP, GIG, FullGrad, GradCAM, CAMERAS, TR-GBP maps
                 side by side, with border intensity and input alignment per method
  backdoor       Fig 9: KIS and trigger energy of clean vs poisoned images for a network
                 trained by `python -m nfr train` (its .pt file as --weights)
  train          Train / fine-tune a CIFAR-10 classifier, clean or backdoored (BadNet, Dynamic,
                 InputAware, WaNet); writes the weights and a manifest JSON

Input alignment: alpha(R, x) = <R, x> / (||R|| ||x||) on the normalised input x.
Run `python -m nfr <experiment> --help` for the options of one experiment."""

EPILOG = """\
examples:
  # a quick look on CPU: a random VGG16, the 20 bundled ImageNet photos
  python -m nfr table1 --model vgg16 --weights random --data samples --n-images 2 --out results/
  # the paper's Fig 2a on the ImageNet validation set with a GPU
  python -m nfr cascade --model vgg16 --weights imagenet --data /data/imagenet/val \\
      --n-images 1000 --device cuda --batch-size 32 --out results/
  # weight statistics, pretrained vs random initialisation
  python -m nfr weight-stats --model vgg16 --weights imagenet --out results/
  # a tiny CIFAR ResNet (fast on CPU)
  python -m nfr sanity --model cifar_resnet20 --weights random --data samples --n-images 4 --out results/

weights: 'random' = the architecture's own initialisation drawn under --seed (the paper's
"Random"); 'imagenet' = torchvision's ImageNet weights from the torch hub cache (the bundled
weights for efficientnet_lite0, the checkpoints that ship with nfr for cifar_resnet20/56);
or the path of a state dict. Nothing is downloaded unless --download is given.
your own model: --model package.module:factory (a callable returning an nn.Module; its module on
PYTHONPATH) with --weights random or the path of its state dict, and its input normalisation as
--preprocess {imagenet,efficientnet,cifar,none} or --mean R,G,B --std R,G,B, e.g.
  PYTHONPATH=. python -m nfr table1 --model mynet:make --weights mynet.pt --size 32 \\
      --mean 0.49,0.48,0.45 --std 0.25,0.24,0.26 --n-images 2 --out results/
data: 'samples' = foolbox's 20 ImageNet photos (CIFAR-10 images for cifar_resnet*),
'skimage' = scikit-image's 4 photos (unlabelled), 'cifar10' = the CIFAR-10 test split that ships
with nfr (a lossy JPEG copy), 'cifar10-original' = the original (lossless) test split from the
cache (--download fetches it once, md5 checked),
or a folder: ImageNet validation (<wnid>/<img> or flat + labels.txt) or CIFAR-10 (<split>/<class>/).
Missing weights or data: message on stderr, exit code 2."""


def _shared_parser() -> argparse.ArgumentParser:
    from nfr.experiments import MODELS
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("shared options")
    g.add_argument("--model", default="vgg16", metavar="{" + ",".join(MODELS) + "} or MODULE:FACTORY",
                   help="network (default: vgg16), or your own: package.module:factory, a callable "
                        "returning a torch.nn.Module (the module importable, e.g. on PYTHONPATH)")
    g.add_argument("--weights", default="random", metavar="{random,imagenet,PATH}",
                   help="'random' (seeded init), 'imagenet' (pretrained) or a state-dict file "
                        "(default: random)")
    g.add_argument("--data", default="samples",
                   metavar="{samples,skimage,cifar10,cifar10-original,PATH}",
                   help="images (default: samples); cifar10-original = the lossless CIFAR-10 test "
                        "split from the cache (fetched with --download)")
    g.add_argument("--download", action="store_true",
                   help="allow downloads (internet): torchvision's ImageNet weights for --weights "
                        "imagenet, the original CIFAR-10 for --data cifar10-original; checksums "
                        "verified, files kept in the torch hub cache / $NFR_CACHE")
    g.add_argument("--preprocess", default=None, choices=("imagenet", "efficientnet", "cifar", "none"),
                   help="input normalisation preset (default: efficientnet for efficientnet_lite0, "
                        "imagenet for every other model); stored in the JSON config")
    g.add_argument("--mean", default=None, metavar="R,G,B",
                   help="per-channel mean of the normalisation (x - mean) / std, instead of a preset "
                        "(with --std)")
    g.add_argument("--std", default=None, metavar="R,G,B", help="per-channel std (with --mean)")
    g.add_argument("--n-images", type=int, default=None, metavar="N",
                   help="number of images, a subset drawn with --seed (default: 4; 0 = all)")
    g.add_argument("--size", type=int, default=None, metavar="PX",
                   help="input resolution (default: 224; 32 for cifar_resnet*)")
    g.add_argument("--batch-size", type=int, default=16, metavar="B", help="images per batch (default: 16)")
    g.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="(default: cpu)")
    g.add_argument("--seed", type=int, default=0,
                   help="seeds the random model, the image subset and the randomizations (default: 0)")
    g.add_argument("--target", default=None, choices=("pred", "label"),
                   help="class to explain: the model's prediction or the data label (default: pred)")
    g.add_argument("--rules", default=None, metavar="R1,R2",
                   help="comma-separated rules (default: the experiment's own list)")
    g.add_argument("--out", default="results", metavar="DIR", help="output folder (default: results)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _int_list(s: str) -> list[int]:
    try:
        return [int(t) for t in s.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nfr", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="experiment", metavar="<experiment>", required=True)
    shared = _shared_parser()
    fmt = argparse.RawDescriptionHelpFormatter

    def add(name, help_, rules):
        sp = sub.add_parser(name, parents=[shared], help=help_, epilog=EPILOG, formatter_class=fmt,
                            description=f"{help_}\nDefault rules: {rules}.")
        return sp.add_argument_group(f"{name} options")

    g = add("table1", "Table I: maps with / without bottom process and their alignment",
            "grad_x_input,gbp,rectgrad,zplus,dtd,activation")
    g.add_argument("--layer", type=int, default=None,
                   help="layer l of the Activation column (1..L; default L // 2)")
    add("cascade", "Fig 2a: alignment vs cascade substitution level",
        "gbp,rectgrad,zplus,activation (also grad, grad_x_input, dtd)")
    g = add("weight-stats", "Fig 2b,c: pairwise cosine and norm per layer (no images needed)", "-")
    g.add_argument("--max-neurons", type=int, default=512, help="neurons sampled per layer (default 512)")
    g.add_argument("--no-random", action="store_true",
                   help="do not add the random initialisation for comparison")
    g = add("distributions", "Figs 3-4: cascade curves under gaussian / ring / uniform weights",
            "gbp,rectgrad,zplus")
    g.add_argument("--dists", default="gaussian,ring,uniform",
                   help="distributions (gaussian, ring, uniform, orthogonal)")
    g = add("removal", "Fig 5: alignment after randomizing vs removing the top k layers",
            "gbp,rectgrad,zplus")
    g.add_argument("--k", type=_int_list, default=[1, 2, 3], metavar="K1,K2",
                   help="numbers of top layers changed (default 1,2,3)")
    g = add("activations", "Fig 6: maps from the top / bottom 10%% of activations per layer",
            "gbp,rectgrad,zplus")
    g.add_argument("--layers", type=_int_list, default=None, metavar="L1,L2",
                   help="start layers (default 1..L-1)")
    g.add_argument("--frac", type=float, default=0.1, help="fraction of non-zero activations (default 0.1)")
    g = add("sanity", "Sanity checks: cascading randomization, SSIM / Spearman to the original map",
            "grad,grad_x_input,gbp,rectgrad,zplus,dtd")
    g.add_argument("--steps", type=_int_list, default=None, metavar="K1,K2",
                   help="numbers k of top layers randomized to evaluate (default 0..L)")
    g = add("kis", "Fig 8: KIS, Insertion, Insertion(ABS): ROC-AUC for correctness, bimodality",
            "gbp")
    g.add_argument("--variants", action="store_true",
                   help="also KIS rescaled in image space and Insertion with a black baseline")
    g.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    g = add("trgbp", "TR-GBP paper Figs 3, 7, 8: GBP vs TR-GBP maps of the top classes, class sensitivity",
            "-")
    g.add_argument("--top", type=int, default=5, help="classes per image (default 5, eq 10)")
    add("ibd", "TR-GBP paper Table 2: ROC-AUC of the border intensity IBD for prediction errors", "-")
    g = add("failure", "Fig 7 (Sec. V-A): layer-wise failure analysis, measures per start layer",
            "gbp (the rule of the layers below the start layer: gbp, grad, rectgrad or zplus)")
    g.add_argument("--layers", type=_int_list, default=None, metavar="L1,L2",
                   help="start layers l (1..L-1; default all)")
    g.add_argument("--box-frac", type=float, default=0.5,
                   help="the central box (the object proxy of the 'outside' measure) covers this "
                        "fraction of height and width (default 0.5)")
    _add_nie_parser(sub)
    g = add("ebpg", "TR-GBP paper Table 1: energy-based pointing game of each method for the label class",
            "saliency,gbp,gig,fullgrad,gradcam,cameras,trgbp (also ig)")
    g.add_argument("--boxes", default=None, metavar="DIR",
                   help="folder of the ILSVRC2012 validation box annotations "
                        "(ILSVRC2012_val_XXXXXXXX.xml), needed when --data is an ImageNet folder; "
                        "--data samples uses the bundled hand-drawn boxes of 5 sample photos "
                        "('samples', the default)")
    g.add_argument("--single-box", action="store_true",
                   help="keep only images with exactly one box of their class (the TR-GBP paper's setting)")
    g.add_argument("--max-box-frac", type=float, default=None, metavar="F",
                   help="drop images whose boxes cover more than F of the image (the TR-GBP paper: 0.5)")
    g.add_argument("--layer", default=None, metavar="MODULE",
                   help="module read by GradCAM / CAMERAS (default: the last feature block, e.g. "
                        "features.29 of VGG16, layer4 of ResNet50)")
    # (not set_defaults: the shared options' actions are shared by every sub-command, so a
    # default set here would change every experiment's; see _DEFAULTS)
    sub.choices["ebpg"].description += (
        "\nHere --target defaults to 'label' (the class of the box) and --n-images to 0 = every "
        "image with a usable box (images are drawn in a --seed order until N have one).\n"
        "--data samples: the 5 sample photos with hand-drawn boxes; an ImageNet folder needs --boxes.")
    g = add("perturbation", "TR-GBP paper Fig 6: MoRF / LeRF pixel perturbation curves and AOPC per method",
            "saliency,gbp,gig,fullgrad,gradcam,trgbp (also ig, cameras)")
    g.add_argument("--steps", type=int, default=11,
                   help="fractions of removed pixels, evenly spaced from 0 to 1 (default 11: 0, 10%%, ..)")
    g.add_argument("--layer", default=None, metavar="MODULE",
                   help="module read by GradCAM / CAMERAS (default: the last feature block)")
    g = add("trgbp-sanity", "TR-GBP paper Figs 5, 9, 10: TR-GBP under cascading randomization from the top",
            "trgbp,eq9,gbp (the maps compared: TR-GBP eq 10, its eq-9 sum, GBP)")
    g.add_argument("--steps", type=_int_list, default=None, metavar="K1,K2",
                   help="numbers k of top layers randomized to evaluate (default 0..L; 0 is always "
                        "added)")
    g.add_argument("--layers", type=_int_list, default=None, metavar="L1,L2",
                   help="layers l (1..L) whose bias maps psi(R^l) trgbp_layers.png shows "
                        "(default: up to 4 spread from bottom to top)")
    g.add_argument("--bias", default="keep", choices=("keep", "zero"),
                   help="biases of the randomized layers: keep the model's (default) or zero them")
    g.add_argument("--top", type=int, default=5, help="classes whose mean eq 10 subtracts (default 5)")
    g = add("methods", "TR-GBP paper Fig 4: seven attribution methods side by side, with map statistics",
            "saliency,gbp,gig,fullgrad,gradcam,cameras,trgbp (also ig)")
    g.add_argument("--cam-layer", default=None, metavar="NAME",
                   help="module read by GradCAM and CAMERAS (default: the last feature block, "
                        "e.g. layer4 for resnet50, features for vgg16)")
    g.add_argument("--ig-steps", type=int, default=32, help="steps of IG and Guided IG (default 32)")
    g = add("backdoor", "Fig 9: KIS and trigger energy, clean vs poisoned images, of a backdoored network",
            "gbp")
    g.add_argument("--control", default="badnet", choices=("badnet", "dynamic", "inputaware", "wanet"),
                   help="trigger applied to a CLEAN network (one without an attack in its manifest) as a "
                        "control (default badnet); a backdoored network is probed with its own trigger")
    sub.choices["backdoor"].description += (
        "\n--weights: the .pt written by `python -m nfr train` (manifest .json and, for dynamic / "
        "inputaware / wanet, _trigger.pt beside it); the architecture comes from the manifest, "
        "--model is not used. --data: samples (20 CIFAR-10 test photos, the default), cifar10 (the test split) or a CIFAR-10 folder.")
    from nfr.train import add_parser as _add_train_parser
    _add_train_parser(sub)
    return parser


NIE_EPILOG = """\
examples:
  # the theorem's own setting: random-sign images (every patch of equal norm), 3 networks each
  python -m nfr nie --filters 16,64,256,1024 --kernel 3,5,7 --seeds 3 --size 64 --out results/nie
  # a photo (grey, mean removed, unit norm): GBP converges to a contrast-normalised image
  python -m nfr nie --data skimage --n-images 1 --filters 64,1024 --kernel 5 --out results/nie-photo
  # larger widths on a GPU
  python -m nfr nie --size 224 --filters 256,1024,4096 --kernel 3 --seeds 4 --device cuda

The network: Conv2d(C_in, N, k, bias=False) -> ReLU -> Linear(N J, 1, bias=False), all weights
N(0, c^2), Z = 1. Printed constant 2 c^2 p N / (pi C0 Z) (TR-GBP paper, eq 7); the constant the proof
gives for interior pixels is a quarter of it (chapter 11); both ratios are reported."""


def _add_nie_parser(sub) -> None:
    """The nie experiment has no network to load: its own options, no --model / --weights."""
    fmt = argparse.RawDescriptionHelpFormatter
    sp = sub.add_parser("nie", help="TR-GBP paper Sec. 3.2 / Fig 2: reconstruction theorem on random "
                        "three-layer CNNs", epilog=NIE_EPILOG, formatter_class=fmt,
                        description="Section 3.2 and Fig 2 of the TR-GBP paper: GBP of random three-layer CNNs "
                        "against Nie et al.'s\nreconstruction theorem (scale, border pixels, noise "
                        "vs N and p: claim T4).")
    g = sp.add_argument_group("nie options")
    g.add_argument("--data", default="signs", metavar="{signs,samples,skimage,PATH}",
                   help="'signs' (random +-1 images: every patch has the same norm, the theorem's "
                        "assumption; default), foolbox's 'samples', scikit-image's 'skimage' photos, "
                        "or an image file / ImageNet or CIFAR-10 folder")
    g.add_argument("--n-images", type=int, default=1, metavar="N", help="number of images (default 1)")
    g.add_argument("--size", type=int, default=None, metavar="PX", help="image side (default 64)")
    g.add_argument("--channels", default="gray", choices=("gray", "each", "rgb"),
                   help="photos as one grey image (default, as chapter 11), each colour channel "
                        "as its own grey image, or one 3-channel input (p = 3 k^2)")
    g.add_argument("--filters", type=_int_list, default=[16, 64, 256], metavar="N1,N2",
                   help="numbers of filters N (default 16,64,256)")
    g.add_argument("--kernel", type=_int_list, default=[3, 5, 7], metavar="K1,K2",
                   help="filter sides k, p = k^2 (default 3,5,7)")
    g.add_argument("--seeds", type=int, default=3, help="random networks per setting and image (default 3)")
    g.add_argument("--c", type=float, default=0.5, help="weight standard deviation c (default 0.5)")
    g.add_argument("--stride", type=int, default=1, help="convolution stride (default 1)")
    g.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="(default: cpu)")
    g.add_argument("--seed", type=int, default=0, help="seeds the images and networks (default 0)")
    g.add_argument("--out", default="results", metavar="DIR", help="output folder (default: results)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    # accepted only to answer with a clear message (nie draws its own networks)
    g.add_argument("--model", default=None, help=argparse.SUPPRESS)
    g.add_argument("--weights", default=None, help=argparse.SUPPRESS)


#: (--n-images, --target) when not given: 4 images and the predicted class; ebpg scores the box's
#: class (the label) on every image with a usable box
_DEFAULTS = {None: (4, "pred"), "ebpg": (0, "label")}


def _preprocess_kwargs(args, fn) -> dict:
    """``preprocess`` / ``download`` for the experiment function ``fn``, if it takes them; an
    NFRError naming the option when the user gave one that ``fn`` cannot use."""
    import inspect
    params = inspect.signature(fn).parameters
    out = {}
    given = args.preprocess is not None or args.mean is not None or args.std is not None
    if given or "preprocess" in params:
        from nfr.experiments import preprocessing
        spec = (args.mean, args.std) if args.mean is not None or args.std is not None else None
        if spec is not None and args.preprocess is not None:
            raise NFRError("give either --preprocess or --mean/--std, not both")
        pre = preprocessing(args.model, spec if spec is not None else args.preprocess)
        if "preprocess" not in params:
            raise NFRError(f"the {args.experiment} experiment does not take --preprocess / --mean / "
                           "--std (it uses the model's own normalisation)")
        out["preprocess"] = (pre["mean"], pre["std"]) if spec is not None else pre["name"]
    if "download" in params:
        out["download"] = args.download
    elif args.download:
        raise NFRError(f"the {args.experiment} experiment does not take --download")
    return out


def _call(args) -> dict:
    from nfr import experiments as E
    fn = E.EXPERIMENTS[args.experiment]
    if args.experiment == "nie":
        return fn(data=args.data, n_images=args.n_images, size=args.size, device=args.device,
                  seed=args.seed, filters=args.filters, kernel=args.kernel, seeds=args.seeds,
                  channels=args.channels, c=args.c, stride=args.stride, out=args.out,
                  progress=not args.quiet, model=args.model, weights=args.weights)
    kw = dict(model=args.model, weights=args.weights, seed=args.seed, out=args.out,
              progress=not args.quiet)
    kw.update(_preprocess_kwargs(args, fn))
    if args.experiment == "weight-stats":
        return fn(**kw, max_neurons=args.max_neurons, compare_random=not args.no_random)
    n_images, target = _DEFAULTS.get(args.experiment, _DEFAULTS[None])
    n_images = n_images if args.n_images is None else args.n_images
    kw.update(data=args.data, n_images=n_images or None, size=args.size, device=args.device,
              target=args.target or target, batch_size=args.batch_size, rules=args.rules)
    extra = {"table1": dict(layer=getattr(args, "layer", None)),
             "distributions": dict(dists=[d for d in getattr(args, "dists", "").split(",") if d]),
             "removal": dict(ks=getattr(args, "k", None)),
             "activations": dict(layers=getattr(args, "layers", None),
                                 frac=getattr(args, "frac", 0.1)),
             "sanity": dict(steps=getattr(args, "steps", None)),
             "trgbp": dict(top=getattr(args, "top", 5)),
             "failure": dict(layers=getattr(args, "layers", None),
                             box_frac=getattr(args, "box_frac", 0.5)),
             "ebpg": dict(boxes=getattr(args, "boxes", None), layer=getattr(args, "layer", None),
                          single_box=getattr(args, "single_box", False),
                          max_box_frac=getattr(args, "max_box_frac", None)),
             "perturbation": dict(steps=getattr(args, "steps", 11), layer=getattr(args, "layer", None)),
             "trgbp-sanity": dict(steps=getattr(args, "steps", None), layers=getattr(args, "layers", None),
                                  bias=getattr(args, "bias", "keep"), top=getattr(args, "top", 5)),
             "methods": dict(cam_layer=getattr(args, "cam_layer", None),
                             ig_steps=getattr(args, "ig_steps", 32)),
             "backdoor": dict(control=getattr(args, "control", "badnet")),
             "kis": dict(variants=getattr(args, "variants", False),
                         n_boot=getattr(args, "n_boot", 2000))}.get(args.experiment, {})
    return fn(**kw, **extra)


def _f(v) -> str:
    return "n/a" if v is None or v != v else f"{v:+.3f}"


def _summary(res: dict) -> str:
    exp = res["experiment"]
    lines = [f"{exp}: wrote {', '.join([exp + '.json'] + res.get('figures', []))}"]
    if exp == "table1":
        for r, d in res["alignment"].items():
            lines.append(f"  {r:14s} alpha with B {d['with_bottom']['mean']:+.3f}  "
                         f"w/o B {d['without_bottom']['mean']:+.3f}")
    elif exp == "kis":
        lines.append(f"  accuracy {res['accuracy']:.3f}")
        for k, d in res["summary"].items():
            lines.append(f"  {k:20s} AUC {_f(d['auc'])}  bimodality {_f(d['bc'])}"
                         + ("  (AUC needs right and wrong predictions)" if d["auc"] is None else ""))
    elif exp == "trgbp":
        for k, d in res["class_correlation"].items():
            lines.append(f"  {k:8s} mean pairwise correlation of class maps {d['mean']:+.3f}")
    elif exp == "ibd":
        for k, v in res["auc"].items():
            auc = "n/a (needs right and wrong predictions)" if v is None or v != v else f"{v:.3f}"
            lines.append(f"  {k:10s} ROC-AUC {auc}  ({res['errors']} errors in {res['n']})")
    elif exp == "nie":
        for st in res["settings"]:
            lines.append(f"  N {st['N']:5d} k {st['k']}: cos(s,x) {st['cos_x']['mean']:.3f}  scale/printed "
                         f"{st['ratio_printed']['mean']:.3f}  scale/derived {st['ratio_derived']['mean']:.3f}  "
                         f"border/centre {st['border_centre']['mean']:.3f} (coverage "
                         f"{st['pred_coverage']['mean']:.3f})  residual {st['residual_x']['mean']:.3f}")
    elif exp == "failure":
        lines += ["  " + line for line in res["report"]]
    elif exp == "ebpg":
        lines.append(f"  {res['n_images']} images with boxes")
        f = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        for m, d in res["ebpg"].items():
            lines.append(f"  {m:10s} EBPG {f(d['mean'])} +- {f(d['std'])}"
                         + (f"  ({res['no_positive_energy'][m]} maps without positive energy)"
                            if res["no_positive_energy"][m] else ""))
    elif exp == "perturbation":
        f = lambda v: "n/a" if v is None else f"{v:+.3f}"  # noqa: E731
        for m, d in res["aopc"].items():
            lines.append(f"  {m:10s} AOPC MoRF {f(d['morf']['mean'])}  LeRF {f(d['lerf']['mean'])}")
    elif exp == "trgbp-sanity":
        L = res["config"]["L"]
        for k, d in res["curves"].items():
            sp, bc = d["spearman"]["mean"], d["border_centre"]["mean"]
            lines.append(f"  {k:6s} k = {res['steps'][-1]} of {L}: Spearman {_f(sp[-1])}, border/centre "
                         f"{_f(bc[0])} -> {_f(bc[-1])}, centre CV {_f(d['centre_cv']['mean'][-1])}")
    elif exp == "methods":
        for k, d in res["stats"].items():
            al = "n/a" if d["alignment"] is None else _f(d["alignment"]["mean"])
            lines.append(f"  {k:9s} IBD {_f(d['ibd']['mean'])}  alignment {al}")
    elif exp == "backdoor":
        for r, d in res["results"].items():
            lines.append(f"  {r:8s} KIS clean {d['kis_clean']['mean']:.3f}  poisoned {d['kis_poisoned']['mean']:.3f}"
                         f"  (poisoned images decided as the target: {d['pred_target_poisoned']:.2f})")
    elif exp == "cascade":
        for r, d in res["curves"].items():
            lines.append(f"  {r:14s} alpha level 0 {d['mean'][0]:+.3f} -> level L {d['mean'][-1]:+.3f}")
    return "\n".join(lines)


def _at_least(lo):
    return (f">= {lo}", lambda v: v >= lo)


def _fraction(closed_low: bool = False):
    return ("in [0, 1]" if closed_low else "in (0, 1]",
            (lambda v: 0 <= v <= 1) if closed_low else (lambda v: 0 < v <= 1))


#: the valid range of every numeric option of every sub-command, by its destination name (a list
#: option is checked element by element). tests/test_cli.py fails when an int or float option has
#: no entry here, so an option cannot exist without its range.
RANGES = {
    "n_images": _at_least(0), "size": _at_least(1), "batch_size": _at_least(1), "seed": _at_least(0),
    "layer": _at_least(1), "max_neurons": _at_least(1), "k": _at_least(0), "layers": _at_least(1),
    "frac": _fraction(), "steps": _at_least(1), "n_boot": _at_least(1), "top": _at_least(1),
    "box_frac": _fraction(), "max_box_frac": _fraction(), "ig_steps": _at_least(1),
    "filters": _at_least(1), "kernel": _at_least(1), "seeds": _at_least(1),
    "c": ("> 0", lambda v: v > 0), "stride": _at_least(1),
    # train
    "epochs": _at_least(1), "n_train": _at_least(0), "n_test": _at_least(0),
    "lr": ("> 0", lambda v: v > 0), "rate": _fraction(True), "target": ("a class 0..9", lambda v: 0 <= v <= 9),
    "width": _at_least(1),
}


def check_options(args) -> None:
    """Refuse, before anything runs, a numeric option outside its range (:data:`RANGES`) and an
    ``--out`` that names an existing file instead of a folder.

    Raises
    ------
    NFRError
        Naming the option, its valid range and the value given.
    """
    for dest, (text, ok) in RANGES.items():
        value = getattr(args, dest, None)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not ok(v):
                raise NFRError(f"--{dest.replace('_', '-')} must be {text}, got {v}")
    out = getattr(args, "out", None)
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise NFRError(f"--out {out} is an existing file; give a folder (it is created if missing)")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_options(args)
    except NFRError as e:
        print(f"nfr {args.experiment}: error: {e}", file=sys.stderr)
        return 2
    if args.experiment == "train":
        from nfr.train import cli_run
        return cli_run(args, argv)
    from nfr import distributed as D
    t0 = time.time()
    me, sharded = 0, False
    try:
        world = D.world_size()
        if world > 1:
            if args.experiment not in D.SHARDED:
                raise NFRError(f"the {args.experiment} experiment runs in one process, but WORLD_SIZE="
                               f"{world}; run it without torchrun (sharded over processes: "
                               f"{', '.join(D.SHARDED)})")
            me = D.rank()
            sharded = D.init(getattr(args, "device", "cpu"))
            if me != 0:
                args.quiet = True
        res = _call(args)
    except NFRError as e:
        who = f" (rank {me})" if me else ""
        print(f"nfr {args.experiment}{who}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if sharded:
            D.shutdown()
    if me == 0:
        ws = f", {res['world_size']} processes" if res.get("world_size", 1) > 1 else ""
        print(_summary(res) + f"\n  ({time.time() - t0:.1f} s{ws}, results in {args.out}/)")
    json.dumps(res)  # already JSON-able; fail loudly here rather than in a chapter
    return 0
