"""Exports that used to record a value nothing read (issue 18, "no-op exports"): each test
runs a real router (``kemi run``) and checks what goes out on the wire, the connection or the
start-up log.

- ``KSR.textops.set_reply_body``: the next sl/tm reply carries the body and its Content-Type.
- ``KSR.sl.send_reply_mode``: flag 1 (no new connection) and 2 (close after the reply).
- ``KSR.registrar.lookup``: every branch carries its own contact's Path as Route.
- ``add_tcp_alias(_via)``: requests to the alias port reuse the connection.
- ``t_load_contacts``/``t_next_contacts`` (no AVPs yet): said at start-up and on their page.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pykemi.runtime.sip.message import SipMessage, parse_message

from .harness import SIPP, kemi
from .test_hostile import CFG, ask_tcp, closed_by_peer, hostile_router, tcp
from .test_tcp_limits import accepted, client_from, listener, request
from .tmharness import free_port

pytestmark = [
    pytest.mark.skipif(SIPP is None, reason="sipp is not installed"),
    pytest.mark.timeout(180, method="thread"),
]


def udp_reply(port: int, data: bytes, timeout: float = 5.0) -> SipMessage:
    """The first reply (other than 100 Trying) the router sends back for ``data``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        s.sendto(data, ("127.0.0.1", port))
        while True:
            rpl = parse_message(s.recvfrom(65535)[0])
            if rpl.status != 100:
                return rpl


# -- set_reply_body ---------------------------------------------------------------------------

REPLY_BODY_SCRIPT = """
function ksr_request_route()
    KSR.textops.set_reply_body("busy until 5pm\\r\\n", "text/plain")
    if KSR.pv.getw("$rU") == "tm" then
        KSR.tm.t_newtran()
        KSR.tm.t_reply(486, "Busy Here")
        return
    end
    KSR.sl.send_reply(486, "Busy Here")
end
"""
TEXTOPS_TM = 'loadmodule "textops.so"\nloadmodule "tm.so"\n'


@pytest.mark.parametrize("how", ["sl", "tm"])
def test_set_reply_body_is_sent(tmp_path: Path, how: str) -> None:
    """Kamailio: the body and Content-Type go with the next sl_send_reply/t_reply."""
    with hostile_router(tmp_path, "dispatch", TEXTOPS_TM, REPLY_BODY_SCRIPT) as r:
        rpl = udp_reply(r.port, request(how, 1))
    assert rpl.status == 486
    assert rpl.body == b"busy until 5pm\r\n"
    assert rpl.get("Content-Type") == "text/plain"
    assert rpl.get("Content-Length") == str(len(b"busy until 5pm\r\n"))


# -- sl.send_reply_mode -----------------------------------------------------------------------

MODE_SCRIPT = """
function ksr_request_route()
    local user = KSR.pv.getw("$rU")
    if string.find(user, "slow") then for i = 1, 3000000 do end end
    local mode = 0
    if string.find(user, "noconnect") then mode = mode + 1 end
    if string.find(user, "close") then mode = mode + 2 end
    KSR.sl.send_reply_mode(200, "OK", mode)
end
"""


def test_send_reply_mode_close(tmp_path: Path) -> None:
    with hostile_router(tmp_path, "dispatch", "", MODE_SCRIPT) as r:
        with tcp(r.port) as s:
            assert ask_tcp(s, request("close", 1, "TCP")) == 200
            assert closed_by_peer(s, 3)
        with tcp(r.port) as s:  # mode 0: the connection stays open
            assert ask_tcp(s, request("plain", 2, "TCP")) == 200
            assert not closed_by_peer(s, 1)


def test_send_reply_mode_no_connect(tmp_path: Path) -> None:
    """The client's connection is closed before the (slow) reply: mode 1 opens no new one."""
    with listener() as lst, hostile_router(tmp_path, "dispatch", "", MODE_SCRIPT) as r:
        port = lst.getsockname()[1]
        with client_from(port, r.port) as c:
            c.sendall(request("slow-noconnect", 1, "TCP"))
        assert accepted(lst, 1.5) is None
        with client_from(port, r.port) as c:  # mode 0 connects back
            c.sendall(request("slow", 2, "TCP"))
        data = accepted(lst, 5)
        assert data is not None and data.startswith(b"SIP/2.0 200 OK"), data


# -- registrar.lookup: Path per branch --------------------------------------------------------

LOOKUP_SCRIPT = """
function ksr_request_route()
    if KSR.is_ACK() then return end
    if KSR.is_REGISTER() then
        if KSR.registrar.save("location", 0) < 0 then KSR.sl.sl_reply_error() end
        return
    end
    if KSR.registrar.lookup("location") < 0 then
        KSR.sl.send_reply(404, "Not Found")
        return
    end
    KSR.tm.t_relay()
end
"""
LOOKUP_MODS = (
    'loadmodule "tm.so"\nloadmodule "usrloc.so"\nloadmodule "registrar.so"\n'
    'modparam("registrar", "use_path", 1)\n'
)


def sip_request(method: str, ruri: str, n: int, extra: str = "") -> bytes:
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-{method}-{n};rport",
        f"From: <sip:alice@example.com>;tag=f{n}",
        "To: <sip:alice@example.com>",
        f"Call-ID: {method}-{n}@127.0.0.1",
        f"CSeq: 1 {method}",
        "Max-Forwards: 70",
        *extra.splitlines(),
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def test_lookup_branches_carry_their_own_path(tmp_path: Path) -> None:
    """Two contacts registered through different edge proxies (Path): the INVITE forks, and
    each branch goes to its own edge with that edge's Path as Route (Kamailio's registrar)."""
    edges = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for e in edges:
        e.bind(("127.0.0.1", 0))
        e.settimeout(5)
    ports = [e.getsockname()[1] for e in edges]
    paths = [f"<sip:127.0.0.1:{p};lr>" for p in ports]
    with hostile_router(tmp_path, "dispatch", LOOKUP_MODS, LOOKUP_SCRIPT) as r:
        for n, path in enumerate(paths):
            contact = f"Contact: <sip:alice@10.9.9.{n + 1}:5062>\r\nExpires: 600"
            reg = sip_request(
                "REGISTER", "sip:example.com", n, f"{contact}\r\nSupported: path\r\nPath: {path}"
            )
            assert udp_reply(r.port, reg).status == 200
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller:
            caller.sendto(sip_request("INVITE", "sip:alice@example.com", 9), ("127.0.0.1", r.port))
            got = [parse_message(e.recvfrom(65535)[0]) for e in edges]
    for e in edges:
        e.close()
    for n, (inv, path) in enumerate(zip(got, paths, strict=True)):
        assert inv.ruri == f"sip:alice@10.9.9.{n + 1}:5062"
        assert inv.get_all("Route") == [path], inv.to_bytes().decode()


# -- add_tcp_alias(_via): the connection carries requests to the alias port ---------------------

ALIAS_SCRIPT = """
function ksr_request_route()
    if KSR.is_ACK() then return end
    if KSR.is_REGISTER() then
        if KSR.pv.getw("$rU") == "via" then KSR.add_tcp_alias_via() else KSR.add_tcp_alias(ALIAS) end
        KSR.sl.send_reply(200, "OK")
        return
    end
    KSR.pv.sets("$du", "sip:127.0.0.1:ALIAS;transport=tcp")
    KSR.tm.t_relay()
end
"""


@pytest.mark.parametrize("how", ["port", "via"])
def test_tcp_alias_reuses_the_connection(tmp_path: Path, how: str) -> None:
    """Kamailio: after add_tcp_alias(A) (or _via, A from the top Via) on a message from a TCP
    connection of 127.0.0.1, requests to 127.0.0.1:A go over that connection; nothing
    listens on A, so without the alias the relay finds no one."""
    alias = free_port(socket.SOCK_STREAM)
    script = ALIAS_SCRIPT.replace("ALIAS", str(alias))
    with hostile_router(tmp_path, "dispatch", 'loadmodule "tm.so"\n', script) as r:
        with tcp(r.port) as c:
            reg = sip_request("REGISTER", f"sip:{how}@127.0.0.1", 1, "Contact: <sip:a@127.0.0.1>")
            reg = reg.replace(
                b"SIP/2.0/UDP 127.0.0.1:5999", f"SIP/2.0/TCP 127.0.0.1:{alias}".encode()
            )
            assert ask_tcp(c, reg) == 200
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.sendto(sip_request("INVITE", "sip:bob@127.0.0.1", 2), ("127.0.0.1", r.port))
            c.settimeout(5)
            data = b""
            while b"INVITE " not in data:
                chunk = c.recv(65535)
                assert chunk, data
                data += chunk
    assert data.split(b"INVITE ", 1)[1].startswith(b"sip:bob@127.0.0.1 SIP/2.0"), data


# -- exports pykemi cannot honour yet: said at start-up ----------------------------------------

USES_SCRIPT = """
function ksr_request_route()
    if KSR.is_REGISTER() then
        KSR.add_tcp_alias_via()
        KSR.add_tcp_alias(5070)
    end
    KSR.tm.t_load_contacts()
    KSR.tm.t_next_contacts()
    KSR.sl.send_reply(404, "Not Found")
end
"""


def check_warnings(tmp: Path, script: str, extra: str = "") -> list[str]:
    """The start-up warnings ``kemi check`` prints for a config running ``script``."""
    (tmp / "hostile.lua").write_text(script)
    cfg = tmp / "hostile.cfg"
    cfg.write_text(CFG.format(extra='loadmodule "tm.so"\n' + extra))
    res = kemi("check", "-A", "LISTEN=udp:127.0.0.1:5060", str(cfg))
    assert res.returncode == 0, res.stderr
    out = res.stderr.replace(str(tmp), "<tmp>")  # its name holds the test's name
    return [ln for ln in out.splitlines() if ln.startswith("warning:")]


def test_unhonoured_exports_the_script_calls_are_named_at_startup(tmp_path: Path) -> None:
    warned = "\n".join(check_warnings(tmp_path, USES_SCRIPT))
    for name in ("KSR.tm.t_load_contacts", "KSR.tm.t_next_contacts"):
        assert warned.count(f"{name} ") == 1, warned
    assert "<tmp>/hostile.lua:7: KSR.tm.t_load_contacts " in warned, warned
    assert "t_next_contact_flow" not in warned and "add_tcp_alias" not in warned, warned
    quiet = check_warnings(tmp_path, REPLY_BODY_SCRIPT.replace("textops.set_reply_body", "x"))
    assert not any("not implemented" in w for w in quiet), quiet


def test_contacts_avp_modparam_is_said_to_have_no_effect(tmp_path: Path) -> None:
    extra = 'modparam("tm", "contacts_avp", "tm_contacts")\n'
    warned = check_warnings(tmp_path, REPLY_BODY_SCRIPT, extra)
    assert any("contacts_avp" in w for w in warned), warned


def test_api_pages_say_what_is_not_implemented() -> None:
    """The generated API page of each of these exports says so (from its spec)."""
    docs = Path(__file__).resolve().parent.parent / "generated" / "docs"
    text = (docs / "tm.md").read_text()
    for name in (
        "t_load_contacts",
        "ki_t_load_contacts_mode",
        "t_next_contacts",
        "t_next_contact_flow",
    ):
        name = f"KSR.tm.{name}"
        section = text.split(f"### {name} ", 1)[1].split("\n### ", 1)[0]
        assert "not implemented" in section, (name, section[:300])


@pytest.mark.parametrize("name", ["via_add_srvid", "via_add_xavp_params", "via_use_xavp_fields"])
def test_record_only_corex_exports_are_named(tmp_path: Path, name: str) -> None:
    """corex's Via flags are recorded and change nothing: the API page and start-up say so."""
    docs = Path(__file__).resolve().parent.parent / "generated" / "docs"
    section = (docs / "corex.md").read_text().split(f"### KSR.corex.{name} ", 1)[1]
    assert "not implemented" in section.split("\n### ", 1)[0]
    script = USES_SCRIPT.replace("KSR.tm.t_load_contacts()", f"KSR.corex.{name}(1)")
    warned = "\n".join(check_warnings(tmp_path, script, 'loadmodule "corex.so"\n'))
    assert f"KSR.corex.{name} is called" in warned, warned


@pytest.mark.parametrize(
    "page,name",
    [
        ("corex", "KSR.corex.set_send_socket"),
        ("corex", "KSR.corex.set_send_socket_name"),
        ("core", "KSR.add_local_rport"),
    ],
)
def test_partly_honoured_exports_say_what_is_missing(page: str, name: str) -> None:
    """set_send_socket only reaches Record-Route, add_local_rport only KSR.forward(): said."""
    docs = Path(__file__).resolve().parent.parent / "generated" / "docs"
    section = (docs / f"{page}.md").read_text().split(f"### {name} ", 1)[1]
    assert "not implemented in pykemi yet" in section.split("\n### ", 1)[0]
