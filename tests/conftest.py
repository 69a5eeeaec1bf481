"""Suite-wide pytest hooks: under CI a skipped test is a failure (``--fail-on-skip``).

The README promises suites that need tools outside Python (sipp, node + TypeScript, luacheck,
rbs, redis-server, PostgreSQL, Chromium, Duktape ...). Each skips cleanly on a developer's
machine that lacks one, but a CI run that skips them proves nothing: with ``CI`` set (or
``--fail-on-skip``) every skip whose reason is not allowed below fails the run, naming the
reason, so a missing tool is installed (scripts/bootstrap.sh, the nox ``tests`` session)
instead of silently dropping a suite.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator
from typing import Any

import pytest

# Skips a CI run may show: each is run elsewhere, by a command the README gives.
ALLOWED_SKIPS: dict[str, str] = {
    # the long variants (hostile traffic, lossy paths, fuzzing): `nox -s stress`, `nox -s soak`
    # and the bench run them with PYKEMI_SLOW=1; the CI selection runs their short variants
    r"long test: set PYKEMI_SLOW=1": "run by nox -s stress (PYKEMI_SLOW=1)",
}
_ALLOWED = re.compile("|".join(f"(?:{p})" for p in ALLOWED_SKIPS))
_FALSE = ("", "0", "false", "no", "off")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fail-on-skip",
        action="store_true",
        default=os.environ.get("CI", "").strip().lower() not in _FALSE,
        help="a skipped test fails unless tests/conftest.py ALLOWED_SKIPS lists its reason "
        "(default: on when the CI environment variable is set)",
    )


def skip_reason(longrepr: Any) -> str:
    """The reason of a skip report: pytest stores (path, line, 'Skipped: <reason>')."""
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return str(text).removeprefix("Skipped: ")


def _forbidden(report: pytest.CollectReport | pytest.TestReport) -> str | None:
    """Why a skip report must fail this run, or None when it may stand."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return None
    reason = skip_reason(report.longrepr)
    if _ALLOWED.search(reason):
        return None
    return (
        f"skipped under --fail-on-skip (CI): {reason}\n"
        "a suite the README promises did not run: install what it needs "
        "(scripts/bootstrap.sh, the nox tests session) or, if it is run by another "
        "session, list its reason in tests/conftest.py ALLOWED_SKIPS"
    )


def _fail(report: pytest.CollectReport | pytest.TestReport, why: str) -> None:
    report.outcome = "failed"
    report.longrepr = why


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if item.config.getoption("--fail-on-skip") and (why := _forbidden(report)):
        _fail(report, why)


_SKIPPED_MODULES = pytest.StashKey[list[str]]()


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    """Module-level skips (``allow_module_level``, ``importorskip`` at import) are kept and
    fail the run at its end: a collection error would stop the other tests."""
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()
    if collector.config.getoption("--fail-on-skip") and (why := _forbidden(report)):
        collector.config.stash.setdefault(_SKIPPED_MODULES, []).append(f"{report.nodeid}: {why}")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for line in config.stash.get(_SKIPPED_MODULES, []):
        terminalreporter.write_line(f"FAILED (module) {line}", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.stash.get(_SKIPPED_MODULES, []) and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
