/*
 * Who may send as what, with shared addresses: the one sender check of
 * SMTP submission, JMAP EmailSubmission/Identity and the webmail (issue
 * 13: "its own, its aliases and the shared addresses it may send as").
 *
 * auth_may_send_as (auth.h) answers for the account's own addresses and
 * aliases (with a +detail) and send_as = any; on top of it, a holder of
 * the i right (RFC 4314 insert) on a shared address's INBOX may send as
 * that address (and its aliases), as a team sends as sales@. The right
 * is read from the shared address's own ACL through the store, so it
 * follows `loftctl acl set` at once.
 *
 * Blocking (accounts.db, the owner's index): call it on a worker.
 */
#ifndef LOFT_DELIVERY_SENDAS_H
#define LOFT_DELIVERY_SENDAS_H

#include <stdbool.h>
#include <stdint.h>

struct auth;
struct auth_user;
struct store;

/* 1 user may send as address, 0 not, -1 lookup error. cross_domain:
 * [sharing] cross_domain (rights reach accounts of other domains). */
int sendas_may(struct auth *auth, struct store *store,
	       const struct auth_user *user, bool cross_domain,
	       const char *address);

/* The shared addresses user may send as (ascending by address), for JMAP
 * Identity: fn(ctx, address, "shared"). 0, or -1 on a lookup error. */
typedef void sendas_fn(void *ctx, const char *name, const char *extra);
int sendas_shared_list(struct auth *auth, struct store *store,
		       const struct auth_user *user, bool cross_domain,
		       sendas_fn *fn, void *ctx);

#endif
