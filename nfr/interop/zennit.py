"""Zennit rules and composites for the nfr rules that Zennit lacks: RectGrad.

Zennit (Anders et al., "Software for dataset-wide XAI: from local explanations to global
insights with Zennit, CoRelAy, and ViRelAy") attaches *rules* to modules through *composites*;
Guided Backprop is its ``GuidedBackprop`` composite (a rule on ``nn.ReLU``), which equals nfr's
``gbp``. Rectified Gradient (Kim et al., "Why are saliency maps noisy? Cause of and solution to
noisy saliency maps") is not in Zennit; :class:`ReLURectGrad` adds it as a rule on ReLU modules
and :class:`RectGrad` (registered in Zennit's composite registry as ``"rectgrad"``) applies it to
every ReLU:

    r_in = M (r * 1(A * r > tau)),  tau = the per-sample q-quantile of A * r,

with A the ReLU's output, r the gradient arriving at it, M = 1(A > 0) (the ReLU's own gradient
mask), the quantile over all units of that ReLU for each sample with linear interpolation
(``torch.quantile``), and the strict ``>`` (entries equal to tau are dropped, so with
tau = 0 only positive products pass). This is the gate rule of :func:`nfr.engine.attribute.attribute` with
``rule="rectgrad"``; nfr then returns R = relu(x * r_0) (:meth:`RectGrad.bottom`), while Zennit's
``Gradient`` attributor returns r_0 itself.

The rule keeps each call's output with that call's gradient hook, so it is also right for a
ReLU module called twice (torchvision's ResNet blocks); use Zennit's ``ResNetCanonizer`` for the
explicit skip sum and merged BatchNorm, as for its other composites.
"""
from __future__ import annotations

from nfr.errors import NFRError
from nfr.interop.deps import require

torch = require("torch", "nfr.interop.zennit")
require("zennit", "nfr.interop.zennit")

from zennit.composites import LayerMapComposite, register_composite  # noqa: E402
from zennit.core import Hook  # noqa: E402

__all__ = ["ReLURectGrad", "RectGrad", "rectgrad_gate"]


def rectgrad_gate(grad, output, q=0.9):
    """RectGrad's gate before the ReLU mask: ``grad * 1(output * grad > tau)`` per sample.

    Parameters
    ----------
    grad : torch.Tensor
        The gradient r arriving at the ReLU's output, ``[B, ...]``.
    output : torch.Tensor
        The ReLU's output A, same shape.
    q : float
        The quantile level in (0, 1).

    Returns
    -------
    torch.Tensor
        ``grad`` where A * r exceeds tau_b = quantile_q(A_b * r_b) (linear interpolation,
        ``torch.quantile``), 0 elsewhere. The ReLU's backward then multiplies by 1(A > 0).

    Raises
    ------
    NFRError
        If ``q`` is not in (0, 1) or the shapes differ.
    """
    if not 0.0 < float(q) < 1.0:
        raise NFRError(f"q must lie in (0, 1), got {q}")
    if grad.shape != output.shape:
        raise NFRError(f"grad has shape {tuple(grad.shape)} but output has {tuple(output.shape)}")
    p = (output * grad).reshape(grad.shape[0], -1)
    tau = torch.quantile(p, float(q), dim=1, keepdim=True, interpolation="linear")
    return grad * (p > tau).view_as(grad)


class ReLURectGrad(Hook):
    """Zennit rule for ``nn.ReLU`` modules: Rectified Gradient's gate (see :func:`rectgrad_gate`).

    Parameters
    ----------
    q : float, optional
        The per-sample quantile level of A * r above which the gradient passes (0.9).

    Raises
    ------
    NFRError
        If ``q`` is not in (0, 1).
    """

    def __init__(self, q=0.9):
        super().__init__()
        if not 0.0 < float(q) < 1.0:
            raise NFRError(f"ReLURectGrad: q must lie in (0, 1), got {q}")
        self.q = float(q)

    def copy(self):
        """A new hook with the same ``q`` (Zennit registers one copy per module).

        Returns
        -------
        ReLURectGrad
            The copy.
        """
        return self.__class__(q=self.q)

    def forward(self, module, input, output):
        """Attach the gate to this call's output tensor (its gradient is gated before the
        ReLU's own backward applies M = 1(A > 0)).

        Nothing is attached when ``output`` is not a tensor that requires grad.

        Parameters
        ----------
        module : torch.nn.Module
            The ReLU module (unused).
        input : tuple
            Its inputs (unused).
        output : torch.Tensor
            Its output A; the gate is registered as a hook on this tensor.
        """
        if not isinstance(output, torch.Tensor) or not output.requires_grad:
            return
        A = output.detach()
        q = self.q

        def gate(grad):
            return rectgrad_gate(grad, A, q)

        self.tensor_handles.append(output.register_hook(gate))


@register_composite("rectgrad")
class RectGrad(LayerMapComposite):
    """Zennit composite applying :class:`ReLURectGrad` to every ``nn.ReLU``.

    Parameters
    ----------
    q : float, optional
        Quantile level (0.9, as nfr and Kim et al.).
    layer_map : list of (module types, Hook), optional
        Prepended to the composite's own mapping (as Zennit's composites do).
    canonizers : list of zennit.canonizers.Canonizer, optional
        Applied before the rules are registered (e.g. ``zennit.torchvision.ResNetCanonizer``).

    Raises
    ------
    NFRError
        If ``q`` is not in (0, 1).
    """

    def __init__(self, q=0.9, layer_map=None, canonizers=None):
        self.q = float(q)
        layer_map = list(layer_map or []) + [(torch.nn.ReLU, ReLURectGrad(q))]
        super().__init__(layer_map=layer_map, canonizers=canonizers)

    @staticmethod
    def bottom(inputs, grad):
        """RectGrad's bottom process R = relu(x * r_0) (what ``nfr.attribute`` returns).

        Parameters
        ----------
        inputs : torch.Tensor
            The input x.
        grad : torch.Tensor
            r_0, the attribution returned by Zennit's ``Gradient`` attributor.

        Returns
        -------
        torch.Tensor
            relu(x * r_0).
        """
        return torch.relu(inputs * grad)
