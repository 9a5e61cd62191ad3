/*
 * The store front door: opens the backend, shares one handle per user
 * between threads, checks arguments, and runs the change hub that tells
 * sessions about commits. Everything that touches disk is in the backend
 * (store-private.h); views are in store-view.c.
 */
#include "store-private.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

int store_set_error(struct store_error *err, enum store_error_kind kind,
		    const char *fmt, ...)
{
	if (err != NULL) {
		va_list ap;
		err->kind = kind;
		err->full = false;
		err->damaged = false;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return -1;
}

int store_set_full(struct store_error *err)
{
	store_set_error(err, STORE_ERR_TEMP, "Disk full, try again later");
	if (err != NULL)
		err->full = true;
	return -1;
}

struct store_uid_range *store_uid_ranges(const uint32_t *uids, size_t n,
					 size_t *count_r)
{
	struct store_uid_range *r = xcalloc(n ? n : 1, sizeof(*r));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (k > 0 && r[k - 1].hi + 1 == uids[i])
			r[k - 1].hi = uids[i];
		else
			r[k++] = (struct store_uid_range){uids[i], uids[i]};
	}
	*count_r = k;
	return r;
}

static void err_clear(struct store_error *err)
{
	if (err != NULL) {
		err->kind = STORE_ERR_NONE;
		err->msg[0] = '\0';
	}
}

unsigned store_user_shard(int64_t user_id)
{
	return (unsigned)((uint64_t)user_id % 256);
}

/* ---- mailbox names ------------------------------------------------ */

static bool utf8_valid(const unsigned char *s)
{
	while (*s != '\0') {
		unsigned c = *s, n;
		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3;
		else
			return false;
		uint32_t cp = c & (0x3f >> n);
		for (unsigned i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		s += n + 1;
	}
	return true;
}

char *store_name_normalize(const char *name, struct store_error *err)
{
	size_t len = name != NULL ? strlen(name) : 0;
	if (len == 0 || len > 1000) {
		store_set_error(err, STORE_ERR_INVALID, "Invalid mailbox name");
		return NULL;
	}
	if (name[0] == '/' || name[len - 1] == '/' ||
	    strstr(name, "//") != NULL) {
		store_set_error(err, STORE_ERR_INVALID,
				"Invalid mailbox name: empty hierarchy level");
		return NULL;
	}
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		/* '*' and '%' are LIST wildcards (RFC 3501 6.3.8): a
		 * mailbox called so could never be listed on its own. */
		if (*p < 0x20 || *p == 0x7f || *p == '*' || *p == '%') {
			store_set_error(err, STORE_ERR_INVALID,
					"Invalid character in mailbox name");
			return NULL;
		}
	}
	if (!utf8_valid((const unsigned char *)name)) {
		store_set_error(err, STORE_ERR_INVALID,
				"Mailbox name is not valid UTF-8");
		return NULL;
	}
	char *r = xstrdup(name);
	/* INBOX is case-insensitive (RFC 3501 5.1), also as a parent. */
	if (strncasecmp(r, "INBOX", 5) == 0 && (r[5] == '\0' || r[5] == '/'))
		memcpy(r, "INBOX", 5);
	return r;
}

/* ---- the store ---------------------------------------------------- */

static struct store_user *user_new(struct store *store, int64_t user_id)
{
	struct store_user *u = xcalloc(1, sizeof(*u));
	u->store = store;
	u->id = user_id;
	u->refcount = 1;
	pthread_mutex_init(&u->views_mu, NULL);
	return u;
}

static void user_free(struct store_user *u)
{
	store_view_lists_free(u);
	pthread_mutex_destroy(&u->views_mu);
	free(u);
}


struct store_hub_entry;
struct store_subscription {
	struct store *store;
	int64_t user_id;
	store_change_fn *cb;
	void *ctx;
	bool watch;               /* store_watch: not a session of user_id */
	struct store_subscription *next, **pprev;
};

#define HUB_BUCKETS 1024
struct store_hub {
	/* Publishing takes the read lock: unsubscribe (write lock) returns
	 * only when no callback of that subscription is running. */
	pthread_rwlock_t lock;
	struct store_subscription *buckets[HUB_BUCKETS];
};

/* How many handles nobody holds stay open: the handles of the accounts
 * mail went to recently, so that the next delivery to each finds its
 * index open. Reopening one parses the index's schema again in each
 * connection it opens (the writer, and a reader for the Sieve lookup):
 * with 1,000 accounts taking mail in turn and 625 kept, 64 % of the
 * copies reopened their account and the parse and its undoing were 57 %
 * of the mail process's CPU (perf, bench/scaleout.py's growth fill);
 * delivery ran at a tenth of its rate over 200 accounts.
 *
 * The bound follows the descriptor limit. A handle delivered to holds 5
 * (its writer's and a pooled reader's index and WAL, and its directory:
 * 1,042 in the mail process with 200 such handles, 42 with none), one
 * (the directory) once the idle trim has closed its connections, more
 * only while an account is busy with several readers. A tenth of the
 * limit in handles, each at that use, leaves half of it to sessions: a
 * 1,024 limit keeps 102, the 20,000 a service gets 2,000 (at most
 * 4,096). Memory stays bounded apart from this:
 * SQLite's page caches by its soft heap limit (sq-db.c), and a handle
 * idle for SQ_IDLE_AFTER_S gives back its connections (sq-idle.c). */
#define IDLE_HANDLES_FD_SHARE 10
#define IDLE_HANDLES_MIN 64
#define IDLE_HANDLES_CAP 4096

static size_t idle_handles_max(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return IDLE_HANDLES_MIN;
	if (rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur / IDLE_HANDLES_FD_SHARE >= IDLE_HANDLES_CAP)
		return IDLE_HANDLES_CAP;
	size_t n = (size_t)(rl.rlim_cur / IDLE_HANDLES_FD_SHARE);
	return n > IDLE_HANDLES_MIN ? n : IDLE_HANDLES_MIN;
}

static void finishers_drain(void);

int store_open(const struct store_settings *set, struct store **store_r,
	       struct store_error *err)
{
	err_clear(err);
	if (set->data_dir == NULL || set->data_dir[0] == '\0')
		return store_set_error(err, STORE_ERR_INVALID,
				       "data_dir is not set");
	struct store *store = xcalloc(1, sizeof(*store));
	store->set = *set;
	store->set.data_dir = xstrdup(set->data_dir);
	store->vf = set->backend == STORE_BACKEND_POSTGRES
			    ? &store_postgres_vfuncs : &store_sqlite_vfuncs;
	pthread_mutex_init(&store->users_mu, NULL);
	pthread_cond_init(&store->users_cond, NULL);
	store->users_size = 256;
	store->idle_max = idle_handles_max();
	store->users = xcalloc(store->users_size, sizeof(*store->users));
	store->hub = xcalloc(1, sizeof(*store->hub));
	pthread_rwlock_init(&store->hub->lock, NULL);
	if (store->vf->open(store, err) < 0 ||
	    (store_route_open(store, err) < 0 && (store->vf->stop(store),
						  store->vf->close(store), 1))) {
		pthread_cond_destroy(&store->users_cond);
		pthread_mutex_destroy(&store->users_mu);
		pthread_rwlock_destroy(&store->hub->lock);
		free(store->hub);
		free(store->users);
		free((char *)store->set.data_dir);
		free(store);
		return -1;
	}
	*store_r = store;
	return 0;
}

void store_start_background(struct store *store)
{
	store->vf->start_background(store);
	if (store->pg != NULL)
		store->pg->vf->start_background(store->pg);
}

void store_close(struct store **storep)
{
	struct store *store = *storep;
	if (store == NULL)
		return;
	*storep = NULL;
	finishers_drain();
	store_retention_stop(store);
	if (store->pg != NULL) {
		/* the pg side shares the hub: it must not free it */
		struct store *pg = store->pg;
		store->pg = NULL;
		pg->hub = NULL;
		store_close(&pg);
	}
	store->vf->stop(store);
	for (size_t i = 0; i < store->users_size; i++) {
		for (struct store_user *u = store->users[i], *next; u; u = next) {
			next = u->next;
			if (u->refcount > 0) {
				log_warn("store", NULL, "closing the store with"
					 " user %lld still open", (long long)u->id);
				continue;
			}
			store->vf->user_close(u);
			user_free(u);
		}
	}
	store->vf->close(store);
	if (store->hub != NULL) {
		pthread_rwlock_destroy(&store->hub->lock);
		free(store->hub);
	}
	free(store->users);
	pthread_mutex_destroy(&store->users_mu);
	pthread_cond_destroy(&store->users_cond);
	free((char *)store->set.data_dir);
	free(store);
}

/* ---- users -------------------------------------------------------- */

static int user_open(struct store *store, int64_t user_id, bool create,
		     struct store_user **user_r, struct store_error *err);

int store_user_open(struct store *store, int64_t user_id,
		    struct store_user **user_r, struct store_error *err)
{
	return user_open(store, user_id, true, user_r, err);
}

int store_user_open_existing(struct store *store, int64_t user_id,
			     struct store_user **user_r,
			     struct store_error *err)
{
	return user_open(store, user_id, false, user_r, err);
}

static int user_open_one(struct store *store, int64_t user_id, bool create,
			 bool served, struct store_user **user_r,
			 struct store_error *err);
static void user_unref_close(struct store_user *user);

/* A ready handle of user_id in store's table, referenced; NULL if none
 * (or one being opened or closed: the slow path waits for it). */
static struct store_user *user_find(struct store *store, int64_t user_id)
{
	size_t b = (uint64_t)user_id % store->users_size;
	pthread_mutex_lock(&store->users_mu);
	struct store_user *u;
	for (u = store->users[b]; u != NULL; u = u->next) {
		if (u->id != user_id)
			continue;
		if (!u->ready)
			u = NULL;
		else if (u->refcount++ == 0)
			store->idle_count--;
		break;
	}
	pthread_mutex_unlock(&store->users_mu);
	return u;
}

/* With both backends: the account is opened where its row says, unless
 * it is locked for a move (checked again once open: a move that began
 * meanwhile gets the handle back, closed). */
static int user_open(struct store *store, int64_t user_id, bool create,
		     struct store_user **user_r, struct store_error *err)
{
	if (store->pg == NULL)
		return user_open_one(store, user_id, create, false, user_r,
				     err);
	err_clear(err);
	if (user_id <= 0)
		return store_set_error(err, STORE_ERR_INVALID,
				       "Invalid user id");
	struct store_user *u = NULL;
	if (store_route_locked(store, user_id))
		return store_set_error(err, STORE_ERR_UNAVAILABLE,
				       "The account is being moved; try "
				       "again in a few seconds");
	/* The row is read on every open, not only for a handle not yet
	 * open: the other side may hold an idle handle of the account that
	 * its own threads opened (the sqlite indexer, the orphan sweep)
	 * after a move, and that one must never serve it. */
	struct store *where;
	for (int tries = 0;; tries++) {
		if (store_route(store, user_id, false, &where, err) < 0)
			return -1;
		if ((u = user_find(where, user_id)) != NULL ||
		    user_open_one(where, user_id, create, true, &u, err) == 0)
			break;
		/* a move flipped the row between the two reads: the side
		 * it names now */
		struct store *now;
		struct store_error e;
		if (tries >= 2 || err->kind != STORE_ERR_NOTFOUND ||
		    store_route(store, user_id, false, &now, &e) < 0 ||
		    now == where)
			return -1;
	}
	if (store_route_locked(store, user_id)) {
		user_unref_close(u);
		return store_set_error(err, STORE_ERR_UNAVAILABLE,
				       "The account is being moved; try "
				       "again in a few seconds");
	}
	*user_r = u;
	return 0;
}

int store_user_open_backend(struct store *store, int64_t user_id,
			    bool create, struct store_user **user_r,
			    struct store_error *err)
{
	return user_open_one(store, user_id, create, false, user_r, err);
}

int store_user_open_served(struct store *store, int64_t user_id,
			   struct store_user **user_r, struct store_error *err)
{
	return user_open_one(store, user_id, false, true, user_r, err);
}

/* With both backends: whether side (the front or its pg side) serves
 * user_id now, its row naming side and no move holding it; 0 if so,
 * else -1 with UNAVAILABLE (being moved) or NOTFOUND (served from the
 * other side: nothing of the account here is this process's to open;
 * loftctl migrate-store may be making or removing it). */
static int served_from(struct store *side, int64_t user_id,
		       struct store_error *err)
{
	struct store *front = side->front != NULL ? side->front : side;
	if (front->pg == NULL)
		return 0;
	struct store *where;
	if (store_route(front, user_id, true, &where, err) < 0)
		return -1;
	if (where != side)
		return store_set_error(err, STORE_ERR_NOTFOUND, "The account "
				       "is served from the other backend");
	return 0;
}

static int user_open_one(struct store *store, int64_t user_id, bool create,
			 bool served, struct store_user **user_r,
			 struct store_error *err)
{
	err_clear(err);
	if (user_id <= 0)
		return store_set_error(err, STORE_ERR_INVALID,
				       "Invalid user id");
	size_t b = (uint64_t)user_id % store->users_size;
	pthread_mutex_lock(&store->users_mu);
	struct store_user *u;
again:
	for (u = store->users[b]; u != NULL; u = u->next) {
		if (u->id != user_id)
			continue;
		if (!u->ready) {
			/* another thread is opening it: wait, then look
			 * again (it is gone if that open failed) */
			pthread_cond_wait(&store->users_cond, &store->users_mu);
			goto again;
		}
		if (u->refcount++ == 0)
			store->idle_count--;
		pthread_mutex_unlock(&store->users_mu);
		*user_r = u;
		return 0;
	}
	if (!create && !store->vf->user_exists(store, user_id)) {
		pthread_mutex_unlock(&store->users_mu);
		return store_set_error(err, STORE_ERR_NOTFOUND,
				       "No mail stored for this user");
	}
	/* A placeholder keeps two threads from creating the same account
	 * at once and a delete from racing the open (it sees the account
	 * in use); the open itself (an index to create, fsyncs) runs
	 * without the lock, so no other account waits for it. */
	u = user_new(store, user_id);
	u->next = store->users[b];
	store->users[b] = u;
	pthread_mutex_unlock(&store->users_mu);

	/* Asked with the placeholder in the table: a move's quiesce that
	 * missed it has taken the lock before this looks (and one that
	 * sees it waits for it), so no file a mover makes or removes is
	 * opened under it: the other side's files, and this side's once
	 * the row has flipped away (SQLITE_IOERR_FSTAT, "pragmas: disk
	 * I/O error", on an index.db removed mid-open). */
	int r = served ? served_from(store, user_id, err) : 0;
	if (r == 0)
		r = store->vf->user_open(u, err);

	pthread_mutex_lock(&store->users_mu);
	if (r < 0) {
		struct store_user **pp = &store->users[b];
		while (*pp != u)
			pp = &(*pp)->next;
		*pp = u->next;
		user_free(u);
		u = NULL;
	} else {
		u->ready = true;
	}
	pthread_cond_broadcast(&store->users_cond);
	pthread_mutex_unlock(&store->users_mu);
	if (u == NULL)
		return -1;
	*user_r = u;
	return 0;
}

void store_user_ref(struct store_user *user)
{
	pthread_mutex_lock(&user->store->users_mu);
	user->refcount++;
	pthread_mutex_unlock(&user->store->users_mu);
}

/* Closing an idle handle (its connections, a WAL checkpoint with its
 * fsyncs) must not hold users_mu: every open of every account takes it.
 * Under the lock the handle is only marked closing (ready = false, so an
 * open of the same account waits, as for one being opened, and
 * store_users_foreach skips it); the caller closes it after unlocking
 * (evict_finish) and takes it out of the table. */
static struct store_user *evict_begin(struct store *store,
				      struct store_user *user)
{
	user->ready = false;
	store->idle_count--;
	return user;
}

static void evict_finish(struct store *store, struct store_user *user)
{
	if (user == NULL)
		return;
	store->vf->user_close(user);
	pthread_mutex_lock(&store->users_mu);
	size_t b = (uint64_t)user->id % store->users_size;
	struct store_user **pp = &store->users[b];
	while (*pp != user)
		pp = &(*pp)->next;
	*pp = user->next;
	pthread_cond_broadcast(&store->users_cond);
	pthread_mutex_unlock(&store->users_mu);
	user_free(user);
}

/* Under users_mu: the least recently used idle handle, marked closing
 * (NULL when there is none); evict_finish it after unlocking. */
static struct store_user *evict_oldest_idle(struct store *store)
{
	struct store_user *oldest = NULL;
	for (size_t i = 0; i < store->users_size; i++) {
		for (struct store_user *u = store->users[i]; u; u = u->next) {
			if (u->refcount == 0 && u->ready &&
			    (oldest == NULL || u->last_use < oldest->last_use))
				oldest = u;
		}
	}
	return oldest != NULL ? evict_begin(store, oldest) : NULL;
}

/* The last reference closes the handle at once (a move's lock). */
static void user_unref_close(struct store_user *user)
{
	struct store *store = user->store;
	pthread_mutex_lock(&store->users_mu);
	struct store_user *evicted = NULL;
	if (--user->refcount == 0) {
		user->last_use = ++store->use_clock;
		store->idle_count++;
		evicted = evict_begin(store, user);
	}
	pthread_mutex_unlock(&store->users_mu);
	evict_finish(store, evicted);
}

/* store_move_quiesce: closes user_id's idle handle in store; how many
 * handles are left (held, or being opened or closed). */
unsigned store_route_evict(struct store *store, int64_t user_id)
{
	size_t b = (uint64_t)user_id % store->users_size;
	unsigned left = 0;
	struct store_user *evicted = NULL;
	pthread_mutex_lock(&store->users_mu);
	for (struct store_user *u = store->users[b]; u != NULL; u = u->next) {
		if (u->id != user_id)
			continue;
		if (u->ready && u->refcount == 0 && evicted == NULL)
			evicted = evict_begin(store, u);
		else
			left++;
	}
	pthread_mutex_unlock(&store->users_mu);
	evict_finish(store, evicted);
	return left + (evicted != NULL);
}

void store_user_unref(struct store_user **userp)
{
	struct store_user *user = *userp;
	if (user == NULL)
		return;
	*userp = NULL;
	struct store *store = user->store;
	pthread_mutex_lock(&store->users_mu);
	if (user->owner != NULL) {
		/* a viewer's handle is not in the table */
		bool last = --user->refcount == 0;
		pthread_mutex_unlock(&store->users_mu);
		if (last)
			store_acl_viewer_free(user);
		return;
	}
	struct store_user *evicted = NULL;
	if (--user->refcount == 0) {
		user->last_use = ++store->use_clock;
		if (++store->idle_count > store->idle_max)
			evicted = evict_oldest_idle(store);
	}
	pthread_mutex_unlock(&store->users_mu);
	evict_finish(store, evicted);
}

void store_users_foreach(struct store *store,
			 void (*fn)(struct store_user *user, void *ctx),
			 void *ctx)
{
	struct store_user **list = NULL;
	size_t n = 0;
	pthread_mutex_lock(&store->users_mu);
	for (size_t i = 0; i < store->users_size; i++) {
		for (struct store_user *u = store->users[i]; u; u = u->next) {
			if (!u->ready)
				continue;
			if (u->refcount++ == 0)
				store->idle_count--;
			list = xrealloc(list, (n + 1) * sizeof(*list));
			list[n++] = u;
		}
	}
	pthread_mutex_unlock(&store->users_mu);
	for (size_t i = 0; i < n; i++)
		fn(list[i], ctx);
	pthread_mutex_lock(&store->users_mu);
	for (size_t i = 0; i < n; i++) {
		/* last_use stays: the idle order is the users' own */
		if (--list[i]->refcount == 0)
			store->idle_count++;
	}
	struct store_user *evicted = store->idle_count > store->idle_max
					     ? evict_oldest_idle(store)
					     : NULL;
	pthread_mutex_unlock(&store->users_mu);
	evict_finish(store, evicted);
	free(list);
}

int64_t store_user_id(const struct store_user *user)
{
	return user->id;
}

int store_user_delete(struct store *store, int64_t user_id,
		      struct store_error *err)
{
	/* both sides: an interrupted move may have left a copy */
	if (store->pg != NULL &&
	    store_user_delete_backend(store->pg, user_id, err) < 0)
		return -1;
	return store_user_delete_backend(store, user_id, err);
}

int store_user_delete_backend(struct store *store, int64_t user_id,
			      struct store_error *err)
{
	err_clear(err);
	pthread_mutex_lock(&store->users_mu);
	size_t b = (uint64_t)user_id % store->users_size;
again:
	for (struct store_user *u = store->users[b]; u != NULL; u = u->next) {
		if (u->id != user_id)
			continue;
		if (!u->ready) {
			/* being opened or closed: wait for its end */
			pthread_cond_wait(&store->users_cond, &store->users_mu);
			goto again;
		}
		if (u->refcount > 0) {
			pthread_mutex_unlock(&store->users_mu);
			return store_set_error(err, STORE_ERR_TEMP,
					       "The account is in use");
		}
		evict_begin(store, u);
		pthread_mutex_unlock(&store->users_mu);
		evict_finish(store, u);
		pthread_mutex_lock(&store->users_mu);
		goto again;
	}
	int ret = store->vf->user_delete(store, user_id, err);
	pthread_mutex_unlock(&store->users_mu);
	return ret;
}

int store_user_usage(struct store_user *user, struct store_usage *usage_r,
		     struct store_error *err)
{
	err_clear(err);
	/* the owner's quota (a viewer's APPEND counts there) */
	user = store_acl_backend_user(user);
	return user->store->vf->usage(user, usage_r, err);
}

int store_user_disk(struct store_user *user, struct store_disk *disk_r,
		    struct store_error *err)
{
	err_clear(err);
	memset(disk_r, 0, sizeof(*disk_r));
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	return user->store->vf->disk(user, disk_r, err);
}

/* ---- mailboxes ---------------------------------------------------- */

void store_mailbox_info_free(struct store_mailbox_info *info)
{
	free(info->name);
	info->name = NULL;
}

void store_mailbox_list_free(struct store_mailbox_info *list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(list[i].name);
	free(list);
}

void store_names_free(char **names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

int store_mailbox_list(struct store_user *user,
		       struct store_mailbox_info **list_r, size_t *count_r,
		       struct store_error *err)
{
	err_clear(err);
	if (user->owner == NULL) {
		if (user->store->vf->mailbox_list(user, list_r, count_r,
						  err) < 0)
			return -1;
		for (size_t i = 0; i < *count_r; i++)
			(*list_r)[i].rights = STORE_RIGHTS_ALL;
		return 0;
	}
	if (user->store->vf->mailbox_list(user->owner, list_r, count_r,
					  err) < 0)
		return -1;
	if (store_acl_filter_list(user, *list_r, count_r, err) < 0 ||
	    store_seen_list(user, *list_r, *count_r, err) < 0) {
		store_mailbox_list_free(*list_r, *count_r);
		*list_r = NULL;
		*count_r = 0;
		return -1;
	}
	return 0;
}

int store_subscriptions(struct store_user *user, char ***names_r,
			size_t *count_r, struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	return user->store->vf->subscriptions(user, names_r, count_r, err);
}

/* Runs one call with a normalised mailbox name. */
#define WITH_NAME(var, name, err)                                        \
	char *var = store_name_normalize(name, err);                     \
	if (var == NULL)                                                 \
		return -1

/* The same, and the viewer's rights on it checked (store_acl_enter):
 * user becomes the owner's handle. */
#define WITH_RIGHTS(var, name, need, err)                                \
	WITH_NAME(var, name, err);                                       \
	if (store_acl_enter(&user, var, need, NULL, err) < 0) {          \
		free(var);                                               \
		return -1;                                               \
	}

int store_mailbox_status(struct store_user *user, const char *name,
			 struct store_mailbox_info *info_r,
			 struct store_error *err)
{
	err_clear(err);
	struct store_user *h = user;
	WITH_RIGHTS(n, name, STORE_RIGHT_READ, err);
	int ret = user->store->vf->mailbox_status(user, n, 0, info_r, err);
	if (ret == 0)
		ret = store_seen_info(h, n, info_r, err);
	free(n);
	return ret;
}

int store_mailbox_create(struct store_user *user, const char *name,
			 unsigned special_use, struct store_error *err)
{
	err_clear(err);
	WITH_NAME(n, name, err);
	/* a viewer's new top-level mailbox sits below the owner's INBOX for
	 * it (store_acl_enter_parent): it takes INBOX's ACL */
	bool viewer_top = user->owner != NULL && strchr(n, '/') == NULL;
	if (user->owner != NULL &&
	    store_acl_enter_parent(&user, n, err) < 0) {
		free(n);
		return -1;
	}
	int ret = user->store->vf->mailbox_create(user, n, special_use, err);
	if (ret == 0 && viewer_top)
		store_acl_inherit_inbox(user, n);
	free(n);
	return ret;
}

int store_mailbox_delete(struct store_user *user, const char *name,
			 struct store_error *err)
{
	err_clear(err);
	WITH_NAME(n, name, err);
	int ret;
	if (strcmp(n, "INBOX") == 0)
		ret = store_set_error(err, STORE_ERR_PERM,
				      "INBOX cannot be deleted");
	else if (store_acl_enter(&user, n, STORE_RIGHT_DELETE, NULL, err) == 0)
		ret = user->store->vf->mailbox_delete(user, n, err);
	else
		ret = -1;
	free(n);
	return ret;
}

int store_mailbox_rename(struct store_user *user, const char *from,
			 const char *to, struct store_error *err)
{
	err_clear(err);
	WITH_NAME(f, from, err);
	char *t = store_name_normalize(to, err);
	if (t == NULL) {
		free(f);
		return -1;
	}
	int ret;
	size_t flen = strlen(f);
	if (strcmp(t, "INBOX") == 0)
		ret = store_set_error(err, STORE_ERR_EXISTS,
				      "INBOX already exists");
	else if (strcmp(f, t) == 0)
		ret = store_set_error(err, STORE_ERR_EXISTS,
				      "Mailbox already exists");
	else if (strncmp(t, f, flen) == 0 && t[flen] == '/' &&
		 strcmp(f, "INBOX") != 0)
		ret = store_set_error(err, STORE_ERR_INVALID,
				      "Cannot rename a mailbox into itself");
	else if (user->owner != NULL &&
		 store_acl_enter_rename(&user, f, t, err) < 0)
		ret = -1;
	else
		ret = user->store->vf->mailbox_rename(user, f, t, err);
	free(f);
	free(t);
	return ret;
}

int store_mailbox_subscribe(struct store_user *user, const char *name,
			    bool subscribe, struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	WITH_NAME(n, name, err);
	int ret = user->store->vf->mailbox_subscribe(user, n, subscribe, err);
	free(n);
	return ret;
}

char *store_mailbox_find_special(struct store_user *user, unsigned special_use)
{
	if (user->owner != NULL)
		return NULL;   /* special use is the owner's own business */
	return user->store->vf->mailbox_find_special(user, special_use);
}

int store_mailbox_keywords(struct store_user *user, const char *mailbox,
			   char ***keywords_r, size_t *count_r,
			   struct store_error *err)
{
	err_clear(err);
	WITH_RIGHTS(n, mailbox, STORE_RIGHT_READ, err);
	int ret = user->store->vf->mailbox_keywords(user, n, keywords_r,
						    count_r, err);
	free(n);
	return ret;
}

/* ---- messages ----------------------------------------------------- */

static bool ranges_valid(const struct store_uid_range *ranges, size_t count,
			 struct store_error *err)
{
	for (size_t i = 0; i < count; i++) {
		if (ranges[i].lo > ranges[i].hi) {
			store_set_error(err, STORE_ERR_INVALID,
					"Invalid UID range");
			return false;
		}
	}
	return true;
}

/* Flags and keywords given by a client: keywords are IMAP atoms. */
static bool keywords_valid(const char *const *kw, size_t count,
			   struct store_error *err)
{
	for (size_t i = 0; i < count; i++) {
		const unsigned char *p = (const unsigned char *)kw[i];
		if (p == NULL || *p == '\0' || *p == '\\')
			goto bad;
		for (; *p != '\0'; p++) {
			if (*p <= 0x20 || *p >= 0x7f || strchr("(){%*\"\\]", *p))
				goto bad;
		}
		if (strlen(kw[i]) > 250)
			goto bad;
	}
	return true;
bad:
	store_set_error(err, STORE_ERR_INVALID, "Invalid keyword");
	return false;
}

int store_append(struct store_user *user, const char *mailbox,
		 const char *data, size_t len,
		 const struct store_append_params *params, uint32_t *uid_r,
		 uint32_t *uidvalidity_r, struct store_error *err)
{
	struct store_blob_writer *w;
	if (store_blob_writer_create(user, &w, err) < 0)
		return -1;
	if (store_blob_writer_write(w, data, len, err) < 0) {
		store_blob_writer_abort(&w);
		return -1;
	}
	return store_blob_writer_commit(&w, mailbox, params, uid_r,
					uidvalidity_r, err);
}

/* ---- bodies and copies --------------------------------------------- */

int store_body_create(struct store *store, struct store_body **body_r,
		      struct store_error *err)
{
	err_clear(err);
	if (store->pg != NULL)
		return store_route_body_create(store, body_r, err);
	return store->vf->body_create(store, body_r, err);
}

int store_body_write(struct store_body *body, const void *data, size_t len,
		     struct store_error *err)
{
	err_clear(err);
	return STORE_OBJ_VF(body)->body_write(body, data, len, err);
}

uint64_t store_body_size(const struct store_body *body)
{
	return STORE_OBJ_VF(body)->body_size(body);
}

int store_body_finish(struct store_body *body, struct store_error *err)
{
	err_clear(err);
	return STORE_OBJ_VF(body)->body_finish(body, err);
}

/* A prefix is header lines: CRLF line ends (bare LF made CRLF, as for
 * bodies), ending with one; no empty line (that would end the header). */
static bool prefix_normalize(const char *prefix, size_t len, struct buf *out,
			     struct store_error *err)
{
	for (size_t i = 0; i < len; i++) {
		if (prefix[i] == '\n' && (i == 0 || prefix[i - 1] != '\r'))
			buf_append_char(out, '\r');
		buf_append_char(out, prefix[i]);
	}
	const char *p = out->data;
	if (out->len > 0 &&
	    (out->len < 2 || memcmp(p + out->len - 2, "\r\n", 2) != 0 ||
	     memcmp(p, "\r\n", 2) == 0 || memmem(p, out->len, "\r\n\r\n", 4))) {
		store_set_error(err, STORE_ERR_INVALID,
				"A copy's prefix must be header lines");
		return false;
	}
	return true;
}

/* The copies the backend stores one by one (or all in one group commit,
 * vf->bodies_deliver): uids[i] is 0 for a copy that failed. */
static int backend_deliver(struct store_body *const *bodies, size_t n,
			   struct store_user *user, const char *mailbox,
			   const char *prefix, size_t prefix_len,
			   const struct store_append_params *params,
			   uint32_t *uids, uint32_t *uidvalidity_r,
			   struct store_error *err)
{
	const struct store_backend_vfuncs *vf = STORE_OBJ_VF(bodies[0]);
	if (n > 1 && prefix_len == 0 && vf->bodies_deliver != NULL)
		return vf->bodies_deliver(bodies, n, user, mailbox, params,
					  uids, uidvalidity_r, err);
	int ret = 0;
	for (size_t i = 0; i < n; i++) {
		struct store_error e = {0};
		if (vf->body_deliver(bodies[i], user, mailbox, prefix,
				     prefix_len, params != NULL ? &params[i]
							      : NULL,
				     &uids[i], uidvalidity_r, &e) < 0) {
			uids[i] = 0;
			if (ret == 0)
				*err = e;
			ret = -1;
		}
	}
	return ret;
}

/* n bodies into one mailbox (params: n of them, or NULL). 0 if every
 * copy was stored, else -1 with the first failure's error; uids[i] is 0
 * for each copy that failed. */
static int bodies_deliver(struct store_body *const *bodies, size_t n,
			  struct store_user *user, const char *mailbox,
			  const char *prefix, size_t prefix_len,
			  const struct store_append_params *params,
			  uint32_t *uids, uint32_t *uidvalidity_r,
			  unsigned need, struct store_error *err)
{
	err_clear(err);
	memset(uids, 0, n * sizeof(*uids));
	for (size_t i = 0; params != NULL && i < n; i++)
		if (!keywords_valid(params[i].keywords,
				    params[i].keyword_count, err))
			return -1;
	WITH_NAME(name, mailbox, err);
	/* flags the viewer may not set are dropped (RFC 4314 4, APPEND) */
	struct store_append_params *allowed = NULL;
	unsigned rights;
	struct store_user *h = user;
	if (store_acl_enter(&user, name, need, &rights, err) < 0) {
		free(name);
		return -1;
	}
	int64_t pvt = 0;
	bool *own_seen = NULL;
	if (params != NULL && rights != STORE_RIGHTS_ALL) {
		allowed = xmalloc(n * sizeof(*allowed));
		own_seen = xcalloc(n, sizeof(*own_seen));
		for (size_t i = 0; i < n; i++) {
			allowed[i] = params[i];
			allowed[i].flags &= store_acl_flag_mask(rights);
			if (!(rights & STORE_RIGHT_WRITE))
				allowed[i].keyword_count = 0;
			/* the viewer's \Seen is its own (store-seen.c) */
			if ((allowed[i].flags & STORE_FLAG_SEEN) &&
			    (pvt != 0 || (pvt = store_seen_pvt(h, name)) != 0)) {
				allowed[i].flags &= ~(unsigned)STORE_FLAG_SEEN;
				own_seen[i] = true;
			}
		}
		params = allowed;
	}
	struct buf pre;
	buf_init(&pre, 0);
	int ret = -1;
	if (prefix_normalize(prefix, prefix != NULL ? prefix_len : 0, &pre,
			     err))
		ret = backend_deliver(bodies, n, user, name, pre.data, pre.len,
				      params, uids, uidvalidity_r, err);
	for (size_t i = 0; pvt != 0 && i < n; i++) {
		if (!own_seen[i] || uids[i] == 0)
			continue;
		struct store_uid_range r = {uids[i], uids[i]};
		struct store_seen_change sc = {.seen = true};
		struct store_error e2;
		if (store_seen_update(user, pvt, name, &r, 1, &sc, &e2) < 0)
			log_warn("store", NULL, "own \\Seen of a new message"
				 " not kept: %s", e2.msg);
		free(sc.changed);
		free(sc.modified);
	}
	free(own_seen);
	free(allowed);
	buf_free(&pre);
	free(name);
	return ret;
}

int store_body_deliver(struct store_body *body, struct store_user *user,
		       const char *mailbox, const char *prefix,
		       size_t prefix_len,
		       const struct store_append_params *params,
		       uint32_t *uid_r, uint32_t *uidvalidity_r,
		       struct store_error *err)
{
	/* a delivery into someone else's mailbox (a +folder, Sieve
	 * fileinto) needs p (RFC 4314 2.1) */
	uint32_t uid = 0;
	int ret = bodies_deliver(&body, 1, user, mailbox, prefix, prefix_len,
				 params, &uid, uidvalidity_r,
				 STORE_RIGHT_POST, err);
	if (uid_r != NULL)
		*uid_r = uid;
	return ret;
}

void store_body_unref(struct store_body **body)
{
	if (*body != NULL)
		STORE_OBJ_VF(*body)->body_unref(*body);
	*body = NULL;
}

/* An APPEND is a body with one copy and no prefix. */
enum writer_finish { FIN_NONE, FIN_QUEUED, FIN_RUNNING, FIN_DONE };

struct store_blob_writer {
	struct store_user *user;
	struct store_body *body;
	/* store_blob_writer_finish: the finisher pool's state of it */
	bool fin_used;                  /* ever queued (owner's own flag) */
	enum writer_finish fin;
	bool fin_abandoned;             /* aborted while running: the
					   finisher frees it */
	int fin_ret;
	struct store_error fin_err;
	struct store_blob_writer *fin_next;
};

/* ---- the finisher pool ---------------------------------------------- *
 *
 * Finishing a body (its analysis, search text and fsync) is most of what
 * an APPEND costs. A MULTIAPPEND's messages are finished here as their
 * literals end, on a few threads kept for the process, while the
 * connection goes on reading the next ones; the commit waits for those
 * that started and finishes those still queued itself. Threads are kept
 * (not made per message): each keeps its compressor's tables
 * (sq-text.c). */
#define FINISHERS_MAX 4

static struct {
	pthread_once_t once;
	pthread_mutex_t mu;
	pthread_cond_t work;            /* a writer queued */
	pthread_cond_t done;            /* a finish ended */
	struct store_blob_writer *head, *tail;
	size_t threads;
	size_t abandoned;               /* running for no one: store_close
					   waits for them */
} finishers = {.once = PTHREAD_ONCE_INIT,
	       .mu = PTHREAD_MUTEX_INITIALIZER,
	       .work = PTHREAD_COND_INITIALIZER,
	       .done = PTHREAD_COND_INITIALIZER};

static void writer_free(struct store_blob_writer *w)
{
	store_body_unref(&w->body);
	store_user_unref(&w->user);
	free(w);
}

static void *finisher_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&finishers.mu);
	for (;;) {
		struct store_blob_writer *w = finishers.head;
		if (w == NULL) {
			pthread_cond_wait(&finishers.work, &finishers.mu);
			continue;
		}
		finishers.head = w->fin_next;
		if (finishers.head == NULL)
			finishers.tail = NULL;
		w->fin = FIN_RUNNING;
		pthread_mutex_unlock(&finishers.mu);
		struct store_error e = {0};
		int r = store_body_finish(w->body, &e);
		pthread_mutex_lock(&finishers.mu);
		if (w->fin_abandoned) {
			pthread_mutex_unlock(&finishers.mu);
			writer_free(w);
			pthread_mutex_lock(&finishers.mu);
			finishers.abandoned--;
			pthread_cond_broadcast(&finishers.done);
			continue;
		}
		w->fin_ret = r;
		w->fin_err = e;
		w->fin = FIN_DONE;
		pthread_cond_broadcast(&finishers.done);
	}
	return NULL;
}

static void finishers_start(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t n = cpus > 1 ? (size_t)cpus : 1;
	if (n > FINISHERS_MAX)
		n = FINISHERS_MAX;
	for (size_t i = 0; i < n; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, finisher_main, NULL) != 0)
			break;
		pthread_detach(t);
		finishers.threads++;
	}
}

int store_blob_writer_finish(struct store_blob_writer *w,
			     struct store_error *err)
{
	err_clear(err);
	pthread_once(&finishers.once, finishers_start);
	if (finishers.threads == 0)
		return store_body_finish(w->body, err);
	pthread_mutex_lock(&finishers.mu);
	if (w->fin == FIN_NONE) {
		w->fin_used = true;
		w->fin = FIN_QUEUED;
		w->fin_next = NULL;
		if (finishers.tail != NULL)
			finishers.tail->fin_next = w;
		else
			finishers.head = w;
		finishers.tail = w;
		pthread_cond_signal(&finishers.work);
	}
	pthread_mutex_unlock(&finishers.mu);
	return 0;
}

/* Waits for the finishes of aborted writers (they hold store handles). */
static void finishers_drain(void)
{
	pthread_mutex_lock(&finishers.mu);
	while (finishers.abandoned > 0)
		pthread_cond_wait(&finishers.done, &finishers.mu);
	pthread_mutex_unlock(&finishers.mu);
}

/* Under finishers.mu: a queued writer leaves the queue (FIN_NONE). */
static void finish_dequeue(struct store_blob_writer *w)
{
	if (w->fin != FIN_QUEUED)
		return;
	struct store_blob_writer **pp = &finishers.head, *prev = NULL;
	while (*pp != w) {
		prev = *pp;
		pp = &(*pp)->fin_next;
	}
	*pp = w->fin_next;
	if (finishers.tail == w)
		finishers.tail = prev;
	w->fin = FIN_NONE;
}

/* Takes w out of the pool's hands: still queued, it is left to the
 * caller; running, it is waited for. -1 with the finish's error if it
 * failed. */
static int writer_finish_wait(struct store_blob_writer *w,
			      struct store_error *err)
{
	if (!w->fin_used)           /* never queued: no other thread */
		return 0;
	pthread_mutex_lock(&finishers.mu);
	finish_dequeue(w);
	while (w->fin == FIN_RUNNING)
		pthread_cond_wait(&finishers.done, &finishers.mu);
	pthread_mutex_unlock(&finishers.mu);
	if (w->fin == FIN_DONE && w->fin_ret < 0) {
		*err = w->fin_err;
		return -1;
	}
	return 0;
}

int store_blob_writer_create(struct store_user *user,
			     struct store_blob_writer **w_r,
			     struct store_error *err)
{
	struct store_body *body;
	if (store_body_create(user->store, &body, err) < 0)
		return -1;
	struct store_blob_writer *w = xcalloc(1, sizeof(*w));
	store_user_ref(user);
	w->user = user;
	w->body = body;
	*w_r = w;
	return 0;
}

int store_blob_writer_write(struct store_blob_writer *w, const void *data,
			    size_t len, struct store_error *err)
{
	return store_body_write(w->body, data, len, err);
}

uint64_t store_blob_writer_size(const struct store_blob_writer *w)
{
	return store_body_size(w->body);
}

int store_blob_writer_set_binary(struct store_blob_writer *w,
				 struct store_error *err)
{
	err_clear(err);
	if (STORE_OBJ_VF(w->body)->body_set_binary == NULL)
		return store_set_error(err, STORE_ERR_INVALID,
				       "Binary content cannot be stored here");
	STORE_OBJ_VF(w->body)->body_set_binary(w->body);
	return 0;
}

int store_blob_writer_commit(struct store_blob_writer **wp, const char *mailbox,
			     const struct store_append_params *params,
			     uint32_t *uid_r, uint32_t *uidvalidity_r,
			     struct store_error *err)
{
	return store_blob_writer_commit_to(wp, (*wp)->user, mailbox, params,
					   uid_r, uidvalidity_r, err);
}

int store_blob_writer_commit_to(struct store_blob_writer **wp,
				struct store_user *user, const char *mailbox,
				const struct store_append_params *params,
				uint32_t *uid_r, uint32_t *uidvalidity_r,
				struct store_error *err)
{
	uint32_t uid = 0;
	int ret = store_blob_writers_commit_to(wp, 1, user, mailbox, params,
					       &uid, uidvalidity_r, err);
	if (uid_r != NULL)
		*uid_r = uid;
	return ret;
}

/* Finishing a body (store_body_finish: its analysis, the search text and
 * its compression) is most of what a MULTIAPPEND or an import batch
 * costs, and either brings many bodies at once: they are finished on up
 * to FINISH_THREADS threads, the caller's and short-lived helpers (bodies
 * are independent; LMTP already finishes bodies on several workers at
 * once). */
#define FINISH_THREADS 4

struct finish_all {
	struct store_body *const *bodies;
	size_t n;
	_Atomic size_t next;
	int *ret;
	struct store_error *errs;
};

static void *finish_some(void *arg)
{
	struct finish_all *f = arg;
	size_t i;
	while ((i = atomic_fetch_add(&f->next, 1)) < f->n)
		f->ret[i] = store_body_finish(f->bodies[i], &f->errs[i]);
	return NULL;
}

void store_bodies_finish(struct store_body *const *bodies, size_t n,
			 int *ret, struct store_error *errs)
{
	struct finish_all f = {.bodies = bodies, .n = n, .ret = ret,
			       .errs = errs};
	atomic_init(&f.next, 0);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t helpers = cpus > 1 ? (size_t)cpus - 1 : 0;
	if (helpers > FINISH_THREADS - 1)
		helpers = FINISH_THREADS - 1;
	if (helpers > n / 2)
		helpers = n / 2;
	pthread_t tids[FINISH_THREADS];
	size_t started = 0;
	for (; started < helpers; started++)
		if (pthread_create(&tids[started], NULL, finish_some, &f) != 0)
			break;   /* fewer helpers: the caller does the rest */
	finish_some(&f);
	for (size_t i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
}

/* Finishes bodies[0..n); on failure err is the first failed body's. */
static int bodies_finish(struct store_body **bodies, size_t n,
			 struct store_error *err)
{
	int *ret = xcalloc(n ? n : 1, sizeof(*ret));
	struct store_error *errs = xcalloc(n ? n : 1, sizeof(*errs));
	store_bodies_finish(bodies, n, ret, errs);
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++)
		if (ret[i] < 0) {
			*err = errs[i];
			r = -1;
		}
	free(ret);
	free(errs);
	return r;
}

int store_blob_writers_commit_to(struct store_blob_writer **ws, size_t n,
				 struct store_user *user, const char *mailbox,
				 const struct store_append_params *params,
				 uint32_t *uids, uint32_t *uidvalidity_r,
				 struct store_error *err)
{
	struct store_body **bodies = xcalloc(n ? n : 1, sizeof(*bodies));
	int ret = 0;
	err_clear(err);
	memset(uids, 0, n * sizeof(*uids));
	for (size_t i = 0; i < n; i++) {
		struct store_error e;
		bodies[i] = ws[i]->body;
		if (writer_finish_wait(ws[i], &e) < 0 && ret == 0) {
			*err = e;
			ret = -1;
		}
	}
	if (ret == 0)
		ret = bodies_finish(bodies, n, err);
	if (ret == 0 && n > 0)
		ret = bodies_deliver(bodies, n, user, mailbox, NULL, 0, params,
				     uids, uidvalidity_r, STORE_RIGHT_INSERT,
				     err);
	for (size_t i = 0; i < n; i++)
		store_blob_writer_abort(&ws[i]);
	free(bodies);
	return ret;
}

void store_blob_writer_abort(struct store_blob_writer **wp)
{
	struct store_blob_writer *w = *wp;
	if (w == NULL)
		return;
	*wp = NULL;
	if (w->fin_used) {
		/* a finish running is not waited for (an abort may come on
		 * an I/O thread): its finisher frees w when it is done */
		pthread_mutex_lock(&finishers.mu);
		finish_dequeue(w);
		bool running = w->fin == FIN_RUNNING;
		w->fin_abandoned = running;
		if (running)
			finishers.abandoned++;
		pthread_mutex_unlock(&finishers.mu);
		if (running)
			return;
	}
	store_body_unref(&w->body);
	store_user_unref(&w->user);
	free(w);
}

int store_blob_open(struct store_user *user, const char *mailbox,
		    uint32_t uid, struct store_blob *blob_r,
		    struct store_error *err)
{
	err_clear(err);
	WITH_RIGHTS(n, mailbox, STORE_RIGHT_READ, err);
	int ret = user->store->vf->blob_open(user, n, uid, blob_r, err);
	free(n);
	return ret;
}

int store_blob_open_head(struct store_user *user, const char *mailbox,
			 uint32_t uid, struct store_blob *blob_r,
			 struct store_error *err)
{
	err_clear(err);
	WITH_RIGHTS(n, mailbox, STORE_RIGHT_READ, err);
	const struct store_backend_vfuncs *vf = user->store->vf;
	int ret = vf->blob_open_head != NULL
		? vf->blob_open_head(user, n, uid, blob_r, err)
		: vf->blob_open(user, n, uid, blob_r, err);
	free(n);
	return ret;
}

void store_blob_close(struct store_blob *blob)
{
	if (blob->priv != NULL)
		STORE_OBJ_VF(blob->priv)->blob_close(blob);
}

int store_fetch_begin(struct store_user *user, const char *mailbox,
		      const struct store_uid_range *ranges, size_t range_count,
		      unsigned fields, struct store_fetch **fetch_r,
		      struct store_error *err)
{
	return store_fetch_begin_since(user, mailbox, ranges, range_count,
				       fields, 0, fetch_r, err);
}

int store_fetch_begin_since(struct store_user *user, const char *mailbox,
			    const struct store_uid_range *ranges,
			    size_t range_count, unsigned fields,
			    uint64_t changedsince, struct store_fetch **fetch_r,
			    struct store_error *err)
{
	err_clear(err);
	if (!ranges_valid(ranges, range_count, err))
		return -1;
	struct store_user *h = user;
	WITH_RIGHTS(n, mailbox, STORE_RIGHT_READ, err);
	int64_t pvt = store_seen_pvt(h, n);
	int ret = pvt != 0
		? store_seen_fetch_begin(user, pvt, n, ranges, range_count,
					 fields, changedsince, fetch_r, err)
		: user->store->vf->fetch_begin(user, n, ranges, range_count,
					       fields, changedsince, fetch_r,
					       err);
	free(n);
	return ret;
}

int store_fetch_next(struct store_fetch *fetch, const struct store_msg **msg_r,
		     struct store_error *err)
{
	err_clear(err);
	return STORE_OBJ_VF(fetch)->fetch_next(fetch, msg_r, err);
}

void store_fetch_end(struct store_fetch **fetch)
{
	if (*fetch != NULL)
		STORE_OBJ_VF(*fetch)->fetch_end(fetch);
}

int store_flags_update(struct store_user *user, const char *mailbox,
		       const struct store_uid_range *ranges, size_t range_count,
		       const struct store_flag_change *change,
		       uint32_t **changed_r, size_t *changed_count_r,
		       uint32_t **modified_r, size_t *modified_count_r,
		       struct store_error *err)
{
	err_clear(err);
	if (!ranges_valid(ranges, range_count, err) ||
	    !keywords_valid(change->keywords, change->keyword_count, err))
		return -1;
	WITH_NAME(n, mailbox, err);
	if (user->owner != NULL) {
		int ret = store_acl_flags_update(user, n, ranges, range_count,
						 change, changed_r,
						 changed_count_r, modified_r,
						 modified_count_r, err);
		free(n);
		return ret;
	}
	int ret = user->store->vf->flags_update(
		user, n, ranges, range_count, change, changed_r,
		changed_count_r, modified_r, modified_count_r, err);
	free(n);
	return ret;
}

int store_copy(struct store_user *user, const char *src,
	       const struct store_uid_range *ranges, size_t range_count,
	       const char *dst, bool move, uint32_t *dst_uidvalidity_r,
	       uint32_t **src_uids_r, uint32_t **dst_uids_r, size_t *count_r,
	       struct store_error *err)
{
	err_clear(err);
	if (!ranges_valid(ranges, range_count, err))
		return -1;
	WITH_NAME(s, src, err);
	char *d = store_name_normalize(dst, err);
	if (d == NULL) {
		free(s);
		return -1;
	}
	struct store_user *viewer = user;
	unsigned src_need = STORE_RIGHT_READ |
			    (move ? STORE_RIGHT_DELETED | STORE_RIGHT_EXPUNGE : 0);
	if (store_acl_enter(&user, s, src_need, NULL, err) < 0 ||
	    store_acl_enter(&viewer, d, STORE_RIGHT_INSERT, NULL, err) < 0) {
		free(s);
		free(d);
		return -1;
	}
	int ret = user->store->vf->copy(user, s, ranges, range_count, d, move,
					dst_uidvalidity_r, src_uids_r,
					dst_uids_r, count_r, err);
	free(s);
	free(d);
	return ret;
}

int store_expunge(struct store_user *user, const char *mailbox,
		  const struct store_uid_range *ranges, size_t range_count,
		  bool force, uint32_t **uids_r, size_t *count_r,
		  struct store_error *err)
{
	err_clear(err);
	if (!ranges_valid(ranges, range_count, err))
		return -1;
	WITH_RIGHTS(n, mailbox, STORE_RIGHT_EXPUNGE, err);
	int ret = user->store->vf->expunge(user, n, ranges, range_count,
					   force, uids_r, count_r, err);
	free(n);
	return ret;
}

int store_changed_since(struct store_user *user, const char *mailbox,
			uint64_t modseq, const struct store_uid_range *ranges,
			size_t range_count, uint32_t **uids_r, size_t *count_r,
			struct store_error *err)
{
	err_clear(err);
	if (!ranges_valid(ranges, range_count, err))
		return -1;
	struct store_user *h = user;
	WITH_RIGHTS(n, mailbox, STORE_RIGHT_READ, err);
	int64_t pvt = store_seen_pvt(h, n);
	int ret = pvt != 0
		? store_seen_changed_since(user, pvt, n, modseq, ranges,
					   range_count, uids_r, count_r, err)
		: user->store->vf->changed_since(user, n, modseq, ranges,
						 range_count, uids_r, count_r,
						 err);
	free(n);
	return ret;
}

int store_expunged_since(struct store_user *user, const char *mailbox,
			 uint64_t modseq, const struct store_uid_range *ranges,
			 size_t range_count, uint32_t **uids_r,
			 size_t *count_r, bool *complete_r,
			 struct store_error *err)
{
	err_clear(err);
	if (!ranges_valid(ranges, range_count, err))
		return -1;
	WITH_RIGHTS(n, mailbox, STORE_RIGHT_READ, err);
	int ret = user->store->vf->expunged_since(user, n, modseq, ranges,
						  range_count, uids_r,
						  count_r, complete_r, err);
	free(n);
	return ret;
}

int store_search_text(struct store_user *user, const char *mailbox,
		      enum store_text_where where, const char *needle,
		      const struct store_uid_range *ranges, size_t range_count,
		      uint32_t **uids_r, size_t *count_r,
		      struct store_error *err)
{
	err_clear(err);
	if (!ranges_valid(ranges, range_count, err))
		return -1;
	if (needle == NULL)
		return store_set_error(err, STORE_ERR_INVALID, "No needle");
	WITH_RIGHTS(n, mailbox, STORE_RIGHT_READ, err);
	int ret = user->store->vf->search_text(user, n, where, needle, ranges,
					       range_count, uids_r, count_r,
					       err);
	free(n);
	return ret;
}

int store_pop3_retrieved(struct store_user *user, uint32_t uid, time_t now,
			 struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	return user->store->vf->pop3_retrieved(user, uid, now, err);
}

int store_pop3_hide(struct store_user *user, const uint32_t *uids,
		    size_t count, size_t *hidden_r, struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	if (hidden_r != NULL)
		*hidden_r = 0;
	return user->store->vf->pop3_hide(user, uids, count, hidden_r, err);
}

int store_mailbox_roles_ensure(struct store_user *user,
			       struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	return user->store->vf->mailbox_roles_ensure(user, err);
}

void store_user_index_version(struct store_user *user, unsigned *found_r,
			      unsigned *known_r)
{
	user = store_acl_backend_user(user);
	user->store->vf->user_index_version(user, found_r, known_r);
}

int store_note_sync_login(struct store_user *user, time_t now,
			  struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	return user->store->vf->note_sync_login(user, now, err);
}

int store_last_sync_login(struct store_user *user, time_t *when_r,
			  struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	return user->store->vf->last_sync_login(user, when_r, err);
}

int store_retention_run(struct store_user *user,
			const struct store_retention_policy *policy, time_t now,
			struct store_retention_report *report_r,
			struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	memset(report_r, 0, sizeof(*report_r));
	return user->store->vf->retention_run(user, policy, now, report_r,
					      err);
}

int store_check(struct store *store, int64_t user_id, bool repair,
		store_report_fn *report, void *ctx, struct store_error *err)
{
	err_clear(err);
	if (user_id <= 0)
		return store_set_error(err, STORE_ERR_INVALID,
				       "Invalid user id");
	if (store_route(store, user_id, false, &store, err) < 0)
		return -1;
	return store->vf->check(store, user_id, repair, report, ctx, err);
}

int store_compact(struct store *store, int64_t user_id,
		  struct store_compact_report *report_r,
		  struct store_error *err)
{
	err_clear(err);
	memset(report_r, 0, sizeof(*report_r));
	if (user_id <= 0)
		return store_set_error(err, STORE_ERR_INVALID,
				       "Invalid user id");
	if (store_route(store, user_id, false, &store, err) < 0)
		return -1;
	return store->vf->compact(store, user_id, report_r, err);
}

int store_index_version(struct store *store, int64_t user_id,
			unsigned *found_r, unsigned *known_r,
			struct store_error *err)
{
	err_clear(err);
	*found_r = *known_r = 0;
	if (user_id <= 0)
		return store_set_error(err, STORE_ERR_INVALID,
				       "Invalid user id");
	if (store_route(store, user_id, false, &store, err) < 0)
		return -1;
	return store->vf->index_version(store, user_id, found_r, known_r,
					err);
}

int store_index_flush(struct store_user *user, struct store_error *err)
{
	err_clear(err);
	if (store_acl_owner_only(user, err) < 0)
		return -1;
	return user->store->vf->index_flush(user, err);
}

/* ---- the change hub ----------------------------------------------- */

static int subscribe(struct store *store, int64_t user_id, store_change_fn *cb,
		     void *ctx, bool watch, struct store_subscription **sub_r)
{
	struct store_subscription *sub = xcalloc(1, sizeof(*sub));
	sub->store = store;
	sub->user_id = user_id;
	sub->cb = cb;
	sub->ctx = ctx;
	sub->watch = watch;
	struct store_subscription **head =
		&store->hub->buckets[(uint64_t)user_id % HUB_BUCKETS];
	pthread_rwlock_wrlock(&store->hub->lock);
	sub->next = *head;
	if (*head != NULL)
		(*head)->pprev = &sub->next;
	sub->pprev = head;
	*head = sub;
	pthread_rwlock_unlock(&store->hub->lock);
	*sub_r = sub;
	return 0;
}

int store_subscribe(struct store *store, int64_t user_id, store_change_fn *cb,
		    void *ctx, struct store_subscription **sub_r)
{
	return subscribe(store, user_id, cb, ctx, false, sub_r);
}

int store_watch(struct store *store, int64_t user_id, store_change_fn *cb,
		void *ctx, struct store_subscription **sub_r)
{
	return subscribe(store, user_id, cb, ctx, true, sub_r);
}

void store_unsubscribe(struct store_subscription **subp)
{
	struct store_subscription *sub = *subp;
	if (sub == NULL)
		return;
	*subp = NULL;
	struct store_hub *hub = sub->store->hub;
	pthread_rwlock_wrlock(&hub->lock);
	*sub->pprev = sub->next;
	if (sub->next != NULL)
		sub->next->pprev = sub->pprev;
	pthread_rwlock_unlock(&hub->lock);
	free(sub);
}

void store_publish(struct store *store, const struct store_change *change)
{
	struct store_hub *hub = store->hub;
	pthread_rwlock_rdlock(&hub->lock);
	for (struct store_subscription *s =
		     hub->buckets[(uint64_t)change->user_id % HUB_BUCKETS];
	     s != NULL; s = s->next) {
		if (s->user_id == change->user_id)
			s->cb(s->ctx, change);
	}
	if (change->kind == STORE_CHANGE_ACL &&
	    change->user_id != STORE_HUB_ACL) {
		for (struct store_subscription *s =
			     hub->buckets[STORE_HUB_ACL % HUB_BUCKETS];
		     s != NULL; s = s->next) {
			if (s->user_id == STORE_HUB_ACL)
				s->cb(s->ctx, change);
		}
	}
	pthread_rwlock_unlock(&hub->lock);
}

/* ---- ending sessions ---------------------------------------------- */

static unsigned count_subscribers(struct store *store, int64_t user_id)
{
	unsigned n = 0;
	for (struct store_subscription *s =
		     store->hub->buckets[(uint64_t)user_id % HUB_BUCKETS];
	     s != NULL; s = s->next)
		n += s->user_id == user_id && !s->watch;
	return n;
}

unsigned store_end_sessions(struct store *store, int64_t user_id)
{
	struct store_change change = {
		.user_id = user_id,
		.kind = STORE_CHANGE_LOGOUT,
	};
	pthread_rwlock_rdlock(&store->hub->lock);
	unsigned n = count_subscribers(store, user_id);
	pthread_rwlock_unlock(&store->hub->lock);
	store_publish(store, &change);
	if (store->vf->end_sessions != NULL)
		store->vf->end_sessions(store, user_id);
	if (store->pg != NULL && store->pg->vf->end_sessions != NULL)
		store->pg->vf->end_sessions(store->pg, user_id);
	return n;
}

int store_blobs_collect(struct store *store, unsigned grace,
			struct store_collect_report *report_r,
			struct store_error *err)
{
	memset(report_r, 0, sizeof(*report_r));
	if (store->pg != NULL)
		store = store->pg;
	if (store->vf->blobs_collect == NULL)
		return 0;
	return store->vf->blobs_collect(store, grace, report_r, err);
}

bool store_objects(struct store *store, unsigned *grace_r)
{
	return store->vf->objects != NULL && store->vf->objects(store, grace_r);
}

int store_object_put(struct store *store, int fd, const char *path,
		     uint64_t size, char sha_r[65], struct store_error *err)
{
	if (!store_objects(store, NULL))
		return store_set_error(err, STORE_ERR_TEMP, "No object store");
	return store->vf->object_put(store, fd, path, size, sha_r, err);
}

int store_object_read(struct store *store, const char *sha, char *out,
		      uint64_t size, struct store_error *err)
{
	if (!store_objects(store, NULL))
		return store_set_error(err, STORE_ERR_TEMP, "No object store");
	return store->vf->object_read(store, sha, out, size, err);
}

void store_object_release(struct store *store, const char *sha)
{
	if (store_objects(store, NULL))
		store->vf->object_release(store, sha);
}

int store_maildrop_lock(struct store *store, int64_t user_id,
			struct store_error *err)
{
	if (store_route(store, user_id, false, &store, err) < 0)
		return -1;
	if (store->vf->maildrop_lock == NULL)
		return 1;
	return store->vf->maildrop_lock(store, user_id, err);
}

void store_maildrop_unlock(struct store *store, int64_t user_id)
{
	/* both: the row may have changed since the lock (never during one:
	 * a move ends the POP3 session first) */
	if (store->pg != NULL && store->pg->vf->maildrop_unlock != NULL)
		store->pg->vf->maildrop_unlock(store->pg, user_id);
	if (store->vf->maildrop_unlock != NULL)
		store->vf->maildrop_unlock(store, user_id);
}

bool store_reachable(struct store *store)
{
	return store->vf->reachable == NULL || store->vf->reachable(store);
}

unsigned store_subscriber_count(struct store *store, int64_t user_id)
{
	pthread_rwlock_rdlock(&store->hub->lock);
	unsigned n = count_subscribers(store, user_id);
	pthread_rwlock_unlock(&store->hub->lock);
	return n;
}

/* ---- metadata and URLAUTH keys (imap-state) ------------------------ */

void store_metadata_free(struct store_metadata *entries, size_t count)
{
	for (size_t i = 0; i < count && entries != NULL; i++) {
		free(entries[i].name);
		free(entries[i].value);
	}
	free(entries);
}

static int not_supported(struct store_error *err)
{
	return store_set_error(err, STORE_ERR_PERM,
			       "Annotations are not kept by this store");
}

static bool is_private_entry(const char *name)
{
	return strncasecmp(name, "/private", 8) == 0 &&
	       (name[8] == '\0' || name[8] == '/');
}

/* RFC 5464 3.3 (with ACL): a viewer reads and sets the annotations of a
 * mailbox on which it holds l and any of r, s, w, i, p. user becomes the
 * owner's handle. */
static int metadata_enter(struct store_user **user, const char *mailbox,
			  struct store_error *err)
{
	unsigned rights;
	if (store_acl_enter(user, mailbox, STORE_RIGHT_LOOKUP, &rights,
			    err) < 0)
		return -1;
	const unsigned any = STORE_RIGHT_READ | STORE_RIGHT_SEEN |
			     STORE_RIGHT_WRITE | STORE_RIGHT_INSERT |
			     STORE_RIGHT_POST;
	if (!(rights & any))
		return store_set_error(err, STORE_ERR_NOPERM,
				       "You lack the rights to its annotations "
				       "(l and one of r s w i p)");
	return 0;
}

/* Whose /private entries and URLAUTH key a handle means: 0 the owner's
 * own, else the viewer's user id; -1 for a viewer nobody logged in as (a
 * delivery), which has none. */
static int64_t metadata_viewer(const struct store_user *user)
{
	if (user->owner == NULL)
		return 0;
	return user->viewer.user_id > 0 ? user->viewer.user_id : -1;
}

int store_metadata_get(struct store_user *user, const char *mailbox,
		       const char *const *names, size_t name_count, int depth,
		       struct store_metadata **entries_r, size_t *count_r,
		       struct store_error *err)
{
	err_clear(err);
	*entries_r = NULL;
	*count_r = 0;
	if (user->store->vf->metadata_get == NULL)
		return not_supported(err);
	int64_t viewer = metadata_viewer(user);
	if (mailbox == NULL) {
		if (store_acl_owner_only(user, err) < 0)
			return -1;
		return user->store->vf->metadata_get(user, 0, NULL, names,
						     name_count, depth,
						     entries_r, count_r, err);
	}
	WITH_NAME(n, mailbox, err);
	if (viewer != 0 && metadata_enter(&user, n, err) < 0) {
		free(n);
		return -1;
	}
	/* a viewer's /private entries are its own (none: -1) */
	int ret = user->store->vf->metadata_get(user, viewer, n, names,
						name_count, depth, entries_r,
						count_r, err);
	free(n);
	return ret;
}

int store_metadata_set(struct store_user *user, const char *mailbox,
		       const struct store_metadata *entries, size_t count,
		       struct store_error *err)
{
	err_clear(err);
	if (user->store->vf->metadata_set == NULL)
		return not_supported(err);
	for (size_t i = 0; i < count; i++)
		if (entries[i].value != NULL &&
		    entries[i].value_len > STORE_METADATA_MAX_VALUE)
			return store_set_error(err, STORE_ERR_LIMIT,
					       "Value too large (limit %u)",
					       STORE_METADATA_MAX_VALUE);
	int64_t viewer = metadata_viewer(user);
	if (mailbox == NULL) {
		if (store_acl_owner_only(user, err) < 0)
			return -1;
		return user->store->vf->metadata_set(user, 0, NULL, entries,
						     count, err);
	}
	WITH_NAME(n, mailbox, err);
	if (viewer != 0) {
		for (size_t i = 0; viewer < 0 && i < count; i++)
			if (is_private_entry(entries[i].name)) {
				free(n);
				return store_set_error(err, STORE_ERR_PERM,
						       STORE_METADATA_NOPRIVATE);
			}
		if (metadata_enter(&user, n, err) < 0) {
			free(n);
			return -1;
		}
	}
	int ret = user->store->vf->metadata_set(user, viewer, n, entries,
						count, err);
	free(n);
	return ret;
}

int store_urlauth_key(struct store_user *user, const char *mailbox,
		      bool reset, unsigned char key_r[STORE_URLAUTH_KEY_LEN],
		      struct store_error *err)
{
	err_clear(err);
	if (user->store->vf->urlauth_key == NULL)
		return not_supported(err);
	/* RFC 4467 3: a key per user and mailbox. A viewer's key of the
	 * owner's mailbox is its own: made and used only while it holds r
	 * there (a URL's user's rights are checked when it is used), reset
	 * by it alone, with l. */
	int64_t viewer = metadata_viewer(user);
	if (viewer < 0)
		return store_set_error(err, STORE_ERR_PERM,
				       "URLAUTH keys are kept for users only");
	if (mailbox == NULL) {
		if (!reset)
			return store_set_error(err, STORE_ERR_PERM,
					       "A URLAUTH key is a mailbox's");
		return user->store->vf->urlauth_key(
			viewer != 0 ? user->owner : user, viewer, NULL, true,
			key_r, err);
	}
	WITH_RIGHTS(n, mailbox, reset ? STORE_RIGHT_LOOKUP : STORE_RIGHT_READ,
		    err);
	int ret = user->store->vf->urlauth_key(user, viewer, n, reset, key_r,
					       err);
	free(n);
	return ret;
}
