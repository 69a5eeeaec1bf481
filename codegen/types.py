"""The one type-mapping table: spec type -> every target's spelling.

Every emitter reads types from here; none spells a target type itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ParamType = Literal["int", "str"]
RetType = Literal["int", "bool", "xval", "none", "long"]

PARAM_TYPES: tuple[str, ...] = ("int", "str")
RET_TYPES: tuple[str, ...] = ("int", "bool", "xval", "none", "long")
MAX_PARAMS = 6


@dataclass(frozen=True)
class TypeMap:
    """How one spec type is written in each target."""

    spec: str
    sr_kemip: str  # SR_KEMIP_* constant
    api: str  # name printed by api_list ("long" prints as "int", as Kamailio's param map)
    letter: str  # signature letter: i(nt) s(tr); returns: i(nt-like) x(val)
    c_param: str
    c_ret: str
    python: str
    lua: str  # LuaLS annotation
    ts: str  # TypeScript declaration
    rbs: str  # Ruby RBS
    sqlang: str  # Squirrel (docs only; the language is untyped)
    docs: str


TYPES: dict[str, TypeMap] = {
    "int": TypeMap(
        "int", "SR_KEMIP_INT", "int", "i", "int", "int",
        "int", "integer", "number", "Integer", "integer", "int",
    ),
    "long": TypeMap(
        "long", "SR_KEMIP_LONG", "long", "i", "long", "int",
        "int", "integer", "number", "Integer", "integer", "long",
    ),
    "str": TypeMap(
        "str", "SR_KEMIP_STR", "str", "s", "str *", "int",
        "str", "string", "string", "String", "string", "str",
    ),
    "bool": TypeMap(
        "bool", "SR_KEMIP_BOOL", "bool", "i", "int", "int",
        "bool", "boolean", "boolean", "bool", "bool", "bool",
    ),
    "xval": TypeMap(
        "xval", "SR_KEMIP_XVAL", "xval", "x", "", "sr_kemi_xval_t *",
        "str | int | None", "string|integer|nil", "string | number | null",
        "(String | Integer)?", "string|integer|null", "xval",
    ),
    "none": TypeMap(
        "none", "SR_KEMIP_NONE", "none", "i", "", "int",
        "None", "nil", "void", "void", "null", "none",
    ),
}  # fmt: skip


def signature_code(params: list[str]) -> str:
    """Trampoline key for a parameter list: ``["int", "str"]`` -> ``"is"``, ``[]`` -> ``"v"``."""
    return "".join(TYPES[p].letter for p in params) or "v"


def ret_code(ret: str) -> str:
    """``x`` for xval (returns a pointer), ``i`` for every int-returning kind."""
    return "x" if ret == "xval" else "i"


def all_signatures() -> list[tuple[str, ...]]:
    """Every parameter list Kamailio supports: 0-6 params, each int or str (127 lists)."""
    out: list[tuple[str, ...]] = [()]
    frontier: list[tuple[str, ...]] = [()]
    for _ in range(MAX_PARAMS):
        frontier = [(*sig, t) for sig in frontier for t in ("int", "str")]
        out.extend(frontier)
    return out
