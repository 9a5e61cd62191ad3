/*
 * Inside the POP3 front-end: the server (shared by all sessions), a
 * session, and the functions the command files share.
 *
 * Threads: the parser and the cheap commands run on the connection's I/O
 * thread; everything that may block (argon2, SQLite, reading a message,
 * a long listing that needs back-pressure) runs on a worker through
 * net_conn_run(). A session is used by one thread at a time: the net layer
 * stops reading the socket while a task runs.
 */
#ifndef LOFT_POP3_PRIVATE_H
#define LOFT_POP3_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "auth.h"
#include "buf.h"
#include "net.h"
#include "offload.h"
#include "pop3.h"
#include "store.h"

/* RFC 2449 4 limits commands to 255 octets; real clients stay well within
 * that, but an AUTH initial response for a long address may not, so the
 * limit is lenient. A SASL answer (SCRAM) may be longer still. */
#define POP3_MAX_LINE 1024
#define POP3_MAX_SASL_LINE 16384
/* Unknown or malformed commands in a row before the session is closed. */
#define POP3_MAX_BAD_COMMANDS 20
/* Pipelined commands one worker task runs before it lets others in. */
#define POP3_MAX_PIPELINED 64
/* Bytes handed to net_conn_write() at a time while streaming. */
#define POP3_OUT_CHUNK 65536
/* Read-ahead for a client that walks the maildrop one command at a time
 * (TOP 1 0, TOP 2 0, ... or RETR 1, RETR 2, ...): rendered replies of at
 * most POP3_AHEAD_BYTES in all per session. The first batch holds at most
 * POP3_AHEAD_MAX replies; each batch the walk uses up to its end doubles
 * that, up to POP3_AHEAD_WINDOW_MAX, so a long walk of small replies
 * (TOP n 0 over a big maildrop) costs one worker round trip per few
 * hundred commands, and a short one reads little it does not use. */
#define POP3_AHEAD_MAX 32
#define POP3_AHEAD_WINDOW_MAX 512
#define POP3_AHEAD_BYTES (256 * 1024)

struct pop3_server {
	struct store *store;
	struct auth *auth;
	unsigned timeout;               /* seconds */
	bool tls_configured;            /* [tls] cert and key: STLS offered */
	uint32_t default_retention_days;/* [policy], for EXPIRE before login */
	bool mark_seen;                 /* RETR sets \Seen ([pop3] mark_seen) */

	/* Maildrop locks (RFC 1939 4): user ids with a session in
	 * TRANSACTION state, and that session's connection. Few at a time;
	 * a plain array suffices. */
	pthread_mutex_t lock_mutex;
	pthread_cond_t lock_cond;       /* a lock went, or a probe answered */
	struct pop3_lock *locked;
	size_t locked_count, locked_cap;

	/* Dropped sessions whose store handles a short-lived thread is
	 * letting go of; destroy waits for them. */
	struct offload release;  /* closed sessions let go of the store */
};

enum pop3_state {
	POP3_STATE_AUTHORIZATION,
	POP3_STATE_TRANSACTION,
	POP3_STATE_DONE,                /* after QUIT: ignore further input */
};

/* One message of the maildrop snapshot taken at login. */
struct pop3_msg {
	uint32_t uid;
	bool deleted;                   /* DELE'd in this session */
	bool retrieved;                 /* first RETR already recorded */
	bool seen_marked;               /* queued for \Seen (mark_seen) */
	uint64_t size;                  /* octets, as LIST promises */
	char *uidl;                     /* kept from an import (loftctl
	                                   import), else NULL: UID+UIDVALIDITY */
};

struct pop3_session {
	struct pop3_server *server;
	struct net_conn *conn;          /* NULL once closed */
	char sid[24];
	enum pop3_state state;
	unsigned timeout;               /* seconds, as at connect */

	struct buf line;                /* the command being executed */
	bool skipping;                  /* discarding an over-long line */
	unsigned bad_commands;

	/* AUTHORIZATION */
	char *user_name;                /* from USER, waiting for PASS */
	bool auth_pending;              /* the login gate has our attempt:
					   read no further command */
	struct auth_sasl *sasl;         /* an AUTH exchange in progress */
	bool sasl_final;                /* server-final data sent; waiting
					   for the empty answer */
	struct auth_user sasl_user;

	/* TRANSACTION */
	struct auth_user user;
	struct auth_policy policy;
	struct store_user *mail;
	struct store_subscription *sub; /* hears STORE_CHANGE_LOGOUT */
	bool locked;
	uint32_t uidvalidity;
	struct pop3_msg *msgs;
	uint32_t count;
	uint32_t deleted_count;
	uint32_t retr_marks;            /* first RETRs the store holds for
					   its next commit */
	uint64_t total_size, deleted_size;
	/* UIDs RETR'd this session, to get \Seen when it ends */
	uint32_t *seen;
	size_t seen_count, seen_cap;
	/* Replies after login are gathered here (POP3_OUT_CHUNK bytes) and
	 * written when it fills or the batch of pipelined commands ends, so
	 * a pipelined RETR of small messages costs no write of its own. Only
	 * the thread running the session's commands touches it. */
	char *out;
	size_t out_len;

	/* Read-ahead (pop3-maildrop.c). A worker that answered TOP n L or
	 * RETR n right after the same command for n - 1, with nothing more
	 * to read, renders the replies to the next messages here, so the
	 * I/O thread answers them from memory: a client that sends one
	 * command at a time costs one worker round trip per batch, not one
	 * per message. Written by the worker, read by the I/O thread: the
	 * net layer never runs both on the session at once. */
	struct pop3_ahead *ahead;       /* in message order */
	uint32_t ahead_count, ahead_next;
	uint32_t ahead_window;          /* replies the next batch may hold;
					   0: no walk yet */
	struct buf ahead_buf;           /* the rendered replies */
	uint32_t last_num;              /* the last TOP/RETR's message */
	long last_lines;                /* and its line count (-1 RETR) */
	bool walking;                   /* it followed the one before */
	/* UIDs RETR'd from the read-ahead whose first retrieval the next
	 * worker task records (store_pop3_retrieved; not on an I/O
	 * thread) */
	uint32_t *retr_pending;
	size_t retr_pending_count, retr_pending_cap;
};

struct pop3_ahead {
	uint32_t num;                   /* message number */
	long lines;                     /* TOP's line count; -1 RETR */
	size_t off, len;                /* the reply in ahead_buf */
};

/* pop3-server.c */
/* Queues (after login) or writes a reply; -1 once the client is gone. */
int pop3_write(struct pop3_session *s, const void *data, size_t len);
int pop3_flush(struct pop3_session *s);
int pop3_reply(struct pop3_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
bool pop3_cleartext_ok(struct pop3_session *s);
/* Locks user_id's maildrop for the session on conn. If another session
 * holds it, that session's socket is looked at first: a peer that has
 * gone (its close not handled yet) gives the lock up in a moment, and
 * this waits for it (bounded) rather than refuse a client that just
 * reconnected. Then the lock across nodes (store_maildrop_lock: a
 * session on another node holds it is the same as here). 1 locked, 0 a
 * live session holds it, -1 the store cannot say now (TEMP). Worker
 * only. */
int pop3_lock(struct pop3_server *server, int64_t user_id,
	      struct net_conn *conn);
void pop3_unlock(struct pop3_server *server, int64_t user_id);
void pop3_session_end(struct pop3_session *s);
/* The store hub's callback: ends the session on STORE_CHANGE_LOGOUT. */
void pop3_store_changed(void *ctx, const struct store_change *change);

/* pop3-auth.c: USER, PASS, AUTH, CAPA, STLS and the login itself */
void pop3_cmd_capa(struct pop3_session *s, const char *args);
void pop3_cmd_user(struct pop3_session *s, const char *args);
void pop3_cmd_pass(struct pop3_session *s, const char *args);
void pop3_cmd_auth(struct pop3_session *s, const char *args);
void pop3_cmd_stls(struct pop3_session *s, const char *args);
void pop3_cmd_apop(struct pop3_session *s, const char *args);
void pop3_sasl_input(struct pop3_session *s, const char *line);
void pop3_sasl_abort(struct pop3_session *s);

/* pop3-maildrop.c: the snapshot, the commands of TRANSACTION state, and
 * the UPDATE state at QUIT */
int pop3_maildrop_open(struct pop3_session *s, struct store_error *err);
void pop3_maildrop_close(struct pop3_session *s);
void pop3_cmd_stat(struct pop3_session *s, const char *args);
void pop3_cmd_list(struct pop3_session *s, const char *args);
void pop3_cmd_uidl(struct pop3_session *s, const char *args);
void pop3_cmd_retr(struct pop3_session *s, const char *args);
void pop3_cmd_top(struct pop3_session *s, const char *args);
void pop3_cmd_dele(struct pop3_session *s, const char *args);
void pop3_cmd_rset(struct pop3_session *s, const char *args);
void pop3_cmd_noop(struct pop3_session *s, const char *args);
void pop3_cmd_quit(struct pop3_session *s, const char *args);
void pop3_seen_add(struct pop3_session *s, uint32_t uid);
/* I/O thread: answers TOP/RETR from the read-ahead when it holds the
 * reply to exactly this command; false (nothing written) otherwise, and
 * the command goes to a worker as usual. */
bool pop3_ahead_answer(struct pop3_session *s, bool retr, const char *args);
/* Worker, at the end of a task: fills the read-ahead if the client walks
 * the maildrop in order. */
void pop3_ahead_fill(struct pop3_session *s);
void pop3_ahead_clear(struct pop3_session *s);
/* Worker: records the first retrievals served from the read-ahead. */
void pop3_retr_pending_flush(struct pop3_session *s);
/* Sets \Seen on what RETR queued; true when it committed. Worker only. */
bool pop3_seen_flush(struct pop3_session *s);

/* pop3-stream.c: message bytes as POP3 sends them */
/* Writes the status line (without CRLF), then data with dot-stuffing and
 * NULs replaced, then the terminating ".\r\n". body_lines < 0: the whole
 * message; otherwise the header, the blank line and at most body_lines
 * lines of the body (TOP). Returns -1 once the connection is broken. */
int pop3_stream_message(struct pop3_session *s, const char *status,
			const char *data, size_t len, long body_lines);
/* The same bytes appended to out (the read-ahead). */
void pop3_render_message(struct buf *out, const char *status,
			 const char *data, size_t len, long body_lines);

#endif
