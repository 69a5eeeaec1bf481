"""Directories and files that another local user must not be able to plant or read.

Everything pykemi builds, loads, listens on or shares between its processes lives in a
directory owned by the effective user with no group/other access (0700), or in a file
checked the same way before it is trusted. A path that fails the check is refused with a
message naming it and saying why; nothing falls back to a shared, predictable name.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import stat
import sys
from pathlib import Path
from types import ModuleType

__all__ = [
    "CACHE_ENV",
    "UnsafePathError",
    "check_trusted_file",
    "import_extension",
    "private_dir",
    "trusted_dir",
    "user_cache_dir",
    "user_runtime_dir",
]

# Overrides the per-user cache of compiled code (must be ours, 0700, or not exist yet).
CACHE_ENV = "PYKEMI_CACHE_DIR"


class UnsafePathError(OSError):
    """A directory or file another local user could have created or can write."""


def _check(path: Path, st: os.stat_result, *, is_dir: bool, private: bool) -> None:
    kind = "directory" if is_dir else "file"
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePathError(f"{path}: is a symbolic link, refusing to use it as a {kind}")
    if is_dir and not stat.S_ISDIR(st.st_mode):
        raise UnsafePathError(f"{path}: exists and is not a directory")
    if not is_dir and not stat.S_ISREG(st.st_mode):
        raise UnsafePathError(f"{path}: exists and is not a regular file")
    euid = os.geteuid()
    if st.st_uid != euid:
        raise UnsafePathError(
            f"{path}: owned by uid {st.st_uid}, not by this user (uid {euid}); "
            f"another user may control this {kind}"
        )
    forbidden = 0o077 if private else 0o022
    if st.st_mode & forbidden:
        raise UnsafePathError(
            f"{path}: mode {stat.S_IMODE(st.st_mode):04o} lets other users "
            f"{'in' if private else 'write'}; expected {'0700' if private else 'no group/other write'}"
        )


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (parents 0700 too) or verify an existing one: a real directory owned by
    the effective user with mode 0700 (no group/other bits). Raises UnsafePathError otherwise."""
    p = Path(path)
    try:
        os.mkdir(p, 0o700)
    except FileExistsError:
        pass
    except FileNotFoundError:
        private_dir(p.parent)
        return private_dir(p)
    _check(p, os.lstat(p), is_dir=True, private=True)
    return p


def trusted_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (0700) or verify an existing one: a real directory owned by the
    effective user that group/other cannot write (they may enter it: what it holds, e.g. a
    0600 socket, guards itself). Raises UnsafePathError otherwise."""
    p = Path(path)
    try:
        os.mkdir(p, 0o700)
    except FileExistsError:
        pass
    _check(p, os.lstat(p), is_dir=True, private=False)
    return p


def check_trusted_file(path: str | os.PathLike[str]) -> Path:
    """A file about to be loaded as code (a compiled extension): it and its directory must be
    owned by the effective user and not writable by group/other."""
    p = Path(path)
    _check(p.parent, os.lstat(p.parent), is_dir=True, private=False)
    _check(p, os.lstat(p), is_dir=False, private=False)
    return p


def user_runtime_dir() -> Path:
    """Per-user directory for sockets and shared state: ``$XDG_RUNTIME_DIR/pykemi`` when the
    session has one, else ``/tmp/pykemi-<uid>``; created 0700 or verified as ours."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg) and os.path.isdir(xdg):
        return private_dir(Path(xdg) / "pykemi")
    return private_dir(Path("/tmp") / f"pykemi-{os.geteuid()}")


def _check_ancestors(path: Path) -> None:
    """Only root and this user may rename entries of the directories above ``path`` (sticky
    ones like /tmp aside): otherwise another user could swap the verified tree for theirs
    between the check and the load. Both the path as given and its resolved form count."""
    euid = os.geteuid()
    for d in sorted({*path.parents, *Path(os.path.realpath(path)).parents}):  # top down
        st = os.stat(d)
        if st.st_uid not in (0, euid):
            raise UnsafePathError(
                f"{d}: owned by uid {st.st_uid}, not by root or this user (uid {euid}); "
                "another user could replace what is below it"
            )
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise UnsafePathError(
                f"{d}: mode {stat.S_IMODE(st.st_mode):04o} lets other users rename what is "
                "below it; expected no group/other write (or the sticky bit, as /tmp)"
            )


def user_cache_dir(*parts: str) -> Path:
    """Per-user cache for compiled glue and generated code: ``$PYKEMI_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/pykemi`` or ``~/.cache/pykemi``; it and each sub-directory ``parts``
    created 0700 or verified as ours (UnsafePathError otherwise)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        root = private_dir(Path(env).absolute())
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
        base.mkdir(parents=True, exist_ok=True)
        root = private_dir(base / "pykemi")
    _check_ancestors(root)
    for part in parts:
        root = private_dir(root / part)
    return root


def import_extension(name: str, path: str | os.PathLike[str]) -> ModuleType:
    """Import the compiled extension module ``name`` from ``path`` once per process, after
    check_trusted_file(path): the only way pykemi loads code it compiled at run time."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    p = check_trusted_file(path)
    loader = importlib.machinery.ExtensionFileLoader(name, str(p))
    spec = importlib.util.spec_from_file_location(name, str(p), loader=loader)
    if spec is None:
        raise ImportError(f"{p}: cannot import extension module {name}", path=str(p))
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules[name] = module
    return module
