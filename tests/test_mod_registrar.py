"""KSR.registrar on real parsed REGISTERs: save/lookup, expiry, q, Path, limits, sharing."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from pykemi.runtime.config.modparams import spec_defaults
from pykemi.runtime.config.parser import parse_config_text
from pykemi.runtime.core.context import ProcessState
from pykemi.runtime.core.pv import get_pv
from pykemi.runtime.modules import corex, nathelper, registrar, sl
from pykemi.runtime.router import Router
from pykemi.runtime.sip.message import SipMessage, parse_message
from pykemi.runtime.usrloc import MemoryStore, SqliteStore, location_store

from .harness import router
from .modhelpers import crlf, make_ctx, request


def register(
    contacts: str = "<sip:alice@10.0.0.1:5062>",
    *,
    expires: str | None = None,
    cseq: int = 1,
    callid: str = "reg-1",
    aor: str = "sip:alice@example.com",
    extra: str = "",
) -> bytes:
    lines = [f"Contact: {c.strip()}\n" for c in contacts.split("|") if c.strip()]
    exp = f"Expires: {expires}\n" if expires is not None else ""
    return crlf(f"""REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKreg{cseq}
From: <{aor}>;tag=f{cseq}
To: <{aor}>
Call-ID: {callid}
CSeq: {cseq} REGISTER
{"".join(lines)}{exp}{extra}Content-Length: 0

""")


def new_proc(**params: Any) -> ProcessState:
    proc = ProcessState(listen=[("udp", "127.0.0.1", 5060)])
    proc.extra["modparams.registrar"] = dict(spec_defaults("registrar"), **params)
    proc.extra["modparams.usrloc"] = spec_defaults("usrloc")
    proc.extra["usrloc.store"] = MemoryStore()
    return proc


def save(proc: ProcessState, raw: bytes, flags: int = 0, **kw: Any) -> tuple[int, SipMessage]:
    ctx, sent = make_ctx(raw, proc=proc, **kw)
    rc = registrar.save(ctx, "location", flags)
    assert sent.items, "save() sends a reply"
    return rc, parse_message(sent.items[-1][0])


def lookup(proc: ProcessState, ruri: str = "sip:alice@example.com", method: str = "INVITE") -> Any:
    ctx, _ = make_ctx(request(method, ruri), proc=proc)
    return registrar.lookup(ctx, "location"), ctx


def dset(ctx: Any) -> list[str]:
    """The destination set lookup left, as a 302 sent now lists it (Contacts, in order)."""
    ctx.send.items.clear()
    assert sl.sl_send_reply(ctx, 302, "Moved") == 1
    [(data, _)] = ctx.send.items
    return [h.value.strip("<>") for h in parse_message(data).headers if h.name == "Contact"]


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1_700_000_000.0
        monkeypatch.setattr(time, "time", lambda: self.now)


def test_save_replies_with_bindings_and_lookup_forks_by_q() -> None:
    proc = new_proc()
    rc, rpl = save(proc, register("<sip:alice@10.0.0.1:5062>;q=0.5"))
    assert rc == 1 and rpl.status == 200
    assert rpl.get("Contact") == "<sip:alice@10.0.0.1:5062>;q=0.5;expires=3600"
    rc, rpl = save(proc, register("<sip:alice@10.0.0.2>;q=0.9", callid="reg-2"))
    assert rc == 2
    assert (rpl.get("Contact") or "").count("expires=") == 2
    rc, ctx = lookup(proc)
    assert rc == 1
    assert dset(ctx) == ["sip:alice@10.0.0.2", "sip:alice@10.0.0.1:5062"]  # highest q first
    assert lookup(proc, "sip:bob@example.com")[0] == -1
    # append_branches=0: only the R-URI
    proc.extra["modparams.registrar"]["append_branches"] = 0
    rc, ctx = lookup(proc)
    assert rc == 1 and dset(ctx) == ["sip:alice@10.0.0.2"]


def test_query_without_contacts_returns_4() -> None:
    proc = new_proc()
    save(proc, register())
    rc, rpl = save(proc, register(contacts="", cseq=2))
    assert rc == 4 and rpl.status == 200 and "sip:alice@10.0.0.1:5062" in (rpl.get("Contact") or "")


def test_expires_sources_and_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    proc = new_proc(min_expires=60, max_expires=600, default_expires=300)
    # contact param beats the Expires header; clamped to [min, max]
    rc, rpl = save(proc, register("<sip:a@10.0.0.1>;expires=30|<sip:b@10.0.0.2>", expires="9000"))
    assert rc == 1
    assert rpl.get("Contact") == "<sip:a@10.0.0.1>;expires=60, <sip:b@10.0.0.2>;expires=600"
    _, rpl = save(proc, register("<sip:c@10.0.0.3>", cseq=2))  # default_expires
    assert "<sip:c@10.0.0.3>;expires=300" in (rpl.get("Contact") or "")
    clock.now += 61
    rc, ctx = lookup(proc)
    assert rc == 1 and "sip:a@10.0.0.1" not in dset(ctx)
    clock.now += 600
    assert lookup(proc)[0] == -1


def test_expires_zero_removes_one_and_star_removes_all() -> None:
    proc = new_proc()
    save(proc, register("<sip:a@10.0.0.1>|<sip:b@10.0.0.2>"))
    rc, rpl = save(proc, register("<sip:a@10.0.0.1>;expires=0", cseq=2))
    assert rc == 3 and rpl.get("Contact") == "<sip:b@10.0.0.2>;expires=3600"
    rc, rpl = save(proc, register("*", expires="0", cseq=3))
    assert rc == 3 and rpl.status == 200 and not rpl.has("Contact")
    assert lookup(proc)[0] == -1


def test_star_errors() -> None:
    proc = new_proc()
    rc, rpl = save(proc, register("*", expires="10"))
    assert rc == -1 and rpl.status == 400
    assert rpl.get("P-Registrar-Error") == "* used in contact and expires is not zero"
    rc, rpl = save(proc, register("*|<sip:a@10.0.0.1>", expires="0"))
    assert rc == -1 and rpl.status == 400


def test_rfc3261_callid_cseq_rules() -> None:
    proc = new_proc()
    save(proc, register("<sip:a@10.0.0.1>", cseq=5))
    # same Call-ID, lower CSeq: the update fails
    rc, rpl = save(proc, register("<sip:a@10.0.0.1>;expires=0", cseq=4))
    assert rc == -1 and rpl.status == 400
    assert rpl.get("P-Registrar-Error") == "Invalid CSeq number"
    # same Call-ID and CSeq: a retransmission, binding unchanged
    rc, rpl = save(proc, register("<sip:a@10.0.0.1>;expires=0", cseq=5))
    assert rpl.status == 200 and lookup(proc)[0] == 1
    # another Call-ID may update (remove) it whatever its CSeq
    rc, rpl = save(proc, register("<sip:a@10.0.0.1>;expires=0", cseq=1, callid="x"))
    assert rc == 3 and lookup(proc)[0] == -1


def test_max_contacts_and_one_contact_flag() -> None:
    proc = new_proc(max_contacts=2, retry_after=30)
    save(proc, register("<sip:a@10.0.0.1>|<sip:b@10.0.0.2>"))
    rc, rpl = save(proc, register("<sip:c@10.0.0.3>", cseq=2))
    assert rc == -2 and rpl.status == 503 and rpl.get("Retry-After") == "30"
    # updating an existing binding is still fine
    rc, rpl = save(proc, register("<sip:b@10.0.0.2>;expires=100", cseq=3))
    assert rc == 2 and rpl.status == 200
    # flag 0x04: this contact only
    rc, rpl = save(proc, register("<sip:c@10.0.0.3>", cseq=4), flags=0x04)
    assert rpl.get("Contact") == "<sip:c@10.0.0.3>;expires=3600"


def test_no_reply_flag_and_reg_send_reply() -> None:
    proc = new_proc()
    ctx, sent = make_ctx(register(), proc=proc)
    assert registrar.save(ctx, "location", 0x02) == 1
    assert not sent.items
    assert registrar.reg_send_reply(ctx) == 1
    assert parse_message(sent.items[0][0]).status == 200
    assert registrar.reg_send_reply(ctx) == -1


def test_received_from_nathelper_sets_du() -> None:
    proc = new_proc(received_avp="$avp(RECEIVED)")
    proc.extra["modparams.nathelper"] = dict(
        spec_defaults("nathelper"), received_avp="$avp(RECEIVED)"
    )
    ctx, sent = make_ctx(
        register("<sip:alice@192.168.1.5:5060>"), proc=proc, src=("203.0.113.9", 4321)
    )
    assert nathelper.nat_uac_test(ctx, 19) == 1
    assert nathelper.fix_nated_register(ctx) == 1
    ctx.bflags = 1 << 6
    assert registrar.save(ctx, "location", 0) == 1
    rpl = parse_message(sent.items[0][0])
    assert rpl.get("Contact") == (
        '<sip:alice@192.168.1.5:5060>;expires=3600;received="sip:203.0.113.9:4321"'
    )
    rc, lctx = lookup(proc)
    assert rc == 1 and lctx.ruri == "sip:alice@192.168.1.5:5060"
    assert lctx.dst_uri == "sip:203.0.113.9:4321"
    assert lctx.bflags == 1 << 6  # branch flags restored


def test_path_modes() -> None:
    path = "Path: <sip:edge.example.net;lr>\n"
    proc = new_proc(use_path=1, path_mode=2)
    rc, rpl = save(proc, register(extra=path))
    assert rc == -1 and rpl.status == 420 and rpl.get("Unsupported") == "path"
    rc, rpl = save(proc, register(extra=path + "Supported: path\n", cseq=2))
    assert rc == 1 and rpl.get("Path") == "<sip:edge.example.net;lr>"
    rc, ctx = lookup(proc)
    assert rc == 1 and ctx.dst_uri == "sip:edge.example.net;lr"
    assert ctx.msg.get_all("Route") == ["<sip:edge.example.net;lr>"]
    # path_mode 0: stored, never echoed
    proc = new_proc(use_path=1, path_mode=0)
    rc, rpl = save(proc, register(extra=path))
    assert rc == 1 and not rpl.has("Path")


def test_method_filtering() -> None:
    proc = new_proc(method_filtering=1)
    save(proc, register(extra="Allow: INVITE, ACK, BYE\n"))
    assert lookup(proc, method="INVITE")[0] == 1
    assert lookup(proc, method="MESSAGE")[0] == -2


def test_registered_unregister_and_ulc() -> None:
    proc = new_proc()
    save(proc, register("<sip:a@10.0.0.1>;q=1|<sip:b@10.0.0.2>;q=0.2"))
    ctx, _ = make_ctx(request("INVITE", "sip:alice@example.com"), proc=proc)
    assert registrar.registered(ctx, "location") == 1
    assert registrar.registered_uri(ctx, "location", "sip:bob@example.com") == -1
    assert registrar.reg_fetch_contacts(ctx, "location", "sip:alice@example.com", "c") == 1
    assert get_pv(ctx, "$(ulc(c=>count))") == 2
    assert get_pv(ctx, "$(ulc(c=>addr)[1])") == "sip:b@10.0.0.2"
    assert get_pv(ctx, "$(ulc(c=>q)[0])") == "1"
    ruid = get_pv(ctx, "$(ulc(c=>ruid)[1])")
    assert registrar.unregister_ruid(ctx, "location", "", str(ruid)) == 1
    assert registrar.reg_free_contacts(ctx, "c") == 1
    assert get_pv(ctx, "$(ulc(c=>count))") is None
    assert registrar.unregister(ctx, "location", "sip:alice@example.com") == 1
    assert registrar.unregister(ctx, "location", "sip:alice@example.com") == -3
    assert registrar.registered(ctx, "location") == -1


def test_lookup_to_dset_and_branches() -> None:
    proc = new_proc()
    save(proc, register("<sip:a@10.0.0.1>"))
    save(proc, register("<sip:b@10.0.0.2>", aor="sip:bob@example.com", callid="b"))
    ctx, _ = make_ctx(request("INVITE", "sip:alice@example.com"), proc=proc)
    assert registrar.lookup_to_dset(ctx, "location", "sip:bob@example.com") == 1
    assert ctx.ruri == "sip:alice@example.com" and dset(ctx) == ["sip:b@10.0.0.2"]
    ctx, _ = make_ctx(request("INVITE", "sip:alice@example.com"), proc=proc)
    assert corex.append_branch_uri(ctx, "sip:bob@example.com") == 1
    assert registrar.lookup_branches(ctx, "location") == 1
    assert dset(ctx) == ["sip:a@10.0.0.1", "sip:b@10.0.0.2"]


def test_forked_processes_share_the_default_store(tmp_path: Path) -> None:
    """Workers are forked: a save in one process is seen by lookup in another."""
    proc = new_proc()
    proc.extra.pop("usrloc.store")
    store = location_store(proc)  # created before the fork, as the Router hook does
    assert isinstance(store, SqliteStore)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            ctx, _ = make_ctx(register(), proc=proc)
            code = 0 if registrar.save(ctx, "location", 0) == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    rc, ctx = lookup(proc)
    assert rc == 1 and ctx.ruri == "sip:alice@10.0.0.1:5062"


LUA = """
function ksr_request_route()
    if KSR.is_REGISTER() then
        if KSR.registrar.save("location", 0) < 0 then KSR.sl.sl_reply_error() end
        return 1
    end
    local rc = KSR.registrar.lookup("location")
    if rc < 0 then KSR.sl.sl_send_reply(404, "Not Found") return 1 end
    KSR.sl.sl_send_reply(302, "Moved Temporarily")
end
"""


def make_router(tmp: Path, extra: str = "") -> Router:
    (tmp / "script.lua").write_text(LUA, encoding="utf-8")
    mods = ("sl", "kemix", "usrloc", "registrar", "app_lua")
    text = "\n".join(
        [
            "#!KAMAILIO",
            "listen=udp:127.0.0.1:5060",
            *[f'loadmodule "{m}.so"' for m in mods],
            'modparam("registrar", "max_expires", 3600)',
            extra,
            'modparam("app_lua", "load", "script.lua")',
            'cfgengine "lua"',
            "",
        ]
    )
    return Router(parse_config_text(text, str(tmp / "kamailio.cfg")))


def route(router: Router, raw: bytes) -> SipMessage:
    sent: list[tuple[bytes, tuple[str, int]]] = []
    router.handle(
        raw, ("127.0.0.1", 5070), ("127.0.0.1", 5060), "udp", lambda d, a: sent.append((d, a))
    )
    assert len(sent) == 1
    return parse_message(sent[0][0])


def test_lua_script_register_then_call(tmp_path: Path) -> None:
    router = make_router(tmp_path)
    assert route(router, register()).status == 200
    rpl = route(router, request("INVITE", "sip:alice@example.com"))
    assert rpl.status == 302 and rpl.get("Contact") == "<sip:alice@10.0.0.1:5062>"
    assert route(router, request("INVITE", "sip:carol@example.com")).status == 404


def test_durable_sqlite_db_url(tmp_path: Path) -> None:
    url = f'modparam("usrloc", "db_url", "sqlite:///{tmp_path}/loc.db")\nmodparam("usrloc", "db_mode", 2)'
    first = make_router(tmp_path, url)
    # Kamailio's location schema through pykemi.runtime.db when it is there
    assert location_store(first.proc).kind in ("sql", "sqlite")
    assert route(first, register()).status == 200
    again = make_router(tmp_path, url)  # a restart finds the registration
    assert route(again, request("INVITE", "sip:alice@example.com")).status == 302
    if location_store(again.proc).kind != "sql":
        return
    import sqlite3

    with sqlite3.connect(tmp_path / "loc.db") as db:
        rows = db.execute("SELECT username, contact FROM location").fetchall()
    assert rows == [("alice", "sip:alice@10.0.0.1:5062")]


def _exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` (its Via gets rport: the reply comes back here) and read the reply."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        s.sendto(data.replace(b";branch=", b";rport;branch=", 1), ("127.0.0.1", port))
        return s.recvfrom(65535)[0]


@pytest.mark.timeout(120, method="thread")
def test_non_utf8_register_and_lookup_over_the_wire(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 (0xff, handed over surrogate-escaped) in the Contact, the
    User-Agent and the AOR are stored and looked up as they came, like Kamailio does with
    its byte strings: replies, no exception in the worker, the next REGISTER works."""
    (tmp_path / "script.lua").write_text(LUA, encoding="utf-8")
    cfg = tmp_path / "k.cfg"
    mods = "".join(f'loadmodule "{m}.so"\n' for m in ("sl", "kemix", "usrloc", "registrar"))
    cfg.write_text(
        "#!KAMAILIO\ndebug=2\nlog_stderror=yes\nchildren=1\nlisten=LISTEN\n"
        'kemi.rpc_socket="none"\n' + mods + 'loadmodule "app_lua.so"\n'
        'modparam("app_lua", "load", "script.lua")\ncfgengine "lua"\n'
    )
    odd = register("<sip:al\x01ice@10.0.0.1:5062>", extra="User-Agent: ph\x02one\n")
    odd = odd.replace(b"\x01", b"\xff").replace(b"\x02", b"\xfe")
    odd_aor = register(aor="sip:b\x01ob@example.com", callid="reg-b").replace(b"\x01", b"\xff")
    with router(cfg, tmp_path) as r:
        rpl = _exchange(r.port, odd)
        assert rpl.startswith(b"SIP/2.0 200 "), rpl
        assert b"Contact: <sip:al\xffice@10.0.0.1:5062>;expires=" in rpl
        rpl = _exchange(r.port, request("INVITE", "sip:alice@example.com"))
        assert rpl.startswith(b"SIP/2.0 302 ") and b"<sip:al\xffice@10.0.0.1:5062>" in rpl, rpl
        assert _exchange(r.port, odd_aor).startswith(b"SIP/2.0 200 ")
        rpl = _exchange(
            r.port, request("INVITE", "sip:b\x01ob@example.com").replace(b"\x01", b"\xff")
        )
        assert rpl.startswith(b"SIP/2.0 302 ") and b"<sip:alice@10.0.0.1:5062>" in rpl, rpl
        assert _exchange(r.port, register(cseq=2)).startswith(b"SIP/2.0 200 ")
        log = r.log
    assert "Traceback" not in log and "ERROR" not in log, log
