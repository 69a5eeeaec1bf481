/* pykemi app_ruby glue: libruby embedded in the Python process (see ruby_build.py).
 *
 * Exchange types only: this header is included by the cffi module source and by
 * ruby_glue.c; the cdef in ruby_build.py declares the same functions. Ruby VALUEs
 * cross into Python as uintptr_t (VALUE is an unsigned long on every Linux ABI).
 */
#ifndef PYKEMI_RUBY_GLUE_H
#define PYKEMI_RUBY_GLUE_H

#include <stdint.h>

#define PK_MAX_PARAMS 6

/* kind of one argument crossing Ruby -> Python */
enum pk_kind {
	PK_INT = 0,   /* i */
	PK_STR = 1,   /* s, i = length */
	PK_TRUE = 2,
	PK_FALSE = 3,
	PK_NIL = 4,
	PK_FLOAT = 5, /* d */
	PK_OTHER = 6  /* s = class name (NUL terminated), i = length */
};

/* error kinds set by Python before it returns PK_QUNDEF */
enum pk_err {
	PK_ERR_RUNTIME = 0,
	PK_ERR_TYPE = 1,
	PK_ERR_ARGUMENT = 2,
	PK_ERR_LOAD = 3
};

/* A string result travels in pk_retbuf, the VALUE returned by Python being this tag
 * with the length: even (no Fixnum), bit 63 set (no heap pointer, no special const). */
#define PK_RETBUF_SIZE 65536
#define PK_STR_TAG ((uintptr_t)1 << 63)
#define PK_IS_STR_TAG(r) (((r) & PK_STR_TAG) && !((r) & 1))
#define PK_STR_TAG_LEN(r) ((long)(((r) & ~PK_STR_TAG) >> 1))
extern char pk_retbuf[PK_RETBUF_SIZE];

typedef struct pk_arg {
	int kind;
	long long i;
	double d;
	const char *s;
} pk_arg;

/* Python side (extern "Python+C" in the cdef) */
/* KSR calls by arity, with plain integers only (no pointers for Python to wrap): o == 0
 * means an int argument v, else a string of length v copied to pk_argbuf[o - 1]. Longer
 * strings and more arguments take pk_py_calln. */
#define PK_ARGBUF_SIZE 65536
extern char pk_argbuf[PK_ARGBUF_SIZE];
uintptr_t pk_py_call0(int slot);
uintptr_t pk_py_call1(int slot, long long o0, long long v0);
uintptr_t pk_py_call2(int slot, long long o0, long long v0, long long o1, long long v1);
uintptr_t pk_py_call3(int slot, long long o0, long long v0, long long o1, long long v1,
		long long o2, long long v2);
uintptr_t pk_py_calln(int slot, int argc, pk_arg *argv);
int pk_py_check(int slot, int argc, pk_arg *argv, pk_arg *out);
int pk_py_base(const char *module, long len);
void pk_py_drop(void);
int pk_py_modf(int argc, pk_arg *argv);

/* in the cffi module source (it includes Python.h): see ruby_build.py */
int pk_gil_ensure(void);
void pk_gil_release(int state);

/* C side, called from Python */
int pk_init(void);
int pk_setup(void);
int pk_load(const char *path);
int pk_eval(const char *src);
int pk_has(const char *name);
int pk_call(const char *name, int argc, const char **argv, const long *lens);
const char *pk_error(void);
void pk_set_error(int kind, const char *msg, long len);
uintptr_t pk_str(const char *s, long len);
uintptr_t pk_int(long long v);
uintptr_t pk_qnil(void);
uintptr_t pk_qtrue(void);
uintptr_t pk_qfalse(void);
uintptr_t pk_qundef(void);

#endif
