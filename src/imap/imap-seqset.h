/*
 * IMAP sequence sets (RFC 9051 9 "sequence-set"): "1", "2:4", "4:2",
 * "7:*", "*", "*:*", "1:4294967295", comma-separated, and "$" (SEARCHRES,
 * RFC 5182: the result saved by the last SEARCH ... SAVE). Parsing keeps
 * '*' symbolic; resolving against a store_view turns the set into sorted,
 * merged store_uid_ranges of messages the session knows.
 */
#ifndef LOFT_IMAP_SEQSET_H
#define LOFT_IMAP_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"

/* One element as sent; 0 stands for '*'. lo/hi in the order given. */
struct imap_seqrange {
	uint32_t lo, hi;
};

struct imap_seqset {
	struct imap_seqrange *ranges;
	size_t count;
	bool saved;          /* "$" */
};

/* Parses s. 0 on success, -1 on a syntax error (0 is not a valid
 * number; numbers must fit in 32 bits). allow_saved: whether "$" is
 * accepted (only in the authenticated-and-selected commands). */
int imap_seqset_parse(struct slice s, bool allow_saved,
		      struct imap_seqset *set_r);
void imap_seqset_free(struct imap_seqset *set);

/* Resolves set against view.
 *  uid = false: message sequence numbers; '*' is the count. Numbers past
 *  the count are dropped; a set that named only such numbers (and no
 *  '*') is an error (RFC 9051 6.4: BAD for a number past the count).
 *  uid = true: UIDs; '*' is the highest UID in the view (RFC 9051 6.4.9:
 *  "N:*" always includes the last message). The result is limited to
 *  UIDs up to the highest one in the view, so messages the session has
 *  not been told about (no EXISTS yet) never show up.
 * saved: the SEARCHRES result (sorted UIDs) for "$", may be NULL.
 * Result: sorted, merged ranges (caller frees *ranges_r; may be empty).
 * Returns 0, or -1 with *error_r set to a message for the client. */
int imap_seqset_resolve(const struct imap_seqset *set,
			const struct store_view *view, bool uid,
			const uint32_t *saved, size_t saved_count,
			struct store_uid_range **ranges_r, size_t *count_r,
			const char **error_r);

/* Sorts and merges ranges in place (lo <= hi each); returns the count. */
size_t imap_uid_ranges_normalize(struct store_uid_range *ranges, size_t count);
/* Whether uid lies in the (normalized) ranges. */
bool imap_uid_ranges_contain(const struct store_uid_range *ranges,
			     size_t count, uint32_t uid);
/* Appends a sorted UID list as a compact set "1:3,7" to out. */
int imap_uids_append_set(struct buf *out, const uint32_t *uids, size_t count);
/* Appends normalized ranges as a set "1:3,7". */
int imap_uid_ranges_append_set(struct buf *out,
			       const struct store_uid_range *ranges,
			       size_t count);

#endif
