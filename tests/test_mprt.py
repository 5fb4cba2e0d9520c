"""nfr.mprt: the MPRT's layer orders, preprocessing, similarities, sMPRT, eMPRT and controls.

Oracles: Quantus 0.6's MPRT (every layer order) and EfficientMPRT on the same randomized weights
(``nfr.mprt.quantus_steps`` reproduces Quantus's randomization), scikit-image's SSIM and scipy's
correlations on the same maps.
"""
import numpy as np
import pytest
import torch
from scipy import stats
from skimage.metrics import structural_similarity

import nfr
from nfr import mprt as M
from nfr.engine.weights import weight_layers
from nfr.errors import NFRError

from _nets import DT, X, small_cnn


def _changed(model, other):
    return [not torch.equal(a.weight, b.weight) for (_, a), (_, b) in zip(weight_layers(model), weight_layers(other))]


@pytest.mark.parametrize("order", M.ORDERS)
def test_each_order_randomizes_the_layers_it_names_and_each_layer_always_gets_the_same_weights(order):
    model = small_cnn()
    L = len(weight_layers(model))
    steps = list(M.randomization_steps(model, order, seed=3, example_input=X))
    assert [k for k, _, _ in steps] == list(range(1, L + 1))
    expect = {"top_down": lambda k: set(range(L - k + 1, L + 1)), "bottom_up": lambda k: set(range(1, k + 1)),
              "independent": lambda k: {k}}[order]
    for k, layers, mk in steps:
        assert set(layers) == expect(k)
        assert {l + 1 for l, c in enumerate(_changed(model, mk)) if c} == expect(k)
    # layer l's random weights do not depend on the order or the step
    full = nfr.randomize(model, "gaussian", 3)
    for k, layers, mk in steps:
        for l in layers:
            assert torch.equal(weight_layers(mk)[l - 1][1].weight, weight_layers(full)[l - 1][1].weight)
    with pytest.raises(NFRError, match="layer order"):
        next(M.randomization_steps(model, "sideways"))
    # a subset of the steps: the same networks as in the full sequence
    sub = list(M.randomization_steps(model, order, seed=3, example_input=X, steps=[L, 2]))
    assert [k for k, _, _ in sub] == [2, L]
    for (k, layers, mk), (_, layers_full, mfull) in zip(sub, [steps[1], steps[L - 1]]):
        assert layers == layers_full and not any(_changed(mk, mfull))
    with pytest.raises(NFRError, match="1..4"):
        next(M.randomization_steps(model, order, steps=[0, 1]))


def test_prepare_reduces_and_normalises_as_documented():
    R = torch.tensor([[[1.0, -2.0], [0.0, 3.0]], [[-1.0, -1.0], [2.0, 0.0]]], dtype=DT)
    np.testing.assert_array_equal(M.prepare(R), [[2, 3], [2, 3]])
    np.testing.assert_array_equal(M.prepare(R, absolute=False), [[0, -3], [2, 3]])
    np.testing.assert_allclose(M.prepare(R, absolute=False, normalise="max"), np.array([[0, -3], [2, 3]]) / 3)
    np.testing.assert_allclose(M.prepare(R, absolute=False, normalise="minmax"), np.array([[3, 0], [5, 6]]) / 6)
    a = M.prepare(R, absolute=False, normalise="second_moment")
    assert np.mean(a ** 2) == pytest.approx(1.0)
    assert not M.prepare(torch.zeros(2, 2, 2), normalise="max").any()
    with pytest.raises(NFRError, match="normalisation"):
        M.prepare(R, normalise="zscore")


def test_similarities_against_scipy_and_skimage():
    g = np.random.default_rng(0)
    a, b = g.standard_normal((12, 12)), g.standard_normal((12, 12))
    b = a + 0.5 * b
    assert M.similarity(a, b, "spearman") == pytest.approx(stats.spearmanr(a.ravel(), b.ravel())[0], abs=1e-12)
    assert M.similarity(a, b, "pearson") == pytest.approx(stats.pearsonr(a.ravel(), b.ravel())[0], abs=1e-12)
    sa, sb = a / np.abs(a).max(), b / np.abs(b).max()
    assert M.similarity(a, b, "ssim_original") == pytest.approx(
        structural_similarity(sa, sb, win_size=5, data_range=2.0), abs=1e-12)
    rng = max(a.max(), b.max()) - min(a.min(), b.min())
    assert M.similarity(a, b, "ssim_skimage") == pytest.approx(structural_similarity(a, b, data_range=rng), abs=1e-12)
    for m in M.SIMILARITIES:
        assert M.similarity(a, a, m) == pytest.approx(1.0)
    # scaling a map changes nothing for the scale-free measures, and the original SSIM rescales itself
    for m in ("spearman", "pearson", "ssim_original", "kendall", "cosine"):
        assert M.similarity(a, 7 * b, m) == pytest.approx(M.similarity(a, b, m), abs=1e-12)
    with pytest.raises(NFRError):
        M.similarity(a, b, "mse")
    with pytest.raises(NFRError):
        M.similarity(a, b[:3], "spearman")


def test_kendall_and_cosine_by_hand_and_against_quantus():
    # 4 pixels, one swapped pair: 5 concordant and 1 discordant of 6 pairs -> tau = 4/6
    a, b = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 3.0], [2.0, 4.0]])
    assert M.similarity(a, b, "kendall") == pytest.approx(4 / 6, abs=1e-12)
    assert M.similarity(a, b, "cosine") == pytest.approx(29 / 30, abs=1e-12)  # (1+6+6+16) / (1+4+9+16)
    # a map and its negative: cosine -1, while Pearson is blind to an added constant and cosine is not
    assert M.similarity(a, -a, "cosine") == pytest.approx(-1.0)
    assert M.similarity(a, a + 10, "pearson") == pytest.approx(1.0)
    assert M.similarity(a, a + 10, "cosine") < 0.99
    assert np.isnan(M.similarity(a, np.zeros_like(a), "cosine"))
    # oracle: Quantus's similarity functions on the same flattened maps (its "cosine" is scipy's cosine
    # *distance*, one minus the similarity)
    quantus = pytest.importorskip("quantus")
    g = np.random.default_rng(3)
    x, y = g.standard_normal((16, 16)), g.standard_normal((16, 16))
    y = x + y
    y[0, :4] = y[0, 0]  # ties, which tau-b counts
    f = quantus.similarity_func
    assert M.similarity(x, y, "kendall") == pytest.approx(f.correlation_kendall_tau(x.ravel(), y.ravel()), abs=1e-12)
    assert M.similarity(x, y, "cosine") == pytest.approx(1 - f.cosine(x.ravel(), y.ravel()), abs=1e-12)


def test_entropy_and_emprt():
    assert M.discrete_entropy(np.arange(1000.0), n_bins=10) == pytest.approx(np.log(10))
    assert M.discrete_entropy(np.r_[np.zeros(99), 1.0], n_bins=2) == pytest.approx(
        -(0.99 * np.log(0.99) + 0.01 * np.log(0.01)))
    a = np.random.default_rng(1).standard_normal((8, 8))
    assert M.emprt(a, a) == 0.0
    spiky = np.zeros((8, 8))
    spiky[0, 0] = 1
    assert M.emprt(spiky, a) > 0 > M.emprt(a, spiky)
    assert np.isnan(M.emprt(np.ones((4, 4)), a))


def test_control_maps_ignore_the_model_and_noise_is_fresh():
    model = small_cnn()
    x = X[:1]
    rand = nfr.randomize(model, "gaussian", 0)
    for kind in ("control_input", "control_sobel"):
        a = M.maps(model, x, 0, kind)[0]
        b = M.maps(rand, x, 0, kind)[0]
        assert np.array_equal(a, b)
    sob = M.control_map("sobel", X[0])
    assert sob.shape == X.shape[2:] and (sob >= 0).all()
    g = np.random.default_rng(0)
    n1, n2 = M.control_map("noise", X[0], g), M.control_map("noise", X[0], g)
    assert n1.shape == X[0].shape and not np.array_equal(n1, n2)
    with pytest.raises(NFRError, match="Generator"):
        M.control_map("noise", X[0])
    with pytest.raises(NFRError, match="control"):
        M.control_map("hog", X[0])


def test_smooth_maps_average_the_maps_of_noisy_copies_and_are_seeded():
    model = small_cnn()
    y = model(X).argmax(1)
    s1 = M.smooth_maps(model, X, y, "grad", n=3, noise=0.1, generator=torch.Generator().manual_seed(5))
    s2 = M.smooth_maps(model, X, y, "grad", n=3, noise=0.1, generator=torch.Generator().manual_seed(5))
    assert torch.equal(s1, s2)
    g = torch.Generator().manual_seed(5)
    std = 0.1 * (X.amax(dim=(1, 2, 3), keepdim=True) - X.amin(dim=(1, 2, 3), keepdim=True))
    by_hand = sum(nfr.attribute(model, X + torch.randn(X.shape, generator=g, dtype=DT) * std, y, "grad")
                  for _ in range(3)) / 3
    torch.testing.assert_close(s1, by_hand, rtol=1e-12, atol=1e-12)
    assert torch.equal(M.smooth_maps(model, X, y, "gbp", n=1, noise=0.0, generator=torch.Generator()),
                       nfr.attribute(model, X, y, "gbp"))
    with pytest.raises(NFRError):
        M.smooth_maps(model, X, y, "gbp", n=0, generator=torch.Generator())


def test_quantus_steps_leave_the_global_random_state_alone():
    model = small_cnn()
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    steps = list(M.quantus_steps(model, "bottom_up"))
    assert torch.equal(torch.random.get_rng_state(), before)
    assert [n for n, _ in steps] == [n for n, m in model.named_modules() if hasattr(m, "reset_parameters")]


@pytest.mark.parametrize("order", M.ORDERS)
def test_mprt_equals_quantus_on_the_same_weights_in_every_order(order):
    quantus = pytest.importorskip("quantus")
    from nfr.interop.quantus import explain
    model = small_cnn(2)
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(6), dtype=DT)
    y = model(x).argmax(1)
    metric = quantus.MPRT(layer_order=order, seed=42, abs=False, normalise=False, skip_layers=False,
                          similarity_func=quantus.similarity_func.correlation_spearman,
                          disable_warnings=True, display_progressbar=False)
    with torch.random.fork_rng():
        scores = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), device="cpu", explain_func=explain,
                        explain_func_kwargs={"method": "gbp", "reduce": "sum"})
    base = [M.prepare(m, absolute=False) for m in M.maps(model, x, y, "gbp")]
    steps = list(M.quantus_steps(model, order, seed=42))
    assert list(scores)[1:] == [n for n, _ in steps]
    for name, mk in steps:
        ours = [M.similarity(b, M.prepare(m, absolute=False), "spearman")
                for b, m in zip(base, M.maps(mk, x, y, "gbp"))]
        np.testing.assert_allclose(ours, scores[name], atol=1e-10, err_msg=f"{order} {name}")


def test_emprt_equals_quantus_efficient_mprt_on_the_same_weights():
    quantus = pytest.importorskip("quantus")
    from nfr.interop.quantus import explain
    model = small_cnn(2).float()  # Quantus's EfficientMPRT also runs the model on float32 inputs
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    y = model(x).argmax(1)
    metric = quantus.EfficientMPRT(layer_order="bottom_up", seed=42, abs=True, normalise=False,
                                   disable_warnings=True, display_progressbar=False)
    with torch.random.fork_rng():
        scores = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), device="cpu", explain_func=explain,
                        explain_func_kwargs={"method": "grad", "reduce": "abs_sum"})
    *_, (_, full) = M.quantus_steps(model, "bottom_up", seed=42)
    ours = [M.emprt(M.prepare(a), M.prepare(b))
            for a, b in zip(M.maps(model, x, y, "grad"), M.maps(full, x, y, "grad"))]
    np.testing.assert_allclose(ours, scores, atol=1e-6)
    assert np.ptp(scores) > 0.01  # the images differ: the comparison is not of constants


def test_the_mprt_experiment_is_consistent_with_itself_and_with_nfr_mprt():
    """Cross-checks that hold whatever the numbers: the two cascading orders meet at full
    randomization, the independent order's last step is top-down's first (layer L alone), a
    model-free control scores 1 everywhere, and one stored value equals its recomputation."""
    from nfr import experiments as X
    res = X.run("mprt", model="cifar_resnet20", weights="random", data="samples", n_images=2, size=32,
                seed=0, quiet=True, methods=["gbp", "control_input", "control_noise"], smooth_n=2,
                steps=[1, 3, 20])
    A, L = res.arrays["mprt"], res["config"]["L"]
    assert L == 20 and res["config"]["steps"] == [1, 3, 20] and A["top_down|gbp|abs|spearman"].shape == (3, 2)
    for prep in ("abs", "signed+minmax"):
        for me in M.SIMILARITIES:
            td, bu, ind = (A[f"{o}|gbp|{prep}|{me}"] for o in M.ORDERS)
            np.testing.assert_allclose(td[-1], bu[-1], atol=1e-12)
            np.testing.assert_allclose(ind[-1], td[0], atol=1e-12)
            assert np.allclose(A[f"top_down|control_input|{prep}|{me}"], 1.0)
            noise = A[f"bottom_up|control_noise|{prep}|{me}"]
            if me == "cosine":
                # not centred: two independent non-negative maps (|noise|, or min-max scaled noise) have a
                # large positive cosine ((E a)^2 / E a^2: 2/pi for one |N(0, 1)| channel, 0.84 for the sum of three), so cosine
                # cannot tell noise from a kept map
                assert np.all(noise > 0.5)
            else:
                assert np.all(np.abs(noise) < 0.5)
    assert res["emprt"]["control_input|abs"]["mean"] == 0.0
    assert res.arrays["smooth"]["top_down|gbp|abs|spearman"].shape == (1, 2)
    # one value, recomputed from nfr.mprt directly
    from nfr.setup import load_setup
    s = load_setup(model="cifar_resnet20", weights="random", data="samples", n_images=2, size=32, seed=0)
    (_, _, m3), = M.randomization_steps(s.model, "bottom_up", 0, steps=[3])
    a = M.prepare(M.maps(s.model, s.x[:1], s.target[:1], "gbp")[0], absolute=False)
    b = M.prepare(M.maps(m3, s.x[:1], s.target[:1], "gbp")[0], absolute=False)
    assert A["bottom_up|gbp|signed|ssim_original"][1, 0] == pytest.approx(M.similarity(a, b, "ssim_original"),
                                                                         abs=1e-6)

