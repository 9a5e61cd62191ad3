/*
 * A message as RETR and TOP send it (RFC 1939 3): the stored CRLF blob,
 * read from its read-only mapping through the session's output buffer, with
 * a "." added before every line that starts with "." (byte-stuffing) and
 * the ".\r\n" terminator after it. NUL bytes are replaced one for one by
 * 0x80 (the stored-form rule: only IMAP BINARY serves NULs; 0x80 is what
 * Dovecot substitutes too), so the octets sent, less the stuffing and the
 * terminator, are exactly the count LIST promised.
 *
 * net_conn_write() blocks this worker while the client's output backs up
 * and fails once the client is gone; at most one chunk is ever copied.
 */
#include "pop3-private.h"

#include <string.h>

/* Appends to the session's output buffer, NULs replaced on the way. */
static int out_put(struct pop3_session *s, const char *data, size_t len)
{
	while (len > 0) {
		if (s->out_len == POP3_OUT_CHUNK && pop3_flush(s) < 0)
			return -1;
		size_t n = POP3_OUT_CHUNK - s->out_len;
		if (n > len)
			n = len;
		char *dst = s->out + s->out_len;
		memcpy(dst, data, n);
		for (char *z = memchr(dst, '\0', n); z != NULL;
		     z = memchr(z + 1, '\0', (size_t)(dst + n - z - 1)))
			*z = (char)0x80;
		s->out_len += n;
		data += n;
		len -= n;
	}
	return 0;
}

int pop3_stream_message(struct pop3_session *s, const char *status,
			const char *data, size_t len, long body_lines)
{
	bool in_body = false, line_start = true;
	long left = body_lines;
	size_t pos = 0;

	/* The status line goes out with the first chunk of the message. */
	if (out_put(s, status, strlen(status)) < 0 || out_put(s, "\r\n", 2) < 0)
		return -1;

	while (pos < len) {
		if (in_body && body_lines >= 0 && left-- == 0)
			break;
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - line) + 1 : len - pos;
		/* The blank line ends the header (RFC 5322 2.1); TOP counts
		 * the lines after it. */
		bool blank = (n == 2 && line[0] == '\r') || (n == 1 && line[0] == '\n');
		if (line[0] == '.' && out_put(s, ".", 1) < 0)
			return -1;
		if (out_put(s, line, n) < 0)
			return -1;
		line_start = nl != NULL;
		if (blank)
			in_body = true;
		pos += n;
	}
	/* The terminator must start a line, even after a message whose last
	 * line has no CRLF. */
	if (!line_start && out_put(s, "\r\n", 2) < 0)
		return -1;
	/* Flushed when the buffer fills or the pipelined batch ends. */
	return out_put(s, ".\r\n", 3);
}
