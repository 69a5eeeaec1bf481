"""Core ``KSR.hdr`` exports: add, remove and read headers (Kamailio src/core/kemi.c).

Unlike Kamailio (which queues changes as lumps applied when the message is
sent), changes are made to the parsed message at once, so a header appended
by the script is visible to later reads and to everything that sends it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import log as klog
from ..core.pv import NULL_TEXT, PvValue
from ..sip.headers import header_key, parse_header_lines
from ..sip.message import Header

if TYPE_CHECKING:
    from ..core.context import MsgContext

HNAME_MAX = 124  # SR_KEMI_HNAME_SIZE - 4


def _key(name: str) -> str:
    return str(header_key(name.strip()))


def _header(name: str, value: str) -> Header:
    if "\r" in value or "\n" in value:
        raise ValueError("header value contains CR/LF")
    return Header(name, value)


def _find(ctx: MsgContext, hname: str) -> int:
    """Index in ``msg.headers`` of the first header called ``hname`` (compact forms too), or -1."""
    key = _key(hname)
    for i, hdr in enumerate(ctx.msg.headers):
        if hdr.key == key:
            return i
    return -1


def _insert_at(ctx: MsgContext, pos: int, txt: str) -> int:
    pairs = parse_header_lines(txt)
    if pairs is None:
        return -1
    headers = ctx.msg.headers
    for offset, (name, value) in enumerate(pairs):
        headers.insert(pos + offset, _header(name, value))
    ctx.msg.invalidate()
    return 1


def _name_ok(hname: str) -> bool:
    if not hname or len(hname) > HNAME_MAX:
        klog.err(f"invalid header name [{hname}]")
        return False
    return True


def append(ctx: MsgContext, txt: str) -> int:
    """Append header line(s) ``"Name: value\\r\\n"`` after the last header."""
    pairs = parse_header_lines(txt)
    if pairs is None:
        return -1
    try:
        for name, value in pairs:
            ctx.msg.append_header(name, value)
    except ValueError as exc:
        klog.err(f"cannot append header: {exc}")
        return -1
    return 1


def append_after(ctx: MsgContext, txt: str, hname: str) -> int:
    """Append header line(s) after the first ``hname`` header (after the last header if none)."""
    if not _name_ok(hname):
        return -1
    i = _find(ctx, hname)
    if i < 0:
        return append(ctx, txt)
    return _insert_at(ctx, i + 1, txt)


def insert(ctx: MsgContext, txt: str) -> int:
    """Insert header line(s) before the first header."""
    return _insert_at(ctx, 0, txt)


def insert_before(ctx: MsgContext, txt: str, hname: str) -> int:
    """Insert header line(s) before the first ``hname`` header (before the first if none)."""
    if not _name_ok(hname):
        return -1
    i = _find(ctx, hname)
    return _insert_at(ctx, max(i, 0), txt)


def remove(ctx: MsgContext, hname: str) -> int:
    """Remove every header called ``hname``; 1 even when there is none."""
    if not _name_ok(hname):
        return -1
    ctx.msg.remove_header(hname.strip())
    return 1


def rmappend(ctx: MsgContext, hrm: str, hadd: str) -> int:
    rc = remove(ctx, hrm)
    if rc < 0:
        return rc
    return append(ctx, hadd)


def rminsert(ctx: MsgContext, hrm: str, hadd: str) -> int:
    rc = remove(ctx, hrm)
    if rc < 0:
        return rc
    return insert(ctx, hadd)


def is_present(ctx: MsgContext, hname: str) -> int:
    if not _name_ok(hname):
        return -1
    return 1 if _find(ctx, hname) >= 0 else -1


def append_to_reply(ctx: MsgContext, txt: str) -> int:
    """Queue header line(s) for the next locally generated reply (sl/tm)."""
    if parse_header_lines(txt) is None:
        return -1
    ctx.extra.setdefault("reply_headers", []).append(txt)
    return 1


def _bodies(ctx: MsgContext, hname: str) -> list[str]:
    key = _key(hname)
    return [str(h.value).strip() for h in ctx.msg.headers if h.key == key]


def _get_idx(ctx: MsgContext, hname: str, idx: int) -> str | None:
    if not hname:
        return None
    bodies = _bodies(ctx, hname)
    if -len(bodies) <= idx < len(bodies):
        return bodies[idx]
    return None


def get(ctx: MsgContext, hname: str) -> PvValue:
    """Body of the first ``hname`` header; None (null) when absent."""
    return _get_idx(ctx, hname, 0)


def gete(ctx: MsgContext, hname: str) -> PvValue:
    value = _get_idx(ctx, hname, 0)
    return "" if value is None else value


def getw(ctx: MsgContext, hname: str) -> PvValue:
    value = _get_idx(ctx, hname, 0)
    return NULL_TEXT if value is None else value


def get_idx(ctx: MsgContext, hname: str, idx: int) -> PvValue:
    """Body of the ``idx``-th ``hname`` header (negative counts from the end); None if absent."""
    return _get_idx(ctx, hname, idx)


def gete_idx(ctx: MsgContext, hname: str, idx: int) -> PvValue:
    value = _get_idx(ctx, hname, idx)
    return "" if value is None else value


def getw_idx(ctx: MsgContext, hname: str, idx: int) -> PvValue:
    value = _get_idx(ctx, hname, idx)
    return NULL_TEXT if value is None else value


_OPS = ("eq", "ne", "sw", "in")


def match_content(ctx: MsgContext, hname: str, op: str, mval: str, hidx: str) -> bool:
    """Compare header bodies with ``mval`` (case-insensitive).

    ``op``: ``eq`` equal, ``ne`` not equal, ``sw`` starts with, ``in`` contains.
    ``hidx``: ``f`` first header, ``l`` last, ``a`` all must match, ``o`` at least one.
    """
    if not hname:
        return False
    opl = op.lower()
    if opl == "re":
        klog.err(f"operator not implemented: {op}")
        return False
    if opl not in _OPS:
        klog.err(f"invalid operator: {op}")
        return False
    mode = hidx[:1].lower()
    if mode not in ("f", "l", "a", "o"):
        klog.err(f"invalid header index: {hidx}")
        return False
    needle = mval.lower()
    matched = False
    for n, body in enumerate(_bodies(ctx, hname), start=1):
        b = body.lower()
        if opl == "eq":
            matched = b == needle
        elif opl == "ne":
            matched = b != needle
        elif opl == "sw":
            matched = b.startswith(needle)
        else:
            matched = needle in b
        if n == 1 and mode == "f":
            return matched
        if mode == "a" and not matched:
            return False
        if mode == "o" and matched:
            return True
    return matched
