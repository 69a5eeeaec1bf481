"""The C side of dispatch: the compiled glue, the host API, and invokers for C exports.

C exports live in sr_kemi_t tables (generated) inside cffi extensions; at
startup their function pointers are stored in the C slot table, and each
invoker calls the trampoline of its signature with the slot index.

This module sits below ``dispatch`` (which imports it) and below the modules: what the
host API needs from a module (the reply sender) is handed in by ``prepare``.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..kemi.contract import SR_KEMIP_BOOL, SR_KEMIP_INT, SR_KEMIP_LONG, SR_KEMIP_NULL, SR_KEMIP_STR
from ..kemi.model import Export
from .core.context import CURRENT
from .core.errors import StartupError
from .core.log import L_ERR, log
from .core.pv import get_pv, set_pv

try:  # the cffi extension built at install (or by `kemi build`); missing: extension() says so
    from . import _kemi_dispatch  # type: ignore[attr-defined]

    _BUILD_ERROR: ImportError | None = None
except ImportError as exc:
    _kemi_dispatch = None
    _BUILD_ERROR = exc

if TYPE_CHECKING:
    from .core.context import MsgContext

_F = TypeVar("_F", bound=Callable[..., Any])

Invoker = Callable[..., Any]
# how a C module's ksr_host->send_reply replies (sl's send_reply: through tm when the
# request has a transaction); given by the router, which knows the modules
ReplySender = Callable[["MsgContext", int, str], int]

_ext: Any = None


def int_arg(name: str) -> str:
    """Expression passing an int parameter: Lua >= 5.3 and JS may hand over 2.0 for 2."""
    return f"({name} if {name}.__class__ is int else int({name}))"


def extension() -> Any:
    """The compiled dispatch extension (imported once; a clear error when missing or stale)."""
    global _ext
    if _ext is None:
        if _kemi_dispatch is None:
            raise StartupError(
                f"the C dispatch extension is not built ({_BUILD_ERROR}); run `pip install -e .` "
                "or `kemi build`"
            ) from _BUILD_ERROR
        _ext = _kemi_dispatch
        _install_host(_ext.ffi, _ext.lib)
    return _ext


def spec_hash_of(ffi: Any, lib: Any) -> str:
    return str(ffi.string(lib.kemi_spec_hash).decode())


# -- host API: what C modules call ------------------------------------------------------------

_keep: list[Any] = []  # buffers handed to C stay alive for the current callback
_modparams: dict[tuple[str, str], int] = {}
_reply_sender: ReplySender | None = None


def set_modparam_ints(values: dict[tuple[str, str], int]) -> None:
    _modparams.clear()
    _modparams.update(values)


def release_buffers() -> None:
    _keep.clear()


HOST_ERROR = -1  # what a host function returns to C when its Python side raised


def _host_error(name: str, exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    """cffi's onerror of every host callback: log the exception (where it was raised) instead
    of cffi's stderr print; the C caller gets HOST_ERROR (``error=``), never a silent 0."""
    where = traceback.extract_tb(tb)[-1] if tb is not None else None
    at = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
    log(L_ERR, f"host API {name}: {exc_type.__name__}: {exc}{at}", "cmod")


def _host_extern(ffi: Any, void: bool = False) -> Callable[[_F], _F]:
    """``ffi.def_extern`` for a host callback ``_kemi_host_<name>``: exceptions are logged
    and (unless the function is void) HOST_ERROR is returned."""

    def register(fn: _F) -> _F:
        name = fn.__name__.removeprefix("_kemi_host_")
        onerror = functools.partial(_host_error, name)
        if void:
            ffi.def_extern(onerror=onerror)(fn)
        else:
            ffi.def_extern(error=HOST_ERROR, onerror=onerror)(fn)
        return fn

    return register


def _install_host(ffi: Any, lib: Any) -> None:
    @_host_extern(ffi, void=True)
    def _kemi_host_log(level: int, text: Any, length: int) -> None:
        log(level, ffi.unpack(text, length).decode("utf-8", "replace"), "cmod")

    def _name(p: Any, n: int) -> str:
        return str(ffi.unpack(p, n).decode("utf-8", "surrogateescape"))

    @_host_extern(ffi)
    def _kemi_host_hdr_get(msg: Any, name: Any, nlen: int, out: Any) -> int:
        ctx = CURRENT.ctx
        if ctx is None:
            return -2
        value = ctx.msg.get(_name(name, nlen))
        if value is None:
            return -1
        data = value.encode("utf-8", "surrogateescape")
        buf = ffi.from_buffer(data)
        _keep.append((data, buf))
        out.s = ffi.cast("char *", buf)
        out.len = len(data)
        return 1

    @_host_extern(ffi)
    def _kemi_host_hdr_set(msg: Any, name: Any, nlen: int, val: Any, vlen: int) -> int:
        ctx = CURRENT.ctx
        if ctx is None:
            return -2
        ctx.msg.set_header(_name(name, nlen), _name(val, vlen))
        return 1

    @_host_extern(ffi)
    def _kemi_host_hdr_append(msg: Any, name: Any, nlen: int, val: Any, vlen: int) -> int:
        ctx = CURRENT.ctx
        if ctx is None:
            return -2
        ctx.msg.append_header(_name(name, nlen), _name(val, vlen))
        return 1

    @_host_extern(ffi)
    def _kemi_host_hdr_remove(msg: Any, name: Any, nlen: int) -> int:
        ctx = CURRENT.ctx
        if ctx is None:
            return -2
        return 1 if ctx.msg.remove_header(_name(name, nlen)) > 0 else -1

    @_host_extern(ffi)
    def _kemi_host_pv_get(msg: Any, name: Any, nlen: int, out: Any) -> int:
        ctx = CURRENT.ctx
        if ctx is None:
            return -2
        value = get_pv(ctx, _name(name, nlen))
        if value is None:
            out.vtype = SR_KEMIP_NULL
        elif isinstance(value, int):
            out.vtype = SR_KEMIP_INT
            out.v.n = value
        else:
            data = str(value).encode("utf-8", "surrogateescape")
            buf = ffi.from_buffer(data)
            _keep.append((data, buf))
            out.vtype = SR_KEMIP_STR
            out.v.s.s = ffi.cast("char *", buf)
            out.v.s.len = len(data)
        return 1

    @_host_extern(ffi)
    def _kemi_host_pv_set(msg: Any, name: Any, nlen: int, val: Any) -> int:
        ctx = CURRENT.ctx
        if ctx is None:
            return -2
        value: str | int | None
        if val.vtype == SR_KEMIP_INT:
            value = int(val.v.n)
        elif val.vtype == SR_KEMIP_STR:
            value = _name(val.v.s.s, val.v.s.len)
        else:
            value = None
        return 1 if set_pv(ctx, _name(name, nlen), value) else -1

    @_host_extern(ffi)
    def _kemi_host_send_reply(msg: Any, code: int, reason: Any, rlen: int) -> int:
        ctx = CURRENT.ctx
        if ctx is None:
            return -2
        if _reply_sender is None:
            log(L_ERR, "host API send_reply: no reply sender (the router gives sl's)", "cmod")
            return -1
        return int(_reply_sender(ctx, code, _name(reason, rlen)))

    @_host_extern(ffi)
    def _kemi_host_is_request(msg: Any) -> int:
        ctx = CURRENT.ctx
        return 1 if ctx is not None and ctx.msg.is_request else 0

    @_host_extern(ffi)
    def _kemi_host_modparam_int(module: Any, name: Any, dflt: int) -> int:
        key = (
            ffi.string(module).decode("utf-8", "replace"),
            ffi.string(name).decode("utf-8", "replace"),
        )
        return _modparams.get(key, dflt)

    lib.kemi_module_init(lib.kemi_host_api())


# -- C exports ------------------------------------------------------------------------------


def c_libraries(extra: Sequence[Any] = ()) -> list[Any]:
    """The built-in extension first, then out-of-tree ones (each an object with ffi and lib)."""
    return [extension(), *extra]


def find_c_export(libs: Sequence[Any], e: Export) -> Any:
    """The address of ``e``'s C function, from the first extension whose sr_kemi_t tables have it."""
    builtin = extension()
    for ext in [builtin, *[x for x in libs if x is not builtin]]:
        ffi, lib = ext.ffi, ext.lib
        i = 0
        while True:
            table = lib.kemi_module_tables[i]
            if table.module == ffi.NULL:
                break
            if ffi.string(table.module).decode() == e.module:
                j = 0
                while True:
                    row = table.exports[j]
                    if row.fname.s == ffi.NULL:
                        break
                    sub = ffi.unpack(row.mname.s, row.mname.len).decode()
                    fname = ffi.unpack(row.fname.s, row.fname.len).decode()
                    if sub == e.submodule and fname == e.name and row.func != ffi.NULL:
                        if ext is not builtin:
                            # pointers cannot cross FFI instances as cdata: pass the address
                            host = builtin.ffi.cast("uintptr_t", builtin.lib.kemi_host_api())
                            ext.lib.kemi_module_init(
                                ext.ffi.cast("const ksr_host_api_t *", int(host))
                            )
                        return int(ffi.cast("uintptr_t", row.func))
                    j += 1
            i += 1
    return None


class SlotTable(Protocol):
    """What ``prepare`` reads of a slot table (``dispatch.Registry``, one layer up)."""

    @property
    def capacity(self) -> int: ...
    @property
    def exports(self) -> Sequence[Export]: ...
    @property
    def impls(self) -> Sequence[Any]: ...  # Python callable, or the C function's address
    @property
    def send_reply(self) -> ReplySender | None: ...


def prepare(table: SlotTable) -> None:
    """Size the C slot table, store the C exports' pointers at their slots, and give the
    host API the table's reply sender (the previous one is kept when it has none)."""
    global _reply_sender
    ext = extension()
    lib = ext.lib
    if lib.kemi_slots_capacity() != table.capacity:
        if lib.kemi_slots_init(table.capacity) != 0:
            raise StartupError(f"cannot allocate a slot table of {table.capacity}")
    for slot, (e, impl) in enumerate(zip(table.exports, table.impls, strict=True)):
        if e.impl_kind == "c":
            lib.kemi_slot_set(slot, ext.ffi.cast("void *", impl))
    if table.send_reply is not None:
        _reply_sender = table.send_reply


_cmsg: Any = None


def _c_message() -> Any:
    """The sip_msg_t handed to C exports; host callbacks use the current context."""
    global _cmsg
    if _cmsg is None:
        _cmsg = extension().ffi.new("sip_msg_t *")
    return _cmsg


def c_invoker(e: Export, slot: int, strings: str) -> Invoker:
    """Call ``kemi_exec_<r>_<sig>(slot, msg, ...)``, converting arguments and the result."""
    ext = extension()
    ffi, lib = ext.ffi, ext.lib
    fn = getattr(lib, f"kemi_exec_{e.rcode}_{e.sig}")
    msg = _c_message()
    args = [f"a{i}" for i in range(len(e.params))]
    passed: list[str] = []
    for a, t in zip(args, e.param_types, strict=True):
        if t == "str":
            if strings == "str":
                passed.append(f"{a}.encode('utf-8', 'surrogateescape')")
                passed.append(f"len({a}.encode('utf-8', 'surrogateescape'))")
            else:
                passed.append(a)
                passed.append(f"len({a})")
        else:
            passed.append(int_arg(a))
    call = f"fn({slot}, msg{''.join(', ' + p for p in passed)})"
    lines = [f"def invoke({', '.join(args)}):"]
    if e.ret in ("int", "long"):
        lines.append(f"    return {call}")
    elif e.ret == "bool":
        lines.append(f"    return {call} > 0")
    elif e.ret == "none":
        lines.append(f"    {call}")
        lines.append("    return None")
    else:
        lines.append(f"    return xval({call})")
    namespace: dict[str, Any] = {"fn": fn, "msg": msg, "xval": _xval_converter(ffi, strings)}
    exec("\n".join(lines), namespace)
    invoker: Invoker = namespace["invoke"]
    invoker.__qualname__ = e.ksr_name
    return invoker


def _xval_converter(ffi: Any, strings: str) -> Any:
    def xval(p: Any) -> Any:
        t = p.vtype
        if t == SR_KEMIP_INT or t == SR_KEMIP_BOOL:
            return int(p.v.n)
        if t == SR_KEMIP_LONG:
            return int(p.v.l)
        if t == SR_KEMIP_STR:
            data = ffi.unpack(p.v.s.s, p.v.s.len) if p.v.s.len > 0 else b""
            return data if strings == "bytes" else data.decode("utf-8", "surrogateescape")
        return None

    return xval
