/*
 * Sieve at delivery: [sieve] settings, the admin's before/after scripts
 * (compiled once, at start and at reload), and the installation that
 * makes every delivery of the process (LMTP, SMTP, the queue's local
 * recipients) run them with the user's active script.
 *
 * Per recipient, before the commit: [sieve] before, the user's active
 * script, [sieve] after (Pigeonhole's sequence rules, src/sieve); keep,
 * fileinto and discard become the recipient's copies, committed with the
 * vacation/duplicate/redirect records in one store transaction, before
 * its 250; ereject is the recipient's 550 5.7.1; vacation replies,
 * redirects and RFC 5429 refusals enter the queue after the commit. A
 * script error keeps the message where it would have gone without
 * Sieve, logs why, and leaves one notice per script version in INBOX.
 */
#ifndef LOFT_DELIVERY_SIEVE_H
#define LOFT_DELIVERY_SIEVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct config;
struct queue;
struct sieve_limits;
struct delivery_sieve;

/* Reads [sieve] (keys in docs/config.md) and compiles its before and
 * after scripts; errors go to errors as "FILE:LINE:COLUMN: message"
 * lines (loftd --check). NULL on an error. */
struct delivery_sieve *delivery_sieve_load(const struct config *cfg,
					   struct buf *errors);
void delivery_sieve_unref(struct delivery_sieve **ds);
/* Installs ds (a reference is taken) for every delivery of the process,
 * replacing what was installed (SIGHUP reload: the caller keeps the old
 * one when the new one does not load). queue: where replies go; NULL
 * means no replies can be sent (they are logged and dropped). */
void delivery_sieve_install(struct delivery_sieve *ds, struct queue *queue);
/* The limits of ds (ManageSieve, loftctl compile with them). */
const struct sieve_limits *delivery_sieve_limits(const struct delivery_sieve *ds);
/* The limits of the installed one (JMAP); false when none is installed
 * (Sieve does not run at delivery in this process). */
bool delivery_sieve_installed_limits(struct sieve_limits *limits_r);

/* Whether an account may store a script of size bytes as name (replacing
 * the script of that name, if any): max_script_size, then [policy]
 * sieve_max_storage and sieve_max_scripts (auth_user_policy; 0: no
 * limit). One rule for ManageSieve and JMAP. *max_r (may be NULL) gets
 * the limit that refused: bytes for SIZE and STORAGE, scripts for
 * SCRIPTS. */
enum delivery_sieve_quota {
	DSIEVE_QUOTA_OK,
	DSIEVE_QUOTA_SIZE,        /* over max_script_size */
	DSIEVE_QUOTA_STORAGE,     /* over sieve_max_storage */
	DSIEVE_QUOTA_SCRIPTS,     /* over sieve_max_scripts */
	DSIEVE_QUOTA_ERROR,       /* the store failed: err */
};
struct auth;
struct store_error;
struct store_user;
enum delivery_sieve_quota delivery_sieve_quota(struct auth *auth,
					       struct store_user *su,
					       int64_t user_id,
					       const char *name, uint64_t size,
					       size_t max_script_size,
					       uint64_t *max_r,
					       struct store_error *err);

#endif
