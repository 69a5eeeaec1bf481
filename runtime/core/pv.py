"""Pseudo-variables: ``$ru``, ``$hdr(Name)``, ``$var(x)``, ... and xlog-style formats.

Names are parsed once (cached) into a :class:`PvSpec`; getting a value is a
dictionary lookup plus the getter. Values follow Kamailio's typing: integer
PVs (``$sp``, ``$Rp``, ``$rs``, ``$ml``, ``$var`` set with an int, ...) come back
as ``int``, everything else as ``str``; ``None`` is the null value.

Public API: :func:`get_pv`, :func:`set_pv`, :func:`format_pv`, :func:`is_valid_pv`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..sip.message import parse_name_addr
from ..sip.uri import parse_uri
from .log import L_ERR, log

if TYPE_CHECKING:
    from .context import MsgContext

PvValue = str | int | None

NULL_TEXT = "<null>"
STARTUP_TIME = int(time.time())
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")

# Kamailio protocol ids (kx.get_protoid, $proto numeric forms)
PROTO_IDS = {"udp": 1, "tcp": 2, "tls": 3, "sctp": 4, "ws": 5, "wss": 6}


@dataclass(frozen=True)
class PvSpec:
    """A parsed pseudo-variable name: class, optional inner name and index."""

    cls: str
    inner: str | None = None
    index: int | str | None = None  # int (negative = from the end) or "*"


# ---------------------------------------------------------------------------
# name parsing


def _match_paren(text: str, start: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``start``, or -1."""
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _parse_body(body: str, allow_index: bool) -> PvSpec | None:
    """Parse ``cls[(inner)][[idx]]`` (no leading ``$``); None when malformed or unknown."""
    i = 0
    while i < len(body) and body[i] in _NAME_CHARS:
        i += 1
    cls = body[:i]
    if not cls:
        return None
    inner: str | None = None
    index: int | str | None = None
    if i < len(body) and body[i] == "(":
        end = _match_paren(body, i)
        if end < 0:
            return None
        inner = body[i + 1 : end]
        i = end + 1
    if allow_index and i < len(body) and body[i] == "[":
        end = body.find("]", i)
        if end < 0:
            return None
        raw = body[i + 1 : end].strip()
        if raw == "*":
            index = "*"
        else:
            try:
                index = int(raw)
            except ValueError:
                return None
        i = end + 1
    if i != len(body):
        return None
    spec = PvSpec(cls, inner, index)
    return spec if _known(spec) else None


def _known(spec: PvSpec) -> bool:
    if spec.cls in _INNER_GETTERS:
        return bool(spec.inner)
    if spec.cls in _GETTERS:
        return spec.inner is None
    return False


@lru_cache(maxsize=4096)
def parse_pv_name(name: str) -> PvSpec | None:
    """Parse a complete PV name (``$ru``, ``$var(x)``, ``$(hdr(Via)[1])``); None if invalid."""
    if len(name) < 2 or name[0] != "$":
        return None
    if name[1] == "(":
        if _match_paren(name, 1) != len(name) - 1:
            return None
        return _parse_body(name[2:-1], allow_index=True)
    return _parse_body(name[1:], allow_index=False)


def is_valid_pv(name: str) -> bool:
    """True when ``name`` is a complete, known pseudo-variable name."""
    return parse_pv_name(name) is not None


# ---------------------------------------------------------------------------
# helpers on the message


def _uri(text: str | None) -> Any:
    """Parsed URI or None (parse errors are logged)."""
    if not text:
        return None
    try:
        return parse_uri(text)
    except ValueError as exc:
        log(L_ERR, f"failed to parse uri [{text}]: {exc}")
        return None


def uri_part(text: str | None, part: str) -> str | None:
    """``user``/``host``/``port``/``scheme`` of a URI as Kamailio prints them (None = null)."""
    u = _uri(text)
    if u is None:
        return None
    if part == "port":
        port = getattr(u, "port", None)
        if port in (None, "", 0):
            return "5061" if str(getattr(u, "scheme", "")).lower() in ("sips", "tels") else "5060"
        return str(port)
    value = getattr(u, part, None)
    if value in (None, ""):
        return None
    if part == "host":
        return str(value)
    return str(value)


def uri_replace(text: str, **changes: Any) -> str | None:
    """``text`` with URI parts replaced (``user=None`` removes the user), or None on error."""
    u = _uri(text)
    if u is None:
        return None
    if "user" in changes and changes["user"] is None:
        changes["password"] = None
    try:
        if dataclasses.is_dataclass(u) and not isinstance(u, type):
            u = dataclasses.replace(u, **changes)
        else:
            for key, value in changes.items():
                setattr(u, key, value)
    except (TypeError, ValueError, AttributeError) as exc:
        log(L_ERR, f"cannot update uri [{text}]: {exc}")
        return None
    return str(u)


def _name_addr(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return parse_name_addr(value)
    except ValueError:
        return None


def is_reply(ctx: MsgContext) -> bool:
    return not ctx.msg.is_request


def msg_method(ctx: MsgContext) -> str | None:
    """Request method, or the CSeq method of a reply (None when missing or malformed)."""
    msg = ctx.msg
    if msg.is_request:
        return str(msg.method)
    try:
        cseq = msg.cseq
    except ValueError:
        log(L_ERR, "cannot parse cseq header")
        return None
    if cseq is None:
        return None
    return str(cseq[1])


def body_text(ctx: MsgContext) -> str:
    return bytes(ctx.msg.body).decode("utf-8", "surrogateescape")


def msg_text(ctx: MsgContext) -> str:
    return bytes(ctx.msg.to_bytes()).decode("utf-8", "surrogateescape")


def src_uri(ctx: MsgContext) -> str:
    """``$su``: ``sip:ip:port`` plus ``;transport=`` when not UDP."""
    ip, port = ctx.src
    host = f"[{ip}]" if ":" in ip else ip
    uri = f"sip:{host}:{port}"
    if ctx.proto != "udp":
        uri += f";transport={ctx.proto}"
    return uri


def _auth_param(ctx: MsgContext, param: str) -> str | None:
    value = ctx.msg.get("Proxy-Authorization") or ctx.msg.get("Authorization")
    if value is None:
        return None
    m = re.search(r"(?i)(?:^|[\s,])" + param + r'\s*=\s*(?:"([^"]*)"|([^\s,]+))', value)
    if m is None:
        return None
    return m.group(1) if m.group(1) is not None else m.group(2)


def _auth_user(ctx: MsgContext) -> str | None:
    user = _auth_param(ctx, "username")
    if user is None:
        return None
    return user.split("@", 1)[0]


def _from_attr(ctx: MsgContext, which: str, attr: str) -> PvValue:
    msg = ctx.msg
    uri = msg.from_uri if which == "f" else msg.to_uri
    if attr == "uri":
        return str(uri) if uri else None
    if attr in ("user", "host"):
        return uri_part(str(uri) if uri else None, attr)
    if attr == "tag":
        tag = msg.from_tag if which == "f" else msg.to_tag
        return str(tag) if tag else None
    # display name
    na = _name_addr(msg.get("From" if which == "f" else "To"))
    if na is None:
        return None
    display = getattr(na, "display", None)
    return str(display) if display else None


def _hdr_bodies(ctx: MsgContext, name: str) -> list[str]:
    return [str(v) for v in ctx.msg.get_all(name)]


def _hdr(ctx: MsgContext, spec: PvSpec) -> PvValue:
    bodies = _hdr_bodies(ctx, spec.inner or "")
    if not bodies:
        return None
    idx = spec.index
    if idx is None:
        return bodies[0]
    if idx == "*":
        return ",".join(bodies)
    assert isinstance(idx, int)
    if -len(bodies) <= idx < len(bodies):
        return bodies[idx]
    return None


def _var_get(store: dict[str, Any], key: str) -> PvValue:
    value = store.get(key, 0)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | str):
        return value
    return 0


def _avp_get(ctx: MsgContext, spec: PvSpec) -> PvValue:
    values: list[str | int] = ctx.extra.get("avps", {}).get(spec.inner, [])
    if not values:
        return None
    idx = spec.index
    if idx is None:
        return values[-1]  # newest first, as Kamailio's AVP list
    newest_first = list(reversed(values))
    if idx == "*":
        return ",".join(str(v) for v in newest_first)
    assert isinstance(idx, int)
    if -len(newest_first) <= idx < len(newest_first):
        return newest_first[idx]
    return None


def _req(fn: Callable[[MsgContext], PvValue]) -> Callable[[MsgContext], PvValue]:
    """Null for replies (R-URI based PVs)."""

    def wrapped(ctx: MsgContext) -> PvValue:
        if not ctx.msg.is_request:
            return None
        return fn(ctx)

    return wrapped


def _reply(fn: Callable[[MsgContext], PvValue]) -> Callable[[MsgContext], PvValue]:
    def wrapped(ctx: MsgContext) -> PvValue:
        if ctx.msg.is_request:
            return None
        return fn(ctx)

    return wrapped


def _hdr_value(name: str) -> Callable[[MsgContext], PvValue]:
    def get(ctx: MsgContext) -> PvValue:
        value = ctx.msg.get(name)
        return None if value is None else str(value)

    return get


def _content_length(ctx: MsgContext) -> PvValue:
    value = ctx.msg.get("Content-Length")
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _cseq_num(ctx: MsgContext) -> PvValue:
    cseq = ctx.msg.cseq
    return None if cseq is None else str(cseq[0])


def _adv_ip(ctx: MsgContext) -> PvValue:
    adv = ctx.extra.get("advertised_address")
    return str(adv) if adv else ctx.dst[0]


def _adv_port(ctx: MsgContext) -> PvValue:
    adv = ctx.extra.get("advertised_port")
    if adv:
        try:
            return int(adv)
        except ValueError:
            return str(adv)
    return int(ctx.dst[1])


def _sflags(ctx: MsgContext) -> int:
    return int(ctx.proc.extra.get("sflags", 0))


_GETTERS: dict[str, Callable[[MsgContext], PvValue]] = {
    # request URI
    "ru": _req(lambda c: c.ruri),
    "rU": _req(lambda c: uri_part(c.ruri, "user")),
    "rd": _req(lambda c: uri_part(c.ruri, "host")),
    "rp": _req(lambda c: uri_part(c.ruri, "port")),
    "rz": _req(lambda c: uri_part(c.ruri, "scheme")),
    "ou": _req(lambda c: str(c.msg.ruri)),
    "oU": _req(lambda c: uri_part(str(c.msg.ruri), "user")),
    "od": _req(lambda c: uri_part(str(c.msg.ruri), "host")),
    "op": _req(lambda c: uri_part(str(c.msg.ruri), "port")),
    "du": lambda c: c.dst_uri or None,
    # From / To
    "fu": lambda c: _from_attr(c, "f", "uri"),
    "fU": lambda c: _from_attr(c, "f", "user"),
    "fd": lambda c: _from_attr(c, "f", "host"),
    "fn": lambda c: _from_attr(c, "f", "display"),
    "ft": lambda c: _from_attr(c, "f", "tag"),
    "tu": lambda c: _from_attr(c, "t", "uri"),
    "tU": lambda c: _from_attr(c, "t", "user"),
    "td": lambda c: _from_attr(c, "t", "host"),
    "tn": lambda c: _from_attr(c, "t", "display"),
    "tt": lambda c: _from_attr(c, "t", "tag"),
    # other headers
    "ci": lambda c: None if c.msg.call_id is None else str(c.msg.call_id),
    "cs": _cseq_num,
    "ua": _hdr_value("User-Agent"),
    "ct": _hdr_value("Contact"),
    "cT": _hdr_value("Content-Type"),
    "cl": _content_length,
    "au": _auth_user,
    "ar": lambda c: _auth_param(c, "realm"),
    # first line
    "rm": msg_method,
    "rs": _reply(lambda c: int(c.msg.status)),
    "rr": _reply(lambda c: str(c.msg.reason)),
    "rv": lambda c: str(c.msg.version),
    "mt": lambda c: 1 if c.msg.is_request else 2,
    # whole message
    "mb": msg_text,
    "ml": lambda c: len(c.msg.to_bytes()),
    "rb": body_text,
    # addresses
    "si": lambda c: c.src[0],
    "sp": lambda c: int(c.src[1]),
    "su": src_uri,
    "Ri": lambda c: c.dst[0],
    "Rp": lambda c: int(c.dst[1]),
    "RAi": _adv_ip,
    "RAp": _adv_port,
    "pr": lambda c: c.proto,
    "proto": lambda c: c.proto,
    # flags and misc
    "mf": lambda c: c.flags,
    "bf": lambda c: c.bflags,
    "sf": _sflags,
    "mi": lambda c: c.msg_id,
    "pp": lambda c: os.getpid(),
    "Ts": lambda c: int(time.time()),
    "TS": lambda c: STARTUP_TIME,
    "Tf": lambda c: time.ctime(),
    "null": lambda c: None,
}

_INNER_GETTERS: dict[str, Callable[[MsgContext, PvSpec], PvValue]] = {
    "hdr": _hdr,
    "hdrc": lambda c, s: len(_hdr_bodies(c, s.inner or "")),
    "var": lambda c, s: _var_get(c.proc.vars, s.inner or ""),
    "shv": lambda c, s: _var_get(c.proc.shared, s.inner or ""),
    "avp": _avp_get,
    "env": lambda c, s: os.environ.get(s.inner or ""),
}


# ---------------------------------------------------------------------------
# setters


def _set_ruri_part(ctx: MsgContext, part: str, value: PvValue) -> bool:
    if not ctx.msg.is_request:
        log(L_ERR, "cannot set R-URI attributes of a reply")
        return False
    if part == "uri":
        if value is None or value == "":
            log(L_ERR, "cannot set $ru to null")
            return False
        if _uri(str(value)) is None:
            return False
        ctx.new_uri = str(value)
        return True
    new_value: Any
    if value is None or value == "":
        if part == "host":
            log(L_ERR, "cannot set an empty R-URI host")
            return False
        new_value = None
    elif part == "port":
        try:
            new_value = int(value)
        except ValueError:
            log(L_ERR, f"invalid port value [{value}]")
            return False
    else:
        new_value = str(value)
    updated = uri_replace(ctx.ruri, **{part: new_value})
    if updated is None:
        return False
    ctx.new_uri = updated
    return True


def _set_du(ctx: MsgContext, spec: PvSpec, value: PvValue) -> bool:
    if value is None or value == "":
        ctx.dst_uri = None
        return True
    if _uri(str(value)) is None:
        return False
    ctx.dst_uri = str(value)
    return True


def _set_var(store: dict[str, Any], key: str, value: PvValue) -> bool:
    store[key] = 0 if value is None else value
    return True


def _set_avp(ctx: MsgContext, spec: PvSpec, value: PvValue) -> bool:
    avps: dict[str, list[str | int]] = ctx.extra.setdefault("avps", {})
    key = spec.inner or ""
    if value is None:
        avps.pop(key, None)
    else:
        avps.setdefault(key, []).append(value)
    return True


def _set_int_attr(attr: str) -> Callable[[MsgContext, PvSpec, PvValue], bool]:
    def setter(ctx: MsgContext, spec: PvSpec, value: PvValue) -> bool:
        try:
            setattr(ctx, attr, 0 if value is None else int(value) & 0xFFFFFFFF)
        except ValueError:
            log(L_ERR, f"invalid integer value [{value}]")
            return False
        return True

    return setter


_SETTERS: dict[str, Callable[[MsgContext, PvSpec, PvValue], bool]] = {
    "ru": lambda c, s, v: _set_ruri_part(c, "uri", v),
    "rU": lambda c, s, v: _set_ruri_part(c, "user", v),
    "rd": lambda c, s, v: _set_ruri_part(c, "host", v),
    "rp": lambda c, s, v: _set_ruri_part(c, "port", v),
    "du": _set_du,
    "var": lambda c, s, v: _set_var(c.proc.vars, s.inner or "", v),
    "shv": lambda c, s, v: _set_var(c.proc.shared, s.inner or "", v),
    "avp": _set_avp,
    "mf": _set_int_attr("flags"),
    "bf": _set_int_attr("bflags"),
}


# ---------------------------------------------------------------------------
# public API


def get_spec(ctx: MsgContext, spec: PvSpec) -> PvValue:
    """Value of a parsed PV."""
    inner_getter = _INNER_GETTERS.get(spec.cls)
    try:
        if inner_getter is not None:
            return inner_getter(ctx, spec)
        return _GETTERS[spec.cls](ctx)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        log(L_ERR, f"unable to get pv value for [{spec.cls}]: {exc}")
        return None


def get_pv(ctx: MsgContext, name: str) -> PvValue:
    """Value of the PV ``name``: str, int, or None (null; also for invalid names)."""
    spec = parse_pv_name(name)
    if spec is None:
        log(L_ERR, f"invalid pv name [{name}]")
        return None
    return get_spec(ctx, spec)


def set_pv(ctx: MsgContext, name: str, value: PvValue) -> bool:
    """Assign ``value`` (None = null/unset) to a writable PV; False if invalid or read-only."""
    spec = parse_pv_name(name)
    if spec is None:
        log(L_ERR, f"invalid pv name [{name}]")
        return False
    setter = _SETTERS.get(spec.cls)
    if setter is None:
        log(L_ERR, f"pv [{name}] is read-only")
        return False
    return setter(ctx, spec, value)


def pv_to_text(value: PvValue) -> str:
    """How a value prints in a format (null as ``<null>``)."""
    if value is None:
        return NULL_TEXT
    return str(value)


@lru_cache(maxsize=1024)
def parse_format(fmt: str) -> tuple[str | PvSpec, ...]:
    """Split an xlog format into literal text and PV specs (cached).

    ``$$`` and ``\\$`` print a literal ``$``; a ``$`` that does not start a
    valid PV name is printed as it is.
    """
    parts: list[str | PvSpec] = []
    text: list[str] = []
    i = 0
    n = len(fmt)
    while i < n:
        c = fmt[i]
        if c == "\\" and i + 1 < n and fmt[i + 1] == "$":
            text.append("$")
            i += 2
            continue
        if c != "$":
            text.append(c)
            i += 1
            continue
        if i + 1 < n and fmt[i + 1] == "$":
            text.append("$")
            i += 2
            continue
        spec, end = _scan_pv(fmt, i)
        if spec is None:
            text.append(c)
            i += 1
            continue
        if text:
            parts.append("".join(text))
            text = []
        parts.append(spec)
        i = end
    if text:
        parts.append("".join(text))
    return tuple(parts)


def _scan_pv(fmt: str, start: int) -> tuple[PvSpec | None, int]:
    """PV starting at ``fmt[start] == '$'``: (spec, end index) or (None, start)."""
    i = start + 1
    if i < len(fmt) and fmt[i] == "(":
        end = _match_paren(fmt, i)
        if end < 0:
            return None, start
        return parse_pv_name(fmt[start : end + 1]), end + 1
    j = i
    while j < len(fmt) and fmt[j] in _NAME_CHARS:
        j += 1
    cls = fmt[i:j]
    if cls in _INNER_GETTERS:
        if j < len(fmt) and fmt[j] == "(":
            end = _match_paren(fmt, j)
            if end > j + 1:
                return parse_pv_name(fmt[start : end + 1]), end + 1
        return None, start
    if cls in _GETTERS:
        return PvSpec(cls), j
    return None, start


def format_pv(ctx: MsgContext, fmt: str) -> str:
    """Expand an xlog-style format: PVs replaced by their values, null as ``<null>``."""
    out: list[str] = []
    for part in parse_format(fmt):
        if isinstance(part, str):
            out.append(part)
        else:
            out.append(pv_to_text(get_spec(ctx, part)))
    return "".join(out)


# ---------------------------------------------------------------------------
# registration by modules (tm's $T_*): additive, so pv.py does not import modules


def register_pv(
    name: str,
    getter: Callable[[MsgContext], PvValue] | None = None,
    inner_getter: Callable[[MsgContext, PvSpec], PvValue] | None = None,
) -> None:
    """Add a read-only PV class: ``$name`` (``getter``) or ``$name(inner)`` (``inner_getter``)."""
    if getter is not None:
        _GETTERS[name] = getter
    if inner_getter is not None:
        _INNER_GETTERS[name] = inner_getter
    # names parsed before registration were cached as unknown
    parse_pv_name.cache_clear()
    parse_format.cache_clear()
