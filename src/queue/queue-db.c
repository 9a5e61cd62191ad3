/*
 * The embedded queue backend: SQLite (WAL, synchronous = FULL) in
 * data_dir/queue/queue.db. One row per message (envelope, DKIM prefix)
 * and one per recipient (state, attempts, next attempt, lease, last
 * reply). Claims read due recipients through the (state, next_attempt)
 * index a bounded number at a time, so 100,000 queued messages cost a
 * database file, not memory. loftctl opens the same file (SQLite's locks
 * keep both consistent); the runner notices its changes through
 * PRAGMA data_version.
 */
#include "queue-private.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

struct qdb {
	sqlite3 *db;
	pthread_mutex_t mu;       /* one connection, one caller at a time */
	int64_t data_version;
	bool fsync;               /* synchronous = FULL */
	sqlite3_stmt *exists;     /* db_exists, prepared once */
	/* group commit (see group_commit) */
	pthread_mutex_t gmu;
	pthread_cond_t gdone;
	struct gc_req *pending, **gtail;
	bool leading;
};

#define LEASE_NONE 0
/* A held message's recipients wait for release at this time. */
#define HELD_UNTIL ((int64_t)1 << 60)

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS msgs ("
	" id INTEGER PRIMARY KEY, qid TEXT NOT NULL UNIQUE,"
	" sender TEXT NOT NULL, envid TEXT, ret INTEGER NOT NULL,"
	" flags INTEGER NOT NULL, user_id INTEGER NOT NULL,"
	" size INTEGER NOT NULL, created INTEGER NOT NULL,"
	" held INTEGER NOT NULL DEFAULT 0, warned INTEGER NOT NULL DEFAULT 0,"
	" prefix TEXT);"
	"CREATE TABLE IF NOT EXISTS rcpts ("
	" id INTEGER PRIMARY KEY, msg INTEGER NOT NULL,"
	" address TEXT NOT NULL, dest TEXT NOT NULL,"
	" local INTEGER NOT NULL DEFAULT 0, orcpt TEXT,"
	" notify INTEGER NOT NULL DEFAULT 0, state INTEGER NOT NULL DEFAULT 0,"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" next_attempt INTEGER NOT NULL DEFAULT 0,"
	" lease_until INTEGER NOT NULL DEFAULT 0,"
	" code INTEGER NOT NULL DEFAULT 0, last_error TEXT, remote TEXT);"
	"CREATE INDEX IF NOT EXISTS rcpts_due ON rcpts(state, next_attempt);"
	"CREATE INDEX IF NOT EXISTS rcpts_msg ON rcpts(msg);"
	/* hourly submission counters: one row per user and minute */
	"CREATE TABLE IF NOT EXISTS rates ("
	" user_id INTEGER NOT NULL, minute INTEGER NOT NULL,"
	" messages INTEGER NOT NULL, rcpts INTEGER NOT NULL,"
	" PRIMARY KEY (user_id, minute)) WITHOUT ROWID;"
	/* MTA-STS policies (RFC 8461 5.1), until they expire */
	"CREATE TABLE IF NOT EXISTS mta_sts ("
	" domain TEXT PRIMARY KEY, id TEXT NOT NULL, policy TEXT NOT NULL,"
	" expires INTEGER NOT NULL);";

static struct qdb *qdb(struct queue *q)
{
	return q->be_ctx;
}

/* "Insufficient system storage" (452 4.3.1) only for a full disk; a
 * busy database or an I/O error is a temporary local error (451 4.3.0). */
static void set_db_error(struct queue_error *err, int code)
{
	code &= 0xff;
	if (code == SQLITE_FULL)
		queue_set_errno(err, ENOSPC);
	else if (code == SQLITE_IOERR || code == SQLITE_BUSY ||
		 code == SQLITE_LOCKED)
		queue_set_errno(err, EIO);
	else
		queue_set_error(err, QUEUE_ERR_INTERNAL, "Internal queue error");
}

static int db_error(struct qdb *d, struct queue_error *err, const char *what)
{
	log_error("queue", NULL, "%s: %s", what, sqlite3_errmsg(d->db));
	set_db_error(err, sqlite3_errcode(d->db));
	return -1;
}

static int exec(struct qdb *d, const char *sql)
{
	return sqlite3_exec(d->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* The runner's own bookkeeping (claims, outcomes, deferrals) commits
 * without an fsync (synchronous = NORMAL: the WAL is synced by the next
 * enqueue's commit or a checkpoint). A process killed at any instant
 * loses nothing committed; a power loss may lose the last outcomes, so a
 * delivered message is sent again (at least once, as the contract says)
 * and a claim is lost (leases are released at start anyway). Enqueue and
 * admin commits keep their fsync. Under d->mu, outside a transaction. */
static void light(struct qdb *d, bool on)
{
	if (d->fsync)
		exec(d, on ? "PRAGMA synchronous = NORMAL"
			   : "PRAGMA synchronous = FULL");
}

/* Group commit: the enqueues and the outcomes of every thread that
 * arrives while one commit is being synced go into the next transaction
 * together (each in its own savepoint, so one failing leaves the others),
 * so N threads cost about two fsyncs of waiting each, not N (the lock
 * convoy on queue.db that made the 250-to-remote latency ten times
 * Postfix's). A body returns 0, or -1 right after the failing SQLite
 * call; its results count only when group_commit returns 0. */
struct gc_req {
	struct gc_req *next;
	int (*body)(struct qdb *d, void *arg);
	void *arg;
	int rc;
	bool done;
	int errcode;
	char errmsg[200];
};

static void gc_fail(struct qdb *d, struct gc_req *r)
{
	r->rc = -1;
	if (r->errcode == 0) {
		r->errcode = sqlite3_errcode(d->db);
		snprintf(r->errmsg, sizeof(r->errmsg), "%s",
			 sqlite3_errmsg(d->db));
	}
}

static void gc_run(struct qdb *d, struct gc_req *batch)
{
	struct gc_req *r;

	pthread_mutex_lock(&d->mu);
	if (exec(d, "BEGIN IMMEDIATE") < 0) {
		for (r = batch; r != NULL; r = r->next)
			gc_fail(d, r);
		goto out;
	}
	for (r = batch; r != NULL; r = r->next) {
		exec(d, "SAVEPOINT gc");
		r->rc = r->body(d, r->arg);
		if (r->rc < 0) {
			gc_fail(d, r);
			if (sqlite3_get_autocommit(d->db)) {
				/* SQLite rolled the whole transaction back
				 * (disk full, I/O error): nothing of the batch
				 * is written, and nothing more may run
				 * outside a transaction */
				for (struct gc_req *o = batch; o != NULL;
				     o = o->next) {
					if (o != r)
						o->errcode = r->errcode;
					snprintf(o->errmsg, sizeof(o->errmsg),
						 "%s", r->errmsg);
					o->rc = -1;
				}
				goto out;
			}
			exec(d, "ROLLBACK TO gc");
		}
		exec(d, "RELEASE gc");
	}
	if (exec(d, "COMMIT") < 0) {
		for (r = batch; r != NULL; r = r->next)
			gc_fail(d, r);
		exec(d, "ROLLBACK");
	}
out:
	pthread_mutex_unlock(&d->mu);
}

static int group_commit(struct qdb *d, int (*body)(struct qdb *, void *),
			void *arg, const char *what, struct queue_error *err)
{
	struct gc_req req = {.body = body, .arg = arg};

	pthread_mutex_lock(&d->gmu);
	*d->gtail = &req;
	d->gtail = &req.next;
	while (!req.done) {
		struct gc_req *batch, *r, *next;
		if (d->leading) {
			pthread_cond_wait(&d->gdone, &d->gmu);
			continue;
		}
		/* lead: take everything waiting (ours among it) */
		d->leading = true;
		batch = d->pending;
		d->pending = NULL;
		d->gtail = &d->pending;
		pthread_mutex_unlock(&d->gmu);
		gc_run(d, batch);
		pthread_mutex_lock(&d->gmu);
		d->leading = false;
		for (r = batch; r != NULL; r = next) {
			next = r->next;
			r->done = true;
		}
		pthread_cond_broadcast(&d->gdone);
	}
	pthread_mutex_unlock(&d->gmu);
	if (req.rc < 0) {
		log_error("queue", NULL, "%s: %s", what, req.errmsg);
		set_db_error(err, req.errcode);
	}
	return req.rc;
}

static sqlite3_stmt *prepare(struct qdb *d, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_error("queue", NULL, "prepare %s: %s", sql,
			  sqlite3_errmsg(d->db));
		return NULL;
	}
	return st;
}

static char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t != NULL ? xstrdup((const char *)t) : NULL;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s != NULL)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static int db_open(struct queue *q, struct queue_error *err)
{
	struct qdb *d = xcalloc(1, sizeof(*d));
	char *path = xasprintf("%s/queue.db", q->dir);
	int rc = sqlite3_open_v2(path, &d->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
					 SQLITE_OPEN_NOMUTEX, NULL);

	free(path);
	pthread_mutex_init(&d->mu, NULL);
	pthread_mutex_init(&d->gmu, NULL);
	pthread_cond_init(&d->gdone, NULL);
	d->gtail = &d->pending;
	d->fsync = q->set.fsync;
	q->be_ctx = d;
	if (rc != SQLITE_OK) {
		queue_set_error(err, QUEUE_ERR_INTERNAL,
				"cannot open the queue database: %s",
				d->db ? sqlite3_errmsg(d->db) : "out of memory");
		return -1;
	}
	sqlite3_busy_timeout(d->db, 10000);
	/* A small page cache: the runner reads a bounded number of rows at
	 * a time through indexes, and the file stays in the kernel's page
	 * cache anyway. SQLite's default (2 MB) filled up with a big queue
	 * (a start's lease release scans every recipient) and stayed: with
	 * 100,000 queued that was 2.0 of the queue's 2.2 MB of heap (valgrind
	 * massif), where Postfix's qmgr holds 0.3 MB. */
	exec(d, "PRAGMA cache_size = -256");
	if (exec(d, q->set.fsync ? "PRAGMA journal_mode = WAL;"
				   "PRAGMA synchronous = FULL;"
				 : "PRAGMA journal_mode = WAL;"
				   "PRAGMA synchronous = OFF;") < 0 ||
	    exec(d, schema) < 0) {
		queue_set_error(err, QUEUE_ERR_INTERNAL,
				"cannot set up the queue database: %s",
				sqlite3_errmsg(d->db));
		return -1;
	}
	return 0;
}

static void db_close(struct queue *q)
{
	struct qdb *d = qdb(q);

	if (d == NULL)
		return;
	sqlite3_finalize(d->exists);
	if (d->db != NULL)
		sqlite3_close_v2(d->db);
	pthread_mutex_destroy(&d->mu);
	pthread_mutex_destroy(&d->gmu);
	pthread_cond_destroy(&d->gdone);
	free(d);
	q->be_ctx = NULL;
}

/* ---- insert ------------------------------------------------------- */

static int insert_rcpts(struct qdb *d, int64_t msg, const struct qmsg_new *m)
{
	const struct queue_envelope *env = m->env;
	sqlite3_stmt *st = prepare(d,
		"INSERT INTO rcpts (msg, address, dest, local, orcpt, notify,"
		" next_attempt, code, last_error, lease_until)"
		" VALUES (?,?,?,?,?,?,?,?,?,?)");
	int rc = 0;

	if (st == NULL)
		return -1;
	for (size_t i = 0; i < env->rcpt_count && rc == 0; i++) {
		const struct queue_rcpt_result *r = &m->results[i];
		if (!m->queued[i])
			continue;
		sqlite3_bind_int64(st, 1, msg);
		sqlite3_bind_text(st, 2, env->rcpts[i].address, -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(st, 3, m->domains[i], -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, m->local[i]);
		bind_text_or_null(st, 5, env->rcpts[i].orcpt);
		sqlite3_bind_int(st, 6, (int)env->rcpts[i].notify);
		/* A local retry waits a little; remote mail goes now. */
		sqlite3_bind_int64(st, 7, m->local[i] ? m->created + 60 : 0);
		sqlite3_bind_int(st, 8, r->code);
		bind_text_or_null(st, 9, r->code != 0 ? r->text : NULL);
		sqlite3_bind_int64(st, 10, m->local[i] ? 0 : m->lease_until);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = -1;
		else if (m->rows_r != NULL)
			m->rows_r[i] = sqlite3_last_insert_rowid(d->db);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	return rc;
}

/* Counts one submission of user_id with rcpts recipients in minute,
 * and forgets the user's minutes older than an hour. */
static int rate_count(struct qdb *d, int64_t user_id, int64_t minute,
		      unsigned rcpts)
{
	sqlite3_stmt *st = prepare(d,
		"INSERT INTO rates (user_id, minute, messages, rcpts)"
		" VALUES (?1, ?2, 1, ?3) ON CONFLICT (user_id, minute) DO UPDATE"
		" SET messages = messages + 1, rcpts = rcpts + ?3");
	int rc = -1;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, user_id);
	sqlite3_bind_int64(st, 2, minute);
	sqlite3_bind_int64(st, 3, rcpts);
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
	sqlite3_finalize(st);
	if (rc < 0)
		return -1;
	st = prepare(d, "DELETE FROM rates WHERE user_id = ? AND minute <= ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, user_id);
	sqlite3_bind_int64(st, 2, minute - 60);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	sqlite3_finalize(st);
	return rc;
}

static void db_rate_add(struct queue *q, int64_t user_id, int64_t minute,
			unsigned rcpts)
{
	struct qdb *d = qdb(q);

	pthread_mutex_lock(&d->mu);
	/* no fsync of its own: losing a count to a power loss is harmless */
	light(d, true);
	if (exec(d, "BEGIN IMMEDIATE") == 0) {
		if (rate_count(d, user_id, minute, rcpts) == 0 &&
		    exec(d, "COMMIT") == 0) {
			light(d, false);
			pthread_mutex_unlock(&d->mu);
			return;
		}
		exec(d, "ROLLBACK");
	}
	log_warn("queue", NULL, "counting a submission: %s",
		 sqlite3_errmsg(d->db));
	light(d, false);
	pthread_mutex_unlock(&d->mu);
}

static int db_rates_load(struct queue *q, int64_t since,
			 void (*fn)(void *ctx, int64_t user_id, int64_t minute,
				    unsigned messages, unsigned rcpts),
			 void *ctx)
{
	struct qdb *d = qdb(q);
	sqlite3_stmt *st;
	int rc = -1;

	pthread_mutex_lock(&d->mu);
	st = prepare(d, "SELECT user_id, minute, messages, rcpts FROM rates"
			" WHERE minute > ?");
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, since);
		while (sqlite3_step(st) == SQLITE_ROW)
			fn(ctx, sqlite3_column_int64(st, 0),
			   sqlite3_column_int64(st, 1),
			   (unsigned)sqlite3_column_int64(st, 2),
			   (unsigned)sqlite3_column_int64(st, 3));
		sqlite3_finalize(st);
		rc = 0;
	}
	pthread_mutex_unlock(&d->mu);
	return rc;
}

static int insert_body(struct qdb *d, void *arg)
{
	const struct qmsg_new *m = arg;
	const struct queue_envelope *env = m->env;
	sqlite3_stmt *st = prepare(d,
		"INSERT INTO msgs (qid, sender, envid, ret, flags,"
		" user_id, size, created, prefix) VALUES (?,?,?,?,?,?,?,?,?)");
	int64_t row;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, m->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, env->sender, -1, SQLITE_STATIC);
	bind_text_or_null(st, 3, env->envid);
	sqlite3_bind_int(st, 4, (int)env->ret);
	sqlite3_bind_int(st, 5, (int)env->flags);
	sqlite3_bind_int64(st, 6, env->user_id);
	sqlite3_bind_int64(st, 7, (int64_t)m->size);
	sqlite3_bind_int64(st, 8, m->created);
	bind_text_or_null(st, 9, m->prefix);
	if (sqlite3_step(st) != SQLITE_DONE) {
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	row = sqlite3_last_insert_rowid(d->db);
	if (m->msg_row_r != NULL)
		*m->msg_row_r = row;
	if ((env->flags & QUEUE_F_SUBMISSION) && env->user_id != 0 &&
	    rate_count(d, env->user_id, m->created / 60,
		       (unsigned)env->rcpt_count) < 0)
		return -1;
	return insert_rcpts(d, row, m);
}

static int db_insert(struct queue *q, const struct qmsg_new *m,
		     struct queue_error *err)
{
	return group_commit(qdb(q), insert_body, (void *)m, "queue insert",
			    err);
}

/* ---- delivery ----------------------------------------------------- */

static int db_release_leases(struct queue *q, struct queue_error *err)
{
	struct qdb *d = qdb(q);
	int rc;

	pthread_mutex_lock(&d->mu);
	rc = exec(d, "UPDATE rcpts SET lease_until = 0 WHERE lease_until != 0");
	if (rc < 0)
		db_error(d, err, "releasing leases");
	pthread_mutex_unlock(&d->mu);
	return rc;
}

/* The message's part of a job. */
static int load_msg(struct qdb *d, struct qjob *job)
{
	sqlite3_stmt *st = prepare(d,
		"SELECT qid, sender, envid, ret, flags, user_id, size, created,"
		" warned, prefix FROM msgs WHERE id = ?");
	int rc = -1;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, job->msg_row);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(job->id, sizeof(job->id), "%s",
			 (const char *)sqlite3_column_text(st, 0));
		job->sender = col_text(st, 1);
		job->envid = col_text(st, 2);
		job->ret = (enum queue_ret)sqlite3_column_int(st, 3);
		job->flags = (unsigned)sqlite3_column_int(st, 4);
		job->user_id = sqlite3_column_int64(st, 5);
		job->size = (uint64_t)sqlite3_column_int64(st, 6);
		job->created = (time_t)sqlite3_column_int64(st, 7);
		job->warned = sqlite3_column_int(st, 8) != 0;
		job->prefix = col_text(st, 9);
		if (job->sender == NULL)
			job->sender = xstrdup("");
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Leases every due recipient of the job's message and destination. */
static int load_rcpts(struct qdb *d, struct qjob *job, time_t now,
		      unsigned lease)
{
	sqlite3_stmt *st = prepare(d,
		"UPDATE rcpts SET lease_until = ?1 WHERE msg = ?2 AND dest = ?3"
		" AND local = ?4 AND state = 0 AND next_attempt <= ?5"
		" AND lease_until <= ?5"
		" RETURNING id, address, orcpt, notify, attempts");
	size_t cap = 0;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (int64_t)now + lease);
	sqlite3_bind_int64(st, 2, job->msg_row);
	sqlite3_bind_text(st, 3, job->dest, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, job->local);
	sqlite3_bind_int64(st, 5, now);
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct qjob_rcpt *r;
		if (job->rcpt_count == cap) {
			cap = cap ? cap * 2 : 4;
			job->rcpts = xrealloc(job->rcpts, cap * sizeof(*r));
		}
		r = &job->rcpts[job->rcpt_count++];
		memset(r, 0, sizeof(*r));
		r->row = sqlite3_column_int64(st, 0);
		r->address = col_text(st, 1);
		r->orcpt = col_text(st, 2);
		r->notify = (unsigned)sqlite3_column_int(st, 3);
		r->attempts = (unsigned)sqlite3_column_int(st, 4);
	}
	sqlite3_finalize(st);
	return 0;
}

static bool job_listed(const struct qjob *jobs, int64_t msg, const char *dest,
		       bool local)
{
	for (const struct qjob *j = jobs; j != NULL; j = j->next)
		if (j->msg_row == msg && j->local == local &&
		    strcmp(j->dest, dest) == 0)
			return true;
	return false;
}

static int db_claim(struct queue *q, time_t now, unsigned lease, unsigned max,
		    struct qjob **jobs_r, struct queue_error *err)
{
	struct qdb *d = qdb(q);
	struct qjob *jobs = NULL, **tail = &jobs;
	unsigned count = 0;
	sqlite3_stmt *st;
	int rc = 0;

	*jobs_r = NULL;
	pthread_mutex_lock(&d->mu);
	light(d, true);
	if (exec(d, "BEGIN IMMEDIATE") < 0) {
		rc = db_error(d, err, "queue claim");
		goto out;
	}
	/* Due recipients in the order of their next attempt, through the
	 * index, a bounded number: grouping happens here, not in SQL, so a
	 * round never aggregates the whole queue. */
	st = prepare(d, "SELECT msg, dest, local FROM rcpts"
			" WHERE state = 0 AND next_attempt <= ?1"
			" AND lease_until <= ?1 ORDER BY next_attempt LIMIT ?2");
	if (st == NULL) {
		exec(d, "ROLLBACK");
		rc = db_error(d, err, "queue claim");
		goto out;
	}
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int(st, 2, (int)(max * 8));
	while (count < max && sqlite3_step(st) == SQLITE_ROW) {
		int64_t msg = sqlite3_column_int64(st, 0);
		const char *dest = (const char *)sqlite3_column_text(st, 1);
		bool local = sqlite3_column_int(st, 2) != 0;
		struct qjob *job;

		if (job_listed(jobs, msg, dest ? dest : "", local))
			continue;
		job = xcalloc(1, sizeof(*job));
		job->msg_row = msg;
		job->dest = xstrdup(dest ? dest : "");
		job->local = local;
		*tail = job;
		tail = &job->next;
		count++;
	}
	sqlite3_finalize(st);
	for (struct qjob *j = jobs; j != NULL; j = j->next) {
		if (load_msg(d, j) < 0 || load_rcpts(d, j, now, lease) < 0) {
			exec(d, "ROLLBACK");
			rc = db_error(d, err, "queue claim");
			goto out;
		}
	}
	if (exec(d, "COMMIT") < 0) {
		exec(d, "ROLLBACK");
		rc = db_error(d, err, "queue claim");
	}
out:
	light(d, false);
	pthread_mutex_unlock(&d->mu);
	if (rc < 0) {
		while (jobs != NULL) {
			struct qjob *n = jobs->next;
			qjob_free(jobs);
			jobs = n;
		}
		return -1;
	}
	*jobs_r = jobs;
	return 0;
}

static int record_rcpt(sqlite3_stmt *st, const struct qjob *job,
		       const struct qjob_rcpt *r, time_t next_attempt)
{
	const struct queue_rcpt_result *res = &r->result;
	int state = res->status == QUEUE_RCPT_DELIVERED ? QRCPT_DELIVERED
		    : res->status == QUEUE_RCPT_FAILED  ? QRCPT_FAILED
							: QRCPT_PENDING;
	int rc;

	sqlite3_bind_int(st, 1, state);
	sqlite3_bind_int64(st, 2, state == QRCPT_PENDING ? next_attempt : 0);
	sqlite3_bind_int(st, 3, res->code);
	if (res->text[0] != '\0') {
		char *t = res->enhanced[0] != '\0'
				  ? xasprintf("%s %s", res->enhanced, res->text)
				  : xstrdup(res->text);
		sqlite3_bind_text(st, 4, t, -1, SQLITE_TRANSIENT);
		free(t);
	} else {
		sqlite3_bind_null(st, 4);
	}
	sqlite3_bind_int64(st, 5, r->row);
	bind_text_or_null(st, 6, job->remote[0] != '\0' ? job->remote : NULL);
	sqlite3_bind_int(st, 7, job->untried ? 0 : 1);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	sqlite3_reset(st);
	return rc;
}

struct record_arg {
	const struct qjob *job;
	time_t next_attempt;
	bool warned;
	bool removed;
};

static int record_body(struct qdb *d, void *arg)
{
	struct record_arg *a = arg;
	const struct qjob *job = a->job;
	sqlite3_stmt *st;
	bool more;

	a->removed = false;
	/* attempts counts tries that reached a verdict or deferral */
	st = prepare(d, "UPDATE rcpts SET state = ?1, next_attempt = ?2,"
			" code = ?3, last_error = ?4, lease_until = 0,"
			" attempts = attempts + ?7, remote = ?6 WHERE id = ?5");
	if (st == NULL)
		return -1;
	for (size_t i = 0; i < job->rcpt_count; i++) {
		if (record_rcpt(st, job, &job->rcpts[i], a->next_attempt) < 0) {
			sqlite3_finalize(st);
			return -1;
		}
	}
	sqlite3_finalize(st);
	st = prepare(d, "UPDATE msgs SET warned = ?1 WHERE id = ?2");
	if (st == NULL)
		return -1;
	sqlite3_bind_int(st, 1, a->warned);
	sqlite3_bind_int64(st, 2, job->msg_row);
	if (sqlite3_step(st) != SQLITE_DONE) {
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	st = prepare(d, "SELECT 1 FROM rcpts WHERE msg = ? AND state = 0 LIMIT 1");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, job->msg_row);
	more = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	if (!more) {
		char *sql = xasprintf("DELETE FROM rcpts WHERE msg = %lld;"
				      "DELETE FROM msgs WHERE id = %lld;",
				      (long long)job->msg_row,
				      (long long)job->msg_row);
		int ok = exec(d, sql);
		free(sql);
		if (ok < 0)
			return -1;
		a->removed = true;
	}
	return 0;
}

static int db_record(struct queue *q, const struct qjob *job,
		     time_t next_attempt, bool warned, bool *removed_r,
		     struct queue_error *err)
{
	struct record_arg a = {.job = job, .next_attempt = next_attempt,
			       .warned = warned};
	int rc = group_commit(qdb(q), record_body, &a, "queue record", err);

	*removed_r = rc == 0 && a.removed;
	return rc;
}

static int db_defer_dest(struct queue *q, const char *dest, time_t now,
			 time_t until, int code, const char *reason,
			 time_t expire_before, time_t warn_before,
			 unsigned *count_r, struct queue_error *err)
{
	struct qdb *d = qdb(q);
	sqlite3_stmt *st;
	int rc = -1;

	*count_r = 0;
	pthread_mutex_lock(&d->mu);
	light(d, true);
	/* one statement, one commit: the queue's size is not a loop of
	 * transactions (held messages wait for HELD_UNTIL, beyond until) */
	st = prepare(d, "UPDATE rcpts SET next_attempt = ?1, code = ?2,"
			" last_error = ?3 WHERE dest = ?4 AND local = 0"
			" AND state = 0 AND next_attempt < ?1"
			" AND lease_until <= ?5 AND msg IN (SELECT id FROM msgs"
			"  WHERE held = 0 AND created > ?6"
			"  AND (warned != 0 OR created > ?7))");
	if (st == NULL) {
		db_error(d, err, "queue defer");
		goto out;
	}
	sqlite3_bind_int64(st, 1, (int64_t)until);
	sqlite3_bind_int(st, 2, code);
	sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, dest, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (int64_t)now);
	sqlite3_bind_int64(st, 6, (int64_t)expire_before);
	sqlite3_bind_int64(st, 7, (int64_t)warn_before);
	if (sqlite3_step(st) == SQLITE_DONE) {
		*count_r = (unsigned)sqlite3_changes(d->db);
		rc = 0;
	} else {
		db_error(d, err, "queue defer");
	}
	sqlite3_finalize(st);
out:
	light(d, false);
	pthread_mutex_unlock(&d->mu);
	return rc;
}

static time_t db_next_due(struct queue *q)
{
	struct qdb *d = qdb(q);
	sqlite3_stmt *st;
	time_t t = 0;

	pthread_mutex_lock(&d->mu);
	/* at least 1: 0 means "nothing", and a message never tried yet
	 * has next_attempt 0 (after a restart nothing else claims it) */
	st = prepare(d, "SELECT MIN(MAX(next_attempt, lease_until, 1)) FROM"
			" (SELECT next_attempt, lease_until FROM rcpts"
			"  WHERE state = 0 AND next_attempt < ?"
			"  ORDER BY next_attempt LIMIT 256)");
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, HELD_UNTIL);
		if (sqlite3_step(st) == SQLITE_ROW &&
		    sqlite3_column_type(st, 0) != SQLITE_NULL)
			t = (time_t)sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&d->mu);
	return t;
}

static bool db_changed(struct queue *q)
{
	struct qdb *d = qdb(q);
	sqlite3_stmt *st;
	bool changed = false;

	pthread_mutex_lock(&d->mu);
	st = prepare(d, "PRAGMA data_version");
	if (st != NULL && sqlite3_step(st) == SQLITE_ROW) {
		int64_t v = sqlite3_column_int64(st, 0);
		changed = d->data_version != 0 && v != d->data_version;
		d->data_version = v;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&d->mu);
	return changed;
}

/* ---- reading and administration ------------------------------------ */

static void fill_rcpts(struct qdb *d, struct queue_message_info *info,
		       int64_t msg, bool pending_only)
{
	sqlite3_stmt *st = prepare(d,
		pending_only
			? "SELECT address, orcpt, notify, state, attempts,"
			  " next_attempt, code, last_error, remote FROM rcpts"
			  " WHERE msg = ? AND state = 0 ORDER BY id"
			: "SELECT address, orcpt, notify, state, attempts,"
			  " next_attempt, code, last_error, remote FROM rcpts"
			  " WHERE msg = ? ORDER BY id");
	size_t cap = 0;

	if (st == NULL)
		return;
	sqlite3_bind_int64(st, 1, msg);
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct queue_rcpt_info *r;
		int state = sqlite3_column_int(st, 3);
		if (info->rcpt_count == cap) {
			cap = cap ? cap * 2 : 4;
			info->rcpts = xrealloc(info->rcpts, cap * sizeof(*r));
		}
		r = &info->rcpts[info->rcpt_count++];
		memset(r, 0, sizeof(*r));
		r->address = col_text(st, 0);
		r->orcpt = col_text(st, 1);
		r->notify = (unsigned)sqlite3_column_int(st, 2);
		r->status = state == QRCPT_DELIVERED ? QUEUE_RCPT_DELIVERED
			    : state == QRCPT_FAILED  ? QUEUE_RCPT_FAILED
						     : QUEUE_RCPT_QUEUED;
		r->attempts = (unsigned)sqlite3_column_int(st, 4);
		r->next_attempt = (time_t)sqlite3_column_int64(st, 5);
		r->code = sqlite3_column_int(st, 6);
		r->last_error = col_text(st, 7);
		r->remote = col_text(st, 8);
	}
	sqlite3_finalize(st);
}

static struct queue_message_info *row_info(struct qdb *d, sqlite3_stmt *st,
					   bool pending_only)
{
	struct queue_message_info *info = xcalloc(1, sizeof(*info));

	snprintf(info->id, sizeof(info->id), "%s",
		 (const char *)sqlite3_column_text(st, 1));
	info->sender = col_text(st, 2);
	info->envid = col_text(st, 3);
	info->flags = (unsigned)sqlite3_column_int(st, 4);
	info->user_id = sqlite3_column_int64(st, 5);
	info->size = (uint64_t)sqlite3_column_int64(st, 6);
	info->created = (time_t)sqlite3_column_int64(st, 7);
	info->held = sqlite3_column_int(st, 8) != 0;
	if (info->sender == NULL)
		info->sender = xstrdup("");
	fill_rcpts(d, info, sqlite3_column_int64(st, 0), pending_only);
	return info;
}

#define MSG_COLUMNS "id, qid, sender, envid, flags, user_id, size, created, held"

static int db_get(struct queue *q, const char *id, bool pending_only,
		  struct queue_message_info **info_r, struct queue_error *err)
{
	struct qdb *d = qdb(q);
	sqlite3_stmt *st;
	int rc = -1;

	*info_r = NULL;
	pthread_mutex_lock(&d->mu);
	st = prepare(d, "SELECT " MSG_COLUMNS " FROM msgs WHERE qid = ?");
	if (st == NULL) {
		db_error(d, err, "queue get");
	} else {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			*info_r = row_info(d, st, pending_only);
			rc = 0;
		} else {
			queue_set_error(err, QUEUE_ERR_NOTFOUND,
					"%s is not queued", id);
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&d->mu);
	return rc;
}

static int db_list(struct queue *q, queue_list_fn *fn, void *ctx,
		   struct queue_error *err)
{
	struct qdb *d = qdb(q);
	sqlite3_stmt *st;
	bool go = true;

	pthread_mutex_lock(&d->mu);
	st = prepare(d, "SELECT " MSG_COLUMNS " FROM msgs WHERE EXISTS"
			" (SELECT 1 FROM rcpts WHERE msg = msgs.id AND state = 0)"
			" ORDER BY id");
	if (st == NULL) {
		pthread_mutex_unlock(&d->mu);
		return db_error(d, err, "queue list");
	}
	while (go && sqlite3_step(st) == SQLITE_ROW) {
		struct queue_message_info *info = row_info(d, st, true);
		go = fn(ctx, info);
		queue_message_info_free(&info);
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&d->mu);
	return 0;
}

static int db_admin(struct queue *q, const char *verb, const char *id,
		    struct queue_error *err)
{
	struct qdb *d = qdb(q);
	const char *sql;
	sqlite3_stmt *st;
	int rc = -1, changed = 0;

	if (strcmp(verb, "retry") == 0)
		sql = id == NULL
			? "UPDATE rcpts SET next_attempt = 0 WHERE state = 0 AND"
			  " msg NOT IN (SELECT id FROM msgs WHERE held)"
			: "UPDATE rcpts SET next_attempt = 0 WHERE state = 0 AND"
			  " msg = (SELECT id FROM msgs WHERE qid = ?1 AND NOT held)";
	else if (strcmp(verb, "hold") == 0)
		sql = "UPDATE msgs SET held = 1 WHERE qid = ?1;"
		      "UPDATE rcpts SET next_attempt = ?2 WHERE state = 0 AND"
		      " msg = (SELECT id FROM msgs WHERE qid = ?1)";
	else if (strcmp(verb, "release") == 0)
		sql = "UPDATE msgs SET held = 0 WHERE qid = ?1;"
		      "UPDATE rcpts SET next_attempt = 0 WHERE state = 0 AND"
		      " msg = (SELECT id FROM msgs WHERE qid = ?1)";
	else
		sql = "DELETE FROM rcpts WHERE"
		      " msg = (SELECT id FROM msgs WHERE qid = ?1);"
		      "DELETE FROM msgs WHERE qid = ?1";
	pthread_mutex_lock(&d->mu);
	if (exec(d, "BEGIN IMMEDIATE") < 0) {
		db_error(d, err, "queue admin");
		goto out;
	}
	for (const char *tail = sql; tail != NULL && *tail != '\0';) {
		if (sqlite3_prepare_v2(d->db, tail, -1, &st, &tail) != SQLITE_OK) {
			db_error(d, err, "queue admin");
			exec(d, "ROLLBACK");
			goto out;
		}
		if (st == NULL)
			break;
		if (id != NULL)
			sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		if (sqlite3_bind_parameter_count(st) >= 2)
			sqlite3_bind_int64(st, 2, HELD_UNTIL);
		if (sqlite3_step(st) != SQLITE_DONE) {
			sqlite3_finalize(st);
			db_error(d, err, "queue admin");
			exec(d, "ROLLBACK");
			goto out;
		}
		changed += sqlite3_changes(d->db);
		sqlite3_finalize(st);
	}
	if (exec(d, "COMMIT") < 0) {
		db_error(d, err, "queue admin");
		exec(d, "ROLLBACK");
		goto out;
	}
	rc = 0;
	if (changed == 0 && id != NULL) {
		queue_set_error(err, QUEUE_ERR_NOTFOUND, "%s is not queued%s", id,
				strcmp(verb, "retry") == 0 ? " (or held)" : "");
		rc = -1;
	}
out:
	pthread_mutex_unlock(&d->mu);
	return rc;
}

static int db_body_ref(struct queue *q, const char *id, char **prefix_r,
		       char sha_r[65], uint64_t *size_r,
		       struct queue_error *err)
{
	struct qdb *d = qdb(q);
	sqlite3_stmt *st;
	int rc = -1;

	/* the bytes are always a file here */
	*prefix_r = NULL;
	sha_r[0] = '\0';
	*size_r = 0;
	pthread_mutex_lock(&d->mu);
	st = prepare(d, "SELECT prefix FROM msgs WHERE qid = ?");
	if (st != NULL) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			*prefix_r = col_text(st, 0);
			rc = 0;
		} else {
			queue_set_error(err, QUEUE_ERR_NOTFOUND,
					"%s is not queued", id);
		}
		sqlite3_finalize(st);
	} else {
		db_error(d, err, "queue prefix");
	}
	pthread_mutex_unlock(&d->mu);
	return rc;
}

static bool db_exists(struct queue *q, const char *id)
{
	struct qdb *d = qdb(q);
	bool found = true; /* on doubt, keep the file */

	pthread_mutex_lock(&d->mu);
	/* asked once per file of the directory: prepared once */
	if (d->exists == NULL)
		d->exists = prepare(d, "SELECT 1 FROM msgs WHERE qid = ?");
	if (d->exists != NULL) {
		sqlite3_bind_text(d->exists, 1, id, -1, SQLITE_STATIC);
		int r = sqlite3_step(d->exists);
		found = r != SQLITE_DONE;
		sqlite3_reset(d->exists);
		sqlite3_clear_bindings(d->exists);
	}
	pthread_mutex_unlock(&d->mu);
	return found;
}

static int db_sts_get(struct queue *q, const char *domain, char **id_r,
		      char **policy_r, time_t *expires_r)
{
	struct qdb *d = qdb(q);
	sqlite3_stmt *st;
	int rc = -1;

	*id_r = *policy_r = NULL;
	pthread_mutex_lock(&d->mu);
	st = prepare(d, "SELECT id, policy, expires FROM mta_sts WHERE "
			"domain = ?");
	if (st != NULL) {
		sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
		int s = sqlite3_step(st);
		if (s == SQLITE_ROW) {
			*id_r = col_text(st, 0);
			*policy_r = col_text(st, 1);
			*expires_r = (time_t)sqlite3_column_int64(st, 2);
			rc = 1;
		} else {
			rc = s == SQLITE_DONE ? 0 : -1;
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&d->mu);
	return rc;
}

static void db_sts_put(struct queue *q, const char *domain, const char *id,
		       const char *policy, time_t expires)
{
	struct qdb *d = qdb(q);
	sqlite3_stmt *st;

	pthread_mutex_lock(&d->mu);
	st = prepare(d, "INSERT OR REPLACE INTO mta_sts(domain, id, policy, "
			"expires) VALUES (?, ?, ?, ?)");
	if (st != NULL) {
		sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, policy, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (int64_t)expires);
		if (sqlite3_step(st) != SQLITE_DONE)
			log_warn("queue", NULL, "MTA-STS cache: %s",
				 sqlite3_errmsg(d->db));
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&d->mu);
}

const struct queue_backend_vfuncs queue_sqlite_backend = {
	.open = db_open,
	.close = db_close,
	.insert = db_insert,
	.release_leases = db_release_leases,
	.claim = db_claim,
	.record = db_record,
	.defer_dest = db_defer_dest,
	.rate_add = db_rate_add,
	.rates_load = db_rates_load,
	.next_due = db_next_due,
	.changed = db_changed,
	.get = db_get,
	.list = db_list,
	.admin = db_admin,
	.body_ref = db_body_ref,
	.exists = db_exists,
	.sts_get = db_sts_get,
	.sts_put = db_sts_put,
};
