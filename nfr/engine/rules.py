"""Rules as modified backward passes of the canonical modules (custom autograd Functions).

Vocabulary (Zennit's): a *rule* says how relevance passes one layer; a *composite* maps the
layer index l = 1..L to a rule name (cascade substitution is a composite that changes at depth
N). Notation of Zheng, Sang and Xu, "Unifying Perplexing Behaviors in Modified BP Attributions
through Alignment Perspective", Section III-A: r_l is the relevance reaching A_l, M_l = diag(1(Z_l > 0)).

Rules acting at a :class:`~nfr.engine.canonize.Gate` (layer l's ReLU):

* ``grad``     (eq 5)  r_{l-1} = W_l M_l r_l
* ``gbp``      (eq 6)  r_{l-1} = W_l M_l relu(r_l)
* ``rectgrad`` (eq 15) r_{l-1} = W_l M_l (r_l * 1(A_l * r_l > tau_l)), tau_l = the per-sample
  q-quantile of A_l * r_l over all units of the gate (linear interpolation, as ``torch.quantile``
  and NumPy's default), computed exactly by selection (O(n), no full sort)

Rules acting at a :class:`~nfr.engine.canonize.Weighted` (W_l itself):

* ``alphabeta`` (eq 9) R_i = sum_j (alpha z+_ij / sum_k z+_kj - beta z-_ij / sum_k z-_kj) R_j with
  z+-_ij the positive / negative parts of a_i w_ij and R_j = z_j g_j (bias excluded); in filter
  form c_i = (W+ h+ - W- h-)_i for a_i >= 0 and (W- h+ - W+ h-)_i for a_i < 0,
  h+ = alpha R / s+, h- = beta R / s- (alpha = 1, beta = 0 is z+).

* ``zplus``  (eq 10, filter form) c_{l-1} = W^{(+a)}_l (gamma_l * g_l) with g_l = M_l c_l the
  relevance at Z_l, gamma_j = z_j / s_j, z_j = sum_i a_i w_ij (bias excluded),
  s_j = sum_i (a_i w_ij)^+ (gamma_j := 0 where s_j == 0), and W^{(+a)} the weight masked to the
  terms with positive contribution: for a_i >= 0 the mask is 1(w_ij > 0), for a_i < 0 it is
  1(w_ij < 0) (the z+_ij = (a_i w_ij)^+ of that paper; the book's pitfalls page). The LRP relevance is R = A * c.
* ``zbox``   (eq 11) the z^B rule of DTD at the input layer, box [low, high]:
  R_{0,i} = sum_j (x_i w_ij - low_i w_ij^+ - high_i w_ij^-) / d_j * R_{1,j},
  d_j = sum_i (x_i w_ij - low_i w_ij^+ - high_i w_ij^-), R_1 = A_1 * c_1 (ratio 0 where d_j == 0).
  Its backward returns R_0 itself (not a gradient).

Stabiliser: denominators d -> d + eps * sign0(d), sign0(0) = +1; with eps = 0 a zero denominator
gives ratio 0 (a dead neuron passes no relevance; the all-inactive layer returns zeros, no NaN).

The mode of each module is read when its backward runs, so one forward can serve several backward
passes with different composites (the batched cascade).
"""
from __future__ import annotations

import atexit
from concurrent.futures import ThreadPoolExecutor

import weakref
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

__all__ = ["RuleState", "GATE_RULES", "WEIGHT_RULES", "LAYER_RULES", "row_quantile",
           "gate_forward", "weighted_forward"]

GATE_RULES = ("gbp", "rectgrad")
WEIGHT_RULES = ("zplus", "alphabeta", "zbox")
LAYER_RULES = ("grad",) + GATE_RULES + WEIGHT_RULES


@dataclass
class RuleState:
    """Per-module state for one attribution call (``module.nfr_state``).

    ``mode`` is read at backward time; ``custom`` (fixed at forward time) says whether the module
    runs through the custom Function at all (False = native autograd, used when the module is
    raw-gradient for the whole call); ``keep`` stores the module output in ``output``.

    Parameters
    ----------
    mode : str
        The layer rule applied at backward time: ``"grad"`` (default), a gate rule
        (``"gbp"``, ``"rectgrad"``) or a weight rule (``"zplus"``, ``"alphabeta"``,
        ``"zbox"``).
    custom : bool
        Run the module through the custom autograd Function. Default False.
    keep : bool
        Store the module's output in ``output``. Default False.
    output : torch.Tensor, optional
        The stored output (set during the forward when ``keep``).
    q : float
        RectGrad's quantile level. Default 0.9.
    eps : float
        Stabiliser of the weight rules' denominators. Default 0.0.
    low, high : float or torch.Tensor, optional
        The z^B box bounds.
    gated : bool
        Whether the weight layer has a ReLU gate (z^B then takes R_1 = relu(Z_1) * c_1, else
        Z_1 * c_1). Default True.
    extra : dict
        Further rule parameters: ``"alpha"`` and ``"beta"`` of the alpha-beta rule. Default
        empty.
    """

    mode: str = "grad"
    custom: bool = False
    keep: bool = False
    output: torch.Tensor | None = None
    q: float = 0.9
    eps: float = 0.0
    low: object = None
    high: object = None
    gated: bool = True
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- quantile
_POOL = None


def _pool():
    """Threads for the per-row CPU selections (NumPy releases the GIL while it partitions)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max(1, min(4, torch.get_num_threads())),
                                   thread_name_prefix="nfr-select")
        atexit.register(_POOL.shutdown, wait=False)      # closed when the interpreter exits
    return _POOL


def _np_kth_pair(row: np.ndarray, k: int):
    """v_(k), v_(k+1) of a 1-D NumPy row (0-based, ascending).

    Introselect slows down by an order of magnitude on long runs of equal values, and a gate's
    products A * r are mostly exact zeros (about half of them in VGG16, 85% below a max-pool).
    So the row is split by sign: one comparison tells how many entries are positive, and when
    both order statistics fall among them (RectGrad's usual case, q = 0.9 with more than 10% of
    the products positive) they are selected from the positive entries alone, compressed with
    that same mask. Otherwise the negatives are counted too: with at most half zeros the row is
    partitioned whole; an order statistic that falls in the run of zeros is 0, and one among the
    negative (positive) entries is selected from those entries alone.
    """
    n = row.size
    j2 = min(k + 1, n - 1)
    pos = row > 0
    npos = int(np.count_nonzero(pos))
    if k >= n - npos:                    # v_(k) and v_(k+1) both positive: the split of the
        nneg, nzero = 0, n - npos        # n - npos others into negatives and zeros is not needed
    else:
        nneg = int(np.count_nonzero(row < 0))
        nzero = n - npos - nneg
        if 2 * nzero <= n:
            c = np.partition(row, k)
            return c[k], (c[k + 1:].min() if k + 1 < n else c[k])
    parts = {}

    def stat(j):
        if nneg <= j < nneg + nzero:
            return row.dtype.type(0)
        neg = j < nneg
        jj = j if neg else j - nneg - nzero
        if neg not in parts:
            sub = np.compress(row < 0 if neg else pos, row)
            parts[neg] = (np.partition(sub, jj), jj)
        c, done = parts[neg]        # stat(k) partitioned at done; stat(k + 1) is done or done + 1
        return c[jj] if jj == done else c[done + 1:].min()

    return stat(k), stat(j2)


def _kth_pair(flat: torch.Tensor, k: int):
    """Per row of ``flat`` [B, n]: the order statistics v_(k) and v_(k+1) (0-based, ascending),
    each as a tensor [B, 1] of flat's dtype.

    CPU: ``numpy.partition`` (introselect, SIMD-accelerated in NumPy >= 2; on this project's
    machine about 10x faster than ``torch.kthvalue`` on CPU), rows spread over threads; after the
    partition every entry right of position k is >= v_(k), so v_(k+1) is their minimum.
    Other devices: one batched ``torch.kthvalue`` and v_(k+1) = v_(k) when at least k + 2 entries
    are <= v_(k), otherwise the smallest entry above v_(k).
    """
    B, n = flat.shape
    if flat.device.type == "cpu" and flat.dtype in (torch.float32, torch.float64):
        a = flat.detach().contiguous().numpy()
        rows = list(_pool().map(lambda r: _np_kth_pair(r, k), a)) if B > 1 else \
            [_np_kth_pair(a[0], k)]
        lo = torch.tensor([r[0] for r in rows], dtype=flat.dtype).view(B, 1)
        hi = torch.tensor([r[1] for r in rows], dtype=flat.dtype).view(B, 1)
        return lo, hi
    lo = torch.kthvalue(flat, k + 1, dim=1, keepdim=True).values
    if k + 1 >= n:
        return lo, lo
    ties = torch.count_nonzero(flat <= lo, dim=1).unsqueeze(1) >= k + 2
    above = torch.where(flat > lo, flat, torch.full_like(lo, float("inf"))).amin(1, keepdim=True)
    return lo, torch.where(ties, lo, above)


def row_quantile(p: torch.Tensor, q: float) -> torch.Tensor:
    """Per-sample q-quantile of ``p`` over all non-batch dims, shape ``[B, 1, ..., 1]``.

    Linear interpolation exactly as ``torch.quantile`` (rank = q (n - 1) in p's dtype,
    ``lerp(v_(k), v_(k+1), rank - k)``, k = floor(rank)), which is NumPy's default method.
    O(n) per row without a full sort: v_(k) and v_(k+1) by selection (``_kth_pair``).

    Parameters
    ----------
    p : torch.Tensor
        The values ``[B, ...]``.
    q : float
        The quantile level in [0, 1].

    Returns
    -------
    torch.Tensor
        The quantiles, shape ``[B, 1, ..., 1]`` (as many dims as ``p``), in p's dtype and on
        its device.
    """
    B = p.shape[0]
    flat = p.reshape(B, -1)
    n = flat.shape[1]
    rank = torch.tensor(q, dtype=p.dtype) * (n - 1)
    k = min(int(rank), n - 1)
    w = rank.to(p.device) - k
    lo, hi = _kth_pair(flat, k)
    return torch.lerp(lo.to(p.device), hi.to(p.device), w).view((B,) + (1,) * (p.dim() - 1))


def _rect_gate(g: torch.Tensor, out: torch.Tensor, q: float, upper) -> torch.Tensor:
    """RectGrad at a gate (eq 15): M (g * 1(out * g > tau)), tau the per-sample q-quantile of out * g.

    With tau >= 0 (the usual case) ``out * g > tau`` already implies out > 0, so the whole rule is
    one fused ``threshold_backward(g, out * g, tau)`` per sample instead of a mask, a product and
    the ReLU's own mask; with tau < 0 (fewer than 1 - q of the products positive) or a clamp gate
    the ReLU mask M is applied as well.
    """
    p = out * g
    tau = row_quantile(p, q).reshape(-1).tolist()
    res = p              # the result overwrites p row by row (after its threshold is known):
    for b, t in enumerate(tau):       # one large allocation per gate, as for the plain gradient
        torch.ops.aten.threshold_backward.grad_input(g[b], p[b], t, grad_input=res[b])
        if upper is not None:
            res[b].mul_((out[b] > 0) & (out[b] < upper))
        elif t < 0:
            torch.ops.aten.threshold_backward.grad_input(res[b], out[b], 0, grad_input=res[b])
    return res


# ----------------------------------------------------------------------------- gates
class _GateFn(torch.autograd.Function):
    """ReLU / clamp(0, upper) whose backward applies the gate rule; saves only its output
    (M_l = 1(out > 0), and out < upper for a clamp), like the native in-place ReLU."""

    @staticmethod
    def forward(ctx, x, upper, st, inplace, grad_inplace=False):
        if inplace:
            out = x.relu_() if upper is None else x.clamp_(0.0, upper)
            ctx.mark_dirty(x)
        else:
            out = torch.relu(x) if upper is None else torch.clamp(x, 0.0, upper)
        ctx.save_for_backward(out)
        ctx.upper, ctx.st, ctx.grad_inplace = upper, st, grad_inplace
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        mode = ctx.st.mode
        none = (None,) * 4
        if mode == "rectgrad":
            return (_rect_gate(g, out, ctx.st.q, ctx.upper),) + none
        if mode not in ("gbp", "grad"):
            raise RuntimeError(f"gate rule {mode!r}")
        # the incoming gradient is overwritten only where the canonizer proved nobody else
        # holds it (Gate.grad_inplace); autograd's own ReLU always allocates a new one
        own = ctx.grad_inplace and g.is_contiguous()
        if ctx.upper is None:                                     # g * 1(out > 0), fused
            g = torch.ops.aten.threshold_backward.grad_input(g, out, 0, grad_input=g) if own \
                else torch.ops.aten.threshold_backward(g, out, 0)
        else:
            mask = (out > 0) & (out < ctx.upper)
            g = g.mul_(mask) if own else g * mask
        if mode == "gbp":
            g = g.clamp_(min=0)          # relu(r) then M: same result, one buffer
        return (g,) + none


def _source_kept(gate: nn.Module) -> bool:
    """Is the output this gate may overwrite kept by the caller (gradients are taken at it)?"""
    st = getattr(gate.source[0], "nfr_state", None) if gate.source else None
    return bool(st is not None and st.keep)


def gate_forward(gate: nn.Module, x: torch.Tensor, st: RuleState) -> torch.Tensor:
    """Forward of a :class:`~nfr.engine.canonize.Gate` during an attribution call (in place on ``x`` when the
    canonizer marked the gate ``inplace``; the raw-gradient backward is then the same
    ``threshold_backward(g, out, 0)`` that autograd's own ReLU uses, written into the incoming
    gradient when the canonizer marked the gate ``grad_inplace`` and the caller does not keep
    its output).

    Parameters
    ----------
    gate : torch.nn.Module
        The :class:`~nfr.engine.canonize.Gate`.
    x : torch.Tensor
        The gate's input.
    st : RuleState
        The gate's state; its output is stored in ``st.output`` when ``st.keep``.

    Returns
    -------
    torch.Tensor
        ``relu(x)``, or ``clamp(x, 0, upper)`` for a ReLU6 gate.
    """
    inplace = gate.inplace and not _source_kept(gate)
    grad_inplace = gate.grad_inplace and not st.keep
    if st.custom or inplace or grad_inplace:
        out = _GateFn.apply(x, gate.upper, st, inplace, grad_inplace)
    else:
        out = torch.relu(x) if gate.upper is None else torch.clamp(x, 0.0, gate.upper)
    if st.keep:
        st.output = out
    return out


# ----------------------------------------------------------------------------- weight layers
def _input_grad(mod: nn.Module, a: torch.Tensor, weight: torch.Tensor, h: torch.Tensor):
    """(W h): the vector-Jacobian product of the layer's linear map w.r.t. its input."""
    inner = mod.inner
    if isinstance(inner, nn.Linear):
        return h.matmul(weight)
    return torch.ops.aten.convolution_backward(
        h, a, weight, None, list(inner.stride), list(inner.padding), list(inner.dilation),
        False, [0, 0], inner.groups, [True, False, False])[0]


def _stackable(mod: nn.Module) -> bool:
    return isinstance(mod.inner, nn.Linear) or mod.inner.groups == 1


def _stacked_linear(mod: nn.Module, parts, weights) -> torch.Tensor:
    """sum_i (W_i^T parts_i) (no bias) as ONE call: the parts stacked along the input channels
    (features) against the weights stacked alike. The signed first layer of z+ and the z^B
    rule need two or three such maps of a 3-channel image, whose cost is the writing of the
    64-channel output, not the arithmetic: one stacked convolution writes it once."""
    if not _stackable(mod):
        return sum(mod.linear(p, w) for p, w in zip(parts, weights))
    return mod.linear(torch.cat(parts, 1), torch.cat(weights, 1))


def _stacked_input_grads(mod: nn.Module, a: torch.Tensor, weights, h: torch.Tensor):
    """[W_i h for each weight] from ONE vector-Jacobian product against the stacked weights."""
    if not _stackable(mod):
        return [_input_grad(mod, a, w, h) for w in weights]
    Wc = torch.cat(weights, 1)
    if isinstance(mod.inner, nn.Linear):
        return list(h.matmul(Wc).split(a.shape[-1], dim=-1))
    inner = mod.inner
    shape = (a.shape[0], Wc.shape[1]) + tuple(a.shape[2:])
    like = torch.zeros((), dtype=a.dtype, device=a.device).expand(shape)   # shape only
    gc = torch.ops.aten.convolution_backward(
        h, like, Wc, None, list(inner.stride), list(inner.padding), list(inner.dilation),
        False, [0, 0], inner.groups, [True, False, False])[0]
    return list(gc.split(a.shape[1], dim=1))


def _safe_div(num, den, eps):
    """num / den with d -> d + eps sign0(d) (sign0(0) = +1); a zero denominator gives 0."""
    if eps:
        den = den + torch.where(den >= 0, eps, -eps).to(den.dtype)
    return (num / den).masked_fill_(den == 0, 0.0)


def _ratio_into(num, den, eps):
    """:func:`_safe_div` written into ``den``'s own buffer (``den`` must be a fresh temporary):
    a large allocation costs more than the division itself (page faults of a new buffer). When
    every denominator is positive (one reduction tells; z+'s denominator sum_i (a_i w_ij)^+ is
    >= 0, and z^B's is >= 0 inside the box) the zero mask and its pass are skipped."""
    if eps:
        return _safe_div(num, den, eps)
    if den.numel() and bool(den.amin() > 0):
        return torch.div(num, den, out=den)
    zero = den == 0
    return torch.div(num, den, out=den).masked_fill_(zero, 0.0)


_POS_CACHE: dict = {}


def _positive(W: torch.Tensor) -> torch.Tensor:
    """W^+ = max(W, 0), cached per weight tensor across calls (the fully connected layers of
    VGG16 hold 10^8 entries: clamping them on every call would cost more than the backward).

    The entry is keyed by the tensor's identity and invalidated when its storage or version
    counter changes (any in-place update, ``load_state_dict``, ``randomize`` in place) or when
    the tensor is freed; the cache never holds a reference that keeps a weight alive.
    """
    key = id(W)
    hit = _POS_CACHE.get(key)
    if hit is not None:
        ref, ptr, ver, Wp = hit
        if ref() is W and ptr == W.data_ptr() and ver == W._version:
            return Wp
    Wp = W.detach().clamp(min=0)
    try:
        ref = weakref.ref(W, lambda _r, k=key: _POS_CACHE.pop(k, None))
    except TypeError:            # not weak-referenceable: no caching
        return Wp
    _POS_CACHE[key] = (ref, W.data_ptr(), W._version, Wp)
    return Wp


def _box(b, a):
    if isinstance(b, torch.Tensor):
        return b.to(a.dtype).expand_as(a)
    return torch.full_like(a, float(b))


def _add_bias(mod: nn.Module, z0: torch.Tensor) -> torch.Tensor:
    """Z = z0 + b as a NEW tensor (z0 = W^T a is kept for the rules)."""
    b = mod.bias
    if b is None:
        return z0.clone()
    shape = (-1,) + (1,) * (z0.dim() - 2) if isinstance(mod.inner, nn.Conv2d) else (-1,)
    return z0 + b.view(shape)


class _WeightFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, mod, st):
        z0 = mod.linear(a, mod.weight)
        ctx.save_for_backward(a, z0)        # not the output: a gate may overwrite it in place
        ctx.mod, ctx.st = mod, st
        return _add_bias(mod, z0)

    @staticmethod
    def backward(ctx, g):
        a, z0 = ctx.saved_tensors
        mod, st = ctx.mod, ctx.st
        W = mod.weight.detach()
        mode = st.mode
        if mode == "grad":
            return _input_grad(mod, a, W, g), None, None
        Wp = _positive(mod.weight)
        if mode == "zplus":
            signed = bool(a.amin() < 0)
            if signed:
                Wn = W - Wp
                s = _stacked_linear(mod, (a.clamp(min=0), a.clamp(max=0)), (Wp, Wn))
            else:
                s = mod.linear(a, Wp)
            h = _ratio_into(z0, s, st.eps).mul_(g)
            if signed:
                cp, cn = _stacked_input_grads(mod, a, (Wp, Wn), h)
                return torch.where(a < 0, cn, cp), None, None
            return _input_grad(mod, a, Wp, h), None, None
        if mode == "alphabeta":
            al, be = st.extra["alpha"], st.extra["beta"]
            Wn = W - Wp
            ap, an = a.clamp(min=0), a.clamp(max=0)
            sp = mod.linear(ap, Wp) + mod.linear(an, Wn)      # sum_i z+_ij
            sn = mod.linear(ap, Wn) + mod.linear(an, Wp)      # sum_i z-_ij
            R = z0 * g
            hp = _safe_div(R, sp, st.eps) * al
            hn = _safe_div(R, sn, st.eps) * be
            c = _input_grad(mod, a, Wp, hp) - _input_grad(mod, a, Wn, hn)
            if bool(a.amin() < 0):      # z+_ij = a_i w-_ij and z-_ij = a_i w+_ij where a_i < 0
                c = torch.where(a < 0, _input_grad(mod, a, Wn, hp) - _input_grad(mod, a, Wp, hn), c)
            return c, None, None
        if mode == "zbox":
            Wn = W - Wp
            low, high = _box(st.low, a), _box(st.high, a)
            d = z0 - _stacked_linear(mod, (low, high), (Wp, Wn))
            out = _add_bias(mod, z0)       # bit-identical to the forward's output (a new buffer)
            A = out.clamp_(min=0) if st.gated else out
            s = _ratio_into(A.mul_(g), d, st.eps)      # R_1 / d, written into d (fresh)
            ga, gl, gh = _stacked_input_grads(mod, a, (W, Wp, Wn), s)
            return a * ga - low * gl - high * gh, None, None
        raise RuntimeError(f"weight rule {mode!r}")


def weighted_forward(mod: nn.Module, a: torch.Tensor, st: RuleState) -> torch.Tensor:
    """Forward of a :class:`~nfr.engine.canonize.Weighted` during an attribution call.

    Parameters
    ----------
    mod : torch.nn.Module
        The :class:`~nfr.engine.canonize.Weighted` layer.
    a : torch.Tensor
        The layer's input (after its padding).
    st : RuleState
        The layer's state: with ``st.custom`` the layer runs through the rules' autograd
        Function; its output is stored in ``st.output`` when ``st.keep``.

    Returns
    -------
    torch.Tensor
        Z = W^T a + b.
    """
    if st.custom:
        out = _WeightFn.apply(a, mod, st)
    else:
        out = mod.linear(a, mod.weight, mod.bias)
    if st.keep:
        st.output = out
    return out
