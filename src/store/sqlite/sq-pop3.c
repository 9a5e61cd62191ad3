/*
 * POP3 marks (first RETR time, hidden-from-POP3) and server-side
 * retention (DESIGN.md "POP3 policies"): Trash and Junk by the date a
 * message came into them (savedate), POP3-downloaded INBOX mail by its
 * first RETR, removed as pop3_delete says. Also prunes the expunge log
 * past its keeping time.
 */
#include "sq-private.h"

#include <stdlib.h>
#include <string.h>

struct pop3_arg {
	const uint32_t *uids;
	size_t count;
	size_t hidden;       /* rows that were in INBOX and not hidden yet */
};

/* The hidden mark is read only by POP3: it takes no modseq, so IMAP
 * clients see no change (pop3_delete = hide leaves IMAP untouched). */
static int pop3_hide_job(struct sq_user *u, struct sq_conn *c,
			 struct sq_job *job)
{
	(void)u;
	struct pop3_arg *a = job->arg;
	struct sq_mbox inbox;
	a->hidden = 0;
	if (sq_job_mbox(job, c, "INBOX", &inbox) < 0)
		return -1;
	for (size_t i = 0; i < a->count; i++) {
		sqlite3_stmt *st = sq_stmt(c, "UPDATE msg SET pop3_hidden = 1"
					      " WHERE mailbox = ? AND uid = ?"
					      " AND pop3_hidden = 0");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, inbox.id);
		sqlite3_bind_int64(st, 2, a->uids[i]);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
		a->hidden += (size_t)sqlite3_changes(c->db);
	}
	return 0;
}

/* A RETR would otherwise cost a commit (an fsync) per message: the mark
 * rides along with the next commit of the account, or is written when
 * the account is closed. */
int sq_pop3_retrieved(struct store_user *user, uint32_t uid, time_t now,
		      struct store_error *err)
{
	(void)err;
	struct sq_user *u = SQU(user);
	pthread_mutex_lock(&u->recent_mu);
	u->pop3_marks = xrealloc(u->pop3_marks, (u->pop3_mark_count + 1) *
							sizeof(*u->pop3_marks));
	u->pop3_marks[u->pop3_mark_count].uid = uid;
	u->pop3_marks[u->pop3_mark_count++].when = now;
	pthread_mutex_unlock(&u->recent_mu);
	return 0;
}

int sq_pop3_marks_flush(struct sq_user *u, struct sq_conn *c)
{
	pthread_mutex_lock(&u->recent_mu);
	struct sq_pop3_mark *marks = u->pop3_marks;
	size_t n = u->pop3_mark_count;
	u->pop3_marks = NULL;
	u->pop3_mark_count = 0;
	pthread_mutex_unlock(&u->recent_mu);
	if (n == 0)
		return 0;
	struct sq_mbox inbox;
	int ret = sq_mbox_get(c, "INBOX", &inbox) < 0 ? -1 : 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		sqlite3_stmt *st = sq_stmt(c, "UPDATE msg SET pop3_first_retr = ?"
					      " WHERE mailbox = ? AND uid = ?"
					      " AND pop3_first_retr = 0");
		if (st == NULL) {
			ret = -1;
			break;
		}
		sqlite3_bind_int64(st, 1, marks[i].when);
		sqlite3_bind_int64(st, 2, inbox.id);
		sqlite3_bind_int64(st, 3, marks[i].uid);
		if (sqlite3_step(st) != SQLITE_DONE)
			ret = -1;
		sqlite3_reset(st);
	}
	free(marks);
	return ret;
}

int sq_pop3_hide(struct store_user *user, const uint32_t *uids, size_t count,
		 size_t *hidden_r, struct store_error *err)
{
	struct pop3_arg a = {uids, count, 0};
	int ret = sq_run(SQU(user), pop3_hide_job, &a, err);
	if (ret == 0 && hidden_r != NULL)
		*hidden_r = a.hidden;
	return ret;
}

/* ---- retention ---------------------------------------------------- */

struct retention_arg {
	const struct store_retention_policy *policy;
	time_t now;
	struct store_retention_report report;
};

static int find_special(struct sq_conn *c, unsigned special_use,
			struct sq_mbox *mb_r)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT name FROM mailbox WHERE"
				      " special_use & ? AND noselect = 0"
				      " ORDER BY id LIMIT 1");
	if (st == NULL)
		return -1;
	sqlite3_bind_int(st, 1, (int)special_use);
	char *name = NULL;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		name = xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? 0 : -1;
	int r = sq_mbox_get(c, name, mb_r);
	free(name);
	return r;
}

/* Expunges the messages of a special mailbox saved before cutoff. */
static int expire_special(struct sq_user *u, struct sq_conn *c,
			  struct sq_job *job, unsigned special_use,
			  uint32_t days, time_t now, uint32_t *count_r)
{
	struct sq_mbox mb;
	if (days == 0)
		return 0;
	int r = find_special(c, special_use, &mb);
	if (r <= 0)
		return r < 0 ? sq_job_dberr(job, c) : 0;
	struct sq_msgrow *rows;
	size_t n, w = 0;
	if (sq_rows_get(c, mb.id, NULL, 0, &rows, &n) < 0)
		return sq_job_dberr(job, c);
	time_t cutoff = now - (time_t)days * 86400;
	for (size_t i = 0; i < n; i++) {
		if (rows[i].savedate < cutoff) {
			struct sq_msgrow t = rows[w];
			rows[w++] = rows[i];
			rows[i] = t;
		}
	}
	int ret = sq_deleted_keep(u, c, job, mb.id, rows, w);
	if (ret == 0)
		ret = sq_expunge_rows(u, c, job, mb.id, rows, w, true);
	sq_rows_free(rows, n);
	*count_r += (uint32_t)w;
	return ret;
}

static int expire_pop3(struct sq_user *u, struct sq_conn *c,
		       struct sq_job *job, struct retention_arg *a)
{
	const struct store_retention_policy *p = a->policy;
	if (p->pop3_retention_days == 0)
		return 0;
	struct sq_mbox inbox, trash;
	if (sq_job_mbox(job, c, "INBOX", &inbox) < 0)
		return -1;
	struct sq_msgrow *rows;
	size_t n, w = 0;
	if (sq_rows_get(c, inbox.id, NULL, 0, &rows, &n) < 0)
		return sq_job_dberr(job, c);
	time_t cutoff = a->now - (time_t)p->pop3_retention_days * 86400;
	for (size_t i = 0; i < n; i++) {
		if (rows[i].pop3_first_retr != 0 &&
		    rows[i].pop3_first_retr < cutoff && !rows[i].pop3_hidden) {
			struct sq_msgrow t = rows[w];
			rows[w++] = rows[i];
			rows[i] = t;
		}
	}
	int ret = 0;
	int mode = p->pop3_delete;
	if (w > 0 && mode == STORE_POP3_AUTO &&
	    sq_pop3_auto_mode(c, a->now, &mode) < 0)
		ret = sq_job_dberr(job, c);
	if (ret < 0) {
		/* the error is set */
	} else if (w > 0 && mode == STORE_POP3_HIDE) {
		for (size_t i = 0; i < w && ret == 0; i++) {
			sqlite3_stmt *st = sq_stmt(c, "UPDATE msg SET pop3_hidden = 1"
						      " WHERE mailbox = ? AND uid = ?");
			if (st == NULL) {
				ret = sq_job_dberr(job, c);
				break;
			}
			sqlite3_bind_int64(st, 1, inbox.id);
			sqlite3_bind_int64(st, 2, rows[i].uid);
			if (sqlite3_step(st) != SQLITE_DONE)
				ret = sq_job_dberr(job, c);
			sqlite3_reset(st);
		}
	} else if (w > 0) {
		int r = mode == STORE_POP3_TRASH
				? find_special(c, STORE_SPECIAL_TRASH, &trash)
				: 0;
		if (r < 0)
			ret = sq_job_dberr(job, c);
		if (ret == 0 && r > 0 && trash.id != inbox.id) {
			uint32_t *dst = xcalloc(w, sizeof(uint32_t));
			ret = sq_copy_rows(u, c, job, trash.id, rows, w, a->now,
					   dst);
			free(dst);
		} else if (ret == 0) {
			/* removed, not moved to Trash: kept for undelete */
			ret = sq_deleted_keep(u, c, job, inbox.id, rows, w);
		}
		if (ret == 0)
			ret = sq_expunge_rows(u, c, job, inbox.id, rows, w, true);
	}
	if (ret == 0)
		a->report.pop3_removed += (uint32_t)w;
	sq_rows_free(rows, n);
	return ret;
}

/* Drops expunge log entries past their keeping time; the mailbox's
 * horizon records that older resyncs can no longer be incremental. */
static int prune_expunge_log(struct sq_conn *c, struct sq_job *job, time_t now)
{
	time_t cutoff = now - (time_t)SQ_EXPUNGE_LOG_DAYS * 86400;
	sqlite3_stmt *st = sq_stmt(c, "UPDATE mailbox SET expunge_horizon ="
				      " max(expunge_horizon, (SELECT max(modseq)"
				      " FROM expunged e WHERE e.mailbox = mailbox.id"
				      " AND e.at < ?)) WHERE EXISTS (SELECT 1 FROM"
				      " expunged e WHERE e.mailbox = mailbox.id"
				      " AND e.at < ?)");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, cutoff);
	sqlite3_bind_int64(st, 2, cutoff);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_job_dberr(job, c);
	st = sq_stmt(c, "DELETE FROM expunged WHERE at < ?");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, cutoff);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
}

static int retention_job(struct sq_user *u, struct sq_conn *c,
			 struct sq_job *job)
{
	struct retention_arg *a = job->arg;
	const struct store_retention_policy *p = a->policy;
	memset(&a->report, 0, sizeof(a->report));
	if (expire_pop3(u, c, job, a) < 0 ||
	    expire_special(u, c, job, STORE_SPECIAL_TRASH,
			   p->trash_retention_days, a->now,
			   &a->report.trash_expunged) < 0 ||
	    expire_special(u, c, job, STORE_SPECIAL_JUNK,
			   p->junk_retention_days, a->now,
			   &a->report.junk_expunged) < 0)
		return -1;
	/* kept for undelete past the period (0: none kept) */
	time_t before = a->now - (time_t)p->deleted_retention_days * 86400;
	if (p->deleted_retention_days == 0)
		before = a->now + 1;
	if (sq_deleted_purge(u, c, job, before, &a->report.deleted_purged) < 0)
		return -1;
	return prune_expunge_log(c, job, time(NULL));
}

int sq_retention_run(struct store_user *user,
		     const struct store_retention_policy *policy, time_t now,
		     struct store_retention_report *report_r,
		     struct store_error *err)
{
	struct retention_arg a;
	memset(&a, 0, sizeof(a));
	a.policy = policy;
	a.now = now;
	sq_deleted_policy(user);
	int ret = sq_run(SQU(user), retention_job, &a, err);
	if (ret == 0)
		*report_r = a.report;
	return ret;
}
