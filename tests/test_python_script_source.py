"""The Python engine loads the routing script from its source only (issue 13).

importlib's file loader trusts ``__pycache__/<name>.cpython-XY.pyc`` beside the script when
its header matches the source's mtime and size, and writes one there: in a directory another
user can write (/tmp), a planted .pyc would run as the router's user.
"""

from __future__ import annotations

import importlib.util
import marshal
from pathlib import Path

import pytest

from .harness import kemi

SCRIPT = """\
import KSR

def ksr_request_route(msg):
    KSR.sl.send_reply(200, "OK")
    return 1
"""

CFG = """\
#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:127.0.0.1:5060
loadmodule "sl.so"
loadmodule "kemix.so"
loadmodule "app_python3.so"
modparam("app_python3", "load", "route.py")
cfgengine "python3"
"""


def _plant_pyc(script: Path, marker: Path) -> Path:
    """A .pyc of another source, with the header py_compile writes for ``script``."""
    evil = compile(f"open({str(marker)!r}, 'w').close()\n", str(script), "exec")
    st = script.stat()
    header = importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little")
    header += (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
    header += (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    pyc = Path(importlib.util.cache_from_source(str(script)))
    pyc.parent.mkdir()
    pyc.write_bytes(header + marshal.dumps(evil))
    return pyc


def test_planted_pyc_is_not_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    script = tmp_path / "route.py"
    script.write_text(SCRIPT, encoding="utf-8")
    (tmp_path / "kamailio.cfg").write_text(CFG, encoding="utf-8")
    marker = tmp_path / "pwned"
    _plant_pyc(script, marker)
    run = kemi("check", "kamailio.cfg", cwd=tmp_path)
    assert not marker.exists(), "the planted __pycache__ .pyc ran instead of route.py"
    assert run.returncode == 0, run.stderr


def test_no_pycache_written_beside_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    (tmp_path / "route.py").write_text(SCRIPT, encoding="utf-8")
    (tmp_path / "kamailio.cfg").write_text(CFG, encoding="utf-8")
    run = kemi("check", "kamailio.cfg", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert not (tmp_path / "__pycache__").exists()


def test_script_traceback_names_file_and_line(tmp_path: Path) -> None:
    script = tmp_path / "route.py"
    script.write_text(SCRIPT + "\n1 / 0\n", encoding="utf-8")
    (tmp_path / "kamailio.cfg").write_text(CFG, encoding="utf-8")
    run = kemi("check", "kamailio.cfg", cwd=tmp_path)
    assert run.returncode != 0
    assert f'File "{script}", line 7' in run.stderr
    assert "1 / 0" in run.stderr  # the source line: linecache reads the script by its name
