/*
 * Content-transfer-encodings (RFC 2045 6): base64 and quoted-printable
 * decoding, streaming for base64 so a large attachment is decoded in
 * pieces, and the decoded sizes for BINARY.SIZE without building the
 * bytes. Lenient: characters outside the alphabet are skipped (RFC 2045
 * 6.8 says to ignore them), a broken "=" escape is kept literally.
 */
#include "mail-private.h"

#include <string.h>

static const signed char b64_val[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6,
	['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12,
	['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
	['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
	['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
	['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
	['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
	['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
	['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,
	['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,
	['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

void mail_b64_decode(struct mail_b64 *st, struct buf *out, const char *s,
		     size_t len)
{
	char tmp[1024];
	size_t n = 0;
	for (size_t i = 0; i < len && !st->done; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '=') {
			/* padding ends the data; what follows is ignored */
			if (st->bits > 0)
				st->done = true;
			continue;
		}
		int v = b64_val[c];
		if (v == 0)
			continue;
		st->acc = (st->acc << 6) | (uint32_t)(v - 1);
		st->bits += 6;
		if (st->bits >= 8) {
			st->bits -= 8;
			tmp[n++] = (char)((st->acc >> st->bits) & 0xFF);
			if (n == sizeof(tmp)) {
				mail_buf_put(out, tmp, n);
				n = 0;
			}
		}
	}
	mail_buf_put(out, tmp, n);
}

uint64_t mail_b64_decoded_size(const char *s, size_t len)
{
	uint64_t chars = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '=') {
			if (chars % 4 != 0)
				break;
			continue;
		}
		if (b64_val[c] != 0)
			chars++;
	}
	return chars / 4 * 3 + (chars % 4 == 0 ? 0 : chars % 4 - 1);
}

/* Decodes one line (without its line end) of quoted-printable. Returns
 * true if it ended with a soft line break. */
static bool qp_line(struct buf *out, const char *s, size_t len)
{
	/* RFC 2045 6.7 (3): trailing whitespace was added in transport */
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '=')
			continue;
		mail_buf_put(out, s + run, i - run);
		if (i + 1 == len)
			return true;
		int h, l;
		if (i + 2 < len && (h = mail_hexval(s[i + 1])) >= 0 &&
		    (l = mail_hexval(s[i + 2])) >= 0) {
			mail_buf_putc(out, (char)(h * 16 + l));
			i += 2;
		} else {
			mail_buf_putc(out, '=');
		}
		run = i + 1;
	}
	mail_buf_put(out, s + run, len - run);
	return false;
}

void mail_qp_decode(struct buf *out, const char *s, size_t len, bool header)
{
	(void)header;
	const char *p = s, *end = s + len;
	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *le = lf != NULL ? lf : end;
		const char *content_end = le;
		if (lf != NULL && content_end > p && content_end[-1] == '\r')
			content_end--;
		bool soft = qp_line(out, p, (size_t)(content_end - p));
		if (lf != NULL && !soft)
			mail_buf_put(out, content_end, (size_t)(lf + 1 - content_end));
		p = lf != NULL ? lf + 1 : end;
	}
}

uint64_t mail_qp_decoded_size(const char *s, size_t len)
{
	/* Decode in slices to keep memory bounded by the slice size. */
	uint64_t total = 0;
	struct buf tmp;
	buf_init(&tmp, 0);
	const char *p = s, *end = s + len;
	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *le = lf != NULL ? lf + 1 : end;
		buf_reset(&tmp);
		mail_qp_decode(&tmp, p, (size_t)(le - p), false);
		total += tmp.len;
		p = le;
	}
	buf_free(&tmp);
	return total;
}
