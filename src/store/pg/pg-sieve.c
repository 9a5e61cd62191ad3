/*
 * Sieve in the PostgreSQL backend (store.h "Sieve"; tables of schema
 * step 3 in pg-db.c): scripts, records, and a delivery whose copies and
 * records commit in one transaction, so a vacation record and the
 * message it answered are both there or neither is. The JMAP ids of the
 * scripts (RFC 9661) are jobject rows of kind STORE_JMAP_SIEVE whose data
 * is the script's name, kept in step in the transaction of each change,
 * as the embedded backend does (sqlite/sq-sieve.c is the reference).
 *
 * No store_sieve_version here: a node cannot see another node's change
 * without asking the database, so every delivery reads the script (no
 * cache across nodes).
 */
#include "pg-private.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg-rows.h"

int pg_sieve_list(struct store_user *user, struct store_sieve_script **list_r,
		  size_t *count_r, struct store_error *err)
{
	*list_r = NULL;
	*count_r = 0;
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, STORE_JMAP_SIEVE);
	PGresult *r = pg_exec(c, "SELECT s.name, s.active, length(s.source),"
			      " s.modified, j.id FROM sieve_script s"
			      " LEFT JOIN jobject j ON j.user_id = s.user_id"
			      " AND j.kind = $2 AND j.data = s.name"
			      " WHERE s.user_id = $1 ORDER BY s.name COLLATE \"C\"",
			      &p, err);
	pg_conn_put(user->store, c);
	if (r == NULL)
		return -1;
	int n = PQntuples(r);
	struct store_sieve_script *list = xcalloc(n ? (size_t)n : 1,
						  sizeof(*list));
	for (int i = 0; i < n; i++) {
		list[i].name = pg_strdup(r, i, 0);
		list[i].active = pg_bool(r, i, 1);
		list[i].size = (uint64_t)pg_int(r, i, 2);
		list[i].modified = (time_t)pg_int(r, i, 3);
		list[i].jmap_id = pg_int(r, i, 4);
	}
	PQclear(r);
	*list_r = list;
	*count_r = (size_t)n;
	return 0;
}

static void *bytes_dup(const char *p, size_t n)
{
	char *r = xmalloc(n + 1);
	if (n)
		memcpy(r, p, n);
	r[n] = '\0';
	return r;
}

int pg_sieve_get(struct store_user *user, const char *name, bool active_only,
		 char **name_r, char **source_r, size_t *len_r, void **image_r,
		 size_t *image_len_r, bool *active_r, struct store_error *err)
{
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	PGresult *r;
	if (active_only) {
		r = pg_exec(c, "SELECT name, source, compiled, active"
			    " FROM sieve_script WHERE user_id = $1 AND active",
			    &p, err);
	} else {
		pg_p_str(&p, name);
		r = pg_exec(c, "SELECT name, source, compiled, active"
			    " FROM sieve_script WHERE user_id = $1 AND name = $2",
			    &p, err);
	}
	pg_conn_put(user->store, c);
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return store_set_error(err, STORE_ERR_NOTFOUND,
				       "No such script");
	}
	if (name_r)
		*name_r = pg_strdup(r, 0, 0);
	size_t sl, il;
	const char *src = pg_val(r, 0, 1, &sl);
	const char *img = pg_val(r, 0, 2, &il);
	if (source_r)
		*source_r = bytes_dup(src != NULL ? src : "", sl);
	if (len_r)
		*len_r = sl;
	if (image_r)
		*image_r = img != NULL ? bytes_dup(img, il) : NULL;
	if (image_len_r)
		*image_len_r = il;
	if (active_r)
		*active_r = pg_bool(r, 0, 3);
	PQclear(r);
	return 0;
}

/* ---- changes ------------------------------------------------------- */

enum sieve_op { SV_PUT, SV_ACTIVATE, SV_DELETE, SV_RENAME, SV_IDS };

struct sieve_arg {
	enum sieve_op op;
	const char *name, *to;
	const char *source;
	size_t len;
	const void *image;
	size_t image_len;
};

/* 1 the script exists (active_r), 0 not, -1 error. */
static int script_state(struct pg_tx *tx, const char *name, bool *active_r,
			struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_str(&p, name);
	PGresult *r = pg_exec(tx->c, "SELECT active FROM sieve_script"
			      " WHERE user_id = $1 AND name = $2", &p, err);
	if (r == NULL)
		return -1;
	int found = PQntuples(r) == 1;
	if (found && active_r != NULL)
		*active_r = pg_bool(r, 0, 0);
	PQclear(r);
	return found;
}

/* The row of name takes this transaction's modseq (a property of it
 * changed). */
static int ids_touch(struct pg_tx *tx, const char *name,
		     struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, STORE_JMAP_SIEVE);
	pg_p_int(&p, (int64_t)pg_tx_modseq(tx));
	pg_p_str(&p, name);
	if (pg_run(tx->c, "UPDATE jobject SET modseq = $3 WHERE user_id = $1"
		   " AND kind = $2 AND data = $4", &p, err) < 0)
		return -1;
	pg_tx_change(tx, 0, STORE_CHANGE_OBJECTS);
	return 0;
}

/* Rows whose script is gone become tombstones; scripts without a row get
 * one (a new id, never one used before). */
static int ids_sync(struct pg_tx *tx, struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, STORE_JMAP_SIEVE);
	pg_p_int(&p, (int64_t)tx->modseq + (tx->took_modseq ? 0 : 1));
	pg_p_int(&p, (int64_t)pg_now(tx->user->store));
	PGresult *r = pg_exec(tx->c, "WITH gone AS (DELETE FROM jobject j"
			      " WHERE user_id = $1 AND kind = $2 AND NOT EXISTS"
			      " (SELECT 1 FROM sieve_script s WHERE s.user_id = $1"
			      " AND s.name = j.data) RETURNING id, created),"
			      " tomb AS (INSERT INTO jgone (user_id, kind, id, oid,"
			      " created, modseq, at) SELECT $1, $2, id, NULL,"
			      " created, $3, $4 FROM gone ON CONFLICT (user_id,"
			      " kind, id) DO UPDATE SET created = excluded.created,"
			      " modseq = excluded.modseq, at = excluded.at"
			      " RETURNING 1),"
			      " top AS (SELECT greatest(coalesce((SELECT max(id)"
			      " FROM jobject WHERE user_id = $1 AND kind = $2), 0),"
			      " coalesce((SELECT max(id) FROM jgone WHERE"
			      " user_id = $1 AND kind = $2), 0)) AS id),"
			      " fresh AS (INSERT INTO jobject (user_id, kind, id,"
			      " created, modseq, data) SELECT $1, $2, top.id +"
			      " row_number() OVER (ORDER BY s.name COLLATE \"C\"),"
			      " $3, $3, s.name FROM sieve_script s, top"
			      " WHERE s.user_id = $1 AND NOT EXISTS (SELECT 1"
			      " FROM jobject j WHERE j.user_id = $1 AND"
			      " j.kind = $2 AND j.data = s.name) RETURNING 1)"
			      " SELECT (SELECT count(*) FROM tomb),"
			      " (SELECT count(*) FROM fresh)", &p, err);
	if (r == NULL)
		return -1;
	bool changed = pg_int(r, 0, 0) > 0 || pg_int(r, 0, 1) > 0;
	PQclear(r);
	if (changed) {
		pg_tx_modseq(tx);
		pg_tx_change(tx, 0, STORE_CHANGE_OBJECTS);
	}
	return 0;
}

/* The active script's name (NULL: none); -1 on error. */
static int active_name(struct pg_tx *tx, char **name_r,
		       struct store_error *err)
{
	*name_r = NULL;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	PGresult *r = pg_exec(tx->c, "SELECT name FROM sieve_script"
			      " WHERE user_id = $1 AND active", &p, err);
	if (r == NULL)
		return -1;
	if (PQntuples(r) > 0)
		*name_r = pg_strdup(r, 0, 0);
	PQclear(r);
	return 0;
}

static int sieve_change(struct pg_tx *tx, const struct sieve_arg *a,
			struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	bool active = false;
	int r;
	switch (a->op) {
	case SV_IDS:
		return 0;
	case SV_PUT:
		pg_p_str(&p, a->name);
		pg_p_bin(&p, a->source, a->len);
		if (a->image != NULL)
			pg_p_bin(&p, a->image, a->image_len);
		else
			pg_p_str(&p, NULL);
		pg_p_int(&p, (int64_t)pg_now(tx->user->store));
		return pg_run(tx->c, "INSERT INTO sieve_script (user_id, name,"
			      " source, compiled, modified) VALUES ($1, $2, $3,"
			      " $4, $5) ON CONFLICT (user_id, name) DO UPDATE SET"
			      " source = $3, compiled = $4, modified = $5",
			      &p, err);
	case SV_ACTIVATE:
		if (a->name != NULL) {
			r = script_state(tx, a->name, NULL, err);
			if (r <= 0)
				return r < 0 ? -1 : store_set_error(err,
					STORE_ERR_NOTFOUND, "No such script");
		}
		pg_p_str(&p, a->name);
		return pg_run(tx->c, "UPDATE sieve_script SET active ="
			      " (name IS NOT DISTINCT FROM $2) WHERE user_id = $1"
			      " AND (active OR name = $2)", &p, err);
	case SV_DELETE:
		r = script_state(tx, a->name, &active, err);
		if (r <= 0)
			return r < 0 ? -1 : store_set_error(err,
				STORE_ERR_NOTFOUND, "No such script");
		if (active)
			return store_set_error(err, STORE_ERR_EXISTS,
					       "The script is active");
		pg_p_str(&p, a->name);
		return pg_run(tx->c, "DELETE FROM sieve_script WHERE"
			      " user_id = $1 AND name = $2", &p, err);
	case SV_RENAME:
		r = script_state(tx, a->name, NULL, err);
		if (r <= 0)
			return r < 0 ? -1 : store_set_error(err,
				STORE_ERR_NOTFOUND, "No such script");
		if (strcmp(a->name, a->to) == 0)
			return 0;
		r = script_state(tx, a->to, NULL, err);
		if (r != 0)
			return r < 0 ? -1 : store_set_error(err,
				STORE_ERR_EXISTS, "A script of that name exists");
		pg_p_str(&p, a->name);
		pg_p_str(&p, a->to);
		pg_p_int(&p, (int64_t)pg_now(tx->user->store));
		if (pg_run(tx->c, "UPDATE sieve_script SET name = $3,"
			   " modified = $4 WHERE user_id = $1 AND name = $2",
			   &p, err) < 0)
			return -1;
		/* the JMAP id stays with the script */
		struct pg_params q;
		pg_p_init(&q);
		pg_p_int(&q, tx->user->id);
		pg_p_int(&q, STORE_JMAP_SIEVE);
		pg_p_str(&q, a->name);
		pg_p_str(&q, a->to);
		return pg_run(tx->c, "UPDATE jobject SET data = $4 WHERE"
			      " user_id = $1 AND kind = $2 AND data = $3",
			      &q, err);
	}
	return 0;
}

static int sieve_run(struct store_user *user, const struct sieve_arg *a,
		     struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	char *was = NULL;
	/* activation changes isActive of the old script and the new one */
	int r = a->op == SV_ACTIVATE ? active_name(&tx, &was, err) : 0;
	if (r == 0)
		r = sieve_change(&tx, a, err);
	if (r == 0)
		r = ids_sync(&tx, err);
	if (r == 0 && (a->op == SV_PUT || a->op == SV_RENAME))
		r = ids_touch(&tx, a->op == SV_PUT ? a->name : a->to, err);
	if (r == 0 && a->op == SV_ACTIVATE &&
	    !(was && a->name && strcmp(was, a->name) == 0)) {
		if (was != NULL)
			r = ids_touch(&tx, was, err);
		if (r == 0 && a->name != NULL)
			r = ids_touch(&tx, a->name, err);
	}
	free(was);
	return pg_wend(&tx, r, err);
}

int pg_sieve_put(struct store_user *user, const char *name, const char *source,
		 size_t len, const void *image, size_t image_len,
		 struct store_error *err)
{
	struct sieve_arg a = {.op = SV_PUT, .name = name, .source = source,
			      .len = len, .image = image,
			      .image_len = image_len};
	return sieve_run(user, &a, err);
}

int pg_sieve_activate(struct store_user *user, const char *name,
		      struct store_error *err)
{
	struct sieve_arg a = {.op = SV_ACTIVATE, .name = name};
	return sieve_run(user, &a, err);
}

int pg_sieve_delete(struct store_user *user, const char *name,
		    struct store_error *err)
{
	struct sieve_arg a = {.op = SV_DELETE, .name = name};
	return sieve_run(user, &a, err);
}

int pg_sieve_rename(struct store_user *user, const char *from, const char *to,
		    struct store_error *err)
{
	struct sieve_arg a = {.op = SV_RENAME, .name = from, .to = to};
	return sieve_run(user, &a, err);
}

int pg_sieve_ids(struct store_user *user, struct store_error *err)
{
	struct sieve_arg a = {.op = SV_IDS};
	return sieve_run(user, &a, err);
}

int pg_sieve_record_seen(struct store_user *user, const char *key, time_t now,
			 bool *seen_r, struct store_error *err)
{
	now = pg_db_time(user->store, now);
	*seen_r = false;
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_str(&p, key);
	pg_p_int(&p, (int64_t)now);
	PGresult *r = pg_exec(c, "SELECT 1 FROM sieve_record WHERE user_id = $1"
			      " AND key = $2 AND expires > $3", &p, err);
	pg_conn_put(user->store, c);
	if (r == NULL)
		return -1;
	*seen_r = PQntuples(r) > 0;
	PQclear(r);
	return 0;
}

/* ---- delivery ------------------------------------------------------ */

/* A lost COMMIT's answer: the delivery committed if its first copy is
 * there (copies and records commit together). */
int pg_sieve_deliver(struct store_user *user, struct store_sieve_copy *copies,
		     size_t count, const struct store_sieve_record *records,
		     size_t record_count, struct store_error *err)
{
	struct store_account_limits limits;
	if (count > 0 && pg_limits_get(user, &limits, err) < 0)
		return -1;
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	struct pg_delivered first, d;
	memset(&first, 0, sizeof(first));
	int ret = 0;
	for (size_t i = 0; i < count && ret == 0; i++) {
		struct store_sieve_copy *cp = &copies[i];
		ret = pg_deliver_tx(&tx, cp->body, cp->mailbox, cp->prefix,
				    cp->prefix_len, cp->params, &limits, &d,
				    NULL, err);
		cp->uid_r = d.uid;
		if (i == 0)
			first = d;
	}
	if (ret == 0 && record_count > 0) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, (int64_t)pg_now(user->store));
		ret = pg_run(tx.c, "DELETE FROM sieve_record WHERE user_id = $1"
			     " AND expires <= $2", &p, err);
	}
	for (size_t i = 0; i < record_count && ret == 0; i++) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_str(&p, records[i].key);
		pg_p_int(&p, (int64_t)records[i].expires);
		ret = pg_run(tx.c, "INSERT INTO sieve_record (user_id, key,"
			     " expires) VALUES ($1, $2, $3) ON CONFLICT"
			     " (user_id, key) DO UPDATE SET expires = $3",
			     &p, err);
	}
	if (pg_wend_resolve(&tx, ret, count > 0 ? pg_delivered : NULL, &first,
			    err) < 0) {
		for (size_t i = 0; i < count; i++)
			copies[i].uid_r = 0;
		return -1;
	}
	return 0;
}
