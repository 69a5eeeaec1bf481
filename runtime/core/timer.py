"""Per-process timers: the worker loop runs what is due between messages.

Workers are single-threaded, so timers (tm retransmissions, fr_timer, module
housekeeping) run in the same loop as message handling: no locks needed.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable

from .log import L_ERR, log


class TimerHandle:
    __slots__ = ("cancelled", "fn", "when")

    def __init__(self, when: float, fn: Callable[[], None]) -> None:
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """A heap of callbacks ordered by due time (monotonic clock)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()

    def call_later(self, delay: float, fn: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(time.monotonic() + max(0.0, delay), fn)
        heapq.heappush(self._heap, (handle.when, next(self._seq), handle))
        return handle

    def next_delay(self, default: float) -> float:
        """Seconds until the next live timer (at most ``default``)."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        if not heap:
            return default
        return max(0.0, min(default, heap[0][0] - time.monotonic()))

    def run_due(self) -> int:
        """Run every timer that is due; errors are logged, never raised."""
        now = time.monotonic()
        heap = self._heap
        ran = 0
        while heap and heap[0][0] <= now:
            _, _, handle = heapq.heappop(heap)
            if handle.cancelled:
                continue
            handle.cancelled = True
            try:
                handle.fn()
            except Exception as exc:  # noqa: BLE001 - a timer must not kill the worker
                log(L_ERR, f"timer callback failed: {exc!r}")
            ran += 1
        return ran

    def __len__(self) -> int:
        """Live timers (a full scan: for diagnostics, not for the worker loop)."""
        return sum(1 for _, _, h in self._heap if not h.cancelled)


TIMERS = Timers()
