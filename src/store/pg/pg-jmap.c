/*
 * JMAP in the PostgreSQL backend (store.h "JMAP"; sqlite/sq-jmap.c is the
 * reference): stored objects (Identity, EmailSubmission,
 * VacationResponse, PushSubscription, settings; Sieve's ids are kept by
 * pg-sieve.c) in table jobject, their tombstones in jgone (schema step 3).
 * An id is never reused: a new one is above every live and destroyed id
 * of its kind.
 *
 * States: a kind's is the highest modseq of its rows and tombstones
 * (never below the horizon of pruned tombstones, never above the
 * account's counter). Mailbox, Email and Thread rows are jmailbox, jemail
 * and jthread, kept by the triggers of pg-jmail-schema.h (schema step 8).
 */
#include "pg-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg-rows.h"

int pg_jobject_list(struct store_user *user, enum store_jmap_kind kind,
		    struct store_jobject **list_r, size_t *count_r,
		    struct store_error *err)
{
	*list_r = NULL;
	*count_r = 0;
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, kind);
	PGresult *r = pg_exec(c, "SELECT id, modseq, data FROM jobject"
			      " WHERE user_id = $1 AND kind = $2 ORDER BY id",
			      &p, err);
	pg_conn_put(user->store, c);
	if (r == NULL)
		return -1;
	int n = PQntuples(r);
	struct store_jobject *list = xcalloc(n ? (size_t)n : 1, sizeof(*list));
	for (int i = 0; i < n; i++) {
		list[i].id = pg_int(r, i, 0);
		list[i].modseq.modseq = (uint64_t)pg_int(r, i, 1);
		list[i].modseq.id = 0;
		list[i].data = pg_strdup(r, i, 2);
	}
	PQclear(r);
	*list_r = list;
	*count_r = (size_t)n;
	return 0;
}

/* data NULL: delete. *id 0: a new object (its id returned there). */
static int jobject_tx(struct pg_tx *tx, enum store_jmap_kind kind,
		      int64_t *id, const char *data, struct store_error *err)
{
	uint64_t modseq = pg_tx_modseq(tx);
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, kind);
	pg_p_int(&p, *id);
	pg_p_int(&p, (int64_t)modseq);
	PGresult *r;
	if (data == NULL) {
		pg_p_int(&p, (int64_t)pg_now(tx->user->store));
		r = pg_exec(tx->c, "WITH gone AS (DELETE FROM jobject WHERE"
			    " user_id = $1 AND kind = $2 AND id = $3"
			    " RETURNING created) INSERT INTO jgone (user_id,"
			    " kind, id, oid, created, modseq, at) SELECT $1, $2,"
			    " $3, NULL, created, $4, $5 FROM gone"
			    " ON CONFLICT (user_id, kind, id) DO UPDATE SET"
			    " created = excluded.created, modseq ="
			    " excluded.modseq, at = excluded.at RETURNING id",
			    &p, err);
		if (r == NULL)
			return -1;
		int found = PQntuples(r);
		PQclear(r);
		if (found == 0)
			return store_set_error(err, STORE_ERR_NOTFOUND,
					       "No such object");
	} else if (*id == 0) {
		pg_p_str(&p, data);
		r = pg_exec(tx->c, "INSERT INTO jobject (user_id, kind, id,"
			    " created, modseq, data) SELECT $1, $2,"
			    " greatest(coalesce((SELECT max(id) FROM jobject"
			    " WHERE user_id = $1 AND kind = $2), 0),"
			    " coalesce((SELECT max(id) FROM jgone WHERE"
			    " user_id = $1 AND kind = $2), 0), $3) + 1, $4, $4, $5"
			    " RETURNING id", &p, err);
		if (r == NULL)
			return -1;
		*id = pg_int(r, 0, 0);
		PQclear(r);
	} else {
		pg_p_str(&p, data);
		if (pg_run(tx->c, "INSERT INTO jobject (user_id, kind, id,"
			   " created, modseq, data) VALUES ($1, $2, $3, $4, $4, $5)"
			   " ON CONFLICT (user_id, kind, id) DO UPDATE SET"
			   " modseq = $4, data = $5", &p, err) < 0)
			return -1;
	}
	pg_tx_change(tx, 0, STORE_CHANGE_OBJECTS);
	return 0;
}

int pg_jobject_put(struct store_user *user, enum store_jmap_kind kind,
		   int64_t id, const char *data, int64_t *id_r,
		   struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	int ret = jobject_tx(&tx, kind, &id, data, err);
	if (pg_wend(&tx, ret, err) < 0)
		return -1;
	if (id_r != NULL)
		*id_r = id;
	return 0;
}

int pg_jobject_delete(struct store_user *user, enum store_jmap_kind kind,
		      int64_t id, struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	return pg_wend(&tx, jobject_tx(&tx, kind, &id, NULL, err), err);
}

/* ---- states and changes ---------------------------------------------- */

/* In c's snapshot: every kind's state, and the horizon. */
static int states_in(struct store_user *user, struct pg_conn *c,
		     struct store_jmap_cursor *states, uint64_t *horizon_r,
		     struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, STORE_JMAP_KINDS - 1);
	PGresult *r = pg_exec(c, "SELECT a.modseq, a.jmap_horizon, k.kind,"
			      " greatest(CASE k.kind WHEN 0 THEN (SELECT"
			      " max(modseq) FROM jmailbox WHERE user_id = $1)"
			      " WHEN 1 THEN (SELECT max(modseq) FROM jemail WHERE"
			      " user_id = $1) WHEN 2 THEN (SELECT max(modseq) FROM"
			      " jthread WHERE user_id = $1) ELSE (SELECT max(modseq)"
			      " FROM jobject o WHERE o.user_id = $1 AND o.kind ="
			      " k.kind) END, (SELECT max(modseq) FROM jgone g"
			      " WHERE g.user_id = $1 AND g.kind = k.kind))"
			      " FROM account a, generate_series(0, $2::integer)"
			      " k(kind) WHERE a.user_id = $1", &p, err);
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return store_set_error(err, STORE_ERR_NOTFOUND,
				       "No mail stored for this user");
	}
	int64_t account = pg_int(r, 0, 0), horizon = pg_int(r, 0, 1);
	for (int i = 0; i < PQntuples(r); i++) {
		int k = (int)pg_int(r, i, 2);
		if (k < 0 || k >= STORE_JMAP_KINDS)
			continue;
		int64_t v = pg_int(r, i, 3);
		if (v < horizon)
			v = horizon;
		if (v > account)
			v = account;
		states[k].modseq = (uint64_t)v;
		states[k].id = 0;
		states[k].scope = 0;
	}
	PQclear(r);
	if (horizon_r != NULL)
		*horizon_r = (uint64_t)horizon;
	return 0;
}

int pg_jmap_states(struct store_user *user, struct store_jmap_cursor *states,
		   struct store_error *err)
{
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	int ret = states_in(user, c, states, NULL, err);
	pg_rend(user, c);
	return ret;
}

static void change_push(struct store_jmap_change **v, size_t *n, int64_t id,
			const char *oid)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[*n].id = id;
	snprintf((*v)[*n].objectid, sizeof((*v)[*n].objectid), "%s",
		 oid != NULL ? oid : "");
	(*n)++;
}

/* The live rows of a kind (id, created, modseq, live, objectid, meta)
 * and its tombstones, (modseq, id) > ($3, $4), modseq <= $5, the first
 * $6. A Mailbox's meta is its last change of something else than its
 * counts; an Email no longer visible whose blob stays (all copies
 * \Deleted) is destroyed with its thread as objectid, as a tombstone has
 * it; a Thread is live while one of its Emails is visible. */
#define CHANGES_GONE                                                         \
	" UNION ALL SELECT id, created, modseq, false, oid, 0::bigint"       \
	" FROM jgone WHERE user_id = $1 AND kind = $2) x"                    \
	" WHERE (modseq, id) > ($3, $4) AND modseq <= $5"                    \
	" ORDER BY modseq, id LIMIT $6"

static const char *changes_sql(enum store_jmap_kind kind)
{
	switch (kind) {
	case STORE_JMAP_MAILBOX:
		return "SELECT * FROM (SELECT j.id::bigint AS id, j.created,"
		       " j.modseq, true, x.objectid AS oid, j.meta FROM"
		       " jmailbox j JOIN mailbox x ON x.user_id = j.user_id AND"
		       " x.id = j.id WHERE j.user_id = $1" CHANGES_GONE;
	case STORE_JMAP_EMAIL:
		return "SELECT * FROM (SELECT e.id, e.created, e.modseq,"
		       " e.visible > 0, CASE WHEN e.visible > 0 THEN NULL ELSE"
		       " (SELECT b.thread::text FROM blob b WHERE b.user_id ="
		       " e.user_id AND b.id = e.id) END, 0::bigint FROM jemail e"
		       " WHERE e.user_id = $1" CHANGES_GONE;
	case STORE_JMAP_THREAD:
		return "SELECT * FROM (SELECT t.id, t.created, t.modseq, EXISTS"
		       " (SELECT 1 FROM blob b JOIN jemail e ON e.user_id ="
		       " b.user_id AND e.id = b.id WHERE b.user_id = t.user_id"
		       " AND b.thread = t.id AND e.visible > 0), NULL::text,"
		       " 0::bigint FROM jthread t WHERE t.user_id = $1"
		       CHANGES_GONE;
	default:
		return "SELECT * FROM (SELECT id, created, modseq, true,"
		       " NULL::text, 0::bigint FROM jobject WHERE user_id = $1"
		       " AND kind = $2" CHANGES_GONE;
	}
}

int pg_jmap_changes(struct store_user *user, enum store_jmap_kind kind,
		    const struct store_jmap_cursor *since, size_t max,
		    struct store_jmap_changes *r, struct store_error *err)
{
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct store_jmap_cursor states[STORE_JMAP_KINDS];
	memset(states, 0, sizeof(states));
	uint64_t horizon = 0;
	int ret = states_in(user, c, states, &horizon, err);
	PGresult *res = NULL;
	if (ret < 0)
		goto out;
	uint64_t upto = states[kind].modseq;
	if (since->modseq < horizon) {
		r->too_old = true;
		goto out;
	}
	/* (modseq, id) > since, and no later than the state; live rows and
	 * tombstones in one list, in that order */
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, kind);
	pg_p_int(&p, (int64_t)since->modseq);
	pg_p_int(&p, since->id != 0 ? since->id : INT64_MAX);
	pg_p_int(&p, (int64_t)upto);
	pg_p_int(&p, max > 0 ? (int64_t)max + 1 : INT64_MAX);
	res = pg_exec(c, changes_sql(kind), &p, err);
	if (res == NULL) {
		ret = -1;
		goto out;
	}
	size_t n = (size_t)PQntuples(res), take = n;
	if (max > 0 && n > max) {
		take = max;
		r->more = true;
	}
	bool meta = false;
	for (size_t i = 0; i < take; i++) {
		int row = (int)i;
		int64_t id = pg_int(res, row, 0);
		uint64_t created = (uint64_t)pg_int(res, row, 1);
		bool live = pg_bool(res, row, 3);
		const char *oid = pg_val(res, row, 4, NULL);
		bool created_after = created > since->modseq ||
			(created == since->modseq && since->id != 0 &&
			 id > since->id);
		if (live && created_after) {
			change_push(&r->created, &r->created_count, id, oid);
		} else if (live) {
			change_push(&r->updated, &r->updated_count, id, oid);
			meta |= (uint64_t)pg_int(res, row, 5) > since->modseq;
		} else if (!created_after || kind == STORE_JMAP_EMAIL) {
			/* An Email's created moves when it comes back
			 * (loft_jemail_merge), so a later one does not prove
			 * the client never held it: RFC 8620 5.2 lets it be
			 * listed destroyed all the same. */
			change_push(&r->destroyed, &r->destroyed_count, id, oid);
		}
	}
	r->counts_only = kind == STORE_JMAP_MAILBOX && r->updated_count > 0 &&
			 !meta;
	if (r->more) {
		r->new_state.modseq = (uint64_t)pg_int(res, (int)take - 1, 2);
		r->new_state.id = pg_int(res, (int)take - 1, 0);
	} else {
		r->new_state = states[kind];
		if (r->new_state.modseq < since->modseq)
			r->new_state = *since;
	}
out:
	PQclear(res);
	pg_rend(user, c);
	if (ret < 0)
		store_jmap_changes_free(r);
	return ret;
}

/* Tombstones and the membership log older than STORE_JMAP_LOG_DAYS go;
 * the horizon rises past them (a state before it is too old). Expired
 * uploads go too. */
int pg_jmap_prune(struct store_user *user, time_t now, struct store_error *err)
{
	now = pg_db_time(user->store, now);
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, (int64_t)now - (int64_t)STORE_JMAP_LOG_DAYS * 86400);
	pg_p_int(&p, (int64_t)now);
	/* and uploads past their time (the collector takes their bytes) */
	int ret = pg_run(tx.c, "WITH gone AS (DELETE FROM jgone WHERE"
			 " user_id = $1 AND at < $2 RETURNING modseq),"
			 " left_ AS (DELETE FROM jmember WHERE user_id = $1"
			 " AND at < $2 RETURNING modseq),"
			 " up AS (DELETE FROM jupload WHERE user_id = $1"
			 " AND expires < $3)"
			 " UPDATE account SET jmap_horizon = greatest(jmap_horizon,"
			 " (SELECT max(modseq) FROM gone), (SELECT max(modseq)"
			 " FROM left_)) WHERE user_id = $1 AND (EXISTS (SELECT 1"
			 " FROM gone) OR EXISTS (SELECT 1 FROM left_))", &p, err);
	return pg_wend(&tx, ret, err);
}
