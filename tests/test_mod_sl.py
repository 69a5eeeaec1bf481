"""KSR.sl: stateless replies built from real requests and sent through ctx.send."""

from __future__ import annotations

from pykemi.runtime.modules import hdr, sl
from pykemi.runtime.sip.message import parse_message
from pykemi.runtime.sip.reply import gen_to_tag

from .modhelpers import INVITE, REPLY, make_ctx, request


def test_send_reply_basic() -> None:
    ctx, sent = make_ctx()
    assert sl.sl_send_reply(ctx, 404, "Not Here") == 1
    assert ctx.replied == 404
    ((data, addr),) = sent.items
    # top Via has rport (no value) -> source IP and port
    assert addr == ("192.0.2.7", 6000)
    rpl = parse_message(data)
    assert not rpl.is_request and rpl.status == 404 and rpl.reason == "Not Here"
    assert [str(v) for v in rpl.vias] == [str(v) for v in ctx.msg.vias]
    assert rpl.call_id == "cid-1@10.0.0.1"
    assert rpl.cseq == (101, "INVITE")
    assert rpl.from_tag == "ftag1"
    assert rpl.to_tag == gen_to_tag(ctx.msg)
    assert rpl.get("Server") == "pykemi (0.1.0 (x86_64/linux))"
    assert rpl.body == b""


def test_retransmission_same_tag() -> None:
    ctx, sent = make_ctx()
    sl.send_reply(ctx, 486, "Busy Here")
    ctx2, sent2 = make_ctx()
    sl.send_reply(ctx2, 486, "Busy Here")
    assert parse_message(sent.items[0][0]).to_tag == parse_message(sent2.items[0][0]).to_tag


def test_100_has_no_tag_and_existing_tag_kept() -> None:
    ctx, sent = make_ctx()
    sl.sl_send_reply(ctx, 100, "Trying")
    assert parse_message(sent.items[0][0]).to_tag is None
    raw = request("BYE", extra="").replace(b"To: <sip:bob@example.com>", b"To: <sip:b@x>;tag=have")
    ctx, sent = make_ctx(raw)
    sl.sl_send_reply(ctx, 200, "OK")
    assert parse_message(sent.items[0][0]).to_tag == "have"


def test_via_address_without_rport() -> None:
    ctx, sent = make_ctx(request("OPTIONS"))  # Via 10.0.0.1:5062, no rport, no received
    sl.sl_send_reply(ctx, 200, "OK")
    assert sent.items[0][1] == ("192.0.2.7", 5062)  # received IP, Via port
    ctx, sent = make_ctx(request("OPTIONS"))
    ctx.force_rport = True
    sl.sl_send_reply(ctx, 200, "OK")
    assert sent.items[0][1] == ("192.0.2.7", 6000)


def test_tcp_replies_to_connection() -> None:
    ctx, sent = make_ctx(request("OPTIONS"), proto="tcp")
    sl.sl_send_reply(ctx, 200, "OK")
    assert sent.items[0][1] == ("192.0.2.7", 6000)


def test_append_to_reply_headers() -> None:
    ctx, sent = make_ctx()
    hdr.append_to_reply(ctx, "X-Reason: testing\r\nRetry-After: 30\r\n")
    sl.send_reply(ctx, 503, "Service Unavailable")
    rpl = parse_message(sent.items[0][0])
    assert rpl.get("X-Reason") == "testing"
    assert rpl.get("Retry-After") == "30"


def test_redirect_contact() -> None:
    ctx, sent = make_ctx()
    ctx.new_uri = "sip:bob@elsewhere.example"
    sl.sl_send_reply(ctx, 302, "Moved Temporarily")
    assert parse_message(sent.items[0][0]).get("Contact") == "<sip:bob@elsewhere.example>"


def test_ack_is_never_replied() -> None:
    ctx, sent = make_ctx(request("ACK"))
    assert sl.sl_send_reply(ctx, 200, "OK") == -1  # Kamailio sl_reply_helper: an error
    assert sent.items == [] and ctx.replied == 0


def test_errors() -> None:
    ctx, sent = make_ctx(REPLY)
    assert sl.sl_send_reply(ctx, 200, "OK") == -1
    ctx, sent = make_ctx()
    assert sl.sl_send_reply(ctx, 99, "Bad") == -1
    assert sl.sl_send_reply(ctx, 700, "Bad") == -1
    assert sl.sl_send_reply(ctx, 200, "bad\r\nX: y") == -1

    def failing(data: bytes, addr: tuple[str, int]) -> None:
        raise OSError("unreachable")

    ctx.send = failing
    assert sl.sl_send_reply(ctx, 200, "OK") == -1
    assert sent.items == []


def test_send_reply_uses_tm_hook() -> None:
    ctx, sent = make_ctx()
    calls: list[tuple[int, str]] = []

    def tm_reply(code: int, reason: str) -> int:
        calls.append((code, reason))
        return 1

    ctx.extra[sl.TM_REPLY_HOOK] = tm_reply
    assert sl.send_reply(ctx, 200, "OK") == 1
    assert calls == [(200, "OK")] and sent.items == []
    assert sl.sl_send_reply(ctx, 202, "Accepted") == 1  # sl_send_reply is always stateless
    assert len(sent.items) == 1


def test_send_reply_mode() -> None:
    ctx, sent = make_ctx()
    assert sl.send_reply_mode(ctx, 200, "OK", 3) == 1  # flags on the wire: test_noop_exports
    assert len(sent.items) == 1


def test_sl_reply_error() -> None:
    ctx, sent = make_ctx()
    assert sl.sl_reply_error(ctx) == 1
    assert parse_message(sent.items[0][0]).status == 500
    ctx, sent = make_ctx()
    ctx.extra["sl_error"] = (400, "Bad Request")
    sl.sl_reply_error(ctx)
    rpl = parse_message(sent.items[0][0])
    assert (rpl.status, rpl.reason) == (400, "Bad Request")


def test_sl_forward_reply() -> None:
    ctx, sent = make_ctx(INVITE)
    assert sl.sl_forward_reply(ctx, "", "") == -1  # requests cannot be forwarded this way
    ctx, sent = make_ctx(REPLY)
    assert sl.sl_forward_reply(ctx, "183", "Progress") == 1
    data, addr = sent.items[0]
    out = parse_message(data)
    assert addr == ("192.0.2.7", 6000)
    assert (out.status, out.reason) == (183, "Progress")
    assert len(out.vias) == 1
    assert sl.sl_forward_reply(ctx, "200", "") == -1  # other class
    assert sl.sl_forward_reply(ctx, "abc", "") == -1
    assert sl.sl_forward_reply(ctx, "", "") == 1
    assert parse_message(sent.items[-1][0]).status == 180
