/*
 * Views: a session's picture of a selected mailbox, the UIDs it knows in
 * order (sequence number = index + 1). The picture only moves forward in
 * store_view_sync, from the backend's deltas (changes and expunge log
 * since the modseq the view last saw), so the front-end decides when the
 * client may learn of new messages and expunges (RFC 3501 7.4.1, RFC
 * 9051 7.5.1): an expunge that is not allowed yet stays in the view as a
 * ghost until a later sync may report it.
 *
 * Memory: the UIDs a mailbox has at one HIGHESTMODSEQ form an immutable,
 * reference-counted list shared by every view of that mailbox at that
 * state (10,000 sessions on a 100,000-message mailbox hold one list, not
 * 10,000). A view is that list plus what only it has: its ghosts (UIDs
 * expunged that it may not report yet, a sorted handful) and the UID
 * ranges that are \Recent for it. A view that syncs builds the next list
 * from its own, or takes the one another view of the same mailbox built
 * for the same state. A list no view holds any more stays registered,
 * idle, while it is its mailbox's newest and the store-wide budget
 * allows: the next SELECT at that state (sessions come and go, readers of
 * a shared mailbox use the owner's lists) takes it without reading every
 * UID again; the backend's view_open tells the state before reading them.
 */
#include "store-private.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "u32.h"

/* An immutable UID list: the mailbox's UIDs at highestmodseq. Lists with
 * shared set are in the user's registry, where views at the same state
 * find them; a private one (built from a full reload) is not. */
struct store_uidlist {
	struct store_uidlist *next;   /* the user's registry */
	int refs;                     /* under the user's views_mu */
	bool shared;
	uint32_t mailbox_id, uidvalidity;
	uint64_t highestmodseq;
	uint32_t *uids;
	size_t count;
};

_Atomic uint64_t store_uidlists_made;

/* Bytes of UIDs in idle lists, every user together, and their bound. */
#define IDLE_LISTS_MAX ((size_t)32 << 20)
static _Atomic size_t idle_list_bytes;

struct uid_range {
	uint32_t lo, hi;
};

struct store_view {
	struct store_user *user;
	unsigned flags;
	struct store_mailbox_info info;
	struct store_uidlist *list;
	uint32_t *ghosts;         /* expunged, not yet reported (sorted) */
	size_t ghost_count;
	struct uid_range *recent; /* \Recent for this view (sorted) */
	size_t recent_ranges;
	uint32_t recent_count;    /* of the UIDs the view shows */
	uint64_t modseq;          /* mailbox HIGHESTMODSEQ at the last sync */
	/* user->last_modseq as before the last read (seen_before_read);
	 * read by a keepalive on the I/O thread too */
	_Atomic uint64_t user_modseq;
	/* A viewer with its own \Seen (store-seen.c), or 0: the view shows
	 * its \Seen, and modseq is the higher of the common and its own */
	int64_t pvt;
	/* the backend's change stamp before the last sync (0: none); read
	 * by a keepalive on the I/O thread */
	_Atomic uint64_t stamp;
	/* read with the open, kept until a sync reads again (the backend
	 * may not give them: the _set flags) */
	bool open_keywords_set, open_unseen_set;
	char **open_keywords;
	size_t open_keyword_count;
	uint32_t open_first_unseen;
};

static void open_extras_forget(struct store_view *v)
{
	for (size_t i = 0; i < v->open_keyword_count; i++)
		free(v->open_keywords[i]);
	free(v->open_keywords);
	v->open_keywords = NULL;
	v->open_keyword_count = 0;
	v->open_keywords_set = v->open_unseen_set = false;
}

static void want_keywords_free(struct store_view_want *w)
{
	for (size_t i = 0; i < w->keyword_count; i++)
		free(w->keywords[i]);
	free(w->keywords);
	w->keywords = NULL;
	w->keyword_count = 0;
}

static uint64_t change_stamp(struct store_user *user)
{
	const struct store_backend_vfuncs *vf = user->store->vf;
	return vf->change_stamp != NULL ? vf->change_stamp(user) : 0;
}

/* What the view records of last_modseq before it reads: 0 (never
 * equal to it later) while a commit of this process is under way, whose
 * changes the read may or may not see: the next sync reads again. A
 * commit that starts after this look moves last_modseq before it is
 * done, and one done before it is in the read. */
static uint64_t seen_before_read(struct store_user *user)
{
	uint64_t seen = atomic_load(&user->last_modseq);
	return atomic_load(&user->commits_in_flight) == 0 ? seen : 0;
}

bool store_view_maybe_changed(struct store_view *v)
{
	uint64_t now = change_stamp(v->user);
	return now == 0 || now != atomic_load(&v->stamp) ||
	       seen_before_read(v->user) != v->user_modseq;
}

/* ---- shared lists ------------------------------------------------- */

/* Under views_mu: l taken from the registry (a reference added). */
static void list_take(struct store_uidlist *l)
{
	if (l->refs++ == 0)
		atomic_fetch_sub(&idle_list_bytes, l->count * sizeof(uint32_t));
}

/* Under views_mu: the idle lists of mailbox_id unlinked onto *freed. */
static void idle_unlink(struct store_user *user, uint32_t mailbox_id,
			struct store_uidlist **freed)
{
	for (struct store_uidlist **pp = &user->uidlists; *pp != NULL;) {
		struct store_uidlist *l = *pp;
		if (l->refs == 0 && l->mailbox_id == mailbox_id) {
			*pp = l->next;
			atomic_fetch_sub(&idle_list_bytes,
					 l->count * sizeof(uint32_t));
			l->next = *freed;
			*freed = l;
		} else {
			pp = &l->next;
		}
	}
}

static void lists_free(struct store_uidlist *l)
{
	while (l != NULL) {
		struct store_uidlist *next = l->next;
		free(l->uids);
		free(l);
		l = next;
	}
}

/* Takes over uids: a list for (mailbox_id, modseq), or the registered
 * one for that state if another view built it first. */
static struct store_uidlist *list_make(struct store_user *user,
				       uint32_t mailbox_id,
				       uint32_t uidvalidity, uint64_t modseq,
				       uint32_t *uids, size_t count,
				       bool shared)
{
	pthread_mutex_lock(&user->views_mu);
	for (struct store_uidlist *l = user->uidlists; l && shared; l = l->next) {
		if (l->mailbox_id == mailbox_id && l->highestmodseq == modseq &&
		    l->uidvalidity == uidvalidity && l->count == count) {
			list_take(l);
			pthread_mutex_unlock(&user->views_mu);
			free(uids);
			return l;
		}
	}
	struct store_uidlist *l = xcalloc(1, sizeof(*l));
	l->refs = 1;
	l->shared = shared;
	l->mailbox_id = mailbox_id;
	l->uidvalidity = uidvalidity;
	l->highestmodseq = modseq;
	l->uids = uids;
	l->count = count;
	/* a newer state: the idle ones of the mailbox are of no more use */
	struct store_uidlist *old = NULL;
	if (shared) {
		idle_unlink(user, mailbox_id, &old);
		l->next = user->uidlists;
		user->uidlists = l;
	}
	pthread_mutex_unlock(&user->views_mu);
	lists_free(old);
	atomic_fetch_add(&store_uidlists_made, 1);
	return l;
}

/* A registered list for the state, with a reference, or NULL. */
static struct store_uidlist *list_find(struct store_user *user,
				       uint32_t mailbox_id, uint64_t modseq)
{
	pthread_mutex_lock(&user->views_mu);
	struct store_uidlist *l = user->uidlists;
	while (l != NULL &&
	       (l->mailbox_id != mailbox_id || l->highestmodseq != modseq))
		l = l->next;
	if (l != NULL)
		list_take(l);
	pthread_mutex_unlock(&user->views_mu);
	return l;
}

/* Under views_mu: whether the user's registry holds a newer state of
 * l's mailbox than l's. */
static bool list_superseded(const struct store_user *user,
			    const struct store_uidlist *l)
{
	for (const struct store_uidlist *o = user->uidlists; o; o = o->next)
		if (o->mailbox_id == l->mailbox_id &&
		    o->highestmodseq > l->highestmodseq)
			return true;
	return false;
}

static void list_unref(struct store_user *user, struct store_uidlist **lp)
{
	struct store_uidlist *l = *lp;
	*lp = NULL;
	if (l == NULL)
		return;
	pthread_mutex_lock(&user->views_mu);
	bool last = --l->refs == 0;
	if (last && l->shared) {
		size_t bytes = l->count * sizeof(uint32_t);
		bool keep = !list_superseded(user, l);
		if (keep && atomic_fetch_add(&idle_list_bytes, bytes) + bytes >
				    IDLE_LISTS_MAX) {
			atomic_fetch_sub(&idle_list_bytes, bytes);
			keep = false;
		}
		if (keep) {
			last = false;     /* stays registered, idle */
		} else {
			struct store_uidlist **pp = &user->uidlists;
			while (*pp != l)
				pp = &(*pp)->next;
			*pp = l->next;
		}
	}
	pthread_mutex_unlock(&user->views_mu);
	if (last) {
		free(l->uids);
		free(l);
	}
}

void store_view_lists_free(struct store_user *user)
{
	pthread_mutex_lock(&user->views_mu);
	struct store_uidlist *l = user->uidlists;
	user->uidlists = NULL;
	for (struct store_uidlist *o = l; o != NULL; o = o->next)
		if (o->refs == 0)
			atomic_fetch_sub(&idle_list_bytes,
					 o->count * sizeof(uint32_t));
	pthread_mutex_unlock(&user->views_mu);
	lists_free(l);
}

/* view_open's want (store-private.h): the registered list of the state,
 * or else the newest of an older state to build on, taken. */
struct open_want {
	struct store_view_want want;     /* first */
	struct store_user *user;
	struct store_uidlist *list;
	int have;
};

static int open_have(struct store_view_want *want, uint32_t mailbox_id,
		     uint32_t uidvalidity, uint64_t modseq)
{
	struct open_want *o = (struct open_want *)(void *)want;
	struct store_user *user = o->user;
	pthread_mutex_lock(&user->views_mu);
	struct store_uidlist *best = NULL;
	for (struct store_uidlist *l = user->uidlists; l; l = l->next) {
		if (l->mailbox_id == mailbox_id &&
		    l->uidvalidity == uidvalidity &&
		    l->highestmodseq <= modseq &&
		    (best == NULL || l->highestmodseq > best->highestmodseq))
			best = l;
	}
	if (best != NULL)
		list_take(best);
	pthread_mutex_unlock(&user->views_mu);
	o->list = best;
	if (best == NULL)
		o->have = STORE_VIEW_HAVE_NONE;
	else if (best->highestmodseq == modseq)
		o->have = STORE_VIEW_HAVE_ALL;
	else
		o->have = STORE_VIEW_HAVE_BASE;
	want->base_modseq = best != NULL ? best->highestmodseq : 0;
	want->base_last = best != NULL && best->count > 0
				  ? best->uids[best->count - 1]
				  : 0;
	return o->have;
}

/* base's UIDs without gone (sorted), then added (sorted, above them). */
static uint32_t *uids_rebase(const struct store_uidlist *base,
			     const uint32_t *gone, size_t ngone,
			     const uint32_t *added, size_t nadded,
			     size_t *count_r)
{
	uint32_t *uids = xmalloc((base->count + nadded + 1) * sizeof(uint32_t));
	size_t w = 0, g = 0;
	for (size_t i = 0; i < base->count; i++) {
		while (g < ngone && gone[g] < base->uids[i])
			g++;
		if (g < ngone && gone[g] == base->uids[i])
			continue;
		uids[w++] = base->uids[i];
	}
	if (nadded > 0)
		memcpy(uids + w, added, nadded * sizeof(uint32_t));
	*count_r = w + nadded;
	return uids;
}

/* ---- the picture: list + ghosts ----------------------------------- */

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

static bool has(const uint32_t *a, size_t n, uint32_t x)
{
	size_t i = lower_bound(a, n, x);
	return i < n && a[i] == x;
}

static uint32_t last_uid(const struct store_view *v)
{
	uint32_t a = v->list->count ? v->list->uids[v->list->count - 1] : 0;
	uint32_t b = v->ghost_count ? v->ghosts[v->ghost_count - 1] : 0;
	return a > b ? a : b;
}

static bool uid_recent(const struct store_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->recent_ranges;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->recent[mid].hi < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < v->recent_ranges && v->recent[lo].lo <= uid;
}

/* Marks the UIDs of the list from first_new on \Recent as the session's
 * rule says: a read-write view takes the new messages, a read-only one
 * only looks. The ranges are closed, sorted, and merged when adjacent,
 * so a session that stays for days holds a few. */
static void view_mark_recent(struct store_view *v, uint32_t first_new,
			     uint32_t uidnext)
{
	bool peek = (v->flags & STORE_VIEW_READONLY) != 0;
	uint32_t first = v->user->store->vf->recent_claim(
		v->user, v->info.id, uidnext, peek);
	uint32_t lo = first > first_new ? first : first_new;
	const struct store_uidlist *l = v->list;
	size_t from = lower_bound(l->uids, l->count, lo);
	if (from == l->count)
		return;
	uint32_t hi = l->uids[l->count - 1];
	v->recent_count += (uint32_t)(l->count - from);
	struct uid_range *prev = v->recent_ranges
					 ? &v->recent[v->recent_ranges - 1]
					 : NULL;
	if (prev != NULL && prev->hi + 1 >= lo) {
		prev->hi = hi;
		return;
	}
	v->recent = xrealloc(v->recent,
			     (v->recent_ranges + 1) * sizeof(*v->recent));
	v->recent[v->recent_ranges].lo = lo;
	v->recent[v->recent_ranges++].hi = hi;
}

int store_view_open(struct store_user *user, const char *mailbox,
		    unsigned flags, struct store_view **view_r,
		    struct store_error *err)
{
	char *name = store_name_normalize(mailbox, err);
	if (name == NULL)
		return -1;
	/* a viewer (store-acl.c) needs r; the view works on the owner's
	 * handle, and \Recent stays the owner's */
	int64_t pvt = store_seen_pvt(user, name);
	if (store_user_is_shared(user)) {
		if (store_acl_enter(&user, name, STORE_RIGHT_READ, NULL,
				    err) < 0) {
			free(name);
			return -1;
		}
		flags |= STORE_VIEW_READONLY;
	}
	struct store_view *v = xcalloc(1, sizeof(*v));
	uint64_t seen = seen_before_read(user);
	/* before the read: a change after it moves the stamp */
	atomic_store(&v->stamp, change_stamp(user));
	const struct store_backend_vfuncs *vf = user->store->vf;
	/* with view_open: only the UIDs the registered lists lack, and a
	 * viewer's own \Seen state read in the same snapshot */
	struct open_want o = {.want = {.have = open_have}, .user = user};
	int ret = vf->view_open != NULL
		? vf->view_open(user, name, pvt, &o.want, &v->info, err)
		: vf->view_load(user, name, 0, &v->info, &o.want.uids,
				&o.want.count, err);
	free(name);
	if (ret < 0) {
		list_unref(user, &o.list);
		free(o.want.uids);
		free(o.want.gone);
		want_keywords_free(&o.want);
		free(v);
		return -1;
	}
	v->open_keywords_set = o.want.keywords_set;
	v->open_keywords = o.want.keywords;
	v->open_keyword_count = o.want.keyword_count;
	v->open_unseen_set = o.want.first_unseen_set;
	v->open_first_unseen = o.want.first_unseen;
	uint64_t common = vf->view_open != NULL ? o.want.common_modseq
						: v->info.highestmodseq;
	store_user_ref(user);
	v->user = user;
	v->flags = flags;
	if (o.list != NULL && o.have == STORE_VIEW_HAVE_ALL) {
		v->list = o.list;
	} else {
		if (o.list != NULL && o.want.from_base) {
			size_t n;
			uint32_t *uids = uids_rebase(o.list, o.want.gone,
						     o.want.gone_count,
						     o.want.uids, o.want.count,
						     &n);
			free(o.want.uids);
			o.want.uids = uids;
			o.want.count = n;
		}
		list_unref(user, &o.list);
		v->list = list_make(user, v->info.id, v->info.uidvalidity,
				    common, o.want.uids, o.want.count, true);
	}
	free(o.want.gone);
	v->modseq = v->info.highestmodseq;
	v->user_modseq = seen;
	v->pvt = pvt;
	view_mark_recent(v, 0, v->info.uidnext);
	v->info.recent = v->recent_count;
	if (pvt != 0 && vf->view_open == NULL &&
	    store_view_sync(v, true, NULL, NULL, err) < 0) {
		/* from the common state to the viewer's, in one snapshot */
		store_view_close(&v);
		return -1;
	}
	*view_r = v;
	return 0;
}

void store_view_close(struct store_view **viewp)
{
	struct store_view *v = *viewp;
	if (v == NULL)
		return;
	*viewp = NULL;
	list_unref(v->user, &v->list);
	store_user_unref(&v->user);
	store_mailbox_info_free(&v->info);
	open_extras_forget(v);
	free(v->ghosts);
	free(v->recent);
	free(v);
}

const struct store_mailbox_info *store_view_info(const struct store_view *view)
{
	return &view->info;
}

uint32_t store_view_count(const struct store_view *view)
{
	return (uint32_t)(view->list->count + view->ghost_count);
}

uint32_t store_view_uid(const struct store_view *v, uint32_t seq)
{
	if (seq == 0 || seq > store_view_count(v))
		return 0;
	/* the k-th of the list and the ghosts merged: walk the few ghosts */
	size_t k = seq - 1, before = 0;
	const struct store_uidlist *l = v->list;
	for (size_t g = 0; g < v->ghost_count; g++) {
		size_t pos = lower_bound(l->uids, l->count, v->ghosts[g]) + g;
		if (pos == k)
			return v->ghosts[g];
		if (pos > k)
			break;
		before++;
	}
	return l->uids[k - before];
}

uint32_t store_view_seq(const struct store_view *v, uint32_t uid)
{
	const struct store_uidlist *l = v->list;
	size_t i = lower_bound(l->uids, l->count, uid);
	size_t g = lower_bound(v->ghosts, v->ghost_count, uid);
	bool in = (i < l->count && l->uids[i] == uid) ||
		  (g < v->ghost_count && v->ghosts[g] == uid);
	return in ? (uint32_t)(i + g + 1) : 0;
}

uint32_t store_view_seq_ceil(const struct store_view *v, uint32_t uid)
{
	return (uint32_t)(lower_bound(v->list->uids, v->list->count, uid) +
			  lower_bound(v->ghosts, v->ghost_count, uid) + 1);
}

bool store_view_is_recent(const struct store_view *view, uint32_t seq)
{
	uint32_t uid = store_view_uid(view, seq);
	return uid != 0 && uid_recent(view, uid);
}

uint32_t store_view_first_unseen(struct store_view *view,
				 struct store_error *err)
{
	uint32_t uid = 0;
	const struct store_backend_vfuncs *vf = view->user->store->vf;
	if (view->open_unseen_set && view->pvt == 0)
		return view->open_first_unseen != 0
			? store_view_seq(view, view->open_first_unseen) : 0;
	if (view->info.unseen == 0 ||
	    (view->pvt != 0
		     ? vf->seen_first_unseen(view->user, view->info.id,
					     view->pvt, &uid, err)
		     : vf->first_unseen(view->user, view->info.id, &uid,
					err)) < 0 ||
	    uid == 0)
		return 0;
	return store_view_seq(view, uid);
}

bool store_view_take_keywords(struct store_view *view, char ***keywords_r,
			      size_t *count_r)
{
	if (!view->open_keywords_set)
		return false;
	*keywords_r = view->open_keywords;
	*count_r = view->open_keyword_count;
	view->open_keywords = NULL;
	view->open_keyword_count = 0;
	view->open_keywords_set = false;
	return true;
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

/* Adds to the ghosts the UIDs of gone (sorted) that the view's list
 * holds: they stay visible until a sync may report them. */
static void view_add_ghosts(struct store_view *v, const uint32_t *gone,
			    size_t n)
{
	const struct store_uidlist *l = v->list;
	size_t added = 0;
	for (size_t i = 0; i < n; i++) {
		if (!has(l->uids, l->count, gone[i]) ||
		    has(v->ghosts, v->ghost_count, gone[i]))
			continue;
		v->ghosts = xrealloc(v->ghosts, (v->ghost_count + added + 1) *
							sizeof(uint32_t));
		v->ghosts[v->ghost_count + added++] = gone[i];
	}
	v->ghost_count += added;
	if (added > 0)
		qsort(v->ghosts, v->ghost_count, sizeof(uint32_t), u32_cmp);
}

/* The next list: the view's own without gone (sorted), plus the new UIDs
 * of d (above every UID the view knows). */
static uint32_t *list_next(const struct store_view *v, const uint32_t *gone,
			   size_t ngone, const struct delta_ctx *d,
			   size_t *count_r)
{
	const struct store_uidlist *l = v->list;
	uint32_t last = last_uid(v);
	size_t nnew = 0;
	for (size_t i = 0; i < d->count; i++)
		nnew += d->items[i].msg.uid > last;
	uint32_t *uids = xmalloc((l->count + nnew + 1) * sizeof(uint32_t));
	size_t w = 0, g = 0;
	for (size_t i = 0; i < l->count; i++) {
		while (g < ngone && gone[g] < l->uids[i])
			g++;
		if (g < ngone && gone[g] == l->uids[i])
			continue;
		uids[w++] = l->uids[i];
	}
	/* the delta comes in UID order */
	for (size_t i = 0; i < d->count; i++) {
		if (d->items[i].msg.uid > last)
			uids[w++] = d->items[i].msg.uid;
	}
	*count_r = w;
	return uids;
}

/* Reports the ghosts, highest sequence first, so each number is still
 * right when the client reads it (RFC 3501 7.4.1), and forgets them. */
static void view_drop_ghosts(struct store_view *v,
			     const struct store_view_callbacks *cb, void *ctx)
{
	for (size_t g = v->ghost_count; g > 0; g--) {
		uint32_t uid = v->ghosts[g - 1];
		uint32_t seq = store_view_seq(v, uid);
		if (seq != 0 && cb != NULL && cb->expunged != NULL)
			cb->expunged(ctx, seq, uid);
		if (uid_recent(v, uid))
			v->recent_count--;
		v->ghost_count--;
	}
	free(v->ghosts);
	v->ghosts = NULL;
}

/* When the expunge log no longer reaches back to the view's modseq, the
 * whole list is read again: what the view shows and it lacks is gone.
 * The list read becomes the view's own (private: its state is not the
 * delta's). */
static int view_reload(struct store_view *v, struct store_error *err)
{
	struct store_mailbox_info info;
	uint32_t *uids;
	size_t n;
	if (v->user->store->vf->view_load(v->user, NULL, v->info.id, &info,
					  &uids, &n, err) < 0)
		return -1;
	store_mailbox_info_free(&info);
	const struct store_uidlist *l = v->list;
	uint32_t *gone = xcalloc(l->count ? l->count : 1, sizeof(uint32_t));
	size_t ngone = 0;
	for (size_t i = 0; i < l->count; i++) {
		if (!has(uids, n, l->uids[i]))
			gone[ngone++] = l->uids[i];
	}
	view_add_ghosts(v, gone, ngone);
	free(gone);
	/* UIDs above what the view knew arrive through the delta */
	uint32_t last = last_uid(v);
	size_t keep = lower_bound(uids, n, last + 1);
	struct store_uidlist *nl = list_make(v->user, v->info.id,
					     v->info.uidvalidity, 0, uids,
					     keep, false);
	list_unref(v->user, &v->list);
	v->list = nl;
	return 0;
}

/* Nobody, in this process or another, has committed to the account
 * since the view's last read: no in-process commit moved last_modseq
 * and the backend's change stamp, taken before that read as before
 * this one, is the same. The read would find what the view has; a
 * sync after every command (most change nothing) then costs two
 * stat() calls instead of a read transaction. 0: the backend cannot
 * tell, always read. */
static bool view_unchanged(const struct store_view *v, uint64_t seen,
			   uint64_t stamp)
{
	return stamp != 0 && seen != 0 && seen == v->user_modseq &&
	       stamp == atomic_load(&v->stamp);
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
	uint64_t seen = seen_before_read(v->user);
	uint64_t stamp = change_stamp(v->user);
	if (view_unchanged(v, seen, stamp)) {
		if (allow_expunge && v->ghost_count > 0) {
			view_drop_ghosts(v, cb, ctx);
			v->info.messages = store_view_count(v);
			v->info.recent = v->recent_count;
		}
		return 0;
	}
	atomic_store(&v->stamp, stamp);
	open_extras_forget(v);

	/* Asked whenever the stamp moved: another process, such as
	 * loftctl, may have changed the mailbox without telling the hub. */
	const struct store_backend_vfuncs *vf = v->user->store->vf;
	if ((v->pvt != 0
		     ? vf->seen_view_delta(v->user, v->info.id, v->pvt,
					   v->modseq, &info, &expunged, &nexp,
					   &complete, delta_changed, &d, err)
		     : vf->view_delta(v->user, v->info.id, v->modseq, &info,
				      &expunged, &nexp, &complete,
				      delta_changed, &d, err)) < 0) {
		delta_free(&d);
		return -1;
	}
	if (nexp > 1)
		qsort(expunged, nexp, sizeof(*expunged), u32_cmp);
	if (!complete && view_reload(v, err) < 0) {
		store_mailbox_info_free(&info);
		free(expunged);
		delta_free(&d);
		return -1;
	}
	uint32_t last = last_uid(v);
	if (info.highestmodseq != v->modseq || !complete) {
		view_add_ghosts(v, expunged, nexp);
		/* the state's list, from another view or built here */
		struct store_uidlist *nl =
			complete ? list_find(v->user, info.id, info.highestmodseq)
				 : NULL;
		if (nl == NULL) {
			size_t n;
			uint32_t *uids = list_next(v, expunged, nexp, &d, &n);
			nl = list_make(v->user, info.id, info.uidvalidity,
				       info.highestmodseq,
				       uids, n, complete);
		}
		list_unref(v->user, &v->list);
		v->list = nl;
	}
	free(expunged);
	store_mailbox_info_free(&v->info);
	v->info = info;
	v->modseq = info.highestmodseq;
	v->user_modseq = seen;

	/* expunges first: the new messages' numbers follow them */
	if (allow_expunge && v->ghost_count > 0)
		view_drop_ghosts(v, cb, ctx);
	size_t nnew = v->list->count -
		      lower_bound(v->list->uids, v->list->count, last + 1);
	if (nnew > 0) {
		view_mark_recent(v, last + 1, v->info.uidnext);
		if (cb != NULL && cb->exists != NULL)
			cb->exists(ctx, store_view_count(v));
	}
	for (size_t i = 0; i < d.count && cb != NULL && cb->changed; i++) {
		if (d.items[i].msg.uid > last)
			continue;
		uint32_t seq = store_view_seq(v, d.items[i].msg.uid);
		if (seq != 0)
			cb->changed(ctx, seq, &d.items[i].msg);
	}
	delta_free(&d);
	v->info.messages = store_view_count(v);
	v->info.recent = v->recent_count;
	return 0;
}
