"""TR-GBP paper Sec. 3.2 / Fig 2: Nie et al.'s reconstruction theorem on random three-layer CNNs.

For every setting (N filters in ``filters``, filter side k in ``kernel``; p = C_in k^2) and
every input (:func:`nie_images`) ``seeds`` networks are drawn (weights N(0, c^2), Z = 1) and
their GBP s at a logit is compared with the theorem. Per setting (mean, std and the values over
inputs x networks):

``p`` and, as lists with one entry per input, ``C0``, ``C0_mean`` / ``_min`` / ``_max``,
``constant_printed``, ``constant_derived`` and ``cos_Ex`` (see below) complete each setting.

* ``cos_x`` = cos(s, x), ``cos_E`` = cos(s, E s) (E s exact, :func:`nfr.reference.nie.expected_gbp`);
* ``scale``: the least-squares factor of s on x over the fully covered pixels (coverage = max),
  ``ratio_printed`` = scale / (2 c^2 p N / (pi C0)) (eq 7 as printed), ``ratio_derived`` =
  scale / (c^2 p N / (2 pi C0)) (chapter 11's proof: a quarter of the printed constant). C0 is
  the patch norm when all patches share it (``data="signs"``: k / sqrt(d)); on a photo, whose
  patch norms differ (``C0_mean``, ``C0_min``, ``C0_max``), E s_m / x_m varies from pixel to
  pixel and C0 is the *effective* norm for which the derived constant is the least-squares
  factor of E s on x over the interior, so that ``ratio_derived`` tests the convergence of s
  to its expectation and ``ratio_printed`` the printed constant;
  ``cos_Ex`` = cos(E s, x): the limit of ``cos_x`` for N -> infinity (1 only for equal patch
  norms and no border: on a photo GBP tends to a contrast-normalised image);
  ``ratio_sd_pred``: the standard deviation of ``ratio_derived`` for one network predicted by
  the noise model, sqrt(a^2 + b^2 / N): a = pi C0 sqrt(cov_max) / (p sqrt(N sum_I x^2)) from
  the independent-terms variance Var s_m = N cov_m c^4 / 4 (chapter 11), b^2 = Var ||w|| /
  (E ||w||)^2 ~ 1 / (2 p) from the norm of each filter, which every patch of that filter shares
  (derived for equal patch norms; on photos the direction of a filter matters too and the
  measured spread is larger);
  ``ratio_E`` = <s, E s> / ||E s||^2 (1 on any image);
* ``border_centre``: mean |s| in the band of width k - 1 along the edges over the mean inside
  (:func:`nfr.metrics.border_centre_ratio`), against the prediction of the patch coverage
  (``pred_coverage``: the ratio of the coverage map; exact for equal patch norms) and of E s;
* claim T4: ``residual_x`` = ||s / scale - x|| / ||x|| (noise plus the weaker borders) and
  ``residual_E`` = ||s - E s|| / ||E s|| (the noise alone) with its prediction
  pi sqrt(sum cov) / ||sum_j D_j^T c_j/||c_j|| || / sqrt(N) (:func:`nfr.reference.nie.noise_prediction`).

``t4`` collects the residuals as curves against N (per k) and against p (per N), and the log-log
slopes in N (the theory: -1/2). There is no ``model`` or ``weights``: the networks are drawn
here. Figure ``nie.png``.

GBP is computed in torch (:func:`gbp_conv`, chunked over the filters by :func:`draw_gbp` so that
thousands of filters fit in memory, on the CPU or a GPU) and is tested against the NumPy reference
:func:`nfr.reference.nie.gbp` in float64; the exact expectation of GBP, the patch coverage and the
noise prediction come from :mod:`nfr.reference.nie`. The inputs: :func:`nie_images`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nfr.data import load_image
from nfr.errors import NFRError
from nfr.experiments import base as B
from nfr.experiments.base import option
from nfr.metrics import border_centre_ratio
from nfr.reference import nie as ref
from nfr.setup import load_data

#: ``data`` values of :func:`run` besides a path
NIE_DATA = ("signs", "samples", "skimage")
#: ``channels`` values
CHANNELS = ("gray", "each", "rgb")


# ============================================================================== nie: GBP in torch
def gbp_conv(x, Wc, Vc, stride: int = 1):
    """GBP at one logit of Nie et al.'s three-layer CNN (eq 6 of the TR-GBP paper, Z = 1) with torch convolutions.

    ``x`` (C_in, H, W), ``Wc`` (N, C_in, k, k) the filters, ``Vc`` (N, H_out, W_out) the fully
    connected weights of the explained logit, arranged like the convolution's output (q_ij = i J + j
    with the patch positions j row-major, as in :mod:`nfr.reference.nie`). Returns (C_in, H, W):

        s = sum_j D_j^T sum_i w_i 1(w_i^T c_j > 0) sigma(V_{q_ij}),

    i.e. ``conv_transpose2d(1(conv2d(x, W) > 0) * relu(V), W)``. The NumPy layout converts as
    ``Wc = W.T.reshape(N, C_in, k, k)``, ``Vc = V[:, target].reshape(N, H_out, W_out)``.
    """
    F = torch.nn.functional
    x = x[None]
    pre = F.conv2d(x, Wc, stride=stride)                      # (1, N, H_out, W_out)
    G = (pre > 0).to(x.dtype) * torch.relu(Vc)[None]
    s = F.conv_transpose2d(G, Wc, stride=stride)
    H, W = x.shape[-2:]
    # conv_transpose may come out short when (H - k) is not a multiple of the stride
    if s.shape[-2:] != (H, W):
        s = F.pad(s, (0, W - s.shape[-1], 0, H - s.shape[-2]))
    return s[0]


def draw_gbp(x, N: int, k: int, c: float = 1.0, stride: int = 1, seed: int = 0,
             chunk: int | None = None):
    """GBP of one random three-layer CNN with ``N`` filters of ``k`` x ``k`` (x C_in) and all weights
    i.i.d. N(0, c^2), drawn with a torch generator seeded ``seed`` on x's device. The filters are
    drawn and applied ``chunk`` at a time (GBP is a sum over filters), so memory stays
    O(chunk x H_out x W_out) at any N. Only the explained logit's column of V enters GBP (K = 1)."""
    Cin, H, W = x.shape
    Ho, Wo = (H - k) // stride + 1, (W - k) // stride + 1
    if chunk is None:
        chunk = max(1, min(N, (1 << 22) // max(1, Ho * Wo)))
    g = torch.Generator(device=x.device).manual_seed(int(seed))
    s = torch.zeros_like(x)
    for i in range(0, N, chunk):
        n = min(chunk, N - i)
        Wc = c * torch.randn((n, Cin, k, k), generator=g, device=x.device, dtype=x.dtype)
        Vc = c * torch.randn((n, Ho, Wo), generator=g, device=x.device, dtype=x.dtype)
        s += gbp_conv(x, Wc, Vc, stride)
    return s


def _prepare(img: np.ndarray) -> np.ndarray:
    """Mean removed (per channel), unit norm (chapter 11's preprocessing of a natural image)."""
    a = img - img.mean(axis=(-2, -1), keepdims=True)
    n = np.linalg.norm(a)
    if not n > 0:
        raise NFRError("an image is constant (zero after removing its mean); GBP has nothing to rebuild")
    return a / n


def nie_images(data: str = "signs", n_images: int = 1, size: int = 64, channels: str = "gray",
               seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """The inputs of :func:`run`: float64 arrays (C_in, size, size) with unit norm, and their names.

    ``data``: ``"signs"`` (random signs +-1/sqrt(d), every patch of the same norm: the theorem's
    assumption, exactly; image i drawn with seed + i), ``"samples"`` (foolbox's ImageNet photos),
    ``"skimage"`` (scikit-image's photos), or a path: an image file, an ImageNet validation folder
    or a CIFAR-10 folder. Photos are made grey (``channels="gray"``, the channel mean, C_in = 1; the
    chapter's setting), split into their colour channels as three grey images (``"each"``), or kept
    as one 3-channel input (``"rgb"``, p = 3 k^2); then the mean is removed per channel and the
    norm set to 1.
    """
    if channels not in CHANNELS:
        raise NFRError(f"channels must be one of {', '.join(CHANNELS)}, got {channels!r}")
    if n_images is not None and n_images < 1:
        raise NFRError(f"n_images must be >= 1, got {n_images}")
    n = 1 if n_images is None else int(n_images)
    if data == "signs":
        cin = 3 if channels == "rgb" else 1
        xs = [ref.sign_image((cin, size, size), seed + i) for i in range(n)]
        if channels == "each":
            xs = [ref.sign_image((1, size, size), seed + i) for i in range(3 * n)]
        return xs, [f"signs{i}" for i in range(len(xs))]
    p = Path(str(data))
    if data not in NIE_DATA and p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
        raw, names = load_image(p, size)[None], [p.name]
    else:
        if data not in NIE_DATA and not p.exists():
            raise NFRError(f"data {data!r} is neither 'signs', 'samples', 'skimage', an image file "
                           "nor an existing folder (ImageNet validation or CIFAR-10)")
        raw, _ = load_data(str(data), "vgg16", n_images, size, seed)
        names = [f"{Path(str(data)).name}{i}" for i in range(len(raw))]
    raw = raw.double().numpy()
    xs, out_names = [], []
    for a, nm in zip(raw, names):
        if channels == "gray":
            xs.append(_prepare(a.mean(0, keepdims=True)))
            out_names.append(nm)
        elif channels == "each":
            for ch, cn in zip(a, "RGB"):
                xs.append(_prepare(ch[None]))
                out_names.append(f"{nm}:{cn}")
        else:
            xs.append(_prepare(a))
            out_names.append(nm)
    return xs, out_names


def _seed_for(seed: int, *parts) -> int:
    return int(np.random.SeedSequence([int(seed), *map(int, parts)]).generate_state(1)[0])


def _norm_var(p: int) -> float:
    """Var ||w|| / (E ||w||)^2 for w ~ N(0, I_p) (chi with p degrees of freedom; about 1 / (2 p))."""
    m = math.sqrt(2) * math.exp(math.lgamma((p + 1) / 2) - math.lgamma(p / 2))
    return p / m ** 2 - 1


def _loglog_slope(xs, ys) -> float:
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    ok = (xs > 0) & (ys > 0) & np.isfinite(ys)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(xs[ok]), np.log(ys[ok]), 1)[0])



@dataclass
class Config(B.RunConfig):
    device: str = option("cpu", "where to compute", choices=("cpu", "cuda"))
    data: str = option("signs", "'signs' (random +-1 images: every patch has the same norm, the "
                       "theorem's assumption), foolbox's 'samples', scikit-image's 'skimage' photos, "
                       "or an image file / ImageNet or CIFAR-10 folder",
                       metavar="{signs,samples,skimage,PATH}")
    n_images: int = option(1, "number of images (0 = all the photos of --data; signs: 1)", minimum=0,
                           metavar="N")
    size: int = option(64, "image side", minimum=1, metavar="PX")
    channels: str = option("gray", "photos as one grey image (as chapter 11), each colour channel as "
                           "its own grey image, or one 3-channel input (p = 3 k^2)", choices=CHANNELS)
    filters: list[int] = option([16, 64, 256], "numbers of filters N", minimum=1, metavar="N1,N2")
    kernel: list[int] = option([3, 5, 7], "filter sides k, p = k^2", minimum=1, metavar="K1,K2")
    seeds: int = option(3, "random networks per setting and image", minimum=1)
    c: float = option(0.5, "weight standard deviation c", above=0)
    stride: int = option(1, "convolution stride", minimum=1)


KEYS = ("cos_x", "cos_E", "scale", "ratio_printed", "ratio_derived", "ratio_sd_pred", "ratio_E",
        "border_centre", "pred_coverage", "pred_expectation", "residual_x", "residual_E",
        "residual_E_pred")


def _checked(config: Config) -> tuple:
    """The validated grid: (size, filters, kernel, seeds, stride, c)."""
    if config.device not in ("cpu", "cuda"):
        raise NFRError(f"device must be 'cpu' or 'cuda', got {config.device!r}")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise NFRError("device 'cuda' requested but torch sees no CUDA GPU; use --device cpu")
    size = int(config.size)
    filters = sorted({int(n) for n in config.filters})
    kernel = sorted({int(k) for k in config.kernel})
    seeds, stride, c = int(config.seeds), int(config.stride), float(config.c)
    if not filters or filters[0] < 1:
        raise NFRError(f"--filters must be positive integers, got {filters}")
    if seeds < 1 or stride < 1 or not c > 0:
        raise NFRError(f"--seeds and --stride must be >= 1 and --c > 0, got {seeds}, {stride}, {c}")
    if not kernel or kernel[0] < 1 or 2 * (kernel[-1] - 1) >= size:
        raise NFRError(f"filter sides {kernel} need 1 <= k and a centre beyond the border band of "
                       f"width k - 1 in a {size} x {size} image (2 (k - 1) < size); use a larger "
                       f"--size or smaller --kernel")
    return size, filters, kernel, seeds, stride, c


def _predictions(x: np.ndarray, N: int, k: int, c: float, stride: int) -> dict:
    """What the theory predicts for image ``x`` with N filters of side k: the expectation E, the
    interior mask, the constants (printed and derived), the predicted spread and border ratios."""
    cin = x.shape[0]
    p = cin * k * k
    shape = x.shape if cin > 1 else x.shape[1:]
    x2 = x.reshape(shape)
    nrm = np.linalg.norm(ref.patches(x2, k, stride), axis=0)
    E = ref.expected_gbp(x2, k, N, c=c, stride=stride).reshape(x.shape)
    cov = ref.coverage(shape, k, stride).reshape(x.shape)
    full = cov == cov.max()
    kmax = float(cov.max())
    sx = float((x[full] ** 2).sum())
    # effective patch norm: the C0 for which c^2 p N / (2 pi C0) is the least-squares
    # factor of E s on x over the interior (= the common norm when all patches share it)
    sE = float((E[full] * x[full]).sum() / sx) if sx > 0 else float("nan")
    C0 = ref.derived_constant(c, p, N, 1.0) / sE if sE > 0 else float("nan")
    pc, dc = ref.paper_constant(c, p, N, C0), ref.derived_constant(c, p, N, C0)
    cst = dict(C0=C0, C0_mean=float(nrm.mean()), C0_min=float(nrm.min()), C0_max=float(nrm.max()),
               constant_printed=pc, constant_derived=dc,
               cos_Ex=float((E * x).sum() / (np.linalg.norm(E) * np.linalg.norm(x))))
    sd = math.sqrt((math.pi * C0 * math.sqrt(kmax) / (p * math.sqrt(N * sx))) ** 2
                   + _norm_var(p) / N) if sx > 0 else float("nan")
    return dict(p=p, E=E, full=full, sx=sx, pc=pc, dc=dc, cst=cst, sd=sd,
                noise_pred=ref.noise_prediction(x2, k, stride) / math.sqrt(N),
                pred_cov=border_centre_ratio(cov, k - 1), pred_E=border_centre_ratio(E, k - 1))


def _measure(acc: dict, s: np.ndarray, x: np.ndarray, pr: dict, k: int) -> None:
    """Append one draw's measures (map ``s`` of image ``x``, predictions ``pr``) to ``acc``."""
    E, full, sx = pr["E"], pr["full"], pr["sx"]
    scale = float((s[full] * x[full]).sum() / sx) if sx > 0 else float("nan")
    ns = np.linalg.norm(s)
    acc["cos_x"].append(float((s * x).sum() / (ns * np.linalg.norm(x))) if ns else float("nan"))
    acc["cos_E"].append(float((s * E).sum() / (ns * np.linalg.norm(E))) if ns else float("nan"))
    acc["scale"].append(scale)
    acc["ratio_printed"].append(scale / pr["pc"])
    acc["ratio_derived"].append(scale / pr["dc"])
    acc["ratio_sd_pred"].append(pr["sd"])
    acc["ratio_E"].append(float((s * E).sum() / (E * E).sum()))
    acc["border_centre"].append(border_centre_ratio(s, k - 1))
    acc["pred_coverage"].append(pr["pred_cov"])
    acc["pred_expectation"].append(pr["pred_E"])
    acc["residual_x"].append(float(np.linalg.norm(s / scale - x) / np.linalg.norm(x))
                             if scale else float("nan"))
    acc["residual_E"].append(float(np.linalg.norm(s - E) / np.linalg.norm(E)))
    acc["residual_E_pred"].append(pr["noise_pred"])


@B.experiment("nie", "TR-GBP paper Sec. 3.2 / Fig 2: reconstruction theorem on random three-layer CNNs")
def run(config: Config) -> B.Result:
    size, filters, kernel, seeds, stride, c = _checked(config)
    seed, data, channels = config.seed, config.data, config.channels
    xs, names = nie_images(data, config.n_images or None, size, channels, seed)
    dev = torch.device(config.device)
    settings, example = [], None
    grid = [(N, k) for k in kernel for N in filters]
    for N, k in tqdm(grid, desc="nie (N, k)", disable=config.quiet, leave=False):
        acc = {key: [] for key in KEYS}
        consts = {}
        for ii, x in enumerate(xs):
            pr = _predictions(x, N, k, c, stride)
            consts["p"] = pr["p"]
            for key, v in pr["cst"].items():
                consts.setdefault(key, []).append(v)
            xt = torch.from_numpy(x).to(dev)
            for si in range(seeds):
                s = draw_gbp(xt, N, k, c, stride, _seed_for(seed, ii, si, N, k)).cpu().numpy()
                _measure(acc, s, x, pr, k)
                if example is None or (k == kernel[0] and N == filters[-1] and ii == 0 and si == 0):
                    example = dict(N=N, k=k, x=x, s=s, E=pr["E"])
        settings.append(dict(N=N, k=k, **consts, **{key: B.stats(v) for key, v in acc.items()}))

    def mean(N, k, key):
        return _mean(settings, N, k, key)
    t4 = dict(filters=filters, kernel=kernel,
              p=[int(xs[0].shape[0]) * k * k for k in kernel],
              residual_x={k: [mean(N, k, "residual_x") for N in filters] for k in kernel},
              residual_E={k: [mean(N, k, "residual_E") for N in filters] for k in kernel},
              residual_E_pred={k: [mean(N, k, "residual_E_pred") for N in filters] for k in kernel},
              slope_E={k: _loglog_slope(filters, [mean(N, k, "residual_E") for N in filters])
                       for k in kernel},
              slope_x={k: _loglog_slope(filters, [mean(N, k, "residual_x") for N in filters])
                       for k in kernel})
    cfg = dict(data=str(data), n_images=len(xs), inputs=names, size=size, channels=channels, c=c,
               stride=stride, filters=filters, kernel=kernel, seeds=seeds, seed=int(seed),
               device=config.device, Z=1.0)
    result = dict(experiment="nie", config=cfg, settings=settings, t4=t4)
    return B.Result(result, arrays=dict(example=example))


def _mean(settings, N, k, key) -> float:
    return next(st[key]["mean"] for st in settings if st["N"] == N and st["k"] == k)


def figures(result: B.Result) -> dict:
    ex, t4, settings = result.arrays["example"], result["t4"], result["settings"]
    filters, kernel, names = t4["filters"], t4["kernel"], result["config"]["inputs"]
    fig = B.new_figure(figsize=(17, 3.3))
    ax = fig.subplots(1, 5)

    def show(a, arr, title):
        im = arr.mean(0) if arr.shape[0] > 1 else arr[0]
        a.imshow(im, cmap="gray")
        a.set_title(title, fontsize=8)
        a.axis("off")
    show(ax[0], ex["x"], f"x ({names[0]})")
    show(ax[1], ex["s"], f"GBP, N = {ex['N']}, k = {ex['k']}")
    show(ax[2], ex["E"], r"E GBP $\propto \sum_j D_j^T c_j/\|c_j\|$")
    for i, k in enumerate(kernel):
        col = f"C{i}"
        ax[3].loglog(filters, t4["residual_x"][k], "o-", color=col, ms=3, label=f"k = {k}: to x")
        ax[3].loglog(filters, t4["residual_E"][k], "s--", color=col, ms=3, label=f"k = {k}: to E s")
        ax[3].loglog(filters, t4["residual_E_pred"][k], ":", color="k", lw=0.8)
    ax[3].set_xlabel("number of filters N")
    ax[3].set_ylabel("relative residual")
    ax[3].set_title(r"T4: $\|s/\mathrm{scale} - x\|/\|x\|$, $\|s - Es\|/\|Es\|$ (dotted: theory)", fontsize=7)
    ax[3].legend(fontsize=6)
    for j, N in enumerate(filters):
        ax[4].plot(t4["p"], [_mean(settings, N, k, "ratio_derived") for k in kernel], "o-", ms=3,
                   color=f"C{j}", label=f"N = {N}: derived")
        ax[4].plot(t4["p"], [_mean(settings, N, k, "ratio_printed") for k in kernel], "s--", ms=3,
                   color=f"C{j}", label=f"N = {N}: printed")
    ax[4].axhline(1, color="k", lw=0.6)
    ax[4].set_xlabel("filter size p")
    ax[4].set_ylabel("fitted scale / constant")
    ax[4].set_title("fitted scale over the derived / printed constant", fontsize=7)
    ax[4].legend(fontsize=6)
    fig.tight_layout()
    return {"nie.png": fig}


def summary(result: B.Result) -> str:
    return "\n".join(
        f"  N {st['N']:5d} k {st['k']}: cos(s,x) {st['cos_x']['mean']:.3f}  scale/printed "
        f"{st['ratio_printed']['mean']:.3f}  scale/derived {st['ratio_derived']['mean']:.3f}  "
        f"border/centre {st['border_centre']['mean']:.3f} (coverage "
        f"{st['pred_coverage']['mean']:.3f})  residual {st['residual_x']['mean']:.3f}"
        for st in result["settings"])
