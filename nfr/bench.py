"""Benchmark of the torch engine: ``python -m nfr.bench [--small] [--repeats N] [--out PATH]``.

VGG16 (torchvision, weights=None, seeded), batch 4x3x224x224 on the CPU, all in ONE run: in each
of ``--repeats`` rounds every method runs once, in a seeded random order, with a run of the plain
autograd input gradient before and after it; the ratio is the median over rounds of the method's
time over the mean of those two plain runs (quartiles and the ratio of the minimum times are
reported too). Methods: the plain autograd input gradient, every rule of :func:`nfr.attribute`,
:func:`nfr.cascade` over all levels, Captum's GuidedBackprop and Zennit's EpsilonPlusFlat.
Writes ``book/data/bench.json`` (seconds, ratios to the plain gradient, peak RSS / tracemalloc
peak of the cascade) and prints the ratio table. Targets: gbp / rectgrad / activation <= 1.05x,
zplus / dtd <= 1.6x, cascade <= 0.4 (L+1) x, peak memory < 8 GB. ``--small`` runs a tiny CNN
(for a quick check; its times mean nothing).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import resource
import statistics
import time
import tracemalloc
from pathlib import Path

import torch
import torch.nn as nn

from nfr.engine import attribute as engine
from nfr.engine.canonize import canonical


def _model(small: bool, seed: int):
    with torch.random.fork_rng():          # torchvision initialisers use the global RNG
        torch.manual_seed(seed)
        if small:
            m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True),
                              nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1),
                              nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                              nn.Linear(32, 10))
        else:
            import torchvision
            m = torchvision.models.vgg16(weights=None)
    return m.eval()


def _noinplace(model):
    m = copy.deepcopy(model)
    for mod in m.modules():
        if isinstance(mod, nn.ReLU):
            mod.inplace = False
    return m


def _jobs(model, x, target, L: int, small: bool, dev) -> dict:
    """The timed calls: the plain gradient, every engine rule, the full cascade, and Captum's
    Guided Backprop and Zennit's EpsilonPlusFlat where those libraries are installed."""
    batch = len(x)

    def plain():
        xg = x.detach().requires_grad_(True)
        out = model(xg)
        return torch.autograd.grad(out[torch.arange(batch), target].sum(), xg)[0]

    jobs = {"plain_gradient": plain}
    for rule in ("grad", "grad_x_input", "gbp", "rectgrad", "zplus", "dtd"):
        jobs[rule] = (lambda r=rule: engine.attribute(model, x, target, r))
    jobs["activation"] = lambda: engine.attribute(model, x, target, "activation", layer=L // 2)
    jobs["cascade_gbp_all_levels"] = lambda: engine.cascade(model, x, target, "gbp")
    try:
        from captum.attr import GuidedBackprop
        cm = _noinplace(model)
        jobs["captum_guided_backprop"] = lambda: GuidedBackprop(cm).attribute(x.clone(),
                                                                              target=target)
    except ImportError:
        pass
    try:
        from zennit.attribution import Gradient
        from zennit.composites import EpsilonPlusFlat
        zm = _noinplace(model)

        def zen():
            onehot = torch.eye(10 if small else 1000, device=dev)[target]
            with Gradient(model=zm, composite=EpsilonPlusFlat()) as attributor:
                return attributor(x.clone(), onehot)[1]
        jobs["zennit_epsilon_plus_flat"] = zen
    except ImportError:
        pass
    return jobs


def _sandwich(jobs: dict, repeats: int, seed: int, sync, progress: bool):
    """Time every job ``repeats`` rounds (sandwich design, see below); returns the raw times per
    job and the per-round ratios to the plain gradient.

    Sandwich design: in every round the methods run in a seeded random order with a plain-
    gradient run before the first, between every two and after the last; a method's ratio
    for that round is its time over the mean of the two plain runs around it (a drift that
    is linear over the three runs cancels). This machine's noise comes in bursts of seconds:
    the engine's own "grad" rule, which does the plain gradient's work, reads 0.9 to 1.36
    against a single adjacent plain run.
    """
    from tqdm import tqdm

    def clock(fn):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t

    plain = jobs["plain_gradient"]
    samples = {name: [] for name in jobs}
    paired = {name: [] for name in jobs if name != "plain_gradient"}
    order = random.Random(seed)
    for _ in tqdm(range(repeats), desc="bench rounds", disable=not progress):
        names = list(paired)
        order.shuffle(names)
        before = clock(plain)
        samples["plain_gradient"].append(before)
        for name in names:
            tm = clock(jobs[name])
            after = clock(plain)
            samples["plain_gradient"].append(after)
            samples[name].append(tm)
            paired[name].append(tm / (0.5 * (before + after)))
            before = after
    return samples, paired


def _quartiles(v) -> list:
    if len(v) < 2:
        return [v[0], v[0]]
    q = statistics.quantiles(v, n=4, method="inclusive")
    return [q[0], q[2]]


def _cascade_memory(model, x, target, dev) -> tuple[int, int]:
    """Peak resident memory of the process (bytes) and tracemalloc's peak over one full cascade."""
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    tracemalloc.start()
    engine.cascade(model, x, target, "gbp")
    _, tm_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, tm_peak  # Linux: KiB


def _print_table(res: dict, out) -> None:
    times, ratios, targets = res["seconds"], res["ratio_to_plain_gradient"], res["targets"]
    print(f"{'method':28s} {'seconds':>9s} {'ratio':>7s} {'quartiles':>13s} {'min/min':>8s} "
          f"{'target':>7s}")
    for k in times:
        t = targets.get(k)
        qs = res["ratio_quartiles"].get(k, [1.0, 1.0])
        print(f"{k:28s} {times[k]:9.3f} {ratios[k]:7.2f} {qs[0]:6.2f}-{qs[1]:<6.2f} "
              f"{res['ratio_of_minima'][k]:8.2f} {'' if t is None else f'{t:7.2f}'}")
    rss, tm_peak = res["cascade_peak_rss_bytes"], res["cascade_tracemalloc_peak_bytes"]
    print(f"cascade peak RSS {rss / 2 ** 30:.2f} GiB (tracemalloc {tm_peak / 2 ** 20:.1f} MiB); "
          f"L = {res['layers_L']}; wrote {out}")


def run(small=False, repeats=11, out="book/data/bench.json", seed=0, progress=True,
        warmup=True, size=224, device="cpu", batch=4):
    """Run the benchmark and write the JSON; returns the result dict.

    ``device``: where the model and inputs live ("cpu" or "cuda"; CUDA timings synchronise
    before and after each call); ``batch``: the batch size (4 is the benchmark's setting).
    """
    from tqdm import tqdm

    dev = torch.device(device)
    model = _model(small, seed).to(dev)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, 3, 32, 32) if small else (batch, 3, size, size), generator=g).to(dev)
    target = torch.arange(1, batch + 1).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    L = len(canonical(model).nfr_layers)
    jobs = _jobs(model, x, target, L, small, dev)
    load_before = os.getloadavg()[0]
    if warmup:
        for name, fn in tqdm(jobs.items(), desc="warm-up", disable=not progress):
            fn()
    samples, paired = _sandwich(jobs, repeats, seed, sync, progress)
    times = {name: statistics.median(v) for name, v in samples.items()}
    ratios = {"plain_gradient": 1.0, **{k: statistics.median(v) for k, v in paired.items()}}
    pmin = min(samples["plain_gradient"])
    rss, tm_peak = _cascade_memory(model, x, target, dev)
    targets = {"gbp": 1.05, "rectgrad": 1.05, "activation": 1.05, "zplus": 1.6, "dtd": 1.6,
               "cascade_gbp_all_levels": 0.4 * (L + 1)}
    res = {"model": "tiny-cnn" if small else "vgg16 (torchvision, weights=None)",
           "input": list(x.shape), "layers_L": L, "repeats": repeats, "device": str(dev),
           "threads": torch.get_num_threads(), "torch": torch.__version__,
           "load_average_1min": {"before": round(load_before, 2),
                                 "after": round(os.getloadavg()[0], 2)},
           "machine": platform.processor() or platform.machine(),
           "seconds": times,
           "statistic": "median over rounds of (method time / mean of the plain-gradient "
                        "runs right before and right after it); methods in a seeded random "
                        "order per round",
           "ratio_to_plain_gradient": ratios, "targets": targets,
           "ratio_per_round": paired,
           "ratio_quartiles": {k: _quartiles(v) for k, v in paired.items()},
           "ratio_of_minima": {k: min(v) / pmin for k, v in samples.items()},
           "cascade_peak_rss_bytes": rss, "cascade_tracemalloc_peak_bytes": tm_peak,
           "meets_targets": {k: ratios[k] <= v for k, v in targets.items() if k in ratios}}
    res["meets_targets"]["peak_memory_below_8GB"] = rss < 8 * 2 ** 30
    if dev.type == "cuda":
        res["cascade_cuda_peak_allocated_bytes"] = torch.cuda.max_memory_allocated(dev)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(res, indent=2))
    _print_table(res, out)
    return res


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m nfr.bench", description=__doc__.split("\n")[0])
    p.add_argument("--small", action="store_true", help="tiny CNN, quick check only")
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--out", default="book/data/bench.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=224, help="image side (the target is 224)")
    p.add_argument("--no-warmup", action="store_true", help="skip the warm-up call per method")
    a = p.parse_args(argv)
    run(a.small, a.repeats, a.out, a.seed, warmup=not a.no_warmup, size=a.size)


if __name__ == "__main__":
    main()
