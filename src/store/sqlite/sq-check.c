/*
 * store_check for the embedded backend: the index against the blob files
 * and against itself. A row whose file is missing is expunged (logged,
 * so clients see it go); a file of the wrong size gets its recorded size
 * corrected; counters, UIDNEXT, the change counter and quota usage are
 * recomputed; files that no row names are orphans from a crash and are
 * removed (young ones are left: they may be an append in flight). Runs
 * as one job of the group commit, so deliveries wait for it, not the
 * other way round.
 */
#include "sq-private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>


#include "log.h"

/* Orphans younger than this may belong to an append in flight (in this
 * process or in another, e.g. loftd while loftctl checks). */
#define ORPHAN_MIN_AGE 600

struct check_arg {
	bool repair;
	char **lines;
	size_t line_count;
	unsigned unrepaired;
};

static void note(struct check_arg *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void note(struct check_arg *a, const char *fmt, ...)
{
	va_list ap;
	char *line;
	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) < 0)
		abort();
	va_end(ap);
	a->lines = xrealloc(a->lines, (a->line_count + 1) * sizeof(char *));
	a->lines[a->line_count++] = line;
}

static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* What reading a body found. */
enum body_state { BODY_OK, BODY_MISSING, BODY_SIZE, BODY_CRC, BODY_IOERR };

struct body_rec {
	int64_t id;
	char *name;
	int kind;
	int64_t size;          /* prefix + body, as the rows say */
	int64_t prefix_len;
	bool has_crc;
	uint32_t crc;
	bool has_head;         /* blob.head (sq_head_of) */
	int64_t head;
	/* found */
	enum body_state state;
	int64_t body_len;
	uint32_t real_crc;
	bool real_has_head;
	int64_t real_head;
};

static uint32_t crc_of(const void *p, size_t n)
{
	return sq_crc32(0, p, n);
}

/* Reads a body (in the index or its file) and judges it. */
static void body_judge(struct sq_user *u, struct sq_conn *c,
		       struct body_rec *r)
{
	r->state = BODY_OK;
	if (r->kind == SQ_BODY_INLINE) {
		sqlite3_stmt *st = sq_stmt(c, "SELECT data FROM body WHERE id = ?");
		if (st == NULL) {
			r->state = BODY_IOERR;
			return;
		}
		sqlite3_bind_int64(st, 1, r->id);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			r->body_len = sqlite3_column_bytes(st, 0);
			const char *p = sqlite3_column_blob(st, 0);
			r->real_crc = crc_of(p, (size_t)r->body_len);
			r->real_has_head = sq_head_of(p ? p : "",
						      (size_t)r->body_len,
						      &r->real_head);
		}
		sqlite3_reset(st);
		if (rc != SQLITE_ROW) {
			r->state = rc == SQLITE_DONE ? BODY_MISSING : BODY_IOERR;
			return;
		}
	} else {
		char *path = sq_blob_path(u, r->name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		free(path);
		struct stat stt;
		if (fd < 0 || fstat(fd, &stt) < 0) {
			r->state = errno == ENOENT ? BODY_MISSING : BODY_IOERR;
			if (fd >= 0)
				close(fd);
			return;
		}
		r->body_len = stt.st_size;
		void *map = stt.st_size > 0
				    ? mmap(NULL, (size_t)stt.st_size, PROT_READ,
					   MAP_SHARED, fd, 0)
				    : NULL;
		close(fd);
		if (map == MAP_FAILED) {
			r->state = BODY_IOERR;
			return;
		}
		r->real_crc = crc_of(map, (size_t)stt.st_size);
		r->real_has_head = sq_head_of(map != NULL ? map : "",
					      (size_t)stt.st_size,
					      &r->real_head);
		if (map != NULL)
			munmap(map, (size_t)stt.st_size);
	}
	if (r->prefix_len + r->body_len != r->size)
		r->state = BODY_SIZE;
	else if (r->has_crc && r->real_crc != r->crc)
		r->state = BODY_CRC;
}

/* "mailbox INBOX UID 3, mailbox Sent UID 9": the messages of a blob. */
static char *blob_messages(struct sq_conn *c, int64_t id)
{
	struct buf b;
	buf_init(&b, 0);
	sqlite3_stmt *st = sq_stmt(c, "SELECT x.name, m.uid FROM msg m JOIN"
				      " mailbox x ON x.id = m.mailbox"
				      " WHERE m.blob = ? ORDER BY x.name, m.uid");
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			buf_printf(&b, "%smailbox %s UID %lld", b.len ? ", " : "",
				   (const char *)sqlite3_column_text(st, 0),
				   (long long)sqlite3_column_int64(st, 1));
		}
		sqlite3_reset(st);
	}
	if (b.len == 0)
		buf_append_str(&b, "no message");
	return buf_steal(&b, NULL);
}

/* Expunges every message of a blob (whose body is gone): logged, so
 * clients see them go. */
static int drop_blob(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		     int64_t id)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT DISTINCT mailbox FROM msg WHERE blob = ?");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, id);
	uint32_t *mbox = NULL;
	size_t nm = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		mbox = xrealloc(mbox, (nm + 1) * sizeof(uint32_t));
		mbox[nm++] = (uint32_t)sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	int ret = 0;
	for (size_t m = 0; m < nm && ret == 0; m++) {
		struct sq_msgrow *rows;
		size_t n, w = 0;
		if (sq_rows_get(c, mbox[m], NULL, 0, &rows, &n) < 0) {
			ret = sq_job_dberr(job, c);
			break;
		}
		for (size_t r = 0; r < n; r++) {
			if (rows[r].blob == id) {
				struct sq_msgrow t = rows[w];
				rows[w++] = rows[r];
				rows[r] = t;
			}
		}
		ret = sq_expunge_rows(u, c, job, mbox[m], rows, w, true);
		sq_rows_free(rows, n);
	}
	free(mbox);
	/* no body to bring back: its kept copies (undelete) go too */
	if (ret == 0) {
		st = sq_stmt(c, "DELETE FROM deleted WHERE blob = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, id);
		if (step_done(st) < 0)
			ret = sq_job_dberr(job, c);
	}
	/* A blob row with no message row left is dropped by
	 * sq_expunge_rows; one that never had a row goes here. */
	if (ret == 0 && sq_blob_unref(u, c, job, id) < 0)
		ret = sq_job_dberr(job, c);
	return ret;
}

static int step_bind2(struct sq_conn *c, const char *sql, int64_t a, int64_t b)
{
	sqlite3_stmt *st = sq_stmt(c, sql);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	return step_done(st);
}

/* Every body against its rows: a missing body (file or row) drops its
 * messages; a damaged one (wrong size or checksum) is named by mailbox
 * and UID and never served (sq-blob.c) -- it is kept for the admin to
 * restore, and counts as not repaired; a body of an old index gets its
 * checksum, and a file of an old index whose size changed gets the size
 * it has (those rows had no checksum to tell damage from it). */
static int check_blobs(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		       struct check_arg *a)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT id, name, kind, size,"
				      " length(prefix), crc, head FROM blob");
	if (st == NULL)
		return sq_job_dberr(job, c);
	struct body_rec *recs = NULL;
	size_t n = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		recs = xrealloc(recs, (n + 1) * sizeof(*recs));
		struct body_rec *r = &recs[n++];
		memset(r, 0, sizeof(*r));
		r->id = sqlite3_column_int64(st, 0);
		r->name = xstrdup((const char *)sqlite3_column_text(st, 1));
		r->kind = sqlite3_column_int(st, 2);
		r->size = sqlite3_column_int64(st, 3);
		r->prefix_len = sqlite3_column_int64(st, 4);
		r->has_crc = sqlite3_column_type(st, 5) != SQLITE_NULL;
		r->crc = (uint32_t)sqlite3_column_int64(st, 5);
		r->has_head = sqlite3_column_type(st, 6) != SQLITE_NULL;
		r->head = sqlite3_column_int64(st, 6);
	}
	sqlite3_reset(st);
	int ret = rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct body_rec *r = &recs[i];
		body_judge(u, c, r);
		bool head_ok = r->has_head == r->real_has_head &&
			       (!r->has_head || r->head == r->real_head);
		if (r->state == BODY_OK && r->has_crc && head_ok)
			continue;
		char *where = blob_messages(c, r->id);
		const char *what = r->kind == SQ_BODY_INLINE ? "body" : "message file";
		switch (r->state) {
		case BODY_OK:
			/* a header checksum that disagrees with a body that
			 * checks: the row was damaged, the body is right */
			if (r->has_crc && r->has_head) {
				note(a, "%s: %s %s has a wrong header"
				     " checksum%s", where, what, r->name,
				     a->repair ? ": corrected" : "");
				if (!a->repair)
					a->unrepaired++;
			}
			/* an old row: its checksums from now on */
			if (a->repair &&
			    (step_bind2(c, "UPDATE blob SET crc = ? WHERE id = ?",
					r->real_crc, r->id) < 0 ||
			     (r->real_has_head &&
			      step_bind2(c, "UPDATE blob SET head = ? WHERE"
					 " id = ?", r->real_head, r->id) < 0)))
				ret = sq_job_dberr(job, c);
			break;
		case BODY_MISSING:
			note(a, "%s: %s %s is missing%s", where, what, r->name,
			     a->repair ? ": removed" : "");
			if (!a->repair)
				a->unrepaired++;
			else
				ret = drop_blob(u, c, job, r->id);
			break;
		case BODY_SIZE:
			if (!r->has_crc) {
				note(a, "%s: message file %s has %lld bytes,"
				     " the index said %lld%s", where, r->name,
				     (long long)r->body_len,
				     (long long)(r->size - r->prefix_len),
				     a->repair ? ": size corrected" : "");
				if (!a->repair) {
					a->unrepaired++;
					break;
				}
				int64_t sz = r->prefix_len + r->body_len;
				if (step_bind2(c, "UPDATE blob SET size = ? WHERE id = ?",
					       sz, r->id) < 0 ||
				    step_bind2(c, "UPDATE msg SET size = ? WHERE blob = ?",
					       sz, r->id) < 0)
					ret = sq_job_dberr(job, c);
				break;
			}
			/* a size that disagrees with a checksummed row is
			 * damage */
			__attribute__((fallthrough));
		case BODY_CRC:
			note(a, "%s: %s %s is damaged (%s); it is not served:"
			     " restore it from a backup or expunge it", where,
			     what, r->name, r->state == BODY_CRC ? "checksum"
								 : "size");
			a->unrepaired++;
			break;
		case BODY_IOERR:
			note(a, "%s: %s %s cannot be read", where, what, r->name);
			a->unrepaired++;
			break;
		}
		free(where);
	}
	/* sq_blob_unref queued unlinks of files that are already gone. */
	for (size_t i = 0; i < job->unlink_count; i++)
		free(job->unlink[i]);
	job->unlink_count = 0;
	for (size_t i = 0; i < n; i++)
		free(recs[i].name);
	free(recs);
	return ret;
}

/* Bodies in the index that no blob row names (a record no message
 * reaches): dropped. */
static int check_orphan_bodies(struct sq_conn *c, struct sq_job *job,
			       struct check_arg *a)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT id, length(data) FROM body b"
				      " WHERE NOT EXISTS (SELECT 1 FROM blob"
				      " WHERE blob.id = b.id)");
	if (st == NULL)
		return sq_job_dberr(job, c);
	int64_t *ids = NULL;
	size_t n = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ids = xrealloc(ids, (n + 1) * sizeof(*ids));
		ids[n++] = sqlite3_column_int64(st, 0);
		note(a, "body record %lld (%lld bytes) without a message%s",
		     (long long)sqlite3_column_int64(st, 0),
		     (long long)sqlite3_column_int64(st, 1),
		     a->repair ? ": removed" : "");
	}
	sqlite3_reset(st);
	int ret = rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
	if (!a->repair)
		a->unrepaired += (unsigned)n;
	for (size_t i = 0; i < n && ret == 0 && a->repair; i++) {
		st = sq_stmt(c, "DELETE FROM body WHERE id = ?");
		if (st == NULL) {
			ret = sq_job_dberr(job, c);
			break;
		}
		sqlite3_bind_int64(st, 1, ids[i]);
		if (step_done(st) < 0)
			ret = sq_job_dberr(job, c);
	}
	free(ids);
	return ret;
}

/* Re-analyses a message whose search text row is missing (its prefix
 * and body as a reader gets them). */
static int text_rebuild(struct sq_user *u, struct sq_conn *c, int64_t id,
			const char *name)
{
	(void)name;
	struct store_blob blob;
	if (sq_blob_read_id(u, c, id, &blob, NULL) < 0)
		return -1;
	struct mail_result an;
	store_analyze(blob.data, blob.len, &an);
	sq_blob_close(&blob);
	int r = sq_text_insert(c, id, an.header_text, an.header_text_len,
			       an.body_text, an.body_text_len, NULL);
	mail_result_free(&an);
	return r;
}

/* Search text against blobs: a blob without text cannot be found by
 * SEARCH (its text is rebuilt from the file); text without a blob is
 * dropped. A rebuilt row below fts_upto is not in the trigram index, so
 * the index is rebuilt from there (the indexer catches up). */
static int check_text(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		      struct check_arg *a)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT b.id, b.name FROM blob b"
				      " WHERE NOT EXISTS (SELECT 1 FROM text t"
				      " WHERE t.id = b.id)");
	if (st == NULL)
		return sq_job_dberr(job, c);
	struct { int64_t id; char *name; } *miss = NULL;
	size_t n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		miss = xrealloc(miss, (n + 1) * sizeof(*miss));
		miss[n].id = sqlite3_column_int64(st, 0);
		miss[n++].name = xstrdup((const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_reset(st);
	int ret = 0;
	int64_t lowest = INT64_MAX;
	for (size_t i = 0; i < n; i++) {
		bool fixed = a->repair && ret == 0 &&
			     text_rebuild(u, c, miss[i].id, miss[i].name) == 0;
		note(a, "search text of message file %s %s", miss[i].name,
		     fixed ? "rebuilt" : "is missing");
		if (fixed && miss[i].id < lowest)
			lowest = miss[i].id;
		if (!fixed)
			a->unrepaired++;
		free(miss[i].name);
	}
	free(miss);
	if (lowest <= u->tx_fts_upto) {
		/* start the trigram index again: entries cannot be added
		 * below the mark one by one */
		if (sq_fts_reset(u, c) < 0)
			ret = sq_job_dberr(job, c);
		sq_indexer_kick(u->user->store, u->user->id);
	}
	st = sq_stmt(c, "SELECT id FROM text t WHERE NOT EXISTS"
			" (SELECT 1 FROM blob b WHERE b.id = t.id)");
	if (st == NULL)
		return sq_job_dberr(job, c);
	int64_t *orphans = NULL;
	n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		orphans = xrealloc(orphans, (n + 1) * sizeof(int64_t));
		orphans[n++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	for (size_t i = 0; i < n && ret == 0; i++) {
		note(a, "search text %lld without a message%s",
		     (long long)orphans[i], a->repair ? ": removed" : "");
		if (!a->repair)
			a->unrepaired++;
		else if (sq_text_delete(u, c, orphans[i]) < 0)
			ret = sq_job_dberr(job, c);
	}
	free(orphans);
	return ret;
}

/* Counters, UIDNEXT and HIGHESTMODSEQ of every mailbox against its rows. */
static int check_counters(struct sq_user *u, struct sq_conn *c,
			  struct sq_job *job, struct check_arg *a)
{
	sqlite3_stmt *st = sq_stmt(c,
		"SELECT x.id, x.name, x.messages, x.unseen, x.deleted, x.size,"
		" x.uidnext, x.highestmodseq,"
		" count(m.uid), coalesce(sum((m.flags & 1) = 0), 0),"
		" coalesce(sum((m.flags & 8) != 0), 0), coalesce(sum(m.size), 0),"
		" coalesce(max(m.uid), 0), coalesce(max(m.modseq), 0),"
		" (SELECT coalesce(max(uid), 0) FROM expunged e WHERE e.mailbox = x.id)"
		" FROM mailbox x LEFT JOIN msg m ON m.mailbox = x.id GROUP BY x.id");
	if (st == NULL)
		return sq_job_dberr(job, c);
	struct fix {
		uint32_t id;
		int64_t v[4];
		int64_t uidnext, modseq;
	} *fixes = NULL;
	size_t nfix = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 1);
		int64_t have[4], want[4];
		bool bad = false;
		for (int i = 0; i < 4; i++) {
			have[i] = sqlite3_column_int64(st, 2 + i);
			want[i] = sqlite3_column_int64(st, 8 + i);
			bad |= have[i] != want[i];
		}
		int64_t uidnext = sqlite3_column_int64(st, 6);
		int64_t maxuid = sqlite3_column_int64(st, 12);
		int64_t maxexp = sqlite3_column_int64(st, 14);
		if (maxexp > maxuid)
			maxuid = maxexp;
		int64_t hms = sqlite3_column_int64(st, 7);
		int64_t maxms = sqlite3_column_int64(st, 13);
		if (bad)
			note(a, "mailbox %s: counters were %lld/%lld/%lld/%lld,"
			     " recounted %lld/%lld/%lld/%lld%s", name,
			     (long long)have[0], (long long)have[1],
			     (long long)have[2], (long long)have[3],
			     (long long)want[0], (long long)want[1],
			     (long long)want[2], (long long)want[3],
			     a->repair ? " (fixed)" : "");
		if (uidnext <= maxuid) {
			note(a, "mailbox %s: UIDNEXT %lld is not above UID %lld%s",
			     name, (long long)uidnext, (long long)maxuid,
			     a->repair ? " (fixed)" : "");
			bad = true;
		}
		if (hms < maxms) {
			note(a, "mailbox %s: HIGHESTMODSEQ %lld below a message's %lld%s",
			     name, (long long)hms, (long long)maxms,
			     a->repair ? " (fixed)" : "");
			bad = true;
		}
		if (!bad)
			continue;
		fixes = xrealloc(fixes, (nfix + 1) * sizeof(*fixes));
		struct fix *f = &fixes[nfix++];
		f->id = (uint32_t)sqlite3_column_int64(st, 0);
		memcpy(f->v, want, sizeof(want));
		f->uidnext = uidnext > maxuid ? uidnext : maxuid + 1;
		f->modseq = hms > maxms ? hms : maxms;
		if (f->modseq > (int64_t)u->tx_modseq) {
			u->tx_modseq = (uint64_t)f->modseq;
			u->tx_dirty = true;
		}
	}
	sqlite3_reset(st);
	int ret = rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
	if (!a->repair) {
		a->unrepaired += (unsigned)nfix;
		nfix = 0;
	}
	for (size_t i = 0; i < nfix && ret == 0; i++) {
		st = sq_stmt(c, "UPDATE mailbox SET messages = ?, unseen = ?,"
				" deleted = ?, size = ?, uidnext = ?,"
				" highestmodseq = ? WHERE id = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		for (int k = 0; k < 4; k++)
			sqlite3_bind_int64(st, k + 1, fixes[i].v[k]);
		sqlite3_bind_int64(st, 5, fixes[i].uidnext);
		sqlite3_bind_int64(st, 6, fixes[i].modseq);
		sqlite3_bind_int64(st, 7, fixes[i].id);
		if (step_done(st) < 0)
			ret = sq_job_dberr(job, c);
	}
	free(fixes);
	return ret;
}

/* Quota usage and the change counter against the rows. */
static int check_account(struct sq_user *u, struct sq_conn *c,
			 struct sq_job *job, struct check_arg *a)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT count(*), coalesce(sum(size), 0),"
				      " coalesce(max(modseq), 0) FROM msg");
	if (st == NULL || sqlite3_step(st) != SQLITE_ROW)
		return sq_job_dberr(job, c);
	uint64_t msgs = (uint64_t)sqlite3_column_int64(st, 0);
	uint64_t bytes = (uint64_t)sqlite3_column_int64(st, 1);
	uint64_t maxms = (uint64_t)sqlite3_column_int64(st, 2);
	sqlite3_reset(st);
	if (msgs != u->tx_messages || bytes != u->tx_bytes) {
		note(a, "quota usage was %llu bytes in %llu messages,"
		     " recounted %llu bytes in %llu messages%s",
		     (unsigned long long)u->tx_bytes,
		     (unsigned long long)u->tx_messages,
		     (unsigned long long)bytes, (unsigned long long)msgs,
		     a->repair ? " (fixed)" : "");
		if (a->repair) {
			u->tx_messages = msgs;
			u->tx_bytes = bytes;
			u->tx_dirty = true;
		} else {
			a->unrepaired++;
		}
	}
	if (maxms > u->tx_modseq) {
		note(a, "change counter %llu below a message's modseq %llu%s",
		     (unsigned long long)u->tx_modseq,
		     (unsigned long long)maxms, a->repair ? " (fixed)" : "");
		if (a->repair) {
			u->tx_modseq = maxms;
			u->tx_dirty = true;
		} else {
			a->unrepaired++;
		}
	}
	return 0;
}

static int check_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct check_arg *a = job->arg;
	sqlite3_stmt *st = sq_stmt(c, "PRAGMA quick_check");
	if (st == NULL)
		return sq_job_dberr(job, c);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *r = (const char *)sqlite3_column_text(st, 0);
		if (r != NULL && strcmp(r, "ok") != 0) {
			note(a, "index damaged: %s", r);
			a->unrepaired++;
		}
	}
	sqlite3_reset(st);
	if (check_blobs(u, c, job, a) < 0 ||
	    check_orphan_bodies(c, job, a) < 0 || check_text(u, c, job, a) < 0 ||
	    check_counters(u, c, job, a) < 0 ||
	    check_account(u, c, job, a) < 0)
		return -1;
	if (a->repair && job->modseq == 0 && a->line_count > 0)
		sq_job_modseq(u, job);
	return 0;
}

int sq_check(struct store *store, int64_t user_id, bool repair,
	     store_report_fn *report, void *ctx, struct store_error *err)
{
	char *dir = sq_user_dir(store, user_id);
	struct stat stt;
	if (stat(dir, &stt) < 0) {
		/* No mail yet is consistent, not a finding: report() lines
		 * are counted as repairs (loftctl check). */
		free(dir);
		return 0;
	}
	struct store_user *user;
	if (store_user_open_backend(store, user_id, true, &user, err) < 0) {
		free(dir);
		return -1;
	}
	struct check_arg a;
	memset(&a, 0, sizeof(a));
	a.repair = repair;
	int ret = sq_run(SQU(user), check_job, &a, err);
	for (size_t i = 0; i < a.line_count; i++) {
		if (report != NULL)
			report(ctx, a.lines[i]);
		free(a.lines[i]);
	}
	free(a.lines);
	if (ret == 0) {
		unsigned orphans;
		sq_sweep_user(store, dir,
			      sq_now_ns() - ORPHAN_MIN_AGE * 1000000000LL,
			      false, report, ctx, repair, &orphans);
		if (!repair)
			a.unrepaired += orphans;
	}
	store_user_unref(&user);   /* after the sweep: see sq_sweep_user */
	free(dir);
	if (ret == 0 && a.unrepaired > 0)
		ret = store_set_error(err, STORE_ERR_INTERNAL,
				      "%u problems were not repaired",
				      a.unrepaired);
	return ret;
}
