"""Rule-level tests: each modified rule really differs from the gradient, bottoms follow Table I,
record / activation_max / activation_min / composites behave, alignment, float64, and the bench
CLI runs (``--small``, no timing asserted)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nfr
from nfr import NFRError

DT = torch.float64


from _nets import X, small_cnn as _net  # noqa: E402


@pytest.mark.parametrize("rule", ["gbp", "rectgrad", "zplus", "dtd"])
def test_modified_rules_never_degrade_to_gradient(rule):
    m = _net()
    r = nfr.attribute(m, X, 2, rule, bottom=False)
    g = nfr.attribute(m, X, 2, "grad")
    assert not torch.allclose(r, g, atol=1e-8)


def test_bottoms_follow_table_one():
    m = _net()
    g = nfr.attribute(m, X, 1, "grad")
    assert torch.equal(nfr.attribute(m, X, 1, "grad_x_input"), X * g)
    assert torch.equal(nfr.attribute(m, X, 1, "gbp"), nfr.attribute(m, X, 1, "gbp", bottom=False))
    r = nfr.attribute(m, X, 1, "rectgrad", bottom=False)
    assert torch.equal(nfr.attribute(m, X, 1, "rectgrad"), torch.relu(X * r))
    c = nfr.attribute(m, X, 1, "zplus", bottom=False)
    assert torch.equal(nfr.attribute(m, X, 1, "zplus"), X * c)


def test_rectgrad_q_changes_result():
    m = _net()
    a = nfr.attribute(m, X, 0, "rectgrad", bottom=False, q=0.9)
    b = nfr.attribute(m, X, 0, "rectgrad", bottom=False, q=0.5)
    assert not torch.allclose(a, b)


def test_record_gives_relevance_at_every_layer():
    m = _net()
    R, rec = nfr.attribute(m, X, 3, "grad", record=True)
    assert set(rec["relevance"]) == {1, 2, 3, 4}
    xs = X.clone().requires_grad_(True)
    A2 = m[:5](xs)
    out = m[5:](A2)
    want = torch.autograd.grad(out[:, 3].sum(), A2)[0]
    assert torch.allclose(rec["relevance"][2], want, rtol=1e-12, atol=1e-14)
    assert torch.allclose(rec["activation"][2], A2.detach())
    # z+ conserves relevance layer by layer on a bias-free net: sum A_l c_l = f_k
    mb = _net()
    with torch.no_grad():
        for mod in mb:
            if hasattr(mod, "bias") and mod.bias is not None:
                mod.bias.zero_()
    R, rec = nfr.attribute(mb, X, 3, "zplus", record=True)
    f = mb(X)[:, 3]
    for l in (1, 2, 3):
        s = (rec["activation"][l] * rec["relevance"][l]).reshape(3, -1).sum(1)
        assert torch.allclose(s, f, rtol=1e-10, atol=1e-12)
    assert torch.allclose(R.reshape(3, -1).sum(1), f, rtol=1e-10)


@pytest.mark.parametrize("which", ["max", "min"])
def test_activation_max_min_restrict_to_ten_percent(which):
    m = _net()
    R, rec = nfr.attribute(m, X, None, f"activation_{which}", layer=2, record=True)
    A = rec["activation"][2].reshape(3, -1)
    seed = rec["relevance"][2].reshape(3, -1)
    for b in range(3):
        nz = A[b][A[b] != 0]
        kept = seed[b][seed[b] != 0]
        assert kept.numel() == max(1, round(0.1 * nz.numel()))
        other = nz[~torch.isin(nz, kept)]
        if which == "max":
            assert kept.min() >= other.max()
        else:
            assert kept.max() <= other.min()
    full = nfr.attribute(m, X, None, "activation", layer=2)
    assert not torch.allclose(R, full)
    R2 = nfr.attribute(m, X, None, f"activation_{which}", layer=2, below="gbp")
    assert R2.shape == X.shape and not torch.allclose(R2, R)


def test_composite_is_a_mapping_layer_to_rule():
    m = _net()
    comp = {1: "grad", 2: "grad", 3: "gbp", 4: "gbp"}
    C = nfr.cascade(m, X, 2, "gbp", levels=[2])
    assert torch.allclose(nfr.attribute(m, X, 2, "grad", composite=comp, bottom=False), C[0],
                          rtol=1e-12, atol=1e-14)
    with pytest.raises(NFRError, match="valid rules"):
        nfr.attribute(m, X, 2, "grad", composite={1: "bogus"})


def test_alignment():
    x = torch.randn(4, 3, 5, 5, dtype=DT)
    assert torch.allclose(nfr.alignment(x, x), torch.ones(4, dtype=DT))
    assert torch.allclose(nfr.alignment(-2 * x, x), -torch.ones(4, dtype=DT))
    z = nfr.alignment(torch.zeros_like(x), x)
    assert torch.equal(z, torch.zeros(4, dtype=DT))
    with pytest.raises(NFRError):
        nfr.alignment(x, x[:, :2])


def test_float32_and_float64_agree():
    m = _net()
    r64 = nfr.attribute(m, X, 1, "zplus")
    m32 = _net().float()
    r32 = nfr.attribute(m32, X.float(), 1, "zplus")
    assert r32.dtype == torch.float32 and r64.dtype == DT
    assert torch.allclose(r32.double(), r64, rtol=1e-4, atol=1e-5 * float(r64.abs().max()))


def test_bench_small_runs_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "nfr.bench", "--small", "--repeats", "1", "--out",
                    str(out)], check=True, cwd=root, capture_output=True,
                   env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    res = json.loads(out.read_text())
    assert {"gbp", "zplus", "cascade_gbp_all_levels", "plain_gradient"} <= set(res["seconds"])
    assert all(v > 0 for v in res["seconds"].values())
    # sandwich design: every method's ratio is the median of its per-round ratios
    for k, v in res["ratio_per_round"].items():
        assert len(v) == 1 and abs(res["ratio_to_plain_gradient"][k] - v[0]) < 1e-12
        lo, hi = res["ratio_quartiles"][k]
        assert lo <= res["ratio_to_plain_gradient"][k] <= hi
