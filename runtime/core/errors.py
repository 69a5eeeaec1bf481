"""Errors every layer of the runtime may raise (the lowest layer: imports nothing)."""

from __future__ import annotations


class StartupError(Exception):
    """The router cannot start: a clear message for the operator."""


class KemiArgError(TypeError):
    """Wrong arguments to a KSR function; the message names it and its signature."""
