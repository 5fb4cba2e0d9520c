"""Tests of nfr.baselines on small networks: definitions, completeness of the path methods,
Guided IG on a linear model (exact), CAMERAS at one scale against its formula, library wrappers."""
import pytest
import torch
import torch.nn as nn

from nfr import baselines
from nfr.errors import NFRError


def _net(seed=0):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3, padding=1),
                      nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 5)).double().eval()
    return m


def _x(seed=1, B=2):
    return torch.rand(B, 3, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_saliency_and_gbp_definitions():
    import nfr
    m, x = _net(), _x()
    xg = x.clone().requires_grad_(True)
    m(xg)[:, 2].sum().backward()
    torch.testing.assert_close(baselines.saliency(m, x, 2), xg.grad.abs().amax(1))
    torch.testing.assert_close(baselines.gbp(m, x, 2), nfr.attribute(m, x, 2, rule="gbp").abs().sum(1))


def test_guided_ig_linear_model_is_exact():
    lin = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).double().eval()
    x = _x(B=1)
    a = baselines.guided_ig(lin, x, 1, steps=16, reduce=False)
    torch.testing.assert_close(a, x * lin[1].weight[1].view(1, 3, 8, 8))


@pytest.mark.parametrize("seed", [0, 1])
def test_guided_ig_completeness(seed):
    m, x = _net(seed), _x(seed, B=1)
    a = baselines.guided_ig(m, x, 3, steps=128, reduce=False)
    diff = (m(x)[0, 3] - m(torch.zeros_like(x))[0, 3]).item()
    assert abs(a.sum().item() - diff) <= 0.1 * abs(diff) + 1e-6   # left Riemann sums along the path


def test_integrated_gradients_captum_completeness():
    from captum.attr import IntegratedGradients
    m, x = _net(2), _x(2, B=1)
    a = IntegratedGradients(m).attribute(x, baselines=torch.zeros_like(x), target=1, n_steps=64)
    diff = (m(x)[0, 1] - m(torch.zeros_like(x))[0, 1]).item()
    assert abs(a.sum().item() - diff) < 0.02 * abs(diff) + 1e-6
    torch.testing.assert_close(baselines.integrated_gradients(m, x, 1, steps=64), a.abs().sum(1))


def test_cameras_single_scale_formula():
    m, x = _net(3), _x(3)
    feats = {}
    h = m[3].register_forward_hook(lambda _m, _i, o: feats.setdefault("a", o))
    out = m(x)
    h.remove()
    A = feats["a"]
    G = torch.autograd.grad(out[:, 4].sum(), A)[0]
    sal = torch.relu((A * G).sum(1))
    sal = sal / sal.flatten(1).amax(1).view(-1, 1, 1)
    torch.testing.assert_close(baselines.cameras(m, x, 4, "3", scales=(1.0,)), sal.detach())
    multi = baselines.cameras(m, x, 4, "3")
    assert multi.shape == (2, 8, 8) and float(multi.amax()) == pytest.approx(1.0)


def test_cam_libraries_run_and_model_unchanged():
    m, x = _net(4), _x(4)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    fg = baselines.fullgrad(m, x, 1)
    gc = baselines.gradcam(m, x, 1, "2")
    assert fg.shape == gc.shape == (2, 8, 8)
    assert float(fg.min()) >= 0 and float(gc.min()) >= 0
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert m[1].inplace  # the caller's model keeps its inplace ReLU


def test_attribute_2d_dispatch_and_errors():
    m, x = _net(5), _x(5)
    for meth in ("saliency", "gbp", "trgbp"):
        assert baselines.attribute_2d(meth, m, x, torch.tensor([0, 1])).shape == (2, 8, 8)
    with pytest.raises(NFRError):
        baselines.attribute_2d("gradcam", m, x, 0)
    with pytest.raises(NFRError):
        baselines.attribute_2d("nope", m, x, 0)
