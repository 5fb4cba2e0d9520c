"""The command line ``python -m nfr <experiment>`` and the experiment functions behind it.

Everything runs on the CPU with the smallest setting: the random CIFAR ResNet-20 at 32 x 32 on one
of foolbox's bundled CIFAR-10 images, one rule and few layers per experiment. Each experiment runs
once through its function and once through a subprocess; both must write valid JSON with the
expected keys and at least one PNG.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nfr import experiments as E

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(model="cifar_resnet20", weights="random", data="samples", n_images=1, size=32,
            seed=0, progress=False)
TINY_ARGS = ["--model", "cifar_resnet20", "--weights", "random", "--data", "samples",
             "--n-images", "1", "--size", "32", "--quiet"]

# experiment -> (function kwargs, extra CLI args, expected top-level keys)
CASES = {
    "table1": (dict(rules="gbp,activation"), ["--rules", "gbp,activation", "--layer", "3"],
               {"alignment", "methods"}),
    "cascade": (dict(rules="gbp"), ["--rules", "zplus"], {"levels", "curves"}),
    "weight-stats": (dict(max_neurons=32), ["--max-neurons", "32"], {"stats"}),
    "distributions": (dict(rules="gbp", dists=["ring"]), ["--rules", "gbp", "--dists", "uniform"],
                      {"levels", "curves", "colour"}),
    "removal": (dict(rules="gbp", ks=[1]), ["--rules", "rectgrad", "--k", "2"],
                {"original", "random", "removal"}),
    "activations": (dict(rules="gbp", layers=[1, 19]), ["--rules", "zplus", "--layers", "2,18"],
                    {"layers", "curves", "ordinary"}),
    "sanity": (dict(rules="gbp", steps=[1]), ["--rules", "grad", "--steps", "1,20"],
               {"steps", "ssim", "spearman"}),
    "trgbp": (dict(top=3), ["--top", "4"], {"class_correlation"}),
    "ibd": ({}, [], {"auc", "n", "errors"}),
}
COMMON = {"experiment", "config", "figures"}


def _env():
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "nfr", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def _check_out(out: Path, name: str, keys: set) -> dict:
    data = json.loads((out / f"{name}.json").read_text())
    assert data["experiment"] == name
    assert COMMON | keys <= set(data), set(data)
    pngs = sorted(out.glob("*.png"))
    assert pngs and set(data["figures"]) == {p.name for p in pngs}
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return data


@pytest.mark.parametrize("name", list(CASES))
def test_experiment_function(name, tmp_path):
    kwargs, _, keys = CASES[name]
    fn = E.EXPERIMENTS[name]
    base = {k: v for k, v in TINY.items() if name != "weight-stats" or k in ("model", "weights", "seed",
                                                                             "progress")}
    res = fn(**base, **kwargs, out=tmp_path)
    json.dumps(res, allow_nan=False)  # strictly JSON-able (NaN -> None)
    data = _check_out(tmp_path, name, keys)
    assert data == json.loads(json.dumps(res))


def test_experiment_values(tmp_path):
    """Spot checks of the numbers: the cascade starts at the gradient's alignment (level 0 is the
    same map for every rule) and activation's level L is A_0 = x (alignment 1)."""
    res = E.cascade(**TINY, rules="gbp,activation")
    g, a = res["curves"]["gbp"]["mean"], res["curves"]["activation"]["mean"]
    assert len(g) == res["config"]["L"] + 1 == 21
    assert g[0] == pytest.approx(a[0], abs=1e-6)
    assert a[-1] == pytest.approx(1.0, abs=1e-5)
    # the function is deterministic (seeded model, subset and randomizations)
    assert E.cascade(**TINY, rules="gbp")["curves"]["gbp"] == res["curves"]["gbp"]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """All experiment subprocesses, two at a time with one thread each, started when the first
    CLI test asks (most of each run is importing torch); each test waits for its own run."""
    from concurrent.futures import ThreadPoolExecutor
    env = dict(_env(), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    runs = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for name, (_, args, _) in CASES.items():
            out = tmp_path_factory.mktemp(f"cli-{name}")
            cmd = [sys.executable, "-m", "nfr", name, *TINY_ARGS, *args, "--out", str(out)]
            runs[name] = (pool.submit(subprocess.run, cmd, cwd=ROOT, env=env, text=True,
                                      capture_output=True, timeout=240), out)
        yield runs


@pytest.mark.parametrize("name", list(CASES))
def test_experiment_cli(name, cli_runs):
    fut, out = cli_runs[name]
    proc = fut.result()
    stdout, stderr = proc.stdout, proc.stderr
    assert proc.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr
    assert f"{name}.json" in stdout
    _check_out(out, name, CASES[name][2])


def test_help():
    p = _run("--help")
    assert p.returncode == 0
    for word in ("table1", "cascade", "weight-stats", "distributions", "removal", "activations",
                 "sanity", "examples:", "--n-images 1000 --device cuda"):
        assert word in p.stdout
    p = _run("cascade", "--help")
    assert p.returncode == 0
    for opt in ("--model", "--weights", "--data", "--n-images", "--size", "--device", "--seed",
                "--out", "--rules", "--batch-size", "vgg16_bn", "cifar_resnet56"):
        assert opt in p.stdout


def test_missing_weights_exit_2(tmp_path):
    missing = tmp_path / "nope.pth"
    p = _run("table1", "--model", "vgg16", "--weights", str(missing), "--out", str(tmp_path))
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert str(missing) in p.stderr and "error" in p.stderr
    assert not list(tmp_path.glob("*.json"))


def test_missing_data_exit_2(tmp_path):
    p = _run("cascade", *TINY_ARGS, "--data", str(tmp_path / "no_such_folder"), "--out", str(tmp_path))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "no_such_folder" in p.stderr


def test_bad_option_is_usage_error():
    p = _run("cascade", "--model", "not_a_model")
    # --model also takes package.module:factory, so an unknown name is an NFRError naming it
    assert p.returncode == 2 and "unknown model 'not_a_model'" in p.stderr
    assert "Traceback" not in p.stderr


def test_bad_rule_raises():
    with pytest.raises(E.NFRError, match="unknown rule"):
        E.cascade(**TINY, rules="nope")


def test_one_experiments_defaults_do_not_leak_into_another():
    """The shared options' argparse actions are shared by all sub-commands: ebpg's own defaults
    (label class, every image with a box) must not become ibd's or table1's."""
    from nfr.cli import _DEFAULTS, build_parser
    p = build_parser()
    for exp in ("ibd", "table1", "ebpg"):
        a = p.parse_args([exp])
        assert a.target is None and a.n_images is None
    assert _DEFAULTS["ebpg"] == (0, "label") and _DEFAULTS[None] == (4, "pred")


def test_kis_summary_prints_an_undefined_auc():
    """With random weights every prediction can be wrong: the AUC is None and the summary says so
    (it used to crash after the experiment had written its results)."""
    from nfr.cli import _summary
    res = {"experiment": "kis", "accuracy": 0.0, "figures": [],
           "summary": {"kis": {"auc": None, "bc": 0.41}}}
    text = _summary(res)
    assert "n/a" in text and "+0.410" in text
