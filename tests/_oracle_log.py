"""Largest relative differences measured against each oracle in this test session.

``record(oracle, got, want)`` stores max|got - want| / max|want| under the oracle's name; the
session's summary (tests/conftest.py) prints the largest value per oracle and writes them to
``_build/oracle_differences.json``. The asserts stay in the tests; this only reports.
"""
from __future__ import annotations

import numpy as np

LOG: dict[str, list[tuple[str, float]]] = {}


def record(oracle: str, got, want, where: str = "") -> float:
    g = np.asarray(got.detach().cpu() if hasattr(got, "detach") else got, dtype=float)
    w = np.asarray(want.detach().cpu() if hasattr(want, "detach") else want, dtype=float)
    rel = float(np.abs(g - w).max() / max(float(np.abs(w).max()), 1e-300)) if w.size else 0.0
    LOG.setdefault(oracle, []).append((where, rel))
    return rel
