"""The explorables' data files are what the package computes (a part of each is recomputed here);
tests/test_browser.py drives the widgets themselves."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from nfr import explorables as E
from nfr.errors import NFRError


@pytest.fixture(scope="module")
def committed():
    return {name: E.read(E.STATIC / f"{name}-data.js") for name in ("theorem1", "cascade")}


def test_data_files_register_both_explorables(committed):
    t1, cas = committed["theorem1"], committed["cascade"]
    assert t1["widths"] == [2 ** k for k in range(2, 15)] and t1["dims"] == [2, 64]
    for d in ("2", "64"):
        assert set(t1["sweeps"][d]) == {"gaussian", "sphere", "uniform"}
        for law, s in t1["sweeps"][d].items():
            assert (s["kappa"] is None) == (law == "uniform")
            assert all(len(s[r]["mean"]) == len(t1["widths"]) for r in t1["rules"])
    assert cas["levels"] == list(range(17)) and set(cas["nets"]) == {"trained", "random"}
    for net in cas["nets"].values():
        for r in cas["rules"]:
            assert np.shape(net["alpha"][r]) == (3, 17) and np.shape(net["maps"][r]) == (3, 17)
            assert all(u.startswith("data:image/png;base64,") for row in net["maps"][r] for u in row)
    # the script tag loads these through explorables.js: the three files ship together
    assert (E.STATIC / "explorables.js").exists()


def test_theorem1_data_is_the_sweep(committed):
    t1 = committed["theorem1"]
    small = t1["widths"][:7]                         # N = 4..256: a few seconds
    fresh = E.theorem1_data(widths=small, n_seeds=t1["n_seeds"], seed=t1["seed"], q=t1["q"])
    for d, laws in fresh["sweeps"].items():
        for law, s in laws.items():
            c = t1["sweeps"][d][law]
            assert s["limit"] == pytest.approx(c["limit"], abs=2e-5) and s["kappa"] == c["kappa"]
            for r in t1["rules"]:
                for k in ("mean", "lo", "hi"):
                    np.testing.assert_allclose(s[r][k], c[r][k][:7], atol=2e-5, err_msg=f"d={d} {law} {r} {k}")
    # Theorem 1's rate is the prediction the widget draws: GBP at the largest width within 10%
    g = t1["sweeps"]["64"]["gaussian"]
    N = t1["widths"][-1]
    assert (1 - g["gbp"]["mean"][-1]) * 2 * N / g["kappa"] == pytest.approx(1, rel=0.1)


def _pixels(url: str) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))), dtype=int)


def test_cascade_data_is_the_engine(committed, one_thread):
    cas = committed["cascade"]
    fresh = E.cascade_data(n_images=3, seed=cas["seed"], rules=("gbp",), nets=("random",))
    np.testing.assert_allclose(fresh["nets"]["random"]["alpha"]["gbp"], cas["nets"]["random"]["alpha"]["gbp"],
                               atol=2e-4)
    assert fresh["labels"] == cas["labels"] and fresh["nets"]["random"]["target"] == cas["nets"]["random"]["target"]
    for i in range(3):
        assert np.abs(_pixels(fresh["images"][i]) - _pixels(cas["images"][i])).max() <= 1
        for n in (0, 8, 16):
            a, b = _pixels(fresh["nets"]["random"]["maps"]["gbp"][i][n]), _pixels(cas["nets"]["random"]["maps"]["gbp"][i][n])
            assert np.abs(a - b).max() <= 1, (i, n)
    # level 0 is the raw gradient for every rule, and the trained net's maps differ from the random one's
    for net in cas["nets"].values():
        a0 = {r: tuple(np.asarray(net["alpha"][r])[:, 0]) for r in cas["rules"]}
        assert len(set(a0.values())) == 1
    assert cas["nets"]["trained"]["maps"]["gbp"][0][16] != cas["nets"]["random"]["maps"]["gbp"][0][16]


def test_unknown_law_or_network_raises():
    with pytest.raises(NFRError, match="weight law"):
        E.theorem1_data(laws=("cauchy",))
    with pytest.raises(NFRError, match="network or rule"):
        E.cascade_data(nets=("imagenet",))


def test_to_js_round_trips(tmp_path):
    p = tmp_path / "x-data.js"
    p.write_text(E.to_js("x", {"a": [1, 2.5], "b": "c"}))
    assert E.read(p) == {"a": [1, 2.5], "b": "c"}
