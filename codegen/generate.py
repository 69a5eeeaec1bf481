"""Generation entry points: spec set -> {path: content} -> generated/ (write or check)."""

from __future__ import annotations

from pathlib import Path

from ..kemi.model import Spec
from .render import banner, check_tree, environment, write_tree
from .spec import load_spec, spec_files
from .targets import TARGETS

ROOT = Path(__file__).resolve().parent.parent  # the checkout (codegen/ is at its top level)


def render_all(spec: Spec, targets: list[str] | None = None) -> dict[str, str]:
    env = environment()
    # generated/ is installed as the package pykemi.generated
    files: dict[str, str] = {
        "__init__.py": banner("__init__.py", []) + '"""Artifacts generated from spec/*.yaml."""\n'
    }
    for name, emit in TARGETS.items():
        if targets is None or name in targets:
            files.update(emit(spec, env))
    return files


def load(spec_dirs: list[Path] | None = None, root: Path | None = None) -> Spec:
    dirs = spec_dirs or [ROOT / "spec"]
    return load_spec(spec_files(dirs), root=root or ROOT)


def generate(spec: Spec, out: Path) -> list[str]:
    return write_tree(out, render_all(spec))


def check(spec: Spec, out: Path) -> list[str]:
    return check_tree(out, render_all(spec))
