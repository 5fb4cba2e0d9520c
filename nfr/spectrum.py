"""The relevance a rule sends down, layer by layer, for several target classes (Sixt et al.'s argument).

Sixt et al. explain the class-insensitivity of modified-BP maps by the product of non-negative
matrices converging to rank 1; :func:`relevance_spectrum` measures that rank and the sign of the
relevance vectors at every layer (chapter "Competing theories").
"""
from __future__ import annotations

import numpy as np
import torch

from nfr.engine import attribute as engine
from nfr.errors import NFRError
from nfr.metrics import effective_rank

__all__ = ["relevance_spectrum"]


def relevance_spectrum(model, x, targets, rule: str = "zplus", **kwargs) -> dict:
    """Effective rank and sign of the relevance a rule sends down for several target classes.

    ``x`` is ONE input [1, C, H, W] (or [C, H, W]); ``targets`` K class indices. The rule runs on
    K copies of x, one per target (``engine.attribute(..., record=True, bottom=False)``), giving
    relevance vectors r_l^(k) at every layer l = 0..L (r_0 the map w/o B, r_L the start vector).
    For each layer: ``erank[l]`` = :func:`nfr.metrics.effective_rank` of the K x d_l matrix of
    the flattened r_l^(k) (1 when all classes get the same direction: Sixt et al.'s rank-1
    convergence; K when they are orthogonal with equal norms), and ``mixed[l]`` = mean over k of
    min(fraction positive, fraction negative) among the non-zero entries of r_l^(k): 0 when every
    vector has one sign, as for a product of non-negative matrices applied to a one-signed start
    vector; near 0.5 for signed products. Lists indexed by l = 0..L.

    Parameters
    ----------
    model : torch.nn.Module
        The network (as for ``engine.attribute``).
    x : torch.Tensor
        ONE input, [1, C, H, W] or [C, H, W].
    targets : iterable of int
        The K class indices, one copy of ``x`` each.
    rule : str
        The rule (``engine.attribute``'s ``rule``). Default "zplus".
    **kwargs
        Further keyword arguments of ``engine.attribute`` (e.g. ``q``, ``alpha``, ``beta``).

    Returns
    -------
    dict
        ``erank`` and ``mixed`` (lists of floats indexed by l = 0..L) and ``L`` (int), the number
        of layers (the top layer's index).

    Raises
    ------
    nfr.NFRError
        If ``x`` is a batch of more than one input (or from ``engine.attribute``).
    """
    x = x if x.dim() == 4 else x.unsqueeze(0)
    if x.shape[0] != 1:
        raise NFRError(f"relevance_spectrum takes one input, got a batch of {x.shape[0]}")
    t = torch.as_tensor(list(targets), dtype=torch.long, device=x.device)
    xs = x.expand(len(t), *x.shape[1:]).contiguous()
    R, rec = engine.attribute(model, xs, t, rule, bottom=False, record=True, **kwargs)
    rel = {0: R, **rec["relevance"]}
    L = max(rel)
    erank, mixed = [], []
    for l in range(L + 1):
        M = rel[l].reshape(len(t), -1).double().cpu().numpy()
        erank.append(effective_rank(M))
        fr = [min((row > 0).sum(), (row < 0).sum()) / max(1, (row != 0).sum()) for row in M]
        mixed.append(float(np.mean(fr)))
    return dict(erank=erank, mixed=mixed, L=L)
