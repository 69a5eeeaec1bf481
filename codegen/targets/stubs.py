"""IDE stub targets: TypeScript declarations, LuaLS annotations + luacheck globals, Ruby RBS.

Each stub describes the whole ``KSR`` object as a script sees it: core functions
on ``KSR``, one sub-object per KSR sub-module (``KSR.sl``; Ruby ``KSR::SL``), and
the engine functions of ``KSR.x``. Names are spelled as the language's shim
spells them (``codegen.names.escape``); types come from ``codegen.types``.
Stubs are never loaded by the router: they are for editors, type checkers and
linters (``tsc --checkJs``, lua-language-server, ``luacheck``, ``rbs``/``steep``).
"""

from __future__ import annotations

from typing import Any

import jinja2

from ..models import Export, Spec
from ..names import escape
from ..render import banner
from ..types import TYPES
from .docs import RETURNS

ENGINE_SUB = "x"  # KSR.x: exit/drop/modf, provided by every engine, not by a spec


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
        if e.module == "core"
        else f'{e.module} (loadmodule "{e.module}.so")'
    )
    lines += ["", f"Module: {module}."]
    return [line.rstrip() for line in lines]


def _function_view(e: Export, lang: str, type_attr: str) -> dict[str, Any]:
    ret = getattr(TYPES[e.ret], type_attr)
    return {
        "ksr_name": e.ksr_name,
        "member": escape(e.name, lang),
        "ret": e.ret,
        "ret_type": ret,
        "returns": RETURNS[e.ret],
        "doc_lines": _doc_lines(e),
        "params": [
            {
                "name": escape(p.name, lang),
                "type": getattr(TYPES[p.type], type_attr),
                "doc": " ".join(p.doc.split()),
            }
            for p in e.params
        ],
    }


def groups(spec: Spec, lang: str, type_attr: str) -> list[dict[str, Any]]:
    """Exports grouped by KSR sub-module: core (``""``) first, then sub-modules by name."""
    by_sub: dict[str, list[Export]] = {}
    for e in spec.exports:
        by_sub.setdefault(e.submodule, []).append(e)
    order = ([""] if "" in by_sub else []) + sorted(s for s in by_sub if s)
    out = []
    for sub in order:
        exports = by_sub[sub]
        out.append(
            {
                "name": sub,
                "const": sub.upper(),
                "modules": sorted({e.module for e in exports}),
                "functions": [_function_view(e, lang, type_attr) for e in exports],
            }
        )
    return out


def _render(
    spec: Spec, env: jinja2.Environment, rel: str, template: str, lang: str, type_attr: str
) -> str:
    subs = groups(spec, lang, type_attr)
    return env.get_template(template).render(
        banner=banner(rel, _sources(spec)),
        spec_hash=spec.hash,
        core=next((g for g in subs if g["name"] == ""), None),
        submodules=[g for g in subs if g["name"]],
        engine_sub=ENGINE_SUB,
    )


def _comment_safe(text: str) -> str:
    return text.replace("*/", "*\u2215")


def emit_ts(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    """generated/js/KSR.d.ts: ``declare namespace KSR`` with typed functions."""
    env = env.overlay()
    env.filters["jsdoc"] = _comment_safe
    rel = "js/KSR.d.ts"
    return {rel: _render(spec, env, rel, "ts/KSR.d.ts.j2", "js", "ts")}


def emit_lua(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    """generated/lua/KSR.d.lua (LuaLS/EmmyLua annotations) and generated/lua/.luacheckrc."""
    out = {}
    for rel, template in (
        ("lua/KSR.d.lua", "luals/KSR.d.lua.j2"),
        ("lua/.luacheckrc", "luals/luacheckrc.j2"),
    ):
        out[rel] = _render(spec, env, rel, template, "lua", "lua")
    return out


def emit_rbs(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    """generated/ruby/KSR.rbs: ``module KSR`` with singleton method signatures."""
    rel = "ruby/KSR.rbs"
    return {rel: _render(spec, env, rel, "rbs/KSR.rbs.j2", "ruby", "rbs")}


__all__ = ["ENGINE_SUB", "emit_lua", "emit_rbs", "emit_ts", "groups"]
