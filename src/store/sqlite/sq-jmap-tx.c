/*
 * JMAP writes of the embedded backend: the email transaction (creates,
 * keyword and mailbox updates, destroys of one Email/set, import or copy
 * in one group-commit job, each under a savepoint of its own so one
 * failure leaves the others) and uploads (files under uploads/, a row in
 * jupload, durable before the reply). The JMAP bookkeeping itself is done
 * by the triggers (sq-jmap-schema.h).
 */
#include "sq-private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* ---- copies of an Email ------------------------------------------- */

struct copy {
	uint32_t mailbox;
	struct sq_msgrow row;
};

struct copies {
	struct copy *v;
	size_t n;
};

static void copies_free(struct copies *cs)
{
	for (size_t i = 0; i < cs->n; i++)
		free(cs->v[i].row.keywords);
	free(cs->v);
	cs->v = NULL;
	cs->n = 0;
}

static int copies_get(struct sq_conn *c, int64_t blob, struct copies *cs)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT mailbox, uid, blob, modseq,"
				      " flags, keywords, internaldate, savedate,"
				      " size, pop3_first_retr, pop3_hidden"
				      " FROM msg WHERE blob = ?"
				      " ORDER BY mailbox, uid");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, blob);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		cs->v = xrealloc(cs->v, (cs->n + 1) * sizeof(*cs->v));
		struct copy *x = &cs->v[cs->n++];
		x->mailbox = (uint32_t)sqlite3_column_int64(st, 0);
		struct sq_msgrow *m = &x->row;
		m->uid = (uint32_t)sqlite3_column_int64(st, 1);
		m->blob = sqlite3_column_int64(st, 2);
		m->modseq = (uint64_t)sqlite3_column_int64(st, 3);
		m->flags = (unsigned)sqlite3_column_int(st, 4);
		const char *kw = (const char *)sqlite3_column_text(st, 5);
		m->keywords = kw != NULL ? xstrdup(kw) : NULL;
		m->internaldate = sqlite3_column_int64(st, 6);
		m->savedate = sqlite3_column_int64(st, 7);
		m->size = (uint64_t)sqlite3_column_int64(st, 8);
		m->pop3_first_retr = sqlite3_column_int64(st, 9);
		m->pop3_hidden = sqlite3_column_int(st, 10) != 0;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static bool visible(const struct copy *x)
{
	return (x->row.flags & STORE_FLAG_DELETED) == 0;
}

static bool u32_in(const uint32_t *v, size_t n, uint32_t x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

static bool same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Applies the keyword part of an update to every visible copy. */
static int update_keywords(struct sq_user *u, struct sq_conn *c,
			   struct sq_job *job, struct copies *cs,
			   const struct store_email_update *up)
{
	for (size_t i = 0; i < cs->n; i++) {
		struct copy *x = &cs->v[i];
		if (!visible(x))
			continue;
		unsigned nf = store_email_flags_update(x->row.flags, up);
		char *nk = store_email_keywords_update(x->row.keywords, up);
		if (nf == x->row.flags && same_str(nk, x->row.keywords)) {
			free(nk);
			continue;
		}
		uint64_t modseq = sq_job_modseq(u, job);
		sqlite3_stmt *st = sq_stmt(c, "UPDATE msg SET flags = ?,"
					      " keywords = ?, modseq = ?"
					      " WHERE mailbox = ? AND uid = ?");
		if (st == NULL) {
			free(nk);
			return sq_job_dberr(job, c);
		}
		sqlite3_bind_int(st, 1, (int)nf);
		if (nk != NULL)
			sqlite3_bind_text(st, 2, nk, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)modseq);
		sqlite3_bind_int64(st, 4, x->mailbox);
		sqlite3_bind_int64(st, 5, x->row.uid);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		int64_t unseen = (int64_t)!(nf & STORE_FLAG_SEEN) -
				 (int64_t)!(x->row.flags & STORE_FLAG_SEEN);
		if (rc != SQLITE_DONE ||
		    sq_keywords_register(c, x->mailbox, nk) < 0 ||
		    sq_mbox_adjust(c, x->mailbox, 0, unseen, 0, 0, modseq,
				   0) < 0) {
			free(nk);
			return sq_job_dberr(job, c);
		}
		sq_job_change(job, x->mailbox, STORE_CHANGE_FLAGS);
		x->row.flags = nf;
		free(x->row.keywords);
		x->row.keywords = nk;
	}
	return 0;
}

/* ---- the transaction ---------------------------------------------- */

struct etx_arg {
	struct store_email_tx *tx;
	struct sq_body_copy *copies;     /* per op: creates only */
	bool *begun;
	struct store_account_limits limits;
	time_t now;
};

static int mbox_usable(struct sq_job *job, struct sq_conn *c, uint32_t id,
		       struct sq_mbox *mb)
{
	int r = sq_mbox_get_id(c, id, mb);
	if (r < 0)
		return sq_job_dberr(job, c);
	if (r == 0 || mb->noselect)
		return sq_job_fail(job, STORE_ERR_NOTFOUND,
				   "Mailbox doesn't exist");
	return 0;
}

static int over_quota(struct sq_user *u, const struct etx_arg *a,
		      uint64_t bytes, uint64_t messages)
{
	return sq_over_quota(u, &a->limits, bytes, messages);
}

/* Adds a copy of row (the Email's, with its flags) to mailbox id. */
static int add_copy(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		    const struct etx_arg *a, uint32_t id,
		    const struct sq_msgrow *row)
{
	struct sq_mbox mb;
	if (mbox_usable(job, c, id, &mb) < 0)
		return -1;
	if (over_quota(u, a, row->size, 1))
		return sq_job_fail(job, STORE_ERR_QUOTA, "Quota exceeded");
	uint32_t uid;
	return sq_copy_rows(u, c, job, id, row, 1, a->now, &uid);
}

static int op_create(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		     struct etx_arg *a, size_t i)
{
	struct store_email_op *op = &a->tx->ops[i];
	sqlite3_stmt *st = sq_stmt(c, "SELECT name FROM mailbox WHERE id = ?");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, op->mailboxes[0]);
	char *name = NULL;
	if (sqlite3_step(st) == SQLITE_ROW)
		name = xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	if (name == NULL)
		return sq_job_fail(job, STORE_ERR_NOTFOUND,
				   "Mailbox doesn't exist");
	struct sq_append_arg *ap = &a->copies[i].a;
	ap->mailbox = name;
	ap->params = &op->params;
	ap->limits = a->limits;
	ap->now = a->now;
	void *saved = job->arg;
	job->arg = ap;
	int ret = sq_append_tx(u, c, job);
	job->arg = saved;
	ap->mailbox = NULL;
	free(name);
	if (ret < 0)
		return -1;
	struct store_uid_range r = {ap->uid, ap->uid};
	struct sq_msgrow *rows = NULL;
	size_t n = 0;
	if (sq_rows_get(c, op->mailboxes[0], &r, 1, &rows, &n) < 0)
		return sq_job_dberr(job, c);
	if (n != 1) {
		sq_rows_free(rows, n);
		return sq_job_fail(job, STORE_ERR_INTERNAL,
				   "The new message is missing");
	}
	for (size_t k = 1; k < op->mailbox_count && ret == 0; k++) {
		if (!u32_in(op->mailboxes, k, op->mailboxes[k]))
			ret = add_copy(u, c, job, a, op->mailboxes[k], rows);
	}
	op->result.id = rows[0].blob;
	op->result.size = rows[0].size;
	sq_rows_free(rows, n);
	return ret;
}

static int op_update(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		     struct etx_arg *a, struct store_email_op *op)
{
	const struct store_email_update *up = &op->update;
	struct copies cs = {0};
	if (copies_get(c, op->id, &cs) < 0)
		return sq_job_dberr(job, c);
	int ret = 0;
	struct copy *first = NULL;
	for (size_t i = 0; i < cs.n && first == NULL; i++)
		if (visible(&cs.v[i]))
			first = &cs.v[i];
	if (first == NULL) {
		ret = sq_job_fail(job, STORE_ERR_NOTFOUND, "No such Email");
		goto out;
	}
	ret = update_keywords(u, c, job, &cs, up);
	/* mailboxes: the target set, then what to add and to remove */
	uint32_t *cur = xcalloc(cs.n, sizeof(uint32_t)), *want;
	size_t ncur = 0, nwant;
	for (size_t i = 0; i < cs.n; i++)
		if (visible(&cs.v[i]) && !u32_in(cur, ncur, cs.v[i].mailbox))
			cur[ncur++] = cs.v[i].mailbox;
	want = store_email_mailboxes_want(cur, ncur, up, &nwant);
	if (ret == 0 && nwant == 0)
		ret = sq_job_fail(job, STORE_ERR_INVALID,
				  "An Email needs a mailbox");
	for (size_t i = 0; i < nwant && ret == 0; i++)
		if (!u32_in(cur, ncur, want[i]))
			ret = add_copy(u, c, job, a, want[i], &first->row);
	for (size_t i = 0; i < ncur && ret == 0; i++) {
		if (u32_in(want, nwant, cur[i]))
			continue;
		struct sq_msgrow *rows = xcalloc(cs.n, sizeof(*rows));
		size_t n = 0;
		for (size_t k = 0; k < cs.n; k++)
			if (cs.v[k].mailbox == cur[i] && visible(&cs.v[k]))
				rows[n++] = cs.v[k].row;
		ret = sq_expunge_rows(u, c, job, cur[i], rows, n, true);
		free(rows);
	}
	free(cur);
	free(want);
	op->result.id = op->id;
	op->result.size = first->row.size;
out:
	copies_free(&cs);
	return ret;
}

static int op_destroy(struct sq_user *u, struct sq_conn *c,
		      struct sq_job *job, struct store_email_op *op)
{
	struct copies cs = {0};
	if (copies_get(c, op->id, &cs) < 0)
		return sq_job_dberr(job, c);
	bool any = false;
	for (size_t i = 0; i < cs.n; i++)
		any |= visible(&cs.v[i]);
	int ret = any ? 0
		      : sq_job_fail(job, STORE_ERR_NOTFOUND, "No such Email");
	/* every copy, \Deleted ones too: the Email is gone everywhere.
	 * Kept for undelete, but a draft: destroying one is how a client
	 * replaces it (RFC 8621 4.6: drafts are immutable) */
	bool draft = false;
	for (size_t i = 0; i < cs.n; i++)
		draft |= (cs.v[i].row.flags & STORE_FLAG_DRAFT) != 0;
	struct sq_msgrow *rows = xcalloc(cs.n ? cs.n : 1, sizeof(*rows));
	for (size_t i = 0; i < cs.n && ret == 0;) {
		size_t n = 0, k = i;
		for (; k < cs.n && cs.v[k].mailbox == cs.v[i].mailbox; k++)
			rows[n++] = cs.v[k].row;
		if (!draft)
			ret = sq_deleted_keep(u, c, job, cs.v[i].mailbox, rows,
					      n);
		if (ret == 0)
			ret = sq_expunge_rows(u, c, job, cs.v[i].mailbox, rows,
					      n, true);
		i = k;
	}
	free(rows);
	copies_free(&cs);
	op->result.id = op->id;
	return ret;
}

static int thread_of(struct sq_conn *c, int64_t blob, int64_t *thread_r)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT thread FROM blob WHERE id = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, blob);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*thread_r = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int etx_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct etx_arg *a = job->arg;
	struct store_email_tx *tx = a->tx;
	for (size_t i = 0; i < tx->count; i++) {
		struct store_email_op *op = &tx->ops[i];
		if (op->result.err.kind != STORE_ERR_NONE)
			continue;
		uint64_t bytes = u->tx_bytes, messages = u->tx_messages;
		size_t unlinks = job->unlink_count;
		if (sq_exec(c, "SAVEPOINT op") < 0)
			return sq_job_dberr(job, c);
		int r = op->kind == STORE_EMAIL_OP_CREATE
				? op_create(u, c, job, a, i)
			: op->kind == STORE_EMAIL_OP_UPDATE
				? op_update(u, c, job, a, op)
				: op_destroy(u, c, job, op);
		if (r == 0 && op->kind != STORE_EMAIL_OP_DESTROY &&
		    thread_of(c, op->result.id, &op->result.thread) < 0)
			r = sq_job_dberr(job, c);
		if (r < 0) {
			if (sq_exec(c, "ROLLBACK TO op") < 0)
				return sq_job_dberr(job, c);
			u->tx_bytes = bytes;
			u->tx_messages = messages;
			/* what the op freed is not freed after all */
			while (job->unlink_count > unlinks)
				free(job->unlink[--job->unlink_count]);
			op->result.err = job->err;
			if (op->result.err.kind == STORE_ERR_NONE)
				store_set_error(&op->result.err,
						STORE_ERR_INTERNAL,
						"Internal error");
			memset(&job->err, 0, sizeof(job->err));
			op->result.id = 0;
		}
		if (sq_exec(c, "RELEASE op") < 0)
			return sq_job_dberr(job, c);
	}
	return 0;
}

int sq_email_tx_commit(struct store_user *user, struct store_email_tx *tx,
		       struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct etx_arg a;
	memset(&a, 0, sizeof(a));
	a.tx = tx;
	a.now = time(NULL);
	a.copies = xcalloc(tx->count, sizeof(*a.copies));
	a.begun = xcalloc(tx->count, sizeof(bool));
	int ret = sq_limits_get(user, &a.limits, err);
	/* large bodies are linked in and made durable before the job */
	for (size_t i = 0; i < tx->count && ret == 0; i++) {
		struct store_email_op *op = &tx->ops[i];
		if (op->kind != STORE_EMAIL_OP_CREATE ||
		    op->result.err.kind != STORE_ERR_NONE)
			continue;
		if (op->body == NULL)
			store_set_error(&op->result.err, STORE_ERR_INVALID,
					"No message");
		else if (sq_body_copy_begin(op->body, u, NULL, 0, &a.copies[i],
					    &op->result.err) == 0)
			a.begun[i] = true;
	}
	sq_deleted_policy(user);
	if (ret == 0)
		ret = sq_run(u, etx_job, &a, err);
	for (size_t i = 0; i < tx->count; i++) {
		struct store_email_op *op = &tx->ops[i];
		if (ret < 0 && op->result.err.kind == STORE_ERR_NONE) {
			op->result.err = *err;
			op->result.id = 0;
		}
		if (a.begun[i])
			sq_body_copy_end(op->body, u, &a.copies[i],
					 ret == 0 && op->result.id != 0);
	}
	free(a.copies);
	free(a.begun);
	return ret;
}

/* ---- uploads ------------------------------------------------------ */

struct store_upload {
	struct store_object obj;
	struct store_user *user;
	int fd;
	char name[33];
	char *path;
	uint64_t size, max;
	bool failed;
};

static char *uploads_dir(struct sq_user *u)
{
	return xasprintf("%s/uploads", u->dir);
}

int sq_upload_begin(struct store_user *user, uint64_t max_size,
		    struct store_upload **up_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	char *dir = uploads_dir(u);
	if (mkdir(dir, 0700) == 0 && u->fsync)
		sq_fsync_dir(u->dir);
	struct store_upload *up = xcalloc(1, sizeof(*up));
	up->obj.vf = &store_sqlite_vfuncs;
	sq_random_hex(up->name, 16);
	up->path = xasprintf("%s/%s", dir, up->name);
	free(dir);
	up->fd = open(up->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (up->fd < 0) {
		log_error("store", NULL, "create %s: %m", up->path);
		free(up->path);
		free(up);
		return store_set_error(err, STORE_ERR_TEMP,
				       "Cannot store the upload now");
	}
	up->max = max_size;
	store_user_ref(user);
	up->user = user;
	*up_r = up;
	return 0;
}

int sq_upload_write(struct store_upload *up, const void *data, size_t len,
		    struct store_error *err)
{
	if (up->failed)
		return store_set_error(err, STORE_ERR_TEMP,
				       "The upload was not stored");
	if (up->max != 0 && up->size + len > up->max) {
		up->failed = true;
		return store_set_error(err, STORE_ERR_LIMIT,
				       "The upload is too large");
	}
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(up->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			up->failed = true;
			log_error("store", NULL, "write %s: %s", up->path,
				  strerror(e));
			if (e == ENOSPC || e == EDQUOT)
				return store_set_full(err);
			return store_set_error(err, STORE_ERR_TEMP,
					       "Cannot store the upload now");
		}
		p += n;
		len -= (size_t)n;
		up->size += (uint64_t)n;
	}
	return 0;
}

static void upload_free(struct store_upload *up, bool keep)
{
	if (up->fd >= 0)
		close(up->fd);
	if (!keep)
		unlink(up->path);
	free(up->path);
	store_user_unref(&up->user);
	free(up);
}

void sq_upload_abort(struct store_upload **upp)
{
	struct store_upload *up = *upp;
	*upp = NULL;
	if (up != NULL)
		upload_free(up, false);
}

struct upload_arg {
	const char *name, *type;
	uint64_t size;
	time_t expires;
	int64_t id;
};

static int upload_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct upload_arg *a = job->arg;
	sqlite3_stmt *st = sq_stmt(c, "INSERT INTO jupload (name, size, type,"
				      " created, expires) VALUES (?, ?, ?,"
				      " unixepoch(), ?) RETURNING id");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_text(st, 1, a->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)a->size);
	if (a->type != NULL)
		sqlite3_bind_text(st, 3, a->type, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)a->expires);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		a->id = sqlite3_column_int64(st, 0);
		rc = sqlite3_step(st);
	}
	sqlite3_reset(st);
	(void)u;
	return rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
}

int sq_upload_finish(struct store_upload **upp, const char *type,
		     time_t expires, int64_t *id_r, uint64_t *size_r,
		     struct store_error *err)
{
	struct store_upload *up = *upp;
	*upp = NULL;
	struct sq_user *u = SQU(up->user);
	if (up->failed) {
		upload_free(up, false);
		return store_set_error(err, STORE_ERR_TEMP,
				       "The upload was not stored");
	}
	if (u->fsync) {
		char *dir = uploads_dir(u);
		int r = fsync(up->fd) < 0 ? -1 : sq_fsync_dir(dir);
		free(dir);
		if (r < 0) {
			log_error("store", NULL, "fsync %s: %m", up->path);
			upload_free(up, false);
			return store_set_error(err, STORE_ERR_TEMP,
					       "Cannot store the upload now");
		}
	}
	struct upload_arg a = {up->name, type, up->size, expires, 0};
	int ret = sq_run(u, upload_job, &a, err);
	if (ret == 0) {
		*id_r = a.id;
		*size_r = up->size;
	}
	upload_free(up, ret == 0);
	return ret;
}

int sq_upload_open(struct store_user *user, int64_t id,
		   struct store_blob *blob_r, char **type_r,
		   struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	char *name = NULL, *type = NULL;
	sqlite3_stmt *st = sq_stmt(c, "SELECT name, type FROM jupload"
				      " WHERE id = ? AND expires >= unixepoch()");
	int rc = SQLITE_ERROR;
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, id);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			name = xstrdup((const char *)sqlite3_column_text(st, 0));
			const char *t = (const char *)sqlite3_column_text(st, 1);
			type = t != NULL ? xstrdup(t) : NULL;
		}
		sqlite3_reset(st);
	}
	int ret = rc == SQLITE_ROW || rc == SQLITE_DONE
			  ? 0
			  : sq_db_error(c, err, "upload");
	sq_reader_put(u, c);
	if (ret == 0 && name == NULL)
		ret = store_set_error(err, STORE_ERR_NOTFOUND, "No such upload");
	if (ret == 0) {
		char *path = xasprintf("%s/uploads/%s", u->dir, name);
		ret = sq_blob_map_file(path, blob_r, err);
		free(path);
	}
	free(name);
	if (ret == 0 && type_r != NULL)
		*type_r = type;
	else
		free(type);
	return ret;
}

struct touch_arg {
	int64_t id;
	time_t expires;
};

static int touch_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct touch_arg *a = job->arg;
	sqlite3_stmt *st = sq_stmt(c, "UPDATE jupload SET expires ="
				      " max(expires, ?) WHERE id = ?");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)a->expires);
	sqlite3_bind_int64(st, 2, a->id);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	(void)u;
	if (rc != SQLITE_DONE)
		return sq_job_dberr(job, c);
	return sqlite3_changes(c->db) > 0
		       ? 0
		       : sq_job_fail(job, STORE_ERR_NOTFOUND, "No such upload");
}

int sq_upload_touch(struct store_user *user, int64_t id, time_t expires,
		    struct store_error *err)
{
	struct touch_arg a = {id, expires};
	return sq_run(SQU(user), touch_job, &a, err);
}

/* ---- threads ---------------------------------------------------------- */

int64_t sq_jmap_thread_pick(struct sq_conn *c, const int64_t *threads,
			    size_t count)
{
	int64_t best = threads[0], best_n = -1;
	for (size_t i = 0; i < count; i++) {
		sqlite3_stmt *st = sq_stmt(c, "SELECT count(*) FROM blob"
					      " WHERE thread = ?");
		if (st == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, threads[i]);
		int64_t n = sqlite3_step(st) == SQLITE_ROW
				    ? sqlite3_column_int64(st, 0) : 0;
		sqlite3_reset(st);
		if (n > best_n || (n == best_n && threads[i] < best)) {
			best = threads[i];
			best_n = n;
		}
	}
	return best;
}

/* "INSERT INTO blob (name, thread, <every other column>) SELECT ?, ?,
 * <them> FROM blob WHERE id = ?": built once from the table itself, so a
 * column added later is copied too. */
static const char *blob_copy_sql(struct sq_conn *c)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static char *sql;
	pthread_mutex_lock(&mu);
	if (sql == NULL) {
		struct buf cols;
		buf_init(&cols, 0);
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(c->db, "PRAGMA table_info(blob)", -1, &st,
				       NULL) == SQLITE_OK) {
			while (sqlite3_step(st) == SQLITE_ROW) {
				const char *n = (const char *)sqlite3_column_text(st, 1);
				if (strcmp(n, "id") == 0 || strcmp(n, "name") == 0 ||
				    strcmp(n, "thread") == 0)
					continue;
				buf_printf(&cols, ", \"%s\"", n);
			}
			sqlite3_finalize(st);
		}
		buf_append(&cols, "", 0);
		sql = xasprintf("INSERT INTO blob (name, thread%s) SELECT ?, ?%s"
				" FROM blob WHERE id = ?", cols.data, cols.data);
		buf_free(&cols);
	}
	pthread_mutex_unlock(&mu);
	return sql;
}

/* A new name for a blob's file: a link of the old one, durable. */
static int link_blob(struct sq_user *u, struct sq_job *job, const char *old,
		     char nn[33])
{
	sq_random_hex(nn, 16);
	char *from = sq_blob_path(u, old), *to = sq_blob_path(u, nn);
	char *dir = xasprintf("%s/blobs/%.2s", u->dir, nn);
	int r = link(from, to);
	if (r < 0 && errno == ENOENT) {
		char *blobs = xasprintf("%s/blobs", u->dir);
		if ((mkdir(blobs, 0700) == 0 || errno == EEXIST) &&
		    (mkdir(dir, 0700) == 0 || errno == EEXIST))
			r = link(from, to);
		free(blobs);
	}
	if (r == 0) {
		sq_job_link(u, job, nn);
		if (u->fsync && sq_dirsync(SQS(u->user->store), dir) < 0)
			r = -1;
	}
	if (r < 0)
		log_error("store", NULL, "link %s: %m", to);
	free(from);
	free(to);
	free(dir);
	return r < 0 ? sq_job_fail(job, STORE_ERR_TEMP,
				   "Cannot store the message now")
		     : 0;
}

/* One message of the thread that goes: its copy under a new blob id. */
static int move_blob(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		     int64_t blob, const char *name, int kind, int64_t into)
{
	char nn[33];
	if (kind == SQ_BODY_FILE && link_blob(u, job, name, nn) < 0)
		return -1;
	if (kind != SQ_BODY_FILE)
		sq_random_hex(nn, 16);
	sqlite3_stmt *st = sq_stmt(c, blob_copy_sql(c));
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_text(st, 1, nn, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, into);
	sqlite3_bind_int64(st, 3, blob);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_job_dberr(job, c);
	int64_t nb = sqlite3_last_insert_rowid(c->db);
	static const char *const copies_sql[] = {
		"INSERT INTO body SELECT ?1, data FROM body WHERE id = ?2",
		"INSERT INTO text SELECT ?1, hdr, body FROM text WHERE id = ?2",
	};
	for (int i = kind == SQ_BODY_FILE ? 1 : 0; i < 2; i++) {
		st = sq_stmt(c, copies_sql[i]);
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, nb);
		sqlite3_bind_int64(st, 2, blob);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
	}
	/* every copy: a new UID on the new blob, the old one expunged */
	struct copies cs = {0};
	if (copies_get(c, blob, &cs) < 0)
		return sq_job_dberr(job, c);
	int ret = 0;
	struct sq_msgrow *rows = xcalloc(cs.n ? cs.n : 1, sizeof(*rows));
	uint32_t *uids = xcalloc(cs.n ? cs.n : 1, sizeof(uint32_t));
	for (size_t i = 0; i < cs.n && ret == 0;) {
		size_t n = 0, k = i;
		for (; k < cs.n && cs.v[k].mailbox == cs.v[i].mailbox; k++)
			rows[n++] = cs.v[k].row;
		for (size_t x = 0; x < n; x++)
			rows[x].blob = nb;
		ret = sq_copy_rows(u, c, job, cs.v[i].mailbox, rows, n,
				   time(NULL), uids);
		for (size_t x = 0; x < n; x++)
			rows[x].blob = blob;
		if (ret == 0)
			ret = sq_expunge_rows(u, c, job, cs.v[i].mailbox, rows,
					      n, true);
		i = k;
	}
	free(rows);
	free(uids);
	copies_free(&cs);
	return ret;
}

int sq_jmap_thread_merge(struct sq_user *u, struct sq_conn *c,
			 struct sq_job *job, int64_t into, int64_t from)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT id, name, kind FROM blob"
				      " WHERE thread = ? ORDER BY id");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, from);
	struct mv {
		int64_t id;
		char *name;
		int kind;
	} *v = NULL;
	size_t n = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n].id = sqlite3_column_int64(st, 0);
		v[n].name = xstrdup((const char *)sqlite3_column_text(st, 1));
		v[n].kind = sqlite3_column_int(st, 2);
		n++;
	}
	sqlite3_reset(st);
	int ret = rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = move_blob(u, c, job, v[i].id, v[i].name, v[i].kind, into);
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	if (ret < 0)
		return -1;
	st = sq_stmt(c, "UPDATE thread_ref SET thread = ? WHERE thread = ?");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, into);
	sqlite3_bind_int64(st, 2, from);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_job_dberr(job, c);
	log_info("store", NULL, "user %lld: thread %lld joined thread %lld"
		 " (%zu messages moved)", (long long)u->user->id,
		 (long long)from, (long long)into, n);
	return 0;
}
