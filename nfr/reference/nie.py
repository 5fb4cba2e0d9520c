"""Nie et al.'s three-layer CNN and its GBP reconstruction theorem (TR-GBP paper, Section 3.2, eqs 5-7).

NumPy only (no torch). Notation of the TR-GBP paper: an image x (H x W, or C_in x H x W with p =
C_in k^2), J patches c_j = D_j x of p = k*k pixels (k x k window, stride s, row-major inside the
patch and over the patch positions j), N filters W = [w_1 .. w_N] in R^{p x N}, a fully connected
layer V in R^{NJ x K}, and the k-th logit (eq 5)

    f_k(x) = sum_{i=1..N} sum_{j=1..J} V_{q_ij, k} sigma(w_i^T c_j),   q_ij = (i - 1) J + j.

GBP at logit k (eq 6) is

    s_k(x) = (1/Z) sum_j D_j^T sum_i w_i 1(w_i^T c_j > 0) sigma(V_{q_ij, k}).

Every function is batched over S independent draws of the weights ("seeds"): W has shape
(S, p, N), V has shape (S, N J, K). The torch network with the same forward is
Conv2d(C_in, N, k, stride=s, bias=False) -> ReLU -> Flatten -> Linear(N J, K, bias=False) with
conv weight ``W.T.reshape(N, C_in, k, k)`` and linear weight ``V.T`` (see tests/test_nie.py).
"""
from __future__ import annotations

import numpy as np

__all__ = ["patch_index", "patches", "fold", "coverage", "random_weights", "logits", "gbp",
           "gbp_loop", "expected_gbp", "paper_constant", "derived_constant", "sign_image",
           "relative_residual", "noise_prediction", "measure"]


def patch_index(shape: tuple, k: int, stride: int = 1) -> np.ndarray:
    """Flat pixel indices of the patches: an int array (p, J) with column j = the pixels of c_j.

    ``shape`` is (H, W) or (C_in, H, W) (then p = C_in k^2). D_j x = x.ravel()[idx[:, j]];
    patch positions run row-major (top-left first), entries inside a patch channel-major then
    row-major, as torch's conv2d / unfold order them.
    """
    Cin, H, W = (1,) + tuple(shape) if len(shape) == 2 else tuple(shape)
    if k > min(H, W) or k < 1 or stride < 1:
        raise ValueError(f"a {k}x{k} patch with stride {stride} does not fit a {H}x{W} image")
    rows = np.arange(0, H - k + 1, stride)
    cols = np.arange(0, W - k + 1, stride)
    ch, a, b = np.meshgrid(np.arange(Cin), np.arange(k), np.arange(k), indexing="ij")
    off = (ch * H * W + a * W + b).ravel()                    # (p,)
    start = (rows[:, None] * W + cols[None, :]).ravel()       # (J,)
    return off[:, None] + start[None, :]


def patches(x: np.ndarray, k: int, stride: int = 1) -> np.ndarray:
    """C = [c_1 .. c_J] = [D_1 x .. D_J x]: shape (p, J) for x of shape (H, W) or (C_in, H, W)."""
    idx = patch_index(x.shape, k, stride)
    return x.ravel()[idx]


def fold(P: np.ndarray, shape: tuple, k: int, stride: int = 1) -> np.ndarray:
    """sum_j D_j^T P[..., :, j]: put every patch vector back at its place and add (col2im).

    P has shape (..., p, J); returns (..., *shape) with shape (H, W) or (C_in, H, W).
    """
    idx = patch_index(shape, k, stride)
    out = np.zeros(P.shape[:-2] + (int(np.prod(shape)),), dtype=P.dtype)
    lead = out.reshape(-1, out.shape[-1])
    Pf = P.reshape((-1,) + P.shape[-2:])
    for b in range(lead.shape[0]):
        np.add.at(lead[b], idx.ravel(), Pf[b].ravel())
    return out.reshape(P.shape[:-2] + tuple(shape))


def coverage(shape: tuple, k: int, stride: int = 1) -> np.ndarray:
    """Number of patches covering each pixel: sum_j D_j^T 1_p (the diagonal of sum_j D_j^T D_j)."""
    return fold(np.ones(patch_index(shape, k, stride).shape), shape, k, stride)


def random_weights(p: int, N: int, J: int, K: int, c: float = 1.0, seeds=(0,)):
    """W (S, p, N) and V (S, N J, K), all entries i.i.d. N(0, c^2); one generator per seed."""
    Ws, Vs = [], []
    for s in seeds:
        g = np.random.default_rng(s)
        Ws.append(c * g.standard_normal((p, N)))
        Vs.append(c * g.standard_normal((N * J, K)))
    return np.stack(Ws), np.stack(Vs)


def logits(x: np.ndarray, W: np.ndarray, V: np.ndarray, k: int, stride: int = 1) -> np.ndarray:
    """f(x) of eq 5 for each seed: (S, K). ``k`` is the filter side (p = k*k)."""
    C = patches(x, k, stride)                               # (p, J)
    H = np.maximum(np.einsum("spn,pj->snj", W, C), 0.0)     # sigma(w_i^T c_j), (S, N, J)
    S, N, J = H.shape
    return np.einsum("sq,sqk->sk", H.reshape(S, N * J), V)


def gbp(x: np.ndarray, W: np.ndarray, V: np.ndarray, target: int, k: int, stride: int = 1,
        Z: float = 1.0) -> np.ndarray:
    """GBP at logit ``target`` (eq 6), vectorised: (S, *x.shape).

    s = (1/Z) sum_j D_j^T sum_i w_i 1(w_i^T c_j > 0) sigma(V_{q_ij, target}).
    """
    C = patches(x, k, stride)
    S, p, N = W.shape
    J = C.shape[1]
    mask = np.einsum("spn,pj->snj", W, C) > 0
    G = mask * np.maximum(V[:, :, target].reshape(S, N, J), 0.0)   # q_ij = i J + j (0-based)
    return fold(np.einsum("spn,snj->spj", W, G), x.shape, k, stride) / Z


def gbp_loop(x: np.ndarray, W: np.ndarray, V: np.ndarray, target: int, k: int, stride: int = 1,
             Z: float = 1.0) -> np.ndarray:
    """Eq 6 written with explicit loops over seeds, patches j and filters i (slow; for tests)."""
    idx = patch_index(x.shape, k, stride)
    S, p, N = W.shape
    J = idx.shape[1]
    out = np.zeros((S, x.size))
    xf = x.ravel()                                # x of shape (H, W) or (C_in, H, W)
    for s in range(S):
        for j in range(J):
            cj = xf[idx[:, j]]
            acc = np.zeros(p)
            for i in range(N):
                w = W[s, :, i]
                if w @ cj > 0:
                    acc += w * max(V[s, i * J + j, target], 0.0)
            for a in range(p):
                out[s, idx[a, j]] += acc[a]
    return out.reshape((S,) + x.shape) / Z


def expected_gbp(x: np.ndarray, k: int, N: int, c: float = 1.0, stride: int = 1,
                 Z: float = 1.0) -> np.ndarray:
    """E[s_k(x)] over the weights, exactly: (N c^2 / (2 pi Z)) sum_j D_j^T c_j / ||c_j||.

    Uses E[w 1(w^T c > 0)] = c c_j / (sqrt(2 pi) ||c_j||) and E[sigma(V)] = c / sqrt(2 pi)
    (independent). Patches with c_j = 0 contribute 0.
    """
    C = patches(x, k, stride)
    nrm = np.linalg.norm(C, axis=0)
    U = np.where(nrm > 0, C / np.where(nrm > 0, nrm, 1.0), 0.0)
    return N * c ** 2 / (2 * np.pi * Z) * fold(U, x.shape, k, stride)


def paper_constant(c: float, p: int, N: int, C0: float, Z: float = 1.0) -> float:
    """Eq 7 of the TR-GBP paper as printed: s_k(x) ~ (2 c^2 p N / (pi C0 Z)) x."""
    return 2 * c ** 2 * p * N / (np.pi * C0 * Z)


def derived_constant(c: float, p: int, N: int, C0: float, Z: float = 1.0) -> float:
    """The constant our derivation gives for an interior pixel (stride 1, every ||c_j|| = C0):
    s_k(x) ~ (c^2 p N / (2 pi C0 Z)) x, i.e. the printed constant divided by 4."""
    return c ** 2 * p * N / (2 * np.pi * C0 * Z)


def sign_image(shape: tuple, seed: int = 0) -> np.ndarray:
    """An image of random signs +-1/sqrt(size): ||x|| = 1 and every k x k patch has the same norm
    C0 = sqrt(p / size), the theorem's equal-norm assumption, at any k (shape (H, W) or (C, H, W))."""
    g = np.random.default_rng(seed)
    return g.choice([-1.0, 1.0], size=shape) / np.sqrt(np.prod(shape))


def relative_residual(s: np.ndarray, target: np.ndarray) -> np.ndarray:
    """||s - t|| / ||t|| per leading index (seed): the noise of GBP around its prediction t."""
    d = (s - target).reshape(s.shape[0], -1)
    return np.linalg.norm(d, axis=1) / np.linalg.norm(target)


def noise_prediction(x: np.ndarray, k: int, stride: int = 1) -> float:
    """Predicted relative residual ||s - E s|| / ||E s|| of GBP at N = 1 (divide by sqrt(N)).

    Treating the N * cov(i) terms w_{n,m} 1(w_n^T c_j > 0) sigma(V_nj) that add up at pixel i as
    independent, each has variance c^4 / 4 (E[w_m^2 1(.)] = c^2 / 2, E[sigma(V)^2] = c^2 / 2, the
    squared mean is neglected), so Var s_i = N cov(i) c^4 / 4 and

        ||s - E s||^2 / ||E s||^2 = (pi^2 / N) sum_i cov(i) / ||sum_j D_j^T c_j / ||c_j|| ||^2.

    For equal patch norms and equal |x_i| at interior pixels this is pi sqrt(p / (cov N)): pi / sqrt(N)
    for one channel and stride 1 (cov = p), pi sqrt(C_in / N) for C_in channels and 3 x 3 filters.
    """
    E = expected_gbp(x, k, 1, c=1.0, stride=stride) * 2 * np.pi     # sum_j D_j^T c_j / ||c_j||
    cov = coverage(x.shape, k, stride)
    return float(np.pi * np.sqrt(cov.sum()) / np.linalg.norm(E))


def measure(x: np.ndarray, k: int, N: int, c: float = 1.0, seeds=range(8), stride: int = 1,
            K: int = 1) -> dict:
    """GBP of S = len(seeds) random three-layer CNNs at class 0 against the theorem (Z = 1).

    Returns per-seed arrays: ``ratio`` = mean of s_i / x_i over the fully covered pixels
    (cov(i) = max cov), ``cos_x`` = cos(s, x), ``cos_E`` = cos(s, E s), ``residual`` =
    ||s - E s|| / ||E s||, and the maps ``s`` (S, *x.shape) and ``E``.
    """
    J = patch_index(x.shape, k, stride).shape[1]
    p = x.size // (x.shape[-1] * x.shape[-2]) * k * k
    W, V = random_weights(p, N, J, K, c=c, seeds=seeds)
    s = gbp(x, W, V, 0, k, stride)
    E = expected_gbp(x, k, N, c=c, stride=stride)
    cov = coverage(x.shape, k, stride)
    full = cov == cov.max()
    S = s.reshape(len(s), -1)

    def cos(a, b):
        return a @ b.ravel() / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b))
    return {"ratio": (s[:, full] / x[full]).mean(1), "cos_x": cos(S, x), "cos_E": cos(S, E),
            "residual": relative_residual(s, E), "s": s, "E": E}
