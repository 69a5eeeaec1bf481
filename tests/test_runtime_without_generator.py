"""The serving router never imports the generator (issue 17): no file under runtime/ imports
pykemi.codegen, and a router process that loads out-of-tree modules (generated beforehand
by ``kemi generate``) has none of the generator's packages in ``sys.modules``."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pykemi.cli import CODEGEN_DEPENDENCIES
from pykemi.cli import main as kemi
from pykemi.runtime import extensions

from .enginehelpers import OPTIONS
from .test_extensions import C_IMPL, C_SOURCE, C_SPEC, IMPL, SPEC, _fake_package, generate

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "runtime"
GENERATOR = ("pykemi.codegen", *CODEGEN_DEPENDENCIES)


def _codegen_imports(path: Path) -> list[str]:
    """``file:line: statement`` of each import of the generator in one runtime file."""
    depth = len(path.relative_to(RUNTIME).parts)  # runtime/x.py: 1 (``..`` is pykemi)
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0:
                names = [module]
            elif node.level == depth + 1:  # relative to pykemi: ..codegen, ...codegen
                names = [f"pykemi.{module}" if module else f"pykemi.{a.name}" for a in node.names]
            else:
                continue
        else:
            continue
        bad = [n for n in names if n == "pykemi.codegen" or n.startswith("pykemi.codegen.")]
        if bad:
            out.append(f"{path.relative_to(ROOT)}:{node.lineno}: imports {', '.join(bad)}")
    return out


def test_no_runtime_file_imports_codegen() -> None:
    files = sorted(RUNTIME.rglob("*.py"))
    assert len(files) > 50
    found = [line for f in files for line in _codegen_imports(f)]
    assert found == []


def test_ast_check_sees_every_import_form(tmp_path: Path) -> None:
    """The check above catches absolute, relative and function-level imports."""
    probe = RUNTIME / "engines" / "_probe_codegen_import.py"
    text = (
        "import pykemi.codegen\nfrom ... import codegen\ndef f():\n    from ...codegen import x\n"
    )
    try:
        probe.write_text(text)
        assert len(_codegen_imports(probe)) == 3
    finally:
        probe.unlink()


ROUTER_SCRIPT = """\
import importlib.metadata, json, sys
sys.path.insert(0, {site!r})
from pykemi.runtime import extensions
from pykemi.runtime.config import parse_config_text
from pykemi.runtime.router import Router
from pykemi.runtime.sip.message import parse_message

eps = {{m: importlib.metadata.EntryPoint(m, f"pykemi_{{m}}_t:module_info", extensions.GROUP)
        for m in ("demo", "democ")}}
extensions.entry_points = lambda: eps
router = Router(parse_config_text({cfg!r}, {path!r}))
sent = []
router.handle({options!r}, ("127.0.0.1", 5070), ("127.0.0.1", 5060), "udp",
              lambda d, a: sent.append(d))
loaded = sorted(m for m in sys.modules if m.startswith({generator!r}))
print(json.dumps({{"reason": str(parse_message(sent[0]).reason), "loaded": loaded}}))
"""


def test_router_with_out_of_tree_modules_imports_no_generator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_package(tmp_path, monkeypatch, "demo", {"__init__.py": IMPL, "demo.yaml": SPEC})
    files = {"__init__.py": C_IMPL, "democ.yaml": C_SPEC, "democ.c": C_SOURCE}
    _fake_package(tmp_path, monkeypatch, "democ", files)
    monkeypatch.setattr(extensions, "entry_points", _entry_points)
    generate("demo")
    generate("democ")
    (tmp_path / "script.lua").write_text(
        "function ksr_request_route()\n"
        '  KSR.sl.send_reply(200, KSR.demo.label() .. " " .. KSR.democ.append("X-A", "1"))\n'
        "end\n"
    )
    cfg = textwrap.dedent("""\
        loadmodule "sl.so"
        loadmodule "demo.so"
        loadmodule "democ.so"
        loadmodule "app_lua.so"
        modparam("app_lua", "load", "script.lua")
        cfgengine "lua"
        """)  # fmt: skip
    script = ROUTER_SCRIPT.format(
        site=str(tmp_path / "site"), cfg=cfg, path=str(tmp_path / "kamailio.cfg"),
        options=OPTIONS, generator=GENERATOR,
    )  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["reason"] == "x:7 1"  # both modules answered: they were loaded
    assert result["loaded"] == []


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {
        m: importlib.metadata.EntryPoint(m, f"pykemi_{m}_t:module_info", extensions.GROUP)
        for m in ("demo", "democ")
    }


@pytest.mark.parametrize(
    "cfg", sorted((ROOT / "examples" / "stateless").glob("kamailio-*.cfg")), ids=lambda p: p.stem
)
def test_kemi_check_through_the_entry_point_imports_no_generator(cfg: Path) -> None:
    """``kemi check`` (pykemi.cli, the console script) as a user runs it, in every engine:
    ``-X importtime`` lists every module the process imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pykemi.cli", "check", str(cfg)],
        capture_output=True, text=True, timeout=120, cwd=cfg.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert "pykemi.runtime.router" in imported
    assert sorted(m for m in imported if m.startswith(GENERATOR)) == []


def test_generate_without_the_codegen_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "jinja2", None)  # as if not installed: find_spec -> None
    assert kemi(["generate", "--check"]) == 2
    err = capsys.readouterr().err
    assert "no module jinja2" in err and "pip install 'pykemi[codegen]'" in err, err
