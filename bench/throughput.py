"""Throughput with sipp: bounded runs at increasing rates, the highest clean rate wins.

A step sends ``rate * seconds`` calls at ``-r rate``; it is clean when every call
succeeded, none failed, sipp retransmitted nothing (stateless) and sipp kept up
with the rate (the run did not take much longer than planned). Each step is
bounded by sipp's own ``-timeout`` and a subprocess timeout.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIPP_DIR = ROOT / "tests" / "sipp"
SIPP = shutil.which("sipp")


@dataclass
class Step:
    rate: int
    calls: int
    successful: int
    failed: int
    retrans: int
    elapsed: float  # seconds, sipp's own clock
    clean: bool
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _epoch(text: str) -> float:
    # sipp's time columns: "YYYY-MM-DD<TAB>HH:MM:SS.uuuuuu<TAB>epoch.uuuuuu"
    try:
        return float(text.split("\t")[-1])
    except ValueError:
        return -1.0


def sipp_step(
    scenario: Path,
    port: int,
    tmp: Path,
    rate: int,
    seconds: float,
    retrans_allowed: bool = False,
    extra: tuple[str, ...] = (),
) -> Step:
    """One bounded sipp client run against 127.0.0.1:port."""
    assert SIPP, "sipp is not installed (Debian package sip-tester)"
    calls = max(1, int(rate * seconds))
    stat = tmp / f"sipp-{port}-{rate}-{time.time_ns()}.csv"
    budget = int(seconds * 3 + 10)
    args = [
        SIPP, "-sf", str(scenario), f"127.0.0.1:{port}", "-i", "127.0.0.1", "-p", "0",
        "-m", str(calls), "-r", str(rate), "-l", str(max(100, rate * 4)), "-nostdin",
        "-buff_size", "4194304", "-recv_timeout", "2000", "-timeout", f"{budget}s", "-timeout_error",
        "-trace_stat", "-stf", str(stat), "-fd", "60", *extra,
    ]  # fmt: skip
    try:
        run = subprocess.run(args, capture_output=True, timeout=budget + 20, cwd=tmp)
        out = (run.stdout + run.stderr).decode(errors="replace")
    except subprocess.TimeoutExpired:
        return Step(rate, calls, 0, calls, 0, -1.0, False, "sipp did not finish in time")
    rows = list(csv.reader(stat.open(), delimiter=";")) if stat.exists() else []
    if len(rows) < 2:
        return Step(rate, calls, 0, calls, 0, -1.0, False, f"no sipp stats: {out[-300:]}")
    head, last = rows[0], rows[-1]

    def col(name: str) -> str:
        return last[head.index(name)] if name in head else "0"

    succ = int(col("SuccessfulCall(C)"))
    fail = int(col("FailedCall(C)"))
    retrans = int(col("Retransmissions(C)"))
    start, now = _epoch(col("StartTime")), _epoch(col("CurrentTime"))
    elapsed = now - start if start > 0 and now > 0 else -1.0
    notes = []
    if succ != calls:
        notes.append(f"{calls - succ} not successful")
    if retrans and not retrans_allowed:
        notes.append(f"{retrans} retransmissions")
    kept_up = 0 <= elapsed <= seconds * 1.25 + 0.5
    if not kept_up:
        notes.append(f"took {elapsed:.1f}s for {seconds:.0f}s of traffic")
    clean = fail == 0 and succ == calls and (retrans_allowed or retrans == 0) and kept_up
    return Step(rate, calls, succ, fail, retrans, elapsed, clean, "; ".join(notes))


def highest_clean(steps: list[Step]) -> int:
    """The highest rate below the first unclean step (0 when the first step failed)."""
    best = 0
    for s in steps:
        if not s.clean:
            break
        best = s.rate
    return best


class Uas:
    """A sipp UAS on 127.0.0.1:port: the built-in one (``-sn uas``) or a scenario file,
    with its unexpected messages in ``errors`` when given."""

    def __init__(
        self,
        port: int,
        tmp: Path,
        timeout: int = 900,
        scenario: Path | None = None,
        errors: Path | None = None,
    ) -> None:
        assert SIPP
        self.port = port
        self.log = open(tmp / f"uas-{port}.log", "wb")  # closed in stop()
        scen = ["-sf", str(scenario)] if scenario else ["-sn", "uas"]
        trace = ["-trace_err", "-error_file", str(errors)] if errors else []
        # bounded: sipp exits by itself after `timeout` seconds even if never stopped
        args = [SIPP, *scen, "-i", "127.0.0.1", "-p", str(port), "-nostdin",
                "-buff_size", "4194304", "-timeout", f"{timeout}s", *trace]  # fmt: skip
        self.proc = subprocess.Popen(
            args,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
        time.sleep(0.3)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
