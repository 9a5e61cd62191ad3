/*
 * JMAP on a viewer's handle (store.h "JMAP on a viewer's handle"):
 * another account's mail as the viewer may see it. store-jmap.c hands
 * every JMAP call made on a viewer's handle here.
 *
 * The viewer's rights on each of the owner's mailboxes come from the one
 * evaluation every call uses (store_acl_rights_many, store-acl.c), read
 * once per call into a scope: l shows a mailbox, r shows the Emails with
 * a copy in it, and a mailbox whose \Seen is per user (store-seen.c)
 * shows the viewer's own \Seen. The backend runs the owner's ordinary
 * JMAP calls and its email_copies; this file keeps what the viewer may
 * see of their answers. Changes go through the IMAP calls of store.c on
 * the viewer's handle (store_flags_update, store_copy, store_expunge),
 * which check the rights as for any IMAP client.
 */
#include "store-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What shows a mailbox's Emails over JMAP: r, on a mailbox JMAP lists
 * (l; RFC 4314's r alone needs a name JMAP never gives). */
#define JREAD (STORE_RIGHT_LOOKUP | STORE_RIGHT_READ)

/* ---- the scope: the viewer's rights on every mailbox ---------------- */

struct jscope {
	struct store_user *viewer, *owner;
	struct store_jmap_mailbox *list;   /* the owner's, rights set */
	size_t n;
	bool *pvt;                         /* per mailbox: own \Seen */
	int64_t pvt_user;                  /* the viewer, for seen_pvt */
	uint32_t fp;                       /* the rights, hashed (scope) */
	bool any_pvt, all_read;
};

static void scope_free(struct jscope *s)
{
	store_jmap_mailboxes_free(s->list, s->n);
	free(s->pvt);
	memset(s, 0, sizeof(*s));
}

static int scope_load(struct store_user *viewer, struct jscope *s,
		      struct store_error *err)
{
	memset(s, 0, sizeof(*s));
	const struct store_backend_vfuncs *vf = viewer->store->vf;
	if (vf->email_copies == NULL || vf->acl_all == NULL)
		return store_set_error(err, STORE_ERR_PERM,
				       "Another account's mail is not reachable"
				       " over JMAP with this store backend");
	s->viewer = viewer;
	s->owner = viewer->owner;
	s->pvt_user = viewer->viewer.user_id;
	if (vf->jmap_mailboxes(s->owner, &s->list, &s->n, err) < 0)
		return -1;
	uint32_t *ids = xcalloc(s->n ? s->n : 1, sizeof(*ids));
	unsigned *rights = xcalloc(s->n ? s->n : 1, sizeof(*rights));
	for (size_t i = 0; i < s->n; i++)
		ids[i] = s->list[i].info.id;
	int r = store_acl_rights_many(viewer, ids, s->n, rights, err);
	free(ids);
	if (r < 0) {
		free(rights);
		scope_free(s);
		return -1;
	}
	s->pvt = xcalloc(s->n ? s->n : 1, sizeof(bool));
	uint64_t h = 1469598103934665603ULL;
	s->all_read = true;
	for (size_t i = 0; i < s->n; i++) {
		s->list[i].rights = rights[i];
		if ((rights[i] & JREAD) == JREAD)
			s->pvt[i] = store_seen_pvt(viewer,
						   s->list[i].info.name) != 0;
		else
			s->all_read = false;
		s->any_pvt |= s->pvt[i];
		if (rights[i] == 0)
			continue;
		uint64_t v = (uint64_t)s->list[i].info.id << 16 |
			     rights[i] << 1 | s->pvt[i];
		for (int b = 0; b < 8; b++)
			h = (h ^ ((v >> (8 * b)) & 0xff)) * 1099511628211ULL;
	}
	free(rights);
	s->fp = (uint32_t)(h ^ (h >> 32));
	if (s->fp == 0)
		s->fp = 1;
	return 0;
}

static long scope_find(const struct jscope *s, uint32_t mailbox_id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->list[i].info.id == mailbox_id)
			return (long)i;
	return -1;
}

static unsigned scope_rights(const struct jscope *s, uint32_t mailbox_id)
{
	long i = scope_find(s, mailbox_id);
	return i < 0 ? 0 : s->list[i].rights;
}

/* A mailbox the viewer must read: NOTFOUND as a missing one if not. */
static int scope_need_read(const struct jscope *s, uint32_t mailbox_id,
			   struct store_error *err)
{
	if ((scope_rights(s, mailbox_id) & JREAD) == JREAD)
		return 0;
	return store_set_error(err, STORE_ERR_NOTFOUND, "No such mailbox");
}

/* The copies of ids the viewer sees, \Seen its own: rows of readable
 * mailboxes only, grouped by Email in the order of ids. */
static int copies_load(const struct jscope *s, const int64_t *ids,
		       size_t count, struct store_copy_row **rows_r,
		       size_t *n_r, struct store_error *err)
{
	struct store_copy_row *rows;
	size_t n;
	if (s->owner->store->vf->email_copies(s->owner, ids, count,
					      s->pvt_user, &rows, &n,
					      err) < 0)
		return -1;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		long m = scope_find(s, rows[i].mailbox);
		if (m < 0 || (s->list[m].rights & JREAD) != JREAD)
			continue;
		rows[k] = rows[i];
		if (s->pvt[m]) {
			rows[k].flags &= ~(unsigned)STORE_FLAG_SEEN;
			if (rows[k].seen_pvt == 1)
				rows[k].flags |= STORE_FLAG_SEEN;
		}
		k++;
	}
	*rows_r = rows;
	*n_r = k;
	return 0;
}

/* Whether every copy of rows[0..n) has \Seen (the merged $seen). */
static bool copies_seen(const struct store_copy_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!(rows[i].flags & STORE_FLAG_SEEN))
			return false;
	return n > 0;
}

/* ---- the copies of one Email (any handle) --------------------------- */

int store_email_copies(struct store_user *user, int64_t id,
		       struct store_email_copy **copies_r, size_t *count_r,
		       struct store_error *err)
{
	*copies_r = NULL;
	*count_r = 0;
	struct store_copy_row *rows = NULL;
	size_t n = 0;
	struct jscope s;
	memset(&s, 0, sizeof(s));
	int ret;
	if (user->owner == NULL) {
		if (user->store->vf->email_copies == NULL)
			return store_set_error(err, STORE_ERR_PERM,
					       "Not with this store backend");
		ret = user->store->vf->email_copies(user, &id, 1, 0, &rows, &n,
						    err);
	} else {
		ret = scope_load(user, &s, err);
		if (ret == 0)
			ret = copies_load(&s, &id, 1, &rows, &n, err);
		scope_free(&s);
	}
	if (ret == 0 && n == 0)
		ret = store_set_error(err, STORE_ERR_NOTFOUND, "No such Email");
	if (ret == 0) {
		struct store_email_copy *c = xcalloc(n, sizeof(*c));
		for (size_t i = 0; i < n; i++)
			c[i] = (struct store_email_copy){rows[i].mailbox,
							 rows[i].uid,
							 rows[i].flags};
		*copies_r = c;
		*count_r = n;
	}
	free(rows);
	return ret;
}

/* ---- states and changes --------------------------------------------- */

static int seen_newest(const struct jscope *s, uint64_t *v_r,
		       struct store_error *err)
{
	*v_r = 0;
	const struct store_backend_vfuncs *vf = s->owner->store->vf;
	if (s->pvt_user <= 0 || vf->seen_newest == NULL)
		return 0;
	return vf->seen_newest(s->owner, s->pvt_user, v_r, err);
}

int store_jshare_states(struct store_user *viewer,
			struct store_jmap_cursor *states_r,
			struct store_error *err)
{
	struct jscope s;
	if (scope_load(viewer, &s, err) < 0)
		return -1;
	uint64_t newest;
	int ret = s.owner->store->vf->jmap_states(s.owner, states_r, err);
	if (ret == 0)
		ret = seen_newest(&s, &newest, err);
	if (ret == 0) {
		for (int k = 0; k < STORE_JMAP_KINDS; k++) {
			if (k > STORE_JMAP_THREAD) {
				/* the owner's own objects: not the viewer's */
				states_r[k] = (struct store_jmap_cursor){0};
				continue;
			}
			if (k != STORE_JMAP_THREAD &&
			    states_r[k].modseq < newest)
				states_r[k].modseq = newest;
			states_r[k].scope = s.fp;
		}
	}
	scope_free(&s);
	return ret;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

struct idv {
	int64_t *v;
	size_t n, cap;
};

static void idv_push(struct idv *x, int64_t id)
{
	if (x->n == x->cap) {
		x->cap = x->cap ? x->cap * 2 : 32;
		x->v = xrealloc(x->v, x->cap * sizeof(*x->v));
	}
	x->v[x->n++] = id;
}

static bool idv_has(const struct idv *x, int64_t id)
{
	return x->n > 0 &&
	       bsearch(&id, x->v, x->n, sizeof(*x->v), cmp_i64) != NULL;
}

static void idv_sort(struct idv *x)
{
	if (x->n > 1)
		qsort(x->v, x->n, sizeof(*x->v), cmp_i64);
}

static void change_push(struct store_jmap_change **v, size_t *n, int64_t id,
			const char *oid)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[*n].id = id;
	snprintf((*v)[*n].objectid, sizeof((*v)[*n].objectid), "%s",
		 oid != NULL ? oid : "");
	(*n)++;
}

/* Mailbox changes: those the viewer sees; the viewer's own \Seen moves
 * the counts of its per-user mailboxes. */
static void mailbox_changes(const struct jscope *s,
			    struct store_jmap_changes *ch, bool seen_moved)
{
	size_t k = 0;
	for (size_t i = 0; i < ch->created_count; i++)
		if (scope_rights(s, (uint32_t)ch->created[i].id) &
		    STORE_RIGHT_LOOKUP)
			ch->created[k++] = ch->created[i];
	ch->created_count = k;
	k = 0;
	for (size_t i = 0; i < ch->updated_count; i++)
		if (scope_rights(s, (uint32_t)ch->updated[i].id) &
		    STORE_RIGHT_LOOKUP)
			ch->updated[k++] = ch->updated[i];
	bool had = k > 0;
	ch->updated_count = k;
	if (!seen_moved)
		return;
	for (size_t m = 0; m < s->n; m++) {
		if (!s->pvt[m] || !(s->list[m].rights & STORE_RIGHT_LOOKUP))
			continue;
		bool dup = false;
		for (size_t i = 0; i < ch->updated_count && !dup; i++)
			dup = ch->updated[i].id == s->list[m].info.id;
		for (size_t i = 0; i < ch->created_count && !dup; i++)
			dup = ch->created[i].id == s->list[m].info.id;
		if (!dup)
			change_push(&ch->updated, &ch->updated_count,
				    s->list[m].info.id,
				    s->list[m].info.objectid);
	}
	if (!had && ch->created_count == 0 && ch->destroyed_count == 0)
		ch->counts_only = true;
}

/* Email changes: an Email the viewer no longer sees is destroyed if it
 * was in a mailbox it reads since the state (the membership log), and
 * left out if it never was; the viewer's own \Seen changes are
 * updates. */
static int email_changes(const struct jscope *s,
			 const struct store_jmap_cursor *since,
			 struct store_jmap_changes *ch, struct store_error *err)
{
	const struct store_backend_vfuncs *vf = s->owner->store->vf;
	struct idv seen = {0}, moved = {0}, vis = {0};
	int ret = 0;
	if (s->pvt_user > 0 && vf->seen_emails_since != NULL) {
		ret = vf->seen_emails_since(s->owner, s->pvt_user,
					    since->modseq, &seen.v, &seen.n,
					    err);
		seen.cap = seen.n;
	}
	for (size_t m = 0; m < s->n && ret == 0; m++) {
		if ((s->list[m].rights & JREAD) != JREAD)
			continue;
		int64_t *ids = NULL;
		size_t n = 0;
		bool too_old = false;
		ret = vf->email_moved_since(s->owner, s->list[m].info.id, since,
					    &ids, &n, &too_old, err);
		if (ret == 0 && too_old)
			ch->too_old = true;
		for (size_t i = 0; i < n; i++)
			idv_push(&moved, ids[i]);
		free(ids);
	}
	idv_sort(&moved);
	/* every Email named, and which of them the viewer sees now */
	struct idv all = {0};
	for (size_t i = 0; i < ch->created_count; i++)
		idv_push(&all, ch->created[i].id);
	for (size_t i = 0; i < ch->updated_count; i++)
		idv_push(&all, ch->updated[i].id);
	for (size_t i = 0; i < seen.n; i++)
		idv_push(&all, seen.v[i]);
	struct store_copy_row *rows = NULL;
	size_t nr = 0;
	if (ret == 0 && all.n > 0)
		ret = copies_load(s, all.v, all.n, &rows, &nr, err);
	for (size_t i = 0; i < nr; i++)
		idv_push(&vis, rows[i].email);
	free(rows);
	idv_sort(&vis);
	if (ret == 0 && !ch->too_old) {
		struct store_jmap_change *gone = NULL;
		size_t ngone = 0;
		size_t k = 0;
		for (size_t i = 0; i < ch->created_count; i++) {
			if (idv_has(&vis, ch->created[i].id))
				ch->created[k++] = ch->created[i];
		}
		ch->created_count = k;
		k = 0;
		for (size_t i = 0; i < ch->updated_count; i++) {
			if (idv_has(&vis, ch->updated[i].id))
				ch->updated[k++] = ch->updated[i];
			else if (idv_has(&moved, ch->updated[i].id))
				change_push(&gone, &ngone, ch->updated[i].id,
					    ch->updated[i].objectid);
		}
		ch->updated_count = k;
		k = 0;
		for (size_t i = 0; i < ch->destroyed_count; i++) {
			if (idv_has(&moved, ch->destroyed[i].id))
				ch->destroyed[k++] = ch->destroyed[i];
		}
		ch->destroyed_count = k;
		for (size_t i = 0; i < ngone; i++)
			change_push(&ch->destroyed, &ch->destroyed_count,
				    gone[i].id, gone[i].objectid);
		free(gone);
		/* the viewer's own \Seen: updates of visible Emails */
		for (size_t i = 0; i < seen.n; i++) {
			int64_t id = seen.v[i];
			bool dup = !idv_has(&vis, id);
			for (size_t j = 0; j < ch->created_count && !dup; j++)
				dup = ch->created[j].id == id;
			for (size_t j = 0; j < ch->updated_count && !dup; j++)
				dup = ch->updated[j].id == id;
			if (!dup)
				change_push(&ch->updated, &ch->updated_count, id,
					    NULL);
		}
	}
	free(seen.v);
	free(moved.v);
	free(vis.v);
	free(all.v);
	return ret;
}

/* Thread changes: a thread with no Email the viewer sees is destroyed. */
static int thread_changes(const struct jscope *s,
			  struct store_jmap_changes *ch,
			  struct store_error *err)
{
	const struct store_backend_vfuncs *vf = s->owner->store->vf;
	struct store_jmap_change *v[2] = {ch->created, ch->updated};
	size_t *n[2] = {&ch->created_count, &ch->updated_count};
	for (int w = 0; w < 2; w++) {
		size_t k = 0;
		for (size_t i = 0; i < *n[w]; i++) {
			int64_t *ids = NULL;
			size_t ni = 0;
			struct store_copy_row *rows = NULL;
			size_t nr = 0;
			if (vf->thread_emails(s->owner, v[w][i].id, &ids, &ni,
					      err) < 0 ||
			    (ni > 0 &&
			     copies_load(s, ids, ni, &rows, &nr, err) < 0)) {
				free(ids);
				return -1;
			}
			free(ids);
			free(rows);
			if (nr > 0)
				v[w][k++] = v[w][i];
			else
				change_push(&ch->destroyed,
					    &ch->destroyed_count, v[w][i].id,
					    v[w][i].objectid);
		}
		*n[w] = k;
	}
	return 0;
}

int store_jshare_changes(struct store_user *viewer, enum store_jmap_kind kind,
			 const struct store_jmap_cursor *since, size_t max,
			 struct store_jmap_changes *ch,
			 struct store_error *err)
{
	if (kind > STORE_JMAP_THREAD)
		return store_acl_owner_only(viewer, err);
	struct jscope s;
	if (scope_load(viewer, &s, err) < 0)
		return -1;
	int ret = 0;
	uint64_t newest = 0;
	if (since->scope != s.fp) {
		/* taken under other rights (or by the owner) */
		ch->too_old = true;
	} else {
		ret = s.owner->store->vf->jmap_changes(s.owner, kind, since,
						       max, ch, err);
		if (ret == 0)
			ret = seen_newest(&s, &newest, err);
	}
	if (ret == 0 && !ch->too_old) {
		if (kind == STORE_JMAP_MAILBOX)
			mailbox_changes(&s, ch, newest > since->modseq);
		else if (kind == STORE_JMAP_EMAIL)
			ret = email_changes(&s, since, ch, err);
		else
			ret = thread_changes(&s, ch, err);
		if (!ch->more && kind != STORE_JMAP_THREAD &&
		    ch->new_state.modseq < newest) {
			ch->new_state.modseq = newest;
			ch->new_state.id = 0;
		}
		ch->new_state.scope = s.fp;
	}
	scope_free(&s);
	return ret;
}

/* ---- mailboxes ------------------------------------------------------ */

int store_jshare_mailboxes(struct store_user *viewer,
			   struct store_jmap_mailbox **list_r, size_t *count_r,
			   struct store_error *err)
{
	struct jscope s;
	if (scope_load(viewer, &s, err) < 0)
		return -1;
	const struct store_backend_vfuncs *vf = s.owner->store->vf;
	size_t k = 0;
	int ret = 0;
	for (size_t i = 0; i < s.n; i++) {
		struct store_jmap_mailbox *m = &s.list[i];
		if (!(m->rights & STORE_RIGHT_LOOKUP)) {
			store_mailbox_info_free(&m->info);
			continue;
		}
		m->info.subscribed = false;   /* the owner's, not the viewer's */
		if ((m->rights & JREAD) != JREAD) {
			/* listed, its content not the viewer's to count */
			m->emails = m->unread_emails = 0;
			m->threads = m->unread_threads = 0;
		} else if (s.pvt[i] && ret == 0 && vf->seen_info != NULL) {
			/* the viewer's own unread count, as IMAP's STATUS */
			struct store_mailbox_info info = m->info;
			info.name = NULL;
			ret = vf->seen_info(s.owner, m->info.id, s.pvt_user,
					    &info, err);
			if (ret == 0) {
				uint32_t unread = info.unseen;
				if (unread > m->emails)
					unread = m->emails;
				m->unread_emails = unread;
				/* per-thread state is not kept per viewer:
				 * at most one unread thread per unread Email */
				m->unread_threads = unread < m->threads
							    ? unread
							    : m->threads;
			}
		}
		s.list[k++] = *m;
	}
	s.n = k;
	if (ret == 0) {
		*list_r = s.list;
		*count_r = s.n;
		s.list = NULL;
		s.n = 0;
	}
	scope_free(&s);
	return ret;
}

/* ---- Emails --------------------------------------------------------- */

static void email_clear(struct store_email *e)
{
	for (size_t k = 0; k < e->keyword_count; k++)
		free(e->keywords[k]);
	free(e->keywords);
	free(e->mailboxes);
	free(e->preview);
	memset(e, 0, sizeof(*e));
}

int store_jshare_email_get(struct store_user *viewer, const int64_t *ids,
			   size_t count, struct store_email *emails,
			   struct store_error *err)
{
	struct jscope s;
	if (scope_load(viewer, &s, err) < 0)
		return -1;
	struct store_copy_row *rows = NULL;
	size_t nr = 0;
	int ret = s.owner->store->vf->email_get(s.owner, ids, count, emails,
						err);
	if (ret == 0 && count > 0)
		ret = copies_load(&s, ids, count, &rows, &nr, err);
	size_t r = 0;
	for (size_t i = 0; i < count && ret == 0; i++) {
		struct store_email *e = &emails[i];
		/* rows come grouped by Email in the order of ids */
		size_t first = r;
		while (r < nr && rows[r].email == ids[i])
			r++;
		if (e->id == 0)
			continue;
		if (r == first) {
			email_clear(e);
			continue;
		}
		free(e->mailboxes);
		e->mailboxes = xcalloc(r - first, sizeof(uint32_t));
		e->mailbox_count = 0;
		for (size_t j = first; j < r; j++) {
			if (e->mailbox_count > 0 &&
			    e->mailboxes[e->mailbox_count - 1] == rows[j].mailbox)
				continue;
			e->mailboxes[e->mailbox_count++] = rows[j].mailbox;
		}
		e->flags &= ~(unsigned)STORE_FLAG_SEEN;
		if (copies_seen(rows + first, r - first))
			e->flags |= STORE_FLAG_SEEN;
	}
	free(rows);
	scope_free(&s);
	return ret;
}

int store_jshare_email_open(struct store_user *viewer, int64_t id,
			    struct store_blob *blob_r, struct store_error *err)
{
	struct store_email_copy *c;
	size_t n;
	if (store_email_copies(viewer, id, &c, &n, err) < 0)
		return -1;
	free(c);
	return viewer->store->vf->email_open(viewer->owner, id, blob_r, err);
}

struct scan_wrap {
	const struct jscope *s;
	store_email_row_fn *cb;
	void *ctx;
	struct store_error *err;
	bool failed;
};

static int scan_row(void *ctx, const struct store_email_row *row)
{
	struct scan_wrap *w = ctx;
	struct store_copy_row *rows;
	size_t n;
	if (copies_load(w->s, &row->id, 1, &rows, &n, w->err) < 0) {
		w->failed = true;
		return 1;
	}
	bool seen = copies_seen(rows, n);
	free(rows);
	if (n == 0)
		return 0;
	struct store_email_row r = *row;
	r.flags &= ~(unsigned)STORE_FLAG_SEEN;
	if (seen)
		r.flags |= STORE_FLAG_SEEN;
	return w->cb(w->ctx, &r);
}

int store_jshare_email_scan(struct store_user *viewer, uint32_t mailbox_id,
			    bool newest_first, unsigned fields,
			    store_email_row_fn *cb, void *ctx,
			    struct store_error *err)
{
	struct jscope s;
	if (scope_load(viewer, &s, err) < 0)
		return -1;
	const struct store_backend_vfuncs *vf = s.owner->store->vf;
	int ret = 0;
	if (mailbox_id != 0)
		ret = scope_need_read(&s, mailbox_id, err);
	/* rows of a readable mailbox are visible; their $seen may be the
	 * viewer's own */
	bool plain = !s.any_pvt && (mailbox_id != 0 || s.all_read);
	struct scan_wrap w = {&s, cb, ctx, err, false};
	if (ret == 0 && plain)
		ret = vf->email_scan(s.owner, mailbox_id, newest_first, fields,
				     cb, ctx, err);
	else if (ret == 0) {
		ret = vf->email_scan(s.owner, mailbox_id, newest_first, fields,
				     scan_row, &w, err);
		if (w.failed)
			ret = -1;
	}
	scope_free(&s);
	return ret;
}

int store_jshare_email_rank(struct store_user *viewer, uint32_t mailbox_id,
			    int64_t id, uint64_t *rank_r,
			    struct store_error *err)
{
	struct jscope s;
	if (scope_load(viewer, &s, err) < 0)
		return -1;
	int ret = scope_need_read(&s, mailbox_id, err);
	if (ret == 0)
		ret = s.owner->store->vf->email_rank(s.owner, mailbox_id, id,
						     rank_r, err);
	scope_free(&s);
	return ret;
}

int store_jshare_moved_since(struct store_user *viewer, uint32_t mailbox_id,
			     const struct store_jmap_cursor *since,
			     int64_t **ids_r, size_t *count_r, bool *too_old_r,
			     struct store_error *err)
{
	struct jscope s;
	if (scope_load(viewer, &s, err) < 0)
		return -1;
	int ret = scope_need_read(&s, mailbox_id, err);
	if (ret == 0 && since->scope != s.fp)
		*too_old_r = true;
	else if (ret == 0)
		ret = s.owner->store->vf->email_moved_since(
			s.owner, mailbox_id, since, ids_r, count_r, too_old_r,
			err);
	scope_free(&s);
	return ret;
}

/* Keeps the ids (ascending or in any order) the viewer sees. */
static int ids_visible(struct store_user *viewer, int64_t *ids, size_t *n,
		       struct store_error *err)
{
	if (*n == 0)
		return 0;
	struct jscope s;
	if (scope_load(viewer, &s, err) < 0)
		return -1;
	struct store_copy_row *rows;
	size_t nr;
	int ret = copies_load(&s, ids, *n, &rows, &nr, err);
	if (ret == 0) {
		struct idv vis = {0};
		for (size_t i = 0; i < nr; i++)
			idv_push(&vis, rows[i].email);
		idv_sort(&vis);
		size_t k = 0;
		for (size_t i = 0; i < *n; i++)
			if (idv_has(&vis, ids[i]))
				ids[k++] = ids[i];
		*n = k;
		free(vis.v);
		free(rows);
	}
	scope_free(&s);
	return ret;
}

int store_jshare_thread_emails(struct store_user *viewer, int64_t thread,
			       int64_t **ids_r, size_t *count_r,
			       struct store_error *err)
{
	if (viewer->store->vf->thread_emails(viewer->owner, thread, ids_r,
					     count_r, err) < 0)
		return -1;
	return ids_visible(viewer, *ids_r, count_r, err);
}

int store_jshare_email_search(struct store_user *viewer,
			      enum store_text_where where, const char *field,
			      const char *needle, int64_t **ids_r,
			      size_t *count_r, struct store_error *err)
{
	if (viewer->store->vf->email_search(viewer->owner, where, field,
					    needle, ids_r, count_r, err) < 0)
		return -1;
	return ids_visible(viewer, *ids_r, count_r, err);
}

/* ---- the email transaction ------------------------------------------ */

static const char *scope_name(const struct jscope *s, uint32_t id)
{
	long i = scope_find(s, id);
	return i < 0 ? NULL : s->list[i].info.name;
}

/* Checks a mailbox of an operation: visible (else as missing: INVALID,
 * a client error on mailboxIds) and holding need (NOPERM). */
static bool op_mailbox(const struct jscope *s, uint32_t id, unsigned need,
		       struct store_error *err)
{
	unsigned r = scope_rights(s, id);
	if (!(r & STORE_RIGHT_LOOKUP) && (r & need) != need) {
		store_set_error(err, STORE_ERR_INVALID, "No such mailbox");
		return false;
	}
	if ((r & need) != need) {
		store_set_error(err, STORE_ERR_NOPERM,
				"You lack a right on a mailbox of this Email");
		return false;
	}
	return true;
}

static bool u32_in(const uint32_t *v, size_t n, uint32_t x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

/* An update on a viewer's handle: keywords through store_flags_update,
 * mailboxes through store_copy and store_expunge, every right checked
 * first so that nothing is half done for lack of one. */
static void op_update(const struct jscope *s, struct store_email_op *op)
{
	struct store_error *err = &op->result.err;
	const struct store_email_update *u = &op->update;
	struct store_copy_row *rows;
	size_t n;
	if (copies_load(s, &op->id, 1, &rows, &n, err) < 0)
		return;
	if (n == 0) {
		free(rows);
		store_set_error(err, STORE_ERR_NOTFOUND, "No such Email");
		return;
	}
	/* the rights each part needs, on the mailboxes it touches */
	unsigned kw_need = 0;
	unsigned fl = u->flags | u->flags_remove;
	if (u->replace_keywords)
		fl |= STORE_FLAG_SEEN | STORE_FLAG_FLAGGED;
	if (fl & STORE_FLAG_SEEN)
		kw_need |= STORE_RIGHT_SEEN;
	if ((fl & ~(unsigned)STORE_FLAG_SEEN) || u->keyword_count > 0 ||
	    u->keyword_remove_count > 0)
		kw_need |= STORE_RIGHT_WRITE;
	if (u->replace_keywords && !(u->flags & ~(unsigned)STORE_FLAG_SEEN) &&
	    u->keyword_count == 0) {
		/* a replace that leaves only $seen may still clear others */
		kw_need |= STORE_RIGHT_WRITE;
	}
	/* the mailboxes it will be in */
	uint32_t *want = NULL;
	size_t nwant = 0;
	bool ok = true;
	if (u->replace_mailboxes) {
		want = xcalloc(u->mailbox_count + 1, sizeof(*want));
		for (size_t i = 0; i < u->mailbox_count; i++)
			want[nwant++] = u->mailboxes[i];
	} else {
		want = xcalloc(n + u->mailbox_count + 1, sizeof(*want));
		for (size_t i = 0; i < n; i++)
			if (!u32_in(u->mailboxes_remove, u->mailbox_remove_count,
				    rows[i].mailbox) &&
			    !u32_in(want, nwant, rows[i].mailbox))
				want[nwant++] = rows[i].mailbox;
		for (size_t i = 0; i < u->mailbox_count; i++)
			if (!u32_in(want, nwant, u->mailboxes[i]))
				want[nwant++] = u->mailboxes[i];
	}
	bool moves = u->replace_mailboxes || u->mailbox_count > 0 ||
		     u->mailbox_remove_count > 0;
	if (moves && nwant == 0) {
		store_set_error(err, STORE_ERR_INVALID,
				"An Email needs a mailbox");
		ok = false;
	}
	for (size_t i = 0; i < nwant && ok; i++) {
		bool have = false;
		for (size_t j = 0; j < n; j++)
			have |= rows[j].mailbox == want[i];
		if (!have)
			ok = op_mailbox(s, want[i], STORE_RIGHT_INSERT, err);
	}
	for (size_t j = 0; j < n && ok; j++) {
		unsigned need = kw_need;
		if (moves && !u32_in(want, nwant, rows[j].mailbox))
			need |= STORE_RIGHT_DELETED | STORE_RIGHT_EXPUNGE;
		ok = op_mailbox(s, rows[j].mailbox, need, err);
	}
	/* keywords, on every copy the viewer sees */
	for (size_t j = 0; j < n && ok && kw_need != 0; j++) {
		const char *name = scope_name(s, rows[j].mailbox);
		struct store_uid_range r = {rows[j].uid, rows[j].uid};
		struct store_flag_change c = {0};
		uint32_t *ch = NULL, *md = NULL;
		size_t nch = 0, nmd = 0;
		int x = 0;
		if (u->replace_keywords) {
			c.mode = STORE_FLAGS_REPLACE;
			c.flags = u->flags;
			c.keywords = u->keywords;
			c.keyword_count = u->keyword_count;
			x = store_flags_update(s->viewer, name, &r, 1, &c, &ch,
					       &nch, &md, &nmd, err);
		} else {
			if (u->flags != 0 || u->keyword_count > 0) {
				c.mode = STORE_FLAGS_ADD;
				c.flags = u->flags;
				c.keywords = u->keywords;
				c.keyword_count = u->keyword_count;
				x = store_flags_update(s->viewer, name, &r, 1,
						       &c, &ch, &nch, &md,
						       &nmd, err);
				free(ch);
				free(md);
				ch = md = NULL;
			}
			if (x == 0 && (u->flags_remove != 0 ||
				       u->keyword_remove_count > 0)) {
				c.mode = STORE_FLAGS_REMOVE;
				c.flags = u->flags_remove;
				c.keywords = u->keywords_remove;
				c.keyword_count = u->keyword_remove_count;
				x = store_flags_update(s->viewer, name, &r, 1,
						       &c, &ch, &nch, &md,
						       &nmd, err);
			}
		}
		free(ch);
		free(md);
		ok = x == 0;
	}
	/* into the new mailboxes (a copy of a seen one), then out */
	for (size_t i = 0; i < nwant && ok && moves; i++) {
		bool have = false;
		for (size_t j = 0; j < n; j++)
			have |= rows[j].mailbox == want[i];
		if (have)
			continue;
		struct store_uid_range r = {rows[0].uid, rows[0].uid};
		uint32_t *su = NULL, *du = NULL;
		size_t cnt = 0;
		ok = store_copy(s->viewer, scope_name(s, rows[0].mailbox), &r,
				1, scope_name(s, want[i]), false, NULL, &su,
				&du, &cnt, err) == 0;
		free(su);
		free(du);
	}
	for (size_t j = 0; j < n && ok && moves; j++) {
		if (u32_in(want, nwant, rows[j].mailbox))
			continue;
		struct store_uid_range r = {rows[j].uid, rows[j].uid};
		uint32_t *gone = NULL;
		size_t ng = 0;
		ok = store_expunge(s->viewer, scope_name(s, rows[j].mailbox),
				   &r, 1, true, &gone, &ng, err) == 0;
		free(gone);
	}
	if (ok) {
		err->kind = STORE_ERR_NONE;
		err->msg[0] = '\0';
	}
	free(want);
	free(rows);
}

/* A destroy on a viewer's handle: every copy it sees goes (t and e on
 * each, checked first); copies in mailboxes it cannot read stay. */
static void op_destroy(const struct jscope *s, struct store_email_op *op)
{
	struct store_error *err = &op->result.err;
	struct store_copy_row *rows;
	size_t n;
	if (copies_load(s, &op->id, 1, &rows, &n, err) < 0)
		return;
	bool ok = n > 0;
	if (!ok)
		store_set_error(err, STORE_ERR_NOTFOUND, "No such Email");
	for (size_t j = 0; j < n && ok; j++)
		ok = op_mailbox(s, rows[j].mailbox,
				STORE_RIGHT_DELETED | STORE_RIGHT_EXPUNGE, err);
	for (size_t j = 0; j < n && ok; j++) {
		struct store_uid_range r = {rows[j].uid, rows[j].uid};
		uint32_t *gone = NULL;
		size_t ng = 0;
		ok = store_expunge(s->viewer, scope_name(s, rows[j].mailbox),
				   &r, 1, true, &gone, &ng, err) == 0;
		free(gone);
	}
	free(rows);
}

/* A create on a viewer's handle: i on every mailbox, flags the viewer
 * may not set dropped; \Seen where it is per user is set afterwards as
 * the viewer's own. Returns whether \Seen is still to set. */
static bool op_create_check(const struct jscope *s, struct store_email_op *op)
{
	unsigned mask = STORE_FLAG_SEEN | STORE_FLAG_ANSWERED |
			STORE_FLAG_FLAGGED | STORE_FLAG_DRAFT |
			STORE_FLAG_DELETED;
	bool keywords = true, pvt = false;
	for (size_t i = 0; i < op->mailbox_count; i++) {
		if (!op_mailbox(s, op->mailboxes[i], STORE_RIGHT_INSERT,
				&op->result.err))
			return false;
		unsigned r = scope_rights(s, op->mailboxes[i]);
		mask &= store_acl_flag_mask(r);
		keywords &= (r & STORE_RIGHT_WRITE) != 0;
		long m = scope_find(s, op->mailboxes[i]);
		pvt |= m >= 0 && s->pvt[m];
	}
	bool seen = (op->params.flags & mask & STORE_FLAG_SEEN) != 0 && pvt;
	op->params.flags &= mask;
	if (seen)
		op->params.flags &= ~(unsigned)STORE_FLAG_SEEN;
	if (!keywords) {
		for (size_t k = 0; k < op->params.keyword_count; k++)
			free((char *)op->params.keywords[k]);
		free((void *)op->params.keywords);
		op->params.keywords = NULL;
		op->params.keyword_count = 0;
	}
	return seen;
}

int store_jshare_tx_commit(struct store_user *viewer,
			   struct store_email_tx *tx, struct store_error *err)
{
	struct jscope s;
	if (scope_load(viewer, &s, err) < 0)
		return -1;
	/* creates go to the backend in one transaction on the owner's
	 * handle; updates and destroys run here, one by one */
	struct store_email_tx sub = {.user = s.owner};
	size_t *map = xcalloc(tx->count + 1, sizeof(*map));
	bool *seen = xcalloc(tx->count + 1, sizeof(bool));
	for (size_t i = 0; i < tx->count; i++) {
		struct store_email_op *op = &tx->ops[i];
		if (op->result.err.kind != STORE_ERR_NONE)
			continue;
		if (op->kind == STORE_EMAIL_OP_UPDATE)
			op_update(&s, op);
		else if (op->kind == STORE_EMAIL_OP_DESTROY)
			op_destroy(&s, op);
		else if (op->result.err.kind == STORE_ERR_NONE) {
			seen[i] = op_create_check(&s, op);
			if (op->result.err.kind == STORE_ERR_NONE)
				map[sub.count++] = i;
		}
	}
	int ret = 0;
	if (sub.count > 0) {
		sub.ops = xcalloc(sub.count, sizeof(*sub.ops));
		for (size_t k = 0; k < sub.count; k++)
			sub.ops[k] = tx->ops[map[k]];
		ret = s.owner->store->vf->email_tx_commit(s.owner, &sub, err);
		for (size_t k = 0; k < sub.count; k++) {
			/* the ops own what they held: hand it back */
			tx->ops[map[k]] = sub.ops[k];
		}
		free(sub.ops);
	}
	/* \Seen asked for in a per-user mailbox: the viewer's own */
	for (size_t k = 0; k < sub.count && ret == 0; k++) {
		struct store_email_op *op = &tx->ops[map[k]];
		if (!seen[map[k]] || op->result.err.kind != STORE_ERR_NONE)
			continue;
		struct store_copy_row *rows;
		size_t n;
		struct store_error e2;
		if (copies_load(&s, &op->result.id, 1, &rows, &n, &e2) < 0)
			continue;
		for (size_t j = 0; j < n; j++) {
			struct store_uid_range r = {rows[j].uid, rows[j].uid};
			struct store_flag_change c = {
				.mode = STORE_FLAGS_ADD,
				.flags = STORE_FLAG_SEEN,
			};
			uint32_t *ch = NULL, *md = NULL;
			size_t nch = 0, nmd = 0;
			store_flags_update(viewer, scope_name(&s, rows[j].mailbox),
					   &r, 1, &c, &ch, &nch, &md, &nmd,
					   &e2);
			free(ch);
			free(md);
		}
		free(rows);
	}
	free(map);
	free(seen);
	scope_free(&s);
	return ret;
}
