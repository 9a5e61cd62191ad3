/*
 * Per-user \Seen in shared mailboxes (store.h "per-user \Seen"): the
 * part every backend shares. A viewer's handle (store-acl.c) on a
 * mailbox whose \Seen is per user reads its own \Seen through the
 * backend's seen_* calls; store.c and store-view.c call these helpers
 * around the ordinary backend calls, so a front-end sees one picture.
 */
#include "store-private.h"

#include <stdlib.h>
#include <string.h>

int64_t store_seen_pvt(struct store_user *h, const char *mailbox)
{
	if (h->owner == NULL || h->viewer.user_id <= 0)
		return 0;
	const struct store_backend_vfuncs *vf = h->store->vf;
	if (vf->seen_mode == NULL)
		return 0;
	int mode;
	struct store_error e;
	if (vf->seen_mode(h->owner, mailbox, &mode, &e) < 0)
		return 0;
	bool shared = mode < 0 ? h->store->set.seen_shared
			       : mode == STORE_SEEN_SHARED;
	return shared ? 0 : h->viewer.user_id;
}

int store_seen_info(struct store_user *h, const char *mailbox,
		    struct store_mailbox_info *info, struct store_error *err)
{
	int64_t pvt = store_seen_pvt(h, mailbox);
	if (pvt == 0 || info->noselect)
		return 0;
	if (h->store->vf->seen_info(h->owner, info->id, pvt, info, err) < 0) {
		store_mailbox_info_free(info);
		return -1;
	}
	return 0;
}

int store_seen_list(struct store_user *h, struct store_mailbox_info *list,
		    size_t count, struct store_error *err)
{
	if (h->owner == NULL || h->viewer.user_id <= 0 ||
	    h->store->vf->seen_mode == NULL)
		return 0;
	if (h->store->vf->seen_list != NULL)
		return h->store->vf->seen_list(h->owner, h->viewer.user_id,
					       h->store->set.seen_shared, list,
					       count, err);
	for (size_t i = 0; i < count; i++) {
		int64_t pvt = store_seen_pvt(h, list[i].name);
		if (pvt != 0 && !list[i].noselect &&
		    h->store->vf->seen_info(h->owner, list[i].id, pvt, &list[i],
					    err) < 0)
			return -1;
	}
	return 0;
}

/* ---- fetch: the viewer's \Seen and modseq over the common ones ------ */

struct seen_fetch {
	struct store_object obj;      /* seen_fetch_vf */
	struct store_fetch *inner;    /* NULL: nothing to fetch */
	struct store_seen_row *rows;
	size_t count, pos;
	struct store_msg msg;
};

static int seen_fetch_next(struct store_fetch *fetch,
			   const struct store_msg **msg_r,
			   struct store_error *err)
{
	struct seen_fetch *f = (struct seen_fetch *)(void *)fetch;
	if (f->inner == NULL)
		return 0;
	const struct store_msg *m;
	int r = STORE_OBJ_VF(f->inner)->fetch_next(f->inner, &m, err);
	if (r <= 0)
		return r;
	f->msg = *m;
	while (f->pos < f->count && f->rows[f->pos].uid < m->uid)
		f->pos++;
	f->msg.flags &= ~(unsigned)STORE_FLAG_SEEN;
	if (f->pos < f->count && f->rows[f->pos].uid == m->uid) {
		const struct store_seen_row *row = &f->rows[f->pos];
		if (row->seen)
			f->msg.flags |= STORE_FLAG_SEEN;
		if (row->modseq > f->msg.modseq)
			f->msg.modseq = row->modseq;
	}
	*msg_r = &f->msg;
	return 1;
}

static void seen_fetch_end(struct store_fetch **fetch)
{
	struct seen_fetch *f = (struct seen_fetch *)(void *)*fetch;
	*fetch = NULL;
	if (f->inner != NULL)
		STORE_OBJ_VF(f->inner)->fetch_end(&f->inner);
	free(f->rows);
	free(f);
}

static const struct store_backend_vfuncs seen_fetch_vf = {
	.name = "seen",
	.fetch_next = seen_fetch_next,
	.fetch_end = seen_fetch_end,
};

int store_seen_fetch_begin(struct store_user *owner, int64_t pvt,
			   const char *mailbox,
			   const struct store_uid_range *ranges,
			   size_t range_count, unsigned fields,
			   uint64_t changedsince, struct store_fetch **fetch_r,
			   struct store_error *err)
{
	const struct store_backend_vfuncs *vf = owner->store->vf;
	struct seen_fetch *f = xcalloc(1, sizeof(*f));
	f->obj.vf = &seen_fetch_vf;
	struct store_uid_range *own = NULL;
	int ret = 0;
	if (changedsince != 0) {
		/* the messages whose common or own modseq is above it */
		uint32_t *uids = NULL;
		size_t n = 0;
		ret = vf->seen_changed_since(owner, mailbox, pvt, changedsince,
					     ranges, range_count, &uids, &n,
					     err);
		if (ret == 0) {
			own = store_uid_ranges(uids, n, &range_count);
			ranges = own;
		}
		free(uids);
	}
	if (ret == 0 && (changedsince == 0 || range_count > 0))
		ret = vf->fetch_begin(owner, mailbox, ranges, range_count,
				      fields, 0, &f->inner, err);
	if (ret == 0 && f->inner != NULL && (fields & STORE_FETCH_FLAGS))
		ret = vf->seen_rows(owner, mailbox, pvt, ranges, range_count,
				    &f->rows, &f->count, err);
	free(own);
	if (ret < 0) {
		struct store_fetch *p = (struct store_fetch *)(void *)f;
		seen_fetch_end(&p);
		return -1;
	}
	*fetch_r = (struct store_fetch *)(void *)f;
	return 0;
}

int store_seen_changed_since(struct store_user *owner, int64_t pvt,
			     const char *mailbox, uint64_t modseq,
			     const struct store_uid_range *ranges,
			     size_t range_count, uint32_t **uids_r,
			     size_t *count_r, struct store_error *err)
{
	return owner->store->vf->seen_changed_since(owner, mailbox, pvt, modseq,
						    ranges, range_count, uids_r,
						    count_r, err);
}

int store_seen_update(struct store_user *owner, int64_t pvt,
		      const char *mailbox, const struct store_uid_range *ranges,
		      size_t range_count, struct store_seen_change *change,
		      struct store_error *err)
{
	return owner->store->vf->seen_update(owner, mailbox, pvt, ranges,
					     range_count, change, err);
}

/* ---- the mailbox's setting (loftctl mailbox set ... seen=) ---------- */

int store_mailbox_seen_mode(struct store_user *user, const char *mailbox,
			    enum store_seen_mode *mode_r,
			    struct store_error *err)
{
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	char *n = store_name_normalize(mailbox, err);
	if (n == NULL)
		return -1;
	int mode = STORE_SEEN_SHARED, ret = 0;
	if (user->store->vf->seen_mode == NULL)
		ret = store_set_error(err, STORE_ERR_INVALID,
				      "This store has no per-user \\Seen");
	else
		ret = user->store->vf->seen_mode(user, n, &mode, err);
	free(n);
	if (ret == 0)
		*mode_r = (enum store_seen_mode)mode;
	return ret;
}

int store_mailbox_set_seen_mode(struct store_user *user, const char *mailbox,
				enum store_seen_mode mode,
				struct store_error *err)
{
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (mode != STORE_SEEN_DEFAULT && mode != STORE_SEEN_PER_USER &&
	    mode != STORE_SEEN_SHARED)
		return store_set_error(err, STORE_ERR_INVALID,
				       "Unknown \\Seen mode");
	if (user->store->vf->seen_set_mode == NULL)
		return store_set_error(err, STORE_ERR_INVALID,
				       "This store has no per-user \\Seen");
	char *n = store_name_normalize(mailbox, err);
	if (n == NULL)
		return -1;
	int ret = user->store->vf->seen_set_mode(user, n, (int)mode, err);
	free(n);
	return ret;
}
