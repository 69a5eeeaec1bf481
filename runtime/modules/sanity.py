"""``KSR.sanity``: sanity checks of received messages (Kamailio sanity module).

``sanity_check(msg_checks, uri_checks)`` runs the checks selected by the bit
masks below, in Kamailio's order, and stops at the first failure. A failed
request is answered statelessly (400, 416, 420 or 505 with Kamailio's reason
phrases) unless ``noreply`` is set, in which case ``sanity_reply()`` sends it
later. As Kamailio's KEMI function, it returns 1 when the message passed and
-1 when it failed (``autodrop`` only matters for the native cfg function), so
scripts write ``if KSR.sanity.sanity_check(17895, 7) < 0 then ... exit``.
Some failures are silent as in Kamailio: a missing From/To/Call-ID/CSeq/Via,
duplicated headers, non-Digest credentials under check 2048.
Checks 8 and 16 (Via version and protocol) always pass, as in Kamailio.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..core import log as klog
from ..sip.message import _split_list
from ..sip.nameaddr import SipParseError, parse_name_addr, split_unquoted
from ..sip.uri import parse_uri
from . import params as _params
from . import sl

if TYPE_CHECKING:
    from ..core.context import MsgContext

MODULE = "sanity"

RURI_SIP_VERSION = 1
RURI_SCHEME = 2
REQUIRED_HEADERS = 4
VIA_SIP_VERSION = 8
VIA_PROTOCOL = 16
CSEQ_METHOD = 32
CSEQ_VALUE = 64
CONTENT_LENGTH = 128
EXPIRES_VALUE = 256
PROXY_REQUIRE = 512
PARSE_URIS = 1024
CHECK_DIGEST = 2048
CHECK_DUPTAGS = 4096
CHECK_AUTHORIZATION = 8192
VIA1_HEADER = 16384

URI_RURI = 1
URI_FROM = 2
URI_TO = 4
URI_CONTACT = 8

_params.register(MODULE)

PASSED = 1
FAILED = 0
NOT_APPLICABLE = -2

_REPLY_KEY = "sanity.reply"
_UINT_MAX = 4294967295


def _p(ctx: MsgContext, name: str) -> Any:
    return _params.params(ctx.proc, MODULE)[name]


class _Check:
    """One run: the context and how to report a failure."""

    def __init__(self, ctx: MsgContext) -> None:
        self.ctx = ctx
        self.msg = ctx.msg

    def fail(self, code: int, reason: str, unsupported: str | None = None) -> int:
        """Reply (or remember the reply with noreply=1) and return FAILED."""
        ctx = self.ctx
        klog.dbg(f"sanity: check failed: {code} {reason}")
        if not self.msg.is_request or str(self.msg.method).upper() == "ACK":
            return FAILED
        if _p(ctx, "noreply"):
            ctx.extra[_REPLY_KEY] = (code, reason, unsupported)
            return FAILED
        _send(ctx, code, reason, unsupported)
        return FAILED

    def silent(self, why: str) -> int:
        klog.warn(f"sanity: {why}")
        return FAILED


def _send(ctx: MsgContext, code: int, reason: str, unsupported: str | None) -> int:
    if unsupported:
        ctx.extra.setdefault("reply_headers", []).append(f"Unsupported: {unsupported}\r\n")
    return int(sl.reply(ctx, code, reason))


def _uint_ok(text: str) -> bool:
    return bool(text) and text.isascii() and text.isdigit() and int(text) <= _UINT_MAX


# ---------------------------------------------------------------------------
# the checks


def _ruri_sip_version(c: _Check) -> int:
    if not c.msg.is_request:
        return PASSED
    if c.msg.version.upper() != "SIP/2.0":
        return c.fail(505, "Version Not Supported (R-URI)")
    return PASSED


def _ruri_scheme(c: _Check) -> int:
    if not c.msg.is_request:
        return PASSED
    try:
        parse_uri(c.msg.ruri)
    except SipParseError:
        scheme = c.msg.ruri.partition(":")[0]
        if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme) and scheme.lower() not in (
            "sip",
            "sips",
            "tel",
        ):
            return c.fail(416, "Unsupported URI Scheme in Request URI")
        return c.fail(400, "Bad Request URI")
    return PASSED


def _required_headers(c: _Check) -> int:
    msg = c.msg
    for name in ("from", "to", "call-id", "cseq", "via"):
        if not msg.has(name):
            return c.silent(f"missing {name} header")
    for name in ("from", "to", "call-id", "cseq"):
        if msg.count(name) > 1:
            return c.silent(f"duplicated {name} header")
    return PASSED


def _via1_header(c: _Check) -> int:
    try:
        via = c.msg.top_via
    except SipParseError:
        via = None
    if via is None or not via.host:
        return c.silent("failed to parse the first Via header")
    return PASSED


def _cseq_parts(c: _Check) -> list[str] | None:
    value = c.msg.get("cseq")
    if value is None:
        return None
    return [str(x) for x in value.split()]


def _cseq_method(c: _Check) -> int:
    parts = _cseq_parts(c)
    if parts is None:
        return c.silent("missing CSeq header")
    if not c.msg.is_request:
        return PASSED
    if len(parts) < 2:
        return c.fail(400, "Missing method in CSeq header")
    if parts[1] != c.msg.method:
        return c.fail(400, "CSeq method does not match request method")
    return PASSED


def _cseq_value(c: _Check) -> int:
    parts = _cseq_parts(c)
    if parts is None:
        return c.silent("missing CSeq header")
    if not parts:
        return c.fail(400, "Missing number in CSeq header")
    if not _uint_ok(parts[0]):
        return c.fail(400, "CSeq number is illegal")
    return PASSED


def _content_length(c: _Check) -> int:
    value = c.msg.get("content-length")
    if value is None:
        return PASSED
    if not _uint_ok(value.strip()):
        return c.fail(400, "Content-Length Failure")
    if int(value.strip()) != len(c.msg.body):
        return c.fail(400, "Content-Length mis-match")
    return PASSED


def _expires_value(c: _Check) -> int:
    value = c.msg.get("expires")
    if value is None:
        return PASSED
    text = value.strip()
    if not text:
        return c.fail(400, "Missing number in Expires header")
    if not _uint_ok(text):
        return c.fail(400, "Expires value is illegal")
    return PASSED


def _proxy_require(c: _Check) -> int:
    values = c.msg.get_all("proxy-require")
    if not values:
        return PASSED
    supported = [t.strip() for t in str(_p(c.ctx, "proxy_require") or "").split(",") if t.strip()]
    for value in values:
        tokens = [t.strip() for t in value.split(",")]
        if not any(tokens):
            return c.fail(400, "Bad Proxy Require Header")
        for tok in tokens:
            if tok and tok not in supported:
                return c.fail(420, "Bad Proxy Require Extension", unsupported=tok)
    return PASSED


def _parse_uris(c: _Check, checks: int) -> int:
    msg = c.msg
    if checks & URI_RURI and msg.is_request:
        try:
            parse_uri(c.ctx.ruri)
        except SipParseError:
            return c.fail(400, "Bad Request URI")
    for bit, name, reason in ((URI_FROM, "from", "Invalid From Header"),
                              (URI_TO, "to", "Invalid To Header")):  # fmt: skip
        if not checks & bit:
            continue
        value = msg.get(name)
        if value is None or not value.strip():
            return c.silent(f"missing {name} header")
        try:
            parse_uri(parse_name_addr(value).uri)
        except SipParseError:
            return c.fail(400, reason)
    if checks & URI_CONTACT:
        contacts = msg.get_all("contact")
        if contacts:
            try:
                first = parse_name_addr(_split_list(contacts[0])[0])
                for h in contacts:
                    for item in _split_list(h):
                        parse_name_addr(item)
            except (SipParseError, IndexError):
                return c.fail(400, "Bad Contact Header")
            if first.uri != "*":
                try:
                    parse_uri(first.uri)
                except SipParseError:
                    return c.fail(400, "Bad Contact URI")
    return PASSED


_AUTH_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*')


def _digest_only(c: _Check) -> int:
    creds = c.msg.get_all("authorization") + c.msg.get_all("proxy-authorization")
    for value in creds:
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "digest":
            return NOT_APPLICABLE
        params: dict[str, str] = {}
        for item in split_unquoted(rest, ","):
            if not item.strip():
                continue
            m = _AUTH_PARAM.fullmatch(item)
            if m is None:
                return c.fail(400, "Bad Auth Header")
            params[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
        if any(k not in params for k in ("username", "realm", "nonce", "uri", "response")):
            return c.fail(400, "Bad Auth Credentials")
        if not params["username"]:
            return c.fail(400, "Auth Empty User")
        if not params["nonce"]:
            return c.fail(400, "Auth Empty Nonce")
        if not params["response"]:
            return c.fail(400, "Auth Empty Response")
    return PASSED


def _digest(c: _Check) -> int:
    # as Kamailio: credentials of another scheme fail this check (silently)
    return PASSED if _digest_only(c) == PASSED else FAILED


def _authorization(c: _Check) -> int:
    return PASSED if _digest_only(c) in (PASSED, NOT_APPLICABLE) else FAILED


def _tag_count(value: str) -> int:
    s = value
    gt = s.rfind(">")
    if gt >= 0:
        s = s[gt + 1 :]
    elif "<" not in s:
        semi = s.find(";")
        s = s[semi:] if semi >= 0 else ""
    return sum(1 for p in split_unquoted(s, ";")[1:] if p.split("=", 1)[0].strip().lower() == "tag")


def _duptags(c: _Check) -> int:
    for name, reason in (("from", "Many From Tag Params"), ("to", "Many To Tag Params")):
        value = c.msg.get(name)
        if value is None:
            return c.silent(f"missing {name} header")
        try:
            parse_name_addr(value)
        except SipParseError:
            return c.silent(f"cannot parse the {name} header")
        if _tag_count(value) > 1:
            return c.fail(400, reason)
    return PASSED


def _run(ctx: MsgContext, msg_checks: int, uri_checks: int) -> int:
    if _p(ctx, "noreply"):
        ctx.extra.pop(_REPLY_KEY, None)
    c = _Check(ctx)
    steps = (
        (RURI_SIP_VERSION, _ruri_sip_version),
        (RURI_SCHEME, _ruri_scheme),
        (REQUIRED_HEADERS, _required_headers),
        (VIA1_HEADER, _via1_header),
        (CSEQ_METHOD, _cseq_method),
        (CSEQ_VALUE, _cseq_value),
        (CONTENT_LENGTH, _content_length),
        (EXPIRES_VALUE, _expires_value),
        (PROXY_REQUIRE, _proxy_require),
        (PARSE_URIS, lambda chk: _parse_uris(chk, uri_checks)),
        (CHECK_DIGEST, _digest),
        (CHECK_AUTHORIZATION, _authorization),
        (CHECK_DUPTAGS, _duptags),
    )
    for bit, fn in steps:
        if msg_checks & bit:
            try:
                rc = fn(c)
            except SipParseError as exc:
                rc = c.silent(f"cannot parse the message: {exc}")
            if rc != PASSED:
                return -1
    return 1


def sanity_check(ctx: MsgContext, mflags: int, uflags: int) -> int:
    """Run the checks in ``mflags`` (URIs in ``uflags`` for check 1024); 1 passed, -1 failed."""
    return _run(ctx, mflags, uflags)


def sanity_check_defaults(ctx: MsgContext) -> int:
    """sanity_check() with the modparams default_checks and uri_checks."""
    return _run(ctx, int(_p(ctx, "default_checks")), int(_p(ctx, "uri_checks")))


def sanity_reply(ctx: MsgContext) -> int:
    """With noreply=1: send the reply of the last failed check (500 if none); 1, -1 on error."""
    msg = ctx.msg
    if not msg.is_request or str(msg.method).upper() == "ACK":
        return 1
    if not _p(ctx, "noreply"):
        return 1
    stored = ctx.extra.get(_REPLY_KEY)
    if stored is None:
        klog.info("sanity: no sanity reply info set - sending 500")
        return 1 if _send(ctx, 500, "Server Sanity Failure", None) > 0 else -1
    code, reason, unsupported = stored
    return 1 if _send(ctx, int(code), str(reason), unsupported) > 0 else -1
