"""The distribution works without the checkout.

``python -m build`` makes an sdist and, from that sdist alone, a wheel. The wheel is
installed into fresh venvs (pip, its dependencies from the package index as configured on
this machine; cwd outside the checkout, no PYTHONPATH): without extras the stateless example
runs in every engine against sipp and ``kemi check`` accepts every example; with
``[codegen]`` ``kemi generate --check`` works on a user's own spec folder and the example
out-of-tree modules are generated into the per-user cache and called from every engine.
Nothing is written below the venv meanwhile.

Select with ``pytest -m wheel`` (``nox -s dist``); it builds the C glue and installs every
dependency: about a minute here, a few on a loaded machine.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from pykemi.kemi.targets import TARGETS
from pykemi.runtime import launch

from .harness import ROOT, SIPP, free_udp_port, sipp
from .test_extensions import EXPECTED, SCRIPTS, Venv, send_options, write_router

pytestmark = pytest.mark.wheel

# each language's own engine (cfgengine name): the example has a kamailio-<engine>.cfg for it
ENGINES = [next(iter(t.engines)) for t in TARGETS.values()]
STATELESS = ROOT / "examples" / "stateless"

USER_SPEC = """\
module: greet
summary: A user's own module.
exports:
  - name: hello
    ret: int
    params:
      - {name: who, type: str, doc: Who to greet}
    summary: Greets someone.
    impl: {python: "greet_impl:hello"}
"""


def folder_roots() -> dict[str, str]:
    """setup.py's ROOTS (top-level folder -> package), read without running setup()."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ROOTS":
            roots: dict[str, str] = ast.literal_eval(node.value)
            return {"pykemi": "pykemi", **roots}
    raise AssertionError("setup.py defines no ROOTS")


def source_files() -> list[str]:
    """Files of the checkout that are not ignored (tracked or new), relative to ROOT."""
    if not (ROOT / ".git").exists():
        pytest.skip("lists the files of a git checkout (not an unpacked sdist)")
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout  # fmt: skip
    return sorted({p for p in out.decode().split("\0") if p and (ROOT / p).is_file()})


@dataclass
class Dist:
    sdist: Path
    wheel: Path


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    pytest.importorskip("build", reason="`build` (pip install build) makes the sdist and wheel")
    out = tmp_path_factory.mktemp("dist")
    # from a copy of the checkout's files: the build writes its egg-info beside setup.py
    src = tmp_path_factory.mktemp("src")
    for rel in source_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    # no flags: the sdist first, then the wheel built from the unpacked sdist in isolation
    run = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(src)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    (sdist,) = out.glob("pykemi-*.tar.gz")
    (wheel,) = out.glob("pykemi-*.whl")
    return Dist(sdist, wheel)


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder below root with its (mtime_ns, size): a write changes it."""
    state = {}
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(here, name)
            st = os.lstat(path)
            state[os.path.relpath(path, root)] = (st.st_mtime_ns, st.st_size)
    return state


def changes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


@dataclass
class Installed:
    venv: Venv
    site: Path  # the venv's site-packages: pykemi is installed in site/pykemi
    work: Path  # the cwd of every command: outside the checkout

    def kemi(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """The ``kemi`` console script of the venv."""
        return subprocess.run(
            [str(self.venv.root / "bin" / "kemi"), *args],
            capture_output=True, text=True, cwd=cwd or self.work, env=self.venv.env, timeout=300,
        )  # fmt: skip


def install(base: Path, requirement: str) -> Installed:
    """A fresh venv (with pip) in base/venv holding ``requirement`` and its dependencies."""
    root = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    # the venv's bin first; nothing from the checkout (e.g. .nox/tests/bin) on PATH
    path = [p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))]
    env["PATH"] = os.pathsep.join([str(root / "bin"), *path])
    env["VIRTUAL_ENV"] = str(root)
    env["PYKEMI_CACHE_DIR"] = str(base / "cache")  # compiled engine glue: a fresh cache
    venv = Venv(root, root / "bin" / "python", env, base / "cache")
    work = base / "work"
    work.mkdir()
    venv.run("-m", "pip", "install", "-q", requirement, cwd=work, timeout=900)
    site = venv.run("-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=work)
    return Installed(venv, Path(site.strip()), work)


@pytest.fixture(scope="module")
def router_only(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel without extras: a router, not the generator."""
    return install(tmp_path_factory.mktemp("wheel-router"), str(dist.wheel))


@pytest.fixture(scope="module")
def with_codegen(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel with the ``[codegen]`` extra: ``kemi generate`` works."""
    return install(tmp_path_factory.mktemp("wheel-codegen"), f"{dist.wheel}[codegen]")


def test_wheel_holds_every_source_file_and_the_compiled_glue(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as whl:
        names = set(whl.namelist())
    missing = []
    for rel in source_files():
        folder, _, rest = rel.partition("/")
        package = folder_roots().get(folder)
        if package and rest:
            wanted = f"{package.replace('.', '/')}/{rest}"
            if wanted not in names:
                missing.append(wanted)
    assert not missing, f"{len(missing)} source file(s) not in {dist.wheel.name}: {missing[:20]}"
    # what the router reads at run time, and the dispatch extension compiled by the build
    for must in ("pykemi/generated/lua/_kemi_prelude.lua", "pykemi/generated/api.json"):
        assert must in names
    assert any(n.startswith("pykemi/runtime/_kemi_dispatch.") and n.endswith(".so") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".o"))]
    assert not [n for n in names if n.startswith("pykemi/runtime/_kemi_") and n.endswith(".c")]


def test_sdist_holds_the_specs_and_builds_alone(dist: Dist) -> None:
    # the wheel above was built from this sdist (python -m build without flags)
    with tarfile.open(dist.sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    specs = {p.relative_to(ROOT).as_posix() for p in (ROOT / "spec").glob("*.yaml")}
    assert specs and specs <= names, sorted(specs - names)
    for must in ("setup.py", "pyproject.toml", "MANIFEST.in", "generated/c/kemi_dispatch.c"):
        assert must in names


def test_installed_outside_the_checkout_without_the_generator(router_only: Installed) -> None:
    probe = (
        "import importlib.util, pykemi.generated as g; print(g.__file__); "
        "print([m for m in ('yaml', 'pydantic', 'jinja2', 'black') if importlib.util.find_spec(m)])"
    )
    where, found = router_only.venv.run("-c", probe, cwd=router_only.work).splitlines()[:2]
    assert Path(where).is_relative_to(router_only.site), where
    assert not Path(where).is_relative_to(ROOT), where
    assert found == "[]", f"the generator's dependencies came with the plain wheel: {found}"


@pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) not installed")
def test_stateless_example_in_every_engine(router_only: Installed, tmp_path: Path) -> None:
    before = tree_state(router_only.venv.root)
    for engine in ENGINES:
        work = shutil.copytree(STATELESS, tmp_path / engine)
        cfg = work / f"kamailio-{engine}.cfg"
        port = free_udp_port()
        log = work / "router.log"
        defines = {"LISTEN": f"udp:127.0.0.1:{port}", "CHILDREN": "1"}
        env = router_only.venv.env
        with launch.running(cfg, log, defines, 120, python=router_only.venv.python, env=env):
            ok = sipp("options.xml", port, work, calls=100, rate=100)
            hops = sipp("options_maxfwd0.xml", port, work, calls=5, rate=50)
        text = log.read_text(errors="replace")
        assert (ok.successful, ok.failed) == (100, 0), f"{engine}:\n{ok.output}\n{text[-3000:]}"
        assert (hops.successful, hops.failed) == (5, 0), f"{engine}:\n{hops.output}"
        assert "Traceback" not in text, f"{engine}:\n{text[-3000:]}"
    # a compiled extension or a cache written below the installed tree shows up here
    assert changes(before, tree_state(router_only.venv.root)) == []


def test_kemi_check_accepts_every_example(router_only: Installed, tmp_path: Path) -> None:
    """Every engine loads every example script from the installed shims (a missing
    generated file, e.g. the Lua prelude, fails here)."""
    before = tree_state(router_only.venv.root)
    for example in ("stateless", "relay"):
        work = shutil.copytree(ROOT / "examples" / example, tmp_path / example)
        for cfg in sorted(work.glob("*.cfg")):
            check = router_only.kemi("check", cfg.name, cwd=work)
            assert check.returncode == 0, f"{example}/{cfg.name}:\n{check.stderr[-3000:]}"
    assert changes(before, tree_state(router_only.venv.root)) == []


def test_generate_check_on_a_users_spec_folder(with_codegen: Installed, tmp_path: Path) -> None:
    before = tree_state(with_codegen.venv.root)
    (tmp_path / "spec").mkdir()
    (tmp_path / "spec" / "greet.yaml").write_text(USER_SPEC, encoding="utf-8")
    folders = ("--spec", "spec", "--out", "gen")
    made = with_codegen.kemi("generate", *folders, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    shim = tmp_path / "gen" / "lua" / "greet.lua"
    assert "KSR functions of module greet" in shim.read_text(encoding="utf-8")
    current = with_codegen.kemi("generate", "--check", *folders, cwd=tmp_path)
    assert current.returncode == 0, current.stdout + current.stderr
    shim.write_text(shim.read_text(encoding="utf-8") + "-- edited by hand\n", encoding="utf-8")
    stale = with_codegen.kemi("generate", "--check", *folders, cwd=tmp_path)
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert "lua/greet.lua" in stale.stdout and "-- edited by hand" in stale.stdout
    assert changes(before, tree_state(with_codegen.venv.root)) == []


@pytest.fixture(scope="module")
def with_modules(with_codegen: Installed, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The example module packages (one in Python, one in C) installed next to the wheel."""
    base = tmp_path_factory.mktemp("modules")
    names = ("pykemi-hello-py", "pykemi-hello-c")
    pkgs = [str(shutil.copytree(ROOT / "examples" / "modules" / n, base / n)) for n in names]
    with_codegen.venv.run("-m", "pip", "install", "-q", *pkgs, cwd=with_codegen.work)
    return with_codegen


@pytest.mark.parametrize("engine", list(SCRIPTS))
def test_out_of_tree_modules_are_generated_into_the_cache(
    with_modules: Installed, tmp_path: Path, engine: str
) -> None:
    """`kemi generate` renders the modules' bindings and compiles the C one into the per-user
    cache, the router loads them from there; nothing below the venv changes."""
    venv = with_modules.venv
    before = tree_state(venv.root)
    made = with_modules.kemi("generate", "--extension", "hello", "--extension", "hello_c")
    assert made.returncode == 0, made.stdout + made.stderr
    assert {"hello", "hello_c"} <= {p.name for p in (venv.cache / "modules").iterdir()}
    cfg = write_router(tmp_path, engine)
    port = free_udp_port()
    defines = {"LISTEN": f"udp:127.0.0.1:{port}"}
    with launch.running(cfg, tmp_path / "router.log", defines, 120, venv.python, venv.env):
        status = send_options(port)
    assert status == f"SIP/2.0 200 {EXPECTED}", (tmp_path / "router.log").read_text()
    assert changes(before, tree_state(venv.root)) == []


def test_commands_that_would_write_into_the_install_refuse(
    with_codegen: Installed, tmp_path: Path
) -> None:
    """The installed generated/ and dispatch extension are read-only: `kemi generate` of the
    built-in specs has nothing to do, of a user's specs without --out and `kemi build` refuse,
    instead of writing below site-packages."""
    before = tree_state(with_codegen.venv.root)
    (tmp_path / "spec").mkdir()
    (tmp_path / "spec" / "greet.yaml").write_text(USER_SPEC, encoding="utf-8")
    builtin = with_codegen.kemi("generate", cwd=tmp_path)
    assert builtin.returncode == 0, builtin.stdout + builtin.stderr
    user = with_codegen.kemi("generate", "--spec", "spec", cwd=tmp_path)
    assert user.returncode == 2 and "--out DIR" in user.stderr, user.stdout + user.stderr
    build = with_codegen.kemi("build", cwd=tmp_path)
    assert build.returncode == 2 and "installed" in build.stderr, build.stdout + build.stderr
    assert changes(before, tree_state(with_codegen.venv.root)) == []
