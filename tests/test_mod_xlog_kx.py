"""KSR.xlog, KSR.kx and KSR.kex exports."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator

import pytest

from pykemi.runtime.core import log as klog
from pykemi.runtime.modules import kex, kx, xlog

from .modhelpers import INVITE, REPLY, make_ctx, request


@pytest.fixture
def logbuf() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    old = (klog.LOG.stream, klog.LOG.level)
    klog.LOG.stream, klog.LOG.level = buf, klog.L_DBG
    yield buf
    klog.LOG.stream, klog.LOG.level = old


def test_xlog_levels(logbuf: io.StringIO) -> None:
    ctx, _ = make_ctx()
    assert xlog.xinfo(ctx, "$rm from $si\n") == 1
    assert xlog.xerr(ctx, "ru=$ru t=$tt\n") == 1
    assert xlog.xdbg(ctx, "dbg\n") == 1
    assert xlog.xnotice(ctx, "n\n") == 1
    assert xlog.xwarn(ctx, "w\n") == 1
    assert xlog.xalert(ctx, "a\n") == 1
    assert xlog.xcrit(ctx, "c\n") == 1
    out = logbuf.getvalue()
    assert "INFO: <script> INVITE from 192.0.2.7\n" in out
    assert "ERROR: <script> ru=sip:bob@example.com:5070;transport=udp t=<null>\n" in out
    for text in ("DEBUG: <script> dbg", "NOTICE: <script> n", "WARNING: <script> w"):
        assert text in out
    assert "ALERT: <script> a" in out and "CRITICAL: <script> c" in out


def test_xlog_named_level(logbuf: io.StringIO) -> None:
    ctx, _ = make_ctx()
    assert xlog.xlog(ctx, "L_INFO", "hello $fU\n") == 1
    assert xlog.xlog(ctx, "l_warn", "lower\n") == 1
    assert xlog.xlog(ctx, "L_NOPE", "fallback\n") == 1
    out = logbuf.getvalue()
    assert "INFO: <script> hello alice\n" in out
    assert "WARNING: <script> lower\n" in out
    assert "ERROR: <script> fallback\n" in out


def test_xlog_below_threshold_not_printed(logbuf: io.StringIO) -> None:
    klog.LOG.level = klog.L_WARN
    ctx, _ = make_ctx()
    assert xlog.xdbg(ctx, "hidden\n") == 1
    assert "hidden" not in logbuf.getvalue()


@pytest.mark.parametrize(
    ("name", "level"),
    [("L_ALERT", -5), ("L_BUG", -4), ("L_CRIT", -2), ("L_ERR", -1), ("L_WARN", 0),
     ("L_NOTICE", 1), ("L_INFO", 2), ("L_DBG", 3), ("info", 2), ("3", 3)],
)  # fmt: skip
def test_level_names(name: str, level: int) -> None:
    assert xlog.level_of(name) == level


def test_kx_request_values() -> None:
    ctx, _ = make_ctx()
    assert kx.get_ruri(ctx) == "sip:bob@example.com:5070;transport=udp"
    assert kx.get_ouri(ctx) == kx.get_ruri(ctx)
    assert kx.get_ruser(ctx) == "bob" and kx.get_rhost(ctx) == "example.com"
    assert kx.get_furi(ctx) == "sip:alice@atlanta.example.com"
    assert kx.get_fuser(ctx) == "alice" and kx.get_fhost(ctx) == "atlanta.example.com"
    assert kx.get_turi(ctx) == "sip:bob@example.com"
    assert kx.get_tuser(ctx) == "bob" and kx.get_thost(ctx) == "example.com"
    assert kx.get_cturi(ctx) == "sip:alice@10.0.0.1:5062"
    assert kx.get_ua(ctx) == "test-ua/1.0"
    assert kx.get_srcip(ctx) == "192.0.2.7" and kx.get_srcport(ctx) == 6000
    assert kx.get_srcuri(ctx) == "sip:192.0.2.7:6000"
    assert kx.get_srcaddr_sock(ctx) == "udp:192.0.2.7:6000"
    assert kx.get_rcvip(ctx) == "127.0.0.1" and kx.get_rcvport(ctx) == 5060
    assert kx.get_rcvadvip(ctx) == "127.0.0.1" and kx.get_rcvadvport(ctx) == 5060
    assert kx.get_rcvaddr_sock(ctx) == "udp:127.0.0.1:5060"
    assert kx.get_proto(ctx) == "udp" and kx.get_protoid(ctx) == 1
    assert kx.get_au(ctx) == "alice"
    assert kx.get_method(ctx) == "INVITE"
    assert kx.get_status(ctx) == -1 and kx.gets_status(ctx) is None
    assert kx.get_body(ctx) == "v=0\n" and kx.get_bodylen(ctx) == 4
    assert kx.get_callid(ctx) == "cid-1@10.0.0.1"
    assert kx.get_conid(ctx) == -1
    assert kx.get_msgbuf(ctx) == ctx.msg.to_bytes().decode()
    assert kx.get_msglen(ctx) == len(ctx.msg.to_bytes())
    assert kx.get_msgtype(ctx) == 1
    assert abs(kx.get_timestamp(ctx) - time.time()) < 5


def test_kx_null_modes() -> None:
    ctx, _ = make_ctx(request("OPTIONS", "sip:example.com"))
    assert kx.get_ruser(ctx) is None
    assert kx.gete_ruser(ctx) == ""
    assert kx.getw_ruser(ctx) == "<null>"
    for get, gete, getw in [
        (kx.get_duri, kx.gete_duri, kx.getw_duri),
        (kx.get_cturi, kx.gete_cturi, kx.getw_cturi),
        (kx.get_ua, kx.gete_ua, kx.getw_ua),
        (kx.get_au, kx.gete_au, kx.getw_au),
        (kx.get_body, kx.gete_body, kx.getw_body),
    ]:
        assert get(ctx) is None and gete(ctx) == "" and getw(ctx) == "<null>"
    assert kx.getw_rhost(ctx) == "example.com" and kx.gete_rhost(ctx) == "example.com"
    assert kx.gete_fuser(ctx) == "alice" and kx.getw_fhost(ctx) == "atlanta.example.com"
    assert kx.getw_tuser(ctx) == "bob" and kx.gete_thost(ctx) == "example.com"
    assert kx.get_send_sock(ctx) is None and kx.get_send_sock_name(ctx) is None
    assert kx.get_send_sock_port(ctx) == 0 and kx.get_rcv_sock_name(ctx) is None


def test_kx_duri_nhuri() -> None:
    ctx, _ = make_ctx()
    assert kx.get_nhuri(ctx) == kx.get_ruri(ctx)
    ctx.dst_uri = "sip:10.0.0.5:5090"
    assert kx.get_duri(ctx) == "sip:10.0.0.5:5090"
    assert kx.get_nhuri(ctx) == "sip:10.0.0.5:5090"
    ctx.new_uri = "sip:carol@h"
    assert kx.get_ruri(ctx) == "sip:carol@h" and kx.get_ruser(ctx) == "carol"
    assert kx.get_ouri(ctx) == "sip:bob@example.com:5070;transport=udp"


def test_kx_reply() -> None:
    ctx, _ = make_ctx(REPLY)
    assert kx.get_ruri(ctx) is None and kx.get_ruser(ctx) is None
    assert kx.get_status(ctx) == 180 and kx.gets_status(ctx) == "180"
    assert kx.get_method(ctx) == "INVITE" and kx.get_msgtype(ctx) == 2


def test_kx_ack_has_no_au() -> None:
    raw = request("ACK", extra='Authorization: Digest username="u", realm="r"\n')
    ctx, _ = make_ctx(raw)
    assert kx.get_au(ctx) is None
    ctx, _ = make_ctx(request("BYE", extra='Authorization: Digest username="u@d", realm="r"\n'))
    assert kx.get_au(ctx) == "u"


def test_kx_transport_and_ipv6() -> None:
    ctx, _ = make_ctx(INVITE, src=("2001:db8::7", 7000), dst=("::1", 5061), proto="tls")
    assert kx.get_protoid(ctx) == 3 and kx.get_proto(ctx) == "tls"
    assert kx.get_srcaddr_sock(ctx) == "tls:[2001:db8::7]:7000"
    assert kx.get_srcuri(ctx) == "sip:[2001:db8::7]:7000;transport=tls"
    ctx.extra["send_sock"] = "udp:10.0.0.1:5080"
    assert kx.get_send_sock(ctx) == "udp:10.0.0.1:5080" and kx.get_send_sock_port(ctx) == 5080


def test_kx_defines_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, _ = make_ctx()
    ctx.proc.defines.update({"WITH_AUTH": "", "PORT": "5080", "NAME": "x"})
    assert kx.ifdef(ctx, "WITH_AUTH") and not kx.ifndef(ctx, "WITH_AUTH")
    assert kx.ifndef(ctx, "WITH_NAT") and not kx.ifdef(ctx, "WITH_NAT")
    assert kx.get_def(ctx, "NAME") == "x" and kx.get_def(ctx, "NONE") == ""
    assert kx.get_defn(ctx, "PORT") == 5080 and kx.get_defn(ctx, "NAME") == 0
    assert kx.get_defn(ctx, "NONE") == 0
    monkeypatch.setenv("PYKEMI_T_NUM", "42")
    assert kx.get_env(ctx, "PYKEMI_T_NUM") == "42" and kx.get_envn(ctx, "PYKEMI_T_NUM") == 42
    assert kx.get_env(ctx, "PYKEMI_T_UNSET_X") == "" and kx.get_envn(ctx, "PYKEMI_T_UNSET_X") == 0
    assert kx.get_env(ctx, "") == ""
    assert "PYKEMI_T_UNSET_X" not in os.environ


def test_kex_debug() -> None:
    ctx, _ = make_ctx()
    old = klog.LOG.level
    try:
        ctx.proc.debug = 0
        assert kex.setdebug(ctx, 3) == 1
        assert ctx.proc.debug == 3 and klog.LOG.level == 3
        assert kex.setdebug(ctx, 1) == 1
        assert kex.resetdebug(ctx) == 1
        assert ctx.proc.debug == 0 and klog.LOG.level == old
        assert kex.resetdebug(ctx) == 1
    finally:
        klog.LOG.level = old
