"""``nox -s bench`` / ``python -m bench.run``: pykemi and Kamailio side by side, one command.

Measures, with the two routers interleaved in one run (see docs/benchmarks.md):
per-call overhead, stateless throughput, relay throughput (when tm works),
startup time and memory, and codegen time. Writes bench/results/<date>.json,
.md and .png and rewrites docs/benchmarks.md. Kamailio (Debian's 5.6) and sipp
are installed when missing if running as root with CI unset, or with
``--with-kamailio``; a missing Kamailio never fails the run, it shows as n/a.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from . import codegen_bench, percall, report, systems, throughput
from .memory import tree_memory
from .sipclient import Client

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
EXAMPLES = ROOT / "examples"
ALL_ENGINES = ("lua", "python", "jsdt", "ruby", "sqlang")
SECTIONS = ("percall", "stateless", "relay", "startup", "codegen")
STATELESS_RATES = (500, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 8000, 10000, 12000, 16000,
                   20000, 24000, 32000)  # fmt: skip
RETRIES = 2  # more tries of an unclean rate step before it counts as the limit
RELAY_RATES = (25, 50, 100, 150, 200, 300, 400, 600, 800, 1000, 1500, 2000, 3000, 4000)
NATIVE_CFG = """#!KAMAILIO
debug=1
log_stderror=yes
fork=yes
children={children}
auto_aliases=no
listen=udp:127.0.0.1:{port}
loadmodule "sl.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (is_method("OPTIONS")) {{ sl_send_reply("200", "OK"); exit; }}
    sl_send_reply("404", "Not Found");
}}
"""


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="kemi-bench-"))
        self.notes: list[str] = []
        self.deadline = time.monotonic() + float(args.budget)
        self.kamailio = False
        self.kam_engines: dict[str, bool] = {}

    # -- helpers -------------------------------------------------------------------------------

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def say(self, text: str) -> None:
        """One progress line per step, on stderr (stdout is the report), silenced by -q."""
        if not self.args.quiet:
            print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    def systems_for(self, engine: str) -> list[str]:
        names = ["pykemi"]
        if self.kamailio and self.kam_engines.get(engine):
            names.append("kamailio")
        return names

    @contextmanager
    def routers(
        self,
        cfgs: Mapping[str, Callable[..., str]],  # name -> cfg text for a port
        label: str,
        probe_max_forwards: int | None = 70,
    ) -> Iterator[dict[str, systems.Running | str]]:
        """Start each router (name -> cfg for a port); a router that fails to start maps to
        the reason, the others still run."""
        with ExitStack() as stack:
            out: dict[str, systems.Running | str] = {}
            for name, make in cfgs.items():
                port = systems.free_udp_port()
                try:
                    out[name] = stack.enter_context(
                        systems.started(
                            name, make(port), self.tmp, port, label, 30.0, probe_max_forwards
                        )
                    )
                except Exception as exc:  # noqa: BLE001 - reported, never fatal
                    out[name] = f"did not start: {str(exc).splitlines()[0][:160]}"
                    self.say(f"{name} {label}: {out[name]}\n{str(exc)[-1200:]}")
            try:
                yield out
            finally:
                for name, r in out.items():
                    if isinstance(r, str):
                        continue
                    errors = [ln for ln in r.log.splitlines() if "ERROR" in ln]
                    if errors:  # a script failing per message makes any number meaningless
                        self.notes.append(
                            f"{label} {name}: {len(errors)} ERROR line(s) in its log, first: "
                            f"{errors[0].strip()[:160]}"
                        )

    # -- sections ------------------------------------------------------------------------------

    def percall(self) -> dict[str, Any]:
        engines: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for engine in self.args.engines:
            if self.left() < 30:
                errors[engine] = "skipped: time budget"
                continue
            script = self.tmp / f"percall.{percall.EXT[engine]}"
            script.write_text(percall.remote_script(engine))
            cfgs = {
                name: (lambda port, e=engine, s=script: systems.cfg_text(e, s, port, 1))
                for name in self.systems_for(engine)
            }
            self.say(f"per-call {engine}: {', '.join(cfgs)}")
            result: dict[str, Any] = {}
            with self.routers(cfgs, f"percall-{engine}") as running, Client() as client:
                for case in percall.CASES:
                    row: dict[str, Any] = {}
                    for name, r in running.items():  # interleaved: pykemi, then Kamailio
                        if isinstance(r, str):
                            row[name + "_error"] = r
                            continue
                        try:
                            m = percall.measure_remote(client, r.port, case)
                        except Exception as exc:  # noqa: BLE001
                            row[name + "_error"] = str(exc)[:200]
                            continue
                        row[name] = round(m["ns"], 1)
                        row[name + "_n"] = m["n"]
                        row[name + "_empty_ns"] = round(m["empty_ns"], 1)
                    r_ = report.ratio(row.get("pykemi"), row.get("kamailio"))
                    row["ratio"] = round(r_, 2) if r_ is not None else None
                    result[case] = row
                    self.say(
                        f"  {engine} {case}: pykemi {row.get('pykemi')} ns, "
                        f"kamailio {row.get('kamailio')} ns"
                    )
            engines[engine] = result
        return {"engines": engines, "errors": errors, "method": "remote, best of 3"}

    def _ramp(
        self,
        running: dict[str, systems.Running | str],
        rates: tuple[int, ...],
        step: Callable[[systems.Running, int], throughput.Step],
        label: str,
    ) -> dict[str, Any]:
        """Step each router through ``rates`` (interleaved); stop one at its first rate that
        stays unclean after ``RETRIES`` more tries."""
        out: dict[str, Any] = {}
        active = []
        for name, r in running.items():
            if isinstance(r, str):
                out[name] = {"error": r, "rate": None}
            else:
                out[name] = {"steps": [], "rate": None, "first_rate": rates[0]}
                active.append(name)
        for rate in rates:
            if not active:
                break
            if self.left() < 20:
                self.notes.append(f"{label}: stopped at {rate}/s by the time budget")
                for name in active:
                    out[name]["ceiling"] = True
                break
            for name in list(active):
                r = running[name]
                assert not isinstance(r, str)
                s = step(r, rate)
                for _ in range(RETRIES):  # the machine is shared: a bad second is not a limit
                    if s.clean:
                        break
                    self.say(f"  {label} {name} {rate}/s unclean ({s.note}); retrying")
                    out[name]["steps"].append(s.as_dict() | {"retried": True})
                    time.sleep(1.0)
                    s = step(r, rate)
                out[name]["steps"].append(s.as_dict())
                self.say(
                    f"  {label} {name} {rate}/s: {'clean' if s.clean else 'UNCLEAN'} "
                    f"({s.successful}/{s.calls} ok, {s.failed} failed, {s.retrans} retrans, "
                    f"{s.elapsed:.2f}s) {s.note}"
                )
                if s.clean:
                    out[name]["rate"] = rate
                else:
                    active.remove(name)
                    if out[name]["rate"] is None:
                        out[name]["rate"] = 0
                time.sleep(0.5)  # let queues drain between steps
        for name in active:  # never failed: the top of the ramp is a lower bound
            out[name]["ceiling"] = True
        return out

    def stateless_script(self, engine: str) -> Path:
        """The examples/stateless script, made portable to Kamailio 5.6 where needed.

        Kamailio 5.6's app_python3 has no ``KSR.x.exit`` (an AttributeError, logged with a
        traceback, per request): the copy returns from the route instead, which is what
        ``KSR.x.exit()`` does at that point of the example.
        """
        ext = systems.ENGINES[engine][1]
        script = EXAMPLES / "stateless" / f"kamailio.{ext}"
        if engine != "python":
            return script
        copy = self.tmp / f"stateless-{engine}.{ext}"
        copy.write_text(script.read_text().replace("KSR.x.exit()", "return 1"))
        return copy

    def stateless(self) -> dict[str, Any]:
        seconds = self.args.seconds
        scen = throughput.SIPP_DIR / "options.xml"
        engines: dict[str, Any] = {}
        if throughput.SIPP is None:
            return {"error": "sipp not installed", "engines": {}}
        rates = STATELESS_RATES[: 6 if self.args.quick else None]

        def step(r: systems.Running, rate: int) -> throughput.Step:
            return throughput.sipp_step(scen, r.port, self.tmp, rate, seconds)

        for engine in self.args.throughput_engines:
            if self.left() < 40:
                self.notes.append(f"stateless {engine}: skipped by the time budget")
                continue
            script = self.stateless_script(engine)
            cfgs = {
                name: (lambda port, e=engine, s=script: systems.cfg_text(e, s, port, 2))
                for name in self.systems_for(engine)
            }
            self.say(f"stateless {engine}: {', '.join(cfgs)}")
            with self.routers(cfgs, f"stateless-{engine}") as running:
                engines[engine] = self._ramp(running, rates, step, f"stateless {engine}")
        native = None
        if self.kamailio and self.left() > 40:
            self.say("stateless: Kamailio native cfg (sipp/machine reference)")
            native_cfgs: dict[str, Callable[..., str]] = {
                "kamailio": lambda port: NATIVE_CFG.format(children=2, port=port)
            }
            with self.routers(native_cfgs, "stateless-native") as running:
                native = self._ramp(running, rates, step, "stateless native")["kamailio"]
        return {"engines": engines, "native": native, "children": 2, "seconds": seconds}

    def _relay_script(self, engine: str) -> Path:
        """The examples/relay script, made portable to Kamailio 5.6 where needed.

        Kamailio 5.6's app_python3 looks up ``ksr_onsend_route`` when tm sends and, when
        it is missing, leaves the AttributeError set: ``t_relay`` then fails with a
        SystemError. The copy defines it (returning 1, as the Kamailio example does).
        """
        ext = systems.ENGINES[engine][1]
        script = (EXAMPLES / "relay" / f"kamailio.{ext}").resolve()
        if engine != "python":
            return script
        copy = self.tmp / f"relay-{engine}.{ext}"
        onsend = "    def ksr_onsend_route(self, msg):\n        return 1\n\n"
        text = script.read_text().replace("class kamailio:\n", "class kamailio:\n" + onsend)
        copy.write_text(text)
        return copy

    def _relay_cfg(self, engine: str, port: int, uas_port: int) -> str:
        cfg = (EXAMPLES / "relay" / f"kamailio-{engine}.cfg").read_text()
        ext = systems.ENGINES[engine][1]
        script = self._relay_script(engine)
        cfg = cfg.replace("\ndebug=2", "\ndebug=1")
        cfg = cfg.replace(f'"kamailio.{ext}"', f'"{script}"')
        head = (
            f"#!define LISTEN udp:127.0.0.1:{port}\n#!define CHILDREN 2\n"
            f"#!define UAS_URI sip:127.0.0.1:{uas_port}\n"
        )
        first, _, rest = cfg.partition("\n")
        return f"{first}\n{head}{rest}" if first.startswith("#!") else head + cfg

    def relay(self) -> dict[str, Any]:
        seconds = self.args.seconds
        scen = throughput.SIPP_DIR / "uac_call.xml"
        if throughput.SIPP is None:
            return {"status": "n/a: sipp not installed"}
        engines = [
            e
            for e in self.args.throughput_engines
            if (EXAMPLES / "relay" / f"kamailio-{e}.cfg").exists()
        ]
        if not engines or not scen.exists():
            return {"status": "n/a: tm not available (no examples/relay configs)"}
        rates = RELAY_RATES[: 6 if self.args.quick else None]
        out: dict[str, Any] = {}
        status = "ok"
        for engine in engines:
            if self.left() < 40:
                self.notes.append(f"relay {engine}: skipped by the time budget")
                continue
            uas_ports = {name: systems.free_udp_port() for name in self.systems_for(engine)}
            uases = [throughput.Uas(p, self.tmp) for p in uas_ports.values()]
            try:
                cfgs = {
                    name: (lambda port, e=engine, u=uas_ports[name]: self._relay_cfg(e, port, u))
                    for name in uas_ports
                }
                self.say(f"relay {engine}: {', '.join(cfgs)}")
                # an OPTIONS probe would be relayed to the UAS, which ignores it
                with self.routers(cfgs, f"relay-{engine}", probe_max_forwards=None) as running:
                    r = running["pykemi"]
                    if isinstance(r, str):
                        status = f"n/a: tm not available ({r})"
                        break
                    probe = throughput.sipp_step(scen, r.port, self.tmp, 5, 1.0, True)
                    if probe.successful != probe.calls:
                        status = (
                            "n/a: tm not available (5 probe calls through pykemi's t_relay: "
                            f"{probe.successful} succeeded; {probe.note})"
                        )
                        break

                    def step(rr: systems.Running, rate: int) -> throughput.Step:
                        return throughput.sipp_step(scen, rr.port, self.tmp, rate, seconds, True)

                    out[engine] = self._ramp(running, rates, step, f"relay {engine}")
            finally:
                for u in uases:
                    u.stop()
        return {"status": status, "engines": out, "seconds": seconds}

    def startup(self) -> dict[str, Any]:
        repeat = 1 if self.args.quick else 2
        engines: dict[str, Any] = {}
        samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for rep in range(repeat):
            for engine in self.args.engines:
                if self.left() < 20:
                    self.notes.append("startup: cut short by the time budget")
                    break
                script = self.stateless_script(engine)
                for name in self.systems_for(engine):  # interleaved
                    port = systems.free_udp_port()
                    label = f"startup-{engine}-{rep}"
                    try:
                        cfg = systems.cfg_text(engine, script, port, 2)
                        with systems.started(name, cfg, self.tmp, port, label=label) as r:
                            with Client() as c:
                                for _ in range(200):
                                    c.request(port, "ping", timeout=2.0)
                            time.sleep(0.2)
                            mem = tree_memory(r.proc.pid, r.children())
                            sample = {"ready_ms": r.ready_s * 1000, **mem}
                    except Exception as exc:  # noqa: BLE001
                        sample = {"error": str(exc).splitlines()[0][:200]}
                    samples.setdefault((engine, name), []).append(sample)
        for (engine, name), runs in samples.items():
            good = [s for s in runs if "error" not in s]
            if not good:
                engines.setdefault(engine, {})[name] = {"error": runs[0].get("error")}
                continue
            agg: dict[str, Any] = {}
            for key in ("ready_ms", "worker_rss_mb", "main_rss_mb", "total_pss_mb", "processes"):
                vals = [s[key] for s in good if s.get(key) is not None]
                agg[key] = round(statistics.median(vals), 1) if vals else None
            agg["runs"] = len(good)
            engines.setdefault(engine, {})[name] = agg
            self.say(f"startup {engine} {name}: {agg}")
        return {"engines": engines, "repeat": repeat, "children": 2}

    def codegen(self) -> dict[str, Any]:
        self.say("codegen: 60 modules x 25 exports, all targets")
        res = codegen_bench.measure()
        self.say(f"codegen: {res['total_s']} s")
        return res

    # -- the run -------------------------------------------------------------------------------

    def machine(self) -> dict[str, Any]:
        commit = report.commit_stamp(ROOT)
        return {
            "cpus": os.cpu_count(),
            "platform": f"{platform.system()} {platform.machine()}",
            "python": platform.python_version(),
            "kamailio": systems.kamailio_version() if self.kamailio else None,
            "kamailio_engines": self.kam_engines,
            "sipp": systems.sipp_version(),
            "commit": commit,
            "load_before": round(os.getloadavg()[0], 2),
        }

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        install = self.args.with_kamailio or (
            os.geteuid() == 0 and not os.environ.get("CI") and not self.args.no_install
        )
        if not self.args.no_kamailio:
            systems.ensure_tools(install, self.notes)
            self.kamailio = shutil.which("kamailio") is not None
            if not self.kamailio:
                self.notes.append("Kamailio not available: its columns are n/a")
        else:
            self.notes.append("--no-kamailio: Kamailio not measured")
        self.kam_engines = systems.kamailio_engines() if self.kamailio else {}
        for note in self.notes:
            self.say(note)
        res: dict[str, Any] = {
            "date": self.args.date or dt.date.today().isoformat(),
            "started": dt.datetime.now().isoformat(timespec="seconds"),
            "machine": self.machine(),
            "args": {k: v for k, v in vars(self.args).items() if k != "out"},
        }
        for section in SECTIONS:
            if section not in self.args.only:
                continue
            if self.left() < 15:
                self.notes.append(f"{section}: skipped by the time budget")
                continue
            try:
                res[section] = getattr(self, section)()
            except Exception as exc:  # noqa: BLE001 - one broken section must not lose the rest
                self.notes.append(f"{section} failed: {exc!r}")
                res[section] = {"error": repr(exc)[:300]}
                traceback.print_exc()
        if res.get("relay", {}).get("status", "ok") != "ok":
            self.notes.append(f"relay: {res['relay']['status']}")
        res["machine"]["load_after"] = round(os.getloadavg()[0], 2)
        res["duration_s"] = round(time.monotonic() - started, 1)
        res["notes"] = self.notes
        return res


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument(
        "--with-kamailio",
        action="store_true",
        help="install Kamailio/sipp from Debian when missing, even if CI is set",
    )
    p.add_argument("--no-install", action="store_true", help="never run apt-get")
    p.add_argument("--no-kamailio", action="store_true", help="measure pykemi only")
    p.add_argument(
        "--engines",
        default=",".join(ALL_ENGINES),
        help="engines for per-call and startup (default: all five)",
    )
    p.add_argument(
        "--throughput-engines",
        default="lua,python",
        help="engines for the sipp throughput runs (default: lua,python)",
    )
    p.add_argument("--only", default=",".join(SECTIONS), help=f"sections: {','.join(SECTIONS)}")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds of traffic per rate step")
    p.add_argument("--budget", type=float, default=720.0, help="seconds for the whole run")
    p.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    p.add_argument("--date", default=None, help="results file name (default: today)")
    p.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = p.parse_args(argv)
    args.engines = [e for e in args.engines.split(",") if e]
    args.throughput_engines = [e for e in args.throughput_engines.split(",") if e]
    args.only = [s for s in args.only.split(",") if s]
    for e in (*args.engines, *args.throughput_engines):
        if e not in ALL_ENGINES:
            p.error(f"unknown engine {e!r} (known: {', '.join(ALL_ENGINES)})")
    for s in args.only:
        if s not in SECTIONS:
            p.error(f"unknown section {s!r} (known: {', '.join(SECTIONS)})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    try:
        res = bench.run()
        files = report.write(res, args.out, docs=not args.no_docs)
    finally:
        shutil.rmtree(bench.tmp, ignore_errors=True)
    print(report.markdown(res, None))
    print("written:", *[str(f.relative_to(ROOT)) if f.is_relative_to(ROOT) else str(f)
                        for f in files], sep="\n  ")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
