/*
 * Identity (RFC 8621 6) and the stored-object plumbing EmailSubmission
 * and VacationResponse share: JSON objects kept by the store per kind
 * (store_jobject_*), with states and /changes from the change counter.
 * An account starts with one Identity per address it may send as: its
 * address and its aliases (made on first use).
 */
#include "jmap-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "buf.h"
#include "delivery-sendas.h"

void jmap_object_id(enum store_jmap_kind kind, int64_t n, char out[32])
{
	snprintf(out, 32, "%c%llx", "METISVPWZ"[kind], (unsigned long long)n);
}

bool jmap_object_id_parse(enum store_jmap_kind kind, const char *s,
			  int64_t *n_r)
{
	if (s == NULL || s[0] != "METISVPWZ"[kind] || s[1] == '\0' ||
	    strlen(s) > 17)
		return false;
	char *end;
	unsigned long long v = strtoull(s + 1, &end, 16);
	if (*end != '\0' || v == 0 || s[1] == '0')
		return false;
	*n_r = (int64_t)v;
	return true;
}

/* Objects of a kind as {id: object} (ids filled in). */
json_t *jmap_objects_load(struct jmap_req *req, enum store_jmap_kind kind,
			  struct store_error *err)
{
	struct store_jobject *list;
	size_t n;
	if (store_jobject_list(req->user, kind, &list, &n, err) < 0)
		return NULL;
	json_t *all = json_object();
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_loads(list[i].data, 0, NULL);
		if (!json_is_object(o)) {
			json_decref(o);
			continue;
		}
		char id[32];
		jmap_object_id(kind, list[i].id, id);
		json_object_set_new(o, "id", json_string(id));
		json_object_set_new(all, id, o);
	}
	store_jobject_list_free(list, n);
	return all;
}

int jmap_object_save(struct jmap_req *req, enum store_jmap_kind kind,
		     int64_t n, json_t *obj, int64_t *id_r,
		     struct store_error *err)
{
	json_t *copy = json_copy(obj);
	json_object_del(copy, "id");
	char *text = json_dumps(copy, JSON_COMPACT);
	json_decref(copy);
	int r = store_jobject_put(req->user, kind, n, text, id_r, err);
	free(text);
	return r;
}

/* ---- the addresses an account may send as ------------------------------ */

/* One sender check for SMTP submission and JMAP (delivery-sendas.h): own
 * address, aliases (and a +detail of either), send_as = any, and the
 * shared addresses whose INBOX grants the caller i. */

static void address_cb(void *ctx, const char *name, const char *extra)
{
	(void)extra;
	json_array_append_new(ctx, json_string(name));
}

static void caller_user(const struct jmap_req *req, struct auth_user *u)
{
	memset(u, 0, sizeof(*u));
	u->id = req->who->user_id;
	snprintf(u->address, sizeof(u->address), "%s", req->who->address);
}

/* The account's own address first, then its aliases (auth_send_addresses:
 * in loftd an answer of the auth process), then the shared addresses it
 * may send as. */
json_t *jmap_send_addresses(struct jmap_req *req)
{
	json_t *list = json_array();
	char *error = NULL;
	if (req->j->auth == NULL ||
	    auth_send_addresses(req->j->auth, req->who->user_id, address_cb,
				list, &error) < 0 ||
	    json_array_size(list) == 0) {
		json_array_clear(list);
		json_array_append_new(list, json_string(req->who->address));
	}
	free(error);
	if (req->j->auth != NULL) {
		struct auth_user u;
		caller_user(req, &u);
		sendas_shared_list(req->j->auth, req->j->store, &u,
				   req->j->set.cross_domain, address_cb, list);
	}
	return list;
}

bool jmap_may_send_as(struct jmap_req *req, const char *email)
{
	if (email == NULL)
		return false;
	if (req->j->auth == NULL) {
		/* no account database (tests of the core alone): own only */
		return strcasecmp(email, req->who->address) == 0;
	}
	struct auth_user u;
	caller_user(req, &u);
	return sendas_may(req->j->auth, req->j->store, &u,
			  req->j->set.cross_domain, email) == 1;
}

/* ---- Identity ----------------------------------------------------------- */

static const char *const identity_props[] = {
	"id", "name", "email", "replyTo", "bcc", "textSignature",
	"htmlSignature", "mayDelete", NULL,
};

/* The account's identities, making the defaults on first use. */
json_t *jmap_identities(struct jmap_req *req, struct store_error *err)
{
	json_t *all = jmap_objects_load(req, STORE_JMAP_IDENTITY, err);
	if (all == NULL || json_object_size(all) > 0)
		return all;
	struct store_jmap_cursor s[STORE_JMAP_KINDS];
	if (store_jmap_states(req->user, s, err) < 0) {
		json_decref(all);
		return NULL;
	}
	/* once made, even if all are destroyed later, none come back */
	if (s[STORE_JMAP_IDENTITY].modseq > 0)
		return all;
	json_t *addrs = jmap_send_addresses(req);
	size_t i;
	json_t *x;
	json_array_foreach(addrs, i, x) {
		json_t *o = json_pack("{s:s,s:O,s:n,s:n,s:s,s:s}", "name", "",
				      "email", x, "replyTo", "bcc",
				      "textSignature", "", "htmlSignature", "");
		int64_t id = 0;
		if (jmap_object_save(req, STORE_JMAP_IDENTITY, 0, o, &id, err) < 0) {
			json_decref(o);
			json_decref(addrs);
			json_decref(all);
			return NULL;
		}
		json_decref(o);
	}
	json_decref(addrs);
	json_decref(all);
	return jmap_objects_load(req, STORE_JMAP_IDENTITY, err);
}

static json_t *identity_get(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false), *ids, *props;
	if (e != NULL || !jmap_arg_ids(args, "ids", &ids, &e) ||
	    !jmap_arg_props(args, "properties", identity_props, NULL, &props,
			    &e))
		return e;
	struct store_error err;
	json_t *all = jmap_identities(req, &err);
	if (all == NULL)
		return jmap_store_error(req, &err);
	json_t *state = jmap_state_json(req, STORE_JMAP_IDENTITY);
	json_t *list = json_array(), *nf = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(all, k, v) {
		if (ids != NULL) {
			bool asked = false;
			size_t i;
			json_t *x;
			json_array_foreach(ids, i, x) {
				const char *id = jmap_resolve_id(req, json_string_value(x));
				asked |= id != NULL && strcmp(id, k) == 0;
			}
			if (!asked)
				continue;
		}
		json_object_set_new(v, "mayDelete", json_true());
		json_t *o = json_pack("{s:s}", "id", k);
		for (const char *const *p = identity_props; *p; p++)
			if (jmap_want(props, *p) && json_object_get(v, *p))
				json_object_set(o, *p, json_object_get(v, *p));
		json_array_append_new(list, o);
	}
	size_t i;
	json_t *x;
	json_array_foreach(ids, i, x) {
		const char *id = jmap_resolve_id(req, json_string_value(x));
		if (id == NULL || json_object_get(all, id) == NULL)
			json_array_append(nf, x);
	}
	json_decref(all);
	jmap_reply(req, "Identity/get",
		   json_pack("{s:O,s:o,s:o,s:o}", "accountId",
			     json_object_get(args, "accountId"), "state", state,
			     "list", list, "notFound", nf));
	return NULL;
}

static json_t *identity_changes(struct jmap_req *req, json_t *args)
{
	return jmap_changes(req, args, STORE_JMAP_IDENTITY, "Identity/changes");
}

static bool addresses_ok(json_t *v)
{
	if (json_is_null(v))
		return true;
	if (!json_is_array(v))
		return false;
	size_t i;
	json_t *a;
	json_array_foreach(v, i, a) {
		const char *e = json_string_value(json_object_get(a, "email"));
		json_t *n = json_object_get(a, "name");
		if (!json_is_object(a) || e == NULL || strchr(e, '@') == NULL ||
		    strpbrk(e, " <>\r\n") ||
		    (n != NULL && !json_is_null(n) && !json_is_string(n)))
			return false;
	}
	return true;
}

/* The checked Identity (create: every property; update: what is given). */
static json_t *identity_check(struct jmap_req *req, json_t *obj, bool create)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		if (strcmp(k, "name") == 0 || strcmp(k, "textSignature") == 0 ||
		    strcmp(k, "htmlSignature") == 0) {
			if (!json_is_string(v))
				return jmap_set_error_props("invalidProperties",
							    NULL, k);
		} else if (strcmp(k, "replyTo") == 0 || strcmp(k, "bcc") == 0) {
			if (!addresses_ok(v))
				return jmap_set_error_props("invalidProperties",
							    NULL, k);
		} else if (strcmp(k, "email") == 0 && create) {
			if (!jmap_may_send_as(req, json_string_value(v)))
				return jmap_set_error("forbiddenFrom",
						      "this account may not"
						      " send as that address");
		} else {
			return jmap_set_error_props("invalidProperties",
						    create ? "cannot be set"
							   : "cannot change",
						    k);
		}
	}
	if (create && json_object_get(obj, "email") == NULL)
		return jmap_set_error_props("invalidProperties", "required",
					    "email");
	return NULL;
}

static json_t *identity_set(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, true);
	if (e != NULL)
		return e;
	json_t *create = json_object_get(args, "create");
	json_t *update = json_object_get(args, "update");
	json_t *destroy = json_object_get(args, "destroy");
	if (json_object_size(create) + json_object_size(update) +
		    json_array_size(destroy) >
	    req->j->set.max_objects_in_set)
		return jmap_error("requestTooLarge", NULL);
	struct store_error err;
	json_t *all = jmap_identities(req, &err);
	if (all == NULL)
		return jmap_store_error(req, &err);
	json_t *old = jmap_state_json(req, STORE_JMAP_IDENTITY);
	json_t *ifin = json_object_get(args, "ifInState");
	if (ifin != NULL && !json_is_null(ifin) && !json_equal(ifin, old)) {
		json_decref(old);
		json_decref(all);
		return jmap_error("stateMismatch", NULL);
	}
	json_t *created = json_object(), *updated = json_object(),
	       *destroyed = json_array(), *nc = json_object(),
	       *nu = json_object(), *nd = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(create, k, v) {
		json_t *se = json_is_object(v) ? identity_check(req, v, true)
					       : jmap_set_error("invalidProperties",
								NULL);
		int64_t id = 0;
		if (se == NULL) {
			json_t *o = json_pack("{s:s,s:n,s:n,s:s,s:s}", "name", "",
					      "replyTo", "bcc", "textSignature", "",
					      "htmlSignature", "");
			json_object_update(o, v);
			if (jmap_object_save(req, STORE_JMAP_IDENTITY, 0, o, &id,
					     &err) < 0)
				se = jmap_set_error_store(&err);
			json_decref(o);
		}
		if (se != NULL) {
			json_object_set_new(nc, k, se);
			continue;
		}
		char sid[32];
		jmap_object_id(STORE_JMAP_IDENTITY, id, sid);
		json_object_set_new(created, k, json_pack("{s:s,s:b}", "id", sid,
							  "mayDelete", 1));
		jmap_add_created(req, k, sid);
	}
	json_object_foreach(update, k, v) {
		const char *id = jmap_resolve_id(req, k);
		json_t *cur = id ? json_object_get(all, id) : NULL;
		int64_t n = 0;
		json_t *se = cur == NULL || !jmap_object_id_parse(STORE_JMAP_IDENTITY,
								  id, &n)
				     ? jmap_set_error("notFound", NULL)
				     : !json_is_object(v)
					       ? jmap_set_error("invalidPatch", NULL)
					       : identity_check(req, v, false);
		if (se == NULL) {
			json_t *o = json_copy(cur);
			json_object_update(o, v);
			if (jmap_object_save(req, STORE_JMAP_IDENTITY, n, o, NULL,
					     &err) < 0)
				se = jmap_set_error_store(&err);
			json_decref(o);
		}
		if (se != NULL)
			json_object_set_new(nu, k, se);
		else
			json_object_set_new(updated, k, json_null());
	}
	size_t i;
	json_array_foreach(destroy, i, v) {
		const char *raw = json_string_value(v);
		const char *id = jmap_resolve_id(req, raw);
		int64_t n = 0;
		if (raw == NULL)
			continue;
		if (id == NULL || json_object_get(all, id) == NULL ||
		    !jmap_object_id_parse(STORE_JMAP_IDENTITY, id, &n) ||
		    store_jobject_delete(req->user, STORE_JMAP_IDENTITY, n,
					 &err) < 0)
			json_object_set_new(nd, raw, jmap_set_error("notFound", NULL));
		else
			json_array_append_new(destroyed, json_string(raw));
	}
	json_decref(all);
	jmap_reply(req, "Identity/set",
		   json_pack("{s:O,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
			     "accountId", json_object_get(args, "accountId"),
			     "oldState", old, "newState",
			     jmap_state_json(req, STORE_JMAP_IDENTITY),
			     "created", created, "updated", updated,
			     "destroyed", destroyed, "notCreated", nc,
			     "notUpdated", nu, "notDestroyed", nd));
	return NULL;
}

const struct jmap_method jmap_identity_methods[] = {
	{"Identity/get", JMAP_C_SUBMISSION, identity_get},
	{"Identity/changes", JMAP_C_SUBMISSION, identity_changes},
	{"Identity/set", JMAP_C_SUBMISSION, identity_set},
	{NULL, 0, NULL},
};
