/*
 * Modified UTF-7 (RFC 3501 5.1.3), the IMAP mailbox name encoding before
 * UTF8=ACCEPT / IMAP4rev2, and UTF-8 validation. Decoding is strict: a
 * name has exactly one valid encoding, so "&-" for "&", no encoded
 * printable ASCII, no empty or non-minimal shifts, no bad padding bits,
 * and well-formed surrogate pairs; anything else is rejected.
 */
#ifndef LOFT_UTF7_H
#define LOFT_UTF7_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

/* UTF-8 -> modified UTF-7, appended to out. -1 if in is not valid UTF-8
 * (or out is full). */
int utf7_encode(const char *in, size_t len, struct buf *out);
/* Modified UTF-7 -> UTF-8, appended to out. -1 if in is not valid. */
int utf7_decode(const char *in, size_t len, struct buf *out);
/* Strict UTF-8: no overlongs, no surrogates, nothing past U+10FFFF. */
bool utf8_valid(const char *s, size_t len);

#endif
