"""Toy ReLU networks as explicit matrices (Zheng et al., eqs 2-4).

Conventions (Zheng et al., Section III-A):

* ``W[l-1]`` is the matrix ``W_l`` of shape ``[d_{l-1}, d_l]`` for ``l = 1..L``;
* ``Z_l = W_l^T A_{l-1} + b_l`` and ``A_l = relu(Z_l)`` for the hidden layers ``l < L``;
* the output layer is linear: ``f = A_L = Z_L``;
* ``M_l = diag(1(Z_l > 0))`` is the ReLU's gradient mask (all ones at the output layer).

Everything is float64 NumPy. Inputs are single vectors ``x`` of shape ``[d_0]``; batches are
handled by looping (the reference favours clarity over speed).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nfr.errors import NFRError

DISTRIBUTIONS = ("gaussian", "sphere", "uniform", "orthogonal")


@dataclass
class ToyNet:
    """A bias-free (by default) fully connected ReLU network ``f = W_L^T A_{L-1}``.

    Parameters
    ----------
    weights : list of numpy.ndarray
        ``weights[l-1]`` is ``W_l``, shape ``[d_{l-1}, d_l]``.
    biases : list of numpy.ndarray, optional
        ``biases[l-1]`` is ``b_l``, shape ``[d_l]``; None (default) for a bias-free net.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray] | None = None

    @property
    def L(self) -> int:
        """Number of weight layers (the last one is the linear output layer).

        Returns
        -------
        int
            L.
        """
        return len(self.weights)

    @property
    def widths(self) -> list[int]:
        return [self.weights[0].shape[0]] + [W.shape[1] for W in self.weights]

    def bias(self, l: int) -> np.ndarray:
        """``b_l`` (zeros for a bias-free net).

        Parameters
        ----------
        l : int
            The layer, 1-based.

        Returns
        -------
        numpy.ndarray
            ``b_l``, shape ``[d_l]``.
        """
        if self.biases is None:
            return np.zeros(self.weights[l - 1].shape[1])
        return self.biases[l - 1]


@dataclass
class Forward:
    """Everything a backward rule needs: ``A[l]``, ``Z[l]`` and masks ``M[l]`` for ``l = 0..L``.

    ``A[0] = x``; ``Z[0]`` and ``M[0]`` are unused placeholders so that indices match the paper.

    Parameters
    ----------
    A : list of numpy.ndarray
        The activations ``A_0 = x, A_1, ..., A_L = f``.
    Z : list of numpy.ndarray
        The pre-activations ``Z_l``.
    M : list of numpy.ndarray
        The boolean masks ``M_l = 1(Z_l > 0)`` (all True at the output layer). Default empty.
    """

    A: list[np.ndarray]
    Z: list[np.ndarray]
    M: list[np.ndarray] = field(default_factory=list)

    @property
    def logits(self) -> np.ndarray:
        return self.A[-1]


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def sample_weights(shape: tuple[int, int], dist: str, rng) -> np.ndarray:
    """One weight matrix ``[d_in, d_out]``; each column is one neuron's weight vector ``w_j``.

    * ``"gaussian"``: i.i.d. N(0, 1/d_in) entries (isotropic, zero mean);
    * ``"sphere"``: each ``w_j`` uniform on the sphere of radius 1 (isotropic, not Gaussian;
      the d-dimensional version of the paper's "ring");
    * ``"uniform"``: i.i.d. U[-1, 1] entries scaled by ``sqrt(3/d_in)`` (zero mean, same variance
      as the Gaussian, but *not* isotropic: the cube's corners are preferred directions);
    * ``"orthogonal"``: columns orthonormal (QR of a Gaussian matrix; needs ``d_out <= d_in``).

    Parameters
    ----------
    shape : tuple of int
        ``(d_in, d_out)``.
    dist : str
        ``"gaussian"``, ``"sphere"``, ``"uniform"`` or ``"orthogonal"``, as above.
    rng : numpy.random.Generator or int
        The generator, or a seed for a new one.

    Returns
    -------
    numpy.ndarray
        The matrix, float64, shape ``(d_in, d_out)``.

    Raises
    ------
    nfr.NFRError
        For an unknown ``dist``, or ``"orthogonal"`` with ``d_out > d_in``.
    """
    rng = _rng(rng)
    d_in, d_out = shape
    if dist == "gaussian":
        return rng.standard_normal(shape) / np.sqrt(d_in)
    if dist == "sphere":
        W = rng.standard_normal(shape)
        return W / np.linalg.norm(W, axis=0, keepdims=True)
    if dist == "uniform":
        return rng.uniform(-1.0, 1.0, shape) * np.sqrt(3.0 / d_in)
    if dist == "orthogonal":
        if d_out > d_in:
            raise NFRError(f"orthogonal weights need d_out <= d_in, got {shape}; use 'gaussian'")
        q, r = np.linalg.qr(rng.standard_normal(shape))
        return q * np.sign(np.diag(r))
    raise NFRError(f"unknown weight distribution {dist!r}; choose one of {DISTRIBUTIONS}")


def random_network(widths, seed=0, dist="gaussian", bias=False) -> ToyNet:
    """A random toy network with layer widths ``[d_0, d_1, ..., d_L]``.

    Every layer draws from its own stream of the generator (no two layers share weights).

    Parameters
    ----------
    widths : sequence of int
        ``[d_0, d_1, ..., d_L]``, at least two entries.
    seed : int or numpy.random.Generator
        The seed, or the generator itself. Default 0.
    dist : str
        The weight distribution of ``sample_weights``. Default ``"gaussian"``.
    bias : bool
        Give each layer (the output layer included) i.i.d. N(0, 0.1^2) biases. Default False.

    Returns
    -------
    ToyNet
        The network.

    Raises
    ------
    nfr.NFRError
        If ``widths`` has fewer than two entries (and, from ``sample_weights``, for a bad
        ``dist``).
    """
    rng = _rng(seed)
    widths = list(widths)
    if len(widths) < 2:
        raise NFRError(f"widths needs at least [d_0, d_L], got {widths}")
    weights = [sample_weights((a, b), dist, rng) for a, b in zip(widths[:-1], widths[1:])]
    biases = [0.1 * rng.standard_normal(b) for b in widths[1:]] if bias else None
    return ToyNet(weights, biases)


def forward(net: ToyNet, x: np.ndarray) -> Forward:
    """Eq 2: ``A_l = relu(W_l^T A_{l-1} + b_l)``, linear last layer; returns A, Z and masks M.

    Parameters
    ----------
    net : ToyNet
        The network.
    x : numpy.ndarray
        One input vector of length ``d_0`` (converted to float64).

    Returns
    -------
    Forward
        ``A``, ``Z`` and ``M`` for ``l = 0..L``.

    Raises
    ------
    nfr.NFRError
        If ``x`` is not a vector of length ``d_0``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.shape[0] != net.weights[0].shape[0]:
        raise NFRError(f"x must be a vector of length {net.weights[0].shape[0]}, got shape {x.shape}")
    A, Z, M = [x], [np.zeros_like(x)], [np.ones_like(x, dtype=bool)]
    for l in range(1, net.L + 1):
        z = net.weights[l - 1].T @ A[-1] + net.bias(l)
        Z.append(z)
        if l < net.L:
            M.append(z > 0)
            A.append(np.maximum(z, 0.0))
        else:
            M.append(np.ones_like(z, dtype=bool))
            A.append(z)
    return Forward(A, Z, M)
