"""Configuration fields with their help text and valid values: the one definition of an option.

Every experiment's ``Config`` and ``nfr.train.TrainConfig`` are dataclasses made of :func:`option`
fields; ``python -m nfr`` builds each sub-command's options from them (so no option exists without
a field) and :func:`check_config` refuses values outside their choices or range.
"""
from __future__ import annotations

from dataclasses import field, fields

from nfr.errors import NFRError

__all__ = ["option", "check_config"]


def option(default, help: str, *, choices=None, minimum=None, maximum=None, above=None,
           metavar: str | None = None):
    """A Config field: its default, the help text of its command-line option, and what values are
    valid (a list option is checked element by element).

    Parameters
    ----------
    default : object
        The default value; a list is copied per instance (a ``default_factory``).
    help : str
        The help text of the command-line option.
    choices : iterable, optional
        The valid values.
    minimum, maximum : float, optional
        The range ``minimum`` <= v <= ``maximum``.
    above : float, optional
        The strict lower bound ``above`` < v.
    metavar : str, optional
        The option's placeholder in the command-line help.

    Returns
    -------
    dataclasses.Field
        The field, with the help text and the checks in its ``metadata``.
    """
    meta = dict(help=help, choices=tuple(choices) if choices else None, minimum=minimum,
                maximum=maximum, above=above, metavar=metavar)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def check_config(config) -> None:
    """Refuse a field value outside its choices or range.

    Fields without metadata and values that are None pass; the range is checked only for
    numbers (not bools).

    Parameters
    ----------
    config : object
        A dataclass instance made of :func:`option` fields.

    Raises
    ------
    nfr.NFRError
        For a value (or an element of a list value) outside its field's choices or range; the
        message names the option (``--field-name``).
    """
    for f in fields(config):
        m, value = f.metadata, getattr(config, f.name)
        if not m or value is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if m.get("choices") and v not in m["choices"]:
                raise NFRError(f"{flag} must be one of {', '.join(map(str, m['choices']))}, got {v!r}")
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if m.get("minimum") is not None and v < m["minimum"]:
                raise NFRError(f"{flag} must be >= {m['minimum']}, got {v}")
            if m.get("maximum") is not None and v > m["maximum"]:
                raise NFRError(f"{flag} must be <= {m['maximum']}, got {v}")
            if m.get("above") is not None and not v > m["above"]:
                raise NFRError(f"{flag} must be > {m['above']}, got {v}")
