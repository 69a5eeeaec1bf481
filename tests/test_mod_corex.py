"""KSR.corex on real parsed messages."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from pykemi.runtime.config import parse_config_text
from pykemi.runtime.core.context import ProcessState
from pykemi.runtime.core.log import L_INFO, LOG
from pykemi.runtime.modules import core, corex, rr, sl
from pykemi.runtime.router import Router
from pykemi.runtime.sip.message import parse_message

from .kamailio_ref import api_list
from .modhelpers import INVITE, REPLY, make_ctx, request
from .test_tm_unit import Net, invite


def test_has_ruri_user_and_user_agent() -> None:
    ctx, _ = make_ctx()
    assert corex.has_ruri_user(ctx) == 1
    assert corex.has_user_agent(ctx) == 1
    ctx, _ = make_ctx(request("OPTIONS", "sip:example.com"))
    assert corex.has_ruri_user(ctx) == -1
    assert corex.has_user_agent(ctx) == -1
    ctx.new_uri = "sip:carol@example.com"  # $ru rewritten by the script counts
    assert corex.has_ruri_user(ctx) == 1
    rctx, _ = make_ctx(REPLY)
    assert corex.has_ruri_user(rctx) == -1


FORK_SCRIPT = """
function ksr_request_route()
    local rc = {
        KSR.corex.append_branch_uri("sip:alice@127.0.0.1:5080"),
        KSR.corex.append_branch_uri_q("sip:alice@127.0.0.1:5082", "0.5"),
        KSR.corex.append_branch_uri("not a uri"),
        KSR.corex.append_branch_uri_q("sip:x@127.0.0.1:5088", "2"),
        KSR.corex.append_branch_uri_q("sip:x@127.0.0.1:5088", "abc"),
    }
    KSR.pv.sets("$ru", "sip:bob@127.0.0.1:5084")
    KSR.pv.sets("$du", "sip:127.0.0.1:5090")
    rc[#rc + 1] = KSR.corex.append_branch()
    KSR.pv.sets("$ru", "sip:main@127.0.0.1:5086")
    KSR.pv.sets("$du", "")
    KSR.info("rc=" .. table.concat(rc, ",") .. "\\n")
    KSR.tm.t_relay()
end
"""


def test_appended_branches_are_forked(tmp_path: Path) -> None:
    """append_branch_uri(_q) and append_branch (with the $du it takes along) add branches
    t_relay sends in parallel; invalid URIs or q values add nothing."""
    (tmp_path / "k.lua").write_text(FORK_SCRIPT, encoding="utf-8")
    mods = ("tm", "sl", "corex", "app_lua")
    loads = [f'loadmodule "{m}.so"' for m in mods]
    lines = ["debug=3", "listen=udp:127.0.0.1:5060", *loads, 'modparam("app_lua", "load", "k.lua")']
    cfg = "\n".join([*lines, 'cfgengine "lua"', ""])
    buf = io.StringIO()
    old = (LOG.stream, LOG.level)
    LOG.stream, LOG.level = buf, L_INFO
    try:
        net = Net(Router(parse_config_text(cfg, str(tmp_path / "kamailio.cfg"))))
        net.feed(invite(1))
    finally:
        LOG.stream, LOG.level = old
    assert "rc=1,1,-1,-1,-1,1\n" in buf.getvalue(), buf.getvalue()
    forked = sorted((addr[1], m.ruri) for _, addr, m in net.take() if m.is_request)
    assert forked == [
        (5080, "sip:alice@127.0.0.1:5080"),
        (5082, "sip:alice@127.0.0.1:5082"),
        (5086, "sip:main@127.0.0.1:5086"),
        (5090, "sip:bob@127.0.0.1:5084"),
    ]


def test_branches_become_redirect_contacts() -> None:
    ctx, sent = make_ctx()
    corex.append_branch_uri(ctx, "sip:alice@10.0.0.2")
    assert sl.sl_send_reply(ctx, 302, "Moved") == 1
    assert b"Contact: <sip:alice@10.0.0.2>\r\n" in sent.items[0][0]


def test_xflags() -> None:
    ctx, _ = make_ctx()
    assert corex.isxflagset(ctx, 40) == -1
    assert corex.setxflag(ctx, 40) == 1 and corex.isxflagset(ctx, 40) == 1
    assert corex.setxflag(ctx, 0) == 1
    assert corex.resetxflag(ctx, 40) == 1 and corex.isxflagset(ctx, 40) == -1
    assert corex.isxflagset(ctx, 0) == 1
    assert corex.setxflag(ctx, 64) == -1 and corex.isxflagset(ctx, -1) == -1


def test_sockets() -> None:
    proc = ProcessState(listen=[("udp", "127.0.0.1", 5060), ("tcp", "127.0.0.1", 5061)])
    ctx, _ = make_ctx(proc=proc)
    assert corex.set_send_socket(ctx, "tcp:127.0.0.1:5061") == 1
    assert corex.set_send_socket(ctx, "udp:10.9.9.9:5060") == -1
    assert corex.set_send_socket(ctx, "udp:[::1") == -1
    assert corex.set_recv_socket(ctx, "tcp:127.0.0.1:5061") == 1
    assert (ctx.proto, ctx.dst) == ("tcp", ("127.0.0.1", 5061))
    assert corex.set_source_address(ctx, "udp:192.0.2.9:7000") == 1
    assert ctx.src == ("192.0.2.9", 7000) and ctx.proto == "udp"
    assert corex.set_source_address(ctx, "192.0.2.9") == -1
    assert corex.is_socket_name(ctx, "s1") == -1
    assert corex.set_send_socket_name(ctx, "s1") == -1
    proc.extra["socket_names"] = {"s1": ("udp", "127.0.0.1", 5060)}
    assert corex.is_socket_name(ctx, "s1") == 1
    assert corex.set_recv_socket_name(ctx, "s1") == 1 and ctx.dst == ("127.0.0.1", 5060)
    assert corex.set_send_socket_name(ctx, "s1") == 1


@pytest.mark.parametrize("forced", [False, True])
def test_send_socket_is_the_outbound_record_route(forced: bool) -> None:
    """The socket set_send_socket picks is the one record_route names for the outgoing side
    (double Record-Route when it differs from the receiving socket)."""
    proc = ProcessState(listen=[("udp", "127.0.0.1", 5060), ("tcp", "127.0.0.1", 5061)])
    ctx, sent = make_ctx(INVITE, proc=proc)
    assert not forced or corex.set_send_socket(ctx, "tcp:127.0.0.1:5061") == 1
    assert rr.record_route(ctx) == 1
    assert core.forward_uri(ctx, "sip:10.0.0.9:5090") == 1
    rrs = [h.value for h in parse_message(sent.items[0][0]).headers if h.name == "Record-Route"]
    if forced:
        assert rrs == [
            "<sip:127.0.0.1:5061;transport=tcp;r2=on;lr;ftag=ftag1>",
            "<sip:127.0.0.1;r2=on;lr;ftag=ftag1>",
        ]
    else:
        assert rrs == ["<sip:127.0.0.1;lr;ftag=ftag1>"]


def test_via_flags_and_faked() -> None:
    ctx, _ = make_ctx()
    assert corex.via_add_srvid(ctx, 1) == 1
    assert corex.via_add_xavp_params(ctx, 0) == 1
    assert corex.via_use_xavp_fields(ctx, 1) == 1
    assert corex.is_faked_msg(ctx) == -1


def test_send_data_and_sendx() -> None:
    ctx, sent = make_ctx(INVITE)
    assert corex.send_data(ctx, "sip:10.0.0.7:5090", "hello") == 1
    assert sent.items == [(b"hello", ("10.0.0.7", 5090))]
    assert corex.send_data(ctx, "bogus", "x") == -1
    calls: list[tuple[str, tuple[str, int], bytes]] = []

    def send_to(proto: str, addr: tuple[str, int], data: bytes, conn: int = -1) -> bool:
        calls.append((proto, addr, data))
        return proto != "sctp"

    ctx.proc.send_to = send_to
    assert corex.send_data(ctx, "sip:10.0.0.7;transport=tcp", "x") == 1
    assert calls[-1] == ("tcp", ("10.0.0.7", 5060), b"x")
    assert corex.sendx(ctx, "sip:10.0.0.7", "udp:127.0.0.1:5060", "y") == 1
    assert corex.sendx(ctx, "sip:10.0.0.7", "udp:10.1.1.1:5060", "y") == -1
    assert corex.send_data(ctx, "sip:10.0.0.7;transport=sctp", "z") == -1


def test_files(tmp_path: Path) -> None:
    ctx, _ = make_ctx()
    f = tmp_path / "x.txt"
    assert corex.file_write(ctx, str(f), "data\n") == 1
    assert corex.file_read(ctx, str(f)) == "data\n"
    assert corex.file_read(ctx, str(tmp_path / "missing")) is None
    assert corex.file_write(ctx, str(tmp_path / "no" / "dir"), "x") == -1


# ---- the spec files of rr/corex/siputils/textops/textopsx/sanity ---------------------------

SPEC_DIR = Path(__file__).resolve().parent.parent / "spec"
MY_SPECS = ("rr", "corex", "siputils", "textops", "textopsx", "sanity")


@pytest.mark.parametrize("module", MY_SPECS)
def test_spec_matches_api_list(module: str) -> None:
    """Kamailio's exports (implementations and modparams: tests/test_spec_contract.py)."""
    data = yaml.safe_load((SPEC_DIR / f"{module}.yaml").read_text())
    got = [(e["name"], e["ret"], [p["type"] for p in e["params"]]) for e in data["exports"]]
    want = [(r["name"], r["ret"], r["params"]) for r in api_list() if r["module"] == module]
    assert got == want
