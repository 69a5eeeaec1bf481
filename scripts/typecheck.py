"""Run mypy on kemi/, codegen/ and runtime/ under their import names (pykemi.codegen, ...).

The folders are mapped onto ``pykemi.*`` by setup.py, which mypy cannot see
through an editable install; a tree of symlinks under build/ gives it the
real package layout so cross-package types are checked, not taken as Any.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "mypy" / "pykemi"


def main() -> int:
    TREE.mkdir(parents=True, exist_ok=True)
    links = {"kemi": ROOT / "kemi", "codegen": ROOT / "codegen", "runtime": ROOT / "runtime", "generated": ROOT / "generated",
             **{f.name: f for f in (ROOT / "pykemi").glob("*.py")}}  # fmt: skip
    for name, target in links.items():
        link = TREE / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    cmd = [
        sys.executable,
        "-m",
        "mypy",
        "-p",
        "pykemi.kemi",
        "-p",
        "pykemi.codegen",
        "-p",
        "pykemi.runtime",
        # the modules of the pykemi/ folder itself (the `kemi` command)
        *[
            a
            for f in sorted((ROOT / "pykemi").glob("[!_]*.py"))
            for a in ("-m", f"pykemi.{f.stem}")
        ],
        *sys.argv[1:],
    ]
    env_path = str(TREE.parent)
    return subprocess.call(cmd, cwd=ROOT, env={**__import__("os").environ, "MYPYPATH": env_path})


if __name__ == "__main__":
    raise SystemExit(main())
