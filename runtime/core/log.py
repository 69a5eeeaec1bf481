"""Kamailio-style logging: numeric levels, ``debug=`` threshold, stderr or syslog.

Levels follow Kamailio (``L_ALERT`` -5 ... ``L_DBG`` 3); a message is printed
when its level is <= the configured ``debug`` value.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

L_ALERT = -5
L_BUG = -4
L_CRIT2 = -3
L_CRIT = -2
L_ERR = -1
L_WARN = 0
L_NOTICE = 1
L_INFO = 2
L_DBG = 3

LEVEL_NAMES: dict[int, str] = {
    L_ALERT: "ALERT",
    L_BUG: "BUG",
    L_CRIT2: "CRITICAL",
    L_CRIT: "CRITICAL",
    L_ERR: "ERROR",
    L_WARN: "WARNING",
    L_NOTICE: "NOTICE",
    L_INFO: "INFO",
    L_DBG: "DEBUG",
}

NAMED_LEVELS: dict[str, int] = {
    "alert": L_ALERT,
    "bug": L_BUG,
    "crit": L_CRIT,
    "err": L_ERR,
    "error": L_ERR,
    "warn": L_WARN,
    "warning": L_WARN,
    "notice": L_NOTICE,
    "info": L_INFO,
    "dbg": L_DBG,
    "debug": L_DBG,
}


class Logger:
    """Process-wide log sink; ``rank`` is the worker rank shown in each line."""

    def __init__(self) -> None:
        self.level = L_WARN
        self.stream: TextIO = sys.stderr
        self.rank = 0

    def enabled(self, level: int) -> bool:
        return level <= self.level

    def log(self, level: int, text: str, origin: str = "core") -> None:
        if level > self.level:
            return
        if not text.endswith("\n"):
            text += "\n"
        name = LEVEL_NAMES.get(level, "DEBUG" if level > L_DBG else "ALERT")
        try:
            self.stream.write(f" {self.rank}({os.getpid()}) {name}: <{origin}> {text}")
            self.stream.flush()
        except (OSError, ValueError):  # closed or broken stream: logging must never kill a worker
            pass


LOG = Logger()


def log(level: int, text: str, origin: str = "core") -> None:
    LOG.log(level, text, origin)


def err(text: str, origin: str = "core") -> None:
    LOG.log(L_ERR, text, origin)


def warn(text: str, origin: str = "core") -> None:
    LOG.log(L_WARN, text, origin)


def info(text: str, origin: str = "core") -> None:
    LOG.log(L_INFO, text, origin)


def dbg(text: str, origin: str = "core") -> None:
    LOG.log(L_DBG, text, origin)


# -- untrusted input in log lines (log amplification, security review L3) ----------------------

EXCERPT = 256  # characters of received data a log line quotes at most


def clip(text: str | bytes, limit: int = EXCERPT) -> str:
    """``text`` for a log line: non-printable characters escaped, cut to ``limit`` characters
    with the full length noted (one 64 KB junk datagram must not become a 64 KB log line)."""
    full = len(text)
    head = text[:limit]
    if isinstance(head, bytes):
        head = head.decode("latin-1")
    out = head.encode("unicode_escape").decode("ascii")[:limit]
    return out if full <= limit else f"{out}... ({full} in all)"


_DIGITS = str.maketrans("", "", "0123456789")


def error_kind(text: str) -> str:
    """``text`` up to its first quoted excerpt, digits removed: a :class:`Repeated` key that is
    the same for every message with the same kind of error."""
    return text.split("'", 1)[0].translate(_DIGITS)[:64]


class Repeated:
    """One log line per ``interval`` seconds and key for a recurring event (dropped messages,
    refused connections, bad datagrams): the first occurrence is logged at once, the following
    ones are counted and reported in one line by a later :meth:`log` or by :func:`flush_repeated`
    (called from the serving loops). ``{n}`` in the text becomes the count."""

    MAX_KEYS = 64  # distinct keys kept between reports (bounded memory for hostile input)

    def __init__(self, level: int, interval: float = 5.0, origin: str = "core") -> None:
        self.level, self.interval, self.origin = level, interval, origin
        self._pending: dict[str, tuple[int, str]] = {}  # key -> (count, latest text)
        self._due: dict[str, float] = {}  # key -> monotonic time of the next allowed line
        _REPEATED.append(self)

    def log(self, text: str, key: str = "") -> None:
        if self.level > LOG.level:
            return
        count, _ = self._pending.get(key, (0, ""))
        if count == 0 and key not in self._due and len(self._due) >= self.MAX_KEYS:
            self.flush(force=True)
            self._due.clear()
        self._pending[key] = (count + 1, text)
        self.flush(key)

    def flush(self, only: str | None = None, force: bool = False) -> None:
        now = time.monotonic()
        for key in [only] if only is not None else list(self._pending):
            if key not in self._pending or (not force and now < self._due.get(key, 0.0)):
                continue
            count, text = self._pending.pop(key)
            self._due[key] = now + self.interval
            LOG.log(self.level, text.replace("{n}", str(count)), self.origin)


_REPEATED: list[Repeated] = []


def flush_repeated() -> None:
    """Report the counts of :class:`Repeated` events whose interval has passed."""
    for rep in _REPEATED:
        if rep._pending:
            rep.flush()
