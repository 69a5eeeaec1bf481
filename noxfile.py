"""Sessions: tests, lint, generate, check, docs, demo, bench (``nox -l`` lists them)."""

from __future__ import annotations

import nox

nox.options.sessions = ["check", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = False if nox.options.default_venv_backend == "none" else None


def _install(session: nox.Session, extras: str = "test") -> None:
    session.install("-e", f".[{extras}]")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (real interpreters, sipp on 127.0.0.1)."""
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
    _install(session, "docs")
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
