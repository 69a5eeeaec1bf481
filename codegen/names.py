"""Reserved words and name escaping, per language: views of the Targets (``pykemi.kemi.targets``).

Kept for callers that think in ``(name, lang)`` pairs; the words themselves are
each Target's ``reserved`` set.
"""

from __future__ import annotations

from ..kemi.contract import PRIVATE_PREFIX
from ..kemi.targets import TARGETS

RESERVED: dict[str, frozenset[str]] = {name: t.reserved for name, t in TARGETS.items()}

__all__ = ["PRIVATE_PREFIX", "RESERVED", "escape", "reserved_in"]


def escape(name: str, lang: str) -> str:
    """The spelling of ``name`` in ``lang``: reserved words get a trailing underscore."""
    return TARGETS[lang].escape(name)


def reserved_in(name: str) -> list[str]:
    """Languages in which ``name`` is reserved."""
    return [lang for lang, words in RESERVED.items() if name in words]
