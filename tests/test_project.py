"""Project wiring: pins agree between pyproject.toml and environment.yml, CI calls make test,
the table of contents lists exactly the chapters that exist."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~ ;\[]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def _pins_pyproject() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"]) + [r for extra in meta["optional-dependencies"].values() for r in extra]
    return {_name(r): r.replace(" ", "") for r in reqs}


def _pins_environment() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {_name(r): r.replace(" ", "") for r in pip}


def test_pyproject_and_environment_pin_the_same_versions():
    a, b = _pins_pyproject(), _pins_environment()
    assert a == b, {"only in pyproject": sorted(set(a) - set(b)), "only in environment": sorted(set(b) - set(a)),
                    "differ": sorted(k for k in set(a) & set(b) if a[k] != b[k])}


def test_required_pins():
    pins = _pins_pyproject()
    assert pins["jupyter-book"] == "jupyter-book<2"
    assert pins["torch"] == "torch==2.14.1" and pins["torchvision"] == "torchvision==0.29.1"
    for name in ("nbval", "sphinx-proof", "sphinx-exercise", "numpy", "scipy", "matplotlib", "captum", "zennit"):
        assert name in pins, name
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"captum", "zennit"} <= {_name(r) for r in extras["test"]}, "oracles are test-only dependencies"
    assert not {"captum", "zennit"} & {_name(r) for r in extras["torch"] + extras["book"]}


def test_ci_runs_make_test_and_readme_gives_both_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme


def _toc_files(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("file", "root"):
                yield v
            else:
                yield from _toc_files(v)
    elif isinstance(node, list):
        for v in node:
            yield from _toc_files(v)


def test_toc_lists_exactly_the_existing_chapters():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = list(_toc_files(toc))
    for f in files:
        assert any((ROOT / f).with_suffix(s).exists() for s in (".md", ".ipynb")), f"{f} is in _toc.yml but missing"
    chapters = {f"chapters/{p.stem}" for p in (ROOT / "chapters").glob("*.ipynb")}
    assert chapters == {f for f in files if f.startswith("chapters/")}
    assert [c["caption"] for c in toc["parts"]][-1] == "Appendix"


def test_config_serves_mathjax_locally():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx = cfg["sphinx"]["config"]
    assert not sphinx["mathjax_path"].startswith(("http", "//"))
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert "nfr.tools.offline" in cfg["sphinx"]["extra_extensions"]


def test_ci_runs_in_a_clone_that_cannot_see_shared_and_nbval_under_other_kernels():
    """CI runs as a newcomer: a fresh clone in a temporary folder, no NFR_* variables; make test
    runs nbval with this CPU's float32 kernels and again under those of an older CPU (on the
    chapters whose kernel loads torch, the only library those settings reach)."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert "mktemp -d" in ci and "git clone" in ci and "-u NFR_CIFAR10_DIR" in ci
    mk = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: unit nbval nbval-other-cpu$", mk, re.M)
    rule = re.search(r"^nbval-other-cpu: venv\n\t(.*)$", mk, re.M).group(1)
    assert "$(OTHER_CPU) $(PY) $(NBVAL_ONE) $$chs" in rule and "nfr.tools.torch_chapters chapters" in rule
    assert 'test -n "$$chs"' in rule     # no chapter found must fail, not run pytest's default paths
    assert "ATEN_CPU_CAPABILITY=default" in mk and "ONEDNN_MAX_CPU_ISA=SSE41" in mk
    assert "NFR_SHARED" not in mk and "../shared" not in mk
