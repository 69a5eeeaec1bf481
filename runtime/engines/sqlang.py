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

from ..core.context import CURRENT, MsgContext
from ..core.fsperm import import_extension, user_cache_dir
from ..dispatch import Invoker
from ..extensions import shim_path
from .base import EXIT_MARKER, Engine, ScriptError, log_exit, log_script_error, modf

_C_CDEF = """
int ksq_bind(const char *path);
int ksq_install(uintptr_t vm, const char *name, uintptr_t slots);
"""

# SQInteger/SQFloat widths differ between Squirrel builds: KSQ_INT/KSQ_FLOAT come
# from the VM's _intsize_/_floatsize_ (the type tags below are the same in all 3.x).
_C_SOURCE = r"""
#include <Python.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>

typedef KSQ_INT SQInteger;
typedef unsigned KSQ_INT SQUnsignedInteger;
typedef SQUnsignedInteger SQBool;
typedef KSQ_FLOAT SQFloat;
typedef SQInteger SQRESULT;
typedef char SQChar;
typedef void *HSQUIRRELVM;
typedef void *SQUserPointer;
typedef SQInteger (*SQFUNCTION)(HSQUIRRELVM);

#define RT_MASK 0x00FFFFFF
#define RT_NULL 0x1
#define RT_INTEGER 0x2
#define RT_FLOAT 0x4
#define RT_BOOL 0x8
#define RT_STRING 0x10
#define KSQ_MAXARGS 8

static SQInteger (*p_gettop)(HSQUIRRELVM);
static int (*p_gettype)(HSQUIRRELVM, SQInteger);
static SQRESULT (*p_getinteger)(HSQUIRRELVM, SQInteger, SQInteger *);
static SQRESULT (*p_getfloat)(HSQUIRRELVM, SQInteger, SQFloat *);
static SQRESULT (*p_getbool)(HSQUIRRELVM, SQInteger, SQBool *);
static SQRESULT (*p_getstringandsize)(HSQUIRRELVM, SQInteger, const SQChar **, SQInteger *);
static SQRESULT (*p_getuserpointer)(HSQUIRRELVM, SQInteger, SQUserPointer *);
static void (*p_pushinteger)(HSQUIRRELVM, SQInteger);
static void (*p_pushfloat)(HSQUIRRELVM, SQFloat);
static void (*p_pushbool)(HSQUIRRELVM, SQBool);
static void (*p_pushstring)(HSQUIRRELVM, const SQChar *, SQInteger);
static void (*p_pushuserpointer)(HSQUIRRELVM, SQUserPointer);
static void (*p_pushroottable)(HSQUIRRELVM);
static void (*p_newclosure)(HSQUIRRELVM, SQFUNCTION, SQUnsignedInteger);
static SQRESULT (*p_setnativeclosurename)(HSQUIRRELVM, SQInteger, const SQChar *);
static SQRESULT (*p_newslot)(HSQUIRRELVM, SQInteger, SQBool);
static void (*p_pop)(HSQUIRRELVM, SQInteger);
static SQRESULT (*p_throwerror)(HSQUIRRELVM, const SQChar *);

#define BIND(f) if (!(*(void **)(&p_##f) = dlsym(h, "sq_" #f))) return -1;

int ksq_bind(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (h == NULL) h = dlopen(path, RTLD_NOW);
    if (h == NULL) return -2;
    BIND(gettop) BIND(gettype) BIND(getinteger) BIND(getfloat) BIND(getbool)
    BIND(getstringandsize) BIND(getuserpointer) BIND(pushinteger) BIND(pushfloat)
    BIND(pushbool) BIND(pushstring) BIND(pushuserpointer) BIND(pushroottable)
    BIND(newclosure) BIND(setnativeclosurename) BIND(newslot) BIND(pop) BIND(throwerror)
    return 0;
}

static PyObject *ksq_arg(HSQUIRRELVM v, SQInteger idx)
{
    int t = p_gettype(v, idx) & RT_MASK;
    if (t == RT_STRING) {
        const SQChar *s; SQInteger n;
        p_getstringandsize(v, idx, &s, &n);
        return PyBytes_FromStringAndSize(s, n);
    }
    if (t == RT_INTEGER) {
        SQInteger i; p_getinteger(v, idx, &i);
        return PyLong_FromLongLong((long long)i);
    }
    if (t == RT_BOOL) {
        SQBool b; p_getbool(v, idx, &b);
        return PyBool_FromLong(b != 0);
    }
    if (t == RT_FLOAT) {
        SQFloat f; p_getfloat(v, idx, &f);
        return PyFloat_FromDouble((double)f);
    }
    Py_RETURN_NONE;
}

/* Push a Python result; 1 = a value was pushed, 0 = null, -1 = unsupported type. */
static int ksq_result(HSQUIRRELVM v, PyObject *r)
{
    if (r == Py_None) return 0;
    if (r == Py_True || r == Py_False) { p_pushbool(v, r == Py_True); return 1; }
    if (PyLong_CheckExact(r) || PyLong_Check(r)) {
        long long i = PyLong_AsLongLong(r);
        if (i == -1 && PyErr_Occurred()) return -1;
        p_pushinteger(v, (SQInteger)i);
        return 1;
    }
    if (PyBytes_Check(r)) {
        p_pushstring(v, PyBytes_AS_STRING(r), (SQInteger)PyBytes_GET_SIZE(r));
        return 1;
    }
    if (PyUnicode_Check(r)) {
        PyObject *b = PyUnicode_AsEncodedString(r, "utf-8", "surrogateescape");
        if (b == NULL) return -1;
        p_pushstring(v, PyBytes_AS_STRING(b), (SQInteger)PyBytes_GET_SIZE(b));
        Py_DECREF(b);
        return 1;
    }
    if (PyFloat_Check(r)) { p_pushfloat(v, (SQFloat)PyFloat_AS_DOUBLE(r)); return 1; }
    PyErr_Format(PyExc_TypeError, "unsupported KSR result type %s", Py_TYPE(r)->tp_name);
    return -1;
}

/* The pending Python error as "Type: message" (clears it). Never a NULL for "%s": a
 * message that UTF-8 cannot encode (lone surrogates) is backslash-escaped. */
static void ksq_error_text(char *buf, size_t size)
{
    PyObject *type, *value, *tb, *text = NULL, *bytes = NULL;
    PyErr_Fetch(&type, &value, &tb);
    if (value != NULL) text = PyObject_Str(value);
    if (text != NULL) bytes = PyUnicode_AsEncodedString(text, "utf-8", "backslashreplace");
    PyErr_Clear();
    snprintf(buf, size, "%s: %s",
             type != NULL ? ((PyTypeObject *)type)->tp_name : "error",
             bytes != NULL ? PyBytes_AS_STRING(bytes) : "?");
    Py_XDECREF(bytes); Py_XDECREF(text);
    Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb);
}

/* ::_kemi_call(slot, args...): stack = this, slot, args..., free variable (slot list). */
static SQInteger ksq_call(HSQUIRRELVM v)
{
    char msg[512];
    SQInteger top = p_gettop(v), slot;
    SQUserPointer up;
    PyObject *args[KSQ_MAXARGS], *res;
    Py_ssize_t n = (Py_ssize_t)(top - 3), got, i;
    int pushed;
    if (top < 3 || n > KSQ_MAXARGS || p_getuserpointer(v, top, &up) < 0
            || (p_gettype(v, 2) & RT_MASK) != RT_INTEGER)
        return p_throwerror(v, "_kemi_call: invalid call");
    p_getinteger(v, 2, &slot);
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *slots = (PyObject *)up;
    if (slot < 0 || slot >= PyList_GET_SIZE(slots)) {
        PyGILState_Release(gil);
        return p_throwerror(v, "_kemi_call: invalid slot");
    }
    for (got = 0; got < n; got++)
        if ((args[got] = ksq_arg(v, 3 + got)) == NULL) break; /* MemoryError */
    res = got == n ? PyObject_Vectorcall(PyList_GET_ITEM(slots, slot), args, n, NULL) : NULL;
    for (i = 0; i < got; i++) Py_DECREF(args[i]);
    pushed = res == NULL ? -1 : ksq_result(v, res);
    Py_XDECREF(res);
    if (pushed < 0) {
        /* a Python error becomes a Squirrel error the script can catch */
        ksq_error_text(msg, sizeof msg);
        PyGILState_Release(gil);
        return p_throwerror(v, msg);
    }
    PyGILState_Release(gil);
    return pushed;
}

int ksq_install(uintptr_t vm, const char *name, uintptr_t slots)
{
    HSQUIRRELVM v = (HSQUIRRELVM)vm;
    p_pushroottable(v);
    p_pushstring(v, name, -1);
    p_pushuserpointer(v, (SQUserPointer)slots);
    p_newclosure(v, ksq_call, 1);
    p_setnativeclosurename(v, -1, name);
    if (p_newslot(v, -3, 0) < 0) { p_pop(v, 1); return -1; }
    p_pop(v, 1);
    return 0;
}
"""

# The Squirrel side of the KSR host; {drop} and {modf} are the host slots after the exports.
_PRELUDE = r"""
::KSR <- {};
::_kemi_sigs <- {};
::_kemi_trace <- null;
::_kemi_numre <- regexp(@"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$");

::_kemi_sig <- function(slot, name, text, letters) {
    ::_kemi_sigs[slot] <- [name, text, letters];
}

::_kemi_base <- function(module) {
    return ::_kemi_bases[module];
}

::_kemi_check <- function(slot, args) {
    local s = ::_kemi_sigs[slot];
    local letters = s[2];
    local out = [];
    for (local i = 0; i < letters.len(); i++) {
        local v = i < args.len() ? args[i] : null;
        local t = typeof v;
        if (letters[i] == 's') {
            if (t == "integer" || t == "float") {
                v = v.tostring();
            } else if (t != "string") {
                throw s[0] + "(" + s[1] + "): argument #" + (i + 1) + " expects str, got " + t;
            }
        } else {
            if (t == "string") {
                if (!::_kemi_numre.match(v)) {
                    throw s[0] + "(" + s[1] + "): argument #" + (i + 1)
                        + " expects int, got string '" + v + "'";
                }
                v = v.tofloat();
                t = "float";
            }
            if (t == "float") {
                v = v.tointeger();  // truncates toward zero
            } else if (t != "integer") {
                throw s[0] + "(" + s[1] + "): argument #" + (i + 1) + " expects int, got " + t;
            }
        }
        out.append(v);
    }
    return out;
}

::KSR.x <- {
    exit = function() {
        throw "~~ksr~exit~~";
    },
    drop = function() {
        ::_kemi_call({drop});
        throw "~~ksr~exit~~";
    },
    modf = function(fname, ...) {
        local a = [this, {modf}, fname.tostring()];
        foreach (v in vargv) a.append(v.tostring());
        return ::_kemi_call.acall(a);
    }
};

// keeps the script frames of an uncaught error (the stack is gone when Python sees it)
seterrorhandler(function(e) {
    if (e == "~~ksr~exit~~") return;
    local frames = [];
    for (local level = 2; ; level++) {
        local info = getstackinfos(level);
        if (info == null) break;
        if (info.src.len() < 5 || info.src.slice(0, 5) != "kemi:") {
            frames.append(info.func + " (" + info.src + ":" + info.line + ")");
        }
    }
    ::_kemi_trace = frames;
});
"""

_ext: ModuleType | None = None


def _extension(int_size: int, float_size: int) -> ModuleType:
    """The native closure module: compiled once per source/ABI into the per-user cache."""
    global _ext
    if _ext is not None:
        return _ext
    import _squirrel  # the package's extension: it exports the Squirrel C API

    int_type = "long long" if int_size == 8 else "int"
    float_type = "double" if float_size == 8 else "float"
    source = _C_SOURCE.replace("KSQ_INT", int_type).replace("KSQ_FLOAT", float_type)
    digest = hashlib.sha1((source + sys.version).encode()).hexdigest()[:12]
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
    from cffi import FFI

    ffi = FFI()
    ffi.cdef(_C_CDEF)
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
        self._execute(f"::_kemi_bases <- {{{bases}}};", "kemi:bases")
        prelude = _PRELUDE.replace("{drop}", str(drop_slot)).replace("{modf}", str(modf_slot))
        self._execute(prelude, "kemi:prelude")
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
    import ctypes

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
