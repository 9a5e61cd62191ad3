/*
 * The PostgreSQL backend's connections, statements, schema, accounts and
 * transactions (pg-private.h), and its vtable. What the backend does not
 * have yet refuses with a temporary error that names it.
 */
#include "pg-private.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "pg-rows.h"

/* ---- parameters and results ----------------------------------------- */

void pg_p_init(struct pg_params *p)
{
	memset(p, 0, sizeof(*p));
}

void pg_p_int(struct pg_params *p, int64_t v)
{
	snprintf(p->num[p->n], sizeof(p->num[p->n]), "%lld", (long long)v);
	p->v[p->n] = p->num[p->n];
	p->n++;
}

void pg_p_str(struct pg_params *p, const char *s)
{
	p->v[p->n++] = s;
}

void pg_p_bin(struct pg_params *p, const void *data, size_t len)
{
	p->v[p->n] = data != NULL ? data : "";
	p->len[p->n] = (int)len;
	p->fmt[p->n] = 1;
	p->n++;
}

static uint64_t be_read(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

int64_t pg_int(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return 0;
	const unsigned char *p = (const unsigned char *)PQgetvalue(r, row, col);
	int n = PQgetlength(r, row, col);
	uint64_t v = be_read(p, n);
	switch (n) {
	case 1: return (int8_t)v;
	case 2: return (int16_t)v;
	case 4: return (int32_t)v;
	default: return (int64_t)v;
	}
}

bool pg_bool(const PGresult *r, int row, int col)
{
	return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] != 0;
}

const char *pg_val(const PGresult *r, int row, int col, size_t *len_r)
{
	if (PQgetisnull(r, row, col)) {
		if (len_r != NULL)
			*len_r = 0;
		return NULL;
	}
	if (len_r != NULL)
		*len_r = (size_t)PQgetlength(r, row, col);
	return PQgetvalue(r, row, col);
}

char *pg_strdup(const PGresult *r, int row, int col)
{
	size_t len;
	const char *v = pg_val(r, row, col, &len);
	return v != NULL ? xstrndup(v, len) : NULL;
}

/* ---- connections ------------------------------------------------------ */

int pg_unavailable(struct store_error *err)
{
	store_set_error(err, STORE_ERR_UNAVAILABLE, "The mail store cannot"
			" be reached now, try again later");
	return -1;
}

/* The database away rather than busy: the connection lost, the server
 * shutting down or starting (57P01-57P03), or a server that is not the
 * primary (25006: a read-only transaction, a standby after failover). */
static bool conn_lost(struct pg_conn *c, const char *state)
{
	if (PQstatus(c->db) != CONNECTION_OK)
		return true;
	if (state == NULL)
		return false;
	return strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0 ||
	       strcmp(state, "25006") == 0;
}

static int conn_error(struct pg_conn *c, const PGresult *res, const char *what,
		      struct store_error *err)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE)
					: NULL;
	const char *msg = res != NULL ? PQresultErrorMessage(res) : NULL;
	if (msg == NULL || msg[0] == '\0')
		msg = PQerrorMessage(c->db);
	bool lost = conn_lost(c, state);
	if (lost)
		c->broken = true;
	/* the call may run again (pg-retry.c) when its transaction cannot
	 * have committed: lost before its COMMIT (class 08, the server
	 * shutting down), a serialization failure or a deadlock */
	pg_retry_mark(strcmp(what, "COMMIT") != 0 &&
		      (c->broken || (state != NULL &&
				     (strncmp(state, "08", 2) == 0 ||
				      strcmp(state, "40001") == 0 ||
				      strcmp(state, "40P01") == 0 ||
				      strncmp(state, "57P0", 4) == 0))));
	if (state != NULL && strcmp(state, "23505") == 0)
		return store_set_error(err, STORE_ERR_EXISTS, "Already exists");
	log_error("store", NULL, "postgres %s: %s", what, msg);
	if (lost)
		return pg_unavailable(err);
	/* 53100: the database's disk is full */
	if (state != NULL && strcmp(state, "53100") == 0)
		return store_set_full(err);
	/* 57014: statement timeout; 40001/40P01: serialization, deadlock;
	 * 53: other resources */
	return store_set_error(err, STORE_ERR_TEMP,
			       "The mail store is not available now,"
			       " try again later");
}

PGconn *pg_connect(const struct pg_store *s, const char *app)
{
	char timeout[16], user_timeout[24];
	snprintf(timeout, sizeof(timeout), "%u", s->timeout);
	snprintf(user_timeout, sizeof(user_timeout), "%u", s->timeout * 1000);
	/* ours first: what the admin's string says wins (expand_dbname puts
	 * its keys after these). A dead primary is noticed in seconds: an
	 * idle connection by keepalives (5 s, then 3 probes 2 s apart), a
	 * busy one by tcp_user_timeout (unacknowledged data for
	 * postgres_timeout); a multi-host string finds the writable one
	 * (a promoted standby) with target_session_attrs. */
	const char *keys[] = {"connect_timeout", "application_name",
			      "keepalives", "keepalives_idle",
			      "keepalives_interval", "keepalives_count",
			      "tcp_user_timeout", "target_session_attrs",
			      "dbname", NULL};
	const char *vals[] = {timeout, app, "1", "5", "2", "3", user_timeout,
			      "read-write", s->conninfo, NULL};
	return PQconnectdbParams(keys, vals, 1);
}

struct pg_conn *pg_conn_open(struct store *store, struct store_error *err)
{
	struct pg_store *s = PGS(store);
	PGconn *db = pg_connect(s, "loftd");
	if (db == NULL || PQstatus(db) != CONNECTION_OK) {
		log_error("store", NULL, "postgres connect: %s",
			  db != NULL ? PQerrorMessage(db) : "out of memory");
		PQfinish(db);
		pg_unavailable(err);
		return NULL;
	}
	/* the server notices a node that vanished (cut off, dead) in
	 * seconds too, and so ends its session and frees the row locks
	 * it held (else other nodes' writes to that account wait out
	 * lock_timeout until TCP gives up, hours later); and the
	 * database's clock (pg_now) */
	char *set = xasprintf("SET statement_timeout = %u; SET lock_timeout = %u;"
			      " SET synchronous_commit = on;"
			      " SET client_min_messages = warning;"
			      " SET tcp_keepalives_idle = 5;"
			      " SET tcp_keepalives_interval = 2;"
			      " SET tcp_keepalives_count = 3;"
			      " SET tcp_user_timeout = %u;"
			      " SELECT extract(epoch FROM clock_timestamp())",
			      s->timeout * 1000, s->timeout * 1000,
			      s->timeout * 1000);
	struct timespec t0, t1;
	clock_gettime(CLOCK_REALTIME, &t0);
	PGresult *r = PQexec(db, set);
	clock_gettime(CLOCK_REALTIME, &t1);
	free(set);
	bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
	if (ok) {
		/* against the middle of the round trip, to the second */
		double mid = ((double)t0.tv_sec + (double)t1.tv_sec) / 2 +
			     ((double)t0.tv_nsec + (double)t1.tv_nsec) / 2e9;
		double d = strtod(PQgetvalue(r, 0, 0), NULL) - mid;
		atomic_store(&s->clock_skew,
			     (int64_t)(d >= 0 ? d + 0.5 : d - 0.5));
	}
	PQclear(r);
	if (!ok) {
		log_error("store", NULL, "postgres session: %s",
			  PQerrorMessage(db));
		PQfinish(db);
		pg_unavailable(err);
		return NULL;
	}
	struct pg_conn *c = xcalloc(1, sizeof(*c));
	c->db = db;
	c->store = store;
	return c;
}

time_t pg_db_time(struct store *store, time_t node_time)
{
	return node_time + (time_t)atomic_load(&PGS(store)->clock_skew);
}

time_t pg_now(struct store *store)
{
	return pg_db_time(store, time(NULL));
}

void pg_conn_free(struct pg_conn *c)
{
	PQfinish(c->db);
	free(c->prepared);
	free(c);
}

/* An idle connection has nothing to read: if it has, the server ended
 * it (a restart, pg_terminate_backend) or it broke. */
static bool conn_alive(struct pg_conn *c)
{
	if (c->broken || PQstatus(c->db) != CONNECTION_OK)
		return false;
	struct pollfd p = {.fd = PQsocket(c->db), .events = POLLIN};
	if (p.fd < 0)
		return false;
	/* an idle session is told nothing but its end (a FATAL message,
	 * then EOF, which may not have arrived yet) */
	if (poll(&p, 1, 0) == 0)
		return true;
	PQconsumeInput(c->db);
	return false;
}

struct pg_conn *pg_conn_get(struct store *store, struct store_error *err)
{
	struct pg_store *s = PGS(store);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += s->timeout;
	unsigned delay_ms = 50;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		if (s->free_count > 0) {
			struct pg_conn *c = s->free_conns[--s->free_count];
			pthread_mutex_unlock(&s->mu);
			if (conn_alive(c))
				return c;
			/* the server restarted or ended it while it idled */
			log_info("store", NULL, "postgres: a pooled connection"
				 " was lost: %s", PQerrorMessage(c->db));
			pg_conn_free(c);
			pthread_mutex_lock(&s->mu);
			s->open_count--;
			continue;
		}
		if (s->open_count < s->max_conns) {
			s->open_count++;
			pthread_mutex_unlock(&s->mu);
			struct pg_conn *c = pg_conn_open(store, err);
			if (c != NULL)
				return c;
			pthread_mutex_lock(&s->mu);
			s->open_count--;
			pthread_cond_signal(&s->cond);
			/* the database restarting or failing over: again
			 * within postgres_timeout */
			struct timespec now;
			clock_gettime(CLOCK_REALTIME, &now);
			if (now.tv_sec * 1000L + now.tv_nsec / 1000000L +
			    delay_ms >= until.tv_sec * 1000L +
			    until.tv_nsec / 1000000L) {
				pthread_mutex_unlock(&s->mu);
				return NULL;
			}
			pthread_mutex_unlock(&s->mu);
			usleep(delay_ms * 1000);
			/* at most 250 ms apart: a promoted standby is found
			 * within a quarter second of taking writes */
			delay_ms = delay_ms * 2 > 250 ? 250 : delay_ms * 2;
			pthread_mutex_lock(&s->mu);
			continue;
		}
		if (pthread_cond_timedwait(&s->cond, &s->mu, &until) ==
		    ETIMEDOUT) {
			pthread_mutex_unlock(&s->mu);
			store_set_error(err, STORE_ERR_TEMP, "The mail store is"
					" busy, try again later");
			return NULL;
		}
	}
}

void pg_conn_put(struct store *store, struct pg_conn *c)
{
	struct pg_store *s = PGS(store);
	if (c->in_tx && !c->broken) {
		PGresult *r = PQexec(c->db, "ROLLBACK");
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			c->broken = true;
		PQclear(r);
		c->in_tx = false;
	}
	if (c->broken || PQstatus(c->db) != CONNECTION_OK) {
		pg_conn_free(c);
		pthread_mutex_lock(&s->mu);
		s->open_count--;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->mu);
		return;
	}
	pthread_mutex_lock(&s->mu);
	s->free_conns[s->free_count++] = c;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->mu);
}

PGresult *pg_exec(struct pg_conn *c, const char *sql,
		  const struct pg_params *p, struct store_error *err)
{
	size_t i;
	for (i = 0; i < c->prepared_count; i++) {
		if (c->prepared[i] == sql)
			break;
	}
	char name[16];
	snprintf(name, sizeof(name), "s%zu", i);
	if (i == c->prepared_count) {
		PGresult *r = PQprepare(c->db, name, sql, 0, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			conn_error(c, r, "prepare", err);
			log_error("store", NULL, "postgres statement: %s", sql);
			PQclear(r);
			return NULL;
		}
		PQclear(r);
		if (c->prepared_count == c->prepared_cap) {
			c->prepared_cap = c->prepared_cap ? c->prepared_cap * 2 : 32;
			c->prepared = xrealloc(c->prepared, c->prepared_cap *
					       sizeof(*c->prepared));
		}
		c->prepared[c->prepared_count++] = sql;
	}
	static const struct pg_params none;
	if (p == NULL)
		p = &none;
	if (c->in_tx && c->store != NULL) {
		_Atomic int *cut = &PGS(c->store)->test_cut_statement;
		int n = atomic_load(cut);
		if (n < 0 || (n > 0 && atomic_fetch_sub(cut, 1) == 1))
			shutdown(PQsocket(c->db), SHUT_RDWR);
	}
	PGresult *r = PQexecPrepared(c->db, name, p->n, p->v, p->len, p->fmt, 1);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		conn_error(c, r, "query", err);
		PQclear(r);
		return NULL;
	}
	return r;
}

int pg_run(struct pg_conn *c, const char *sql, const struct pg_params *p,
	   struct store_error *err)
{
	PGresult *r = pg_exec(c, sql, p, err);
	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}

int pg_cmd(struct pg_conn *c, const char *sql, struct store_error *err)
{
	PGresult *r = PQexec(c->db, sql);
	int ret = 0;
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		ret = conn_error(c, r, sql, err);
	PQclear(r);
	return ret;
}

/* ---- schema ------------------------------------------------------------ */

/* Partitioned tables are made by partition_sql below. */
static const char schema_sql[] =
	"CREATE TABLE loft_schema (version integer NOT NULL);"
	"CREATE TABLE account (user_id bigint PRIMARY KEY,"
	" modseq bigint NOT NULL DEFAULT 1,"
	" uidvalidity bigint NOT NULL DEFAULT 0,"
	" bytes bigint NOT NULL DEFAULT 0,"
	" messages bigint NOT NULL DEFAULT 0,"
	" sync_login bigint NOT NULL DEFAULT 0);"
	"CREATE TABLE mailbox (user_id bigint NOT NULL, id integer NOT NULL,"
	" name text NOT NULL, uidvalidity bigint NOT NULL,"
	" uidnext bigint NOT NULL DEFAULT 1, highestmodseq bigint NOT NULL,"
	" special_use integer NOT NULL DEFAULT 0,"
	" noselect boolean NOT NULL DEFAULT false, objectid text NOT NULL,"
	" recent_upto bigint NOT NULL DEFAULT 1,"
	" expunge_horizon bigint NOT NULL DEFAULT 0,"
	" PRIMARY KEY (user_id, id), UNIQUE (user_id, name));"
	"CREATE TABLE subscription (user_id bigint NOT NULL, name text NOT NULL,"
	" PRIMARY KEY (user_id, name));"
	"CREATE TABLE keyword (user_id bigint NOT NULL, mailbox integer NOT NULL,"
	" name text NOT NULL, PRIMARY KEY (user_id, mailbox, name));"
	"CREATE SEQUENCE blob_id;"
	"CREATE TABLE blob (user_id bigint NOT NULL,"
	" id bigint NOT NULL DEFAULT nextval('blob_id'),"
	" sha256 text NOT NULL, body_size bigint NOT NULL,"
	" prefix bytea NOT NULL, envelope bytea, bodystructure bytea,"
	" body bytea, parts bytea, preview bytea, sort_subject bytea,"
	" sort_from bytea, sort_to bytea, sort_cc bytea,"
	" sort_display_from bytea, sort_display_to bytea,"
	" sent_date bigint NOT NULL DEFAULT 0, message_id bytea,"
	" in_reply_to bytea, refs bytea, header_text bytea, body_text bytea,"
	" thread bigint NOT NULL DEFAULT 0,"
	" PRIMARY KEY (user_id, id)) PARTITION BY HASH (user_id);"
	/* THREADID: the thread of each Message-ID seen (hex of its bytes) */
	"CREATE TABLE thread_ref (user_id bigint NOT NULL, msgid text NOT NULL,"
	" thread bigint NOT NULL, PRIMARY KEY (user_id, msgid));"
	"CREATE TABLE msg (user_id bigint NOT NULL, mailbox integer NOT NULL,"
	" uid bigint NOT NULL, blob bigint NOT NULL, flags integer NOT NULL,"
	" keywords text, modseq bigint NOT NULL, size bigint NOT NULL,"
	" internaldate bigint NOT NULL, savedate bigint NOT NULL,"
	" pop3_hidden boolean NOT NULL DEFAULT false,"
	" pop3_first_retr bigint NOT NULL DEFAULT 0,"
	" PRIMARY KEY (user_id, mailbox, uid)) PARTITION BY HASH (user_id);"
	"CREATE INDEX msg_modseq ON msg (user_id, mailbox, modseq);"
	"CREATE INDEX msg_blob ON msg (user_id, blob);"
	"CREATE TABLE expunged (user_id bigint NOT NULL,"
	" mailbox integer NOT NULL, uid bigint NOT NULL,"
	" modseq bigint NOT NULL, time bigint NOT NULL,"
	" PRIMARY KEY (user_id, mailbox, uid)) PARTITION BY HASH (user_id);"
	"CREATE INDEX expunged_modseq ON expunged (user_id, mailbox, modseq);"
	"DO $$ BEGIN FOR i IN 0..15 LOOP"
	" EXECUTE format('CREATE TABLE %I PARTITION OF blob"
	"  FOR VALUES WITH (MODULUS 16, REMAINDER %s)', 'blob_p' || i, i);"
	" EXECUTE format('CREATE TABLE %I PARTITION OF msg"
	"  FOR VALUES WITH (MODULUS 16, REMAINDER %s)', 'msg_p' || i, i);"
	" EXECUTE format('CREATE TABLE %I PARTITION OF expunged"
	"  FOR VALUES WITH (MODULUS 16, REMAINDER %s)', 'expunged_p' || i, i);"
	" END LOOP; END $$;";

/* Step 1 -> 2: bodies counted by name for the collector (pg-blob.c):
 * blob_object rows, kept by triggers on blob, and the lease table. */
static const char schema_step2_sql[] =
	"CREATE TABLE blob_object (sha256 text PRIMARY KEY,"
	" size bigint NOT NULL, refs bigint NOT NULL DEFAULT 0,"
	" orphan_since timestamptz);"
	"CREATE INDEX blob_object_orphan ON blob_object (orphan_since)"
	" WHERE refs = 0;"
	"CREATE TABLE loft_lease (name text PRIMARY KEY, holder bigint NOT NULL,"
	" expires timestamptz NOT NULL);"
	"CREATE FUNCTION loft_blob_ref() RETURNS trigger LANGUAGE plpgsql AS $f$"
	" BEGIN IF TG_OP = 'INSERT' THEN"
	"  INSERT INTO blob_object AS o (sha256, size, refs)"
	"  VALUES (NEW.sha256, NEW.body_size, 1) ON CONFLICT (sha256)"
	"  DO UPDATE SET refs = o.refs + 1, orphan_since = NULL;"
	" ELSE"
	"  UPDATE blob_object SET refs = refs - 1, orphan_since ="
	"  CASE WHEN refs <= 1 THEN now() END WHERE sha256 = OLD.sha256;"
	" END IF; RETURN NULL; END $f$;"
	"CREATE TRIGGER blob_ref AFTER INSERT OR DELETE ON blob"
	" FOR EACH ROW EXECUTE FUNCTION loft_blob_ref();"
	"INSERT INTO blob_object (sha256, size, refs) SELECT sha256,"
	" max(body_size), count(*) FROM blob GROUP BY sha256;";

/* Step 2 -> 3: Sieve scripts and records (pg-sieve.c), JMAP stored
 * objects and tombstones (pg-jmap.c), ACLs (pg-acl.c) and per-user \Seen
 * (pg-seen.c). Rows go with their account (and their mailbox, message)
 * by ON DELETE CASCADE; an ACL is inherited from the parent when a
 * mailbox is made (or a \Noselect one selectable again) and dropped
 * when it becomes \Noselect, by triggers, as the embedded backend's
 * mailbox code does. */
static const char schema_step3_sql[] =
	/* JMAP: changes up to this modseq can no longer be calculated
	 * (tombstones pruned) */
	"ALTER TABLE account ADD COLUMN jmap_horizon bigint NOT NULL"
	" DEFAULT 0;"
	"CREATE TABLE sieve_script (user_id bigint NOT NULL"
	" REFERENCES account ON DELETE CASCADE, name text NOT NULL,"
	" source bytea NOT NULL, compiled bytea,"
	" active boolean NOT NULL DEFAULT false, modified bigint NOT NULL,"
	" PRIMARY KEY (user_id, name));"
	"CREATE TABLE sieve_record (user_id bigint NOT NULL"
	" REFERENCES account ON DELETE CASCADE, key text NOT NULL,"
	" expires bigint NOT NULL, PRIMARY KEY (user_id, key));"
	"CREATE TABLE jobject (user_id bigint NOT NULL"
	" REFERENCES account ON DELETE CASCADE, kind integer NOT NULL,"
	" id bigint NOT NULL, created bigint NOT NULL, modseq bigint NOT NULL,"
	" data text NOT NULL, PRIMARY KEY (user_id, kind, id));"
	"CREATE INDEX jobject_modseq ON jobject (user_id, kind, modseq);"
	"CREATE TABLE jgone (user_id bigint NOT NULL"
	" REFERENCES account ON DELETE CASCADE, kind integer NOT NULL,"
	" id bigint NOT NULL, oid text, created bigint NOT NULL,"
	" modseq bigint NOT NULL, at bigint NOT NULL,"
	" PRIMARY KEY (user_id, kind, id)) PARTITION BY HASH (user_id);"
	"CREATE INDEX jgone_modseq ON jgone (user_id, kind, modseq);"
	"CREATE INDEX jgone_at ON jgone (at);"
	"CREATE TABLE acl (user_id bigint NOT NULL, mailbox integer NOT NULL,"
	" kind integer NOT NULL, ident bigint NOT NULL,"
	" negative boolean NOT NULL, rights integer NOT NULL,"
	" PRIMARY KEY (user_id, mailbox, kind, ident, negative),"
	" FOREIGN KEY (user_id, mailbox) REFERENCES mailbox (user_id, id)"
	" ON DELETE CASCADE);"
	"CREATE FUNCTION loft_acl_inherit() RETURNS trigger LANGUAGE plpgsql"
	" AS $f$ BEGIN"
	" IF TG_OP = 'UPDATE' AND NEW.noselect THEN"
	"  DELETE FROM acl WHERE user_id = NEW.user_id AND mailbox = NEW.id;"
	" ELSIF position('/' in NEW.name) > 0 THEN"
	"  INSERT INTO acl SELECT NEW.user_id, NEW.id, a.kind, a.ident,"
	"  a.negative, a.rights FROM acl a JOIN mailbox m ON m.user_id ="
	"  a.user_id AND m.id = a.mailbox WHERE m.user_id = NEW.user_id AND"
	"  m.name = regexp_replace(NEW.name, '/[^/]*$', '')"
	"  ON CONFLICT DO NOTHING;"
	" END IF; RETURN NULL; END $f$;"
	"CREATE TRIGGER acl_inherit AFTER INSERT ON mailbox"
	" FOR EACH ROW EXECUTE FUNCTION loft_acl_inherit();"
	"CREATE TRIGGER acl_noselect AFTER UPDATE OF noselect ON mailbox"
	" FOR EACH ROW WHEN (OLD.noselect IS DISTINCT FROM NEW.noselect)"
	" EXECUTE FUNCTION loft_acl_inherit();"
	"CREATE TABLE seen_mode (user_id bigint NOT NULL,"
	" mailbox integer NOT NULL, shared boolean NOT NULL,"
	" PRIMARY KEY (user_id, mailbox),"
	" FOREIGN KEY (user_id, mailbox) REFERENCES mailbox (user_id, id)"
	" ON DELETE CASCADE);"
	"CREATE TABLE seen_pvt (user_id bigint NOT NULL,"
	" mailbox integer NOT NULL, uid bigint NOT NULL, viewer bigint NOT NULL,"
	" seen boolean NOT NULL, modseq bigint NOT NULL,"
	" PRIMARY KEY (user_id, mailbox, uid, viewer),"
	" FOREIGN KEY (user_id, mailbox, uid) REFERENCES msg"
	" ON DELETE CASCADE) PARTITION BY HASH (user_id);"
	"CREATE INDEX seen_pvt_modseq ON seen_pvt"
	" (user_id, viewer, mailbox, modseq);"
	"CREATE TABLE seen_count (user_id bigint NOT NULL,"
	" viewer bigint NOT NULL, mailbox integer NOT NULL, n bigint NOT NULL,"
	" PRIMARY KEY (user_id, viewer, mailbox),"
	" FOREIGN KEY (user_id, mailbox) REFERENCES mailbox (user_id, id)"
	" ON DELETE CASCADE);"
	"CREATE FUNCTION loft_seen_count() RETURNS trigger LANGUAGE plpgsql"
	" AS $f$ DECLARE d integer := 0; r record; BEGIN"
	" IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;"
	" IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.seen THEN d := d + 1;"
	" END IF;"
	" IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.seen THEN d := d - 1;"
	" END IF;"
	" IF d > 0 THEN"
	"  INSERT INTO seen_count AS s SELECT r.user_id, r.viewer,"
	"  r.mailbox, d WHERE EXISTS (SELECT 1 FROM mailbox WHERE"
	"  user_id = r.user_id AND id = r.mailbox)"
	"  ON CONFLICT (user_id, viewer, mailbox) DO UPDATE SET n = s.n + d;"
	" ELSIF d < 0 THEN"
	"  UPDATE seen_count SET n = n + d WHERE user_id = r.user_id AND"
	"  viewer = r.viewer AND mailbox = r.mailbox;"
	" END IF; RETURN NULL; END $f$;"
	"CREATE TRIGGER seen_count AFTER INSERT OR DELETE OR UPDATE OF seen"
	" ON seen_pvt FOR EACH ROW EXECUTE FUNCTION loft_seen_count();"
	"DO $$ BEGIN FOR i IN 0..15 LOOP"
	" EXECUTE format('CREATE TABLE %I PARTITION OF jgone"
	"  FOR VALUES WITH (MODULUS 16, REMAINDER %s)', 'jgone_p' || i, i);"
	" EXECUTE format('CREATE TABLE %I PARTITION OF seen_pvt"
	"  FOR VALUES WITH (MODULUS 16, REMAINDER %s)', 'seen_pvt_p' || i, i);"
	" END LOOP; END $$;";

/* Step 3 -> 4: exact search through pg_trgm (pg-message.c
 * pg_search_text): GIN indexes of each account's folded header and body
 * text (loft_text: the bytes as encode(..., 'escape') writes them, which
 * any byte sequence has), candidates verified on the bytes. pg_trgm and
 * btree_gin come with postgresql-contrib; both are trusted extensions
 * (CREATE on the database is enough). */
static const char schema_step4_sql[] =
	"CREATE EXTENSION IF NOT EXISTS pg_trgm;"
	"CREATE EXTENSION IF NOT EXISTS btree_gin;"
	"CREATE FUNCTION loft_text(bytea) RETURNS text LANGUAGE sql IMMUTABLE"
	" STRICT PARALLEL SAFE AS $f$ SELECT encode($1, 'escape') $f$;"
	"CREATE INDEX blob_header_trgm ON blob USING gin"
	" (user_id, loft_text(header_text) gin_trgm_ops);"
	"CREATE INDEX blob_body_trgm ON blob USING gin"
	" (user_id, loft_text(body_text) gin_trgm_ops);";

/* Step 4 -> 5: annotations (RFC 5464) and URLAUTH keys (RFC 4467) of
 * pg-metadata.c: mailbox 0 is the server, viewer 0 the owner (and every
 * /shared entry), else the viewer whose /private entries and key they
 * are. A mailbox's rows go with it by trigger (the server's have no
 * mailbox row to reference); names compare bytewise (DEPTH ranges). */
static const char schema_step_metadata_sql[] =
	"CREATE TABLE annotation (user_id bigint NOT NULL"
	" REFERENCES account ON DELETE CASCADE, mailbox integer NOT NULL,"
	" viewer bigint NOT NULL, name text COLLATE \"C\" NOT NULL,"
	" value bytea NOT NULL,"
	" PRIMARY KEY (user_id, mailbox, viewer, name));"
	"CREATE INDEX annotation_viewer ON annotation (user_id, viewer);"
	"CREATE TABLE access_key (user_id bigint NOT NULL"
	" REFERENCES account ON DELETE CASCADE, mailbox integer NOT NULL,"
	" viewer bigint NOT NULL, key bytea NOT NULL,"
	" PRIMARY KEY (user_id, mailbox, viewer));"
	"CREATE FUNCTION loft_annotation_gone() RETURNS trigger"
	" LANGUAGE plpgsql AS $f$ BEGIN"
	" DELETE FROM annotation WHERE user_id = OLD.user_id"
	" AND mailbox = OLD.id;"
	" DELETE FROM access_key WHERE user_id = OLD.user_id"
	" AND mailbox = OLD.id;"
	" RETURN NULL; END $f$;"
	"CREATE TRIGGER annotation_gone AFTER DELETE ON mailbox"
	" FOR EACH ROW EXECUTE FUNCTION loft_annotation_gone();";

/* Step 5 -> 6: undelete (pg-undelete.c): a removed message's row as it
 * was, by folder name (the folder may go too), with the database's
 * clock at its removal; its blob row stays while one names it. */
static const char schema_step_deleted_sql[] =
	"CREATE TABLE deleted (user_id bigint NOT NULL"
	" REFERENCES account ON DELETE CASCADE,"
	" id bigint GENERATED ALWAYS AS IDENTITY, mailbox text NOT NULL,"
	" uid bigint NOT NULL, blob bigint NOT NULL, flags integer NOT NULL,"
	" keywords text, internaldate bigint NOT NULL,"
	" savedate bigint NOT NULL, size bigint NOT NULL, at bigint NOT NULL,"
	" PRIMARY KEY (user_id, id));"
	"CREATE INDEX deleted_at ON deleted (user_id, at);"
	"CREATE INDEX deleted_blob ON deleted (user_id, blob);";

/* Step 6 -> 7: the reverse ACL index in the ACL change's transaction
 * (pg-acl.c): a trigger on acl keeps auth's loft_auth.acl_hints (kind,
 * ident, owner) exact, when that table is in this database and the
 * store's role may read and write it (loft_acl_index); grants made
 * before this step are indexed once. */
static const char schema_step_acl_index_sql[] =
	"CREATE FUNCTION loft_acl_index() RETURNS boolean LANGUAGE plpgsql"
	" STABLE AS $f$ BEGIN"
	" IF to_regclass('loft_auth.acl_hints') IS NULL THEN"
	"  RETURN false; END IF;"
	" RETURN has_table_privilege('loft_auth.acl_hints', 'SELECT')"
	" AND has_table_privilege('loft_auth.acl_hints', 'INSERT')"
	" AND has_table_privilege('loft_auth.acl_hints', 'DELETE');"
	" EXCEPTION WHEN insufficient_privilege OR undefined_table"
	" OR invalid_schema_name THEN RETURN false; END $f$;"
	"CREATE FUNCTION loft_acl_reverse() RETURNS trigger LANGUAGE plpgsql"
	" AS $f$ BEGIN"
	" IF NOT loft_acl_index() THEN RETURN NULL; END IF;"
	" IF TG_OP IN ('INSERT', 'UPDATE') AND NOT NEW.negative"
	"  AND NEW.rights <> 0 THEN"
	"  INSERT INTO loft_auth.acl_hints (kind, ident, owner)"
	"  VALUES (NEW.kind, NEW.ident, NEW.user_id) ON CONFLICT DO NOTHING;"
	" END IF;"
	" IF TG_OP IN ('UPDATE', 'DELETE') THEN"
	"  DELETE FROM loft_auth.acl_hints h WHERE h.owner = OLD.user_id"
	"  AND h.kind = OLD.kind AND h.ident = OLD.ident AND NOT EXISTS"
	"  (SELECT 1 FROM acl a WHERE a.user_id = OLD.user_id"
	"  AND a.kind = OLD.kind AND a.ident = OLD.ident"
	"  AND NOT a.negative AND a.rights <> 0);"
	" END IF; RETURN NULL; END $f$;"
	"CREATE TRIGGER acl_reverse AFTER INSERT OR UPDATE OR DELETE ON acl"
	" FOR EACH ROW EXECUTE FUNCTION loft_acl_reverse();"
	"DO $$ BEGIN IF loft_acl_index() THEN"
	" INSERT INTO loft_auth.acl_hints (kind, ident, owner)"
	" SELECT DISTINCT kind, ident, user_id FROM acl"
	" WHERE NOT negative AND rights <> 0 ON CONFLICT DO NOTHING;"
	" END IF; END $$;";

/* The steps after the first, in order: steps[i] takes i + 1 to i + 2. */
static const char *const schema_steps[] = { schema_step2_sql,
					    schema_step3_sql,
					    schema_step4_sql,
					    schema_step_metadata_sql,
					    schema_step_deleted_sql,
					    schema_step_acl_index_sql,
					    /* 7 -> 8: JMAP mail (pg-jmail.c) */
					    pg_jmail_schema_sql,
					    /* 8 -> 9: import (pg-import.c) */
					    pg_import_schema_sql,
					    /* 9 -> 10: mailbox counts */
					    pg_mailbox_counts_sql,
					    /* 10 -> 11: bodies named
					     * uncounted (pg-blob.c) */
					    pg_blob_names_sql,
					    /* 11 -> 12: a blob row's
					     * thread at its insert */
					    pg_jmail_thread_sql };

/* An arbitrary key of Loft's schema lock ("loft" in ASCII). */
#define PG_SCHEMA_LOCK 0x6c6f6674

/* Runs the steps from version found up, in the schema lock's
 * transaction. */
static int schema_upgrade(struct pg_conn *c, int found, bool fresh,
			  struct store_error *err)
{
	for (int v = found; v < PG_SCHEMA_VERSION; v++) {
		PGresult *r = PQexec(c->db, schema_steps[v - 1]);
		int ret = PQresultStatus(r) == PGRES_COMMAND_OK ? 0
			: conn_error(c, r, "schema step", err);
		PQclear(r);
		char ins[64];
		snprintf(ins, sizeof(ins), "INSERT INTO loft_schema VALUES (%d)",
			 v + 1);
		if (ret == 0)
			ret = pg_cmd(c, ins, err);
		if (ret < 0)
			return -1;
		if (!fresh)
			log_info("store", NULL, "postgres: schema version %d -> %d",
				 v, v + 1);
	}
	return 0;
}

static int schema_init(struct store *store, struct store_error *err)
{
	struct pg_conn *c = pg_conn_get(store, err);
	if (c == NULL)
		return -1;
	int ret = pg_cmd(c, "BEGIN", err);
	c->in_tx = ret == 0;
	PGresult *r = NULL;
	if (ret == 0) {
		/* two nodes starting on an empty database: one creates */
		char lock[64];
		snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d)",
			 PG_SCHEMA_LOCK);
		PGresult *l = PQexec(c->db, lock);
		if (PQresultStatus(l) != PGRES_TUPLES_OK)
			ret = conn_error(c, l, "schema lock", err);
		PQclear(l);
	}
	if (ret == 0) {
		r = PQexec(c->db, "SELECT to_regclass('loft_schema') IS NOT NULL");
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			ret = conn_error(c, r, "schema", err);
	}
	if (ret == 0 && strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
		PGresult *s = PQexec(c->db, schema_sql);
		if (PQresultStatus(s) != PGRES_COMMAND_OK)
			ret = conn_error(c, s, "create schema", err);
		PQclear(s);
		if (ret == 0)
			ret = pg_cmd(c, "INSERT INTO loft_schema VALUES (1)", err);
		if (ret == 0)
			ret = schema_upgrade(c, 1, true, err);
		if (ret == 0)
			log_info("store", NULL, "postgres: created the schema"
				 " (version %d)", PG_SCHEMA_VERSION);
	} else if (ret == 0) {
		PGresult *v = PQexec(c->db, "SELECT max(version) FROM loft_schema");
		if (PQresultStatus(v) != PGRES_TUPLES_OK) {
			ret = conn_error(c, v, "schema version", err);
		} else {
			int found = atoi(PQgetvalue(v, 0, 0));
			if (found > PG_SCHEMA_VERSION)
				ret = store_set_error(err, STORE_ERR_TEMP,
					"The database's schema is version %d,"
					" this Loft knows up to %d: upgrade Loft",
					found, PG_SCHEMA_VERSION);
			else if (found < PG_SCHEMA_VERSION)
				ret = schema_upgrade(c, found, false, err);
		}
		PQclear(v);
	}
	PQclear(r);
	if (ret == 0) {
		ret = pg_cmd(c, "COMMIT", err);
		c->in_tx = false;
	}
	pg_conn_put(store, c);
	return ret;
}

/* ---- the store ----------------------------------------------------------- */

static int pg_open(struct store *store, struct store_error *err)
{
	const struct store_settings *set = &store->set;
	if (set->postgres == NULL || set->postgres[0] == '\0')
		return store_set_error(err, STORE_ERR_INVALID,
				       "[store] postgres is not set");
	bool s3 = set->blobs == STORE_BLOBS_S3;
	if (!s3 && (set->blob_dir == NULL || set->blob_dir[0] != '/'))
		return store_set_error(err, STORE_ERR_INVALID,
				       "[store] blob_dir is not set");
	if (s3 && (set->s3_endpoint == NULL || set->s3_bucket == NULL ||
		   set->s3_access_key == NULL ||
		   set->s3_secret_key_file == NULL))
		return store_set_error(err, STORE_ERR_INVALID, "[s3] endpoint,"
				       " bucket, access_key and secret_key_file"
				       " are needed with blobs = s3");
	if (set->blob_dir != NULL && mkdir(set->blob_dir, 0700) < 0 &&
	    errno != EEXIST)
		return store_set_error(err, STORE_ERR_TEMP, "Cannot make %s: %s",
				       set->blob_dir, strerror(errno));
	struct pg_store *s = xcalloc(1, sizeof(*s));
	s->conninfo = xstrdup(set->postgres);
	s->blob_dir = set->blob_dir != NULL ? xstrdup(set->blob_dir) : NULL;
	s->timeout = set->postgres_timeout ? set->postgres_timeout : 10;
	s->standby_state = -1;
	s->max_conns = set->postgres_pool ? set->postgres_pool : 16;
	s->fsync = set->fsync;
	s->free_conns = xcalloc(s->max_conns, sizeof(*s->free_conns));
	FILE *f = fopen("/dev/urandom", "rb");
	if (f == NULL || fread(&s->node_id, sizeof(s->node_id), 1, f) != 1)
		abort();
	fclose(f);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cond, NULL);
	pthread_mutex_init(&s->lock_mu, NULL);
	store->be = s;
	if (schema_init(store, err) < 0 || pg_blobs_open(store, err) < 0) {
		store->vf->close(store);
		store->be = NULL;
		return -1;
	}
	return 0;
}

static void pg_stop(struct store *store)
{
	pg_collector_stop(store);
	pg_hub_stop(store);
}

static void pg_close(struct store *store)
{
	struct pg_store *s = PGS(store);
	if (s == NULL)
		return;
	pg_collector_stop(store);
	pg_blobs_close(store);
	pg_maildrop_close(store);
	for (size_t i = 0; i < s->free_count; i++)
		pg_conn_free(s->free_conns[i]);
	if (s->open_count != s->free_count)
		log_warn("store", NULL, "postgres: %zu connections still in use",
			 s->open_count - s->free_count);
	free(s->free_conns);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cond);
	free(s->conninfo);
	free(s->blob_dir);
	free(s);
	store->be = NULL;
}

/* loftd: other nodes' changes reach this node's sessions. */
static void pg_start_background(struct store *store)
{
	if (pg_hub_start(store) < 0)
		log_error("store", NULL, "postgres: cannot start the change"
			  " listener: %s", strerror(errno));
	pg_collector_start(store);
}

/* ---- transactions ---------------------------------------------------------- */

struct pg_conn *pg_rbegin(struct store_user *user, struct store_error *err)
{
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return NULL;
	if (pg_cmd(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
		   err) < 0) {
		pg_conn_put(user->store, c);
		return NULL;
	}
	c->in_tx = true;
	return c;
}

void pg_rend(struct store_user *user, struct pg_conn *c)
{
	if (c == NULL)
		return;
	if (c->in_tx && !c->broken) {
		PGresult *r = PQexec(c->db, "COMMIT");
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			c->broken = true;
		PQclear(r);
	}
	c->in_tx = false;
	pg_conn_put(user->store, c);
}

int pg_wbegin(struct store_user *user, struct pg_tx *tx,
	      struct store_error *err)
{
	memset(tx, 0, sizeof(*tx));
	tx->user = user;
	tx->start_ns = metrics_now_ns();
	tx->c = pg_conn_get(user->store, err);
	if (tx->c == NULL)
		return -1;
	if (pg_cmd(tx->c, "BEGIN", err) < 0) {
		pg_conn_put(user->store, tx->c);
		return -1;
	}
	tx->c->in_tx = true;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	/* the account's row lock: its writers, on every node, one at a time */
	PGresult *r = pg_exec(tx->c, "SELECT modseq, uidvalidity, bytes, messages"
			      " FROM account WHERE user_id = $1 FOR UPDATE",
			      &p, err);
	if (r == NULL || PQntuples(r) == 0) {
		if (r != NULL)
			store_set_error(err, STORE_ERR_NOTFOUND,
					"No mail stored for this user");
		PQclear(r);
		pg_conn_put(user->store, tx->c);
		return -1;
	}
	tx->modseq = (uint64_t)pg_int(r, 0, 0);
	tx->last_uidvalidity = (uint32_t)pg_int(r, 0, 1);
	tx->bytes = pg_int(r, 0, 2);
	tx->messages = pg_int(r, 0, 3);
	PQclear(r);
	return 0;
}

uint64_t pg_tx_modseq(struct pg_tx *tx)
{
	if (!tx->took_modseq) {
		tx->modseq++;
		tx->took_modseq = true;
	}
	return tx->modseq;
}

uint32_t pg_tx_uidvalidity(struct pg_tx *tx)
{
	uint32_t now = (uint32_t)time(NULL);
	tx->last_uidvalidity = now > tx->last_uidvalidity
				       ? now : tx->last_uidvalidity + 1;
	tx->usage_dirty = true;
	return tx->last_uidvalidity;
}

void pg_tx_change(struct pg_tx *tx, uint32_t mailbox_id,
		  enum store_change_kind kind)
{
	for (size_t i = 0; i < tx->change_count; i++) {
		if (tx->changes[i].mailbox_id == mailbox_id &&
		    tx->changes[i].kind == kind)
			return;
	}
	if (tx->change_count == tx->change_cap) {
		tx->change_cap = tx->change_cap ? tx->change_cap * 2 : 4;
		tx->changes = xrealloc(tx->changes, tx->change_cap *
				       sizeof(*tx->changes));
	}
	struct store_change *ch = &tx->changes[tx->change_count++];
	ch->user_id = tx->user->id;
	ch->mailbox_id = mailbox_id;
	ch->kind = kind;
}

/* Tests: the connection cut after the COMMIT is sent (cut 1: it
 * commits, its answer is lost) or before (cut 2: it does not). */
static int test_cut(struct pg_conn *c, int cut, struct store_error *err)
{
	if (cut == 1) {
		PQsendQuery(c->db, "COMMIT");
		PQflush(c->db);
	}
	shutdown(PQsocket(c->db), SHUT_RDWR);
	PGresult *r;
	while (cut == 1 && (r = PQgetResult(c->db)) != NULL)
		PQclear(r);
	if (cut == 2)
		return pg_cmd(c, "COMMIT", err);
	c->broken = true;
	return pg_unavailable(err);
}

/* 0 once the server session pid has ended (its transaction settled),
 * -1 if it is still there after postgres_timeout or on an error. */
static int backend_gone(struct pg_conn *c, int pid)
{
	for (int i = 0; i < 200; i++) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, pid);
		PGresult *r = pg_exec(c, "SELECT 1 FROM pg_stat_activity WHERE"
				      " pid = $1", &p, NULL);
		if (r == NULL)
			return -1;
		int there = PQntuples(r);
		PQclear(r);
		if (there == 0)
			return 0;
		usleep(50000);
	}
	return -1;
}

int pg_wend(struct pg_tx *tx, int ret, struct store_error *err)
{
	return pg_wend_resolve(tx, ret, NULL, NULL, err);
}

int pg_wend_resolve(struct pg_tx *tx, int ret, pg_committed_fn *committed,
		    void *ctx, struct store_error *err)
{
	struct store_user *user = tx->user;
	struct pg_conn *c = tx->c;
	if (ret == 0 && (tx->took_modseq || tx->usage_dirty)) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, (int64_t)tx->modseq);
		pg_p_int(&p, tx->last_uidvalidity);
		pg_p_int(&p, tx->bytes);
		pg_p_int(&p, tx->messages);
		ret = pg_run(c, "UPDATE account SET modseq = $2, uidvalidity = $3,"
			     " bytes = $4, messages = $5 WHERE user_id = $1",
			     &p, err);
	}
	if (ret == 0) {
		int pid = PQbackendPID(c->db);
		int cut = atomic_exchange(&PGS(user->store)->test_cut_commit, 0);
		if (cut != 0)
			ret = test_cut(c, cut, err);
		else
			ret = pg_cmd(c, "COMMIT", err);
		c->in_tx = false;
		/* the COMMIT was sent and its answer lost with the
		 * connection: committed or not, the database knows once the
		 * session that sent it has ended */
		if (ret < 0 && c->broken && committed != NULL) {
			pg_conn_put(user->store, c);
			struct store_error e2;
			c = pg_conn_get(user->store, &e2);
			int found = c != NULL ? backend_gone(c, pid) : -1;
			if (found == 0)
				found = committed(c, ctx);
			else
				found = -1;
			log_warn("store", NULL, "postgres: user %lld: a COMMIT's"
				 " answer was lost: %s", (long long)user->id,
				 found == 1 ? "it committed" : found == 0
				 ? "it did not commit" : "cannot tell");
			if (found == 1)
				ret = 0;
			/* it did not happen: the call may run again */
			pg_retry_mark(found == 0);
			if (c == NULL) {
				free(tx->changes);
				tx->changes = NULL;
				return -1;
			}
		}
	}
	if (ret == 0)
		metrics_observe_since(metrics_histogram(
			"loft_store_commit_seconds", "Store transactions (a group"
			" commit) from BEGIN to a durable COMMIT.", NULL, NULL,
			0), tx->start_ns);
	for (size_t i = 0; i < tx->change_count; i++)
		tx->changes[i].modseq = tx->modseq;
	/* other nodes learn after the COMMIT, never inside it */
	if (ret == 0)
		pg_notify_send(user->store, c, tx->changes, tx->change_count);
	pg_conn_put(user->store, c);
	if (ret < 0) {
		free(tx->changes);
		tx->changes = NULL;
		return -1;
	}
	if (tx->took_modseq) {
		uint64_t cur = atomic_load(&user->last_modseq);
		while (cur < tx->modseq &&
		       !atomic_compare_exchange_weak(&user->last_modseq, &cur,
						     tx->modseq))
			;
	}
	for (size_t i = 0; i < tx->change_count; i++)
		store_publish(user->store, &tx->changes[i]);
	free(tx->changes);
	tx->changes = NULL;
	return 0;
}

/* ---- accounts ---------------------------------------------------------- */

static int user_open_once(struct store_user *user, struct store_error *err);

/* The first call of every session: run again like the others
 * (pg-retry.c) when a failover or restart cut its transaction. */
static int user_open_retry(struct store_user *user, struct store_error *err)
{
	PG_RETRY(user->store, user_open_once(user, err));
}

static void pg_user_close(struct store_user *user);

static int pg_user_open(struct store_user *user, struct store_error *err)
{
	struct pg_store_user *pu = xcalloc(1, sizeof(*pu));
	pu->delta = pg_delta_share_new();
	user->be = pu;
	int ret = user_open_retry(user, err);
	if (ret < 0)
		pg_user_close(user);
	return ret;
}

static int user_open_once(struct store_user *user, struct store_error *err)
{
	struct pg_tx tx;
	memset(&tx, 0, sizeof(tx));
	tx.user = user;
	tx.c = pg_conn_get(user->store, err);
	if (tx.c == NULL)
		return -1;
	if (pg_cmd(tx.c, "BEGIN", err) < 0) {
		pg_conn_put(user->store, tx.c);
		return -1;
	}
	tx.c->in_tx = true;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	/* a second node making the same account waits on the row, then
	 * finds it made */
	PGresult *r = pg_exec(tx.c, "INSERT INTO account (user_id) VALUES ($1)"
			      " ON CONFLICT DO NOTHING RETURNING modseq", &p, err);
	int ret = r != NULL ? 0 : -1;
	if (r != NULL && PQntuples(r) == 1) {
		tx.modseq = (uint64_t)pg_int(r, 0, 0);
		ret = pg_create_defaults(&tx, err);
	}
	PQclear(r);
	ret = pg_wend(&tx, ret, err);
	if (ret == 0) {
		struct pg_params q;
		pg_p_init(&q);
		pg_p_int(&q, user->id);
		struct pg_conn *c = pg_conn_get(user->store, err);
		if (c == NULL)
			return -1;
		r = pg_exec(c, "SELECT modseq FROM account WHERE user_id = $1",
			    &q, err);
		if (r != NULL && PQntuples(r) == 1)
			atomic_store(&user->last_modseq,
				     (uint64_t)pg_int(r, 0, 0));
		else
			ret = -1;
		PQclear(r);
		pg_conn_put(user->store, c);
	}
	return ret;
}

static bool pg_user_exists(struct store *store, int64_t user_id)
{
	struct pg_conn *c = pg_conn_get(store, NULL);
	if (c == NULL)
		return false;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user_id);
	PGresult *r = pg_exec(c, "SELECT 1 FROM account WHERE user_id = $1",
			      &p, NULL);
	bool found = r != NULL && PQntuples(r) == 1;
	PQclear(r);
	pg_conn_put(store, c);
	return found;
}

static void pg_user_close(struct store_user *user)
{
	struct pg_store_user *pu = user->be;
	if (pu != NULL)
		pg_delta_share_free(&pu->delta);
	free(pu);
	user->be = NULL;
}

static int pg_user_delete(struct store *store, int64_t user_id,
			  struct store_error *err)
{
	if (pg_import_purge(store, user_id, err) < 0)
		return -1;
	struct pg_conn *c = pg_conn_get(store, err);
	if (c == NULL)
		return -1;
	int ret = pg_cmd(c, "BEGIN", err);
	c->in_tx = ret == 0;
	static const char *const sql[] = {
		"DELETE FROM msg WHERE user_id = $1",
		"DELETE FROM blob WHERE user_id = $1",
		"DELETE FROM expunged WHERE user_id = $1",
		"DELETE FROM keyword WHERE user_id = $1",
		"DELETE FROM thread_ref WHERE user_id = $1",
		"DELETE FROM subscription WHERE user_id = $1",
		"DELETE FROM mailbox WHERE user_id = $1",
		"DELETE FROM account WHERE user_id = $1",
	};
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user_id);
	for (size_t i = 0; ret == 0 && i < sizeof(sql) / sizeof(sql[0]); i++)
		ret = pg_run(c, sql[i], &p, err);
	if (ret == 0) {
		ret = pg_cmd(c, "COMMIT", err);
		c->in_tx = false;
	}
	pg_conn_put(store, c);
	return ret;
}

static int pg_usage(struct store_user *user, struct store_usage *usage_r,
		    struct store_error *err)
{
	memset(usage_r, 0, sizeof(*usage_r));
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	PGresult *r = pg_exec(c, "SELECT bytes, messages FROM account"
			      " WHERE user_id = $1", &p, err);
	int ret = r != NULL ? 0 : -1;
	if (r != NULL && PQntuples(r) == 1) {
		usage_r->bytes = (uint64_t)pg_int(r, 0, 0);
		usage_r->messages = (uint64_t)pg_int(r, 0, 1);
	}
	PQclear(r);
	pg_conn_put(user->store, c);
	return ret;
}

/* Kept to the hour, as the embedded backend does. */
static int pg_note_sync_login(struct store_user *user, time_t now,
			      struct store_error *err)
{
	now = pg_db_time(user->store, now);
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, (int64_t)now);
	int ret = pg_run(c, "UPDATE account SET sync_login = $2"
			 " WHERE user_id = $1 AND sync_login < $2 - 3600",
			 &p, err);
	pg_conn_put(user->store, c);
	return ret;
}

static int pg_last_sync_login(struct store_user *user, time_t *when_r,
			      struct store_error *err)
{
	*when_r = 0;
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	PGresult *r = pg_exec(c, "SELECT sync_login FROM account"
			      " WHERE user_id = $1", &p, err);
	if (r != NULL && PQntuples(r) == 1)
		*when_r = (time_t)pg_int(r, 0, 0);
	int ret = r != NULL ? 0 : -1;
	PQclear(r);
	pg_conn_put(user->store, c);
	return ret;
}

static void pg_user_index_version(struct store_user *user, unsigned *found_r,
				  unsigned *known_r)
{
	(void)user;
	*found_r = *known_r = PG_SCHEMA_VERSION;
}

static int pg_index_version(struct store *store, int64_t user_id,
			    unsigned *found_r, unsigned *known_r,
			    struct store_error *err)
{
	*found_r = 0;
	*known_r = PG_SCHEMA_VERSION;
	if (!pg_user_exists(store, user_id))
		return store_set_error(err, STORE_ERR_NOTFOUND,
				       "No mail stored for this user");
	*found_r = PG_SCHEMA_VERSION;
	return 0;
}

/* Search is exact without a background index: nothing to catch up. */
static int pg_index_flush(struct store_user *user, struct store_error *err)
{
	(void)user;
	(void)err;
	return 0;
}

/* loftctl user show's disk figures: the bytes of the account's rows as
 * stored (pg_column_size: after compression, before the table's own
 * overhead and indexes, which the account shares with every other), the
 * folded search text among them, and the bodies its rows name (each
 * once, though other accounts may name the same bytes). */
static int pg_disk(struct store_user *user, struct store_disk *disk_r,
		   struct store_error *err)
{
	memset(disk_r, 0, sizeof(*disk_r));
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	PGresult *r = pg_exec(c, "SELECT ("
			      " (SELECT coalesce(sum(pg_column_size(m.*)), 0)"
			      "  FROM msg m WHERE m.user_id = $1)"
			      " + (SELECT coalesce(sum(pg_column_size(b.*)), 0)"
			      "  FROM blob b WHERE b.user_id = $1)"
			      " + (SELECT coalesce(sum(pg_column_size(e.*)), 0)"
			      "  FROM expunged e WHERE e.user_id = $1)"
			      " + (SELECT coalesce(sum(pg_column_size(x.*)), 0)"
			      "  FROM mailbox x WHERE x.user_id = $1))::bigint,"
			      " (SELECT coalesce(sum(coalesce(pg_column_size("
			      "  header_text), 0) + coalesce(pg_column_size("
			      "  body_text), 0)), 0) FROM blob"
			      "  WHERE user_id = $1)::bigint,"
			      " (SELECT coalesce(sum(body_size), 0) FROM (SELECT"
			      "  DISTINCT sha256, body_size FROM blob"
			      "  WHERE user_id = $1) o)::bigint", &p, err);
	pg_rend(user, c);
	if (r == NULL)
		return -1;
	disk_r->index_bytes = (uint64_t)pg_int(r, 0, 0);
	disk_r->search_bytes = (uint64_t)pg_int(r, 0, 1);
	disk_r->blob_bytes = (uint64_t)pg_int(r, 0, 2);
	PQclear(r);
	return 0;
}

/* ---- what is not there yet ------------------------------------------- */

static int missing(struct store_error *err, const char *what)
{
	return store_set_error(err, STORE_ERR_TEMP, "The postgres backend"
			       " does not have %s yet", what);
}

static int pg_compact(struct store *s, int64_t id,
		      struct store_compact_report *r, struct store_error *err)
{
	(void)s, (void)id;
	memset(r, 0, sizeof(*r));
	return missing(err, "compaction (PostgreSQL's autovacuum does it)");
}

const struct store_backend_vfuncs store_postgres_vfuncs = {
	.name = "postgres",
	.open = pg_open,
	.stop = pg_stop,
	.close = pg_close,
	.start_background = pg_start_background,
	.user_open = pg_user_open,
	.user_exists = pg_user_exists,
	.user_close = pg_user_close,
	.user_delete = pg_user_delete,
	.usage = pg_usage,
	.disk = pg_disk,
	.mailbox_list = pg_r_mailbox_list,
	.subscriptions = pg_subscriptions,
	.mailbox_status = pg_r_mailbox_status,
	.mailbox_create = pg_r_mailbox_create,
	.mailbox_delete = pg_r_mailbox_delete,
	.mailbox_rename = pg_r_mailbox_rename,
	.mailbox_subscribe = pg_r_mailbox_subscribe,
	.mailbox_find_special = pg_mailbox_find_special,
	.mailbox_keywords = pg_mailbox_keywords,
	.body_create = pg_body_create,
	.body_write = pg_body_write,
	.body_size = pg_body_size,
	.body_set_binary = pg_body_set_binary,
	.body_finish = pg_body_finish,
	.body_deliver = pg_r_body_deliver,
	.bodies_deliver = pg_bodies_deliver,
	.body_text = pg_body_text,
	.body_unref = pg_body_unref,
	.blob_open = pg_r_blob_open,
	.blob_close = pg_blob_close,
	.fetch_begin = pg_r_fetch_begin,
	.fetch_next = pg_fetch_next,
	.fetch_end = pg_fetch_end,
	.flags_update = pg_r_flags_update,
	.copy = pg_r_copy,
	.expunge = pg_r_expunge,
	.view_load = pg_r_view_load,
	.view_delta = pg_view_delta_shared,
	.first_unseen = pg_first_unseen,
	.recent_claim = pg_recent_claim,
	.changed_since = pg_r_changed_since,
	.expunged_since = pg_r_expunged_since,
	.search_text = pg_r_search_text,
	.pop3_retrieved = pg_pop3_retrieved,
	.pop3_hide = pg_pop3_hide,
	.mailbox_roles_ensure = pg_mailbox_roles_ensure,
	.note_sync_login = pg_note_sync_login,
	.last_sync_login = pg_last_sync_login,
	.user_index_version = pg_user_index_version,
	.retention_run = pg_retention_run,
	.check = pg_check,
	.compact = pg_compact,
	.index_version = pg_index_version,
	.index_flush = pg_index_flush,
	.jmap_states = pg_jmap_states,
	.jmap_changes = pg_jmap_changes,
	.jmap_prune = pg_jmap_prune,
	.jmap_mailboxes = pg_jmap_mailboxes,
	.jmap_mailbox_update = pg_jmap_mailbox_update,
	.email_get = pg_email_get,
	.email_open = pg_email_open,
	.email_scan = pg_email_scan,
	.email_rank = pg_email_rank,
	.email_moved_since = pg_email_moved_since,
	.thread_emails = pg_thread_emails,
	.email_search = pg_email_search,
	.email_tx_commit = pg_email_tx_commit,
	.upload_begin = pg_upload_begin,
	.upload_write = pg_upload_write,
	.upload_finish = pg_upload_finish,
	.upload_abort = pg_upload_abort,
	.upload_open = pg_upload_open,
	.upload_touch = pg_upload_touch,
	.jobject_list = pg_jobject_list,
	.jobject_put = pg_r_jobject_put,
	.import_mailbox = pg_import_mailbox,
	.import_append_batch = pg_import_append_batch,
	.import_mark_add = pg_import_mark_add,
	.import_marks = pg_import_marks,
	.modseq_raise = pg_modseq_raise,
	.export_begin = pg_export_begin,
	.export_info = pg_export_info,
	.export_messages = pg_export_messages,
	.export_next = pg_export_next,
	.export_body = pg_export_body,
	.export_end = pg_export_end,
	.export_seen = pg_export_seen,
	.export_expunged = pg_export_expunged,
	.export_extra = pg_export_extra,
	.import_extra = pg_import_extra,
	.export_kept = pg_export_kept,
	.import_kept = pg_import_kept,
	.deleted_forget = pg_deleted_forget,
	.drop_extra = pg_drop_extra,
	.export_pop3_sum = pg_export_pop3_sum,
	.import_exact = pg_import_exact,
	.jobject_delete = pg_jobject_delete,
	.sieve_list = pg_sieve_list,
	.sieve_get = pg_sieve_get,
	.sieve_put = pg_r_sieve_put,
	.sieve_activate = pg_sieve_activate,
	.sieve_delete = pg_sieve_delete,
	.sieve_rename = pg_sieve_rename,
	.sieve_ids = pg_sieve_ids,
	.sieve_record_seen = pg_sieve_record_seen,
	.sieve_deliver = pg_r_sieve_deliver,
	.acl_read = pg_acl_read,
	.acl_update = pg_r_acl_update,
	.acl_all = pg_acl_all,
	.acl_index_kept = pg_acl_index_kept,
	.end_sessions = pg_end_sessions,
	.blobs_collect = pg_blobs_collect,
	.objects = pg_objects,
	.object_put = pg_object_put,
	.object_read = pg_object_read,
	.object_release = pg_object_release,
	.maildrop_lock = pg_maildrop_lock,
	.maildrop_unlock = pg_maildrop_unlock,
	.seen_mode = pg_seen_mode,
	.seen_set_mode = pg_seen_set_mode,
	.seen_info = pg_seen_info,
	.seen_first_unseen = pg_seen_first_unseen,
	.seen_rows = pg_seen_rows,
	.seen_changed_since = pg_seen_changed_since,
	.seen_update = pg_r_seen_update,
	.seen_view_delta = pg_seen_view_delta,
	.reachable = pg_reachable,
	.metadata_get = pg_metadata_get,
	.metadata_set = pg_metadata_set,
	.urlauth_key = pg_urlauth_key,
	.deleted_list = pg_deleted_list,
	.deleted_usage = pg_deleted_usage,
	.undelete = pg_undelete,
	.email_copies = pg_email_copies,
	.seen_newest = pg_seen_newest,
	.seen_emails_since = pg_seen_emails_since,
};

/* ---- the sandbox's view (store.h) ------------------------------------- */

static void port_add(uint16_t *ports, size_t max, size_t *n, uint16_t port)
{
	for (size_t i = 0; i < *n; i++)
		if (ports[i] == port)
			return;
	if (*n < max)
		ports[(*n)++] = port;
}

size_t store_backend_ports(const struct store_settings *set, uint16_t *ports,
			   size_t max)
{
	if (set->backend != STORE_BACKEND_POSTGRES || set->postgres == NULL)
		return 0;
	char *errmsg = NULL;
	PQconninfoOption *opts = PQconninfoParse(set->postgres, &errmsg);
	PQfreemem(errmsg);
	if (opts == NULL)
		return 0;
	const char *host = NULL, *port = NULL;
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "host") == 0 ||
		    (strcmp(o->keyword, "hostaddr") == 0 && host == NULL))
			host = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
	}
	size_t n = 0;
	/* no host, or only socket directories: no TCP at all */
	bool tcp = false;
	for (const char *h = host; h != NULL && *h != '\0';) {
		size_t len = strcspn(h, ",");
		if (len > 0 && h[0] != '/' && h[0] != '@')
			tcp = true;
		h += len + (h[len] == ',');
	}
	if (host == NULL)
		tcp = false;
	for (const char *p = port; tcp && p != NULL && *p != '\0';) {
		char *end;
		unsigned long v = strtoul(p, &end, 10);
		if (end != p && v > 0 && v < 65536)
			port_add(ports, max, &n, (uint16_t)v);
		p = end + strspn(end, ", ");
		if (end == p && *p != '\0')
			p++;
	}
	if (tcp && n == 0)
		port_add(ports, max, &n, 5432);
	PQconninfoFree(opts);
	/* blobs = s3: the endpoint's port */
	const char *e = set->blobs == STORE_BLOBS_S3 ? set->s3_endpoint : NULL;
	const char *auth = e != NULL ? strstr(e, "://") : NULL;
	if (auth != NULL) {
		auth += 3;
		size_t len = strcspn(auth, "/");
		const char *colon = memchr(auth, ':', len);
		unsigned long v = colon != NULL ? strtoul(colon + 1, NULL, 10)
			: strncmp(e, "https", 5) == 0 ? 443 : 80;
		if (v > 0 && v < 65536)
			port_add(ports, max, &n, (uint16_t)v);
	}
	return n;
}
