"""The ``kemi`` command: the generator's commands (generate, new-module) go to pykemi.codegen,
every other one to pykemi.runtime.cli.

The generator and its dependencies (the ``[codegen]`` extra: black, pydantic, pyyaml,
jinja2) are imported only when a generator command runs, so ``kemi run`` never loads them
and a router installed without them still has a ``kemi`` that says what to install.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Any

from .runtime import cli as runtime_cli

GENERATOR_COMMANDS = {
    "generate": "regenerate generated/ from the specs, then the installed modules' bindings",
    "new-module": "scaffold an out-of-tree module package",
}
# import names of the [codegen] extra (pyproject.toml)
CODEGEN_DEPENDENCIES = ("yaml", "pydantic", "jinja2", "black")
INSTALL_HINT = "pip install 'pykemi[codegen]'"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args if not a.startswith("-")), None)
    if command not in GENERATOR_COMMANDS:
        return runtime_cli.main(args, extra_commands=[_listed_only])
    missing = [m for m in CODEGEN_DEPENDENCIES if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"kemi {command}: the generator's dependencies are not installed (no module "
            f"{', '.join(missing)}): {INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2
    return runtime_cli.main(args, extra_commands=[_generator_commands])


def _listed_only(sub: argparse._SubParsersAction[Any]) -> None:
    """The generator's commands in ``kemi --help`` without importing the generator."""
    for name, helptext in GENERATOR_COMMANDS.items():
        sub.add_parser(name, help=helptext)


def _generator_commands(sub: argparse._SubParsersAction[Any]) -> None:
    from . import generator_cli  # the generator and its optional heavy dependencies

    generator_cli.add_commands(sub, GENERATOR_COMMANDS)


if __name__ == "__main__":
    raise SystemExit(main())
