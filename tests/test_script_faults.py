"""Script faults never take a worker down: endless loops hit the per-callback time budget
(kemi.route_time_limit), huge allocations fail inside the script (kemi.worker_memory_limit),
KSR functions called in the wrong route type fail with a log line, header text from a
script cannot add lines it did not spell out.

In-process (tests/enginehelpers.py) for the engines' behaviour; ``kemi run`` for the
config globals and the worker limits.
"""

from __future__ import annotations

import io
import socket
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pykemi.runtime.core.log import LOG
from pykemi.runtime.sip.message import parse_message

from .enginehelpers import OPTIONS, REPLY_200, InProcess, in_process, make_router
from .harness import router

# the thread method: a runaway script must not be able to block the test runner's own alarm
pytestmark = pytest.mark.timeout(120, method="thread")
LIMIT_MS = 300
LOOP = OPTIONS.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nX-Fault: loop\r\n")
ABORTED = "aborted: route time limit"


def _options(n: int, fault: bytes = b"") -> bytes:
    extra = b"X-Fault: " + fault + b"\r\n" if fault else b""
    return OPTIONS.replace(b"call-1@", f"call-{n}@".encode()).replace(
        b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\n" + extra
    )


# -- per-callback time budget ----------------------------------------------------------------

LUA_LOOPS = {
    "plain": "while true do end",
    "pcall": "while true do pcall(function() while true do end end) end",
    "nested_pcall": "pcall(function() while true do pcall(function() while true do end end) end end)",
    "string_ops": "local s = '' while true do s = (s .. 'x'):sub(1, 100) end",
    "ksr_calls": "while true do KSR.pv.get('$ru') end",
    "coroutine": "local co = coroutine.create(function() while true do end end) coroutine.resume(co)",
}
PY_LOOPS = {
    "plain": "while True:\n    pass",
    "except_exception": "while True:\n    try:\n        time.sleep(1)\n    except Exception:\n        pass",
    "sleep": "time.sleep(30)",
    "ksr_calls": "while True:\n    KSR.pv.get('$ru')",
    "generator": "def g():\n    while True:\n        yield 1\nfor _ in g():\n    pass",
}


def _lua_script(body: str) -> str:
    return (
        "function ksr_request_route()\n"
        "  if KSR.hdr.is_present('X-Fault') > 0 then\n"
        f"    {body}\n"
        "  end\n"
        "  KSR.sl.send_reply(200, 'OK')\n"
        "end\n"
    )


def _py_script(body: str) -> str:
    return (
        "import time\nimport KSR\n\n\n"
        "def ksr_request_route(msg):\n"
        "    if KSR.hdr.is_present('X-Fault') > 0:\n"
        + textwrap.indent(body, " " * 8)
        + "\n    KSR.sl.send_reply(200, 'OK')\n"
    )


def _run_budget(r: InProcess) -> None:
    r.router.engine.set_time_limit(LIMIT_MS)  # type: ignore[attr-defined]
    start = time.monotonic()
    assert r.handle(LOOP) == []  # aborted before any reply
    took = time.monotonic() - start
    assert LIMIT_MS / 1000 * 0.9 <= took < LIMIT_MS / 1000 + 1.0, took
    assert ABORTED in r.text, r.text
    # the worker goes on: the next message is routed normally
    replies = r.handle(OPTIONS)
    assert [m.status for m in replies] == [200]


@pytest.mark.parametrize("case", sorted(LUA_LOOPS))
def test_lua_endless_loop_is_aborted(tmp_path: Path, case: str) -> None:
    with in_process(tmp_path, "lua", _lua_script(LUA_LOOPS[case])) as r:
        _run_budget(r)


@pytest.mark.parametrize("case", sorted(PY_LOOPS))
def test_python_endless_loop_is_aborted(tmp_path: Path, case: str) -> None:
    with in_process(tmp_path, "python", _py_script(PY_LOOPS[case])) as r:
        _run_budget(r)


@pytest.mark.parametrize("engine", ["lua", "python"])
def test_time_limit_zero_disables_and_normal_calls_unaffected(tmp_path: Path, engine: str) -> None:
    body = "local t = os.clock() while os.clock() - t < 0.4 do end"
    if engine == "python":
        body = "time.sleep(0.4)"
    script = _lua_script(body) if engine == "lua" else _py_script(body)
    with in_process(tmp_path, engine, script) as r:
        r.router.engine.set_time_limit(0)  # type: ignore[attr-defined]
        assert [m.status for m in r.handle(LOOP)] == [200]  # 0.4 s, no budget: completes
        r.router.engine.set_time_limit(5000)  # type: ignore[attr-defined]
        assert [m.status for m in r.handle(LOOP)] == [200]  # within budget
        for _ in range(50):  # many short callbacks: no stray timer fires later
            assert [m.status for m in r.handle(OPTIONS)] == [200]
        time.sleep(0.1)
        assert ABORTED not in r.text


@pytest.mark.parametrize("engine", ["lua", "python"])
def test_nested_route_shares_the_budget(tmp_path: Path, engine: str) -> None:
    if engine == "lua":
        script = (
            "function inner() while true do end end\n"
            "function ksr_request_route()\n"
            "  KSR.route('inner')\n"
            "  while true do end\n"
            "end\n"
        )
    else:
        script = (
            "import KSR\n\n\ndef inner(msg):\n    while True:\n        pass\n\n\n"
            "def ksr_request_route(msg):\n    KSR.route('inner')\n    while True:\n        pass\n"
        )
    with in_process(tmp_path, engine, script) as r:
        r.router.engine.set_time_limit(LIMIT_MS)  # type: ignore[attr-defined]
        start = time.monotonic()
        r.handle(OPTIONS)
        assert time.monotonic() - start < LIMIT_MS / 1000 + 1.0
        assert ABORTED in r.text


# -- exceptions and huge allocations in-process --------------------------------------------

ERRORS = {
    "lua": [
        "error('boom')",
        "error({code = 1})",
        "local t = nil; t.x = 1",
        "KSR.sl.send_reply('abc', 'OK')",
        "KSR.no_such_module.fn()",
        "string.rep('x', -1):len()",
        "local t = {} for i = 1, 1e6 do t[i] = i end",
    ],
    "python": [
        "raise RuntimeError('boom')",
        "raise MemoryError()",
        "bytearray(1 << 62)",
        "KSR.sl.send_reply('abc', 'OK')",
        "KSR.no_such_module.fn()",
        "(lambda f: f(f))(lambda f: f(f))",  # RecursionError
        "raise SystemExit(3)",
        "raise KeyboardInterrupt()",
    ],
}


@pytest.mark.parametrize(
    ("engine", "body"), [(e, b) for e, bodies in ERRORS.items() for b in bodies], ids=str
)
def test_script_errors_are_logged_and_survived(tmp_path: Path, engine: str, body: str) -> None:
    if engine == "lua":
        script = _lua_script(body)
    else:
        script = _py_script(body)
    with in_process(tmp_path, engine, script) as r:
        try:
            r.handle(LOOP)
        except KeyboardInterrupt:
            pytest.xfail("KeyboardInterrupt from a script propagates (by design: it is ^C)")
        assert [m.status for m in r.handle(OPTIONS)] == [200]


# -- KSR functions in the wrong route type -------------------------------------------------

WRONG_PLACE_LUA = {
    "request": [
        "KSR.tm.t_reply(200, 'OK')",  # no transaction
        "KSR.tm.t_send_reply(200, 'OK')",
        "KSR.tm.t_release()",
        "KSR.tm.t_retransmit_reply()",
        "KSR.sl.sl_forward_reply('', '')",  # forwarding a request as a reply
        "KSR.tm.t_is_canceled()",
        "KSR.tm.t_lookup_cancel()",
    ],
    "reply": [
        "KSR.sl.send_reply(200, 'OK')",  # replying to a reply
        "KSR.sl.sl_send_reply(500, 'x')",
        "KSR.sl.sl_reply_error()",
        "KSR.tm.t_reply(200, 'OK')",
        "KSR.tm.t_relay()",
        "KSR.tm.t_newtran()",
        "KSR.tm.t_on_failure('nope')",
        "KSR.rr.record_route()",
        "KSR.rr.loose_route()",
        "KSR.maxfwd.process_maxfwd(10)",
        "KSR.hdr.append_to_reply('X: y\\r\\n')",
        "KSR.route('no_such_route')",
    ],
}


@contextmanager
def _router_with(
    tmp: Path, engine: str, script: str, modules: tuple[str, ...]
) -> Iterator[InProcess]:
    buf = io.StringIO()
    old_stream, old_level = LOG.stream, LOG.level
    LOG.stream = buf
    try:
        r = make_router(tmp, engine, script, modules)
        LOG.level = 3
        yield InProcess(r, buf)
    finally:
        LOG.stream, LOG.level = old_stream, old_level


@pytest.mark.parametrize(
    ("where", "call"),
    [(w, c) for w, calls in WRONG_PLACE_LUA.items() for c in calls],
    ids=lambda v: str(v)[:40],
)
def test_ksr_in_the_wrong_route_type(tmp_path: Path, where: str, call: str) -> None:
    req = call if where == "request" else ""
    rep = call if where == "reply" else ""
    script = (
        "function ksr_request_route()\n"
        "  if KSR.hdr.is_present('X-Fault') > 0 then\n"
        f"    KSR.info('rc=' .. tostring({req or 'nil'}) .. '\\n')\n"
        "    return\n"
        "  end\n"
        "  KSR.sl.send_reply(200, 'OK')\n"
        "end\n"
        "function ksr_reply_route()\n"
        f"  KSR.info('rc=' .. tostring({rep or 'nil'}) .. '\\n')\n"
        "end\n"
    )
    with _router_with(tmp_path, "lua", script, ("tm", "rr")) as r:
        for _ in range(3):  # repeated: no state left behind
            if where == "request":
                sent = r.handle(LOOP)
                assert all(not m.is_request or m.method != "OPTIONS" for m in sent)
            else:
                sent = r.handle(REPLY_200)
                # the reply may be forwarded statelessly, never answered
                assert all(not m.is_request and m.status == 200 for m in sent)
        assert "rc=" in r.text, r.text
        assert "Traceback" not in r.text
        assert [m.status for m in r.handle(_options(9))] == [200]


# -- header injection through script text --------------------------------------------------


def _appended(tmp: Path, text: str) -> tuple[list[tuple[str, str]], str]:
    """Headers of the 200 reply after the script passes ``text`` to hdr.append_to_reply, and
    the router log."""
    script = (
        "import KSR\n\n\ndef ksr_request_route(msg):\n"
        f"    KSR.info('rc=%d\\n' % KSR.hdr.append_to_reply({text!r}))\n"
        "    KSR.sl.send_reply(200, 'OK')\n"
    )
    with in_process(tmp, "python", script) as r:
        sent = r.handle(OPTIONS)
        return [(h.name, h.value) for m in sent for h in m.headers], r.text


@pytest.mark.parametrize("text", ["X: a\rVia: evil\r\n", "X a\r\n", "X: a\r\n\r\nbody"])
def test_hdr_text_with_stray_cr_never_reaches_the_wire(tmp_path: Path, text: str) -> None:
    headers, log = _appended(tmp_path, text)
    # either append_to_reply refuses the text or the reply is not sent: never a
    # header line the text did not spell out
    assert "rc=-1" in log or "failed to send reply" in log, log
    assert not any("evil" in v for _, v in headers)


def test_hdr_append_to_reply_refuses_bare_cr_at_once(tmp_path: Path) -> None:
    headers, log = _appended(tmp_path, "X: a\rVia: evil\r\n")
    assert "rc=-1" in log and headers


def test_hdr_append_adds_exactly_the_lines_given(tmp_path: Path) -> None:
    # Kamailio semantics: the text is one or more whole header lines, each validated; a
    # second line is the script's own choice, not an injection (values read from a
    # message never contain CR/LF: the parser splits lines and joins folded ones)
    script = (
        "function ksr_request_route()\n"
        "  KSR.info('rc=' .. KSR.hdr.append('X: a\\r\\nY: b\\r\\n') .. '\\n')\n"
        "  KSR.info('bad=' .. KSR.hdr.append('X: a\\rVia: evil\\r\\n') .. '\\n')\n"
        "  KSR.info('hdr=' .. tostring(KSR.pv.gete('$hdr(X-Fault)')) .. '\\n')\n"
        "  KSR.forward_uri('sip:127.0.0.1:5099')\n"
        "end\n"
    )
    with in_process(tmp_path, "lua", script) as r:
        sent = r.handle(OPTIONS.replace(b"Max-Forwards: 70\r\n", b"X-Fault: a\r\n b\r\n"))
        assert "rc=1" in r.text and "bad=-1" in r.text, r.text
        assert "hdr=a b" in r.text
        if sent:  # forwarded: the wire copy has exactly X and Y added, no Via: evil
            names = [h.name for h in sent[0].headers]
            assert names.count("X") == 1 and names.count("Y") == 1
            assert all("evil" not in h.value for h in sent[0].headers)


@pytest.mark.parametrize("engine", ["lua", "python"])
def test_reply_reason_with_crlf_is_refused(tmp_path: Path, engine: str) -> None:
    if engine == "lua":
        script = (
            "function ksr_request_route()\n"
            "  KSR.info('rc=' .. KSR.sl.send_reply(200, 'OK\\r\\nX: y') .. '\\n')\n"
            "  KSR.info('rc2=' .. KSR.sl.send_reply(200, 'OK\\nVia: evil') .. '\\n')\n"
            "end\n"
        )
    else:
        script = (
            "import KSR\n\n\ndef ksr_request_route(msg):\n"
            "    KSR.info('rc=%d\\n' % KSR.sl.send_reply(200, 'OK\\r\\nX: y'))\n"
            "    KSR.info('rc2=%d\\n' % KSR.sl.send_reply(200, 'OK\\nVia: evil'))\n"
        )
    with in_process(tmp_path, engine, script) as r:
        sent = r.handle(OPTIONS)
        assert sent == [], [m.to_bytes() for m in sent]
        assert "rc=-1" in r.text and "rc2=-1" in r.text, r.text


# -- through `kemi run`: the globals and the worker limits ---------------------------------

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=1
listen=LISTEN
kemi.route_time_limit={limit}
kemi.worker_memory_limit={mem}
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "kemix.so"
loadmodule "{module}.so"
modparam("{module}", "load", "{script}")
cfgengine "{engine}"
"""

ALLOC_BODY = {
    # 2 GB in 1 MB pieces (string.rep's count is a C int in lupa's Lua 5.1: 2^31 gives "")
    "lua": "local s = string.rep(string.rep('x', 1024 * 1024), 2048)",
    "python": "s = b'x' * (2 * 1024 * 1024 * 1024)",
}


def _write(tmp: Path, engine: str, body: str, limit: int, mem: int) -> Path:
    if engine == "lua":
        (tmp / "s.lua").write_text(_lua_script(body))
        module, script = "app_lua", "s.lua"
    else:
        (tmp / "s.py").write_text(_py_script(body))
        module, script = "app_python3", "s.py"
    cfg = tmp / "k.cfg"
    cfg.write_text(CFG.format(limit=limit, mem=mem, module=module, script=script, engine=engine))
    return cfg


def _ask(port: int, data: bytes, timeout: float = 3.0) -> int | None:
    """Send one datagram; the status of the reply, None if none came."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        s.sendto(data, ("127.0.0.1", port))
        try:
            reply, _ = s.recvfrom(65535)
        except TimeoutError:
            return None
    return parse_message(reply).status


@pytest.mark.parametrize("engine", ["lua", "python"])
def test_kemi_run_route_time_limit(tmp_path: Path, engine: str) -> None:
    body = LUA_LOOPS["plain"] if engine == "lua" else PY_LOOPS["plain"]
    cfg = _write(tmp_path, engine, body, 250, 0)
    with router(cfg, tmp_path) as rr:
        assert _ask(rr.port, _options(1, b"loop"), timeout=1.5) is None
        assert _ask(rr.port, _options(2)) == 200  # the same worker answers again
        assert ABORTED in rr.log
        assert "exited with status" not in rr.log  # no worker restart was needed


@pytest.mark.parametrize("engine", ["lua", "python"])
def test_kemi_run_worker_memory_limit(tmp_path: Path, engine: str) -> None:
    cfg = _write(tmp_path, engine, ALLOC_BODY[engine], 5000, 512)
    with router(cfg, tmp_path) as rr:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(_options(1, b"alloc"), ("127.0.0.1", rr.port))
        deadline = time.monotonic() + 30
        while "memory" not in rr.log.lower() and time.monotonic() < deadline:
            time.sleep(0.1)  # MemoryError (Python) / not enough memory (Lua) in the log
        assert "memory" in rr.log.lower(), rr.log
        assert _ask(rr.port, _options(2)) == 200
        assert "exited with status" not in rr.log


STUCK = {
    # engines without an in-VM budget; the watchdog is their bound
    "jsdt": (
        "kamailio.js",
        "function ksr_request_route() {\n"
        "  if (KSR.hdr.is_present('X-Fault') > 0) { while (true) {} }\n"
        "  KSR.sl.send_reply(200, 'OK');\n"
        "}\n",
    ),
    "ruby": (
        "kamailio.rb",
        "def ksr_request_route\n"
        "  if KSR::HDR.is_present('X-Fault') > 0\n"
        "    loop do\n"
        "      begin\n"
        "        loop {}\n"
        "      rescue Exception\n"
        "      end\n"
        "    end\n"
        "  end\n"
        "  KSR::SL.send_reply(200, 'OK')\n"
        "end\n",
    ),
    "sqlang": (
        "kamailio.nut",
        "function ksr_request_route() {\n"
        '  if (KSR.hdr.is_present("X-Fault") > 0) { while (true) {} }\n'
        '  KSR.sl.send_reply(200, "OK");\n'
        "}\n",
    ),
    # a budget exists but is switched off: the watchdog is the backstop
    "lua": ("kamailio.lua", _lua_script(LUA_LOOPS["plain"])),
}


@pytest.mark.parametrize("engine", sorted(STUCK))
def test_kemi_run_watchdog_restarts_a_stuck_worker(tmp_path: Path, engine: str) -> None:
    name, script = STUCK[engine]
    (tmp_path / name).write_text(script)
    module = "app_" + engine
    cfg = tmp_path / "k.cfg"
    cfg.write_text(
        CFG.format(limit=0, mem=0, module=module, script=name, engine=engine)
        + "kemi.worker_watchdog=1000\n"
    )
    with router(cfg, tmp_path) as rr:
        start = time.monotonic()
        assert _ask(rr.port, _options(1, b"loop"), timeout=0.5) is None
        deadline = time.monotonic() + 15
        while "restarting" not in rr.log and time.monotonic() < deadline:
            time.sleep(0.1)
        took = time.monotonic() - start
        log = rr.log
        assert "stuck: one batch of messages has been running for" in log, log
        assert "kemi.worker_watchdog=1000 ms" in log and "restarting" in log, log
        assert 1.0 <= took < 6.0, took
        status = None
        for n in range(2, 40):  # the restarted worker answers (after its child_init)
            status = _ask(rr.port, _options(n), timeout=0.5)
            if status is not None:
                break
        assert status == 200
        assert log.count("stuck:") == 1  # the restarted worker is not taken for stuck


def test_kemi_run_memory_limit_below_worker_size_is_refused(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "lua", "", 2000, 4)
    with router(cfg, tmp_path) as rr:
        assert _ask(rr.port, _options(1)) == 200
        assert "limit not applied" in rr.log
