"""Tests of nfr.predictable: EBPG and IBD on hand-made maps, ROC-AUC against sklearn-free cases,
class correlation, pixel perturbation order and channels."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from nfr import predictable as pr
from nfr.errors import NFRError


def test_ebpg_box_convention_and_positive_energy():
    R = np.zeros((1, 10, 12))
    R[0, 2:4, 5:9] = 1.0      # rows 2-3, columns 5-8
    R[0, 8, 0] = 1.0
    R[0, 0, 0] = -5.0         # negative energy is ignored
    assert pr.ebpg(R, [(2, 4, 5, 9)])[0] == pytest.approx(8 / 9)
    assert pr.ebpg(R, [(5, 9, 2, 4)])[0] == 0.0        # swapped axes select nothing of the box
    with pytest.raises(NFRError):
        pr.ebpg(R, [(0, 1, 0, 1), (0, 1, 0, 1)])


def test_ibd_border_and_scaling():
    assert pr.ibd_border(224) == 16 and pr.ibd_border(32) == 2 and pr.ibd_border(112) == 8
    R = np.ones((2, 32, 32))
    R[1, 2:-2, 2:-2] = 0.0
    v = pr.ibd(R)
    assert v[0] == pytest.approx(1 - 28 * 28 / 1024) and v[1] == 1.0
    assert np.isnan(pr.ibd(-np.ones((1, 8, 8)), border=1)[0])


def test_roc_auc():
    assert pr.roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert pr.roc_auc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
    assert pr.roc_auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    g = np.random.default_rng(0)
    s, y = g.standard_normal(200), g.integers(0, 2, 200)
    pairs = np.mean([(a > b) + 0.5 * (a == b) for a in s[y == 1] for b in s[y == 0]])
    assert pr.roc_auc(s, y) == pytest.approx(pairs)
    assert np.isnan(pr.roc_auc([1, 2], [1, 1]))


def test_class_correlation():
    g = np.random.default_rng(1)
    base = g.standard_normal((2, 1, 6, 6))
    same = np.repeat(base, 5, axis=1)
    assert np.allclose(pr.class_correlation(same), 1.0)
    sub = same + 0.01 * g.standard_normal(same.shape)
    sub = sub - sub.mean(1, keepdims=True)
    assert np.all(pr.class_correlation(sub) < -0.2)


def test_perturbation_curve_order_and_all_channels():
    # a linear "model" on the mean over channels: logit_0 = sum(mean_c x * w), logit_1 = 0
    w = torch.arange(16, dtype=torch.float64).view(1, 4, 4)

    class M(nn.Module):
        def forward(self, x):
            s = (x.mean(1) * w).flatten(1).sum(1, keepdim=True) / 20
            return torch.cat([s, torch.zeros_like(s)], 1)
    x = torch.ones(1, 3, 4, 4, dtype=torch.float64)
    R = w.clone()
    morf = pr.perturbation_curve(M(), x, 0, R, [0, 0.25, 1], "morf")
    lerf = pr.perturbation_curve(M(), x, 0, R, [0, 0.25, 1], "lerf")
    p = lambda s: 1 / (1 + np.exp(-s / 20))   # noqa: E731
    assert morf[0] == pytest.approx([p(120), p(120 - 54), 0.5])
    assert lerf[0] == pytest.approx([p(120), p(120 - 6), 0.5])
    assert pr.aopc(morf)[0] > pr.aopc(lerf)[0]


def test_centre_cv_and_sanity_stats():
    R = np.ones((1, 8, 8))
    assert pr.centre_cv(R, 2)[0] == 0.0
    R2 = R.copy()
    R2[0, :2] = 0.5
    sp, bc, cv = pr.sanity_stats(R2, R2, 2)
    assert sp == pytest.approx(1.0) and bc < 1 and cv == 0.0


def test_ibd_experiment_smoke():
    """The command-line experiment runs end to end on the offline samples (random CIFAR ResNet-20)."""
    from nfr import experiments as X
    res = X.run("ibd", model="cifar_resnet20", weights="random", data="samples", n_images=4,
                rules=["saliency"], quiet=True)
    assert res["n"] == 4 and set(res["auc"]) == {"saliency"}
