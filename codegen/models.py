"""Pydantic models of a module spec, and the frozen, ordered ``Spec`` built from them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .types import MAX_PARAMS, ret_code, signature_code

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
SubmoduleName = Annotated[str, StringConstraints(pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")]
PythonPath = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class ParamSpec(_Strict):
    """One parameter of an export: ``int`` or ``str``."""

    name: Identifier
    type: Literal["int", "str"]
    doc: str = ""


class ImplSpec(_Strict):
    """Where an export is implemented: a Python callable or a C symbol (exactly one)."""

    python: PythonPath | None = None
    c: Identifier | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ImplSpec:
        if (self.python is None) == (self.c is None):
            raise ValueError("give exactly one of 'python' (module.path:function) or 'c' (symbol)")
        return self


class ExportSpec(_Strict):
    """One function exported to KEMI."""

    name: Identifier
    ret: Literal["int", "bool", "xval", "none", "long"]
    params: list[ParamSpec] = Field(default_factory=list, max_length=MAX_PARAMS)
    summary: str = ""
    description: str = ""
    example: str = ""
    kamailio_name: str | None = None
    submodule: SubmoduleName | None = None
    impl: ImplSpec


class ModParamSpec(_Strict):
    """A module parameter (``modparam("module", "name", value)``)."""

    name: Identifier
    type: Literal["int", "str"]
    default: int | str | None = None
    doc: str = ""
    multi: bool = False  # may be given several times

    @model_validator(mode="after")
    def _default_matches(self) -> ModParamSpec:
        if self.default is not None:
            ok = (
                isinstance(self.default, int)
                if self.type == "int"
                else isinstance(self.default, str)
            )
            if not ok or isinstance(self.default, bool):
                raise ValueError(f"default {self.default!r} is not of type {self.type}")
        return self


class ModuleSpec(_Strict):
    """One spec file: a loadable module and its exports."""

    module: Identifier
    summary: str = ""
    description: str = ""
    submodule: SubmoduleName | None = None
    params: list[ModParamSpec] = Field(default_factory=list)
    exports: list[ExportSpec] = Field(default_factory=list)


# ---- the resolved model every emitter reads -------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    doc: str


@dataclass(frozen=True)
class Export:
    """An export with everything resolved: its sub-module, position and signature."""

    module: str  # loadable module ("core", "sl", "kemix")
    submodule: str  # KSR sub-module ("" for core functions)
    name: str
    ret: str
    params: tuple[Param, ...]
    summary: str
    description: str
    example: str
    kamailio_name: str | None
    impl_kind: str  # "python" | "c"
    impl: str
    spec_file: str
    line: int
    index: int  # position in the whole spec (registration order when all are loaded)
    module_index: int  # position within its module
    param_lines: tuple[int, ...] = ()  # line of each parameter, for error messages
    submodule_line: int = 0  # where the sub-module was set (the export or the file's default)

    @property
    def qualname(self) -> str:
        """``sl.send_reply``; core functions have no prefix (``info``)."""
        return f"{self.submodule}.{self.name}" if self.submodule else self.name

    @property
    def ksr_name(self) -> str:
        return "KSR." + self.qualname

    @property
    def sig(self) -> str:
        return signature_code([p.type for p in self.params])

    @property
    def rcode(self) -> str:
        return ret_code(self.ret)

    @property
    def param_types(self) -> tuple[str, ...]:
        return tuple(p.type for p in self.params)


@dataclass(frozen=True)
class ModParam:
    name: str
    type: str
    default: int | str | None
    doc: str
    multi: bool


@dataclass(frozen=True)
class Module:
    name: str
    summary: str
    description: str
    spec_file: str
    exports: tuple[Export, ...]
    params: tuple[ModParam, ...]

    @property
    def submodules(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for e in self.exports:
            seen.setdefault(e.submodule, None)
        return tuple(seen)


@dataclass(frozen=True)
class Spec:
    """The whole validated spec set: core first, then modules by name."""

    modules: tuple[Module, ...]
    exports: tuple[Export, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The model as plain data (generated/api.json; hashed for the contract check)."""
        return {
            "modules": [
                {
                    "name": m.name,
                    "summary": m.summary,
                    "description": m.description,
                    "spec": m.spec_file,
                    "params": [
                        {"name": p.name, "type": p.type, "default": p.default, "doc": p.doc}
                        | ({"multi": True} if p.multi else {})
                        for p in m.params
                    ],
                    "exports": [
                        {
                            "submodule": e.submodule,
                            "name": e.name,
                            "ret": e.ret,
                            "params": [
                                {"name": p.name, "type": p.type, "doc": p.doc} for p in e.params
                            ],
                            "summary": e.summary,
                            "description": e.description,
                            "example": e.example,
                            "kamailio_name": e.kamailio_name,
                            "impl": {e.impl_kind: e.impl},
                        }
                        for e in m.exports
                    ],
                }
                for m in self.modules
            ]
        }

    @property
    def hash(self) -> str:
        """Content hash of the model: shims and the C table carry it (contract check)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def module(self, name: str) -> Module:
        for m in self.modules:
            if m.name == name:
                return m
        raise KeyError(name)
