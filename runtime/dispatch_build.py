"""cffi build of the generated C dispatch glue plus the built-in C modules.

Used by setup.py at install time (``cffi_modules``) and by ``kemi build``;
out-of-tree C modules are compiled by ``cbuild.compile_module`` with the
same header, with their export table rendered by ``kemi generate``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GEN_C = ROOT / "generated" / "c"
CMODULES = HERE / "cmodules"
MODULE_NAME = "pykemi.runtime._kemi_dispatch"

# The runtime's side of the host API: Python callbacks C modules reach via ksr_host.
HOST_CDEF = """
extern "Python+C" void _kemi_host_log(int level, const char *text, int len);
extern "Python+C" int _kemi_host_hdr_get(sip_msg_t *msg, const char *name, int nlen, str *out);
extern "Python+C" int _kemi_host_hdr_set(sip_msg_t *msg, const char *name, int nlen,
                                         const char *val, int vlen);
extern "Python+C" int _kemi_host_hdr_append(sip_msg_t *msg, const char *name, int nlen,
                                            const char *val, int vlen);
extern "Python+C" int _kemi_host_hdr_remove(sip_msg_t *msg, const char *name, int nlen);
extern "Python+C" int _kemi_host_pv_get(sip_msg_t *msg, const char *name, int nlen,
                                        sr_kemi_xval_t *out);
extern "Python+C" int _kemi_host_pv_set(sip_msg_t *msg, const char *name, int nlen,
                                        const sr_kemi_xval_t *val);
extern "Python+C" int _kemi_host_send_reply(sip_msg_t *msg, int code, const char *reason,
                                            int rlen);
extern "Python+C" int _kemi_host_is_request(sip_msg_t *msg);
extern "Python+C" int _kemi_host_modparam_int(const char *module, const char *name, int dflt);
const ksr_host_api_t *kemi_host_api(void);
"""

HOST_SOURCE = """
#include "kemi.h"
void _kemi_host_log(int level, const char *text, int len);
int _kemi_host_hdr_get(sip_msg_t *msg, const char *name, int nlen, str *out);
int _kemi_host_hdr_set(sip_msg_t *msg, const char *name, int nlen, const char *val, int vlen);
int _kemi_host_hdr_append(sip_msg_t *msg, const char *name, int nlen, const char *val, int vlen);
int _kemi_host_hdr_remove(sip_msg_t *msg, const char *name, int nlen);
int _kemi_host_pv_get(sip_msg_t *msg, const char *name, int nlen, sr_kemi_xval_t *out);
int _kemi_host_pv_set(sip_msg_t *msg, const char *name, int nlen, const sr_kemi_xval_t *val);
int _kemi_host_send_reply(sip_msg_t *msg, int code, const char *reason, int rlen);
int _kemi_host_is_request(sip_msg_t *msg);
int _kemi_host_modparam_int(const char *module, const char *name, int dflt);
typedef struct kemi_module_table { const char *module; sr_kemi_t *exports; } kemi_module_table_t;
extern kemi_module_table_t kemi_module_tables[];
extern const char kemi_spec_hash[];
void kemi_module_init(const ksr_host_api_t *host);
int kemi_slots_init(int capacity);
int kemi_slots_capacity(void);
int kemi_slot_set(int slot, void *func);
void *kemi_slot_get(int slot);
#include "kemi_dispatch_cdef.h"

static ksr_host_api_t _kemi_host_table;

const ksr_host_api_t *kemi_host_api(void)
{
	_kemi_host_table.version = KSR_HOST_API_VERSION;
	_kemi_host_table.log = _kemi_host_log;
	_kemi_host_table.hdr_get = _kemi_host_hdr_get;
	_kemi_host_table.hdr_set = _kemi_host_hdr_set;
	_kemi_host_table.hdr_append = _kemi_host_hdr_append;
	_kemi_host_table.hdr_remove = _kemi_host_hdr_remove;
	_kemi_host_table.pv_get = _kemi_host_pv_get;
	_kemi_host_table.pv_set = _kemi_host_pv_set;
	_kemi_host_table.send_reply = _kemi_host_send_reply;
	_kemi_host_table.is_request = _kemi_host_is_request;
	_kemi_host_table.modparam_int = _kemi_host_modparam_int;
	return &_kemi_host_table;
}
"""


def _read(name: str) -> str:
    return (GEN_C / name).read_text(encoding="utf-8")


def _strip_comments(text: str) -> str:
    """cffi's cdef parser accepts C comments but not the generated banner's // lines."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


def make_ffibuilder(relative: bool = True) -> FFI:
    """``relative``: source paths relative to the checkout, as setuptools requires."""
    ffi = FFI()
    ffi.cdef(_strip_comments(_read("kemi_cdef.h")))
    ffi.cdef(_strip_comments(_read("kemi_dispatch_cdef.h")))
    ffi.cdef(HOST_CDEF)
    sources = [str(GEN_C / "kemi_dispatch.c"), str(GEN_C / "kemi_exports.c")]
    sources += sorted(str(p) for p in CMODULES.glob("*.c"))
    ffi.set_source(
        MODULE_NAME,
        HOST_SOURCE,
        sources=[os.path.relpath(s, ROOT) for s in sources] if relative else sources,
        include_dirs=[str(GEN_C)],
        extra_compile_args=["-O2", "-Wall", "-Wno-unused-function"],
    )
    return ffi


ffibuilder = make_ffibuilder()


def build_inplace(verbose: bool = False) -> str:
    """Compile next to this file (``kemi build``); returns the extension's path."""
    cwd = os.getcwd()
    # a fresh private (mkdtemp, 0700) work dir: nothing there another user could plant
    with tempfile.TemporaryDirectory(prefix="pykemi-build-") as tmp:
        try:
            os.chdir(ROOT)
            lib = make_ffibuilder(relative=False).compile(tmpdir=tmp, verbose=verbose)
        finally:
            os.chdir(cwd)
        target = HERE / Path(lib).name
        # copied next to the target, then renamed over it: a running router keeps its old
        # file (overwriting a loaded .so in place would crash it)
        fd, staged = tempfile.mkstemp(prefix=f".{target.name}-", dir=HERE)
        with os.fdopen(fd, "wb") as out, open(lib, "rb") as src:
            shutil.copyfileobj(src, out)
        os.chmod(staged, 0o755)
        os.replace(staged, target)
    return str(target)


if __name__ == "__main__":
    print(build_inplace(verbose=True))
