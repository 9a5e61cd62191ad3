/*
 * Mailbox ACLs (RFC 4314) in the owner's index: table acl, one row per
 * (mailbox id, kind, identifier id, negative) with the rights as bits
 * (store.h "shared mailboxes"). Rows name a mailbox by id, so a RENAME
 * keeps them; CREATE copies the parent's rows and DELETE drops the
 * mailbox's, each in the transaction of the mailbox change
 * (sq-mailbox.c calls sq_acl_copy / sq_acl_drop). Schema version 8.
 */
#include "sq-private.h"

#include <stdlib.h>
#include <string.h>

static int mailbox_id(struct sq_conn *c, const char *name, uint32_t *id_r)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT id FROM mailbox WHERE name = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id_r = (uint32_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static void entry_from_row(sqlite3_stmt *st, int col,
			   struct store_acl_entry *e)
{
	e->kind = (enum store_acl_kind)sqlite3_column_int(st, col);
	e->id = sqlite3_column_int64(st, col + 1);
	e->negative = sqlite3_column_int(st, col + 2) != 0;
	e->rights = (unsigned)sqlite3_column_int64(st, col + 3);
}

static int read_entries(struct sq_conn *c, uint32_t id,
			struct store_acl_entry **entries_r, size_t *count_r)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT kind, ident, negative, rights"
				      " FROM acl WHERE mailbox = ?"
				      " ORDER BY kind, ident, negative");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	struct store_acl_entry *e = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			e = xrealloc(e, cap * sizeof(*e));
		}
		entry_from_row(st, 0, &e[n++]);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(e);
		return -1;
	}
	*entries_r = e;
	*count_r = n;
	return 0;
}

int sq_acl_read(struct store_user *user, const char *mailbox,
		uint32_t *mailbox_id_r, struct store_acl_entry **entries_r,
		size_t *count_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	*entries_r = NULL;
	*count_r = 0;
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	if (sq_read_begin(c, err) < 0) {
		sq_reader_put(u, c);
		return -1;
	}
	int ret = 0, r = mailbox_id(c, mailbox, mailbox_id_r);
	if (r < 0)
		ret = sq_db_error(c, err, "acl");
	else if (r == 0)
		ret = store_set_error(err, STORE_ERR_NOTFOUND,
				      "Mailbox doesn't exist: %s", mailbox);
	else if (read_entries(c, *mailbox_id_r, entries_r, count_r) < 0)
		ret = sq_db_error(c, err, "acl");
	sq_read_end(c);
	sq_reader_put(u, c);
	return ret;
}

struct acl_arg {
	const char *mailbox;
	const struct store_acl_entry *entry;
	int mode;
	unsigned max_entries;
};

static int acl_count(struct sq_conn *c, uint32_t id, int64_t *n_r)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT count(*) FROM acl"
				      " WHERE mailbox = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*n_r = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

static int acl_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct acl_arg *a = job->arg;
	const struct store_acl_entry *e = a->entry;
	uint32_t id;
	int r = mailbox_id(c, a->mailbox, &id);
	if (r < 0)
		return sq_job_dberr(job, c);
	if (r == 0)
		return sq_job_fail(job, STORE_ERR_NOTFOUND,
				   "Mailbox doesn't exist: %s", a->mailbox);
	/* the entry as it is now */
	sqlite3_stmt *st = sq_stmt(c, "SELECT rights FROM acl WHERE mailbox = ?"
				      " AND kind = ? AND ident = ?"
				      " AND negative = ?");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int(st, 2, (int)e->kind);
	sqlite3_bind_int64(st, 3, e->id);
	sqlite3_bind_int(st, 4, e->negative);
	int rc = sqlite3_step(st);
	bool exists = rc == SQLITE_ROW;
	unsigned old = exists ? (unsigned)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sq_job_dberr(job, c);
	unsigned rights = a->mode == 0 ? e->rights
			  : a->mode == 1 ? old | e->rights
			  : a->mode == -1 ? old & ~e->rights : 0;
	if (rights == old && (exists || rights == 0))
		return 0;   /* nothing changes */
	if (!exists && a->max_entries > 0) {
		int64_t n = 0;
		if (acl_count(c, id, &n) < 0)
			return sq_job_dberr(job, c);
		if (n >= (int64_t)a->max_entries)
			return sq_job_fail(job, STORE_ERR_LIMIT,
					   "Too many ACL entries on this"
					   " mailbox (at most %u)",
					   a->max_entries);
	}
	if (rights == 0)
		st = sq_stmt(c, "DELETE FROM acl WHERE mailbox = ?1 AND kind = ?2"
				" AND ident = ?3 AND negative = ?4");
	else
		st = sq_stmt(c, "INSERT OR REPLACE INTO acl(mailbox, kind, ident,"
				" negative, rights) VALUES (?1, ?2, ?3, ?4, ?5)");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int(st, 2, (int)e->kind);
	sqlite3_bind_int64(st, 3, e->id);
	sqlite3_bind_int(st, 4, e->negative);
	if (rights != 0)
		sqlite3_bind_int64(st, 5, rights);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_job_dberr(job, c);
	sq_job_modseq(u, job);
	sq_job_change(job, id, STORE_CHANGE_ACL);
	return 0;
}

int sq_acl_update(struct store_user *user, const char *mailbox,
		  const struct store_acl_entry *entry, int mode,
		  unsigned max_entries, struct store_error *err)
{
	struct acl_arg a = {mailbox, entry, mode, max_entries};
	return sq_run(SQU(user), acl_job, &a, err);
}

int sq_acl_all(struct store_user *user, struct store_acl_row **rows_r,
	       size_t *count_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	*rows_r = NULL;
	*count_r = 0;
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	sqlite3_stmt *st = sq_stmt(c, "SELECT m.name, a.mailbox, a.kind,"
				      " a.ident, a.negative, a.rights"
				      " FROM acl a JOIN mailbox m"
				      " ON m.id = a.mailbox"
				      " ORDER BY a.mailbox, a.kind, a.ident");
	int ret = 0, rc;
	struct store_acl_row *rows = NULL;
	size_t n = 0, cap = 0;
	if (st == NULL) {
		ret = sq_db_error(c, err, "acl");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			rows = xrealloc(rows, cap * sizeof(*rows));
		}
		rows[n].mailbox = xstrdup((const char *)sqlite3_column_text(st, 0));
		rows[n].mailbox_id = (uint32_t)sqlite3_column_int64(st, 1);
		entry_from_row(st, 2, &rows[n].entry);
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		ret = sq_db_error(c, err, "acl");
		store_acl_all_free(rows, n);
		rows = NULL;
		n = 0;
	}
out:
	sq_reader_put(u, c);
	*rows_r = rows;
	*count_r = n;
	return ret;
}

int sq_acl_copy(struct sq_conn *c, uint32_t from, uint32_t to)
{
	sqlite3_stmt *st = sq_stmt(c, "INSERT OR REPLACE INTO acl(mailbox, kind,"
				      " ident, negative, rights)"
				      " SELECT ?2, kind, ident, negative, rights"
				      " FROM acl WHERE mailbox = ?1");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, from);
	sqlite3_bind_int64(st, 2, to);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int sq_acl_drop(struct sq_conn *c, uint32_t mailbox_id)
{
	sqlite3_stmt *st = sq_stmt(c, "DELETE FROM acl WHERE mailbox = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int sq_acl_inherit(struct sq_conn *c, const char *name, uint32_t id)
{
	const char *slash = strrchr(name, '/');
	if (slash == NULL)
		return 0;
	char *parent = xstrndup(name, (size_t)(slash - name));
	uint32_t pid;
	int r = mailbox_id(c, parent, &pid);
	free(parent);
	if (r <= 0)
		return r;
	return sq_acl_copy(c, pid, id);
}
