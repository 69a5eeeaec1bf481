"""SIP/SIPS/tel URI parsing."""

from __future__ import annotations

import re

import pytest

from pykemi.runtime.sip import SipParseError, SipUri, parse_uri


@pytest.mark.parametrize(
    ("text", "scheme", "user", "password", "host", "port", "params", "headers"),
    [
        ("sip:alice@atlanta.com", "sip", "alice", None, "atlanta.com", None, {}, None),
        (
            "sip:alice:secretword@atlanta.com;transport=tcp",
            "sip",
            "alice",
            "secretword",
            "atlanta.com",
            None,
            {"transport": "tcp"},
            None,
        ),
        (
            "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sips",
            "alice",
            None,
            "atlanta.com",
            None,
            {},
            "subject=project%20x&priority=urgent",
        ),
        (
            "sip:+1-212-555-1212:1234@gateway.com;user=phone",
            "sip",
            "+1-212-555-1212",
            "1234",
            "gateway.com",
            None,
            {"user": "phone"},
            None,
        ),
        ("sips:1212@gateway.com", "sips", "1212", None, "gateway.com", None, {}, None),
        ("sip:alice@192.0.2.4", "sip", "alice", None, "192.0.2.4", None, {}, None),
        (
            "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
            "sip",
            None,
            None,
            "atlanta.com",
            None,
            {"method": "REGISTER"},
            "to=alice%40atlanta.com",
        ),
        (
            "sip:alice;day=tuesday@atlanta.com",
            "sip",
            "alice;day=tuesday",
            None,
            "atlanta.com",
            None,
            {},
            None,
        ),
        (
            "sip:bob@[2001:db8::20]:5070;transport=udp;lr",
            "sip",
            "bob",
            None,
            "[2001:db8::20]",
            5070,
            {"transport": "udp", "lr": None},
            None,
        ),
        ("sip:[::1]", "sip", None, None, "[::1]", None, {}, None),
        (
            "sip:proxy.example.net:5060;lr",
            "sip",
            None,
            None,
            "proxy.example.net",
            5060,
            {"lr": None},
            None,
        ),
        ("sip:j%C3%BCrgen@example.de", "sip", "j%C3%BCrgen", None, "example.de", None, {}, None),
        (
            "tel:+1-201-555-0123;phone-context=example.com",
            "tel",
            "+1-201-555-0123",
            None,
            "",
            None,
            {"phone-context": "example.com"},
            None,
        ),
        ("tel:911", "tel", "911", None, "", None, {}, None),
        (
            "SIP:Bob@Example.COM;Maddr=239.255.255.1",
            "sip",
            "Bob",
            None,
            "Example.COM",
            None,
            {"Maddr": "239.255.255.1"},
            None,
        ),
    ],
)
def test_parse(
    text: str,
    scheme: str,
    user: str | None,
    password: str | None,
    host: str,
    port: int | None,
    params: dict[str, str | None],
    headers: str | None,
) -> None:
    uri = parse_uri(text)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        scheme,
        user,
        password,
        host,
        port,
    )
    assert uri.params == params and list(uri.params) == list(params)
    assert uri.headers == headers
    if text.startswith("SIP:"):
        assert str(uri) == "sip:" + text[4:]
    else:
        assert str(uri) == text
    assert parse_uri(str(uri)) == uri


def test_helpers() -> None:
    uri = parse_uri("sip:alice%40home@[2001:db8::1]:5070;TRANSPORT=TCP")
    assert uri.transport == "tcp"
    assert uri.user_unescaped == "alice@home"
    assert uri.host_port() == "[2001:db8::1]:5070"
    assert uri.address() == ("2001:db8::1", 5070)
    assert parse_uri("sips:a@b").address() == ("b", 5061)
    assert parse_uri("sip:a@b;transport=tls").address() == ("b", 5061)
    assert parse_uri("sip:a@b").address() == ("b", 5060)
    assert parse_uri("sip:a@b").transport is None
    assert parse_uri("sip:b").host_port() == "b"
    assert parse_uri("sip:%E4@b").user_unescaped == "\udce4"  # non-UTF-8 escape survives
    assert parse_uri("  sip:a@b  ") == parse_uri("sip:a@b")


def test_edit_and_build() -> None:
    uri = parse_uri("sip:alice@atlanta.com;transport=udp")
    uri.host = "192.0.2.1"
    uri.port = 5080
    uri.params["lr"] = None
    del uri.params["transport"]
    assert str(uri) == "sip:alice@192.0.2.1:5080;lr"
    built = SipUri("sips", "[::1]", user="u", port=5061, params={"a": "b"}, headers="h=1")
    assert str(built) == "sips:u@[::1]:5061;a=b?h=1"
    assert str(SipUri("tel", "", user="+49", params={"ext": "1"})) == "tel:+49;ext=1"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "missing URI scheme"),
        ("alice@atlanta.com", "missing URI scheme"),
        (":alice@atlanta.com", "missing URI scheme"),
        ("http://example.com", "unsupported URI scheme 'http'"),
        ("sip:", "missing host"),
        ("sip:alice@", "missing host"),
        ("sip:alice@:5060", "missing host"),
        ("sip:a@b:", "bad port ''"),
        ("sip:a@b:port", "bad port 'port'"),
        ("sip:a@b:70000", "port 70000 out of range"),
        ("sip:a@b:65536", "port 65536 out of range 1..65535"),  # L4 (issue 13)
        ("sip:a@b:0", "port 0 out of range 1..65535"),
        ("sip:a@b:000000", "bad port '000000'"),
        ("sip:a@[::1]:99999", "port 99999 out of range"),
        ("sip:a@[::1", "unterminated IPv6 reference"),
        ("sip:a@[::1]x", "unexpected 'x' after IPv6 reference"),
        ("sip:a@2001:db8::1", "bad port"),
        ("sip:a b@c", "invalid character ' '"),
        ("sip:a@b<c", "invalid character '<'"),
        ("sip:a@ho$t", "bad host 'ho$t'"),
        ("tel:", "missing number in tel URI"),
        ("tel:;x=1", "missing number in tel URI"),
    ],
)
def test_errors(text: str, error: str) -> None:
    with pytest.raises(SipParseError, match=re.escape(error)):
        parse_uri(text)
