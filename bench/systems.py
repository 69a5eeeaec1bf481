"""The two routers under test, started the same way from a cfg text in a tmp dir.

* pykemi: ``python -m pykemi.runtime.cli run CFG`` (the ``kemi run`` entry point);
* Kamailio: ``kamailio -f CFG -DD -E -P PIDFILE -w TMP -Y TMP`` (foreground, logs to stderr).

Both listen on 127.0.0.1 only; :func:`started` stops the router (and its children)
when the block ends, whatever happens inside it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .sipclient import wait_ready

ROOT = Path(__file__).resolve().parent.parent
KAMAILIO_PACKAGES = (
    "kamailio",
    "kamailio-lua-modules",
    "kamailio-python3-modules",
    "kamailio-ruby-modules",
)
SIPP_PACKAGE = "sip-tester"
KAMAILIO_SHM_MB = 256
KAMAILIO_PKG_MB = 16
# cfgengine -> (pykemi/Kamailio module, script extension)
ENGINES: dict[str, tuple[str, str]] = {
    "lua": ("app_lua", "lua"),
    "python": ("app_python3", "py"),
    "jsdt": ("app_jsdt", "js"),
    "ruby": ("app_ruby", "rb"),
    "sqlang": ("app_sqlang", "nut"),
}
KAMAILIO_MODULE_DIRS = (
    Path("/usr/lib/x86_64-linux-gnu/kamailio/modules"),
    Path("/usr/lib/aarch64-linux-gnu/kamailio/modules"),
    Path("/usr/lib/kamailio/modules"),
)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- installation ------------------------------------------------------------------------------


def _apt_install(packages: list[str], log: list[str]) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    for attempt in range(2):
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.append(f"apt-get install failed: {exc}")
            return False
        if run.returncode == 0:
            log.append(f"installed from Debian: {' '.join(packages)}")
            return True
        if attempt == 0:  # stale package lists: update once and retry
            subprocess.run(["apt-get", "update"], capture_output=True, timeout=600, env=env)
    log.append(f"apt-get install {' '.join(packages)} failed: {run.stderr.strip()[-300:]}")
    return False


def ensure_tools(install: bool, log: list[str]) -> None:
    """Install Kamailio 5.6 and sipp from Debian when ``install`` and they are missing."""
    missing: list[str] = []
    if shutil.which("kamailio") is None:
        missing += KAMAILIO_PACKAGES
    else:
        mods = kamailio_module_dir()
        for pkg, mod in (
            ("kamailio-lua-modules", "app_lua.so"),
            ("kamailio-python3-modules", "app_python3.so"),
            ("kamailio-ruby-modules", "app_ruby.so"),
        ):
            if mods is None or not (mods / mod).exists():
                missing.append(pkg)
    if shutil.which("sipp") is None:
        missing.append(SIPP_PACKAGE)
    if not missing:
        return
    if not install:
        log.append(
            f"not installing {' '.join(missing)} (not root, CI set, or --no-install); "
            "the measurements that need them are skipped"
        )
        return
    _apt_install(missing, log)


def kamailio_module_dir() -> Path | None:
    return next((d for d in KAMAILIO_MODULE_DIRS if d.is_dir()), None)


def kamailio_version() -> str | None:
    exe = shutil.which("kamailio")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = out.splitlines()[0].split() if out else []  # "version: kamailio 5.6.3 (x86_64/linux)"
    return first[2] if len(first) > 2 else None


def kamailio_engines() -> dict[str, bool]:
    """Which KEMI engine modules this Kamailio install has."""
    mods = kamailio_module_dir()
    return {e: bool(mods and (mods / f"{m}.so").exists()) for e, (m, _) in ENGINES.items()}


def sipp_version() -> str | None:
    exe = shutil.which("sipp")
    if exe is None:
        return None
    try:
        run = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in (run.stdout + run.stderr).splitlines():
        if "SIPp v" in line:
            return line.strip().split(" ", 2)[1].rstrip(",.")
    return None


# -- configs -----------------------------------------------------------------------------------


def cfg_text(
    engine: str,
    script: Path,
    port: int,
    children: int,
    modules: tuple[str, ...] = ("sl", "pv", "maxfwd", "xlog", "kemix"),
    debug: int = 1,
) -> str:
    """One cfg both routers read: same globals, same modules, the same script file.

    ``debug=1`` (notice): the scripts' ``KSR.info`` calls still run, but no log line is
    written per message by either router.
    """
    module, _ = ENGINES[engine]
    loads = "".join(f'loadmodule "{m}.so"\n' for m in (*modules, module))
    return (
        "#!KAMAILIO\n"
        f"debug={debug}\nlog_stderror=yes\nfork=yes\nchildren={children}\n"
        f"auto_aliases=no\nlisten=udp:127.0.0.1:{port}\n\n{loads}\n"
        f'modparam("{module}", "load", "{script}")\n\ncfgengine "{engine}"\n'
    )


# -- running -----------------------------------------------------------------------------------


@dataclass
class Running:
    name: str  # "pykemi" | "kamailio"
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    started: float  # time.perf_counter() just before Popen
    ready_s: float = -1.0  # process start -> first answered OPTIONS
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def children(self) -> list[int]:
        return child_pids(self.proc.pid)


def child_pids(parent: int) -> list[int]:
    """Direct children of ``parent`` (scans /proc: no /proc/<pid>/task/*/children needed)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ..." and comm may contain spaces or parentheses
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == parent:
            out.append(int(entry))
    return sorted(out)


def wait_bound(port: int, timeout: float, alive: Callable[[], bool]) -> float | None:
    """perf_counter() once something has bound udp:127.0.0.1:port (our bind fails)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline and alive():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return time.perf_counter()
        time.sleep(0.02)
    return None


def command(name: str, cfg: Path, tmp: Path) -> list[str]:
    if name == "pykemi":
        return [sys.executable, "-m", "pykemi.runtime.cli", "run", str(cfg)]
    exe = shutil.which("kamailio") or "kamailio"
    pid = tmp / "kamailio.pid"
    # -m/-M: shared and per-process memory pools (MB); Debian's service default of 64 MB shm
    # runs out under the relay ramp (every transaction waits in shm for its timers)
    return [exe, "-f", str(cfg), "-DD", "-E", "-P", str(pid), "-w", str(tmp), "-Y", str(tmp),
            "-m", str(KAMAILIO_SHM_MB), "-M", str(KAMAILIO_PKG_MB)]  # fmt: skip


@contextmanager
def started(
    name: str,
    cfg_body: str,
    tmp: Path,
    port: int,
    label: str = "",
    ready_timeout: float = 30.0,
    probe_max_forwards: int | None = 70,
) -> Iterator[Running]:
    """Write the cfg into ``tmp``, start router ``name`` on it, wait until it answers.

    ``probe_max_forwards=None``: the script may relay any probe, so wait until the port
    is bound, then one more second for the workers.
    """
    tag = f"{name}-{label or port}"
    run_dir = tmp / tag
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = run_dir / "router.cfg"
    cfg.write_text(cfg_body)
    log_path = run_dir / "router.log"
    args = command(name, cfg, run_dir)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, cwd=run_dir, env=env, start_new_session=True
        )
    running = Running(name, proc, port, log_path, t0)
    try:
        alive = lambda: proc.poll() is None  # noqa: E731
        if probe_max_forwards is None:
            ready = wait_bound(port, ready_timeout, alive)
            time.sleep(1.0)
        else:
            ready = wait_ready(port, ready_timeout, alive, probe_max_forwards)
        if ready is None:
            raise RuntimeError(
                f"{name} did not answer on udp:127.0.0.1:{port} "
                f"(exit {proc.poll()}):\n{running.log[-1500:]}"
            )
        running.ready_s = ready - t0
        yield running
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the router (it stops its own workers); SIGKILL its process group if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    try:  # workers left behind by a main process that died: the group is ours alone
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
