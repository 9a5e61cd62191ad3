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
#include "delivery.h"
#include "lmtp-parser.h"
#include "lmtp.h"
#include "offload.h"
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
/* Default [lmtp] timeout. RFC 5321 4.5.3.2.7: a server waits at least 5
 * minutes for the next command. */
#define LMTP_IDLE_TIMEOUT 300

struct lmtp_server {
	/* Sessions whose store handles are being let go off the I/O
	 * thread after a dropped connection; destroy waits for them. */
	struct offload release;  /* closed sessions let go of the store */

	struct store *store;
	struct auth *auth;
	struct delivery *delivery;   /* NULL in check mode */
	char hostname[256];
	uint64_t max_message_size;
	unsigned max_recipients;
	unsigned timeout;     /* seconds without a command before 421 */
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

	/* the transaction; recipients and copies live in ds */
	char sender[LMTP_PATH_TEXT];      /* as it goes into Return-Path */
	bool null_sender;
	uint64_t declared_size;
	unsigned txn_counter;
	char txn_id[32];
	struct delivery_session *ds;

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
/* Ends the transaction: aborts writers and drops users. Blocking work
 * (store handles) may happen: call on a worker, or at close. */
void lmtp_transaction_reset(struct lmtp_session *s);
/* Counts a reply for /metrics by its first digit. */
void lmtp_count_reply(char first_digit);

/* lmtp-deliver.c: worker tasks (net_task_fn). */
void lmtp_task_rcpt(void *session, struct net_conn *conn, void *arg);
void lmtp_task_data_chunk(void *session, struct net_conn *conn, void *arg);
void lmtp_task_data_end(void *session, struct net_conn *conn, void *arg);
void lmtp_task_reset(void *session, struct net_conn *conn, void *arg);
void lmtp_task_quit(void *session, struct net_conn *conn, void *arg);
void lmtp_task_drain(void *session, struct net_conn *conn, void *arg);

#endif
