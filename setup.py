"""Install hook.

pyproject.toml maps the top-level folders onto ``pykemi.*``; this file lists
their sub-folders as packages (found by walking the folders, so new ones need
no edit), ships the non-Python files the runtime and users read (shims,
preludes, stubs, api.json, C glue, templates, docs pages) and compiles the
generated C dispatch glue with cffi. tests/test_wheel.py checks that every
tracked file under these folders is in the wheel.
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
    # Every folder is a package, with or without __init__.py: package_data globs do not
    # descend, so a data-only folder (generated/lua, generated/c, runtime/cmodules, the
    # templates) that is not listed ships without its files.
    packages = ["pykemi"]
    package_dir = {"pykemi": "pykemi"}
    for folder, dotted in ROOTS.items():
        for here, dirs, _files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
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
    ".luacheckrc",  # glob's * skips dotfiles
]

setup(
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={name: DATA for name in PACKAGES},
    # cffi's C source of the dispatch extension, left in runtime/ by an in-place build
    exclude_package_data={"pykemi.runtime": ["_kemi_*.c"]},
    cffi_modules=["runtime/dispatch_build.py:ffibuilder"],
)
