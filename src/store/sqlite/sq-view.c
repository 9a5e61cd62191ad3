/*
 * What views and CONDSTORE/QRESYNC need from the index: a mailbox's UIDs,
 * and what changed after a modseq. Changes are found through the
 * (mailbox, modseq) indexes of msg and expunged, so the work is
 * proportional to the changes, not to the mailbox (RFC 7162).
 */
#include "sq-private.h"

#include <stdlib.h>
#include <string.h>

int sq_collect_uids(sqlite3_stmt *st, const struct store_uid_range *ranges,
		    size_t range_count, uint32_t **uids_r, size_t *count_r)
{
	uint32_t *uids = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint32_t uid = (uint32_t)sqlite3_column_int64(st, 0);
		if (sq_ranges_contain(ranges, range_count, uid))
			u32_push(&uids, &n, &cap, uid);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(uids);
		uids = NULL;
		n = 0;
	} else if (n > 1) {
		qsort(uids, n, sizeof(*uids), u32_cmp);
	}
	*uids_r = uids;
	*count_r = n;
	return rc;
}

/* Opens a read snapshot and finds the mailbox (by name, or by id). */
static int snap_mbox(struct sq_user *u, const char *name, uint32_t id,
		     struct sq_conn **c_r, struct sq_mbox *mb_r,
		     struct store_error *err)
{
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	if (sq_read_begin(c, err) < 0) {
		sq_reader_put(u, c);
		return -1;
	}
	int r = name != NULL ? sq_mbox_get(c, name, mb_r)
			     : sq_mbox_get_id(c, id, mb_r);
	if (r <= 0 || mb_r->noselect) {
		if (r < 0)
			sq_db_error(c, err, "mailbox");
		else
			store_set_error(err, STORE_ERR_NOTFOUND,
					"Mailbox doesn't exist%s%s",
					name ? ": " : "", name ? name : "");
		sq_read_end(c);
		sq_reader_put(u, c);
		return -1;
	}
	*c_r = c;
	return 0;
}

static void snap_end(struct sq_user *u, struct sq_conn *c)
{
	sq_read_end(c);
	sq_reader_put(u, c);
}

static int expunged_after(struct sq_conn *c, uint32_t mailbox_id,
			  uint64_t modseq, uint32_t **uids_r, size_t *n_r,
			  bool *complete_r);

/* What a SELECT tells besides the UIDs, read in the view's snapshot:
 * the keywords (FLAGS) and, for the owner, the first unseen UID (the
 * partial index msg_unseen: one step). */
static int view_extras(struct sq_conn *c, uint32_t mailbox_id,
		       int64_t viewer, const struct store_mailbox_info *info,
		       struct store_view_want *want)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT name FROM keyword WHERE"
				      " mailbox = ? ORDER BY name");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		want->keywords = xrealloc(want->keywords,
					  (want->keyword_count + 1) *
						  sizeof(char *));
		want->keywords[want->keyword_count++] =
			xstrdup((const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return -1;
	want->keywords_set = true;
	if (viewer > 0)
		return 0;
	want->first_unseen = 0;
	if (info->unseen > 0) {
		st = sq_stmt(c, "SELECT min(uid) FROM msg INDEXED BY msg_unseen"
				" WHERE mailbox = ? AND (flags & 1) = 0");
		if (st == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, mailbox_id);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			want->first_unseen =
				(uint32_t)sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		if (rc != SQLITE_ROW)
			return -1;
	}
	want->first_unseen_set = true;
	return 0;
}

/* The mailbox's state and its UIDs in one snapshot. viewer > 0: info as
 * that viewer sees it (its unseen, the higher HIGHESTMODSEQ: sq-seen.c).
 * want (if any): only the UIDs the caller lacks (store-private.h). */
static int view_load(struct store_user *user, const char *mailbox,
		     uint32_t mailbox_id, int64_t viewer,
		     struct store_view_want *want,
		     struct store_mailbox_info *info_r, uint32_t **uids_r,
		     size_t *count_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c;
	struct sq_mbox mb;
	if (snap_mbox(u, mailbox, mailbox_id, &c, &mb, err) < 0)
		return -1;
	uint32_t *uids = NULL;
	size_t n = 0, cap = 0;
	int ret = 0, rc = SQLITE_DONE;
	/* a view counts its own \Recent, and has no use for
	 * has_children (a query more, at every sync that reads) */
	if (sq_mbox_info_row(u, c, mb.id, info_r, false, false) <= 0) {
		ret = sq_db_error(c, err, "view");
		goto out;
	}
	uint64_t common = info_r->highestmodseq;
	if (viewer > 0 && sq_seen_info_in(c, mb.id, viewer, info_r) < 0) {
		store_mailbox_info_free(info_r);
		ret = sq_db_error(c, err, "view");
		goto out;
	}
	uint32_t above = 0;
	if (want != NULL && view_extras(c, mb.id, viewer, info_r, want) < 0) {
		store_mailbox_info_free(info_r);
		ret = sq_db_error(c, err, "view");
		goto out;
	}
	if (want != NULL) {
		want->common_modseq = common;
		int have = want->have(want, mb.id, info_r->uidvalidity, common);
		if (have == STORE_VIEW_HAVE_ALL)
			goto out;
		bool complete = false;
		if (have == STORE_VIEW_HAVE_BASE &&
		    expunged_after(c, mb.id, want->base_modseq, &want->gone,
				   &want->gone_count, &complete) < 0) {
			store_mailbox_info_free(info_r);
			ret = sq_db_error(c, err, "view");
			goto out;
		}
		if (!complete) {
			free(want->gone);
			want->gone = NULL;
			want->gone_count = 0;
		}
		want->from_base = complete;
		above = complete ? want->base_last : 0;
	}
	sqlite3_stmt *st = sq_stmt(c, "SELECT uid FROM msg WHERE mailbox = ?"
				      " AND uid > ? ORDER BY uid");
	rc = SQLITE_ERROR;
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, mb.id);
		sqlite3_bind_int64(st, 2, above);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			u32_push(&uids, &n, &cap,
				 (uint32_t)sqlite3_column_int64(st, 0));
		sqlite3_reset(st);
	}
	if (rc != SQLITE_DONE) {
		ret = sq_db_error(c, err, "view");
		store_mailbox_info_free(info_r);
	}
out:
	snap_end(u, c);
	if (ret < 0) {
		free(uids);
		return -1;
	}
	*uids_r = uids;
	*count_r = n;
	return 0;
}

int sq_view_load(struct store_user *user, const char *mailbox,
		 uint32_t mailbox_id, struct store_mailbox_info *info_r,
		 uint32_t **uids_r, size_t *count_r, struct store_error *err)
{
	return view_load(user, mailbox, mailbox_id, 0, NULL, info_r, uids_r,
			 count_r, err);
}

int sq_view_open(struct store_user *user, const char *mailbox,
		 int64_t viewer, struct store_view_want *want,
		 struct store_mailbox_info *info_r, struct store_error *err)
{
	return view_load(user, mailbox, 0, viewer, want, info_r, &want->uids,
			 &want->count, err);
}

/* UIDs expunged after modseq; complete is false when the log has been
 * pruned past it. */
static int expunged_after(struct sq_conn *c, uint32_t mailbox_id,
			  uint64_t modseq, uint32_t **uids_r, size_t *n_r,
			  bool *complete_r)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT expunge_horizon FROM mailbox"
				      " WHERE id = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	uint64_t horizon = 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		horizon = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	*complete_r = modseq >= horizon;
	st = sq_stmt(c, "SELECT uid FROM expunged WHERE mailbox = ?"
			" AND modseq > ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)modseq);
	return sq_collect_uids(st, NULL, 0, uids_r, n_r) == SQLITE_DONE ? 0 : -1;
}

/* viewer > 0: as that viewer sees the mailbox (per-user \Seen,
 * sq-seen.c): its own \Seen, the higher modseq, and its own changes
 * after since too. */
static int view_delta(struct store_user *user, uint32_t mailbox_id,
		      int64_t viewer, uint64_t since,
		      struct store_mailbox_info *info_r,
		      uint32_t **expunged_r, size_t *expunged_count_r,
		      bool *complete_r,
		      void (*changed)(void *ctx, const struct store_msg *msg),
		      void *ctx, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c;
	struct sq_mbox mb;
	if (snap_mbox(u, NULL, mailbox_id, &c, &mb, err) < 0)
		return -1;
	*expunged_r = NULL;
	*expunged_count_r = 0;
	*complete_r = true;
	int ret = 0;
	/* a view counts its own \Recent, and has no use for
	 * has_children (a query more, at every sync that reads) */
	if (sq_mbox_info_row(u, c, mb.id, info_r, false, false) <= 0) {
		ret = sq_db_error(c, err, "view");
		goto out;
	}
	if (viewer > 0 && sq_seen_info_in(c, mb.id, viewer, info_r) < 0) {
		store_mailbox_info_free(info_r);
		ret = sq_db_error(c, err, "view");
		goto out;
	}
	if (since >= info_r->highestmodseq)
		goto out;
	if (expunged_after(c, mb.id, since, expunged_r, expunged_count_r,
			   complete_r) < 0) {
		ret = sq_db_error(c, err, "view");
		goto out;
	}
	/* INDEXED BY: for ORDER BY uid the planner would otherwise walk
	 * the whole mailbox in UID order instead of the few changed rows */
	sqlite3_stmt *st = viewer > 0
		? sq_stmt(c, "SELECT m.uid, max(m.modseq, coalesce(p.modseq, 0)),"
			     " (m.flags & ~1) | coalesce(p.seen, 0), m.keywords,"
			     " m.size, m.internaldate, m.savedate, m.blob"
			     " FROM msg m LEFT JOIN seen_pvt p"
			     " ON p.mailbox = m.mailbox AND p.uid = m.uid"
			     " AND p.viewer = ?3"
			     " WHERE m.mailbox = ?1 AND m.uid IN"
			     " (SELECT uid FROM msg INDEXED BY msg_modseq"
			     " WHERE mailbox = ?1 AND modseq > ?2"
			     " UNION SELECT uid FROM seen_pvt"
			     " WHERE viewer = ?3 AND mailbox = ?1"
			     " AND modseq > ?2)"
			     " ORDER BY m.uid")
		: sq_stmt(c, "SELECT uid, modseq, flags, keywords, size,"
			     " internaldate, savedate, blob FROM msg"
			     " INDEXED BY msg_modseq"
			     " WHERE mailbox = ? AND modseq > ?"
			     " ORDER BY uid");
	if (st == NULL) {
		ret = sq_db_error(c, err, "view");
		goto out;
	}
	sqlite3_bind_int64(st, 1, mb.id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)since);
	if (viewer > 0)
		sqlite3_bind_int64(st, 3, viewer);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_msg m;
		memset(&m, 0, sizeof(m));
		m.uid = (uint32_t)sqlite3_column_int64(st, 0);
		m.modseq = (uint64_t)sqlite3_column_int64(st, 1);
		m.flags = (unsigned)sqlite3_column_int(st, 2);
		const char *kw = (const char *)sqlite3_column_text(st, 3);
		m.size = (uint64_t)sqlite3_column_int64(st, 4);
		m.internaldate = (time_t)sqlite3_column_int64(st, 5);
		m.savedate = (time_t)sqlite3_column_int64(st, 6);
		sq_emailid(m.emailid, user->id, sqlite3_column_int64(st, 7));
		/* split the keyword list */
		char *copy = kw != NULL ? xstrdup(kw) : NULL;
		const char **list = xcalloc(copy ? strlen(copy) / 2 + 2 : 1,
					    sizeof(char *));
		size_t n = 0;
		char *save = NULL;
		for (char *k = copy ? strtok_r(copy, " ", &save) : NULL;
		     k != NULL; k = strtok_r(NULL, " ", &save))
			list[n++] = k;
		m.keywords = list;
		m.keyword_count = n;
		changed(ctx, &m);
		free(list);
		free(copy);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		ret = sq_db_error(c, err, "view");
out:
	if (ret < 0) {
		free(*expunged_r);
		*expunged_r = NULL;
		*expunged_count_r = 0;
	}
	snap_end(u, c);
	return ret;
}

int sq_view_delta(struct store_user *user, uint32_t mailbox_id,
		  uint64_t since, struct store_mailbox_info *info_r,
		  uint32_t **expunged_r, size_t *expunged_count_r,
		  bool *complete_r,
		  void (*changed)(void *ctx, const struct store_msg *msg),
		  void *ctx, struct store_error *err)
{
	return view_delta(user, mailbox_id, 0, since, info_r, expunged_r,
			  expunged_count_r, complete_r, changed, ctx, err);
}

int sq_seen_view_delta(struct store_user *user, uint32_t mailbox_id,
		       int64_t viewer, uint64_t since,
		       struct store_mailbox_info *info_r,
		       uint32_t **expunged_r, size_t *expunged_count_r,
		       bool *complete_r,
		       void (*changed)(void *ctx, const struct store_msg *msg),
		       void *ctx, struct store_error *err)
{
	return view_delta(user, mailbox_id, viewer, since, info_r, expunged_r,
			  expunged_count_r, complete_r, changed, ctx, err);
}

/* The partial index msg_unseen holds only the rows without \Seen: the
 * first is one step, whatever the mailbox's size. */
int sq_first_unseen(struct store_user *user, uint32_t mailbox_id,
		    uint32_t *uid_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	sqlite3_stmt *st = sq_stmt(c, "SELECT min(uid) FROM msg"
				      " INDEXED BY msg_unseen WHERE"
				      " mailbox = ? AND (flags & 1) = 0");
	int rc = SQLITE_ERROR;
	*uid_r = 0;
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, mailbox_id);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			*uid_r = (uint32_t)sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	int ret = rc == SQLITE_ROW ? 0 : sq_db_error(c, err, "unseen");
	sq_reader_put(u, c);
	return ret;
}

int sq_changed_since(struct store_user *user, const char *mailbox,
		     uint64_t modseq, const struct store_uid_range *ranges,
		     size_t range_count, uint32_t **uids_r, size_t *count_r,
		     struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c;
	struct sq_mbox mb;
	if (snap_mbox(u, mailbox, 0, &c, &mb, err) < 0)
		return -1;
	int rc = SQLITE_ERROR;
	sqlite3_stmt *st = sq_stmt(c, "SELECT uid FROM msg WHERE mailbox = ?"
				      " AND modseq > ?");
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, mb.id);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)modseq);
		rc = sq_collect_uids(st, ranges, range_count, uids_r, count_r);
	}
	int ret = rc == SQLITE_DONE ? 0 : sq_db_error(c, err, "changed");
	snap_end(u, c);
	return ret;
}

/* Without a complete log: every UID below UIDNEXT (within ranges) that is
 * not in the mailbox may have been expunged. */
static int all_missing(struct sq_conn *c, const struct sq_mbox *mb,
		       const struct store_uid_range *ranges, size_t range_count,
		       uint32_t **uids_r, size_t *n_r)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT uid FROM msg WHERE mailbox = ?"
				      " ORDER BY uid");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mb->id);
	uint32_t *uids = NULL;
	size_t n = 0, cap = 0;
	uint32_t next = 1;
	int rc;
	for (;;) {
		rc = sqlite3_step(st);
		uint32_t upto = rc == SQLITE_ROW
					? (uint32_t)sqlite3_column_int64(st, 0)
					: mb->uidnext;
		for (uint32_t x = next; x < upto; x++) {
			if (sq_ranges_contain(ranges, range_count, x))
				u32_push(&uids, &n, &cap, x);
		}
		next = upto + 1;
		if (rc != SQLITE_ROW)
			break;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(uids);
		return -1;
	}
	*uids_r = uids;
	*n_r = n;
	return 0;
}

int sq_expunged_since(struct store_user *user, const char *mailbox,
		      uint64_t modseq, const struct store_uid_range *ranges,
		      size_t range_count, uint32_t **uids_r, size_t *count_r,
		      bool *complete_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c;
	struct sq_mbox mb;
	if (snap_mbox(u, mailbox, 0, &c, &mb, err) < 0)
		return -1;
	uint32_t *all = NULL;
	size_t n = 0;
	bool complete;
	int ret = 0;
	if (expunged_after(c, mb.id, modseq, &all, &n, &complete) < 0) {
		ret = sq_db_error(c, err, "expunged");
	} else if (!complete) {
		free(all);
		all = NULL;
		if (all_missing(c, &mb, ranges, range_count, &all, &n) < 0)
			ret = sq_db_error(c, err, "expunged");
	} else {
		size_t w = 0;
		for (size_t i = 0; i < n; i++) {
			if (sq_ranges_contain(ranges, range_count, all[i]))
				all[w++] = all[i];
		}
		n = w;
	}
	snap_end(u, c);
	if (ret < 0) {
		free(all);
		return -1;
	}
	*uids_r = all;
	*count_r = n;
	*complete_r = complete;
	return 0;
}
