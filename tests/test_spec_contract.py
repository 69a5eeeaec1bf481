"""The spec <-> implementation contract, for every file in spec/ (one rule, one test).

* every export has an implementation of the spec's arity: a Python callable taking ``ctx``
  then one argument per spec parameter, or a C function (present in the built extension)
  taking the message then one argument per parameter;
* exports, their parameters and the modparams are documented;
* every modparam has a consumer in its module's implementation (its name is read there),
  or its spec marks it ``effect: none`` or ``effect: "partial: ..."`` (the runtime warns);
* the runtime's modparam values are the spec's defaults: a Router given a model whose
  defaults differ hands those to the modules, Python and C alike.
"""

from __future__ import annotations

import ast
import copy
import ctypes
import importlib
import importlib.util
import inspect
import json
import re
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from pykemi.kemi.model import WORKS
from pykemi.runtime import cdispatch
from pykemi.runtime.config import load_config
from pykemi.runtime.config.modparams import PROC_KEY, spec_defaults
from pykemi.runtime.dispatch import GENERATED, Api
from pykemi.runtime.modules import params as modparams
from pykemi.runtime.router import Router

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p.name for p in (ROOT / "spec").glob("*.yaml"))
C_SOURCES = ROOT / "runtime" / "cmodules"
# a C string literal (escapes included)
C_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


@cache
def api_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((GENERATED / "api.json").read_text(encoding="utf-8"))
    return doc


def modules_of(spec: str) -> list[dict[str, Any]]:
    found = [m for m in api_doc()["modules"] if m["spec"] == f"spec/{spec}"]
    assert found, f"spec/{spec} is not in generated/api.json: run `kemi generate`"
    return found


def python_impl(target: str) -> Any:
    mod, _, attr = target.partition(":")
    return getattr(importlib.import_module(mod), attr)


def c_params(symbol: str) -> list[str]:
    """The parameter list of ``symbol``'s definition in runtime/cmodules/*.c."""
    define = re.compile(rf"^[\w \t*]*\b{re.escape(symbol)}\s*\(([^)]*)\)\s*\{{", re.MULTILINE)
    for source in sorted(C_SOURCES.glob("*.c")):
        m = define.search(source.read_text(encoding="utf-8"))
        if m:
            args = m.group(1).strip()
            return [] if args in ("", "void") else [a.strip() for a in args.split(",")]
    raise AssertionError(f"no definition of {symbol} in {C_SOURCES}/*.c")


def impl_sources(module: dict[str, Any]) -> list[Path]:
    """The files implementing ``module``: its exports' Python modules and C sources, and the
    package ``pykemi.runtime.<module>`` when there is one (tm, usrloc)."""
    files: set[Path] = set()
    for e in module["exports"]:
        ((kind, target),) = e["impl"].items()
        if kind == "python":
            spec = importlib.util.find_spec(target.partition(":")[0])
            assert spec is not None and spec.origin is not None, target
            files.add(Path(spec.origin))
        else:
            files.update(
                p for p in C_SOURCES.glob("*.c") if re.search(rf"\b{target}\s*\(", p.read_text())
            )
    package = importlib.util.find_spec(f"pykemi.runtime.{module['name']}")
    if package is not None and package.submodule_search_locations:
        for folder in package.submodule_search_locations:
            files.update(Path(folder).glob("*.py"))
    return sorted(files)


def strings_read(path: Path) -> set[str]:
    """String literals of a source file, docstrings left out (they describe, they do not read)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".c":
        return set(C_STRING.findall(text))
    tree = ast.parse(text)
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    }


@pytest.mark.parametrize("spec", SPECS)
def test_every_export_has_an_implementation_of_the_spec_arity(spec: str) -> None:
    ext = cdispatch.extension()
    so = ctypes.CDLL(ext.__file__)
    for module in modules_of(spec):
        for e in module["exports"]:
            where = f"spec/{spec}: {e['submodule'] or '<core>'}.{e['name']}"
            ((kind, target),) = e["impl"].items()
            if kind == "python":
                sig = inspect.signature(python_impl(target))
                first = next(iter(sig.parameters), None)
                assert first == "ctx", f"{where}: {target} must take ctx first"
                try:  # ctx, then one value per spec parameter
                    sig.bind(*range(1 + len(e["params"])))
                except TypeError as exc:
                    raise AssertionError(f"{where}: {target}{sig}: {exc}") from None
            else:
                assert hasattr(so, target), f"{where}: C symbol {target} not in {ext.__file__}"
                assert len(c_params(target)) - 1 == len(e["params"]), f"{where}: {target} arity"


@pytest.mark.parametrize("spec", SPECS)
def test_every_export_and_parameter_is_documented(spec: str) -> None:
    for module in modules_of(spec):
        for e in module["exports"]:
            assert e["summary"], f"spec/{spec}: {e['name']} has no summary"
            for p in e["params"]:
                assert p["name"].isidentifier(), f"spec/{spec}: {e['name']}: {p['name']}"
                assert p.get("doc"), f"spec/{spec}: {e['name']}: parameter {p['name']} has no doc"
        for p in module["params"]:
            assert p.get("doc"), f"spec/{spec}: modparam {p['name']} has no doc"


@pytest.mark.parametrize("spec", SPECS)
def test_every_modparam_is_read_or_declared_without_effect(spec: str) -> None:
    unread = []
    for module in modules_of(spec):
        if not module["params"]:
            continue
        sources = impl_sources(module)
        assert sources, f"spec/{spec}: no implementation of module {module['name']}"
        read = set().union(*(strings_read(s) for s in sources))
        # a parameter without effect may still be read (to warn that it does nothing)
        unread += [
            f"{module['name']}.{p['name']}"
            for p in module["params"]
            if p["name"] not in read and p.get("effect", WORKS) == WORKS
        ]
    assert not unread, (
        f"spec/{spec}: modparams read nowhere in their module's implementation: {unread}; "
        "implement them or mark them 'effect: none' in the spec"
    )


def altered_api() -> tuple[Api, dict[str, Any]]:
    """The built-in model with every int modparam default moved (+7), so values that reach
    the modules can only come from the model."""
    doc = copy.deepcopy(api_doc())
    for m in doc["modules"]:
        for p in m["params"]:
            if p["type"] == "int":
                p["default"] += 7
    return Api(doc), doc


def write_cfg(
    tmp_path: Path,
    modules: list[str],
    extra: str = "",
    script: str = "function ksr_request_route() end\n",
) -> Path:
    """tmp_path/k.cfg: a Lua router loading ``modules``, with its script beside it."""
    (tmp_path / "r.lua").write_text(script, encoding="utf-8")
    lines = [f'loadmodule "{m}.so"' for m in (*modules, "app_lua")]
    cfg = tmp_path / "k.cfg"
    cfg.write_text(
        "\n".join(
            ["#!KAMAILIO", *lines, 'modparam("app_lua", "load", "r.lua")', extra, 'cfgengine "lua"']
        )
        + "\n",
        encoding="utf-8",
    )
    return cfg


# what a module needs to start besides itself: other modules, modparams (left out of the check)
NEEDS = {"auth_db.yaml": (["auth"], {("auth_db", "db_url"): "sqlite:///{tmp}/a.db"})}


@pytest.mark.parametrize("spec", [s for s in SPECS if any(m["params"] for m in modules_of(s))])
def test_modules_get_the_spec_defaults(spec: str, tmp_path: Path) -> None:
    api, doc = altered_api()
    names = [m["name"] for m in modules_of(spec)]
    others, given = NEEDS.get(spec, ([], {}))
    extra = "\n".join(
        f'modparam("{m}", "{n}", "{v.format(tmp=tmp_path)}")' for (m, n), v in given.items()
    )
    router = Router(load_config(write_cfg(tmp_path, [*others, *names], extra)), api)
    for module in (m for m in doc["modules"] if m["name"] in names and m["params"]):
        want = spec_defaults(module["name"], api)
        c_only = module["exports"] and all("c" in e["impl"] for e in module["exports"])
        if c_only:  # what the C host API answers
            got = {k: cdispatch._modparams[(module["name"], k)] for k in want}
            want = {k: v for k, v in want.items() if isinstance(v, int)}
        else:
            assert PROC_KEY + module["name"] in router.proc.extra, f"{module['name']}: not loaded"
            got = dict(modparams.params(router.proc, module["name"]))
            # parameters that may be repeated start as an empty list
            multi = {p["name"] for p in module["params"] if p.get("multi")}
            assert all(got[k] == [] for k in multi), module["name"]
            got.update({k: want[k] for k in multi})
        for m, name in given:
            if m == module["name"]:
                del got[name], want[name]
        assert got == want, module["name"]


MAXFWD_SCRIPT = """
function ksr_request_route()
    KSR.maxfwd.process_maxfwd(10)
    KSR.hdr.append_to_reply("X-MF: " .. KSR.hdr.get("Max-Forwards") .. "\\r\\n")
    KSR.sl.sl_send_reply(200, "OK")
end
"""


def test_c_module_limits_with_the_spec_default(tmp_path: Path) -> None:
    """maxfwd (C) lowers Max-Forwards to max_limit: 16 when the model says 16, with no modparam.
    In a fresh process: the C module reads its parameter once per process."""
    doc = copy.deepcopy(api_doc())
    (maxfwd,) = [m for m in doc["modules"] if m["name"] == "maxfwd"]
    (limit,) = [p for p in maxfwd["params"] if p["name"] == "max_limit"]
    limit["default"] = 16
    (tmp_path / "api.json").write_text(json.dumps(doc), encoding="utf-8")
    cfg = write_cfg(tmp_path, ["sl", "maxfwd"], script=MAXFWD_SCRIPT)
    code = textwrap.dedent(f"""
        from pathlib import Path
        from pykemi.runtime.config import load_config
        from pykemi.runtime.dispatch import Api
        from pykemi.runtime.router import Router
        from tests.modhelpers import INVITE

        r = Router(load_config({str(cfg)!r}), Api.load(Path({str(tmp_path / "api.json")!r})))
        out = []
        r.handle(INVITE, ("10.0.0.1", 5062), ("127.0.0.1", 5060), "udp", lambda d, a: out.append(d))
        print(out[0].decode())
        """)
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "SIP/2.0 200 OK" and "X-MF: 16" in lines, run.stdout
