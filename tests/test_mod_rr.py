"""KSR.rr: Record-Route insertion and loose_route() on real parsed messages."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from pykemi.runtime import router as router_mod
from pykemi.runtime.config.model import Config, Location, ModParam
from pykemi.runtime.config.modparams import spec_defaults
from pykemi.runtime.core.context import ProcessState
from pykemi.runtime.modules import params as _params
from pykemi.runtime.modules import rr, sanity
from pykemi.runtime.sip.message import parse_message

from .modhelpers import INVITE, crlf, make_ctx


def in_dialog(
    method: str = "BYE",
    ruri: str = "sip:bob@10.0.0.9",
    routes: str = "",
    from_tag: str = "ftag1",
    to_tag: str = "ttag9",
) -> bytes:
    return crlf(f"""{method} {ruri} SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKbye1
{routes}From: <sip:alice@atlanta.example.com>;tag={from_tag}
To: <sip:bob@example.com>;tag={to_tag}
Call-ID: cid-1@10.0.0.1
CSeq: 102 {method}
Content-Length: 0

""")


def test_record_route_single_udp() -> None:
    ctx, _ = make_ctx()
    assert rr.record_route(ctx) == 1
    first = ctx.msg.headers[0]
    assert (first.name, first.value) == ("Record-Route", "<sip:127.0.0.1;lr;ftag=ftag1>")
    assert rr.record_route(ctx) == -1  # double attempt
    out = parse_message(ctx.msg.to_bytes())
    assert out.get_all("record-route") == ["<sip:127.0.0.1;lr;ftag=ftag1>"]


def test_record_route_tcp_port_and_params() -> None:
    proc = ProcessState(listen=[("tcp", "192.0.2.1", 5070)])
    ctx, _ = make_ctx(dst=("192.0.2.1", 5070), proto="tcp", proc=proc)
    ctx.new_uri = "sip:bob@example.com;transport=tcp"
    assert rr.add_rr_param(ctx, ";nat=yes") == 1  # before record_route
    assert rr.record_route_params(ctx, "did=7") == 1
    assert rr.add_rr_param(ctx, "x=1") == 1  # after
    assert ctx.msg.get("Record-Route") == (
        "<sip:192.0.2.1:5070;transport=tcp;lr;ftag=ftag1;did=7;nat=yes;x=1>"
    )


def test_record_route_double_when_transport_changes() -> None:
    proc = ProcessState(listen=[("udp", "127.0.0.1", 5060), ("tcp", "127.0.0.1", 5060)])
    ctx, _ = make_ctx(proc=proc)
    ctx.dst_uri = "sip:10.0.0.5:5080;transport=tcp"
    assert rr.record_route(ctx) == 1
    assert ctx.msg.get_all("Record-Route") == [
        "<sip:127.0.0.1;transport=tcp;r2=on;lr;ftag=ftag1>",
        "<sip:127.0.0.1;r2=on;lr;ftag=ftag1>",
    ]
    assert rr.remove_record_route(ctx) == 1
    assert not ctx.msg.has("Record-Route")
    assert rr.record_route(ctx) == 1  # allowed again after removal


def test_record_route_modparams() -> None:
    proc = ProcessState(listen=[("udp", "127.0.0.1", 5060)])
    proc.extra["modparams.rr"] = dict(spec_defaults("rr"), append_fromtag=0, enable_full_lr=1)
    ctx, _ = make_ctx(proc=proc)
    assert rr.record_route(ctx) == 1
    assert ctx.msg.get("Record-Route") == "<sip:127.0.0.1;lr=on>"
    assert rr.is_direction(ctx, "downstream") == rr.E_CFG


def test_record_route_preset_and_advertised() -> None:
    ctx, _ = make_ctx()
    assert rr.record_route_preset_one(ctx, "1.2.3.4:5090") == 1
    assert ctx.msg.get("Record-Route") == "<sip:1.2.3.4:5090;lr;ftag=ftag1>"

    ctx, _ = make_ctx()
    assert rr.record_route_preset(ctx, "10.1.1.1;r2=on", "192.168.1.1;r2=on") == 1
    assert ctx.msg.get_all("Record-Route") == [
        "<sip:10.1.1.1;r2=on;lr;ftag=ftag1>",
        "<sip:192.168.1.1;r2=on;lr;ftag=ftag1>",
    ]

    ctx, _ = make_ctx()
    assert rr.record_route_advertised_address(ctx, "proxy.example.com:5080") == 1
    assert ctx.msg.get("Record-Route") == "<sip:proxy.example.com:5080;lr;ftag=ftag1>"
    assert rr.record_route_preset_one(ctx, "1.2.3.4") == -1  # already record-routed


def test_record_route_rejects_reply_and_bad_params() -> None:
    ctx, _ = make_ctx()
    assert rr.record_route_params(ctx, ";a=<b>") == -1
    assert not ctx.msg.has("Record-Route")
    from .modhelpers import REPLY

    rctx, _ = make_ctx(REPLY)
    assert rr.record_route(rctx) == -1


def test_loose_route_in_dialog_loose_next_hop() -> None:
    routes = "Route: <sip:127.0.0.1;lr;ftag=ftag1;nat=yes>, <sip:10.0.0.5;lr>\n"
    ctx, _ = make_ctx(in_dialog(routes=routes))
    assert rr.loose_route(ctx) == 1
    assert ctx.dst_uri == "sip:10.0.0.5;lr"
    assert ctx.msg.get_all("Route") == ["<sip:10.0.0.5;lr>"]
    assert ctx.ruri == "sip:bob@10.0.0.9"
    assert rr.check_route_param(ctx, "nat=yes") == 1
    assert rr.check_route_param(ctx, "nat=no") == -1
    assert rr.check_route_param(ctx, "([") == -1  # bad regex: logged, no exception
    assert rr.is_direction(ctx, "downstream") == 1
    assert rr.is_direction(ctx, "upstream") == -1
    assert rr.is_direction(ctx, "sideways") == -1
    assert rr.next_hop_route(ctx) == 1
    # the wire form keeps one Route line
    assert b"Route: <sip:10.0.0.5;lr>\r\n" in ctx.msg.to_bytes()


def test_loose_route_upstream_and_last_hop() -> None:
    routes = "Route: <sip:127.0.0.1;lr;ftag=ftag1>\n"
    ctx, _ = make_ctx(in_dialog(routes=routes, from_tag="ttag9", to_tag="ftag1"))
    assert rr.loose_route(ctx) == 1  # in-dialog, no next Route: route to the R-URI
    assert ctx.dst_uri is None and not ctx.msg.has("Route")
    assert rr.next_hop_route(ctx) == -1
    assert rr.is_direction(ctx, "upstream") == 1
    # a Record-Route of an upstream in-dialog request carries the To tag as ftag
    assert rr.record_route(ctx) == 1
    assert ctx.msg.get("Record-Route") == "<sip:127.0.0.1;lr;ftag=ftag1>"


def test_loose_route_without_route_and_for_replies() -> None:
    ctx, _ = make_ctx(in_dialog())
    assert rr.loose_route(ctx) == -1
    from .modhelpers import REPLY

    rctx, _ = make_ctx(REPLY)
    assert rr.loose_route(rctx) == -1


def test_loose_route_preloaded_local_route() -> None:
    raw = INVITE.replace(
        b"Max-Forwards: 70\r\n", b"Route: <sip:127.0.0.1;lr>\r\nMax-Forwards: 70\r\n"
    )
    ctx, _ = make_ctx(raw)
    assert rr.loose_route(ctx) == rr.RR_PRELOADED
    assert not ctx.msg.has("Route")
    ctx, _ = make_ctx(raw)
    assert rr.loose_route_preloaded(ctx) == 1
    ctx, _ = make_ctx(in_dialog(routes="Route: <sip:127.0.0.1;lr>\n"))
    assert rr.loose_route_preloaded(ctx) == -1


def test_loose_route_preloaded_foreign_route() -> None:
    raw = INVITE.replace(
        b"Max-Forwards: 70\r\n", b"Route: <sip:10.9.9.9;lr>\r\nMax-Forwards: 70\r\n"
    )
    ctx, _ = make_ctx(raw)
    assert rr.loose_route(ctx) == 1
    assert ctx.dst_uri == "sip:10.9.9.9;lr"
    assert ctx.msg.get("Route") == "<sip:10.9.9.9;lr>"  # not ours: kept for the next hop
    assert rr.check_route_param(ctx, "lr") == -1


def test_loose_route_strict_next_hop() -> None:
    routes = "Route: <sip:127.0.0.1;lr>\nRoute: <sip:10.0.0.5>, <sip:10.0.0.6;lr>\n"
    ctx, _ = make_ctx(in_dialog(routes=routes))
    assert rr.loose_route(ctx) == 1
    assert ctx.ruri == "sip:10.0.0.5"
    assert ctx.dst_uri is None
    assert ctx.msg.get_all("Route") == ["<sip:10.0.0.6;lr>", "<sip:bob@10.0.0.9>"]


def test_loose_route_after_strict_previous_hop() -> None:
    routes = "Route: <sip:10.0.0.5;lr>, <sip:bob@10.0.0.9>\n"
    raw = in_dialog(ruri="sip:127.0.0.1;lr;ftag=ftag1;nat=yes", routes=routes)
    ctx, _ = make_ctx(raw)
    assert rr.loose_route(ctx) == 1
    assert ctx.dst_uri == "sip:10.0.0.5;lr"
    assert ctx.ruri == "sip:bob@10.0.0.9"
    assert ctx.msg.get_all("Route") == ["<sip:10.0.0.5;lr>"]
    assert rr.check_route_param(ctx, "nat=yes") == 1
    # mode 1: an R-URI of ours is not taken as strict routing
    ctx, _ = make_ctx(raw)
    assert rr.loose_route_mode(ctx, 1) == 1
    assert ctx.dst_uri == "sip:10.0.0.5;lr"
    assert ctx.ruri == "sip:127.0.0.1;lr;ftag=ftag1;nat=yes"


def test_loose_route_double_rr_removes_both() -> None:
    routes = (
        "Route: <sip:127.0.0.1;r2=on;lr;ftag=ftag1>\n"
        "Route: <sip:127.0.0.1;transport=tcp;r2=on;lr;ftag=ftag1>\n"
        "Route: <sip:10.0.0.5;lr>\n"
    )
    ctx, _ = make_ctx(in_dialog(routes=routes))
    assert rr.loose_route(ctx) == 1
    assert ctx.msg.get_all("Route") == ["<sip:10.0.0.5;lr>"]
    assert ctx.dst_uri == "sip:10.0.0.5;lr"


def test_loose_route_alias_and_gruu() -> None:
    proc = ProcessState(listen=[("udp", "127.0.0.1", 5060)], aliases=[("proxy.example.com", 0)])
    ctx, _ = make_ctx(
        in_dialog(routes="Route: <sip:proxy.example.com;lr>, <sip:10.0.0.5;lr>\n"), proc=proc
    )
    assert rr.loose_route(ctx) == 1
    assert ctx.dst_uri == "sip:10.0.0.5;lr"
    ctx, _ = make_ctx(in_dialog(routes="Route: <sip:127.0.0.1;gr=x;lr>\n"))
    assert rr.loose_route(ctx) == 1
    assert ctx.dst_uri == "sip:127.0.0.1;gr=x;lr"  # a GRUU is never "myself"


def test_loose_route_malformed_route() -> None:
    ctx, _ = make_ctx(in_dialog(routes="Route: <sip:127.0.0.1;lr\n"))
    assert rr.loose_route(ctx) == -1
    ctx, _ = make_ctx(in_dialog(routes="Route: <foo:bar>\n"))
    assert rr.loose_route(ctx) == -1


def test_check_route_param_without_loose_route() -> None:
    ctx, _ = make_ctx(in_dialog(routes="Route: <sip:127.0.0.1;lr;foo=bar>\n"))
    assert rr.check_route_param(ctx, "foo=bar") == 1  # read from the top Route (ours)


def test_modparams_hook_reads_cfg() -> None:
    loc = Location("kamailio.cfg", 1)
    cfg = Config(
        "kamailio.cfg",
        modparams=[
            ModParam("rr", "append_fromtag", "0", loc),
            ModParam("rr", "custom_user_avp", "$var(u)", loc),
            ModParam("sl", "append_fromtag", 1, loc),
        ],
    )
    fake = SimpleNamespace(cfg=cfg, proc=ProcessState(), api=None)  # None: generated/api.json
    for name in ("rr", "sanity"):
        assert _params.HOOKS[name] in router_mod.ROUTER_INIT_HOOKS
        _params.HOOKS[name](fake)
    params = fake.proc.extra["modparams.rr"]
    assert params["append_fromtag"] == 0 and params["custom_user_avp"] == "$var(u)"
    assert params["enable_double_rr"] == 1
    assert fake.proc.extra["modparams.sanity"] == spec_defaults(sanity.MODULE)


LUA_SCRIPT = """
function ksr_request_route()
    if KSR.sanity.sanity_check(17895, 7) < 0 then
        KSR.x.exit()
    end
    if KSR.siputils.has_totag() < 0 and KSR.textops.is_present_hf("X-Mark") > 0 then
        KSR.rr.add_rr_param(";mark=1")
    end
    KSR.rr.record_route()
    KSR.textops.remove_hf("X-Mark")
    KSR.forward()
end
"""

E2E_INVITE = crlf("""INVITE sip:bob@127.0.0.1:5090 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-e2e
From: <sip:alice@127.0.0.1>;tag=fa
To: <sip:bob@127.0.0.1>
Call-ID: e2e-rr
CSeq: 1 INVITE
X-Mark: yes
Max-Forwards: 70
Content-Length: 0

""")


def test_lua_script_through_generated_bindings(tmp_path: Path) -> None:
    from pykemi.runtime.config import parse_config_text
    from pykemi.runtime.router import Router

    (tmp_path / "script.lua").write_text(LUA_SCRIPT, encoding="utf-8")
    mods = ("sl", "kemix", "rr", "sanity", "siputils", "textops", "corex", "app_lua")
    cfg_text = "\n".join(
        [
            "#!KAMAILIO",
            "listen=udp:127.0.0.1:5060",
            *[f'loadmodule "{m}.so"' for m in mods],
            'modparam("rr", "enable_full_lr", 1)',
            'modparam("app_lua", "load", "script.lua")',
            'cfgengine "lua"',
            "",
        ]
    )
    router = Router(parse_config_text(cfg_text, str(tmp_path / "kamailio.cfg")))
    sent: list[tuple[bytes, tuple[str, int]]] = []
    router.handle(
        E2E_INVITE,
        ("127.0.0.1", 5070),
        ("127.0.0.1", 5060),
        "udp",
        lambda d, a: sent.append((d, a)),
    )
    assert len(sent) == 1 and sent[0][1] == ("127.0.0.1", 5090)
    out = parse_message(sent[0][0])
    assert out.get("Record-Route") == "<sip:127.0.0.1;lr=on;ftag=fa;mark=1>"
    assert not out.has("X-Mark")
    # a broken CSeq is answered by sanity and not forwarded
    sent.clear()
    router.handle(
        E2E_INVITE.replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE"),
        ("127.0.0.1", 5070),
        ("127.0.0.1", 5060),
        "udp",
        lambda d, a: sent.append((d, a)),
    )
    assert len(sent) == 1 and parse_message(sent[0][0]).status == 400
