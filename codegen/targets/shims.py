"""View models shared by the JS, Ruby and Squirrel shim emitters (one per language)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..models import Export, Module
from ..names import escape
from ..types import TYPES

Checker = Callable[[str, str], str]


def sig_text(e: Export) -> str:
    return ", ".join(f"{TYPES[p.type].docs} {p.name}" for p in e.params)


def function_view(
    e: Export, lang: str, table: str, checker: Checker, joiner: str
) -> dict[str, Any]:
    args = [escape(p.name, lang) for p in e.params]
    return {
        "member": escape(e.name, lang),
        "table": table,
        "ksr_name": e.ksr_name,
        "module_index": e.module_index,
        "sig_text": sig_text(e),
        "sig": "".join(TYPES[p.type].letter for p in e.params),
        "params": [p.name for p in e.params],
        "arg_list": args,
        "args": ", ".join(args),
        "fast_check": joiner.join(checker(a, p.type) for a, p in zip(args, e.params, strict=True)),
    }


def module_view(
    m: Module, lang: str, table_of: Callable[[str], str], checker: Checker, joiner: str
) -> dict[str, Any]:
    subs = []
    for s in m.submodules:
        funcs = [
            function_view(e, lang, table_of(s), checker, joiner)
            for e in m.exports
            if e.submodule == s
        ]
        subs.append({"name": s, "var": f"_kemi_m_{s}" if s else "_kemi_m", "const": s.upper(),
                     "functions": funcs})  # fmt: skip
    return {
        "module": m.name,
        "submodules": subs,
        "functions": [
            function_view(e, lang, table_of(e.submodule), checker, joiner) for e in m.exports
        ],
    }
