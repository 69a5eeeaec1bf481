"""Code pykemi compiles and loads at run time (issue 13, H3): the Squirrel closure, the Ruby
glue and out-of-tree C modules are built only into the per-user cache (0700), and a compiled
file is loaded only when it and its directory are the effective user's and nobody else can
write them. A planted .so (whose constructor would write a marker file) is refused with an
error naming its path, and never runs.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pykemi.generator_cli import generate_module
from pykemi.runtime import extensions
from pykemi.runtime.dispatch import StartupError

from .harness import kemi

NOBODY = 65534
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")

SCRIPTS = {
    "sqlang": ("app_sqlang", "script.nut", "function ksr_request_route() {}\n"),
    "ruby": ("app_ruby", "script.rb", "def ksr_request_route\nend\n"),
}


def _engine_available(engine: str) -> str | None:
    if engine == "sqlang":
        try:
            import squirrel  # noqa: F401
        except ImportError:
            return "squirrel-lang is not installed"
        return None
    from pykemi.runtime.engines import ruby_build

    try:
        ruby_build.ruby_flags()
    except ruby_build.RubyBuildError as exc:
        return str(exc)
    return None


def evil_so(tmp: Path, marker: Path) -> Path:
    """A shared object whose constructor creates ``marker``: proof that it was loaded."""
    src = tmp / "evil.c"
    src.write_text(textwrap.dedent(f"""\
        #include <stdio.h>
        __attribute__((constructor)) static void planted(void)
        {{
            FILE *f = fopen("{marker}", "w");
            if (f) {{ fputs("loaded", f); fclose(f); }}
        }}
        """))
    out = tmp / "evil.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    return out


def test_evil_so_runs_its_constructor_when_loaded(tmp_path: Path) -> None:
    """The marker works: loading the planted file does run its code."""
    marker = tmp_path / "marker"
    so = evil_so(tmp_path, marker)
    subprocess.run([sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(so)!r})"], check=True)
    assert marker.read_text() == "loaded"


def _check(tmp: Path, engine: str, cache: Path) -> subprocess.CompletedProcess[str]:
    """``kemi check`` of a config running ``engine``, with ``cache`` as PYKEMI_CACHE_DIR."""
    module, name, script = SCRIPTS[engine]
    (tmp / name).write_text(script, encoding="utf-8")
    cfg = tmp / "kamailio.cfg"
    cfg.write_text(
        "\n".join(
            [
                "#!KAMAILIO",
                "listen=udp:127.0.0.1:5060",
                'loadmodule "sl.so"',
                f'loadmodule "{module}.so"',
                f'modparam("{module}", "load", "{name}")',
                f'cfgengine "{engine}"',
                "",
            ]
        ),
        encoding="utf-8",
    )
    old = os.environ.get("PYKEMI_CACHE_DIR")
    os.environ["PYKEMI_CACHE_DIR"] = str(cache)
    try:
        return kemi("check", str(cfg), cwd=tmp, timeout=300)
    finally:
        if old is None:
            del os.environ["PYKEMI_CACHE_DIR"]
        else:
            os.environ["PYKEMI_CACHE_DIR"] = old


@pytest.fixture(scope="module", params=sorted(SCRIPTS))
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding the engine's compiled glue, as a first start leaves it."""
    engine: str = request.param
    reason = _engine_available(engine)
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp(f"built-{engine}")
    cache = tmp / "cache"
    res = _check(tmp, engine, cache)
    assert res.returncode == 0, res.stderr
    return cache / engine


def _cached_so(engine_dir: Path) -> Path:
    (so,) = sorted(engine_dir.glob("*.so"))
    return so


def test_engine_builds_into_private_per_user_cache(built: Path) -> None:
    for d in (built.parent, built):
        st = os.lstat(d)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (os.geteuid(), 0o700), d
    so = _cached_so(built)
    assert os.lstat(so).st_uid == os.geteuid()


@pytest.mark.parametrize("attack", ["so-of-other-user", "so-group-writable", "dir-of-other-user"])
def test_planted_code_is_refused_and_never_runs(built: Path, tmp_path: Path, attack: str) -> None:
    if attack != "so-group-writable" and os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    engine = built.name
    cache = tmp_path / "cache"
    shutil.copytree(built.parent, cache, symlinks=True)
    engine_dir = cache / engine
    so = _cached_so(engine_dir)
    marker = tmp_path / "marker"
    shutil.copyfile(evil_so(tmp_path, marker), so)  # the attacker's code under the right name
    if attack == "so-of-other-user":
        os.chown(so, NOBODY, NOBODY)
        expected, path = "owned by uid 65534", so
    elif attack == "so-group-writable":
        so.chmod(0o664)
        expected, path = "mode 0664 lets other users write", so
    else:
        os.chown(engine_dir, NOBODY, NOBODY)
        expected, path = "owned by uid 65534", engine_dir
    res = _check(tmp_path, engine, cache)
    assert res.returncode != 0, res.stderr
    assert f"{path}: {expected}" in res.stderr, res.stderr
    assert not marker.exists(), "the planted shared object was loaded"


@root_only
def test_cache_root_of_another_user_is_refused(tmp_path: Path) -> None:
    engine = next((e for e in sorted(SCRIPTS) if _engine_available(e) is None), None)
    if engine is None:
        pytest.skip("neither Squirrel nor Ruby is available")
    cache = tmp_path / "cache"
    cache.mkdir(0o700)
    os.chown(cache, NOBODY, NOBODY)
    res = _check(tmp_path, engine, cache)
    assert res.returncode != 0
    assert f"{cache}: owned by uid 65534" in res.stderr, res.stderr


# -- out-of-tree C modules -------------------------------------------------------------------

C_SPEC = """\
module: democ
summary: Test C module.
exports:
  - name: answer
    ret: int
    impl: {c: ksr_democ_answer}
"""

C_SOURCE = """\
#include "kemi.h"
int ksr_democ_answer(sip_msg_t *msg) { return 42; }
"""


def _c_module(tmp: Path) -> extensions.ExtensionInfo:
    pkg = tmp / "democ"
    pkg.mkdir()
    (pkg / "democ.yaml").write_text(C_SPEC)
    (pkg / "democ.c").write_text(C_SOURCE)
    return extensions.ExtensionInfo("democ", (pkg / "democ.yaml",), (pkg / "democ.c",))


@root_only
def test_planted_extension_build_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYKEMI_CACHE_DIR", str(tmp_path / "cache"))
    info = _c_module(tmp_path)
    ext = generate_module(info)  # `kemi generate`: the tree, and the .so compiled
    so = extensions.c_library_path(ext)
    for d in (so.parent, *so.parent.parents):
        if d == tmp_path:
            break
        assert stat.S_IMODE(os.lstat(d).st_mode) == 0o700, d
    marker = tmp_path / "marker"
    shutil.copyfile(evil_so(tmp_path, marker), so)
    os.chown(so, NOBODY, NOBODY)
    with pytest.raises(StartupError, match=f"{so}: owned by uid 65534"):
        extensions.build_c(ext)
    assert not marker.exists(), "the planted shared object was loaded"
