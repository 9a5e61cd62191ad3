/*
 * The JMAP part of the store front door (store.h "JMAP"): object ids,
 * argument checks, and the email transaction, which collects creates,
 * updates and destroys here and hands them to the backend in one piece
 * (so an Email/set that creates a draft's new version and destroys the
 * old one commits both or neither).
 */
#include "store-private.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

static void err_clear(struct store_error *err)
{
	if (err != NULL) {
		err->kind = STORE_ERR_NONE;
		err->msg[0] = '\0';
	}
}

/* ---- object ids --------------------------------------------------- */

/* "<kind><user hex>-<n hex>": hand-rolled, a FETCH of 100,000 messages
 * formats 100,000 of them. */
void store_objectid_format(char out[32], char kind, int64_t user_id,
			   int64_t n)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[16];
	size_t o = 0;
	out[o++] = kind;
	for (int part = 0; part < 2; part++) {
		uint64_t v = (uint64_t)(part == 0 ? user_id : n);
		size_t k = 0;
		do {
			tmp[k++] = hex[v & 15];
			v >>= 4;
		} while (v != 0);
		while (k > 0)
			out[o++] = tmp[--k];
		if (part == 0)
			out[o++] = '-';
	}
	out[o] = '\0';
}

static bool hex_number(const char *s, size_t len, uint64_t *v_r)
{
	if (len == 0 || len > 16 || (len > 1 && s[0] == '0'))
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
			     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
						    : 16;
		if (d == 16)
			return false;
		v = v << 4 | d;
	}
	*v_r = v;
	return true;
}

bool store_objectid_parse(const char *s, char kind, int64_t user_id,
			  int64_t *n_r)
{
	if (s == NULL || s[0] != kind)
		return false;
	const char *dash = strchr(s + 1, '-');
	uint64_t u, n;
	if (dash == NULL || !hex_number(s + 1, (size_t)(dash - s - 1), &u) ||
	    !hex_number(dash + 1, strlen(dash + 1), &n))
		return false;
	if (u != (uint64_t)user_id || n == 0 || n > INT64_MAX)
		return false;
	*n_r = (int64_t)n;
	return true;
}

/* ---- states and changes ------------------------------------------- */

int store_jmap_states(struct store_user *user,
		      struct store_jmap_cursor states_r[STORE_JMAP_KINDS],
		      struct store_error *err)
{
	err_clear(err);
	memset(states_r, 0, STORE_JMAP_KINDS * sizeof(*states_r));
	if (user->owner != NULL)
		return store_jshare_states(user, states_r, err);
	return user->store->vf->jmap_states(user, states_r, err);
}

int store_jmap_changes(struct store_user *user, enum store_jmap_kind kind,
		       const struct store_jmap_cursor *since, size_t max,
		       struct store_jmap_changes *changes_r,
		       struct store_error *err)
{
	err_clear(err);
	memset(changes_r, 0, sizeof(*changes_r));
	if ((unsigned)kind >= STORE_JMAP_KINDS)
		return store_set_error(err, STORE_ERR_INVALID, "Unknown kind");
	if (user->owner != NULL)
		return store_jshare_changes(user, kind, since, max, changes_r,
					    err);
	/* a viewer's state given to the owner */
	if (since->scope != 0) {
		changes_r->too_old = true;
		return 0;
	}
	return user->store->vf->jmap_changes(user, kind, since, max,
					     changes_r, err);
}

void store_jmap_changes_free(struct store_jmap_changes *changes)
{
	free(changes->created);
	free(changes->updated);
	free(changes->destroyed);
	memset(changes, 0, sizeof(*changes));
}

int store_jmap_prune(struct store_user *user, time_t now,
		     struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	return user->store->vf->jmap_prune(user, now, err);
}

/* ---- mailboxes ---------------------------------------------------- */

int store_jmap_mailboxes(struct store_user *user,
			 struct store_jmap_mailbox **list_r, size_t *count_r,
			 struct store_error *err)
{
	err_clear(err);
	*list_r = NULL;
	*count_r = 0;
	if (user->owner != NULL)
		return store_jshare_mailboxes(user, list_r, count_r, err);
	if (user->store->vf->jmap_mailboxes(user, list_r, count_r, err) < 0)
		return -1;
	for (size_t i = 0; i < *count_r; i++)
		(*list_r)[i].rights = STORE_RIGHTS_ALL;
	return 0;
}

void store_jmap_mailboxes_free(struct store_jmap_mailbox *list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		store_mailbox_info_free(&list[i].info);
	free(list);
}

int store_jmap_mailbox_update(struct store_user *user, uint32_t mailbox_id,
			      const uint32_t *sort_order,
			      const unsigned *special_use,
			      struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (special_use != NULL && (*special_use & (*special_use - 1)) != 0)
		return store_set_error(err, STORE_ERR_INVALID,
				       "One role per mailbox");
	return user->store->vf->jmap_mailbox_update(user, mailbox_id,
						    sort_order, special_use,
						    err);
}

/* ---- emails ------------------------------------------------------- */

int store_email_get(struct store_user *user, const int64_t *ids,
		    size_t count, struct store_email **emails_r,
		    struct store_error *err)
{
	err_clear(err);
	struct store_email *e = xcalloc(count ? count : 1, sizeof(*e));
	if (count > 0 &&
	    (user->owner != NULL
		     ? store_jshare_email_get(user, ids, count, e, err)
		     : user->store->vf->email_get(user, ids, count, e, err)) < 0) {
		store_email_free(e, count);
		*emails_r = NULL;
		return -1;
	}
	*emails_r = e;
	return 0;
}

void store_email_free(struct store_email *emails, size_t count)
{
	if (emails == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		for (size_t k = 0; k < emails[i].keyword_count; k++)
			free(emails[i].keywords[k]);
		free(emails[i].keywords);
		free(emails[i].mailboxes);
		free(emails[i].preview);
	}
	free(emails);
}

int store_email_open(struct store_user *user, int64_t id,
		     struct store_blob *blob_r, struct store_error *err)
{
	err_clear(err);
	memset(blob_r, 0, sizeof(*blob_r));
	if (user->owner != NULL)
		return store_jshare_email_open(user, id, blob_r, err);
	return user->store->vf->email_open(user, id, blob_r, err);
}

int store_email_scan(struct store_user *user, uint32_t mailbox_id,
		     bool newest_first, unsigned fields,
		     store_email_row_fn *cb, void *ctx,
		     struct store_error *err)
{
	err_clear(err);
	if (user->owner != NULL)
		return store_jshare_email_scan(user, mailbox_id, newest_first,
					       fields, cb, ctx, err);
	return user->store->vf->email_scan(user, mailbox_id, newest_first,
					   fields, cb, ctx, err);
}

int store_email_rank(struct store_user *user, uint32_t mailbox_id,
		     int64_t id, uint64_t *rank_r, struct store_error *err)
{
	err_clear(err);
	if (user->owner != NULL)
		return store_jshare_email_rank(user, mailbox_id, id, rank_r,
					       err);
	return user->store->vf->email_rank(user, mailbox_id, id, rank_r, err);
}

int store_email_moved_since(struct store_user *user, uint32_t mailbox_id,
			    const struct store_jmap_cursor *since,
			    int64_t **ids_r, size_t *count_r, bool *too_old_r,
			    struct store_error *err)
{
	err_clear(err);
	*ids_r = NULL;
	*count_r = 0;
	*too_old_r = false;
	if (user->owner != NULL)
		return store_jshare_moved_since(user, mailbox_id, since, ids_r,
						count_r, too_old_r, err);
	if (since->scope != 0) {
		*too_old_r = true;
		return 0;
	}
	return user->store->vf->email_moved_since(user, mailbox_id, since,
						  ids_r, count_r, too_old_r,
						  err);
}

int store_thread_emails(struct store_user *user, int64_t thread,
			int64_t **ids_r, size_t *count_r,
			struct store_error *err)
{
	err_clear(err);
	*ids_r = NULL;
	*count_r = 0;
	if (user->owner != NULL)
		return store_jshare_thread_emails(user, thread, ids_r, count_r,
						  err);
	return user->store->vf->thread_emails(user, thread, ids_r, count_r,
					      err);
}

int store_email_search(struct store_user *user, enum store_text_where where,
		       const char *field, const char *needle, int64_t **ids_r,
		       size_t *count_r, struct store_error *err)
{
	err_clear(err);
	*ids_r = NULL;
	*count_r = 0;
	if (needle == NULL)
		return store_set_error(err, STORE_ERR_INVALID, "No needle");
	if (user->owner != NULL)
		return store_jshare_email_search(user, where, field, needle,
						 ids_r, count_r, err);
	return user->store->vf->email_search(user, where, field, needle,
					     ids_r, count_r, err);
}

/* ---- the email transaction ---------------------------------------- */

/* Keywords from a client are IMAP atoms (store.c keywords_valid). */
static bool keyword_ok(const char *k)
{
	const unsigned char *p = (const unsigned char *)k;
	if (p == NULL || *p == '\0' || *p == '\\' || strlen(k) > 250)
		return false;
	for (; *p != '\0'; p++) {
		if (*p <= 0x20 || *p >= 0x7f || strchr("(){%*\"\\]", *p))
			return false;
	}
	return true;
}

static char **strv_dup(const char *const *v, size_t n, bool *ok)
{
	if (n == 0)
		return NULL;
	char **r = xcalloc(n, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		r[i] = xstrdup(v[i] ? v[i] : "");
		if (!keyword_ok(r[i]))
			*ok = false;
	}
	return r;
}

static void strv_free(const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((char *)v[i]);
	free((void *)v);
}

static uint32_t *u32_dup(const uint32_t *v, size_t n)
{
	if (n == 0)
		return NULL;
	uint32_t *r = xmalloc(n * sizeof(uint32_t));
	memcpy(r, v, n * sizeof(uint32_t));
	return r;
}

int store_email_tx_begin(struct store_user *user, struct store_email_tx **tx_r)
{
	struct store_email_tx *tx = xcalloc(1, sizeof(*tx));
	store_user_ref(user);
	tx->user = user;
	*tx_r = tx;
	return 0;
}

static struct store_email_op *op_add(struct store_email_tx *tx,
				     enum store_email_op_kind kind)
{
	if (tx->count == tx->cap) {
		tx->cap = tx->cap ? tx->cap * 2 : 8;
		tx->ops = xrealloc(tx->ops, tx->cap * sizeof(*tx->ops));
	}
	struct store_email_op *op = &tx->ops[tx->count++];
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	return op;
}

static void op_fail(struct store_email_op *op, enum store_error_kind kind,
		    const char *msg)
{
	store_set_error(&op->result.err, kind, "%s", msg);
}

void store_email_tx_create(struct store_email_tx *tx,
			   struct store_body **body,
			   const uint32_t *mailboxes, size_t mailbox_count,
			   const struct store_append_params *params)
{
	struct store_email_op *op = op_add(tx, STORE_EMAIL_OP_CREATE);
	op->body = *body;
	*body = NULL;
	/* a body made before its account was known (store-route.c) */
	struct store_body *inner;
	if (op->body != NULL &&
	    store_body_route(op->body, tx->user, &inner,
			     &op->result.err) == 0 && inner != op->body) {
		op->routed = op->body;
		op->body = inner;
	}
	op->mailboxes = u32_dup(mailboxes, mailbox_count);
	op->mailbox_count = mailbox_count;
	bool ok = true;
	if (params != NULL) {
		op->params = *params;
		op->params.keywords = (const char *const *)strv_dup(
			params->keywords, params->keyword_count, &ok);
	}
	if (mailbox_count == 0)
		op_fail(op, STORE_ERR_INVALID, "An Email needs a mailbox");
	else if (!ok)
		op_fail(op, STORE_ERR_INVALID, "Invalid keyword");
}

void store_email_tx_update(struct store_email_tx *tx, int64_t id,
			   const struct store_email_update *update)
{
	struct store_email_op *op = op_add(tx, STORE_EMAIL_OP_UPDATE);
	op->id = id;
	struct store_email_update *u = &op->update;
	*u = *update;
	bool ok = true;
	u->keywords = (const char *const *)strv_dup(update->keywords,
						    update->keyword_count, &ok);
	u->keywords_remove = (const char *const *)strv_dup(
		update->keywords_remove, update->keyword_remove_count, &ok);
	u->mailboxes = u32_dup(update->mailboxes, update->mailbox_count);
	u->mailboxes_remove = u32_dup(update->mailboxes_remove,
				      update->mailbox_remove_count);
	if (!ok)
		op_fail(op, STORE_ERR_INVALID, "Invalid keyword");
	else if (u->replace_mailboxes && u->mailbox_count == 0)
		op_fail(op, STORE_ERR_INVALID, "An Email needs a mailbox");
}

void store_email_tx_destroy(struct store_email_tx *tx, int64_t id)
{
	struct store_email_op *op = op_add(tx, STORE_EMAIL_OP_DESTROY);
	op->id = id;
}

static void tx_free(struct store_email_tx *tx)
{
	for (size_t i = 0; i < tx->count; i++) {
		struct store_email_op *op = &tx->ops[i];
		if (op->routed != NULL)
			op->body = NULL;   /* the routed body's own */
		store_body_unref(&op->routed);
		store_body_unref(&op->body);
		free(op->mailboxes);
		strv_free(op->params.keywords, op->params.keyword_count);
		strv_free(op->update.keywords, op->update.keyword_count);
		strv_free(op->update.keywords_remove,
			  op->update.keyword_remove_count);
		free((void *)op->update.mailboxes);
		free((void *)op->update.mailboxes_remove);
	}
	free(tx->ops);
	store_user_unref(&tx->user);
	free(tx);
}

int store_email_tx_commit(struct store_email_tx **txp,
			  struct store_email_result **results_r,
			  size_t *count_r, struct store_error *err)
{
	struct store_email_tx *tx = *txp;
	*txp = NULL;
	err_clear(err);
	int ret = 0;
	if (tx->count > 0)
		ret = tx->user->owner != NULL
			      ? store_jshare_tx_commit(tx->user, tx, err)
			      : tx->user->store->vf->email_tx_commit(tx->user,
								     tx, err);
	struct store_email_result *r = xcalloc(tx->count ? tx->count : 1,
					       sizeof(*r));
	for (size_t i = 0; i < tx->count; i++) {
		r[i] = tx->ops[i].result;
		if (ret < 0 && r[i].err.kind == STORE_ERR_NONE && err != NULL)
			r[i].err = *err;
	}
	*results_r = r;
	*count_r = tx->count;
	tx_free(tx);
	return ret;
}

void store_email_tx_abort(struct store_email_tx **txp)
{
	if (*txp != NULL)
		tx_free(*txp);
	*txp = NULL;
}

/* ---- uploads ------------------------------------------------------ */

int store_upload_begin(struct store_user *user, uint64_t max_size,
		       struct store_upload **up_r, struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	return user->store->vf->upload_begin(user, max_size, up_r, err);
}

int store_upload_write(struct store_upload *up, const void *data,
		       size_t len, struct store_error *err)
{
	err_clear(err);
	return STORE_OBJ_VF(up)->upload_write(up, data, len, err);
}

int store_upload_finish(struct store_upload **up, const char *type,
			time_t expires, int64_t *id_r, uint64_t *size_r,
			struct store_error *err)
{
	err_clear(err);
	return STORE_OBJ_VF(*up)->upload_finish(up, type, expires, id_r,
						size_r, err);
}

void store_upload_abort(struct store_upload **up)
{
	if (*up != NULL)
		STORE_OBJ_VF(*up)->upload_abort(up);
}

int store_upload_open(struct store_user *user, int64_t id,
		      struct store_blob *blob_r, char **type_r,
		      struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	memset(blob_r, 0, sizeof(*blob_r));
	if (type_r != NULL)
		*type_r = NULL;
	return user->store->vf->upload_open(user, id, blob_r, type_r, err);
}

int store_upload_touch(struct store_user *user, int64_t id, time_t expires,
		       struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	return user->store->vf->upload_touch(user, id, expires, err);
}

/* ---- stored objects ----------------------------------------------- */

static bool jobject_kind_ok(enum store_jmap_kind kind,
			    struct store_error *err)
{
	if (kind < STORE_JMAP_IDENTITY || kind >= STORE_JMAP_KINDS) {
		store_set_error(err, STORE_ERR_INVALID, "Not a stored kind");
		return false;
	}
	return true;
}

int store_jobject_list(struct store_user *user, enum store_jmap_kind kind,
		       struct store_jobject **list_r, size_t *count_r,
		       struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	*list_r = NULL;
	*count_r = 0;
	if (!jobject_kind_ok(kind, err))
		return -1;
	return user->store->vf->jobject_list(user, kind, list_r, count_r, err);
}

void store_jobject_list_free(struct store_jobject *list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(list[i].data);
	free(list);
}

int store_jobject_put(struct store_user *user, enum store_jmap_kind kind,
		      int64_t id, const char *data, int64_t *id_r,
		      struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (!jobject_kind_ok(kind, err))
		return -1;
	if (data == NULL || id < 0)
		return store_set_error(err, STORE_ERR_INVALID, "No data");
	int ret = user->store->vf->jobject_put(user, kind, id, data, id_r, err);
	if (ret == 0 && kind == STORE_JMAP_VACATION)
		store_sieve_changed(user);   /* Sieve runs it at delivery */
	return ret;
}

int store_jobject_delete(struct store_user *user, enum store_jmap_kind kind,
			 int64_t id, struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (!jobject_kind_ok(kind, err))
		return -1;
	int ret = user->store->vf->jobject_delete(user, kind, id, err);
	if (ret == 0 && kind == STORE_JMAP_VACATION)
		store_sieve_changed(user);
	return ret;
}
