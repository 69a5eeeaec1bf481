"""``kemi generate`` and ``kemi new-module``: the generator's commands (pykemi/cli.py runs
this module only for them, so a router never imports the generator or its dependencies).

``kemi generate`` regenerates generated/ from the built-in specs, then validates and renders
every installed out-of-tree module (pykemi.codegen.extension) into its tree in the module
cache (pykemi.runtime.extensions.store) and compiles its C sources, so that the router only
loads finished trees.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from .codegen import cli as codegen_cli
from .codegen import extension as codegen_ext
from .codegen import scaffold
from .codegen.render import check_tree, write_tree
from .kemi.errors import SpecError, SpecErrors
from .progress import Progress
from .runtime import extensions
from .runtime.dispatch import Api


def add_commands(sub: argparse._SubParsersAction[Any], helps: Mapping[str, str]) -> None:
    gp = sub.add_parser("generate", help=helps["generate"])
    codegen_cli.add_arguments(gp)
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
    np_ = sub.add_parser("new-module", help=helps["new-module"])
    scaffold.add_arguments(np_)
    np_.set_defaults(func=scaffold.run)


def cmd_generate(args: argparse.Namespace) -> int:
    """Built-in specs -> generated/ (unless only modules are asked for), then the installed
    out-of-tree modules -> their trees in the module cache (runtime/extensions.py)."""
    names: list[str] = args.extension or []
    if not names:
        rc = codegen_cli.run(args)
        if rc != 0 or args.no_extensions or args.spec or args.out:
            return rc
    try:
        return _generate_extensions(args, names)
    except extensions.ExtensionError as exc:
        print(f"kemi generate: {exc}", file=sys.stderr)
        return 2


def _generate_extensions(args: argparse.Namespace, names: list[str]) -> int:
    infos = extensions.selected(names)
    if args.out is not None and len(infos) != 1:
        raise extensions.ExtensionError("--out with modules needs exactly one --extension NAME")
    known = codegen_ext.builtins()
    progress = Progress("kemi generate", args.quiet)
    diffs: list[str] = []
    for info in infos:
        if args.check:
            target = args.out or extensions.tree_dir(info)
            progress.step(f"comparing module '{info.name}' ({target}) with what its spec generates")
            files = render_module(info, known)
            diffs += [d for d in check_tree(target, files) if "stale file" not in d]
            continue
        progress.step(f"module '{info.name}': {', '.join(p.name for p in info.specs)}")
        if args.out is not None:
            write_tree(args.out, render_module(info, known), prune=False)
            tree = args.out
        else:
            tree = generate_module(info, known, progress).out_dir
        if not args.quiet:
            doc = json.loads((tree / "api.json").read_text(encoding="utf-8"))
            count = sum(len(m["exports"]) for m in doc["modules"])
            print(f"extension {info.name}: {count} exports -> {tree}")
    if diffs:
        sys.stdout.write("".join(diffs))
        print(
            f"kemi generate --check: {len(diffs)} module file(s) are stale; run `kemi generate "
            f"--extension NAME`",
            file=sys.stderr,
        )
        return 1
    if args.check and not args.quiet and infos:
        print(f"module bindings are current: {', '.join(i.name for i in infos)}")
    return 0


def render_module(
    info: extensions.ExtensionInfo, known: codegen_ext.Builtins | None = None
) -> dict[str, str]:
    """The module's tree as files, validated (ExtensionError naming the package and lines)."""
    try:
        spec = codegen_ext.load(info.name, info.specs, bool(info.c_sources), known)
    except (SpecErrors, SpecError) as exc:
        raise extensions.ExtensionError(f"{info.where}: invalid spec\n{exc}") from exc
    return codegen_ext.render(spec, extensions.tree_meta(info))


def generate_module(
    info: extensions.ExtensionInfo,
    known: codegen_ext.Builtins | None = None,
    progress: Progress | None = None,
) -> extensions.Extension:
    """Render the module into its cache tree and compile its C sources: what the router
    then loads (pykemi.runtime.extensions.load)."""
    files = render_module(info, known)
    tree = extensions.store(info, files)
    ext = extensions.Extension(info, Api(json.loads(files["api.json"])), tree)
    if info.c_sources:  # compile now: a compile error shows here, not at start-up
        if progress is not None:
            progress.step(
                f"module '{info.name}': compiling {', '.join(p.name for p in info.c_sources)}"
            )
        extensions.compile_c(ext)
    return ext
