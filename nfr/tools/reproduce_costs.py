"""Measure the CPU cost of every command of ``book/reproduce.md``: ``python -m nfr.tools.reproduce_costs``.

Each distinct ``python -m nfr <experiment>`` command listed in an ``nfr-reproduce`` block is run once
as a one-image CPU run (``--n-images 1 --device cpu``, random weights of the same architecture,
the bundled sample photos, ``--size`` 112 for ImageNet networks and 32 for the CIFAR ones; every other
option as listed), in a subprocess. Reported per command: the CPU time (user + system of the child),
the wall-clock time, and the load average before the run; plus the start-up cost alone (importing
torch and nfr and building the network). Writes ``book/data/reproduce_costs.json`` and prints a table.

Why CPU time: on a machine shared with other jobs the wall-clock time measures the other jobs.
On an idle machine the two agree to within the threads' overlap.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "book" / "reproduce.md"
#: experiments that need more than one image (a statistic over images): run with this many
MIN_IMAGES = {"kis": 8, "backdoor": 8}
_BLOCK = re.compile(r"^```\{code-block\} bash\n((?::[^\n]*\n)*)\n?(.*?)^```", re.M | re.S)


def listed_commands(text: str | None = None) -> list[str]:
    """The commands of every ``nfr-reproduce`` block of the reproduce page (one per line;
    ``\\`` continuations joined, comment lines skipped)."""
    text = PAGE.read_text() if text is None else text
    cmds = []
    for options, body in _BLOCK.findall(text):
        if "nfr-reproduce" not in options:
            continue
        body = re.sub(r"\\\n\s*", " ", body)
        cmds += [line.strip() for line in body.splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
    return cmds


def parse(cmd: str) -> tuple[str, dict]:
    """``python -m nfr <experiment> --opt val --flag`` -> (experiment, {option: value or None})."""
    argv = shlex.split(cmd)
    if argv[:3] != ["python", "-m", "nfr"] or len(argv) < 4:
        raise ValueError(f"not a `python -m nfr` command: {cmd}")
    opts, i = {}, 4
    while i < len(argv):
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            opts[argv[i]] = argv[i + 1]
            i += 2
        else:
            opts[argv[i]] = None
            i += 1
    return argv[3], opts


def one_image(cmd: str, out: Path, size: int | None = None) -> list[str]:
    """The argv (after ``python -m nfr``) of ``cmd`` as a one-image CPU run writing into ``out``."""
    exp, opts = parse(cmd)
    model = opts.get("--model", "")
    cifar = model.startswith("cifar_") or opts.get("--data") == "cifar10"
    if exp != "train":
        if exp == "backdoor":                # needs a trained file: the committed BadNet ResNet-20
            opts["--weights"] = str(ROOT / "nfr" / "resources" / "models" / "resnet20_badnet.pt")
        elif "--weights" in opts and opts["--weights"] != "random":
            opts["--weights"] = "random"
        if opts.get("--data") not in (None, "samples", "skimage"):
            opts["--data"] = "samples"
            opts.pop("--boxes", None)        # the sample photos bring their own boxes
        opts["--n-images"] = str(MIN_IMAGES.get(exp, 1))
        opts["--size"] = str(size or (32 if cifar else 112))
        if "--batch-size" in opts:
            opts["--batch-size"] = "1"
    opts["--device"] = "cpu"
    opts["--out"] = str(out)
    opts["--quiet"] = None
    args = [exp]
    for k, v in opts.items():
        args += [k] if v is None else [k, v]
    return args


def _run(argv: list[str], timeout: int) -> dict:
    env = dict(os.environ, MPLBACKEND="Agg")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"rc": proc.returncode, "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
            "load_before": round(load, 2), "stderr_tail": proc.stderr[-400:] if proc.returncode else ""}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m nfr.tools.reproduce_costs", description=__doc__.split("\n")[0])
    p.add_argument("--only", default=None, help="comma-separated experiments to time (default: all)")
    p.add_argument("--size", type=int, default=None, help="image side for every command (default 112 / 32)")
    p.add_argument("--timeout", type=int, default=1800)
    p.add_argument("--out", default=str(ROOT / "book" / "data" / "reproduce_costs.json"))
    a = p.parse_args(argv)
    only = set(a.only.split(",")) if a.only else None
    seen, rows = set(), []
    startup = _run([sys.executable, "-c", "import torch, torchvision, nfr, nfr.experiments; "
                    "torchvision.models.vgg16(weights=None)"], a.timeout)
    print(f"start-up (import torch + nfr, build VGG16): CPU {startup['cpu_s']} s, wall {startup['wall_s']} s")
    for cmd in listed_commands():
        exp, opts = parse(cmd)
        key = (exp, opts.get("--model"))
        if exp == "train" or key in seen or (only and exp not in only):
            continue
        seen.add(key)
        with tempfile.TemporaryDirectory() as tmp:
            args = one_image(cmd, Path(tmp), a.size)
            res = _run([sys.executable, "-m", "nfr", *args], a.timeout)
        shown = [t for i, t in enumerate(args) if t != "--quiet" and "--out" not in args[max(i - 1, 0):i + 1]]
        res.update(experiment=exp, model=opts.get("--model"), n_images=MIN_IMAGES.get(exp, 1),
                   command=" ".join(["python -m nfr", *shown]))
        rows.append(res)
        print(f"{exp:16s} {str(opts.get('--model')):18s} CPU {res['cpu_s']:7.1f} s  wall {res['wall_s']:7.1f} s"
              f"  load {res['load_before']:.2f}  rc {res['rc']}")
    if only and Path(a.out).is_file():       # keep the other commands' earlier rows
        done = {(r["experiment"], r["model"]) for r in rows}
        old = json.loads(Path(a.out).read_text())["runs"]
        rows = [r for r in old if (r["experiment"], r["model"]) not in done] + rows
    Path(a.out).write_text(json.dumps({"startup": startup, "runs": rows, "threads": os.cpu_count()}, indent=1) + "\n")
    print(f"wrote {a.out}")
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
