"""In-process routers for engine tests: real interpreters, real parsed messages, no sockets."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pykemi.runtime.config import parse_config_text
from pykemi.runtime.core.log import LOG
from pykemi.runtime.router import Router
from pykemi.runtime.sip.message import SipMessage, parse_message

ENGINE_MODULE = {"lua": "app_lua", "python": "app_python3"}
SCRIPT_NAME = {"lua": "script.lua", "python": "script.py"}

OPTIONS = (
    b"OPTIONS sip:alice@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n"
    b"From: <sip:bob@127.0.0.1>;tag=abc\r\n"
    b"To: <sip:alice@127.0.0.1>\r\n"
    b"Call-ID: call-1@127.0.0.1\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Max-Forwards: 70\r\n"
    b"Content-Length: 0\r\n\r\n"
)

REPLY_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-ours\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport=5070\r\n"
    b"From: <sip:bob@127.0.0.1>;tag=abc\r\n"
    b"To: <sip:alice@127.0.0.1>;tag=xyz\r\n"
    b"Call-ID: call-1@127.0.0.1\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


@dataclass
class InProcess:
    router: Router
    log: io.StringIO
    sent: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))

    def handle(self, data: bytes = OPTIONS) -> list[SipMessage]:
        """Route one message; returns the messages sent because of it."""
        before = len(self.sent)
        self.router.handle(data, ("127.0.0.1", 5070), ("127.0.0.1", 5060), "udp", self.send)
        return [parse_message(d) for d, _ in self.sent[before:]]

    @property
    def text(self) -> str:
        return self.log.getvalue()


def make_router(
    tmp: Path, engine: str, script: str, modules: tuple[str, ...] = (), extra_cfg: str = ""
) -> Router:
    (tmp / SCRIPT_NAME[engine]).write_text(script, encoding="utf-8")
    mods = ("sl", "maxfwd", "xlog", "kemix", *modules, ENGINE_MODULE[engine])
    cfg_text = "\n".join(
        [
            "#!KAMAILIO",
            "debug=3",
            "children=1",
            "listen=udp:127.0.0.1:5060",
            *[f'loadmodule "{m}.so"' for m in mods],
            f'modparam("{ENGINE_MODULE[engine]}", "load", "{SCRIPT_NAME[engine]}")',
            extra_cfg,
            f'cfgengine "{engine}"',
            "",
        ]
    )
    cfg = parse_config_text(cfg_text, str(tmp / "kamailio.cfg"))
    return Router(cfg)


@contextmanager
def in_process(tmp: Path, engine: str, script: str, extra_cfg: str = "") -> Iterator[InProcess]:
    buf = io.StringIO()
    old_stream, old_level = LOG.stream, LOG.level
    LOG.stream = buf
    try:
        router = make_router(tmp, engine, script, extra_cfg=extra_cfg)
        LOG.level = 3
        yield InProcess(router, buf)
    finally:
        LOG.stream, LOG.level = old_stream, old_level
