"""Tests of the randomization-distribution and competing-theory helpers: distribution curves
(nfr.experiments.distributions), colour fidelity (nfr.metrics), the cube's tilt (nfr.reference.theorem1),
relevance spectra (nfr.spectrum) and the chapters' figures (nfr.plotting)."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from nfr import metrics, plotting, spectrum
from nfr.experiments import distributions
from nfr.errors import NFRError
from nfr.reference import theorem1 as t1


def small_net(seed=0):
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        for m in net:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.bias.zero_()    # bias-free, as the theory's networks
    return net.eval()


def images(n=3, seed=0):
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_halfspace_expansion_gaussian_exact_and_cube_size():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(20)
    # gamma_2 = 0: the exact Gaussian half-space mean x / (sqrt(2 pi) ||x||)
    np.testing.assert_allclose(t1.halfspace_mean_expansion(x, 0.0), x / (math.sqrt(2 * math.pi) * np.linalg.norm(x)))
    # Monte Carlo for the Gaussian: parallel to x, norm 1/sqrt(2 pi)
    w = rng.standard_normal((200_000, 20))
    mc = w[w @ x > 0].sum(0) / len(w)
    assert t1.angle(mc, x) < 0.03
    assert abs(np.linalg.norm(mc) - 1 / math.sqrt(2 * math.pi)) < 0.01
    # uniform cube: the first-order tilt has the size of the exact one (chapter 6's check)
    ex = t1.cube_half_mean(x)
    ratio = t1.angle(ex, x) / t1.angle(t1.halfspace_mean_expansion(x, -1.2), x)
    assert 0.5 < ratio < 2.0
    with pytest.raises(NFRError):
        t1.halfspace_mean_expansion(np.zeros(3), -1.2)


def test_angle():
    assert t1.angle([1, 0], [0, 2]) == pytest.approx(math.pi / 2)
    assert t1.angle([1, 1], [2, 2]) == pytest.approx(0.0, abs=1e-7)


def test_colour_fidelity():
    x = images()
    f = metrics.colour_fidelity(x, x)
    np.testing.assert_allclose(f["luminance"], 1.0, atol=1e-12)
    np.testing.assert_allclose(f["chroma"], 1.0, atol=1e-12)
    grey = x.mean(1, keepdim=True).expand_as(x)       # right luminance, no colour at all
    g = metrics.colour_fidelity(grey, x)
    np.testing.assert_allclose(g["luminance"], 1.0, atol=1e-12)
    np.testing.assert_allclose(g["chroma"], 0.0, atol=1e-12)
    swapped = x[:, [2, 1, 0]]                         # same luminance, colours permuted
    assert np.all(metrics.colour_fidelity(swapped, x)["chroma"] < 0.99)
    with pytest.raises(NFRError):
        metrics.colour_fidelity(x[:, :1], x[:, :1])


def test_distribution_curves_shapes_determinism_and_model_unchanged():
    net, x = small_net(), images()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    res = distributions.curves(net, x, rules=("gbp", "zplus"), seed=1, levels=[0, 2, 4])
    assert res["levels"] == [0, 2, 4]
    for d in ("gaussian", "ring", "uniform"):
        for r in ("gbp", "zplus"):
            assert res["curves"][d][r].shape == (3, 3)
            assert res["maps"][d][r].shape == x.shape
            assert np.all(np.abs(res["curves"][d][r]) <= 1 + 1e-6)
    again = distributions.curves(net, x, rules=("gbp",), seed=1, levels=[0, 2, 4])
    np.testing.assert_array_equal(res["curves"]["ring"]["gbp"], again["curves"]["ring"]["gbp"])
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    # level L map = the full rule's map w/o B on the randomized net
    import nfr
    m = nfr.randomize(net, "uniform", 1)
    t = m(x).argmax(1)
    R = nfr.attribute(m, x, t, "gbp", bottom=False).double()
    torch.testing.assert_close(res["maps"]["uniform"]["gbp"], R)
    # in batches: the same curves and maps
    b = distributions.curves(net, x, rules=("gbp", "zplus"), seed=1, levels=[0, 2, 4], batch_size=2)
    for d in ("gaussian", "ring", "uniform"):
        np.testing.assert_allclose(b["curves"][d]["zplus"], res["curves"][d]["zplus"], atol=1e-6)
        torch.testing.assert_close(b["maps"][d]["zplus"], res["maps"][d]["zplus"])


def _fake(curves, maps):
    return {"curves": curves, "maps": maps}


def test_c10_criteria_verdicts():
    x = images(2)
    good, bad = x.clone(), x[:, [2, 1, 0]].clone()
    lv = np.array([[0.1, 0.1], [0.5, 0.5], [0.8, 0.8]])
    curves = {"gaussian": {"gbp": lv}, "ring": {"gbp": lv + 0.01}, "uniform": {"gbp": lv - 0.2}}
    c = distributions.c10_criteria(_fake(curves, {"gaussian": {"gbp": good}, "ring": {"gbp": good}, "uniform": {"gbp": bad}}), x)
    assert c["a"] and c["b"] and c["c"] and c["verdict"] == "confirmed"
    assert c["uniform_gap"]["gbp"] == pytest.approx(0.2)
    curves["uniform"]["gbp"] = lv + 0.02
    c = distributions.c10_criteria(_fake(curves, {d: {"gbp": good} for d in curves}), x)
    assert not c["b"] and not c["c"] and c["verdict"] == "refuted"
    c = distributions.c10_criteria(_fake(curves, {"gaussian": {"gbp": good}, "ring": {"gbp": good}, "uniform": {"gbp": bad}}), x)
    assert c["verdict"] == "partly"


def test_relevance_spectrum_signs_and_rank():
    net, x = small_net(), images(1)
    targets = list(range(6))
    z = spectrum.relevance_spectrum(net, x, targets, "zplus")
    g = spectrum.relevance_spectrum(net, x, targets, "grad")
    assert z["L"] == g["L"] == 4 and len(z["erank"]) == 5
    # at the top: one-hot start vectors of 6 classes -> effective rank 6
    assert z["erank"][4] == pytest.approx(6.0) and g["erank"][4] == pytest.approx(6.0)
    # z+ on non-negative hidden activations: every relevance vector has one sign (non-negative products)
    assert all(m == 0.0 for m in z["mixed"][1:4])
    assert max(g["mixed"][1:4]) > 0.1
    with pytest.raises(NFRError):
        spectrum.relevance_spectrum(net, images(2), targets, "gbp")


def test_plots_smoke():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = plotting.panel_curves([0, 1, 2], {"GBP": {"a": np.ones((3, 2)), "b": np.zeros((3, 2))}}, xlabel="N", ylabel="a")
    plt.close(fig)
    x = images(1)[0]
    fig = plotting.map_grid({"row": {"image": x.permute(1, 2, 0).clamp(0, 1), "map": x}})
    plt.close(fig)
    assert plotting.rgb_map(torch.zeros(3, 2, 2)).shape == (2, 2, 3)


def test_chapter7_plots_smoke():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sp = {"gbp": {"erank": [1.0, 2.0, 3.0], "mixed": [0.1, 0.2, 0.0]}}
    plt.close(plotting.rank_panels(sp, sp, 2, 2))
    st = {"mean": 0.5, "std": 0.1}
    rr = {"original": {"gbp": st}, "random": {"3": {"gbp": st}}, "removal": {"3": {"gbp": st}}}
    plt.close(plotting.removal_bars({"a": rr, "b": rr}, ["gbp"]))
    cur = {k: {"mean": [0.1, 0.2]} for k in ("max", "min", "cos_to_ordinary_max", "cos_to_ordinary_min")}
    act = {"layers": [1, 2], "curves": {"gbp": cur}, "ordinary": {"gbp": st}}
    plt.close(plotting.activation_panels({"a": act}))
    sr = {"steps": [0, 1], "ssim": {"gbp": {"mean": [1, 0.5]}}, "spearman": {"gbp": {"mean": [1, 0.4]}}}
    plt.close(plotting.sanity_panels({"a": sr}, {"gbp": "GBP"}))
