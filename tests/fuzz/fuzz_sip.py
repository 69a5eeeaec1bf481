"""Coverage-guided fuzz target for the SIP layer (atheris / libFuzzer).

Contract checked on every input:

* ``parse_message``, ``frame_length``, ``parse_uri`` and ``parse_name_addr`` raise
  ``SipParseError`` and nothing else; the lazy helpers (Via, CSeq, From/To, Contact,
  R-URI) likewise;
* a message that parses serialises (``to_bytes``), parses again to the same first
  line, headers and body, and serialises to the same bytes (a fixed point);
* a URI / name-addr that parses prints to a text that parses to the same text.

* parsing plus the hot accessors the router calls on every message (``HOT_ACCESSORS``)
  takes at most ``PARSE_BUDGET`` (50 ms) per input, timed twice so one scheduler hiccup
  is not a failure: a super-linear parser path shows up as a crash long before it is a
  hang. Under atheris the budget is scaled by ``INSTRUMENTED_SLOWDOWN``: coverage
  instrumentation makes the same linear parse several times slower; the corpus replay
  (tests/fuzz/test_fuzz_corpus.py, not instrumented) holds every seed to the plain 50 ms.

Any other exception is a crash (libFuzzer writes the input to ``crash-*``); an input
slower than ``-timeout`` is a hang. Run it through ``nox -s fuzz`` or directly::

    python tests/fuzz/fuzz_sip.py build/fuzz/corpus tests/fuzz/corpus \\
        -dict=tests/fuzz/sip.dict -max_total_time=60 -timeout=5

The first corpus directory receives the new inputs; the seed corpus stays as is.
``TestOneInput`` is also imported by tests/fuzz/test_fuzz_corpus.py (no atheris needed).
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

try:
    import atheris
except ImportError:  # the corpus replay test imports this file without atheris
    atheris = None

# instrument the SIP layer for coverage feedback only when fuzzing (not in the replay test)
_INSTRUMENTED = atheris is not None and __name__ == "__main__"
_instrumented: Any = (
    atheris.instrument_imports(include=["pykemi"]) if _INSTRUMENTED else contextlib.nullcontext()
)
with _instrumented:
    from pykemi.runtime.sip import (
        MAX_MESSAGE_SIZE,
        SipParseError,
        frame_length,
        gen_to_tag,
        make_reply,
        parse_message,
        parse_name_addr,
        parse_uri,
    )

_HELPERS = ("vias", "top_via", "cseq", "from_addr", "to_addr", "contacts", "parsed_ruri")
# what the router reads from every message it handles (replies need the top Via, tm the tags)
HOT_ACCESSORS = (
    "top_via", "vias", "from_tag", "to_tag", "from_uri", "to_uri", "contacts", "call_id", "cseq",
    "parsed_ruri",
)  # fmt: skip
PARSE_BUDGET = 0.050  # seconds for one input of up to MAX_MESSAGE_SIZE bytes (issue 13, H1)
# atheris's instrumentation slows parsing ~6x (corpus/linear_64k_via_params.sip: 8.5 ms plain,
# 51 ms instrumented); a quadratic path costs seconds for 64 KB, far above either budget
INSTRUMENTED_SLOWDOWN = 8

# H1 (issue 13): one unmatched '<' before many separators made parameter splitting O(n^2).
# name -> (header text up to the filler, filler byte); seeds in corpus/h1_*.sip
H1_SHAPES: dict[str, tuple[bytes, bytes]] = {
    "via_semicolons": (b"Via: SIP/2.0/UDP 1.2.3.4;<", b";"),
    "via_commas": (b"Via: SIP/2.0/UDP 1.2.3.4;<", b","),
    "contact_commas": (b"Contact: <", b","),
    "contact_params": (b"Contact: <sip:a@b>;<", b";"),
    "from_params": (b"From: <sip:a@b>;<", b";"),
    "to_bare_params": (b"To: sip:a@b;<", b";"),
    "via_quote": (b'Via: SIP/2.0/UDP 1.2.3.4;x="', b";"),
    "contact_quote_commas": (b'Contact: "', b","),
}


def filled_message(header: bytes, filler: bytes, size: int) -> bytes:
    """An OPTIONS of about ``size`` bytes: ``header`` then ``filler`` repeated to fill it."""
    head = b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\nCall-ID: h1\r\n" + header
    return head + filler * ((size - len(head) - 4) // len(filler)) + b"\r\n\r\n"


def h1_message(shape: str, size: int = MAX_MESSAGE_SIZE) -> bytes:
    """An OPTIONS of ``size`` bytes whose ``shape`` header (H1_SHAPES) fills the rest."""
    return filled_message(*H1_SHAPES[shape], size)


def parse_and_touch(data: bytes) -> None:
    """Parse and read every hot accessor; SipParseError anywhere is an allowed outcome."""
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    for attr in HOT_ACCESSORS:
        try:
            getattr(msg, attr)
        except SipParseError:
            pass


def parse_seconds(data: bytes) -> float:
    """CPU time of ``parse_and_touch(data)`` (CPU, not wall: other processes do not count)."""
    start = time.process_time()
    parse_and_touch(data)
    return time.process_time() - start


def _budget() -> float:
    return PARSE_BUDGET * (INSTRUMENTED_SLOWDOWN if _INSTRUMENTED else 1)


def _check_time(data: bytes) -> None:
    budget = _budget()
    if parse_seconds(data) <= budget:
        return
    elapsed = parse_seconds(data)  # again: one scheduler hiccup is not a finding
    assert elapsed <= budget, (
        f"slow input: {elapsed * 1000:.0f} ms to parse {len(data)} bytes and read the hot "
        f"accessors (budget {budget * 1000:.0f} ms): a super-linear parser path?"
    )


def _check_uri(text: str) -> None:
    try:
        uri = parse_uri(text)
    except SipParseError:
        return
    printed = str(uri)
    again = parse_uri(printed)
    assert str(again) == printed, (text, printed, str(again))


def _check_name_addr(text: str) -> None:
    try:
        na = parse_name_addr(text)
    except SipParseError:
        return
    _check_uri(na.uri)


def _check_message(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    for attr in _HELPERS:
        try:
            getattr(msg, attr)
        except SipParseError:
            pass
    for key in ("from", "to"):
        value = msg.get(key)
        if value is not None:
            _check_name_addr(value)
    if msg.is_request:
        _check_uri(msg.ruri)
        try:
            gen_to_tag(msg)
            make_reply(msg, 200, "OK").to_bytes()
        except SipParseError:
            pass
    out = msg.to_bytes()
    again = parse_message(out)
    assert again.first_line == msg.first_line, (msg.first_line, again.first_line)
    assert [(h.name, h.value) for h in again.headers if h.key != "content-length"] == [
        (h.name, h.value) for h in msg.headers if h.key != "content-length"
    ], "headers changed in the round trip"
    assert again.body == msg.body, "body changed in the round trip"
    assert again.to_bytes() == out, "serialisation is not a fixed point"


def TestOneInput(data: bytes) -> None:
    """One fuzz input: the whole buffer as a message and a stream; its text as URI/name-addr."""
    _check_time(data)
    _check_message(data)
    try:
        n = frame_length(data)
    except SipParseError:
        n = None
    if n is not None:
        assert 0 < n <= len(data), (n, len(data))
        _check_message(data[:n])
    if len(data) <= 4096:
        text = data.decode("utf-8", "surrogateescape")
        _check_uri(text)
        _check_name_addr(text)


def main(argv: list[str]) -> None:
    if atheris is None:
        raise SystemExit("atheris is not installed: pip install atheris")
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
