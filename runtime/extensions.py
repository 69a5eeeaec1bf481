"""Out-of-tree KEMI modules: installed distributions with a ``pykemi.modules`` entry point.

A module package declares, in its pyproject.toml::

    [project.entry-points."pykemi.modules"]
    hello = "pykemi_hello:module_info"

The entry point's name is the ``loadmodule`` name; the callable returns a dict
(or an object with these attributes)::

    {"specs": [Path(...)/"hello.yaml"],     # spec files (same format as spec/*.yaml)
     "c_sources": [Path(...)/"hello.c"],    # C implementations (optional)
     "python_package": "pykemi_hello",      # where the Python implementations live
     "include_dirs": [...]}                 # extra C include dirs (optional)

``kemi generate`` validates and renders a module's bindings (pykemi.codegen.extension) and
stores them here, in a per-module cache tree keyed by its spec files and the pykemi version
(``<cache>/modules/<name>/<key>/``), never in generated/ (that stays built-in only and
``kemi generate --check`` clean). The router only loads a stored tree: it never imports the
generator, and a module whose tree is missing or older than its spec files is a start-up
error naming the command to run. C sources are compiled once per content hash beside it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..kemi.targets import TARGETS
from . import cbuild, cdispatch
from .config.modparams import spec_defaults
from .core.fsperm import UnsafePathError, user_cache_dir
from .dispatch import GENERATED, Api, StartupError

if TYPE_CHECKING:
    from .core.context import MsgContext, ProcessState

GROUP = "pykemi.modules"
TREE_MARKER = "api.json"  # written last into a tree; a tree without it is incomplete


class ExtensionError(StartupError):
    """An installed module package is broken (bad module_info, not generated, C build)."""


@dataclass(frozen=True)
class ExtensionInfo:
    """What an entry point's ``module_info()`` declares, resolved to absolute paths."""

    name: str
    specs: tuple[Path, ...]
    c_sources: tuple[Path, ...] = ()
    python_package: str | None = None
    include_dirs: tuple[Path, ...] = ()
    distribution: str = ""  # "pykemi-hello-py 0.1.0", for messages
    entry_point: str = ""  # "pykemi_hello:module_info"

    @property
    def where(self) -> str:
        return f"module '{self.name}' ({self.distribution or self.entry_point})"


@dataclass
class Extension:
    """A module's stored tree, loaded (and its C code compiled)."""

    info: ExtensionInfo
    api: Api
    out_dir: Path  # the generated tree (api.json, lua/, python/KSR/, docs/, ...)
    c_library: Any = None  # CLibrary when the module has C sources


# -- discovery --------------------------------------------------------------------------


def entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed ``pykemi.modules`` entry points by module name (first one wins)."""
    out: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=GROUP):
        out.setdefault(ep.name, ep)
    return out


def _paths(value: Any, base: Path | None) -> tuple[Path, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, os.PathLike)):
        value = [value]
    out = []
    for v in value:
        p = Path(v)
        out.append((base / p if base is not None and not p.is_absolute() else p).resolve())
    return tuple(out)


def info_of(ep: importlib.metadata.EntryPoint) -> ExtensionInfo:
    """Call the entry point and check what it declares (clear errors naming the package)."""
    dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else ""
    where = f"module '{ep.name}' ({dist or ep.value})"
    try:
        target = ep.load()
        raw = target() if callable(target) else target
    except Exception as exc:
        raise ExtensionError(f"{where}: entry point {ep.value} failed: {exc!r}") from exc
    get = raw.get if isinstance(raw, Mapping) else lambda k, d=None: getattr(raw, k, d)
    name = str(get("name", ep.name))
    if name != ep.name:
        raise ExtensionError(
            f"{where}: module_info() names module '{name}' but the entry point is '{ep.name}'"
        )
    # relative paths are relative to the implementation package
    pkg = get("python_package")
    base = None
    if pkg:
        spec = importlib.util.find_spec(str(pkg))
        if spec is not None and spec.submodule_search_locations:
            base = Path(next(iter(spec.submodule_search_locations)))
    specs = _paths(get("specs"), base)
    if not specs:
        raise ExtensionError(f"{where}: module_info() declares no spec files ('specs')")
    info = ExtensionInfo(
        name=name,
        specs=specs,
        c_sources=_paths(get("c_sources"), base),
        python_package=str(pkg) if pkg else None,
        include_dirs=_paths(get("include_dirs"), base),
        distribution=dist,
        entry_point=ep.value,
    )
    missing = [p for p in (*info.specs, *info.c_sources) if not p.is_file()]
    if missing:
        raise ExtensionError(
            f"{where}: declared file(s) not found: {', '.join(map(str, missing))} "
            "(are they listed as package data?)"
        )
    return info


def find(name: str) -> ExtensionInfo | None:
    ep = entry_points().get(name)
    return None if ep is None else info_of(ep)


def selected(names: list[str] | None) -> list[ExtensionInfo]:
    """The installed modules ``names`` (all when empty); an unknown name is an error."""
    available = entry_points()
    wanted = names or sorted(available)
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise ExtensionError(
            f"no installed module package provides {', '.join(unknown)} "
            f"(installed: {', '.join(sorted(available)) or 'none'}; group '{GROUP}')"
        )
    return [info_of(available[n]) for n in wanted]


# -- the stored trees ---------------------------------------------------------------------


def sources_hash(info: ExtensionInfo) -> str:
    """Hash of the module's spec files (names and bytes): what its tree was generated from.
    Not their directory: the installed package and its checkout (a test run from the
    checkout imports that copy) are the same module."""
    h = hashlib.sha256()
    for p in info.specs:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def tree_meta(info: ExtensionInfo) -> dict[str, str]:
    """What ``kemi generate`` records in the tree's api.json ("extension") and load checks."""
    return {
        "module": info.name,
        "distribution": info.distribution,
        "entry_point": info.entry_point,
        "sources": sources_hash(info),
        "pykemi": __version__,
    }


def module_cache(info: ExtensionInfo, *parts: str) -> Path:
    """``<per-user cache>/modules/<name>/<parts>``: every level 0700 and ours (fsperm)."""
    try:
        return user_cache_dir("modules", info.name, *parts)
    except OSError as exc:  # UnsafePathError: a directory another user controls
        raise ExtensionError(f"{info.where}: cannot use the module cache: {exc}") from exc


def tree_dir(info: ExtensionInfo) -> Path:
    """The module's tree for its current spec files and this pykemi version."""
    key = hashlib.sha256(f"{sources_hash(info)}:{__version__}".encode()).hexdigest()[:16]
    return module_cache(info) / key


def store(info: ExtensionInfo, files: Mapping[str, str]) -> Path:
    """Write a rendered tree as the module's current one (replacing it), under a temporary
    name then renamed: readers never see half; the module's other trees are removed."""
    target = tree_dir(info)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / TREE_MARKER).is_file():
                raise  # not a concurrent writer that got there first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for d in target.parent.iterdir():  # older specs or pykemi versions
        if d.is_dir() and d != target and d.name != "build" and not d.name.startswith("."):
            shutil.rmtree(d, ignore_errors=True)
    return target


def read_tree(info: ExtensionInfo) -> Extension:
    """The module's stored tree; an error naming ``kemi generate`` when there is none for its
    current spec files (never generated, or generated from other specs or another pykemi)."""
    target = tree_dir(info)
    doc: dict[str, Any] = {}
    try:
        doc = json.loads((target / TREE_MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise ExtensionError(f"{info.where}: cannot read {target / TREE_MARKER}: {exc}") from exc
    recorded = doc.get("extension", {}).get("sources")
    if recorded != sources_hash(info):
        others = [d for d in target.parent.iterdir() if (d / TREE_MARKER).is_file()]
        state = (
            "its generated bindings are stale (its spec files or pykemi changed since)"
            if others or doc
            else "its bindings were not generated"
        )
        raise ExtensionError(f"{info.where}: {state}; run `kemi generate --extension {info.name}`")
    try:
        return Extension(info, Api(doc), target)
    except (KeyError, ValueError) as exc:
        raise ExtensionError(f"{info.where}: {target / TREE_MARKER} is invalid: {exc}") from exc


# -- C implementations --------------------------------------------------------------------


class _HostInitLib:
    """``lib`` of an extension whose ``kemi_module_init`` takes the built-in ffi's pointer.

    cdispatch.find_c_export passes the built-in extension's ``ksr_host_api_t *``; each
    cffi extension has its own ffi, so the address is re-cast for this one.
    """

    def __init__(self, module: ModuleType) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module.lib, name)

    def kemi_module_init(self, host: Any) -> None:
        address = int(cdispatch.extension().ffi.cast("uintptr_t", host))
        self._module.lib.kemi_module_init(self._module.ffi.cast("ksr_host_api_t *", address))


class CLibrary:
    """What Registry.c_libs holds for a compiled extension: ``ffi`` and ``lib``."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.ffi = module.ffi
        self.lib = _HostInitLib(module)


def _c_sources(ext: Extension) -> list[Path]:
    return [ext.out_dir / "c" / "kemi_exports.c", *ext.info.c_sources]


def c_library_path(ext: Extension) -> Path:
    """Where the module's compiled C code is cached: named after a hash of what it is built
    from (cbuild.content_key), in the module's private build dir."""
    key = cbuild.content_key(_c_sources(ext), ext.info.include_dirs)
    return module_cache(ext.info, "build") / cbuild.library_name(
        f"_pykemi_ext_{ext.info.name}_{key}"
    )


def compile_c(ext: Extension) -> Path:
    """Compile the module's C sources with its sr_kemi_t table, once per content hash."""
    info = ext.info
    lib_path = c_library_path(ext)
    if lib_path.exists():
        return lib_path
    includes = [*dict.fromkeys(s.parent for s in info.c_sources), *info.include_dirs]
    try:
        cbuild.compile_module(_stem(lib_path), _c_sources(ext), lib_path, include_dirs=includes)
    except cbuild.BuildError as exc:
        raise ExtensionError(
            f"{info.where}: compiling {', '.join(map(str, info.c_sources))} failed "
            f"(compiler output above): {exc}"
        ) from exc
    return lib_path


def build_c(ext: Extension) -> CLibrary:
    """The module's compiled C code (compiled first when needed), loaded and initialised."""
    lib_path = compile_c(ext)
    try:
        module = cbuild.load_module(_stem(lib_path), lib_path)
    except UnsafePathError as exc:
        raise ExtensionError(
            f"{ext.info.where}: refusing to load its compiled code: {exc}"
        ) from exc
    library = CLibrary(module)
    library.lib.kemi_module_init(cdispatch.extension().lib.kemi_host_api())
    return library


def _stem(lib_path: Path) -> str:
    return lib_path.name.split(".", 1)[0]


# -- the runtime's side -----------------------------------------------------------------------

# module name -> the loaded extension (one process loads a given module's code once)
LOADED: dict[str, Extension] = {}


def load(name: str) -> Extension | None:
    """The installed extension ``name``, ready for Registry.load_module; None if none is."""
    ext = LOADED.get(name)
    if ext is not None:
        return ext
    info = find(name)
    if info is None:
        return None
    ext = read_tree(info)
    if info.c_sources:
        ext.c_library = build_c(ext)
    LOADED[name] = ext
    return ext


def shim_path(module: str, lang: str) -> Path:
    """Where ``lang``'s shim of ``module`` is: generated/ for built-ins, else the extension's."""
    rel = TARGETS[lang].shim(module)  # Python's: the KSR folder, added to KSR.__path__
    ext = LOADED.get(module)
    return (ext.out_dir if ext is not None else GENERATED) / rel


def param(where: MsgContext | ProcessState, module: str, name: str) -> Any:
    """A module parameter of an extension: the configured value, else the spec default."""
    proc = getattr(where, "proc", where)
    values: dict[str, Any] = proc.extra.get("modparams." + module, {})
    if name in values:
        return values[name]
    ext = LOADED.get(module)
    if ext is not None:
        return spec_defaults(module, ext.api).get(name)
    raise KeyError(f"module '{module}' is not a loaded extension")
