/* Unit tests for src/lib: bounded buffers, the config parser and its value
 * readers, SASLprep (the RFC 4013 section 3 vectors and more), the
 * outbound process's requests (outwire: what it refuses). */
#include <netinet/in.h>
#include <arpa/inet.h>

#include "base64.h"
#include "buf.h"
#include "config.h"
#include "outwire.h"
#include "saslprep.h"
#include "test.h"

static void test_buf_limit(void)
{
	struct buf b;
	buf_init(&b, 8);
	CHECK_INT(buf_append_str(&b, "12345678"), 0);
	CHECK_INT(buf_append_char(&b, 'x'), -1);
	CHECK_INT(b.len, 8);
	CHECK_STR(b.data, "12345678");
	buf_consume(&b, 3);
	CHECK_STR(b.data, "45678");
	CHECK_INT(buf_printf(&b, "%d", 123), 0);
	CHECK_INT(buf_printf(&b, "%d", 1), -1);
	CHECK_STR(b.data, "45678123");
	buf_free(&b);
}

static void test_config_parse(void)
{
	const char *text = "data_dir = /tmp/x # comment\n"
			   "\n[imap]\nlisten = 127.0.0.1:1143, [::1]:1143\n"
			   "listen = 127.0.0.1:2000\n[bad\nnovalue\n";
	struct config *cfg;
	struct buf err;
	buf_init(&err, 0);
	CHECK_INT(config_parse("t.conf", text, strlen(text), &cfg, &err), -1);
	CHECK_STR(config_get(cfg, "", "data_dir"), "/tmp/x");
	CHECK_STR(config_get(cfg, "imap", "listen"), "127.0.0.1:2000");
	CHECK(config_has_section(cfg, "imap"));
	CHECK(strstr(err.data, "t.conf:6: malformed section header") != NULL);
	CHECK(strstr(err.data, "t.conf:7: expected 'key = value'") != NULL);
	size_t n;
	char **items = config_split_list(" a, b ,,c ", &n);
	CHECK_INT(n, 3);
	if (n == 3)
		CHECK_STR(items[1], "b");
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
	config_free(&cfg);
	CHECK(cfg == NULL);
	buf_free(&err);
}

static void test_config_values(void)
{
	uint64_t v;
	CHECK_INT(config_parse_size("500M", &v), 0);
	CHECK_INT(v, 500ULL << 20);
	CHECK_INT(config_parse_size("2G", &v), 0);
	CHECK_INT(v, 2ULL << 30);
	CHECK_INT(config_parse_size("1.5K", &v), 0);
	CHECK_INT(v, 1536);
	CHECK_INT(config_parse_size("10240", &v), 0);
	CHECK_INT(v, 10240);
	CHECK_INT(config_parse_size("0x10", &v), -1);
	CHECK_INT(config_parse_size("1e3K", &v), -1);
	CHECK_INT(config_parse_size("1.", &v), -1);
	CHECK_INT(config_parse_size("-1", &v), -1);
	CHECK_INT(config_parse_size("5Q", &v), -1);
	CHECK_INT(config_parse_duration("5m", &v), 0);
	CHECK_INT(v, 300);
	CHECK_INT(config_parse_duration("7d", &v), 0);
	CHECK_INT(v, 7 * 86400);
	CHECK_INT(config_parse_duration("5x", &v), -1);
	bool b;
	CHECK_INT(config_parse_bool("Yes", &b), 0);
	CHECK(b);
	CHECK_INT(config_parse_bool("maybe", &b), -1);
	CHECK_INT(config_parse_uint("42", 100, &v), 0);
	CHECK_INT(config_parse_uint("420", 100, &v), -1);
}

/* out: expected result, NULL for an error. */
static void check_prep(const char *in, enum saslprep_mode mode,
		       const char *out)
{
	char *got = NULL;
	const char *why = NULL;
	int rc = saslprep(in, mode, &got, &why);
	if (out == NULL) {
		CHECK_INT(rc, -1);
		CHECK(why != NULL);
	} else {
		CHECK_INT(rc, 0);
		CHECK_STR(got, out);
	}
	free(got);
}

static void test_saslprep(void)
{
	/* RFC 4013 3, examples 1-7 */
	check_prep("I\u00adX", SASLPREP_STORED, "IX");
	check_prep("user", SASLPREP_STORED, "user");
	check_prep("USER", SASLPREP_STORED, "USER");
	check_prep("\u00aa", SASLPREP_STORED, "a");
	check_prep("\u2168", SASLPREP_STORED, "IX");
	check_prep("\a", SASLPREP_STORED, NULL);
	check_prep("\u0627" "1", SASLPREP_STORED, NULL);
	/* Non-ASCII spaces become U+0020 (C.1.2); zero-width ones go (B.1);
	 * compatibility characters fold (NFKC). */
	check_prep("correct\u00a0horse", SASLPREP_STORED, "correct horse");
	check_prep("correct\u3000horse", SASLPREP_STORED, "correct horse");
	check_prep("cor\u2060rect", SASLPREP_STORED, "correct");
	/* U+200B is in both C.1.2 and B.1: mapped to SPACE, the first rule
	 * of RFC 4013 2.1. */
	check_prep("cor\u200brect", SASLPREP_STORED, "cor rect");
	check_prep("\uff30\uff41\uff53\uff53", SASLPREP_STORED, "Pass");
	check_prep("\ufb01le", SASLPREP_STORED, "file");
	check_prep("Cafe\u0301", SASLPREP_STORED, "Caf\u00e9");
	check_prep("\u00e9t\u00e9", SASLPREP_QUERY, "\u00e9t\u00e9");
	/* U+0221 was unassigned in Unicode 3.2: a query passes, a stored
	 * string does not (RFC 3454 7). */
	check_prep("x\u0221", SASLPREP_QUERY, "x\u0221");
	check_prep("x\u0221", SASLPREP_STORED, NULL);
	/* Prohibited: ASCII and non-ASCII controls, private use,
	 * non-characters; not UTF-8; nothing left. */
	check_prep("a\tb", SASLPREP_QUERY, NULL);
	check_prep("a\xc2\x85" "b", SASLPREP_QUERY, NULL);
	check_prep("a\ue000b", SASLPREP_QUERY, NULL);
	check_prep("a\ufffeb", SASLPREP_QUERY, NULL);
	check_prep("a\xff" "b", SASLPREP_QUERY, NULL);
	check_prep("a\xc0\xaf" "b", SASLPREP_QUERY, NULL);
	check_prep("\u00ad", SASLPREP_QUERY, NULL);
	check_prep("", SASLPREP_QUERY, NULL);
	CHECK_INT(utf8_length("caf\u00e9 \u2603"), 6);
}

static void check_b64(const char *in, unsigned flags, const char *expect)
{
	struct buf b;
	buf_init(&b, 0);
	int rc = base64_decode(in, strlen(in), flags, &b);
	if (expect == NULL) {
		CHECK_INT(rc, -1);
	} else {
		CHECK_INT(rc, 0);
		CHECK_MEM(b.data ? b.data : "", b.len, expect, strlen(expect));
	}
	buf_free(&b);
}

static void test_base64(void)
{
	check_b64("Zm9vYmFy", BASE64_STRICT, "foobar");
	check_b64("Zm9vYg==", BASE64_STRICT, "foob");
	check_b64("Zm9vYmE=", BASE64_STRICT, "fooba");
	check_b64("", BASE64_STRICT, "");
	check_b64("Zm9vY", BASE64_STRICT, NULL);
	check_b64("Zm=vYg==", BASE64_STRICT, NULL);
	check_b64("Zm9v\nYg==", BASE64_STRICT, NULL);
	check_b64("Zg==Zg==", BASE64_STRICT, NULL);
	check_b64("Z===", BASE64_STRICT, NULL);
	check_b64("Zm9v-_==", BASE64_STRICT, NULL);
	/* DKIM tag values: folding white space anywhere */
	check_b64(" Zm9v\r\n\tYmFy ", BASE64_SKIP_WS, "foobar");
	check_b64("Zm9vYg= =", BASE64_SKIP_WS, "foob");
	check_b64("Zm9vYg== x", BASE64_SKIP_WS, NULL);
	char *e = base64_encode("fo", 2);
	CHECK_STR(e, "Zm8=");
	free(e);
	struct buf b;
	buf_init(&b, 0);
	base64_encode_buf(&b, "foobar", 6);
	CHECK_STR(b.data, "Zm9vYmFy");
	buf_free(&b);
}

/* Parses a whole request (header and payload): 0 or -1. */
static int parse_whole(const struct buf *b, struct outwire_request *r)
{
	uint32_t type, len;
	const char *why = NULL;
	memset(r, 0, sizeof(*r));
	if (b->len < 8 || outwire_header_parse((const uint8_t *)b->data, &type,
					      &len) < 0 || len != b->len - 8)
		return -1;
	int rc = outwire_request_parse(type, (const uint8_t *)b->data + 8, len,
				       r, &why);
	if (rc < 0)
		CHECK(why != NULL);
	return rc;
}

static void test_outwire(void)
{
	static const char *const hdr[] = {"Rcpt: \xc3\xa9@example.test",
					  "Expect:"};
	struct outhttp_request rq = {
		.method = "POST", .url = "http://127.0.0.1:11333/checkv2",
		.headers = hdr, .header_count = 2, .body = "a\0b", .body_len = 3,
		.timeout_ms = 1000, .connect_timeout_ms = 1000,
		.answer_max = 100,
	};
	struct buf b;
	struct outwire_request r;
	buf_init(&b, 0);
	CHECK_INT(outwire_http_encode(&rq, &b), 0);
	CHECK_INT(parse_whole(&b, &r), 0);
	CHECK_STR(r.http.url, rq.url);
	CHECK_INT(r.http.header_count, 2);
	CHECK_STR(r.http.headers[0], hdr[0]);
	CHECK_INT(r.http.body_len, 3);
	CHECK(r.http.body != NULL && memcmp(r.http.body, "a\0b", 3) == 0);
	CHECK(r.http.resolve == NULL && r.http.ca_file == NULL);
	outwire_request_deinit(&r);
	/* every cut short, one byte more: refused */
	for (size_t n = 8; n < b.len; n++) {
		struct buf cut = {.data = b.data, .len = n};
		uint8_t h[8];
		memcpy(h, b.data, 8);
		outwire_put32(h + 4, (uint32_t)(n - 8));
		uint32_t type, len;
		if (outwire_header_parse(h, &type, &len) < 0)
			continue;
		const char *why = NULL;
		CHECK_INT(outwire_request_parse(type, (const uint8_t *)cut.data + 8,
						n - 8, &r, &why), -1);
		outwire_request_deinit(&r);
	}
	buf_append_char(&b, 'x');
	outwire_put32((uint8_t *)b.data + 4, (uint32_t)(b.len - 8));
	CHECK_INT(parse_whole(&b, &r), -1);
	outwire_request_deinit(&r);
	buf_free(&b);
	/* what the encoder refuses, the parser never sees */
	struct outhttp_request bad = rq;
	bad.method = "PUT";
	CHECK_INT(outwire_http_encode(&bad, &b), -1);
	bad = rq;
	bad.https_only = true;              /* an http:// URL */
	CHECK_INT(outwire_http_encode(&bad, &b), -1);
	bad = rq;
	bad.method = "GET";                 /* with a body */
	CHECK_INT(outwire_http_encode(&bad, &b), -1);
	static const char *const smuggled[] = {"Rcpt: a\r\nX-Evil: 1"};
	bad = rq;
	bad.headers = smuggled;
	bad.header_count = 1;
	CHECK_INT(outwire_http_encode(&bad, &b), -1);
	bad = rq;
	bad.connect_timeout_ms = 2000;      /* beyond the whole */
	CHECK_INT(outwire_http_encode(&bad, &b), -1);
	bad = rq;
	bad.ca_file = "relative.pem";
	CHECK_INT(outwire_http_encode(&bad, &b), -1);
	CHECK_INT(b.len, 0);
	/* a flag bit that means nothing: refused */
	CHECK_INT(outwire_http_encode(&rq, &b), 0);
	b.data[8 + 12] = 2;
	CHECK_INT(parse_whole(&b, &r), -1);
	outwire_request_deinit(&r);
	buf_free(&b);

	/* CONNECT: exactly 24 bytes, port not 0, IPv4 padding zero */
	struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(25)};
	s4.sin_addr.s_addr = htonl(0x7f000001);
	CHECK_INT(outwire_connect_encode((struct sockaddr *)&s4, sizeof(s4),
					 5000, &b), 0);
	CHECK_INT(parse_whole(&b, &r), 0);
	CHECK_INT(r.timeout_ms, 5000);
	CHECK(r.addr_len == sizeof(s4) &&
	      ((struct sockaddr_in *)&r.addr)->sin_port == htons(25));
	b.data[8 + 10] = 1;                 /* padding */
	CHECK_INT(parse_whole(&b, &r), -1);
	b.data[8 + 10] = 0;
	b.data[8 + 2] = b.data[8 + 3] = 0;  /* port 0 */
	CHECK_INT(parse_whole(&b, &r), -1);
	buf_free(&b);

	/* SIGN: a hash of 1..64 bytes and a header */
	CHECK_INT(outwire_sign_encode((const uint8_t *)"h", 1, "", 0, &b), -1);
	CHECK_INT(outwire_sign_encode((const uint8_t *)"h", 1, "A: b\r\n\r\n",
				      8, &b), 0);
	CHECK_INT(parse_whole(&b, &r), 0);
	CHECK_INT(r.hash_len, 1);
	CHECK_INT(r.head_len, 8);
	outwire_put32((uint8_t *)b.data + 8, 9);    /* hash past the header */
	CHECK_INT(parse_whole(&b, &r), -1);
	buf_free(&b);

	/* answers: status range, the body at most what was asked */
	struct outhttp_answer a = {.status = 200, .content_type = "text/plain",
				   .body = "0123456789", .body_len = 10};
	struct outhttp_answer got;
	outwire_http_answer_encode(&a, &b);
	CHECK_INT(outwire_http_answer_parse((const uint8_t *)b.data, b.len, 10,
					    &got), 0);
	CHECK_STR(got.content_type, "text/plain");
	CHECK_STR(got.body, "0123456789");
	outhttp_answer_free(&got);
	CHECK_INT(outwire_http_answer_parse((const uint8_t *)b.data, b.len, 9,
					    &got), -1);
	outwire_put32((uint8_t *)b.data, 99);
	CHECK_INT(outwire_http_answer_parse((const uint8_t *)b.data, b.len, 10,
					    &got), -1);
	buf_free(&b);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"outwire", test_outwire},
		{"base64", test_base64},
		{"buf_limit", test_buf_limit},
		{"config_parse", test_config_parse},
		{"config_values", test_config_values},
		{"saslprep", test_saslprep},
		{NULL, NULL},
	};
	return test_main(cases);
}
