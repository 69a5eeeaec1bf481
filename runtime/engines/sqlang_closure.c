/* app_sqlang's native closure ::_kemi_call, compiled once by sqlang.py with cffi
 * against the Squirrel C API that the squirrel-lang package's extension exports.
 *
 * SQInteger/SQFloat widths differ between Squirrel builds: sqlang.py defines KSQ_INT and
 * KSQ_FLOAT from the VM's _intsize_/_floatsize_ (the type tags below are the same in all
 * 3.x); the defaults here only serve editors.
 */
#ifndef KSQ_INT
#define KSQ_INT long long
#endif
#ifndef KSQ_FLOAT
#define KSQ_FLOAT double
#endif

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
