/*
 * Bounded command lines for the line-based front-ends (net.h, "Command
 * lines"): one reader, so POP3, LMTP and SMTP agree on what ends a line
 * (CRLF or a bare LF, as most servers accept) and on what a line that
 * never ends costs (max bytes, never more).
 */
#include "net.h"

#include <event2/buffer.h>
#include <sys/types.h>

#include "buf.h"

bool net_line_ready(struct evbuffer *in)
{
	size_t eol_len = 0;

	return evbuffer_search_eol(in, NULL, &eol_len,
				   EVBUFFER_EOL_CRLF).pos >= 0;
}

enum net_line net_line_take(struct evbuffer *in, size_t max, bool *skipping,
			    struct buf *line)
{
	size_t eol_len = 0;
	struct evbuffer_ptr p;

	buf_reset(line);
	buf_append(line, "", 0); /* "" rather than NULL for an empty line */
again:
	p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
	if (p.pos < 0) {
		size_t have = evbuffer_get_length(in);
		if (*skipping) {
			evbuffer_drain(in, have);
		} else if (have > max) {
			evbuffer_drain(in, have);
			*skipping = true;
			return NET_LINE_TOO_LONG;
		}
		return NET_LINE_MORE;
	}
	if (*skipping || (size_t)p.pos > max) {
		bool told = *skipping;
		evbuffer_drain(in, (size_t)p.pos + eol_len);
		*skipping = false;
		if (told)
			goto again; /* the end of a line already refused */
		return NET_LINE_TOO_LONG;
	}
	if (p.pos > 0 &&
	    buf_append(line, evbuffer_pullup(in, p.pos), (size_t)p.pos) < 0) {
		/* line's own max is below max: a line too long for it */
		evbuffer_drain(in, (size_t)p.pos + eol_len);
		return NET_LINE_TOO_LONG;
	}
	evbuffer_drain(in, eol_len + (size_t)p.pos);
	return NET_LINE_OK;
}
