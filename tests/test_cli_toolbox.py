"""nfr in a researcher's toolbox: your own model and preprocessing from the command line,
downloads when asked (checksums verified, tested against a local HTTP server), runs sharded over
processes with torchrun."""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from nfr import NFRError
from nfr.cli import main
from nfr.data import download

ROOT = Path(__file__).resolve().parent.parent

MYMOD = '''
import torch.nn as nn

def make():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))

def not_a_module():
    return 3
'''


@pytest.fixture
def mymod(tmp_path, monkeypatch):
    """A module ``mymod_cli`` with a factory ``make`` on sys.path, and a state dict for it."""
    (tmp_path / "mymod_cli.py").write_text(MYMOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("mymod_cli", None)
    import mymod_cli
    w = tmp_path / "w.pt"
    with torch.random.fork_rng():
        torch.manual_seed(1)
        torch.save(mymod_cli.make().state_dict(), w)
    yield tmp_path, w
    sys.modules.pop("mymod_cli", None)


def test_own_model_table1(mymod, capsys):
    tmp, w = mymod
    out = tmp / "out"
    rc = main(["table1", "--model", "mymod_cli:make", "--weights", str(w), "--mean", "0.5,0.4,0.3",
               "--std", "0.2,0.25,0.3", "--n-images", "1", "--size", "32", "--rules", "gbp,zplus",
               "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    res = json.loads((out / "table1.json").read_text())
    cfg = res["config"]
    assert cfg["model"] == "mymod_cli:make" and cfg["weights"] == str(w) and cfg["size"] == 32
    assert cfg["preprocess"] == {"name": "custom", "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}
    assert cfg["L"] == 3 and len(res["alignment"]["gbp"]["with_bottom"]["per_image"]) == 1


@pytest.mark.parametrize("args, words", [
    (["--model", "mymod_cli:nope"], ["mymod_cli:nope", "no attribute"]),
    (["--model", "no_such_module_xyz:make"], ["no_such_module_xyz", "import"]),
    (["--model", "mymod_cli:not_a_module"], ["not a torch.nn.Module"]),
    (["--model", "mymod_cli:make", "--weights", "imagenet"], ["--weights imagenet"]),
    (["--model", "mymod_cli:make", "--mean", "0.5,0.5,0.5"], ["--mean and --std"]),
    (["--model", "mymod_cli:make", "--mean", "a,b,c", "--std", "1,1,1"], ["--mean"]),
    (["--model", "mymod_cli:make", "--mean", "0,0,0", "--std", "1,0,1"], ["--std"]),
    (["--model", "mymod_cli:make", "--preprocess", "cifar", "--mean", "0,0,0", "--std", "1,1,1"],
     ["--preprocess"]),
])
def test_own_model_errors_exit_2(mymod, capsys, args, words):
    tmp, _ = mymod
    rc = main(["table1", *args, "--n-images", "1", "--size", "32", "--out", str(tmp / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert all(w in err for w in words), err


def test_weights_mismatch_is_reported_by_key_and_shape(mymod, capsys):
    tmp, _ = mymod
    bad = tmp / "bad.pt"
    torch.save({"0.weight": torch.zeros(2, 3, 3, 3), "extra": torch.zeros(1)}, bad)
    rc = main(["table1", "--model", "mymod_cli:make", "--weights", str(bad), "--n-images", "1",
               "--size", "32", "--out", str(tmp / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "missing keys 0.bias" in err and "unexpected keys extra" in err
    assert "0.weight: (2, 3, 3, 3) in the file vs (4, 3, 3, 3) in the model" in err


def test_preset_is_stored_for_builtin_models(tmp_path):
    rc = main(["cascade", "--model", "cifar_resnet20", "--preprocess", "cifar", "--rules", "gbp",
               "--n-images", "1", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    cfg = json.loads((tmp_path / "cascade.json").read_text())["config"]
    assert cfg["preprocess"]["name"] == "cifar" and cfg["size"] == 32
    rc = main(["cascade", "--model", "cifar_resnet20", "--rules", "gbp", "--n-images", "1",
               "--out", str(tmp_path), "--quiet"])
    cfg = json.loads((tmp_path / "cascade.json").read_text())["config"]
    assert cfg["preprocess"] == {"name": "imagenet", "mean": [0.485, 0.456, 0.406],
                                 "std": [0.229, 0.224, 0.225]}


def test_preprocess_refused_where_not_used(capsys, tmp_path):
    """weight-stats loads no images: it has no normalisation option to accept and ignore."""
    rc = main(["weight-stats", "--model", "cifar_resnet20", "--preprocess", "none", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "--preprocess" in err and len(err.strip().splitlines()) == 1


def test_missing_imagenet_weights_mention_download(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    rc = main(["table1", "--model", "alexnet", "--weights", "imagenet", "--n-images", "1",
               "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "--download" in err and "alexnet-owt-7be5be79.pth" in err


def test_original_cifar10_without_download(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NFR_CACHE", str(tmp_path / "cache"))
    rc = main(["table1", "--model", "cifar_resnet20", "--data", "cifar10-original", "--n-images", "1",
               "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "--download" in err and "cifar-10-python.tar.gz" in err


# ------------------------------------------------------------------ download (local server)
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.fixture
def server(tmp_path):
    """A bounded HTTP server on 127.0.0.1 serving ``tmp_path / 'www'``; shut down in a finally."""
    www = tmp_path / "www"
    www.mkdir()
    handler = lambda *a, **k: _Quiet(*a, directory=str(www), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.timeout = 5
    t = threading.Thread(target=httpd.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True)
    t.start()
    try:
        yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        t.join(timeout=5)


def test_download_checksums(server, tmp_path):
    www, url = server
    body = os.urandom(3 << 20)
    (www / "blob-0123abcd.bin").write_bytes(body)
    sha, md5 = hashlib.sha256(body).hexdigest(), hashlib.md5(body).hexdigest()
    d = tmp_path / "dl"
    # full sha256, its 8-digit prefix (torchvision's file names) and md5 (CIFAR-10) all pass
    for i, kw in enumerate((dict(sha256=sha), dict(sha256=sha[:8]), dict(md5=md5))):
        p = download(f"{url}/blob-0123abcd.bin", d / f"ok{i}.bin", progress=False, **kw)
        assert p.read_bytes() == body
    # a wrong checksum raises and leaves nothing behind (no file, no .part)
    for kw in (dict(sha256="0" * 64), dict(md5="0" * 32)):
        with pytest.raises(NFRError, match="expected"):
            download(f"{url}/blob-0123abcd.bin", d / "bad.bin", progress=False, **kw)
        assert sorted(p.name for p in d.iterdir()) == ["ok0.bin", "ok1.bin", "ok2.bin"]
    # 404 and a refused connection are NFRErrors naming the URL
    with pytest.raises(NFRError, match="404"):
        download(f"{url}/missing.bin", d / "m.bin", progress=False)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(NFRError, match=f"127.0.0.1:{port}"):
        download(f"http://127.0.0.1:{port}/x", d / "x.bin", progress=False, timeout=5)
    assert not (d / "m.bin").exists() and not (d / "x.bin").exists()


# ------------------------------------------------------------------ sharded runs (torchrun)
def test_shard_batches_cover_the_single_process_order():
    from nfr.distributed import shard_batches
    for n, bs, world in ((4, 1, 2), (7, 2, 3), (3, 4, 2), (10, 3, 4)):
        parts = [shard_batches(n, bs, world, r) for r in range(world)]
        flat = [sl for p in parts for sl in p]
        assert flat == [slice(i, min(n, i + bs)) for i in range(0, n, bs)]


def test_unsharded_experiment_refuses_world_size(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    rc = main(["weight-stats", "--model", "cifar_resnet20", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "WORLD_SIZE=2" in err and "cascade" in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _per_unit(res: dict, exp: str) -> dict:
    """Every per-image value of a result, by a path of keys."""
    if exp == "cascade":
        return {r: d["per_image"] for r, d in res["curves"].items()}
    if exp == "table1":
        return {(r, k): v["per_image"] for r, d in res["alignment"].items() for k, v in d.items()}
    raise AssertionError(exp)


@pytest.mark.parametrize("exp, extra", [("cascade", ["--rules", "gbp,zplus"]),
                                        ("table1", ["--rules", "gbp,rectgrad"])])
def test_sharded_run_equals_single_process(tmp_path, exp, extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    args = [exp, "--model", "cifar_resnet20", "--weights", "random", "--data", "samples",
            "--n-images", "4", "--batch-size", "2", "--quiet", *extra]
    one = subprocess.run([sys.executable, "-m", "nfr", *args, "--out", str(tmp_path / "one")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "nfr",
                          *args, "--out", str(tmp_path / "two")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count(f"{exp}: wrote") == 1  # only rank 0 prints
    a = json.loads((tmp_path / "one" / f"{exp}.json").read_text())
    b = json.loads((tmp_path / "two" / f"{exp}.json").read_text())
    assert a.pop("world_size") == 1 and b.pop("world_size") == 2
    ua, ub = _per_unit(a, exp), _per_unit(b, exp)
    assert ua == ub and all(len(v) == 4 for v in ua.values())  # exact equality, every image
    assert a == b  # the whole JSON, means and config included
