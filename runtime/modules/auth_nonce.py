"""Nonce ids, nonce-count and one-time-nonce state shared by all processes of a router.

Kamailio's auth module (nid.c, nc.c, ot_nonce.c) gives every nonce it issues an id
``nid`` from a per-pool counter (pool = process rank modulo ``nid_pool_no``). The id
selects a slot of a fixed-size table in shared memory:

* nonce_count: one byte per slot, the highest ``nc`` accepted so far (at most 255);
  a response must carry a higher ``nc`` than the slot's.
* one_time_nonce: one bit per slot, set once the nonce has been used.

A slot is reused by the nonce issued ``table size / pools`` ids later; the older
nonce is then refused (stale / reused), so the tables bound memory, not the number of
nonces in flight. Issuing a nonce resets its slot; a slot nobody was issued starts
"used up" (nc 255, bit set) so a forged or pre-restart id can never match.

The tables live in one shared memfd mapping created before the workers fork.
Read-modify-write steps hold a POSIX record lock on the bytes they change: a lock is
per process (released by the kernel if the process dies) and per byte, so workers
only wait for each other on the same slot.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import secrets
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from enum import IntEnum

NID_INC = 257  # odd id step, as Kamailio: covers every slot of a partition before reuse
MAX_POOLS = 64  # 6 bits of the nonce's pool/flags byte
NC_MAX = 255  # one byte per slot: a higher nc makes the nonce stale (re-challenge)
FLAG_NC = 0x80  # the nonce is tracked for nonce_count
FLAG_OT = 0x40  # the nonce is tracked as a one-time nonce
POOL_MASK = 0x3F
_U32 = 0xFFFFFFFF


class Check(IntEnum):
    OK = 0
    REPLAY = 1  # nc not above the last one, or one-time nonce already used
    GONE = 2  # slot reused by a newer nonce, unknown pool or nc > 255


def pow2_floor(n: int) -> int:
    """The largest power of two <= n (1 for n < 1)."""
    return 1 << (max(1, n).bit_length() - 1)


def table_size(size: int, order: int) -> int:
    """Kamailio's rule for nc_array_* / otn_in_flight_*: 2**order if set, else size rounded down."""
    return 1 << order if order > 0 else pow2_floor(size)


def _shared_fd(size: int) -> int:
    """An unnamed file of ``size`` bytes (memfd, or an unlinked 0600 temporary file)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("pykemi-auth-nonces", os.MFD_CLOEXEC)
    else:  # pragma: no cover - non-Linux
        with tempfile.TemporaryFile() as f:
            fd = os.dup(f.fileno())
    os.ftruncate(fd, size)
    return fd


class NonceTables:
    """Nonce ids and the nonce_count / one-time-nonce tables (``0`` size = feature off)."""

    def __init__(self, pools: int, nc_size: int, otn_size: int) -> None:
        self.pools = min(pow2_floor(pools), MAX_POOLS)
        for name, size in (("nc_array_size", nc_size), ("otn_in_flight_no", otn_size)):
            if size and size < 8 * self.pools:
                raise ValueError(f"{name} {size} is too small for nid_pool_no {self.pools}")
            if size // self.pools >= (_U32 + 1) // NID_INC:  # ids would wrap inside a partition
                raise ValueError(
                    f"{name} {size} is too big: at most {(_U32 + 1) // NID_INC - 1} "
                    "per nid_pool_no pool"
                )
        self.nc_size, self.otn_size = nc_size, otn_size
        self.up_since = int(time.time())  # nonces made before this start are stale
        self._nc_at = 4 * self.pools
        self._otn_at = self._nc_at + nc_size
        total = self._otn_at + otn_size // 8
        self._fd = _shared_fd(total)
        self._mem = mmap.mmap(self._fd, total)
        weakref.finalize(self, os.close, self._fd)
        self._ids = memoryview(self._mem)[: self._nc_at].cast("I")
        for pool in range(self.pools):
            self._ids[pool] = secrets.randbits(32)
        self._mem[self._nc_at :] = b"\xff" * (total - self._nc_at)  # every slot used up
        self._thread_lock = threading.Lock()  # record locks do not exclude threads

    @property
    def enabled(self) -> bool:
        return bool(self.nc_size or self.otn_size)

    @contextlib.contextmanager
    def _locked(self, offset: int, length: int = 1) -> Iterator[None]:
        with self._thread_lock:
            fcntl.lockf(self._fd, fcntl.LOCK_EX, length, offset)
            try:
                yield
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, length, offset)

    def _slot(self, nid: int, pool: int, size: int) -> int:
        """Index of the slot of ``nid``: a partition of the table per pool."""
        part = size // self.pools
        return (nid & (part - 1)) + pool * part

    def _gone(self, nid: int, pool: int, size: int) -> bool:
        """True when ``nid``'s slot may have been reissued (or the pool is not ours)."""
        if pool >= self.pools:
            return True
        return (self._ids[pool] - nid) & _U32 >= NID_INC * (size // self.pools)

    def issue(self, rank: int) -> tuple[int, int]:
        """A new (nid, pool|flags) for a nonce made by process ``rank``; its slots reset."""
        pool = rank & (self.pools - 1)
        with self._locked(4 * pool, 4):
            nid = (self._ids[pool] + NID_INC) & _U32
            self._ids[pool] = nid
        flags = pool
        if self.nc_size:
            self._mem[self._nc_at + self._slot(nid, pool, self.nc_size)] = 0
            flags |= FLAG_NC
        if self.otn_size:
            bit = self._slot(nid, pool, self.otn_size)
            at = self._otn_at + bit // 8
            with self._locked(at):
                self._mem[at] &= ~(1 << (bit % 8)) & 0xFF
            flags |= FLAG_OT
        return nid, flags

    def check_nc(self, nid: int, pool: int, nc: int, update: bool) -> Check:
        """Is ``nc`` above the last accepted one? With ``update``, atomically record it."""
        if not self.nc_size or self._gone(nid, pool, self.nc_size) or nc > NC_MAX:
            return Check.GONE
        at = self._nc_at + self._slot(nid, pool, self.nc_size)
        if not update:
            return Check.REPLAY if self._mem[at] >= nc else Check.OK
        with self._locked(at):
            if self._mem[at] >= nc:
                return Check.REPLAY
            self._mem[at] = nc
        return Check.OK

    def check_otn(self, nid: int, pool: int, update: bool) -> Check:
        """Is the one-time nonce unused? With ``update``, atomically mark it used."""
        if not self.otn_size or self._gone(nid, pool, self.otn_size):
            return Check.GONE
        bit = self._slot(nid, pool, self.otn_size)
        at, mask = self._otn_at + bit // 8, 1 << (bit % 8)
        if not update:
            return Check.REPLAY if self._mem[at] & mask else Check.OK
        with self._locked(at):
            if self._mem[at] & mask:
                return Check.REPLAY
            self._mem[at] |= mask
        return Check.OK
