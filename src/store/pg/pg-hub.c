/*
 * The hub across nodes (docs/scale-out.md "The hub across nodes"). After
 * a write transaction's COMMIT (never inside it: NOTIFY holds a
 * cluster-wide lock through the commit's fsync), the committing node,
 * which has already woken its own sessions, sends one NOTIFY with every
 * change of that transaction:
 *
 *     loft_change  "<node> <user> <modseq> <mailbox>:<kind> ..."
 *
 * Each node LISTENs on one connection of its own (not the pool's) and
 * publishes what other nodes committed into its hub, after raising the
 * account's last_modseq so views see there is something to sync.
 * Sessions resync by modseq, so a lost notification only delays a change;
 * after the listener reconnects, every open account's mailboxes get one
 * change each, so every open view resyncs once.
 */
#include "pg-private.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define CHANNEL "loft_change"

void pg_notify_format(uint64_t node, const struct store_change *changes,
		      size_t count, struct buf *out)
{
	buf_printf(out, "%016" PRIx64 " %lld %llu", node,
		   (long long)changes[0].user_id,
		   (unsigned long long)changes[0].modseq);
	for (size_t i = 0; i < count; i++)
		buf_printf(out, " %u:%d", changes[i].mailbox_id,
			   (int)changes[i].kind);
}

static bool parse_u64(const char **p, int base, uint64_t *v_r)
{
	const char *s = *p;
	uint64_t v = 0;
	int digits = 0;
	for (;; s++, digits++) {
		int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else
			break;
		if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
			return false;
		v = v * (uint64_t)base + (uint64_t)d;
	}
	if (digits == 0 || digits > 20)
		return false;
	*p = s;
	*v_r = v;
	return true;
}

int pg_notify_parse(const char *payload, uint64_t *node_r,
		    struct store_change *changes, size_t max, size_t *count_r)
{
	const char *p = payload;
	uint64_t node, user, modseq;
	if (!parse_u64(&p, 16, &node) || *p++ != ' ' ||
	    !parse_u64(&p, 10, &user) || *p++ != ' ' ||
	    !parse_u64(&p, 10, &modseq) || user == 0 || user > INT64_MAX)
		return -1;
	size_t n = 0;
	while (*p == ' ') {
		p++;
		uint64_t mbox, kind;
		if (!parse_u64(&p, 10, &mbox) || *p++ != ':' ||
		    !parse_u64(&p, 10, &kind) || mbox > UINT32_MAX ||
		    kind > STORE_CHANGE_ACL || n == max)
			return -1;
		/* the end of every session: alone, for the account */
		if (kind == STORE_CHANGE_LOGOUT &&
		    (mbox != 0 || modseq != 0 || n > 0 || *p != '\0'))
			return -1;
		changes[n].user_id = (int64_t)user;
		changes[n].mailbox_id = (uint32_t)mbox;
		changes[n].kind = (enum store_change_kind)kind;
		changes[n].modseq = modseq;
		n++;
	}
	if (*p != '\0' || n == 0)
		return -1;
	*node_r = node;
	*count_r = n;
	return 0;
}

/* Another node's change: the account's open handle (if any) learns
 * there is something newer, then the hub tells the sessions. */
static void raise_modseq(struct store *store, int64_t user_id,
			 uint64_t modseq)
{
	pthread_mutex_lock(&store->users_mu);
	size_t b = (uint64_t)user_id % store->users_size;
	for (struct store_user *u = store->users[b]; u != NULL; u = u->next) {
		if (u->id != user_id || !u->ready)
			continue;
		uint64_t cur = atomic_load(&u->last_modseq);
		while (cur < modseq &&
		       !atomic_compare_exchange_weak(&u->last_modseq, &cur,
						     modseq))
			;
	}
	pthread_mutex_unlock(&store->users_mu);
}

static void handle(struct store *store, const char *payload)
{
	struct pg_store *s = PGS(store);
	struct store_change ch[16];
	size_t n;
	uint64_t node;
	if (pg_notify_parse(payload, &node, ch, 16, &n) < 0) {
		log_warn("store", NULL, "postgres: a malformed change"
			 " notification ignored");
		return;
	}
	if (node == s->node_id)
		return;          /* ours: published at our commit */
	if (ch[0].kind != STORE_CHANGE_LOGOUT)
		raise_modseq(store, ch[0].user_id, ch[0].modseq);
	for (size_t i = 0; i < n; i++)
		store_publish(store, &ch[i]);
}

struct resync_ctx {
	struct store *store;
};

/* After a reconnect: changes may have been missed, every open view of
 * every open account resyncs once. */
static void resync_user(struct store_user *user, void *ctx)
{
	struct store *store = ctx;
	struct pg_conn *c = pg_conn_get(store, NULL);
	if (c == NULL)
		return;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	PGresult *r = pg_exec(c, "SELECT a.modseq, m.id FROM account a"
			      " JOIN mailbox m ON m.user_id = a.user_id"
			      " WHERE a.user_id = $1", &p, NULL);
	pg_conn_put(store, c);
	if (r == NULL)
		return;
	for (int i = 0; i < PQntuples(r); i++) {
		uint64_t modseq = (uint64_t)pg_int(r, i, 0);
		if (i == 0)
			raise_modseq(store, user->id, modseq);
		struct store_change ch = {user->id, (uint32_t)pg_int(r, i, 1),
					  STORE_CHANGE_FLAGS, modseq};
		store_publish(store, &ch);
	}
	PQclear(r);
}

/* A failover loses nothing acknowledged only when every COMMIT waited
 * for a synchronous standby (synchronous_commit = on, set by
 * pg_conn_open, and synchronous_standby_names on the primary). Asked on
 * every (re)connect of the listener and when it idles; a change is said
 * in the log. pg_stat_replication's details are visible to superusers
 * and pg_read_all_stats only: a standby whose state is hidden counts as
 * one that streams. */
static void standby_check(struct pg_store *s, PGconn *db)
{
	PGresult *r = PQexec(db, "SELECT current_setting("
			     "'synchronous_standby_names'),"
			     " count(*) FILTER (WHERE sync_state IN"
			     " ('sync', 'quorum') OR sync_state IS NULL),"
			     " string_agg(application_name, ', ') FILTER"
			     " (WHERE sync_state IN ('sync', 'quorum'))"
			     " FROM pg_stat_replication");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		PQclear(r);
		return;
	}
	const char *names = PQgetvalue(r, 0, 0);
	long streaming = atol(PQgetvalue(r, 0, 1));
	const char *which = PQgetvalue(r, 0, 2);
	int state = names[0] == '\0' ? 1 : streaming == 0 ? 2 : 0;
	if (state != s->standby_state) {
		if (state == 1)
			log_warn("store", NULL, "postgres: the primary has no"
				 " synchronous standby (synchronous_standby_names"
				 " is empty): a failover can lose acknowledged"
				 " mail");
		else if (state == 2)
			log_warn("store", NULL, "postgres: synchronous_standby"
				 "_names is '%s' but no standby streams: every"
				 " commit waits for one", names);
		else
			log_info("store", NULL, "postgres: synchronous standby"
				 " streaming: %s", which[0] != '\0' ? which
				 : names);
	}
	s->standby_state = state;
	PQclear(r);
}

static PGconn *listen_connect(struct pg_store *s)
{
	PGconn *db = pg_connect(s, "loftd-listen");
	if (db != NULL && PQstatus(db) == CONNECTION_OK) {
		PGresult *r = PQexec(db, "LISTEN " CHANNEL);
		bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if (ok) {
			standby_check(s, db);
			return db;
		}
	}
	log_warn("store", NULL, "postgres: change listener: %s",
		 db != NULL ? PQerrorMessage(db) : "out of memory");
	PQfinish(db);
	return NULL;
}

static void *listener_main(void *arg)
{
	struct store *store = arg;
	struct pg_store *s = PGS(store);
	PGconn *db = NULL;
	bool first = true;
	for (;;) {
		if (db == NULL) {
			db = listen_connect(s);
			atomic_store(&s->unreachable, db == NULL);
			if (db != NULL && !first) {
				log_info("store", NULL, "postgres: change listener"
					 " back: open views resync");
				store_users_foreach(store, resync_user, store);
			}
			if (db != NULL)
				first = false;
		}
		struct pollfd pfd[2] = {{s->wake[0], POLLIN, 0},
					{db != NULL ? PQsocket(db) : -1, POLLIN, 0}};
		int r = poll(pfd, 2, db != NULL ? 30000 : 500);
		if (r < 0 && errno != EINTR)
			break;
		if (pfd[0].revents != 0)
			break;
		if (db == NULL)
			continue;
		if (r == 0)
			standby_check(s, db);
		if (PQconsumeInput(db) == 0 || PQstatus(db) != CONNECTION_OK) {
			log_warn("store", NULL, "postgres: change listener lost:"
				 " %s", PQerrorMessage(db));
			atomic_store(&s->unreachable, true);
			PQfinish(db);
			db = NULL;
			continue;
		}
		PGnotify *n;
		while ((n = PQnotifies(db)) != NULL) {
			handle(store, n->extra);
			PQfreemem(n);
		}
	}
	PQfinish(db);
	return NULL;
}

bool pg_reachable(struct store *store)
{
	struct pg_store *s = PGS(store);
	return s == NULL || !atomic_load(&s->unreachable);
}

int pg_hub_start(struct store *store)
{
	struct pg_store *s = PGS(store);
	if (s->listening)
		return 0;
	if (pipe(s->wake) < 0)
		return -1;
	if (pthread_create(&s->listener, NULL, listener_main, store) != 0) {
		close(s->wake[0]);
		close(s->wake[1]);
		return -1;
	}
	s->listening = true;
	return 0;
}

void pg_hub_stop(struct store *store)
{
	struct pg_store *s = PGS(store);
	if (s == NULL || !s->listening)
		return;
	if (write(s->wake[1], "x", 1) < 0)
		log_warn("store", NULL, "postgres: stopping the listener: %s",
			 strerror(errno));
	pthread_join(s->listener, NULL);
	close(s->wake[0]);
	close(s->wake[1]);
	s->listening = false;
}

/* After the COMMIT, on the committing connection (its own implicit
 * transaction). A failure only delays other nodes (they resync by
 * modseq). */
void pg_notify_send(struct store *store, struct pg_conn *c,
		    const struct store_change *changes, size_t count)
{
	if (count == 0)
		return;
	struct buf payload;
	buf_init(&payload, 0);
	pg_notify_format(PGS(store)->node_id, changes, count, &payload);
	struct pg_params p;
	pg_p_init(&p);
	pg_p_str(&p, payload.data);
	struct store_error err;
	if (pg_run(c, "SELECT pg_notify('" CHANNEL "', $1)", &p, &err) < 0)
		log_warn("store", NULL, "postgres: NOTIFY: %s", err.msg);
	buf_free(&payload);
}

/* loftctl kick / user del on this node: the account's sessions on every
 * other node end too. */
void pg_end_sessions(struct store *store, int64_t user_id)
{
	struct pg_conn *c = pg_conn_get(store, NULL);
	if (c == NULL) {
		log_warn("store", NULL, "postgres: sessions of user %lld on"
			 " other nodes not told to end", (long long)user_id);
		return;
	}
	struct store_change ch = {user_id, 0, STORE_CHANGE_LOGOUT, 0};
	pg_notify_send(store, c, &ch, 1);
	pg_conn_put(store, c);
}
