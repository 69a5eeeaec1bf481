"""Out-of-tree modules: the example packages installed in a fresh virtual environment,
generated with ``kemi generate``, and called from every engine's routing script on real
SIP requests (``kemi run`` + one UDP OPTIONS); plus in-process checks of the rules
(invalid spec reported by ``kemi generate``, a module not generated or stale refused at
start-up, modparams, api_list, generated/ untouched).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import json
import os
import shutil
import site
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from pykemi.cli import main as kemi
from pykemi.runtime import extensions, launch
from pykemi.runtime.config import parse_config_text
from pykemi.runtime.core.log import LOG
from pykemi.runtime.dispatch import GENERATED, StartupError
from pykemi.runtime.router import Router

from .enginehelpers import OPTIONS
from .harness import free_udp_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "modules"
ENGINES = ROOT / "runtime" / "engines"
CALL_ID = "call-1@127.0.0.1"  # the Call-ID of enginehelpers.OPTIONS: header_len -> 16


@dataclass
class Venv:
    root: Path
    python: Path
    env: dict[str, str]
    cache: Path

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 600) -> str:
        proc = subprocess.run(
            [str(self.python), *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=self.env,
            timeout=timeout,
        )
        assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout + proc.stderr


def make_venv(base: Path) -> Venv:
    """A fresh venv seeing pykemi and its deps (system site-packages), with ``kemi`` in bin/."""
    root = base / "venv"
    # --without-pip: pip comes from the parent environment (fast; installs into the venv)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    # The venv sees the packages of the interpreter running the tests (pykemi as installed
    # there, its dependencies, pip, wheel) -- not the base interpreter's, which a
    # --system-site-packages venv would see when the tests run inside a nox virtualenv.
    site_dir = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(site_dir) / "_pykemi_parent.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in parents)
    )
    kemi = root / "bin" / "kemi"
    kemi.write_text(f'#!/bin/sh\nexec "{python}" -m pykemi.cli "$@"\n')
    kemi.chmod(0o755)
    # pip of this venv (it has none of its own: --without-pip)
    pip = root / "bin" / "pip"
    pip.write_text(f'#!/bin/sh\nexec "{python}" -m pip "$@"\n')
    pip.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(root)
    env["PYKEMI_CACHE_DIR"] = str(base / "cache")
    env.pop("PYTHONPATH", None)
    venv = Venv(root, python, env, base / "cache")
    # setuptools before 70.1 builds wheels with the separate `wheel` package
    probe = "import setuptools.command.bdist_wheel"
    if subprocess.run([str(python), "-c", probe], capture_output=True).returncode != 0:
        if importlib.util.find_spec("wheel") is None:
            got = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "wheel"],
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
            )
            if got.returncode != 0:
                pytest.skip(f"cannot install 'wheel' into the test venv: {got.stderr[-500:]}")
    return venv


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    base = tmp_path_factory.mktemp("ext")
    v = make_venv(base)
    # copies: an in-tree build would leave build/ and *.egg-info in examples/
    pkgs = [shutil.copytree(EXAMPLES / n, base / n) for n in ("pykemi-hello-py", "pykemi-hello-c")]
    v.run("-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", *map(str, pkgs))
    return v


@pytest.fixture(scope="module")
def generated(venv: Venv) -> Venv:
    """The example modules generated (`kemi generate`): what a router can load."""
    venv.run("-m", "pykemi.cli", "generate", "--extension", "hello", "--extension", "hello_c")
    return venv


def test_generate_writes_extension_trees(venv: Venv) -> None:
    out = venv.run("-m", "pykemi.cli", "generate", "--extension", "hello", "--extension", "hello_c")
    trees = {}
    for line in out.splitlines():
        if line.startswith("extension "):
            name, _, rest = line.removeprefix("extension ").partition(":")
            trees[name] = Path(rest.split("-> ")[1])
    assert set(trees) == {"hello", "hello_c"}, out
    # progress on stderr, a line per step
    assert "kemi generate: module 'hello': hello.yaml\n" in out
    assert "kemi generate: module 'hello_c': compiling hello_c.c\n" in out
    for name, tree in trees.items():
        assert tree.is_relative_to(venv.cache), tree
        for rel in (
            f"lua/{name}.lua", f"python/KSR/{name}.py", f"python/KSR/{name}.pyi", f"js/{name}.js",
            f"ruby/{name}.rb", f"sqlang/{name}.nut", f"docs/{name}.md", "js/KSR.d.ts",
            "lua/KSR.d.lua", "ruby/KSR.rbs", "api.json", "c/kemi_exports.c",
        ):  # fmt: skip
            assert (tree / rel).is_file(), rel
        # the built-in-only files stay in generated/
        assert not (tree / "python" / "KSR" / "__init__.py").exists()
        assert not (tree / "lua" / "_kemi_prelude.lua").exists()
        api = json.loads((tree / "api.json").read_text())
        assert [m["name"] for m in api["modules"]] == [name]
        assert [e["name"] for e in api["modules"][0]["exports"]] == [
            "hello", "add", "greet", "counter", "header_len",
        ]  # fmt: skip
        page = (tree / "docs" / f"{name}.md").read_text()
        assert "exclaim" in page and "header_len" in page
    assert "greeting" in (trees["hello"] / "docs" / "hello.md").read_text()
    # this repository's generated/ never sees extensions
    assert not (GENERATED / "lua" / "hello.lua").exists()
    assert '"hello"' not in (GENERATED / "api.json").read_text()
    # a second run finds the current tree; --check agrees
    venv.run("-m", "pykemi.cli", "generate", "--check", "--extension", "hello")


def test_example_packages_own_tests_pass_once_generated(generated: Venv) -> None:
    """The examples' README steps: pip install, ``kemi generate --extension``, pytest tests."""
    base = generated.root.parent
    for name in ("pykemi-hello-py", "pykemi-hello-c"):
        out = generated.run(
            "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=base / name
        )
        assert "2 passed" in out, out


# -- each engine, a real router, one UDP OPTIONS ----------------------------------------------

EXPECTED = "Hello, bob!!|5|hi al hi al|null|1|16|-1 / Hello, bob!!!|5|hi al hi al|null|1|16|-1"

SCRIPTS = {
    "lua": (
        "app_lua",
        "script.lua",
        """
        local function fmt(v) if v == nil then return "null" end return tostring(v) end
        function ksr_request_route()
            local parts = {}
            for _, K in ipairs({KSR.hello, KSR.hello_c}) do
                parts[#parts + 1] = table.concat({fmt(K.hello("bob")), fmt(K.add(2, 3)),
                    fmt(K.greet("al", 2)), fmt(K.greet("al", 0)), fmt(K.counter()),
                    fmt(K.header_len("Call-ID")), fmt(K.header_len("X-None"))}, "|")
            end
            KSR.sl.send_reply(200, table.concat(parts, " / "))
        end
        """,
    ),
    "python": (
        "app_python3",
        "script.py",
        """
        import KSR

        def fmt(v):
            return "null" if v is None else str(v)

        def mod_init():
            return Handler()

        class Handler:
            def ksr_request_route(self, msg):
                parts = []
                for K in (KSR.hello, KSR.hello_c):
                    values = (K.hello("bob"), K.add(2, 3), K.greet("al", 2), K.greet("al", 0),
                              K.counter(), K.header_len("Call-ID"), K.header_len("X-None"))
                    parts.append("|".join(fmt(v) for v in values))
                KSR.sl.send_reply(200, " / ".join(parts))
                return 1
        """,
    ),
    "jsdt": (
        "app_jsdt",
        "script.js",
        """
        function fmt(v) { return (v === null || v === undefined) ? "null" : String(v); }
        function ksr_request_route() {
            var parts = [], mods = [KSR.hello, KSR.hello_c];
            for (var i = 0; i < mods.length; i++) {
                var K = mods[i];
                parts.push([fmt(K.hello("bob")), fmt(K.add(2, 3)), fmt(K.greet("al", 2)),
                    fmt(K.greet("al", 0)), fmt(K.counter()), fmt(K.header_len("Call-ID")),
                    fmt(K.header_len("X-None"))].join("|"));
            }
            KSR.sl.send_reply(200, parts.join(" / "));
        }
        """,
    ),
    "ruby": (
        "app_ruby",
        "script.rb",
        """
        def fmt(v)
          v.nil? ? "null" : v.to_s
        end

        def ksr_request_route
          parts = [KSR::HELLO, KSR::HELLO_C].map do |k|
            [k.hello("bob"), k.add(2, 3), k.greet("al", 2), k.greet("al", 0), k.counter,
             k.header_len("Call-ID"), k.header_len("X-None")].map { |v| fmt(v) }.join("|")
          end
          KSR::SL.send_reply(200, parts.join(" / "))
        end
        """,
    ),
    "sqlang": (
        "app_sqlang",
        "script.nut",
        """
        function fmt(v) { return v == null ? "null" : v.tostring(); }
        function ksr_request_route() {
            local parts = [];
            foreach (K in [KSR.hello, KSR.hello_c]) {
                local vals = [K.hello("bob"), K.add(2, 3), K.greet("al", 2), K.greet("al", 0),
                    K.counter(), K.header_len("Call-ID"), K.header_len("X-None")];
                local s = "";
                foreach (i, v in vals) { s += (i > 0 ? "|" : "") + fmt(v); }
                parts.append(s);
            }
            KSR.sl.send_reply(200, parts[0] + " / " + parts[1]);
        }
        """,
    ),
}
ENGINE_FILE = {"lua": "lua.py", "python": "python.py", "jsdt": "js.py", "ruby": "ruby.py",
               "sqlang": "sqlang.py"}  # fmt: skip


def _engine_skip_reason(engine: str) -> str | None:
    path = ENGINES / ENGINE_FILE[engine]
    if not path.is_file():
        return f"runtime/engines/{path.name} does not exist yet"
    return None


@contextmanager
def kemi_run(venv: Venv, cfg: Path, port: int) -> Iterator[Path]:
    log = cfg.parent / "router.log"
    defines = {"LISTEN": f"udp:127.0.0.1:{port}"}
    with launch.running(cfg, log, defines, 120, python=venv.python, env=venv.env):
        yield log


def send_options(port: int) -> str:
    """One UDP OPTIONS to the router; the reply's status line."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(10)
        ours = s.getsockname()[1]
        data = OPTIONS.replace(b"127.0.0.1:5070", f"127.0.0.1:{ours}".encode())
        s.sendto(data, ("127.0.0.1", port))
        reply, _ = s.recvfrom(65535)
    return reply.split(b"\r\n", 1)[0].decode()


@pytest.mark.parametrize("engine", list(SCRIPTS))
def test_extension_functions_from_every_engine(
    generated: Venv, tmp_path: Path, engine: str
) -> None:
    reason = _engine_skip_reason(engine)
    if reason:
        pytest.skip(reason)
    cfg = write_router(tmp_path, engine)
    port = free_udp_port()
    with kemi_run(generated, cfg, port) as log:
        status = send_options(port)
        assert status == f"SIP/2.0 200 {EXPECTED}", log.read_text(errors="replace")


def write_router(folder: Path, engine: str) -> Path:
    """A config and routing script in ``folder`` calling both example modules from
    ``engine`` (SCRIPTS; the reply's reason is EXPECTED); returns the config's path."""
    module, script_name, script = SCRIPTS[engine]
    (folder / script_name).write_text(textwrap.dedent(script).lstrip(), encoding="utf-8")
    cfg = folder / "kamailio.cfg"
    cfg.write_text(
        textwrap.dedent(f"""\
            #!KAMAILIO
            debug=2
            log_stderror=yes
            children=1
            listen=LISTEN
            loadmodule "sl.so"
            loadmodule "hello.so"
            loadmodule "hello_c.so"
            loadmodule "{module}.so"
            modparam("hello", "exclaim", 2)
            modparam("hello_c", "exclaim", 3)
            modparam("{module}", "load", "{script_name}")
            cfgengine "{engine}"
            """),
        encoding="utf-8",
    )
    return cfg


# -- in-process: loading rules, with a module package written by the test ---------------------

SPEC = """\
module: demo
summary: Test module.
params:
  - {name: level, type: int, default: 7, doc: A number}
  - {name: label, type: str, default: "x", doc: A text}
exports:
  - name: twice
    ret: int
    params:
      - {name: n, type: int}
    impl: {python: "pykemi_demo_t:twice"}
  - name: label
    ret: xval
    impl: {python: "pykemi_demo_t:label"}
"""

IMPL = """\
from pathlib import Path
from pykemi.runtime.extensions import param

def module_info():
    return {"specs": ["demo.yaml"], "python_package": "pykemi_demo_t"}

def twice(ctx, n):
    return 2 * n + param(ctx, "demo", "level") - param(ctx, "demo", "level")

def label(ctx):
    return param(ctx, "demo", "label") + ":" + str(param(ctx, "demo", "level"))
"""


def _fake_package(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, module: str, files: dict[str, str]
) -> Path:
    """Package pykemi_<module>_t (``files``) on sys.path, declared as module ``module`` by a
    fake entry point; a private cache and no extension loaded yet."""
    name = f"pykemi_{module}_t"
    pkg = tmp / "site" / name
    pkg.mkdir(parents=True)
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    monkeypatch.syspath_prepend(str(tmp / "site"))
    monkeypatch.delitem(sys.modules, name, raising=False)  # each test has its own copy
    monkeypatch.setenv("PYKEMI_CACHE_DIR", str(tmp / "cache"))
    monkeypatch.setattr(extensions, "LOADED", {})
    ep = importlib.metadata.EntryPoint(module, f"{name}:module_info", extensions.GROUP)
    monkeypatch.setattr(extensions, "entry_points", lambda: {module: ep})
    return pkg


def generate(module: str) -> None:
    """``kemi generate --extension MODULE``, in this process (the fake entry point)."""
    assert kemi(["generate", "--quiet", "--extension", module]) == 0


def generate_fails(module: str, capsys: pytest.CaptureFixture[str]) -> str:
    """``kemi generate --extension MODULE`` exits 2; what it printed on stderr."""
    capsys.readouterr()
    assert kemi(["generate", "--quiet", "--extension", module]) == 2
    return capsys.readouterr().err


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    pkg = _fake_package(tmp_path, monkeypatch, "demo", {"__init__.py": IMPL, "demo.yaml": SPEC})
    generate("demo")
    yield pkg
    sys.modules.pop("pykemi_demo_t", None)


def _router(tmp: Path, lua: str, extra: str = "", module: str = "demo") -> Router:
    (tmp / "script.lua").write_text(f"function ksr_request_route()\n{lua}\nend\n")
    text = "\n".join(
        [
            'loadmodule "sl.so"',
            f'loadmodule "{module}.so"',
            'loadmodule "app_lua.so"',
            extra,
            'modparam("app_lua", "load", "script.lua")',
            'cfgengine "lua"',
            "",
        ]
    )
    return Router(parse_config_text(text, str(tmp / "kamailio.cfg")))


def _reason(router: Router) -> str:
    from pykemi.runtime.sip.message import parse_message

    sent: list[bytes] = []
    router.handle(
        OPTIONS, ("127.0.0.1", 5070), ("127.0.0.1", 5060), "udp", lambda d, a: sent.append(d)
    )
    return str(parse_message(sent[0]).reason)


def test_modparams_defaults_and_values(demo: Path, tmp_path: Path) -> None:
    lua = 'KSR.sl.send_reply(200, KSR.demo.label() .. " " .. KSR.demo.twice(21))'
    assert _reason(_router(tmp_path, lua)) == "x:7 42"
    extensions.LOADED.clear()
    r = _router(tmp_path, lua, 'modparam("demo", "level", "9")\nmodparam("demo", "label", "y")')
    assert _reason(r) == "y:9 42"  # "9" converted to the declared int type
    assert r.extensions == ["demo"]
    names = [(m["func"]["module"], m["func"]["name"]) for m in r.registry.api_list()["methods"]]
    assert names[-2:] == [("demo", "twice"), ("demo", "label")]


def test_unknown_modparam_fails_with_allowed_list(demo: Path, tmp_path: Path) -> None:
    with pytest.raises(StartupError) as err:
        _router(tmp_path, "", 'modparam("demo", "levle", 1)')
    assert "kamailio.cfg:4: module 'demo' has no parameter 'levle' (allowed: level, label)" in str(
        err.value
    )


def test_bad_modparam_type_fails(demo: Path, tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"modparam demo\.level expects an integer, got 'abc'"):
        _router(tmp_path, "", 'modparam("demo", "level", "abc")')


def test_invalid_spec_is_reported_by_generate_with_file_and_line(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (demo / "demo.yaml").write_text(SPEC.replace("ret: xval", "ret: text"))
    text = generate_fails("demo", capsys)
    assert "kemi generate: module 'demo'" in text and "invalid spec" in text, text
    assert f"{demo / 'demo.yaml'}:13: exports[1].ret: unknown value 'text'" in text, text


def test_spec_clashing_with_builtin_exports(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (demo / "demo.yaml").write_text(
        SPEC.replace("module: demo\n", "module: demo\nsubmodule: sl\n").replace(
            "name: twice", "name: send_reply"
        )
    )
    text = generate_fails("demo", capsys)
    assert "KSR.sl.send_reply is already exported by built-in module 'sl'" in text, text


def test_generate_check_reports_a_tree_that_differs(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--check`` renders again and diffs the stored tree (edited by hand, or made by
    another generator: api.json records its fingerprint)."""
    assert kemi(["generate", "--check", "--extension", "demo"]) == 0
    tree = extensions.read_tree(extensions.selected(["demo"])[0]).out_dir
    shim = tree / "lua" / "demo.lua"
    shim.write_text(shim.read_text() + "-- edited\n")
    capsys.readouterr()
    assert kemi(["generate", "--check", "--extension", "demo"]) == 1
    out = capsys.readouterr()
    assert "lua/demo.lua" in out.out and "-- edited" in out.out
    assert "1 module file(s) are stale" in out.err


def test_module_not_generated_is_refused_naming_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_package(tmp_path, monkeypatch, "demo", {"__init__.py": IMPL, "demo.yaml": SPEC})
    with pytest.raises(StartupError) as err:
        _router(tmp_path, "")
    assert "module 'demo' (pykemi_demo_t:module_info): its bindings were not generated; " \
        "run `kemi generate --extension demo`" in str(err.value)  # fmt: skip


def test_spec_changed_after_generate_is_refused_as_stale(demo: Path, tmp_path: Path) -> None:
    """The router compares the spec files with the ones recorded in the tree's api.json."""
    (demo / "demo.yaml").write_text(SPEC.replace("default: 7", "default: 8"))
    with pytest.raises(StartupError) as err:
        _router(tmp_path, "")
    assert "module 'demo' (pykemi_demo_t:module_info): its generated bindings are stale" in str(
        err.value
    )
    assert "run `kemi generate --extension demo`" in str(err.value)
    generate("demo")
    extensions.LOADED.clear()
    assert _reason(_router(tmp_path, "KSR.sl.send_reply(200, KSR.demo.label())")) == "x:8"


def test_unknown_module_still_warns(demo: Path, tmp_path: Path) -> None:
    (tmp_path / "script.lua").write_text("function ksr_request_route() end\n")
    text = 'loadmodule "nosuch.so"\nloadmodule "app_lua.so"\nmodparam("app_lua", "load", "script.lua")\ncfgengine "lua"\n'
    r = Router(parse_config_text(text, str(tmp_path / "kamailio.cfg")))
    assert any("module 'nosuch' is not implemented" in w for w in r.warnings)


def test_shim_path_prefers_generated_for_builtins(demo: Path, tmp_path: Path) -> None:
    assert extensions.shim_path("sl", "lua") == GENERATED / "lua" / "sl.lua"
    _router(tmp_path, "")
    tree = extensions.LOADED["demo"].out_dir
    assert extensions.shim_path("demo", "lua") == tree / "lua" / "demo.lua"
    assert extensions.shim_path("demo", "python") == tree / "python" / "KSR"
    assert tree.is_relative_to(tmp_path / "cache")


# -- C modules calling the host API (issue 13, L8) ------------------------------------------

C_SPEC = """\
module: democ
summary: Test C module.
exports:
  - name: append
    ret: int
    params:
      - {name: name, type: str}
      - {name: value, type: str}
    impl: {c: ksr_democ_append}
"""

C_IMPL = """\
def module_info():
    return {"specs": ["democ.yaml"], "c_sources": ["democ.c"], "python_package": "pykemi_democ_t"}
"""

C_SOURCE = """\
#include "kemi.h"
int ksr_democ_append(sip_msg_t *msg, str *name, str *value)
{
\treturn ksr_host->hdr_append(msg, name->s, name->len, value->s, value->len);
}
"""


def test_host_api_exception_is_logged_and_returns_minus_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hdr_append's Python side refuses a CR/LF in the value: the C export gets -1 (KEMI's
    error; 0 would mean "stop the script"), the error is logged, nothing is printed raw."""
    files = {"__init__.py": C_IMPL, "democ.yaml": C_SPEC, "democ.c": C_SOURCE}
    _fake_package(tmp_path, monkeypatch, "democ", files)
    generate("democ")
    buf = io.StringIO()
    monkeypatch.setattr(LOG, "stream", buf)
    unhandled: list[object] = []  # where cffi reports an exception no onerror handled
    monkeypatch.setattr(sys, "unraisablehook", unhandled.append)
    lua = 'KSR.sl.send_reply(200, "rc=" .. KSR.democ.append("X-A", "a\\r\\nX-Injected: 1"))'
    assert _reason(_router(tmp_path, lua, module="democ")) == "rc=-1"
    log = buf.getvalue()
    assert "ERROR" in log and "hdr_append" in log and "ValueError" in log, log
    assert unhandled == []
