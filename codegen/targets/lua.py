"""Lua target: one shim per module (installs KSR.<sub>.<fn>) and the shared prelude."""

from __future__ import annotations

import jinja2

from ...kemi.model import Spec
from ...kemi.targets import TARGETS
from ..render import banner
from .shims import emit_shims, module_view

__all__ = ["emit", "module_view"]


def emit(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    out = emit_shims(
        spec, env, TARGETS["lua"], "lua/module.lua.j2", lambda s: f"_kemi_m_{s}" if s else "_kemi_m"
    )
    out["lua/_kemi_prelude.lua"] = env.get_template("lua/prelude.lua.j2").render(
        banner=banner("lua/_kemi_prelude.lua", [])
    )
    return out
