/*
 * Unit tests of the LMTP parsers (src/lmtp/lmtp-parser.c): verbs, paths,
 * ESMTP parameters and the DATA decoder, which must give the same result
 * however the input is split (fed whole and byte by byte).
 */
#include "test.h"

#include "lmtp-parser.h"

/* Decodes in (fed in pieces of step bytes) and returns the message;
 * *rest_r is the number of input bytes after the end-of-data line, or -1
 * if no end was found. */
static char *decode(const char *in, size_t len, size_t step, size_t *out_len,
		    long *rest_r)
{
	struct lmtp_dot dot;
	struct buf out;
	size_t pos = 0;

	buf_init(&out, 0);
	lmtp_dot_init(&dot, false);
	*rest_r = -1;
	while (pos < len) {
		size_t n = len - pos < step ? len - pos : step, used;
		int ret = lmtp_dot_feed(&dot, in + pos, n, &used, &out);
		CHECK(used <= n);
		pos += used;
		if (ret == 1) {
			*rest_r = (long)(len - pos);
			break;
		}
		CHECK_INT(ret, 0);
		CHECK_INT(used, n);
	}
	return buf_steal(&out, out_len);
}

static void check_decode(const char *in, size_t len, const char *want,
			 size_t want_len, long want_rest)
{
	size_t steps[] = {1, 2, 3, 7, 4096};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		size_t out_len;
		long rest;
		char *out = decode(in, len, steps[i], &out_len, &rest);
		CHECK_MEM(out, out_len, want, want_len);
		CHECK_INT(rest, want_rest);
		free(out);
	}
}

#define S(x) x, sizeof(x) - 1

static void test_dot_plain(void)
{
	check_decode(S("Subject: a\r\n\r\nbody\r\n.\r\n"),
		     S("Subject: a\r\n\r\nbody\r\n"), 0);
	check_decode(S("Subject: a\r\n\r\nbody\r\n.\r\nQUIT\r\n"),
		     S("Subject: a\r\n\r\nbody\r\n"), 6);
	/* an empty message */
	check_decode(S(".\r\n"), S(""), 0);
}

static void test_dot_stuffing(void)
{
	check_decode(S("..\r\n..x\r\n...\r\n.\r\n"), S(".\r\n.x\r\n..\r\n"), 0);
	/* a dot inside a line is data */
	check_decode(S("a.\r\nb .\r\n.\r\n"), S("a.\r\nb .\r\n"), 0);
	/* ".\r" followed by something else: the dot was stuffing */
	check_decode(S(".\rx\r\n.\r\n"), S("\rx\r\n"), 0);
	/* not the end: no CRLF before the dot */
	check_decode(S("x.\r\n.\r\n"), S("x.\r\n"), 0);
}

static void test_dot_bare_lf(void)
{
	check_decode(S("a\nb\n.\n"), S("a\nb\n"), 0);
	check_decode(S("a\r\n.\nNOOP\n"), S("a\r\n"), 5);
	check_decode(S("a\n..b\n.\r\n"), S("a\n.b\n"), 0);
}

static void test_dot_binary(void)
{
	static const char in[] = "a\0b\r\n\xff\xfe\r\n\r\r\n.\r\n";
	static const char want[] = "a\0b\r\n\xff\xfe\r\n\r\r\n";
	check_decode(in, sizeof(in) - 1, want, sizeof(want) - 1, 0);
}

static void test_dot_unterminated(void)
{
	size_t out_len;
	long rest;
	char *out = decode(S("abc\r\n.\r"), 1, &out_len, &rest);
	CHECK_INT(rest, -1);
	CHECK_MEM(out, out_len, "abc\r\n", 5);
	free(out);
}

static void test_dot_long_line(void)
{
	size_t n = 100000;
	char *in = malloc(n + 5);
	memset(in, 'x', n);
	memcpy(in + n, "\r\n.\r\n", 5);
	size_t out_len;
	long rest;
	char *out = decode(in, n + 5, 4096, &out_len, &rest);
	CHECK_INT(out_len, n + 2);
	CHECK_INT(rest, 0);
	free(out);
	free(in);
}

static void test_verb(void)
{
	char verb[16];
	struct slice args;

	CHECK_INT(lmtp_parse_verb(S("lhlo host"), verb, &args), 0);
	CHECK_STR(verb, "LHLO");
	CHECK(slice_eq(args, "host"));
	CHECK_INT(lmtp_parse_verb(S("QUIT"), verb, &args), 0);
	CHECK_INT(args.len, 0);
	CHECK_INT(lmtp_parse_verb(S(""), verb, &args), -1);
	CHECK_INT(lmtp_parse_verb(S("NO\0OP"), verb, &args), -1);
	CHECK_INT(lmtp_parse_verb(S("MAIL FROM:<a\0@b>"), verb, &args), -1);
	CHECK_INT(lmtp_parse_verb(S("ABCDEFGHIJKLMNOPQ"), verb, &args), -1);
	CHECK_INT(lmtp_parse_verb(S("1234"), verb, &args), -1);
}

static int path(const char *args, const char *want, bool strict,
		struct lmtp_path *p, struct slice *params)
{
	const char *why = NULL;
	int ret = lmtp_parse_path(slice_make(args, strlen(args)), want, strict,
				  !strict, p, params, &why);
	if (ret < 0)
		CHECK(why != NULL);
	return ret;
}

static void test_path(void)
{
	struct lmtp_path p;
	struct slice params;

	CHECK_INT(path("TO:<user@example.test>", "TO", true, &p, &params), 0);
	CHECK_STR(p.address, "user@example.test");
	CHECK_INT(p.local_len, 4);
	CHECK_INT(params.len, 0);
	CHECK_INT(path("to: <User+Lists@Example.Test>", "TO", true, &p, &params), 0);
	CHECK_STR(p.address, "User+Lists@Example.Test");
	CHECK_INT(path("TO:<@relay.test,@b.test:u@example.test>", "TO", true, &p, &params), 0);
	CHECK_STR(p.address, "u@example.test");
	CHECK_INT(path("TO:<\"a b\\\"c\"@example.test>", "TO", true, &p, &params), 0);
	CHECK_STR(p.address, "a b\"c@example.test");
	CHECK_INT(p.local_len, 5);
	CHECK_INT(path("TO:<u@[127.0.0.1]>", "TO", true, &p, &params), 0);
	CHECK_INT(path("FROM:<> SIZE=100 BODY=8BITMIME", "FROM", false, &p, &params), 0);
	CHECK(p.null_path);
	CHECK(slice_eq(params, "SIZE=100 BODY=8BITMIME"));

	/* paths are data: nothing that looks like a file path gets by */
	CHECK_INT(path("TO:<../x@example.test>", "TO", true, &p, &params), -1);
	CHECK_INT(path("TO:<a..b@example.test>", "TO", true, &p, &params), -1);
	CHECK_INT(path("TO:<x.@example.test>", "TO", true, &p, &params), -1);
	CHECK_INT(path("TO:<x@../etc>", "TO", true, &p, &params), -1);
	CHECK_INT(path("TO:<x@-a.test>", "TO", true, &p, &params), -1);
	CHECK_INT(path("TO:<x@a.test.>", "TO", true, &p, &params), -1);
	CHECK_INT(path("TO:<x>", "TO", true, &p, &params), -1);
	CHECK_INT(path("TO:<>", "TO", true, &p, &params), -1);
	CHECK_INT(path("TO:x@example.test", "TO", true, &p, &params), -1);
	CHECK_INT(path("TO:<x@example.test", "TO", true, &p, &params), -1);
	CHECK_INT(path("TO:<x@example.test>junk", "TO", true, &p, &params), -1);
	CHECK_INT(path("TO:<\"x@example.test>", "TO", true, &p, &params), -1);
	CHECK_INT(path("FROM:<x@example.test>", "TO", true, &p, &params), -1);
	CHECK_INT(path("TO:<u@[]>", "TO", true, &p, &params), -1);

	char longp[400] = "TO:<";
	memset(longp + 4, 'a', 70);
	strcpy(longp + 74, "@example.test>");
	CHECK_INT(path(longp, "TO", true, &p, &params), -1);
	memset(longp + 4, 'a', 300);
	strcpy(longp + 304, "@example.test>");
	CHECK_INT(path(longp, "FROM", false, &p, &params), -1);
}

static void test_path_text(void)
{
	struct lmtp_path p;
	struct slice params;
	char out[LMTP_PATH_TEXT];

	CHECK_INT(path("TO:<a.b+c@example.test>", "TO", true, &p, &params), 0);
	lmtp_path_text(&p, out, sizeof(out));
	CHECK_STR(out, "a.b+c@example.test");
	CHECK_INT(path("TO:<\"a b\\\"c\"@example.test>", "TO", true, &p, &params), 0);
	lmtp_path_text(&p, out, sizeof(out));
	CHECK_STR(out, "\"a b\\\"c\"@example.test");
	CHECK_INT(path("TO:<\"../x\"@example.test>", "TO", true, &p, &params), 0);
	lmtp_path_text(&p, out, sizeof(out));
	CHECK_STR(out, "\"../x\"@example.test");
	CHECK_INT(path("FROM:<\"a>b\"@example.test>", "FROM", false, &p, &params), 0);
	lmtp_path_text(&p, out, sizeof(out));
	CHECK_STR(out, "\"a>b\"@example.test");
	CHECK_INT(path("FROM:<>", "FROM", false, &p, &params), 0);
	lmtp_path_text(&p, out, sizeof(out));
	CHECK_STR(out, "");
	/* never more than the buffer */
	CHECK_INT(path("TO:<\"a\"@example.test>", "TO", true, &p, &params), 0);
	lmtp_path_text(&p, out, 5);
	CHECK(strlen(out) < 5);
}

static void test_params(void)
{
	struct slice ps = slice_make(S("SIZE=123 BODY=7BIT  X-Y"));
	struct slice k, v;
	uint64_t n;

	CHECK_INT(lmtp_param_next(&ps, &k, &v), 1);
	CHECK(slice_eq(k, "SIZE"));
	CHECK(slice_eq(v, "123"));
	CHECK_INT(lmtp_parse_u64(v, &n), 0);
	CHECK_INT(n, 123);
	CHECK_INT(lmtp_param_next(&ps, &k, &v), 1);
	CHECK(slice_eq(k, "BODY"));
	CHECK_INT(lmtp_param_next(&ps, &k, &v), 1);
	CHECK(slice_eq(k, "X-Y"));
	CHECK_INT(v.len, 0);
	CHECK_INT(lmtp_param_next(&ps, &k, &v), 0);

	ps = slice_make(S("SIZE="));
	CHECK_INT(lmtp_param_next(&ps, &k, &v), -1);
	ps = slice_make(S("=x"));
	CHECK_INT(lmtp_param_next(&ps, &k, &v), -1);
	CHECK_INT(lmtp_parse_u64(slice_make(S("18446744073709551616")), &n), -1);
	CHECK_INT(lmtp_parse_u64(slice_make(S("18446744073709551615")), &n), 0);
	CHECK_INT(lmtp_parse_u64(slice_make(S("-1")), &n), -1);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"dot_plain", test_dot_plain},
		{"dot_stuffing", test_dot_stuffing},
		{"dot_bare_lf", test_dot_bare_lf},
		{"dot_binary", test_dot_binary},
		{"dot_unterminated", test_dot_unterminated},
		{"dot_long_line", test_dot_long_line},
		{"verb", test_verb},
		{"path", test_path},
		{"path_text", test_path_text},
		{"params", test_params},
		{NULL, NULL},
	};
	return test_main(cases);
}
