/*
 * Annotations (RFC 5464 METADATA) and URLAUTH mailbox access keys (RFC
 * 4467), in the user's index: table annotation (mailbox 0 is the server)
 * and table access_key, both emptied for a mailbox by a trigger when its
 * row goes. See store.h "metadata".
 *
 * Both are per user (RFC 5464 3.2's /private entries, RFC 4467 3's
 * access key table): column viewer is 0 for the owner's own rows and a
 * viewer's user id for that viewer's rows on the owner's mailbox (its
 * /private entries, its key). /shared entries are the mailbox's, viewer
 * 0, whoever sets them. Schema version 13; 9 to 12 had the owner's rows
 * only (tables metadata and urlauth_key), step 12 -> 13 moves them.
 *
 * Reads use a reader connection; writes are jobs of the group commit.
 * The limits are checked inside the job, after its changes, for the
 * owner's rows and apart for each viewer's: a job over them fails and
 * its savepoint takes the changes back.
 */
#include "sq-private.h"

#include <stdlib.h>
#include <string.h>

/* version 9 to 12: the owner's rows only (step 8 -> 9 makes these) */
const char sq_metadata_v9_sql[] =
	"CREATE TABLE IF NOT EXISTS metadata(mailbox INTEGER NOT NULL,"
	" name TEXT NOT NULL, value BLOB NOT NULL,"
	" PRIMARY KEY (mailbox, name)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS urlauth_key(mailbox INTEGER PRIMARY KEY,"
	" key BLOB NOT NULL);"
	"CREATE TRIGGER IF NOT EXISTS mailbox_annotations_gone AFTER DELETE"
	" ON mailbox BEGIN"
	" DELETE FROM metadata WHERE mailbox = old.id;"
	" DELETE FROM urlauth_key WHERE mailbox = old.id;"
	" END;";

#define SQ_METADATA_SCHEMA                                               \
	"CREATE TABLE IF NOT EXISTS annotation(mailbox INTEGER NOT NULL,"  \
	" viewer INTEGER NOT NULL, name TEXT NOT NULL,"                  \
	" value BLOB NOT NULL,"                                          \
	" PRIMARY KEY (mailbox, viewer, name)) WITHOUT ROWID;"           \
	"CREATE TABLE IF NOT EXISTS access_key(mailbox INTEGER NOT NULL,"  \
	" viewer INTEGER NOT NULL, key BLOB NOT NULL,"                   \
	" PRIMARY KEY (mailbox, viewer)) WITHOUT ROWID;"                 \
	"CREATE TRIGGER IF NOT EXISTS mailbox_annotation_gone AFTER DELETE" \
	" ON mailbox BEGIN"                                              \
	" DELETE FROM annotation WHERE mailbox = old.id;"                \
	" DELETE FROM access_key WHERE mailbox = old.id;"                \
	" END;"

const char sq_metadata_schema_sql[] = SQ_METADATA_SCHEMA;

/* 12 -> 13: the owner's rows move to the tables with a viewer column */
const char sq_metadata_viewer_sql[] =
	SQ_METADATA_SCHEMA
	"INSERT INTO annotation(mailbox, viewer, name, value)"
	" SELECT mailbox, 0, name, value FROM metadata;"
	"INSERT INTO access_key(mailbox, viewer, key)"
	" SELECT mailbox, 0, key FROM urlauth_key;"
	"DROP TRIGGER IF EXISTS mailbox_annotations_gone;"
	"DROP TABLE metadata;"
	"DROP TABLE urlauth_key;";

/* The id of mailbox (0 for the server); 0 with NOTFOUND if none. */
static int mailbox_id(struct sq_conn *c, const char *mailbox, uint32_t *id_r,
		      struct store_error *err)
{
	*id_r = 0;
	if (mailbox == NULL)
		return 0;
	struct sq_mbox mb;
	int r = sq_mbox_get(c, mailbox, &mb);
	if (r < 0)
		return sq_db_error(c, err, "metadata mailbox");
	if (r == 0 || mb.noselect)
		return store_set_error(err, STORE_ERR_NOTFOUND, "No such mailbox");
	*id_r = mb.id;
	return 0;
}

static int get_one(struct sq_conn *c, uint32_t mbox, int64_t viewer,
		   const char *name, int depth, struct store_metadata_list *l)
{
	int64_t who = store_metadata_row_viewer(name, viewer);
	sqlite3_stmt *st = sq_stmt(c, "SELECT name, value FROM annotation"
				      " WHERE mailbox = ? AND viewer = ?"
				      " AND name = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mbox);
	sqlite3_bind_int64(st, 2, who);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		store_metadata_push(l, (const char *)sqlite3_column_text(st, 0),
				    (size_t)sqlite3_column_bytes(st, 0),
				    sqlite3_column_blob(st, 1),
				    (size_t)sqlite3_column_bytes(st, 1));
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return -1;
	if (depth == 0)
		return 0;
	/* descendants: names between "name/" and "name0" ('0' follows
	 * '/'); depth 1 keeps the direct children. All of them are under
	 * the same /private or /shared as name, so whose rows they are
	 * does not change. */
	size_t n = strlen(name);
	char *lo = xasprintf("%s/", name), *hi = xasprintf("%s0", name);
	st = sq_stmt(c, "SELECT name, value FROM annotation WHERE mailbox = ?"
			" AND viewer = ? AND name >= ? AND name < ?");
	if (st == NULL) {
		free(lo);
		free(hi);
		return -1;
	}
	sqlite3_bind_int64(st, 1, mbox);
	sqlite3_bind_int64(st, 2, who);
	sqlite3_bind_text(st, 3, lo, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, hi, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *found = (const char *)sqlite3_column_text(st, 0);
		size_t flen = (size_t)sqlite3_column_bytes(st, 0);
		if (store_metadata_in_depth(found, flen, n, depth))
			store_metadata_push(l, found, flen,
					    sqlite3_column_blob(st, 1),
					    (size_t)sqlite3_column_bytes(st, 1));
	}
	sqlite3_reset(st);
	free(lo);
	free(hi);
	return rc == SQLITE_DONE ? 0 : -1;
}

int sq_metadata_get(struct store_user *user, int64_t viewer,
		    const char *mailbox, const char *const *names,
		    size_t name_count, int depth,
		    struct store_metadata **entries_r, size_t *count_r,
		    struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_reader_get(u, err);
	struct store_metadata_list l = {0};
	uint32_t id;
	if (c == NULL)
		return -1;
	int ret = sq_read_begin(c, err);
	if (ret == 0)
		ret = mailbox_id(c, mailbox, &id, err);
	for (size_t i = 0; ret == 0 && i < name_count; i++)
		if (get_one(c, id, viewer, names[i], depth, &l) < 0)
			ret = sq_db_error(c, err, "metadata get");
	sq_read_end(c);
	sq_reader_put(u, c);
	if (ret < 0) {
		store_metadata_free(l.items, l.count);
		return -1;
	}
	store_metadata_sort(&l);
	*entries_r = l.items;
	*count_r = l.count;
	return 0;
}

struct set_arg {
	int64_t viewer;
	const char *mailbox;
	const struct store_metadata *entries;
	size_t count;
};

/* The limits of whose rows (0: the owner's and every /shared entry). */
static int check_limits(struct sq_conn *c, struct sq_job *job, int64_t who)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT count(*), total(length(value))"
				      " FROM annotation WHERE viewer = ?");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, who);
	int rc = sqlite3_step(st);
	int64_t n = sqlite3_column_int64(st, 0);
	double total = sqlite3_column_double(st, 1);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW)
		return sq_job_dberr(job, c);
	return store_metadata_limits(n, total, &job->err);
}

static int set_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct set_arg *a = job->arg;
	struct sq_mbox mb = {0};
	bool own = false, viewers = false;
	if (a->mailbox != NULL && sq_job_mbox(job, c, a->mailbox, &mb) < 0)
		return -1;
	for (size_t i = 0; i < a->count; i++) {
		const struct store_metadata *e = &a->entries[i];
		int64_t who = store_metadata_row_viewer(e->name, a->viewer);
		sqlite3_stmt *st = e->value == NULL
			? sq_stmt(c, "DELETE FROM annotation WHERE mailbox = ?"
				     " AND viewer = ? AND name = ?")
			: sq_stmt(c, "INSERT OR REPLACE INTO annotation(mailbox,"
				     " viewer, name, value) VALUES (?, ?, ?, ?)");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, mb.id);
		sqlite3_bind_int64(st, 2, who);
		sqlite3_bind_text(st, 3, e->name, -1, SQLITE_STATIC);
		if (e->value != NULL)
			sqlite3_bind_blob(st, 4, e->value, (int)e->value_len,
					  SQLITE_STATIC);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
		own |= who == 0;
		viewers |= who != 0;
	}
	if ((own && check_limits(c, job, 0) < 0) ||
	    (viewers && check_limits(c, job, a->viewer) < 0))
		return -1;
	if (a->mailbox != NULL) {
		/* RFC 7162 3.2: a change of the mailbox's annotations is a
		 * change of the mailbox */
		uint64_t modseq = sq_job_modseq(u, job);
		if (sq_mbox_adjust(c, mb.id, 0, 0, 0, 0, modseq, 0) < 0)
			return sq_job_dberr(job, c);
	}
	sq_job_change(job, mb.id, STORE_CHANGE_METADATA);
	return 0;
}

int sq_metadata_set(struct store_user *user, int64_t viewer,
		    const char *mailbox, const struct store_metadata *entries,
		    size_t count, struct store_error *err)
{
	struct set_arg a = {viewer, mailbox, entries, count};
	return sq_run(SQU(user), set_job, &a, err);
}

struct key_arg {
	int64_t viewer;
	const char *mailbox;
	bool reset;
	unsigned char *key;
};

/* The key of (mailbox, viewer) in c's transaction: 1 found, 0 none, -1
 * a database error. */
static int key_read(struct sq_conn *c, uint32_t mailbox_id, int64_t viewer,
		    unsigned char *key_r)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT key FROM access_key"
				      " WHERE mailbox = ? AND viewer = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	sqlite3_bind_int64(st, 2, viewer);
	int rc = sqlite3_step(st);
	int found = 0;
	if (rc == SQLITE_ROW &&
	    sqlite3_column_bytes(st, 0) == STORE_URLAUTH_KEY_LEN) {
		memcpy(key_r, sqlite3_column_blob(st, 0), STORE_URLAUTH_KEY_LEN);
		found = 1;
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? found : -1;
}

static int key_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	(void)u;
	struct key_arg *a = job->arg;
	struct sq_mbox mb;
	if (a->mailbox == NULL) {
		/* RESETKEY without a mailbox: every key of the viewer (0:
		 * the owner) goes; new ones are made when next needed */
		sqlite3_stmt *st = sq_stmt(c, "DELETE FROM access_key"
					      " WHERE viewer = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, a->viewer);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		return rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
	}
	if (sq_job_mbox(job, c, a->mailbox, &mb) < 0)
		return -1;
	unsigned char fresh[STORE_URLAUTH_KEY_LEN];
	store_random(fresh, sizeof(fresh));
	sqlite3_stmt *st = sq_stmt(c, a->reset
		? "INSERT OR REPLACE INTO access_key(mailbox, viewer, key)"
		  " VALUES (?, ?, ?)"
		: "INSERT OR IGNORE INTO access_key(mailbox, viewer, key)"
		  " VALUES (?, ?, ?)");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, mb.id);
	sqlite3_bind_int64(st, 2, a->viewer);
	sqlite3_bind_blob(st, 3, fresh, sizeof(fresh), SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_job_dberr(job, c);
	return key_read(c, mb.id, a->viewer, a->key) == 1
		       ? 0 : sq_job_dberr(job, c);
}

int sq_urlauth_key(struct store_user *user, int64_t viewer,
		   const char *mailbox, bool reset, unsigned char *key_r,
		   struct store_error *err)
{
	struct sq_user *u = SQU(user);
	if (!reset && mailbox != NULL) {
		/* the common case: the key is there, no commit needed */
		struct sq_conn *c = sq_reader_get(u, err);
		if (c == NULL)
			return -1;
		struct sq_mbox mb;
		int found = 0;
		if (sq_read_begin(c, err) < 0) {
			sq_reader_put(u, c);
			return -1;
		}
		if (sq_mbox_get(c, mailbox, &mb) == 1)
			found = key_read(c, mb.id, viewer, key_r);
		sq_read_end(c);
		sq_reader_put(u, c);
		if (found == 1)
			return 0;
	}
	struct key_arg a = {viewer, mailbox, reset, key_r};
	return sq_run(u, key_job, &a, err);
}
