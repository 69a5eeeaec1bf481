"""pykemi.kemi: the KEMI contract, shared by the generator and the runtime.

The one resolved model of modules, exports, params and modparams (``model``) with its
api.json (de)serialisation, the type table (``types``), the contract's constants
(``contract``), the errors (``errors``) and one descriptor per scripting language
(``targets``). This package is a leaf: it imports neither ``pykemi.codegen`` nor
``pykemi.runtime``, and nothing outside the standard library.
"""

from __future__ import annotations

from .contract import (
    CORE_MODULE,
    DEFAULT_CAPACITY,
    ENGINE_SUBMODULE,
    MAX_PARAMS,
    PARAM_TYPES,
    PRIVATE_PREFIX,
    RESERVED_SUBMODULES,
    RET_TYPES,
    SR_KEMIP,
)
from .errors import ApiDocumentError, SpecError, SpecErrors
from .model import Export, ModParam, Module, Param, Spec
from .targets import ENGINE_TARGETS, TARGETS, Target
from .types import TYPES, TypeMap, all_signatures, ret_code, signature_code

__all__ = [
    "CORE_MODULE",
    "DEFAULT_CAPACITY",
    "ENGINE_SUBMODULE",
    "ENGINE_TARGETS",
    "MAX_PARAMS",
    "PARAM_TYPES",
    "PRIVATE_PREFIX",
    "RESERVED_SUBMODULES",
    "RET_TYPES",
    "SR_KEMIP",
    "TARGETS",
    "TYPES",
    "ApiDocumentError",
    "Export",
    "ModParam",
    "Module",
    "Param",
    "Spec",
    "SpecError",
    "SpecErrors",
    "Target",
    "TypeMap",
    "all_signatures",
    "ret_code",
    "signature_code",
]
