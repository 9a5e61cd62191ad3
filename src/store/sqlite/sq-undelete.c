/*
 * Undelete, embedded backend (store.h "undelete"): a removed message's
 * row goes to the deleted table in the job that removes it (its blob
 * stays: sq_blob_unref counts deleted rows as users), and comes back
 * with a new UID through sq_copy_rows; the retention run purges what is
 * past the account's period. Whether an account keeps them is its
 * deleted_retention_days (store_account_limits), read in the caller's
 * thread before a removal job (sq_deleted_policy) and looked at by the
 * job (sq_deleted_keep).
 */
#include "sq-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "log.h"

/* Seconds a policy read stays good: an admin change applies within it. */
#define POLICY_TTL 30

void sq_deleted_policy(struct store_user *user)
{
	struct sq_user *u = SQU(user);
	int64_t now = (int64_t)time(NULL);
	if (now - atomic_load(&u->deleted_checked) < POLICY_TTL)
		return;
	struct store_account_limits l;
	struct store_error err;
	/* unread (accounts.db busy): as it was, and kept when never read */
	if (sq_limits_get(user, &l, &err) < 0)
		return;
	atomic_store(&u->deleted_off, l.deleted_retention_days == 0);
	atomic_store(&u->deleted_checked, now);
}

static char *mailbox_name(struct sq_conn *c, uint32_t id)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT name FROM mailbox WHERE id = ?");
	if (st == NULL)
		return NULL;
	sqlite3_bind_int64(st, 1, id);
	char *name = NULL;
	if (sqlite3_step(st) == SQLITE_ROW)
		name = xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	return name;
}

int sq_deleted_keep(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		    uint32_t mailbox_id, const struct sq_msgrow *rows,
		    size_t count)
{
	if (count == 0 || atomic_load(&u->deleted_off))
		return 0;
	char *name = mailbox_name(c, mailbox_id);
	if (name == NULL)
		return sq_job_dberr(job, c);
	int64_t now = (int64_t)time(NULL);
	int ret = 0;
	for (size_t i = 0; i < count && ret == 0; i++) {
		const struct sq_msgrow *m = &rows[i];
		sqlite3_stmt *st = sq_stmt(c, "INSERT INTO deleted (mailbox, uid,"
					      " blob, flags, keywords, internaldate,"
					      " savedate, size, at) VALUES"
					      " (?,?,?,?,?,?,?,?,?)");
		if (st == NULL) {
			ret = sq_job_dberr(job, c);
			break;
		}
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, m->uid);
		sqlite3_bind_int64(st, 3, m->blob);
		sqlite3_bind_int(st, 4, (int)m->flags);
		if (m->keywords != NULL && m->keywords[0] != '\0')
			sqlite3_bind_text(st, 5, m->keywords, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, m->internaldate);
		sqlite3_bind_int64(st, 7, m->savedate);
		sqlite3_bind_int64(st, 8, (sqlite3_int64)m->size);
		sqlite3_bind_int64(st, 9, now);
		if (sqlite3_step(st) != SQLITE_DONE)
			ret = sq_job_dberr(job, c);
		sqlite3_reset(st);
	}
	free(name);
	return ret;
}

/* Steps st (bound: a DELETE FROM deleted ... RETURNING blob) and lets go
 * of the blobs of the rows it removed. */
static int drop_rows(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		     sqlite3_stmt *st, uint32_t *count_r)
{
	int64_t *blobs = NULL;
	size_t n = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		blobs = xrealloc(blobs, (n + 1) * sizeof(*blobs));
		blobs[n++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	int ret = rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
	for (size_t i = 0; i < n && ret == 0; i++)
		if (sq_blob_unref(u, c, job, blobs[i]) < 0)
			ret = sq_job_dberr(job, c);
	free(blobs);
	if (ret == 0)
		*count_r += (uint32_t)n;
	return ret;
}

int sq_deleted_purge(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		     time_t before, uint32_t *count_r)
{
	sqlite3_stmt *st = sq_stmt(c, "DELETE FROM deleted WHERE at < ?"
				      " RETURNING blob");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)before);
	return drop_rows(u, c, job, st, count_r);
}

struct forget_arg {
	const int64_t *ids;
	size_t count;
	uint32_t forgotten;
};

static int forget_job(struct sq_user *u, struct sq_conn *c,
		      struct sq_job *job)
{
	struct forget_arg *a = job->arg;
	for (size_t i = 0; i < a->count; i++) {
		sqlite3_stmt *st = sq_stmt(c, "DELETE FROM deleted WHERE id = ?"
					      " RETURNING blob");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, a->ids[i]);
		if (drop_rows(u, c, job, st, &a->forgotten) < 0)
			return -1;
	}
	return 0;
}

int sq_deleted_forget(struct store_user *user, const int64_t *ids,
		      size_t count, struct store_error *err)
{
	struct forget_arg a = {ids, count, 0};
	return sq_run(SQU(user), forget_job, &a, err);
}

/* ---- list ------------------------------------------------------------ */

/* "... WHERE <filter>" for the deleted table as d, with its binds. */
static void filter_sql(struct buf *sql, const struct store_deleted_filter *f)
{
	buf_append_str(sql, " WHERE 1");
	if (f != NULL && f->mailbox != NULL)
		buf_append_str(sql, " AND d.mailbox = ?1");
	if (f != NULL && f->since != 0)
		buf_append_str(sql, " AND d.at >= ?2");
	if (f != NULL && f->id_count > 0)
		buf_append_str(sql, " AND d.id IN (SELECT value FROM"
				    " json_each(?3))");
}

static void filter_bind(sqlite3_stmt *st, const struct store_deleted_filter *f,
			struct buf *ids)
{
	if (f == NULL)
		return;
	if (f->mailbox != NULL)
		sqlite3_bind_text(st, 1, f->mailbox, -1, SQLITE_STATIC);
	if (f->since != 0)
		sqlite3_bind_int64(st, 2, (sqlite3_int64)f->since);
	if (f->id_count > 0) {
		buf_append_str(ids, "[");
		for (size_t i = 0; i < f->id_count; i++)
			buf_printf(ids, "%s%lld", i ? "," : "",
				   (long long)f->ids[i]);
		buf_append_str(ids, "]");
		sqlite3_bind_text(st, 3, ids->data, -1, SQLITE_STATIC);
	}
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s != NULL ? s : "";
}

int sq_deleted_list(struct store_user *user,
		    const struct store_deleted_filter *filter,
		    store_deleted_fn *fn, void *ctx, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	struct buf sql, ids;
	buf_init(&sql, 0);
	buf_init(&ids, 0);
	buf_append_str(&sql, "SELECT d.id, d.mailbox, d.uid, d.flags,"
			      " d.keywords, d.internaldate, d.savedate, d.at,"
			      " d.size, b.sort_subject, b.sort_display_from,"
			      " b.preview FROM deleted d LEFT JOIN blob b"
			      " ON b.id = d.blob");
	filter_sql(&sql, filter);
	buf_append_str(&sql, " ORDER BY d.at DESC, d.id DESC");
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(c->db, sql.data, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		filter_bind(st, filter, &ids);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			struct store_deleted d = {
				.id = sqlite3_column_int64(st, 0),
				.mailbox = col_text(st, 1),
				.uid = (uint32_t)sqlite3_column_int64(st, 2),
				.flags = (unsigned)sqlite3_column_int(st, 3),
				.keywords = col_text(st, 4),
				.internaldate = (time_t)sqlite3_column_int64(st, 5),
				.savedate = (time_t)sqlite3_column_int64(st, 6),
				.deleted_at = (time_t)sqlite3_column_int64(st, 7),
				.size = (uint64_t)sqlite3_column_int64(st, 8),
				.subject = col_text(st, 9),
				.from = col_text(st, 10),
				.preview = col_text(st, 11),
			};
			if (!fn(ctx, &d)) {
				rc = SQLITE_DONE;
				break;
			}
		}
	}
	int ret = rc == SQLITE_DONE ? 0 : sq_db_error(c, err, "deleted list");
	sqlite3_finalize(st);
	buf_free(&sql);
	buf_free(&ids);
	sq_reader_put(u, c);
	return ret;
}

int sq_deleted_usage(struct store_user *user, struct store_usage *usage_r,
		     struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	sqlite3_stmt *st = sq_stmt(c, "SELECT count(*), total(size) FROM deleted");
	int ret = -1;
	if (st != NULL && sqlite3_step(st) == SQLITE_ROW) {
		usage_r->messages = (uint64_t)sqlite3_column_int64(st, 0);
		usage_r->bytes = (uint64_t)sqlite3_column_double(st, 1);
		ret = 0;
	}
	if (st != NULL)
		sqlite3_reset(st);
	if (ret < 0)
		ret = sq_db_error(c, err, "deleted usage");
	sq_reader_put(u, c);
	return ret;
}

/* ---- undelete ----------------------------------------------------- */

struct undelete_arg {
	const struct store_deleted_filter *filter;
	struct store_account_limits limits;
	struct store_undelete_report report;
};

struct kept {
	int64_t id;
	char *mailbox;
	struct sq_msgrow row;
};

static void kept_free(struct kept *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].mailbox);
		free(v[i].row.keywords);
	}
	free(v);
}

/* The folder name for restored mail: made (with its parents) when it is
 * gone, a \Noselect parent made a mailbox again (new UIDVALIDITY). */
static int target_mailbox(struct sq_user *u, struct sq_conn *c,
			  struct sq_job *job, const char *name, uint32_t *id_r,
			  uint32_t *made)
{
	struct sq_mbox mb;
	int r = sq_mbox_get(c, name, &mb);
	if (r < 0)
		return sq_job_dberr(job, c);
	if (r == 0) {
		if (sq_mbox_create_parents(u, c, job, name) < 0 ||
		    sq_mbox_create_tx(u, c, job, name, 0, id_r) < 0)
			return -1;
		(*made)++;
		return 0;
	}
	if (mb.noselect) {
		sqlite3_stmt *st = sq_stmt(c, "UPDATE mailbox SET noselect = 0,"
					      " uidvalidity = ?, highestmodseq = ?"
					      " WHERE id = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, sq_next_uidvalidity(u));
		sqlite3_bind_int64(st, 2, (sqlite3_int64)sq_job_modseq(u, job));
		sqlite3_bind_int64(st, 3, mb.id);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
		sq_job_change(job, 0, STORE_CHANGE_MAILBOXES);
		(*made)++;
	}
	*id_r = mb.id;
	return 0;
}

static int undelete_job(struct sq_user *u, struct sq_conn *c,
			struct sq_job *job)
{
	struct undelete_arg *a = job->arg;
	memset(&a->report, 0, sizeof(a->report));
	struct buf sql, ids;
	buf_init(&sql, 0);
	buf_init(&ids, 0);
	buf_append_str(&sql, "SELECT d.id, d.mailbox, d.blob, d.flags,"
			      " d.keywords, d.internaldate, d.size FROM deleted d");
	filter_sql(&sql, a->filter);
	/* by folder, then in the order they were removed */
	buf_append_str(&sql, " ORDER BY d.mailbox, d.id");
	sqlite3_stmt *st = NULL;
	struct kept *v = NULL;
	size_t n = 0;
	int rc = sqlite3_prepare_v2(c->db, sql.data, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		filter_bind(st, a->filter, &ids);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			v = xrealloc(v, (n + 1) * sizeof(*v));
			struct kept *k = &v[n++];
			memset(k, 0, sizeof(*k));
			k->id = sqlite3_column_int64(st, 0);
			k->mailbox = xstrdup(col_text(st, 1));
			k->row.blob = sqlite3_column_int64(st, 2);
			k->row.flags = (unsigned)sqlite3_column_int(st, 3) &
				       ~(unsigned)STORE_FLAG_DELETED;
			const char *kw = (const char *)sqlite3_column_text(st, 4);
			k->row.keywords = kw != NULL ? xstrdup(kw) : NULL;
			k->row.internaldate = sqlite3_column_int64(st, 5);
			k->row.size = (uint64_t)sqlite3_column_int64(st, 6);
		}
	}
	sqlite3_finalize(st);
	buf_free(&sql);
	buf_free(&ids);
	int ret = rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
	uint64_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += v[i].row.size;
	/* kept ones counted in the quota already when deleted_in_quota */
	if (ret == 0 && n > 0 && !a->limits.deleted_in_quota &&
	    sq_over_quota(u, &a->limits, bytes, n))
		ret = sq_job_fail(job, STORE_ERR_QUOTA,
				  "Bringing back %zu messages (%llu bytes)"
				  " would exceed the quota", n,
				  (unsigned long long)bytes);
	time_t now = time(NULL);
	for (size_t i = 0; i < n && ret == 0;) {
		size_t k = i;
		while (k < n && strcmp(v[k].mailbox, v[i].mailbox) == 0)
			k++;
		uint32_t id;
		ret = target_mailbox(u, c, job, v[i].mailbox, &id,
				     &a->report.mailboxes_made);
		struct sq_msgrow *rows = xcalloc(k - i, sizeof(*rows));
		uint32_t *uids = xcalloc(k - i, sizeof(*uids));
		for (size_t j = i; j < k; j++)
			rows[j - i] = v[j].row;
		if (ret == 0)
			ret = sq_copy_rows(u, c, job, id, rows, k - i, now, uids);
		free(rows);
		free(uids);
		for (size_t j = i; j < k && ret == 0; j++) {
			sqlite3_stmt *d = sq_stmt(c, "DELETE FROM deleted"
						     " WHERE id = ?");
			if (d == NULL) {
				ret = sq_job_dberr(job, c);
				break;
			}
			sqlite3_bind_int64(d, 1, v[j].id);
			if (sqlite3_step(d) != SQLITE_DONE)
				ret = sq_job_dberr(job, c);
			sqlite3_reset(d);
		}
		i = k;
	}
	if (ret == 0) {
		a->report.messages = (uint32_t)n;
		a->report.bytes = bytes;
	}
	kept_free(v, n);
	return ret;
}

int sq_undelete(struct store_user *user,
		const struct store_deleted_filter *filter,
		struct store_undelete_report *report_r,
		struct store_error *err)
{
	struct undelete_arg a;
	memset(&a, 0, sizeof(a));
	a.filter = filter;
	if (sq_limits_get(user, &a.limits, err) < 0)
		return -1;
	int ret = sq_run(SQU(user), undelete_job, &a, err);
	if (ret == 0 && report_r != NULL)
		*report_r = a.report;
	if (ret == 0 && a.report.messages > 0)
		log_info("store", NULL, "user %lld: %u messages undeleted",
			 (long long)user->id, a.report.messages);
	return ret;
}
