"""Attributors: the public torch API ``attribute``, ``cascade`` and ``alignment``.

Notation of Zheng, Sang and Xu, "Unifying Perplexing Behaviors in Modified BP Attributions
through Alignment Perspective" (the alignment paper; Section III-A) and the project conventions: L weight layers, A_0 = x,
Z_l = W_l^T A_{l-1} + b_l, A_l = relu(Z_l), M_l = diag(1(Z_l > 0)), f = Z_L, r_L = e_k and
r_{l-1} = F_l(W_l M_l) r_l. What each rule returns is Table I of Zheng et al. (see :func:`attribute`). Which layer rule every layer uses (a composite) and how
it is installed on the graph: :mod:`nfr.engine.composites`.

Every call works on a private canonical copy of the model's graph (:mod:`nfr.engine.canonize`)
that shares the caller's parameters read-only: the caller's model is never modified (no hooks are
registered on it), and its parameters and outputs are bit-identical after any call.
"""
from __future__ import annotations

import numbers
import re

import torch
import torch.nn as nn

from nfr.engine.canonize import Tap, canonical, check_eval
from nfr.engine.composites import Session, bottom_process, composite_for
from nfr.errors import NFRError

__all__ = ["attribute", "cascade", "alignment", "RULES", "CASCADE_RULES"]

RULES = ("grad", "grad_x_input", "gbp", "rectgrad", "zplus", "alphabeta", "dtd", "activation",
         "activation_max", "activation_min")
CASCADE_RULES = ("grad", "grad_x_input", "gbp", "rectgrad", "zplus", "alphabeta", "dtd",
                 "activation")
_BELOW = ("grad", "gbp", "rectgrad", "zplus")


# ----------------------------------------------------------------------------- validation
def _check_rule(rule, valid):
    if not isinstance(rule, str) or rule not in valid:
        raise NFRError(f"unknown rule {rule!r}; valid rules are: {', '.join(valid)}")


def check_x(model, x):
    if not isinstance(model, nn.Module):
        raise NFRError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_eval(model)
    if isinstance(x, (tuple, list)):
        raise NFRError(f"x must be a torch.Tensor, got a {type(x).__name__} of inputs: nfr "
                       "attributes ONE input tensor (the rules start from A_0 = x); fix the "
                       "model's other inputs with forward_kwargs, or wrap the model so that "
                       "forward takes one tensor")
    if not isinstance(x, torch.Tensor):
        raise NFRError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if torch.is_inference_mode_enabled():
        raise NFRError("nfr was called under torch.inference_mode(), where autograd is off and no "
                       "rule can run; call it outside the inference_mode block")
    if x.is_inference():
        raise NFRError("x is an inference tensor (made under torch.inference_mode()); autograd "
                       "cannot use it: pass x.clone() made outside inference mode")
    inf = next((n for n, p in model.named_parameters() if p.is_inference()), None)
    if inf is not None:
        raise NFRError(f"parameter {inf!r} is an inference tensor (the model was built or loaded "
                       "under torch.inference_mode()); load it outside inference mode")
    if not x.is_floating_point():
        raise NFRError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise NFRError(f"x must be a non-empty batch [B, ...] with at least 2 dims, got shape "
                       f"{tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise NFRError("x contains NaN or inf")
    p = next(iter(model.parameters()), None)
    if p is not None and p.dtype != x.dtype:
        raise NFRError(f"x has dtype {x.dtype} but the model's parameters are {p.dtype}; "
                       "convert one of them (e.g. model.double() and x.double())")


def _check_alpha_beta(alpha, beta):
    a, b = float(alpha), float(beta)
    if b < 0 or abs(a - b - 1.0) > 1e-12:
        raise NFRError(f"LRP alpha-beta needs alpha - beta = 1 and beta >= 0 (relevance "
                       f"conservation), got alpha={alpha}, beta={beta}")


def onehot(out, target, B):
    if out.dim() != 2 or out.shape[0] != B:
        raise NFRError(f"the model output must have shape [batch, classes]; got "
                       f"{tuple(out.shape)} for a batch of {B}")
    K = out.shape[1]
    if isinstance(target, bool) or target is None:
        raise NFRError(f"target must be an int or a LongTensor of {B} class indices, got {target!r}")
    if isinstance(target, int):
        t = torch.full((B,), target, dtype=torch.long)
    else:
        t = torch.as_tensor(target)
        if t.is_floating_point() or t.dtype == torch.bool:
            raise NFRError(f"target must hold integer class indices, got dtype {t.dtype}")
        t = t.long().reshape(-1)
        if t.numel() == 1 and B > 1 and torch.as_tensor(target).dim() == 0:
            t = t.expand(B)
        if t.numel() != B:
            raise NFRError(f"target has {t.numel()} entries but the batch has {B} samples")
    if bool((t < 0).any()) or bool((t >= K).any()):
        raise NFRError(f"target {t.tolist()} out of range for {K} classes")
    seed = torch.zeros_like(out)
    seed[torch.arange(B), t.to(out.device)] = 1.0
    return seed


# messages of torch's own shape checks (matmul, conv, view, broadcasting, pooling, indexing)
_SHAPE_MESSAGE = re.compile(r"shape|size|dimension|channels|mat1 and mat2|must match|"
                            r"out of range|too small", re.IGNORECASE)


def run_forward(gm, xg):
    """Run the canonical graph. ``nn.Module.__call__`` is called directly: the GraphModule's own
    ``__call__`` prints its generated code to stderr when forward raises. A shape problem (torch's
    shape checks, the model's own asserts on the input) becomes one NFRError; any other error
    (the model's own RuntimeError, out of memory, ...) reaches the caller as itself."""
    try:
        return nn.Module.__call__(gm, xg)
    except NFRError:
        raise
    except (RuntimeError, IndexError, AssertionError) as e:
        if isinstance(e, (torch.OutOfMemoryError, MemoryError)) or not (
                isinstance(e, AssertionError) or _SHAPE_MESSAGE.search(str(e))):
            raise
        raise NFRError(f"the model's forward failed on x of shape {tuple(xg.shape)} "
                       f"({type(e).__name__}: {e}); check the input shape") from None


def _check_output(out):
    if not isinstance(out, torch.Tensor):
        raise NFRError(f"the model returned a {type(out).__name__}, not a tensor; pass output= "
                       "an index, a key or a callable that picks the logits")
    return out


def _bound(b, name, x):
    if isinstance(b, bool) or not isinstance(b, (numbers.Real, torch.Tensor)):
        raise NFRError(f"{name} must be a float or a tensor broadcastable to x, got {b!r}")
    t = torch.as_tensor(b, dtype=x.dtype, device=x.device)
    try:
        ok = torch.broadcast_shapes(t.shape, x.shape) == x.shape
    except RuntimeError:
        ok = False
    if not ok:
        raise NFRError(f"{name} has shape {tuple(t.shape)}, which does not broadcast to x's shape "
                       f"{tuple(x.shape)}; give a float, or a tensor such as [1, C, 1, 1] (per "
                       "channel) or x's own shape")
    if not bool(torch.isfinite(t).all()):
        raise NFRError(f"{name} contains NaN or inf")
    return t


def _dtd_box(x, low, high):
    """The z^B box: given bounds validated, missing ones per sample (each sample's own min / max
    over all its entries, shape [B, 1, ..., 1]), so that a map never depends on the batch."""
    dims = tuple(range(1, x.dim()))
    lo = x.amin(dims, keepdim=True) if low is None else _bound(low, "low", x)
    hi = x.amax(dims, keepdim=True) if high is None else _bound(high, "high", x)
    bad = torch.broadcast_tensors(lo, hi)[0] > torch.broadcast_tensors(hi, lo)[0]
    if bool(bad.any()):
        raise NFRError(f"the DTD box has low > high at {int(bad.sum())} entries; the z^B rule "
                       "needs low <= high (low <= x <= high for a meaningful map)")
    return lo, hi


def _restrict(A, which, frac):
    """A restricted to the top (``max``) or bottom (``min``) ``frac`` of its non-zero entries,
    per sample (ties broken by index order of ``torch.topk``)."""
    B = A.shape[0]
    flat = A.reshape(B, -1)
    out = torch.zeros_like(flat)
    for b in range(B):
        nz = (flat[b] != 0).nonzero().squeeze(1)
        if nz.numel() == 0:
            continue
        k = max(1, int(round(frac * nz.numel())))
        vals = flat[b, nz]
        idx = torch.topk(vals, k, largest=(which == "max")).indices
        out[b, nz[idx]] = vals[idx]
    return out.view_as(A)


# ----------------------------------------------------------------------------- public API
def attribute(model, x, target=None, rule="gbp", *, bottom=True, layer=None, q=0.9, low=None,
              high=None, record=False, eps=0.0, below="grad", frac=0.1, composite=None,
              alpha=1.0, beta=0.0, output=None, forward_kwargs=None):
    """Attribution map R of ``model`` at ``x`` for class ``target``, shaped like ``x``.

    Rules (the alignment paper's Table I; ``bottom=False`` returns "R w/o B", i.e. r_0 / c_0):

    * ``grad``          R = r_0 = d f_k / d x                 (eq 5)
    * ``grad_x_input``  R = x * r_0
    * ``gbp``           r_{l-1} = W_l M_l relu(r_l); R = r_0  (eq 6)
    * ``rectgrad``      r_{l-1} = W_l M_l (r_l 1(A_l r_l > tau_l)), tau_l the per-sample
      ``q``-quantile of A_l * r_l; R = relu(x * r_0)           (eq 7/15)
    * ``zplus``         LRP-z+ / alpha1-beta0 in filter form, c_{l-1} = W^{(+a)}_l gamma_l M_l c_l,
      gamma_j = z_j / s_j (bias excluded); R = x * c_0          (eq 10)
    * ``alphabeta``     LRP-alpha-beta (eq 9) with z+-/z- the positive / negative parts of the
      products a_i w_ij: R_i = sum_j (alpha z+_ij / sum_k z+_kj - beta z-_ij / sum_k z-_kj) R_j,
      R_j = z_j g_j (bias excluded, as z+); ``alpha - beta = 1`` (alpha=1, beta=0 is z+). R = x * c_0
    * ``dtd``           z+ in layers L..2, z^B at layer 1 with box [``low``, ``high``];
      R = R_0 (eq 11). w/o B: c_1 passed through layer 1 with the raw gradient.
    * ``activation``    relevance at layer ``layer`` (1..L) replaced by A_l, raw gradient below:
      R = r_0 = d <A_l, stopgrad(A_l)> / d x (target ignored).
    * ``activation_max`` / ``activation_min``  as ``activation`` with A_l restricted to the top /
      bottom ``frac`` (10%) of its non-zero entries per sample (Fig 6 of Zheng et al.); the layers 1..l use
      the rule ``below`` ("grad", "gbp", "rectgrad" or "zplus").

    Parameters
    ----------
    model : torch.nn.Module
        An eval-mode, fx-traceable ReLU network (never modified; no hooks may be registered on
        it). Its ``forward`` takes the input first; further arguments keep their defaults
        unless ``forward_kwargs`` sets them.
    x : torch.Tensor
        The input batch ``[B, ...]``, floating point, same dtype as the model. ONE input tensor:
        a model needing several tensor inputs is refused (the rules start from A_0 = x).
    target : int or torch.LongTensor, optional
        The class index: an int, or a LongTensor of class indices (one per sample). Required
        except for the activation rules, which ignore it (it is still checked when given).
    rule : str
        One of the rules above. Default ``"gbp"``.
    bottom : bool
        Apply the rule's bottom process B (for ``dtd``: the z^B rule at layer 1); False gives
        the map w/o B. Default True.
    layer : int, optional
        The start layer l (1..L) of the activation rules; required by them, unused otherwise.
    q : float
        RectGrad's quantile level, in (0, 1). Default 0.9.
    low, high : float or torch.Tensor, optional
        The ``dtd`` box (other rules ignore them): floats or tensors broadcastable to x, ``low
        <= high``; a missing bound defaults to each sample's OWN min / max over all its
        entries, so one image's map never depends on the rest of the batch; give per-channel
        bounds of the input domain, e.g. the normalised [0, 1] range, where they are known.
    record : bool
        Also return the relevance and activation of every layer reached (see Returns).
        Default False.
    eps : float
        Stabiliser of the denominators of the z+, alpha-beta and z^B rules
        (d -> d + eps * sign0(d)). Default 0.0.
    below : str
        The layer rule of the layers 1..``layer`` for the activation rules: ``"grad"``
        (default), ``"gbp"``, ``"rectgrad"`` or ``"zplus"``.
    frac : float
        The fraction of A_l's non-zero entries that ``activation_max`` / ``activation_min``
        keep per sample. Default 0.1.
    composite : dict, optional
        An explicit mapping l -> layer rule (``"grad"``, ``"gbp"``, ``"rectgrad"``,
        ``"zplus"``, ``"alphabeta"`` or ``"zbox"``) overriding the rule's own (advanced);
        layers it does not name use ``"grad"``.
    alpha, beta : float
        The weights of LRP-alpha-beta; ``alpha - beta = 1`` and ``beta >= 0`` are required.
        Default 1.0 and 0.0.
    output : int, str or callable, optional
        For a model that returns a tuple / list / dict: the index or key of the logits, or a
        callable applied to the returned structure that picks them (e.g. ``lambda o: o[0]``).
        Parts not selected are not traced further.
    forward_kwargs : dict, optional
        Values for ``forward``'s other arguments (``{"return_features": False}``); they are
        fixed while tracing (torch.fx ``concrete_args``), as are the defaults of those not given.

    Returns
    -------
    torch.Tensor or tuple
        R, shaped like ``x``, always detached (no ``grad_fn``, ``requires_grad=False``), also
        when ``x`` itself requires grad; with ``record=True`` the pair ``(R, rec)`` with
        ``rec["relevance"][l]`` = r_l (the relevance reaching A_l) and
        ``rec["activation"][l]`` = A_l for every layer l reached.

    Raises
    ------
    nfr.NFRError
        For an unsupported model or layer (named), a bad argument (named), or an input whose
        shape the model rejects. Other errors the model's forward raises (its own
        ``RuntimeError``, ``torch.OutOfMemoryError``) reach the caller unchanged.
    """
    _check_rule(rule, RULES)
    check_x(model, x)
    if not (0.0 < float(q) < 1.0):
        raise NFRError(f"q must lie in (0, 1), got {q}")
    _check_alpha_beta(alpha, beta)
    if rule.startswith("activation"):
        _check_rule(below, _BELOW)
    x = x.detach()
    if rule == "dtd":
        low, high = _dtd_box(x, low, high)
    gm = canonical(model, output=output, forward_kwargs=forward_kwargs)
    layers = gm.nfr_layers
    L = len(layers)
    if rule.startswith("activation"):
        if isinstance(layer, bool) or not isinstance(layer, numbers.Integral) or \
                not 1 <= layer <= L:
            raise NFRError(f"rule {rule!r} needs layer = an int in 1..{L}, got {layer!r}")
        layer = int(layer)
    if composite is None:
        if rule.startswith("activation"):   # layers 1..l use `below`; those above are unused
            comp = {l: (below if l <= layer else "grad") for l in range(1, L + 1)}
        else:
            comp = composite_for(rule, L, bottom=bottom)
    else:
        comp = {l: composite.get(l, "grad") for l in range(1, L + 1)}
        for r in comp.values():
            _check_rule(r, ("grad", "gbp", "rectgrad", "zplus", "alphabeta", "zbox"))
    keep = set(range(1, L + 1)) if record else ({layer} if rule.startswith("activation") else set())
    sess = Session(gm, [comp], q=q, eps=eps, low=low, high=high, keep=keep, alpha=alpha,
                    beta=beta)
    try:
        sess.set(comp)
        xg = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = _check_output(run_forward(gm, xg))
            if rule.startswith("activation"):
                if target is not None:
                    onehot(out, target, x.shape[0])
                start = sess.output(layer)
                seed = start.detach()
                if rule != "activation":
                    seed = _restrict(seed, rule.split("_")[1], frac)
                top = layer - 1
            else:
                seed = onehot(out, target, x.shape[0])
                start, top = out, L
            recs = [l for l in range(1, top + 1)] if record else []
            tens = [sess.output(l) for l in recs]
            grads = torch.autograd.grad(start, [xg] + tens, seed, allow_unused=True)
        r0 = grads[0] if grads[0] is not None else torch.zeros_like(x)
        r0 = r0.detach()
        if rule == "dtd" and bottom and comp[1] == "zbox":
            R = r0
        else:
            R = bottom_process(rule, x, r0) if bottom else r0
        if not record:
            return R
        rel = {l: (g.detach() if g is not None else torch.zeros_like(t))
               for l, g, t in zip(recs, grads[1:], tens)}
        act = {l: t.detach() for l, t in zip(recs, tens)}
        if rule.startswith("activation"):
            rel[layer] = seed
            act[layer] = start.detach()
        return R, {"relevance": rel, "activation": act}
    finally:
        sess.close()


def _representatives(rule, layers, levels):
    """level -> the lowest level with the identical composite EFFECT (computed once, copied).

    "grad" and "grad_x_input" do not change the backward rule: every level equals level 0.
    GBP and RectGrad act only at gates: level N equals level N - 1 when layer L - N + 1 has no
    ReLU (e.g. the linear output layer, so level 1 = level 0; EfficientNet's projections).
    """
    L = len(layers)
    gated = {lay.index: bool(lay.gates) for lay in layers}
    rep = {}
    for n in levels:
        m = n
        if rule in ("grad", "grad_x_input"):
            m = 0
        elif rule in ("gbp", "rectgrad"):
            while m > 0 and not gated[L - m + 1]:
                m -= 1
        rep[n] = m
    return rep


def _check_levels(levels) -> None:
    """``levels`` of :func:`cascade`: None or a list (or 1D tensor) of ints."""
    if levels is None:
        return
    if isinstance(levels, (numbers.Number, str, torch.Tensor)) and not (
            isinstance(levels, torch.Tensor) and levels.dim() == 1):
        raise NFRError(f"levels must be a list of ints, got {levels!r}")
    for n in levels:
        if isinstance(n, torch.Tensor) and n.dim() == 0 and not n.is_floating_point() \
                and n.dtype != torch.bool:
            continue
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise NFRError(f"levels must hold ints (cascade level N = number of top layers "
                           f"using the rule), got {n!r}")


def _level_below_cut(n: int, L: int, rule: str, out, xg, seed, sess, tapg: dict):
    """r_0 of cascade level ``n`` (0 < n < L, or n = 0, or any n for "activation"): the raw
    backward from the cut at layer L - n + 1, started from the relevance the rule chain left at
    its taps (``tapg``); None where nothing reaches the input."""
    if n == 0:
        return torch.autograd.grad(out, xg, seed, retain_graph=True)[0]
    if rule == "activation":
        l = L - n
        if l == 0:
            return xg.detach().clone()
        A = sess.output(l)
        return torch.autograd.grad(A, xg, A.detach(), retain_graph=True, allow_unused=True)[0]
    pairs = [(t, gt) for t, gt in tapg[L - n + 1] if gt is not None]
    if not pairs:
        return None
    return torch.autograd.grad([t for t, _ in pairs], xg, [gt for _, gt in pairs],
                               retain_graph=True, allow_unused=True)[0]


def cascade(model, x, target, rule, levels=None, *, bottom=False, q=0.9, low=None, high=None,
            eps=0.0, alpha=1.0, beta=0.0, output=None, forward_kwargs=None):
    """Cascade substitution (the alignment paper's Definition 3, eq 19): ``[len(levels), *x.shape]``.

    Level N (0..L): the top N layers (l > L - N) use ``rule``, layers l <= L - N the raw gradient;
    level 0 is the plain gradient. For "activation", level N >= 1 starts from r_{L-N} = A_{L-N}
    (A_0 = x) with the raw gradient below. Returns r_0 per level ("w/o B") unless
    ``bottom=True`` (then each level gets the rule's bottom process; for "dtd" level L uses z^B).

    Efficient: ONE forward; the rule chain runs once top-down and records the relevance crossing
    the cut before every weight layer (:class:`~nfr.engine.canonize.Tap`); level N then runs only
    the raw backward below its cut (a truncated backward), reusing the same graph.

    Parameters
    ----------
    model : torch.nn.Module
        An eval-mode, fx-traceable ReLU network, as in :func:`attribute` (never modified).
    x : torch.Tensor
        The input batch ``[B, ...]``, as in :func:`attribute`.
    target : int or torch.LongTensor
        The class index (one, or one per sample); required for every rule, ``activation``
        included (level 0 is the gradient of f_k).
    rule : str
        One of ``"grad"``, ``"grad_x_input"``, ``"gbp"``, ``"rectgrad"``, ``"zplus"``,
        ``"alphabeta"``, ``"dtd"`` or ``"activation"``.
    levels : list of int or torch.Tensor, optional
        The levels N to compute, each in 0..L; ints (not bools, not fractions), or a 1D
        integer tensor. None (default) means 0..L.
    bottom : bool
        Apply the rule's bottom process to every level. Default False.
    q : float
        RectGrad's quantile level. Default 0.9.
    low, high : float or torch.Tensor, optional
        The ``dtd`` box, as in :func:`attribute`.
    eps : float
        Stabiliser of the LRP denominators, as in :func:`attribute`. Default 0.0.
    alpha, beta : float
        LRP-alpha-beta weights, ``alpha - beta = 1``, ``beta >= 0``. Default 1.0 and 0.0.
    output : int, str or callable, optional
        Picks the logits from a structured model output, as in :func:`attribute`.
    forward_kwargs : dict, optional
        Values for ``forward``'s other arguments, as in :func:`attribute`.

    Returns
    -------
    torch.Tensor
        ``[len(levels), *x.shape]`` in x's dtype and device: entry i is the map of level
        ``levels[i]``. Detached, as in :func:`attribute`.

    Raises
    ------
    nfr.NFRError
        For a level outside 0..L, and (through the checks it shares with :func:`attribute`)
        for an unknown rule, a bad argument or an unsupported model.
    """
    _check_rule(rule, CASCADE_RULES)
    check_x(model, x)
    _check_alpha_beta(alpha, beta)
    x = x.detach()
    _check_levels(levels)
    if rule == "dtd":
        low, high = _dtd_box(x, low, high)
    gm = canonical(model, taps=True, output=output, forward_kwargs=forward_kwargs)
    L = len(gm.nfr_layers)
    levels = list(range(L + 1)) if levels is None else [int(n) for n in levels]
    for n in levels:
        if not 0 <= n <= L:
            raise NFRError(f"cascade level {n} out of range 0..{L}")
    asked, rep = levels, _representatives(rule, gm.nfr_layers, levels)
    levels = sorted(set(rep.values()))
    full = composite_for(rule, L, bottom=bottom) if rule != "activation" else \
        composite_for("grad", L)
    raw = composite_for("grad", L)
    keep = set(range(1, L + 1)) if rule == "activation" else set()
    sess = Session(gm, [full, raw], q=q, eps=eps, low=low, high=high, keep=keep, alpha=alpha,
                    beta=beta)
    taps: dict = {}
    for m in gm.modules():
        if isinstance(m, Tap):
            m.nfr_state = taps
    res = torch.zeros((len(asked),) + tuple(x.shape), dtype=x.dtype, device=x.device)
    try:
        xg = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = _check_output(run_forward(gm, xg))
            seed = onehot(out, target, x.shape[0])
            by_level, tapg = {}, {}
            if rule != "activation" and any(0 < n for n in levels):
                sess.set(full)
                splits = sorted({L - n + 1 for n in levels if 0 < n < L})
                inputs = [xg] + [t for k in splits for t in taps.get(k, [])]
                g = torch.autograd.grad(out, inputs, seed, retain_graph=True, allow_unused=True)
                i = 1
                for k in splits:
                    ts = taps.get(k, [])
                    tapg[k] = list(zip(ts, g[i:i + len(ts)]))
                    i += len(ts)
                if L in levels:
                    by_level[L] = g[0] if g[0] is not None else torch.zeros_like(x)
            sess.set(raw)
            for n in sorted(set(levels), reverse=True):
                if n not in by_level:
                    r = _level_below_cut(n, L, rule, out, xg, seed, sess, tapg)
                    by_level[n] = r if r is not None else torch.zeros_like(x)
        for i, n in enumerate(asked):
            r = by_level[rep[n]].detach()
            if bottom and not (rule == "dtd" and n == L):
                r = bottom_process(rule, x, r)
            res[i] = r
        return res
    finally:
        sess.close()


def alignment(R, x):
    """Input alignment (the alignment paper's Definition 1): alpha(R, x) = <R, x> / (||R|| ||x||) per sample,
    over all non-batch dims; 0 where a norm is 0.

    Parameters
    ----------
    R : torch.Tensor
        The maps ``[batch, ...]``.
    x : torch.Tensor
        The inputs, same shape as ``R`` (cast to R's dtype).

    Returns
    -------
    torch.Tensor
        The cosines, shape [batch].

    Raises
    ------
    nfr.NFRError
        If ``R`` or ``x`` is not a tensor, or their shapes differ.
    """
    if not isinstance(R, torch.Tensor) or not isinstance(x, torch.Tensor):
        raise NFRError("alignment takes two tensors R and x")
    if R.shape != x.shape:
        raise NFRError(f"R has shape {tuple(R.shape)} but x has {tuple(x.shape)}")
    B = R.shape[0]
    r, v = R.reshape(B, -1), x.reshape(B, -1).to(R.dtype)
    if not bool(torch.isfinite(r.norm(dim=1)).all() and torch.isfinite(v.norm(dim=1)).all()):
        # a float32 map with entries near 1e20 overflows the squared norm: the cosine is
        # scale-free, so divide each row by its largest |entry| first (never silently 0)
        r = r / r.abs().amax(dim=1, keepdim=True).clamp(min=torch.finfo(r.dtype).tiny)
        v = v / v.abs().amax(dim=1, keepdim=True).clamp(min=torch.finfo(v.dtype).tiny)
    den = r.norm(dim=1) * v.norm(dim=1)
    num = (r * v).sum(dim=1)
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)),
                       torch.zeros_like(num))
