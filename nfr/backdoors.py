"""Backdoor attacks on CIFAR-10 classifiers: BadNet, Dynamic, InputAware and WaNet.

All attacks work on RAW images x in [0, 1] of shape (N, 3, H, W) (normalisation happens inside the
model wrapper of :mod:`nfr.train`), are all-to-one with target class ``target`` (default 0,
"airplane") and poison a fraction ``rate`` of each training batch (default 10%). Every random
choice takes a ``torch.Generator``; nothing seeds globally.

Common interface (:class:`Attack`):

* ``apply(x, generator)`` -- the triggered version of every image in x (no label change);
* ``poison(x, y, generator)`` -- poisons the first ``round(rate * N)`` images of a (shuffled) batch:
  returns ``(x', y')`` with the trigger applied and the label set to ``target`` on those images;
* ``region(x, generator)`` -- a boolean mask (N, 1, H, W) of the pixels the trigger occupies for the
  images ``apply`` would produce with the same generator state, or None where the trigger has no
  region (WaNet warps the whole image);
* ``training_batch(x, y, generator)`` -- the batch a training step sees: ``(x', y', aux_loss)``;
  InputAware and WaNet add their extra modes (cross-trigger / noise samples) here;
* ``state_dict()`` / ``load_state_dict()`` -- whatever the trigger needs (generator weights, the
  warping field), so a trained attack can be saved next to the model.

The four attacks, as implemented here:

* **BadNet** (Gu et al. 2017): a fixed 3 x 3 black-and-white checkerboard patch in the bottom-right
  corner (pixels ``[H-3:H, W-3:W]``), identical for every image.
* **Dynamic** (Salem et al. 2022, "Random Backdoor"): a 5 x 5 pattern produced by a small
  generator network from uniform noise, pasted at a location drawn uniformly over the image. The
  paper's BaN trains the generator together with the model; here the generator is a FIXED random
  MLP drawn from ``seed`` (its weights are part of the attack's state): the patterns still vary
  from image to image and the locations are random, which is what distinguishes Dynamic from BadNet.
* **InputAware** (Nguyen and Tran 2020): x' = (1 - m(x)) * x + m(x) * g(x) with a pattern generator
  g and a mask generator m, both small conv nets conditioned on the input. m is first trained alone
  with the diversity loss plus a mask-density loss (:meth:`InputAware.prepare`); g is trained jointly
  with the classifier with the diversity loss
  L_div = ||x1 - x2||_2 / ||g(x1) - g(x2)||_2 (per pair, averaged), and the cross-trigger mode:
  a further ``cross_rate`` of the batch receives the trigger generated from ANOTHER image and keeps
  its true label, so triggers are not reusable across images.
* **WaNet** (Nguyen and Tran 2021): a smooth warping field: k x k uniform noise in [-1, 1], divided
  by its mean absolute value, upsampled bicubically to H x W; the sampling grid is
  clamp((identity + s * noise / H) * grid_rescale, -1, 1) and x' = grid_sample(x, grid)
  (bilinear, align_corners=True). k = 4, s = 0.5, grid_rescale = 1. Noise mode: a further
  ``cross_ratio * rate`` of the batch is warped with the grid plus fresh uniform noise in
  [-1, 1] / H per pixel and keeps its label.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from nfr.data import normalize
from nfr.errors import NFRError
from nfr.engine import attribute as engine
from nfr.kis import kis

__all__ = ["Attack", "BadNet", "Dynamic", "InputAware", "WaNet", "ATTACKS", "make_attack",
           "diversity_loss", "attack_success_rate", "model_dtype", "trigger_energy", "analyze"]


def _gen(generator, seed=0) -> torch.Generator:
    return generator if generator is not None else torch.Generator().manual_seed(seed)


def _n_poison(n: int, rate: float) -> int:
    return int(round(rate * n))


class Attack:
    """Base class: an all-to-one backdoor with target class ``target`` and poisoning ``rate``.

    Parameters
    ----------
    target : int
        The target class. Default 0.
    rate : float
        Fraction of each training batch that is poisoned, in [0, 1]. Default 0.1.
    seed : int
        Seed of the attack's own random draws when no generator is given (and of a subclass's
        fixed trigger). Default 0.

    Raises
    ------
    NFRError
        If ``rate`` is not in [0, 1].
    """

    name = "none"

    def __init__(self, target: int = 0, rate: float = 0.1, seed: int = 0):
        if not 0.0 <= rate <= 1.0:
            raise NFRError(f"poisoning rate must be in [0, 1], got {rate}")
        self.target, self.rate, self.seed = int(target), float(rate), int(seed)

    # -- to override -------------------------------------------------------------------------
    def apply(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def region(self, x: torch.Tensor, generator: torch.Generator | None = None):
        return None

    # -- shared ------------------------------------------------------------------------------
    def poison(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None):
        """Trigger on the first round(rate * N) images and label ``target`` there; the rest unchanged.

        Parameters
        ----------
        x : torch.Tensor
            Raw images (N, 3, H, W) in [0, 1].
        y : torch.Tensor
            (N,) labels.
        generator : torch.Generator, optional
            Passed to ``apply``.

        Returns
        -------
        x, y : torch.Tensor
            The poisoned batch (the inputs themselves when round(rate * N) is 0).
        """
        n = _n_poison(len(x), self.rate)
        if n == 0:
            return x, y
        xp = torch.cat([self.apply(x[:n], generator), x[n:]])
        yp = torch.cat([torch.full_like(y[:n], self.target), y[n:]])
        return xp, yp

    def training_batch(self, x, y, generator=None):
        """(x', y', aux_loss) for one training step; by default ``poison`` and no extra loss.

        Parameters
        ----------
        x : torch.Tensor
            Raw images (N, 3, H, W) in [0, 1].
        y : torch.Tensor
            (N,) labels.
        generator : torch.Generator, optional
            Source of the random choices.

        Returns
        -------
        x, y : torch.Tensor
            The batch the classifier is trained on.
        aux_loss : torch.Tensor or None
            An extra loss term to add (None here).
        """
        xp, yp = self.poison(x, y, generator)
        return xp, yp, None

    def parameters(self):
        """Trainable parameters updated together with the classifier (none by default).

        Returns
        -------
        list of torch.nn.Parameter
            The parameters (an empty list here).
        """
        return []

    def prepare(self, x_train: torch.Tensor, generator=None, progress: bool = False) -> None:
        """Anything to do before training (InputAware pre-trains its mask generator).

        Does nothing here.

        Parameters
        ----------
        x_train : torch.Tensor
            The training images (N, 3, H, W), uint8 or float in [0, 1].
        generator : torch.Generator, optional
            Source of the random choices.
        progress : bool
            Show progress. Default False.
        """

    def train(self, mode: bool = True):
        return self

    def eval(self):
        return self.train(False)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, sd: dict) -> None:
        pass

    def to(self, dtype: torch.dtype) -> "Attack":
        """Convert the attack's floating-point tensors and generator networks to ``dtype``.

        In place, e.g. ``torch.float64`` to compute triggers beside a float64 model.

        Parameters
        ----------
        dtype : torch.dtype
            The new floating-point dtype.

        Returns
        -------
        Attack
            ``self``.
        """
        for k, v in vars(self).items():
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                setattr(self, k, v.to(dtype))
            elif isinstance(v, nn.Module):
                v.to(dtype)
        return self

    def config(self) -> dict:
        return dict(name=self.name, target=self.target, rate=self.rate, seed=self.seed)


# --------------------------------------------------------------------------------------------
class BadNet(Attack):
    """Gu et al. 2017: a fixed ``size`` x ``size`` checkerboard patch at the bottom-right corner.

    Parameters
    ----------
    target, rate, seed
        As for :class:`Attack`.
    size : int
        Side of the patch in pixels. Default 3.
    """

    name = "badnet"

    def __init__(self, target=0, rate=0.1, seed=0, size: int = 3):
        super().__init__(target, rate, seed)
        self.size = size
        i = torch.arange(size)
        self.patch = ((i[:, None] + i[None, :]) % 2 == 0).float()  # 1 0 1 / 0 1 0 / 1 0 1

    def apply(self, x, generator=None):
        out = x.clone()
        out[:, :, -self.size:, -self.size:] = self.patch.to(x)
        return out

    def region(self, x, generator=None):
        m = torch.zeros(len(x), 1, *x.shape[2:], dtype=torch.bool)
        m[:, :, -self.size:, -self.size:] = True
        return m


# --------------------------------------------------------------------------------------------
class Dynamic(Attack):
    """Salem et al. 2022 (Random Backdoor): generator(noise) patterns at uniformly random locations.

    Pattern: p = sigmoid(4 * MLP(z)), z ~ U[0, 1)^noise_dim, MLP = Linear(noise_dim, 64) - ReLU -
    Linear(64, 3 * size^2) with weights drawn from ``seed`` and frozen. Location (top-left corner)
    uniform over {0..H-size} x {0..W-size}. The pattern replaces the pixels it covers.

    Parameters
    ----------
    target, rate, seed
        As for :class:`Attack`; ``seed`` also draws the MLP's weights.
    size : int
        Side of the pattern in pixels. Default 5.
    noise_dim : int
        Dimension of the noise z. Default 16.
    """

    name = "dynamic"

    def __init__(self, target=0, rate=0.1, seed=0, size: int = 5, noise_dim: int = 16):
        super().__init__(target, rate, seed)
        self.size, self.noise_dim = size, noise_dim
        g = torch.Generator().manual_seed(seed)
        self.w1 = torch.randn(noise_dim, 64, generator=g) * (2.0 / noise_dim) ** 0.5
        self.b1 = torch.zeros(64)
        self.w2 = torch.randn(64, 3 * size * size, generator=g) * (2.0 / 64) ** 0.5
        self.b2 = torch.randn(3 * size * size, generator=g) * 0.5

    def patterns(self, n: int, generator=None) -> torch.Tensor:
        """n patterns (n, 3, size, size) in (0, 1) from uniform noise.

        Parameters
        ----------
        n : int
            Number of patterns.
        generator : torch.Generator, optional
            Draws the noise (a generator seeded with the attack's ``seed`` when None).

        Returns
        -------
        torch.Tensor
            (n, 3, size, size) in the dtype of the MLP's weights.
        """
        z = torch.rand(n, self.noise_dim, generator=_gen(generator, self.seed)).to(self.w1.dtype)
        h = torch.relu(z @ self.w1 + self.b1) @ self.w2 + self.b2
        return torch.sigmoid(4 * h).reshape(n, 3, self.size, self.size)

    def _draw(self, x, generator):
        g = _gen(generator, self.seed)
        p = self.patterns(len(x), g)
        H, W = x.shape[2:]
        r = torch.randint(0, H - self.size + 1, (len(x),), generator=g)
        c = torch.randint(0, W - self.size + 1, (len(x),), generator=g)
        return p, r, c

    def apply(self, x, generator=None):
        p, r, c = self._draw(x, generator)
        out = x.clone()
        s = self.size
        for i in range(len(x)):
            out[i, :, r[i]:r[i] + s, c[i]:c[i] + s] = p[i].to(x)
        return out

    def region(self, x, generator=None):
        _, r, c = self._draw(x, generator)
        m = torch.zeros(len(x), 1, *x.shape[2:], dtype=torch.bool)
        for i in range(len(x)):
            m[i, :, r[i]:r[i] + self.size, c[i]:c[i] + self.size] = True
        return m

    def state_dict(self):
        return dict(w1=self.w1, b1=self.b1, w2=self.w2, b2=self.b2)

    def load_state_dict(self, sd):
        self.w1, self.b1, self.w2, self.b2 = (sd[k].float() for k in ("w1", "b1", "w2", "b2"))


# --------------------------------------------------------------------------------------------
class _Generator(nn.Module):
    """A small encoder-decoder (3 -> c -> 2c at half resolution -> c -> out_ch) with a sigmoid output."""

    def __init__(self, out_ch: int = 3, c: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(2 * c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, out_ch, 3, padding=1))

    def forward(self, x):
        return torch.sigmoid(self.net(x))


def diversity_loss(x1: torch.Tensor, x2: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor,
                   eps: float = 1e-8) -> torch.Tensor:
    """Nguyen and Tran 2020's diversity loss: mean over pairs of ||x1 - x2||_2 / ||g1 - g2||_2.

    Norms over all non-batch dims, per pair; minimising it pushes different inputs to different
    triggers.

    Parameters
    ----------
    x1, x2 : torch.Tensor
        The two inputs of each pair, (N, ...).
    g1, g2 : torch.Tensor
        The patterns (or masks) generated from ``x1`` and ``x2``, (N, ...).
    eps : float
        Added to the pattern distance; guards against identical patterns (0 distance). Default 1e-8.

    Returns
    -------
    torch.Tensor
        The loss, a scalar.
    """
    dx = (x1 - x2).flatten(1).norm(dim=1)
    dg = (g1 - g2).flatten(1).norm(dim=1)
    return (dx / (dg + eps)).mean()


class InputAware(Attack):
    """Nguyen and Tran 2020: x' = (1 - m(x)) x + m(x) g(x) with input-conditioned generators.

    ``cross_rate`` (default 0.1): fraction of each training batch that receives the trigger made from
    another image of the batch and keeps its own label (the cross-trigger mode). ``lambda_div``
    (default 1) weighs the diversity loss of g. The mask generator m is trained first by
    :meth:`prepare` with L_div(m) + lambda_norm * relu(mean(m) - mask_density) (defaults 1, 100,
    0.032, as in the authors' code), then frozen. ``region`` returns m(x) > 0.5.

    Parameters
    ----------
    target, rate, seed
        As for :class:`Attack`; ``seed`` also seeds the initialisation of both generators.
    cross_rate : float
        Fraction of each training batch in the cross-trigger mode. Default 0.1.
    lambda_div : float
        Weight of the diversity loss of g. Default 1.
    mask_density : float
        Mean mask value above which the mask-density loss acts. Default 0.032.
    lambda_norm : float
        Weight of the mask-density loss. Default 100.
    mask_steps : int
        Adam steps of the mask generator's pre-training. Default 200.
    channels : int
        Width c of both generators (3 -> c -> 2c at half resolution -> c -> out). Default 16.
    """

    name = "inputaware"

    def __init__(self, target=0, rate=0.1, seed=0, cross_rate: float = 0.1, lambda_div: float = 1.0,
                 mask_density: float = 0.032, lambda_norm: float = 100.0, mask_steps: int = 200,
                 channels: int = 16):
        super().__init__(target, rate, seed)
        self.cross_rate, self.lambda_div = float(cross_rate), float(lambda_div)
        self.mask_density, self.lambda_norm, self.mask_steps = mask_density, lambda_norm, mask_steps
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.pattern_net = _Generator(3, channels)
            self.mask_net = _Generator(1, channels)
        self.eval()

    def train(self, mode=True):
        self.pattern_net.train(mode)
        self.mask_net.eval()  # frozen after prepare()
        return self

    def parameters(self):
        return list(self.pattern_net.parameters())

    def trigger(self, x_src: torch.Tensor, x_dst: torch.Tensor) -> torch.Tensor:
        """x_dst with the trigger generated from x_src: (1 - m(x_src)) x_dst + m(x_src) g(x_src).

        Parameters
        ----------
        x_src : torch.Tensor
            Images (N, 3, H, W) the mask and the pattern are generated from.
        x_dst : torch.Tensor
            Images (N, 3, H, W) the trigger is applied to.

        Returns
        -------
        torch.Tensor
            The triggered images (N, 3, H, W).
        """
        m = self.mask_net(x_src)
        return (1 - m) * x_dst + m * self.pattern_net(x_src)

    def apply(self, x, generator=None):
        return self.trigger(x, x)

    def region(self, x, generator=None):
        with torch.no_grad():
            return self.mask_net(x) > 0.5

    def prepare(self, x_train, generator=None, progress=False, batch_size=64):
        """Pre-train the mask generator: diversity loss + mask-density loss, ``mask_steps`` Adam steps.

        Adam with lr 0.01, betas (0.5, 0.9); the mask generator is frozen afterwards.

        Parameters
        ----------
        x_train : torch.Tensor
            The training images (N, 3, H, W), uint8 or float in [0, 1]; each step draws two
            batches from them, with replacement.
        generator : torch.Generator, optional
            Draws the batches (a generator seeded with the attack's ``seed`` when None).
        progress : bool
            Unused (no progress is shown).
        batch_size : int
            Images per batch (two batches per step). Default 64.
        """
        g = _gen(generator, self.seed)
        opt = torch.optim.Adam(self.mask_net.parameters(), lr=1e-2, betas=(0.5, 0.9))
        self.mask_net.train()
        for _ in range(self.mask_steps):
            idx = torch.randint(0, len(x_train), (2 * batch_size,), generator=g)
            xb = as_float(x_train[idx])
            x1, x2 = xb[:batch_size], xb[batch_size:]
            m1, m2 = self.mask_net(x1), self.mask_net(x2)
            loss = diversity_loss(x1, x2, m1, m2) + self.lambda_norm * (
                torch.relu(m1.mean() - self.mask_density) + torch.relu(m2.mean() - self.mask_density))
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.mask_net.eval()
        for p in self.mask_net.parameters():
            p.requires_grad_(False)

    def training_batch(self, x, y, generator=None):
        """The batch of one training step: poisoned, cross-trigger and clean images.

        First rate*N images: own trigger, label target; next cross_rate*N: another image's trigger,
        own label; rest clean. aux_loss = lambda_div * L_div(g) on the poisoned images vs. the
        images whose triggers the cross samples borrow.

        Parameters
        ----------
        x : torch.Tensor
            Raw images (N, 3, H, W) in [0, 1].
        y : torch.Tensor
            (N,) labels.
        generator : torch.Generator, optional
            Draws the partner images (a generator seeded with the attack's ``seed`` when None).

        Returns
        -------
        x, y : torch.Tensor
            The batch the classifier is trained on.
        aux_loss : torch.Tensor
            lambda_div * L_div(g), a scalar.
        """
        n = len(x)
        nb, nc = _n_poison(n, self.rate), _n_poison(n, self.cross_rate)
        nb = min(nb, n)
        nc = min(nc, n - nb)
        k = max(nb, nc, 1)
        g = _gen(generator, self.seed)
        # partner images for the cross-trigger samples and the diversity loss
        partners = x[torch.randint(0, n, (k,), generator=g)]
        xs = x[:k]
        pat = self.pattern_net(torch.cat([xs, partners]))
        div = diversity_loss(xs, partners, pat[:k], pat[k:])
        xb = self.trigger(x[:nb], x[:nb]) if nb else x[:0]
        xc = self.trigger(partners[:nc], x[nb:nb + nc]) if nc else x[:0]
        xp = torch.cat([xb, xc, x[nb + nc:]])
        yp = torch.cat([torch.full_like(y[:nb], self.target), y[nb:]])
        return xp, yp, self.lambda_div * div

    def state_dict(self):
        return {**{"pattern." + k: v for k, v in self.pattern_net.state_dict().items()},
                **{"mask." + k: v for k, v in self.mask_net.state_dict().items()}}

    def load_state_dict(self, sd):
        self.pattern_net.load_state_dict({k[8:]: v for k, v in sd.items() if k.startswith("pattern.")})
        self.mask_net.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("mask.")})
        for p in self.mask_net.parameters():
            p.requires_grad_(False)
        self.eval()

    def config(self):
        return {**super().config(), "cross_rate": self.cross_rate, "lambda_div": self.lambda_div,
                "mask_density": self.mask_density, "lambda_norm": self.lambda_norm,
                "mask_steps": self.mask_steps}


# --------------------------------------------------------------------------------------------
class WaNet(Attack):
    """Nguyen and Tran 2021: warping-based trigger, k x k control grid, strength s, noise mode.

    Parameters
    ----------
    target, rate, seed
        As for :class:`Attack`; ``seed`` also draws the warping field.
    k : int
        Side of the control grid. Default 4.
    s : float
        Strength of the warp. Default 0.5.
    grid_rescale : float
        Factor applied to the sampling grid before clamping. Default 1.
    cross_ratio : float
        The noise mode takes a further ``cross_ratio * rate`` of each training batch. Default 2.
    size : int
        Side H = W of the images. Default 32.
    """

    name = "wanet"

    def __init__(self, target=0, rate=0.1, seed=0, k: int = 4, s: float = 0.5,
                 grid_rescale: float = 1.0, cross_ratio: float = 2.0, size: int = 32):
        super().__init__(target, rate, seed)
        self.k, self.s, self.grid_rescale, self.cross_ratio, self.size = k, float(s), grid_rescale, cross_ratio, size
        g = torch.Generator().manual_seed(seed)
        ins = torch.rand(1, 2, k, k, generator=g) * 2 - 1
        ins = ins / ins.abs().mean()
        self.noise_grid = F.interpolate(ins, size=size, mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
        a = torch.linspace(-1, 1, steps=size)
        xx, yy = torch.meshgrid(a, a, indexing="ij")
        self.identity_grid = torch.stack((yy, xx), 2)[None]

    def grid(self) -> torch.Tensor:
        """The backdoor sampling grid (1, H, W, 2).

        Returns
        -------
        torch.Tensor
            clamp((identity + s * noise / H) * grid_rescale, -1, 1), of shape (1, H, W, 2).
        """
        g = (self.identity_grid + self.s * self.noise_grid / self.size) * self.grid_rescale
        return torch.clamp(g, -1, 1)

    def apply(self, x, generator=None):
        grid = self.grid().to(x).expand(len(x), -1, -1, -1)
        return F.grid_sample(x, grid, align_corners=True)

    def apply_noise(self, x, generator=None):
        """Noise mode: the backdoor grid plus uniform noise in [-1, 1] / H per pixel (labels kept).

        Parameters
        ----------
        x : torch.Tensor
            Raw images (N, 3, size, size) in [0, 1].
        generator : torch.Generator, optional
            Draws the noise (a generator seeded with the attack's ``seed`` when None).

        Returns
        -------
        torch.Tensor
            The warped images, shaped like ``x``.
        """
        g = _gen(generator, self.seed)
        ins = torch.rand(len(x), self.size, self.size, 2, generator=g) * 2 - 1
        grid = torch.clamp(self.grid() + ins / self.size, -1, 1).to(x)
        return F.grid_sample(x, grid, align_corners=True)

    def training_batch(self, x, y, generator=None):
        n = len(x)
        nb = _n_poison(n, self.rate)
        nc = min(_n_poison(n, self.rate * self.cross_ratio), n - nb)
        parts = [self.apply(x[:nb]) if nb else x[:0],
                 self.apply_noise(x[nb:nb + nc], generator) if nc else x[:0], x[nb + nc:]]
        yp = torch.cat([torch.full_like(y[:nb], self.target), y[nb:]])
        return torch.cat(parts), yp, None

    def state_dict(self):
        return dict(noise_grid=self.noise_grid, identity_grid=self.identity_grid)

    def load_state_dict(self, sd):
        self.noise_grid, self.identity_grid = sd["noise_grid"].float(), sd["identity_grid"].float()

    def config(self):
        return {**super().config(), "k": self.k, "s": self.s, "grid_rescale": self.grid_rescale,
                "cross_ratio": self.cross_ratio}


ATTACKS = {"badnet": BadNet, "dynamic": Dynamic, "inputaware": InputAware, "wanet": WaNet}


def make_attack(name: str, **kw) -> Attack | None:
    """An attack by name ('none' gives None); keyword arguments go to its constructor.

    Parameters
    ----------
    name : str or None
        A key of ``ATTACKS`` (``"badnet"``, ``"dynamic"``, ``"inputaware"``, ``"wanet"``), or
        ``"none"``, ``"clean"`` or None for no attack.
    **kw
        Keyword arguments of the attack's constructor.

    Returns
    -------
    Attack or None
        The attack, or None for no attack.

    Raises
    ------
    NFRError
        If ``name`` is not a known attack.
    """
    if name in (None, "none", "clean"):
        return None
    if name not in ATTACKS:
        raise NFRError(f"unknown attack {name!r}; choose one of none, {', '.join(ATTACKS)}")
    return ATTACKS[name](**kw)


def as_float(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 images (0..255) -> ``dtype`` in [0, 1] (x / 255); float images converted to ``dtype``."""
    return x.to(dtype) / 255.0 if x.dtype == torch.uint8 else x.to(dtype)


def model_dtype(model) -> torch.dtype:
    """The dtype of a model's first floating-point parameter (float32 for a model without any).

    Parameters
    ----------
    model : torch.nn.Module
        The model.

    Returns
    -------
    torch.dtype
        The dtype.
    """
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


@torch.no_grad()
def attack_success_rate(model, attack: Attack, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256,
                        seed: int = 0, device="cpu") -> float:
    """Fraction of images with true label != target classified as ``target`` after ``attack.apply``.

    Images are converted to the model's dtype; the attack must be in the same dtype
    (:meth:`Attack.to`).

    Parameters
    ----------
    model : torch.nn.Module
        The classifier; it takes raw [0, 1] images (see :class:`nfr.train.Normalized`).
    attack : Attack
        The attack whose trigger is applied.
    x : torch.Tensor
        Images (N, 3, H, W), uint8 (0..255) or float in [0, 1].
    y : torch.Tensor
        (N,) true labels.
    batch_size : int
        Images per forward pass. Default 256.
    seed : int
        Seed of the generator passed to ``attack.apply``. Default 0.
    device : str or torch.device
        Where the model runs (the trigger is applied before the batch is moved). Default ``"cpu"``.

    Returns
    -------
    float
        The attack success rate (0 when no image has a label other than the target).
    """
    keep = y != attack.target
    x, g, dt = x[keep], torch.Generator().manual_seed(seed), model_dtype(model)
    hits = 0
    for i in range(0, len(x), batch_size):
        xb = attack.apply(as_float(x[i:i + batch_size], dt), g)
        hits += (model(xb.to(device)).argmax(1) == attack.target).sum().item()
    return hits / max(len(x), 1)


def trigger_energy(R: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fraction of a map's energy on the trigger region, per sample (N,).

    Energy per pixel e_ij = sum_c ``|R_cij|`` (L1 over channels); the fraction is
    sum_{(i,j) in mask} e_ij / sum_ij e_ij (nan for an all-zero map). ``mask``: boolean (N, 1, H, W)
    from ``nfr.backdoors.Attack.region``. Compare it with the region's area fraction mask.mean(): a map that
    ignores the trigger puts about that share of its energy there.

    Parameters
    ----------
    R : torch.Tensor
        Attribution maps (N, C, H, W).
    mask : torch.Tensor
        The trigger region, boolean (N, 1, H, W).

    Returns
    -------
    torch.Tensor
        (N,) energy fractions.
    """
    e = R.detach().abs().sum(1)
    m = mask[:, 0].to(e.dtype)
    tot = e.flatten(1).sum(1)
    inside = (e * m).flatten(1).sum(1)
    return torch.where(tot > 0, inside / torch.where(tot > 0, tot, torch.ones_like(tot)),
                       torch.full_like(tot, float("nan")))


def analyze(net, attack: Attack, x: torch.Tensor, rule: str = "gbp", seed: int = 0,
            batch_size: int = 50) -> dict:
    """Attributions, KIS and trigger energy for clean images x (raw, [0, 1]) and their poisoned copies.

    ``net`` takes normalised input (``nfr.data.normalize``; for a :class:`nfr.train.Normalized`
    model pass ``model.net``). For each image and its poisoned copy ``attack.apply(x, g)`` (g seeded
    by ``seed``): the decided class k = argmax f, the map R = ``nfr.attribute(net, normalize(x), k,
    rule)``, KIS (``nfr.kis.kis`` on the normalised input, eq 20 of Zheng et al.), and, where the attack has a
    region, the energy fraction of R on it (:func:`trigger_energy`; for clean images the same region,
    as a control) and the region's area fraction.

    Parameters
    ----------
    net : torch.nn.Module
        The classifier, taking normalised input.
    attack : Attack
        The attack (put in eval mode).
    x : torch.Tensor
        Clean raw images (N, 3, H, W) in [0, 1].
    rule : str
        The attribution rule of ``nfr.attribute``. Default ``"gbp"``.
    seed : int
        Seed of the generators of ``attack.apply`` and ``attack.region``. Default 0.
    batch_size : int
        Images per attribution call. Default 50.

    Returns
    -------
    dict
        Numpy arrays keyed ``{clean,poisoned}_{pred,kis,energy}`` (``energy`` only where the attack
        has a region) and ``area`` (None without a region); torch tensors ``R_clean``,
        ``R_poisoned`` (the maps), ``x_poisoned`` (the images) and ``region`` (the boolean mask,
        or None).
    """
    attack.eval()
    with torch.no_grad():
        xp = attack.apply(x, torch.Generator().manual_seed(seed))
        region = attack.region(x, torch.Generator().manual_seed(seed))
    out: dict = {"x_poisoned": xp}
    for kind, xi in (("clean", x), ("poisoned", xp)):
        preds, ks, maps = [], [], []
        for i in range(0, len(xi), batch_size):
            xn = normalize(xi[i:i + batch_size])
            with torch.no_grad():
                k = net(xn).argmax(1)
            R = engine.attribute(net, xn, k, rule)
            preds.append(k)
            ks.append(kis(net, xn, R))
            maps.append(R.detach())
        R = torch.cat(maps)
        out[f"{kind}_pred"] = torch.cat(preds).numpy()
        out[f"{kind}_kis"] = torch.cat(ks).numpy()
        out[f"R_{kind}"] = R
        if region is not None:
            out[f"{kind}_energy"] = trigger_energy(R, region).numpy()
    out["area"] = region.float().flatten(1).mean(1).numpy() if region is not None else None
    out["region"] = region
    return out
