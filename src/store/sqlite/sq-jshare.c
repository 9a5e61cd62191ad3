/*
 * JMAP on a viewer's handle (store.h "JMAP on a viewer's handle"): the
 * reads store-jshare.c needs beyond the ordinary JMAP ones, each in one
 * read snapshot: an Email's copies with the viewer's own \Seen, and the
 * viewer's own \Seen changes (seen_pvt, sq-seen.c) as JMAP states and
 * changes. No rights here: store-jshare.c decides what the viewer sees.
 */
#include "sq-private.h"

#include <stdlib.h>
#include <string.h>

int sq_email_copies(struct store_user *user, const int64_t *ids, size_t count,
		    int64_t viewer, struct store_copy_row **rows_r,
		    size_t *count_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	*rows_r = NULL;
	*count_r = 0;
	struct sq_conn *c = sq_snap_begin(u, err);
	if (c == NULL)
		return -1;
	sqlite3_stmt *st = sq_stmt(c, "SELECT m.mailbox, m.uid, m.flags,"
				      " coalesce((SELECT p.seen FROM seen_pvt p"
				      " WHERE p.mailbox = m.mailbox AND"
				      " p.uid = m.uid AND p.viewer = ?2), -1)"
				      " FROM msg m WHERE m.blob = ?1 AND"
				      " (m.flags & 8) = 0"
				      " ORDER BY m.mailbox, m.uid");
	struct store_copy_row *rows = NULL;
	size_t n = 0, cap = 0;
	int rc = st != NULL ? SQLITE_DONE : SQLITE_ERROR;
	for (size_t i = 0; i < count && rc == SQLITE_DONE; i++) {
		sqlite3_bind_int64(st, 1, ids[i]);
		sqlite3_bind_int64(st, 2, viewer);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				rows = xrealloc(rows, cap * sizeof(*rows));
			}
			struct store_copy_row *r = &rows[n++];
			r->email = ids[i];
			r->mailbox = (uint32_t)sqlite3_column_int64(st, 0);
			r->uid = (uint32_t)sqlite3_column_int64(st, 1);
			r->flags = (unsigned)sqlite3_column_int(st, 2);
			r->seen_pvt = sqlite3_column_int(st, 3);
		}
		sqlite3_reset(st);
	}
	int ret = 0;
	if (rc != SQLITE_DONE) {
		ret = sq_db_error(c, err, "email copies");
		free(rows);
	} else {
		*rows_r = rows;
		*count_r = n;
	}
	sq_snap_end(u, c);
	return ret;
}

int sq_seen_newest(struct store_user *user, int64_t viewer,
		   uint64_t *modseq_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	*modseq_r = 0;
	struct sq_conn *c = sq_snap_begin(u, err);
	if (c == NULL)
		return -1;
	sqlite3_stmt *st = sq_stmt(c, "SELECT max(modseq) FROM seen_pvt"
				      " WHERE viewer = ?");
	int rc = SQLITE_ERROR;
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, viewer);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			*modseq_r = (uint64_t)sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	int ret = rc == SQLITE_ROW || rc == SQLITE_DONE
			  ? 0 : sq_db_error(c, err, "seen newest");
	sq_snap_end(u, c);
	return ret;
}

int sq_seen_emails_since(struct store_user *user, int64_t viewer,
			 uint64_t modseq, int64_t **ids_r, size_t *count_r,
			 struct store_error *err)
{
	struct sq_user *u = SQU(user);
	*ids_r = NULL;
	*count_r = 0;
	struct sq_conn *c = sq_snap_begin(u, err);
	if (c == NULL)
		return -1;
	sqlite3_stmt *st = sq_stmt(c, "SELECT DISTINCT m.blob FROM seen_pvt p"
				      " JOIN msg m ON m.mailbox = p.mailbox"
				      " AND m.uid = p.uid WHERE p.viewer = ?"
				      " AND p.modseq > ? ORDER BY m.blob");
	int64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc = SQLITE_ERROR;
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, viewer);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)modseq);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				ids = xrealloc(ids, cap * sizeof(*ids));
			}
			ids[n++] = sqlite3_column_int64(st, 0);
		}
		sqlite3_reset(st);
	}
	int ret = 0;
	if (rc != SQLITE_DONE) {
		ret = sq_db_error(c, err, "seen emails");
		free(ids);
	} else {
		*ids_r = ids;
		*count_r = n;
	}
	sq_snap_end(u, c);
	return ret;
}
