/*
 * POP3's maildrop lock across nodes (store_maildrop_lock): a
 * session-level advisory lock per maildrop, all of a node's held on one
 * connection of its own (outside the pool, so POP3 sessions never take
 * the pool's connections). The lock dies with the connection: a node
 * that exits, crashes or is cut off from the database gives its locks up
 * (at once when its socket closes; after the server's TCP keepalive
 * when the node vanishes). If the connection breaks under a live node,
 * the next lock call reconnects and takes its held locks again (one that
 * another node took meanwhile is logged: two sessions may then share a
 * maildrop until one ends, as with a single POP3 server losing its lock
 * file).
 */
#include "pg-private.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* The advisory locks' first key ("lop3" in ASCII); the second is the
 * user id. */
#define POP3_LOCK_CLASS 0x6c6f7033

static PGresult *lock_exec(struct pg_conn *c, const char *sql, int64_t user_id,
			   struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, POP3_LOCK_CLASS);
	pg_p_int(&p, user_id);
	return pg_exec(c, sql, &p, err);
}

static const char try_sql[] =
	"SELECT pg_try_advisory_lock($1::int, $2::int)";
static const char unlock_sql[] =
	"SELECT pg_advisory_unlock($1::int, $2::int)";

/* 1 taken, 0 held elsewhere, -1 error (the connection dropped). */
static int try_lock(struct pg_store *s, int64_t user_id, struct store_error *err)
{
	PGresult *r = lock_exec(s->lock_conn, try_sql, user_id, err);
	if (r == NULL) {
		pg_conn_free(s->lock_conn);
		s->lock_conn = NULL;
		return -1;
	}
	int got = pg_bool(r, 0, 0) ? 1 : 0;
	PQclear(r);
	return got;
}

/* Under lock_mu: a live connection, with this node's locks on it. */
static int lock_conn_ready(struct store *store, struct store_error *err)
{
	struct pg_store *s = PGS(store);
	if (s->lock_conn != NULL && !s->lock_conn->broken &&
	    PQstatus(s->lock_conn->db) == CONNECTION_OK)
		return 0;
	if (s->lock_conn != NULL) {
		pg_conn_free(s->lock_conn);
		s->lock_conn = NULL;
	}
	s->lock_conn = pg_conn_open(store, err);
	if (s->lock_conn == NULL)
		return -1;
	for (size_t i = 0; i < s->locks_count; i++) {
		int r = try_lock(s, s->locks_held[i], err);
		if (r < 0)
			return -1;
		if (r == 0)
			log_warn("store", NULL, "postgres: user %lld: the POP3"
				 " lock was lost with its connection and another"
				 " node holds it now", (long long)s->locks_held[i]);
	}
	return 0;
}

int pg_maildrop_lock(struct store *store, int64_t user_id,
		     struct store_error *err)
{
	struct pg_store *s = PGS(store);
	pthread_mutex_lock(&s->lock_mu);
	int ret = lock_conn_ready(store, err);
	if (ret == 0) {
		ret = try_lock(s, user_id, err);
		/* a connection that broke just now: once more, fresh */
		if (ret < 0 && lock_conn_ready(store, err) == 0)
			ret = try_lock(s, user_id, err);
	}
	if (ret == 1) {
		if (s->locks_count == s->locks_cap) {
			s->locks_cap = s->locks_cap ? s->locks_cap * 2 : 16;
			s->locks_held = xrealloc(s->locks_held, s->locks_cap *
						 sizeof(*s->locks_held));
		}
		s->locks_held[s->locks_count++] = user_id;
	}
	pthread_mutex_unlock(&s->lock_mu);
	return ret;
}

void pg_maildrop_unlock(struct store *store, int64_t user_id)
{
	struct pg_store *s = PGS(store);
	pthread_mutex_lock(&s->lock_mu);
	bool held = false;
	for (size_t i = 0; i < s->locks_count; i++) {
		if (s->locks_held[i] == user_id) {
			s->locks_held[i] = s->locks_held[--s->locks_count];
			held = true;
			break;
		}
	}
	if (held && s->lock_conn != NULL) {
		PGresult *r = lock_exec(s->lock_conn, unlock_sql, user_id, NULL);
		if (r == NULL) {
			/* gone with the connection anyway */
			pg_conn_free(s->lock_conn);
			s->lock_conn = NULL;
		}
		PQclear(r);
	}
	pthread_mutex_unlock(&s->lock_mu);
}

void pg_maildrop_close(struct store *store)
{
	struct pg_store *s = PGS(store);
	if (s->lock_conn != NULL)
		pg_conn_free(s->lock_conn);
	s->lock_conn = NULL;
	free(s->locks_held);
	s->locks_held = NULL;
	s->locks_count = s->locks_cap = 0;
	pthread_mutex_destroy(&s->lock_mu);
}
