/*
 * base64 (RFC 4648 4, the standard alphabet with padding): the one
 * encoder and strict decoder every protocol uses (SASL in IMAP, POP3,
 * SMTP and the SMTP client, SCRAM, HTTP Basic, DKIM tags). MIME bodies
 * have their own forgiving, streaming decoder in src/mail.
 */
#ifndef LOFT_BASE64_H
#define LOFT_BASE64_H

#include <stddef.h>

#include "buf.h"

/* The encoding of len bytes, NUL-terminated (caller frees). */
char *base64_encode(const void *data, size_t len);
/* The same, appended to out. */
void base64_encode_buf(struct buf *out, const void *data, size_t len);

enum base64_flags {
	BASE64_STRICT = 0,
	/* Folding white space (SP, HTAB, CR, LF) anywhere is skipped: DKIM
	 * tag values (RFC 6376 3.5 "b=", 3.6.1 "p="). */
	BASE64_SKIP_WS = 1 << 0,
};

/* Appends the decoding of in to out. Strict: only the alphabet, a length
 * that is a multiple of 4, "=" padding only at the very end. 0, or -1
 * (out may hold a partial result; the caller discards it). */
int base64_decode(const char *in, size_t len, unsigned flags, struct buf *out);

#endif
