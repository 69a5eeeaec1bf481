"""Ruby engine (app_ruby) on libruby, embedded through cffi (ruby_build.py, ruby_glue.c).

KSR is built as Kamailio's app_ruby shapes it: core functions on ``KSR``, modules as
constants ``KSR::SL.send_reply``, ``KSR::X.modf`` (plus ``exit``/``drop``). The C glue
defines ``KSR._kemi_call(slot, *args)`` and friends; the prelude below adds the Ruby
helpers; then each loaded module's generated shim (generated/ruby/<module>.rb) and the
script are loaded at top level, so ``def ksr_request_route`` is a method of Object.

One Ruby VM per process, created on first use and kept across fork(2) (Ruby starts no
thread of its own here). Ruby is bound to the thread that created it, so the engine
refuses to run from any other thread. Loading a second engine in the same process (tests)
starts over with a fresh KSR and without the previous script's top-level methods.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from ...kemi.model import Export
from ...kemi.targets import TARGETS
from ..core.context import CURRENT, MsgContext
from ..dispatch import KemiArgError
from ..extensions import shim_path
from . import ruby_build
from .base import GLUE_DIR, Engine, ScriptError, log_exit, log_script_error, modf

# Ruby side of the host (KSR::X, argument-error backtraces), loaded after KSR::SHIMS is set
PRELUDE = GLUE_DIR / "ruby_prelude.rb"

_FIXNUM_MAX = 1 << 62  # Ruby Fixnums: -2**62 <= v < 2**62, encoded as (v << 1) | 1
_STR_TAG = 1 << 63  # PK_STR_TAG: a string result waiting in pk_retbuf
_MASK = (1 << 64) - 1
_INT64 = 1 << 63
K_INT, K_STR, K_TRUE, K_FALSE, K_NIL, K_FLOAT, K_OTHER = range(7)  # enum pk_kind
_MODF_ERROR = -(2**31)  # INT32_MIN from pk_py_modf: the C side raises the pending error
_F = TypeVar("_F", bound=Callable[..., Any])

# process-wide state: one VM, one active engine
_glue: ModuleType | None = None
_thread: int | None = None
_active: RubyEngine | None = None
_keep: list[Any] = []  # coerced strings handed to C, alive until the next check
# globals of the generated hot-path callbacks: "view" is the active engine's slot table
_HOT: dict[str, Any] = {"view": []}

# One KSR-call callback per arity (0-3), generated so that each converts its arguments
# and its result inline: on this path every Python-level call is a measurable share.
# o<i> == 0: v<i> is an int; else the string is argbuf[o<i> - 1:o<i> - 1 + v<i>].
_CALL_TEMPLATE = """
def pk_py_call{n}(slot{params}):
    try:
        r = view[slot]({args})
        if r is None:
            return QNIL
        cls = r.__class__
        if cls is bool:
            return QTRUE if r else QFALSE
        if cls is int:
            if 0 <= r < FIXNUM_MAX:
                return (r << 1) | 1
        elif cls is bytes:
            n = len(r)
            if n <= retcap:
                retbuf[:n] = r
                return STR_TAG | (n << 1)
        return result(r)
    except BaseException as exc:
        return error(slot, exc)
"""


def ruby_name(e: Export) -> str:
    """The function as a Ruby script calls it: KSR.info, KSR::SL.send_reply."""
    return f"{TARGETS['ruby'].ksr_submodule(e.submodule)}.{e.name}"


def ruby_signature(e: Export) -> str:
    args = ", ".join(f"{p.type} {p.name}" for p in e.params)
    return f"{ruby_name(e)}({args})"


def _glue_module() -> ModuleType:
    """Build/import the glue, bind the Python callbacks, start Ruby (once per process)."""
    global _glue, _thread
    if _glue is not None:
        return _glue
    try:
        glue = ruby_build.load()
    except ruby_build.RubyBuildError as exc:
        raise ScriptError(str(exc)) from exc
    if glue.lib.pk_init() != 0:
        raise ScriptError(f"app_ruby: cannot start Ruby: {_text(glue.ffi, glue.lib.pk_error())}")
    _bind_callbacks(glue.ffi, glue.lib)
    _thread = threading.get_ident()
    _glue = glue
    return glue


def _bind_callbacks(ffi: Any, lib: Any) -> None:
    unpack = ffi.unpack
    set_error = lib.pk_set_error
    pk_str, pk_int = lib.pk_str, lib.pk_int

    def fail(kind: int, text: str) -> None:
        data = text.encode("utf-8", "replace")
        set_error(kind, data, len(data))

    qnil: int = lib.pk_qnil()
    qtrue: int = lib.pk_qtrue()
    qfalse: int = lib.pk_qfalse()
    qundef: int = lib.pk_qundef()
    retbuf = memoryview(ffi.buffer(lib.pk_retbuf))

    def result(r: Any) -> int:
        """The rarer results as a Ruby VALUE: negative or big ints, long strings, str."""
        if isinstance(r, bool):
            return qtrue if r else qfalse
        if isinstance(r, int):
            v = int(r)
            if -_FIXNUM_MAX <= v < _FIXNUM_MAX:
                return ((v << 1) | 1) & _MASK
            return pk_int(v)  # type: ignore[no-any-return]
        if isinstance(r, str):
            r = r.encode("utf-8", "surrogateescape")
        if isinstance(r, bytes):
            return pk_str(r, len(r))  # type: ignore[no-any-return]
        if r is not None:
            log_script_error("app_ruby", f"cannot return {type(r).__name__} to Ruby")
        return qnil

    def error(slot: int, exc: BaseException) -> int:
        if isinstance(exc, KemiArgError):
            fail(lib.PK_ERR_TYPE, str(exc))
        else:
            fail(lib.PK_ERR_RUNTIME, _call_error(slot, exc))
        return qundef

    def extern(fail_value: int | None) -> Callable[[_F], _F]:
        """def_extern whose uncaught exception becomes a pending Ruby RuntimeError and
        ``fail_value`` (the C side then raises it), never cffi's silent 0; None: void."""

        def register(fn: _F) -> _F:
            name = fn.__name__

            def onerror(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
                text = f"{name}: {exc_type.__name__}: {exc}"
                if fail_value is None:
                    log_script_error("app_ruby", text)
                else:
                    fail(lib.PK_ERR_RUNTIME, text)

            if fail_value is None:
                ffi.def_extern(name=name, onerror=onerror)(fn)
            else:
                ffi.def_extern(name=name, error=fail_value, onerror=onerror)(fn)
            return fn

        return register

    _HOT.update(
        QNIL=qnil, QTRUE=qtrue, QFALSE=qfalse, FIXNUM_MAX=_FIXNUM_MAX, STR_TAG=_STR_TAG,
        retbuf=retbuf, retcap=len(retbuf), result=result, error=error,
        argbuf=ffi.buffer(lib.pk_argbuf),  # slicing a cffi buffer gives bytes
    )  # fmt: skip
    for n in range(4):
        src = _CALL_TEMPLATE.format(
            n=n,
            params="".join(f", o{i}, v{i}" for i in range(n)),
            args=", ".join(f"argbuf[o{i} - 1:o{i} - 1 + v{i}] if o{i} else v{i}" for i in range(n)),
        )
        exec(src, _HOT)  # code built from the arity only
        extern(qundef)(_HOT[f"pk_py_call{n}"])

    @extern(qundef)
    def pk_py_calln(slot: int, argc: int, argv: Any) -> int:
        try:
            args = [argv[k] for k in range(argc)]
            return result(_HOT["view"][slot](*[unpack(a.s, a.i) if a.s else a.i for a in args]))
        except BaseException as exc:  # noqa: BLE001 - Python errors become Ruby exceptions
            return error(slot, exc)

    @extern(-1)
    def pk_py_check(slot: int, argc: int, argv: Any, out: Any) -> int:
        try:
            e = _active.registry.exports[slot] if _active is not None else None
            if e is None:
                raise KemiArgError(f"KSR._kemi_check: no export in slot {slot}")
            values = [_coerce(e, i, argv[i], ffi) for i in range(min(argc, len(e.params)))]
            if argc < len(e.params):
                raise KemiArgError(
                    f"{ruby_signature(e)}: {argc} arguments given, {len(e.params)} expected"
                )
        except KemiArgError as exc:
            fail(lib.PK_ERR_TYPE, str(exc))
            return -1
        except BaseException as exc:  # noqa: BLE001
            fail(lib.PK_ERR_RUNTIME, f"KSR._kemi_check: {exc!r}")
            return -1
        _keep.clear()
        for i, v in enumerate(values):
            o = out[i]
            if isinstance(v, bytes):
                buf = ffi.from_buffer(v)
                _keep.append((v, buf))
                o.kind, o.s, o.i = lib.PK_STR, buf, len(v)
            elif isinstance(v, int):
                o.kind, o.i = lib.PK_INT, v
            else:  # the caller's own string: its pointer stays valid during the call
                o.kind, o.s, o.i = lib.PK_STR, v[0], v[1]
        return len(values)

    @extern(-1)
    def pk_py_base(module: Any, length: int) -> int:
        name = unpack(module, length).decode("utf-8", "replace")
        try:
            if _active is None:
                raise ImportError("no Ruby engine is loading")
            return _active.registry.base(name)
        except ImportError as exc:
            fail(lib.PK_ERR_LOAD, str(exc))
            return -1

    @extern(None)
    def pk_py_drop() -> None:
        if CURRENT.ctx is not None:
            CURRENT.ctx.drop = True

    @extern(_MODF_ERROR)
    def pk_py_modf(argc: int, argv: Any) -> int:
        try:
            args = [unpack(a.s, a.i) if a.kind == K_STR else str(a.i).encode() for a in
                    (argv[k] for k in range(argc))]  # fmt: skip
            if _active is None:
                raise RuntimeError("no Ruby engine is loaded")
            view = _HOT["view"]
            return modf(_active.registry, view, args[0].decode("utf-8", "replace"), args[1:])
        except BaseException as exc:  # noqa: BLE001
            fail(lib.PK_ERR_RUNTIME, f"KSR::X.modf: {exc!r}")
            return _MODF_ERROR


def _coerce(e: Export, i: int, a: Any, ffi: Any) -> Any:
    """One argument to the export's parameter type, or KemiArgError (Ruby TypeError)."""
    want, kind = e.params[i].type, a.kind
    if want == "str":
        if kind == K_STR:  # passed through unchanged: (pointer, length)
            return (a.s, a.i)
        if kind == K_INT:
            return str(a.i).encode()
        if kind == K_FLOAT and math.isfinite(a.d):
            return repr(a.d).encode()
    else:
        value = None
        if kind == K_INT:
            value = int(a.i)
        elif kind == K_FLOAT and math.isfinite(a.d):
            value = int(a.d)  # truncate toward zero, as NUM2INT does
        elif kind == K_STR:
            text = ffi.unpack(a.s, a.i).decode("utf-8", "replace")
            try:
                value = int(text.strip(), 10)
            except ValueError:
                pass
        if value is not None and -_INT64 <= value < _INT64:
            return value
    raise KemiArgError(
        f"{ruby_signature(e)}: argument #{i + 1} '{e.param_names[i]}' expects {want}, "
        f"got {_describe(a, ffi)}"
    )


def _describe(a: Any, ffi: Any) -> str:
    kind = a.kind
    if kind == K_INT:
        return f"Integer {a.i}"
    if kind == K_STR:
        text = ffi.unpack(a.s, min(a.i, 40)).decode("utf-8", "replace")
        return f'String "{text}"' + ("..." if a.i > 40 else "")
    if kind == K_FLOAT:
        return f"Float {a.d!r}"
    named = {K_TRUE: "true", K_FALSE: "false", K_NIL: "nil"}.get(kind)
    return named or ffi.unpack(a.s, a.i).decode("utf-8", "replace")


def _slot_name(slot: int) -> str:
    try:
        return ruby_name(_active.registry.exports[slot]) if _active else f"slot {slot}"
    except IndexError:
        return f"slot {slot}"


def _call_error(slot: int, exc: BaseException) -> str:
    if isinstance(exc, IndexError) and (_active is None or slot >= len(_HOT["view"])):
        return f"KSR._kemi_call: no export in slot {slot}"
    return f"{_slot_name(slot)}: {type(exc).__name__}: {exc}"


def _text(ffi: Any, ptr: Any) -> str:
    return ffi.string(ptr).decode("utf-8", "replace")  # type: ignore[no-any-return]


def _ruby_str(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class RubyEngine(Engine):
    name = "ruby"
    rpc_prefix = "app_ruby"

    def load(self, script: Path) -> None:
        global _active
        self.script = script
        glue = _glue_module()
        self._check_thread()
        self._ffi, self._lib = glue.ffi, glue.lib
        view = self.registry.view("bytes")
        _active = self
        _HOT["view"] = view
        self._cache: dict[str, bytes | None] = {}
        lib = self._lib
        self._step(lib.pk_setup(), "cannot reset the Ruby VM")
        # generated/ruby/<module>.rb, or an out-of-tree module's own shim
        shims = [shim_path(module, "ruby") for module in self.registry.loaded()]
        shims_rb = ", ".join(_ruby_str(f"{s}:") for s in shims)
        self._step(
            lib.pk_eval(f"KSR::SHIMS = [{shims_rb}].freeze".encode()),
            "app_ruby: cannot set KSR::SHIMS",
        )
        self._step(lib.pk_load(str(PRELUDE).encode()), "error in the app_ruby prelude")
        for shim in shims:
            if not shim.is_file():
                raise ScriptError(f"missing Ruby shim {shim}: run `kemi generate`")
            self._step(lib.pk_load(str(shim).encode()), f"error loading Ruby shim {shim}")
        self._run_file(script)

    def _run_file(self, script: Path) -> None:
        if not script.is_file():
            raise ScriptError(f"cannot read Ruby script {script}")
        self._step(self._lib.pk_load(str(script).encode()), "error loading Ruby script")

    def _step(self, rc: int, what: str) -> None:
        # 1 = the code exited (KSR::X.exit at top level): not an error
        if rc < 0:
            raise ScriptError(f"{what}: {_text(self._ffi, self._lib.pk_error())}")

    @staticmethod
    def _check_thread() -> None:
        if threading.get_ident() != _thread:
            raise ScriptError("app_ruby: Ruby runs only in the thread that started it")

    def has(self, name: str) -> bool:
        if name not in self._cache:
            key = name.encode()
            self._cache[name] = key if self._lib.pk_has(key) else None
        return self._cache[name] is not None

    def call(self, name: str, ctx: MsgContext, args: Sequence[Any]) -> int:
        if threading.get_ident() != _thread:
            log_script_error("app_ruby", f"{name}: called outside Ruby's thread")
            return -1
        if _active is not self:  # the VM now runs a newer engine's script (tests)
            log_script_error("app_ruby", f"{name}: this engine was replaced in this process")
            return -1
        key = self._cache.get(name) or name.encode()
        lib, ffi = self._lib, self._ffi
        if args:
            data = [a if isinstance(a, bytes) else str(a).encode() for a in args]
            argv = ffi.new("const char *[]", [ffi.from_buffer(d) for d in data])
            lens = ffi.new("long[]", [len(d) for d in data])
            rc = lib.pk_call(key, len(data), argv, lens)
        else:
            rc = lib.pk_call(key, 0, ffi.NULL, ffi.NULL)
        if rc == 0:
            return 1
        if rc == 1:
            log_exit("app_ruby")
            return 1
        log_script_error("app_ruby", f"error in {name}: {_text(ffi, lib.pk_error())}")
        return -1

    def reload(self) -> None:
        # as Kamailio's app_ruby: load the script again in the running VM (state persists)
        if self.script is None or _active is not self:
            return
        self._check_thread()
        self._run_file(self.script)
        self._cache.clear()
