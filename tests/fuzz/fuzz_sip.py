"""Coverage-guided fuzz target for the SIP layer (atheris / libFuzzer).

Contract checked on every input:

* ``parse_message``, ``frame_length``, ``parse_uri`` and ``parse_name_addr`` raise
  ``SipParseError`` and nothing else; the lazy helpers (Via, CSeq, From/To, Contact,
  R-URI) likewise;
* a message that parses serialises (``to_bytes``), parses again to the same first
  line, headers and body, and serialises to the same bytes (a fixed point);
* a URI / name-addr that parses prints to a text that parses to the same text.

Any other exception is a crash (libFuzzer writes the input to ``crash-*``); a slow
input is a hang (``-timeout``). Run it through ``nox -s fuzz`` or directly::

    python tests/fuzz/fuzz_sip.py build/fuzz/corpus tests/fuzz/corpus \\
        -dict=tests/fuzz/sip.dict -max_total_time=60 -timeout=5

The first corpus directory receives the new inputs; the seed corpus stays as is.
``TestOneInput`` is also imported by tests/fuzz/test_fuzz_corpus.py (no atheris needed).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

try:
    import atheris
except ImportError:  # the corpus replay test imports this file without atheris
    atheris = None

# instrument the SIP layer for coverage feedback only when fuzzing (not in the replay test)
_instrumented: Any = (
    atheris.instrument_imports(include=["pykemi"])
    if atheris is not None and __name__ == "__main__"
    else contextlib.nullcontext()
)
with _instrumented:
    from pykemi.runtime.sip import (
        SipParseError,
        frame_length,
        gen_to_tag,
        make_reply,
        parse_message,
        parse_name_addr,
        parse_uri,
    )

_HELPERS = ("vias", "top_via", "cseq", "from_addr", "to_addr", "contacts", "parsed_ruri")


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
