"""Counters shared by every process of a router (Kamailio's statistics in shared memory).

One anonymous shared mapping is created with the Router, before the workers fork: a
row of int64 cells per process (rank 0 = main, 1..children = workers) and a column
per registered counter. A process only ever writes its own row, so no lock is needed;
a reader (an RPC in the main process) sums a column over the rows. Gauges (open
transactions) are kept as counters that go up and down in the row of the process that
owns the objects, so the sum is the router's total.

Counters are registered by name before fork (the column layout must be the same in
every process); registering later is an error. A restarted worker starts from a zeroed
row: the objects it counted died with its predecessor.
"""

from __future__ import annotations

import mmap

CELL = 8  # bytes per counter (struct format "q")
MAX_COUNTERS = 128


class StatsError(Exception):
    """A counter registered too late, twice with a clash, or beyond the capacity."""


class Stats:
    """Per-process int64 counters in one shared mapping."""

    def __init__(self, processes: int, counters: int = MAX_COUNTERS) -> None:
        self.rows = max(1, processes)
        self.columns = counters
        self._mem = mmap.mmap(-1, self.rows * self.columns * CELL)
        self._cells = memoryview(self._mem).cast("q")
        self.names: dict[str, int] = {}
        self._base = 0  # first cell of this process's row
        self._attached = False

    def register(self, name: str) -> int:
        """The column of counter ``name`` ("module:counter"), created on first use."""
        col = self.names.get(name)
        if col is not None:
            return col
        if self._attached:
            raise StatsError(f"counter {name!r} registered after the workers started")
        if len(self.names) >= self.columns:
            raise StatsError(f"more than {self.columns} counters: {name!r} does not fit")
        col = len(self.names)
        self.names[name] = col
        return col

    def attach(self, rank: int) -> None:
        """Make this process write row ``rank`` (called once after fork), zeroed."""
        if not 0 <= rank < self.rows:
            raise StatsError(f"process rank {rank} outside 0..{self.rows - 1}")
        self._base = rank * self.columns
        self._attached = True
        cells = self._cells
        for i in range(self._base, self._base + self.columns):
            cells[i] = 0

    def add(self, col: int, n: int = 1) -> None:
        self._cells[self._base + col] += n

    def set(self, col: int, value: int) -> None:
        self._cells[self._base + col] = value

    def cell(self, rank: int, col: int) -> int:
        """Process ``rank``'s value of a counter (the main process watching a worker)."""
        return int(self._cells[rank * self.columns + col])

    def reset_cell(self, rank: int, col: int) -> None:
        """Clear a dead process's value (only for a process that can no longer write it)."""
        self._cells[rank * self.columns + col] = 0

    def total(self, name: str) -> int:
        """Sum of counter ``name`` over all processes (0 for an unknown name)."""
        col = self.names.get(name)
        if col is None:
            return 0
        cells, width = self._cells, self.columns
        return sum(cells[row * width + col] for row in range(self.rows))

    def group(self, prefix: str) -> dict[str, int]:
        """Every counter named ``prefix:...``, summed, keyed by the part after the colon."""
        head = prefix + ":"
        return {n[len(head) :]: self.total(n) for n in self.names if n.startswith(head)}

    def close(self) -> None:
        self._cells.release()
        self._mem.close()
