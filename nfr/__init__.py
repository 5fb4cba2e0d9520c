"""nfr: Negative Filtering Rules -- theory, reference and engine for modified-backprop attributions.

``import nfr`` never imports torch. The NumPy reference (the readable specification) lives in
:mod:`nfr.reference`; the torch engine that runs the same rules on real networks is loaded lazily
on first use of ``nfr.attribute``, ``nfr.cascade``, ``nfr.alignment`` or ``nfr.randomize``.
"""
from importlib import import_module

from nfr.errors import NFRError

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access, so torch loads only when needed)
_LAZY = {
    "attribute": "nfr.engine.attribute",
    "cascade": "nfr.engine.attribute",
    "alignment": "nfr.engine.attribute",
    "randomize": "nfr.engine.weights",
}

__all__ = ["NFRError", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nfr' has no attribute {name!r}")
