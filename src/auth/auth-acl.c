/*
 * What shared mailboxes need from accounts.db (auth.h "shared
 * mailboxes"): groups per domain and their members, and the reverse
 * index of ACL grants, so that LIST opens only the indexes of owners who
 * granted the viewer something. The ACLs themselves live in each
 * owner's index (src/store); the hints here may be stale (a crash
 * between the hint and the owner's commit), never missing.
 */
#include "store.h"
#include "auth-private.h"
#include "auth-wire.h"

#include <stdlib.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "buf.h"

/* Runs sql with int64 arguments, collecting the first column. */
static int ids_query(struct auth *auth, const char *sql, const int64_t *args,
		     size_t nargs, int64_t **ids_r, size_t *count_r)
{
	*ids_r = NULL;
	*count_r = 0;
	struct auth_conn *c = auth_conn_get(auth, NULL);
	if (c == NULL)
		return -1;
	struct asql_stmt *st;
	int ret = 0;
	if ((st = asql_prepare(c->db, sql)) == NULL) {
		auth_conn_put(auth, c);
		return -1;
	}
	for (size_t i = 0; i < nargs; i++)
		asql_bind_int64(st, (int)i + 1, args[i]);
	int rc;
	size_t cap = 0;
	while ((rc = asql_step(st)) == ASQL_ROW) {
		if (*count_r == cap) {
			cap = cap ? 2 * cap : 8;
			*ids_r = xrealloc(*ids_r, cap * sizeof(int64_t));
		}
		(*ids_r)[(*count_r)++] = asql_int64(st, 0);
	}
	if (rc != ASQL_DONE) {
		free(*ids_r);
		*ids_r = NULL;
		*count_r = 0;
		ret = -1;
	}
	asql_finalize(st);
	auth_conn_put(auth, c);
	return ret;
}

int auth_user_groups(struct auth *auth, int64_t user_id, int64_t **ids_r,
		     size_t *count_r)
{
	if (auth->client != NULL)
		return auth_client_user_groups(auth, user_id, ids_r, count_r);
	return ids_query(auth, "SELECT group_id FROM group_members"
			       " WHERE user_id = ? ORDER BY group_id",
			 &user_id, 1, ids_r, count_r);
}

int auth_acl_owners(struct auth *auth, int64_t user_id, int64_t **ids_r,
		    size_t *count_r)
{
	if (auth->client != NULL)
		return auth_client_acl_owners(auth, user_id, ids_r, count_r);
	/* 1 user, 2 group, 3 anyone, 4 authenticated (store.h); a
	 * shared_admin sees every shared address of its domain */
	int64_t args[2] = {user_id, user_id};
	/* a deleted owner's hints stay (no cascade): never returned */
	return ids_query(auth, "SELECT owner FROM acl_hints WHERE"
			       " ((kind = 1 AND ident = ?1) OR kind IN (3, 4)"
			       " OR (kind = 2 AND ident IN (SELECT group_id"
			       " FROM group_members WHERE user_id = ?2)))"
			       " AND owner IN (SELECT id FROM users)"
			       " UNION SELECT u.id FROM users u JOIN"
			       " user_settings s ON s.user_id = u.id AND"
			       " s.key = 'shared' AND s.value = 'yes'"
			       " WHERE u.domain_id = (SELECT domain_id FROM"
			       " users WHERE id = ?1) AND EXISTS (SELECT 1"
			       " FROM user_settings WHERE user_id = ?1 AND"
			       " key = 'shared_admin' AND value = 'yes')"
			       " ORDER BY 1",
			 args, 2, ids_r, count_r);
}

int auth_acl_hint(void *ctx, int64_t owner_id, int kind, int64_t id)
{
	struct auth *auth = ctx;
	if (auth->client != NULL)
		return auth_client_acl_hint(auth, owner_id, kind, id);
	struct auth_conn *c = auth_conn_get(auth, NULL);
	if (c == NULL)
		return -1;
	struct asql_stmt *st;
	int ret = -1;
	if ((st = asql_prepare(c->db, "INSERT INTO acl_hints(kind, ident,"
				      " owner) VALUES (?, ?, ?)"
				      " ON CONFLICT DO NOTHING")) != NULL) {
		asql_bind_int64(st, 1, kind);
		asql_bind_int64(st, 2, id);
		asql_bind_int64(st, 3, owner_id);
		ret = asql_step(st) == ASQL_DONE ? 0 : -1;
		asql_finalize(st);
	}
	auth_conn_put(auth, c);
	return ret;
}

/* "name@domain" -> name and domain (lower case); -1 if malformed. */
static int group_split(const char *group, char *name, size_t name_size,
		       char *domain, size_t domain_size, char **error_r)
{
	const char *at = strrchr(group, '@');
	size_t n = at != NULL ? (size_t)(at - group) : 0;
	if (at == NULL || n == 0 || n >= name_size || strlen(at + 1) == 0 ||
	    strlen(at + 1) >= domain_size) {
		*error_r = xasprintf("%s: a group is NAME@DOMAIN", group);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)group[i];
		if (ch <= 0x20 || ch == 0x7f || ch == '$' || ch == '/') {
			*error_r = xasprintf("%s: invalid group name", group);
			return -1;
		}
		name[i] = (char)(ch < 0x80 ? (char)tolower(ch) : (char)ch);
	}
	name[n] = '\0';
	snprintf(domain, domain_size, "%s", at + 1);
	for (char *p = domain; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}

int auth_group_lookup(struct auth *auth, const char *name,
		      const char *domain, int64_t *id_r)
{
	if (auth->client != NULL)
		return auth_client_group_lookup(auth, name, domain, id_r);
	struct auth_conn *c = auth_conn_get(auth, NULL);
	if (c == NULL)
		return -1;
	struct asql_stmt *st;
	int ret = -1;
	char *lname = xstrdup(name), *ldom = xstrdup(domain);
	for (char *p = lname; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	for (char *p = ldom; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	if ((st = asql_prepare(c->db, "SELECT g.id FROM groups g JOIN domains d"
				      " ON d.id = g.domain_id"
				      " WHERE g.name = ? AND d.name = ?")) != NULL) {
		asql_bind_text(st, 1, lname);
		asql_bind_text(st, 2, ldom);
		int rc = asql_step(st);
		if (rc == ASQL_ROW)
			*id_r = asql_int64(st, 0);
		ret = rc == ASQL_ROW ? 1 : rc == ASQL_DONE ? 0 : -1;
		asql_finalize(st);
	}
	free(lname);
	free(ldom);
	auth_conn_put(auth, c);
	return ret;
}

int auth_group_name(struct auth *auth, int64_t id, char *out, size_t size)
{
	if (auth->client != NULL)
		return auth_client_group_name(auth, id, out, size);
	struct auth_conn *c = auth_conn_get(auth, NULL);
	if (c == NULL)
		return -1;
	struct asql_stmt *st;
	int ret = -1;
	if ((st = asql_prepare(c->db, "SELECT g.name, d.name FROM groups g"
				      " JOIN domains d ON d.id = g.domain_id"
				      " WHERE g.id = ?")) != NULL) {
		asql_bind_int64(st, 1, id);
		int rc = asql_step(st);
		if (rc == ASQL_ROW)
			snprintf(out, size, "%s@%s", asql_text(st, 0),
				 asql_text(st, 1));
		ret = rc == ASQL_ROW ? 1 : rc == ASQL_DONE ? 0 : -1;
		asql_finalize(st);
	}
	auth_conn_put(auth, c);
	return ret;
}

/* One statement with text arguments in a transaction of its own; the
 * number of rows changed, or -1. */
static int admin_run(struct auth *auth, const char *sql, const char *a1,
		     const char *a2, char **error_r)
{
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	int ret = asql_run(c->db, sql, "ss", a1, a2);
	if (ret < 0) {
		*error_r = xasprintf("%s: %s", c->db->drv->name,
				     asql_errmsg(c->db));
		ret = -1;
	}
	auth_conn_put(auth, c);
	return ret;
}

int auth_group_add(struct auth *auth, const char *group, char **error_r)
{
	return auth_group_add_members(auth, group, NULL, 0, error_r);
}

int auth_group_add_members(struct auth *auth, const char *group,
			   char *const *addresses, size_t count,
			   char **error_r)
{
	char name[128], dom[256];
	if (group_split(group, name, sizeof(name), dom, sizeof(dom),
			error_r) < 0)
		return -1;
	if (!auth_domain_exists(auth, dom)) {
		*error_r = xasprintf("no domain %s", dom);
		return -1;
	}
	/* every member found first: a typo changes nothing */
	int64_t *ids = xcalloc(count ? count : 1, sizeof(*ids));
	for (size_t i = 0; i < count; i++) {
		struct auth_user u;
		int r = auth_lookup(auth, addresses[i], &u);
		if (r <= 0) {
			*error_r = r < 0 ? xstrdup("accounts: lookup failed")
					 : xasprintf("no user %s", addresses[i]);
			free(ids);
			return -1;
		}
		ids[i] = u.id;
	}
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL) {
		free(ids);
		return -1;
	}
	/* the group and its members in one transaction */
	int64_t gid = 0;
	int r = asql_begin(c->db) < 0 ? -1
		: asql_int(c->db, &gid, "INSERT INTO groups(domain_id, name)"
			   " SELECT id, ?2 FROM domains WHERE name = ?1"
			   " ON CONFLICT DO NOTHING RETURNING id", "ss", dom,
			   name);
	struct asql_stmt *st = NULL;
	if (r == 1 && count > 0 &&
	    (st = asql_prepare(c->db, "INSERT INTO group_members(group_id,"
				      " user_id) VALUES (?, ?)"
				      " ON CONFLICT DO NOTHING")) == NULL)
		r = -1;
	for (size_t i = 0; st != NULL && r == 1 && i < count; i++) {
		asql_bind_int64(st, 1, gid);
		asql_bind_int64(st, 2, ids[i]);
		if (asql_step(st) != ASQL_DONE)
			r = -1;
		asql_reset(st);
	}
	if (st != NULL)
		asql_finalize(st);
	if (r < 0)
		*error_r = xasprintf("%s: %s", c->db->drv->name,
				     asql_errmsg(c->db));
	else if (r == 0)
		*error_r = xasprintf("group %s@%s already exists", name, dom);
	if (asql_end(c->db, r == 1) < 0 && r == 1) {
		*error_r = xasprintf("%s: %s", c->db->drv->name,
				     asql_errmsg(c->db));
		r = -1;
	}
	auth_conn_put(auth, c);
	free(ids);
	return r == 1 ? 0 : -1;
}

int auth_group_del(struct auth *auth, const char *group, char **error_r)
{
	char name[128], dom[256];
	if (group_split(group, name, sizeof(name), dom, sizeof(dom),
			error_r) < 0)
		return -1;
	int r = admin_run(auth, "DELETE FROM groups WHERE name = ?2 AND"
				" domain_id = (SELECT id FROM domains"
				" WHERE name = ?1)", dom, name, error_r);
	if (r == 0)
		*error_r = xasprintf("no group %s@%s", name, dom);
	return r > 0 ? 0 : -1;
}

int auth_group_member(struct auth *auth, const char *group,
		      const char *address, bool add, char **error_r)
{
	char name[128], dom[256];
	if (group_split(group, name, sizeof(name), dom, sizeof(dom),
			error_r) < 0)
		return -1;
	int64_t gid;
	struct auth_user u;
	int r = auth_group_lookup(auth, name, dom, &gid);
	if (r <= 0) {
		*error_r = r < 0 ? xstrdup("accounts.db: lookup failed")
				 : xasprintf("no group %s@%s", name, dom);
		return -1;
	}
	r = auth_lookup(auth, address, &u);
	if (r <= 0) {
		*error_r = r < 0 ? xstrdup("accounts.db: lookup failed")
				 : xasprintf("no user %s", address);
		return -1;
	}
	char g[32], uid[32];
	snprintf(g, sizeof(g), "%lld", (long long)gid);
	snprintf(uid, sizeof(uid), "%lld", (long long)u.id);
	r = admin_run(auth, add ? "INSERT INTO group_members(group_id,"
				  " user_id) VALUES (CAST(?1 AS INTEGER),"
				  " CAST(?2 AS INTEGER)) ON CONFLICT DO NOTHING"
				: "DELETE FROM group_members WHERE group_id ="
				  " CAST(?1 AS INTEGER) AND user_id ="
				  " CAST(?2 AS INTEGER)",
		      g, uid, error_r);
	return r < 0 ? -1 : 0;
}

int auth_group_list(struct auth *auth, const char *domain, auth_list_fn *fn,
		    void *ctx, char **error_r)
{
	return auth_db_list(auth, "SELECT g.name || '@' || d.name,"
				  " (SELECT count(*) FROM group_members m"
				  " WHERE m.group_id = g.id) || ' members'"
				  " FROM groups g JOIN domains d"
				  " ON d.id = g.domain_id WHERE CAST(?1 AS TEXT) IS NULL"
				  " OR d.name = ?1 ORDER BY 1",
			    false, 0, domain, fn, ctx, error_r);
}

int auth_group_members(struct auth *auth, const char *group, auth_list_fn *fn,
		       void *ctx, char **error_r)
{
	char name[128], dom[256];
	if (group_split(group, name, sizeof(name), dom, sizeof(dom),
			error_r) < 0)
		return -1;
	int64_t gid;
	int r = auth_group_lookup(auth, name, dom, &gid);
	if (r <= 0) {
		*error_r = r < 0 ? xstrdup("accounts.db: lookup failed")
				 : xasprintf("no group %s@%s", name, dom);
		return -1;
	}
	return auth_db_list(auth, "SELECT u.address, NULL FROM group_members m"
				  " JOIN users u ON u.id = m.user_id"
				  " WHERE m.group_id = ? ORDER BY 1",
			    true, gid, NULL, fn, ctx, error_r);
}

/* ---- identifiers (RFC 4314 3): IMAP and loftctl share them ---------- */

static const char *domain_part(const char *address)
{
	const char *at = strrchr(address, '@');
	return at != NULL ? at + 1 : "";
}

int auth_acl_identifier(struct auth *auth, const char *text,
			const char *owner_address, bool cross_domain,
			int *kind_r, int64_t *id_r, bool *negative_r,
			const char **error_r)
{
	const char *s = text;
	*negative_r = false;
	*id_r = 0;
	if (*s == '-') {
		*negative_r = true;
		s++;
	}
	if (strcmp(s, "anyone") == 0) {
		*kind_r = STORE_ACL_ANYONE;
		return 0;
	}
	if (strcmp(s, "authenticated") == 0) {
		*kind_r = STORE_ACL_AUTHENTICATED;
		return 0;
	}
	if (*s == '$') {
		*kind_r = STORE_ACL_GROUP;
		int r = s[1] == '\0' ? 0
			: auth_group_lookup(auth, s + 1, domain_part(owner_address),
					    id_r);
		if (r < 0) {
			*error_r = "[UNAVAILABLE] Cannot read the accounts now";
			return -1;
		}
		if (r == 0) {
			*error_r = "[NONEXISTENT] No such group";
			return -1;
		}
		return 0;
	}
	struct auth_user u;
	int r = *s == '\0' ? 0 : auth_lookup(auth, s, &u);
	if (r < 0) {
		*error_r = "[UNAVAILABLE] Cannot read the accounts now";
		return -1;
	}
	if (r == 0) {
		/* a typo never waits for a new account */
		*error_r = "[NONEXISTENT] No such account";
		return -1;
	}
	if (strcasecmp(u.address, owner_address) == 0) {
		*error_r = "[CANNOT] The owner always has every right";
		return -1;
	}
	if (!cross_domain && strcasecmp(domain_part(u.address),
					domain_part(owner_address)) != 0) {
		*error_r = "[CANNOT] Rights cannot reach another domain here";
		return -1;
	}
	*kind_r = STORE_ACL_USER;
	*id_r = u.id;
	return 0;
}

char *auth_acl_identifier_text(struct auth *auth, int kind, int64_t id,
			       bool negative, const char *owner_address)
{
	const char *neg = negative ? "-" : "";
	struct auth_user u;
	char g[512];
	switch (kind) {
	case STORE_ACL_ANYONE:
		return xasprintf("%sanyone", neg);
	case STORE_ACL_AUTHENTICATED:
		return xasprintf("%sauthenticated", neg);
	case STORE_ACL_USER:
		if (auth_lookup_id(auth, id, &u) != 1)
			return NULL;   /* the account is gone */
		return xasprintf("%s%s", neg, u.address);
	case STORE_ACL_GROUP:
		if (auth_group_name(auth, id, g, sizeof(g)) != 1)
			return NULL;
		/* "$name" in the owner's domain */
		char *at = strrchr(g, '@');
		if (at != NULL && strcasecmp(at + 1, domain_part(owner_address)) == 0)
			*at = '\0';
		return xasprintf("%s$%s", neg, g);
	}
	return NULL;
}

/* ---- shared addresses ------------------------------------------------ */

int auth_shared_add(struct auth *auth, const char *address,
		    struct auth_user *user_r, char **error_r)
{
	char canon[AUTH_ADDRESS_MAX + 1];
	if (auth_address_canon(address, canon, sizeof(canon), error_r) < 0)
		return -1;
	struct auth_user u;
	int r = auth_lookup(auth, canon, &u);
	if (r != 0) {
		*error_r = r < 0 ? xstrdup("accounts.db: lookup failed")
				 : xasprintf("%s exists already", canon);
		return -1;
	}
	if (!auth_domain_exists(auth, domain_part(canon))) {
		*error_r = xasprintf("no domain %s", domain_part(canon));
		return -1;
	}
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	int ret = -1;
	int64_t id = 0;
	if (asql_begin(c->db) < 0)
		goto fail;
	if (asql_int(c->db, &id, "INSERT INTO users(address, domain_id,"
		     " password_hash, created) SELECT ?1, id, ?2, ?4 FROM"
		     " domains WHERE name = ?3 RETURNING id", "sssi", canon,
		     AUTH_HASH_NOLOGIN, domain_part(canon),
		     (int64_t)time(NULL)) != 1 ||
	    asql_run(c->db, "INSERT INTO user_settings(user_id, key, value)"
		     " VALUES (?, 'shared', 'yes')", "i", id) != 1 ||
	    asql_exec(c->db, "COMMIT") != 0)
		goto fail;
	user_r->id = id;
	snprintf(user_r->address, sizeof(user_r->address), "%s", canon);
	user_r->disabled = false;
	ret = 0;
	goto out;
fail:
	*error_r = xasprintf("%s: %s", c->db->drv->name, asql_errmsg(c->db));
	asql_exec(c->db, "ROLLBACK");
out:
	auth_conn_put(auth, c);
	return ret;
}

int auth_user_shared_admin(struct auth *auth, int64_t user_id)
{
	if (auth->client != NULL)
		return auth_client_user_flag(auth, AUTH_WIRE_USER_SHARED_ADMIN,
					     user_id);
	int64_t *ids;
	size_t n;
	if (ids_query(auth, "SELECT 1 FROM user_settings WHERE user_id = ?"
			    " AND key = 'shared_admin' AND value = 'yes'",
		      &user_id, 1, &ids, &n) < 0)
		return -1;
	free(ids);
	return n > 0;
}

int auth_user_is_shared(struct auth *auth, int64_t user_id)
{
	if (auth->client != NULL)
		return auth_client_user_flag(auth, AUTH_WIRE_USER_IS_SHARED,
					     user_id);
	int64_t *ids;
	size_t n;
	if (ids_query(auth, "SELECT 1 FROM user_settings WHERE user_id = ?"
			    " AND key = 'shared' AND value = 'yes'",
		      &user_id, 1, &ids, &n) < 0)
		return -1;
	free(ids);
	return n > 0;
}

int auth_shared_list(struct auth *auth, const char *domain, auth_list_fn *fn,
		     void *ctx, char **error_r)
{
	return auth_db_list(auth, "SELECT u.address, NULL FROM users u JOIN"
				  " user_settings s ON s.user_id = u.id"
				  " AND s.key = 'shared' AND s.value = 'yes'"
				  " JOIN domains d ON d.id = u.domain_id"
				  " WHERE CAST(?1 AS TEXT) IS NULL OR d.name = ?1 ORDER BY 1",
			    false, 0, domain, fn, ctx, error_r);
}
