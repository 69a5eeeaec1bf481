"""Run a function as another local user (nobody) in a forked child: the attacker of the
local-privacy tests. The tests run as root; without root they are skipped."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable

import pytest

NOBODY = 65534

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


def spawn_as_nobody(fn: Callable[[], int]) -> int:
    """Fork a child with uid/gid 65534 that exits with ``fn()`` (255 if it raised): its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 255
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code = fn()
        except BaseException:  # noqa: BLE001 - report anything, never return into pytest
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def as_nobody(fn: Callable[[], int]) -> int:
    """``fn()``'s return value (0..255), run as uid/gid 65534 in a child; 255 if it raised."""
    _, status = os.waitpid(spawn_as_nobody(fn), 0)
    return os.waitstatus_to_exitcode(status)


def nobody_can(fn: Callable[[], object]) -> bool:
    """Does ``fn()`` succeed as nobody (False when it raises PermissionError)?"""

    def attempt() -> int:
        try:
            fn()
        except PermissionError:
            return 1
        return 0

    code = as_nobody(attempt)
    assert code in (0, 1), f"the attempt as nobody failed unexpectedly (exit {code})"
    return code == 0
