/*
 * JMAP reads of the embedded backend (store.h "JMAP"): states, changes,
 * mailboxes with their JMAP counts, Emails, queries' scans, threads,
 * account-wide text search, stored objects, and pruning of the logs. The
 * tables and the triggers that keep them are in sq-jmap-schema.h; the
 * writes (email transactions, uploads) in sq-jmap-tx.c.
 */
#include "sq-private.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "sq-jmap-schema.h"

const char sq_jmap_schema_sql[] = SQ_JMAP_TABLES SQ_JMAP_TRIGGERS;
const char sq_jmap_upgrade_sql[] =
	SQ_JMAP_TABLES SQ_JMAP_BACKFILL SQ_JMAP_TRIGGERS;
/* 11 -> 12: the triggers that add a visible copy revive the Email
 * (JM_EMAIL_REVIVE); SQ_JMAP_TRIGGERS makes the dropped ones again. */
const char sq_jmap_revive_sql[] =
	"DROP TRIGGER IF EXISTS jmsg_ins; DROP TRIGGER IF EXISTS jmsg_upd;"
	SQ_JMAP_TRIGGERS;

static void fn_has_attachment(sqlite3_context *ctx, int argc,
			      sqlite3_value **argv)
{
	const char *bs = (const char *)sqlite3_value_text(argv[0]);
	int len = sqlite3_value_bytes(argv[0]);
	sqlite3_result_int(ctx, bs != NULL &&
			   store_bodystructure_has_attachment(bs, (size_t)len));
}

void sq_jmap_functions(sqlite3 *db)
{
	sqlite3_create_function(db, "loft_has_attachment", 1,
				SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
				fn_has_attachment, NULL, NULL);
}

/* ---- helpers ------------------------------------------------------ */

/* A read snapshot on a pooled connection. */
struct sq_conn *sq_snap_begin(struct sq_user *u, struct store_error *err)
{
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return NULL;
	if (sq_read_begin(c, err) < 0) {
		sq_reader_put(u, c);
		return NULL;
	}
	return c;
}

void sq_snap_end(struct sq_user *u, struct sq_conn *c)
{
	sq_read_end(c);
	sq_reader_put(u, c);
}

static int64_t one_int(struct sq_conn *c, const char *sql, int64_t arg,
		       bool *ok)
{
	sqlite3_stmt *st = sq_stmt(c, sql);
	if (st == NULL) {
		*ok = false;
		return 0;
	}
	if (arg >= 0)
		sqlite3_bind_int64(st, 1, arg);
	int rc = sqlite3_step(st);
	int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		*ok = false;
	sqlite3_reset(st);
	return v;
}

static uint64_t horizon_get(struct sq_conn *c, bool *ok)
{
	return (uint64_t)one_int(c, "SELECT v FROM jmeta WHERE k = 'horizon'",
				 -1, ok);
}

/* ---- states ------------------------------------------------------- */

static const char *const live_max_sql[STORE_JMAP_KINDS] = {
	[STORE_JMAP_MAILBOX] = "SELECT max(modseq) FROM jmailbox",
	[STORE_JMAP_EMAIL] = "SELECT max(modseq) FROM jemail",
	[STORE_JMAP_THREAD] = "SELECT max(modseq) FROM jthread",
};

int sq_jmap_states(struct store_user *user, struct store_jmap_cursor *states,
		   struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_snap_begin(u, err);
	if (c == NULL)
		return -1;
	bool ok = true;
	int64_t account = one_int(c, "SELECT modseq FROM account", -1, &ok);
	/* a state never goes back, not even when tombstones are pruned */
	int64_t horizon = (int64_t)horizon_get(c, &ok);
	for (int k = 0; k < STORE_JMAP_KINDS && ok; k++) {
		int64_t live = live_max_sql[k] != NULL
				       ? one_int(c, live_max_sql[k], -1, &ok)
				       : one_int(c, "SELECT max(modseq) FROM"
						    " jobject WHERE kind = ?",
						 k, &ok);
		int64_t gone = one_int(c, "SELECT max(modseq) FROM jgone"
					  " WHERE kind = ?", k, &ok);
		int64_t v = live > gone ? live : gone;
		if (v < horizon)
			v = horizon;
		/* a batch that took no modseq may have stamped one more */
		if (v > account)
			v = account;
		states[k].modseq = (uint64_t)v;
		states[k].id = 0;
		states[k].scope = 0;
	}
	int ret = ok ? 0 : sq_db_error(c, err, "jmap states");
	sq_snap_end(u, c);
	return ret;
}

/* ---- changes ------------------------------------------------------ */

/* (modseq, id) > since, and no later than the current state. */
static const char *const live_changes_sql[STORE_JMAP_KINDS] = {
	[STORE_JMAP_MAILBOX] =
		"SELECT j.id, j.created, j.modseq, 1, x.objectid, j.meta"
		" FROM jmailbox j JOIN mailbox x ON x.id = j.id"
		" WHERE (j.modseq, j.id) > (?1, ?2) AND j.modseq <= ?3"
		" ORDER BY j.modseq, j.id LIMIT ?4",
	/* an Email no longer visible whose blob stays (all copies
	 * \Deleted, or kept for undelete) is destroyed with its thread as
	 * objectid, as a tombstone has it */
	[STORE_JMAP_EMAIL] =
		"SELECT e.id, e.created, e.modseq, e.visible > 0, CASE WHEN"
		" e.visible > 0 THEN NULL ELSE (SELECT thread FROM blob b"
		" WHERE b.id = e.id) END, 0 FROM jemail e"
		" WHERE (e.modseq, e.id) > (?1, ?2) AND e.modseq <= ?3"
		" ORDER BY e.modseq, e.id LIMIT ?4",
	[STORE_JMAP_THREAD] =
		"SELECT t.id, t.created, t.modseq, EXISTS (SELECT 1 FROM blob b"
		" JOIN jemail e ON e.id = b.id WHERE b.thread = t.id AND"
		" e.visible > 0), NULL, 0 FROM jthread t"
		" WHERE (t.modseq, t.id) > (?1, ?2) AND t.modseq <= ?3"
		" ORDER BY t.modseq, t.id LIMIT ?4",
};
static const char jobject_changes_sql[] =
	"SELECT id, created, modseq, 1, NULL, 0 FROM jobject WHERE kind = ?5"
	" AND (modseq, id) > (?1, ?2) AND modseq <= ?3"
	" ORDER BY modseq, id LIMIT ?4";
static const char gone_changes_sql[] =
	"SELECT id, created, modseq, 0, oid, 0 FROM jgone WHERE kind = ?5"
	" AND (modseq, id) > (?1, ?2) AND modseq <= ?3"
	" ORDER BY modseq, id LIMIT ?4";

struct change_row {
	int64_t id;
	uint64_t created, modseq, meta;
	bool live;
	char oid[32];
};

struct change_rows {
	struct change_row *v;
	size_t n, cap;
};

static int change_rows_load(struct sq_conn *c, const char *sql, int kind,
			    const struct store_jmap_cursor *since,
			    uint64_t upto, int64_t limit,
			    struct change_rows *r)
{
	sqlite3_stmt *st = sq_stmt(c, sql);
	if (st == NULL)
		return -1;
	/* id 0: every change at since->modseq was seen */
	sqlite3_bind_int64(st, 1, (sqlite3_int64)since->modseq);
	sqlite3_bind_int64(st, 2, since->id != 0 ? since->id : INT64_MAX);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)upto);
	sqlite3_bind_int64(st, 4, limit);
	if (sqlite3_bind_parameter_count(st) >= 5)
		sqlite3_bind_int(st, 5, kind);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (r->n == r->cap) {
			r->cap = r->cap ? r->cap * 2 : 64;
			r->v = xrealloc(r->v, r->cap * sizeof(*r->v));
		}
		struct change_row *x = &r->v[r->n++];
		x->id = sqlite3_column_int64(st, 0);
		x->created = (uint64_t)sqlite3_column_int64(st, 1);
		x->modseq = (uint64_t)sqlite3_column_int64(st, 2);
		x->live = sqlite3_column_int(st, 3) != 0;
		const char *oid = (const char *)sqlite3_column_text(st, 4);
		snprintf(x->oid, sizeof(x->oid), "%s", oid ? oid : "");
		x->meta = (uint64_t)sqlite3_column_int64(st, 5);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static bool cursor_after(uint64_t modseq, int64_t id,
			 const struct store_jmap_cursor *c)
{
	return modseq > c->modseq ||
	       (modseq == c->modseq && c->id != 0 && id > c->id);
}

static void change_push(struct store_jmap_change **v, size_t *n,
			const struct change_row *r)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[*n].id = r->id;
	memcpy((*v)[*n].objectid, r->oid, sizeof(r->oid));
	(*n)++;
}

static int cmp_change_row(const void *a, const void *b)
{
	const struct change_row *x = a, *y = b;
	if (x->modseq != y->modseq)
		return x->modseq < y->modseq ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

int sq_jmap_changes(struct store_user *user, enum store_jmap_kind kind,
		    const struct store_jmap_cursor *since, size_t max,
		    struct store_jmap_changes *r, struct store_error *err)
{
	struct store_jmap_cursor states[STORE_JMAP_KINDS] = {{0}};
	/* the state first: rows past it are left for the next call */
	if (sq_jmap_states(user, states, err) < 0)
		return -1;
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_snap_begin(u, err);
	if (c == NULL)
		return -1;
	bool ok = true;
	uint64_t horizon = horizon_get(c, &ok);
	uint64_t upto = states[kind].modseq;
	int ret = 0;
	struct change_rows rows = {0};
	if (!ok) {
		ret = sq_db_error(c, err, "jmap changes");
		goto out;
	}
	if (since->modseq < horizon) {
		r->too_old = true;
		goto out;
	}
	int64_t limit = max > 0 ? (int64_t)max + 1 : -1;
	const char *live = live_changes_sql[kind] != NULL
				   ? live_changes_sql[kind]
				   : jobject_changes_sql;
	if (change_rows_load(c, live, kind, since, upto, limit, &rows) < 0 ||
	    change_rows_load(c, gone_changes_sql, kind, since, upto, limit,
			     &rows) < 0) {
		ret = sq_db_error(c, err, "jmap changes");
		goto out;
	}
	if (rows.n > 1)
		qsort(rows.v, rows.n, sizeof(*rows.v), cmp_change_row);
	size_t take = rows.n;
	if (max > 0 && rows.n > max) {
		take = max;
		r->more = true;
	}
	bool meta = false;
	for (size_t i = 0; i < take; i++) {
		const struct change_row *x = &rows.v[i];
		bool created_after = cursor_after(x->created, x->id, since);
		if (x->live && created_after)
			change_push(&r->created, &r->created_count, x);
		else if (x->live) {
			change_push(&r->updated, &r->updated_count, x);
			meta |= x->meta > since->modseq;
		} else if (!created_after || kind == STORE_JMAP_EMAIL) {
			/* An Email's created moves when it comes back
			 * (JM_EMAIL_REVIVE), so a later one does not prove
			 * the client never held it: RFC 8620 5.2 lets it
			 * be listed destroyed all the same. */
			change_push(&r->destroyed, &r->destroyed_count, x);
		}
	}
	r->counts_only = kind == STORE_JMAP_MAILBOX && r->updated_count > 0 &&
			 !meta;
	if (r->more) {
		r->new_state.modseq = rows.v[take - 1].modseq;
		r->new_state.id = rows.v[take - 1].id;
	} else {
		r->new_state = states[kind];
		if (r->new_state.modseq < since->modseq)
			r->new_state = *since;
	}
out:
	free(rows.v);
	sq_snap_end(u, c);
	if (ret < 0)
		store_jmap_changes_free(r);
	return ret;
}

/* ---- pruning ------------------------------------------------------ */

struct prune_arg {
	time_t now;
	char **unlink;
	size_t unlink_count;
};

static int prune_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct prune_arg *a = job->arg;
	int64_t cutoff = (int64_t)a->now - (int64_t)STORE_JMAP_LOG_DAYS * 86400;
	static const char *const steps[] = {
		"INSERT OR REPLACE INTO jmeta SELECT 'horizon', max("
		" coalesce((SELECT v FROM jmeta WHERE k = 'horizon'), 0),"
		" coalesce((SELECT max(modseq) FROM jgone WHERE at < ?1), 0),"
		" coalesce((SELECT max(modseq) FROM jmember WHERE at < ?1), 0))",
		"DELETE FROM jgone WHERE at < ?1",
		"DELETE FROM jmember WHERE at < ?1",
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		sqlite3_stmt *st = sq_stmt(c, steps[i]);
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, cutoff);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
	}
	sqlite3_stmt *st = sq_stmt(c, "DELETE FROM jupload WHERE expires < ?"
				      " RETURNING name");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)a->now);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		a->unlink = xrealloc(a->unlink,
				     (a->unlink_count + 1) * sizeof(char *));
		a->unlink[a->unlink_count++] =
			xstrdup((const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_reset(st);
	(void)u;
	return rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
}

/* Upload files no row names: an upload cut off by a crash. */
static void sweep_uploads(struct sq_user *u, time_t now)
{
	char *dir = xasprintf("%s/uploads", u->dir);
	DIR *d = opendir(dir);
	struct dirent *e;
	struct sq_conn *c = d != NULL ? sq_reader_get(u, NULL) : NULL;
	while (c != NULL && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char *path = xasprintf("%s/%s", dir, e->d_name);
		struct stat stt;
		if (stat(path, &stt) == 0 && stt.st_mtime < now - 3600) {
			sqlite3_stmt *st = sq_stmt(c, "SELECT 1 FROM jupload"
						      " WHERE name = ?");
			if (st != NULL) {
				sqlite3_bind_text(st, 1, e->d_name, -1,
						  SQLITE_STATIC);
				if (sqlite3_step(st) == SQLITE_DONE)
					unlink(path);
				sqlite3_reset(st);
			}
		}
		free(path);
	}
	if (c != NULL)
		sq_reader_put(u, c);
	if (d != NULL)
		closedir(d);
	free(dir);
}

int sq_jmap_prune(struct store_user *user, time_t now,
		  struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct prune_arg a = {now, NULL, 0};
	int ret = sq_run(u, prune_job, &a, err);
	for (size_t i = 0; i < a.unlink_count; i++) {
		char *path = xasprintf("%s/uploads/%s", u->dir, a.unlink[i]);
		if (ret == 0 && unlink(path) < 0 && errno != ENOENT)
			log_warn("store", NULL, "unlink %s: %m", path);
		free(path);
		free(a.unlink[i]);
	}
	free(a.unlink);
	if (ret == 0)
		sweep_uploads(u, now);
	return ret;
}

/* ---- mailboxes ---------------------------------------------------- */

int sq_jmap_mailboxes(struct store_user *user,
		      struct store_jmap_mailbox **list_r, size_t *count_r,
		      struct store_error *err)
{
	/* the list and its counts in one snapshot */
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_snap_begin(u, err);
	if (c == NULL)
		return -1;
	struct store_mailbox_info *infos;
	size_t n;
	if (sq_mailbox_list_norecent_in(u, c, &infos, &n, err) < 0) {
		sq_snap_end(u, c);
		return -1;
	}
	struct store_jmap_mailbox *list = xcalloc(n ? n : 1, sizeof(*list));
	for (size_t i = 0; i < n; i++)
		list[i].info = infos[i];
	free(infos);
	int ret = 0;
	sqlite3_stmt *st = sq_stmt(c, "SELECT emails, unread, threads,"
				      " unread_threads, sort_order FROM"
				      " jmailbox WHERE id = ?");
	if (st == NULL)
		ret = sq_db_error(c, err, "jmap mailboxes");
	for (size_t i = 0; i < n && ret == 0; i++) {
		sqlite3_bind_int64(st, 1, list[i].info.id);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			/* the triggers never go below zero; be safe anyway */
			int64_t v[5];
			for (int k = 0; k < 5; k++) {
				v[k] = sqlite3_column_int64(st, k);
				if (v[k] < 0)
					v[k] = 0;
			}
			list[i].emails = (uint32_t)v[0];
			list[i].unread_emails = (uint32_t)v[1];
			list[i].threads = (uint32_t)v[2];
			list[i].unread_threads = (uint32_t)v[3];
			list[i].sort_order = (uint32_t)v[4];
		} else if (rc != SQLITE_DONE) {
			ret = sq_db_error(c, err, "jmap mailboxes");
		}
		sqlite3_reset(st);
	}
	sq_snap_end(u, c);
	if (ret < 0) {
		store_jmap_mailboxes_free(list, n);
		return -1;
	}
	*list_r = list;
	*count_r = n;
	return 0;
}

struct mbox_update_arg {
	uint32_t id;
	const uint32_t *sort_order;
	const unsigned *special_use;
};

static int mbox_update_job(struct sq_user *u, struct sq_conn *c,
			   struct sq_job *job)
{
	struct mbox_update_arg *a = job->arg;
	struct sq_mbox mb;
	int r = sq_mbox_get_id(c, a->id, &mb);
	if (r < 0)
		return sq_job_dberr(job, c);
	if (r == 0)
		return sq_job_fail(job, STORE_ERR_NOTFOUND,
				   "Mailbox doesn't exist");
	uint64_t modseq = sq_job_modseq(u, job);
	if (a->special_use != NULL && *a->special_use != mb.special_use) {
		if (*a->special_use != 0) {
			sqlite3_stmt *st = sq_stmt(c, "SELECT 1 FROM mailbox"
						      " WHERE special_use & ?"
						      " AND id != ?");
			if (st == NULL)
				return sq_job_dberr(job, c);
			sqlite3_bind_int(st, 1, (int)*a->special_use);
			sqlite3_bind_int64(st, 2, a->id);
			int rc = sqlite3_step(st);
			sqlite3_reset(st);
			if (rc == SQLITE_ROW)
				return sq_job_fail(job, STORE_ERR_EXISTS,
						   "Another mailbox has"
						   " this role");
		}
		sqlite3_stmt *st = sq_stmt(c, "UPDATE mailbox SET special_use"
					      " = ? WHERE id = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int(st, 1, (int)*a->special_use);
		sqlite3_bind_int64(st, 2, a->id);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
	}
	sqlite3_stmt *st = sq_stmt(c, "UPDATE jmailbox SET modseq = ?1,"
				      " meta = ?1, sort_order ="
				      " coalesce(?2, sort_order) WHERE id = ?3");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)modseq);
	if (a->sort_order != NULL)
		sqlite3_bind_int64(st, 2, *a->sort_order);
	sqlite3_bind_int64(st, 3, a->id);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_job_dberr(job, c);
	sq_job_change(job, 0, STORE_CHANGE_MAILBOXES);
	return 0;
}

int sq_jmap_mailbox_update(struct store_user *user, uint32_t mailbox_id,
			   const uint32_t *sort_order,
			   const unsigned *special_use, struct store_error *err)
{
	struct mbox_update_arg a = {mailbox_id, sort_order, special_use};
	return sq_run(SQU(user), mbox_update_job, &a, err);
}

/* ---- emails ------------------------------------------------------- */

static int email_mailboxes(struct sq_conn *c, struct store_email *e)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT DISTINCT mailbox FROM msg"
				      " WHERE blob = ? AND (flags & 8) = 0"
				      " ORDER BY mailbox");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, e->id);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		e->mailboxes = xrealloc(e->mailboxes, (e->mailbox_count + 1) *
							      sizeof(uint32_t));
		e->mailboxes[e->mailbox_count++] =
			(uint32_t)sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int sq_email_get(struct store_user *user, const int64_t *ids, size_t count,
		 struct store_email *emails, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_snap_begin(u, err);
	if (c == NULL)
		return -1;
	int ret = 0;
	for (size_t i = 0; i < count && ret == 0; i++) {
		sqlite3_stmt *st = sq_stmt(c, "SELECT e.modseq, e.flags,"
			" e.keywords, e.received, e.attach, b.thread, b.size,"
			" b.preview, b.sent_date FROM jemail e JOIN blob b"
			" ON b.id = e.id WHERE e.id = ? AND e.visible > 0");
		if (st == NULL) {
			ret = -1;
			break;
		}
		sqlite3_bind_int64(st, 1, ids[i]);
		int rc = sqlite3_step(st);
		struct store_email *e = &emails[i];
		if (rc == SQLITE_ROW) {
			e->id = ids[i];
			e->modseq.modseq = (uint64_t)sqlite3_column_int64(st, 0);
			e->flags = (unsigned)sqlite3_column_int(st, 1);
			store_email_keywords_split(
				e, (const char *)sqlite3_column_text(st, 2));
			e->received = (time_t)sqlite3_column_int64(st, 3);
			e->has_attachment = sqlite3_column_int(st, 4) != 0;
			e->thread = sqlite3_column_int64(st, 5);
			e->size = (uint64_t)sqlite3_column_int64(st, 6);
			const char *p = (const char *)sqlite3_column_text(st, 7);
			e->preview = xstrdup(p ? p : "");
			e->sent_date = (time_t)sqlite3_column_int64(st, 8);
		} else if (rc != SQLITE_DONE) {
			ret = -1;
		}
		sqlite3_reset(st);
		if (ret == 0 && e->id != 0 && email_mailboxes(c, e) < 0)
			ret = -1;
	}
	if (ret < 0)
		sq_db_error(c, err, "email get");
	sq_snap_end(u, c);
	return ret;
}

int sq_email_open(struct store_user *user, int64_t id,
		  struct store_blob *blob_r, struct store_error *err)
{
	/* one read transaction: the Email's blob row and its bytes */
	int ret = sq_blob_open_email(user, id, blob_r, err);
	if (ret < 0 && err != NULL && err->kind == STORE_ERR_NOTFOUND)
		store_set_error(err, STORE_ERR_NOTFOUND, "No such Email");
	return ret;
}

static const char scan_mailbox_sql[2][2] [600] = {
	{
		"SELECT m.blob, b.thread, m.internaldate, b.sent_date, m.size,"
		" e.flags, e.keywords, e.attach, NULL, NULL, NULL"
		" FROM msg m JOIN jemail e ON e.id = m.blob"
		" JOIN blob b ON b.id = m.blob WHERE m.mailbox = ?"
		" AND (m.flags & 8) = 0 ORDER BY m.internaldate, m.uid",
		"SELECT m.blob, b.thread, m.internaldate, b.sent_date, m.size,"
		" e.flags, e.keywords, e.attach, NULL, NULL, NULL"
		" FROM msg m JOIN jemail e ON e.id = m.blob"
		" JOIN blob b ON b.id = m.blob WHERE m.mailbox = ?"
		" AND (m.flags & 8) = 0 ORDER BY m.internaldate DESC,"
		" m.uid DESC",
	},
	{
		"SELECT m.blob, b.thread, m.internaldate, b.sent_date, m.size,"
		" e.flags, e.keywords, e.attach, b.sort_subject,"
		" b.sort_display_from, b.sort_display_to"
		" FROM msg m JOIN jemail e ON e.id = m.blob"
		" JOIN blob b ON b.id = m.blob WHERE m.mailbox = ?"
		" AND (m.flags & 8) = 0 ORDER BY m.internaldate, m.uid",
		"SELECT m.blob, b.thread, m.internaldate, b.sent_date, m.size,"
		" e.flags, e.keywords, e.attach, b.sort_subject,"
		" b.sort_display_from, b.sort_display_to"
		" FROM msg m JOIN jemail e ON e.id = m.blob"
		" JOIN blob b ON b.id = m.blob WHERE m.mailbox = ?"
		" AND (m.flags & 8) = 0 ORDER BY m.internaldate DESC,"
		" m.uid DESC",
	},
};
static const char scan_all_sql[2][2][600] = {
	{
		"SELECT e.id, b.thread, e.received, b.sent_date, b.size,"
		" e.flags, e.keywords, e.attach, NULL, NULL, NULL"
		" FROM jemail e JOIN blob b ON b.id = e.id WHERE e.visible > 0"
		" AND ?1 = 0 ORDER BY e.received, e.id",
		"SELECT e.id, b.thread, e.received, b.sent_date, b.size,"
		" e.flags, e.keywords, e.attach, NULL, NULL, NULL"
		" FROM jemail e JOIN blob b ON b.id = e.id WHERE e.visible > 0"
		" AND ?1 = 0 ORDER BY e.received DESC, e.id DESC",
	},
	{
		"SELECT e.id, b.thread, e.received, b.sent_date, b.size,"
		" e.flags, e.keywords, e.attach, b.sort_subject,"
		" b.sort_display_from, b.sort_display_to"
		" FROM jemail e JOIN blob b ON b.id = e.id WHERE e.visible > 0"
		" AND ?1 = 0 ORDER BY e.received, e.id",
		"SELECT e.id, b.thread, e.received, b.sent_date, b.size,"
		" e.flags, e.keywords, e.attach, b.sort_subject,"
		" b.sort_display_from, b.sort_display_to"
		" FROM jemail e JOIN blob b ON b.id = e.id WHERE e.visible > 0"
		" AND ?1 = 0 ORDER BY e.received DESC, e.id DESC",
	},
};

int sq_email_scan(struct store_user *user, uint32_t mailbox_id,
		  bool newest_first, unsigned fields, store_email_row_fn *cb,
		  void *ctx, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_snap_begin(u, err);
	if (c == NULL)
		return -1;
	int sort = (fields & STORE_EMAIL_ROW_SORT) != 0, desc = newest_first;
	sqlite3_stmt *st = sq_stmt(c, mailbox_id != 0
					      ? scan_mailbox_sql[sort][desc]
					      : scan_all_sql[sort][desc]);
	int ret = 0, rc = SQLITE_ERROR;
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, mailbox_id);
		struct store_email_row row;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			row.id = sqlite3_column_int64(st, 0);
			row.thread = sqlite3_column_int64(st, 1);
			row.received = (time_t)sqlite3_column_int64(st, 2);
			row.sent = (time_t)sqlite3_column_int64(st, 3);
			if (row.sent == 0)
				row.sent = row.received;
			row.size = (uint64_t)sqlite3_column_int64(st, 4);
			row.flags = (unsigned)sqlite3_column_int(st, 5);
			row.keywords = (const char *)sqlite3_column_text(st, 6);
			row.has_attachment = sqlite3_column_int(st, 7) != 0;
			row.subject = (const char *)sqlite3_column_text(st, 8);
			row.from = (const char *)sqlite3_column_text(st, 9);
			row.to = (const char *)sqlite3_column_text(st, 10);
			if (cb(ctx, &row) != 0) {
				rc = SQLITE_DONE;
				break;
			}
		}
		sqlite3_reset(st);
	}
	if (rc != SQLITE_DONE)
		ret = sq_db_error(c, err, "email scan");
	sq_snap_end(u, c);
	return ret;
}

int sq_email_rank(struct store_user *user, uint32_t mailbox_id, int64_t id,
		  uint64_t *rank_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_snap_begin(u, err);
	if (c == NULL)
		return -1;
	int ret = 0;
	sqlite3_stmt *st = sq_stmt(c, "SELECT internaldate, uid FROM msg"
				      " WHERE blob = ? AND mailbox = ?"
				      " AND (flags & 8) = 0"
				      " ORDER BY internaldate DESC, uid DESC"
				      " LIMIT 1");
	int64_t date = 0, uid = 0;
	int rc = SQLITE_ERROR;
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, mailbox_id);
		rc = sqlite3_step(st);
		date = sqlite3_column_int64(st, 0);
		uid = sqlite3_column_int64(st, 1);
		sqlite3_reset(st);
	}
	if (rc == SQLITE_DONE) {
		ret = store_set_error(err, STORE_ERR_NOTFOUND,
				      "Not in that mailbox");
	} else if (rc != SQLITE_ROW) {
		ret = sq_db_error(c, err, "email rank");
	} else {
		st = sq_stmt(c, "SELECT count(*) FROM msg WHERE mailbox = ?"
				" AND (internaldate, uid) > (?, ?)"
				" AND (flags & 8) = 0");
		if (st == NULL) {
			ret = sq_db_error(c, err, "email rank");
		} else {
			sqlite3_bind_int64(st, 1, mailbox_id);
			sqlite3_bind_int64(st, 2, date);
			sqlite3_bind_int64(st, 3, uid);
			if (sqlite3_step(st) == SQLITE_ROW)
				*rank_r = (uint64_t)sqlite3_column_int64(st, 0);
			else
				ret = sq_db_error(c, err, "email rank");
			sqlite3_reset(st);
		}
	}
	sq_snap_end(u, c);
	return ret;
}

static int collect_ids(sqlite3_stmt *st, int64_t **ids_r, size_t *count_r)
{
	int64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			ids = xrealloc(ids, cap * sizeof(int64_t));
		}
		ids[n++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(ids);
		return -1;
	}
	*ids_r = ids;
	*count_r = n;
	return 0;
}

int sq_email_moved_since(struct store_user *user, uint32_t mailbox_id,
			 const struct store_jmap_cursor *since, int64_t **ids_r,
			 size_t *count_r, bool *too_old_r,
			 struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_snap_begin(u, err);
	if (c == NULL)
		return -1;
	bool ok = true;
	uint64_t horizon = horizon_get(c, &ok);
	int ret = 0;
	if (!ok) {
		ret = sq_db_error(c, err, "email moved");
	} else if (since->modseq < horizon) {
		*too_old_r = true;
	} else {
		/* a cursor inside a modseq: that modseq may hold more */
		sqlite3_stmt *st = sq_stmt(c, "SELECT DISTINCT blob FROM jmember"
					      " WHERE mailbox = ? AND modseq > ?"
					      " ORDER BY blob");
		if (st == NULL) {
			ret = sq_db_error(c, err, "email moved");
		} else {
			sqlite3_bind_int64(st, 1, mailbox_id);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)since->modseq -
							  (since->id != 0));
			if (collect_ids(st, ids_r, count_r) < 0)
				ret = sq_db_error(c, err, "email moved");
		}
	}
	sq_snap_end(u, c);
	return ret;
}

int sq_thread_emails(struct store_user *user, int64_t thread, int64_t **ids_r,
		     size_t *count_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_snap_begin(u, err);
	if (c == NULL)
		return -1;
	int ret = 0;
	sqlite3_stmt *st = sq_stmt(c, "SELECT e.id FROM blob b JOIN jemail e"
				      " ON e.id = b.id WHERE b.thread = ?"
				      " AND e.visible > 0"
				      " ORDER BY e.received, e.id");
	if (st == NULL) {
		ret = sq_db_error(c, err, "thread");
	} else {
		sqlite3_bind_int64(st, 1, thread);
		if (collect_ids(st, ids_r, count_r) < 0)
			ret = sq_db_error(c, err, "thread");
	}
	sq_snap_end(u, c);
	return ret;
}

/* ---- text search over the account --------------------------------- */

struct idset {
	int64_t *v;
	size_t n, cap;
};

static void idset_add(struct idset *s, int64_t id)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = xrealloc(s->v, s->cap * sizeof(int64_t));
	}
	s->v[s->n++] = id;
}

static int search_verify(sqlite3_stmt *st, bool hdr, const char *field,
			 const char *needle, size_t nlen, struct idset *hits)
{
	int rc;
	struct buf tmp;
	buf_init(&tmp, 0);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		/* the text is kept compressed (sq-text.c) */
		size_t tlen;
		const char *t = sq_text_column(st, 1, &tmp, &tlen);
		/* an empty needle asks whether the field is there at all */
		bool hit = hdr && field != NULL
				   ? t != NULL && store_header_has(t, tlen, field,
							     needle, nlen)
				   : nlen == 0 || (t != NULL &&
						   memmem(t, tlen, needle, nlen));
		if (hit)
			idset_add(hits, sqlite3_column_int64(st, 0));
	}
	buf_free(&tmp);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static const char *const email_match_sql[2] = {
	"SELECT t.id, t.hdr FROM text_hdr CROSS JOIN text t"
	" ON t.id = text_hdr.rowid CROSS JOIN jemail e ON e.id = t.id"
	" WHERE text_hdr MATCH ? AND e.visible > 0",
	"SELECT t.id, t.body FROM text_body CROSS JOIN text t"
	" ON t.id = text_body.rowid CROSS JOIN jemail e ON e.id = t.id"
	" WHERE text_body MATCH ? AND e.visible > 0",
};
static const char *const email_scan_sql[2] = {
	"SELECT t.id, t.hdr FROM text t JOIN jemail e ON e.id = t.id"
	" WHERE t.id > ? AND e.visible > 0",
	"SELECT t.id, t.body FROM text t JOIN jemail e ON e.id = t.id"
	" WHERE t.id > ? AND e.visible > 0",
};

static int search_one(struct sq_conn *c, int table, int64_t upto,
		      const char *query, const char *field,
		      const struct buf *needle, struct idset *hits)
{
	sqlite3_stmt *st;
	if (query != NULL) {
		st = sq_stmt(c, email_match_sql[table]);
		if (st == NULL)
			return -1;
		sqlite3_bind_text(st, 1, query, -1, SQLITE_STATIC);
		if (search_verify(st, table == 0, field, needle->data,
				  needle->len, hits) < 0)
			return -1;
	} else {
		upto = 0;
	}
	st = sq_stmt(c, email_scan_sql[table]);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, upto);
	return search_verify(st, table == 0, field, needle->data, needle->len,
			     hits);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

int sq_email_search(struct store_user *user, enum store_text_where where,
		    const char *field, const char *needle, int64_t **ids_r,
		    size_t *count_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct buf folded, ffield;
	char *query = sq_needle_prepare(needle, &folded);
	buf_init(&ffield, 0);
	if (field != NULL) {
		store_text_fold(&ffield, field, strlen(field));
		buf_append(&ffield, "", 0);
	}
	struct idset hits = {0};
	int ret = -1;
	struct sq_conn *c = sq_snap_begin(u, err);
	if (c != NULL) {
		bool ok = true;
		int64_t upto = one_int(c, "SELECT fts_upto FROM account", -1,
				       &ok);
		const char *f = field != NULL ? ffield.data : NULL;
		if (ok && field != NULL)
			ok = search_one(c, 0, upto, query, f, &folded,
					&hits) == 0;
		else if (ok)
			ok = search_one(c, 1, upto, query, NULL, &folded,
					&hits) == 0 &&
			     (where != STORE_TEXT_ALL ||
			      search_one(c, 0, upto, query, NULL, &folded,
					 &hits) == 0);
		ret = ok ? 0 : sq_db_error(c, err, "email search");
		sq_snap_end(u, c);
	}
	free(query);
	buf_free(&folded);
	buf_free(&ffield);
	if (ret < 0) {
		free(hits.v);
		return -1;
	}
	if (hits.n > 1)
		qsort(hits.v, hits.n, sizeof(int64_t), cmp_i64);
	size_t w = 0;
	for (size_t i = 0; i < hits.n; i++) {
		if (w == 0 || hits.v[w - 1] != hits.v[i])
			hits.v[w++] = hits.v[i];
	}
	*ids_r = hits.v;
	*count_r = w;
	return 0;
}

/* ---- stored objects ----------------------------------------------- */

int sq_jobject_list(struct store_user *user, enum store_jmap_kind kind,
		    struct store_jobject **list_r, size_t *count_r,
		    struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_snap_begin(u, err);
	if (c == NULL)
		return -1;
	struct store_jobject *list = NULL;
	size_t n = 0;
	int rc = SQLITE_ERROR;
	sqlite3_stmt *st = sq_stmt(c, "SELECT id, modseq, data FROM jobject"
				      " WHERE kind = ? ORDER BY id");
	if (st != NULL) {
		sqlite3_bind_int(st, 1, kind);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			list = xrealloc(list, (n + 1) * sizeof(*list));
			list[n].id = sqlite3_column_int64(st, 0);
			list[n].modseq.modseq =
				(uint64_t)sqlite3_column_int64(st, 1);
			list[n].modseq.id = 0;
			list[n].data = xstrdup(
				(const char *)sqlite3_column_text(st, 2));
			n++;
		}
		sqlite3_reset(st);
	}
	int ret = rc == SQLITE_DONE ? 0 : sq_db_error(c, err, "jobject");
	sq_snap_end(u, c);
	if (ret < 0) {
		store_jobject_list_free(list, n);
		return -1;
	}
	*list_r = list;
	*count_r = n;
	return 0;
}

struct jobject_arg {
	enum store_jmap_kind kind;
	int64_t id;
	const char *data;   /* NULL: delete */
};

static int jobject_job(struct sq_user *u, struct sq_conn *c,
		       struct sq_job *job)
{
	struct jobject_arg *a = job->arg;
	uint64_t modseq = sq_job_modseq(u, job);
	sqlite3_stmt *st;
	int rc;
	if (a->data == NULL) {
		st = sq_stmt(c, "INSERT OR REPLACE INTO jgone SELECT kind, id,"
				" NULL, created, ?, unixepoch() FROM jobject"
				" WHERE kind = ? AND id = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, (sqlite3_int64)modseq);
		sqlite3_bind_int(st, 2, a->kind);
		sqlite3_bind_int64(st, 3, a->id);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
		if (sqlite3_changes(c->db) == 0)
			return sq_job_fail(job, STORE_ERR_NOTFOUND,
					   "No such object");
		st = sq_stmt(c, "DELETE FROM jobject WHERE kind = ? AND id = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int(st, 1, a->kind);
		sqlite3_bind_int64(st, 2, a->id);
	} else if (a->id == 0) {
		st = sq_stmt(c, "INSERT INTO jobject SELECT ?1, max(coalesce("
				"(SELECT max(id) FROM jobject WHERE kind = ?1), 0),"
				" coalesce((SELECT max(id) FROM jgone WHERE"
				" kind = ?1), 0)) + 1, ?2, ?2, ?3 RETURNING id");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int(st, 1, a->kind);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)modseq);
		sqlite3_bind_text(st, 3, a->data, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			a->id = sqlite3_column_int64(st, 0);
			rc = sqlite3_step(st);
		}
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
		sq_job_change(job, 0, STORE_CHANGE_OBJECTS);
		return 0;
	} else {
		st = sq_stmt(c, "INSERT INTO jobject VALUES (?1, ?2, ?3, ?3, ?4)"
				" ON CONFLICT(kind, id) DO UPDATE SET"
				" modseq = ?3, data = ?4");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int(st, 1, a->kind);
		sqlite3_bind_int64(st, 2, a->id);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)modseq);
		sqlite3_bind_text(st, 4, a->data, -1, SQLITE_STATIC);
	}
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_job_dberr(job, c);
	sq_job_change(job, 0, STORE_CHANGE_OBJECTS);
	return 0;
}

int sq_jobject_put(struct store_user *user, enum store_jmap_kind kind,
		   int64_t id, const char *data, int64_t *id_r,
		   struct store_error *err)
{
	struct jobject_arg a = {kind, id, data};
	int ret = sq_run(SQU(user), jobject_job, &a, err);
	if (ret == 0 && id_r != NULL)
		*id_r = a.id;
	return ret;
}

int sq_jobject_delete(struct store_user *user, enum store_jmap_kind kind,
		      int64_t id, struct store_error *err)
{
	struct jobject_arg a = {kind, id, NULL};
	return sq_run(SQU(user), jobject_job, &a, err);
}

int sq_jmap_account_created(struct sq_conn *c)
{
	return sq_exec(c, "UPDATE jmailbox SET modseq = created, meta = created");
}
