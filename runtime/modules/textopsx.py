"""``KSR.textopsx``: more message changes (Kamailio textopsx module).

Changes apply to the parsed message at once (see textops), so
``msg_apply_changes`` has nothing left to do. Header value functions take
``NAME[IDX][.PARAM]``: IDX counts the comma-separated values of all NAME
headers from 1 (negative from the end, ``*`` all); the ``*2`` variants
treat each header as one value (Authorization style) with ``,``-separated
parameters. Iterators live in ``ctx.extra`` and follow the header objects,
so headers added or removed meanwhile do not confuse them.
"""

from __future__ import annotations

import fnmatch as _fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core import log as klog
from ..core.regex import Regex, compile_logged, compile_pattern, escape, shown
from ..sip.headers import header_key, parse_header_lines
from ..sip.message import Header
from ..sip.nameaddr import split_unquoted
from .textops import apply_text, body_str, compile_re, set_body_bytes

if TYPE_CHECKING:
    from ..core.context import MsgContext

ITERATORS_MAX = 4
# headers keep_hf() never removes (as Kamailio)
ALWAYS_KEPT = frozenset(
    (
        "from",
        "to",
        "call-id",
        "cseq",
        "via",
        "contact",
        "content-length",
        "content-type",
        "route",
        "record-route",
        "max-forwards",
    )
)


def msg_apply_changes(ctx: MsgContext) -> int:
    """Changes are applied immediately in pykemi: nothing to do, 1."""
    return 1


def msg_set_buffer(ctx: MsgContext, data: str) -> int:
    """Replace the whole message with ``data`` (must stay a request, or a reply)."""
    if not data:
        klog.err("textopsx: empty message buffer")
        return -1
    return 1 if apply_text(ctx, data, "message buffer") else -1


def _status_ok(ctx: MsgContext, code: int) -> bool:
    if ctx.msg.is_request:
        klog.err("textopsx: the message is not a reply")
        return False
    if not 100 <= code <= 699:
        klog.err(f"textopsx: wrong status code: {code}")
        return False
    cur = int(ctx.msg.status)
    if (code < 300 or cur < 300) and code // 100 != cur // 100:
        klog.err("textopsx: the class of provisional or positive final replies cannot be changed")
        return False
    return True


def change_reply_status(ctx: MsgContext, code: int, reason: str) -> int:
    if not reason or "\r" in reason or "\n" in reason:
        klog.err("textopsx: invalid reason parameter")
        return -1
    if not _status_ok(ctx, code):
        return -1
    ctx.msg.status = code
    ctx.msg.reason = reason
    return 1


def change_reply_status_code(ctx: MsgContext, code: int) -> int:
    if not _status_ok(ctx, code):
        return -1
    ctx.msg.status = code
    return 1


def remove_body(ctx: MsgContext) -> int:
    set_body_bytes(ctx, b"")
    return 1


def _keep(ctx: MsgContext, rx: Regex | None) -> int:
    headers = ctx.msg.headers
    kept = [
        h
        for h in headers
        if h.key in ALWAYS_KEPT or (rx is not None and rx.search(h.name) is not None)
    ]
    if len(kept) != len(headers):
        headers[:] = kept
        ctx.msg.invalidate()
    return 1


def keep_hf(ctx: MsgContext) -> int:
    """Remove every header except Via, From, To, Call-ID, CSeq, Contact, Route, ... ."""
    return _keep(ctx, None)


def keep_hf_re(ctx: MsgContext, sre: str) -> int:
    """keep_hf, also keeping the headers whose name matches ``sre``."""
    if not sre:
        return _keep(ctx, None)
    rx = compile_re(sre)
    if rx is None:
        return -1
    return _keep(ctx, rx)


def fnmatch(ctx: MsgContext, val: str, match: str) -> int:
    """Shell-style pattern match (``*``, ``?``, ``[...]``), case sensitive."""
    return 1 if _fnmatch.fnmatchcase(val, match) else -1


def fnmatch_ex(ctx: MsgContext, val: str, match: str, flags: str) -> int:
    """fnmatch; flags ``i`` for case insensitive."""
    if "i" in flags.lower():
        return 1 if _fnmatch.fnmatchcase(val.lower(), match.lower()) else -1
    return fnmatch(ctx, val, match)


# ---------------------------------------------------------------------------
# header values: NAME[IDX][.PARAM]

# RE2: with Python's re the lazy name against trailing blanks was quadratic
_HF_SPEC = compile_pattern(
    r"^\s*([A-Za-z0-9.!%*_+`'~-]+?)\s*(?:\[\s*(\*|-?\d+)\s*\])?(?:\.(.+?))?\s*$",
    icase=False,
    newline=False,
    posix=False,
)


@dataclass
class HfSpec:
    name: str
    index: int | str | None  # 1-based, negative from the end, "*" all, None = not given
    param: str | None


def _parse_spec(text: str) -> HfSpec | None:
    m = _HF_SPEC.search(text)
    if m is None:
        klog.err(f"textopsx: invalid header specification [{shown(text)}]")
        return None
    name, idx, par = m.group(1) or "", m.group(2), m.group(3)
    name = name.replace("_", "-")  # as Kamailio: underscores are dashes
    index: int | str | None = None
    if idx == "*":
        index = "*"
    elif idx is not None:
        index = int(idx)
        if index == 0:
            klog.err(f"textopsx: index 0 in [{text}] (the first is 1)")
            return None
    return HfSpec(name, index, par.strip() if par else None)


@dataclass
class _Val:
    header: Header
    pos: int  # position of the value inside its header


def _values(ctx: MsgContext, name: str, whole: bool) -> list[_Val]:
    key = header_key(name)
    out: list[_Val] = []
    for h in ctx.msg.headers:
        if h.key != key:
            continue
        if whole:
            out.append(_Val(h, 0))
        else:
            for i, _v in enumerate(_split(h.value)):
                out.append(_Val(h, i))
    return out


def _split(value: str) -> list[str]:
    return [v.strip() for v in split_unquoted(value, ",") if v.strip()]


def _pick(vals: list[_Val], index: int | str | None) -> list[_Val]:
    if index == "*":
        return vals
    i = 1 if index is None else int(index)
    i = i - 1 if i > 0 else len(vals) + i
    return [vals[i]] if 0 <= i < len(vals) else []


def _get_value(v: _Val, whole: bool) -> str:
    return v.header.value if whole else _split(v.header.value)[v.pos]


def _set_values(ctx: MsgContext, changes: dict[int, dict[int, str | None]], whole: bool) -> None:
    """Apply per-header value changes (header id -> {pos: new text or None to delete})."""
    headers = ctx.msg.headers
    kept: list[Header] = []
    for h in headers:
        ch = changes.get(id(h))
        if ch is None:
            kept.append(h)
            continue
        items: list[str | None] = [h.value] if whole else list(_split(h.value))
        for pos, new in ch.items():
            items[pos] = new
        remaining = [x for x in items if x is not None]
        if remaining:  # an assigned "" keeps the header, empty
            h.value = ", ".join(x for x in remaining if x)
            kept.append(h)
    headers[:] = kept
    ctx.msg.invalidate()


_PARAM_SPLIT = {False: ";", True: ","}


def _param_op(text: str, pname: str, new: str | None, remove: bool, whole: bool) -> str:
    """Set (new not None), flag (new == "") or remove a parameter of a value."""
    sep = _PARAM_SPLIT[whole]
    pieces = split_unquoted(text, sep)
    head, params = pieces[0], pieces[1:]
    if whole and " " in head.strip():
        # "Digest a=b, c=d": the first param follows the scheme token
        scheme, _, first = head.strip().partition(" ")
        head, params = scheme, [first, *params]
    out: list[str] = []
    found = False
    for p in params:
        name = p.split("=", 1)[0].strip()
        if name.lower() == pname.lower():
            found = True
            if remove:
                continue
            p = name if new == "" else f"{name}={new}"
        out.append(p.strip())
    if not found and not remove:
        out.append(pname if new == "" else f"{pname}={new}")
    if whole:
        joined = ", ".join(out)
        return f"{head.strip()} {joined}".strip() if joined else head.strip()
    return sep.join([head.strip(), *out]) if out else head.strip()


def _check_value(hvalue: str) -> bool:
    if "\r" in hvalue or "\n" in hvalue:
        klog.err("textopsx: header value contains a line break")
        return False
    return True


def _add_value(ctx: MsgContext, hexp: str, val: str, after: bool) -> int:
    spec = _parse_spec(hexp)
    if spec is None or not _check_value(val) or spec.index == "*" or spec.param:
        if spec is not None and (spec.index == "*" or spec.param):
            klog.err(f"textopsx: [{hexp}] cannot take '*' or a parameter here")
        return -1
    msg = ctx.msg
    try:
        if spec.index is None:
            if after:
                msg.append_header(spec.name, val)
            else:
                msg.insert_header(spec.name, val)
            return 1
        picked = _pick(_values(ctx, spec.name, False), spec.index)
        if not picked:
            if after:
                msg.append_header(spec.name, val)
            else:
                msg.insert_header(spec.name, val)
            return 1
    except ValueError as exc:
        klog.err(f"textopsx: cannot add header: {exc}")
        return -1
    v = picked[0]
    items = _split(v.header.value)
    items.insert(v.pos + 1 if after else v.pos, val)
    v.header.value = ", ".join(items)
    msg.invalidate()
    return 1


def append_hf_value(ctx: MsgContext, hexp: str, val: str) -> int:
    """Add a value after the IDX-th value of NAME (a new header at the end without IDX)."""
    return _add_value(ctx, hexp, val, True)


def insert_hf_value(ctx: MsgContext, hexp: str, val: str) -> int:
    """Add a value before the IDX-th value of NAME (a new header at the top without IDX)."""
    return _add_value(ctx, hexp, val, False)


def _modify(ctx: MsgContext, hexp: str, val: str | None, whole: bool) -> int:
    """Assign (val not None) or remove (val None) the value / parameter named by ``hexp``."""
    spec = _parse_spec(hexp)
    if spec is None or (val is not None and not _check_value(val)):
        return -1
    picked = _pick(_values(ctx, spec.name, whole), spec.index)
    if not picked:
        return -1
    changes: dict[int, dict[int, str | None]] = {}
    for v in picked:
        cur = _get_value(v, whole)
        if spec.param:
            new: str | None = _param_op(cur, spec.param, val, val is None, whole)
        else:
            new = val
        changes.setdefault(id(v.header), {})[v.pos] = new
    _set_values(ctx, changes, whole)
    return 1


def remove_hf_value(ctx: MsgContext, hexp: str) -> int:
    """Remove a value (or its ``.PARAM``) of comma-separated NAME headers; default IDX 1."""
    return _modify(ctx, hexp, None, False)


def remove_hf_value2(ctx: MsgContext, hexp: str, val: str) -> int:
    """Remove a header (or its parameter) treating each header as one value.

    ``val`` is accepted for Kamailio's signature; when not empty, only a
    parameter whose value equals it is removed.
    """
    spec = _parse_spec(hexp)
    if spec is None:
        return -1
    if val and spec.param:
        picked = _pick(_values(ctx, spec.name, True), spec.index)
        pat = compile_logged(
            r"(?:^|[\s,])" + escape(spec.param) + r'\s*=\s*"?' + escape(val) + r'"?',
            "textopsx",
            newline=False,
        )
        if pat is None or not any(pat.search(v.header.value) for v in picked):
            return -1
    return _modify(ctx, hexp, None, True)


def assign_hf_value(ctx: MsgContext, hexp: str, val: str) -> int:
    """Set the value (or ``.PARAM``; "" makes a flag parameter) of NAME[IDX]."""
    return _modify(ctx, hexp, val, False)


def assign_hf_value2(ctx: MsgContext, hexp: str, val: str) -> int:
    return _modify(ctx, hexp, val, True)


def _hf_values(ctx: MsgContext, hname: str) -> list[str]:
    name = hname.strip().replace("_", "-")
    out: list[str] = []
    for v in ctx.msg.get_all(name):
        out.extend(_split(v))
    return out


def include_hf_value(ctx: MsgContext, hname: str, val: str) -> int:
    """Add ``val`` to the set in NAME (e.g. Supported) unless present."""
    if not val or not _check_value(val):
        return -1
    if any(v.lower() == val.lower() for v in _hf_values(ctx, hname)):
        return 1
    name = hname.strip().replace("_", "-")
    key = header_key(name)
    for h in ctx.msg.headers:
        if h.key == key:
            h.value = f"{h.value}, {val}" if h.value.strip() else val
            ctx.msg.invalidate()
            return 1
    try:
        ctx.msg.append_header(name, val)
    except ValueError as exc:
        klog.err(f"textopsx: cannot add header: {exc}")
        return -1
    return 1


def exclude_hf_value(ctx: MsgContext, hname: str, val: str) -> int:
    """Remove ``val`` from the set in NAME headers (a header left empty is removed)."""
    key = header_key(hname.strip().replace("_", "-"))
    changes: dict[int, dict[int, str | None]] = {}
    for h in ctx.msg.headers:
        if h.key != key:
            continue
        for i, v in enumerate(_split(h.value)):
            if v.lower() == val.lower():
                changes.setdefault(id(h), {})[i] = None
    if not changes:
        return -1
    _set_values(ctx, changes, False)
    return 1


def hf_value_exists(ctx: MsgContext, hname: str, val: str) -> int:
    return 1 if any(v.lower() == val.lower() for v in _hf_values(ctx, hname)) else -1


# ---------------------------------------------------------------------------
# header iterators


def _iters(ctx: MsgContext, kind: str) -> dict[str, list[object]]:
    its: dict[str, list[object]] = ctx.extra.setdefault("textopsx." + kind, {})
    return its


def hf_iterator_start(ctx: MsgContext, iname: str) -> int:
    its = _iters(ctx, "hfit")
    if iname not in its and len(its) >= ITERATORS_MAX:
        klog.err(f"textopsx: too many iterators (max {ITERATORS_MAX})")
        return -1
    its[iname] = [None]  # current Header; None = before the first
    return 1


def hf_iterator_end(ctx: MsgContext, iname: str) -> int:
    _iters(ctx, "hfit").pop(iname, None)
    return 1


def _hf_pos(ctx: MsgContext, iname: str) -> tuple[list[object], int] | None:
    it = _iters(ctx, "hfit").get(iname)
    if it is None:
        klog.err(f"textopsx: iterator [{iname}] not started")
        return None
    cur = it[0]
    if cur is None:
        return it, -1
    for i, h in enumerate(ctx.msg.headers):
        if h is cur:
            return it, i
    return it, -2  # the current header is gone


def hf_iterator_next(ctx: MsgContext, iname: str) -> int:
    found = _hf_pos(ctx, iname)
    if found is None or found[1] == -2:
        return -1
    it, pos = found
    headers = ctx.msg.headers
    if pos + 1 >= len(headers):
        it[0] = None
        return -1
    it[0] = headers[pos + 1]
    return 1


def hf_iterator_prev(ctx: MsgContext, iname: str) -> int:
    found = _hf_pos(ctx, iname)
    if found is None or found[1] <= 0:
        return -1
    it, pos = found
    it[0] = ctx.msg.headers[pos - 1]
    return 1


def hf_iterator_rm(ctx: MsgContext, iname: str) -> int:
    found = _hf_pos(ctx, iname)
    if found is None or found[1] < 0:
        return -1
    it, pos = found
    headers = ctx.msg.headers
    del headers[pos]
    # step back so that next() gives the header that followed the removed one
    it[0] = headers[pos - 1] if pos > 0 else None
    ctx.msg.invalidate()
    return 1


def _hf_add(ctx: MsgContext, iname: str, htext: str, after: bool) -> int:
    found = _hf_pos(ctx, iname)
    if found is None or found[1] < 0:
        return -1
    pairs = parse_header_lines(htext)
    if not pairs:
        return -1
    _it, pos = found
    at = pos + 1 if after else pos
    try:
        if any("\r" in v or "\n" in v for _n, v in pairs):
            raise ValueError("line break in header value")
        new = [Header(n, v) for n, v in pairs]
    except ValueError as exc:
        klog.err(f"textopsx: cannot add header: {exc}")
        return -1
    ctx.msg.headers[at:at] = new
    ctx.msg.invalidate()
    return 1


def hf_iterator_append(ctx: MsgContext, iname: str, htext: str) -> int:
    return _hf_add(ctx, iname, htext, True)


def hf_iterator_insert(ctx: MsgContext, iname: str, htext: str) -> int:
    return _hf_add(ctx, iname, htext, False)


def _hf_current(ctx: MsgContext, iname: str) -> Header | None:
    found = _hf_pos(ctx, iname)
    if found is None or found[1] < 0:
        return None
    return ctx.msg.headers[found[1]]


def hf_iterator_hname(ctx: MsgContext, iname: str) -> str | None:
    h = _hf_current(ctx, iname)
    return None if h is None else h.name


def hf_iterator_hbody(ctx: MsgContext, iname: str) -> str | None:
    h = _hf_current(ctx, iname)
    return None if h is None else h.value


# ---------------------------------------------------------------------------
# body line iterators (position = line index, lines keep their EOL)


def _lines(ctx: MsgContext) -> list[str]:
    return list(body_str(ctx).splitlines(keepends=True))


def bl_iterator_start(ctx: MsgContext, iname: str) -> int:
    its = _iters(ctx, "blit")
    if iname not in its and len(its) >= ITERATORS_MAX:
        klog.err(f"textopsx: too many iterators (max {ITERATORS_MAX})")
        return -1
    its[iname] = [-1]
    return 1


def bl_iterator_end(ctx: MsgContext, iname: str) -> int:
    _iters(ctx, "blit").pop(iname, None)
    return 1


def _bl(ctx: MsgContext, iname: str) -> list[object] | None:
    it = _iters(ctx, "blit").get(iname)
    if it is None:
        klog.err(f"textopsx: iterator [{iname}] not started")
    return it


def bl_iterator_next(ctx: MsgContext, iname: str) -> int:
    it = _bl(ctx, iname)
    if it is None:
        return -1
    pos = int(str(it[0])) + 1
    if pos >= len(_lines(ctx)):
        return -1
    it[0] = pos
    return 1


def _bl_cur(ctx: MsgContext, iname: str) -> tuple[list[object], int, list[str]] | None:
    it = _bl(ctx, iname)
    if it is None:
        return None
    lines = _lines(ctx)
    pos = int(str(it[0]))
    if not 0 <= pos < len(lines):
        return None
    return it, pos, lines


def bl_iterator_rm(ctx: MsgContext, iname: str) -> int:
    cur = _bl_cur(ctx, iname)
    if cur is None:
        return -1
    it, pos, lines = cur
    del lines[pos]
    it[0] = pos - 1
    set_body_bytes(ctx, "".join(lines).encode("utf-8", "surrogateescape"))
    return 1


def _bl_add(ctx: MsgContext, iname: str, text: str, after: bool) -> int:
    cur = _bl_cur(ctx, iname)
    if cur is None:
        return -1
    it, pos, lines = cur
    lines.insert(pos + 1 if after else pos, text)
    if not after:
        # keep pointing at the same line: it moved down by the inserted text's lines
        it[0] = pos + len(text.splitlines(keepends=True))
    set_body_bytes(ctx, "".join(lines).encode("utf-8", "surrogateescape"))
    return 1


def bl_iterator_append(ctx: MsgContext, iname: str, text: str) -> int:
    return _bl_add(ctx, iname, text, True)


def bl_iterator_insert(ctx: MsgContext, iname: str, text: str) -> int:
    return _bl_add(ctx, iname, text, False)


def bl_iterator_value(ctx: MsgContext, iname: str) -> str | None:
    cur = _bl_cur(ctx, iname)
    if cur is None:
        return None
    _it, pos, lines = cur
    return lines[pos]
