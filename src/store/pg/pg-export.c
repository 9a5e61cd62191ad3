/*
 * The export stream in the PostgreSQL backend (store.h "moving mail in
 * and out"; sqlite/sq-migrate.c is the reference): one REPEATABLE READ
 * READ ONLY snapshot of an account held on one connection from begin to
 * end, so loftctl export and backup read a pg account as they read an
 * index.db. A message's Email number is its blob row's id (one per
 * stored copy, as the embedded backend's), its thread the blob's. A body
 * is read by its blob row in the snapshot; bytes a later commit stops
 * naming stay for the collector's grace period (an hour), far longer
 * than a backup holds one account.
 */
#include "pg-private.h"

#include <stdlib.h>
#include <string.h>

struct store_export {
	struct store_object obj;
	struct store_user *user;
	struct pg_conn *c;
	struct store_export_info info;
	PGresult *rows;          /* the current mailbox's messages */
	int next;
	struct store_export_msg msg;
	struct store_keyword_list kw;
};

int pg_export_begin(struct store_user *user, struct store_export **exp_r,
		    struct store_error *err)
{
	*exp_r = NULL;
	struct store_export *e = xcalloc(1, sizeof(*e));
	e->obj.vf = &store_postgres_vfuncs;
	e->user = user;
	e->c = pg_rbegin(user, err);
	if (e->c == NULL) {
		free(e);
		return -1;
	}
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	PGresult *r = pg_exec(e->c, "SELECT modseq, bytes, messages FROM account"
			      " WHERE user_id = $1", &p, err);
	if (r == NULL || PQntuples(r) != 1) {
		if (r != NULL)
			store_set_error(err, STORE_ERR_NOTFOUND,
					"No mail stored for this user");
		PQclear(r);
		pg_export_end(&e);
		return -1;
	}
	e->info.modseq = (uint64_t)pg_int(r, 0, 0);
	e->info.usage.bytes = (uint64_t)pg_int(r, 0, 1);
	e->info.usage.messages = (uint64_t)pg_int(r, 0, 2);
	PQclear(r);
	if (pg_mailbox_list_in(user, e->c, true, &e->info.mailboxes,
			       &e->info.mailbox_count, err) < 0) {
		pg_export_end(&e);
		return -1;
	}
	r = pg_exec(e->c, "SELECT name FROM subscription WHERE user_id = $1"
		    " ORDER BY name COLLATE \"C\"", &p, err);
	if (r == NULL) {
		pg_export_end(&e);
		return -1;
	}
	size_t n = (size_t)PQntuples(r);
	e->info.subscriptions = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		e->info.subscriptions[i] = pg_strdup(r, (int)i, 0);
	e->info.subscription_count = n;
	PQclear(r);
	*exp_r = e;
	return 0;
}

const struct store_export_info *pg_export_info(const struct store_export *e)
{
	return &e->info;
}

int pg_export_messages(struct store_export *e, uint32_t mailbox_id,
		       struct store_error *err)
{
	PQclear(e->rows);
	e->rows = NULL;
	e->next = 0;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, e->user->id);
	pg_p_int(&p, mailbox_id);
	e->rows = pg_exec(e->c, "SELECT m.uid, m.modseq, m.flags, m.keywords,"
			  " m.internaldate, m.savedate, m.size, m.blob, b.thread,"
			  " m.pop3_hidden, m.pop3_first_retr, m.uidl FROM msg m"
			  " JOIN blob b ON b.user_id = m.user_id AND b.id = m.blob"
			  " WHERE m.user_id = $1 AND m.mailbox = $2"
			  " ORDER BY m.uid", &p, err);
	return e->rows != NULL ? 0 : -1;
}

int pg_export_next(struct store_export *e, const struct store_export_msg **m,
		   struct store_error *err)
{
	(void)err;
	if (e->rows == NULL || e->next >= PQntuples(e->rows))
		return 0;
	const PGresult *r = e->rows;
	int i = e->next++;
	struct store_export_msg *x = &e->msg;
	x->uid = (uint32_t)pg_int(r, i, 0);
	x->modseq = (uint64_t)pg_int(r, i, 1);
	x->flags = (unsigned)pg_int(r, i, 2);
	char *kw = pg_strdup(r, i, 3);
	x->keyword_count = store_keywords_split(kw, &e->kw);
	x->keywords = x->keyword_count > 0 ? e->kw.list : NULL;
	free(kw);
	x->internaldate = (time_t)pg_int(r, i, 4);
	x->savedate = (time_t)pg_int(r, i, 5);
	x->size = (uint64_t)pg_int(r, i, 6);
	x->email = pg_int(r, i, 7);
	x->thread = pg_int(r, i, 8);
	x->pop3_uidl = pg_val(r, i, 11, NULL);  /* NULL: none kept */
	x->pop3_hidden = pg_bool(r, i, 9);
	x->pop3_first_retr = (time_t)pg_int(r, i, 10);
	*m = x;
	return 1;
}

int pg_export_body(struct store_export *e, int64_t email,
		   struct store_blob *blob_r, struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, e->user->id);
	pg_p_int(&p, email);
	PGresult *r = pg_exec(e->c, "SELECT sha256, body_size, prefix FROM blob"
			      " WHERE user_id = $1 AND id = $2", &p, err);
	if (r == NULL)
		return -1;
	int ret = pg_blob_from_row(e->user, r, blob_r, err);
	PQclear(r);
	return ret;
}

int pg_export_seen(struct store_export *e, uint32_t mailbox_id,
		   struct store_export_seen **rows_r, size_t *count_r,
		   struct store_error *err)
{
	*rows_r = NULL;
	*count_r = 0;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, e->user->id);
	pg_p_int(&p, mailbox_id);
	PGresult *r = pg_exec(e->c, "SELECT viewer, uid FROM seen_pvt"
			      " WHERE user_id = $1 AND mailbox = $2 AND seen"
			      " ORDER BY viewer, uid", &p, err);
	if (r == NULL)
		return -1;
	size_t n = (size_t)PQntuples(r);
	struct store_export_seen *rows = xcalloc(n ? n : 1, sizeof(*rows));
	for (size_t i = 0; i < n; i++) {
		rows[i].viewer = pg_int(r, (int)i, 0);
		rows[i].uid = (uint32_t)pg_int(r, (int)i, 1);
	}
	PQclear(r);
	*rows_r = rows;
	*count_r = n;
	return 0;
}

int pg_export_expunged(struct store_export *e, uint32_t mailbox_id,
		       struct store_expunged_range **ranges_r,
		       size_t *count_r, uint64_t *horizon_r,
		       struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, e->user->id);
	pg_p_int(&p, mailbox_id);
	PGresult *r = pg_exec(e->c, "SELECT expunge_horizon FROM mailbox"
			      " WHERE user_id = $1 AND id = $2", &p, err);
	if (r == NULL)
		return -1;
	*horizon_r = PQntuples(r) > 0 ? (uint64_t)pg_int(r, 0, 0) : 0;
	PQclear(r);
	r = pg_exec(e->c, "SELECT uid, modseq, time FROM expunged"
		    " WHERE user_id = $1 AND mailbox = $2"
		    " ORDER BY modseq, time, uid", &p, err);
	if (r == NULL)
		return -1;
	size_t rows = (size_t)PQntuples(r), n = 0;
	struct store_expunged_range *v = xcalloc(rows ? rows : 1, sizeof(*v));
	for (size_t i = 0; i < rows; i++) {
		uint32_t uid = (uint32_t)pg_int(r, (int)i, 0);
		uint64_t modseq = (uint64_t)pg_int(r, (int)i, 1);
		time_t at = (time_t)pg_int(r, (int)i, 2);
		if (n > 0 && v[n - 1].modseq == modseq && v[n - 1].at == at &&
		    v[n - 1].last + 1 == uid)
			v[n - 1].last = uid;
		else
			v[n++] = (struct store_expunged_range){uid, uid,
							       modseq, at};
	}
	PQclear(r);
	*ranges_r = v;
	*count_r = n;
	return 0;
}

void pg_export_end(struct store_export **ep)
{
	struct store_export *e = *ep;
	if (e == NULL)
		return;
	*ep = NULL;
	PQclear(e->rows);
	pg_rend(e->user, e->c);
	store_mailbox_list_free(e->info.mailboxes, e->info.mailbox_count);
	store_names_free(e->info.subscriptions, e->info.subscription_count);
	store_keyword_list_free(&e->kw);
	free(e);
}

/* ---- the rest of an account (store_export_extra) -------------------- */

static char *val_dup(const PGresult *r, int row, int col, size_t *len_r)
{
	size_t n = 0;
	const char *v = pg_val(r, row, col, &n);
	if (v == NULL)
		return NULL;
	char *s = xmalloc(n + 1);
	if (n > 0)
		memcpy(s, v, n);
	s[n] = '\0';
	if (len_r != NULL)
		*len_r = n;
	return s;
}

int pg_export_extra(struct store_export *e, struct store_account_extra *x,
		    struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, e->user->id);
	/* mailbox 0 is the server's (no mailbox row) */
	PGresult *r = pg_exec(e->c, "SELECT m.name, a.viewer, a.name, a.value"
			      " FROM annotation a LEFT JOIN mailbox m ON"
			      " m.user_id = a.user_id AND m.id = a.mailbox"
			      " WHERE a.user_id = $1 AND (a.mailbox = 0 OR"
			      " m.id IS NOT NULL)"
			      " ORDER BY a.mailbox, a.viewer, a.name", &p, err);
	if (r == NULL)
		return -1;
	size_t n = (size_t)PQntuples(r);
	x->annotations = xcalloc(n + 1, sizeof(*x->annotations));
	for (size_t i = 0; i < n; i++) {
		struct store_extra_annotation *a = &x->annotations[i];
		a->mailbox = val_dup(r, (int)i, 0, NULL);
		a->viewer = pg_int(r, (int)i, 1);
		a->name = val_dup(r, (int)i, 2, NULL);
		a->value = val_dup(r, (int)i, 3, &a->value_len);
		if (a->value == NULL)
			a->value = xstrdup("");
	}
	x->annotation_count = n;
	PQclear(r);
	r = pg_exec(e->c, "SELECT m.name, k.viewer, k.key FROM access_key k"
		    " JOIN mailbox m ON m.user_id = k.user_id AND m.id = k.mailbox"
		    " WHERE k.user_id = $1 ORDER BY k.mailbox, k.viewer", &p,
		    err);
	if (r == NULL)
		return -1;
	n = (size_t)PQntuples(r);
	x->keys = xcalloc(n + 1, sizeof(*x->keys));
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;
		const char *key = pg_val(r, (int)i, 2, &len);
		if (key == NULL || len != STORE_URLAUTH_KEY_LEN)
			continue;   /* not a key URLAUTH could use */
		struct store_extra_key *k = &x->keys[x->key_count++];
		k->mailbox = val_dup(r, (int)i, 0, NULL);
		k->viewer = pg_int(r, (int)i, 1);
		memcpy(k->key, key, STORE_URLAUTH_KEY_LEN);
	}
	PQclear(r);
	r = pg_exec(e->c, "SELECT key, expires FROM sieve_record"
		    " WHERE user_id = $1 ORDER BY key COLLATE \"C\"", &p, err);
	if (r == NULL)
		return -1;
	n = (size_t)PQntuples(r);
	x->records = xcalloc(n + 1, sizeof(*x->records));
	for (size_t i = 0; i < n; i++) {
		x->records[i].key = val_dup(r, (int)i, 0, NULL);
		x->records[i].expires = (time_t)pg_int(r, (int)i, 1);
	}
	x->record_count = n;
	PQclear(r);
	pg_p_int(&p, STORE_JMAP_IDENTITY);
	pg_p_int(&p, STORE_JMAP_VACATION);
	pg_p_int(&p, STORE_JMAP_SETTINGS);
	pg_p_int(&p, STORE_JMAP_SUBMISSION);
	pg_p_int(&p, STORE_JMAP_PUSH);
	r = pg_exec(e->c, "SELECT kind, id, data FROM jobject WHERE"
		    " user_id = $1 AND kind IN ($2, $3, $4, $5, $6)"
		    " ORDER BY kind, id",
		    &p, err);
	if (r == NULL)
		return -1;
	n = (size_t)PQntuples(r);
	x->objects = xcalloc(n + 1, sizeof(*x->objects));
	for (size_t i = 0; i < n; i++) {
		struct store_extra_object *o = &x->objects[i];
		o->kind = (int)pg_int(r, (int)i, 0);
		o->id = pg_int(r, (int)i, 1);
		o->data = val_dup(r, (int)i, 2, NULL);
		if (o->data == NULL)
			o->data = xstrdup("{}");
	}
	x->object_count = n;
	PQclear(r);
	return 0;
}

/* ---- undelete's kept messages (store_export_kept) ------------------- */

int pg_export_kept(struct store_export *e, struct store_export_kept **rows_r,
		   size_t *count_r, struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, e->user->id);
	PGresult *r = pg_exec(e->c, "SELECT d.mailbox, d.uid, d.flags,"
			      " d.keywords, d.internaldate, d.savedate, d.at,"
			      " d.size, d.blob, b.thread FROM deleted d"
			      " LEFT JOIN blob b ON b.user_id = $1 AND"
			      " b.id = d.blob WHERE d.user_id = $1"
			      " ORDER BY d.at, d.id", &p, err);
	if (r == NULL)
		return -1;
	size_t n = (size_t)PQntuples(r);
	struct store_export_kept *v = xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		int row = (int)i;
		struct store_export_kept *k = &v[i];
		k->mailbox = val_dup(r, row, 0, NULL);
		if (k->mailbox == NULL)
			k->mailbox = xstrdup("");
		k->uid = (uint32_t)pg_int(r, row, 1);
		k->flags = (unsigned)pg_int(r, row, 2);
		k->keywords = val_dup(r, row, 3, NULL);
		if (k->keywords == NULL)
			k->keywords = xstrdup("");
		k->internaldate = (time_t)pg_int(r, row, 4);
		k->savedate = (time_t)pg_int(r, row, 5);
		k->deleted_at = (time_t)pg_int(r, row, 6);
		k->size = (uint64_t)pg_int(r, row, 7);
		k->email = pg_int(r, row, 8);
		k->thread = PQgetisnull(r, row, 9) ? 0 : pg_int(r, row, 9);
	}
	PQclear(r);
	*rows_r = v;
	*count_r = n;
	return 0;
}

int pg_export_pop3_sum(struct store_export *e, struct store_pop3_sum *r,
		       struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, e->user->id);
	PGresult *res = pg_exec(e->c, "SELECT count(*) FILTER (WHERE"
				" pop3_hidden), coalesce(sum(uid) FILTER (WHERE"
				" pop3_hidden), 0), count(*) FILTER (WHERE"
				" pop3_first_retr <> 0),"
				" coalesce(sum(pop3_first_retr), 0)"
				" FROM msg WHERE user_id = $1", &p, err);
	if (res == NULL)
		return -1;
	r->hidden = (uint64_t)pg_int(res, 0, 0);
	r->hidden_uids = (uint64_t)pg_int(res, 0, 1);
	r->retrieved = (uint64_t)pg_int(res, 0, 2);
	r->first_retr = (uint64_t)pg_int(res, 0, 3);
	PQclear(res);
	return 0;
}
