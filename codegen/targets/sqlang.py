"""Squirrel target: one shim per module, run with KSR in the root table."""

from __future__ import annotations

import jinja2

from ...kemi.model import Spec
from ...kemi.targets import TARGETS
from .shims import emit_shims


def emit(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    return emit_shims(
        spec,
        env,
        TARGETS["sqlang"],
        "sqlang/module.nut.j2",
        lambda s: f"::KSR.{s}" if s else "::KSR",
    )
