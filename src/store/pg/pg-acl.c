/*
 * Mailbox ACLs (RFC 4314) in the PostgreSQL backend (store.h "shared
 * mailboxes"; sqlite/sq-acl.c is the reference): table acl, one row per
 * (mailbox id, kind, identifier id, negative) with the rights as bits.
 * Rows name a mailbox by id, so a RENAME keeps them; they go with their
 * mailbox (ON DELETE CASCADE), a new mailbox inherits its parent's and a
 * mailbox turned \Noselect loses its own (triggers of schema step 3), all
 * in the transaction of the mailbox change.
 *
 * The reverse index (who granted rights to whom: auth's acl_hints, which
 * LIST of other users' mailboxes reads) is kept by trigger on acl (schema
 * step 7) in the same transaction as every ACL row change, whatever
 * makes it (SETACL, inheritance, a mailbox or account deleted), when the
 * accounts are in the same database (loft_auth, [auth] postgres unset)
 * and the store's role may write them; otherwise the hint before the
 * commit (store-acl.c) remains.
 */
#include "pg-private.h"

#include <stdlib.h>
#include <string.h>

#include "pg-rows.h"

static void entry_from_row(const PGresult *r, int row, int col,
			   struct store_acl_entry *e)
{
	e->kind = (enum store_acl_kind)pg_int(r, row, col);
	e->id = pg_int(r, row, col + 1);
	e->negative = pg_bool(r, row, col + 2);
	e->rights = (unsigned)pg_int(r, row, col + 3);
}

int pg_acl_read(struct store_user *user, const char *mailbox, uint32_t *id_r,
		struct store_acl_entry **entries_r, size_t *count_r,
		struct store_error *err)
{
	*entries_r = NULL;
	*count_r = 0;
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct pg_mbox mb;
	int r = pg_mbox_get(user, c, mailbox, 0, &mb, err);
	PGresult *res = NULL;
	if (r > 0) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, mb.id);
		res = pg_exec(c, "SELECT kind, ident, negative, rights FROM acl"
			      " WHERE user_id = $1 AND mailbox = $2"
			      " ORDER BY kind, ident, negative", &p, err);
		if (res == NULL)
			r = -1;
	}
	pg_rend(user, c);
	if (r == 0)
		return store_set_error(err, STORE_ERR_NOTFOUND,
				       STORE_ACL_NOTFOUND, mailbox);
	if (r < 0)
		return -1;
	*id_r = mb.id;
	int n = PQntuples(res);
	struct store_acl_entry *e = xcalloc(n ? (size_t)n : 1, sizeof(*e));
	for (int i = 0; i < n; i++)
		entry_from_row(res, i, 0, &e[i]);
	PQclear(res);
	*entries_r = e;
	*count_r = (size_t)n;
	return 0;
}

static int acl_tx(struct pg_tx *tx, const char *mailbox,
		  const struct store_acl_entry *e, int mode,
		  unsigned max_entries, struct store_error *err)
{
	struct pg_mbox mb;
	int r = pg_mbox_get(tx->user, tx->c, mailbox, 0, &mb, err);
	if (r <= 0)
		return r < 0 ? -1 : store_set_error(err, STORE_ERR_NOTFOUND,
			"Mailbox doesn't exist: %s", mailbox);
	/* the entry as it is now, and how many the mailbox has */
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, mb.id);
	pg_p_int(&p, (int)e->kind);
	pg_p_int(&p, e->id);
	pg_p_str(&p, e->negative ? "t" : "f");
	PGresult *res = pg_exec(tx->c, "SELECT (SELECT rights FROM acl WHERE"
				" user_id = $1 AND mailbox = $2 AND kind = $3 AND"
				" ident = $4 AND negative = $5), (SELECT count(*)"
				" FROM acl WHERE user_id = $1 AND mailbox = $2)",
				&p, err);
	if (res == NULL)
		return -1;
	bool exists = !PQgetisnull(res, 0, 0);
	unsigned old = exists ? (unsigned)pg_int(res, 0, 0) : 0;
	int64_t count = pg_int(res, 0, 1);
	PQclear(res);
	unsigned rights = mode == 0 ? e->rights
			  : mode == 1 ? old | e->rights
			  : mode == -1 ? old & ~e->rights : 0;
	if (rights == old && (exists || rights == 0))
		return 0;   /* nothing changes */
	if (!exists && max_entries > 0 && count >= (int64_t)max_entries)
		return store_set_error(err, STORE_ERR_LIMIT, "Too many ACL"
				       " entries on this mailbox (at most %u)",
				       max_entries);
	if (rights == 0) {
		r = pg_run(tx->c, "DELETE FROM acl WHERE user_id = $1 AND"
			   " mailbox = $2 AND kind = $3 AND ident = $4 AND"
			   " negative = $5", &p, err);
	} else {
		pg_p_int(&p, rights);
		r = pg_run(tx->c, "INSERT INTO acl (user_id, mailbox, kind,"
			   " ident, negative, rights) VALUES ($1, $2, $3, $4, $5,"
			   " $6) ON CONFLICT (user_id, mailbox, kind, ident,"
			   " negative) DO UPDATE SET rights = $6", &p, err);
	}
	if (r < 0)
		return -1;
	pg_tx_modseq(tx);
	pg_tx_change(tx, mb.id, STORE_CHANGE_ACL);
	return 0;
}

int pg_acl_update(struct store_user *user, const char *mailbox,
		  const struct store_acl_entry *entry, int mode,
		  unsigned max_entries, struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	return pg_wend(&tx, acl_tx(&tx, mailbox, entry, mode, max_entries, err),
		       err);
}

int pg_acl_all(struct store_user *user, struct store_acl_row **rows_r,
	       size_t *count_r, struct store_error *err)
{
	*rows_r = NULL;
	*count_r = 0;
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	PGresult *r = pg_exec(c, "SELECT m.name, a.mailbox, a.kind, a.ident,"
			      " a.negative, a.rights FROM acl a JOIN mailbox m"
			      " ON m.user_id = a.user_id AND m.id = a.mailbox"
			      " WHERE a.user_id = $1"
			      " ORDER BY a.mailbox, a.kind, a.ident", &p, err);
	pg_conn_put(user->store, c);
	if (r == NULL)
		return -1;
	int n = PQntuples(r);
	struct store_acl_row *rows = xcalloc(n ? (size_t)n : 1, sizeof(*rows));
	for (int i = 0; i < n; i++) {
		rows[i].mailbox = pg_strdup(r, i, 0);
		rows[i].mailbox_id = (uint32_t)pg_int(r, i, 1);
		entry_from_row(r, i, 2, &rows[i].entry);
	}
	PQclear(r);
	*rows_r = rows;
	*count_r = (size_t)n;
	return 0;
}

int pg_acl_copy(struct pg_tx *tx, uint32_t from, uint32_t to,
		struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, from);
	pg_p_int(&p, to);
	struct pg_params q;
	pg_p_init(&q);
	pg_p_int(&q, tx->user->id);
	pg_p_int(&q, to);
	if (pg_run(tx->c, "DELETE FROM acl WHERE user_id = $1 AND mailbox = $2",
		   &q, err) < 0)
		return -1;
	return pg_run(tx->c, "INSERT INTO acl (user_id, mailbox, kind, ident,"
		      " negative, rights) SELECT user_id, $3, kind, ident,"
		      " negative, rights FROM acl WHERE user_id = $1"
		      " AND mailbox = $2", &p, err);
}

bool pg_acl_index_kept(struct store *store)
{
	struct pg_store *s = PGS(store);
	if (atomic_load(&s->acl_index_kept))
		return true;
	struct pg_conn *c = pg_conn_get(store, NULL);
	if (c == NULL)
		return false;
	struct pg_params p;
	pg_p_init(&p);
	PGresult *r = pg_exec(c, "SELECT loft_acl_index()", &p, NULL);
	pg_conn_put(store, c);
	bool kept = r != NULL && PQntuples(r) == 1 && pg_bool(r, 0, 0);
	PQclear(r);
	/* the accounts' table does not go away: once there, kept */
	if (kept)
		atomic_store(&s->acl_index_kept, true);
	return kept;
}
