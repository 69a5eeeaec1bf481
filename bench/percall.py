"""Per-call overhead of a KSR call from each engine, in ns (empty loop subtracted).

Each engine runs, inside a real route callback on a real parsed message,
N iterations of: an empty loop, and loops calling one KSR function:
  noarg_int  KSR.get_debug()               (Python implementation, no params)
  c_int      KSR.maxfwd.is_maxfwd_lt(70)   (C implementation through the slot table)
  str_int    KSR.pv.seti("$var(x)", 1)     (str, int params)
  xval       KSR.pv.get("$rm")              (xval return)
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path
from typing import Any

CALLS: dict[str, dict[str, str]] = {
    "lua": {
        "empty": "",
        "noarg_int": "KSR.get_debug()",
        "c_int": "KSR.maxfwd.is_maxfwd_lt(70)",
        "str_int": 'KSR.pv.seti("$var(x)", 1)',
        "xval": 'KSR.pv.get("$rm")',
    },
    "python": {
        "empty": "pass",
        "noarg_int": "KSR.get_debug()",
        "c_int": "KSR.maxfwd.is_maxfwd_lt(70)",
        "str_int": 'KSR.pv.seti("$var(x)", 1)',
        "xval": 'KSR.pv.get("$rm")',
    },
    "jsdt": {
        "empty": "",
        "noarg_int": "KSR.get_debug();",
        "c_int": "KSR.maxfwd.is_maxfwd_lt(70);",
        "str_int": 'KSR.pv.seti("$var(x)", 1);',
        "xval": 'KSR.pv.get("$rm");',
    },
    "ruby": {
        "empty": "",
        "noarg_int": "KSR.get_debug()",
        "c_int": "KSR::MAXFWD.is_maxfwd_lt(70)",
        "str_int": 'KSR::PV.seti("$var(x)", 1)',
        "xval": 'KSR::PV.get("$rm")',
    },
    "sqlang": {
        "empty": "",
        "noarg_int": "KSR.get_debug();",
        "c_int": "KSR.maxfwd.is_maxfwd_lt(70);",
        "str_int": 'KSR.pv.seti("$var(x)", 1);',
        "xval": 'KSR.pv.get("$rm");',
    },
}

EXT = {"lua": "lua", "python": "py", "jsdt": "js", "ruby": "rb", "sqlang": "nut"}
MODULE = {"lua": "app_lua", "python": "app_python3", "jsdt": "app_jsdt", "ruby": "app_ruby",
          "sqlang": "app_sqlang"}  # fmt: skip


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
