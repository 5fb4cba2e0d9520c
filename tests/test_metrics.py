"""Tests for nfr.metrics, each against a hand-computed case."""
import math

import numpy as np
import pytest
import torch

from nfr import metrics as Mt
from nfr.errors import NFRError


def test_to_2d_conventions():
    R = np.array([[[1.0, -2.0]], [[-3.0, 4.0]]])  # (C=2, H=1, W=2)
    assert Mt.to_2d(R).tolist() == [[4.0, 6.0]]
    assert Mt.to_2d(R, "sum").tolist() == [[-2.0, 2.0]]
    assert Mt.to_2d(torch.tensor(R)[None]).tolist() == [[4.0, 6.0]]
    with pytest.raises(NFRError):
        Mt.to_2d(R, None)


def test_ssim_single_window_by_hand():
    # 7x7 maps: skimage's 7x7 uniform window fits once (3-pixel borders cropped), so SSIM is the
    # formula on the whole image with sample (n-1) variances.
    rng = np.random.default_rng(0)
    a, b = rng.random((7, 7)), rng.random((7, 7))
    D = 1.0
    C1, C2 = (0.01 * D) ** 2, (0.03 * D) ** 2
    n = a.size
    ma, mb = a.mean(), b.mean()
    va, vb = a.var(ddof=1), b.var(ddof=1)
    cab = ((a - ma) * (b - mb)).sum() / (n - 1)
    hand = (2 * ma * mb + C1) * (2 * cab + C2) / ((ma ** 2 + mb ** 2 + C1) * (va + vb + C2))
    assert Mt.ssim(a, b, data_range=1.0) == pytest.approx(hand, rel=1e-10)
    assert Mt.ssim(a, a) == pytest.approx(1.0)
    # channel reduction: sum of absolute channels
    c = np.stack([a, -b])
    assert Mt.ssim(c, np.abs(a) + np.abs(b), data_range=1.0) == pytest.approx(1.0)


def test_spearman_by_hand():
    assert Mt.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(1 - 6 * 2 / (4 * 15))
    assert Mt.spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    # ties: ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4): Pearson of ranks
    r = np.array([1, 2.5, 2.5, 4]) - 2.5
    q = np.array([1, 2, 3, 4]) - 2.5
    assert Mt.spearman([0, 5, 5, 9], torch.tensor([1.0, 2, 3, 4])) == pytest.approx(
        (r * q).sum() / math.sqrt((r * r).sum() * (q * q).sum()))
    assert math.isnan(Mt.spearman([1, 1, 1], [1, 2, 3]))


def test_normalize_map():
    assert Mt.normalize_map(np.array([-2.0, 0.0, 2.0])).tolist() == [0.0, 0.5, 1.0]
    assert Mt.normalize_map(np.array([-2.0, 0.0, 1.0]), abs=True).tolist() == [1.0, 0.0, 0.5]
    t = Mt.normalize_map(torch.tensor([1.0, 3.0]))
    assert isinstance(t, torch.Tensor) and t.tolist() == [0.0, 1.0]
    assert Mt.normalize_map(np.ones(3)).tolist() == [0.0, 0.0, 0.0]


def test_effective_rank():
    assert Mt.effective_rank(np.eye(5)) == pytest.approx(5.0)
    assert Mt.effective_rank(np.outer([1, 2, 3], [4, 5])) == pytest.approx(1.0)
    # singular values 3 and 1: p = (3/4, 1/4)
    p = np.array([0.75, 0.25])
    assert Mt.effective_rank(np.diag([3.0, 1.0])) == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    assert Mt.effective_rank(np.zeros((2, 2))) == 0.0


def test_border_centre_ratio():
    R = np.ones((6, 6))
    R[2:4, 2:4] = 4.0  # centre for border 2: the 2x2 block
    assert Mt.border_centre_ratio(R, 2) == pytest.approx(1 / 4)
    R1 = np.zeros((5, 5))
    R1[0, :] = -3.0  # top row: 5 of the 16 border pixels of width 1; centre 3x3 ones
    R1[1:4, 1:4] = 1.0
    assert Mt.border_centre_ratio(R1, 1) == pytest.approx((15 / 16) / 1.0)
    with pytest.raises(NFRError):
        Mt.border_centre_ratio(R1, 3)


def test_energy_in_box_is_y_then_x():
    R = np.zeros((4, 6))
    R[0, 5] = 3.0   # row 0, column 5
    R[3, 0] = 1.0
    R[1, 1] = -5.0  # negative: no energy when positive=True
    assert Mt.energy_in_box(R, (0, 1, 4, 6)) == pytest.approx(0.75)  # rows 0:1, columns 4:6
    assert Mt.energy_in_box(R, (4 - 1, 4, 0, 1)) == pytest.approx(0.25)
    assert Mt.energy_in_box(R, (0, 2, 0, 2), positive=False) == pytest.approx(5 / 9)
    with pytest.raises(NFRError):
        Mt.energy_in_box(R, (0, 1, 5, 7))


def test_rescale_to_input_range():
    R = np.array([[-1.0, 0.0], [1.0, 3.0]])
    x = np.array([[2.0, 4.0], [6.0, 10.0]])  # range [2, 10]
    assert Mt.rescale_to_input_range(R, x).tolist() == [[2.0, 4.0], [6.0, 10.0]]
    Rt = torch.tensor([[[[0.0, 1.0]]], [[[5.0, 5.0]]]])      # (2, 1, 1, 2); sample 1 constant
    xt = torch.tensor([[[[-1.0, 1.0]]], [[[0.0, 2.0]]]])
    out = Mt.rescale_to_input_range(Rt, xt)
    assert isinstance(out, torch.Tensor) and out.tolist() == [[[[-1.0, 1.0]]], [[[0.0, 0.0]]]]
    assert np.allclose(Mt.rescale_to_input_range(Rt.numpy(), xt.numpy()), out.numpy())
