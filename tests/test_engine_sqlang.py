"""The Squirrel engine (app_sqlang): KSR shape, returns, exit/drop, errors, e2e."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pykemi.runtime.dispatch import StartupError

from . import enginehelpers
from .enginehelpers import REPLY_200, in_process, make_router
from .harness import ROOT, SIPP, router, sipp

pytest.importorskip("squirrel")

enginehelpers.ENGINE_MODULE.setdefault("sqlang", "app_sqlang")
enginehelpers.SCRIPT_NAME.setdefault("sqlang", "script.nut")

BASIC = """
function ksr_request_route() {
    local is_opt = KSR.is_OPTIONS();
    local none_ret = KSR.info("none\\n");
    local xnull = KSR.pv.get("$hdr(X-Missing)");
    local xstr = KSR.pv.get("$rm");
    KSR.info("types " + typeof is_opt + " " + is_opt + " " + typeof none_ret + " " +
        (xnull == null) + " " + typeof xstr + " " + xstr + " " + typeof KSR.kx.get_status() +
        " " + ("auth_ldap" in KSR) + "\\n");
    KSR.sl.send_reply(200, "OK");
    KSR.x.exit();
    KSR.info("after exit\\n");
}
"""


def test_returns_and_exit(tmp_path: Path) -> None:
    with in_process(tmp_path, "sqlang", BASIC) as r:
        assert [m.status for m in r.handle()] == [200]
        assert "types bool true null true string OPTIONS integer false" in r.text
        assert "after exit" not in r.text
        assert "ERROR" not in r.text


def test_coercion_of_numbers_and_numeric_strings(tmp_path: Path) -> None:
    script = 'function ksr_request_route() {\n    KSR.sl.send_reply("404", 7);\n}\n'
    with in_process(tmp_path, "sqlang", script) as r:
        assert [(m.status, m.reason) for m in r.handle()] == [(404, "7")]


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ('KSR.sl.send_reply("abc", "OK")',
         "KSR.sl.send_reply(int code, str reason): argument #1 expects int, got string 'abc'"),
        ("KSR.sl.send_reply(200)",
         "KSR.sl.send_reply(int code, str reason): argument #2 expects str, got null"),
        ("KSR.sl.send_reply(200, {})",
         "KSR.sl.send_reply(int code, str reason): argument #2 expects str, got table"),
    ],
)  # fmt: skip
def test_wrong_arguments_name_function_signature_and_line(
    tmp_path: Path, call: str, expected: str
) -> None:
    script = f"function ksr_request_route() {{\n    {call};\n}}\n"
    with in_process(tmp_path, "sqlang", script) as r:
        assert r.handle() == []
        assert expected in r.text
        assert "at ksr_request_route (script.nut:2)" in r.text
        r.handle()  # the worker keeps serving
        assert r.text.count("ERROR") == 2


def test_wrong_argument_is_catchable(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        function ksr_request_route() {
            try {
                KSR.sl.send_reply("abc", "OK");
            } catch (e) {
                KSR.info("caught " + e + "\\n");
            }
        }
        """)
    with in_process(tmp_path, "sqlang", script) as r:
        r.handle()
        assert "caught KSR.sl.send_reply(int code, str reason): argument #1" in r.text
        assert "ERROR" not in r.text


def test_runtime_error_logged_with_file_line(tmp_path: Path) -> None:
    script = "function f() {\n  local t = null;\n  return t.x;\n}\nfunction ksr_request_route() {\n  f();\n}\n"
    with in_process(tmp_path, "sqlang", script) as r:
        r.handle()
        assert "the index 'x' does not exist" in r.text
        assert "at f (script.nut:3)" in r.text and "at ksr_request_route (script.nut:6)" in r.text
        r.handle()  # still serving
        assert r.text.count("ERROR") == 2


def test_python_error_in_export_becomes_squirrel_error(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        function ksr_request_route() {
            try { KSR.is_OPTIONS(); } catch (e) { KSR.info("caught " + e + "\\n"); }
            KSR.sl.send_reply(200, "OK");
        }
        """)
    with in_process(tmp_path, "sqlang", script) as r:
        eng = r.router.engine
        slot = r.router.registry.find("is_OPTIONS")

        def boom(*_: object) -> None:
            raise RuntimeError("boom")

        eng._slots[slot] = boom
        for _ in range(200):  # the VM stays usable after errors crossing it
            assert [m.status for m in r.handle()] == [200]
        assert "caught RuntimeError: boom" in r.text


def test_error_text_that_is_not_utf8_reaches_the_script(tmp_path: Path) -> None:
    """str(exc) with a lone surrogate (undecodable message bytes) cannot be UTF-8 encoded: the
    glue once passed the resulting NULL to "%s" (issue 13, L8); now it is escaped."""
    script = textwrap.dedent("""
        function ksr_request_route() {
            try { KSR.is_OPTIONS(); } catch (e) { KSR.info("caught " + e + "\\n"); }
        }
        """)
    with in_process(tmp_path, "sqlang", script) as r:
        slot = r.router.registry.find("is_OPTIONS")

        def boom(*_: object) -> None:
            raise ValueError("bad byte \udcff in header")

        r.router.engine._slots[slot] = boom
        r.handle()
        assert "caught ValueError: bad byte \\udcff in header" in r.text, r.text


def test_missing_request_route_is_startup_error(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="ksr_request_route"):
        make_router(tmp_path, "sqlang", "function other() {}\n")


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"script\.nut:3:\d+: expression expected"):
        make_router(tmp_path, "sqlang", "function ksr_request_route() {\n  local x =\n  = 1;\n}\n")


def test_top_level_error_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"script\.nut:2"):
        make_router(tmp_path, "sqlang", "function ksr_request_route() {}\nlocal t = null; t.x;\n")


def test_exit_is_a_catchable_string(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        function ksr_request_route() {
            try { KSR.x.exit(); } catch (e) { KSR.info("caught " + typeof e + " " + e + "\\n"); }
        }
        """)
    with in_process(tmp_path, "sqlang", script) as r:
        r.handle()
        assert "caught string ~~ksr~exit~~" in r.text


def test_drop_stops_reply_forwarding(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        function ksr_request_route() {}
        function ksr_reply_route() {
            if (KSR.kx.get_status() == 200) {
                KSR.x.drop();
            }
            KSR.info("not reached\\n");
        }
        """)
    with in_process(tmp_path, "sqlang", script) as r:
        assert r.handle(REPLY_200) == []
        assert "not reached" not in r.text
        assert "ERROR" not in r.text


def test_reply_forwarded_statelessly(tmp_path: Path) -> None:
    script = 'function ksr_request_route() {}\nfunction ksr_reply_route() { KSR.info("rpl\\n"); }\n'
    with in_process(tmp_path, "sqlang", script) as r:
        (fwd,) = r.handle(REPLY_200)
        assert fwd.status == 200 and len(fwd.vias) == 1
        assert "rpl" in r.text


def test_modf_runs_native_function(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        function ksr_request_route() {
            KSR.info("missing " + KSR.x.modf("no_such_function") + "\\n");
            KSR.x.modf("sl_send_reply", 202, "Yes");
        }
        """)
    with in_process(tmp_path, "sqlang", script) as r:
        assert [(m.status, m.reason) for m in r.handle()] == [(202, "Yes")]
        assert "missing -1" in r.text


def test_event_callback_gets_event_name(tmp_path: Path) -> None:
    script = (
        "function ksr_request_route() {}\n" 'function on_ev(evname) { KSR.info("ev " + evname); }\n'
    )
    with in_process(tmp_path, "sqlang", script) as r:
        from pykemi.runtime.core.context import MsgContext
        from pykemi.runtime.sip.message import parse_message

        msg = parse_message(enginehelpers.OPTIONS)
        ctx = MsgContext(
            msg, ("127.0.0.1", 5070), ("127.0.0.1", 5060), "udp", r.send, r.router.proc
        )
        assert r.router.engine.run("on_ev", ctx, "htable:mod-init") == 1
        assert "ev htable:mod-init" in r.text
        assert r.router.engine.run("not_defined", ctx) == 1


def test_reload_and_api_list(tmp_path: Path) -> None:
    script = 'const V = "v1";\nfunction ksr_request_route() { KSR.sl.send_reply(200, V); }\n'
    with in_process(tmp_path, "sqlang", script) as r:
        eng = r.router.engine
        assert eng.rpc_prefix == "app_sqlang" and eng.name == "sqlang"
        api = eng.registry.api_list()
        assert api["msize"] == len(api["methods"]) > 0
        assert [m.reason for m in r.handle()] == ["v1"]
        (tmp_path / "script.nut").write_text(script.replace("v1", "v2"))
        eng.reload()
        assert [m.reason for m in r.handle()] == ["v2"]
        (tmp_path / "script.nut").write_text("function ksr_request_route( {\n")
        with pytest.raises(Exception, match=r"script\.nut:1"):
            eng.reload()
        assert [m.reason for m in r.handle()] == ["v2"]  # the old script keeps running


@pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) not installed")
def test_example_answers_2000_options(tmp_path: Path) -> None:
    cfg = ROOT / "examples" / "stateless" / "kamailio-sqlang.cfg"
    with router(cfg, tmp_path) as r:
        res = sipp("options.xml", r.port, tmp_path, calls=2000, rate=1000)
        assert (res.successful, res.failed) == (2000, 0), res.output
        hops = sipp("options_maxfwd0.xml", r.port, tmp_path, calls=20, rate=100)
        assert (hops.successful, hops.failed) == (20, 0), hops.output
        log = r.log
    # >=: a sipp retransmission under load is routed (and logged) again
    assert log.count("===== request OPTIONS from 127.0.0.1") >= 2020
    assert "Traceback" not in log and "ERROR" not in log


def test_non_utf8_header_value_round_trips(tmp_path: Path) -> None:
    # Squirrel strings are bytes: undecodable message bytes pass through unchanged
    script = (
        'function ksr_request_route() { KSR.info("hdr " + KSR.pv.get("$hdr(X-Bin)") + "\\n"); }\n'
    )
    data = enginehelpers.OPTIONS.replace(b"Max-Forwards", b"X-Bin: a\xff\xfeb\r\nMax-Forwards")
    with in_process(tmp_path, "sqlang", script) as r:
        r.handle(data)
        assert "hdr a\udcff\udcfeb" in r.text
