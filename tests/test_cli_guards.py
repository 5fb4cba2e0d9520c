"""The command line on bad input: one clear line on stderr and exit code 2, never a traceback, and
found before the experiment runs (numeric ranges, --out naming a file, unreadable or mismatched
weights files)."""
from __future__ import annotations

import dataclasses
import typing

import pytest
import torch

from nfr import cli
from nfr.models import cifar_resnet

NUMERIC = (int, float)


def _configs():
    from nfr import experiments as X
    from nfr.train import TrainConfig
    return {n: sp.config for n, sp in X.REGISTRY.items()} | {"train": TrainConfig}


def _numeric_fields():
    """(sub-command, option string, field) of every int / float / numeric-list option."""
    for name, cls in _configs().items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind, _ = cli._kind(hints[f.name])
            if kind in NUMERIC:
                yield name, "--" + f.name.replace("_", "-"), f


def _bad_value(f):
    m = f.metadata
    if m.get("minimum") is not None:
        return m["minimum"] - 1
    if m.get("above") is not None:
        return m["above"]
    return m["maximum"] + 1


def _one_line_error(capsys, rc):
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_every_numeric_option_has_a_range():
    missing = {(n, o) for n, o, f in _numeric_fields()
               if all(f.metadata.get(k) is None for k in ("minimum", "maximum", "above"))}
    assert not missing, f"numeric options without a range (option(..., minimum=...)): {sorted(missing)}"


@pytest.mark.parametrize("name,opt,field", sorted(_numeric_fields(), key=lambda t: t[:2]),
                         ids=lambda v: getattr(v, "name", v))
def test_numeric_option_out_of_range_is_refused_before_running(name, opt, field, capsys, tmp_path):
    v = _bad_value(field)
    val = str(int(v)) if float(v).is_integer() else str(v)
    rc = cli.main([name, opt, val, "--out", str(tmp_path / "o")])
    line = _one_line_error(capsys, rc)
    assert opt in line and "must be" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv", [["table1", "--size", "0"], ["table1", "--size", "-5"],
                                  ["cascade", "--batch-size", "0"], ["train", "--rate", "1.5"]])
def test_examples_of_the_issue(argv, capsys, tmp_path):
    line = _one_line_error(capsys, cli.main(argv + ["--out", str(tmp_path)]))
    assert "must be" in line


@pytest.mark.parametrize("name", ["table1", "sanity", "nie", "train"])
def test_out_naming_an_existing_file(name, capsys, tmp_path):
    f = tmp_path / "results"
    f.write_text("keep me")
    line = _one_line_error(capsys, cli.main([name, "--out", str(f)]))
    assert "existing file" in line and f.read_text() == "keep me"


@pytest.mark.parametrize("model", ["cifar_resnet20", "vgg16"])
@pytest.mark.parametrize("kind", ["random-bytes", "empty", "other-architecture"])
def test_bad_weights_files(model, kind, capsys, tmp_path):
    w = tmp_path / "w.pt"
    if kind == "random-bytes":
        w.write_bytes(torch.randint(0, 256, (4000,), dtype=torch.uint8,
                                    generator=torch.Generator().manual_seed(0)).numpy().tobytes())
    elif kind == "empty":
        w.write_bytes(b"")
    else:  # a state dict of another architecture
        torch.save(cifar_resnet(56 if model == "cifar_resnet20" else 20).state_dict(), w)
    rc = cli.main(["table1", "--model", model, "--weights", str(w), "--n-images", "1", "--size", "32",
                   "--out", str(tmp_path / "o"), "--quiet"])
    line = _one_line_error(capsys, rc)
    expect = {"random-bytes": "corrupted", "empty": "empty",
              "other-architecture": "ResNet-56" if model == "cifar_resnet20" else "missing keys"}[kind]
    assert expect in line, line
