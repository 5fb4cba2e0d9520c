"""Weight randomization, weight removal and weight statistics (the alignment paper of Zheng, Sang
and Xu, Section IV, Figs 2b,c and 3-5).

A *layer* is a weight layer -- an ``nn.Conv2d`` or ``nn.Linear`` -- numbered l = 1..L (1-based).
A *neuron* of a layer is one output unit: one row of a Linear weight ``W[j, :]`` or one conv
filter ``W[j, :, :, :]`` flattened; its *fan-in* is the length of that vector,
``in_features`` or ``in_channels / groups * kh * kw``.

Layer order. By default layers are numbered in module registration order (``model.modules()``),
which is the forward order of every model ``nfr`` ships (torchvision VGG/AlexNet/ResNet, the CIFAR
ResNets of :mod:`nfr.models`, EfficientNet-Lite). Give ``example_input`` to number them in the order
in which a forward pass calls them instead (a module called twice counts at its first call).

Seeding (the book's pitfalls page, pitfall 8). Nothing is seeded globally. Layer l draws from its own ``torch.Generator``
(on the CPU, so results do not depend on the device) seeded from ``(seed, l)`` through
``numpy.random.SeedSequence``: two layers of the same shape never receive the same weights, and a
layer receives the same weights whether it is randomized alone, in a subset, or in a cascade.

Every function returns a NEW model (a deep copy); the model passed in is never modified.
BatchNorm layers are left as they are (merge them first with the canonizer if their running
statistics should not act on the random weights).
"""
from __future__ import annotations

import copy
import math
from typing import Iterator

import numpy as np
import torch
from torch import nn

from nfr.errors import NFRError

__all__ = [
    "DISTRIBUTIONS",
    "weight_layers",
    "he_std",
    "randomize",
    "cascading_randomizations",
    "remove",
    "weight_stats",
]

DISTRIBUTIONS = ("gaussian", "ring", "uniform", "orthogonal")
WEIGHT_TYPES = (nn.Conv2d, nn.Linear)


# --------------------------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------------------------
def weight_layers(model: nn.Module, example_input: torch.Tensor | None = None) -> list[tuple[str, nn.Module]]:
    """The weight layers (Conv2d, Linear) of ``model`` as ``[(name, module), ...]``; entry l-1 is layer l.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    example_input : torch.Tensor, optional
        Without it the order is registration order; with it, the order of the first call in a
        forward pass of ``example_input`` (under ``torch.no_grad``; forward pre-hooks, removed
        in a ``finally``; layers never called are appended in registration order).

    Returns
    -------
    list of (str, torch.nn.Module)
        The layers' qualified names and modules, layer 1 first.
    """
    named = [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHT_TYPES)]
    if example_input is None:
        return named
    order: list[str] = []
    handles = []
    try:
        for name, mod in named:
            def hook(_mod, _inp, name=name):
                if name not in order:
                    order.append(name)
            handles.append(mod.register_forward_pre_hook(hook))
        with torch.no_grad():
            model(example_input)
    finally:
        for h in handles:
            h.remove()
    lookup = dict(named)
    rest = [n for n, _ in named if n not in order]
    return [(n, lookup[n]) for n in order + rest]


def _fan_in(mod: nn.Module) -> int:
    w = mod.weight
    return int(w[0].numel())


def he_std(mod: nn.Module) -> float:
    """He (Kaiming) initialisation scale ``sqrt(2 / fan_in)`` of a Conv2d/Linear layer.

    This is the scale that keeps the second moment of ReLU activations constant through depth
    (He et al. 2015, "fan_in" mode, ReLU gain sqrt(2)); it is the scale all distributions of
    :func:`randomize` share by default.

    Parameters
    ----------
    mod : torch.nn.Module
        The layer; its fan-in is the size of one neuron's weight vector ``weight[0]``.

    Returns
    -------
    float
        ``sqrt(2 / fan_in)``.
    """
    return math.sqrt(2.0 / _fan_in(mod))


def _resolve(model: nn.Module, layers, example_input=None) -> tuple[list[tuple[str, nn.Module]], list[int]]:
    """Layer list and the sorted 1-based indices selected by ``layers`` (None = all)."""
    wl = weight_layers(model, example_input)
    L = len(wl)
    if L == 0:
        raise NFRError(f"{type(model).__name__} has no Conv2d or Linear layer to act on")
    if layers is None:
        return wl, list(range(1, L + 1))
    if isinstance(layers, (int, str)):
        layers = [layers]
    names = {n: i + 1 for i, (n, _) in enumerate(wl)}
    idx = set()
    for item in layers:
        if isinstance(item, bool):
            raise NFRError(f"layer selector {item!r} is a bool; give 1-based indices or names")
        if isinstance(item, (int, np.integer)):
            if not 1 <= int(item) <= L:
                raise NFRError(f"layer index {item} out of range: the model has L = {L} weight layers, "
                               f"numbered 1..{L}")
            idx.add(int(item))
        elif isinstance(item, str):
            if item not in names:
                raise NFRError(f"no Conv2d/Linear layer named {item!r}; weight layers are: "
                               f"{', '.join(names)}")
            idx.add(names[item])
        else:
            raise NFRError(f"layer selector {item!r} must be a 1-based int index or a module name")
    return wl, sorted(idx)


def _generator(seed: int, index: int) -> torch.Generator:
    """A CPU generator for layer ``index`` seeded from (seed, index), distinct per layer."""
    if seed is None or int(seed) < 0:
        raise NFRError(f"seed must be a non-negative int, got {seed!r}")
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, dtype=np.uint32)
    g = torch.Generator(device="cpu")
    g.manual_seed(int(state[0]) << 31 ^ int(state[1]))
    return g


def _expected_gaussian_norm(n: int, std: float) -> float:
    """E||w|| for w ~ N(0, std^2 I_n): std * sqrt(2) * Gamma((n+1)/2) / Gamma(n/2)."""
    return std * math.sqrt(2.0) * math.exp(math.lgamma((n + 1) / 2) - math.lgamma(n / 2))


def _sample(shape: tuple[int, int], dist: str, std: float, g: torch.Generator, unit: bool) -> torch.Tensor:
    """Draw an (out, fan_in) float64 matrix of neuron weight vectors (rows)."""
    out, n = shape
    if dist == "gaussian":
        return torch.randn(out, n, generator=g, dtype=torch.float64) * std
    if dist == "uniform":
        u = torch.rand(out, n, generator=g, dtype=torch.float64) * 2.0 - 1.0
        return u if unit else u * (math.sqrt(3.0) * std)
    norm = _expected_gaussian_norm(n, std)
    if dist == "ring":
        v = torch.randn(out, n, generator=g, dtype=torch.float64)
        nv = v.norm(dim=1, keepdim=True)
        while bool((nv == 0).any()):  # probability zero; resample for rigour
            bad = (nv == 0).squeeze(1)
            v[bad] = torch.randn(int(bad.sum()), n, generator=g, dtype=torch.float64)
            nv = v.norm(dim=1, keepdim=True)
        return v / nv * norm
    if dist == "orthogonal":
        blocks = []
        for start in range(0, out, n):
            rows = min(n, out - start)
            a = torch.randn(n, rows, generator=g, dtype=torch.float64)
            q, r = torch.linalg.qr(a)  # q: (n, rows), orthonormal columns
            d = torch.sign(torch.diagonal(r))
            d[d == 0] = 1.0
            blocks.append((q * d).T)  # Haar-distributed orthonormal rows
        return torch.cat(blocks, 0) * norm
    raise NFRError(f"unknown distribution {dist!r}; choose one of {DISTRIBUTIONS}")


@torch.no_grad()
def randomize(model: nn.Module, dist: str = "gaussian", seed: int = 0, layers=None, *,
              cascade_from_top: int | None = None, scale: str | float | None = "he",
              bias: str = "zero", example_input: torch.Tensor | None = None) -> nn.Module:
    """A copy of ``model`` whose selected weight layers get random weights; ``model`` is unchanged.

    Let ``n`` be the fan-in and ``s`` the per-layer scale (``scale="he"``: s = sqrt(2/n), the He
    std, see :func:`he_std`; a float: that std for every layer; ``None``: s = 1, unscaled).
    Each neuron's weight vector w in R^n is drawn, independently across neurons, from

    * ``"gaussian"``: w ~ N(0, s^2 I_n) -- i.i.d. zero-mean entries with std s (isotropic);
    * ``"ring"``: w = rho * g / ||g||, g ~ N(0, I_n): uniform on the sphere of radius
      rho = E||N(0, s^2 I_n)|| = s sqrt(2) Gamma((n+1)/2) / Gamma(n/2) (~ s sqrt(n - 1/2)).
      Isotropic but not Gaussian: every neuron has exactly the same norm (Fig 3 of Zheng et al., middle);
    * ``"uniform"``: i.i.d. entries U[-a, a] with a = sqrt(3) s, so each entry has the same
      variance s^2 as the Gaussian and only the shape of the distribution differs; it is not
      isotropic (its density is a cube). With ``scale=None`` this is Zheng et al.'s literal
      U[-1, 1] (Fig 3 of Zheng et al., bottom);
    * ``"orthogonal"``: rows orthonormal (QR of a Gaussian matrix with the sign fix, i.e. Haar),
      each scaled to the norm rho of "ring". When out > n, rows come in independent blocks of
      n mutually orthogonal rows (no more than n vectors can be orthogonal in R^n).

    Layer l is drawn from a generator seeded with (seed, l) (see module doc): same seed, same
    model; other seed, other model; equal-shape layers differ.

    Parameters
    ----------
    model : torch.nn.Module
        The model (not modified).
    dist : str
        ``"gaussian"`` (default), ``"ring"``, ``"uniform"`` or ``"orthogonal"``, as above.
    seed : int
        Non-negative seed of the per-layer generators. Default 0.
    layers : int, str or iterable, optional
        The layers to randomize: a 1-based index, a module name, or any iterable of them
        (None: all layers). Give this or ``cascade_from_top``, not both.
    cascade_from_top : int, optional
        k: select the top k layers L-k+1..L (Adebayo et al.'s cascading randomization; k = 0
        changes nothing).
    scale : str, float or None
        The per-layer scale s: ``"he"`` (default), a positive float, or None (s = 1).
    bias : str
        ``"zero"`` (default) sets the biases of the selected layers to 0, matching the
        bias-free networks of the theory (Sec. III-A of Zheng et al.); ``"keep"`` leaves the
        trained biases.
    example_input : torch.Tensor, optional
        Number the layers in forward-call order (see ``weight_layers``).

    Returns
    -------
    torch.nn.Module
        The randomized copy.

    Raises
    ------
    nfr.NFRError
        For an unknown ``dist``, a ``bias`` other than ``"zero"`` / ``"keep"``, both
        ``layers`` and ``cascade_from_top``, ``cascade_from_top`` outside 0..L, a bad
        ``scale``; and (from the layer selection) a model without weight layers, a bad layer
        selector or a negative seed.
    """
    if dist not in DISTRIBUTIONS:
        raise NFRError(f"unknown distribution {dist!r}; choose one of {DISTRIBUTIONS}")
    if bias not in ("zero", "keep"):
        raise NFRError(f"bias must be 'zero' or 'keep', got {bias!r}")
    if not (scale in ("he", None) or (isinstance(scale, (int, float)) and not isinstance(scale, bool)
                                      and scale > 0)):
        raise NFRError(f"scale must be 'he', None or a positive float, got {scale!r}")
    new = copy.deepcopy(model)
    wl, idx = _resolve(new, layers, example_input)
    if cascade_from_top is not None:
        if layers is not None:
            raise NFRError("give either layers= or cascade_from_top=, not both")
        L = len(wl)
        k = int(cascade_from_top)
        if not 0 <= k <= L:
            raise NFRError(f"cascade_from_top={k} out of range 0..{L} (the model has L = {L} weight layers)")
        idx = list(range(L - k + 1, L + 1))
    for l in idx:
        name, mod = wl[l - 1]
        w = mod.weight
        n = _fan_in(mod)
        if scale == "he":
            s = he_std(mod)
        elif scale is None:
            s = 1.0
        elif isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale > 0:
            s = float(scale)
        else:
            raise NFRError(f"scale must be 'he', None or a positive float, got {scale!r}")
        sample = _sample((w.shape[0], n), dist, s, _generator(seed, l), unit=scale is None)
        w.copy_(sample.reshape(w.shape).to(dtype=w.dtype, device=w.device))
        if mod.bias is not None and bias == "zero":
            mod.bias.zero_()
    return new


def cascading_randomizations(model: nn.Module, dist: str = "gaussian", seed: int = 0,
                             **kwargs) -> Iterator[tuple[int, nn.Module]]:
    """Yield ``(k, model_k)`` for k = 0..L, model_k with the top k layers randomized.

    Cascading top-down randomization of Adebayo et al. (2018): k = 0 is an unchanged copy; step
    k additionally randomizes layer L-k+1. Layer l gets the same random weights at every k (its
    generator depends only on (seed, l)), so model_k and model_{k+1} differ in exactly one layer.
    Each yielded model is a separate copy.

    Parameters
    ----------
    model : torch.nn.Module
        The model (not modified).
    dist : str
        The distribution, as in :func:`randomize`. Default ``"gaussian"``.
    seed : int
        The seed, as in :func:`randomize`. Default 0.
    **kwargs
        Further arguments of :func:`randomize` (not ``layers`` or ``cascade_from_top``).

    Yields
    ------
    tuple of (int, torch.nn.Module)
        ``(k, model_k)`` for k = 0..L.
    """
    L = len(weight_layers(model))
    for k in range(L + 1):
        yield k, randomize(model, dist, seed, cascade_from_top=k, **kwargs)


# --------------------------------------------------------------------------------------------
# removal
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def remove(model: nn.Module, layers=None, *, linear_keep: float = 0.0025, choice: str = "first",
           seed: int = 0, cascade_from_top: int | None = None) -> nn.Module:
    """A copy of ``model`` with weights removed (set to zero) in the selected layers (Fig 5 of Zheng et al.).

    * Linear (out x n): only k = max(1, ceil(linear_keep * n)) input dimensions are kept
      (linear_keep = 0.25% by default) -- the same k columns for every neuron; all other columns
      are set to 0. ``choice="first"`` keeps columns 0..k-1; ``choice="random"`` keeps k columns
      drawn without replacement from a generator seeded with (seed, l).
    * Conv2d (out, in, kh, kw): every kernel keeps only its first row and first column,
      ``W[..., 0, :]`` and ``W[..., :, 0]``; ``W[..., 1:, 1:] = 0`` (a 3x3 kernel keeps 5 of 9
      entries; a 1x1 kernel is unchanged).

    Biases are kept.

    Parameters
    ----------
    model : torch.nn.Module
        The model (not modified).
    layers : int, str or iterable, optional
        The layers, as in :func:`randomize` (None: all).
    linear_keep : float
        The fraction of a Linear layer's inputs kept, in (0, 1]. Default 0.0025.
    choice : str
        ``"first"`` (default) or ``"random"``: which Linear columns are kept.
    seed : int
        Seed of the ``"random"`` choice. Default 0.
    cascade_from_top : int, optional
        Select the top k layers, as in :func:`randomize`.

    Returns
    -------
    torch.nn.Module
        The copy with weights removed.

    Raises
    ------
    nfr.NFRError
        For a bad ``choice`` or ``linear_keep``, both ``layers`` and ``cascade_from_top``,
        ``cascade_from_top`` outside 0..L; and (from the layer selection) a model without
        weight layers or a bad layer selector.
    """
    if choice not in ("first", "random"):
        raise NFRError(f"choice must be 'first' or 'random', got {choice!r}")
    if not 0 < linear_keep <= 1:
        raise NFRError(f"linear_keep must be in (0, 1], got {linear_keep!r}")
    new = copy.deepcopy(model)
    wl, idx = _resolve(new, layers)
    if cascade_from_top is not None:
        if layers is not None:
            raise NFRError("give either layers= or cascade_from_top=, not both")
        L = len(wl)
        if not 0 <= int(cascade_from_top) <= L:
            raise NFRError(f"cascade_from_top={cascade_from_top} out of range 0..{L}")
        idx = list(range(L - int(cascade_from_top) + 1, L + 1))
    for l in idx:
        _, mod = wl[l - 1]
        w = mod.weight
        if isinstance(mod, nn.Linear):
            n = w.shape[1]
            k = removal_kept_inputs(n, linear_keep)
            if choice == "first":
                keep = torch.arange(k)
            else:
                keep = torch.randperm(n, generator=_generator(seed, l))[:k].sort().values
            mask = torch.zeros(n, dtype=torch.bool)
            mask[keep] = True
            w[:, ~mask.to(w.device)] = 0
        else:
            w[..., 1:, 1:] = 0
    return new


def removal_kept_inputs(n: int, linear_keep: float = 0.0025) -> int:
    """Number of input dimensions a Linear layer with ``n`` inputs keeps under :func:`remove`."""
    return max(1, math.ceil(linear_keep * n - 1e-9))


# --------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def weight_stats(model: nn.Module, max_neurons: int = 512, seed: int = 0, layers=None) -> list[dict]:
    """Per weight layer: pairwise cosine between neurons and the spread of their norms (Fig 2b,c of Zheng et al.).

    For layer l with neuron vectors w_1..w_m (rows of the flattened weight, float64):

    * ``cos_mean``, ``cos_std``: mean and (population) std of c_ij = <w_i, w_j> / (||w_i|| ||w_j||)
      over all pairs i < j of neurons with nonzero norm. For i.i.d. isotropic weights
      E[c] = 0 and std(c) = 1/sqrt(n) (n = fan-in);
    * ``norm_mean``, ``norm_std``: mean and std of ||w_i||; ``norm_cv`` = norm_std / norm_mean
      (coefficient of variation; ~ 1/sqrt(2n) for Gaussian weights, 0 for ring/orthogonal);
    * ``kurtosis``: mean(w^4) / mean(w^2)^2 over all entries of the used neurons (no centring;
      the weights are meant to be zero-mean). 3 for Gaussian entries, 3n/(n+2) for ring, 1.8 for
      uniform. Pairwise cosines and norms cannot tell uniform from Gaussian weights; this can:
      i.i.d. entries give an isotropic distribution only when they are Gaussian (Maxwell), so a
      kurtosis far from 3 flags the non-isotropy of Fig 3 of Zheng et al. (bottom).

    When m > ``max_neurons`` a subset of ``max_neurons`` neurons is drawn without replacement
    from a generator seeded with (seed, l); ``n_used`` says how many were used. The norm
    statistics use the same subset. Works on raw models (BatchNorm is ignored, not merged).

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    max_neurons : int
        The most neurons used per layer. Default 512.
    seed : int
        Seed of the neuron subset. Default 0.
    layers : int, str or iterable, optional
        The layers, as in :func:`randomize` (None: all).

    Returns
    -------
    list of dict
        One dict per selected layer with keys index, name, type, n_neurons, fan_in, n_used,
        n_zero, cos_mean, cos_std, norm_mean, norm_std, norm_cv, kurtosis (``n_zero``: the
        neurons of zero norm among those used; nan where a statistic is undefined).
    """
    wl, idx = _resolve(model, layers)
    out = []
    for l in idx:
        name, mod = wl[l - 1]
        w = mod.weight.detach().to("cpu", torch.float64).reshape(mod.weight.shape[0], -1)
        m, n = w.shape
        if m > max_neurons:
            pick = torch.randperm(m, generator=_generator(seed, l))[:max_neurons]
            w = w[pick]
        norms = w.norm(dim=1)
        nz = norms > 0
        u = w[nz] / norms[nz, None]
        k = u.shape[0]
        if k >= 2:
            c = u @ u.T
            iu = torch.triu_indices(k, k, offset=1)
            cv = c[iu[0], iu[1]]
            cos_mean, cos_std = float(cv.mean()), float(cv.std(unbiased=False))
        else:
            cos_mean = cos_std = float("nan")
        nm, ns = float(norms.mean()), float(norms.std(unbiased=False))
        m2 = float((w ** 2).mean())
        kurt = float((w ** 4).mean()) / m2 ** 2 if m2 > 0 else float("nan")
        out.append(dict(index=l, name=name, type=type(mod).__name__, n_neurons=m, fan_in=n,
                        n_used=int(w.shape[0]), n_zero=int((~nz).sum()), cos_mean=cos_mean,
                        cos_std=cos_std, norm_mean=nm, norm_std=ns,
                        norm_cv=ns / nm if nm > 0 else float("nan"), kurtosis=kurt))
    return out
