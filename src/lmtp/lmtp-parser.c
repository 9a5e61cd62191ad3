/*
 * LMTP/SMTP syntax without I/O: command verbs, paths and ESMTP parameters
 * (RFC 5321 4.1.2, 4.1.1.11) and the DATA decoder (RFC 5321 4.5.2). See
 * lmtp-parser.h for the contracts; every function here is fed untrusted
 * bytes and must stay within them.
 */
#include "lmtp-parser.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

int lmtp_parse_verb(const char *line, size_t len, char verb_r[16],
		    struct slice *args_r)
{
	size_t i = 0;

	for (size_t k = 0; k < len; k++) {
		unsigned char c = (unsigned char)line[k];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -1;
	}
	while (i < len && line[i] != ' ') {
		if (i >= 15 || !isalpha((unsigned char)line[i]))
			return -1;
		verb_r[i] = (char)toupper((unsigned char)line[i]);
		i++;
	}
	if (i == 0)
		return -1;
	verb_r[i] = '\0';
	if (i < len)
		i++; /* the space */
	*args_r = slice_make(line + i, len - i);
	return 0;
}

/* RFC 5321 4.1.2 atext (from RFC 5322 3.2.3). */
static bool is_atext(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* The path scanner: p..end is the input, out collects the address. */
struct path_scan {
	const char *p, *end;
	char *out;
	size_t out_len;
	bool strict;
	const char *why;
};

static int out_char(struct path_scan *s, char c)
{
	if (s->out_len >= LMTP_PATH_MAX) {
		s->why = "Address too long";
		return -1;
	}
	s->out[s->out_len++] = c;
	return 0;
}

static int scan_quoted(struct path_scan *s)
{
	s->p++; /* opening quote */
	while (s->p < s->end && *s->p != '"') {
		unsigned char c = (unsigned char)*s->p;
		if (c == '\\') {
			if (++s->p >= s->end)
				break;
			c = (unsigned char)*s->p;
		}
		if (c < 0x20 || c == 0x7f || (s->strict && c > 0x7e)) {
			s->why = "Invalid character in quoted local-part";
			return -1;
		}
		if (out_char(s, (char)c) < 0)
			return -1;
		s->p++;
	}
	if (s->p >= s->end) {
		s->why = "Unterminated quoted local-part";
		return -1;
	}
	s->p++; /* closing quote */
	return 0;
}

static int scan_dot_string(struct path_scan *s)
{
	bool after_dot = true; /* no leading dot */

	while (s->p < s->end && *s->p != '@' && *s->p != '>') {
		unsigned char c = (unsigned char)*s->p;
		if (c == '.') {
			if (s->strict && after_dot) {
				s->why = "Invalid dots in local-part";
				return -1;
			}
			after_dot = true;
		} else if (is_atext(c) || (!s->strict && c > 0x20 && c != 0x7f &&
					   c != '<')) {
			after_dot = false;
		} else {
			s->why = "Invalid character in local-part";
			return -1;
		}
		if (out_char(s, (char)c) < 0)
			return -1;
		s->p++;
	}
	if (s->strict && after_dot) {
		s->why = s->out_len == 0 ? "Empty local-part"
					  : "Invalid dots in local-part";
		return -1;
	}
	return 0;
}

/* Domain: sub-domains of letters, digits and inner hyphens (RFC 5321
 * 4.1.2), or an address literal "[...]". */
static int scan_domain(struct path_scan *s)
{
	size_t start = s->out_len, label = 0;
	char prev = '.';

	if (s->p < s->end && *s->p == '[') {
		while (s->p < s->end && *s->p != ']') {
			unsigned char c = (unsigned char)*s->p;
			if (c <= 0x20 || c >= 0x7f || c == '\\' ||
			    (c == '[' && s->out_len != start)) {
				s->why = "Invalid address literal";
				return -1;
			}
			if (out_char(s, (char)c) < 0)
				return -1;
			s->p++;
		}
		if (s->p >= s->end || s->out_len == start + 1) {
			s->why = "Invalid address literal";
			return -1;
		}
		s->p++;
		return out_char(s, ']');
	}
	while (s->p < s->end && *s->p != '>') {
		unsigned char c = (unsigned char)*s->p;
		bool ok;
		if (s->strict)
			ok = isalnum(c) || (c == '-' && prev != '.') ||
			     (c == '.' && prev != '.' && prev != '-');
		else
			ok = c > 0x20 && c != 0x7f && c != '<';
		if (!ok || (c != '.' && ++label > 63)) {
			s->why = "Invalid domain";
			return -1;
		}
		if (c == '.')
			label = 0;
		if (out_char(s, (char)c) < 0)
			return -1;
		prev = (char)c;
		s->p++;
	}
	if (s->out_len == start || (s->strict && (prev == '.' || prev == '-'))) {
		s->why = "Invalid domain";
		return -1;
	}
	if (s->out_len - start > LMTP_DOMAIN_MAX) {
		s->why = "Domain too long";
		return -1;
	}
	return 0;
}

static int scan_mailbox(struct path_scan *s, struct lmtp_path *path)
{
	int ret = (s->p < s->end && *s->p == '"') ? scan_quoted(s)
						   : scan_dot_string(s);
	if (ret < 0)
		return -1;
	path->local_len = s->out_len;
	if (s->strict && path->local_len > LMTP_LOCAL_MAX) {
		s->why = "Local-part too long";
		return -1;
	}
	if (s->p >= s->end || *s->p != '@') {
		s->why = "Missing domain";
		return -1;
	}
	s->p++;
	if (out_char(s, '@') < 0 || scan_domain(s) < 0)
		return -1;
	return 0;
}

int lmtp_parse_path(struct slice args, const char *want, bool strict,
		    bool allow_null, struct lmtp_path *path_r,
		    struct slice *params_r, const char **why_r)
{
	size_t wlen = strlen(want);
	struct path_scan s = {
		.p = args.ptr, .end = args.ptr + args.len,
		.out = path_r->address, .strict = strict,
	};

	memset(path_r, 0, sizeof(*path_r));
	if (args.len < wlen + 1 || strncasecmp(args.ptr, want, wlen) != 0 ||
	    args.ptr[wlen] != ':') {
		*why_r = strcmp(want, "FROM") == 0 ? "Use MAIL FROM:<address>"
						   : "Use RCPT TO:<address>";
		return -1;
	}
	s.p += wlen + 1;
	while (s.p < s.end && *s.p == ' ')
		s.p++;
	if (s.p >= s.end || *s.p != '<') {
		*why_r = "Address must be in angle brackets";
		return -1;
	}
	s.p++;
	if (s.p < s.end && *s.p == '>') {
		if (!allow_null) {
			*why_r = "Empty address";
			return -1;
		}
		path_r->null_path = true;
		s.p++;
	} else {
		/* A source route: RFC 5321 4.1.2 says accept and ignore. */
		if (s.p < s.end && *s.p == '@') {
			const char *colon = memchr(s.p, ':', (size_t)(s.end - s.p));
			const char *gt = memchr(s.p, '>', (size_t)(s.end - s.p));
			if (colon == NULL || (gt != NULL && gt < colon)) {
				*why_r = "Invalid source route";
				return -1;
			}
			s.p = colon + 1;
		}
		if (scan_mailbox(&s, path_r) < 0) {
			*why_r = s.why;
			return -1;
		}
		if (s.p >= s.end || *s.p != '>') {
			*why_r = "Missing closing angle bracket";
			return -1;
		}
		s.p++;
	}
	path_r->address[s.out_len] = '\0';
	if (s.p < s.end && *s.p != ' ') {
		*why_r = "Garbage after address";
		return -1;
	}
	while (s.p < s.end && *s.p == ' ')
		s.p++;
	*params_r = slice_make(s.p, (size_t)(s.end - s.p));
	return 0;
}

static bool is_dot_atom(const char *p, size_t len)
{
	bool after_dot = true;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '.') {
			if (after_dot)
				return false;
			after_dot = true;
		} else if (is_atext((unsigned char)p[i])) {
			after_dot = false;
		} else {
			return false;
		}
	}
	return !after_dot;
}

void lmtp_path_text(const struct lmtp_path *path, char *out, size_t size)
{
	const char *a = path->address;
	size_t n = 0;

	if (size == 0)
		return;
	if (path->null_path || is_dot_atom(a, path->local_len)) {
		snprintf(out, size, "%s", a);
		return;
	}
	if (n + 1 < size)
		out[n++] = '"';
	for (size_t i = 0; i < path->local_len && n + 3 < size; i++) {
		if (a[i] == '"' || a[i] == '\\')
			out[n++] = '\\';
		out[n++] = a[i];
	}
	if (n + 1 < size)
		out[n++] = '"';
	snprintf(out + n, size - n, "%s", a + path->local_len);
}

int lmtp_param_next(struct slice *params, struct slice *key_r,
		    struct slice *value_r)
{
	const char *p = params->ptr, *end = params->ptr + params->len;
	const char *k, *v = NULL;

	while (p < end && *p == ' ')
		p++;
	if (p == end)
		return 0;
	k = p;
	while (p < end && (isalnum((unsigned char)*p) || *p == '-'))
		p++;
	if (p == k || !isalnum((unsigned char)*k))
		return -1;
	*key_r = slice_make(k, (size_t)(p - k));
	if (p < end && *p == '=') {
		v = ++p;
		/* esmtp-value: %d33-60 / %d62-126 */
		while (p < end && *p > 0x20 && *p < 0x7f && *p != '=')
			p++;
		if (p == v)
			return -1;
	}
	if (p < end && *p != ' ')
		return -1;
	*value_r = v ? slice_make(v, (size_t)(p - v)) : slice_make(p, 0);
	*params = slice_make(p, (size_t)(end - p));
	return 1;
}

int lmtp_parse_u64(struct slice s, uint64_t *v_r)
{
	uint64_t v = 0;

	if (s.len == 0 || s.len > 20)
		return -1;
	for (size_t i = 0; i < s.len; i++) {
		if (s.ptr[i] < '0' || s.ptr[i] > '9')
			return -1;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(s.ptr[i] - '0'), &v))
			return -1;
	}
	*v_r = v;
	return 0;
}

/* ---- DATA decoder ------------------------------------------------- */

/* States: BOL at the start of a line (after the line end, or the message
 * start); MID inside a line; CR a CR was seen (strict mode holds it back:
 * it may start a CRLF); DOT a '.' at the start of a line (held back); DOT_CR
 * ".\r" at the start of a line (held back: ".\r\n" ends). Where a byte
 * is "not consumed" the loop sees it again in the new state. */
enum { DOT_BOL, DOT_MID, DOT_CR, DOT_DOT, DOT_DOT_CR };

void lmtp_dot_init(struct lmtp_dot *dot, bool strict)
{
	dot->state = DOT_BOL; /* after "354" the data starts a line */
	dot->strict = strict;
}

int lmtp_dot_feed(struct lmtp_dot *dot, const char *in, size_t len,
		  size_t *consumed_r, struct buf *out)
{
	/* The byte that ends a line: LF (CRLF and bare LF alike), or in
	 * strict mode the CR of a CRLF, so that a bare LF never starts a
	 * line a dot could end. */
	const char eol = dot->strict ? '\r' : '\n';
	size_t i = 0;

	*consumed_r = 0;
	while (i < len) {
		char c = in[i];
		switch (dot->state) {
		case DOT_MID: {
			/* The common case: copy the rest of the line. */
			const char *end = memchr(in + i, eol, len - i);
			size_t n = end ? (size_t)(end - (in + i)) : len - i;
			if (end && !dot->strict)
				n++; /* the LF is data and ends the line */
			if (buf_append(out, in + i, n) < 0)
				return -1;
			i += n;
			if (end && dot->strict) {
				dot->state = DOT_CR;
				i++; /* held back */
			} else if (end) {
				dot->state = DOT_BOL;
			}
			break;
		}
		case DOT_CR: /* strict mode only */
			if (c == '\n') {
				if (buf_append(out, "\r\n", 2) < 0)
					return -1;
				dot->state = DOT_BOL;
				i++;
			} else if (c == '\r') {
				/* a bare CR; the new one is held back */
				if (buf_append_char(out, '\r') < 0)
					return -1;
				i++;
			} else {
				if (buf_append_char(out, '\r') < 0)
					return -1;
				dot->state = DOT_MID;
			}
			break;
		case DOT_BOL:
			if (c == '.') {
				dot->state = DOT_DOT;
				i++;
			} else {
				dot->state = DOT_MID;
			}
			break;
		case DOT_DOT:
			if (c == '\n' && !dot->strict) {
				dot->state = DOT_BOL;
				*consumed_r = i + 1;
				return 1;
			}
			if (c == '\r') {
				dot->state = DOT_DOT_CR;
				i++;
			} else {
				/* a stuffed dot: dropped, the rest is data */
				dot->state = DOT_MID;
			}
			break;
		case DOT_DOT_CR:
			if (c == '\n') {
				dot->state = DOT_BOL;
				*consumed_r = i + 1;
				return 1;
			}
			/* ".\rX": the dot was stuffing, the CR is data. */
			if (buf_append_char(out, '\r') < 0)
				return -1;
			dot->state = DOT_MID;
			break;
		}
		*consumed_r = i;
	}
	return 0;
}
