/*
 * FETCH (RFC 9051 6.4.5, RFC 3501 6.4.5) with BINARY (RFC 3516), the
 * CONDSTORE/QRESYNC modifiers CHANGEDSINCE and VANISHED (RFC 7162 3.1.4,
 * 3.2.6), OBJECTID's EMAILID/THREADID (RFC 8474) and SAVEDATE (RFC 8514).
 *
 * imap_fetch_parse() turns the attribute argument (a macro, one attribute
 * or a list) and the optional modifier list into a plan: which store
 * fields the pass needs, whether the blob must be mapped, whether \Seen is
 * to be set. imap_fetch_run() makes one store pass over the UID ranges and
 * writes one "* n FETCH (...)" per message: metadata from the store's
 * cache, section literals straight from the mapped blob (no copy of a
 * whole message; NULs become 0x80 outside BINARY, as Dovecot does, since
 * an IMAP literal may not carry them), all through the session's output
 * with back-pressure.
 */
#ifndef LOFT_IMAP_FETCH_H
#define LOFT_IMAP_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct imap_arg;
struct imap_client;
struct store_uid_range;
struct store_error;
struct imap_fetch_plan;

struct imap_fetch_params {
	bool uid;                 /* UID FETCH: every response carries UID */
	bool qresync;             /* QRESYNC enabled: VANISHED allowed */
};

/* Parses attrs (the argument after the sequence set) and modifiers (the
 * argument after that: a list, or EOL). Returns 0, or -1 with a message
 * for a tagged BAD in *error_r (static). */
int imap_fetch_parse(const struct imap_arg *attrs,
		     const struct imap_arg *modifiers,
		     const struct imap_fetch_params *params,
		     struct imap_fetch_plan **plan_r, const char **error_r);
void imap_fetch_plan_free(struct imap_fetch_plan **plan);

/* Whether the plan asks for MODSEQ or CHANGEDSINCE (either turns
 * CONDSTORE on, RFC 7162 3.1). */
bool imap_fetch_plan_condstore(const struct imap_fetch_plan *plan);
/* Whether running the plan sets \Seen (a non-PEEK body attribute). */
bool imap_fetch_plan_sets_seen(const struct imap_fetch_plan *plan);

enum imap_fetch_status {
	IMAP_FETCH_OK = 0,
	IMAP_FETCH_STORE_ERROR,   /* *err filled */
	IMAP_FETCH_UNKNOWN_CTE,   /* BINARY of an encoding Loft cannot undo */
	IMAP_FETCH_DISCONNECTED,  /* the client is gone: stop quietly */
	/* every message still in the store was sent; some the session
	 * still holds were expunged by another session meanwhile and got
	 * nothing (RFC 9051 7.1 EXPUNGEISSUED; 7.5.1: data or nothing) */
	IMAP_FETCH_EXPUNGED,
};

/* Runs the plan over the messages of ranges (UIDs, normalized) in the
 * client's selected mailbox. client_ranges: the UID set as the client
 * wrote it, for VANISHED (EARLIER), which covers UIDs no longer in the
 * view. Sets \Seen first if a non-PEEK body attribute asks for it and the
 * mailbox is writable; *seen_r (caller frees) lists the UIDs whose
 * \Seen this FETCH set, sorted: their FETCH responses carried FLAGS. */
enum imap_fetch_status imap_fetch_run(struct imap_fetch_plan *plan,
				      struct imap_client *client,
				      const struct store_uid_range *ranges,
				      size_t range_count,
				      const struct store_uid_range *client_ranges,
				      size_t client_range_count,
				      uint32_t **seen_r, size_t *seen_count_r,
				      struct store_error *err);

#endif
