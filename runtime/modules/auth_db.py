"""``KSR.auth_db``: digest authentication with credentials from a database table.

The digest work is the auth module's (``pykemi.runtime.modules.auth``); this
module only finds HA1: ``SELECT password_column[, credentials...] FROM table
WHERE user_column = user [AND domain_column = domain]``, as Kamailio's get_ha1.
Table and column names come from the script and the modparams, so the query is
built on lightweight ``table()``/``column()`` constructs (quoted by the dialect).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import column, select, table

from .. import router as _router
from ..core import log as klog
from ..core.pv import set_pv
from ..db.engine import Database, DbError, module_db
from ..db.url import DbUrlError
from ..dispatch import StartupError
from ..sip.nameaddr import SipParseError
from ..sip.uri import parse_uri
from . import auth
from . import params as _modparams

if TYPE_CHECKING:
    from ..core.context import MsgContext, ProcessState

ORIGIN = "auth_db"

_modparams.register("auth_db")

SUBS_USE_DOMAIN = 1
SUBS_SKIP_CREDENTIALS = 2


def _params(proc: ProcessState) -> Mapping[str, Any]:
    return _modparams.params(proc, "auth_db")


def _init_router(router: Any) -> None:
    """Check db_url and load_credentials at start-up (a bad one stops the router)."""
    if "auth_db" not in router.registry.bases:
        return
    p = _params(router.proc)
    try:
        module_db(router.proc.extra, "auth_db", str(p["db_url"]))
        parse_credentials(str(p.get("load_credentials") or ""))
    except (DbUrlError, ValueError) as exc:
        raise StartupError(f"auth_db: {exc}") from exc
    if "auth" not in router.registry.bases:
        raise StartupError('auth_db needs the auth module (loadmodule "auth.so")')


def _install() -> None:
    if _init_router not in _router.ROUTER_INIT_HOOKS:
        _router.ROUTER_INIT_HOOKS.append(_init_router)


_install()


def parse_credentials(text: str) -> list[tuple[str, str]]:
    """load_credentials "$avp(a)=col;col2" -> [(pv, column)]; a bare column goes to $avp(col)."""
    out: list[tuple[str, str]] = []
    for item in (x.strip() for x in text.split(";")):
        if not item:
            continue
        pv, eq, col = item.rpartition("=")
        if not eq:
            pv, col = f"$avp({item})", item
        pv, col = pv.strip(), col.strip()
        if not pv or not col:
            raise ValueError(f"invalid load_credentials element [{item}]")
        out.append((pv, col))
    return out


def _db(ctx: MsgContext) -> Database | None:
    try:
        return module_db(ctx.proc.extra, "auth_db", str(_params(ctx.proc)["db_url"]))
    except DbUrlError as exc:
        klog.err(str(exc), ORIGIN)
        return None


def _set_credentials(ctx: MsgContext, creds: list[tuple[str, str]], row: Any, first: int) -> None:
    for i, (pv, col) in enumerate(creds):
        value = row[first + i]
        if value is not None and not isinstance(value, (int, str)):
            value = str(value)
        if not set_pv(ctx, pv, value):
            klog.err(f"failed to convert value for column {col}", ORIGIN)


def _fetch(
    ctx: MsgContext, tname: str, cols: list[str], user: str, domain: str | None
) -> list[Any] | None:
    """Rows for the user (and domain); None on a database error (logged)."""
    p = _params(ctx.proc)
    db = _db(ctx)
    if db is None:
        return None
    ucol, dcol = str(p["user_column"]), str(p["domain_column"])
    names = list(dict.fromkeys([*cols, ucol, dcol]))
    t = table(tname, *(column(c) for c in names))
    stmt = select(*(t.c[c] for c in cols)).where(t.c[ucol] == user)
    if domain is not None:
        stmt = stmt.where(t.c[dcol] == domain)
    try:
        return list(db.fetch_all(stmt.limit(1)))
    except DbError as exc:
        klog.err(f"failed to query database: {exc}", ORIGIN)
        return None


def _is_text(*values: str) -> bool:
    """True if the values are valid UTF-8 (a table of text cannot hold anything else)."""
    try:
        for v in values:
            v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def auth_check(ctx: MsgContext, srealm: str, stable: str, iflags: int) -> int:
    if not ctx.msg.is_request:
        return auth.AUTH_ERROR
    if auth.method_of(ctx) in ("ACK", "CANCEL"):
        return auth.AUTH_OK
    if not srealm:
        klog.err("invalid realm parameter - empty value", ORIGIN)
        return auth.AUTH_ERROR
    if not stable:
        klog.err("invalid table parameter - empty value", ORIGIN)
        return auth.AUTH_ERROR
    p = _params(ctx.proc)
    calc = bool(p.get("calculate_ha1"))
    use_domain = bool(p.get("use_domain"))
    try:
        creds = parse_credentials(str(p.get("load_credentials") or ""))
    except ValueError as exc:
        klog.err(str(exc), ORIGIN)
        return auth.AUTH_ERROR
    realm = auth._strip_realm(ctx.proc, srealm)
    alg = auth.algorithm(ctx.proc)
    found: list[Any] = []

    def get_ha1(cred: auth.Credentials) -> str | int:
        # Kamailio's get_ha1: user@domain usernames read password_column_2 (ha1b)
        pcol = str(p["password_column_2"] if cred.domain and not calc else p["password_column"])
        domain = cred.domain or realm
        if not _is_text(cred.user, domain):
            klog.dbg(f"user [{klog.clip(cred.username)}] is not UTF-8: no such subscriber", ORIGIN)
            return auth.AUTH_USER_UNKNOWN
        rows = _fetch(
            ctx, stable, [pcol, *(c for _, c in creds)], cred.user, domain if use_domain else None
        )
        if rows is None:
            return auth.AUTH_ERROR
        if not rows:
            klog.dbg(f"no result for user '{cred.user}@{domain}' in [{stable}]", ORIGIN)
            return auth.AUTH_USER_UNKNOWN
        found.append(rows[0])
        secret = "" if rows[0][0] is None else str(rows[0][0])
        if p.get("force_generate_avps") and creds:
            _set_credentials(ctx, creds, rows[0], 1)
        return auth.calc_ha1(alg, cred.username, realm, secret) if calc else secret

    rc, cred = auth.digest_authenticate(ctx, srealm, auth._hdr_for(ctx), get_ha1)
    if rc == auth.AUTH_OK and found and creds and not p.get("force_generate_avps"):
        _set_credentials(ctx, creds, found[0], 1)
    if rc == auth.AUTH_OK and cred is not None and iflags & auth.CHECK_ID:
        return auth.identity_check(ctx, cred, use_domain, bool(iflags & auth.CHECK_SKIPFWD))
    return rc


def is_subscriber(ctx: MsgContext, suri: str, stable: str, iflags: int) -> int:
    if not suri:
        klog.err("invalid uri parameter - empty value", ORIGIN)
        return -1
    try:
        uri = parse_uri(suri)
    except (SipParseError, ValueError):
        klog.err(f"invalid uri parameter format [{suri}]", ORIGIN)
        return -1
    if not stable:
        klog.err("invalid table parameter - empty value", ORIGIN)
        return -1
    p = _params(ctx.proc)
    try:
        creds = (
            []
            if iflags & SUBS_SKIP_CREDENTIALS
            else parse_credentials(str(p.get("load_credentials") or ""))
        )
    except ValueError as exc:
        klog.err(str(exc), ORIGIN)
        return -1
    cols = [c for _, c in creds] or [str(p["user_column"])]
    domain = uri.host if iflags & SUBS_USE_DOMAIN else None
    if not _is_text(uri.user or "", domain or ""):
        return -2
    rows = _fetch(ctx, stable, cols, uri.user or "", domain)
    if rows is None:
        return -1
    if not rows:
        return -2
    if creds:
        _set_credentials(ctx, creds, rows[0], 0)
    return 1
