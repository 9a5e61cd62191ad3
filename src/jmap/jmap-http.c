/*
 * JMAP behind the HTTP server (http.h): the session resource and its
 * well-known redirect (RFC 8620 2.2), the API endpoint with the request
 * size limit as JMAP's own 400 "limit" problem, uploads streamed into
 * the store (6.1), downloads with a safe Content-Disposition, ETag and
 * Range (6.2), and the EventSource (7.3).
 */
#include "jmap-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "buf.h"
#include "http.h"
#include "log.h"

void jmap_eventsource(struct jmap *j, struct http_request *req,
		      struct http_response *resp);

static bool caller(struct http_request *req, struct jmap_caller *who)
{
	const struct auth_user *u = http_request_account(req);
	if (u == NULL)
		return false;
	who->user_id = u->id;
	who->address = u->address;
	return true;
}

static void send_json(struct http_response *resp, unsigned status,
		      const struct buf *b, bool problem)
{
	http_response_status(resp, status);
	http_response_content_type(resp, problem ? "application/problem+json"
						 : "application/json");
	http_response_set_header(resp, "Cache-Control", "no-cache, no-store");
	http_response_send(resp, b->data ? b->data : "", b->len);
}

/* ---- session ------------------------------------------------------------ */

static void well_known(struct http_request *req, struct http_response *resp,
		       void *ctx)
{
	(void)ctx;
	(void)req;
	http_response_redirect(resp, 308, "/jmap/session");
}

static void session(struct http_request *req, struct http_response *resp,
		    void *ctx)
{
	struct jmap *j = ctx;
	struct jmap_caller who;
	if (!caller(req, &who)) {
		http_response_error(resp, 401, NULL);
		return;
	}
	struct buf out;
	buf_init(&out, 0);
	unsigned st = jmap_session(j, &who, http_request_origin(req), &out);
	send_json(resp, st, &out, false);
	buf_free(&out);
}

/* ---- API ------------------------------------------------------------------ */

/* RFC 8620 3.6.1: a "limit" problem names the limit. */
static void limit_problem(struct http_response *resp, unsigned status,
			  const char *limit, const char *detail)
{
	json_t *p = json_pack("{s:s,s:i,s:s,s:s}", "type",
			      "urn:ietf:params:jmap:error:limit", "status",
			      (int)status, "limit", limit, "detail", detail);
	char *text = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	http_response_status(resp, status);
	http_response_content_type(resp, "application/problem+json");
	http_response_send(resp, text, strlen(text));
	free(text);
}

struct api_req {
	struct buf body;
	bool over;
};

static int api_begin(struct http_request *req, struct http_response *resp,
		     void *ctx)
{
	struct jmap *j = ctx;
	int64_t cl = http_request_content_length(req);
	if (cl > 0 && (uint64_t)cl > j->set.max_size_request) {
		limit_problem(resp, 400, "maxSizeRequest",
			      "The request is larger than maxSizeRequest.");
		return -1;
	}
	struct api_req *a = xcalloc(1, sizeof(*a));
	buf_init(&a->body, 0);
	http_request_set_data(req, a);
	return 0;
}

static int api_body(struct http_request *req, struct http_response *resp,
		    const void *data, size_t len, void *ctx)
{
	struct jmap *j = ctx;
	struct api_req *a = http_request_data(req);
	if (a->body.len + len > j->set.max_size_request) {
		limit_problem(resp, 400, "maxSizeRequest",
			      "The request is larger than maxSizeRequest.");
		return -1;
	}
	buf_append(&a->body, data, len);
	return 0;
}

static void api(struct http_request *req, struct http_response *resp,
		void *ctx)
{
	struct jmap *j = ctx;
	struct api_req *a = http_request_data(req);
	struct jmap_caller who;
	if (!caller(req, &who) || a == NULL) {
		http_response_error(resp, 401, NULL);
		return;
	}
	/* RFC 8620 3.1: application/json (";jmapVersion=rfc-8621" and a
	 * charset are fine); a form or text would not be JSON */
	const char *ct = http_request_header(req, "Content-Type");
	if (ct != NULL && strncasecmp(ct, "application/json", 16) != 0 &&
	    strncasecmp(ct, "text/plain", 10) != 0) {
		http_response_problem(resp, 400,
				      "urn:ietf:params:jmap:error:notJSON",
				      "The content type must be application/json.");
		return;
	}
	struct buf out;
	buf_init(&out, 0);
	unsigned st = jmap_api(j, &who, a->body.data ? a->body.data : "",
			       a->body.len, &out);
	send_json(resp, st, &out, st != 200);
	buf_free(&out);
}

static void api_cleanup(struct http_request *req, bool complete, void *ctx)
{
	(void)complete;
	(void)ctx;
	struct api_req *a = http_request_data(req);
	if (a != NULL) {
		buf_free(&a->body);
		free(a);
	}
	http_request_set_data(req, NULL);
}

/* ---- uploads (RFC 8620 6.1) ---------------------------------------------- */

struct up_req {
	struct store_user *user;
	struct store_upload *up;
	int64_t user_id;
	bool slot;
};

/* The account in a path after prefix, up to the next "/" (*id_r): the
 * caller's own, or with others true any account id (the caller's
 * access to it is checked when it is opened). */
static bool path_account_id(struct http_request *req, const char *prefix,
			    bool others, int64_t *id_r, const char **rest_r)
{
	const struct auth_user *u = http_request_account(req);
	const char *p = http_request_path(req) + strlen(prefix);
	const char *slash = strchr(p, '/');
	if (u == NULL)
		return false;
	size_t len = slash ? (size_t)(slash - p) : strlen(p);
	char acc[32];
	if (len == 0 || len >= sizeof(acc))
		return false;
	memcpy(acc, p, len);
	acc[len] = '\0';
	if (!jmap_account_parse(acc, id_r) || (!others && *id_r != u->id))
		return false;
	*rest_r = slash ? slash + 1 : "";
	return true;
}

static bool path_account(struct http_request *req, const char *prefix,
			 const char **rest_r)
{
	int64_t id;
	return path_account_id(req, prefix, false, &id, rest_r);
}

static int up_begin(struct http_request *req, struct http_response *resp,
		    void *ctx)
{
	struct jmap *j = ctx;
	const char *rest;
	if (!path_account(req, "/jmap/upload/", &rest) || rest[0] != '\0') {
		http_response_problem(resp, 404,
				      "urn:ietf:params:jmap:error:accountNotFound",
				      "No such account.");
		return -1;
	}
	const struct auth_user *u = http_request_account(req);
	struct up_req *a = xcalloc(1, sizeof(*a));
	a->user_id = u->id;
	http_request_set_data(req, a);
	if (!jmap_slot_take(j, u->id, 1)) {
		limit_problem(resp, 400, "maxConcurrentUpload",
			      "Too many uploads at once.");
		return -1;
	}
	a->slot = true;
	struct store_error err;
	if (store_user_open(j->store, u->id, &a->user, &err) < 0 ||
	    store_upload_begin(a->user, j->set.max_size_upload, &a->up,
			       &err) < 0) {
		http_response_error(resp, 503, err.msg);
		return -1;
	}
	return 0;
}

static int up_body(struct http_request *req, struct http_response *resp,
		   const void *data, size_t len, void *ctx)
{
	(void)ctx;
	struct up_req *a = http_request_data(req);
	struct store_error err;
	if (store_upload_write(a->up, data, len, &err) < 0) {
		if (err.kind == STORE_ERR_LIMIT)
			limit_problem(resp, 413, "maxSizeUpload",
				      "The upload is larger than maxSizeUpload.");
		else
			http_response_error(resp, 503, err.msg);
		return -1;
	}
	return 0;
}

static void up_handle(struct http_request *req, struct http_response *resp,
		      void *ctx)
{
	struct jmap *j = ctx;
	struct up_req *a = http_request_data(req);
	const char *ct = http_request_header(req, "Content-Type");
	char *type = xstrdup(ct != NULL && ct[0] != '\0' && strlen(ct) < 200 &&
					     strpbrk(ct, "\r\n\"") == NULL
				     ? ct
				     : "application/octet-stream");
	int64_t id = 0;
	uint64_t size;
	struct store_error err;
	if (store_upload_finish(&a->up, type,
				time(NULL) + (time_t)j->set.upload_ttl, &id,
				&size, &err) < 0) {
		free(type);
		http_response_error(resp, 503, err.msg);
		return;
	}
	char acc[32], blob[32];
	jmap_account_id(a->user_id, acc);
	store_objectid_format(blob, 'U', a->user_id, id);
	json_t *r = json_pack("{s:s,s:s,s:s,s:I}", "accountId", acc, "blobId",
			      blob, "type", type, "size", (json_int_t)size);
	free(type);
	char *text = json_dumps(r, JSON_COMPACT);
	json_decref(r);
	http_response_status(resp, 201);
	http_response_content_type(resp, "application/json");
	http_response_send(resp, text, strlen(text));
	free(text);
}

static void up_cleanup(struct http_request *req, bool complete, void *ctx)
{
	struct jmap *j = ctx;
	(void)complete;
	struct up_req *a = http_request_data(req);
	if (a == NULL)
		return;
	/* cut half way, or refused: nothing is kept */
	store_upload_abort(&a->up);
	store_user_unref(&a->user);
	if (a->slot)
		jmap_slot_give(j, a->user_id, 1);
	free(a);
	http_request_set_data(req, NULL);
}

/* ---- downloads (RFC 8620 6.2) ------------------------------------------- */

static void download(struct http_request *req, struct http_response *resp,
		     void *ctx)
{
	struct jmap *j = ctx;
	const char *rest;
	int64_t account;
	if (!path_account_id(req, "/jmap/download/", true, &account, &rest)) {
		http_response_error(resp, 404, "No such account or blob.");
		return;
	}
	const char *slash = strchr(rest, '/');
	if (slash == NULL || slash == rest) {
		http_response_error(resp, 404, "No such blob.");
		return;
	}
	char *blob_id = xstrndup(rest, (size_t)(slash - rest));
	char *name = http_pct_decode(slash + 1, strlen(slash + 1), false);
	char *type = http_query_param(req, "type");
	const struct auth_user *u = http_request_account(req);
	struct store_user *user = NULL;
	struct jmap_blob b;
	struct store_error err;
	struct jmap_caller who = {u->id, u->address};
	if (name == NULL || !jmap_id_valid(blob_id) ||
	    jmap_account_open(j, &who, account, &user, NULL, NULL, 0) < 0 ||
	    jmap_blob_open(j, user, blob_id, &b, &err) < 0) {
		http_response_error(resp, 404, "No such blob.");
		goto out;
	}
	/* the type asked for, if it is a media type; else what the blob
	 * says; never one a browser would run from here (nosniff is set,
	 * and the disposition is attachment) */
	const char *t = type != NULL && type[0] != '\0' && strchr(type, '/') &&
				strpbrk(type, "\r\n") == NULL
			? type
			: b.type ? b.type : "application/octet-stream";
	http_response_content_type(resp, t);
	http_response_etag(resp, blob_id);
	http_response_accept_ranges(resp);
	http_response_set_header(resp, "Cache-Control",
				 "private, max-age=31536000, immutable");
	http_response_set_header(resp, "Content-Security-Policy", "sandbox");
	struct buf cd;
	buf_init(&cd, 0);
	http_content_disposition(&cd, "attachment", name);
	buf_append(&cd, "", 0);
	http_response_set_header(resp, "Content-Disposition", "%s", cd.data);
	buf_free(&cd);
	http_response_send(resp, b.data, b.len);
	jmap_blob_close(&b);
out:
	store_user_unref(&user);
	free(blob_id);
	free(name);
	free(type);
}

static void eventsource(struct http_request *req, struct http_response *resp,
			void *ctx)
{
	jmap_eventsource(ctx, req, resp);
}

int jmap_http_register(struct jmap *j, struct http_server *server,
		       struct buf *errors)
{
	const unsigned auth = HTTP_ROUTE_AUTH | HTTP_ROUTE_CORS;
	struct http_route routes[] = {
		{.method = "GET", .prefix = "/.well-known/jmap",
		 .flags = HTTP_ROUTE_EXACT | HTTP_ROUTE_CORS,
		 .handle = well_known},
		{.method = "GET", .prefix = "/jmap/session",
		 .flags = auth | HTTP_ROUTE_EXACT, .handle = session},
		{.method = "POST", .prefix = "/jmap/api",
		 .flags = auth | HTTP_ROUTE_EXACT,
		 .max_body = UINT64_MAX / 2,
		 .begin = api_begin, .body = api_body, .handle = api,
		 .cleanup = api_cleanup},
		{.method = "POST", .prefix = "/jmap/upload/", .flags = auth,
		 .max_body = j->set.max_size_upload, .begin = up_begin,
		 .body = up_body, .handle = up_handle, .cleanup = up_cleanup},
		{.method = "GET", .prefix = "/jmap/download/",
		 .flags = auth | HTTP_ROUTE_NO_COMPRESS, .handle = download},
		{.method = "GET", .prefix = "/jmap/eventsource",
		 .flags = auth | HTTP_ROUTE_NO_COMPRESS, .handle = eventsource},
	};
	for (size_t i = 0; i < sizeof(routes) / sizeof(*routes); i++) {
		if (http_route_add(server, &routes[i], j) < 0) {
			buf_printf(errors, "jmap: route %s %s is taken\n",
				   routes[i].method, routes[i].prefix);
			return -1;
		}
	}
	if (jmap_loft_register(j, server) < 0) {
		buf_printf(errors, "jmap: route GET /jmap/frame/ is taken\n");
		return -1;
	}
	return 0;
}
