"""Detach from the terminal as ``kamailio`` does without ``-DD``.

The creator process waits until the daemon serves (exit status 0) or fails to start (it prints
why, exit status 1), so ``pykemi-kamailio -f kamailio.cfg && next-step`` is reliable. The daemon
is not a session leader (it can never get a controlling terminal back) and its stdin/stdout go to
/dev/null, its stderr too unless logging to stderr was asked for (``-E``/``log_stderror``).
"""

from __future__ import annotations

import os
import sys

READY_BYTE = b"\x00"  # anything else the daemon writes is the reason it could not start


class Detached:
    """The daemon's end of the status pipe to its creator."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        # workers forked before the report must not hold the pipe open: the creator waits for
        # its end-of-file when the daemon dies without a word
        os.register_at_fork(after_in_child=self._close)

    def ready(self) -> None:
        self._send(READY_BYTE)

    def failed(self, why: str) -> None:
        self._send(why.encode("utf-8", "replace") or b"?")

    def _send(self, data: bytes) -> None:
        if self.fd < 0:
            return
        try:
            os.write(self.fd, data)
        except OSError:
            pass  # the creator is gone (killed): nobody to tell
        self._close()

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1  # workers forked later must not close a reused descriptor number


def detach(keep_stderr: bool, prog: str) -> Detached:
    """Fork into the background; returns only in the daemon (the creator exits)."""
    rfd, wfd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork():
        os.close(wfd)
        os._exit(_wait_for_daemon(rfd, prog))
    os.close(rfd)
    os.setsid()  # a new session: closing the starting shell sends us no SIGHUP
    # the working directory is kept (kamailio changes to /): relative paths of the config,
    # such as its script or an SQLite db_url, stay what they were at start
    if os.fork():
        os._exit(0)
    _to_devnull(keep_stderr)
    return Detached(wfd)


def _wait_for_daemon(rfd: int, prog: str) -> int:
    chunks: list[bytes] = []
    while chunk := os.read(rfd, 4096):
        chunks.append(chunk)
    status = b"".join(chunks)
    if status == READY_BYTE:
        return 0
    why = status.decode("utf-8", "replace") or (
        "the daemon exited before it was ready (start it with -E or -DD to see its log)"
    )
    print(why if why.startswith(prog) else f"{prog}: {why}", file=sys.stderr, flush=True)
    return 1


def _to_devnull(keep_stderr: bool) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1) if keep_stderr else (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
