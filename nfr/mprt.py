"""The model-parameter randomization test (MPRT) and the variants that decide its verdict.

Adebayo et al. (2018) randomize a trained network's weights layer by layer and ask how similar the
attribution map stays to the original one: a map that stays similar is "insensitive to the model".
The verdict depends on choices the test leaves open (Binder et al. 2023; Hedström et al. 2023);
this module makes each one an argument:

* **layer order** (:func:`randomization_steps`): ``"top_down"`` (cascading from the output, the
  original test), ``"bottom_up"`` (cascading from the input) and ``"independent"`` (one layer at a
  time, the others original). Layers are the weight layers in forward order and layer ``l``
  always gets the same weights, drawn from a generator seeded with ``(seed, l)``
  (:func:`nfr.engine.weights.randomize`). :func:`quantus_steps` reproduces instead what Quantus
  0.6 does: every module with ``reset_parameters`` (BatchNorm included) in registration order,
  re-initialised by its own default initialiser after ``torch.manual_seed(seed + 1)``, the same
  seed for every layer;
* **preprocessing** (:func:`prepare`): the channel reduction (signed sum, or sum of absolute
  values), and a normalisation (none, by the largest magnitude, min-max to [0, 1], or by the root of
  the second moment);
* **similarity** (``SIMILARITIES``): SSIM with the original check's settings (maps scaled by
  their largest magnitude into [-1, 1], 5 x 5 window, data range 2; Adebayo's answer in issue 2 of
  the ``adebayoj/sanity_checks_saliency`` repository), SSIM with scikit-image's defaults (7 x 7
  window; the data range, which scikit-image requires for float maps, the two maps' joint range,
  as Quantus passes it), Spearman rank correlation, Pearson correlation, Kendall's tau (tau-b) and
  cosine similarity (the further similarity functions of Hedström et al.'s library Quantus; its
  ``cosine`` returns scipy's cosine *distance*, one minus this similarity);
* **smooth MPRT** (:func:`smooth_maps`, Hedström et al.): every map is the mean of the maps of
  ``n`` noisy copies of the input, noise N(0, (``noise`` * (max x - min x))^2) per sample, before it
  is compared;
* **efficient MPRT** (:func:`emprt`, Hedström et al.): no layer-by-layer comparison; the relative
  rise of the map's discrete entropy (histogram of ``n_bins`` bins) from the original to the fully
  randomized network;
* **control maps** (:func:`control_map`): maps that do not depend on the model's weights at all
  (the input, a Sobel edge map of the input) and a map with zero covariance between its pixels
  and the model (independent Gaussian noise, drawn afresh for every model state, Binder et al.'s
  example of a map that "passes" the test without explaining anything).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import kendalltau
from torch import nn

from nfr.engine.attribute import attribute
from nfr.engine.weights import randomize, weight_layers
from nfr.errors import NFRError
from nfr.metrics import spearman, to_2d

__all__ = ["ORDERS", "NORMALISATIONS", "SIMILARITIES", "CONTROLS", "randomization_steps", "quantus_steps",
           "prepare", "similarity", "smooth_maps", "discrete_entropy", "emprt", "control_map", "maps"]

ORDERS = ("top_down", "bottom_up", "independent")
NORMALISATIONS = (None, "max", "minmax", "second_moment")
SIMILARITIES = ("ssim_original", "ssim_skimage", "spearman", "pearson", "kendall", "cosine")
CONTROLS = ("input", "sobel", "noise")


def randomization_steps(model: nn.Module, order: str = "top_down", seed: int = 0, *, dist: str = "gaussian",
                        example_input: torch.Tensor | None = None, steps=None):
    """The randomized networks of one MPRT run, step by step.

    Parameters
    ----------
    model : torch.nn.Module
        The trained network (not modified).
    order : {"top_down", "bottom_up", "independent"}
        ``"top_down"``: step k randomizes layers L-k+1..L; ``"bottom_up"``: layers 1..k;
        ``"independent"``: layer k alone.
    seed : int
        Layer l gets the weights drawn from the generator seeded with ``(seed, l)``, the same at
        every step and in every order.
    dist : str
        The weight law of :func:`nfr.engine.weights.randomize` (He scale, biases set to zero).
    example_input : torch.Tensor, optional
        An input that fixes the forward order of the layers (registration order without it).
    steps : iterable of int, optional
        Only these steps k (each in 1..L); all steps 1..L by default.

    Yields
    ------
    tuple of (int, list of int, torch.nn.Module)
        Step k = 1..L, the 1-based layers randomized at that step, and the randomized copy.

    Raises
    ------
    nfr.NFRError
        For an unknown ``order`` or a step outside 1..L.
    """
    if order not in ORDERS:
        raise NFRError(f"unknown layer order {order!r}; choose one of {ORDERS}")
    L = len(weight_layers(model, example_input))
    ks = list(range(1, L + 1)) if steps is None else sorted({int(k) for k in steps})
    if ks and not 1 <= ks[0] <= ks[-1] <= L:
        raise NFRError(f"randomization steps must lie in 1..{L}, got {ks}")
    for k in ks:
        layers = (list(range(L - k + 1, L + 1)) if order == "top_down"
                  else list(range(1, k + 1)) if order == "bottom_up" else [k])
        yield k, layers, randomize(model, dist, seed, layers=layers, example_input=example_input)


def quantus_steps(model: nn.Module, order: str = "top_down", seed: int = 42):
    """The randomized networks Quantus 0.6's MPRT evaluates, reproduced without touching global state.

    Quantus (``PyTorchModel.get_random_layer_generator``) takes every module that has a
    ``reset_parameters`` method (Conv2d, Linear and also BatchNorm) in registration order (reversed
    for ``"top_down"``), and before re-initialising each one calls ``torch.manual_seed(seed + 1)``:
    every layer is drawn from the same seed. It keeps one copy that accumulates the resets
    (``"top_down"``, ``"bottom_up"``) or restores the original weights before each
    (``"independent"``). Here the seeding happens inside ``torch.random.fork_rng``, so the
    caller's random state is left as it was.

    Parameters
    ----------
    model : torch.nn.Module
        The network (not modified).
    order : {"top_down", "bottom_up", "independent"}
        Quantus's ``layer_order``.
    seed : int
        Quantus's ``seed`` (default 42, as Quantus's).

    Yields
    ------
    tuple of (str, torch.nn.Module)
        The module's name and a copy of the network at that step.

    Raises
    ------
    nfr.NFRError
        For an unknown ``order``.
    """
    import copy
    if order not in ORDERS:
        raise NFRError(f"unknown layer order {order!r}; choose one of {ORDERS}")
    original = copy.deepcopy(model.state_dict())
    net = copy.deepcopy(model)
    modules = [(n, m) for n, m in net.named_modules() if hasattr(m, "reset_parameters")]
    if order == "top_down":
        modules = modules[::-1]
    for name, mod in modules:
        if order == "independent":
            net.load_state_dict(original)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            mod.reset_parameters()
        yield name, copy.deepcopy(net)


def prepare(R, *, absolute: bool = True, normalise: str | None = None) -> np.ndarray:
    """One map as the test compares it: reduced to 2D, float64, optionally normalised.

    Parameters
    ----------
    R : torch.Tensor or numpy.ndarray
        A ``(C, H, W)`` or ``(H, W)`` map (a batch of one is accepted).
    absolute : bool
        True: the sum of absolute values over channels (Adebayo et al.'s "absolute" maps); False:
        the signed sum over channels. Default True.
    normalise : {None, "max", "minmax", "second_moment"}
        None: as reduced; ``"max"``: divided by the largest magnitude (Quantus's
        ``normalise_by_max``; values in [-1, 1]); ``"minmax"``: (R - min) / (max - min), in [0, 1];
        ``"second_moment"``: divided by sqrt(mean R^2) (Binder et al.). A zero map stays zero.

    Returns
    -------
    numpy.ndarray
        The ``(H, W)`` float64 map.

    Raises
    ------
    nfr.NFRError
        For an unknown ``normalise``.
    """
    a = to_2d(R, "abs_sum" if absolute else "sum")
    if normalise is None:
        return a
    if normalise == "max":
        m = np.abs(a).max()
        return a / m if m > 0 else a
    if normalise == "minmax":
        r = a.max() - a.min()
        return (a - a.min()) / r if r > 0 else np.zeros_like(a)
    if normalise == "second_moment":
        m = math.sqrt(float((a ** 2).mean()))
        return a / m if m > 0 else a
    raise NFRError(f"unknown normalisation {normalise!r}; choose one of {NORMALISATIONS}")


def similarity(a: np.ndarray, b: np.ndarray, measure: str = "spearman") -> float:
    """Similarity of two prepared 2D maps.

    Parameters
    ----------
    a, b : numpy.ndarray
        ``(H, W)`` maps (see :func:`prepare`).
    measure : {"ssim_original", "ssim_skimage", "spearman", "pearson", "kendall", "cosine"}
        ``"ssim_original"``: both maps divided by their own largest magnitude (so in [-1, 1]), SSIM
        with a 5 x 5 window and data range 2 (Adebayo et al.'s settings); ``"ssim_skimage"``:
        scikit-image's 7 x 7 window, data range the joint range of the two maps; ``"spearman"``:
        rank correlation; ``"pearson"``: linear correlation; ``"kendall"``: Kendall's tau-b (scipy,
        ties counted as tau-b does); ``"cosine"``: the cosine of the angle between the two maps as
        vectors (not centred, unlike Pearson).

    Returns
    -------
    float
        The similarity; nan for a correlation of a constant map.

    Raises
    ------
    nfr.NFRError
        For an unknown ``measure`` or maps of different shapes.
    """
    from skimage.metrics import structural_similarity
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise NFRError(f"similarity: expected two (H, W) maps of one shape, got {a.shape} and {b.shape}")
    if measure == "ssim_original":
        sa, sb = np.abs(a).max(), np.abs(b).max()
        a, b = (a / sa if sa > 0 else a), (b / sb if sb > 0 else b)
        return float(structural_similarity(a, b, win_size=5, data_range=2.0))
    if measure == "ssim_skimage":
        rng = float(max(a.max(), b.max()) - min(a.min(), b.min())) or 1.0
        return float(structural_similarity(a, b, data_range=rng))
    if measure == "spearman":
        return spearman(a, b)
    if measure == "pearson":
        x, y = a.ravel() - a.mean(), b.ravel() - b.mean()
        den = math.sqrt(float((x ** 2).sum() * (y ** 2).sum()))
        return float((x * y).sum() / den) if den > 0 else float("nan")
    if measure == "kendall":
        return float(kendalltau(a.ravel(), b.ravel()).statistic)
    if measure == "cosine":
        den = math.sqrt(float((a ** 2).sum() * (b ** 2).sum()))
        return float((a * b).sum() / den) if den > 0 else float("nan")
    raise NFRError(f"unknown similarity {measure!r}; choose one of {SIMILARITIES}")


def control_map(kind: str, x: torch.Tensor, generator: np.random.Generator | None = None) -> np.ndarray:
    """A control map that does not explain the model: the same whatever its weights, or pure noise.

    Parameters
    ----------
    kind : {"input", "sobel", "noise"}
        ``"input"``: the input itself, ``(C, H, W)``; ``"sobel"``: the gradient magnitude of the
        input's channel mean (Sobel filters, ``scipy.ndimage.sobel``), ``(H, W)``; ``"noise"``:
        independent standard Gaussian values shaped like the input (zero covariance with anything;
        draw it afresh for every model state).
    x : torch.Tensor
        One input ``(C, H, W)``.
    generator : numpy.random.Generator, optional
        The noise's generator (required for ``"noise"``).

    Returns
    -------
    numpy.ndarray
        The map, float64.

    Raises
    ------
    nfr.NFRError
        For an unknown ``kind`` or ``"noise"`` without a generator.
    """
    from scipy import ndimage
    a = x.detach().cpu().double().numpy()
    if kind == "input":
        return a
    if kind == "sobel":
        g = a.mean(0)
        return np.hypot(ndimage.sobel(g, 0), ndimage.sobel(g, 1))
    if kind == "noise":
        if generator is None:
            raise NFRError("control_map('noise') needs a numpy Generator (one draw per model state)")
        return generator.standard_normal(a.shape)
    raise NFRError(f"unknown control map {kind!r}; choose one of {CONTROLS}")


def smooth_maps(model: nn.Module, x: torch.Tensor, target, rule: str, *, n: int = 50, noise: float = 0.1,
                generator: torch.Generator, **kwargs) -> torch.Tensor:
    """The smooth-MPRT map: the mean of the maps of ``n`` noisy copies of each input (Hedström et al.).

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    x : torch.Tensor
        The input batch ``[B, ...]``.
    target : int or torch.Tensor
        The class (one, or one per sample).
    rule : str
        The rule of :func:`nfr.engine.attribute.attribute`.
    n : int
        Number of noisy copies (Quantus's default 50).
    noise : float
        Noise std relative to each sample's range max x - min x (Quantus's default 0.1).
    generator : torch.Generator
        The noise's generator (CPU); the same generator state gives the same noise.
    **kwargs
        Further arguments of :func:`nfr.engine.attribute.attribute`.

    Returns
    -------
    torch.Tensor
        The averaged maps, shaped like ``x``.

    Raises
    ------
    nfr.NFRError
        For ``n`` < 1.
    """
    if n < 1:
        raise NFRError(f"smooth_maps needs n >= 1 noisy copies, got {n}")
    dims = tuple(range(1, x.ndim))
    std = noise * (x.amax(dim=dims, keepdim=True) - x.amin(dim=dims, keepdim=True))
    total = torch.zeros_like(x)
    for _ in range(n):
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        total += attribute(model, x + eps * std, target, rule, **kwargs)
    return total / n


def discrete_entropy(a: np.ndarray, n_bins: int = 100) -> float:
    """Shannon entropy (nats) of the histogram of a map's values (Quantus's ``discrete_entropy``).

    Parameters
    ----------
    a : numpy.ndarray
        The map (any shape; all values enter one histogram).
    n_bins : int
        Number of equal-width bins between the map's min and max (Quantus's default 100).

    Returns
    -------
    float
        -sum p_i log p_i over the non-empty bins, p_i the fraction of values in bin i.
    """
    hist, _ = np.histogram(np.asarray(a, dtype=np.float64).ravel(), bins=n_bins)
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log(p)).sum())


def emprt(original: np.ndarray, randomized: np.ndarray, n_bins: int = 100) -> float:
    """Efficient MPRT (Hedström et al.): the relative rise of a map's complexity under full randomization.

    Parameters
    ----------
    original, randomized : numpy.ndarray
        The prepared maps of one input under the original and the fully randomized network.
    n_bins : int
        Histogram bins of :func:`discrete_entropy`.

    Returns
    -------
    float
        (H(randomized) - H(original)) / H(original); higher means the map reacts more to the
        randomization; nan when the original map is constant (H = 0).
    """
    h0 = discrete_entropy(original, n_bins)
    return (discrete_entropy(randomized, n_bins) - h0) / h0 if h0 > 0 else float("nan")


def maps(model: nn.Module, x: torch.Tensor, target, method: str, *, generator: np.random.Generator | None = None,
         **kwargs) -> list[np.ndarray]:
    """The maps one method gives for a batch: an attribution rule or a control map.

    Parameters
    ----------
    model : torch.nn.Module
        The network (ignored by the control maps).
    x : torch.Tensor
        The input batch ``[B, C, H, W]``.
    target : int or torch.Tensor
        The class (one, or one per sample).
    method : str
        A rule of :func:`nfr.engine.attribute.attribute`, or ``"control_input"``,
        ``"control_sobel"``, ``"control_noise"`` (see :func:`control_map`).
    generator : numpy.random.Generator, optional
        The noise of ``"control_noise"``.
    **kwargs
        Further arguments of :func:`nfr.engine.attribute.attribute`.

    Returns
    -------
    list of numpy.ndarray
        One float64 map per sample (``(C, H, W)``, or ``(H, W)`` for the Sobel control).
    """
    if method.startswith("control_"):
        return [control_map(method[len("control_"):], xi, generator) for xi in x]
    R = attribute(model, x, target, method, **kwargs)
    return [r.detach().cpu().double().numpy() for r in R]
