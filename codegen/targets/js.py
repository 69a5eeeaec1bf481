"""JavaScript target: one ES5 shim per module (a function expression)."""

from __future__ import annotations

import jinja2

from ..models import Spec
from ..render import banner
from .shims import module_view


def _check(arg: str, ptype: str) -> str:
    if ptype == "str":
        return f'typeof {arg} !== "string"'
    return f'typeof {arg} !== "number" || {arg} % 1 !== 0'


def emit(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    out = {}
    tpl = env.get_template("js/module.js.j2")
    for m in spec.modules:
        rel = f"js/{m.name}.js"
        view = module_view(m, "js", lambda s: f"_kemi_m_{s}" if s else "_kemi_m", _check, " || ")
        out[rel] = tpl.render(banner=banner(rel, [m.spec_file]), spec_hash=spec.hash, **view)
    return out
