"""Tests for nfr.failure: per-layer measures of the maps started at each layer (seed 001 Fig 7)."""
import numpy as np
import pytest
import torch

import nfr
from nfr import failure as F
from nfr.errors import NFRError
from nfr.models import cifar_resnet


pytestmark = pytest.mark.usefixtures("one_thread")   # see conftest.py


def test_central_box_rows_first():
    assert F.central_box(8, 8) == (2, 6, 2, 6)
    assert F.central_box(10, 4, 0.5) == (2, 7, 1, 3)
    assert F.central_box(5, 5, 1.0) == (0, 5, 0, 5)
    with pytest.raises(NFRError):
        F.central_box(5, 5, 0.0)


def test_chroma_fraction_and_colour_alignment_by_hand():
    grey = torch.ones(1, 3, 2, 2) * torch.tensor([1.0, -2, 3, 0.5]).reshape(1, 1, 2, 2)
    assert F.chroma_fraction(grey).item() == 0.0
    # one pixel (1, 2, 3): grey part (2, 2, 2), colour part (-1, 0, 1): 2 / 14
    R = torch.tensor([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)
    assert F.chroma_fraction(R).item() == pytest.approx(2 / 14)
    assert F.chroma_fraction(torch.zeros(1, 3, 2, 2)).item() == 0.0
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    # adding a grey map and scaling keeps the colour part's direction: alignment 1
    torch.testing.assert_close(F.colour_alignment(2 * x + grey.expand(2, 3, 2, 2).repeat(1, 1, 2, 2), x),
                               torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(F.colour_alignment(grey.repeat(2, 1, 2, 2), x),
                               torch.zeros(2, dtype=torch.float64))


def test_outside_energy_by_hand():
    R = torch.zeros(1, 3, 4, 4)
    R[0, 0, 1, 1] = 3.0      # inside the central box (1, 3, 1, 3)
    R[0, 1, 0, 0] = -1.0     # outside
    assert F.outside_energy(R, (1, 3, 1, 3)).item() == pytest.approx(0.25)
    assert np.isnan(F.outside_energy(torch.zeros(1, 3, 4, 4), (1, 3, 1, 3)).item())
    with pytest.raises(NFRError):
        F.outside_energy(R, (3, 1, 1, 3))


def test_layer_maps_equal_single_attributions():
    model = cifar_resnet(8, seed=0)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    layers = [0, 1, 4, 7]
    M = F.start_layer_maps(model, x, layers)
    assert M.shape == (4, 2, 3, 8, 8)
    torch.testing.assert_close(M[0], x)
    for i, l in enumerate(layers[1:], 1):
        torch.testing.assert_close(M[i], nfr.attribute(model, x, rule="activation", layer=l,
                                                       bottom=False), rtol=1e-4, atol=1e-6)
    G = F.start_layer_maps(model, x, [3], below="gbp")
    torch.testing.assert_close(G[0], nfr.attribute(model, x, rule="activation", layer=3,
                                                   below="gbp", bottom=False))
    with pytest.raises(NFRError):
        F.start_layer_maps(model, x, [9])      # ResNet-8 has L = 8 weight layers: 0..7 allowed
    prof = F.layer_profile(model, x, layers, maps=M)
    assert set(prof) >= {"alignment", "colour", "chroma", "outside"}
    assert prof["alignment"].shape == (4, 2)
    np.testing.assert_allclose(prof["alignment"][0], 1.0, atol=1e-6)   # layer 0 is x itself


def test_trend():
    v = np.array([[3.0, 1.0], [2.0, 2.0], [1.0, 3.0]])
    np.testing.assert_allclose(F.trend([1, 2, 3], v), [-1.0, 1.0])
    with pytest.raises(NFRError):
        F.trend([1, 2], v)


def test_summarize_and_report():
    prof = {m: np.array([[3.0, 1.0, 5.0], [2.0, 2.0, 4.0], [1.0, 3.0, 3.0]]) for m in F.MEASURES}
    s = F.summarize([1, 2, 3], prof, {"a": [0, 2], "b": [1]})
    assert s["a"]["colour"] == {"trend": -1.0, "first": 4.0, "last": 2.0}
    assert s["b"]["outside"]["trend"] == 1.0
    lines = F.report([1, 2, 3], prof, {"a": [0, 2]}, ("colour",))
    assert lines == ["        a    colour: rho -1.000   l=1: 4.000 -> l=3: 2.000"]
