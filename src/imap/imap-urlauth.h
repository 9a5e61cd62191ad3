/*
 * URLAUTH (RFC 4467): IMAP URLs that carry their own authorization, so
 * that a message or a part can be handed to someone else, above all to
 * the submission server for BURL (RFC 4468), without handing over a
 * password.
 *
 * A URLAUTH URL names a message of its owner (the URL's user), who made
 * it with GENURLAUTH. Its access identifier says who may use it:
 *   submit+<user>  the submission server, acting for <user>
 *   user+<user>    <user> only
 *   authuser       any user of this server
 *   anonymous      anyone
 * and its token is the INTERNAL mechanism: the hex HMAC-SHA1 of the URL
 * up to and including the access identifier, keyed with the mailbox's
 * access key (store_urlauth_key; RESETKEY replaces it, voiding every URL
 * made with the old one). An ;EXPIRE= in the past voids it too.
 *
 * This header is what SMTP needs for BURL; it knows nothing of IMAP
 * sessions. The IMAP commands (GENURLAUTH, URLFETCH, RESETKEY) and
 * CATENATE use the same checks.
 */
#ifndef LOFT_IMAP_URLAUTH_H
#define LOFT_IMAP_URLAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct auth;
struct store;
struct store_user;

/* Resolves a URLAUTH URL for a message submission by the account
 * submitter_user_id (BURL, RFC 4468): checks the URL (absolute, with
 * UIDVALIDITY and a verifier), that its access identifier lets that
 * account use it ("submit+" or "user+" that account's address, or
 * "authuser"/"anonymous"), that it has not expired, and its token
 * against the owner's mailbox key; then reads the octets it names (the
 * whole message, or BODY[section] with a partial). Runs on a worker
 * (SQLite, file reads). Returns 0 with *data_r and *len_r (caller frees), or
 * -1 with a short reason for the client in *error_r (caller frees). */
int imap_urlauth_resolve(struct store *store, struct auth *auth,
			 int64_t submitter_user_id, const char *url,
			 char **data_r, size_t *len_r, char **error_r);

/* How IMAP mailbox names in URLs map to the store: the [imap] namespace
 * setting (imap_server_create sets it; "INBOX." prefix and "." separator with
 * inbox_namespace). */
void imap_urlauth_set_namespace(int inbox_namespace);
/* The other users' and shared namespaces ("" or NULL: off) and [sharing]
 * cross_domain, for URLs to other accounts' mailboxes. */
void imap_urlauth_set_sharing(const char *other, const char *shared,
			      bool cross_domain);

struct auth_user;
/* A URL's mailbox as viewer sees it: a name of the personal namespace
 * (reached through own, viewer's own handle) or another account's
 * mailbox in the Other Users / Shared namespace (through a viewer's
 * handle, whose every call the store checks against viewer's rights).
 * 0 with *user_r (unref it) and *name_r (the store name, caller frees),
 * or -1 with why ("No such mailbox" for a hidden one too). */
int imap_url_box(struct store *store, struct auth *auth,
		 const struct auth_user *viewer, struct store_user *own,
		 const char *url_mailbox_name, struct store_user **user_r,
		 char **name_r, char *why, size_t whylen);

#endif
