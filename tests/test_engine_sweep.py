"""The architecture sweep of the book's pitfalls page: every torchvision classifier either runs
with grad / GBP equal to independent references to 1e-10, or raises one NFRError naming a layer;
the committed table equals a fresh run (about a minute on two CPU cores)."""
from nfr.tools import sweep


def test_sweep_table_is_current():
    rows = sweep.run()
    for label, _, verdict, details in rows:
        assert verdict.startswith(("supported", "NFRError at ")), (label, details)
        if verdict.startswith("supported"):
            assert all(v <= sweep.TOL for v in details.values()), (label, details)
    assert sweep.committed_table() == sweep.table(rows), \
        "book/pitfalls.md is stale: run `python -m nfr.tools.sweep`"
    supported = {label for label, _, v, _ in rows if v.startswith("supported")}
    assert {"resnet18", "shufflenet_v2_x0_5", "densenet121"} & supported == \
        {"resnet18", "shufflenet_v2_x0_5"}
