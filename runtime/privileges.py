"""Dropping root as Kamailio does: ``user=``/``group=``/``chroot=`` (``-u``/``-g``/``-t``).

The names are resolved when the router is built (an unknown user or group is a start-up
error, also for ``kemi check``), before any chroot hides /etc/passwd. The server drops after
binding the listen sockets and creating the control socket and the shared state files, and
before any worker runs a script: the files the workers open again (the shared SQLite files)
are handed to the user, then chroot, the groups and the uid change, in every process.

The control socket stays root's (0600): the main process keeps serving it through the
descriptor it holds, so root's ``kemi rpc`` reaches a router running as the user, and the
socket left behind is root's, which the next start (as root) may remove.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config
from .dispatch import StartupError


@dataclass(frozen=True)
class Privileges:
    """What to become; None/empty: keep the current one."""

    uid: int | None = None
    gid: int | None = None
    groups: list[int] = field(default_factory=list)  # supplementary groups of ``user``
    chroot: str | None = None

    @property
    def drops(self) -> bool:
        return self.uid is not None or self.gid is not None or self.chroot is not None


def resolve(cfg: Config) -> Privileges:
    """The uid/gid/groups/chroot ``cfg`` asks for; StartupError naming an unknown one."""
    user, group, root = (_text(cfg.get(name)) for name in ("user", "group", "chroot"))
    uid = gid = None
    groups: list[int] = []
    if user:
        entry = _passwd(user)
        if entry is None:  # a uid without a passwd entry: that uid, no supplementary groups
            uid = int(user)
        else:
            uid, gid = entry.pw_uid, entry.pw_gid
            groups = os.getgrouplist(entry.pw_name, gid)
    if group:
        gid = _group(group)
        groups = [*(g for g in groups if g != gid), gid]
    if root and not os.path.isdir(root):
        raise StartupError(f"chroot={root!r}: not a directory")
    return Privileges(uid, gid, groups, root or None)


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _passwd(user: str) -> pwd.struct_passwd | None:
    """The passwd entry of a user name or number (``user=``/``-u``); None for a number
    without one (Kamailio's user2uid takes any number)."""
    try:
        return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        if user.isdigit():
            return None
        raise StartupError(f"user={user!r}: no such user (user= / -u)") from None


def _group(group: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise StartupError(f"group={group!r}: no such group (group= / -g)") from None


def drop(priv: Privileges, owned: Iterable[Path] = ()) -> None:
    """Hand ``owned`` (directories: with what they hold) to the user, then chroot and change
    the groups and the uid of this process (its workers inherit them); StartupError if the
    system refuses (not root)."""
    if not priv.drops:
        return
    if priv.uid is not None or priv.gid is not None:
        for path in owned:
            _chown_tree(path, priv.uid, priv.gid)
    try:
        if priv.chroot is not None:
            os.chroot(priv.chroot)
            os.chdir("/")
        # the supplementary groups go too (root's would stay otherwise); a router already
        # running as the user (not root) has nothing to change and may not call setgroups
        changes_ids = priv.uid is not None or priv.gid is not None
        if changes_ids and set(priv.groups) != set(os.getgroups()):
            os.setgroups(priv.groups)
        if priv.gid is not None:
            os.setgid(priv.gid)
        if priv.uid is not None:
            os.setuid(priv.uid)
    except OSError as exc:
        raise StartupError(
            f"cannot drop privileges (user/group/chroot: {priv.uid}/{priv.gid}/"
            f"{priv.chroot}): {exc.strerror}"
        ) from None


def _chown_tree(path: Path, uid: int | None, gid: int | None) -> None:
    u, g = -1 if uid is None else uid, -1 if gid is None else gid
    try:
        os.chown(path, u, g, follow_symlinks=False)
        if path.is_dir() and not path.is_symlink():
            for child in path.iterdir():
                os.chown(child, u, g, follow_symlinks=False)
    except OSError as exc:
        raise StartupError(f"cannot hand {path} to uid {uid}: {exc.strerror}") from None
