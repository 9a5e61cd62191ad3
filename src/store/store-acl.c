/*
 * Shared mailboxes: rights (RFC 4314) and the viewer's handle.
 *
 * A mailbox's ACL lives in its owner's index (the backend's acl_*
 * vfuncs), committed with the mailbox change it belongs to. A front-end
 * that reaches another account's mail opens it with store_user_open_as:
 * the handle it gets carries the viewer (account, groups, domain rule)
 * and every call of store.h made on it comes through store_acl_enter
 * here, which evaluates the viewer's rights on that mailbox from the ACL
 * (store_acl_evaluate, one pure function) and hands the backend the
 * owner's ordinary handle only when the rights are there. So no
 * front-end can forget a check, and every backend inherits them.
 *
 * Existence never leaks (RFC 4314 6): without l, and without the right
 * a call needs, a mailbox fails exactly as a missing one.
 */
#include "store-private.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "u32.h"

const char store_rights_letters[] = "lrswipkxtea";

/* ---- rights strings ------------------------------------------------ */

int store_rights_parse(const char *s, size_t len, unsigned *rights_r)
{
	unsigned r = 0;
	for (size_t i = 0; i < len; i++) {
		const char *p = s[i] != '\0' ? strchr(store_rights_letters, s[i])
					     : NULL;
		if (p != NULL)
			r |= 1u << (p - store_rights_letters);
		else if (s[i] == 'c')   /* RFC 4314 2.1.1, as Dovecot */
			r |= STORE_RIGHT_CREATE;
		else if (s[i] == 'd')
			r |= STORE_RIGHT_DELETE | STORE_RIGHT_DELETED |
			     STORE_RIGHT_EXPUNGE;
		else
			return -1;
	}
	*rights_r = r;
	return 0;
}

void store_rights_format(unsigned rights, char out[16])
{
	size_t n = 0;
	for (unsigned i = 0; store_rights_letters[i] != '\0'; i++) {
		if (rights & (1u << i))
			out[n++] = store_rights_letters[i];
	}
	if (rights & STORE_RIGHT_CREATE)
		out[n++] = 'c';
	if (rights & (STORE_RIGHT_DELETE | STORE_RIGHT_DELETED |
		      STORE_RIGHT_EXPUNGE))
		out[n++] = 'd';
	out[n] = '\0';
}

/* ---- evaluation ---------------------------------------------------- */

static bool in_groups(const struct store_viewer *v, int64_t id)
{
	for (size_t i = 0; i < v->group_count; i++) {
		if (v->groups[i] == id)
			return true;
	}
	return false;
}

/* Whether entry e names the viewer. */
static bool names_viewer(const struct store_acl_entry *e,
			 const struct store_viewer *v)
{
	bool domain_ok = v->same_domain || v->cross_domain;
	switch (e->kind) {
	case STORE_ACL_ANYONE:
		/* mail from outside (no viewer) is "anyone" wherever it
		 * comes from; an account, if its domain may be reached */
		return v->user_id == 0 || domain_ok;
	case STORE_ACL_AUTHENTICATED:
		return v->user_id != 0 && domain_ok;
	case STORE_ACL_USER:
		return v->user_id != 0 && e->id == v->user_id && domain_ok;
	case STORE_ACL_GROUP:
		return v->user_id != 0 && domain_ok && in_groups(v, e->id);
	}
	return false;
}

unsigned store_acl_evaluate(const struct store_acl_entry *entries,
			    size_t count, const struct store_viewer *viewer)
{
	unsigned plus = 0, minus = 0;
	for (size_t i = 0; i < count; i++) {
		if (!names_viewer(&entries[i], viewer))
			continue;
		if (entries[i].negative)
			minus |= entries[i].rights;
		else
			plus |= entries[i].rights;
	}
	/* RFC 4314 2: negative rights are taken from the union */
	return ((plus & ~minus) | viewer->extra_rights) & STORE_RIGHTS_ALL;
}

/* ---- the viewer's handle ------------------------------------------- */

int store_user_open_as(struct store *store, int64_t owner_id,
		       const struct store_viewer *viewer,
		       struct store_user **user_r, struct store_error *err)
{
	if (viewer->user_id == owner_id)
		return store_user_open(store, owner_id, user_r, err);
	struct store_user *owner;
	if (store_user_open_existing(store, owner_id, &owner, err) < 0) {
		if (err != NULL && err->kind == STORE_ERR_NOTFOUND)
			store_set_error(err, STORE_ERR_NOTFOUND,
					"Mailbox doesn't exist");
		return -1;
	}
	struct store_user *u = xcalloc(1, sizeof(*u));
	/* the owner's side: with both backends (store-route.c) the owner's
	 * account may be served from the side the viewer's is not, and
	 * every call through this handle is the owner's backend's */
	u->store = owner->store;
	u->id = owner_id;
	u->refcount = 1;
	u->ready = true;
	u->owner = owner;
	u->viewer = *viewer;
	if (viewer->group_count > 0) {
		int64_t *g = xcalloc(viewer->group_count, sizeof(*g));
		memcpy(g, viewer->groups, viewer->group_count * sizeof(*g));
		u->viewer.groups = g;
	} else {
		u->viewer.groups = NULL;
	}
	pthread_mutex_init(&u->views_mu, NULL);
	*user_r = u;
	return 0;
}

void store_acl_viewer_free(struct store_user *u)
{
	store_user_unref(&u->owner);
	free((int64_t *)u->viewer.groups);
	pthread_mutex_destroy(&u->views_mu);
	free(u);
}

bool store_user_is_shared(const struct store_user *user)
{
	return user->owner != NULL;
}

struct store_user *store_acl_backend_user(struct store_user *user)
{
	return user->owner != NULL ? user->owner : user;
}

/* The viewer's rights on mailbox (normalised), from the owner's ACL.
 * NOTFOUND for a missing mailbox. */
static int viewer_rights(struct store_user *u, const char *mailbox,
			 unsigned *rights_r, struct store_error *err)
{
	struct store_acl_entry *entries = NULL;
	size_t n = 0;
	uint32_t id;
	if (u->store->vf->acl_read(u->owner, mailbox, &id, &entries, &n,
				   err) < 0) {
		if (err != NULL && err->kind == STORE_ERR_NOTFOUND)
			store_set_error(err, STORE_ERR_NOTFOUND,
					STORE_ACL_NOTFOUND, mailbox);
		return -1;
	}
	*rights_r = store_acl_evaluate(entries, n, &u->viewer);
	free(entries);
	return 0;
}

int store_acl_enter(struct store_user **user, const char *mailbox,
		    unsigned need, unsigned *rights_r, struct store_error *err)
{
	struct store_user *u = *user;
	if (u->owner == NULL) {
		if (rights_r != NULL)
			*rights_r = STORE_RIGHTS_ALL;
		return 0;
	}
	unsigned rights;
	if (viewer_rights(u, mailbox, &rights, err) < 0)
		return -1;
	bool ok = need == 0 ? rights != 0 : (rights & need) == need;
	if (!ok) {
		/* RFC 4314 6: without l, as if it did not exist; a right
		 * held without l still works (i alone: a drop box) */
		if (!(rights & STORE_RIGHT_LOOKUP))
			return store_set_error(err, STORE_ERR_NOTFOUND,
					       STORE_ACL_NOTFOUND, mailbox);
		char need_s[16], *p = need_s;
		for (unsigned i = 0; store_rights_letters[i] != '\0'; i++) {
			if ((need & ~rights) & (1u << i))
				*p++ = store_rights_letters[i];
		}
		*p = '\0';
		return store_set_error(err, STORE_ERR_NOPERM,
				       "You lack the right %s on this mailbox",
				       need_s);
	}
	if (rights_r != NULL)
		*rights_r = rights;
	*user = u->owner;
	return 0;
}

int store_acl_owner_only(struct store_user *user, struct store_error *err)
{
	if (user->owner == NULL)
		return 0;
	return store_set_error(err, STORE_ERR_PERM,
			       "Only the owner of this mail may do that");
}

/* ---- the ACL calls ------------------------------------------------- */

static void err_clear(struct store_error *err)
{
	if (err != NULL) {
		err->kind = STORE_ERR_NONE;
		err->msg[0] = '\0';
	}
}

int store_myrights(struct store_user *user, const char *mailbox,
		   unsigned *rights_r, struct store_error *err)
{
	err_clear(err);
	*rights_r = 0;
	char *n = store_name_normalize(mailbox, err);
	if (n == NULL)
		return -1;
	int ret;
	unsigned rights = STORE_RIGHTS_ALL;
	if (user->owner == NULL) {
		uint32_t id;
		struct store_acl_entry *e = NULL;
		size_t count = 0;
		ret = user->store->vf->acl_read(user, n, &id, &e, &count, err);
		free(e);
	} else {
		/* RFC 4314 4: MYRIGHTS needs any of l r i k x a */
		ret = store_acl_enter(&user, n,
				      0, &rights, err);
		const unsigned any = STORE_RIGHT_LOOKUP | STORE_RIGHT_READ |
				     STORE_RIGHT_INSERT | STORE_RIGHT_CREATE |
				     STORE_RIGHT_DELETE | STORE_RIGHT_ADMIN;
		if (ret == 0 && (rights & any) == 0)
			ret = store_set_error(err, STORE_ERR_NOTFOUND,
					      STORE_ACL_NOTFOUND, n);
	}
	free(n);
	if (ret == 0)
		*rights_r = rights;
	return ret;
}

int store_acl_get(struct store_user *user, const char *mailbox,
		  struct store_acl_entry **entries_r, size_t *count_r,
		  struct store_error *err)
{
	err_clear(err);
	*entries_r = NULL;
	*count_r = 0;
	char *n = store_name_normalize(mailbox, err);
	if (n == NULL)
		return -1;
	int ret = store_acl_enter(&user, n, STORE_RIGHT_ADMIN, NULL, err);
	uint32_t id;
	if (ret == 0)
		ret = user->store->vf->acl_read(user, n, &id, entries_r,
						count_r, err);
	free(n);
	return ret;
}

static bool entry_valid(const struct store_acl_entry *e,
			struct store_error *err)
{
	bool needs_id = e->kind == STORE_ACL_USER || e->kind == STORE_ACL_GROUP;
	bool known = e->kind >= STORE_ACL_USER &&
		     e->kind <= STORE_ACL_AUTHENTICATED;
	if (!known || (needs_id ? e->id <= 0 : e->id != 0) ||
	    (e->rights & ~STORE_RIGHTS_ALL) != 0) {
		store_set_error(err, STORE_ERR_INVALID, "Invalid ACL entry");
		return false;
	}
	return true;
}

/* NO [LIMIT] for a new entry on a mailbox with max_entries already;
 * the backends' text. */
static int acl_room(struct store_user *owner, const char *mailbox,
		    const struct store_acl_entry *entry, unsigned max_entries,
		    struct store_error *err)
{
	struct store_acl_entry *e = NULL;
	size_t count = 0;
	uint32_t id;
	if (owner->store->vf->acl_read(owner, mailbox, &id, &e, &count,
				       err) < 0)
		return -1;
	bool exists = false;
	for (size_t i = 0; i < count && !exists; i++)
		exists = e[i].kind == entry->kind && e[i].id == entry->id &&
			 e[i].negative == entry->negative;
	free(e);
	if (!exists && count >= max_entries)
		return store_set_error(err, STORE_ERR_LIMIT, "Too many ACL"
				       " entries on this mailbox (at most %u)",
				       max_entries);
	return 0;
}

static int acl_update(struct store_user *user, const char *mailbox,
		      const struct store_acl_entry *entry, int mode,
		      unsigned max_entries, struct store_error *err)
{
	err_clear(err);
	if (!entry_valid(entry, err))
		return -1;
	char *n = store_name_normalize(mailbox, err);
	if (n == NULL)
		return -1;
	int64_t owner_id = user->id;
	int ret = store_acl_enter(&user, n, STORE_RIGHT_ADMIN, NULL, err);
	/* The reverse index learns of a grant before the owner's commit: a
	 * crash between leaves a stale hint (LIST skips it), never a right
	 * the index does not know of. A new entry past max_entries is
	 * refused first, without a hint (the backend checks again). A
	 * backend that keeps the index in the ACL change's own transaction
	 * needs no hint. */
	struct store *store = user->store;
	bool grant = mode != 2 && !entry->negative && entry->rights != 0;
	if (ret == 0 && grant && max_entries > 0)
		ret = acl_room(user, n, entry, max_entries, err);
	if (ret == 0 && grant && store->set.acl_hint != NULL &&
	    (store->vf->acl_index_kept == NULL ||
	     !store->vf->acl_index_kept(store)) &&
	    store->set.acl_hint(store->set.acl_hint_ctx, owner_id,
				(int)entry->kind, entry->id) < 0)
		ret = store_set_error(err, STORE_ERR_TEMP,
				      "Cannot record the grant now");
	if (ret == 0)
		ret = store->vf->acl_update(user, n, entry, mode, max_entries,
					    err);
	free(n);
	return ret;
}

int store_acl_set(struct store_user *user, const char *mailbox,
		  const struct store_acl_entry *entry, int mode,
		  unsigned max_entries, struct store_error *err)
{
	if (mode < -1 || mode > 1)
		return store_set_error(err, STORE_ERR_INVALID, "Invalid mode");
	return acl_update(user, mailbox, entry, mode, max_entries, err);
}

int store_acl_delete(struct store_user *user, const char *mailbox,
		     enum store_acl_kind kind, int64_t id, bool negative,
		     struct store_error *err)
{
	struct store_acl_entry e = {kind, id, negative, 0};
	return acl_update(user, mailbox, &e, 2, 0, err);
}

int store_acl_all(struct store_user *user, struct store_acl_row **rows_r,
		  size_t *count_r, struct store_error *err)
{
	err_clear(err);
	*rows_r = NULL;
	*count_r = 0;
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	return user->store->vf->acl_all(user, rows_r, count_r, err);
}

void store_acl_all_free(struct store_acl_row *rows, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(rows[i].mailbox);
	free(rows);
}

/* ---- a viewer's list of mailboxes ---------------------------------- */

static int cmp_mailbox_id(const void *a, const void *b)
{
	const struct store_acl_row *x = a, *y = b;
	return x->mailbox_id < y->mailbox_id ? -1 : x->mailbox_id > y->mailbox_id;
}

int store_acl_rights_many(struct store_user *viewer, const uint32_t *ids,
			  size_t count, unsigned *rights_r,
			  struct store_error *err)
{
	struct store_acl_row *rows;
	size_t n;
	if (viewer->store->vf->acl_all(viewer->owner, &rows, &n, err) < 0)
		return -1;
	if (n > 0)
		qsort(rows, n, sizeof(*rows), cmp_mailbox_id);
	for (size_t i = 0; i < count; i++) {
		struct store_acl_row key = {.mailbox_id = ids[i]};
		struct store_acl_row *r = n == 0 ? NULL
					  : bsearch(&key, rows, n, sizeof(*rows),
						    cmp_mailbox_id);
		size_t first = r != NULL ? (size_t)(r - rows) : n;
		while (first > 0 && rows[first - 1].mailbox_id == ids[i])
			first--;
		size_t last = first;
		while (last < n && rows[last].mailbox_id == ids[i])
			last++;
		struct store_acl_entry *e = xcalloc(last - first + 1, sizeof(*e));
		for (size_t j = first; j < last; j++)
			e[j - first] = rows[j].entry;
		rights_r[i] = store_acl_evaluate(e, last - first,
						 &viewer->viewer);
		free(e);
	}
	store_acl_all_free(rows, n);
	return 0;
}

/* Keeps the mailboxes the viewer may see (l), with has_children
 * counting visible children only and nothing of the owner's
 * subscriptions or special use. */
int store_acl_filter_list(struct store_user *viewer,
			  struct store_mailbox_info *list, size_t *count,
			  struct store_error *err)
{
	uint32_t *ids = xcalloc(*count ? *count : 1, sizeof(*ids));
	unsigned *all = xcalloc(*count ? *count : 1, sizeof(*all));
	for (size_t i = 0; i < *count; i++)
		ids[i] = list[i].id;
	int r = store_acl_rights_many(viewer, ids, *count, all, err);
	free(ids);
	if (r < 0) {
		free(all);
		return -1;
	}
	size_t kept = 0;
	for (size_t i = 0; i < *count; i++) {
		unsigned rights = all[i];
		if (!(rights & STORE_RIGHT_LOOKUP)) {
			free(list[i].name);
			continue;
		}
		list[kept] = list[i];
		list[kept].rights = rights;
		list[kept].subscribed = false;
		list[kept].special_use = 0;
		list[kept].has_children = false;
		kept++;
	}
	*count = kept;
	free(all);
	/* a child is "name/..." of a kept one; the list is sorted by name */
	for (size_t i = 0; i < kept; i++) {
		size_t len = strlen(list[i].name);
		for (size_t j = 0; j < kept && !list[i].has_children; j++) {
			if (j != i && strncmp(list[j].name, list[i].name, len) == 0 &&
			    list[j].name[len] == '/')
				list[i].has_children = true;
		}
	}
	return 0;
}

/* ---- checks with more than one mailbox or right -------------------- */

unsigned store_acl_flag_mask(unsigned rights)
{
	unsigned mask = 0;
	if (rights & STORE_RIGHT_SEEN)
		mask |= STORE_FLAG_SEEN;
	if (rights & STORE_RIGHT_DELETED)
		mask |= STORE_FLAG_DELETED;
	if (rights & STORE_RIGHT_WRITE)
		mask |= STORE_FLAG_ANSWERED | STORE_FLAG_FLAGGED |
			STORE_FLAG_DRAFT;
	return mask;
}

/* The rights a change of flags and keywords needs, all of them. */
static unsigned flag_needs(unsigned flags, size_t keyword_count)
{
	unsigned need = 0;
	if (flags & STORE_FLAG_SEEN)
		need |= STORE_RIGHT_SEEN;
	if (flags & STORE_FLAG_DELETED)
		need |= STORE_RIGHT_DELETED;
	if ((flags & ~(STORE_FLAG_SEEN | STORE_FLAG_DELETED)) ||
	    keyword_count > 0)
		need |= STORE_RIGHT_WRITE;
	return need;
}

int store_acl_enter_parent(struct store_user **user, const char *name,
			   struct store_error *err)
{
	struct store_user *u = *user;
	char *p = xstrdup(name);
	int ret = 1;
	/* RFC 4314 4: CREATE needs k on the nearest existing parent */
	for (char *s = strrchr(p, '/'); s != NULL && ret == 1;
	     s = strrchr(p, '/')) {
		*s = '\0';
		uint32_t id;
		struct store_acl_entry *e = NULL;
		size_t n = 0;
		struct store_error e2;
		if (u->store->vf->acl_read(u->owner, p, &id, &e, &n, &e2) == 0)
			ret = store_acl_enter(user, p, STORE_RIGHT_CREATE,
					      NULL, err);
		else if (e2.kind != STORE_ERR_NOTFOUND)
			ret = store_set_error(err, e2.kind, "%s", e2.msg);
		free(e);
	}
	free(p);
	/* at the top of another account's mail: k on its INBOX (a shared
	 * address's folders are its INBOX's children to its viewers) */
	if (ret == 1)
		ret = store_acl_enter(user, "INBOX", STORE_RIGHT_CREATE, NULL,
				      err);
	if (ret == -1 && err != NULL && err->kind == STORE_ERR_NOTFOUND)
		/* a hidden parent: no more than "no" */
		store_set_error(err, STORE_ERR_NOPERM, "Permission denied");
	return ret;
}

int store_acl_enter_rename(struct store_user **user, const char *from,
			   const char *to, struct store_error *err)
{
	struct store_user *viewer = *user;
	if (store_acl_enter_parent(&viewer, to, err) < 0)
		return -1;
	return store_acl_enter(user, from, STORE_RIGHT_DELETE, NULL, err);
}

/* Appends b to a (both malloced arrays) and sorts it without repeats. */
static void uids_merge(uint32_t **a, size_t *an, uint32_t *b, size_t bn)
{
	if (bn == 0) {
		free(b);
		return;
	}
	*a = xrealloc(*a, (*an + bn) * sizeof(uint32_t));
	memcpy(*a + *an, b, bn * sizeof(uint32_t));
	free(b);
	size_t n = *an + bn, k = 0;
	qsort(*a, n, sizeof(uint32_t), u32_cmp);
	for (size_t i = 0; i < n; i++) {
		if (k == 0 || (*a)[k - 1] != (*a)[i])
			(*a)[k++] = (*a)[i];
	}
	*an = k;
}

/* The ranges less the UIDs in skip (sorted). */
static struct store_uid_range *ranges_minus(const struct store_uid_range *r,
					    size_t rn, const uint32_t *skip,
					    size_t sn, size_t *count_r)
{
	size_t cap = rn + sn + 1, n = 0, k = 0;
	struct store_uid_range *out = xcalloc(cap, sizeof(*out));
	for (size_t i = 0; i < rn; i++) {
		uint32_t lo = r[i].lo;
		while (k < sn && skip[k] < lo)
			k++;
		while (k < sn && skip[k] <= r[i].hi) {
			if (skip[k] > lo)
				out[n++] = (struct store_uid_range){lo, skip[k] - 1};
			lo = skip[k] + 1;
			k++;
			if (lo == 0)
				break;
		}
		if (lo != 0 && lo <= r[i].hi)
			out[n++] = (struct store_uid_range){lo, r[i].hi};
	}
	*count_r = n;
	return out;
}

/* STORE by a viewer (RFC 4314 4): \Seen needs s, \Deleted t, the other
 * flags and keywords w. The permitted part of a change is made, the
 * rest left as it is; a change with nothing permitted is NOPERM (or
 * NOTFOUND without l) and changes nothing. A replacement keeps the flags
 * the viewer may not change: it becomes an addition and a removal. */
static int flags_common(struct store_user *owner, unsigned rights,
			const char *mailbox,
			const struct store_uid_range *ranges, size_t range_count,
			const struct store_flag_change *change,
			uint32_t **changed_r, size_t *changed_count_r,
			uint32_t **modified_r, size_t *modified_count_r,
			struct store_error *err);
static int flags_own_seen(struct store_user *owner, unsigned rights,
			  int64_t pvt, const char *mailbox,
			  const struct store_uid_range *ranges,
			  size_t range_count,
			  const struct store_flag_change *change,
			  uint32_t **changed_r, size_t *changed_count_r,
			  uint32_t **modified_r, size_t *modified_count_r,
			  struct store_error *err);

int store_acl_flags_update(struct store_user *viewer, const char *mailbox,
			   const struct store_uid_range *ranges,
			   size_t range_count,
			   const struct store_flag_change *change,
			   uint32_t **changed_r, size_t *changed_count_r,
			   uint32_t **modified_r, size_t *modified_count_r,
			   struct store_error *err)
{
	struct store_user *owner = viewer;
	unsigned rights = 0;
	if (store_acl_enter(&owner, mailbox, 0, &rights, err) < 0)
		return -1;
	bool replace = change->mode == STORE_FLAGS_REPLACE;
	unsigned touched = replace ? (STORE_FLAG_SEEN | STORE_FLAG_ANSWERED |
				      STORE_FLAG_FLAGGED | STORE_FLAG_DELETED |
				      STORE_FLAG_DRAFT) : change->flags;
	unsigned need_all = flag_needs(touched,
				       replace ? 1 : change->keyword_count);
	if (need_all != 0 && (rights & need_all) == 0) {
		/* nothing permitted: the error store_acl_enter gives */
		struct store_user *tmp = viewer;
		return store_acl_enter(&tmp, mailbox, need_all, NULL, err);
	}
	int64_t pvt = store_seen_pvt(viewer, mailbox);
	if (pvt != 0 && (touched & STORE_FLAG_SEEN))
		return flags_own_seen(owner, rights, pvt, mailbox, ranges,
				      range_count, change, changed_r,
				      changed_count_r, modified_r,
				      modified_count_r, err);
	return flags_common(owner, rights, mailbox, ranges, range_count,
			    change, changed_r, changed_count_r, modified_r,
			    modified_count_r, err);
}

/* The viewer's own \Seen changed apart (store-seen.c), the other flags
 * in the common part as permitted; messages a condition kept out of the
 * first stay out of the second. */
static int flags_own_seen(struct store_user *owner, unsigned rights,
			  int64_t pvt, const char *mailbox,
			  const struct store_uid_range *ranges,
			  size_t range_count,
			  const struct store_flag_change *change,
			  uint32_t **changed_r, size_t *changed_count_r,
			  uint32_t **modified_r, size_t *modified_count_r,
			  struct store_error *err)
{
	bool replace = change->mode == STORE_FLAGS_REPLACE;
	struct store_seen_change sc = {0};
	if ((rights & STORE_RIGHT_SEEN) &&
	    (replace || (change->flags & STORE_FLAG_SEEN))) {
		sc.seen = replace ? (change->flags & STORE_FLAG_SEEN) != 0
				  : change->mode == STORE_FLAGS_ADD;
		sc.unchangedsince = change->unchangedsince;
		if (store_seen_update(owner, pvt, mailbox, ranges, range_count,
				      &sc, err) < 0)
			return -1;
	}
	/* the rest, without \Seen, if any of it is permitted */
	unsigned crights = rights & ~(unsigned)STORE_RIGHT_SEEN;
	struct store_flag_change c = *change;
	c.flags &= ~(unsigned)STORE_FLAG_SEEN;
	c.modseq_r = NULL;
	unsigned cneed = replace ? STORE_RIGHT_DELETED | STORE_RIGHT_WRITE
				 : flag_needs(c.flags, c.keyword_count);
	uint32_t *ch = NULL, *mod = NULL;
	size_t chn = 0, modn = 0;
	uint64_t cmodseq = 0;
	int ret = 0;
	if ((cneed & crights) != 0) {
		c.modseq_r = &cmodseq;
		size_t rn = range_count;
		struct store_uid_range all = {1, UINT32_MAX};
		struct store_uid_range *r = NULL;
		const struct store_uid_range *use = ranges;
		if (sc.modified_count > 0) {
			r = ranges_minus(ranges != NULL ? ranges : &all,
					 ranges != NULL ? range_count : 1,
					 sc.modified, sc.modified_count, &rn);
			use = r;
		}
		if (use == NULL || rn > 0)
			ret = flags_common(owner, crights, mailbox, use, rn, &c,
					   &ch, &chn, &mod, &modn, err);
		free(r);
	}
	if (ret == 0) {
		uids_merge(&sc.changed, &sc.changed_count, ch, chn);
		uids_merge(&sc.modified, &sc.modified_count, mod, modn);
		ch = mod = NULL;
		if (change->modseq_r != NULL)
			*change->modseq_r = sc.modseq > cmodseq ? sc.modseq
								: cmodseq;
		if (changed_r != NULL) {
			*changed_r = sc.changed;
			*changed_count_r = sc.changed_count;
			sc.changed = NULL;
		}
		if (modified_r != NULL) {
			*modified_r = sc.modified;
			*modified_count_r = sc.modified_count;
			sc.modified = NULL;
		}
	}
	free(ch);
	free(mod);
	free(sc.changed);
	free(sc.modified);
	return ret;
}

static int flags_common(struct store_user *owner, unsigned rights,
			const char *mailbox,
			const struct store_uid_range *ranges, size_t range_count,
			const struct store_flag_change *change,
			uint32_t **changed_r, size_t *changed_count_r,
			uint32_t **modified_r, size_t *modified_count_r,
			struct store_error *err)
{
	unsigned mask = store_acl_flag_mask(rights);
	bool kw_ok = (rights & STORE_RIGHT_WRITE) != 0;
	unsigned asked = change->flags;
	size_t kw_asked = change->keyword_count;
	bool replace = change->mode == STORE_FLAGS_REPLACE;
	/* what the change touches: a replacement touches every flag */
	unsigned touched = replace ? (STORE_FLAG_SEEN | STORE_FLAG_ANSWERED |
				      STORE_FLAG_FLAGGED | STORE_FLAG_DELETED |
				      STORE_FLAG_DRAFT) : asked;
	unsigned need_all = flag_needs(touched, replace ? 1 : kw_asked);
	const struct store_backend_vfuncs *vf = owner->store->vf;
	if ((rights & need_all) == need_all)
		return vf->flags_update(owner, mailbox, ranges, range_count,
					change, changed_r, changed_count_r,
					modified_r, modified_count_r, err);
	/* part of it is permitted */
	struct store_flag_change c = *change;
	if (!replace) {
		c.flags = asked & mask;
		if (!kw_ok)
			c.keyword_count = 0;
		return vf->flags_update(owner, mailbox, ranges, range_count,
					&c, changed_r, changed_count_r,
					modified_r, modified_count_r, err);
	}
	/* replace: add what is asked and permitted, then remove the
	 * permitted flags not asked and (with w) every other keyword */
	char **kw_all = NULL;
	size_t kw_all_n = 0;
	if (kw_ok && vf->mailbox_keywords(owner, mailbox, &kw_all, &kw_all_n,
					  err) < 0)
		return -1;
	c.mode = STORE_FLAGS_ADD;
	c.flags = asked & mask;
	if (!kw_ok)
		c.keyword_count = 0;
	uint32_t *ch1 = NULL, *mod1 = NULL;
	size_t ch1n = 0, mod1n = 0;
	int ret = vf->flags_update(owner, mailbox, ranges, range_count, &c,
				   &ch1, &ch1n, &mod1, &mod1n, err);
	if (ret == 0) {
		const char **rm = xcalloc(kw_all_n + 1, sizeof(*rm));
		size_t rmn = 0;
		for (size_t i = 0; i < kw_all_n; i++) {
			bool keep = false;
			for (size_t j = 0; j < kw_asked && !keep; j++)
				keep = strcasecmp(kw_all[i], change->keywords[j]) == 0;
			if (!keep)
				rm[rmn++] = kw_all[i];
		}
		/* the messages a condition kept out stay out */
		size_t rn;
		struct store_uid_range all = {1, UINT32_MAX};
		struct store_uid_range *r = ranges_minus(
			ranges != NULL ? ranges : &all,
			ranges != NULL ? range_count : 1, mod1, mod1n, &rn);
		struct store_flag_change c2 = {
			.mode = STORE_FLAGS_REMOVE,
			.flags = mask & ~asked,
			.keywords = rm,
			.keyword_count = rmn,
			.modseq_r = change->modseq_r,
		};
		uint32_t *ch2 = NULL;
		size_t ch2n = 0;
		if (rn > 0)
			ret = vf->flags_update(owner, mailbox, r, rn, &c2, &ch2,
					       &ch2n, NULL, NULL, err);
		uids_merge(&ch1, &ch1n, ch2, ch2n);
		free(r);
		free(rm);
	}
	store_names_free(kw_all, kw_all_n);
	if (ret == 0 && changed_r != NULL) {
		*changed_r = ch1;
		*changed_count_r = ch1n;
		ch1 = NULL;
	}
	if (ret == 0 && modified_r != NULL) {
		*modified_r = mod1;
		*modified_count_r = mod1n;
		mod1 = NULL;
	}
	free(ch1);
	free(mod1);
	return ret;
}

int store_viewer_rights(struct store_user *user, const char *mailbox,
			unsigned *rights_r, struct store_error *err)
{
	err_clear(err);
	*rights_r = 0;
	char *n = store_name_normalize(mailbox, err);
	if (n == NULL)
		return -1;
	int ret = 0;
	if (user->owner == NULL)
		*rights_r = STORE_RIGHTS_ALL;
	else
		ret = viewer_rights(user, n, rights_r, err);
	free(n);
	return ret;
}

void store_acl_inherit_inbox(struct store_user *owner, const char *name)
{
	struct store_acl_entry *e = NULL;
	size_t n = 0;
	uint32_t id;
	struct store_error err;
	if (owner->store->vf->acl_read(owner, "INBOX", &id, &e, &n, &err) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		if (owner->store->vf->acl_update(owner, name, &e[i], 0, 0,
						 &err) < 0)
			log_warn("store", NULL, "ACL of %s not copied: %s", name,
				 err.msg);
	}
	free(e);
}
