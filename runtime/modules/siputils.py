"""``KSR.siputils``: SIP utilities (Kamailio siputils module).

R-URI changes go to ``ctx.new_uri`` ($ru); Contact changes are made to the
parsed message at once.
"""

from __future__ import annotations

import base64
import re
import time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from ..core import log as klog
from ..sip.headers import header_key, is_token
from ..sip.message import _split_list  # comma split respecting quotes and <>
from ..sip.nameaddr import (
    SipParseError,
    get_param,
    has_param,
    parse_name_addr,
)
from ..sip.uri import SipUri, parse_uri
from . import params as _params
from . import sl
from .core import check_self

if TYPE_CHECKING:
    from ..core.context import MsgContext

MODULE = "siputils"
_params.register(MODULE)


def _p(ctx: MsgContext, name: str) -> Any:
    return _params.params(ctx.proc, MODULE)[name]


def _uri(text: str, what: str = "uri") -> SipUri | None:
    try:
        return parse_uri(text)
    except SipParseError as exc:
        klog.err(f"siputils: failed to parse {what} [{text}]: {exc}")
        return None


def _ruri(ctx: MsgContext) -> SipUri | None:
    if not ctx.msg.is_request:
        klog.err("siputils: the message is not a request")
        return None
    return _uri(ctx.ruri, "r-uri")


# ---------------------------------------------------------------------------
# message type / dialog


def has_totag(ctx: MsgContext) -> int:
    try:
        tag = ctx.msg.to_tag
    except SipParseError:
        klog.err("siputils: cannot parse the To header")
        return -1
    return 1 if tag else -1


def is_request(ctx: MsgContext) -> int:
    return 1 if ctx.msg.is_request else -1


def is_reply(ctx: MsgContext) -> int:
    return -1 if ctx.msg.is_request else 1


def is_first_hop_mode(ctx: MsgContext, mode: int) -> int:
    """Request: a single Via. Reply: the top Record-Route is ours (mode 0: an IP, not from us)."""
    msg = ctx.msg
    try:
        if msg.is_request:
            return 1 if len(msg.vias) == 1 else -1
        rr = msg.get("record-route")
        if rr is None:
            return -1
        u = parse_uri(parse_name_addr(_split_list(rr)[0]).uri)
    except (SipParseError, IndexError) as exc:
        klog.err(f"siputils: cannot parse the message: {exc}")
        return -1
    if not check_self(ctx, u.host, u.port or 5060):
        return -1
    if mode == 0:
        if not re.fullmatch(r"[0-9.]+|\[[0-9a-fA-F:.]+\]", u.host):
            return -1  # a domain: cannot tell
        if check_self(ctx, ctx.src[0], 0):
            return -1  # local loop
    return 1


def is_first_hop(ctx: MsgContext) -> int:
    return is_first_hop_mode(ctx, 0)


# ---------------------------------------------------------------------------
# strings


def is_uri(ctx: MsgContext, suri: str) -> int:
    if not suri:
        return -1
    try:
        parse_uri(suri)
    except SipParseError:
        return -1
    return 1


def is_tel_number(ctx: MsgContext, tval: str) -> int:
    """Optional leading '+' and a non-zero digit, then decimal digits; else -2 (Kamailio)."""
    return 1 if re.fullmatch(r"(?:\+[1-9])?[0-9]*", tval) and tval not in ("", "+") else -2


def is_numeric(ctx: MsgContext, tval: str) -> int:
    """Decimal digits only: 1, else -2 (Kamailio ki_is_numeric)."""
    return 1 if re.fullmatch(r"[0-9]+", tval) else -2


def is_alphanum(ctx: MsgContext, tval: str) -> int:
    """ASCII letters and digits only: 1; -2 empty, -3 another character (ki_is_alphanum)."""
    return is_alphanumex(ctx, tval, "")


def is_alphanumex(ctx: MsgContext, tval: str, eset: str) -> int:
    """Digits, ASCII letters and the characters of ``eset`` only: 1; -2 empty, -3 otherwise."""
    if not tval:
        return -2
    extra = set(eset)
    return 1 if all((c.isascii() and c.isalnum()) or c in extra for c in tval) else -3


def is_user(ctx: MsgContext, suser: str) -> int:
    """The username of the (Proxy-)Authorization credentials is ``suser``."""
    for name in ("proxy-authorization", "authorization"):
        for value in ctx.msg.get_all(name):
            m = re.search(r'(?i)(?:^|[\s,])username\s*=\s*(?:"([^"]*)"|([^\s,]+))', value)
            if m:
                user = m.group(1) if m.group(1) is not None else m.group(2)
                return 1 if user == suser else -1
    return -1


# ---------------------------------------------------------------------------
# R-URI parameters


def _ruri_param(ctx: MsgContext, name: str) -> tuple[bool, str | None]:
    u = _ruri(ctx)
    if u is None:
        return False, None
    return has_param(u.params, name.lower()), get_param(u.params, name.lower())


def uri_param(ctx: MsgContext, sparam: str) -> int:
    """The R-URI has the parameter ``sparam`` without a value."""
    present, value = _ruri_param(ctx, sparam)
    return 1 if present and value is None else -1


def uri_param_value(ctx: MsgContext, sparam: str, svalue: str) -> int:
    present, value = _ruri_param(ctx, sparam)
    return 1 if present and value == svalue else -1


def uri_param_any(ctx: MsgContext, sparam: str) -> int:
    present, _value = _ruri_param(ctx, sparam)
    return 1 if present else -1


def uri_param_rm(ctx: MsgContext, sparam: str) -> int:
    """Remove the parameter from the R-URI."""
    u = _ruri(ctx)
    if u is None:
        return -1
    keys = [k for k in u.params if k.lower() == sparam.lower()]
    if not keys:
        return -1
    for k in keys:
        del u.params[k]
    ctx.new_uri = str(u)
    return 1


def add_uri_param(ctx: MsgContext, sparam: str) -> int:
    """Append ``name[=value]`` to the R-URI parameters."""
    if not sparam or any(c in sparam for c in " \t\r\n;<>?"):
        klog.err(f"siputils: invalid uri parameter [{sparam}]")
        return -1
    u = _ruri(ctx)
    if u is None:
        return -1
    if u.scheme == "tel":
        klog.err("siputils: cannot add a parameter to a tel uri")
        return -1
    name, eq, value = sparam.partition("=")
    u.params[name] = value if eq else None
    ctx.new_uri = str(u)
    return 1


# ---------------------------------------------------------------------------
# OPTIONS


def options_reply(ctx: MsgContext) -> int:
    """Answer an OPTIONS to the server (R-URI without user) with 200 and capabilities."""
    msg = ctx.msg
    if not msg.is_request or str(msg.method).upper() != "OPTIONS":
        klog.err("siputils: options_reply() called for a non-OPTIONS request")
        return -1
    u = _ruri(ctx)
    if u is None:
        return -1
    if u.user:
        klog.err("siputils: options_reply() for an R-URI with a user")
        return -1
    hdrs: list[str] = ctx.extra.setdefault("reply_headers", [])
    for name, pname in (
        ("Accept", "options_accept"),
        ("Accept-Encoding", "options_accept_encoding"),
        ("Accept-Language", "options_accept_language"),
        ("Supported", "options_support"),
    ):
        value = str(_p(ctx, pname) or "")
        if value or name != "Supported":
            hdrs.append(f"{name}: {value}\r\n")
    if sl.reply(ctx, 200, "OK") < 0:
        sl.reply(ctx, 500, "Server Internal Error")
        return -1
    return 1


# ---------------------------------------------------------------------------
# Contact encoding


def _contact_header_indexes(ctx: MsgContext) -> list[int]:
    return [i for i, h in enumerate(ctx.msg.headers) if h.key == "contact"]


def _rewrite_contacts(ctx: MsgContext, fn: Any) -> int:
    """Apply ``fn(uri) -> new uri | None`` to every Contact URI; count changed, <0 on error."""
    msg = ctx.msg
    changed = 0
    for i in _contact_header_indexes(ctx):
        h = msg.headers[i]
        items = _split_list(h.value)
        out: list[str] = []
        for item in items:
            try:
                na = parse_name_addr(item)
            except SipParseError as exc:
                klog.err(f"siputils: bad Contact [{item}]: {exc}")
                return -4
            if na.uri == "*":
                out.append(item)
                continue
            new = fn(na.uri)
            if new is None:
                out.append(item)
                continue
            if isinstance(new, int):
                return new
            na.uri = new
            out.append(str(na))
            changed += 1
        h.value = ", ".join(out)
    if changed:
        msg.invalidate()
    return changed


def _encode_uri(uri: str, prefix: str, hostpart: str, sep: str) -> str | int:
    u = _uri(uri, "contact uri")
    if u is None or u.scheme == "tel":
        return -1
    fields = [
        prefix,
        u.user or "",
        u.password or "",
        u.host,
        str(u.port) if u.port else "",
        u.transport or "",
    ]
    return f"{u.scheme}:{sep.join(fields)}@{hostpart}"


def _decode_uri(uri: str, sep: str) -> str | int | None:
    u = _uri(uri, "uri")
    if u is None:
        return -1
    fields = (u.user or "").split(sep)
    if len(fields) != 6:
        return None  # not encoded by us
    _prefix, user, password, host, port, proto = fields
    if not host:
        return -2
    out = f"{u.scheme}:"
    if user:
        out += user + (f":{password}" if password else "") + "@"
    out += host + (f":{port}" if port else "")
    if proto:
        out += f";transport={proto}"
    return out


def encode_contact(ctx: MsgContext, eprefix: str, eaddr: str) -> int:
    """Contact URIs become ``sip:prefix*user*pass*ip*port*proto@eaddr`` (params dropped)."""
    if not eprefix or not eaddr:
        klog.err("siputils: encode_contact needs a prefix and a host part")
        return -1
    sep = str(_p(ctx, "contact_flds_separator") or "*")[:1]
    rc = _rewrite_contacts(ctx, lambda uri: _encode_uri(uri, eprefix, eaddr, sep))
    return rc if rc < 0 else 1


def decode_contact(ctx: MsgContext) -> int:
    """Decode an R-URI made by encode_contact back to ``sip:user:pass@ip:port;transport=``."""
    if not ctx.msg.is_request:
        return -1
    sep = str(_p(ctx, "contact_flds_separator") or "*")[:1]
    res = _decode_uri(ctx.ruri, sep)
    if res is None:
        return -1
    if isinstance(res, int):
        return res
    ctx.new_uri = res
    return 1


def decode_contact_header(ctx: MsgContext) -> int:
    """decode_contact() for the Contact header URIs."""
    sep = str(_p(ctx, "contact_flds_separator") or "*")[:1]

    def fn(uri: str) -> str | int | None:
        return _decode_uri(uri, sep)

    if not _contact_header_indexes(ctx):
        return -1
    rc = _rewrite_contacts(ctx, fn)
    return rc if rc < 0 else 1


def _b64url_encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogateescape")).decode().rstrip("=")


def _b64url_decode(text: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        return None
    return raw.decode("utf-8", "surrogateescape")


def contact_param_encode(ctx: MsgContext, nparam: str, saddr: str) -> int:
    """Contact URIs become ``saddr;nparam=<base64url of the original URI>``."""
    if not nparam or not is_token(nparam) or _uri(saddr, "server address") is None:
        klog.err("siputils: invalid parameters for contact_param_encode")
        return -1
    if not _contact_header_indexes(ctx):
        return 1

    def fn(uri: str) -> str | None:
        if len(uri) <= 4:
            return None
        return f"{saddr};{nparam}={_b64url_encode(uri)}"

    rc = _rewrite_contacts(ctx, fn)
    return rc if rc < 0 else 1


def _decoded_from(uri: str, nparam: str) -> str | None:
    try:
        u = parse_uri(uri)
    except SipParseError:
        return None
    value = get_param(u.params, nparam.lower())
    if not value:
        return None
    decoded = _b64url_decode(value)
    if decoded is None or not is_uri_text(decoded):
        return None
    return decoded


def is_uri_text(text: str) -> bool:
    try:
        parse_uri(text)
    except SipParseError:
        return False
    return True


def contact_param_decode(ctx: MsgContext, nparam: str) -> int:
    """Replace Contact URIs carrying ``nparam`` by the URI encoded in it."""
    if not nparam:
        return -1
    if not _contact_header_indexes(ctx):
        return 1
    rc = _rewrite_contacts(ctx, lambda uri: _decoded_from(uri, nparam))
    return rc if rc < 0 else 1


def contact_param_decode_ruri(ctx: MsgContext, nparam: str) -> int:
    """Replace the R-URI by the URI encoded in its ``nparam`` parameter."""
    if not nparam or not ctx.msg.is_request:
        return -1
    decoded = _decoded_from(ctx.ruri, nparam)
    if decoded is None:
        return -1
    ctx.new_uri = decoded
    return 1


def contact_param_rm(ctx: MsgContext, nparam: str) -> int:
    """Remove the URI parameter ``nparam`` from the Contact URIs."""
    if not nparam:
        return -1

    def fn(uri: str) -> str | None:
        try:
            u = parse_uri(uri)
        except SipParseError:
            return None
        keys = [k for k in u.params if k.lower() == nparam.lower()]
        if not keys:
            return None
        for k in keys:
            del u.params[k]
        return str(u)

    if not _contact_header_indexes(ctx):
        return 1
    rc = _rewrite_contacts(ctx, fn)
    return rc if rc < 0 else 1


# ---------------------------------------------------------------------------
# Date, URI and header name comparison


def hdr_date_check(ctx: MsgContext, tdiff: int) -> int:
    """1 if the Date header is not older than ``tdiff`` seconds, else -1 (also when missing)."""
    value = ctx.msg.get("date")
    if value is None:
        klog.err("siputils: no Date header")
        return -1
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        klog.err(f"siputils: invalid Date header [{value}]")
        return -1
    if time.time() > when + tdiff:
        klog.err(f"siputils: outdated Date header [{value}]")
        return -1
    return 1


# URI parameters that must match when present in either URI (RFC 3261 19.1.4)
_STRICT_PARAMS = ("transport", "user", "ttl", "method", "maddr")


def _uri_equal(a: SipUri, b: SipUri) -> bool:
    if a.scheme != b.scheme:
        return False
    if a.scheme == "tel":
        return (a.user or "") == (b.user or "")
    if (a.user_unescaped or "") != (b.user_unescaped or "") or a.password != b.password:
        return False
    if a.host.lower() != b.host.lower() or a.port != b.port:
        return False
    pa = {k.lower(): (v or "").lower() for k, v in a.params.items()}
    pb = {k.lower(): (v or "").lower() for k, v in b.params.items()}
    for name in _STRICT_PARAMS:
        if pa.get(name) != pb.get(name):
            return False
    return all(pb[k] == v for k, v in pa.items() if k in pb)


def cmp_uri(ctx: MsgContext, uri1: str, uri2: str) -> int:
    """1 if the two strings are equal as SIP URIs (RFC 3261 19.1.4), -1 if not, -2 on error."""
    a, b = _uri(uri1), _uri(uri2)
    if a is None or b is None:
        return -2
    return 1 if _uri_equal(a, b) else -1


def cmp_aor(ctx: MsgContext, uri1: str, uri2: str) -> int:
    """1 if the two URIs have the same address of record (user, host, port), -1 if not."""
    a, b = _uri(uri1), _uri(uri2)
    if a is None or b is None:
        return -2
    same = (
        (a.user_unescaped or "") == (b.user_unescaped or "")
        and a.host.lower() == b.host.lower()
        and (a.port or 5060) == (b.port or 5060)
    )
    return 1 if same else -1


def cmp_hdr_name(ctx: MsgContext, shname1: str, shname2: str) -> int:
    """1 if both are the same header name (case-insensitive, compact forms expanded)."""
    n1, n2 = shname1.strip(), shname2.strip()
    if not n1 or not n2:
        return -2
    return 1 if header_key(n1) == header_key(n2) else -1


def is_gruu(ctx: MsgContext) -> int:
    """R-URI is a GRUU: 1 public (gr=value), 2 temporary (gr without value), -1 not."""
    u = _ruri(ctx)
    if u is None:
        return -1
    if not has_param(u.params, "gr"):
        return -1
    return 1 if get_param(u.params, "gr") else 2
