"""Python target: the ``KSR`` package (black-formatted) and its ``.pyi`` stubs."""

from __future__ import annotations

from dataclasses import dataclass

import black
import jinja2

from ...kemi.model import Export, Spec
from ...kemi.targets import TARGETS
from ...kemi.types import TYPES
from ..render import banner

PY = TARGETS["python"]


def _fmt(src: str, is_stub: bool = False) -> str:
    return black.format_str(src, mode=black.Mode(line_length=100, is_pyi=is_stub))


def _docstring(e: Export) -> str:
    lines = [e.summary or f"{e.ksr_name}."]
    if e.params:
        lines.append("")
        lines.extend(f"{p.name}: {p.doc}" if p.doc else p.name for p in e.params)
    lines.append("")
    lines.append(f"Returns {TYPES[e.ret].docs}. Module: {e.module}.")
    return "\n    ".join(lines).replace('"""', "'''").replace("\\", "\\\\")


@dataclass(frozen=True)
class PyParam:
    pyname: str  # escaped
    ann: str  # annotation
    type: str  # spec type


@dataclass(frozen=True)
class PyFunction:
    args: str  # "code, reason"
    unpack: str  # "code, reason," (tuple unpacking of the checked arguments)
    fast_check: str
    defparams: str  # parameters with annotations and the missing-argument default
    pyname: str
    ksr_name: str
    module: str
    module_index: int
    ret_ann: str
    docstring: str
    params: tuple[PyParam, ...]


def function_view(e: Export) -> PyFunction:
    names = [PY.escape(p.name) for p in e.params]
    return PyFunction(
        args=", ".join(names),
        unpack="".join(n + ", " for n in names).rstrip(" "),
        fast_check=PY.arg_check(names, e.param_types),
        defparams=", ".join(
            f"{n}: {PY.types[p.type]} = _kemi_M" for n, p in zip(names, e.params, strict=True)
        ),
        pyname=PY.escape(e.name),
        ksr_name=e.ksr_name,
        module=e.module,
        module_index=e.module_index,
        ret_ann=PY.types[e.ret],
        docstring=_docstring(e),
        params=tuple(PyParam(PY.escape(p.name), PY.types[p.type], p.type) for p in e.params),
    )


def emit(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    by_sub: dict[str, list[Export]] = {}
    for e in spec.exports:
        by_sub.setdefault(e.submodule, []).append(e)
    mod_tpl = env.get_template("python/module.py.j2")
    stub_tpl = env.get_template("python/stub.pyi.j2")
    out: dict[str, str] = {}
    subs = sorted(s for s in by_sub if s)
    for sub in ["", *subs]:
        exports = by_sub.get(sub, [])
        rel = "python/KSR/__init__.py" if sub == "" else f"python/KSR/{PY.escape(sub)}.py"
        sources = sorted({e.spec_file for e in exports}) or ["(core)"]
        doc = (
            "KSR: the KEMI API for Python routing scripts; core functions live here."
            if sub == ""
            else f"KSR.{sub}: functions exported by module {exports[0].module}."
        )
        view = {
            "doc": doc,
            "is_package": sub == "",
            "spec_hash": spec.hash,
            "bases": sorted({e.module for e in exports}),
            "functions": [function_view(e) for e in exports],
            "submodules": [PY.escape(s) for s in subs],
        }
        out[rel] = _fmt(mod_tpl.render(banner=banner(rel, sources), **view))
        stub_rel = rel[:-3] + ".pyi"
        out[stub_rel] = _fmt(stub_tpl.render(banner=banner(stub_rel, sources), **view), True)
    out["python/KSR/x.py"] = _fmt(
        env.get_template("python/x.py.j2").render(banner=banner("python/KSR/x.py", []))
    )
    out["python/KSR/x.pyi"] = _fmt(
        env.get_template("python/x.pyi.j2").render(banner=banner("python/KSR/x.pyi", [])), True
    )
    out["python/KSR/py.typed"] = ""
    return out
