"""The ``kemi`` command: run, check, generate, build, rpc, new-module."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .core.log import LOG


def _defines(values: list[str] | None) -> dict[str, str]:
    out = {}
    for item in values or []:
        name, _, value = item.partition("=")
        out[name] = value
    return out


def _add_define(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-D", "--define", action="append", help="#!define NAME[=VALUE]")


def _load(args: argparse.Namespace) -> object:
    from .config import ConfigError, load_config
    from .dispatch import StartupError
    from .router import Router

    try:
        cfg = load_config(args.config, defines=_defines(args.define))
    except ConfigError as exc:
        print(f"kemi: config error: {exc}", file=sys.stderr)
        return 2
    if args.debug is not None:
        cfg.globals["debug"] = args.debug
    if getattr(args, "foreground", False):
        cfg.globals["fork"] = False
    try:
        return Router(cfg)
    except (StartupError, ConfigError) as exc:
        print(f"kemi: cannot start: {exc}", file=sys.stderr)
        return 1


def cmd_run(args: argparse.Namespace) -> int:
    from .control import Control
    from .dispatch import StartupError
    from .server import Server

    router = _load(args)
    if isinstance(router, int):
        return router
    if router.cfg.get("kemi.rpc_socket") != "none":  # type: ignore[attr-defined]
        router.control_factory = Control  # type: ignore[attr-defined]
    try:
        return Server(router).run()  # type: ignore[arg-type]
    except StartupError as exc:
        print(f"kemi: cannot start: {exc}", file=sys.stderr)
        return 1


def cmd_check(args: argparse.Namespace) -> int:
    LOG.level = -10  # warnings are printed below, once
    router = _load(args)
    if isinstance(router, int):
        return router
    for w in router.warnings:  # type: ignore[attr-defined]
        print(f"warning: {w}", file=sys.stderr)
    print(f"{args.config}: ok", file=sys.stderr)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from pykemi.codegen.cli import run

    # built-in specs -> generated/ (unless only extensions are asked for), then the
    # installed out-of-tree modules -> their own trees (runtime/extensions.py)
    names: list[str] = args.extension or []
    if not names:
        rc = run(args)
        if rc != 0 or args.no_extensions or args.spec or args.out:
            return rc
        if args.check:
            return rc  # cached extension trees are keyed by their spec: never stale
    return _generate_extensions(args, names)


def _generate_extensions(args: argparse.Namespace, names: list[str]) -> int:
    from . import extensions

    try:
        done, diffs = extensions.generate_all(names, out=args.out, check_only=args.check)
    except extensions.ExtensionError as exc:
        print(f"kemi generate: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if diffs:
            sys.stdout.write("".join(diffs))
            print(f"kemi generate --check: {len(diffs)} file(s) are stale", file=sys.stderr)
            return 1
        if not args.quiet:
            print(f"extension bindings are current: {', '.join(names)}")
        return 0
    if not args.quiet:
        for line in extensions.describe(done):
            print(f"extension {line}")
    return 0


def cmd_new_module(args: argparse.Namespace) -> int:
    from .scaffold import run as scaffold_run

    return scaffold_run(args)


def cmd_build(args: argparse.Namespace) -> int:
    from .dispatch_build import build_inplace

    print(build_inplace(verbose=args.verbose))
    return 0


def _rpc_param(text: str) -> object:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float, list, dict)) else text


def _rpc_socket(args: argparse.Namespace) -> str:
    """``-s``, else the socket of the router ``-c CFG`` (with ``-D``) describes, else the
    default socket of a router without listen=."""
    from .config import ConfigError, load_config
    from .config.model import DEFAULT_LISTEN
    from .control import default_socket_path, socket_path

    if args.socket is not None:
        return str(args.socket)
    if args.config is None:
        return default_socket_path(DEFAULT_LISTEN[1], DEFAULT_LISTEN[2])
    try:
        path = socket_path(load_config(args.config, defines=_defines(args.define)))
    except ConfigError as exc:
        raise SystemExit(f"kemi rpc: config error: {exc}") from None
    if path is None:
        raise SystemExit(
            f'kemi rpc: {args.config} disables the control socket (kemi.rpc_socket="none")'
        )
    return path


def cmd_rpc(args: argparse.Namespace) -> int:
    from .control import UntrustedServerError, call

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kemi", description="pykemi: KEMI SIP router and generator")
    sub = p.add_subparsers(dest="command", required=True)

    for name, helptext in (("run", "run the router"), ("check", "validate a config (kamailio -c)")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("config", type=Path)
        _add_define(sp)
        sp.add_argument("--debug", type=int, default=None, help="override debug=")
        if name == "run":
            sp.add_argument("-F", "--foreground", action="store_true", help="fork=no")
        sp.set_defaults(func=cmd_run if name == "run" else cmd_check)

    from pykemi.codegen.cli import add_arguments

    gp = sub.add_parser("generate", help="regenerate generated/ from the specs")
    add_arguments(gp)
    gp.add_argument(
        "--extension",
        action="append",
        metavar="NAME",
        help="only this installed out-of-tree module (repeatable); its bindings go to "
        "the pykemi cache, or to --out",
    )
    gp.add_argument(
        "--no-extensions", action="store_true", help="skip installed out-of-tree modules"
    )
    gp.set_defaults(func=cmd_generate)

    np_ = sub.add_parser("new-module", help="scaffold an out-of-tree module package")
    from .scaffold import add_arguments as scaffold_arguments

    scaffold_arguments(np_)
    np_.set_defaults(func=cmd_new_module)

    bp = sub.add_parser("build", help="compile the C dispatch extension in place")
    bp.add_argument("--verbose", "-v", action="store_true")
    bp.set_defaults(func=cmd_build)

    rp = sub.add_parser("rpc", help="call a JSON-RPC method of a running router")
    rp.add_argument("-s", "--socket", help="control socket path")
    rp.add_argument("-c", "--config", type=Path, help="find the socket from this config")
    _add_define(rp)
    rp.add_argument("method")
    rp.add_argument("params", nargs="*")
    rp.set_defaults(func=cmd_rpc)

    from .db.cli import add_arguments as db_arguments

    dp = sub.add_parser("db", help="create Kamailio's database tables, add users/addresses")
    db_arguments(dp)

    args = p.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
