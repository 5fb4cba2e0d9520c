"""Theorem 2 of Zheng et al. and cascade alignment on toy networks (chapter 3), NumPy only.

Two parts.

*One hidden layer* (Theorem 2). ``W`` has shape ``[d, m]``, columns ``w_j`` (one per hidden
unit), ``z = W^T x``, ``A = relu(z)``, ``M = diag(1(z > 0))``. Relevance ``r`` at the hidden layer
becomes the "NFR result" ``R = W M g(r)`` at the input, where ``g`` is the rule's treatment of
``r`` (``relu`` for GBP, the identity for the raw gradient). Because ``M z = A``,

    <W M v, x> = <v, A>      and, if ``W^T W = s^2 I``,      ||W M v|| = s ||M v||,

so ``alpha(W M v, x) = <v, A> / (s ||M v|| ||x||)`` and Cauchy-Schwarz gives
``alpha(W M v, x) <= ||A|| / (s ||x||) = alpha(W A, x)`` for every ``v``.
Every function here is batched over a leading *trial* axis ``T``.

*Deep toy networks* (cascade substitution, Definition 3 / eq 19). :func:`batched_cascade`
computes ``r_0^N`` for every level ``N = 0..L`` and a whole stack of networks at once; it is the
batched twin of :func:`nfr.reference.backprop.cascade` (the tests hold the two equal).
"""
from __future__ import annotations

import numpy as np

from nfr.errors import NFRError
from nfr.plotting import LABELS, style
from nfr.reference.network import forward, random_network

RELEVANCE_DISTS = ("gaussian", "uniform", "exponential", "halfnormal", "constant")
CASCADE_RULES = ("grad", "gbp", "rectgrad", "zplus", "activation")


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


# --------------------------------------------------------------------------- one hidden layer
def orthogonal_columns(d: int, m: int, trials: int, seed=0, scale: float = 1.0) -> np.ndarray:
    """``trials`` matrices ``W`` of shape ``[d, m]`` with ``W^T W = scale^2 I`` (needs ``m <= d``).

    ``W = scale * Q``, ``Q`` the (sign-fixed) QR factor of a Gaussian ``d x m`` matrix, so the
    columns are pairwise orthogonal with equal L2 norm ``scale`` and a uniformly random frame.
    """
    if m > d:
        raise NFRError(f"orthogonal columns need m <= d, got m={m}, d={d}")
    q, r = np.linalg.qr(_rng(seed).standard_normal((trials, d, m)))
    signs = np.sign(np.diagonal(r, axis1=-2, axis2=-1))
    return scale * q * signs[:, None, :]


def broken_weights(d: int, m: int, trials: int, rho: float = 0.0, sigma: float = 0.0,
                   seed=0) -> np.ndarray:
    """Theorem 2's weights with its hypotheses broken on purpose, shape ``[trials, d, m]``.

    ``w_j = exp(sigma * xi_j) (q_j + rho u)``, where ``q_1..q_m, u`` are orthonormal (one QR of a
    Gaussian ``d x (m+1)`` matrix, ``m < d``) and ``xi_j ~ N(0, 1)`` i.i.d. ``rho`` makes every pair
    of columns correlated (cosine ``rho^2 / (1 + rho^2)``, norms still equal); ``sigma`` gives the
    norms a log-normal spread (directions still orthogonal). ``rho = sigma = 0`` is Theorem 2.
    """
    rng = _rng(seed)
    Q = orthogonal_columns(d, m + 1, trials, rng)
    W = Q[..., :m] + rho * Q[..., m:]
    return W * np.exp(sigma * rng.standard_normal((trials, 1, m)))


def sample_relevance(dist: str, shape, seed=0) -> np.ndarray:
    """I.i.d. relevance entries ``r_b``: ``gaussian`` N(0,1), ``uniform`` U[-1,1], ``exponential``
    Exp(1), ``halfnormal`` |N(0,1)|, ``constant`` (all ones, the degenerate distribution)."""
    rng = _rng(seed)
    if dist == "gaussian":
        return rng.standard_normal(shape)
    if dist == "uniform":
        return rng.uniform(-1.0, 1.0, shape)
    if dist == "exponential":
        return rng.exponential(1.0, shape)
    if dist == "halfnormal":
        return np.abs(rng.standard_normal(shape))
    if dist == "constant":
        return np.ones(shape)
    raise NFRError(f"unknown relevance distribution {dist!r}; choose one of {RELEVANCE_DISTS}")


def batched_alignment(R: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Definition 1 along the last axis: ``alpha = <R, x> / (||R|| ||x||)``, 0 where a norm is 0."""
    num = np.sum(R * x, axis=-1)
    den = np.linalg.norm(R, axis=-1) * np.linalg.norm(x, axis=-1)
    out = np.zeros(np.broadcast_shapes(num.shape, den.shape))
    np.divide(num, den, out=out, where=den > 0)
    return out


def hidden(W: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward pass of the hidden layer: ``A = relu(W^T x)`` and the mask ``1(W^T x > 0)``."""
    z = np.einsum("...dm,...d->...m", W, x)
    return np.maximum(z, 0.0), z > 0


def nfr_result(W: np.ndarray, x: np.ndarray, r: np.ndarray, treatment: str = "gbp") -> np.ndarray:
    """The one-layer NFR result ``R = W M g(r)`` with ``g = relu`` (``"gbp"``) or ``g = id`` (``"raw"``)."""
    _, m = hidden(W, x)
    if treatment == "gbp":
        r = np.maximum(r, 0.0)
    elif treatment != "raw":
        raise NFRError(f"unknown treatment {treatment!r}; choose 'gbp' or 'raw'")
    return np.einsum("...dm,...m->...d", W, m * r)


def optimal_alignment(W: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``max_v alpha(W M v, x) = ||P_S x|| / ||x||``, ``P_S`` the projection onto the active columns.

    The maximiser is ``M v = G^+ A`` with ``G = M W^T W M`` (Gram matrix of the active columns):
    ``<W M v, x> = <v, A>`` and ``||W M v||^2 = v^T G v``, so Cauchy-Schwarz in the ``G`` inner
    product gives ``<v, A> <= sqrt(v^T G v) sqrt(A^T G^+ A)``. Computed as ``||Q_S^T x|| / ||x||``
    with ``Q_S`` from a QR factorisation of the active columns moved to the front (batched; assumes
    that the first ``min(k, d)`` active columns are linearly independent, which holds with
    probability 1 for continuous weight distributions; ``k > d`` then gives ``P_S = I``).
    """
    _, m = hidden(W, x)
    order = np.argsort(~m, axis=-1, kind="stable")             # active columns first
    Wa = np.take_along_axis(W * m[..., None, :], order[..., None, :], axis=-1)
    q, _ = np.linalg.qr(Wa)                                    # q: [..., d, min(d, m)]
    keep = np.arange(q.shape[-1]) < m.sum(axis=-1, keepdims=True)
    proj = np.einsum("...di,...d->...i", q, x) * keep
    return np.linalg.norm(proj, axis=-1) / np.linalg.norm(x, axis=-1)


def theorem2_trials(W: np.ndarray, x: np.ndarray, r_b: np.ndarray, treatment: str = "gbp") -> dict:
    """Both sides of Theorem 2 for a batch of trials.

    Returns ``alpha_a = alpha(W A, x)`` (``r_a = A``), ``alpha_b = alpha(W M g(r_b), x)``,
    ``alpha_mean = alpha(W M 1, x)`` (the direction of the *expected* result for i.i.d. ``g(r_b)``
    with positive mean), ``closed_form = ||A|| / (s ||x||)`` with ``s`` the mean column norm (equal
    to ``alpha_a`` when ``W^T W = s^2 I``), and ``cos_rA = cos(M g(r_b), A)``.
    """
    A, m = hidden(W, x)
    g = np.maximum(r_b, 0.0) if treatment == "gbp" else r_b
    s = np.linalg.norm(W, axis=-2).mean(axis=-1)
    return dict(
        alpha_a=batched_alignment(nfr_result(W, x, A, "raw"), x),
        alpha_b=batched_alignment(nfr_result(W, x, r_b, treatment), x),
        alpha_mean=batched_alignment(nfr_result(W, x, np.ones_like(A), "raw"), x),
        closed_form=np.linalg.norm(A, axis=-1) / (s * np.linalg.norm(x, axis=-1)),
        cos_rA=batched_alignment(m * g, A),
    )


def equal_activation_inputs(W: np.ndarray, frac: float = 0.5, seed=0) -> np.ndarray:
    """Inputs whose active activations are all equal: ``z = W^T x`` is ``1`` on a random ``frac``
    of the units and negative elsewhere, plus a random component orthogonal to ``range(W)``.

    Needs ``W^T W = s^2 I``: then ``x = W z / s^2 + (I - W W^T / s^2) n`` has ``W^T x = z``.
    """
    rng = _rng(seed)
    T, d, m = W.shape
    s2 = np.sum(W[:, :, 0] ** 2, axis=-1)[:, None]
    active = rng.random((T, m)) < frac
    active[:, 0] = True                                        # at least one active unit
    z = np.where(active, 1.0, -np.abs(rng.standard_normal((T, m))) - 0.1)
    n = rng.standard_normal((T, d))
    n = n - np.einsum("tdm,tm->td", W, np.einsum("tdm,td->tm", W, n)) / s2
    return np.einsum("tdm,tm->td", W, z) / s2 + n


def rms_ratio(dist: str) -> float:
    """``E g / sqrt(E g^2)`` for ``g = relu(r)``, ``r`` one entry of :func:`sample_relevance`.

    gaussian ``1/sqrt(pi)``; uniform U[-1,1]: ``E g = 1/4``, ``E g^2 = 1/6``; exponential ``1/sqrt 2``;
    halfnormal ``sqrt(2/pi)``; constant ``1``. For the active activations of a Gaussian
    pre-activation (half-normal) the same ratio is ``sqrt(2/pi)``.
    """
    table = {"gaussian": 1 / np.sqrt(np.pi), "uniform": 0.25 / np.sqrt(1 / 6), "exponential": 1 / np.sqrt(2),
             "halfnormal": np.sqrt(2 / np.pi), "constant": 1.0}
    if dist not in table:
        raise NFRError(f"unknown relevance distribution {dist!r}; choose one of {RELEVANCE_DISTS}")
    return float(table[dist])


def large_width_ratio(dist: str) -> float:
    """Predicted ``alpha(R_b, x) / alpha(R_a, x)`` for many active units, Gaussian ``z``, GBP's relu:
    ``cos(M g, A) -> (E g / rms g) (E A / rms A) = rms_ratio(dist) * sqrt(2/pi)``."""
    return rms_ratio(dist) * float(np.sqrt(2 / np.pi))


def shortfall_ratio(m: int, trials: int, dist: str, seed=0) -> np.ndarray:
    """Monte-Carlo ``cos(M g(r_b), A)`` with ``z ~ N(0, I_m)`` (``z = W^T x`` for orthonormal ``W``
    and Gaussian ``x``); under Theorem 2's hypotheses this *is* ``alpha(R_b, x) / alpha(R_a, x)``."""
    rng = _rng(seed)
    z = rng.standard_normal((trials, m))
    g = np.maximum(sample_relevance(dist, (trials, m), rng), 0.0)
    return batched_alignment((z > 0) * g, np.maximum(z, 0.0))


def break_sweep(d: int, m: int, trials: int, rhos, sigmas, dist: str = "gaussian", seed=0) -> dict:
    """Theorem 2 with broken hypotheses: for each ``(rho, sigma)`` pair (zipped) and Gaussian ``x``,
    the share of trials with ``alpha(R_b, x) > alpha(R_a, x)`` (GBP treatment of ``r_b``), the mean
    excess ``alpha_b - alpha_a`` over those trials, the mean ``alpha_a`` and the mean optimum
    ``||P_S x|| / ||x||`` (what the best possible ``r`` would reach), and ``above_opt``, the share of
    trials in which ``alpha_b`` exceeds that optimum (0 by the projection lemma)."""
    rng = _rng(seed)
    out = {k: [] for k in ("fail", "excess", "alpha_a", "alpha_opt", "above_opt")}
    for rho, sigma in zip(rhos, sigmas):
        W = broken_weights(d, m, trials, rho, sigma, rng)
        x = rng.standard_normal((trials, d))
        res = theorem2_trials(W, x, sample_relevance(dist, (trials, m), rng))
        diff = res["alpha_b"] - res["alpha_a"]
        out["fail"].append(np.mean(diff > 1e-12))
        out["excess"].append(diff[diff > 1e-12].mean() if np.any(diff > 1e-12) else 0.0)
        out["alpha_a"].append(res["alpha_a"].mean())
        opt = optimal_alignment(W, x)
        out["alpha_opt"].append(opt.mean())
        out["above_opt"].append(np.mean(res["alpha_b"] > opt + 1e-12))
    return {k: np.array(v) for k, v in out.items()}


def gaussian_weight_sweep(d: int, ms, trials: int, dist: str = "gaussian", seed=0) -> dict:
    """I.i.d. N(0, 1/d) weights (no orthogonality imposed) of ``m`` columns each: share of trials with
    ``alpha(R_b, x) > alpha(R_a, x)``, mean ``alpha_a`` and mean optimum, for each ``m`` in ``ms``."""
    rng = _rng(seed)
    out = {k: [] for k in ("fail", "alpha_a", "alpha_opt")}
    for m in ms:
        W = rng.standard_normal((trials, d, m)) / np.sqrt(d)
        x = rng.standard_normal((trials, d))
        res = theorem2_trials(W, x, sample_relevance(dist, (trials, m), rng))
        out["fail"].append(np.mean(res["alpha_b"] > res["alpha_a"] + 1e-12))
        out["alpha_a"].append(res["alpha_a"].mean())
        out["alpha_opt"].append(optimal_alignment(W, x).mean())
    return {k: np.array(v) for k, v in out.items()}


def cosine_spread(ds, pairs: int, seed=0) -> dict:
    """Near-orthogonality of i.i.d. Gaussian vectors in ``R^d``: for each ``d``, the standard deviation
    of ``cos(u, v)`` over ``pairs`` independent pairs (theory: ``1/sqrt(d)``, since
    ``sqrt(d) cos -> N(0, 1)``) and the relative spread ``std(||u||) / mean(||u||)`` (theory ``1/sqrt(2d)``)."""
    rng = _rng(seed)
    cos_sd, norm_sd = [], []
    for d in ds:
        u, v = rng.standard_normal((2, pairs, d))
        cos_sd.append(np.std(batched_alignment(u, v)))
        nu = np.linalg.norm(u, axis=-1)
        norm_sd.append(np.std(nu) / np.mean(nu))
    return dict(d=np.asarray(ds), cos_sd=np.array(cos_sd), norm_rel_sd=np.array(norm_sd))


# --------------------------------------------------------------------------- cascade on deep toys
def stacked_networks(widths, seeds, x: np.ndarray | None = None, dist: str = "gaussian"):
    """The networks of :func:`nfr.reference.sweeps.random_case` for many seeds, stacked.

    Returns ``(Ws, X, ks)``: ``Ws[l-1]`` of shape ``[S, d_{l-1}, d_l]``, inputs ``X [S, d_0]`` (``x``
    for all, or each seed's own N(0, I) input) and the predicted classes ``ks [S]`` (the target).
    """
    nets, X = [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        nets.append(random_network(widths, rng, dist))
        X.append(rng.standard_normal(widths[0]) if x is None else np.asarray(x, dtype=np.float64))
    Ws = [np.stack([n.weights[l] for n in nets]) for l in range(len(widths) - 1)]
    X = np.stack(X)
    ks = np.array([int(np.argmax(forward(n, xs).logits)) for n, xs in zip(nets, X)])
    return Ws, X, ks


def batched_cascade(Ws, X: np.ndarray, ks: np.ndarray, rule: str, q: float = 0.9) -> np.ndarray:
    """Cascade substitution (eq 19) for all levels ``N = 0..L`` and all networks: ``[S, L+1, d_0]``.

    Level ``N``: layers ``l > L - N`` use ``rule``, the others ``r_{l-1} = W_l M_l r_l``. Rules at
    layer ``l`` (conventions of :mod:`nfr.reference.backprop`): GBP ``W_l M_l relu(r_l)`` and RectGrad
    ``W_l M_l (r_l 1(A_l r_l > tau_l))`` (``tau_l`` the ``q``-quantile over the layer), both inactive at
    the linear output layer; z+ ``(W_l 1(W_l > 0)) Gamma_l r_l`` (mask ``1(x_i w_ij > 0)`` at layer 1) with
    ``gamma_j = A_{l,j} / sum_i (a_i w_ij)^+`` (``f_k / s_k`` at the output); ``activation``: level
    ``N >= 1`` restarts from ``r_{L-N} = A_{L-N}``. Returns ``r_0`` (no bottom process).
    """
    if rule not in CASCADE_RULES:
        raise NFRError(f"unknown cascade rule {rule!r}; choose one of {CASCADE_RULES}")
    L, S = len(Ws), X.shape[0]
    A = [X]
    for l, W in enumerate(Ws, start=1):                       # forward pass, A[L] = logits
        z = np.einsum("sij,si->sj", W, A[-1])
        A.append(np.maximum(z, 0.0) if l < L else z)
    levels = np.arange(L + 1)
    r = np.zeros((S, L + 1, Ws[-1].shape[2]))
    r[np.arange(S), :, ks] = 1.0
    for l in range(L, 0, -1):
        W, a_prev, a = Ws[l - 1], A[l - 1], A[l]
        m = (a > 0)[:, None, :] if l < L else np.ones((S, 1, a.shape[1]), bool)
        if rule == "activation":
            if 1 <= L - l < L:                                # level N = L - l restarts here
                r[:, L - l] = a
            raw = np.einsum("sij,snj->sni", W, m * r)
            if l == 1:
                raw[:, L] = X                                 # level L: r_0 = A_0 = x
            r = raw
            continue
        use = (levels > L - l)[None, :, None]                 # levels whose rule acts at layer l
        raw = np.einsum("sij,snj->sni", W, m * r)
        if rule == "grad" or (rule in ("gbp", "rectgrad") and l == L) or not use.any():
            r = raw
            continue
        if rule == "gbp":
            ruled = np.einsum("sij,snj->sni", W, m * np.maximum(r, 0.0))
        elif rule == "rectgrad":
            ar = a[:, None, :] * r
            tau = np.quantile(ar, q, axis=-1, keepdims=True)
            ruled = np.einsum("sij,snj->sni", W, m * r * (ar > tau))
        else:                                                 # zplus, filter form
            Wp = W * ((a_prev[:, :, None] * W > 0) if l == 1 else (W > 0))
            s = np.maximum(a_prev[:, :, None] * W, 0.0).sum(axis=1)
            gamma = np.divide(a, s, out=np.zeros_like(s), where=s != 0)
            ruled = np.einsum("sij,snj->sni", Wp, gamma[:, None, :] * r)
        r = np.where(use, ruled, raw)
    return r


def cascade_alignment(widths, seeds, rules=("gbp", "rectgrad", "zplus", "activation"),
                      x: np.ndarray | None = None, dist: str = "gaussian", q: float = 0.9) -> dict:
    """``alpha(r_0^N, x)`` for every rule, level and seed: ``{rule: array [S, L+1]}``."""
    Ws, X, ks = stacked_networks(widths, seeds, x, dist)
    return {rule: batched_alignment(batched_cascade(Ws, X, ks, rule, q), X[:, None, :]) for rule in rules}


def rank(a: np.ndarray) -> np.ndarray:
    """Ranks ``1..n`` of a 1-D array, ties given their average rank."""
    a = np.asarray(a, dtype=np.float64)
    order = np.argsort(a, kind="stable")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(1, len(a) + 1)
    for v in np.unique(a):
        tie = a == v
        ranks[tie] = ranks[tie].mean()
    return ranks


def spearman(a, b) -> float:
    """Spearman's rank correlation: Pearson correlation of the (tie-averaged) ranks; nan when
    either input is constant (undefined, as ``nfr.metrics.spearman`` and scipy say)."""
    ra, rb = rank(a), rank(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = np.sqrt((ra @ ra) * (rb @ rb))
    return float(ra @ rb / den) if den > 0 else float("nan")


def gram_deviation(d: int, ms, trials: int, seed=0) -> np.ndarray:
    """Mean operator norm ``||W^T W - I||`` of ``m`` i.i.d. N(0, 1/d) columns in ``R^d``, per ``m``.

    Pairwise cosines are ``O(1/sqrt(d))``, but the Gram matrix of ``m`` columns deviates from the
    identity by about ``2 sqrt(m/d) + m/d`` (Bai-Yin law for ``m, d -> infinity``): near-orthogonal
    pairs do not make a near-orthogonal *set* unless ``m << d``.
    """
    rng = _rng(seed)
    out = []
    for m in ms:
        W = rng.standard_normal((trials, d, m)) / np.sqrt(d)
        G = np.swapaxes(W, -1, -2) @ W - np.eye(m)
        out.append(np.abs(np.linalg.eigvalsh(G)).max(axis=-1).mean())
    return np.array(out)


def cascade_sweep(configs: dict, seeds, x: np.ndarray | None = None, q: float = 0.9) -> dict:
    """:func:`cascade_alignment` for several architectures: ``{label: {rule: array [S, L+1]}}``,
    ``configs = {label: widths}``."""
    return {label: cascade_alignment(widths, seeds, x=x, q=q) for label, widths in configs.items()}


def rises(mean: np.ndarray, tol: float = 1e-12) -> bool:
    """Whether a curve of mean alignments over levels ``N = 0..L`` never decreases (ties allowed)."""
    return bool(np.all(np.diff(mean) >= -tol))


def cascade_verdicts(sweep: dict, nfrs=("gbp", "rectgrad", "zplus")) -> dict:
    """The two toy versions of Fig 2a's claims over a :func:`cascade_sweep`.

    ``rise``: for every (config, rule) whether mean alignment is non-decreasing in ``N`` and the
    Spearman correlation of mean alignment with ``N``; ``act``: mean ``alpha`` of Activation minus
    that of each NFR at the *same* level, for ``N = 1..L-1`` (level ``L`` of Activation is ``x`` itself);
    ``cross``: Activation at level 1 (relevance ``A_{L-1}``, Table I's column) minus each NFR at full
    depth ``N = L``.
    """
    rise, act, cross = [], [], []
    for label, res in sweep.items():
        L = next(iter(res.values())).shape[1] - 1
        means = {rule: a.mean(axis=0) for rule, a in res.items()}
        for rule, mu in means.items():
            rise.append((label, rule, rises(mu), spearman(np.arange(L + 1), mu)))
        for rule in nfrs:
            act += [(label, rule, N, means["activation"][N] - means[rule][N]) for N in range(1, L)]
            cross.append((label, rule, means["activation"][1] - means[rule][L]))
    return dict(rise=rise, act=act, cross=cross)


def plot_break(rhos, b_rho: dict, sigmas, b_sigma: dict):
    """Two panels: share of trials where a random ``r_b`` beats ``r_a = A``, and ``alpha_a`` against the
    best possible alignment, as orthogonality (``rho``) and equal norms (``sigma``) are broken."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.0))
    for p, b, name in ((rhos, b_rho, r"correlation $\rho$"), (sigmas, b_sigma, r"log-norm spread $\sigma$")):
        axes[0].plot(p, b["fail"], marker="o", ms=3, label=name)
        axes[1].plot(p, b["alpha_a"] / b["alpha_opt"], marker="o", ms=3, label=name)
    axes[0].set_ylabel(r"share of trials with $\alpha(R_b) > \alpha(R_a)$")
    axes[1].set_ylabel(r"$\alpha(R_a,x)\,/\,\max_v \alpha(WMv,x)$")
    for ax in axes:
        ax.set_xlabel(r"$\rho$ or $\sigma$")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_cascades(sweep: dict, labels, rules=("gbp", "rectgrad", "zplus", "activation")):
    """Small multiples: mean input alignment of ``r_0^N`` against the level ``N`` (one panel per
    architecture in ``labels``), shaded one standard deviation over seeds."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(labels), figsize=(3.3 * len(labels), 2.9), squeeze=False)
    for ax, label in zip(axes[0], labels):
        for rule in rules:
            a = sweep[label][rule]
            N, mu, sd = np.arange(a.shape[1]), a.mean(axis=0), a.std(axis=0)
            line, = ax.plot(N, mu, **style(rule, marker="o"), ms=3, label=LABELS.get(rule, rule))
            ax.fill_between(N, mu - sd, mu + sd, color=line.get_color(), alpha=0.15)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("cascade level $N$ (layers using the rule)")
        ax.set_ylim(0, 1.02)
    axes[0][0].set_ylabel(r"$\alpha(r_0^N, x)$")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig
