/* See outwire.h. */
#include "outwire.h"

#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#define RESOLVE_MAX 600
#define CA_FILE_MAX 4096
#define HTTP_FIXED 13           /* timeouts, answer max, flags */
#define HTTP_MIN (HTTP_FIXED + 4 + 3 + 4 + 1 + 4 + 4 + 4 + 4)
#define HTTP_MAX ((size_t)HTTP_FIXED + 4 + 4 + 4 + OUTHTTP_URL_MAX + 4 + \
		  RESOLVE_MAX + 4 + CA_FILE_MAX + 4 + \
		  (size_t)OUTHTTP_HEADERS_MAX * (4 + OUTHTTP_HEADER_MAX) + 4 + \
		  OUTHTTP_BODY_MAX)
#define FLAG_HTTPS_ONLY 1u

static void append32(struct buf *b, uint32_t v)
{
	uint8_t p[4];
	outwire_put32(p, v);
	buf_append(b, p, 4);
}

int outwire_header_parse(const uint8_t hdr[8], uint32_t *type_r,
			 uint32_t *len_r)
{
	uint32_t type = outwire_get32(hdr), len = outwire_get32(hdr + 4);
	bool ok = (type == OUTWIRE_CONNECT && len == 24) ||
		  (type == OUTWIRE_SIGN && len > 4 &&
		   len <= 4 + OUTWIRE_HASH_MAX + OUTWIRE_HEAD_MAX) ||
		  (type == OUTWIRE_HTTP && len >= HTTP_MIN && len <= HTTP_MAX);
	if (!ok)
		return -1;
	*type_r = type;
	*len_r = len;
	return 0;
}

/* ---- field checks ---------------------------------------------------- */

static bool visible(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

static bool url_ok(const char *s, size_t n, bool https_only)
{
	if (n == 0 || n > OUTHTTP_URL_MAX || !visible(s, n))
		return false;
	if (n > 8 && strncmp(s, "https://", 8) == 0)
		return true;
	return !https_only && n > 7 && strncmp(s, "http://", 7) == 0;
}

/* "Name: value": a token, ':', then no control character but tab
 * (UTF-8 stays: SMTPUTF8 addresses in rspamd's From and Rcpt) */
static bool header_ok(const char *s, size_t n)
{
	if (n == 0 || n > OUTHTTP_HEADER_MAX)
		return false;
	size_t i = 0;
	while (i < n && s[i] != ':' && (unsigned char)s[i] > 0x20 &&
	       (unsigned char)s[i] < 0x7f)
		i++;
	if (i == 0 || i == n || s[i] != ':')
		return false;
	for (i++; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

static bool ca_file_ok(const char *s, size_t n)
{
	return n == 0 || (n <= CA_FILE_MAX && s[0] == '/' &&
			  memchr(s, '\0', n) == NULL);
}

/* ---- requests -------------------------------------------------------- */

struct reader {
	const uint8_t *p;
	size_t len, off;
	bool bad;
};

static uint32_t rd32(struct reader *r)
{
	if (r->bad || r->len - r->off < 4) {
		r->bad = true;
		return 0;
	}
	uint32_t v = outwire_get32(r->p + r->off);
	r->off += 4;
	return v;
}

/* A string of at most max bytes: its bytes (into the payload), or NULL. */
static const char *rdstr(struct reader *r, size_t max, size_t *len_r)
{
	uint32_t n = rd32(r);
	if (r->bad || n > max || r->len - r->off < n) {
		r->bad = true;
		*len_r = 0;
		return NULL;
	}
	const char *s = (const char *)r->p + r->off;
	r->off += n;
	*len_r = n;
	return s;
}

static int parse_connect(const uint8_t *p, size_t len,
			 struct outwire_request *r, const char **why_r)
{
	unsigned family = (unsigned)p[0] << 8 | p[1];
	uint16_t port_n;
	memcpy(&port_n, p + 2, 2);
	r->timeout_ms = outwire_get32(p + 20);
	static const uint8_t zeros[12];
	if (len != 24 || (family != AF_INET && family != AF_INET6) ||
	    port_n == 0 || r->timeout_ms == 0 ||
	    r->timeout_ms > OUTHTTP_TIMEOUT_MAX ||
	    (family == AF_INET && memcmp(p + 8, zeros, 12) != 0)) {
		*why_r = "malformed CONNECT";
		return -1;
	}
	memset(&r->addr, 0, sizeof(r->addr));
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&r->addr;
		s4->sin_family = AF_INET;
		s4->sin_port = port_n;
		memcpy(&s4->sin_addr, p + 4, 4);
		r->addr_len = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&r->addr;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = port_n;
		memcpy(&s6->sin6_addr, p + 4, 16);
		r->addr_len = sizeof(*s6);
	}
	return 0;
}

static int parse_sign(const uint8_t *p, size_t len, struct outwire_request *r,
		      const char **why_r)
{
	uint32_t hl = len >= 4 ? outwire_get32(p) : 0;
	if (len < 4 || hl == 0 || hl > OUTWIRE_HASH_MAX || len - 4 <= hl ||
	    len - 4 - hl > OUTWIRE_HEAD_MAX) {
		*why_r = "malformed SIGN";
		return -1;
	}
	r->hash = p + 4;
	r->hash_len = hl;
	r->head = (const char *)p + 4 + hl;
	r->head_len = len - 4 - hl;
	return 0;
}

static int parse_http(const uint8_t *p, size_t len, struct outwire_request *r,
		      const char **why_r)
{
	struct reader rd = {.p = p, .len = len};
	struct outhttp_request *h = &r->http;
	h->timeout_ms = rd32(&rd);
	h->connect_timeout_ms = rd32(&rd);
	h->answer_max = rd32(&rd);
	uint8_t flags = 0;
	if (!rd.bad && rd.len - rd.off >= 1)
		flags = rd.p[rd.off++];
	else
		rd.bad = true;
	if (rd.bad || h->timeout_ms == 0 ||
	    h->timeout_ms > OUTHTTP_TIMEOUT_MAX ||
	    h->connect_timeout_ms == 0 ||
	    h->connect_timeout_ms > h->timeout_ms ||
	    h->answer_max > OUTHTTP_ANSWER_MAX || (flags & ~FLAG_HTTPS_ONLY)) {
		*why_r = "malformed HTTP request: limits";
		return -1;
	}
	h->https_only = (flags & FLAG_HTTPS_ONLY) != 0;
	size_t n;
	const char *s = rdstr(&rd, 4, &n);
	if (s == NULL || !((n == 3 && memcmp(s, "GET", 3) == 0) ||
			   (n == 4 && memcmp(s, "POST", 4) == 0))) {
		*why_r = "malformed HTTP request: method";
		return -1;
	}
	r->method = xstrndup(s, n);
	s = rdstr(&rd, OUTHTTP_URL_MAX, &n);
	if (s == NULL || !url_ok(s, n, h->https_only)) {
		*why_r = "malformed HTTP request: URL";
		return -1;
	}
	r->url = xstrndup(s, n);
	s = rdstr(&rd, RESOLVE_MAX, &n);
	if (s == NULL || !visible(s, n)) {
		*why_r = "malformed HTTP request: resolve pin";
		return -1;
	}
	r->resolve = n > 0 ? xstrndup(s, n) : NULL;
	s = rdstr(&rd, CA_FILE_MAX, &n);
	if (s == NULL || !ca_file_ok(s, n)) {
		*why_r = "malformed HTTP request: CA file";
		return -1;
	}
	r->ca_file = n > 0 ? xstrndup(s, n) : NULL;
	uint32_t count = rd32(&rd);
	if (rd.bad || count > OUTHTTP_HEADERS_MAX ||
	    (size_t)count * 5 > rd.len - rd.off) {
		*why_r = "malformed HTTP request: header count";
		return -1;
	}
	r->headers = xcalloc(count + 1, sizeof(*r->headers));
	for (uint32_t i = 0; i < count; i++) {
		s = rdstr(&rd, OUTHTTP_HEADER_MAX, &n);
		if (s == NULL || !header_ok(s, n)) {
			*why_r = "malformed HTTP request: header";
			return -1;
		}
		r->headers[i] = xstrndup(s, n);
		h->header_count = i + 1;
	}
	s = rdstr(&rd, OUTHTTP_BODY_MAX, &n);
	if (s == NULL || rd.off != rd.len || (n > 0 && r->method[0] == 'G')) {
		*why_r = "malformed HTTP request: body";
		return -1;
	}
	h->body = s;
	h->body_len = n;
	h->method = r->method;
	h->url = r->url;
	h->resolve = r->resolve;
	h->ca_file = r->ca_file;
	h->headers = (const char *const *)r->headers;
	return 0;
}

int outwire_request_parse(uint32_t type, const uint8_t *p, size_t len,
			  struct outwire_request *r, const char **why_r)
{
	memset(r, 0, sizeof(*r));
	r->type = type;
	switch (type) {
	case OUTWIRE_CONNECT:
		if (len != 24) {
			*why_r = "malformed CONNECT";
			return -1;
		}
		return parse_connect(p, len, r, why_r);
	case OUTWIRE_SIGN:
		return parse_sign(p, len, r, why_r);
	case OUTWIRE_HTTP:
		return parse_http(p, len, r, why_r);
	}
	*why_r = "unknown request";
	return -1;
}

void outwire_request_deinit(struct outwire_request *r)
{
	free(r->method);
	free(r->url);
	free(r->resolve);
	free(r->ca_file);
	if (r->headers != NULL)
		for (size_t i = 0; r->headers[i] != NULL; i++)
			free(r->headers[i]);
	free(r->headers);
	memset(r, 0, sizeof(*r));
}

/* ---- encoding -------------------------------------------------------- */

int outwire_connect_encode(const struct sockaddr *sa, socklen_t len,
			   unsigned timeout_ms, struct buf *out)
{
	uint8_t p[8 + 24];
	memset(p, 0, sizeof(p));
	outwire_put32(p, OUTWIRE_CONNECT);
	outwire_put32(p + 4, 24);
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		memcpy(p + 10, &s4->sin_port, 2);
		memcpy(p + 12, &s4->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6 &&
		   len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		memcpy(p + 10, &s6->sin6_port, 2);
		memcpy(p + 12, &s6->sin6_addr, 16);
	} else {
		return -1;
	}
	p[8] = (uint8_t)(sa->sa_family >> 8);
	p[9] = (uint8_t)sa->sa_family;
	if (timeout_ms == 0)
		timeout_ms = 1;
	if (timeout_ms > OUTHTTP_TIMEOUT_MAX)
		timeout_ms = OUTHTTP_TIMEOUT_MAX;
	outwire_put32(p + 28, timeout_ms);
	buf_append(out, p, sizeof(p));
	return 0;
}

int outwire_sign_encode(const uint8_t *hash, size_t hash_len,
			const char *head, size_t head_len, struct buf *out)
{
	if (hash_len == 0 || hash_len > OUTWIRE_HASH_MAX || head_len == 0 ||
	    head_len > OUTWIRE_HEAD_MAX)
		return -1;
	append32(out, OUTWIRE_SIGN);
	append32(out, (uint32_t)(4 + hash_len + head_len));
	append32(out, (uint32_t)hash_len);
	buf_append(out, hash, hash_len);
	buf_append(out, head, head_len);
	return 0;
}

static void append_str(struct buf *b, const char *s, size_t n)
{
	append32(b, (uint32_t)n);
	if (n > 0)
		buf_append(b, s, n);
}

int outwire_http_encode(const struct outhttp_request *req, struct buf *out)
{
	const char *resolve = req->resolve != NULL ? req->resolve : "";
	const char *ca = req->ca_file != NULL ? req->ca_file : "";
	size_t ml = strlen(req->method), ul = strlen(req->url);
	size_t rl = strlen(resolve), cl = strlen(ca);
	bool get = ml == 3 && memcmp(req->method, "GET", 3) == 0;
	bool ok = (get || (ml == 4 && memcmp(req->method, "POST", 4) == 0)) &&
		  url_ok(req->url, ul, req->https_only) && rl <= RESOLVE_MAX &&
		  visible(resolve, rl) && ca_file_ok(ca, cl) &&
		  req->timeout_ms > 0 &&
		  req->timeout_ms <= OUTHTTP_TIMEOUT_MAX &&
		  req->connect_timeout_ms > 0 &&
		  req->connect_timeout_ms <= req->timeout_ms &&
		  req->answer_max <= OUTHTTP_ANSWER_MAX &&
		  req->header_count <= OUTHTTP_HEADERS_MAX &&
		  req->body_len <= OUTHTTP_BODY_MAX &&
		  (!get || req->body_len == 0);
	for (size_t i = 0; ok && i < req->header_count; i++)
		ok = header_ok(req->headers[i], strlen(req->headers[i]));
	if (!ok)
		return -1;
	struct buf b;
	buf_init(&b, 0);
	append32(&b, req->timeout_ms);
	append32(&b, req->connect_timeout_ms);
	append32(&b, (uint32_t)req->answer_max);
	buf_append_char(&b, req->https_only ? (char)FLAG_HTTPS_ONLY : 0);
	append_str(&b, req->method, ml);
	append_str(&b, req->url, ul);
	append_str(&b, resolve, rl);
	append_str(&b, ca, cl);
	append32(&b, (uint32_t)req->header_count);
	for (size_t i = 0; i < req->header_count; i++)
		append_str(&b, req->headers[i], strlen(req->headers[i]));
	append_str(&b, req->body != NULL ? req->body : "", req->body_len);
	append32(out, OUTWIRE_HTTP);
	append32(out, (uint32_t)b.len);
	buf_append(out, b.data, b.len);
	buf_free(&b);
	return 0;
}

/* ---- HTTP answers ---------------------------------------------------- */

static bool ctype_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return n <= OUTWIRE_CTYPE_MAX;
}

void outwire_http_answer_encode(const struct outhttp_answer *a,
				struct buf *out)
{
	size_t cl = a->content_type != NULL ? strlen(a->content_type) : 0;
	if (!ctype_ok(a->content_type, cl))
		cl = 0;                 /* not something to pass on */
	append32(out, a->status);
	append_str(out, a->content_type, cl);
	if (a->body != NULL && a->body_len > 0)
		buf_append(out, a->body, a->body_len);
}

int outwire_http_answer_parse(const uint8_t *p, size_t len,
			      size_t answer_max, struct outhttp_answer *a_r)
{
	memset(a_r, 0, sizeof(*a_r));
	struct reader rd = {.p = p, .len = len};
	uint32_t status = rd32(&rd);
	size_t cl;
	const char *ct = rdstr(&rd, OUTWIRE_CTYPE_MAX, &cl);
	if (rd.bad || status < 100 || status > 599 || !ctype_ok(ct, cl) ||
	    len - rd.off > answer_max)
		return -1;
	a_r->status = status;
	if (cl > 0)
		a_r->content_type = xstrndup(ct, cl);
	if (answer_max > 0) {
		a_r->body_len = len - rd.off;
		a_r->body = xmalloc(a_r->body_len + 1);
		if (a_r->body_len > 0)
			memcpy(a_r->body, p + rd.off, a_r->body_len);
		a_r->body[a_r->body_len] = '\0';
	}
	return 0;
}
