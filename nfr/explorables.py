"""The data behind the book's two explorables: interactive figures that work in the static HTML.

The rendered book has no kernel, so an explorable is a small script (``book/_static/explorables/
explorables.js``) that draws from precomputed numbers. This module computes those numbers with the
package's own code and writes them as JavaScript data files beside the script:

- ``theorem1``: Theorem 1 of Zheng et al. as the hidden width ``N`` grows: the alignment
  ``alpha(R, x)`` of the raw gradient, GBP and RectGrad in random one-hidden-layer ReLU networks
  (``nfr.reference.theorem1.width_sweep``, the sweep of chapter 2) for three weight laws
  (Gaussian, uniform on the sphere, uniform entries) and two inputs (``d = 2`` at 30 degrees and
  ``d = 64``), with the predicted rate ``1 - alpha ~ kappa_d / (2 N)`` where it is known in closed
  form and the law's limit ``cos(E[w 1(<w,x> > 0)], x)``.
- ``cascade``: cascade substitution (Definition 3; chapter 5) on the VGG16-layout CIFAR-10 network,
  trained and at random initialisation: every level ``N = 0..16``, the map of each rule and its
  alignment, for a few CIFAR-10 test images shipped with the package.

``python -m nfr.explorables`` rewrites the data files (``--check`` compares instead of writing);
``tests/test_explorables.py`` recomputes a part of each and ``tests/test_browser.py`` drives the
widgets in a browser.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nfr.data import CIFAR10_CLASSES
from nfr.engine import attribute as engine
from nfr.errors import NFRError
from nfr.plotting import LABELS, rgb_map, to_image
from nfr.reference import theorem1 as t1
from nfr.setup import load_setup

__all__ = ["theorem1_data", "cascade_data", "to_js", "write", "read", "main", "STATIC"]

#: where the book's explorables live (script and data files)
STATIC = Path(__file__).resolve().parents[1] / "book" / "_static" / "explorables"

T1_RULES = ("grad", "gbp", "rectgrad")
T1_LAWS = {"gaussian": "Gaussian N(0, 1/d)", "sphere": "uniform on the unit sphere (a ring for d = 2)",
           "uniform": "uniform entries U[-1, 1] (a square, a cube)"}
CASCADE_RULES = ("gbp", "rectgrad", "zplus")
CASCADE_NETS = {"trained": "pretrained", "random": "random"}


def _t1_input(d: int, seed: int) -> np.ndarray:
    """The input of chapter 2: ``d = 2`` at 30 degrees; otherwise ``N(0, I_d)`` drawn with ``(seed, d)``."""
    if d == 2:
        return np.array([np.cos(np.pi / 6), np.sin(np.pi / 6)])
    return np.random.default_rng([seed, d]).standard_normal(d)


def _limit(x: np.ndarray, law: str) -> float:
    """The law's limit of ``alpha(R_GBP, x)`` as ``N`` grows: ``cos(E[w 1(<w,x> > 0)], x)``."""
    if law == "uniform":
        return float(t1.cosine(t1.cube_half_mean(x), x))
    return 1.0          # isotropic laws: the mean direction is x itself


def theorem1_data(dims=(2, 64), widths=None, n_seeds: int = 24, seed: int = 0, q: float = 0.9,
                  laws=tuple(T1_LAWS), progress: bool = False) -> dict:
    """Alignment against width for the Theorem 1 explorable.

    Parameters
    ----------
    dims : tuple of int
        Input dimensions ``d`` (``d = 2``: the input at 30 degrees; otherwise ``N(0, I_d)`` drawn
        with the generator ``(seed, d)``, as in chapter 2). Default ``(2, 64)``.
    widths : sequence of int, optional
        Hidden widths ``N``. Default ``4, 8, ..., 16384``.
    n_seeds : int
        Networks per width (seeds ``0..n_seeds-1`` of ``nfr.reference.theorem1.width_sweep``).
        Default 24.
    seed : int
        The sweep's seed (and the input's). Default 0.
    q : float
        RectGrad's quantile. Default 0.9.
    laws : tuple of str
        Weight laws, a subset of ``"gaussian"``, ``"sphere"``, ``"uniform"``.
    progress : bool
        Show a progress bar. Default False.

    Returns
    -------
    dict
        JSON-ready: ``widths``, ``rules``, ``laws`` (name -> description), ``dims``, and
        ``sweeps[str(d)][law]`` with ``mean``/``lo``/``hi`` per rule (mean and 10%/90% quantiles of
        ``alpha`` over networks, one value per width, rounded to 5 decimals), ``limit`` (the law's
        limit of GBP's alignment) and ``kappa`` (``N E[tan^2]`` predicted, or None where no closed
        form is known: then no rate is drawn).

    Raises
    ------
    NFRError
        If a law is unknown.
    """
    widths = [int(w) for w in (widths if widths is not None else 2 ** np.arange(2, 15))]
    bad = [law for law in laws if law not in T1_LAWS]
    if bad:
        raise NFRError(f"theorem1_data: unknown weight law(s) {bad}; use {list(T1_LAWS)}")
    out = dict(widths=widths, rules={r: LABELS[r] for r in T1_RULES}, laws={law: T1_LAWS[law] for law in laws},
               dims=[int(d) for d in dims], n_seeds=int(n_seeds), seed=int(seed), q=float(q), sweeps={})
    jobs = [(d, law) for d in dims for law in laws]
    for d, law in tqdm(jobs, desc="theorem 1 sweeps", disable=not progress):
        x = _t1_input(int(d), seed)
        sw = t1.width_sweep(x, widths, n_seeds, law, seed, q)
        entry = dict(limit=round(_limit(x, law), 5),
                     kappa=round(t1.kappa(int(d), law), 5) if law in ("gaussian", "sphere") else None)
        for r in T1_RULES:
            a = sw["alpha"][:, :, t1.RULES.index(r)]
            lo, hi = np.quantile(a, [0.1, 0.9], axis=1)
            entry[r] = dict(mean=np.round(a.mean(axis=1), 5).tolist(), lo=np.round(lo, 5).tolist(),
                            hi=np.round(hi, 5).tolist())
        out["sweeps"].setdefault(str(int(d)), {})[law] = entry
    return out


def _png(rgb: np.ndarray) -> str:
    """An (H, W, 3) array in [0, 1] as a base64 PNG data URL (8 bits per channel)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def cascade_data(n_images: int = 3, seed: int = 0, rules=CASCADE_RULES, nets=tuple(CASCADE_NETS),
                 progress: bool = False) -> dict:
    """Maps and alignment of cascade substitution at every level for the cascade explorable.

    Parameters
    ----------
    n_images : int
        CIFAR-10 test images shipped with the package (``data="samples"``). Default 3.
    seed : int
        Seed of the image choice and of the random network's weights. Default 0.
    rules : tuple of str
        Rules of the top ``N`` layers (the layers below use the raw gradient). Default GBP,
        RectGrad and LRP-z+.
    nets : tuple of str
        ``"trained"`` (the committed VGG16-layout CIFAR-10 weights) and/or ``"random"`` (its
        random-initialisation twin drawn with ``seed``).
    progress : bool
        Show a progress bar. Default False.

    Returns
    -------
    dict
        JSON-ready: ``levels`` (0..L), ``rules`` (name -> label), ``images`` (data URLs of the
        inputs), ``labels``, ``classes`` (CIFAR-10's class names), and ``nets[net]`` with ``target`` (the class explained: the network's
        prediction), ``alpha[rule]`` (``[image][level]``, 4 decimals; computed in float64) and
        ``maps[rule]`` (``[image][level]`` PNG data URLs: each map scaled to its own maximum
        ``|R|``, grey = 0, as ``nfr.plotting.rgb_map``).

    Raises
    ------
    NFRError
        If a network or rule is unknown.
    """
    bad = [n for n in nets if n not in CASCADE_NETS] + [r for r in rules if r not in LABELS]
    if bad:
        raise NFRError(f"cascade_data: unknown network or rule {bad}; networks {list(CASCADE_NETS)}, "
                       f"rules from {list(LABELS)}")
    out = dict(model="cifar_vgg16", rules={r: LABELS[r] for r in rules}, seed=int(seed), nets={},
               classes=list(CIFAR10_CLASSES))
    for net in tqdm(list(nets), desc="cascade explorable", disable=not progress):
        s = load_setup("cifar_vgg16", CASCADE_NETS[net], "samples", n_images, seed=seed, dtype="float64")
        out.setdefault("images", [_png(to_image(xi)) for xi in s.x])
        out.setdefault("labels", [int(v) for v in s.labels])
        entry = dict(target=[int(t) for t in s.target], alpha={}, maps={})
        for r in rules:
            C = engine.cascade(s.model, s.x, s.target, r)              # [levels, images, 3, H, W]
            out.setdefault("levels", list(range(C.shape[0])))
            A = np.stack([engine.alignment(C[n], s.x).cpu().numpy() for n in range(C.shape[0])], 1)
            entry["alpha"][r] = np.round(A, 4).tolist()
            entry["maps"][r] = [[_png(rgb_map(C[n, i])) for n in range(C.shape[0])] for i in range(len(s.x))]
        out["nets"][net] = entry
    return out


def to_js(name: str, data: dict) -> str:
    """``data`` as a JavaScript file that registers it under ``window.NFR_EXPLORABLES[name]`` (a
    script tag loads it; ``fetch`` of a JSON file would fail when the book is opened from disk).

    Parameters
    ----------
    name : str
        The explorable's name.
    data : dict
        JSON-ready data.

    Returns
    -------
    str
        The file's text.
    """
    body = json.dumps(data, separators=(",", ":"), sort_keys=True)
    return (f"/* generated by `python -m nfr.explorables`: do not edit */\n"
            f"window.NFR_EXPLORABLES = window.NFR_EXPLORABLES || {{}};\n"
            f"window.NFR_EXPLORABLES[{json.dumps(name)}] = {body};\n")


def write(out: Path = STATIC, which=("theorem1", "cascade"), progress: bool = True) -> list[Path]:
    """Compute the explorables' data and write ``<name>-data.js`` into ``out``.

    Parameters
    ----------
    out : pathlib.Path
        The folder (the book's ``_static/explorables`` by default).
    which : tuple of str
        The explorables to write.
    progress : bool
        Show progress bars. Default True.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    makers = dict(theorem1=theorem1_data, cascade=cascade_data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in which:
        p = out / f"{name}-data.js"
        p.write_text(to_js(name, makers[name](progress=progress)))
        paths.append(p)
    return paths


def read(path: Path) -> dict:
    """The data of a file written by :func:`write`.

    Parameters
    ----------
    path : pathlib.Path
        A ``<name>-data.js`` file.

    Returns
    -------
    dict
        The data it registers.
    """
    text = Path(path).read_text()
    return json.loads(text[text.index("] = ") + 4:].rstrip().rstrip(";"))


def main(argv=None) -> int:
    """``python -m nfr.explorables [--out DIR] [--only NAME]``: rewrite the explorables' data.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status (0).
    """
    p = argparse.ArgumentParser(prog="python -m nfr.explorables", description=main.__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=STATIC, help="folder of the data files (default: the book's)")
    p.add_argument("--only", choices=("theorem1", "cascade"), help="write one explorable's data only")
    a = p.parse_args(argv)
    for path in write(a.out, (a.only,) if a.only else ("theorem1", "cascade")):
        print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
