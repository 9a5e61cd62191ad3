/*
 * Compaction: giving back the space expunged messages leave in an index
 * (bodies up to SQ_INLINE_MAX, their search text and rows live there;
 * bigger bodies are files, unlinked with their last row). New indexes
 * are made with auto_vacuum = INCREMENTAL (sq-db.c), so freed pages
 * stay on SQLite's free list until a compaction step moves the last
 * pages of the file into them and cuts the file (at the next
 * checkpoint).
 *
 * A step is one job of the user's group commit and moves at most
 * SQ_COMPACT_STEP_PAGES pages: it holds the writer for one group commit,
 * its I/O is bounded, and deliveries interleave with the steps. Nothing
 * a reader holds moves under it: a FETCH, RETR, export or backup reads
 * one WAL snapshot, whose pages SQLite keeps (and does not checkpoint
 * over) while the snapshot is open; files are never moved.
 *
 * The idle thread runs a few steps for accounts unused for a while whose
 * free list passed SQ_COMPACT_MIN_PAGES; `loftctl compact ADDRESS` runs
 * them to the end now (store_compact). An index made before auto_vacuum
 * (auto_vacuum = NONE) is converted by store_compact with one VACUUM,
 * which holds the writer until it ends (once per such index).
 */
#include "sq-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

struct compact_step {
	int64_t freelist;   /* free pages left after the step */
	int64_t moved;      /* pages given back by the step */
};

static int64_t pragma_int(struct sq_conn *c, const char *sql)
{
	sqlite3_stmt *st = sq_stmt(c, sql);
	if (st == NULL)
		return -1;
	int64_t v = -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return v;
}

static int compact_job(struct sq_user *u, struct sq_conn *c,
		       struct sq_job *job)
{
	(void)u;
	struct compact_step *a = job->arg;
	int64_t before = pragma_int(c, "PRAGMA freelist_count");
	if (before < 0)
		return sq_job_dberr(job, c);
	a->moved = 0;
	a->freelist = before;
	if (before == 0)
		return 0;
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%d)",
		 SQ_COMPACT_STEP_PAGES);
	if (sq_exec(c, sql) < 0)
		return sq_job_dberr(job, c);
	a->freelist = pragma_int(c, "PRAGMA freelist_count");
	if (a->freelist < 0)
		return sq_job_dberr(job, c);
	a->moved = before - a->freelist;
	return 0;
}

/* One bounded step; 0 and *left_r = free pages still to give back. */
static int compact_step(struct sq_user *u, int64_t *left_r, int64_t *moved_r,
			struct store_error *err)
{
	struct compact_step a = {0, 0};
	if (sq_run(u, compact_job, &a, err) < 0)
		return -1;
	*left_r = a.freelist;
	*moved_r = a.moved;
	return 0;
}

/* auto_vacuum mode and free pages, read on a pooled reader (no writer
 * taken: the idle thread asks this of every idle account). */
static int compact_state(struct sq_user *u, int64_t *mode_r,
			 int64_t *freelist_r)
{
	struct sq_conn *c = sq_reader_get(u, NULL);
	if (c == NULL)
		return -1;
	*mode_r = pragma_int(c, "PRAGMA auto_vacuum");
	*freelist_r = pragma_int(c, "PRAGMA freelist_count");
	sq_reader_put(u, c);
	return *mode_r < 0 || *freelist_r < 0 ? -1 : 0;
}

bool sq_compact_idle(struct sq_user *u)
{
	int64_t mode, freelist;
	if (compact_state(u, &mode, &freelist) < 0 || mode != 2 ||
	    freelist < SQ_COMPACT_MIN_PAGES)
		return false;
	int64_t moved;
	struct store_error err;
	for (unsigned steps = 0; steps < SQ_COMPACT_IDLE_STEPS; steps++) {
		if (compact_step(u, &freelist, &moved, &err) < 0) {
			log_warn("store", NULL, "compacting user %lld: %s",
				 (long long)u->user->id, err.msg);
			return false;
		}
		if (freelist == 0 || moved == 0)
			return false;
	}
	return freelist >= SQ_COMPACT_MIN_PAGES;
}

/* The index's size as SQLite counts it (pages x page size): what a
 * compaction gives back shows here at its commit; the file follows at
 * the next checkpoint past every older reader. */
static uint64_t index_bytes(struct sq_user *u)
{
	struct sq_conn *c = sq_reader_get(u, NULL);
	if (c == NULL)
		return 0;
	int64_t pages = pragma_int(c, "PRAGMA page_count");
	int64_t size = pragma_int(c, "PRAGMA page_size");
	sq_reader_put(u, c);
	return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

/* Checkpoints as far as readers allow, so the cut file shows. */
static void compact_checkpoint(struct sq_user *u)
{
	struct sq_conn *c = sq_reader_get(u, NULL);
	if (c == NULL)
		return;
	sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE,
				  NULL, NULL);
	sq_reader_put(u, c);
}

/* An index from before auto_vacuum: one VACUUM with the writer held. */
static int compact_convert(struct sq_user *u, struct store_error *err)
{
	sq_writer_hold(u);
	int r = sq_writer_open(u, err);
	if (r == 0 &&
	    (sq_exec(u->writer, "PRAGMA auto_vacuum = INCREMENTAL") < 0 ||
	     sq_exec(u->writer, "VACUUM") < 0))
		r = sq_db_error(u->writer, err, "vacuum");
	sq_writer_release(u);
	return r;
}

int sq_compact(struct store *store, int64_t user_id,
	       struct store_compact_report *report_r, struct store_error *err)
{
	memset(report_r, 0, sizeof(*report_r));
	char *dir = sq_user_dir(store, user_id);
	struct stat stt;
	if (stat(dir, &stt) < 0) {
		free(dir);   /* no mail yet: nothing to give back */
		return 0;
	}
	struct store_user *user;
	if (store_user_open_backend(store, user_id, true, &user, err) < 0) {
		free(dir);
		return -1;
	}
	struct sq_user *u = SQU(user);
	compact_checkpoint(u);
	report_r->bytes_before = index_bytes(u);
	int64_t mode, freelist;
	int ret = 0;
	if (compact_state(u, &mode, &freelist) < 0) {
		ret = store_set_error(err, STORE_ERR_TEMP,
				      "Cannot read the mail index");
		goto out;
	}
	report_r->free_pages = (uint64_t)freelist;
	if (mode != 2) {
		ret = compact_convert(u, err);
		report_r->converted = ret == 0;
		goto out;
	}
	while (freelist > 0) {
		int64_t moved;
		if (compact_step(u, &freelist, &moved, err) < 0) {
			ret = -1;
			break;
		}
		if (moved == 0)
			break;
	}
out:
	compact_checkpoint(u);
	report_r->bytes_after = index_bytes(u);
	store_user_unref(&user);
	free(dir);
	return ret;
}
