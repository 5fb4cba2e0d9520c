"""Canonizer: rewrite a ReLU network into the form the rules of :mod:`nfr.engine.rules` understand.

The model is traced with ``torch.fx`` (so functional ``F.relu`` calls are found; the book's
pitfalls page lists what this guards against)
and rewritten into a ``torch.fx.GraphModule`` in which

* every ReLU *call* (``nn.ReLU`` incl. ``inplace=True``, ``F.relu``, ``torch.relu``, ``x.relu()``,
  ``x.relu_()``, one module called twice) is its own :class:`Gate` module,
  which overwrites its input only where the graph proves no other reader (``_mark_inplace``);
  ``ReLU6`` / ``F.relu6`` / ``hardtanh(0, 6)`` likewise (``Gate(upper=6)``);
* every ``BatchNorm1d/2d`` is merged exactly (running statistics and its ``eps``) into the
  ``Conv2d`` / ``Linear`` directly before it; BN anywhere else raises;
* every ``Conv2d`` / ``Linear`` is wrapped in a :class:`Weighted` module (the rules' hook point);
* every residual addition of two tensors (``a + b``, ``a += b``, ``torch.add(a, b)``) is an
  explicit :class:`Add` module;
* pooling, flatten / view / reshape / transpose / permute, dropout (eval), identity, zero padding,
  ``cat`` / ``chunk`` / ``split`` / ``stack`` and indexing pass unchanged (they only move data:
  their gradient is what every rule uses for them);
* shape arithmetic (``x.size()``, ``x.shape``, ``//`` and ``*`` of sizes, ``torch._assert``) is
  not data: it passes whatever it computes, and is never reported as the unsupported layer.

What the trace cannot see is refused by name rather than dropped silently (the book's pitfalls
page): forward or backward hooks registered on the model, on any submodule or globally, and a
subclass of a supported layer (``nn.Linear``, ``nn.ReLU``, pooling, ...) that overrides
``forward`` (only EfficientNet's static-"same"-padding ``Conv2d`` is understood).

Everything else that touches data (sigmoid, SiLU, softmax, LayerNorm, attention, multiplication of
two tensors, ...) raises one :class:`nfr.errors.NFRError` that names the node and the way out.

The ordered list of *layers* (weight layers in forward order, l = 1..L, each with the ReLU gates
that follow it) is stored on the result as ``gm.nfr_layers`` (a tuple of :class:`Layer`).
A ReLU belongs to the last weight layer before it in the (topologically ordered) graph; in a
ResNet block the ReLU after the residual add therefore belongs to the later of ``conv2`` and the
downsample convolution. Gates before the first weight layer belong to no layer (index 0) and
always pass the raw gradient.
"""
from __future__ import annotations

import copy
import operator
import weakref
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from nfr.engine.rules import gate_forward, weighted_forward
from nfr.errors import NFRError

__all__ = ["canonize", "canonical", "state_key", "check_eval", "Gate", "Weighted", "Add", "Tap", "Layer"]

_WAY_OUT = ("the rules apply to ReLU networks: pass an fx-traceable network made of Conv2d/Linear, "
            "BatchNorm directly after them, ReLU/ReLU6, pooling, reshapes and residual additions "
            "(or remove the layer)")


class Gate(nn.Module):
    """A ReLU-type gate: ``relu(x)``, or ``clamp(x, 0, upper)`` for ReLU6 (``upper=6``).

    Forward is exactly ``torch.relu`` / ``torch.clamp``. Rules act on its backward through
    ``self.nfr_state`` (set only while an attribution runs). During an attribution the gate
    overwrites its input in place when ``inplace`` is set, which the canonizer does only where
    the graph proves nothing else reads that tensor (``_mark_inplace``); otherwise, and
    outside an attribution, it never writes to its input. For ReLU6 the mask of the raw
    gradient is ``1(0 < x < 6)``: the upper clamp also masks the gradient where ``x > 6``.

    Parameters
    ----------
    upper : float, optional
        The upper clamp (6 for ReLU6); None (default) for a plain ReLU.
    """

    def __init__(self, upper: float | None = None):
        super().__init__()
        self.upper = upper
        self.nfr_state = None
        # (the module whose output this gate may overwrite,): set by the canonizer only where
        # the graph proves it safe; empty = never in place
        self.source = ()
        # may the backward overwrite the incoming gradient (the canonizer sets it only where the
        # gate's one reader returns a fresh gradient nobody else holds: :func:`_mark_inplace`)
        self.grad_inplace = False

    @property
    def inplace(self) -> bool:
        return bool(self.source)

    def forward(self, x):
        st = self.nfr_state
        if st is not None:
            return gate_forward(self, x, st)
        if self.upper is None:
            return torch.relu(x)
        return torch.clamp(x, 0.0, self.upper)

    def extra_repr(self):
        return "" if self.upper is None else f"upper={self.upper}"


class Weighted(nn.Module):
    """A weight layer ``Z = W^T A + b`` (``inner`` is a ``nn.Conv2d`` or ``nn.Linear``).

    ``pad`` is an optional constant zero padding applied first (TF-style static "same" padding
    of EfficientNet's ``Conv2dStaticSamePadding``). Forward equals the wrapped module.

    Parameters
    ----------
    inner : torch.nn.Module
        The wrapped ``nn.Conv2d`` or ``nn.Linear``.
    pad : tuple, optional
        The zero padding (``F.pad`` form) applied before the layer; None (default) for none.
    """

    def __init__(self, inner: nn.Module, pad: tuple | None = None):
        super().__init__()
        self.inner = inner
        self.pad = pad
        self.nfr_state = None

    @property
    def weight(self):
        return self.inner.weight

    @property
    def bias(self):
        return self.inner.bias

    def linear(self, a, weight, bias=None):
        """The layer's linear map with a given weight (used by the rules: W+, W-, ...).

        Parameters
        ----------
        a : torch.Tensor
            The layer's input (already padded: ``pad`` is not applied here).
        weight : torch.Tensor
            A weight of the inner layer's shape.
        bias : torch.Tensor, optional
            Added to the output; None (default) for none.

        Returns
        -------
        torch.Tensor
            ``F.linear`` or ``F.conv2d`` (with the inner layer's stride, padding, dilation and
            groups) of ``a``.
        """
        m = self.inner
        if isinstance(m, nn.Linear):
            return F.linear(a, weight, bias)
        return F.conv2d(a, weight, bias, m.stride, m.padding, m.dilation, m.groups)

    def forward(self, x):
        if self.pad is not None:
            x = F.pad(x, self.pad)
        st = self.nfr_state
        if st is not None:
            return weighted_forward(self, x, st)
        return self.linear(x, self.inner.weight, self.inner.bias)


class Add(nn.Module):
    """Explicit residual addition ``a + b`` (never in place). Relevance (filter form) passes
    unchanged to both summands, which equals LRP's proportional split of ``R = A * c``."""

    def forward(self, a, b):
        return a + b


class Tap(nn.Module):
    """Identity marking a cut of the graph before weight layer ``split``; used by the cascade to
    read the relevance crossing the cut. Forward is the identity; while ``nfr_state`` is set
    it returns a fresh view whose gradient autograd can report.

    Parameters
    ----------
    split : int
        The index l of the weight layer the cut precedes.
    """

    def __init__(self, split: int):
        super().__init__()
        self.split = split
        self.nfr_state = None

    def forward(self, x):
        st = self.nfr_state
        if st is None or not isinstance(x, torch.Tensor) or not x.requires_grad:
            return x
        y = x.view_as(x)
        st.setdefault(self.split, []).append(y)
        return y


@dataclass(frozen=True)
class Layer:
    """Weight layer ``index`` (1..L): the :class:`Weighted` module name and its gates' names.

    Parameters
    ----------
    index : int
        The layer index l, 1..L in forward order.
    weight : str
        Name of the layer's :class:`Weighted` module in the canonical graph.
    gates : tuple of str
        Names of the layer's :class:`Gate` modules (empty for a layer without ReLU).
    """

    index: int
    weight: str
    gates: tuple

    @property
    def output(self) -> str:
        """Name of the module whose output is A_l (the first gate, or the weight layer itself).

        Returns
        -------
        str
            ``gates[0]``, or ``weight`` when the layer has no gate.
        """
        return self.gates[0] if self.gates else self.weight


_PASS_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
                 nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Unflatten, nn.Dropout,
                 nn.Dropout2d, nn.Dropout1d, nn.AlphaDropout, nn.Identity, nn.ZeroPad2d)
# the layer types the canonizer understands; a subclass of one with its own ``forward`` is refused
_SUPPORTED = (nn.Conv2d, nn.Linear, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.BatchNorm1d,
              nn.BatchNorm2d) + _PASS_MODULES
_PASS_FUNCTIONS = {torch.flatten, torch.cat, torch.concat, torch.reshape, torch.squeeze,
                   torch.unsqueeze, torch.transpose, torch.permute, torch.mean, torch.chunk,
                   torch.split, torch.stack, torch.narrow, torch.unflatten,
                   F.max_pool1d, F.max_pool2d, F.avg_pool1d, F.avg_pool2d, F.adaptive_avg_pool1d,
                   F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.dropout, F.dropout2d,
                   operator.getitem, getattr}
_PASS_METHODS = {"view", "reshape", "flatten", "contiguous", "squeeze", "unsqueeze", "transpose",
                 "permute", "mean", "size", "dim", "view_as", "reshape_as", "detach_", "clone",
                 "chunk", "split", "expand", "expand_as", "narrow", "unflatten"}
_META_METHODS = {"size", "dim"}
# shape arithmetic: nodes computing sizes, checks and constants, never tensor data
_SIZE_METHODS = {"size", "dim", "numel", "ndimension", "nelement"}
_SIZE_ATTRS = {"shape", "ndim", "dtype", "device", "is_cuda"}
_ASSERTS = {torch._assert, getattr(fx._symbolic_trace, "_assert_is_none", torch._assert)}
_RELU_FUNCTIONS = {F.relu, torch.relu, torch.relu_, F.relu_}
_RELU6_FUNCTIONS = {F.relu6}
_ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}


class Tracer(fx.Tracer):
    """Leaf modules: torch.nn modules (default) and every subclass of a supported layer (so that
    one with its own ``forward`` is seen, and refused, by name; EfficientNet's
    ``Conv2dStaticSamePadding`` calls ``F.conv2d`` inside its own forward and is understood).
    Python ``assert`` statements on traced values become ``torch._assert`` checks."""

    def is_leaf_module(self, m, qualname):
        if isinstance(m, _SUPPORTED):
            return True
        return super().is_leaf_module(m, qualname)

    def to_bool(self, obj):
        """A traced value used as a truth value: inside an ``assert`` statement it becomes a
        ``torch._assert`` check (torch.fx's own detection does not know the jump instructions of
        Python >= 3.11); anywhere else it is control flow on the input, which fx refuses."""
        import dis
        import inspect
        import os
        frame = inspect.currentframe().f_back
        tdir, here = os.path.dirname(torch.__file__), os.path.abspath(__file__)
        while frame is not None and (frame.f_code.co_filename.startswith(tdir)
                                     or os.path.abspath(frame.f_code.co_filename) == here):
            frame = frame.f_back
        if frame is not None:
            insts = list(dis.get_instructions(frame.f_code))
            idx = next((i for i, ins in enumerate(insts) if ins.offset == frame.f_lasti), None)
            op = insts[idx].opname if idx is not None else ""
            after = insts[idx + 1].opname if idx is not None and idx + 1 < len(insts) else ""
            target = next((i.opname for i in insts if idx is not None and "JUMP" in op
                           and i.offset == insts[idx].argval), "")
            # `assert c`: jump over the raise if c is true; `assert a and b`: a false `a` jumps
            # to the raise
            if ("IF_TRUE" in op and after == "LOAD_ASSERTION_ERROR") or (
                    "IF_FALSE" in op and target == "LOAD_ASSERTION_ERROR"):
                self.create_proxy("call_function", torch._assert,
                                  (obj, "an assert in the model's forward failed"), {})
                return True
        return super().to_bool(obj)


def _advice(kind: str) -> str:
    """What to do about an unsupported layer, by what the layer is."""
    k = kind.lower()
    if any(w in k for w in ("layernorm", "groupnorm", "instancenorm", "layer_norm", "group_norm",
                            "instance_norm", "batch_norm", "localresponse", "rmsnorm")):
        return ("a normalisation computed from the data itself has no rule here (only an eval-mode "
                "BatchNorm directly after a Conv2d/Linear is merged exactly); the rules apply to "
                "ReLU networks: use a ReLU CNN (conv/linear, BatchNorm, ReLU, pooling, residual adds)")
    if any(w in k for w in ("attention", "softmax", "matmul", "bmm", "mul", "einsum", "baddbmm",
                            "scaled_dot")):
        return ("it multiplies two data-dependent tensors (attention, gating, squeeze-excitation); "
                "the modified-backprop rules here are defined for ReLU networks, whose only "
                "products are with weights: use a network without it")
    if any(w in k for w in ("sigmoid", "tanh", "gelu", "silu", "swish", "elu", "hardswish",
                            "hardsigmoid", "mish", "softplus", "leaky", "prelu", "selu", "celu")):
        return ("the rules gate at ReLUs only (GBP and RectGrad modify the ReLU's backward): replace "
                "it with nn.ReLU, or use a ReLU network")
    return _WAY_OUT


def _describe(node, mod=None):
    what = f"module {node.target!r} ({type(mod).__name__})" if mod is not None else (
        f"{node.op} {getattr(node.target, '__name__', node.target)!s}")
    stack = node.meta.get("nn_module_stack") or {}
    if mod is None and stack:          # the user's module whose forward made this call
        path, cls = list(stack.values())[-1]
        what += f" inside module {path!r} ({getattr(cls, '__name__', cls)})"
    return f"node {node.name!r}: {what}"


def _supported_base(mod: nn.Module):
    """The torch layer class that ``mod`` is treated as (nearest supported class in its MRO)."""
    for cls in type(mod).__mro__:
        if cls in _SUPPORTED:
            return cls
    return None


def _check_subclass(mod: nn.Module, name: str):
    """Refuse a subclass of a supported layer whose ``forward`` is not the base class's: the graph
    would run the base class's computation instead of the user's (the Conv2d case is decided in
    :func:`_wrap_weight`)."""
    base = _supported_base(mod)
    if base is None or base is nn.Conv2d or type(mod).forward is base.forward:
        return
    raise NFRError(f"module {name!r} is of class {type(mod).__name__}, a subclass of nn.{base.__name__} "
                   f"that overrides forward; nfr would treat it as a plain nn.{base.__name__} and "
                   f"give a wrong map, so it refuses it. Use nn.{base.__name__} itself (move the "
                   "extra computation into separate supported layers)")


_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                 "_global_backward_pre_hooks")


def _check_hooks(model: nn.Module):
    """Refuse hooks the traced graph would silently skip: a torch.fx graph runs the modules'
    ``forward`` only, so a forward (pre-)hook that changes a value, or a backward hook that
    changes a gradient, would give a map of a different function than the user's model."""
    import torch.nn.modules.module as mm
    for g in _GLOBAL_HOOKS:
        if getattr(mm, g, None):
            kind = g[len("_global_"):-1].replace("_", " ")
            raise NFRError(f"a global module {kind} is registered (torch.nn.modules.module."
                           "register_module_...); the traced graph would "
                           "skip it and give a wrong map. Remove it (handle.remove()) before "
                           "calling nfr")
    for name, m in model.named_modules():
        for d in _HOOK_DICTS:
            if getattr(m, d, None):
                kind = d.strip("_").replace("_", " ")
                who = repr(name) if name else "the model itself"
                raise NFRError(f"module {who} ({type(m).__name__}) has a {kind[:-1]} registered; "
                               "the traced graph runs forward only and would skip it, giving a "
                               "wrong map. Remove the hook (handle.remove()), or fold what it "
                               "does into the model as supported layers")


def _wrap_weight(mod: nn.Module, node) -> Weighted:
    pad = None
    if isinstance(mod, nn.Conv2d):
        if type(mod).forward is not nn.Conv2d.forward:
            sp = getattr(mod, "static_padding", None)
            if isinstance(sp, nn.ZeroPad2d):
                pad = tuple(sp.padding)
            elif not (isinstance(sp, nn.Identity) or type(sp).__name__ == "Identity"):
                raise NFRError(f"unsupported Conv2d subclass at {_describe(node, mod)}: its "
                               f"forward is overridden; {_WAY_OUT}")
        if mod.padding_mode != "zeros":
            raise NFRError(f"unsupported padding_mode {mod.padding_mode!r} at "
                           f"{_describe(node, mod)}; use zero padding")
        if isinstance(mod.padding, str):
            raise NFRError(f"string padding {mod.padding!r} at {_describe(node, mod)} is not "
                           "supported; give the padding as numbers")
    return Weighted(mod, pad)


def _merge_bn(w: Weighted, bn: nn.Module, node) -> Weighted:
    """Exact merge of an eval-mode BatchNorm into the preceding weight layer:
    W' = W * g / sqrt(var + eps) (per output channel), b' = (b - mean) * g / sqrt(var + eps) + beta.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise NFRError(f"BatchNorm at {_describe(node, bn)} has no running statistics "
                       "(track_running_stats=False) and cannot be merged")
    inner = w.inner
    W = inner.weight.detach()
    with torch.no_grad():
        dt = torch.float64
        scale = 1.0 / torch.sqrt(bn.running_var.to(dt) + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.detach().to(dt)
        b = inner.bias.detach().to(dt) if inner.bias is not None else torch.zeros_like(scale)
        b = (b - bn.running_mean.to(dt)) * scale
        if bn.bias is not None:
            b = b + bn.bias.detach().to(dt)
        shape = (-1,) + (1,) * (W.dim() - 1)
        Wn = (W.to(dt) * scale.view(shape)).to(W.dtype)
        new = copy.copy(inner)            # shallow: same hyper-parameters, fresh parameters
        new._parameters = dict(inner._parameters)
        new.weight = nn.Parameter(Wn, requires_grad=False)
        new.bias = nn.Parameter(b.to(W.dtype), requires_grad=False)
    return Weighted(new, w.pad)


def check_eval(model: nn.Module):
    """Refuse a model any of whose modules is in train mode (BatchNorm and Dropout would make
    attributions depend on the batch).

    Parameters
    ----------
    model : torch.nn.Module
        The model; itself and every submodule must have ``training`` False.

    Raises
    ------
    nfr.NFRError
        If a module is in train mode; the message names the first one (the model's class name
        for the root) and says to call ``model.eval()``.
    """
    bad = [n or type(model).__name__ for n, m in model.named_modules() if m.training]
    if bad:
        raise NFRError(f"the model is in train mode (e.g. {bad[0]!r}); BatchNorm/Dropout would "
                       "make attributions depend on the batch. Call model.eval() first")


def _const_hardtanh(node):
    lo = node.kwargs.get("min_val", node.args[1] if len(node.args) > 1 else -1.0)
    hi = node.kwargs.get("max_val", node.args[2] if len(node.args) > 2 else 1.0)
    return lo == 0 and hi == 6


def _forward_defaults(model: nn.Module, forward_kwargs: dict | None) -> dict:
    """``concrete_args`` for torch.fx: every forward argument after the input fixed to the value
    the caller gave in ``forward_kwargs`` or else to its default (``x2=None``,
    ``return_features=False``, ...). A second argument without a default is refused."""
    import inspect
    kw = dict(forward_kwargs or {})
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return kw
    params = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if not params:
        raise NFRError(f"{type(model).__name__}.forward takes no input argument")
    first, rest = params[0], params[1:]
    if first.name in kw:
        raise NFRError(f"forward_kwargs names the input argument {first.name!r}; pass the input as x")
    names = {p.name for p in rest}
    unknown = sorted(set(kw) - names)
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in
                           inspect.signature(model.forward).parameters.values()):
        raise NFRError(f"forward_kwargs has {unknown}, which {type(model).__name__}.forward does "
                       f"not take (its arguments: {[p.name for p in params]})")
    concrete = {}
    for p in rest:
        if p.name in kw:
            concrete[p.name] = kw[p.name]
        elif p.default is not p.empty:
            concrete[p.name] = p.default
        else:
            raise NFRError(
                f"{type(model).__name__}.forward needs a second input {p.name!r}; nfr attributes "
                "ONE input tensor (the rules' A_0 = x; a map per input would need a bottom process "
                f"per input): fix {p.name!r} with forward_kwargs={{{p.name!r}: ...}}, or wrap the "
                "model so that forward takes one tensor")
    return concrete


def _trace(model: nn.Module, concrete: dict) -> fx.Graph:
    import warnings
    pre = set(vars(model))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # fx's note on tensors fixed by concrete_args
            graph = Tracer().trace(model, concrete_args=concrete or None)
        # fx stores tensor constants (e.g. a tensor given in forward_kwargs) as attributes of the
        # traced module itself: move them to the graph so the caller's model is left untouched
        graph.nfr_consts = {k: getattr(model, k) for k in set(vars(model)) - pre}
        _drop_fixed_arguments(graph)
        return graph
    except NFRError:
        raise
    except Exception as e:  # noqa: BLE001 -- any tracing failure becomes one clear error
        where = _user_frame(e)
        if "control flow" in str(e):
            raise NFRError(f"cannot trace {type(model).__name__} with torch.fx: control flow on an "
                           f"input{where} (an `if`/`for`/`while` that depends on the tensor's "
                           "values or on an argument fixed at call time). Pass an fx-traceable "
                           "model: move the branch out of forward, or fix the argument it tests "
                           "with forward_kwargs") from None
        raise NFRError(f"cannot trace {type(model).__name__} with torch.fx{where} "
                       f"({type(e).__name__}: {e}); pass an fx-traceable model (no data-dependent "
                       "Python code in forward; wrap the untraceable part)") from None
    finally:
        for k in set(vars(model)) - pre:
            delattr(model, k)


def _drop_fixed_arguments(graph: fx.Graph):
    """torch.fx keeps a placeholder per argument fixed by ``concrete_args`` and checks at run time
    that the caller passes that same value; nfr calls the graph with x alone and the values are
    already in the graph, so the placeholders and their checks go."""
    phs = [n for n in graph.nodes if n.op == "placeholder"][1:]
    dep = set(phs)
    for node in graph.nodes:
        if node.op != "placeholder" and any(
                i in dep for i in node.all_input_nodes):
            dep.add(node)
    if any(n.op == "output" or (n.op == "call_module") for n in dep):
        return          # a fixed argument reaches the data: leave the graph as fx made it
    for node in reversed(list(graph.nodes)):
        if node in dep:
            graph.erase_node(node)


def _user_frame(e: BaseException) -> str:
    """' at FILE:LINE in CLASS.NAME (`code`)' for the innermost traceback frame outside torch."""
    import linecache
    import os
    import traceback
    tdir = os.path.dirname(torch.__file__)
    mine = os.path.dirname(os.path.abspath(__file__))
    user = [(f, ln) for f, ln in traceback.walk_tb(e.__traceback__)
            if not f.f_code.co_filename.startswith(tdir)
            and not os.path.abspath(f.f_code.co_filename).startswith(mine)]
    if not user:
        return ""
    frame, lineno = user[-1]
    fname = frame.f_code.co_filename
    owner = frame.f_locals.get("self")
    name = frame.f_code.co_name
    if isinstance(owner, nn.Module):
        name = f"{type(owner).__name__}.{name}"
    line = linecache.getline(fname, lineno).strip()
    code = f" (`{line}`)" if line else ""
    return f" at {fname}:{lineno} in {name}{code}"


def _select_output(graph: fx.Graph, output, model_name: str):
    """Make the graph return one tensor: the model's output, or the part ``output`` selects (an
    index, a key, or a callable applied to the output structure). Parts not selected are removed
    (they may hold layers the rules do not support, e.g. an auxiliary head)."""
    out_node = next(n for n in graph.nodes if n.op == "output")
    res = out_node.args[0]
    if output is None:
        if isinstance(res, fx.Node):
            return
        kind = type(res).__name__
        raise NFRError(f"{model_name} returns a {kind}, not one tensor of logits; pass output= an "
                       "index (output=0), a key (output='logits') or a callable that picks the "
                       "logits from what the model returns")
    try:
        if callable(output):            # the callable sees proxies: o[0], o["logits"], o.flatten(1)
            tracer = fx.proxy.GraphAppendingTracer(graph)
            with graph.inserting_before(out_node):
                sel = output(fx.node.map_arg(res, lambda n: fx.Proxy(n, tracer)))
            sel = sel.node if isinstance(sel, fx.Proxy) else sel
        elif isinstance(res, fx.Node):
            with graph.inserting_before(out_node):
                sel = graph.call_function(operator.getitem, (res, output))
        else:
            sel = res[output]
    except Exception as e:  # noqa: BLE001
        raise NFRError(f"output={output!r} cannot select a tensor from what {model_name} returns "
                       f"({type(res).__name__}): {type(e).__name__}: {e}") from None
    if not isinstance(sel, fx.Node):
        raise NFRError(f"output={output!r} selects a {type(sel).__name__} from what {model_name} "
                       "returns, not one tensor")
    out_node.args = (sel,)
    for node in reversed(list(graph.nodes)):        # drop what only the unselected parts use
        if node.op in ("placeholder", "output") or node.users:
            continue
        if (node.op == "call_function" and node.target in _ASSERTS) or \
                node.kwargs.get("inplace") or str(node.target).endswith("_"):
            continue                                # checks and in-place writes stay
        graph.erase_node(node)


def _is_meta(node: fx.Node, ins: list, meta: set) -> bool:
    """Shape arithmetic, size reads, asserts, and anything computed only from such nodes."""
    op, tgt = node.op, node.target
    return ((op == "call_method" and tgt in _SIZE_METHODS)
            or (op == "call_function" and tgt is getattr and len(node.args) > 1
                and node.args[1] in _SIZE_ATTRS)
            or (op == "call_function" and tgt in _ASSERTS)
            or (op in ("call_function", "call_method") and bool(ins) and all(i in meta for i in ins)))


def _rewrite_module(graph: fx.Graph, node: fx.Node, mod: nn.Module, modules: dict, new_name) -> None:
    """A ``call_module`` node: ReLU/ReLU6 -> Gate, Conv2d/Linear -> Weighted, BatchNorm merged
    into the layer before it, pass-through modules kept; anything else is refused."""
    if isinstance(mod, (nn.ReLU, nn.ReLU6)) or (
            isinstance(mod, nn.Hardtanh) and mod.min_val == 0 and mod.max_val == 6):
        name = new_name("gate", node.target)
        modules[name] = Gate(None if isinstance(mod, nn.ReLU) else 6.0)
        node.target = name
    elif isinstance(mod, (nn.Conv2d, nn.Linear)):
        if isinstance(mod, nn.Conv2d) and mod.weight.dim() != 4:
            raise NFRError(f"unsupported {_describe(node, mod)}")
        name = new_name("w", node.target)
        modules[name] = _wrap_weight(mod, node)
        node.target = name
    elif isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
        prev = node.args[0] if node.args else None
        ok = (isinstance(prev, fx.Node) and prev.op == "call_module"
              and isinstance(modules.get(prev.target), Weighted) and len(prev.users) == 1
              and len(node.args) == 1 and not node.kwargs)
        if not ok:
            raise NFRError(f"BatchNorm at {_describe(node, mod)} does not directly follow a "
                           "Conv2d/Linear (e.g. a pre-activation network); it cannot be "
                           "merged exactly. Use a network with conv -> BN -> ReLU order")
        modules[prev.target] = _merge_bn(modules[prev.target], mod, node)
        node.replace_all_uses_with(prev)
        graph.erase_node(node)
    elif isinstance(mod, _PASS_MODULES):
        modules[node.target] = mod
    else:
        raise NFRError(f"unsupported layer at {_describe(node, mod)}: it touches the data "
                       f"in a way the rules do not define; {_advice(type(mod).__name__)}")


def _rewrite_call(graph: fx.Graph, node: fx.Node, modules: dict, new_name) -> None:
    """A ``call_function`` / ``call_method`` node: ReLU forms -> Gate, additions -> the add
    module, pass-through operations kept; anything else is refused."""
    tgt = node.target
    if node.op == "call_function":
        if tgt in _RELU_FUNCTIONS or tgt in _RELU6_FUNCTIONS or (
                tgt is F.hardtanh and _const_hardtanh(node)):
            name = new_name("gate", getattr(tgt, "__name__", "relu"))
            modules[name] = Gate(None if tgt in _RELU_FUNCTIONS else 6.0)
            _to_module(graph, node, name, node.args[:1])
        elif tgt in _ADD_FUNCTIONS:
            _add(graph, node, modules, new_name)
        elif tgt in _PASS_FUNCTIONS or (tgt is F.pad and _zero_pad(node)):
            pass
        else:
            nm = getattr(tgt, "__name__", str(tgt))
            raise NFRError(f"unsupported operation at {_describe(node)}: it touches the data "
                           f"in a way the rules do not define; {_advice(nm)}")
    elif tgt in ("relu", "relu_"):
        name = new_name("gate", tgt)
        modules[name] = Gate(None)
        _to_module(graph, node, name, node.args[:1])
    elif tgt in ("add", "add_", "__add__", "__iadd__"):
        _add(graph, node, modules, new_name)
    elif tgt not in _PASS_METHODS:
        raise NFRError(f"unsupported tensor method at {_describe(node)}: it touches the "
                       f"data in a way the rules do not define; {_advice(str(tgt))}")


def _build(model: nn.Module, modules: dict, output=None, forward_kwargs=None) -> fx.GraphModule:
    """Trace ``model`` and rewrite its graph; ``modules`` gets the new module table."""
    check_eval(model)
    _check_hooks(model)
    for name, m in model.named_modules():
        _check_subclass(m, name)
    graph = _trace(model, _forward_defaults(model, forward_kwargs))
    _select_output(graph, output, type(model).__name__)
    old = dict(model.named_modules())
    counter = {"gate": 0, "w": 0, "add": 0}
    first = next((n for n in graph.nodes if n.op == "placeholder"), None)
    meta = set()          # nodes holding shapes, sizes, checks or fixed arguments: not data

    def new_name(kind, hint):
        counter[kind] += 1
        return f"nfr_{kind}{counter[kind]}_{str(hint).replace('.', '_')}"

    for node in list(graph.nodes):
        op = node.op
        if op == "placeholder":
            if node is not first:
                meta.add(node)    # an argument fixed by concrete_args (forward_kwargs / default)
            continue
        if op in ("output", "get_attr"):
            continue  # constants/parameters: only a problem if consumed by a data op (checked there)
        ins = []
        fx.node.map_arg((node.args, node.kwargs), ins.append)
        if _is_meta(node, ins, meta):
            meta.add(node)        # shape arithmetic: passes, whatever it computes
        elif op == "call_module":
            _rewrite_module(graph, node, old[node.target], modules, new_name)
        else:
            _rewrite_call(graph, node, modules, new_name)
    graph.lint()
    return graph


def _zero_pad(node):
    mode = node.kwargs.get("mode", node.args[2] if len(node.args) > 2 else "constant")
    value = node.kwargs.get("value", node.args[3] if len(node.args) > 3 else None)
    return mode == "constant" and (value is None or value == 0)


def _to_module(graph, node, name, args):
    with graph.inserting_after(node):
        new = graph.call_module(name, tuple(args))
    node.replace_all_uses_with(new)
    graph.erase_node(node)


def _add(graph, node, modules, new_name):
    args = list(node.args)
    if len(args) != 2 or node.kwargs or not all(isinstance(a, fx.Node) for a in args):
        raise NFRError(f"unsupported addition at {_describe(node)}: only the sum of two tensors "
                       f"(a residual add) is supported, not a constant shift or alpha; {_WAY_OUT}")
    name = new_name("add", node.name)
    modules[name] = Add()
    _to_module(graph, node, name, args)


def _layers(gm: fx.GraphModule):
    layers, current = [], None
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        mod = gm.get_submodule(node.target)
        if isinstance(mod, Weighted):
            current = [node.target, []]
            layers.append(current)
        elif isinstance(mod, Gate) and current is not None:
            current[1].append(node.target)
    if not layers:
        raise NFRError("the model has no Conv2d/Linear layer")
    return tuple(Layer(i + 1, w, tuple(g)) for i, (w, g) in enumerate(layers))


def _insert_taps(gm: fx.GraphModule, layers):
    """Insert a :class:`Tap` on every tensor crossing the cut just before each weight layer
    (consumers at or after the cut read the tapped tensor)."""
    graph = gm.graph
    order = {n: i for i, n in enumerate(graph.nodes)}
    wpos = {}
    for n in graph.nodes:
        if n.op == "call_module" and n.target in {l.weight: 0 for l in layers}:
            wpos[n.target] = order[n]
    for lay in layers:
        pos = wpos[lay.weight]
        nodes = list(graph.nodes)
        for n in nodes:
            if order.get(n, 10**9) >= pos or n.op in ("get_attr", "output"):
                continue
            users = [u for u in n.users if order.get(u, 10**9) >= pos]
            if not users:
                continue
            if n.op == "call_method" and n.target in _META_METHODS:
                continue
            name = f"nfr_tap{lay.index}_{n.name}"
            gm.add_module(name, Tap(lay.index))
            wnode = next(m for m in graph.nodes if m.op == "call_module" and m.target == lay.weight)
            with graph.inserting_before(wnode):
                t = graph.call_module(name, (n,))
            order[t] = pos - 0.5
            for u in users:
                u.replace_input_with(n, t)
    graph.lint()
    gm.recompile()


#: model -> (state key, canonical GraphModule); weak keys: an entry dies with its model
_CANONICAL: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def state_key(model: nn.Module, taps: bool = False, output=None) -> tuple:
    """What the canonical form of ``model`` depends on: its modules (identity, type, mode, hooks),
    every parameter and buffer (identity, storage, in-place version, dtype, device) and the
    options. Any change (``load_state_dict``, ``randomize`` in place, ``.to()``, a new hook,
    ``train()``) gives a new key, so a stale canonical form is never reused.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    taps : bool
        Whether the canonical form has taps (see ``canonical``). Default False.
    output : int, str or callable, optional
        The ``output`` selector; a callable counts by its identity.

    Returns
    -------
    tuple
        ``(taps, output, modules, tensors)``, compared with ``==``.
    """
    mods = tuple((id(m), type(m), m.training, len(m._forward_hooks), len(m._forward_pre_hooks),
                  len(m._backward_hooks), len(getattr(m, "_backward_pre_hooks", ())),
                  id(m.__dict__.get("forward"))) for m in model.modules())
    tensors = tuple((id(t), t.data_ptr(), t._version, t.dtype, t.device)
                    for t in (*model.parameters(), *model.buffers()))
    out = output if output is None or isinstance(output, (int, str)) else ("id", id(output))
    return (taps, out, mods, tensors)


def canonical(model: nn.Module, *, taps: bool = False, output=None,
              forward_kwargs=None) -> fx.GraphModule:
    """Canonical GraphModule that SHARES the untouched parameters of ``model`` (no copy; used by
    the attributors, which never write to them). See :func:`canonize` for the public version.

    Computed once per model and state: reused while :func:`state_key` is unchanged (not with
    ``forward_kwargs``, whose values the trace may depend on, nor for a bare layer).

    Parameters
    ----------
    model : torch.nn.Module
        An eval-mode ReLU network, or a bare supported layer.
    taps : bool
        Insert a :class:`Tap` on every tensor crossing the cut before each weight layer (for
        the cascade). Default False.
    output : int, str or callable, optional
        Picks the logits from a structured output, as in :func:`nfr.engine.attribute.attribute`.
    forward_kwargs : dict, optional
        Values for ``forward``'s other arguments, as in :func:`nfr.engine.attribute.attribute`.

    Returns
    -------
    torch.fx.GraphModule
        The canonical graph, with ``gm.nfr_layers`` (a tuple of :class:`Layer`).
    """
    cacheable = forward_kwargs is None and not isinstance(model, _SUPPORTED)
    if cacheable:
        key = state_key(model, taps, output)
        entry = _CANONICAL.get(model)
        if entry is not None and entry["key"] == key:
            _check_hooks(model)          # a global hook registered since: refused as on a trace
            return entry["gm"]
    gm = _canonize_once(model, taps=taps, output=output, forward_kwargs=forward_kwargs)
    if cacheable:
        _CANONICAL[model] = {"key": key, "gm": gm}
    return gm


def _canonize_once(model: nn.Module, *, taps: bool = False, output=None,
                   forward_kwargs=None) -> fx.GraphModule:
    """Trace and canonicalise ``model`` (uncached)."""
    if isinstance(model, _SUPPORTED):    # a bare layer: fx never treats the root as a leaf
        _check_hooks(model)
        model = nn.Sequential(model).eval()
    modules: dict = {}
    graph = _build(model, modules, output, forward_kwargs)
    # keep only referenced modules, build a fresh root
    used = {n.target for n in graph.nodes if n.op == "call_module"}
    root = nn.Module()
    for name in sorted(used):
        mod = modules[name] if name in modules else model.get_submodule(name)
        _set(root, name, mod)
    for n in graph.nodes:
        if n.op == "get_attr":
            consts = getattr(graph, "nfr_consts", {})
            _set(root, n.target, consts[n.target] if n.target in consts else
                 _get_attr(model, n.target))
    gm = fx.GraphModule(root, graph, class_name=f"Canonical{type(model).__name__}")
    gm.eval()
    layers = _layers(gm)
    if taps:
        _insert_taps(gm, layers)
    _mark_inplace(gm)
    gm.nfr_layers = layers
    return gm


# readers whose backward returns a freshly allocated gradient for their input
_FRESH_GRAD = (Weighted, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)


def _mark_inplace(gm: fx.GraphModule):
    """Let a gate overwrite its input (as ``nn.ReLU(inplace=True)`` does) where that is provably
    safe: the input is the output of a :class:`Weighted` or :class:`Add` module whose ONLY user
    is this gate. Those modules save nothing of their output for the backward pass (the
    :class:`Weighted` rules keep Z_l without the bias instead), so no other reader, forward or
    backward, can see the overwrite; a saved tensor overwritten by mistake would make autograd
    raise, never return a wrong result. Saves one activation-sized buffer per gate (the
    allocation, not the arithmetic, is what costs on the CPU). A caller that keeps a weight
    layer's output to take gradients at it (``RuleState.keep``, e.g. the bias maps of
    :mod:`nfr.trgbp`) turns its gate back to out-of-place for that call (``gate.source``).

    Backward likewise (``gate.grad_inplace``): a gate may apply its mask to the incoming
    gradient in place when its output has ONE reader and that reader is a :class:`Weighted` or
    a pooling module, whose backward returns a new gradient that no other node, tap or caller
    holds. Not after an :class:`Add` (whose backward hands the same gradient to both branches),
    a :class:`Tap` (the cascade keeps the gradient it reports), several readers or the graph
    output (the caller's seed); a gate whose output the caller keeps (``RuleState.keep``:
    ``record=True``, the start of the activation rule) never writes to its gradient."""
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        gate = gm.get_submodule(node.target)
        if not isinstance(gate, Gate):
            continue
        src = node.args[0] if node.args else None
        ok = (len(node.args) == 1 and not node.kwargs and isinstance(src, fx.Node)
              and src.op == "call_module" and len(src.users) == 1
              and isinstance(gm.get_submodule(src.target), (Weighted, Add)))
        gate.source = (gm.get_submodule(src.target),) if ok else ()
        users = list(node.users)
        gate.grad_inplace = (len(users) == 1 and users[0].op == "call_module"
                             and isinstance(gm.get_submodule(users[0].target), _FRESH_GRAD))


def _get_attr(model, target):
    obj = model
    for p in target.split("."):
        obj = getattr(obj, p)
    return obj


def _set(root, name, value):
    parts = name.split(".")
    obj = root
    for p in parts[:-1]:
        if not hasattr(obj, p):
            setattr(obj, p, nn.Module())
        obj = getattr(obj, p)
    if isinstance(value, nn.Module):
        obj.add_module(parts[-1], value)
    elif isinstance(value, nn.Parameter):
        obj.register_parameter(parts[-1], value)
    elif isinstance(value, torch.Tensor):
        obj.register_buffer(parts[-1], value)
    else:
        setattr(obj, parts[-1], value)


def canonize(model: nn.Module, *, output=None, forward_kwargs=None) -> fx.GraphModule:
    """Return a NEW canonical ``torch.fx.GraphModule`` equivalent to ``model`` (a deep copy; the
    caller's model is never modified). ``model`` must be in eval mode (else :class:`~nfr.NFRError`).

    The result computes the same function f(x) (BatchNorm merged exactly:
    ``W' = W g / sqrt(var + eps)``, ``b' = (b - mean) g / sqrt(var + eps) + beta``), has one
    :class:`Gate` per ReLU call, a :class:`Weighted` per Conv2d/Linear and an :class:`Add` per
    residual sum. ``gm.nfr_layers`` lists the L weight layers in forward order, each with its
    gates (``Layer(index, weight, gates)``); layer l's rule acts on those modules.

    Parameters
    ----------
    model : torch.nn.Module
        The model, in eval mode.
    output : int, str or callable, optional
        As in :func:`nfr.engine.attribute.attribute`.
    forward_kwargs : dict, optional
        As in :func:`nfr.engine.attribute.attribute`.

    Returns
    -------
    torch.fx.GraphModule
        The canonical graph, with ``gm.nfr_layers``.

    Raises
    ------
    nfr.NFRError
        If ``model`` is in train mode, or (from the canonizer) has a layer, hook or operation
        the rules do not support.
    """
    check_eval(model)
    return canonical(copy.deepcopy(model), output=output, forward_kwargs=forward_kwargs)
