/*
 * The JMAP core (RFC 8620): settings, the session resource, and the API
 * request: parsing and validating the Request object (3.3), the limits of
 * the core capability, method calls in order with result references
 * (3.7) and creation ids, and every method- and request-level error. Also
 * the helpers the data types share: ids, states, dates, arguments, and
 * /changes (5.2) for every type.
 */
#include "jmap-private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "buf.h"
#include "config.h"
#include "log.h"

/* ---- settings ------------------------------------------------------ */

static const char *const jmap_keys[] = {
	"max_size_upload", "max_concurrent_upload", "max_size_request",
	"max_concurrent_requests", "max_calls_in_request",
	"max_objects_in_get", "max_objects_in_set", "upload_ttl",
	"push_private", NULL,
};

static void settings_defaults(struct jmap_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->max_size_upload = 50 * 1024 * 1024;
	s->max_concurrent_upload = 4;
	s->max_size_request = 10 * 1024 * 1024;
	s->max_concurrent_requests = 4;
	s->max_calls_in_request = 64;
	s->max_objects_in_get = 1000;
	s->max_objects_in_set = 1000;
	s->upload_ttl = 3600;
	s->max_message_size = 50 * 1024 * 1024;
}

int jmap_settings_from_config(const struct config *cfg,
			      struct jmap_settings *set, struct buf *errors)
{
	settings_defaults(set);
	int ret = 0;
	const char *mms = config_get(cfg, "limits", "max_message_size");
	uint64_t v;
	if (mms != NULL && config_parse_size(mms, &v) == 0)
		set->max_message_size = v;
	/* checked by the IMAP server's settings ([sharing] is theirs) */
	const char *cd = config_get(cfg, "sharing", "cross_domain");
	if (cd != NULL && config_parse_bool(cd, &set->cross_domain) < 0)
		set->cross_domain = false;
	for (size_t i = 0; i < cfg->count; i++) {
		const struct config_entry *e = &cfg->entries[i];
		if (strcmp(e->section, "jmap") != 0)
			continue;
		bool known = false;
		for (const char *const *k = jmap_keys; *k; k++)
			known |= strcmp(*k, e->key) == 0;
		bool ok = known;
		bool b;
		const char *key = e->key;
		if (!known) {
			buf_printf(errors, "%s:%d: unknown key '%s' in [jmap]\n",
				   cfg->path, e->line, key);
			ret = -1;
			continue;
		}
		if (strcmp(key, "max_size_upload") == 0 ||
		    strcmp(key, "max_size_request") == 0) {
			ok = config_parse_size(e->value, &v) == 0 && v >= 1024;
			if (ok && key[9] == 'u')
				set->max_size_upload = v;
			else if (ok)
				set->max_size_request = v;
		} else if (strcmp(key, "upload_ttl") == 0) {
			ok = config_parse_duration(e->value, &v) == 0 &&
			     v >= 3600 && v <= 30 * 86400;
			if (ok)
				set->upload_ttl = (unsigned)v;
		} else if (strcmp(key, "push_private") == 0) {
			ok = config_parse_bool(e->value, &b) == 0;
			if (ok)
				set->push_private = b;
		} else {
			ok = config_parse_uint(e->value, 100000, &v) == 0 && v > 0;
			unsigned *dst =
				strcmp(key, "max_concurrent_upload") == 0
					? &set->max_concurrent_upload
				: strcmp(key, "max_concurrent_requests") == 0
					? &set->max_concurrent_requests
				: strcmp(key, "max_calls_in_request") == 0
					? &set->max_calls_in_request
				: strcmp(key, "max_objects_in_get") == 0
					? &set->max_objects_in_get
					: &set->max_objects_in_set;
			if (ok)
				*dst = (unsigned)v;
		}
		if (!ok) {
			buf_printf(errors, "%s:%d: invalid value for %s: %s%s\n",
				   cfg->path, e->line, key, e->value,
				   strcmp(key, "upload_ttl") == 0
					   ? " (1h to 30d)" : "");
			ret = -1;
		}
	}
	return ret;
}

struct jmap *jmap_create(const struct config *cfg, struct store *store,
			 struct auth *auth, struct buf *errors)
{
	struct jmap_settings set;
	if (jmap_settings_from_config(cfg, &set, errors) < 0)
		return NULL;
	struct jmap *j = xcalloc(1, sizeof(*j));
	j->set = set;
	j->store = store;
	j->auth = auth;
	pthread_mutex_init(&j->mu, NULL);
	if (store != NULL)
		j->push = jmap_push_create(j);
	return j;
}

void jmap_destroy(struct jmap **jp)
{
	struct jmap *j = *jp;
	if (j == NULL)
		return;
	*jp = NULL;
	jmap_push_destroy(&j->push);
	pthread_mutex_destroy(&j->mu);
	free(j->slots);
	free(j);
}

void jmap_set_queue(struct jmap *j, struct queue *queue)
{
	if (j != NULL)
		j->queue = queue;
}

/* ---- per-user concurrency ------------------------------------------ */

/* Takes one of the caller's slots of a kind (0 requests, 1 uploads);
 * false when all are taken. */
bool jmap_slot_take(struct jmap *j, int64_t user_id, int kind)
{
	unsigned max = kind == 0 ? j->set.max_concurrent_requests
				 : j->set.max_concurrent_upload;
	pthread_mutex_lock(&j->mu);
	struct jmap_user_slot *s = NULL, *freeslot = NULL;
	for (size_t i = 0; i < j->slot_count; i++) {
		if (j->slots[i].user_id == user_id)
			s = &j->slots[i];
		else if (j->slots[i].requests == 0 && j->slots[i].uploads == 0)
			freeslot = &j->slots[i];
	}
	if (s == NULL) {
		if (freeslot == NULL) {
			j->slots = xrealloc(j->slots, (j->slot_count + 1) *
							      sizeof(*j->slots));
			freeslot = &j->slots[j->slot_count++];
		}
		s = freeslot;
		memset(s, 0, sizeof(*s));
		s->user_id = user_id;
	}
	unsigned *n = kind == 0 ? &s->requests : &s->uploads;
	bool ok = *n < max;
	if (ok)
		(*n)++;
	pthread_mutex_unlock(&j->mu);
	return ok;
}

void jmap_slot_give(struct jmap *j, int64_t user_id, int kind)
{
	pthread_mutex_lock(&j->mu);
	for (size_t i = 0; i < j->slot_count; i++) {
		if (j->slots[i].user_id != user_id)
			continue;
		unsigned *n = kind == 0 ? &j->slots[i].requests
					: &j->slots[i].uploads;
		if (*n > 0)
			(*n)--;
	}
	pthread_mutex_unlock(&j->mu);
}

/* ---- errors and replies -------------------------------------------- */

json_t *jmap_error(const char *type, const char *fmt, ...)
{
	json_t *e = json_pack("{s:s}", "type", type);
	if (fmt != NULL) {
		char msg[512];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		json_object_set_new(e, "description", json_string(msg));
	}
	return e;
}

json_t *jmap_store_error(struct jmap_req *req, const struct store_error *err)
{
	log_warn("jmap", NULL, "user %lld: %s: %s", (long long)req->who->user_id,
		 req->call_id ? req->call_id : "", err->msg);
	if (err->kind == STORE_ERR_TEMP || err->kind == STORE_ERR_UNAVAILABLE)
		return jmap_error("serverUnavailable", "%s", err->msg);
	return jmap_error("serverFail", "%s", err->msg);
}

json_t *jmap_set_error(const char *type, const char *description)
{
	json_t *e = json_pack("{s:s}", "type", type);
	if (description != NULL)
		json_object_set_new(e, "description", json_string(description));
	return e;
}

json_t *jmap_set_error_props(const char *type, const char *description,
			     const char *prop)
{
	json_t *e = jmap_set_error(type, description);
	json_object_set_new(e, "properties", json_pack("[s]", prop));
	return e;
}

json_t *jmap_set_error_store(const struct store_error *err)
{
	switch (err->kind) {
	case STORE_ERR_QUOTA:
		return jmap_set_error("overQuota", err->msg);
	case STORE_ERR_LIMIT:
		return jmap_set_error("tooLarge", err->msg);
	case STORE_ERR_NOTFOUND:
		return jmap_set_error("notFound", err->msg);
	case STORE_ERR_EXISTS:
		return jmap_set_error("alreadyExists", err->msg);
	case STORE_ERR_PERM:
	case STORE_ERR_NOPERM:
		return jmap_set_error("forbidden", err->msg);
	case STORE_ERR_INVALID:
		return jmap_set_error("invalidProperties", err->msg);
	case STORE_ERR_TEMP:
	case STORE_ERR_UNAVAILABLE:
		return jmap_set_error("serverUnavailable", err->msg);
	default:
		return jmap_set_error("serverFail", err->msg);
	}
}

void jmap_reply(struct jmap_req *req, const char *name, json_t *args)
{
	json_array_append_new(req->responses,
			      json_pack("[s,o,s]", name, args, req->call_id));
}

/* ---- accounts ------------------------------------------------------- */

void jmap_account_id(int64_t user_id, char out[32])
{
	snprintf(out, 32, "A%llx", (unsigned long long)user_id);
}

bool jmap_account_parse(const char *s, int64_t *id_r)
{
	if (s == NULL || s[0] != 'A' || s[1] == '\0' || s[1] == '0' ||
	    strlen(s) > 17)
		return false;
	char *end;
	unsigned long long v = strtoull(s + 1, &end, 16);
	if (*end != '\0' || v == 0 || v > INT64_MAX)
		return false;
	*id_r = (int64_t)v;
	return true;
}

/* Rights that change something: an account where the caller holds none
 * of them on any mailbox is read-only (RFC 8620 2 isReadOnly). */
#define WRITE_RIGHTS                                                     \
	(STORE_RIGHT_SEEN | STORE_RIGHT_WRITE | STORE_RIGHT_INSERT |     \
	 STORE_RIGHT_CREATE | STORE_RIGHT_DELETE | STORE_RIGHT_DELETED |  \
	 STORE_RIGHT_EXPUNGE)

int jmap_account_open(struct jmap *j, const struct jmap_caller *who,
		      int64_t owner_id, struct store_user **user_r,
		      bool *read_only_r, char *name_r, size_t name_size)
{
	struct store_error err;
	*user_r = NULL;
	if (read_only_r != NULL)
		*read_only_r = false;
	if (j->store == NULL)
		return -1;
	if (owner_id == who->user_id) {
		if (name_r != NULL)
			snprintf(name_r, name_size, "%s", who->address);
		return store_user_open(j->store, owner_id, user_r, &err);
	}
	/* another account: a viewer's handle (the IMAP side's, with the
	 * same rights checks in the store) showing at least one mailbox */
	struct auth_user owner;
	if (j->auth == NULL || auth_lookup_id(j->auth, owner_id, &owner) != 1 ||
	    owner.disabled ||
	    auth_viewer_open(j->auth, j->store, who->user_id, who->address,
			     owner.id, owner.address, j->set.cross_domain,
			     user_r, &err) < 0) {
		*user_r = NULL;
		return -1;
	}
	struct store_jmap_mailbox *list;
	size_t n;
	if (store_jmap_mailboxes(*user_r, &list, &n, &err) < 0 || n == 0) {
		if (err.kind == STORE_ERR_NONE)
			store_jmap_mailboxes_free(list, n);
		store_user_unref(user_r);
		return -1;
	}
	unsigned any = 0;
	for (size_t i = 0; i < n; i++)
		any |= list[i].rights;
	store_jmap_mailboxes_free(list, n);
	if (read_only_r != NULL)
		*read_only_r = (any & WRITE_RIGHTS) == 0;
	if (name_r != NULL)
		snprintf(name_r, name_size, "%s", owner.address);
	return 0;
}

int jmap_shared_accounts(struct jmap *j, const struct jmap_caller *who,
			 int64_t **ids_r, size_t *count_r)
{
	*ids_r = NULL;
	*count_r = 0;
	if (j->auth == NULL || j->store == NULL)
		return 0;
	/* the reverse index names every owner who granted the caller (or a
	 * group of theirs, anyone, authenticated) something: a superset,
	 * each checked when opened */
	int64_t *ids;
	size_t n;
	if (auth_acl_owners(j->auth, who->user_id, &ids, &n) < 0)
		return -1;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (ids[i] != who->user_id)
			ids[k++] = ids[i];
	*ids_r = ids;
	*count_r = k;
	return 0;
}

json_t *jmap_account_own(struct jmap_req *req)
{
	if (req->user != NULL && req->account == req->who->user_id)
		return NULL;
	store_user_unref(&req->user);
	req->account = 0;
	struct store_error err;
	if (req->j->store == NULL)
		return jmap_error("serverFail", NULL);
	if (store_user_open(req->j->store, req->who->user_id, &req->user,
			    &err) < 0) {
		req->user = NULL;
		return jmap_store_error(req, &err);
	}
	req->account = req->who->user_id;
	req->read_only = false;
	return NULL;
}

json_t *jmap_account(struct jmap_req *req, json_t *args, bool write)
{
	json_t *v = json_object_get(args, "accountId");
	/* RFC 8620 5.1: accountId defaults to nothing; clients send it */
	if (v == NULL || json_is_null(v))
		return jmap_error("invalidArguments", "accountId is required");
	if (!json_is_string(v))
		return jmap_error("invalidArguments", "accountId is not a string");
	int64_t id;
	if (!jmap_account_parse(json_string_value(v), &id))
		return jmap_error("accountNotFound", NULL);
	bool own = id == req->who->user_id;
	if (req->user == NULL || req->account != id) {
		store_user_unref(&req->user);
		req->account = 0;
		if (req->j->store == NULL)
			return jmap_error("serverFail", "no store");
		if (own) {
			/* the store away (scale-out failover): serverUnavailable */
			struct store_error err;
			req->read_only = false;
			if (store_user_open(req->j->store, id, &req->user,
					    &err) < 0) {
				req->user = NULL;
				return jmap_store_error(req, &err);
			}
		} else if (jmap_account_open(req->j, req->who, id, &req->user,
					     &req->read_only, NULL, 0) < 0) {
			return jmap_error("accountNotFound", NULL);
		}
		req->account = id;
		if (own)
			jmap_push_user_seen(req);
	}
	/* another account (shared mailboxes): its mail only (RFC 8620
	 * 3.6.2), and nothing changed where no right allows it */
	if (!own && (req->method == NULL || req->method->cap != JMAP_C_MAIL))
		return jmap_error("accountNotSupportedByMethod", NULL);
	if (!own && write && req->read_only)
		return jmap_error("accountReadOnly", NULL);
	return NULL;
}

/* ---- filters ---------------------------------------------------------- */

static int filter_eval(json_t *f, int depth, jmap_cond_fn *cond, void *ctx)
{
	if (!json_is_object(f) || depth > 50)
		return -1;
	json_t *op = json_object_get(f, "operator");
	if (op == NULL)
		return cond(ctx, f);
	json_t *conds = json_object_get(f, "conditions");
	const char *o = json_string_value(op);
	if (o == NULL || !json_is_array(conds) || json_object_size(f) != 2)
		return -1;
	bool and = strcmp(o, "AND") == 0, or = strcmp(o, "OR") == 0,
	     not = strcmp(o, "NOT") == 0;
	if (!and && !or && !not)
		return -1;
	size_t i;
	json_t *c;
	bool any = false, all = true;
	json_array_foreach(conds, i, c) {
		int r = filter_eval(c, depth + 1, cond, ctx);
		if (r < 0)
			return -1;
		any |= r;
		all &= r;
	}
	return and ? all : or ? any : !any;
}

int jmap_filter_eval(json_t *f, jmap_cond_fn *cond, void *ctx)
{
	return filter_eval(f, 0, cond, ctx);
}

/* ---- ids ------------------------------------------------------------ */

bool jmap_id_valid(const char *s)
{
	size_t n = 0;
	if (s == NULL)
		return false;
	for (; s[n] != '\0'; n++) {
		char c = s[n];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return n >= 1 && n <= 255;
}

const char *jmap_resolve_id(struct jmap_req *req, const char *id)
{
	if (id == NULL || id[0] != '#')
		return id;
	json_t *v = json_object_get(req->created_ids, id + 1);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

void jmap_add_created(struct jmap_req *req, const char *creation_id,
		      const char *id)
{
	json_object_set_new(req->created_ids, creation_id, json_string(id));
}

/* ---- states --------------------------------------------------------- */

void jmap_state_format(const struct store_jmap_cursor *c, char out[48])
{
	int n;
	if (c->id != 0)
		n = snprintf(out, 48, "%llu.%lld", (unsigned long long)c->modseq,
			     (long long)c->id);
	else
		n = snprintf(out, 48, "%llu", (unsigned long long)c->modseq);
	/* another account's: the rights it was taken under */
	if (c->scope != 0 && n > 0 && n < 38)
		snprintf(out + n, (size_t)(48 - n), "r%x", (unsigned)c->scope);
}

static bool digits(const char *s, size_t len, uint64_t *v_r)
{
	if (len == 0 || len > 19)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*v_r = v;
	return true;
}

bool jmap_state_parse(const char *s, struct store_jmap_cursor *c_r)
{
	if (s == NULL)
		return false;
	/* "<modseq>[.<id>][r<scope hex>]" */
	const char *r = strchr(s, 'r');
	size_t len = r ? (size_t)(r - s) : strlen(s);
	uint64_t scope = 0;
	if (r != NULL) {
		char *end;
		if (r[1] == '\0' || r[1] == '0' || strlen(r + 1) > 8)
			return false;
		scope = strtoull(r + 1, &end, 16);
		if (*end != '\0' || scope == 0)
			return false;
	}
	const char *dot = memchr(s, '.', len);
	uint64_t m, id = 0;
	if (!digits(s, dot ? (size_t)(dot - s) : len, &m))
		return false;
	if (dot != NULL && (!digits(dot + 1, len - (size_t)(dot + 1 - s), &id) ||
			    id == 0 || id > INT64_MAX))
		return false;
	c_r->modseq = m;
	c_r->id = (int64_t)id;
	c_r->scope = (uint32_t)scope;
	return true;
}

json_t *jmap_state_json(struct jmap_req *req, enum store_jmap_kind kind)
{
	struct store_jmap_cursor s[STORE_JMAP_KINDS];
	struct store_error err;
	if (store_jmap_states(req->user, s, &err) < 0)
		return NULL;
	char buf[48];
	jmap_state_format(&s[kind], buf);
	return json_string(buf);
}

/* ---- dates ---------------------------------------------------------- */

void jmap_utcdate(time_t t, char out[32])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void jmap_date_offset(time_t t, int offset_min, char out[40])
{
	time_t local = t + (time_t)offset_min * 60;
	struct tm tm;
	gmtime_r(&local, &tm);
	char base[32];
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	if (offset_min == 0) {
		snprintf(out, 40, "%sZ", base);
		return;
	}
	unsigned a = (unsigned)(offset_min < 0 ? -offset_min : offset_min) % 1440;
	snprintf(out, 40, "%.20s%c%02u:%02u", base, offset_min < 0 ? '-' : '+',
		 a / 60, a % 60);
}

/* RFC 3339 date-time: a UTCDate must end in Z (RFC 8620 1.4), but a
 * Date with an offset is accepted where the RFC allows it; fractions of
 * seconds are read and dropped. */
bool jmap_utcdate_parse(const char *s, time_t *t_r)
{
	if (s == NULL)
		return false;
	int y, mo, d, h, mi, sec, n = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec,
		   &n) != 6 || n != 19)
		return false;
	const char *p = s + 19;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	int off = 0;
	if (*p == 'Z' && p[1] == '\0') {
		off = 0;
	} else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
		int oh, om;
		if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2 || oh > 23 || om > 59)
			return false;
		off = (oh * 60 + om) * (*p == '-' ? -1 : 1);
	} else {
		return false;
	}
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60 || y < 1970)
		return false;
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	*t_r = t - (time_t)off * 60;
	return true;
}

/* ---- arguments ------------------------------------------------------ */

static bool bad_arg(json_t **err_r, const char *name, const char *why)
{
	*err_r = jmap_error("invalidArguments", "%s %s", name, why);
	return false;
}

bool jmap_arg_uint(json_t *args, const char *name, uint64_t def,
		   uint64_t *v_r, json_t **err_r)
{
	json_t *v = json_object_get(args, name);
	if (v == NULL || json_is_null(v)) {
		*v_r = def;
		return true;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > 9007199254740991LL)
		return bad_arg(err_r, name, "must be an UnsignedInt");
	*v_r = (uint64_t)json_integer_value(v);
	return true;
}

bool jmap_arg_int(json_t *args, const char *name, int64_t def, int64_t *v_r,
		  json_t **err_r)
{
	json_t *v = json_object_get(args, name);
	if (v == NULL || json_is_null(v)) {
		*v_r = def;
		return true;
	}
	if (!json_is_integer(v) ||
	    json_integer_value(v) > 9007199254740991LL ||
	    json_integer_value(v) < -9007199254740991LL)
		return bad_arg(err_r, name, "must be an Int");
	*v_r = json_integer_value(v);
	return true;
}

bool jmap_arg_bool(json_t *args, const char *name, bool def, bool *v_r,
		   json_t **err_r)
{
	json_t *v = json_object_get(args, name);
	if (v == NULL || json_is_null(v)) {
		*v_r = def;
		return true;
	}
	if (!json_is_boolean(v))
		return bad_arg(err_r, name, "must be a Boolean");
	*v_r = json_is_true(v);
	return true;
}

bool jmap_arg_ids(json_t *args, const char *name, json_t **ids_r,
		  json_t **err_r)
{
	json_t *v = json_object_get(args, name);
	*ids_r = NULL;
	if (v == NULL || json_is_null(v))
		return true;
	if (!json_is_array(v))
		return bad_arg(err_r, name, "must be null or an array of ids");
	size_t i;
	json_t *x;
	json_array_foreach(v, i, x) {
		const char *s = json_string_value(x);
		if (s == NULL || !jmap_id_valid(s[0] == '#' ? s + 1 : s))
			return bad_arg(err_r, name, "holds an invalid id");
	}
	*ids_r = v;
	return true;
}

bool jmap_arg_props(json_t *args, const char *name,
		    const char *const *known,
		    bool (*extra)(const char *prop), json_t **props_r,
		    json_t **err_r)
{
	json_t *v = json_object_get(args, name);
	*props_r = NULL;
	if (v == NULL || json_is_null(v))
		return true;
	if (!json_is_array(v))
		return bad_arg(err_r, name, "must be null or an array");
	size_t i;
	json_t *x;
	json_array_foreach(v, i, x) {
		const char *s = json_string_value(x);
		bool ok = s != NULL && extra != NULL && extra(s);
		for (const char *const *k = known; s != NULL && !ok && *k; k++)
			ok = strcmp(*k, s) == 0;
		if (!ok) {
			*err_r = jmap_error("invalidArguments",
					    "unknown property in %s: %s", name,
					    s ? s : "(not a string)");
			return false;
		}
	}
	*props_r = v;
	return true;
}

bool jmap_want(json_t *props, const char *p)
{
	if (props == NULL)
		return true;
	size_t i;
	json_t *x;
	json_array_foreach(props, i, x) {
		if (strcmp(json_string_value(x), p) == 0)
			return true;
	}
	return false;
}

/* ---- /changes ------------------------------------------------------- */

static void id_of(struct jmap_req *req, enum store_jmap_kind kind,
		  const struct store_jmap_change *c, char out[32])
{
	if (kind == STORE_JMAP_MAILBOX)
		snprintf(out, 32, "%s", c->objectid);
	else if (kind == STORE_JMAP_EMAIL)
		jmap_email_id(req, c->id, out);
	else if (kind == STORE_JMAP_THREAD)
		jmap_thread_id(req, c->id, out);
	else
		snprintf(out, 32, "%c%llx", "METISVPWZ"[kind],
			 (unsigned long long)c->id);
}

static json_t *id_list(struct jmap_req *req, enum store_jmap_kind kind,
		       const struct store_jmap_change *v, size_t n)
{
	json_t *a = json_array();
	char id[32];
	for (size_t i = 0; i < n; i++) {
		id_of(req, kind, &v[i], id);
		json_array_append_new(a, json_string(id));
	}
	return a;
}

json_t *jmap_changes(struct jmap_req *req, json_t *args,
		     enum store_jmap_kind kind, const char *name)
{
	json_t *e = jmap_account(req, args, false);
	if (e != NULL)
		return e;
	json_t *since = json_object_get(args, "sinceState");
	uint64_t max;
	if (!json_is_string(since))
		return jmap_error("invalidArguments",
				  "sinceState must be a string");
	if (!jmap_arg_uint(args, "maxChanges", 0, &max, &e))
		return e;
	if (json_object_get(args, "maxChanges") != NULL &&
	    !json_is_null(json_object_get(args, "maxChanges")) && max == 0)
		return jmap_error("invalidArguments",
				  "maxChanges must be positive");
	struct store_jmap_cursor c;
	if (!jmap_state_parse(json_string_value(since), &c))
		return jmap_error("cannotCalculateChanges",
				  "not a state of this server");
	struct store_jmap_changes ch;
	struct store_error err;
	if (store_jmap_changes(req->user, kind, &c, (size_t)max, &ch, &err) < 0)
		return jmap_store_error(req, &err);
	if (ch.too_old) {
		store_jmap_changes_free(&ch);
		return jmap_error("cannotCalculateChanges",
				  "the state is older than the change logs"
				  " keep (%d days)", STORE_JMAP_LOG_DAYS);
	}
	char state[48];
	jmap_state_format(&ch.new_state, state);
	json_t *r = json_pack("{s:O,s:s,s:s,s:b,s:o,s:o,s:o}", "accountId",
			      json_object_get(args, "accountId"), "oldState",
			      json_string_value(since), "newState", state,
			      "hasMoreChanges", ch.more, "created",
			      id_list(req, kind, ch.created, ch.created_count),
			      "updated",
			      id_list(req, kind, ch.updated, ch.updated_count),
			      "destroyed",
			      id_list(req, kind, ch.destroyed,
				      ch.destroyed_count));
	if (kind == STORE_JMAP_MAILBOX)
		json_object_set_new(
			r, "updatedProperties",
			ch.counts_only
				? json_pack("[s,s,s,s]", "totalEmails",
					    "unreadEmails", "totalThreads",
					    "unreadThreads")
				: json_null());
	store_jmap_changes_free(&ch);
	jmap_reply(req, name, r);
	return NULL;
}

/* ---- the request ---------------------------------------------------- */

static const struct {
	const char *uri;
	unsigned bit;
} caps[] = {
	{JMAP_CAP_CORE, JMAP_C_CORE},
	{JMAP_CAP_MAIL, JMAP_C_MAIL},
	{JMAP_CAP_SUBMISSION, JMAP_C_SUBMISSION},
	{JMAP_CAP_VACATION, JMAP_C_VACATION},
	{JMAP_CAP_QUOTA, JMAP_C_QUOTA},
	{JMAP_CAP_LOFT, JMAP_C_LOFT},
	{JMAP_CAP_SIEVE, JMAP_C_SIEVE},
	{JMAP_CAP_PRINCIPALS, JMAP_C_PRINCIPALS},
};

static json_t *core_echo(struct jmap_req *req, json_t *args)
{
	jmap_reply(req, "Core/echo", json_incref(args));
	return NULL;
}

static const struct jmap_method core_methods[] = {
	{"Core/echo", JMAP_C_CORE, core_echo},
	{NULL, 0, NULL},
};

static const struct jmap_method *const method_tables[] = {
	core_methods, jmap_mailbox_methods, jmap_email_methods,
	jmap_thread_methods, jmap_identity_methods, jmap_submission_methods,
	jmap_vacation_methods, jmap_quota_methods, jmap_blob_methods,
	jmap_push_methods, jmap_loft_methods, jmap_sieve_methods,
	jmap_share_methods, jmap_deleted_methods,
};

static const struct jmap_method *method_find(const char *name)
{
	for (size_t t = 0; t < sizeof(method_tables) / sizeof(*method_tables);
	     t++)
		for (const struct jmap_method *m = method_tables[t]; m->name; m++)
			if (strcmp(m->name, name) == 0)
				return m;
	return NULL;
}

static unsigned problem(struct buf *out, const char *type,
			const char *limit, const char *detail)
{
	json_t *p = json_pack("{s:s,s:i,s:s}", "type", type, "status", 400,
			      "detail", detail);
	if (limit != NULL)
		json_object_set_new(p, "limit", json_string(limit));
	char *s = json_dumps(p, JSON_COMPACT);
	buf_append_str(out, s);
	free(s);
	json_decref(p);
	return 400;
}

/* RFC 8620 3.7: the value a result reference points at, or NULL. A "*"
 * in the path maps over an array, flattening arrays it yields. */
static json_t *pointer_eval(json_t *v, const char *path)
{
	if (*path == '\0')
		return json_incref(v);
	if (*path != '/')
		return NULL;
	const char *tok = path + 1, *end = strchr(tok, '/');
	size_t len = end ? (size_t)(end - tok) : strlen(tok);
	const char *rest = tok + len;
	if (len == 1 && tok[0] == '*') {
		if (!json_is_array(v))
			return NULL;
		json_t *r = json_array();
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) {
			json_t *y = pointer_eval(x, rest);
			if (y == NULL) {
				json_decref(r);
				return NULL;
			}
			if (json_is_array(y))
				json_array_extend(r, y);
			else
				json_array_append(r, y);
			json_decref(y);
		}
		return r;
	}
	struct buf key;
	buf_init(&key, 0);
	json_t *next = NULL;
	if (jmap_pointer_token(tok, len, &key)) {
		buf_append(&key, "", 0);
		if (json_is_object(v)) {
			next = json_object_get(v, key.data);
		} else if (json_is_array(v)) {
			uint64_t idx;
			if (digits(key.data, key.len - 1, &idx) &&
			    (key.len == 2 || key.data[0] != '0'))
				next = json_array_get(v, (size_t)idx);
		}
	}
	buf_free(&key);
	return next != NULL ? pointer_eval(next, rest) : NULL;
}

/* Replaces every "#name" argument by the value it refers to. */
static json_t *resolve_refs(struct jmap_req *req, json_t *args)
{
	const char *k;
	json_t *v;
	json_t *refs = json_array();
	json_object_foreach(args, k, v) {
		if (k[0] == '#')
			json_array_append_new(refs, json_string(k));
	}
	json_t *err = NULL;
	size_t i;
	json_t *x;
	json_array_foreach(refs, i, x) {
		const char *key = json_string_value(x);
		json_t *ref = json_object_get(args, key);
		if (json_object_get(args, key + 1) != NULL) {
			err = jmap_error("invalidArguments",
					 "both %s and %s are given", key + 1,
					 key);
			break;
		}
		const char *of = json_string_value(json_object_get(ref, "resultOf"));
		const char *name = json_string_value(json_object_get(ref, "name"));
		const char *path = json_string_value(json_object_get(ref, "path"));
		if (!json_is_object(ref) || of == NULL || name == NULL ||
		    path == NULL || json_object_size(ref) != 3) {
			err = jmap_error("invalidResultReference",
					 "%s is not a ResultReference", key);
			break;
		}
		json_t *found = NULL;
		size_t n;
		json_t *resp;
		json_array_foreach(req->responses, n, resp) {
			if (strcmp(json_string_value(json_array_get(resp, 2)),
				   of) == 0 &&
			    strcmp(json_string_value(json_array_get(resp, 0)),
				   name) == 0)
				found = json_array_get(resp, 1);
		}
		json_t *val = found ? pointer_eval(found, path) : NULL;
		if (val == NULL) {
			err = jmap_error("invalidResultReference",
					 "%s: no %s response of %s at %s", key,
					 name, of, path);
			break;
		}
		json_object_set_new(args, key + 1, val);
		json_object_del(args, key);
	}
	json_decref(refs);
	return err;
}

static void run_call(struct jmap_req *req, json_t *call)
{
	const char *name = json_string_value(json_array_get(call, 0));
	json_t *args = json_deep_copy(json_array_get(call, 1));
	req->call_id = json_string_value(json_array_get(call, 2));
	json_t *err = resolve_refs(req, args);
	const struct jmap_method *m = err == NULL ? method_find(name) : NULL;
	if (err == NULL && (m == NULL || !(req->using & m->cap) ||
			    (m->cap == JMAP_C_VACATION &&
			     !jmap_vacation_available(req->j)) ||
			    (m->cap == JMAP_C_SIEVE &&
			     !jmap_sieve_available(req->j))))
		err = jmap_error("unknownMethod", "%s", name);
	if (err == NULL) {
		size_t before = json_array_size(req->responses);
		req->method = m;
		err = m->fn(req, args);
		req->method = NULL;
		if (err == NULL && json_array_size(req->responses) == before)
			err = jmap_error("serverFail", "no response");
	}
	if (err != NULL)
		json_array_append_new(req->responses,
				      json_pack("[s,o,s]", "error", err,
						req->call_id));
	json_decref(args);
}

unsigned jmap_api(struct jmap *j, const struct jmap_caller *who,
		  const char *body, size_t len, struct buf *out)
{
	if (len > j->set.max_size_request)
		return problem(out, "urn:ietf:params:jmap:error:limit",
			       "maxSizeRequest",
			       "The request is larger than maxSizeRequest.");
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return problem(out, "urn:ietf:params:jmap:error:notJSON", NULL,
			       "The content must be valid I-JSON (UTF-8).");
	unsigned status = 200;
	json_t *using = json_object_get(root, "using");
	json_t *calls = json_object_get(root, "methodCalls");
	json_t *created = json_object_get(root, "createdIds");
	bool ok = json_is_object(root) && json_is_array(using) &&
		  json_is_array(calls) &&
		  (created == NULL || json_is_object(created));
	size_t i;
	json_t *x;
	if (ok) {
		json_array_foreach(using, i, x) ok &= json_is_string(x);
		json_array_foreach(calls, i, x) {
			ok &= json_is_array(x) && json_array_size(x) == 3 &&
			      json_is_string(json_array_get(x, 0)) &&
			      json_is_object(json_array_get(x, 1)) &&
			      json_is_string(json_array_get(x, 2));
		}
		const char *k;
		json_t *v;
		if (created != NULL)
			json_object_foreach(created, k, v) ok &= json_is_string(v);
	}
	if (!ok) {
		json_decref(root);
		return problem(out, "urn:ietf:params:jmap:error:notRequest",
			       NULL, "The content is not a JMAP Request.");
	}
	struct jmap_req req;
	memset(&req, 0, sizeof(req));
	req.j = j;
	req.who = who;
	json_array_foreach(using, i, x) {
		unsigned bit = 0;
		for (size_t c = 0; c < sizeof(caps) / sizeof(*caps); c++)
			if (strcmp(caps[c].uri, json_string_value(x)) == 0)
				bit = caps[c].bit;
		if ((bit == JMAP_C_VACATION && !jmap_vacation_available(j)) ||
		    (bit == JMAP_C_SIEVE && !jmap_sieve_available(j)))
			bit = 0;
		if (bit == 0) {
			char detail[300];
			snprintf(detail, sizeof(detail),
				 "The capability %.200s is not supported.",
				 json_string_value(x));
			json_decref(root);
			return problem(out,
				       "urn:ietf:params:jmap:error:unknownCapability",
				       NULL, detail);
		}
		req.using |= bit;
	}
	if (json_array_size(calls) > j->set.max_calls_in_request) {
		json_decref(root);
		return problem(out, "urn:ietf:params:jmap:error:limit",
			       "maxCallsInRequest",
			       "Too many method calls in one request.");
	}
	if (!jmap_slot_take(j, who->user_id, 0)) {
		json_decref(root);
		return problem(out, "urn:ietf:params:jmap:error:limit",
			       "maxConcurrentRequests",
			       "Too many requests at once for this account.");
	}
	req.responses = json_array();
	req.created_ids = created != NULL ? json_deep_copy(created)
					  : json_object();
	json_array_foreach(calls, i, x) run_call(&req, x);
	json_t *resp = json_pack("{s:o}", "methodResponses", req.responses);
	if (created != NULL)
		json_object_set(resp, "createdIds", req.created_ids);
	struct buf ss;
	buf_init(&ss, 0);
	jmap_session(j, who, "", &ss);
	json_t *sess = json_loadb(ss.data ? ss.data : "", ss.len, 0, NULL);
	json_object_set(resp, "sessionState",
			json_object_get(sess, "state") ? json_object_get(sess, "state")
						       : json_string("0"));
	json_decref(sess);
	buf_free(&ss);
	char *s = json_dumps(resp, JSON_COMPACT);
	buf_append_str(out, s);
	free(s);
	json_decref(resp);
	json_decref(req.created_ids);
	store_user_unref(&req.user);
	json_decref(root);
	jmap_slot_give(j, who->user_id, 0);
	return status;
}

/* ---- the session resource (RFC 8620 2) ------------------------------ */

static json_t *core_capability(struct jmap *j)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:[s,s,s]}",
			 "maxSizeUpload", (json_int_t)j->set.max_size_upload,
			 "maxConcurrentUpload",
			 (json_int_t)j->set.max_concurrent_upload,
			 "maxSizeRequest", (json_int_t)j->set.max_size_request,
			 "maxConcurrentRequests",
			 (json_int_t)j->set.max_concurrent_requests,
			 "maxCallsInRequest",
			 (json_int_t)j->set.max_calls_in_request,
			 "maxObjectsInGet", (json_int_t)j->set.max_objects_in_get,
			 "maxObjectsInSet", (json_int_t)j->set.max_objects_in_set,
			 "collationAlgorithms", "i;ascii-numeric",
			 "i;ascii-casemap", "i;unicode-casemap");
}

static json_t *mail_capability(struct jmap *j)
{
	return json_pack("{s:n,s:n,s:I,s:I,s:[s,s,s,s,s,s,s,s,s],s:b}",
			 "maxMailboxesPerEmail", "maxMailboxDepth",
			 "maxSizeMailboxName", (json_int_t)1000,
			 "maxSizeAttachmentsPerEmail",
			 (json_int_t)j->set.max_message_size,
			 "emailQuerySortOptions", "receivedAt", "sentAt",
			 "size", "from", "to", "subject", "hasKeyword",
			 "allInThreadHaveKeyword", "someInThreadHaveKeyword",
			 "mayCreateTopLevelMailbox", 1);
}

unsigned jmap_session(struct jmap *j, const struct jmap_caller *who,
		      const char *origin, struct buf *out)
{
	char acc[32];
	jmap_account_id(who->user_id, acc);
	/* a JMAP client (the webmail among them) is a synchronising client:
	 * pop3_delete = auto hides rather than trashes while one is active
	 * (kept to the hour by the store, so this rarely writes) */
	struct store_user *su = NULL;
	struct store_error serr;
	if (j->store != NULL &&
	    store_user_open(j->store, who->user_id, &su, &serr) == 0) {
		store_note_sync_login(su, time(NULL), &serr);
		store_user_unref(&su);
	}
	json_t *caps_j = json_pack("{s:o,s:o,s:o,s:o}", JMAP_CAP_CORE,
				   core_capability(j), JMAP_CAP_MAIL,
				   json_object(), JMAP_CAP_SUBMISSION,
				   json_object(), JMAP_CAP_QUOTA, json_object());
	json_t *acaps = json_pack(
		"{s:o,s:{s:I,s:o},s:o}", JMAP_CAP_MAIL, mail_capability(j),
		JMAP_CAP_SUBMISSION, "maxDelayedSend", (json_int_t)0,
		"submissionExtensions", json_object(), JMAP_CAP_QUOTA,
		json_object());
	json_t *primary = json_pack("{s:s,s:s,s:s}", JMAP_CAP_MAIL, acc,
				    JMAP_CAP_SUBMISSION, acc, JMAP_CAP_QUOTA,
				    acc);
	/* the webmail's vendor capability (jmap-loft.c, docs/jmap.md) */
	json_object_set_new(caps_j, JMAP_CAP_LOFT, json_object());
	json_object_set_new(acaps, JMAP_CAP_LOFT, jmap_loft_capability());
	/* sharing (jmap-share.c, RFC 9670) */
	json_object_set_new(caps_j, JMAP_CAP_PRINCIPALS, json_object());
	{
		json_t *sc = jmap_share_account_caps(who->user_id);
		json_object_update(acaps, sc);
		json_decref(sc);
	}
	if (jmap_vacation_available(j)) {
		json_object_set_new(caps_j, JMAP_CAP_VACATION, json_object());
		json_object_set_new(acaps, JMAP_CAP_VACATION, json_object());
		json_object_set_new(primary, JMAP_CAP_VACATION,
				    json_string(acc));
	}
	if (jmap_sieve_available(j)) {
		json_object_set_new(caps_j, JMAP_CAP_SIEVE, json_object());
		json_object_set_new(acaps, JMAP_CAP_SIEVE,
				    jmap_sieve_capability(j, who->user_id));
		json_object_set_new(primary, JMAP_CAP_SIEVE, json_string(acc));
	}
	json_t *accounts = json_pack("{s:{s:s,s:b,s:b,s:o}}", acc, "name",
				     who->address, "isPersonal", 1,
				     "isReadOnly", 0, "accountCapabilities",
				     acaps);
	/* other accounts whose mail the caller may read (shared mailboxes):
	 * their mail only */
	int64_t *shared = NULL;
	size_t nshared = 0;
	jmap_shared_accounts(j, who, &shared, &nshared);
	for (size_t i = 0; i < nshared; i++) {
		struct store_user *su2;
		bool ro;
		char name[320];
		if (jmap_account_open(j, who, shared[i], &su2, &ro, name,
				      sizeof(name)) < 0)
			continue;
		store_user_unref(&su2);
		char sacc[32];
		jmap_account_id(shared[i], sacc);
		json_t *mc = mail_capability(j);
		json_object_set_new(mc, "mayCreateTopLevelMailbox",
				    json_false());
		json_object_set_new(
			accounts, sacc,
			json_pack("{s:s,s:b,s:b,s:{s:o}}", "name", name,
				  "isPersonal", 0, "isReadOnly", ro,
				  "accountCapabilities", JMAP_CAP_MAIL, mc));
	}
	free(shared);
	/* the session state changes when what this object says changes */
	char *text = json_dumps(accounts, JSON_COMPACT | JSON_SORT_KEYS);
	char *ctext = json_dumps(caps_j, JSON_COMPACT | JSON_SORT_KEYS);
	uint64_t h = 1469598103934665603ULL;
	for (const char *p = text; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (const char *p = ctext; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	free(text);
	free(ctext);
	char state[24];
	snprintf(state, sizeof(state), "%016llx", (unsigned long long)h);
	char *api = xasprintf("%s/jmap/api", origin);
	char *dl = xasprintf("%s/jmap/download/{accountId}/{blobId}/{name}"
			     "?type={type}", origin);
	char *ul = xasprintf("%s/jmap/upload/{accountId}/", origin);
	char *es = xasprintf("%s/jmap/eventsource/?types={types}"
			     "&closeafter={closeafter}&ping={ping}", origin);
	json_t *s = json_pack("{s:o,s:o,s:o,s:s,s:s,s:s,s:s,s:s,s:s}",
			      "capabilities", caps_j, "accounts", accounts,
			      "primaryAccounts", primary, "username",
			      who->address, "apiUrl", api, "downloadUrl", dl,
			      "uploadUrl", ul, "eventSourceUrl", es, "state",
			      state);
	free(api);
	free(dl);
	free(ul);
	free(es);
	char *dump = json_dumps(s, JSON_COMPACT);
	buf_append_str(out, dump);
	free(dump);
	json_decref(s);
	return 200;
}

/* ---- /query windows (RFC 8620 5.5) ---------------------------------- */

json_t *jmap_query_window(json_t *args, json_t *ids, size_t max_limit,
			  json_t *r)
{
	json_t *e = NULL;
	int64_t position, anchor_offset;
	uint64_t limit;
	bool total;
	if (!jmap_arg_int(args, "position", 0, &position, &e) ||
	    !jmap_arg_int(args, "anchorOffset", 0, &anchor_offset, &e) ||
	    !jmap_arg_uint(args, "limit", max_limit, &limit, &e) ||
	    !jmap_arg_bool(args, "calculateTotal", false, &total, &e))
		return e;
	json_t *anchor = json_object_get(args, "anchor");
	if (anchor != NULL && !json_is_null(anchor) && !json_is_string(anchor))
		return jmap_error("invalidArguments", "anchor must be an Id");
	size_t n = json_array_size(ids);
	int64_t start;
	if (json_is_string(anchor)) {
		int64_t at = -1;
		size_t i;
		json_t *x;
		json_array_foreach(ids, i, x) {
			if (strcmp(json_string_value(x),
				   json_string_value(anchor)) == 0) {
				at = (int64_t)i;
				break;
			}
		}
		if (at < 0)
			return jmap_error("anchorNotFound", NULL);
		start = at + anchor_offset;
		if (start < 0)
			start = 0;
	} else {
		start = position < 0 ? (int64_t)n + position : position;
		if (start < 0)
			start = 0;
	}
	bool clipped = limit > max_limit;
	if (clipped)
		limit = max_limit;
	json_t *page = json_array();
	for (size_t i = (size_t)start; i < n && (uint64_t)json_array_size(page) < limit;
	     i++)
		json_array_append(page, json_array_get(ids, i));
	json_object_set_new(r, "position",
			    json_integer(start > (int64_t)n ? (int64_t)n : start));
	json_object_set_new(r, "ids", page);
	if (total)
		json_object_set_new(r, "total", json_integer((json_int_t)n));
	if (clipped)
		json_object_set_new(r, "limit", json_integer((json_int_t)limit));
	return NULL;
}
