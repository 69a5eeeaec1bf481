"""Results -> bench/results/<date>.json, .md, .png, and docs/benchmarks.md."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .percall import CASE_DOC, CASES

ROOT = Path(__file__).resolve().parent.parent
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
DOCS_CHART = ROOT / "docs" / "benchmarks.png"

REPRODUCE = """\
```sh
# everything, Kamailio 5.6 installed from Debian when missing (root, CI unset); ~10 minutes
nox -s bench
# options: --no-kamailio, --no-install, --engines lua,python, --quick, --only percall,stateless
nox -s bench -- --help
# a single part, without nox (from the checkout, after `pip install -e .`)
python -m bench.run --only percall
python -m bench.percall          # in-process ns per call, pykemi only, every engine
python -m bench.codegen_bench    # codegen on the synthetic 1,500-export spec set
python -m bench.hotpath --profile  # µs per message through Router.handle, with a profile
python -m bench.report bench/results/DATE.json  # re-render .md, .png and this page
```"""


def commit_stamp(root: Path = ROOT) -> str:
    """The commit a run measures: HEAD's short hash, ``-dirty`` when tracked files differ from
    it (such figures come from no commit), ``?`` outside a git checkout."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, cwd=root
        )
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=root,
        )
    except OSError:
        return "?"
    if head.returncode != 0 or not head.stdout.strip():
        return "?"
    return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def _reproduce(res: dict[str, Any]) -> str:
    return REPRODUCE.replace("DATE", str(res["date"]))


def _num(v: float | int | None, digits: int = 0) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and digits == 0 and abs(v) < 10:
        return f"{v:.1f}"
    return f"{v:,.{digits}f}"


def ratio(p: float | int | None, k: float | int | None) -> float | None:
    if p is None or k is None or not k:
        return None
    return float(p) / float(k)


def _ratio(p: float | int | None, k: float | int | None) -> str:
    r = ratio(p, k)
    if r is None:
        return "n/a"
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def _rate(entry: dict[str, Any] | None) -> int | None:
    if not entry or entry.get("rate") is None:
        return None
    return int(entry["rate"])


def _rate_ratio(p: dict[str, Any] | None, k: dict[str, Any] | None) -> str:
    """pykemi / Kamailio for rates; a side that never failed is a lower bound."""
    text = _ratio(_rate(p), _rate(k))
    if text == "n/a" or not _rate(p):
        return text
    pc, kc = bool((p or {}).get("ceiling")), bool((k or {}).get("ceiling"))
    if pc and kc:
        return "n/a (both at the top rate)"
    return (">= " if pc else "<= " if kc else "") + text


def _rate_text(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "n/a"
    if entry.get("error"):
        return f"n/a ({entry['error'][:60]})"
    rate = entry.get("rate")
    if rate is None:
        return "n/a"
    if rate == 0:
        return f"< {entry.get('first_rate', '?')}"
    text = f"{rate:,}"
    if entry.get("ceiling"):
        text = f">= {text}"
    return text


def markdown(res: dict[str, Any], chart: str | None) -> str:
    """The results as Markdown tables (each pykemi number next to Kamailio's, and the ratio)."""
    kam = res["machine"].get("kamailio") or "not available"
    out: list[str] = []
    m = res["machine"]
    out.append(
        f"Run of {res['date']} on {m['cpus']} cores ({m['platform']}), Python {m['python']}, "
        f"Kamailio {kam}, sipp {m.get('sipp') or 'n/a'}, pykemi {m.get('commit', '?')}; "
        f"load average {m.get('load_before', '?')} before, {m.get('load_after', '?')} after "
        f"(other jobs share the machine: compare the ratios, measured interleaved in one run). "
        f"The run took {res.get('duration_s', 0):.0f} s."
    )
    out.append("")
    if chart:
        out.append(f"![pykemi and Kamailio side by side]({chart})")
        out.append("")

    sections = [s for s in ("percall", "stateless", "relay", "startup", "codegen") if s in res]
    for section in sections:
        out.extend(_SECTIONS[section](res, kam))
        out.append("")
    notes = res.get("notes", [])
    if notes:
        out.append("### Notes")
        out.append("")
        out.extend(f"- {n}" for n in notes)
        out.append("")
    return "\n".join(out)


def _percall(res: dict[str, Any], kam: str) -> list[str]:
    out: list[str] = []
    pc = res.get("percall", {})
    out.append("### Per-call overhead")
    out.append("")
    out.append(
        "ns per `KSR` call, empty loop subtracted (lower is better); the same script in both "
        "routers, run in `ksr_request_route` on one OPTIONS per measurement. Ratio = pykemi "
        "/ Kamailio (how many times slower pykemi is)."
    )
    out.append("")
    out.append(f"| engine | call | pykemi ns | Kamailio {kam} ns | ratio |")
    out.append("|---|---|---:|---:|---:|")
    for engine, cases in pc.get("engines", {}).items():
        for case in CASES:
            c = cases.get(case, {})
            p, k = c.get("pykemi"), c.get("kamailio")
            out.append(
                f"| {engine} | `{CASE_DOC[case]}` | {_num(p)} | {_num(k)} | {_ratio(p, k)} |"
            )
    for engine, err in pc.get("errors", {}).items():
        out.append(f"| {engine} | | {err[:80]} | | |")
    return out


def _stateless(res: dict[str, Any], kam: str) -> list[str]:
    out: list[str] = []
    st = res.get("stateless", {})
    out.append("### Stateless throughput")
    out.append("")
    out.append(
        f"OPTIONS -> 200 (`examples/stateless` scripts), `children={st.get('children', 2)}`, "
        f"sipp on the same machine; highest rate with 0 failed calls and 0 retransmissions "
        f"over {st.get('seconds', 2):g} s steps (requests/s, higher is better). Ratio = pykemi / "
        "Kamailio."
    )
    out.append("")
    out.append(f"| engine | pykemi req/s | Kamailio {kam} req/s | ratio |")
    out.append("|---|---:|---:|---:|")
    for engine, e in st.get("engines", {}).items():
        p, k = e.get("pykemi"), e.get("kamailio")
        out.append(f"| {engine} | {_rate_text(p)} | {_rate_text(k)} | {_rate_ratio(p, k)} |")
    native = st.get("native")
    if native:
        out.append(
            f"| native cfg (`sl_send_reply`, no KEMI) | | {_rate_text(native)} | "
            "sipp/machine reference |"
        )
    return out


def _relay(res: dict[str, Any], kam: str) -> list[str]:
    out: list[str] = []
    rl = res.get("relay", {})
    out.append("### Relay throughput")
    out.append("")
    if rl.get("status") != "ok":
        out.append(f"{rl.get('status', 'n/a: not run')}")
    else:
        out.append(
            "sipp UAC -> router (`examples/relay`, tm `t_relay`) -> sipp UAS; INVITE/200/ACK/"
            f"BYE/200 calls, highest call rate with 0 failed calls over {rl.get('seconds', 2):g} "
            "s steps (calls/s, higher is better)."
        )
        out.append("")
        out.append(f"| engine | pykemi calls/s | Kamailio {kam} calls/s | ratio |")
        out.append("|---|---:|---:|---:|")
        for engine, e in rl.get("engines", {}).items():
            p, k = e.get("pykemi"), e.get("kamailio")
            out.append(f"| {engine} | {_rate_text(p)} | {_rate_text(k)} | {_rate_ratio(p, k)} |")
    return out


def _startup(res: dict[str, Any], kam: str) -> list[str]:
    out: list[str] = []
    su = res.get("startup", {})
    out.append("### Startup and memory")
    out.append("")
    out.append(
        "Time from process start to the first answered OPTIONS (median of "
        f"{su.get('repeat', 1)}); RSS per worker = median VmRSS of the main process's children "
        "(Kamailio's include its timer and other helper processes, and the shared memory pages "
        "they touched); total PSS = the whole process tree, shared pages divided among sharers. "
        f"`children={su.get('children', 2)}`."
    )
    out.append("")
    out.append(f"| engine | metric | pykemi | Kamailio {kam} | ratio |")
    out.append("|---|---|---:|---:|---:|")
    for engine, e in su.get("engines", {}).items():
        p, k = e.get("pykemi") or {}, e.get("kamailio") or {}
        for key, label, digits in (
            ("ready_ms", "time to ready, ms", 0),
            ("worker_rss_mb", "RSS per worker, MB", 1),
            ("total_pss_mb", "total PSS, MB", 1),
            ("processes", "processes", 0),
        ):
            pv, kv = p.get(key), k.get(key)
            if key == "processes":  # a median of counts: whole processes
                pv, kv = (int(v) if v is not None else None for v in (pv, kv))
            out.append(
                f"| {engine} | {label} | {_num(pv, digits)} | {_num(kv, digits)} | "
                f"{_ratio(pv, kv)} |"
            )
    return out


def _codegen(res: dict[str, Any], kam: str) -> list[str]:
    out: list[str] = []
    cg = res.get("codegen", {})
    out.append("### Codegen")
    out.append("")
    if cg.get("error"):
        out.append(f"n/a: {cg['error']}")
    elif cg:
        per = ", ".join(f"{k} {v:.2f}" for k, v in cg.get("render_per_target_s", {}).items())
        out.append(
            f"`kemi generate` (load + render_all + write) on a synthetic spec set of "
            f"{cg['exports']:,} exports in {cg['modules']} modules, all targets, into a tmp dir: "
            f"**{cg['total_s']:.1f} s** (load {cg['load_s']:.2f} s, render "
            f"{cg['render_s']:.2f} s, write {cg['write_s']:.2f} s; {cg['files_written']} files). "
            f"No Kamailio equivalent. Per target, s: {per}."
        )
    return out


_SECTIONS = {
    "percall": _percall,
    "stateless": _stateless,
    "relay": _relay,
    "startup": _startup,
    "codegen": _codegen,
}


def chart(res: dict[str, Any], path: Path) -> bool:
    """A 2x2 PNG: per-call ns (log), stateless req/s, relay calls/s, startup ms + RSS."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    colors = {"pykemi": "#3f51b5", "kamailio": "#e0a030"}
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))

    def bars(ax: Any, labels: list[str], series: dict[str, list[float | None]]) -> None:
        width = 0.38
        for i, (name, values) in enumerate(series.items()):
            xs = [x + (i - 0.5) * width for x in range(len(labels))]
            ax.bar(xs, [v or 0 for v in values], width, label=name, color=colors[name])
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)

    pc = res.get("percall", {}).get("engines", {})
    labels, p, k = [], [], []
    for engine, cases in pc.items():
        for case in CASES:
            c = cases.get(case, {})
            labels.append(f"{engine} {case}")
            p.append(c.get("pykemi"))
            k.append(c.get("kamailio"))
    ax = axes[0][0]
    bars(ax, labels, {"pykemi": p, "kamailio": k})
    ax.set_yscale("log")
    ax.set_title("ns per KSR call (log, lower is better)", fontsize=10)

    for ax, key, title in (
        (axes[0][1], "stateless", "stateless OPTIONS, req/s (higher is better)"),
        (axes[1][0], "relay", "relay (tm), calls/s (higher is better)"),
    ):
        sec = res.get(key, {})
        engines = sec.get("engines", {})
        if not engines or (key == "relay" and sec.get("status") != "ok"):
            ax.text(0.5, 0.5, sec.get("status", "n/a"), ha="center", va="center", wrap=True)
            ax.set_axis_off()
            continue
        names = list(engines)
        bars(
            ax,
            names,
            {
                "pykemi": [_rate(engines[n].get("pykemi")) for n in names],
                "kamailio": [_rate(engines[n].get("kamailio")) for n in names],
            },
        )
        ax.set_title(title, fontsize=10)

    ax = axes[1][1]
    su = res.get("startup", {}).get("engines", {})
    names = list(su)
    labels = [f"{n} ready ms" for n in names] + [f"{n} RSS/worker MB" for n in names]
    series: dict[str, list[float | None]] = {}
    for who in ("pykemi", "kamailio"):
        vals: list[float | None] = [(su[n].get(who) or {}).get("ready_ms") for n in names]
        vals += [(su[n].get(who) or {}).get("worker_rss_mb") for n in names]
        series[who] = vals
    bars(ax, labels, series)
    ax.set_yscale("log")
    ax.set_title("startup (ms) and memory (MB), log, lower is better", fontsize=10)
    fig.suptitle(
        f"pykemi vs Kamailio {res['machine'].get('kamailio') or '(not available)'} - "
        f"{res['date']}, {res['machine']['cpus']} cores, shared machine",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write(res: dict[str, Any], out_dir: Path, docs: bool = True) -> list[Path]:
    """Write the JSON, Markdown and PNG results (and the docs page); returns the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = res["date"]
    written = []
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(res, indent=2, sort_keys=False) + "\n")
    written.append(json_path)
    png = out_dir / f"{stem}.png"
    have_chart = chart(res, png)
    if have_chart:
        written.append(png)
    md_path = out_dir / f"{stem}.md"
    md_path.write_text(
        f"# Benchmarks {stem}\n\n"
        + markdown(res, png.name if have_chart else None)
        + "\n## Reproduce\n\n"
        + _reproduce(res)
        + "\n"
    )
    written.append(md_path)
    if docs:
        if have_chart:
            shutil.copyfile(png, DOCS_CHART)
            written.append(DOCS_CHART)
        DOCS_PAGE.write_text(docs_page(res, DOCS_CHART.name if have_chart else None))
        written.append(DOCS_PAGE)
    return written


def docs_page(res: dict[str, Any], chart_name: str | None) -> str:
    return f"""# Benchmarks

pykemi measured against Kamailio {res['machine'].get('kamailio') or '5.6'} (Debian's
packages) on the same machine, in the same run, with the same configs and scripts:
the cost of one `KSR` call from each engine, stateless and relayed throughput
driven by sipp, startup time and memory, and codegen time. Everything runs on
127.0.0.1 and every measurement is bounded in time and count. The results below
are those of `bench/results/{res['date']}.json` (also `.md` and `.png` there),
measured at commit `{res['machine'].get('commit', '?')}`: they describe that commit's code,
not later ones; `nox -s bench` measures the checked-out commit and rewrites this page.

## How it is measured

- **Per call**: one script per engine (`bench/percall.py`, `remote_script`) runs unchanged
  in both routers. Its `ksr_request_route` reads a case from the Request-URI user and a
  loop count N from an `X-N` header, calls the `KSR` function N times and replies 200.
  The client times each request; the empty loop at the same N is subtracted, which also
  removes the network round trip. N is calibrated to about 0.2 s per request; best of 3.
  (Kamailio's Lua and JS engines refuse `KSR` calls outside a SIP callback, hence one
  request per measurement.)
- **Stateless throughput**: `tests/sipp/options.xml` against the `examples/stateless`
  script of each engine (the Python one with `return 1` for `KSR.x.exit()`, which
  Kamailio 5.6's app_python3 lacks), `children=2` in both routers, 2 s steps at increasing rates;
  the result is the highest rate with every call answered, none failed, no retransmission,
  and sipp keeping up. A failed step is tried twice more (the machine is shared). pykemi
  and Kamailio steps alternate at each rate. The "native cfg" row is Kamailio without
  KEMI: the ceiling that sipp and this machine allow.
- **Relay**: `examples/relay` (tm `t_relay` to a sipp UAS), same stepping, 0 failed calls
  (the Python script with a `ksr_onsend_route` method, without which Kamailio 5.6's
  app_python3 fails `t_relay`). Kamailio runs with `-m 256 -M 16` (MB of shared and
  per-process memory): with Debian's default 64 MB its transactions exhaust shared memory
  during the ramp.
- **Startup**: from process start to the first answered OPTIONS; memory from
  `/proc/<pid>/status` (VmRSS) and `/proc/<pid>/smaps_rollup` (Pss) after 200 requests.
- **Codegen**: `bench/codegen_bench.py` writes 60 module specs x 25 exports (realistic
  names, docs, examples, mixed signatures) and times load, every target's rendering and
  writing, as `kemi generate` does.

## Reproduce

{_reproduce(res)}

Kamailio is installed with `apt-get install kamailio kamailio-lua-modules
kamailio-python3-modules kamailio-ruby-modules sip-tester` when the bench runs as root
and `CI` is not set (or with `--with-kamailio`); without it the pykemi numbers are still
measured and the Kamailio columns say n/a.

## Where pykemi's time goes

`python -m bench.hotpath --profile` routes the same OPTIONS through `Router.handle`
in-process (no sockets) and prints a profile: a stateless 200 is roughly one third
building the reply (`sip/reply.py`: the To tag digest re-parses From and the top Via,
then the reply is assembled header by header), one fifth parsing, and the rest the
engine (the interpreter, its calls into Python, the invokers). A `KSR` call into a C
export that reads the message (`KSR.maxfwd.*`) costs a C-to-Python host callback per
header access, hence the `is_maxfwd_lt` row.

## Results

<!-- bench:results:start -->
{markdown(res, chart_name)}
<!-- bench:results:end -->
"""


def main(argv: list[str] | None = None) -> int:
    """Re-render the Markdown, chart and docs page from a results JSON."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.report", description=main.__doc__)
    p.add_argument("json", type=Path)
    p.add_argument("--no-docs", action="store_true")
    args = p.parse_args(argv)
    res = json.loads(args.json.read_text())
    for f in write(res, args.json.parent, docs=not args.no_docs):
        print(f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
