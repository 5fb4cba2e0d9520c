"""Tests for nfr.models: CIFAR ResNet layout and checkpoints, torchvision loaders, EfficientNet-Lite0."""
import operator

import pytest
import torch
from torch import nn

import nfr.data as D
import nfr.models as M
from nfr.errors import NFRError



@pytest.mark.parametrize("depth", [20, 56])
def test_cifar_resnet_shapes_and_layout(depth):
    m = M.cifar_resnet(depth)
    assert not m.training
    with torch.no_grad():
        out = m(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10)
    n_conv = sum(isinstance(x, nn.Conv2d) for x in m.modules())
    n_lin = sum(isinstance(x, nn.Linear) for x in m.modules())
    assert (n_conv, n_lin) == (depth - 1, 1)
    # canonical: every relu is a distinct, not in-place module call; adds are not in-place
    gm = torch.fx.symbolic_trace(m)
    relu_calls = [n for n in gm.graph.nodes if n.op == "call_module" and isinstance(gm.get_submodule(n.target), nn.ReLU)]
    assert len(relu_calls) == len({n.target for n in relu_calls}) == 2 * (depth - 2) // 2 + 1
    assert all(not gm.get_submodule(n.target).inplace for n in relu_calls)
    funcs = {n.target for n in gm.graph.nodes if n.op in ("call_function", "call_method")}
    assert torch.relu not in funcs and nn.functional.relu not in funcs and "relu" not in funcs
    assert operator.iadd not in funcs and "add_" not in funcs
    assert sum(n.target is operator.add for n in gm.graph.nodes) == (depth - 2) // 2


def test_cifar_resnet_seeded_and_rng_untouched():
    state = torch.get_rng_state()
    a, b, c = M.cifar_resnet(20, seed=1), M.cifar_resnet(20, seed=1), M.cifar_resnet(20, seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.conv1.weight, c.conv1.weight)
    with pytest.raises(NFRError, match="6n\\+2"):
        M.cifar_resnet(21)


def test_shortcut_option_a():
    s = M.ShortcutA(32)
    x = torch.arange(2 * 16 * 4 * 4, dtype=torch.float32).reshape(2, 16, 4, 4)
    y = s(x)
    assert y.shape == (2, 32, 2, 2)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert float(y[:, :8].abs().sum()) == 0 and float(y[:, 24:].abs().sum()) == 0


def test_resnet56_foolbox_20_of_20():
    m = M.load_cifar_resnet(56)
    assert not m.training and m.depth == 56
    raw = torch.load(D.resource(M.CIFAR_RESNET_FILES[56]), map_location="cpu",
                     weights_only=False)["state_dict"]
    ours = {k for k in m.state_dict() if not k.endswith("num_batches_tracked")}  # not in the old file
    assert {k.replace("module.", "", 1) for k in raw} == ours
    x, y = D.foolbox_cifar10()
    with torch.no_grad():
        pred = m(D.normalize(x)).argmax(1)
    assert int((pred == y).sum()) == 20


def test_resnet20_on_jpeg_subset():
    # ResNet-20 gets 81.0% on the whole lossy JPEG test copy; 300 images: s.e. ~2.3%
    m = M.load_cifar_resnet(20)
    x, y = D.cifar10_test(n=300, seed=0)
    with torch.no_grad():
        acc = float((m(D.normalize(x)).argmax(1) == y).float().mean())
    assert 0.72 < acc < 0.90


def test_load_cifar_resnet_errors(tmp_path):
    with pytest.raises(NFRError, match="akamaster"):
        M.load_cifar_resnet(tmp_path / "resnet56-missing.th")
    with pytest.raises(NFRError, match="ResNet-32"):
        M.load_cifar_resnet(32)
    bad = tmp_path / "bad.th"
    torch.save({"state_dict": {"module.foo": torch.zeros(1)}}, bad)
    with pytest.raises(NFRError, match="not a CIFAR ResNet"):
        M.load_cifar_resnet(bad)


def test_load_cifar_resnet_from_user_path(tmp_path):
    m = M.cifar_resnet(20, seed=3)
    p = tmp_path / "mine.th"
    torch.save({"state_dict": {"module." + k: v for k, v in m.state_dict().items()}}, p)
    m2 = M.load_cifar_resnet(p)
    assert m2.depth == 20 and not m2.training
    assert all(torch.equal(v, m2.state_dict()[k]) for k, v in m.state_dict().items())


def test_torchvision_random_seeded_eval_and_paths(tmp_path):
    state = torch.get_rng_state()
    a = M.torchvision_model("resnet18", seed=0)
    b = M.torchvision_model("resnet18", seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert not a.training and torch.equal(a.conv1.weight, b.conv1.weight)
    assert not torch.equal(a.conv1.weight, M.torchvision_model("resnet18", seed=1).conv1.weight)
    p = tmp_path / "r18.pt"
    torch.save({"module." + k: v for k, v in a.state_dict().items()}, p)
    c = M.torchvision_model("resnet18", p, seed=5)
    assert torch.equal(a.fc.weight, c.fc.weight)
    with pytest.raises(NFRError, match="unknown model"):
        M.torchvision_model("vgg19")
    with pytest.raises(NFRError, match="neither"):
        M.torchvision_model("alexnet", tmp_path / "nothing.pt")


def test_torchvision_imagenet_missing_gives_help(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        with pytest.raises(NFRError, match="download=True"):
            M.torchvision_model("alexnet", "imagenet")
    finally:
        torch.hub.set_dir(old)


def test_efficientnet_lite0_predicts_foolbox_photos():
    m = M.efficientnet_lite0()
    assert not m.training
    x, y = D.foolbox_imagenet()
    with torch.no_grad():
        logits = m(D.normalize(x, *D.EFFICIENTNET_LITE_STATS))
    top1 = int((logits.argmax(1) == y).sum())
    top5 = int((logits.topk(5, 1).indices == y[:, None]).any(1).sum())
    assert top1 >= 16 and top5 >= 19  # measured 17/20 and 20/20
    r = M.efficientnet_lite0(pretrained=False, seed=0)
    assert not r.training and not torch.equal(r._fc.weight, m._fc.weight)


@pytest.mark.parametrize("which", ["cifar_resnet56", "resnet18", "alexnet", "efficientnet_lite0"])
def test_registration_order_is_forward_order(which):
    # nfr.engine.weights numbers layers in registration order; it must be the forward order here
    from nfr.engine.weights import weight_layers
    if which == "cifar_resnet56":
        m, x = M.cifar_resnet(56), torch.rand(1, 3, 32, 32)
    elif which == "efficientnet_lite0":
        m, x = M.efficientnet_lite0(pretrained=False), torch.rand(1, 3, 224, 224)
    else:
        m, x = M.torchvision_model(which), torch.rand(1, 3, 224, 224)
    assert [n for n, _ in weight_layers(m)] == [n for n, _ in weight_layers(m, x)]


def test_cifar_vgg16_layout():
    """VGG16's 16 weight layers (13 conv + 3 linear) for 32 x 32 inputs, seeded, BN merged exactly."""
    import nfr
    from nfr.engine.weights import weight_layers
    m = M.cifar_vgg16(width=4, seed=0)
    convs = [l for l in m.modules() if isinstance(l, nn.Conv2d)]
    lins = [l for l in m.modules() if isinstance(l, nn.Linear)]
    assert len(convs) == 13 and len(lins) == 3 and len(weight_layers(m)) == 16
    assert [c.out_channels for c in convs] == [4, 4, 8, 8, 16, 16, 16, 32, 32, 32, 32, 32, 32]
    assert sum(isinstance(l, nn.MaxPool2d) for l in m.modules()) == 5
    assert torch.equal(M.cifar_vgg16(width=4, seed=0).features[0].weight, convs[0].weight)
    assert not torch.equal(M.cifar_vgg16(width=4, seed=1).features[0].weight, convs[0].weight)
    m = m.double()
    for bn in (l for l in m.modules() if isinstance(l, nn.BatchNorm2d)):  # non-trivial statistics
        bn.running_mean.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(1))
        bn.running_var.uniform_(0.5, 2.0, generator=torch.Generator().manual_seed(2))
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert m(x).shape == (2, 10)
    xg = x.clone().requires_grad_(True)
    m(xg)[:, 3].sum().backward()
    torch.testing.assert_close(nfr.attribute(m, x, 3, "grad"), xg.grad, rtol=1e-10, atol=1e-12)
    with pytest.raises(NFRError, match="width"):
        M.cifar_vgg16(width=0)


def test_trained_cifar_vgg16_ships_and_reaches_its_manifest_accuracy():
    """The trained VGG16-layout network (float16 weights): its manifest says 86.96% on the 10,000
    JPEG test images; 500 of them: s.e. ~1.5%."""
    from nfr.engine.weights import weight_layers
    from nfr.train import bundled_manifest, evaluate, load_bundled
    man = bundled_manifest("cifar_vgg16")
    model, atk = load_bundled("cifar_vgg16")
    assert atk is None and man["width"] == 32 and man["save_dtype"] == "float16" and man["n_test"] == 10000
    assert len(weight_layers(model.net)) == 16
    x, y = D.cifar10_test(n=500, seed=0)
    acc = evaluate(model, (x * 255).round().to(torch.uint8), y)["clean_accuracy"]
    assert abs(acc - man["clean_accuracy"]) < 0.05
