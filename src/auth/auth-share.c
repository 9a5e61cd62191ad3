/*
 * An account looking at another account's mail (issue 15, shared
 * mailboxes): the struct store_viewer the store's rights evaluation
 * needs, built from accounts.db (the viewer's groups, whether the two
 * share a domain, shared_admin), and the handle store_user_open_as gives
 * with it; and who may send as a shared address (holders of i on its
 * mailbox). IMAP, SMTP submission, JMAP and Sieve take them from here so
 * the rule is written once. Built from auth lookups alone.
 */
#include "auth.h"

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

int auth_viewer_open(struct auth *auth, struct store *store,
		     int64_t viewer_id, const char *viewer_address,
		     int64_t owner_id, const char *owner_address,
		     bool cross_domain, struct store_user **user_r,
		     struct store_error *err)
{
	int64_t *groups = NULL;
	size_t ng = 0;
	if (viewer_id > 0 &&
	    auth_user_groups(auth, viewer_id, &groups, &ng) < 0) {
		if (err != NULL) {
			err->kind = STORE_ERR_TEMP;
			strcpy(err->msg, "Account lookup failed");
		}
		return -1;
	}
	struct store_viewer v = {
		.user_id = viewer_id,
		.groups = groups,
		.group_count = ng,
		.same_domain = strcasecmp(domain_of(owner_address),
					  domain_of(viewer_address)) == 0,
		.cross_domain = cross_domain,
	};
	/* shared_admin: l and a on the domain's shared addresses */
	if (viewer_id > 0 && v.same_domain &&
	    auth_user_shared_admin(auth, viewer_id) == 1 &&
	    auth_user_is_shared(auth, owner_id) == 1)
		v.extra_rights = STORE_RIGHT_LOOKUP | STORE_RIGHT_ADMIN;
	int r = store_user_open_as(store, owner_id, &v, user_r, err);
	free(groups);
	return r;
}

/* 1 when the viewer holds i on the shared account's INBOX. */
static int holds_insert(struct auth *auth, struct store *store,
			const struct auth_user *sender,
			const struct auth_user *shared, bool cross_domain)
{
	struct store_user *u;
	struct store_error err;
	if (auth_viewer_open(auth, store, sender->id, sender->address,
			     shared->id, shared->address, cross_domain, &u,
			     &err) < 0)
		return err.kind == STORE_ERR_NOTFOUND ? 0 : -1;
	unsigned rights = 0;
	int r = store_viewer_rights(u, "INBOX", &rights, &err);
	store_user_unref(&u);
	if (r < 0)
		return err.kind == STORE_ERR_NOTFOUND ? 0 : -1;
	return (rights & STORE_RIGHT_INSERT) != 0;
}

int auth_may_send_as_shared(struct auth *auth, struct store *store,
			    int64_t user_id, const char *address,
			    bool cross_domain)
{
	struct auth_user sender, shared;
	int rc = auth_lookup_id(auth, user_id, &sender);
	if (rc != 1)
		return rc < 0 ? -1 : 0;
	rc = auth_lookup(auth, address, &shared);
	if (rc == 0) {
		/* a +detail of the shared address is the same address */
		const char *at = strrchr(address, '@');
		const char *plus = at ? memchr(address, '+',
					       (size_t)(at - address))
				      : NULL;
		if (plus == NULL)
			return 0;
		char *base = xasprintf("%.*s%s", (int)(plus - address),
				       address, at);
		rc = auth_lookup(auth, base, &shared);
		free(base);
	}
	if (rc != 1)
		return rc < 0 ? -1 : 0;
	if (shared.id == user_id)
		return 0;   /* the account's own: auth_may_send_as */
	rc = auth_user_is_shared(auth, shared.id);
	if (rc != 1)
		return rc;
	return holds_insert(auth, store, &sender, &shared, cross_domain);
}

int auth_send_shared_addresses(struct auth *auth, struct store *store,
			       int64_t user_id, bool cross_domain,
			       auth_list_fn *fn, void *ctx)
{
	struct auth_user sender;
	int rc = auth_lookup_id(auth, user_id, &sender);
	if (rc != 1)
		return rc < 0 ? -1 : 0;
	int64_t *owners = NULL;
	size_t n = 0;
	if (auth_acl_owners(auth, user_id, &owners, &n) < 0)
		return -1;
	int ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct auth_user shared;
		if (owners[i] == user_id ||
		    auth_user_is_shared(auth, owners[i]) != 1 ||
		    auth_lookup_id(auth, owners[i], &shared) != 1)
			continue;
		int r = holds_insert(auth, store, &sender, &shared,
				     cross_domain);
		if (r < 0)
			ret = -1;
		else if (r == 1)
			fn(ctx, shared.address, "shared");
	}
	free(owners);
	return ret;
}
