"""``python -m nfr nie`` (seed 002 Sec. 3.2 / Fig 2) and ``python -m nfr failure`` (seed 001 Fig 7).

End to end through :func:`nfr.cli.main` at tiny settings, plus checks with known answers: the torch
GBP of the three-layer CNN equals the NumPy reference (eq 6) in float64; at a large number of
filters the fitted scale matches the constant derived in chapter 11 within a tolerance taken from
the noise model (and is a quarter of the printed one); the failure experiment's per-layer profile
equals :func:`nfr.failure.layer_profile` computed directly.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nfr import experiments as X
from nfr.cli import main
from nfr.errors import NFRError
from nfr.experiments.nie import draw_gbp, gbp_conv
from nfr.reference import nie as ref
from nfr.setup import load_setup

TINY_NIE = ["nie", "--filters", "8", "--kernel", "3", "--seeds", "1", "--size", "16", "--quiet"]


def _rc(argv) -> int:
    """main's exit status, also when argparse refuses an option (it exits with status 2)."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


# ------------------------------------------------------------------ nie
def test_nie_cli_end_to_end(tmp_path, capsys):
    assert main(TINY_NIE + ["--out", str(tmp_path)]) == 0
    d = json.loads((tmp_path / "nie.json").read_text())
    assert d["experiment"] == "nie" and (tmp_path / "nie.png").exists()
    assert {"settings", "t4", "config", "figures"} <= set(d)
    st = d["settings"][0]
    for key in ("cos_x", "cos_E", "scale", "ratio_printed", "ratio_derived", "ratio_sd_pred",
                "ratio_E", "border_centre", "pred_coverage", "residual_x", "residual_E"):
        assert key in st, key
    assert st["N"] == 8 and st["k"] == 3 and st["p"] == 9
    assert "scale/printed" in capsys.readouterr().out


def test_nie_on_photos_and_channels(tmp_path):
    """The smoke setting of tests/test_reproduce.py (one photo at 32 px) with both colour modes."""
    for ch, cin in (("gray", 1), ("rgb", 3)):
        assert main(["nie", "--data", "samples", "--n-images", "1", "--size", "32", "--filters", "8",
                     "--kernel", "3,7", "--seeds", "1", "--channels", ch, "--quiet",
                     "--out", str(tmp_path / ch)]) == 0
        d = json.loads((tmp_path / ch / "nie.json").read_text())
        assert d["settings"][0]["p"] == cin * 9 and len(d["settings"]) == 2


def test_nie_rejects_model_and_weights(tmp_path, capsys):
    """nie draws its own networks: it has no --model / --weights option (nor Config field)."""
    assert _rc(TINY_NIE + ["--model", "vgg16", "--out", str(tmp_path)]) == 2
    assert "unrecognized arguments: --model vgg16" in capsys.readouterr().err
    assert _rc(TINY_NIE + ["--weights", "random", "--out", str(tmp_path)]) == 2
    assert "unrecognized arguments: --weights random" in capsys.readouterr().err
    with pytest.raises(NFRError, match="has no option model, weights"):
        X.run("nie", model="vgg16", weights="random")
    assert main(TINY_NIE + ["--kernel", "9", "--out", str(tmp_path)]) == 2   # no centre left


@pytest.mark.parametrize("stride,cin,H", [(1, 1, 9), (2, 1, 10), (1, 3, 8), (3, 2, 11)])
def test_gbp_conv_equals_numpy_reference(stride, cin, H):
    """The torch convolution form of eq 6 == nfr.reference.nie.gbp on the same weights (float64)."""
    k, N = 3, 5
    shape = (H, H + 1) if cin == 1 else (cin, H, H + 1)
    x = np.random.default_rng(stride + cin).standard_normal(shape)
    idx = ref.patch_index(shape, k, stride)
    Ho, Wo = (H - k) // stride + 1, (H + 1 - k) // stride + 1
    assert idx.shape[1] == Ho * Wo
    W, V = ref.random_weights(cin * k * k, N, idx.shape[1], 2, c=0.7, seeds=[3, 4])
    want = ref.gbp(x, W, V, 1, k, stride)
    for s in range(2):
        Wc = torch.from_numpy(W[s].T.reshape(N, cin, k, k).copy())
        Vc = torch.from_numpy(V[s][:, 1].reshape(N, Ho, Wo).copy())
        got = gbp_conv(torch.from_numpy(x.reshape((cin,) + shape[-2:])), Wc, Vc, stride)
        np.testing.assert_allclose(got.numpy().reshape(shape), want[s], atol=1e-12)


def test_draw_gbp_chunking_does_not_change_the_map():
    x = torch.from_numpy(ref.sign_image((1, 12, 12), 0))
    a = draw_gbp(x, 7, 3, 0.5, 1, seed=5, chunk=7)
    b = draw_gbp(x, 7, 3, 0.5, 1, seed=5, chunk=7)
    assert torch.equal(a, b) and a.dtype == torch.float64 and a.abs().sum() > 0


def test_nie_scale_matches_the_derived_constant_at_large_n():
    """N = 1024 filters of 3 x 3 on a 16 x 16 random-sign image (equal patch norms, the theorem's
    assumption), 2 networks: the fitted interior scale over the derived constant c^2 p N / (2 pi C0)
    is 1 within 4 standard errors of the noise model (ratio_sd_pred / sqrt(networks), about 0.008
    here, so a tolerance near 0.03), and so a quarter of the printed constant 2 c^2 p N / (pi C0).
    The border/centre ratio of |s| matches the coverage prediction (0.483 here) within 10%."""
    res = X.run("nie", data="signs", n_images=1, size=16, filters=[1024], kernel=[3], seeds=2, c=0.5,
                quiet=True)
    st = res["settings"][0]
    sd = st["ratio_sd_pred"]["mean"]
    assert 0.005 < sd < 0.02                                   # the model's own size, not tuned
    tol = 4 * sd / math.sqrt(2)
    assert abs(st["ratio_derived"]["mean"] - 1) < tol, (st["ratio_derived"], tol)
    assert abs(st["ratio_printed"]["mean"] - 0.25) < tol / 4
    assert math.isclose(st["C0"][0], 3 / 16)                     # k / sqrt(d) for the sign image
    assert abs(st["ratio_E"]["mean"] - 1) < tol
    bc, pred = st["border_centre"]["mean"], st["pred_coverage"]["mean"]
    cov = ref.coverage((16, 16), 3)
    band = np.pad(np.zeros((12, 12), bool), 2, constant_values=True)
    assert math.isclose(pred, cov[band].mean() / cov[~band].mean())
    assert abs(bc / pred - 1) < 0.1
    # T4: the noise falls like 1 / sqrt(N) (pi / sqrt(N) for one channel at stride 1)
    assert abs(st["residual_E"]["mean"] / st["residual_E_pred"]["mean"] - 1) < 0.25
    assert abs(st["residual_E_pred"]["mean"] * math.sqrt(1024) / math.pi - 1) < 0.2


# ------------------------------------------------------------------ failure
FAIL_ARGS = ["--model", "cifar_resnet20", "--weights", "random", "--data", "samples", "--size", "32",
             "--n-images", "2", "--layers", "1,2", "--quiet"]


def test_failure_cli_and_profile_equals_layer_profile(tmp_path, capsys):
    from nfr import failure as FA
    assert main(["failure", *FAIL_ARGS, "--out", str(tmp_path)]) == 0
    d = json.loads((tmp_path / "failure.json").read_text())
    assert {"profiles", "per_image", "summary", "report", "groups", "fades", "layers"} <= set(d)
    assert (tmp_path / "failure.png").exists() and (tmp_path / "failure_strips.png").exists()
    assert d["layers"] == [1, 2] and d["config"]["below"] == "gbp"
    assert "alignment: rho" in capsys.readouterr().out
    s = load_setup("cifar_resnet20", "random", "samples", 2, 32, "cpu", 0)
    want = FA.layer_profile(s.model, s.x, [1, 2], below="gbp")
    for m in FA.MEASURES:
        np.testing.assert_allclose(np.array(d["per_image"][m]), want[m], rtol=1e-6, atol=1e-9)
        # the group profile is the mean over the group's images of the same numbers
        idx = d["groups"]["all"]
        np.testing.assert_allclose(d["profiles"]["all"][m]["mean"], want[m][:, idx].mean(1), rtol=1e-6)
    # groups follow the predictions: wrong + correct partition the images (the samples have labels)
    lab, pred = np.array(s.labels), np.array(s.config["predictions"])
    assert d["groups"].get("wrong", []) == np.nonzero(pred != lab)[0].tolist()
    assert d["groups"].get("correct", []) == np.nonzero(pred == lab)[0].tolist()
    assert d["summary"]["all"]["alignment"]["first"] == pytest.approx(np.median(want["alignment"][0]))


def test_failure_rejects_bad_layers_and_rules(tmp_path, capsys):
    assert main(["failure", *FAIL_ARGS[:-3], "--layers", "0", "--out", str(tmp_path)]) == 2
    assert "--layers must be >= 1, got 0" in capsys.readouterr().err   # refused before running
    assert main(["failure", *FAIL_ARGS[:-3], "--layers", "999", "--out", str(tmp_path)]) == 2
    assert "out of range" in capsys.readouterr().err                   # the model's own L
    assert main(["failure", *FAIL_ARGS, "--rules", "gbp,zplus", "--out", str(tmp_path)]) == 2


def test_nie_reads_an_image_file_and_splits_channels(tmp_path):
    """--data PATH with a PNG written here; --channels each makes three grey inputs of one photo,
    and a constant channel is refused with a message (nothing to rebuild)."""
    from PIL import Image
    g = np.random.default_rng(0)
    a = (g.random((20, 24, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "photo.png")
    assert main(["nie", "--data", str(tmp_path / "photo.png"), "--size", "16", "--filters", "4",
                 "--kernel", "3", "--seeds", "1", "--channels", "each", "--quiet",
                 "--out", str(tmp_path / "o")]) == 0
    d = json.loads((tmp_path / "o" / "nie.json").read_text())
    assert d["config"]["inputs"] == ["photo.png:R", "photo.png:G", "photo.png:B"]
    assert len(d["settings"][0]["C0"]) == 3
    a[..., 1] = 7
    Image.fromarray(a).save(tmp_path / "flat.png")
    assert main(["nie", "--data", str(tmp_path / "flat.png"), "--size", "16", "--filters", "4",
                 "--kernel", "3", "--seeds", "1", "--channels", "each", "--quiet",
                 "--out", str(tmp_path / "o")]) == 2
    assert main(["nie", "--data", str(tmp_path / "missing.png"), "--size", "16", "--quiet",
                 "--out", str(tmp_path / "o")]) == 2
