"""Two experiments for ``python -m nfr``: Nie et al.'s reconstruction theorem (TR-GBP paper, Section 3.2
and Fig 2; ``nie``) and the layer-wise failure analysis (Zheng et al., Section V-A and Fig 7;
``failure``). Registered in :data:`nfr.experiments.EXPERIMENTS`.

``nie`` needs no trained network: it draws random three-layer CNNs (a convolution with N filters of
k x k pixels, a ReLU, a fully connected layer; all weights i.i.d. N(0, c^2)) and compares their
Guided Backprop (GBP) map with the theorem. Its GBP is computed in torch (:func:`gbp_conv`, chunked
over the filters so that thousands of filters fit in memory, on the CPU or a GPU) and is tested
against the NumPy reference :func:`nfr.reference.nie.gbp` in float64. The exact expectation of GBP,
the patch coverage and the noise prediction come from :mod:`nfr.reference.nie`.

``failure`` wraps :mod:`nfr.failure`: the maps started at each layer l (the activation A_l carried
to the input by a rule below), and what they keep of the input per start layer.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from nfr.errors import NFRError

__all__ = ["nie", "failure", "gbp_conv", "draw_gbp", "nie_images", "NIE_DATA"]

#: ``data`` values of :func:`nie` besides a path
NIE_DATA = ("signs", "samples", "skimage")
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
    import torch
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
    import torch
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
    """The inputs of :func:`nie`: float64 arrays (C_in, size, size) with unit norm, and their names.

    ``data``: ``"signs"`` (random signs +-1/sqrt(d), every patch of the same norm: the theorem's
    assumption, exactly; image i drawn with seed + i), ``"samples"`` (foolbox's ImageNet photos),
    ``"skimage"`` (scikit-image's photos), or a path: an image file, an ImageNet validation folder
    or a CIFAR-10 folder. Photos are made grey (``channels="gray"``, the channel mean, C_in = 1; the
    chapter's setting), split into their colour channels as three grey images (``"each"``), or kept
    as one 3-channel input (``"rgb"``, p = 3 k^2); then the mean is removed per channel and the
    norm set to 1.
    """
    from nfr.reference import nie as ref
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
        from nfr.data import load_image
        raw, names = load_image(p, size)[None], [p.name]
    else:
        if data not in NIE_DATA and not p.exists():
            raise NFRError(f"data {data!r} is neither 'signs', 'samples', 'skimage', an image file "
                           "nor an existing folder (ImageNet validation or CIFAR-10)")
        from nfr.experiments import load_data
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


def nie(data="signs", n_images=1, size=None, device="cpu", seed=0, filters=(16, 64, 256),
        kernel=(3, 5, 7), seeds=3, channels="gray", c=0.5, stride=1, out=None, progress=True,
        model=None, weights=None, **ignored) -> dict:
    """Section 3.2 of the TR-GBP paper and Fig 2: Nie et al.'s reconstruction theorem on random three-layer CNNs.

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
    slopes in N (the theory: -1/2). ``model`` / ``weights`` are rejected: the networks are drawn
    here. Figure ``nie.png``.
    """
    import torch
    from tqdm.auto import tqdm

    from nfr.experiments import _finish, _plt, _stats
    from nfr.metrics import border_centre_ratio
    from nfr.reference import nie as ref
    if model is not None or weights is not None:
        raise NFRError("the nie experiment draws its own random three-layer CNNs (weights N(0, c^2)); "
                       "--model and --weights do not apply: leave them out (use --filters, --kernel, "
                       "--seeds, --c)")
    if device not in ("cpu", "cuda"):
        raise NFRError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise NFRError("device 'cuda' requested but torch sees no CUDA GPU; use --device cpu")
    size = int(size) if size else 64
    filters = sorted({int(n) for n in filters})
    kernel = sorted({int(k) for k in kernel})
    seeds, stride, c = int(seeds), int(stride), float(c)
    if not filters or filters[0] < 1:
        raise NFRError(f"--filters must be positive integers, got {filters}")
    if seeds < 1 or stride < 1 or not c > 0:
        raise NFRError(f"--seeds and --stride must be >= 1 and --c > 0, got {seeds}, {stride}, {c}")
    if not kernel or kernel[0] < 1 or 2 * (kernel[-1] - 1) >= size:
        raise NFRError(f"filter sides {kernel} need 1 <= k and a centre beyond the border band of "
                       f"width k - 1 in a {size} x {size} image (2 (k - 1) < size); use a larger "
                       f"--size or smaller --kernel")
    xs, names = nie_images(data, n_images, size, channels, seed)
    dev = torch.device(device)
    keys = ("cos_x", "cos_E", "scale", "ratio_printed", "ratio_derived", "ratio_sd_pred", "ratio_E",
            "border_centre", "pred_coverage", "pred_expectation", "residual_x", "residual_E",
            "residual_E_pred")
    settings, example = [], None
    grid = [(N, k) for k in kernel for N in filters]
    for N, k in tqdm(grid, desc="nie (N, k)", disable=not progress, leave=False):
        acc = {key: [] for key in keys}
        consts = {}
        for ii, x in enumerate(xs):
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
            cst = dict(C0=C0, C0_mean=float(nrm.mean()),
                       C0_min=float(nrm.min()), C0_max=float(nrm.max()),
                       constant_printed=pc, constant_derived=dc,
                       cos_Ex=float((E * x).sum() / (np.linalg.norm(E) * np.linalg.norm(x))))
            consts["p"] = p
            for key, v in cst.items():
                consts.setdefault(key, []).append(v)
            sd = math.sqrt((math.pi * C0 * math.sqrt(kmax) / (p * math.sqrt(N * sx))) ** 2
                           + _norm_var(p) / N) if sx > 0 else float("nan")
            noise_pred = ref.noise_prediction(x2, k, stride) / math.sqrt(N)
            pred_cov = border_centre_ratio(cov, k - 1)
            pred_E = border_centre_ratio(E, k - 1)
            xt = torch.from_numpy(x).to(dev)
            for si in range(seeds):
                s = draw_gbp(xt, N, k, c, stride, _seed_for(seed, ii, si, N, k)).cpu().numpy()
                scale = float((s[full] * x[full]).sum() / sx) if sx > 0 else float("nan")
                ns = np.linalg.norm(s)
                acc["cos_x"].append(float((s * x).sum() / (ns * np.linalg.norm(x))) if ns else float("nan"))
                acc["cos_E"].append(float((s * E).sum() / (ns * np.linalg.norm(E))) if ns else float("nan"))
                acc["scale"].append(scale)
                acc["ratio_printed"].append(scale / pc)
                acc["ratio_derived"].append(scale / dc)
                acc["ratio_sd_pred"].append(sd)
                acc["ratio_E"].append(float((s * E).sum() / (E * E).sum()))
                acc["border_centre"].append(border_centre_ratio(s, k - 1))
                acc["pred_coverage"].append(pred_cov)
                acc["pred_expectation"].append(pred_E)
                acc["residual_x"].append(float(np.linalg.norm(s / scale - x) / np.linalg.norm(x))
                                         if scale else float("nan"))
                acc["residual_E"].append(float(np.linalg.norm(s - E) / np.linalg.norm(E)))
                acc["residual_E_pred"].append(noise_pred)
                if example is None or (k == kernel[0] and N == filters[-1] and ii == 0 and si == 0):
                    example = dict(N=N, k=k, x=x, s=s, E=E)
        settings.append(dict(N=N, k=k, **consts, **{key: _stats(v) for key, v in acc.items()}))

    def mean(N, k, key):
        return next(st[key]["mean"] for st in settings if st["N"] == N and st["k"] == k)
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
               device=device, Z=1.0)
    result = dict(experiment="nie", config=cfg, settings=settings, t4=t4, figures=[])

    plt = _plt()
    fig, ax = plt.subplots(1, 5, figsize=(17, 3.3))
    ex = example

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
        ax[4].plot(t4["p"], [mean(N, k, "ratio_derived") for k in kernel], "o-", ms=3, color=f"C{j}",
                   label=f"N = {N}: derived")
        ax[4].plot(t4["p"], [mean(N, k, "ratio_printed") for k in kernel], "s--", ms=3, color=f"C{j}",
                   label=f"N = {N}: printed")
    ax[4].axhline(1, color="k", lw=0.6)
    ax[4].set_xlabel("filter size p")
    ax[4].set_ylabel("fitted scale / constant")
    ax[4].set_title("fitted scale over the derived / printed constant", fontsize=7)
    ax[4].legend(fontsize=6)
    fig.tight_layout()
    return _finish("nie", result, out, {"nie.png": fig})


# ============================================================================== failure (Fig 7)
FAILURE_BELOW = ("gbp", "grad", "rectgrad", "zplus")


def failure(model="vgg16", weights="random", data="samples", n_images=4, size=None, device="cpu",
            seed=0, target="pred", batch_size=16, rules=None, layers=None, box_frac=0.5,
            n_show=4, out=None, progress=True,
            preprocess=None, download=False) -> dict:
    """Section V-A of Zheng et al. and Fig 7: layer-wise failure analysis (:mod:`nfr.failure`, chapter 8).

    For each start layer l in ``layers`` (default every hidden layer 1..L-1) the map R^(l) starts
    from the activation A_l and is carried to the input by the rule ``rules`` below (one of gbp
    (default, the chapter's choice), grad (the Activation of Table I of Zheng et al.), rectgrad,
    zplus), without bottom process. Per map: ``alignment`` alpha(R, x), ``colour`` (alignment of the
    colour parts), ``chroma`` (colour share of the map's energy) and ``outside`` (share of sum_c
    |R_c| outside the central box covering ``box_frac`` of height and width; a proxy for the
    object).

    Groups as in chapter 8: ``wrong`` and ``correct`` predictions when the data have labels, and
    ``all``. ``profiles[group][measure]``: mean, median, quartiles and std per start layer;
    ``per_image[measure]``: the values [len(layers), n_images]; ``summary``: the per-group trends of
    :func:`nfr.failure.summarize` (median Spearman rho between start layer and measure, median at
    the lowest / highest layer); ``fades``: chapter 8's criterion for claim C13 (median rho <= -0.5)
    per group for colour and outside; ``report``: :func:`nfr.failure.report`'s lines. The maps do
    not depend on the class (they start from A_l); ``target`` is not used. Figures ``failure.png``
    (one panel per measure, x = start layer, one line per group) and ``failure_strips.png`` (the
    maps of up to ``n_show`` images of the first batch, misclassified first, at up to 12 of the
    start layers spread evenly).
    """
    from nfr import failure as FA
    from nfr.experiments import (_batches, _finish, _num_layers, _rules, _setup_kwargs, _stats,
                                 load_setup)
    from nfr.plotting import layer_strips, measure_curves
    below = _rules(rules, ("gbp",), FAILURE_BELOW)
    if len(below) != 1:
        raise NFRError(f"the failure experiment takes one rule for the layers below, got {below}")
    below = below[0]
    if not 0 < float(box_frac) <= 1:
        raise NFRError(f"--box-frac must lie in (0, 1], got {box_frac}")
    s = load_setup(**_setup_kwargs(locals()))
    L = _num_layers(s.model)
    layers = list(range(1, L)) if layers is None else [int(l) for l in layers]
    bad = [l for l in layers if not 1 <= l < L]
    if bad or not layers:
        raise NFRError(f"start layers {bad or layers} out of range 1..{L - 1} (the model has L = {L} "
                       "weight layers; layer L is the output)")
    layers = sorted(set(layers))
    H, W = s.x.shape[-2:]
    box = FA.central_box(H, W, float(box_frac))
    parts, first_maps = [], None
    for sl in _batches(s, batch_size, progress, "failure"):
        M = FA.layer_maps(s.model, s.x[sl], layers, below).detach()
        xb = s.x[sl].detach()
        prof = FA.layer_profile(s.model, xb.cpu(), layers, box=box, maps=M.cpu())
        parts.append(prof)
        if first_maps is None:
            first_maps = (sl, M.cpu())
    prof = {m: np.concatenate([p[m] for p in parts], axis=-1) for m in parts[0]}
    n = len(s.x)
    preds = np.asarray(s.config["predictions"])
    groups = {}
    if s.labels is not None:
        lab = np.asarray(s.labels)
        wrong, right = np.nonzero(preds != lab)[0], np.nonzero(preds == lab)[0]
        if len(wrong):
            groups["wrong"] = wrong.tolist()
        if len(right):
            groups["correct"] = right.tolist()
    groups["all"] = list(range(n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # one layer: no trend (nan)
        summary = FA.summarize(layers, prof, groups)
        lines = FA.report(layers, prof, groups)

        def per_layer(v):
            v = np.asarray(v, dtype=float)
            q1, med, q3 = np.nanpercentile(v, [25, 50, 75], axis=1)
            return dict(mean=np.nanmean(v, 1).tolist(), median=med.tolist(), q25=q1.tolist(),
                        q75=q3.tolist(), std=np.nanstd(v, 1).tolist())
        profiles = {g: {m: per_layer(prof[m][:, idx]) for m in FA.MEASURES} for g, idx in groups.items()}
    fades = {g: {m: bool(summary[g][m]["trend"] <= -0.5) for m in ("colour", "outside")}
             for g in groups}
    cfg = dict(s.config, below=below, layers=layers, L=L, box=list(box), box_frac=float(box_frac))
    result = dict(experiment="failure", config=cfg, layers=layers, groups=groups, profiles=profiles,
                  per_image={m: prof[m].tolist() for m in FA.MEASURES},
                  input={"chroma": _stats(prof["input_chroma"]), "outside": _stats(prof["input_outside"])},
                  summary=summary, fades=fades, report=lines, figures=[])
    curves = {f"{g} ({len(idx)})": {m: prof[m][:, idx] for m in FA.MEASURES} for g, idx in groups.items()}
    fig = measure_curves(layers, curves, FA.MEASURES, labels={
        "alignment": "alignment", "colour": "colour (alignment)", "chroma": "saturation",
        "outside": "outside central box"})
    sl, M = first_maps
    idx0 = list(range(sl.stop - sl.start))
    order = sorted(idx0, key=lambda i: i + sl.start not in set(groups.get("wrong", [])))[:max(1, n_show)]
    titles = []
    for i in order:
        j = i + sl.start
        t = f"pred {preds[j]}"
        if s.labels is not None:
            t = f"label {s.labels[j]} -> {preds[j]}"
        titles.append(t)
    shown = sorted({int(round(v)) for v in np.linspace(0, len(layers) - 1, min(len(layers), 12))})
    fig2 = layer_strips(s.raw[[sl.start + i for i in order]].permute(0, 2, 3, 1).numpy(),
                        M[shown][:, order].numpy(), [layers[i] for i in shown], titles=titles)
    return _finish("failure", result, out, {"failure.png": fig, "failure_strips.png": fig2})
