/*
 * Client activity of an account: when a synchronising client (IMAP;
 * later JMAP and the webmail) last logged in. POP3's pop3_delete = auto
 * reads it to choose between hiding a DELE'd message (another device
 * still shows the mail) and moving it to Trash. Kept in account.sync_login
 * (schema version 2).
 */
#include "sq-private.h"

/* A login rewrites the mark only when it is older than this, so a phone
 * that reconnects all day costs no commit each time. */
#define SQ_SYNC_LOGIN_STEP 3600

static int read_sync_login(struct sq_user *u, time_t *when_r,
			   struct store_error *err)
{
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	int ret = 0;
	sqlite3_stmt *st = sq_stmt(c, "SELECT sync_login FROM account");
	if (st != NULL && sqlite3_step(st) == SQLITE_ROW)
		*when_r = (time_t)sqlite3_column_int64(st, 0);
	else
		ret = sq_db_error(c, err, "sync_login");
	if (st != NULL)
		sqlite3_reset(st);
	sq_reader_put(u, c);
	return ret;
}

static int note_login_job(struct sq_user *u, struct sq_conn *c,
			  struct sq_job *job)
{
	const time_t *now = job->arg;
	sqlite3_stmt *st = sq_stmt(c, "UPDATE account SET sync_login = ?"
				      " WHERE sync_login < ?");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)*now);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)*now);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
}

int sq_note_sync_login(struct store_user *user, time_t now,
		       struct store_error *err)
{
	struct sq_user *u = SQU(user);
	time_t last = 0;
	if (read_sync_login(u, &last, err) < 0)
		return -1;
	if (last <= now && now - last < SQ_SYNC_LOGIN_STEP)
		return 0;
	return sq_run(u, note_login_job, &now, err);
}

int sq_last_sync_login(struct store_user *user, time_t *when_r,
		       struct store_error *err)
{
	*when_r = 0;
	return read_sync_login(SQU(user), when_r, err);
}

int sq_pop3_auto_mode(struct sq_conn *c, time_t now, int *mode_r)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT sync_login FROM account");
	if (st == NULL)
		return -1;
	int rc = sqlite3_step(st);
	time_t last = rc == SQLITE_ROW ? (time_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	if (rc != SQLITE_ROW)
		return -1;
	*mode_r = store_sync_active(last, now) ? STORE_POP3_HIDE
					       : STORE_POP3_TRASH;
	return 0;
}
