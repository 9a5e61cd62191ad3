/*
 * Responses: the status line and header fields, whole bodies (with HEAD,
 * conditional requests, Range and compression applied here, so every
 * handler gets them right) and chunked bodies of unknown length. Bodies
 * are written in pieces through net_conn_write, which blocks the worker
 * while the client is behind (back-pressure), so memory stays bounded
 * whatever the body's size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http-private.h"
#include "log.h"
#include "metrics.h"

#define WRITE_PIECE (64 * 1024)
/* Whole bodies up to this are compressed in memory (Content-Length
 * known); bigger ones are compressed on the fly into chunks. */
#define COMPRESS_IN_MEMORY (1024 * 1024)
#define COMPRESS_MIN 256

/* CSP for every HTML page (issue 14): no inline script, no eval. */
static const char html_csp[] =
	"default-src 'self'; script-src 'self'; style-src 'self'; "
	"img-src 'self' data: blob:; connect-src 'self' data: blob:; "
	"font-src 'self'; media-src 'self' blob:; object-src 'none'; "
	"frame-src 'self' blob:; child-src 'self' blob:; "
	"worker-src 'self'; form-action 'self'; frame-ancestors 'none'; "
	"base-uri 'none'";

void http_response_init(struct http_response *resp, struct http_request *req)
{
	memset(resp, 0, sizeof(*resp));
	resp->req = req;
	resp->status = 200;
	buf_init(&resp->headers, 0);
}

static void z_free(struct http_response *resp)
{
	if (resp->z != NULL) {
		deflateEnd(resp->z);
		free(resp->z);
		resp->z = NULL;
	}
}

void http_response_deinit(struct http_response *resp)
{
	buf_free(&resp->headers);
	free(resp->etag);
	resp->etag = NULL;
	z_free(resp);
}

void http_response_status(struct http_response *resp, unsigned status)
{
	resp->status = status;
}

/* Removes every line of the field name from the header block. */
static void remove_header(struct http_response *resp, const char *name)
{
	size_t nl = strlen(name);
	size_t i = 0;
	struct buf *h = &resp->headers;
	while (i < h->len) {
		char *eol = memchr(h->data + i, '\n', h->len - i);
		size_t line_end = eol ? (size_t)(eol - h->data) + 1 : h->len;
		if (line_end - i > nl && h->data[i + nl] == ':' &&
		    strncasecmp(h->data + i, name, nl) == 0) {
			memmove(h->data + i, h->data + line_end, h->len - line_end);
			h->len -= line_end - i;
			h->data[h->len] = '\0';
			continue;
		}
		i = line_end;
	}
}

static const char *get_header(const struct http_response *resp,
			      const char *name, size_t *len_r)
{
	size_t nl = strlen(name);
	const struct buf *h = &resp->headers;
	for (size_t i = 0; i < h->len;) {
		const char *eol = memchr(h->data + i, '\n', h->len - i);
		size_t line_end = eol ? (size_t)(eol - h->data) + 1 : h->len;
		if (line_end - i > nl && h->data[i + nl] == ':' &&
		    strncasecmp(h->data + i, name, nl) == 0) {
			const char *v = h->data + i + nl + 2;
			*len_r = (size_t)(h->data + line_end - 2 - v);
			return v;
		}
		i = line_end;
	}
	return NULL;
}

static bool has_header(const struct http_response *resp, const char *name)
{
	size_t len;
	return get_header(resp, name, &len) != NULL;
}

/* A header value must not smuggle a line break into the response. */
static void add_header_v(struct http_response *resp, const char *name,
			 const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static void add_header_v(struct http_response *resp, const char *name,
			 const char *fmt, va_list ap)
{
	if (resp->started)
		return;
	size_t start = resp->headers.len;
	buf_printf(&resp->headers, "%s: ", name);
	buf_vprintf(&resp->headers, fmt, ap);
	for (size_t i = start; i < resp->headers.len; i++)
		if (resp->headers.data[i] == '\r' ||
		    resp->headers.data[i] == '\n' || resp->headers.data[i] == '\0')
			resp->headers.data[i] = ' ';
	buf_append_str(&resp->headers, "\r\n");
}

void http_response_set_header(struct http_response *resp, const char *name,
			      const char *fmt, ...)
{
	va_list ap;
	remove_header(resp, name);
	va_start(ap, fmt);
	add_header_v(resp, name, fmt, ap);
	va_end(ap);
}

void http_response_add_header(struct http_response *resp, const char *name,
			      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add_header_v(resp, name, fmt, ap);
	va_end(ap);
}

void http_response_content_type(struct http_response *resp, const char *type)
{
	http_response_set_header(resp, "Content-Type", "%s", type);
}

void http_response_etag(struct http_response *resp, const char *etag)
{
	free(resp->etag);
	resp->etag = NULL;
	if (etag == NULL)
		return;
	/* An entity tag is printable ASCII without '"' (RFC 9110 8.8.3). */
	resp->etag = xstrdup(etag);
	for (char *c = resp->etag; *c; c++)
		if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e ||
		    *c == '"')
			*c = '_';
}

void http_response_last_modified(struct http_response *resp, time_t t)
{
	resp->last_modified = t;
}

void http_response_accept_ranges(struct http_response *resp)
{
	resp->ranges = true;
}

bool http_response_started(const struct http_response *resp)
{
	return resp->started;
}

/* ---- compression ---------------------------------------------------- */

bool http_type_compressible(const char *type)
{
	if (type == NULL)
		return false;
	static const char *const types[] = {
		"text/", "application/json", "application/javascript",
		"application/xml", "application/problem+json",
		"application/x-apple-aspen-config", "image/svg+xml",
		"message/rfc822", "application/manifest+json", NULL,
	};
	for (size_t i = 0; types[i] != NULL; i++)
		if (strncasecmp(type, types[i], strlen(types[i])) == 0)
			return true;
	return false;
}

/* q-value of a coding in Accept-Encoding (RFC 9110 12.5.3), -1 if not
 * listed. */
static int coding_q(const char *ae, const char *coding)
{
	size_t cl = strlen(coding);
	const char *s = ae;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		const char *start = s;
		while (*s && *s != ',' && *s != ';' && *s != ' ' && *s != '\t')
			s++;
		size_t n = (size_t)(s - start);
		int q = 1000;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == ';') {
			const char *qp = strstr(s, "q=");
			const char *comma = strchr(s, ',');
			if (qp != NULL && (comma == NULL || qp < comma)) {
				double d = strtod(qp + 2, NULL);
				q = (int)(d * 1000 + 0.5);
			}
		}
		while (*s && *s != ',')
			s++;
		if ((n == cl && strncasecmp(start, coding, cl) == 0) ||
		    (n == 1 && *start == '*'))
			return q;
	}
	return -1;
}

enum http_encoding http_accepted_encoding(const struct http_request *req)
{
	const char *ae = http_request_header(req, "accept-encoding");
	if (ae == NULL)
		return HTTP_ENC_IDENTITY;
	int gz = coding_q(ae, "gzip"), df = coding_q(ae, "deflate");
	if (gz > 0 && gz >= df)
		return HTTP_ENC_GZIP;
	if (df > 0)
		return HTTP_ENC_DEFLATE;
	return HTTP_ENC_IDENTITY;
}

static bool want_compress(struct http_response *resp, size_t len)
{
	struct http_request *req = resp->req;
	if (req->route != NULL && (req->route->r.flags & HTTP_ROUTE_NO_COMPRESS))
		return false;
	if (has_header(resp, "Content-Encoding") || len < COMPRESS_MIN)
		return false;
	size_t tl;
	const char *type = get_header(resp, "Content-Type", &tl);
	if (type == NULL || !http_type_compressible(type))
		return false;
	resp->enc = http_accepted_encoding(req);
	return resp->enc != HTTP_ENC_IDENTITY;
}

static void z_start(struct http_response *resp)
{
	resp->z = xcalloc(1, sizeof(*resp->z));
	/* gzip: windowBits 15 + 16; deflate means the zlib format
	 * (RFC 9110 8.4.1.2). */
	int wbits = resp->enc == HTTP_ENC_GZIP ? 15 + 16 : 15;
	if (deflateInit2(resp->z, 6, Z_DEFLATED, wbits, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
}

/* ---- writing -------------------------------------------------------- */

static int out(struct http_response *resp, const void *data, size_t len)
{
	if (resp->broken)
		return -1;
	if (len == 0)
		return 0;
	if (net_conn_write(resp->req->hc->conn, data, len) < 0) {
		resp->broken = true;
		return -1;
	}
	return 0;
}

static bool request_keeps_alive(const struct http_response *resp)
{
	const struct http_request *req = resp->req;
	return req->head->keep_alive && !resp->close;
}

int http_response_write_head(struct http_response *resp, uint64_t length,
			     bool has_length)
{
	struct http_request *req = resp->req;
	struct buf h;
	char date[32];
	if (resp->started)
		return -1;
	if (req->route != NULL && (req->route->r.flags & HTTP_ROUTE_CORS))
		http_cors_headers(req);
	resp->started = true;
	buf_init(&h, 0);
	http_date(time(NULL), date);
	buf_printf(&h, "HTTP/1.1 %u %s\r\nDate: %s\r\n", resp->status,
		   http_status_reason(resp->status), date);
	buf_append(&h, resp->headers.data, resp->headers.len);
	if (resp->etag != NULL)
		buf_printf(&h, "ETag: \"%s%s\"\r\n", resp->etag,
			   resp->enc == HTTP_ENC_GZIP ? "-gz" :
			   resp->enc == HTTP_ENC_DEFLATE ? "-df" : "");
	if (resp->last_modified != 0) {
		http_date(resp->last_modified, date);
		buf_printf(&h, "Last-Modified: %s\r\n", date);
	}
	if (resp->ranges && resp->etag != NULL)
		buf_append_str(&h, "Accept-Ranges: bytes\r\n");
	if (resp->enc != HTTP_ENC_IDENTITY)
		buf_printf(&h, "Content-Encoding: %s\r\n",
			   resp->enc == HTTP_ENC_GZIP ? "gzip" : "deflate");
	size_t tl;
	const char *type = get_header(resp, "Content-Type", &tl);
	if (!has_header(resp, "Vary") && (resp->enc != HTTP_ENC_IDENTITY ||
	    (type != NULL && http_type_compressible(type) &&
	     (req->route == NULL ||
	      !(req->route->r.flags & HTTP_ROUTE_NO_COMPRESS)))))
		buf_append_str(&h, "Vary: Accept-Encoding\r\n");
	if (!has_header(resp, "X-Content-Type-Options"))
		buf_append_str(&h, "X-Content-Type-Options: nosniff\r\n");
	if (!has_header(resp, "Referrer-Policy"))
		buf_append_str(&h, "Referrer-Policy: no-referrer\r\n");
	if (type != NULL && tl >= 9 && strncasecmp(type, "text/html", 9) == 0 &&
	    !has_header(resp, "Content-Security-Policy"))
		buf_printf(&h, "Content-Security-Policy: %s\r\n", html_csp);
	bool no_body = resp->status == 204 || resp->status == 304 ||
		(resp->status >= 100 && resp->status < 200);
	if (has_length && !no_body) {
		buf_printf(&h, "Content-Length: %llu\r\n",
			   (unsigned long long)length);
	} else if (!has_length && !no_body) {
		if (req->head->version == 11)
			resp->chunked = true;
		else
			resp->close = true;   /* HTTP/1.0: the close ends it */
		if (resp->chunked && !req->is_head)
			buf_append_str(&h, "Transfer-Encoding: chunked\r\n");
	}
	if (!request_keeps_alive(resp))
		buf_append_str(&h, "Connection: close\r\n");
	else if (req->head->version == 10)
		buf_append_str(&h, "Connection: keep-alive\r\n");
	buf_append_str(&h, "\r\n");
	log_debug("http", http_request_id(req), "%s %s -> %u",
		  req->head->method, req->head->target, resp->status);
	static const char *const classes[] = {
		"proto=\"http\",result=\"1xx\"", "proto=\"http\",result=\"2xx\"",
		"proto=\"http\",result=\"3xx\"", "proto=\"http\",result=\"4xx\"",
		"proto=\"http\",result=\"5xx\"",
	};
	unsigned cls = resp->status / 100;
	metrics_count("loft_commands_total", "Commands answered, per protocol "
		      "and result.", classes[cls >= 1 && cls <= 5 ? cls - 1 : 4]);
	int rc = out(resp, h.data, h.len);
	buf_free(&h);
	return rc;
}

/* Writes a body in pieces (back-pressure between them). */
static int out_body(struct http_response *resp, const char *data, size_t len)
{
	while (len > 0) {
		size_t n = len < WRITE_PIECE ? len : WRITE_PIECE;
		if (out(resp, data, n) < 0)
			return -1;
		data += n;
		len -= n;
	}
	return 0;
}

/* ---- conditional requests and ranges (RFC 9110 13, 14) ------------- */

static bool not_modified(struct http_response *resp)
{
	struct http_request *req = resp->req;
	const char *m = req->head->method;
	if (resp->status != 200 ||
	    (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0))
		return false;
	const char *inm = http_request_header(req, "if-none-match");
	if (inm != NULL) {
		if (resp->etag == NULL)
			return false;
		/* Weak comparison (13.1.2): a compressed variant's tag
		 * names the same content. */
		char variant[300];
		snprintf(variant, sizeof(variant), "%s%s", resp->etag,
			 resp->enc == HTTP_ENC_GZIP ? "-gz" :
			 resp->enc == HTTP_ENC_DEFLATE ? "-df" : "");
		return http_etag_match(inm, resp->etag) ||
			http_etag_match(inm, variant);
	}
	const char *ims = http_request_header(req, "if-modified-since");
	time_t t;
	if (ims != NULL && resp->last_modified != 0 &&
	    http_date_parse(ims, &t) == 0)
		return resp->last_modified <= t;
	return false;
}

/* "bytes=first-last", "bytes=first-", "bytes=-suffix". Returns 1 with
 * [*start, *end] (inclusive), 0 to ignore the header (send it all), -1
 * unsatisfiable (416). */
static int parse_range(const char *v, uint64_t len, uint64_t *start,
		       uint64_t *end)
{
	if (strncasecmp(v, "bytes=", 6) != 0)
		return 0;
	const char *s = v + 6;
	while (*s == ' ')
		s++;
	if (strchr(s, ',') != NULL)
		return 0;     /* multiple ranges: the whole body instead */
	char *e;
	if (*s == '-') {
		if (s[1] < '0' || s[1] > '9')
			return 0;
		unsigned long long suffix = strtoull(s + 1, &e, 10);
		if (*e != '\0' && *e != ' ')
			return 0;
		if (suffix == 0 || len == 0)
			return -1;
		*start = suffix >= len ? 0 : len - suffix;
		*end = len - 1;
		return 1;
	}
	if (*s < '0' || *s > '9')
		return 0;
	unsigned long long a = strtoull(s, &e, 10);
	if (*e != '-')
		return 0;
	s = e + 1;
	unsigned long long b = len > 0 ? len - 1 : 0;
	if (*s >= '0' && *s <= '9') {
		b = strtoull(s, &e, 10);
		if (*e != '\0' && *e != ' ')
			return 0;
		if (b < a)
			return 0;
		if (b >= len)
			b = len - 1;
	} else if (*s != '\0') {
		return 0;
	}
	if (a >= len)
		return -1;
	*start = a;
	*end = b;
	return 1;
}

/* ---- whole bodies --------------------------------------------------- */

static int send_compressed_stream(struct http_response *resp,
				  const char *data, size_t len);

int http_response_send(struct http_response *resp, const void *data,
		       size_t len)
{
	struct http_request *req = resp->req;
	if (resp->started)
		return -1;
	bool compress = want_compress(resp, len);
	if (not_modified(resp)) {
		resp->status = 304;
		return http_response_write_head(resp, 0, false);
	}
	const char *range = NULL;
	if (resp->ranges && resp->etag != NULL && resp->status == 200 &&
	    strcmp(req->head->method, "GET") == 0)
		range = http_request_header(req, "range");
	if (range != NULL) {
		const char *ifr = http_request_header(req, "if-range");
		if (ifr != NULL && !http_etag_match(ifr, resp->etag))
			range = NULL;
	}
	if (range != NULL) {
		uint64_t a, b;
		int rc = parse_range(range, len, &a, &b);
		if (rc != 0)
			resp->enc = HTTP_ENC_IDENTITY;   /* ranges of the bytes */
		if (rc < 0) {
			resp->status = 416;
			http_response_set_header(resp, "Content-Range",
						 "bytes */%zu", len);
			return http_response_write_head(resp, 0, true);
		}
		if (rc > 0) {
			resp->status = 206;
			http_response_set_header(resp, "Content-Range",
						 "bytes %llu-%llu/%zu",
						 (unsigned long long)a,
						 (unsigned long long)b, len);
			if (http_response_write_head(resp, b - a + 1, true) < 0)
				return -1;
			if (req->is_head)
				return 0;
			return out_body(resp, (const char *)data + a,
					(size_t)(b - a + 1));
		}
	}
	if (compress) {
		if (len > COMPRESS_IN_MEMORY && !req->is_head)
			return send_compressed_stream(resp, data, len);
		z_start(resp);
		uLong bound = deflateBound(resp->z, (uLong)len);
		char *zbuf = xmalloc(bound);
		resp->z->next_in = (Bytef *)data;
		resp->z->avail_in = (uInt)len;
		resp->z->next_out = (Bytef *)zbuf;
		resp->z->avail_out = (uInt)bound;
		deflate(resp->z, Z_FINISH);
		size_t zlen = bound - resp->z->avail_out;
		z_free(resp);
		int rc = http_response_write_head(resp, zlen, true);
		if (rc == 0 && !req->is_head)
			rc = out_body(resp, zbuf, zlen);
		free(zbuf);
		return rc;
	}
	if (http_response_write_head(resp, len, true) < 0)
		return -1;
	if (req->is_head || resp->status == 204 || resp->status == 304)
		return 0;
	return out_body(resp, data, len);
}

int http_response_error(struct http_response *resp, unsigned status,
			const char *detail)
{
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "%u %s\r\n%s%s", status, http_status_reason(status),
		   detail ? detail : "", detail ? "\r\n" : "");
	resp->status = status;
	remove_header(resp, "Content-Encoding");
	http_response_etag(resp, NULL);
	resp->ranges = false;
	http_response_content_type(resp, "text/plain; charset=utf-8");
	if (status == 503)
		http_response_set_header(resp, "Retry-After", "5");
	int rc = http_response_send(resp, b.data, b.len);
	buf_free(&b);
	return rc;
}

int http_response_problem(struct http_response *resp, unsigned status,
			  const char *type, const char *detail)
{
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "{\"type\":\"");
	http_json_escape(&b, type);
	buf_printf(&b, "\",\"status\":%u,\"detail\":\"", status);
	http_json_escape(&b, detail ? detail : "");
	buf_append_str(&b, "\"}");
	resp->status = status;
	http_response_content_type(resp, "application/problem+json");
	int rc = http_response_send(resp, b.data, b.len);
	buf_free(&b);
	return rc;
}

int http_response_redirect(struct http_response *resp, unsigned status,
			   const char *location)
{
	resp->status = status;
	http_response_set_header(resp, "Location", "%s", location);
	http_response_set_header(resp, "Cache-Control", "no-cache");
	return http_response_send(resp, NULL, 0);
}

/* ---- chunked bodies ------------------------------------------------- */

static int out_chunk(struct http_response *resp, const void *data, size_t len)
{
	if (len == 0)
		return 0;
	if (resp->req->is_head)
		return 0;
	if (!resp->chunked)
		return out(resp, data, len);
	char head[24];
	int n = snprintf(head, sizeof(head), "%zx\r\n", len);
	if (out(resp, head, (size_t)n) < 0 || out(resp, data, len) < 0 ||
	    out(resp, "\r\n", 2) < 0)
		return -1;
	return 0;
}

/* Deflates in[0..len) (flush: Z_NO_FLUSH, Z_SYNC_FLUSH or Z_FINISH) and
 * writes what comes out as chunks. */
static int z_out(struct http_response *resp, const void *in, size_t len,
		 int flush)
{
	char zbuf[16384];
	resp->z->next_in = (Bytef *)in;
	resp->z->avail_in = (uInt)len;
	for (;;) {
		resp->z->next_out = (Bytef *)zbuf;
		resp->z->avail_out = sizeof(zbuf);
		int zr = deflate(resp->z, flush);
		size_t n = sizeof(zbuf) - resp->z->avail_out;
		if (out_chunk(resp, zbuf, n) < 0)
			return -1;
		if (zr == Z_STREAM_END)
			return 0;
		if (resp->z->avail_in == 0 && resp->z->avail_out != 0)
			return 0;
	}
}

int http_response_begin(struct http_response *resp)
{
	if (resp->started)
		return resp->broken ? -1 : 0;
	if (want_compress(resp, COMPRESS_MIN))
		z_start(resp);
	return http_response_write_head(resp, 0, false);
}

int http_response_write(struct http_response *resp, const void *data,
			size_t len)
{
	if (!resp->started && http_response_begin(resp) < 0)
		return -1;
	if (resp->broken || resp->finished)
		return -1;
	if (resp->z != NULL) {
		while (len > 0) {
			size_t n = len < WRITE_PIECE ? len : WRITE_PIECE;
			if (z_out(resp, data, n, Z_NO_FLUSH) < 0)
				return -1;
			data = (const char *)data + n;
			len -= n;
		}
		return 0;
	}
	while (len > 0) {
		size_t n = len < WRITE_PIECE ? len : WRITE_PIECE;
		if (out_chunk(resp, data, n) < 0)
			return -1;
		data = (const char *)data + n;
		len -= n;
	}
	return 0;
}

int http_response_printf(struct http_response *resp, const char *fmt, ...)
{
	struct buf b;
	va_list ap;
	buf_init(&b, 0);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	int rc = http_response_write(resp, b.data, b.len);
	buf_free(&b);
	return rc;
}

int http_response_end(struct http_response *resp)
{
	if (!resp->started && http_response_begin(resp) < 0)
		return -1;
	if (resp->finished)
		return 0;
	resp->finished = true;
	if (resp->broken)
		return -1;
	if (resp->z != NULL) {
		int rc = z_out(resp, NULL, 0, Z_FINISH);
		z_free(resp);
		if (rc < 0)
			return -1;
	}
	if (resp->chunked && !resp->req->is_head)
		return out(resp, "0\r\n\r\n", 5);
	return 0;
}

static int send_compressed_stream(struct http_response *resp,
				  const char *data, size_t len)
{
	z_start(resp);
	if (http_response_write_head(resp, 0, false) < 0)
		return -1;
	while (len > 0) {
		size_t n = len < WRITE_PIECE ? len : WRITE_PIECE;
		if (z_out(resp, data, n, Z_NO_FLUSH) < 0)
			return -1;
		data += n;
		len -= n;
	}
	return http_response_end(resp);
}
