/* cffi cdef (not compiled by a C compiler): the host API's Python callbacks that C modules
 * reach through ksr_host, as the runtime declares them to cffi (runtime/dispatch_build.py). */
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
