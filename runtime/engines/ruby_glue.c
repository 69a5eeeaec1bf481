/* pykemi app_ruby glue: one embedded Ruby VM per process, KSR's C methods, and
 * protected entry points for Python (runtime/engines/ruby.py).
 *
 * Hand-written on purpose: nothing here depends on the spec. The per-module KSR
 * functions are the generated Ruby shims (generated/ruby/<module>.rb); they all
 * funnel into KSR._kemi_call(slot, *args), which crosses into Python through the
 * cffi callbacks pk_py_call<arity> (extern "Python+C") and indexes the slot table there.
 * Strings cross in shared buffers (pk_argbuf, pk_retbuf): cheaper for Python than
 * wrapping pointers, and it never calls back into C for a result.
 *
 * Python callbacks never raise through Ruby frames: on failure they store a
 * message with pk_set_error() and return Qundef (or -1); the C method then raises
 * the Ruby exception itself, after the Python frame is gone.
 */
#include <ruby.h>
#include <ruby/encoding.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ruby_glue.h"

char pk_retbuf[PK_RETBUF_SIZE];
char pk_argbuf[PK_ARGBUF_SIZE];

static int pk_initialized;
static VALUE pk_top_self = Qnil;
static VALUE pk_baseline = Qnil; /* Object methods before any script: kept across resets */

static char *pk_errtext; /* last error of pk_load/pk_eval/pk_call, for Python */
static long pk_errcap;

static int pk_pend_kind; /* error set by a Python callback, raised by C */
static char *pk_pend;
static long pk_pend_len, pk_pend_cap;

/* Copy s[0:len] into *buf (grown as needed), NUL-terminated; returns the length stored,
 * which is 0 (an empty text, never a stale one) when the buffer cannot grow. */
static long set_text(char **buf, long *cap, const char *s, long len)
{
	if (s == NULL || len < 0)
		len = 0;
	if (len + 1 > *cap) {
		char *n = realloc(*buf, (size_t)len + 1);
		if (n == NULL) {
			if (*buf != NULL)
				(*buf)[0] = '\0';
			return 0;
		}
		*buf = n;
		*cap = len + 1;
	}
	if (len > 0)
		memcpy(*buf, s, (size_t)len);
	(*buf)[len] = '\0';
	return len;
}

static void set_errtext(const char *s, long len)
{
	set_text(&pk_errtext, &pk_errcap, s, len);
}

const char *pk_error(void)
{
	return pk_errtext ? pk_errtext : "";
}

void pk_set_error(int kind, const char *msg, long len)
{
	pk_pend_kind = kind;
	/* the stored length: raise_pending() never reads past what was copied */
	pk_pend_len = set_text(&pk_pend, &pk_pend_cap, msg, len);
}

static void raise_pending(void)
{
	VALUE cls;
	switch (pk_pend_kind) {
	case PK_ERR_TYPE: cls = rb_eTypeError; break;
	case PK_ERR_ARGUMENT: cls = rb_eArgError; break;
	case PK_ERR_LOAD: cls = rb_eLoadError; break;
	default: cls = rb_eRuntimeError; break;
	}
	rb_exc_raise(rb_exc_new_str(cls, rb_utf8_str_new(pk_pend ? pk_pend : "", pk_pend_len)));
}

/* -- values for Python -------------------------------------------------------------------- */

uintptr_t pk_str(const char *s, long len)
{
	return (uintptr_t)rb_utf8_str_new(s, len);
}

uintptr_t pk_int(long long v)
{
	return (uintptr_t)LL2NUM(v);
}

uintptr_t pk_qnil(void) { return (uintptr_t)Qnil; }
uintptr_t pk_qtrue(void) { return (uintptr_t)Qtrue; }
uintptr_t pk_qfalse(void) { return (uintptr_t)Qfalse; }
uintptr_t pk_qundef(void) { return (uintptr_t)Qundef; }

/* -- KSR's C methods ---------------------------------------------------------------------- */

/* rb_obj_classname() without its NULL case: safe for "%s" and for Python to unpack */
static const char *class_name(VALUE v)
{
	const char *name = rb_obj_classname(v);
	return name != NULL ? name : "Object";
}

/* Hot path: the shims already checked the types, so only Integer and String arrive.
 * An int has s == NULL. */
static void to_arg(VALUE v, pk_arg *a)
{
	if (FIXNUM_P(v)) {
		a->kind = PK_INT;
		a->s = NULL;
		a->i = FIX2LONG(v);
	} else if (RB_TYPE_P(v, T_STRING)) {
		a->kind = PK_STR;
		a->s = RSTRING_PTR(v);
		a->i = RSTRING_LEN(v);
	} else if (RB_TYPE_P(v, T_BIGNUM)) {
		a->kind = PK_INT;
		a->s = NULL;
		a->i = NUM2LL(v); /* RangeError beyond 64 bits */
	} else {
		rb_raise(rb_eTypeError, "KSR._kemi_call: expected Integer or String, got %s",
				class_name(v));
	}
}

/* KSR._kemi_call(slot, *args) */
static VALUE ksr_kemi_call(int argc, VALUE *argv, VALUE self)
{
	pk_arg args[PK_MAX_PARAMS];
	long long o[3] = {0, 0, 0};
	long pos = 0;
	int i, slot, n = argc - 1;
	VALUE r;

	if (argc < 1 || n > PK_MAX_PARAMS)
		rb_raise(rb_eArgError, "KSR._kemi_call(slot, *args): %d arguments", argc);
	for (i = 0; i < n; i++)
		to_arg(argv[i + 1], &args[i]);
	slot = NUM2INT(argv[0]);
	for (i = 0; i < n && n <= 3; i++) {
		if (args[i].kind != PK_STR)
			continue;
		if (args[i].i > PK_ARGBUF_SIZE - pos) {
			n = PK_MAX_PARAMS + 1; /* too long for pk_argbuf: pk_py_calln */
			break;
		}
		memcpy(pk_argbuf + pos, args[i].s, (size_t)args[i].i);
		o[i] = pos + 1;
		pos += (long)args[i].i;
	}
	switch (n) {
	case 0: r = (VALUE)pk_py_call0(slot); break;
	case 1: r = (VALUE)pk_py_call1(slot, o[0], args[0].i); break;
	case 2: r = (VALUE)pk_py_call2(slot, o[0], args[0].i, o[1], args[1].i); break;
	case 3:
		r = (VALUE)pk_py_call3(slot, o[0], args[0].i, o[1], args[1].i, o[2], args[2].i);
		break;
	default: r = (VALUE)pk_py_calln(slot, argc - 1, args); break;
	}
	if (PK_IS_STR_TAG(r))
		return rb_utf8_str_new(pk_retbuf, PK_STR_TAG_LEN(r));
	if (r == Qundef)
		raise_pending();
	return r;
}

/* Any value, for the slow paths (checks, modf): the class name says what it was. */
static void describe_arg(VALUE v, pk_arg *a)
{
	memset(a, 0, sizeof(*a));
	if (RB_INTEGER_TYPE_P(v) && (FIXNUM_P(v) || rb_absint_size(v, NULL) <= 8)) {
		a->kind = PK_INT;
		a->i = NUM2LL(v);
	} else if (RB_TYPE_P(v, T_STRING)) {
		a->kind = PK_STR;
		a->s = RSTRING_PTR(v);
		a->i = RSTRING_LEN(v);
	} else if (v == Qtrue) {
		a->kind = PK_TRUE;
	} else if (v == Qfalse) {
		a->kind = PK_FALSE;
	} else if (NIL_P(v)) {
		a->kind = PK_NIL;
	} else if (RB_FLOAT_TYPE_P(v)) {
		a->kind = PK_FLOAT;
		a->d = RFLOAT_VALUE(v);
	} else {
		a->kind = PK_OTHER;
		a->s = class_name(v);
		a->i = (long long)strlen(a->s);
	}
}

static VALUE arg_value(const pk_arg *a)
{
	return a->kind == PK_STR ? rb_utf8_str_new(a->s, (long)a->i) : LL2NUM(a->i);
}

/* KSR._kemi_coerce(slot, args) -> args coerced to the export's signature (Array),
 * or TypeError naming the function and its signature (table kept in Python). */
static VALUE ksr_kemi_coerce(VALUE self, VALUE slot, VALUE args)
{
	pk_arg in[PK_MAX_PARAMS], out[PK_MAX_PARAMS];
	long i, n;
	int got;
	VALUE res;

	Check_Type(args, T_ARRAY);
	n = RARRAY_LEN(args);
	if (n > PK_MAX_PARAMS)
		rb_raise(rb_eArgError, "KSR._kemi_check: too many arguments (%ld)", n);
	for (i = 0; i < n; i++)
		describe_arg(RARRAY_AREF(args, i), &in[i]);
	got = pk_py_check(NUM2INT(slot), (int)n, in, out);
	if (got < 0)
		raise_pending();
	res = rb_ary_new_capa(got);
	for (i = 0; i < got; i++)
		rb_ary_push(res, arg_value(&out[i]));
	return res;
}

/* KSR._kemi_base(module) -> first slot of a loaded module */
static VALUE ksr_kemi_base(VALUE self, VALUE module)
{
	int base;

	StringValue(module);
	base = pk_py_base(RSTRING_PTR(module), RSTRING_LEN(module));
	if (base < 0)
		raise_pending();
	return INT2NUM(base);
}

/* KSR._kemi_drop: set the message's drop flag (KSR::X.drop raises the exit after) */
static VALUE ksr_kemi_drop(VALUE self)
{
	pk_py_drop();
	return Qnil;
}

/* KSR._kemi_modf(fname, *params) -> int result of the native function */
static VALUE ksr_kemi_modf(int argc, VALUE *argv, VALUE self)
{
	pk_arg args[PK_MAX_PARAMS + 1];
	int i, rc;

	if (argc < 1)
		rb_raise(rb_eArgError, "KSR::X.modf(fname, *params): function name missing");
	if (argc > PK_MAX_PARAMS + 1)
		rb_raise(rb_eArgError, "KSR::X.modf: too many parameters (%d)", argc - 1);
	for (i = 0; i < argc; i++) {
		describe_arg(argv[i], &args[i]);
		if (args[i].kind != PK_STR && args[i].kind != PK_INT)
			rb_raise(rb_eTypeError, "KSR::X.modf: parameter %d must be a String, got %s", i,
					class_name(argv[i]));
	}
	rc = pk_py_modf(argc, args);
	if (rc == INT32_MIN)
		raise_pending();
	return INT2NUM(rc);
}

/* -- errors ------------------------------------------------------------------------------- */

static VALUE describe_exc(VALUE exc)
{
	VALUE ksr = rb_const_get(rb_cObject, rb_intern("KSR"));
	return rb_funcall(ksr, rb_intern("_kemi_describe"), 1, exc);
}

static VALUE plain_exc(VALUE exc)
{
	return rb_obj_as_string(exc);
}

/* After a failed rb_protect: 1 for a script exit, -1 (text in pk_error()) otherwise. */
static int take_error(int state)
{
	VALUE exc = rb_errinfo(), text;
	int st2 = 0;

	rb_set_errinfo(Qnil);
	if (NIL_P(exc) || !rb_obj_is_kind_of(exc, rb_eException)) {
		char buf[96];
		int n = snprintf(buf, sizeof(buf), "unexpected non-local jump out of Ruby (state %d)",
				state);
		set_errtext(buf, n);
		return -1;
	}
	text = rb_protect(describe_exc, exc, &st2);
	if (st2) {
		rb_set_errinfo(Qnil);
		text = rb_protect(plain_exc, exc, &st2);
		if (st2) {
			rb_set_errinfo(Qnil);
			text = rb_str_new_cstr("Ruby exception (its message cannot be read)");
		}
	}
	if (NIL_P(text))
		return 1; /* KSR::Exit, or to_s == "exit" as in Kamailio */
	if (!RB_TYPE_P(text, T_STRING))
		text = rb_str_new_cstr("Ruby exception");
	set_errtext(RSTRING_PTR(text), RSTRING_LEN(text));
	return -1;
}

/* -- lifecycle ---------------------------------------------------------------------------- */

/* Once per process. ruby_options() (not just ruby_init_loadpath) because it also loads
 * Ruby's builtin features (Kernel#class, #tap, ... are Ruby code in 3.x) and sets the
 * encodings; "-e ''" is parsed, never run. Gems are off, as in Kamailio's app_ruby (a
 * script may still `require "rubygems"`). Ruby installs handlers for INT/TERM/HUP/SEGV;
 * the router owns signals (workers must die on SIGTERM), so all are put back after. */
int pk_init(void)
{
	static struct sigaction saved[NSIG];
	static char a0[] = "pykemi", a1[] = "--disable-gems", a2[] = "-e", a3[] = "";
	char *argv[] = {a0, a1, a2, a3, NULL};
	int i, state = 0, status = 0;
	void *node;

	if (pk_initialized)
		return 0;
	for (i = 1; i < NSIG; i++)
		sigaction(i, NULL, &saved[i]);
	ruby_init();
	node = ruby_options(4, argv);
	ruby_script("pykemi");
	for (i = 1; i < NSIG; i++)
		if (i != SIGKILL && i != SIGSTOP)
			sigaction(i, &saved[i], NULL);
	if (!ruby_executable_node(node, &status)) {
		set_errtext("ruby_options() failed", 21);
		return -1;
	}
	pk_top_self = rb_eval_string_protect("self", &state);
	if (state) {
		set_errtext("cannot reach Ruby's main object", 31);
		return -1;
	}
	rb_gc_register_address(&pk_top_self);
	pk_baseline = rb_eval_string_protect(
			"Object.private_instance_methods(false) | Object.instance_methods(false)", &state);
	if (state) {
		set_errtext("cannot list Object's methods", 28);
		return -1;
	}
	rb_gc_register_address(&pk_baseline);
	pk_initialized = 1;
	return 0;
}

static VALUE do_setup(VALUE unused)
{
	VALUE ksr, m, methods;
	long i;
	ID rm = rb_intern("remove_method");

	/* a new engine in the same process starts clean: no KSR, no earlier script's methods */
	if (rb_const_defined_at(rb_cObject, rb_intern("KSR")))
		rb_const_remove(rb_cObject, rb_intern("KSR"));
	methods = rb_eval_string("Object.private_instance_methods(false) | "
							 "Object.instance_methods(false)");
	for (i = 0; i < RARRAY_LEN(methods); i++) {
		m = RARRAY_AREF(methods, i);
		if (!RTEST(rb_ary_includes(pk_baseline, m)))
			rb_funcall(rb_cObject, rm, 1, m);
	}
	ksr = rb_define_module("KSR");
	rb_define_singleton_method(ksr, "_kemi_call", ksr_kemi_call, -1);
	rb_define_singleton_method(ksr, "_kemi_coerce", ksr_kemi_coerce, 2);
	rb_define_singleton_method(ksr, "_kemi_base", ksr_kemi_base, 1);
	rb_define_singleton_method(ksr, "_kemi_drop", ksr_kemi_drop, 0);
	rb_define_singleton_method(ksr, "_kemi_modf", ksr_kemi_modf, -1);
	return Qnil;
}

int pk_setup(void)
{
	int state = 0, gil = pk_gil_ensure(), rc;

	rb_protect(do_setup, Qnil, &state);
	rc = state ? take_error(state) : 0;
	pk_gil_release(gil);
	return rc;
}

/* Load a Ruby file at top level (not wrapped), so `def` makes Object methods. */
int pk_load(const char *path)
{
	int state = 0, gil = pk_gil_ensure(), rc;

	rb_load_protect(rb_str_new_cstr(path), 0, &state);
	rc = state ? take_error(state) : 0;
	pk_gil_release(gil);
	return rc;
}

int pk_eval(const char *src)
{
	int state = 0, gil = pk_gil_ensure(), rc;

	rb_eval_string_protect(src, &state);
	rc = state ? take_error(state) : 0;
	pk_gil_release(gil);
	return rc;
}

/* Top-level methods are private methods of Object: ex=0 includes private ones. */
int pk_has(const char *name)
{
	return rb_method_boundp(rb_cObject, rb_intern(name), 0) ? 1 : 0;
}

struct pk_call_data {
	ID mid;
	int argc;
	const char **argv;
	const long *lens;
};

static VALUE do_call(VALUE p)
{
	struct pk_call_data *d = (struct pk_call_data *)p;
	VALUE args[PK_MAX_PARAMS];
	int i;

	for (i = 0; i < d->argc; i++)
		args[i] = rb_utf8_str_new(d->argv[i], d->lens[i]);
	return rb_funcallv(pk_top_self, d->mid, d->argc, args);
}

/* Run a route callback: 0 done, 1 script exit, -1 error (text in pk_error()). */
int pk_call(const char *name, int argc, const char **argv, const long *lens)
{
	struct pk_call_data d;
	int state = 0, gil, rc;

	if (argc > PK_MAX_PARAMS) {
		set_errtext("too many callback arguments", 27);
		return -1;
	}
	d.mid = rb_intern(name);
	d.argc = argc;
	d.argv = argv;
	d.lens = lens;
	gil = pk_gil_ensure();
	rb_protect(do_call, (VALUE)&d, &state);
	rc = state ? take_error(state) : 0;
	pk_gil_release(gil);
	return rc;
}
