/*
 * SMTP's DATA decoder, I/O-free and strict about the end of data: only
 * <CRLF>.<CRLF> ends a message (RFC 5321 4.1.1.4), so none of the SMTP
 * smuggling variants ("\n.\n", "\r.\r", "\r\n.\n", "\n.\r\n", ...) does
 * (CVE-2023-51766 class). A bare LF or bare CR stays in the message as
 * data (the store turns a bare LF into a line end, as Postfix's
 * smtpd_forbid_bare_newline = normalize does); a dot is unstuffed only
 * after a CRLF. Any split of the input gives the same result.
 */
#ifndef LOFT_SMTP_DOT_H
#define LOFT_SMTP_DOT_H

#include <stddef.h>

#include "buf.h"

struct smtp_dot {
	int state;
};

void smtp_dot_init(struct smtp_dot *dot);
/* Decodes up to len bytes of in into out (which grows by at most len + 2:
 * a held-back CR or ".\r" may come out now). *consumed_r: input bytes
 * used. 1: the end-of-data line was consumed (what follows is the next
 * command); 0: all of in was used, more is needed; -1: out is full. */
int smtp_dot_feed(struct smtp_dot *dot, const char *in, size_t len,
		  size_t *consumed_r, struct buf *out);

#endif
