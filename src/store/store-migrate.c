/*
 * Moving mail in and out (store.h): argument checks for import and the
 * export stream, dispatched to the backend (sqlite/sq-migrate.c). The
 * formats and clients that use them live in src/migrate.
 */
#include "store-private.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void err_clear(struct store_error *err)
{
	if (err != NULL) {
		err->kind = STORE_ERR_NONE;
		err->msg[0] = '\0';
	}
}

/* A MAILBOXID or a UIDL as it may be kept: RFC 8474 characters for the
 * first, printable ASCII 0x21-0x7E up to 70 for the second (RFC 1939 7). */
static bool objectid_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 31)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return true;
}

static bool uidl_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 70)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

int store_import_mailbox(struct store_user *user,
			 const struct store_import_mailbox *spec,
			 struct store_mailbox_info *info_r,
			 struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (spec->objectid != NULL && !objectid_ok(spec->objectid))
		return store_set_error(err, STORE_ERR_INVALID,
				       "Invalid MAILBOXID: %.40s",
				       spec->objectid);
	char *n = store_name_normalize(spec->name, err);
	if (n == NULL)
		return -1;
	struct store_import_mailbox s = *spec;
	s.name = n;
	int ret = user->store->vf->import_mailbox(user, &s, info_r, err);
	free(n);
	return ret;
}

static int import_params_check(const struct store_import_params *p,
				bool have_body, struct store_error *err)
{
	if (p->pop3_uidl != NULL && !uidl_ok(p->pop3_uidl))
		return store_set_error(err, STORE_ERR_INVALID,
				       "Invalid POP3 UIDL");
	if ((p->mark_source == NULL) != (p->mark_id == NULL))
		return store_set_error(err, STORE_ERR_INVALID,
				       "A resume mark needs a source and an id");
	if (!have_body && p->email <= 0)
		return store_set_error(err, STORE_ERR_INVALID,
				       "A message without a body must name an "
				       "Email");
	if (p->email < 0 || p->thread < 0)
		return store_set_error(err, STORE_ERR_INVALID,
				       "Invalid EMAILID or THREADID");
	for (size_t i = 0; i < p->append.keyword_count; i++) {
		const char *k = p->append.keywords[i];
		if (k == NULL || k[0] == '\0' || k[0] == '\\' ||
		    strpbrk(k, " (){%*\"\\]") != NULL)
			return store_set_error(err, STORE_ERR_INVALID,
					       "Invalid keyword");
	}
	return 0;
}

void store_import_append_batch(struct store_user *user,
			       struct store_import_item *items, size_t count)
{
	struct store_error owner;
	bool owner_ok = store_acl_owner_only(user, &owner) == 0;
	const char **given = xcalloc(count ? count : 1, sizeof(*given));
	for (size_t i = 0; i < count; i++) {
		struct store_import_item *it = &items[i];
		err_clear(&it->err);
		it->uid = 0;
		it->modseq = 0;
		it->ret = 0;
		given[i] = it->mailbox;
		char *n = NULL;
		if (!owner_ok) {
			it->err = owner;
			it->ret = -1;
		} else if (import_params_check(&it->p, it->body != NULL,
					       &it->err) < 0 ||
			   (n = store_name_normalize(it->mailbox,
						     &it->err)) == NULL) {
			it->ret = -1;
		}
		it->mailbox = n;
	}
	user->store->vf->import_append_batch(user, items, count);
	for (size_t i = 0; i < count; i++) {
		free((char *)items[i].mailbox);
		items[i].mailbox = given[i];
	}
	free(given);
}

int store_import_append(struct store_user *user, const char *mailbox,
			struct store_body *body,
			const struct store_import_params *p, uint32_t *uid_r,
			struct store_error *err)
{
	struct store_import_item it = {
		.mailbox = mailbox,
		.body = body,
		.p = *p,
	};
	store_import_append_batch(user, &it, 1);
	if (it.ret < 0) {
		if (err != NULL)
			*err = it.err;
		return -1;
	}
	if (uid_r != NULL)
		*uid_r = it.uid;
	err_clear(err);
	return 0;
}

int store_import_mark_add(struct store_user *user, const char *source,
			  const char *id, struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (source == NULL || id == NULL)
		return store_set_error(err, STORE_ERR_INVALID, "No mark");
	if (user->store->vf->import_mark_add == NULL)
		return store_set_error(err, STORE_ERR_INVALID, "This mail"
				       " backend keeps no import marks");
	return user->store->vf->import_mark_add(user, source, id, err);
}

int store_import_marks(struct store_user *user, const char *source,
		       char ***ids_r, size_t *count_r,
		       struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	return user->store->vf->import_marks(user, source, ids_r, count_r,
					     err);
}

void store_index_elsewhere(struct store *store)
{
	store->index_elsewhere = true;
}

int store_modseq_raise(struct store_user *user, uint64_t modseq,
		       struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (modseq > (uint64_t)INT64_MAX)
		return store_set_error(err, STORE_ERR_INVALID,
				       "Change counter out of range");
	return user->store->vf->modseq_raise(user, modseq, err);
}

int store_import_exact(struct store_user *user,
		       const struct store_import_exact *x,
		       struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (x->highestmodseq > (uint64_t)INT64_MAX ||
	    x->expunge_horizon > (uint64_t)INT64_MAX ||
	    x->jmap_horizon > (uint64_t)INT64_MAX)
		return store_set_error(err, STORE_ERR_INVALID,
				       "Modseq out of range");
	for (size_t i = 0; i < x->msg_count; i++)
		if (x->msgs[i].modseq == 0 ||
		    x->msgs[i].modseq > (uint64_t)INT64_MAX)
			return store_set_error(err, STORE_ERR_INVALID,
					       "Modseq out of range (UID %u)",
					       x->msgs[i].uid);
	for (size_t i = 0; i < x->expunged_count; i++) {
		const struct store_expunged_range *r = &x->expunged[i];
		if (r->first == 0 || r->first > r->last ||
		    r->modseq > (uint64_t)INT64_MAX)
			return store_set_error(err, STORE_ERR_INVALID,
					       "Invalid expunge log entry");
	}
	if (user->store->vf->import_exact == NULL)
		return store_set_error(err, STORE_ERR_INVALID, "This mail"
				       " backend cannot restore modseqs");
	char *n = store_name_normalize(x->name, err);
	if (n == NULL)
		return -1;
	struct store_import_exact c = *x;
	c.name = n;
	int ret = user->store->vf->import_exact(user, &c, err);
	free(n);
	return ret;
}

int store_export_expunged(struct store_export *exp, uint32_t mailbox_id,
			  struct store_expunged_range **ranges_r,
			  size_t *count_r, uint64_t *horizon_r,
			  struct store_error *err)
{
	err_clear(err);
	*ranges_r = NULL;
	*count_r = 0;
	*horizon_r = 0;
	if (STORE_OBJ_VF(exp)->export_expunged == NULL)
		return 0;
	return STORE_OBJ_VF(exp)->export_expunged(exp, mailbox_id, ranges_r,
						  count_r, horizon_r, err);
}

int store_export_begin(struct store_user *user, struct store_export **exp_r,
		       struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	return user->store->vf->export_begin(user, exp_r, err);
}

const struct store_export_info *
store_export_info(const struct store_export *exp)
{
	return STORE_OBJ_VF(exp)->export_info(exp);
}

int store_export_messages(struct store_export *exp, uint32_t mailbox_id,
			  struct store_error *err)
{
	err_clear(err);
	return STORE_OBJ_VF(exp)->export_messages(exp, mailbox_id, err);
}

int store_export_next(struct store_export *exp,
		      const struct store_export_msg **msg_r,
		      struct store_error *err)
{
	err_clear(err);
	return STORE_OBJ_VF(exp)->export_next(exp, msg_r, err);
}

int store_export_body(struct store_export *exp, int64_t email,
		      struct store_blob *blob_r, struct store_error *err)
{
	err_clear(err);
	return STORE_OBJ_VF(exp)->export_body(exp, email, blob_r, err);
}

void store_export_end(struct store_export **exp)
{
	if (*exp == NULL)
		return;
	STORE_OBJ_VF(*exp)->export_end(exp);
}

int store_export_seen(struct store_export *exp, uint32_t mailbox_id,
		      struct store_export_seen **rows_r, size_t *count_r,
		      struct store_error *err)
{
	err_clear(err);
	*rows_r = NULL;
	*count_r = 0;
	if (STORE_OBJ_VF(exp)->export_seen == NULL)
		return 0;
	return STORE_OBJ_VF(exp)->export_seen(exp, mailbox_id, rows_r,
					      count_r, err);
}

int store_import_seen(struct store_user *owner, const char *mailbox,
		      int64_t viewer, const struct store_uid_range *ranges,
		      size_t range_count, struct store_error *err)
{
	return store_import_seen_set(owner, mailbox, viewer, ranges,
				     range_count, true, err);
}

int store_import_seen_set(struct store_user *owner, const char *mailbox,
			  int64_t viewer, const struct store_uid_range *ranges,
			  size_t range_count, bool seen,
			  struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(owner, err) < 0)
		return -1;
	if (viewer <= 0 || viewer == store_user_id(owner) || range_count == 0)
		return store_set_error(err, STORE_ERR_INVALID,
				       "No reader's \\Seen to set");
	if (owner->store->vf->seen_update == NULL)
		return store_set_error(err, STORE_ERR_PERM, "This mail backend"
				       " keeps no per-user \\Seen");
	char *n = store_name_normalize(mailbox, err);
	if (n == NULL)
		return -1;
	struct store_seen_change ch = {.seen = seen};
	int r = store_seen_update(owner, viewer, n, ranges, range_count, &ch,
				  err);
	free(ch.changed);
	free(ch.modified);
	free(n);
	return r;
}

/* ---- undelete ------------------------------------------------------ */

/* The filter with its folder name as the store keeps names (*copy_r to
 * free); NULL with err set when the name is not one. */
static const struct store_deleted_filter *
deleted_filter(const struct store_deleted_filter *f,
	       struct store_deleted_filter *copy, char **name_r,
	       struct store_error *err)
{
	static const struct store_deleted_filter all;
	*name_r = NULL;
	if (f == NULL)
		return &all;
	*copy = *f;
	if (f->mailbox != NULL) {
		*name_r = store_name_normalize(f->mailbox, err);
		if (*name_r == NULL)
			return NULL;
		copy->mailbox = *name_r;
	}
	return copy;
}

int store_deleted_list(struct store_user *user,
		       const struct store_deleted_filter *filter,
		       store_deleted_fn *fn, void *ctx,
		       struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	struct store_deleted_filter copy;
	char *name;
	const struct store_deleted_filter *f =
		deleted_filter(filter, &copy, &name, err);
	if (f == NULL)
		return -1;
	/* a backend without undelete keeps nothing: nothing to list */
	int ret = user->store->vf->deleted_list == NULL ? 0
		: user->store->vf->deleted_list(user, f, fn, ctx, err);
	free(name);
	return ret;
}

int store_deleted_usage(struct store_user *user, struct store_usage *usage_r,
			struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (user->store->vf->deleted_usage == NULL) {
		usage_r->bytes = usage_r->messages = 0;
		return 0;
	}
	return user->store->vf->deleted_usage(user, usage_r, err);
}

int store_undelete(struct store_user *user,
		   const struct store_deleted_filter *filter,
		   struct store_undelete_report *report_r,
		   struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	struct store_deleted_filter copy;
	char *name;
	const struct store_deleted_filter *f =
		deleted_filter(filter, &copy, &name, err);
	if (f == NULL)
		return -1;
	struct store_undelete_report r = {0};
	int ret = user->store->vf->undelete == NULL ? 0
		: user->store->vf->undelete(user, f, &r, err);
	if (ret == 0 && report_r != NULL)
		*report_r = r;
	free(name);
	return ret;
}

int store_changed_elsewhere(struct store *store, int64_t user_id,
			    unsigned *told_r, struct store_error *err)
{
	err_clear(err);
	/* what it wrote may wait for this process's indexer
	 * (store_index_elsewhere) */
	if (store->vf->index_kick != NULL)
		store->vf->index_kick(store, user_id);
	*told_r = store_subscriber_count(store, user_id);
	if (*told_r == 0)
		return 0;
	struct store_user *user;
	if (store_user_open_existing(store, user_id, &user, err) < 0)
		return err->kind == STORE_ERR_NOTFOUND ? 0 : -1;
	struct store_mailbox_info *list = NULL;
	size_t count = 0;
	int ret = store_mailbox_list(user, &list, &count, err);
	store_user_unref(&user);
	if (ret < 0)
		return -1;
	struct store_change ch = {.user_id = user_id,
				  .kind = STORE_CHANGE_MAILBOXES};
	store_publish(store, &ch);
	/* a session syncs its view against the index on either kind */
	for (size_t i = 0; i < count; i++) {
		ch.mailbox_id = list[i].id;
		ch.kind = STORE_CHANGE_APPEND;
		store_publish(store, &ch);
	}
	store_mailbox_list_free(list, count);
	return 0;
}

/* ---- the rest of an account: annotations, keys, records, objects ---- */

void store_account_extra_free(struct store_account_extra *x)
{
	for (size_t i = 0; i < x->annotation_count; i++) {
		free(x->annotations[i].mailbox);
		free(x->annotations[i].name);
		free(x->annotations[i].value);
	}
	for (size_t i = 0; i < x->key_count; i++)
		free(x->keys[i].mailbox);
	for (size_t i = 0; i < x->record_count; i++)
		free(x->records[i].key);
	for (size_t i = 0; i < x->object_count; i++)
		free(x->objects[i].data);
	free(x->annotations);
	free(x->keys);
	free(x->records);
	free(x->objects);
	memset(x, 0, sizeof(*x));
}

int store_export_extra(struct store_export *exp,
		       struct store_account_extra *x_r,
		       struct store_error *err)
{
	err_clear(err);
	memset(x_r, 0, sizeof(*x_r));
	if (STORE_OBJ_VF(exp)->export_extra == NULL)
		return 0;
	int ret = STORE_OBJ_VF(exp)->export_extra(exp, x_r, err);
	if (ret < 0)
		store_account_extra_free(x_r);
	return ret;
}

static bool extra_ok(const struct store_account_extra *x,
		     struct store_error *err)
{
	for (size_t i = 0; i < x->annotation_count; i++) {
		const struct store_extra_annotation *a = &x->annotations[i];
		if (a->name == NULL || a->value == NULL || a->viewer < 0 ||
		    (strncmp(a->name, "/private/", 9) != 0 &&
		     strncmp(a->name, "/shared/", 8) != 0) ||
		    a->value_len > STORE_METADATA_MAX_VALUE) {
			store_set_error(err, STORE_ERR_INVALID,
					"Invalid annotation %.60s",
					a->name ? a->name : "");
			return false;
		}
	}
	for (size_t i = 0; i < x->key_count; i++)
		if (x->keys[i].mailbox == NULL || x->keys[i].viewer < 0) {
			store_set_error(err, STORE_ERR_INVALID,
					"Invalid URLAUTH key");
			return false;
		}
	for (size_t i = 0; i < x->record_count; i++)
		if (x->records[i].key == NULL || x->records[i].key[0] == '\0') {
			store_set_error(err, STORE_ERR_INVALID,
					"Invalid Sieve record");
			return false;
		}
	for (size_t i = 0; i < x->object_count; i++) {
		const struct store_extra_object *o = &x->objects[i];
		if ((o->kind != STORE_JMAP_IDENTITY &&
		     o->kind != STORE_JMAP_VACATION &&
		     o->kind != STORE_JMAP_SETTINGS &&
		     o->kind != STORE_JMAP_SUBMISSION &&
		     o->kind != STORE_JMAP_PUSH) ||
		    o->id <= 0 || o->data == NULL) {
			store_set_error(err, STORE_ERR_INVALID,
					"Invalid JMAP object (kind %d, id %"
					PRId64 ")", o->kind, o->id);
			return false;
		}
	}
	return true;
}

/* c: x with its mailbox names as the store keeps them (annotations and
 * keys in new arrays, the rest shared with x); extra_normalized_free()
 * after, whatever this returned. */
static int extra_normalize(const struct store_account_extra *x,
			   struct store_account_extra *c,
			   struct store_error *err)
{
	*c = *x;
	c->annotations = xcalloc(x->annotation_count + 1,
				 sizeof(*c->annotations));
	c->keys = xcalloc(x->key_count + 1, sizeof(*c->keys));
	for (size_t i = 0; i < x->annotation_count; i++) {
		c->annotations[i] = x->annotations[i];
		if (x->annotations[i].mailbox != NULL &&
		    (c->annotations[i].mailbox = store_name_normalize(
			     x->annotations[i].mailbox, err)) == NULL)
			return -1;
	}
	for (size_t i = 0; i < x->key_count; i++) {
		c->keys[i] = x->keys[i];
		if ((c->keys[i].mailbox = store_name_normalize(
			     x->keys[i].mailbox, err)) == NULL)
			return -1;
	}
	return 0;
}

/* Entries extra_normalize() did not reach are zero (NULL names). */
static void extra_normalized_free(const struct store_account_extra *x,
				  struct store_account_extra *c)
{
	for (size_t i = 0; i < x->annotation_count; i++)
		if (x->annotations[i].mailbox != NULL)
			free(c->annotations[i].mailbox);
	for (size_t i = 0; i < x->key_count; i++)
		free(c->keys[i].mailbox);
	free(c->annotations);
	free(c->keys);
}

int store_import_extra(struct store_user *user,
		       const struct store_account_extra *x, size_t *skipped_r,
		       struct store_error *err)
{
	err_clear(err);
	size_t skipped = 0;
	if (skipped_r == NULL)
		skipped_r = &skipped;
	*skipped_r = 0;
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (!extra_ok(x, err))
		return -1;
	if (x->annotation_count + x->key_count + x->record_count +
	    x->object_count == 0)
		return 0;
	if (user->store->vf->import_extra == NULL)
		return store_set_error(err, STORE_ERR_INVALID, "This mail"
				       " backend keeps no annotations, Sieve"
				       " records or JMAP objects");
	struct store_account_extra c;
	int ret = extra_normalize(x, &c, err);
	if (ret == 0)
		ret = user->store->vf->import_extra(user, &c, skipped_r, err);
	bool vacation = false;
	for (size_t i = 0; i < x->object_count; i++)
		vacation |= x->objects[i].kind == STORE_JMAP_VACATION;
	if (ret == 0 && (vacation || x->record_count > 0))
		store_sieve_changed(user);   /* delivery reads them again */
	extra_normalized_free(x, &c);
	return ret;
}

/* ---- undelete's kept messages ---------------------------------------- */

void store_export_kept_free(struct store_export_kept *rows, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(rows[i].mailbox);
		free(rows[i].keywords);
	}
	free(rows);
}

int store_export_kept(struct store_export *exp,
		      struct store_export_kept **rows_r, size_t *count_r,
		      struct store_error *err)
{
	err_clear(err);
	*rows_r = NULL;
	*count_r = 0;
	if (STORE_OBJ_VF(exp)->export_kept == NULL)
		return 0;
	return STORE_OBJ_VF(exp)->export_kept(exp, rows_r, count_r, err);
}

int store_import_kept(struct store_user *user,
		      const struct store_import_kept *k,
		      struct store_body *body, struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (k->mailbox == NULL || k->mailbox[0] == '\0' || k->uid == 0 ||
	    k->deleted_at <= 0 || k->email < 0 || k->thread < 0)
		return store_set_error(err, STORE_ERR_INVALID,
				       "Invalid kept message");
	if (k->email == 0 && body == NULL)
		return store_set_error(err, STORE_ERR_INVALID,
				       "A kept message needs its bytes");
	if (user->store->vf->import_kept == NULL)
		return store_set_error(err, STORE_ERR_INVALID, "This mail"
				       " backend keeps no removed messages");
	char *name = store_name_normalize(k->mailbox, err);
	if (name == NULL)
		return -1;
	struct store_import_kept c = *k;
	c.mailbox = name;
	c.flags &= 0x1f;
	if (c.keywords != NULL && c.keywords[0] == '\0')
		c.keywords = NULL;
	int ret = user->store->vf->import_kept(user, &c, body, err);
	free(name);
	return ret;
}

int store_deleted_forget(struct store_user *user, const int64_t *ids,
			 size_t count, struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (count == 0)
		return 0;
	if (user->store->vf->deleted_forget == NULL)
		return store_set_error(err, STORE_ERR_INVALID, "This mail"
				       " backend keeps no removed messages");
	return user->store->vf->deleted_forget(user, ids, count, err);
}

int store_import_extra_drop(struct store_user *user,
			    const struct store_account_extra *x,
			    struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (x->annotation_count + x->key_count + x->record_count +
	    x->object_count == 0)
		return 0;
	if (user->store->vf->drop_extra == NULL)
		return store_set_error(err, STORE_ERR_INVALID, "This mail"
				       " backend keeps no annotations, Sieve"
				       " records or JMAP objects");
	struct store_account_extra c;
	int ret = extra_normalize(x, &c, err);
	if (ret == 0)
		ret = user->store->vf->drop_extra(user, &c, err);
	if (ret == 0 && x->record_count > 0)
		store_sieve_changed(user);   /* delivery reads them again */
	extra_normalized_free(x, &c);
	return ret;
}

int store_export_pop3_sum(struct store_export *exp, struct store_pop3_sum *r,
			  struct store_error *err)
{
	err_clear(err);
	memset(r, 0, sizeof(*r));
	if (STORE_OBJ_VF(exp)->export_pop3_sum == NULL)
		return 0;
	return STORE_OBJ_VF(exp)->export_pop3_sum(exp, r, err);
}
