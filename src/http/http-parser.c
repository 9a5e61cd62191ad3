/*
 * HTTP/1.1 request framing (RFC 9112): the head is collected byte by byte
 * until CRLF CRLF (a bare CR or LF is refused as it arrives), then parsed
 * in one pass; bodies are decoded by a small state machine for chunked
 * transfer coding (RFC 9112 7.1). See http-parser.h.
 */
#include "http-parser.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char no_host[] = "";      /* Host absent (HTTP/1.0) */

#define MAX_LEADING_CRLF 8       /* RFC 9112 2.2: ignore a few */
#define MAX_CHUNK_LINE 4096      /* chunk size + extensions */
#define MAX_TRAILER 16384

const struct http_parser_limits http_parser_limits_default = {
	.max_head = 64 * 1024,
	.max_target = 8 * 1024,
	.max_fields = 128,
};

bool http_is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

void http_parser_init(struct http_parser *p,
		      const struct http_parser_limits *limits)
{
	memset(p, 0, sizeof(*p));
	p->limits = limits != NULL ? *limits : http_parser_limits_default;
	buf_init(&p->head_buf, p->limits.max_head);
	p->leading = true;
}

void http_parser_deinit(struct http_parser *p)
{
	buf_free(&p->head_buf);
	free(p->field_store);
	p->field_store = NULL;
	p->field_cap = 0;
}

void http_parser_reset(struct http_parser *p, bool shrink)
{
	if (shrink) {
		buf_free(&p->head_buf);
		buf_init(&p->head_buf, p->limits.max_head);
		free(p->field_store);
		p->field_store = NULL;
		p->field_cap = 0;
	} else {
		buf_reset(&p->head_buf);
	}
	p->scanned = 0;
	p->crlf_state = 0;
	p->line_start = 0;
	p->leading = true;
	p->method_done = false;
	memset(&p->head, 0, sizeof(p->head));
	p->status = 0;
	p->error = NULL;
}

bool http_parser_started(const struct http_parser *p)
{
	return p->head_buf.len > 0;
}

static int fail(struct http_parser *p, unsigned status, const char *why)
{
	p->status = status;
	p->error = why;
	return -1;
}

/* ---- the head, once whole ------------------------------------------- */

static bool is_vchar_or_obs(unsigned char c)
{
	return (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

/* RFC 9112 3: method SP request-target SP HTTP-version */
static int parse_request_line(struct http_parser *p, char *line)
{
	struct http_head *h = &p->head;
	char *sp1 = strchr(line, ' ');
	if (sp1 == NULL || sp1 == line)
		return fail(p, 400, "malformed request line");
	*sp1 = '\0';
	for (char *c = line; *c; c++)
		if (!http_is_tchar((unsigned char)*c))
			return fail(p, 400, "malformed method");
	char *target = sp1 + 1;
	char *sp2 = strchr(target, ' ');
	if (sp2 == NULL || sp2 == target)
		return fail(p, 400, "malformed request line");
	*sp2 = '\0';
	char *version = sp2 + 1;
	if ((size_t)(sp2 - target) > p->limits.max_target)
		return fail(p, 414, "request target too long");
	for (char *c = target; *c; c++)
		if (!is_vchar_or_obs((unsigned char)*c) ||
		    (unsigned char)*c >= 0x80)
			return fail(p, 400, "malformed request target");
	if (strncmp(version, "HTTP/", 5) != 0 || strlen(version) != 8 ||
	    version[5] < '0' || version[5] > '9' || version[6] != '.' ||
	    version[7] < '0' || version[7] > '9')
		return fail(p, 400, "malformed HTTP version");
	if (version[5] != '1')
		return fail(p, 505, "HTTP version not supported");
	h->version = version[7] == '0' ? 10 : 11;
	h->method = line;

	/* RFC 9112 3.2: origin-form, absolute-form (taken as origin-form
	 * with its authority as Host), asterisk-form for OPTIONS only;
	 * authority-form is for CONNECT, which we do not proxy. */
	if (strcmp(target, "*") == 0) {
		if (strcmp(h->method, "OPTIONS") != 0)
			return fail(p, 400, "'*' target without OPTIONS");
	} else if (strncasecmp(target, "http://", 7) == 0 ||
		   strncasecmp(target, "https://", 8) == 0) {
		char *auth = strstr(target, "//") + 2;
		char *slash = strchr(auth, '/');
		if (slash == NULL) {
			/* "http://host": the path is "/" (the second slash
			 * of "//", the authority cut off). */
			target = auth - 1;
			*auth = '\0';
		} else {
			target = slash;
		}
	} else if (target[0] != '/') {
		return fail(p, 400, "malformed request target");
	}
	h->target = target;
	return 0;
}

static int parse_content_length(struct http_parser *p, const char *v,
				uint64_t *len_r, bool *seen)
{
	/* RFC 9110 8.6: a list of identical values may be taken as one. */
	const char *s = v;
	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s < '0' || *s > '9')
			return fail(p, 400, "malformed Content-Length");
		uint64_t n = 0;
		while (*s >= '0' && *s <= '9') {
			if (__builtin_mul_overflow(n, 10, &n) ||
			    __builtin_add_overflow(n, (uint64_t)(*s - '0'), &n))
				return fail(p, 400, "Content-Length too big");
			s++;
		}
		while (*s == ' ' || *s == '\t')
			s++;
		if (*seen && n != *len_r)
			return fail(p, 400, "different Content-Lengths");
		*seen = true;
		*len_r = n;
		if (*s == '\0')
			return 0;
		if (*s != ',')
			return fail(p, 400, "malformed Content-Length");
		s++;
	}
}

/* Transfer-Encoding: only "chunked" (RFC 9112 6.1: chunked must be last;
 * other codings we do not decode get 501). */
static int parse_transfer_encoding(struct http_parser *p, const char *v,
				   bool *chunked)
{
	const char *s = v;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (*s == '\0')
			break;
		const char *start = s;
		while (*s && *s != ',' && *s != ' ' && *s != '\t' && *s != ';')
			s++;
		size_t n = (size_t)(s - start);
		if (*chunked)
			return fail(p, 400, "coding after chunked");
		if (n == 7 && strncasecmp(start, "chunked", 7) == 0)
			*chunked = true;
		else
			return fail(p, 501, "transfer coding not supported");
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s != '\0' && *s != ',')
			return fail(p, 400, "malformed Transfer-Encoding");
	}
	if (!*chunked)
		return fail(p, 400, "malformed Transfer-Encoding");
	return 0;
}

static bool list_has_token(const char *v, const char *token)
{
	size_t tl = strlen(token);
	const char *s = v;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		const char *start = s;
		while (*s && *s != ',' && *s != ' ' && *s != '\t')
			s++;
		if ((size_t)(s - start) == tl && strncasecmp(start, token, tl) == 0)
			return true;
		while (*s && *s != ',')
			s++;
	}
	return false;
}

static int add_field(struct http_parser *p, char *name, char *value)
{
	if (p->head.field_count >= p->limits.max_fields)
		return fail(p, 431, "too many header fields");
	if (p->head.field_count == p->field_cap) {
		p->field_cap = p->field_cap ? p->field_cap * 2 : 16;
		p->field_store = xrealloc(p->field_store,
					  p->field_cap * sizeof(*p->field_store));
	}
	p->field_store[p->head.field_count].name = name;
	p->field_store[p->head.field_count].value = value;
	p->head.field_count++;
	return 0;
}

/* RFC 9112 5: field-name ":" OWS field-value OWS */
static int parse_field(struct http_parser *p, char *line)
{
	if (line[0] == ' ' || line[0] == '\t')
		return fail(p, 400, "obsolete line folding");
	char *colon = strchr(line, ':');
	if (colon == NULL || colon == line)
		return fail(p, 400, "malformed header field");
	for (char *c = line; c < colon; c++)
		if (!http_is_tchar((unsigned char)*c))
			return fail(p, 400, "malformed header field name");
	*colon = '\0';
	char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	char *end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = '\0';
	for (char *c = v; *c; c++) {
		unsigned char u = (unsigned char)*c;
		if (u != '\t' && u != ' ' && !is_vchar_or_obs(u))
			return fail(p, 400, "control character in a field");
	}
	return add_field(p, line, v);
}

static int check_framing(struct http_parser *p)
{
	struct http_head *h = &p->head;
	bool cl_seen = false, chunked = false, te_seen = false;
	const char *host = NULL;
	unsigned hosts = 0;
	h->keep_alive = h->version == 11;
	for (unsigned i = 0; i < h->field_count; i++) {
		const char *n = h->fields[i].name, *v = h->fields[i].value;
		if (strcasecmp(n, "content-length") == 0) {
			if (parse_content_length(p, v, &h->content_length,
						 &cl_seen) < 0)
				return -1;
		} else if (strcasecmp(n, "transfer-encoding") == 0) {
			te_seen = true;
			if (parse_transfer_encoding(p, v, &chunked) < 0)
				return -1;
		} else if (strcasecmp(n, "host") == 0) {
			host = v;
			hosts++;
		} else if (strcasecmp(n, "connection") == 0) {
			if (list_has_token(v, "close"))
				h->keep_alive = false;
			else if (list_has_token(v, "keep-alive"))
				h->keep_alive = true;
		} else if (strcasecmp(n, "expect") == 0) {
			if (strcasecmp(v, "100-continue") != 0)
				return fail(p, 417, "unknown expectation");
			h->expect_continue = h->version == 11;
		}
	}
	/* RFC 9112 6.1: both framings at once is a smuggling attempt. */
	if (te_seen && cl_seen)
		return fail(p, 400, "Content-Length with Transfer-Encoding");
	if (te_seen && h->version == 10)
		return fail(p, 400, "Transfer-Encoding in HTTP/1.0");
	/* RFC 9112 3.2: exactly one Host in HTTP/1.1. */
	if (hosts > 1 || (hosts == 0 && h->version == 11))
		return fail(p, 400, "missing or repeated Host");
	for (const char *c = host ? host : ""; *c; c++)
		if (*c == ' ' || *c == '\t' || *c == '/' || *c == '@' ||
		    *c == '\\')
			return fail(p, 400, "malformed Host");
	h->host = host ? (char *)host : no_host;
	if (chunked)
		h->body = HTTP_BODY_CHUNKED;
	else if (cl_seen && h->content_length > 0)
		h->body = HTTP_BODY_LENGTH;
	else
		h->body = HTTP_BODY_NONE;
	return 0;
}

/* The head is in head_buf, every line ending in CRLF, the last empty. */
static int parse_head(struct http_parser *p)
{
	char *s = p->head_buf.data;
	char *end = s + p->head_buf.len;
	bool first = true;
	p->head.field_count = 0;
	while (s < end) {
		char *crlf = memchr(s, '\r', (size_t)(end - s));
		/* feed() guarantees every CR is followed by LF. */
		*crlf = '\0';
		if (crlf == s)
			break;    /* the empty line */
		if (memchr(s, '\0', (size_t)(crlf - s)) != NULL)
			return fail(p, 400, "NUL in the head");
		int rc = first ? parse_request_line(p, s) : parse_field(p, s);
		if (rc < 0)
			return -1;
		first = false;
		s = crlf + 2;
	}
	if (first)
		return fail(p, 400, "empty request");
	p->head.fields = p->field_store;
	if (check_framing(p) < 0)
		return -1;
	char *q = strchr(p->head.target, '?');
	/* path and query are copies split at '?', kept after the head. */
	size_t tl = strlen(p->head.target);
	size_t off = p->head_buf.len;
	char *old = p->head_buf.data;
	/* The source lives in the buffer the append may move: copy first. */
	char *copy = xstrndup(p->head.target, tl);
	int arc = buf_append(&p->head_buf, copy, tl + 1);
	free(copy);
	if (arc < 0)
		return fail(p, 431, "header section too large");
	/* The buffer may have moved: rebase every pointer into it. */
	char *base = p->head_buf.data;
	ptrdiff_t d = base - old;
	if (d != 0) {
		p->head.method += d;
		p->head.target += d;
		if (p->head.host != no_host)
			p->head.host += d;
		for (unsigned i = 0; i < p->head.field_count; i++) {
			p->field_store[i].name += d;
			p->field_store[i].value += d;
		}
		if (q != NULL)
			q += d;
	}
	p->head.path = base + off;
	char *pq = strchr(p->head.path, '?');
	if (pq != NULL) {
		*pq = '\0';
		p->head.query = pq + 1;
	} else {
		p->head.query = (char *)"";
	}
	return 0;
}

int http_parser_feed(struct http_parser *p, const char *data, size_t len,
		     size_t *consumed_r)
{
	size_t i = 0;
	*consumed_r = 0;
	if (p->status != 0)
		return -1;
	for (; i < len; i++) {
		unsigned char c = (unsigned char)data[i];
		if (p->leading) {
			/* RFC 9112 2.2: CRLFs before a request are skipped. */
			if (c == '\r' && p->crlf_state == 0) {
				p->crlf_state = 1;
				continue;
			}
			if (c == '\n' && p->crlf_state == 1) {
				p->crlf_state = 0;
				if (++p->line_start > MAX_LEADING_CRLF)
					return fail(p, 400, "empty lines");
				continue;
			}
			if (p->crlf_state != 0)
				return fail(p, 400, "bare CR");
			if (c == '\n')
				return fail(p, 400, "bare LF");
			p->leading = false;
			p->line_start = 0;
		}
		/* crlf_state: 0 in a line, 1 after CR, 2 after CRLF,
		 * 3 after CRLF CR. */
		if (p->crlf_state == 1 || p->crlf_state == 3) {
			if (c != '\n')
				return fail(p, 400, "bare CR in the head");
		} else if (c == '\n') {
			return fail(p, 400, "bare LF in the head");
		}
		/* The method is checked as it arrives, so a TLS handshake or
		 * other garbage on a plain port is refused at once. */
		if (p->line_start == 0 && !p->method_done) {
			if (c == ' ' && p->head_buf.len > 0)
				p->method_done = true;
			else if (!http_is_tchar(c))
				return fail(p, 400, "malformed method");
		}
		if (buf_append_char(&p->head_buf, (char)c) < 0) {
			*consumed_r = i;
			/* Still on the request line: 414 says more. */
			if (p->head.field_count == 0 && p->line_start == 0 &&
			    memchr(p->head_buf.data, '\n', p->head_buf.len) == NULL)
				return fail(p, 414, "request line too long");
			return fail(p, 431, "header section too large");
		}
		switch (p->crlf_state) {
		case 0: p->crlf_state = c == '\r' ? 1 : 0; break;
		case 1: p->crlf_state = 2; p->line_start = p->head_buf.len; break;
		case 2: p->crlf_state = c == '\r' ? 3 : 0; break;
		case 3: p->crlf_state = 4; break;
		}
		if (p->crlf_state == 4) {
			*consumed_r = i + 1;
			p->scanned = p->head_buf.len;
			return parse_head(p) < 0 ? -1 : 1;
		}
	}
	*consumed_r = len;
	p->scanned = p->head_buf.len;
	return 0;
}

const char *http_head_field(const struct http_head *h, const char *name)
{
	for (unsigned i = 0; i < h->field_count; i++)
		if (strcasecmp(h->fields[i].name, name) == 0)
			return h->fields[i].value;
	return NULL;
}

/* ---- bodies ---------------------------------------------------------- */

enum {
	CH_SIZE,         /* hex digits */
	CH_EXT,          /* ; extensions up to CR */
	CH_SIZE_LF,      /* LF after the size line */
	CH_DATA,
	CH_DATA_CR,
	CH_DATA_LF,
	CH_TRAILER,      /* start of a trailer line (or the final CRLF) */
	CH_TRAILER_LINE, /* inside a trailer field line */
	CH_TRAILER_LF,   /* LF ending a trailer field line */
	CH_END_LF,       /* LF of the final empty line */
	CH_DONE,
};

void http_body_init(struct http_body *b, enum http_body_kind kind,
		    uint64_t content_length)
{
	memset(b, 0, sizeof(*b));
	b->kind = kind;
	b->remaining = kind == HTTP_BODY_LENGTH ? content_length : 0;
	b->state = kind == HTTP_BODY_CHUNKED ? CH_SIZE : CH_DONE;
	if (kind == HTTP_BODY_LENGTH && content_length > 0)
		b->state = CH_DATA;
}

bool http_body_done(const struct http_body *b)
{
	return b->state == CH_DONE;
}

int http_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int body_fail(struct http_body *b, const char *why)
{
	b->error = why;
	return -1;
}

static int length_feed(struct http_body *b, const char *in, size_t len,
		       size_t *consumed_r, const char **data_r,
		       size_t *data_len_r)
{
	if (b->remaining == 0) {
		b->state = CH_DONE;
		return 2;
	}
	if (len == 0)
		return 0;
	size_t n = len < b->remaining ? len : (size_t)b->remaining;
	b->remaining -= n;
	b->total += n;
	if (b->remaining == 0)
		b->state = CH_DONE;
	*consumed_r = n;
	*data_r = in;
	*data_len_r = n;
	return 1;
}

/* One byte of the chunked framing outside chunk data. */
static int chunked_byte(struct http_body *b, unsigned char c)
{
	int v;
	switch (b->state) {
	case CH_SIZE:
		v = http_hexval(c);
		if (v >= 0) {
			if (b->digits >= 16)
				return body_fail(b, "chunk size too big");
			b->remaining = b->remaining * 16 + (uint64_t)v;
			b->digits++;
			return 0;
		}
		if (b->digits == 0)
			return body_fail(b, "malformed chunk size");
		b->line_len = 0;
		if (c == ';' || c == ' ' || c == '\t') {
			b->state = CH_EXT;
			return 0;
		}
		if (c == '\r') {
			b->state = CH_SIZE_LF;
			return 0;
		}
		return body_fail(b, "malformed chunk size");
	case CH_EXT:
		/* RFC 9112 7.1.1: extensions are ignored, but bounded and
		 * free of bare LF and controls. */
		if (c == '\r') {
			b->state = CH_SIZE_LF;
			return 0;
		}
		if (c == '\n' || (c < 0x20 && c != '\t') || c == 0x7f)
			return body_fail(b, "malformed chunk extension");
		if (++b->line_len > MAX_CHUNK_LINE)
			return body_fail(b, "chunk extension too long");
		return 0;
	case CH_SIZE_LF:
		if (c != '\n')
			return body_fail(b, "bare CR in chunk size line");
		b->digits = 0;
		b->state = b->remaining == 0 ? CH_TRAILER : CH_DATA;
		return 0;
	case CH_DATA_CR:
		if (c != '\r')
			return body_fail(b, "chunk not followed by CRLF");
		b->state = CH_DATA_LF;
		return 0;
	case CH_DATA_LF:
		if (c != '\n')
			return body_fail(b, "chunk not followed by CRLF");
		b->state = CH_SIZE;
		b->remaining = 0;
		return 0;
	case CH_TRAILER:
		if (c == '\r') {
			b->state = CH_END_LF;
			return 0;
		}
		if (c == '\n')
			return body_fail(b, "bare LF in trailer");
		b->state = CH_TRAILER_LINE;
		/* fall through */
	case CH_TRAILER_LINE:
		/* Trailer fields are read and dropped (RFC 9110 6.5). */
		if (++b->trailer_len > MAX_TRAILER)
			return body_fail(b, "trailer section too large");
		if (c == '\r') {
			b->state = CH_TRAILER_LF;
			return 0;
		}
		if (c == '\n' || (c < 0x20 && c != '\t') || c == 0x7f)
			return body_fail(b, "malformed trailer");
		return 0;
	case CH_TRAILER_LF:
		if (c != '\n')
			return body_fail(b, "bare CR in trailer");
		b->state = CH_TRAILER;
		return 0;
	case CH_END_LF:
		if (c != '\n')
			return body_fail(b, "bare CR after the last chunk");
		b->state = CH_DONE;
		return 0;
	}
	return body_fail(b, "chunked decoder state");
}

int http_body_feed(struct http_body *b, const char *in, size_t len,
		   size_t *consumed_r, const char **data_r,
		   size_t *data_len_r)
{
	*consumed_r = 0;
	*data_len_r = 0;
	if (b->error != NULL)
		return -1;
	if (b->state == CH_DONE)
		return 2;
	if (b->kind == HTTP_BODY_LENGTH)
		return length_feed(b, in, len, consumed_r, data_r, data_len_r);
	size_t i = 0;
	while (i < len) {
		if (b->state == CH_DATA) {
			size_t n = len - i;
			if (n > b->remaining)
				n = (size_t)b->remaining;
			b->remaining -= n;
			b->total += n;
			if (b->remaining == 0)
				b->state = CH_DATA_CR;
			*consumed_r = i + n;
			*data_r = in + i;
			*data_len_r = n;
			return 1;
		}
		if (chunked_byte(b, (unsigned char)in[i]) < 0) {
			*consumed_r = i;
			return -1;
		}
		i++;
		if (b->state == CH_DONE) {
			*consumed_r = i;
			return 2;
		}
	}
	*consumed_r = len;
	return 0;
}
