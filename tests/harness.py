"""Test harness: start ``kemi run`` on 127.0.0.1 and drive it with sipp."""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pykemi.runtime import launch

ROOT = Path(__file__).resolve().parent.parent
SIPP_DIR = Path(__file__).resolve().parent / "sipp"
SIPP = shutil.which("sipp")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningRouter:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def count(self, text: str) -> int:
        return self.log.count(text)


@contextmanager
def router(
    cfg: Path,
    tmp: Path,
    defines: dict[str, str] | None = None,
    timeout: float = 20.0,
    port: int | None = None,
) -> Iterator[RunningRouter]:
    """Run ``kemi run CFG`` with LISTEN on a free port until the block ends."""
    port = port or free_udp_port()
    all_defines = {"LISTEN": f"udp:127.0.0.1:{port}", **(defines or {})}
    log_path = tmp / f"router-{port}.log"
    with launch.running(cfg, log_path, all_defines, timeout) as proc:
        yield RunningRouter(proc, port, log_path)


@dataclass
class SippResult:
    returncode: int
    successful: int
    failed: int
    created: int
    output: str
    retransmissions: int = 0


def sipp(
    scenario: str | Path,
    port: int,
    tmp: Path,
    calls: int,
    rate: int = 500,
    extra: list[str] | None = None,
    timeout: float = 120.0,
) -> SippResult:
    """Run a sipp client scenario against 127.0.0.1:port; stats from its CSV."""
    assert SIPP, "sipp is not installed (Debian package sip-tester)"
    scen = Path(scenario)
    if not scen.is_absolute() and not scen.exists():
        scen = SIPP_DIR / scen
    stat = tmp / f"sipp-{port}-{time.time_ns()}.csv"
    args = [
        SIPP, "-sf", str(scen), f"127.0.0.1:{port}", "-i", "127.0.0.1", "-p", "0",
        "-m", str(calls), "-r", str(rate), "-nostdin", "-timeout", f"{int(timeout)}s",
        "-timeout_error", "-trace_stat", "-stf", str(stat), "-fd", "1", *(extra or []),
    ]  # fmt: skip
    run = subprocess.run(args, capture_output=True, timeout=timeout + 30, cwd=tmp)
    rows = list(csv.reader(stat.open(), delimiter=";")) if stat.exists() else []
    succ = fail = created = -1
    retrans = 0
    if len(rows) >= 2:
        head, last = rows[0], rows[-1]
        succ = int(last[head.index("SuccessfulCall(C)")])
        fail = int(last[head.index("FailedCall(C)")])
        created = int(last[head.index("TotalCallCreated")])
        retrans = int(last[head.index("Retransmissions(C)")])
    screen = run.stdout.decode(errors="replace")
    # the final statistics screen is authoritative: the CSV is dumped periodically and
    # may miss the end of a short run
    final = {k: _screen_total(screen, k) for k in ("Successful call", "Failed call")}
    if final["Successful call"] is not None:
        succ = final["Successful call"]
    if final["Failed call"] is not None:
        fail = final["Failed call"]
    text = screen[-3000:] + run.stderr.decode(errors="replace")
    return SippResult(run.returncode, succ, fail, created, text, retrans)


def _screen_total(screen: str, label: str) -> int | None:
    """Cumulative column of a row of sipp's last statistics screen (``label | p | c``)."""
    for line in reversed(screen.splitlines()):
        if line.strip().startswith(label) and "|" in line:
            try:
                return int(line.rsplit("|", 1)[1].strip())
            except ValueError:
                return None
    return None


def kemi(
    *args: str, cwd: Path | None = None, timeout: float = 120, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """The ``kemi`` command (pyproject.toml's script: the router's and the generator's)."""
    env = dict(os.environ)
    return subprocess.run(
        [sys.executable, "-m", "pykemi.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        timeout=timeout,
        env=env,
    )
