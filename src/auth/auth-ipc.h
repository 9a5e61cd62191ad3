/*
 * src/auth across processes, for loftd's process code (src/daemon): the
 * auth process serves a struct auth over a socketpair (auth-server.c),
 * and the mail process holds a struct auth that is a client of it
 * (auth-client.c). Front-ends keep calling auth.h on either and never
 * know which they have.
 *
 * In a client, lookups, policies, verification, throttle queries and
 * SASL exchanges are requests to the auth process; auth_mechanisms and
 * auth_cleartext_allowed answer from the client's own settings; the
 * administration calls (loftctl's) fail with a message. While the auth
 * process is away (it crashed and the parent restarts it), calls wait
 * for the new connection up to AUTH_CLIENT_CONNECT_WAIT_MS and then fail
 * as temporary failures (-1, AUTH_TEMPFAIL, AUTH_SASL_TEMPFAIL): a login
 * in flight gets NO [UNAVAILABLE] / -ERR [SYS/TEMP], never a wrong answer.
 * A SASL exchange begun with the old process fails the same way.
 */
#ifndef LOFT_AUTH_IPC_H
#define LOFT_AUTH_IPC_H

#include "auth.h"

#define AUTH_CLIENT_CONNECT_WAIT_MS 5000
/* A request with no answer this long fails (an auth process that hangs). */
#define AUTH_CLIENT_CALL_TIMEOUT_MS 120000

struct auth_server;

/* ---- the mail process ----------------------------------------------- */

/* A struct auth (auth_close frees it) whose calls go to the auth process
 * over fd (a SOCK_SEQPACKET socket; fd -1: not connected yet). Starts a
 * reader thread. */
int auth_client_open(const struct auth_settings *set, int fd,
		     struct auth **auth_r, char **error_r);
/* A new connection (the auth process was restarted): calls waiting for
 * one go on; requests still unanswered by the old one fail. Takes fd. */
void auth_client_set_fd(struct auth *auth, int fd);
/* Whether auth is a client. */
bool auth_is_client(const struct auth *auth);

/* ---- the auth process ----------------------------------------------- */

/* Serves auth to the peer of fd, with threads (0: 8) for password checks.
 * NULL with a message on failure. */
struct auth_server *auth_server_create(struct auth *auth, int fd,
				       unsigned threads, char **error_r);
/* Reads and answers requests until the peer closes its end (0) or
 * auth_server_stop (0); -1 on a socket error. */
int auth_server_run(struct auth_server *srv);
/* Makes auth_server_run return; async-signal-safe. */
void auth_server_stop(struct auth_server *srv);
/* New settings ([auth], [policy]; SIGHUP), applied between requests. */
void auth_server_reload(struct auth_server *srv,
			const struct auth_settings *set);
/* Waits for running requests, then frees (not the struct auth). */
void auth_server_destroy(struct auth_server **srv);

/* ---- either --------------------------------------------------------- */

/* Replaces the settings that can change while running: policy defaults,
 * argon2 cost, SCRAM iterations, cache, throttle, cleartext. data_dir is
 * kept. Not thread-safe against calls on auth (auth_server_reload makes
 * sure none runs); in a client only cleartext changes, atomically. */
void auth_reload(struct auth *auth, const struct auth_settings *set);

#endif
