"""``kemi db ...``: create Kamailio's tables and add subscribers / addresses.

Kept free of SQLAlchemy imports so ``kemi --help`` does not load it.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from ...progress import Progress


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="db_command", required=True)
    ip = sub.add_parser("init", help="create the tables and their version rows")
    ip.add_argument("url", help="db_url, e.g. sqlite:///var/lib/pykemi/kamailio.db")
    ip.add_argument("--table", action="append", help="only this table (repeatable)")
    ip.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    ip.set_defaults(func=cmd_db)

    up = sub.add_parser(
        "add-user",
        help="add (or update) a subscriber; the password is prompted for, or read from stdin",
    )
    up.add_argument("url")
    up.add_argument("user")
    up.add_argument("domain")
    up.add_argument("password", nargs="?", help=argparse.SUPPRESS)  # refused: see _password
    up.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (one line)"
    )
    up.add_argument(
        "--store-plaintext",
        action="store_true",
        help="also store the plain password (only for auth_db calculate_ha1=1 configs; "
        "kamctl's STORE_PLAINTEXT_PW=1); by default only ha1 and ha1b are stored",
    )
    up.set_defaults(func=cmd_db)

    ap = sub.add_parser("add-address", help="add an address row (permissions)")
    ap.add_argument("url")
    ap.add_argument("grp", type=int)
    ap.add_argument("ip")
    ap.add_argument("mask", type=int, nargs="?", default=32)
    ap.add_argument("port", type=int, nargs="?", default=0)
    ap.add_argument("--tag", default=None)
    ap.set_defaults(func=cmd_db)


class PasswordError(Exception):
    """No usable password (given on the command line, no terminal, empty, mismatch)."""


def _password(args: argparse.Namespace) -> str:
    """The new subscriber's password, never from argv (ps and shell history show it)."""
    if args.password is not None:
        raise PasswordError(
            "the password is not accepted on the command line (other users see it in ps, "
            "it stays in shell history): omit it to be prompted, or use --password-stdin"
        )
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != password:
            raise PasswordError("the passwords do not match")
    else:
        raise PasswordError("stdin is not a terminal: pipe the password with --password-stdin")
    if not password:
        raise PasswordError("empty password")
    return password


def cmd_db(args: argparse.Namespace) -> int:
    from . import admin
    from .engine import DbError
    from .url import DbUrlError

    try:
        if args.db_command == "init":
            progress = Progress("kemi db init", args.quiet)
            done = admin.init_db(args.url, args.table, progress.step)
            print(f"kemi db: tables ready: {', '.join(done)}")
            warning = admin.loose_permissions(args.url)
            if warning:
                print(f"kemi db: warning: {warning}", file=sys.stderr)
        elif args.db_command == "add-user":
            password = _password(args)
            what = admin.add_user(
                args.url, args.user, args.domain, password, plaintext=args.store_plaintext
            )
            print(f"kemi db: subscriber {args.user}@{args.domain} {what}")
        else:
            admin.add_address(args.url, args.grp, args.ip, args.mask, args.port, args.tag)
            print(f"kemi db: address {args.ip}/{args.mask}:{args.port} added to group {args.grp}")
    except (DbError, DbUrlError, PasswordError) as exc:
        print(f"kemi db: {exc}", file=sys.stderr)
        return 1
    return 0
