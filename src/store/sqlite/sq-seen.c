/*
 * Per-user \Seen in shared mailboxes (store.h "per-user \Seen"): a
 * viewer's own \Seen of the owner's messages, kept in the owner's index
 * (seen_pvt, schema version 11) with the owner's modseq its change took.
 * A message without a row is unseen for the viewer. Rows go with their
 * message and their mailbox (triggers in SQ_SEEN_SCHEMA). A viewer's
 * change raises neither the message's modseq nor the mailbox's
 * HIGHESTMODSEQ: only that viewer's reads (which take the higher of the
 * common and its own) see it.
 */
#include "sq-private.h"

#include <stdlib.h>
#include <string.h>

/* A read snapshot with the mailbox's id (by name). */
static struct sq_conn *snap(struct sq_user *u, const char *name,
			    uint32_t *id_r, struct store_error *err)
{
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return NULL;
	if (sq_read_begin(c, err) < 0) {
		sq_reader_put(u, c);
		return NULL;
	}
	if (name == NULL)
		return c;
	struct sq_mbox mb;
	int r = sq_mbox_get(c, name, &mb);
	if (r <= 0 || mb.noselect) {
		if (r < 0)
			sq_db_error(c, err, "seen");
		else
			store_set_error(err, STORE_ERR_NOTFOUND,
					"Mailbox doesn't exist: %s", name);
		sq_read_end(c);
		sq_reader_put(u, c);
		return NULL;
	}
	*id_r = mb.id;
	return c;
}

static void snap_end(struct sq_user *u, struct sq_conn *c)
{
	sq_read_end(c);
	sq_reader_put(u, c);
}

int sq_seen_info_in(struct sq_conn *c, uint32_t mailbox_id, int64_t viewer,
		    struct store_mailbox_info *info)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT m.messages, m.highestmodseq,"
		" coalesce((SELECT n FROM seen_count WHERE viewer = ?2"
		" AND mailbox = ?1), 0),"
		" (SELECT coalesce(max(modseq), 0) FROM seen_pvt"
		" WHERE viewer = ?2 AND mailbox = ?1)"
		" FROM mailbox m WHERE m.id = ?1");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	sqlite3_bind_int64(st, 2, viewer);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t messages = sqlite3_column_int64(st, 0);
		uint64_t hms = (uint64_t)sqlite3_column_int64(st, 1);
		int64_t seen = sqlite3_column_int64(st, 2);
		uint64_t own = (uint64_t)sqlite3_column_int64(st, 3);
		info->messages = (uint32_t)messages;
		info->unseen = messages > seen ? (uint32_t)(messages - seen) : 0;
		info->highestmodseq = own > hms ? own : hms;
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int sq_seen_info(struct store_user *user, uint32_t mailbox_id,
		 int64_t viewer, struct store_mailbox_info *info,
		 struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = snap(u, NULL, NULL, err);
	if (c == NULL)
		return -1;
	int ret = sq_seen_info_in(c, mailbox_id, viewer, info) < 0
			  ? sq_db_error(c, err, "seen")
			  : 0;
	snap_end(u, c);
	return ret;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int sq_seen_list(struct store_user *user, int64_t viewer, bool default_shared,
		 struct store_mailbox_info *list, size_t count,
		 struct store_error *err)
{
	if (count == 0)
		return 0;
	struct sq_user *u = SQU(user);
	struct sq_conn *c = snap(u, NULL, NULL, err);
	if (c == NULL)
		return -1;
	/* (id, index in list) pairs sorted by id */
	uint32_t *ids = xcalloc(count * 2, sizeof(*ids));
	for (size_t i = 0; i < count; i++) {
		ids[2 * i] = list[i].id;
		ids[2 * i + 1] = (uint32_t)i;
	}
	qsort(ids, count, 2 * sizeof(*ids), cmp_u32);
	sqlite3_stmt *st = sq_stmt(c, "SELECT m.id, coalesce(sm.shared, -1),"
		" m.messages, m.highestmodseq, coalesce(sc.n, 0),"
		" (SELECT coalesce(max(p.modseq), 0) FROM seen_pvt p"
		" WHERE p.viewer = ?1 AND p.mailbox = m.id)"
		" FROM mailbox m LEFT JOIN seen_mode sm ON sm.mailbox = m.id"
		" LEFT JOIN seen_count sc ON sc.viewer = ?1"
		" AND sc.mailbox = m.id");
	int rc = SQLITE_ERROR;
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, viewer);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			uint32_t key[2] = {(uint32_t)sqlite3_column_int64(st, 0)};
			const uint32_t *hit = bsearch(key, ids, count,
						      2 * sizeof(*ids), cmp_u32);
			int mode = sqlite3_column_int(st, 1);
			bool shared = mode < 0 ? default_shared
					       : mode == STORE_SEEN_SHARED;
			if (hit == NULL || shared || list[hit[1]].noselect)
				continue;
			struct store_mailbox_info *info = &list[hit[1]];
			int64_t messages = sqlite3_column_int64(st, 2);
			uint64_t hms = (uint64_t)sqlite3_column_int64(st, 3);
			int64_t seen = sqlite3_column_int64(st, 4);
			uint64_t own = (uint64_t)sqlite3_column_int64(st, 5);
			info->messages = (uint32_t)messages;
			info->unseen = messages > seen
					       ? (uint32_t)(messages - seen)
					       : 0;
			info->highestmodseq = own > hms ? own : hms;
		}
		sqlite3_reset(st);
	}
	free(ids);
	int ret = rc == SQLITE_DONE ? 0 : sq_db_error(c, err, "seen");
	snap_end(u, c);
	return ret;
}

int sq_seen_mode(struct store_user *user, const char *mailbox, int *mode_r,
		 struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	sqlite3_stmt *st = sq_stmt(c, "SELECT coalesce((SELECT shared FROM"
				      " seen_mode WHERE mailbox = m.id), -1)"
				      " FROM mailbox m WHERE m.name = ?");
	int rc = SQLITE_ERROR;
	if (st != NULL) {
		sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			*mode_r = sqlite3_column_int(st, 0);
		sqlite3_reset(st);
	}
	int ret = 0;
	if (rc == SQLITE_DONE)
		ret = store_set_error(err, STORE_ERR_NOTFOUND,
				      "Mailbox doesn't exist: %s", mailbox);
	else if (rc != SQLITE_ROW)
		ret = sq_db_error(c, err, "seen");
	sq_reader_put(u, c);
	return ret;
}

int sq_seen_move(struct sq_conn *c, uint32_t src, const struct sq_msgrow *rows,
		 size_t count, uint32_t dst, const uint32_t *dst_uids,
		 uint64_t modseq)
{
	for (size_t i = 0; i < count; i++) {
		sqlite3_stmt *st = sq_stmt(c, "INSERT OR REPLACE INTO"
			" seen_pvt(mailbox, uid, viewer, seen, modseq)"
			" SELECT ?1, ?2, viewer, seen, ?3 FROM seen_pvt"
			" WHERE mailbox = ?4 AND uid = ?5");
		if (st == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, dst);
		sqlite3_bind_int64(st, 2, dst_uids[i]);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)modseq);
		sqlite3_bind_int64(st, 4, src);
		sqlite3_bind_int64(st, 5, rows[i].uid);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return -1;
	}
	return 0;
}

struct mode_arg {
	const char *mailbox;
	int mode;
};

/* The mailbox's setting, and, when it changes, every message's modseq
 * raised: the \Seen each reader sees may change with it, and clients
 * with CONDSTORE learn of it as of a flag change (RFC 7162 3.1). */
static int mode_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct mode_arg *a = job->arg;
	struct sq_mbox mb;
	if (sq_job_mbox(job, c, a->mailbox, &mb) < 0)
		return -1;
	sqlite3_stmt *st = sq_stmt(c, "SELECT shared FROM seen_mode"
				      " WHERE mailbox = ?");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, mb.id);
	int rc = sqlite3_step(st), old = -1;
	if (rc == SQLITE_ROW)
		old = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sq_job_dberr(job, c);
	if (old == (a->mode < 0 ? -1 : a->mode))
		return 0;
	uint64_t modseq = sq_job_modseq(u, job);
	st = sq_stmt(c, "UPDATE msg SET modseq = ?1 WHERE mailbox = ?2");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)modseq);
	sqlite3_bind_int64(st, 2, mb.id);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE ||
	    sq_mbox_adjust(c, mb.id, 0, 0, 0, 0, modseq, 0) < 0)
		return sq_job_dberr(job, c);
	sq_job_change(job, mb.id, STORE_CHANGE_FLAGS);
	st = a->mode < 0
		? sq_stmt(c, "DELETE FROM seen_mode WHERE mailbox = ?1")
		: sq_stmt(c, "INSERT OR REPLACE INTO seen_mode(mailbox, shared)"
			     " VALUES (?1, ?2)");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, mb.id);
	if (a->mode >= 0)
		sqlite3_bind_int(st, 2, a->mode);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
}

int sq_seen_set_mode(struct store_user *user, const char *mailbox, int mode,
		     struct store_error *err)
{
	struct mode_arg a = {mailbox, mode};
	return sq_run(SQU(user), mode_job, &a, err);
}

/* ---- a viewer's first unseen UID: a low-water hint ---------------------
 * Dovecot keeps a "first unseen UID lowwater" in each index header. Here
 * an open owner keeps, per (mailbox, viewer), a UID below which the viewer
 * has seen every message, stamped with the highest modseq of the viewer's
 * rows when that was true. While the stamp is the same the walk for
 * [UNSEEN n] starts there: a new message comes above every UID, an expunge
 * keeps it true, and any change of the viewer's rows raises the stamp. A
 * STORE of the viewer (update_job) keeps the hint true as it goes (\Seen
 * set: as it was; cleared: at most the lowest UID cleared), so a reader
 * who reads on and selects again does not walk the mailbox again. */
struct sq_seen_low {
	uint32_t mailbox, uidvalidity;
	int64_t viewer;
	uint64_t stamp;
	uint32_t low;
};

static struct sq_seen_low *low_find(struct sq_user *u, uint32_t mailbox,
				    int64_t viewer)
{
	for (size_t i = 0; i < u->seen_low_count; i++)
		if (u->seen_low[i].mailbox == mailbox &&
		    u->seen_low[i].viewer == viewer)
			return &u->seen_low[i];
	return NULL;
}

static void low_put(struct sq_user *u, const struct sq_seen_low *l)
{
	pthread_mutex_lock(&u->seen_mu);
	struct sq_seen_low *e = low_find(u, l->mailbox, l->viewer);
	if (e == NULL) {
		u->seen_low = xrealloc(u->seen_low, (u->seen_low_count + 1) *
						       sizeof(*u->seen_low));
		e = &u->seen_low[u->seen_low_count++];
	}
	*e = *l;
	pthread_mutex_unlock(&u->seen_mu);
}

static void low_drop(struct sq_user *u, uint32_t mailbox, int64_t viewer)
{
	pthread_mutex_lock(&u->seen_mu);
	struct sq_seen_low *e = low_find(u, mailbox, viewer);
	if (e != NULL)
		*e = u->seen_low[--u->seen_low_count];
	pthread_mutex_unlock(&u->seen_mu);
}

/* After a viewer's change of its rows (stamp from to stamp to): the hint
 * made true again with low at most lowest (UINT32_MAX: nothing cleared),
 * or dropped if it was not the one of stamp from. */
static void low_advance(struct sq_user *u, uint32_t mailbox, int64_t viewer,
			uint64_t from, uint64_t to, uint32_t lowest)
{
	pthread_mutex_lock(&u->seen_mu);
	struct sq_seen_low *e = low_find(u, mailbox, viewer);
	if (e != NULL && e->stamp == from) {
		e->stamp = to;
		if (lowest < e->low)
			e->low = lowest;
	} else if (e != NULL) {
		*e = u->seen_low[--u->seen_low_count];
	}
	pthread_mutex_unlock(&u->seen_mu);
}

/* The highest modseq of viewer's rows in mailbox (0: none). */
static int own_stamp(struct sq_conn *c, uint32_t mailbox, int64_t viewer,
		     uint64_t *stamp_r)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT coalesce(max(modseq), 0)"
				      " FROM seen_pvt WHERE viewer = ?"
				      " AND mailbox = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, viewer);
	sqlite3_bind_int64(st, 2, mailbox);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*stamp_r = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

int sq_seen_first_unseen(struct store_user *user, uint32_t mailbox_id,
			 int64_t viewer, uint32_t *uid_r,
			 struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = snap(u, NULL, NULL, err);
	if (c == NULL)
		return -1;
	*uid_r = 0;
	struct sq_mbox mb;
	struct sq_seen_low now = {.mailbox = mailbox_id, .viewer = viewer};
	int r = sq_mbox_get_id(c, mailbox_id, &mb);
	if (r <= 0 || own_stamp(c, mailbox_id, viewer, &now.stamp) < 0) {
		int ret = r == 0 ? 0 : sq_db_error(c, err, "unseen");
		snap_end(u, c);
		return ret;
	}
	now.uidvalidity = mb.uidvalidity;
	uint32_t from = 0;
	pthread_mutex_lock(&u->seen_mu);
	struct sq_seen_low *e = low_find(u, mailbox_id, viewer);
	if (e != NULL && e->uidvalidity == now.uidvalidity &&
	    e->stamp == now.stamp)
		from = e->low;
	pthread_mutex_unlock(&u->seen_mu);
	sqlite3_stmt *st = sq_stmt(c, "SELECT m.uid FROM msg m"
		" WHERE m.mailbox = ?1 AND m.uid >= ?3 AND NOT EXISTS"
		" (SELECT 1 FROM seen_pvt p WHERE p.mailbox = ?1"
		" AND p.uid = m.uid AND p.viewer = ?2 AND p.seen = 1)"
		" ORDER BY m.uid LIMIT 1");
	int rc = SQLITE_ERROR;
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, mailbox_id);
		sqlite3_bind_int64(st, 2, viewer);
		sqlite3_bind_int64(st, 3, from);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			*uid_r = (uint32_t)sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	int ret = rc == SQLITE_ROW || rc == SQLITE_DONE
			  ? 0
			  : sq_db_error(c, err, "unseen");
	snap_end(u, c);
	if (ret == 0) {
		/* every UID below the first unseen one is seen; none
		 * unseen: every UID there is (below UIDNEXT) */
		now.low = *uid_r != 0 ? *uid_r : mb.uidnext;
		low_put(u, &now);
	}
	return ret;
}

int sq_seen_rows(struct store_user *user, const char *mailbox,
		 int64_t viewer, const struct store_uid_range *ranges,
		 size_t range_count, struct store_seen_row **rows_r,
		 size_t *count_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	uint32_t id;
	struct sq_conn *c = snap(u, mailbox, &id, err);
	if (c == NULL)
		return -1;
	struct store_uid_range all = {1, UINT32_MAX};
	if (ranges == NULL) {
		ranges = &all;
		range_count = 1;
	}
	struct store_seen_row *rows = NULL;
	size_t n = 0, cap = 0;
	int rc = SQLITE_DONE;
	for (size_t r = 0; r < range_count && rc == SQLITE_DONE; r++) {
		sqlite3_stmt *st = sq_stmt(c, "SELECT uid, seen, modseq"
					      " FROM seen_pvt WHERE mailbox = ?"
					      " AND uid BETWEEN ? AND ?"
					      " AND viewer = ? ORDER BY uid");
		if (st == NULL) {
			rc = SQLITE_ERROR;
			break;
		}
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, ranges[r].lo);
		sqlite3_bind_int64(st, 3, ranges[r].hi);
		sqlite3_bind_int64(st, 4, viewer);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				rows = xrealloc(rows, cap * sizeof(*rows));
			}
			rows[n].uid = (uint32_t)sqlite3_column_int64(st, 0);
			rows[n].seen = sqlite3_column_int(st, 1) != 0;
			rows[n].modseq = (uint64_t)sqlite3_column_int64(st, 2);
			n++;
		}
		sqlite3_reset(st);
	}
	int ret = rc == SQLITE_DONE ? 0 : sq_db_error(c, err, "seen");
	snap_end(u, c);
	if (ret < 0) {
		free(rows);
		return -1;
	}
	*rows_r = rows;
	*count_r = n;
	return 0;
}

int sq_seen_changed_since(struct store_user *user, const char *mailbox,
			  int64_t viewer, uint64_t modseq,
			  const struct store_uid_range *ranges,
			  size_t range_count, uint32_t **uids_r,
			  size_t *count_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	uint32_t id;
	struct sq_conn *c = snap(u, mailbox, &id, err);
	if (c == NULL)
		return -1;
	int rc = SQLITE_ERROR;
	sqlite3_stmt *st = sq_stmt(c, "SELECT uid FROM msg WHERE mailbox = ?1"
				      " AND modseq > ?2 UNION SELECT uid"
				      " FROM seen_pvt WHERE viewer = ?3"
				      " AND mailbox = ?1 AND modseq > ?2");
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)modseq);
		sqlite3_bind_int64(st, 3, viewer);
		rc = sq_collect_uids(st, ranges, range_count, uids_r, count_r);
	}
	int ret = rc == SQLITE_DONE ? 0 : sq_db_error(c, err, "changed");
	snap_end(u, c);
	return ret;
}

struct update_arg {
	const char *mailbox;
	uint32_t mailbox_id;       /* found by the job (0: not yet) */
	int64_t viewer;
	const struct store_uid_range *ranges;
	size_t range_count;
	struct store_seen_change *ch;
};

static int update_job(struct sq_user *u, struct sq_conn *c,
		      struct sq_job *job)
{
	struct update_arg *a = job->arg;
	struct store_seen_change *ch = a->ch;
	struct sq_mbox mb;
	if (sq_job_mbox(job, c, a->mailbox, &mb) < 0)
		return -1;
	a->mailbox_id = mb.id;
	uint64_t stamp = 0;    /* the viewer's rows before: the hint's stamp */
	if (own_stamp(c, mb.id, a->viewer, &stamp) < 0)
		return sq_job_dberr(job, c);
	struct store_uid_range all = {1, UINT32_MAX};
	const struct store_uid_range *ranges = a->ranges ? a->ranges : &all;
	size_t nranges = a->ranges ? a->range_count : 1;
	size_t cap_c = 0, cap_m = 0;
	/* what to change, read before any write */
	uint32_t *todo = NULL;
	size_t ntodo = 0, cap_t = 0;
	for (size_t r = 0; r < nranges; r++) {
		sqlite3_stmt *st = sq_stmt(c, "SELECT m.uid, m.modseq,"
			" coalesce(p.seen, 0), coalesce(p.modseq, 0)"
			" FROM msg m LEFT JOIN seen_pvt p ON p.mailbox = m.mailbox"
			" AND p.uid = m.uid AND p.viewer = ?4"
			" WHERE m.mailbox = ?1 AND m.uid BETWEEN ?2 AND ?3"
			" ORDER BY m.uid");
		if (st == NULL)
			goto fail;
		sqlite3_bind_int64(st, 1, mb.id);
		sqlite3_bind_int64(st, 2, ranges[r].lo);
		sqlite3_bind_int64(st, 3, ranges[r].hi);
		sqlite3_bind_int64(st, 4, a->viewer);
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			uint32_t uid = (uint32_t)sqlite3_column_int64(st, 0);
			uint64_t common = (uint64_t)sqlite3_column_int64(st, 1);
			bool seen = sqlite3_column_int(st, 2) != 0;
			uint64_t own = (uint64_t)sqlite3_column_int64(st, 3);
			uint64_t modseq = own > common ? own : common;
			/* RFC 7162 3.1.3, with the modseq this viewer sees */
			if (ch->unchangedsince != 0 &&
			    modseq > ch->unchangedsince) {
				u32_push(&ch->modified, &ch->modified_count,
					 &cap_m, uid);
				continue;
			}
			if (seen != ch->seen)
				u32_push(&todo, &ntodo, &cap_t, uid);
		}
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			goto fail;
	}
	for (size_t i = 0; i < ntodo; i++) {
		uint64_t modseq = sq_job_modseq(u, job);
		/* an upsert (not REPLACE): seen_count's triggers see it */
		sqlite3_stmt *st = sq_stmt(c, "INSERT INTO"
			" seen_pvt(mailbox, uid, viewer, seen, modseq)"
			" VALUES (?, ?, ?, ?, ?) ON CONFLICT (mailbox, uid,"
			" viewer) DO UPDATE SET seen = excluded.seen,"
			" modseq = excluded.modseq");
		if (st == NULL)
			goto fail;
		sqlite3_bind_int64(st, 1, mb.id);
		sqlite3_bind_int64(st, 2, todo[i]);
		sqlite3_bind_int64(st, 3, a->viewer);
		sqlite3_bind_int(st, 4, ch->seen);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)modseq);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			goto fail;
		u32_push(&ch->changed, &ch->changed_count, &cap_c, todo[i]);
	}
	free(todo);
	if (ch->changed_count > 0) {
		uint32_t lowest = UINT32_MAX;   /* the lowest UID cleared */
		for (size_t i = 0; i < ch->changed_count && !ch->seen; i++)
			if (ch->changed[i] < lowest)
				lowest = ch->changed[i];
		low_advance(u, mb.id, a->viewer, stamp, job->modseq, lowest);
		ch->modseq = job->modseq;
		/* wakes the sessions on the owner's mail; only this viewer's
		 * find something (the others' deltas do not see the rows) */
		sq_job_change(job, mb.id, STORE_CHANGE_FLAGS);
	}
	return 0;
fail:
	free(todo);
	free(ch->changed);
	free(ch->modified);
	ch->changed = ch->modified = NULL;
	ch->changed_count = ch->modified_count = 0;
	return sq_job_dberr(job, c);
}

int sq_seen_update(struct store_user *user, const char *mailbox,
		   int64_t viewer, const struct store_uid_range *ranges,
		   size_t range_count, struct store_seen_change *change,
		   struct store_error *err)
{
	change->changed = change->modified = NULL;
	change->changed_count = change->modified_count = 0;
	change->modseq = 0;
	struct update_arg a = {mailbox, 0, viewer, ranges, range_count, change};
	int ret = sq_run(SQU(user), update_job, &a, err);
	if (ret < 0) {
		/* the hint may have moved with a change now undone */
		if (a.mailbox_id != 0)
			low_drop(SQU(user), a.mailbox_id, a.viewer);
		free(change->changed);
		free(change->modified);
		change->changed = change->modified = NULL;
		change->changed_count = change->modified_count = 0;
	}
	return ret;
}
