"""Long commands say what they are doing: one line per step on stderr, none with -q
(``kemi run``'s start-up steps are checked in test_cli_kamailio.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .harness import kemi


def test_generate_check_steps() -> None:
    res = kemi("generate", "--check")
    assert res.returncode == 0, res.stderr
    steps = [ln for ln in res.stderr.splitlines() if ln.startswith("kemi generate: ")]
    assert steps[0] == "kemi generate: reading the specs in spec/", res.stderr
    assert "comparing" in steps[1] and "exports generate" in steps[1]
    quiet = kemi("generate", "--check", "-q")
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""


def test_db_init_steps(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/k.db"
    res = kemi("db", "init", url)
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines()[:2] == [
        f"kemi db init: creating 7 tables in {url} (existing ones are kept)",
        "kemi db init: writing their rows of the version table",
    ]
    with sqlite3.connect(tmp_path / "k.db") as db:
        assert db.execute("select count(*) from version").fetchone() == (7,)
    quiet = kemi("db", "init", "-q", url)
    assert quiet.returncode == 0 and "kemi db init:" not in quiet.stderr
