"""Refresh ``nfr/resources/manifest.json`` (sizes and sha256) and the table in its README.

Run after adding or replacing a shipped file: ``python -m nfr.tools.resources [--add NAME WHAT
ORIGIN LICENCE]``. Entries keep their description, origin and licence; sizes and checksums are
recomputed from the files. The unit tests check the manifest and the README against the files.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "resources"


def refresh(add: list[tuple[str, str, str, str]] = ()) -> dict:
    """Recompute every manifest entry's ``bytes`` and ``sha256``; add new entries; rewrite the README table."""
    man = json.loads((ROOT / "manifest.json").read_text())
    files = man["files"]
    for name, what, origin, licence in add:
        files[name] = {"what": what, "origin": origin, "licence": licence}
    for name, e in files.items():
        data = (ROOT / name).read_bytes()
        e["bytes"], e["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    (ROOT / "manifest.json").write_text(json.dumps(man, indent=1) + "\n")
    rows = "\n".join(f"| `{k}` | {v['what']} | {v['bytes']:,} | `{v['sha256']}` |" for k, v in files.items())
    table = "| file | what | bytes | sha256 |\n|---|---|---|---|\n" + rows + "\n"
    readme = (ROOT / "README.md").read_text()
    readme = re.sub(r"\| file \| what \| bytes \| sha256 \|\n(\|.*\n)+", table, readme)
    total = sum(v["bytes"] for v in files.values())
    readme = re.sub(r"Total: [\d.]+ MB", f"Total: {total / 1e6:.1f} MB", readme)
    (ROOT / "README.md").write_text(readme)
    return man


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m nfr.tools.resources", description=__doc__.splitlines()[0])
    p.add_argument("--add", nargs=4, action="append", default=[], metavar=("NAME", "WHAT", "ORIGIN", "LICENCE"))
    a = p.parse_args(argv)
    man = refresh([tuple(x) for x in a.add])
    print(f"{len(man['files'])} files, {sum(e['bytes'] for e in man['files'].values()) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
