"""Adapters that run nfr's rules through the interfaces of other attribution libraries.

* :mod:`nfr.interop.captum`: one Captum-style class per rule,
  ``GuidedBackprop(model).attribute(inputs, target=...)`` (needs torch, not Captum);
* :mod:`nfr.interop.zennit`: the rules Zennit lacks (RectGrad) as a Zennit rule and composite;
* :mod:`nfr.interop.quantus`: an ``explain_func`` for Quantus's metrics.

Each adapter is a thin layer over :func:`nfr.attribute`; ``import nfr.interop`` imports neither
torch nor any of those libraries (the submodules load on first access, and a missing optional
dependency raises :class:`~nfr.errors.NFRError` naming the package to install).
"""
from importlib import import_module

__all__ = ["captum", "zennit", "quantus"]


def __getattr__(name):
    if name in __all__:
        module = import_module(f"nfr.interop.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'nfr.interop' has no attribute {name!r}")
