"""Stateless replies (RFC 3261 8.2.6, 18.2.2; RFC 3581)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from .message import Header, SipMessage, Via
from .nameaddr import SipParseError, parse_name_addr

__all__ = ["gen_to_tag", "make_reply", "reply_address"]

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
    request: SipMessage, src: tuple[str, int], proto: str = "udp", *, force_rport: bool = False
) -> tuple[str, int]:
    """Where a reply to ``request`` goes (RFC 3261 18.2.2 with RFC 3581 rport).

    Connection-oriented transports reply to ``src`` (the connection). For UDP:
    ``maddr`` if present; else the ``received`` address, or ``src``'s IP when
    ``received`` is absent (18.2.1 says the server adds ``received`` whenever
    sent-by is a name or differs from the source, so the source IP is what
    received would hold); port = ``rport`` value, the source port for a bare
    ``rport``, else the sent-by port or 5060. IPv6 hosts come back without
    brackets (socket form). Without a usable Via, ``src``. ``force_rport``
    (Kamailio's force_rport()) treats the Via as if it carried a bare rport.
    This matches Kamailio's default (sl ``reply_to_via=0``): source IP, and
    the source port when rport applies.
    """
    if proto.lower() != "udp":
        return src
    via = _top_via(request)
    if via is None:
        return src
    rport = via.rport
    if rport:
        try:
            port = int(rport)
        except ValueError:
            port = src[1]
    elif rport is not None or force_rport:
        port = src[1]  # RFC 3581: rport requested but not filled in yet
    else:
        port = via.port if via.port is not None else 5060
    maddr = via.params.get("maddr")
    if maddr:
        host = maddr
        port = via.port if via.port is not None else 5060
    else:
        host = via.received or src[0]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port
