/* The cffi module source of the app_ruby glue (ruby_build.py; ruby_glue.c is compiled
 * beside it). cffi releases the GIL around every C call, and every Python callback takes
 * it again. The glue's entry points take it back once instead (ruby_glue.c), so the
 * per-KSR-call callbacks find it held: Ruby then runs like lupa's Lua, with the GIL. */
#include "ruby_glue.h"
int pk_gil_ensure(void) { return (int)PyGILState_Ensure(); }
void pk_gil_release(int state) { PyGILState_Release((PyGILState_STATE)state); }
