"""cffi build (API mode) of the app_ruby glue: ruby_glue.c linked against libruby.

Compiled lazily, the first time a process loads a Ruby script, into the per-user cache
(``$PYKEMI_CACHE_DIR`` or ``$XDG_CACHE_HOME/pykemi`` or ``~/.cache/pykemi``, 0700), under
a name that hashes the glue sources, the Python ABI and the Ruby flags; later runs
import the cached extension. ``python -m pykemi.runtime.engines.ruby_build`` builds
it ahead of time (e.g. while packaging). Needs the Ruby headers (Debian: ruby-dev);
``PYKEMI_RUBY_PC`` picks the pkg-config name (default: ruby-3.1, then ruby).
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from cffi import FFI

from ..core.fsperm import CACHE_ENV, UnsafePathError, import_extension, user_cache_dir

HERE = Path(__file__).resolve().parent
GLUE_C = HERE / "ruby_glue.c"
GLUE_H = HERE / "ruby_glue.h"

CDEF = (HERE / "ruby_cdef.h").read_text(encoding="utf-8")  # what Python sees of the glue
MODULE_C = HERE / "ruby_module.c"  # the cffi module's own source (GIL helpers)


class RubyBuildError(Exception):
    """libruby headers or library missing, or the glue does not compile."""


@dataclass(frozen=True)
class RubyFlags:
    include_dirs: tuple[str, ...]
    library_dirs: tuple[str, ...]
    libraries: tuple[str, ...]

    def key(self) -> str:
        return "|".join([*self.include_dirs, "", *self.library_dirs, "", *self.libraries])


def _pkg_config(name: str) -> RubyFlags | None:
    exe = shutil.which("pkg-config")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--cflags", "--libs", name], capture_output=True, text=True, check=True
        ).stdout.split()
    except (subprocess.CalledProcessError, OSError):
        return None
    inc = tuple(a[2:] for a in out if a.startswith("-I"))
    libdirs = tuple(a[2:] for a in out if a.startswith("-L"))
    libs = tuple(a[2:] for a in out if a.startswith("-l") and a[2:] != "m")
    return RubyFlags(inc, libdirs, libs) if inc and libs else None


def ruby_flags() -> RubyFlags:
    """Where ruby.h and libruby are; RubyBuildError (with the Debian hint) if absent."""
    names = [os.environ["PYKEMI_RUBY_PC"]] if os.environ.get("PYKEMI_RUBY_PC") else []
    for name in [*names, "ruby-3.1", "ruby"]:
        flags = _pkg_config(name)
        if flags is not None and any(Path(d, "ruby.h").is_file() for d in flags.include_dirs):
            return flags
    # no pkg-config: Debian layout /usr/include/ruby-X.Y.0 + <triplet>/ruby-X.Y.0
    for top in sorted(glob.glob("/usr/include/ruby-*"), reverse=True):
        ver = Path(top).name.removeprefix("ruby-")  # "3.1.0"
        arch = glob.glob(f"/usr/include/*/ruby-{ver}")
        short = ".".join(ver.split(".")[:2])
        if Path(top, "ruby.h").is_file() and arch:
            return RubyFlags((arch[0], top), (), (f"ruby-{short}",))
    raise RubyBuildError(
        "app_ruby needs the Ruby headers and libruby (Debian/Ubuntu: apt-get install ruby-dev)"
    )


def make_ffibuilder(flags: RubyFlags, module_name: str) -> object:
    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source(
        module_name,
        MODULE_C.read_text(encoding="utf-8"),
        sources=[str(GLUE_C)],
        include_dirs=[str(HERE), *flags.include_dirs],
        library_dirs=list(flags.library_dirs),
        runtime_library_dirs=list(flags.library_dirs),
        libraries=list(flags.libraries),
        extra_compile_args=["-O2", "-Wall", "-Wno-unused-parameter"],
    )
    return ffi


def cache_dir() -> Path:
    """``<per-user cache>/ruby``, 0700 (fsperm.user_cache_dir)."""
    return user_cache_dir("ruby")


def _fingerprint(flags: RubyFlags) -> str:
    h = hashlib.sha256()
    glue = (GLUE_C, GLUE_H, MODULE_C)
    for part in (*(f.read_bytes() for f in glue), CDEF.encode(), flags.key().encode()):
        h.update(part)
        h.update(b"\0")
    h.update(sys.version.encode())
    h.update(str(sysconfig.get_config_var("EXT_SUFFIX")).encode())
    return h.hexdigest()[:16]


def build(verbose: bool = False) -> Path:
    """Compile the glue into the cache unless it is already there; its path."""
    flags = ruby_flags()
    name = f"_pykemi_ruby_{_fingerprint(flags)}"
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    try:
        out_dir = cache_dir()
        target = out_dir / f"{name}{suffix}"
        if target.exists():
            return target
        lock = open(out_dir / ".lock", "w")  # closed by the with below
    except OSError as exc:  # includes UnsafePathError: a directory another user controls
        raise RubyBuildError(
            f"cannot use the app_ruby build cache: {exc}; "
            f"set {CACHE_ENV} to a private (0700) directory of this user"
        ) from exc
    # several workers or test processes may start at once: one compiles, the others wait
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            ffi = make_ffibuilder(flags, name)
            try:
                lib = ffi.compile(tmpdir=tmp, verbose=verbose)  # type: ignore[attr-defined]
            except Exception as exc:  # cffi raises VerificationError / CompileError
                raise RubyBuildError(f"cannot compile the app_ruby glue: {exc}") from exc
            os.replace(lib, target)
    return target


def load() -> ModuleType:
    """Import the compiled glue (building it first if needed): the cffi module (ffi, lib)."""
    path = build()
    try:
        return import_extension(path.name.split(".", 1)[0], path)
    except UnsafePathError as exc:
        raise RubyBuildError(f"app_ruby: refusing to load the glue: {exc}") from exc


if __name__ == "__main__":
    print(build(verbose=True))
