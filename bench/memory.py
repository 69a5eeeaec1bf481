"""Memory of a running router's processes, from /proc."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any


def _kb(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return -1


def rss_kb(pid: int) -> int:
    """VmRSS: resident pages, shared ones (fork copy-on-write, shared memory) counted whole."""
    return _kb(Path(f"/proc/{pid}/status"), "VmRSS")


def pss_kb(pid: int) -> int:
    """Pss: resident pages with each shared page divided among its sharers."""
    return _kb(Path(f"/proc/{pid}/smaps_rollup"), "Pss")


def tree_memory(main: int, children: list[int]) -> dict[str, Any]:
    """Per-worker RSS (median over the main process's children) and the tree's total PSS."""
    child_rss = [r for r in (rss_kb(p) for p in children) if r > 0]
    pss = [p for p in (pss_kb(pid) for pid in [main, *children]) if p > 0]
    return {
        "processes": 1 + len(children),
        "worker_rss_mb": round(statistics.median(child_rss) / 1024, 1) if child_rss else None,
        "main_rss_mb": round(rss_kb(main) / 1024, 1),
        "total_pss_mb": round(sum(pss) / 1024, 1) if pss else None,
    }
