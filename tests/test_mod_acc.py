"""acc: script accounting to the log and SQLite, and tm-driven accounting on flags."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from pykemi.runtime.config import parse_config_text
from pykemi.runtime.config.modparams import spec_defaults
from pykemi.runtime.core.context import ProcessState
from pykemi.runtime.core.log import LOG
from pykemi.runtime.db import admin, schema
from pykemi.runtime.db.engine import Database
from pykemi.runtime.modules import acc
from pykemi.runtime.router import Router
from pykemi.runtime.sip.message import SipMessage, parse_message
from pykemi.runtime.tm import get_tm

from .modhelpers import INVITE, crlf, make_ctx

LINE = re.compile(r"NOTICE: <acc> (ACC: [a-z ]+: .*)$", re.M)


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    old_stream, old_level = LOG.stream, LOG.level
    LOG.stream, LOG.level = buf, 2
    try:
        yield buf
    finally:
        LOG.stream, LOG.level = old_stream, old_level


def acc_lines(buf: io.StringIO) -> list[str]:
    return LINE.findall(buf.getvalue())


def proc_with(**params: object) -> ProcessState:
    proc = ProcessState()
    proc.extra["modparams.acc"] = dict(spec_defaults("acc"), **params)
    return proc


def test_comment_parsing() -> None:
    assert acc.parse_comment("200 OK") == ("200", "OK")
    assert acc.parse_comment("403Forbidden") == ("403", "Forbidden")
    assert acc.parse_comment("just text") == ("", "just text")
    assert acc.parse_comment("") is None and acc.parse_comment("$rU") is None
    assert acc.parse_extra("src_user=$fU; src_ip = $si ;") == [
        ("src_user", "$fU"),
        ("src_ip", "$si"),
    ]
    with pytest.raises(ValueError):
        acc.parse_extra("nonsense")
    assert acc.parse_failed_filter("404,407") == {404, 407}
    with pytest.raises(ValueError):
        acc.parse_failed_filter("40")


def test_acc_log_request_line(logs: io.StringIO) -> None:
    proc = proc_with(log_extra="src_user=$fU;src_ip=$si;dst_user=$rU;nothing=$avp(none)")
    ctx, _ = make_ctx(INVITE, proc=proc)
    assert acc.acc_log_request(ctx, "403 Forbidden") == 1
    (line,) = acc_lines(logs)
    assert re.fullmatch(
        r"ACC: request accounted: timestamp=\d+;method=INVITE;from_tag=ftag1;to_tag=;"
        r"call_id=cid-1@10\.0\.0\.1;code=403;reason=Forbidden;src_user=alice;"
        r"src_ip=192\.0\.2\.7;dst_user=bob;nothing=",
        line,
    ), line
    assert acc.acc_log_request(ctx, "$var(x)") == -1
    assert acc.acc_log_request(ctx, "") == -1


def test_time_modes_and_log_level(logs: io.StringIO) -> None:
    ctx, _ = make_ctx(INVITE, proc=proc_with(time_mode=1))
    acc.acc_log_request(ctx, "200 OK")
    assert re.search(r"timestamp=\d+;time_exten=\d+;method=INVITE", acc_lines(logs)[-1])
    ctx, _ = make_ctx(INVITE, proc=proc_with(time_mode=2, time_attr="t"))
    acc.acc_log_request(ctx, "200 OK")
    assert re.search(r"timestamp=\d+;t=\d+\.\d{3};method", acc_lines(logs)[-1])
    ctx, _ = make_ctx(INVITE, proc=proc_with(log_level=3))  # DEBUG: above debug=2
    acc.acc_log_request(ctx, "200 OK")
    assert len(acc_lines(logs)) == 2


def test_acc_db_request_and_acc_request(tmp_path: Path, logs: io.StringIO) -> None:
    url = f"sqlite://{tmp_path}/acc.db"
    admin.init_db(url, ["acc", "missed_calls"])
    proc = proc_with(db_url=url)
    ctx, _ = make_ctx(INVITE, proc=proc)
    assert acc.acc_db_request(ctx, "480 Temporarily Unavailable", "acc") == 1
    assert acc.acc_request(ctx, "200 OK", "missed_calls") == 1
    db = Database(url)
    rows = db.fetch_all(select(schema.acc))
    assert len(rows) == 1
    r = rows[0]
    assert (r.method, r.from_tag, r.to_tag, r.callid, r.sip_code, r.sip_reason) == (
        "INVITE", "ftag1", "", "cid-1@10.0.0.1", "480", "Temporarily Unavailable",
    )  # fmt: skip
    assert r.time is not None
    assert [m.sip_code for m in db.fetch_all(select(schema.missed_calls))] == ["200"]
    assert len(acc_lines(logs)) == 1  # acc_request logs too
    # db_extra columns (Kamailio's "enhanced accounting" ALTER TABLE) are filled
    db.execute(__import__("sqlalchemy").text("ALTER TABLE acc ADD COLUMN src_user VARCHAR(64)"))
    proc.extra["modparams.acc"]["db_extra"] = "src_user=$fU"
    assert acc.acc_db_request(ctx, "200 OK", "acc") == 1
    assert (
        db.fetch_all(select(__import__("sqlalchemy").text("src_user FROM acc WHERE id = 2")))[0][0]
        == "alice"
    )


def test_db_errors_and_no_db_url(tmp_path: Path, logs: io.StringIO) -> None:
    ctx, _ = make_ctx(INVITE, proc=proc_with())
    assert acc.acc_db_request(ctx, "200 OK", "acc") == -1
    assert acc.acc_request(ctx, "200 OK", "acc") == 1  # log only without db_url
    ctx, _ = make_ctx(INVITE, proc=proc_with(db_url=f"sqlite://{tmp_path}/none.db"))
    assert acc.acc_db_request(ctx, "200 OK", "acc") == -1  # no acc table
    assert acc.acc_request(ctx, "200 OK", "acc") == -1
    assert "failed to insert into database" in logs.getvalue()


# ---- tm-driven accounting ---------------------------------------------------------------------

UAC = ("127.0.0.1", 6000)
UAS = ("127.0.0.1", 5080)
ME = ("127.0.0.1", 5060)

SCRIPT = """
function ksr_request_route()
    if KSR.is_INVITE() then
        KSR.setflag(1)
        if KSR.pv.get("$rU") == "failed" then KSR.setflag(3) end
        if KSR.pv.get("$rU") == "missed" then KSR.setflag(2) end
    end
    if KSR.pv.get("$rU") == "local" then
        KSR.tm.t_newtran()
        KSR.tm.t_reply(404, "Not Here")
        return
    end
    KSR.pv.sets("$du", "sip:127.0.0.1:5080")
    KSR.tm.t_relay()
end
"""


class Net:
    def __init__(self, router: Router) -> None:
        self.router = router
        self.sent: list[tuple[tuple[str, int], SipMessage]] = []
        router.proc.send_to = self.send_to
        router.proc.local_addresses = [("udp", *ME)]

    def send_to(self, proto: str, addr: tuple[str, int], data: bytes, conn: int = -1) -> bool:
        self.sent.append((addr, parse_message(data)))
        return True

    def feed(self, data: bytes, src: tuple[str, int] = UAC) -> None:
        self.router.handle(
            data, src, ME, "udp", lambda d, a: self.sent.append((a, parse_message(d)))
        )

    def take(self, addr: tuple[str, int]) -> list[SipMessage]:
        out = [m for a, m in self.sent if a == addr]
        self.sent = []
        return out

    def relayed_invite(self) -> SipMessage:
        return [m for m in self.take(UAS) if m.method == "INVITE"][-1]


def invite(user: str, n: int = 1) -> bytes:
    return crlf(f"""INVITE sip:{user}@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-acc-{user}-{n}
From: <sip:alice@127.0.0.1>;tag=ft{n}
To: <sip:{user}@127.0.0.1>
Call-ID: acc-{user}-{n}
CSeq: 1 INVITE
Contact: <sip:alice@127.0.0.1:6000>
Max-Forwards: 70
Content-Length: 0

""")


def reply_to(req: SipMessage, code: int, reason: str) -> bytes:
    vias = "".join(f"Via: {h.value}\r\n" for h in req.headers if h.key == "via")
    return (
        f"SIP/2.0 {code} {reason}\r\n{vias}From: {req.get('From')}\r\n"
        f"To: {req.get('To')};tag=uas-tag\r\nCall-ID: {req.call_id}\r\n"
        f"CSeq: {req.get('CSeq')}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


@pytest.fixture
def net(tmp_path: Path, logs: io.StringIO) -> Iterator[Net]:
    url = f"sqlite://{tmp_path}/acc.db"
    admin.init_db(url, ["acc", "missed_calls"])
    (tmp_path / "acc.lua").write_text(SCRIPT, encoding="utf-8")
    mods = ("tm", "tmx", "sl", "kemix", "acc", "app_lua")
    cfg = "\n".join(
        [
            "#!KAMAILIO",
            "debug=2",
            "listen=udp:127.0.0.1:5060",
            *[f'loadmodule "{m}.so"' for m in mods],
            'modparam("acc", "log_flag", 1)',
            'modparam("acc", "log_missed_flag", 2)',
            'modparam("acc", "failed_transaction_flag", 3)',
            'modparam("acc", "db_flag", 1)',
            'modparam("acc", "db_missed_flag", 2)',
            f'modparam("acc", "db_url", "{url}")',
            'modparam("acc", "log_extra", "src_user=$fU;dst_user=$rU")',
            'modparam("app_lua", "load", "acc.lua")',
            'cfgengine "lua"',
            "",
        ]
    )
    router = Router(parse_config_text(cfg, str(tmp_path / "kamailio.cfg")))
    LOG.level = 2
    n = Net(router)
    n.url = url  # type: ignore[attr-defined]
    yield n
    tm = get_tm(router.proc)
    assert tm is not None


def test_answered_transaction_logged_and_stored(net: Net, logs: io.StringIO) -> None:
    net.feed(invite("bob"))
    fwd = net.relayed_invite()
    net.feed(reply_to(fwd, 180, "Ringing"), src=UAS)
    assert acc_lines(logs) == []  # provisional: not accounted (early_media off)
    net.feed(reply_to(fwd, 200, "OK"), src=UAS)
    (line,) = acc_lines(logs)
    assert re.fullmatch(
        r"ACC: transaction answered: timestamp=\d+;method=INVITE;from_tag=ft1;to_tag=uas-tag;"
        r"call_id=acc-bob-1;code=200;reason=OK;src_user=alice;dst_user=bob",
        line,
    ), line
    rows = Database(net.url).fetch_all(select(schema.acc))  # type: ignore[attr-defined]
    assert [(r.sip_code, r.to_tag, r.callid) for r in rows] == [("200", "uas-tag", "acc-bob-1")]


def test_failed_transactions_need_the_failed_flag(net: Net, logs: io.StringIO) -> None:
    net.feed(invite("bob", 2))
    net.feed(reply_to(net.relayed_invite(), 486, "Busy Here"), src=UAS)
    assert acc_lines(logs) == []  # log_flag alone does not account failures
    net.feed(invite("failed", 3))
    net.feed(reply_to(net.relayed_invite(), 486, "Busy Here"), src=UAS)
    (line,) = acc_lines(logs)
    assert "ACC: transaction answered:" in line and ";code=486;reason=Busy Here;" in line


def test_missed_call_reported_once(net: Net, logs: io.StringIO) -> None:
    net.feed(invite("missed", 4))
    net.feed(reply_to(net.relayed_invite(), 480, "Temporarily Unavailable"), src=UAS)
    (line,) = acc_lines(logs)
    assert line.startswith("ACC: call missed: timestamp=") and ";code=480;" in line
    rows = Database(net.url).fetch_all(select(schema.missed_calls))  # type: ignore[attr-defined]
    assert [r.sip_code for r in rows] == ["480"]


def test_local_reply_accounted_with_generated_to_tag(net: Net, logs: io.StringIO) -> None:
    net.feed(invite("local", 5))
    replies = net.take(UAC)
    assert [m.status for m in replies][-1] == 404
    assert acc_lines(logs) == []  # 404 without failed_transaction_flag
    net.router.proc.extra["modparams.acc"]["failed_transaction_flag"] = 1
    net.feed(invite("local", 6))
    (line,) = acc_lines(logs)
    to_tag = net.take(UAC)[-1].to_tag
    assert f";to_tag={to_tag};" in line and ";code=404;reason=Not Here;" in line


def test_acc_without_tm_warns(tmp_path: Path, logs: io.StringIO) -> None:
    (tmp_path / "x.lua").write_text("function ksr_request_route() end\n", encoding="utf-8")
    cfg = "\n".join(
        [
            "#!KAMAILIO",
            *[f'loadmodule "{m}.so"' for m in ("sl", "acc", "app_lua")],
            'modparam("acc", "log_flag", 1)',
            'modparam("app_lua", "load", "x.lua")',
            'cfgengine "lua"',
            "",
        ]
    )
    Router(parse_config_text(cfg, str(tmp_path / "kamailio.cfg")))
    assert "flag-based accounting is off" in logs.getvalue()
