"""KSR.siputils on real parsed messages."""

from __future__ import annotations

import base64
from email.utils import formatdate

from pykemi.runtime.config.modparams import spec_defaults
from pykemi.runtime.core.context import ProcessState
from pykemi.runtime.modules import siputils as su
from pykemi.runtime.sip.message import parse_message

from .modhelpers import INVITE, REPLY, crlf, make_ctx, request


def test_message_type_and_totag() -> None:
    ctx, _ = make_ctx()
    assert su.is_request(ctx) == 1 and su.is_reply(ctx) == -1
    assert su.has_totag(ctx) == -1
    rctx, _ = make_ctx(REPLY)
    assert su.is_request(rctx) == -1 and su.is_reply(rctx) == 1
    assert su.has_totag(rctx) == 1


def test_is_first_hop() -> None:
    ctx, _ = make_ctx()  # two Vias
    assert su.is_first_hop(ctx) == -1
    ctx, _ = make_ctx(request("OPTIONS"))
    assert su.is_first_hop(ctx) == 1
    rr_reply = REPLY.replace(b"Call-ID:", b"Record-Route: <sip:127.0.0.1;lr>\r\nCall-ID:")
    rctx, _ = make_ctx(rr_reply)
    assert su.is_first_hop(rctx) == 1
    rctx, _ = make_ctx(rr_reply, src=("127.0.0.1", 5060))
    assert su.is_first_hop(rctx) == -1  # local loop
    assert su.is_first_hop_mode(rctx, 1) == 1
    rctx, _ = make_ctx(REPLY)
    assert su.is_first_hop(rctx) == -1


def test_string_checks() -> None:
    ctx, _ = make_ctx()
    assert su.is_uri(ctx, "sip:alice@example.com") == 1 and su.is_uri(ctx, "nope") == -1
    # Kamailio checks.c: -2 not a number / empty, -3 a bad character
    assert su.is_tel_number(ctx, "+4930123") == 1 and su.is_tel_number(ctx, "+") == -2
    assert su.is_tel_number(ctx, "12a") == -2 and su.is_tel_number(ctx, "+0123") == -2
    assert su.is_numeric(ctx, "0123") == 1 and su.is_numeric(ctx, "+1") == -2
    assert su.is_alphanum(ctx, "abc123") == 1 and su.is_alphanum(ctx, "a-b") == -3
    assert su.is_alphanum(ctx, "") == -2
    assert su.is_alphanumex(ctx, "a-b_c.1", "-_.") == 1
    assert su.is_alphanumex(ctx, "a b", "-") == -3
    assert su.is_user(ctx, "alice") == 1 and su.is_user(ctx, "bob") == -1


def test_uri_params() -> None:
    ctx, _ = make_ctx(request("INVITE", "sip:bob@example.com;flag;nat=yes"))
    assert su.uri_param(ctx, "flag") == 1
    assert su.uri_param(ctx, "nat") == -1
    assert su.uri_param_value(ctx, "nat", "yes") == 1
    assert su.uri_param_value(ctx, "nat", "no") == -1
    assert su.uri_param_any(ctx, "nat") == 1 and su.uri_param_any(ctx, "x") == -1
    assert su.uri_param_rm(ctx, "flag") == 1
    assert ctx.ruri == "sip:bob@example.com;nat=yes"
    assert su.uri_param_rm(ctx, "flag") == -1
    assert su.add_uri_param(ctx, "ob") == 1
    assert su.add_uri_param(ctx, "x=1") == 1
    assert ctx.ruri == "sip:bob@example.com;nat=yes;ob;x=1"
    assert su.add_uri_param(ctx, "bad value") == -1


def test_options_reply() -> None:
    proc = ProcessState(listen=[("udp", "127.0.0.1", 5060)])
    proc.extra["modparams.siputils"] = dict(spec_defaults("siputils"), options_support="path")
    ctx, sent = make_ctx(request("OPTIONS", "sip:127.0.0.1"), proc=proc)
    assert su.options_reply(ctx) == 1
    out = parse_message(sent.items[0][0])
    assert out.status == 200
    assert out.get("Accept") == "*/*" and out.get("Accept-Language") == "en"
    assert out.get("Supported") == "path"
    ctx, sent = make_ctx(request("OPTIONS", "sip:bob@127.0.0.1"))
    assert su.options_reply(ctx) == -1 and not sent.items
    ctx, _ = make_ctx()
    assert su.options_reply(ctx) == -1


def test_encode_decode_contact() -> None:
    ctx, _ = make_ctx(
        request(
            "REGISTER", extra="Contact: <sip:alice:pw@10.0.0.1:5062;transport=tcp>;expires=60\n"
        )
    )
    assert su.encode_contact(ctx, "enc", "192.0.2.1") == 1
    assert ctx.msg.get("Contact") == "<sip:enc*alice*pw*10.0.0.1*5062*tcp@192.0.2.1>;expires=60"
    assert su.decode_contact_header(ctx) == 1
    assert ctx.msg.get("Contact") == "<sip:alice:pw@10.0.0.1:5062;transport=tcp>;expires=60"
    ctx, _ = make_ctx(request("INVITE", "sip:enc*bob**10.0.0.2*5070*udp@192.0.2.1"))
    assert su.decode_contact(ctx) == 1
    assert ctx.ruri == "sip:bob@10.0.0.2:5070;transport=udp"
    ctx, _ = make_ctx(request("INVITE", "sip:plain@192.0.2.1"))
    assert su.decode_contact(ctx) == -1


def test_contact_param_encode_decode() -> None:
    contact = "sip:alice@10.0.0.1:5062;ob"
    ctx, _ = make_ctx(request("REGISTER", extra=f"Contact: <{contact}>;expires=60\n"))
    assert su.contact_param_encode(ctx, "ksu", "sip:1.2.3.4:5060;transport=tcp") == 1
    enc = base64.urlsafe_b64encode(contact.encode()).decode().rstrip("=")
    assert ctx.msg.get("Contact") == f"<sip:1.2.3.4:5060;transport=tcp;ksu={enc}>;expires=60"
    assert su.contact_param_decode(ctx, "ksu") == 1
    assert ctx.msg.get("Contact") == f"<{contact}>;expires=60"
    assert su.contact_param_rm(ctx, "ob") == 1
    assert ctx.msg.get("Contact") == "<sip:alice@10.0.0.1:5062>;expires=60"
    ctx, _ = make_ctx(request("INVITE", f"sip:1.2.3.4;ksu={enc}"))
    assert su.contact_param_decode_ruri(ctx, "ksu") == 1
    assert ctx.ruri == contact
    assert su.contact_param_decode_ruri(ctx, "ksu") == -1
    assert su.contact_param_encode(ctx, "ksu", "bad addr") == -1
    bad, _ = make_ctx(request("REGISTER", extra="Contact: <sip:a@b\n"))
    assert su.contact_param_encode(bad, "ksu", "sip:1.2.3.4") < 0


def test_hdr_date_check() -> None:
    fresh = formatdate(usegmt=True)
    ctx, _ = make_ctx(request("INVITE", extra=f"Date: {fresh}\n"))
    assert su.hdr_date_check(ctx, 10) == 1
    ctx, _ = make_ctx(request("INVITE", extra="Date: Sat, 13 Nov 2010 23:29:00 GMT\n"))
    assert su.hdr_date_check(ctx, 10) == -1
    ctx, _ = make_ctx(request("INVITE", extra="Date: yesterday\n"))
    assert su.hdr_date_check(ctx, 10) == -1
    ctx, _ = make_ctx(INVITE)
    assert su.hdr_date_check(ctx, 10) == -1


def test_comparisons() -> None:
    ctx, _ = make_ctx()
    assert (
        su.cmp_uri(ctx, "sip:Bob@EXAMPLE.com;transport=UDP", "sip:Bob@example.com;transport=udp")
        == 1
    )
    assert su.cmp_uri(ctx, "sip:bob@example.com", "sip:Bob@example.com") == -1
    assert su.cmp_uri(ctx, "sip:bob@example.com", "sip:bob@example.com;transport=tcp") == -1
    assert su.cmp_uri(ctx, "sip:bob@example.com;foo=1", "sip:bob@example.com") == 1
    assert su.cmp_uri(ctx, "sip:bob@example.com", "garbage") == -2
    assert su.cmp_aor(ctx, "sip:bob@Example.com;x=1", "sip:bob@example.com:5060") == 1
    assert su.cmp_aor(ctx, "sip:bob@example.com", "sip:alice@example.com") == -1
    assert su.cmp_hdr_name(ctx, "f", "FROM") == 1
    assert su.cmp_hdr_name(ctx, "To", "From") == -1


def test_is_gruu() -> None:
    ctx, _ = make_ctx(request("INVITE", "sip:bob@example.com;gr=urn:uuid:f81d4fae"))
    assert su.is_gruu(ctx) == 1
    ctx, _ = make_ctx(request("INVITE", "sip:tgruu.7hs@example.com;gr"))
    assert su.is_gruu(ctx) == 2
    ctx, _ = make_ctx(INVITE)
    assert su.is_gruu(ctx) == -1


def test_bad_to_header_is_not_fatal() -> None:
    raw = crlf("""INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx
From: <sip:a@b>;tag=1
To: "unterminated <sip:b@c>
Call-ID: x
CSeq: 1 INVITE
Content-Length: 0

""")
    ctx, _ = make_ctx(raw)
    assert su.has_totag(ctx) == -1
