"""Every backward rule of Zheng et al. (eqs 5-11), one layer at a time, written as the paper writes it.

Two kinds of quantity travel backwards:

* gradient-like vectors ``r_l`` at ``A_l`` (Grad eq 5, GBP eq 6, RectGrad eq 7/15);
* LRP relevances ``R_l`` with ``R_l = A_l * r_l`` (LRP-z eq 8, alpha-beta eq 9, z+ eq 10, z^B eq 11).

Each function maps the quantity at layer ``l`` to layer ``l-1`` for one weight matrix
``W = W_l`` of shape ``[d_{l-1}, d_l]``. The network-level passes that chain these steps, with
cascade substitution and the bottom process, are in :mod:`nfr.reference.backprop`; the same rules
as filters ``F_l(W_l M_l)`` (Definition 2) are in :mod:`nfr.reference.filters`.
"""
from __future__ import annotations

import numpy as np


# --------------------------------------------------------------------------- stabiliser
def sign0(z: np.ndarray) -> np.ndarray:
    """``sign`` with a defined value at zero: ``sign0(z) = +1`` for ``z >= 0``, ``-1`` otherwise."""
    return np.where(np.asarray(z) >= 0, 1.0, -1.0)


def safe_divide(num: np.ndarray, den: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """``num / (den + eps * sign0(den))``, with ``0/0 := 0``.

    The stabiliser pushes the denominator away from zero in the direction of its own sign (zero
    counts as positive). With ``eps = 0`` an exactly zero denominator gives 0: a neuron whose
    incoming contributions are all zero (a dead neuron, an all-inactive layer) passes no relevance,
    and nothing becomes NaN.
    """
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64) + eps * sign0(den)
    out = np.zeros(np.broadcast_shapes(num.shape, den.shape))
    np.divide(num, den, out=out, where=den != 0)
    return out


# --------------------------------------------------------------------------- gradient-like rules
def grad_layer(W: np.ndarray, m: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Eq 5, the raw gradient: ``r_{l-1} = W_l M_l r_l``."""
    return W @ (m * r)


def gbp_layer(W: np.ndarray, m: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Eq 6, Guided Backprop: ``r_{l-1} = W_l M_l sigma(r_l)`` with ``sigma = relu``."""
    return W @ (m * np.maximum(r, 0.0))


def rectgrad_threshold(a: np.ndarray, r: np.ndarray, q: float = 0.9) -> float:
    """RectGrad's ``tau``: the ``q``-quantile of ``A_l * r_l`` over the units of the layer.

    numpy's default (linear interpolation) quantile; the paper uses ``q = 0.9``.
    """
    return float(np.quantile(a * r, q))


def rectgrad_layer(W: np.ndarray, m: np.ndarray, a: np.ndarray, r: np.ndarray, tau: float) -> np.ndarray:
    """Eq 15, RectGrad: ``r_{l-1} = W_l M_l (r_l * 1(A_l * r_l > tau))``."""
    return W @ (m * r * (a * r > tau))


# --------------------------------------------------------------------------- LRP rules (relevances)
def contributions(a_prev: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``z_ij = a_i w_ij``: what input ``i`` sends to neuron ``j`` (bias excluded)."""
    return a_prev[:, None] * W


def lrp_z_layer(a_prev, W, R, b=None, eps: float = 0.0) -> np.ndarray:
    """Eq 8, LRP-z: ``R_{l-1,i} = sum_j z_ij / (sum_k z_kj + b_j) * R_{l,j}``."""
    z = contributions(a_prev, W)
    den = z.sum(axis=0) + (0.0 if b is None else b)
    return z @ safe_divide(R, den, eps)


def lrp_alpha_beta_layer(a_prev, W, R, alpha: float = 1.0, beta: float = 0.0, eps: float = 0.0) -> np.ndarray:
    """Eq 9: ``R_{l-1,i} = sum_j (alpha z+_ij / sum_k z+_kj - beta z-_ij / sum_k z-_kj) R_{l,j}``.

    ``z+ = max(z, 0)`` and ``z- = min(z, 0)`` with ``z_ij = a_i w_ij`` (the paper's definition; see
    the book's pitfalls page, pitfall 6: the positive part of the *product*, so a negative input
    times a negative weight counts as positive). ``alpha - beta = 1`` conserves relevance.
    """
    z = contributions(a_prev, W)
    zp, zn = np.maximum(z, 0.0), np.minimum(z, 0.0)
    out = alpha * (zp @ safe_divide(R, zp.sum(axis=0), eps))
    if beta:
        out = out - beta * (zn @ safe_divide(R, zn.sum(axis=0), eps))
    return out


def zplus_layer(a_prev, W, R, eps: float = 0.0) -> np.ndarray:
    """Eq 10, the z+ rule = LRP alpha=1, beta=0: ``R_{l-1,i} = sum_j z+_ij / sum_k z+_kj R_{l,j}``."""
    return lrp_alpha_beta_layer(a_prev, W, R, 1.0, 0.0, eps)


def zb_layer(x, W, R, low, high, eps: float = 0.0) -> np.ndarray:
    """Eq 11, DTD's z^B rule for box-bounded inputs ``low_i <= x_i <= high_i``.

    ``R_{0,i} = sum_j (x_i w_ij - l_i w+_ij - h_i w-_ij) / sum_k (x_k w_kj - l_k w+_kj - h_k w-_kj) R_{1,j}``
    with ``w+ = max(w, 0)`` and ``w- = min(w, 0)``. Every numerator term is ``>= 0`` inside the box.
    """
    low = np.broadcast_to(np.asarray(low, dtype=np.float64), x.shape)
    high = np.broadcast_to(np.asarray(high, dtype=np.float64), x.shape)
    zb = x[:, None] * W - low[:, None] * np.maximum(W, 0.0) - high[:, None] * np.minimum(W, 0.0)
    return zb @ safe_divide(R, zb.sum(axis=0), eps)
