"""``kemi generate [--check]``: regenerate generated/ from spec/*.yaml."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .. import checkout
from ..kemi.errors import SpecError, SpecErrors
from ..progress import Progress
from .generate import ROOT, check, generate, load


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--check", action="store_true", help="fail with a diff when generated/ is stale")
    p.add_argument(
        "--spec", action="append", type=Path, help="spec directory (repeatable; default: spec/)"
    )
    p.add_argument("--out", type=Path, default=None, help="output directory (default: generated/)")
    p.add_argument("--quiet", "-q", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.out is None and checkout() is None:
        # the default generated/ is the installed package's, built with it: never written
        if args.spec:
            print(
                "kemi generate: pykemi is installed, not run from its checkout: its "
                "generated/ is read-only; give an output folder: --out DIR",
                file=sys.stderr,
            )
            return 2
        if not args.quiet:
            print("generated/ was built with the installed pykemi (read-only): nothing to do")
        return 0
    out: Path = args.out or ROOT / "generated"
    started = time.perf_counter()
    progress = Progress("kemi generate", args.quiet)
    progress.step(f"reading the specs in {', '.join(map(str, args.spec or ['spec/']))}")
    try:
        spec = load(args.spec)
    except (SpecErrors, SpecError) as exc:
        print(f"kemi generate: invalid spec\n{exc}", file=sys.stderr)
        return 2
    if args.check:
        progress.step(f"comparing {out} with what {len(spec.exports)} exports generate")
        diffs = check(spec, out)
        if diffs:
            sys.stdout.write("".join(diffs))
            print(
                f"kemi generate --check: {len(diffs)} generated file(s) are stale; "
                "run `kemi generate` (or `nox -s generate`)",
                file=sys.stderr,
            )
            return 1
        if not args.quiet:
            print(f"generated/ is current ({len(spec.exports)} exports, spec {spec.hash})")
        return 0
    progress.step(f"{len(spec.exports)} exports in {len(spec.modules)} modules: writing {out}")
    changed = generate(spec, out)
    if not args.quiet:
        took = time.perf_counter() - started
        print(
            f"{len(spec.exports)} exports in {len(spec.modules)} modules -> {out} "
            f"({len(changed)} file(s) changed, {took:.2f}s)"
        )
        for rel in changed:
            print(f"  {rel}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kemi generate", description=__doc__)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
