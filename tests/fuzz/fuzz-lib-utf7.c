/*
 * Fuzz target for modified UTF-7 (src/lib/utf7.c, RFC 3501 5.1.3).
 *
 * Decoding is strict, so each mailbox name has exactly one encoding:
 * whatever utf7_decode accepts is valid UTF-8 and encodes back to the
 * same bytes (mUTF-7 -> UTF-8 -> mUTF-7 is the identity). The other way,
 * utf7_encode accepts exactly the valid UTF-8 (utf8_valid), and decoding
 * its output gives the input back.
 *
 * Input: [mode][bytes]; mode bit 0 picks which side the bytes are.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "utf7.h"

static bool same(const struct buf *b, const char *s, size_t len)
{
	return b->len == len && (len == 0 || memcmp(b->data, s, len) == 0);
}

static void from_utf7(const char *s, size_t len)
{
	struct buf utf8, again;

	buf_init(&utf8, 0);
	buf_init(&again, 0);
	if (utf7_decode(s, len, &utf8) == 0) {
		if (!utf8_valid(utf8.data, utf8.len) ||
		    utf7_encode(utf8.data, utf8.len, &again) < 0 ||
		    !same(&again, s, len))
			abort();
	}
	buf_free(&utf8);
	buf_free(&again);
}

static void from_utf8(const char *s, size_t len)
{
	struct buf utf7, again;

	buf_init(&utf7, 0);
	buf_init(&again, 0);
	bool valid = utf8_valid(s, len);
	int ret = utf7_encode(s, len, &utf7);
	if ((ret == 0) != valid)
		abort();
	if (ret == 0) {
		for (size_t i = 0; i < utf7.len; i++)
			if ((unsigned char)utf7.data[i] < 0x20 ||
			    (unsigned char)utf7.data[i] >= 0x7f)
				abort();
		if (utf7_decode(utf7.data, utf7.len, &again) < 0 ||
		    !same(&again, s, len))
			abort();
	}
	buf_free(&utf7);
	buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		from_utf8((const char *)data + 1, size - 1);
	else
		from_utf7((const char *)data + 1, size - 1);
	return 0;
}
