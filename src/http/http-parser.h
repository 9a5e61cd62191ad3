/*
 * The HTTP/1.1 request parser (RFC 9112): incremental and I/O-free, like
 * the IMAP one. Feed it bytes as they arrive; the head (request line and
 * header section) is collected until its empty line and then parsed in
 * one pass; the body's framing (Content-Length or chunked, RFC 9112 6 and
 * 7.1) is decoded by http_body_feed. Any split of the input gives the same
 * result (tests and the fuzz targets check it byte by byte).
 *
 * Strict where leniency lets a proxy and this server disagree about where
 * a message ends (request smuggling, RFC 9112 11.2): a bare CR or LF,
 * obs-fold, whitespace before the colon, Transfer-Encoding with
 * Content-Length, two different Content-Lengths, a Transfer-Encoding
 * other than "chunked" last, or a chunked request in HTTP/1.0 are errors
 * (400, then the connection closes).
 */
#ifndef LOFT_HTTP_PARSER_H
#define LOFT_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct http_parser_limits {
	size_t max_head;       /* request line + header section; 431 beyond
				  (414 if the request line alone is over) */
	size_t max_target;     /* request-target; 414 beyond */
	unsigned max_fields;   /* header field lines; 431 beyond */
};
extern const struct http_parser_limits http_parser_limits_default;

struct http_field {
	char *name;            /* as sent (NUL-terminated in the head) */
	char *value;           /* OWS trimmed */
};

enum http_body_kind {
	HTTP_BODY_NONE,
	HTTP_BODY_LENGTH,      /* Content-Length */
	HTTP_BODY_CHUNKED,     /* Transfer-Encoding: chunked */
};

/* A parsed head; strings point into the parser's buffer and stay valid
 * until http_parser_reset. */
struct http_head {
	char *method;
	char *target;          /* origin form "/p?q", or "*" */
	char *path;            /* target up to '?' */
	char *query;           /* after '?', or "" */
	char *host;            /* Host field value ("" if absent in 1.0) */
	unsigned version;      /* 10 or 11 */
	struct http_field *fields;
	unsigned field_count;
	enum http_body_kind body;
	uint64_t content_length;
	bool keep_alive;       /* Connection and version say so */
	bool expect_continue;  /* Expect: 100-continue */
};

struct http_parser {
	struct http_parser_limits limits;
	struct buf head_buf;   /* the head as received */
	size_t scanned;        /* bytes of head_buf already checked */
	unsigned crlf_state;   /* bytes of the terminating CRLFCRLF seen */
	size_t line_start;     /* offset of the current line */
	bool leading;          /* still skipping CRLFs before the request */
	bool method_done;      /* the request line's first SP was seen */
	struct http_head head;
	struct http_field *field_store;
	unsigned field_cap;
	/* error */
	unsigned status;       /* 400, 414, 431, 501, 505 */
	const char *error;     /* static text for the log and the reply */
};

void http_parser_init(struct http_parser *p,
		      const struct http_parser_limits *limits);
void http_parser_deinit(struct http_parser *p);
/* Ready for the next request (keeps the buffers' memory unless shrink:
 * an idle keep-alive connection should hold little). */
void http_parser_reset(struct http_parser *p, bool shrink);

/* Feeds bytes of the head. Returns 1 when the head is complete and
 * parsed (p->head; *consumed_r says how many bytes of data belonged to
 * it, the rest is body or the next request), 0 if everything was
 * consumed and more is needed, -1 on an error (p->status, p->error). */
int http_parser_feed(struct http_parser *p, const char *data, size_t len,
		     size_t *consumed_r);
/* Whether any byte of a request has been received (for timeouts: an idle
 * keep-alive connection vs a slow request). */
bool http_parser_started(const struct http_parser *p);

/* Case-insensitive field lookup: the first value, or NULL. */
const char *http_head_field(const struct http_head *h, const char *name);

/* ---- bodies ---------------------------------------------------------- */

struct http_body {
	enum http_body_kind kind;
	uint64_t remaining;    /* LENGTH: bytes left; CHUNKED: of this chunk */
	int state;             /* chunked decoder state */
	unsigned digits;       /* hex digits of the chunk size */
	size_t line_len;       /* chunk extension / trailer line length */
	size_t trailer_len;    /* trailer section so far */
	uint64_t total;        /* decoded bytes so far */
	const char *error;
};

void http_body_init(struct http_body *b, enum http_body_kind kind,
		    uint64_t content_length);
/* Feeds framed body bytes. Returns 1 with a piece of decoded body
 * (*data_r points into in, *data_len_r > 0), 2 when the body is complete
 * (nothing after it consumed), 0 when everything given was consumed and
 * more is needed, -1 on malformed chunked framing (b->error). *consumed_r
 * is always set: the bytes of in used. */
int http_body_feed(struct http_body *b, const char *in, size_t len,
		   size_t *consumed_r, const char **data_r,
		   size_t *data_len_r);
bool http_body_done(const struct http_body *b);

/* The value of a hex digit, or -1. */
int http_hexval(unsigned char c);
/* RFC 9110 5.6.2 token characters. */
bool http_is_tchar(unsigned char c);

#endif
