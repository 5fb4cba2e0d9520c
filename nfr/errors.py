"""The one exception type of nfr (no torch import)."""


class NFRError(ValueError):
    """Raised for unsupported models or layers and for bad input.

    The message always names what is wrong (the layer, node, argument or value) and what to do.
    It subclasses ``ValueError`` so generic handlers still catch it.
    """
