/*
 * SMTP internals shared by the session (smtp-session.c: I/O thread,
 * command parsing, replies that need no store or account) and the worker
 * tasks (smtp-task.c: AUTH, RCPT lookups, the message into the store or
 * the queue, the final replies).
 *
 * Threading: as LMTP, the session is touched by the I/O thread only while
 * no task of its connection runs, and by one task at a time.
 */
#ifndef LOFT_SMTP_PRIVATE_H
#define LOFT_SMTP_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "buf.h"
#include "delivery.h"
#include "lmtp-parser.h"
#include "queue.h"
#include "smtp-dot.h"
#include "smtp.h"
#include "store.h"

/* RFC 5321 4.5.3.1.4: 512 octets, more with extension parameters. */
#define SMTP_MAX_LINE 4096
/* DATA/BDAT go to the store or queue in chunks of this size. */
#define SMTP_CHUNK (128 * 1024)
#define SMTP_OUTPUT_MAX (1024 * 1024)
#define SMTP_MAX_ERRORS 20
#define SMTP_IDLE_TIMEOUT 300
/* The message's start kept in memory for the From: check. */
#define SMTP_HEAD_MAX (64 * 1024)
/* MX per-address defaults: far above what a busy sending MX does. */
#define SMTP_MX_CONNS_PER_IP 50
#define SMTP_MX_MESSAGES_PER_IP 20000

struct smtp_server {
	enum smtp_mode mode;
	struct store *store;
	struct auth *auth;
	struct delivery *delivery;
	struct queue *queue;
	char hostname[256];
	uint64_t max_message_size;
	unsigned max_recipients;
	unsigned timeout;
	unsigned max_conns_per_ip;        /* [smtp] max_connections_per_ip */
	unsigned max_messages_per_ip;     /* [smtp] max_messages_per_ip_per_hour */
	bool tls;                 /* [tls] is configured: STARTTLS offered */
	struct smtp_limits *limits;   /* MX: per-address limits, or NULL */
	pthread_mutex_t release_mu;
	pthread_cond_t release_cond;
	unsigned releasing;
};

enum smtp_state {
	SMTP_GREETED,     /* waiting for EHLO/HELO */
	SMTP_READY,       /* no transaction */
	SMTP_MAIL,        /* MAIL accepted */
	SMTP_DATA,        /* reading DATA */
	SMTP_BDAT,        /* reading a BDAT chunk */
	SMTP_AUTH,        /* a SASL exchange: lines are answers */
};

struct smtp_rcpt {
	char address[LMTP_PATH_MAX + 1];   /* unquoted */
	char display[LMTP_PATH_TEXT];
	unsigned notify;
	char *orcpt;
};

/* A parsed RCPT TO, handed to the worker. */
struct smtp_rcpt_request {
	struct lmtp_path path;
	unsigned notify;
	char *orcpt;
};

struct smtp_session {
	struct smtp_server *srv;
	struct net_conn *conn;
	char sid[24];
	char peer[64];            /* the client's address (kept past close) */
	enum smtp_state state;
	bool esmtp;
	char helo[256];
	unsigned errors;
	bool skip_line, quitting;

	/* AUTH */
	bool authed;
	struct auth_user user;
	struct auth_sasl *sasl;
	bool sasl_final;
	struct auth_user sasl_user;
	unsigned auth_failures;
	bool limit_counted;       /* counted in srv->limits' connections */

	/* the transaction */
	char sender[LMTP_PATH_TEXT];
	char sender_addr[LMTP_PATH_MAX + 1];
	uint64_t declared_size;
	bool eightbit, smtputf8, requiretls;
	enum queue_ret ret;
	char *envid;
	struct smtp_rcpt *rcpts;          /* submission: every accepted one */
	unsigned rcpt_count, rcpt_cap;    /* MX: counted in ds */
	unsigned txn_counter;
	char txn_id[32];
	struct delivery_session *ds;      /* MX */
	struct queue_writer *qw;          /* submission; MX retry copy */
	bool sent_copy;                   /* [policy] sent_copy for the user */
	struct store_user *sent_user;     /* its Sent copy, being written */
	struct store_blob_writer *sent_w;
	struct queue_error qerr;          /* why qw failed */

	/* DATA / BDAT */
	struct smtp_dot dot;
	struct buf chunk;
	struct buf head;                  /* the message's first bytes */
	uint64_t data_size;
	bool data_too_big;
	bool data_failed;                 /* a write failed: refuse at end */
	bool bdat_used;                   /* BDAT seen: no DATA now */
	uint64_t bdat_left;
	bool bdat_last;
	const char *bdat_refuse;          /* a refused BDAT's reply */
	enum smtp_state bdat_back;        /* the state to return to */
};

/* smtp-limits.c: per-address limits of the MX (0: no limit). */
struct smtp_limits;
struct smtp_limits *smtp_limits_create(unsigned max_conns,
				       unsigned max_messages_per_hour);
void smtp_limits_destroy(struct smtp_limits **l);
/* Counts a connection; false (not counted) when the address has its
 * maximum already. */
bool smtp_limits_connect(struct smtp_limits *l, const char *ip);
void smtp_limits_disconnect(struct smtp_limits *l, const char *ip);
/* Whether the address may send another message this hour. */
bool smtp_limits_message_ok(struct smtp_limits *l, const char *ip);
/* Counts an accepted message. */
void smtp_limits_message(struct smtp_limits *l, const char *ip);

/* smtp-session.c */
void smtp_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void smtp_transaction_reset(struct smtp_session *s);
bool smtp_is_submission(const struct smtp_session *s);

/* smtp-task.c: worker tasks (net_task_fn) */
void smtp_task_rcpt(void *session, struct net_conn *conn, void *arg);
void smtp_task_chunk(void *session, struct net_conn *conn, void *arg);
void smtp_task_end(void *session, struct net_conn *conn, void *arg);
void smtp_task_reset(void *session, struct net_conn *conn, void *arg);
void smtp_task_quit(void *session, struct net_conn *conn, void *arg);
void smtp_task_auth(void *session, struct net_conn *conn, void *arg);
void smtp_task_sender(void *session, struct net_conn *conn, void *arg);
void smtp_task_drain(void *session, struct net_conn *conn, void *arg);

#endif
