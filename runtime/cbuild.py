"""The one builder of C modules against the KEMI C ABI (out-of-tree modules, test modules).

A module is its C sources plus its generated sr_kemi_t table (``c/kemi_exports.c``, written
by ``kemi generate``); cffi compiles them with ``kemi.h`` into an extension whose exports the
registry stores in the shared slot table. Builds happen in a fresh private folder and are
installed by atomic rename; loading goes through fsperm.import_extension.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from cffi import FFI

from .core.fsperm import import_extension
from .dispatch import GENERATED

GEN_C = GENERATED / "c"
C_FLAGS = ("-O2", "-Wall", "-Wno-unused-function")

# cffi's cdef (kemi_cdef.h) names these; set_source must declare them for the C compiler.
TABLE_DECLS = """#include "kemi.h"
typedef struct kemi_module_table { const char *module; sr_kemi_t *exports; } kemi_module_table_t;
extern kemi_module_table_t kemi_module_tables[];
extern const char kemi_spec_hash[];
void kemi_module_init(const ksr_host_api_t *host);
"""


class BuildError(Exception):
    """The C compiler (or cffi) failed; the compiler's output went to stderr."""


def cdef_text() -> str:
    text = (GEN_C / "kemi_cdef.h").read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


def library_name(stem: str) -> str:
    """``stem`` with this interpreter's extension suffix (``.cpython-311-x86_64-linux-gnu.so``)."""
    return stem + importlib.machinery.EXTENSION_SUFFIXES[0]


def content_key(
    sources: Sequence[Path], include_dirs: Sequence[Path] = (), flags: Sequence[str] = C_FLAGS
) -> str:
    """Hash of what a build depends on: sources, headers, flags, Python version."""
    h = hashlib.sha256()
    for p in [*sources, GEN_C / "kemi.h", GEN_C / "kemi_cdef.h"]:
        h.update(p.read_bytes())
    for d in include_dirs:
        for hdr in sorted(d.glob("*.h")):
            h.update(hdr.read_bytes())
    h.update(repr((tuple(flags), sys.version_info[:2])).encode())
    return h.hexdigest()[:12]


def compile_module(
    name: str,
    sources: Sequence[Path],
    lib_path: Path,
    include_dirs: Sequence[Path] = (),
    flags: Sequence[str] = C_FLAGS,
) -> None:
    """Compile ``sources`` (one of them the module's kemi_exports.c) into extension ``name``
    at ``lib_path`` (its folder must be private: fsperm); readers never see half a file."""
    ffi = FFI()
    ffi.cdef(cdef_text())
    ffi.set_source(
        name,
        TABLE_DECLS,
        sources=[str(s) for s in sources],
        include_dirs=[str(GEN_C), *map(str, include_dirs)],
        extra_compile_args=list(flags),
    )
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=lib_path.parent))
    try:
        Path(ffi.compile(tmpdir=str(work), verbose=False)).replace(lib_path)
    except Exception as exc:  # distutils and cffi raise many kinds
        raise BuildError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_module(name: str, lib_path: Path) -> ModuleType:
    """Import a built module; refuses a file another user could have planted (fsperm)."""
    return import_extension(name, lib_path)
