"""The resolved model of the KEMI contract: modules, exports, params and modparams.

One description of an export, shared by the generator (which builds it from the
validated YAML) and the runtime (which reads it back from ``generated/api.json``).
Frozen dataclasses only: reading a model needs nothing beyond the standard library.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .contract import CORE_MODULE
from .errors import ApiDocumentError
from .types import param_letters, ret_code, signature_code

API_JSON_NOTE = "by pykemi.codegen from spec/*.yaml; do not edit"


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    doc: str = ""


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
    def param_types(self) -> tuple[str, ...]:
        return tuple(p.type for p in self.params)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def sig(self) -> str:
        """Trampoline key of the parameter list (``"is"``; ``"v"`` for none)."""
        return signature_code(self.param_types)

    @property
    def letters(self) -> str:
        """Signature letters of the parameters (``""`` for none): what shims check against."""
        return param_letters(self.param_types)

    @property
    def rcode(self) -> str:
        return ret_code(self.ret)

    @property
    def signature(self) -> str:
        """``KSR.sl.send_reply(int code, str reason) -> int``: how errors name an export."""
        args = ", ".join(f"{p.type} {p.name}" for p in self.params)
        return f"{self.ksr_name}({args}) -> {self.ret}"


# What a parameter (modparam or core global) does in pykemi compared with Kamailio:
# "works", "none" (accepted, no effect: a start-up warning says so) or "partial: <how>".
WORKS, NO_EFFECT, PARTIAL = "works", "none", "partial"
EFFECT_PATTERN = r"^(works|none|partial: \S.*)$"


# what an export's description says when pykemi has it but cannot do what it does yet
NOT_IMPLEMENTED = "not implemented in pykemi yet"


def effect_kind(effect: str) -> str:
    """``"works"``, ``"none"`` or ``"partial"`` of an effect string."""
    return effect.split(":", 1)[0]


def effect_note(effect: str) -> str:
    """What a partial effect does (``""`` for works/none)."""
    return effect.split(":", 1)[1].strip() if ":" in effect else ""


def effect_phrase(effect: str) -> str:
    """How a start-up warning says what a parameter (effect none or partial) does."""
    note = effect_note(effect)
    return f"has only part of its effect in pykemi: {note}" if note else "has no effect in pykemi"


@dataclass(frozen=True)
class ModParam:
    name: str
    type: str
    default: int | str | None
    doc: str = ""
    multi: bool = False  # may be given several times
    effect: str = WORKS  # see EFFECT_PATTERN

    @property
    def works(self) -> bool:
        return self.effect == WORKS


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

    def param(self, name: str) -> ModParam:
        """The modparam ``name`` (KeyError if the module has none of that name)."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"module {self.name!r} has no parameter {name!r}")

    def defaults(self) -> dict[str, int | str | None]:
        """``{modparam: default}`` as the spec gives them."""
        return {p.name: p.default for p in self.params}


@dataclass(frozen=True)
class Spec:
    """The whole model of a spec set: core first, then modules by name."""

    modules: tuple[Module, ...]
    exports: tuple[Export, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.exports:
            object.__setattr__(self, "exports", tuple(e for m in self.modules for e in m.exports))

    def to_dict(self) -> dict[str, Any]:
        """The model as plain data (generated/api.json; hashed for the contract check)."""
        return {"modules": [_module_dict(m) for m in self.modules]}

    @cached_property
    def hash(self) -> str:
        """Content hash of the model: shims and the C table carry it (contract check)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def module(self, name: str) -> Module:
        for m in self.modules:
            if m.name == name:
                return m
        raise KeyError(name)

    # -- api.json ---------------------------------------------------------------------

    def api_document(self) -> dict[str, Any]:
        """generated/api.json: the model plus its hash."""
        return {"_generated": API_JSON_NOTE, "spec_hash": self.hash, **self.to_dict()}

    def api_json(self) -> str:
        return json.dumps(self.api_document(), indent=1, sort_keys=False, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Spec:
        """The model back from ``to_dict``/api.json data; ApiDocumentError names what is wrong."""
        try:
            modules = doc["modules"]
            out: list[Module] = []
            index = 0
            for i, m in enumerate(modules):
                module = _module_from(m, index, f"modules[{i}]")
                index += len(module.exports)
                out.append(module)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, ApiDocumentError):
                raise
            raise ApiDocumentError(f"not a KEMI model: {type(exc).__name__}: {exc}") from exc
        return cls(modules=tuple(out))

    @classmethod
    def load(cls, path: Path) -> tuple[Spec, str]:
        """Read an api.json file: (model, the spec hash stamped in it)."""
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or not isinstance(doc.get("spec_hash"), str):
            raise ApiDocumentError("no 'spec_hash' string at the top level")
        return cls.from_dict(doc), doc["spec_hash"]


def default_submodule(module: str) -> str:
    """The KSR sub-module of a module's exports unless its spec says otherwise."""
    return "" if module == CORE_MODULE else module


def _module_dict(m: Module) -> dict[str, Any]:
    return {
        "name": m.name,
        "summary": m.summary,
        "description": m.description,
        "spec": m.spec_file,
        "params": [
            {"name": p.name, "type": p.type, "default": p.default, "doc": p.doc}
            | ({"multi": True} if p.multi else {})
            | ({"effect": p.effect} if p.effect != WORKS else {})
            for p in m.params
        ],
        "exports": [
            {
                "submodule": e.submodule,
                "name": e.name,
                "ret": e.ret,
                "params": [{"name": p.name, "type": p.type, "doc": p.doc} for p in e.params],
                "summary": e.summary,
                "description": e.description,
                "example": e.example,
                "kamailio_name": e.kamailio_name,
                "impl": {e.impl_kind: e.impl},
            }
            for e in m.exports
        ],
    }


def _module_from(m: Mapping[str, Any], start: int, where: str) -> Module:
    name = str(m["name"])
    spec_file = str(m.get("spec", ""))
    exports = []
    for i, e in enumerate(m["exports"]):
        impl = e["impl"]
        if not isinstance(impl, Mapping) or len(impl) != 1:
            raise ApiDocumentError(f"{where}.exports[{i}].impl: expected one of python or c")
        ((kind, target),) = impl.items()
        exports.append(
            Export(
                module=name,
                submodule=str(e["submodule"]),
                name=str(e["name"]),
                ret=str(e["ret"]),
                params=tuple(Param(p["name"], p["type"], p.get("doc", "")) for p in e["params"]),
                summary=e.get("summary", ""),
                description=e.get("description", ""),
                example=e.get("example", ""),
                kamailio_name=e.get("kamailio_name"),
                impl_kind=str(kind),
                impl=str(target),
                spec_file=spec_file,
                line=0,
                index=start + i,
                module_index=i,
            )
        )
    return Module(
        name=name,
        summary=m.get("summary", ""),
        description=m.get("description", ""),
        spec_file=spec_file,
        exports=tuple(exports),
        params=tuple(
            ModParam(
                p["name"],
                p["type"],
                p.get("default"),
                p.get("doc", ""),
                p.get("multi", False),
                p.get("effect", WORKS),
            )
            for p in m.get("params", ())
        ),
    )
