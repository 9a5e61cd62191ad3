/*
 * Fuzz target for the readers of the store's own records on disk, which
 * a damaged index or file makes untrusted input:
 *
 *   - the compressed search text (sq-text.c): any bytes decode to a text
 *     or fail, never more memory than the record can expand to; a text
 *     encoded and decoded comes back the same;
 *   - a copy's part map as the store shifts it behind a prefix
 *     (mail_parts_shift): any bytes are refused or give a map that
 *     mail_part_lookup and mail_section_get read without going past the
 *     message, as the unshifted one would.
 *
 * Input: [selector byte][bytes].
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mail.h"
#include "sqlite/sq-private.h"

static const char message[] =
	"Return-Path: <a@b>\r\nSubject: x\r\nContent-Type: multipart/mixed;"
	" boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
	"--b--\r\n";

static void text_record(const uint8_t *p, size_t n)
{
	struct buf out, enc, back;
	buf_init(&out, 0);
	buf_init(&enc, 0);
	buf_init(&back, 0);
	if (sq_text_decode(p, n, &out) == 0 && out.len > 1032 * n)
		abort();
	if (sq_text_encode((const char *)p, n, &enc) == 0) {
		if (sq_text_decode(enc.data, enc.len, &back) < 0 ||
		    back.len != n || memcmp(back.data, p, n) != 0)
			abort();
	}
	buf_free(&out);
	buf_free(&enc);
	buf_free(&back);
}

static void part_map(const uint8_t *p, size_t n)
{
	if (n < 1)
		return;
	uint64_t delta = p[0];
	struct buf shifted;
	buf_init(&shifted, 0);
	if (mail_parts_shift(p + 1, n - 1, delta, &shifted)) {
		uint32_t path[3] = {1, 1, 1};
		for (unsigned depth = 0; depth <= 3; depth++) {
			struct mail_part_info info;
			mail_part_lookup(shifted.data, shifted.len, path, depth,
					 &info);
			struct mail_section_spec spec = {.path_len = depth};
			memcpy(spec.path, path, sizeof(path));
			struct mail_section sec;
			if (mail_section_get(message, sizeof(message) - 1,
					     shifted.data, shifted.len, &spec,
					     &sec) == 0) {
				/* a part that is not there is "" */
				if (sec.owned.data == NULL && sec.len > 0 &&
				    (sec.ptr < message ||
				     sec.ptr + sec.len > message + sizeof(message) - 1))
					abort();
				mail_section_free(&sec);
			}
		}
	}
	buf_free(&shifted);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		text_record(data + 1, size - 1);
	else
		part_map(data + 1, size - 1);
	return 0;
}
