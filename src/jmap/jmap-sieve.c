/*
 * JMAP for Sieve (RFC 9661, urn:ietf:params:jmap:sieve): SieveScript
 * get, changes, set (with onSuccessActivateScript and
 * onSuccessDeactivateScript), query and validate, over the same store
 * calls as ManageSieve (store.h "Sieve"), with the same compiler, limits
 * and quota (delivery_sieve_quota).
 *
 * Ids: a script's id is its store JMAP id ("Z<hex>", never reused); its
 * blobId names its content ("Z<user>-<hash>", jmap-blob.c reads it here):
 * a new content is a new blobId, as blobs are immutable. A script comes
 * from any blob of the account (an upload as a rule): the server's
 * blobId for it is then reported in created/updated.
 *
 * Offered when Sieve runs at delivery in this process (the same switch as
 * VacationResponse: jmap_set_vacation).
 */
#include "jmap-private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "buf.h"
#include "delivery-sieve.h"
#include "sieve.h"

#define SCRIPT_NAME_MAX 512    /* store-sieve.c's name rule */

void jmap_object_id(enum store_jmap_kind kind, int64_t n, char out[32]);
bool jmap_object_id_parse(enum store_jmap_kind kind, const char *s,
			  int64_t *n_r);

bool jmap_sieve_available(struct jmap *j)
{
	return jmap_vacation_available(j);
}

static void sieve_limits(struct sieve_limits *lim)
{
	if (!delivery_sieve_installed_limits(lim))
		sieve_limits_default(lim);
}

json_t *jmap_sieve_capability(struct jmap *j, int64_t user_id)
{
	struct sieve_limits lim;
	sieve_limits(&lim);
	struct auth_policy pol;
	if (j->auth == NULL || auth_user_policy(j->auth, user_id, &pol) < 0)
		auth_policy_defaults(&pol);
	json_t *ext = json_array();
	const char *p = SIEVE_EXTENSIONS;
	while (*p) {
		const char *sp = strchr(p, ' ');
		size_t n = sp ? (size_t)(sp - p) : strlen(p);
		json_array_append_new(ext, json_stringn(p, n));
		p += n;
		while (*p == ' ')
			p++;
	}
	json_t *c = json_pack("{s:s,s:I,s:I,s:I,s:o,s:n,s:n}", "implementation",
			      "Loft", "maxSizeScriptName",
			      (json_int_t)SCRIPT_NAME_MAX, "maxSizeScript",
			      (json_int_t)lim.max_script_size,
			      "maxNumberRedirects",
			      (json_int_t)lim.max_redirects, "sieveExtensions",
			      ext, "notificationMethods", "externalLists");
	json_object_set_new(c, "maxNumberScripts",
			    pol.sieve_max_scripts
				    ? json_integer(pol.sieve_max_scripts)
				    : json_null());
	return c;
}

/* ---- the account's scripts ----------------------------------------- */

struct sscript {
	char id[32];
	char *name;
	bool active;
	char *source;         /* with_source only */
	size_t len;
	char blob[32];        /* with_source only */
};

struct sscripts {
	struct sscript *v;
	size_t n;
};

static void sscripts_free(struct sscripts *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].name);
		free(s->v[i].source);
	}
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* The content's blob id: FNV-1a of the bytes, 63 bits. */
static void script_blob_id(int64_t user_id, const char *src, size_t len,
			   char out[32])
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)src[i]) * 1099511628211ULL;
	h &= INT64_MAX;
	store_objectid_format(out, 'Z', user_id, (int64_t)(h ? h : 1));
}

static int scripts_load(struct jmap_req *req, bool with_source,
			struct sscripts *s, struct store_error *err)
{
	memset(s, 0, sizeof(*s));
	struct store_sieve_script *l;
	size_t n;
	if (store_sieve_list(req->user, &l, &n, err) < 0)
		return -1;
	bool missing = false;
	for (size_t i = 0; i < n; i++)
		missing |= l[i].jmap_id == 0;
	if (missing) {
		/* scripts stored before ids existed get theirs now */
		store_sieve_list_free(l, n);
		if (store_sieve_ids(req->user, err) < 0 ||
		    store_sieve_list(req->user, &l, &n, err) < 0)
			return -1;
	}
	s->v = xcalloc(n ? n : 1, sizeof(*s->v));
	for (size_t i = 0; i < n; i++) {
		struct sscript *x = &s->v[s->n];
		jmap_object_id(STORE_JMAP_SIEVE, l[i].jmap_id, x->id);
		x->name = xstrdup(l[i].name);
		x->active = l[i].active;
		s->n++;
		if (!with_source)
			continue;
		if (store_sieve_get(req->user, x->name, &x->source, &x->len, NULL,
				    NULL, NULL, err) < 0) {
			if (err->kind == STORE_ERR_NOTFOUND) {
				/* deleted meanwhile */
				free(x->name);
				s->n--;
				continue;
			}
			store_sieve_list_free(l, n);
			sscripts_free(s);
			return -1;
		}
		script_blob_id(store_user_id(req->user), x->source, x->len,
			       x->blob);
	}
	store_sieve_list_free(l, n);
	return 0;
}

static struct sscript *by_id(struct sscripts *s, const char *id)
{
	for (size_t i = 0; id != NULL && i < s->n; i++)
		if (strcmp(s->v[i].id, id) == 0)
			return &s->v[i];
	return NULL;
}

static struct sscript *by_name(struct sscripts *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i].name, name) == 0)
			return &s->v[i];
	return NULL;
}

/* jmap-blob.c: a "Z" blob id, the content of one of the scripts. */
int jmap_sieve_blob_open(struct store_user *user, int64_t n,
			 struct jmap_blob *b, struct store_error *err)
{
	struct jmap_req req = {.user = user};
	struct sscripts s;
	if (scripts_load(&req, true, &s, err) < 0)
		return -1;
	char want[32];
	store_objectid_format(want, 'Z', store_user_id(user), n);
	int ret = jmap_fail(err, STORE_ERR_NOTFOUND, "No such blob");
	for (size_t i = 0; i < s.n; i++) {
		if (strcmp(s.v[i].blob, want) == 0) {
			buf_append(&b->decoded, s.v[i].source, s.v[i].len);
			b->data = b->decoded.data ? b->decoded.data : "";
			b->len = b->decoded.len;
			b->type = xstrdup("application/sieve");
			b->name = xasprintf("%s.sieve", s.v[i].name);
			ret = 0;
			break;
		}
	}
	sscripts_free(&s);
	return ret;
}

/* ---- SieveScript/get, /changes ----------------------------------- */

static const char *const script_props[] = {"id", "name", "isActive",
					   "blobId", NULL};

static json_t *script_json(const struct sscript *x, json_t *props)
{
	json_t *o = json_pack("{s:s}", "id", x->id);
	if (jmap_want(props, "name"))
		json_object_set_new(o, "name", json_string(x->name));
	if (jmap_want(props, "isActive"))
		json_object_set_new(o, "isActive", json_boolean(x->active));
	if (jmap_want(props, "blobId"))
		json_object_set_new(o, "blobId", json_string(x->blob));
	return o;
}

static json_t *script_get(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false), *ids, *props;
	if (e != NULL || !jmap_arg_ids(args, "ids", &ids, &e) ||
	    !jmap_arg_props(args, "properties", script_props, NULL, &props,
			    &e))
		return e;
	if (json_array_size(ids) > req->j->set.max_objects_in_get)
		return jmap_error("requestTooLarge", NULL);
	json_t *state = jmap_state_json(req, STORE_JMAP_SIEVE);
	struct sscripts s;
	struct store_error err;
	if (scripts_load(req, jmap_want(props, "blobId"), &s, &err) < 0) {
		json_decref(state);
		return jmap_store_error(req, &err);
	}
	json_t *list = json_array(), *nf = json_array();
	if (ids == NULL) {
		for (size_t i = 0; i < s.n; i++)
			json_array_append_new(list, script_json(&s.v[i], props));
	} else {
		size_t i;
		json_t *x;
		json_array_foreach(ids, i, x) {
			struct sscript *sc = by_id(&s, jmap_resolve_id(
						     req, json_string_value(x)));
			if (sc != NULL)
				json_array_append_new(list, script_json(sc, props));
			else
				json_array_append(nf, x);
		}
	}
	sscripts_free(&s);
	jmap_reply(req, "SieveScript/get",
		   json_pack("{s:O,s:o,s:o,s:o}", "accountId",
			     json_object_get(args, "accountId"), "state", state,
			     "list", list, "notFound", nf));
	return NULL;
}

static json_t *script_changes(struct jmap_req *req, json_t *args)
{
	return jmap_changes(req, args, STORE_JMAP_SIEVE, "SieveScript/changes");
}

/* ---- checking a script's content --------------------------------- */

/* The blob's bytes compiled: NULL, or a SetError (blobNotFound,
 * invalidSieve with every error "line L, column C: message" in its
 * description). The compiled script goes to *script_r (may be NULL). */
static json_t *blob_compile(struct jmap_req *req, const char *blob_id,
			    const char *name, struct buf *source,
			    struct sieve_script **script_r)
{
	struct jmap_blob b;
	struct store_error err;
	const char *id = jmap_resolve_id(req, blob_id);
	if (id == NULL || jmap_blob_open(req->j, req->user, id, &b, &err) < 0) {
		json_t *se = jmap_set_error("blobNotFound", NULL);
		json_object_set_new(se, "notFound", json_pack("[s]", blob_id));
		return se;
	}
	struct sieve_limits lim;
	sieve_limits(&lim);
	json_t *se = NULL;
	if (b.len > lim.max_script_size) {
		se = jmap_set_error("tooLarge", NULL);
		json_object_set_new(se, "maxSize",
				    json_integer((json_int_t)lim.max_script_size));
	} else {
		struct sieve_errors e;
		struct sieve_script *sc = sieve_compile(b.data, b.len, name, &lim,
							&e);
		if (sc == NULL) {
			struct buf t;
			buf_init(&t, 0);
			sieve_errors_format(&e, "", &t);
			while (t.len > 0 && t.data[t.len - 1] == '\n')
				t.len--;
			buf_append(&t, "", 0);
			se = jmap_set_error("invalidSieve", t.data ? t.data : "");
			buf_free(&t);
		}
		sieve_errors_free(&e);
		if (source != NULL)
			buf_append(source, b.data, b.len);
		if (script_r != NULL)
			*script_r = sc;
		else
			sieve_script_free(&sc);
	}
	jmap_blob_close(&b);
	return se;
}

static json_t *script_validate(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false);
	if (e != NULL)
		return e;
	json_t *blob = json_object_get(args, "blobId");
	if (!json_is_string(blob))
		return jmap_error("invalidArguments", "blobId must be an Id");
	json_t *se = blob_compile(req, json_string_value(blob), "validate",
				  NULL, NULL);
	jmap_reply(req, "SieveScript/validate",
		   json_pack("{s:O,s:o}", "accountId",
			     json_object_get(args, "accountId"), "error",
			     se ? se : json_null()));
	return NULL;
}

/* ---- SieveScript/set ---------------------------------------------- */

/* Stores source under name (replacing it): quota, then the put. NULL or
 * a SetError. */
static json_t *script_store(struct jmap_req *req, const char *name,
			    struct buf *source, struct sieve_script *sc)
{
	struct sieve_limits lim;
	sieve_limits(&lim);
	struct store_error err = {0};
	uint64_t max;
	switch (delivery_sieve_quota(req->j->auth, req->user,
				     req->who->user_id, name, source->len,
				     lim.max_script_size, &max, &err)) {
	case DSIEVE_QUOTA_OK:
		break;
	case DSIEVE_QUOTA_SIZE: {
		json_t *se = jmap_set_error("tooLarge", NULL);
		json_object_set_new(se, "maxSize", json_integer((json_int_t)max));
		return se;
	}
	case DSIEVE_QUOTA_STORAGE:
		return jmap_set_error("overQuota", "not enough room for the "
				      "script (sieve_max_storage)");
	case DSIEVE_QUOTA_SCRIPTS:
		return jmap_set_error("overQuota", "too many scripts "
				      "(sieve_max_scripts)");
	case DSIEVE_QUOTA_ERROR:
		return jmap_set_error_store(&err);
	}
	size_t ilen;
	const void *img = sieve_script_image(sc, &ilen);
	if (store_sieve_put(req->user, name, source->data ? source->data : "",
			    source->len, img, ilen, &err) < 0)
		return err.kind == STORE_ERR_INVALID
			       ? jmap_set_error_props("invalidProperties",
						      err.msg, "name")
			       : jmap_set_error_store(&err);
	return NULL;
}

static json_t *name_exists(const struct sscript *x)
{
	json_t *se = jmap_set_error("alreadyExists",
				    "a script of that name exists");
	json_object_set_new(se, "existingId", json_string(x->id));
	return se;
}

/* Checks the properties of a create or an update: NULL or a SetError. */
static json_t *props_check(json_t *obj, const struct sscript *cur)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		bool ok;
		if (strcmp(k, "name") == 0)
			ok = json_is_string(v) || (cur == NULL && json_is_null(v));
		else if (strcmp(k, "blobId") == 0)
			ok = json_is_string(v);
		else if (strcmp(k, "isActive") == 0)
			/* server-set: activation is onSuccessActivateScript */
			ok = json_is_boolean(v) &&
			     json_is_true(v) == (cur != NULL && cur->active);
		else if (strcmp(k, "id") == 0)
			ok = cur != NULL && json_is_string(v) &&
			     strcmp(json_string_value(v), cur->id) == 0;
		else
			ok = false;
		if (!ok)
			return jmap_set_error_props("invalidProperties", NULL, k);
		if (strcmp(k, "name") == 0 && json_is_string(v) &&
		    (json_string_length(v) == 0 ||
		     json_string_length(v) > SCRIPT_NAME_MAX))
			return jmap_set_error_props("invalidProperties",
						    "1 to 512 bytes", k);
	}
	if (cur == NULL && json_object_get(obj, "blobId") == NULL)
		return jmap_set_error_props("invalidProperties", "required",
					    "blobId");
	return NULL;
}

static json_t *script_create(struct jmap_req *req, struct sscripts *s,
			     const char *cid, json_t *obj, json_t *created)
{
	json_t *se = json_is_object(obj) ? props_check(obj, NULL)
			: jmap_set_error("invalidProperties", NULL);
	if (se != NULL)
		return se;
	const char *name = json_string_value(json_object_get(obj, "name"));
	char gen[64];
	if (name == NULL) {
		/* RFC 9661 2.1: a null name is the server's to choose */
		snprintf(gen, sizeof(gen), "script");
		for (unsigned i = 2; by_name(s, gen) != NULL; i++)
			snprintf(gen, sizeof(gen), "script-%u", i);
		name = gen;
	}
	struct sscript *same = by_name(s, name);
	if (same != NULL)
		return name_exists(same);
	struct buf src;
	buf_init(&src, 0);
	struct sieve_script *sc = NULL;
	se = blob_compile(req, json_string_value(json_object_get(obj, "blobId")),
			  name, &src, &sc);
	if (se == NULL)
		se = script_store(req, name, &src, sc);
	sieve_script_free(&sc);
	if (se == NULL) {
		struct store_error err;
		sscripts_free(s);
		if (scripts_load(req, true, s, &err) < 0) {
			se = jmap_set_error_store(&err);
		} else {
			struct sscript *x = by_name(s, name);
			if (x == NULL) {
				se = jmap_set_error("serverFail", "lost");
			} else {
				json_object_set_new(created, cid,
						    script_json(x, NULL));
				jmap_add_created(req, cid, x->id);
			}
		}
	}
	buf_free(&src);
	return se;
}

static json_t *script_update(struct jmap_req *req, struct sscripts *s,
			     const char *id, json_t *patch, json_t *updated)
{
	struct sscript *cur = by_id(s, id);
	if (cur == NULL)
		return jmap_set_error("notFound", NULL);
	json_t *se = json_is_object(patch) ? props_check(patch, cur)
			: jmap_set_error("invalidProperties", NULL);
	if (se != NULL)
		return se;
	const char *to = json_string_value(json_object_get(patch, "name"));
	if (to != NULL && strcmp(to, cur->name) != 0 && by_name(s, to) != NULL)
		return name_exists(by_name(s, to));
	char *name = xstrdup(cur->name);
	json_t *blob = json_object_get(patch, "blobId");
	json_t *changed = json_object();
	if (blob != NULL) {
		struct buf src;
		buf_init(&src, 0);
		struct sieve_script *sc = NULL;
		se = blob_compile(req, json_string_value(blob), name, &src, &sc);
		if (se == NULL)
			se = script_store(req, name, &src, sc);
		if (se == NULL) {
			char b[32];
			script_blob_id(req->who->user_id, src.data ? src.data : "",
				       src.len, b);
			if (strcmp(b, json_string_value(blob)) != 0)
				json_object_set_new(changed, "blobId",
						    json_string(b));
		}
		sieve_script_free(&sc);
		buf_free(&src);
	}
	if (se == NULL && to != NULL && strcmp(to, name) != 0) {
		struct store_error err;
		if (store_sieve_rename(req->user, name, to, &err) < 0)
			se = err.kind == STORE_ERR_EXISTS
				     ? jmap_set_error("alreadyExists", err.msg)
				: err.kind == STORE_ERR_INVALID
				     ? jmap_set_error_props("invalidProperties",
							    err.msg, "name")
				     : jmap_set_error_store(&err);
	}
	free(name);
	if (se == NULL) {
		struct store_error err;
		sscripts_free(s);
		if (scripts_load(req, true, s, &err) < 0)
			se = jmap_set_error_store(&err);
	}
	if (se != NULL) {
		json_decref(changed);
		return se;
	}
	json_object_set_new(updated, id, json_object_size(changed)
				? changed : (json_decref(changed), json_null()));
	return NULL;
}

static json_t *script_destroy(struct jmap_req *req, struct sscripts *s,
			      const char *id)
{
	struct sscript *cur = by_id(s, id);
	if (cur == NULL)
		return jmap_set_error("notFound", NULL);
	if (cur->active)
		return jmap_set_error("sieveIsActive", "the script is active: "
				      "deactivate it first "
				      "(onSuccessDeactivateScript)");
	struct store_error err;
	if (store_sieve_delete(req->user, cur->name, &err) < 0)
		return err.kind == STORE_ERR_EXISTS
			       ? jmap_set_error("sieveIsActive", NULL)
			       : jmap_set_error_store(&err);
	free(cur->name);
	free(cur->source);
	*cur = s->v[--s->n];
	return NULL;
}

/* Marks id's isActive in created or updated (RFC 9661 2.4). */
static void report_active(json_t *created, json_t *updated, const char *id,
			  bool active)
{
	const char *k;
	json_t *v;
	json_object_foreach(created, k, v) {
		if (strcmp(json_string_value(json_object_get(v, "id")), id) == 0) {
			json_object_set_new(v, "isActive", json_boolean(active));
			return;
		}
	}
	json_t *u = json_object_get(updated, id);
	if (!json_is_object(u)) {
		u = json_object();
		json_object_set_new(updated, id, u);
	}
	json_object_set_new(u, "isActive", json_boolean(active));
}

/* onSuccessActivateScript / onSuccessDeactivateScript, once everything
 * else succeeded. NULL, or a method error (store failure). */
static json_t *activation(struct jmap_req *req, struct sscripts *s,
			  json_t *activate, bool deactivate, json_t *created,
			  json_t *updated)
{
	struct sscript *want = NULL;
	if (json_is_string(activate)) {
		/* an unknown id is ignored (RFC 9661 2.4) */
		want = by_id(s, jmap_resolve_id(req, json_string_value(activate)));
		if (want == NULL)
			return NULL;
	} else if (!deactivate) {
		return NULL;
	}
	struct sscript *was = NULL;
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].active)
			was = &s->v[i];
	if (was == want)
		return NULL;
	struct store_error err;
	if (store_sieve_activate(req->user, want ? want->name : NULL, &err) < 0)
		return jmap_store_error(req, &err);
	if (was != NULL) {
		was->active = false;
		report_active(created, updated, was->id, false);
	}
	if (want != NULL) {
		want->active = true;
		report_active(created, updated, want->id, true);
	}
	return NULL;
}

static json_t *none_if_empty(json_t *o)
{
	if (json_object_size(o) > 0)
		return o;
	json_decref(o);
	return json_null();
}

static json_t *script_set(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, true);
	if (e != NULL)
		return e;
	json_t *create = json_object_get(args, "create");
	json_t *update = json_object_get(args, "update");
	json_t *destroy = json_object_get(args, "destroy");
	json_t *activate = json_object_get(args, "onSuccessActivateScript");
	bool deactivate;
	if ((create && !json_is_object(create) && !json_is_null(create)) ||
	    (update && !json_is_object(update) && !json_is_null(update)) ||
	    (destroy && !json_is_array(destroy) && !json_is_null(destroy)))
		return jmap_error("invalidArguments", "create, update, destroy");
	if (activate != NULL && !json_is_null(activate) &&
	    !json_is_string(activate))
		return jmap_error("invalidArguments",
				  "onSuccessActivateScript must be an Id");
	if (!jmap_arg_bool(args, "onSuccessDeactivateScript", false,
			   &deactivate, &e))
		return e;
	if (json_object_size(create) + json_object_size(update) +
		    json_array_size(destroy) >
	    req->j->set.max_objects_in_set)
		return jmap_error("requestTooLarge", NULL);
	json_t *old = jmap_state_json(req, STORE_JMAP_SIEVE);
	json_t *ifin = json_object_get(args, "ifInState");
	if (ifin != NULL && !json_is_null(ifin) && !json_equal(ifin, old)) {
		json_decref(old);
		return jmap_error("stateMismatch", NULL);
	}
	struct sscripts s;
	struct store_error err;
	if (scripts_load(req, true, &s, &err) < 0) {
		json_decref(old);
		return jmap_store_error(req, &err);
	}
	json_t *created = json_object(), *updated = json_object(),
	       *destroyed = json_array(), *nc = json_object(),
	       *nu = json_object(), *nd = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(create, k, v) {
		json_t *se = script_create(req, &s, k, v, created);
		if (se != NULL)
			json_object_set_new(nc, k, se);
	}
	json_object_foreach(update, k, v) {
		const char *id = jmap_resolve_id(req, k);
		json_t *se = id ? script_update(req, &s, id, v, updated)
				: jmap_set_error("notFound", NULL);
		if (se != NULL)
			json_object_set_new(nu, k, se);
	}
	size_t i;
	json_array_foreach(destroy, i, v) {
		const char *id = jmap_resolve_id(req, json_string_value(v));
		json_t *se = id ? script_destroy(req, &s, id)
				: jmap_set_error("notFound", NULL);
		if (se != NULL)
			json_object_set_new(nd, json_string_value(v) ?
					    json_string_value(v) : "", se);
		else
			json_array_append_new(destroyed, json_string(id));
	}
	e = NULL;
	if (json_object_size(nc) + json_object_size(nu) +
		    json_object_size(nd) == 0)
		e = activation(req, &s, activate, deactivate, created, updated);
	sscripts_free(&s);
	if (e != NULL) {
		json_decref(old);
		json_decref(created);
		json_decref(updated);
		json_decref(destroyed);
		json_decref(nc);
		json_decref(nu);
		json_decref(nd);
		return e;
	}
	json_t *r = json_pack("{s:O,s:o,s:o}", "accountId",
			      json_object_get(args, "accountId"), "oldState",
			      old, "newState",
			      jmap_state_json(req, STORE_JMAP_SIEVE));
	json_object_set_new(r, "created", none_if_empty(created));
	json_object_set_new(r, "updated", none_if_empty(updated));
	json_object_set_new(r, "destroyed", json_array_size(destroyed)
				? destroyed : (json_decref(destroyed), json_null()));
	json_object_set_new(r, "notCreated", none_if_empty(nc));
	json_object_set_new(r, "notUpdated", none_if_empty(nu));
	json_object_set_new(r, "notDestroyed", none_if_empty(nd));
	jmap_reply(req, "SieveScript/set", r);
	return NULL;
}

/* ---- SieveScript/query -------------------------------------------- */

/* 1 matches, 0 not, -1 unsupportedFilter. */
static int filter_match(json_t *f, const struct sscript *x, unsigned depth)
{
	if (!json_is_object(f) || depth > 16)
		return -1;
	json_t *op = json_object_get(f, "operator");
	if (op != NULL) {
		json_t *conds = json_object_get(f, "conditions");
		const char *o = json_string_value(op);
		if (o == NULL || !json_is_array(conds) || json_object_size(f) != 2)
			return -1;
		bool and = strcmp(o, "AND") == 0, or = strcmp(o, "OR") == 0,
		     not = strcmp(o, "NOT") == 0;
		if (!and && !or && !not)
			return -1;
		int any = 0, all = 1;
		size_t i;
		json_t *c;
		json_array_foreach(conds, i, c) {
			int m = filter_match(c, x, depth + 1);
			if (m < 0)
				return -1;
			any |= m;
			all &= m;
		}
		return and ? all : or ? any : !any;
	}
	const char *k;
	json_t *v;
	json_object_foreach(f, k, v) {
		if (strcmp(k, "name") == 0 && json_is_string(v)) {
			if (strcasestr(x->name, json_string_value(v)) == NULL)
				return 0;
		} else if (strcmp(k, "isActive") == 0 && json_is_boolean(v)) {
			if (json_is_true(v) != x->active)
				return 0;
		} else {
			return -1;
		}
	}
	return 1;
}

static json_t *sort_check(json_t *sort)
{
	if (sort == NULL || json_is_null(sort))
		return NULL;
	if (!json_is_array(sort))
		return jmap_error("invalidArguments", "sort");
	size_t i;
	json_t *c;
	json_array_foreach(sort, i, c) {
		const char *p = json_string_value(json_object_get(c, "property"));
		json_t *asc = json_object_get(c, "isAscending");
		if (p == NULL || (strcmp(p, "name") != 0 &&
				  strcmp(p, "isActive") != 0))
			return jmap_error("unsupportedSort", "%s",
					  p ? p : "property");
		if (asc != NULL && !json_is_boolean(asc))
			return jmap_error("invalidArguments", "isAscending");
	}
	return NULL;
}

static int sort_cmp(const struct sscript *a, const struct sscript *b,
		    json_t *sort)
{
	size_t i;
	json_t *c;
	json_array_foreach(sort, i, c) {
		const char *p = json_string_value(json_object_get(c, "property"));
		json_t *asc = json_object_get(c, "isAscending");
		int r = strcmp(p, "name") == 0 ? strcmp(a->name, b->name)
					      : (int)a->active - (int)b->active;
		if (r != 0)
			return asc == NULL || json_is_true(asc) ? r : -r;
	}
	return strcmp(a->name, b->name);
}

static json_t *script_query(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false);
	if (e != NULL)
		return e;
	json_t *filter = json_object_get(args, "filter");
	json_t *sort = json_object_get(args, "sort");
	if ((e = sort_check(sort)) != NULL)
		return e;
	json_t *state = jmap_state_json(req, STORE_JMAP_SIEVE);
	struct sscripts s;
	struct store_error err;
	if (scripts_load(req, false, &s, &err) < 0) {
		json_decref(state);
		return jmap_store_error(req, &err);
	}
	json_t *ids = json_array();
	struct sscript *keep = xcalloc(s.n ? s.n : 1, sizeof(*keep));
	size_t n = 0;
	for (size_t i = 0; i < s.n && e == NULL; i++) {
		int m = filter == NULL || json_is_null(filter)
				? 1 : filter_match(filter, &s.v[i], 0);
		if (m < 0)
			e = jmap_error("unsupportedFilter", NULL);
		else if (m)
			keep[n++] = s.v[i];
	}
	if (e == NULL && json_is_array(sort) && n > 1) {
		/* a sort over at most a few hundred scripts: insertion */
		for (size_t i = 1; i < n; i++) {
			struct sscript t = keep[i];
			size_t j = i;
			while (j > 0 && sort_cmp(&keep[j - 1], &t, sort) > 0) {
				keep[j] = keep[j - 1];
				j--;
			}
			keep[j] = t;
		}
	}
	for (size_t i = 0; i < n; i++)
		json_array_append_new(ids, json_string(keep[i].id));
	free(keep);
	sscripts_free(&s);
	if (e != NULL) {
		json_decref(state);
		json_decref(ids);
		return e;
	}
	json_t *r = json_pack("{s:O,s:o,s:b}", "accountId",
			      json_object_get(args, "accountId"), "queryState",
			      state, "canCalculateChanges", 0);
	e = jmap_query_window(args, ids, req->j->set.max_objects_in_get, r);
	json_decref(ids);
	if (e != NULL) {
		json_decref(r);
		return e;
	}
	jmap_reply(req, "SieveScript/query", r);
	return NULL;
}

const struct jmap_method jmap_sieve_methods[] = {
	{"SieveScript/get", JMAP_C_SIEVE, script_get},
	{"SieveScript/changes", JMAP_C_SIEVE, script_changes},
	{"SieveScript/set", JMAP_C_SIEVE, script_set},
	{"SieveScript/query", JMAP_C_SIEVE, script_query},
	{"SieveScript/validate", JMAP_C_SIEVE, script_validate},
	{NULL, 0, NULL},
};
