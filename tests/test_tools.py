"""Book tools: the offline check of the built HTML and the thebe filter."""
from pathlib import Path
from types import SimpleNamespace

from nfr.tools import check_html, offline
from nfr.tools.rerun import strip

ROOT = Path(__file__).resolve().parent.parent


def test_check_html_finds_external_scripts(tmp_path):
    (tmp_path / "index.html").write_text('<script src="_static/a.js"></script><link rel="canonical" href="https://x.org/">')
    assert check_html.external_references(tmp_path) == []
    (tmp_path / "p.html").write_text('<script src="https://cdn.example.org/mathjax.js"></script>')
    (tmp_path / "s.css").write_text("@font-face { src: url('https://fonts.example.org/f.woff2') }")
    bad = check_html.external_references(tmp_path)
    assert len(bad) == 2 and "cdn.example.org" in bad[0]
    assert check_html.main([str(tmp_path)]) == 1


def test_offline_extension_drops_thebe_scripts():
    js = [SimpleNamespace(filename="sphinx-thebe.js", attributes={}),
          SimpleNamespace(filename=None, attributes={"body": 'const THEBE_JS_URL = "https://unpkg.com/thebe"'}),
          SimpleNamespace(filename="_static/mathjax/tex-chtml.js", attributes={})]
    ctx = {"script_files": js}
    offline._drop_thebe(None, "p", "t", ctx, None)
    assert [j.filename for j in ctx["script_files"]] == ["_static/mathjax/tex-chtml.js"]


def test_strip_removes_timestamps():
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    nb.cells[0].metadata["execution"] = {"iopub.execute_input": "2026-01-01"}
    nb.metadata["widgets"] = {}
    nb.metadata["kernelspec"] = {"name": "python3"}
    strip(nb)
    assert "execution" not in nb.cells[0].metadata and "widgets" not in nb.metadata and "kernelspec" in nb.metadata


def test_torch_chapters_finds_the_chapters_whose_kernel_loads_torch(tmp_path):
    """make test's second nbval pass (another CPU's torch kernels) skips only chapters that never
    load torch: their imports, run together in a fresh interpreter, leave torch unloaded."""
    import json as _json
    from nfr.tools import torch_chapters as TC

    def nb(name, *cells):
        p = tmp_path / name
        p.write_text(_json.dumps({"cells": [{"cell_type": "code", "source": c, "metadata": {}, "outputs": []}
                                            for c in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
        return p
    numpy_only = nb("a.ipynb", "import numpy as np\n%matplotlib inline\nfrom nfr import plotting", "x = np.ones(3)")
    late_torch = nb("b.ipynb", "import numpy as np", "def f():\n    import torch\n    return torch.ones(1)")
    broken = nb("c.ipynb", "import no_such_module_anywhere")
    assert TC.import_lines(late_torch) == ["import numpy as np", "import torch"]
    assert not TC.loads_torch(numpy_only)
    assert TC.loads_torch(late_torch) and TC.loads_torch(broken)
    assert TC.torch_chapters(tmp_path) == [late_torch, broken]
    assert not TC.loads_torch(ROOT / "chapters" / "01_filtering_rules.ipynb")
    assert TC.loads_torch(ROOT / "chapters" / "04_attributions_at_scale.ipynb")
