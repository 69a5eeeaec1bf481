"""Script regexes run in linear time (issue 13, M6): patterns that make a backtracking
engine run for minutes (``^(a|aa)+$``, ``(a*)*b``) against a 42-byte and a 100 KB body
are answered at once by a ``kemi run`` router whose Lua or Python script hands them to
textops and htable. A SIP message is at most 64 KB, so the script builds the 100 KB body
itself (set_body) when X-Size asks for it.
"""

from __future__ import annotations

import io
import socket
import time
from pathlib import Path

import pytest

from pykemi.runtime.core.log import LOG
from pykemi.runtime.core.regex import SUBST_TIME_LIMIT, RegexError, compile_pattern
from pykemi.runtime.modules import textops
from pykemi.runtime.sip.message import parse_message

from .modhelpers import make_ctx
from .test_hostile import tcp
from .test_mod_textops import with_body
from .tmharness import relay_router

pytestmark = pytest.mark.timeout(300, method="thread")
BOUND = 0.5  # seconds per request; the backtracking engine needed minutes

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=1
listen=LISTEN
#!ifdef LISTEN2
listen=LISTEN2
#!endif
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "kemix.so"
loadmodule "textops.so"
loadmodule "htable.so"
loadmodule "{module}.so"
modparam("htable", "htable", "t=>size=4;")
modparam("{module}", "load", "{script}")
cfgengine "{engine}"
"""

# every KSR function gets the pattern from X-Re; the reason phrase lists their results
LUA = """
function ksr_request_route()
    local re = KSR.pv.get("$hdr(X-Re)")
    local size = tonumber(KSR.pv.get("$hdr(X-Size)"))
    if size > 0 then
        KSR.textops.set_body(string.rep("a", size - 1) .. "!", "text/plain")
    end
    local r = {}
    r[#r + 1] = KSR.textops.search_body(re)
    r[#r + 1] = KSR.textops.search(re)
    r[#r + 1] = KSR.textops.replace_body_all(re, "x")
    r[#r + 1] = KSR.textops.subst_body("/" .. re .. "/x/g")
    r[#r + 1] = KSR.textops.search_append_body(re, "x")
    KSR.htable.sht_sets("t", "k", KSR.pv.get("$rb"))
    r[#r + 1] = KSR.htable.sht_match_str_value("t", "re", re)
    r[#r + 1] = KSR.htable.sht_match_name("t", "re", re)
    KSR.sl.send_reply(200, "R " .. #KSR.pv.get("$rb") .. " " .. table.concat(r, " "))
end
"""
PYTHON = """
import KSR


def ksr_request_route(msg):
    rx = KSR.pv.get("$hdr(X-Re)")
    size = int(KSR.pv.get("$hdr(X-Size)"))
    if size > 0:
        KSR.textops.set_body("a" * (size - 1) + "!", "text/plain")
    r = [
        KSR.textops.search_body(rx),
        KSR.textops.search(rx),
        KSR.textops.replace_body_all(rx, "x"),
        KSR.textops.subst_body("/" + rx + "/x/g"),
        KSR.textops.search_append_body(rx, "x"),
    ]
    KSR.htable.sht_sets("t", "k", KSR.pv.get("$rb"))
    r.append(KSR.htable.sht_match_str_value("t", "re", rx))
    r.append(KSR.htable.sht_match_name("t", "re", rx))
    KSR.sl.send_reply(200, f"R {len(KSR.pv.get('$rb'))} " + " ".join(str(x) for x in r))
"""
ENGINES = {"lua": ("app_lua", "s.lua", LUA), "python": ("app_python3", "s.py", PYTHON)}

# the body length, then the results for a body of 'a's ending in '!': nothing matches,
# except that '(a*)*b' finds the 'b' of "bob" in the whole message (search)
EXPECTED = {"^(a|aa)+$": "-1 -1 -1 -1 -1 -1 -1", "(a*)*b": "-1 1 -1 -1 -1 -1 -1"}


def message(n: int, pattern: str, size: int) -> bytes:
    """A request with a 42-byte body; the script makes it ``size`` bytes when that is larger."""
    body = "a" * 41 + "!"
    return (
        f"MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-re{n};rport\r\n"
        f"From: <sip:alice@127.0.0.1>;tag=re{n}\r\n"
        f"To: <sip:bob@127.0.0.1>\r\n"
        f"Call-ID: re-{n}@127.0.0.1\r\n"
        f"CSeq: 1 MESSAGE\r\n"
        f"Max-Forwards: 70\r\n"
        f"X-Re: {pattern}\r\n"
        f"X-Size: {size if size > len(body) else 0}\r\n"
        f"Content-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def exchange(sock: socket.socket, data: bytes, timeout: float) -> tuple[str | None, float]:
    """(reason phrase of the reply or None, seconds until it came)."""
    sock.settimeout(timeout)
    start = time.monotonic()
    sock.sendall(data)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return None, time.monotonic() - start
            buf += chunk
    except (TimeoutError, ConnectionError):
        return None, time.monotonic() - start
    took = time.monotonic() - start
    return parse_message(buf[: buf.index(b"\r\n\r\n") + 4]).reason, took


def write_config(tmp: Path, engine: str) -> Path:
    module, script, text = ENGINES[engine]
    (tmp / script).write_text(text, encoding="utf-8")
    cfg = tmp / "re.cfg"
    cfg.write_text(CFG.format(module=module, script=script, engine=engine), encoding="utf-8")
    return cfg


@pytest.mark.parametrize("engine", ["lua", "python"])
def test_backtracking_patterns_answer_at_once(tmp_path: Path, engine: str) -> None:
    with (
        relay_router(write_config(tmp_path, engine), tmp_path, listen="tcp") as r,
        tcp(r.port) as sock,
    ):
        exchange(sock, message(0, "warm-up", 10), 10.0)  # first call loads the script
        n = 0
        for pattern, expected in EXPECTED.items():
            for size in (42, 100_000):
                n += 1
                reason, took = exchange(sock, message(n, pattern, size), 10.0)
                assert reason == f"R {size} {expected}", (pattern, size, reason, r.log[-2000:])
                assert took < BOUND, (pattern, size, took)
        assert r.proc.poll() is None and "Traceback" not in r.log, r.log[-3000:]


# ---- the regex layer itself (runtime/core/regex.py) ------------------------------------------


def test_global_substitution_is_time_bounded() -> None:
    """Each search is linear but a global replace searches once per match; with a pattern
    that reads to the end of the text every time it is quadratic: it is stopped (logged)."""
    ctx, _ = make_ctx(with_body("x"))
    textops.set_body_bytes(ctx, b"a" * 100_000)  # larger than a SIP message may be
    log = io.StringIO()
    old, LOG.stream = LOG.stream, log
    try:
        start = time.monotonic()
        assert textops.replace_body_all(ctx, "a[^!]*c|a", "b") == -1
        took = time.monotonic() - start
    finally:
        LOG.stream = old
    assert took < SUBST_TIME_LIMIT + 1.0, took  # unbounded: ~9 s
    assert ctx.msg.body == b"a" * 100_000  # unchanged
    assert "substitution with [a[^!]*c|a] stopped" in log.getvalue()
    assert textops.replace_body_all(ctx, "a", "b") == 1  # an ordinary global replace completes
    assert ctx.msg.body == b"b" * 100_000


def test_kamailio_regex_semantics() -> None:
    text = "X-A: one\r\nX-B: two;x\r\n"
    m = compile_pattern("^x-a: (.*)$").search(text)  # icase, lines end before the CR
    assert m is not None and m.group(0) == "X-A: one" and m.group(1) == "one"
    m = compile_pattern("B: ([^;]*)").search(text)
    assert m is not None and m.group(1) == "two"
    m = compile_pattern("A: ([^x]*)").search(text)  # '[^..]' never crosses a line end
    assert m is not None and m.group(1) == "one"
    assert compile_pattern("one.X-B", newline=False).search(text) is None
    assert compile_pattern("one..X-B", newline=False).search(text) is not None  # '.' eats CRLF
    m = compile_pattern("[[:digit:]]+|[[:alpha:]]+", icase=False).search("ab12")
    assert m is not None and m.group() == "ab"
    m = compile_pattern("(a|ab)(c|bcd)", newline=False).search("abcd")  # leftmost-longest
    assert m is not None and (m.group(1), m.group(2)) == ("a", "bcd")
    rx = compile_pattern("(.*)$")
    assert rx.groups == 1  # the hidden CR group is not counted
    assert rx.subn("a\r\nb\r\n", lambda m: f"<{m.group(1)}>", 0) == ("<a>\r\n<b>\r\n<>", 3)
    m = compile_pattern("v\udcff", icase=False).search("xv\udcffy")  # undecodable bytes match
    assert m is not None and m.group() == "v\udcff"
    with pytest.raises(RegexError, match=r"bad regular expression \[\(a\)\\1\]"):
        compile_pattern("(a)\\1")  # back-references are not ERE


def test_refused_pattern_is_minus_one_with_a_log_line() -> None:
    ctx, _ = make_ctx()
    log = io.StringIO()
    old, LOG.stream = LOG.stream, log
    try:
        assert textops.search(ctx, "(a)\\1") == -1
        assert textops.subst_body(ctx, "/(?=x)/y/") == -1  # look-ahead: not supported
    finally:
        LOG.stream = old
    assert "<textops> bad regular expression [(a)\\1]" in log.getvalue()
    assert "bad regular expression [(?=x)]" in log.getvalue()
