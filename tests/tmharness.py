"""Helpers for the tm tests: a sipp UAS in the background and a router on a chosen listen."""

from __future__ import annotations

import csv
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .harness import SIPP, SIPP_DIR, RunningRouter, SippResult, router

ROOT = Path(__file__).resolve().parent.parent
RELAY = ROOT / "examples" / "relay"


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        try:
            with socket.socket(socket.AF_INET, other) as s2:
                s2.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def _stats(path: Path) -> tuple[int, int, int]:
    rows = list(csv.reader(path.open(), delimiter=";")) if path.exists() else []
    if len(rows) < 2:
        return -1, -1, -1
    head, last = rows[0], rows[-1]
    return (
        int(last[head.index("SuccessfulCall(C)")]),
        int(last[head.index("FailedCall(C)")]),
        int(last[head.index("TotalCallCreated")]),
    )


def counts(tmp: Path, scenario: str) -> dict[str, int]:
    """Per-message counters of sipp -trace_counts (last line), e.g. ``1_INVITE_Retrans``."""
    stem = Path(scenario).stem
    files = sorted(tmp.glob(f"{stem}_*_counts.csv"), key=lambda p: p.stat().st_mtime)
    if not files:
        return {}
    rows = list(csv.reader(files[-1].open(), delimiter=";"))
    if len(rows) < 2:
        return {}
    out: dict[str, int] = {}
    for k, v in zip(rows[0], rows[-1], strict=False):
        try:
            out[k] = int(v)
        except ValueError:
            continue
    return out


@dataclass
class SippUas:
    proc: subprocess.Popen[bytes]
    port: int
    stat: Path
    out: Path
    scenario: str
    tmp: Path

    def wait(self, timeout: float = 60.0) -> SippResult:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # sipp: stop and dump stats
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        succ, fail, created = _stats(self.stat)
        text = self.out.read_text(errors="replace")[-3000:]
        return SippResult(self.proc.returncode, succ, fail, created, text)

    def counts(self) -> dict[str, int]:
        return counts(self.tmp, self.scenario)


@contextmanager
def sipp_uas(
    scenario: str,
    tmp: Path,
    calls: int,
    transport: str = "u1",
    port: int | None = None,
    extra: list[str] | None = None,
    timeout: float = 120.0,
) -> Iterator[SippUas]:
    """Run a sipp server scenario on 127.0.0.1:port until ``calls`` calls ended."""
    assert SIPP, "sipp is not installed (Debian package sip-tester)"
    scen = SIPP_DIR / scenario
    port = port or free_port(socket.SOCK_STREAM if transport.startswith("t") else socket.SOCK_DGRAM)
    stat = tmp / f"uas-{port}.csv"
    out = tmp / f"uas-{port}.out"
    args = [
        SIPP, "-sf", str(scen), "-i", "127.0.0.1", "-p", str(port), "-t", transport,
        "-m", str(calls), "-nostdin", "-timeout", f"{int(timeout)}s", "-trace_stat",
        "-stf", str(stat), "-trace_counts", "-fd", "1", *(extra or []),
    ]  # fmt: skip
    with open(out, "wb") as fh:
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp)
    try:
        _wait_bound(port, transport, proc)
        yield SippUas(proc, port, stat, out, scenario, tmp)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_bound(port: int, transport: str, proc: subprocess.Popen[bytes]) -> None:
    kind = socket.SOCK_STREAM if transport.startswith("t") else socket.SOCK_DGRAM
    deadline = time.time() + 10
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sipp uas exited with {proc.returncode}")
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return  # sipp holds it
        time.sleep(0.05)
    raise RuntimeError("sipp uas did not bind its port")


@contextmanager
def relay_router(
    cfg: Path,
    tmp: Path,
    defines: dict[str, str] | None = None,
    listen: str = "udp",
    timeout: float = 20.0,
) -> Iterator[RunningRouter]:
    """``kemi run cfg`` listening on ``listen`` (udp | tcp | both) at a free port."""
    port = free_port()
    d: dict[str, str] = {}
    if listen in ("udp", "both"):
        d["LISTEN"] = f"udp:127.0.0.1:{port}"
    if listen == "tcp":
        d["LISTEN"] = f"tcp:127.0.0.1:{port}"
    if listen == "both":
        d["LISTEN2"] = f"tcp:127.0.0.1:{port}"
    d.update(defines or {})
    with router(cfg, tmp, d, timeout, port=port) as r:
        yield r
