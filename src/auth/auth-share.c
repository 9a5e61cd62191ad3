/*
 * An account looking at another account's mail (issue 15, shared
 * mailboxes): the struct store_viewer the store's rights evaluation
 * needs, built from accounts.db (the viewer's groups, whether the two
 * share a domain, shared_admin), and the handle store_user_open_as gives
 * with it: IMAP, send-as (src/delivery/delivery-sendas.c), JMAP and
 * Sieve take it from here so the rule is written once. Built from auth
 * lookups alone. And the reverse ACL index rebuilt from an owner's ACLs
 * (loftctl check).
 */
#include "auth-private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "store.h"

static const char *domain_of(const char *address)
{
	const char *at = strrchr(address, '@');
	return at != NULL ? at + 1 : "";
}

int auth_viewer_load(struct auth *auth, int64_t viewer_id,
		     const char *viewer_address, bool cross_domain,
		     struct auth_viewer *v, struct store_error *err)
{
	*v = (struct auth_viewer){.id = viewer_id, .address = viewer_address,
				  .cross_domain = cross_domain};
	if (viewer_id > 0 &&
	    auth_user_groups(auth, viewer_id, &v->groups, &v->group_count) < 0) {
		if (err != NULL) {
			err->kind = STORE_ERR_TEMP;
			strcpy(err->msg, "Account lookup failed");
		}
		return -1;
	}
	v->shared_admin = viewer_id > 0 &&
			  auth_user_shared_admin(auth, viewer_id) == 1;
	return 0;
}

void auth_viewer_free(struct auth_viewer *v)
{
	free(v->groups);
	v->groups = NULL;
	v->group_count = 0;
}

int auth_viewer_open_loaded(struct auth *auth, struct store *store,
			    const struct auth_viewer *av, int64_t owner_id,
			    const char *owner_address,
			    struct store_user **user_r, struct store_error *err)
{
	struct store_viewer v = {
		.user_id = av->id,
		.groups = av->groups,
		.group_count = av->group_count,
		.same_domain = strcasecmp(domain_of(owner_address),
					  domain_of(av->address)) == 0,
		.cross_domain = av->cross_domain,
	};
	/* shared_admin: l and a on the domain's shared addresses */
	if (av->shared_admin && v.same_domain &&
	    auth_user_is_shared(auth, owner_id) == 1)
		v.extra_rights = STORE_RIGHT_LOOKUP | STORE_RIGHT_ADMIN;
	return store_user_open_as(store, owner_id, &v, user_r, err);
}

int auth_viewer_open(struct auth *auth, struct store *store,
		     int64_t viewer_id, const char *viewer_address,
		     int64_t owner_id, const char *owner_address,
		     bool cross_domain, struct store_user **user_r,
		     struct store_error *err)
{
	struct auth_viewer v;
	if (auth_viewer_load(auth, viewer_id, viewer_address, cross_domain, &v,
			     err) < 0)
		return -1;
	int r = auth_viewer_open_loaded(auth, store, &v, owner_id,
					owner_address, user_r, err);
	auth_viewer_free(&v);
	return r;
}

/* ---- the reverse index, rebuilt (loftctl check) ---------------------- */

static int hint_cmp(const void *a, const void *b)
{
	const int64_t *x = a, *y = b;
	if (x[0] != y[0])
		return x[0] < y[0] ? -1 : 1;
	return x[1] < y[1] ? -1 : x[1] > y[1];
}

int auth_acl_hints_rebuild(struct auth *auth, int64_t owner_id,
			   const struct store_acl_row *rows, size_t count,
			   unsigned *added_r, unsigned *removed_r,
			   char **error_r)
{
	*added_r = *removed_r = 0;
	/* what the owner's ACLs grant: (kind, id) of positive entries */
	int64_t *want = xcalloc(count ? count * 2 : 2, sizeof(int64_t));
	size_t nw = 0;
	for (size_t i = 0; i < count; i++) {
		if (rows[i].entry.negative || rows[i].entry.rights == 0)
			continue;
		want[2 * nw] = rows[i].entry.kind;
		want[2 * nw + 1] = rows[i].entry.id;
		nw++;
	}
	qsort(want, nw, 2 * sizeof(int64_t), hint_cmp);
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL) {
		free(want);
		return -1;
	}
	int ret = -1;
	struct asql_stmt *sel = NULL, *ins = NULL, *del = NULL;
	if (asql_begin(c->db) != 0 ||
	    (sel = asql_prepare(c->db, "SELECT kind, ident FROM acl_hints"
				      " WHERE owner = ?")) == NULL ||
	    (ins = asql_prepare(c->db, "INSERT INTO acl_hints(kind, ident,"
				      " owner) VALUES (?, ?, ?)"
				      " ON CONFLICT DO NOTHING")) == NULL ||
	    (del = asql_prepare(c->db, "DELETE FROM acl_hints WHERE kind = ?"
				      " AND ident = ? AND owner = ?")) == NULL)
		goto out;
	/* stale hints go; missing ones come */
	asql_bind_int64(sel, 1, owner_id);
	int64_t *have = NULL;
	size_t nh = 0, cap = 0;
	int rc;
	while ((rc = asql_step(sel)) == ASQL_ROW) {
		if (nh == cap) {
			cap = cap ? cap * 2 : 16;
			have = xrealloc(have, cap * 2 * sizeof(int64_t));
		}
		have[2 * nh] = asql_int64(sel, 0);
		have[2 * nh + 1] = asql_int64(sel, 1);
		nh++;
	}
	bool ok = rc == ASQL_DONE;
	for (size_t i = 0; i < nh && ok; i++) {
		if (bsearch(&have[2 * i], want, nw, 2 * sizeof(int64_t),
			    hint_cmp) != NULL)
			continue;
		asql_reset(del);
		asql_bind_int64(del, 1, have[2 * i]);
		asql_bind_int64(del, 2, have[2 * i + 1]);
		asql_bind_int64(del, 3, owner_id);
		ok = asql_step(del) == ASQL_DONE;
		(*removed_r)++;
	}
	for (size_t i = 0; i < nw && ok; i++) {
		asql_reset(ins);
		asql_bind_int64(ins, 1, want[2 * i]);
		asql_bind_int64(ins, 2, want[2 * i + 1]);
		asql_bind_int64(ins, 3, owner_id);
		ok = asql_step(ins) == ASQL_DONE;
		*added_r += (unsigned)asql_changes(c->db);
	}
	free(have);
	if (ok && asql_exec(c->db, "COMMIT") == 0)
		ret = 0;
out:
	if (ret < 0) {
		if (error_r != NULL && *error_r == NULL)
			*error_r = xasprintf("%s: %s", c->db->drv->name,
					     asql_errmsg(c->db));
		asql_exec(c->db, "ROLLBACK");
		*added_r = *removed_r = 0;
	}
	asql_finalize(sel);
	asql_finalize(ins);
	asql_finalize(del);
	auth_conn_put(auth, c);
	free(want);
	return ret;
}
