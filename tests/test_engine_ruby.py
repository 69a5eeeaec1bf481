"""The Ruby engine (app_ruby) in embedded libruby: KSR shape, returns, exit/drop, errors, fork.

In-process tests run real messages through a Router (no sockets); the end-to-end test
runs the stateless example under ``kemi run`` and drives it with sipp.
"""

from __future__ import annotations

import io
import os
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pykemi.runtime.config import parse_config_text
from pykemi.runtime.core.log import LOG
from pykemi.runtime.dispatch import StartupError
from pykemi.runtime.engines import ruby, ruby_build
from pykemi.runtime.router import Router

from .enginehelpers import OPTIONS, REPLY_200, InProcess
from .harness import ROOT, SIPP, router, sipp

try:
    ruby_build.ruby_flags()
except ruby_build.RubyBuildError as exc:
    pytest.skip(f"libruby headers missing: {exc}", allow_module_level=True)

MAXFWD_0 = OPTIONS.replace(b"Max-Forwards: 70", b"Max-Forwards: 0")


def make_router(tmp: Path, script: str, modules: tuple[str, ...] = ()) -> Router:
    (tmp / "script.rb").write_text(script, encoding="utf-8")
    mods = ("sl", "maxfwd", "xlog", "kemix", *modules, "app_ruby")
    cfg_text = "\n".join(
        [
            "#!KAMAILIO",
            "debug=3",
            "children=1",
            "listen=udp:127.0.0.1:5060",
            *[f'loadmodule "{m}.so"' for m in mods],
            'modparam("app_ruby", "load", "script.rb")',
            'cfgengine "ruby"',
            "",
        ]
    )
    return Router(parse_config_text(cfg_text, str(tmp / "kamailio.cfg")))


@contextmanager
def in_process(tmp: Path, script: str) -> Iterator[InProcess]:
    buf = io.StringIO()
    old_stream, old_level = LOG.stream, LOG.level
    LOG.stream = buf
    try:
        r = make_router(tmp, textwrap.dedent(script))
        LOG.level = 3
        yield InProcess(r, buf)
    finally:
        LOG.stream, LOG.level = old_stream, old_level


def test_returns_mapping_and_exit(tmp_path: Path) -> None:
    script = """
    def ksr_request_route
      KSR::PV.seti("$var(n)", 42)
      vals = [KSR.is_OPTIONS, KSR.is_INVITE, KSR.info("none\\n"), KSR::PV.get("$hdr(X-Missing)"),
              KSR::PV.get("$rm"), KSR::PV.get("$var(n)"), KSR::MAXFWD.process_maxfwd(10),
              KSR::KX.get_method]
      KSR.info("types " + vals.map { |v| "#{v.class}:#{v.inspect}" }.join(" ") + "\\n")
      KSR::SL.send_reply(200, "OK")
      KSR::X.exit
      KSR.info("after exit\\n")
    end
    """
    with in_process(tmp_path, script) as r:
        assert [m.status for m in r.handle()] == [200]
        assert (
            'types TrueClass:true FalseClass:false NilClass:nil NilClass:nil String:"OPTIONS" '
            'Integer:42 Integer:1 String:"OPTIONS"'
        ) in r.text
        assert "after exit" not in r.text
        assert "ERROR" not in r.text


def test_value_edges_round_trip(tmp_path: Path) -> None:
    # negative and 64-bit ints, strings past the 64 KiB return buffer, UTF-8
    script = """
    def ksr_request_route
      KSR::PV.seti("$var(neg)", -5)
      KSR::PV.sets("$var(big)", "x" * 70_000)
      KSR::PV.sets("$var(u)", "h\\u00e9")
      big = KSR::PV.get("$var(big)")
      u = KSR::PV.get("$var(u)")
      KSR.info("neg=#{KSR::PV.get("$var(neg)")} big=#{big.size} u=#{u == "h\\u00e9"} #{u.encoding}\\n")
    end
    """
    with in_process(tmp_path, script) as r:
        r.handle()
        assert "neg=-5 big=70000 u=true UTF-8" in r.text


def test_exit_is_not_swallowed_by_rescue_and_ruby_exit_ends_normally(tmp_path: Path) -> None:
    script = """
    def ksr_request_route
      begin
        KSR::X.exit
      rescue => e
        KSR.info("rescued #{e.class}\\n")
      end
      KSR.info("not reached\\n")
    end

    def ksr_reply_route
      KSR.info("reply\\n")
      exit # Kamailio's way: an exception whose to_s is "exit" is a normal end
    end
    """
    with in_process(tmp_path, script) as r:
        r.handle()
        assert "rescued" not in r.text and "not reached" not in r.text
        (fwd,) = r.handle(REPLY_200)  # the reply route exited normally: forwarded
        assert fwd.status == 200
        assert "reply" in r.text and "ERROR" not in r.text


def test_drop_stops_reply_forwarding(tmp_path: Path) -> None:
    script = """
    def ksr_request_route; end

    def ksr_reply_route
      KSR::X.drop if KSR::KX.get_status == 200
      KSR.info("not reached\\n")
    end
    """
    with in_process(tmp_path, script) as r:
        assert r.handle(REPLY_200) == []
        assert "not reached" not in r.text and "ERROR" not in r.text


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ('KSR::SL.send_reply("abc", "OK")',
         "KSR::SL.send_reply(int code, str reason): argument #1 'code' expects int, "
         'got String "abc" (TypeError)'),
        ("KSR::SL.send_reply(200, nil)",
         "KSR::SL.send_reply(int code, str reason): argument #2 'reason' expects str, "
         "got nil (TypeError)"),
        ("KSR.info([1])", "KSR.info(str text): argument #1 'text' expects str, got Array"),
        ("KSR::SL.send_reply(200)",
         "wrong number of arguments (given 1, expected 2) (ArgumentError) "
         "calling KSR function send_reply"),
    ],
)  # fmt: skip
def test_wrong_arguments_name_function_signature_and_line(
    tmp_path: Path, call: str, expected: str
) -> None:
    script = f"def ksr_request_route\n  x = 1\n  {call}\nend\n"
    with in_process(tmp_path, script) as r:
        assert r.handle() == []
        assert expected in r.text
        assert "script.rb:3:in `ksr_request_route'" in r.text
        assert "generated/ruby" not in r.text  # the location is the script's, not the shim's
        r.handle()  # the worker keeps serving
        assert r.text.count("ERROR") == 2


def test_arguments_coerced_and_type_error_rescuable(tmp_path: Path) -> None:
    script = """
    def ksr_request_route
      begin
        KSR::SL.send_reply("x", "OK")
      rescue TypeError => e
        KSR.info("caught #{e.backtrace.first}\\n")
      end
      KSR::SL.send_reply("404", 7)
    end
    """
    with in_process(tmp_path, script) as r:
        assert [(m.status, m.reason) for m in r.handle()] == [(404, "7")]
        assert "caught " + str(tmp_path / "script.rb") + ":4:in `ksr_request_route'" in r.text


def test_runtime_error_logged_with_file_line_and_serving_continues(tmp_path: Path) -> None:
    script = """
    def helper(x)
      x.fetch(:missing)
    end

    def ksr_request_route
      helper({})
    end
    """
    with in_process(tmp_path, script) as r:
        r.handle()
        assert "script.rb:3:in `fetch': key not found: :missing (KeyError)" in r.text
        assert "from " + str(tmp_path / "script.rb") + ":7:in `ksr_request_route'" in r.text
        r.handle()
        assert r.text.count("ERROR") == 2


def test_result_python_cannot_convert_raises_in_ruby_not_false(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An int beyond 64 bits cannot become a Ruby VALUE: the script gets a RuntimeError naming
    the function, never cffi's silent 0 (which Ruby reads as false) (issue 13, L8)."""
    script = """
    def ksr_request_route
      v = KSR::PV.get("$ru")
      KSR.info("got #{v.inspect}\\n")
    rescue => e
      KSR.info("rescued #{e.class}: #{e.message}\\n")
    end
    """
    unhandled: list[object] = []  # where cffi reports an exception no onerror handled
    monkeypatch.setattr(sys, "unraisablehook", unhandled.append)
    with in_process(tmp_path, script) as r:
        slot = r.router.registry.find("pv.get")
        ruby._HOT["view"][slot] = lambda *_: 2**70
        r.handle()
        assert "rescued RuntimeError: KSR::PV.get: OverflowError" in r.text, r.text
        assert "got" not in r.text
    assert unhandled == []


def test_missing_request_route_is_startup_error(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="ksr_request_route"):
        make_router(tmp_path, "def other\nend\n")


def test_syntax_and_load_errors_name_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"script\.rb:3: syntax error"):
        make_router(tmp_path, "def ksr_request_route\n  x = (\n  = 1\nend\n")
    with pytest.raises(StartupError, match=r"script\.rb:2:.*undefined local variable"):
        make_router(tmp_path, "def ksr_request_route; end\nnot_defined_here\n")


def test_unloaded_module_constant_is_missing(tmp_path: Path) -> None:
    script = """
    def ksr_request_route
      KSR.info("tm #{KSR.const_defined?(:TM)} sl #{KSR.const_defined?(:SL)}\\n")
    end
    """
    with in_process(tmp_path, script) as r:
        r.handle()
        assert "tm false sl true" in r.text


def test_every_module_shim_loads(tmp_path: Path) -> None:
    from pykemi.runtime.dispatch import Api

    api = Api.load()
    extra = tuple(m for m in api.modules if m not in ("core", "sl", "maxfwd", "xlog", "kemix"))
    script = (
        'def ksr_request_route\n  KSR.info("consts " + KSR.constants.sort.join(",") + "\\n")\nend\n'
    )
    buf = io.StringIO()
    old_stream, old_level = LOG.stream, LOG.level
    LOG.stream, LOG.level = buf, 3
    try:
        r = make_router(tmp_path, script, extra)
        InProcess(r, buf).handle()
    finally:
        LOG.stream, LOG.level = old_stream, old_level
    subs = {e.submodule.upper() for m in api.modules.values() for e in m.exports if e.submodule}
    consts = set(buf.getvalue().split("consts ", 1)[1].split()[0].split(","))
    assert subs <= consts, subs - consts


def test_modf_runs_native_function(tmp_path: Path) -> None:
    script = """
    def ksr_request_route
      rc = KSR::X.modf("sl_send_reply", "202", "Yes")
      KSR.info("modf rc=#{rc.inspect}\\n")
    end
    """
    with in_process(tmp_path, script) as r:
        assert [(m.status, m.reason) for m in r.handle()] == [(202, "Yes")]
        assert "modf rc=1" in r.text


def test_maxfwd_483_and_callback_arguments(tmp_path: Path) -> None:
    script = """
    def ksr_request_route
      if KSR::MAXFWD.process_maxfwd(10) < 0
        KSR::SL.send_reply(483, "Too Many Hops")
      end
    end

    def ksr_event(evname)
      KSR.info("event #{evname} #{evname.encoding}\\n")
    end
    """
    with in_process(tmp_path, script) as r:
        assert [m.status for m in r.handle(MAXFWD_0)] == [483]
        r.router.engine.run("ksr_event", None, "core:worker-one-init")  # type: ignore[arg-type]
        assert "event core:worker-one-init UTF-8" in r.text


def test_reload_reruns_script_keeping_state(tmp_path: Path) -> None:
    script = (
        '$loads = ($loads || 0) + 1\ndef ksr_request_route\n  KSR.info("loads #{$loads}\\n")\nend\n'
    )
    with in_process(tmp_path, script) as r:
        r.router.engine.reload()
        r.handle()
        assert "loads 2" in r.text


def test_new_engine_starts_clean(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    make_router(tmp_path / "a", "def ksr_request_route; end\ndef ksr_reply_route; end\n")
    (tmp_path / "b").mkdir()
    r = make_router(tmp_path / "b", "def ksr_request_route; end\n")
    assert not r.engine.has("ksr_reply_route")  # the first script's methods are gone


def test_other_thread_is_refused_not_crashed(tmp_path: Path) -> None:
    with in_process(tmp_path, "def ksr_request_route\n  KSR::SL.send_reply(200, 'OK')\nend\n") as r:
        out: list[int] = []
        t = threading.Thread(target=lambda: out.append(len(r.handle())))
        t.start()
        t.join()
        assert out == [0]
        assert "called outside Ruby's thread" in r.text
        assert [m.status for m in r.handle()] == [200]


def test_vm_survives_fork(tmp_path: Path) -> None:
    script = """
    def ksr_request_route
      KSR::SL.send_reply(200, "pid #{Process.pid}")
    end
    """
    with in_process(tmp_path, script) as r:
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: route with the VM inherited from the parent
            code = 1
            try:
                (reply,) = r.handle()
                os.write(wfd, f"{reply.status} {reply.reason}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(wfd)
        got = os.read(rfd, 200).decode()
        os.close(rfd)
        _, status = os.waitpid(pid, 0)
        assert status == 0
        assert got == f"200 pid {pid}"
        assert [m.status for m in r.handle()] == [200]  # and the parent still works


@pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) not installed")
def test_stateless_example_2000_options_and_maxfwd(tmp_path: Path) -> None:
    cfg = ROOT / "examples" / "stateless" / "kamailio-ruby.cfg"
    with router(cfg, tmp_path) as r:
        res = sipp("options.xml", r.port, tmp_path, calls=2_000, rate=1_000)
        assert (res.successful, res.failed) == (2_000, 0), res.output
        hops = sipp("options_maxfwd0.xml", r.port, tmp_path, calls=20, rate=100)
        assert (hops.successful, hops.failed) == (20, 0), hops.output
        log = r.log
    # every request was logged by the script (more under load: sipp retransmits over UDP)
    assert log.count("===== request OPTIONS from 127.0.0.1") >= 2_020
    assert "Traceback" not in log and "ERROR" not in log
