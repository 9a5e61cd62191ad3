/*
 * Unit tests of the HTTP/1.1 request parser and chunked decoder
 * (src/http/http-parser.c): every request is fed whole and byte by byte
 * and must give the same result; the smuggling cases of RFC 9112 6.1 and
 * 6.3 must be refused with the right status.
 */
#include "test.h"

#include "http-parser.h"

/* Feeds in[0..len) in steps of step bytes. Returns the parser's result
 * (1, 0 or -1) and the offset just after the head in *used_r. */
static int feed(struct http_parser *p, const char *in, size_t len,
		size_t step, size_t *used_r)
{
	size_t pos = 0;
	while (pos < len) {
		size_t n = len - pos < step ? len - pos : step, used;
		int rc = http_parser_feed(p, in + pos, n, &used);
		CHECK(used <= n);
		pos += used;
		if (rc != 0) {
			*used_r = pos;
			return rc;
		}
		CHECK(used == n);
	}
	*used_r = pos;
	return 0;
}

/* Parses a request both ways; returns the status (0 when the head is
 * whole and good, the error status otherwise, -2 for "needs more"). */
static int status_of(const char *req)
{
	int result[2];
	size_t steps[2] = {strlen(req) + 1, 1};
	for (int i = 0; i < 2; i++) {
		struct http_parser p;
		size_t used;
		http_parser_init(&p, NULL);
		int rc = feed(&p, req, strlen(req), steps[i], &used);
		result[i] = rc == 1 ? 0 : rc == 0 ? -2 : (int)p.status;
		http_parser_deinit(&p);
	}
	CHECK_INT(result[0], result[1]);
	return result[0];
}

static void test_simple_get(void)
{
	const char *r = "GET /jmap/session?x=1&y=%20 HTTP/1.1\r\n"
		"Host: mail.example.test\r\n"
		"Accept:  application/json \r\n"
		"X-Empty:\r\n\r\nNEXT";
	for (size_t step = 1; step <= strlen(r); step += 7) {
		struct http_parser p;
		size_t used;
		http_parser_init(&p, NULL);
		CHECK_INT(feed(&p, r, strlen(r), step, &used), 1);
		CHECK_INT(strlen(r) - used, 4);
		CHECK_STR(p.head.method, "GET");
		CHECK_STR(p.head.target, "/jmap/session?x=1&y=%20");
		CHECK_STR(p.head.path, "/jmap/session");
		CHECK_STR(p.head.query, "x=1&y=%20");
		CHECK_STR(p.head.host, "mail.example.test");
		CHECK_INT(p.head.version, 11);
		CHECK(p.head.keep_alive);
		CHECK_INT(p.head.body, HTTP_BODY_NONE);
		CHECK_STR(http_head_field(&p.head, "accept"), "application/json");
		CHECK_STR(http_head_field(&p.head, "x-empty"), "");
		/* Reset keeps working for the next request. */
		http_parser_reset(&p, step % 2 == 0);
		const char *r2 = "POST /a HTTP/1.0\r\nContent-Length: 5\r\n\r\n";
		CHECK_INT(feed(&p, r2, strlen(r2), step, &used), 1);
		CHECK_INT(p.head.body, HTTP_BODY_LENGTH);
		CHECK_INT(p.head.content_length, 5);
		CHECK(!p.head.keep_alive);
		http_parser_deinit(&p);
	}
}

static void test_forms(void)
{
	CHECK_INT(status_of("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
	CHECK_INT(status_of("GET http://a.example/x?q HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
	CHECK_INT(status_of("GET http://a.example HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
	CHECK_INT(status_of("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
	CHECK_INT(status_of("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	CHECK_INT(status_of("CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	CHECK_INT(status_of("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
	CHECK_INT(status_of("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400);
	CHECK_INT(status_of("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	CHECK_INT(status_of("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	CHECK_INT(status_of("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	CHECK_INT(status_of("GET / HTTP/1.1\r\n\r\n"), 400);     /* no Host */
	CHECK_INT(status_of("GET / HTTP/1.0\r\n\r\n"), 0);
	CHECK_INT(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
	CHECK_INT(status_of("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400);
	CHECK_INT(status_of("GET / HTTP/1.1\r\nHost: a\r\n"), -2);
	CHECK_INT(status_of("GET / HTTP/1.1\r\nHost: a\r\nExpect: x\r\n\r\n"), 417);
}

/* RFC 9112 6.1, 6.3, 5.2, 2.2: request smuggling and malformed framing. */
static void test_smuggling(void)
{
	CHECK_INT(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
			    "Transfer-Encoding: chunked\r\n\r\n"), 400);
	CHECK_INT(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
			    "Content-Length: 6\r\n\r\n"), 400);
	CHECK_INT(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6"
			    "\r\n\r\n"), 400);
	/* Identical repeats are one value (RFC 9110 8.6). */
	CHECK_INT(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
			    "Content-Length: 5\r\n\r\n"), 0);
	CHECK_INT(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"), 400);
	CHECK_INT(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n"), 400);
	CHECK_INT(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
			    "99999999999999999999999\r\n\r\n"), 400);
	CHECK_INT(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
			    "gzip, chunked\r\n\r\n"), 501);
	CHECK_INT(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
			    "chunked, gzip\r\n\r\n"), 400);
	CHECK_INT(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
			    "xchunked\r\n\r\n"), 501);
	CHECK_INT(status_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
	/* obs-fold, whitespace before the colon, bare CR and LF. */
	CHECK_INT(status_of("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n"), 400);
	CHECK_INT(status_of("GET / HTTP/1.1\r\nHost: a\r\nX : 1\r\n\r\n"), 400);
	CHECK_INT(status_of("GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n"), 400);
	CHECK_INT(status_of("GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n"), 400);
	CHECK_INT(status_of("GET / HTTP/1.1\nHost: a\n\n"), 400);
	CHECK_INT(status_of("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n"), 400);
	CHECK_INT(status_of("GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n"), 400);
	const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
	struct http_parser p;
	size_t used;
	http_parser_init(&p, NULL);
	CHECK_INT(feed(&p, nul, sizeof(nul) - 1, 1, &used), -1);
	CHECK_INT(p.status, 400);
	http_parser_deinit(&p);
}

static void test_limits(void)
{
	struct http_parser_limits lim = {.max_head = 256, .max_target = 64,
					 .max_fields = 4};
	struct http_parser p;
	size_t used;
	char big[1024];
	snprintf(big, sizeof(big), "GET /%0200d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
	http_parser_init(&p, &lim);
	CHECK_INT(feed(&p, big, strlen(big), 1, &used), -1);
	CHECK_INT(p.status, 414);
	http_parser_deinit(&p);
	snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\nX: %0300d\r\n\r\n", 0);
	http_parser_init(&p, &lim);
	CHECK_INT(feed(&p, big, strlen(big), 3, &used), -1);
	CHECK_INT(p.status, 431);
	http_parser_deinit(&p);
	const char *many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\n"
		"D: 1\r\n\r\n";
	http_parser_init(&p, &lim);
	CHECK_INT(feed(&p, many, strlen(many), 100, &used), -1);
	CHECK_INT(p.status, 431);
	http_parser_deinit(&p);
}

/* Decodes a chunked body fed in steps; returns the decoded text (caller
 * frees) or NULL on an error, *rest_r the bytes left after its end. */
static char *dechunk(const char *in, size_t len, size_t step, long *rest_r)
{
	struct http_body b;
	struct buf out;
	size_t pos = 0;
	buf_init(&out, 0);
	http_body_init(&b, HTTP_BODY_CHUNKED, 0);
	*rest_r = -1;
	while (pos < len) {
		size_t n = len - pos < step ? len - pos : step, used;
		const char *data;
		size_t dl;
		int rc = http_body_feed(&b, in + pos, n, &used, &data, &dl);
		CHECK(used <= n);
		pos += used;
		if (rc < 0) {
			buf_free(&out);
			return NULL;
		}
		if (rc == 1)
			buf_append(&out, data, dl);
		if (rc == 2) {
			*rest_r = (long)(len - pos);
			break;
		}
	}
	if (!http_body_done(&b)) {
		buf_free(&out);
		return NULL;
	}
	buf_append(&out, "", 0);
	return buf_steal(&out, NULL);
}

static void test_chunked(void)
{
	const char *good = "5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz"
		"\r\n0\r\nTrailer: x\r\n\r\nGET";
	for (size_t step = 1; step < 12; step++) {
		long rest;
		char *s = dechunk(good, strlen(good), step, &rest);
		CHECK_STR(s, "helloabcdefghijklmnopqrstuvwxyz");
		CHECK_INT(rest, 3);
		free(s);
	}
	static const char *const bad[] = {
		"5\nhello\r\n0\r\n\r\n",          /* bare LF after size */
		"5\r\nhelloX\r\n0\r\n\r\n",       /* data longer than size */
		"G\r\n",                           /* not hex */
		"\r\n",                            /* empty size */
		"11111111111111111\r\n",           /* 17 digits: overflow */
		"0\r\nX: 1\n\r\n",                 /* bare LF in trailer */
		"0\r\n\r\r",                       /* bare CR at the end */
		"5;a\x01\r\nhello\r\n0\r\n\r\n",   /* control in extension */
		NULL,
	};
	for (size_t i = 0; bad[i] != NULL; i++) {
		for (size_t step = 1; step <= strlen(bad[i]); step += 3) {
			long rest;
			char *s = dechunk(bad[i], strlen(bad[i]), step, &rest);
			if (s != NULL)
				fprintf(stderr, "accepted bad chunked #%zu\n", i);
			CHECK(s == NULL);
			free(s);
		}
	}
	/* Content-Length bodies stop at the length. */
	struct http_body b;
	size_t used, dl;
	const char *data;
	http_body_init(&b, HTTP_BODY_LENGTH, 3);
	CHECK_INT(http_body_feed(&b, "abcdef", 6, &used, &data, &dl), 1);
	CHECK_INT(used, 3);
	CHECK_INT(dl, 3);
	CHECK(http_body_done(&b));
}

int main(void)
{
	static const struct test_case cases[] = {
		{"simple_get", test_simple_get},
		{"forms", test_forms},
		{"smuggling", test_smuggling},
		{"limits", test_limits},
		{"chunked", test_chunked},
		{NULL, NULL},
	};
	return test_main(cases);
}
