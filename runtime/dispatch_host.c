/* Preamble of the C dispatch extension (runtime/dispatch_build.py): the host API table
 * filled with the runtime's Python callbacks (cffi extern "Python+C"). */
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
