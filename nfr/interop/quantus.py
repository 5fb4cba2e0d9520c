"""An ``explain_func`` for Quantus (Hedström et al., "Quantus: an explainable AI toolkit for
responsible evaluation of neural network explanations and beyond").

Quantus's metrics call ``explain_func(model=..., inputs=..., targets=..., **explain_func_kwargs)``
with NumPy batches and expect a NumPy attribution back; :func:`explain` is that function for every
rule of :func:`nfr.engine.attribute.attribute`::

    quantus.MPRT()(model, x, y, explain_func=nfr.interop.quantus.explain,
                   explain_func_kwargs={"method": "gbp", "reduce": "abs_sum"})

Quantus itself is only needed to run its metrics, not to import this module.
"""
from __future__ import annotations

import numpy as np

from nfr.errors import NFRError
from nfr.interop.deps import require

torch = require("torch", "nfr.interop.quantus")

from nfr.engine.attribute import RULES  # noqa: E402  (after the torch check)
from nfr.engine.attribute import attribute as _attribute  # noqa: E402

__all__ = ["explain", "REDUCTIONS"]

REDUCTIONS = (None, "sum", "abs_sum")


def explain(model, inputs, targets, *, method="gbp", reduce=None, device=None, **options):
    """Attributions of ``model`` for a NumPy batch, as a NumPy array (Quantus's explain_func).

    Parameters
    ----------
    model : torch.nn.Module
        The model in eval mode (Quantus passes its own wrapped copy unwrapped).
    inputs : numpy.ndarray or torch.Tensor
        Batch ``[B, C, H, W]`` (channels first); converted to the dtype and device of the
        model's parameters.
    targets : numpy.ndarray, sequence of int, int or torch.Tensor
        The class per sample (ignored by the activation rules).
    method : str, optional
        The :func:`nfr.engine.attribute.attribute` rule (``"gbp"`` by default).
    reduce : {None, "sum", "abs_sum"}, optional
        None: the map shaped like ``inputs``; ``"sum"``: sum over channels, ``[B, 1, H, W]``;
        ``"abs_sum"``: sum of absolute values over channels (nfr's ``metrics.to_2d``), ``[B, 1,
        H, W]``.
    device : str or torch.device, optional
        Where to run (Quantus passes its ``device`` argument here); default: the device of the
        model's parameters.
    **options
        Further keyword arguments of :func:`nfr.engine.attribute.attribute` (``q``, ``low``, ``high``, ``layer``,
        ``bottom``, ...).

    Returns
    -------
    numpy.ndarray
        The attributions, float in the model's dtype, on the CPU.

    Raises
    ------
    NFRError
        For an unknown ``method`` or ``reduce``, a model that is not a torch module, or anything
        :func:`nfr.engine.attribute.attribute` rejects.
    """
    if not isinstance(method, str) or method not in RULES:
        raise NFRError(f"method must be one of {', '.join(RULES)}, got {method!r}")
    if reduce not in REDUCTIONS:
        raise NFRError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    if not isinstance(model, torch.nn.Module):
        raise NFRError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    p = next(iter(model.parameters()), None)
    dtype = p.dtype if p is not None else torch.get_default_dtype()
    dev = torch.device(device) if device is not None else (p.device if p is not None else "cpu")
    if p is not None and p.device != dev:
        raise NFRError(f"device={device!r} but the model's parameters are on {p.device}")
    x = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, torch.Tensor) else inputs)
    x = x.to(device=dev, dtype=dtype)
    t = targets
    if t is not None and not isinstance(t, int):
        t = torch.as_tensor(np.asarray(t) if not isinstance(t, torch.Tensor) else t).long()
        t = t.reshape(-1).to(dev)
    R = _attribute(model, x, t, method, **options).detach()
    if reduce == "sum":
        R = R.sum(1, keepdim=True)
    elif reduce == "abs_sum":
        R = R.abs().sum(1, keepdim=True)
    return R.cpu().numpy()
