"""The canonical form of a model is computed once per model and state, and a changed model or
its parameters are noticed (no stale graph is reused)."""
import pytest
import torch
import torch.nn as nn

import nfr
from nfr import NFRError
from nfr.engine import canonize as C


def _net(seed=0):
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 8 * 8, 5)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
        net[1].running_mean.copy_(torch.randn(4, generator=g, dtype=torch.float64))
    return net


def _count_traces(monkeypatch):
    calls = []
    real = C._canonize_once

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)
    monkeypatch.setattr(C, "_canonize_once", counting)
    return calls


def test_repeated_calls_trace_once(monkeypatch):
    calls = _count_traces(monkeypatch)
    net, x = _net(), torch.rand(2, 3, 8, 8, dtype=torch.float64)
    a = nfr.attribute(net, x, torch.zeros(len(x), dtype=torch.long), "gbp")
    for _ in range(3):
        b = nfr.attribute(net, x, torch.zeros(len(x), dtype=torch.long), "gbp")
    assert len(calls) == 1
    assert torch.equal(a, b)


@pytest.mark.parametrize("change", ["randomize_in_place", "load_state_dict", "bn_stats", "to_float", "train_eval"])
def test_a_changed_model_is_retraced_and_gives_the_fresh_map(monkeypatch, change):
    calls = _count_traces(monkeypatch)
    net, x = _net(0), torch.rand(2, 3, 8, 8, dtype=torch.float64)
    nfr.attribute(net, x, torch.zeros(len(x), dtype=torch.long), "zplus")
    if change == "randomize_in_place":
        with torch.no_grad():
            net[4].weight.mul_(-1.5)
    elif change == "load_state_dict":
        net.load_state_dict(_net(1).state_dict())
    elif change == "bn_stats":
        with torch.no_grad():
            net[1].running_var.mul_(4.0)
    elif change == "to_float":
        net.float()
        x = x.float()
    else:
        net.train()
        net.eval()
    got = nfr.attribute(net, x, torch.zeros(len(x), dtype=torch.long), "zplus")
    fresh = nfr.attribute(net, x, torch.zeros(len(x), dtype=torch.long), "zplus") if change == "train_eval" else None
    C._CANONICAL.clear()
    want = nfr.attribute(net, x, torch.zeros(len(x), dtype=torch.long), "zplus")
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-12)
    if change != "train_eval":
        assert len(calls) == 3            # first call, after the change, after clearing
    assert fresh is None or torch.equal(fresh, got)


def test_a_hook_registered_after_the_first_call_is_refused():
    net, x = _net(), torch.rand(1, 3, 8, 8, dtype=torch.float64)
    nfr.attribute(net, x, torch.zeros(len(x), dtype=torch.long), "gbp")
    h = net[2].register_forward_hook(lambda m, i, o: o * 2)
    try:
        with pytest.raises(NFRError, match="hook"):
            nfr.attribute(net, x, torch.zeros(len(x), dtype=torch.long), "gbp")
    finally:
        h.remove()
    nfr.attribute(net, x, torch.zeros(len(x), dtype=torch.long), "gbp")


def test_a_global_hook_registered_after_the_first_call_is_refused():
    net, x = _net(), torch.rand(1, 3, 8, 8, dtype=torch.float64)
    nfr.attribute(net, x, torch.zeros(len(x), dtype=torch.long), "gbp")
    h = nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    try:
        with pytest.raises(NFRError, match="global"):
            nfr.attribute(net, x, torch.zeros(len(x), dtype=torch.long), "gbp")
    finally:
        h.remove()


def test_the_cache_does_not_keep_a_model_alive():
    import gc
    import weakref
    net = _net()
    nfr.attribute(net, torch.rand(1, 3, 8, 8, dtype=torch.float64), 0, "gbp")
    ref = weakref.ref(net)
    del net
    gc.collect()
    assert ref() is None
