"""The command line ``python -m nfr <experiment>``, generated from the experiments' Configs, and
the experiments' ``run()`` behind it.

Everything runs on the CPU with the smallest setting: the random CIFAR ResNet-20 at 32 x 32 on one
of foolbox's bundled CIFAR-10 images, one rule and few layers per experiment. Each experiment runs
once through its function and once through a subprocess; both must write valid JSON with the
expected keys and at least one PNG.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nfr import NFRError
from nfr import experiments as X
from nfr.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(model="cifar_resnet20", weights="random", data="samples", n_images=1, size=32,
            seed=0, quiet=True)
TINY_ARGS = ["--model", "cifar_resnet20", "--weights", "random", "--data", "samples",
             "--n-images", "1", "--size", "32", "--quiet"]

# experiment -> (function kwargs, extra CLI args, expected top-level keys)
CASES = {
    "table1": (dict(rules=["gbp", "activation"]), ["--rules", "gbp,activation", "--layer", "3"],
               {"alignment", "methods"}),
    "cascade": (dict(rules=["gbp"]), ["--rules", "zplus"], {"levels", "curves"}),
    "weight-stats": (dict(max_neurons=32), ["--max-neurons", "32"], {"stats"}),
    "distributions": (dict(rules=["gbp"], dists=["ring"]), ["--rules", "gbp", "--dists", "uniform"],
                      {"levels", "curves", "colour"}),
    "removal": (dict(rules=["gbp"], k=[1]), ["--rules", "rectgrad", "--k", "2"],
                {"original", "random", "removal"}),
    "activations": (dict(rules=["gbp"], layers=[1, 19]), ["--rules", "zplus", "--layers", "2,18"],
                    {"layers", "curves", "ordinary"}),
    "sanity": (dict(rules=["gbp"], steps=[1]), ["--rules", "grad", "--steps", "1,20"],
               {"steps", "ssim", "spearman"}),
    "trgbp": (dict(top=3), ["--top", "4"], {"class_correlation"}),
    "ibd": ({}, [], {"auc", "n", "errors"}),
    "mprt": (dict(methods=["gbp", "control_noise"], orders=["top_down"], smooth_n=1, steps=[1, 20]),
             ["--methods", "grad", "--orders", "independent", "--smooth-n", "0", "--steps", "2,19"],
             {"mprt", "emprt", "smooth"}),
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


def _tiny(name):
    fields = {f.name for f in dataclasses.fields(X.get(name).config)}
    return {k: v for k, v in TINY.items() if k in fields}


@pytest.mark.parametrize("name", list(CASES))
def test_experiment_function(name, tmp_path):
    kwargs, _, keys = CASES[name]
    res = X.run(name, **_tiny(name), **kwargs, out=tmp_path)
    json.dumps(X.base.jsonable(dict(res)), allow_nan=False)  # strictly JSON-able (NaN -> None)
    data = _check_out(tmp_path, name, keys)
    assert data == json.loads(json.dumps(X.base.jsonable(dict(res))))


def test_experiment_values(tmp_path):
    """Spot checks of the numbers: the cascade starts at the gradient's alignment (level 0 is the
    same map for every rule) and activation's level L is A_0 = x (alignment 1)."""
    res = X.run("cascade", **TINY, rules=["gbp", "activation"])
    g, a = res["curves"]["gbp"]["mean"], res["curves"]["activation"]["mean"]
    assert len(g) == res["config"]["L"] + 1 == 21
    assert g[0] == pytest.approx(a[0], abs=1e-6)
    assert a[-1] == pytest.approx(1.0, abs=1e-5)
    # the function is deterministic (seeded model, subset and randomizations)
    assert X.run("cascade", **TINY, rules=["gbp"])["curves"]["gbp"] == res["curves"]["gbp"]


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
            base = TINY_ARGS if name != "weight-stats" else ["--model", "cifar_resnet20", "--quiet"]
            cmd = [sys.executable, "-m", "nfr", name, *base, *args, "--out", str(out)]
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
    with pytest.raises(NFRError, match="--rules must be one of"):
        X.run("cascade", **TINY, rules=["nope"])
    p = _run("cascade", *TINY_ARGS, "--rules", "gbp,nope")
    assert p.returncode == 2 and "--rules must be one of" in p.stderr and "Traceback" not in p.stderr


def _options(name):
    """The option names (dests) of one sub-command, without --help and --out."""
    sub = next(a for a in build_parser()._actions if a.dest == "experiment")
    return {a.dest: a for a in sub.choices[name]._actions if a.dest not in ("help", "out")}


@pytest.mark.parametrize("name", list(X.REGISTRY))
def test_cli_options_are_exactly_the_config_fields(name):
    """No option exists without a Config field, and every field is an option: an option cannot
    be accepted and ignored."""
    fields = {f.name for f in dataclasses.fields(X.get(name).config)}
    assert set(_options(name)) == fields


@pytest.mark.parametrize("name", list(X.REGISTRY))
def test_cli_defaults_are_the_configs(name):
    """The defaults live in the Config only: the parsed defaults equal Config()."""
    spec = X.get(name)
    args = build_parser().parse_args([name])
    from nfr.cli import config_from_args
    assert config_from_args(args, spec.config) == spec.config()


def test_one_meaning_per_flag():
    """A flag name means one thing in every sub-command: the same type, list-ness and choices
    (``--rules`` lists each experiment's own methods: the same type, its own choices)."""
    from nfr.cli import _kind
    import typing
    from nfr.train import TrainConfig
    seen = {}
    classes = {n: s.config for n, s in X.REGISTRY.items()} | {"train": TrainConfig}
    for name, cls in classes.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind = (_kind(hints[f.name]), None if f.name == "rules" else f.metadata.get("choices"))
            seen.setdefault(f.name, {}).setdefault(kind, []).append(name)
    clashes = {k: v for k, v in seen.items() if len(v) > 1}
    assert not clashes, clashes


@pytest.mark.parametrize("name,args", [
    ("weight-stats", ["--data", "nope"]), ("weight-stats", ["--n-images", "7"]),
    ("nie", ["--model", "vgg16"]), ("nie", ["--weights", "imagenet"]),
    ("trgbp", ["--rules", "gbp"]), ("backdoor", ["--model", "vgg16"]), ("weight-stats", ["--dtype", "float64"]),
])
def test_inapplicable_options_are_errors(name, args, capsys):
    """Options the experiment would ignore are refused (they used to parse and do nothing)."""
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([name, *args])
    assert e.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_unknown_field_in_run_is_an_error():
    with pytest.raises(NFRError, match="has no option"):
        X.run("cascade", **TINY, n_image=3)


def test_cli_and_run_give_identical_results(tmp_path):
    """The same config through the command line and through run(): the same JSON."""
    args = ["table1", *TINY_ARGS, "--rules", "gbp,zplus", "--n-show", "1", "--out", str(tmp_path / "cli")]
    assert main(args) == 0
    res = X.run("table1", **TINY, rules=["gbp", "zplus"], n_show=1, out=tmp_path / "run")
    a = json.loads((tmp_path / "cli" / "table1.json").read_text())
    b = json.loads((tmp_path / "run" / "table1.json").read_text())
    assert a == b and a["alignment"] == X.base.jsonable(dict(res))["alignment"]


def test_registry_names_and_modules():
    """One module per experiment, each with Config, run, figures and summary."""
    import sys
    assert set(X.REGISTRY) == {"table1", "cascade", "weight-stats", "distributions", "removal",
                               "activations", "sanity", "failure", "kis", "backdoor", "nie", "trgbp",
                               "ibd", "ebpg", "perturbation", "trgbp-sanity", "methods", "mprt"}
    for spec in X.REGISTRY.values():
        mod = sys.modules[spec.module]
        assert spec.module.startswith("nfr.experiments.") and spec.module.count(".") == 2
        for attr in ("Config", "run", "figures", "summary"):
            assert callable(getattr(mod, attr)), (spec.name, attr)


def test_kis_summary_prints_an_undefined_auc():
    """With random weights every prediction can be wrong: the AUC is None and the summary says so
    (it used to crash after the experiment had written its results)."""
    res = {"experiment": "kis", "accuracy": 0.0, "figures": [],
           "summary": {"kis": {"auc": None, "bc": 0.41}}}
    text = X.get("kis").summary(res)
    assert "n/a" in text and "+0.410" in text
