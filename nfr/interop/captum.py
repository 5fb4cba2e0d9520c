"""Captum-style classes for nfr's rules: ``Method(model).attribute(inputs, target=...)``.

One class per rule of :func:`nfr.engine.attribute.attribute`, with Captum's call shape (Kokhlikyan et al., "Captum:
A unified and generic model interpretability library for PyTorch"), so code written for Captum's
``GuidedBackprop``, ``Saliency`` or ``InputXGradient`` runs nfr's engine unchanged:

====================  ==================  =========================================================
class                 nfr rule            Captum counterpart
====================  ==================  =========================================================
``Gradient``          ``grad``            ``Saliency(model).attribute(x, target, abs=False)``
``GradientXInput``    ``grad_x_input``    ``InputXGradient``
``GuidedBackprop``    ``gbp``             ``GuidedBackprop``
``RectGrad``          ``rectgrad``        (none)
``ZPlus``             ``zplus``           (``LRP`` with its own rules; bias handling differs)
``AlphaBeta``         ``alphabeta``       (none)
``DTD``               ``dtd``             (none)
``Activation``        ``activation``      (none)
====================  ==================  =========================================================

``attribute`` returns exactly what :func:`nfr.engine.attribute.attribute` returns for the same arguments (a tensor
shaped like ``inputs``). The caller's model is never modified. Captum itself is not needed.
:func:`distinct_relus` prepares a model for libraries that hook ReLU *modules* (Captum, Zennit).
"""
from __future__ import annotations

from nfr.errors import NFRError
from nfr.interop.deps import require

torch = require("torch", "nfr.interop.captum")
nn = torch.nn

from nfr.engine.attribute import attribute as _attribute  # noqa: E402  (after the torch check)

__all__ = ["Gradient", "GradientXInput", "GuidedBackprop", "RectGrad", "ZPlus", "AlphaBeta",
           "DTD", "Activation", "METHODS", "distinct_relus"]


class _NFRAttribution:
    """Base of the Captum-style classes: ``rule`` is the :func:`nfr.engine.attribute.attribute` rule name and
    ``_options`` the keyword arguments that rule accepts (with their defaults)."""

    rule = ""
    _options: dict = {}

    def __init__(self, forward_func, **options):
        if not isinstance(forward_func, nn.Module):
            raise NFRError(f"{type(self).__name__}: forward_func must be a torch.nn.Module "
                           f"(nfr's rules act on its layers), got {type(forward_func).__name__}")
        self._check(options, "__init__")
        self.forward_func = forward_func
        self.options = {**self._options, **options}

    def _check(self, kwargs, where):
        bad = sorted(set(kwargs) - set(self._options) - {"bottom"})
        if bad:
            raise NFRError(f"{type(self).__name__}.{where}: unknown argument(s) {bad}; this "
                           f"method accepts {sorted(set(self._options) | {'bottom'})}")

    def attribute(self, inputs, target=None, additional_forward_args=None, **kwargs):
        """Attribution of ``forward_func`` at ``inputs`` for class ``target``.

        Parameters
        ----------
        inputs : torch.Tensor or tuple of one torch.Tensor
            A batch ``[B, ...]`` in the model's dtype (a 1-tuple, as Captum allows, returns a
            1-tuple).
        target : int, list of int or torch.LongTensor, optional
            The class per sample (one int for all). Required except for ``Activation``.
        additional_forward_args : None
            Not supported (nfr's rules need a model called with one tensor); must be None.
        **kwargs
            Overrides of the options given to the constructor (e.g. ``q`` for RectGrad,
            ``low``/``high`` for DTD, ``bottom``).

        Returns
        -------
        torch.Tensor or tuple of one torch.Tensor
            Exactly ``nfr.attribute(forward_func, inputs, target, rule, **options)``.

        Raises
        ------
        NFRError
            For a tuple of several inputs, ``additional_forward_args``, an unknown option, or
            anything :func:`nfr.engine.attribute.attribute` rejects (unsupported layer, bad target, ...).
        """
        if additional_forward_args is not None:
            raise NFRError(f"{type(self).__name__}.attribute: additional_forward_args is not "
                           "supported; wrap the model so it takes one tensor")
        self._check(kwargs, "attribute")
        single = True
        if isinstance(inputs, tuple):
            if len(inputs) != 1:
                raise NFRError(f"{type(self).__name__}.attribute: inputs must be one tensor or "
                               f"a tuple of one tensor, got a tuple of {len(inputs)}")
            inputs, single = inputs[0], False
        R = _attribute(self.forward_func, inputs, target, self.rule, **{**self.options, **kwargs})
        return R if single else (R,)

    def __repr__(self):
        return f"{type(self).__name__}(rule={self.rule!r}, options={self.options!r})"


class Gradient(_NFRAttribution):
    """The input gradient d f_k / d x (Captum's ``Saliency`` with ``abs=False``)."""
    rule = "grad"


class GradientXInput(_NFRAttribution):
    """Gradient times input x * d f_k / d x (Captum's ``InputXGradient``)."""
    rule = "grad_x_input"


class GuidedBackprop(_NFRAttribution):
    """Guided Backpropagation (Springenberg et al., "Striving for simplicity: the all
    convolutional net"): r_{l-1} = W_l M_l relu(r_l)."""
    rule = "gbp"


class RectGrad(_NFRAttribution):
    """Rectified Gradient (Kim et al., "Why are saliency maps noisy? Cause of and solution to
    noisy saliency maps"): a ReLU passes r_l only where A_l * r_l exceeds its per-sample
    ``q``-quantile (default ``q=0.9``); R = relu(x * r_0)."""
    rule = "rectgrad"
    _options = {"q": 0.9}


class ZPlus(_NFRAttribution):
    """LRP z+ (Montavon et al., "Explaining nonlinear classification decisions with deep Taylor
    decomposition"), bias excluded; ``eps`` stabilises the denominators."""
    rule = "zplus"
    _options = {"eps": 0.0}


class AlphaBeta(_NFRAttribution):
    """LRP alpha-beta (Bach et al., "On pixel-wise explanations for non-linear classifier
    decisions by layer-wise relevance propagation"); ``alpha - beta = 1``, default
    ``alpha=2, beta=1``."""
    rule = "alphabeta"
    _options = {"alpha": 2.0, "beta": 1.0, "eps": 0.0}


class DTD(_NFRAttribution):
    """Deep Taylor decomposition: z+ above the first layer, the z^B rule with the box
    [``low``, ``high``] at the first (default: min and max of the input)."""
    rule = "dtd"
    _options = {"low": None, "high": None, "eps": 0.0}


class Activation(_NFRAttribution):
    """The relevance at weight layer ``layer`` (1..L) replaced by its activation A_l, raw
    gradient below; the target is not used."""
    rule = "activation"
    _options = {"layer": None, "below": "grad"}

    def attribute(self, inputs, target=None, additional_forward_args=None, **kwargs):
        layer = kwargs.get("layer", self.options.get("layer"))
        if layer is None:
            raise NFRError("Activation needs layer= (a weight-layer index 1..L), in the "
                           "constructor or in attribute()")
        return super().attribute(inputs, target, additional_forward_args, **kwargs)

    attribute.__doc__ = _NFRAttribution.attribute.__doc__


METHODS = {c.rule: c for c in (Gradient, GradientXInput, GuidedBackprop, RectGrad, ZPlus,
                               AlphaBeta, DTD, Activation)}


def distinct_relus(model):
    """A copy of ``model`` in which every ReLU call has its own, non-inplace ``nn.ReLU`` module.

    Libraries that hook ReLU *modules* (Captum's GuidedBackprop, Zennit's rules) see one module
    per call only when no module is called twice (torchvision's ResNet blocks call ``self.relu``
    twice) and expect no in-place ReLU. The model is traced with ``torch.fx``; ``torch.relu`` and
    ``F.relu`` calls become modules as well. The caller's model is not modified; parameters are
    shared with the copy.

    Parameters
    ----------
    model : torch.nn.Module
        A model ``torch.fx.symbolic_trace`` can trace.

    Returns
    -------
    torch.fx.GraphModule
        The same function, with modules ``nfr_relu_<k>`` (k = 0, 1, ... in call order) in place
        of every ReLU.

    Raises
    ------
    NFRError
        If ``model`` is not a module or cannot be traced.
    """
    import torch.fx as fx
    import torch.nn.functional as F
    if not isinstance(model, nn.Module):
        raise NFRError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 -- fx raises many types for dynamic control flow
        raise NFRError(f"model: torch.fx cannot trace {type(model).__name__} ({type(e).__name__}: "
                       f"{e})") from e
    k = 0
    for node in list(gm.graph.nodes):
        is_mod = node.op == "call_module" and isinstance(gm.get_submodule(node.target), nn.ReLU)
        is_fn = node.op == "call_function" and node.target in (torch.relu, F.relu, torch.relu_)
        is_meth = node.op == "call_method" and node.target in ("relu", "relu_")
        if not (is_mod or is_fn or is_meth):
            continue
        name = f"nfr_relu_{k}"
        k += 1
        gm.add_submodule(name, nn.ReLU(inplace=False))
        with gm.graph.inserting_after(node):
            new = gm.graph.call_module(name, (node.args[0],))
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    return gm.train(model.training)
