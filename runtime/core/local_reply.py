"""What a reply generated here (by sl or tm) carries and where it goes: the headers and body
the script queued for it, and the request's source address (issue 13, M1). Below both sl and
tm, so that neither layer imports the other."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..sip.headers import parse_header_lines
from ..sip.reply import reply_address

if TYPE_CHECKING:
    from .context import Address, MsgContext


def reply_headers(ctx: MsgContext, code: int) -> list[tuple[str, str]]:
    """Headers a locally generated reply carries (sl and tm): append_to_reply lines, and the
    destination set as Contacts for 3xx."""
    pairs: list[tuple[str, str]] = []
    for txt in ctx.extra.get("reply_headers", ()):
        parsed = parse_header_lines(str(txt))
        if parsed:
            pairs.extend(parsed)
    if 300 <= code < 400:
        # redirect: the destination set (changed R-URI and added branches) as Contacts
        targets: list[str] = []
        if ctx.new_uri is not None and ctx.new_uri != ctx.msg.ruri:
            targets.append(ctx.new_uri)
        targets.extend(str(b) for b in ctx.extra.get("branches", ()))
        pairs.extend(("Contact", f"<{t}>") for t in targets)
    return pairs


def reply_body(ctx: MsgContext) -> bytes:
    """The body ``KSR.textops.set_reply_body`` set for the next local reply (sl and tm); its
    Content-Type is among ``reply_headers``."""
    body = ctx.extra.get("reply_body", b"")
    return body if isinstance(body, bytes) else b""


def local_reply_address(ctx: MsgContext) -> Address:
    """Where a reply generated here (sl or tm) to the request of ``ctx`` goes."""
    proc = ctx.proc
    return reply_address(
        ctx.msg,
        ctx.src,
        ctx.proto,
        force_rport=ctx.force_rport,
        to_via=proc.reply_to_via,
        lookup=proc.dns.peek,
    )
