"""KSR.sanity on real parsed messages: return codes and the error replies sent."""

from __future__ import annotations

from pykemi.runtime.config.modparams import spec_defaults
from pykemi.runtime.core.context import ProcessState
from pykemi.runtime.modules import sanity
from pykemi.runtime.sip.message import parse_message

from .modhelpers import INVITE, REPLY, crlf, make_ctx

ALL = 32767 - 8 - 16  # every check that does something


def msg(
    first: str = "INVITE sip:bob@example.com SIP/2.0",
    extra: str = "",
    cseq: str = "1 INVITE",
    body: str = "",
    cl: int | None = None,
    from_: str = "<sip:alice@example.com>;tag=f1",
) -> bytes:
    length = len(body) if cl is None else cl
    return crlf(f"""{first}
Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKs1
From: {from_}
To: <sip:bob@example.com>
Call-ID: c-sanity
CSeq: {cseq}
{extra}Content-Length: {length}

{body}""")


def reply_of(sent: object) -> tuple[int, str]:
    out = parse_message(sent.items[-1][0])  # type: ignore[attr-defined]
    return int(out.status), str(out.reason)


def test_good_messages_pass() -> None:
    good = msg(extra="Contact: <sip:alice@10.0.0.1>\nExpires: 60\n", body="v=0\r\n")
    ctx, sent = make_ctx(good)
    assert sanity.sanity_check(ctx, ALL, 15) == 1
    assert sanity.sanity_check_defaults(ctx) == 1
    ctx, sent = make_ctx(INVITE)
    assert sanity.sanity_check(ctx, ALL & ~(2048 | 8192), 15) == 1
    rctx, _ = make_ctx(REPLY)
    assert sanity.sanity_check(rctx, 17604, 6) == 1
    assert not sent.items


def test_cseq_checks() -> None:
    ctx, sent = make_ctx(msg(cseq="1 BYE"))
    assert sanity.sanity_check(ctx, 32, 7) == -1
    assert reply_of(sent) == (400, "CSeq method does not match request method")
    ctx, sent = make_ctx(msg(cseq="99999999999 INVITE"))
    assert sanity.sanity_check(ctx, 64, 7) == -1
    assert reply_of(sent) == (400, "CSeq number is illegal")


def test_expires_and_content_length() -> None:
    ctx, sent = make_ctx(msg(extra="Expires: abc\n"))
    assert sanity.sanity_check(ctx, 256, 7) == -1
    assert reply_of(sent) == (400, "Expires value is illegal")
    ctx, sent = make_ctx(msg(extra="Expires: 3600\n"))
    assert sanity.sanity_check(ctx, 256, 7) == 1
    ctx, sent = make_ctx(msg(body="v=0\r\n"))
    ctx.msg.headers[-1].value = "99"  # a Content-Length that lies about the body
    assert sanity.sanity_check(ctx, 128, 7) == -1
    assert reply_of(sent) == (400, "Content-Length mis-match")


def test_proxy_require() -> None:
    ctx, sent = make_ctx(msg(extra="Proxy-Require: foo\n"))
    assert sanity.sanity_check(ctx, 512, 7) == -1
    out = parse_message(sent.items[-1][0])
    assert (out.status, out.reason) == (420, "Bad Proxy Require Extension")
    assert out.get("Unsupported") == "foo"
    proc = ProcessState(listen=[("udp", "127.0.0.1", 5060)])
    proc.extra["modparams.sanity"] = dict(spec_defaults("sanity"), proxy_require="foo, bar")
    ctx, sent = make_ctx(msg(extra="Proxy-Require: bar, foo\n"), proc=proc)
    assert sanity.sanity_check(ctx, 512, 7) == 1


def test_ruri_scheme_and_parse_uris() -> None:
    ctx, sent = make_ctx(msg(first="INVITE http://example.com SIP/2.0"))
    assert sanity.sanity_check(ctx, 2, 7) == -1
    assert reply_of(sent) == (416, "Unsupported URI Scheme in Request URI")
    ctx, sent = make_ctx(msg(first="INVITE sip:bob@exa<mple SIP/2.0"))
    assert sanity.sanity_check(ctx, 1024, 1) == -1
    assert reply_of(sent) == (400, "Bad Request URI")
    ctx, sent = make_ctx(msg(from_="<foo:bar>;tag=1"))
    assert sanity.sanity_check(ctx, 1024, 2) == -1
    assert reply_of(sent) == (400, "Invalid From Header")
    ctx, sent = make_ctx(msg(extra="Contact: <sip:a@b\n"))
    assert sanity.sanity_check(ctx, 1024, 8) == -1
    assert reply_of(sent) == (400, "Bad Contact Header")
    ctx, sent = make_ctx(msg(extra="Contact: <http://x>\n"))
    assert sanity.sanity_check(ctx, 1024, 8) == -1
    assert reply_of(sent) == (400, "Bad Contact URI")
    ctx, sent = make_ctx(msg(extra="Contact: *\n"))
    assert sanity.sanity_check(ctx, 1024, 8) == 1


def test_required_headers_fail_silently() -> None:
    raw = INVITE.replace(b"Call-ID: cid-1@10.0.0.1\r\n", b"")
    ctx, sent = make_ctx(raw)
    assert sanity.sanity_check(ctx, 4, 7) == -1
    assert not sent.items
    raw = INVITE.replace(b"CSeq: 101 INVITE\r\n", b"CSeq: 101 INVITE\r\nCSeq: 102 INVITE\r\n")
    ctx, sent = make_ctx(raw)
    assert sanity.sanity_check(ctx, 4, 7) == -1 and not sent.items


def test_digest_and_authorization() -> None:
    ctx, sent = make_ctx(INVITE)  # Proxy-Authorization without uri/response
    assert sanity.sanity_check(ctx, 2048, 7) == -1
    assert reply_of(sent) == (400, "Bad Auth Credentials")
    good = 'Authorization: Digest username="a", realm="r", nonce="n", uri="sip:x", response="abc"\n'
    ctx, sent = make_ctx(msg(extra=good))
    assert sanity.sanity_check(ctx, 2048 | 8192, 7) == 1
    empty = good.replace('username="a"', 'username=""')
    ctx, sent = make_ctx(msg(extra=empty))
    assert sanity.sanity_check(ctx, 8192, 7) == -1
    assert reply_of(sent) == (400, "Auth Empty User")
    basic = "Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l\n"
    ctx, sent = make_ctx(msg(extra=basic))
    assert sanity.sanity_check(ctx, 8192, 7) == 1  # not applicable: passes
    assert sanity.sanity_check(ctx, 2048, 7) == -1  # as Kamailio: fails, silently
    assert not sent.items


def test_duplicated_tags() -> None:
    ctx, sent = make_ctx(msg(from_="<sip:alice@example.com>;tag=a;tag=b"))
    assert sanity.sanity_check(ctx, 4096, 7) == -1
    assert reply_of(sent) == (400, "Many From Tag Params")


def test_noreply_and_sanity_reply() -> None:
    proc = ProcessState(listen=[("udp", "127.0.0.1", 5060)])
    proc.extra["modparams.sanity"] = dict(spec_defaults("sanity"), noreply=1)
    ctx, sent = make_ctx(msg(cseq="1 BYE"), proc=proc)
    assert sanity.sanity_check(ctx, 32, 7) == -1
    assert not sent.items
    assert sanity.sanity_reply(ctx) == 1
    assert reply_of(sent) == (400, "CSeq method does not match request method")
    ctx, sent = make_ctx(INVITE, proc=proc)
    assert sanity.sanity_reply(ctx) == 1
    assert reply_of(sent) == (500, "Server Sanity Failure")
    ctx, sent = make_ctx(INVITE)  # noreply=0: sanity_reply does nothing
    assert sanity.sanity_reply(ctx) == 1 and not sent.items


def test_ack_and_replies_are_never_answered() -> None:
    ctx, sent = make_ctx(msg(first="ACK sip:bob@example.com SIP/2.0", cseq="1 INVITE"))
    assert sanity.sanity_check(ctx, 32, 7) == -1
    assert not sent.items
    rctx, sent = make_ctx(REPLY.replace(b"CSeq: 101 INVITE", b"CSeq: 99999999999 INVITE"))
    assert sanity.sanity_check(rctx, 64, 7) == -1
    assert not sent.items
