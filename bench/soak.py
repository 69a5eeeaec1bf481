"""Soak test: hours-long-in-spirit stateless load with resource sampling and a trend check.

``python -m bench.soak [--minutes 30] [--rate N] [--interval 10] [--out DIR]``

Starts ``kemi run`` on an example config (stateless Lua OPTIONS responder by default),
measures the highest clean stateless rate with short sipp steps unless ``--rate`` is
given, then sends OPTIONS at half that rate for ``--minutes`` while sampling, every
``--interval`` seconds, the RSS and open file descriptors of the main process and of
each worker (``/proc/<pid>/status``, ``/proc/<pid>/fd``) and sipp's counters. Writes
``soak.csv`` and ``summary.json`` / ``summary.md`` to ``--out`` (default build/soak/).

Pass/fail: every call successful (0 failed), and no growth: the least-squares slope of
the total RSS over the run after a warm-up (first 20 % of samples) must stay below
``--max-growth-kb-per-min`` (default 64 KiB/min, i.e. < 2 MB over 30 minutes) and the
fd counts must end where they started. Exit status 0 = pass, 1 = fail.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .throughput import SIPP, SIPP_DIR, highest_clean, sipp_step

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CFG = ROOT / "examples" / "stateless" / "kamailio-lua.cfg"


@dataclass
class Sample:
    t: float  # seconds since the start of the load
    rss_main_kb: int
    rss_workers_kb: int  # sum over the workers
    rss_max_worker_kb: int
    fds_main: int
    fds_workers: int  # sum over the workers
    workers: int
    successful: int  # sipp's cumulative counters
    failed: int

    @property
    def rss_total_kb(self) -> int:
        return self.rss_main_kb + self.rss_workers_kb


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def sipp_counters(stat: Path) -> tuple[int, int]:
    try:
        rows = list(csv.reader(stat.open(), delimiter=";"))
    except OSError:
        return 0, 0
    if len(rows) < 2:
        return 0, 0
    head, last = rows[0], rows[-1]
    try:
        return int(last[head.index("SuccessfulCall(C)")]), int(last[head.index("FailedCall(C)")])
    except (ValueError, IndexError):
        return 0, 0


def sample(main: int, t: float, stat: Path) -> Sample:
    kids = children(main)
    rss = [rss_kb(k) for k in kids]
    succ, fail = sipp_counters(stat)
    return Sample(
        t=round(t, 1),
        rss_main_kb=rss_kb(main),
        rss_workers_kb=sum(rss),
        rss_max_worker_kb=max(rss, default=0),
        fds_main=fds(main),
        fds_workers=sum(fds(k) for k in kids),
        workers=len(kids),
        successful=succ,
        failed=fail,
    )


def slope_per_min(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (seconds), per minute."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den * 60.0


def start_router(cfg: Path, port: int, workdir: Path, children_n: int) -> subprocess.Popen[bytes]:
    log = open(workdir / "router.log", "wb")
    args = [sys.executable, "-m", "pykemi.runtime.cli", "run", str(cfg),
            "-D", f"LISTEN=udp:127.0.0.1:{port}", "-D", f"CHILDREN={children_n}"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=cfg.parent)
    deadline = time.time() + 30
    while "pykemi: ready" not in (workdir / "router.log").read_text(errors="replace"):
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"router did not start:\n{(workdir / 'router.log').read_text()}")
        time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure_rate(port: int, tmp: Path) -> int:
    """Highest clean stateless OPTIONS rate with 3-second sipp steps."""
    steps = []
    for rate in (500, 1000, 1500, 2000, 3000, 4000, 6000, 8000):
        step = sipp_step(SIPP_DIR / "options.xml", port, tmp, rate, 3.0)
        steps.append(step)
        print(f"  rate {rate}/s: {'clean' if step.clean else 'not clean: ' + step.note}")
        if not step.clean:
            break
    return highest_clean(steps)


def run(args: argparse.Namespace) -> int:
    assert SIPP, "sipp is not installed (Debian package sip-tester)"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pykemi-soak-"))
    cfg = Path(args.config).resolve()
    port = free_port()
    router = start_router(cfg, port, work, args.children)
    try:
        rate = args.rate
        measured = 0
        if not rate:
            print("measuring the highest clean stateless rate ...")
            measured = measure_rate(port, work)
            rate = max(50, measured // 2)
        seconds = int(args.minutes * 60)
        print(f"soak: {rate} OPTIONS/s for {seconds}s, sampling every {args.interval}s")
        stat = work / "soak-sipp.csv"
        sipp_args = [
            SIPP, "-sf", str(SIPP_DIR / "options.xml"), f"127.0.0.1:{port}", "-i", "127.0.0.1",
            "-p", "0", "-m", str(rate * seconds), "-r", str(rate), "-l", str(max(100, rate * 4)),
            "-nostdin", "-buff_size", "4194304", "-timeout", f"{seconds + 60}s",
            "-trace_stat", "-stf", str(stat), "-fd", str(max(1, args.interval // 2)),
        ]  # fmt: skip
        sipp_log = open(work / "sipp.log", "wb")
        sipp = subprocess.Popen(sipp_args, stdout=sipp_log, stderr=subprocess.STDOUT, cwd=work)
        t0 = time.monotonic()
        samples: list[Sample] = []
        with open(out / "soak.csv", "w", newline="") as fh:
            fields = [*Sample.__dataclass_fields__, "rss_total_kb"]
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            while sipp.poll() is None and router.poll() is None:
                s = sample(router.pid, time.monotonic() - t0, stat)
                samples.append(s)
                writer.writerow({**asdict(s), "rss_total_kb": s.rss_total_kb})
                fh.flush()
                print(
                    f"  t={s.t:7.1f}s rss main {s.rss_main_kb} kB workers {s.rss_workers_kb} kB "
                    f"fds {s.fds_main}+{s.fds_workers} ok {s.successful} failed {s.failed}",
                    flush=True,
                )
                time.sleep(args.interval)
            sipp.wait(timeout=120)
            final = sample(router.pid, time.monotonic() - t0, stat)
            samples.append(final)
            writer.writerow({**asdict(final), "rss_total_kb": final.rss_total_kb})
        sipp_log.close()
        router_alive = router.poll() is None
    finally:
        stop(router)
    summary = summarize(samples, rate, measured, seconds, args, router_alive)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(markdown(summary))
    shutil.copy(work / "router.log", out / "router.log")
    print(markdown(summary))
    return 0 if summary["pass"] else 1


def summarize(
    samples: list[Sample],
    rate: int,
    measured: int,
    seconds: int,
    args: argparse.Namespace,
    router_alive: bool,
) -> dict[str, Any]:
    warm = samples[max(1, len(samples) // 5) :] or samples
    xs = [s.t for s in warm]
    slope_total = slope_per_min(xs, [float(s.rss_total_kb) for s in warm])
    slope_main = slope_per_min(xs, [float(s.rss_main_kb) for s in warm])
    first, last = samples[0], samples[-1]
    fd_growth = (last.fds_main + last.fds_workers) - (warm[0].fds_main + warm[0].fds_workers)
    checks = {
        "no failed calls": last.failed == 0,
        "all calls successful": last.successful == rate * seconds,
        "router alive at the end": router_alive,
        "rss slope below limit": slope_total < args.max_growth_kb_per_min,
        "fds do not grow": fd_growth <= 0,
        "workers unchanged": first.workers == last.workers,
    }
    return {
        "rate": rate,
        "measured_max_rate": measured or None,
        "seconds": seconds,
        "calls": rate * seconds,
        "successful": last.successful,
        "failed": last.failed,
        "samples": len(samples),
        "rss_total_start_kb": first.rss_total_kb,
        "rss_total_after_warmup_kb": warm[0].rss_total_kb,
        "rss_total_end_kb": last.rss_total_kb,
        "rss_main_start_kb": first.rss_main_kb,
        "rss_main_end_kb": last.rss_main_kb,
        "rss_max_worker_end_kb": last.rss_max_worker_kb,
        "rss_slope_total_kb_per_min": round(slope_total, 2),
        "rss_slope_main_kb_per_min": round(slope_main, 2),
        "fds_start": first.fds_main + first.fds_workers,
        "fds_end": last.fds_main + last.fds_workers,
        "open_transactions": "n/a (stateless config)",
        "checks": checks,
        "pass": all(checks.values()),
    }


def markdown(s: dict[str, Any]) -> str:
    lines = [
        f"# Soak: {s['rate']} OPTIONS/s for {s['seconds']} s ({'PASS' if s['pass'] else 'FAIL'})",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    for key in (
        "measured_max_rate", "calls", "successful", "failed", "samples",
        "rss_total_start_kb", "rss_total_after_warmup_kb", "rss_total_end_kb",
        "rss_main_start_kb", "rss_main_end_kb", "rss_max_worker_end_kb",
        "rss_slope_total_kb_per_min", "rss_slope_main_kb_per_min", "fds_start", "fds_end",
        "open_transactions",
    ):  # fmt: skip
        lines.append(f"| {key} | {s[key]} |")
    lines += ["", *(f"- [{'x' if ok else ' '}] {name}" for name, ok in s["checks"].items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.soak", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--rate", type=int, default=0, help="calls/s (default: half the measured max)")
    p.add_argument("--interval", type=int, default=10, help="seconds between samples")
    p.add_argument("--config", default=str(DEFAULT_CFG))
    p.add_argument("--children", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "build" / "soak"))
    p.add_argument("--max-growth-kb-per-min", type=float, default=64.0)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
