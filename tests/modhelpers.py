"""Helpers for module tests: a real MsgContext from raw SIP bytes, with a recording send()."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pykemi.runtime.config import parse_config_text
from pykemi.runtime.core.context import Address, MsgContext, ProcessState
from pykemi.runtime.router import Router
from pykemi.runtime.sip.message import parse_message


@dataclass
class Sent:
    """What ctx.send() was called with, in order."""

    items: list[tuple[bytes, Address]] = field(default_factory=list)

    def __call__(self, data: bytes, addr: Address) -> None:
        self.items.append((data, addr))


def crlf(text: str) -> bytes:
    """Message text written with \\n line ends -> wire bytes with CRLF."""
    head, _sep, body = text.partition("\n\n")
    wire = head.strip("\n").replace("\n", "\r\n") + "\r\n\r\n"
    return wire.encode() + body.encode()


INVITE = crlf("""INVITE sip:bob@example.com:5070;transport=udp SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc123;rport
Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKold
Max-Forwards: 70
From: "Alice" <sip:alice@atlanta.example.com>;tag=ftag1
To: <sip:bob@example.com>
Call-ID: cid-1@10.0.0.1
CSeq: 101 INVITE
Contact: <sip:alice@10.0.0.1:5062>
User-Agent: test-ua/1.0
X-Multi: one
X-Multi: two
X-Multi: three
Proxy-Authorization: Digest username="alice", realm="atlanta.example.com", nonce="n"
Content-Type: application/sdp
Content-Length: 4

v=0
""")

REPLY = crlf("""SIP/2.0 180 Ringing
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKproxy
Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc123;received=192.0.2.7;rport=6000
From: <sip:alice@atlanta.example.com>;tag=ftag1
To: <sip:bob@example.com>;tag=ttag9
Call-ID: cid-1@10.0.0.1
CSeq: 101 INVITE
Content-Length: 0

""")


def make_ctx(
    raw: bytes = INVITE,
    *,
    src: Address = ("192.0.2.7", 6000),
    dst: Address = ("127.0.0.1", 5060),
    proto: str = "udp",
    proc: ProcessState | None = None,
) -> tuple[MsgContext, Sent]:
    sent = Sent()
    ctx = MsgContext(
        msg=parse_message(raw),
        src=src,
        dst=dst,
        proto=proto,
        send=sent,
        proc=proc if proc is not None else ProcessState(listen=[(proto, dst[0], dst[1])]),
    )
    return ctx, sent


def request(method: str, ruri: str = "sip:bob@example.com", extra: str = "") -> bytes:
    return crlf(f"""{method} {ruri} SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK{method.lower()}1
From: <sip:alice@atlanta.example.com>;tag=f1
To: <sip:bob@example.com>
Call-ID: c-{method}
CSeq: 1 {method}
{extra}Content-Length: 0

""")


def lua_router(
    tmp: Path, script: str, modules: Sequence[str], *lines: str, head: Sequence[str] = ()
) -> Router:
    """An in-process Router (no sockets) on 127.0.0.1:5060 running the Lua ``script``, with
    ``modules`` loaded (app_lua among them), ``head`` global lines and ``lines`` (modparams)."""
    (tmp / "kamailio.lua").write_text(script, encoding="utf-8")
    cfg_text = "\n".join(
        [
            "#!KAMAILIO",
            *head,
            "children=1",
            "listen=udp:127.0.0.1:5060",
            *[f'loadmodule "{m}.so"' for m in modules],
            *lines,
            'modparam("app_lua", "load", "kamailio.lua")',
            'cfgengine "lua"',
            "",
        ]
    )
    return Router(parse_config_text(cfg_text, str(tmp / "kamailio.cfg")))
