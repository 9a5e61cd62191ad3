/*
 * LMTP (RFC 2033): final delivery into the store for an MTA such as
 * Postfix, over TCP or a Unix socket. Extensions: PIPELINING (RFC 2920),
 * 8BITMIME (RFC 6152), ENHANCEDSTATUSCODES (RFC 2034), SIZE (RFC 1870).
 * Each accepted recipient gets its own reply after DATA, and a 250 is sent
 * only after that recipient's copy is durable in the store.
 *
 * Configuration ([lmtp] section; `listen` is the daemon's):
 *   max_message_size = 50M   largest message accepted (SIZE advertises it);
 *                            at most [limits] max_message_size, the store's
 *   max_recipients = 100     recipients per transaction
 *   timeout = 5m             idle time before "421 4.4.2" and close
 * plus the top-level `hostname` (greeting, Received: header).
 *
 * Replies, and where they differ from Dovecot's LMTP (checked against
 * Dovecot 2.3 from Debian):
 *   unknown user       550 5.1.1 (as Dovecot)
 *   unknown domain     550 5.1.2 (Dovecot: 5.1.1; we know our domains)
 *   path-like address  501 5.1.3 for an unquoted "../x@..." (Dovecot
 *                      quotes it and says 550 5.1.1); quoted: 550 5.1.1
 *   over quota         552 5.2.2, or 452 4.2.2 with over_quota_tempfail
 *   too big            552 5.3.4 at MAIL (SIZE=) or per recipient after
 *                      DATA; Dovecot advertises no SIZE
 *   disk full          452 4.3.1, nothing stored
 *   VRFY/EXPN          502 5.5.1 (Dovecot: 252 2.3.3)
 *   HELO/EHLO          500 5.5.1 (RFC 2033 4.1; as Dovecot)
 * Lines over 998 bytes, bare LF, NUL and 8-bit bytes are stored as sent
 * (line ends as CRLF), as Dovecot does. Trace fields: Return-Path,
 * Delivered-To and Received (with "for <rcpt>") per copy.
 */
#ifndef LOFT_LMTP_H
#define LOFT_LMTP_H

#include "net.h"

struct auth;
struct buf;
struct config;
struct store;
struct lmtp_server;

extern const struct net_proto lmtp_proto;

/* Reads [lmtp] and the top-level hostname. On bad config appends
 * "FILE:LINE: message\n" lines to errors and returns NULL. store and auth
 * may be NULL (loftd --check): the server then only validates. */
struct lmtp_server *lmtp_server_create(const struct config *cfg,
				       struct store *store, struct auth *auth,
				       struct buf *errors);
void lmtp_server_destroy(struct lmtp_server **server);
/* SIGHUP: the timeout of cfg (loftd checked it), for new sessions. */
void lmtp_server_reload(struct lmtp_server *server, const struct config *cfg);

#endif
