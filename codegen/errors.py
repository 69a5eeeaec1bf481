"""Spec errors live in the KEMI contract package (``pykemi.kemi.errors``); kept importable here."""

from __future__ import annotations

from ..kemi.errors import SpecError, SpecErrors

__all__ = ["SpecError", "SpecErrors"]
