/*
 * The POP3 front-end: RFC 1939 with CAPA, RESP-CODES, PIPELINING, EXPIRE
 * (RFC 2449), STLS (RFC 2595), AUTH (RFC 5034) and AUTH-RESP-CODE
 * (RFC 3206), serving each account's INBOX from the store. One
 * pop3_server serves both [pop3] and [pop3s]; the daemon passes it as
 * proto_ctx to net_listen() for each address (implicit_tls for pop3s).
 *
 * Config keys, read from [pop3] (falling back to [pop3s]):
 *   timeout = 10m             inactivity autologout (RFC 1939 3: >= 10 min)
 *   mark_seen = yes           RETR sets \Seen (Dovecot's
 *                             pop3_no_flag_updates = no)
 * The retention task that applies pop3_retention_days is the store's
 * (store_retention_start); its interval, [store] retention_interval, may
 * still be given here as [pop3] retention_interval.
 * Account policies (pop3_delete, pop3_retention_days, ...) come from
 * auth_user_policy() at each login, so `loftctl user set` takes effect at
 * the next login.
 */
#ifndef LOFT_POP3_H
#define LOFT_POP3_H

struct auth;
struct buf;
struct config;
struct store;
struct net_proto;
struct pop3_server;

extern const struct net_proto pop3_proto;

/* Reads [pop3]/[pop3s]. On bad config appends "FILE:LINE: message\n" to
 * errors and returns NULL. store and auth may be NULL (loftd --check):
 * then only the configuration is validated and no task is started. */
struct pop3_server *pop3_server_create(const struct config *cfg,
				       struct store *store, struct auth *auth,
				       struct buf *errors);
/* Call after the listeners are gone. */
void pop3_server_destroy(struct pop3_server **server);
/* SIGHUP: the timeout of cfg (loftd checked it), for new sessions. */
void pop3_server_reload(struct pop3_server *server, const struct config *cfg);

#endif
