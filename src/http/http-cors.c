/*
 * CORS (Fetch standard, "CORS protocol"): routes flagged HTTP_ROUTE_CORS
 * answer cross-origin requests from [http] cors_origins (none by
 * default). A preflight (OPTIONS with Origin and
 * Access-Control-Request-Method) is answered here, on the I/O thread,
 * without authentication; actual responses get
 * Access-Control-Allow-Origin for an allowed Origin.
 */
#include <string.h>
#include <strings.h>

#include "http-private.h"

#define CORS_MAX_AGE 600
#define CORS_ALLOW_HEADERS \
	"Authorization, Content-Type, Accept, Last-Event-ID, X-Loft-CSRF"

bool http_cors_origin_allowed(const struct http_server *server,
			      const char *origin)
{
	if (origin == NULL)
		return false;
	for (size_t i = 0; i < http_set(server)->cors_count; i++)
		if (strcasecmp(http_set(server)->cors_origins[i], origin) == 0)
			return true;
	return false;
}

void http_cors_headers(struct http_request *req)
{
	const char *origin = http_request_header(req, "origin");
	struct http_response *resp = &req->resp;
	http_response_add_header(resp, "Vary", "Origin");
	if (!http_cors_origin_allowed(req->hc->server, origin))
		return;
	http_response_set_header(resp, "Access-Control-Allow-Origin", "%s",
				 origin);
	/* Credentials: Authorization headers (Bearer/Basic); the session
	 * cookie is SameSite=Strict and never crosses origins anyway. */
	http_response_set_header(resp, "Access-Control-Allow-Credentials",
				 "true");
	http_response_set_header(resp, "Access-Control-Expose-Headers",
				 "ETag, Content-Disposition, Content-Range, "
				 "Location");
}

bool http_cors_preflight(struct http_conn *hc, struct http_request *req)
{
	const struct http_head *h = req->head;
	const char *origin = http_head_field(h, "origin");
	const char *method = http_head_field(h, "access-control-request-method");
	const struct http_route_entry *route =
		http_route_find(hc->server, method, h->path, NULL);
	if (route == NULL || !(route->r.flags & HTTP_ROUTE_CORS))
		return false;    /* an ordinary OPTIONS answer */
	struct http_response *resp = &req->resp;
	if (!http_cors_origin_allowed(hc->server, origin)) {
		http_response_add_header(resp, "Vary", "Origin");
		http_conn_reply_io(hc, 403, "This origin may not use the API.",
				   h->body != HTTP_BODY_NONE);
		return true;
	}
	http_response_status(resp, 204);
	http_response_set_header(resp, "Access-Control-Allow-Origin", "%s",
				 origin);
	http_response_set_header(resp, "Access-Control-Allow-Credentials",
				 "true");
	http_response_set_header(resp, "Access-Control-Allow-Methods",
				 "%s, OPTIONS", method);
	http_response_set_header(resp, "Access-Control-Allow-Headers", "%s",
				 CORS_ALLOW_HEADERS);
	http_response_set_header(resp, "Access-Control-Max-Age", "%d",
				 CORS_MAX_AGE);
	http_response_add_header(resp, "Vary", "Origin, "
				 "Access-Control-Request-Method, "
				 "Access-Control-Request-Headers");
	if (h->body != HTTP_BODY_NONE)
		resp->close = true;
	http_response_send(resp, NULL, 0);
	http_conn_finish(hc);
	return true;
}
