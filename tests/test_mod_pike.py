"""KSR.pike: flood detection per source IP, shared by forked workers."""

from __future__ import annotations

import os
import time

import pytest

from pykemi.runtime.config.modparams import spec_defaults
from pykemi.runtime.core.context import ProcessState
from pykemi.runtime.modules import pike

from .modhelpers import make_ctx, request


def new_proc(**params: int) -> ProcessState:
    proc = ProcessState()
    proc.extra["modparams.pike"] = dict(spec_defaults("pike"), **params)
    pike.setup(proc)
    return proc


def test_blocks_above_density_then_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_700_000_000.0]  # start of a sampling unit
    monkeypatch.setattr(time, "time", lambda: now[0])
    proc = new_proc(sampling_time_unit=2, reqs_density_per_unit=5, remove_latency=4)
    ctx, _ = make_ctx(request("INVITE"), proc=proc, src=("192.0.2.50", 5060))
    assert [pike.pike_check_req(ctx) for _ in range(5)] == [1] * 5
    assert pike.pike_check_req(ctx) == -2  # first detection
    assert pike.pike_check_req(ctx) == -1  # still flooding
    other, _ = make_ctx(request("INVITE"), proc=proc, src=("192.0.2.51", 5060))
    assert pike.pike_check_req(other) == 1  # per IP
    now[0] += 10  # quiet for a while: forgotten
    assert pike.pike_check_req(ctx) == 1
    assert pike.pike_check_ip(ctx, "198.51.100.1") == 1
    assert pike.pike_check_ip(ctx, "") == 1


def test_sliding_window_spans_units(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_700_000_001.5]  # late in a unit
    monkeypatch.setattr(time, "time", lambda: now[0])
    proc = new_proc(sampling_time_unit=2, reqs_density_per_unit=4)
    for _ in range(4):
        assert pike.check(proc, "192.0.2.9") == 1
    now[0] += 0.6  # early in the next unit: most of the previous one still counts
    assert pike.check(proc, "192.0.2.9") == -2


def test_counters_shared_with_forked_workers() -> None:
    proc = new_proc(sampling_time_unit=60, reqs_density_per_unit=3)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            code = 0 if [pike.check(proc, "192.0.2.7") for _ in range(3)] == [1, 1, 1] else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert pike.check(proc, "192.0.2.7") == -2
