"""``kemi db ...``: create Kamailio's tables and add subscribers / addresses.

Kept free of SQLAlchemy imports so ``kemi --help`` does not load it.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="db_command", required=True)
    ip = sub.add_parser("init", help="create the tables and their version rows")
    ip.add_argument("url", help="db_url, e.g. sqlite:///var/lib/pykemi/kamailio.db")
    ip.add_argument("--table", action="append", help="only this table (repeatable)")
    ip.set_defaults(func=cmd_db)

    up = sub.add_parser("add-user", help="add (or update) a subscriber")
    up.add_argument("url")
    up.add_argument("user")
    up.add_argument("domain")
    up.add_argument("password")
    up.set_defaults(func=cmd_db)

    ap = sub.add_parser("add-address", help="add an address row (permissions)")
    ap.add_argument("url")
    ap.add_argument("grp", type=int)
    ap.add_argument("ip")
    ap.add_argument("mask", type=int, nargs="?", default=32)
    ap.add_argument("port", type=int, nargs="?", default=0)
    ap.add_argument("--tag", default=None)
    ap.set_defaults(func=cmd_db)


def cmd_db(args: argparse.Namespace) -> int:
    from . import admin
    from .engine import DbError
    from .url import DbUrlError

    try:
        if args.db_command == "init":
            done = admin.init_db(args.url, args.table)
            print(f"kemi db: tables ready: {', '.join(done)}")
        elif args.db_command == "add-user":
            what = admin.add_user(args.url, args.user, args.domain, args.password)
            print(f"kemi db: subscriber {args.user}@{args.domain} {what}")
        else:
            admin.add_address(args.url, args.grp, args.ip, args.mask, args.port, args.tag)
            print(f"kemi db: address {args.ip}/{args.mask}:{args.port} added to group {args.grp}")
    except (DbError, DbUrlError) as exc:
        print(f"kemi db: {exc}", file=sys.stderr)
        return 1
    return 0
