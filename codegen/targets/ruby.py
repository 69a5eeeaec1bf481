"""Ruby target: one shim per module (KSR.fn for core, KSR::MOD.fn for sub-modules)."""

from __future__ import annotations

import jinja2

from ...kemi.model import Spec
from ...kemi.targets import TARGETS
from .shims import emit_shims


def emit(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    ruby = TARGETS["ruby"]
    return emit_shims(spec, env, ruby, "ruby/module.rb.j2", ruby.ksr_submodule)
