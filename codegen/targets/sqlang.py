"""Squirrel target: one shim per module, run with KSR in the root table."""

from __future__ import annotations

import jinja2

from ..models import Spec
from ..render import banner
from .shims import module_view


def _check(arg: str, ptype: str) -> str:
    if ptype == "str":
        return f'typeof {arg} != "string"'
    return f'typeof {arg} != "integer"'


def emit(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    out = {}
    tpl = env.get_template("sqlang/module.nut.j2")
    for m in spec.modules:
        rel = f"sqlang/{m.name}.nut"
        view = module_view(m, "sqlang", lambda s: f"::KSR.{s}" if s else "::KSR", _check, " || ")
        out[rel] = tpl.render(banner=banner(rel, [m.spec_file]), spec_hash=spec.hash, **view)
    return out
