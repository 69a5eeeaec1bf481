"""The transaction table of one worker (dispatch mode keeps a Call-ID in one worker)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .transaction import MAGIC, Transaction

if TYPE_CHECKING:
    from ..core.context import Address, SendFn


@dataclass
class Tombstone:
    """What is left of a completed server transaction until RFC 3261 timer J/L ends.

    Full transactions leave the table after wt_timer (5 s, as Kamailio); a late
    retransmission (a lagging network or worker) must still be absorbed, not
    start a second transaction, for 64*T1.
    """

    expires: float
    status: int
    last_reply: bytes
    send: SendFn
    reply_addr: Address
    is_invite: bool


class TransactionTable:
    """Server transactions by matching key, by id, and by (Call-ID, CSeq number)."""

    def __init__(self, tag: str = "") -> None:
        self.by_key: dict[tuple[Any, ...], Transaction] = {}
        self.by_tid: dict[int, Transaction] = {}
        self.by_callid: dict[tuple[str, int], list[Transaction]] = {}
        self._ids = itertools.count(1)
        # makes our Via branches unique per worker and start (set after fork)
        self.tag = tag
        # completed transactions after their wait time: key -> Tombstone, expiry order
        self.tombstones: dict[tuple[Any, ...], Tombstone] = {}

    def next_id(self) -> int:
        return next(self._ids)

    def add(self, txn: Transaction) -> None:
        if txn.key:
            self.by_key[txn.key] = txn
        self.by_tid[txn.tid] = txn
        self.by_callid.setdefault((txn.call_id, txn.cseq_num), []).append(txn)

    def remove(self, txn: Transaction) -> bool:
        """Take ``txn`` out of the table; False when it was not in it (removed before)."""
        txn.done = True
        if txn.key and self.by_key.get(txn.key) is txn:
            del self.by_key[txn.key]
        present = self.by_tid.pop(txn.tid, None) is not None
        k = (txn.call_id, txn.cseq_num)
        lst = self.by_callid.get(k)
        if lst is not None:
            if txn in lst:
                lst.remove(txn)
            if not lst:
                del self.by_callid[k]
        return present

    def bury(self, key: tuple[Any, ...], stone: Tombstone) -> None:
        self.tombstones.pop(key, None)
        self.tombstones[key] = stone  # re-inserted last: dict order stays expiry order

    def tombstone(self, key: tuple[Any, ...] | None, now: float) -> Tombstone | None:
        stone = None if key is None else self.tombstones.get(key)
        return stone if stone is not None and stone.expires > now else None

    def expire_tombstones(self, now: float) -> int:
        stones = self.tombstones
        dead = []
        for key, stone in stones.items():
            if stone.expires > now:
                break
            dead.append(key)
        for key in dead:
            del stones[key]
        return len(dead)

    def get(self, key: tuple[Any, ...] | None) -> Transaction | None:
        return None if key is None else self.by_key.get(key)

    def by_call(self, call_id: str, cseq: int, method: str = "") -> list[Transaction]:
        found = self.by_callid.get((call_id, cseq), [])
        return [t for t in found if not method or t.method == method]

    def branch_id(self, txn: Transaction, index: int) -> str:
        return f"{MAGIC}{self.tag}{txn.tid:x}.{index}"

    def parse_branch(self, branch: str) -> tuple[Transaction, int] | None:
        """The transaction and branch index our Via ``branch`` names, if it is ours and alive."""
        prefix = MAGIC + self.tag
        if not branch.startswith(prefix):
            return None
        body = branch[len(prefix) :]
        tid_s, dot, idx_s = body.partition(".")
        if not dot:
            return None
        try:
            tid = int(tid_s, 16)
            idx = int(idx_s)
        except ValueError:
            return None
        txn = self.by_tid.get(tid)
        if txn is None or not 0 <= idx < len(txn.branches):
            return None
        return txn, idx

    def __len__(self) -> int:
        return len(self.by_tid)

    def __iter__(self) -> Iterator[Transaction]:
        return iter(list(self.by_tid.values()))
