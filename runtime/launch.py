"""Start ``kemi run`` as a child process, wait for its ready line, stop it.

The server prints :data:`READY` on stderr once every worker is forked; tests,
benchmarks and the demo start routers through these helpers so that the contract
lives in one place.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

READY = "pykemi: ready"


class RouterStartError(RuntimeError):
    """The router exited or did not print its ready line in time (the log is in the text)."""


def kemi_run_args(
    cfg: Path, defines: Mapping[str, str] | None = None, python: str | Path | None = None
) -> list[str]:
    args = [str(python or sys.executable), "-m", "pykemi.runtime.cli", "run", str(cfg)]
    for name, value in (defines or {}).items():
        args += ["-A", f"{name}={value}"]
    return args


def wait_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while READY not in log.read_text(errors="replace"):
        if proc.poll() is not None:
            raise RouterStartError(f"router exited with {proc.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise RouterStartError(f"router not ready after {timeout:g}s:\n{log.read_text()}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM (the main process stops its workers), SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running(
    cfg: Path,
    log: Path,
    defines: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    python: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """``kemi run cfg`` (cwd: the config's folder, output to ``log``) until the block ends."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            kemi_run_args(cfg, defines, python),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cfg.parent,
            env=dict(env) if env is not None else None,
        )
    try:
        wait_ready(proc, log, timeout)
        yield proc
    finally:
        stop(proc)
