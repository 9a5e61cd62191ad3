/*
 * Unit tests of the DATA decoder's strict mode, SMTP's (src/lmtp/
 * lmtp-parser.c), each input fed whole and split at every byte: only CRLF.CRLF ends DATA, the
 * smuggling variants stay in the message, dots are unstuffed only after
 * a CRLF.
 */
#include "test.h"

#include "lmtp-parser.h"

/* Decodes in fed in pieces of step bytes; *end_r: input bytes up to the
 * end of data, or -1. */
static char *decode(const char *in, size_t len, size_t step, size_t *out_len,
		    long *end_r)
{
	struct lmtp_dot dot;
	struct buf out;
	size_t pos = 0;

	buf_init(&out, 0);
	lmtp_dot_init(&dot, true);
	*end_r = -1;
	while (pos < len) {
		size_t n = len - pos < step ? len - pos : step, used;
		int ret = lmtp_dot_feed(&dot, in + pos, n, &used, &out);
		pos += used;
		if (ret == 1) {
			*end_r = (long)pos;
			break;
		}
		CHECK_INT(ret, 0);
		CHECK_INT(used, n);
	}
	return buf_steal(&out, out_len);
}

static void check(const char *in, const char *want, long want_end)
{
	size_t len = strlen(in);

	for (size_t step = 1; step <= len; step++) {
		size_t out_len;
		long end;
		char *out = decode(in, len, step, &out_len, &end);
		CHECK_MEM(out, out_len, want, strlen(want));
		CHECK_INT(end, want_end);
		free(out);
	}
}

static void test_end(void)
{
	check("a\r\n.\r\nNEXT", "a\r\n", 6);
	check(".\r\n", "", 3);
	check("a\r\n..b\r\n.\r\n", "a\r\n.b\r\n", 11);
}

static void test_smuggling(void)
{
	/* none of these ends DATA: the text stays in the message */
	check("a\n.\nMAIL", "a\n.\nMAIL", -1);
	check("a\r.\rMAIL", "a\r.\rMAIL", -1);
	check("a\r\n.\nMAIL", "a\r\n\nMAIL", -1);
	check("a\n.\r\nMAIL", "a\n.\r\nMAIL", -1);
	check("a\r\n.\rX\r\n.\r\n", "a\r\n\rX\r\n", 11);
	check("x\r\r\n.\r\n", "x\r\r\n", 7);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"end", test_end},
		{"smuggling", test_smuggling},
		{NULL, NULL},
	};
	return test_main(cases);
}
