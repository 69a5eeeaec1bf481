"""Engine semantics in real Lua and Python interpreters: callbacks, returns, exit/drop, errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pykemi.runtime.dispatch import StartupError

from .enginehelpers import REPLY_200, in_process, make_router

LUA_BASIC = """
function ksr_request_route()
    KSR.info("start\\n")
    local is_opt = KSR.is_OPTIONS()
    local none_ret = KSR.info("none\\n")
    local xnull = KSR.pv.get("$hdr(X-Missing)")
    local xstr = KSR.pv.get("$rm")
    local xint = KSR.pv.get("$cs")
    KSR.info("types " .. type(is_opt) .. " " .. tostring(is_opt) .. " " .. type(none_ret)
        .. " " .. type(xnull) .. " " .. xstr .. "\\n")
    KSR.sl.send_reply(200, "OK")
    KSR.x.exit()
    KSR.info("after exit\\n")
end
"""

PY_BASIC = """
import KSR
import Router.Logger as Logger

def mod_init():
    return Handler()

class Handler:
    def child_init(self, rank):
        return 0

    def ksr_request_route(self, msg):
        is_opt = KSR.is_OPTIONS()
        none_ret = KSR.info("none\\n")
        xnull = KSR.pv.get("$hdr(X-Missing)")
        xstr = KSR.pv.get("$rm")
        Logger.LM_INFO("types %s %s %s %s %s\\n" % (type(is_opt).__name__, is_opt,
                       none_ret, xnull, xstr))
        Logger.LM_INFO("method %s ruri %s\\n" % (msg.Method, msg.RURI))
        KSR.sl.send_reply(200, "OK")
        KSR.x.exit()
        KSR.info("after exit\\n")
"""


def test_lua_returns_and_exit(tmp_path: Path) -> None:
    with in_process(tmp_path, "lua", LUA_BASIC) as r:
        replies = r.handle()
        assert [m.status for m in replies] == [200]
        assert "types boolean true nil nil OPTIONS" in r.text
        assert "after exit" not in r.text
        assert "ERROR" not in r.text


def test_python_returns_and_exit(tmp_path: Path) -> None:
    with in_process(tmp_path, "python", PY_BASIC) as r:
        replies = r.handle()
        assert [m.status for m in replies] == [200]
        assert "types bool True None None OPTIONS" in r.text
        assert "method OPTIONS ruri sip:alice@127.0.0.1:5060" in r.text
        assert "after exit" not in r.text
        assert "ERROR" not in r.text


@pytest.mark.parametrize(
    ("engine", "script", "expected"),
    [
        (
            "lua",
            'function ksr_request_route()\n    KSR.sl.send_reply("abc", "OK")\nend\n',
            ["KSR.sl.send_reply(int code, str reason): argument #1 expects int", "script.lua:2:"],
        ),
        (
            "lua",
            "function ksr_request_route()\n    KSR.sl.send_reply(200)\nend\n",
            ["KSR.sl.send_reply(int code, str reason): argument #2 expects str, got nil",
             "script.lua:2:"],
        ),
        (
            "python",
            "import KSR\ndef ksr_request_route(msg):\n    KSR.sl.send_reply('abc', 'OK')\n",
            ["KSR.sl.send_reply(int code, str reason) -> int: argument 1 'code' expects int, got str",
             'script.py", line 3'],
        ),
        (
            "python",
            "import KSR\ndef ksr_request_route(msg):\n    KSR.sl.send_reply(200)\n",
            ["KSR.sl.send_reply(int code, str reason) -> int: missing argument 2 'reason'",
             'script.py", line 3'],
        ),
    ],
)  # fmt: skip
def test_wrong_arguments_name_function_and_line(
    tmp_path: Path, engine: str, script: str, expected: list[str]
) -> None:
    with in_process(tmp_path, engine, script) as r:
        assert r.handle() == []
        for text in expected:
            assert text in r.text
        # the worker keeps serving: the next message is routed again
        r.handle()
        assert r.text.count("ERROR") == 2


@pytest.mark.parametrize("engine", ["lua", "python"])
def test_missing_request_route_is_startup_error(tmp_path: Path, engine: str) -> None:
    script = "function other() end\n" if engine == "lua" else "def other(msg):\n    pass\n"
    with pytest.raises(StartupError, match="ksr_request_route"):
        make_router(tmp_path, engine, script)


def test_lua_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"script\.lua:3:"):
        make_router(tmp_path, "lua", "function ksr_request_route()\n  x = \n  = 1\nend\n")


def test_python_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r'script\.py", line 2'):
        make_router(tmp_path, "python", "def ksr_request_route(msg):\n    x = = 1\n")


def test_lua_drop_stops_reply_forwarding(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        function ksr_request_route() end
        function ksr_reply_route()
            if KSR.kx.get_status() == 200 then
                KSR.x.drop()
            end
            KSR.info("not reached\\n")
        end
        """)
    with in_process(tmp_path, "lua", script) as r:
        assert r.handle(REPLY_200) == []
        assert "not reached" not in r.text


def test_lua_reply_forwarded_statelessly(tmp_path: Path) -> None:
    script = "function ksr_request_route() end\nfunction ksr_reply_route() KSR.info('rpl\\n') end\n"
    with in_process(tmp_path, "lua", script) as r:
        (fwd,) = r.handle(REPLY_200)
        assert fwd.status == 200
        assert len(fwd.vias) == 1 and fwd.vias[0].port == 5070
        assert r.sent[-1][1] == ("127.0.0.1", 5070)


def test_core_drop_only_marks(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        function ksr_request_route() end
        function ksr_reply_route()
            KSR.drop()
            KSR.info("continued\\n")
        end
        """)
    with in_process(tmp_path, "lua", script) as r:
        assert r.handle(REPLY_200) == []
        assert "continued" in r.text


def test_lua_pcall_exit_is_catchable(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        function ksr_request_route()
            local ok, err = pcall(KSR.x.exit)
            KSR.info("pcall " .. tostring(ok) .. " " .. tostring(err) .. "\\n")
        end
        """)
    with in_process(tmp_path, "lua", script) as r:
        r.handle()
        assert "pcall false ~~ksr~exit~~" in r.text


@pytest.mark.parametrize("engine", ["lua", "python"])
def test_script_runtime_error_logged_with_line(tmp_path: Path, engine: str) -> None:
    if engine == "lua":
        script = "function ksr_request_route()\n  local t = nil\n  return t.x\nend\n"
        where = "script.lua:3:"
    else:
        script = "def ksr_request_route(msg):\n    return {}['x']\n"
        where = 'script.py", line 2'
    with in_process(tmp_path, engine, script) as r:
        r.handle()
        assert where in r.text
        r.handle()  # still serving
        assert r.text.count("ERROR") == 2


@pytest.mark.parametrize("engine", ["lua", "python"])
def test_modf_runs_native_function(tmp_path: Path, engine: str) -> None:
    if engine == "lua":
        script = 'function ksr_request_route()\n  KSR.x.modf("sl_send_reply", "202", "Yes")\nend\n'
    else:
        script = (
            "import KSR\ndef ksr_request_route(msg):\n"
            "    msg.call_function('sl_send_reply', '202', 'Yes')\n"
        )
    with in_process(tmp_path, engine, script) as r:
        replies = r.handle()
        assert [(m.status, m.reason) for m in replies] == [(202, "Yes")]


def test_python_function_style_and_msg_methods(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import KSR

        def ksr_request_route(msg):
            msg.rewrite_ruri("sip:carol@127.0.0.1:5090")
            KSR.info("ruri " + KSR.pv.get("$ru") + " hdr " + str(msg.getHeader("call-id")) + "\\n")
            KSR.sl.send_reply(200, "OK")
        """)
    with in_process(tmp_path, "python", script) as r:
        assert [m.status for m in r.handle()] == [200]
        assert "ruri sip:carol@127.0.0.1:5090 hdr call-1@127.0.0.1" in r.text


def test_python_msg_invalid_after_callback(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import KSR
        kept = []

        def ksr_request_route(msg):
            if kept:
                try:
                    kept[0].Method
                except RuntimeError as exc:
                    KSR.info("old msg: %s\\n" % exc)
            kept[:] = [msg]
        """)
    with in_process(tmp_path, "python", script) as r:
        r.handle()
        r.handle()
        assert "old msg: self->msg is NULL" in r.text


def test_maxfwd_c_export_from_both_engines(tmp_path: Path) -> None:
    lua = textwrap.dedent("""
        function ksr_request_route()
            local rc = KSR.maxfwd.process_maxfwd(10)
            KSR.info("rc=" .. rc .. " mf=" .. KSR.hdr.get("Max-Forwards") .. "\\n")
        end
        """)
    with in_process(tmp_path, "lua", lua) as r:
        r.handle()
        assert "rc=1 mf=69" in r.text
        r.handle(
            b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK2\r\n"
            b"From: <sip:b@x>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: 2\r\nCSeq: 1 OPTIONS\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        assert "rc=2 mf=10" in r.text
    py = textwrap.dedent("""
        import KSR
        def ksr_request_route(msg):
            KSR.info("lt=%d\\n" % KSR.maxfwd.is_maxfwd_lt(71))
        """)
    (tmp_path / "py").mkdir()
    with in_process(tmp_path / "py", "python", py) as r:
        r.handle()
        assert "lt=1" in r.text


@pytest.mark.parametrize(
    ("version", "expected"),
    [("5.1", "Lua 5.1"), ("5.2", "Lua 5.2"), ("5.3", "Lua 5.3"), ("5.4", "Lua 5.4"),
     ("luajit", "LuaJIT")],
)  # fmt: skip
def test_lua_version_chosen_by_modparam(tmp_path: Path, version: str, expected: str) -> None:
    script = textwrap.dedent("""
        function ksr_request_route()
            KSR.info("lua=" .. (jit and jit.version or _VERSION) .. "\\n")
            KSR.sl.send_reply(200, "OK")
        end
        """)
    extra = f'modparam("app_lua", "version", "{version}")'
    with in_process(tmp_path, "lua", script, extra_cfg=extra) as r:
        assert [m.status for m in r.handle()] == [200]
        assert f"lua={expected}" in r.text


def test_lua_unknown_version_is_startup_error(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"unsupported Lua version '4\.0'"):
        make_router(tmp_path, "lua", "function ksr_request_route() end\n",
                    extra_cfg='modparam("app_lua", "version", "4.0")')  # fmt: skip
