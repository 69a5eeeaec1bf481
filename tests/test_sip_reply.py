"""Stateless replies: make_reply, gen_to_tag, reply_address."""

from __future__ import annotations

from pathlib import Path

import pytest

from pykemi.runtime.sip import (
    Header,
    SipMessage,
    gen_to_tag,
    make_reply,
    parse_message,
    relayed_reply_address,
    reply_address,
)

FIXTURES = Path(__file__).parent / "fixtures" / "sip"


def load(name: str) -> SipMessage:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return parse_message(text.replace("\n", "\r\n").encode("utf-8"))


def test_reply_copies_headers_in_order() -> None:
    req = load("invite_compact_folded.txt")
    rep = make_reply(req, 486, "Busy Here", to_tag="abc", server="pykemi 0.1")
    assert rep.first_line == "SIP/2.0 486 Busy Here"
    assert not rep.is_request and rep.status == 486
    assert [(h.name, h.value) for h in rep.headers] == [
        ("v", "SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74b43"),
        (
            "v",
            "SIP/2.0/TCP proxy1.example.net;branch=z9hG4bK-s1-1, "
            "SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK-s0-1;received=192.0.2.4",
        ),
        ("f", "Alice <sip:alice@atlanta.example.com>;tag=1928301774"),
        ("t", "Carol <sip:carol@chicago.example.com>;tag=abc"),
        ("i", "a84b4c76e66710@pc33.atlanta.example.com"),
        ("CSeq", "314160 INVITE"),
        ("Server", "pykemi 0.1"),
        ("Content-Length", "0"),
    ]
    out = rep.to_bytes()
    assert out.endswith(b"\r\nContent-Length: 0\r\n\r\n") and out.count(b"Content-Length") == 1
    again = parse_message(out)
    assert again.headers == rep.headers and again.to_tag == "abc"


def test_to_tag_rules() -> None:
    req = load("invite_sdp.txt")
    assert make_reply(req, 100, "Trying").to_tag is None  # 100 never gets a tag
    auto = make_reply(req, 404, "Not Found")
    assert auto.to_tag == gen_to_tag(req)
    assert make_reply(req, 180, "Ringing").to_tag == auto.to_tag  # same tag for the dialog
    tagged = load("reply_487.txt")  # borrow a To with a tag: an in-dialog request
    req.set_header("To", tagged.get("To") or "")
    assert make_reply(req, 200, "OK", to_tag="other").to_tag == "3f9c3b2e-8a71"


def test_gen_to_tag() -> None:
    req = load("invite_sdp.txt")
    tag = gen_to_tag(req)
    assert len(tag) == 32 and int(tag, 16) >= 0
    assert gen_to_tag(parse_message(req.to_bytes())) == tag  # retransmission
    cancel = load("cancel.txt")  # same Call-ID/From tag/branch/CSeq number as the INVITE
    assert gen_to_tag(cancel) == tag
    other = req.copy()
    other.set_header("CSeq", "2 INVITE")
    assert gen_to_tag(other) != tag
    broken = parse_message(b"INVITE sip:a@b SIP/2.0\r\nFrom: <sip:x\r\nVia: bad\r\n\r\n")
    assert gen_to_tag(broken) == gen_to_tag(broken)  # malformed headers do not raise


def test_reply_body_extra_headers_and_errors() -> None:
    req = load("options_keepalive.txt")
    rep = make_reply(
        req,
        200,
        "OK",
        extra_headers=[("Allow", "INVITE, ACK"), ("Content-Type", "text/plain")],
        body=b"hello",
        server="Server: pykemi (0.1.0 (x86_64/linux))",
    )
    assert rep.get("Server") == "pykemi (0.1.0 (x86_64/linux))"
    assert rep.get_all("allow") == ["INVITE, ACK"]
    assert rep.get("Content-Length") == "5"
    assert rep.to_bytes().endswith(b"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
    with pytest.raises(ValueError, match="needs a request"):
        make_reply(load("reply_487.txt"), 200, "OK")
    with pytest.raises(ValueError, match="bad status code 99"):
        make_reply(req, 99, "x")
    with pytest.raises(ValueError, match="CR/LF"):
        make_reply(req, 200, "OK\r\nX: y")
    with pytest.raises(ValueError, match="CR/LF"):
        make_reply(req, 200, "OK", extra_headers=[("X", "a\nb")])


def test_reply_without_dialog_headers() -> None:
    req = parse_message(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n")
    rep = make_reply(req, 400, "Bad Request")
    assert rep.headers == [Header("Content-Length", "0")]


def _req(via: str) -> SipMessage:
    return parse_message(b"OPTIONS sip:a@b SIP/2.0\r\nVia: " + via.encode() + b"\r\n\r\n")


@pytest.mark.parametrize(
    ("via", "proto", "expected"),
    [
        # the source IP; without rport the Via port (or 5060)
        ("SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK1", "udp", ("203.0.113.9", 5062)),
        ("SIP/2.0/UDP host.example.com;branch=z9hG4bK1", "udp", ("203.0.113.9", 5060)),
        # received / maddr were written by the sender: never followed
        (
            "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;received=198.51.100.1",
            "UDP",
            ("203.0.113.9", 5060),
        ),
        ("SIP/2.0/UDP 192.0.2.1:5062;maddr=239.255.255.1", "udp", ("203.0.113.9", 5062)),
        # RFC 3581: rport (bare or with a value the sender chose) -> the source port
        ("SIP/2.0/UDP 192.0.2.1:5062;rport;branch=z9hG4bK1", "udp", ("203.0.113.9", 40000)),
        ("SIP/2.0/UDP 192.0.2.1;received=198.51.100.1;rport=7000", "udp", ("203.0.113.9", 40000)),
        # connection-oriented: back over the connection
        ("SIP/2.0/TCP 192.0.2.1:5062;branch=z9hG4bK1", "tcp", ("203.0.113.9", 40000)),
        ("SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK1", "tls", ("203.0.113.9", 40000)),
        ("garbage", "udp", ("203.0.113.9", 40000)),
    ],
)
def test_reply_address(via: str, proto: str, expected: tuple[str, int]) -> None:
    assert reply_address(_req(via), ("203.0.113.9", 40000), proto) == expected


def test_reply_address_force_rport_and_no_via() -> None:
    req = _req("SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK1")
    assert reply_address(req, ("203.0.113.9", 40000), force_rport=True) == ("203.0.113.9", 40000)
    bare = parse_message(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n")
    assert reply_address(bare, ("203.0.113.9", 40000)) == ("203.0.113.9", 40000)


def test_reply_address_to_via() -> None:
    """reply_to_via=1: the Via host (IP literal or cached name), never received/maddr."""
    src = ("203.0.113.9", 40000)
    cache = {"cached.example.com": "192.0.2.44"}
    asked: list[str] = []

    def lookup(name: str) -> str | None:
        asked.append(name)
        return cache.get(name)

    def addr(via: str) -> tuple[str, int]:
        return reply_address(_req(via), src, to_via=True, lookup=lookup)

    assert addr("SIP/2.0/UDP 192.0.2.1:5062;received=198.51.100.1;maddr=198.51.100.2") == (
        "192.0.2.1",
        5062,
    )
    assert addr("SIP/2.0/UDP [2001:db8::1];rport") == ("2001:db8::1", 40000)
    assert addr("SIP/2.0/UDP cached.example.com:5070") == ("192.0.2.44", 5070)
    assert addr("SIP/2.0/UDP unknown.example.com:5070") == ("203.0.113.9", 5070)
    assert asked == ["cached.example.com", "unknown.example.com"]


@pytest.mark.parametrize(
    ("second_via", "expected"),
    [
        ("SIP/2.0/UDP 192.0.2.1:5062;received=198.51.100.1;rport=7000", ("198.51.100.1", 7000)),
        ("SIP/2.0/UDP 192.0.2.1;received=198.51.100.1", ("198.51.100.1", 5060)),
        ("SIP/2.0/UDP 192.0.2.1:5062;rport", ("192.0.2.1", 5062)),
        ("SIP/2.0/UDP [2001:db8::1]:5070;received=[2001:db8::2]", ("2001:db8::2", 5070)),
        ("SIP/2.0/UDP cached.example.com:5070", ("192.0.2.44", 5070)),
        ("SIP/2.0/UDP unknown.example.com:5070", None),  # names are not resolved here
        ("SIP/2.0/UDP 192.0.2.1;rport=x", ("192.0.2.1", 5060)),
    ],
)
def test_relayed_reply_address(second_via: str, expected: tuple[str, int] | None) -> None:
    reply = parse_message(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKours\r\n"
        + f"Via: {second_via}\r\n\r\n".encode()
    )
    assert relayed_reply_address(reply, {"cached.example.com": "192.0.2.44"}.get) == expected
    only_ours = parse_message(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1\r\n\r\n")
    assert relayed_reply_address(only_ours) is None
