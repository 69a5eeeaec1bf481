"""``KSR.auth``: digest authentication (Kamailio auth module), also the API auth_db uses.

Flow of a check (Kamailio's pre_auth / check_response / post_auth):

1. ACK, CANCEL and PRACK are authenticated without credentials (they cannot be
   challenged).
2. The credentials header for the realm is found (``Authorization`` for
   REGISTER, ``Proxy-Authorization`` otherwise), parsed and checked for the
   mandatory fields; then its nonce must be one of ours and not expired.
3. The caller supplies HA1 (from a password, a PV or the subscriber table) and
   the response is recomputed (RFC 2617 3.2.2.1, qop=auth or none).
4. On success the header is remembered so ``consume_credentials`` removes it.

Nonces are ``base64(since | expires [| nid | pool+flags] | MAC [| binding MAC])``
(Kamailio's layout, keyed SHA-256 HMACs truncated to 16 bytes instead of MD5s): the
MAC proves the nonce is ours and unchanged; ``nid`` indexes the shared nonce_count /
one_time_nonce tables (``auth_nonce``); the binding MAC ties the nonce to the parts of
the challenged request chosen by ``auth_checks_*`` (R-URI, Call-ID, From tag, source IP).
Replay state is only consumed by a correct response (Kamailio's flag 32 behaviour), so
a forged request cannot burn a client's nonce.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import router as _router
from ..config.modparams import or_default
from ..core import log as klog
from ..core.pv import set_pv
from ..dispatch import StartupError
from ..sip.headers import header_key
from ..sip.nameaddr import SipParseError
from ..sip.uri import parse_uri
from . import params as _params
from . import sl
from .auth_nonce import (
    FLAG_NC,
    FLAG_OT,
    POOL_MASK,
    Check,
    NonceTables,
    table_size,
)

if TYPE_CHECKING:
    from ..core.context import MsgContext, ProcessState
    from ..sip.message import Header

ORIGIN = "auth"

# return codes to the script (Kamailio's auth_cfg_result_t)
AUTH_USER_MISMATCH = -8
AUTH_NONCE_REUSED = -6
AUTH_NO_CREDENTIALS = -5
AUTH_STALE_NONCE = -4
AUTH_USER_UNKNOWN = -3
AUTH_INVALID_PASSWORD = -2
AUTH_ERROR = -1
AUTH_OK = 1

# auth flags (pv_auth_check) and checks
FLAG_PASSWDHA1 = 1
FLAG_HDRQOPNONE = 2
FLAG_HDRQOPAUTH = 4
FLAG_HDRQOPAUTHINT = 8
CHECK_ID = 1
CHECK_SKIPFWD = 2

WWW = "Authorization"  # credentials answering a 401
PROXY = "Proxy-Authorization"  # credentials answering a 407

EXTRA_AUTHORIZED = "auth_authorized"  # ctx.extra: the Header that authenticated the request
SECRET_KEY = "auth.secret"  # proc.extra: nonce secret (bytes), made before workers fork
TABLES_KEY = "auth.nonces"  # proc.extra: NonceTables, made before workers fork

# auth_checks_* bits (Kamailio's nonce.h): what the nonce is bound to
CHECK_FULL_URI = 1
CHECK_CALLID = 2
CHECK_FROMTAG = 4
CHECK_SRC_IP = 8

_params.register("auth")

_NO_AUTH_METHODS = frozenset(("ACK", "CANCEL", "PRACK"))


def params(proc: ProcessState) -> Mapping[str, Any]:
    return _params.params(proc, "auth")


def _init_router(router: Any) -> None:
    """One secret for all workers: chosen in the main process, before fork."""
    if "auth" not in router.registry.bases:
        return
    p = params(router.proc)
    secret = str(p.get("secret") or "")
    router.proc.extra[SECRET_KEY] = secret.encode() if secret else secrets.token_bytes(32)
    alg = str(p.get("algorithm") or "MD5")
    if alg not in ALGORITHMS:
        raise StartupError(f'auth: invalid algorithm "{alg}" (use "", "MD5" or "SHA-256")')
    try:
        router.proc.extra[TABLES_KEY] = _make_tables(p)
    except (ValueError, TypeError, OSError) as exc:
        raise StartupError(f"auth: cannot create the nonce tables: {exc}") from exc


def _install() -> None:
    if _init_router not in _router.ROUTER_INIT_HOOKS:
        _router.ROUTER_INIT_HOOKS.append(_init_router)


_install()


def _secret(proc: ProcessState) -> bytes:
    value = proc.extra.get(SECRET_KEY)
    if not isinstance(value, bytes):
        configured = str(params(proc).get("secret") or "")
        value = configured.encode() if configured else secrets.token_bytes(32)
        proc.extra[SECRET_KEY] = value
    return value


def _make_tables(p: Mapping[str, Any]) -> NonceTables:
    """The shared nonce id / nc / one-time tables sized by the modparams (0 = feature off)."""
    nc_size = int(or_default(p, "auth", "nc_array_size"))
    otn_size = int(or_default(p, "auth", "otn_in_flight_no"))
    nc = nc_size, int(p.get("nc_array_order") or 0)
    otn = otn_size, int(p.get("otn_in_flight_order") or 0)
    return NonceTables(
        int(or_default(p, "auth", "nid_pool_no")),
        table_size(*nc) if p.get("nonce_count") else 0,
        table_size(*otn) if p.get("one_time_nonce") else 0,
    )


def nonce_tables(proc: ProcessState) -> NonceTables:
    tables = proc.extra.get(TABLES_KEY)
    if not isinstance(tables, NonceTables):  # no Router (unit use): made on first use
        tables = _make_tables(params(proc))
        proc.extra[TABLES_KEY] = tables
    return tables


# ---------------------------------------------------------------------------
# hashes (RFC 2617 / RFC 7616)

ALGORITHMS: dict[str, Callable[[bytes], Any]] = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
}


def algorithm(proc: ProcessState) -> str:
    alg = str(params(proc).get("algorithm") or "MD5")
    return alg if alg in ALGORITHMS else "MD5"


def hash_hex(alg: str, text: str) -> str:
    return str(ALGORITHMS[alg](text.encode("utf-8", "surrogateescape")).hexdigest())


def calc_ha1(alg: str, username: str, realm: str, password: str) -> str:
    """HA1 = H(username:realm:password)."""
    return hash_hex(alg, f"{username}:{realm}:{password}")


def calc_response(alg: str, ha1: str, cred: Credentials, method: str, body: bytes = b"") -> str:
    """The expected ``response`` of ``cred`` for this HA1 (qop auth/auth-int or none)."""
    if cred.qop.lower() == "auth-int":
        hbody = str(ALGORITHMS[alg](body).hexdigest())
        ha2 = hash_hex(alg, f"{method}:{cred.uri}:{hbody}")
    else:
        ha2 = hash_hex(alg, f"{method}:{cred.uri}")
    if cred.qop:
        return hash_hex(alg, f"{ha1}:{cred.nonce}:{cred.nc}:{cred.cnonce}:{cred.qop}:{ha2}")
    return hash_hex(alg, f"{ha1}:{cred.nonce}:{ha2}")


# ---------------------------------------------------------------------------
# nonces

_MAC_BYTES = 16
_HEAD = struct.Struct(">II")  # since, expires
_NID = struct.Struct(">IB")  # nonce id, pool | flags
# binary length -> has a nid; each may end with a binding MAC: four distinct lengths
_LAYOUTS = {
    _HEAD.size + _MAC_BYTES + bound * _MAC_BYTES + nid * _NID.size: bool(nid)
    for nid in (0, 1)
    for bound in (0, 1)
}
_NC_RE = re.compile(r"[0-9A-Fa-f]{8}")

NONCE_OK, NONCE_INVALID, NONCE_STALE, NONCE_REUSED = 0, 1, 4, 6


@dataclass(frozen=True)
class Nonce:
    """A decoded nonce; ``signed`` is what ``mac`` covers."""

    since: int
    expires: int
    nid: int
    flags: int
    signed: bytes
    mac: bytes
    binding: bytes  # b"" when the nonce is not bound to its request


def _mac(proc: ProcessState, label: bytes, data: bytes) -> bytes:
    return hmac.new(_secret(proc), label + data, "sha256").digest()[:_MAC_BYTES]


def auth_checks(ctx: MsgContext) -> int:
    """Kamailio's get_auth_checks: the auth_checks_* value that applies to this request."""
    p = params(ctx.proc)
    if method_of(ctx) == "REGISTER":
        return int(p.get("auth_checks_register") or 0)
    try:
        in_dialog = bool(ctx.msg.to_tag)
    except SipParseError:
        in_dialog = False
    return int(p.get("auth_checks_in_dlg" if in_dialog else "auth_checks_no_dlg") or 0)


def _binding(ctx: MsgContext, checks: int) -> bytes:
    """The request parts selected by ``checks``, each length-prefixed (no ambiguity)."""
    try:
        from_tag = ctx.msg.from_tag or ""
    except SipParseError:
        from_tag = ""
    parts = (
        (CHECK_FULL_URI, ctx.ruri),
        (CHECK_CALLID, ctx.msg.call_id or ""),
        (CHECK_FROMTAG, from_tag),
        (CHECK_SRC_IP, str(ctx.src[0])),
    )
    out = bytearray()
    for bit, text in parts:
        if checks & bit:
            data = text.encode("utf-8", "surrogateescape")
            out += struct.pack(">BI", bit, len(data)) + data
    return bytes(out)


def new_nonce(proc: ProcessState, now: float | None = None, ctx: MsgContext | None = None) -> str:
    """A nonce valid nonce_expire seconds, tracked and bound to ``ctx`` as configured."""
    t = int(time.time() if now is None else now)
    expires = t + int(or_default(params(proc), "auth", "nonce_expire"))
    signed = _HEAD.pack(t & 0xFFFFFFFF, expires & 0xFFFFFFFF)
    tables = nonce_tables(proc)
    if tables.enabled:
        signed += _NID.pack(*tables.issue(klog.LOG.rank))
    mac = _mac(proc, b"nonce", signed)
    binding = b""
    if ctx is not None and (checks := auth_checks(ctx)):
        binding = _mac(proc, b"bind", signed + mac + _binding(ctx, checks))
    return base64.b64encode(signed + mac + binding).decode("ascii")


def decode_nonce(proc: ProcessState, nonce: str) -> Nonce | None:
    """The nonce if it is one of ours (MAC checked), else None."""
    try:
        raw = base64.b64decode(nonce.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    has_nid = _LAYOUTS.get(len(raw))
    if has_nid is None:
        return None
    cut = _HEAD.size + (_NID.size if has_nid else 0)
    signed, mac, binding = raw[:cut], raw[cut : cut + _MAC_BYTES], raw[cut + _MAC_BYTES :]
    if not hmac.compare_digest(mac, _mac(proc, b"nonce", signed)):
        return None
    since, expires = _HEAD.unpack_from(signed)
    nid, flags = _NID.unpack_from(signed, _HEAD.size) if has_nid else (0, 0)
    return Nonce(since, expires, nid, flags, signed, mac, binding)


def check_nonce(
    proc: ProcessState,
    nonce: str,
    now: float | None = None,
    ctx: MsgContext | None = None,
    cred: Credentials | None = None,
    update: bool = False,
) -> int:
    """NONCE_OK, NONCE_INVALID (not ours, bad nc), NONCE_STALE or NONCE_REUSED (Kamailio's
    check_nonce). With ``update`` the nc / one-time state is consumed (atomically)."""
    n = decode_nonce(proc, nonce)
    if n is None:
        return NONCE_INVALID
    t = int(time.time() if now is None else now)
    tables = nonce_tables(proc)
    if n.since < tables.up_since and n.since < t:
        return NONCE_STALE  # made before this start: its nc / one-time state is lost
    if n.since > t + int(params(proc).get("nonce_auth_max_drift") or 0):
        return NONCE_STALE  # from the future (clock change): re-challenge, as Kamailio
    if (tables.nc_size and not n.flags & FLAG_NC) or (tables.otn_size and not n.flags & FLAG_OT):
        return NONCE_STALE  # made before nonce_count / one_time_nonce were enabled
    pool = n.flags & POOL_MASK
    if tables.nc_size and cred is not None and cred.qop and cred.nc:
        # nc is in the response hash only with qop: then nc alone stops replays and the
        # other checks are skipped (Kamailio's documented nonce_count behaviour)
        if not _NC_RE.fullmatch(cred.nc):
            klog.err(f"bad nc value [{klog.clip(cred.nc)}]", ORIGIN)
            return NONCE_INVALID
        if tables.check_nc(n.nid, pool, int(cred.nc, 16), update) != Check.OK:
            return NONCE_STALE
        return NONCE_STALE if n.expires < t else NONCE_OK
    checks = auth_checks(ctx) if ctx is not None else 0
    if checks and ctx is not None:
        want = _mac(proc, b"bind", n.signed + n.mac + _binding(ctx, checks))
        if not hmac.compare_digest(n.binding, want):
            return NONCE_STALE  # another request's nonce (or made before auth_checks_*)
    if tables.otn_size and tables.check_otn(n.nid, pool, update) != Check.OK:
        return NONCE_REUSED
    return NONCE_STALE if n.expires < t else NONCE_OK


# ---------------------------------------------------------------------------
# credentials


@dataclass
class Credentials:
    """One parsed ``Digest`` credentials header (RFC 2617 3.2.2)."""

    header: Header
    username: str  # as sent ("user" or "user@domain")
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = ""
    cnonce: str = ""
    opaque: str = ""
    qop: str = ""
    nc: str = ""
    stale: bool = False  # the nonce was ours but stale (expired, replayed nc, other request)

    @property
    def user(self) -> str:
        return self.username.split("@", 1)[0]

    @property
    def domain(self) -> str:
        return self.username.partition("@")[2]


_PARAM_RE = re.compile(r'\s*([A-Za-z][A-Za-z0-9_.-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*(,|$)')


def parse_digest(value: str) -> dict[str, str] | None:
    """The parameters of a ``Digest ...`` header value (names lower-case); None if malformed."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    out: dict[str, str] = {}
    pos, rest = 0, rest.strip()
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if m is None:
            return None
        raw = m.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        out[m.group(1).lower()] = raw
        pos = m.end()
    return out


def _strip_realm(proc: ProcessState, realm: str) -> str:
    prefix = str(params(proc).get("realm_prefix") or "")
    if prefix and realm.startswith(prefix):
        return realm[len(prefix) :]
    return realm


def find_credentials(ctx: MsgContext, realm: str, hdr_name: str) -> tuple[int, Credentials | None]:
    """(0, creds) for the realm; (1, None) none for it; (-1, None) a malformed header."""
    key = header_key(hdr_name)
    realm = _strip_realm(ctx.proc, realm)
    for h in ctx.msg.headers:
        if h.key != key:
            continue
        fields = parse_digest(h.value)
        if fields is None:
            klog.err(f"error while parsing credentials [{klog.clip(h.value)}]", ORIGIN)
            return -1, None
        if fields.get("realm", "") != realm:
            continue
        return 0, Credentials(
            header=h,
            username=fields.get("username", ""),
            realm=fields.get("realm", ""),
            nonce=fields.get("nonce", ""),
            uri=fields.get("uri", ""),
            response=fields.get("response", ""),
            algorithm=fields.get("algorithm", ""),
            cnonce=fields.get("cnonce", ""),
            opaque=fields.get("opaque", ""),
            qop=fields.get("qop", ""),
            nc=fields.get("nc", ""),
        )
    return 1, None


def _cred_ok(proc: ProcessState, c: Credentials) -> bool:
    """Kamailio's check_dig_cred: mandatory fields, qop companions, supported algorithm."""
    if not (c.username and c.nonce and c.uri and c.response):
        return False
    if c.qop and (not c.cnonce or not c.nc):
        return False
    if c.qop and c.qop.lower() not in ("auth", "auth-int"):
        return False
    return not c.algorithm or c.algorithm.upper() == algorithm(proc).upper()


def method_of(ctx: MsgContext) -> str:
    return str(ctx.msg.method).upper()


def pre_auth(ctx: MsgContext, realm: str, hdr_name: str) -> tuple[int | None, Credentials | None]:
    """(None, creds) when the response must be checked, else (final auth code, creds)."""
    if method_of(ctx) in _NO_AUTH_METHODS:
        return AUTH_OK, None
    rc, cred = find_credentials(ctx, realm, hdr_name)
    if rc < 0:
        return AUTH_ERROR, None
    if rc > 0 or cred is None:
        klog.dbg(f"credentials with realm '{realm}' not found", ORIGIN)
        return AUTH_NO_CREDENTIALS, None
    if not _cred_ok(ctx.proc, cred):
        klog.err("credentials are not filled properly", ORIGIN)
        return AUTH_ERROR, cred
    rc = _nonce_result(ctx, cred, update=False)
    return (None if rc == AUTH_OK else rc), cred


def _nonce_result(ctx: MsgContext, cred: Credentials, update: bool) -> int:
    """check_nonce as an auth code (AUTH_OK, -1, -4 stale, -6 reused); marks stale creds."""
    state = check_nonce(ctx.proc, cred.nonce, ctx=ctx, cred=cred, update=update)
    if state == NONCE_OK:
        return AUTH_OK
    if state == NONCE_STALE:
        cred.stale = True  # the challenge built for this failure says stale=true
        return AUTH_STALE_NONCE
    if state == NONCE_REUSED:
        klog.dbg("one-time nonce reused", ORIGIN)
        return AUTH_NONCE_REUSED
    klog.dbg(f"invalid nonce value received [{klog.clip(cred.nonce)}]", ORIGIN)
    return AUTH_ERROR


def check_response(ctx: MsgContext, cred: Credentials, ha1: str, method: str) -> int:
    """AUTH_OK, AUTH_INVALID_PASSWORD, or AUTH_ERROR for a response of the wrong length."""
    alg = algorithm(ctx.proc)
    expected = calc_response(alg, ha1.lower(), cred, method, ctx.msg.body)
    # bytes: the client's text may hold any byte (compare_digest refuses non-ASCII str)
    got = cred.response.lower().encode("utf-8", "surrogateescape")
    if len(got) != len(expected):
        klog.dbg(f"received response length {len(got)} != {len(expected)}", ORIGIN)
        return AUTH_ERROR
    if hmac.compare_digest(expected.encode("ascii"), got):
        return AUTH_OK
    return AUTH_INVALID_PASSWORD


def post_auth(ctx: MsgContext, cred: Credentials) -> int:
    """After a correct response: consume the nonce's nc / one-time use (a concurrent replay
    may have won the race), then mark the header for consume_credentials."""
    if nonce_tables(ctx.proc).enabled:
        rc = _nonce_result(ctx, cred, update=True)
        if rc != AUTH_OK:
            return rc
    ctx.extra[EXTRA_AUTHORIZED] = cred.header
    return AUTH_OK


def digest_authenticate(
    ctx: MsgContext,
    realm: str,
    hdr_name: str,
    get_ha1: Callable[[Credentials], str | int],
) -> tuple[int, Credentials | None]:
    """The whole check; ``get_ha1`` returns HA1 or a negative auth code (user unknown, error)."""
    rc, cred = pre_auth(ctx, realm, hdr_name)
    if rc is not None or cred is None:
        return (AUTH_ERROR if rc is None else rc), cred
    ha1 = get_ha1(cred)
    if isinstance(ha1, int):
        return ha1, cred
    rc = check_response(ctx, cred, ha1, method_of(ctx))
    return (post_auth(ctx, cred) if rc == AUTH_OK else rc), cred


def _uri_user_host(uri: str | None) -> tuple[str, str] | None:
    if not uri:
        return None
    try:
        u = parse_uri(uri)
    except (SipParseError, ValueError):
        return None
    return (u.user or ""), u.host.lower()


def identity_check(
    ctx: MsgContext, cred: Credentials, use_domain: bool, skip_forwarded: bool = False
) -> int:
    """Auth username == From user (To user for REGISTER/PUBLISH, and From == To); AUTH_OK or -8/-1."""
    method = method_of(ctx)
    try:
        furi = _uri_user_host(ctx.msg.from_uri)
        turi = _uri_user_host(ctx.msg.to_uri) if method in ("REGISTER", "PUBLISH") else None
    except SipParseError:
        return AUTH_ERROR
    if furi is None or (method in ("REGISTER", "PUBLISH") and turi is None):
        return AUTH_ERROR
    uri = turi if turi is not None else furi
    forwarded = method in ("INVITE", "BYE", "PRACK", "UPDATE", "MESSAGE")
    if not (skip_forwarded and forwarded) and cred.user != uri[0]:
        klog.dbg("authentication username mismatch with from/to username", ORIGIN)
        return AUTH_USER_MISMATCH
    if turi is not None:
        if furi[0] != turi[0] or (use_domain and furi[1] != turi[1]):
            return AUTH_USER_MISMATCH
        if method == "PUBLISH":
            ruri = _uri_user_host(ctx.ruri)
            if ruri is None:
                return AUTH_ERROR
            if furi[0] != ruri[0] or (use_domain and furi[1] != ruri[1]):
                return AUTH_USER_MISMATCH
    return AUTH_OK


# ---------------------------------------------------------------------------
# challenges


def challenge_header(
    ctx: MsgContext, realm: str, qop: str, stale: bool, hdr_name: str, nonce: str | None = None
) -> str:
    """The challenge header line (CRLF-terminated), built like Kamailio's get_challenge_hf."""
    p = params(ctx.proc)
    name = str(
        p.get("proxy_challenge_header") if hdr_name == PROXY else p.get("www_challenge_header")
    )
    realm = _strip_realm(ctx.proc, realm)
    line = f'{name}: Digest realm="{realm}", nonce="{nonce or new_nonce(ctx.proc, ctx=ctx)}"'
    if qop:
        line += f', qop="{qop}"'
    if stale:
        line += ", stale=true"
    return line + f", algorithm={algorithm(ctx.proc)}\r\n"


def send_auth_reply(ctx: MsgContext, code: int, reason: str, hdr: str | None) -> int:
    """Reply with ``hdr`` added (stateful when a transaction exists, unless force_stateless_reply)."""
    saved = list(ctx.extra.get("reply_headers", ()))
    if hdr:
        ctx.extra["reply_headers"] = [*saved, hdr]
    try:
        if params(ctx.proc).get("force_stateless_reply"):
            return sl.reply(ctx, code, reason)
        return sl.send_reply(ctx, code, reason)
    finally:
        ctx.extra["reply_headers"] = saved


def challenge(ctx: MsgContext, realm: str, flags: int, hdr_name: str) -> int:
    """Kamailio's auth_challenge_helper: 1, -2 (challenge error), -3 (reply failed)."""
    qop = "auth-int" if flags & 2 else ("auth" if flags & 1 else "")
    try:
        hf = challenge_header(ctx, realm, qop, bool(flags & 16), hdr_name)
    except (ValueError, TypeError) as exc:
        klog.err(f"error while creating challenge: {exc}", ORIGIN)
        if not flags & 4 and send_auth_reply(ctx, 500, "Internal Server Error", None) < 0:
            return -4
        return -2
    if hdr_name == WWW:
        rc = send_auth_reply(ctx, 401, "Unauthorized", hf)
    else:
        rc = send_auth_reply(ctx, 407, "Proxy Authentication Required", hf)
    return 1 if rc > 0 else -3


def www_challenge(ctx: MsgContext, realm: str, flags: int) -> int:
    return challenge(ctx, realm, flags, WWW)


def proxy_challenge(ctx: MsgContext, realm: str, flags: int) -> int:
    return challenge(ctx, realm, flags, PROXY)


def _hdr_for(ctx: MsgContext) -> str:
    return WWW if method_of(ctx) == "REGISTER" else PROXY


# ---------------------------------------------------------------------------
# exports


def auth_challenge(ctx: MsgContext, realm: str, flags: int) -> int:
    if not ctx.msg.is_request:
        klog.err("auth_challenge() needs a request", ORIGIN)
        return -1
    return challenge(ctx, realm, flags, _hdr_for(ctx))


def has_credentials(ctx: MsgContext, realm: str) -> int:
    if not ctx.msg.is_request:
        return -1
    for name in (PROXY, WWW):
        rc, _cred = find_credentials(ctx, realm, name)
        if rc == 0:
            klog.dbg(f"found {name} credentials with realm [{realm}]", ORIGIN)
            return 1
    return -1


def consume_credentials(ctx: MsgContext) -> int:
    if not ctx.msg.is_request or method_of(ctx) in _NO_AUTH_METHODS:
        return -1
    hdr = ctx.extra.get(EXTRA_AUTHORIZED)
    headers = ctx.msg.headers
    for i, h in enumerate(headers):
        if h is hdr:
            del headers[i]
            ctx.msg.invalidate()
            ctx.extra.pop(EXTRA_AUTHORIZED, None)
            return 1
    klog.err("no authorized credentials found (error in scripts)", ORIGIN)
    return -1


def _challenge_to_avp(ctx: MsgContext, realm: str, flags: int, cred: Credentials | None) -> int:
    """pv_authenticate's failure path: the challenge header goes to challenge_attr."""
    qop = "auth-int" if flags & FLAG_HDRQOPAUTHINT else ("auth" if flags & FLAG_HDRQOPAUTH else "")
    hf = challenge_header(ctx, realm, qop, cred is not None and cred.stale, _hdr_for(ctx))
    attr = str(or_default(params(ctx.proc), "auth", "challenge_attr"))
    name = attr if attr.startswith("$avp(") else f"$avp({attr.lstrip('$')})"
    if not set_pv(ctx, name, hf):
        klog.err(f"error while creating attribute {attr} with challenge", ORIGIN)
        return AUTH_ERROR
    return 0


def pv_auth_check(ctx: MsgContext, realm: str, passwd: str, flags: int, checks: int) -> int:
    if not ctx.msg.is_request:
        return AUTH_ERROR
    if method_of(ctx) in ("ACK", "CANCEL"):
        return AUTH_OK
    if not realm:
        klog.err("invalid realm value - empty content", ORIGIN)
        return AUTH_ERROR
    if not passwd:
        klog.err("invalid password value - empty content", ORIGIN)
        return AUTH_ERROR
    alg = algorithm(ctx.proc)

    def ha1_of(cred: Credentials) -> str | int:
        if flags & FLAG_PASSWDHA1:
            return passwd
        return calc_ha1(alg, cred.username, _strip_realm(ctx.proc, realm), passwd)

    rc, cred = digest_authenticate(ctx, realm, _hdr_for(ctx), ha1_of)
    if rc < 0:
        if flags & (FLAG_HDRQOPNONE | FLAG_HDRQOPAUTH | FLAG_HDRQOPAUTHINT):
            if _challenge_to_avp(ctx, realm, flags, cred) < 0:
                return AUTH_ERROR
        return rc
    if checks & CHECK_ID and cred is not None:
        return identity_check(ctx, cred, bool(params(ctx.proc).get("use_domain")))
    return rc
