/*
 * Views: a session's picture of a selected mailbox, the UIDs it knows in
 * order (sequence number = index + 1). The picture only moves forward in
 * store_view_sync, from the backend's deltas (changes and expunge log
 * since the modseq the view last saw), so the front-end decides when the
 * client may learn of new messages and expunges (RFC 3501 7.4.1, RFC
 * 9051 7.5.1): an expunge that is not allowed yet stays in the view as a
 * ghost until a later sync may report it.
 */
#include "store-private.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

struct store_view {
	struct store_user *user;
	unsigned flags;
	struct store_mailbox_info info;
	uint32_t *uids;
	bool *recent;
	size_t count, cap;
	uint32_t recent_count;
	uint64_t modseq;          /* mailbox HIGHESTMODSEQ at the last sync */
	uint64_t user_modseq;     /* user->last_modseq seen at the last sync */
	uint32_t *ghosts;         /* expunged, not yet reported (sorted) */
	size_t ghost_count;
};

static void view_reserve(struct store_view *v, size_t n)
{
	if (n <= v->cap)
		return;
	size_t cap = v->cap ? v->cap : 64;
	while (cap < n)
		cap *= 2;
	v->uids = xrealloc(v->uids, cap * sizeof(*v->uids));
	v->recent = xrealloc(v->recent, cap * sizeof(*v->recent));
	v->cap = cap;
}

/* Marks uids[from..] recent as the session's \Recent rule says: a
 * read-write view takes the new messages, a read-only one only looks. */
static void view_mark_recent(struct store_view *v, size_t from,
			     uint32_t uidnext)
{
	bool peek = (v->flags & STORE_VIEW_READONLY) != 0;
	uint32_t first = v->user->store->vf->recent_claim(
		v->user, v->info.id, uidnext, peek);
	for (size_t i = from; i < v->count; i++) {
		v->recent[i] = v->uids[i] >= first;
		if (v->recent[i])
			v->recent_count++;
	}
}

int store_view_open(struct store_user *user, const char *mailbox,
		    unsigned flags, struct store_view **view_r,
		    struct store_error *err)
{
	char *name = store_name_normalize(mailbox, err);
	if (name == NULL)
		return -1;
	struct store_view *v = xcalloc(1, sizeof(*v));
	uint32_t *uids;
	size_t count;
	uint64_t seen = atomic_load(&user->last_modseq);
	int ret = user->store->vf->view_load(user, name, 0, &v->info, &uids,
					     &count, err);
	free(name);
	if (ret < 0) {
		free(v);
		return -1;
	}
	store_user_ref(user);
	v->user = user;
	v->flags = flags;
	v->uids = uids;
	v->count = v->cap = count;
	v->recent = xcalloc(count ? count : 1, sizeof(*v->recent));
	v->modseq = v->info.highestmodseq;
	v->user_modseq = seen;
	view_mark_recent(v, 0, v->info.uidnext);
	v->info.recent = v->recent_count;
	*view_r = v;
	return 0;
}

void store_view_close(struct store_view **viewp)
{
	struct store_view *v = *viewp;
	if (v == NULL)
		return;
	*viewp = NULL;
	store_user_unref(&v->user);
	store_mailbox_info_free(&v->info);
	free(v->uids);
	free(v->recent);
	free(v->ghosts);
	free(v);
}

const struct store_mailbox_info *store_view_info(const struct store_view *view)
{
	return &view->info;
}

uint32_t store_view_count(const struct store_view *view)
{
	return (uint32_t)view->count;
}

uint32_t store_view_uid(const struct store_view *view, uint32_t seq)
{
	if (seq == 0 || seq > view->count)
		return 0;
	return view->uids[seq - 1];
}

static size_t lower_bound(const uint32_t *a, size_t n, uint32_t x)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (a[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint32_t store_view_seq(const struct store_view *view, uint32_t uid)
{
	size_t i = lower_bound(view->uids, view->count, uid);
	return i < view->count && view->uids[i] == uid ? (uint32_t)i + 1 : 0;
}

uint32_t store_view_seq_ceil(const struct store_view *view, uint32_t uid)
{
	return (uint32_t)lower_bound(view->uids, view->count, uid) + 1;
}

bool store_view_is_recent(const struct store_view *view, uint32_t seq)
{
	return seq >= 1 && seq <= view->count && view->recent[seq - 1];
}

uint32_t store_view_recent_count(const struct store_view *view)
{
	return view->recent_count;
}

bool store_view_has_changes(struct store_view *view)
{
	return atomic_load(&view->user->last_modseq) != view->user_modseq ||
	       view->ghost_count > 0;
}

/* ---- sync --------------------------------------------------------- */

/* A changed message, copied out of the backend's snapshot so that the
 * callbacks run after expunges have renumbered the view. */
struct changed_msg {
	struct store_msg msg;
	char **keywords;
};
struct delta_ctx {
	struct changed_msg *items;
	size_t count, cap;
};

static void delta_changed(void *ctx, const struct store_msg *msg)
{
	struct delta_ctx *d = ctx;
	if (d->count == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 32;
		d->items = xrealloc(d->items, d->cap * sizeof(*d->items));
	}
	struct changed_msg *c = &d->items[d->count++];
	memset(c, 0, sizeof(*c));
	c->msg.uid = msg->uid;
	c->msg.modseq = msg->modseq;
	c->msg.flags = msg->flags;
	c->msg.size = msg->size;
	c->msg.internaldate = msg->internaldate;
	c->msg.savedate = msg->savedate;
	memcpy(c->msg.emailid, msg->emailid, sizeof(c->msg.emailid));
	memcpy(c->msg.threadid, msg->threadid, sizeof(c->msg.threadid));
	c->keywords = xcalloc(msg->keyword_count + 1, sizeof(char *));
	for (size_t i = 0; i < msg->keyword_count; i++)
		c->keywords[i] = xstrdup(msg->keywords[i]);
	c->msg.keywords = (const char *const *)c->keywords;
	c->msg.keyword_count = msg->keyword_count;
}

static void delta_free(struct delta_ctx *d)
{
	for (size_t i = 0; i < d->count; i++) {
		for (size_t k = 0; k < d->items[i].msg.keyword_count; k++)
			free(d->items[i].keywords[k]);
		free(d->items[i].keywords);
	}
	free(d->items);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Adds the UIDs the view knows among expunged to its ghosts (kept sorted
 * and unique). */
static void view_add_ghosts(struct store_view *v, const uint32_t *expunged,
			    size_t n)
{
	size_t added = 0;
	v->ghosts = xrealloc(v->ghosts, (v->ghost_count + n + 1) * sizeof(uint32_t));
	for (size_t i = 0; i < n; i++) {
		if (store_view_seq(v, expunged[i]) != 0)
			v->ghosts[v->ghost_count + added++] = expunged[i];
	}
	if (added == 0)
		return;
	v->ghost_count += added;
	qsort(v->ghosts, v->ghost_count, sizeof(uint32_t), cmp_u32);
	size_t w = 1;
	for (size_t i = 1; i < v->ghost_count; i++) {
		if (v->ghosts[i] != v->ghosts[w - 1])
			v->ghosts[w++] = v->ghosts[i];
	}
	v->ghost_count = w;
}

/* Removes the ghosts from the view. They are reported highest sequence
 * first, so each number is still right when the client reads it (RFC
 * 3501 7.4.1); the array is compacted once at the end. */
static void view_drop_ghosts(struct store_view *v,
			     const struct store_view_callbacks *cb, void *ctx)
{
	if (v->ghost_count == 0)
		return;
	for (size_t g = v->ghost_count; g > 0; g--) {
		uint32_t seq = store_view_seq(v, v->ghosts[g - 1]);
		if (seq != 0 && cb != NULL && cb->expunged != NULL)
			cb->expunged(ctx, seq, v->ghosts[g - 1]);
	}
	size_t w = 0, g = 0;
	for (size_t i = 0; i < v->count; i++) {
		while (g < v->ghost_count && v->ghosts[g] < v->uids[i])
			g++;
		if (g < v->ghost_count && v->ghosts[g] == v->uids[i]) {
			if (v->recent[i])
				v->recent_count--;
			continue;
		}
		v->uids[w] = v->uids[i];
		v->recent[w++] = v->recent[i];
	}
	v->count = w;
	v->ghost_count = 0;
}

/* When the expunge log no longer reaches back to the view's modseq, the
 * UIDs that disappeared are found by comparing with the full list. */
static int view_diff_all(struct store_view *v, struct store_error *err)
{
	struct store_mailbox_info info;
	uint32_t *uids;
	size_t n;
	if (v->user->store->vf->view_load(v->user, NULL, v->info.id, &info,
					  &uids, &n, err) < 0)
		return -1;
	store_mailbox_info_free(&info);
	uint32_t *gone = xcalloc(v->count ? v->count : 1, sizeof(uint32_t));
	size_t ngone = 0, j = 0;
	for (size_t i = 0; i < v->count; i++) {
		while (j < n && uids[j] < v->uids[i])
			j++;
		if (j == n || uids[j] != v->uids[i])
			gone[ngone++] = v->uids[i];
	}
	view_add_ghosts(v, gone, ngone);
	free(gone);
	free(uids);
	return 0;
}

int store_view_sync(struct store_view *v, bool allow_expunge,
		    const struct store_view_callbacks *cb, void *ctx,
		    struct store_error *err)
{
	struct delta_ctx d = {0};
	struct store_mailbox_info info;
	uint32_t *expunged = NULL;
	size_t nexp = 0;
	bool complete = true;
	uint64_t seen = atomic_load(&v->user->last_modseq);

	/* Always asked (cheap when nothing changed): another process, such
	 * as loftctl, may have changed the mailbox without telling the hub. */
	{
		if (v->user->store->vf->view_delta(
			    v->user, v->info.id, v->modseq, &info, &expunged,
			    &nexp, &complete, delta_changed, &d, err) < 0) {
			delta_free(&d);
			return -1;
		}
		if (nexp > 1)
			qsort(expunged, nexp, sizeof(*expunged), cmp_u32);
		view_add_ghosts(v, expunged, nexp);
		free(expunged);
		if (!complete && view_diff_all(v, err) < 0) {
			store_mailbox_info_free(&info);
			delta_free(&d);
			return -1;
		}
		store_mailbox_info_free(&v->info);
		v->info = info;
		v->modseq = info.highestmodseq;
		v->user_modseq = seen;
	}
	if (allow_expunge)
		view_drop_ghosts(v, cb, ctx);

	/* New messages have UIDs above every UID the view knows. */
	uint32_t last = v->count > 0 ? v->uids[v->count - 1] : 0;
	size_t old_count = v->count;
	for (size_t i = 0; i < d.count; i++) {
		if (d.items[i].msg.uid > last) {
			view_reserve(v, v->count + 1);
			v->uids[v->count++] = d.items[i].msg.uid;
			last = d.items[i].msg.uid;
		}
	}
	if (v->count > old_count) {
		view_mark_recent(v, old_count, v->info.uidnext);
		if (cb != NULL && cb->exists != NULL)
			cb->exists(ctx, (uint32_t)v->count);
	}
	for (size_t i = 0; i < d.count && cb != NULL && cb->changed; i++) {
		uint32_t seq = store_view_seq(v, d.items[i].msg.uid);
		if (seq != 0 && seq <= old_count)
			cb->changed(ctx, seq, &d.items[i].msg);
	}
	delta_free(&d);
	v->info.messages = (uint32_t)v->count;
	v->info.recent = v->recent_count;
	return 0;
}
