/*
 * Undelete in the PostgreSQL backend (store.h "undelete"; sqlite/
 * sq-undelete.c is the reference): a removed message's row goes to table
 * deleted (schema step 6) in the transaction that removes it
 * (pg_expunge_uids with PG_GONE_KEEP), stamped with the database's clock;
 * its blob row stays while a kept row names it (pg_blob_rows_drop), so
 * the collector keeps its bytes. Undelete brings kept rows back with new
 * UIDs in one write transaction; the retention run purges those past the
 * account's period. Whether an account keeps them is its
 * deleted_retention_days (store_account_limits), read before a removal's
 * transaction (pg_deleted_keep).
 */
#include "pg-private.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "log.h"
#include "pg-rows.h"

/* Seconds a policy read stays good: an admin change applies within it. */
#define POLICY_TTL 30

bool pg_deleted_keep(struct store_user *user)
{
	struct pg_store_user *pu = user->be;
	int64_t now = (int64_t)time(NULL);
	if (pu != NULL && now - atomic_load(&pu->deleted_checked) < POLICY_TTL)
		return !atomic_load(&pu->deleted_off);
	struct store_account_limits l;
	memset(&l, 0, sizeof(l));
	const struct store_settings *set = &user->store->set;
	/* unread (the accounts busy): as it was, and kept when never read */
	if (set->limits != NULL &&
	    set->limits(set->limits_ctx, user->id, &l) < 0)
		return pu == NULL || !atomic_load(&pu->deleted_off);
	if (pu != NULL) {
		atomic_store(&pu->deleted_off, l.deleted_retention_days == 0);
		atomic_store(&pu->deleted_checked, now);
	}
	return l.deleted_retention_days != 0;
}

/* The kept rows sql (a DELETE ... RETURNING blob with p) removed, and
 * the blob rows none names any more. */
static int drop_rows(struct pg_tx *tx, const char *sql, struct pg_params *p,
		     uint32_t *count_r, struct store_error *err)
{
	PGresult *r = pg_exec(tx->c, sql, p, err);
	if (r == NULL)
		return -1;
	int64_t n = pg_int(r, 0, 0);
	char *blobs = pg_strdup(r, 0, 1);
	PQclear(r);
	int ret = blobs != NULL ? pg_blob_rows_drop(tx, blobs, err) : 0;
	free(blobs);
	if (ret == 0)
		*count_r += (uint32_t)n;
	return ret;
}

int pg_deleted_purge(struct pg_tx *tx, time_t before, uint32_t *count_r,
		     struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, (int64_t)before);
	return drop_rows(tx, "WITH gone AS (DELETE FROM deleted WHERE"
			 " user_id = $1 AND at < $2 RETURNING blob)"
			 " SELECT count(*), array_agg(DISTINCT blob)::text"
			 " FROM gone", &p, count_r, err);
}

struct forget_arg {
	const int64_t *ids;
	size_t count;
};

static int forget_once(struct store_user *user, const struct forget_arg *a,
		       struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	struct buf ids;
	buf_init(&ids, 0);
	buf_append_char(&ids, '{');
	for (size_t i = 0; i < a->count; i++)
		buf_printf(&ids, "%s%" PRId64, i ? "," : "", a->ids[i]);
	buf_append_str(&ids, "}");
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_str(&p, ids.data);
	uint32_t n = 0;
	int ret = drop_rows(&tx, "WITH gone AS (DELETE FROM deleted WHERE"
			    " user_id = $1 AND id = ANY ($2::bigint[])"
			    " RETURNING blob) SELECT count(*),"
			    " array_agg(DISTINCT blob)::text FROM gone", &p, &n,
			    err);
	buf_free(&ids);
	return pg_wend(&tx, ret, err);
}

int pg_deleted_forget(struct store_user *user, const int64_t *ids,
		      size_t count, struct store_error *err)
{
	struct forget_arg a = {ids, count};
	/* a rerun after a lost COMMIT answer finds nothing more to remove */
	PG_RETRY(user->store, forget_once(user, &a, err));
}

/* ---- list ------------------------------------------------------------ */

/* The filter's parameters $2.. $4 of FILTER below (ids: a bigint[]
 * literal kept in ids). */
#define FILTER                                                            \
	" d.user_id = $1 AND ($2::text IS NULL OR d.mailbox = $2)"         \
	" AND ($3::bigint = 0 OR d.at >= $3)"                              \
	" AND ($4::bigint[] IS NULL OR d.id = ANY ($4::bigint[]))"

static void filter_params(struct pg_params *p, int64_t user_id,
			  const struct store_deleted_filter *f, struct buf *ids)
{
	pg_p_init(p);
	pg_p_int(p, user_id);
	pg_p_str(p, f != NULL ? f->mailbox : NULL);
	pg_p_int(p, f != NULL ? (int64_t)f->since : 0);
	if (f == NULL || f->id_count == 0) {
		pg_p_str(p, NULL);
		return;
	}
	buf_append_str(ids, "{");
	for (size_t i = 0; i < f->id_count; i++)
		buf_printf(ids, "%s%lld", i ? "," : "", (long long)f->ids[i]);
	buf_append_str(ids, "}");
	pg_p_str(p, ids->data);
}

static const char *text_or_empty(const PGresult *r, int row, int col,
				 char **keep)
{
	*keep = pg_strdup(r, row, col);
	return *keep != NULL ? *keep : "";
}

int pg_deleted_list(struct store_user *user,
		    const struct store_deleted_filter *filter,
		    store_deleted_fn *fn, void *ctx, struct store_error *err)
{
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct buf ids;
	buf_init(&ids, 0);
	struct pg_params p;
	filter_params(&p, user->id, filter, &ids);
	PGresult *r = pg_exec(c, "SELECT d.id, d.mailbox, d.uid, d.flags,"
			      " d.keywords, d.internaldate, d.savedate, d.at,"
			      " d.size, b.sort_subject, b.sort_display_from,"
			      " b.preview FROM deleted d LEFT JOIN blob b ON"
			      " b.user_id = $1 AND b.id = d.blob WHERE"
			      FILTER " ORDER BY d.at DESC, d.id DESC", &p, err);
	pg_conn_put(user->store, c);
	buf_free(&ids);
	if (r == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		char *s[5];
		struct store_deleted d = {
			.id = pg_int(r, i, 0),
			.mailbox = text_or_empty(r, i, 1, &s[0]),
			.uid = (uint32_t)pg_int(r, i, 2),
			.flags = (unsigned)pg_int(r, i, 3),
			.keywords = text_or_empty(r, i, 4, &s[1]),
			.internaldate = (time_t)pg_int(r, i, 5),
			.savedate = (time_t)pg_int(r, i, 6),
			.deleted_at = (time_t)pg_int(r, i, 7),
			.size = (uint64_t)pg_int(r, i, 8),
			.subject = text_or_empty(r, i, 9, &s[2]),
			.from = text_or_empty(r, i, 10, &s[3]),
			.preview = text_or_empty(r, i, 11, &s[4]),
		};
		bool more = fn(ctx, &d);
		for (int k = 0; k < 5; k++)
			free(s[k]);
		if (!more)
			break;
	}
	PQclear(r);
	return 0;
}

int pg_deleted_usage(struct store_user *user, struct store_usage *usage_r,
		     struct store_error *err)
{
	memset(usage_r, 0, sizeof(*usage_r));
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	PGresult *r = pg_exec(c, "SELECT count(*), coalesce(sum(size), 0)::bigint"
			      " FROM deleted WHERE user_id = $1", &p, err);
	pg_conn_put(user->store, c);
	if (r == NULL)
		return -1;
	usage_r->messages = (uint64_t)pg_int(r, 0, 0);
	usage_r->bytes = (uint64_t)pg_int(r, 0, 1);
	PQclear(r);
	return 0;
}

/* ---- undelete ----------------------------------------------------- */

/* The folder for restored mail, with a fresh UIDNEXT: made (with its
 * parents) when it is gone, a \Noselect one made a mailbox again. */
static int target_mailbox(struct pg_tx *tx, const char *name,
			  struct pg_mbox *mb_r, uint32_t *made,
			  struct store_error *err)
{
	int r = pg_mbox_get(tx->user, tx->c, name, 0, mb_r, err);
	if (r < 0)
		return -1;
	if (r == 0 || mb_r->noselect) {
		if (pg_mbox_make(tx, name, 0, err) < 0)
			return -1;
		(*made)++;
	}
	return pg_mbox_need(tx->user, tx->c, name, 0, mb_r, err);
}

struct kept_rows {
	struct pg_kept *v;
	char **mailbox;
	int64_t *id;
	size_t n;
};

static void kept_free(struct kept_rows *k)
{
	for (size_t i = 0; i < k->n; i++) {
		free(k->v[i].keywords);
		free(k->mailbox[i]);
	}
	free(k->v);
	free(k->mailbox);
	free(k->id);
}

static int undelete_tx(struct pg_tx *tx,
		       const struct store_deleted_filter *filter,
		       const struct store_account_limits *limits,
		       struct store_undelete_report *rep,
		       struct store_error *err)
{
	memset(rep, 0, sizeof(*rep));
	struct buf ids;
	buf_init(&ids, 0);
	struct pg_params p;
	filter_params(&p, tx->user->id, filter, &ids);
	/* by folder, then in the order they were removed */
	PGresult *r = pg_exec(tx->c, "SELECT d.id, d.mailbox, d.blob, d.flags,"
			      " d.keywords, d.internaldate, d.size FROM deleted d"
			      " WHERE" FILTER " ORDER BY d.mailbox COLLATE \"C\","
			      " d.id", &p, err);
	buf_free(&ids);
	if (r == NULL)
		return -1;
	struct kept_rows k;
	k.n = (size_t)PQntuples(r);
	k.v = xcalloc(k.n ? k.n : 1, sizeof(*k.v));
	k.mailbox = xcalloc(k.n ? k.n : 1, sizeof(char *));
	k.id = xcalloc(k.n ? k.n : 1, sizeof(int64_t));
	uint64_t bytes = 0;
	for (size_t i = 0; i < k.n; i++) {
		k.id[i] = pg_int(r, (int)i, 0);
		k.mailbox[i] = pg_strdup(r, (int)i, 1);
		k.v[i].blob = pg_int(r, (int)i, 2);
		k.v[i].flags = (unsigned)pg_int(r, (int)i, 3);
		k.v[i].keywords = pg_strdup(r, (int)i, 4);
		k.v[i].internaldate = pg_int(r, (int)i, 5);
		k.v[i].size = (uint64_t)pg_int(r, (int)i, 6);
		bytes += k.v[i].size;
	}
	PQclear(r);
	int ret = 0;
	/* kept ones counted in the quota already when deleted_in_quota */
	if (k.n > 0 && !limits->deleted_in_quota &&
	    pg_over_quota(tx, limits, bytes, k.n))
		ret = store_set_error(err, STORE_ERR_QUOTA, "Bringing back %zu"
				      " messages (%llu bytes) would exceed the"
				      " quota", k.n, (unsigned long long)bytes);
	time_t now = pg_now(tx->user->store);
	for (size_t i = 0; i < k.n && ret == 0;) {
		size_t j = i;
		while (j < k.n && strcmp(k.mailbox[j], k.mailbox[i]) == 0)
			j++;
		struct pg_mbox mb;
		uint32_t *uids = xcalloc(j - i, sizeof(uint32_t));
		ret = target_mailbox(tx, k.mailbox[i], &mb,
				     &rep->mailboxes_made, err);
		if (ret == 0)
			ret = pg_rows_restore(tx, &mb, k.v + i, j - i, now, uids,
					      err);
		free(uids);
		i = j;
	}
	if (ret == 0 && k.n > 0) {
		struct buf arr;
		buf_init(&arr, 0);
		buf_append_str(&arr, "{");
		for (size_t i = 0; i < k.n; i++)
			buf_printf(&arr, "%s%lld", i ? "," : "",
				   (long long)k.id[i]);
		buf_append_str(&arr, "}");
		struct pg_params q;
		pg_p_init(&q);
		pg_p_int(&q, tx->user->id);
		pg_p_str(&q, arr.data);
		ret = pg_run(tx->c, "DELETE FROM deleted WHERE user_id = $1"
			     " AND id = ANY ($2::bigint[])", &q, err);
		buf_free(&arr);
	}
	if (ret == 0) {
		rep->messages = (uint32_t)k.n;
		rep->bytes = bytes;
	}
	kept_free(&k);
	return ret;
}

static int undelete_once(struct store_user *user,
			 const struct store_deleted_filter *filter,
			 struct store_undelete_report *report_r,
			 struct store_error *err)
{
	struct store_account_limits limits;
	if (pg_limits_get(user, &limits, err) < 0)
		return -1;
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	struct store_undelete_report rep;
	int ret = pg_wend(&tx, undelete_tx(&tx, filter, &limits, &rep, err),
			  err);
	if (ret == 0) {
		if (report_r != NULL)
			*report_r = rep;
		if (rep.messages > 0)
			log_info("store", NULL, "user %lld: %u messages"
				 " undeleted", (long long)user->id,
				 rep.messages);
	}
	return ret;
}

int pg_undelete(struct store_user *user,
		const struct store_deleted_filter *filter,
		struct store_undelete_report *report_r,
		struct store_error *err)
{
	PG_RETRY(user->store, undelete_once(user, filter, report_r, err));
}

/* ---- a kept message from elsewhere (store_import_kept) --------------- */

static int ikept_tx(struct pg_tx *tx, const struct store_import_kept *k,
		    struct store_body *body, struct store_error *err)
{
	int64_t user_id = tx->user->id;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user_id);
	pg_p_str(&p, k->mailbox);
	pg_p_int(&p, k->uid);
	pg_p_int(&p, (int64_t)k->deleted_at);
	pg_p_int(&p, (int64_t)k->internaldate);
	/* the account has it (a rerun, a restore into it): nothing to add */
	PGresult *r = pg_exec(tx->c, "SELECT 1 FROM deleted WHERE user_id = $1"
			      " AND mailbox = $2 AND uid = $3 AND at = $4 AND"
			      " internaldate = $5", &p, err);
	if (r == NULL)
		return -1;
	int have = PQntuples(r) > 0;
	PQclear(r);
	if (have)
		return store_set_error(err, STORE_ERR_EXISTS, "Kept already");
	int64_t blob = 0;
	uint64_t size = 0;
	if (k->email > 0) {
		pg_p_init(&p);
		pg_p_int(&p, user_id);
		pg_p_int(&p, k->email);
		r = pg_exec(tx->c, "SELECT body_size + length(prefix) FROM blob"
			    " WHERE user_id = $1 AND id = $2", &p, err);
		if (r == NULL)
			return -1;
		if (PQntuples(r) > 0) {
			blob = k->email;
			size = (uint64_t)pg_int(r, 0, 0);
		}
		PQclear(r);
	}
	if (blob == 0) {
		if (body == NULL)
			return store_set_error(err, STORE_ERR_NOTFOUND, "No such"
					       " Email, and no body given");
		struct pg_deliver_want want = {
			.blob = k->email,
			.thread = k->thread,
		};
		if (pg_blob_row_of(tx, body, &want, &blob, &size, err) < 0)
			return -1;
	}
	pg_p_init(&p);
	pg_p_int(&p, user_id);
	pg_p_str(&p, k->mailbox);
	pg_p_int(&p, k->uid);
	pg_p_int(&p, blob);
	pg_p_int(&p, (int64_t)k->flags);
	pg_p_str(&p, k->keywords);
	pg_p_int(&p, (int64_t)k->internaldate);
	pg_p_int(&p, (int64_t)k->savedate);
	pg_p_int(&p, (int64_t)size);
	pg_p_int(&p, (int64_t)k->deleted_at);
	return pg_run(tx->c, "INSERT INTO deleted (user_id, mailbox, uid, blob,"
		      " flags, keywords, internaldate, savedate, size, at)"
		      " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
		      &p, err);
}

static int ikept_once(struct store_user *user,
		      const struct store_import_kept *k,
		      struct store_body *body, struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	return pg_wend(&tx, ikept_tx(&tx, k, body, err), err);
}

int pg_import_kept(struct store_user *user, const struct store_import_kept *k,
		   struct store_body *body, struct store_error *err)
{
	/* a rerun after a lost COMMIT answer finds the row: EXISTS */
	PG_RETRY(user->store, ikept_once(user, k, body, err));
}
