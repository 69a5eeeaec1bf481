"""Sessions: tests, lint, generate, check, docs, demo, bench, fuzz, stress, soak, dist (nox -l)."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["check", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = False if nox.options.default_venv_backend == "none" else None


def _install(session: nox.Session, extras: str = "test") -> None:
    session.install("-e", f".[{extras}]")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (real interpreters, sipp on 127.0.0.1). With CI set, a test skipped for
    a missing tool fails the run (tests/conftest.py, --fail-on-skip): scripts/bootstrap.sh and
    the [test] extra install what every suite needs."""
    _install(session, "test")
    session.run("kemi", "generate", "--check", "--quiet")
    session.run("pytest", "-q", "-ra", "--durations=15", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, black --check, mypy on codegen and runtime."""
    _install(session, "test,lint")
    session.run("ruff", "check", ".")
    session.run("black", "--check", ".")
    session.run("python", "scripts/typecheck.py")


@nox.session
def generate(session: nox.Session) -> None:
    """Regenerate generated/ from spec/*.yaml and rebuild the C dispatch extension."""
    _install(session, "test")
    session.run("kemi", "generate")
    session.run("kemi", "build")


@nox.session
def check(session: nox.Session) -> None:
    """Fail (with a diff) when generated/ does not match the specs."""
    _install(session, "test")
    session.run("kemi", "generate", "--check")


@nox.session
def docs(session: nox.Session) -> None:
    """The docs site (mkdocs + Material) from docs/ and generated/docs/, into site/."""
    _install(session, "docs,codegen")  # kemi generate needs the generator's extra
    session.run("kemi", "generate", "--check", "--quiet")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: a router on 127.0.0.1 running an example config, driven by sipp."""
    _install(session, "test")
    session.run("python", "scripts/demo.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: pykemi and Kamailio 5.6 side by side (installs Kamailio and sipp from Debian
    when missing, as root with CI unset); writes bench/results/ and docs/benchmarks.md."""
    _install(session, "test")
    session.install("matplotlib")
    session.run("python", "-m", "bench.run", *session.posargs)


@nox.session
def fuzz(session: nox.Session) -> None:
    """Coverage-guided fuzzing of the SIP parser (atheris), bounded: ``-- SECONDS`` (default 60;
    10 when CI is set). New inputs go to build/fuzz/corpus, crashes to build/fuzz/crash-*; an
    input whose parse takes longer than tests/fuzz/fuzz_sip.py PARSE_BUDGET is a crash too."""
    _install(session, "test")
    session.install("atheris")
    seconds = session.posargs[0] if session.posargs else ("10" if "CI" in os.environ else "60")
    os.makedirs("build/fuzz/corpus", exist_ok=True)
    session.run("pytest", "-q", "tests/fuzz")  # replay the seed corpus and saved crashes first
    session.run(
        "python", "tests/fuzz/fuzz_sip.py", "build/fuzz/corpus", "tests/fuzz/corpus",
        "-dict=tests/fuzz/sip.dict", f"-max_total_time={seconds}", "-timeout=5",
        "-rss_limit_mb=2048", "-artifact_prefix=build/fuzz/", "-print_final_stats=1",
    )  # fmt: skip


@nox.session
def stress(session: nox.Session) -> None:
    """Hostile traffic, script faults, lossy paths, control surface (docs/reliability.md);
    the long variants too unless ``-- short`` (the CI mode: the default pytest selection)."""
    _install(session, "test")
    short = "short" in session.posargs
    files = [
        "tests/test_hostile.py", "tests/test_script_faults.py", "tests/test_lossy.py",
        "tests/test_control_surface.py",
    ]  # fmt: skip
    env = {} if short else {"PYKEMI_SLOW": "1"}
    args = [a for a in session.posargs if a != "short"]
    session.run("pytest", "-q", "-ra", "--durations=10", *files, *args, env=env)


@nox.session
def soak(session: nox.Session) -> None:
    """30 minutes of stateless load at half the measured maximum rate, RSS/fd sampling and a
    trend check (bench/soak.py); e.g. ``-- --minutes 5 --rate 1000``."""
    _install(session, "test")
    session.run("python", "-m", "bench.soak", *session.posargs)


@nox.session
def dist(session: nox.Session) -> None:
    """The sdist and the wheel into dist/ (``python -m build``: the wheel is built from the
    sdist), then tests/test_wheel.py: the wheel in a fresh venv runs every engine."""
    _install(session, "test")
    session.run("python", "-m", "build", "--outdir", "dist", ".")
    session.run("pytest", "-q", "-ra", "-m", "wheel", "tests/test_wheel.py", *session.posargs)
