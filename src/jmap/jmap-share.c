/*
 * Sharing over JMAP (RFC 9670, issue 15) for the caller's own mailboxes:
 * Principals (the accounts of the caller's domain that can be given
 * rights: Principal/get, /query; /changes and /queryChanges answer
 * cannotCalculateChanges), the capability urn:ietf:params:jmap:principals,
 * and Mailbox.shareWith (read, and written by Mailbox/set, as the
 * webmail's Share dialog does). shareWith is the mailbox's IMAP ACL
 * (RFC 4314) seen through the MailboxRights of RFC 8621 2 plus mayShare;
 * entries JMAP cannot show (groups, anyone, negative rights) are left as
 * they are. Reading another account's mail over JMAP (accounts with
 * isPersonal false) is not here yet.
 */
#include "jmap-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"

/* ---- principals ----------------------------------------------------- */

static void principal_id(int64_t user_id, char out[32])
{
	snprintf(out, 32, "P%llx", (unsigned long long)user_id);
}

static bool principal_parse(const char *s, int64_t *id_r)
{
	if (s == NULL || s[0] != 'P' || s[1] == '\0' || strlen(s) > 17)
		return false;
	char *end;
	unsigned long long v = strtoull(s + 1, &end, 16);
	if (*end != '\0' || v == 0 || s[1] == '0')
		return false;
	*id_r = (int64_t)v;
	return true;
}

static const char *domain_of(const char *address)
{
	const char *at = strrchr(address, '@');
	return at != NULL ? at + 1 : "";
}

struct principal {
	int64_t id;
	char *address;
};

struct plist {
	struct jmap_req *req;
	const char *domain;
	struct principal *v;
	size_t n, cap;
	bool failed;
};

static void plist_add(void *ctx, const char *address, const char *extra)
{
	struct plist *p = ctx;
	struct auth_user u;
	if (extra != NULL || strcasecmp(domain_of(address), p->domain) != 0)
		return;   /* disabled, or another domain */
	int rc = auth_lookup(p->req->j->auth, address, &u);
	if (rc < 0)
		p->failed = true;
	/* shared addresses never log in: they are not given rights */
	if (rc != 1 || auth_user_is_shared(p->req->j->auth, u.id) == 1)
		return;
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->v = xrealloc(p->v, p->cap * sizeof(*p->v));
	}
	p->v[p->n].id = u.id;
	p->v[p->n].address = xstrdup(u.address);
	p->n++;
}

/* The principals the caller may share with: its domain's accounts. */
static int principals_load(struct jmap_req *req, struct plist *p)
{
	memset(p, 0, sizeof(*p));
	p->req = req;
	p->domain = domain_of(req->who->address);
	char *error = NULL;
	if (req->j->auth == NULL ||
	    auth_user_list(req->j->auth, plist_add, p, &error) < 0 ||
	    p->failed) {
		free(error);
		return -1;
	}
	return 0;
}

static void principals_free(struct plist *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].address);
	free(p->v);
}

static const struct principal *principal_find(const struct plist *p,
					      int64_t id)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->v[i].id == id)
			return &p->v[i];
	return NULL;
}

/* A state that changes when the list does (FNV-1a of ids and names). */
static json_t *principals_state(const struct plist *p)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < p->n; i++) {
		char pid[32];
		principal_id(p->v[i].id, pid);
		for (const char *s = pid; *s; s++)
			h = (h ^ (unsigned char)*s) * 1099511628211ULL;
		for (const char *s = p->v[i].address; *s; s++)
			h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	}
	char st[24];
	snprintf(st, sizeof(st), "%016llx", (unsigned long long)h);
	return json_string(st);
}

json_t *jmap_share_account_caps(int64_t user_id)
{
	char pid[32], acc[32];
	principal_id(user_id, pid);
	jmap_account_id(user_id, acc);
	return json_pack("{s:{s:s},s:{s:s,s:s}}", JMAP_CAP_PRINCIPALS,
			 "currentUserPrincipalId", pid,
			 JMAP_CAP_PRINCIPALS_OWNER, "accountIdForPrincipal",
			 acc, "principalId", pid);
}

static json_t *principal_json(struct jmap_req *req, const struct principal *x,
			      json_t *props)
{
	char pid[32];
	principal_id(x->id, pid);
	json_t *o = json_pack("{s:s}", "id", pid);
	if (jmap_want(props, "type"))
		json_object_set_new(o, "type", json_string("individual"));
	if (jmap_want(props, "name"))
		json_object_set_new(o, "name", json_string(x->address));
	if (jmap_want(props, "description"))
		json_object_set_new(o, "description", json_null());
	if (jmap_want(props, "email"))
		json_object_set_new(o, "email", json_string(x->address));
	if (jmap_want(props, "timeZone"))
		json_object_set_new(o, "timeZone", json_null());
	if (jmap_want(props, "capabilities"))
		json_object_set_new(o, "capabilities", json_object());
	if (jmap_want(props, "accounts")) {
		/* only the caller's own account is reachable over JMAP */
		json_t *a = json_null();
		if (x->id == req->who->user_id) {
			char acc[32];
			jmap_account_id(x->id, acc);
			a = json_pack("{s:o}", acc,
				      jmap_share_account_caps(x->id));
		}
		json_object_set_new(o, "accounts", a);
	}
	return o;
}

static const char *const principal_props[] = {
	"id", "type", "name", "description", "email", "timeZone",
	"capabilities", "accounts", NULL,
};

static json_t *principal_get(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false), *ids, *props;
	if (e != NULL || !jmap_arg_ids(args, "ids", &ids, &e) ||
	    !jmap_arg_props(args, "properties", principal_props, NULL, &props,
			    &e))
		return e;
	if (ids != NULL && json_array_size(ids) > req->j->set.max_objects_in_get)
		return jmap_error("requestTooLarge", "more than %u ids",
				  req->j->set.max_objects_in_get);
	struct plist p;
	if (principals_load(req, &p) < 0) {
		principals_free(&p);
		return jmap_error("serverFail", "account lookup failed");
	}
	json_t *list = json_array(), *nf = json_array();
	if (ids == NULL) {
		for (size_t i = 0; i < p.n; i++)
			json_array_append_new(list, principal_json(req, &p.v[i],
								   props));
	} else {
		size_t i;
		json_t *x;
		json_array_foreach(ids, i, x) {
			int64_t id;
			const struct principal *pr =
				principal_parse(json_string_value(x), &id)
					? principal_find(&p, id)
					: NULL;
			if (pr != NULL)
				json_array_append_new(list,
						      principal_json(req, pr,
								     props));
			else
				json_array_append(nf, x);
		}
	}
	jmap_reply(req, "Principal/get",
		   json_pack("{s:O,s:o,s:o,s:o}", "accountId",
			     json_object_get(args, "accountId"), "state",
			     principals_state(&p), "list", list, "notFound",
			     nf));
	principals_free(&p);
	return NULL;
}

/* RFC 9670 3.5 FilterCondition: 1 match, 0 not, -1 bad filter. */
struct match_ctx {
	struct jmap_req *req;
	const struct principal *x;
};

static int principal_match(void *ctx, json_t *f)
{
	struct jmap_req *req = ((struct match_ctx *)ctx)->req;
	const struct principal *x = ((struct match_ctx *)ctx)->x;
	const char *k;
	json_t *v;
	bool match = true;
	json_object_foreach(f, k, v) {
		if (strcmp(k, "accountIds") == 0) {
			if (!json_is_array(v))
				return -1;
			char acc[32];
			jmap_account_id(x->id, acc);
			bool in = false;
			size_t i;
			json_t *a;
			json_array_foreach(v, i, a) {
				if (!json_is_string(a))
					return -1;
				/* only the caller's own account is one */
				in |= x->id == req->who->user_id &&
				      strcmp(json_string_value(a), acc) == 0;
			}
			match &= in;
			continue;
		}
		const char *s = json_string_value(v);
		if (s == NULL)
			return -1;
		if (strcmp(k, "email") == 0)
			match &= strcasecmp(s, x->address) == 0;
		else if (strcmp(k, "name") == 0 || strcmp(k, "text") == 0)
			match &= strcasestr(x->address, s) != NULL;
		else if (strcmp(k, "type") == 0)
			match &= strcmp(s, "individual") == 0;
		else if (strcmp(k, "timeZone") == 0)
			match = false;
		else
			return -1;
	}
	return match;
}

static json_t *principal_query(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false);
	if (e != NULL)
		return e;
	json_t *filter = json_object_get(args, "filter");
	json_t *sort = json_object_get(args, "sort");
	if (sort != NULL && !json_is_null(sort) &&
	    (!json_is_array(sort) || json_array_size(sort) > 0))
		return jmap_error("unsupportedSort",
				  "principals come sorted by email");
	struct plist p;
	if (principals_load(req, &p) < 0) {
		principals_free(&p);
		return jmap_error("serverFail", "account lookup failed");
	}
	json_t *ids = json_array();
	for (size_t i = 0; i < p.n; i++) {
		struct match_ctx mc = {req, &p.v[i]};
		int r = filter == NULL || json_is_null(filter)
				? 1
				: jmap_filter_eval(filter, principal_match, &mc);
		if (r < 0) {
			json_decref(ids);
			principals_free(&p);
			return jmap_error("unsupportedFilter", NULL);
		}
		if (r == 1) {
			char pid[32];
			principal_id(p.v[i].id, pid);
			json_array_append_new(ids, json_string(pid));
		}
	}
	json_t *r = json_pack("{s:O,s:o,s:b}", "accountId",
			      json_object_get(args, "accountId"), "queryState",
			      principals_state(&p), "canCalculateChanges", 0);
	principals_free(&p);
	e = jmap_query_window(args, ids, req->j->set.max_objects_in_get, r);
	json_decref(ids);
	if (e != NULL) {
		json_decref(r);
		return e;
	}
	jmap_reply(req, "Principal/query", r);
	return NULL;
}

static json_t *principal_changes(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false);
	return e != NULL ? e
			 : jmap_error("cannotCalculateChanges",
				      "get the principals again");
}

const struct jmap_method jmap_share_methods[] = {
	{"Principal/get", JMAP_C_PRINCIPALS, principal_get},
	{"Principal/query", JMAP_C_PRINCIPALS, principal_query},
	{"Principal/changes", JMAP_C_PRINCIPALS, principal_changes},
	{"Principal/queryChanges", JMAP_C_PRINCIPALS, principal_changes},
	{NULL, 0, NULL},
};

/* ---- Mailbox.shareWith ---------------------------------------------- */

/* MailboxRights (RFC 8621 2.1, mayShare of RFC 9670) <-> RFC 4314 */
static const struct {
	const char *name;
	const char *letters;
} rights_map[] = {
	{"mayReadItems", "lr"}, {"mayAddItems", "i"},
	{"mayRemoveItems", "te"}, {"maySetSeen", "s"},
	{"maySetKeywords", "w"}, {"mayCreateChild", "k"},
	{"mayRename", "x"}, {"mayDelete", "x"},
	{"maySubmit", "p"}, {"mayShare", "a"},
};
#define RIGHTS_N (sizeof(rights_map) / sizeof(*rights_map))

static unsigned letters_bits(const char *s)
{
	unsigned r = 0;
	store_rights_parse(s, strlen(s), &r);
	return r;
}

json_t *jmap_share_rights_json(unsigned rights)
{
	json_t *o = json_object();
	for (size_t i = 0; i < RIGHTS_N; i++) {
		unsigned need = letters_bits(rights_map[i].letters);
		json_object_set_new(o, rights_map[i].name,
				    json_boolean((rights & need) == need));
	}
	return o;
}

json_t *jmap_share_with(struct jmap_req *req, const char *mailbox)
{
	struct store_acl_entry *e = NULL;
	size_t n = 0;
	struct store_error err;
	if (req->user == NULL || store_acl_get(req->user, mailbox, &e, &n,
					       &err) < 0)
		return json_null();
	json_t *o = json_object();
	for (size_t i = 0; i < n; i++) {
		if (e[i].kind != STORE_ACL_USER || e[i].negative)
			continue;
		char pid[32];
		principal_id(e[i].id, pid);
		json_object_set_new(o, pid, jmap_share_rights_json(e[i].rights));
	}
	free(e);
	if (json_object_size(o) == 0) {
		json_decref(o);
		return json_null();
	}
	return o;
}

bool jmap_share_key(const char *key)
{
	return strcmp(key, "shareWith") == 0 ||
	       strncmp(key, "shareWith/", 10) == 0;
}

/* A rights object into RFC 4314 bits; false if it is not one. */
static bool rights_parse(json_t *v, unsigned *rights_r)
{
	if (!json_is_object(v))
		return false;
	unsigned r = 0;
	const char *k;
	json_t *b;
	json_object_foreach(v, k, b) {
		size_t i = 0;
		while (i < RIGHTS_N && strcmp(rights_map[i].name, k) != 0)
			i++;
		if (i == RIGHTS_N || !json_is_boolean(b))
			return false;
		if (json_is_true(b))
			r |= letters_bits(rights_map[i].letters);
	}
	*rights_r = r;
	return true;
}

/* One principal's rights on mailbox: set (0 rights: the entry goes);
 * with dry, only checked. */
static json_t *share_one(struct jmap_req *req, const char *mailbox,
			 const char *pid, json_t *v, const struct plist *p,
			 bool dry)
{
	int64_t id;
	unsigned rights = 0;
	if (!principal_parse(pid, &id) || principal_find(p, id) == NULL ||
	    id == req->who->user_id)
		return jmap_set_error_props("invalidProperties",
					    "no such principal to share with",
					    "shareWith");
	if (!json_is_null(v) && !rights_parse(v, &rights))
		return jmap_set_error_props("invalidProperties",
					    "not a MailboxRights object",
					    "shareWith");
	if (dry)
		return NULL;
	struct store_error err;
	int r = rights == 0
		? store_acl_delete(req->user, mailbox, STORE_ACL_USER, id,
				   false, &err)
		: store_acl_set(req->user, mailbox,
				&(struct store_acl_entry){STORE_ACL_USER, id,
							  false, rights},
				0, 1000, &err);
	return r < 0 ? jmap_set_error_store(&err) : NULL;
}

static json_t *share_key(struct jmap_req *req, const char *mailbox,
			 const char *k, json_t *v, const struct plist *p,
			 bool dry)
{
	if (strncmp(k, "shareWith/", 10) == 0) {
		struct buf tok;
		buf_init(&tok, 0);
		json_t *e;
		if (!jmap_pointer_token(k + 10, strlen(k + 10), &tok) ||
		    tok.data == NULL)
			e = jmap_set_error_props("invalidPatch", NULL, k);
		else
			e = share_one(req, mailbox, tok.data, v, p, dry);
		buf_free(&tok);
		return e;
	}
	if (strcmp(k, "shareWith") != 0)
		return NULL;
	if (!json_is_null(v) && !json_is_object(v))
		return jmap_set_error_props("invalidProperties", NULL,
					    "shareWith");
	/* a whole map: who is not in it any more loses the rights */
	json_t *e = NULL, *old = jmap_share_with(req, mailbox), *r;
	const char *pid;
	json_object_foreach(old, pid, r) {
		if (e == NULL && json_object_get(v, pid) == NULL)
			e = share_one(req, mailbox, pid, json_null(), p, dry);
	}
	json_decref(old);
	json_object_foreach(v, pid, r) {
		if (e == NULL)
			e = share_one(req, mailbox, pid, r, p, dry);
	}
	return e;
}

json_t *jmap_share_update(struct jmap_req *req, const char *mailbox,
			  json_t *obj)
{
	bool any = false;
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) any |= jmap_share_key(k);
	if (!any)
		return NULL;
	struct plist p;
	if (principals_load(req, &p) < 0) {
		principals_free(&p);
		return jmap_set_error("serverFail", "account lookup failed");
	}
	/* every change is checked before the first is made */
	json_t *e = NULL;
	for (int dry = 1; dry >= 0 && e == NULL; dry--) {
		json_object_foreach(obj, k, v) {
			if (e == NULL)
				e = share_key(req, mailbox, k, v, &p, dry);
		}
	}
	principals_free(&p);
	return e;
}
