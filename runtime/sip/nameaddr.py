"""Grammar pieces shared by the SIP parser: the error type, parameter lists,
comma/semicolon splitting that respects quotes and ``<...>``, host:port, and
name-addr (``"Display" <uri>;params``) values of From/To/Contact/Route.

These run on the hot path (From/To tags, Via), so the common case (no quotes,
no ``<``) uses ``str.split``/``str.find`` only; every path is linear in the
input (issue 13, H1), whatever a peer puts between the separators.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = [
    "NameAddr",
    "SipParseError",
    "format_params",
    "get_param",
    "parse_name_addr",
    "parse_params",
    "parse_port",
    "port_number",
    "split_host_port",
    "split_unquoted",
]


class SipParseError(ValueError):
    """A SIP message, header or URI that cannot be parsed; the text says what and where."""


# One element of a list split on SEP: runs of plain text, quoted strings (backslash escapes,
# unterminated: to the end) and <...> (unterminated: to the end), then SEP or the end. Every
# character is consumed by exactly one alternative and the tail always matches, so the
# regex never backtracks: one linear scan in C however the quotes and angles are placed
# (H1, issue 13: re-joining pieces and recounting '<' was O(n^2)).
_QUOTED_BODY = r'[^"\\]*(?:\\[\s\S][^"\\]*)*'  # unrolled: no two ways to match a text
_ELEMENT = r'((?:[^{sep}"<]+|"' + _QUOTED_BODY + r'"?|<[^>]*>?)*)({sep}|\Z)'
_SPLITTERS: dict[str, Callable[[str], list[tuple[str, str]]]] = {}
_QUOTED = re.compile('"(' + _QUOTED_BODY + ')"')
_ESCAPED = re.compile(r"\\([\s\S])")


def _splitter(sep: str) -> Callable[[str], list[tuple[str, str]]]:
    find = _SPLITTERS.get(sep)
    if find is None:
        if len(sep) != 1 or sep in '"<>\\':
            raise ValueError(f"unsupported separator {sep!r}")
        find = re.compile(_ELEMENT.format(sep=re.escape(sep))).findall
        _SPLITTERS[sep] = find
    return find


def split_unquoted(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quoted strings and ``<...>`` (pieces are not stripped).

    An unterminated quoted string or ``<`` runs to the end of the text. Linear time.
    """
    # performance: a single value (one Contact) or a plain parameter list need no scan
    if sep not in text:
        return [text]
    if '"' not in text and "<" not in text:
        return text.split(sep)
    found = _splitter(sep)(text)
    if len(found) > 1 and not found[-2][1]:
        found.pop()  # the empty match findall also reports at the very end
    return [piece for piece, _ in found]


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;a=b;flag`` into an ordered dict (flags map to None, names kept as written).

    Whatever precedes the first ``;`` is ignored, so callers pass the text from
    the first ``;`` on.
    """
    params: dict[str, str | None] = {}
    if not text:
        return params
    segments = split_unquoted(text, ";")
    for seg in segments[1:]:
        name, eq, value = seg.partition("=")
        name = name.strip(" \t")
        if name:
            params[name] = value.strip(" \t") if eq else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    """The inverse of parse_params: ``;a=b;flag``."""
    return "".join(";" + k if v is None else ";" + k + "=" + v for k, v in params.items())


def get_param(params: dict[str, str | None], name: str, default: str | None = None) -> str | None:
    """A parameter by lower-case name; parameter names are case-insensitive (RFC 3261 19.1.4).

    Returns ``default`` when absent, None for a flag parameter.
    """
    if name in params:
        return params[name]
    for k, v in params.items():
        if k.lower() == name:
            return v
    return default


def has_param(params: dict[str, str | None], name: str) -> bool:
    """True when a parameter of lower-case ``name`` is present (case-insensitive)."""
    return name in params or any(k.lower() == name for k in params)


MAX_PORT = 65535


def port_number(text: str) -> int | None:
    """``text`` as a port 1..65535 (at most 5 ASCII digits), None when it is not one."""
    if 0 < len(text) <= 5 and text.isascii() and text.isdigit():
        port = int(text)
        if 0 < port <= MAX_PORT:
            return port
    return None


def parse_port(text: str, where: str) -> int:
    """A decimal port 1..65535; ``where`` names the value in the error message.

    Checked here, at parse time, so no module ever sends to a port the OS rejects.
    """
    port = port_number(text)
    if port is None:
        if 0 < len(text) <= 5 and text.isascii() and text.isdigit():
            raise SipParseError(f"port {int(text)} out of range 1..{MAX_PORT} in {where!r}")
        raise SipParseError(f"bad port {text!r} in {where!r}")
    return port


def split_host_port(text: str, where: str) -> tuple[str, int | None]:
    """Split ``host[:port]``; an IPv6 reference keeps its brackets (``[::1]``)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"unterminated IPv6 reference in {where!r}")
        host = text[: end + 1]
        rest = text[end + 1 :]
        if not rest:
            return host, None
        if rest[0] != ":":
            raise SipParseError(f"unexpected {rest!r} after IPv6 reference in {where!r}")
        return host, parse_port(rest[1:], where)
    host, colon, port = text.partition(":")
    if not host:
        raise SipParseError(f"missing host in {where!r}")
    if not colon:
        return host, None
    return host, parse_port(port, where)


def _quote(display: str) -> str:
    return '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'


class NameAddr:
    """``"Display" <uri>;params`` (From, To, Contact, Route, ...).

    ``display`` is unquoted and unescaped (None when absent); ``params`` are the
    header parameters (``tag``, ``expires``, ...), not the URI's.
    """

    __slots__ = ("display", "params", "uri")

    def __init__(
        self, uri: str, display: str | None = None, params: dict[str, str | None] | None = None
    ) -> None:
        self.uri = uri
        self.display = display
        self.params: dict[str, str | None] = {} if params is None else params

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (From/To), None when absent."""
        return get_param(self.params, "tag")

    def __str__(self) -> str:
        # always <...>: a bare URI would make its own ;params read as header params
        addr = "<" + self.uri + ">"
        if self.display is not None:
            addr = _quote(self.display) + " " + addr
        return addr + format_params(self.params)

    def __repr__(self) -> str:
        return f"NameAddr({self.uri!r}, display={self.display!r}, params={self.params!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NameAddr):
            return NotImplemented
        return (self.uri, self.display, self.params) == (other.uri, other.display, other.params)

    __hash__ = None  # type: ignore[assignment]  # mutable


def parse_name_addr(value: str) -> NameAddr:
    """Parse a name-addr or a bare addr-spec.

    For a bare URI (no ``<...>``) everything after the first ``;`` is header
    parameters (RFC 3261 20.10), so ``sip:a@b;tag=1`` has uri ``sip:a@b``.
    """
    s = value.strip(" \t")
    if not s:
        raise SipParseError("empty name-addr")
    display: str | None = None
    if s[0] == '"' and "\\" not in s:
        # quoted display name without escapes: one find
        end = s.find('"', 1)
        if end < 0:
            raise SipParseError(f"unterminated quoted display name in {value!r}")
        display = s[1:end]
        rest = s[end + 1 :].lstrip(" \t")
        if not rest.startswith("<"):
            raise SipParseError(f"expected '<' after display name in {value!r}")
    elif s[0] == '"':
        # quoted display name with backslash escapes: one regex scan, one substitution
        quoted = _QUOTED.match(s)
        if quoted is None:
            raise SipParseError(f"unterminated quoted display name in {value!r}")
        display = _ESCAPED.sub(r"\1", quoted.group(1))
        rest = s[quoted.end() :].lstrip(" \t")
        if not rest.startswith("<"):
            raise SipParseError(f"expected '<' after display name in {value!r}")
    else:
        lt = s.find("<")
        if lt < 0:
            semi = s.find(";")
            uri = (s if semi < 0 else s[:semi]).rstrip(" \t")
            if not uri:
                raise SipParseError(f"missing URI in {value!r}")
            return NameAddr(uri, None, parse_params(s[semi:]) if semi >= 0 else {})
        if lt:
            display = s[:lt].rstrip(" \t")
        rest = s[lt:]
    gt = rest.find(">")
    if gt < 0:
        raise SipParseError(f"missing '>' in {value!r}")
    uri = rest[1:gt].strip(" \t")
    if not uri:
        raise SipParseError(f"missing URI in {value!r}")
    tail = rest[gt + 1 :].lstrip(" \t")
    if tail and tail[0] != ";":
        raise SipParseError(f"unexpected {tail!r} after '>' in {value!r}")
    return NameAddr(uri, display, parse_params(tail))
