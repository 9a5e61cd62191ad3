/*
 * THREAD (RFC 5256): the ORDEREDSUBJECT and REFERENCES algorithms over a
 * set of messages already selected by a search program, rendered as the
 * parenthesised thread-list of the untagged THREAD response. Pure
 * computation: cmd-thread.c gathers the per-message fields from the store.
 */
#ifndef LOFT_IMAP_THREAD_H
#define LOFT_IMAP_THREAD_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct buf;

enum imap_thread_algorithm {
	IMAP_THREAD_ORDEREDSUBJECT,
	IMAP_THREAD_REFERENCES,
};

/* One message as the thread algorithms see it. Strings belong to the
 * caller and must outlive imap_thread_build(); NULL means "absent". */
struct imap_thread_msg {
	uint32_t seq;              /* tie-breaker (RFC 5256 2.2) */
	uint32_t number;           /* what is printed: seq, or UID for UID THREAD */
	time_t sent_date;          /* Date:, or INTERNALDATE when unusable */
	const char *base_subject;  /* RFC 5256 2.1 base subject */
	bool is_reply;             /* base subject extraction removed Re:/Fwd: */
	const char *message_id;    /* raw header values */
	const char *in_reply_to;
	const char *references;
};

/* Parses "REFERENCES" / "ORDEREDSUBJECT" (any case). -1 if unknown. */
int imap_thread_algorithm_parse(const char *name, size_t len,
				enum imap_thread_algorithm *alg_r);

/* Threads msgs (count entries, any order) and appends the thread-list
 * (without "* THREAD ") to out. Returns -1 only if out hits its limit. */
int imap_thread_build(enum imap_thread_algorithm alg,
		      const struct imap_thread_msg *msgs, uint32_t count,
		      struct buf *out);

/* Exposed for unit tests: the next msg-id "<...>" in *p (advanced past
 * it), as a pointer and length inside the string. false when none. */
bool imap_thread_next_msgid(const char **p, const char **id_r, size_t *len_r);

#endif
