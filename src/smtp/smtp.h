/*
 * SMTP (RFC 5321): one engine behind three listeners.
 *   [smtp]         MX (port 25): mail from the internet for local
 *                  recipients only; never relays, whatever the client's
 *                  address; AUTH is not offered.
 *   [submission]   port 587, STARTTLS (RFC 6409): authenticated users
 *                  send; MAIL without AUTH gets 530 5.7.0.
 *   [submissions]  port 465, implicit TLS (RFC 8314); [submission]'s
 *                  settings.
 * Extensions: PIPELINING, SIZE, 8BITMIME, SMTPUTF8, CHUNKING (BDAT), DSN,
 * ENHANCEDSTATUSCODES (on every reply), STARTTLS; AUTH (PLAIN, LOGIN,
 * SCRAM-SHA-256, through src/auth) on submission only, never before TLS
 * except from loopback.
 *
 * Settings of [smtp] and [submission] (`listen` is the daemon's):
 *   max_message_size = 50M   at most [limits] max_message_size
 *   max_recipients = 100     per transaction (452 4.5.3 beyond)
 *   timeout = 5m             idle time before 421 4.4.2
 * [smtp] only (per client address, IPv6 per /64; 0 = no limit):
 *   max_connections_per_ip = 50          421 4.7.0 beyond
 *   max_messages_per_ip_per_hour = 20000 451 4.7.1 at MAIL beyond
 *   sender_checks = yes      SPF, DKIM, DMARC, Authentication-Results
 *   dmarc_reject = refuse    or junk (p=reject failures)
 *   check_threads = 8        threads that run the checks
 *   rspamd = URL             spam scanner (rspamd_timeout, _max_size)
 *   mta_sts = enforce        the mode of the MTA-STS policy served on
 *                            [https] (testing, none)
 */
#ifndef LOFT_SMTP_H
#define LOFT_SMTP_H

#include "net.h"

struct auth;
struct buf;
struct config;
struct queue;
struct store;
struct smtp_server;

enum smtp_mode { SMTP_MODE_MX, SMTP_MODE_SUBMISSION };

extern const struct net_proto smtp_mx_proto;
extern const struct net_proto smtp_submission_proto;

/* Reads [smtp] (MX) or [submission]. store/auth NULL: validate only. */
struct smtp_server *smtp_server_create(const struct config *cfg,
				       enum smtp_mode mode, struct store *store,
				       struct auth *auth, struct buf *errors);
/* The outbound queue: submissions go through it (and MX recipients whose
 * store failed after another's succeeded are retried from it). */
void smtp_server_set_queue(struct smtp_server *srv, struct queue *queue);
void smtp_server_destroy(struct smtp_server **srv);
/* SIGHUP: the section's keys (but listen and check_threads) for new
 * sessions; sessions already open keep theirs. */
void smtp_server_reload(struct smtp_server *srv, const struct config *cfg);

/* This server's MTA-STS policy (RFC 8461 3.2), served on the HTTPS
 * listener as /.well-known/mta-sts.txt ([smtp] mta_sts = enforce |
 * testing | none; mx: hostname). -1 with errors for a bad mode. */
int smtp_mtasts_policy(const struct config *cfg, char *out, size_t size,
		       struct buf *errors);

#endif
