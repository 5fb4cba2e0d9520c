"""The seed 002 experiments of nfr.experiments.trgbp_sanity, .methods and .trgbp through the CLI: trgbp-sanity (Figs 5, 9, 10),
methods (Fig 4) and the TR-GBP pipeline figure of the trgbp experiment (Fig 1)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nfr.cli import main
from nfr.experiments.methods import method_maps, negative_share
from nfr.experiments.trgbp import pipeline_figure, pipeline_layers, pipeline_maps
from nfr.experiments.trgbp_sanity import map_stats
from nfr.setup import load_setup

TINY = ["--model", "cifar_resnet20", "--weights", "random", "--data", "samples", "--size", "32",
        "--n-images", "2", "--quiet"]
L20 = 20  # weight layers of cifar_resnet20: 19 convolutions and the classifier


def _run(args, out):
    rc = main(args + TINY + ["--out", str(out)])
    return rc, (json.loads((out / f"{args[0]}.json").read_text()) if rc == 0 else None)


# ------------------------------------------------------------------------------ map statistics
def test_map_stats_known_answers():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(32, 32))
    same = map_stats(ref, ref, 2)
    assert same["spearman"] == 1.0 and same["ssim"] == pytest.approx(1.0, abs=1e-12)
    # the statistics compare |R|: a sign flip changes nothing
    assert map_stats(-ref, ref, 2)["spearman"] == 1.0
    # a decreasing function of |ref| reverses every rank
    assert map_stats(1 / (1 + np.abs(ref)), ref, 2)["spearman"] == pytest.approx(-1.0)
    assert map_stats(1 / (1 + np.abs(ref)), ref, 2)["ssim"] < 0.5
    # the map claim T3 predicts: uniform in the centre, half as strong on the 2-px border band
    flat = np.ones((32, 32))
    flat[:2], flat[-2:], flat[:, :2], flat[:, -2:] = 0.5, 0.5, 0.5, 0.5
    st = map_stats(flat, ref, 2)
    assert st["border_centre"] == pytest.approx(0.5) and st["centre_cv"] == pytest.approx(0.0)
    assert map_stats(ref, ref, 2)["centre_cv"] > 0.5


# ------------------------------------------------------------------------------ trgbp-sanity
def test_trgbp_sanity_end_to_end(tmp_path):
    rc, res = _run(["trgbp-sanity", "--steps", str(L20)], tmp_path)
    assert rc == 0
    assert res["experiment"] == "trgbp-sanity" and res["steps"] == [0, L20]
    assert res["config"]["L"] == L20 and res["config"]["border"] == 2  # 16 px at 224 -> 2 at 32
    assert set(res["curves"]) == {"trgbp", "eq9", "gbp"}
    for name, c in res["curves"].items():
        assert set(c) == {"spearman", "ssim", "border_centre", "centre_cv"}
        # step 0 is the un-randomized map itself
        assert c["spearman"]["mean"][0] == 1.0 and c["ssim"]["mean"][0] == 1.0, name
        # every layer random: the map changes (GBP too, its weights are new)
        assert c["spearman"]["mean"][-1] < 0.9 and c["ssim"]["mean"][-1] < 0.9, name
        assert all(len(v) == 2 for v in c["centre_cv"]["per_image"])
    lm = res["layer_maps"]
    assert lm["steps"] == [0, L20] and lm["layers"] and all(1 <= l <= L20 for l in lm["layers"])
    assert set(res["figures"]) == {"trgbp_sanity.png", "trgbp_layers.png"}
    assert all((tmp_path / f).stat().st_size > 0 for f in res["figures"])


def test_trgbp_sanity_matches_cascade_maps(tmp_path):
    """The experiment's maps are nfr.trgbp.cascade_maps's: its statistics recomputed from there."""
    from nfr.trgbp import cascade_maps
    rc, res = _run(["trgbp-sanity", "--steps", "3,7", "--rules", "trgbp,eq9", "--bias", "zero",
                    "--top", "3", "--seed", "3"], tmp_path)
    assert rc == 0 and res["steps"] == [0, 3, 7]
    s = load_setup("cifar_resnet20", "random", "samples", 2, 32, seed=3)
    c = cascade_maps(s.model, s.x, s.target, [0, 3, 7], seed=3, bias="zero", top=3)
    for j, k in enumerate((3, 7), start=1):
        for name, which in (("eq9", 0), ("trgbp", 1)):
            for i in range(2):
                want = map_stats(c[k][which][i], c[0][which][i], 2)
                got = res["curves"][name]
                assert got["spearman"]["per_image"][i][j] == pytest.approx(want["spearman"], abs=1e-5)
                assert got["border_centre"]["per_image"][i][j] == pytest.approx(want["border_centre"], rel=1e-4)
                assert got["centre_cv"]["per_image"][i][j] == pytest.approx(want["centre_cv"], rel=1e-4)


@pytest.mark.parametrize("bad", [["--steps", "99"], ["--layers", "0"], ["--rules", "grad"]])
def test_trgbp_sanity_user_errors(tmp_path, bad, capsys):
    rc = main(["trgbp-sanity"] + bad + TINY + ["--out", str(tmp_path)])
    assert rc == 2 and "error" in capsys.readouterr().err


# ------------------------------------------------------------------------------ methods (Fig 4)
def test_methods_end_to_end(tmp_path):
    rc, res = _run(["methods", "--ig-steps", "2"], tmp_path)
    assert rc == 0 and res["experiment"] == "methods"
    st = res["stats"]
    assert list(st) == ["saliency", "gbp", "gig", "fullgrad", "gradcam", "cameras", "trgbp"]
    assert res["config"]["cam_layer"] == "layer3" and res["figures"] == ["methods.png"]
    for m, d in st.items():
        assert all(0 <= v <= 1 for v in d["ibd"]["per_image"]), m
        assert (d["alignment"] is None) == (m in ("fullgrad", "gradcam", "cameras", "trgbp")), m
    # saliency, GBP, GIG maps are |.| sums: no negative part; TR-GBP's eq 10 is signed
    assert st["saliency"]["negative_share"]["mean"] == 0.0 and st["gbp"]["negative_share"]["mean"] == 0.0
    assert 0 <= st["trgbp"]["negative_share"]["mean"] <= 1


def test_negative_share_known_answer():
    assert negative_share(np.array([[1.0, -3.0], [0.0, 0.0]])).tolist() == [0.75]
    v = negative_share(np.stack([np.ones((2, 2)), -np.ones((2, 2)), np.zeros((2, 2))]))
    assert v[0] == 0 and v[1] == 1 and np.isnan(v[2])


def test_methods_numbers_are_the_package_methods(tmp_path):
    import nfr
    from nfr.baselines import attribute_2d
    from nfr.predictable import ibd
    rc, res = _run(["methods", "--rules", "gbp,saliency,trgbp"], tmp_path)
    assert rc == 0
    s = load_setup("cifar_resnet20", "random", "samples", 2, 32)
    for m in ("gbp", "saliency", "trgbp"):
        R = attribute_2d(m, s.model, s.x, s.target)
        assert np.allclose(res["stats"][m]["ibd"]["per_image"], ibd(R, 2), atol=1e-6), m
    R = attribute_2d("trgbp", s.model, s.x, s.target)
    assert np.allclose(res["stats"]["trgbp"]["negative_share"]["per_image"],
                       (R.clamp(max=0).abs().flatten(1).sum(1) / R.abs().flatten(1).sum(1)).numpy())
    al = nfr.alignment(nfr.attribute(s.model, s.x, s.target, "gbp"), s.x)
    assert np.allclose(res["stats"]["gbp"]["alignment"]["per_image"], al.numpy(), atol=1e-6)
    # the 2D maps of the raw-map methods follow attribute_2d's conventions
    for m, kw in (("saliency", {}), ("gig", {"steps": 2})):
        R2, raw = method_maps(m, s.model, s.x[:1], s.target[:1], None, 2)
        assert raw.shape == s.x[:1].shape
        assert torch.allclose(R2, attribute_2d(m, s.model, s.x[:1], s.target[:1], **kw), atol=1e-6)


@pytest.mark.parametrize("bad", [["--cam-layer", "nope"], ["--target", "label"], ["--ig-steps", "0"],
                                 ["--rules", "zplus"]])
def test_methods_user_errors(tmp_path, bad, capsys):
    rc = main(["methods"] + bad + TINY + ["--out", str(tmp_path)])
    assert rc == 2 and "error" in capsys.readouterr().err


# ------------------------------------------------------------------------------ Fig 1 (pipeline)
def test_pipeline_parts_sum_to_trgbp():
    """The pipeline figure's panels: R^0 + sum psi(R^l) is eq 9 and eq 9 - top mean is trgbp()."""
    from nfr.trgbp import aggregate, layer_maps, randomize_biases, trgbp
    s = load_setup("cifar_resnet20", "random", "samples", 1, 32)
    model = randomize_biases(s.model, 1).eval()  # non-zero biases: the bias maps matter
    x = s.x[:1]
    p = pipeline_maps(model, x, top=5)
    assert p["cls"] == int(model(x).argmax(1)) == p["classes"][0] and len(p["bias_maps"]) == L20
    total = p["input_part"] + sum(p["bias_maps"].values())
    assert torch.allclose(total, p["eq9"], atol=1e-5)
    R0, maps, _ = layer_maps(model, x, p["cls"])
    assert torch.allclose(p["eq9"], aggregate(R0, maps)[0], atol=1e-5)
    assert float(sum(m.abs().sum() for m in p["bias_maps"].values())) > 0
    assert torch.allclose(p["trgbp"], trgbp(model, x)[0], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(p["trgbp"], p["eq9"], atol=1e-4)  # eq 10 removed a non-zero mean
    # another class than the top one: trgbp() with that target
    q = pipeline_maps(model, x, target=p["classes"][2], top=5)
    assert torch.allclose(q["trgbp"], trgbp(model, x, p["classes"][2])[0], atol=1e-4, rtol=1e-4)
    fig = pipeline_figure(s.raw[0], p)
    shown = pipeline_layers(p)
    assert len(shown) == 4 and all(p["bias_shapes"][l] != (1, 1) for l in shown)
    # one panel each: input, R^0, the shown psi(R^l), eq 9, the top-class mean, eq 10
    assert len(fig.axes) == 1 + 1 + len(shown) + 3


def test_trgbp_writes_the_pipeline_figure(tmp_path):
    rc, res = _run(["trgbp", "--top", "3"], tmp_path)
    assert rc == 0 and "trgbp_pipeline.png" in res["figures"]
    assert (tmp_path / "trgbp_pipeline.png").stat().st_size > 0
    pl = res["pipeline"]
    assert pl["cls"] == pl["classes"][0] == res["config"]["predictions"][0] and len(pl["classes"]) == 3


def test_help_lists_the_new_experiments(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "trgbp-sanity" in out and "methods" in out
