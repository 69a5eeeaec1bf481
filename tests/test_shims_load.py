"""Every generated shim loads in its real interpreter (or parser) and installs every export.

Two shim sets are checked the same way: the committed ``generated/`` tree and the
keyword fixture (tests/fixtures/keywords/: exports and parameters named after
reserved words), rendered into a temporary directory with codegen's TARGETS.

* Lua: compiled (without running) in every lupa runtime (Lua 5.1-5.5, LuaJIT 2.0/2.1),
  then each module shim is run with stub call/check/sig functions and
  ``KSR.<sub>.<fn>`` must exist for every export of the module (per api.json),
  register its signature and call the host with its slot.
* JavaScript: evaluated in QuickJS (the shim is a function expression), called
  with a KSR object and stubs; ES5 conformance in Duktape when pyduktape2 exists.
* Ruby: ``ruby -wc`` passes, and the shim runs under ``ruby`` with stub KSR hooks.
* Squirrel: compiled with squirrel-lang, then run with stubs in the root table.
* Python: every file compiles, and the KSR package imports against a stub
  registry bound into ``pykemi.runtime.engines.pyhost``.
"""

from __future__ import annotations

import atexit
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pykemi.codegen.generate import ROOT
from pykemi.codegen.render import environment, write_tree
from pykemi.codegen.spec import load_spec
from pykemi.codegen.targets import TARGETS
from pykemi.kemi.targets import TARGETS as LANGS

GENERATED = ROOT / "generated"
KEYWORDS = Path(__file__).resolve().parent / "fixtures" / "keywords"
BASE = 1000  # stub base slot of the module under test

LUA_VERSIONS = ["lua51", "lua52", "lua53", "lua54", "lua55", "luajit20", "luajit21"]


# ---- the shim sets ---------------------------------------------------------------------


@dataclass(frozen=True)
class Fn:
    """One export as the shims must install it."""

    module: str
    submodule: str
    name: str
    index: int  # position within its module (slot = module base + index)
    ptypes: tuple[str, ...]

    @property
    def ksr_name(self) -> str:
        return "KSR." + (f"{self.submodule}.{self.name}" if self.submodule else self.name)

    @property
    def letters(self) -> str:
        return "".join("s" if t == "str" else "i" for t in self.ptypes)

    def args(self) -> list[int | str]:
        """Arguments of the right types (ints and strings)."""
        return [7 + i if t == "int" else f"s{i}" for i, t in enumerate(self.ptypes)]

    def wrong_args(self) -> list[int | str]:
        """Arguments of the wrong types (a string for int, an int for str): the check path."""
        return [str(7 + i) if t == "int" else i for i, t in enumerate(self.ptypes)]


@cache
def _keywords_dir() -> Path:
    """The keyword fixture rendered with codegen's TARGETS into a temporary directory."""
    spec = load_spec(sorted(KEYWORDS.glob("*.yaml")), root=ROOT)
    env = environment()
    files: dict[str, str] = {}
    for emit in TARGETS.values():
        files.update(emit(spec, env))
    out = Path(tempfile.mkdtemp(prefix="pykemi-kw-shims-"))
    atexit.register(shutil.rmtree, out, True)
    write_tree(out, files)
    return out


def _set_dir(which: str) -> Path:
    return GENERATED if which == "generated" else _keywords_dir()


@cache
def _api(which: str) -> dict[str, Any]:
    return dict(json.loads((_set_dir(which) / "api.json").read_text(encoding="utf-8")))


@cache
def _functions(which: str, module: str) -> tuple[Fn, ...]:
    for m in _api(which)["modules"]:
        if m["name"] == module:
            return tuple(
                Fn(module, e["submodule"], e["name"], i, tuple(p["type"] for p in e["params"]))
                for i, e in enumerate(m["exports"])
            )
    raise KeyError(module)


def _modules(which: str) -> list[str]:
    return [m["name"] for m in _api(which)["modules"]]


SETS = ["generated", "keywords"]


def _files(ext: str) -> list[tuple[str, str]]:
    out = []
    for which in SETS:
        root = _set_dir(which)
        out += [(which, p.relative_to(root).as_posix()) for p in sorted(root.glob(f"*/{ext}"))]
    return out


def _module_cases() -> list[tuple[str, str]]:
    return [(which, m) for which in SETS for m in _modules(which)]


def _ids(case: tuple[str, str]) -> str:
    return f"{case[0]}:{case[1]}"


def test_both_sets_have_every_target() -> None:
    for which in SETS:
        root = _set_dir(which)
        for m in _modules(which):
            for rel in (f"lua/{m}.lua", f"js/{m}.js", f"ruby/{m}.rb", f"sqlang/{m}.nut"):
                assert (root / rel).is_file(), f"{which}: {rel} missing"
    assert _modules("keywords") == ["kw"]
    assert {"core", "sl"} <= set(_modules("generated"))


# ---- Lua -------------------------------------------------------------------------------


def _lua_runtime(version: str) -> Any:
    try:
        mod = importlib.import_module(f"lupa.{version}")
    except ImportError:
        pytest.skip(f"lupa.{version} is not available")
    return mod.LuaRuntime(encoding=None, unpack_returned_tuples=True)


COMPILE_LUA = """
function(src, name)
    local f, err = (loadstring or load)(src, name)
    if f == nil then return err end
    return nil
end
"""

RUN_LUA = """
function(src, name, ...)
    local f = assert((loadstring or load)(src, name))
    return f(...)
end
"""


@pytest.mark.parametrize("version", LUA_VERSIONS)
@pytest.mark.parametrize("case", _files("*.lua"), ids=_ids)
def test_lua_compiles(version: str, case: tuple[str, str]) -> None:
    which, rel = case
    lua = _lua_runtime(version)
    src = (_set_dir(which) / rel).read_bytes()
    err = lua.eval(COMPILE_LUA)(src, b"@" + rel.encode())
    assert err is None, f"{version}: {err!r}"


def _b(v: int | str) -> int | bytes:
    return v.encode() if isinstance(v, str) else v


def _recorder(call: Any, slot: int) -> Any:
    def fn(*args: Any) -> Any:
        return call(slot, *args)

    return fn


@pytest.mark.parametrize("version", LUA_VERSIONS)
@pytest.mark.parametrize("case", _module_cases(), ids=_ids)
def test_lua_module_installs_every_export(version: str, case: tuple[str, str]) -> None:
    which, module = case
    lua = _lua_runtime(version)
    ksr = lua.table()
    calls: list[tuple[Any, ...]] = []
    checks: list[tuple[Any, ...]] = []
    sigs: dict[int, tuple[bytes, bytes, bytes]] = {}

    def call(slot: int, *args: Any) -> int:
        calls.append((slot, *args))
        return 1

    def check(slot: int, *args: Any) -> Any:
        checks.append((slot, *args))
        return tuple(_b(v) for v in fns[int(slot) - BASE].args())  # unpacked into Lua values

    def sig(slot: int, name: bytes, text: bytes, letters: bytes) -> None:
        sigs[int(slot)] = (name, text, letters)

    fns = _functions(which, module)
    src = (_set_dir(which) / f"lua/{module}.lua").read_bytes()
    # the host passes a slot -> function table; each entry records its own slot
    host = lua.table_from({BASE + fn.index: _recorder(call, BASE + fn.index) for fn in fns})
    lua.eval(RUN_LUA)(src, f"@lua/{module}.lua".encode(), ksr, host, BASE, check, sig)
    lua_type = lua.eval("type")

    by_sub: dict[str, set[str]] = {}
    for fn in fns:
        by_sub.setdefault(fn.submodule, set()).add(LANGS["lua"].escape(fn.name))
    for sub, members in by_sub.items():
        table = ksr if sub == "" else ksr[sub.encode()]
        assert lua_type(table) == b"table", f"{version}: KSR.{sub} missing"
        found = {k.decode() for k, v in table.items() if lua_type(v) == b"function"}
        assert found == members, f"{version}: KSR.{sub}"

    for fn in fns:
        table = ksr if fn.submodule == "" else ksr[fn.submodule.encode()]
        f = table[LANGS["lua"].escape(fn.name).encode()]
        slot = BASE + fn.index
        assert sigs[slot][0] == fn.ksr_name.encode()
        assert sigs[slot][2] == fn.letters.encode()
        calls.clear()
        assert f(*[_b(v) for v in fn.args()]) == 1
        assert calls == [(slot, *[_b(v) for v in fn.args()])], fn.ksr_name
        if fn.ptypes:
            checks.clear()
            calls.clear()
            f(*[_b(v) for v in fn.wrong_args()])
            assert [c[0] for c in checks] == [slot], f"{fn.ksr_name}: check not called"
    assert len(sigs) == len(fns)


@pytest.mark.parametrize("version", LUA_VERSIONS)
@pytest.mark.parametrize("which", SETS)
def test_lua_shims_with_real_prelude(version: str, which: str) -> None:
    """All module shims of a set under the generated prelude's check/sig (conversions)."""
    lua = _lua_runtime(version)
    root = _set_dir(which)
    run = lua.eval(RUN_LUA)
    ksr = lua.table()
    host = lua.table_from({b"drop": lambda: None, b"modf": lambda *a: 1})
    prelude = (root / "lua/_kemi_prelude.lua").read_bytes()
    check, sig = run(prelude, b"@lua/_kemi_prelude.lua", ksr, host)
    x = ksr[b"x"]
    assert {k for k in x.keys()} == {b"exit", b"drop", b"modf"}
    calls: list[tuple[Any, ...]] = []

    def record(*args: Any) -> int:
        calls.append(args)
        return 1

    bases: dict[str, int] = {}
    for module in _modules(which):
        bases[module] = 1000 * (len(bases) + 1)
        src = (root / f"lua/{module}.lua").read_bytes()
        host_fns = lua.table_from(
            {bases[module] + fn.index: _recorder(record, bases[module] + fn.index)
             for fn in _functions(which, module)}
        )  # fmt: skip
        run(src, f"@lua/{module}.lua".encode(), ksr, host_fns, bases[module], check, sig)
    for module in _modules(which):
        for fn in _functions(which, module):
            table = ksr if fn.submodule == "" else ksr[fn.submodule.encode()]
            calls.clear()
            table[LANGS["lua"].escape(fn.name).encode()](*[_b(v) for v in fn.wrong_args()])
            # the prelude converts "7" -> 7 for int and 0 -> "0" for str
            expected = [int(v) if t == "int" else str(v).encode() for v, t in
                        zip(fn.wrong_args(), fn.ptypes, strict=True)]  # fmt: skip
            assert calls == [(bases[module] + fn.index, *expected)], f"{version} {fn.ksr_name}"


# ---- JavaScript (QuickJS; Duktape for ES5 when available) ------------------------------

JS_HARNESS = """
var KSR = {}, calls = [], checks = [], sigs = {};
_shim(KSR,
    function () { calls.push(Array.prototype.slice.call(arguments)); return 1; },
    %d,
    function (slot, args) { checks.push(slot); return WANT[slot]; },
    function (slot, name, text, letters) { sigs[slot] = [name, text, letters]; });
"""


def _js_listing() -> str:
    return (
        "JSON.stringify((function () { var out = {}, k, s; for (k in KSR) {"
        " if (typeof KSR[k] === 'function') { (out[''] = out[''] || []).push(k); }"
        " else { out[k] = []; for (s in KSR[k]) { out[k].push(s + ':' + typeof KSR[k][s]); } } }"
        " return out; })())"
    )


@pytest.mark.parametrize("case", _module_cases(), ids=_ids)
def test_js_module_installs_every_export(case: tuple[str, str]) -> None:
    quickjs = pytest.importorskip("quickjs")
    which, module = case
    fns = _functions(which, module)
    ctx = quickjs.Context()
    shim = ctx.eval((_set_dir(which) / f"js/{module}.js").read_text(encoding="utf-8"))
    ctx.set("_shim", shim)
    want = {BASE + fn.index: fn.args() for fn in fns}
    ctx.eval(f"var WANT = {json.dumps(want)};")
    ctx.eval(JS_HARNESS % BASE)
    listing: dict[str, list[str]] = json.loads(ctx.eval(_js_listing()))
    expected: dict[str, set[str]] = {}
    for fn in fns:
        member = LANGS["js"].escape(fn.name)
        expected.setdefault(fn.submodule, set()).add(
            member if fn.submodule == "" else member + ":function"
        )
    assert {k: set(v) for k, v in listing.items()} == expected
    sigs = json.loads(ctx.eval("JSON.stringify(sigs)"))
    assert len(sigs) == len(fns)
    for fn in fns:
        slot = BASE + fn.index
        assert sigs[str(slot)][0] == fn.ksr_name and sigs[str(slot)][2] == fn.letters
        path = "KSR" + (f"[{json.dumps(fn.submodule)}]" if fn.submodule else "")
        member = json.dumps(LANGS["js"].escape(fn.name))
        for args in (fn.args(), fn.wrong_args()) if fn.ptypes else (fn.args(),):
            ctx.eval("calls = []; checks = [];")
            assert ctx.eval(f"{path}[{member}].apply(null, {json.dumps(args)})") == 1
            assert json.loads(ctx.eval("JSON.stringify(calls)")) == [[slot, *fn.args()]]
            n_checks = json.loads(ctx.eval("JSON.stringify(checks)"))
            assert n_checks == ([slot] if args != fn.args() else []), fn.ksr_name


@pytest.mark.parametrize("case", _files("*.js"), ids=_ids)
def test_js_is_es5_in_duktape(case: tuple[str, str]) -> None:
    duktape = pytest.importorskip("pyduktape2", reason="pyduktape2 (Duktape, ES5) not installed")
    which, rel = case
    ctx = duktape.DuktapeContext()
    src = (_set_dir(which) / rel).read_text(encoding="utf-8")
    ctx.eval_js("var _shim = " + src.rstrip().rstrip(";") + ";")
    assert ctx.eval_js("typeof _shim") == "function"
    ctx.eval_js(
        "var K = {}; _shim(K, function () { return 1; }, 0,"
        " function (slot, args) { return args; }, function () {});"
    )
    # a module without exports (usrloc: parameters only) installs nothing
    installed = ctx.eval_js("Object.keys(K).length") > 0
    assert installed == bool(_functions(which, Path(rel).stem)), rel


# ---- Ruby ------------------------------------------------------------------------------


def _ruby() -> str:
    ruby = shutil.which("ruby")
    if ruby is None:
        pytest.skip("ruby is not installed")
    return ruby


@pytest.mark.parametrize("case", _files("*.rb"), ids=_ids)
def test_ruby_syntax(case: tuple[str, str]) -> None:
    which, rel = case
    proc = subprocess.run(
        [_ruby(), "-wc", str(_set_dir(which) / rel)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Syntax OK"
    assert proc.stderr == "", f"ruby warnings: {proc.stderr}"


RUBY_HARNESS = """
require "json"
module KSR
  CALLS = []
  CHECKS = []
  WANT = JSON.parse(%s)
  def self._kemi_base(mod)
    %d
  end
  def self._kemi_call(slot, *args)
    CALLS << [slot, *args]
    1
  end
  def self._kemi_check(slot, args)
    CHECKS << slot
    WANT[slot.to_s]
  end
end
load ARGV[0]
out = {"methods" => {}, "results" => []}
"""


def _ruby_mod(sub: str) -> str:
    return f"KSR::{sub.upper()}" if sub else "KSR"


def _ruby_check_cases() -> list[Any]:
    """Modules whose shims take the check path."""
    out = []
    for which, module in _module_cases():
        marks: list[Any] = []
        out.append(pytest.param((which, module), marks=marks, id=f"{which}:{module}"))
    return out


def _ruby_run(which: str, module: str, wrong: bool) -> None:
    """Load the module shim under ruby with stub hooks and call every function.

    ``wrong``: call with arguments of the wrong types, so every call goes through
    ``KSR._kemi_check`` (the stub returns the right values); else with the right types.
    """
    fns = _functions(which, module)
    want = {str(BASE + fn.index): fn.args() for fn in fns}
    lines = [RUBY_HARNESS % (json.dumps(json.dumps(want)), BASE)]
    for sub in dict.fromkeys(fn.submodule for fn in fns):
        lines.append(
            f"out['methods'][{json.dumps(sub)}] = {_ruby_mod(sub)}.singleton_methods"
            ".map(&:to_s).reject { |m| m.start_with?('_kemi_') }.sort"
        )
    for fn in fns:
        args = fn.wrong_args() if wrong else fn.args()
        call = f"{_ruby_mod(fn.submodule)}.{LANGS['ruby'].escape(fn.name)}"
        lines.append("KSR::CALLS.clear; KSR::CHECKS.clear")
        lines.append(
            f"out['results'] << [{call}(*JSON.parse({json.dumps(json.dumps(args))})),"
            " KSR::CALLS.dup, KSR::CHECKS.dup]"
        )
    lines.append("puts JSON.generate(out)")
    proc = subprocess.run(
        [_ruby(), "-e", "\n".join(lines), str(_set_dir(which) / f"ruby/{module}.rb")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    expected: dict[str, list[str]] = {}
    for fn in fns:
        expected.setdefault(fn.submodule, []).append(LANGS["ruby"].escape(fn.name))
    assert out["methods"] == {k: sorted(v) for k, v in expected.items()}
    for fn, (ret, calls, checks) in zip(fns, out["results"], strict=True):
        slot = BASE + fn.index
        assert ret == 1, fn.ksr_name
        assert calls == [[slot, *fn.args()]], fn.ksr_name
        assert checks == ([slot] if wrong and fn.ptypes else []), fn.ksr_name


@pytest.mark.parametrize("case", _module_cases(), ids=_ids)
def test_ruby_module_installs_every_export(case: tuple[str, str]) -> None:
    _ruby_run(*case, wrong=False)


@pytest.mark.parametrize("case", _ruby_check_cases())
def test_ruby_check_path(case: tuple[str, str]) -> None:
    _ruby_run(*case, wrong=True)


# ---- Squirrel --------------------------------------------------------------------------


def _squirrel() -> Any:
    return pytest.importorskip("squirrel", reason="squirrel-lang is not installed")


@pytest.mark.parametrize("case", _files("*.nut"), ids=_ids)
def test_squirrel_compiles(case: tuple[str, str]) -> None:
    which, rel = case
    squirrel = _squirrel()
    code = squirrel.compile((_set_dir(which) / rel).read_text(encoding="utf-8"), rel)
    assert isinstance(code, bytes) and code


@pytest.mark.parametrize("case", _module_cases(), ids=_ids)
def test_squirrel_module_installs_every_export(case: tuple[str, str]) -> None:
    which, module = case
    squirrel = _squirrel()
    fns = _functions(which, module)
    vm = squirrel.SQVM()
    vm.execute("::KSR <- {};")
    calls: list[tuple[Any, ...]] = []
    checks: list[int] = []
    sigs: dict[int, tuple[str, str, str]] = {}

    def check(slot: int, args: Any) -> list[int | str]:
        checks.append(slot)
        return fns[slot - BASE].args()

    def call(*args: Any) -> int:
        calls.append(args)
        return 1

    def sig(slot: int, name: str, text: str, letters: str) -> None:
        sigs[slot] = (name, text, letters)

    vm.bindfunc("_kemi_base", lambda name: BASE)
    vm.bindfunc("_kemi_call", call)
    vm.bindfunc("_kemi_check", check)
    vm.bindfunc("_kemi_sig", sig)
    vm.execute((_set_dir(which) / f"sqlang/{module}.nut").read_text(encoding="utf-8"))
    expected: dict[str, set[str]] = {}
    for fn in fns:
        expected.setdefault(fn.submodule, set()).add(LANGS["sqlang"].escape(fn.name))
    for sub, members in expected.items():
        table = "::KSR" + (f"[{json.dumps(sub)}]" if sub else "")
        listing = vm.execute(
            f'local o = ""; foreach (k, v in {table}) if (typeof v == "function") o += k + ",";'
            " return o;"
        )
        assert set(str(listing).split(",")) - {""} == members, f"KSR.{sub}"
    for fn in fns:
        slot = BASE + fn.index
        assert sigs[slot][0] == fn.ksr_name and sigs[slot][2] == fn.letters
        path = "::KSR" + (f"[{json.dumps(fn.submodule)}]" if fn.submodule else "")
        member = json.dumps(LANGS["sqlang"].escape(fn.name))
        for args in (fn.args(), fn.wrong_args()) if fn.ptypes else (fn.args(),):
            calls.clear()
            checks.clear()
            arg_text = ", ".join(json.dumps(a) for a in args)
            assert vm.execute(f"return {path}[{member}]({arg_text});") == 1
            assert calls == [(slot, *fn.args())], fn.ksr_name
            assert checks == ([slot] if args != fn.args() else []), fn.ksr_name


# ---- Python ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", _files("KSR/*.py") + _files("KSR/*.pyi"), ids=_ids)
def test_python_file_compiles(case: tuple[str, str]) -> None:
    which, rel = case
    src = (_set_dir(which) / rel).read_text(encoding="utf-8")
    compile(src, rel, "exec")


class _StubApi:
    def __init__(self, spec_hash: str) -> None:
        self.spec_hash = spec_hash


class _StubRegistry:
    """What pyhost needs of a Registry at import time: the spec hash and module bases."""

    def __init__(self, spec_hash: str, bases: dict[str, int]) -> None:
        self.api = _StubApi(spec_hash)
        self.bases = bases

    def base(self, module: str) -> int:
        return self.bases[module]


class _Slots:
    """Stands in for pyhost.SLOTS: slot i is a function recording (i, *args)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __getitem__(self, slot: int) -> Callable[..., int]:
        def invoke(*args: Any) -> int:
            self.calls.append((slot, *args))
            return 1

        return invoke


@pytest.fixture
def clean_ksr() -> Iterator[None]:
    """Hide (and afterwards restore) any KSR package other tests imported."""
    saved = {k: v for k, v in sys.modules.items() if k == "KSR" or k.startswith("KSR.")}
    for k in saved:
        del sys.modules[k]
    yield
    for k in [k for k in sys.modules if k == "KSR" or k.startswith("KSR.")]:
        del sys.modules[k]
    sys.modules.update(saved)


@pytest.mark.usefixtures("clean_ksr")
@pytest.mark.parametrize("which", SETS)
def test_python_ksr_package_imports(which: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pykemi.runtime.engines import pyhost

    api = _api(which)
    bases = {m: 1000 * (i + 1) for i, m in enumerate(_modules(which))}
    slots = _Slots()
    checks: list[int] = []

    def check(slot: int, args: tuple[Any, ...]) -> tuple[Any, ...]:
        checks.append(slot)
        module = next(m for m, b in bases.items() if b <= slot < b + 1000)
        return tuple(_functions(which, module)[slot - bases[module]].args())

    monkeypatch.setattr(pyhost, "_registry", _StubRegistry(api["spec_hash"], bases))
    monkeypatch.setattr(pyhost, "SLOTS", slots)
    monkeypatch.setattr(pyhost, "check", check)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # never write into generated/
    monkeypatch.syspath_prepend(str(_set_dir(which) / "python"))
    importlib.invalidate_caches()

    ksr = importlib.import_module("KSR")
    assert Path(ksr.__file__ or "").parent == _set_dir(which) / "python" / "KSR"
    assert ksr.SPEC_HASH == api["spec_hash"]
    x = importlib.import_module("KSR.x")
    assert all(callable(getattr(x, n)) for n in ("exit", "drop", "modf"))
    for module in _modules(which):
        for fn in _functions(which, module):
            owner: ModuleType = ksr
            if fn.submodule:
                owner = importlib.import_module("KSR." + LANGS["python"].escape(fn.submodule))
            f = getattr(owner, LANGS["python"].escape(fn.name))
            assert f.__qualname__ == fn.ksr_name
            slot = bases[module] + fn.index
            for args in (fn.args(), fn.wrong_args()) if fn.ptypes else (fn.args(),):
                slots.calls.clear()
                checks.clear()
                assert f(*args) == 1
                assert slots.calls == [(slot, *fn.args())], fn.ksr_name
                assert checks == ([slot] if args != fn.args() else []), fn.ksr_name


def test_python_ksr_refuses_other_spec_hash(
    clean_ksr: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load-time contract check: a KSR package from another spec does not import."""
    from pykemi.runtime.engines import pyhost

    bases = {m: 0 for m in _modules("generated")}
    monkeypatch.setattr(pyhost, "_registry", _StubRegistry("0" * 16, bases))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(GENERATED / "python"))
    importlib.invalidate_caches()
    with pytest.raises(ImportError, match="does not match the runtime"):
        importlib.import_module("KSR")
