"""Squirrel engine (app_sqlang, as in Kamailio 5.6) on the `squirrel-lang` package.

The package's own Python bindings (pybind11) cost 7-9us per call that returns
a value, map bool results to integers and leave the VM broken after a Python
exception crosses it. So the hot path does not use them: a small C native
closure, compiled once with cffi against the Squirrel C API that the package's
extension exports, converts arguments and results itself and turns Python
errors into Squirrel errors. The pybind11 layer is only used to create the VM,
compile and run scripts and call the route callbacks.

KSR is built from the generated shims (generated/sqlang/*.nut), run with
``::KSR``, ``::_kemi_call``, ``::_kemi_base``, ``::_kemi_check`` and
``::_kemi_sig`` in the root table.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from cffi import FFI

from ..core.context import CURRENT, MsgContext
from ..core.fsperm import import_extension, user_cache_dir
from ..dispatch import Invoker
from ..extensions import shim_path
from .base import (
    EXIT_MARKER,
    Engine,
    ScriptError,
    glue_source,
    log_exit,
    log_script_error,
    modf,
)

# the native closure ::_kemi_call (C, its cdef) and the Squirrel side of the KSR host
CLOSURE_C = glue_source("sqlang_closure.c")
CLOSURE_CDEF = glue_source("sqlang_closure.h")
PRELUDE = glue_source("sqlang_prelude.nut")

_ext: ModuleType | None = None


def _extension(int_size: int, float_size: int) -> ModuleType:
    """The native closure module: compiled once per source/ABI into the per-user cache."""
    global _ext
    if _ext is not None:
        return _ext
    import _squirrel  # the package's extension: it exports the Squirrel C API

    int_type = "long long" if int_size == 8 else "int"
    float_type = "double" if float_size == 8 else "float"
    source = f"#define KSQ_INT {int_type}\n#define KSQ_FLOAT {float_type}\n{CLOSURE_C}"
    digest = hashlib.sha1((source + CLOSURE_CDEF + sys.version).encode()).hexdigest()[:12]
    name = f"_pykemi_sqlang_{digest}"
    try:
        out = user_cache_dir("sqlang")
        path = out / f"{name}{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"
        if not path.exists():
            _compile(name, source, out, path)
        module = import_extension(name, path)
    except OSError as exc:  # UnsafePathError: a directory or file another user controls
        raise ScriptError(f"app_sqlang: cannot use the build cache: {exc}") from exc
    rc = module.lib.ksq_bind(str(_squirrel.__file__).encode())
    if rc != 0:
        raise ScriptError(f"app_sqlang: Squirrel C API not found in {_squirrel.__file__} ({rc})")
    _ext = module
    return module


def _compile(name: str, source: str, out: Path, path: Path) -> None:
    ffi = FFI()
    ffi.cdef(CLOSURE_CDEF)
    ffi.set_source(
        name,
        source,
        libraries=["dl"],
        # the closure uses the full CPython API (vectorcall, macros)
        define_macros=[("_CFFI_NO_LIMITED_API", None)],
        extra_compile_args=["-O2"],
        py_limited_api=False,
    )
    # build in a private folder, then rename: concurrent builders never see half a file
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        os.replace(ffi.compile(tmpdir=tmp, verbose=False), path)


class SqlangEngine(Engine):
    name = "sqlang"
    rpc_prefix = "app_sqlang"

    def load(self, script: Path) -> None:
        self.script = script
        self._name = str(self.params.get("load") or script)
        self._cache: dict[str, Any] = {}
        self._new_vm()
        self._run_file(script)

    def _new_vm(self) -> None:
        import squirrel

        vm = squirrel.SQVM()
        _keep(vm)
        self.vm = vm
        self._root = vm.get_roottable()
        ext = _extension(int(vm.execute("return _intsize_")), int(vm.execute("return _floatsize_")))
        view: list[Invoker] = self.registry.view("bytes")
        # host slots after the exports: KSR.x.drop and KSR.x.modf
        self._slots: list[Any] = [*view, self._drop, self._modf]
        drop_slot, modf_slot = len(view), len(view) + 1
        if ext.lib.ksq_install(vm.vm_addr(), b"_kemi_call", id(self._slots)) != 0:
            raise ScriptError("app_sqlang: cannot install _kemi_call")
        bases = ", ".join(f'["{m}"] = {self.registry.base(m)}' for m in self.registry.loaded())
        host = f"::_kemi_host <- {{drop = {drop_slot}, modf = {modf_slot}}};"
        self._execute(f"::_kemi_bases <- {{{bases}}};\n{host}", "kemi:bases")
        self._execute(PRELUDE, "kemi:prelude")
        for module in self.registry.loaded():
            shim = shim_path(module, "sqlang")  # generated/ or an out-of-tree module's tree
            try:
                src = shim.read_text(encoding="utf-8")
            except OSError as exc:
                raise ScriptError(f"missing Squirrel shim {shim}: run `kemi generate`") from exc
            self._execute(src, f"kemi:{module}")

    def _execute(self, source: str, name: str) -> None:
        """Compile (errors with file:line:column) and run a chunk at the root."""
        import squirrel

        with _CapturedStderr() as err:
            try:
                code = squirrel.compile(source, name)
            except Exception:  # noqa: BLE001 - the compiler's text is on stderr
                code = None
        if code is None:
            raise ScriptError(f"cannot compile Squirrel script {_compile_error(err.text, name)}")
        try:
            self.vm.execute_bytecode(code)
        except Exception as exc:
            raise ScriptError(f"error running Squirrel script {name}: {self._error(exc)}") from exc

    def _run_file(self, script: Path) -> None:
        try:
            source = script.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as exc:
            raise ScriptError(f"cannot read Squirrel script {script}: {exc.strerror}") from exc
        self._execute(source, self._name)

    def _error(self, exc: BaseException) -> str:
        frames = self._root["_kemi_trace"]
        text = str(exc)
        if frames is not None:
            self._root["_kemi_trace"] = None
            text += "".join(f"\n    at {f}" for f in frames)
        return text

    def _drop(self) -> None:
        if CURRENT.ctx is not None:
            CURRENT.ctx.drop = True

    def _modf(self, fname: bytes, *params: bytes) -> int:
        view = self.registry.view("bytes")
        return modf(self.registry, view, fname.decode("utf-8", "surrogateescape"), params)

    def _function(self, name: str) -> Any:
        fn = self._cache.get(name)
        if fn is None:
            try:
                fn = self._root[name]
            except Exception:  # noqa: BLE001 - the binding raises its own KeyError
                return None
            if type(fn).__name__ != "SQClosure":
                return None
            self._cache[name] = fn
        return fn

    def has(self, name: str) -> bool:
        return self._function(name) is not None

    def call(self, name: str, ctx: MsgContext, args: Sequence[Any]) -> int:
        fn = self._function(name)
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - script errors never kill the worker
            if str(exc) == EXIT_MARKER:
                log_exit("app_sqlang")
                return 1
            log_script_error("app_sqlang", f"error in {name}: {self._error(exc)}")
            return -1
        return 1

    def reload(self) -> None:
        # a fresh VM: re-running a Squirrel script fails on its own `const` declarations
        if self.script is None:
            return
        old = (self.vm, self._root, self._slots, self._cache)
        try:
            self._cache = {}
            self._new_vm()
            self._run_file(self.script)
        except ScriptError:
            self.vm, self._root, self._slots, self._cache = old
            raise
        del old


def _keep(vm: Any) -> None:
    """Never destroy a VM: the binding's destructor prints a line on stdout (also at exit)."""
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(vm))


def _compile_error(text: str, name: str) -> str:
    """The binding's compiler report ("desc:.. source:.. line:.. column:..") as file:line:col."""
    fields: dict[str, str] = {
        k: v.strip() for k, v in re.findall(r"^(desc|source|line|column):(.*)$", text, re.M)
    }
    if not fields:
        return f"{name}: {text.strip() or 'syntax error'}"
    where = f"{fields.get('source', name)}:{fields.get('line', '?')}:{fields.get('column', '?')}"
    return f"{where}: {fields.get('desc', 'syntax error')}"


class _CapturedStderr:
    """Collects what C code writes on fd 2 (the Squirrel compiler reports errors there)."""

    def __enter__(self) -> _CapturedStderr:
        sys.stderr.flush()
        self._tmp = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._tmp.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc: object) -> None:
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._tmp.seek(0)
        self.text = self._tmp.read().decode("utf-8", "replace")
        self._tmp.close()
