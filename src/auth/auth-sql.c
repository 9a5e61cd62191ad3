/*
 * The accounts' SQL layer (auth-sql.h): the helpers both drivers share,
 * and the SQLite driver over data_dir/accounts.db (WAL, so loftctl can
 * change it while loftd reads it; a point query costs microseconds and a
 * change committed by loftctl is seen by the next lookup without any
 * signal between the processes).
 */
#include "auth-sql.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define BUSY_TIMEOUT_MS 10000

/* ---- both drivers ---------------------------------------------------- */

void asql_bind_text(struct asql_stmt *st, int i, const char *s)
{
	if (s == NULL)
		st->conn->drv->bind(st, i, 'n', 0, NULL, 0);
	else
		st->conn->drv->bind(st, i, 's', 0, s, strlen(s));
}

void asql_finalize(struct asql_stmt *st)
{
	if (st != NULL)
		st->conn->drv->finalize(st);
}

void asql_close(struct asql_conn *c)
{
	if (c != NULL)
		c->drv->close(c);
}

int asql_end(struct asql_conn *c, bool ok)
{
	if (ok && asql_exec(c, "COMMIT") == 0)
		return 0;
	(void)asql_exec(c, "ROLLBACK");
	return -1;
}

static void bind_va(struct asql_stmt *st, const char *fmt, va_list ap)
{
	for (int i = 0; fmt[i] != '\0'; i++) {
		if (fmt[i] == 'i') {
			asql_bind_int64(st, i + 1, va_arg(ap, int64_t));
		} else if (fmt[i] == 's') {
			asql_bind_text(st, i + 1, va_arg(ap, const char *));
		} else if (fmt[i] == 'b') {
			const void *p = va_arg(ap, const void *);
			size_t n = va_arg(ap, size_t);
			asql_bind_blob(st, i + 1, p, n);
		}
	}
}

int asql_run(struct asql_conn *c, const char *sql, const char *fmt, ...)
{
	struct asql_stmt *st = asql_prepare(c, sql);
	if (st == NULL)
		return ASQL_ERROR;
	va_list ap;
	va_start(ap, fmt);
	bind_va(st, fmt, ap);
	va_end(ap);
	int rc;
	while ((rc = asql_step(st)) == ASQL_ROW)
		;
	asql_finalize(st);
	return rc == ASQL_DONE ? asql_changes(c) : rc;
}

int asql_int(struct asql_conn *c, int64_t *v_r, const char *sql,
	     const char *fmt, ...)
{
	*v_r = 0;
	struct asql_stmt *st = asql_prepare(c, sql);
	if (st == NULL)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	bind_va(st, fmt, ap);
	va_end(ap);
	int rc = asql_step(st);
	if (rc == ASQL_ROW)
		*v_r = asql_int64(st, 0);
	asql_finalize(st);
	return rc == ASQL_ROW ? 1 : rc == ASQL_DONE ? 0 : -1;
}

/* ---- SQLite ------------------------------------------------------------ */

static const char sqlite_schema_sql[] =
	"CREATE TABLE IF NOT EXISTS domains ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  created INTEGER NOT NULL);"
	/* AUTOINCREMENT: an id is never reused, so mail left behind by a
	 * deleted account can never surface in a new one. */
	"CREATE TABLE IF NOT EXISTS users ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  address TEXT NOT NULL UNIQUE,"
	"  domain_id INTEGER NOT NULL REFERENCES domains(id),"
	"  password_hash TEXT NOT NULL,"
	"  scram_salt BLOB,"
	"  scram_iterations INTEGER,"
	"  scram_stored_key BLOB,"
	"  scram_server_key BLOB,"
	"  disabled INTEGER NOT NULL DEFAULT 0,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS aliases ("
	"  address TEXT PRIMARY KEY,"
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE);"
	"CREATE TABLE IF NOT EXISTS user_settings ("
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  PRIMARY KEY (user_id, key));"
	"CREATE INDEX IF NOT EXISTS aliases_user ON aliases(user_id);"
	/* App passwords and web sessions (auth-token.c): hashes only. */
	"CREATE TABLE IF NOT EXISTS tokens ("
	"  id INTEGER PRIMARY KEY,"
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  hash BLOB NOT NULL UNIQUE,"
	"  created INTEGER NOT NULL,"
	"  expires INTEGER,"
	"  last_used INTEGER NOT NULL DEFAULT 0,"
	"  UNIQUE (user_id, name));"
	"CREATE TABLE IF NOT EXISTS web_sessions ("
	"  hash BLOB PRIMARY KEY,"
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  csrf TEXT NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL,"
	"  idle INTEGER NOT NULL,"
	"  address TEXT);"
	"CREATE INDEX IF NOT EXISTS web_sessions_user ON web_sessions(user_id);"
	/* Shared mailboxes (auth-acl.c): groups per domain ("$name" in an
	 * ACL), their members, and the reverse index of ACL grants (a hint:
	 * owner granted something to (kind, ident); kinds as store.h's
	 * enum store_acl_kind). */
	"CREATE TABLE IF NOT EXISTS groups ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  domain_id INTEGER NOT NULL REFERENCES domains(id),"
	"  name TEXT NOT NULL,"
	"  UNIQUE (domain_id, name));"
	"CREATE TABLE IF NOT EXISTS group_members ("
	"  group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,"
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  PRIMARY KEY (group_id, user_id)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS group_members_user ON group_members(user_id);"
	"CREATE TABLE IF NOT EXISTS acl_hints ("
	"  kind INTEGER NOT NULL, ident INTEGER NOT NULL,"
	"  owner INTEGER NOT NULL,"
	"  PRIMARY KEY (kind, ident, owner)) WITHOUT ROWID;";

/* Version 2 (issue 18): where each account's mail lives while the store
 * has both backends (0 sqlite, 1 postgres: enum store_backend). */
static const char sqlite_v2_sql[] =
	"ALTER TABLE users ADD COLUMN mail_store INTEGER NOT NULL DEFAULT 0;";

struct sq_conn {
	struct asql_conn base;
	sqlite3 *db;
};

struct sq_stmt {
	struct asql_stmt base;
	sqlite3_stmt *st;
};

#define SQC(c) ((struct sq_conn *)(c))
#define SQS(s) (((struct sq_stmt *)(s))->st)

static void sq_close(struct asql_conn *c)
{
	sqlite3_close(SQC(c)->db);
	free(c);
}

static struct asql_stmt *sq_prepare(struct asql_conn *c, const char *sql,
				    bool persistent)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v3(SQC(c)->db, sql, -1,
			       persistent ? SQLITE_PREPARE_PERSISTENT : 0, &st,
			       NULL) != SQLITE_OK)
		return NULL;
	struct sq_stmt *s = xcalloc(1, sizeof(*s));
	s->base.conn = c;
	s->st = st;
	return &s->base;
}

static void sq_bind(struct asql_stmt *st, int i, char kind, int64_t v,
		    const void *p, size_t n)
{
	sqlite3_stmt *s = SQS(st);
	switch (kind) {
	case 'i':
		sqlite3_bind_int64(s, i, v);
		break;
	case 's':
		sqlite3_bind_text(s, i, p, (int)n, SQLITE_TRANSIENT);
		break;
	case 'b':
		sqlite3_bind_blob(s, i, p, (int)n, SQLITE_TRANSIENT);
		break;
	default:
		sqlite3_bind_null(s, i);
	}
}

static int sq_step(struct asql_stmt *st)
{
	int rc = sqlite3_step(SQS(st));
	if (rc == SQLITE_ROW)
		return ASQL_ROW;
	if (rc == SQLITE_DONE)
		return ASQL_DONE;
	return (rc & 0xff) == SQLITE_CONSTRAINT ? ASQL_CONSTRAINT : ASQL_ERROR;
}

static bool sq_col_null(struct asql_stmt *st, int col)
{
	return sqlite3_column_type(SQS(st), col) == SQLITE_NULL;
}

static int64_t sq_col_int64(struct asql_stmt *st, int col)
{
	return sqlite3_column_int64(SQS(st), col);
}

static const char *sq_col_text(struct asql_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(SQS(st), col);
}

static const void *sq_col_blob(struct asql_stmt *st, int col, size_t *len_r)
{
	const void *p = sqlite3_column_blob(SQS(st), col);
	*len_r = (size_t)sqlite3_column_bytes(SQS(st), col);
	return p;
}

static void sq_reset(struct asql_stmt *st)
{
	sqlite3_reset(SQS(st));
	sqlite3_clear_bindings(SQS(st));
}

static void sq_finalize(struct asql_stmt *st)
{
	sqlite3_finalize(SQS(st));
	free(st);
}

static int sq_changes(struct asql_conn *c)
{
	return sqlite3_changes(SQC(c)->db);
}

static const char *sq_errmsg(struct asql_conn *c)
{
	return sqlite3_errmsg(SQC(c)->db);
}

static int sq_exec(struct asql_conn *c, const char *sql)
{
	return sqlite3_exec(SQC(c)->db, sql, NULL, NULL, NULL) == SQLITE_OK
		       ? 0 : -1;
}

static int sq_begin(struct asql_conn *c)
{
	return sq_exec(c, "BEGIN IMMEDIATE");
}

static bool sq_broken(struct asql_conn *c)
{
	(void)c;
	return false;
}

static int sq_schema(struct asql_conn *c, char **error_r)
{
	int rc = sq_begin(c);
	if (rc == 0) {
		int64_t version = 0, has = 0;
		bool ok = sq_exec(c, sqlite_schema_sql) == 0 &&
			  asql_int(c, &version, "PRAGMA user_version", "") >= 0 &&
			  asql_int(c, &has, "SELECT count(*) FROM "
				   "pragma_table_info('users') WHERE name = "
				   "'mail_store'", "") >= 0 &&
			  (has > 0 || sq_exec(c, sqlite_v2_sql) == 0) &&
			  (version >= 2 ||
			   sq_exec(c, "PRAGMA user_version = 2") == 0);
		rc = asql_end(c, ok);
	}
	if (rc < 0)
		*error_r = xasprintf("accounts.db: %s", sq_errmsg(c));
	return rc;
}

static const struct asql_driver sqlite_driver = {
	.name = "accounts.db",
	.close = sq_close,
	.prepare = sq_prepare,
	.bind = sq_bind,
	.step = sq_step,
	.col_null = sq_col_null,
	.col_int64 = sq_col_int64,
	.col_text = sq_col_text,
	.col_blob = sq_col_blob,
	.reset = sq_reset,
	.finalize = sq_finalize,
	.changes = sq_changes,
	.errmsg = sq_errmsg,
	.exec = sq_exec,
	.begin = sq_begin,
	.broken = sq_broken,
	.schema = sq_schema,
};

int asql_sqlite_open(const char *path, struct asql_conn **c_r,
		     char **error_r)
{
	/* No up-front page-cache slab per SQLite connection (20 pages, all
	 * touched when the slab is linked): pages are allocated as they are
	 * used. loftd keeps a connection or three open per logged-in mail
	 * account, so the slab was most of an idle account's memory (bench:
	 * idle IMAP memory per connection). Process-wide, so it must come
	 * before SQLite's first use; the store asks for it too, and whoever
	 * comes second (or any later call) gets SQLITE_MISUSE, which changes
	 * nothing. */
	sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
	struct sq_conn *c = xcalloc(1, sizeof(*c));
	c->base.drv = &sqlite_driver;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
		    SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
		*error_r = xasprintf("%s: %s", path,
				     c->db ? sqlite3_errmsg(c->db) : "no memory");
		sq_close(&c->base);
		return -1;
	}
	sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
	if (sq_exec(&c->base, "PRAGMA journal_mode = WAL; PRAGMA synchronous"
			      " = FULL; PRAGMA foreign_keys = ON;") < 0) {
		*error_r = xasprintf("%s: %s", path, sqlite3_errmsg(c->db));
		sq_close(&c->base);
		return -1;
	}
	*c_r = &c->base;
	return 0;
}
