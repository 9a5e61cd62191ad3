/*
 * Sending as a shared address (delivery-sendas.h): the i right on its
 * INBOX, as its ACL says for this user (groups, anyone, authenticated,
 * negative entries: store_acl_evaluate through a viewer's handle).
 */
#include "delivery-sendas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "buf.h"
#include "store.h"

/* 1 user holds i on the INBOX of owner (a shared address), 0 not (or
 * owner is not a shared address), -1 error. */
static int holds_insert(struct auth *auth, struct store *store,
			const struct auth_user *user, bool cross_domain,
			const struct auth_user *owner)
{
	struct store_user *h = NULL;
	struct store_error err;
	unsigned rights = 0;
	int shared = auth_user_is_shared(auth, owner->id);

	if (shared != 1)
		return shared < 0 ? -1 : 0;
	if (auth_viewer_open(auth, store, user->id, user->address, owner->id,
			     owner->address, cross_domain, &h, &err) < 0)
		return err.kind == STORE_ERR_TEMP ? -1 : 0;
	if (store_viewer_rights(h, "INBOX", &rights, &err) < 0)
		rights = 0;
	store_user_unref(&h);
	return (rights & STORE_RIGHT_INSERT) != 0;
}

int sendas_may(struct auth *auth, struct store *store,
	       const struct auth_user *user, bool cross_domain,
	       const char *address)
{
	struct auth_user owner;
	const char *at = strrchr(address, '@');
	const char *plus;
	char base[sizeof(owner.address)];
	int rc = auth_may_send_as(auth, user->id, address);

	if (rc != 0 || store == NULL)
		return rc;
	/* the address (or, with a +detail, its base) names an account:
	 * a shared one whose INBOX grants this user i */
	rc = auth_lookup(auth, address, &owner);
	if (rc == 0 && at != NULL &&
	    (plus = memchr(address, '+', (size_t)(at - address))) != NULL &&
	    (size_t)snprintf(base, sizeof(base), "%.*s%s",
			     (int)(plus - address), address, at) < sizeof(base))
		rc = auth_lookup(auth, base, &owner);
	if (rc != 1)
		return rc < 0 ? -1 : 0;
	if (owner.id == user->id || owner.disabled)
		return 0;
	return holds_insert(auth, store, user, cross_domain, &owner);
}

struct shared_ctx {
	char **names;
	size_t count, cap;
};

static void shared_cb(void *ctx, const char *name, const char *extra)
{
	struct shared_ctx *c = ctx;
	(void)extra;
	if (c->count == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 8;
		c->names = xrealloc(c->names, c->cap * sizeof(char *));
	}
	c->names[c->count++] = xstrdup(name);
}

int sendas_shared_list(struct auth *auth, struct store *store,
		       const struct auth_user *user, bool cross_domain,
		       sendas_fn *fn, void *ctx)
{
	struct shared_ctx c = {0};
	char *error = NULL;
	int rc = 0;

	/* every shared address (of every domain: cross_domain may reach
	 * them), in address order; few per installation */
	if (auth_shared_list(auth, NULL, shared_cb, &c, &error) < 0) {
		free(error);
		return -1;
	}
	for (size_t i = 0; i < c.count; i++) {
		struct auth_user owner;
		if (rc == 0 &&
		    auth_lookup(auth, c.names[i], &owner) == 1 &&
		    !owner.disabled && owner.id != user->id) {
			int r = holds_insert(auth, store, user, cross_domain,
					     &owner);
			if (r < 0)
				rc = -1;
			else if (r == 1)
				fn(ctx, owner.address, "shared");
		}
		free(c.names[i]);
	}
	free(c.names);
	return rc;
}
