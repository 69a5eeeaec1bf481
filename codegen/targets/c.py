"""C target: the ABI header, sr_kemi_t tables, the slot table and the trampolines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2

from ...kemi.contract import MAX_PARAMS, SR_KEMIP
from ...kemi.model import Export, Spec
from ...kemi.types import TYPES, all_signatures, signature_code
from ..render import banner

# SR_KEMIP_* as kemi.h defines them: "(0)", "(1 << 3)"
KEMIP = [(name, f"(1 << {v.bit_length() - 1})" if v else "(0)") for name, v in SR_KEMIP]


@dataclass(frozen=True)
class TrampolineArg:
    n: int  # 1-based position
    type: str  # spec type
    c_type: str  # as the C export takes it
    decl: str  # as the trampoline takes it
    pass_: str  # what the trampoline passes to the export


@dataclass(frozen=True)
class Trampoline:
    """``kemi_exec_<rcode>_<sig>``: calls the C export in a slot with one signature."""

    rcode: str  # "i" (int-like returns) or "x" (xval)
    sig: str
    c_ret: str
    bad: str  # returned for an empty slot
    args: tuple[TrampolineArg, ...]


def _arg(n: int, t: str) -> TrampolineArg:
    if t == "str":  # the trampoline takes (pointer, length) and passes a str *
        return TrampolineArg(n, t, TYPES[t].c_param, f"const char *s{n}, int l{n}", f"&p{n}")
    return TrampolineArg(n, t, TYPES[t].c_param, f"int i{n}", f"i{n}")


def trampolines() -> list[Trampoline]:
    """One per (return kind, parameter list): 2 x 127."""
    return [
        Trampoline(
            rcode=rcode,
            sig=signature_code(params),
            c_ret=TYPES[ret].c_ret,
            bad="&_kemi_xval_bad" if rcode == "x" else "-127",
            args=tuple(_arg(n, t) for n, t in enumerate(params, start=1)),
        )
        for rcode, ret in (("i", "int"), ("x", "xval"))
        for params in all_signatures()
    ]


def c_decl(e: Export) -> str:
    ret = TYPES[e.ret].c_ret
    params = "".join(", " + TYPES[p.type].c_param for p in e.params)
    return f"extern {ret} {e.impl}(sip_msg_t *{params})"


def _export_row(e: Export) -> dict[str, Any]:
    ptypes = [TYPES[p.type].sr_kemip for p in e.params]
    ptypes += ["SR_KEMIP_NONE"] * (MAX_PARAMS - len(ptypes))
    return {
        "submodule": e.submodule,
        "name": e.name,
        "rtype": TYPES[e.ret].sr_kemip,
        "func": f"(void *){e.impl}" if e.impl_kind == "c" else "NULL",
        "ptypes": ptypes,
    }


def emit_exports(spec: Spec, env: jinja2.Environment, path: str) -> str:
    """The sr_kemi_t tables of ``spec`` (also used for out-of-tree C modules)."""
    modules = [
        {"name": m.name, "exports": [_export_row(e) for e in m.exports]} for m in spec.modules
    ]
    decls = sorted({c_decl(e) for e in spec.exports if e.impl_kind == "c"})
    return env.get_template("c/kemi_exports.c.j2").render(
        banner=banner(path, sorted({m.spec_file for m in spec.modules})),
        spec_hash=spec.hash,
        modules=modules,
        c_decls=decls,
    )


def emit(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    sources = sorted({m.spec_file for m in spec.modules})
    ctx = {
        "spec_hash": spec.hash,
        "kemip": KEMIP,
        "max_params": MAX_PARAMS,
        "trampolines": trampolines(),
    }
    out = {}
    for name, tpl in (
        ("c/kemi.h", "c/kemi.h.j2"),
        ("c/kemi_cdef.h", "c/kemi_cdef.h.j2"),
        ("c/kemi_dispatch_cdef.h", "c/kemi_dispatch_cdef.h.j2"),
        ("c/kemi_dispatch.c", "c/kemi_dispatch.c.j2"),
    ):
        out[name] = env.get_template(tpl).render(banner=banner(name, sources), **ctx)
    out["c/kemi_exports.c"] = emit_exports(spec, env, "c/kemi_exports.c")
    return out


__all__ = ["Trampoline", "emit", "emit_exports", "trampolines"]
