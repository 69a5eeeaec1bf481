/* What Python sees of sqlang_closure.c (the cffi cdef). */
int ksq_bind(const char *path);
int ksq_install(uintptr_t vm, const char *name, uintptr_t slots);
