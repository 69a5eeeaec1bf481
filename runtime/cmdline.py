"""Kamailio's command line for ``kemi run``/``kemi check`` and the ``pykemi-kamailio`` script.

``kamailio -f kamailio.cfg -DD -E -A WITH_AUTH`` works with either name. The ``-D`` count
chooses the process model as Kamailio does: ``-D`` one process, no workers (fork=no); ``-DD``
workers, in the foreground; ``-DDD`` workers, detached. Without ``-D``, ``pykemi-kamailio``
detaches like ``kamailio`` and ``kemi run`` stays in the foreground (as under systemd, in a
container, or in a test); a config with ``fork=no`` never detaches (as in Kamailio).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..progress import Progress
from .config import Config, ConfigError, load_config, parse_config_text
from .control import Control, server_version
from .daemon import Detached, detach
from .dispatch import StartupError
from .privileges import resolve
from .router import Router
from .server import Server

# kamailio's default -f (a source build's prefix /usr/local)
DEFAULT_CFG = Path("/usr/local/etc/kamailio/kamailio.cfg")
NO_FORK, FOREGROUND, DAEMON = 1, 2, 3  # how many -D
# options Kamailio needs and pykemi accepts without effect: why, for the note on stderr
NO_EFFECT = {
    "-m": "pykemi has no fixed shared memory pool (mappings grow as needed)",
    "-M": "pykemi has no fixed per-process memory pool (kemi.worker_memory_limit caps it)",
    "-L": "modules come from spec/ and installed out-of-tree packages, not a module folder",
}
_DEFINE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ADDRESS_LIST = re.compile(r"(?P<proto>[a-z]+:)?\((?P<addrs>[^()]*)\)(?P<port>:\d+)?")


def define(text: str) -> tuple[str, str]:
    """``-A NAME[=VALUE]`` (Kamailio's; the value may be a quoted string: ``'DBURL="..."'``)."""
    name, _, value = text.partition("=")
    if not _DEFINE_NAME.match(name):
        raise argparse.ArgumentTypeError(f"bad define name {name!r} in {text!r}: NAME[=VALUE]")
    return name, value


def add_define_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-A",
        "--define",
        action="append",
        type=define,
        default=[],
        metavar="NAME[=VALUE]",
        help="#!define NAME [VALUE] before the config is read (as kamailio -A)",
    )


def add_run_options(parser: argparse.ArgumentParser, kamailio: bool) -> None:
    """The options of ``kemi run`` (``kamailio=False``) and ``pykemi-kamailio``."""
    if not kamailio:
        parser.add_argument("config", type=Path, nargs="?", help="the config (or -f FILE)")
    parser.add_argument(
        "-f", dest="cfg_file", type=Path, metavar="FILE", help="the config file (kamailio -f)"
    )
    add_define_option(parser)
    parser.add_argument(
        "-D",
        dest="no_daemon",
        action="count",
        default=0,
        help="-D: one process, no workers (fork=no); -DD: workers, in the foreground"
        + ("" if kamailio else " (the default of kemi run)")
        + "; -DDD: workers, detached"
        + (" (the default)" if kamailio else ""),
    )
    parser.add_argument("-F", "--foreground", action="store_true", help="fork=no, as -D")
    parser.add_argument("-E", dest="log_stderr", action="store_true", help="log to stderr")
    parser.add_argument(
        "-c", dest="check", action="store_true", help="check the config and exit (kemi check)"
    )
    parser.add_argument(
        "-l",
        dest="listen",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="listen also on [proto:]address[:port] or [proto:](addr1, addr2)[:port] (repeatable)",
    )
    for flag, what in (("-m", "shared"), ("-M", "private")):
        parser.add_argument(flag, metavar="MB", type=int, help=f"{what} memory: no effect")
    parser.add_argument("-L", metavar="DIR", help="module folder: no effect")
    for flag, dest, what in (
        ("-u", "user", "run as USER (name or uid) after binding the sockets, as user="),
        ("-g", "group", "run with group GROUP (name or gid), as group="),
        ("-t", "chroot", "chroot to DIR after binding the sockets, as chroot="),
    ):
        parser.add_argument(flag, dest=dest, metavar=dest.upper(), help=what)
    parser.add_argument("-P", dest="pid_file", type=Path, metavar="FILE", help="write a pid file")
    parser.add_argument("-V", dest="version", action="store_true", help="print the version")
    parser.add_argument("--debug", type=int, default=None, help="override debug=")
    parser.add_argument("-q", "--quiet", action="store_true", help="no start-up progress lines")


def add_check_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path)
    add_define_option(parser)
    parser.add_argument("--debug", type=int, default=None, help="override debug=")


@dataclass
class RunMode:
    fork: bool
    detach: bool


def run_mode(cfg: Config, no_daemon: int, kamailio: bool) -> RunMode:
    """Workers or not, detached or not, from the -D count (see the module docstring)."""
    if no_daemon == NO_FORK or not cfg.get_bool("fork", True):
        return RunMode(fork=False, detach=False)
    if no_daemon == 0:
        return RunMode(fork=True, detach=kamailio)
    return RunMode(fork=True, detach=no_daemon >= DAEMON)


def load(path: Path, defines: Sequence[tuple[str, str]], prog: str) -> Config | int:
    """The config, or the exit status after printing why it cannot be read (2)."""
    try:
        return load_config(path, defines=dict(defines))
    except ConfigError as exc:
        print(f"{prog}: config error: {exc}", file=sys.stderr)
        return 2


def build(cfg: Config, prog: str, log_warnings: bool = True) -> Router | int:
    """The router (modules loaded, script compiled), or 1 after printing why not."""
    try:
        return Router(cfg, log_warnings=log_warnings)
    except (StartupError, ConfigError) as exc:
        print(f"{prog}: cannot start: {exc}", file=sys.stderr)
        return 1


def check(cfg: Config, prog: str) -> int:
    """``kemi check``/``-c``: load everything a start would, print the warnings, bind nothing."""
    try:
        resolve(cfg)  # user=/group=/chroot= exist
    except StartupError as exc:
        print(f"{prog}: cannot start: {exc}", file=sys.stderr)
        return 1
    router = build(cfg, prog, log_warnings=False)  # printed below, once
    if isinstance(router, int):
        return router
    for w in router.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{cfg.path}: ok", file=sys.stderr)
    return 0


def add_listens(cfg: Config, addresses: Sequence[str]) -> None:
    """``-l``: listen sockets besides the config's, each parsed exactly as ``listen=``;
    kamailio's ``[proto:](addr1, addr2)[:port]`` is one socket per address."""
    for option in addresses:
        for address in _address_list(option):
            cfg.listen += parse_config_text(f"listen={address}\n", f"-l {option}").listen


def _address_list(option: str) -> list[str]:
    m = _ADDRESS_LIST.fullmatch(option)
    if m is None:
        return [option]
    proto, port = m["proto"] or "", m["port"] or ""
    return [f"{proto}{addr.strip()}{port}" for addr in m["addrs"].split(",")]


def run(args: argparse.Namespace, prog: str, kamailio: bool) -> int:
    """``kemi run`` and ``pykemi-kamailio``."""
    if args.version:
        print(f"version: {server_version()}")
        return 0
    path = args.cfg_file or getattr(args, "config", None) or (DEFAULT_CFG if kamailio else None)
    if path is None:
        print(f"{prog}: no config: kemi run FILE, or -f FILE", file=sys.stderr)
        return 2
    for flag, value in (("-m", args.m), ("-M", args.M), ("-L", args.L)):
        if value is not None:
            print(
                f"{prog}: {flag} {value}: accepted, no effect: {NO_EFFECT[flag]}", file=sys.stderr
            )
    progress = Progress(prog, args.quiet or args.check)
    progress.step(f"reading {path}")
    cfg = load(path, args.define, prog)
    if isinstance(cfg, int):
        return cfg
    try:
        add_listens(cfg, args.listen)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    if args.debug is not None:
        cfg.globals["debug"] = args.debug
    if args.log_stderr:
        cfg.globals["log_stderror"] = True
    for name in ("user", "group", "chroot"):  # -u/-g/-t win over the config, as in Kamailio
        if getattr(args, name) is not None:
            cfg.globals[name] = getattr(args, name)
    if args.check:
        return check(cfg, prog)
    mode = run_mode(cfg, NO_FORK if args.foreground else args.no_daemon, kamailio)
    cfg.globals["fork"] = mode.fork
    progress.step(f"loading {len(cfg.modules)} modules and the {cfg.cfgengine} script")
    router = build(cfg, prog)
    if isinstance(router, int):
        return router
    if not mode.fork and _serves_tcp(router):
        print(
            f"{prog}: cannot start: fork=no (-D) runs one process that serves UDP only, and "
            f"{cfg.path} listens on TCP: listen on udp: addresses, or run with workers (-DD)",
            file=sys.stderr,
        )
        return 1
    return serve(router, mode, args, prog, progress)


def _serves_tcp(router: Router) -> bool:
    return any(proto in ("tcp", "any") for proto, _, _ in router.proc.listen)


def serve(
    router: Router, mode: RunMode, args: argparse.Namespace, prog: str, progress: Progress
) -> int:
    status: Detached | None = None
    if mode.detach:
        progress.step("detaching: this command returns once the router serves")
        status = detach(router.cfg.get_bool("log_stderror", False), prog)
    pid_file: Path | None = None
    try:
        if args.pid_file is not None:
            pid_file = _write_pid(args.pid_file)
        server = Server(router)
        if router.cfg.get("kemi.rpc_socket") != "none":
            router.control_factory = Control
        if status is not None:
            server.on_ready = status.ready
        progress.step(
            "binding the listen sockets" + (", starting the workers" if mode.fork else "")
        )
        return server.run()
    except StartupError as exc:
        why = f"{prog}: cannot start: {exc}"
        print(why, file=sys.stderr, flush=True)
        if status is not None:
            status.failed(why)
        return 1
    finally:
        if pid_file is not None:
            _remove_pid(pid_file)


def _write_pid(path: Path) -> Path:
    """``-P FILE``: the main process's pid (after detaching), removed when it stops."""
    try:
        path.write_text(f"{os.getpid()}\n")
    except OSError as exc:
        raise StartupError(f"cannot write the pid file {path}: {exc.strerror}") from None
    return path.resolve()


def _remove_pid(path: Path) -> None:
    try:
        if path.read_text().strip() == str(os.getpid()):  # not a later router's file
            path.unlink()
    except OSError:
        pass


def reject_old_defines(parser: argparse.ArgumentParser, extras: Sequence[str]) -> None:
    """Arguments left over; ``-D NAME=VALUE`` was pykemi's define before it became Kamailio's
    -D: say so rather than a bare "unrecognized arguments"."""
    if not extras:
        return
    if any(x == "-D" or "=" in x for x in extras):
        parser.error(
            f"unrecognized arguments: {' '.join(extras)} (defines are -A NAME=VALUE or "
            "--define NAME=VALUE, as kamailio -A; -D is Kamailio's process-model flag)"
        )
    parser.error(f"unrecognized arguments: {' '.join(extras)}")


def kamailio_main(argv: list[str] | None = None) -> int:
    """``pykemi-kamailio``: behaves like ``kamailio`` (detached unless -DD)."""
    parser = argparse.ArgumentParser(
        prog="pykemi-kamailio", description="pykemi with kamailio's command line"
    )
    add_run_options(parser, kamailio=True)
    args, extras = parser.parse_known_args(argv)
    reject_old_defines(parser, extras)
    return run(args, "pykemi-kamailio", kamailio=True)


if __name__ == "__main__":
    raise SystemExit(kamailio_main())
