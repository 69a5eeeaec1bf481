"""``KSR.textops``: regex/string operations on the message text (Kamailio textops module).

Kamailio applies these through lumps when the message is sent; here a
change is made at once: the message is serialised, the text changed and
the result parsed back into the same ``SipMessage`` object (Content-Length
fixed to the new body), so later reads see it. Regular expressions are
POSIX extended in Kamailio; here they are compiled by RE2 (linear-time
matching) with Kamailio's compile flags, see ``pykemi.runtime.core.regex``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..core import log as klog
from ..core.pv import format_pv, set_pv
from ..core.regex import Match, Regex, compile_logged
from ..sip.headers import header_key, parse_header_lines
from ..sip.message import SipMessage, parse_message
from ..sip.nameaddr import SipParseError
from ..sip.uri import parse_uri

if TYPE_CHECKING:
    from ..core.context import MsgContext

ENC = "surrogateescape"
DEFAULT_BOUNDARY = "unique-boundary-1"

# ---------------------------------------------------------------------------
# regular expressions (RE2, linear time: pykemi.runtime.core.regex)


def compile_re(pattern: str, icase: bool = True, newline: bool = True) -> Regex | None:
    """Compile a script regex (REG_EXTENDED|REG_ICASE|REG_NEWLINE by default); a bad one is
    logged and gives None."""
    return compile_logged(pattern, "textops", icase, newline)


# ---------------------------------------------------------------------------
# message text helpers


def _text(data: bytes) -> str:
    return data.decode("utf-8", ENC)


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", ENC)


def message_text(ctx: MsgContext) -> str:
    return _text(ctx.msg.to_bytes())


def split_first_line(text: str) -> tuple[str, str]:
    """(first line with its CRLF, rest of the message)."""
    nl = text.find("\n")
    if nl < 0:
        return text, ""
    return text[: nl + 1], text[nl + 1 :]


def _head_body(text: str) -> tuple[str, str, str]:
    """(header block, separator, body) of a message text."""
    for sep in ("\r\n\r\n", "\n\n"):
        i = text.find(sep)
        if i >= 0:
            return text[:i], sep, text[i + len(sep) :]
    return text, "", ""


_CL_RE = re.compile(r"(?im)^(content-length|l)([ \t]*:[ \t]*)\d*[ \t]*$")


def adopt(msg: SipMessage, new: SipMessage) -> None:
    """Make ``msg`` a copy of ``new`` in place (others may hold a reference to ``msg``)."""
    msg.is_request = new.is_request
    msg.method = new.method
    msg.status = new.status
    msg.reason = new.reason
    msg.version = new.version
    msg.headers[:] = new.headers
    msg.body = new.body
    msg.ruri = new.ruri  # also drops the cached parsed R-URI
    msg.invalidate()


def apply_text(ctx: MsgContext, text: str, what: str = "message") -> bool:
    """Parse ``text`` (Content-Length made to match its body) into ``ctx.msg``; False if bad."""
    head, sep, body = _head_body(text)
    if sep:
        blen = len(_bytes(body))
        head = _CL_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{blen}", head)
    else:
        sep = "\r\n\r\n"
    try:
        new = parse_message(_bytes(head + sep + body))
    except SipParseError as exc:
        klog.err(f"textops: the changed {what} cannot be parsed, change dropped: {exc}")
        return False
    if new.is_request != ctx.msg.is_request:
        klog.err("textops: the changed message changed its type, change dropped")
        return False
    adopt(ctx.msg, new)
    return True


def body_str(ctx: MsgContext) -> str:
    return _text(bytes(ctx.msg.body))


def set_body_bytes(ctx: MsgContext, body: bytes) -> None:
    # Content-Length is rewritten by to_bytes(); nothing else caches the body
    ctx.msg.body = body


def _headers_text(ctx: MsgContext) -> tuple[str, str, str]:
    """(first line, header block after it incl. the final CRLF, separator+body)."""
    first, rest = split_first_line(message_text(ctx))
    head, sep, body = _head_body(rest)
    # keep the CRLF ending the last header inside the header part, as Kamailio's buffer has it
    line_end = "\r\n" if sep.startswith("\r\n") else "\n"
    return first, head + line_end, sep[len(line_end) :] + body


# ---------------------------------------------------------------------------
# search


def search(ctx: MsgContext, sre: str) -> int:
    """Search the regex in the whole message (first line included)."""
    rx = compile_re(sre)
    if rx is None:
        return -1
    return 1 if rx.search(message_text(ctx)) else -1


def search_body(ctx: MsgContext, sre: str) -> int:
    rx = compile_re(sre)
    if rx is None:
        return -1
    body = body_str(ctx)
    if not body:
        return -1
    return 1 if rx.search(body) else -1


def _select(values: list[int], flags: str) -> list[int] | None:
    mode = (flags or "a")[:1].lower()
    if mode == "a":
        return values
    if not values:
        return []
    if mode == "f":
        return values[:1]
    if mode == "l":
        return values[-1:]
    klog.err(f"textops: invalid flags [{flags}] (use a, f or l)")
    return None


def _header_indexes(ctx: MsgContext, hname: str) -> list[int]:
    key = header_key(hname.strip())
    return [i for i, h in enumerate(ctx.msg.headers) if h.key == key]


def search_hf(ctx: MsgContext, hf: str, sre: str, flags: str) -> int:
    """Search the regex in the body of the ``hf`` headers (flags: a all, f first, l last)."""
    rx = compile_re(sre)
    if rx is None:
        return -1
    idx = _select(_header_indexes(ctx, hf), flags)
    if idx is None:
        return -1
    return 1 if any(rx.search(ctx.msg.headers[i].value) for i in idx) else -1


def _append_in(text: str, rx: Regex, txt: str) -> tuple[str, int]:
    """``txt`` inserted after the first match of ``rx``; (text, 1) or (text, 0)."""
    return rx.subn(text, lambda m: (m.group() or "") + txt, 1)


def search_append(ctx: MsgContext, sre: str, txt: str) -> int:
    """Append ``txt`` after the first match (headers and body, not the first line)."""
    rx = compile_re(sre)
    if rx is None:
        return -1
    first, rest = split_first_line(message_text(ctx))
    new, n = _append_in(rest, rx, txt)
    return 1 if n and apply_text(ctx, first + new) else -1


def search_append_body(ctx: MsgContext, sre: str, txt: str) -> int:
    rx = compile_re(sre)
    if rx is None:
        return -1
    new, n = _append_in(body_str(ctx), rx, txt)
    if not n:
        return -1
    set_body_bytes(ctx, _bytes(new))
    return 1


# ---------------------------------------------------------------------------
# header presence and removal


def is_present_hf(ctx: MsgContext, hname: str) -> int:
    if not hname.strip():
        return -1
    return 1 if ctx.msg.has(hname.strip()) else -1


def is_present_hf_re(ctx: MsgContext, ematch: str) -> int:
    rx = compile_re(ematch)
    if rx is None:
        return -1
    return 1 if any(rx.search(h.name) for h in ctx.msg.headers) else -1


def _remove_where(ctx: MsgContext, pred: Callable[[int], bool]) -> int:
    headers = ctx.msg.headers
    kept = [h for i, h in enumerate(headers) if not pred(i)]
    removed = len(headers) - len(kept)
    if removed:
        headers[:] = kept
        ctx.msg.invalidate()
    return removed if removed else -1


def remove_hf(ctx: MsgContext, hname: str) -> int:
    """Remove every header called ``hname`` (compact form too); 1, also when there was none
    (Kamailio's KEMI remove_hf is sr_kemi_hdr_remove), -1 for an empty name."""
    if not hname.strip():
        return -1
    key = header_key(hname.strip())
    _remove_where(ctx, lambda i: ctx.msg.headers[i].key == key)
    return 1


def remove_hf_re(ctx: MsgContext, ematch: str) -> int:
    rx = compile_re(ematch)
    if rx is None:
        return -1
    # Kamailio remove_hf_re(): 1 when something was removed, -1 when nothing matched
    return min(1, _remove_where(ctx, lambda i: rx.search(ctx.msg.headers[i].name) is not None))


def remove_hf_idx(ctx: MsgContext, hname: str, idx: int) -> int:
    """Remove the ``idx``-th ``hname`` header (0 first, -1 last); as Kamailio's
    ki_remove_hf_idx, an index past the end is 2 and one before the start 1."""
    found = _header_indexes(ctx, hname)
    if idx >= len(found):
        return 2
    if idx < -len(found):
        return 1
    target = found[idx]
    return 1 if _remove_where(ctx, lambda i: i == target) > 0 else -1


def remove_hf_exp(ctx: MsgContext, ematch: str, eskip: str) -> int:
    """Remove headers whose name matches ``ematch`` but not ``eskip``."""
    rm = compile_re(ematch)
    skip = compile_re(eskip) if eskip else None
    if rm is None or (eskip and skip is None):
        return -1

    def pred(i: int) -> bool:
        name = ctx.msg.headers[i].name
        if skip is not None and skip.search(name):
            return False
        return rm.search(name) is not None

    return _remove_where(ctx, pred)


def remove_hf_match(ctx: MsgContext, hname: str, op: str, expr: str) -> int:
    """Remove ``hname`` headers whose body matches: op eq, ne, in (contains) or re."""
    opl = op.lower()
    rx = None
    if opl == "re":
        rx = compile_re(expr)
        if rx is None:
            return -1
    elif opl not in ("eq", "ne", "in"):
        klog.err(f"textops: unknown operator [{op}]")
        return -1
    key = header_key(hname.strip())

    def pred(i: int) -> bool:
        h = ctx.msg.headers[i]
        if h.key != key:
            return False
        if opl == "eq":
            return bool(h.value == expr)
        if opl == "ne":
            return bool(h.value != expr)
        if opl == "in":
            return expr in h.value
        return rx is not None and rx.search(h.value) is not None

    return _remove_where(ctx, pred)


# ---------------------------------------------------------------------------
# replace


def _replace_in(text: str, rx: Regex, txt: str, count: int) -> tuple[str, int]:
    # the replacement is literal text (no back-references), as in Kamailio
    return rx.subn(text, lambda _m: txt, count)


def _replace_msg(ctx: MsgContext, sre: str, txt: str, count: int) -> int:
    rx = compile_re(sre)
    if rx is None:
        return -1
    first, rest = split_first_line(message_text(ctx))
    new, n = _replace_in(rest, rx, txt, count)
    if not n:
        return -1
    return 1 if apply_text(ctx, first + new) else -1


def replace(ctx: MsgContext, sre: str, txt: str) -> int:
    """Replace the first match in headers and body with ``txt``."""
    return _replace_msg(ctx, sre, txt, 1)


def replace_all(ctx: MsgContext, sre: str, txt: str) -> int:
    return _replace_msg(ctx, sre, txt, 0)


def _replace_body(ctx: MsgContext, sre: str, txt: str, count: int, newline: bool = True) -> int:
    rx = compile_re(sre, newline=newline)
    if rx is None:
        return -1
    body = body_str(ctx)
    if not body:
        return -1
    new, n = _replace_in(body, rx, txt, count)
    if not n:
        return -1
    set_body_bytes(ctx, _bytes(new))
    return 1


def replace_body(ctx: MsgContext, sre: str, txt: str) -> int:
    return _replace_body(ctx, sre, txt, 1)


def replace_body_all(ctx: MsgContext, sre: str, txt: str) -> int:
    return _replace_body(ctx, sre, txt, 0)


def replace_body_atonce(ctx: MsgContext, sre: str, txt: str) -> int:
    """Replace all matches, the regex seeing the body as one string ('.' matches newlines)."""
    return _replace_body(ctx, sre, txt, 0, newline=False)


def replace_hdrs(ctx: MsgContext, sre: str, txt: str) -> int:
    """Replace the first match in the header part only."""
    rx = compile_re(sre)
    if rx is None:
        return -1
    first, head, tail = _headers_text(ctx)
    new, n = _replace_in(head, rx, txt, 1)
    if not n:
        return -1
    return 1 if apply_text(ctx, first + new + tail) else -1


def _mode_count(mode: str) -> int | None:
    m = (mode or "f")[:1].lower()
    if m == "f":
        return 1
    if m == "a":
        return -1
    klog.err(f"textops: invalid mode [{mode}] (use f or a)")
    return None


def _str_replace(text: str, match: str, repl: str, count: int) -> tuple[str, int]:
    n = text.count(match) if count < 0 else min(count, text.count(match))
    return text.replace(match, repl, count), n


def replace_str(ctx: MsgContext, mkey: str, rval: str, rmode: str) -> int:
    """Plain-string replace over headers and body (not the first line); mode f or a."""
    count = _mode_count(rmode)
    if count is None or not mkey:
        return -1
    first, rest = split_first_line(message_text(ctx))
    new, n = _str_replace(rest, mkey, rval, count)
    if not n:
        return -1
    return 1 if apply_text(ctx, first + new) else -1


def replace_body_str(ctx: MsgContext, mkey: str, rval: str, rmode: str) -> int:
    count = _mode_count(rmode)
    if count is None or not mkey:
        return -1
    new, n = _str_replace(body_str(ctx), mkey, rval, count)
    if not n:
        return -1
    set_body_bytes(ctx, _bytes(new))
    return 1


def replace_hdrs_str(ctx: MsgContext, mkey: str, rval: str, rmode: str) -> int:
    count = _mode_count(rmode)
    if count is None or not mkey:
        return -1
    first, head, tail = _headers_text(ctx)
    new, n = _str_replace(head, mkey, rval, count)
    if not n:
        return -1
    return 1 if apply_text(ctx, first + new + tail) else -1


# ---------------------------------------------------------------------------
# subst ('/re/repl/flags')


class SubstExpr:
    """A parsed sed-like ``/re/repl/flags`` expression."""

    def __init__(self, rx: Regex, repl: str, is_global: bool) -> None:
        self.rx = rx
        self.repl = repl
        self.is_global = is_global

    def expand(self, ctx: MsgContext, m: Match) -> str:
        out: list[str] = []
        lit: list[str] = []
        repl = self.repl
        i = 0

        def flush() -> None:
            if lit:
                text = "".join(lit)
                out.append(format_pv(ctx, text) if "$" in text else text)
                lit.clear()

        while i < len(repl):
            c = repl[i]
            if c == "\\" and i + 1 < len(repl):
                nxt = repl[i + 1]
                i += 2
                if nxt.isdigit():
                    flush()
                    g = int(nxt)
                    if g <= self.rx.groups:
                        out.append(m.group(g) or "")
                    continue
                if nxt == "u":
                    flush()
                    out.append(ctx.ruri if ctx.msg.is_request else "")
                    continue
                lit.append({"n": "\n", "r": "\r", "t": "\t"}.get(nxt, nxt))
                continue
            lit.append(c)
            i += 1
        flush()
        return "".join(out)

    def apply(self, ctx: MsgContext, text: str) -> tuple[str, int]:
        return self.rx.subn(text, lambda m: self.expand(ctx, m), 0 if self.is_global else 1)


def parse_subst(expr: str) -> SubstExpr | None:
    """Parse ``/re/repl/flags`` (any first character is the separator; ``\\`` escapes it)."""
    if len(expr) < 4:
        klog.err(f"textops: invalid subst expression [{expr}]")
        return None
    sep = expr[0]
    parts: list[str] = []
    cur: list[str] = []
    i = 1
    while i < len(expr):
        c = expr[i]
        if c == "\\" and i + 1 < len(expr):
            if expr[i + 1] == sep:
                cur.append(sep)
            else:
                cur.append(expr[i : i + 2])
            i += 2
            continue
        if c == sep and len(parts) < 2:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    if len(parts) != 2:
        klog.err(f"textops: invalid subst expression [{expr}]")
        return None
    pattern, repl = parts
    flags_txt = "".join(cur)
    icase = is_global = False
    multiline = True
    for f in flags_txt:
        if f == "i":
            icase = True
        elif f == "g":
            is_global = True
        elif f == "s":
            multiline = False
        else:
            klog.err(f"textops: unknown subst flag [{f}] in [{expr}]")
            return None
    rx = compile_re(pattern, icase, multiline)
    if rx is None:
        return None
    return SubstExpr(rx, repl, is_global)


def subst(ctx: MsgContext, subst_expr: str) -> int:
    """sed-like substitution over headers and body (first line excluded)."""
    se = parse_subst(subst_expr)
    if se is None:
        return -1
    first, rest = split_first_line(message_text(ctx))
    new, n = se.apply(ctx, rest)
    if not n:
        return -1
    return 1 if apply_text(ctx, first + new) else -1


def subst_uri(ctx: MsgContext, subst_expr: str) -> int:
    """sed-like substitution on the R-URI ($ru)."""
    if not ctx.msg.is_request:
        return -1
    se = parse_subst(subst_expr)
    if se is None:
        return -1
    new, n = se.apply(ctx, ctx.ruri)
    if not n:
        return -1
    try:
        parse_uri(new)
    except SipParseError as exc:
        klog.err(f"textops: subst_uri result is not a valid uri [{new}]: {exc}")
        return -1
    ctx.new_uri = new
    return 1


def subst_user(ctx: MsgContext, subst_expr: str) -> int:
    """sed-like substitution on the R-URI user part (empty result removes the user)."""
    if not ctx.msg.is_request:
        return -1
    se = parse_subst(subst_expr)
    if se is None:
        return -1
    try:
        u = parse_uri(ctx.ruri)
    except SipParseError as exc:
        klog.err(f"textops: cannot parse the R-URI: {exc}")
        return -1
    new, n = se.apply(ctx, u.user or "")
    if not n:
        return -1
    u.user = new or None
    if not new:
        u.password = None
    ctx.new_uri = str(u)
    return 1


def subst_body(ctx: MsgContext, subst_expr: str) -> int:
    se = parse_subst(subst_expr)
    if se is None:
        return -1
    body = body_str(ctx)
    if not body:
        return -1
    new, n = se.apply(ctx, body)
    if not n:
        return -1
    set_body_bytes(ctx, _bytes(new))
    return 1


def subst_hf(ctx: MsgContext, hname: str, subst_expr: str, flags: str) -> int:
    """sed-like substitution in the body of ``hname`` headers (flags: a all, f first, l last)."""
    se = parse_subst(subst_expr)
    if se is None:
        return -1
    idx = _select(_header_indexes(ctx, hname), flags)
    if idx is None:
        return -1
    headers = ctx.msg.headers
    changed = 0
    for i in idx:
        new, n = se.apply(ctx, headers[i].value)
        if n:
            if "\r" in new or "\n" in new:
                klog.err("textops: subst_hf result contains a line break, ignored")
                continue
            headers[i].value = new
            changed += 1
    if changed:
        ctx.msg.invalidate()
    return 1 if changed else -1


# ---------------------------------------------------------------------------
# body


def set_body(ctx: MsgContext, nb: str, nc: str) -> int:
    """Replace the body and its Content-Type."""
    if not nb:
        klog.err("textops: invalid body parameter")
        return -1
    if "\r" in nc or "\n" in nc:
        klog.err("textops: invalid content type")
        return -1
    set_body_bytes(ctx, _bytes(nb))
    ctx.msg.remove_header("content-type")
    if nc:
        ctx.msg.append_header("Content-Type", nc)
    return 1


def set_reply_body(ctx: MsgContext, nb: str, nc: str) -> int:
    """Body (and Content-Type) for the next locally generated reply (sl/tm)."""
    if not nb:
        klog.err("textops: invalid body parameter")
        return -1
    if not ctx.msg.is_request:
        klog.err("textops: set_reply_body needs a request")
        return -1
    if "\r" in nc or "\n" in nc:
        klog.err("textops: invalid content type")
        return -1
    ctx.extra["reply_body"] = _bytes(nb)
    if nc:
        ctx.extra.setdefault("reply_headers", []).append(f"Content-Type: {nc}\r\n")
    return 1


def has_body(ctx: MsgContext) -> int:
    return 1 if ctx.msg.body else -1


def _mime(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def has_body_type(ctx: MsgContext, ctype: str) -> int:
    """The message has a body of MIME type ``ctype`` (``type/subtype``, ``*`` wildcards)."""
    if not ctx.msg.body:
        return -1
    have = _mime(ctx.msg.get("content-type")) or "application/sdp"  # RFC 3261 default in Kamailio
    want = _mime(ctype)
    if not want:
        return 1
    wtype, _, wsub = want.partition("/")
    htype, _, hsub = have.partition("/")
    if wtype not in ("*", htype) or (wsub and wsub not in ("*", hsub)):
        return -1
    return 1


# -- multipart bodies ---------------------------------------------------------------------


def _boundary(ctype: str | None) -> str | None:
    if not ctype or not _mime(ctype).startswith("multipart/"):
        return None
    m = re.search(r'(?i);\s*boundary\s*=\s*(?:"([^"]*)"|([^;\s]+))', ctype)
    if m is None:
        return None
    return m.group(1) if m.group(1) is not None else m.group(2)


class Part:
    """One body part: its header lines (name, value) and content."""

    def __init__(self, headers: list[tuple[str, str]], content: str) -> None:
        self.headers = headers
        self.content = content

    def ctype(self) -> str:
        for name, value in self.headers:
            if header_key(name) == "content-type":
                return _mime(value)
        return "text/plain"  # RFC 2046 default

    def render(self) -> str:
        lines = "".join(f"{n}: {v}\r\n" for n, v in self.headers)
        return lines + "\r\n" + self.content


def parse_parts(body: str, boundary: str) -> list[tuple[Part, str]]:
    """The parts of a multipart body, each with its raw text (delimiter line included)."""
    delim = "--" + boundary
    out: list[tuple[Part, str]] = []
    pieces = body.split(delim)
    for piece in pieces[1:]:
        if piece.startswith("--"):
            break  # close delimiter
        raw = delim + piece
        seg = piece
        if seg.startswith("\r\n"):
            seg = seg[2:]
        elif seg.startswith("\n"):
            seg = seg[1:]
        if seg.endswith("\r\n"):
            seg = seg[:-2]
        elif seg.endswith("\n"):
            seg = seg[:-1]
        head, sep, content = _head_body(seg)
        if not sep:
            if seg.startswith(("\r\n", "\n")):
                head, content = "", seg.lstrip("\r\n")
            else:
                head, content = seg, ""
        pairs = parse_header_lines(head) if head else []
        out.append((Part(pairs or [], content), raw))
    return out


def render_parts(parts: list[Part], boundary: str) -> str:
    text = "".join(f"--{boundary}\r\n{p.render()}\r\n" for p in parts)
    return text + f"--{boundary}--\r\n"


def _current_parts(ctx: MsgContext) -> tuple[list[Part], str | None]:
    """(parts, boundary); a non-multipart body is one part with its Content-Type."""
    ctype = ctx.msg.get("content-type")
    boundary = _boundary(ctype)
    body = body_str(ctx)
    if boundary is not None:
        return [p for p, _ in parse_parts(body, boundary)], boundary
    if not body:
        return [], None
    return [Part([("Content-Type", ctype or "text/plain")], body)], None


def _store_multipart(ctx: MsgContext, parts: list[Part], boundary: str) -> None:
    set_body_bytes(ctx, _bytes(render_parts(parts, boundary)))
    msg = ctx.msg
    msg.remove_header("content-type")
    msg.append_header("Content-Type", f'multipart/mixed;boundary="{boundary}"')
    if not msg.has("mime-version"):
        msg.append_header("Mime-Version", "1.0")


def _to_multipart(ctx: MsgContext, boundary: str, extra: Part | None = None) -> int:
    parts, _old = _current_parts(ctx)
    if extra is not None:
        parts.append(extra)
    _store_multipart(ctx, parts, boundary or DEFAULT_BOUNDARY)
    return 1


def set_body_multipart_mode(ctx: MsgContext) -> int:
    """Turn the current body into a multipart/mixed body (boundary unique-boundary-1)."""
    return _to_multipart(ctx, DEFAULT_BOUNDARY)


def set_body_multipart_boundary(ctx: MsgContext, boundary: str) -> int:
    return _to_multipart(ctx, boundary)


def _new_part(txt: str, ctype: str, cd: str = "") -> Part | None:
    # ctype may carry extra part headers after "\r\n" (documented Kamailio feature)
    lines = ctype.replace("\r\n", "\n").split("\n")
    headers: list[tuple[str, str]] = [("Content-Type", lines[0].strip())]
    extra = parse_header_lines("\n".join(lines[1:])) if len(lines) > 1 else []
    if extra is None:
        return None
    headers.extend(extra)
    if cd:
        headers.append(("Content-Disposition", cd))
    return Part(headers, txt)


def set_body_multipart_content(ctx: MsgContext, txt: str, ctype: str) -> int:
    return set_body_multipart(ctx, txt, ctype, DEFAULT_BOUNDARY)


def set_body_multipart(ctx: MsgContext, txt: str, ctype: str, boundary: str) -> int:
    """Replace the body with a multipart body holding one part."""
    part = _new_part(txt, ctype or "text/plain")
    if part is None:
        return -1
    _store_multipart(ctx, [part], boundary or DEFAULT_BOUNDARY)
    return 1


def _append_part(ctx: MsgContext, txt: str, ctype: str, cd: str) -> int:
    if not ctype:
        klog.err("textops: missing content type")
        return -1
    part = _new_part(txt, ctype, cd)
    if part is None:
        return -1
    parts, boundary = _current_parts(ctx)
    parts.append(part)
    _store_multipart(ctx, parts, boundary or DEFAULT_BOUNDARY)
    return 1


def append_body_part(ctx: MsgContext, txt: str, ctype: str) -> int:
    """Add a part to the (multipart) body; a plain body becomes the first part."""
    return _append_part(ctx, txt, ctype, "")


def append_body_part_cd(ctx: MsgContext, txt: str, ctype: str, cd: str) -> int:
    return _append_part(ctx, txt, ctype, cd)


def _unhex(txt: str) -> str | None:
    digits = "".join(txt.split())
    try:
        return bytes.fromhex(digits).decode("utf-8", ENC)
    except ValueError:
        klog.err("textops: invalid hex content")
        return None


def append_body_part_hex(ctx: MsgContext, txt: str, ctype: str) -> int:
    content = _unhex(txt)
    return -1 if content is None else _append_part(ctx, content, ctype, "")


def append_body_part_hex_cd(ctx: MsgContext, txt: str, ctype: str, cd: str) -> int:
    content = _unhex(txt)
    return -1 if content is None else _append_part(ctx, content, ctype, cd)


def remove_body_part(ctx: MsgContext, ctype: str) -> int:
    """Remove the first part of type ``ctype`` from a multipart body."""
    boundary = _boundary(ctx.msg.get("content-type"))
    if boundary is None:
        return -1
    parts = [p for p, _ in parse_parts(body_str(ctx), boundary)]
    want = _mime(ctype)
    for i, p in enumerate(parts):
        if p.ctype() == want:
            del parts[i]
            set_body_bytes(ctx, _bytes(render_parts(parts, boundary)))
            return 1
    return -1


def _find_part(ctx: MsgContext, ctype: str) -> tuple[Part, str] | None:
    want = _mime(ctype)
    boundary = _boundary(ctx.msg.get("content-type"))
    body = body_str(ctx)
    if boundary is None:
        if body and _mime(ctx.msg.get("content-type")) == want:
            return Part([], body), body
        return None
    for part, raw in parse_parts(body, boundary):
        if part.ctype() == want:
            return part, raw
    return None


def get_body_part(ctx: MsgContext, ctype: str, pvname: str) -> int:
    """Store the content of the first body part of type ``ctype`` in the PV ``pvname``."""
    found = _find_part(ctx, ctype)
    if found is None:
        return -1
    return 1 if set_pv(ctx, pvname, found[0].content) else -1


def get_body_part_raw(ctx: MsgContext, ctype: str, pvname: str) -> int:
    """Like get_body_part, with the part headers and boundary line."""
    found = _find_part(ctx, ctype)
    if found is None:
        return -1
    return 1 if set_pv(ctx, pvname, found[1]) else -1


def filter_body(ctx: MsgContext, content_type: str) -> int:
    """Keep only the content of the first part of type ``content_type`` as the body."""
    boundary = _boundary(ctx.msg.get("content-type"))
    if boundary is None:
        klog.dbg("textops: filter_body on a body that is not multipart")
        return -1
    want = _mime(content_type)
    for part, _raw in parse_parts(body_str(ctx), boundary):
        if part.ctype() == want:
            set_body_bytes(ctx, _bytes(part.content))
            return 1
    return -1


def is_audio_on_hold(ctx: MsgContext) -> int:
    """1: an audio stream with c=0.0.0.0 (RFC 2543 hold); 2: sendonly/inactive (RFC 3264)."""
    if not ctx.msg.body:
        return -1
    found = _find_part(ctx, "application/sdp")
    if found is None:
        if _boundary(ctx.msg.get("content-type")) is not None:
            return -1
        sdp = body_str(ctx)  # no Content-Type: SDP assumed
    else:
        sdp = found[0].content
    session_c = ""
    session_dir = ""
    media: list[dict[str, str]] = []
    for line in sdp.replace("\r\n", "\n").split("\n"):
        line = line.strip()
        if line.startswith("m="):
            media.append({"type": line[2:].split(" ", 1)[0].lower(), "c": "", "dir": ""})
        elif line.startswith("c="):
            addr = line.split()[-1] if line.split() else ""
            if media:
                media[-1]["c"] = addr
            else:
                session_c = addr
        elif line in ("a=sendonly", "a=inactive", "a=sendrecv", "a=recvonly"):
            if media:
                media[-1]["dir"] = line[2:]
            else:
                session_dir = line[2:]
    for m in media:
        if m["type"] != "audio":
            continue
        if (m["c"] or session_c).startswith("0.0.0.0"):
            return 1
        if (m["dir"] or session_dir) in ("sendonly", "inactive"):
            return 2
    return -1


# ---------------------------------------------------------------------------
# header-based and string helpers


def is_privacy(ctx: MsgContext, privacy: str) -> int:
    """The Privacy header lists ``privacy`` (header, session, user, none, critical, id, history)."""
    known = ("header", "session", "user", "none", "critical", "id", "history")
    want = privacy.strip().lower()
    if want not in known:
        klog.err(f"textops: bad privacy value [{privacy}]")
        return -1
    values: list[str] = []
    for v in ctx.msg.get_all("privacy"):
        values.extend(x.strip().lower() for x in re.split(r"[;,]", v))
    return 1 if want in values else -1


def _list_items(vlist: str, vsep: str) -> list[str] | None:
    if len(vsep) != 1:
        klog.err("textops: separator must be one character")
        return None
    return [x.strip() for x in vlist.split(vsep)]


def in_list(ctx: MsgContext, subject: str, vlist: str, vsep: str) -> int:
    items = _list_items(vlist, vsep)
    if items is None:
        return -1
    return 1 if subject in items else -1


def in_list_prefix(ctx: MsgContext, subject: str, vlist: str, vsep: str) -> int:
    items = _list_items(vlist, vsep)
    if items is None:
        return -1
    return 1 if any(x and subject.startswith(x) for x in items) else -1


def _order(a: str | bytes, b: str | bytes, fold: bool = False) -> int:
    """Kamailio's ki_cmp_str family: 1 equal, -1 ``a`` sorts after ``b``, -2 before (bytes)."""
    x, y = _raw(a), _raw(b)
    if fold:
        x, y = x.lower(), y.lower()  # strncasecmp: ASCII only
    return 1 if x == y else -1 if x > y else -2


def _raw(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


def cmp_str(ctx: MsgContext, str1: str, str2: str) -> int:
    return _order(str1, str2)


def cmp_istr(ctx: MsgContext, str1: str, str2: str) -> int:
    return _order(str1, str2, fold=True)


def search_str(ctx: MsgContext, stext: str, sre: str) -> int:
    rx = compile_re(sre)
    if rx is None:
        return -1
    return 1 if rx.search(stext) else -1


def starts_with(ctx: MsgContext, s1: str, s2: str) -> int:
    """1 when ``s1`` starts with ``s2``; else -1 or -2 as Kamailio's strncmp order."""
    text, prefix = _raw(s1), _raw(s2)
    return -1 if len(text) < len(prefix) else _order(text[: len(prefix)], prefix)


def ends_with(ctx: MsgContext, vstr: str, vsuffix: str) -> int:
    """1 when ``vstr`` ends with ``vsuffix``; else -1 or -2 as Kamailio's strncmp order."""
    text, suffix = _raw(vstr), _raw(vsuffix)
    return -1 if len(suffix) > len(text) else _order(text[len(text) - len(suffix) :], suffix)


def str_find(ctx: MsgContext, txt: str, needle: str) -> int:
    """Position (1-based) of ``needle`` in ``txt``, -1 when absent."""
    i = txt.find(needle)
    return i + 1 if i >= 0 else -1


def str_ifind(ctx: MsgContext, txt: str, needle: str) -> int:
    i = txt.lower().find(needle.lower())
    return i + 1 if i >= 0 else -1


def regex_substring(
    ctx: MsgContext, input_str: str, sre: str, mindex: int, nmatch: int, dst_var: str
) -> int:
    """Set the PV ``dst_var`` to group ``mindex`` of the first match (``nmatch`` groups max)."""
    if mindex < 0 or nmatch <= 0 or mindex >= nmatch:
        klog.err(f"textops: invalid match index {mindex} / count {nmatch}")
        return -1
    rx = compile_re(sre, icase=False, newline=False)  # regcomp(REG_EXTENDED) in Kamailio
    if rx is None:
        return -1
    m = rx.search(input_str)
    if m is None or mindex > rx.groups or m.group(mindex) is None:
        return -1
    return 1 if set_pv(ctx, dst_var, m.group(mindex)) else -1
