/*
 * The HTTP server: [http] settings, the route table, and the net_proto
 * hooks that drive one connection through its requests: the head is
 * parsed on the I/O thread, authentication and the handler run in worker
 * tasks, a buffered body is read on the I/O thread and a streamed one is
 * handed to the route's body() hook piece by piece, with reading stopped
 * while a piece is with the worker. Keep-alive and pipelining: the next
 * request is parsed once the previous answer is out (the net layer calls
 * input again when a task ends).
 *
 * [http] keys (besides `listen`; [https] and [metrics] only have
 * `listen`), documented in docs/config.md:
 *   max_body = 1M              largest buffered request body
 *   header_timeout = 30s       the whole head must arrive within this
 *   body_timeout = 60s         a body with no byte for this long: 408
 *   keepalive_timeout = 60s    idle keep-alive connections close
 *   stream_buffer = 64K        unread output a stream client may leave
 *   cors_origins =             allowed origins, comma-separated (none)
 *   webmail = yes              serve the webmail's files at "/"
 *   webmail_dir =              where they are (default: beside the
 *                              binary, else the installed share/)
 *   session_idle = 8h          webmail session without "remember me"
 *   session_remember = 30d     with "remember me"
 *   session_bind_address = no  a session cookie works from one address
 *   trust_proxy = no           a reverse proxy on this host: requests from
 *                              loopback name the client in X-Forwarded-For
 *                              and the scheme in X-Forwarded-Proto
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "config.h"
#include "http-private.h"
#include "log.h"

static const char *const http_keys[] = {
	"listen", "max_body", "header_timeout", "body_timeout",
	"keepalive_timeout", "stream_buffer", "cors_origins", "webmail",
	"webmail_dir", "session_idle", "session_remember",
	"session_bind_address", "trust_proxy", NULL,
};

/* ---- settings ------------------------------------------------------- */

static int bad_value(const struct config *cfg, const char *section,
		     const char *key, const char *why, struct buf *errors)
{
	const struct config_entry *e = config_find(cfg, section, key);
	buf_printf(errors, "%s:%d: [%s] %s: %s\n", cfg->path,
		   e != NULL ? e->line : 0, section, key, why);
	return -1;
}

static int get_duration(const struct config *cfg, const char *key,
			unsigned def, unsigned *v_r, struct buf *errors)
{
	const char *v = config_get(cfg, "http", key);
	uint64_t s = def;
	if (v != NULL && (config_parse_duration(v, &s) < 0 || s == 0 ||
			  s > 366 * 24 * 3600))
		return bad_value(cfg, "http", key, "invalid duration", errors);
	*v_r = (unsigned)s;
	return 0;
}

static int get_size(const struct config *cfg, const char *key, uint64_t def,
		    uint64_t min, uint64_t *v_r, struct buf *errors)
{
	const char *v = config_get(cfg, "http", key);
	*v_r = def;
	if (v != NULL && (config_parse_size(v, v_r) < 0 || *v_r < min ||
			  *v_r > (1ULL << 40)))
		return bad_value(cfg, "http", key, "invalid size", errors);
	return 0;
}

static int get_bool(const struct config *cfg, const char *key, bool def,
		    bool *v_r, struct buf *errors)
{
	const char *v = config_get(cfg, "http", key);
	*v_r = def;
	if (v != NULL && config_parse_bool(v, v_r) < 0)
		return bad_value(cfg, "http", key, "expected yes or no", errors);
	return 0;
}

/* [http] is this module's: unknown keys are errors; [https] and
 * [metrics] have only `listen`. */
static int check_keys(const struct config *cfg, struct buf *errors)
{
	int ret = 0;
	for (size_t i = 0; i < cfg->count; i++) {
		const struct config_entry *e = &cfg->entries[i];
		bool http = strcmp(e->section, "http") == 0;
		if (!http && strcmp(e->section, "https") != 0 &&
		    strcmp(e->section, "metrics") != 0)
			continue;
		bool known = false;
		for (size_t k = 0; http_keys[k] != NULL && !known; k++)
			known = strcmp(e->key, http_keys[k]) == 0 &&
				(http || k == 0);
		if (!known) {
			buf_printf(errors, "%s:%d: [%s] unknown key '%s'%s\n",
				   cfg->path, e->line, e->section, e->key,
				   http ? "" : " (set it in [http])");
			ret = -1;
		}
	}
	return ret;
}

/* An origin as browsers send it: scheme "://" host [":" port], no path. */
static bool origin_valid(const char *o)
{
	const char *rest;
	if (strncmp(o, "https://", 8) == 0)
		rest = o + 8;
	else if (strncmp(o, "http://", 7) == 0)
		rest = o + 7;
	else
		return false;
	if (*rest == '\0')
		return false;
	for (; *rest; rest++)
		if (*rest == '/' || *rest == ' ' || *rest == '*' || *rest == ',')
			return false;
	return true;
}

static char *default_hostname(const struct config *cfg)
{
	const char *h = config_get(cfg, "", "hostname");
	if (h != NULL && h[0] != '\0')
		return xstrdup(h);
	char name[256];
	if (gethostname(name, sizeof(name)) == 0) {
		name[sizeof(name) - 1] = '\0';
		return xstrdup(name);
	}
	return xstrdup("localhost");
}

static int read_settings(const struct config *cfg, struct http_settings *set,
			 struct buf *errors)
{
	int ret = check_keys(cfg, errors);
	uint64_t v;
	if (get_size(cfg, "max_body", 1 << 20, 1024, &set->max_body, errors) < 0)
		ret = -1;
	if (get_size(cfg, "stream_buffer", 64 * 1024, 4096, &v, errors) < 0)
		ret = -1;
	set->stream_max_unread = (size_t)v;
	if (get_duration(cfg, "header_timeout", 30, &set->header_timeout,
			 errors) < 0 ||
	    get_duration(cfg, "body_timeout", 60, &set->body_timeout,
			 errors) < 0 ||
	    get_duration(cfg, "keepalive_timeout", 60,
			 &set->keepalive_timeout, errors) < 0 ||
	    get_duration(cfg, "session_idle", 8 * 3600, &set->session_idle,
			 errors) < 0 ||
	    get_duration(cfg, "session_remember", 30 * 86400,
			 &set->session_remember, errors) < 0)
		ret = -1;
	if (get_bool(cfg, "trust_proxy", false, &set->trust_proxy, errors) < 0 ||
	    get_bool(cfg, "webmail", true, &set->webmail, errors) < 0 ||
	    get_bool(cfg, "session_bind_address", false,
		     &set->session_bind_address, errors) < 0)
		ret = -1;
	const char *origins = config_get(cfg, "http", "cors_origins");
	if (origins != NULL) {
		set->cors_origins = config_split_list(origins,
						      &set->cors_count);
		for (size_t i = 0; i < set->cors_count; i++) {
			if (!origin_valid(set->cors_origins[i])) {
				buf_printf(errors, "%s:%d: [http] cors_origins: "
					   "'%s' is not an origin like "
					   "https://app.example.com\n",
					   cfg->path,
					   config_find(cfg, "http",
						       "cors_origins")->line,
					   set->cors_origins[i]);
				ret = -1;
			}
		}
	}
	const char *dir = config_get(cfg, "http", "webmail_dir");
	if (dir != NULL)
		set->webmail_dir = xstrdup(dir);
	set->hostname = default_hostname(cfg);
	set->tls_configured = config_get(cfg, "tls", "cert") != NULL;
	return ret;
}

static void settings_free(struct http_settings *set)
{
	for (size_t i = 0; i < set->cors_count; i++)
		free(set->cors_origins[i]);
	free(set->cors_origins);
	free(set->webmail_dir);
	free(set->hostname);
}

/* ---- the server ----------------------------------------------------- */

static struct http_server *server_new(const struct config *cfg,
				      struct store *store, struct auth *auth,
				      struct buf *errors)
{
	struct http_server *s = xcalloc(1, sizeof(*s));
	s->store = store;
	s->auth = auth;
	s->set_ = xcalloc(1, sizeof(*s->set_));
	if (read_settings(cfg, s->set_, errors) < 0) {
		http_server_destroy(&s);
		return NULL;
	}
	return s;
}

void http_server_reload(struct http_server *server, const struct config *cfg)
{
	struct http_settings *set = xcalloc(1, sizeof(*set));
	struct buf errors;
	buf_init(&errors, 0);
	int rc = read_settings(cfg, set, &errors);
	buf_free(&errors);     /* the parent checked it: not expected */
	if (rc < 0) {
		settings_free(set);
		free(set);
		return;
	}
	/* What the routes and the static files were made with stays as
	 * started (a restart key: listen, webmail, webmail_dir, hostname). */
	struct http_settings *old = server->set_;
	set->webmail = old->webmail;
	free(set->webmail_dir);
	set->webmail_dir = old->webmail_dir ? xstrdup(old->webmail_dir) : NULL;
	free(set->hostname);
	set->hostname = xstrdup(old->hostname);
	set->tls_configured = old->tls_configured;
	/* only the reload thread writes set_ */
	set->older = old;
	__atomic_store_n(&server->set_, set, __ATOMIC_RELEASE);
}

struct http_server *http_server_create(const struct config *cfg,
				       struct store *store, struct auth *auth,
				       const struct http_service *services,
				       size_t service_count,
				       struct buf *errors)
{
	struct http_server *s = server_new(cfg, store, auth, errors);
	if (s == NULL)
		return NULL;
	s->services = xcalloc(service_count + 1, sizeof(*s->services));
	for (size_t i = 0; i < service_count; i++) {
		s->services[i].proto = xstrdup(services[i].proto);
		s->services[i].addr = xstrdup(services[i].addr);
	}
	s->service_count = service_count;
	http_metrics_register(s);
	http_auth_register(s);
	http_setup_register(s);
	if (s->set_->webmail)
		http_static_register(s);
	return s;
}

struct http_server *http_metrics_server_create(const struct config *cfg,
					       struct store *store,
					       struct auth *auth,
					       struct buf *errors)
{
	struct http_server *s = server_new(cfg, store, auth, errors);
	if (s == NULL)
		return NULL;
	s->admin = true;
	http_metrics_register(s);
	return s;
}

void http_server_destroy(struct http_server **serverp)
{
	struct http_server *s = *serverp;
	*serverp = NULL;
	if (s == NULL)
		return;
	while (s->set_ != NULL) {
		struct http_settings *set = s->set_;
		s->set_ = set->older;
		settings_free(set);
		free(set);
	}
	http_static_free(&s->static_files);
	for (size_t i = 0; i < s->service_count; i++) {
		free((char *)s->services[i].proto);
		free((char *)s->services[i].addr);
	}
	free(s->services);
	free(s->routes);
	free(s);
}

const char *http_server_hostname(const struct http_server *server)
{
	return http_set(server)->hostname;
}

/* ---- routes --------------------------------------------------------- */

int http_route_add(struct http_server *server, const struct http_route *route,
		   void *ctx)
{
	for (size_t i = 0; i < server->route_count; i++) {
		const struct http_route *r = &server->routes[i].r;
		bool same_method = (r->method == NULL && route->method == NULL) ||
			(r->method != NULL && route->method != NULL &&
			 strcmp(r->method, route->method) == 0);
		if (same_method && strcmp(r->prefix, route->prefix) == 0)
			return -1;
	}
	server->routes = xrealloc(server->routes, (server->route_count + 1) *
				  sizeof(*server->routes));
	struct http_route_entry *e = &server->routes[server->route_count++];
	e->r = *route;
	e->ctx = ctx;
	e->prefix_len = strlen(route->prefix);
	return 0;
}

static bool prefix_matches(const struct http_route_entry *e, const char *path)
{
	size_t n = e->prefix_len;
	if (e->r.flags & HTTP_ROUTE_EXACT)
		return strcmp(path, e->r.prefix) == 0;
	if (strncmp(path, e->r.prefix, n) != 0)
		return false;
	return n > 0 && (e->r.prefix[n - 1] == '/' || path[n] == '\0' ||
			 path[n] == '/');
}

static bool method_matches(const struct http_route *r, const char *method)
{
	if (r->method == NULL || strcmp(r->method, method) == 0)
		return true;
	return strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0;
}

const struct http_route_entry *http_route_find(struct http_server *server,
					       const char *method,
					       const char *path,
					       bool *other_method_r)
{
	const struct http_route_entry *best = NULL;
	size_t best_len = 0;
	bool other = false;
	for (size_t i = 0; i < server->route_count; i++) {
		const struct http_route_entry *e = &server->routes[i];
		if (!prefix_matches(e, path))
			continue;
		if (!method_matches(&e->r, method)) {
			other = true;
			continue;
		}
		/* Longest prefix; a method-specific route beats a catch-all
		 * of the same length. */
		if (best == NULL || e->prefix_len > best_len ||
		    (e->prefix_len == best_len && best->r.method == NULL)) {
			best = e;
			best_len = e->prefix_len;
		}
	}
	if (other_method_r != NULL)
		*other_method_r = other;
	return best;
}

/* The methods some route answers at path (for 405's Allow). */
static void allowed_methods(struct http_server *server, const char *path,
			    struct buf *out)
{
	for (size_t i = 0; i < server->route_count; i++) {
		const struct http_route_entry *e = &server->routes[i];
		if (!prefix_matches(e, path) || e->r.method == NULL)
			continue;
		if (strstr(out->data ? out->data : "", e->r.method) != NULL)
			continue;
		buf_printf(out, "%s%s", out->len ? ", " : "", e->r.method);
		if (strcmp(e->r.method, "GET") == 0)
			buf_append_str(out, ", HEAD");
	}
}

/* ---- requests ------------------------------------------------------- */

static time_t mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void request_free(struct http_request **reqp)
{
	struct http_request *req = *reqp;
	*reqp = NULL;
	if (req == NULL)
		return;
	http_response_deinit(&req->resp);
	buf_free(&req->body);
	free(req->origin);
	free(req->joined);
	free(req);
}

static void request_cleanup(struct http_request *req, bool complete)
{
	if (!req->begun || req->cleaned)
		return;
	req->cleaned = true;
	if (req->route != NULL && req->route->r.cleanup != NULL)
		req->route->r.cleanup(req, complete, req->route->ctx);
}

void http_conn_request_done(struct http_conn *hc)
{
	if (hc->req != NULL) {
		request_cleanup(hc->req, http_body_done(&hc->body));
		request_free(&hc->req);
	}
	/* An idle keep-alive connection keeps little memory. */
	http_parser_reset(&hc->parser, hc->parser.head_buf.cap > 8192 ||
			  hc->state == HTTP_ST_STREAM);
	hc->head_deadline = 0;
	hc->expect_sent = false;
}

static void http_input(void *session, struct net_conn *conn);

void http_conn_next_request(struct http_conn *hc)
{
	hc->state = HTTP_ST_HEAD;
	net_conn_set_timeout(hc->conn, http_set(hc->server)->keepalive_timeout);
	if (evbuffer_get_length(net_conn_input(hc->conn)) > 0)
		http_input(hc, hc->conn);
}

/* The request is answered: on to the next one, or close. Worker or I/O
 * thread (whichever has the connection); the net layer calls input for
 * a pipelined request when the task ends. */
void http_conn_finish(struct http_conn *hc)
{
	struct http_request *req = hc->req;
	struct http_response *resp = &req->resp;
	if (resp->streaming) {
		hc->state = HTTP_ST_STREAM;
		http_stream_task_end(hc);
		return;
	}
	if (!resp->started && !resp->broken)
		http_response_error(resp, 500, "The request was not answered.");
	else if (resp->chunked && !resp->finished && !resp->broken)
		http_response_end(resp);
	bool keep = req->head->keep_alive && !resp->close && !resp->broken &&
		http_body_done(&hc->body);
	http_conn_request_done(hc);
	if (!keep) {
		hc->state = HTTP_ST_CLOSING;
		net_conn_close(hc->conn);
		return;
	}
	hc->state = HTTP_ST_HEAD;
	net_conn_set_timeout(hc->conn, http_set(hc->server)->keepalive_timeout);
}

void http_conn_reply_io(struct http_conn *hc, unsigned status,
			const char *text, bool close)
{
	struct http_request *req = hc->req;
	if (req == NULL) {
		/* No parsed request (a bad head): answer and close. */
		const char *reason = http_status_reason(status);
		net_conn_printf(hc->conn, "HTTP/1.1 %u %s\r\n"
				"Content-Type: text/plain; charset=utf-8\r\n"
				"Content-Length: %zu\r\n"
				"Connection: close\r\n\r\n%u %s: %s\r\n",
				status, reason,
				strlen(text) + strlen(reason) + 8, status,
				reason, text);
		hc->state = HTTP_ST_CLOSING;
		net_conn_close(hc->conn);
		return;
	}
	if (close)
		req->resp.close = true;
	http_response_error(&req->resp, status, text);
	http_conn_finish(hc);
}

static void run_handler(struct http_conn *hc)
{
	struct http_request *req = hc->req;
	if (!req->resp.started && !req->resp.broken) {
		req->begun = true;
		req->route->r.handle(req, &req->resp, req->route->ctx);
		if (req->suspended)
			return;         /* it answers later */
	}
	http_conn_finish(hc);
}

void http_request_suspend(struct http_request *req)
{
	req->suspended = true;
}

static void task_run(void *session, struct net_conn *conn, void *arg)
{
	struct http_conn *hc = session;
	struct http_request *req = hc->req;
	if (req == NULL)
		return;
	if (!req->resp.started && !req->resp.broken && !req->authed) {
		int rc = http_auth_request(req);
		if (rc > 0) {
			req->auth_then = HTTP_THEN_RUN;
			return;
		}
		if (rc < 0) {
			http_conn_finish(hc);
			return;
		}
	}
	run_handler(hc);
}

/* After authentication: begin(), then the body is read. */
static void begin_rest(struct http_conn *hc, int rc)
{
	struct http_request *req = hc->req;
	struct net_conn *conn = hc->conn;
	if (rc < 0)
		goto answered;
	if (req->route->r.begin != NULL) {
		req->begun = true;
		if (req->route->r.begin(req, &req->resp, req->route->ctx) < 0 ||
		    req->resp.started)
			goto answered;
	}
	req->resp.close = false;
	hc->state = HTTP_ST_BODY;
	net_conn_set_timeout(conn, http_set(hc->server)->body_timeout);
	if (req->head->expect_continue && !hc->expect_sent) {
		hc->expect_sent = true;
		net_conn_printf(conn, "HTTP/1.1 100 Continue\r\n\r\n");
	}
	return;
answered:
	/* The body was not read: the connection cannot go on. */
	req->resp.close = true;
	http_conn_finish(hc);
}

static void task_begin(void *session, struct net_conn *conn, void *arg)
{
	struct http_conn *hc = session;
	struct http_request *req = hc->req;
	/* An answer given here leaves the body unread: the connection
	 * cannot go on after it. */
	req->resp.close = true;
	int rc = http_auth_request(req);
	if (rc > 0) {
		req->auth_then = HTTP_THEN_BEGIN;
		return;
	}
	begin_rest(hc, rc);
}

void http_auth_resume(struct http_conn *hc, int rc)
{
	struct http_request *req = hc->req;
	if (req->auth_then == HTTP_THEN_BEGIN) {
		begin_rest(hc, rc);
	} else if (rc < 0) {
		http_conn_finish(hc);
	} else {
		run_handler(hc);
	}
}

static void task_piece(void *session, struct net_conn *conn, void *arg)
{
	struct http_conn *hc = session;
	struct http_request *req = hc->req;
	if (req == NULL || req->resp.started)
		return;
	req->begun = true;
	int rc = req->route->r.body(req, &req->resp, req->body.data,
				    req->body.len, req->route->ctx);
	buf_reset(&req->body);
	if (rc < 0 || req->resp.started) {
		req->resp.close = true;
		if (!req->resp.started)
			http_response_error(&req->resp, 500,
					    "The upload was refused.");
		http_conn_finish(hc);
		return;
	}
	if (!http_body_done(&hc->body))
		hc->state = HTTP_ST_BODY;
}

static void run_task(struct http_conn *hc, enum http_conn_state st,
		     net_task_fn *fn)
{
	hc->state = st;
	net_conn_run(hc->conn, fn, NULL);
}

/* The body is complete (or there is none): the handler's turn. */
static void body_complete(struct http_conn *hc)
{
	struct http_request *req = hc->req;
	if (req->route->r.body != NULL && req->body.len > 0) {
		hc->state = HTTP_ST_RUN;
		net_conn_run(hc->conn, task_piece, NULL);
		net_conn_run(hc->conn, task_run, NULL);
		return;
	}
	run_task(hc, HTTP_ST_RUN, task_run);
}

static uint64_t route_max_body(const struct http_conn *hc)
{
	uint64_t m = hc->req->route->r.max_body;
	return m != 0 ? m : http_set(hc->server)->max_body;
}

/* Reads body bytes (I/O thread). Returns true if the state moved on. */
static bool read_body(struct http_conn *hc, struct evbuffer *in)
{
	struct http_request *req = hc->req;
	bool streamed = req->route->r.body != NULL;
	uint64_t max = route_max_body(hc);
	while (!http_body_done(&hc->body)) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			break;
		size_t used;
		const char *data;
		size_t n;
		size_t avail = v.iov_len;
		/* A streamed piece never grows past HTTP_PIECE_SIZE. */
		if (streamed && avail > HTTP_PIECE_SIZE - req->body.len)
			avail = HTTP_PIECE_SIZE - req->body.len;
		int rc = http_body_feed(&hc->body, v.iov_base, avail, &used,
					&data, &n);
		if (rc < 0) {
			log_info("http", net_conn_id(hc->conn), "bad body: %s",
				 hc->body.error);
			http_conn_reply_io(hc, 400, hc->body.error, true);
			return false;
		}
		if (rc == 1 && req->received + n > max) {
			http_conn_reply_io(hc, 413, "The request body is too "
					   "large.", true);
			return false;
		}
		if (rc == 1) {
			req->received += n;
			buf_append(&req->body, data, n);
		}
		evbuffer_drain(in, used);
		if (streamed && req->body.len >= HTTP_PIECE_SIZE &&
		    !http_body_done(&hc->body)) {
			run_task(hc, HTTP_ST_PIECE, task_piece);
			return false;
		}
	}
	if (!http_body_done(&hc->body))
		return false;
	body_complete(hc);
	return false;
}

static bool is_preflight(const struct http_head *h)
{
	return strcmp(h->method, "OPTIONS") == 0 &&
		http_head_field(h, "origin") != NULL &&
		http_head_field(h, "access-control-request-method") != NULL;
}

/* A whole head arrived: find the route and start the request. */
static void start_request(struct http_conn *hc)
{
	struct http_request *req = xcalloc(1, sizeof(*req));
	const struct http_head *h = &hc->parser.head;
	req->hc = hc;
	req->head = h;
	req->is_head = strcmp(h->method, "HEAD") == 0;
	buf_init(&req->body, 0);
	http_response_init(&req->resp, req);
	hc->req = req;
	http_body_init(&hc->body, h->body, h->content_length);
	log_debug("http", net_conn_id(hc->conn), "%s %s", h->method, h->target);

	if (is_preflight(h) && http_cors_preflight(hc, req))
		return;
	bool other;
	req->route = http_route_find(hc->server, h->method, h->path, &other);
	if (req->route == NULL) {
		bool has_body = h->body != HTTP_BODY_NONE;
		if (strcmp(h->method, "OPTIONS") == 0 || other) {
			struct buf allow;
			buf_init(&allow, 0);
			allowed_methods(hc->server, h->path, &allow);
			if (strcmp(h->method, "OPTIONS") == 0) {
				http_response_status(&req->resp, 204);
				http_response_set_header(&req->resp, "Allow",
							 "%s", allow.data ? allow.data : "");
				req->resp.close = has_body;
				http_response_send(&req->resp, NULL, 0);
				buf_free(&allow);
				http_conn_finish(hc);
				return;
			}
			http_response_set_header(&req->resp, "Allow", "%s",
						 allow.data ? allow.data : "");
			buf_free(&allow);
			http_conn_reply_io(hc, 405, "The method is not allowed "
					   "here.", has_body);
			return;
		}
		http_conn_reply_io(hc, 404, "Nothing here.", has_body);
		return;
	}
	if (h->body == HTTP_BODY_LENGTH && h->content_length > route_max_body(hc)) {
		http_conn_reply_io(hc, 413, "The request body is too large.",
				   true);
		return;
	}
	bool has_body = h->body != HTTP_BODY_NONE;
	unsigned authflags = HTTP_ROUTE_AUTH | HTTP_ROUTE_AUTH_OPTIONAL;
	if (req->route->r.begin != NULL ||
	    (has_body && (req->route->r.flags & authflags))) {
		run_task(hc, HTTP_ST_BEGIN, task_begin);
		return;
	}
	if (has_body) {
		hc->state = HTTP_ST_BODY;
		net_conn_set_timeout(hc->conn, http_set(hc->server)->body_timeout);
		if (h->expect_continue) {
			hc->expect_sent = true;
			net_conn_printf(hc->conn, "HTTP/1.1 100 Continue\r\n\r\n");
		}
		return;
	}
	run_task(hc, HTTP_ST_RUN, task_run);
}

/* Reads the head (I/O thread). Returns true if a request started. */
static bool read_head(struct http_conn *hc, struct evbuffer *in)
{
	while (evbuffer_get_length(in) > 0) {
		if (hc->head_deadline == 0) {
			hc->head_deadline = mono_now() +
				(time_t)http_set(hc->server)->header_timeout;
			net_conn_set_timeout(hc->conn,
					     http_set(hc->server)->header_timeout);
		}
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		size_t used;
		int rc = http_parser_feed(&hc->parser, v.iov_base, v.iov_len,
					  &used);
		evbuffer_drain(in, used);
		if (rc < 0) {
			log_info("http", net_conn_id(hc->conn), "bad request "
				 "from %s: %s", net_conn_peer(hc->conn),
				 hc->parser.error);
			http_conn_reply_io(hc, hc->parser.status,
					   hc->parser.error, true);
			return false;
		}
		if (rc == 1) {
			start_request(hc);
			return true;
		}
	}
	/* Slowloris: a head trickled byte by byte still has a deadline. */
	if (hc->head_deadline != 0 && mono_now() > hc->head_deadline) {
		http_conn_reply_io(hc, 408, "The request took too long.", true);
		return false;
	}
	return false;
}

/* ---- net_proto hooks ------------------------------------------------ */

static void *http_accept(struct net_conn *conn, void *proto_ctx)
{
	struct http_conn *hc = xcalloc(1, sizeof(*hc));
	hc->server = proto_ctx;
	hc->conn = conn;
	hc->state = HTTP_ST_HEAD;
	http_parser_init(&hc->parser, NULL);
	net_conn_set_timeout(conn, http_set(hc->server)->header_timeout);
	return hc;
}

static void http_input(void *session, struct net_conn *conn)
{
	struct http_conn *hc = session;
	struct evbuffer *in = net_conn_input(conn);
	for (;;) {
		switch (hc->state) {
		case HTTP_ST_HEAD:
			if (!read_head(hc, in))
				return;
			break;
		case HTTP_ST_BODY:
			if (!read_body(hc, in))
				return;
			break;
		case HTTP_ST_STREAM:
			http_stream_input(hc);
			return;
		case HTTP_ST_CLOSING:
			/* Whatever follows a fatal error is not read. */
			evbuffer_drain(in, evbuffer_get_length(in));
			return;
		default:
			return;
		}
	}
}

static void http_closed(void *session, struct net_conn *conn)
{
	struct http_conn *hc = session;
	if (hc->stream != NULL)
		http_stream_conn_closed(hc);
	if (hc->req != NULL) {
		/* Cut half way: the handler keeps nothing. */
		request_cleanup(hc->req, false);
		request_free(&hc->req);
	}
	http_parser_deinit(&hc->parser);
	free(hc);
}

static bool http_timeout(void *session, struct net_conn *conn)
{
	struct http_conn *hc = session;
	switch (hc->state) {
	case HTTP_ST_HEAD:
		if (!http_parser_started(&hc->parser))
			return true;      /* idle keep-alive: close quietly */
		http_conn_reply_io(hc, 408, "The request took too long.", true);
		return false;             /* closing after the answer */
	case HTTP_ST_BODY:
		log_info("http", net_conn_id(conn), "body timeout from %s",
			 net_conn_peer(conn));
		http_conn_reply_io(hc, 408, "The request body stopped "
				   "arriving.", true);
		return false;
	case HTTP_ST_STREAM:
		http_stream_tick(hc);
		return false;
	default:
		return false;
	}
}

static void http_shutdown(void *session, struct net_conn *conn)
{
	struct http_conn *hc = session;
	if (hc->state == HTTP_ST_STREAM)
		http_stream_shutdown(hc);
}

const struct net_proto http_proto = {
	.name = "http",
	.accept = http_accept,
	.input = http_input,
	.closed = http_closed,
	.timeout = http_timeout,
	.busy_reply = "HTTP/1.1 503 Service Unavailable\r\n"
		"Content-Length: 0\r\nConnection: close\r\n\r\n",
	.shutdown = http_shutdown,
	.banned_reply = "HTTP/1.1 429 Too Many Requests\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Length: 42\r\nRetry-After: 600\r\n"
		"Connection: close\r\n\r\n"
		"Too many failed logins; try again later.\r\n",
};
