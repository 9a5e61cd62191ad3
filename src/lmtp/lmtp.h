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

#endif
