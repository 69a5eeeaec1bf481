"""The KEMI contract's constants: what Kamailio fixes and every side of pykemi agrees on.

Each fact is written here once; the generator spells it into C, shims and docs, and
the runtime checks against it.
"""

from __future__ import annotations

from typing import Literal

ParamType = Literal["int", "str"]
RetType = Literal["int", "bool", "xval", "none", "long"]

PARAM_TYPES: tuple[str, ...] = ("int", "str")
RET_TYPES: tuple[str, ...] = ("int", "bool", "xval", "none", "long")

# Kamailio's SR_KEMI_PARAMS_MAX: at most 6 parameters per export
MAX_PARAMS = 6

# the loadable module of the core functions (KSR.info, KSR.drop...): always loaded, first
CORE_MODULE = "core"

# slot (association) table size unless kemi.slot_capacity says otherwise
DEFAULT_CAPACITY = 1024

# Kamailio's sr_kemi_t parameter/return type flags (src/core/kemi.h)
SR_KEMIP: tuple[tuple[str, int], ...] = (
    ("SR_KEMIP_NONE", 0),
    ("SR_KEMIP_INT", 1 << 0),
    ("SR_KEMIP_STR", 1 << 1),
    ("SR_KEMIP_BOOL", 1 << 2),
    ("SR_KEMIP_XVAL", 1 << 3),
    ("SR_KEMIP_NULL", 1 << 4),
    ("SR_KEMIP_DICT", 1 << 5),
    ("SR_KEMIP_ARRAY", 1 << 6),
    ("SR_KEMIP_LONG", 1 << 7),
)
_KEMIP = dict(SR_KEMIP)
SR_KEMIP_NONE = _KEMIP["SR_KEMIP_NONE"]
SR_KEMIP_INT = _KEMIP["SR_KEMIP_INT"]
SR_KEMIP_STR = _KEMIP["SR_KEMIP_STR"]
SR_KEMIP_BOOL = _KEMIP["SR_KEMIP_BOOL"]
SR_KEMIP_XVAL = _KEMIP["SR_KEMIP_XVAL"]
SR_KEMIP_NULL = _KEMIP["SR_KEMIP_NULL"]
SR_KEMIP_LONG = _KEMIP["SR_KEMIP_LONG"]

# names the generated code itself uses; a spec name must not start with it
PRIVATE_PREFIX = "_kemi_"

# KSR.x (exit, drop, modf) is provided by every engine, never by a spec
ENGINE_SUBMODULE = "x"
RESERVED_SUBMODULES: dict[str, str] = {ENGINE_SUBMODULE: "engine-private (KSR.x: exit, drop, modf)"}
