"""The built wheel, installed outside the checkout (``pytest -m wheel``; about a minute).

1. ``pip wheel --no-deps --no-build-isolation`` on a copy of the sources the wheel is built from
   (pyproject.toml, README.md, nfr/), so the checkout gets no build/ or egg-info.
2. A fresh virtual environment WITHOUT torch: the wheel installed with ``--no-deps``; its
   dependencies (numpy, scipy, matplotlib, tqdm and what they need, found from their metadata)
   are linked from this environment's site-packages into a folder put on the path, nothing else,
   so nothing is downloaded and torch cannot leak in (the test asserts ``import torch`` fails).
   ``import nfr`` and the NumPy reference work, import no torch, and every file under
   ``nfr/resources/`` in the sources is in the installed package.
3. A second environment with the torch extra: this environment's site-packages on its path
   (one .pth line), nfr from the wheel (asserted: ``nfr.__file__`` lies in the new environment),
   ``python -m nfr table1 --model vgg16 --weights random --data samples --n-images 1 --size 64``
   runs and writes table1.json.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.wheel
CORE = ("numpy", "scipy", "matplotlib", "tqdm")


def _run(cmd, cwd, **kw):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                       **kw)
    assert p.returncode == 0, (cmd, p.stdout[-3000:], p.stderr[-3000:])
    return p.stdout


def _closure(names):
    """Distributions needed by ``names`` (unconditional requirements, recursively)."""
    seen, todo = {}, list(names)
    while todo:
        n = re.split(r"[<>=!~ ;\[(]", todo.pop(), maxsplit=1)[0].strip().lower().replace("_", "-")
        if n in seen:
            continue
        try:
            dist = metadata.distribution(n)
        except metadata.PackageNotFoundError:
            continue
        seen[n] = dist
        todo += [r for r in (dist.requires or []) if ";" not in r]
    return seen


def _link_deps(dest: Path):
    """Symlink the top-level files of numpy/scipy/matplotlib/tqdm's closure into ``dest``."""
    dest.mkdir()
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    for name, dist in _closure(CORE).items():
        assert name not in ("torch", "torchvision"), name
        for f in dist.files or []:
            path = Path(dist.locate_file(f)).resolve()
            try:
                top = path.relative_to(site).parts[0]
            except ValueError:
                continue                        # scripts in bin/ and the like
            if top != "__pycache__" and not (dest / top).exists():
                (dest / top).symlink_to(site / top)


def _venv(path: Path) -> Path:
    _run([sys.executable, "-m", "venv", "--without-pip", path], cwd=path.parent)
    return path / "bin" / "python"


def _site(py: Path) -> Path:
    return Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=py.parent).strip())


def _pip_install(py: Path, wheel: Path, cwd):
    # the checkout's pip installs into the new environment (--without-pip keeps it small)
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index",
          wheel], cwd=cwd)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for f in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / f, src / f)
    shutil.copytree(ROOT / "nfr", src / "nfr", ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation",
          "--no-index", "-w", tmp / "dist"], cwd=tmp)
    (whl,) = (tmp / "dist").glob("nfr-*.whl")
    return whl


def test_wheel_imports_without_torch_and_ships_resources(wheel, tmp_path):
    py = _venv(tmp_path / "env")
    _pip_install(py, wheel, tmp_path)
    _link_deps(tmp_path / "deps")
    (_site(py) / "nfr_deps.pth").write_text(str(tmp_path / "deps") + "\n")
    res = sorted(str(p.relative_to(ROOT / "nfr")) for p in (ROOT / "nfr" / "resources").rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts)
    assert res, "nfr/resources is empty in the sources"
    code = f"""
import importlib.util, json, sys
import nfr, nfr.interop, nfr.reference as ref
assert 'torch' not in sys.modules, 'import nfr imported torch'
assert importlib.util.find_spec('torch') is None, 'torch leaked into the environment'
assert sys.prefix != sys.base_prefix and nfr.__file__.startswith(sys.prefix), nfr.__file__
import numpy as np
net = ref.random_network([6, 5, 4], seed=0)
R = ref.attribute(net, np.ones(6), 1, 'gbp')
assert R.shape == (6,)
from importlib.resources import files
missing = [f for f in {res!r} if not files('nfr').joinpath(f).is_file()]
assert not missing, missing
print(json.dumps(dict(file=nfr.__file__, version=nfr.__version__)))
"""
    out = json.loads(_run([py, "-c", code], cwd=tmp_path).strip().splitlines()[-1])
    assert out["version"] == "0.1.0"


def test_wheel_runs_table1_with_the_torch_extra(wheel, tmp_path):
    py = _venv(tmp_path / "env")
    _pip_install(py, wheel, tmp_path)
    (_site(py) / "nfr_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = _run([py, "-c", "import nfr, sys; print(nfr.__file__, sys.prefix)"], cwd=tmp_path)
    file, prefix = where.split()
    assert file.startswith(prefix), f"nfr came from {file}, not the wheel in {prefix}"
    helptext = _run([py, "-m", "nfr", "table1", "--help"], cwd=tmp_path)
    for flag in ("--model", "--weights", "--data", "--n-images", "--size", "--out"):
        assert flag in helptext, flag
    out = tmp_path / "out"
    _run([py, "-m", "nfr", "table1", "--model", "vgg16", "--weights", "random", "--data",
          "samples", "--n-images", "1", "--size", "64", "--out", out, "--quiet"], cwd=tmp_path,
         timeout=600)
    res = json.loads((out / "table1.json").read_text())
    assert res["config"]["size"] == 64 and res["config"]["n_images"] == 1
