"""Docs target: a Markdown page per module, an index of every function, module parameters.

Pages are written for the mkdocs site (Material theme; ``attr_list`` for the stable
``#ksr-sl-send-reply`` anchors, ``pymdownx.tabbed`` for the examples) and stay
readable as plain Markdown. Every spelling of a type and of a member name comes from
the language's ``Target`` (``pykemi.kemi.targets``) and the type table (``kemi.types``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jinja2

from ...kemi.contract import CORE_MODULE, MAX_PARAMS
from ...kemi.model import (
    NO_EFFECT,
    NOT_IMPLEMENTED,
    PARTIAL,
    WORKS,
    Export,
    ModParam,
    Module,
    Spec,
    effect_kind,
    effect_note,
)
from ...kemi.reference import VERSION as KAMAILIO_VERSION
from ...kemi.reference import kamailio_exports
from ...kemi.targets import TARGETS
from ...kemi.types import TYPES
from ...runtime.absent import MODULES as ABSENT
from ...runtime.config.globals import KNOWN_GLOBALS

EFFECTS = (WORKS, PARTIAL, NO_EFFECT)

RETURNS = {
    "int": "an integer: > 0 success (true), < 0 failure (false), 0 stops the script "
    "(Kamailio's rule for integer return codes).",
    "long": "an integer (long); no success/failure meaning.",
    "bool": "a boolean: `true`/`false` in Lua, JavaScript, Ruby and Squirrel, "
    "`True`/`False` in Python.",
    "xval": "a string, an integer or null: `nil` in Lua and Ruby, `None` in Python, "
    "`null` in JavaScript and Squirrel.",
    "none": "no value.",
}

# how an example script uses the result, per return type (Lua, Python)
_USE = {
    "int": ("if {call} < 0 then\n    KSR.err(\"{name} failed\\n\")\nend",
            "if {call} < 0:\n    KSR.err(\"{name} failed\\n\")"),
    "long": ("local n = {call}", "n = {call}"),
    "bool": ("if {call} then\n    KSR.info(\"{name}: true\\n\")\nend",
             "if {call}:\n    KSR.info(\"{name}: true\\n\")"),
    "xval": ("local v = {call}  -- string, integer or nil\nif v ~= nil then\n"
             "    KSR.info(\"{name}: \" .. tostring(v) .. \"\\n\")\nend",
             "v = {call}  # str, int or None\nif v is not None:\n"
             "    KSR.info(\"{name}: %s\\n\" % v)"),
    "none": ("{call}", "{call}"),
}  # fmt: skip


_CALL = re.compile(r"^(?:local\s+\w+\s*=\s*|if\s+)?(?P<fn>KSR[\w.]*)\((?P<args>.*)\)")
_LUA_ONLY = re.compile(r"\.\.|\bnil\b|[{}]|--|~=|\bthen\b")


def anchor(e: Export) -> str:
    """Stable anchor of a function: ``KSR.sl.send_reply`` -> ``ksr-sl-send-reply``."""
    return ("ksr-" + e.qualname).replace(".", "-").replace("_", "-").lower()


def loadmodule_line(module: str) -> str | None:
    """The config line that makes a module's functions exist (None for the core)."""
    return None if module == CORE_MODULE else f'loadmodule "{module}.so"'


def member(e: Export, lang: str) -> str:
    """``KSR.<sub>.<fn>`` as written in ``lang`` (reserved words escaped)."""
    return TARGETS[lang].member(e.submodule, e.name)


def c_symbol(e: Export) -> str:
    """The C function of an export: its symbol, or the name a C port would use."""
    if e.impl_kind == "c":
        return e.impl
    return "ksr_" + (f"{e.submodule}_{e.name}" if e.submodule else e.name)


def signatures(e: Export) -> list[tuple[str, str]]:
    """(language, signature) for every scripting language, then C."""
    out = []
    for t in TARGETS.values():
        params = ", ".join(
            t.doc_param.format(n=t.escape(p.name), t=t.types[p.type]) for p in e.params
        )
        member = t.member(e.submodule, e.name)
        out.append(
            (t.title, t.doc_signature.format(member=member, params=params, ret=t.types[e.ret]))
        )
    c_params = ", ".join(
        ["sip_msg_t *msg"]
        + [f"{TYPES[p.type].c_param} {p.name}".replace("* ", "*") for p in e.params]
    )
    out.append(("C", f"{TYPES[e.ret].c_ret} {c_symbol(e)}({c_params})".replace("* ", "*")))
    return out


def sr_kemi_row(e: Export) -> str:
    """The export's entry in a C module's ``sr_kemi_t`` array, as in Kamailio."""
    ptypes = [TYPES[p.type].sr_kemip for p in e.params]
    ptypes += ["SR_KEMIP_NONE"] * (MAX_PARAMS - len(ptypes))
    return (
        f'{{ str_init("{e.submodule}"), str_init("{e.name}"),\n'
        f"    {TYPES[e.ret].sr_kemip}, {c_symbol(e)},\n"
        f"    {{ {', '.join(ptypes[:3])},\n"
        f"        {', '.join(ptypes[3:])} }}\n}},"
    )


def _sample_args(e: Export) -> str:
    """Arguments of a generated example: those of the spec's one-call example when it has
    one (``KSR.sl.send_reply(200, "OK")``), else 1 for int and the parameter's name for str."""
    lines = [line.strip() for line in e.example.strip().splitlines()]
    if len(lines) == 1:
        m = _CALL.match(lines[0])
        if m and m["fn"] == member(e, "lua") and not _LUA_ONLY.search(m["args"]):
            return m["args"]
    return ", ".join("1" if p.type == "int" else f'"{p.name}"' for p in e.params)


def examples(e: Export) -> list[tuple[str, str, str]]:
    """(tab title, highlight language, code): the spec's example (Lua) or a generated call,
    and the same call in Python."""
    lua_use, py_use = _USE[e.ret]
    args = _sample_args(e)
    lua_call = f"{member(e, 'lua')}({args})"
    py_call = f"{member(e, 'python')}({args})"
    lua = e.example.rstrip() if e.example.strip() else lua_use.format(call=lua_call, name=e.name)
    return [
        ("Lua", "lua", lua),
        ("Python", "python", py_use.format(call=py_call, name=e.name)),
    ]


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (one line, pipes escaped)."""
    return " ".join(text.split()).replace("|", "\\|")


@dataclass(frozen=True)
class DocParam:
    name: str
    type: str
    doc: str  # one table cell


@dataclass(frozen=True)
class DocFunction:
    ksr_name: str
    qualname: str
    name: str
    anchor: str
    module: str
    ret: str
    summary: str
    summary_cell: str
    description: str
    kamailio_name: str | None  # only when it differs from the KEMI name
    params: tuple[DocParam, ...]
    params_text: str
    returns: str
    signatures: tuple[tuple[str, str], ...]  # (language, signature)
    sr_kemi: str
    impl_kind: str
    impl: str
    loadmodule: str | None
    examples: tuple[tuple[str, str, str], ...]  # (tab title, highlight language, code)
    spec_file: str


@dataclass(frozen=True)
class DocModParam:
    module: str
    name: str
    type: str
    default: str  # as the table shows it
    doc: str
    multi: bool
    example: str  # the modparam line


def function_view(e: Export) -> DocFunction:
    return DocFunction(
        ksr_name=e.ksr_name,
        qualname=e.qualname,
        name=e.name,
        anchor=anchor(e),
        module=e.module,
        ret=e.ret,
        summary=e.summary.strip(),
        summary_cell=_cell(e.summary),
        description=e.description.strip(),
        kamailio_name=e.kamailio_name if e.kamailio_name not in (None, e.name) else None,
        params=tuple(DocParam(p.name, p.type, _cell(p.doc)) for p in e.params),
        params_text=", ".join(f"{p.type} {p.name}" for p in e.params) or "-",
        returns=RETURNS[e.ret],
        signatures=tuple((lang, _cell(text)) for lang, text in signatures(e)),
        sr_kemi=sr_kemi_row(e),
        impl_kind=e.impl_kind,
        impl=e.impl,
        loadmodule=loadmodule_line(e.module),
        examples=tuple(examples(e)),
        spec_file=e.spec_file,
    )


def modparam_view(m: Module, p: ModParam) -> DocModParam:
    if p.default is None:
        default = "-"
        value = '"..."' if p.type == "str" else "0"
    elif p.type == "str":
        default = f'`"{p.default}"`'
        value = f'"{p.default}"'
    else:
        default = f"`{p.default}`"
        value = str(p.default)
    return DocModParam(
        module=m.name,
        name=p.name,
        type=p.type,
        default=default,
        doc=_cell(p.doc),
        multi=p.multi,
        example=f'modparam("{m.name}", "{p.name}", {value})',
    )


def emit(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    out = {}
    tpl = env.get_template("docs/module.md.j2")
    for m in spec.modules:
        rel = f"docs/{m.name}.md"
        out[rel] = tpl.render(
            banner_text=f"Generated by pykemi.codegen from {m.spec_file}. Do not edit.",
            module=m,
            loadmodule=loadmodule_line(m.name),
            submodules=[
                {
                    "name": s,
                    "ksr": TARGETS["lua"].ksr_submodule(s),
                    "ruby": TARGETS["ruby"].ksr_submodule(s),
                }
                for s in m.submodules
            ],
            params=[modparam_view(m, p) for p in m.params],
            functions=[function_view(e) for e in m.exports],
        )
    functions = [function_view(e) for e in sorted(spec.exports, key=lambda e: e.ksr_name.lower())]
    out["docs/index.md"] = env.get_template("docs/index.md.j2").render(
        banner_text="Generated by pykemi.codegen from spec/*.yaml. Do not edit.",
        spec_hash=spec.hash,
        count=len(spec.exports),
        modules=[
            {
                "name": m.name,
                "count": len(m.exports),
                "summary": _cell(m.summary),
                "loadmodule": loadmodule_line(m.name),
                "submodules": ", ".join(f"`KSR.{s}`" if s else "`KSR`" for s in m.submodules),
            }
            for m in spec.modules
        ],
        functions=functions,
    )
    # module parameters of every module; "modparams/index.md" keeps the page's stem
    # "index" (one page built from every spec, like docs/index.md)
    out["docs/modparams/index.md"] = env.get_template("docs/modparams.md.j2").render(
        banner_text="Generated by pykemi.codegen from spec/*.yaml. Do not edit.",
        modules=[
            {
                "name": m.name,
                "summary": _cell(m.summary),
                "loadmodule": loadmodule_line(m.name),
                "params": [modparam_view(m, p) for p in m.params],
            }
            for m in spec.modules
        ],
    )
    if any(m.name == CORE_MODULE for m in spec.modules):  # the built-in set, not an extension
        out["docs/coverage/index.md"] = coverage_page(spec, env)
    return out


# -- coverage: what pykemi has of Kamailio 5.6 ----------------------------------------------


@dataclass(frozen=True)
class Coverage:
    """One module's row and section of the coverage page."""

    name: str
    status: str  # what loading it does in pykemi
    implemented: tuple[str, ...]  # KSR names pykemi has, as Kamailio 5.6
    partial: tuple[tuple[str, str], ...]  # (KSR name, what is missing)
    missing: tuple[str, ...]  # Kamailio 5.6 exports pykemi lacks
    extra: tuple[str, ...]  # pykemi's exports Kamailio 5.6 does not have
    kamailio: int  # Kamailio 5.6's export count
    params: tuple[tuple[str, str, str], ...]  # (name, works/partial/none, note)

    @property
    def anchor(self) -> str:
        return self.name.replace("_", "-")

    def params_of(self, kind: str) -> tuple[tuple[str, str], ...]:
        return tuple((n, note) for n, k, note in self.params if k == kind)


def _params(params: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str, str], ...]:
    """(name, effect) -> (name, works/partial/none, note), sorted by name."""
    return tuple(sorted((n, effect_kind(e), _cell(effect_note(e))) for n, e in params))


def module_coverage(m: Module, kamailio: tuple[str, ...]) -> Coverage:
    ours = {e.qualname: e for e in m.exports}
    partial = tuple(
        (f"KSR.{q}", _cell(ours[q].description))
        for q in sorted(ours)
        if NOT_IMPLEMENTED in ours[q].description
    )
    done = {name for name, _ in partial}
    return Coverage(
        name=m.name,
        status="built in" if m.name == CORE_MODULE else f'`loadmodule "{m.name}.so"`',
        implemented=tuple(f"KSR.{q}" for q in sorted(ours) if f"KSR.{q}" not in done),
        partial=partial,
        missing=tuple(f"KSR.{q}" for q in sorted(set(kamailio) - set(ours))),
        extra=tuple(f"KSR.{q}" for q in sorted(set(ours) - set(kamailio))),
        kamailio=len(kamailio),
        params=_params(tuple((p.name, p.effect) for p in m.params)),
    )


def absent_coverage(name: str, why: str, kamailio: tuple[str, ...]) -> Coverage:
    return Coverage(
        name=name,
        status=why,
        implemented=(),
        partial=(),
        missing=tuple(f"KSR.{q}" for q in kamailio),
        extra=(),
        kamailio=len(kamailio),
        params=(),
    )


def coverage_page(spec: Spec, env: jinja2.Environment) -> str:
    """generated/docs/coverage/index.md: per module, which exports and parameters pykemi
    implements, partly (and how) or not, against Kamailio 5.6 (pykemi.kemi.reference); the
    modules the runtime accepts without effect (runtime/absent.py) and the core parameters
    (runtime/config/globals.py)."""
    kamailio = kamailio_exports()
    ours = {m.name: m for m in spec.modules}
    modules = [module_coverage(m, kamailio.get(m.name, ())) for m in spec.modules]
    accepted = [
        absent_coverage(
            n,
            f"accepted, no effect ({a.why})" if not a.built_in else a.why,
            kamailio.get(n, ()),
        )
        for n, a in sorted(ABSENT.items())
        if n not in ours
    ]
    others = [
        (n, len(kamailio[n]))
        for n in sorted(kamailio)
        if n not in ours and n not in ABSENT and not n.startswith("app_")
    ]
    core = _params(tuple((g.name, g.effect) for g in KNOWN_GLOBALS.values()))
    return env.get_template("docs/coverage.md.j2").render(
        banner_text="Generated by pykemi.codegen from spec/*.yaml. Do not edit.",
        version=KAMAILIO_VERSION,
        modules=modules,
        accepted=accepted,
        others=others,
        core={k: [(n, note) for n, kind, note in core if kind == k] for k in EFFECTS},
    )
