"""The one type table: a spec type's place in the contract and its C and docs spellings.

A scripting language's spelling of each type is a column owned by its Target
(``pykemi.kemi.targets``): adding a language adds a Target, not a column here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .contract import MAX_PARAMS, PARAM_TYPES


@dataclass(frozen=True)
class TypeMap:
    """How one spec type is written outside the scripting languages."""

    spec: str
    sr_kemip: str  # SR_KEMIP_* constant
    letter: str  # signature letter: i(nt) s(tr); returns: i(nt-like) x(val)
    c_param: str
    c_ret: str
    docs: str


TYPES: dict[str, TypeMap] = {
    "int": TypeMap("int", "SR_KEMIP_INT", "i", "int", "int", "int"),
    "long": TypeMap("long", "SR_KEMIP_LONG", "i", "long", "int", "long"),
    "str": TypeMap("str", "SR_KEMIP_STR", "s", "str *", "int", "str"),
    "bool": TypeMap("bool", "SR_KEMIP_BOOL", "i", "int", "int", "bool"),
    "xval": TypeMap("xval", "SR_KEMIP_XVAL", "x", "", "sr_kemi_xval_t *", "xval"),
    "none": TypeMap("none", "SR_KEMIP_NONE", "i", "", "int", "none"),
}


def param_letters(params: Sequence[str]) -> str:
    """The signature letters of a parameter list: ``["int", "str"]`` -> ``"is"``."""
    return "".join(TYPES[p].letter for p in params)


def signature_code(params: Sequence[str]) -> str:
    """Trampoline key for a parameter list: ``["int", "str"]`` -> ``"is"``, ``[]`` -> ``"v"``."""
    return param_letters(params) or "v"


def ret_code(ret: str) -> str:
    """``x`` for xval (returns a pointer), ``i`` for every int-returning kind."""
    return TYPES[ret].letter if ret == "xval" else "i"


def all_signatures() -> list[tuple[str, ...]]:
    """Every parameter list Kamailio supports: 0-6 params, each int or str (127 lists)."""
    out: list[tuple[str, ...]] = [()]
    frontier: list[tuple[str, ...]] = [()]
    for _ in range(MAX_PARAMS):
        frontier = [(*sig, t) for sig in frontier for t in PARAM_TYPES]
        out.extend(frontier)
    return out
