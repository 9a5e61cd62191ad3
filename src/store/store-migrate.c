/*
 * Moving mail in and out (store.h): argument checks for import and the
 * export stream, dispatched to the backend (sqlite/sq-migrate.c). The
 * formats and clients that use them live in src/migrate.
 */
#include "store-private.h"

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

int store_import_append(struct store_user *user, const char *mailbox,
			struct store_body *body,
			const struct store_import_params *p, uint32_t *uid_r,
			struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (p->pop3_uidl != NULL && !uidl_ok(p->pop3_uidl))
		return store_set_error(err, STORE_ERR_INVALID,
				       "Invalid POP3 UIDL");
	if ((p->mark_source == NULL) != (p->mark_id == NULL))
		return store_set_error(err, STORE_ERR_INVALID,
				       "A resume mark needs a source and an id");
	if (body == NULL && p->email <= 0)
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
	char *n = store_name_normalize(mailbox, err);
	if (n == NULL)
		return -1;
	int ret = user->store->vf->import_append(user, n, body, p, uid_r, err);
	free(n);
	return ret;
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
