"""The main job: start `kemi run` with the example configs and send it real SIP traffic.

For each engine (Lua, Python): start the router on 127.0.0.1, send OPTIONS
with sipp (answered 200 by the script), OPTIONS with Max-Forwards 0 (483),
and print what happened, with a sample of the router's log.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import ROOT, SIPP, router, sipp


def main() -> int:
    if SIPP is None:
        print("sipp is not installed: apt-get install sip-tester", file=sys.stderr)
        return 1
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    failed = 0
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for engine in ("lua", "python"):
            cfg = ROOT / "examples" / "stateless" / f"kamailio-{engine}.cfg"
            print(f"\n=== {cfg.relative_to(ROOT)} (cfgengine {engine}) ===")
            with router(cfg, tmp) as r:
                print(f"router ready on udp:127.0.0.1:{r.port}")
                started = time.perf_counter()
                ok = sipp("options.xml", r.port, tmp, calls=calls, rate=1000)
                took = time.perf_counter() - started
                print(
                    f"OPTIONS x{calls}: {ok.successful} answered 200 OK, {ok.failed} failed "
                    f"({took:.1f}s with sipp at 1000/s)"
                )
                hops = sipp("options_maxfwd0.xml", r.port, tmp, calls=5, rate=50)
                print(
                    f"OPTIONS with Max-Forwards: 0: {hops.successful}/5 answered 483 Too Many Hops"
                )
                failed += ok.failed + hops.failed + (calls - ok.successful) + (5 - hops.successful)
                lines = [ln for ln in r.log.splitlines() if "INFO" in ln or "NOTICE" in ln]
                print("router log (first lines):")
                for line in lines[:6]:
                    print("   " + line)
                print(f"   ... {r.count('===== request OPTIONS')} requests logged by the script")
    print("\ndemo: " + ("all requests answered" if failed == 0 else f"{failed} failures"))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
