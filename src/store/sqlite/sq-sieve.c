/*
 * Sieve in the embedded backend (store.h "Sieve", tables in
 * sq-sieve-schema.h): scripts, records, and a delivery whose copies and
 * records commit in one job (one transaction of the user's index), so a
 * vacation record and the message it answered are both there or neither
 * is: kill -9 never causes a second reply.
 */
#include "sq-private.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* ---- the scripts' version ------------------------------------------ */

/* store_sieve_version: the file sieve.version beside index.db is
 * replaced (a new inode) after every committed change of the scripts,
 * by whichever process made it; the version is its inode, change time
 * and the index's inode (an index restored as a whole counts as a
 * change). Two stat calls, no index read. */
static int version_write(struct sq_user *u)
{
	char *path = xasprintf("%s/sieve.version", u->dir);
	char *tmp = xasprintf("%s/sieve.version.%ld.%lx", u->dir,
			      (long)getpid(), (unsigned long)pthread_self());
	int ret = -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		char line[64];
		int n = snprintf(line, sizeof(line), "%lld\n",
				 (long long)time(NULL));
		ret = write(fd, line, (size_t)n) == n ? 0 : -1;
		if (close(fd) < 0)
			ret = -1;
		if (ret == 0 && rename(tmp, path) < 0)
			ret = -1;
		if (ret < 0)
			unlink(tmp);
	}
	free(tmp);
	free(path);
	return ret;
}

/* After a change: a new version. If the file cannot be replaced it is
 * removed (the next reader makes a new one: a new version all the
 * same); if even that fails, deliveries may keep the old script. */
static void version_bump(struct sq_user *u)
{
	if (version_write(u) == 0)
		return;
	char *path = xasprintf("%s/sieve.version", u->dir);
	if (unlink(path) < 0)
		log_error("store", NULL, "%s: cannot replace or remove it: "
			  "deliveries may run the previous Sieve script until "
			  "loftd restarts", path);
	free(path);
}

void sq_sieve_changed(struct store_user *user)
{
	version_bump(SQU(user));
}

uint64_t sq_sieve_version(struct store_user *user)
{
	struct sq_user *u = SQU(user);
	char *path = xasprintf("%s/sieve.version", u->dir);
	char *index = xasprintf("%s/index.db", u->dir);
	struct stat st, ist;
	uint64_t v = 0;
	if (stat(path, &st) < 0 && (version_write(u) < 0 ||
				    stat(path, &st) < 0))
		goto out;
	if (stat(index, &ist) < 0)
		goto out;
	v = 14695981039346656037ull;
	uint64_t parts[] = {(uint64_t)st.st_ino, (uint64_t)st.st_dev,
			    (uint64_t)st.st_ctim.tv_sec,
			    (uint64_t)st.st_ctim.tv_nsec, (uint64_t)ist.st_ino};
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		v ^= parts[i];
		v *= 1099511628211ull;
	}
	if (v == 0)
		v = 1;
out:
	free(path);
	free(index);
	return v;
}

static struct sq_conn *snap_begin(struct sq_user *u, struct store_error *err)
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

static void snap_end(struct sq_user *u, struct sq_conn *c)
{
	sq_read_end(c);
	sq_reader_put(u, c);
}

int sq_sieve_list(struct store_user *user, struct store_sieve_script **list_r,
		  size_t *count_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = snap_begin(u, err);
	if (c == NULL)
		return -1;
	struct store_sieve_script *list = NULL;
	size_t n = 0;
	int rc = SQLITE_ERROR;
	sqlite3_stmt *st = sq_stmt(c, "SELECT s.name, s.active, length(s.source),"
				      " s.modified, j.id FROM sieve_script s"
				      " LEFT JOIN jobject j ON j.kind = ?"
				      " AND j.data = s.name ORDER BY s.name");
	if (st != NULL) {
		sqlite3_bind_int(st, 1, STORE_JMAP_SIEVE);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			list = xrealloc(list, (n + 1) * sizeof(*list));
			list[n].name = xstrdup((const char *)
					       sqlite3_column_text(st, 0));
			list[n].active = sqlite3_column_int(st, 1) != 0;
			list[n].size = (uint64_t)sqlite3_column_int64(st, 2);
			list[n].modified = (time_t)sqlite3_column_int64(st, 3);
			list[n].jmap_id = sqlite3_column_int64(st, 4);
			n++;
		}
		sqlite3_reset(st);
	}
	int ret = rc == SQLITE_DONE ? 0 : sq_db_error(c, err, "sieve_script");
	snap_end(u, c);
	if (ret < 0) {
		store_sieve_list_free(list, n);
		return -1;
	}
	*list_r = list;
	*count_r = n;
	return 0;
}

static void *blob_dup(const void *p, size_t n)
{
	char *r = xmalloc(n + 1);
	if (n)
		memcpy(r, p, n);
	r[n] = '\0';
	return r;
}

int sq_sieve_get(struct store_user *user, const char *name, bool active_only,
		 char **name_r, char **source_r, size_t *len_r, void **image_r,
		 size_t *image_len_r, bool *active_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = snap_begin(u, err);
	if (c == NULL)
		return -1;
	sqlite3_stmt *st = sq_stmt(c, active_only
		? "SELECT name, source, compiled, active FROM sieve_script"
		  " WHERE active = 1"
		: "SELECT name, source, compiled, active FROM sieve_script"
		  " WHERE name = ?");
	int ret = -1;
	if (st == NULL) {
		sq_db_error(c, err, "sieve_script");
		goto out;
	}
	if (!active_only)
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (name_r)
			*name_r = xstrdup((const char *)sqlite3_column_text(st, 0));
		size_t sl = (size_t)sqlite3_column_bytes(st, 1);
		if (source_r)
			*source_r = blob_dup(sqlite3_column_blob(st, 1), sl);
		if (len_r)
			*len_r = sl;
		size_t il = (size_t)sqlite3_column_bytes(st, 2);
		if (image_r)
			*image_r = sqlite3_column_type(st, 2) == SQLITE_NULL ? NULL
				: blob_dup(sqlite3_column_blob(st, 2), il);
		if (image_len_r)
			*image_len_r = il;
		if (active_r)
			*active_r = sqlite3_column_int(st, 3) != 0;
		ret = 0;
	} else if (rc == SQLITE_DONE) {
		store_set_error(err, STORE_ERR_NOTFOUND, "No such script");
	} else {
		sq_db_error(c, err, "sieve_script");
	}
	sqlite3_reset(st);
out:
	snap_end(u, c);
	return ret;
}

/* ---- changes ------------------------------------------------------- */

enum sieve_op { SV_PUT, SV_ACTIVATE, SV_DELETE, SV_RENAME, SV_IDS };

struct sieve_arg {
	enum sieve_op op;
	const char *name, *to;
	const char *source;
	size_t len;
	const void *image;
	size_t image_len;
};

static int step_done(struct sq_job *job, struct sq_conn *c, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
}

/* 1 the script exists (active_r), 0 not, -1 error. */
static int script_state(struct sq_job *job, struct sq_conn *c,
			const char *name, bool *active_r)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT active FROM sieve_script"
				      " WHERE name = ?");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	int ret = 0;
	if (rc == SQLITE_ROW) {
		if (active_r)
			*active_r = sqlite3_column_int(st, 0) != 0;
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		ret = sq_job_dberr(job, c);
	}
	sqlite3_reset(st);
	return ret;
}

/* ---- JMAP ids (RFC 9661 SieveScript) --------------------------------
 * One jobject row of kind STORE_JMAP_SIEVE per script, its data the
 * script's name: the JMAP id, the states and /changes of every other
 * stored kind, kept in step here in the job of each change. */

static sqlite3_stmt *bind_kind(struct sq_conn *c, const char *sql)
{
	sqlite3_stmt *st = sq_stmt(c, sql);
	if (st != NULL)
		sqlite3_bind_int(st, 1, STORE_JMAP_SIEVE);
	return st;
}

/* The row of name takes this job's modseq (a property of it changed). */
static int ids_touch(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		     const char *name)
{
	sqlite3_stmt *st = bind_kind(c, "UPDATE jobject SET modseq = ?2"
				        " WHERE kind = ?1 AND data = ?3");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)sq_job_modseq(u, job));
	sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
	if (step_done(job, c, st) < 0)
		return -1;
	sq_job_change(job, 0, STORE_CHANGE_OBJECTS);
	return 0;
}

/* Rows whose script is gone become tombstones; scripts without a row get
 * one (a new id, never one used before). */
static int ids_sync(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	/* (sq_stmt caches by the SQL's address: literal strings only) */
#define GONE_WHERE " FROM jobject WHERE kind = ?1 AND data NOT IN" \
		   " (SELECT name FROM sieve_script)"
	sqlite3_stmt *st = bind_kind(c, "SELECT count(*)" GONE_WHERE);
	if (st == NULL)
		return sq_job_dberr(job, c);
	int rc = sqlite3_step(st);
	int64_t gone = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_reset(st);
	if (gone < 0)
		return sq_job_dberr(job, c);
	if (gone > 0) {
		st = bind_kind(c, "INSERT OR REPLACE INTO jgone SELECT kind, id,"
				  " NULL, created, ?2, unixepoch()" GONE_WHERE);
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)sq_job_modseq(u, job));
		if (step_done(job, c, st) < 0)
			return -1;
		st = bind_kind(c, "DELETE" GONE_WHERE);
		if (st == NULL || step_done(job, c, st) < 0)
			return st == NULL ? sq_job_dberr(job, c) : -1;
		sq_job_change(job, 0, STORE_CHANGE_OBJECTS);
	}
	for (;;) {
		st = bind_kind(c, "SELECT name FROM sieve_script WHERE name NOT"
				  " IN (SELECT data FROM jobject WHERE kind = ?1)"
				  " ORDER BY name LIMIT 1");
		if (st == NULL)
			return sq_job_dberr(job, c);
		rc = sqlite3_step(st);
		char *name = rc == SQLITE_ROW
			? xstrdup((const char *)sqlite3_column_text(st, 0)) : NULL;
		sqlite3_reset(st);
		if (rc != SQLITE_ROW)
			return rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
		st = bind_kind(c, "INSERT INTO jobject SELECT ?1, max(coalesce("
				  "(SELECT max(id) FROM jobject WHERE kind = ?1),"
				  " 0), coalesce((SELECT max(id) FROM jgone"
				  " WHERE kind = ?1), 0)) + 1, ?2, ?2, ?3");
		if (st == NULL) {
			free(name);
			return sq_job_dberr(job, c);
		}
		sqlite3_bind_int64(st, 2, (sqlite3_int64)sq_job_modseq(u, job));
		sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
		free(name);
		if (step_done(job, c, st) < 0)
			return -1;
		sq_job_change(job, 0, STORE_CHANGE_OBJECTS);
	}
}

/* The active script's name (NULL: none); -1 on error. */
static int active_name(struct sq_job *job, struct sq_conn *c, char **name_r)
{
	*name_r = NULL;
	sqlite3_stmt *st = sq_stmt(c, "SELECT name FROM sieve_script"
				      " WHERE active = 1");
	if (st == NULL)
		return sq_job_dberr(job, c);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*name_r = xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
}

static int sieve_change(struct sq_user *u, struct sq_conn *c,
			struct sq_job *job);

static int sieve_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct sieve_arg *a = job->arg;
	char *was = NULL;
	/* activation changes isActive of the old script and the new one */
	if (a->op == SV_ACTIVATE && active_name(job, c, &was) < 0)
		return -1;
	int r = sieve_change(u, c, job);
	if (r == 0 && a->op == SV_RENAME && strcmp(a->name, a->to) != 0) {
		sqlite3_stmt *st = bind_kind(c, "UPDATE jobject SET data = ?2"
					        " WHERE kind = ?1 AND data = ?3");
		if (st == NULL) {
			r = sq_job_dberr(job, c);
		} else {
			sqlite3_bind_text(st, 2, a->to, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, a->name, -1, SQLITE_STATIC);
			r = step_done(job, c, st);
		}
	}
	if (r == 0)
		r = ids_sync(u, c, job);
	if (r == 0 && (a->op == SV_PUT || a->op == SV_RENAME))
		r = ids_touch(u, c, job, a->op == SV_PUT ? a->name : a->to);
	if (r == 0 && a->op == SV_ACTIVATE &&
	    !(was && a->name && strcmp(was, a->name) == 0)) {
		if (was != NULL)
			r = ids_touch(u, c, job, was);
		if (r == 0 && a->name != NULL)
			r = ids_touch(u, c, job, a->name);
	}
	free(was);
	return r;
}

static int sieve_change(struct sq_user *u, struct sq_conn *c,
			struct sq_job *job)
{
	(void)u;
	struct sieve_arg *a = job->arg;
	sqlite3_stmt *st;
	bool active = false;
	int r;
	switch (a->op) {
	case SV_IDS:
		return 0;
	case SV_PUT:
		st = sq_stmt(c, "INSERT INTO sieve_script(name, source, compiled,"
				" modified) VALUES (?1, ?2, ?3, ?4)"
				" ON CONFLICT(name) DO UPDATE SET source = ?2,"
				" compiled = ?3, modified = ?4");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_text(st, 1, a->name, -1, SQLITE_STATIC);
		sqlite3_bind_blob64(st, 2, a->source ? a->source : "",
				    a->len, SQLITE_STATIC);
		if (a->image)
			sqlite3_bind_blob64(st, 3, a->image, a->image_len,
					    SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 3);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
		return step_done(job, c, st);
	case SV_ACTIVATE:
		if (a->name != NULL) {
			r = script_state(job, c, a->name, NULL);
			if (r <= 0)
				return r < 0 ? -1 : sq_job_fail(job, STORE_ERR_NOTFOUND,
								"No such script");
		}
		st = sq_stmt(c, "UPDATE sieve_script SET active ="
				" (name IS ?1) WHERE active = 1 OR name IS ?1");
		if (st == NULL)
			return sq_job_dberr(job, c);
		if (a->name)
			sqlite3_bind_text(st, 1, a->name, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 1);
		return step_done(job, c, st);
	case SV_DELETE:
		r = script_state(job, c, a->name, &active);
		if (r <= 0)
			return r < 0 ? -1 : sq_job_fail(job, STORE_ERR_NOTFOUND,
							"No such script");
		if (active)
			return sq_job_fail(job, STORE_ERR_EXISTS, "The script is "
					   "active");
		st = sq_stmt(c, "DELETE FROM sieve_script WHERE name = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_text(st, 1, a->name, -1, SQLITE_STATIC);
		return step_done(job, c, st);
	case SV_RENAME:
		r = script_state(job, c, a->name, NULL);
		if (r <= 0)
			return r < 0 ? -1 : sq_job_fail(job, STORE_ERR_NOTFOUND,
							"No such script");
		if (strcmp(a->name, a->to) == 0)
			return 0;
		r = script_state(job, c, a->to, NULL);
		if (r != 0)
			return r < 0 ? -1 : sq_job_fail(job, STORE_ERR_EXISTS,
							"A script of that name "
							"exists");
		st = sq_stmt(c, "UPDATE sieve_script SET name = ?2, modified = ?3"
				" WHERE name = ?1");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_text(st, 1, a->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, a->to, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
		return step_done(job, c, st);
	}
	return 0;
}

static int changed(struct sq_user *u, int ret)
{
	if (ret == 0)
		version_bump(u);
	return ret;
}

int sq_sieve_put(struct store_user *user, const char *name,
		 const char *source, size_t len, const void *image,
		 size_t image_len, struct store_error *err)
{
	struct sieve_arg a = {.op = SV_PUT, .name = name, .source = source,
			      .len = len, .image = image,
			      .image_len = image_len};
	return changed(SQU(user), sq_run(SQU(user), sieve_job, &a, err));
}

int sq_sieve_activate(struct store_user *user, const char *name,
		      struct store_error *err)
{
	struct sieve_arg a = {.op = SV_ACTIVATE, .name = name};
	return changed(SQU(user), sq_run(SQU(user), sieve_job, &a, err));
}

int sq_sieve_delete(struct store_user *user, const char *name,
		    struct store_error *err)
{
	struct sieve_arg a = {.op = SV_DELETE, .name = name};
	return changed(SQU(user), sq_run(SQU(user), sieve_job, &a, err));
}

int sq_sieve_rename(struct store_user *user, const char *from, const char *to,
		    struct store_error *err)
{
	struct sieve_arg a = {.op = SV_RENAME, .name = from, .to = to};
	return changed(SQU(user), sq_run(SQU(user), sieve_job, &a, err));
}

int sq_sieve_ids(struct store_user *user, struct store_error *err)
{
	struct sieve_arg a = {.op = SV_IDS};
	return sq_run(SQU(user), sieve_job, &a, err);
}

int sq_sieve_record_seen(struct store_user *user, const char *key, time_t now,
			 bool *seen_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = snap_begin(u, err);
	if (c == NULL)
		return -1;
	sqlite3_stmt *st = sq_stmt(c, "SELECT expires FROM sieve_record"
				      " WHERE key = ?");
	int ret = -1;
	if (st != NULL) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*seen_r = sqlite3_column_int64(st, 0) > (sqlite3_int64)now;
			ret = 0;
		} else if (rc == SQLITE_DONE) {
			*seen_r = false;
			ret = 0;
		}
		sqlite3_reset(st);
	}
	if (ret < 0)
		sq_db_error(c, err, "sieve_record");
	snap_end(u, c);
	return ret;
}

/* ---- delivery ------------------------------------------------------ */

struct deliver_arg {
	struct sq_body_copy *cps;
	struct store_sieve_copy *copies;
	size_t count;
	const struct store_sieve_record *records;
	size_t record_count;
};

static int deliver_job(struct sq_user *u, struct sq_conn *c,
		       struct sq_job *job)
{
	struct deliver_arg *d = job->arg;
	int ret = 0;
	for (size_t i = 0; i < d->count && ret == 0; i++) {
		job->arg = &d->cps[i].a;
		ret = sq_append_tx(u, c, job);
		job->arg = d;
		d->copies[i].uid_r = d->cps[i].a.uid;
	}
	if (ret < 0)
		return -1;
	if (d->record_count > 0) {
		sqlite3_stmt *st = sq_stmt(c, "DELETE FROM sieve_record"
					      " WHERE expires <= ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, (sqlite3_int64)time(NULL));
		if (step_done(job, c, st) < 0)
			return -1;
	}
	for (size_t i = 0; i < d->record_count; i++) {
		sqlite3_stmt *st = sq_stmt(c, "INSERT OR REPLACE INTO sieve_record"
					      " VALUES (?, ?)");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_text(st, 1, d->records[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)d->records[i].expires);
		if (step_done(job, c, st) < 0)
			return -1;
	}
	return 0;
}

int sq_sieve_deliver(struct store_user *user, struct store_sieve_copy *copies,
		     size_t count, const struct store_sieve_record *records,
		     size_t record_count, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct store_account_limits limits;
	if (count > 0 && sq_limits_get(user, &limits, err) < 0)
		return -1;
	struct sq_body_copy *cps = xcalloc(count ? count : 1, sizeof(*cps));
	size_t begun = 0;
	int ret = 0;
	for (; begun < count; begun++) {
		struct store_sieve_copy *cp = &copies[begun];
		if (sq_body_copy_begin(cp->body, u, cp->prefix, cp->prefix_len,
				       &cps[begun], err) < 0) {
			ret = -1;
			break;
		}
		cps[begun].a.mailbox = cp->mailbox;
		cps[begun].a.params = cp->params;
		cps[begun].a.limits = limits;
	}
	if (ret == 0) {
		struct deliver_arg d = {cps, copies, count, records, record_count};
		ret = sq_run(u, deliver_job, &d, err);
	}
	for (size_t i = 0; i < begun; i++)
		sq_body_copy_end(copies[i].body, u, &cps[i], ret == 0);
	free(cps);
	return ret;
}
