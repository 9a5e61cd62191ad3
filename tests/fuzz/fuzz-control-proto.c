/*
 * Fuzz target for the control protocol's parsers (src/control/
 * control-proto.c), the input loftd reads from loftctl and loftctl from
 * loftd.
 *
 * The input is a byte stream cut into lines by control_line_next, fed
 * whole and again in pieces (any split gives the same lines). Each line
 * goes through the request and the reply parser. Checks: a parsed
 * request's words are non-empty, within the limits, free of spaces and
 * control characters, and joined by single spaces give the line back; a
 * parsed reply's text is valid TEXT; control_text_append always makes
 * valid TEXT and leaves valid TEXT unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "control-proto.h"

static void check_request(const char *line, size_t len)
{
	struct control_request req;
	const char *error;
	if (control_request_parse(line, len, &req, &error) < 0) {
		if (error == NULL || error[0] == '\0')
			abort();
		return;
	}
	struct buf joined;
	buf_init(&joined, 0);
	if (req.count == 0 || req.count > CONTROL_MAX_WORDS)
		abort();
	for (size_t i = 0; i < req.count; i++) {
		const struct slice *w = &req.words[i];
		if (w->len == 0 || w->len > CONTROL_MAX_WORD ||
		    memchr(w->ptr, ' ', w->len) != NULL ||
		    !control_text_valid(w->ptr, w->len))
			abort();
		if (i > 0)
			buf_append_char(&joined, ' ');
		buf_append(&joined, w->ptr, w->len);
	}
	if (joined.len != len || memcmp(joined.data, line, len) != 0)
		abort();
	buf_free(&joined);
}

static void check_reply(const char *line, size_t len)
{
	enum control_reply_kind kind;
	struct slice text;
	const char *error;
	if (control_reply_parse(line, len, &kind, &text, &error) < 0)
		return;
	if (!control_text_valid(text.ptr, text.len) ||
	    text.ptr < line || text.ptr + text.len != line + len)
		abort();
	if (kind == CONTROL_REPLY_ERR && text.len == 0)
		abort();
}

static void check_text(const char *data, size_t len)
{
	struct buf out;
	buf_init(&out, 0);
	control_text_append(&out, data, len);
	if (!control_text_valid(out.data != NULL ? out.data : "", out.len))
		abort();
	if (control_text_valid(data, len) &&
	    (out.len != len || (len > 0 && memcmp(out.data, data, len) != 0)))
		abort();
	buf_free(&out);
}

/* Cuts data into lines; calls each check; returns how many lines. */
static size_t lines(const char *data, size_t len, size_t piece)
{
	struct buf pending;
	size_t count = 0, fed = 0;
	buf_init(&pending, 0);
	while (fed < len || pending.len > 0) {
		size_t n = len - fed < piece ? len - fed : piece;
		buf_append(&pending, data + fed, n);
		fed += n;
		size_t line_len, used;
		int r;
		while (pending.len > 0 &&
		       (r = control_line_next(pending.data, pending.len,
					      CONTROL_MAX_LINE, &line_len,
					      &used)) != 0) {
			if (r < 0) {
				buf_reset(&pending);
				count += 1000000;   /* a marker: overflow */
				break;
			}
			check_request(pending.data, line_len);
			check_reply(pending.data, line_len);
			buf_consume(&pending, used);
			count++;
		}
		if (fed == len)
			break;
	}
	buf_free(&pending);
	return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	check_text(p, size);
	size_t whole = lines(p, size, size > 0 ? size : 1);
	size_t split = lines(p, size, 7);
	/* The same lines whatever the pieces, unless a line overflowed (a
	 * reader drops the rest then: where it notices depends on the
	 * pieces). */
	if (whole < 1000000 && split < 1000000 && whole != split)
		abort();
	return 0;
}
