"""The slot (association) table: every loaded export gets an integer slot.

Registration order is Kamailio's: the core tables first, then each module in
``loadmodule`` order. Each engine asks for a *view*: one precomputed callable
per slot, specialised for the export's signature and for how that engine
passes strings (``str`` for Python, ``bytes`` for Lua and the others), so a
script call is an index into a list, never a name lookup.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..kemi.contract import CORE_MODULE, DEFAULT_CAPACITY
from ..kemi.errors import ApiDocumentError
from ..kemi.model import Export, Module, Spec
from . import cdispatch
from .cdispatch import Invoker, ReplySender, int_arg
from .core.context import CURRENT
from .core.errors import KemiArgError, StartupError
from .core.log import L_ERR, log

__all__ = [
    "CORE_MODULE",
    "DEFAULT_CAPACITY",
    "GENERATED",
    "MISSING",
    "Api",
    "Export",
    "Invoker",
    "KemiArgError",
    "Registry",
    "StartupError",
    "check_args",
    "int_arg",
    "param_map",
    "python_invoker",
]

GENERATED = Path(__file__).resolve().parent.parent / "generated"


class Api:
    """The loaded KEMI model (``pykemi.kemi``): modules by name and the spec hash it was
    generated with. A view for lookups; the model itself describes every export."""

    def __init__(self, source: Spec | Mapping[str, Any], spec_hash: str | None = None) -> None:
        """``source``: the model, or api.json data (whose stamped ``spec_hash`` is kept)."""
        if isinstance(source, Spec):
            spec = source
        else:
            try:
                spec = Spec.from_dict(source)
            except ApiDocumentError as exc:
                raise StartupError(f"api.json: {exc}") from exc
            spec_hash = spec_hash or source.get("spec_hash")
        self.spec = spec
        self.spec_hash: str = spec_hash if spec_hash is not None else spec.hash
        self.modules: dict[str, Module] = {m.name: m for m in spec.modules}

    @classmethod
    def load(cls, path: Path | None = None) -> Api:
        path = path or GENERATED / "api.json"
        try:
            spec, spec_hash = Spec.load(path)
        except (OSError, ValueError, ApiDocumentError) as exc:
            raise StartupError(f"cannot read {path}: {exc}; run `kemi generate`") from exc
        return cls(spec, spec_hash)

    def merged(self, other: Api) -> Api:
        """This API plus another spec set's modules (out-of-tree modules)."""
        modules = {**self.modules, **other.modules}
        return Api(Spec(modules=tuple(modules.values())), self.spec_hash)


def _import_callable(path: str, where: str) -> Callable[..., Any]:
    mod_name, _, attr = path.partition(":")
    try:
        mod = importlib.import_module(mod_name)
        fn = getattr(mod, attr)
    except (ImportError, AttributeError) as exc:
        raise StartupError(f"{where}: cannot load implementation {path!r}: {exc}") from exc
    if not callable(fn):
        raise StartupError(f"{where}: implementation {path!r} is not callable")
    return fn  # type: ignore[no-any-return]


class Registry:
    """Slot table of one process: the loaded exports in registration order."""

    def __init__(
        self, api: Api, capacity: int = DEFAULT_CAPACITY, send_reply: ReplySender | None = None
    ) -> None:
        if capacity <= 0:
            raise StartupError(f"slot capacity must be positive, got {capacity}")
        self.api = api
        self.capacity = capacity
        self.send_reply = send_reply  # for C modules' ksr_host->send_reply
        self.exports: list[Export] = []
        self.impls: list[Any] = []  # Python callable, or the C function pointer
        self.bases: dict[str, int] = {}
        self.c_libs: list[Any] = []  # (ffi, lib) of C extensions providing exports
        self._views: dict[str, list[Invoker]] = {}

    # -- registration ------------------------------------------------------------------

    def load_module(self, name: str) -> int:
        """Give ``name``'s exports slots; returns its base slot. Idempotent."""
        if name in self.bases:
            return self.bases[name]
        info = self.api.modules.get(name)
        if info is None:
            raise StartupError(
                f"module '{name}' has no spec (known: {', '.join(self.api.modules)})"
            )
        if len(self.exports) + len(info.exports) > self.capacity:
            raise StartupError(
                f"too many KEMI exports: loading module '{name}' needs "
                f"{len(self.exports) + len(info.exports)} slots but the slot table holds "
                f"{self.capacity}; raise it with the global parameter kemi.slot_capacity"
            )
        base = len(self.exports)
        self.bases[name] = base
        for e in info.exports:
            where = f"{e.ksr_name} (module {name})"
            if e.impl_kind == "python":
                self.impls.append(_import_callable(e.impl, where))
            else:
                self.impls.append(self._c_function(e, where))
            self.exports.append(e)
        self._views.clear()
        return base

    def _c_function(self, e: Export, where: str) -> Any:
        ptr = cdispatch.find_c_export(self.c_libs, e)
        if ptr is None:
            raise StartupError(f"{where}: C symbol '{e.impl}' is not in any compiled extension")
        return ptr

    def base(self, module: str) -> int:
        try:
            return self.bases[module]
        except KeyError:
            raise ImportError(
                f"KEMI module '{module}' is not loaded (add loadmodule \"{module}.so\")"
            ) from None

    def loaded(self) -> list[str]:
        return list(self.bases)

    # -- views for engines -------------------------------------------------------------

    def view(self, strings: str) -> list[Invoker]:
        """One invoker per slot; ``strings`` is "str" (Python) or "bytes" (other engines)."""
        cached = self._views.get(strings)
        if cached is not None:
            return cached
        out: list[Invoker] = []
        cdispatch.prepare(self)
        for e, impl in zip(self.exports, self.impls, strict=True):
            if e.impl_kind == "python":
                out.append(python_invoker(e, impl, strings))
            else:
                out.append(cdispatch.c_invoker(e, len(out), strings))
        self._views[strings] = out
        return out

    def find(self, qualname: str) -> int:
        """Slot of ``sub.name`` (startup-time helper; never used on the hot path)."""
        for i, e in enumerate(self.exports):
            if e.qualname == qualname:
                return i
        raise KeyError(qualname)

    def api_list(self) -> dict[str, Any]:
        """Kamailio's ``app_<lang>.api_list`` result for the loaded exports."""
        methods = []
        for e in self.exports:
            methods.append(
                {
                    "func": {
                        "ret": e.ret,
                        "module": e.submodule,
                        "name": e.name,
                        "params": param_map(e.param_types),
                    }
                }
            )
        return {"msize": len(methods), "methods": methods}


def param_map(params: Sequence[str]) -> str:
    """Kamailio's api_list parameter text: "str, int", "none", cut with ", ..." at 64 chars."""
    if not params:
        return "none"
    text = ""
    for i, p in enumerate(params):
        piece = p if i == 0 else ", " + p
        if len(text) + len(piece) >= 64:
            return text + ", ..."
        text += piece
    return text


# -- invokers ------------------------------------------------------------------------------

_FACTORY_CACHE: dict[tuple[str, str, str], Callable[..., Invoker]] = {}


def _conv_ret(ret: str, strings: str, var: str) -> str:
    if ret == "none":
        return "None"
    if ret == "bool":
        return f"True if {var} else False"
    if ret == "xval" and strings == "bytes":
        return f"{var}.encode('utf-8', 'surrogateescape') if {var}.__class__ is str else {var}"
    return var


def python_invoker(e: Export, impl: Callable[..., Any], strings: str) -> Invoker:
    """A closure ``(args...) -> value`` that calls a Python implementation with the context."""
    key = (e.sig, e.ret, strings)
    factory = _FACTORY_CACHE.get(key)
    if factory is None:
        args = [f"a{i}" for i in range(len(e.params))]
        passed = [
            (
                (f"{a}.decode('utf-8', 'surrogateescape')" if strings == "bytes" else a)
                if t == "str"
                else int_arg(a)
            )
            for a, t in zip(args, e.param_types, strict=True)
        ]
        body = ["def _kemi_factory(impl, cur):"]
        body.append(f"    def invoke({', '.join(args)}):")
        call = f"impl(cur.ctx{''.join(', ' + p for p in passed)})"
        if e.ret in ("int", "long") or (e.ret == "xval" and strings == "str"):
            body.append(f"        return {call}")
        elif e.ret == "none":
            body.append(f"        {call}")
            body.append("        return None")
        else:
            body.append(f"        r = {call}")
            body.append(f"        return {_conv_ret(e.ret, strings, 'r')}")
        body.append("    return invoke")
        namespace: dict[str, Any] = {}
        exec("\n".join(body), namespace)
        factory = namespace["_kemi_factory"]
        _FACTORY_CACHE[key] = factory
    invoker: Invoker = factory(impl, CURRENT)
    invoker.__qualname__ = e.ksr_name
    return invoker


def check_args(e: Export, args: Sequence[Any]) -> tuple[Any, ...]:
    """Slow path of every shim's type check: coerce what KEMI accepts or raise KemiArgError."""
    out: list[str | int] = []
    for i, (want, name) in enumerate(zip(e.param_types, e.param_names, strict=True)):
        v = args[i] if i < len(args) else MISSING
        if v is MISSING:
            raise KemiArgError(
                f"{e.signature}: missing argument {i + 1} '{name}' ({want}); "
                f"{len([a for a in args if a is not MISSING])} given"
            )
        if want == "str":
            if isinstance(v, str):
                out.append(str(v))
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(str(v))
                continue
        else:
            if isinstance(v, bool) or isinstance(v, int):
                out.append(int(v))
                continue
        raise KemiArgError(
            f"{e.signature}: argument {i + 1} '{name}' expects {want}, got {type(v).__name__}"
        )
    return tuple(out)


class _Missing:
    """Default of every generated Python parameter: tells a missing argument apart."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


def log_error(text: str) -> None:
    log(L_ERR, text, "kemi")
