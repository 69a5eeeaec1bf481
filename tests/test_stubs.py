"""The generated IDE stubs, each checked by its language's real tool.

- Python: ``mypy --strict`` with MYPYPATH=generated/python (the KSR .pyi stubs);
- TypeScript: ``tsc --noEmit --allowJs --checkJs`` with generated/js/KSR.d.ts (typescript
  from the npm registry, installed once into a cache folder);
- Lua: ``luacheck`` with generated/lua/.luacheckrc (Debian package lua-check);
- Ruby: ``rbs validate``/``rbs parse`` on generated/ruby/KSR.rbs (gem rbs, shipped with
  Debian's Ruby).

Each tool accepts the example script in tests/fixtures/stubs/ and reports the
deliberate mistakes of the "bad" script. The keyword fixture's stubs (reserved words
as names) must be accepted by the tools too. A missing tool skips with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pykemi.codegen.generate import ROOT, load, render_all
from pykemi.codegen.render import write_tree
from pykemi.codegen.spec import load_spec

GENERATED = ROOT / "generated"
FIXTURES = ROOT / "tests" / "fixtures" / "stubs"
KEYWORDS = ROOT / "tests" / "fixtures" / "keywords"
TSC_CACHE = Path(os.environ.get("PYKEMI_TSC_CACHE", Path.home() / ".cache" / "pykemi-tsc"))
TYPESCRIPT = "typescript@5"


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, **(env or {})},
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def keyword_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The keyword fixture's generated tree (reserved words as function/parameter names)."""
    out = tmp_path_factory.mktemp("kw-generated")
    write_tree(out, render_all(load_spec(sorted(KEYWORDS.glob("*.yaml")), root=ROOT)))
    return out


def test_stub_files_are_current() -> None:
    files = render_all(load(), targets=["ts", "luals", "rbs"])
    assert sorted(files) == [
        "__init__.py",
        "js/KSR.d.ts",
        "lua/.luacheckrc",
        "lua/KSR.d.lua",
        "ruby/KSR.rbs",
    ]
    for rel, content in files.items():
        if rel != "__init__.py":
            assert (GENERATED / rel).read_text(encoding="utf-8") == content, f"{rel} is stale"


def test_stubs_declare_every_export() -> None:
    spec = load()
    ts = (GENERATED / "js" / "KSR.d.ts").read_text(encoding="utf-8")
    lua = (GENERATED / "lua" / "KSR.d.lua").read_text(encoding="utf-8")
    rbs = (GENERATED / "ruby" / "KSR.rbs").read_text(encoding="utf-8")
    rc = (GENERATED / "lua" / ".luacheckrc").read_text(encoding="utf-8")
    for e in spec.exports:
        table = f"KSR.{e.submodule}" if e.submodule else "KSR"
        assert f"function {e.name}(" in ts, e.ksr_name
        assert f"function {table}.{e.name}(" in lua, e.ksr_name
        assert f"def self.{e.name}: (" in rbs, e.ksr_name
        assert f"{e.name} = {{}}," in rc, e.ksr_name
    # xval is string | number | null in TypeScript, (String | Integer)? in RBS
    assert "function get(name: string): string | number | null;" in ts  # KSR.pv.get
    assert "def self.get: (String name) -> (String | Integer)?" in rbs


# ---- Python: mypy --strict -------------------------------------------------------------------


def _mypy(script: Path, tmp_path: Path) -> tuple[int, str]:
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e .[test])")
    # run outside the checkout so pyproject's [tool.mypy] settings do not apply
    return _run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir",
         str(tmp_path / "mypy-cache"), str(script)],
        cwd=tmp_path,
        env={"MYPYPATH": str(GENERATED / "python")},
    )  # fmt: skip


def test_mypy_strict_accepts_example(tmp_path: Path) -> None:
    rc, out = _mypy(FIXTURES / "good.py", tmp_path)
    assert rc == 0, out


def test_mypy_strict_reports_mistakes(tmp_path: Path) -> None:
    rc, out = _mypy(FIXTURES / "bad.py", tmp_path)
    assert rc == 1, out
    assert re.search(r'bad\.py:9: error: Module has no attribute "send_replyy"', out), out
    assert re.search(
        r'bad\.py:10: error: Argument 1 to "send_reply" has incompatible type "str"; '
        r'expected "int"',
        out,
    ), out
    assert re.search(
        r'bad\.py:11: error: Incompatible types in assignment .*"str \| int \| None"', out
    )
    assert len(re.findall(r": error: ", out)) == 3, out


# ---- TypeScript: tsc --checkJs ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tsc() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm are not installed")
    exe = TSC_CACHE / "node_modules" / ".bin" / "tsc"
    if not exe.exists():
        TSC_CACHE.mkdir(parents=True, exist_ok=True)
        rc, out = _run(
            [npm, "install", "--prefix", str(TSC_CACHE), "--no-audit", "--no-fund", TYPESCRIPT],
            cwd=TSC_CACHE,
        )
        if rc != 0 or not exe.exists():
            pytest.skip(f"cannot install {TYPESCRIPT} from the npm registry: {out[-500:]}")
    return str(exe)


def _tsc(tsc: str, dts: Path, script: Path | None, cwd: Path) -> tuple[int, str]:
    files = [str(dts)] + ([str(script)] if script else [])
    return _run(
        [tsc, "--noEmit", "--allowJs", "--checkJs", "--strict", "--target", "es5", "--lib", "es5",
         "--pretty", "false", *files],
        cwd=cwd,
    )  # fmt: skip


def test_tsc_accepts_example(tsc: str) -> None:
    rc, out = _tsc(tsc, GENERATED / "js" / "KSR.d.ts", FIXTURES / "good.js", FIXTURES)
    assert rc == 0, out


def test_tsc_reports_mistakes(tsc: str) -> None:
    rc, out = _tsc(tsc, GENERATED / "js" / "KSR.d.ts", FIXTURES / "bad.js", FIXTURES)
    assert rc != 0, out
    assert re.search(r"bad\.js\(3,\d+\): error TS2551: Property 'send_replyy' does not exist", out)
    assert re.search(
        r"bad\.js\(4,\d+\): error TS2345: Argument of type 'string' is not assignable to "
        r"parameter of type 'number'",
        out,
    ), out
    assert re.search(r"bad\.js\(6,\d+\): error TS18047: 'ruri' is possibly 'null'", out), out


def test_tsc_accepts_keyword_stubs(tsc: str, keyword_out: Path) -> None:
    rc, out = _tsc(tsc, keyword_out / "js" / "KSR.d.ts", None, keyword_out)
    assert rc == 0, out


# ---- Lua: luacheck ---------------------------------------------------------------------------


def _luacheck(script: Path, config: Path) -> tuple[int, str]:
    exe = shutil.which("luacheck")
    if exe is None:
        pytest.skip("luacheck is not installed (Debian package lua-check)")
    return _run([exe, "--no-color", "--codes", "--config", str(config), str(script)], cwd=FIXTURES)


def test_luacheck_accepts_example() -> None:
    rc, out = _luacheck(FIXTURES / "good.lua", GENERATED / "lua" / ".luacheckrc")
    assert rc == 0, out
    assert "0 warnings / 0 errors" in out, out


def test_luacheck_reports_undefined_field() -> None:
    rc, out = _luacheck(FIXTURES / "bad.lua", GENERATED / "lua" / ".luacheckrc")
    assert rc == 1, out
    assert re.search(
        r"bad\.lua:3:5: \(W143\) accessing undefined field '?sl\.send_replyy'? of global '?KSR'?",
        out,
    ), out
    assert "1 warning / 0 errors" in out, out


def test_luacheck_config_of_keyword_fixture_loads(keyword_out: Path) -> None:
    # the keyword config is valid Lua that luacheck reads: its KSR has no maxfwd/sl fields
    _, out = _luacheck(FIXTURES / "good.lua", keyword_out / "lua" / ".luacheckrc")
    assert "Critical error" not in out and "Couldn't load config" not in out, out
    assert re.search(r"\(W143\) accessing undefined field '?maxfwd", out), out


# ---- Ruby: rbs -------------------------------------------------------------------------------


def _rbs() -> list[str]:
    for name in ("rbs", *sorted(p.name for p in Path("/usr/bin").glob("rbs[0-9]*"))):
        path = shutil.which(name)
        if path:
            return [path]
    ruby = shutil.which("ruby")
    if ruby is not None:
        rc, _ = _run([ruby, "-e", "require 'rbs'"], cwd=ROOT)
        if rc == 0:
            return [
                ruby,
                "-rrbs/cli",
                "-e",
                "RBS::CLI.new(stdout: $stdout, stderr: $stderr).run(ARGV)",
            ]
    pytest.skip("rbs is not installed (gem rbs, shipped with Debian's ruby)")


@pytest.mark.parametrize("which", ["generated", "keywords"])
def test_rbs_parses_and_validates(which: str, keyword_out: Path) -> None:
    root = GENERATED if which == "generated" else keyword_out
    rbs = _rbs()
    rc, out = _run([*rbs, "parse", str(root / "ruby" / "KSR.rbs")], cwd=root)
    assert rc == 0, out
    rc, out = _run([*rbs, "-I", str(root / "ruby"), "validate", "--silent"], cwd=root)
    assert rc == 0, out[-3000:]


def test_rbs_types_of_example_calls() -> None:
    """The example script's calls exist in KSR.rbs with the argument types it passes."""
    rbs = (GENERATED / "ruby" / "KSR.rbs").read_text(encoding="utf-8")
    script = (FIXTURES / "good.rb").read_text(encoding="utf-8")
    for const, fn in re.findall(r"KSR::([A-Z]+)\.(\w+)", script):
        block = rbs.split(f"  module {const}\n", 1)[1].split("\n  end\n", 1)[0]
        assert f"def self.{fn}: (" in block, f"KSR::{const}.{fn}"
    assert "def self.send_reply: (Integer code, String reason) -> Integer" in rbs
