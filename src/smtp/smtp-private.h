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
#include "offload.h"
#include "queue.h"
#include "smtp.h"
#include "store.h"
#include "dns.h"

/* RFC 5321 4.5.3.1.4: 512 octets, more with extension parameters. */
#define SMTP_MAX_LINE 4096
/* DATA/BDAT go to the store or queue in chunks of this size. */
#define SMTP_CHUNK (128 * 1024)
#define SMTP_OUTPUT_MAX (1024 * 1024)
#define SMTP_MAX_ERRORS 20
#define SMTP_IDLE_TIMEOUT 300
/* The message's start kept in memory for the From: check. */
#define SMTP_HEAD_MAX (64 * 1024)
/* MX: the header is held until it ends (forged Authentication-Results
 * are removed before anything is stored); a longer one is refused. */
#define SMTP_HEADER_MAX (1024 * 1024)
/* MX per-address defaults: far above what a busy sending MX does. */
#define SMTP_MX_CONNS_PER_IP 50
#define SMTP_MX_MESSAGES_PER_IP 20000

/* The settings a SIGHUP changes (smtp_server_reload): a session takes
 * the current ones when it starts and keeps them (its check job too), so
 * a reload never changes a transaction half-way. Replaced ones stay
 * until the server goes (older), as sessions may still point to them. */
struct smtp_live {
	uint64_t max_message_size;
	unsigned max_recipients;
	unsigned timeout;
	unsigned max_conns_per_ip;        /* [smtp] max_connections_per_ip */
	unsigned max_messages_per_ip;     /* [smtp] max_messages_per_ip_per_hour */
	bool sender_checks;           /* [smtp] sender_checks: SPF/DKIM/DMARC */
	bool dmarc_junk;              /* [smtp] dmarc_reject = junk */
	bool cross_domain;            /* [sharing] cross_domain (send-as) */
	char *rspamd_url;             /* [smtp] rspamd, or NULL */
	unsigned rspamd_timeout_ms;
	uint64_t rspamd_max_size;
	/* [smtp] rspamd_virus_symbols: the antivirus module's symbols
	 * (Sieve's virustest, RFC 5235) */
	char **rspamd_virus_symbols;
	size_t rspamd_virus_symbol_count;
	struct smtp_live *older;
};

struct smtp_server {
	enum smtp_mode mode;
	struct store *store;
	struct auth *auth;
	struct delivery *delivery;
	struct queue *queue;
	char hostname[256];
	struct smtp_live *live;       /* the current settings (atomic) */
	bool tls;                 /* [tls] is configured: STARTTLS offered */
	struct smtp_limits *limits;   /* MX: per-address limits, or NULL */
	struct dns *dns;              /* the queue's resolver (MX checks) */
	struct smtp_check_pool *checks;   /* MX: the check threads */
	unsigned check_threads;           /* [smtp] check_threads */
	struct offload release;  /* closed sessions let go of the store */
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

/* The server's current live settings (smtp-server.c). */
const struct smtp_live *smtp_server_live(struct smtp_server *srv);

struct smtp_session {
	struct smtp_server *srv;
	const struct smtp_live *live;     /* srv->live when it began */
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

	/* MX checks (smtp-check.c) */
	struct dkim_verifier *dkim;
	struct buf hdr;                   /* the header until it ends */
	bool hdr_done, hdr_too_big;
	struct buf scan;                  /* the message for rspamd */
	bool scan_skip;

	/* DATA / BDAT */
	struct lmtp_dot dot; /* strict mode */
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
/* New limits (SIGHUP): counts so far stay. */
void smtp_limits_set(struct smtp_limits *l, unsigned max_conns,
		     unsigned max_messages_per_hour);
/* Counts a connection; false (not counted) when the address has its
 * maximum already. */
bool smtp_limits_connect(struct smtp_limits *l, const char *ip);
void smtp_limits_disconnect(struct smtp_limits *l, const char *ip);
/* Whether the address may send another message this hour. */
bool smtp_limits_message_ok(struct smtp_limits *l, const char *ip);
/* Counts an accepted message. */
void smtp_limits_message(struct smtp_limits *l, const char *ip);

/* smtp-check.c: the MX's checks of a message. */
struct delivery_verdict;
void smtp_check_reset(struct smtp_session *s);
/* Takes a piece of the message as it came; appends to out what is to be
 * stored. false when nothing is checked (submission): store as is. */
bool smtp_check_data(struct smtp_session *s, const char *data, size_t len,
		     struct buf *out);
/* The message ended: what is still held goes to out. */
void smtp_check_flush(struct smtp_session *s, struct buf *out);
/* The checks of the message, on a check thread while the connection
 * waits: true when they were started (smtp_end_mx_checked runs later as
 * the connection's task), false when there is nothing to check. */
bool smtp_check_start(struct smtp_session *s, struct net_conn *conn);
struct smtp_check_pool;
struct smtp_check_pool *smtp_check_pool_create(unsigned threads);
void smtp_check_pool_destroy(struct smtp_check_pool **p);

/* smtp-session.c */
void smtp_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void smtp_transaction_reset(struct smtp_session *s);
bool smtp_is_submission(const struct smtp_session *s);

/* smtp-session.c: keeps the message's first bytes (the From: check). */
void smtp_keep_head(struct smtp_session *s, const char *p, size_t n);

/* smtp-burl.c: BURL (RFC 4468), a worker task; arg is a struct
 * smtp_burl, freed by the task. */
struct smtp_burl {
	char *url;
	bool last;
};
void smtp_task_burl(void *session, struct net_conn *conn, void *arg);
/* smtp-task.c: the buffered chunk to the store/queue (a worker). */
void smtp_write_chunk(struct smtp_session *s, struct net_conn *conn);

/* smtp-task.c: worker tasks (net_task_fn) */
void smtp_task_rcpt(void *session, struct net_conn *conn, void *arg);
void smtp_task_chunk(void *session, struct net_conn *conn, void *arg);
void smtp_task_end(void *session, struct net_conn *conn, void *arg);
void smtp_task_reset(void *session, struct net_conn *conn, void *arg);
void smtp_task_quit(void *session, struct net_conn *conn, void *arg);
void smtp_task_auth(void *session, struct net_conn *conn, void *arg);
void smtp_task_sender(void *session, struct net_conn *conn, void *arg);
void smtp_task_drain(void *session, struct net_conn *conn, void *arg);
/* MX: the checks ended (rc -1: refuse with reply), commit and answer. */
void smtp_end_mx_checked(struct smtp_session *s, struct net_conn *conn, int rc,
			 const char *reply, const struct delivery_verdict *v);

#endif
