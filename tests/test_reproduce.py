"""Every full-scale command listed in book/reproduce.md works, run at the smallest setting on the CPU.

``book/reproduce.md`` lists each command in a ``{code-block} bash`` with ``:class: nfr-reproduce``.
This test extracts them all and runs each one as the reader would type it, except that it is shrunk
to a smoke run: ``--n-images 1``, ``--size 32``, ``--device cpu``, the seeded random weights instead of
ImageNet weights that are not on this machine, the bundled sample photos instead of a data folder that
is not here, fewer steps of the experiment's own loop (``FEWER``), and ``--out`` into a temporary
folder. It asserts exit code 0 and the experiment's JSON.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from nfr.tools.reproduce_costs import listed_commands  # the page's parser, one copy

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "reproduce.md"
SMOKE = {"--n-images": "1", "--size": "32", "--device": "cpu", "--batch-size": "1"}
FEWER = {"weight-stats": {"--max-neurons": "16"}, "sanity": {"--steps": "1"}, "activations": {"--layers": "1"},
         "removal": {"--k": "1"}, "kis": {"--n-images": "8", "--n-boot": "50"}, "trgbp": {"--top": "3"},
         "failure": {"--layers": "1,2"}, "nie": {"--filters": "8,32", "--kernel": "3,5", "--seeds": "1"},
         "ebpg": {"--boxes": "samples", "--rules": "saliency,gradcam,trgbp"},
         "perturbation": {"--n-fractions": "3", "--rules": "saliency,gradcam,trgbp"},
         "trgbp-sanity": {"--steps": "1"}, "methods": {"--ig-steps": "2"},
         # a network trained by `python -m nfr train` (the committed backdoored ResNet-20)
         "backdoor": {"--weights": "nfr/resources/models/resnet20_badnet.pt"}}


def _options(name: str) -> set:
    """The option strings of one sub-command (generated from its Config)."""
    import dataclasses

    from nfr import experiments as X
    return {"--" + f.name.replace("_", "-") for f in dataclasses.fields(X.get(name).config)}


def _weights_available(model: str) -> bool:
    return model in ("efficientnet_lite0", "cifar_resnet20", "cifar_resnet56")  # these ship with nfr


def smoke_args(cmd: str, out: Path) -> list[str]:
    """``cmd`` (``python -m nfr <experiment> ...``) shrunk to a one-image CPU run writing into ``out``."""
    argv = shlex.split(cmd)
    assert argv[:3] == ["python", "-m", "nfr"] and len(argv) > 3, f"not a `python -m nfr` command: {cmd}"
    args, opts, i = argv[3:4], {}, 4
    while i < len(argv):
        key = argv[i]
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            opts[key] = argv[i + 1]
            i += 2
        else:
            opts[key] = None
            i += 1
    model = opts.get("--model", "vgg16")
    if opts.get("--weights") not in (None, "random") and not (
            opts["--weights"] in ("imagenet", "pretrained") and _weights_available(model)):
        opts["--weights"] = "random"
    data = opts.get("--data")
    if data is not None and data not in ("samples", "skimage") and data != "cifar10":
        opts["--data"] = "samples"
    known = _options(args[0])
    for key, val in SMOKE.items():
        if key in known and (key in opts or key in ("--n-images", "--size", "--device")):
            opts[key] = val
    opts.update(FEWER.get(args[0], {}))  # the experiment's own loops, shortened
    opts["--out"], opts["--quiet"] = str(out), None
    for key, val in opts.items():
        args += [key] if val is None else [key, val]
    return args


def test_the_page_lists_the_commands():
    cmds = listed_commands()
    assert len(cmds) >= 7, cmds
    experiments = {shlex.split(c)[3] for c in cmds}
    assert {"table1", "cascade", "weight-stats", "distributions", "removal", "activations", "sanity"} <= experiments
    # every `python -m nfr` line of the page is in a tested block
    text = PAGE.read_text()
    loose = [m for m in re.findall(r"^\s*(python -m nfr [^\n]*)", text, re.M)
             if re.sub(r"\\$", "", m).strip() not in " ".join(cmds)]
    assert not loose, f"commands outside an nfr-reproduce block: {loose}"


def test_smoke_args_shrink_a_full_scale_command(tmp_path):
    cmd = ("python -m nfr cascade --model vgg16 --weights imagenet --data /data/imagenet/val "
           "--n-images 1000 --device cuda --batch-size 32 --out results/fig2a")
    args = smoke_args(cmd, tmp_path)
    assert args[0] == "cascade"
    pairs = dict(zip(args[1::2], args[2::2]))
    assert pairs["--n-images"] == "1" and pairs["--size"] == "32" and pairs["--device"] == "cpu"
    assert pairs["--weights"] == "random" and pairs["--data"] == "samples" and pairs["--out"] == str(tmp_path)


def _id(cmd: str) -> str:
    argv = shlex.split(cmd)
    return Path(argv[argv.index("--out") + 1]).name if "--out" in argv else argv[3]


@pytest.mark.parametrize("cmd", listed_commands(), ids=_id)
def test_listed_command_runs(cmd, tmp_path):
    args = smoke_args(cmd, tmp_path)
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "nfr", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    data = json.loads((tmp_path / f"{args[0]}.json").read_text())
    assert data["experiment"] == args[0]
    assert all((tmp_path / f).exists() for f in data.get("figures", []))
