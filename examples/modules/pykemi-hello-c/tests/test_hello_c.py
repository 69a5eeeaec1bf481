"""KSR.hello_c from Lua on a real SIP OPTIONS.

Needs the package installed and generated: ``pip install -e .`` then
``kemi generate --extension hello_c``.
"""

from __future__ import annotations

from pathlib import Path

from pykemi.runtime.config import parse_config_text
from pykemi.runtime.router import Router
from pykemi.runtime.sip.message import parse_message

OPTIONS = (
    b"OPTIONS sip:alice@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n"
    b"From: <sip:bob@127.0.0.1>;tag=abc\r\n"
    b"To: <sip:alice@127.0.0.1>\r\n"
    b"Call-ID: call-1@127.0.0.1\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def route(tmp_path: Path, lua: str, modparams: str = "") -> str:
    """Run ``lua`` as the body of ksr_request_route on one OPTIONS; the reply's reason."""
    (tmp_path / "script.lua").write_text(f"function ksr_request_route()\n{lua}\nend\n")
    text = "\n".join(
        [
            'loadmodule "sl.so"',
            'loadmodule "hello_c.so"',
            'loadmodule "app_lua.so"',
            modparams,
            'modparam("app_lua", "load", "script.lua")',
            'cfgengine "lua"',
        ]
    )
    sent: list[bytes] = []
    Router(parse_config_text(text, str(tmp_path / "kamailio.cfg"))).handle(
        OPTIONS, ("127.0.0.1", 5070), ("127.0.0.1", 5060), "udp", lambda d, a: sent.append(d)
    )
    (reply,) = [parse_message(data) for data in sent]
    return str(reply.reason)


def test_functions(tmp_path: Path) -> None:
    lua = """
    local K = KSR.hello_c
    KSR.sl.send_reply(200, K.hello("bob") .. "|" .. K.add(2, -5) .. "|" .. K.greet("al", 3)
        .. "|" .. tostring(K.greet("al", 0)) .. "|" .. K.header_len("CSeq"))
    """
    assert route(tmp_path, lua) == "Hello, bob!|-3|hi al hi al hi al|nil|9"


def test_counter_and_modparam(tmp_path: Path) -> None:
    lua = 'KSR.sl.send_reply(200, KSR.hello_c.counter() .. " " .. KSR.hello_c.hello("x"))'
    reason = route(tmp_path, lua, 'modparam("hello_c", "exclaim", 0)')
    count, _, hello = reason.partition(" ")
    assert int(count) >= 1 and hello == "Hello, x"
