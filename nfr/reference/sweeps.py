"""Seeded experiments on toy networks that the chapters run (loops over seeds live here, not in
the notebooks). Every function takes a ``seed`` and returns plain numbers or arrays.
"""
from __future__ import annotations

import numpy as np

from nfr.reference.backprop import alignment, attribute, lrp, nfr_gaps
from nfr.reference.network import forward, random_network


def toy_image(n: int = 16) -> np.ndarray:
    """A deterministic signed ``n x n`` test pattern (a ring, a bar and a dot), zero mean, flattened.

    Being an image, it lets maps of toy networks be *seen*; being zero mean, a map cannot align
    with it merely by being positive.
    """
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1) * 2 - 1
    rad = np.hypot(xx + 0.15, yy + 0.1)
    img = np.exp(-((rad - 0.55) / 0.12) ** 2)                      # ring
    img += 0.8 * ((np.abs(xx - 0.55) < 0.12) & (np.abs(yy) < 0.7))  # vertical bar
    img += np.exp(-((xx + 0.15) ** 2 + (yy + 0.1) ** 2) / 0.02)    # dot in the ring
    img -= img.mean()
    return (img / np.linalg.norm(img)).ravel() * n


def random_case(seed: int, widths, dist: str = "gaussian", x: np.ndarray | None = None):
    """One random network, an input (``x`` or i.i.d. N(0,1)) and its predicted class ``k``.

    The predicted class is used as target: its logit is positive in all but degenerate cases,
    which is the situation the z+ rule is meant for.
    """
    rng = np.random.default_rng(seed)
    net = random_network(widths, rng, dist)
    x = rng.standard_normal(widths[0]) if x is None else np.asarray(x, dtype=np.float64)
    k = int(np.argmax(forward(net, x).logits))
    return net, x, k


def nfr_inequality_sweep(rule: str, seeds, widths, *, q: float = 0.9, tau: float | None = None,
                         normalise: bool = True) -> dict:
    """Eq 13 at every layer of many random networks.

    Returns the number of layer-cases, how many the filter changed, the violations
    (``gap <= 0`` although the filter changed the product, or ``gap < 0`` at all), and the
    smallest gap relative to ``|<A_{l-1}, W_l M_l r_l>|`` scale.
    """
    cases = changed = violations = equal = 0
    min_gap = np.inf
    for seed in seeds:
        net, x, k = random_case(seed, widths)
        for _, gap, ch in nfr_gaps(net, x, k, rule, q=q, tau=tau, normalise=normalise):
            cases += 1
            changed += ch
            tol = 1e-10
            equal += ch and abs(gap) <= tol
            violations += (ch and gap <= tol) or gap < -tol
            min_gap = min(min_gap, gap)
    return dict(rule=rule, cases=cases, changed=changed, violations=violations,
                equal_when_changed=equal, min_gap=float(min_gap))


def conservation_error(seeds, widths) -> float:
    """Largest ``|sum_i R_{l,i} - f_k|`` over the layers of the z+ pass, relative to ``|f_k|``."""
    worst = 0.0
    for seed in seeds:
        net, x, k = random_case(seed, widths)
        R = lrp(net, x, k, "zplus")
        f_k = R[-1][k]
        worst = max(worst, max(abs(r.sum() - f_k) for r in R[1:]) / abs(f_k))
    return float(worst)


def filter_vs_rule_error(seeds, widths) -> float:
    """Largest ``|x * r_0^{filter} - R_0^{z+ rule}|`` (Proposition 3 exact form vs eq 10)."""
    worst = 0.0
    for seed in seeds:
        net, x, k = random_case(seed, widths)
        worst = max(worst, np.abs(attribute(net, x, k, "zplus") - lrp(net, x, k, "zplus")[0]).max())
    return float(worst)


def ancona_error(seeds, widths) -> float:
    """Largest ``|LRP-z(x) - x * grad(x)|`` (Ancona et al.) on bias-free ReLU networks."""
    worst = 0.0
    for seed in seeds:
        net, x, k = random_case(seed, widths)
        worst = max(worst, np.abs(lrp(net, x, k, "z")[0] - attribute(net, x, k, "grad_x_input")).max())
    return float(worst)


def alignment_table(rules, seeds, widths, x: np.ndarray | None = None, *,
                    bottom_process: bool = False) -> dict[str, np.ndarray]:
    """``alpha(R, x)`` for each rule over random networks: ``{rule: array[len(seeds)]}``."""
    out = {rule: [] for rule in rules}
    for seed in seeds:
        net, xs, k = random_case(seed, widths, x=x)
        for rule in rules:
            R = attribute(net, xs, k, rule, bottom_process=bottom_process)
            out[rule].append(alignment(R, xs))
    return {rule: np.array(v) for rule, v in out.items()}
