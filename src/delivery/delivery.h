/*
 * The one delivery path into the store, shared by LMTP, SMTP (MX and the
 * local recipients of a submission) and the queue (local retries, DSNs to
 * local senders): recipient resolution (account, alias, +detail folder,
 * quota), the message streamed once into every recipient's copy with its
 * own trace fields (Return-Path, Delivered-To, Received), one commit per
 * copy, and one reply per recipient. A 2xx reply exists only after that
 * copy is durable.
 *
 * Sieve hooks in at delivery_set_filter: called per recipient before the
 * commit, it may choose the folder and flags, discard, reject (a 5xx for
 * that recipient), and send replies/redirects through queue.h.
 *
 * Threads: a struct delivery is shared; a struct delivery_session belongs
 * to one connection (one worker at a time) and every call on it may block
 * (store, fsync): call it on a worker.
 */
#ifndef LOFT_DELIVERY_H
#define LOFT_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct auth;
struct store;
struct delivery;
struct delivery_session;

struct delivery *delivery_create(struct store *store, struct auth *auth,
				 const char *hostname);
void delivery_destroy(struct delivery **d);

/* One recipient's reply: code 0 means not decided yet. */
struct delivery_reply {
	int code;
	const char *status;           /* enhanced status code, "2.0.0" */
	char text[300];
};

/* What the filter (Sieve) may decide for one recipient. */
struct delivery_action {
	char *mailbox;                /* NULL: keep; else a folder (freed) */
	unsigned flags;               /* enum store_flag bits to set */
	bool discard;                 /* store nothing, reply 250 */
	bool reject;                  /* reply 550 5.7.1 with reject_text */
	char reject_text[200];
};
/* data/len is the whole message as received (without trace fields);
 * env says how it came and what the checks found (junk, spam verdict). */
struct delivery_envelope;
typedef void delivery_filter_fn(void *ctx, int64_t user_id,
				const char *address,
				const struct delivery_envelope *env,
				const void *data, size_t len,
				struct delivery_action *action);
void delivery_set_filter(struct delivery *d, delivery_filter_fn *fn,
			 void *ctx);

/* A connection's (or a queue thread's) delivery state: store handles
 * kept between transactions, and the current transaction. sid names it
 * in logs. */
struct delivery_session *delivery_session_create(struct delivery *d,
						 const char *sid);
/* Blocking (closes store handles): a worker, or a thread of its own. */
void delivery_session_destroy(struct delivery_session **s);
/* Whether destroy would block (it holds store handles). */
bool delivery_session_busy(const struct delivery_session *s);

/* The account a recipient address reaches (an address or alias, also
 * with a +detail; postmaster@ of every local domain, RFC 5321 4.5.1):
 * 1 found (user_r), 0 none, -1 lookup error. */
struct auth_user;
int delivery_resolve(struct delivery *d, const char *address,
		     struct auth_user *user_r);

/* The transaction's envelope and how the message came (for Received:). */
struct delivery_envelope {
	const char *sender;           /* reverse-path text ("" for <>) */
	const char *helo;             /* the client's LHLO/EHLO name */
	const char *peer;             /* "203.0.113.5", "::1", "unix", or NULL */
	const char *with;             /* "LMTP", "ESMTP", "ESMTPS", "ESMTPSA" */
	const char *id;               /* transaction id for logs and Received */
	uint64_t declared_size;       /* SIZE=, 0 if none (quota check) */
	const char *extra_fields;     /* CRLF-terminated fields put before
					 every copy after the trace fields
					 (Authentication-Results), or NULL */
	/* What the checks of the message found (SMTP MX sets it at the end
	 * of DATA with delivery_set_verdict; Sieve reads it through the
	 * filter's env: spamtest, RFC 5235). */
	bool junk;                    /* file in Junk (DMARC quarantine, the
					 spam scanner), unless the filter
					 chooses a folder */
	bool spam_scanned;            /* the spam scanner answered */
	double spam_score;            /* its score ... */
	double spam_threshold;        /* ... and the score it calls spam */
	const char *spam_action;      /* rspamd's action ("no action",
					 "add header", "reject", ...) */
	int virus_status;             /* the virus scan, as Sieve's
					 virustest says it (RFC 5235 3.2):
					 0 not tested, 1 clean, 5 infected */
};
void delivery_begin(struct delivery_session *s,
		    const struct delivery_envelope *env);
/* The checks' outcome, known only at the end of the message: fields
 * for every copy (Authentication-Results, X-Spam-*), Junk, and the spam
 * verdict. Call before delivery_commit; strings are copied. */
struct delivery_verdict {
	const char *fields;
	bool junk;
	bool spam_scanned;
	double spam_score, spam_threshold;
	const char *spam_action;
	int virus_status;
};
void delivery_set_verdict(struct delivery_session *s,
			  const struct delivery_verdict *v);

/* Resolves a recipient (address unquoted "local@domain", display as it
 * goes into replies and headers) and adds it on success. The reply is
 * 250 2.1.5, or 550 5.1.1 (no such user), 550 5.1.2 (domain not ours),
 * 550 5.2.1 (disabled), 552 5.2.2 / 452 4.2.2 (over quota), 451 4.3.0. */
void delivery_rcpt(struct delivery_session *s, const char *address,
		   const char *display, struct delivery_reply *reply_r);
unsigned delivery_rcpt_count(const struct delivery_session *s);

/* The message, in pieces, without dot-stuffing. */
void delivery_data(struct delivery_session *s, const void *data, size_t len);
/* The message is over the size limit: every copy is dropped and each
 * recipient gets 552 5.3.4. */
void delivery_too_big(struct delivery_session *s);
/* Commits every copy; then delivery_reply(s, i) is each recipient's. */
void delivery_commit(struct delivery_session *s);
const struct delivery_reply *delivery_result(const struct delivery_session *s,
					     unsigned i);
/* The address of recipient i (unquoted), as given to delivery_rcpt. */
const char *delivery_rcpt_address(const struct delivery_session *s,
				  unsigned i);
/* Ends the transaction (aborts what was not committed). */
void delivery_end(struct delivery_session *s);

/* One call for a whole message in memory (the queue's local hook and
 * DSNs): begin, rcpt each, data, commit; replies[i] per recipient. */
void delivery_message(struct delivery *d, const struct delivery_envelope *env,
		      const char *const *addresses, size_t count,
		      const void *data, size_t len,
		      struct delivery_reply *replies);

#endif
