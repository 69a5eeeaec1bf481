"""``KSR.htable``: named hash tables shared by all workers (Kamailio htable).

Tables are declared with ``modparam("htable", "htable", "name=>size=8;autoexpire=300;")``.
Items live in a shared key/value store (``pykemi.runtime.usrloc.kv``): a
SQLite file on tmpfs per router instance (all workers see the same items),
or Redis when ``modparam("htable", "db_url", "redis://...")`` is set (shared
between instances). ``autoexpire`` gives every item a lifetime (refreshed on
update when ``updateexpire=1``); ``sht_lock`` takes an fcntl lock on the
item's slot, so it excludes other workers too.
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import time
import zlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..config.modparams import or_default
from ..core import log as klog
from ..core.events import callback_name, faked_context, run_event
from ..core.pv import register_pv
from ..core.regex import compile_logged
from ..core.timer import TIMERS
from ..dispatch import StartupError
from ..usrloc.kv import KvStore, RedisKv, SqliteKv, Value
from ..usrloc.store import StoreError, new_shared_file
from . import params as _params

if TYPE_CHECKING:
    from ..core.context import MsgContext, ProcessState

MOD = "htable"
STATE = "htable.state"
EXPIRED = "htable.expired"  # ctx.extra: (key, value) of the item an expiry event is about
ERR_INC = -255  # sht_inc/sht_dec on a missing table or a string value


class Table:
    """A table definition (``name=>size=..;autoexpire=..;...``)."""

    def __init__(self, name: str, attrs: dict[str, str]) -> None:
        self.name = name
        self.size = _int(attrs.get("size"), 4)
        self.autoexpire = _int(attrs.get("autoexpire"), 0)
        self.updateexpire = _int(attrs.get("updateexpire"), 1)
        raw_init = attrs.get("initval")
        self.initval: int | None = _int(raw_init, 0) if raw_init is not None else None
        self.attrs = attrs

    def expires_for(self, now: int) -> int:
        return now + self.autoexpire if self.autoexpire > 0 else 0


def _int(text: str | None, default: int) -> int:
    try:
        return int(str(text).strip(), 0) if text is not None else default
    except ValueError:
        return default


def parse_definition(text: str) -> Table:
    name, sep, rest = text.partition("=>")
    if not sep or not name.strip():
        raise ValueError(f"invalid htable definition {text!r}")
    attrs: dict[str, str] = {}
    for part in rest.split(";"):
        if not part.strip():
            continue
        k, eq, v = part.partition("=")
        if not eq:
            raise ValueError(f"invalid htable attribute {part!r} in {text!r}")
        attrs[k.strip()] = v.strip()
    return Table(name.strip(), attrs)


class State:
    """Per router instance: the tables, the store, the slot-lock file, iterators."""

    def __init__(self, tables: dict[str, Table], store: KvStore, lock_path: str) -> None:
        self.tables = tables
        self.store = store
        self.lock_path = lock_path
        self._lock_fd = -1
        self._lock_pid = 0
        self.iterators: dict[str, dict[str, Any]] = {}

    def lock_fd(self) -> int:
        if self._lock_fd < 0 or self._lock_pid != os.getpid():
            self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self._lock_pid = os.getpid()
            self.iterators = {}
        return self._lock_fd


def setup(proc: ProcessState, values: Mapping[str, Any]) -> State:
    tables: dict[str, Table] = {}
    for text in values.get("htable") or []:
        t = parse_definition(str(text))
        tables[t.name] = t
    url = str(values.get("db_url") or "")
    store: KvStore
    if url.startswith(("redis://", "rediss://", "unix://")):
        store = RedisKv(url)
    else:
        store = SqliteKv(new_shared_file("htable"))
    lock_path = new_shared_file("htable-lock")
    state = State(tables, store, lock_path)
    proc.extra[STATE] = state
    return state


def _state(ctx: MsgContext) -> State:
    state = ctx.proc.extra.get(STATE)
    if state is None:
        state = setup(ctx.proc, _params.params(ctx.proc, MOD))
    assert isinstance(state, State)
    return state


def _table(ctx: MsgContext, name: str) -> tuple[State, Table] | None:
    state = _state(ctx)
    t = state.tables.get(name)
    if t is None:
        klog.err(f"htable: table [{name}] does not exist")
        return None
    return state, t


# ---------------------------------------------------------------------------
# get / set


def _get(ctx: MsgContext, tname: str, key: str) -> Value | None:
    found = _table(ctx, tname)
    if found is None:
        return None
    state, t = found
    try:
        item = state.store.get(tname, key)
    except StoreError as exc:
        klog.err(f"htable: get failed: {exc}")
        return None
    if item is None:
        return t.initval
    return item[0]


def sht_get(ctx: MsgContext, htname: str, itname: str) -> Value | None:
    """The item's value (str or int), null when missing."""
    return _get(ctx, htname, itname)


def sht_gete(ctx: MsgContext, htname: str, itname: str) -> Value:
    """The item's value, "" when missing."""
    v = _get(ctx, htname, itname)
    return "" if v is None else v


def sht_getw(ctx: MsgContext, htname: str, itname: str) -> Value:
    """The item's value, "<null>" when missing."""
    v = _get(ctx, htname, itname)
    return "<null>" if v is None else v


def _set(ctx: MsgContext, tname: str, key: str, value: Value, expire: int | None = None) -> int:
    found = _table(ctx, tname)
    if found is None:
        return -1
    state, t = found
    now = int(time.time())
    try:
        if expire is not None:
            state.store.set(tname, key, value, now + expire if expire > 0 else 0)
        elif t.updateexpire or not t.autoexpire:
            state.store.set(tname, key, value, t.expires_for(now))
        else:
            # updateexpire=0: an update keeps the item's original expiry
            state.store.update(
                tname, key, lambda old: (value, old[1] if old else t.expires_for(now))
            )
    except StoreError as exc:
        klog.err(f"htable: set failed: {exc}")
        return -1
    return 1


def sht_sets(ctx: MsgContext, htname: str, itname: str, itval: str) -> int:
    return _set(ctx, htname, itname, itval)


def sht_seti(ctx: MsgContext, htname: str, itname: str, itval: int) -> int:
    return _set(ctx, htname, itname, int(itval))


def sht_setxs(ctx: MsgContext, htname: str, itname: str, itval: str, exval: int) -> int:
    """Set a string item with its own expiry (seconds; 0 = none)."""
    return _set(ctx, htname, itname, itval, int(exval))


def sht_setxi(ctx: MsgContext, htname: str, itname: str, itval: int, exval: int) -> int:
    return _set(ctx, htname, itname, int(itval), int(exval))


def sht_setex(ctx: MsgContext, htname: str, itname: str, itval: int) -> int:
    """Change the expiry of an existing item (seconds from now); 1 or -1."""
    found = _table(ctx, htname)
    if found is None:
        return -1
    state, _t = found
    exp = int(time.time()) + int(itval) if int(itval) > 0 else 0
    try:
        new = state.store.update(htname, itname, lambda old: (old[0], exp) if old else None)
    except StoreError as exc:
        klog.err(f"htable: setex failed: {exc}")
        return -1
    return 1 if new is not None else -1


def sht_is_null(ctx: MsgContext, htname: str, itname: str) -> int:
    """As Kamailio's ki_ht_is_null: 1 when the item does not exist (or has expired), -1 when
    it does, 2 when there is no such table, -2 when the table has an initval (never null)."""
    t = _state(ctx).tables.get(htname)
    if t is None:
        return 2
    if t.initval is not None:
        return -2
    return 1 if _get(ctx, htname, itname) is None else -1


def _add(ctx: MsgContext, tname: str, key: str, delta: int) -> int:
    found = _table(ctx, tname)
    if found is None:
        return ERR_INC
    state, t = found
    now = int(time.time())
    bad: list[bool] = []

    def fn(old: tuple[Value, int] | None) -> tuple[Value, int] | None:
        if old is None:
            return ((t.initval or 0) + delta, t.expires_for(now))
        if not isinstance(old[0], int):
            bad.append(True)
            return old
        return (old[0] + delta, t.expires_for(now) if t.updateexpire else old[1])

    try:
        new = state.store.update(tname, key, fn)
    except StoreError as exc:
        klog.err(f"htable: inc/dec failed: {exc}")
        return ERR_INC
    if bad or new is None:
        klog.err(f"htable: item [{tname}=>{key}] is not an integer")
        return ERR_INC
    return int(new[0])


def sht_inc(ctx: MsgContext, htname: str, itname: str) -> int:
    """Add 1 to an integer item (created from initval or 0); the new value."""
    return _add(ctx, htname, itname, 1)


def sht_dec(ctx: MsgContext, htname: str, itname: str) -> int:
    return _add(ctx, htname, itname, -1)


# ---------------------------------------------------------------------------
# removal and matching


def sht_rm(ctx: MsgContext, htname: str, itname: str) -> int:
    found = _table(ctx, htname)
    if found is None:
        return -1
    try:
        found[0].store.delete(htname, [itname])
    except StoreError as exc:
        klog.err(f"htable: rm failed: {exc}")
        return -1
    return 1


def sht_reset(ctx: MsgContext, htname: str) -> int:
    """Remove every item of the table."""
    found = _table(ctx, htname)
    if found is None:
        return -1
    try:
        found[0].store.reset(htname)
    except StoreError as exc:
        klog.err(f"htable: reset failed: {exc}")
        return -1
    return 1


def _matcher(op: str, val: str) -> Callable[[str], bool] | None:
    """Kamailio's match operators as a test on a name or value; None (logged) if bad."""
    if op == "re":  # regcomp(REG_EXTENDED|REG_ICASE|REG_NEWLINE) in Kamailio; RE2 here
        rx = compile_logged(val, MOD)
        return None if rx is None else lambda text: rx.search(text) is not None
    tests: dict[str, Callable[[str], bool]] = {
        "eq": lambda text: text == val,
        "ne": lambda text: text != val,
        "sw": lambda text: text.startswith(val),
        "ew": lambda text: text.endswith(val),
        "in": lambda text: val in text,
        "fm": lambda text: fnmatch.fnmatchcase(text, val),
    }
    test = tests.get(op)
    if test is None:
        klog.err(f"htable: unknown match operator [{op}]")
    return test


def _select(ctx: MsgContext, tname: str, op: str, val: str, on_value: bool) -> list[str] | None:
    found = _table(ctx, tname)
    if found is None:
        return None
    test = _matcher(op, val)
    if test is None:
        return None
    try:
        items = found[0].store.items(tname)
    except StoreError as exc:
        klog.err(f"htable: items failed: {exc}")
        return None
    out = []
    for key, value, _exp in items:
        text = key
        if on_value:
            if not isinstance(value, str):
                continue  # value matching is on string values only
            text = value
        if test(text):
            out.append(key)
    return out


def _rm_matching(ctx: MsgContext, tname: str, op: str, val: str, on_value: bool) -> int:
    keys = _select(ctx, tname, op, val, on_value)
    if keys is None:
        return -1
    try:
        _state(ctx).store.delete(tname, keys)
    except StoreError as exc:
        klog.err(f"htable: rm failed: {exc}")
        return -1
    return 1


def sht_rm_name_re(ctx: MsgContext, htname: str, rexp: str) -> int:
    return _rm_matching(ctx, htname, "re", rexp, False)


def sht_rm_value_re(ctx: MsgContext, htname: str, rexp: str) -> int:
    return _rm_matching(ctx, htname, "re", rexp, True)


def sht_rm_name(ctx: MsgContext, htname: str, op: str, val: str) -> int:
    """Remove items whose name matches (op: re, sw, ew, eq, ne, in, fm)."""
    return _rm_matching(ctx, htname, op, val, False)


def sht_rm_value(ctx: MsgContext, htname: str, op: str, val: str) -> int:
    return _rm_matching(ctx, htname, op, val, True)


def sht_match_name(ctx: MsgContext, htname: str, op: str, mval: str) -> int:
    """1 when some item name matches (op: eq, ne, re, sw, ew, in, fm), else -1."""
    keys = _select(ctx, htname, op, mval, False)
    return 1 if keys else -1


def sht_match_str_value(ctx: MsgContext, htname: str, op: str, mval: str) -> int:
    keys = _select(ctx, htname, op, mval, True)
    return 1 if keys else -1


# ---------------------------------------------------------------------------
# slot locks (shared by the workers: fcntl byte-range locks, one byte per slot)


def _slot(t: Table, key: str) -> int:
    return zlib.crc32(key.encode("utf-8", "surrogateescape")) & ((1 << max(0, t.size)) - 1)


def _lock(ctx: MsgContext, htname: str, itname: str, lock: bool) -> int:
    found = _table(ctx, htname)
    if found is None:
        return -1
    state, t = found
    start = (zlib.crc32(htname.encode()) & 0xFFFF) * 65536 + _slot(t, itname)
    try:
        fcntl.lockf(state.lock_fd(), fcntl.LOCK_EX if lock else fcntl.LOCK_UN, 1, start)
    except OSError as exc:
        klog.err(f"htable: lock failed: {exc}")
        return -1
    return 1


def sht_lock(ctx: MsgContext, htname: str, skey: str) -> int:
    """Lock the slot of ``skey`` (also against other workers) until sht_unlock."""
    return _lock(ctx, htname, skey, True)


def sht_unlock(ctx: MsgContext, htname: str, skey: str) -> int:
    return _lock(ctx, htname, skey, False)


# ---------------------------------------------------------------------------
# iterators ($shtitkey(name), $shtitval(name))


def sht_iterator_start(ctx: MsgContext, iname: str, hname: str) -> int:
    found = _table(ctx, hname)
    if found is None:
        return -1
    state = found[0]
    state.lock_fd()  # drops iterators inherited over a fork
    try:
        items = state.store.items(hname)
    except StoreError as exc:
        klog.err(f"htable: iterator start failed: {exc}")
        return -1
    state.iterators[iname] = {"table": hname, "items": items, "pos": -1}
    return 1


def _iter(ctx: MsgContext, iname: str) -> dict[str, Any] | None:
    it = _state(ctx).iterators.get(iname)
    if it is None:
        klog.err(f"htable: iterator [{iname}] not started")
    return it


def _current(it: dict[str, Any]) -> tuple[str, Value, int] | None:
    pos = it["pos"]
    items: list[tuple[str, Value, int]] = it["items"]
    return items[pos] if 0 <= pos < len(items) else None


def sht_iterator_next(ctx: MsgContext, iname: str) -> int:
    it = _iter(ctx, iname)
    if it is None:
        return -1
    it["pos"] += 1
    return 1 if _current(it) is not None else -1


def sht_iterator_end(ctx: MsgContext, iname: str) -> int:
    _state(ctx).iterators.pop(iname, None)
    return 1


def sht_iterator_rm(ctx: MsgContext, iname: str) -> int:
    it = _iter(ctx, iname)
    cur = None if it is None else _current(it)
    if it is None or cur is None:
        return -1
    return sht_rm(ctx, it["table"], cur[0])


def _iter_set(ctx: MsgContext, iname: str, value: Value | None, expire: int | None) -> int:
    it = _iter(ctx, iname)
    cur = None if it is None else _current(it)
    if it is None or cur is None:
        return -1
    if value is None:
        return sht_setex(ctx, it["table"], cur[0], int(expire or 0))
    it["items"][it["pos"]] = (cur[0], value, cur[2])
    return _set(ctx, it["table"], cur[0], value)


def sht_iterator_sets(ctx: MsgContext, iname: str, sval: str) -> int:
    return _iter_set(ctx, iname, sval, None)


def sht_iterator_seti(ctx: MsgContext, iname: str, ival: int) -> int:
    return _iter_set(ctx, iname, int(ival), None)


def sht_iterator_setex(ctx: MsgContext, iname: str, exval: int) -> int:
    return _iter_set(ctx, iname, None, int(exval))


# ---------------------------------------------------------------------------
# pseudo-variables: $sht(t=>k), $shtex(t=>k), $shtcn(t=>op), $shtitkey(i), $shtitval(i)


def _split(inner: str | None) -> tuple[str, str]:
    t, _, k = str(inner or "").partition("=>")
    return t.strip(), k


def _pv_sht(ctx: MsgContext, spec: Any) -> Value | None:
    t, k = _split(spec.inner)
    return _get(ctx, t, k)


def _pv_shtex(ctx: MsgContext, spec: Any) -> int | None:
    t, k = _split(spec.inner)
    found = _table(ctx, t)
    if found is None:
        return None
    try:
        item = found[0].store.get(t, k)
    except StoreError:
        return None
    if item is None:
        return 0
    return max(0, item[1] - int(time.time())) if item[1] else 0


def _pv_count(on_value: bool) -> Any:
    def get(ctx: MsgContext, spec: Any) -> int | None:
        t, expr = _split(spec.inner)
        op, val = "re", expr
        if expr.startswith("~~"):
            val = expr[2:]
        elif expr.startswith("~%"):
            op, val = "ew", expr[2:]
        elif expr.startswith("%~"):
            op, val = "sw", expr[2:]
        elif expr.startswith("=="):
            op, val = "eq", expr[2:]
        elif expr.startswith("**"):
            return len(_select(ctx, t, "fm", "*", on_value) or [])
        keys = _select(ctx, t, op, val, on_value)
        return None if keys is None else len(keys)

    return get


def _pv_it(which: int) -> Any:
    def get(ctx: MsgContext, spec: Any) -> Value | None:
        it = _state(ctx).iterators.get(str(spec.inner))
        cur = None if it is None else _current(it)
        return None if cur is None else cur[which]

    return get


def _pv_shtrecord(ctx: MsgContext, spec: Any) -> Value | None:
    """$shtrecord(key|value): the item that expired, in event_route[htable:expired:<table>]."""
    record = ctx.extra.get(EXPIRED)
    if record is None:
        return None
    which = str(spec.inner)
    return record[0] if which == "key" else record[1] if which == "value" else None


def _register_pvs() -> None:
    register_pv("sht", inner_getter=_pv_sht)
    register_pv("shtex", inner_getter=_pv_shtex)
    register_pv("shtcn", inner_getter=_pv_count(False))
    register_pv("shtcv", inner_getter=_pv_count(True))
    register_pv("shtitkey", inner_getter=_pv_it(0))
    register_pv("shtitval", inner_getter=_pv_it(1))
    register_pv("shtrecord", inner_getter=_pv_shtrecord)


_register_pvs()


# ---------------------------------------------------------------------------
# startup: tables, store, expiry timer; event routes htable:mod-init, htable:expired:<table>


def _startup(router: Any, values: dict[str, Any]) -> None:
    try:
        state = setup(router.proc, values)
    except ValueError as exc:
        raise StartupError(f"htable: {exc}") from exc
    interval = max(1, int(or_default(values, MOD, "timer_interval")))
    callback = callback_name(values.get("event_callback"))

    def purge() -> None:
        try:
            if callback:
                for tname, key, value in state.store.expire():
                    run_expired(router.proc, callback, tname, key, value)
            else:
                state.store.purge()
        except StoreError as exc:
            klog.err(f"htable: expiry timer failed: {exc}")
        TIMERS.call_later(interval, purge)

    TIMERS.call_later(interval, purge)
    if callback:
        # Kamailio runs event_route[htable:mod-init] once, before the workers start
        run_event(router.proc, callback, "htable:mod-init")


def run_expired(proc: ProcessState, callback: str, tname: str, key: str, value: Value) -> None:
    """event_route[htable:expired:<table>]: $shtrecord(key) and $shtrecord(value) name the item."""
    ctx = faked_context(proc)
    ctx.extra[EXPIRED] = (key, value)
    run_event(proc, callback, f"htable:expired:{tname}", ctx)


_params.register(MOD, after=_startup)
