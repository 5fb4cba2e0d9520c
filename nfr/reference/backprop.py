"""Whole-network passes of the reference: rules chained layer by layer, cascade substitution
(Zheng et al., Definition 3, eq 19), the bottom processes of Table I, and input alignment (Definition 1).

Relevance enters at the output as ``r_L = e_k``. The rule of layer ``l`` acts at its ReLU
(GBP, RectGrad) or on ``W_l`` itself (z+). The output layer has no ReLU, so GBP and RectGrad leave
it unchanged and their cascade level 1 equals level 0; z+ acts on it too.

=============== ================================== ====================================
rule            main rule (``r_0``, "w/o B")        bottom process (Table I)
=============== ================================== ====================================
grad            eq 5                               ``r_0``
grad_x_input    eq 5                               ``x * r_0``
gbp             eq 6                               ``r_0``
rectgrad        eq 15, ``tau`` = q-quantile        ``relu(x * r_0)``
zplus           eq 10 in filter form (Prop 3)      ``x * r_0``
dtd             z+ in layers ``L..2``, gradient    z^B (eq 11) on ``R_1 = A_1 * r_1``
                through layer 1
activation      ``r_l = A_l`` at a chosen layer,   ``r_0``
                raw gradient below
=============== ================================== ====================================
"""
from __future__ import annotations

import numpy as np

from nfr.errors import NFRError
from nfr.reference import filters as flt
from nfr.reference import rules as rl
from nfr.reference.network import Forward, ToyNet, forward

RULES = ("grad", "grad_x_input", "gbp", "rectgrad", "zplus", "dtd", "activation")


def alignment(R: np.ndarray, x: np.ndarray) -> float:
    """Definition 1: ``alpha(R, x) = <R, x> / (||R|| ||x||)`` (0 when either norm is 0).

    Parameters
    ----------
    R : numpy.ndarray
        The map (flattened).
    x : numpy.ndarray
        The input (flattened), as many entries as ``R``.

    Returns
    -------
    float
        The cosine.
    """
    R, x = np.ravel(R), np.ravel(x)
    den = np.linalg.norm(R) * np.linalg.norm(x)
    return float(R @ x / den) if den > 0 else 0.0


def one_hot(net: ToyNet, k: int) -> np.ndarray:
    d_L = net.weights[-1].shape[1]
    if not 0 <= k < d_L:
        raise NFRError(f"target class {k} out of range: the network has {d_L} outputs")
    e = np.zeros(d_L)
    e[k] = 1.0
    return e


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise NFRError(f"unknown rule {rule!r}; choose one of {RULES}")


def layer_filter(rule: str, net: ToyNet, fwd: Forward, l: int, r: np.ndarray,
                 q: float = 0.9, eps: float = 0.0, normalise: bool = True, tau: float | None = None) -> np.ndarray:
    """The matrix ``F_l(W_l M_l)`` that ``rule`` applies at layer ``l`` given ``r_l``.

    Layers where the rule does not act (the output layer for GBP/RectGrad) get ``W_l M_l``.
    ``normalise=False`` gives z+'s filter without its per-neuron normaliser ``Gamma_l``;
    ``tau`` fixes RectGrad's threshold instead of taking the ``q``-quantile.

    Parameters
    ----------
    rule : str
        One of ``RULES`` (``"dtd"`` gives the z+ filter, with the signed-input mask at layer 1;
        ``"grad"``, ``"grad_x_input"`` and ``"activation"`` the raw ``W_l M_l``).
    net : ToyNet
        The network.
    fwd : Forward
        The forward pass at the input.
    l : int
        The layer, 1..L.
    r : numpy.ndarray
        ``r_l``, the vector reaching ``A_l``.
    q : float
        RectGrad's quantile level. Default 0.9.
    eps : float
        z+'s stabiliser. Default 0.0.
    normalise : bool
        Keep z+'s ``Gamma_l``. Default True.
    tau : float, optional
        RectGrad's fixed threshold (None: the ``q``-quantile).

    Returns
    -------
    numpy.ndarray
        ``F_l(W_l M_l)``, shape ``[d_{l-1}, d_l]``.

    Raises
    ------
    nfr.NFRError
        For an unknown rule.
    """
    W, m = net.weights[l - 1], fwd.M[l]
    is_output = l == net.L
    if rule in ("grad", "grad_x_input", "activation") or (rule in ("gbp", "rectgrad") and is_output):
        return W * m[None, :]
    if rule == "gbp":
        return flt.gbp_filter(W, m, r)
    if rule == "rectgrad":
        t = rl.rectgrad_threshold(fwd.A[l], r, q) if tau is None else tau
        return flt.rectgrad_filter(W, m, fwd.A[l], r, t)
    if rule in ("zplus", "dtd"):
        return flt.zplus_filter(W, fwd.A[l - 1], fwd.A[l], eps, signed_input=(l == 1), normalise=normalise)
    raise NFRError(f"unknown rule {rule!r}; choose one of {RULES}")


def backward(net: ToyNet, x: np.ndarray, k: int, rule: str, N: int | None = None, *,
             q: float = 0.9, eps: float = 0.0, tau: float | None = None,
             fwd: Forward | None = None) -> list[np.ndarray]:
    """Run the main rule and return ``[r_0, r_1, ..., r_L]``.

    ``N`` is the cascade level (eq 19): layers ``l > L - N`` use ``rule``, the others the raw
    gradient; ``N=None`` means every layer uses the rule. For ``dtd`` layer 1 always uses the
    gradient here (its z^B rule is the bottom process, see :func:`attribute`).
    For ``activation`` use :func:`activation_backward`.

    Parameters
    ----------
    net : ToyNet
        The network.
    x : numpy.ndarray
        The input vector, shape ``[d_0]``.
    k : int
        The target class, ``r_L = e_k``.
    rule : str
        One of ``RULES`` except ``"activation"``.
    N : int, optional
        The cascade level, 0..L.
    q : float
        RectGrad's quantile level. Default 0.9.
    eps : float
        z+'s stabiliser. Default 0.0.
    tau : float, optional
        RectGrad's fixed threshold (None: the ``q``-quantile at every layer).
    fwd : Forward, optional
        The forward pass at ``x``, when already computed.

    Returns
    -------
    list of numpy.ndarray
        ``[r_0, r_1, ..., r_L]``.

    Raises
    ------
    nfr.NFRError
        For ``rule="activation"``, an unknown rule, ``N`` outside 0..L, or ``k`` out of range.
    """
    _check_rule(rule)
    if rule == "activation":
        raise NFRError("rule 'activation' starts from a layer: call activation_backward(net, x, layer)")
    fwd = forward(net, x) if fwd is None else fwd
    L = net.L
    N = L if N is None else N
    if not 0 <= N <= L:
        raise NFRError(f"cascade level N must be in 0..{L}, got {N}")
    r = [None] * (L + 1)
    r[L] = one_hot(net, k)
    for l in range(L, 0, -1):
        use = l > L - N and not (rule == "dtd" and l == 1)
        F = layer_filter(rule if use else "grad", net, fwd, l, r[l], q, eps, tau=tau)
        r[l - 1] = F @ r[l]
    return r


def activation_backward(net: ToyNet, x: np.ndarray, layer: int, *, fwd: Forward | None = None) -> list[np.ndarray]:
    """"Activation" (Table I, last column): set ``r_layer = A_layer``, raw gradient below.

    ``layer = 0`` gives ``r_0 = x``.

    Parameters
    ----------
    net : ToyNet
        The network.
    x : numpy.ndarray
        The input vector, shape ``[d_0]``.
    layer : int
        The start layer, 0..L-1 (a hidden layer, or the input).
    fwd : Forward, optional
        The forward pass at ``x``, when already computed.

    Returns
    -------
    list of numpy.ndarray
        ``[r_0, ..., r_layer]``.

    Raises
    ------
    nfr.NFRError
        If ``layer`` is outside 0..L-1.
    """
    fwd = forward(net, x) if fwd is None else fwd
    if not 0 <= layer < net.L:
        raise NFRError(f"activation layer must be in 0..{net.L - 1} (hidden layers), got {layer}")
    r = [None] * (layer + 1)
    r[layer] = fwd.A[layer].copy()
    for l in range(layer, 0, -1):
        r[l - 1] = rl.grad_layer(net.weights[l - 1], fwd.M[l], r[l])
    return r


def bottom(rule: str, x: np.ndarray, r: list[np.ndarray], net: ToyNet | None = None,
           fwd: Forward | None = None, low=None, high=None, eps: float = 0.0) -> np.ndarray:
    """The bottom process of Table I: the final map ``R`` from the main rule's result.

    Parameters
    ----------
    rule : str
        One of ``RULES``.
    x : numpy.ndarray
        The input vector.
    r : list of numpy.ndarray
        The main rule's ``[r_0, ..., r_L]`` (``dtd`` also reads ``r_1``).
    net : ToyNet, optional
        The network (``dtd`` only).
    fwd : Forward, optional
        The forward pass at ``x`` (``dtd`` only).
    low, high : float or numpy.ndarray, optional
        The input box of DTD's z^B rule (``dtd`` only; required there).
    eps : float
        z^B's stabiliser. Default 0.0.

    Returns
    -------
    numpy.ndarray
        The map R, shape ``[d_0]``.

    Raises
    ------
    nfr.NFRError
        For ``dtd`` without ``low`` and ``high``, or an unknown rule.
    """
    r0 = r[0]
    if rule in ("grad", "gbp", "activation"):
        return r0
    if rule in ("grad_x_input", "zplus"):
        return x * r0
    if rule == "rectgrad":
        return np.maximum(x * r0, 0.0)
    if rule == "dtd":
        if low is None or high is None:
            raise NFRError("dtd needs the input domain's bounds: pass low=... and high=...")
        R1 = fwd.A[1] * r[1]
        return rl.zb_layer(x, net.weights[0], R1, low, high, eps)
    raise NFRError(f"unknown rule {rule!r}; choose one of {RULES}")


def attribute(net: ToyNet, x: np.ndarray, k: int, rule: str, *, bottom_process: bool = True,
              layer: int | None = None, q: float = 0.9, tau: float | None = None, low=None, high=None,
              eps: float = 0.0) -> np.ndarray:
    """The attribution map of ``rule`` for class ``k`` (Table I); ``bottom_process=False`` gives "w/o B".

    Parameters
    ----------
    net : ToyNet
        The network.
    x : numpy.ndarray
        The input vector, shape ``[d_0]``.
    k : int
        The target class (unused by ``activation``).
    rule : str
        One of ``RULES``.
    bottom_process : bool
        Apply the rule's bottom process. Default True.
    layer : int, optional
        The start layer of ``activation`` (None: L-1, the last hidden layer).
    q : float
        RectGrad's quantile level. Default 0.9.
    tau : float, optional
        RectGrad's fixed threshold (None: the ``q``-quantile).
    low, high : float or numpy.ndarray, optional
        The input box of ``dtd``'s z^B rule (required by ``dtd`` with ``bottom_process``).
    eps : float
        The LRP stabiliser. Default 0.0.

    Returns
    -------
    numpy.ndarray
        The map, shape ``[d_0]``.
    """
    _check_rule(rule)
    x = np.asarray(x, dtype=np.float64)
    fwd = forward(net, x)
    if rule == "activation":
        r = activation_backward(net, x, net.L - 1 if layer is None else layer, fwd=fwd)
    else:
        r = backward(net, x, k, rule, q=q, eps=eps, tau=tau, fwd=fwd)
    if not bottom_process:
        return r[0]
    return bottom(rule, x, r, net, fwd, low, high, eps)


def cascade(net: ToyNet, x: np.ndarray, k: int, rule: str, levels=None, *, bottom_process: bool = False,
            q: float = 0.9, eps: float = 0.0) -> np.ndarray:
    """Cascade substitution (eq 19) for every level: array ``[len(levels), d_0]`` of ``r_0^N``.

    Level 0 is the raw gradient. For ``activation`` level ``N >= 1`` starts from ``A_{L-N}``.
    ``levels=None`` means ``0..L``. With ``bottom_process`` the rule's bottom process is applied
    (grad_x_input-like for z+), otherwise the main rule's ``r_0`` is returned.

    Parameters
    ----------
    net : ToyNet
        The network.
    x : numpy.ndarray
        The input vector, shape ``[d_0]``.
    k : int
        The target class.
    rule : str
        One of ``RULES`` except ``"dtd"`` (use ``"zplus"``).
    levels : iterable of int, optional
        The levels N, each in 0..L (None: 0..L).
    bottom_process : bool
        Apply the rule's bottom process. Default False.
    q : float
        RectGrad's quantile level. Default 0.9.
    eps : float
        z+'s stabiliser. Default 0.0.

    Returns
    -------
    numpy.ndarray
        ``[len(levels), d_0]``, row i for level ``levels[i]``.

    Raises
    ------
    nfr.NFRError
        For ``rule="dtd"`` or an unknown rule.
    """
    _check_rule(rule)
    if rule == "dtd":
        raise NFRError("cascade of 'dtd' is the cascade of its main rule: use rule='zplus'")
    x = np.asarray(x, dtype=np.float64)
    fwd = forward(net, x)
    levels = range(net.L + 1) if levels is None else levels
    out = []
    for N in levels:
        if rule == "activation":
            r = backward(net, x, k, "grad", fwd=fwd) if N == 0 else activation_backward(net, x, net.L - N, fwd=fwd)
        else:
            r = backward(net, x, k, rule, N, q=q, eps=eps, fwd=fwd)
        out.append(bottom(rule, x, r) if bottom_process else r[0])
    return np.stack(out)


def lrp(net: ToyNet, x: np.ndarray, k: int, rule: str = "zplus", *, low=None, high=None,
        eps: float = 0.0, alpha: float = 1.0, beta: float = 0.0) -> list[np.ndarray]:
    """LRP in relevance form, literally eqs 8-11: returns ``[R_0, ..., R_L]`` with ``R_L = f_k e_k``.

    ``rule``: ``"z"`` (eq 8, every layer), ``"zplus"`` (eq 10, every layer), ``"alphabeta"``
    (eq 9 with ``alpha``, ``beta``, every layer) or ``"dtd"`` (z+ in layers ``L..2``, z^B at
    layer 1).

    Parameters
    ----------
    net : ToyNet
        The network.
    x : numpy.ndarray
        The input vector, shape ``[d_0]``.
    k : int
        The target class.
    rule : str
        ``"z"``, ``"zplus"`` (default), ``"alphabeta"`` or ``"dtd"``.
    low, high : float or numpy.ndarray, optional
        The input box of z^B (required by ``"dtd"``).
    eps : float
        The stabiliser of every layer's denominators. Default 0.0.
    alpha, beta : float
        The weights of ``"alphabeta"``. Default 1.0 and 0.0.

    Returns
    -------
    list of numpy.ndarray
        ``[R_0, ..., R_L]``.

    Raises
    ------
    nfr.NFRError
        For ``"dtd"`` without ``low`` and ``high``, or an unknown rule.
    """
    x = np.asarray(x, dtype=np.float64)
    fwd = forward(net, x)
    R = [None] * (net.L + 1)
    R[net.L] = one_hot(net, k) * fwd.A[net.L]
    for l in range(net.L, 0, -1):
        W, a_prev = net.weights[l - 1], fwd.A[l - 1]
        if rule == "z":
            R[l - 1] = rl.lrp_z_layer(a_prev, W, R[l], net.bias(l), eps)
        elif rule == "alphabeta":
            R[l - 1] = rl.lrp_alpha_beta_layer(a_prev, W, R[l], alpha, beta, eps)
        elif rule == "zplus" or (rule == "dtd" and l > 1):
            R[l - 1] = rl.zplus_layer(a_prev, W, R[l], eps)
        elif rule == "dtd":
            if low is None or high is None:
                raise NFRError("dtd needs the input domain's bounds: pass low=... and high=...")
            R[0] = rl.zb_layer(x, W, R[1], low, high, eps)
        else:
            raise NFRError(f"unknown LRP rule {rule!r}; choose 'z', 'zplus', 'alphabeta' or 'dtd'")
    return R


def nfr_gaps(net: ToyNet, x: np.ndarray, k: int, rule: str, *, q: float = 0.9, eps: float = 0.0,
             normalise: bool = True, tau: float | None = None) -> list[tuple[int, float, bool]]:
    """Eq 13 along the rule's own backward pass: ``(l, gap_l, changed_l)`` for ``l = L..1``.

    ``gap_l = <A_{l-1}, F_l r_l> - <A_{l-1}, W_l M_l r_l>``; ``changed_l`` says whether the filter
    changed the product (``F_l r_l != W_l M_l r_l`` beyond rounding). The pass itself always uses
    the exact rule; ``normalise=False`` evaluates z+'s unnormalised filter on that pass's ``r_l``.

    Parameters
    ----------
    net : ToyNet
        The network.
    x : numpy.ndarray
        The input vector, shape ``[d_0]``.
    k : int
        The target class.
    rule : str
        One of ``RULES`` except ``"activation"``.
    q : float
        RectGrad's quantile level. Default 0.9.
    eps : float
        z+'s stabiliser. Default 0.0.
    normalise : bool
        Evaluate z+'s filter with its ``Gamma_l``. Default True.
    tau : float, optional
        RectGrad's fixed threshold (None: the ``q``-quantile).

    Returns
    -------
    list of (int, float, bool)
        ``(l, gap_l, changed_l)`` for ``l = L..1``.
    """
    fwd = forward(net, x)
    r = backward(net, x, k, rule, q=q, eps=eps, tau=tau, fwd=fwd)
    out = []
    for l in range(net.L, 0, -1):
        W, m, a_prev = net.weights[l - 1], fwd.M[l], fwd.A[l - 1]
        F = layer_filter(rule, net, fwd, l, r[l], q, eps, normalise, tau)
        filtered, raw = F @ r[l], W @ (m * r[l])
        changed = not np.allclose(filtered, raw, rtol=1e-12, atol=1e-12 * (1 + np.abs(raw).max()))
        out.append((l, flt.nfr_gap(a_prev, F, W, m, r[l]), changed))
    return out
