/*
 * ManageSieve (RFC 5804): scripts of the store's Sieve section over
 * [managesieve] listen (4190). Commands run on workers; logins go
 * through src/auth's gate (throttling, bans, app tokens as passwords),
 * with IMAP's cleartext rule (PLAIN/LOGIN after STARTTLS, from loopback,
 * or with [auth] allow_cleartext). Scripts compile with [sieve]'s limits
 * before anything is stored; quotas are the account's [policy]
 * sieve_max_scripts and sieve_max_storage.
 */
#ifndef LOFT_MANAGESIEVE_H
#define LOFT_MANAGESIEVE_H

struct auth;
struct buf;
struct config;
struct store;
struct managesieve_server;
struct net_proto;

struct managesieve_server *managesieve_server_create(const struct config *cfg,
						     struct store *store,
						     struct auth *auth,
						     struct buf *errors);
void managesieve_server_destroy(struct managesieve_server **server);

extern const struct net_proto managesieve_proto;

#endif
