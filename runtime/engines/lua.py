"""Lua engine (app_lua) on lupa: Lua 5.1 by default, 5.2-5.5 and LuaJIT by modparam.

The KSR table is built from the generated shims of the loaded modules; each
shim function checks its arguments in Lua and calls the single host entry
with its slot index.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.context import CURRENT, MsgContext
from ..dispatch import GENERATED, Invoker
from ..extensions import shim_path
from .base import (
    DEFAULT_TIME_LIMIT_MS,
    EXIT_MARKER,
    Engine,
    ScriptError,
    glue_source,
    log_exit,
    log_script_error,
    log_timeout,
    modf,
)

VERSIONS = {
    "5.1": "lua51",
    "5.2": "lua52",
    "5.3": "lua53",
    "5.4": "lua54",
    "5.5": "lua55",
    "jit": "luajit21",
    "luajit": "luajit21",
    "luajit2.1": "luajit21",
    "luajit2.0": "luajit20",
}

TIMEOUT_MARKER = "~~ksr~route~time~limit~~"
HOOK_COUNT = 10000  # VM instructions between two deadline checks (~0.1 ms of Lua)

RUNNER = glue_source("lua_runner.lua").encode()  # see the file for what it does


def lua_module(version: str) -> Any:
    key = VERSIONS.get(str(version).lower().removeprefix("lua").strip() or "5.1")
    key = key or VERSIONS.get(str(version).lower())
    if key is None:
        raise ScriptError(
            f"app_lua: unsupported Lua version '{version}' (use one of {', '.join(VERSIONS)})"
        )
    try:
        return importlib.import_module(f"lupa.{key}")
    except ImportError as exc:
        raise ScriptError(f"app_lua: Lua {version} is not available in lupa: {exc}") from exc


class LuaEngine(Engine):
    name = "lua"
    rpc_prefix = "app_lua"

    def load(self, script: Path) -> None:
        self.script = script
        lupa = lua_module(str(self.params.get("version", "5.1")))
        self.lupa = lupa
        rt = lupa.LuaRuntime(encoding=None, unpack_returned_tuples=True, register_eval=False)
        self.rt = rt
        view: list[Invoker] = self.registry.view("bytes")
        self._view = view

        # slot -> host function; each shim binds its functions' entries once, at load time
        fns = rt.table_from({i: inv for i, inv in enumerate(view)})
        host = rt.table_from(
            {
                b"drop": self._drop,
                b"modf": lambda fname, *p: modf(self.registry, view, _text(fname), p),
            }
        )
        ksr = rt.table()
        rt.globals()[b"KSR"] = ksr
        prelude = (GENERATED / "lua" / "_kemi_prelude.lua").read_bytes()
        check, sig = rt.execute(prelude, ksr, host)
        for module in self.registry.loaded():
            shim = shim_path(module, "lua")  # generated/ or an out-of-tree module's tree
            try:
                src = shim.read_bytes()
            except OSError as exc:
                raise ScriptError(f"missing Lua shim {shim}: run `kemi generate`") from exc
            rt.execute(src, ksr, fns, self.registry.base(module), check, sig)
        self._runner, self._unhook, self._inactive = rt.execute(
            RUNNER,
            EXIT_MARKER.encode(),
            TIMEOUT_MARKER.encode(),
            time.monotonic,
            HOOK_COUNT,
        )
        self._depth = 0  # nested callbacks (KSR.route) share the outermost call's budget
        if not hasattr(self, "_limit"):
            self._limit = DEFAULT_TIME_LIMIT_MS / 1000.0
        self._globals = rt.globals()
        self._cache: dict[str, Any] = {}
        self._run_file(script)

    def _run_file(self, script: Path) -> None:
        """Compile and run the script; the chunk is named as the config wrote the path."""
        try:
            source = script.read_bytes()
        except OSError as exc:
            raise ScriptError(f"cannot read Lua script {script}: {exc.strerror}") from exc
        name = str(self.params.get("load") or script)
        g = self._globals
        compile_ = g[b"loadstring"] or g[b"load"]
        chunk, err = _pair(compile_(source, b"@" + name.encode()))
        if chunk is None:
            raise ScriptError(f"cannot load Lua script: {_text(err)}")
        ok, err = _pair(self._runner(0, chunk))
        if not ok:
            raise ScriptError(f"error running Lua script {name}: {_clean(_text(err))}")

    @staticmethod
    def _drop() -> None:
        if CURRENT.ctx is not None:
            CURRENT.ctx.drop = True

    def _function(self, name: str) -> Any:
        fn = self._cache.get(name)
        if fn is None:
            fn = self._globals[name.encode()]
            if fn is None or self.lupa.lua_type(fn) != "function":
                return None
            self._cache[name] = fn
        return fn

    def has(self, name: str) -> bool:
        return self._function(name) is not None

    def set_time_limit(self, ms: int) -> None:
        """Per-callback time budget (kemi.route_time_limit, ms); 0 disables it."""
        self._limit = max(0, ms) / 1000.0

    def call(self, name: str, ctx: MsgContext, args: Sequence[Any]) -> int:
        fn = self._function(name)
        conv = [a.encode() if isinstance(a, str) else a for a in args]
        limit = self._limit if self._depth == 0 else 0
        start = time.monotonic() if limit else 0.0
        self._depth += 1
        try:
            ok, err = _pair(self._runner(limit, fn, *conv))
        except Exception as exc:  # noqa: BLE001 - errors escaping lupa must not kill the worker
            if limit:
                self._unhook()  # the hook fired after xpcall returned: it is still set
                self._inactive()
            text = str(exc)
            if TIMEOUT_MARKER in text:
                return self._timed_out(name)
            log_script_error("app_lua", f"error in {name}: {exc!r}")
            return -1
        finally:
            self._depth -= 1
        if ok:
            return 1
        text = _text(err)
        if text == EXIT_MARKER:
            log_exit("app_lua")
            return 1
        if text == TIMEOUT_MARKER or (limit and time.monotonic() - start >= limit):
            # past the deadline the hook may also hit the error handler ("error in error
            # handling"): any failure after the deadline is the timeout
            return self._timed_out(name)
        log_script_error("app_lua", f"error from Lua in {name}: {_clean(text)}")
        return -1

    def _timed_out(self, name: str) -> int:
        return log_timeout("app_lua", name, self._limit)

    def reload(self) -> None:
        # as Kamailio: re-run the script in the existing state (globals persist)
        if self.script is None:
            return
        self._run_file(self.script)
        self._cache.clear()


def _pair(result: Any) -> tuple[Any, Any]:
    if isinstance(result, tuple):
        return (result[0], result[1] if len(result) > 1 else None)
    return (result, None)


_INTERNAL = ("[C]: in function 'xpcall'", '"<python>"', "(tail call)", "[C]: in ?")


def _clean(trace: str) -> str:
    """Drop the runner's own frames from a Lua traceback."""
    return "\n".join(line for line in trace.splitlines() if not any(m in line for m in _INTERNAL))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
