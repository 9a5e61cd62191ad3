/*
 * Header fields: walking a header block, finding a field, unfolding, and
 * RFC 2047 encoded words. Lenient as real mail needs: a line without a
 * colon is skipped, encoded words are found even where RFC 2047 5 does not
 * allow them (inside quoted strings, glued to other text), and raw 8-bit
 * bytes are taken as UTF-8 when valid (RFC 6532) or as Windows-1252.
 */
#include "mail-private.h"

#include <string.h>
#include <strings.h>

bool mail_slice_eq_ci(struct slice s, const char *lit)
{
	size_t n = strlen(lit);
	return s.len == n && strncasecmp(s.ptr, lit, n) == 0;
}

char *mail_buf_take(struct buf *b)
{
	if (b->data == NULL)
		return xstrdup("");
	size_t len;
	return buf_steal(b, &len);
}

void mail_header_iter_init(struct mail_header_iter *it, const char *hdr,
			   size_t len)
{
	it->p = hdr;
	it->end = hdr + len;
}

/* End of the line at p (just past its LF, or end). */
static const char *line_end(const char *p, const char *end)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));
	return lf != NULL ? lf + 1 : end;
}

static bool line_is_blank(const char *p, const char *end)
{
	return (p < end && *p == '\n') ||
	       (end - p >= 2 && p[0] == '\r' && p[1] == '\n');
}

int mail_header_iter_next(struct mail_header_iter *it, struct slice *name_r,
			  struct slice *value_r)
{
	while (it->p < it->end) {
		const char *p = it->p;
		if (line_is_blank(p, it->end)) {
			it->p = it->end;
			return 0;
		}
		const char *e = line_end(p, it->end);
		/* take the continuation lines too */
		while (e < it->end && (*e == ' ' || *e == '\t'))
			e = line_end(e, it->end);
		it->p = e;
		const char *colon = memchr(p, ':', (size_t)(e - p));
		if (colon == NULL || *p == ' ' || *p == '\t')
			continue;
		const char *ne = colon;
		while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
			ne--;
		if (ne == p)
			continue;
		const char *v = colon + 1;
		while (v < e && (*v == ' ' || *v == '\t'))
			v++;
		const char *ve = e;
		if (ve > v && ve[-1] == '\n')
			ve--;
		if (ve > v && ve[-1] == '\r')
			ve--;
		*name_r = slice_make(p, (size_t)(ne - p));
		*value_r = slice_make(v, (size_t)(ve - v));
		return 1;
	}
	return 0;
}

size_t mail_header_size(const char *data, size_t len)
{
	const char *p = data, *end = data + len;
	while (p < end) {
		if (line_is_blank(p, end))
			return (size_t)(line_end(p, end) - data);
		p = line_end(p, end);
	}
	return len;
}

bool mail_header_find(const char *hdr, size_t len, const char *name,
		      struct slice *value_r)
{
	struct mail_header_iter it;
	struct slice n, v;
	mail_header_iter_init(&it, hdr, len);
	while (mail_header_iter_next(&it, &n, &v) > 0) {
		if (mail_slice_eq_ci(n, name)) {
			*value_r = v;
			return true;
		}
	}
	return false;
}

void mail_header_unfold(struct buf *out, struct slice value)
{
	size_t run = 0;
	for (size_t i = 0; i < value.len; i++) {
		if (value.ptr[i] == '\r' || value.ptr[i] == '\n') {
			mail_buf_put(out, value.ptr + run, i - run);
			run = i + 1;
		}
	}
	mail_buf_put(out, value.ptr + run, value.len - run);
}

/* ---- RFC 2047 ------------------------------------------------------ */

struct encoded_word {
	struct slice charset;   /* without *language (RFC 2231 5) */
	char enc;               /* 'B' or 'Q' */
	struct slice text;
	size_t len;             /* whole word, "=?" to "?=" */
};

static bool parse_encoded_word(const char *s, size_t len,
			       struct encoded_word *w)
{
	if (len < 8 || s[0] != '=' || s[1] != '?')
		return false;
	size_t i = 2;
	while (i < len && s[i] != '?' && !mail_is_lwsp(s[i]))
		i++;
	if (i == 2 || i + 2 >= len || s[i] != '?')
		return false;
	w->charset = slice_make(s + 2, i - 2);
	const char *star = memchr(w->charset.ptr, '*', w->charset.len);
	if (star != NULL)
		w->charset.len = (size_t)(star - w->charset.ptr);
	char e = s[i + 1];
	if (e == 'b')
		e = 'B';
	if (e == 'q')
		e = 'Q';
	if ((e != 'B' && e != 'Q') || s[i + 2] != '?')
		return false;
	size_t t = i + 3, j = t;
	while (j + 1 < len && !(s[j] == '?' && s[j + 1] == '=')) {
		if (s[j] == '\r' || s[j] == '\n' || s[j] == ' ' || s[j] == '\t')
			return false;
		j++;
	}
	if (j + 1 >= len)
		return false;
	w->enc = e;
	w->text = slice_make(s + t, j - t);
	w->len = j + 2;
	return true;
}

static void decode_word_bytes(struct buf *out, const struct encoded_word *w)
{
	if (w->enc == 'B') {
		struct mail_b64 st = {0};
		mail_b64_decode(&st, out, w->text.ptr, w->text.len);
		return;
	}
	for (size_t i = 0; i < w->text.len; i++) {
		char c = w->text.ptr[i];
		int h, l;
		if (c == '_') {
			mail_buf_putc(out, ' ');
		} else if (c == '=' && i + 2 < w->text.len &&
			   (h = mail_hexval(w->text.ptr[i + 1])) >= 0 &&
			   (l = mail_hexval(w->text.ptr[i + 2])) >= 0) {
			mail_buf_putc(out, (char)(h * 16 + l));
			i += 2;
		} else {
			mail_buf_putc(out, c);
		}
	}
}

/* Converts the pending bytes of one charset run and clears them. */
static void flush_run(struct buf *out, struct buf *pending, char *charset)
{
	if (pending->len > 0)
		mail_charset_to_utf8(out, charset, pending->data, pending->len);
	buf_reset(pending);
}

void mail_decode_2047(struct buf *out, const char *s, size_t len)
{
	struct buf pending;
	char charset[64] = "";
	size_t i = 0, run = 0;
	/* position after the last encoded word, to drop whitespace between
	 * two words (RFC 2047 6.2) */
	size_t after_word = (size_t)-1;
	buf_init(&pending, 0);
	while (i < len) {
		struct encoded_word w;
		if (s[i] != '=' || i + 1 >= len || s[i + 1] != '?' ||
		    !parse_encoded_word(s + i, len - i, &w)) {
			i++;
			continue;
		}
		bool adjacent = after_word != (size_t)-1;
		for (size_t k = run; adjacent && k < i; k++) {
			if (!mail_is_lwsp(s[k]))
				adjacent = false;
		}
		char cs[64];
		size_t cl = w.charset.len < sizeof(cs) - 1 ? w.charset.len
							   : sizeof(cs) - 1;
		memcpy(cs, w.charset.ptr, cl);
		cs[cl] = '\0';
		if (!adjacent || strcasecmp(cs, charset) != 0) {
			flush_run(out, &pending, charset);
			if (!adjacent && i > run)
				mail_utf8_append_raw(out, s + run, i - run);
			memcpy(charset, cs, cl + 1);
		}
		decode_word_bytes(&pending, &w);
		i += w.len;
		run = i;
		after_word = i;
	}
	flush_run(out, &pending, charset);
	if (len > run)
		mail_utf8_append_raw(out, s + run, len - run);
	buf_free(&pending);
}

void mail_utf8_append_raw(struct buf *out, const char *s, size_t len)
{
	if (mail_utf8_valid(s, len))
		mail_buf_put(out, s, len);
	else
		mail_utf8_repair(out, s, len);
}

void mail_header_decode(struct buf *out, struct slice value)
{
	struct buf unfolded;
	buf_init(&unfolded, 0);
	mail_header_unfold(&unfolded, value);
	mail_decode_2047(out, unfolded.data ? unfolded.data : "", unfolded.len);
	buf_free(&unfolded);
}
