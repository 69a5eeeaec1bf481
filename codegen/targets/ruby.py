"""Ruby target: one shim per module (KSR.fn for core, KSR::MOD.fn for sub-modules)."""

from __future__ import annotations

import jinja2

from ..models import Spec
from ..render import banner
from .shims import module_view


def _check(arg: str, ptype: str) -> str:
    return f"{arg}.is_a?(String)" if ptype == "str" else f"{arg}.is_a?(Integer)"


def emit(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    out = {}
    tpl = env.get_template("ruby/module.rb.j2")
    for m in spec.modules:
        rel = f"ruby/{m.name}.rb"
        view = module_view(m, "ruby", lambda s: s, _check, " && ")
        out[rel] = tpl.render(banner=banner(rel, [m.spec_file]), spec_hash=spec.hash, **view)
    return out
