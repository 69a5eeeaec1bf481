"""``kemi new-module NAME --impl python|c [--dir PATH]``: scaffold an out-of-tree module.

Writes ``PATH/pykemi-NAME/``: a pyproject.toml declaring the ``pykemi.modules``
entry point, the spec, an implementation with one example function (Python, or
C compiled by pykemi), a test that routes a real SIP message through an
in-process router, and a README. Templates: codegen/scaffold_templates/.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from pathlib import Path

from ..kemi.contract import RESERVED_SUBMODULES
from ..kemi.errors import SpecError
from ..kemi.targets import TARGETS
from .extension import builtins
from .render import environment

TEMPLATES = Path(__file__).resolve().parent / "scaffold_templates"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class ScaffoldError(Exception):
    """The module cannot be scaffolded (bad name, existing directory)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="module name: loadmodule name and KSR sub-module (e.g. geo)")
    p.add_argument(
        "--impl", choices=("python", "c"), default="python", help="implementation language"
    )
    p.add_argument(
        "--dir", type=Path, default=Path("."), help="where pykemi-NAME/ is created (default: .)"
    )


def check_name(name: str) -> None:
    """A name that works as loadmodule name, KSR sub-module and Python/C identifier."""
    if not NAME_RE.match(name):
        raise ScaffoldError(
            f"invalid module name {name!r}: use lower-case letters, digits and '_', "
            "starting with a letter"
        )
    if keyword.iskeyword(name) or name in RESERVED_SUBMODULES:
        raise ScaffoldError(f"invalid module name {name!r}: it is a reserved word")
    clashes = sorted(lang for lang, t in TARGETS.items() if name in t.reserved)
    if clashes:
        raise ScaffoldError(
            f"invalid module name {name!r}: reserved in {', '.join(clashes)}; choose another"
        )
    try:
        known = builtins()
    except SpecError:
        return  # no generated/ to compare with: `kemi generate --extension` checks again
    if name in known.modules:
        raise ScaffoldError(f"'{name}' is a built-in pykemi module; choose another name")
    if name in known.core_functions or name in known.submodules:
        raise ScaffoldError(f"KSR.{name} already exists in pykemi; choose another name")


def files(name: str, impl: str) -> dict[str, str]:
    """Relative path -> content of the package for module ``name``."""
    env = environment(TEMPLATES)
    package = f"pykemi_{name}"
    ctx = {"name": name, "impl": impl, "package": package, "dist": f"pykemi-{name}"}
    layout = {
        "pyproject.toml": "pyproject.toml.j2",
        "README.md": "README.md.j2",
        ".gitignore": "gitignore.j2",
        f"{package}/__init__.py": "init.py.j2",
        f"{package}/spec/{name}.yaml": "spec.yaml.j2",
        f"tests/test_{name}.py": "test_module.py.j2",
    }
    if impl == "c":
        layout[f"{package}/{name}.c"] = "module.c.j2"
    else:
        layout[f"{package}/impl.py"] = "impl.py.j2"
    return {rel: env.get_template(tpl).render(**ctx) for rel, tpl in layout.items()}


def scaffold(name: str, impl: str, where: Path) -> Path:
    """Create ``where/pykemi-NAME``; returns its path."""
    check_name(name)
    if impl not in ("python", "c"):
        raise ScaffoldError(f"--impl must be python or c, not {impl!r}")
    root = where / f"pykemi-{name}"
    if root.exists():
        raise ScaffoldError(f"{root} already exists; remove it or choose another --dir")
    for rel, text in files(name, impl).items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return root


def run(args: argparse.Namespace) -> int:
    try:
        root = scaffold(args.name, args.impl, args.dir)
    except (ScaffoldError, OSError) as exc:
        print(f"kemi new-module: {exc}", file=sys.stderr)
        return 2
    impl = "C" if args.impl == "c" else "Python"
    print(f"created {root} (module '{args.name}', {impl})")
    print("next:")
    print(f"  pip install -e {root}")
    print(f"  kemi generate --extension {args.name}")
    print(f"  pytest {root / 'tests'}")
    return 0
