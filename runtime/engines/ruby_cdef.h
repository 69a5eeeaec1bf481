/* What Python sees of the app_ruby glue (the cffi cdef read by ruby_build.py); mirrors
 * ruby_glue.h. cffi syntax, not plain C: "..." takes a constant's value from the
 * compiled glue, extern "Python+C" declares the Python callbacks C calls. */
typedef struct pk_arg { int kind; long long i; double d; const char *s; } pk_arg;
#define PK_INT ...
#define PK_STR ...
#define PK_TRUE ...
#define PK_FALSE ...
#define PK_NIL ...
#define PK_FLOAT ...
#define PK_OTHER ...
#define PK_ERR_RUNTIME ...
#define PK_ERR_TYPE ...
#define PK_ERR_ARGUMENT ...
#define PK_ERR_LOAD ...
#define PK_MAX_PARAMS ...
#define PK_RETBUF_SIZE ...
extern char pk_retbuf[65536];
extern char pk_argbuf[65536];

extern "Python+C" uintptr_t pk_py_call0(int slot);
extern "Python+C" uintptr_t pk_py_call1(int slot, long long o0, long long v0);
extern "Python+C" uintptr_t pk_py_call2(int slot, long long o0, long long v0,
                                        long long o1, long long v1);
extern "Python+C" uintptr_t pk_py_call3(int slot, long long o0, long long v0,
                                        long long o1, long long v1,
                                        long long o2, long long v2);
extern "Python+C" uintptr_t pk_py_calln(int slot, int argc, pk_arg *argv);
extern "Python+C" int pk_py_check(int slot, int argc, pk_arg *argv, pk_arg *out);
extern "Python+C" int pk_py_base(const char *module, long len);
extern "Python+C" void pk_py_drop(void);
extern "Python+C" int pk_py_modf(int argc, pk_arg *argv);

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
