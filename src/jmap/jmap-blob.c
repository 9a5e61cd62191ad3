/*
 * Blobs (RFC 8620 6): ids and reading, and Blob/copy. A blob id names
 * bytes of the caller's own account only:
 *
 *   B<user>-<n>            the Email n as stored (prefix and body: what
 *                          IMAP's BODY[] gives)
 *   B<user>-<n>-<1>_<2>    a part of it, by IMAP path, transfer encoding
 *                          undone (RFC 8621 4.1.4 blobId)
 *   U<user>-<n>            an upload (jmap-http.c), kept an hour or more
 *                          after its last use
 *   U<user>-<n>-<path>     a part of an uploaded message (Email/parse)
 *   Z<user>-<hash>         a Sieve script's content (jmap-sieve.c)
 *
 * Any other account's id is notFound: the user number must be the
 * caller's, so the store is never even asked.
 */
#include "jmap-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "mail.h"

void jmap_blob_id_email(struct jmap_req *req, int64_t email, char out[32])
{
	store_objectid_format(out, 'B', req->account, email);
}

/* Splits "<K><user>-<n>[-<path>]" into the object id and the path. */
static bool blob_id_split(const char *id, char kind, int64_t user_id,
			  int64_t *n_r, uint32_t *path, unsigned *path_len)
{
	*path_len = 0;
	if (id == NULL || id[0] != kind || strlen(id) > 255)
		return false;
	const char *d1 = strchr(id, '-');
	const char *d2 = d1 ? strchr(d1 + 1, '-') : NULL;
	char base[64];
	size_t blen = d2 ? (size_t)(d2 - id) : strlen(id);
	if (blen >= sizeof(base))
		return false;
	memcpy(base, id, blen);
	base[blen] = '\0';
	if (!store_objectid_parse(base, kind, user_id, n_r))
		return false;
	if (d2 == NULL)
		return true;
	const char *p = d2 + 1;
	while (*p != '\0') {
		if (*path_len == MAIL_SECTION_MAX_PATH)
			return false;
		char *end;
		unsigned long v = strtoul(p, &end, 10);
		if (end == p || v == 0 || v > 100000 || (*p == '0'))
			return false;
		path[(*path_len)++] = (uint32_t)v;
		if (*end == '\0')
			break;
		if (*end != '_' || end[1] == '\0')
			return false;
		p = end + 1;
	}
	return *path_len > 0;
}

int jmap_blob_open(struct jmap *j, struct store_user *user,
		   const char *blob_id, struct jmap_blob *b,
		   struct store_error *err)
{
	(void)j;
	memset(b, 0, sizeof(*b));
	buf_init(&b->decoded, 0);
	int64_t uid = store_user_id(user), n;
	uint32_t path[MAIL_SECTION_MAX_PATH];
	unsigned plen;
	int r;
	if (blob_id_split(blob_id, 'B', uid, &n, path, &plen)) {
		r = store_email_open(user, n, &b->raw, err);
	} else if (blob_id_split(blob_id, 'U', uid, &n, path, &plen)) {
		r = store_upload_open(user, n, &b->raw, &b->type, err);
		if (r == 0 && plen == 0) {
			/* used: keep it an hour or more from now */
			store_upload_touch(user, n, time(NULL) +
					   (time_t)j->set.upload_ttl, NULL);
		}
	} else if (blob_id_split(blob_id, 'Z', uid, &n, path, &plen) &&
		   plen == 0) {
		r = jmap_sieve_blob_open(user, n, b, err);
		if (r < 0)
			jmap_blob_close(b);
		return r;
	} else {
		jmap_fail(err, STORE_ERR_NOTFOUND, "No such blob");
		return -1;
	}
	if (r < 0) {
		if (err->kind == STORE_ERR_NOTFOUND)
			jmap_fail(err, STORE_ERR_NOTFOUND, "No such blob");
		return -1;
	}
	b->data = b->raw.data;
	b->len = b->raw.len;
	if (plen == 0)
		return 0;
	struct mail_result an;
	struct mail_analyze_options o = {NULL, NULL, NULL, false};
	mail_analyze(b->raw.data, b->raw.len, &o, &an);
	struct mail_part_info info;
	struct mail_section sec;
	bool unknown = false;
	int ret = 0;
	if (!mail_part_lookup(an.parts, an.parts_len, path, plen, &info) ||
	    (info.type.len == 9 && memcmp(info.type.ptr, "multipart", 9) == 0)) {
		ret = jmap_fail(err, STORE_ERR_NOTFOUND, "No such blob");
	} else if (mail_binary_get(b->raw.data, b->raw.len, an.parts,
				   an.parts_len, path, plen, &sec,
				   &unknown) == 0) {
		buf_append(&b->decoded, sec.ptr ? sec.ptr : "", sec.len);
		mail_section_free(&sec);
		free(b->type);
		b->type = xasprintf("%.*s/%.*s", (int)info.type.len,
				    info.type.ptr, (int)info.subtype.len,
				    info.subtype.ptr);
		b->data = b->decoded.data ? b->decoded.data : "";
		b->len = b->decoded.len;
	} else {
		/* an unknown encoding: the part as it is */
		buf_append(&b->decoded, b->raw.data + info.body_offset,
			   (size_t)info.body_size);
		b->data = b->decoded.data ? b->decoded.data : "";
		b->len = b->decoded.len;
	}
	mail_result_free(&an);
	if (ret < 0)
		jmap_blob_close(b);
	return ret;
}

void jmap_blob_close(struct jmap_blob *b)
{
	if (b->raw.priv != NULL)
		store_blob_close(&b->raw);
	buf_free(&b->decoded);
	free(b->type);
	free(b->name);
	memset(b, 0, sizeof(*b));
}

/* Blob/copy (RFC 8620 6.3): within one account a blob is already there
 * (the same id); from another account the caller reaches (shared
 * mailboxes) into its own, each blob is read through the source's
 * handle (its rights) and kept as an upload of the caller's (a new
 * "U" id, swept like any upload). Into another's account: forbidden
 * (uploads are the owner's). */
static json_t *copy_one(struct jmap_req *req, struct store_user *src,
			const char *id, char out[32])
{
	struct jmap_blob b;
	struct store_error err;
	if (jmap_blob_open(req->j, src, id, &b, &err) < 0)
		return jmap_set_error("blobNotFound", NULL);
	struct store_upload *up = NULL;
	int64_t n = 0;
	uint64_t size = 0;
	const char *type = b.type != NULL ? b.type : "application/octet-stream";
	int r = store_upload_begin(req->user, req->j->set.max_size_upload, &up,
				   &err);
	if (r == 0 && store_upload_write(up, b.data, b.len, &err) < 0) {
		store_upload_abort(&up);
		r = -1;
	}
	if (r == 0)
		r = store_upload_finish(&up, type,
					time(NULL) + (time_t)req->j->set.upload_ttl,
					&n, &size, &err);
	jmap_blob_close(&b);
	if (r < 0)
		return jmap_set_error_store(&err);
	store_objectid_format(out, 'U', req->account, n);
	return NULL;
}

static json_t *blob_copy(struct jmap_req *req, json_t *args)
{
	json_t *from = json_object_get(args, "fromAccountId");
	int64_t src_id;
	if (!json_is_string(from))
		return jmap_error("invalidArguments", "fromAccountId");
	json_t *e = jmap_account(req, args, true);
	if (e != NULL)
		return e;
	if (!jmap_account_parse(json_string_value(from), &src_id))
		return jmap_error("fromAccountNotFound", NULL);
	struct store_user *src = NULL;
	if (src_id != req->account &&
	    jmap_account_open(req->j, req->who, src_id, &src, NULL, NULL,
			      0) < 0)
		return jmap_error("fromAccountNotFound", NULL);
	json_t *ids = json_object_get(args, "blobIds");
	if (!json_is_array(ids) ||
	    json_array_size(ids) > req->j->set.max_objects_in_set) {
		store_user_unref(&src);
		return json_is_array(ids) ? jmap_error("requestTooLarge", NULL)
					  : jmap_error("invalidArguments",
						       "blobIds");
	}
	json_t *copied = json_object(), *not = json_object();
	size_t i;
	json_t *x;
	json_array_foreach(ids, i, x) {
		const char *id = json_string_value(x);
		struct jmap_blob b;
		struct store_error err;
		char nid[32];
		json_t *se = NULL;
		if (id == NULL)
			continue;
		if (src == NULL) {
			/* within one account: the blob is there already */
			if (jmap_blob_open(req->j, req->user, id, &b, &err) == 0) {
				jmap_blob_close(&b);
				json_object_set_new(copied, id, json_string(id));
				continue;
			}
			se = jmap_set_error("blobNotFound", NULL);
		} else if (req->account != req->who->user_id) {
			se = jmap_set_error("forbidden",
					    "blobs are copied into the user's"
					    " own account only");
		} else {
			se = copy_one(req, src, id, nid);
		}
		if (se != NULL)
			json_object_set_new(not, id, se);
		else
			json_object_set_new(copied, id, json_string(nid));
	}
	store_user_unref(&src);
	json_t *r = json_pack("{s:O,s:O}", "fromAccountId", from, "accountId",
			      json_object_get(args, "accountId"));
	json_object_set_new(r, "copied", json_object_size(copied) ? copied
				   : (json_decref(copied), json_null()));
	json_object_set_new(r, "notCopied", json_object_size(not) ? not
				   : (json_decref(not), json_null()));
	jmap_reply(req, "Blob/copy", r);
	return NULL;
}

const struct jmap_method jmap_blob_methods[] = {
	{"Blob/copy", JMAP_C_CORE, blob_copy},
	{NULL, 0, NULL},
};
