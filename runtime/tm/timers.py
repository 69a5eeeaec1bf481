"""tm's timer queue, multiplexed onto one entry of the worker's ``TIMERS``.

A busy proxy has thousands of pending retransmission / fr / wait timers and
most are cancelled before they fire, so tm keeps its own heap (lazy
cancellation, its own clock for tests) and arms exactly one entry of the
worker's ``TIMERS`` for the earliest deadline. Cancelled entries would otherwise
stay until their deadline (fr_inv_timer: 120 s, i.e. rate x 120 s entries); the
heap is rebuilt without them once they are the majority, so its size follows the
live timers.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable

from ..core.log import L_ERR, log
from ..core.timer import TIMERS, TimerHandle, Timers

# deadlines closer than this to the armed one reuse it (fewer global re-arms)
_SLACK = 0.002
# rebuild the heap when more than half of at least this many entries are cancelled
_COMPACT_MIN = 1024


def _noop() -> None:
    return None


class TmTimer:
    __slots__ = ("cancelled", "fn", "owner", "when")

    def __init__(self, when: float, fn: Callable[[], None], owner: TmTimers) -> None:
        self.when = when
        self.fn = fn
        self.owner: TmTimers | None = owner
        self.cancelled = False

    def cancel(self) -> None:
        # drop the closure at once: the entry itself leaves the heap lazily
        if self.cancelled:
            return
        self.cancelled = True
        self.fn = _noop
        owner, self.owner = self.owner, None
        if owner is not None:
            owner.cancelled_entries += 1


class TmTimers:
    """Timers of one worker's transactions (monotonic clock, seconds)."""

    def __init__(self, host: Timers | None = None) -> None:
        self.host = host if host is not None else TIMERS
        self._heap: list[tuple[float, int, TmTimer]] = []
        self._seq = itertools.count()
        self._armed: TimerHandle | None = None
        self._armed_when = 0.0
        self.now: Callable[[], float] = time.monotonic
        self.cancelled_entries = 0  # cancelled timers still in the heap

    def call_later(self, delay: float, fn: Callable[[], None]) -> TmTimer:
        timer = TmTimer(self.now() + max(0.0, delay), fn, self)
        heap = self._heap
        if self.cancelled_entries * 2 > len(heap) >= _COMPACT_MIN:
            self._compact()
        heapq.heappush(heap, (timer.when, next(self._seq), timer))
        self._arm(timer.when)
        return timer

    def _compact(self) -> None:
        """Drop cancelled entries: O(n), paid once per n/2 cancellations."""
        heap = self._heap  # in place: run_due may be iterating over it (a timer re-arms)
        heap[:] = [e for e in heap if not e[2].cancelled]
        heapq.heapify(heap)
        self.cancelled_entries = 0

    def _arm(self, when: float) -> None:
        armed = self._armed
        if armed is not None and not armed.cancelled and self._armed_when <= when + _SLACK:
            return
        if armed is not None:
            armed.cancel()
        self._armed_when = when
        self._armed = self.host.call_later(when - self.now(), self._fire)

    def _fire(self) -> None:
        self.run_due()

    def run_due(self) -> int:
        """Run what is due (errors logged), then re-arm for the next deadline."""
        self._armed = None
        heap = self._heap
        ran = 0
        now = self.now()
        while heap and heap[0][0] <= now:
            _, _, timer = heapq.heappop(heap)
            if timer.cancelled:
                self.cancelled_entries -= 1
                continue
            timer.cancelled = True
            timer.owner = None
            try:
                timer.fn()
            except Exception as exc:  # noqa: BLE001 - a timer must never kill the worker
                log(L_ERR, f"tm timer failed: {exc!r}", "tm")
            ran += 1
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
            self.cancelled_entries -= 1
        if heap:
            self._arm(heap[0][0])
        return ran

    def pending(self) -> int:
        return sum(1 for _, _, t in self._heap if not t.cancelled)
