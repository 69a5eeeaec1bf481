"""Every command shown in README.md and docs/*.md (```sh/shell/console/bash blocks) runs, exactly
as written, from the checkout: each exits 0; a command that serves until stopped (``kemi run``,
``pykemi-kamailio -DD``) is started, must print its ready line, answers an OPTIONS (sipp) and is
stopped with SIGTERM before the next one starts or when its block ends.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib

from pykemi.runtime.launch import READY, wait_ready

from .harness import ROOT, sipp

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?:sh|shell|console|bash)\n(.*?)^```", re.S | re.M)
# the README's two top-level commands (getting-started repeats them) and the install of the
# checkout: CI itself runs them (.ci/, noxfile.py)
EXEMPT = re.compile(
    r"bash scripts/bootstrap\.sh && \.venv/bin/nox -s (demo|tests fuzz)"
    r"|pip install -e '?\.(\[codegen\])?'?"
)
# commands of many minutes (the bench, nox sessions): run with PYKEMI_SLOW=1 (nox -s stress)
SLOW = re.compile(r"^(nox |python -m bench\.)")
# blocks marked so are run by tests/test_scaffold.py, in a fresh venv, as a new user would
SCAFFOLD_MARK = "# test: run"
LONG_TIMEOUT = 900  # kemi build compiles the dispatch extension


@dataclass
class Command:
    page: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"

    @property
    def exempt(self) -> bool:
        return EXEMPT.fullmatch(self.text.split(" #", 1)[0].strip()) is not None


def blocks(page: Path) -> list[list[Command]]:
    """The page's shell blocks run here (not test_scaffold's), each a list of commands
    (continuation lines joined, comment-only lines left out)."""
    text = page.read_text()
    out = []
    for m in FENCE.finditer(text):
        if not m.group(1).lstrip().startswith(SCAFFOLD_MARK):
            first = text.count("\n", 0, m.start(1)) + 1
            out.append(_commands(page.name, first, m.group(1)))
    return out


def _commands(page: str, first: int, body: str) -> list[Command]:
    cmds: list[Command] = []
    parts: list[str] = []
    start = first
    for i, line in enumerate(body.splitlines()):
        if not parts:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = first + i
        parts.append(line.removesuffix("\\"))
        if not line.endswith("\\"):
            cmds.append(Command(page, start, " ".join(parts)))
            parts = []
    return cmds


def serves(cmd: Command) -> bool:
    """The command runs a router in the foreground until it is stopped."""
    words = shlex.split(cmd.text, comments=True)
    if {"-c", "-V", "-h", "--help"} & set(words):
        return False
    if words[:2] == ["kemi", "run"]:
        return True
    return words[:1] == ["pykemi-kamailio"] and bool({"-D", "-DD"} & set(words))


def all_commands() -> list[Command]:
    return [c for page in PAGES for b in blocks(page) for c in b]


def test_every_block_is_run_somewhere() -> None:
    """Blocks are run here, except writing-a-module's, all marked for test_scaffold."""
    for page in PAGES:
        text = page.read_text()
        for m in FENCE.finditer(text):
            marked = m.group(1).lstrip().startswith(SCAFFOLD_MARK)
            assert marked == (page.name == "writing-a-module.md"), (page.name, m.group(1)[:80])
    texts = [c.text for c in all_commands()]
    exempt = [f"{c.page}:{c.line}" for c in all_commands() if c.exempt]
    assert len(exempt) == 6, exempt  # the README's two and its install, getting-started's same
    rpc = "kemi rpc -c examples/stateless/kamailio-lua.cfg -A LISTEN=udp:127.0.0.1:5060"
    assert any(t.startswith(rpc) for t in texts), "the README's RPC example is gone"


def _shims(tmp: Path) -> dict[str, str]:
    """PATH with the console scripts pyproject.toml declares, calling this interpreter (an
    editable install made before a script was declared, or changed, lacks it)."""
    bindir = tmp / "bin"
    bindir.mkdir()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name, target in scripts.items():
        module, func = target.split(":")
        shim = bindir / name
        call = f"import sys; from {module} import {func}; sys.exit({func}())"
        shim.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{call}" "$@"\n')
        shim.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(bindir), str(Path(sys.executable).parent), env["PATH"]])
    return env


@dataclass
class Running:
    cmd: Command
    proc: subprocess.Popen[bytes]
    log: Path


def _start(cmd: Command, env: dict[str, str], log: Path) -> Running:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", "-c", cmd.text], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    running = Running(cmd, proc, log)
    try:
        wait_ready(proc, log, 60)
    except Exception:
        _kill(running)
        raise
    return running


def _kill(r: Running) -> int:
    if r.proc.poll() is None:
        os.killpg(r.proc.pid, signal.SIGTERM)
        try:
            return r.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(r.proc.pid, signal.SIGKILL)
    return r.proc.wait()


def _check_and_stop(r: Running, tmp: Path) -> None:
    """The router answers an OPTIONS on its first UDP address, then stops cleanly."""
    try:
        ready = next(ln for ln in r.log.read_text().splitlines() if READY in ln)
        port = int(re.search(r"udp:127\.0\.0\.1:(\d+)", ready).group(1))  # type: ignore[union-attr]
        res = sipp("options.xml", port, tmp, calls=1, rate=1, timeout=20)
        assert res.successful == 1, f"{r.cmd}: no 200 to OPTIONS\n{res.output}"
    finally:
        rc = _kill(r)
    assert rc == 0, f"{r.cmd}: exit status {rc} after SIGTERM\n{r.log.read_text()[-3000:]}"


def _run_block(cmds: list[Command], env: dict[str, str], tmp: Path) -> None:
    router: Running | None = None
    try:
        for n, cmd in enumerate(cmds):
            if cmd.exempt:
                continue
            if SLOW.match(cmd.text) and os.environ.get("PYKEMI_SLOW") != "1":
                continue
            log = tmp / f"cmd-{cmd.line}-{n}.log"
            if serves(cmd):
                if router is not None:
                    _check_and_stop(router, tmp)
                    router = None
                router = _start(cmd, env, log)
                continue
            with open(log, "wb") as out:  # a file, not a pipe: a started daemon may keep it
                proc = subprocess.run(
                    ["bash", "-c", cmd.text], cwd=ROOT, env=env, stdout=out,
                    stderr=subprocess.STDOUT, timeout=LONG_TIMEOUT,
                )  # fmt: skip
            assert proc.returncode == 0, f"{cmd}: exit status {proc.returncode}\n{log.read_text()}"
        if router is not None:
            _check_and_stop(router, tmp)
            router = None
    finally:
        if router is not None:
            _kill(router)
        _stop_daemons(cmds)


def _stop_daemons(cmds: list[Command]) -> None:
    """A detached router a failed block left running, found by its ``-P FILE``."""
    for cmd in cmds:
        words = shlex.split(cmd.text, comments=True)
        for flag, value in itertools.pairwise(words):
            pid_file = Path(value)
            if flag == "-P" and pid_file.is_file():
                try:
                    os.kill(int(pid_file.read_text()), signal.SIGTERM)
                except (ValueError, OSError):
                    pass


@pytest.mark.parametrize(
    "page",
    [p.name for p in PAGES if p.name != "writing-a-module.md" and FENCE.search(p.read_text())],
)
def test_page_commands(page: str, tmp_path: Path) -> None:
    env = _shims(tmp_path)
    for block in blocks(ROOT / page if page == "README.md" else ROOT / "docs" / page):
        _run_block(block, env, tmp_path)
