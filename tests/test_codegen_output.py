"""Codegen output: deterministic, current, bannered, black-formatted, complete.

None of these tests writes into generated/: ``--check`` runs against a copy.
The keyword fixture (tests/fixtures/keywords/) is rendered in memory here; its
shims are loaded in the real interpreters by tests/test_shims_load.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import black
import pytest

from pykemi.codegen.generate import ROOT, check, load, render_all
from pykemi.codegen.spec import load_spec
from pykemi.kemi import TARGETS, Spec

GENERATED = ROOT / "generated"
KEYWORDS = Path(__file__).resolve().parent / "fixtures" / "keywords"


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load()


@pytest.fixture(scope="module")
def files(spec: Spec) -> dict[str, str]:
    return render_all(spec)


@pytest.fixture(scope="module")
def kw_spec() -> Spec:
    return load_spec(sorted(KEYWORDS.glob("*.yaml")), root=ROOT)


@pytest.fixture(scope="module")
def kw_files(kw_spec: Spec) -> dict[str, str]:
    return render_all(kw_spec)


# ---- determinism and freshness -------------------------------------------------------


def test_render_twice_is_byte_identical(files: dict[str, str]) -> None:
    again = render_all(load())
    assert sorted(again) == sorted(files)
    for rel, content in files.items():
        assert again[rel].encode() == content.encode(), rel


def test_committed_generated_is_current(spec: Spec) -> None:
    diffs = check(spec, GENERATED)
    assert diffs == [], "generated/ is stale; run `kemi generate`:\n" + "".join(diffs)[:4000]


def _copy_generated(tmp_path: Path) -> Path:
    out = tmp_path / "generated"
    shutil.copytree(GENERATED, out, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
    return out


def _kemi_check(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pykemi.codegen.cli", "--check", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def out_copy(tmp_path: Path) -> Path:
    return _copy_generated(tmp_path)


def test_cli_check_current_exits_0(out_copy: Path) -> None:
    proc = _kemi_check(out_copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("generated/ is current")


def test_cli_check_edited_file_exits_1_with_diff(out_copy: Path) -> None:
    target = out_copy / "lua" / "sl.lua"
    text = target.read_text(encoding="utf-8")
    target.write_text(text.replace("local type = type\n", "local type = type -- edited\n", 1))
    proc = _kemi_check(out_copy)
    assert proc.returncode == 1
    assert "--- a/generated/lua/sl.lua\n+++ b/generated/lua/sl.lua\n" in proc.stdout
    assert "\n-local type = type -- edited\n+local type = type\n" in proc.stdout
    assert re.search(r"^@@ -\d+,\d+ \+\d+,\d+ @@", proc.stdout, re.M)
    assert "1 generated file(s) are stale" in proc.stderr
    assert target.read_text(encoding="utf-8") != text, "--check must not rewrite the file"


def test_cli_check_missing_file_exits_1(out_copy: Path) -> None:
    (out_copy / "js" / "kex.js").unlink()
    proc = _kemi_check(out_copy)
    assert proc.returncode == 1
    assert "+++ b/generated/js/kex.js" in proc.stdout
    assert not (out_copy / "js" / "kex.js").exists()


def test_cli_check_reports_stale_extra_file(out_copy: Path) -> None:
    (out_copy / "ruby" / "gone.rb").write_text("# from a removed spec\n")
    proc = _kemi_check(out_copy)
    assert proc.returncode == 1
    assert "generated/ruby/gone.rb: stale file, no longer generated" in proc.stdout
    assert (out_copy / "ruby" / "gone.rb").exists()


# ---- banners -------------------------------------------------------------------------

COMMENT = {".py": "#", ".pyi": "#", ".lua": "--", ".js": "//", ".rb": "#", ".nut": "//"}
COMMENT |= {".c": "//", ".h": "//", ".ts": "//", ".rbs": "#", "": "--"}  # "": .luacheckrc
STUBS = {"js/KSR.d.ts", "lua/KSR.d.lua", "lua/.luacheckrc", "ruby/KSR.rbs"}  # name every spec
DO_NOT_EDIT = "Do not edit: change the spec and run `kemi generate`."


def _expected_sources(rel: str, spec: Spec) -> str:
    """The spec file(s) a generated file must name in its banner."""
    all_specs = ", ".join(sorted(m.spec_file for m in spec.modules))
    stem = Path(rel).stem
    if rel in STUBS:
        return all_specs
    if rel.startswith(("lua/", "js/", "ruby/", "sqlang/")) and stem != "_kemi_prelude":
        return spec.module(stem).spec_file
    if rel.startswith("c/"):
        return all_specs
    if rel.startswith("python/KSR/") and stem != "x":
        sub = "" if stem == "__init__" else stem
        found = sorted(
            {e.spec_file for e in spec.exports if TARGETS["python"].escape(e.submodule) == sub}
        )
        return ", ".join(found) or "(core)"
    return "(no spec)"  # engine files: lua/_kemi_prelude.lua, python/KSR/x.py(i)


@pytest.mark.parametrize("which", ["spec", "keywords"])
def test_every_file_starts_with_banner(
    which: str, spec: Spec, files: dict[str, str], kw_spec: Spec, kw_files: dict[str, str]
) -> None:
    the_spec, the_files = (spec, files) if which == "spec" else (kw_spec, kw_files)
    for rel, content in sorted(the_files.items()):
        suffix = Path(rel).suffix
        if rel.endswith("py.typed"):
            assert content == "", "py.typed is the empty PEP 561 marker"
            continue
        if suffix == ".json":  # no comments in JSON: the banner is the first key
            doc = json.loads(content)
            assert next(iter(doc)) == "_generated"
            assert "do not edit" in doc["_generated"]
            continue
        first = content.splitlines()[0]
        if suffix == ".md":
            name = Path(rel).stem
            src = "spec/*.yaml" if name == "index" else the_spec.module(name).spec_file
            assert first == f"<!-- Generated by pykemi.codegen from {src}. Do not edit. -->", rel
            continue
        prefix = COMMENT[suffix]
        src = _expected_sources(rel, the_spec)
        head = content.splitlines()[:2]
        assert head == [
            f"{prefix} Generated by pykemi.codegen from {src}.",
            f"{prefix} {DO_NOT_EDIT}",
        ], rel


def test_banners_name_existing_specs(files: dict[str, str]) -> None:
    named = 0
    for rel, content in files.items():
        match = re.match(
            r"^\S+ Generated by pykemi\.codegen from (.+?)\.( Do not edit\.|\n)", content
        )
        if not match:
            continue
        for src in match[1].split(", "):
            if src.startswith("(") or "*" in src:  # "(no spec)", "(core)", "spec/*.yaml"
                continue
            assert (ROOT / src).is_file(), f"{rel}: banner names {src}, which does not exist"
            named += 1
    assert named >= len(files) // 2


# ---- Python formatting ----------------------------------------------------------------


@pytest.mark.parametrize("which", ["spec", "keywords"])
def test_python_files_are_black_formatted(
    which: str, files: dict[str, str], kw_files: dict[str, str]
) -> None:
    the_files = files if which == "spec" else kw_files
    py = {rel: c for rel, c in the_files.items() if rel.endswith((".py", ".pyi"))}
    assert "python/KSR/__init__.py" in py
    for rel, content in py.items():
        mode = black.Mode(line_length=100, is_pyi=rel.endswith(".pyi"))
        assert black.format_str(content, mode=mode) == content, rel
        compile(content, rel, "exec")  # and valid Python (stubs too)


# ---- api.json -------------------------------------------------------------------------


def test_api_json_lists_every_export_in_order(spec: Spec) -> None:
    api = json.loads((GENERATED / "api.json").read_text(encoding="utf-8"))
    assert api["spec_hash"] == spec.hash
    assert re.fullmatch(r"[0-9a-f]{16}", api["spec_hash"])
    assert [m["name"] for m in api["modules"]] == [m.name for m in spec.modules]
    assert api["modules"][0]["name"] == "core", "core is registered first"
    listed = [
        (
            m["name"],
            e["submodule"],
            e["name"],
            e["ret"],
            [(p["name"], p["type"]) for p in e["params"]],
        )
        for m in api["modules"]
        for e in m["exports"]
    ]
    expected = [
        (e.module, e.submodule, e.name, e.ret, [(p.name, p.type) for p in e.params])
        for e in spec.exports
    ]
    assert listed == expected
    assert len(listed) == len(spec.exports) > 0
    for m, mod in zip(api["modules"], spec.modules, strict=True):
        assert m["spec"] == mod.spec_file
        for e, exp in zip(m["exports"], mod.exports, strict=True):
            assert e["impl"] == {exp.impl_kind: exp.impl}


def test_spec_hash_is_stamped_in_every_shim(spec: Spec, files: dict[str, str]) -> None:
    for rel, content in files.items():
        if rel.startswith(("lua/", "js/", "ruby/", "sqlang/")) and "_kemi_prelude" not in rel:
            assert f"spec hash {spec.hash}" in content, rel
    assert f'SPEC_HASH = "{spec.hash}"' in files["python/KSR/__init__.py"]
    assert f'kemi_spec_hash[] = "{spec.hash}"' in files["c/kemi_exports.c"]


# ---- keyword fixture ------------------------------------------------------------------

KW_EXPORTS = ["end", "import", "function", "class", "local", "plain"]
KW_PARAMS = {"end", "in", "default"}


def test_keyword_fixture_uses_reserved_words(kw_spec: Spec) -> None:
    assert [e.name for e in kw_spec.exports] == KW_EXPORTS
    assert {p.name for e in kw_spec.exports for p in e.params} == KW_PARAMS
    for name in ("end", "import", "function", "class", "local"):
        assert any(name in t.reserved for t in TARGETS.values()), name


EXPECTED_DEFS: dict[str, list[str]] = {
    "lua/kw.lua": [
        '_kemi_m_kw["end_"] = function(end_, in_, default)',
        '_kemi_m_kw["import"] = function(in_)',
        '_kemi_m_kw["function_"] = function(default, end_)',
        '_kemi_m_kw["class"] = function()',
        '_kemi_m_kw["local_"] = function(end_)',
        '_kemi_m_kwsub["plain"] = function(in_, default)',
    ],
    "js/kw.js": [
        '_kemi_m_kw["end"] = function _kemi_fn(end, in_, default_)',
        '_kemi_m_kw["import_"] = function _kemi_fn(in_)',
        '_kemi_m_kw["function_"] = function _kemi_fn(default_, end)',
        '_kemi_m_kw["class_"] = function _kemi_fn()',
        '_kemi_m_kw["local"] = function _kemi_fn(end)',
        '_kemi_m_kwsub["plain"] = function _kemi_fn(in_, default_)',
    ],
    "ruby/kw.rb": [
        "def self.end_(end_, in_, default)",
        "def self.import(in_)",
        "def self.function(default, end_)",
        "def self.class_()",
        "def self.local(end_)",
        "def self.plain(in_, default)",
    ],
    "sqlang/kw.nut": [
        '::KSR.kw["end"] <- function(end = null, in_ = null, default_ = null)',
        '::KSR.kw["import"] <- function(in_ = null)',
        '::KSR.kw["function_"] <- function(default_ = null, end = null)',
        '::KSR.kw["class_"] <- function()',
        '::KSR.kw["local_"] <- function(end = null)',
        '::KSR.kwsub["plain"] <- function(in_ = null, default_ = null)',
    ],
    "python/KSR/kw.py": [
        "def end(end: int = _kemi_M, in_: str = _kemi_M, default: int = _kemi_M) -> int:",
        "def import_(in_: str = _kemi_M) -> str | int | None:",
        "def function(default: str = _kemi_M, end: str = _kemi_M) -> bool:",
        "def class_() -> None:",
        "def local(end: int = _kemi_M) -> int:",
    ],
    "python/KSR/kwsub.py": ["def plain(in_: int = _kemi_M, default: str = _kemi_M) -> int:"],
}


@pytest.mark.parametrize("rel", sorted(EXPECTED_DEFS))
def test_keyword_names_are_escaped(rel: str, kw_files: dict[str, str]) -> None:
    content = kw_files[rel]
    for line in EXPECTED_DEFS[rel]:
        assert line in content, f"{rel}: expected {line!r}"


@pytest.mark.parametrize("lang", ["python", "lua", "js", "ruby", "sqlang"])
def test_keyword_escaping_follows_names_table(lang: str, kw_spec: Spec) -> None:
    """The expectations above agree with the Targets (escape = reserved word + '_')."""
    for e in kw_spec.exports:
        esc = TARGETS[lang].escape(e.name)
        assert esc == (e.name + "_" if e.name in TARGETS[lang].reserved else e.name)
        assert esc not in TARGETS[lang].reserved


def test_keyword_docs_keep_the_kemi_names(kw_files: dict[str, str]) -> None:
    """Docs show the KEMI names (KSR.kw.end); api.json keeps the spec names unescaped."""
    page = kw_files["docs/kw.md"]
    for name in KW_EXPORTS[:-1]:
        assert f"### KSR.kw.{name} " in page
    api = json.loads(kw_files["api.json"])
    assert [e["name"] for m in api["modules"] for e in m["exports"]] == KW_EXPORTS
