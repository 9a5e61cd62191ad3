/*
 * SEARCH programs (RFC 9051 6.4.4, RFC 3501 6.4.4) with the keys of
 * CONDSTORE (MODSEQ, RFC 7162 3.1.5), SEARCHRES ($, RFC 5182), WITHIN
 * (OLDER/YOUNGER, RFC 5032), SAVEDATE (RFC 8514) and OBJECTID (EMAILID,
 * THREADID, RFC 8474), and the ESEARCH result options (RFC 4731).
 *
 * imap_search_parse() turns the argument tree of a SEARCH, SORT or THREAD
 * command into a program (bounded in depth and size); imap_search_run()
 * evaluates it over a mailbox view in one store pass: flags, sizes and
 * dates come from the store iterator, BODY/TEXT from the store's text index
 * (store_search_text, once per key), header keys from the header bytes of
 * the blob, read only for messages the cheaper keys have not ruled out.
 */
#ifndef LOFT_IMAP_SEARCH_H
#define LOFT_IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

struct imap_arg;
struct store_user;
struct store_view;
struct store_error;
struct imap_search_key;

/* Limits on a program: nesting of lists/NOT/OR, and the number of keys. */
#define IMAP_SEARCH_MAX_DEPTH 256
#define IMAP_SEARCH_MAX_KEYS 10000

/* ESEARCH RETURN options (RFC 4731 3.1, RFC 5182 2, RFC 5267 4: UPDATE
 * and CONTEXT, RFC 9394: PARTIAL). */
enum imap_search_return {
	IMAP_SEARCH_RETURN_MIN = 1 << 0,
	IMAP_SEARCH_RETURN_MAX = 1 << 1,
	IMAP_SEARCH_RETURN_ALL = 1 << 2,
	IMAP_SEARCH_RETURN_COUNT = 1 << 3,
	IMAP_SEARCH_RETURN_SAVE = 1 << 4,
	IMAP_SEARCH_RETURN_UPDATE = 1 << 5,
	IMAP_SEARCH_RETURN_CONTEXT = 1 << 6,
	IMAP_SEARCH_RETURN_PARTIAL = 1 << 7,
};
/* The options that return data about the result (not SAVE, UPDATE,
 * CONTEXT). */
#define IMAP_SEARCH_RETURN_DATA (IMAP_SEARCH_RETURN_MIN | \
	IMAP_SEARCH_RETURN_MAX | IMAP_SEARCH_RETURN_ALL | \
	IMAP_SEARCH_RETURN_COUNT | IMAP_SEARCH_RETURN_PARTIAL)

/* A PARTIAL range (RFC 9394 3.1): result positions lo..hi (1-based,
 * lo <= hi), counted from the end when last ("-1:-100"). */
struct imap_partial {
	uint32_t lo, hi;
	bool last;
};
/* Parses "a:b" or "-a:-b" (same sign, nz-number each; "500:400" is
 * "400:500"). -1 if it is not one. */
int imap_partial_parse(struct slice s, struct imap_partial *p_r);
/* The indexes first..last (0-based, inclusive) of a result of count
 * elements the range selects; false if none. */
bool imap_partial_select(const struct imap_partial *p, size_t count,
			 size_t *first_r, size_t *last_r);

struct imap_search_program {
	struct imap_search_key *root;
	unsigned return_opts;     /* 0: no RETURN given (plain SEARCH reply) */
	bool esearch;             /* RETURN was given (even "()") */
	struct imap_partial partial;   /* IMAP_SEARCH_RETURN_PARTIAL */
	bool uses_seqset;         /* a sequence-set key (message numbers) */
	bool has_modseq;          /* a MODSEQ key: reply carries MODSEQ */
	bool uses_saved;          /* $ appears */
	unsigned key_count;
};

enum imap_search_parse_error {
	IMAP_SEARCH_ERR_SYNTAX,     /* tagged BAD */
	IMAP_SEARCH_ERR_BADCHARSET, /* tagged NO [BADCHARSET (UTF-8 US-ASCII)] */
	IMAP_SEARCH_ERR_LIMIT,      /* tagged BAD [LIMIT] */
};

struct imap_search_parse_params {
	bool allow_return;        /* SEARCH (ESEARCH); not SORT/THREAD */
	bool charset_required;    /* SORT/THREAD: a charset comes first */
};

/* Parses a RETURN option list into prog (SEARCH does it itself; SORT
 * RETURN comes before the sort criteria). -1 with a message for a BAD
 * (static): unknown option, PARTIAL with ALL, twice, or a bad range. */
int imap_search_parse_return(const struct imap_arg *list,
			     struct imap_search_program *prog,
			     const char **error_r);

/* Parses args (up to EOL) into *prog_r. On error returns -1 with a
 * message for the client in *error_r (static) and the kind. */
int imap_search_parse(const struct imap_arg *args,
		      const struct imap_search_parse_params *params,
		      struct imap_search_program **prog_r,
		      enum imap_search_parse_error *kind_r,
		      const char **error_r);
void imap_search_program_free(struct imap_search_program **prog);

/* What a search is run against. saved: the SEARCHRES result ($), as UIDs
 * in ascending order. */
struct imap_search_env {
	struct store_user *user;
	const char *mailbox;
	struct store_view *view;
	const uint32_t *saved_uids;
	size_t saved_count;
	time_t now;               /* for OLDER/YOUNGER */
};

/* Matching messages in ascending sequence order. */
struct imap_search_result {
	uint32_t *seqs;
	uint32_t *uids;
	uint64_t *modseqs;
	size_t count;
	uint64_t highest_modseq;  /* over the matches, for RFC 7162 3.1.5 */
};

/* Runs prog over env->view. Returns 0, or -1 with err filled (a store
 * failure). Free the result with imap_search_result_free. */
int imap_search_run(struct imap_search_program *prog,
		    const struct imap_search_env *env,
		    struct imap_search_result *result_r,
		    struct store_error *err);
void imap_search_result_free(struct imap_search_result *result);

/* Appends the untagged reply for a SEARCH or UID SEARCH (without CRLF):
 * "* SEARCH 1 2 3 (MODSEQ 9)" or, for RETURN / IMAP4rev2,
 * "* ESEARCH (TAG "t") UID MIN 1 ...". Appends nothing when only SAVE
 * was asked (RFC 5182 2.1). Returns -1 if out hits its limit. */
struct imap_search_reply_params {
	const char *tag;
	size_t tag_len;
	bool uid;                 /* UID SEARCH: numbers are UIDs */
	bool esearch;             /* ESEARCH form even without RETURN (rev2) */
	bool condstore;           /* MODSEQ to be shown (RFC 7162 3.1.5) */
};
int imap_search_reply(const struct imap_search_program *prog,
		      const struct imap_search_result *result,
		      const struct imap_search_reply_params *params,
		      struct buf *out);

/* "* ESEARCH (TAG "t") [UID] ..." for a result given as numbers (UIDs
 * or sequence numbers) in result order: ascending for SEARCH, sort
 * order for SORT (RFC 5267 3: MIN and MAX are the first and the last,
 * ALL and PARTIAL keep the order). modseqs (may be NULL) beside nums,
 * for MODSEQ (only when show_modseq). Without CRLF. */
struct imap_esearch {
	const char *tag;
	size_t tag_len;
	bool uid;
	bool sorted;
	const uint32_t *nums;
	const uint64_t *modseqs;
	size_t count;
	bool show_modseq;
};
int imap_esearch_reply(const struct imap_search_program *prog,
		       const struct imap_esearch *e, struct buf *out);
/* The result elements the options return, as a mask of count bools:
 * all of them with ALL or COUNT (or without MIN, MAX and PARTIAL), else
 * the MIN, MAX and PARTIAL ones (RFC 4731 3.2 for MODSEQ, RFC 5182 2.4
 * and RFC 9394 3.2 for SAVE). Caller frees. */
bool *imap_search_returned(const struct imap_search_program *prog,
			   size_t count);

/* What SAVE stores for $ (RFC 5182 2.4, RFC 9394 3.2): the returned
 * elements of the result (UIDs, ascending; caller frees). */
void imap_search_saved_uids(const struct imap_search_program *prog,
			    const struct imap_search_result *result,
			    uint32_t **uids_r, size_t *count_r);

/* Appends numbers (ascending) as a compact sequence-set "1:3,7". */
int imap_search_append_set(struct buf *out, const uint32_t *nums, size_t count);

/* Parses an IMAP date "1-Feb-2026" (RFC 3501 date-text) to the UTC
 * midnight that starts it. -1 if malformed. */
int imap_search_parse_date(const char *s, size_t len, time_t *day_r);

/* ---- reading a cached ENVELOPE (RFC 9051 7.5.2) --------------------
 * SEARCH FROM/TO/CC/BCC/SUBJECT are defined on the envelope structure's
 * fields (RFC 9051 6.4.4), and SORT's address keys on its addresses (RFC
 * 5256, RFC 5957), so the cached ENVELOPE answers them without the blob. */
enum imap_env_field {
	IMAP_ENV_DATE, IMAP_ENV_SUBJECT, IMAP_ENV_FROM, IMAP_ENV_SENDER,
	IMAP_ENV_REPLY_TO, IMAP_ENV_TO, IMAP_ENV_CC, IMAP_ENV_BCC,
	IMAP_ENV_IN_REPLY_TO, IMAP_ENV_MESSAGE_ID,
};
/* Where field starts in env (a parenthesised ENVELOPE), or NULL if env
 * is malformed. */
const char *imap_envelope_find(const char *env, enum imap_env_field field);
/* Reads the value at *p (NIL, quoted, literal; a list is skipped) and
 * advances. A string is appended to out (may be NULL). false if
 * malformed. */
bool imap_envelope_value(const char **p, struct buf *out, bool *nil_r);
/* One address structure of an address list. */
struct imap_envelope_address {
	struct buf name, adl, mailbox, host;
	bool name_nil, mailbox_nil, host_nil;
};
/* Iterates the address list at *p (after imap_envelope_find): returns 1
 * with *addr filled (its bufs reset first), 0 at the end (or NIL), -1
 * if malformed. Call with *p at the list; it advances past each. */
int imap_envelope_next_address(const char **p, bool *in_list,
			       struct imap_envelope_address *addr);
/* Appends an address list as text for searching, as a reader sees it:
 * "Name <mailbox@host>, other@host, group: a@b;", names RFC 2047
 * decoded (raw 8-bit that is not UTF-8 taken as Windows-1252). */
void imap_envelope_addresses_text(const char *env, enum imap_env_field field,
				  struct buf *out);

/* ---- shared by cmd-search.c, cmd-sort.c and cmd-thread.c ---------- */
struct imap_cmd;
struct imap_client;

/* Parses args as a search program; sort_or_thread: a charset comes first
 * and RETURN is not allowed. Replies BAD / NO [BADCHARSET] itself and
 * returns -1 on error. */
int search_prepare(struct imap_cmd *cmd, const struct imap_arg *args,
		   bool sort_or_thread, struct imap_search_program **prog_r);
/* Runs prog over the selected view. Replies NO itself on a store error
 * and returns -1. */
int search_execute(struct imap_cmd *cmd, struct imap_search_program *prog,
		   struct imap_search_result *result_r);
/* Writes line + CRLF (nothing if line is empty). -1 if the client is
 * gone. */
int search_write_line(struct imap_client *c, struct buf *line);
/* The UIDs of res in the order sprog says (cmd-sort.c); caller frees.
 * -1 with err on a store error. */
struct imap_sort_program;
int sort_execute(struct imap_client *c, const struct imap_sort_program *sprog,
		 const struct imap_search_result *res, uint32_t **uids_r,
		 struct store_error *err);

#endif
