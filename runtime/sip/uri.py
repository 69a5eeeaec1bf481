"""SIP, SIPS and tel URIs (RFC 3261 19.1, RFC 3966).

Parts are kept as written (user still %-escaped, parameter names in their
case) so ``str(parse_uri(s))`` reproduces ``s``; only the scheme is
lower-cased. As in Kamailio, a tel: URI's number is the ``user`` and its host
is empty.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from .nameaddr import (
    SipParseError,
    format_params,
    get_param,
    parse_params,
    split_host_port,
)

__all__ = ["SipUri", "parse_uri"]

_SCHEMES = frozenset(("sip", "sips", "tel"))
# characters that can never appear unescaped in a URI (whitespace, controls, delimiters of
# the surrounding header); one search per URI instead of per-part validation
_BAD_CHARS = re.compile(r'[\x00-\x20\x7f<>"]')
_HOST = re.compile(r"[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:.]+\]")


class SipUri:
    """A parsed URI; mutate the fields and ``str()`` it to rebuild the text."""

    __slots__ = ("headers", "host", "params", "password", "port", "scheme", "user")

    def __init__(
        self,
        scheme: str,
        host: str,
        *,
        user: str | None = None,
        password: str | None = None,
        port: int | None = None,
        params: dict[str, str | None] | None = None,
        headers: str | None = None,
    ) -> None:
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params: dict[str, str | None] = {} if params is None else params
        self.headers = headers  # text after '?', as written

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased; None when absent."""
        value = get_param(self.params, "transport")
        return value.lower() if value else None

    @property
    def user_unescaped(self) -> str | None:
        """The user part with %HH escapes decoded (non-UTF-8 bytes surrogate-escaped)."""
        if self.user is None:
            return None
        return unquote(self.user, errors="surrogateescape")

    def host_port(self) -> str:
        """``host:port``, or ``host`` when the URI has no port."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def address(self) -> tuple[str, int]:
        """Socket address to send to: host without IPv6 brackets, port defaulted (5060/5061)."""
        port = self.port
        if port is None:
            port = 5061 if self.scheme == "sips" or self.transport == "tls" else 5060
        host = self.host
        if host.startswith("["):
            host = host[1:-1]
        return host, port

    def __str__(self) -> str:
        if self.scheme == "tel":
            return "tel:" + (self.user or "") + format_params(self.params)
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":" + self.password)
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(":" + str(self.port))
        if self.params:
            parts.append(format_params(self.params))
        if self.headers is not None:
            parts.append("?" + self.headers)
        return "".join(parts)

    def __repr__(self) -> str:
        return f"SipUri({str(self)!r})"

    def _key(self) -> tuple[object, ...]:
        return (
            self.scheme,
            self.user,
            self.password,
            self.host,
            self.port,
            list(self.params.items()),
            self.headers,
        )

    def __eq__(self, other: object) -> bool:
        # field-wise, as written (not RFC 3261 19.1.4 equivalence)
        if not isinstance(other, SipUri):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable


def parse_uri(text: str) -> SipUri:
    """Parse a sip:/sips:/tel: URI; raises SipParseError naming the problem."""
    s = text.strip(" \t")
    colon = s.find(":")
    if colon <= 0:
        raise SipParseError(f"missing URI scheme in {text!r}")
    scheme = s[:colon].lower()
    if scheme not in _SCHEMES:
        raise SipParseError(f"unsupported URI scheme {s[:colon]!r} in {text!r}")
    bad = _BAD_CHARS.search(s)
    if bad is not None:
        raise SipParseError(f"invalid character {bad.group()!r} in URI {text!r}")
    rest = s[colon + 1 :]
    if scheme == "tel":
        semi = rest.find(";")
        number = rest if semi < 0 else rest[:semi]
        if not number:
            raise SipParseError(f"missing number in tel URI {text!r}")
        return SipUri("tel", "", user=number, params=parse_params(rest[semi:]) if semi >= 0 else {})

    user: str | None = None
    password: str | None = None
    # user-unreserved allows ';' and '?', so the userinfo ends at the first '@' (never
    # unescaped after it)
    at = rest.find("@")
    if at >= 0:
        userinfo = rest[:at]
        rest = rest[at + 1 :]
        user, colon_found, pw = userinfo.partition(":")
        if colon_found:
            password = pw
    headers: str | None = None
    q = rest.find("?")
    if q >= 0:
        headers = rest[q + 1 :]
        rest = rest[:q]
    semi = rest.find(";")
    hostport = rest if semi < 0 else rest[:semi]
    host, port = split_host_port(hostport, text)
    if _HOST.fullmatch(host) is None:
        raise SipParseError(f"bad host {host!r} in URI {text!r}")
    params = parse_params(rest[semi:]) if semi >= 0 else {}
    return SipUri(
        scheme, host, user=user, password=password, port=port, params=params, headers=headers
    )
