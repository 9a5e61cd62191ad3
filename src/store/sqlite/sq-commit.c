/*
 * Group commit. Every change of a user is a job queued on the user's one
 * writer connection. The first thread to find no leader becomes the
 * leader: it takes the whole queue, runs each job under its own savepoint
 * in one transaction, and commits once (one WAL fsync for the batch).
 * Followers sleep until the leader marks their job done; a thread whose
 * job missed a batch leads the next one. A success is returned only after
 * the COMMIT that contains the job (DESIGN.md, durability contract).
 *
 * The account row (change counter, quota usage) is read at the start of
 * every batch, so another process (loftctl) writing the same index is
 * seen; SQLite's lock serialises the two.
 */
#include "sq-private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"

uint64_t sq_job_modseq(struct sq_user *u, struct sq_job *job)
{
	if (job->modseq == 0) {
		job->modseq = ++u->tx_modseq;
		u->tx_dirty = true;
	}
	return job->modseq;
}

void sq_job_change(struct sq_job *job, uint32_t mailbox_id,
		   enum store_change_kind kind)
{
	for (size_t i = 0; i < job->change_count; i++) {
		if (job->changes[i].mailbox_id == mailbox_id &&
		    job->changes[i].kind == kind)
			return;
	}
	job->changes = xrealloc(job->changes, (job->change_count + 1) *
						      sizeof(*job->changes));
	struct store_change *ch = &job->changes[job->change_count++];
	ch->user_id = 0;
	ch->mailbox_id = mailbox_id;
	ch->kind = kind;
	ch->modseq = job->modseq;
}

void sq_job_unlink(struct sq_job *job, const char *blob_name)
{
	job->unlink = xrealloc(job->unlink,
			       (job->unlink_count + 1) * sizeof(char *));
	job->unlink[job->unlink_count++] = xstrdup(blob_name);
}

int sq_job_fail(struct sq_job *job, enum store_error_kind kind,
		const char *fmt, ...)
{
	va_list ap;
	job->err.kind = kind;
	job->err.full = false;
	va_start(ap, fmt);
	vsnprintf(job->err.msg, sizeof(job->err.msg), fmt, ap);
	va_end(ap);
	return -1;
}

int sq_job_dberr(struct sq_job *job, struct sq_conn *c)
{
	return sq_db_error(c, &job->err, "write");
}

void sq_job_link(struct sq_user *u, struct sq_job *job, const char *blob_name)
{
	sq_inflight_add(SQS(u->user->store), blob_name);
	job->links = xrealloc(job->links,
			      (job->link_count + 1) * sizeof(char *));
	job->links[job->link_count++] = xstrdup(blob_name);
}

/* After the commit (or the failure) of a job that linked files in. */
static void links_done(struct sq_user *u, struct sq_job *job, bool committed)
{
	for (size_t i = 0; i < job->link_count; i++) {
		if (!committed) {
			char *path = sq_blob_path(u, job->links[i]);
			unlink(path);
			free(path);
		}
		sq_inflight_del(SQS(u->user->store), job->links[i]);
		free(job->links[i]);
	}
	free(job->links);
	job->links = NULL;
	job->link_count = 0;
}

static void job_forget_effects(struct sq_job *job)
{
	for (size_t i = 0; i < job->unlink_count; i++)
		free(job->unlink[i]);
	free(job->unlink);
	job->unlink = NULL;
	job->unlink_count = 0;
	free(job->changes);
	job->changes = NULL;
	job->change_count = 0;
}

static int tx_load(struct sq_user *u, struct sq_conn *c)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT modseq, usage_bytes,"
				      " usage_messages, last_uidvalidity, fts_upto,"
				      " fts_stale FROM account");
	if (st == NULL || sqlite3_step(st) != SQLITE_ROW)
		return -1;
	u->tx_modseq = (uint64_t)sqlite3_column_int64(st, 0);
	u->tx_bytes = (uint64_t)sqlite3_column_int64(st, 1);
	u->tx_messages = (uint64_t)sqlite3_column_int64(st, 2);
	u->tx_last_uidvalidity = (uint32_t)sqlite3_column_int64(st, 3);
	u->tx_fts_upto = sqlite3_column_int64(st, 4);
	u->tx_fts_stale = sqlite3_column_int64(st, 5);
	u->tx_dirty = false;
	sqlite3_reset(st);
	return 0;
}

static int tx_save(struct sq_user *u, struct sq_conn *c)
{
	if (!u->tx_dirty)
		return 0;
	sqlite3_stmt *st = sq_stmt(c, "UPDATE account SET modseq = ?,"
				      " usage_bytes = ?, usage_messages = ?,"
				      " last_uidvalidity = ?, fts_upto = ?,"
				      " fts_stale = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)u->tx_modseq);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)u->tx_bytes);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)u->tx_messages);
	sqlite3_bind_int64(st, 4, u->tx_last_uidvalidity);
	sqlite3_bind_int64(st, 5, u->tx_fts_upto);
	sqlite3_bind_int64(st, 6, u->tx_fts_stale);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void batch_fail(struct sq_job *batch, struct sq_conn *c,
		       const char *what)
{
	struct store_error e;
	sq_db_error(c, &e, what);
	for (struct sq_job *j = batch; j != NULL; j = j->next) {
		if (j->ret == 0) {
			j->ret = -1;
			j->err = e;
		}
		job_forget_effects(j);
	}
}

/* Runs one job under a savepoint: its failure undoes only its work. */
static void run_one(struct sq_user *u, struct sq_conn *c, struct sq_job *j)
{
	uint64_t modseq = u->tx_modseq, bytes = u->tx_bytes,
		 messages = u->tx_messages;
	uint32_t last_uv = u->tx_last_uidvalidity;
	int64_t fts_upto = u->tx_fts_upto, fts_stale = u->tx_fts_stale;
	bool dirty = u->tx_dirty;
	if (sq_exec(c, "SAVEPOINT job") < 0) {
		j->ret = sq_job_dberr(j, c);
		return;
	}
	j->ret = j->fn(u, c, j);
	if (j->ret < 0) {
		sq_exec(c, "ROLLBACK TO job");
		u->tx_modseq = modseq;
		u->tx_bytes = bytes;
		u->tx_messages = messages;
		u->tx_last_uidvalidity = last_uv;
		u->tx_fts_upto = fts_upto;
		u->tx_fts_stale = fts_stale;
		u->tx_dirty = dirty;
		job_forget_effects(j);
	}
	sq_exec(c, "RELEASE job");
}

static void run_batch_tx(struct sq_user *u, struct sq_job *batch)
{
	/* the idle trim closes an idle account's writer: the next batch
	 * opens it again */
	struct store_error open_err;
	if (sq_writer_open(u, &open_err) < 0) {
		for (struct sq_job *j = batch; j != NULL; j = j->next) {
			j->ret = -1;
			j->err = open_err;
			job_forget_effects(j);
		}
		return;
	}
	struct sq_conn *c = u->writer;
	uint64_t start_ns = metrics_now_ns();
	if (sq_exec(c, "BEGIN IMMEDIATE") < 0) {
		batch_fail(batch, c, "begin");
		return;
	}
	if (tx_load(u, c) < 0 || sq_recent_flush(u, c) < 0 ||
	    sq_pop3_marks_flush(u, c) < 0) {
		batch_fail(batch, c, "account");
		sq_exec(c, "ROLLBACK");
		return;
	}
	for (struct sq_job *j = batch; j != NULL; j = j->next)
		run_one(u, c, j);
	if (tx_save(u, c) < 0) {
		batch_fail(batch, c, "account");
		sq_exec(c, "ROLLBACK");
		return;
	}
	/* the batch's WAL frames in one write (sq-wal.c) */
	sq_wal_gather_begin();
	int committed = sq_exec(c, "COMMIT");
	if (sq_wal_gather_end(committed == 0) != SQLITE_OK)
		committed = -1;
	if (committed < 0) {
		batch_fail(batch, c, "commit");
		sq_exec(c, "ROLLBACK");
		return;
	}
	metrics_observe_since(metrics_histogram("loft_store_commit_seconds",
		"Store transactions (a group commit) from BEGIN to a durable "
		"COMMIT.", NULL, NULL, 0), start_ns);
	/* Before anyone is woken: a session that hears of the change must
	 * find it when it looks. */
	uint64_t prev = atomic_load(&u->user->last_modseq);
	while (prev < u->tx_modseq &&
	       !atomic_compare_exchange_weak(&u->user->last_modseq, &prev,
					     u->tx_modseq))
		;
}

/* The batch's transaction, counted as under way from before its first
 * write until after last_modseq moved (store-private.h). */
static void run_batch(struct sq_user *u, struct sq_job *batch)
{
	atomic_fetch_add(&u->user->commits_in_flight, 1);
	run_batch_tx(u, batch);
	atomic_fetch_sub(&u->user->commits_in_flight, 1);
}

/* After the commit, on the job owner's thread: free what the job freed
 * and tell the subscribers. */
static void job_finish(struct sq_user *u, struct sq_job *job)
{
	for (size_t i = 0; i < job->unlink_count; i++)
		sq_unlink_deferred(u, job->unlink[i]);
	for (size_t i = 0; i < job->change_count; i++) {
		job->changes[i].user_id = u->user->id;
		job->changes[i].modseq = job->modseq;
		store_publish(u->user->store, &job->changes[i]);
	}
	job_forget_effects(job);
}

void sq_writer_hold(struct sq_user *u)
{
	sq_touch(u);
	pthread_mutex_lock(&u->mu);
	while (u->leader)
		pthread_cond_wait(&u->cond, &u->mu);
	u->leader = true;
	pthread_mutex_unlock(&u->mu);
}

void sq_writer_release(struct sq_user *u)
{
	pthread_mutex_lock(&u->mu);
	u->leader = false;
	/* a job queued meanwhile waits as a follower: one of them leads */
	pthread_cond_broadcast(&u->cond);
	pthread_mutex_unlock(&u->mu);
}

void sq_run_jobs(struct sq_user *u, struct sq_job *jobs, size_t count)
{
	if (count == 0)
		return;
	sq_touch(u);

	pthread_mutex_lock(&u->mu);
	/* queued together, so one leader takes them all: one commit */
	for (size_t i = 0; i < count; i++) {
		jobs[i].next = NULL;
		jobs[i].done = false;
		*u->queue_tail = &jobs[i];
		u->queue_tail = &jobs[i].next;
	}
	while (!jobs[count - 1].done) {
		if (u->leader) {
			pthread_cond_wait(&u->cond, &u->mu);
			continue;
		}
		u->leader = true;
		struct sq_job *batch = u->queue;
		u->queue = NULL;
		u->queue_tail = &u->queue;
		pthread_mutex_unlock(&u->mu);

		run_batch(u, batch);

		pthread_mutex_lock(&u->mu);
		for (struct sq_job *j = batch, *next; j != NULL; j = next) {
			next = j->next;
			j->done = true;
		}
		u->leader = false;
		pthread_cond_broadcast(&u->cond);
	}
	pthread_mutex_unlock(&u->mu);

	for (size_t i = 0; i < count; i++) {
		links_done(u, &jobs[i], jobs[i].ret == 0);
		if (jobs[i].ret >= 0)
			job_finish(u, &jobs[i]);
	}
}

int sq_run(struct sq_user *u, sq_job_fn *fn, void *arg,
	   struct store_error *err)
{
	struct sq_job job;
	memset(&job, 0, sizeof(job));
	job.fn = fn;
	job.arg = arg;
	sq_run_jobs(u, &job, 1);
	if (job.ret < 0) {
		if (err != NULL)
			*err = job.err;
		return -1;
	}
	return job.ret;
}
