"""JavaScript target: one ES5 shim per module (a function expression)."""

from __future__ import annotations

import jinja2

from ...kemi.model import Spec
from ...kemi.targets import TARGETS
from .shims import emit_shims


def emit(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    return emit_shims(
        spec, env, TARGETS["js"], "js/module.js.j2", lambda s: f"_kemi_m_{s}" if s else "_kemi_m"
    )
