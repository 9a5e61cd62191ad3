/*
 * The accounts' SQL, on either of its two homes: SQLite
 * (data_dir/accounts.db, the default) or PostgreSQL (`[auth] postgres`,
 * by default the store's `[store] postgres` when `[store] backend =
 * postgres`: every node then shares the same accounts). The auth logic
 * (auth-db.c, auth-acl.c, auth-token.c, ...) is written once against
 * this layer; each statement is written once, in the SQL both engines
 * take:
 *   - parameters as ? or ?N (the PostgreSQL driver makes them $N);
 *   - ON CONFLICT ... DO NOTHING / DO UPDATE, never INSERT OR ...;
 *   - RETURNING id, never last_insert_rowid;
 *   - no SQLite-only functions (strftime, ifnull): values are bound.
 * A write that reads before it writes (count, then insert) runs inside
 * asql_begin: SQLite's BEGIN IMMEDIATE, PostgreSQL's BEGIN plus one
 * transaction-level advisory lock, so such writers are serialised across
 * nodes as they are across processes on one machine.
 *
 * The stepping API mirrors sqlite3_step: a statement is prepared, bound
 * (1-based), stepped (ASQL_ROW, ASQL_DONE, or an error), read (0-based
 * columns, valid until the next step, reset or finalize), reset or
 * finalized. Bound strings and blobs are copied.
 */
#ifndef LOFT_AUTH_SQL_H
#define LOFT_AUTH_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum asql_rc {
	ASQL_DONE = 0,
	ASQL_ROW = 1,
	ASQL_ERROR = -1,
	ASQL_CONSTRAINT = -2,      /* a UNIQUE / foreign key said no */
};

struct asql_conn;
struct asql_stmt;

struct asql_driver {
	const char *name;          /* for messages: "accounts.db", "postgres" */
	void (*close)(struct asql_conn *c);
	/* persistent: kept for the connection's life (prepared once) */
	struct asql_stmt *(*prepare)(struct asql_conn *c, const char *sql,
				     bool persistent);
	/* kind: 'i' int64 v, 's' text (p, n), 'b' blob (p, n), 'n' null */
	void (*bind)(struct asql_stmt *st, int i, char kind, int64_t v,
		     const void *p, size_t n);
	int (*step)(struct asql_stmt *st);
	bool (*col_null)(struct asql_stmt *st, int col);
	int64_t (*col_int64)(struct asql_stmt *st, int col);
	const char *(*col_text)(struct asql_stmt *st, int col);
	const void *(*col_blob)(struct asql_stmt *st, int col, size_t *len_r);
	void (*reset)(struct asql_stmt *st);
	void (*finalize)(struct asql_stmt *st);
	/* rows changed by the last INSERT/UPDATE/DELETE stepped to its end */
	int (*changes)(struct asql_conn *c);
	const char *(*errmsg)(struct asql_conn *c);
	/* statements without parameters (COMMIT, ROLLBACK, the schema) */
	int (*exec)(struct asql_conn *c, const char *sql);
	int (*begin)(struct asql_conn *c);
	/* the connection cannot be used again (server gone): not pooled */
	bool (*broken)(struct asql_conn *c);
	/* the tables where they are missing, one process at a time */
	int (*schema)(struct asql_conn *c, char **error_r);
};

struct asql_conn {
	const struct asql_driver *drv;
};

struct asql_stmt {
	struct asql_conn *conn;
};

/* data_dir/accounts.db (created, WAL, schema); 0 or -1 with *error_r. */
int asql_sqlite_open(const char *path, struct asql_conn **c_r,
		     char **error_r);
/* A connection to conninfo (libpq's string, passed as is), its schema
 * loft_auth made on first use; timeout_secs bounds the connect. */
int asql_pg_open(const char *conninfo, unsigned timeout_secs,
		 struct asql_conn **c_r, char **error_r);
static inline int asql_schema(struct asql_conn *c, char **error_r)
{
	return c->drv->schema(c, error_r);
}

static inline struct asql_stmt *asql_prepare(struct asql_conn *c,
					     const char *sql)
{
	return c->drv->prepare(c, sql, false);
}
static inline void asql_bind_int64(struct asql_stmt *st, int i, int64_t v)
{
	st->conn->drv->bind(st, i, 'i', v, NULL, 0);
}
/* NULL binds SQL NULL */
void asql_bind_text(struct asql_stmt *st, int i, const char *s);
static inline void asql_bind_textn(struct asql_stmt *st, int i,
				   const char *s, size_t n)
{
	st->conn->drv->bind(st, i, 's', 0, s, n);
}
static inline void asql_bind_blob(struct asql_stmt *st, int i, const void *p,
				  size_t n)
{
	st->conn->drv->bind(st, i, 'b', 0, p, n);
}
static inline void asql_bind_null(struct asql_stmt *st, int i)
{
	st->conn->drv->bind(st, i, 'n', 0, NULL, 0);
}
static inline int asql_step(struct asql_stmt *st)
{
	return st->conn->drv->step(st);
}
static inline bool asql_null(struct asql_stmt *st, int col)
{
	return st->conn->drv->col_null(st, col);
}
static inline int64_t asql_int64(struct asql_stmt *st, int col)
{
	return st->conn->drv->col_int64(st, col);
}
/* NULL for SQL NULL */
static inline const char *asql_text(struct asql_stmt *st, int col)
{
	return st->conn->drv->col_text(st, col);
}
static inline const void *asql_blob(struct asql_stmt *st, int col,
				    size_t *len_r)
{
	return st->conn->drv->col_blob(st, col, len_r);
}
static inline void asql_reset(struct asql_stmt *st)
{
	st->conn->drv->reset(st);
}
/* NULL is fine */
void asql_finalize(struct asql_stmt *st);
static inline int asql_changes(struct asql_conn *c)
{
	return c->drv->changes(c);
}
static inline const char *asql_errmsg(struct asql_conn *c)
{
	return c->drv->errmsg(c);
}
static inline int asql_exec(struct asql_conn *c, const char *sql)
{
	return c->drv->exec(c, sql);
}
static inline int asql_begin(struct asql_conn *c)
{
	return c->drv->begin(c);
}
/* COMMIT when ok, else ROLLBACK; 0, or -1 if the COMMIT failed. */
int asql_end(struct asql_conn *c, bool ok);
void asql_close(struct asql_conn *c);

/* One statement, bound from fmt (i = int64_t, s = const char * (NULL:
 * null), b = const void *, size_t), stepped to its end. The rows changed,
 * or ASQL_ERROR / ASQL_CONSTRAINT. */
int asql_run(struct asql_conn *c, const char *sql, const char *fmt, ...);
/* The first column of the first row as an integer (*v_r 0 without a
 * row); 1 a row, 0 none, -1 error. Bound as asql_run. */
int asql_int(struct asql_conn *c, int64_t *v_r, const char *sql,
	     const char *fmt, ...);

#endif
