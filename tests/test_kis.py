"""Tests for nfr.kis: KIS (seed 001 eq 20), Insertion baselines, ROC-AUC, bimodality coefficient."""
import itertools

import numpy as np
import pytest
import torch
import torch.nn as nn

from nfr import kis as K
from nfr.errors import NFRError
from nfr.models import cifar_resnet


pytestmark = pytest.mark.usefixtures("one_thread")   # see conftest.py


def _linear_model():
    """f(x) = W flatten(x) + b: A_L(x) is flatten(x) itself, so S can be computed by hand."""
    m = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        m[1].weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.0, 1.0, 1.0, 1.0]]))
        m[1].bias.copy_(torch.tensor([0.5, -0.25]))
    return m.double().eval()


def test_features_of_cifar_resnet_are_pooled_vector():
    model = cifar_resnet(20, seed=1)
    x = torch.randn(3, 3, 8, 8)
    A, W, out = K.features(model, x)
    with torch.no_grad():
        h = model.relu(model.bn1(model.conv1(x)))
        h = model.layer3(model.layer2(model.layer1(h)))
        pooled = model.flatten(model.avgpool(h))
    assert A.shape == (3, 64) and W.shape == (10, 64)
    torch.testing.assert_close(A, pooled)
    torch.testing.assert_close(out, model(x))


def test_last_linear_in_call_order_and_model_untouched():
    class Odd(nn.Module):  # registered order: fc_last, fc_first; called: fc_first then fc_last
        def __init__(self):
            super().__init__()
            self.fc_last = nn.Linear(5, 3)
            self.fc_first = nn.Linear(4, 5)

        def forward(self, x):
            return self.fc_last(torch.relu(self.fc_first(x)))

    torch.manual_seed(0)
    m = Odd().eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.randn(2, 4)
    rd = K.LastLinear(m, x)
    assert rd.name == "fc_last"
    A, out = rd(x)
    torch.testing.assert_close(A, torch.relu(m.fc_first(x)).detach())
    # the caller's model: no hooks, identical parameters
    assert not m.fc_last._forward_hooks and not m.fc_first._forward_hooks
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k])


def test_train_mode_and_no_linear_raise():
    with pytest.raises(NFRError, match="train mode"):
        K.LastLinear(nn.Sequential(nn.Linear(2, 2)).train())
    with pytest.raises(NFRError, match="no nn.Linear"):
        K.LastLinear(nn.Sequential(nn.Conv2d(1, 1, 1)).eval())


def test_kis_of_the_input_itself_is_one():
    # R = x: R~ = x (rescaling x into its own range), so A_L(R~) = A_L(x) and S = 1
    model = cifar_resnet(20, seed=2).double()
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    S = K.kis(model, x, x.clone())
    torch.testing.assert_close(S, torch.ones(4, dtype=torch.float64), rtol=0, atol=1e-10)
    # and any positive affine map of x as well (min-max rescaling undoes it)
    S2 = K.kis(model, x, 3.0 * x - 7.0)
    torch.testing.assert_close(S2, torch.ones(4, dtype=torch.float64), rtol=0, atol=1e-10)


def test_kis_linear_model_by_hand():
    model = _linear_model()
    x = torch.tensor([[1.0, 2.0, -1.0, 0.0]], dtype=torch.float64).reshape(1, 1, 2, 2)
    R = torch.tensor([[0.0, 1.0, 2.0, 4.0]], dtype=torch.float64).reshape(1, 1, 2, 2)
    # f(x) = (1 - 4 - 0.5 + 0.5, 0 + 2 - 1 + 0 - 0.25) = (-3, 0.75): decided class k = 1
    # R~ = (R - 0)(2 - (-1)) / (4 - 0) + (-1) = (-1, -0.25, 0.5, 2)
    # v_1 = (0, 1, 1, 1): v*A(x) = (0, 2, -1, 0), ||.||_1 = 3
    # v*A(R~) = (0, -0.25, 0.5, 2); difference = (0, -2.25, 1.5, 2), ||.||_1 = 5.75
    S = K.kis(model, x, R)
    assert S.item() == pytest.approx(1 - 5.75 / 3)
    # for class 0 (v_0 = (1, -2, 0.5, 0)): v*A(x) = (1, -4, -0.5, 0), norm 5.5;
    # v*A(R~) = (-1, 0.5, 0.25, 0), difference (-2, 4.5, 0.75, 0), norm 7.25
    assert K.kis(model, x, R, target=0).item() == pytest.approx(1 - 7.25 / 5.5)
    # Insertion: mean R = 1.75, keep R > 1.75 -> elements 2, 3: x* = (0, 0, -1, 0)
    # class 1: v*A(x*) = (0, 0, -1, 0), difference (0, -2, 0, 0), norm 2 -> S = 1 - 2/3
    assert K.insertion(model, x, R).item() == pytest.approx(1 - 2 / 3)
    # Insertion(ABS) with R' = (-4, 1, 0, 0.5): |R'| mean 1.375, keep element 0 only: x* = (1, 0, 0, 0)
    Rs = torch.tensor([-4.0, 1.0, 0.0, 0.5], dtype=torch.float64).reshape(1, 1, 2, 2)
    # v_1 * A(x*) = 0, difference = -v*A(x), S = 1 - 3/3 = 0
    assert K.insertion(model, x, Rs, absolute=True).item() == pytest.approx(0.0)
    # plain Insertion with R': mean -0.625 keeps elements 1, 2, 3: x* = (0, 2, -1, 0) -> S = 1
    assert K.insertion(model, x, Rs).item() == pytest.approx(1.0)


def test_scores_agree_with_single_functions_and_batch():
    model = cifar_resnet(20, seed=3)
    g = torch.Generator().manual_seed(0)
    x, R = torch.randn(5, 3, 8, 8, generator=g), torch.randn(5, 3, 8, 8, generator=g)
    sc = K.scores(model, x, R)
    torch.testing.assert_close(sc["kis"], K.kis(model, x, R))
    torch.testing.assert_close(sc["insertion"], K.insertion(model, x, R))
    torch.testing.assert_close(sc["insertion_abs"], K.insertion(model, x, R, absolute=True))
    # batched = one by one
    one = torch.cat([K.kis(model, x[i:i + 1], R[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(sc["kis"], one, rtol=1e-5, atol=1e-5)


def test_kis_preprocess_rescales_in_image_space():
    model = _linear_model()
    img = torch.tensor([0.2, 0.4, 0.6, 0.8], dtype=torch.float64).reshape(1, 1, 2, 2)
    R = torch.tensor([1.0, 3.0, 2.0, 5.0], dtype=torch.float64).reshape(1, 1, 2, 2)

    def prep(t):
        return (t - 0.5) / 0.25

    got = K.kis(model, img, R, preprocess=prep)
    Rt = (R - 1) * 0.6 / 4 + 0.2
    want = K.decision_change(model, prep(img), prep(Rt))
    torch.testing.assert_close(got, want)


def test_insertion_baseline_tensor():
    x = torch.arange(8.0).reshape(1, 2, 2, 2)
    R = torch.tensor([0, 0, 0, 1, 0, 0, 0, 1.0]).reshape(1, 2, 2, 2)
    base = torch.tensor([-1.0, -2.0]).reshape(1, 2, 1, 1)
    got = K.insertion_input(x, R, baseline=base)
    assert got.flatten().tolist() == [-1, -1, -1, 3, -2, -2, -2, 7]


def _auc_pairs(s, y):
    pos = [a for a, t in zip(s, y) if t]
    neg = [b for b, t in zip(s, y) if not t]
    tot = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return tot / (len(pos) * len(neg))


def test_roc_auc_against_pairwise_count_and_sklearn():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(0)
    for trial in range(5):
        n = 40 + trial
        y = rng.random(n) < 0.3
        y[0], y[1] = True, False
        s = np.round(rng.normal(size=n) + y, 1)  # rounding creates ties
        assert K.roc_auc(s, y) == pytest.approx(_auc_pairs(s, y), abs=1e-12)
        assert K.roc_auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert K.roc_auc([1, 2, 3], [0, 1, 1]) == 1.0
    assert K.roc_auc([1, 1, 1], [0, 1, 1]) == 0.5
    assert np.isnan(K.roc_auc([1, 2], [1, 1]))
    assert K.roc_auc(torch.tensor([3.0, 1.0]), torch.tensor([True, False])) == 1.0
    with pytest.raises(NFRError):
        K.roc_auc([1.0, float("nan")], [0, 1])


def _bc_literal(v):
    """Sarle's coefficient from scipy's bias-corrected skewness and excess kurtosis."""
    from scipy.stats import kurtosis, skew
    n = len(v)
    g, k = skew(v, bias=False), kurtosis(v, fisher=True, bias=False)
    return (g ** 2 + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def test_bimodality_coefficient_literal_and_known_distributions():
    rng = np.random.default_rng(1)
    for v in (rng.normal(size=50), rng.exponential(size=31), rng.random(7)):
        assert K.bimodality_coefficient(v) == pytest.approx(_bc_literal(v), rel=1e-10)
    n = 200_000
    assert K.bimodality_coefficient(rng.normal(size=n)) == pytest.approx(1 / 3, abs=0.01)
    assert K.bimodality_coefficient(rng.random(n)) == pytest.approx(5 / 9, abs=0.01)
    two = np.r_[np.zeros(500), np.ones(500)]          # two equal point masses: g = 0, kappa -> -2
    assert K.bimodality_coefficient(two) == pytest.approx(1.0, abs=0.01)
    mix = np.r_[rng.normal(-3, 1, n // 2), rng.normal(3, 1, n // 2)]
    assert K.bimodality_coefficient(mix) > K.BIMODALITY_THRESHOLD
    assert np.isnan(K.bimodality_coefficient(np.ones(10)))
    with pytest.raises(NFRError):
        K.bimodality_coefficient([1.0, 2.0, 3.0])


def test_evaluate_matches_scores_and_variants():
    import nfr
    model = cifar_resnet(8, seed=4)
    g = torch.Generator().manual_seed(2)
    img, y = torch.rand(5, 3, 8, 8, generator=g), torch.tensor([0, 1, 2, 3, 4])

    def prep(t):
        return (t - 0.5) / 0.25

    res = K.evaluate(model, img, y, prep, batch_size=2, variants=True)
    x = prep(img)
    k = model(x).argmax(1)
    R = nfr.attribute(model, x, k, "gbp")
    sc = K.scores(model, x, R)
    for name in ("kis", "insertion", "insertion_abs"):
        np.testing.assert_allclose(res[name], sc[name].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(res["kis_image"], K.kis(model, img, R, preprocess=prep).numpy(),
                               rtol=1e-4, atol=1e-5)
    black = prep(torch.zeros(1, 3, 1, 1))
    np.testing.assert_allclose(res["insertion_black"],
                               K.insertion(model, x, R, baseline=black).numpy(), rtol=1e-4, atol=1e-5)
    assert res["pred"].tolist() == k.tolist()
    assert res["correct"].tolist() == (k == y).tolist()


def test_auc_difference_bootstrap():
    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.5
    a, b = y + rng.normal(size=300), rng.normal(size=300)
    d = K.auc_difference(a, b, y, n_boot=300, seed=1)
    assert d["diff"] == pytest.approx(K.roc_auc(a, y) - K.roc_auc(b, y))
    assert d["lo"] < d["diff"] < d["hi"] and d["lo"] > 0
    assert K.auc_difference(a, b, y, n_boot=300, seed=1) == d     # seeded: reproducible
    z = K.auc_difference(a, a, y, n_boot=50)
    assert z == {"diff": 0.0, "lo": 0.0, "hi": 0.0}


def test_summary():
    res = {"correct": np.array([True, True, False, False, True]),
           "kis": np.array([0.9, 0.8, -0.5, 0.1, float("nan")])}
    s = K.summary(res, ("kis",))["kis"]
    assert s["n"] == 4 and s["auc"] == 1.0 and s["neg"] == 0.25
    assert s["med_correct"] == pytest.approx(0.85) and s["med_wrong"] == pytest.approx(-0.2)


def test_auc_difference_single_class_is_nan():
    d = K.auc_difference([1.0, 2.0], [2.0, 1.0], [True, True], n_boot=10)
    assert all(np.isnan(v) for v in d.values())


def test_cli_kis_experiment(tmp_path):
    import json

    from nfr import cli
    rc = cli.main(["kis", "--model", "cifar_resnet20", "--weights", "random", "--data", "samples",
                   "--n-images", "6", "--batch-size", "3", "--n-boot", "20", "--variants",
                   "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    res = json.loads((tmp_path / "kis.json").read_text())
    assert set(res["summary"]) == {"kis", "insertion", "insertion_abs", "kis_image",
                                   "insertion_black", "insertion_abs_black"}
    assert len(res["scores"]["kis"]) == 6 and (tmp_path / "kis.png").is_file()
    assert cli.main(["kis", "--target", "label", "--model", "cifar_resnet20", "--data", "samples",
                     "--out", str(tmp_path)]) == 2


def test_c14_criterion():
    def summ(bc, a_k, a_i, a_a):
        return {"kis": {"bc": bc, "auc": a_k}, "insertion": {"auc": a_i}, "insertion_abs": {"auc": a_a}}
    assert K.c14_criterion(summ(0.7, 0.8, 0.6, 0.7), {"lo": 0.01}) == (
        "confirmed", {"a": True, "b": True, "c": True})
    assert K.c14_criterion(summ(0.3, 0.8, 0.6, 0.7), {"lo": 0.01})[0] == "partly"
    assert K.c14_criterion(summ(0.7, 0.8, 0.6, 0.9), {"lo": -0.01})[0] == "partly"
    assert K.c14_criterion(summ(5 / 9, 0.8, 0.6, 0.7), {"lo": 0.0}) == (
        "refuted", {"a": False, "b": False, "c": True})
