/*
 * COPY and MOVE between two accounts' mail (issue 15: one's own INBOX
 * into a folder shared by someone else, a shared folder into one's own).
 * Each message is read as the source handle sees it (its flags, with a
 * viewer's own \Seen) and appended through the destination handle, whose
 * rights decide as for APPEND (i, flags it may not set dropped). The two
 * accounts' indexes commit apart: a failure removes the copies already
 * made (RFC 3501 6.4.7: the destination as before), and a MOVE expunges
 * the sources only after every copy is made, so a crash between the two
 * can leave a message in both places, never in neither.
 */
#include "store-private.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

struct src_msg {
	uint32_t uid;
	unsigned flags;
	char **keywords;
	size_t keyword_count;
	time_t internaldate;
};

static void src_free(struct src_msg *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < v[i].keyword_count; k++)
			free(v[i].keywords[k]);
		free(v[i].keywords);
	}
	free(v);
}

static int src_list(struct store_user *src, const char *mailbox,
		    const struct store_uid_range *ranges, size_t range_count,
		    struct src_msg **v_r, size_t *n_r, struct store_error *err)
{
	struct store_fetch *f;
	if (store_fetch_begin(src, mailbox, ranges, range_count,
			      STORE_FETCH_FLAGS | STORE_FETCH_SIZE, &f,
			      err) < 0)
		return -1;
	struct src_msg *v = NULL;
	size_t n = 0, cap = 0;
	const struct store_msg *m;
	int r;
	while ((r = store_fetch_next(f, &m, err)) == 1) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		struct src_msg *s = &v[n++];
		s->uid = m->uid;
		s->flags = m->flags;
		s->internaldate = m->internaldate;
		s->keyword_count = m->keyword_count;
		s->keywords = xcalloc(m->keyword_count + 1, sizeof(char *));
		for (size_t k = 0; k < m->keyword_count; k++)
			s->keywords[k] = xstrdup(m->keywords[k]);
	}
	store_fetch_end(&f);
	if (r < 0) {
		src_free(v, n);
		return -1;
	}
	*v_r = v;
	*n_r = n;
	return 0;
}

/* One message of src appended to dst as dst's handle may; 1 when the
 * source message is gone (expunged meanwhile: nothing to copy). */
static int copy_one(struct store_user *src, const char *s,
		    const struct src_msg *m, struct store_user *dst,
		    const char *d, uint32_t *uid_r, uint32_t *uidvalidity_r,
		    struct store_error *err)
{
	struct store_blob blob;
	if (store_blob_open(src, s, m->uid, &blob, err) < 0)
		return err != NULL && err->kind == STORE_ERR_NOTFOUND ? 1 : -1;
	struct store_blob_writer *w;
	int ret = store_blob_writer_create(dst, &w, err);
	if (ret == 0) {
		struct store_error e2;
		/* the bytes as they are, bare LF of a binary APPEND too */
		store_blob_writer_set_binary(w, &e2);
		ret = store_blob_writer_write(w, blob.data, blob.len, err);
		struct store_append_params p = {
			.flags = m->flags,
			.keywords = (const char *const *)m->keywords,
			.keyword_count = m->keyword_count,
			.internaldate = m->internaldate,
		};
		if (ret == 0)
			ret = store_blob_writer_commit_to(&w, dst, d, &p, uid_r,
							  uidvalidity_r, err);
		else
			store_blob_writer_abort(&w);
	}
	store_blob_close(&blob);
	return ret;
}

int store_copy_between(struct store_user *src, const char *src_mailbox,
		       const struct store_uid_range *ranges,
		       size_t range_count, struct store_user *dst,
		       const char *dst_mailbox, bool move,
		       uint32_t *dst_uidvalidity_r, uint32_t **src_uids_r,
		       uint32_t **dst_uids_r, size_t *count_r,
		       struct store_error *err)
{
	*src_uids_r = *dst_uids_r = NULL;
	*count_r = 0;
	if (store_acl_backend_user(src)->id == store_acl_backend_user(dst)->id)
		return store_copy(src, src_mailbox, ranges, range_count,
				  dst_mailbox, move, dst_uidvalidity_r,
				  src_uids_r, dst_uids_r, count_r, err);
	char *s = store_name_normalize(src_mailbox, err);
	char *d = s != NULL ? store_name_normalize(dst_mailbox, err) : NULL;
	if (d == NULL) {
		free(s);
		return -1;
	}
	/* the rights first, nothing read or written before */
	struct store_user *so = src, *dop = dst;
	unsigned src_need = STORE_RIGHT_READ |
			    (move ? STORE_RIGHT_DELETED | STORE_RIGHT_EXPUNGE : 0);
	struct src_msg *v = NULL;
	size_t n = 0;
	int ret = -1;
	if (store_acl_enter(&so, s, src_need, NULL, err) < 0 ||
	    store_acl_enter(&dop, d, STORE_RIGHT_INSERT, NULL, err) < 0 ||
	    src_list(src, s, ranges, range_count, &v, &n, err) < 0)
		goto out;
	uint32_t *su = xcalloc(n ? n : 1, sizeof(uint32_t));
	uint32_t *du = xcalloc(n ? n : 1, sizeof(uint32_t));
	size_t done = 0;
	ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		ret = copy_one(src, s, &v[i], dst, d, &du[done],
			       dst_uidvalidity_r, err);
		if (ret == 0)
			su[done++] = v[i].uid;
		else if (ret == 1)
			ret = 0;
	}
	if (ret < 0 && done > 0) {
		/* the destination as it was: the copies made go again */
		struct store_user *owner = store_acl_backend_user(dst);
		struct store_uid_range *r = xcalloc(done, sizeof(*r));
		for (size_t i = 0; i < done; i++)
			r[i] = (struct store_uid_range){du[i], du[i]};
		struct store_error e2;
		if (owner->store->vf->expunge(owner, d, r, done, true, NULL,
					      NULL, &e2) < 0)
			log_warn("store", NULL, "a failed COPY left %zu copies"
				 " in %s: %s", done, d, e2.msg);
		free(r);
	}
	if (ret == 0 && move && done > 0) {
		struct store_uid_range *r = xcalloc(done, sizeof(*r));
		for (size_t i = 0; i < done; i++)
			r[i] = (struct store_uid_range){su[i], su[i]};
		struct store_error e2;
		/* the copies are made: a failure here leaves the messages in
		 * both places, and says so */
		if (store_expunge(src, s, r, done, true, NULL, NULL, &e2) < 0) {
			ret = -1;
			if (err != NULL)
				*err = e2;
		}
		free(r);
	}
	if (ret == 0) {
		*src_uids_r = su;
		*dst_uids_r = du;
		*count_r = done;
	} else {
		free(su);
		free(du);
	}
out:
	src_free(v, n);
	free(s);
	free(d);
	return ret;
}
