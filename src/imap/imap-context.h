/*
 * Search and sort contexts (RFC 5267 4: CONTEXT=SEARCH, CONTEXT=SORT).
 *
 * A SEARCH or SORT with RETURN (UPDATE) stays alive while its mailbox is
 * selected. Whenever the session's view changes, where untagged responses
 * may be sent (imap_client_sync), its result is computed again and the
 * difference goes to the client:
 *
 *   * ESEARCH (TAG "t") [UID] REMOVEFROM (pos n ...)
 *   * ESEARCH (TAG "t") [UID] ADDTO (pos n ...)
 *
 * pos is 0 for a SEARCH (no order); for a SORT it is the 1-based place in
 * the sorted result where n goes (ADDTO) or was (REMOVEFROM), each pair
 * read in turn against the result as the pairs before it left it. A
 * message expunged from the result is removed (REMOVEFROM) just before
 * its EXPUNGE or VANISHED, while its number still holds. CANCELUPDATE
 * ends contexts; leaving the mailbox ends them all.
 *
 * Refused, with "* OK [NOUPDATE "t"]" and the result still returned: a
 * search by message numbers or $ (they change meaning as the mailbox
 * changes), PARTIAL, or past IMAP_CONTEXT_MAX contexts.
 */
#ifndef LOFT_IMAP_CONTEXT_H
#define LOFT_IMAP_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap-client.h"

#define IMAP_CONTEXT_MAX 8

struct imap_search_program;
struct imap_sort_program;

/* Keeps a context for the command tag (takes *prog; NULLs it); sprog NULL
 * for a SEARCH. uids: the result as just returned (ascending for SEARCH,
 * sort order for SORT). Writes the NOUPDATE response itself when it
 * refuses (false). */
bool imap_context_add(struct imap_client *c, const char *tag, bool uid,
		      struct imap_search_program **prog,
		      const struct imap_sort_program *sprog,
		      const uint32_t *uids, size_t count);
/* uid, message seq of the view, is being expunged: REMOVEFROM lines into
 * out for the contexts that hold it. */
void imap_context_expunged(struct imap_client *c, uint32_t seq, uint32_t uid,
			   struct buf *out);
/* After a sync: computes every context again, differences into out. */
void imap_context_update(struct imap_client *c, struct buf *out);
/* Ends every context (the mailbox is left). */
void imap_context_clear(struct imap_client *c);

imap_cmd_fn cmd_cancelupdate;

#endif
