"""Replay the fuzz seed corpus (and any saved crash inputs) through the fuzz target.

Runs in the default test run without atheris; the coverage-guided run itself is
``nox -s fuzz`` (or the slow test below with PYKEMI_SLOW=1).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .fuzz_sip import TestOneInput as fuzz_one

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
REGRESSIONS = HERE / "regressions"  # inputs that once crashed or hung (kept forever)
SLOW = os.environ.get("PYKEMI_SLOW") == "1"
slow = pytest.mark.skipif(not SLOW, reason="long test: set PYKEMI_SLOW=1")


def _inputs() -> list[Path]:
    return sorted(CORPUS.iterdir()) + sorted(REGRESSIONS.glob("*"))


@pytest.mark.parametrize("path", _inputs(), ids=lambda p: p.name)
def test_replay(path: Path) -> None:
    fuzz_one(path.read_bytes())


def test_seed_corpus_is_mostly_valid() -> None:
    from pykemi.runtime.sip import SipParseError, parse_message

    ok = 0
    for path in sorted(CORPUS.iterdir()):
        try:
            parse_message(path.read_bytes())
            ok += 1
        except SipParseError:
            pass
    assert ok >= 25  # seeds are realistic messages, not noise


@slow
def test_fuzz_short_run(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    work = tmp_path / "corpus"
    work.mkdir()
    run = subprocess.run(
        [
            sys.executable, str(HERE / "fuzz_sip.py"), str(work), str(CORPUS),
            f"-dict={HERE / 'sip.dict'}", "-max_total_time=20", "-timeout=5",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    crashes = [p for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-"))]
    for p in crashes:  # keep them for the replay test
        shutil.copy(p, REGRESSIONS / p.name)
    assert run.returncode == 0 and not crashes, run.stderr[-3000:]
