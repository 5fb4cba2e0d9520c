"""The public API the book's API page renders is documented in numpydoc (Parameters, Returns, Raises)."""
import pytest

from nfr.tools import docstrings as D


def _good(a, b=1):
    """Add.

    Parameters
    ----------
    a, b : int
        The terms.

    Returns
    -------
    int
        The sum.

    Raises
    ------
    ValueError
        When ``a`` is negative.
    """
    if a < 0:
        raise ValueError("a")
    return a + b


def _no_sections(a, b=1):
    """Add a and b; raise ValueError for a negative a."""
    if a < 0:
        raise ValueError("a")
    return a + b


def _half(a, *, scale=1.0):
    """Scale.

    Parameters
    ----------
    a : float
        The value.
    """
    def inner():
        raise RuntimeError  # a nested function's raise is not this function's
    return a * scale


def _gen(n):
    """Count.

    Parameters
    ----------
    n : int
        How far.

    Yields
    ------
    int
        0, 1, ..., n - 1.
    """
    yield from range(n)


class _Cls:
    """A thing.

    Parameters
    ----------
    x : int
        Its value.
    """

    def __init__(self, x, y=0):
        self.x = x


def test_the_checker_finds_what_is_missing_and_passes_what_is_complete():
    assert D.problems("good", _good) == []
    assert D.problems("gen", _gen) == []
    msgs = D.problems("bare", _no_sections)
    assert any("does not list a, b" in m for m in msgs)
    assert any("no Returns" in m for m in msgs) and any("no Raises" in m for m in msgs)
    msgs = D.problems("half", _half)
    assert msgs == ["half: Parameters does not list scale", "half: no Returns section"]
    assert D.problems("cls", _Cls) == ["cls: Parameters or Attributes does not list y"]
    assert D.problems("none", lambda: 1) == ["none: no docstring"]


def test_the_api_page_names_the_package_modules():
    mods = D.api_modules()
    assert {"nfr.engine.attribute", "nfr.metrics", "nfr.reference", "nfr.experiments", "nfr.setup"} <= set(mods)
    assert mods["nfr.reference.filters"] == ["nfr_gap"]
    assert sum(len(D.public_objects(m, mem)) for m, mem in mods.items()) >= 150


@pytest.mark.parametrize("module", sorted(D.api_modules()))
def test_every_public_object_of_the_api_page_has_numpydoc_sections(module):
    members = D.api_modules()[module]
    bad = [p for q, o in D.public_objects(module, members) for p in D.problems(q, o)]
    assert not bad, "\n".join(bad)
