"""Private directories and trusted files (runtime/core/fsperm.py): what another local user
plants or opens up is refused, what we create is 0700."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pykemi.runtime.core.fsperm import (
    UnsafePathError,
    check_trusted_file,
    private_dir,
    user_cache_dir,
    user_runtime_dir,
)

NOBODY = 65534


def test_private_dir_is_created_0700(tmp_path: Path) -> None:
    d = private_dir(tmp_path / "a" / "b")
    assert stat.S_IMODE(os.lstat(d).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(d.parent).st_mode) == 0o700
    assert private_dir(d) == d  # an existing one of ours is accepted


def test_private_dir_refuses_open_modes_symlinks_and_files(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o755)
    with pytest.raises(UnsafePathError, match="mode 0755"):
        private_dir(open_dir)
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        private_dir(link)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UnsafePathError, match="not a directory"):
        private_dir(f)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_directory_and_file_of_another_user_are_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(0o700)
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(UnsafePathError, match="owned by uid 65534"):
        private_dir(theirs)
    ours = private_dir(tmp_path / "ours")
    planted = ours / "x.so"
    planted.write_bytes(b"\x7fELF")
    os.chown(planted, NOBODY, NOBODY)
    with pytest.raises(UnsafePathError, match="owned by uid 65534"):
        check_trusted_file(planted)


def test_trusted_file_refuses_group_writable(tmp_path: Path) -> None:
    d = private_dir(tmp_path / "c")
    so = d / "m.so"
    so.write_bytes(b"\x7fELF")
    so.chmod(0o664)
    with pytest.raises(UnsafePathError, match="write"):
        check_trusted_file(so)
    so.chmod(0o644)
    assert check_trusted_file(so) == so


def test_runtime_dir_prefers_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert user_runtime_dir() == tmp_path / "pykemi"
    assert stat.S_IMODE(os.lstat(tmp_path / "pykemi").st_mode) == 0o700


def test_cache_dir_honours_env_and_makes_every_level_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYKEMI_CACHE_DIR", str(tmp_path / "c"))
    d = user_cache_dir("modules", "demo")
    assert d == tmp_path / "c" / "modules" / "demo"
    for p in (d, d.parent, d.parent.parent):
        assert stat.S_IMODE(os.lstat(p).st_mode) == 0o700
    d.chmod(0o777)
    with pytest.raises(UnsafePathError, match=f"{d}: mode 0777"):
        user_cache_dir("modules", "demo")


def test_cache_below_a_directory_others_can_rename_in_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user could swap the verified tree between the check and the load."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("PYKEMI_CACHE_DIR", str(shared / "cache"))
    with pytest.raises(UnsafePathError, match=f"{shared}: mode 0777 lets other users"):
        user_cache_dir("sqlang")
    shared.chmod(0o1777)  # sticky, as /tmp: others cannot rename what is ours
    assert user_cache_dir("sqlang") == shared / "cache" / "sqlang"
