"""Composites: which layer rule each weight layer l = 1..L uses, and how a composite is installed.

A rule of :func:`nfr.engine.attribute.attribute` ("gbp", "dtd", ...) is a *composite* of layer
rules ("grad", "gbp", "rectgrad", "zplus", "alphabeta", "zbox"), one per weight layer
(:func:`composite_for`; cascade substitution is a composite with the raw gradient below a cut).
:class:`Session` installs the rule states of one or more composites on a canonical graph
(:mod:`nfr.engine.canonize`) and removes them again; :func:`bottom_process` is the step B that
turns a map w/o B into the method's map (Table I of Zheng et al.).
"""
from __future__ import annotations

import torch

from nfr.engine.canonize import Gate, Tap, Weighted
from nfr.engine.rules import RuleState
from nfr.errors import NFRError

__all__ = ["composite_for", "Session", "bottom_process"]


#: the layer rule each attribution rule uses above its bottom layer (the activation rules: ``below``)
_BASE = {"grad": "grad", "grad_x_input": "grad", "gbp": "gbp", "rectgrad": "rectgrad", "zplus": "zplus",
         "alphabeta": "alphabeta", "dtd": "zplus", "activation": None, "activation_max": None,
         "activation_min": None}


def composite_for(rule: str, L: int, *, bottom: bool = True, upto: int | None = None,
                  below: str = "grad") -> dict:
    """Map layer index l = 1..L to a layer rule ("grad", "gbp", "rectgrad", "zplus", "alphabeta",
    "zbox").

    ``rule`` applies to layers l > L - ``upto`` (``upto=None``: all L layers), the raw gradient
    below: this is cascade substitution (Definition 3, eq 19) at level N = ``upto``. For "dtd"
    layer 1 is "zbox" (``bottom=True``) or the raw gradient (``bottom=False``, "R w/o B").
    For the activation rules the layers at and below the start layer use ``below``.

    Parameters
    ----------
    rule : str
        A rule of :func:`nfr.engine.attribute.attribute`.
    L : int
        The number of weight layers.
    bottom : bool
        For ``"dtd"``: layer 1 is ``"zbox"`` (True, default) or ``"grad"`` (False).
    upto : int, optional
        The cascade level N: ``rule`` applies to the top N layers only (None: all L).
    below : str
        The layer rule of the activation rules. Default ``"grad"``.

    Returns
    -------
    dict
        Layer index l (1..L) -> layer rule name.

    Raises
    ------
    nfr.NFRError
        For an unknown ``rule``.
    """
    if rule not in _BASE:
        raise NFRError(f"composite_for: unknown rule {rule!r}; choose one of {sorted(_BASE)}")
    base = below if rule.startswith("activation") else _BASE[rule]
    n = L if upto is None else upto
    comp = {l: (base if l > L - n else "grad") for l in range(1, L + 1)}
    if rule == "dtd" and n >= L:
        comp[1] = "zbox" if bottom else "grad"
    return comp


class Session:
    """Install RuleStates on a canonical GraphModule; ``close()`` removes them (in finally).

    Parameters
    ----------
    gm : torch.fx.GraphModule
        A canonical graph (:mod:`nfr.engine.canonize`) with its ``nfr_layers``.
    comps : list of dict
        The composites (l -> layer rule) the session will use; they decide which modules run
        through the custom backward at all.
    q : float
        RectGrad's quantile level.
    eps : float
        Stabiliser of the denominators of the z+, alpha-beta and z^B rules.
    low, high : float or torch.Tensor
        The z^B box bounds (read only by ``"zbox"`` layers).
    keep : collection of int
        Layers l whose output A_l is stored (read with ``output(l)``). Default ``()``.
    alpha, beta : float
        The LRP-alpha-beta weights. Default 1.0 and 0.0.
    """

    def __init__(self, gm, comps, *, q, eps, low, high, keep=(), alpha=1.0, beta=0.0):
        self.gm = gm
        self.layers = gm.nfr_layers
        self.gates, self.weights = {}, {}
        modes = {l.index: {c[l.index] for c in comps} for l in self.layers}
        for lay in self.layers:
            used = modes[lay.index]
            w = gm.get_submodule(lay.weight)
            st = RuleState(custom=bool(used & {"zplus", "alphabeta", "zbox"}), q=q, eps=eps,
                           low=low, high=high, gated=bool(lay.gates), keep=lay.index in keep and
                           not lay.gates, extra={"alpha": alpha, "beta": beta})
            w.nfr_state = st
            self.weights[lay.index] = st
            gs = []
            for i, gname in enumerate(lay.gates):
                gst = RuleState(custom=bool(used & {"gbp", "rectgrad"}), q=q,
                                keep=(i == 0 and lay.index in keep))
                gm.get_submodule(gname).nfr_state = gst
                gs.append(gst)
            self.gates[lay.index] = gs
        # gates before the first layer (index 0) get a plain state too (raw gradient)
        for m in gm.modules():
            if isinstance(m, Gate) and m.nfr_state is None:
                m.nfr_state = RuleState()

    def set(self, comp):
        for l, st in self.weights.items():
            r = comp[l]
            st.mode = r if r in ("zplus", "alphabeta", "zbox") else "grad"
            for g in self.gates[l]:
                g.mode = r if r in ("gbp", "rectgrad") else "grad"

    def output(self, l):
        st = self.gates[l][0] if self.gates[l] else self.weights[l]
        return st.output

    def close(self):
        for m in self.gm.modules():
            if isinstance(m, (Gate, Weighted, Tap)):
                m.nfr_state = None


def bottom_process(rule, x, r):
    """The bottom process B of ``rule`` applied to its map w/o B ``r`` (r_0, or c_0 for the LRP
    rules): x * r for grad_x_input, zplus, alphabeta (and dtd's raw-gradient form); relu(x * r)
    for rectgrad; r itself for grad, gbp and activation. (dtd's own bottom process is the z^B rule
    at layer 1, which :func:`nfr.engine.attribute.attribute` runs with ``bottom=True``.)

    Parameters
    ----------
    rule : str
        The rule of :func:`nfr.engine.attribute.attribute`.
    x : torch.Tensor
        The input.
    r : torch.Tensor
        The map w/o B, shaped like ``x``.

    Returns
    -------
    torch.Tensor
        The map R.
    """
    if rule in ("grad_x_input", "zplus", "alphabeta", "dtd"):
        return x * r
    if rule == "rectgrad":
        return torch.relu(x * r)
    return r
