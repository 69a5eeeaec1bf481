"""One Target per scripting language: everything pykemi knows about writing KEMI in it.

The generator's emitters, the docs and stubs, and the runtime (which engines run which
language) all read these descriptors; a new language is a new entry here plus its
templates and its engine (docs/adding-a-language.md).
"""

from __future__ import annotations

import keyword
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """How KEMI is written in one language and which engines run it."""

    name: str  # the key used everywhere: "lua", "python", "js", "ruby", "sqlang"
    title: str  # as docs name the language
    # cfgengine identifier -> loadmodule names that provide it (the first is Kamailio's)
    engines: Mapping[str, tuple[str, ...]]
    engine_factory: str  # "module.path:Class" of the runtime's Engine (imported by the router)
    reserved: frozenset[str]  # words escaped with a trailing "_" in member and param names
    types: Mapping[str, str]  # spec type -> the language's annotation (stubs, docs)
    arg_checks: Mapping[str, str]  # param type -> shim's fast check of argument "{a}"
    check_joiner: str  # joins the per-argument checks into one expression
    shim_dir: str  # folder of the shims inside generated/
    suffix: str  # source file suffix
    comment: str  # line-comment prefix
    stub_suffixes: tuple[str, ...]  # the IDE stub/lint files' suffixes (same comment syntax)
    doc_param: str  # a parameter in the docs' signature line: "{n}: {t}" or "{t} {n}"
    doc_signature: str  # "{member}({params}) -> {ret}"
    upper_submodules: bool = False  # Ruby: sub-modules are constants (KSR::TM)
    # False: one file per KSR sub-module in a package (Python's KSR), not one per module
    per_module_shims: bool = True

    def escape(self, name: str) -> str:
        """The spelling of ``name`` in this language: reserved words get a trailing ``_``."""
        return name + "_" if name in self.reserved else name

    def constant(self, name: str) -> str:
        """A constant named after ``name`` (Ruby: constants start upper-case; pykemi
        upper-cases the whole name, as Kamailio's app_ruby does: KSR::TM)."""
        return name.upper()

    def submodule_name(self, submodule: str) -> str:
        """How a KSR sub-module is spelled (``tm``; Ruby's constant ``TM``)."""
        return self.constant(submodule) if self.upper_submodules else submodule

    def ksr_submodule(self, submodule: str) -> str:
        """The object holding a sub-module's functions: ``KSR.tm``, ``KSR::TM``, ``KSR``."""
        if not submodule:
            return "KSR"
        sep = "::" if self.upper_submodules else "."
        return f"KSR{sep}{self.submodule_name(submodule)}"

    def member(self, submodule: str, name: str) -> str:
        """``KSR.<sub>.<fn>`` as a script writes it (reserved words escaped)."""
        return f"{self.ksr_submodule(submodule)}.{self.escape(name)}"

    def shim(self, module: str) -> str:
        """Where a loadable module's shim is inside a generated tree (for Python: the KSR
        package folder that holds it)."""
        return f"{self.shim_dir}/{module}{self.suffix}" if self.per_module_shims else self.shim_dir

    def arg_check(self, args: list[str], types: tuple[str, ...]) -> str:
        """The shim's one-expression argument check for ``args`` of ``types``."""
        return self.check_joiner.join(
            self.arg_checks[t].format(a=a) for a, t in zip(args, types, strict=True)
        )

    @property
    def suffixes(self) -> tuple[str, ...]:
        """Every file suffix written in this language (shims and stubs)."""
        return (self.suffix, *self.stub_suffixes)

    @property
    def engine_modules(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for modules in self.engines.values():
            seen.update(dict.fromkeys(modules))
        return tuple(seen)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# fmt: off
LUA = Target(
    name="lua", title="Lua",
    engines={"lua": ("app_lua",)},
    engine_factory="pykemi.runtime.engines.lua:LuaEngine",
    reserved=_words(
        "and break do else elseif end false for function goto if in local nil not or repeat "
        "return then true until while"
    ),
    types={"int": "integer", "str": "string", "long": "integer", "bool": "boolean",
           "xval": "string|integer|nil", "none": "nil"},
    arg_checks={"int": 'type({a}) ~= "number" or {a} % 1 ~= 0', "str": 'type({a}) ~= "string"'},
    check_joiner=" or ",
    shim_dir="lua", suffix=".lua", comment="--",
    stub_suffixes=(".luacheckrc",),
    doc_param="{n}: {t}", doc_signature="{member}({params}) -> {ret}",
)

PYTHON = Target(
    name="python", title="Python",
    engines={
        "python": ("app_python", "app_python3", "app_python3s"),
        "python3": ("app_python3", "app_python", "app_python3s"),
    },
    engine_factory="pykemi.runtime.engines.python:PythonEngine",
    reserved=frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) - {"_"},
    types={"int": "int", "str": "str", "long": "int", "bool": "bool",
           "xval": "str | int | None", "none": "None"},
    arg_checks={"int": "{a}.__class__ is not int", "str": "{a}.__class__ is not str"},
    check_joiner=" or ",
    shim_dir="python/KSR", suffix=".py", comment="#",
    stub_suffixes=(".pyi",),
    per_module_shims=False,
    doc_param="{n}: {t}", doc_signature="{member}({params}) -> {ret}",
)

JS = Target(
    name="js", title="JavaScript",
    engines={"jsdt": ("app_jsdt",)},
    engine_factory="pykemi.runtime.engines.js:JsEngine",
    reserved=_words(
        "await break case catch class const continue debugger default delete do else enum export "
        "extends false finally for function if implements import in instanceof interface let new "
        "null package private protected public return static super switch this throw true try "
        "typeof var void while with yield arguments eval"
    ),
    types={"int": "number", "str": "string", "long": "number", "bool": "boolean",
           "xval": "string | number | null", "none": "void"},
    arg_checks={"int": 'typeof {a} !== "number" || {a} % 1 !== 0',
                "str": 'typeof {a} !== "string"'},
    check_joiner=" || ",
    shim_dir="js", suffix=".js", comment="//",
    stub_suffixes=(".ts",),
    doc_param="{n}: {t}", doc_signature="{member}({params}): {ret}",
)

RUBY = Target(
    name="ruby", title="Ruby",
    engines={"ruby": ("app_ruby",)},
    engine_factory="pykemi.runtime.engines.ruby:RubyEngine",
    reserved=_words(
        "BEGIN END alias and begin break case class def defined do else elsif end ensure false "
        "for if in module next nil not or redo rescue retry return self super then true undef "
        "unless until when while yield __FILE__ __LINE__ __ENCODING__"
    ),
    types={"int": "Integer", "str": "String", "long": "Integer", "bool": "bool",
           "xval": "(String | Integer)?", "none": "void"},
    # Ruby's shim runs the slow check `unless` every argument passes
    arg_checks={"int": "{a}.is_a?(Integer)", "str": "{a}.is_a?(String)"},
    check_joiner=" && ",
    shim_dir="ruby", suffix=".rb", comment="#",
    stub_suffixes=(".rbs",),
    doc_param="{t} {n}", doc_signature="{member}: ({params}) -> {ret}",
    upper_submodules=True,
)

SQLANG = Target(
    name="sqlang", title="Squirrel",
    engines={"sqlang": ("app_sqlang",)},
    engine_factory="pykemi.runtime.engines.sqlang:SqlangEngine",
    reserved=_words(
        "base break case catch class clone continue const default delete else enum extends for "
        "foreach function if in local null resume return switch this throw try typeof while "
        "yield constructor instanceof true false static rawcall __LINE__ __FILE__"
    ),
    # Squirrel is untyped: these spellings are for the docs only
    types={"int": "integer", "str": "string", "long": "integer", "bool": "bool",
           "xval": "string|integer|null", "none": "null"},
    arg_checks={"int": 'typeof {a} != "integer"', "str": 'typeof {a} != "string"'},
    check_joiner=" || ",
    shim_dir="sqlang", suffix=".nut", comment="//",
    stub_suffixes=(),
    doc_param="{t} {n}", doc_signature="{member}({params}) -> {ret}",
)
# fmt: on

# docs order: Lua first (Kamailio's reference language), then Python
TARGETS: dict[str, Target] = {t.name: t for t in (LUA, PYTHON, JS, RUBY, SQLANG)}

# cfgengine identifier -> its Target
ENGINE_TARGETS: dict[str, Target] = {ident: t for t in TARGETS.values() for ident in t.engines}


def target(name: str) -> Target:
    """The Target called ``name``; a KeyError names the known ones."""
    try:
        return TARGETS[name]
    except KeyError:
        raise KeyError(f"unknown target language {name!r} (known: {', '.join(TARGETS)})") from None
