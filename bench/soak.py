"""Soak test: long steady load with resource sampling and a trend check.

``python -m bench.soak [--scenario relay|stateless] [--minutes 30] [--rate N] [--out DIR]``

Starts ``kemi run`` on an example config and a load from sipp:

* ``relay`` (default): ``examples/relay`` (Lua, tm ``t_relay``) between a sipp UAC
  (INVITE/200/ACK/BYE/200, ``tests/sipp/uac_call.xml``) and a sipp UAS (``uas_200.xml``): two
  transactions per call;
* ``stateless``: ``examples/stateless`` (Lua), OPTIONS answered by ``sl``.

Unless ``--rate`` is given it measures the highest clean rate with short sipp steps, then
runs at half of it for ``--minutes`` while sampling every ``--interval`` seconds the RSS
and open file descriptors of the main process and each worker (``/proc``), sipp's
counters and, for ``relay``, the open and waiting transactions (``tm.stats`` over the
control socket). After the load it waits for the transaction table to drain. Writes
``soak.csv`` and ``summary.json`` / ``summary.md`` to ``--out`` (default build/soak/).

Pass/fail: every call successful (0 failed), transactions created == freed at the end
(none lost or leaked), and no growth after a warm-up (the first 20 % of samples): the
least-squares slope of the total RSS must stay below ``--max-growth-kb-per-min``
(default 64 KiB/min, < 2 MB over 30 minutes), open transactions must not trend up, and
the fd counts must end where they started. Exit status 0 = pass, 1 = fail.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pykemi.runtime.control import call, default_socket_path
from pykemi.runtime.launch import RouterStartError, kemi_run_args, stop, wait_ready

from .systems import free_udp_port
from .throughput import SIPP, SIPP_DIR, Uas, highest_clean, sipp_step

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {
    "relay": ROOT / "examples" / "relay" / "kamailio-lua.cfg",
    "stateless": ROOT / "examples" / "stateless" / "kamailio-lua.cfg",
}
SCENARIOS = {"relay": SIPP_DIR / "uac_call.xml", "stateless": SIPP_DIR / "options.xml"}
RATES = {
    "relay": (25, 50, 100, 150, 200, 300, 400, 600, 800, 1000),
    "stateless": (500, 1000, 1500, 2000, 3000, 4000, 6000, 8000),
}
# UAS: 180, 200, ACK, BYE, 200, and a late INVITE retransmission of the relay is legal
# (sipp's built-in uas aborts the call on one: its BYE is then never answered)
UAS_SCENARIO = SIPP_DIR / "uas_200.xml"
DRAIN_SECONDS = 90  # tm's wt_timer (5 s) + timer J (32 s) + margin


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
    open_transactions: int  # tm.stats current (-1: no tm)
    waiting_transactions: int  # tm.stats waiting

    @property
    def rss_total_kb(self) -> int:
        return self.rss_main_kb + self.rss_workers_kb


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


def tm_stats(rpc: str | None) -> dict[str, int]:
    """tm.stats of the router (empty without tm or when the socket does not answer)."""
    if rpc is None:
        return {}
    try:
        reply = call(rpc, "tm.stats", [], timeout=5.0)
    except OSError:
        return {}
    result = reply.get("result")
    return result if isinstance(result, dict) else {}


def sample(main: int, t: float, stat: Path, rpc: str | None) -> Sample:
    kids = children(main)
    rss = [rss_kb(k) for k in kids]
    succ, fail = sipp_counters(stat)
    tm = tm_stats(rpc)
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
        open_transactions=tm.get("current", -1),
        waiting_transactions=tm.get("waiting", -1),
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


def start_router(
    cfg: Path, port: int, workdir: Path, children_n: int, defines: dict[str, str]
) -> subprocess.Popen[bytes]:
    log = workdir / "router.log"
    all_defines = {"LISTEN": f"udp:127.0.0.1:{port}", "CHILDREN": str(children_n), **defines}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            kemi_run_args(cfg, all_defines), stdout=out, stderr=subprocess.STDOUT, cwd=cfg.parent
        )
    try:
        wait_ready(proc, log, 30)
    except RouterStartError as exc:
        stop(proc)
        raise SystemExit(str(exc)) from None
    return proc


def quiet_copy(cfg: Path, work: Path) -> Path:
    """The config and its script in ``work`` with ``debug=1``: the relay example logs a
    line per callback at debug=2, which would write ~200 MB in 30 minutes."""
    for f in cfg.parent.iterdir():
        if f.is_file():
            shutil.copy(f, work / f.name)
    copy = work / cfg.name
    copy.write_text(copy.read_text().replace("\ndebug=2\n", "\ndebug=1\n"))
    return copy


def measure_rate(scenario: str, port: int, tmp: Path) -> int:
    """Highest clean rate with 3-second sipp steps (retransmissions allowed through tm)."""
    steps = []
    for rate in RATES[scenario]:
        step = sipp_step(SCENARIOS[scenario], port, tmp, rate, 3.0, scenario == "relay")
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
    scenario = args.scenario
    cfg = quiet_copy(Path(args.config or CONFIGS[scenario]).resolve(), work)
    port = free_udp_port()
    seconds = int(args.minutes * 60)
    uas: Uas | None = None
    defines: dict[str, str] = {}
    if scenario == "relay":
        uas_port = free_udp_port()
        uas = Uas(uas_port, work, seconds + 1200, UAS_SCENARIO, work / "uas-errors.log")
        defines["UAS_URI"] = f"sip:127.0.0.1:{uas_port}"
    rpc = default_socket_path("127.0.0.1", port) if scenario == "relay" else None
    router = start_router(cfg, port, work, args.children, defines)
    try:
        rate = args.rate
        measured = 0
        if not rate:
            print(f"measuring the highest clean {scenario} rate ...")
            measured = measure_rate(scenario, port, work)
            rate = max(10, measured // 2)
            if rpc is not None:
                drain(rpc, router)  # the soak starts from an empty table
            if uas is not None:
                # the overloaded last step leaves the UAS with half-done calls still
                # retransmitting: the soak starts against a fresh one, on the same port
                uas.stop()
                uas = Uas(uas.port, work, seconds + 1200, UAS_SCENARIO, work / "uas-errors.log")
            time.sleep(5)
        unit = "calls" if scenario == "relay" else "OPTIONS"
        print(f"soak: {rate} {unit}/s for {seconds}s, sampling every {args.interval}s")
        stat = work / "soak-sipp.csv"
        sipp_args = [
            SIPP, "-sf", str(SCENARIOS[scenario]), f"127.0.0.1:{port}", "-i", "127.0.0.1",
            "-p", "0", "-m", str(rate * seconds), "-r", str(rate), "-l", str(max(100, rate * 40)),
            "-nostdin", "-buff_size", "4194304", "-timeout", f"{seconds + 120}s",
            "-trace_stat", "-stf", str(stat), "-fd", str(max(1, args.interval // 2)),
            "-trace_err", "-error_file", str(work / "sipp-errors.log"),
        ]  # fmt: skip
        start_stats = tm_stats(rpc)
        sipp_log = open(work / "sipp.log", "wb")
        sipp = subprocess.Popen(sipp_args, stdout=sipp_log, stderr=subprocess.STDOUT, cwd=work)
        t0 = time.monotonic()
        samples: list[Sample] = []
        with open(out / "soak.csv", "w", newline="") as fh:
            fields = [*Sample.__dataclass_fields__, "rss_total_kb"]
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()

            def take() -> Sample:
                s = sample(router.pid, time.monotonic() - t0, stat, rpc)
                samples.append(s)
                writer.writerow({**asdict(s), "rss_total_kb": s.rss_total_kb})
                fh.flush()
                return s

            while sipp.poll() is None and router.poll() is None:
                s = take()
                print(
                    f"  t={s.t:7.1f}s rss main {s.rss_main_kb} kB workers {s.rss_workers_kb} kB "
                    f"fds {s.fds_main}+{s.fds_workers} ok {s.successful} failed {s.failed}"
                    + (f" txns {s.open_transactions}" if rpc else ""),
                    flush=True,
                )
                time.sleep(args.interval)
            sipp.wait(timeout=180)
            loaded = len(samples)
            if rpc is not None:
                drain(rpc, router)
            take()
        sipp_log.close()
        end_stats = tm_stats(rpc)
        router_alive = router.poll() is None
    finally:
        stop(router)
        if uas is not None:
            uas.stop()
    summary = summarize(samples[:loaded], samples[-1], rate, measured, seconds, args, router_alive)
    summary["tm"] = {k: end_stats.get(k, 0) - start_stats.get(k, 0) for k in end_stats}
    if rpc is not None:
        tm = summary["tm"]
        summary["checks"]["transactions: created == freed"] = (
            tm.get("created") == tm.get("freed") and tm.get("created", 0) >= 2 * summary["calls"]
        )
        summary["pass"] = all(summary["checks"].values())
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(markdown(summary))
    shutil.copy(work / "router.log", out / "router.log")
    for name in ("sipp-errors.log", "uas-errors.log"):  # why sipp failed a call, if it did
        if (work / name).exists():
            shutil.copy(work / name, out / name)
    print(markdown(summary))
    return 0 if summary["pass"] else 1


def drain(rpc: str, router: subprocess.Popen[bytes]) -> None:
    """Wait until no transaction is open (tm's timers remove them after the load)."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline and router.poll() is None:
        if tm_stats(rpc).get("current", 0) == 0:
            return
        time.sleep(1.0)


def summarize(
    samples: list[Sample],
    final: Sample,
    rate: int,
    measured: int,
    seconds: int,
    args: argparse.Namespace,
    router_alive: bool,
) -> dict[str, Any]:
    """Figures and pass/fail checks; ``samples`` are taken under load, ``final`` after it."""
    samples = samples or [final]
    warm = samples[max(1, len(samples) // 5) :] or samples
    xs = [s.t for s in warm]
    slope_total = slope_per_min(xs, [float(s.rss_total_kb) for s in warm])
    slope_main = slope_per_min(xs, [float(s.rss_main_kb) for s in warm])
    first = samples[0]
    fd_growth = (final.fds_main + final.fds_workers) - (warm[0].fds_main + warm[0].fds_workers)
    checks = {
        "no failed calls": final.failed == 0,
        "all calls successful": final.successful == rate * seconds,
        "router alive at the end": router_alive,
        "rss slope below limit": slope_total < args.max_growth_kb_per_min,
        "fds do not grow": fd_growth <= 0,
        "workers unchanged": first.workers == final.workers,
    }
    out: dict[str, Any] = {
        "scenario": args.scenario,
        "rate": rate,
        "measured_max_rate": measured or None,
        "seconds": seconds,
        "calls": rate * seconds,
        "successful": final.successful,
        "failed": final.failed,
        "samples": len(samples),
        "rss_total_start_kb": first.rss_total_kb,
        "rss_total_after_warmup_kb": warm[0].rss_total_kb,
        "rss_total_end_kb": final.rss_total_kb,
        "rss_main_start_kb": first.rss_main_kb,
        "rss_main_end_kb": final.rss_main_kb,
        "rss_max_worker_end_kb": final.rss_max_worker_kb,
        "rss_slope_total_kb_per_min": round(slope_total, 2),
        "rss_slope_main_kb_per_min": round(slope_main, 2),
        "fds_start": first.fds_main + first.fds_workers,
        "fds_end": final.fds_main + final.fds_workers,
        "open_transactions": "n/a (stateless config)",
    }
    if first.open_transactions >= 0:
        opens = [float(s.open_transactions) for s in warm]
        mean = sum(opens) / len(opens)
        slope = slope_per_min(xs, opens)
        span_min = (xs[-1] - xs[0]) / 60 if len(xs) > 1 else 0.0
        # a steady load keeps about rate * 2 * (call time + wt_timer) transactions open
        checks["open transactions do not trend up"] = slope * span_min <= max(50.0, 0.1 * mean)
        checks["open transactions drain to 0"] = final.open_transactions == 0
        out["open_transactions"] = (
            f"mean {mean:.0f}, max {max(opens):.0f} under load; slope {slope:.2f}/min; "
            f"{final.open_transactions} after the load"
        )
        out["open_transactions_mean"] = round(mean, 1)
        out["open_transactions_max"] = int(max(opens))
        out["open_transactions_slope_per_min"] = round(slope, 2)
        out["open_transactions_end"] = final.open_transactions
    out["checks"] = checks
    out["pass"] = all(checks.values())
    return out


def markdown(s: dict[str, Any]) -> str:
    unit = "calls" if s["scenario"] == "relay" else "OPTIONS"
    lines = [
        f"# Soak ({s['scenario']}): {s['rate']} {unit}/s for {s['seconds']} s "
        f"({'PASS' if s['pass'] else 'FAIL'})",
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
    tm = s.get("tm") or {}
    if tm:
        lines.append(
            "| tm.stats over the run | "
            + ", ".join(f"{k} {v}" for k, v in tm.items() if k not in ("current", "waiting"))
            + " |"
        )
    lines += ["", *(f"- [{'x' if ok else ' '}] {name}" for name, ok in s["checks"].items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.soak", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--rate", type=int, default=0, help="calls/s (default: half the measured max)")
    p.add_argument("--interval", type=int, default=10, help="seconds between samples")
    p.add_argument("--scenario", choices=sorted(CONFIGS), default="relay")
    p.add_argument("--config", default="", help="config file (default: the scenario's example)")
    p.add_argument("--children", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "build" / "soak"))
    p.add_argument("--max-growth-kb-per-min", type=float, default=64.0)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
