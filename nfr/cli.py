"""Command line of nfr: ``python -m nfr <experiment> [options]`` runs one experiment of Zheng et al.,
Section IV (see :mod:`nfr.experiments`), writes ``<experiment>.json`` and PNG figures to ``--out``
and prints a short summary. Errors of the user's making (missing weights or data, bad options)
print the message on stderr and exit with code 2, without a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import types
import typing
from pathlib import Path

from nfr import distributed as D
from nfr import evidence as E
from nfr import experiments as X
from nfr import train as T
from nfr import verdicts as V
from nfr.claims import book_root
from nfr.config import check_config
from nfr.errors import NFRError
from nfr.experiments import REGISTRY
from nfr.train import TrainConfig

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


def _list_of(kind):
    def parse(text: str) -> list:
        try:
            return [kind(t) for t in text.split(",") if t.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, "
                                             f"got {text!r}") from None
    parse.__name__ = f"list of {kind.__name__}"
    return parse


def _kind(hint):
    """(scalar type, is_list) of a Config field's type hint: int, float, str, bool, list[...] and
    their ``| None`` forms."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return _kind(args[0])
    if typing.get_origin(hint) is list:
        return args[0], True
    return hint, False


def _show(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def add_options(parser: argparse.ArgumentParser, config_class, title: str) -> None:
    """One option per field of ``config_class`` (a dataclass made with
    :func:`nfr.experiments.base.option`): ``--field-name``, its type, choices and help from the
    field; a boolean field that defaults to False is a switch, one that defaults to True is
    ``--no-field-name``. No option exists without a field, so none can be ignored."""
    g = parser.add_argument_group(title)
    hints = typing.get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        meta = f.metadata
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kind, is_list = _kind(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        help_ = meta.get("help", "")
        if kind is bool:
            if default:
                g.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                               help=help_)
            else:
                g.add_argument(flag, dest=f.name, action="store_true", help=help_)
            continue
        kw = dict(dest=f.name, default=default, metavar=meta.get("metavar"))
        if is_list:
            kw["type"] = _list_of(kind)
            kw["metavar"] = kw["metavar"] or "V1,V2"
        else:
            kw["type"] = kind
            if meta.get("choices"):
                kw["choices"] = meta["choices"]
                kw.pop("metavar")
        if meta.get("choices") and is_list:
            help_ += f" (from {', '.join(meta['choices'])})"
        if default is not None and default != [] and not isinstance(default, bool):
            help_ += f" (default: {_show(default)})"
        g.add_argument(flag, help=help_.replace("%", "%%"), **kw)


class _Parser(argparse.ArgumentParser):
    """argparse with one line on a usage error (``prog: error: message``), exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m nfr", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="experiment", metavar="<experiment>", required=True)
    fmt = argparse.RawDescriptionHelpFormatter
    for spec in REGISTRY.values():
        sp = sub.add_parser(spec.name, help=spec.help.replace("%", "%%"), description=spec.help, epilog=EPILOG,
                            formatter_class=fmt)
        add_options(sp, spec.config, f"{spec.name} options")
        sp.add_argument("--out", default="results", metavar="DIR", help="output folder (default: results)")
    sp = sub.add_parser("train", help=TRAIN_HELP, description=TRAIN_HELP, epilog=TRAIN_EPILOG,
                        formatter_class=fmt)
    add_options(sp, TrainConfig, "train options")
    sp.add_argument("--out", default="models", metavar="DIR", help="output folder (default: models)")
    sp = sub.add_parser("evidence", help=EVIDENCE_HELP, description=EVIDENCE_HELP, epilog=EVIDENCE_EPILOG,
                        formatter_class=fmt)
    sp.add_argument("key", nargs="?", help="the criterion's key, e.g. C10/vgg16-random-224 (omit with --ledger)")
    sp.add_argument("--draws", type=int, default=None, help="weight draws (default: the setting's full size)")
    sp.add_argument("--n-images", type=int, default=None, help="images per draw (default: the setting's full size)")
    sp.add_argument("--first-draw", type=int, default=0, help="first weight draw (a repetition with other "
                    "seeds: e.g. 10 runs draws 10..19)")
    sp.add_argument("--file", default=None, metavar="JSON", help="write the evidence here instead of "
                    "book/data/evidence/<key>.json (a repetition that must not replace the ledger's run)")
    sp.add_argument("--ledger", action="store_true", help="recompute every verdict from criteria + evidence "
                    "and rewrite book/data/claims.json and claims_table.md")
    sp.add_argument("--quiet", action="store_true", help="no progress bars")
    sp.set_defaults(out=None)
    return parser


EVIDENCE_HELP = ("Run a claim's evidence at its full offline size and judge it against its "
                 "pre-registered criterion (book/data/criteria.yaml); writes book/data/evidence/<key>.json")
EVIDENCE_EPILOG = """examples:
  # the units behind C10 on random VGG16 (10 weight draws per law x 10 photos at 224 px)
  python -m nfr evidence C10/vgg16-random-224
  # recompute every verdict of the ledger from the criteria and the evidence files
  python -m nfr evidence --ledger
"""


TRAIN_HELP = ("Train / fine-tune a CIFAR-10 classifier, clean or backdoored (BadNet, Dynamic, "
              "InputAware, WaNet); writes the weights and a manifest JSON")
TRAIN_EPILOG = """examples:
  # inject a BadNet backdoor by fine-tuning the pretrained ResNet-20 (CPU, minutes)
  python -m nfr train --arch resnet20 --attack badnet --init pretrained-resnet20 --epochs 3 --out models/
  # Zheng et al.'s setting on a GPU: ResNet18 from scratch on torchvision's CIFAR-10
  python -m nfr train --arch resnet18 --attack wanet --init scratch --epochs 100 \\
      --data torchvision --device cuda --out models/
"""


def check_out(out) -> None:
    """Refuse an ``--out`` that names an existing file instead of a folder."""
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise NFRError(f"--out {out} is an existing file; give a folder (it is created if missing)")


def config_from_args(args, config_class):
    """The Config whose fields are the parsed options (every field, no other option)."""
    return config_class(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config_class)})


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:          # a usage error (one line on stderr) or --help
        return int(e.code or 0)
    name = args.experiment
    if name == "evidence":
        return _evidence(args)
    try:
        check_out(args.out)
        if name == "train":
            cfg = config_from_args(args, T.TrainConfig)
            check_config(cfg)
        else:
            spec = X.get(name)
            cfg = config_from_args(args, spec.config)
            check_config(cfg)
    except NFRError as e:
        print(f"nfr {name}: error: {e}", file=sys.stderr)
        return 2
    if name == "train":
        return T.cli_run(cfg, args.out, argv)
    t0 = time.time()
    me, sharded = 0, False
    try:
        world = D.world_size()
        if world > 1:
            if not spec.sharded:
                sharded_names = ", ".join(n for n, sp in X.REGISTRY.items() if sp.sharded)
                raise NFRError(f"the {name} experiment runs in one process, but WORLD_SIZE="
                               f"{world}; run it without torchrun (sharded over processes: "
                               f"{sharded_names})")
            me = D.rank()
            sharded = D.init(cfg.device)
            if me != 0:
                cfg.quiet = True
        res = spec.run(cfg)
        files = X.write(name, res, args.out)
    except NFRError as e:
        who = f" (rank {me})" if me else ""
        print(f"nfr {name}{who}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if sharded:
            D.shutdown()
    if me == 0:
        ws = f", {res['world_size']} processes" if res.get("world_size", 1) > 1 else ""
        print(f"{name}: wrote {', '.join(files)}\n" + spec.summary(res)
              + f"\n  ({time.time() - t0:.1f} s{ws}, results in {args.out}/)")
    return 0


def _evidence(args) -> int:
    try:
        if args.ledger:
            rows = V.write_ledger(book_root())
            print(f"evidence: {len(rows)} ledger rows written to book/data/claims.json")
            return 0
        if not args.key:
            raise NFRError(f"name a criterion key; with evidence runs:\n{E.describe()}")
        t0 = time.time()
        ev = E.run(args.key, quiet=args.quiet, draws=args.draws, n_images=args.n_images,
                   first_draw=args.first_draw, out=args.file)
    except NFRError as e:
        print(f"nfr evidence: error: {e}", file=sys.stderr)
        return 2
    lo, hi = ev["interval"]
    print(f"{args.key}: {ev['verdict'].upper()} (n = {ev['n']}, first part {ev['effect']:+.3f} "
          f"[{lo:+.3f}, {hi:+.3f}]; {time.time() - t0:.0f} s)")
    for p in ev["judgement"]["parts"]:
        print(f"  {p['name']}: {p['effect']:+.4f} [{p['interval'][0]:+.4f}, {p['interval'][1]:+.4f}] {p['verdict']}")
    return 0
