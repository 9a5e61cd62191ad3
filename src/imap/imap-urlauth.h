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

#include <stddef.h>
#include <stdint.h>

struct auth;
struct store;

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

#endif
