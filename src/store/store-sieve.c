/*
 * store.h "Sieve": argument checks, then the backend. Script names are
 * UTF-8 without control characters (RFC 5804 1.6, RFC 5198), at most
 * 512 bytes: data, never a path.
 */
#include "store-private.h"

#include <stdlib.h>
#include <string.h>

static bool name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > 512 || !mail_utf8_valid(name, n))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f)
			return false;
		/* C1 controls U+0080..U+009F, and U+2028/2029 */
		if (c == 0xC2 && i + 1 < n &&
		    (unsigned char)name[i + 1] >= 0x80 &&
		    (unsigned char)name[i + 1] <= 0x9F)
			return false;
		if (c == 0xE2 && i + 2 < n && (unsigned char)name[i + 1] == 0x80 &&
		    ((unsigned char)name[i + 2] == 0xA8 ||
		     (unsigned char)name[i + 2] == 0xA9))
			return false;
	}
	return true;
}

static int bad_name(struct store_error *err)
{
	return store_set_error(err, STORE_ERR_INVALID, "Invalid script name");
}

static void clear(struct store_error *err)
{
	if (err != NULL) {
		err->kind = STORE_ERR_NONE;
		err->msg[0] = '\0';
	}
}

int store_sieve_list(struct store_user *user,
		     struct store_sieve_script **list_r, size_t *count_r,
		     struct store_error *err)
{
	clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	return user->store->vf->sieve_list(user, list_r, count_r, err);
}

void store_sieve_list_free(struct store_sieve_script *list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(list[i].name);
	free(list);
}

int store_sieve_get(struct store_user *user, const char *name,
		    char **source_r, size_t *len_r, void **image_r,
		    size_t *image_len_r, bool *active_r,
		    struct store_error *err)
{
	clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (!name_ok(name))
		return store_set_error(err, STORE_ERR_NOTFOUND, "No such script");
	return user->store->vf->sieve_get(user, name, false, NULL, source_r,
					  len_r, image_r, image_len_r, active_r,
					  err);
}

int store_sieve_put(struct store_user *user, const char *name,
		    const char *source, size_t len, const void *image,
		    size_t image_len, struct store_error *err)
{
	clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (!name_ok(name))
		return bad_name(err);
	return user->store->vf->sieve_put(user, name, source, len, image,
					  image_len, err);
}

int store_sieve_activate(struct store_user *user, const char *name,
			 struct store_error *err)
{
	clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (name != NULL && name[0] != '\0' && !name_ok(name))
		return store_set_error(err, STORE_ERR_NOTFOUND, "No such script");
	return user->store->vf->sieve_activate(user, name && name[0] ? name
							  : NULL, err);
}

int store_sieve_delete(struct store_user *user, const char *name,
		       struct store_error *err)
{
	clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (!name_ok(name))
		return store_set_error(err, STORE_ERR_NOTFOUND, "No such script");
	return user->store->vf->sieve_delete(user, name, err);
}

int store_sieve_rename(struct store_user *user, const char *from,
		       const char *to, struct store_error *err)
{
	clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (!name_ok(from))
		return store_set_error(err, STORE_ERR_NOTFOUND, "No such script");
	if (!name_ok(to))
		return bad_name(err);
	return user->store->vf->sieve_rename(user, from, to, err);
}

int store_sieve_ids(struct store_user *user, struct store_error *err)
{
	clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	/* a backend without it keeps no scripts (pg: sieve_put refuses) */
	if (user->store->vf->sieve_ids == NULL)
		return 0;
	return user->store->vf->sieve_ids(user, err);
}

int store_sieve_active(struct store_user *user, char **name_r,
		       char **source_r, size_t *len_r, void **image_r,
		       size_t *image_len_r, struct store_error *err)
{
	clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	int ret = user->store->vf->sieve_get(user, NULL, true, name_r, source_r,
					     len_r, image_r, image_len_r, NULL,
					     err);
	if (ret < 0 && err && err->kind == STORE_ERR_NOTFOUND) {
		clear(err);
		return 0;
	}
	return ret < 0 ? -1 : 1;
}

uint64_t store_sieve_version(struct store_user *user)
{
	if (user->store->vf->sieve_version == NULL ||
	    store_acl_owner_only(user, NULL) < 0)
		return 0;
	return user->store->vf->sieve_version(user);
}

void store_sieve_changed(struct store_user *user)
{
	if (user->store->vf->sieve_changed != NULL)
		user->store->vf->sieve_changed(user);
}

int store_sieve_record_seen(struct store_user *user, const char *key,
			    time_t now, bool *seen_r, struct store_error *err)
{
	clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	return user->store->vf->sieve_record_seen(user, key, now, seen_r, err);
}

int store_sieve_deliver(struct store_user *user,
			struct store_sieve_copy *copies, size_t count,
			const struct store_sieve_record *records,
			size_t record_count, struct store_error *err)
{
	clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	for (size_t i = 0; i < count; i++)
		if (copies[i].body == NULL || copies[i].mailbox == NULL)
			return store_set_error(err, STORE_ERR_INVALID,
					       "A copy without body or folder");
	/* bodies made before the account was known (store-route.c) */
	struct store_body **routed = xcalloc(count ? count : 1,
					     sizeof(*routed));
	int ret = 0;
	for (size_t i = 0; i < count && ret == 0; i++) {
		routed[i] = copies[i].body;
		ret = store_body_route(routed[i], user, &copies[i].body, err);
	}
	if (ret == 0)
		ret = user->store->vf->sieve_deliver(user, copies, count,
						     records, record_count,
						     err);
	for (size_t i = 0; i < count; i++)
		if (routed[i] != NULL)
			copies[i].body = routed[i];
	free(routed);
	return ret;
}

const char *store_body_text(struct store_body *body, size_t *len_r)
{
	*len_r = 0;
	if (body == NULL || STORE_OBJ_VF(body)->body_text == NULL)
		return NULL;
	return STORE_OBJ_VF(body)->body_text(body, len_r);
}
