"""Pydantic models of a module spec file: they validate the YAML (errors with lines).

``codegen.spec`` resolves them into the KEMI model (``pykemi.kemi.model``), which
every emitter reads; the router reads the same model back from api.json.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ..kemi.contract import MAX_PARAMS, ParamType, RetType
from ..kemi.model import EFFECT_PATTERN, WORKS

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
    type: ParamType
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
    ret: RetType
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
    type: ParamType
    default: int | str | None = None
    doc: str = ""
    multi: bool = False  # may be given several times
    # what it does in pykemi: works | none (accepted, warned about) | "partial: <how>"
    effect: Annotated[str, StringConstraints(pattern=EFFECT_PATTERN)] = WORKS

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
