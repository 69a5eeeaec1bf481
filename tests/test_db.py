"""The database layer: Kamailio db_url parsing, schema, kemi db, per-process engines, PostgreSQL."""

from __future__ import annotations

import io
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from select import select as select_fd

import pytest
from sqlalchemy import inspect, select

from pykemi.runtime.cli import main as kemi_main
from pykemi.runtime.db import admin, engine, schema
from pykemi.runtime.db.engine import Database, DbError, get_engine
from pykemi.runtime.db.url import DbUrlError, parse_db_url

# ---- URLs ---------------------------------------------------------------------------------


def test_parse_mysql_and_postgres_urls() -> None:
    u = parse_db_url("mysql://kamailio:kamailiorw@localhost/kamailio")
    assert (u.backend, u.user, u.password, u.host, u.port, u.database) == (
        "mysql",
        "kamailio",
        "kamailiorw",
        "localhost",
        None,
        "kamailio",
    )
    sa = u.sqlalchemy_url()
    assert sa.drivername == "mysql+pymysql" and sa.password == "kamailiorw"
    assert u.redacted() == "mysql://kamailio:***@localhost/kamailio"
    p = parse_db_url("postgres://kam:p@ss@db.example.com:5433/kam")
    assert (p.backend, p.user, p.password, p.host, p.port) == (
        "postgres",
        "kam",
        "p@ss",
        "db.example.com",
        5433,
    )
    assert p.sqlalchemy_url().drivername.startswith("postgresql+psycopg")
    assert parse_db_url("postgresql://u@[::1]:5432/db").host == "::1"
    assert parse_db_url("mysql://127.0.0.1/kamailio").user is None


def test_parse_sqlite_urls() -> None:
    assert parse_db_url("sqlite:///var/lib/k.db").database == "/var/lib/k.db"
    assert parse_db_url("sqlite:////var/lib/k.db").database == "/var/lib/k.db"  # SQLAlchemy form
    assert parse_db_url("sqlite://rel/k.db").database == "rel/k.db"
    assert parse_db_url("sqlite:///tmp/x.db").sqlalchemy_url().database == "/tmp/x.db"


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("text:///etc/kamailio/dbtext", "not supported"),
        ("oracle://u:p@h/db", "not supported"),
        ("foo://u@h/db", "unknown database scheme"),
        ("mysql://u:p@localhost", "no database name"),
        ("mysql://u:p@localhost:99999/db", "out of range"),
        ("mysql://u:p@localhost:abc/db", "bad port"),
        ("localhost/kamailio", "scheme://"),
        ("sqlite://", "no database file"),
    ],
)
def test_bad_urls(url: str, needle: str) -> None:
    with pytest.raises(DbUrlError, match=needle):
        parse_db_url(url)


# ---- kemi db on SQLite ------------------------------------------------------------------------


def add_user_stdin(monkeypatch: pytest.MonkeyPatch, password: str, *args: str) -> int:
    """``kemi db add-user ARGS --password-stdin`` with ``password`` on stdin (in process)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return kemi_main(["db", "add-user", *args, "--password-stdin"])


def test_kemi_db_init_add_user_add_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite://{tmp_path}/k.db"
    assert kemi_main(["db", "init", url]) == 0
    assert kemi_main(["db", "init", url]) == 0  # idempotent: tables kept, versions reset
    assert add_user_stdin(monkeypatch, "secret", url, "alice", "example.com") == 0
    plain = ["--store-plaintext"]
    assert add_user_stdin(monkeypatch, "secret2", url, "alice", "example.com", *plain) == 0
    assert kemi_main(["db", "add-address", url, "1", "10.0.0.0", "8", "0"]) == 0
    assert kemi_main(["db", "add-address", url, "2", "192.0.2.7", "--tag", "gw"]) == 0
    out = capsys.readouterr().out
    assert "tables ready" in out and "updated" in out
    db = Database(url)
    ins = inspect(db.engine)
    assert set(schema.VERSIONS) <= set(ins.get_table_names())
    cols = [c["name"] for c in ins.get_columns("subscriber")]
    assert cols == ["id", "username", "domain", "password", "ha1", "ha1b"]
    assert [c["name"] for c in ins.get_columns("address")] == [
        "id", "grp", "ip_addr", "mask", "port", "tag",
    ]  # fmt: skip
    assert "partition" in [c["name"] for c in ins.get_columns("location")]
    versions = dict(
        db.fetch_all(select(schema.version.c.table_name, schema.version.c.table_version))
    )
    assert versions == schema.VERSIONS
    assert db.table_version("subscriber") == 7 and db.table_version("nope") is None
    row = db.fetch_all(select(schema.subscriber))[0]
    assert row.password == "secret2"
    assert row.ha1 == admin.md5_hex("alice:example.com:secret2")
    assert row.ha1b == admin.md5_hex("alice@example.com:example.com:secret2")
    addrs = db.fetch_all(select(schema.address.c.grp, schema.address.c.ip_addr, schema.address.c.mask,
                                schema.address.c.port, schema.address.c.tag))  # fmt: skip
    assert [tuple(r) for r in addrs] == [(1, "10.0.0.0", 8, 0, None), (2, "192.0.2.7", 32, 0, "gw")]


def test_kemi_db_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kemi_main(["db", "init", "text:///tmp/dbtext"]) == 1
    assert "not supported" in capsys.readouterr().err
    url = f"sqlite://{tmp_path}/k.db"
    assert kemi_main(["db", "add-address", url, "1", "not-an-ip"]) == 1
    assert "invalid IP" in capsys.readouterr().err
    assert kemi_main(["db", "add-address", url, "1", "10.0.0.1", "33"]) == 1
    # a table that does not exist: a clean error, no traceback
    assert add_user_stdin(monkeypatch, "c", url, "a", "b") == 1
    assert "no such table" in capsys.readouterr().err
    assert kemi_main(["db", "init", url, "--table", "nope"]) == 1


# ---- L7: kemi db keeps secrets secret ------------------------------------------------------


def _kemi_db(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``kemi db ARGS`` as a user runs it (umask 022, stdin a pipe)."""
    return subprocess.run(
        [sys.executable, "-m", "pykemi.runtime.cli", "db", *args],
        input=stdin or "",
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.umask(0o022),
    )


def _subscriber(url: str) -> tuple[str, str, str]:
    row = Database(url).fetch_all(select(schema.subscriber))[0]
    return row.password, row.ha1, row.ha1b


def test_kemi_db_sqlite_file_is_0600(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/k.db"
    res = _kemi_db("init", url)
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE((tmp_path / "k.db").stat().st_mode) == 0o600
    # a database someone made readable: init says so (and leaves the mode to the admin)
    (tmp_path / "k.db").chmod(0o644)
    res = _kemi_db("init", url)
    assert res.returncode == 0 and "mode 0644" in res.stderr and "chmod 600" in res.stderr


def test_kemi_db_add_user_stores_ha1_only_and_reads_stdin(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/k.db"
    assert _kemi_db("init", url).returncode == 0
    res = _kemi_db("add-user", url, "alice", "example.com", "--password-stdin", stdin="s3 cret\n")
    assert res.returncode == 0, res.stderr
    ha1 = admin.md5_hex("alice:example.com:s3 cret")
    ha1b = admin.md5_hex("alice@example.com:example.com:s3 cret")
    assert _subscriber(url) == ("", ha1, ha1b)
    assert b"s3 cret" not in (tmp_path / "k.db").read_bytes()
    # plaintext only when asked for (auth_db calculate_ha1=1 configs)
    res = _kemi_db(
        "add-user", url, "alice", "example.com", "--password-stdin", "--store-plaintext",
        stdin="s3 cret\n",
    )  # fmt: skip
    assert res.returncode == 0 and _subscriber(url) == ("s3 cret", ha1, ha1b)


def test_kemi_db_add_user_refuses_password_on_command_line(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/k.db"
    assert _kemi_db("init", url).returncode == 0
    res = _kemi_db("add-user", url, "alice", "example.com", "hunter2")
    assert res.returncode == 1 and "not accepted on the command line" in res.stderr
    assert "hunter2" not in res.stderr + res.stdout
    # stdin not a terminal and no --password-stdin: no silent read, no empty password
    res = _kemi_db("add-user", url, "alice", "example.com", stdin="hunter2\n")
    assert res.returncode == 1 and "--password-stdin" in res.stderr
    res = _kemi_db("add-user", url, "alice", "example.com", "--password-stdin", stdin="\n")
    assert res.returncode == 1 and "empty password" in res.stderr
    assert not Database(url).fetch_all(select(schema.subscriber))


def test_kemi_db_add_user_prompts_on_a_terminal(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/k.db"
    assert _kemi_db("init", url).returncode == 0
    master, slave = os.openpty()
    args = [sys.executable, "-m", "pykemi.runtime.cli", "db", "add-user", url, "bob", "d"]
    with subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave) as proc:
        os.close(slave)
        out = b""
        for prompt in (b"Password: ", b"Password (again): "):
            deadline = time.monotonic() + 60
            while prompt not in out and time.monotonic() < deadline:
                if select_fd([master], [], [], 1)[0]:
                    out += os.read(master, 1024)
            assert prompt in out, out
            out = out.replace(prompt, b"", 1)
            os.write(master, b"pty-pw\n")
        assert proc.wait(timeout=60) == 0
    os.close(master)
    assert b"pty-pw" not in out  # not echoed
    assert _subscriber(url) == ("", admin.md5_hex("bob:d:pty-pw"), admin.md5_hex("bob@d:d:pty-pw"))


@pytest.mark.parametrize(
    "url",
    [
        "mysql://kam:hunter2@localhost:99999/db",
        "mysql://kam:hunter2@localhost:abc/db",
        "mysql://kam:hunter2@localhost",
        "postgres://kam:hunter2@[::1/db",
        "foo://kam:hunter2@h/db",
        "oracle://kam:hunter2@h/db",
        "kam:hunter2@localhost/db",
        "mysql://kam:hunter2@127.0.0.1:{dead}/kamailio",  # connection refused
    ],
)
def test_db_url_errors_never_echo_the_password(url: str) -> None:
    url = url.format(dead=_free_port())
    res = _kemi_db("init", url)
    assert res.returncode == 1, res.stdout
    assert "hunter2" not in res.stderr + res.stdout
    assert "kam:***@" in res.stderr


def test_database_errors_are_dberror(tmp_path: Path) -> None:
    db = Database(f"sqlite://{tmp_path}/missing-dir/x.db")
    with pytest.raises(DbError, match="sqlite"):
        db.fetch_all(select(schema.subscriber))
    # an unreachable server fails fast with DbError (connect timeout, no hang)
    port = _free_port()
    dead = Database(f"mysql://u:p@127.0.0.1:{port}/kamailio")
    t0 = time.monotonic()
    with pytest.raises(DbError):
        dead.fetch_all(select(schema.subscriber))
    assert time.monotonic() - t0 < 10


def test_engine_per_process_after_fork(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/k.db"
    admin.init_db(url, ["subscriber"])
    admin.add_user(url, "bob", "d", "pw")
    parent = get_engine(url)
    assert get_engine(url) is parent
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must get its own engine, and it must work
        try:
            child = get_engine(url)
            rows = Database(url).fetch_all(select(schema.subscriber.c.username))
            ok = child is not parent and [r[0] for r in rows] == ["bob"]
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1" and status == 0
    os.close(r)
    assert get_engine(url) is parent  # the parent's engine is untouched
    engine.dispose_all()
    assert get_engine(url) is not parent


# ---- PostgreSQL ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free port (initdb refuses root: run as postgres)."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql)")
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user")
        as_user = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="pykemi-pg-"))  # not under pytest's 0700 root tmp
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if as_user:
        os.chmod(base, 0o755)
        for p in (base, sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    port = _free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    try:
        subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                        "-U", "kemi", "--no-sync"], **run)  # type: ignore[call-overload]  # fmt: skip
        opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts,
                        "-l", str(base / "log"), "-w", "start"], **run)  # type: ignore[call-overload]  # fmt: skip
        subprocess.run([*as_user, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                        "-U", "kemi", "kamailio"], **run)  # type: ignore[call-overload]  # fmt: skip
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"cannot start PostgreSQL: {exc.stderr.decode(errors='replace')}")
    try:
        yield f"postgres://kemi@127.0.0.1:{port}/kamailio"
    finally:
        engine.dispose_all()
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


def test_postgresql_init_users_and_addresses(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert kemi_main(["db", "init", pg_url]) == 0
    assert add_user_stdin(monkeypatch, "secret", pg_url, "alice", "example.com") == 0
    admin.add_address(pg_url, 1, "10.1.0.0", 16, 5060, "pg")
    db = Database(pg_url)
    assert db.table_version("location") == 9
    row = db.fetch_all(select(schema.subscriber))[0]
    assert row.ha1 == admin.ha1("alice", "example.com", "secret")
    assert {"acc", "missed_calls", "trusted"} <= set(inspect(db.engine).get_table_names())
    # acc's time column takes a datetime; the quoted reserved word "partition" works too
    from sqlalchemy import insert

    db.execute(insert(schema.location).values(ruid="r1", username="alice", contact="sip:a@h"))
    assert db.fetch_all(select(schema.location.c.partition))[0][0] == 0
