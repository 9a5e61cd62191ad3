/*
 * Modified UTF-7 <-> UTF-8 (RFC 3501 5.1.3): printable ASCII stands for
 * itself except "&", written "&-"; everything else is UTF-16 in a
 * modified BASE64 (',' instead of '/', no padding) between "&" and "-".
 */
#include "utf7.h"

#include <stdint.h>

#include "buf.h"

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

/* Decodes one UTF-8 code point at s; returns its length or 0 if invalid. */
static size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp_r)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp, min;
	if (c < 0x80) {
		*cp_r = c;
		return 1;
	} else if ((c & 0xe0) == 0xc0) {
		n = 2, cp = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3, cp = c & 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return n;
}

bool utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		uint32_t cp;
		size_t n = utf8_next(p + i, len - i, &cp);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

static int put_utf8(struct buf *out, uint32_t cp)
{
	char t[4];
	size_t n;
	if (cp < 0x80) {
		t[0] = (char)cp, n = 1;
	} else if (cp < 0x800) {
		t[0] = (char)(0xc0 | cp >> 6), t[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
	} else if (cp < 0x10000) {
		t[0] = (char)(0xe0 | cp >> 12);
		t[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		t[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
	} else {
		t[0] = (char)(0xf0 | cp >> 18);
		t[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		t[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		t[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
	}
	return buf_append(out, t, n);
}

int utf7_encode(const char *in, size_t len, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0;
	while (i < len) {
		if (p[i] >= 0x20 && p[i] < 0x7f) {
			if (buf_append_char(out, (char)p[i]) < 0 ||
			    (p[i] == '&' && buf_append_char(out, '-') < 0))
				return -1;
			i++;
			continue;
		}
		/* a run of non-printable-ASCII code points, as UTF-16 */
		if (buf_append_char(out, '&') < 0)
			return -1;
		uint32_t bits = 0;
		int nbits = 0;
		while (i < len && !(p[i] >= 0x20 && p[i] < 0x7f)) {
			uint32_t cp;
			size_t n = utf8_next(p + i, len - i, &cp);
			if (n == 0)
				return -1;
			i += n;
			uint16_t units[2];
			int nu = 1;
			if (cp >= 0x10000) {
				cp -= 0x10000;
				units[0] = (uint16_t)(0xd800 | (cp >> 10));
				units[1] = (uint16_t)(0xdc00 | (cp & 0x3ff));
				nu = 2;
			} else {
				units[0] = (uint16_t)cp;
			}
			for (int u = 0; u < nu; u++) {
				bits = bits << 16 | units[u];
				nbits += 16;
				while (nbits >= 6) {
					nbits -= 6;
					if (buf_append_char(out, b64[(bits >> nbits) & 0x3f]) < 0)
						return -1;
				}
				bits &= (1u << nbits) - 1;
			}
		}
		if (nbits > 0 &&
		    buf_append_char(out, b64[(bits << (6 - nbits)) & 0x3f]) < 0)
			return -1;
		if (buf_append_char(out, '-') < 0)
			return -1;
	}
	return 0;
}

/* Decodes the base64 run in[start..end) (between '&' and '-'). */
static int decode_run(const unsigned char *s, size_t n, struct buf *out)
{
	uint32_t bits = 0, high = 0;
	int nbits = 0;
	size_t units = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value(s[i]);
		if (v < 0)
			return -1;
		bits = bits << 6 | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		uint32_t u = (bits >> nbits) & 0xffff;
		bits &= (1u << nbits) - 1;
		units++;
		if (high != 0) {
			if (u < 0xdc00 || u > 0xdfff)
				return -1;
			uint32_t cp = 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00);
			high = 0;
			if (put_utf8(out, cp) < 0)
				return -1;
		} else if (u >= 0xd800 && u <= 0xdbff) {
			high = u;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			return -1;
		} else if (u >= 0x20 && u < 0x7f) {
			return -1;   /* printable ASCII must not be encoded */
		} else if (put_utf8(out, u) < 0) {
			return -1;
		}
	}
	/* leftover bits must be fewer than 6 and zero; no dangling surrogate */
	if (high != 0 || nbits >= 6 || bits != 0 || units == 0)
		return -1;
	return 0;
}

int utf7_decode(const char *in, size_t len, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0;
	bool prev_run = false;
	while (i < len) {
		if (p[i] < 0x20 || p[i] >= 0x7f)
			return -1;
		if (p[i] != '&') {
			if (buf_append_char(out, (char)p[i]) < 0)
				return -1;
			i++;
			prev_run = false;
			continue;
		}
		size_t j = i + 1;
		while (j < len && p[j] != '-')
			j++;
		if (j == len)
			return -1;
		if (j == i + 1) {
			if (buf_append_char(out, '&') < 0)
				return -1;
			prev_run = false;
		} else {
			/* two adjacent runs should have been one */
			if (prev_run || decode_run(p + i + 1, j - i - 1, out) < 0)
				return -1;
			prev_run = true;
		}
		i = j + 1;
	}
	return 0;
}
