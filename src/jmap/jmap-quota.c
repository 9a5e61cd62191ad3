/*
 * Quota (RFC 9425) over the account's quotas (auth policy: quota_bytes,
 * quota_messages) and the store's usage. One Quota per configured limit:
 * "octets" (id Qoctets) and "count" (id Qcount), scope "account", types
 * ["Mail"]. The state moves whenever the usage or a limit does.
 */
#include "jmap-private.h"

#include <stdio.h>
#include <string.h>

#include "auth.h"

static json_t *quotas(struct jmap_req *req, char state[64],
		      struct store_error *err)
{
	struct store_usage usage;
	struct auth_policy pol;
	memset(&pol, 0, sizeof(pol));
	if (store_user_usage(req->user, &usage, err) < 0)
		return NULL;
	if (req->j->auth != NULL &&
	    auth_user_policy(req->j->auth, req->who->user_id, &pol) < 0) {
		err->kind = STORE_ERR_TEMP;
		snprintf(err->msg, sizeof(err->msg), "The quota cannot be read");
		return NULL;
	}
	json_t *all = json_object();
	if (pol.quota_bytes != 0)
		json_object_set_new(
			all, "Qoctets",
			json_pack("{s:s,s:s,s:I,s:I,s:I,s:s,s:[s],s:s,s:s}", "id",
				  "Qoctets", "resourceType", "octets", "used",
				  (json_int_t)usage.bytes, "hardLimit",
				  (json_int_t)pol.quota_bytes, "warnLimit",
				  (json_int_t)(pol.quota_bytes / 10 * 9), "scope",
				  "account", "types", "Mail", "name",
				  "Storage", "description",
				  "Mail stored, in octets"));
	if (pol.quota_messages != 0)
		json_object_set_new(
			all, "Qcount",
			json_pack("{s:s,s:s,s:I,s:I,s:s,s:[s],s:s,s:s}", "id",
				  "Qcount", "resourceType", "count", "used",
				  (json_int_t)usage.messages, "hardLimit",
				  (json_int_t)pol.quota_messages, "scope",
				  "account", "types", "Mail", "name", "Messages",
				  "description", "Messages stored"));
	snprintf(state, 64, "q%llx-%llx-%llx-%llx",
		 (unsigned long long)usage.bytes,
		 (unsigned long long)usage.messages,
		 (unsigned long long)pol.quota_bytes,
		 (unsigned long long)pol.quota_messages);
	return all;
}

static json_t *quota_get(struct jmap_req *req, json_t *args)
{
	static const char *const props_known[] = {
		"id", "resourceType", "used", "hardLimit", "warnLimit",
		"softLimit", "scope", "name", "types", "description", NULL};
	json_t *e = jmap_account(req, args, false), *ids, *props;
	if (e != NULL || !jmap_arg_ids(args, "ids", &ids, &e) ||
	    !jmap_arg_props(args, "properties", props_known, NULL, &props, &e))
		return e;
	char state[64];
	struct store_error err;
	json_t *all = quotas(req, state, &err);
	if (all == NULL)
		return jmap_store_error(req, &err);
	json_t *list = json_array(), *nf = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(all, k, v) {
		bool want = ids == NULL;
		size_t i;
		json_t *x;
		json_array_foreach(ids, i, x) want |= strcmp(json_string_value(x), k) == 0;
		if (!want)
			continue;
		json_t *o = json_object();
		const char *p;
		json_t *y;
		json_object_foreach(v, p, y) if (jmap_want(props, p) ||
						 strcmp(p, "id") == 0)
			json_object_set(o, p, y);
		json_array_append_new(list, o);
	}
	size_t i;
	json_t *x;
	json_array_foreach(ids, i, x)
		if (json_object_get(all, json_string_value(x)) == NULL)
			json_array_append(nf, x);
	json_decref(all);
	jmap_reply(req, "Quota/get",
		   json_pack("{s:O,s:s,s:o,s:o}", "accountId",
			     json_object_get(args, "accountId"), "state", state,
			     "list", list, "notFound", nf));
	return NULL;
}

static json_t *quota_changes(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false);
	if (e != NULL)
		return e;
	const char *since = json_string_value(json_object_get(args, "sinceState"));
	if (since == NULL)
		return jmap_error("invalidArguments", "sinceState");
	char state[64];
	struct store_error err;
	json_t *all = quotas(req, state, &err);
	if (all == NULL)
		return jmap_store_error(req, &err);
	if (since[0] != 'q') {
		json_decref(all);
		return jmap_error("cannotCalculateChanges", NULL);
	}
	json_t *upd = json_array();
	if (strcmp(since, state) != 0) {
		const char *k;
		json_t *v;
		json_object_foreach(all, k, v) json_array_append_new(upd, json_string(k));
	}
	json_decref(all);
	jmap_reply(req, "Quota/changes",
		   json_pack("{s:O,s:s,s:s,s:b,s:[],s:o,s:[],s:n}", "accountId",
			     json_object_get(args, "accountId"), "oldState", since,
			     "newState", state, "hasMoreChanges", 0, "created",
			     "updated", upd, "destroyed", "updatedProperties"));
	return NULL;
}

static json_t *quota_query(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false);
	if (e != NULL)
		return e;
	char state[64];
	struct store_error err;
	json_t *all = quotas(req, state, &err);
	if (all == NULL)
		return jmap_store_error(req, &err);
	json_t *f = json_object_get(args, "filter");
	json_t *ids = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(all, k, v) {
		bool ok = true;
		const char *fk;
		json_t *fv;
		json_object_foreach(f, fk, fv) {
			if (strcmp(fk, "resourceType") == 0 || strcmp(fk, "scope") == 0 ||
			    strcmp(fk, "name") == 0)
				ok &= json_equal(fv, json_object_get(v, fk));
			else if (strcmp(fk, "type") == 0)
				ok &= json_is_string(fv) &&
				      strcmp(json_string_value(fv), "Mail") == 0;
			else {
				json_decref(all);
				json_decref(ids);
				return jmap_error("unsupportedFilter", "%s", fk);
			}
		}
		if (ok)
			json_array_append_new(ids, json_string(k));
	}
	json_decref(all);
	json_t *r = json_pack("{s:O,s:s,s:b}", "accountId",
			      json_object_get(args, "accountId"), "queryState",
			      state, "canCalculateChanges", 0);
	e = jmap_query_window(args, ids, 100, r);
	json_decref(ids);
	if (e != NULL) {
		json_decref(r);
		return e;
	}
	jmap_reply(req, "Quota/query", r);
	return NULL;
}

static json_t *quota_query_changes(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false);
	if (e != NULL)
		return e;
	return jmap_error("cannotCalculateChanges",
			  "query the quotas again: there are at most two");
}

const struct jmap_method jmap_quota_methods[] = {
	{"Quota/get", JMAP_C_QUOTA, quota_get},
	{"Quota/changes", JMAP_C_QUOTA, quota_changes},
	{"Quota/query", JMAP_C_QUOTA, quota_query},
	{"Quota/queryChanges", JMAP_C_QUOTA, quota_query_changes},
	{NULL, 0, NULL},
};
