"""Install hook.

pyproject.toml maps the top-level folders onto ``pykemi.*``; this file lists
their sub-packages (found by walking the folders, so new ones need no edit)
and compiles the generated C dispatch glue with cffi.
"""

from __future__ import annotations

import os

from setuptools import setup

ROOTS = {
    "kemi": "pykemi.kemi",
    "codegen": "pykemi.codegen",
    "runtime": "pykemi.runtime",
    "generated": "pykemi.generated",
}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages = ["pykemi"]
    package_dir = {"pykemi": "pykemi"}
    for folder, dotted in ROOTS.items():
        for here, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
            if "__init__.py" not in files:
                continue
            rel = os.path.relpath(here, folder)
            name = dotted if rel == "." else dotted + "." + rel.replace(os.sep, ".")
            packages.append(name)
            package_dir[name] = here
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()
DATA = [
    "*.j2",
    "*.lua",
    "*.js",
    "*.ts",
    "*.rb",
    "*.rbs",
    "*.nut",
    "*.c",
    "*.h",
    "*.json",
    "*.md",
    "*.pyi",
    "*.typed",
    "*.luacheckrc",
]

setup(
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={name: DATA for name in PACKAGES},
    cffi_modules=["runtime/dispatch_build.py:ffibuilder"],
)
