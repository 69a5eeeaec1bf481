"""Under CI a skipped suite fails the run (tests/conftest.py, ``--fail-on-skip``).

A throw-away suite with this checkout's conftest.py is run by a real pytest process: its
exit status and output are what a CI job sees.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SUITE = {
    "test_tools.py": """
import pytest

def test_needs_sipp():
    pytest.skip("sipp (Debian sip-tester) not installed")

@pytest.mark.skipif(True, reason="long test: set PYKEMI_SLOW=1")
def test_long_variant():
    pass

def test_runs():
    pass

def test_expected_failure():
    pytest.xfail("by design")
""",
    "test_module_skip.py": """
import pytest

pytest.importorskip("pyduktape2_is_not_here", reason="pyduktape2 (Duktape, ES5) not installed")

def test_never_collected():
    pass
""",
}


def _suite(tmp: Path, names: list[str]) -> Path:
    shutil.copy(HERE / "conftest.py", tmp / "conftest.py")
    for name in names:
        (tmp / name).write_text(SUITE[name], encoding="utf-8")
    return tmp


def _pytest(folder: Path, ci: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", ".", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ci_fails_on_a_skipped_suite(tmp_path: Path) -> None:
    run = _pytest(_suite(tmp_path, ["test_tools.py", "test_module_skip.py"]), "true")
    assert run.returncode == 1, run.stdout + run.stderr
    out = run.stdout
    assert "FAILED test_tools.py::test_needs_sipp - skipped under --fail-on-skip (CI): sipp" in out
    assert "FAILED (module) test_module_skip.py: skipped under --fail-on-skip (CI): " in out
    assert "pyduktape2 (Duktape, ES5) not installed" in out
    # the allowed reason (long variants) and xfail stand; the other tests still ran
    assert "test_long_variant" not in out.split("short test summary", 1)[-1]
    assert "1 failed, 1 passed, 2 skipped, 1 xfailed" in out, out


def test_allowed_skips_pass_under_ci(tmp_path: Path) -> None:
    folder = _suite(tmp_path, ["test_tools.py"])
    run = _pytest(folder, "true", "-k", "not needs_sipp")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed, 1 skipped, 1 deselected, 1 xfailed" in run.stdout, run.stdout


def test_outside_ci_skips_stay_skips(tmp_path: Path) -> None:
    folder = _suite(tmp_path, ["test_tools.py", "test_module_skip.py"])
    for ci in (None, "false", "0"):
        run = _pytest(folder, ci)
        assert run.returncode == 0, (ci, run.stdout + run.stderr)
        assert "1 passed, 3 skipped, 1 xfailed" in run.stdout, run.stdout
    run = _pytest(folder, None, "--fail-on-skip")  # asked for explicitly
    assert run.returncode == 1, run.stdout + run.stderr
