"""NumPy reference: the readable specification of every rule of Zheng et al. (no torch import).

* :mod:`~nfr.reference.network` -- toy ReLU networks as explicit matrices, the forward pass;
* :mod:`~nfr.reference.rules` -- each rule for one layer, as the paper writes it (eqs 5-11);
* :mod:`~nfr.reference.filters` -- the same rules as filters ``F_l(W_l M_l)`` (Definition 2);
* :mod:`~nfr.reference.backprop` -- whole-network passes, bottom processes, cascade substitution,
  input alignment and the NFR inequality along a pass.
"""
from nfr.reference.backprop import (RULES, activation_backward, alignment, attribute, backward,
                                    bottom, cascade, layer_filter, lrp, nfr_gaps)
from nfr.reference.network import ToyNet, Forward, forward, random_network, sample_weights

__all__ = ["RULES", "ToyNet", "Forward", "activation_backward", "alignment", "attribute", "backward",
           "bottom", "cascade", "forward", "layer_filter", "lrp", "nfr_gaps", "random_network",
           "sample_weights"]
