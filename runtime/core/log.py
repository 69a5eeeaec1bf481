"""Kamailio-style logging: numeric levels, ``debug=`` threshold, stderr or syslog.

Levels follow Kamailio (``L_ALERT`` -5 ... ``L_DBG`` 3); a message is printed
when its level is <= the configured ``debug`` value.
"""

from __future__ import annotations

import os
import sys
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
