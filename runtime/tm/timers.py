"""tm's timer queue, multiplexed onto one entry of the worker's ``TIMERS``.

A busy proxy has thousands of pending retransmission / fr / wait timers and
most are cancelled before they fire, so tm keeps its own heap (lazy
cancellation, its own clock for tests) and arms exactly one entry of the
worker's ``TIMERS`` for the earliest deadline.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable

from pykemi.runtime.core.log import L_ERR, log
from pykemi.runtime.core.timer import TIMERS, TimerHandle, Timers

# deadlines closer than this to the armed one reuse it (fewer global re-arms)
_SLACK = 0.002


def _noop() -> None:
    return None


class TmTimer:
    __slots__ = ("cancelled", "fn", "when")

    def __init__(self, when: float, fn: Callable[[], None]) -> None:
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        # drop the closure at once: cancelled entries wait in the heap until their deadline
        self.cancelled = True
        self.fn = _noop


class TmTimers:
    """Timers of one worker's transactions (monotonic clock, seconds)."""

    def __init__(self, host: Timers | None = None) -> None:
        self.host = host if host is not None else TIMERS
        self._heap: list[tuple[float, int, TmTimer]] = []
        self._seq = itertools.count()
        self._armed: TimerHandle | None = None
        self._armed_when = 0.0
        self.now: Callable[[], float] = time.monotonic

    def call_later(self, delay: float, fn: Callable[[], None]) -> TmTimer:
        timer = TmTimer(self.now() + max(0.0, delay), fn)
        heapq.heappush(self._heap, (timer.when, next(self._seq), timer))
        self._arm(timer.when)
        return timer

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
                continue
            timer.cancelled = True
            try:
                timer.fn()
            except Exception as exc:  # noqa: BLE001 - a timer must never kill the worker
                log(L_ERR, f"tm timer failed: {exc!r}", "tm")
            ran += 1
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0][0])
        return ran

    def pending(self) -> int:
        return sum(1 for _, _, t in self._heap if not t.cancelled)
