/*
 * A message as RETR and TOP send it (RFC 1939 3): the stored CRLF blob,
 * read from its read-only mapping through the session's output buffer, with
 * a "." added before every line that starts with "." (byte-stuffing) and
 * the ".\r\n" terminator after it. NUL bytes are replaced one for one by
 * 0x80 (the stored-form rule: only IMAP BINARY serves NULs; 0x80 is what
 * Dovecot substitutes too), so the octets sent, less the stuffing and the
 * terminator, are exactly the count LIST promised.
 *
 * The bytes go to the session's output (streamed: net_conn_write() blocks
 * this worker while the client's output backs up and fails once the client
 * is gone; at most one chunk is ever copied) or, for the read-ahead, to a
 * buffer. Both take the same runs: the text between two stuffed lines is
 * one copy, not one call per line.
 */
#include "pop3-private.h"

#include <string.h>

/* Where the reply goes: the session's output, or a buffer. */
struct sink {
	struct pop3_session *s;
	struct buf *buf;
};

static void nul_replace(char *p, size_t n)
{
	for (char *z = memchr(p, '\0', n); z != NULL;
	     z = memchr(z + 1, '\0', (size_t)(p + n - z - 1)))
		*z = (char)0x80;
}

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
		nul_replace(dst, n);
		s->out_len += n;
		data += n;
		len -= n;
	}
	return 0;
}

static int sink_put(struct sink *k, const char *data, size_t len)
{
	if (k->s != NULL)
		return out_put(k->s, data, len);
	size_t at = k->buf->len;
	if (buf_append(k->buf, data, len) < 0)
		return -1;
	nul_replace(k->buf->data + at, len);
	return 0;
}

/* How much of the message TOP sends: the header, the blank line that
 * ends it (RFC 5322 2.1), and at most body_lines lines after it. */
static size_t top_end(const char *data, size_t len, long body_lines)
{
	bool in_body = false;
	long left = body_lines;
	size_t pos = 0;

	while (pos < len) {
		if (in_body && left-- == 0)
			break;
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - line) + 1 : len - pos;
		if ((n == 2 && line[0] == '\r') || (n == 1 && line[0] == '\n'))
			in_body = true;
		pos += n;
	}
	return pos;
}

static int render(struct sink *k, const char *status, const char *data,
		  size_t len, long body_lines)
{
	size_t end = body_lines < 0 ? len : top_end(data, len, body_lines);
	const char *p = data, *e = data + end;

	/* The status line goes out with the first chunk of the message. */
	if (sink_put(k, status, strlen(status)) < 0 || sink_put(k, "\r\n", 2) < 0)
		return -1;
	if (p < e && *p == '.' && sink_put(k, ".", 1) < 0)
		return -1;
	while (p < e) {
		/* the run up to the next line that starts with "." */
		const char *q = p;
		const char *nl;
		while ((nl = memchr(q, '\n', (size_t)(e - q))) != NULL &&
		       (nl + 1 == e || nl[1] != '.'))
			q = nl + 1;
		const char *run_end = nl != NULL ? nl + 1 : e;
		if (sink_put(k, p, (size_t)(run_end - p)) < 0)
			return -1;
		if (nl != NULL && sink_put(k, ".", 1) < 0)
			return -1;
		p = run_end;
	}
	/* The terminator must start a line, even after a message whose last
	 * line has no CRLF. */
	if (end > 0 && data[end - 1] != '\n' && sink_put(k, "\r\n", 2) < 0)
		return -1;
	/* Flushed when the buffer fills or the pipelined batch ends. */
	return sink_put(k, ".\r\n", 3);
}

int pop3_stream_message(struct pop3_session *s, const char *status,
			const char *data, size_t len, long body_lines)
{
	struct sink k = {.s = s};
	return render(&k, status, data, len, body_lines);
}

void pop3_render_message(struct buf *out, const char *status,
			 const char *data, size_t len, long body_lines)
{
	struct sink k = {.buf = out};
	(void)render(&k, status, data, len, body_lines);
}
