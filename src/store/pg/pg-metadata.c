/*
 * Annotations (RFC 5464 METADATA) and URLAUTH mailbox access keys (RFC
 * 4467) in the PostgreSQL backend (store.h "metadata"; sqlite/
 * sq-metadata.c is the reference): tables annotation and access_key of
 * schema step 5 (pg-db.c), mailbox 0 the server. Column viewer is 0 for
 * the owner's rows and every /shared entry, a viewer's user id for that
 * viewer's /private entries and key on the owner's mailbox. Rows go with
 * their account (ON DELETE CASCADE) and their mailbox (a trigger: the
 * server's rows have no mailbox row).
 *
 * Writes run in the account's write transaction (pg_wbegin), so the
 * limits, checked after the changes, hold across nodes; a change over
 * them is rolled back whole.
 */
#include "pg-private.h"

#include <stdlib.h>
#include <string.h>

#include "pg-rows.h"

/* The id of mailbox (0 for the server); NOTFOUND if none or \Noselect. */
static int mailbox_id(struct store_user *user, struct pg_conn *c,
		      const char *mailbox, uint32_t *id_r,
		      struct store_error *err)
{
	*id_r = 0;
	if (mailbox == NULL)
		return 0;
	struct pg_mbox mb;
	if (pg_mbox_need(user, c, mailbox, 0, &mb, err) < 0)
		return -1;
	*id_r = mb.id;
	return 0;
}

static void push_rows(struct store_metadata_list *l, const PGresult *r,
		      size_t base_len, int depth)
{
	for (int i = 0; i < PQntuples(r); i++) {
		size_t flen, vlen;
		const char *found = pg_val(r, i, 0, &flen);
		const char *value = pg_val(r, i, 1, &vlen);
		if (base_len == 0 ||
		    store_metadata_in_depth(found, flen, base_len, depth))
			store_metadata_push(l, found, flen, value, vlen);
	}
}

static int get_one(struct store_user *user, struct pg_conn *c, uint32_t mbox,
		   int64_t viewer, const char *name, int depth,
		   struct store_metadata_list *l, struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, mbox);
	pg_p_int(&p, store_metadata_row_viewer(name, viewer));
	pg_p_str(&p, name);
	PGresult *r = pg_exec(c, "SELECT name, value FROM annotation"
			      " WHERE user_id = $1 AND mailbox = $2"
			      " AND viewer = $3 AND name = $4", &p, err);
	if (r == NULL)
		return -1;
	push_rows(l, r, 0, 0);
	PQclear(r);
	if (depth == 0)
		return 0;
	/* descendants: names between "name/" and "name0" ('0' follows '/'
	 * in the column's "C" collation); all under the same /private or
	 * /shared as name, so whose rows they are does not change */
	char *lo = xasprintf("%s/", name), *hi = xasprintf("%s0", name);
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, mbox);
	pg_p_int(&p, store_metadata_row_viewer(name, viewer));
	pg_p_str(&p, lo);
	pg_p_str(&p, hi);
	r = pg_exec(c, "SELECT name, value FROM annotation WHERE user_id = $1"
		    " AND mailbox = $2 AND viewer = $3 AND name >= $4"
		    " AND name < $5", &p, err);
	free(lo);
	free(hi);
	if (r == NULL)
		return -1;
	push_rows(l, r, strlen(name), depth);
	PQclear(r);
	return 0;
}

static int metadata_get(struct store_user *user, int64_t viewer,
			const char *mailbox, const char *const *names,
			size_t name_count, int depth,
			struct store_metadata **entries_r, size_t *count_r,
			struct store_error *err)
{
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct store_metadata_list l = {0};
	uint32_t id;
	int ret = mailbox_id(user, c, mailbox, &id, err);
	for (size_t i = 0; ret == 0 && i < name_count; i++)
		ret = get_one(user, c, id, viewer, names[i], depth, &l, err);
	pg_rend(user, c);
	if (ret < 0) {
		store_metadata_free(l.items, l.count);
		return -1;
	}
	store_metadata_sort(&l);
	*entries_r = l.items;
	*count_r = l.count;
	return 0;
}

/* The limits of whose rows (0: the owner's and every /shared entry). */
static int check_limits(struct pg_tx *tx, int64_t who, struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, who);
	PGresult *r = pg_exec(tx->c, "SELECT count(*), coalesce(sum("
			      "length(value)), 0)::bigint FROM annotation"
			      " WHERE user_id = $1 AND viewer = $2", &p, err);
	if (r == NULL)
		return -1;
	int64_t n = pg_int(r, 0, 0), total = pg_int(r, 0, 1);
	PQclear(r);
	return store_metadata_limits(n, (double)total, err);
}

static int set_tx(struct pg_tx *tx, int64_t viewer, const char *mailbox,
		  const struct store_metadata *entries, size_t count,
		  struct store_error *err)
{
	uint32_t id;
	bool own = false, viewers = false;
	if (mailbox_id(tx->user, tx->c, mailbox, &id, err) < 0)
		return -1;
	for (size_t i = 0; i < count; i++) {
		const struct store_metadata *e = &entries[i];
		int64_t who = store_metadata_row_viewer(e->name, viewer);
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, tx->user->id);
		pg_p_int(&p, id);
		pg_p_int(&p, who);
		pg_p_str(&p, e->name);
		int r;
		if (e->value == NULL) {
			r = pg_run(tx->c, "DELETE FROM annotation WHERE"
				   " user_id = $1 AND mailbox = $2 AND"
				   " viewer = $3 AND name = $4", &p, err);
		} else {
			pg_p_bin(&p, e->value, e->value_len);
			r = pg_run(tx->c, "INSERT INTO annotation (user_id,"
				   " mailbox, viewer, name, value) VALUES ($1, $2,"
				   " $3, $4, $5) ON CONFLICT (user_id, mailbox,"
				   " viewer, name) DO UPDATE SET value = $5",
				   &p, err);
		}
		if (r < 0)
			return -1;
		own |= who == 0;
		viewers |= who != 0;
	}
	if ((own && check_limits(tx, 0, err) < 0) ||
	    (viewers && check_limits(tx, viewer, err) < 0))
		return -1;
	/* RFC 7162 3.2: a change of the mailbox's annotations is a change
	 * of the mailbox */
	if (mailbox != NULL && pg_mbox_touch(tx, id, 0, err) < 0)
		return -1;
	pg_tx_change(tx, id, STORE_CHANGE_METADATA);
	return 0;
}

static int metadata_set(struct store_user *user, int64_t viewer,
			const char *mailbox,
			const struct store_metadata *entries, size_t count,
			struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	return pg_wend(&tx, set_tx(&tx, viewer, mailbox, entries, count, err),
		       err);
}

/* The key of (mailbox, viewer) in c's transaction: 1 found, 0 none, -1
 * a database error. */
static int key_read(struct store_user *user, struct pg_conn *c,
		    uint32_t mbox, int64_t viewer, unsigned char *key_r,
		    struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, mbox);
	pg_p_int(&p, viewer);
	PGresult *r = pg_exec(c, "SELECT key FROM access_key WHERE user_id = $1"
			      " AND mailbox = $2 AND viewer = $3", &p, err);
	if (r == NULL)
		return -1;
	size_t len = 0;
	const char *key = PQntuples(r) == 1 ? pg_val(r, 0, 0, &len) : NULL;
	int found = key != NULL && len == STORE_URLAUTH_KEY_LEN;
	if (found)
		memcpy(key_r, key, STORE_URLAUTH_KEY_LEN);
	PQclear(r);
	return found;
}

static int key_tx(struct pg_tx *tx, int64_t viewer, const char *mailbox,
		  bool reset, unsigned char *key_r, struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	if (mailbox == NULL) {
		/* RESETKEY without a mailbox: every key of the viewer (0:
		 * the owner) goes; new ones are made when next needed */
		pg_p_int(&p, viewer);
		return pg_run(tx->c, "DELETE FROM access_key WHERE user_id = $1"
			      " AND viewer = $2", &p, err);
	}
	struct pg_mbox mb;
	if (pg_mbox_need(tx->user, tx->c, mailbox, 0, &mb, err) < 0)
		return -1;
	unsigned char fresh[STORE_URLAUTH_KEY_LEN];
	store_random(fresh, sizeof(fresh));
	pg_p_int(&p, mb.id);
	pg_p_int(&p, viewer);
	pg_p_bin(&p, fresh, sizeof(fresh));
	if (pg_run(tx->c, reset
		   ? "INSERT INTO access_key (user_id, mailbox, viewer, key)"
		     " VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, mailbox,"
		     " viewer) DO UPDATE SET key = $4"
		   : "INSERT INTO access_key (user_id, mailbox, viewer, key)"
		     " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
		   &p, err) < 0)
		return -1;
	int found = key_read(tx->user, tx->c, mb.id, viewer, key_r, err);
	if (found == 0)
		return store_set_error(err, STORE_ERR_TEMP,
				       "The mailbox's access key is damaged");
	return found < 0 ? -1 : 0;
}

static int urlauth_key(struct store_user *user, int64_t viewer,
		       const char *mailbox, bool reset, unsigned char *key_r,
		       struct store_error *err)
{
	if (!reset && mailbox != NULL) {
		/* the common case: the key is there, no write needed */
		struct pg_conn *c = pg_rbegin(user, err);
		if (c == NULL)
			return -1;
		struct pg_mbox mb;
		int found = pg_mbox_get(user, c, mailbox, 0, &mb, err);
		if (found == 1)
			found = key_read(user, c, mb.id, viewer, key_r, err);
		pg_rend(user, c);
		if (found == 1)
			return 0;
		if (found < 0)
			return -1;
	}
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	return pg_wend(&tx, key_tx(&tx, viewer, mailbox, reset, key_r, err),
		       err);
}

/* ---- the vtable's entries: run again while a failure is retryable ---- */

int pg_metadata_get(struct store_user *user, int64_t viewer,
		    const char *mailbox, const char *const *names,
		    size_t name_count, int depth,
		    struct store_metadata **entries_r, size_t *count_r,
		    struct store_error *err)
{
	PG_RETRY(user->store, metadata_get(user, viewer, mailbox, names,
					   name_count, depth, entries_r,
					   count_r, err));
}

int pg_metadata_set(struct store_user *user, int64_t viewer,
		    const char *mailbox, const struct store_metadata *entries,
		    size_t count, struct store_error *err)
{
	PG_RETRY(user->store, metadata_set(user, viewer, mailbox, entries,
					   count, err));
}

int pg_urlauth_key(struct store_user *user, int64_t viewer,
		   const char *mailbox, bool reset, unsigned char *key_r,
		   struct store_error *err)
{
	PG_RETRY(user->store, urlauth_key(user, viewer, mailbox, reset, key_r,
					  err));
}
