/*
 * The webmail's sign-in (issue 14): a session cookie instead of a
 * password in every request.
 *
 *   POST /auth/login    {"username", "password", "remember"} (JSON only,
 *                       so a cross-site form cannot sign anyone in):
 *                       200 {"username", "csrf"} and a new session cookie
 *                       (a new id at every sign-in: no fixation)
 *   GET  /auth/session  who is signed in: {"username", "auth", "csrf"}
 *                       ("csrf" for a cookie session), or 401
 *   POST /auth/logout   ends the session on the server (CSRF-checked)
 *
 * The cookie is HttpOnly, SameSite=Strict, Path=/, and Secure under TLS
 * (named __Host-loft_session there, so no sub-domain can set it). A
 * state-changing request authenticated by the cookie must carry the
 * session's CSRF token in X-Loft-CSRF and, when it sends Origin, come
 * from our own origin; requests with an Authorization header need none.
 */
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "http-private.h"
#include "log.h"

#define COOKIE_TLS "__Host-loft_session"
#define COOKIE_PLAIN "loft_session"

static const char *cookie_name(const struct http_request *req)
{
	return http_request_is_tls(req) ? COOKIE_TLS : COOKIE_PLAIN;
}

/* The value of our cookie in the Cookie field, copied into out. */
static bool find_cookie(const struct http_request *req, char *out,
			size_t size)
{
	const char *c = http_request_header(req, "cookie");
	const char *name = cookie_name(req);
	size_t nl = strlen(name);
	while (c != NULL && *c) {
		while (*c == ' ' || *c == ';')
			c++;
		const char *end = strchr(c, ';');
		size_t len = end ? (size_t)(end - c) : strlen(c);
		if (len > nl && strncmp(c, name, nl) == 0 && c[nl] == '=') {
			size_t vl = len - nl - 1;
			if (vl == 0 || vl >= size)
				return false;
			memcpy(out, c + nl + 1, vl);
			out[vl] = '\0';
			return true;
		}
		c = end;
	}
	return false;
}

static bool unsafe_method(const char *m)
{
	return strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0 &&
		strcmp(m, "OPTIONS") != 0;
}

/* Origin, when sent, must be ours (RFC 6454; browsers send it on every
 * POST). */
static bool same_origin(const struct http_request *req)
{
	const char *origin = http_request_header(req, "origin");
	return origin == NULL || strcasecmp(origin, http_request_origin(req)) == 0;
}

static bool csrf_ok(const struct http_request *req, const char *csrf)
{
	const char *sent = http_request_header(req, "x-loft-csrf");
	if (sent == NULL || !same_origin(req))
		return false;
	size_t n = strlen(csrf);
	return n > 0 && strlen(sent) == n && CRYPTO_memcmp(sent, csrf, n) == 0;
}

bool http_session_request(struct http_request *req, int *rc_r)
{
	char id[AUTH_SESSION_ID_SIZE], csrf[AUTH_SESSION_ID_SIZE];
	if (!find_cookie(req, id, sizeof(id)))
		return false;
	struct http_server *server = req->hc->server;
	enum auth_result r = auth_session_check(server->auth, id,
						http_request_peer(req),
						&req->user, csrf);
	OPENSSL_cleanse(id, sizeof(id));
	bool required = req->route->r.flags & HTTP_ROUTE_AUTH;
	if (r == AUTH_FAILED && !required) {
		*rc_r = 0;   /* a stale cookie on an optional route */
		return true;
	}
	if (r == AUTH_FAILED) {
		*rc_r = http_auth_answer_401(req, "Your session has ended; sign "
					     "in again.");
		return true;
	}
	if (r != AUTH_OK) {
		*rc_r = http_auth_verdict(req, r, HTTP_AUTH_COOKIE, "session");
		return true;
	}
	if (unsafe_method(http_request_method(req)) && !csrf_ok(req, csrf)) {
		log_info("http", http_request_id(req), "CSRF check failed for "
			 "%s from %s", http_request_path(req),
			 http_request_peer(req));
		http_response_error(&req->resp, 403, "The request did not come "
				    "from this site's pages.");
		*rc_r = -1;
		return true;
	}
	req->has_user = true;
	req->auth_kind = HTTP_AUTH_COOKIE;
	snprintf(req->csrf, sizeof(req->csrf), "%s", csrf);
	*rc_r = 0;
	return true;
}

static void json_answer(struct http_response *resp, unsigned status,
			json_t *obj)
{
	char *text = json_dumps(obj, JSON_COMPACT);
	http_response_status(resp, status);
	http_response_content_type(resp, "application/json");
	http_response_set_header(resp, "Cache-Control", "no-store");
	http_response_send(resp, text, strlen(text));
	free(text);
	json_decref(obj);
}

static void json_error(struct http_response *resp, unsigned status,
		       const char *msg)
{
	json_answer(resp, status, json_pack("{s:s}", "error", msg));
}

static void set_cookie(struct http_request *req, const char *value,
		       long max_age)
{
	bool tls = http_request_is_tls(req);
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "%s=%s; Path=/; HttpOnly; SameSite=Strict%s",
		   cookie_name(req), value, tls ? "; Secure" : "");
	if (max_age >= 0)
		buf_printf(&b, "; Max-Age=%ld", max_age);
	http_response_add_header(&req->resp, "Set-Cookie", "%s", b.data);
	buf_free(&b);
}

/* The sign-in's answer once the login gate has checked the password. */
static void signin_answer(struct http_request *req, struct http_response *resp,
			  struct http_server *server,
			  const struct auth_login_result *res, bool remember)
{
	enum auth_result r = res->result;
	struct auth_user u = res->user;
	if (r == AUTH_FAILED) {
		json_error(resp, 401, "Wrong user name or password.");
		return;
	}
	if (r == AUTH_DISABLED) {
		json_error(resp, 403, "This account is disabled.");
		return;
	}
	if (r != AUTH_OK) {
		json_error(resp, 503, "Accounts are unavailable; try again "
			   "shortly.");
		return;
	}
	/* A cookie sent along (an earlier session, or one planted by an
	 * attacker) is ended: every sign-in gets a fresh id. */
	char old[AUTH_SESSION_ID_SIZE];
	if (find_cookie(req, old, sizeof(old)))
		auth_session_delete(server->auth, old);
	struct auth_session_params p = {
		.lifetime_secs = http_set(server)->session_remember,
		.idle_secs = remember ? 0 : http_set(server)->session_idle,
		.bind_address = http_set(server)->session_bind_address ?
			http_request_peer(req) : NULL,
	};
	char id[AUTH_SESSION_ID_SIZE], csrf[AUTH_SESSION_ID_SIZE];
	char *err = NULL;
	if (auth_session_create(server->auth, u.id, &p, id, csrf, &err) < 0) {
		log_error("http", http_request_id(req), "session: %s", err);
		free(err);
		json_error(resp, 503, "Cannot start a session; try again.");
		return;
	}
	set_cookie(req, id, remember ? (long)http_set(server)->session_remember : -1);
	OPENSSL_cleanse(id, sizeof(id));
	log_info("http", http_request_id(req), "signed in user=%s from %s%s",
		 u.address, http_request_peer(req), remember ? " (remember)" : "");
	json_answer(resp, 200, json_pack("{s:s, s:s}", "username", u.address,
					 "csrf", csrf));
}

static void signin_done(void *session, struct net_conn *conn,
			const struct auth_login_result *res)
{
	struct http_conn *hc = session;
	struct http_request *req = hc->req;
	bool remember = http_request_data(req) != NULL;
	http_request_set_data(req, NULL);
	signin_answer(req, &req->resp, hc->server, res, remember);
	http_conn_finish(hc);
}

static void handle_login(struct http_request *req, struct http_response *resp,
			 void *ctx)
{
	struct http_server *server = req->hc->server;
	const char *type = http_request_header(req, "content-type");
	if (type == NULL || strncasecmp(type, "application/json", 16) != 0) {
		json_error(resp, 415, "Send the sign-in as application/json.");
		return;
	}
	if (!same_origin(req)) {
		json_error(resp, 403, "Sign in from this site's own page.");
		return;
	}
	if (!auth_cleartext_allowed(server->auth, http_request_is_tls(req),
				    http_request_is_local(req))) {
		json_error(resp, 403, "Sign in over HTTPS.");
		return;
	}
	size_t len;
	const char *body = http_request_body(req, &len);
	json_error_t jerr;
	json_t *in = json_loadb(body, len, 0, &jerr);
	const char *user = NULL, *pass = NULL;
	int remember = 0;
	if (in == NULL || json_unpack(in, "{s:s, s:s, s?b}", "username", &user,
				      "password", &pass, "remember",
				      &remember) < 0) {
		json_decref(in);
		json_error(resp, 400, "Expected {\"username\", \"password\", "
			   "\"remember\"}.");
		return;
	}
	/* The login gate answers in signin_done, a later task; "remember"
	 * rides along as the request's data. */
	http_request_set_data(req, remember ? (void *)req : NULL);
	http_request_suspend(req);
	auth_login_password(server->auth, req->hc->conn,
			    http_request_peer(req), user, pass,
			    signin_done);
	json_decref(in);
}

static void handle_session(struct http_request *req, struct http_response *resp,
			   void *ctx)
{
	const struct auth_user *u = http_request_account(req);
	if (u == NULL) {
		json_error(resp, 401, "Not signed in.");
		return;
	}
	static const char *const kinds[] = {"none", "basic", "bearer",
					    "cookie"};
	json_t *o = json_pack("{s:s, s:s}", "username", u->address, "auth",
			      kinds[req->auth_kind]);
	if (req->auth_kind == HTTP_AUTH_COOKIE)
		json_object_set_new(o, "csrf", json_string(req->csrf));
	json_answer(resp, 200, o);
}

static void handle_logout(struct http_request *req, struct http_response *resp,
			  void *ctx)
{
	char id[AUTH_SESSION_ID_SIZE];
	if (req->auth_kind == HTTP_AUTH_COOKIE &&
	    find_cookie(req, id, sizeof(id)))
		auth_session_delete(req->hc->server->auth, id);
	set_cookie(req, "", 0);
	http_response_status(resp, 204);
	http_response_set_header(resp, "Cache-Control", "no-store");
	http_response_send(resp, NULL, 0);
}

void http_session_register(struct http_server *server)
{
	static const struct http_route login = {
		.method = "POST", .prefix = "/auth/login",
		.flags = HTTP_ROUTE_EXACT, .max_body = 16384,
		.handle = handle_login,
	};
	static const struct http_route session = {
		.method = "GET", .prefix = "/auth/session",
		.flags = HTTP_ROUTE_EXACT | HTTP_ROUTE_AUTH_OPTIONAL,
		.handle = handle_session,
	};
	static const struct http_route logout = {
		.method = "POST", .prefix = "/auth/logout",
		.flags = HTTP_ROUTE_EXACT | HTTP_ROUTE_AUTH,
		.max_body = 16384, .handle = handle_logout,
	};
	http_route_add(server, &login, NULL);
	http_route_add(server, &session, NULL);
	http_route_add(server, &logout, NULL);
}
