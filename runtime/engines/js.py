"""JavaScript engine (app_jsdt) on QuickJS (the `quickjs` package).

Kamailio embeds Duktape; QuickJS runs the same ES5 scripts and a call into
Python costs ~0.5us there against ~14us with pyduktape2 (measured, see the
engine report), so QuickJS it is. The KSR object is built as in the Lua
engine: a prelude (argument checks, KSR.x) and one generated shim per loaded
module, each shim called with (KSR, call, base, check, sig).

QuickJS names every evaluated chunk ``<input>``; stack traces are rewritten
to the script path, and the prelude/shim frames (all functions named
``_kemi_*``) are dropped so an error points at the script line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..core.context import CURRENT, MsgContext
from ..core.log import L_ERR, log
from ..dispatch import Invoker
from ..extensions import shim_path
from .base import EXIT_MARKER, Engine, ScriptError, log_exit, log_script_error, modf

# Host functions are handed over as globals (the only way the quickjs package
# exposes Python callables), captured by the prelude and deleted again.
# No route time budget: the quickjs binding's only interrupt (Context.set_time_limit)
# refuses every call into Python while it is set, i.e. every KSR function. A runaway
# script is ended by the server's worker watchdog (kemi.worker_watchdog).
_PRELUDE = r"""
var KSR = {};
(function (g) {
    "use strict";
    var sigs = [];
    var drop = g._kemi_host_drop, modf = g._kemi_host_modf;
    var call = g._kemi_host_call;
    delete g._kemi_host_drop;
    delete g._kemi_host_modf;
    delete g._kemi_host_call;

    function _kemi_sig(slot, name, text, letters) {
        sigs[slot] = [name, text, letters];
    }

    function what(v) {
        return v === null ? "null" : typeof v;
    }

    function _kemi_check(slot, args) {
        var s = sigs[slot], letters = s[2], out = [], i, v, n;
        for (i = 0; i < letters.length; i++) {
            v = args[i];
            if (letters.charAt(i) === "s") {
                if (typeof v === "number") {
                    v = String(v);
                } else if (typeof v !== "string") {
                    throw new TypeError(s[0] + "(" + s[1] + "): argument #" + (i + 1) +
                        " expects str, got " + what(v));
                }
            } else {
                if (typeof v === "string") {
                    n = Number(v);
                    if (/^\s*$/.test(v) || n !== n) {
                        throw new TypeError(s[0] + "(" + s[1] + "): argument #" + (i + 1) +
                            " expects int, got string '" + v + "'");
                    }
                    v = n;
                }
                if (typeof v !== "number" || v !== v) {
                    throw new TypeError(s[0] + "(" + s[1] + "): argument #" + (i + 1) +
                        " expects int, got " + what(v));
                }
                // truncate toward zero as duk_to_int; |0 also makes it an int for Python
                v = (v >= -2147483648 && v <= 2147483647) ? (v | 0) :
                    (v < 0 ? Math.ceil(v) : Math.floor(v));
            }
            out[i] = v;
        }
        return out;
    }

    KSR.x = {
        exit: function _kemi_exit() {
            throw "~~ksr~exit~~";
        },
        drop: function _kemi_drop() {
            drop();
            throw "~~ksr~exit~~";
        },
        modf: function _kemi_modf(fname) {
            var a = [], i;
            for (i = 1; i < arguments.length && i <= 7; i++) {
                a.push(typeof arguments[i] === "string" ? arguments[i] : String(arguments[i]));
            }
            return modf(String(fname), a.length, a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
        }
    };

    // a generated shim is a function expression: (KSR, call, base, check, sig)
    g._kemi_load = function _kemi_load(shim, base) {
        shim(KSR, call, base, _kemi_check, _kemi_sig);
    };

    // KEMI "none" functions return undefined in JS: wrap them by arity
    g._kemi_none = function _kemi_none(path, nargs) {
        var parts = path.split("."), t = KSR, i, f;
        for (i = 0; i < parts.length - 1; i++) {
            t = t[parts[i]];
        }
        f = t && t[parts[i]];
        if (typeof f !== "function") {
            return;
        }
        t[parts[i]] = [
            function _kemi_n0() { f(); },
            function _kemi_n1(a) { f(a); },
            function _kemi_n2(a, b) { f(a, b); },
            function _kemi_n3(a, b, c) { f(a, b, c); },
            function _kemi_n4(a, b, c, d) { f(a, b, c, d); },
            function _kemi_n5(a, b, c, d, e) { f(a, b, c, d, e); },
            function _kemi_n6(a, b, c, d, e, h) { f(a, b, c, d, e, h); }
        ][nargs];
    };

    g._kemi_isfn = function _kemi_isfn(name) {
        return typeof g[name] === "function";
    };
})(this);
"""

_HELPERS = ("_kemi_load", "_kemi_none", "_kemi_isfn")
_FRAME = re.compile(r"^\s*at _kemi_\w* \(")


class _Unconvertible:
    """Returned to QuickJS after a Python error in a KSR call: it cannot be converted, so the
    script gets a catchable InternalError (raising would leave a Python error pending)."""


_FAILED = _Unconvertible()


class JsEngine(Engine):
    name = "jsdt"
    rpc_prefix = "app_jsdt"

    def load(self, script: Path) -> None:
        import quickjs

        self.script = script
        self._quickjs = quickjs
        self._name = str(self.params.get("load") or script)
        self._cache: dict[str, Any] = {}
        view = self._view()
        ctx = quickjs.Context()
        self.ctx = ctx
        calls = self._caller(view)
        ctx.add_callable("_kemi_host_call", calls)
        ctx.add_callable("_kemi_host_drop", self._drop)
        ctx.add_callable("_kemi_host_modf", self._modf)
        ctx.eval(_PRELUDE)
        helpers = {h: ctx.get(h) for h in _HELPERS}
        ctx.eval("".join(f"delete this.{h};" for h in _HELPERS))
        self._isfn = helpers["_kemi_isfn"]
        for module in self.registry.loaded():
            shim = shim_path(module, "js")  # generated/ or an out-of-tree module's tree
            try:
                src = shim.read_text(encoding="utf-8")
            except OSError as exc:
                raise ScriptError(f"missing JS shim {shim}: run `kemi generate`") from exc
            try:
                helpers["_kemi_load"](ctx.eval(src), self.registry.base(module))
            except quickjs.JSException as exc:
                raise ScriptError(f"JS shim {shim} failed: {exc}") from exc
        for e in self.registry.exports:
            if e.ret == "none":
                helpers["_kemi_none"](e.ksr_name.removeprefix("KSR."), len(e.params))
        self._run_file(script)

    def _view(self) -> list[Invoker]:
        """The "str" view; xval results go through a filter: QuickJS cannot take (and crashes
        on) Python strings with surrogates, i.e. non-UTF-8 message bytes."""
        view = list(self.registry.view("str"))
        for slot, e in enumerate(self.registry.exports):
            if e.ret == "xval":
                view[slot] = _utf8_safe(view[slot])
        self._slots = view
        return view

    def _caller(self, view: list[Invoker]) -> Callable[..., Any]:
        def call(slot: int, *args: Any) -> Any:
            try:
                return view[slot](*args)
            except Exception as exc:  # noqa: BLE001 - never leave a Python error pending in QuickJS
                return self._call_failed(slot, args, exc)

        return call

    def _call_failed(self, slot: int, args: tuple[Any, ...], exc: Exception) -> Any:
        # JS numbers like 1.0 or 1e10 arrive as floats: retry with ints, as duk_to_int would
        if isinstance(exc, TypeError) and any(isinstance(a, float) for a in args):
            fixed = [_to_int(a) if isinstance(a, float) else a for a in args]
            try:
                return self._slots[slot](*fixed)
            except Exception as again:  # noqa: BLE001 - reported below
                exc = again
        name = self.registry.exports[slot].ksr_name
        log(L_ERR, f"app_jsdt: error in {name}: {exc!r}", "kemi")
        return _FAILED

    def _run_file(self, script: Path) -> None:
        try:
            source = script.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScriptError(f"cannot read JS script {script}: {exc}") from exc
        try:
            self.ctx.eval(source)
        except self._quickjs.JSException as exc:
            raise ScriptError(f"error loading JS script {self._name}: {self._trace(exc)}") from exc
        except Exception as exc:  # e.g. a stack overflow reported by the binding
            raise ScriptError(f"error loading JS script {self._name}: {exc!r}") from exc

    def _trace(self, exc: BaseException) -> str:
        """The exception text with ``<input>`` replaced by the script path, host frames cut."""
        lines = [ln for ln in str(exc).rstrip("\n").splitlines() if not _FRAME.match(ln)]
        lines = [ln for ln in lines if ln.strip() not in ("at <eval> (<input>)", "undefined")]
        return "\n".join(lines).replace("<input>", self._name)

    def _drop(self) -> None:
        if CURRENT.ctx is not None:
            CURRENT.ctx.drop = True

    def _modf(self, fname: str, n: int, *params: Any) -> int:
        try:
            return modf(self.registry, self._slots, fname, params[:n])
        except Exception as exc:  # noqa: BLE001 - a script error, not a worker crash
            log(L_ERR, f"app_jsdt: modf('{fname}') failed: {exc!r}", "kemi")
            return -1

    def _function(self, name: str) -> Any:
        fn = self._cache.get(name)
        if fn is None:
            if not name.isidentifier() or not self._isfn(name):
                return None
            fn = self.ctx.get(name)
            self._cache[name] = fn
        return fn

    def has(self, name: str) -> bool:
        return self._function(name) is not None

    def call(self, name: str, ctx: MsgContext, args: Sequence[Any]) -> int:
        fn = self._function(name)
        try:
            fn(*args)
        except self._quickjs.JSException as exc:
            first, _, rest = str(exc).partition("\n")
            # a thrown string has no stack: QuickJS appends "undefined"
            if first == EXIT_MARKER and rest.strip() in ("", "undefined"):
                log_exit("app_jsdt")
                return 1
            log_script_error("app_jsdt", f"error in {name}: {self._trace(exc)}")
            return -1
        except Exception as exc:  # noqa: BLE001 - e.g. StackOverflow: never kill the worker
            log_script_error("app_jsdt", f"error in {name}: {exc!r}")
            return -1
        return 1

    def reload(self) -> None:
        # as app_jsdt: a fresh context; a broken new script leaves the old one running
        if self.script is None:
            return
        old = (self.ctx, self._slots, self._cache, self._isfn)
        try:
            self.load(self.script)
        except ScriptError:
            self.ctx, self._slots, self._cache, self._isfn = old
            raise


def _utf8_safe(inv: Invoker) -> Invoker:
    def invoke(*args: Any) -> Any:
        r = inv(*args)
        if r.__class__ is str and not r.isascii():
            r = r.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return r

    invoke.__qualname__ = getattr(inv, "__qualname__", "invoke")
    return invoke


def _to_int(v: float) -> int:
    if v != v:  # NaN
        return 0
    return max(-(2**31), min(2**31 - 1, int(v)))
