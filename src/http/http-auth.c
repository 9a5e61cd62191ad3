/*
 * Who is asking: Basic credentials (RFC 7617; only over TLS or from
 * loopback unless [auth] allow_cleartext, as IMAP's LOGINDISABLED),
 * Bearer tokens (RFC 6750) and the webmail's session cookie, all checked
 * in src/auth. Runs on the worker before a route's handler; failed
 * attempts are throttled there as IMAP's are.
 */
#include <string.h>
#include <strings.h>

#include "http-private.h"
#include "base64.h"
#include "log.h"
#include "metrics.h"

#define REALM "Loft"

static int answer_401(struct http_request *req, const char *error,
		      const char *detail)
{
	struct http_response *resp = &req->resp;
	/* A script of the webmail (it sends X-Loft-CSRF) gets no Basic
	 * challenge, so the browser shows no password dialog. */
	if (http_request_header(req, "x-loft-csrf") == NULL)
		http_response_add_header(resp, "WWW-Authenticate",
					 "Basic realm=\"" REALM "\", "
					 "charset=\"UTF-8\"");
	if (error != NULL)
		http_response_add_header(resp, "WWW-Authenticate",
					 "Bearer realm=\"" REALM "\", "
					 "error=\"%s\"", error);
	else
		http_response_add_header(resp, "WWW-Authenticate",
					 "Bearer realm=\"" REALM "\"");
	http_response_error(resp, 401, detail);
	return -1;
}

int http_auth_verdict(struct http_request *req, enum auth_result r,
		   enum http_auth_kind kind, const char *what)
{
	switch (r) {
	case AUTH_OK:
		req->has_user = true;
		req->auth_kind = kind;
		return 0;
	case AUTH_DISABLED:
		http_response_error(&req->resp, 403, "This account is disabled.");
		return -1;
	case AUTH_TEMPFAIL:
		http_response_error(&req->resp, 503, "Accounts are unavailable; "
				    "try again shortly.");
		return -1;
	case AUTH_FAILED:
	default:
		log_info("http", http_request_id(req), "%s failed from %s", what,
			 http_request_peer(req));
		return answer_401(req, kind == HTTP_AUTH_BEARER ?
				  "invalid_token" : NULL,
				  "Wrong user name or password.");
	}
}

/* The login gate's answer (a later task of the connection). */
static void gate_done(struct http_conn *hc, const struct auth_login_result *res,
		      enum http_auth_kind kind, const char *what)
{
	struct http_request *req = hc->req;
	if (res->result == AUTH_OK)
		req->user = res->user;
	int rc = http_auth_verdict(req, res->result, kind, what);
	if (rc < 0)
		metrics_count("loft_http_auth_failures_total",
			      "HTTP requests refused for their credentials.",
			      NULL);
	http_auth_resume(hc, rc);
}

static void basic_done(void *session, struct net_conn *conn,
		       const struct auth_login_result *res)
{
	gate_done(session, res, HTTP_AUTH_BASIC, "basic login");
}

static void bearer_done(void *session, struct net_conn *conn,
			const struct auth_login_result *res)
{
	gate_done(session, res, HTTP_AUTH_BEARER, "bearer token");
}

static int auth_basic(struct http_request *req, const char *cred)
{
	struct http_server *server = req->hc->server;
	if (!auth_cleartext_allowed(server->auth, http_request_is_tls(req),
				    http_request_is_local(req))) {
		http_response_error(&req->resp, 403, "Passwords are accepted "
				    "only over HTTPS.");
		return -1;
	}
	struct buf b;
	buf_init(&b, 4096);
	while (*cred == ' ')
		cred++;
	size_t len = strlen(cred);
	while (len > 0 && cred[len - 1] == ' ')
		len--;
	if (base64_decode(cred, len, BASE64_STRICT, &b) < 0 || b.data == NULL ||
	    memchr(b.data, '\0', b.len) != NULL) {
		buf_free(&b);
		return answer_401(req, NULL, "Malformed Basic credentials.");
	}
	/* RFC 7617 2: the user-id cannot contain ':'; the password can. */
	char *colon = strchr(b.data, ':');
	if (colon == NULL) {
		buf_free(&b);
		return answer_401(req, NULL, "Malformed Basic credentials.");
	}
	*colon = '\0';
	auth_login_password(server->auth, req->hc->conn,
			    http_request_peer(req), b.data, colon + 1,
			    basic_done);
	explicit_bzero(b.data, b.len);
	buf_free(&b);
	return 1;
}

static int auth_bearer(struct http_request *req, const char *token)
{
	struct http_server *server = req->hc->server;
	while (*token == ' ')
		token++;
	auth_login_token(server->auth, req->hc->conn, http_request_peer(req),
			 token, bearer_done);
	return 1;
}

int http_auth_request(struct http_request *req)
{
	unsigned flags = req->route != NULL ? req->route->r.flags : 0;
	req->authed = true;
	if (!(flags & (HTTP_ROUTE_AUTH | HTTP_ROUTE_AUTH_OPTIONAL)))
		return 0;
	if (req->hc->server->auth == NULL)
		return answer_401(req, NULL, "No accounts here.");
	const char *authz = http_request_header(req, "authorization");
	int rc;
	if (authz != NULL && strncasecmp(authz, "Basic ", 6) == 0)
		rc = auth_basic(req, authz + 6);
	else if (authz != NULL && strncasecmp(authz, "Bearer ", 7) == 0)
		rc = auth_bearer(req, authz + 7);
	else if (authz != NULL)
		rc = answer_401(req, NULL, "Unknown authorization scheme.");
	else if (http_session_request(req, &rc))
		;    /* the cookie decided */
	else if (flags & HTTP_ROUTE_AUTH)
		rc = answer_401(req, NULL, "Sign in first.");
	else
		rc = 0;
	if (rc < 0)
		metrics_count("loft_http_auth_failures_total",
			      "HTTP requests refused for their credentials.",
			      NULL);
	return rc;
}

int http_auth_answer_401(struct http_request *req, const char *detail)
{
	return answer_401(req, NULL, detail);
}

void http_auth_register(struct http_server *server)
{
	http_session_register(server);
}
