"""Linear-time regular expressions for the patterns that scripts and config files give.

Kamailio compiles these with POSIX ``regcomp(REG_EXTENDED)``. Python's ``re``
backtracks, so ``^(a|aa)+$`` against a 42-byte body runs for minutes; here
every such pattern is compiled by RE2 (``google-re2``), whose matching time
is linear in the text, and a pattern RE2 cannot compile (back-references,
look-around, more than ``MAX_MEM`` of program) is refused with an error.

Semantics follow Kamailio's regcomp flags:

- matching is on bytes (the text encoded as UTF-8, undecodable bytes kept via
  surrogateescape), leftmost-longest as POSIX; ``[[:digit:]]`` classes work;
- ``icase`` is REG_ICASE;
- ``newline`` is REG_NEWLINE: ``^``/``$`` match at every line and ``.`` and
  ``[^...]`` never match a line break. SIP lines end in CRLF, so ``$`` also
  matches before the CR of a CRLF and the CR is left out of the match;
- without ``newline``, ``.`` matches line breaks and ``^``/``$`` only match at
  the ends of the text.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import re2

from . import log as klog

CACHE_SIZE = 256  # compiled patterns kept per process (least recently used dropped)
MAX_MEM = 8 << 20  # RE2's memory budget per pattern (its default): bigger programs fail
LOG_PATTERN_MAX = 120  # characters of a refused pattern shown in the log
# One search is linear, but a global substitution searches again after each match and a
# search may read up to the end of the text (``a|a.*c`` on "aaa..."): quadratic in total.
SUBST_TIME_LIMIT = 1.0  # seconds; a substitution still running then is dropped (logged)
_CLOCK_EVERY = 64  # matches between two looks at the clock

_CR_GROUP = "_kemi_cr"  # hidden groups that consume the CR before a CRLF line end
_Span = tuple[int, int]


class RegexError(ValueError):
    """A pattern RE2 cannot compile (the message names the pattern and the reason)."""


def to_bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # lone surrogates that did not come from undecodable bytes
        return text.encode("utf-8", "surrogatepass")


def to_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


class Match:
    """One match: its groups, with the CR of a CRLF line end already left out."""

    __slots__ = ("_data", "_spans")

    def __init__(self, data: bytes, spans: list[_Span]) -> None:
        self._data = data
        self._spans = spans

    def group(self, index: int = 0) -> str | None:
        """Text of group ``index`` (0 the whole match); None when it did not take part."""
        start, end = self._spans[index]
        return None if start < 0 else to_text(self._data[start:end])

    def span(self, index: int = 0) -> _Span:
        """Byte offsets of group ``index`` in the UTF-8 text."""
        return self._spans[index]


class Regex:
    """A compiled script pattern; build with ``compile_pattern``."""

    def __init__(self, pattern: str, compiled: Any) -> None:
        self.pattern = pattern
        self._rx = compiled
        hidden = {int(i) for name, i in compiled.groupindex.items() if _is_cr_group(name)}
        self._cr = sorted(hidden)
        visible = [i for i in range(1, int(compiled.groups) + 1) if i not in hidden]
        self._index = [0, *visible]  # user group number -> RE2 group number
        self.groups = len(visible)

    def _match(self, data: bytes, m: Any) -> Match:
        spans: list[_Span] = [m.span(i) for i in self._index]
        for i in self._cr:
            cr_start, cr_end = m.span(i)
            if cr_end > cr_start:  # a CR was eaten by '$': leave it out of every span ending there
                spans = [(s, cr_start) if e == cr_end else (s, e) for s, e in spans]
        return Match(data, spans)

    def search(self, text: str) -> Match | None:
        data = to_bytes(text)
        m = self._rx.search(data)
        return None if m is None else self._match(data, m)

    def subn(self, text: str, repl: Callable[[Match], str], count: int = 0) -> tuple[str, int]:
        """Replace the first ``count`` matches (0: all) by ``repl(match)``; (text, replaced).

        Past SUBST_TIME_LIMIT the text is returned unchanged with 0 (logged).
        """
        data = to_bytes(text)
        out: list[bytes] = []
        last = n = 0
        after_cr = -1  # where the last match's '$' ate a CR: no new line end before its LF
        deadline = time.monotonic() + SUBST_TIME_LIMIT
        for m in self._rx.finditer(data):
            if n % _CLOCK_EVERY == _CLOCK_EVERY - 1 and time.monotonic() > deadline:
                klog.err(
                    f"regex: substitution with [{shown(self.pattern)}] stopped after "
                    f"{SUBST_TIME_LIMIT}s and {n} matches in {len(data)} bytes: text left unchanged"
                )
                return text, 0
            match = self._match(data, m)
            start, end = match.span()
            if start == end == after_cr:
                continue
            after_cr = m.end() if m.end() != end else -1
            out.append(data[last:start])
            out.append(to_bytes(repl(match)))
            last = end
            n += 1
            if n == count:
                break
        if not n:
            return text, 0
        out.append(data[last:])
        return to_text(b"".join(out)), n


def _is_cr_group(name: Any) -> bool:
    text = name.decode() if isinstance(name, bytes) else str(name)
    return text.startswith(_CR_GROUP)


def _bracket_end(p: str, i: int) -> int:
    """Index just after the bracket expression starting at ``p[i] == '['``."""
    j = i + 1
    if j < len(p) and p[j] == "^":
        j += 1
    if j < len(p) and p[j] == "]":
        j += 1  # a leading ']' is a literal
    while j < len(p) and p[j] != "]":
        if p.startswith("[:", j):
            close = p.find(":]", j + 2)
            j = close + 2 if close >= 0 else j + 1
        elif p[j] == "\\":
            j += 2
        else:
            j += 1
    return j + 1


def _line_mode(p: str) -> str:
    """REG_NEWLINE over CRLF text: '.' and '[^..]' stop at CR/LF, '$' eats an optional CR."""
    out: list[str] = ["(?m)"]
    i = ncr = 0
    while i < len(p):
        c = p[i]
        if c == "\\":
            out.append(p[i : i + 2])
            i += 2
        elif c == "[":
            end = _bracket_end(p, i)
            body = p[i:end]
            if body.startswith("[^"):
                rest = body[2:]
                body = "[^\\r\\n" + ("\\" + rest if rest.startswith("]") else rest)
            out.append(body)
            i = end
        elif c == ".":
            out.append("[^\\r\\n]")
            i += 1
        elif c == "$":
            out.append(f"(?P<{_CR_GROUP}{ncr}>\\r?)$")
            ncr += 1
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def escape(text: str) -> str:
    """``text`` as a pattern matching it literally."""
    return "".join(f"\\x{ord(c):02x}" if c.isascii() and not c.isalnum() else c for c in text)


@functools.lru_cache(maxsize=CACHE_SIZE)
def compile_pattern(
    pattern: str, icase: bool = True, newline: bool = True, posix: bool = True
) -> Regex:
    """Compile a script/config pattern (cached); RegexError if RE2 refuses it.

    ``posix=False`` keeps Perl's leftmost-first choice (lazy ``+?`` work), for the
    router's own patterns.
    """
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1  # bytes, as Kamailio's C strings
    options.longest_match = posix  # POSIX leftmost-longest
    options.case_sensitive = not icase
    options.dot_nl = not newline
    options.max_mem = MAX_MEM
    options.log_errors = False
    text = _line_mode(pattern) if newline else pattern
    try:
        return Regex(pattern, re2.compile(to_bytes(text), options))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = to_text(reason)
        reason = str(reason).replace(text, pattern)  # RE2 quotes our translation
        raise RegexError(f"bad regular expression [{shown(pattern)}]: {reason}") from None


def shown(pattern: str) -> str:
    """The pattern as a log line shows it (cut when long)."""
    if len(pattern) <= LOG_PATTERN_MAX:
        return pattern
    return pattern[:LOG_PATTERN_MAX] + f"...({len(pattern)} chars)"


def compile_logged(
    pattern: str, origin: str, icase: bool = True, newline: bool = True
) -> Regex | None:
    """compile_pattern for a KSR function: a refused pattern is logged and gives None."""
    try:
        return compile_pattern(pattern, icase, newline)
    except RegexError as exc:
        klog.err(str(exc), origin)
        return None
