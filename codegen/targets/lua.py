"""Lua target: one shim per module (installs KSR.<sub>.<fn>) and the shared prelude."""

from __future__ import annotations

from typing import Any

import jinja2

from ..models import Export, Module, Spec
from ..names import escape
from ..render import banner
from ..types import TYPES


def _fast_check(e: Export) -> str:
    parts = []
    for p in e.params:
        n = escape(p.name, "lua")
        if p.type == "str":
            parts.append(f'type({n}) ~= "string"')
        else:
            parts.append(f'type({n}) ~= "number" or {n} % 1 ~= 0')
    return " or ".join(parts)


def sig_text(e: Export) -> str:
    return ", ".join(f"{TYPES[p.type].docs} {p.name}" for p in e.params)


def function_view(e: Export, table: str) -> dict[str, Any]:
    return {
        "id": f"{e.submodule}_{e.name}" if e.submodule else e.name,
        "member": escape(e.name, "lua"),
        "table": table,
        "ksr_name": e.ksr_name,
        "module_index": e.module_index,
        "sig_text": sig_text(e),
        "sig": "".join(TYPES[p.type].letter for p in e.params),
        "params": [p.name for p in e.params],
        "args": ", ".join(escape(p.name, "lua") for p in e.params),
        "fast_check": _fast_check(e),
    }


def module_view(m: Module) -> dict[str, Any]:
    subs = [{"name": s, "var": f"_kemi_m_{s}" if s else "_kemi_m"} for s in m.submodules]
    var = {s["name"]: s["var"] for s in subs}
    return {
        "module": m.name,
        "submodules": subs,
        "functions": [function_view(e, var[e.submodule]) for e in m.exports],
    }


def emit(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    out = {}
    tpl = env.get_template("lua/module.lua.j2")
    for m in spec.modules:
        rel = f"lua/{m.name}.lua"
        out[rel] = tpl.render(
            banner=banner(rel, [m.spec_file]), spec_hash=spec.hash, **module_view(m)
        )
    out["lua/_kemi_prelude.lua"] = env.get_template("lua/prelude.lua.j2").render(
        banner=banner("lua/_kemi_prelude.lua", [])
    )
    return out
