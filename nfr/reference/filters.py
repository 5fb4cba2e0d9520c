"""Filtering rules ``r_{l-1} = F_l(W_l M_l) r_l`` (Zheng et al., Definition 2, Propositions 1-3).

Each function returns the *matrix* ``F_l(W_l M_l)`` of shape ``[d_{l-1}, d_l]`` so that the
filtered backward step is ``F @ r``. :func:`nfr_gap` evaluates the Negative Filtering Rule
inequality (eq 13).

z+ in filter form (the exact version of Proposition 3). For ``a = A_{l-1} >= 0`` the z+ rule
``R_{l-1,i} = sum_j z+_ij / s_j R_{l,j}`` (``s_j = sum_k z+_kj``) rewritten for ``r = R / A`` is

    r_{l-1} = (W_l * 1(W_l > 0)) M_l Gamma_l r_l,    Gamma_l = diag(z_j / s_j),

where ``z_j = sum_k a_k w_kj`` is the (bias-free) pre-activation. ``gamma_j = z_j / s_j`` lies in
``(0, 1]`` for every active neuron: it is the fraction of a neuron's positive input that survives
its negative input. So the normaliser is one positive factor *per neuron*, not one scalar
``gamma``; the paper's ``W_l diag(1(W_l > 0))`` is the element-wise mask ``W_l * 1(W_l > 0)``.
At the output layer (no ReLU, ``M_L = I``) ``gamma_k = f_k / s_k``.
For a signed input layer the mask is ``1(x_i w_ij > 0)`` (the paper's ``z+_ij = (x_i w_ij)^+``).
"""
from __future__ import annotations

import numpy as np

from nfr.reference.rules import safe_divide


def gbp_filter(W: np.ndarray, m: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Proposition 1: ``F^g_l(W_l M_l) = W_l M_l diag(1(r_l > 0))``."""
    return W * (m * (r > 0))[None, :]


def rectgrad_filter(W: np.ndarray, m: np.ndarray, a: np.ndarray, r: np.ndarray, tau: float) -> np.ndarray:
    """Proposition 2: ``F^r_l(W_l M_l) = W_l M_l diag(1(A_l * r_l > tau))``."""
    return W * (m * (a * r > tau))[None, :]


def zplus_gamma(a_prev: np.ndarray, W: np.ndarray, a_out: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """Per-neuron normaliser ``gamma_j = A_{l,j} / s_j`` with ``s_j = sum_i (a_i w_ij)^+``.

    For a bias-free hidden layer ``A_{l,j} = 1(z_j > 0) z_j``, so this is ``M_l diag(z / s)``
    (the mask is folded in). ``0/0 := 0`` (a neuron without positive input passes nothing).
    """
    s = np.maximum(a_prev[:, None] * W, 0.0).sum(axis=0)
    return safe_divide(a_out, s, eps)


def zplus_filter(W: np.ndarray, a_prev: np.ndarray, a_out: np.ndarray, eps: float = 0.0,
                 signed_input: bool = False, normalise: bool = True) -> np.ndarray:
    """Exact Proposition 3: ``F^+_l(W_l M_l) = (W_l * mask) M_l Gamma_l``.

    ``mask = 1(W_l > 0)`` for non-negative ``a_prev`` (hidden layers), ``1(a_i w_ij > 0)`` when
    ``signed_input`` (the input layer with a signed image), so that ``A_{l-1} * (F @ r_l)`` equals
    the literal z+ relevance of eq 10 exactly. ``normalise=False`` drops ``Gamma_l`` and keeps only
    the mask ``M_l = 1(A_l > 0)``: the paper's filter with ``gamma`` disregarded.
    """
    mask = (a_prev[:, None] * W > 0) if signed_input else (W > 0)
    if not normalise:
        return (W * mask) * (a_out > 0)[None, :]
    return (W * mask) * zplus_gamma(a_prev, W, a_out, eps)[None, :]


def nfr_gap(a_prev: np.ndarray, F: np.ndarray, W: np.ndarray, m: np.ndarray, r: np.ndarray) -> float:
    """Eq 13's two sides as one number: ``<A_{l-1}, F r_l> - <A_{l-1}, W_l M_l r_l>``.

    A negative filtering rule makes this ``> 0`` whenever the filter changes the product.

    Parameters
    ----------
    a_prev : numpy.ndarray
        ``A_{l-1}``, shape ``[d_{l-1}]``.
    F : numpy.ndarray
        The filter ``F_l(W_l M_l)``, shape ``[d_{l-1}, d_l]``.
    W : numpy.ndarray
        ``W_l``, shape ``[d_{l-1}, d_l]``.
    m : numpy.ndarray
        The mask ``M_l`` as a vector, shape ``[d_l]``.
    r : numpy.ndarray
        ``r_l``, shape ``[d_l]``.

    Returns
    -------
    float
        The gap.
    """
    return float(a_prev @ (F @ r) - a_prev @ (W @ (m * r)))
