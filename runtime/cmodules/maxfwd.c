/*
 * maxfwd: Max-Forwards checks in C, reached through the KEMI slot table.
 * Return codes follow Kamailio's maxfwd module.
 */
#include <stdio.h>
#include "kemi.h"

#define MAXFWD_HDR "Max-Forwards"
#define MAXFWD_HDR_LEN (sizeof(MAXFWD_HDR) - 1)

static void maxfwd_log(int level, const char *text)
{
	int len = 0;
	while (text[len])
		len++;
	ksr_host->log(level, text, len);
}

/* -1: missing, -2: invalid, else the value. As Kamailio's is_maxfwd_present(): the
 * value trimmed at both ends, up to 5 digits (an empty value is 0); 256..65535 are
 * accepted here and lowered to max_limit by the caller */
static int maxfwd_value(sip_msg_t *msg)
{
	str v;
	int i, val = 0, start = 0, end;
	if (ksr_host->hdr_get(msg, MAXFWD_HDR, MAXFWD_HDR_LEN, &v) < 0)
		return -1;
	end = v.len;
	while (end > start && (v.s[end - 1] == ' ' || v.s[end - 1] == '\t'
			|| v.s[end - 1] == '\r' || v.s[end - 1] == '\n'))
		end--;
	while (start < end && (v.s[start] == ' ' || v.s[start] == '\t'))
		start++;
	if (end - start > 5)
		return -2;
	for (i = start; i < end; i++) {
		if (v.s[i] < '0' || v.s[i] > '9')
			return -2;
		val = val * 10 + (v.s[i] - '0');
	}
	return val > 65535 ? -2 : val;
}

static int maxfwd_write(sip_msg_t *msg, int val)
{
	char buf[16];
	int n = snprintf(buf, sizeof(buf), "%d", val);
	return ksr_host->hdr_set(msg, MAXFWD_HDR, MAXFWD_HDR_LEN, buf, n);
}

/* modparam max_limit, read once per process (configs do not change at run time) */
static int maxfwd_max_limit = -1;

int ksr_maxfwd_process(sip_msg_t *msg, int limit)
{
	int val, max_limit;
	if (!ksr_host->is_request(msg))
		return -2;
	if (limit < 0 || limit > 255) {
		maxfwd_log(L_ERR, "maxfwd: process_maxfwd: limit must be 0..255\n");
		return -1; /* Kamailio process_maxfwd_header(): an invalid limit is -1 */
	}
	if (maxfwd_max_limit < 0) /* the spec's default (70) comes through the modparam table */
		maxfwd_max_limit = ksr_host->modparam_int("maxfwd", "max_limit", 70);
	max_limit = maxfwd_max_limit;
	val = maxfwd_value(msg);
	if (val == -1) {
		if (maxfwd_write(msg, limit) < 0)
			return -2;
		return 2;
	}
	if (val == -2) {
		maxfwd_log(L_ERR, "maxfwd: invalid Max-Forwards header value\n");
		return -2;
	}
	if (val == 0)
		return -1;
	val--;
	if (val > max_limit)
		val = max_limit;
	if (maxfwd_write(msg, val) < 0)
		return -2;
	return 1;
}

/* Kamailio ki_is_maxfwd_lt(): 1 lower, -1 not lower or a limit outside 0..255,
 * -2 no header, -3 an invalid one */
int ksr_maxfwd_is_lt(sip_msg_t *msg, int limit)
{
	int val;
	if (limit < 0 || limit > 255) {
		maxfwd_log(L_ERR, "maxfwd: is_maxfwd_lt: limit must be 0..255\n");
		return -1;
	}
	val = maxfwd_value(msg);
	if (val < 0)
		return val - 1;
	return (val < limit) ? 1 : -1;
}
