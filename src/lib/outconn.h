/*
 * Outbound TCP connections of a process: the queue's SMTP client, rspamd,
 * MTA-STS policies, Web Push. Without a broker they are connect(2) here.
 * In loftd's mail process a broker is set (daemon-outbound.c): the
 * outbound process connects and hands the socket over, as the mail
 * process itself may not connect (Landlock). Thread-safe.
 */
#ifndef LOFT_OUTCONN_H
#define LOFT_OUTCONN_H

#include <stdbool.h>
#include <sys/socket.h>

/* Returns a connected TCP socket (blocking, close-on-exec) or -1 with
 * *error_r (a short reason, "connection refused", "timed out"). */
typedef int outconn_fn(void *ctx, const struct sockaddr *sa, socklen_t len,
		       unsigned timeout_ms, char **error_r);

/* Sets the process's broker (NULL: connect here). */
void outconn_set_broker(outconn_fn *fn, void *ctx);
bool outconn_brokered(void);

/* A TCP connection to sa within timeout_ms, through the broker if any. */
int outconn_connect(const struct sockaddr *sa, socklen_t len,
		    unsigned timeout_ms, char **error_r);
/* The same, always here (the broker itself, tests). */
int outconn_connect_here(const struct sockaddr *sa, socklen_t len,
			 unsigned timeout_ms, char **error_r);

#endif
