"""Typed view models shared by the Lua, JavaScript, Ruby and Squirrel shim emitters.

Every language-specific spelling (escaped names, argument checks, Ruby's constant
sub-modules) comes from the language's ``Target``; the emitters only name their
template and how a sub-module's table is referred to inside the shim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jinja2

from ...kemi.model import Export, Module, Spec
from ...kemi.targets import Target
from ...kemi.types import TYPES
from ..render import banner

TableOf = Callable[[str], str]  # KSR sub-module -> the shim's expression for its table


@dataclass(frozen=True)
class FunctionView:
    member: str  # the function's name in the language (reserved words escaped)
    table: str  # the shim's expression for the table holding it
    ksr_name: str
    module_index: int
    sig_text: str  # "int code, str reason" (for error messages)
    sig: str  # signature letters ("is"; "" for none)
    params: tuple[str, ...]  # spec names
    arg_list: tuple[str, ...]  # escaped names
    args: str  # escaped names joined with ", "
    fast_check: str  # one expression checking every argument's type


@dataclass(frozen=True)
class SubmoduleView:
    name: str  # "" for core functions
    var: str  # local variable of its table
    const: str  # as the language spells the sub-module (Ruby: upper-case constant)
    functions: tuple[FunctionView, ...]


@dataclass(frozen=True)
class ModuleView:
    module: str
    base_const: str  # the constant holding the module's first slot (Ruby's shim)
    submodules: tuple[SubmoduleView, ...]
    functions: tuple[FunctionView, ...]


def sig_text(e: Export) -> str:
    return ", ".join(f"{TYPES[p.type].docs} {p.name}" for p in e.params)


def function_view(e: Export, target: Target, table: str) -> FunctionView:
    args = tuple(target.escape(p.name) for p in e.params)
    return FunctionView(
        member=target.escape(e.name),
        table=table,
        ksr_name=e.ksr_name,
        module_index=e.module_index,
        sig_text=sig_text(e),
        sig=e.letters,
        params=e.param_names,
        arg_list=args,
        args=", ".join(args),
        fast_check=target.arg_check(list(args), e.param_types),
    )


def module_view(m: Module, target: Target, table_of: TableOf) -> ModuleView:
    functions = tuple(function_view(e, target, table_of(e.submodule)) for e in m.exports)
    subs = tuple(
        SubmoduleView(
            name=s,
            var=f"_kemi_m_{s}" if s else "_kemi_m",
            const=target.submodule_name(s),
            functions=tuple(
                f for f, e in zip(functions, m.exports, strict=True) if e.submodule == s
            ),
        )
        for s in m.submodules
    )
    return ModuleView(
        module=m.name,
        base_const="KEMI_BASE_" + target.constant(m.name),
        submodules=subs,
        functions=functions,
    )


def emit_shims(
    spec: Spec, env: jinja2.Environment, target: Target, template: str, table_of: TableOf
) -> dict[str, str]:
    """One shim per module: ``<shim_dir>/<module><suffix>``."""
    out = {}
    tpl = env.get_template(template)
    for m in spec.modules:
        rel = target.shim(m.name)
        view = module_view(m, target, table_of)
        out[rel] = tpl.render(
            banner=banner(rel, [m.spec_file]),
            spec_hash=spec.hash,
            module=view.module,
            base_const=view.base_const,
            submodules=view.submodules,
            functions=view.functions,
        )
    return out
