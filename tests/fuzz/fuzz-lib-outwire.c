/*
 * Fuzz target for the outbound process's request parser
 * (src/lib/outwire.c): what loftd's outbound process accepts from the
 * mail process (TCP connections, DKIM signatures, HTTP requests), which
 * it trusts no more than a network client.
 *
 * The input is a whole request (the 8-byte header, then the payload). A
 * request the parser accepts must be the canonical encoding of what it
 * parsed: encoding the parsed request again gives the same bytes, so no
 * field is skipped, truncated or read past. Every input is also fed to
 * the HTTP answer parser (the mail process's side), with the same rule.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "outwire.h"

static void same(const struct buf *b, const uint8_t *data, size_t size)
{
	if (b->len != size || memcmp(b->data, data, size) != 0)
		abort();
}

static void request(const uint8_t *data, size_t size)
{
	uint32_t type, len;
	if (size < 8 || outwire_header_parse(data, &type, &len) < 0 ||
	    len != size - 8)
		return;
	struct outwire_request r;
	const char *why = NULL;
	int rc = outwire_request_parse(type, data + 8, len, &r, &why);
	if (rc < 0) {
		if (why == NULL)
			abort();
		outwire_request_deinit(&r);
		return;
	}
	struct buf b;
	buf_init(&b, 0);
	switch (type) {
	case OUTWIRE_CONNECT:
		rc = outwire_connect_encode((const struct sockaddr *)&r.addr,
					    r.addr_len, r.timeout_ms, &b);
		break;
	case OUTWIRE_SIGN:
		rc = outwire_sign_encode(r.hash, r.hash_len, r.head, r.head_len,
					 &b);
		break;
	case OUTWIRE_HTTP:
		/* what curl is given: NUL-terminated, within the bounds */
		if (strlen(r.http.url) > OUTHTTP_URL_MAX ||
		    r.http.body_len > OUTHTTP_BODY_MAX)
			abort();
		for (size_t i = 0; i < r.http.header_count; i++)
			if (strlen(r.http.headers[i]) > OUTHTTP_HEADER_MAX)
				abort();
		rc = outwire_http_encode(&r.http, &b);
		break;
	default:
		abort();
	}
	if (rc < 0)
		abort();
	same(&b, data, size);
	buf_free(&b);
	outwire_request_deinit(&r);
}

static void answer(const uint8_t *data, size_t size)
{
	struct outhttp_answer a;
	if (outwire_http_answer_parse(data, size, OUTHTTP_ANSWER_MAX, &a) < 0)
		return;
	if (a.body == NULL || a.body_len > OUTHTTP_ANSWER_MAX)
		abort();
	struct buf b;
	buf_init(&b, 0);
	outwire_http_answer_encode(&a, &b);
	same(&b, data, size);
	buf_free(&b);
	outhttp_answer_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	request(data, size);
	answer(data, size);
	return 0;
}
