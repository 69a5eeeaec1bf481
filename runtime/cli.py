"""The router's commands of ``kemi``: run, check, build, rpc, db.

``kemi generate`` and ``kemi new-module`` are the generator's (pykemi/cli.py adds them).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import checkout
from . import cmdline
from .config import ConfigError, load_config
from .config.model import DEFAULT_LISTEN
from .control import UntrustedServerError, call, default_socket_path, socket_path
from .dispatch_build import build_inplace


def cmd_run(args: argparse.Namespace) -> int:
    return cmdline.run(args, "kemi", kamailio=False)


def cmd_check(args: argparse.Namespace) -> int:
    cfg = cmdline.load(args.config, args.define, "kemi")
    if isinstance(cfg, int):
        return cfg
    if args.debug is not None:
        cfg.globals["debug"] = args.debug
    return cmdline.check(cfg, "kemi")


def cmd_build(args: argparse.Namespace) -> int:
    if checkout() is None:  # an installed wheel: never write below site-packages
        print(
            "kemi build: pykemi is installed, not run from its checkout: its C dispatch "
            "extension was compiled when the wheel was built; nothing to do",
            file=sys.stderr,
        )
        return 2
    print(build_inplace(verbose=args.verbose))
    return 0


def _rpc_param(text: str) -> object:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float, list, dict)) else text


def _rpc_socket(args: argparse.Namespace) -> str:
    """``-s``, else the socket of the router ``-c CFG`` (with ``-A``) describes, else the
    default socket of a router without listen=."""
    if args.socket is not None:
        return str(args.socket)
    if args.config is None:
        return default_socket_path(DEFAULT_LISTEN[1], DEFAULT_LISTEN[2])
    try:
        path = socket_path(load_config(args.config, defines=dict(args.define)))
    except ConfigError as exc:
        raise SystemExit(f"kemi rpc: config error: {exc}") from None
    if path is None:
        raise SystemExit(
            f'kemi rpc: {args.config} disables the control socket (kemi.rpc_socket="none")'
        )
    return path


def cmd_rpc(args: argparse.Namespace) -> int:
    try:
        path = _rpc_socket(args)
    except OSError as exc:
        print(f"kemi rpc: no control socket directory: {exc}", file=sys.stderr)
        return 2
    try:
        reply = call(path, args.method, [_rpc_param(p) for p in args.params])
    except UntrustedServerError as exc:
        print(f"kemi rpc: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"kemi rpc: cannot reach {path}: {exc}", file=sys.stderr)
        return 2
    if "error" in reply:
        print(json.dumps(reply["error"], indent=2), file=sys.stderr)
        return 1
    result = reply.get("result")
    if result is not None:
        print(result if isinstance(result, str) else json.dumps(result, indent=2))
    return 0


def main(
    argv: list[str] | None = None,
    extra_commands: Sequence[Callable[[argparse._SubParsersAction[Any]], None]] = (),
) -> int:
    """The router's commands (run, check, build, rpc, db) plus ``extra_commands``."""
    p = argparse.ArgumentParser(prog="kemi", description="pykemi: KEMI SIP router and generator")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("run", help="run the router (kamailio's -f -A -D -E -c -l -P -V too)")
    cmdline.add_run_options(sp, kamailio=False)
    sp.set_defaults(func=cmd_run)
    cp = sub.add_parser("check", help="validate a config (kamailio -c)")
    cmdline.add_check_options(cp)
    cp.set_defaults(func=cmd_check)

    for add_commands in extra_commands:  # pykemi/cli.py: the generator's commands
        add_commands(sub)

    bp = sub.add_parser("build", help="compile the C dispatch extension in place")
    bp.add_argument("--verbose", "-v", action="store_true")
    bp.set_defaults(func=cmd_build)

    rp = sub.add_parser("rpc", help="call a JSON-RPC method of a running router")
    rp.add_argument("-s", "--socket", help="control socket path")
    rp.add_argument("-c", "--config", type=Path, help="find the socket from this config")
    cmdline.add_define_option(rp)
    rp.add_argument("method")
    rp.add_argument("params", nargs="*")
    rp.set_defaults(func=cmd_rpc)

    from .db.cli import add_arguments as db_arguments

    dp = sub.add_parser("db", help="create Kamailio's database tables, add users/addresses")
    db_arguments(dp)

    args, extras = p.parse_known_args(argv)
    cmdline.reject_old_defines(p, extras)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
