/*
 * Moving mail in and out, embedded backend (store.h "moving mail in and
 * out"): mailboxes made as a source had them, messages appended with a
 * given UID, EMAILID, THREADID and modseq through the delivery path
 * (sq_append_tx: quota, search text, threads, counters), resume marks
 * committed in the message's own job, and the export stream: one read
 * transaction held from begin to end, with a read ticket (sq_read_enter)
 * so that no body file its snapshot names is unlinked before it ends.
 */
#include "sq-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* ---- mailboxes ---------------------------------------------------- */

struct imbox_arg {
	const struct store_import_mailbox *spec;
};

/* Whether a selectable mailbox other than id has one of the roles. */
static int role_taken(struct sq_conn *c, unsigned role, uint32_t id)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT count(*) FROM mailbox WHERE"
				      " noselect = 0 AND (special_use & ?) != 0"
				      " AND id != ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int(st, 1, (int)role);
	sqlite3_bind_int64(st, 2, id);
	int rc = sqlite3_step(st);
	int n = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_reset(st);
	return n < 0 ? -1 : n > 0;
}

static int objectid_taken(struct sq_conn *c, const char *oid, uint32_t id)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT count(*) FROM mailbox WHERE"
				      " objectid = ? AND id != ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, oid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, id);
	int rc = sqlite3_step(st);
	int n = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_reset(st);
	return n < 0 ? -1 : n > 0;
}

static int imbox_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct imbox_arg *a = job->arg;
	const struct store_import_mailbox *spec = a->spec;
	struct sq_mbox mb;
	int r = sq_mbox_get(c, spec->name, &mb);
	if (r < 0)
		return sq_job_dberr(job, c);
	bool fresh;
	if (r == 0) {
		if (sq_mbox_create_parents(u, c, job, spec->name) < 0 ||
		    sq_mbox_create_tx(u, c, job, spec->name, 0, &mb.id) < 0)
			return -1;
		if (sq_mbox_get_id(c, mb.id, &mb) <= 0)
			return sq_job_dberr(job, c);
		fresh = true;
	} else if (mb.noselect) {
		/* a \Noselect parent becomes a mailbox, new as any */
		sqlite3_stmt *st = sq_stmt(c, "UPDATE mailbox SET noselect = 0,"
					      " special_use = 0 WHERE id = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, mb.id);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
		fresh = mb.uidnext == 1;
	} else {
		/* never held a message: no client can have cached it */
		fresh = mb.uidnext == 1;
	}
	uint64_t modseq = sq_job_modseq(u, job);
	uint32_t uv = mb.uidvalidity;
	if (fresh && spec->uidvalidity != 0)
		uv = spec->uidvalidity;
	const char *oid = NULL;
	if (fresh && spec->objectid != NULL && spec->objectid[0] != '\0') {
		int t = objectid_taken(c, spec->objectid, mb.id);
		if (t < 0)
			return sq_job_dberr(job, c);
		if (!t)
			oid = spec->objectid;
	}
	unsigned role = mb.special_use;
	if (fresh && spec->special_use != 0) {
		int t = role_taken(c, spec->special_use, mb.id);
		if (t < 0)
			return sq_job_dberr(job, c);
		if (!t)
			role = spec->special_use;
	}
	/* UIDs below the source's UIDNEXT stay unused, as at the source */
	uint32_t uidnext = mb.uidnext;
	if (uv == spec->uidvalidity && spec->uidnext > uidnext)
		uidnext = spec->uidnext;
	sqlite3_stmt *st = sq_stmt(c, "UPDATE mailbox SET uidvalidity = ?,"
				      " objectid = coalesce(?, objectid),"
				      " special_use = ?, uidnext = ?,"
				      " highestmodseq = ? WHERE id = ?");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, uv);
	if (oid != NULL)
		sqlite3_bind_text(st, 2, oid, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)role);
	sqlite3_bind_int64(st, 4, uidnext);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)modseq);
	sqlite3_bind_int64(st, 6, mb.id);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_job_dberr(job, c);
	if (uv > u->tx_last_uidvalidity) {
		u->tx_last_uidvalidity = uv;
		u->tx_dirty = true;
	}
	if (spec->subscribe) {
		st = sq_stmt(c, "INSERT OR IGNORE INTO subscription VALUES (?)");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_text(st, 1, spec->name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
	}
	sq_job_change(job, 0, STORE_CHANGE_MAILBOXES);
	return 0;
}

int sq_import_mailbox(struct store_user *user,
		      const struct store_import_mailbox *spec,
		      struct store_mailbox_info *info_r,
		      struct store_error *err)
{
	struct imbox_arg a = {spec};
	if (sq_run(SQU(user), imbox_job, &a, err) < 0)
		return -1;
	if (info_r == NULL)
		return 0;
	return sq_mailbox_status(user, spec->name, 0, info_r, err);
}

/* ---- messages ----------------------------------------------------- */

struct iappend_arg {
	const char *mailbox;
	const struct store_import_params *p;
	struct store_account_limits limits;
	struct sq_body_copy *cp;      /* NULL: a copy of p->email */
	uint32_t uid;
	bool *quota_stop;             /* the batch's: an item was over quota */
};

static int mark_check(struct sq_conn *c, const struct store_import_params *p,
		      bool insert)
{
	sqlite3_stmt *st = insert
		? sq_stmt(c, "INSERT INTO import_mark (source, id) VALUES (?, ?)")
		: sq_stmt(c, "SELECT 1 FROM import_mark WHERE source = ?"
			     " AND id = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, p->mark_source, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, p->mark_id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (insert)
		return rc == SQLITE_DONE ? 0 : -1;
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The blob row of Email n: 1 with its size, 0 none, -1 error. */
static int email_row(struct sq_conn *c, int64_t n, uint64_t *size_r)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT size FROM blob WHERE id = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, n);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*size_r = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int set_uidl(struct sq_conn *c, uint32_t mailbox, uint32_t uid,
		    const char *uidl)
{
	sqlite3_stmt *st = sq_stmt(c, "UPDATE msg SET uidl = ? WHERE"
				      " mailbox = ? AND uid = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, uidl, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, mailbox);
	sqlite3_bind_int64(st, 3, uid);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* POP3's marks as the source had them (store_import_params) */
static int set_pop3(struct sq_conn *c, uint32_t mailbox, uint32_t uid,
		    const struct store_import_params *p)
{
	sqlite3_stmt *st = sq_stmt(c, "UPDATE msg SET pop3_hidden = ?,"
				      " pop3_first_retr = ? WHERE"
				      " mailbox = ? AND uid = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int(st, 1, p->pop3_hidden ? 1 : 0);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)p->pop3_first_retr);
	sqlite3_bind_int64(st, 3, mailbox);
	sqlite3_bind_int64(st, 4, uid);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static char *keywords_join(const struct store_append_params *ap)
{
	struct buf b;
	buf_init(&b, 0);
	for (size_t i = 0; i < ap->keyword_count; i++) {
		if (b.len > 0)
			buf_append_char(&b, ' ');
		buf_append_str(&b, ap->keywords[i]);
	}
	return b.len > 0 ? buf_steal(&b, NULL) : (buf_free(&b), NULL);
}

/* A second copy of an Email the account has (an export lists each copy
 * with the same EMAILID): a message row naming the same blob. */
static int copy_of_email(struct sq_user *u, struct sq_conn *c,
			 struct sq_job *job, struct iappend_arg *a,
			 uint32_t mailbox_id, uint64_t size)
{
	const struct store_import_params *p = a->p;
	if (sq_over_quota(u, &a->limits, size, 1))
		return sq_job_fail(job, STORE_ERR_QUOTA, "Quota exceeded");
	struct sq_msgrow row;
	memset(&row, 0, sizeof(row));
	row.blob = p->email;
	row.flags = p->append.flags & 0x1f;
	row.keywords = keywords_join(&p->append);
	row.internaldate = p->append.internaldate != 0 ? p->append.internaldate
						       : time(NULL);
	row.size = size;
	uint32_t uid = 0;
	int ret = sq_copy_rows(u, c, job, mailbox_id, &row, 1,
			       p->savedate != 0 ? p->savedate : time(NULL),
			       &uid);
	free(row.keywords);
	a->uid = uid;
	return ret;
}

static int iappend_one(struct sq_user *u, struct sq_conn *c,
		       struct sq_job *job, struct iappend_arg *a)
{
	const struct store_import_params *p = a->p;
	if (p->mark_source != NULL) {
		int r = mark_check(c, p, false);
		if (r < 0)
			return sq_job_dberr(job, c);
		if (r > 0)
			return sq_job_fail(job, STORE_ERR_EXISTS,
					   "Already imported");
	}
	struct sq_mbox mb;
	if (sq_job_mbox(job, c, a->mailbox, &mb) < 0)
		return -1;
	if (p->uid != 0 && p->uid < mb.uidnext)
		return sq_job_fail(job, STORE_ERR_EXISTS, "UID %u is taken"
				   " (UIDNEXT is %u)", p->uid, mb.uidnext);
	if (p->uid == UINT32_MAX)
		return sq_job_fail(job, STORE_ERR_LIMIT, "Mailbox is out of UIDs");
	/* the message takes modseq when that is above the counter */
	if (p->modseq > 0 && job->modseq == 0 && p->modseq - 1 > u->tx_modseq) {
		u->tx_modseq = p->modseq - 1;
		u->tx_dirty = true;
	}
	/* the given UID becomes UIDNEXT, which the append takes */
	if (p->uid > mb.uidnext &&
	    sq_mbox_adjust(c, mb.id, 0, 0, 0, 0, 0, p->uid) < 0)
		return sq_job_dberr(job, c);
	uint64_t size = 0;
	int have = p->email > 0 ? email_row(c, p->email, &size) : 0;
	if (have < 0)
		return sq_job_dberr(job, c);
	if (have > 0) {
		if (copy_of_email(u, c, job, a, mb.id, size) < 0)
			return -1;
	} else if (a->cp == NULL) {
		return sq_job_fail(job, STORE_ERR_NOTFOUND, "No such Email, and"
				   " no body given");
	} else {
		struct sq_append_arg *aa = &a->cp->a;
		aa->mailbox = a->mailbox;
		aa->params = &p->append;
		aa->limits = a->limits;
		aa->want_blob = p->email;
		aa->want_thread = p->thread;
		aa->want_savedate = p->savedate;
		/* sq_append_tx reads its argument from the job */
		job->arg = aa;
		int r = sq_append_tx(u, c, job);
		job->arg = a;
		if (r < 0)
			return -1;
		a->uid = aa->uid;
	}
	/* a thread merge during the append may have taken UIDs */
	if (p->uid != 0 && a->uid != p->uid)
		return sq_job_fail(job, STORE_ERR_EXISTS, "UID %u is taken",
				   p->uid);
	if ((p->pop3_uidl != NULL &&
	     set_uidl(c, mb.id, a->uid, p->pop3_uidl) < 0) ||
	    ((p->pop3_hidden || p->pop3_first_retr != 0) &&
	     set_pop3(c, mb.id, a->uid, p) < 0) ||
	    (p->mark_source != NULL && mark_check(c, p, true) < 0))
		return sq_job_dberr(job, c);
	return 0;
}

static int iappend_job(struct sq_user *u, struct sq_conn *c,
		       struct sq_job *job)
{
	struct iappend_arg *a = job->arg;
	if (*a->quota_stop)
		return sq_job_fail(job, STORE_ERR_QUOTA, "Quota exceeded (an"
				   " earlier message)");
	int r = iappend_one(u, c, job, a);
	if (r < 0 && job->err.kind == STORE_ERR_QUOTA)
		*a->quota_stop = true;
	return r;
}

void sq_import_append_batch(struct store_user *user,
			    struct store_import_item *items, size_t count)
{
	struct sq_user *u = SQU(user);
	struct store_account_limits limits;
	struct store_error lerr;
	if (count == 0)
		return;
	if (sq_limits_get(user, &limits, &lerr) < 0) {
		for (size_t i = 0; i < count; i++)
			if (items[i].ret == 0) {
				items[i].ret = -1;
				items[i].err = lerr;
			}
		return;
	}
	bool quota_stop = false;
	struct iappend_arg *args = xcalloc(count, sizeof(*args));
	struct sq_body_copy *cps = xcalloc(count, sizeof(*cps));
	struct sq_job *jobs = xcalloc(count, sizeof(*jobs));
	size_t *which = xcalloc(count, sizeof(*which));
	size_t n = 0;
	for (size_t i = 0; i < count; i++) {
		struct store_import_item *it = &items[i];
		if (it->ret != 0)
			continue;
		struct iappend_arg *a = &args[i];
		a->mailbox = it->mailbox;
		a->p = &it->p;
		a->limits = limits;
		a->quota_stop = &quota_stop;
		if (it->body != NULL) {
			if (sq_body_copy_begin(it->body, u, NULL, 0, &cps[i],
					       &it->err) < 0) {
				it->ret = -1;
				continue;
			}
			a->cp = &cps[i];
		}
		jobs[n].fn = iappend_job;
		jobs[n].arg = a;
		which[n++] = i;
	}
	sq_run_jobs(u, jobs, n);
	for (size_t k = 0; k < n; k++) {
		struct store_import_item *it = &items[which[k]];
		struct iappend_arg *a = &args[which[k]];
		it->ret = jobs[k].ret < 0 ? -1 : 0;
		if (it->ret < 0)
			it->err = jobs[k].err;
		else {
			it->uid = a->uid;
			it->modseq = jobs[k].modseq;
		}
		if (it->body != NULL)
			sq_body_copy_end(it->body, u, &cps[which[k]],
					 it->ret == 0);
	}
	free(which);
	free(jobs);
	free(cps);
	free(args);
}

struct mark_arg {
	const char *source, *id;
};

static int mark_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	(void)u;
	struct mark_arg *a = job->arg;
	sqlite3_stmt *st = sq_stmt(c, "INSERT OR IGNORE INTO import_mark"
				      " (source, id) VALUES (?, ?)");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_text(st, 1, a->source, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, a->id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
}

int sq_import_mark_add(struct store_user *user, const char *source,
		       const char *id, struct store_error *err)
{
	struct mark_arg a = {source, id};
	return sq_run(SQU(user), mark_job, &a, err);
}

int sq_import_marks(struct store_user *user, const char *source,
		    char ***ids_r, size_t *count_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	char **ids = NULL;
	size_t n = 0, cap = 0;
	int rc = SQLITE_ERROR;
	sqlite3_stmt *st = sq_stmt(c, "SELECT id FROM import_mark"
				      " WHERE source = ?");
	if (st != NULL) {
		sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				ids = xrealloc(ids, cap * sizeof(*ids));
			}
			ids[n++] = xstrdup((const char *)
					   sqlite3_column_text(st, 0));
		}
		sqlite3_reset(st);
	}
	int ret = 0;
	if (rc != SQLITE_DONE) {
		ret = sq_db_error(c, err, "import marks");
		store_names_free(ids, n);
	} else {
		*ids_r = ids;
		*count_r = n;
	}
	sq_reader_put(u, c);
	return ret;
}

static int raise_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	(void)c;
	uint64_t want = *(const uint64_t *)job->arg;
	if (want > u->tx_modseq) {
		u->tx_modseq = want;
		u->tx_dirty = true;
	}
	return 0;
}

int sq_modseq_raise(struct store_user *user, uint64_t modseq,
		    struct store_error *err)
{
	return sq_run(SQU(user), raise_job, &modseq, err);
}

/* ---- a restored folder made exact ---------------------------------- */

/* A restore's last step for a folder (store.h store_import_exact): the
 * source's modseqs on the messages nothing changed since their append,
 * its expunge log and horizon, HIGHESTMODSEQ, in this one job. No modseq
 * is taken (but for log entries given none: messages a restore left out):
 * what changes is the past as the source had it, below every modseq a
 * session has been told about (a session's view keeps going
 * from the one it has, which stays at or below the counter). */
static int exact_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	const struct store_import_exact *x = job->arg;
	struct sq_mbox mb;
	if (sq_job_mbox(job, c, x->name, &mb) < 0)
		return -1;
	if (mb.uidvalidity != x->uidvalidity)
		return sq_job_fail(job, STORE_ERR_INVALID, "%s has UIDVALIDITY"
				   " %u, not the source's %u", x->name,
				   mb.uidvalidity, x->uidvalidity);
	/* the counter at least the source's first: a modseq taken below
	 * (messages left out, expunged now) is above every source one */
	if (x->highestmodseq > u->tx_modseq) {
		u->tx_modseq = x->highestmodseq;
		u->tx_dirty = true;
	}
	sqlite3_stmt *st;
	for (size_t i = 0; i < x->msg_count; i++) {
		const struct store_import_exact_msg *m = &x->msgs[i];
		st = sq_stmt(c, "UPDATE msg SET modseq = ?1 WHERE mailbox = ?2"
				" AND uid = ?3 AND modseq = ?4 AND ?1 != ?4");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, (sqlite3_int64)m->modseq);
		sqlite3_bind_int64(st, 2, mb.id);
		sqlite3_bind_int64(st, 3, m->uid);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)m->got);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
	}
	for (size_t i = 0; i < x->pop3_count; i++) {
		const struct store_import_pop3 *p = &x->pop3[i];
		st = sq_stmt(c, "UPDATE msg SET pop3_hidden = max(pop3_hidden,"
				" ?1), pop3_first_retr = CASE WHEN"
				" pop3_first_retr = 0 THEN ?2 ELSE"
				" pop3_first_retr END WHERE mailbox = ?3 AND"
				" uid = ?4");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int(st, 1, p->hidden);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)p->first_retr);
		sqlite3_bind_int64(st, 3, mb.id);
		sqlite3_bind_int64(st, 4, p->uid);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
	}
	for (size_t i = 0; i < x->expunged_count; i++) {
		const struct store_expunged_range *r = &x->expunged[i];
		/* never a UID the folder holds, nor one not yet given */
		uint32_t last = r->last;
		if (mb.uidnext == 0 || r->first >= mb.uidnext)
			continue;
		if (last >= mb.uidnext)
			last = mb.uidnext - 1;
		for (uint32_t uid = r->first;; uid++) {
			st = sq_stmt(c, "INSERT INTO expunged SELECT ?1, ?2,"
					" ?3, ?4 WHERE NOT EXISTS (SELECT 1"
					" FROM msg WHERE mailbox = ?1 AND"
					" uid = ?2) ON CONFLICT (mailbox, uid)"
					" DO UPDATE SET modseq = CASE WHEN ?5"
					" THEN excluded.modseq ELSE"
					" max(modseq, excluded.modseq) END");
			if (st == NULL)
				return sq_job_dberr(job, c);
			sqlite3_bind_int64(st, 1, mb.id);
			sqlite3_bind_int64(st, 2, uid);
			sqlite3_bind_int64(st, 3, (sqlite3_int64)(r->modseq != 0
				? r->modseq : sq_job_modseq(u, job)));
			sqlite3_bind_int64(st, 4, (sqlite3_int64)r->at);
			sqlite3_bind_int(st, 5, x->log_as_given && r->modseq);
			int rc = sqlite3_step(st);
			sqlite3_reset(st);
			if (rc != SQLITE_DONE)
				return sq_job_dberr(job, c);
			if (uid == last)
				break;
		}
	}
	st = sq_stmt(c, "UPDATE mailbox SET"
			" expunge_horizon = max(expunge_horizon, ?2),"
			" highestmodseq = max(?3,"
			"  coalesce((SELECT max(modseq) FROM msg"
			"   WHERE mailbox = ?1), 0),"
			"  coalesce((SELECT max(modseq) FROM expunged"
			"   WHERE mailbox = ?1), 0))"
			" WHERE id = ?1 RETURNING highestmodseq");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, mb.id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)x->expunge_horizon);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)x->highestmodseq);
	int rc = sqlite3_step(st);
	uint64_t highest = rc == SQLITE_ROW
		? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	if (rc == SQLITE_ROW)
		rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_job_dberr(job, c);
	/* the counter never goes down, and is never below the folder */
	if (highest > u->tx_modseq) {
		u->tx_modseq = highest;
		u->tx_dirty = true;
	}
	if (x->jmap_horizon > 0) {
		uint64_t h = x->jmap_horizon < u->tx_modseq ? x->jmap_horizon
							    : u->tx_modseq;
		st = sq_stmt(c, "INSERT OR REPLACE INTO jmeta SELECT 'horizon',"
				" max(coalesce((SELECT v FROM jmeta WHERE"
				" k = 'horizon'), 0), ?)");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, (sqlite3_int64)h);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
	}
	return 0;
}

int sq_import_exact(struct store_user *user,
		    const struct store_import_exact *x,
		    struct store_error *err)
{
	return sq_run(SQU(user), exact_job, (void *)x, err);
}

/* ---- the export stream -------------------------------------------- */

struct store_export {
	struct store_object obj;
	struct sq_user *u;
	struct sq_conn *c;
	uint64_t ticket;
	struct store_export_info info;
	sqlite3_stmt *st;
	struct store_export_msg msg;
	char *kwbuf;
	const char **kw;
	size_t kw_cap;
};

static const char export_msgs_sql[] =
	"SELECT m.uid, m.modseq, m.flags, m.keywords, m.internaldate,"
	" m.savedate, m.size, m.blob, b.thread, m.uidl, m.pop3_hidden,"
	" m.pop3_first_retr FROM msg m JOIN blob b ON b.id = m.blob"
	" WHERE m.mailbox = ? ORDER BY m.uid";

int sq_export_begin(struct store_user *user, struct store_export **exp_r,
		    struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct store_export *e = xcalloc(1, sizeof(*e));
	e->obj.vf = &store_sqlite_vfuncs;
	e->u = u;
	/* before the snapshot: a body file freed by any later commit stays
	 * until export_end (sq_read_enter) */
	e->ticket = sq_read_enter(u);
	e->c = sq_reader_get(u, err);
	if (e->c == NULL || sq_read_begin(e->c, err) < 0)
		goto fail;
	sqlite3_stmt *st = sq_stmt(e->c, "SELECT modseq, usage_bytes,"
					 " usage_messages FROM account");
	if (st == NULL || sqlite3_step(st) != SQLITE_ROW) {
		if (st != NULL)
			sqlite3_reset(st);
		sq_db_error(e->c, err, "export");
		goto fail;
	}
	e->info.modseq = (uint64_t)sqlite3_column_int64(st, 0);
	e->info.usage.bytes = (uint64_t)sqlite3_column_int64(st, 1);
	e->info.usage.messages = (uint64_t)sqlite3_column_int64(st, 2);
	sqlite3_reset(st);
	if (sq_mailbox_list_in(u, e->c, &e->info.mailboxes,
			       &e->info.mailbox_count, err) < 0)
		goto fail;
	st = sq_stmt(e->c, "SELECT name FROM subscription ORDER BY name");
	int rc = SQLITE_ERROR;
	size_t cap = 0;
	if (st != NULL) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (e->info.subscription_count == cap) {
				cap = cap ? cap * 2 : 16;
				e->info.subscriptions = xrealloc(
					e->info.subscriptions,
					cap * sizeof(char *));
			}
			e->info.subscriptions[e->info.subscription_count++] =
				xstrdup((const char *)sqlite3_column_text(st, 0));
		}
		sqlite3_reset(st);
	}
	if (rc != SQLITE_DONE) {
		sq_db_error(e->c, err, "export");
		goto fail;
	}
	*exp_r = e;
	return 0;
fail:
	sq_export_end(&e);
	return -1;
}

const struct store_export_info *sq_export_info(const struct store_export *exp)
{
	return &exp->info;
}

int sq_export_messages(struct store_export *e, uint32_t mailbox_id,
		       struct store_error *err)
{
	if (e->st != NULL)
		sqlite3_reset(e->st);
	e->st = sq_stmt(e->c, export_msgs_sql);
	if (e->st == NULL)
		return sq_db_error(e->c, err, "export");
	sqlite3_bind_int64(e->st, 1, mailbox_id);
	return 0;
}

static void export_keywords(struct store_export *e, const char *kw)
{
	free(e->kwbuf);
	e->kwbuf = NULL;
	e->msg.keywords = NULL;
	e->msg.keyword_count = 0;
	if (kw == NULL || kw[0] == '\0')
		return;
	e->kwbuf = xstrdup(kw);
	size_t n = 0;
	for (char *s = e->kwbuf, *save = NULL, *t;
	     (t = strtok_r(s, " ", &save)) != NULL; s = NULL) {
		if (n + 1 >= e->kw_cap) {
			e->kw_cap = e->kw_cap ? e->kw_cap * 2 : 8;
			e->kw = xrealloc(e->kw, e->kw_cap * sizeof(*e->kw));
		}
		e->kw[n++] = t;
	}
	if (n > 0)
		e->kw[n] = NULL;
	e->msg.keywords = n > 0 ? e->kw : NULL;
	e->msg.keyword_count = n;
}

int sq_export_next(struct store_export *e,
		   const struct store_export_msg **msg_r,
		   struct store_error *err)
{
	if (e->st == NULL)
		return 0;
	int rc = sqlite3_step(e->st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(e->st);
		e->st = NULL;
		return rc == SQLITE_DONE ? 0 : sq_db_error(e->c, err, "export");
	}
	sqlite3_stmt *st = e->st;
	struct store_export_msg *m = &e->msg;
	m->uid = (uint32_t)sqlite3_column_int64(st, 0);
	m->modseq = (uint64_t)sqlite3_column_int64(st, 1);
	m->flags = (unsigned)sqlite3_column_int(st, 2);
	export_keywords(e, (const char *)sqlite3_column_text(st, 3));
	m->internaldate = (time_t)sqlite3_column_int64(st, 4);
	m->savedate = (time_t)sqlite3_column_int64(st, 5);
	m->size = (uint64_t)sqlite3_column_int64(st, 6);
	m->email = sqlite3_column_int64(st, 7);
	m->thread = sqlite3_column_int64(st, 8);
	m->pop3_uidl = (const char *)sqlite3_column_text(st, 9);
	m->pop3_hidden = sqlite3_column_int(st, 10) != 0;
	m->pop3_first_retr = (time_t)sqlite3_column_int64(st, 11);
	*msg_r = m;
	return 1;
}

int sq_export_body(struct store_export *e, int64_t email,
		   struct store_blob *blob_r, struct store_error *err)
{
	return sq_blob_read_id(e->u, e->c, email, blob_r, err);
}

int sq_export_seen(struct store_export *e, uint32_t mailbox_id,
		   struct store_export_seen **rows_r, size_t *count_r,
		   struct store_error *err)
{
	sqlite3_stmt *st = sq_stmt(e->c, "SELECT viewer, uid FROM seen_pvt"
					 " WHERE mailbox = ? AND seen = 1"
					 " ORDER BY viewer, uid");
	if (st == NULL)
		return sq_db_error(e->c, err, "export");
	sqlite3_bind_int64(st, 1, mailbox_id);
	struct store_export_seen *rows = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			rows = xrealloc(rows, cap * sizeof(*rows));
		}
		rows[n].viewer = sqlite3_column_int64(st, 0);
		rows[n++].uid = (uint32_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(rows);
		return sq_db_error(e->c, err, "export");
	}
	*rows_r = rows;
	*count_r = n;
	return 0;
}

int sq_export_expunged(struct store_export *e, uint32_t mailbox_id,
		       struct store_expunged_range **ranges_r,
		       size_t *count_r, uint64_t *horizon_r,
		       struct store_error *err)
{
	sqlite3_stmt *st = sq_stmt(e->c, "SELECT expunge_horizon FROM mailbox"
					 " WHERE id = ?");
	if (st == NULL)
		return sq_db_error(e->c, err, "export");
	sqlite3_bind_int64(st, 1, mailbox_id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*horizon_r = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sq_db_error(e->c, err, "export");
	st = sq_stmt(e->c, "SELECT uid, modseq, at FROM expunged"
			   " WHERE mailbox = ? ORDER BY modseq, at, uid");
	if (st == NULL)
		return sq_db_error(e->c, err, "export");
	sqlite3_bind_int64(st, 1, mailbox_id);
	struct store_expunged_range *v = NULL;
	size_t n = 0, cap = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint32_t uid = (uint32_t)sqlite3_column_int64(st, 0);
		uint64_t modseq = (uint64_t)sqlite3_column_int64(st, 1);
		time_t at = (time_t)sqlite3_column_int64(st, 2);
		if (n > 0 && v[n - 1].modseq == modseq && v[n - 1].at == at &&
		    v[n - 1].last + 1 == uid) {
			v[n - 1].last = uid;
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[n++] = (struct store_expunged_range){uid, uid, modseq, at};
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return sq_db_error(e->c, err, "export");
	}
	*ranges_r = v;
	*count_r = n;
	return 0;
}

void sq_export_end(struct store_export **expp)
{
	struct store_export *e = *expp;
	if (e == NULL)
		return;
	*expp = NULL;
	if (e->st != NULL)
		sqlite3_reset(e->st);
	if (e->c != NULL) {
		sq_read_end(e->c);
		sq_reader_put(e->u, e->c);
	}
	sq_read_leave(e->u, e->ticket);
	store_mailbox_list_free(e->info.mailboxes, e->info.mailbox_count);
	store_names_free(e->info.subscriptions, e->info.subscription_count);
	free(e->kwbuf);
	free(e->kw);
	free(e);
}

/* ---- the rest of an account (store_export_extra) -------------------- */

static char *col_dup(sqlite3_stmt *st, int col, size_t *len_r)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return NULL;
	const void *v = sqlite3_column_blob(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	char *s = xmalloc(n + 1);
	if (n > 0)
		memcpy(s, v, n);
	s[n] = '\0';
	if (len_r != NULL)
		*len_r = n;
	return s;
}

#define GROW(v, n, cap)                                               \
	do {                                                          \
		if ((n) == (cap)) {                                   \
			(cap) = (cap) ? (cap) * 2 : 16;               \
			(v) = xrealloc((v), (cap) * sizeof(*(v)));    \
		}                                                     \
	} while (0)

int sq_export_extra(struct store_export *e, struct store_account_extra *x,
		    struct store_error *err)
{
	/* mailbox 0 is the server's (no mailbox row) */
	sqlite3_stmt *st = sq_stmt(e->c, "SELECT m.name, a.viewer, a.name,"
				   " a.value FROM annotation a LEFT JOIN mailbox m"
				   " ON m.id = a.mailbox WHERE a.mailbox = 0"
				   " OR m.id IS NOT NULL"
				   " ORDER BY a.mailbox, a.viewer, a.name");
	if (st == NULL)
		return sq_db_error(e->c, err, "export");
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		GROW(x->annotations, x->annotation_count, cap);
		struct store_extra_annotation *a =
			&x->annotations[x->annotation_count++];
		a->mailbox = col_dup(st, 0, NULL);
		a->viewer = sqlite3_column_int64(st, 1);
		a->name = col_dup(st, 2, NULL);
		a->value = col_dup(st, 3, &a->value_len);
		if (a->value == NULL)
			a->value = xstrdup("");
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_db_error(e->c, err, "export");
	st = sq_stmt(e->c, "SELECT m.name, k.viewer, k.key FROM access_key k"
			   " JOIN mailbox m ON m.id = k.mailbox"
			   " ORDER BY k.mailbox, k.viewer");
	if (st == NULL)
		return sq_db_error(e->c, err, "export");
	cap = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 2) != STORE_URLAUTH_KEY_LEN)
			continue;   /* not a key URLAUTH could use */
		GROW(x->keys, x->key_count, cap);
		struct store_extra_key *k = &x->keys[x->key_count++];
		k->mailbox = col_dup(st, 0, NULL);
		k->viewer = sqlite3_column_int64(st, 1);
		memcpy(k->key, sqlite3_column_blob(st, 2), STORE_URLAUTH_KEY_LEN);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_db_error(e->c, err, "export");
	st = sq_stmt(e->c, "SELECT key, expires FROM sieve_record ORDER BY key");
	if (st == NULL)
		return sq_db_error(e->c, err, "export");
	cap = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		GROW(x->records, x->record_count, cap);
		struct store_extra_record *r = &x->records[x->record_count++];
		r->key = col_dup(st, 0, NULL);
		r->expires = (time_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_db_error(e->c, err, "export");
	st = sq_stmt(e->c, "SELECT kind, id, data FROM jobject"
			   " WHERE kind IN (?, ?, ?, ?, ?) ORDER BY kind, id");
	if (st == NULL)
		return sq_db_error(e->c, err, "export");
	sqlite3_bind_int(st, 1, STORE_JMAP_IDENTITY);
	sqlite3_bind_int(st, 2, STORE_JMAP_VACATION);
	sqlite3_bind_int(st, 3, STORE_JMAP_SETTINGS);
	sqlite3_bind_int(st, 4, STORE_JMAP_SUBMISSION);
	sqlite3_bind_int(st, 5, STORE_JMAP_PUSH);
	cap = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		GROW(x->objects, x->object_count, cap);
		struct store_extra_object *o = &x->objects[x->object_count++];
		o->kind = sqlite3_column_int(st, 0);
		o->id = sqlite3_column_int64(st, 1);
		o->data = col_dup(st, 2, NULL);
		if (o->data == NULL)
			o->data = xstrdup("{}");
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_db_error(e->c, err, "export");
	return 0;
}

struct extra_arg {
	const struct store_account_extra *x;
	size_t skipped;
};

/* The mailbox's id (0: the server's, for name NULL); 0 when there is no
 * such selectable mailbox (the row is left out), -1 on error. */
static int extra_mbox(struct sq_conn *c, const char *name, uint32_t *id_r)
{
	*id_r = 0;
	if (name == NULL)
		return 1;
	struct sq_mbox mb;
	int r = sq_mbox_get(c, name, &mb);
	if (r <= 0)
		return r;
	if (mb.noselect)
		return 0;
	*id_r = mb.id;
	return 1;
}

static int extra_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct extra_arg *a = job->arg;
	const struct store_account_extra *x = a->x;
	a->skipped = 0;
	for (size_t i = 0; i < x->annotation_count; i++) {
		const struct store_extra_annotation *an = &x->annotations[i];
		uint32_t id;
		int r = extra_mbox(c, an->mailbox, &id);
		if (r < 0)
			return sq_job_dberr(job, c);
		if (r == 0) {
			a->skipped++;
			continue;
		}
		sqlite3_stmt *st = sq_stmt(c, "INSERT OR IGNORE INTO annotation"
					      " (mailbox, viewer, name, value)"
					      " VALUES (?, ?, ?, ?)");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, an->viewer);
		sqlite3_bind_text(st, 3, an->name, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 4, an->value, (int)an->value_len,
				  SQLITE_STATIC);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
	}
	for (size_t i = 0; i < x->key_count; i++) {
		const struct store_extra_key *k = &x->keys[i];
		uint32_t id;
		int r = extra_mbox(c, k->mailbox, &id);
		if (r < 0)
			return sq_job_dberr(job, c);
		if (r == 0) {
			a->skipped++;
			continue;
		}
		sqlite3_stmt *st = sq_stmt(c, "INSERT OR IGNORE INTO access_key"
					      " (mailbox, viewer, key)"
					      " VALUES (?, ?, ?)");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, k->viewer);
		sqlite3_bind_blob(st, 3, k->key, STORE_URLAUTH_KEY_LEN,
				  SQLITE_STATIC);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
	}
	for (size_t i = 0; i < x->record_count; i++) {
		sqlite3_stmt *st = sq_stmt(c, "INSERT OR IGNORE INTO"
					      " sieve_record (key, expires)"
					      " VALUES (?, ?)");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_text(st, 1, x->records[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)x->records[i].expires);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
	}
	if (x->object_count > 0) {
		/* a change JMAP clients see (its modseq), with the ids kept */
		uint64_t modseq = sq_job_modseq(u, job);
		for (size_t i = 0; i < x->object_count; i++) {
			const struct store_extra_object *o = &x->objects[i];
			sqlite3_stmt *st = sq_stmt(c, "INSERT OR IGNORE INTO"
						      " jobject (kind, id, created,"
						      " modseq, data)"
						      " VALUES (?, ?, ?, ?, ?)");
			if (st == NULL)
				return sq_job_dberr(job, c);
			sqlite3_bind_int(st, 1, o->kind);
			sqlite3_bind_int64(st, 2, o->id);
			sqlite3_bind_int64(st, 3, (sqlite3_int64)modseq);
			sqlite3_bind_int64(st, 4, (sqlite3_int64)modseq);
			sqlite3_bind_text(st, 5, o->data, -1, SQLITE_STATIC);
			int rc = sqlite3_step(st);
			sqlite3_reset(st);
			if (rc != SQLITE_DONE)
				return sq_job_dberr(job, c);
		}
		sq_job_change(job, 0, STORE_CHANGE_OBJECTS);
	}
	return 0;
}

int sq_import_extra(struct store_user *user,
		    const struct store_account_extra *x, size_t *skipped_r,
		    struct store_error *err)
{
	struct extra_arg a = {x, 0};
	int ret = sq_run(SQU(user), extra_job, &a, err);
	*skipped_r = a.skipped;
	return ret;
}

/* store_import_extra_drop: each row by its key, in one job. */
static int drop_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	const struct store_account_extra *x = job->arg;
	for (size_t i = 0; i < x->annotation_count; i++) {
		const struct store_extra_annotation *an = &x->annotations[i];
		uint32_t id;
		int r = extra_mbox(c, an->mailbox, &id);
		if (r < 0)
			return sq_job_dberr(job, c);
		if (r == 0)
			continue;
		sqlite3_stmt *st = sq_stmt(c, "DELETE FROM annotation WHERE"
					      " mailbox = ? AND viewer = ? AND"
					      " name = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, an->viewer);
		sqlite3_bind_text(st, 3, an->name, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
	}
	for (size_t i = 0; i < x->key_count; i++) {
		uint32_t id;
		int r = extra_mbox(c, x->keys[i].mailbox, &id);
		if (r < 0)
			return sq_job_dberr(job, c);
		if (r == 0)
			continue;
		sqlite3_stmt *st = sq_stmt(c, "DELETE FROM access_key WHERE"
					      " mailbox = ? AND viewer = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, x->keys[i].viewer);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
	}
	for (size_t i = 0; i < x->record_count; i++) {
		sqlite3_stmt *st = sq_stmt(c, "DELETE FROM sieve_record"
					      " WHERE key = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_text(st, 1, x->records[i].key, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
	}
	for (size_t i = 0; i < x->object_count; i++) {
		sqlite3_stmt *st = sq_stmt(c, "DELETE FROM jobject WHERE"
					      " kind = ? AND id = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int(st, 1, x->objects[i].kind);
		sqlite3_bind_int64(st, 2, x->objects[i].id);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
	}
	if (x->object_count > 0)
		sq_job_change(job, 0, STORE_CHANGE_OBJECTS);
	(void)u;
	return 0;
}

int sq_drop_extra(struct store_user *user,
		  const struct store_account_extra *x, struct store_error *err)
{
	return sq_run(SQU(user), drop_job, (void *)x, err);
}

/* ---- undelete's kept messages (store_export_kept) ------------------- */

int sq_export_kept(struct store_export *e, struct store_export_kept **rows_r,
		   size_t *count_r, struct store_error *err)
{
	sqlite3_stmt *st = sq_stmt(e->c, "SELECT d.mailbox, d.uid, d.flags,"
				   " d.keywords, d.internaldate, d.savedate,"
				   " d.at, d.size, d.blob, b.thread FROM deleted d"
				   " LEFT JOIN blob b ON b.id = d.blob"
				   " ORDER BY d.at, d.id");
	if (st == NULL)
		return sq_db_error(e->c, err, "export");
	struct store_export_kept *v = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		GROW(v, n, cap);
		struct store_export_kept *k = &v[n++];
		k->mailbox = col_dup(st, 0, NULL);
		if (k->mailbox == NULL)
			k->mailbox = xstrdup("");
		k->uid = (uint32_t)sqlite3_column_int64(st, 1);
		k->flags = (unsigned)sqlite3_column_int(st, 2);
		k->keywords = col_dup(st, 3, NULL);
		if (k->keywords == NULL)
			k->keywords = xstrdup("");
		k->internaldate = (time_t)sqlite3_column_int64(st, 4);
		k->savedate = (time_t)sqlite3_column_int64(st, 5);
		k->deleted_at = (time_t)sqlite3_column_int64(st, 6);
		k->size = (uint64_t)sqlite3_column_int64(st, 7);
		k->email = sqlite3_column_int64(st, 8);
		k->thread = sqlite3_column_int64(st, 9);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		store_export_kept_free(v, n);
		return sq_db_error(e->c, err, "export");
	}
	*rows_r = v;
	*count_r = n;
	return 0;
}

struct ikept_arg {
	const struct store_import_kept *k;
	struct sq_body_copy *cp;      /* NULL: the account has k->email */
	bool used;                    /* cp's body became a blob row */
};

static int ikept_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct ikept_arg *a = job->arg;
	const struct store_import_kept *k = a->k;
	a->used = false;
	/* the account has it (a rerun, a restore into it): nothing to add */
	sqlite3_stmt *st = sq_stmt(c, "SELECT 1 FROM deleted WHERE mailbox = ?"
				      " AND uid = ? AND at = ? AND"
				      " internaldate = ?");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_text(st, 1, k->mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, k->uid);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)k->deleted_at);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)k->internaldate);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return sq_job_fail(job, STORE_ERR_EXISTS, "Kept already");
	if (rc != SQLITE_DONE)
		return sq_job_dberr(job, c);
	uint64_t size = 0;
	int64_t blob = 0;
	int have = k->email > 0 ? email_row(c, k->email, &size) : 0;
	if (have < 0)
		return sq_job_dberr(job, c);
	if (have > 0) {
		blob = k->email;
	} else if (a->cp == NULL) {
		return sq_job_fail(job, STORE_ERR_NOTFOUND, "No such Email, and"
				   " no body given");
	} else {
		struct sq_append_arg *aa = &a->cp->a;
		aa->mailbox = k->mailbox;
		aa->want_blob = k->email;
		aa->want_thread = k->thread;
		if (sq_blob_insert(u, c, job, aa, &blob) < 0)
			return sq_job_dberr(job, c);
		size = aa->size;
		a->used = true;
	}
	st = sq_stmt(c, "INSERT INTO deleted (mailbox, uid, blob, flags,"
			" keywords, internaldate, savedate, size, at)"
			" VALUES (?,?,?,?,?,?,?,?,?)");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_text(st, 1, k->mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, k->uid);
	sqlite3_bind_int64(st, 3, blob);
	sqlite3_bind_int(st, 4, (int)k->flags);
	if (k->keywords != NULL)
		sqlite3_bind_text(st, 5, k->keywords, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)k->internaldate);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)k->savedate);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)size);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)k->deleted_at);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
}

int sq_import_kept(struct store_user *user, const struct store_import_kept *k,
		   struct store_body *body, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_body_copy cp;
	struct ikept_arg a = {k, NULL, false};
	if (body != NULL) {
		if (sq_body_copy_begin(body, u, NULL, 0, &cp, err) < 0)
			return -1;
		a.cp = &cp;
	}
	int ret = sq_run(u, ikept_job, &a, err);
	if (body != NULL)
		sq_body_copy_end(body, u, &cp, ret == 0 && a.used);
	return ret;
}

int sq_export_pop3_sum(struct store_export *e, struct store_pop3_sum *r,
		       struct store_error *err)
{
	sqlite3_stmt *st = sq_stmt(e->c, "SELECT total(pop3_hidden != 0),"
				   " total(CASE WHEN pop3_hidden != 0 THEN uid"
				   " END), total(pop3_first_retr != 0),"
				   " total(pop3_first_retr) FROM msg");
	if (st == NULL)
		return sq_db_error(e->c, err, "export");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		r->hidden = (uint64_t)sqlite3_column_double(st, 0);
		r->hidden_uids = (uint64_t)sqlite3_column_double(st, 1);
		r->retrieved = (uint64_t)sqlite3_column_double(st, 2);
		r->first_retr = (uint64_t)sqlite3_column_double(st, 3);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : sq_db_error(e->c, err, "export");
}
