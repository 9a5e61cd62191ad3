/*
 * The HTTP/1.1 front-end (RFC 9110, RFC 9112) on the net layer: the same
 * I/O threads, TLS, limits and per-address throttling as IMAP. The
 * daemon creates one server from [http] (listeners [http], [https]) and a
 * second, admin-only one for [metrics]; modules (jmap, the webmail's
 * static files, autoconfig, /metrics) add routes to it before loftd
 * listens.
 *
 * How a request runs:
 * - The I/O thread parses the request line and header fields
 *   incrementally (http-parser.c). Malformed framing (request smuggling,
 *   RFC 9112 6.1, 6.3: Content-Length with Transfer-Encoding, two
 *   different Content-Lengths, obs-fold, bare CR or LF) is answered 400
 *   and the connection closed; header fields over the limit get 431.
 * - The route is chosen by method and path prefix (longest prefix wins).
 *   Authentication, when the route asks for it, runs on the worker before
 *   the handler: Basic (RFC 7617, only over TLS or from loopback, as
 *   IMAP), Bearer tokens (RFC 6750) or the webmail's session cookie
 *   (with CSRF protection on unsafe methods).
 * - A buffered body is read on the I/O thread, up to the route's max_body
 *   (413 beyond), then handle() runs on a worker. A streamed body goes to
 *   the route's body() hook in pieces, each on a worker, reading the
 *   socket only between pieces: an upload goes straight into a store blob
 *   writer and holds no thread while the client is slow.
 * - handle() answers through the response: whole (http_response_send,
 *   which adds Content-Length, gzip/deflate when accepted, HEAD, ETag /
 *   If-None-Match and Range), streamed with chunked encoding
 *   (http_response_begin / _write / _end), or as a long-lived stream
 *   (http_response_stream, for EventSource) that holds no thread while
 *   idle and is written from any thread.
 * - Keep-alive: the next request is read when the response is done.
 *
 * Every function taking a request or response is called on the worker
 * running that request, unless it says otherwise.
 */
#ifndef LOFT_HTTP_H
#define LOFT_HTTP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "net.h"

struct auth;
struct auth_user;
struct buf;
struct config;
struct store;
struct http_server;
struct http_request;
struct http_response;
struct http_stream;

extern const struct net_proto http_proto;

/* ---- the server ----------------------------------------------------- */

/* A listener of another service that client set-up (autoconfig,
 * Autodiscover, .mobileconfig, `loftctl dns`) advertises: the daemon
 * passes every configured listener, by its section name ("imaps",
 * "pop3s", "submission", ...), and the set-up module picks those it
 * knows. */
struct http_service {
	const char *proto;    /* section name: "imap", "imaps", "pop3s", ... */
	const char *addr;     /* as configured: "*:993", "[::1]:993" */
};

/* Reads [http] (keys in docs/config.md). store and auth may be NULL
 * (loftd --check). services: the configured listeners, copied.
 * On a bad value appends "FILE:LINE: message\n" to errors and returns
 * NULL. The server answers the built-in routes (the webmail's static
 * files, sign-in, client set-up, /healthz) by itself. */
/* The directory the webmail's files are served from ([http] webmail_dir,
 * else the first that exists beside loftd, in share/loft/webmail, ...),
 * or NULL; caller frees. loftd lets its confined mail process read it. */
char *http_webmail_dir(const struct config *cfg);
struct http_server *http_server_create(const struct config *cfg,
				       struct store *store, struct auth *auth,
				       const struct http_service *services,
				       size_t service_count,
				       struct buf *errors);
/* The [metrics] listener's server: /metrics and /healthz only. */
struct http_server *http_metrics_server_create(const struct config *cfg,
					       struct store *store,
					       struct auth *auth,
					       struct buf *errors);
/* SIGHUP: [http] timeouts, sizes, sessions, cors_origins and
 * trust_proxy for the next requests (listen, webmail, webmail_dir and
 * hostname need a restart). */
void http_server_reload(struct http_server *server, const struct config *cfg);
void http_server_destroy(struct http_server **server);
/* The configured hostname (top-level hostname, else gethostname). */
const char *http_server_hostname(const struct http_server *server);

/* ---- routes --------------------------------------------------------- */

/* Route flags. */
enum {
	/* An authenticated account is required: 401 with a
	 * WWW-Authenticate challenge otherwise (403 for a disabled one). */
	HTTP_ROUTE_AUTH = 1 << 0,
	/* Credentials are checked when present, but none is fine. */
	HTTP_ROUTE_AUTH_OPTIONAL = 1 << 1,
	/* The path must equal prefix (a trailing "/" in neither counts). */
	HTTP_ROUTE_EXACT = 1 << 2,
	/* Cross-origin requests from [http] cors_origins are allowed:
	 * preflight (OPTIONS) is answered without authentication and the
	 * response carries Access-Control-Allow-Origin. */
	HTTP_ROUTE_CORS = 1 << 3,
	/* Never compress the response (EventSource, already compressed
	 * data). */
	HTTP_ROUTE_NO_COMPRESS = 1 << 4,
};

/* A handler answers through resp before it returns (or turns it into a
 * stream); if it does not, the server answers 500. ctx is the pointer
 * given to http_route_add. */
typedef void http_handler_fn(struct http_request *req,
			     struct http_response *resp, void *ctx);

struct http_route {
	const char *method;   /* "GET", "POST", ...; NULL: any. A GET route
				 also answers HEAD (the body is dropped). */
	const char *prefix;   /* "/jmap/api": matches "/jmap/api" and
				 "/jmap/api/..." (a path boundary), or any
				 path starting with it if it ends in "/" */
	unsigned flags;       /* HTTP_ROUTE_* */
	/* Largest body accepted, in bytes; a bigger one gets 413 (before
	 * it is read when Content-Length says so). 0: [http] max_body
	 * (default 1 MiB) for a buffered body; for a streamed body 0 means
	 * the same default, so set it (e.g. maxSizeUpload). */
	uint64_t max_body;

	/* Optional, streamed bodies: called once after authentication and
	 * before any body byte is read (Expect: 100-continue is answered
	 * only when it returns 0). Return 0 to go on, or answer through
	 * resp (e.g. 404, 413) and return -1: the body is then not read
	 * and the connection is closed after the answer. */
	int (*begin)(struct http_request *req, struct http_response *resp,
		     void *ctx);
	/* Optional: when set, the body is streamed to it in pieces of at
	 * most 64 KiB (chunked encoding already decoded), each call on a
	 * worker; otherwise the body is buffered (http_request_body).
	 * Return 0 to go on, or answer through resp and return -1 (the
	 * rest of the body is not read; the connection is closed). */
	int (*body)(struct http_request *req, struct http_response *resp,
		    const void *data, size_t len, void *ctx);
	/* Runs once the whole body has arrived (or at once without one). */
	http_handler_fn *handle;
	/* Optional: called exactly once per request that reached begin()
	 * or handle(), last, to free what the handler kept with
	 * http_request_set_data. complete is false when the client went
	 * away before the request was whole (an upload cut half way: abort
	 * the blob writer, keep nothing). Runs on a worker, or on the I/O
	 * thread when the connection is gone: it must not block there
	 * (aborting a blob writer is fine). */
	void (*cleanup)(struct http_request *req, bool complete, void *ctx);
};

/* Adds a route (the struct is copied; its strings must outlive the
 * server). Call before loftd listens. Returns -1 if the same method and
 * prefix are taken. */
int http_route_add(struct http_server *server, const struct http_route *route,
		   void *ctx);

/* ---- the request ---------------------------------------------------- */

enum http_auth_kind {
	HTTP_AUTH_NONE,
	HTTP_AUTH_BASIC,      /* Authorization: Basic (RFC 7617) */
	HTTP_AUTH_BEARER,     /* Authorization: Bearer token (RFC 6750) */
	HTTP_AUTH_COOKIE,     /* the webmail's session cookie */
};

/* Strings are NUL-terminated and live as long as the request. */
const char *http_request_method(const struct http_request *req);
/* The request-target as sent: "/jmap/api?x=1" (origin form). */
const char *http_request_target(const struct http_request *req);
/* The path, still percent-encoded: "/jmap/download/a1/b2/x%20y". */
const char *http_request_path(const struct http_request *req);
/* What follows '?', still encoded; "" when there is none. */
const char *http_request_query(const struct http_request *req);
/* The field's value (RFC 9110 5.3: repeated fields joined with ", "),
 * or NULL. Case-insensitive name. */
const char *http_request_header(const struct http_request *req,
				const char *name);
/* Every field line in order; false past the end. */
bool http_request_header_at(const struct http_request *req, size_t index,
			    const char **name_r, const char **value_r);
/* Content-Length, or -1 (chunked, or no body: see has_body). */
int64_t http_request_content_length(const struct http_request *req);
bool http_request_has_body(const struct http_request *req);
/* The buffered body (routes without a body hook). Never NULL; len 0
 * when there is none. */
const void *http_request_body(const struct http_request *req, size_t *len_r);
/* Bytes of body received so far (streamed routes). */
uint64_t http_request_body_received(const struct http_request *req);

/* The authenticated account, or NULL (no credentials, or a route
 * without HTTP_ROUTE_AUTH[_OPTIONAL]). */
const struct auth_user *http_request_account(const struct http_request *req);
enum http_auth_kind http_request_auth_kind(const struct http_request *req);

/* The client's connection: TLS, loopback, its address. Behind a reverse
 * proxy on this host ([http] trust_proxy = yes) these describe the
 * client the proxy names (X-Forwarded-For, X-Forwarded-Proto), so
 * throttling, logs and the cookie's Secure flag see the real client. */
bool http_request_is_tls(const struct http_request *req);
bool http_request_is_local(const struct http_request *req);
const char *http_request_peer(const struct http_request *req);
/* The session id used in logs. */
const char *http_request_id(const struct http_request *req);
/* The origin the client reached us at, from Host and the listener's
 * scheme: "https://mail.example.com:8443". */
const char *http_request_origin(const struct http_request *req);

/* Handler state for one request (see cleanup). */
void http_request_set_data(struct http_request *req, void *data);
void *http_request_data(const struct http_request *req);

/* The query parameter's value, percent-decoded ('+' is a space), or NULL
 * if absent or badly encoded (caller frees). */
char *http_query_param(const struct http_request *req, const char *name);
/* Percent-decodes in[0..len) (RFC 3986 2.1). Returns NULL on a bad
 * escape or, unless allow_nul, on %00 (caller frees). */
char *http_pct_decode(const char *in, size_t len, bool allow_nul);

/* ---- the response --------------------------------------------------- */

/* Status (default 200) and header fields, before the first byte is sent.
 * The server adds Date, Content-Length or Transfer-Encoding, Connection,
 * Content-Encoding/Vary for compression, and the security headers
 * (X-Content-Type-Options, Referrer-Policy; CSP on HTML). A field set
 * twice with http_response_set_header is replaced; add_header appends. */
void http_response_status(struct http_response *resp, unsigned status);
void http_response_set_header(struct http_response *resp, const char *name,
			      const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void http_response_add_header(struct http_response *resp, const char *name,
			      const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Content-Type shortcut. */
void http_response_content_type(struct http_response *resp,
				const char *type);
/* A strong validator (RFC 9110 8.8.3) without quotes: the server adds
 * ETag and answers a matching If-None-Match with 304, and a Range
 * request (RFC 9110 14) with 206/416 when If-Range allows. */
void http_response_etag(struct http_response *resp, const char *etag);
/* Last-Modified (RFC 9110 8.8.2) for If-Modified-Since. */
void http_response_last_modified(struct http_response *resp, time_t t);
/* Range requests are answered for this (whole) response; with an ETag
 * set. */
void http_response_accept_ranges(struct http_response *resp);
/* Whether the response may still get headers (nothing sent yet). */
bool http_response_started(const struct http_response *resp);

/* Sends the response with this whole body (data only needs to live
 * during the call; it is written in pieces with back-pressure, so a
 * mapped 50 MB blob is never copied whole). Applies HEAD, 304, Range and
 * compression. Returns 0, or -1 if the client went away. */
int http_response_send(struct http_response *resp, const void *data,
		       size_t len);
/* A short text/plain answer: "404 Not Found\r\n" plus detail. */
int http_response_error(struct http_response *resp, unsigned status,
			const char *detail);
/* RFC 7807 problem details (application/problem+json): type is a URI
 * ("urn:ietf:params:jmap:error:notJSON"), detail a sentence; both are
 * JSON-escaped here. */
int http_response_problem(struct http_response *resp, unsigned status,
			  const char *type, const char *detail);
/* 3xx to location (303 after a POST, 301/302/307/308 as given). */
int http_response_redirect(struct http_response *resp, unsigned status,
			   const char *location);

/* A body of unknown length: begin sends the headers (chunked, or gzip
 * inside chunked when accepted and allowed), write sends a piece
 * (back-pressure: blocks while the client is behind), end the last
 * chunk. Each returns 0, or -1 once the client is gone. */
int http_response_begin(struct http_response *resp);
int http_response_write(struct http_response *resp, const void *data,
			size_t len);
int http_response_printf(struct http_response *resp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int http_response_end(struct http_response *resp);

/* ---- long-lived streams (EventSource) ------------------------------ */

/* Hooks of a stream; each runs on the connection's I/O thread and must
 * not block. */
struct http_stream_hooks {
	/* Optional: every tick_secs while the stream is open (e.g. the
	 * EventSource ping, RFC 8620 7.3). */
	void (*tick)(struct http_stream *stream, void *ctx);
	unsigned tick_secs;
	/* The stream is over: the client went away, it was dropped for not
	 * reading (more than max_unread bytes pending), the server is
	 * stopping, or http_stream_end was called. Called exactly once;
	 * after it, writes return -1. Unsubscribe here. */
	void (*closed)(struct http_stream *stream, void *ctx);
	/* Bytes the client may leave unread before it is dropped; 0: the
	 * server's default (64 KiB). */
	size_t max_unread;
};

/* Turns the response into a long-lived stream: the status and headers
 * (set them first, e.g. Content-Type: text/event-stream) are sent at
 * once with chunked encoding and never compressed, "X-Accel-Buffering:
 * no" and "Cache-Control: no-cache" are added, and the handler returns;
 * while the stream is idle the connection holds no thread. Returns the
 * stream with one reference for the caller (http_stream_unref), or NULL
 * if the client is gone. */
struct http_stream *http_response_stream(struct http_response *resp,
					 const struct http_stream_hooks *hooks,
					 void *ctx);
/* Sends a piece as one chunk; any thread (e.g. the change hub's
 * callback: it is handed to the I/O thread through net_conn_post, the
 * data copied). Returns -1 if the stream is over. A client that leaves
 * more than max_unread unread is dropped (closed follows). */
int http_stream_write(struct http_stream *stream, const void *data,
		      size_t len);
/* Ends the response (last chunk; the connection goes on with the next
 * request, keep-alive). Any thread; closed follows. */
void http_stream_end(struct http_stream *stream);
void http_stream_ref(struct http_stream *stream);
void http_stream_unref(struct http_stream **stream);
/* The request's account and session id, for the stream's owner. */
int64_t http_stream_account_id(const struct http_stream *stream);
const char *http_stream_id(const struct http_stream *stream);

/* ---- helpers for handlers ------------------------------------------ */

/* Content-Disposition for a download named name (UTF-8, any bytes: "../",
 * CR/LF, quotes, control and non-ASCII characters) per RFC 6266 and
 * RFC 8187: an ASCII fallback filename="..." with path separators,
 * controls and quotes replaced, and filename*=UTF-8''... percent-encoded.
 * disposition: "attachment" or "inline". Appends to out. */
void http_content_disposition(struct buf *out, const char *disposition,
			      const char *name);
/* The reason phrase of a status code ("Not Found"). */
const char *http_status_reason(unsigned status);
/* Appends s as a JSON string body (without quotes) to out. */
void http_json_escape(struct buf *out, const char *s);

#endif
