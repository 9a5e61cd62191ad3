/*
 * What the store asks of the accounts (src/store knows nothing of
 * accounts.db): an account's quota (store_limits_fn) and, for the
 * retention task, the list of accounts and each one's retention policy.
 * loftd and loftctl both hand these to the store.
 */
#include "auth.h"
#include "auth-private.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "store.h"

int auth_store_limits(void *ctx, int64_t user_id,
		      struct store_account_limits *limits_r)
{
	struct auth_policy policy;
	if (auth_user_policy(ctx, user_id, &policy) < 0)
		return -1;
	limits_r->quota_bytes = policy.quota_bytes;
	limits_r->quota_messages = policy.quota_messages;
	limits_r->deleted_retention_days = policy.deleted_retention_days;
	limits_r->deleted_in_quota = policy.deleted_in_quota;
	limits_r->backend = policy.mail_store;
	return 0;
}

int auth_user_mail_store_set(struct auth *auth, int64_t user_id,
			     int backend, char **error_r)
{
	if (auth->client != NULL || auth->set.postgres != NULL) {
		*error_r = xstrdup("where mail lives is kept in accounts.db "
				   "only (backend = sqlite)");
		return -1;
	}
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	int rc = asql_run(c->db, "UPDATE users SET mail_store = ? WHERE id = ?",
			  "ii", (int64_t)backend, user_id);
	if (rc < 0)
		*error_r = xasprintf("accounts.db: %s", asql_errmsg(c->db));
	else if (rc == 0)
		*error_r = xstrdup("no such account");
	auth_conn_put(auth, c);
	return rc > 0 ? 0 : -1;
}

void auth_policy_to_retention(const struct auth_policy *p,
			      struct store_retention_policy *r)
{
	memset(r, 0, sizeof(*r));
	r->pop3_retention_days = p->pop3_retention_days;
	switch (p->pop3_delete) {
	case AUTH_POP3_EXPUNGE: r->pop3_delete = STORE_POP3_EXPUNGE; break;
	case AUTH_POP3_HIDE: r->pop3_delete = STORE_POP3_HIDE; break;
	case AUTH_POP3_TRASH: r->pop3_delete = STORE_POP3_TRASH; break;
	case AUTH_POP3_AUTO: r->pop3_delete = STORE_POP3_AUTO; break;
	}
	r->trash_retention_days = p->trash_retention_days;
	r->junk_retention_days = p->junk_retention_days;
	r->deleted_retention_days = p->deleted_retention_days;
}

struct id_list {
	struct auth *auth;
	int64_t *ids;
	size_t count, cap;
};

static void collect_id(void *ctx, const char *address, const char *extra)
{
	struct id_list *l = ctx;
	struct auth_user u;
	if (auth_lookup(l->auth, address, &u) != 1)
		return;
	if (l->count == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->ids = xrealloc(l->ids, l->cap * sizeof(*l->ids));
	}
	l->ids[l->count++] = u.id;
}

static int source_accounts(void *ctx, int64_t **ids_r, size_t *count_r)
{
	struct id_list l = {ctx, NULL, 0, 0};
	char *error = NULL;
	int r = auth_user_list(ctx, collect_id, &l, &error);
	free(error);
	*ids_r = l.ids;
	*count_r = l.count;
	return r;
}

static int source_policy(void *ctx, int64_t user_id,
			 struct store_retention_policy *policy_r)
{
	struct auth_user u;
	struct auth_policy p;
	int r = auth_lookup_id(ctx, user_id, &u);
	if (r <= 0)
		return r < 0 ? -1 : 1;
	if (auth_user_policy(ctx, user_id, &p) < 0)
		return -1;
	auth_policy_to_retention(&p, policy_r);
	return 0;
}

struct store_retention_source auth_retention_source(struct auth *auth)
{
	struct store_retention_source src = {
		.accounts = source_accounts,
		.policy = source_policy,
		.ctx = auth,
	};
	return src;
}
