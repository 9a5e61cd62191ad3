/*
 * Fuzz target: the HTTP/1.1 request parser and the chunked decoder
 * (src/http/http-parser.c). The input is parsed whole and byte by byte;
 * both must agree (result, status, method, path, framing), and the body
 * after the head is decoded whole and byte by byte with the same result.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http-parser.h"

struct outcome {
	int rc;
	unsigned status;
	size_t used;
	char method[32], path[256];
	int body;
	uint64_t length;
};

static void parse(const uint8_t *data, size_t size, size_t step,
		  struct outcome *o)
{
	struct http_parser p;
	struct http_parser_limits lim = {.max_head = 4096, .max_target = 512,
					 .max_fields = 16};
	http_parser_init(&p, &lim);
	memset(o, 0, sizeof(*o));
	size_t pos = 0;
	while (pos < size) {
		size_t n = size - pos < step ? size - pos : step, used;
		o->rc = http_parser_feed(&p, (const char *)data + pos, n, &used);
		if (used > n)
			abort();
		pos += used;
		if (o->rc != 0)
			break;
	}
	o->used = pos;
	o->status = p.status;
	if (o->rc == 1) {
		strncpy(o->method, p.head.method, sizeof(o->method) - 1);
		strncpy(o->path, p.head.path, sizeof(o->path) - 1);
		o->body = p.head.body;
		o->length = p.head.content_length;
		for (unsigned i = 0; i < p.head.field_count; i++)
			if (strlen(p.head.fields[i].name) == 0)
				abort();
	}
	http_parser_deinit(&p);
}

static int dechunk(const uint8_t *data, size_t size, size_t step,
		   uint64_t *total, size_t *used_r)
{
	struct http_body b;
	http_body_init(&b, HTTP_BODY_CHUNKED, 0);
	size_t pos = 0;
	int rc = 0;
	while (pos < size) {
		size_t n = size - pos < step ? size - pos : step, used, dl;
		const char *d;
		rc = http_body_feed(&b, (const char *)data + pos, n, &used, &d,
				    &dl);
		if (used > n)
			abort();
		pos += used;
		if (rc < 0 || rc == 2)
			break;
	}
	*total = b.total;
	*used_r = pos;
	return rc < 0 ? -1 : http_body_done(&b) ? 2 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome a, b;
	parse(data, size, size ? size : 1, &a);
	parse(data, size, 1, &b);
	if (a.rc != b.rc || a.status != b.status ||
	    (a.rc == 1 && a.used != b.used) ||
	    strcmp(a.method, b.method) != 0 || strcmp(a.path, b.path) != 0 ||
	    a.body != b.body || a.length != b.length)
		abort();
	/* What follows the head, or the whole input, as a chunked body. */
	const uint8_t *rest = a.rc == 1 ? data + a.used : data;
	size_t rest_len = a.rc == 1 ? size - a.used : size;
	uint64_t t1, t2;
	size_t u1, u2;
	int r1 = dechunk(rest, rest_len, rest_len ? rest_len : 1, &t1, &u1);
	int r2 = dechunk(rest, rest_len, 1, &t2, &u2);
	if (r1 != r2 || (r1 == 2 && (t1 != t2 || u1 != u2)))
		abort();
	return 0;
}
