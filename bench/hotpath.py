"""The per-message path in-process: µs per OPTIONS through ``Router.handle``, per engine.

No sockets and no sipp: the stateless example script of each engine routes the
same parsed-from-bytes OPTIONS N times (parse, context, route callback, maxfwd,
is_OPTIONS, the 200 reply built and "sent" to a no-op). This is what bounds a
worker's stateless throughput; ``--profile`` prints the top of a cProfile run.

    python -m bench.hotpath [--engines lua,python] [-n 20000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = (
    b"OPTIONS sip:service@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-524287-1---abcdef0123456789;rport\r\n"
    b"From: sipp <sip:sipp@127.0.0.1:5070>;tag=12345SIPpTag001\r\n"
    b"To: <sip:service@127.0.0.1:5060>\r\n"
    b"Call-ID: 1-12345@127.0.0.1\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Contact: <sip:sipp@127.0.0.1:5070>\r\n"
    b"Max-Forwards: 70\r\n"
    b"User-Agent: sipp\r\n"
    b"Content-Length: 0\r\n\r\n"
)
EXT = {"lua": "lua", "python": "py", "jsdt": "js", "ruby": "rb", "sqlang": "nut"}


def router_for(engine: str) -> Any:
    from pykemi.runtime.config import parse_config_text
    from pykemi.runtime.core.log import LOG
    from pykemi.runtime.router import Router

    cfg = ROOT / "examples" / "stateless" / f"kamailio-{engine}.cfg"
    text = cfg.read_text().replace("\ndebug=2", "\ndebug=1")  # as the bench: no log per message
    LOG.stream = io.StringIO()
    return Router(parse_config_text(text, str(cfg)))


def measure(engine: str, n: int, profile: bool = False) -> float:
    """µs per message (best of 3 runs of ``n``)."""
    router = router_for(engine)
    sent: list[bytes] = []

    def send(data: bytes, addr: Any) -> None:
        if len(sent) < 1:
            sent.append(data)

    handle = router.handle
    src, dst = ("127.0.0.1", 5070), ("127.0.0.1", 5060)
    for _ in range(200):  # warm-up
        handle(OPTIONS, src, dst, "udp", send)
    assert sent and sent[0].startswith(b"SIP/2.0 200"), sent[:1]
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(n):
            handle(OPTIONS, src, dst, "udp", send)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(30)
        print(out.getvalue())
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            handle(OPTIONS, src, dst, "udp", send)
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--engines", default="lua,python")
    p.add_argument("-n", type=int, default=20000)
    p.add_argument("--profile", action="store_true")
    args = p.parse_args()
    for engine in args.engines.split(","):
        print(f"{engine}: {measure(engine, args.n, args.profile):.1f} µs per message", flush=True)


if __name__ == "__main__":
    main()
