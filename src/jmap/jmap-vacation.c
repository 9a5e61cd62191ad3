/*
 * VacationResponse (RFC 8621 8): one object per account, "singleton",
 * kept as a stored object. It is advertised, and its methods answer,
 * only once Sieve runs the vacation replies (jmap_vacation_available):
 * until then a client would set a reply nobody sends.
 */
#include "jmap-private.h"

#include <stdlib.h>
#include <string.h>

json_t *jmap_objects_load(struct jmap_req *req, enum store_jmap_kind kind,
			  struct store_error *err);
int jmap_object_save(struct jmap_req *req, enum store_jmap_kind kind,
		     int64_t n, json_t *obj, int64_t *id_r,
		     struct store_error *err);

bool jmap_vacation_available(struct jmap *j)
{
	return j != NULL && j->vacation;
}

void jmap_set_vacation(struct jmap *j, bool available)
{
	if (j != NULL)
		j->vacation = available;
}

static json_t *vacation_current(struct jmap_req *req, struct store_error *err)
{
	json_t *all = jmap_objects_load(req, STORE_JMAP_VACATION, err);
	if (all == NULL)
		return NULL;
	json_t *o = json_object_get(all, "V1");
	json_t *r = o != NULL ? json_incref(o)
			      : json_pack("{s:b,s:n,s:n,s:n,s:n,s:n}",
					  "isEnabled", 0, "fromDate", "toDate",
					  "subject", "textBody", "htmlBody");
	json_decref(all);
	json_object_set_new(r, "id", json_string("singleton"));
	return r;
}

static json_t *vacation_get(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false), *ids;
	if (e != NULL || !jmap_arg_ids(args, "ids", &ids, &e))
		return e;
	struct store_error err;
	json_t *v = vacation_current(req, &err);
	if (v == NULL)
		return jmap_store_error(req, &err);
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
		json_array_append(list, v);
	json_decref(v);
	jmap_reply(req, "VacationResponse/get",
		   json_pack("{s:O,s:o,s:o,s:o}", "accountId",
			     json_object_get(args, "accountId"), "state",
			     jmap_state_json(req, STORE_JMAP_VACATION), "list",
			     list, "notFound", nf));
	return NULL;
}

static json_t *vacation_set(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, true);
	if (e != NULL)
		return e;
	json_t *old = jmap_state_json(req, STORE_JMAP_VACATION);
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
		struct store_error err;
		json_t *cur = strcmp(k, "singleton") == 0
				      ? vacation_current(req, &err) : NULL;
		json_t *se = NULL;
		if (cur == NULL) {
			se = jmap_set_error("notFound", NULL);
		} else {
			const char *p;
			json_t *x;
			json_object_foreach(v, p, x) {
				time_t t;
				bool ok = strcmp(p, "isEnabled") == 0
						  ? json_is_boolean(x)
					  : strcmp(p, "fromDate") == 0 ||
						    strcmp(p, "toDate") == 0
						  ? json_is_null(x) ||
							    jmap_utcdate_parse(json_string_value(x), &t)
					  : strcmp(p, "subject") == 0 ||
						    strcmp(p, "textBody") == 0 ||
						    strcmp(p, "htmlBody") == 0
						  ? json_is_null(x) || json_is_string(x)
						  : false;
				if (!ok && se == NULL)
					se = jmap_set_error_props("invalidProperties",
								  NULL, p);
			}
			if (se == NULL) {
				json_object_update(cur, v);
				if (jmap_object_save(req, STORE_JMAP_VACATION, 1,
						     cur, NULL, &err) < 0)
					se = jmap_set_error_store(&err);
			}
			json_decref(cur);
		}
		if (se != NULL)
			json_object_set_new(nu, k, se);
		else
			json_object_set_new(updated, k, json_null());
	}
	jmap_reply(req, "VacationResponse/set",
		   json_pack("{s:O,s:o,s:o,s:n,s:o,s:[],s:o,s:o,s:o}", "accountId",
			     json_object_get(args, "accountId"), "oldState", old,
			     "newState", jmap_state_json(req, STORE_JMAP_VACATION),
			     "created", "updated", updated, "destroyed",
			     "notCreated", nc, "notUpdated", nu, "notDestroyed",
			     nd));
	return NULL;
}

const struct jmap_method jmap_vacation_methods[] = {
	{"VacationResponse/get", JMAP_C_VACATION, vacation_get},
	{"VacationResponse/set", JMAP_C_VACATION, vacation_set},
	{NULL, 0, NULL},
};
