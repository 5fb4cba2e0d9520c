"""nfr: Negative Filtering Rules -- theory, reference and engine for modified-backprop attributions.

``import nfr`` never imports torch. The NumPy reference lives in :mod:`nfr.reference`;
the torch engine (``nfr.attribute``, ``nfr.cascade``, ``nfr.alignment``, ``nfr.randomize``)
is loaded lazily on first use.
"""
__version__ = "0.1.0"
