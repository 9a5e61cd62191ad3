/*
 * What the store learns about a message when it is written: one call into
 * src/mail (ENVELOPE, BODYSTRUCTURE, part map, preview, sort and thread
 * fields, decoded search text), cached in the index so that FETCH and
 * SEARCH never re-read the blob. The search text is stored case-folded,
 * so that a substring test on it is IMAP SEARCH's case-insensitive match.
 */
#include "store-private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"

/* Simple case folding of one code point: ASCII and the common alphabets
 * (Latin-1, Latin Extended-A, Greek, Cyrillic). */
static uint32_t fold_cp(uint32_t c)
{
	if (c < 0x80)
		return c >= 'A' && c <= 'Z' ? c + 32 : c;
	if ((c >= 0xc0 && c <= 0xde && c != 0xd7))
		return c + 32;
	if (c >= 0x100 && c <= 0x137)
		return c | 1;
	if (c >= 0x139 && c <= 0x148)
		return (c & 1) ? c + 1 : c;
	if (c >= 0x14a && c <= 0x177)
		return c | 1;
	if (c == 0x178)
		return 0xff;
	if (c >= 0x179 && c <= 0x17e)
		return (c & 1) ? c + 1 : c;
	if (c >= 0x391 && c <= 0x3ab && c != 0x3a2)
		return c + 32;
	if (c == 0x386)
		return 0x3ac;
	if (c >= 0x388 && c <= 0x38a)
		return c + 37;
	if (c == 0x38c)
		return 0x3cc;
	if (c == 0x38e || c == 0x38f)
		return c + 63;
	if (c == 0x3c2) /* final sigma */
		return 0x3c3;
	if (c >= 0x410 && c <= 0x42f)
		return c + 32;
	if (c >= 0x400 && c <= 0x40f)
		return c + 80;
	return c;
}

static size_t put_utf8(char *o, uint32_t c)
{
	if (c < 0x80) {
		o[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = (char)(0xc0 | (c >> 6));
		o[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		o[0] = (char)(0xe0 | (c >> 12));
		o[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		o[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (c >> 18));
	o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	o[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

void store_text_fold(struct buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	char tmp[256];
	size_t t = 0;
	while (p < end) {
		uint32_t c = *p;
		size_t n = 1;
		if (c >= 0xc0 && c < 0xf8) {
			size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
			if ((size_t)(end - p) >= need) {
				uint32_t cp = c & (0x7f >> need);
				bool ok = true;
				for (size_t i = 1; i < need; i++) {
					if ((p[i] & 0xc0) != 0x80)
						ok = false;
					cp = (cp << 6) | (p[i] & 0x3f);
				}
				if (ok) {
					c = cp;
					n = need;
				}
			}
		}
		if (n == 1 && c >= 0x80) {
			/* An invalid byte stays as it is. */
			tmp[t++] = (char)c;
		} else {
			t += put_utf8(tmp + t, fold_cp(c));
		}
		p += n;
		if (t > sizeof(tmp) - 8) {
			buf_append(out, tmp, t);
			t = 0;
		}
	}
	buf_append(out, tmp, t);
}

/* ---- the analysis ------------------------------------------------- */

/* Header block size, blank line included. */
static size_t header_len(const char *d, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (d[i] != '\n')
			continue;
		if (i + 1 < len && d[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && d[i + 1] == '\r' && d[i + 2] == '\n')
			return i + 3;
	}
	return len;
}

/* The unfolded value of the first field called name, or "". */
static char *header_get(const char *h, size_t hlen, const char *name)
{
	size_t nlen = strlen(name);
	for (size_t i = 0; i < hlen;) {
		size_t eol = i;
		while (eol < hlen && h[eol] != '\n')
			eol++;
		if (eol - i > nlen && h[i + nlen] == ':' &&
		    strncasecmp(h + i, name, nlen) == 0) {
			struct buf b;
			buf_init(&b, 0);
			size_t j = i + nlen + 1;
			for (;;) {
				for (; j < eol; j++) {
					if (h[j] != '\r')
						buf_append_char(&b, h[j]);
				}
				/* folded continuation lines */
				if (eol + 1 < hlen &&
				    (h[eol + 1] == ' ' || h[eol + 1] == '\t')) {
					j = eol + 1;
					eol = j;
					while (eol < hlen && h[eol] != '\n')
						eol++;
					continue;
				}
				break;
			}
			size_t a = 0, z = b.len;
			while (a < z && (b.data[a] == ' ' || b.data[a] == '\t'))
				a++;
			while (z > a && (b.data[z - 1] == ' ' ||
					 b.data[z - 1] == '\t'))
				z--;
			char *r = xstrndup(b.data + a, z - a);
			buf_free(&b);
			return r;
		}
		i = eol + 1;
	}
	return xstrdup("");
}

static char *fold_dup(const char *s, size_t len, size_t *len_r)
{
	struct buf b;
	buf_init(&b, 0);
	store_text_fold(&b, s, len);
	buf_append(&b, "", 0);
	return buf_steal(&b, len_r);
}

void store_analyze(const char *data, size_t len, struct store_analysis *r)
{
	memset(r, 0, sizeof(*r));
	size_t hlen = header_len(data, len);
	r->message_id = header_get(data, hlen, "Message-ID");
	r->in_reply_to = header_get(data, hlen, "In-Reply-To");
	r->references = header_get(data, hlen, "References");
	r->sort_subject = header_get(data, hlen, "Subject");
	r->sort_from = header_get(data, hlen, "From");
	r->sort_to = header_get(data, hlen, "To");
	r->sort_cc = header_get(data, hlen, "Cc");
	r->sort_display_from = xstrdup(r->sort_from);
	r->sort_display_to = xstrdup(r->sort_to);
	r->preview = xstrdup("");
	r->header_text = fold_dup(data, hlen, &r->header_text_len);
	r->body_text = fold_dup(data + hlen, len - hlen, &r->body_text_len);
}

void store_analysis_free(struct store_analysis *r)
{
	free(r->envelope);
	free(r->bodystructure);
	free(r->body);
	free(r->parts);
	free(r->preview);
	free(r->sort_subject);
	free(r->sort_from);
	free(r->sort_to);
	free(r->sort_cc);
	free(r->sort_display_from);
	free(r->sort_display_to);
	free(r->message_id);
	free(r->in_reply_to);
	free(r->references);
	free(r->header_text);
	free(r->body_text);
	memset(r, 0, sizeof(*r));
}
