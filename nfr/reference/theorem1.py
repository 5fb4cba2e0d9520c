"""Theorem 1 of Zheng et al. on one-hidden-layer networks: batched maps, predictions, Monte Carlo.

Network: ``x in R^d``, hidden weights ``W = [w_1 .. w_N]`` (``d x N``, column ``j`` is unit ``j``),
top weights ``v in R^N`` of the explained class (the column ``W_2[:, k]``), bias-free, linear output.
With the mask ``m_j = 1(<w_j, x> > 0)`` and ``A_j = <w_j, x>^+``, the results *without bottom
process* (``r_0``) are

* raw gradient (eq 5):  ``R = sum_j w_j m_j v_j``;
* GBP (eq 6):           ``R = sum_j w_j m_j v_j^+``  (the output layer has no ReLU, so ``r_1 = v``);
* RectGrad (eq 15):     ``R = sum_j w_j m_j v_j 1(A_j v_j > tau)``, ``tau`` the ``q``-quantile of
  ``A * v`` over the ``N`` units (numpy's linear interpolation, as :mod:`nfr.reference.rules`);
* z+ (chapter 1's exact filter form, signed input layer):
  ``c_0 = sum_j (w_j * 1(x * w_j > 0)) gamma_j v_j^+`` with ``gamma_j = A_j / s_j``,
  ``s_j = sum_i (x_i w_ij)^+``. The reference's ``r_0`` is this times the output's scalar
  ``gamma_k = f_k / s_k``; only the direction matters here, so the scalar (whose sign is the sign of
  ``f_k``) is dropped. ``zplus_B`` is the bottom process ``x * c_0``.

Everything is vectorised over seeds: ``W`` has shape ``[S, d, N]`` and ``v`` ``[S, N]``; the GBP map
``W (m * relu(v))`` of a batch is one batched matrix product. Each seed ``s`` draws from its own
generator ``default_rng([seed, code(dist), d, N, s])``, so results do not depend on the chunking.
"""
from __future__ import annotations

import math

import numpy as np

from nfr.errors import NFRError
from nfr.plotting import LABELS, style

RULES = ("grad", "gbp", "rectgrad", "zplus", "zplus_B")
DISTS = ("gaussian", "sphere", "uniform", "shifted")
_CODE = {name: i for i, name in enumerate(DISTS)}


# --------------------------------------------------------------------------- sampling
def sample_hidden(d: int, N: int, dist: str, rng, mu: float = 0.0, out: np.ndarray | None = None) -> np.ndarray:
    """Hidden weights ``[d, N]``, one unit per column.

    * ``"gaussian"``: i.i.d. ``N(0, 1/d)`` entries (isotropic; Nie et al.'s assumption);
    * ``"sphere"``: columns uniform on the unit sphere (isotropic, not Gaussian; the "ring" for d = 2);
    * ``"uniform"``: i.i.d. ``U[-1, 1] sqrt(3/d)`` entries (zero mean, same covariance, not isotropic);
    * ``"shifted"``: i.i.d. ``N(mu, 1) / sqrt(d)`` entries (isotropic about a non-zero mean).

    The scale never matters: every map here is positively homogeneous in ``W``. ``out`` (``[d, N]``,
    float64, C-contiguous) is filled in place.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    W = np.empty((d, N)) if out is None else out
    if dist in ("gaussian", "sphere", "shifted"):
        rng.standard_normal(out=W)
        if dist == "sphere":
            W /= np.linalg.norm(W, axis=0, keepdims=True)
        else:
            if mu and dist == "shifted":
                W += mu
            W *= 1.0 / math.sqrt(d)
        return W
    if dist == "uniform":
        rng.random(out=W)                                       # U[0, 1), then 2u - 1 in place
        W *= 2.0
        W -= 1.0
        W *= math.sqrt(3.0 / d)
        return W
    raise NFRError(f"unknown weight distribution {dist!r}; choose one of {DISTS}")


def seed_rng(seed: int, dist: str, d: int, N: int, s: int) -> np.random.Generator:
    """The generator of seed ``s`` in the cell ``(dist, d, N)``: ``default_rng([seed, code, d, N, s])``."""
    return np.random.default_rng([seed, _CODE[dist], d, N, s])


def draw(seed: int, dist: str, d: int, N: int, seeds, mu: float = 0.0):
    """Hidden weights ``[S, d, N]`` and top weights ``v ~ N(0, 1)`` ``[S, N]`` for the seeds ``seeds``.

    ``v`` is drawn independently of ``W`` (the explained class is fixed in advance, not chosen as
    the argmax of the logits, which would couple ``v`` to ``W``).
    """
    seeds = list(seeds)
    W = np.empty((len(seeds), d, N))
    v = np.empty((len(seeds), N))
    for i, s in enumerate(seeds):
        rng = seed_rng(seed, dist, d, N, s)
        sample_hidden(d, N, dist, rng, mu, out=W[i])
        v[i] = rng.standard_normal(N)
    return W, v


# --------------------------------------------------------------------------- the maps
def one_hidden_maps(W: np.ndarray, v: np.ndarray, x: np.ndarray, q: float = 0.9) -> np.ndarray:
    """Results of all :data:`RULES` for a batch of one-hidden-layer nets: array ``[S, 5, d]``.

    ``W``: ``[S, d, N]``, ``v``: ``[S, N]``, ``x``: ``[d]``. With ``z = W^T x``, ``m = 1(z > 0)``,
    ``A = m z``:
    grad ``W (m v)``; GBP ``W (m v^+)``; RectGrad ``W (m v 1(A v > tau))``, ``tau = quantile_q(A v)``;
    z+ ``(W * 1(x w > 0)) (gamma v^+)`` with ``gamma = A / sum_i (x_i w_ij)^+`` (0/0 := 0);
    zplus_B ``x * c_0(z+)``.
    """
    W = np.asarray(W, dtype=np.float64)
    absW = np.abs(W)
    z = np.matmul(x, W)                                     # pre-activations [S, N]
    m = z > 0
    A = np.where(m, z, 0.0)
    tau = np.quantile(A * v, q, axis=1, keepdims=True)
    # sum_i (x_i w_ij)^+ = (z_j + sum_i |x_i| |w_ij|) / 2
    s = (z + np.matmul(np.abs(x), absW)) / 2
    gamma = np.divide(A, s, out=np.zeros_like(A), where=s > 0)
    coef = np.stack([m * v, m * np.maximum(v, 0.0), m * v * (A * v > tau),
                     gamma * np.maximum(v, 0.0)], axis=2)                              # [S, N, 4]
    out = np.empty((W.shape[0], len(RULES), W.shape[1]))
    out[:, :4] = np.matmul(W, coef).transpose(0, 2, 1)
    # (W * 1(x w > 0)) c = (W c + sign(x) * (|W| c)) / 2   (x_i != 0; rows with x_i = 0 get 0)
    out[:, 3] = (out[:, 3] + np.sign(x) * np.matmul(absW, coef[:, :, 3:])[..., 0]) / 2 * (x != 0)
    out[:, 4] = x[None, :] * out[:, 3]
    return out


def alignments(R: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Definition 1 over the last axis: ``alpha = <R, x> / (||R|| ||x||)`` (0 where ``R = 0``)."""
    num = R @ x
    den = np.linalg.norm(R, axis=-1) * np.linalg.norm(x)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def width_sweep(x: np.ndarray, widths, n_seeds: int, dist: str = "gaussian", seed: int = 0,
                q: float = 0.9, mu: float = 0.0, chunk: int = 2 ** 21) -> dict:
    """Monte Carlo of Theorem 1: for every width ``N`` and seed, ``alpha(R, x)`` of every rule.

    Returns ``alpha`` ``[len(widths), n_seeds, 5]`` (rules in :data:`RULES` order) and ``mean``
    ``[len(widths), 5, d]`` = ``sum_s R_s / N`` (an estimate of ``n_seeds * E[R] / N`` whose error
    shrinks like ``1/sqrt(N n_seeds)``: the limit direction). Seeds are processed in chunks of at most
    ``chunk`` weight entries (at least one seed per chunk).
    """
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[0]
    widths = list(widths)
    alpha = np.empty((len(widths), n_seeds, len(RULES)))
    mean = np.zeros((len(widths), len(RULES), d))
    for a, N in enumerate(widths):
        step = max(1, chunk // (d * N))
        for lo in range(0, n_seeds, step):
            seeds = range(lo, min(n_seeds, lo + step))
            W, v = draw(seed, dist, d, N, seeds, mu)
            R = one_hidden_maps(W, v, x, q)
            alpha[a, lo:lo + len(seeds)] = alignments(R, x)
            mean[a] += R.sum(axis=0) / N
    return dict(widths=np.array(widths), alpha=alpha, mean=mean, rules=RULES, dist=dist, d=d)


def tan2(alpha: np.ndarray) -> np.ndarray:
    """``tan^2`` of the angle between ``R`` and ``x``: ``(1 - alpha^2) / alpha^2`` (inf for ``alpha <= 0``)."""
    alpha = np.asarray(alpha, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(alpha > 0, (1 - alpha ** 2) / np.maximum(alpha, 1e-300) ** 2, np.inf)


def fit_power_law(N, y) -> tuple[float, float]:
    """Least squares of ``log y = log c - a log N``; returns ``(c, a)`` for ``y ~ c N^-a``."""
    slope, intercept = np.polyfit(np.log(np.asarray(N, float)), np.log(np.asarray(y, float)), 1)
    return float(np.exp(intercept)), float(-slope)


def reflection(x: np.ndarray) -> np.ndarray:
    """The reflection across the line of ``x``: ``Q = 2 u u^T - I``, ``u = x / ||x||``.

    ``Q`` is orthogonal, fixes ``x`` and flips every vector orthogonal to it; ``<Q w, x> = <w, x>``.
    """
    u = np.asarray(x, dtype=np.float64) / np.linalg.norm(x)
    return 2 * np.outer(u, u) - np.eye(u.shape[0])


# --------------------------------------------------------------------------- predictions
def sphere_half_mean(d: int) -> float:
    """``E[theta_1^+]`` for ``theta`` uniform on the unit sphere of ``R^d``:
    ``Gamma(d/2) / (2 sqrt(pi) Gamma((d+1)/2))`` (``1/pi`` for d = 2, ``1/4`` for d = 3)."""
    return math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / (2 * math.sqrt(math.pi))


def kappa(d: int, dist: str = "gaussian") -> float:
    """Predicted limit of ``N E[tan^2 angle(R_GBP, x)]`` for ``v ~ N(0, 1)`` (``rho_v = pi``).

    ``kappa = E[||P_perp w||^2 1(<w,x> > 0)] rho_v / ||E[w 1(<w,x> > 0)]||^2`` with
    ``rho_v = E[(v^+)^2] / E[v^+]^2``. Gaussian ``w``: ``pi^2 (d - 1)``. Uniform on a sphere:
    ``pi (d - 1) / (2 d e_d^2)`` with ``e_d = E[theta_1^+]`` (:func:`sphere_half_mean`), which is
    ``pi^2 (d - 1) (1 - 1/(2d) + O(d^-2))``: isotropic laws differ only through ``E||w||^2 / E[||w||]^2``.
    """
    if dist == "gaussian":
        return math.pi ** 2 * (d - 1)
    if dist == "sphere":
        return math.pi * (d - 1) / (2 * d * sphere_half_mean(d) ** 2)
    raise NFRError(f"kappa is predicted in closed form for 'gaussian' and 'sphere', not {dist!r}")


def gaussian_half_mean(x: np.ndarray, sigma: float = 1.0, mu: float = 0.0) -> np.ndarray:
    """``E[w 1(<w, x> > 0)]`` for ``w ~ N(mu 1, sigma^2 I)``, in closed form:

    ``mu Phi(beta) 1 + sigma phi(beta) x / ||x||`` with ``beta = mu sum_i x_i / (sigma ||x||)``.
    For ``mu = 0`` this is ``sigma x / (||x|| sqrt(2 pi))`` (Nie et al.'s Gaussian case).
    """
    x = np.asarray(x, dtype=np.float64)
    nx = np.linalg.norm(x)
    beta = mu * x.sum() / (sigma * nx)
    Phi = 0.5 * (1 + math.erf(beta / math.sqrt(2)))
    phi = math.exp(-beta ** 2 / 2) / math.sqrt(2 * math.pi)
    return mu * Phi * np.ones_like(x) + sigma * phi * x / nx


def _sinc(s):
    return np.sinc(s / np.pi)                                   # sin(s) / s, 1 at 0


def _dsinc(s):
    """d/ds (sin s / s), with its series near 0 (no cancellation)."""
    s = np.asarray(s, dtype=np.float64)
    small = np.abs(s) < 1e-2
    ss = np.where(small, 1.0, s)
    return np.where(small, -s / 3 + s ** 3 / 30, (ss * np.cos(ss) - np.sin(ss)) / ss ** 2)


def _sinc_envelope(s):
    """An upper bound of ``|sin s / s|``: ``exp(-s^2 / 6)`` for ``|s| < pi``, ``1 / |s|`` beyond."""
    s = np.abs(s)
    return np.where(s < np.pi, np.exp(-s ** 2 / 6), 1.0 / np.maximum(s, np.pi))


def cube_half_mean(x: np.ndarray, tol: float = 1e-12, t_cap: float = 4000.0, h: float = 0.05,
                   n_min: int = 20_001) -> np.ndarray:
    """``E[w 1(<w, x> > 0)]`` for i.i.d. ``U[-1, 1]`` entries, by the characteristic function.

    With ``1(s > 0) = 1/2 + (1/pi) int_0^inf sin(t s) / t dt`` and ``phi(s) = sin(s)/s``:

    ``mu_i = -(1/pi) int_0^inf phi'(t x_i) prod_{k != i} phi(t x_k) dt / t``.

    Trapezoid rule with step at most ``h / |x|_max`` (about 125 points per period) on ``[0, t_max]``:
    ``t_max`` is the first ``t`` where an upper bound of the integrand (``|phi'| <= 0.44``,
    ``|phi(s)| <= exp(-s^2/6)`` for ``|s| < pi`` and ``<= 1/|s|`` beyond, the smallest factor left
    out) falls below ``tol * |x|_max``, but at most ``t_cap / |x|_max`` (in low dimension the tail
    decays only like ``t^-(d+1)`` and oscillates, so it is cut there). The products over ``k != i``
    come from prefix and suffix cumulative products. ``x_i = 0`` gives ``mu_i = 0``.
    """
    x = np.asarray(x, dtype=np.float64)
    nz = np.nonzero(x)[0]
    xs = x[nz]
    amax = np.abs(xs).max()
    ts = np.geomspace(1e-3 / amax, t_cap / amax, 4000)
    env = _sinc_envelope(ts[:, None] * xs[None, :])
    bound = 0.44 * np.prod(env, axis=1) / env.min(axis=1) / ts
    ok = np.nonzero(bound < tol * amax)[0]
    t_max = ts[ok[0]] if ok.size else ts[-1]
    t = np.linspace(0.0, t_max, max(n_min, int(np.ceil(t_max * amax / h)) + 1))[1:]
    h = t[1] - t[0]
    F = _sinc(t[None, :] * xs[:, None])                      # [d', n]
    ones = np.ones((1, t.size))
    before = np.cumprod(np.vstack([ones, F[:-1]]), axis=0)   # prod_{k < i}
    after = np.cumprod(np.vstack([ones, F[::-1][:-1]]), axis=0)[::-1]   # prod_{k > i}
    f = _dsinc(t[None, :] * xs[:, None]) * before * after / t[None, :]
    f0 = -xs / 3                                             # the integrand's limit at t = 0
    mu = np.zeros_like(x)
    mu[nz] = -h * (f.sum(axis=1) - f[:, -1] / 2 + f0 / 2) / np.pi
    return mu


def gaussian_entries_half_mean(x: np.ndarray, sigma: float = 1.0, n_grid: int = 200_001) -> np.ndarray:
    """The characteristic-function formula of :func:`cube_half_mean` for ``N(0, sigma^2)`` entries.

    ``phi(s) = exp(-sigma^2 s^2 / 2)`` gives ``mu_i = (sigma^2 x_i / pi) int_0^inf exp(-sigma^2 t^2
    ||x||^2 / 2) dt``; numerically integrated it must reproduce ``sigma x / (||x|| sqrt(2 pi))``
    (a check of the quadrature, not a new result).
    """
    x = np.asarray(x, dtype=np.float64)
    nx = np.linalg.norm(x)
    t = np.linspace(0.0, 40.0 / (sigma * nx), n_grid)
    f = np.exp(-(sigma * t * nx) ** 2 / 2)
    integral = (t[1] - t[0]) * (f.sum() - (f[0] + f[-1]) / 2)
    return sigma ** 2 * x * integral / np.pi


def sampled_mean(x: np.ndarray, dist: str, kind: str = "relu", n: int = 2 ** 20, seed: int = 0,
                 mu: float = 0.0, chunk: int = 2 ** 16) -> tuple[np.ndarray, np.ndarray]:
    """An independent large-sample estimate of a unit's expected contribution, with standard errors.

    ``kind``: ``"relu"`` ``E[w 1(<w,x> > 0)]`` (GBP's limit direction); ``"zplus"``
    ``E[(w * 1(x w > 0)) gamma(w)]``, ``gamma = <w,x>^+ / sum_i (x_i w_i)^+`` (z+'s limit direction);
    ``"wplus"`` ``E[w^+ 1(<w,x> > 0)]`` (the paper's literal mask ``W > 0`` at the input).
    Returns ``(mean [d], standard error [d])`` from ``n`` draws (stream ``default_rng([seed, 99])``).
    """
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[0]
    rng = np.random.default_rng([seed, 99])
    s1, s2, done = np.zeros(d), np.zeros(d), 0
    while done < n:
        k = min(chunk, n - done)
        W = sample_hidden(d, k, dist, rng, mu).T                  # [k, d]
        z = W @ x
        if kind == "relu":
            T = W * (z > 0)[:, None]
        elif kind == "wplus":
            T = np.maximum(W, 0.0) * (z > 0)[:, None]
        elif kind == "zplus":
            P = W * x[None, :]
            s = np.maximum(P, 0.0).sum(axis=1)
            g = np.divide(np.maximum(z, 0.0), s, out=np.zeros_like(z), where=s != 0)
            T = np.where(P > 0, W, 0.0) * g[:, None]
        else:
            raise NFRError(f"unknown kind {kind!r}; choose 'relu', 'zplus' or 'wplus'")
        s1 += T.sum(axis=0)
        s2 += (T ** 2).sum(axis=0)
        done += k
    m = s1 / n
    return m, np.sqrt(np.maximum(s2 / n - m ** 2, 0.0) / n)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """``<a, b> / (||a|| ||b||)``."""
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --------------------------------------------------------------------------- Figure 1
def figure1_setup():
    """The deterministic 2-D example of Figure 1: 8 units ``W [2, 8]``, top weights ``v [8]``, input ``x``."""
    deg = np.array([12, 58, 103, 148, 196, 238, 287, 333], dtype=float)
    lengths = np.array([1.0, 0.8, 1.1, 0.9, 1.0, 0.85, 0.95, 1.05])
    W = lengths * np.stack([np.cos(np.radians(deg)), np.sin(np.radians(deg))])
    v = np.array([0.6, 1.0, -0.9, 0.6, -0.8, 0.5, 0.7, 0.8])
    x = 1.2 * np.array([np.cos(np.radians(35.0)), np.sin(np.radians(35.0))])
    return W, v, x


def figure1(W: np.ndarray, v: np.ndarray, x: np.ndarray):
    """Figure 1 (a)-(d) of Zheng et al. for a 2-D one-hidden-layer net; returns the matplotlib figure.

    (a) the units ``w_j``; (b) the input and the half-plane ``<w, x> < 0`` the ReLU masks;
    (c) the active units scaled by ``r_j = v_j``: ``R_+`` terms (``v_j > 0``) and ``R_-`` terms;
    (d) ``R_+`` (the NFR result), the raw gradient ``R_+ + R_-`` and ``x``, all scaled to ``||x||``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon

    m = W.T @ x > 0
    pos, neg = m & (v > 0), m & (v <= 0)
    Rp, Rm = W[:, pos] @ v[pos], W[:, neg] @ v[neg]
    fig, axes = plt.subplots(1, 4, figsize=(10.5, 3.2))
    u = x / np.linalg.norm(x)
    perp = np.array([-u[1], u[0]])
    shade = Polygon([3 * perp, 3 * perp - 3 * u, -3 * perp - 3 * u, -3 * perp], color="C0", alpha=0.12, lw=0)

    def arrow(ax, vec, color, lw=1.6, ls="-", label=None):
        ax.annotate("", xy=vec, xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color=color, lw=lw, ls=ls))
        if label:
            ax.text(*(vec * 1.13), label, color=color, fontsize=8, ha="center", va="center")

    for j in range(W.shape[1]):
        arrow(axes[0], W[:, j], "0.25", label=f"$w_{j + 1}$")
    axes[1].add_patch(shade)
    for j in range(W.shape[1]):
        arrow(axes[1], W[:, j], "0.25" if m[j] else "0.7", ls="-" if m[j] else "--")
    arrow(axes[1], x, "k", lw=2.4, label="$x$")
    for j in np.nonzero(m)[0]:
        arrow(axes[2], v[j] * W[:, j], "C3" if v[j] > 0 else "C0", label=f"$r_{j + 1}w_{j + 1}$")
    arrow(axes[2], x, "k", lw=1.0, ls=":")
    scale = np.linalg.norm(x)
    handles = []
    for vec, col, lab in ((Rp, "C3", "$R_+$ (NFR)"), (Rp + Rm, "C4", "$R_++R_-$ (gradient)"), (x, "k", "$x$")):
        arrow(axes[3], vec / np.linalg.norm(vec) * scale, col, lw=2.2)
        handles.append(plt.Line2D([], [], color=col, lw=2.2, label=f"{lab}: $\\alpha$ = {vec @ x / (np.linalg.norm(vec) * scale):.2f}"))
    axes[3].legend(handles=handles, fontsize=8, loc="lower left")
    titles = ["(a) 8 hidden units", "(b) input; ReLU masks the blue side",
              "(c) active units times $r_j$", "(d) results, scaled to $\\|x\\|$"]
    for ax, title in zip(axes, titles):
        ax.set_xlim(-1.5, 1.5)
        ax.set_ylim(-1.5, 1.5)
        ax.set_aspect("equal")
        ax.axhline(0, color="0.85", lw=0.6)
        ax.axvline(0, color="0.85", lw=0.6)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_convergence(sweeps: dict, rules=("grad", "gbp", "rectgrad", "zplus"), predicted: dict | None = None):
    """``1 - alpha`` against width ``N`` (log-log), one panel per input dimension, median and
    10-90% band over seeds; ``predicted`` ``{d: kappa}`` draws the GBP prediction ``kappa / (2N)``."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sweeps), figsize=(3.6 * len(sweeps), 3.1), sharey=True, squeeze=False)
    for ax, (d, sw) in zip(axes[0], sweeps.items()):
        N = sw["widths"]
        for r in rules:
            gap = 1 - sw["alpha"][:, :, RULES.index(r)]
            lo, med, hi = np.quantile(gap, [0.1, 0.5, 0.9], axis=1)
            line, = ax.plot(N, med, **style(r, marker="o"), ms=3, label=LABELS.get(r, r))
            ax.fill_between(N, lo, hi, color=line.get_color(), alpha=0.15)
        if predicted and d in predicted:
            ax.plot(N, predicted[d] / (2 * N), "k--", lw=1, label=r"$\kappa_d/(2N)$")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 2.5)
        ax.set_xlabel("hidden width $N$")
        ax.set_title(f"d = {d}", fontsize=10)
    axes[0, 0].set_ylabel(r"$1-\alpha(R, x)$")
    axes[0, -1].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def plot_isotropy(panels: dict, limits: dict, rule: str = "gbp"):
    """``1 - alpha(R, x)`` of ``rule`` against width per weight distribution (log-log; median and
    10-90% band over seeds), one panel per entry of ``panels`` (``{title: {dist: sweep}}``), with
    ``1 - cos(E[R], x)`` of each non-isotropic distribution (``limits[title][dist] < 1``) dashed."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.1), squeeze=False)
    for ax, (title, sweeps) in zip(axes[0], panels.items()):
        for i, (dist, sw) in enumerate(sweeps.items()):
            gap = 1 - sw["alpha"][:, :, RULES.index(rule)]
            lo, med, hi = np.quantile(gap, [0.1, 0.5, 0.9], axis=1)
            ax.plot(sw["widths"], med, marker="o", ms=3, color=f"C{i}", label=dist)
            ax.fill_between(sw["widths"], lo, hi, color=f"C{i}", alpha=0.12)
            if limits[title][dist] < 1 - 1e-12:
                ax.axhline(1 - limits[title][dist], color=f"C{i}", ls="--", lw=0.9)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("hidden width $N$")
        ax.set_title(title, fontsize=10)
    axes[0, 0].set_ylabel(rf"$1-\alpha(R, x)$, {rule}")
    axes[0, -1].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def halfspace_mean_expansion(x, excess_kurtosis: float) -> np.ndarray:
    """E[w 1(<w, x> > 0)] to first order in the fourth cumulant, for i.i.d. symmetric unit-variance entries.

    The cumulant expansion E[w_i g(S)] = sum_m kappa_{m+1} x_i^m E[g^(m)(S)] / m! with
    S = <w, x>, g = 1(. > 0), kappa_2 = 1, kappa_3 = 0, kappa_4 = gamma_2 (the excess kurtosis) and
    S treated as N(0, ||x||^2) in E[g'(S)] = p(0), E[g'''(S)] = p''(0) = -p(0) / ||x||^2 gives

        E[w 1(<w, x> > 0)] ~= (1 / (sqrt(2 pi) ||x||)) * (x - gamma_2 x^3 / (6 ||x||^2)),

    x^3 entrywise. gamma_2 = 0 (Gaussian) gives the exact Gaussian result; uniform entries have
    gamma_2 = -6/5, so the mean tilts towards the large entries of x by 0.2 x^3 / ||x||^2, an angle
    of order 0.2 max_i x_i^2 / ||x||^2 (first order only: it gets the size of the tilt, not its
    exact direction, for fan-ins of a few dozen).
    """
    x = np.asarray(x, dtype=float).ravel()
    nx = np.linalg.norm(x)
    if nx == 0:
        raise NFRError("halfspace_mean_expansion needs a non-zero x")
    return (x - excess_kurtosis * x ** 3 / (6 * nx ** 2)) / (math.sqrt(2 * math.pi) * nx)


def angle(a, b) -> float:
    """Angle in radians between two non-zero vectors (flattened), arccos of their cosine."""
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    c = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.arccos(np.clip(c, -1.0, 1.0)))
