"""cffi build of the generated C dispatch glue plus the built-in C modules.

Used by setup.py at install time (``cffi_modules``) and by ``kemi build``;
out-of-tree C modules are compiled by ``cbuild.compile_module`` with the
same header, with their export table rendered by ``kemi generate``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GEN_C = ROOT / "generated" / "c"
CMODULES = HERE / "cmodules"
MODULE_NAME = "pykemi.runtime._kemi_dispatch"

# The runtime's side of the host API (Python callbacks C modules reach via ksr_host): the
# cffi declarations and the C preamble, kept as real files beside this one.
HOST_CDEF_FILE = HERE / "dispatch_host_cdef.h"
HOST_SOURCE_FILE = HERE / "dispatch_host.c"


def _read(name: str) -> str:
    return (GEN_C / name).read_text(encoding="utf-8")


def _strip_comments(text: str) -> str:
    """cffi's cdef parser accepts C comments but not the generated banner's // lines."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


def make_ffibuilder(relative: bool = True) -> FFI:
    """``relative``: source paths relative to the checkout, as setuptools requires."""
    ffi = FFI()
    ffi.cdef(_strip_comments(_read("kemi_cdef.h")))
    ffi.cdef(_strip_comments(_read("kemi_dispatch_cdef.h")))
    ffi.cdef(_strip_comments(HOST_CDEF_FILE.read_text(encoding="utf-8")))
    sources = [str(GEN_C / "kemi_dispatch.c"), str(GEN_C / "kemi_exports.c")]
    sources += sorted(str(p) for p in CMODULES.glob("*.c"))
    ffi.set_source(
        MODULE_NAME,
        HOST_SOURCE_FILE.read_text(encoding="utf-8"),
        sources=[os.path.relpath(s, ROOT) for s in sources] if relative else sources,
        include_dirs=[str(GEN_C)],
        extra_compile_args=["-O2", "-Wall", "-Wno-unused-function"],
    )
    return ffi


def ffibuilder() -> FFI:
    """setup.py's ``cffi_modules`` entry (cffi calls it): the builder is made on demand, so
    importing this module (``kemi build``) reads nothing."""
    return make_ffibuilder()


def build_inplace(verbose: bool = False) -> str:
    """Compile next to this file (``kemi build``); returns the extension's path."""
    cwd = os.getcwd()
    # a fresh private (mkdtemp, 0700) work dir: nothing there another user could plant
    with tempfile.TemporaryDirectory(prefix="pykemi-build-") as tmp:
        try:
            os.chdir(ROOT)
            lib = make_ffibuilder(relative=False).compile(tmpdir=tmp, verbose=verbose)
        finally:
            os.chdir(cwd)
        target = HERE / Path(lib).name
        # copied next to the target, then renamed over it: a running router keeps its old
        # file (overwriting a loaded .so in place would crash it)
        fd, staged = tempfile.mkstemp(prefix=f".{target.name}-", dir=HERE)
        with os.fdopen(fd, "wb") as out, open(lib, "rb") as src:
            shutil.copyfileobj(src, out)
        os.chmod(staged, 0o755)
        os.replace(staged, target)
    return str(target)


if __name__ == "__main__":
    print(build_inplace(verbose=True))
