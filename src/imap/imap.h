/*
 * The IMAP front-end (IMAP4rev1, RFC 3501, and IMAP4rev2, RFC 9051, with
 * the extensions listed in imap_client_capabilities). The daemon creates
 * one server from the [imap] section (and [imaps], which shares it) and
 * passes it as proto_ctx to net_listen() for every IMAP address; imaps
 * listeners use implicit_tls.
 */
#ifndef LOFT_IMAP_H
#define LOFT_IMAP_H

#include "net.h"

struct auth;
struct buf;
struct config;
struct store;
struct imap_server;

extern const struct net_proto imap_proto;

/* Reads [imap] (keys documented in docs/config.md and imap-server.c).
 * On a bad value appends "FILE:LINE: message\n" to errors and returns
 * NULL. store/auth may be NULL (loftd --check). */
struct imap_server *imap_server_create(const struct config *cfg,
				       struct store *store, struct auth *auth,
				       struct buf *errors);
void imap_server_destroy(struct imap_server **server);
/* SIGHUP: timeout, timeout_login, idle_keepalive and the per-user
 * connection limits of cfg (loftd checked it) take effect at each
 * session's next command and for new sessions; nothing else changes. */
void imap_server_reload(struct imap_server *server, const struct config *cfg);
#endif
