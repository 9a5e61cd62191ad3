/*
 * Mailbox (RFC 8621 2): get, changes, query, queryChanges, set. A Mailbox
 * is a store mailbox: id = MAILBOXID, name = the last part of its "/"
 * path, parentId = the mailbox of the path above it, role = its
 * special-use (INBOX is "inbox"), counts from the store's JMAP counters.
 * A JMAP name may not hold "/", the hierarchy separator IMAP clients
 * see (invalidProperties).
 */
#include "jmap-private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"

static const struct {
	const char *role;
	unsigned bit;
} roles[] = {
	{"sent", STORE_SPECIAL_SENT},       {"drafts", STORE_SPECIAL_DRAFTS},
	{"trash", STORE_SPECIAL_TRASH},     {"junk", STORE_SPECIAL_JUNK},
	{"archive", STORE_SPECIAL_ARCHIVE}, {"all", STORE_SPECIAL_ALL},
	{"flagged", STORE_SPECIAL_FLAGGED}, {"important", STORE_SPECIAL_IMPORTANT},
};

static const char *role_of(const struct store_jmap_mailbox *m)
{
	if (strcmp(m->info.name, "INBOX") == 0)
		return "inbox";
	for (size_t i = 0; i < sizeof(roles) / sizeof(*roles); i++)
		if (m->info.special_use & roles[i].bit)
			return roles[i].role;
	return NULL;
}

/* -1: not a role this server knows (inbox is only INBOX's). */
static int role_bit(const char *role)
{
	for (size_t i = 0; i < sizeof(roles) / sizeof(*roles); i++)
		if (strcmp(roles[i].role, role) == 0)
			return (int)roles[i].bit;
	return -1;
}

int jmap_mailboxes_load(struct jmap_req *req, struct jmap_mailboxes *m,
			struct store_error *err)
{
	return store_jmap_mailboxes(req->user, &m->v, &m->n, err);
}

void jmap_mailboxes_free(struct jmap_mailboxes *m)
{
	store_jmap_mailboxes_free(m->v, m->n);
	m->v = NULL;
	m->n = 0;
}

const struct store_jmap_mailbox *jmap_mailbox_by_oid(
	const struct jmap_mailboxes *m, const char *oid)
{
	for (size_t i = 0; oid != NULL && i < m->n; i++)
		if (strcmp(m->v[i].info.objectid, oid) == 0)
			return &m->v[i];
	return NULL;
}

const struct store_jmap_mailbox *jmap_mailbox_by_id(
	const struct jmap_mailboxes *m, uint32_t id)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].info.id == id)
			return &m->v[i];
	return NULL;
}

const struct store_jmap_mailbox *jmap_mailbox_by_role(
	const struct jmap_mailboxes *m, unsigned special_use)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].info.special_use & special_use)
			return &m->v[i];
	return NULL;
}

static const struct store_jmap_mailbox *by_name(const struct jmap_mailboxes *m,
						const char *name, size_t len)
{
	for (size_t i = 0; i < m->n; i++)
		if (strlen(m->v[i].info.name) == len &&
		    strncmp(m->v[i].info.name, name, len) == 0)
			return &m->v[i];
	return NULL;
}

static const struct store_jmap_mailbox *parent_of(
	const struct jmap_mailboxes *m, const struct store_jmap_mailbox *x)
{
	const char *slash = strrchr(x->info.name, '/');
	return slash ? by_name(m, x->info.name,
			       (size_t)(slash - x->info.name))
		     : NULL;
}

static const char *leaf(const struct store_jmap_mailbox *x)
{
	const char *slash = strrchr(x->info.name, '/');
	return slash ? slash + 1 : x->info.name;
}

/* The rights of the caller on a mailbox: the seam for shared mailboxes
 * (IMAP ACL): today every mailbox is the caller's own. */
static json_t *my_rights(const struct store_jmap_mailbox *x)
{
	bool inbox = strcmp(x->info.name, "INBOX") == 0;
	bool sel = !x->info.noselect;
	unsigned r = x->rights;    /* every right in the caller's own */
	bool remove = (r & STORE_RIGHT_DELETED) && (r & STORE_RIGHT_EXPUNGE);
	return json_pack("{s:b,s:b,s:b,s:b,s:b,s:b,s:b,s:b,s:b,s:b}",
			 "mayReadItems", sel && (r & STORE_RIGHT_READ),
			 "mayAddItems", sel && (r & STORE_RIGHT_INSERT),
			 "mayRemoveItems", sel && remove,
			 "maySetSeen", sel && (r & STORE_RIGHT_SEEN),
			 "maySetKeywords", sel && (r & STORE_RIGHT_WRITE),
			 "mayCreateChild", (r & STORE_RIGHT_CREATE) != 0,
			 "mayRename", !inbox && (r & STORE_RIGHT_DELETE),
			 "mayDelete", !inbox && (r & STORE_RIGHT_DELETE),
			 "maySubmit", sel && (r & STORE_RIGHT_POST),
			 "mayShare", (r & STORE_RIGHT_ADMIN) != 0);
}

static json_t *mailbox_json(const struct jmap_mailboxes *m,
			    const struct store_jmap_mailbox *x, json_t *props)
{
	json_t *o = json_pack("{s:s}", "id", x->info.objectid);
	const struct store_jmap_mailbox *p = parent_of(m, x);
	const char *role = role_of(x);
	if (jmap_want(props, "name"))
		json_object_set_new(o, "name", json_string(leaf(x)));
	if (jmap_want(props, "parentId"))
		json_object_set_new(o, "parentId",
				    p ? json_string(p->info.objectid)
				      : json_null());
	if (jmap_want(props, "role"))
		json_object_set_new(o, "role",
				    role ? json_string(role) : json_null());
	if (jmap_want(props, "sortOrder"))
		json_object_set_new(o, "sortOrder",
				    json_integer(x->sort_order));
	if (jmap_want(props, "totalEmails"))
		json_object_set_new(o, "totalEmails", json_integer(x->emails));
	if (jmap_want(props, "unreadEmails"))
		json_object_set_new(o, "unreadEmails",
				    json_integer(x->unread_emails));
	if (jmap_want(props, "totalThreads"))
		json_object_set_new(o, "totalThreads", json_integer(x->threads));
	if (jmap_want(props, "unreadThreads"))
		json_object_set_new(o, "unreadThreads",
				    json_integer(x->unread_threads));
	if (jmap_want(props, "myRights"))
		json_object_set_new(o, "myRights", my_rights(x));
	if (jmap_want(props, "isSubscribed"))
		json_object_set_new(o, "isSubscribed",
				    json_boolean(x->info.subscribed));
	return o;
}

static const char *const mailbox_props[] = {
	"id", "name", "parentId", "role", "sortOrder", "totalEmails",
	"unreadEmails", "totalThreads", "unreadThreads", "myRights",
	"isSubscribed", "shareWith", NULL,
};

static json_t *mailbox_get(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false), *ids, *props;
	if (e != NULL || !jmap_arg_ids(args, "ids", &ids, &e) ||
	    !jmap_arg_props(args, "properties", mailbox_props, NULL, &props,
			    &e))
		return e;
	if (ids != NULL && json_array_size(ids) > req->j->set.max_objects_in_get)
		return jmap_error("requestTooLarge", "more than %u ids",
				  req->j->set.max_objects_in_get);
	/* the state first: what follows is at least that new */
	json_t *state = jmap_state_json(req, STORE_JMAP_MAILBOX);
	struct jmap_mailboxes m;
	struct store_error err;
	if (state == NULL || jmap_mailboxes_load(req, &m, &err) < 0) {
		json_decref(state);
		err.kind = STORE_ERR_INTERNAL;
		return jmap_store_error(req, &err);
	}
	json_t *list = json_array(), *nf = json_array();
	if (ids == NULL) {
		for (size_t i = 0; i < m.n; i++)
			json_array_append_new(list, mailbox_json(&m, &m.v[i],
								 props));
	} else {
		size_t i;
		json_t *x;
		json_array_foreach(ids, i, x) {
			const char *id = jmap_resolve_id(req, json_string_value(x));
			const struct store_jmap_mailbox *mb =
				jmap_mailbox_by_oid(&m, id);
			if (mb != NULL)
				json_array_append_new(list,
						      mailbox_json(&m, mb, props));
			else
				json_array_append(nf, x);
		}
	}
	/* sharing (jmap-share.c): the mailbox's ACL as shareWith */
	if (jmap_want(props, "shareWith")) {
		size_t i;
		json_t *o;
		json_array_foreach(list, i, o) {
			const struct store_jmap_mailbox *mb = jmap_mailbox_by_oid(
				&m, json_string_value(json_object_get(o, "id")));
			json_object_set_new(o, "shareWith",
					    mb ? jmap_share_with(req, mb->info.name)
					       : json_null());
		}
	}
	jmap_mailboxes_free(&m);
	jmap_reply(req, "Mailbox/get",
		   json_pack("{s:O,s:o,s:o,s:o}", "accountId",
			     json_object_get(args, "accountId"), "state", state,
			     "list", list, "notFound", nf));
	return NULL;
}

static json_t *mailbox_changes(struct jmap_req *req, json_t *args)
{
	return jmap_changes(req, args, STORE_JMAP_MAILBOX, "Mailbox/changes");
}

/* ---- query ---------------------------------------------------------- */

/* RFC 8621 2.3 FilterCondition: 1 match, 0 not, -1 bad filter. */
struct match_ctx {
	const struct jmap_mailboxes *m;
	const struct store_jmap_mailbox *x;
};

static int condition_match(void *ctx, json_t *f)
{
	const struct jmap_mailboxes *m = ((struct match_ctx *)ctx)->m;
	const struct store_jmap_mailbox *x = ((struct match_ctx *)ctx)->x;
	const char *k;
	json_t *v;
	json_object_foreach(f, k, v) {
		if (strcmp(k, "parentId") == 0) {
			const struct store_jmap_mailbox *p = parent_of(m, x);
			if (json_is_null(v) ? p != NULL
			    : !json_is_string(v) ? true
			    : p == NULL || strcmp(p->info.objectid,
						  json_string_value(v)) != 0)
				return json_is_null(v) || json_is_string(v) ? 0
									    : -1;
		} else if (strcmp(k, "name") == 0) {
			if (!json_is_string(v))
				return -1;
			if (strcasestr(leaf(x), json_string_value(v)) == NULL)
				return 0;
		} else if (strcmp(k, "role") == 0) {
			const char *r = role_of(x);
			if (json_is_null(v) ? r != NULL
			    : !json_is_string(v) ? true
			    : r == NULL || strcmp(r, json_string_value(v)) != 0)
				return json_is_null(v) || json_is_string(v) ? 0
									    : -1;
		} else if (strcmp(k, "hasAnyRole") == 0) {
			if (!json_is_boolean(v))
				return -1;
			if ((role_of(x) != NULL) != json_is_true(v))
				return 0;
		} else if (strcmp(k, "isSubscribed") == 0) {
			if (!json_is_boolean(v))
				return -1;
			if (x->info.subscribed != json_is_true(v))
				return 0;
		} else {
			return -1;
		}
	}
	return 1;
}

static int filter_match(const struct jmap_mailboxes *m,
			const struct store_jmap_mailbox *x, json_t *f)
{
	struct match_ctx c = {m, x};
	return jmap_filter_eval(f, condition_match, &c);
}

struct sort_ctx {
	const struct jmap_mailboxes *m;
	bool by_name[4], asc[4];
	size_t count;
};

static int mbox_cmp(const struct store_jmap_mailbox *a,
		    const struct store_jmap_mailbox *b,
		    const struct sort_ctx *s)
{
	for (size_t i = 0; i < s->count; i++) {
		int c = s->by_name[i]
				? strcasecmp(leaf(a), leaf(b))
				: (a->sort_order > b->sort_order) -
					  (a->sort_order < b->sort_order);
		if (c != 0)
			return s->asc[i] ? c : -c;
	}
	return strcmp(a->info.objectid, b->info.objectid);
}

/* sortAsTree: parents before children, siblings in sort order. */
static void tree_walk(const struct sort_ctx *s, const char *parent,
		      const struct store_jmap_mailbox **in, size_t n,
		      json_t *out, int depth)
{
	const struct store_jmap_mailbox **kids = xcalloc(n ? n : 1, sizeof(*kids));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const struct store_jmap_mailbox *p = parent_of(s->m, in[i]);
		bool mine = parent == NULL ? p == NULL
			    : p != NULL && strcmp(p->info.objectid, parent) == 0;
		/* a child whose parent is filtered out sits at the top */
		if (parent == NULL && p != NULL) {
			bool there = false;
			for (size_t j = 0; j < n && !there; j++)
				there = in[j] == p;
			mine = !there;
		}
		if (mine)
			kids[k++] = in[i];
	}
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && mbox_cmp(kids[j - 1], kids[j], s) > 0;
		     j--) {
			const struct store_jmap_mailbox *t = kids[j];
			kids[j] = kids[j - 1];
			kids[j - 1] = t;
		}
	for (size_t i = 0; i < k; i++) {
		json_array_append_new(out, json_string(kids[i]->info.objectid));
		if (depth < 100)
			tree_walk(s, kids[i]->info.objectid, in, n, out,
				  depth + 1);
	}
	free(kids);
}

/* The ids matching filter, sorted; NULL with *err_r on bad arguments. */
static json_t *mailbox_results(const struct jmap_mailboxes *m, json_t *args,
			       json_t **err_r)
{
	json_t *filter = json_object_get(args, "filter");
	json_t *sort = json_object_get(args, "sort");
	bool as_tree = json_is_true(json_object_get(args, "sortAsTree"));
	bool filter_tree = json_is_true(json_object_get(args, "filterAsTree"));
	struct sort_ctx s = {m, {false}, {false}, 0};
	if (sort != NULL && !json_is_null(sort)) {
		if (!json_is_array(sort) || json_array_size(sort) > 4) {
			*err_r = jmap_error("invalidArguments", "sort");
			return NULL;
		}
		size_t i;
		json_t *c;
		json_array_foreach(sort, i, c) {
			const char *p = json_string_value(json_object_get(c, "property"));
			json_t *asc = json_object_get(c, "isAscending");
			if (p == NULL || (asc && !json_is_boolean(asc))) {
				*err_r = jmap_error("invalidArguments", "sort");
				return NULL;
			}
			if (strcmp(p, "name") != 0 && strcmp(p, "sortOrder") != 0) {
				*err_r = jmap_error("unsupportedSort", "%s", p);
				return NULL;
			}
			s.by_name[s.count] = strcmp(p, "name") == 0;
			s.asc[s.count++] = asc == NULL || json_is_true(asc);
		}
	}
	const struct store_jmap_mailbox **hit = xcalloc(m->n ? m->n : 1,
							 sizeof(*hit));
	size_t n = 0;
	for (size_t i = 0; i < m->n; i++) {
		int r = filter == NULL || json_is_null(filter)
				? 1
				: filter_match(m, &m->v[i], filter);
		if (r < 0) {
			free(hit);
			*err_r = jmap_error("unsupportedFilter", NULL);
			return NULL;
		}
		/* filterAsTree: a mailbox counts only if its parents do */
		if (r && filter_tree) {
			for (const struct store_jmap_mailbox *p = parent_of(m, &m->v[i]);
			     p != NULL && r; p = parent_of(m, p))
				r = filter_match(m, p, filter) > 0;
		}
		if (r)
			hit[n++] = &m->v[i];
	}
	json_t *ids = json_array();
	if (as_tree) {
		tree_walk(&s, NULL, hit, n, ids, 0);
	} else {
		for (size_t i = 1; i < n; i++)
			for (size_t j = i; j > 0 && mbox_cmp(hit[j - 1], hit[j], &s) > 0;
			     j--) {
				const struct store_jmap_mailbox *t = hit[j];
				hit[j] = hit[j - 1];
				hit[j - 1] = t;
			}
		for (size_t i = 0; i < n; i++)
			json_array_append_new(ids, json_string(hit[i]->info.objectid));
	}
	free(hit);
	return ids;
}

static json_t *mailbox_query(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false);
	if (e != NULL)
		return e;
	json_t *state = jmap_state_json(req, STORE_JMAP_MAILBOX);
	struct jmap_mailboxes m;
	struct store_error err;
	if (state == NULL || jmap_mailboxes_load(req, &m, &err) < 0) {
		json_decref(state);
		err.kind = STORE_ERR_INTERNAL;
		return jmap_store_error(req, &err);
	}
	json_t *ids = mailbox_results(&m, args, &e);
	jmap_mailboxes_free(&m);
	if (ids == NULL) {
		json_decref(state);
		return e;
	}
	json_t *r = json_pack("{s:O,s:o,s:b}", "accountId",
			      json_object_get(args, "accountId"), "queryState",
			      state, "canCalculateChanges", 1);
	e = jmap_query_window(args, ids, 10000, r);
	json_decref(ids);
	if (e != NULL) {
		json_decref(r);
		return e;
	}
	jmap_reply(req, "Mailbox/query", r);
	return NULL;
}

/* Every mailbox that changed is removed and, if it matches now, added at
 * its index: exact, as RFC 8620 5.6 allows. */
static json_t *mailbox_query_changes(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false);
	if (e != NULL)
		return e;
	const char *since = json_string_value(json_object_get(args, "sinceQueryState"));
	struct store_jmap_cursor c;
	if (since == NULL)
		return jmap_error("invalidArguments", "sinceQueryState");
	if (!jmap_state_parse(since, &c))
		return jmap_error("cannotCalculateChanges", NULL);
	struct store_jmap_changes ch;
	struct store_error err;
	if (store_jmap_changes(req->user, STORE_JMAP_MAILBOX, &c, 0, &ch,
			       &err) < 0)
		return jmap_store_error(req, &err);
	if (ch.too_old) {
		store_jmap_changes_free(&ch);
		return jmap_error("cannotCalculateChanges", NULL);
	}
	struct jmap_mailboxes m;
	if (jmap_mailboxes_load(req, &m, &err) < 0) {
		store_jmap_changes_free(&ch);
		return jmap_store_error(req, &err);
	}
	json_t *ids = mailbox_results(&m, args, &e);
	jmap_mailboxes_free(&m);
	if (ids == NULL) {
		store_jmap_changes_free(&ch);
		return e;
	}
	json_t *removed = json_array(), *added = json_array();
	struct store_jmap_change *lists[3] = {ch.created, ch.updated,
					      ch.destroyed};
	size_t counts[3] = {ch.created_count, ch.updated_count,
			    ch.destroyed_count};
	for (int l = 0; l < 3; l++) {
		for (size_t i = 0; i < counts[l]; i++) {
			const char *oid = lists[l][i].objectid;
			json_array_append_new(removed, json_string(oid));
			size_t k;
			json_t *x;
			json_array_foreach(ids, k, x) {
				if (strcmp(json_string_value(x), oid) == 0)
					json_array_append_new(
						added, json_pack("{s:s,s:I}",
								 "id", oid,
								 "index",
								 (json_int_t)k));
			}
		}
	}
	char state[48];
	jmap_state_format(&ch.new_state, state);
	json_t *r = json_pack("{s:O,s:s,s:s,s:o,s:o}", "accountId",
			      json_object_get(args, "accountId"),
			      "oldQueryState", since, "newQueryState", state,
			      "removed", removed, "added", added);
	if (json_is_true(json_object_get(args, "calculateTotal")))
		json_object_set_new(r, "total",
				    json_integer((json_int_t)json_array_size(ids)));
	json_decref(ids);
	store_jmap_changes_free(&ch);
	jmap_reply(req, "Mailbox/queryChanges", r);
	return NULL;
}

/* ---- set ------------------------------------------------------------ */

struct mset {
	struct jmap_req *req;
	struct jmap_mailboxes m;
	json_t *created, *updated, *destroyed;
	json_t *not_created, *not_updated, *not_destroyed;
	bool remove_emails;
};

static bool reload(struct mset *s)
{
	struct store_error err;
	jmap_mailboxes_free(&s->m);
	return jmap_mailboxes_load(s->req, &s->m, &err) == 0;
}

/* The full store name for a leaf under parent (NULL: top level). */
static char *full_name(const struct store_jmap_mailbox *parent,
		       const char *name)
{
	return parent ? xasprintf("%s/%s", parent->info.name, name)
		      : xstrdup(name);
}

static json_t *check_name(const char *name)
{
	if (name == NULL || name[0] == '\0' || strlen(name) > 1000)
		return jmap_set_error_props("invalidProperties",
					    "a name is 1 to 1000 octets",
					    "name");
	if (strchr(name, '/') != NULL)
		return jmap_set_error_props("invalidProperties",
					    "a name may not hold \"/\", the"
					    " hierarchy separator", "name");
	if (strcasecmp(name, "INBOX") == 0)
		return jmap_set_error_props("invalidProperties",
					    "INBOX is taken", "name");
	return NULL;
}

/* Resolves a parentId value: *parent_r NULL for top level. */
static json_t *resolve_parent(struct mset *s, json_t *v,
			      const struct store_jmap_mailbox **parent_r,
			      bool *later_r)
{
	*parent_r = NULL;
	*later_r = false;
	if (v == NULL || json_is_null(v))
		return NULL;
	const char *raw = json_string_value(v);
	if (raw == NULL)
		return jmap_set_error_props("invalidProperties", NULL,
					    "parentId");
	const char *id = jmap_resolve_id(s->req, raw);
	if (id == NULL && raw[0] == '#') {
		*later_r = true;
		return NULL;
	}
	*parent_r = jmap_mailbox_by_oid(&s->m, id);
	if (*parent_r == NULL)
		return jmap_set_error_props("invalidProperties",
					    "no such parent", "parentId");
	return NULL;
}

static json_t *apply_extras(struct mset *s, const struct store_jmap_mailbox *mb,
			    json_t *obj, bool creating)
{
	struct store_error err;
	json_t *role = json_object_get(obj, "role");
	json_t *order = json_object_get(obj, "sortOrder");
	json_t *sub = json_object_get(obj, "isSubscribed");
	unsigned su = mb->info.special_use;
	bool set_role = false;
	if (role != NULL) {
		const char *r = json_string_value(role);
		const char *cur = role_of(mb);
		bool same = (r == NULL && cur == NULL) ||
			    (r != NULL && cur != NULL && strcmp(r, cur) == 0);
		if (!same) {
			int bit = r == NULL ? 0 : role_bit(r);
			if ((!json_is_null(role) && r == NULL) || bit < 0 ||
			    strcmp(mb->info.name, "INBOX") == 0)
				return jmap_set_error_props(
					"invalidProperties",
					"not a role this mailbox can take",
					"role");
			if (bit != 0 && jmap_mailbox_by_role(&s->m, (unsigned)bit))
				return jmap_set_error_props(
					"invalidProperties",
					"another mailbox has this role", "role");
			su = (unsigned)bit;
			set_role = true;
		}
	}
	uint32_t so = mb->sort_order;
	if (order != NULL) {
		if (!json_is_integer(order) || json_integer_value(order) < 0 ||
		    json_integer_value(order) > UINT32_MAX)
			return jmap_set_error_props("invalidProperties", NULL,
						    "sortOrder");
		so = (uint32_t)json_integer_value(order);
	}
	if (sub != NULL && !json_is_boolean(sub))
		return jmap_set_error_props("invalidProperties", NULL,
					    "isSubscribed");
	if ((set_role || order != NULL) &&
	    store_jmap_mailbox_update(s->req->user, mb->info.id,
				      order ? &so : NULL,
				      set_role ? &su : NULL, &err) < 0)
		return jmap_set_error_store(&err);
	if (sub != NULL && (creating ? json_is_true(sub)
				     : json_is_true(sub) != mb->info.subscribed) &&
	    store_mailbox_subscribe(s->req->user, mb->info.name,
				    json_is_true(sub), &err) < 0)
		return jmap_set_error_store(&err);
	/* sharing (jmap-share.c) */
	return jmap_share_update(s->req, mb->info.name, obj);
}

static const char *const settable[] = {"name", "parentId", "role",
				       "sortOrder", "isSubscribed", NULL};

static json_t *props_check(json_t *obj, bool create)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		bool ok = false;
		for (const char *const *p = settable; *p && !ok; p++)
			ok = strcmp(*p, k) == 0;
		/* sharing (jmap-share.c) */
		ok = ok || jmap_share_key(k);
		/* server-set properties may be given with their value */
		if (!ok && !create)
			return jmap_set_error_props("invalidProperties",
						    "not settable", k);
		if (!ok && strcmp(k, "id") != 0 && strcmp(k, "myRights") != 0 &&
		    strcmp(k, "totalEmails") != 0 &&
		    strcmp(k, "unreadEmails") != 0 &&
		    strcmp(k, "totalThreads") != 0 &&
		    strcmp(k, "unreadThreads") != 0)
			return jmap_set_error_props("invalidProperties",
						    "unknown property", k);
		if (!ok && (create || strcmp(k, "id") == 0))
			return jmap_set_error_props("invalidProperties",
						    "server-set", k);
	}
	return NULL;
}

/* 1 created, 0 must wait for a parent created later, -1 failed. */
static int create_one(struct mset *s, const char *cid, json_t *obj)
{
	json_t *e = props_check(obj, true);
	const char *name = json_string_value(json_object_get(obj, "name"));
	const struct store_jmap_mailbox *parent = NULL;
	bool later = false;
	if (e == NULL)
		e = check_name(name);
	if (e == NULL)
		e = resolve_parent(s, json_object_get(obj, "parentId"), &parent,
				   &later);
	if (e == NULL && later)
		return 0;
	char *full = NULL;
	struct store_error err;
	if (e == NULL) {
		full = full_name(parent, name);
		for (size_t i = 0; i < s->m.n && e == NULL; i++)
			if (strcasecmp(s->m.v[i].info.name, full) == 0 &&
			    !s->m.v[i].info.noselect)
				e = jmap_set_error_props("invalidProperties",
							 "a sibling has this"
							 " name", "name");
	}
	if (e == NULL && store_mailbox_create(s->req->user, full, 0, &err) < 0)
		e = err.kind == STORE_ERR_EXISTS
			    ? jmap_set_error_props("invalidProperties",
						   "a sibling has this name",
						   "name")
			    : jmap_set_error_store(&err);
	const struct store_jmap_mailbox *mb = NULL;
	if (e == NULL && reload(s))
		mb = by_name(&s->m, full, strlen(full));
	if (e == NULL && mb == NULL)
		e = jmap_set_error("serverFail", NULL);
	if (e == NULL)
		e = apply_extras(s, mb, obj, true);
	if (e != NULL) {
		if (mb != NULL)
			store_mailbox_delete(s->req->user, full, &err);
		free(full);
		json_object_set_new(s->not_created, cid, e);
		return -1;
	}
	reload(s);
	mb = by_name(&s->m, full, strlen(full));
	free(full);
	json_t *r = mailbox_json(&s->m, mb, NULL);
	json_object_del(r, "name");
	json_object_del(r, "parentId");
	json_object_set_new(s->created, cid, r);
	jmap_add_created(s->req, cid, mb->info.objectid);
	return 1;
}

static void update_one(struct mset *s, const char *id, json_t *patch)
{
	const struct store_jmap_mailbox *mb = jmap_mailbox_by_oid(&s->m, id);
	json_t *e = mb == NULL ? jmap_set_error("notFound", NULL)
			       : props_check(patch, false);
	struct store_error err;
	json_t *name = e == NULL ? json_object_get(patch, "name") : NULL;
	json_t *pid = e == NULL ? json_object_get(patch, "parentId") : NULL;
	if (e == NULL && (name != NULL || pid != NULL)) {
		const struct store_jmap_mailbox *parent = parent_of(&s->m, mb);
		const char *leafname = name ? json_string_value(name) : leaf(mb);
		bool later = false;
		if (pid != NULL)
			e = resolve_parent(s, pid, &parent, &later);
		if (e == NULL && later)
			e = jmap_set_error_props("invalidProperties", NULL,
						 "parentId");
		if (e == NULL && name != NULL)
			e = check_name(leafname);
		char *to = e == NULL ? full_name(parent, leafname) : NULL;
		if (e == NULL && strcmp(mb->info.name, "INBOX") == 0)
			e = jmap_set_error("forbidden", "INBOX stays INBOX");
		for (const struct store_jmap_mailbox *p = parent;
		     e == NULL && p != NULL; p = parent_of(&s->m, p))
			if (p == mb)
				e = jmap_set_error_props("invalidProperties",
							 "a mailbox cannot"
							 " move into itself",
							 "parentId");
		if (e == NULL && strcmp(to, mb->info.name) != 0 &&
		    store_mailbox_rename(s->req->user, mb->info.name, to,
					 &err) < 0)
			e = err.kind == STORE_ERR_EXISTS
				    ? jmap_set_error_props("invalidProperties",
							   "a sibling has this"
							   " name", "name")
				    : jmap_set_error_store(&err);
		if (e == NULL) {
			reload(s);
			mb = jmap_mailbox_by_oid(&s->m, id);
		}
		free(to);
	}
	if (e == NULL && mb != NULL)
		e = apply_extras(s, mb, patch, false);
	if (e != NULL) {
		json_object_set_new(s->not_updated, id, e);
		return;
	}
	reload(s);
	json_object_set_new(s->updated, id, json_null());
}

static size_t depth_of(const char *name)
{
	size_t d = 0;
	for (; *name; name++)
		d += *name == '/';
	return d;
}

static void destroy_one(struct mset *s, const char *id)
{
	const struct store_jmap_mailbox *mb = jmap_mailbox_by_oid(&s->m, id);
	json_t *e = NULL;
	struct store_error err;
	if (mb == NULL)
		e = jmap_set_error("notFound", NULL);
	else if (strcmp(mb->info.name, "INBOX") == 0)
		e = jmap_set_error("forbidden", "INBOX cannot be destroyed");
	for (size_t i = 0; e == NULL && i < s->m.n; i++)
		if (parent_of(&s->m, &s->m.v[i]) == mb)
			e = jmap_set_error("mailboxHasChild", NULL);
	if (e == NULL && mb->info.messages > 0 && !s->remove_emails)
		e = jmap_set_error("mailboxHasEmail", NULL);
	if (e == NULL && store_mailbox_delete(s->req->user, mb->info.name,
					      &err) < 0)
		e = jmap_set_error_store(&err);
	if (e != NULL) {
		json_object_set_new(s->not_destroyed, id, e);
		return;
	}
	reload(s);
	json_array_append_new(s->destroyed, json_string(id));
}

static json_t *mailbox_set(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, true);
	if (e != NULL)
		return e;
	json_t *create = json_object_get(args, "create");
	json_t *update = json_object_get(args, "update");
	json_t *destroy = json_object_get(args, "destroy");
	if ((create && !json_is_null(create) && !json_is_object(create)) ||
	    (update && !json_is_null(update) && !json_is_object(update)) ||
	    (destroy && !json_is_null(destroy) && !json_is_array(destroy)))
		return jmap_error("invalidArguments", "create/update/destroy");
	if (json_object_size(create) + json_object_size(update) +
		    json_array_size(destroy) >
	    req->j->set.max_objects_in_set)
		return jmap_error("requestTooLarge", "more than %u objects",
				  req->j->set.max_objects_in_set);
	struct mset s;
	memset(&s, 0, sizeof(s));
	s.req = req;
	if (!jmap_arg_bool(args, "onDestroyRemoveEmails", false,
			   &s.remove_emails, &e))
		return e;
	json_t *old = jmap_state_json(req, STORE_JMAP_MAILBOX);
	json_t *ifin = json_object_get(args, "ifInState");
	if (old == NULL)
		return jmap_error("serverFail", NULL);
	if (ifin != NULL && !json_is_null(ifin) &&
	    !json_equal(ifin, old)) {
		json_decref(old);
		return jmap_error("stateMismatch", NULL);
	}
	if (!reload(&s)) {
		json_decref(old);
		return jmap_error("serverFail", NULL);
	}
	s.created = json_object();
	s.updated = json_object();
	s.destroyed = json_array();
	s.not_created = json_object();
	s.not_updated = json_object();
	s.not_destroyed = json_object();
	/* creates: a parent may come later in the same request */
	json_t *todo = json_is_object(create) ? json_copy(create) : json_object();
	for (bool progress = true; progress && json_object_size(todo) > 0;) {
		progress = false;
		const char *cid;
		json_t *obj, *tmp;
		json_object_foreach_safe(todo, tmp, cid, obj) {
			int r = json_is_object(obj)
					? create_one(&s, cid, obj)
					: (json_object_set_new(
						   s.not_created, cid,
						   jmap_set_error("invalidProperties",
								  NULL)),
					   -1);
			if (r != 0) {
				json_object_del(todo, cid);
				progress = true;
			}
		}
	}
	const char *cid;
	json_t *obj;
	json_object_foreach(todo, cid, obj)
		json_object_set_new(s.not_created, cid,
				    jmap_set_error_props("invalidProperties",
							 "parent not created",
							 "parentId"));
	json_decref(todo);
	const char *id;
	json_object_foreach(update, id, obj) {
		const char *rid = jmap_resolve_id(req, id);
		if (!json_is_object(obj))
			json_object_set_new(s.not_updated, id,
					    jmap_set_error("invalidPatch", NULL));
		else
			update_one(&s, rid ? rid : id, obj);
	}
	/* children first */
	size_t n = json_array_size(destroy);
	const char **order = xcalloc(n ? n : 1, sizeof(char *));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *d = jmap_resolve_id(req, json_string_value(
							     json_array_get(destroy, i)));
		if (d != NULL)
			order[k++] = d;
	}
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0; j--) {
			const struct store_jmap_mailbox *a =
				jmap_mailbox_by_oid(&s.m, order[j - 1]);
			const struct store_jmap_mailbox *b =
				jmap_mailbox_by_oid(&s.m, order[j]);
			if (a == NULL || b == NULL ||
			    depth_of(a->info.name) >= depth_of(b->info.name))
				break;
			const char *t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	for (size_t i = 0; i < k; i++)
		destroy_one(&s, order[i]);
	free(order);
	jmap_mailboxes_free(&s.m);
	json_t *r = json_pack("{s:O,s:o,s:o}", "accountId",
			      json_object_get(args, "accountId"), "oldState", old,
			      "newState", jmap_state_json(req, STORE_JMAP_MAILBOX));
	json_object_set_new(r, "created", s.created);
	json_object_set_new(r, "updated", s.updated);
	json_object_set_new(r, "destroyed", s.destroyed);
	json_object_set_new(r, "notCreated", s.not_created);
	json_object_set_new(r, "notUpdated", s.not_updated);
	json_object_set_new(r, "notDestroyed", s.not_destroyed);
	jmap_reply(req, "Mailbox/set", r);
	return NULL;
}

const struct jmap_method jmap_mailbox_methods[] = {
	{"Mailbox/get", JMAP_C_MAIL, mailbox_get},
	{"Mailbox/changes", JMAP_C_MAIL, mailbox_changes},
	{"Mailbox/query", JMAP_C_MAIL, mailbox_query},
	{"Mailbox/queryChanges", JMAP_C_MAIL, mailbox_query_changes},
	{"Mailbox/set", JMAP_C_MAIL, mailbox_set},
	{NULL, 0, NULL},
};
