"""Table I maps (nfr.experiments.table1.maps) against nfr.attribute; similarity, edge/centre energy and the
cascade-trend criteria (nfr.metrics); the display table (nfr.plotting.Table), each on a hand-checkable case."""
import numpy as np
import pytest
import torch
import torch.nn as nn

import nfr
from nfr import NFRError
from nfr import metrics, plotting
from nfr.experiments import table1

DT = torch.float64


from _nets import X, small_cnn as _net  # noqa: E402


def test_table1_maps_match_attribute_with_and_without_bottom():
    m = _net()
    maps = table1.maps(m, X, 1, layer=2, low=-3.0, high=3.0)
    assert set(maps) == set(table1.METHODS)
    for r in table1.METHODS:
        kw = {"layer": 2} if r == "activation" else ({"low": -3.0, "high": 3.0} if r == "dtd" else {})
        for key, b in (("B", True), ("w/o B", False)):
            ref = nfr.attribute(m, X, 1, r, bottom=b, **kw)
            assert torch.allclose(maps[r][key], ref, rtol=1e-12, atol=1e-14), (r, key)
    with pytest.raises(NFRError):
        table1.maps(m, X, 1, methods=("activation",))


def test_map_cosine_is_alignment():
    a = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=DT)
    assert np.allclose(metrics.map_cosine(a, X), nfr.alignment(a, X).numpy(), atol=1e-12)
    assert metrics.map_cosine(torch.zeros_like(a), X).tolist() == [0.0, 0.0, 0.0]
    assert np.allclose(metrics.map_cosine(-2 * X, X), -1.0)


def test_similarity_matrix_symmetric_with_unit_diagonal():
    a = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(3), dtype=DT)
    s = metrics.similarity({"x": X, "2x": 2 * X, "a": a})
    assert s["names"] == ["x", "2x", "a"]
    for k in ("cosine", "ssim"):
        assert np.allclose(s[k], s[k].T) and np.allclose(np.diag(s[k]), 1.0)
    assert np.isclose(s["cosine"][0, 1], 1.0) and np.isclose(s["ssim"][0, 1], 1.0)  # scale-free
    assert abs(s["cosine"][0, 2]) < 0.5 and s["ssim"][0, 2] < 0.9
    assert s["per_image"]["ssim"].shape == (3, 3, 3)
    g = metrics.group_similarity(s, ["x", "2x"], control="a")
    assert g["cosine"][0] == pytest.approx(1.0)
    assert g["cosine"][1] == pytest.approx((s["cosine"][2, 0] + s["cosine"][2, 1]) / 2)
    with pytest.raises(NFRError):
        metrics.group_similarity(s, ["x"], control="a")


def test_edge_mask_of_a_photo_does_not_depend_on_its_batch():
    """The Sobel gradient is taken within each photo: a photo's mask is the same alone and among others
    (scipy's sobel on the [N, H, W] stack used to smooth across neighbouring photos)."""
    rng = np.random.default_rng(0)
    raw = rng.random((3, 3, 16, 16))
    alone = np.concatenate([metrics.edge_mask(raw[i:i + 1]) for i in range(3)])
    assert np.array_equal(metrics.edge_mask(raw), alone)
    assert np.array_equal(metrics.edge_mask(raw[::-1])[::-1], alone)


def test_edge_mask_finds_a_vertical_step():
    raw = torch.zeros(1, 3, 20, 20, dtype=DT)
    raw[..., 10:] = 1.0                       # a vertical edge between columns 9 and 10
    m = metrics.edge_mask(raw, q=0.9)
    assert m.shape == (1, 20, 20)
    assert m[0, :, 9:11].all() and not m[0, :, :8].any() and not m[0, :, 12:].any()
    with pytest.raises(NFRError):
        metrics.edge_mask(raw[:, :1])


def test_edge_and_centre_fractions_by_hand():
    raw = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4), dtype=DT)
    even = torch.ones(2, 3, 16, 16, dtype=DT)
    mask = metrics.edge_mask(raw)
    assert np.allclose(metrics.edge_fraction(even, mask), mask.reshape(2, -1).mean(1))
    on = torch.tensor(mask, dtype=DT)[:, None].expand(2, 3, 16, 16)
    assert np.allclose(metrics.edge_fraction(on, mask), 1.0)
    assert np.allclose(metrics.centre_fraction(even), 0.25)          # 8 x 8 box of 16 x 16
    centre = torch.zeros_like(even)
    centre[..., 4:12, 4:12] = -1.0                                  # |R| counts, sign does not
    assert np.allclose(metrics.centre_fraction(centre), 1.0)
    prof = metrics.location_profile(even, raw)
    assert np.allclose(prof["edges"], 1.0) and np.allclose(prof["centre"], 1.0)
    assert np.isnan(metrics.edge_fraction(torch.zeros_like(even), mask)).all()


def test_cascade_trend_and_dominance():
    t = metrics.cascade_trend([0.1, 0.1, 0.3, 0.2, 0.6])
    assert t["rise"] == pytest.approx(0.5) and t["max_drop"] == pytest.approx(0.1)
    assert 0.8 < t["spearman"] < 1.0
    assert metrics.cascade_trend([0, 1, 2, 3])["spearman"] == pytest.approx(1.0)
    act, rule = [0.1, 0.5, 0.2, 1.0], [0.1, 0.4, 0.3, 0.9]
    assert metrics.activation_dominance(act, rule) == pytest.approx(0.5)   # levels 1, 2
    assert metrics.activation_dominance(act, rule, levels=[1]) == 1.0
    with pytest.raises(NFRError):
        metrics.cascade_trend([1.0])


def test_rgb_map_and_table():
    R = torch.zeros(3, 4, 4, dtype=DT)
    R[0, 0, 0], R[1, 1, 1] = 10.0, -1.0
    img = plotting.rgb_map(R, pct=100)
    assert img.shape == (4, 4, 3) and img[0, 0, 0] == 1.0 and img[2, 2, 2] == 0.5
    assert img[1, 1, 1] == pytest.approx(0.45)
    assert np.allclose(plotting.rgb_map(torch.zeros(3, 2, 2)), 0.5)
    t = plotting.Table({"a": {"x": 0.12345, "y": (1.0, 0.5)}, "b<c": {"x": 2, "y": "n/a"}}, ["x", "y"])
    assert "0.123" in str(t) and "1.000 ± 0.500" in str(t) and str(t).count("\n") == 2
    html = t._repr_html_()
    assert html.count("<tr>") == 3 and "<td>1.000 ± 0.500</td>" in html and "b&lt;c" in html


def test_cascade_experiment_on_a_level_subset_matches_all_levels():
    """The cascade experiment's ``levels`` (chapter 5 measures a subset of the ResNet-56's 57
    levels): the same values as the full curve at those levels, and the engine's own cascade."""
    from nfr import experiments
    from nfr.setup import load_setup
    kw = dict(model="cifar_resnet20", weights="random", n_images=3, seed=1, dtype="float64",
              rules=["gbp", "activation"], quiet=True)
    full = experiments.run("cascade", **kw)
    sub = experiments.run("cascade", **kw, levels=[0, 2, 20])
    assert full["levels"] == list(range(21)) and sub["levels"] == [0, 2, 20]
    s = load_setup("cifar_resnet20", "random", "samples", 3, seed=1, dtype="float64")
    for r in ("gbp", "activation"):
        f, g = np.array(full["curves"][r]["per_image"]), np.array(sub["curves"][r]["per_image"])
        assert f.shape == (3, 21) and np.allclose(f[:, [0, 2, 20]], g, rtol=0, atol=1e-12)
        C = nfr.cascade(s.model, s.x, s.target, r)
        assert np.allclose(f[:, 2], nfr.alignment(C[2], s.x).numpy(), atol=1e-12)
    assert np.allclose(full["curves"]["activation"]["mean"][-1], 1.0)


def test_load_setup_float64_and_experiment_dtype():
    """dtype='float64' gives the model, inputs and DTD bounds in float64; an experiment passes it on."""
    from nfr import experiments
    from nfr.setup import load_setup
    s = load_setup("cifar_resnet20", "random", "samples", 2, dtype="float64")
    assert s.x.dtype == s.low.dtype == s.high.dtype == torch.float64
    assert next(s.model.parameters()).dtype == torch.float64 and s.config["dtype"] == "float64"
    s32 = load_setup("cifar_resnet20", "random", "samples", 2)
    torch.testing.assert_close(s.x.float(), s32.x)
    r = experiments.run("removal", model="cifar_resnet20", weights="random", data="samples", n_images=2,
                        seed=0, dtype="float64", rules=["gbp"], k=[1], quiet=True)
    assert r["config"]["dtype"] == "float64"
    with pytest.raises(NFRError, match="dtype"):
        load_setup("cifar_resnet20", "random", "samples", 2, dtype="float16")


def test_table1_maps_alphabeta_has_its_bottom_process():
    """Regression: table1_maps re-implemented the bottom process and returned alphabeta's map
    w/o B as its "B" map. Now B = the engine's own output with bottom=True, for every method."""
    import torch

    from nfr.engine.attribute import attribute
    g = torch.Generator().manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 6 * 6, 5)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    x = torch.rand(2, 3, 6, 6, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 3])
    methods = ("grad", "grad_x_input", "gbp", "rectgrad", "zplus", "alphabeta")
    maps = table1.maps(net, x, t, methods)
    for m in methods:
        assert torch.allclose(maps[m]["B"], attribute(net, x, t, m, bottom=True), rtol=1e-12, atol=1e-14), m
        assert torch.allclose(maps[m]["w/o B"], attribute(net, x, t, m, bottom=False), rtol=1e-12, atol=1e-14), m
    assert not torch.allclose(maps["alphabeta"]["B"], maps["alphabeta"]["w/o B"])


def test_map_figures_carry_their_colour_key():
    """Every map figure of the book says how its colours read (issue: maps without a colour scale)."""
    import matplotlib
    matplotlib.use("Agg")
    from nfr import plotting as P
    from nfr.errors import NFRError
    rng = np.random.default_rng(0)
    m = rng.standard_normal((3, 8, 8))
    figs = {"map_table": (P.map_table(rng.random((3, 8, 8)), {"a": {"gbp": m}}, ["gbp"], pct=99.5), "99.5th percentile"),
            "show_maps": (P.show_maps({"a": m[0]}), "max |R|"),
            "map_grid": (P.map_grid({"r": {"c": m}}), "max |R|"),
            "layer_strips": (P.layer_strips(rng.random((1, 8, 8, 3)), m[None, None], [1]), "99.5th percentile")}
    for name, (fig, scale) in figs.items():
        keys = [ax for ax in fig.axes if "the map's own" in ax.get_xlabel()]
        assert len(keys) == 1, name
        assert scale in keys[0].get_xlabel(), (name, keys[0].get_xlabel())
        assert [t.get_text() for t in keys[0].get_xticklabels()] == ["\u2212v", "0", "+v"]
        assert min(t.get_fontsize() for t in keys[0].get_xticklabels()) >= 8
    grey = P.show_maps({"a": np.abs(m[0])}, signed=False).axes[-1]       # imshow's own min..max scaling
    assert [t.get_text() for t in grey.get_xticklabels()] == ["min", "", "max"] and "minimum" in grey.get_xlabel()
    with pytest.raises(NFRError, match="kind"):
        P.map_key(figs["map_grid"][0], "hsv")


def test_book_figures_record_their_smallest_drawn_text():
    """figure_png writes the smallest drawn text (pixels of the PNG) into the PNG; png_text_px reads it
    back. Hidden and empty text does not count; a figure without text records none; a PNG drawn
    without figure_png has no record (so the chapter test cannot pass on an unrecorded figure)."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from nfr import plotting as P

    fig, ax = plt.subplots(figsize=(3, 2), dpi=100)
    ax.plot([0, 1])
    ax.tick_params(labelsize=11)
    ax.set_title("title", fontsize=13)
    ax.set_xlabel("x", fontsize=9.5)
    ax.text(0.5, 0.5, "hidden", fontsize=4, visible=False)
    ax.text(0.2, 0.2, "", fontsize=3)
    assert P.png_text_px(P.figure_png(fig)) == pytest.approx(9.5 * 100 / 72, abs=0.01)
    assert P.png_text_px(P.figure_png(fig, dpi=200)) == pytest.approx(9.5 * 200 / 72, abs=0.01)
    ax.legend(["line"], fontsize=6)
    assert P.png_text_px(P.figure_png(fig)) == pytest.approx(6 * 100 / 72, abs=0.01)
    from matplotlib.figure import Figure
    bare = Figure(figsize=(3, 2), dpi=100)  # made without pyplot (as the experiments' figures are)
    bare.add_subplot().set_title("bare", fontsize=10)
    bare.axes[0].tick_params(labelsize=12)
    assert P.png_text_px(P.figure_png(bare)) == pytest.approx(10 * 100 / 72, abs=0.01)
    from PIL import Image
    assert Image.open(io.BytesIO(P.figure_png(bare))).text[P.TEXT_PX_KEY] == "13.89"  # a valid PNG chunk
    blank, bax = plt.subplots()
    bax.axis("off")
    assert P.png_text_px(P.figure_png(blank)) == float("inf")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert P.png_text_px(buf.getvalue()) is None
    plt.close("all")


def test_one_style_per_method_and_maps_beside_their_input():
    """The book's palette: a method has one style whether it is named by key or label, GBP and
    RectGrad stay distinguishable where their curves coincide; show_maps puts the input first and
    clips at the stated percentile."""
    import matplotlib
    matplotlib.use("Agg")
    from nfr import plotting as P

    assert P.style("gbp") == P.style("GBP") and P.style("zplus") == P.style("LRP(z+)") == P.style("z+")
    g, r = P.style("gbp"), P.style("rectgrad")
    assert g["color"] != r["color"] and (g["ls"], g["marker"]) != (r["ls"], r["marker"])
    assert len({s["color"] for s in P.STYLES.values()}) == len(P.STYLES)
    assert P.style("something else") == {}
    rng = np.random.default_rng(1)
    m = rng.standard_normal((8, 8))
    m[0, 0] = 100.0
    photo = rng.random((3, 8, 8))
    fig = P.show_maps({"a": m, "b": m}, ncols=1, image=photo, pct=90)
    first = fig.axes[0]
    assert first.get_title() == "input" and np.allclose(first.images[0].get_array(), photo.transpose(1, 2, 0))
    vmax = fig.axes[1].images[0].norm.vmax
    assert vmax == pytest.approx(np.percentile(np.abs(m), 90)) and vmax < 100
    assert "90th percentile" in fig.axes[-1].get_xlabel()
