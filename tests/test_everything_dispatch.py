"""The "everything" test: every KEMI signature, echoed by C, driven from real Lua and Python.

``tests/everything/make_everything.py`` generates a module with one export per
(parameter list, return kind): 127 x 4 = 508 exports plus helpers, implemented
in C by functions that serialise exactly what they received. It is compiled
once per session with ``cbuild.compile_module`` (into a temporary directory),
registered after ``core`` in a ``Registry``, and called

* from Python: through the slot invokers (``Registry.view("str")``) and through
  the generated Python shim (``KSR/everything.py``, rendered by codegen);
* from Lua (lupa): through the generated Lua shim, loaded with the generated
  prelude the way ``runtime/engines/lua.py`` does, with ``view("bytes")``.

Hypothesis draws the arguments (C ints incl. INT_MIN/INT_MAX, empty, long,
NUL-carrying, non-ASCII and, from Lua, invalid UTF-8 strings) and the oracle
in ``make_everything`` predicts the echo.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pykemi.kemi import SR_KEMIP
from pykemi.kemi.types import TYPES
from pykemi.runtime import cbuild, cdispatch
from pykemi.runtime.dispatch import GENERATED, Api, Invoker, Registry, StartupError
from pykemi.runtime.engines import pyhost

from .everything import make_everything as mk

INT_MIN = -(2**31)
INT_MAX = 2**31 - 1
EXT_NAME = "_kemi_everything"
PARAM_LISTS = mk.all_param_lists()
EXPORTS = [(ret, params) for params in PARAM_LISTS for ret in mk.RETURNS]
HELPERS = ("last_args", "xval_int", "xval_null")
LUA_VERSIONS = ("lua51", "lua52", "lua53", "lua54", "lua55", "luajit21", "luajit20")

# Calls KSR.everything.<name>(...) from Lua; returns the value and its Lua type.
LUA_CALLER = b"""
local KSR = ...
return function(name, ...)
    local r = KSR.everything[name](...)
    return r, type(r)
end
"""

# Calls KSR.everything.<name>(...) protected; returns ok and the error message.
LUA_PCALLER = b"""
local KSR = ...
return function(name, ...)
    local n, args = select('#', ...), {...}
    local unpack = unpack or table.unpack
    return pcall(function() return KSR.everything[name](unpack(args, 1, n)) end)
end
"""


# -- building and loading the module ---------------------------------------------------------


def _build(name: str, spec: Any, sources: Sequence[Path], out_dir: Path) -> ModuleType:
    """The module's sr_kemi_t table rendered by codegen (as `kemi generate` does), compiled
    with its C sources by runtime/cbuild.py, the one C module builder."""
    from pykemi.codegen.render import environment
    from pykemi.codegen.targets.c import emit_exports

    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    exports_c = out_dir / f"{name}_kemi_exports.c"
    exports_c.write_text(emit_exports(spec, environment(), exports_c.name), encoding="utf-8")
    lib_path = out_dir / cbuild.library_name(name)
    cbuild.compile_module(name, [exports_c, *sources], lib_path, flags=("-O0",))
    return cbuild.load_module(name, lib_path)


class _ShortRepr:
    """Hypothesis prints fixtures of a falsifying example: keep these one line."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@dataclass(repr=False)
class Built(_ShortRepr):
    module: ModuleType
    api: Api
    spec: Any  # pykemi.codegen Spec of everything.yaml
    spec_file: Path
    out_dir: Path


@dataclass
class LuaState:
    runtime: Any
    call: Callable[..., Any]  # (name, *args) -> (value, lua type)
    pcall: Callable[..., Any]  # (name, *args) -> (ok, value or message)


@dataclass(repr=False)
class Everything(_ShortRepr):
    built: Built
    registry: Registry
    base: int
    py: list[Invoker]  # view("str")
    ksr: ModuleType  # the generated Python shim KSR.everything
    lua: LuaState  # Lua 5.1, as app_lua by default
    slots: dict[str, int]  # export name -> slot

    def activate(self) -> None:
        """Make this registry the process's: C slot table and the Python KSR slots.

        Both are process-wide; other tests may have pointed them elsewhere.
        """
        cdispatch.prepare(self.registry)
        pyhost.bind(self.registry)

    def slot(self, name: str) -> int:
        return self.slots[name]


def _ensure_dispatch_extension() -> None:
    try:
        importlib.import_module("pykemi.runtime._kemi_dispatch")
    except ImportError:
        pytest.fail("the C dispatch extension is not built: run `kemi build` in the repository")


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    _ensure_dispatch_extension()
    out = tmp_path_factory.mktemp("everything")
    spec_file, c_file = mk.write(out)
    from pykemi.codegen.spec import load_spec

    spec = load_spec([spec_file])
    api = Api({"spec_hash": spec.hash, **spec.to_dict()})
    module = _build(EXT_NAME, spec, [c_file], out / "build")
    return Built(module, api, spec, spec_file, out)


def make_registry(built: Built, capacity: int | None = None) -> Registry:
    api = Api.load().merged(built.api)
    registry = Registry(api) if capacity is None else Registry(api, capacity=capacity)
    registry.c_libs = [built.module]
    return registry


def lua_shim(built: Built) -> bytes:
    from pykemi.codegen.render import environment
    from pykemi.codegen.targets import lua as lua_target

    text: str = lua_target.emit(built.spec, environment())[f"lua/{mk.MODULE}.lua"]
    return text.encode()


def make_lua(registry: Registry, shim: bytes, version: str = "lua51") -> LuaState:
    """A Lua state set up as runtime/engines/lua.py does, with only KSR.everything loaded."""
    lupa = importlib.import_module(f"lupa.{version}")
    rt = lupa.LuaRuntime(encoding=None, unpack_returned_tuples=True, register_eval=False)
    view = registry.view("bytes")
    host = rt.table_from({b"drop": lambda: None, b"modf": lambda *_: -1})
    ksr = rt.table()
    rt.globals()[b"KSR"] = ksr
    prelude = (GENERATED / "lua" / "_kemi_prelude.lua").read_bytes()
    check, sig = rt.execute(prelude, ksr, host)
    fns = rt.table_from(dict(enumerate(view)))  # the shim binds each slot's host function
    rt.execute(shim, ksr, fns, registry.base(mk.MODULE), check, sig)
    return LuaState(rt, rt.execute(LUA_CALLER, ksr), rt.execute(LUA_PCALLER, ksr))


def _no_format(src: str, is_stub: bool = False) -> str:
    return src


def python_shim(built: Built, registry: Registry) -> ModuleType:
    """Render KSR/everything.py with codegen and import it bound to ``registry``."""
    from pykemi.codegen.render import environment
    from pykemi.codegen.targets import python as py_target

    # the emitter runs black over the output (~20 s for 511 functions): the template's own
    # text is the same code (black only reformats), so skip it here
    with mock.patch.object(py_target, "_fmt", _no_format):
        text = py_target.emit(built.spec, environment())[f"python/KSR/{mk.MODULE}.py"]
    path = built.out_dir / "KSR_everything.py"
    path.write_text(text, encoding="utf-8")
    pyhost.bind(registry)
    spec = importlib.util.spec_from_file_location("_kemi_test_KSR_everything", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not put in sys.modules: KSR.* belongs to the engines
    return module


@pytest.fixture(scope="session")
def ev(built: Built) -> Iterator[Everything]:
    registry = make_registry(built)
    registry.load_module("core")
    base = registry.load_module(mk.MODULE)
    everything = Everything(
        built=built,
        registry=registry,
        base=base,
        py=registry.view("str"),
        ksr=python_shim(built, registry),
        lua=make_lua(registry, lua_shim(built)),
        slots={e.name: registry.find(e.qualname) for e in built.api.modules[mk.MODULE].exports},
    )
    everything.activate()
    yield everything


# -- strategies ------------------------------------------------------------------------------

c_ints = st.one_of(
    st.sampled_from([INT_MIN, INT_MAX, INT_MIN + 1, INT_MAX - 1, -1, 0, 1]),
    st.integers(INT_MIN, INT_MAX),
)
# bytes that are not UTF-8 reach Python implementations surrogate-escaped
SURROGATE_ESCAPES = [chr(0xDC80 + i) for i in range(128)]
LONG_TEXT = ["x" * 100_000, "é\x00" * 50_000, "\U0001f600" * 25_000, "\udcff" * 100_000]
LONG_BYTES = [
    b"\x00" * 100_000,
    bytes(range(256)) * 400,
    b"\xff\xfe" * 50_000,
    "ü€".encode() * 20_000,
]
py_strs = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=24),
    st.text(
        st.one_of(st.sampled_from(["\x00", "é", "\u20ac", "\U0001f600", ";", ":", "|"])),
        max_size=8,
    ),
    st.text(st.sampled_from([*SURROGATE_ESCAPES, "a", "\x00", "\xe9"]), max_size=8),
    st.sampled_from(["", "\x00", "\x00\x00abc\x00"]),
    st.sampled_from(LONG_TEXT),
)
lua_strs = st.one_of(
    st.binary(max_size=24),
    st.text(st.characters(codec="utf-8"), max_size=16).map(str.encode),
    st.sampled_from([b"", b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"a\x00b"]),
    st.sampled_from(LONG_BYTES),
)


def py_args(params: mk.Params) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(*[c_ints if t == "int" else py_strs for t in params])


def lua_args(params: mk.Params) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(*[c_ints if t == "int" else lua_strs for t in params])


def as_bytes(args: Sequence[Any]) -> list[int | bytes]:
    return [a.encode("utf-8", "surrogateescape") if isinstance(a, str) else a for a in args]


def _id(item: tuple[str, mk.Params]) -> str:
    return mk.export_name(*item)


# -- checks ------------------------------------------------------------------------------------


def same(got: Any, want: Any, where: str) -> None:
    """got == want (and the same type); on failure a short message, never a 600 KB diff."""
    if got.__class__ is want.__class__ and got == want:
        return
    if isinstance(got, (str, bytes)) and got.__class__ is want.__class__:
        n = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
        n = min(len(got), len(want)) if n is None else n
        raise AssertionError(
            f"{where}: lengths {len(got)} != {len(want)} or content differs at {n}: "
            f"got {got[max(0, n - 20) : n + 40]!r}, want {want[max(0, n - 20) : n + 40]!r}"
        )
    raise AssertionError(f"{where}: got {_short(got)}, want {_short(want)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else f"{text[:200]}... ({len(text)} chars)"


def check_python(ev: Everything, ret: str, params: mk.Params, args: Sequence[Any]) -> None:
    name = mk.export_name(ret, params)
    raw = as_bytes(args)
    wire = mk.serialise(name, params, raw)
    echo = wire.decode("utf-8", "surrogateescape")
    last = ev.py[ev.slot("last_args")]
    shim_fn = getattr(ev.ksr, name)
    for how, fn in (("invoker", ev.py[ev.slot(name)]), ("shim", shim_fn)):
        got = fn(*args)
        where = f"{name} via Python {how}"
        if ret == "xval":
            same(got, echo, where)
            same(got.encode("utf-8", "surrogateescape"), wire, where)
        elif ret == "int":
            same(got, mk.expected_int(params, raw), where)
        elif ret == "bool":
            same(got, mk.expected_bool(params, raw), where)  # a real bool, not 0/1
        else:
            same(got, None, where)
        same(last(), echo, f"{where}: last_args")


def check_lua(lua: LuaState, ret: str, params: mk.Params, args: Sequence[Any]) -> None:
    name = mk.export_name(ret, params)
    wire = mk.serialise(name, params, list(args))
    got, lua_type = lua.call(name.encode(), *args)
    where = f"{name} via Lua shim"
    want_type = {"xval": b"string", "int": b"number", "bool": b"boolean", "none": b"nil"}[ret]
    same(lua_type, want_type, f"{where}: Lua type")
    if ret == "xval":
        same(got, wire, where)
    elif ret == "int":
        same(got, mk.expected_int(params, list(args)), where)
    elif ret == "bool":
        same(got, mk.expected_bool(params, list(args)), where)
    else:
        same(got, None, where)
    last, last_type = lua.call(b"last_args")
    same(last_type, b"string", f"{where}: last_args type")
    same(last, wire, f"{where}: last_args")


SETTINGS = settings(
    max_examples=5,
    deadline=None,
    # no "explain" phase: re-running variations of 100 KB arguments costs seconds per failure
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- the 508 exports ---------------------------------------------------------------------------


def test_module_shape(ev: Everything) -> None:
    assert len(PARAM_LISTS) == 127
    assert len(set(PARAM_LISTS)) == 127
    assert len(EXPORTS) == 508
    exports = ev.registry.api.modules[mk.MODULE].exports
    assert [e.name for e in exports] == [mk.export_name(r, p) for r, p in EXPORTS] + list(HELPERS)
    assert ev.base == len(ev.registry.api.modules["core"].exports)
    for i, e in enumerate(exports):
        assert ev.registry.find(e.qualname) == ev.base + i
        assert ev.registry.exports[ev.base + i] is e
        assert e.impl_kind == "c"
    # every trampoline signature (2 x 127) is reached by some export
    assert {(e.ret == "xval", e.sig) for e in exports} == {
        (x, mk.sig_code(p)) for x in (False, True) for p in PARAM_LISTS
    }


def _c_rows(module: ModuleType) -> dict[str, list[Any]]:
    """The sr_kemi_t rows of a built extension's tables, by module name (NULL-terminated)."""
    ffi, lib = module.ffi, module.lib
    out: dict[str, list[Any]] = {}
    for i in itertools.count():
        table = lib.kemi_module_tables[i]
        if table.module == ffi.NULL:
            return out
        rows = out.setdefault(ffi.string(table.module).decode(), [])
        for j in itertools.count():
            if table.exports[j].fname.s == ffi.NULL:
                break
            rows.append(table.exports[j])
    return out


def test_cbuild_builds_the_module(built: Built, ev: Everything) -> None:
    """What cbuild compiled: the spec's sr_kemi_t table, C functions that run, and a module the
    registry takes as built (its kemi_module_init gets the host API)."""
    module = built.module
    ffi = module.ffi
    assert Path(module.__file__).parent == built.out_dir / "build"
    assert ffi.string(module.lib.kemi_spec_hash).decode() == built.spec.hash
    rows = _c_rows(module)
    assert list(rows) == [mk.MODULE]
    kemip = dict(SR_KEMIP)
    for row, e in zip(rows[mk.MODULE], built.api.modules[mk.MODULE].exports, strict=True):
        assert ffi.unpack(row.fname.s, row.fname.len).decode() == e.name
        assert row.rtype == kemip[TYPES[e.ret].sr_kemip], e.name
        ptypes = [kemip[TYPES[p.type].sr_kemip] for p in e.params]
        assert list(row.ptypes) == ptypes + [0] * (6 - len(ptypes)), e.name
        assert row.func != ffi.NULL, e.name
    # the compiled function itself, called through its table pointer
    row = next(r for r in rows[mk.MODULE] if ffi.string(r.fname.s) == b"r_xval_is")
    fn = ffi.cast("sr_kemi_xval_t *(*)(sip_msg_t *, int, str *)", row.func)
    arg = ffi.new("char[]", b"a\x00b")
    xval = fn(ffi.NULL, -7, ffi.new("str *", (arg, 3)))
    assert xval.vtype == kemip["SR_KEMIP_STR"]
    want = mk.serialise("r_xval_is", ("int", "str"), [-7, b"a\x00b"])
    assert ffi.unpack(xval.v.s.s, xval.v.s.len) == want
    # a registry takes the module as cbuild returns it (no adapter around its ffi)
    registry = make_registry(built)
    registry.load_module("core")
    registry.load_module(mk.MODULE)
    cdispatch.prepare(registry)
    try:
        assert registry.view("str")[registry.find("everything.r_int_s")]("abc") == 1003
    finally:
        ev.activate()  # the C slot table is process-wide


@pytest.mark.parametrize(("ret", "params"), EXPORTS, ids=[_id(x) for x in EXPORTS])
@SETTINGS
@given(data=st.data())
def test_export(ev: Everything, ret: str, params: mk.Params, data: st.DataObject) -> None:
    ev.activate()
    check_python(ev, ret, params, data.draw(py_args(params), label="python args"))
    check_lua(ev.lua, ret, params, data.draw(lua_args(params), label="lua args"))


DEEP = [("xval", p) for p in [("str",) * 6, ("int",) * 6, ("int", "str") * 3, ("str",)]] + [
    ("bool", ("str", "int", "str")),
    ("int", ("str", "str")),
]


@pytest.mark.parametrize(("ret", "params"), DEEP, ids=[_id(x) for x in DEEP])
@settings(SETTINGS, max_examples=100)
@given(data=st.data())
def test_export_deep(ev: Everything, ret: str, params: mk.Params, data: st.DataObject) -> None:
    ev.activate()
    check_python(ev, ret, params, data.draw(py_args(params), label="python args"))
    check_lua(ev.lua, ret, params, data.draw(lua_args(params), label="lua args"))


EDGE_INTS = (INT_MIN, INT_MAX, 0, -1)
EDGE_TEXT = ("", "\x00", "a\x00\udcff\U0001f600", "y" * 100_000)
EDGE_BYTES = (b"", b"\x00", b"\xff\xfe\x00\xc3(", b"\x80" * 100_000)


def edge_args(params: mk.Params, k: int, strings: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(
        EDGE_INTS[(k + i) % len(EDGE_INTS)] if t == "int" else strings[(k + i) % len(strings)]
        for i, t in enumerate(params)
    )


def test_edge_values_python(ev: Everything) -> None:
    """Every export with INT_MIN/INT_MAX, empty, NUL, invalid and 100 KB strings (Python)."""
    ev.activate()
    for ret, params in EXPORTS:
        for k in range(4):
            check_python(ev, ret, params, edge_args(params, k, EDGE_TEXT))


@pytest.mark.parametrize("version", LUA_VERSIONS)
def test_edge_values_lua_versions(built: Built, ev: Everything, version: str) -> None:
    """Every export from every Lua lupa offers (5.1 .. 5.5, LuaJIT), through the shim."""
    try:
        lua = make_lua(ev.registry, lua_shim(built), version)
    except ImportError:
        pytest.skip(f"lupa.{version} is not available")
    ev.activate()
    for ret, params in EXPORTS:
        for k in range(4):
            check_lua(lua, ret, params, edge_args(params, k, EDGE_BYTES))


# -- helpers: xval kinds -------------------------------------------------------------------------


@SETTINGS
@given(n=c_ints)
def test_xval_int(ev: Everything, n: int) -> None:
    ev.activate()
    assert ev.py[ev.slot("xval_int")](n) == n
    got = ev.ksr.xval_int(n)
    assert got.__class__ is int and got == n
    assert ev.lua.call(b"xval_int", n) == (n, b"number")


def test_xval_null(ev: Everything) -> None:
    ev.activate()
    assert ev.py[ev.slot("xval_null")]() is None
    assert ev.ksr.xval_null() is None
    assert ev.lua.call(b"xval_null") == (None, b"nil")


# -- the slot table ------------------------------------------------------------------------------


def test_capacity_too_small_for_core(built: Built) -> None:
    registry = make_registry(built, capacity=10)
    with pytest.raises(StartupError, match=r"module 'core'.*slot table holds 10\b") as info:
        registry.load_module("core")
    assert "kemi.slot_capacity" in str(info.value)


def test_capacity_exact(built: Built, ev: Everything) -> None:
    need = len(ev.registry.exports)
    core = len(ev.registry.api.modules["core"].exports)
    short = make_registry(built, capacity=need - 1)
    short.load_module("core")
    with pytest.raises(StartupError, match=rf"module '{mk.MODULE}' needs {need} slots.*{need - 1}"):
        short.load_module(mk.MODULE)
    exact = make_registry(built, capacity=need)
    assert exact.load_module("core") == 0
    assert exact.load_module(mk.MODULE) == core
    try:
        view = exact.view("str")
        assert len(view) == need
        got = view[exact.find("everything.r_xval_ssssss")]("a", "", "b", "\x00", "c", "")
        assert got == "r_xval_ssssss|s:1:a;s:0:;s:1:b;s:1:\x00;s:1:c;s:0:;"
        assert view[need - 1]() is None  # the last slot: everything.xval_null
    finally:
        ev.activate()  # the C slot table is process-wide


def test_invalid_capacity(built: Built) -> None:
    with pytest.raises(StartupError, match="positive"):
        make_registry(built, capacity=0)


# -- argument errors and coercions in the generated shims --------------------------------------


def test_python_shim_wrong_type(ev: Everything) -> None:
    ev.activate()
    sig = "KSR.everything.r_int_is(int p1, str p2) -> int"
    with pytest.raises(TypeError, match=re.escape(sig)) as info:
        ev.ksr.r_int_is("x", "y")
    assert "argument 1 'p1' expects int, got str" in str(info.value)
    with pytest.raises(TypeError, match=re.escape(sig) + ".*argument 2 'p2' expects str"):
        ev.ksr.r_int_is(1, b"bytes")
    with pytest.raises(TypeError, match=re.escape(sig) + ".*missing argument 2 'p2'"):
        ev.ksr.r_int_is(1)
    with pytest.raises(TypeError, match=re.escape("KSR.everything.r_none_i(int p1) -> none")):
        ev.ksr.r_none_i(None)
    assert ev.ksr.r_int_is.__qualname__ == "KSR.everything.r_int_is"


def test_python_shim_coercions(ev: Everything) -> None:
    ev.activate()
    assert ev.ksr.r_xval_is(True, 42) == "r_xval_is|i:1;s:2:42;"
    assert ev.ksr.r_xval_s(-1.5) == "r_xval_s|s:4:-1.5;"


def test_lua_shim_wrong_type(ev: Everything) -> None:
    ev.activate()
    ok, msg = ev.lua.pcall(b"r_int_is", ev.lua.runtime.table(), b"y")
    assert ok is False
    assert b"KSR.everything.r_int_is(int p1, str p2)" in msg
    assert b"argument #1 expects int, got table" in msg
    ok, msg = ev.lua.pcall(b"r_bool_si", b"x", b"not a number")
    assert ok is False
    assert b"KSR.everything.r_bool_si" in msg and b"argument #2 expects int" in msg
    ok, msg = ev.lua.pcall(b"r_xval_s", None)
    assert ok is False
    assert b"KSR.everything.r_xval_s(str p1)" in msg and b"got nil" in msg


def test_lua_shim_coercions(ev: Everything) -> None:
    ev.activate()
    assert ev.lua.call(b"r_xval_is", b"12", 34) == (b"r_xval_is|i:12;s:2:34;", b"string")
    assert ev.lua.call(b"r_xval_i", 2.75)[0] == b"r_xval_i|i:2;"
    assert ev.lua.call(b"r_xval_i", -2.75)[0] == b"r_xval_i|i:-2;"


@pytest.mark.parametrize("version", LUA_VERSIONS)
def test_lua_integral_float(built: Built, ev: Everything, version: str) -> None:
    """2.0 is an integer argument in every Lua (lua_tointeger accepts it in Kamailio)."""
    try:
        lua = make_lua(ev.registry, lua_shim(built), version)
    except ImportError:
        pytest.skip(f"lupa.{version} is not available")
    ev.activate()
    ok, value = lua.pcall(b"r_xval_i", 2.0)
    assert ok, value
    assert value == b"r_xval_i|i:2;"
