"""Distribution statistics shared by the metrics and the verdicts (NumPy and SciPy only, no torch).

* :func:`roc_auc`: the rank-based ROC-AUC of a score for predicting a binary label;
* :func:`bimodality_coefficient`: Sarle's bimodality coefficient of a sample, with
  ``BIMODALITY_THRESHOLD`` (5/9, a uniform sample's value) as the usual cut.

Both accept NumPy arrays, sequences or torch tensors (read through ``.detach().cpu().numpy()``
without importing torch), so :mod:`nfr.kis` (the KIS metric, chapter 9) and ``nfr.verdicts``
(the criteria's ``auc_difference`` and ``bimodality`` statistics) compute them the same way.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from nfr.errors import NFRError

__all__ = ["as_vector", "roc_auc", "auc_rows", "auc_weighted", "bimodality_coefficient", "bimodality_rows", "BIMODALITY_THRESHOLD"]

#: Sarle's bimodality coefficient of a uniform distribution (5/9); larger values suggest bimodality
BIMODALITY_THRESHOLD = 5.0 / 9.0


def as_vector(a) -> np.ndarray:
    """``a`` as a flat float64 NumPy vector.

    Parameters
    ----------
    a : array_like or torch.Tensor
        Values (a tensor is read through ``.detach().cpu().numpy()``).

    Returns
    -------
    numpy.ndarray
        The values, flattened, as float64.
    """
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64).ravel()


def roc_auc(score, label) -> float:
    """ROC-AUC of ``score`` for predicting ``label`` (1/True = positive), rank-based (Mann-Whitney):

        AUC = (sum of the ranks of the positives - n1 (n1 + 1) / 2) / (n1 n0),

    ranks 1..n over all samples with ties given their average rank; equivalently the probability
    that a random positive scores above a random negative, ties counting 1/2.

    Parameters
    ----------
    score : array_like or torch.Tensor
        The N scores, all finite.
    label : array_like or torch.Tensor
        The N labels (1/True = positive).

    Returns
    -------
    float
        The AUC; nan if a class is empty.

    Raises
    ------
    nfr.NFRError
        If ``score`` and ``label`` differ in size, or a score is not finite (nan or inf).
    """
    s, y = as_vector(score), as_vector(label).astype(bool)
    if s.shape != y.shape:
        raise NFRError(f"score and label have different sizes {s.size} and {y.size}")
    if not np.isfinite(s).all():
        raise NFRError("roc_auc: scores contain nan or inf; drop those samples first")
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(s, method="average")
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def bimodality_coefficient(values) -> float:
    """Sarle's bimodality coefficient (SAS; Pfister et al. 2013) of a sample of size n >= 4:

        b = (g^2 + 1) / (kappa + 3 (n - 1)^2 / ((n - 2)(n - 3))),

    g the bias-corrected sample skewness G1 = sqrt(n (n - 1)) / (n - 2) * m3 / m2^(3/2) and kappa
    the bias-corrected sample excess kurtosis G2 = (n - 1) / ((n - 2)(n - 3)) * ((n + 1) m4 / m2^2
    - 3 (n - 1)), with central moments m_j = mean((v - mean v)^j). b -> 1/3 for a normal sample,
    5/9 for a uniform one (``BIMODALITY_THRESHOLD``) and 1 for two equal point masses; b > 5/9
    suggests a bimodal (or very skewed) distribution.

    Parameters
    ----------
    values : array_like or torch.Tensor
        The sample; non-finite values are dropped.

    Returns
    -------
    float
        b; nan for a constant sample.

    Raises
    ------
    nfr.NFRError
        If fewer than 4 finite values remain.
    """
    v = as_vector(values)
    v = v[np.isfinite(v)]
    n = v.size
    if n < 4:
        raise NFRError(f"the bimodality coefficient needs at least 4 finite values, got {n}")
    return float(bimodality_rows(v[None, :])[0])


def bimodality_rows(v: np.ndarray) -> np.ndarray:
    """:func:`bimodality_coefficient` of every row: the vectorised form the bootstrap of
    ``nfr.verdicts`` resamples.

    Parameters
    ----------
    v : numpy.ndarray
        A finite ``(B, n)`` array, n >= 4.

    Returns
    -------
    numpy.ndarray
        ``(B,)`` coefficients; nan for a constant row.
    """
    v = np.asarray(v, dtype=np.float64)
    n = v.shape[-1]
    d = v - v.mean(axis=-1, keepdims=True)
    d2 = d * d
    m2, m3, m4 = d2.mean(axis=-1), (d2 * d).mean(axis=-1), (d2 * d2).mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.sqrt(n * (n - 1)) / (n - 2) * m3 / m2 ** 1.5
        kappa = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * m4 / m2 ** 2 - 3 * (n - 1))
        b = (g ** 2 + 1) / (kappa + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    return np.where(m2 > 0, b, np.nan)


def auc_rows(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """:func:`roc_auc` for every row: the vectorised form the bootstrap of ``nfr.verdicts`` resamples.

    Parameters
    ----------
    pos : numpy.ndarray
        ``(B, n1)`` scores of the positives (a 1D array is one row).
    neg : numpy.ndarray
        ``(B, n0)`` scores of the negatives.

    Returns
    -------
    numpy.ndarray
        ``(B,)`` AUCs of telling ``pos[i]`` from ``neg[i]`` (ranks over both, ties averaged); nan when a
        group is empty.
    """
    pos, neg = np.atleast_2d(np.asarray(pos, dtype=np.float64)), np.atleast_2d(np.asarray(neg, dtype=np.float64))
    n1, n0 = pos.shape[-1], neg.shape[-1]
    if n1 == 0 or n0 == 0:
        return np.full(pos.shape[0], np.nan)
    # Mann-Whitney by counting: for each positive the negatives below it, ties counting 1/2 (equal to
    # the rank formula of roc_auc; a sort of the negatives and two binary searches per row)
    neg = np.sort(neg, axis=-1)
    out = np.empty(pos.shape[0])
    for b in range(pos.shape[0]):
        lo = np.searchsorted(neg[b], pos[b], side="left")
        hi = np.searchsorted(neg[b], pos[b], side="right")
        out[b] = (lo.sum() + 0.5 * (hi - lo).sum()) / (n1 * n0)
    return out


def auc_weighted(pos: np.ndarray, neg: np.ndarray, wpos: np.ndarray, wneg: np.ndarray) -> np.ndarray:
    """:func:`roc_auc` of fixed scores under many weightings of the samples (bootstrap resamples as
    counts), without sorting again: row b is the AUC of the sample in which positive i occurs
    ``wpos[b, i]`` times and negative j ``wneg[b, j]`` times.

    Parameters
    ----------
    pos : numpy.ndarray
        ``(n1,)`` scores of the positives.
    neg : numpy.ndarray
        ``(n0,)`` scores of the negatives.
    wpos : numpy.ndarray
        ``(B, n1)`` non-negative weights (counts) of the positives.
    wneg : numpy.ndarray
        ``(B, n0)`` weights of the negatives.

    Returns
    -------
    numpy.ndarray
        ``(B,)``: sum_ij wpos_i wneg_j (1(pos_i > neg_j) + 1/2 1(pos_i = neg_j)) / (sum wpos sum wneg).
    """
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    wpos, wneg = np.atleast_2d(np.asarray(wpos, dtype=np.float64)), np.atleast_2d(np.asarray(wneg, dtype=np.float64))
    uniq, inv = np.unique(np.concatenate([pos, neg]), return_inverse=True)
    ip, ineg = inv[:len(pos)], inv[len(pos):]
    B, U = wneg.shape[0], len(uniq)
    # the negatives' weight at each distinct value, per row; below = strictly smaller values
    flat = (np.arange(B)[:, None] * U + ineg[None, :]).ravel()
    at = np.bincount(flat, weights=wneg.ravel(), minlength=B * U).reshape(B, U)
    below = np.cumsum(at, axis=1) - at
    num = (wpos * (below[:, ip] + 0.5 * at[:, ip])).sum(axis=1)
    return num / (wpos.sum(axis=1) * wneg.sum(axis=1))
