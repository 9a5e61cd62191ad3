/*
 * Loft's vendor capability for the webmail (https://loft.example/jmap/webmail,
 * docs/jmap.md): what a webmail needs that no JMAP standard covers.
 *
 *   LoftSettings/get|set   the account's webmail settings (theme, threads,
 *                          sort, compose format, undo-send delay,
 *                          notifications) and the senders whose remote
 *                          content loads without asking; one object
 *                          "singleton" kept in the store (stored objects,
 *                          kind SETTINGS), so it follows the user to every
 *                          browser and is pushed as "LoftSettings".
 *   LoftAccount/get        the account's POP3 and retention policy (what
 *                          the "Set up a device" page explains).
 *   LoftAccount/changePassword  {oldPassword, newPassword}: the old one is
 *                          verified (throttled as any login), the new one
 *                          passes the password policy.
 *   AppPassword/get|set    app passwords: the HTTP issue's tokens (Bearer,
 *                          or an IMAP/POP3/SMTP password for one device);
 *                          the secret is in the create response only.
 *
 * And one route: GET /jmap/frame/{accountId}/{blobId}[?remote=1] serves an
 * upload of the caller's own (type text/html: the webmail's sanitised
 * copy of a message) as a page under its own CSP: no script at all
 * (CSP sandbox, script-src 'none'), images and styles only inline or
 * data: unless remote=1 (the user's consent), framed only by our pages.
 */
#include "jmap-private.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "buf.h"
#include "http.h"

json_t *jmap_objects_load(struct jmap_req *req, enum store_jmap_kind kind,
			  struct store_error *err);
int jmap_object_save(struct jmap_req *req, enum store_jmap_kind kind,
		     int64_t n, json_t *obj, int64_t *id_r,
		     struct store_error *err);

#define SENDERS_MAX 5000
#define SETTINGS_MAX_BYTES (256 * 1024)

/* ---- LoftSettings ------------------------------------------------------ */

static json_t *settings_defaults(void)
{
	return json_pack("{s:s,s:s,s:b,s:s,s:b,s:s,s:i,s:b,s:[]}", "id",
			 "singleton", "theme", "auto", "threads", 1, "sort",
			 "receivedAt", "sortAscending", 0, "compose", "html",
			 "undoSendSeconds", 5, "notifications", 0,
			 "remoteContentSenders");
}

static bool one_of(json_t *v, const char *const *allowed)
{
	if (!json_is_string(v))
		return false;
	for (size_t i = 0; allowed[i] != NULL; i++)
		if (strcmp(json_string_value(v), allowed[i]) == 0)
			return true;
	return false;
}

/* "ann@example.com" or "@example.com" (a whole domain): printable ASCII
 * or UTF-8, no spaces or controls, one '@'. Lower-cased into out. */
static bool sender_valid(const char *s, struct buf *out)
{
	size_t n = strlen(s);
	const char *at = strchr(s, '@');
	if (n < 2 || n > 254 || at == NULL || strchr(at + 1, '@') != NULL ||
	    at[1] == '\0')
		return false;
	buf_reset(out);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"')
			return false;
		char lc = (char)(c < 0x80 ? tolower(c) : c);
		buf_append(out, &lc, 1);
	}
	buf_append(out, "", 1);
	return true;
}

/* Checks one property's new value; *fixed_r (when set) replaces it.
 * Returns false for an unknown property or a bad value. */
static bool settings_prop_ok(const char *p, json_t *v, json_t **fixed_r)
{
	static const char *const themes[] = {"auto", "light", "dark", NULL};
	static const char *const sorts[] = {"receivedAt", "from", "subject",
					    "size", NULL};
	static const char *const composes[] = {"html", "plain", NULL};
	*fixed_r = NULL;
	if (strcmp(p, "theme") == 0)
		return one_of(v, themes);
	if (strcmp(p, "sort") == 0)
		return one_of(v, sorts);
	if (strcmp(p, "compose") == 0)
		return one_of(v, composes);
	if (strcmp(p, "threads") == 0 || strcmp(p, "sortAscending") == 0 ||
	    strcmp(p, "notifications") == 0)
		return json_is_boolean(v);
	if (strcmp(p, "undoSendSeconds") == 0)
		return json_is_integer(v) && json_integer_value(v) >= 0 &&
			json_integer_value(v) <= 10;
	if (strcmp(p, "remoteContentSenders") != 0 || !json_is_array(v) ||
	    json_array_size(v) > SENDERS_MAX)
		return false;
	json_t *list = json_array();
	struct buf b;
	buf_init(&b, 0);
	size_t i;
	json_t *x;
	bool ok = true;
	json_array_foreach(v, i, x) {
		if (!json_is_string(x) || !sender_valid(json_string_value(x), &b)) {
			ok = false;
			break;
		}
		/* kept once, in the order given */
		bool dup = false;
		size_t k;
		json_t *y;
		json_array_foreach(list, k, y) dup |=
			strcmp(json_string_value(y), b.data) == 0;
		if (!dup)
			json_array_append_new(list, json_string(b.data));
	}
	buf_free(&b);
	if (!ok) {
		json_decref(list);
		return false;
	}
	*fixed_r = list;
	return true;
}

static json_t *settings_current(struct jmap_req *req, struct store_error *err)
{
	json_t *all = jmap_objects_load(req, STORE_JMAP_SETTINGS, err);
	if (all == NULL)
		return NULL;
	json_t *r = settings_defaults();
	const char *k;
	json_t *v;
	json_t *stored = NULL;
	json_object_foreach(all, k, v) stored = v;   /* one object at most */
	json_object_foreach(stored, k, v) {
		json_t *fixed;
		if (strcmp(k, "id") != 0 && settings_prop_ok(k, v, &fixed))
			json_object_set_new(r, k, fixed ? fixed : json_incref(v));
	}
	json_decref(all);
	return r;
}

static json_t *singleton_get(struct jmap_req *req, json_t *args,
			     const char *name, json_t *obj, json_t *state)
{
	json_t *ids, *e = NULL;
	if (!jmap_arg_ids(args, "ids", &ids, &e)) {
		json_decref(obj);
		json_decref(state);
		return e;
	}
	json_t *list = json_array(), *nf = json_array();
	bool want = ids == NULL;
	size_t i;
	json_t *x;
	json_array_foreach(ids, i, x) {
		if (strcmp(json_string_value(x), "singleton") == 0)
			want = true;
		else
			json_array_append(nf, x);
	}
	if (want)
		json_array_append(list, obj);
	json_decref(obj);
	jmap_reply(req, name,
		   json_pack("{s:O,s:o,s:o,s:o}", "accountId",
			     json_object_get(args, "accountId"), "state", state,
			     "list", list, "notFound", nf));
	return NULL;
}

static json_t *settings_get(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false);
	if (e != NULL)
		return e;
	struct store_error err;
	json_t *cur = settings_current(req, &err);
	if (cur == NULL)
		return jmap_store_error(req, &err);
	return singleton_get(req, args, "LoftSettings/get", cur,
			     jmap_state_json(req, STORE_JMAP_SETTINGS));
}

static json_t *settings_update(struct jmap_req *req, json_t *patch)
{
	struct store_error err;
	json_t *cur = settings_current(req, &err);
	if (cur == NULL)
		return jmap_set_error_store(&err);
	json_t *se = NULL;
	const char *p;
	json_t *v;
	if (!json_is_object(patch))
		se = jmap_set_error("invalidPatch", "update must be an object");
	json_object_foreach(patch, p, v) {
		json_t *fixed;
		if (se != NULL)
			break;
		if (strcmp(p, "id") == 0 || !settings_prop_ok(p, v, &fixed)) {
			se = jmap_set_error_props("invalidProperties", NULL, p);
			break;
		}
		json_object_set_new(cur, p, fixed ? fixed : json_incref(v));
	}
	if (se == NULL) {
		char *text = json_dumps(cur, JSON_COMPACT);
		size_t len = strlen(text);
		free(text);
		if (len > SETTINGS_MAX_BYTES)
			se = jmap_set_error("tooLarge",
					    "The settings are too large.");
		else if (jmap_object_save(req, STORE_JMAP_SETTINGS, 1, cur, NULL,
					  &err) < 0)
			se = jmap_set_error_store(&err);
	}
	json_decref(cur);
	return se;
}

static json_t *settings_set(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, true);
	if (e != NULL)
		return e;
	json_t *if_state = json_object_get(args, "ifInState");
	json_t *old = jmap_state_json(req, STORE_JMAP_SETTINGS);
	if (if_state != NULL && !json_is_null(if_state) &&
	    !json_equal(if_state, old)) {
		json_decref(old);
		return jmap_error("stateMismatch", NULL);
	}
	json_t *nc = json_object(), *nu = json_object(), *nd = json_object(),
	       *updated = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(args, "create"), k, v)
		json_object_set_new(nc, k, jmap_set_error("singleton", NULL));
	size_t i;
	json_array_foreach(json_object_get(args, "destroy"), i, v)
		if (json_is_string(v))
			json_object_set_new(nd, json_string_value(v),
					    jmap_set_error("singleton", NULL));
	json_object_foreach(json_object_get(args, "update"), k, v) {
		json_t *se = strcmp(k, "singleton") == 0
				     ? settings_update(req, v)
				     : jmap_set_error("notFound", NULL);
		if (se != NULL)
			json_object_set_new(nu, k, se);
		else
			json_object_set_new(updated, k, json_null());
	}
	jmap_reply(req, "LoftSettings/set",
		   json_pack("{s:O,s:o,s:o,s:n,s:o,s:[],s:o,s:o,s:o}",
			     "accountId", json_object_get(args, "accountId"),
			     "oldState", old, "newState",
			     jmap_state_json(req, STORE_JMAP_SETTINGS),
			     "created", "updated", updated, "destroyed",
			     "notCreated", nc, "notUpdated", nu, "notDestroyed",
			     nd));
	return NULL;
}

/* ---- LoftAccount ------------------------------------------------------- */

static json_t *account_get(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false);
	if (e != NULL)
		return e;
	struct auth_policy pol;
	if (req->j->auth == NULL ||
	    auth_user_policy(req->j->auth, req->who->user_id, &pol) < 0)
		return jmap_error("serverFail", "The account's policy cannot "
				  "be read now.");
	json_t *o = json_pack(
		"{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "id", "singleton",
		"username", req->who->address, "pop3Delete",
		auth_pop3_delete_name(pol.pop3_delete), "pop3RetentionDays",
		(json_int_t)pol.pop3_retention_days, "trashRetentionDays",
		(json_int_t)pol.trash_retention_days, "junkRetentionDays",
		(json_int_t)pol.junk_retention_days, "deletedRetentionDays",
		(json_int_t)pol.deleted_retention_days, "quotaBytes",
		(json_int_t)pol.quota_bytes, "quotaMessages",
		(json_int_t)pol.quota_messages);
	return singleton_get(req, args, "LoftAccount/get", o,
			     json_string("0"));
}

static json_t *account_password(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, true);
	if (e != NULL)
		return e;
	const char *old = json_string_value(json_object_get(args, "oldPassword"));
	const char *neu = json_string_value(json_object_get(args, "newPassword"));
	if (old == NULL || neu == NULL)
		return jmap_error("invalidArguments",
				  "oldPassword and newPassword are required");
	if (req->j->auth == NULL)
		return jmap_error("serverFail", NULL);
	/* The old password and the new one go to the auth process together
	 * (auth_user_passwd_change): the mail process never sets a password
	 * on its own. */
	char *why = NULL;
	enum auth_passwd_change r = auth_user_passwd_change(
		req->j->auth, req->who->address, old, neu, &why);
	if (r == AUTH_PASSWD_TEMPFAIL) {
		free(why);
		return jmap_error("serverUnavailable", NULL);
	}
	if (r == AUTH_PASSWD_WRONG)
		return jmap_error("wrongPassword",
				  "The current password is not right.");
	if (r != AUTH_PASSWD_CHANGED) {
		json_t *err = jmap_error("passwordRejected", "%s",
					 why ? why : "not accepted");
		free(why);
		return err;
	}
	jmap_reply(req, "LoftAccount/changePassword",
		   json_pack("{s:O}", "accountId",
			     json_object_get(args, "accountId")));
	return NULL;
}

/* ---- AppPassword (tokens) ---------------------------------------------- */

/* An app password's id: "A" and its name in hex (names are free text). */
static void app_id(const char *name, struct buf *out)
{
	buf_reset(out);
	buf_append(out, "A", 1);
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		buf_printf(out, "%02x", *p);
	buf_append(out, "", 1);
}

static char *app_name(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n < 3 || id[0] != 'A' || (n - 1) % 2 != 0 || n > 200)
		return NULL;
	char *s = xcalloc(1, (n - 1) / 2 + 1);
	for (size_t i = 0; i < (n - 1) / 2; i++) {
		unsigned v;
		if (sscanf(id + 1 + 2 * i, "%2x", &v) != 1 || v == 0 ||
		    !isxdigit((unsigned char)id[1 + 2 * i]) ||
		    !isxdigit((unsigned char)id[2 + 2 * i])) {
			free(s);
			return NULL;
		}
		s[i] = (char)v;
	}
	return s;
}

static void app_list_cb(void *ctx, const struct auth_token_info *info)
{
	json_t *list = ctx;
	struct buf id;
	buf_init(&id, 0);
	app_id(info->name, &id);
	char created[32], expires[32], used[32];
	jmap_utcdate(info->created, created);
	jmap_utcdate(info->expires, expires);
	jmap_utcdate(info->last_used, used);
	json_array_append_new(
		list, json_pack("{s:s,s:s,s:s,s:o,s:o}", "id", id.data, "name",
				info->name, "created", created, "expires",
				info->expires ? json_string(expires) : json_null(),
				"lastUsed",
				info->last_used ? json_string(used) : json_null()));
	buf_free(&id);
}

static json_t *app_list(struct jmap_req *req)
{
	json_t *list = json_array();
	char *error = NULL;
	if (req->j->auth == NULL ||
	    auth_token_list(req->j->auth, req->who->address, app_list_cb, list,
			    &error) < 0) {
		free(error);
		json_decref(list);
		return NULL;
	}
	return list;
}

/* The state: a hash of the list (tokens live in the accounts database,
 * outside the account's change counter). */
static json_t *app_state(json_t *list)
{
	char *text = json_dumps(list, JSON_COMPACT);
	uint64_t h = 1469598103934665603ULL;
	for (const char *p = text; p && *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	free(text);
	char s[24];
	snprintf(s, sizeof(s), "%016llx", (unsigned long long)h);
	return json_string(s);
}

static json_t *app_get(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false), *ids;
	if (e != NULL || !jmap_arg_ids(args, "ids", &ids, &e))
		return e;
	json_t *all = app_list(req);
	if (all == NULL)
		return jmap_error("serverFail", "App passwords cannot be read now.");
	json_t *list = json_array(), *nf = json_array();
	size_t i, k;
	json_t *x, *y;
	if (ids == NULL) {
		json_array_extend(list, all);
	} else {
		json_array_foreach(ids, i, x) {
			bool found = false;
			json_array_foreach(all, k, y) {
				if (strcmp(json_string_value(json_object_get(y, "id")),
					   json_string_value(x)) == 0) {
					json_array_append(list, y);
					found = true;
				}
			}
			if (!found)
				json_array_append(nf, x);
		}
	}
	jmap_reply(req, "AppPassword/get",
		   json_pack("{s:O,s:o,s:o,s:o}", "accountId",
			     json_object_get(args, "accountId"), "state",
			     app_state(all), "list", list, "notFound", nf));
	json_decref(all);
	return NULL;
}

static json_t *app_create(struct jmap_req *req, json_t *v, json_t **made_r)
{
	const char *name = json_string_value(json_object_get(v, "name"));
	json_t *exp = json_object_get(v, "expires");
	time_t expires = 0;
	*made_r = NULL;
	if (name == NULL || name[0] == '\0' || strlen(name) > 64)
		return jmap_set_error_props("invalidProperties",
					    "a name of 1 to 64 characters", "name");
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < ' ' || *p == 0x7f)
			return jmap_set_error_props("invalidProperties",
						    "no control characters", "name");
	if (exp != NULL && !json_is_null(exp) &&
	    !jmap_utcdate_parse(json_string_value(exp), &expires))
		return jmap_set_error_props("invalidProperties", NULL, "expires");
	if (expires != 0 && expires <= time(NULL))
		return jmap_set_error_props("invalidProperties",
					    "expires must be in the future",
					    "expires");
	const char *const allowed[] = {"name", "expires", NULL};
	const char *p;
	json_t *x;
	json_object_foreach(v, p, x) {
		bool ok = false;
		for (size_t i = 0; allowed[i]; i++)
			ok |= strcmp(p, allowed[i]) == 0;
		if (!ok)
			return jmap_set_error_props("invalidProperties", NULL, p);
	}
	char *token = NULL, *given = NULL, *error = NULL;
	if (auth_token_add(req->j->auth, req->who->address, name, expires,
			   &token, &given, &error) < 0) {
		json_t *se = jmap_set_error(
			strstr(error ? error : "", "taken") ? "alreadyExists"
							    : "invalidProperties",
			error ? error : NULL);
		free(error);
		return se;
	}
	struct buf id;
	buf_init(&id, 0);
	app_id(given ? given : name, &id);
	*made_r = json_pack("{s:s,s:s,s:s}", "id", id.data, "name",
			    given ? given : name, "secret", token);
	buf_free(&id);
	free(token);
	free(given);
	return NULL;
}

static json_t *app_set(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, true);
	if (e != NULL)
		return e;
	if (req->j->auth == NULL)
		return jmap_error("serverFail", NULL);
	json_t *before = app_list(req);
	if (before == NULL)
		return jmap_error("serverFail", NULL);
	json_t *old = app_state(before);
	json_decref(before);
	json_t *if_state = json_object_get(args, "ifInState");
	if (if_state != NULL && !json_is_null(if_state) &&
	    !json_equal(if_state, old)) {
		json_decref(old);
		return jmap_error("stateMismatch", NULL);
	}
	json_t *created = json_object(), *nc = json_object(),
	       *destroyed = json_array(), *nd = json_object(),
	       *nu = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(args, "create"), k, v) {
		json_t *made;
		json_t *se = app_create(req, v, &made);
		if (se != NULL)
			json_object_set_new(nc, k, se);
		else
			json_object_set_new(created, k, made);
	}
	json_object_foreach(json_object_get(args, "update"), k, v)
		json_object_set_new(nu, k, jmap_set_error("forbidden",
				    "An app password cannot be changed; "
				    "make a new one."));
	size_t i;
	json_array_foreach(json_object_get(args, "destroy"), i, v) {
		const char *id = json_string_value(v);
		char *name = app_name(id);
		char *error = NULL;
		if (name == NULL ||
		    auth_token_del(req->j->auth, req->who->address, name,
				   &error) < 0) {
			if (id != NULL)
				json_object_set_new(nd, id,
						    jmap_set_error("notFound", NULL));
		} else {
			json_array_append_new(destroyed, json_string(id));
		}
		free(error);
		free(name);
	}
	json_t *after = app_list(req);
	jmap_reply(req, "AppPassword/set",
		   json_pack("{s:O,s:o,s:o,s:o,s:n,s:o,s:o,s:o,s:o}",
			     "accountId", json_object_get(args, "accountId"),
			     "oldState", old, "newState",
			     after ? app_state(after) : json_string(""),
			     "created", created, "updated", "destroyed",
			     destroyed, "notCreated", nc, "notUpdated", nu,
			     "notDestroyed", nd));
	json_decref(after);
	return NULL;
}

const struct jmap_method jmap_loft_methods[] = {
	{"LoftSettings/get", JMAP_C_LOFT, settings_get},
	{"LoftSettings/set", JMAP_C_LOFT, settings_set},
	{"LoftAccount/get", JMAP_C_LOFT, account_get},
	{"LoftAccount/changePassword", JMAP_C_LOFT, account_password},
	{"AppPassword/get", JMAP_C_LOFT, app_get},
	{"AppPassword/set", JMAP_C_LOFT, app_set},
	{NULL, 0, NULL},
};

json_t *jmap_loft_capability(void)
{
	/* undelete: LoftDeleted/get|recover (jmap-deleted.c) */
	return json_pack("{s:s,s:i,s:b}", "frameUrl",
			 "/jmap/frame/{accountId}/{blobId}",
			 "maxRemoteContentSenders", SENDERS_MAX, "undelete", 1);
}

/* ---- the message frame ------------------------------------------------- */

static const char frame_csp[] =
	"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
	"font-src data:; frame-ancestors 'self'; base-uri 'none'; "
	"form-action 'none'; sandbox allow-popups "
	"allow-popups-to-escape-sandbox";
static const char frame_csp_remote[] =
	"default-src 'none'; img-src data: https: http:; "
	"style-src 'unsafe-inline' https: http:; font-src data: https: http:; "
	"frame-ancestors 'self'; base-uri 'none'; form-action 'none'; "
	"sandbox allow-popups allow-popups-to-escape-sandbox";

static void frame(struct http_request *req, struct http_response *resp,
		  void *ctx)
{
	struct jmap *j = ctx;
	const struct auth_user *u = http_request_account(req);
	const char *p = http_request_path(req) + strlen("/jmap/frame/");
	char own[32];
	jmap_account_id(u->id, own);
	size_t ol = strlen(own);
	if (strncmp(p, own, ol) != 0 || p[ol] != '/' ||
	    !jmap_id_valid(p + ol + 1) || p[ol + 1] != 'U' ||
	    strchr(p + ol + 1, '-') == NULL ||
	    strchr(strchr(p + ol + 1, '-') + 1, '-') != NULL) {
		http_response_error(resp, 404, "No such frame.");
		return;
	}
	char *remote = http_query_param(req, "remote");
	bool allow = remote != NULL && strcmp(remote, "1") == 0;
	free(remote);
	struct store_user *user = NULL;
	struct store_error err;
	struct jmap_blob b;
	if (store_user_open(j->store, u->id, &user, &err) < 0 ||
	    jmap_blob_open(j, user, p + ol + 1, &b, &err) < 0) {
		store_user_unref(&user);
		http_response_error(resp, 404, "No such frame.");
		return;
	}
	/* only what the webmail uploaded as HTML becomes a page */
	if (b.type == NULL || strncasecmp(b.type, "text/html", 9) != 0) {
		jmap_blob_close(&b);
		store_user_unref(&user);
		http_response_error(resp, 404, "No such frame.");
		return;
	}
	http_response_content_type(resp, "text/html; charset=utf-8");
	http_response_set_header(resp, "Content-Security-Policy", "%s",
				 allow ? frame_csp_remote : frame_csp);
	http_response_set_header(resp, "Cache-Control", "private, no-store");
	http_response_set_header(resp, "Cross-Origin-Resource-Policy",
				 "same-origin");
	http_response_send(resp, b.data, b.len);
	jmap_blob_close(&b);
	store_user_unref(&user);
}

int jmap_loft_register(struct jmap *j, struct http_server *server)
{
	static const struct http_route route = {
		.method = "GET", .prefix = "/jmap/frame/",
		.flags = HTTP_ROUTE_AUTH, .handle = frame,
	};
	return http_route_add(server, &route, j);
}
