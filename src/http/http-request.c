/*
 * The request as handlers see it: accessors over the parsed head, the
 * body, the authenticated account, query parameters and percent-decoding
 * (RFC 3986 2.1).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <stdio.h>

#include "http-private.h"

const char *http_request_method(const struct http_request *req)
{
	return req->head->method;
}

const char *http_request_target(const struct http_request *req)
{
	return req->head->target;
}

const char *http_request_path(const struct http_request *req)
{
	return req->head->path;
}

const char *http_request_query(const struct http_request *req)
{
	return req->head->query;
}

/* RFC 9110 5.3: repeated fields are one comma-separated list (the last
 * joined value is kept in req->joined; Set-Cookie never comes in a
 * request, and Cookie pairs are joined with "; " per RFC 6265 5.4). */
const char *http_request_header(const struct http_request *req,
				const char *name)
{
	const struct http_head *h = req->head;
	const char *first = NULL;
	unsigned count = 0;
	for (unsigned i = 0; i < h->field_count; i++) {
		if (strcasecmp(h->fields[i].name, name) == 0) {
			if (first == NULL)
				first = h->fields[i].value;
			count++;
		}
	}
	if (count <= 1)
		return first;
	const char *sep = strcasecmp(name, "cookie") == 0 ? "; " : ", ";
	struct buf b;
	buf_init(&b, 0);
	for (unsigned i = 0; i < h->field_count; i++) {
		if (strcasecmp(h->fields[i].name, name) != 0)
			continue;
		if (b.len > 0)
			buf_append_str(&b, sep);
		buf_append_str(&b, h->fields[i].value);
	}
	struct http_request *r = (struct http_request *)req;
	free(r->joined);
	r->joined = buf_steal(&b, NULL);
	return r->joined;
}

bool http_request_header_at(const struct http_request *req, size_t index,
			    const char **name_r, const char **value_r)
{
	if (index >= req->head->field_count)
		return false;
	*name_r = req->head->fields[index].name;
	*value_r = req->head->fields[index].value;
	return true;
}

int64_t http_request_content_length(const struct http_request *req)
{
	if (req->head->body == HTTP_BODY_LENGTH)
		return (int64_t)req->head->content_length;
	return req->head->body == HTTP_BODY_NONE ? 0 : -1;
}

bool http_request_has_body(const struct http_request *req)
{
	return req->head->body != HTTP_BODY_NONE;
}

const void *http_request_body(const struct http_request *req, size_t *len_r)
{
	*len_r = req->body.len;
	return req->body.data != NULL ? req->body.data : "";
}

uint64_t http_request_body_received(const struct http_request *req)
{
	return req->received;
}

const struct auth_user *http_request_account(const struct http_request *req)
{
	return req->has_user ? &req->user : NULL;
}

enum http_auth_kind http_request_auth_kind(const struct http_request *req)
{
	return req->has_user ? req->auth_kind : HTTP_AUTH_NONE;
}

/* The client as far as we can tell: the socket's peer, or, behind a
 * reverse proxy on this host ([http] trust_proxy), the address the proxy
 * appended last to X-Forwarded-For and the scheme it names in
 * X-Forwarded-Proto (only from loopback: nobody else can claim it). */
static void client_of(const struct http_request *req)
{
	struct http_request *r = (struct http_request *)req;
	struct net_conn *conn = req->hc->conn;
	if (r->client_known)
		return;
	r->client_known = true;
	r->client_secure = net_conn_is_tls(conn);
	r->client_local = net_conn_is_local(conn);
	snprintf(r->client_ip, sizeof(r->client_ip), "%s", net_conn_peer(conn));
	if (!http_set(req->hc->server)->trust_proxy || !net_conn_is_local(conn))
		return;
	const char *xff = http_request_header(req, "x-forwarded-for");
	if (xff != NULL) {
		const char *last = strrchr(xff, ',');
		last = last != NULL ? last + 1 : xff;
		while (*last == ' ' || *last == '\t')
			last++;
		char ip[46];
		size_t n = strcspn(last, " \t");
		unsigned char bin[16];
		if (n > 0 && n < sizeof(ip)) {
			memcpy(ip, last, n);
			ip[n] = '\0';
			bool v4 = inet_pton(AF_INET, ip, bin) == 1;
			bool v6 = !v4 && inet_pton(AF_INET6, ip, bin) == 1;
			if (v4 || v6) {
				memcpy(r->client_ip, ip, n + 1);
				r->client_local = v4 ? bin[0] == 127 :
					strcmp(ip, "::1") == 0;
			}
		}
	}
	const char *proto = http_request_header(req, "x-forwarded-proto");
	if (proto != NULL && !net_conn_is_tls(conn))
		r->client_secure = strcasecmp(proto, "https") == 0;
}

bool http_request_is_tls(const struct http_request *req)
{
	client_of(req);
	return req->client_secure;
}

bool http_request_is_local(const struct http_request *req)
{
	client_of(req);
	return req->client_local;
}

const char *http_request_peer(const struct http_request *req)
{
	client_of(req);
	return req->client_ip;
}

const char *http_request_id(const struct http_request *req)
{
	return net_conn_id(req->hc->conn);
}

const char *http_request_origin(const struct http_request *req)
{
	if (req->origin == NULL) {
		const char *host = req->head->host;
		if (host == NULL || host[0] == '\0')
			host = http_set(req->hc->server)->hostname;
		((struct http_request *)req)->origin =
			xasprintf("%s://%s", http_request_is_tls(req) ?
				  "https" : "http", host);
	}
	return req->origin;
}

void http_request_set_data(struct http_request *req, void *data)
{
	req->data = data;
}

void *http_request_data(const struct http_request *req)
{
	return req->data;
}

/* Decodes in[0..len); plus_space: '+' is a space (form encoding). */
static char *pct_decode(const char *in, size_t len, bool allow_nul,
			bool plus_space)
{
	char *out = xmalloc(len + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= len ||
			    (hi = http_hexval((unsigned char)in[i + 1])) < 0 ||
			    (lo = http_hexval((unsigned char)in[i + 2])) < 0) {
				free(out);
				return NULL;
			}
			c = (char)(hi * 16 + lo);
			if (c == '\0' && !allow_nul) {
				free(out);
				return NULL;
			}
			i += 2;
		} else if (c == '+' && plus_space) {
			c = ' ';
		}
		out[o++] = c;
	}
	out[o] = '\0';
	return out;
}

char *http_pct_decode(const char *in, size_t len, bool allow_nul)
{
	return pct_decode(in, len, allow_nul, false);
}

char *http_form_value(const char *form, size_t len, const char *name)
{
	size_t nl = strlen(name);
	const char *p = form, *end = form + len;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *e = amp != NULL ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(e - p));
		const char *kend = eq != NULL ? eq : e;
		char *key = pct_decode(p, (size_t)(kend - p), false, true);
		bool match = key != NULL && strlen(key) == nl &&
			memcmp(key, name, nl) == 0;
		free(key);
		if (match) {
			if (eq == NULL)
				return xstrdup("");
			return pct_decode(eq + 1, (size_t)(e - eq - 1), false,
					  true);
		}
		p = e + (amp != NULL);
	}
	return NULL;
}

char *http_query_param(const struct http_request *req, const char *name)
{
	const char *q = req->head->query;
	return http_form_value(q, strlen(q), name);
}
