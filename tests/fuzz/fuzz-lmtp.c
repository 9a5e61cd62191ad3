/*
 * Fuzz target for the LMTP parsers (src/lmtp/lmtp-parser.c). The first
 * byte picks what the rest is fed to: a command line (verb, then a
 * MAIL/RCPT path, strict and lenient, and its parameters), or message
 * data for the DATA decoder, fed whole and again in pieces whose sizes
 * come from the input; both feeds must agree (any split gives the same
 * result, STYLE.md).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmtp-parser.h"

static void fuzz_command(const char *p, size_t n)
{
	struct lmtp_path path;
	struct slice args, params, key, value;
	const char *why;
	char verb[16];
	uint64_t v;

	if (lmtp_parse_verb(p, n, verb, &args) < 0)
		args = slice_make(p, n);
	for (int strict = 0; strict <= 1; strict++) {
		const char *want = strict ? "TO" : "FROM";
		if (lmtp_parse_path(args, want, strict, !strict, &path,
				    &params, &why) < 0)
			continue;
		if (strlen(path.address) > LMTP_PATH_MAX ||
		    path.local_len > strlen(path.address))
			abort();
		while (lmtp_param_next(&params, &key, &value) > 0)
			(void)lmtp_parse_u64(value, &v);
	}
}

static int decode(const char *p, size_t n, const uint8_t *steps,
		  size_t nsteps, struct buf *out, size_t *end_r)
{
	struct lmtp_dot dot;
	size_t pos = 0, k = 0;

	lmtp_dot_init(&dot, false);
	while (pos < n) {
		size_t step = nsteps ? (size_t)steps[k++ % nsteps] + 1 : n;
		size_t len = n - pos < step ? n - pos : step, used;
		int ret = lmtp_dot_feed(&dot, p + pos, len, &used, out);
		if (used > len || ret < 0)
			abort();
		pos += used;
		if (ret == 1) {
			*end_r = pos;
			return 1;
		}
		if (used != len)
			abort();
	}
	*end_r = pos;
	return 0;
}

static void fuzz_data(const uint8_t *data, size_t size)
{
	size_t nsteps = size > 0 ? data[0] % 8 : 0, end1, end2;
	struct buf a, b;

	if (size < 1 + nsteps)
		return;
	const uint8_t *steps = data + 1;
	const char *p = (const char *)data + 1 + nsteps;
	size_t n = size - 1 - nsteps;
	buf_init(&a, 0);
	buf_init(&b, 0);
	int r1 = decode(p, n, NULL, 0, &a, &end1);
	int r2 = decode(p, n, steps, nsteps, &b, &end2);
	if (r1 != r2 || end1 != end2 || a.len != b.len ||
	    (a.len > 0 && memcmp(a.data, b.data, a.len) != 0) || a.len > n)
		abort();
	buf_free(&a);
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		fuzz_command((const char *)data + 1, size - 1);
	else
		fuzz_data(data + 1, size - 1);
	return 0;
}
