/*
 * JMAP writes of the PostgreSQL backend (sqlite/sq-jmap-tx.c is the
 * reference): the email transaction (creates, keyword and mailbox
 * updates, destroys of one Email/set, import or copy in one transaction
 * under the account's row lock, each op under a savepoint of its own so
 * one failure leaves the others) and uploads (bytes in the blob store
 * under their SHA-256, a row in jupload, durable before the reply). The
 * JMAP bookkeeping itself is done by the triggers (pg-jmail-schema.h).
 */
#include "pg-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- copies of an Email ------------------------------------------------- */

struct copy {
	uint32_t mailbox, uid;
	unsigned flags;
	char *keywords;
	uint64_t size;
};

struct copies {
	struct copy *v;
	size_t n;
};

static void copies_free(struct copies *cs)
{
	for (size_t i = 0; i < cs->n; i++)
		free(cs->v[i].keywords);
	free(cs->v);
	cs->v = NULL;
	cs->n = 0;
}

static int copies_get(struct pg_tx *tx, int64_t blob, struct copies *cs,
		      struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, blob);
	PGresult *r = pg_exec(tx->c, "SELECT mailbox, uid, flags, keywords, size"
			      " FROM msg WHERE user_id = $1 AND blob = $2"
			      " ORDER BY mailbox, uid", &p, err);
	if (r == NULL)
		return -1;
	cs->n = (size_t)PQntuples(r);
	cs->v = xcalloc(cs->n ? cs->n : 1, sizeof(*cs->v));
	for (size_t i = 0; i < cs->n; i++) {
		struct copy *x = &cs->v[i];
		x->mailbox = (uint32_t)pg_int(r, (int)i, 0);
		x->uid = (uint32_t)pg_int(r, (int)i, 1);
		x->flags = (unsigned)pg_int(r, (int)i, 2);
		x->keywords = pg_strdup(r, (int)i, 3);
		x->size = (uint64_t)pg_int(r, (int)i, 4);
	}
	PQclear(r);
	return 0;
}

static bool visible(const struct copy *x)
{
	return (x->flags & STORE_FLAG_DELETED) == 0;
}

static bool u32_in(const uint32_t *v, size_t n, uint32_t x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

static bool same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* ---- the transaction ---------------------------------------------------- */

static int op_create(struct pg_tx *tx, struct store_email_op *op,
		     const struct store_account_limits *limits,
		     struct store_error *err)
{
	if (op->body == NULL)
		return store_set_error(err, STORE_ERR_INVALID, "No message");
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, op->mailboxes[0]);
	PGresult *r = pg_exec(tx->c, "SELECT name FROM mailbox WHERE"
			      " user_id = $1 AND id = $2", &p, err);
	if (r == NULL)
		return -1;
	char *name = PQntuples(r) == 1 ? pg_strdup(r, 0, 0) : NULL;
	PQclear(r);
	if (name == NULL)
		return store_set_error(err, STORE_ERR_NOTFOUND,
				       "Mailbox doesn't exist");
	struct pg_delivered d;
	int ret = pg_deliver_tx(tx, op->body, name, NULL, 0, &op->params,
				limits, &d, NULL, err);
	free(name);
	for (size_t k = 1; k < op->mailbox_count && ret == 0; k++) {
		if (!u32_in(op->mailboxes, k, op->mailboxes[k]))
			ret = pg_copy_one(tx, d.mailbox, d.uid, op->mailboxes[k],
					  limits, err);
	}
	op->result.id = d.blob;
	op->result.size = store_body_size(op->body);
	return ret;
}

/* Applies the keyword part of an update to every visible copy. */
static int update_keywords(struct pg_tx *tx, struct copies *cs,
			   const struct store_email_update *up,
			   struct store_error *err)
{
	for (size_t i = 0; i < cs->n; i++) {
		struct copy *x = &cs->v[i];
		if (!visible(x))
			continue;
		unsigned nf = store_email_flags_update(x->flags, up);
		char *nk = store_email_keywords_update(x->keywords, up);
		if (nf == x->flags && same_str(nk, x->keywords)) {
			free(nk);
			continue;
		}
		if (pg_row_flags_set(tx, x->mailbox, x->uid, nf, nk, err) < 0) {
			free(nk);
			return -1;
		}
		x->flags = nf;
		free(x->keywords);
		x->keywords = nk;
	}
	return 0;
}

static int op_update(struct pg_tx *tx, struct store_email_op *op,
		     const struct store_account_limits *limits,
		     struct store_error *err)
{
	const struct store_email_update *up = &op->update;
	struct copies cs = {0};
	if (copies_get(tx, op->id, &cs, err) < 0)
		return -1;
	int ret = 0;
	struct copy *first = NULL;
	for (size_t i = 0; i < cs.n && first == NULL; i++)
		if (visible(&cs.v[i]))
			first = &cs.v[i];
	if (first == NULL) {
		ret = store_set_error(err, STORE_ERR_NOTFOUND, "No such Email");
		goto out;
	}
	ret = update_keywords(tx, &cs, up, err);
	/* mailboxes: the target set, then what to add and to remove */
	uint32_t *cur = xcalloc(cs.n, sizeof(uint32_t)), *want;
	size_t ncur = 0, nwant;
	for (size_t i = 0; i < cs.n; i++)
		if (visible(&cs.v[i]) && !u32_in(cur, ncur, cs.v[i].mailbox))
			cur[ncur++] = cs.v[i].mailbox;
	want = store_email_mailboxes_want(cur, ncur, up, &nwant);
	if (ret == 0 && nwant == 0)
		ret = store_set_error(err, STORE_ERR_INVALID,
				      "An Email needs a mailbox");
	for (size_t i = 0; i < nwant && ret == 0; i++)
		if (!u32_in(cur, ncur, want[i]))
			ret = pg_copy_one(tx, first->mailbox, first->uid,
					  want[i], limits, err);
	for (size_t i = 0; i < ncur && ret == 0; i++) {
		if (u32_in(want, nwant, cur[i]))
			continue;
		uint32_t *uids = xcalloc(cs.n, sizeof(uint32_t));
		size_t n = 0;
		for (size_t k = 0; k < cs.n; k++)
			if (cs.v[k].mailbox == cur[i] && visible(&cs.v[k]))
				uids[n++] = cs.v[k].uid;
		ret = pg_expunge_uids(tx, cur[i], uids, n, PG_GONE_LOG, err);
		free(uids);
	}
	free(cur);
	free(want);
	op->result.id = op->id;
	op->result.size = first->size;
out:
	copies_free(&cs);
	return ret;
}

/* Every copy, \Deleted ones too: the Email is gone everywhere. Kept for
 * undelete when the account keeps (keep), but a draft: destroying one is
 * how a client replaces it (RFC 8621 4.6: drafts are immutable). */
static int op_destroy(struct pg_tx *tx, struct store_email_op *op, bool keep,
		      struct store_error *err)
{
	struct copies cs = {0};
	if (copies_get(tx, op->id, &cs, err) < 0)
		return -1;
	bool any = false;
	for (size_t i = 0; i < cs.n; i++)
		any |= visible(&cs.v[i]);
	int ret = any ? 0 : store_set_error(err, STORE_ERR_NOTFOUND,
					    "No such Email");
	bool draft = false;
	for (size_t i = 0; i < cs.n; i++)
		draft |= (cs.v[i].flags & STORE_FLAG_DRAFT) != 0;
	unsigned how = PG_GONE_LOG | (keep && !draft ? PG_GONE_KEEP : 0);
	uint32_t *uids = xcalloc(cs.n ? cs.n : 1, sizeof(uint32_t));
	for (size_t i = 0; i < cs.n && ret == 0;) {
		size_t n = 0, k = i;
		for (; k < cs.n && cs.v[k].mailbox == cs.v[i].mailbox; k++)
			uids[n++] = cs.v[k].uid;
		ret = pg_expunge_uids(tx, cs.v[i].mailbox, uids, n, how, err);
		i = k;
	}
	free(uids);
	copies_free(&cs);
	op->result.id = op->id;
	return ret;
}

static int thread_of(struct pg_tx *tx, int64_t blob, int64_t *thread_r,
		     struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, blob);
	PGresult *r = pg_exec(tx->c, "SELECT thread FROM blob WHERE"
			      " user_id = $1 AND id = $2", &p, err);
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 1)
		*thread_r = pg_int(r, 0, 0);
	PQclear(r);
	return 0;
}

/* The ops in tx's transaction, each under a savepoint: a failed one is
 * undone alone and keeps its error. -1 only when the transaction itself
 * cannot go on. */
static int etx_run(struct pg_tx *tx, struct store_email_tx *etx,
		   const struct store_account_limits *limits, bool keep,
		   struct store_error *err)
{
	for (size_t i = 0; i < etx->count; i++) {
		struct store_email_op *op = &etx->ops[i];
		if (op->result.err.kind != STORE_ERR_NONE)
			continue;
		int64_t bytes = tx->bytes, messages = tx->messages;
		size_t changes = tx->change_count;
		if (pg_cmd(tx->c, "SAVEPOINT op", err) < 0)
			return -1;
		struct store_error oerr;
		memset(&oerr, 0, sizeof(oerr));
		int r = op->kind == STORE_EMAIL_OP_CREATE
				? op_create(tx, op, limits, &oerr)
			: op->kind == STORE_EMAIL_OP_UPDATE
				? op_update(tx, op, limits, &oerr)
				: op_destroy(tx, op, keep, &oerr);
		if (r == 0 && op->kind != STORE_EMAIL_OP_DESTROY)
			r = thread_of(tx, op->result.id, &op->result.thread,
				      &oerr);
		if (r < 0) {
			if (tx->c->broken ||
			    pg_cmd(tx->c, "ROLLBACK TO SAVEPOINT op", err) < 0) {
				if (err != NULL && oerr.kind != STORE_ERR_NONE)
					*err = oerr;
				return -1;
			}
			tx->bytes = bytes;
			tx->messages = messages;
			tx->change_count = changes;
			op->result.err = oerr;
			if (op->result.err.kind == STORE_ERR_NONE)
				store_set_error(&op->result.err,
						STORE_ERR_INTERNAL,
						"Internal error");
			op->result.id = 0;
		}
		if (pg_cmd(tx->c, "RELEASE SAVEPOINT op", err) < 0)
			return -1;
	}
	return 0;
}

int pg_email_tx_commit(struct store_user *user, struct store_email_tx *etx,
		       struct store_error *err)
{
	struct store_account_limits limits;
	if (pg_limits_get(user, &limits, err) < 0)
		return -1;
	bool keep = pg_deleted_keep(user);
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	int ret = pg_wend(&tx, etx_run(&tx, etx, &limits, keep, err), err);
	for (size_t i = 0; i < etx->count && ret < 0; i++) {
		struct store_email_op *op = &etx->ops[i];
		if (op->result.err.kind == STORE_ERR_NONE) {
			op->result.err = *err;
			op->result.id = 0;
		}
	}
	return ret;
}

/* ---- uploads ------------------------------------------------------------ */

struct store_upload {
	struct store_object obj;
	struct store_user *user;
	struct store_body *body;
};

int pg_upload_begin(struct store_user *user, uint64_t max_size,
		    struct store_upload **up_r, struct store_error *err)
{
	struct store_upload *up = xcalloc(1, sizeof(*up));
	up->obj.vf = &store_postgres_vfuncs;
	if (pg_body_create(user->store, &up->body, err) < 0) {
		free(up);
		return -1;
	}
	pg_body_set_raw(up->body, max_size);
	store_user_ref(user);
	up->user = user;
	*up_r = up;
	return 0;
}

int pg_upload_write(struct store_upload *up, const void *data, size_t len,
		    struct store_error *err)
{
	return pg_body_write(up->body, data, len, err);
}

static void upload_free(struct store_upload *up)
{
	pg_body_unref(up->body);
	store_user_unref(&up->user);
	free(up);
}

void pg_upload_abort(struct store_upload **upp)
{
	struct store_upload *up = *upp;
	*upp = NULL;
	if (up != NULL)
		upload_free(up);
}

int pg_upload_finish(struct store_upload **upp, const char *type,
		     time_t expires, int64_t *id_r, uint64_t *size_r,
		     struct store_error *err)
{
	struct store_upload *up = *upp;
	*upp = NULL;
	/* the bytes durable under their name before the row names them */
	int ret = pg_body_finish(up->body, err);
	struct pg_tx tx;
	if (ret == 0)
		ret = pg_wbegin(up->user, &tx, err);
	if (ret == 0) {
		const char *sha = pg_body_sha(up->body);
		ret = pg_blob_claim(&tx, sha, NULL, NULL, NULL, err);
		PGresult *r = NULL;
		if (ret == 0) {
			struct pg_params p;
			pg_p_init(&p);
			pg_p_int(&p, up->user->id);
			pg_p_str(&p, sha);
			pg_p_int(&p, (int64_t)pg_body_size(up->body));
			pg_p_str(&p, type);
			pg_p_int(&p, (int64_t)expires);
			r = pg_exec(tx.c, "INSERT INTO jupload (user_id, sha256,"
				    " body_size, type, created, expires) VALUES"
				    " ($1, $2, $3, $4, loft_jnow(), $5) RETURNING id",
				    &p, err);
			ret = r != NULL ? 0 : -1;
		}
		if (ret == 0) {
			*id_r = pg_int(r, 0, 0);
			*size_r = pg_body_size(up->body);
		}
		PQclear(r);
		ret = pg_wend(&tx, ret, err);
	}
	upload_free(up);
	return ret;
}

int pg_upload_open(struct store_user *user, int64_t id,
		   struct store_blob *blob_r, char **type_r,
		   struct store_error *err)
{
	memset(blob_r, 0, sizeof(*blob_r));
	if (type_r != NULL)
		*type_r = NULL;
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, id);
	PGresult *r = pg_exec(c, "SELECT sha256, body_size, ''::bytea, type"
			      " FROM jupload WHERE user_id = $1 AND id = $2"
			      " AND expires >= loft_jnow()", &p, err);
	pg_conn_put(user->store, c);
	if (r == NULL)
		return -1;
	char *type = PQntuples(r) == 1 ? pg_strdup(r, 0, 3) : NULL;
	int ret = pg_blob_from_row(user, r, blob_r, err);
	PQclear(r);
	if (ret < 0) {
		free(type);
		if (err != NULL && err->kind == STORE_ERR_NOTFOUND)
			store_set_error(err, STORE_ERR_NOTFOUND,
					"No such upload");
		return -1;
	}
	if (type_r != NULL)
		*type_r = type;
	else
		free(type);
	return 0;
}

int pg_upload_touch(struct store_user *user, int64_t id, time_t expires,
		    struct store_error *err)
{
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, id);
	pg_p_int(&p, (int64_t)expires);
	PGresult *r = pg_exec(c, "UPDATE jupload SET expires = greatest(expires,"
			      " $3) WHERE user_id = $1 AND id = $2 RETURNING id",
			      &p, err);
	pg_conn_put(user->store, c);
	if (r == NULL)
		return -1;
	int found = PQntuples(r);
	PQclear(r);
	return found > 0 ? 0 : store_set_error(err, STORE_ERR_NOTFOUND,
					       "No such upload");
}
