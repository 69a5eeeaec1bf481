"""Kamailio-style cfg reader: any input gives a Config or a ConfigError, quickly."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import given, settings
from hypothesis import strategies as st

from pykemi.runtime.config import Config, ConfigError, parse_config_text

# fragments that steer random text into the interesting parts of the grammar
FRAGMENTS = [
    "#!define ",
    "#!ifdef ",
    "#!ifndef ",
    "#!else",
    "#!endif",
    "#!undef ",
    "#!trydef ",
    "#!redefine ",
    "#!subst ",
    "#!substdef ",
    "#!include_file ",
    "include_file ",
    "import_file ",
    "#!defenv ",
    "!!define ",
    "#!KAMAILIO",
    "loadmodule ",
    "modparam(",
    "cfgengine ",
    "listen=",
    "alias=",
    "debug=",
    "children=",
    "kemi.onsend_route_callback=",
    "request_route {",
    "route[X] {",
    "event_route[a:b] {",
    "}",
    "{",
    "(",
    ")",
    "[",
    "]",
    '"',
    "'",
    "\\",
    "/*",
    "*/",
    "//",
    "#",
    ";",
    ",",
    ":",
    ".",
    "=",
    "-",
    "0x",
    "udp:",
    "tcp:[::1]",
    "127.0.0.1",
    ":5060",
    " advertise ",
    " name ",
    "A",
    "B",
    '"/a/b/g"',
    '"sl.so"',
    '"lua"',
    '"native"',
    "yes",
    "no",
    "42",
    "\n",
    " ",
    "\t",
    "é",
    "\x00",
]

cfg_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=60).map(
    "".join
)


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    def fail(signum: int, frame: object) -> None:
        raise AssertionError(f"parser did not finish within {seconds}s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def check(text: str) -> None:
    with deadline(5):
        try:
            cfg = parse_config_text(text, "fuzz.cfg", defines={"A": "1"})
        except ConfigError as exc:
            assert str(exc).startswith(f"{exc.file}:{exc.line}: ")
            assert exc.file in ("fuzz.cfg", "<command line>")
        else:
            assert isinstance(cfg, Config)


@settings(max_examples=600, deadline=None)
@given(cfg_text)
def test_structured_noise(text: str) -> None:
    check(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    check(text)
