/*
 * LMTP internals shared by the session (lmtp-session.c: I/O thread,
 * command parsing and replies that need no store) and delivery
 * (lmtp-deliver.c: worker tasks for RCPT lookups, writing DATA into blob
 * writers and committing them).
 *
 * Threading: the session is touched by the I/O thread only while no
 * worker task of its connection runs, and by at most one task at a time
 * (net.h guarantees both), so it needs no lock.
 */
#ifndef LOFT_LMTP_PRIVATE_H
#define LOFT_LMTP_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "buf.h"
#include "lmtp-parser.h"
#include "lmtp.h"
#include "store.h"

/* Longest command line we read (RFC 5321 4.5.3.1.4 allows 512, more with
 * extensions; Postfix stays far below this). */
#define LMTP_MAX_LINE 4096
/* DATA is decoded into a buffer of this size, then written to the blob
 * writers on a worker: memory per session stays bounded whatever the
 * message size. */
#define LMTP_CHUNK (128 * 1024)
/* Replies queued for a client that does not read them: past this, no
 * more commands are read until it does (memory per session stays
 * bounded however much a client pipelines). */
#define LMTP_OUTPUT_MAX (1024 * 1024)
/* Bad commands in a row before we hang up. */
#define LMTP_MAX_ERRORS 20
/* Store handles a session keeps open between transactions: an MTA sends
 * many messages over one connection, often to the same few users, and
 * opening a user's index costs more than a delivery. */
#define LMTP_USER_CACHE 16
/* Default [lmtp] timeout. RFC 5321 4.5.3.2.7: a server waits at least 5
 * minutes for the next command. */
#define LMTP_IDLE_TIMEOUT 300

struct lmtp_server {
	/* Sessions whose store handles are being let go off the I/O
	 * thread after a dropped connection; destroy waits for them. */
	pthread_mutex_t release_mu;
	pthread_cond_t release_cond;
	unsigned releasing;

	struct store *store;
	struct auth *auth;
	char hostname[256];
	uint64_t max_message_size;
	unsigned max_recipients;
	unsigned timeout;     /* seconds without a command before 421 */
};

/* The outcome of one recipient's delivery, decided after DATA (or early,
 * when its writer failed). */
struct lmtp_reply {
	int code;             /* 0: not decided yet */
	const char *status;   /* enhanced status code, "2.0.0" */
	char text[200];
};

struct lmtp_rcpt {
	char address[LMTP_PATH_TEXT];     /* RCPT TO's, for replies, headers */
	int64_t user_id;
	struct store_user *user;
	char *mailbox;                    /* "INBOX" or the +detail folder */
	bool over_quota_tempfail;
	/* Another accepted RCPT for the same user and mailbox: this one
	 * shares that copy and its reply (a message is stored once). */
	int dup_of;                       /* index, or -1 */
	struct store_blob_writer *writer;
	struct lmtp_reply reply;
};

enum lmtp_state {
	LMTP_STATE_GREETED,   /* waiting for LHLO */
	LMTP_STATE_READY,     /* LHLO done, no transaction */
	LMTP_STATE_MAIL,      /* MAIL FROM accepted */
	LMTP_STATE_DATA,      /* receiving message data */
};

struct lmtp_session {
	struct lmtp_server *server;
	struct net_conn *conn;
	char sid[24];         /* a copy: it outlives the connection */
	enum lmtp_state state;
	char lhlo[256];
	unsigned errors;
	bool skip_line;       /* discarding the rest of an overlong line */
	bool quitting;

	/* the transaction */
	char sender[LMTP_PATH_TEXT];      /* as it goes into Return-Path */
	bool null_sender;
	uint64_t declared_size;
	struct lmtp_rcpt *rcpts;
	unsigned rcpt_count, rcpt_cap;
	unsigned txn_counter;
	char txn_id[32];

	/* open store handles, reused across transactions (LMTP_USER_CACHE) */
	struct store_user *user_cache[LMTP_USER_CACHE];
	unsigned user_cache_next;

	/* DATA */
	struct lmtp_dot dot;
	struct buf chunk;
	uint64_t data_size;   /* decoded bytes so far */
	bool data_started;    /* writers were created */
	bool data_too_big;
};

/* A parsed RCPT TO, handed to the worker. */
struct lmtp_rcpt_request {
	struct lmtp_path path;
};

/* lmtp-session.c */
void lmtp_reply_set(struct lmtp_reply *r, int code, const char *status,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Ends the transaction: aborts writers and drops users. Blocking work
 * (store handles) may happen: call on a worker, or at close. */
void lmtp_transaction_reset(struct lmtp_session *s);
/* Drops the session's cached store handles (blocking: a worker, or at
 * close). */
void lmtp_user_cache_clear(struct lmtp_session *s);

/* lmtp-deliver.c: worker tasks (net_task_fn). */
void lmtp_task_rcpt(void *session, struct net_conn *conn, void *arg);
void lmtp_task_data_chunk(void *session, struct net_conn *conn, void *arg);
void lmtp_task_data_end(void *session, struct net_conn *conn, void *arg);
void lmtp_task_reset(void *session, struct net_conn *conn, void *arg);
void lmtp_task_quit(void *session, struct net_conn *conn, void *arg);
void lmtp_task_drain(void *session, struct net_conn *conn, void *arg);

#endif
