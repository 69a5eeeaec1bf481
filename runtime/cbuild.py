"""Compile a C module (out of tree or a test module) against the KEMI C ABI.

The module's specs give its sr_kemi_t tables (emitted by the same codegen as
the built-in ones); its sources are compiled with ``kemi.h`` by cffi into an
extension whose exports the registry stores in the shared slot table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from cffi import FFI

from .core.fsperm import import_extension, private_dir
from .dispatch import GENERATED, Api

GEN_C = GENERATED / "c"


# what cffi's generated wrappers reference from the module's export-table source
TABLE_DECLS = """
typedef struct kemi_module_table { const char *module; sr_kemi_t *exports; } kemi_module_table_t;
extern kemi_module_table_t kemi_module_tables[];
extern const char kemi_spec_hash[];
void kemi_module_init(const ksr_host_api_t *host);
"""


def _cdef_text() -> str:
    text = (GEN_C / "kemi_cdef.h").read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


def api_of(spec_files: Sequence[Path]) -> tuple[Any, Api]:
    """Load specs with codegen and return (Spec, runtime Api)."""
    from pykemi.codegen.spec import load_spec

    spec = load_spec(list(spec_files))
    doc = {"spec_hash": spec.hash, **spec.to_dict()}
    return spec, Api(doc)


def build_c_module(
    name: str,
    spec_files: Sequence[Path],
    sources: Sequence[Path],
    out_dir: Path,
    extra_compile_args: Sequence[str] = ("-O2",),
) -> tuple[ModuleType, Api]:
    """Build (or reuse, when unchanged) extension ``name`` in ``out_dir`` (created 0700, or
    an existing one of this user's: fsperm); returns (module, Api)."""
    from pykemi.codegen.render import environment
    from pykemi.codegen.targets.c import emit_exports

    spec, api = api_of(spec_files)
    private_dir(out_dir)
    exports_c = out_dir / f"{name}_kemi_exports.c"
    text = emit_exports(spec, environment(), exports_c.name)
    if not exports_c.exists() or exports_c.read_text(encoding="utf-8") != text:
        exports_c.write_text(text, encoding="utf-8")
    ffi = FFI()
    ffi.cdef(_cdef_text())
    ffi.set_source(
        name,
        '#include "kemi.h"\n' + TABLE_DECLS,
        sources=[str(exports_c), *(str(s) for s in sources)],
        include_dirs=[str(GEN_C)],
        extra_compile_args=list(extra_compile_args),
    )
    lib_path = ffi.compile(tmpdir=str(out_dir), verbose=False)
    return _import(name, Path(lib_path)), api


def _import(name: str, path: Path) -> ModuleType:
    return import_extension(name, path)  # refuses a file another user could have planted
