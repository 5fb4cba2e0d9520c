"""Lazy import of optional dependencies with an :class:`~nfr.errors.NFRError` when missing."""
from importlib import import_module

from nfr.errors import NFRError

# package -> the pip extra of nfr that installs it
_EXTRA = {"torch": "torch", "torchvision": "torch", "captum": "test", "zennit": "test",
          "quantus": "test"}


def require(package: str, purpose: str):
    """Import and return ``package``; raise :class:`NFRError` naming it when it is missing.

    Parameters
    ----------
    package : str
        The top-level module name (``"torch"``, ``"zennit"``, ``"quantus"``).
    purpose : str
        What needs it, for the message (e.g. ``"nfr.interop.zennit"``).

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    NFRError
        If the package cannot be imported.
    """
    try:
        return import_module(package)
    except ImportError as e:
        extra = _EXTRA.get(package)
        hint = f" (pip install 'nfr[{extra}]' or pip install {package})" if extra else ""
        raise NFRError(f"{purpose} needs the optional package {package!r}, which is not "
                       f"installed{hint}: {e}") from e
