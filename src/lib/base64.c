/*
 * base64.h: one table, one encoder, one strict decoder.
 */
#include "base64.h"

#include <stdint.h>
#include <stdlib.h>

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static void encode(char *o, const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		*o++ = alphabet[(v >> 18) & 63];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
		*o++ = i + 2 < len ? alphabet[v & 63] : '=';
	}
	*o = '\0';
}

char *base64_encode(const void *data, size_t len)
{
	char *out = xmalloc((len + 2) / 3 * 4 + 1);

	encode(out, data, len);
	return out;
}

void base64_encode_buf(struct buf *out, const void *data, size_t len)
{
	char *s = base64_encode(data, len);

	buf_append_str(out, s);
	free(s);
}

static int is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int base64_decode(const char *in, size_t len, unsigned flags, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)in;
	uint32_t v = 0;
	unsigned n = 0, pad = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		int d;

		if ((flags & BASE64_SKIP_WS) && is_ws(c))
			continue;
		if (c == '=') {
			/* "xx==" or "xxx=": padding only in a group's last two
			 * places, and nothing but padding (or space) after */
			if (n < 2)
				return -1;
			pad++;
			d = 0;
		} else if (pad > 0 || (d = value(c)) < 0) {
			return -1;
		}
		v = v << 6 | (uint32_t)d;
		if (++n < 4)
			continue;
		char o[3] = {(char)(v >> 16), (char)(v >> 8), (char)v};
		if (pad > 2 || buf_append(out, o, 3 - pad) < 0)
			return -1;
		if (pad > 0) {
			/* the end: only skippable space may follow */
			for (i++; i < len; i++)
				if (!(flags & BASE64_SKIP_WS) || !is_ws(p[i]))
					return -1;
			return 0;
		}
		n = 0;
		v = 0;
	}
	return n == 0 ? 0 : -1;
}
