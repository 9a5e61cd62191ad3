/*
 * Both backends in one store (issue 18, "Moving between backends"): with
 * [store] backend = sqlite and [store] postgres set, struct store holds
 * the postgres side as a second struct store (store->pg: its own pool,
 * schema, handle table and LISTEN, sharing the front's hub), and each
 * account is opened on the side its row in accounts.db names (the limits
 * callback's backend). A handle's store is its side, so everything that
 * reaches an account through its handle (IMAP, POP3, LMTP, SMTP, JMAP,
 * Sieve, shared mailboxes: a viewer's handle holds the owner's) follows
 * the row without knowing it. A body made before its recipients are
 * known (a delivery) keeps its bytes for either side (routed bodies,
 * below).
 *
 * store_move_account moves one account: lock, quiesce, copy through the
 * export stream and the import calls, verify, flip the row, unlock,
 * remove the source.
 */
#include "store-private.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "buf.h"
#include "log.h"

const char *store_backend_name(enum store_backend b)
{
	return b == STORE_BACKEND_POSTGRES ? "postgres" : "sqlite";
}

static struct store *front_of(struct store *store)
{
	return store->front != NULL ? store->front : store;
}

/* Both sides ask the settings' callback; the account a move holds gets
 * no quota on its target (its mail was within it at the source, and a
 * move must not stop half way). */
static int route_limits(void *ctx, int64_t user_id,
			struct store_account_limits *limits_r)
{
	struct store *front = ctx;
	if (front->route_limits == NULL) {
		memset(limits_r, 0, sizeof(*limits_r));
		return 0;
	}
	int r = front->route_limits(front->route_limits_ctx, user_id, limits_r);
	if (r == 0 && atomic_load(&front->moving) == user_id) {
		limits_r->quota_bytes = 0;
		limits_r->quota_messages = 0;
	}
	return r;
}

/* Bodies reach a backend through its vfuncs in a few more places than
 * store.c's deliveries: an import's batch (store-migrate.c) hands the
 * items' bodies, made with store_body_create on the front, to the
 * account's side. With both backends each side runs with a copy of its
 * vfuncs whose import_append_batch gives the backend its own bodies. */
static struct store_backend_vfuncs route_vf[2];
static pthread_once_t route_vf_once = PTHREAD_ONCE_INIT;

static const struct store_backend_vfuncs *real_vf(enum store_backend b)
{
	return b == STORE_BACKEND_POSTGRES ? &store_postgres_vfuncs
					   : &store_sqlite_vfuncs;
}

static void route_import_batch(struct store_user *user,
			       struct store_import_item *items, size_t count)
{
	struct store_body **mine = xcalloc(count ? count : 1, sizeof(*mine));
	for (size_t i = 0; i < count; i++) {
		mine[i] = items[i].body;
		if (items[i].ret == 0 &&
		    store_body_route(mine[i], user, &items[i].body,
				     &items[i].err) < 0)
			items[i].ret = -1;
	}
	real_vf(user->store->set.backend)->import_append_batch(user, items,
								 count);
	for (size_t i = 0; i < count; i++)
		items[i].body = mine[i];
	free(mine);
}

static void route_vf_init(void)
{
	for (int b = 0; b < 2; b++) {
		route_vf[b] = *real_vf((enum store_backend)b);
		route_vf[b].import_append_batch = route_import_batch;
	}
}

int store_route_open(struct store *store, struct store_error *err)
{
	if (store->set.backend != STORE_BACKEND_SQLITE ||
	    store->set.postgres == NULL)
		return 0;
	pthread_once(&route_vf_once, route_vf_init);
	store->vf = &route_vf[STORE_BACKEND_SQLITE];
	store->route_limits = store->set.limits;
	store->route_limits_ctx = store->set.limits_ctx;
	store->set.limits = route_limits;
	store->set.limits_ctx = store;

	struct store *pg = xcalloc(1, sizeof(*pg));
	pg->set = store->set;
	pg->set.backend = STORE_BACKEND_POSTGRES;
	pg->set.data_dir = xstrdup(store->set.data_dir);
	pg->vf = &route_vf[STORE_BACKEND_POSTGRES];
	pg->front = store;
	pthread_mutex_init(&pg->users_mu, NULL);
	pthread_cond_init(&pg->users_cond, NULL);
	pg->users_size = 256;
	pg->idle_max = store->idle_max;
	pg->users = xcalloc(pg->users_size, sizeof(*pg->users));
	pg->hub = store->hub;
	pg->index_elsewhere = store->index_elsewhere;
	if (pg->vf->open(pg, err) < 0) {
		pthread_cond_destroy(&pg->users_cond);
		pthread_mutex_destroy(&pg->users_mu);
		free(pg->users);
		free((char *)pg->set.data_dir);
		free(pg);
		return -1;
	}
	store->pg = pg;
	return 0;
}

bool store_has_both(const struct store *store)
{
	return store->pg != NULL;
}

/* ---- the lock ------------------------------------------------------- */

/* mail_dir/.moving/<id>: under the directory the mail process may read
 * (chrooted there or not). */
static char *lock_path(struct store *store, int64_t user_id)
{
	store = front_of(store);
	if (store->set.mail_dir != NULL)
		return xasprintf("%s/.moving/%" PRId64, store->set.mail_dir,
				 user_id);
	return xasprintf("%s/mail/.moving/%" PRId64, store->set.data_dir,
			 user_id);
}

bool store_route_locked(struct store *store, int64_t user_id)
{
	char *path = lock_path(store, user_id);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	free(path);
	if (fd < 0)
		/* no file: no move; one we may not read is someone's */
		return errno != ENOENT;
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	bool locked = fcntl(fd, F_OFD_GETLK, &fl) < 0 || fl.l_type != F_UNLCK;
	close(fd);
	return locked;
}

int store_lock_take_for_move(struct store *store, int64_t user_id, int *fd_r,
		     struct store_error *err)
{
	char *path = lock_path(store, user_id);
	char *dir = xstrdup(path);
	*strrchr(dir, '/') = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		store_set_error(err, STORE_ERR_TEMP, "%s: %s", dir,
				strerror(errno));
		free(dir);
		free(path);
		return -1;
	}
	free(dir);
	/* readable by loftd's mail process, whoever runs loftctl */
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd >= 0)
		(void)fchmod(fd, 0644);
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	if (fd < 0 || fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		free(path);
		return store_set_error(err, STORE_ERR_TEMP, e == EAGAIN ||
				       e == EACCES ? "The account is being "
				       "moved by another process" : "lock: %s",
				       strerror(e));
	}
	free(path);
	*fd_r = fd;
	return 0;
}

void store_lock_drop_for_move(struct store *store, int64_t user_id, int fd)
{
	/* gone first: the next open finds no file (a kill leaves one
	 * nobody holds, which locks nothing) */
	char *path = lock_path(store, user_id);
	(void)unlink(path);
	free(path);
	close(fd);
}

/* ---- routing -------------------------------------------------------- */

int store_route(struct store *store, int64_t user_id, bool check_lock,
		struct store **store_r, struct store_error *err)
{
	*store_r = store;
	if (store->pg == NULL)
		return 0;
	if (check_lock && store_route_locked(store, user_id))
		return store_set_error(err, STORE_ERR_UNAVAILABLE,
				       "The account is being moved; try "
				       "again in a few seconds");
	struct store_account_limits lim;
	memset(&lim, 0, sizeof(lim));
	if (store->route_limits != NULL &&
	    store->route_limits(store->route_limits_ctx, user_id, &lim) < 0)
		return store_set_error(err, STORE_ERR_UNAVAILABLE,
				       "Where the account's mail is cannot "
				       "be read now; try again later");
	if (lim.backend == STORE_BACKEND_POSTGRES)
		*store_r = store->pg;
	return 0;
}

int store_user_backend(struct store *store, int64_t user_id,
		       enum store_backend *backend_r, struct store_error *err)
{
	struct store *where;
	if (store_route(store, user_id, false, &where, err) < 0)
		return -1;
	*backend_r = where->set.backend;
	return 0;
}

/* ---- routed bodies --------------------------------------------------- */

/* A delivery's body is made before the store knows whose it is: the
 * front side's body takes the bytes as always, and a copy goes to an
 * unlinked file beside it, from which the pg side's body is made the
 * first time a recipient there needs it. */
struct route_body {
	struct store_object obj;
	struct store *store;          /* the front */
	struct store_body *inner[2];  /* by enum store_backend */
	FILE *copy;                   /* the bytes, for the other side */
	bool binary, finished;
	int refs;
};

static const struct store_backend_vfuncs route_body_vfuncs;

int store_route_body_create(struct store *store, struct store_body **body_r,
			    struct store_error *err)
{
	struct store_body *inner;
	if (store->vf->body_create(store, &inner, err) < 0)
		return -1;
	struct route_body *rb = xcalloc(1, sizeof(*rb));
	rb->obj.vf = &route_body_vfuncs;
	rb->store = store;
	rb->inner[store->set.backend] = inner;
	/* in the mail directory, which a confined mail process may write */
	struct store *f = front_of(store);
	char *dir = f->set.mail_dir != NULL
			    ? xstrdup(f->set.mail_dir)
			    : xasprintf("%s/mail", f->set.data_dir);
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	free(dir);
	rb->copy = fd >= 0 ? fdopen(fd, "w+") : NULL;
	if (rb->copy == NULL && fd >= 0)
		close(fd);
	if (rb->copy == NULL) {
		STORE_OBJ_VF(inner)->body_unref(inner);
		free(rb);
		return store_set_error(err, STORE_ERR_TEMP, "spool: %s",
				       strerror(errno));
	}
	*body_r = (struct store_body *)rb;
	return 0;
}

static struct store_body *route_primary(const struct store_body *body)
{
	const struct route_body *rb = (const struct route_body *)body;
	return rb->inner[rb->store->set.backend];
}

static int route_write(struct store_body *body, const void *data, size_t len,
		       struct store_error *err)
{
	struct route_body *rb = (struct route_body *)body;
	struct store_body *p = route_primary(body);
	if (STORE_OBJ_VF(p)->body_write(p, data, len, err) < 0)
		return -1;
	if (len > 0 && fwrite(data, 1, len, rb->copy) != len)
		return store_set_error(err, STORE_ERR_TEMP, "write: %s",
				       strerror(errno));
	return 0;
}

static uint64_t route_size(const struct store_body *body)
{
	const struct store_body *p = route_primary(body);
	return STORE_OBJ_VF(p)->body_size(p);
}

static void route_set_binary(struct store_body *body)
{
	struct route_body *rb = (struct route_body *)body;
	struct store_body *p = route_primary(body);
	rb->binary = true;
	if (STORE_OBJ_VF(p)->body_set_binary != NULL)
		STORE_OBJ_VF(p)->body_set_binary(p);
}

static int route_finish(struct store_body *body, struct store_error *err)
{
	struct route_body *rb = (struct route_body *)body;
	struct store_body *p = route_primary(body);
	if (STORE_OBJ_VF(p)->body_finish(p, err) < 0)
		return -1;
	if (fflush(rb->copy) != 0)
		return store_set_error(err, STORE_ERR_TEMP, "write: %s",
				       strerror(errno));
	rb->finished = true;
	return 0;
}

static const char *route_text(struct store_body *body, size_t *len_r)
{
	struct store_body *p = route_primary(body);
	if (STORE_OBJ_VF(p)->body_text == NULL)
		return NULL;
	return STORE_OBJ_VF(p)->body_text(p, len_r);
}

static void route_unref(struct store_body *body)
{
	struct route_body *rb = (struct route_body *)body;
	for (int i = 0; i < 2; i++)
		if (rb->inner[i] != NULL)
			STORE_OBJ_VF(rb->inner[i])->body_unref(rb->inner[i]);
	fclose(rb->copy);
	free(rb);
}

int store_body_route(struct store_body *body, struct store_user *user,
		     struct store_body **inner_r, struct store_error *err)
{
	if (body == NULL || STORE_OBJ_VF(body) != &route_body_vfuncs) {
		*inner_r = body;
		return 0;
	}
	struct route_body *rb = (struct route_body *)body;
	struct store *side = store_acl_backend_user(user)->store;
	enum store_backend b = side->set.backend;
	if (rb->inner[b] != NULL) {
		*inner_r = rb->inner[b];
		return 0;
	}
	if (!rb->finished)
		return store_set_error(err, STORE_ERR_INVALID,
				       "The body is not finished");
	struct store_body *in;
	if (side->vf->body_create(side, &in, err) < 0)
		return -1;
	if (rb->binary && side->vf->body_set_binary != NULL)
		side->vf->body_set_binary(in);
	char chunk[65536];
	size_t n;
	rewind(rb->copy);
	int ret = 0;
	while (ret == 0 && (n = fread(chunk, 1, sizeof(chunk), rb->copy)) > 0)
		ret = side->vf->body_write(in, chunk, n, err);
	if (ret == 0 && ferror(rb->copy))
		ret = store_set_error(err, STORE_ERR_TEMP, "read: %s",
				      strerror(errno));
	if (ret == 0)
		ret = side->vf->body_finish(in, err);
	(void)fseek(rb->copy, 0, SEEK_END);
	if (ret < 0) {
		side->vf->body_unref(in);
		return -1;
	}
	rb->inner[b] = in;
	*inner_r = in;
	return 0;
}

static int route_deliver(struct store_body *body, struct store_user *user,
			 const char *mailbox, const char *prefix,
			 size_t prefix_len,
			 const struct store_append_params *params,
			 uint32_t *uid_r, uint32_t *uidvalidity_r,
			 struct store_error *err)
{
	struct store_body *in;
	if (store_body_route(body, user, &in, err) < 0)
		return -1;
	return STORE_OBJ_VF(in)->body_deliver(in, user, mailbox, prefix,
					      prefix_len, params, uid_r,
					      uidvalidity_r, err);
}

static int route_bodies_deliver(struct store_body *const *bodies, size_t n,
				struct store_user *user, const char *mailbox,
				const struct store_append_params *params,
				uint32_t *uids, uint32_t *uidvalidity_r,
				struct store_error *err)
{
	struct store_body **in = xcalloc(n, sizeof(*in));
	int ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = store_body_route(bodies[i], user, &in[i], err);
	if (ret == 0) {
		const struct store_backend_vfuncs *vf = STORE_OBJ_VF(in[0]);
		if (vf->bodies_deliver != NULL) {
			ret = vf->bodies_deliver(in, n, user, mailbox, params,
						 uids, uidvalidity_r, err);
		} else {
			for (size_t i = 0; i < n; i++) {
				struct store_error e;
				if (vf->body_deliver(in[i], user, mailbox,
						     NULL, 0, params ? &params[i]
						     : NULL, &uids[i],
						     uidvalidity_r, &e) < 0) {
					uids[i] = 0;
					if (ret == 0 && err != NULL)
						*err = e;
					ret = -1;
				}
			}
		}
	}
	free(in);
	return ret;
}

static const struct store_backend_vfuncs route_body_vfuncs = {
	.name = "route",
	.body_write = route_write,
	.body_size = route_size,
	.body_set_binary = route_set_binary,
	.body_finish = route_finish,
	.body_deliver = route_deliver,
	.bodies_deliver = route_bodies_deliver,
	.body_unref = route_unref,
	.body_text = route_text,
};

/* ---- quiesce (loftd) -------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int store_move_quiesce(struct store *store, int64_t user_id,
		       unsigned timeout_ms, unsigned *sessions_r,
		       struct store_error *err)
{
	*sessions_r = 0;
	if (!store_route_locked(store, user_id))
		return store_set_error(err, STORE_ERR_INVALID,
				       "The account is not locked for a move");
	struct store_change change = {
		.user_id = user_id,
		.kind = STORE_CHANGE_LOGOUT,
		.modseq = STORE_LOGOUT_UNAVAILABLE,
	};
	*sessions_r = store_subscriber_count(store, user_id);
	store_publish(store, &change);
	int64_t until = now_ms() + timeout_ms;
	for (;;) {
		unsigned left = store_route_evict(store, user_id);
		if (store->pg != NULL)
			left += store_route_evict(store->pg, user_id);
		unsigned subs = store_subscriber_count(store, user_id);
		if (left == 0 && subs == 0)
			return 0;
		if (now_ms() >= until)
			return store_set_error(err, STORE_ERR_TEMP,
					       "%u handles and %u sessions of "
					       "the account still open after "
					       "%u ms", left, subs, timeout_ms);
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

int store_move_release(struct store *store, int64_t user_id,
		       unsigned timeout_ms, unsigned *closed_r,
		       struct store_error *err)
{
	*closed_r = 0;
	if (store->pg == NULL)
		return 0;
	struct store *where;
	if (store_route(store, user_id, false, &where, err) < 0)
		return -1;
	struct store *other = where == store ? store->pg : store;
	int64_t until = now_ms() + timeout_ms;
	unsigned first = 0;
	for (bool once = false;; once = true) {
		unsigned left = store_route_evict(other, user_id);
		if (!once)
			first = left;
		if (left == 0) {
			*closed_r = first;
			return 0;
		}
		if (now_ms() >= until)
			return store_set_error(err, STORE_ERR_TEMP,
					       "%u handles of the account on %s"
					       " still open after %u ms", left,
					       store_backend_name(
						       other->set.backend),
					       timeout_ms);
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}
