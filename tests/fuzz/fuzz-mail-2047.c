/* Fuzz target: RFC 2047 decoding and header unfolding: the output is
 * always valid UTF-8. */
#include <stdint.h>
#include <stdlib.h>

#include "mail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf b;
	buf_init(&b, 0);
	mail_decode_2047(&b, (const char *)data, size);
	if (!mail_utf8_valid(b.data ? b.data : "", b.len))
		abort();
	buf_reset(&b);
	mail_header_decode(&b, slice_make((const char *)data, size));
	if (!mail_utf8_valid(b.data ? b.data : "", b.len))
		abort();
	buf_reset(&b);
	mail_base_subject(&b, (const char *)data, size);
	buf_reset(&b);
	mail_imap_string(&b, (const char *)data, size, false);
	buf_free(&b);
	return 0;
}
