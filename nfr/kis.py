"""Key Information Sufficiency (Zheng et al., eq 20 and Section V-B), its Insertion baselines, ROC-AUC
and a bimodality measure.

Notation. ``model`` maps a batch of *model inputs* x (N, C, H, W) -- already normalised the way the
model expects, e.g. ``nfr.data.normalize(img)`` -- to logits f(x). Its last fully connected layer is
f(x) = W A_L(x) + b, W of shape (K, D); A_L(x) in R^D are the *input features of the last fully
connected layer* (for the CIFAR ResNets: the global-average-pooled vector fed to ``linear``), and
v_k = W[k] is the weight row of the decided class k = argmax_j f_j(x).

Decision-change measure (the numerator/denominator of eq 20) for a substitute input x*:

    S(x*; x) = 1 - || v_k * A_L(x*) - v_k * A_L(x) ||_1 / || v_k * A_L(x) ||_1 ,   (* elementwise)

S = 1 when x* leaves the class-k evidence v_k * A_L untouched, S = 0 when x* moves it by as much as
its own L1 size, and S < 0 beyond that. The three scores of Fig 8 of Zheng et al. use three substitutes:

* **KIS** (eq 20): x* = R~, the attribution R min-max rescaled into the range of x
  (:func:`nfr.metrics.rescale_to_input_range`, per sample over all channels and pixels),
  R~ = (R - min R)(max x - min x) / (max R - min R) + min x;
* **Insertion**: x* = 1(R > mean R) * x + (1 - 1(R > mean R)) * baseline;
* **Insertion(ABS)**: x* = 1(``|R|`` > mean ``|R|``) * x + (1 - 1(``|R|`` > mean ``|R|``)) * baseline.

Conventions (documented choices where the paper is silent; see the book's pitfalls page, pitfall 11):

* *Input space.* ``x`` is the model input, i.e. the normalised tensor, and "the input's range" is
  [min x, max x] of that normalised tensor over all its channels and pixels: eq 20 read literally
  (the paper feeds R~ "to the model as input", and its x is the model input). Pass
  ``preprocess=nfr.data.normalize`` together with an un-normalised image in [0, 1] to rescale into
  the *image's* range instead and normalise R~ afterwards (an exercise of chapter 9 compares both).
* *Masks* are elementwise (per channel and pixel) and the means are taken per sample over all
  elements of R, as the paper's 1(R > R_bar) * x is written.
* *Insertion's "zero"* is 0 in the model's input space (``baseline=0.0``): the formula
  1(R > R_bar) * x taken literally, which for a normalised input is the data set's mean colour
  (grey), the usual zero baseline of insertion metrics on normalised tensors. A black pixel would
  be ``baseline=nfr.data.box_bounds()[0]`` (the normalised value of 0).

The caller's model is never modified: features are read with a forward hook on a private deep copy
(:class:`LastLinear`), which also finds the last ``nn.Linear`` of any model in *call* order.
"""
from __future__ import annotations

import copy
import weakref

import numpy as np
import torch
import torch.nn as nn

from nfr.engine.canonize import state_key
from nfr.errors import NFRError
from nfr.metrics import rescale_to_input_range
from nfr.stats import BIMODALITY_THRESHOLD, as_vector, bimodality_coefficient, roc_auc
from nfr.engine import attribute as engine

__all__ = ["LastLinear", "features", "decision_change", "kis", "insertion_input", "insertion",
           "scores", "evaluate", "roc_auc", "auc_difference", "summary", "c14_criterion", "bimodality_coefficient",
           "BIMODALITY_THRESHOLD"]



class LastLinear:
    """The last fully connected layer of ``model`` and a reader of its input features A_L(x).

    Works on a private ``copy.deepcopy`` of the model (in eval mode; train mode raises, see the
    book's pitfalls page, pitfall 12), so the caller's model gets no hook and its parameters stay
    bit-identical. The last ``nn.Linear`` is found in *call order* by one probe forward on
    ``x_probe`` (a linear module registered late but called early is not taken for the last one);
    without a probe, the last ``nn.Linear`` in registration order is used.

    ``self.weight`` (K, D) and ``self.bias`` (K,) are detached copies; ``self(x)`` returns
    ``(A_L, logits)`` with A_L of shape (N, D), computed without gradients.

    Parameters
    ----------
    model : torch.nn.Module
        The model, in eval mode.
    x_probe : torch.Tensor, optional
        An input batch; its first sample is run once to find the last ``nn.Linear`` called.

    Raises
    ------
    nfr.NFRError
        If ``model`` is not an ``nn.Module``, is in train mode, has no ``nn.Linear`` layer, or
        calls none in the probe forward.
    """

    def __init__(self, model: nn.Module, x_probe: torch.Tensor | None = None):
        if not isinstance(model, nn.Module):
            raise NFRError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if model.training:
            raise NFRError("the model is in train mode; call model.eval() first (BatchNorm/Dropout "
                           "would make the features depend on the batch)")
        self.model = copy.deepcopy(model).eval()
        linears = [(n, m) for n, m in self.model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise NFRError(f"{type(model).__name__} has no nn.Linear layer: KIS needs the input "
                           "features of the last fully connected layer")
        name, lin = linears[-1]
        if x_probe is not None:
            order: list = []
            hs = [m.register_forward_hook(lambda m, i, o, n=n: order.append(n)) for n, m in linears]
            try:
                with torch.no_grad():
                    self.model(x_probe[:1])
            finally:
                for h in hs:
                    h.remove()
            if not order:
                raise NFRError("no nn.Linear layer was called in the forward pass")
            name = order[-1]
            lin = self.model.get_submodule(name)
        self.name = name
        self.linear = lin
        self.weight = lin.weight.detach().clone()
        self.bias = None if lin.bias is None else lin.bias.detach().clone()
        self._feat: list = []
        lin.register_forward_hook(lambda m, i, o: self._feat.append(i[0].detach()))

    def __call__(self, x: torch.Tensor):
        self._feat.clear()
        with torch.no_grad():
            out = self.model(x)
        if not self._feat:
            raise NFRError(f"layer {self.name!r} was not called in the forward pass")
        A = self._feat[-1]
        self._feat.clear()
        return A.reshape(A.shape[0], -1) if A.dim() > 2 else A, out


#: model -> (state key, LastLinear): the private copy is made once per model and state
_READERS: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


def _reader(model, x):
    """A :class:`LastLinear` for ``model``, made once per model and reused while the model and its
    parameters are unchanged (:func:`nfr.engine.canonize.state_key`)."""
    if isinstance(model, LastLinear):
        return model
    key = state_key(model)
    hit = _READERS.get(model)
    if hit is not None and hit[0] == key:
        return hit[1]
    rd = LastLinear(model, x)
    _READERS[model] = (key, rd)
    return rd


def features(model, x: torch.Tensor):
    """``(A_L, W, logits)``: input features of the last fully connected layer, weight and logits.

    Parameters
    ----------
    model : torch.nn.Module or LastLinear
        The model (its reader is made once per model and state) or a reader.
    x : torch.Tensor
        Model inputs (N, C, H, W).

    Returns
    -------
    A_L : torch.Tensor
        The input features A_L(x) (N, D) of the last fully connected layer.
    W : torch.Tensor
        Its weight (K, D).
    logits : torch.Tensor
        The logits f(x) (N, K).
    """
    rd = _reader(model, x)
    A, out = rd(x)
    return A, rd.weight, out


def _change(rd, A, out, A_star, target):
    if target is None:
        k = out.argmax(1)
    else:
        k = torch.as_tensor(target, dtype=torch.long, device=out.device).reshape(-1)
        k = k.expand(A.shape[0]) if k.numel() == 1 else k
    v = rd.weight.to(A.dtype)[k]
    ref = (v * A).abs().sum(1)
    diff = (v * A_star - v * A).abs().sum(1)
    nan = torch.full_like(ref, float("nan"))
    return torch.where(ref > 0, 1 - diff / torch.where(ref > 0, ref, torch.ones_like(ref)), nan)


def decision_change(model, x: torch.Tensor, x_star: torch.Tensor, target=None) -> torch.Tensor:
    """S(x*; x) = 1 - ||v_k * A_L(x*) - v_k * A_L(x)||_1 / ||v_k * A_L(x)||_1 per sample (N,).

    v_k = W[k] the last-layer weight row, * elementwise.

    Parameters
    ----------
    model : torch.nn.Module or LastLinear
        The model or its feature reader.
    x : torch.Tensor
        Model inputs (N, C, H, W).
    x_star : torch.Tensor
        The substitutes x*, the same shape as ``x``.
    target : int or torch.LongTensor, optional
        k (an int or N class indices); by default the decided class argmax f(x).

    Returns
    -------
    torch.Tensor
        S per sample (N,); nan for a sample with v_k * A_L(x) = 0.

    Raises
    ------
    nfr.NFRError
        If ``x_star`` and ``x`` differ in shape.
    """
    if x_star.shape != x.shape:
        raise NFRError(f"x* has shape {tuple(x_star.shape)} but x has {tuple(x.shape)}")
    rd = _reader(model, x)
    A, out = rd(x)
    return _change(rd, A, out, rd(x_star)[0], target)


def kis(model, x: torch.Tensor, R: torch.Tensor, target=None, preprocess=None) -> torch.Tensor:
    """Key Information Sufficiency (eq 20 of Zheng et al.), per sample (N,):

        S = 1 - ||v_k * A_L(R~) - v_k * A_L(x)||_1 / ||v_k * A_L(x)||_1,
        R~ = (R - min R)(max x - min x) / (max R - min R) + min x   (per sample).

    Parameters
    ----------
    model : torch.nn.Module or LastLinear
        The model or its feature reader.
    x : torch.Tensor
        The model input (normalised), (N, C, H, W); R~ is rescaled into its range. With
        ``preprocess``: the raw image, and R~ is rescaled into the raw image's range.
    R : torch.Tensor
        The attribution, the same shape as ``x``.
    target : int or torch.LongTensor, optional
        k; by default the decided class argmax f(x).
    preprocess : callable, optional
        Applied to both ``x`` and R~ before the model (e.g. ``nfr.data.normalize``).

    Returns
    -------
    torch.Tensor
        S per sample (N,) (nan where v_k * A_L(x) = 0).

    Raises
    ------
    nfr.NFRError
        If ``R`` and ``x`` differ in shape.
    """
    if R.shape != x.shape:
        raise NFRError(f"R has shape {tuple(R.shape)} but x has {tuple(x.shape)}")
    Rt = rescale_to_input_range(R, x)
    if preprocess is not None:
        x, Rt = preprocess(x), preprocess(Rt)
    return decision_change(model, x, Rt.to(x.dtype), target)


def insertion_input(x: torch.Tensor, R: torch.Tensor, absolute: bool = False,
                    baseline=0.0) -> torch.Tensor:
    """The Insertion substitute: x where R > mean(R), ``baseline`` elsewhere.

    Means per sample over all non-batch elements, masks elementwise.

    Parameters
    ----------
    x : torch.Tensor
        Model inputs (N, ...).
    R : torch.Tensor
        The attribution, the same shape as ``x``.
    absolute : bool
        True: the mask is ``|R|`` > mean ``|R|``. Default False.
    baseline : float or torch.Tensor
        The value outside the mask, broadcastable to ``x``. Default 0.0.

    Returns
    -------
    torch.Tensor
        x*, shaped like ``x``.

    Raises
    ------
    nfr.NFRError
        If ``R`` and ``x`` differ in shape.
    """
    if R.shape != x.shape:
        raise NFRError(f"R has shape {tuple(R.shape)} but x has {tuple(x.shape)}")
    s = R.abs() if absolute else R
    mean = s.reshape(s.shape[0], -1).mean(1).reshape((-1,) + (1,) * (s.dim() - 1))
    keep = s > mean
    base = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    return torch.where(keep, x, base)


def insertion(model, x: torch.Tensor, R: torch.Tensor, target=None, absolute: bool = False,
              baseline=0.0) -> torch.Tensor:
    """Insertion (``absolute=False``) or Insertion(ABS) score.

    :func:`decision_change` of :func:`insertion_input` against x, per sample (N,).

    Parameters
    ----------
    model : torch.nn.Module or LastLinear
        The model or its feature reader.
    x : torch.Tensor
        Model inputs (N, C, H, W).
    R : torch.Tensor
        The attribution, the same shape as ``x``.
    target : int or torch.LongTensor, optional
        k; by default the decided class argmax f(x).
    absolute : bool
        False (default): Insertion; True: Insertion(ABS).
    baseline : float or torch.Tensor
        The value outside the mask, broadcastable to ``x``. Default 0.0.

    Returns
    -------
    torch.Tensor
        The score per sample (N,) (nan where v_k * A_L(x) = 0).
    """
    return decision_change(model, x, insertion_input(x, R, absolute, baseline), target)


def scores(model, x: torch.Tensor, R: torch.Tensor, target=None, baseline=0.0) -> dict:
    """The three scores of Fig 8 of Zheng et al. for one batch.

    One feature reader and one forward pass on x are shared by all three; equal to :func:`kis`
    and :func:`insertion` (``absolute`` False / True).

    Parameters
    ----------
    model : torch.nn.Module or LastLinear
        The model or its feature reader.
    x : torch.Tensor
        Model inputs (N, C, H, W).
    R : torch.Tensor
        The attribution, the same shape as ``x``.
    target : int or torch.LongTensor, optional
        k; by default the decided class argmax f(x).
    baseline : float or torch.Tensor
        The Insertion baseline, broadcastable to ``x``. Default 0.0.

    Returns
    -------
    dict
        ``{"kis", "insertion", "insertion_abs"}`` (tensors of shape (N,)).

    Raises
    ------
    nfr.NFRError
        If ``R`` and ``x`` differ in shape.
    """
    if R.shape != x.shape:
        raise NFRError(f"R has shape {tuple(R.shape)} but x has {tuple(x.shape)}")
    rd = _reader(model, x)
    A, out = rd(x)
    subs = {"kis": rescale_to_input_range(R, x).to(x.dtype),
            "insertion": insertion_input(x, R, False, baseline),
            "insertion_abs": insertion_input(x, R, True, baseline)}
    return {name: _change(rd, A, out, rd(xs)[0], target) for name, xs in subs.items()}


def evaluate(model, images: torch.Tensor, labels, preprocess=None, *, rule: str = "gbp",
             batch_size: int = 100, variants: bool = False, progress: bool = False) -> dict:
    """KIS, Insertion and Insertion(ABS) of ``rule``'s attributions on a data set, in batches.

    The attributions are for the decided class k = argmax f(x):
    R = ``engine.attribute(model, x, k, rule)`` (for GBP, R = r_0).

    Parameters
    ----------
    model : torch.nn.Module
        The model, in eval mode.
    images : torch.Tensor
        Raw images (N, C, H, W); the model sees x = ``preprocess(images)``.
    labels : numpy.ndarray or torch.Tensor
        The N true class indices.
    preprocess : callable, optional
        Raw images -> model inputs (identity if None).
    rule : str
        The rule of ``engine.attribute``. Default "gbp".
    batch_size : int
        Images per batch. Default 100.
    variants : bool
        Also compute ``kis_image``, ``insertion_black`` and ``insertion_abs_black``. Default False.
    progress : bool
        Show a ``tqdm`` progress bar over the batches. Default False.

    Returns
    -------
    dict
        NumPy arrays of length N: ``label``, ``pred`` (k = argmax f(x)), ``correct``
        (pred == label), ``kis``, ``insertion``, ``insertion_abs`` (:func:`scores` with
        ``baseline=0`` in the model's input space), and with ``variants=True`` also
        ``kis_image`` (R~ rescaled into the raw image's range, then ``preprocess``-ed:
        :func:`kis` with ``preprocess``) and ``insertion_black`` / ``insertion_abs_black``
        (baseline = ``preprocess`` of a black image).
    """
    prep = preprocess or (lambda t: t)
    rd = _reader(model, prep(images[:1]))
    black = prep(torch.zeros_like(images[:1, :, :1, :1]))
    keys = ["kis", "insertion", "insertion_abs"] + (
        ["kis_image", "insertion_black", "insertion_abs_black"] if variants else [])
    out = {k: [] for k in ["pred"] + keys}
    starts = range(0, images.shape[0], batch_size)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="kis", unit="batch")
    for i in starts:
        img = images[i:i + batch_size]
        x = prep(img)
        A, logits = rd(x)
        k = logits.argmax(1)
        R = engine.attribute(model, x, k, rule)
        subs = {"kis": rescale_to_input_range(R, x).to(x.dtype),
                "insertion": insertion_input(x, R, False),
                "insertion_abs": insertion_input(x, R, True)}
        if variants:
            subs["kis_image"] = prep(rescale_to_input_range(R, img).to(x.dtype))
            subs["insertion_black"] = insertion_input(x, R, False, black)
            subs["insertion_abs_black"] = insertion_input(x, R, True, black)
        out["pred"].append(k)
        for name, xs in subs.items():
            out[name].append(_change(rd, A, logits, rd(xs)[0], k))
    res = {k: torch.cat(v).cpu().numpy() for k, v in out.items()}
    res["label"] = as_vector(labels).astype(np.int64)
    res["correct"] = res["pred"] == res["label"]
    return res


def auc_difference(score_a, score_b, label, n_boot: int = 2000, seed: int = 0,
                   level: float = 0.95) -> dict:
    """AUC(a) - AUC(b) for predicting the same ``label``, with a paired bootstrap interval.

    Each of ``n_boot`` resamples draws the N samples with replacement (``numpy`` generator seeded by
    ``seed``; resamples with a single class are redrawn) and recomputes both :func:`nfr.stats.roc_auc`;
    ``lo`` / ``hi`` are the (1 - level)/2 and (1 + level)/2 percentiles of the differences.

    Parameters
    ----------
    score_a, score_b : array_like or torch.Tensor
        The two scores of the N samples.
    label : array_like or torch.Tensor
        The N labels (1/True = positive).
    n_boot : int
        The number of resamples. Default 2000.
    seed : int
        Seed of the ``numpy`` generator. Default 0.
    level : float
        The interval's coverage. Default 0.95.

    Returns
    -------
    dict
        ``{"diff", "lo", "hi"}`` (floats; all nan when ``label`` holds a single class).

    Raises
    ------
    nfr.NFRError
        If ``score_a``, ``score_b`` and ``label`` differ in length.
    """
    a, b, y = as_vector(score_a), as_vector(score_b), as_vector(label).astype(bool)
    if not (a.shape == b.shape == y.shape):
        raise NFRError("score_a, score_b and label must have the same length")
    if y.all() or not y.any():
        return {"diff": float("nan"), "lo": float("nan"), "hi": float("nan")}
    rng = np.random.default_rng(seed)
    n, diffs = y.size, []
    while len(diffs) < n_boot:
        i = rng.integers(0, n, n)
        if y[i].all() or not y[i].any():
            continue
        diffs.append(roc_auc(a[i], y[i]) - roc_auc(b[i], y[i]))
    lo, hi = np.percentile(diffs, [50 * (1 - level), 50 * (1 + level)])
    return {"diff": roc_auc(a, y) - roc_auc(b, y), "lo": float(lo), "hi": float(hi)}


def summary(res: dict, keys=("kis", "insertion", "insertion_abs")) -> dict:
    """Per score of an :func:`evaluate` result: AUC, bimodality, share below 0 and medians.

    Samples with a nan score (v_k * A_L(x) = 0) are dropped, per score.

    Parameters
    ----------
    res : dict
        An :func:`evaluate` result (the scores and ``correct``).
    keys : tuple of str
        The scores to summarise. Default ``("kis", "insertion", "insertion_abs")``.

    Returns
    -------
    dict
        Score name -> ``{"auc", "bc", "neg", "med_correct", "med_wrong", "n"}``: ``auc``
        (:func:`nfr.stats.roc_auc` for predicting ``correct``), ``bc`` (:func:`nfr.stats.bimodality_coefficient` over
        all samples), ``neg`` (share of scores below 0), the medians ``med_correct`` /
        ``med_wrong`` (nan when a group is empty) and ``n``, the number of samples kept.

    Raises
    ------
    nfr.NFRError
        If a score has fewer than 4 finite values (from :func:`bimodality_coefficient`).
    """
    out = {}
    for k in keys:
        v, c = np.asarray(res[k], dtype=float), np.asarray(res["correct"], dtype=bool)
        ok = np.isfinite(v)
        v, c = v[ok], c[ok]
        out[k] = {"auc": roc_auc(v, c), "bc": bimodality_coefficient(v), "neg": float((v < 0).mean()),
                  "med_correct": float(np.median(v[c])) if c.any() else float("nan"),
                  "med_wrong": float(np.median(v[~c])) if (~c).any() else float("nan"),
                  "n": int(ok.sum())}
    return out


def c14_criterion(summary_: dict, diff_insertion: dict) -> tuple[str, dict]:
    """The criterion of claim C14 (Fig 8 of Zheng et al.; chapter 9), fixed before measuring.

    (a) the bimodality coefficient of KIS exceeds 5/9; (b) AUC(KIS) > AUC(Insertion) with the
    bootstrap interval of the difference above 0 (``diff_insertion["lo"] > 0``, from
    :func:`auc_difference`); (c) AUC(Insertion) <= AUC(Insertion(ABS)) <= AUC(KIS).

    Parameters
    ----------
    summary_ : dict
        A :func:`summary` with keys kis, insertion, insertion_abs.
    diff_insertion : dict
        :func:`auc_difference` of KIS and Insertion (its ``"lo"`` is used).

    Returns
    -------
    verdict : str
        "confirmed" if (a), (b) and (c) hold, "refuted" if neither (a) nor (b), else "partly".
    parts : dict
        ``{"a": bool, "b": bool, "c": bool}``.
    """
    s = summary_
    parts = {"a": bool(s["kis"]["bc"] > BIMODALITY_THRESHOLD),
             "b": bool(diff_insertion["lo"] > 0),
             "c": bool(s["insertion"]["auc"] <= s["insertion_abs"]["auc"] <= s["kis"]["auc"])}
    if all(parts.values()):
        return "confirmed", parts
    return ("refuted" if not (parts["a"] or parts["b"]) else "partly"), parts
