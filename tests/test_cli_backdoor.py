"""`python -m nfr backdoor` (seed 001 Fig 9) on the committed backdoored ResNet-20s."""
import json
from pathlib import Path

import pytest

from nfr.cli import main

MODELS = Path(__file__).resolve().parents[1] / "nfr" / "resources" / "models"


def _run(tmp_path, *args):
    rc = main(["backdoor", "--data", "samples", "--n-images", "6", "--out", str(tmp_path), "--quiet", *args])
    return rc, (json.loads((tmp_path / "backdoor.json").read_text()) if rc == 0 else None)


def test_badnet_network_decides_the_target_and_its_map_sits_on_the_trigger(tmp_path):
    rc, res = _run(tmp_path, "--weights", str(MODELS / "resnet20_badnet.pt"))
    assert rc == 0 and (tmp_path / "backdoor.png").exists()
    d = res["results"]["gbp"]
    assert res["config"]["trained_attack"] == "badnet"
    assert d["pred_target_poisoned"] >= 0.8                 # the backdoor works (ASR ~ 1 in its manifest)
    # the poisoned maps put far more than the trigger's area share of their energy on the trigger
    assert d["trigger_energy_poisoned"]["mean"] > 5 * d["trigger_area"]["mean"]
    assert d["trigger_energy_poisoned"]["mean"] > d["trigger_energy_clean"]["mean"]
    assert len(d["kis_clean"]["per_image"]) == 6


def test_clean_network_is_probed_with_the_control_trigger(tmp_path):
    rc, res = _run(tmp_path, "--weights", str(MODELS / "resnet20_clean.pt"), "--control", "badnet")
    assert rc == 0
    assert res["config"]["trained_attack"] is None and res["config"]["probe"]["name"] == "badnet"
    assert res["results"]["gbp"]["pred_target_poisoned"] < 0.8   # it never learned the trigger


@pytest.mark.parametrize("weights", ["random", "no/such/file.pt"])
def test_needs_a_trained_file(tmp_path, weights, capsys):
    assert main(["backdoor", "--weights", weights, "--out", str(tmp_path)]) == 2
    assert "python -m nfr train" in capsys.readouterr().err
