"""KSR.corex on real parsed messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pykemi.runtime.core.context import ProcessState
from pykemi.runtime.modules import corex, sl

from .kamailio_ref import api_list
from .modhelpers import INVITE, REPLY, make_ctx, request


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


def test_append_branch_family() -> None:
    ctx, _ = make_ctx()
    assert corex.append_branch_uri(ctx, "sip:alice@10.0.0.2") == 1
    assert corex.append_branch_uri_q(ctx, "sip:alice@10.0.0.3", "0.5") == 1
    ctx.new_uri = "sip:bob@10.0.0.4"
    ctx.dst_uri = "sip:10.0.0.99"
    assert corex.append_branch(ctx) == 1
    assert ctx.extra["branches"] == ["sip:alice@10.0.0.2", "sip:alice@10.0.0.3", "sip:bob@10.0.0.4"]
    assert ctx.extra["branch_q"] == {"sip:alice@10.0.0.3": "0.5"}
    assert ctx.extra["branch_dst"] == {"sip:bob@10.0.0.4": "sip:10.0.0.99"}
    assert corex.append_branch_uri(ctx, "not a uri") == -1
    assert corex.append_branch_uri_q(ctx, "sip:x@y", "2") == -1
    assert corex.append_branch_uri_q(ctx, "sip:x@y", "abc") == -1
    assert len(ctx.extra["branches"]) == 3


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
    assert ctx.extra["force_send_socket"] == ("tcp", "127.0.0.1", 5061)
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


def test_via_flags_and_faked() -> None:
    ctx, _ = make_ctx()
    assert corex.via_add_srvid(ctx, 1) == 1 and ctx.extra["via_add_srvid"] is True
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
