"""Core KEMI exports (KSR.<fn>) on real parsed messages."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pykemi.runtime.core import log as klog
from pykemi.runtime.core.context import MsgContext, ProcessState
from pykemi.runtime.core.pv import get_pv
from pykemi.runtime.modules import core, sl
from pykemi.runtime.sip.message import parse_message

from .kamailio_ref import api_list
from .modhelpers import INVITE, REPLY, make_ctx, request


@pytest.fixture
def logbuf() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    old = (klog.LOG.stream, klog.LOG.level)
    klog.LOG.stream, klog.LOG.level = buf, klog.L_DBG
    yield buf
    klog.LOG.stream, klog.LOG.level = old


def test_logging_verbatim(logbuf: io.StringIO) -> None:
    ctx, _ = make_ctx()
    assert core.info(ctx, "hello\n") is None
    core.err(ctx, "bad")
    core.log(ctx, "warn", "lvl\n")
    core.log(ctx, "weird", "fallback\n")
    out = logbuf.getvalue()
    assert "INFO: <script> hello\n" in out
    assert "ERROR: <script> bad\n" in out
    assert "WARNING: <script> lvl\n" in out
    assert "ERROR: <script> fallback\n" in out


@pytest.mark.parametrize("flag", [0, 1, 17, 31])
def test_message_flags(flag: int) -> None:
    ctx, _ = make_ctx()
    assert not core.isflagset(ctx, flag)
    assert core.setflag(ctx, flag) and core.isflagset(ctx, flag)
    assert get_pv(ctx, "$mf") == 1 << flag  # the bit the script sees
    assert core.resetflag(ctx, flag) and not core.isflagset(ctx, flag)


def test_flag_range() -> None:
    ctx, _ = make_ctx()
    for bad in (-1, 32, 100):
        assert core.setflag(ctx, bad) is False
        assert core.setbflag(ctx, bad) is False
        assert core.setsflag(ctx, bad) is False
    assert get_pv(ctx, "$mf") == 0


def test_branch_and_script_flags() -> None:
    ctx, _ = make_ctx()
    assert core.setbflag(ctx, 3) and get_pv(ctx, "$bf") == 8 and core.isbflagset(ctx, 3)
    assert core.setbiflag(ctx, 4, 2) and core.isbiflagset(ctx, 4, 2)
    assert not core.isbiflagset(ctx, 4, 0) and not core.isbiflagset(ctx, 4, 1)
    assert core.resetbiflag(ctx, 4, 2) and not core.isbiflagset(ctx, 4, 2)
    assert core.isbiflagset(ctx, 3, 0)
    assert core.resetbflag(ctx, 3) and get_pv(ctx, "$bf") == 0
    assert core.setsflag(ctx, 5) and core.issflagset(ctx, 5)
    ctx2, _ = make_ctx(proc=ctx.proc)  # script flags belong to the process
    assert core.issflagset(ctx2, 5)
    assert core.resetsflag(ctx2, 5) and not core.issflagset(ctx, 5)


def test_ruri_rewrites() -> None:
    ctx, _ = make_ctx()
    assert core.setuser(ctx, "carol")
    assert core.sethost(ctx, "h.example")
    assert ctx.ruri == "sip:carol@h.example:5070;transport=udp"
    assert core.setuser(ctx, "")
    assert ctx.ruri == "sip:h.example:5070;transport=udp"
    assert core.seturi(ctx, "sip:x@y")
    assert ctx.ruri == "sip:x@y"
    assert core.seturi(ctx, "") is False
    assert ctx.msg.ruri.startswith("sip:bob@example.com")


def test_dsturi() -> None:
    ctx, _ = make_ctx()
    assert not core.isdsturiset(ctx)
    assert core.setdsturi(ctx, "sip:10.0.0.5:5090")
    assert core.isdsturiset(ctx) and ctx.dst_uri == "sip:10.0.0.5:5090"
    assert core.resetdsturi(ctx) and not core.isdsturiset(ctx)


def test_force_rport_replies_to_the_source_port() -> None:
    """The request's Via (10.0.0.1:5062) has no rport: the reply goes to the Via port, or
    with force_rport to the port the request came from (6000)."""
    for forced, port in ((False, 5062), (True, 6000)):
        ctx, sent = make_ctx(request("OPTIONS"))
        assert not forced or core.force_rport(ctx)
        assert sl.sl_send_reply(ctx, 200, "OK") == 1
        assert [addr for _, addr in sent.items] == [("192.0.2.7", port)]


def test_add_local_rport_adds_rport_to_our_via() -> None:
    for added in (False, True):
        ctx, sent = make_ctx(request("OPTIONS"))
        assert not added or core.add_local_rport(ctx)
        assert core.forward_uri(ctx, "sip:10.0.0.9:5090") == 1
        [(data, addr)] = sent.items
        assert addr == ("10.0.0.9", 5090)
        top_via = parse_message(data).get("Via") or ""
        assert top_via.startswith("SIP/2.0/UDP 127.0.0.1:5060;branch=")
        assert top_via.endswith(";rport") is added, top_via


def test_is_method() -> None:
    ctx, _ = make_ctx()
    assert core.is_method(ctx, "INVITE")
    assert core.is_method(ctx, "invite")
    assert not core.is_method(ctx, "BYE")
    assert core.is_method(ctx, "BYE|INVITE")
    assert not core.is_method(ctx, "BYE|CANCEL")
    assert not core.is_method(ctx, "BYE|FOO")  # only standard methods in lists
    assert not core.is_method(ctx, "")
    ctx, _ = make_ctx(request("FOO"))
    assert core.is_method(ctx, "foo")
    assert not core.is_method(ctx, "FOO|BAR")
    ctx, _ = make_ctx(REPLY)  # replies: CSeq method
    assert core.is_method(ctx, "INVITE")


@pytest.mark.parametrize(
    ("method", "letters", "expected"),
    [
        ("INVITE", "I", True),
        ("INVITE", "abc", False),
        ("ACK", "bAc", True),
        ("BYE", "B", True),
        ("CANCEL", "c", True),
        ("MESSAGE", "M", True),
        ("REGISTER", "R", True),
        ("PRACK", "E", True),
        ("PUBLISH", "P", True),
        ("SUBSCRIBE", "S", True),
        ("NOTIFY", "N", True),
        ("OPTIONS", "o", True),
        ("REFER", "F", True),
        ("GET", "G", True),
        ("UPDATE", "U", True),
        ("KDMQ", "K", True),
        ("DELETE", "D", True),
        ("POST", "T", True),
        ("PUT", "V", True),
        ("INFO", "IABCMREPSNOFGUKDTV", False),
        ("FOO", "IABCMREPSNOFGUKDTV", False),
        ("OPTIONS", "xyz", False),
    ],
)
def test_is_method_in(method: str, letters: str, expected: bool) -> None:
    ctx, _ = make_ctx(request(method))
    assert core.is_method_in(ctx, letters) is expected


METHOD_TESTS = {
    "INVITE": core.is_method_invite,
    "ACK": core.is_method_ack,
    "BYE": core.is_method_bye,
    "CANCEL": core.is_method_cancel,
    "REGISTER": core.is_method_register,
    "OPTIONS": core.is_method_options,
    "SUBSCRIBE": core.is_method_subscribe,
    "PUBLISH": core.is_method_publish,
    "NOTIFY": core.is_method_notify,
    "REFER": core.is_method_refer,
    "INFO": core.is_method_info,
    "UPDATE": core.is_method_update,
    "PRACK": core.is_method_prack,
    "MESSAGE": core.is_method_message,
    "KDMQ": core.is_method_kdmq,
    "GET": core.is_method_get,
    "POST": core.is_method_post,
    "PUT": core.is_method_put,
    "DELETE": core.is_method_delete,
}


@pytest.mark.parametrize("method", sorted(METHOD_TESTS))
def test_is_METHOD(method: str) -> None:
    ctx, _ = make_ctx(request(method))
    for name, fn in METHOD_TESTS.items():
        assert fn(ctx) is (name == method)


def test_is_METHOD_on_reply_uses_cseq() -> None:
    ctx, _ = make_ctx(REPLY)
    assert core.is_method_invite(ctx) and not core.is_method_bye(ctx)


@pytest.mark.parametrize("proto", ["udp", "tcp", "tls", "ws", "wss", "sctp"])
def test_received_proto(proto: str) -> None:
    ctx, _ = make_ctx(proto=proto)
    checks = {
        "udp": core.is_proto_udp,
        "tcp": core.is_proto_tcp,
        "tls": core.is_proto_tls,
        "ws": core.is_proto_ws,
        "wss": core.is_proto_wss,
        "sctp": core.is_proto_sctp,
    }
    for name, fn in checks.items():
        assert fn(ctx) is (name == proto)
    assert core.is_proto_wsx(ctx) is (proto in ("ws", "wss"))
    letter = {"udp": "u", "tcp": "t", "tls": "e", "ws": "v", "wss": "w", "sctp": "s"}[proto]
    assert core.is_proto(ctx, letter.upper())
    assert core.is_proto(ctx, "x" + letter)
    assert not core.is_proto(ctx, "utevws".replace(letter, ""))


def test_address_family_and_ports() -> None:
    ctx, _ = make_ctx()
    assert core.is_af_ipv4(ctx) and not core.is_af_ipv6(ctx)
    ctx6, _ = make_ctx(src=("2001:db8::7", 6000), dst=("::1", 5060))
    assert core.is_af_ipv6(ctx6) and not core.is_af_ipv4(ctx6)
    assert core.is_src_port(ctx, 6000) and not core.is_src_port(ctx, 5060)
    assert core.is_dst_port(ctx, 5060) and not core.is_dst_port(ctx, 6000)


def test_to_proto_and_af() -> None:
    ctx, _ = make_ctx()  # R-URI has transport=udp, host is a name
    assert core.to_proto_udp(ctx) and not core.to_proto_tcp(ctx)
    assert not core.to_af_ipv4(ctx) and not core.to_af_ipv6(ctx)
    core.setdsturi(ctx, "sip:10.0.0.5;transport=tcp")
    assert core.to_proto_tcp(ctx) and core.to_af_ipv4(ctx)
    core.setdsturi(ctx, "sips:[2001:db8::1]:5061")
    assert core.to_proto_tls(ctx) and core.to_af_ipv6(ctx)
    core.setdsturi(ctx, "sip:h;transport=ws")
    assert core.to_proto_ws(ctx) and core.to_proto_wsx(ctx) and not core.to_proto_wss(ctx)
    core.setdsturi(ctx, "sip:h;transport=sctp")
    assert core.to_proto_sctp(ctx)
    rctx, _ = make_ctx(REPLY)  # replies: second Via
    assert core.to_proto_udp(rctx) and core.to_af_ipv4(rctx)


def test_is_myself() -> None:
    proc = ProcessState(listen=[("udp", "127.0.0.1", 5060)], aliases=[("proxy.example", 0)])
    ctx, _ = make_ctx(proc=proc)
    assert core.is_myself(ctx, "sip:127.0.0.1")
    assert core.is_myself(ctx, "sip:127.0.0.1:5060")
    assert not core.is_myself(ctx, "sip:127.0.0.1:5070")
    assert core.is_myself(ctx, "sip:u@proxy.example:9999")
    assert core.is_myself(ctx, "127.0.0.1")
    assert not core.is_myself(ctx, "sip:example.com")
    assert not core.is_myself_ruri(ctx)
    core.seturi(ctx, "sip:bob@127.0.0.1")
    assert core.is_myself_ruri(ctx) and core.is_myself_nhuri(ctx)
    assert not core.is_myself_duri(ctx)
    core.setdsturi(ctx, "sip:10.9.9.9")
    assert not core.is_myself_nhuri(ctx)
    assert not core.is_myself_furi(ctx) and not core.is_myself_turi(ctx)
    assert not core.is_myself_srcip(ctx) and not core.is_myself_suri(ctx)
    lctx, _ = make_ctx(src=("127.0.0.1", 5060), proc=proc)
    assert core.is_myself_srcip(lctx) and core.is_myself_suri(lctx)


def test_send_flags_and_advertised() -> None:
    ctx, _ = make_ctx()
    assert core.set_forward_close(ctx) and core.set_forward_no_connect(ctx)
    assert core.set_reply_close(ctx) and core.set_reply_no_connect(ctx)
    assert core.set_advertised_address(ctx, "203.0.113.1") == 1
    assert core.set_advertised_port(ctx, "5080") == 1
    assert core.set_advertised_port(ctx, "123456789") == 0
    assert core.add_tcp_alias(ctx, 5060) == 1
    assert core.add_tcp_alias_via(ctx) == 1


def test_forward_request() -> None:
    ctx, sent = make_ctx()
    core.setdsturi(ctx, "sip:10.0.0.5:5090")
    core.setuser(ctx, "carol")
    assert core.forward(ctx) == 1
    data, addr = sent.items[-1]
    assert addr == ("10.0.0.5", 5090)
    out = parse_message(data)
    assert out.ruri == "sip:carol@example.com:5070;transport=udp"
    assert out.top_via.host == "127.0.0.1" and out.top_via.port == 5060
    assert out.top_via.branch.startswith("z9hG4bK")
    assert out.get("Max-Forwards") == "70"
    second = out.vias[1]
    assert second.received == "192.0.2.7" and second.rport == "6000"
    assert out.body == b"v=0\n"
    # the received message is untouched
    assert ctx.msg.ruri == "sip:bob@example.com:5070;transport=udp"
    assert len(ctx.msg.vias) == 2
    # retransmission -> same branch
    assert core.forward(ctx) == 1
    assert parse_message(sent.items[-1][0]).top_via.branch == out.top_via.branch


def test_forward_uri_and_errors() -> None:
    ctx, sent = make_ctx()
    core.set_advertised_address(ctx, "203.0.113.1")
    assert core.forward_uri(ctx, "sip:10.0.0.6;transport=tcp") == 1
    data, addr = sent.items[-1]
    assert addr == ("10.0.0.6", 5060)
    assert parse_message(data).top_via.protocol == "SIP/2.0/TCP"
    assert parse_message(data).top_via.host == "203.0.113.1"
    assert core.forward_uri(ctx, "::garbage::") == -1

    def failing(data: bytes, addr: tuple[str, int]) -> None:
        raise OSError("network down")

    ctx.send = failing
    assert core.forward_uri(ctx, "sip:10.0.0.6") == -1


def test_forward_reply_to_second_via() -> None:
    ctx, sent = make_ctx(REPLY, src=("10.0.0.5", 5090))
    assert core.forward(ctx) == 1
    data, addr = sent.items[-1]
    assert addr == ("192.0.2.7", 6000)  # received/rport of the 2nd Via
    out = parse_message(data)
    assert len(out.vias) == 1 and out.top_via.branch == "z9hG4bKabc123"
    assert out.status == 180


def test_get_debug_and_route() -> None:
    ctx, _ = make_ctx()
    ctx.proc.debug = 2
    assert core.get_debug(ctx) == 2
    assert core.route(ctx, "nope") == -1
    calls: list[str] = []

    def run(name: str, c: MsgContext) -> int:
        calls.append(name)
        return 7

    ctx.proc.run_route = run
    assert core.route(ctx, "AUTH") == 7 and calls == ["AUTH"]


def test_unchanged_raw_roundtrip() -> None:
    ctx, _ = make_ctx()
    assert parse_message(ctx.msg.to_bytes()).to_bytes() == parse_message(INVITE).to_bytes()


# ---- the spec files of the core tables and of sl/xlog/kemix/kex --------------------------

SPEC_DIR = Path(__file__).resolve().parent.parent / "spec"
MY_SPECS = {
    "core.yaml": ["", "pv", "hdr"],
    "sl.yaml": ["sl"],
    "xlog.yaml": ["xlog"],
    "kx.yaml": ["kx"],
    "kex.yaml": ["kex"],
}


def _exports(fname: str) -> list[tuple[str, dict[str, Any]]]:
    data = yaml.safe_load((SPEC_DIR / fname).read_text())
    default = data.get("submodule", data["module"])
    return [(e.get("submodule", default), e) for e in data["exports"]]


@pytest.mark.parametrize("fname", sorted(MY_SPECS))
def test_spec_matches_kamailio_api_list(fname: str) -> None:
    ref = api_list()
    want = [
        (r["module"], r["name"], r["ret"], r["params"])
        for r in ref
        if r["module"] in MY_SPECS[fname]
    ]
    got = [
        (sub, e["name"], e["ret"], [p["type"] for p in e.get("params", [])])
        for sub, e in _exports(fname)
    ]
    extras = [g for g in got if g not in want]
    assert [g for g in got if g in want] == want
    assert extras == ([("", "drop", "none", [])] if fname == "core.yaml" else [])


def test_forward_resolves_through_the_bounded_dns_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 13 (L6): stateless forward used an unbounded, uncached getaddrinfo per message
    asked: list[str] = []

    def fake(host: str, port: object, *args: object, **kwargs: object) -> object:
        asked.append(host)
        if host == "next.hop.test":
            return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("192.0.2.7", 0))]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    ctx, sent = make_ctx()
    for _ in range(3):
        assert core.forward_uri(ctx, "sip:next.hop.test:5070") == 1
        assert sent.items[-1][1] == ("192.0.2.7", 5070)
        assert core.forward_uri(ctx, "sip:nowhere.test") == -1
    assert asked == ["next.hop.test", "nowhere.test"]  # answers and failures are cached
