"""GPU check: ``python -m nfr.tools.gpu_check [--device cuda|cpu] [--out gpu_check.json]``.

Three parts, one report (printed, and written as JSON to ``--out``):

1. *Equality*: every rule of :func:`nfr.attribute` and :func:`nfr.cascade` (all levels, every
   cascade rule) on ``--device`` against the CPU, in float64, on torchvision's VGG16 and
   ResNet-18 with random weights (batch 2, ``--size`` px; ``--small``: a tiny CNN instead). The
   largest relative difference max|R_dev - R_cpu| / max|R_cpu| must be <= ``--tol`` (1e-10).
2. *Benchmark*: :func:`nfr.bench.run` on ``--device`` (float32 VGG16 at 224 px, batch
   ``--batch``, ``--repeats`` rounds): ratios to the plain gradient and absolute seconds.
3. *Experiment*: ``table1`` end to end (VGG16, random weights, the sample photos, 1 image,
   ``--size`` px) on ``--device``.

Without CUDA, ``--device cuda`` (the default) prints why and exits with code 2. ``--device cpu``
runs the same comparisons CPU against CPU, so the code path can be tested anywhere. Exit code 1
when an equality check fails, 0 otherwise.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

from nfr import bench, experiments
from nfr.engine import attribute as engine
from nfr.engine.attribute import CASCADE_RULES, RULES
from nfr.errors import NFRError

EXIT_NO_CUDA = 2


def _models(small: bool, seed: int):
    with torch.random.fork_rng():           # torchvision's initialisers use the global RNG
        torch.manual_seed(seed)
        if small:
            yield "tiny-cnn", nn.Sequential(
                nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10)).eval().double()
            return
        import torchvision
        vgg = torchvision.models.vgg16(weights=None).eval().double()
        res = torchvision.models.resnet18(weights=None).eval().double()
    yield "vgg16", vgg
    del vgg
    yield "resnet18", res


def _rel(a, b) -> float:
    a, b = a.detach().cpu(), b.detach().cpu()
    scale = float(b.abs().max())
    return float((a - b).abs().max()) / (scale if scale > 0 else 1.0)


def compare(device: str = "cuda", small: bool = False, size: int = 64, seed: int = 0,
            tol: float = 1e-10) -> dict:
    """Every rule and the cascade on ``device`` against the CPU in float64.

    Parameters
    ----------
    device : str
        The device to check ("cuda", "cuda:1", or "cpu" for a CPU-against-CPU run).
    small : bool
        A tiny CNN instead of VGG16 and ResNet-18.
    size : int
        Image side in pixels.
    seed : int
        Seeds the random weights, inputs and targets (through local generators).
    tol : float
        The largest allowed relative difference.

    Returns
    -------
    dict
        ``{"device", "tol", "models": {name: {"attribute": {rule: rel}, "cascade": {rule: rel},
        "seconds": {"cpu", "device"}}}, "max_rel", "passed"}``.

    Raises
    ------
    NFRError
        If ``size`` or ``tol`` is not positive.
    """
    if int(size) < 8 or not float(tol) > 0:
        raise NFRError(f"size must be >= 8 and tol > 0, got size={size}, tol={tol}")
    dev = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, size, size, generator=g, dtype=torch.float64)
    out = {"device": str(dev), "tol": tol, "models": {}}
    for name, model in _models(small, seed):
        with torch.no_grad():
            K = model(x[:1]).shape[1]
        t = torch.randint(0, K, (2,), generator=g)
        L = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in model.modules())
        mdev = copy.deepcopy(model).to(dev)       # a separate copy, also for CPU vs CPU
        calls = {r: dict(layer=L // 2) if r.startswith("activation") else {} for r in RULES}
        row = {"attribute": {}, "cascade": {}, "seconds": {"cpu": 0.0, "device": 0.0}}

        def timed(key, fn):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            r = fn()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            row["seconds"][key] += time.perf_counter() - t0
            return r

        for rule, kw in calls.items():
            want = timed("cpu", lambda: engine.attribute(model, x, t, rule, **kw))
            got = timed("device", lambda: engine.attribute(mdev, x.to(dev), t.to(dev), rule, **kw))
            row["attribute"][rule] = _rel(got, want)
        for rule in CASCADE_RULES:
            want = timed("cpu", lambda: engine.cascade(model, x, t, rule))
            got = timed("device", lambda: engine.cascade(mdev, x.to(dev), t.to(dev), rule))
            row["cascade"][rule] = _rel(got, want)
        mdev = None                               # free the device copy before the next model
        out["models"][name] = row
    out["max_rel"] = max(v for row in out["models"].values()
                         for part in ("attribute", "cascade") for v in row[part].values())
    out["passed"] = out["max_rel"] <= tol
    return out


def experiment(device: str = "cuda", size: int = 64, seed: int = 0) -> dict:
    """``table1`` end to end on ``device`` (VGG16, random weights, the sample photos, 1 image).

    Parameters
    ----------
    device : str
        Where to run.
    size : int
        Image side in pixels.
    seed : int
        The experiment's seed.

    Returns
    -------
    dict
        ``{"seconds", "alignment"}``: wall time and the mean alignment with the bottom process
        per rule.

    Raises
    ------
    NFRError
        If the experiment rejects its arguments (e.g. the sample photos are unavailable).
    """
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = experiments.run("table1", model="vgg16", weights="random", data="samples",
                              n_images=1, size=size, device=device, seed=seed, quiet=True, out=tmp)
        secs = time.perf_counter() - t0
        files = sorted(p.name for p in Path(tmp).iterdir())
    al = {r: v["with_bottom"]["mean"] for r, v in res.get("alignment", {}).items()}
    return {"seconds": secs, "alignment": al, "files": files}


def main(argv=None) -> int:
    """Run the check; returns the exit code (0 pass, 1 an equality check failed, 2 no CUDA).

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        The exit code.
    """
    p = argparse.ArgumentParser(prog="python -m nfr.tools.gpu_check",
                                description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (CPU vs CPU)")
    p.add_argument("--out", default="gpu_check.json", help="where to write the JSON report")
    p.add_argument("--small", action="store_true", help="tiny CNN for the equality checks")
    p.add_argument("--size", type=int, default=64, help="image side of checks and experiment")
    p.add_argument("--tol", type=float, default=1e-10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=4, help="benchmark batch (4 is the CPU setting)")
    p.add_argument("--bench-size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=5, help="benchmark rounds")
    p.add_argument("--skip-bench", action="store_true")
    p.add_argument("--skip-experiment", action="store_true")
    a = p.parse_args(argv)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("nfr.tools.gpu_check: CUDA is not available (torch "
              f"{torch.__version__}, torch.version.cuda={torch.version.cuda}); nothing was "
              "checked. Run on a machine with an NVIDIA GPU, or use --device cpu to exercise "
              "the same comparisons CPU against CPU.", file=sys.stderr)
        return EXIT_NO_CUDA
    report = {"torch": torch.__version__, "device": a.device}
    if a.device.startswith("cuda"):
        report["gpu"] = torch.cuda.get_device_name(torch.device(a.device))
    report["compare"] = cmp = compare(a.device, a.small, a.size, a.seed, a.tol)
    print(f"equality vs CPU, float64 (relative, tol {a.tol:g}):")
    for name, row in cmp["models"].items():
        for part in ("attribute", "cascade"):
            cells = "  ".join(f"{r} {v:.1e}" for r, v in row[part].items())
            print(f"  {name:9s} {part:9s} {cells}")
        print(f"  {name:9s} seconds   cpu {row['seconds']['cpu']:.2f}  "
              f"{a.device} {row['seconds']['device']:.2f}")
    print(f"  largest {cmp['max_rel']:.2e}: {'PASS' if cmp['passed'] else 'FAIL'}")
    if not a.skip_bench:
        with tempfile.TemporaryDirectory() as tmp:
            b = bench.run(small=a.small, repeats=a.repeats, out=str(Path(tmp) / "bench.json"),
                    seed=a.seed, progress=False, size=a.bench_size, device=a.device,
                    batch=a.batch)
        report["bench"] = {k: b[k] for k in ("input", "device", "seconds",
                                              "ratio_to_plain_gradient", "ratio_quartiles",
                                              "meets_targets") if k in b}
        if "cascade_cuda_peak_allocated_bytes" in b:
            report["bench"]["cascade_cuda_peak_allocated_bytes"] = \
                b["cascade_cuda_peak_allocated_bytes"]
    if not a.skip_experiment:
        report["experiment"] = e = experiment(a.device, a.size, a.seed)
        print(f"table1 on {a.device}: {e['seconds']:.1f} s, alignment "
              + ", ".join(f"{r} {v:.3f}" for r, v in e["alignment"].items()))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {a.out}")
    return 0 if cmp["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
