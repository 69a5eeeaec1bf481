"""One emitter per target; each returns ``{relative path: content}`` for generated/."""

from __future__ import annotations

from collections.abc import Callable

import jinja2

from ...kemi.model import Spec
from . import api_json, c, docs, js, lua, python, ruby, sqlang, stubs

Emitter = Callable[[Spec, jinja2.Environment], dict[str, str]]

TARGETS: dict[str, Emitter] = {
    "api": api_json.emit,
    "c": c.emit,
    "python": python.emit,
    "lua": lua.emit,
    "js": js.emit,
    "ruby": ruby.emit,
    "sqlang": sqlang.emit,
    "docs": docs.emit,
    "ts": stubs.emit_ts,
    "luals": stubs.emit_lua,
    "rbs": stubs.emit_rbs,
}
