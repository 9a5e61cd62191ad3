/*
 * Fuzz target for the DATA decoder's strict mode, SMTP's (src/lmtp/
 * lmtp-parser.c; fuzz-lmtp covers LMTP's mode): the input is decoded whole and again in pieces whose sizes come from its
 * first bytes; both must agree on the message and on where DATA ended,
 * and only a CRLF "." CRLF may end it (RFC 5321 4.1.1.4: no smuggling).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmtp-parser.h"

static long decode(const char *p, size_t n, const uint8_t *steps,
		   size_t nsteps, struct buf *out)
{
	struct lmtp_dot dot;
	size_t pos = 0, k = 0;

	lmtp_dot_init(&dot, true);
	while (pos < n) {
		size_t step = nsteps ? (size_t)steps[k++ % nsteps] % 17 + 1 : n;
		size_t len = n - pos < step ? n - pos : step, used;
		int ret = lmtp_dot_feed(&dot, p + pos, len, &used, out);
		if (used > len || ret < 0)
			abort();
		pos += used;
		if (ret == 1)
			return (long)pos;
	}
	return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf a, b;
	size_t nsteps = size > 0 ? data[0] % 8 : 0;
	long ea, eb;

	if (size < 1 + nsteps)
		return 0;
	const char *p = (const char *)data + 1 + nsteps;
	size_t n = size - 1 - nsteps;
	buf_init(&a, 0);
	buf_init(&b, 0);
	ea = decode(p, n, NULL, 0, &a);
	eb = decode(p, n, data + 1, nsteps, &b);
	if (ea != eb || a.len != b.len ||
	    (a.len > 0 && memcmp(a.data, b.data, a.len) != 0))
		abort();
	/* the end is a CRLF.CRLF (or ".\r\n" at the very start) */
	if (ea >= 0) {
		if (ea < 3 || memcmp(p + ea - 3, ".\r\n", 3) != 0)
			abort();
		if (ea > 3 && (ea < 5 || memcmp(p + ea - 5, "\r\n", 2) != 0))
			abort();
	}
	buf_free(&a);
	buf_free(&b);
	return 0;
}
