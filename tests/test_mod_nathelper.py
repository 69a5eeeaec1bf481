"""KSR.nathelper: NAT tests, Contact aliases, received AVP, SDP fixing on real messages."""

from __future__ import annotations

from pykemi.runtime.config.modparams import spec_defaults
from pykemi.runtime.core.pv import get_pv
from pykemi.runtime.modules import nathelper as nh

from .modhelpers import crlf, make_ctx

SDP = "v=0\r\no=- 1 1 IN IP4 192.168.1.5\r\ns=-\r\nc=IN IP4 192.168.1.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def invite(contact: str = "<sip:alice@192.168.1.5:5060>", via: str = "192.168.1.5:5060",
           body: str = SDP, ruri: str = "sip:bob@example.com") -> bytes:  # fmt: skip
    return crlf(f"""INVITE {ruri} SIP/2.0
Via: SIP/2.0/UDP {via};branch=z9hG4bKnat;rport
From: <sip:alice@example.com>;tag=a
To: <sip:bob@example.com>
Call-ID: nat-1
CSeq: 1 INVITE
Contact: {contact}
Content-Type: application/sdp
Content-Length: {len(body)}

""") + body.encode()


NATED = {"src": ("203.0.113.9", 40000)}


def test_nat_uac_test_bits() -> None:
    ctx, _ = make_ctx(invite(), **NATED)  # type: ignore[arg-type]
    for flag in (1, 2, 4, 8, 16, 128, 256):
        assert nh.nat_uac_test(ctx, flag) == 1, flag
    assert nh.nat_uac_test(ctx, 512) == -1  # no $du: it goes to the R-URI (private Contact: no)
    ctx.dst_uri = "sip:192.0.2.50:5080"
    assert nh.nat_uac_test(ctx, 512) == 1  # Kamailio nh_test_destination: $du is not the R-URI
    ctx.dst_uri = None
    assert nh.nat_uac_test(ctx, 32) == -1 and nh.nat_uac_test(ctx, 64) == -1
    assert nh.nat_uac_test(ctx, 19) == 1
    public = invite("<sip:alice@203.0.113.9:40000>", "203.0.113.9:40000",
                    SDP.replace("192.168.1.5", "203.0.113.9"))  # fmt: skip
    ctx, _ = make_ctx(public, **NATED)  # type: ignore[arg-type]
    assert nh.nat_uac_test(ctx, 1 | 2 | 4 | 8 | 16 | 32 | 64 | 128 | 256 | 512) == -1
    ctx, _ = make_ctx(public, src=("100.64.1.1", 40000))
    assert nh.nat_uac_test(ctx, 32) == 1  # RFC 6598 with nat_addr_mode 1


def test_is_rfc1918() -> None:
    ctx, _ = make_ctx(invite())
    assert [nh.is_rfc1918(ctx, ip) for ip in ("10.1.2.3", "172.20.0.1", "192.168.0.1")] == [1] * 3
    assert [nh.is_rfc1918(ctx, ip) for ip in ("172.32.0.1", "8.8.8.8", "x", "::1")] == [-1] * 4


def test_fix_nated_contact_and_rcv_param() -> None:
    ctx, _ = make_ctx(invite('"A" <sip:alice@192.168.1.5:5060;ob>;expires=60'), **NATED)  # type: ignore[arg-type]
    assert nh.fix_nated_contact(ctx) == 1
    assert ctx.msg.get("Contact") == '"A" <sip:alice@203.0.113.9:40000;ob>;expires=60'
    ctx, _ = make_ctx(invite(), **NATED)  # type: ignore[arg-type]
    assert nh.add_rcv_param(ctx, 0) == 1
    assert ctx.msg.get("Contact") == '<sip:alice@192.168.1.5:5060>;received="sip:203.0.113.9:40000"'


def test_fix_nated_register_sets_received_avp() -> None:
    raw = invite().replace(b"INVITE sip", b"REGISTER sip").replace(b"1 INVITE", b"1 REGISTER")
    ctx, _ = make_ctx(raw, proto="tcp", **NATED)  # type: ignore[arg-type]
    ctx.proc.extra["modparams.nathelper"] = dict(
        spec_defaults("nathelper"), received_avp="$avp(RECEIVED)"
    )
    assert nh.fix_nated_register(ctx) == 1
    assert get_pv(ctx, "$avp(RECEIVED)") == "sip:203.0.113.9:40000;transport=tcp"
    ctx.proc.extra["modparams.nathelper"]["received_avp"] = ""
    assert nh.fix_nated_register(ctx) == -1


def test_contact_alias_round_trip() -> None:
    ctx, _ = make_ctx(invite(), **NATED)  # type: ignore[arg-type]
    assert nh.set_contact_alias(ctx) == 1
    contact = ctx.msg.get("Contact")
    assert contact == "<sip:alice@192.168.1.5:5060;alias=203.0.113.9~40000~1>"
    assert nh.set_contact_alias(ctx) == 2  # already there
    assert (
        nh.set_alias_to_pv(ctx, "$var(a)") == 1
        and get_pv(ctx, "$var(a)") == "sip:203.0.113.9:40000"
    )
    # a later in-dialog request to that contact
    bye, _ = make_ctx(invite(ruri="sip:alice@192.168.1.5:5060;alias=203.0.113.9~40000~2"))
    assert nh.handle_ruri_alias(bye) == 1
    assert bye.ruri == "sip:alice@192.168.1.5:5060"
    assert bye.dst_uri == "sip:203.0.113.9:40000;transport=tcp"
    assert nh.handle_ruri_alias(bye) == 2  # no alias left
    # no NAT: nothing added
    ctx, _ = make_ctx(invite(), src=("192.168.1.5", 5060))
    assert nh.set_contact_alias(ctx) == 2
    ctx, _ = make_ctx(invite("<sip:a@192.168.1.5;alias=1.2.3.4~5~1>"), **NATED)  # type: ignore[arg-type]
    assert nh.set_contact_alias_trim(ctx) == 1
    assert ctx.msg.get("Contact") == "<sip:a@192.168.1.5;alias=203.0.113.9~40000~1>"
    assert nh.add_contact_alias_addr(ctx, "198.51.100.1", "5070", "xyz") == -1


def test_fix_nated_sdp() -> None:
    ctx, _ = make_ctx(invite(), **NATED)  # type: ignore[arg-type]
    assert nh.fix_nated_sdp(ctx, 2 | 4 | 8) == 1
    body = ctx.msg.body.decode()
    assert "c=IN IP4 203.0.113.9\r\n" in body and "o=- 1 1 IN IP4 203.0.113.9\r\n" in body
    assert body.endswith("a=nortpproxy:yes\r\n")
    assert nh.fix_nated_sdp_ip(ctx, 2, "198.51.100.7") == 1
    assert "c=IN IP4 198.51.100.7" in ctx.msg.body.decode()
    out = ctx.msg.to_bytes()
    assert f"Content-Length: {len(ctx.msg.body)}".encode() in out
