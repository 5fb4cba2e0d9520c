"""Rules as modified backward passes of the canonical modules (custom autograd Functions).

Vocabulary (Zennit's): a *rule* says how relevance passes one layer; a *composite* maps the
layer index l = 1..L to a rule name (cascade substitution is a composite that changes at depth
N). Notation of seed 001, Section III-A: r_l is the relevance reaching A_l, M_l = diag(1(Z_l > 0)).

Rules acting at a :class:`~nfr.engine.canonize.Gate` (layer l's ReLU):

* ``grad``     (eq 5)  r_{l-1} = W_l M_l r_l
* ``gbp``      (eq 6)  r_{l-1} = W_l M_l relu(r_l)
* ``rectgrad`` (eq 15) r_{l-1} = W_l M_l (r_l * 1(A_l * r_l > tau_l)), tau_l = the per-sample
  q-quantile of A_l * r_l over all units of the gate (linear interpolation, as ``torch.quantile``
  and NumPy's default), computed exactly by a histogram selection (O(n), no full sort)

Rules acting at a :class:`~nfr.engine.canonize.Weighted` (W_l itself):

* ``zplus``  (eq 10, filter form) c_{l-1} = W^{(+a)}_l (gamma_l * g_l) with g_l = M_l c_l the
  relevance at Z_l, gamma_j = z_j / s_j, z_j = sum_i a_i w_ij (bias excluded),
  s_j = sum_i (a_i w_ij)^+ (gamma_j := 0 where s_j == 0), and W^{(+a)} the weight masked to the
  terms with positive contribution: for a_i >= 0 the mask is 1(w_ij > 0), for a_i < 0 it is
  1(w_ij < 0) (the seed's z+_ij = (a_i w_ij)^+, PITFALLS #6). The LRP relevance is R = A * c.
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

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["RuleState", "GATE_RULES", "WEIGHT_RULES", "LAYER_RULES", "row_quantile",
           "gate_forward", "weighted_forward"]

GATE_RULES = ("gbp", "rectgrad")
WEIGHT_RULES = ("zplus", "zbox")
LAYER_RULES = ("grad",) + GATE_RULES + WEIGHT_RULES


@dataclass
class RuleState:
    """Per-module state for one attribution call (``module.nfr_state``).

    ``mode`` is read at backward time; ``custom`` (fixed at forward time) says whether the module
    runs through the custom Function at all (False = native autograd, used when the module is
    raw-gradient for the whole call); ``keep`` stores the module output in ``output``.
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
def _kth_pair(v: torch.Tensor, k: int):
    """The order statistics v_(k), v_(k+1) (0-based) of the 1-D tensor ``v`` by repeated
    histogram bucketing (each pass keeps the monotone bucket holding ranks k, k+1)."""
    n = v.numel()
    if k + 1 >= n:
        s = v.max()
        return s, s
    first = True
    for _ in range(16):
        if v.numel() <= 16384:
            break
        if first:   # exact split negative / zero / positive (ReLU layers hold many exact zeros)
            idx = (v > 0).to(torch.int64) - (v < 0).to(torch.int64) + 1
            nb = 3
            first = False
        else:
            lo, hi = v.min(), v.max()
            if bool(lo == hi):
                return lo, lo
            nb = 2048
            scale = nb / (hi.double() - lo.double())
            if not torch.isfinite(scale):
                break
            idx = ((v - lo).double() * scale).to(torch.int64).clamp_(0, nb - 1)
        cum = torch.bincount(idx, minlength=nb).cumsum(0)
        b1 = int((cum <= k).sum())
        b2 = int((cum <= k + 1).sum())
        before = int(cum[b1 - 1]) if b1 > 0 else 0
        v = v[idx == b1] if b1 == b2 else v[(idx >= b1) & (idx <= b2)]
        k -= before
    s = torch.sort(v).values
    return s[k], s[k + 1]


def row_quantile(p: torch.Tensor, q: float) -> torch.Tensor:
    """Per-sample q-quantile of ``p`` over all non-batch dims, shape ``[B, 1, ..., 1]``.

    Linear interpolation exactly as ``torch.quantile`` (rank = q (n - 1) in p's dtype,
    ``lerp(v_lo, v_hi, rank - floor(rank))``), which is NumPy's default method.
    """
    B = p.shape[0]
    flat = p.reshape(B, -1)
    n = flat.shape[1]
    rank = torch.tensor(q, dtype=p.dtype) * (n - 1)
    k = int(rank)
    w = rank - k
    out = torch.empty(B, dtype=p.dtype, device=p.device)
    for b in range(B):
        lo, hi = _kth_pair(flat[b], k)
        out[b] = torch.lerp(lo, hi, w.to(p.device))
    return out.view((B,) + (1,) * (p.dim() - 1))


# ----------------------------------------------------------------------------- gates
class _GateFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, upper, st):
        out = torch.relu(x) if upper is None else torch.clamp(x, 0.0, upper)
        ctx.save_for_backward(x, out)
        ctx.upper, ctx.st = upper, st
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        mask = x > 0
        if ctx.upper is not None:
            mask &= x < ctx.upper
        mode = ctx.st.mode
        if mode == "gbp":
            g = g.clamp(min=0)
        elif mode == "rectgrad":
            p = out * g
            g = g * (p > row_quantile(p, ctx.st.q))
        elif mode != "grad":
            raise RuntimeError(f"gate rule {mode!r}")
        return g * mask, None, None


def gate_forward(gate: nn.Module, x: torch.Tensor, st: RuleState) -> torch.Tensor:
    """Forward of a :class:`Gate` during an attribution call."""
    if st.custom:
        out = _GateFn.apply(x, gate.upper, st)
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


def _safe_div(num, den, eps):
    if eps:
        den = den + eps * torch.where(den >= 0, 1.0, -1.0).to(den.dtype)
    nz = den != 0
    return torch.where(nz, num / torch.where(nz, den, torch.ones_like(den)), torch.zeros_like(num))


def _box(b, a):
    if isinstance(b, torch.Tensor):
        return b.to(a.dtype).expand_as(a)
    return torch.full_like(a, float(b))


class _WeightFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, mod, st):
        W, b = mod.weight, mod.bias
        z0 = mod.linear(a, W)
        if b is not None:
            shape = (-1,) + (1,) * (z0.dim() - 2) if isinstance(mod.inner, nn.Conv2d) else (-1,)
            out = z0 + b.view(shape)
        else:
            out = z0.clone()
        ctx.save_for_backward(a, z0, out)
        ctx.mod, ctx.st = mod, st
        return out

    @staticmethod
    def backward(ctx, g):
        a, z0, out = ctx.saved_tensors
        mod, st = ctx.mod, ctx.st
        W = mod.weight.detach()
        mode = st.mode
        if mode == "grad":
            return _input_grad(mod, a, W, g), None, None
        Wp = W.clamp(min=0)
        Wn = W.clamp(max=0)
        if mode == "zplus":
            signed = bool((a < 0).any())
            if signed:
                s = mod.linear(a.clamp(min=0), Wp) + mod.linear(a.clamp(max=0), Wn)
            else:
                s = mod.linear(a, Wp)
            h = _safe_div(z0, s, st.eps) * g
            c = _input_grad(mod, a, Wp, h)
            if signed:
                neg = a < 0
                c = torch.where(neg, _input_grad(mod, a, Wn, h), c)
            return c, None, None
        if mode == "zbox":
            low, high = _box(st.low, a), _box(st.high, a)
            d = z0 - mod.linear(low, Wp) - mod.linear(high, Wn)
            A = out.clamp(min=0) if st.gated else out
            s = _safe_div(A * g, d, st.eps)
            R0 = (a * _input_grad(mod, a, W, s) - low * _input_grad(mod, a, Wp, s)
                  - high * _input_grad(mod, a, Wn, s))
            return R0, None, None
        raise RuntimeError(f"weight rule {mode!r}")


def weighted_forward(mod: nn.Module, a: torch.Tensor, st: RuleState) -> torch.Tensor:
    """Forward of a :class:`Weighted` during an attribution call."""
    if st.custom:
        out = _WeightFn.apply(a, mod, st)
    else:
        out = mod.linear(a, mod.weight, mod.bias)
    if st.keep:
        st.output = out
    return out
