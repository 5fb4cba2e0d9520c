"""nfr.tools.gpu_check on the CPU: the CPU-against-CPU path (tiny CNN, one benchmark round, the
table1 experiment at 32 px) and the exit code without CUDA."""
import json

import torch

from nfr.tools import gpu_check


def test_without_cuda_exits_2_with_a_message(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path / "r.json")]) == gpu_check.EXIT_NO_CUDA
    assert "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_cpu_run_checks_every_rule_and_writes_json(tmp_path, one_thread):
    from nfr.engine.attribute import CASCADE_RULES, RULES
    out = tmp_path / "report.json"
    rc = gpu_check.main(["--device", "cpu", "--small", "--size", "32", "--repeats", "1",
                         "--bench-size", "32", "--out", str(out)])
    assert rc == 0
    rep = json.loads(out.read_text())
    row = rep["compare"]["models"]["tiny-cnn"]
    assert set(row["attribute"]) == set(RULES) and set(row["cascade"]) == set(CASCADE_RULES)
    assert rep["compare"]["passed"] and rep["compare"]["max_rel"] <= 1e-10
    assert rep["bench"]["device"] == "cpu" and "gbp" in rep["bench"]["ratio_to_plain_gradient"]
    assert "table1.json" in rep["experiment"]["files"]
    assert set(rep["experiment"]["alignment"]) >= {"gbp", "rectgrad", "zplus"}
