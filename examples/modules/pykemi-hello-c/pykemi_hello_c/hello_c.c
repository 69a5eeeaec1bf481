/*
 * KSR.hello_c: an example out-of-tree pykemi module in C.
 *
 * Exports have the KEMI C signature: the message first, then each parameter
 * as int or str * (spec order); they return int, or sr_kemi_xval_t * for xval.
 * The message and the runtime are reached through the host API (ksr_host).
 */
#include <stdio.h>
#include "kemi.h"

#define MODULE "hello_c"

/* xval results and their text stay valid until the next call (the runtime copies them) */
static sr_kemi_xval_t hello_xval;
static char hello_buf[1024];
static int hello_count; /* per worker process */

static sr_kemi_xval_t *xval_text(int len)
{
	hello_xval.vtype = SR_KEMIP_STR;
	hello_xval.v.s.s = hello_buf;
	hello_xval.v.s.len = len;
	return &hello_xval;
}

static int append(int at, const char *s, int len)
{
	int i;
	for (i = 0; i < len && at < (int)sizeof(hello_buf); i++)
		hello_buf[at++] = s[i];
	return at;
}

sr_kemi_xval_t *ksr_hello_c_hello(sip_msg_t *msg, str *name)
{
	/* modparam("hello_c", "exclaim", N); the spec's default when not set */
	int exclaim = ksr_host->modparam_int(MODULE, "exclaim", 1);
	int n = append(0, "Hello, ", 7);
	n = append(n, name->s, name->len);
	while (exclaim-- > 0)
		n = append(n, "!", 1);
	return xval_text(n);
}

int ksr_hello_c_add(sip_msg_t *msg, int a, int b)
{
	return a + b;
}

sr_kemi_xval_t *ksr_hello_c_greet(sip_msg_t *msg, str *name, int times)
{
	int n = 0;
	if (times < 1) {
		hello_xval.vtype = SR_KEMIP_NULL;
		return &hello_xval;
	}
	while (times-- > 0) {
		if (n > 0)
			n = append(n, " ", 1);
		n = append(n, "hi ", 3);
		n = append(n, name->s, name->len);
	}
	return xval_text(n);
}

int ksr_hello_c_counter(sip_msg_t *msg)
{
	return ++hello_count;
}

int ksr_hello_c_header_len(sip_msg_t *msg, str *hname)
{
	str value;
	if (ksr_host->hdr_get(msg, hname->s, hname->len, &value) < 0)
		return -1;
	return value.len;
}
