"""Stateless replies (RFC 3261 8.2.6, 18.2.2; RFC 3581)."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Sequence

from ..core.log import L_ERR, L_WARN, log
from .message import Header, SipMessage, Via
from .nameaddr import SipParseError, parse_name_addr

__all__ = ["gen_to_tag", "make_reply", "relayed_reply_address", "reply_address"]

SIP_PORT = 5060
# reply_to_via hosts that could not be used; only the first one is logged (no log flooding)
_unresolved_logged: list[str] = []

# headers a reply copies from the request, after all the Vias (RFC 3261 8.2.6.2)
_COPIED = ("from", "to", "call-id", "cseq")


def _top_via(request: SipMessage) -> Via | None:
    try:
        return request.top_via
    except SipParseError:
        return None


def gen_to_tag(request: SipMessage) -> str:
    """A To tag that is the same for every retransmission of ``request`` (32 hex digits).

    Derived from Call-ID, From tag, top Via branch and CSeq number only (never
    from the receiving worker), so a retransmission handled by another process
    is answered with the same tag.
    """
    try:
        from_tag = request.from_tag or ""
    except SipParseError:
        from_tag = request.get("from") or ""  # malformed: still deterministic
    via = _top_via(request)
    branch = (via.branch or "") if via is not None else (request.get("via") or "")
    cseq = (request.get("cseq") or "").split(" ", 1)[0].strip()
    material = "\x00".join((request.call_id or "", from_tag, branch, cseq))
    digest = hashlib.md5(material.encode("utf-8", "surrogateescape"), usedforsecurity=False)
    return digest.hexdigest()


def _has_tag(to_value: str) -> bool:
    try:
        return parse_name_addr(to_value).tag is not None
    except SipParseError:
        return ";tag=" in to_value.lower().replace(" ", "")


def make_reply(
    request: SipMessage,
    code: int,
    reason: str,
    *,
    to_tag: str | None = None,
    extra_headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    server: str | None = None,
) -> SipMessage:
    """Build a reply to ``request`` (RFC 3261 8.2.6).

    Copies every Via (in order), then From, To, Call-ID and CSeq exactly as
    written. For code > 100 a To without a tag gets ``;tag=`` ``to_tag`` or,
    when None, ``gen_to_tag(request)``. Then ``Server`` (``server`` may be the
    value or a whole ``Server: ...`` line), ``extra_headers`` and
    Content-Length. ValueError for a reply (not a request), a code outside
    100..699 or a header with CR/LF.
    """
    if not request.is_request:
        raise ValueError("make_reply needs a request")
    if not 100 <= code <= 699:
        raise ValueError(f"bad status code {code}")
    if "\r" in reason or "\n" in reason:
        raise ValueError(f"reason contains CR/LF: {reason!r}")
    headers: list[Header] = [
        Header(h.name, h.value, h.key) for h in request.headers if h.key == "via"
    ]
    for key in _COPIED:
        for h in request.headers:
            if h.key == key:
                value = h.value
                if key == "to" and code > 100 and not _has_tag(value):
                    value += ";tag=" + (to_tag if to_tag is not None else gen_to_tag(request))
                headers.append(Header(h.name, value, key))
                break
    reply = SipMessage(status=code, reason=reason, headers=headers, body=body)
    if server is not None:
        if server[:7].lower() == "server:":
            server = server[7:].strip()
        reply.append_header("Server", server)
    for name, value in extra_headers:
        reply.append_header(name, value)
    reply.append_header("Content-Length", str(len(body)))
    return reply


def reply_address(
    request: SipMessage,
    src: tuple[str, int],
    proto: str = "udp",
    *,
    force_rport: bool = False,
    to_via: bool = False,
    lookup: Callable[[str], str | None] | None = None,
) -> tuple[str, int]:
    """Where a locally generated reply to ``request`` goes (sl, tm), as Kamailio 5.6 does.

    Connection-oriented transports reply to ``src`` (the connection). For UDP the
    IP is the source IP of the request and the port is the source port when the
    top Via has ``rport`` (or ``force_rport``, Kamailio's force_rport()), else the
    Via port or 5060. ``received`` and ``maddr`` in that Via were written by the
    sender and are never followed (else anyone could direct replies to a third
    party). ``to_via`` (core ``reply_to_via=1``) uses the Via host instead of the
    source IP when it is an IP literal or ``lookup`` (a cache, never a resolver:
    the reply path does not wait for DNS) knows it; otherwise the source IP.
    Without a usable Via, ``src``. IPv6 hosts come back without brackets.
    """
    if proto.lower() != "udp":
        return src
    via = _top_via(request)
    if via is None:
        return src
    if via.rport is not None or force_rport:
        port = src[1]
    else:
        port = via.port if via.port is not None else SIP_PORT
    host = src[0]
    if to_via:
        host = _via_host_address(via.host, lookup) or host
    return host.strip("[]"), port


def _as_ip(host: str, lookup: Callable[[str], str | None] | None) -> str | None:
    """``host`` as an IP: a literal, else what ``lookup`` (a cache) has, else None."""
    host = host.strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return lookup(host) if lookup is not None else None


def _via_host_address(host: str, lookup: Callable[[str], str | None] | None) -> str | None:
    """The Via host as an IP, or None (the first such host logged) if not known."""
    ip = _as_ip(host, lookup)
    if ip is None and not _unresolved_logged:
        _unresolved_logged.append(host)
        log(L_WARN, f"reply_to_via: Via host [{host}] is not an IP nor cached: source IP used")
    return ip


def relayed_reply_address(
    reply: SipMessage, lookup: Callable[[str], str | None] | None = None
) -> tuple[str, int] | None:
    """Where a relayed reply goes: the second Via (the first is ours), RFC 3261 18.2.2.

    ``received`` (we added it when we forwarded the request) else the Via host,
    which must be an IP literal or known to ``lookup`` (a cache: names are not
    resolved on the reply path); port = ``rport`` value, else the Via port or
    5060. None (logged) when there is no second Via or its host is unknown.
    """
    vias = reply.vias
    if len(vias) < 2:
        log(L_ERR, "no 2nd via found in reply")
        return None
    via = vias[1]
    port = via.port if via.port is not None else SIP_PORT
    if via.rport:
        try:
            port = int(via.rport)
        except ValueError:
            log(L_ERR, f"bad rport value [{via.rport}] in 2nd via: Via port used")
    name = via.received or via.host
    ip = _as_ip(name, lookup)
    if ip is None:
        log(L_ERR, f"2nd via host [{name}] is not an IP nor in the DNS cache: reply dropped")
        return None
    return ip, port
