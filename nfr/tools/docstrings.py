"""Check that the public API the book documents has numpydoc sections.

The API page (``book/api.md``) renders the modules it names with autodoc; every public function,
class and method those pages show must say, in numpydoc form, what it takes (``Parameters``: every
argument of the signature, by name), what it gives back (``Returns`` or ``Yields``, when its body
returns a value) and what it raises (``Raises``, when its body has a ``raise`` statement). A class
lists its constructor's arguments under ``Parameters`` or ``Attributes`` (a dataclass's fields).

Run ``python -m nfr.tools.docstrings [module ...]`` for the list of objects that miss a section;
``tests/test_docstrings.py`` fails while the list is not empty.
"""
from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import sys
import textwrap
from pathlib import Path

__all__ = ["api_modules", "public_objects", "sections", "problems", "main"]

ROOT = Path(__file__).resolve().parents[2]

_SECTION = re.compile(r"^(?P<name>[A-Z][A-Za-z ]+)\n-{3,}\s*$", re.M)


def api_modules(api_page: Path | None = None) -> dict[str, list[str] | None]:
    """The modules ``book/api.md`` renders, with the members it restricts them to.

    Parameters
    ----------
    api_page : pathlib.Path, optional
        The API page; ``book/api.md`` of the repository by default.

    Returns
    -------
    dict
        Module name -> list of member names (``:members: a, b``), ``None`` for all public members,
        or an empty list where the page shows the module's docstring only.
    """
    text = (api_page or ROOT / "book" / "api.md").read_text()
    out: dict[str, list[str] | None] = {}
    for m in re.finditer(r"\.\. automodule:: (\S+)\n((?:   :\S+:.*\n)*)", text):
        opts = m.group(2)
        mem = re.search(r":members:(.*)", opts)
        if mem is None:
            out[m.group(1)] = []
        elif mem.group(1).strip():
            out[m.group(1)] = [s.strip() for s in mem.group(1).split(",")]
        else:
            out[m.group(1)] = None
    for m in re.finditer(r"\.\. autoexception:: (\S+)", text):
        mod, _, name = m.group(1).rpartition(".")
        out.setdefault(mod, [])
        out[mod] = [*(out[mod] or []), name]
    return out


def public_objects(module: str, members: list[str] | None = None) -> list[tuple[str, object]]:
    """The functions, classes and methods autodoc shows for ``module``.

    Parameters
    ----------
    module : str
        Dotted module name.
    members : list of str, optional
        Restrict to these names (as ``:members: a, b`` does); all public members by default
        (``__all__`` where the module has one, else every public name defined in it).

    Returns
    -------
    list of (str, object)
        Qualified name and object, for every public function and class and every public method
        a class defines itself.
    """
    mod = importlib.import_module(module)
    if members is None:
        names = list(getattr(mod, "__all__", [n for n in vars(mod) if not n.startswith("_")]))
    else:
        names = members
    out = []
    for name in names:
        obj = getattr(mod, name, None)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if members is None and getattr(obj, "__module__", module) != module and not hasattr(mod, "__all__"):
            continue
        out.append((f"{module}.{name}", obj))
        if inspect.isclass(obj):
            for attr, val in vars(obj).items():
                if attr.startswith("_"):
                    continue
                fn = val.__func__ if isinstance(val, (staticmethod, classmethod)) else val
                if isinstance(val, property):
                    fn = val.fget
                if inspect.isfunction(fn) and fn.__doc__ is not None:
                    out.append((f"{module}.{name}.{attr}", fn))
    return out


def sections(doc: str | None) -> dict[str, str]:
    """Split a numpydoc docstring into its sections.

    Parameters
    ----------
    doc : str or None
        The docstring.

    Returns
    -------
    dict
        Section title (``"Parameters"``, ``"Returns"``, ...) -> its body; the summary is under ``""``.
    """
    text = inspect.cleandoc(doc or "")
    heads = list(_SECTION.finditer(text))
    out = {"": text[: heads[0].start()] if heads else text}
    for i, h in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        out[h.group("name").strip()] = text[h.end():end]
    return out


def _documented_names(body: str) -> set[str]:
    names = set()
    for line in body.splitlines():
        if not line or line[0].isspace():
            continue
        head = line.split(" : ")[0].rstrip(":").strip()
        for part in head.split(","):
            names.add(part.strip().lstrip("*"))
    return names


def _body_flags(fn) -> tuple[bool, bool, bool]:
    """(returns a value, yields, raises) from the function's own body (nested functions excluded)."""
    try:
        src = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return False, False, False
    tree = ast.parse(src)
    node = tree.body[0]
    returns = yields = raises = False
    stack = list(ast.iter_child_nodes(node))
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(n, ast.Return) and n.value is not None and not (
                isinstance(n.value, ast.Constant) and n.value.value is None):
            returns = True
        if isinstance(n, (ast.Yield, ast.YieldFrom)):
            yields = True
        if isinstance(n, ast.Raise):
            raises = True
        stack.extend(ast.iter_child_nodes(n))
    return returns, yields, raises


def _params(obj) -> list[str]:
    target = obj
    if inspect.isclass(obj):
        if dataclasses.is_dataclass(obj):
            return [f.name for f in dataclasses.fields(obj) if f.init]
        init = obj.__dict__.get("__init__")
        if init is None:
            return []
        target = init
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values() if p.name not in ("self", "cls")]


def problems(qualname: str, obj) -> list[str]:
    """What the docstring of one object misses.

    Parameters
    ----------
    qualname : str
        The name to report.
    obj : function or class
        The object checked.

    Returns
    -------
    list of str
        One message per missing section or undocumented argument; empty when the docstring is complete.
    """
    doc = obj.__doc__
    if not doc or not doc.strip():
        return [f"{qualname}: no docstring"]
    sec = sections(doc)
    out = []
    params = _params(obj)
    if inspect.isclass(obj):
        listed = _documented_names(sec.get("Parameters", "")) | _documented_names(sec.get("Attributes", ""))
        where = "Parameters or Attributes"
    else:
        listed = _documented_names(sec.get("Parameters", "")) | _documented_names(
            sec.get("Other Parameters", ""))
        where = "Parameters"
    missing = [p for p in params if p not in listed]
    if missing:
        out.append(f"{qualname}: {where} does not list {', '.join(missing)}")
    if not inspect.isclass(obj):
        returns, yields, raises = _body_flags(obj)
        if returns and "Returns" not in sec and "Yields" not in sec:
            out.append(f"{qualname}: no Returns section")
        if yields and "Yields" not in sec:
            out.append(f"{qualname}: no Yields section")
        if raises and "Raises" not in sec:
            out.append(f"{qualname}: no Raises section")
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the objects whose docstrings miss a numpydoc section.

    Parameters
    ----------
    argv : list of str, optional
        Module names to check (all those of ``book/api.md`` by default).

    Returns
    -------
    int
        0 when every object is complete, 1 otherwise.
    """
    argv = sys.argv[1:] if argv is None else argv
    mods = api_modules()
    if argv:
        mods = {m: mods.get(m) for m in argv}
    bad = []
    total = 0
    for mod, members in mods.items():
        objs = public_objects(mod, members)
        total += len(objs)
        for q, o in objs:
            bad += problems(q, o)
    print("\n".join(bad))
    print(f"{len(bad)} problems in {total} objects of {len(mods)} modules")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
