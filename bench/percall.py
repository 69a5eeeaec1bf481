"""Per-call overhead of a KSR call from each engine, in ns (empty loop subtracted).

Cases (the same calls in every engine, and in Kamailio's):
  noarg_int  KSR.get_debug()               no parameters, int return (Python impl in pykemi)
  int_arg    KSR.maxfwd.is_maxfwd_lt(70)   one int parameter (C impl through pykemi's slot table)
  str_int    KSR.pv.seti("$var(x)", 1)     (str, int) parameters
  xval       KSR.pv.get("$rm")              xval (string) return

Two ways to measure:

* :func:`measure_remote` -- the one used for the pykemi/Kamailio comparison: one script
  per engine (:func:`remote_script`), run unchanged by both routers. Its
  ``ksr_request_route`` reads the case from the Request-URI user and the loop count from
  an ``X-N`` header, runs the loop and replies 200; the client times the round trip.
  Each case runs at the same N as the empty loop, so (case - empty) / N removes the loop
  and the network round trip alike. KSR calls only work inside a SIP callback in
  Kamailio's Lua and JS engines, hence a request per measurement.
* :func:`measure` -- in-process (pykemi only): the engine's ``run`` called directly on a
  parsed message, no sockets. ``python -m bench.percall`` prints it for every engine.
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path
from typing import Any

from .sipclient import Client

CASES: tuple[str, ...] = ("noarg_int", "int_arg", "str_int", "xval")
CASE_DOC = {
    "noarg_int": "KSR.get_debug()",
    "int_arg": "KSR.maxfwd.is_maxfwd_lt(70)",
    "str_int": 'KSR.pv.seti("$var(x)", 1)',
    "xval": 'KSR.pv.get("$rm")',
}

CALLS: dict[str, dict[str, str]] = {
    "lua": {
        "empty": "",
        "noarg_int": "KSR.get_debug()",
        "int_arg": "KSR.maxfwd.is_maxfwd_lt(70)",
        "str_int": 'KSR.pv.seti("$var(x)", 1)',
        "xval": 'KSR.pv.get("$rm")',
    },
    "python": {
        "empty": "pass",
        "noarg_int": "KSR.get_debug()",
        "int_arg": "KSR.maxfwd.is_maxfwd_lt(70)",
        "str_int": 'KSR.pv.seti("$var(x)", 1)',
        "xval": 'KSR.pv.get("$rm")',
    },
    "jsdt": {
        "empty": "",
        "noarg_int": "KSR.get_debug();",
        "int_arg": "KSR.maxfwd.is_maxfwd_lt(70);",
        "str_int": 'KSR.pv.seti("$var(x)", 1);',
        "xval": 'KSR.pv.get("$rm");',
    },
    "ruby": {
        "empty": "",
        "noarg_int": "KSR.get_debug()",
        "int_arg": "KSR::MAXFWD.is_maxfwd_lt(70)",
        "str_int": 'KSR::PV.seti("$var(x)", 1)',
        "xval": 'KSR::PV.get("$rm")',
    },
    "sqlang": {
        "empty": "",
        "noarg_int": "KSR.get_debug();",
        "int_arg": "KSR.maxfwd.is_maxfwd_lt(70);",
        "str_int": 'KSR.pv.seti("$var(x)", 1);',
        "xval": 'KSR.pv.get("$rm");',
    },
}

EXT = {"lua": "lua", "python": "py", "jsdt": "js", "ruby": "rb", "sqlang": "nut"}
MODULE = {"lua": "app_lua", "python": "app_python3", "jsdt": "app_jsdt", "ruby": "app_ruby",
          "sqlang": "app_sqlang"}  # fmt: skip


# -- the script both routers run ---------------------------------------------------------------


def remote_script(engine: str) -> str:
    """A route script: OPTIONS sip:<case>@... with ``X-N: <n>`` runs case ``n`` times, 200."""
    calls = CALLS[engine]
    if engine == "lua":
        fns = "".join(
            f"B.{k} = function(n) for i = 1, n do {v} end end\n" for k, v in calls.items()
        )
        return (
            "local B = {}\n" + fns + "function ksr_request_route()\n"
            '    local f = B[KSR.pv.get("$rU") or ""]\n'
            '    local n = tonumber(KSR.pv.get("$hdr(X-N)") or "")\n'
            '    if f == nil or n == nil then KSR.sl.send_reply(404, "Unknown case") return end\n'
            '    f(n)\n    KSR.sl.send_reply(200, "OK")\nend\n'
        )
    if engine == "python":
        fns = "".join(
            f"def _b_{k}(n):\n    for _ in range(n):\n        {v}\n\n\n" for k, v in calls.items()
        )
        table = ", ".join(f'"{k}": _b_{k}' for k in calls)
        return (
            "import KSR\n\n\n" + fns + f"B = {{{table}}}\n\n\n"
            "def mod_init():\n    return kamailio()\n\n\n"
            "class kamailio:\n"
            "    def child_init(self, rank):\n        return 0\n\n"
            "    def ksr_request_route(self, msg):\n"
            '        f = B.get(KSR.pv.get("$rU"))\n'
            '        n = KSR.pv.get("$hdr(X-N)")\n'
            "        if f is None or n is None:\n"
            '            KSR.sl.send_reply(404, "Unknown case")\n            return 1\n'
            "        f(int(n))\n"
            '        KSR.sl.send_reply(200, "OK")\n        return 1\n'
        )
    if engine == "jsdt":
        fns = ",\n".join(
            f"  {k}: function(n) {{ for (var i = 0; i < n; i++) {{ {v} }} }}"
            for k, v in calls.items()
        )
        return (
            f"var B = {{\n{fns}\n}};\n"
            "function ksr_request_route() {\n"
            '    var f = B[KSR.pv.get("$rU")];\n'
            '    var n = parseInt(KSR.pv.get("$hdr(X-N)"), 10);\n'
            '    if (!f || isNaN(n)) { KSR.sl.send_reply(404, "Unknown case"); return; }\n'
            '    f(n);\n    KSR.sl.send_reply(200, "OK");\n}\n'
        )
    if engine == "ruby":
        fns = ",\n".join(
            (
                f'  "{k}" => lambda {{ |n| i = 0; while i < n; {v}; i += 1; end }}'
                if v
                else f'  "{k}" => lambda {{ |n| i = 0; while i < n; i += 1; end }}'
            )
            for k, v in calls.items()
        )
        return (
            f"B = {{\n{fns}\n}}\n\n"
            "def ksr_request_route\n"
            '  f = B[KSR::PV.get("$rU")]\n'
            '  n = KSR::PV.get("$hdr(X-N)")\n'
            '  if f.nil? || n.nil?\n    KSR::SL.send_reply(404, "Unknown case")\n    return 1\n'
            "  end\n"
            "  f.call(n.to_i)\n"
            '  KSR::SL.send_reply(200, "OK")\n  1\nend\n'
        )
    fns = ",\n".join(
        f"  {k} = function(n) {{ for (local i = 0; i < n; i++) {{ {v} }} }}"
        for k, v in calls.items()
    )
    return (
        f"B <- {{\n{fns}\n}};\n"
        "function ksr_request_route() {\n"
        '    local c = KSR.pv.get("$rU");\n'
        '    local n = KSR.pv.get("$hdr(X-N)");\n'
        "    if (c == null || n == null || !(c in B)) {\n"
        '        KSR.sl.send_reply(404, "Unknown case");\n        return;\n    }\n'
        "    B[c](n.tointeger());\n"
        '    KSR.sl.send_reply(200, "OK");\n}\n'
    )


class CaseFailed(RuntimeError):
    pass


def timed(client: Client, port: int, case: str, n: int, timeout: float = 60.0) -> float:
    """Seconds for one request running ``case`` ``n`` times (network round trip included)."""
    code, took, _ = client.request(port, case, f"X-N: {n}\r\n", timeout=timeout)
    if code != 200:
        raise CaseFailed(f"{case} x{n}: " + (f"status {code}" if code else "no reply"))
    return took


def calibrate(client: Client, port: int, case: str, target: float) -> int:
    """A loop count that makes ``case`` take about ``target`` seconds."""
    timed(client, port, "empty", 1000)  # warm-up: first-call effects (imports, JIT, GC)
    timed(client, port, case, 1000)
    n = 1000
    while True:
        took = timed(client, port, case, n)
        if took >= target / 10 or n >= 2_000_000:
            return max(1000, min(20_000_000, int(n * target / max(took, 1e-6))))
        n *= 10


def measure_remote(
    client: Client, port: int, case: str, target: float = 0.2, repeat: int = 3
) -> dict[str, float]:
    """ns per call of ``case`` (best of ``repeat``), empty loop at the same N subtracted."""
    n = calibrate(client, port, case, target)
    best_case = best_empty = float("inf")
    for _ in range(repeat):
        best_empty = min(best_empty, timed(client, port, "empty", n))
        best_case = min(best_case, timed(client, port, case, n))
    return {
        "ns": max(0.0, (best_case - best_empty) / n * 1e9),
        "n": n,
        "empty_ns": best_empty / n * 1e9,
    }


# -- in-process (pykemi only) ------------------------------------------------------------------


def script(engine: str, n: int) -> str:
    calls = CALLS[engine]
    if engine == "lua":
        fns = [f"function bench_{k}()\n  for i = 1, {n} do {v} end\nend" for k, v in calls.items()]
        return "function ksr_request_route() end\n" + "\n".join(fns) + "\n"
    if engine == "python":
        fns = [
            f"def bench_{k}(msg):\n    for _ in range({n}):\n        {v}\n"
            for k, v in calls.items()
        ]
        return "import KSR\n\ndef ksr_request_route(msg):\n    pass\n\n" + "\n".join(fns)
    if engine == "jsdt":
        fns = [f"function bench_{k}() {{ for (var i = 0; i < {n}; i++) {{ {v} }} }}"
               for k, v in calls.items()]  # fmt: skip
        return "function ksr_request_route() {}\n" + "\n".join(fns) + "\n"
    if engine == "ruby":
        fns = [f"def bench_{k}\n  i = 0\n  while i < {n}\n    {v}\n    i += 1\n  end\nend"
               for k, v in calls.items()]  # fmt: skip
        return "def ksr_request_route\nend\n" + "\n".join(fns) + "\n"
    fns = [f"function bench_{k}() {{ for (local i = 0; i < {n}; i++) {{ {v} }} }}"
           for k, v in calls.items()]  # fmt: skip
    return "function ksr_request_route() {}\n" + "\n".join(fns) + "\n"


def measure(engine: str, n: int = 200_000, repeat: int = 3) -> dict[str, float] | str:
    """ns per call for each case (best of ``repeat``), or the reason it could not run."""
    from pykemi.runtime.config import parse_config_text
    from pykemi.runtime.core.context import MsgContext
    from pykemi.runtime.core.log import LOG
    from pykemi.runtime.dispatch import StartupError
    from pykemi.runtime.router import Router
    from pykemi.runtime.sip.message import parse_message

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / f"bench.{EXT[engine]}").write_text(script(engine, n))
        cfg_text = (
            "debug=0\nchildren=1\nlisten=udp:127.0.0.1:5060\n"
            'loadmodule "sl.so"\nloadmodule "maxfwd.so"\n'
            f'loadmodule "{MODULE[engine]}.so"\n'
            f'modparam("{MODULE[engine]}", "load", "bench.{EXT[engine]}")\ncfgengine "{engine}"\n'
        )
        LOG.stream = io.StringIO()
        try:
            router = Router(parse_config_text(cfg_text, str(tmp / "bench.cfg")))
        except StartupError as exc:
            return f"not available: {exc}".splitlines()[0][:200]
        msg = parse_message(
            b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
            b"From: <sip:b@x>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\n"
            b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )

        def send(data: bytes, addr: Any) -> None:
            pass

        ctx = MsgContext(msg, ("127.0.0.1", 5070), ("127.0.0.1", 5060), "udp", send, router.proc)
        times: dict[str, float] = {}
        for case in CALLS[engine]:
            best = float("inf")
            for _ in range(repeat):
                t0 = time.perf_counter_ns()
                rc = router.engine.run(f"bench_{case}", ctx)
                took = time.perf_counter_ns() - t0
                if rc < 0:
                    return f"bench_{case} failed: {LOG.stream.getvalue()[-300:]}"
                best = min(best, took / n)
            times[case] = best
        empty = times.pop("empty")
        return {k: max(0.0, v - empty) for k, v in times.items()} | {"empty_loop": empty}


def main() -> None:
    for engine in CALLS:
        print(engine, measure(engine))


if __name__ == "__main__":
    main()
