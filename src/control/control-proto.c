/*
 * The control protocol's parsers (see control-proto.h). Everything here
 * works on byte ranges that are never assumed to be NUL-terminated.
 */
#include "control-proto.h"

#include <string.h>

#include "utf7.h"

int control_line_next(const char *data, size_t len, size_t max,
		      size_t *line_len_r, size_t *used_r)
{
	size_t scan = len < max + 1 ? len : max + 1;
	const char *lf = memchr(data, '\n', scan);
	if (lf == NULL)
		return len > max ? -1 : 0;
	*line_len_r = (size_t)(lf - data);
	*used_r = *line_len_r + 1;
	return 1;
}

/* The length of the UTF-8 sequence at s (at most len bytes), 0 if it is
 * not one valid character. ASCII is not handled here. */
static size_t utf8_char_len(const unsigned char *s, size_t len)
{
	size_t n = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 0;
	if (n == 0 || n > len || !utf8_valid((const char *)s, n))
		return 0;
	/* C1 controls (U+0080..U+009F) are control characters too. */
	if (s[0] == 0xC2 && s[1] < 0xA0)
		return 0;
	return n;
}

int control_request_parse(const char *line, size_t len,
			  struct control_request *req_r, const char **error_r)
{
	const unsigned char *p = (const unsigned char *)line;
	size_t i = 0;

	req_r->count = 0;
	if (len == 0) {
		*error_r = "empty request";
		return -1;
	}
	if (len > CONTROL_MAX_LINE) {
		*error_r = "request too long";
		return -1;
	}
	while (i < len) {
		size_t start = i;
		while (i < len && p[i] != ' ') {
			if (p[i] < 0x21 || p[i] == 0x7F) {
				*error_r = "control character in request";
				return -1;
			}
			if (p[i] < 0x80) {
				i++;
				continue;
			}
			size_t n = utf8_char_len(p + i, len - i);
			if (n == 0) {
				*error_r = "invalid UTF-8 in request";
				return -1;
			}
			i += n;
		}
		if (i == start) {
			*error_r = "empty word (leading, trailing or double space)";
			return -1;
		}
		if (i - start > CONTROL_MAX_WORD) {
			*error_r = "word too long";
			return -1;
		}
		if (req_r->count == CONTROL_MAX_WORDS) {
			*error_r = "too many words";
			return -1;
		}
		req_r->words[req_r->count++] = slice_make(line + start, i - start);
		if (i < len) {
			i++;   /* the space */
			if (i == len) {
				*error_r = "empty word (leading, trailing or double space)";
				return -1;
			}
		}
	}
	return 0;
}

bool control_text_valid(const char *text, size_t len)
{
	const unsigned char *p = (const unsigned char *)text;
	for (size_t i = 0; i < len;) {
		if (p[i] < 0x20 || p[i] == 0x7F)
			return false;
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = utf8_char_len(p + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

void control_text_append(struct buf *out, const char *text, size_t len)
{
	const unsigned char *p = (const unsigned char *)text;
	for (size_t i = 0; i < len;) {
		size_t n = 1;
		if (p[i] >= 0x80)
			n = utf8_char_len(p + i, len - i);
		if (n == 0 || p[i] < 0x20 || p[i] == 0x7F) {
			buf_append_char(out, '?');
			i++;
			continue;
		}
		buf_append(out, p + i, n);
		i += n;
	}
}

int control_reply_parse(const char *line, size_t len,
			enum control_reply_kind *kind_r, struct slice *text_r,
			const char **error_r)
{
	size_t skip;

	if (len > CONTROL_MAX_LINE) {
		*error_r = "reply line too long";
		return -1;
	}
	if (len >= 2 && line[0] == '*' && line[1] == ' ') {
		*kind_r = CONTROL_REPLY_DATA;
		skip = 2;
	} else if (len == 2 && memcmp(line, "ok", 2) == 0) {
		*kind_r = CONTROL_REPLY_OK;
		skip = 2;
	} else if (len > 3 && memcmp(line, "ok ", 3) == 0) {
		*kind_r = CONTROL_REPLY_OK;
		skip = 3;
	} else if (len > 4 && memcmp(line, "err ", 4) == 0) {
		*kind_r = CONTROL_REPLY_ERR;
		skip = 4;
	} else {
		*error_r = "malformed reply line";
		return -1;
	}
	if (!control_text_valid(line + skip, len - skip)) {
		*error_r = "control character or invalid UTF-8 in reply";
		return -1;
	}
	*text_r = slice_make(line + skip, len - skip);
	return 0;
}
