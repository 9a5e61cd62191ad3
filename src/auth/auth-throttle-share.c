/*
 * The login throttle shared between nodes: its table in PostgreSQL
 * (loft_auth.throttle, schema version 3, auth-sql-pg.c), read and written
 * by the auth process for its node's mail process, and by loftctl.
 *
 * The counts themselves live in the mail process (auth-throttle.c), which
 * answers every login from memory. Once a second it sends the auth
 * process what changed since its last batch (AUTH_WIRE_THROTTLE_SYNC):
 * failures as increments, bans and known logins as times. Here they are
 * added to the rows in one transaction, under an advisory lock that also
 * orders the rows' seq numbers by commit, and the rows changed past the
 * seq the node last saw go back to it. So every node sees every other's
 * failures within about two periods, and a guesser spread over N nodes
 * meets the back-off it would meet on one.
 *
 * Nothing counted twice: each node's mail process names itself (a random
 * name per start) and numbers its batches; throttle_batches keeps the
 * last one applied, and a batch sent again because its answer was lost
 * (the auth process restarted, the connection to PostgreSQL broke after
 * COMMIT) is skipped. Nothing of the others lost: a node that dies loses
 * at most what it had not yet sent (one period); the rows are the sum of
 * what every node sent.
 *
 * Times are milliseconds in the database's clock: each node learns its
 * offset from the clock row of every answer.
 */
#include "auth-private.h"
#include "auth-sql.h"
#include "auth-wire.h"

#include "buf.h"
#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the advisory lock of the throttle's writes ('lofa' + 2) */
#define THROTTLE_LOCK "1819240035"
/* rows a node reads per request (it asks again while more are left) */
#define READ_LIMIT 1000
/* as auth-throttle.c */
#define WINDOW_MS "600000"
#define DAY_MS (24 * 3600 * 1000LL)
#define KNOWN_MS (30 * DAY_MS)

/* '{"a","b"}': text values as an array literal */
static void text_elem(struct buf *b, const char *s)
{
	buf_append_char(b, b->len > 0 ? ',' : '{');
	buf_append_char(b, '"');
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			buf_append_char(b, '\\');
		buf_append_char(b, *s);
	}
	buf_append_char(b, '"');
}

static void int_elem(struct buf *b, int64_t v)
{
	buf_printf(b, "%s%" PRId64, b->len > 0 ? "," : "{", v);
}

static const char *array_end(struct buf *b)
{
	if (b->len == 0)
		buf_append_char(b, '{');
	buf_append_char(b, '}');
	return b->data;    /* NUL-terminated */
}

enum { A_KEY, A_FAIL, A_LAST, A_BAN, A_BANS, A_GOOD, A_RESET, A_CLEAR,
       A_COUNT };

/* Adds one batch of rows (inside the transaction, the lock held). */
static int apply_rows(struct asql_conn *db, const uint8_t *rows,
		      size_t rows_len)
{
	struct buf a[A_COUNT];
	for (int i = 0; i < A_COUNT; i++)
		buf_init(&a[i], 0);
	size_t pos = 0;
	struct auth_throttle_row row;
	size_t n = 0, resets = 0, clears = 0;
	while (auth_wire_throttle_next(rows, rows_len, &pos, &row) == 1) {
		if (row.key[0] == '\0')
			continue;
		text_elem(&a[A_KEY], row.key);
		int_elem(&a[A_FAIL], row.failures);
		int_elem(&a[A_LAST], row.last_fail_ms);
		int_elem(&a[A_BAN], row.ban_until_ms);
		int_elem(&a[A_BANS], row.bans);
		int_elem(&a[A_GOOD], row.good_ms);
		if (row.flags & AUTH_THROTTLE_ROW_RESET) {
			text_elem(&a[A_RESET], row.key);
			resets++;
		}
		if (row.flags & AUTH_THROTTLE_ROW_CLEAR) {
			text_elem(&a[A_CLEAR], row.key);
			clears++;
		}
		n++;
	}
	const char *arr[A_COUNT];
	for (int i = 0; i < A_COUNT; i++)
		arr[i] = array_end(&a[i]);
	int rc = 0;
	/* a login (a pair's count restarts) and loftctl ban del come first:
	 * what the node counted after them is added next */
	if (resets > 0 &&
	    asql_run(db, "UPDATE throttle SET failures = 0 "
		     "WHERE key = ANY(?::text[])", "s", arr[A_RESET]) < 0)
		rc = -1;
	if (rc == 0 && clears > 0 &&
	    asql_run(db, "UPDATE throttle SET failures = 0, ban_until_ms = 0, "
		     "bans = 0 WHERE key = ANY(?::text[])", "s",
		     arr[A_CLEAR]) < 0)
		rc = -1;
	/* failures added (or started again when the row's were forgotten:
	 * the window passed since its last failure or ban); times the
	 * latest; bans only ever sent by the node that banned */
	if (rc == 0 && n > 0 &&
	    asql_run(db, "INSERT INTO throttle AS t (key, failures, "
		     "last_fail_ms, ban_until_ms, bans, good_ms, seq) "
		     "SELECT k, f, l, b, bs, g, nextval('throttle_seq') FROM "
		     "unnest(?1::text[], ?2::bigint[], ?3::bigint[], "
		     "?4::bigint[], ?5::bigint[], ?6::bigint[]) "
		     "AS u(k, f, l, b, bs, g) "
		     "ON CONFLICT (key) DO UPDATE SET "
		     "failures = CASE WHEN excluded.failures > 0 AND "
		     "  excluded.last_fail_ms - GREATEST(t.last_fail_ms, "
		     "  t.ban_until_ms) > " WINDOW_MS " THEN excluded.failures "
		     "  ELSE t.failures + excluded.failures END, "
		     "last_fail_ms = GREATEST(t.last_fail_ms, "
		     "  excluded.last_fail_ms), "
		     "ban_until_ms = GREATEST(t.ban_until_ms, "
		     "  excluded.ban_until_ms), "
		     "bans = GREATEST(t.bans, excluded.bans), "
		     "good_ms = GREATEST(t.good_ms, excluded.good_ms), "
		     "seq = excluded.seq", "ssssss", arr[A_KEY], arr[A_FAIL],
		     arr[A_LAST], arr[A_BAN], arr[A_BANS], arr[A_GOOD]) < 0)
		rc = -1;
	for (int i = 0; i < A_COUNT; i++)
		buf_free(&a[i]);
	return rc;
}

/* Rows with nothing left in them, and nodes not heard of for a day:
 * now and then (the lock held). */
static int forget_old(struct asql_conn *db, int64_t now)
{
	if (asql_run(db, "DELETE FROM throttle WHERE last_fail_ms < ? AND "
		     "ban_until_ms < ? AND good_ms < ?", "iii",
		     now - 600000 - DAY_MS, now - DAY_MS, now - KNOWN_MS) < 0)
		return -1;
	return asql_run(db, "DELETE FROM throttle_batches WHERE at_ms < ?",
			"i", now - DAY_MS) < 0 ? -1 : 0;
}

static int db_now(struct asql_conn *db, int64_t *now_r)
{
	return asql_int(db, now_r, "SELECT (extract(epoch FROM "
			"clock_timestamp()) * 1000)::bigint", "") == 1 ? 0 : -1;
}

static int write_batch(struct asql_conn *db, const char *node, int64_t batch,
		       const uint8_t *rows, size_t rows_len)
{
	if (asql_exec(db, "BEGIN") < 0)
		return -1;
	int64_t done = 0, now = 0;
	bool ok = asql_exec(db, "SELECT pg_advisory_xact_lock(" THROTTLE_LOCK
			    ")") == 0 &&
		  asql_int(db, &done, "SELECT batch FROM throttle_batches "
			   "WHERE node = ?", "s", node) >= 0 &&
		  db_now(db, &now) == 0;
	if (ok && done < batch) {
		ok = apply_rows(db, rows, rows_len) == 0 &&
		     asql_run(db, "INSERT INTO throttle_batches(node, batch, "
			      "at_ms) VALUES (?, ?, ?) ON CONFLICT (node) DO "
			      "UPDATE SET batch = excluded.batch, at_ms = "
			      "excluded.at_ms", "sii", node, batch, now) >= 0;
		if (ok && batch % 300 == 1)
			ok = forget_old(db, now) == 0;
	} else if (ok) {
		log_info("auth", NULL, "throttle: batch %" PRId64 " of node %s "
			 "was applied before (sent again)", batch, node);
	}
	return asql_end(db, ok) == 0 && ok ? 0 : -1;
}

/* One row read back, with its memory. */
struct read_row {
	struct auth_throttle_row row;
};

int auth_throttle_db_sync(struct auth *auth, const char *node, int64_t batch,
			  const uint8_t *rows, size_t rows_len, int64_t cursor,
			  auth_throttle_row_fn *fn, void *ctx, char **error_r)
{
	if (auth->pg_conninfo == NULL) {
		*error_r = xstrdup("the throttle is shared only with [auth] "
				   "postgres");
		return -1;
	}
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	struct asql_conn *db = c->db;
	int rc = 0;
	if (batch > 0 && write_batch(db, node, batch, rows, rows_len) < 0)
		rc = -1;
	struct read_row *got = NULL;
	size_t n = 0;
	int64_t now = 0;
	if (rc == 0) {
		struct asql_stmt *st = asql_prepare(
			db, "SELECT key, failures, last_fail_ms, ban_until_ms, "
			"bans, good_ms, seq FROM throttle WHERE seq > ? "
			"ORDER BY seq LIMIT ?");
		if (st == NULL) {
			rc = -1;
		} else {
			asql_bind_int64(st, 1, cursor);
			asql_bind_int64(st, 2, READ_LIMIT + 1);
			got = xcalloc(READ_LIMIT + 1, sizeof(*got));
			int s;
			while ((s = asql_step(st)) == ASQL_ROW) {
				const char *key = asql_text(st, 0);
				struct auth_throttle_row *r = &got[n].row;
				if (key == NULL ||
				    strlen(key) > AUTH_WIRE_THROTTLE_KEY_MAX)
					continue;
				snprintf(r->key, sizeof(r->key), "%s", key);
				int64_t f = asql_int64(st, 1);
				r->failures = f < 0 ? 0 : f > UINT32_MAX
					? UINT32_MAX : (uint32_t)f;
				r->last_fail_ms = asql_int64(st, 2);
				r->ban_until_ms = asql_int64(st, 3);
				int64_t b = asql_int64(st, 4);
				r->bans = b < 0 ? 0 : b > UINT32_MAX
					? UINT32_MAX : (uint32_t)b;
				r->good_ms = asql_int64(st, 5);
				r->seq = asql_int64(st, 6);
				if (++n > READ_LIMIT)
					break;
			}
			if (s == ASQL_ERROR)
				rc = -1;
			asql_finalize(st);
		}
		if (rc == 0 && db_now(db, &now) < 0)
			rc = -1;
	}
	if (rc < 0)
		*error_r = xasprintf("postgres: throttle: %s", asql_errmsg(db));
	auth_conn_put(auth, c);
	if (rc == 0) {
		struct auth_throttle_row clock;
		memset(&clock, 0, sizeof(clock));
		clock.last_fail_ms = now;
		clock.seq = n > READ_LIMIT;
		fn(ctx, &clock);
		for (size_t i = 0; i < n && i < READ_LIMIT; i++)
			fn(ctx, &got[i].row);
	}
	free(got);
	return rc;
}

int auth_throttle_db_clear(struct auth *auth, char kind, const char *name,
			   char **error_r)
{
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	struct asql_conn *db = c->db;
	bool ok = asql_exec(db, "BEGIN") == 0;
	if (ok) {
		ok = asql_exec(db, "SELECT pg_advisory_xact_lock(" THROTTLE_LOCK
			       ")") == 0;
		/* the address's or account's row and its pairs' */
		if (ok && kind == 'a')
			ok = asql_run(db, "UPDATE throttle SET failures = 0, "
				      "ban_until_ms = 0, bans = 0, seq = "
				      "nextval('throttle_seq') WHERE key = "
				      "'a:' || ?1 OR starts_with(key, 'p:' || "
				      "?1 || ' ')", "s", name) >= 0;
		else if (ok)
			ok = asql_run(db, "UPDATE throttle SET failures = 0, "
				      "ban_until_ms = 0, bans = 0, seq = "
				      "nextval('throttle_seq') WHERE key = "
				      "'u:' || ?1 OR (starts_with(key, 'p:') "
				      "AND right(key, length(?1) + 1) = ' ' || "
				      "?1)", "s", name) >= 0;
		if (asql_end(db, ok) < 0)
			ok = false;
	}
	if (!ok)
		*error_r = xasprintf("postgres: throttle: %s", asql_errmsg(db));
	auth_conn_put(auth, c);
	return ok ? 0 : -1;
}

/* auth_throttle_sync_fn for a throttle in the process that holds the
 * accounts' connections (tests; a loftd without privilege separation). */
int auth_throttle_direct_sync(void *ctx, const char *node, int64_t batch,
			      int64_t cursor,
			      const struct auth_throttle_row *rows, size_t n,
			      auth_throttle_row_fn *fn, void *fn_ctx)
{
	struct auth *auth = ctx;
	struct buf b;
	buf_init(&b, 0);
	for (size_t i = 0; i < n; i++) {
		struct auth_wire_buf w;
		auth_wire_begin(&w, 0, 0, 0);
		auth_wire_throttle_row(&w, &rows[i]);
		buf_append(&b, w.data + AUTH_WIRE_HEADER,
			   w.len - AUTH_WIRE_HEADER);
	}
	char *error = NULL;
	int rc = auth_throttle_db_sync(auth, node, batch,
				       (const uint8_t *)b.data, b.len, cursor,
				       fn, fn_ctx, &error);
	if (rc < 0) {
		log_warn("auth", NULL, "%s", error);
		free(error);
	}
	buf_free(&b);
	return rc;
}
