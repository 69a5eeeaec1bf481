"""``KSR.permissions``: source address checks (address table) and trusted peers (trusted table).

The address table is read in the main process when the Router is built, so
the forked workers share the copy; the engine used for it is disposed right
after, so no connection crosses the fork. ``request_reload`` bumps a counter
in shared memory and each worker reads the tables again before its next
message (Kamailio's ``permissions.addressReload`` / ``trustedReload``).
"""

from __future__ import annotations

import ipaddress
import mmap
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import column, select, table

from .. import router as _router
from ..config.modparams import or_default
from ..core import log as klog
from ..core.pv import set_pv
from ..core.regex import Regex, RegexError, compile_pattern
from ..db.engine import Database, DbError, dispose_all, module_db
from ..db.url import DbUrlError
from ..dispatch import StartupError
from . import params as _modparams

if TYPE_CHECKING:
    from ..core.context import MsgContext, ProcessState

ORIGIN = "permissions"
STATE_KEY = "permissions.state"

_modparams.register("permissions")

IpAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNet = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class AddrRow:
    grp: int
    port: int
    tag: str | None
    net: IpNet | None = None  # None for a name row
    name: str = ""


@dataclass
class AddressTable:
    """Rows by kind, in table order: exact addresses, subnets, names."""

    exact: dict[IpAddr, list[AddrRow]] = field(default_factory=dict)
    subnets: list[AddrRow] = field(default_factory=list)
    names: dict[str, list[AddrRow]] = field(default_factory=dict)

    def match(self, addr: str, port: int, group: int | None) -> AddrRow | None:
        """First row of ``group`` (any group when None) for the address and port."""

        def ok(r: AddrRow) -> bool:
            return (group is None or r.grp == group) and (r.port == 0 or r.port == port)

        ip = parse_ip(addr)
        if ip is not None:
            for r in self.exact.get(ip, ()):
                if ok(r):
                    return r
            for r in self.subnets:
                if r.net is not None and r.net.version == ip.version and ip in r.net and ok(r):
                    return r
        for r in self.names.get(addr.strip("[]").lower(), ()):
            if ok(r):
                return r
        return None


@dataclass
class TrustedRow:
    src_ip: str
    proto: str
    from_re: Regex | None
    ruri_re: Regex | None
    tag: str | None
    priority: int


@dataclass
class State:
    address: AddressTable | None = None
    trusted: list[TrustedRow] | None = None  # cache (db_mode 1)
    counter: mmap.mmap | None = None  # reload requests (shared with the workers)
    seen: int = 0
    last_reload: float = 0.0


def parse_ip(text: str) -> IpAddr | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _params(proc: ProcessState) -> Mapping[str, Any]:
    return _modparams.params(proc, "permissions")


def _state(proc: ProcessState) -> State:
    st = proc.extra.get(STATE_KEY)
    if not isinstance(st, State):
        st = State()
        proc.extra[STATE_KEY] = st
    return st


def _db(proc: ProcessState) -> Database | None:
    url = str(_params(proc).get("db_url") or "")
    if not url:
        return None
    return module_db(proc.extra, "permissions", url)


# ---------------------------------------------------------------------------
# loading


def load_address(db: Database, p: Mapping[str, Any]) -> AddressTable:
    """Read the address table (DbError on failure)."""
    cols = [str(p[k]) for k in ("grp_col", "ip_addr_col", "mask_col", "port_col", "tag_col")]
    t = table(str(p["address_table"]), *(column(c) for c in cols))
    rows = db.fetch_all(select(*(t.c[c] for c in cols)))
    out = AddressTable()
    max_subnets = int(or_default(p, "permissions", "max_subnets"))
    for r in rows:
        grp, ip_text, mask, port, tag = tuple(r)
        ip_text = str(ip_text or "").strip()
        row = AddrRow(int(grp or 0), int(port or 0), None if tag is None else str(tag))
        ip = parse_ip(ip_text)
        if ip is None:
            row.name = ip_text.lower()
            out.names.setdefault(row.name, []).append(row)
            continue
        prefix = ip.max_prefixlen if mask is None else int(mask)
        if not 0 <= prefix <= ip.max_prefixlen:
            klog.err(f"invalid mask {mask} for address {ip_text}: row skipped", ORIGIN)
            continue
        if prefix == ip.max_prefixlen:
            out.exact.setdefault(ip, []).append(row)
            continue
        if len(out.subnets) >= max_subnets:
            klog.err(
                f"more than max_subnets={max_subnets} subnets: {ip_text}/{prefix} skipped", ORIGIN
            )
            continue
        row.net = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
        out.subnets.append(row)
    out.subnets.sort(key=lambda r: r.grp)  # Kamailio keeps the subnet table ordered by group
    return out


def _compile(pattern: Any, what: str) -> Regex | None:
    """A trusted-table pattern: case-sensitive, no line mode, as Kamailio's regcomp; RE2."""
    if pattern is None or pattern == "":
        return None
    try:
        return compile_pattern(str(pattern), icase=False, newline=False)
    except RegexError as exc:
        raise ValueError(f"invalid {what}: {exc}") from None


def load_trusted(db: Database, p: Mapping[str, Any], src_ip: str | None = None) -> list[TrustedRow]:
    """Trusted rows (all, or those of one source IP), highest priority first."""
    keys = ("source_col", "proto_col", "from_col", "ruri_col", "tag_col", "priority_col")
    cols = [str(p[k]) for k in keys]
    t = table(str(p["trusted_table"]), *(column(c) for c in cols))
    stmt = select(*(t.c[c] for c in cols)).order_by(t.c[cols[5]].desc())
    if src_ip is not None:
        stmt = stmt.where(t.c[cols[0]] == src_ip)
    out: list[TrustedRow] = []
    for r in db.fetch_all(stmt):
        src, proto, fpat, rpat, tag, prio = tuple(r)
        try:
            out.append(
                TrustedRow(
                    str(src or ""),
                    str(proto or "any").lower(),
                    _compile(fpat, "from_pattern"),
                    _compile(rpat, "ruri_pattern"),
                    None if tag is None else str(tag),
                    int(prio or 0),
                )
            )
        except ValueError as exc:
            klog.err(f"trusted row skipped: {exc}", ORIGIN)
    return out


def reload(proc: ProcessState) -> bool:
    """Read the tables again in this process; False (and the old data kept) on failure."""
    p = _params(proc)
    st = _state(proc)
    try:
        db = _db(proc)
    except DbUrlError as exc:
        klog.err(str(exc), ORIGIN)
        return False
    if db is None:
        return False
    backends = int(p.get("load_backends") or 0)
    ok = True
    try:
        if backends & 1:
            st.address = load_address(db, p)
        if backends & 2 and int(p.get("db_mode") or 0) == 1:
            st.trusted = load_trusted(db, p)
    except DbError as exc:
        klog.err(f"cannot load the permissions tables: {exc}", ORIGIN)
        ok = False
    st.last_reload = time.monotonic()
    return ok


def request_reload(proc: ProcessState) -> bool:
    """Ask every worker (and this process) to reload; False when within reload_delta."""
    st = _state(proc)
    delta = int(_params(proc).get("reload_delta") or 0)
    if st.last_reload and time.monotonic() - st.last_reload < delta:
        klog.err(f"ongoing reload (reload_delta {delta}s): try again later", ORIGIN)
        return False
    if st.counter is not None:
        value = struct.unpack("q", st.counter[:8])[0] + 1
        st.counter[:8] = struct.pack("q", value)
        st.seen = value
    return reload(proc)


def _check_reload(proc: ProcessState) -> None:
    st = _state(proc)
    if st.counter is None:
        return
    value = int(struct.unpack("q", st.counter[:8])[0])
    if value != st.seen:
        st.seen = value
        reload(proc)


def _init_router(router: Any) -> None:
    if "permissions" not in router.registry.bases:
        return
    proc = router.proc
    st = _state(proc)
    st.counter = mmap.mmap(-1, 8)
    st.counter[:8] = struct.pack("q", 0)
    router.before_message_hooks.append(lambda: _check_reload(proc))
    url = str(_params(proc).get("db_url") or "")
    if not url:
        klog.warn("permissions: no db_url: address and trusted checks will fail", ORIGIN)
        return
    try:
        module_db(proc.extra, "permissions", url)
    except DbUrlError as exc:
        raise StartupError(f"permissions: {exc}") from exc
    reload(proc)
    dispose_all()  # nothing pooled may cross the fork into the workers


def _install() -> None:
    if _init_router not in _router.ROUTER_INIT_HOOKS:
        _router.ROUTER_INIT_HOOKS.append(_init_router)


_install()


# ---------------------------------------------------------------------------
# exports


def _address_table(ctx: MsgContext) -> AddressTable | None:
    st = _state(ctx.proc)
    if st.address is None:
        if not _params(ctx.proc).get("db_url"):
            klog.err("address table not available: permissions db_url is not set", ORIGIN)
        else:
            klog.err("address table not loaded (database error at start-up?)", ORIGIN)
    return st.address


def _set_tag(ctx: MsgContext, tag: str | None, add: bool = False) -> None:
    avp = str(_params(ctx.proc).get("peer_tag_avp") or "")
    if not avp or tag is None:
        return
    if not add:
        set_pv(ctx, avp, None)
    if not set_pv(ctx, avp, tag):
        klog.err(f"cannot set peer tag AVP {avp}", ORIGIN)


def allow_address(ctx: MsgContext, addr_group: int, ip: str, port: int) -> int:
    tbl = _address_table(ctx)
    if tbl is None:
        return -1
    row = tbl.match(ip, port, addr_group)
    if row is None:
        return -1
    _set_tag(ctx, row.tag)
    return 1


def allow_source_address(ctx: MsgContext, addr_group: int) -> int:
    return allow_address(ctx, addr_group, ctx.src[0], int(ctx.src[1]))


def allow_address_group(ctx: MsgContext, addr: str, port: int) -> int:
    tbl = _address_table(ctx)
    if tbl is None:
        return -1
    row = tbl.match(addr, port, None)
    if row is None:
        return -1
    _set_tag(ctx, row.tag)
    return row.grp


def allow_source_address_group(ctx: MsgContext) -> int:
    return allow_address_group(ctx, ctx.src[0], int(ctx.src[1]))


def allow_trusted(ctx: MsgContext) -> int:
    p = _params(ctx.proc)
    src = ctx.src[0].strip("[]")
    if int(p.get("db_mode") or 0) == 1:
        cached = _state(ctx.proc).trusted
        if cached is None:
            klog.err("trusted table not loaded (db_url unset or database error)", ORIGIN)
            return -1
        rows = [r for r in cached if r.src_ip == src]
    else:
        try:
            db = _db(ctx.proc)
        except DbUrlError as exc:
            klog.err(str(exc), ORIGIN)
            return -1
        if db is None:
            klog.err("trusted table not available: permissions db_url is not set", ORIGIN)
            return -1
        try:
            rows = load_trusted(db, p, src)
        except DbError as exc:
            klog.err(f"failed to query the trusted table: {exc}", ORIGIN)
            return -1
    proto = ctx.proto.lower()
    try:
        from_uri = ctx.msg.from_uri or ""
    except ValueError:
        from_uri = ""
    ruri = ctx.ruri or ""
    all_tags = bool(p.get("peer_tag_mode"))
    matched = 0
    for r in rows:
        if r.proto not in ("any", proto):
            continue
        if r.from_re is not None and not r.from_re.search(from_uri):
            continue
        if r.ruri_re is not None and not r.ruri_re.search(ruri):
            continue
        _set_tag(ctx, r.tag, add=matched > 0)
        matched += 1
        if not all_tags:
            break
    return 1 if matched else -1
