"""Out-of-tree modules at generate time: validate a module package's spec, alone and against
the built-in modules, and render its bindings with the same emitters as generated/.

The router never runs this: ``kemi generate`` (pykemi/cli.py) writes the rendered tree into
the module's cache (``pykemi.runtime.extensions.store``), and the router only loads it.
The built-in modules are read back from generated/api.json (pykemi.kemi's model, present in
every install) rather than from spec/, which a wheel does not ship.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..kemi import model as kemi_model
from ..kemi.errors import SpecError, SpecErrors
from ..kemi.model import Spec
from .generate import ROOT, render_all
from .render import environment
from .spec import load_spec
from .targets import TARGETS
from .targets.c import emit_exports

HERE = Path(__file__).resolve().parent
# what renders a module: the generator and the model it renders
GENERATOR_SOURCES = (HERE, Path(kemi_model.__file__).resolve().parent)
BUILTIN_API = ROOT / "generated" / "api.json"

# Files every spec set generates that only make sense once, for the built-in tree: the
# runtime takes them from generated/ (an extension's copy would shadow or contradict them).
BUILTIN_ONLY = frozenset(
    {
        "__init__.py",
        "python/KSR/__init__.py",
        "python/KSR/__init__.pyi",
        "python/KSR/x.py",
        "python/KSR/x.pyi",
        "python/KSR/py.typed",
        "lua/_kemi_prelude.lua",
    }
)


@dataclass(frozen=True)
class Builtins:
    """What the built-in modules already take: module names and ``KSR.*`` members."""

    modules: frozenset[str]
    exports: Mapping[str, str]  # qualname ("sl.send_reply", "info") -> module
    core_functions: frozenset[str]  # KSR.<name> functions of sub-module ""
    submodules: frozenset[str]


def builtins(api_json: Path = BUILTIN_API) -> Builtins:
    """The built-in modules of this pykemi, from its generated/api.json."""
    try:
        spec, _ = Spec.load(api_json)
    except (OSError, ValueError) as exc:  # ApiDocumentError is a ValueError
        raise SpecError(str(api_json), 1, "", f"cannot read the built-in API: {exc}") from exc
    return Builtins(
        modules=frozenset(m.name for m in spec.modules),
        exports={e.qualname: e.module for e in spec.exports},
        core_functions=frozenset(e.name for e in spec.exports if not e.submodule),
        submodules=frozenset(e.submodule for e in spec.exports if e.submodule),
    )


def load(
    name: str, spec_files: Sequence[Path], has_c_sources: bool, known: Builtins | None = None
) -> Spec:
    """The module's Spec, validated alone and against the built-in modules (SpecErrors)."""
    spec = load_spec(list(spec_files))
    known = known or builtins()
    errors: list[SpecError] = []
    if name not in [m.name for m in spec.modules]:
        errors.append(SpecError(str(spec_files[0]), 1, "module", f"no spec declares '{name}'"))
    for m in spec.modules:
        if m.name in known.modules:
            errors.append(SpecError(m.spec_file, 1, "module", f"'{m.name}' is a built-in module"))
        for e in m.exports:
            where = f"exports[{e.module_index}]"
            if e.qualname in known.exports:
                errors.append(
                    SpecError(
                        e.spec_file, e.line, where + ".name",
                        f"KSR.{e.qualname} is already exported by built-in module "
                        f"'{known.exports[e.qualname]}'",
                    )
                )  # fmt: skip
            if not e.submodule or e.submodule in known.core_functions:
                errors.append(
                    SpecError(
                        e.spec_file, e.submodule_line or e.line, where + ".submodule",
                        f"sub-module '{e.submodule}' is reserved for the core (KSR."
                        f"{e.submodule or e.name}); use the module's own name",
                    )
                )  # fmt: skip
            if e.impl_kind == "c" and not has_c_sources:
                errors.append(
                    SpecError(
                        e.spec_file, e.line, where + ".impl",
                        "a C implementation, but module_info() declares no 'c_sources'",
                    )
                )  # fmt: skip
    if errors:
        raise SpecErrors(errors)
    return spec


def render(spec: Spec, meta: Mapping[str, Any]) -> dict[str, str]:
    """The module's generated tree: every target minus the built-in-only files, the C target
    reduced to the module's sr_kemi_t table (header and trampolines are the runtime's), and
    ``meta`` recorded in api.json under "extension" with the generator's fingerprint (the
    router compares the recorded spec sources with the installed ones)."""
    env = environment()
    files = render_all(spec, [t for t in TARGETS if t != "c"])
    files = {k: v for k, v in files.items() if k not in BUILTIN_ONLY}
    files["c/kemi_exports.c"] = emit_exports(spec, env, "c/kemi_exports.c")
    doc = json.loads(files["api.json"])
    doc["extension"] = {**meta, "generator": fingerprint()}
    files["api.json"] = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    return files


@lru_cache(maxsize=1)
def fingerprint() -> str:
    """Hash of the generator (model, emitters, templates), recorded in every module tree:
    ``kemi generate --check`` shows a tree another generator made as a diff."""
    h = hashlib.sha256()
    for root in GENERATOR_SOURCES:
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.suffix in (".py", ".j2"):
                h.update(f"{root.name}/{p.relative_to(root).as_posix()}".encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:16]
