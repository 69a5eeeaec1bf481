"""IDE stub targets: TypeScript declarations, LuaLS annotations + luacheck globals, Ruby RBS.

Each stub describes the whole ``KSR`` object as a script sees it: core functions
on ``KSR``, one sub-object per KSR sub-module (``KSR.sl``; Ruby ``KSR::SL``), and
the engine functions of ``KSR.x``. Names and types are spelled by the language's
``Target`` (``pykemi.kemi.targets``), as its shim spells them.
Stubs are never loaded by the router: they are for editors, type checkers and
linters (``tsc --checkJs``, lua-language-server, ``luacheck``, ``rbs``/``steep``).
"""

from __future__ import annotations

from dataclasses import dataclass

import jinja2

from ...kemi.contract import CORE_MODULE, ENGINE_SUBMODULE
from ...kemi.model import Export, Spec
from ...kemi.targets import TARGETS, Target
from ..render import banner
from .docs import RETURNS


def _sources(spec: Spec) -> list[str]:
    return sorted({m.spec_file for m in spec.modules})


def _doc_lines(e: Export) -> list[str]:
    """Summary and description of an export as comment lines (no trailing blanks)."""
    text = e.summary.strip() or f"{e.ksr_name}."
    lines = text.splitlines()
    if e.description.strip():
        lines += ["", *e.description.strip().splitlines()]
    module = (
        "core (always available)"
        if e.module == CORE_MODULE
        else f'{e.module} (loadmodule "{e.module}.so")'
    )
    lines += ["", f"Module: {module}."]
    return [line.rstrip() for line in lines]


@dataclass(frozen=True)
class StubParam:
    name: str  # escaped for the language
    type: str  # the language's annotation
    doc: str  # one line


@dataclass(frozen=True)
class StubFunction:
    ksr_name: str
    member: str  # escaped for the language
    ret: str  # spec return type
    ret_type: str  # the language's annotation
    returns: str  # what the value means (docs' wording)
    doc_lines: tuple[str, ...]
    params: tuple[StubParam, ...]


@dataclass(frozen=True)
class StubGroup:
    """The functions of one KSR sub-module (``""``: core functions on KSR itself)."""

    name: str
    const: str  # as the language spells the sub-module (Ruby: KSR::TM)
    modules: tuple[str, ...]  # loadable modules providing them
    functions: tuple[StubFunction, ...]


def _function_view(e: Export, t: Target) -> StubFunction:
    return StubFunction(
        ksr_name=e.ksr_name,
        member=t.escape(e.name),
        ret=e.ret,
        ret_type=t.types[e.ret],
        returns=RETURNS[e.ret],
        doc_lines=tuple(_doc_lines(e)),
        params=tuple(
            StubParam(t.escape(p.name), t.types[p.type], " ".join(p.doc.split())) for p in e.params
        ),
    )


def groups(spec: Spec, t: Target) -> list[StubGroup]:
    """Exports grouped by KSR sub-module: core (``""``) first, then sub-modules by name."""
    by_sub: dict[str, list[Export]] = {}
    for e in spec.exports:
        by_sub.setdefault(e.submodule, []).append(e)
    order = ([""] if "" in by_sub else []) + sorted(s for s in by_sub if s)
    return [
        StubGroup(
            name=sub,
            const=t.submodule_name(sub),
            modules=tuple(sorted({e.module for e in by_sub[sub]})),
            functions=tuple(_function_view(e, t) for e in by_sub[sub]),
        )
        for sub in order
    ]


def _render(spec: Spec, env: jinja2.Environment, rel: str, template: str, t: Target) -> str:
    subs = groups(spec, t)
    return env.get_template(template).render(
        banner=banner(rel, _sources(spec)),
        spec_hash=spec.hash,
        core=next((g for g in subs if g.name == ""), None),
        submodules=[g for g in subs if g.name],
        engine_sub=ENGINE_SUBMODULE,
        engine_const=t.submodule_name(ENGINE_SUBMODULE),
    )


def _comment_safe(text: str) -> str:
    return text.replace("*/", "*\u2215")


def emit_ts(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    """generated/js/KSR.d.ts: ``declare namespace KSR`` with typed functions."""
    env = env.overlay()
    env.filters["jsdoc"] = _comment_safe
    rel = "js/KSR.d.ts"
    return {rel: _render(spec, env, rel, "ts/KSR.d.ts.j2", TARGETS["js"])}


def emit_lua(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    """generated/lua/KSR.d.lua (LuaLS/EmmyLua annotations) and generated/lua/.luacheckrc."""
    out = {}
    for rel, template in (
        ("lua/KSR.d.lua", "luals/KSR.d.lua.j2"),
        ("lua/.luacheckrc", "luals/luacheckrc.j2"),
    ):
        out[rel] = _render(spec, env, rel, template, TARGETS["lua"])
    return out


def emit_rbs(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    """generated/ruby/KSR.rbs: ``module KSR`` with singleton method signatures."""
    rel = "ruby/KSR.rbs"
    return {rel: _render(spec, env, rel, "rbs/KSR.rbs.j2", TARGETS["ruby"])}


__all__ = ["emit_lua", "emit_rbs", "emit_ts", "groups"]
