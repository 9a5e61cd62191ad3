/*
 * Fuzz target for src/migrate's mbox parsers: the splitter gives the
 * same calls whether the input comes whole, byte by byte or in pieces
 * of a size taken from the input (both quoting styles), begins and ends
 * pair up, and no message byte is lost or invented beyond the quoting;
 * the header filter runs over every message's start.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "migrate-parse.h"

struct trace {
	struct buf b;
	int open;
	size_t bytes;
};

static void ev_begin(void *ctx, const char *from, size_t len, time_t date)
{
	struct trace *t = ctx;
	if (t->open)
		abort();
	t->open = 1;
	buf_append_char(&t->b, 'B');
	buf_append(&t->b, from, len);
	buf_append(&t->b, &date, sizeof(date));
}

static void ev_data(void *ctx, const char *data, size_t len)
{
	struct trace *t = ctx;
	if (!t->open || len == 0)
		abort();
	t->bytes += len;
	buf_append(&t->b, data, len);
}

static void ev_end(void *ctx)
{
	struct trace *t = ctx;
	if (!t->open)
		abort();
	t->open = 0;
	buf_append_char(&t->b, 'E');
}

static void run(enum mbox_format f, const char *s, size_t n, size_t step,
		struct trace *t)
{
	buf_init(&t->b, 0);
	t->open = 0;
	t->bytes = 0;
	struct mbox_callbacks cb = {ev_begin, ev_data, ev_end, t};
	struct mbox_parser *p = mbox_parser_create(f, &cb);
	for (size_t i = 0; i < n; i += step)
		mbox_parser_feed(p, s + i, n - i < step ? n - i : step);
	mbox_parser_finish(p);
	if (t->open || t->bytes + mbox_parser_junk(p) > n)
		abort();
	mbox_parser_destroy(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	size_t step = (size_t)(data[0] % 17) + 2;
	enum mbox_format f = data[0] & 0x80 ? MBOX_O : MBOX_RD;
	struct trace whole, bytes, pieces;
	run(f, s, n, n > 0 ? n : 1, &whole);
	run(f, s, n, 1, &bytes);
	run(f, s, n, step, &pieces);
	if (whole.b.len != bytes.b.len || whole.b.len != pieces.b.len ||
	    (whole.b.len > 0 &&
	     (memcmp(whole.b.data, bytes.b.data, whole.b.len) != 0 ||
	      memcmp(whole.b.data, pieces.b.data, whole.b.len) != 0)))
		abort();
	buf_free(&whole.b);
	buf_free(&bytes.b);
	buf_free(&pieces.b);

	struct buf out;
	struct mbox_meta meta;
	buf_init(&out, 0);
	mbox_header_filter(s, n, &out, &meta);
	if (out.len > n)
		abort();
	for (size_t i = 0; i < meta.keyword_count; i++)
		if (!migrate_keyword_valid(meta.keywords[i],
					   strlen(meta.keywords[i])))
			abort();
	mbox_meta_free(&meta);
	buf_free(&out);
	time_t t;
	(void)mbox_from_line(s, n, &t);
	return 0;
}
