"""Backdoor attacks (nfr.backdoors): shapes, ranges, determinism, the triggers' defining formulas."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nfr import backdoors as B



pytestmark = pytest.mark.usefixtures("one_thread")   # see conftest.py

def _x(n=8, seed=0):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _g(seed=1):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", list(B.ATTACKS))
def test_shapes_ranges_labels(name):
    atk = B.make_attack(name, seed=0)
    x, y = _x(10), torch.arange(10) % 10
    with torch.no_grad():
        xa = atk.apply(x, _g())
        xp, yp = atk.poison(x, y, _g())
    assert xa.shape == x.shape and xa.dtype == x.dtype
    assert xa.min() >= 0 and xa.max() <= 1
    assert torch.equal(yp[:1], torch.zeros(1, dtype=y.dtype))  # round(0.1 * 10) = 1 poisoned
    assert torch.equal(yp[1:], y[1:]) and torch.equal(xp[1:], x[1:])
    assert not torch.equal(xa, x)


@pytest.mark.parametrize("name", list(B.ATTACKS))
def test_deterministic_with_seed(name):
    x = _x(6)
    with torch.no_grad():
        a = B.make_attack(name, seed=3).apply(x, _g(5))
        b = B.make_attack(name, seed=3).apply(x, _g(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", list(B.ATTACKS))
def test_training_batch(name):
    atk = B.make_attack(name, seed=0)
    x, y = _x(20), torch.arange(20) % 10
    xp, yp, aux = atk.training_batch(x, y, _g())
    assert xp.shape == x.shape and yp.shape == y.shape
    assert (yp[:2] == 0).all() and torch.equal(yp[2:], y[2:])
    if name == "inputaware":
        assert aux is not None and aux.ndim == 0 and torch.isfinite(aux)
        aux.backward()  # reaches the pattern generator
        assert any(p.grad is not None for p in atk.parameters())
    if name == "wanet":  # noise mode: next 2 * 10% warped with noise, labels kept
        assert not torch.equal(xp[2:6], x[2:6]) and torch.equal(xp[6:], x[6:])


def test_badnet_patch_exact():
    x = _x(4)
    atk = B.BadNet()
    xa = atk.apply(x)
    pattern = torch.tensor([[1., 0, 1], [0, 1, 0], [1, 0, 1]])
    assert torch.equal(xa[:, :, 29:, 29:], pattern.expand(4, 3, 3, 3))
    assert torch.equal(xa[:, :, :29], x[:, :, :29]) and torch.equal(xa[:, :, :, :29], x[:, :, :, :29])
    m = atk.region(x)
    assert m.shape == (4, 1, 32, 32) and m.sum() == 4 * 9 and m[:, :, 29:, 29:].all()


def test_dynamic_region_matches_changed_pixels():
    x = torch.full((16, 3, 32, 32), 0.5)
    atk = B.Dynamic(seed=0)
    xa, m = atk.apply(x, _g(7)), atk.region(x, _g(7))
    assert m.sum() == 16 * 25
    assert torch.equal(xa[~m.expand_as(x)], x[~m.expand_as(x)])
    # random locations and patterns: not all the same
    assert len({tuple(torch.nonzero(mi[0])[0].tolist()) for mi in m}) > 1
    p = atk.patterns(2, _g())
    assert not torch.equal(p[0], p[1])


def test_wanet_identity_when_s_zero():
    atk = B.WaNet(s=0.0)
    x = _x(3)
    torch.testing.assert_close(atk.apply(x), x, atol=1e-5, rtol=0)
    a = torch.linspace(-1, 1, 32)
    assert torch.equal(atk.grid()[0, :, :, 0], a.expand(32, 32))  # x coordinate varies along columns


def test_wanet_field_formula():
    atk = B.WaNet(seed=2, k=4, s=0.5)
    ins = torch.rand(1, 2, 4, 4, generator=torch.Generator().manual_seed(2)) * 2 - 1
    ins = ins / ins.abs().mean()
    noise = F.interpolate(ins, size=32, mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    torch.testing.assert_close(atk.grid(), torch.clamp(atk.identity_grid + 0.5 * noise / 32, -1, 1))
    assert (atk.grid() - atk.identity_grid).abs().max() < 0.5 * noise.abs().max() / 32 + 1e-6


def test_inputaware_diversity_loss_formula():
    x1, x2 = _x(4, 0), _x(4, 1)
    g1, g2 = _x(4, 2), _x(4, 3)
    want = torch.stack([(x1[i] - x2[i]).norm() / (g1[i] - g2[i]).norm() for i in range(4)]).mean()
    torch.testing.assert_close(B.diversity_loss(x1, x2, g1, g2, eps=0), want)


def test_inputaware_trigger_and_state_roundtrip():
    atk = B.InputAware(seed=0, mask_steps=2)
    atk.prepare((_x(16) * 255).to(torch.uint8), _g())
    x = _x(4)
    with torch.no_grad():
        m, p = atk.mask_net(x), atk.pattern_net(x)
        torch.testing.assert_close(atk.apply(x), (1 - m) * x + m * p)
        other = B.InputAware(seed=9)
        other.load_state_dict(atk.state_dict())
        torch.testing.assert_close(other.apply(x), atk.apply(x))
    assert atk.region(x).shape == (4, 1, 32, 32)


def test_make_attack_errors():
    assert B.make_attack("none") is None
    with pytest.raises(B.NFRError):
        B.make_attack("trojan")
    with pytest.raises(B.NFRError):
        B.BadNet(rate=2.0)


def test_attack_success_rate_excludes_target_class():
    class Always0(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 10).float()
    y = torch.tensor([0, 0, 1, 2])
    assert B.attack_success_rate(Always0(), B.BadNet(), _x(4), y) == 1.0


def test_trigger_energy():
    R = torch.zeros(2, 3, 4, 4)
    R[0, :, 0, 0] = 1.0       # all energy at (0, 0)
    R[1] = -1.0               # uniform |R|
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    mask[:, :, :2, :2] = True
    torch.testing.assert_close(B.trigger_energy(R, mask), torch.tensor([1.0, 0.25]))
    assert torch.isnan(B.trigger_energy(torch.zeros(1, 3, 4, 4), mask[:1])).all()


def test_analyze_small():
    from nfr.models import cifar_resnet
    net = cifar_resnet(20, seed=0)
    out = B.analyze(net, B.BadNet(), _x(3), seed=0, batch_size=2)
    assert out["clean_kis"].shape == (3,) and out["poisoned_energy"].shape == (3,)
    assert out["R_poisoned"].shape == (3, 3, 32, 32)
    assert abs(out["area"][0] - 9 / 1024) < 1e-9
    assert out["poisoned_kis"].max() <= 1.0


def test_attack_to_float64_gives_the_same_triggers():
    """Attack.to(float64): triggers computed beside a float64 model equal the float32 ones to rounding."""
    from nfr import backdoors as B
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for name in ("badnet", "dynamic", "inputaware", "wanet"):
        a32 = B.make_attack(name, seed=1)
        a64 = B.make_attack(name, seed=1).to(torch.float64)
        p32 = a32.apply(x, torch.Generator().manual_seed(2))
        p64 = a64.apply(x.double(), torch.Generator().manual_seed(2))
        assert p64.dtype == torch.float64, name
        torch.testing.assert_close(p64.float(), p32, rtol=1e-5, atol=1e-6)


def test_evaluate_follows_the_model_dtype():
    from nfr import train as T
    from nfr.models import cifar_resnet
    from nfr import backdoors as B
    net = cifar_resnet(20, seed=0)
    x = (torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    y = torch.tensor([1, 2, 3, 4, 5, 6])
    r32 = T.evaluate(T.Normalized(net), x, y, B.BadNet())
    r64 = T.evaluate(T.Normalized(net).double(), x, y, B.BadNet())
    assert r32 == r64
