"""SIP message parsing and serialisation (RFC 3261 7, 20).

``parse_message`` does the work every message needs at once (first line,
header split, Content-Length, body) and nothing more: Via, CSeq, From/To and
Contact values are parsed on first use and cached on the message until a
header is changed through its methods. Header lookups compare a key computed
once per header at parse time (see ``headers.header_key``), so no per-lookup
lower-casing and no regular expression runs per header on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from .headers import header_key, is_token
from .nameaddr import (
    NameAddr,
    SipParseError,
    format_params,
    get_param,
    has_param,
    parse_name_addr,
    parse_params,
    port_number,
    split_host_port,
    split_unquoted,
)
from .uri import SipUri, parse_uri

__all__ = [
    "MAX_HEADERS",
    "MAX_MESSAGE_SIZE",
    "Header",
    "NameAddr",
    "SipMessage",
    "SipParseError",
    "Via",
    "frame_length",
    "parse_message",
    "parse_name_addr",
    "parse_via",
]

MAX_MESSAGE_SIZE = 65536
MAX_HEADERS = 1000
SIP_VERSION = "SIP/2.0"

# header names already validated as tokens -> key; keeps the token regex off the hot path.
# Separate from headers.header_key's cache, which also sees unvalidated names from lookups.
_VALID_NAMES: dict[str, str] = {}
_VALID_NAMES_MAX = 4096


class Header:
    """One header line: ``name`` as written, ``value`` stripped (folded lines joined by one space).

    ``key`` is the lookup key (lower-case full name). Changing ``name`` or
    ``value`` directly bypasses the message's cached parsed helpers; use the
    SipMessage methods or call ``SipMessage.invalidate()``.
    """

    __slots__ = ("key", "name", "value")

    def __init__(self, name: str, value: str, key: str | None = None) -> None:
        self.name = name
        self.value = value
        self.key = header_key(name) if key is None else key

    def __str__(self) -> str:
        return self.name + ": " + self.value

    def __repr__(self) -> str:
        return f"Header({self.name!r}, {self.value!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Header):
            return NotImplemented
        return self.name == other.name and self.value == other.value

    __hash__ = None  # type: ignore[assignment]  # mutable


class Via:
    """One Via value (a Via header line may carry several, comma-separated)."""

    __slots__ = ("host", "params", "port", "protocol")

    def __init__(
        self,
        protocol: str,
        host: str,
        port: int | None = None,
        params: dict[str, str | None] | None = None,
    ) -> None:
        self.protocol = protocol  # "SIP/2.0/UDP"
        self.host = host  # IPv6 keeps its brackets
        self.port = port
        self.params: dict[str, str | None] = {} if params is None else params

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse a single via-parm (``SIP/2.0/UDP host:port;params``)."""
        s = text.strip(" \t")
        semi = s.find(";")
        head = s if semi < 0 else s[:semi]
        parts = head.split("/", 2)
        if len(parts) != 3:
            raise SipParseError(f"bad Via sent-protocol in {text!r}")
        # LWS is allowed around '/' and ':' (RFC 3261 25.1), hence split() and replace()
        rest = parts[2].split(None, 1)
        if len(rest) != 2:
            raise SipParseError(f"missing sent-by in Via {text!r}")
        name = parts[0].strip()
        version = parts[1].strip()
        if not (name and version and rest[0]):
            raise SipParseError(f"bad Via sent-protocol in {text!r}")
        sent_by = rest[1].strip()
        if " " in sent_by or "\t" in sent_by:
            sent_by = sent_by.replace(" ", "").replace("\t", "")
        host, port = split_host_port(sent_by, text)
        protocol = name.upper() + "/" + version + "/" + rest[0].upper()
        return cls(protocol, host, port, parse_params(s[semi:]) if semi >= 0 else {})

    @property
    def transport(self) -> str:
        """``UDP``, ``TCP``, ``TLS``, ``WS``, ..."""
        return self.protocol[self.protocol.rfind("/") + 1 :]

    @property
    def branch(self) -> str | None:
        return get_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return get_param(self.params, "received")

    @property
    def rport(self) -> str | None:
        """None when absent; the port digits; "" when present without a usable value.

        "" is an RFC 3581 request (no value) or a value that is not a port 1..65535,
        which is ignored as Kamailio does (the Via port is used): so a non-empty result
        always converts with ``int`` to a port the OS accepts (issue 13, L4).
        """
        if not has_param(self.params, "rport"):
            return None
        value = get_param(self.params, "rport")
        return value if value and port_number(value) is not None else ""

    def sent_by(self) -> str:
        """``host[:port]`` as it appears in the Via."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.protocol + " " + self.sent_by() + format_params(self.params)

    def __repr__(self) -> str:
        return f"Via({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Via):
            return NotImplemented
        return (self.protocol, self.host, self.port, list(self.params.items())) == (
            other.protocol,
            other.host,
            other.port,
            list(other.params.items()),
        )

    __hash__ = None  # type: ignore[assignment]  # mutable


def _split_list(value: str) -> list[str]:
    # comma-separated header values; empty elements are tolerated and dropped
    return [p for p in (x.strip(" \t") for x in split_unquoted(value, ",")) if p]


def parse_via(value: str) -> list[Via]:
    """All via-parms of one Via header value, in order."""
    items = _split_list(value)
    if not items:
        raise SipParseError("empty Via header")
    return [Via.parse(item) for item in items]


def _check_header(name: str, value: str) -> None:
    # header injection guard: a CR/LF in a value would start a new header on the wire
    # (performance: a name in _VALID_NAMES was already checked; skip the regex)
    if name not in _VALID_NAMES and not is_token(name):
        raise ValueError(f"bad header name {name!r}")
    if "\n" in value or "\r" in value:
        raise ValueError(f"header value contains CR/LF: {value!r}")


class SipMessage:
    """A SIP request or reply.

    ``headers`` may be read freely; after changing it or a Header in place
    (instead of through the methods here) call ``invalidate()`` so the parsed
    helpers (``vias``, ``cseq``, ``from_tag``, ...) are recomputed. The values
    those helpers return are shared with the cache: treat them as read-only.
    Helpers raise SipParseError when their header is present but malformed.
    """

    __slots__ = (
        "_cache",
        "_ruri",
        "body",
        "headers",
        "is_request",
        "method",
        "reason",
        "status",
        "version",
    )

    def __init__(
        self,
        *,
        method: str = "",
        ruri: str = "",
        status: int = 0,
        reason: str = "",
        version: str = SIP_VERSION,
        headers: list[Header] | None = None,
        body: bytes = b"",
    ) -> None:
        self.is_request = status == 0
        self.method = method
        self._ruri = ruri
        self.status = status
        self.reason = reason
        self.version = version
        self.headers: list[Header] = [] if headers is None else headers
        self.body = body
        self._cache: dict[str, Any] = {}

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def request(
        cls, method: str, ruri: str, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> SipMessage:
        """A new request (headers validated like append_header)."""
        msg = cls(method=method, ruri=ruri, body=body)
        for name, value in headers:
            msg.append_header(name, value)
        return msg

    @classmethod
    def reply(
        cls, status: int, reason: str, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> SipMessage:
        """A new reply (headers validated like append_header)."""
        if not 100 <= status <= 699:
            raise ValueError(f"bad status code {status}")
        msg = cls(status=status, reason=reason, body=body)
        for name, value in headers:
            msg.append_header(name, value)
        return msg

    def copy(self) -> SipMessage:
        """An independent copy (new Header objects; the body bytes are immutable anyway)."""
        return SipMessage(
            method=self.method,
            ruri=self._ruri,
            status=self.status,
            reason=self.reason,
            version=self.version,
            headers=[Header(h.name, h.value, h.key) for h in self.headers],
            body=self.body,
        )

    # -- first line ---------------------------------------------------------------------------

    @property
    def ruri(self) -> str:
        """The Request-URI as received (or as set); "" for replies."""
        return self._ruri

    @ruri.setter
    def ruri(self, value: str) -> None:
        self._ruri = value
        self._cache.pop("ruri", None)

    @property
    def first_line(self) -> str:
        if self.is_request:
            return f"{self.method} {self._ruri} {self.version}"
        return f"{self.version} {self.status} {self.reason}"

    # -- headers ------------------------------------------------------------------------------

    def get(self, name: str) -> str | None:
        """The first header's value (names case-insensitive, compact forms equivalent)."""
        key = header_key(name)
        for h in self.headers:
            if h.key == key:
                return h.value
        return None

    def get_all(self, name: str) -> list[str]:
        """Every header line's value, in order (comma-separated values are not split)."""
        key = header_key(name)
        return [h.value for h in self.headers if h.key == key]

    def has(self, name: str) -> bool:
        key = header_key(name)
        return any(h.key == key for h in self.headers)

    def count(self, name: str) -> int:
        key = header_key(name)
        return sum(1 for h in self.headers if h.key == key)

    def append_header(self, name: str, value: str) -> None:
        """Add a header at the end (ValueError for a non-token name or a CR/LF in the value)."""
        _check_header(name, value)
        self.headers.append(Header(name, value))
        self.invalidate()

    def insert_header(self, name: str, value: str) -> None:
        """Add a header at the top."""
        _check_header(name, value)
        self.headers.insert(0, Header(name, value))
        self.invalidate()

    def remove_header(self, name: str) -> int:
        """Remove every occurrence; returns how many were removed."""
        key = header_key(name)
        kept = [h for h in self.headers if h.key != key]
        removed = len(self.headers) - len(kept)
        if removed:
            self.headers[:] = kept  # same list object: callers may hold a reference
            self.invalidate()
        return removed

    def set_header(self, name: str, value: str) -> None:
        """Replace the first occurrence in place (name as given now), else append."""
        _check_header(name, value)
        key = header_key(name)
        headers = self.headers
        for i, h in enumerate(headers):
            if h.key == key:
                headers[i] = Header(name, value, key)
                break
        else:
            headers.append(Header(name, value, key))
        self.invalidate()

    def invalidate(self) -> None:
        """Drop the cached parsed helpers (call after changing ``headers`` directly)."""
        if self._cache:
            ruri = self._cache.get("ruri")
            self._cache.clear()
            if ruri is not None:
                self._cache["ruri"] = ruri  # depends on the first line only

    # -- Via manipulation (proxying) ----------------------------------------------------------

    def remove_top_via(self) -> Via | None:
        """Remove the topmost via-parm (and its header line when it was the only one)."""
        for i, h in enumerate(self.headers):
            if h.key == "via":
                items = _split_list(h.value)
                if not items:
                    continue
                if len(items) == 1:
                    del self.headers[i]
                else:
                    self.headers[i] = Header(h.name, ", ".join(items[1:]), h.key)
                self.invalidate()
                return Via.parse(items[0])
        return None

    def replace_top_via(self, via: Via) -> None:
        """Rewrite the topmost via-parm (e.g. after adding received/rport); ValueError if none."""
        for i, h in enumerate(self.headers):
            if h.key == "via":
                items = _split_list(h.value)
                if not items:
                    continue
                items[0] = str(via)
                self.headers[i] = Header(h.name, ", ".join(items), h.key)
                self.invalidate()
                return
        raise ValueError("message has no Via")

    # -- parsed helpers (cached) --------------------------------------------------------------

    @property
    def call_id(self) -> str | None:
        return self.get("call-id")

    @property
    def cseq(self) -> tuple[int, str] | None:
        """(number, method) from CSeq; None when absent."""
        cache = self._cache
        if "cseq" not in cache:
            value = self.get("cseq")
            if value is None:
                cache["cseq"] = None
            else:
                parts = value.split()
                if (
                    len(parts) != 2
                    or not (parts[0].isascii() and parts[0].isdigit())
                    or len(parts[0]) > 10
                    or int(parts[0]) > 0x7FFFFFFF
                ):
                    raise SipParseError(f"bad CSeq {value!r}")
                cache["cseq"] = (int(parts[0]), parts[1])
        return cast("tuple[int, str] | None", cache["cseq"])

    def _name_addr(self, key: str) -> NameAddr | None:
        cache = self._cache
        if key not in cache:
            value = self.get(key)
            cache[key] = None if value is None else parse_name_addr(value)
        return cast("NameAddr | None", cache[key])

    @property
    def from_addr(self) -> NameAddr | None:
        """The parsed From header."""
        return self._name_addr("from")

    @property
    def to_addr(self) -> NameAddr | None:
        """The parsed To header."""
        return self._name_addr("to")

    @property
    def from_tag(self) -> str | None:
        na = self._name_addr("from")
        return None if na is None else na.tag

    @property
    def to_tag(self) -> str | None:
        na = self._name_addr("to")
        return None if na is None else na.tag

    @property
    def from_uri(self) -> str | None:
        na = self._name_addr("from")
        return None if na is None else na.uri

    @property
    def to_uri(self) -> str | None:
        na = self._name_addr("to")
        return None if na is None else na.uri

    @property
    def vias(self) -> list[Via]:
        """Every via-parm of every Via header, top first."""
        cache = self._cache
        vias = cache.get("vias")
        if vias is None:
            vias = []
            for h in self.headers:
                if h.key == "via":
                    vias.extend(parse_via(h.value))
            cache["vias"] = vias
        return cast("list[Via]", vias)

    @property
    def top_via(self) -> Via | None:
        cache = self._cache
        if "top_via" not in cache:
            vias = cache.get("vias")
            if vias is not None:
                top = vias[0] if vias else None
            else:
                # only the first element: the common case needs no full Via parse
                top = None
                for h in self.headers:
                    if h.key == "via":
                        v = h.value
                        if "," not in v and '"' not in v:
                            # performance: one via-parm, nothing to split (same result)
                            v = v.strip(" \t")
                            items = [v] if v else []
                        else:
                            items = _split_list(v)
                        if items:
                            top = Via.parse(items[0])
                            break
            cache["top_via"] = top
        return cast("Via | None", cache["top_via"])

    @property
    def contacts(self) -> list[NameAddr]:
        """Every Contact value (``*`` comes back as a NameAddr with uri ``*``)."""
        cache = self._cache
        contacts = cache.get("contacts")
        if contacts is None:
            contacts = []
            for h in self.headers:
                if h.key == "contact":
                    contacts.extend(parse_name_addr(v) for v in _split_list(h.value))
            cache["contacts"] = contacts
        return cast("list[NameAddr]", contacts)

    @property
    def contact_uris(self) -> list[str]:
        return [c.uri for c in self.contacts]

    @property
    def parsed_ruri(self) -> SipUri:
        """The Request-URI parsed (cached until ``ruri`` is set); SipParseError for replies."""
        cache = self._cache
        uri = cache.get("ruri")
        if uri is None:
            if not self.is_request:
                raise SipParseError("a reply has no Request-URI")
            uri = cache["ruri"] = parse_uri(self._ruri)
        return cast(SipUri, uri)

    # -- output -------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Serialise with CRLF line ends; Content-Length always matches the body.

        An existing Content-Length keeps its place and spelling (duplicates are
        dropped); without one, ``Content-Length`` is added last.
        """
        body = self.body
        lines = [self.first_line]
        cl_written = False
        for h in self.headers:
            if h.key == "content-length":
                if not cl_written:
                    lines.append(h.name + ": " + str(len(body)))
                    cl_written = True
            else:
                lines.append(h.name + ": " + h.value)
        if not cl_written:
            lines.append("Content-Length: " + str(len(body)))
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def __repr__(self) -> str:
        return f"<SipMessage {self.first_line!r} headers={len(self.headers)} body={len(self.body)}>"


# -- parsing ---------------------------------------------------------------------------------


def _parse_first_line(line: str) -> tuple[str, str, int, str, str]:
    """(method, ruri, status, reason, version) of the start line."""
    if line[:4].upper() == "SIP/":
        parts = line.split(" ", 2)
        if parts[0].upper() != SIP_VERSION:
            raise SipParseError(f"line 1: unsupported SIP version {parts[0]!r}")
        if len(parts) < 2 or not parts[1]:
            raise SipParseError(f"line 1: missing status code: {line!r}")
        code = parts[1]
        if not (len(code) == 3 and code.isascii() and code.isdigit()) or not (
            "1" <= code[0] <= "6"
        ):
            raise SipParseError(f"line 1: bad status code {code!r}")
        return "", "", int(code), parts[2] if len(parts) == 3 else "", SIP_VERSION
    parts = line.split(" ")
    if len(parts) < 3:
        raise SipParseError(
            f"line 1: incomplete request line (expected 'METHOD Request-URI SIP/2.0'): {line!r}"
        )
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise SipParseError(f"line 1: malformed request line: {line!r}")
    method, ruri, version = parts
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"line 1: unsupported SIP version {version!r}")
    if not is_token(method):
        raise SipParseError(f"line 1: bad method {method!r}")
    return method, ruri, 0, "", SIP_VERSION


def _content_length(headers: list[Header]) -> int | None:
    length: int | None = None
    for h in headers:
        if h.key == "content-length":
            v = h.value
            if not (v.isascii() and v.isdigit()) or len(v) > 10:
                raise SipParseError(f"bad Content-Length {v!r}")
            n = int(v)
            if length is not None and n != length:
                # conflicting lengths would let two parsers frame the stream differently
                raise SipParseError(f"conflicting Content-Length values {length} and {n}")
            length = n
    return length


def _find_head_end(data: bytes) -> tuple[int, int]:
    """(end of the header block, start of the body); (-1, -1) when there is no empty line."""
    crlf = data.find(b"\n\r\n")
    # a bare-LF empty line before the CRLF one wins; search only up to it
    lf = data.find(b"\n\n", 0, crlf + 1 if crlf >= 0 else len(data))
    if lf >= 0:
        return lf, lf + 2
    if crlf >= 0:
        return crlf, crlf + 3
    return -1, -1


def _check_no_cr(line: str, lineno: int) -> None:
    # L5 (issue 13): a CR not followed by LF ends the line for some parsers and not for
    # others; kept in a value and forwarded it could smuggle a header past us. RFC 3261 allows
    # CR only in CRLF, so the message is rejected (a lone LF is a line end, as in Kamailio).
    if "\r" in line:
        raise SipParseError(f"line {lineno}: bare CR (no LF after it) in {line!r}")


def _headers_fast(text: str, nlines: int) -> list[Header] | None:
    """Headers of the usual message, or None to take the line-by-line loop (performance).

    Usual: CRLF line ends only, no folded lines, every header name already validated
    (``_VALID_NAMES``). Then one ``partition`` per line does what the loop does; the
    result is identical, and any other message goes through ``_headers_by_line``.
    """
    if text[-1:] == "\r":
        text = text[:-1]
    if "\n " in text or "\n\t" in text:
        return None  # folded lines
    lines = text.split("\r\n")
    if len(lines) != nlines or text.count("\r") != nlines - 1:
        return None  # a bare LF (a line end) or a bare CR (an error) somewhere
    valid_names = _VALID_NAMES
    headers: list[Header] = []
    append = headers.append
    for i in range(1, nlines):
        name, colon, value = lines[i].partition(":")
        key = valid_names.get(name)
        if key is None or not colon:
            return None  # new or invalid name, empty line, no colon: the loop decides
        append(Header(name, value.strip(" \t"), key))
    return headers


def _headers_by_line(lines: list[str]) -> list[Header]:
    """Header lines (after the first) to Headers: LF or CRLF, folding, names validated."""
    headers: list[Header] = []
    folded: list[str] = []  # continuations of headers[-1], joined once (no O(n^2) concatenation)
    valid_names = _VALID_NAMES
    lineno = 1
    for line in lines[1:]:
        lineno += 1
        if line[-1:] == "\r":
            line = line[:-1]
        _check_no_cr(line, lineno)
        if not line:
            raise SipParseError(f"line {lineno}: unexpected empty line")
        c0 = line[0]
        if c0 == " " or c0 == "\t":
            if not headers:
                raise SipParseError(f"line {lineno}: continuation line without a header: {line!r}")
            cont = line.strip(" \t")
            if cont:
                folded.append(cont)
            continue
        if folded:
            _unfold(headers[-1], folded)
        colon = line.find(":")
        if colon < 0:
            raise SipParseError(f"line {lineno}: header without colon: {line!r}")
        name = line[:colon]
        key = valid_names.get(name)
        if key is None:
            name = name.rstrip(" \t")  # "Via :" is legal (HCOLON allows whitespace)
            if not is_token(name):
                raise SipParseError(f"line {lineno}: bad header name {name!r}")
            key = header_key(name)
            if len(name) == colon and len(valid_names) < _VALID_NAMES_MAX:
                valid_names[name] = key
        headers.append(Header(name, line[colon + 1 :].strip(" \t"), key))
    if folded:
        _unfold(headers[-1], folded)
    return headers


def _unfold(header: Header, folded: list[str]) -> None:
    """Append the continuation lines to the value, one space between pieces; empties ``folded``."""
    if header.value:
        folded.insert(0, header.value)
    header.value = " ".join(folded)
    folded.clear()


def _parse(data: bytes) -> SipMessage:
    if not isinstance(data, bytes):
        data = bytes(data)
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipParseError(f"message too large: {len(data)} bytes (limit {MAX_MESSAGE_SIZE})")
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")  # RFC 3261 7.5: ignore CRLFs before the start line
    if not data:
        raise SipParseError("empty message")
    end, body_start = _find_head_end(data)
    if end >= 0:
        head = data[:end]
        body = data[body_start:]
    else:
        # no empty line: headers only (tolerated, as a datagram cannot be incomplete)
        head = data.rstrip(b"\r\n")
        body = b""
    text = head.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    first = lines[0]
    if first[-1:] == "\r":
        first = first[:-1]
    _check_no_cr(first, 1)
    if not first.strip():
        raise SipParseError("line 1: empty first line")
    method, ruri, status, reason, version = _parse_first_line(first)
    if len(lines) > MAX_HEADERS * 2:
        # cheap early bound; folded lines make the exact count below necessary too
        raise SipParseError(f"too many header lines ({len(lines) - 1})")
    # performance: the usual message takes the fast path; the line-by-line loop handles
    # everything else and produces every error message
    headers = _headers_fast(text, len(lines))
    if headers is None:
        headers = _headers_by_line(lines)
    if len(headers) > MAX_HEADERS:
        raise SipParseError(f"too many headers ({len(headers)}, limit {MAX_HEADERS})")

    length = _content_length(headers)
    if length is not None:
        if length > len(body):
            raise SipParseError(f"Content-Length {length} larger than body {len(body)}")
        if length < len(body):
            body = body[:length]  # datagram: trailing bytes beyond Content-Length are ignored
    return SipMessage(
        method=method,
        ruri=ruri,
        status=status,
        reason=reason,
        version=version,
        headers=headers,
        body=body,
    )


def parse_message(data: bytes) -> SipMessage:
    """Parse one SIP message (a datagram, or one frame cut by ``frame_length``).

    Raises SipParseError, and nothing else, for any input.
    """
    try:
        return _parse(data)
    except SipParseError:
        raise
    except Exception as exc:  # contract: one exception type, so a worker never dies on input
        raise SipParseError(f"malformed message ({type(exc).__name__}: {exc})") from exc


def frame_length(buf: bytes) -> int | None:
    """Length of the first complete message in a stream buffer (TCP/TLS), None if incomplete.

    Leading CR/LF keep-alives form a frame of their own (returned first; the
    caller skips a frame that is only CR/LF). A missing Content-Length counts
    as 0. Raises SipParseError for a bad Content-Length or an oversized message.
    """
    total = frame_total(buf)
    return total if total is not None and len(buf) >= total else None


def frame_total(buf: bytes) -> int | None:
    """Like :func:`frame_length`, but known as soon as the header block is complete (the body
    may still be missing): a stream reader then waits for that many bytes without rescanning."""
    n = len(buf)
    start = 0
    while start < n and buf[start] in (13, 10):
        start += 1
    if start:
        return start
    if n == 0:
        return None
    end, body_start = _find_head_end(buf)
    if end < 0:
        if n > MAX_MESSAGE_SIZE:
            raise SipParseError(f"header block exceeds {MAX_MESSAGE_SIZE} bytes")
        return None
    length = 0
    for line in buf[:end].split(b"\n")[1:]:
        colon = line.find(b":")
        if colon <= 0:
            continue
        name = line[:colon].strip().lower()
        if name == b"content-length" or name == b"l":
            value = line[colon + 1 :].strip()
            if not value.isdigit() or len(value) > 10:
                raise SipParseError(f"bad Content-Length {value.decode('latin-1')!r}")
            length = int(value)
            break
    total = body_start + length
    if total > MAX_MESSAGE_SIZE:
        raise SipParseError(f"message too large: {total} bytes (limit {MAX_MESSAGE_SIZE})")
    return total
