/*
 * Blob files: one immutable file per message under blobs/<xx>/<name>. The
 * file is created at its final name (no index row names it yet, so no
 * reader can reach it) and its directory entry is made durable by a small
 * fsync pool while the message streams in; the writer normalises line
 * ends to CRLF, fsyncs the file on its own thread (so fsyncs of different
 * messages overlap), analyses it, waits for the directory fsync, and only
 * then joins the group commit. A crash before the commit leaves an orphan
 * that the sweeper removes: the message was never acknowledged.
 */
#include "sq-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define WRITE_BUF_SIZE (64 * 1024)

int sq_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

char *sq_blob_path(struct sq_user *u, const char *name)
{
	return xasprintf("%s/blobs/%.2s/%s", u->dir, name, name);
}

int sq_blob_dirs_create(const char *dir, bool fsync, struct store_error *err)
{
	char *blobs = xasprintf("%s/blobs", dir);
	int ret = 0;
	if (mkdir(blobs, 0700) < 0 && errno != EEXIST)
		ret = -1;
	for (unsigned i = 0; i < 256 && ret == 0; i++) {
		char *sub = xasprintf("%s/%02x", blobs, i);
		if (mkdir(sub, 0700) < 0 && errno != EEXIST)
			ret = -1;
		free(sub);
	}
	if (ret == 0 && fsync)
		ret = sq_fsync_dir(blobs) < 0 || sq_fsync_dir(dir) < 0 ? -1 : 0;
	free(blobs);
	if (ret < 0)
		store_set_error(err, STORE_ERR_TEMP,
				"Cannot create the mail directory");
	return ret;
}

/* ---- directory fsyncs ---------------------------------------------- */

/* A directory fsync asked for by a writer, done by the pool. Several
 * queued for the same directory are served by one fsync. */
struct sq_dirsync {
	char *dir;
	bool done;
	int ret;
	struct sq_dirsync *next;
};

static void *fsync_pool_main(void *arg)
{
	struct sq_store *s = arg;
	pthread_mutex_lock(&s->fsync_mu);
	for (;;) {
		while (s->fsync_queue == NULL && !s->fsync_stop)
			pthread_cond_wait(&s->fsync_cond, &s->fsync_mu);
		if (s->fsync_queue == NULL)
			break;
		struct sq_dirsync *first = s->fsync_queue, *batch = NULL;
		/* take every job for the same directory */
		for (struct sq_dirsync **pp = &s->fsync_queue; *pp != NULL;) {
			struct sq_dirsync *j = *pp;
			if (strcmp(j->dir, first->dir) == 0) {
				*pp = j->next;
				j->next = batch;
				batch = j;
			} else {
				pp = &j->next;
			}
		}
		pthread_mutex_unlock(&s->fsync_mu);
		int ret = sq_fsync_dir(batch->dir);
		pthread_mutex_lock(&s->fsync_mu);
		for (struct sq_dirsync *j = batch, *next; j != NULL; j = next) {
			next = j->next;
			j->ret = ret;
			j->done = true;
		}
		pthread_cond_broadcast(&s->fsync_done);
	}
	pthread_mutex_unlock(&s->fsync_mu);
	return NULL;
}

void sq_fsync_pool_start(struct sq_store *s)
{
	pthread_mutex_init(&s->fsync_mu, NULL);
	pthread_cond_init(&s->fsync_cond, NULL);
	pthread_cond_init(&s->fsync_done, NULL);
	for (size_t i = 0; i < SQ_FSYNC_THREADS; i++) {
		if (pthread_create(&s->fsync_threads[i], NULL, fsync_pool_main,
				   s) == 0)
			s->fsync_thread_count++;
	}
}

void sq_fsync_pool_stop(struct sq_store *s)
{
	pthread_mutex_lock(&s->fsync_mu);
	s->fsync_stop = true;
	pthread_cond_broadcast(&s->fsync_cond);
	pthread_mutex_unlock(&s->fsync_mu);
	for (size_t i = 0; i < s->fsync_thread_count; i++)
		pthread_join(s->fsync_threads[i], NULL);
	pthread_mutex_destroy(&s->fsync_mu);
	pthread_cond_destroy(&s->fsync_cond);
	pthread_cond_destroy(&s->fsync_done);
}

static void dirsync_submit(struct sq_store *s, struct sq_dirsync *j)
{
	if (s->fsync_thread_count == 0) {
		j->ret = sq_fsync_dir(j->dir);
		j->done = true;
		return;
	}
	pthread_mutex_lock(&s->fsync_mu);
	j->next = s->fsync_queue;
	s->fsync_queue = j;
	pthread_cond_signal(&s->fsync_cond);
	pthread_mutex_unlock(&s->fsync_mu);
}

static int dirsync_wait(struct sq_store *s, struct sq_dirsync *j)
{
	pthread_mutex_lock(&s->fsync_mu);
	while (!j->done)
		pthread_cond_wait(&s->fsync_done, &s->fsync_mu);
	pthread_mutex_unlock(&s->fsync_mu);
	return j->ret;
}

/* ---- the writer --------------------------------------------------- */

struct store_blob_writer {
	struct store_object obj;
	struct store_user *user;
	int fd;
	char *path;         /* the final name; NULL once committed */
	char name[33];
	uint64_t size;      /* bytes accepted (after normalisation) */
	uint64_t written;   /* bytes written to the file */
	uint64_t max;
	bool last_cr;
	bool failed;
	bool dirsync_pending;
	struct sq_dirsync dirsync;
	char *buf;
	size_t blen;
};

int sq_blob_writer_create(struct store_user *user,
			  struct store_blob_writer **w_r,
			  struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_store *s = SQS(user->store);
	struct store_blob_writer *w = xcalloc(1, sizeof(*w));
	w->obj.vf = &store_sqlite_vfuncs;
	sq_random_hex(w->name, 16);
	sq_inflight_add(s, w->name);
	w->path = sq_blob_path(u, w->name);
	w->dirsync.dir = xasprintf("%s/blobs/%.2s", u->dir, w->name);
	int flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC;
	w->fd = open(w->path, flags, 0600);
	if (w->fd < 0 && errno == ENOENT && mkdir(w->dirsync.dir, 0700) == 0)
		w->fd = open(w->path, flags, 0600);
	if (w->fd < 0) {
		log_error("store", NULL, "create %s: %s", w->path,
			  strerror(errno));
		sq_inflight_del(s, w->name);
		free(w->path);
		free(w->dirsync.dir);
		free(w);
		return store_set_error(err, STORE_ERR_TEMP,
				       "Cannot store the message now");
	}
	if (user->store->set.fsync) {
		w->dirsync_pending = true;
		dirsync_submit(s, &w->dirsync);
	}
	w->max = user->store->set.max_message_size;
	w->buf = xmalloc(WRITE_BUF_SIZE);
	store_user_ref(user);
	w->user = user;
	*w_r = w;
	return 0;
}

static int writer_error(struct store_blob_writer *w, int e,
			struct store_error *err)
{
	w->failed = true;
	if (e == ENOSPC || e == EDQUOT)
		return store_set_error(err, STORE_ERR_TEMP,
				       "Disk full, try again later");
	log_error("store", NULL, "write %s: %s", w->path, strerror(e));
	return store_set_error(err, STORE_ERR_TEMP,
			       "Cannot store the message now");
}

static int writer_flush(struct store_blob_writer *w, struct store_error *err)
{
	struct store *store = w->user->store;
	size_t off = 0;
	while (off < w->blen) {
		size_t n = w->blen - off;
		uint64_t fail_at = atomic_load(&store->test_fail_write_after);
		if (fail_at != 0 && w->written + n >= fail_at)
			return writer_error(w, ENOSPC, err);
		ssize_t r = write(w->fd, w->buf + off, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return writer_error(w, errno, err);
		}
		off += (size_t)r;
		w->written += (uint64_t)r;
	}
	w->blen = 0;
	return 0;
}

static int writer_put(struct store_blob_writer *w, const char *p, size_t n,
		      struct store_error *err)
{
	w->size += n;
	if (w->max != 0 && w->size > w->max) {
		w->failed = true;
		return store_set_error(err, STORE_ERR_LIMIT,
				       "Message is too large");
	}
	while (n > 0) {
		if (w->blen == WRITE_BUF_SIZE && writer_flush(w, err) < 0)
			return -1;
		size_t k = WRITE_BUF_SIZE - w->blen;
		if (k > n)
			k = n;
		memcpy(w->buf + w->blen, p, k);
		w->blen += k;
		p += k;
		n -= k;
	}
	return 0;
}

/* Normalises bare LF to CRLF; everything else (NULs included) is kept. */
int sq_blob_writer_write(struct store_blob_writer *w, const void *data,
			 size_t len, struct store_error *err)
{
	if (w->failed)
		return store_set_error(err, STORE_ERR_TEMP,
				       "The message was not stored");
	const char *p = data, *end = p + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t chunk = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (chunk > 0) {
			if (writer_put(w, p, chunk, err) < 0)
				return -1;
			w->last_cr = p[chunk - 1] == '\r';
			p += chunk;
		}
		if (nl == NULL)
			break;
		if (writer_put(w, w->last_cr ? "\n" : "\r\n",
			       w->last_cr ? 1 : 2, err) < 0)
			return -1;
		w->last_cr = false;
		p++;
	}
	return 0;
}

uint64_t sq_blob_writer_size(const struct store_blob_writer *w)
{
	return w->size;
}

static void writer_free(struct store_blob_writer *w)
{
	struct sq_store *s = SQS(w->user->store);
	if (w->dirsync_pending)
		dirsync_wait(s, &w->dirsync);
	if (w->fd >= 0)
		close(w->fd);
	if (w->path != NULL)
		unlink(w->path);
	/* after the commit (or the unlink): the sweeper may judge it now */
	sq_inflight_del(s, w->name);
	store_user_unref(&w->user);
	free(w->path);
	free(w->dirsync.dir);
	free(w->buf);
	free(w);
}

void sq_blob_writer_abort(struct store_blob_writer **wp)
{
	struct store_blob_writer *w = *wp;
	*wp = NULL;
	if (w != NULL)
		writer_free(w);
}

/* Makes the file durable and analyses it. */
static int writer_finish(struct store_blob_writer *w,
			 struct mail_result *an, struct store_error *err)
{
	if (writer_flush(w, err) < 0)
		return -1;
	if (w->user->store->set.fsync && fsync(w->fd) < 0)
		return writer_error(w, errno, err);
	if (w->size == 0) {
		store_analyze("", 0, an);
		return 0;
	}
	void *map = mmap(NULL, w->size, PROT_READ, MAP_SHARED, w->fd, 0);
	if (map == MAP_FAILED)
		return writer_error(w, errno, err);
	store_analyze(map, w->size, an);
	munmap(map, w->size);
	return 0;
}

int sq_blob_writer_commit(struct store_blob_writer **wp, const char *mailbox,
			  const struct store_append_params *params,
			  uint32_t *uid_r, uint32_t *uidvalidity_r,
			  struct store_error *err)
{
	struct store_blob_writer *w = *wp;
	*wp = NULL;
	if (w->failed) {
		writer_free(w);
		return store_set_error(err, STORE_ERR_TEMP,
				       "The message was not stored");
	}
	struct sq_user *u = SQU(w->user);
	struct mail_result an;
	struct sq_append_arg a;
	memset(&a, 0, sizeof(a));
	if (sq_limits_get(w->user, &a.limits, err) < 0) {
		writer_free(w);
		return -1;
	}
	if (writer_finish(w, &an, err) < 0) {
		writer_free(w);
		return -1;
	}
	int ret = 0;
	if (w->dirsync_pending) {
		w->dirsync_pending = false;
		if (dirsync_wait(SQS(w->user->store), &w->dirsync) < 0) {
			log_error("store", NULL, "fsync %s: %s", w->dirsync.dir,
				  strerror(errno));
			ret = store_set_error(err, STORE_ERR_TEMP,
					      "Cannot store the message now");
		}
	}
	if (ret == 0) {
		a.mailbox = mailbox;
		a.params = params;
		a.blob_name = w->name;
		a.size = w->size;
		a.an = &an;
		a.now = time(NULL);
		ret = sq_run(u, sq_append_tx, &a, err);
	}
	if (ret == 0) {
		sq_indexer_kick(w->user->store, w->user->id);
		/* committed: the file is the message's now */
		free(w->path);
		w->path = NULL;
		if (uid_r != NULL)
			*uid_r = a.uid;
		if (uidvalidity_r != NULL)
			*uidvalidity_r = a.uidvalidity;
	}
	mail_result_free(&an);
	writer_free(w);
	return ret;
}

/* ---- reading ------------------------------------------------------ */

struct sq_blob_map {
	struct store_object obj;
	void *map;
	size_t len;
};

int sq_blob_open(struct store_user *user, const char *mailbox, uint32_t uid,
		 struct store_blob *blob_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	char *name = NULL;
	sqlite3_stmt *st = sq_stmt(c, "SELECT b.name FROM msg m"
				      " JOIN blob b ON b.id = m.blob"
				      " JOIN mailbox x ON x.id = m.mailbox"
				      " WHERE x.name = ? AND m.uid = ?");
	int rc = SQLITE_ERROR;
	if (st != NULL) {
		sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, uid);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			name = xstrdup((const char *)sqlite3_column_text(st, 0));
		sqlite3_reset(st);
	}
	int ret = 0;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = sq_db_error(c, err, "blob");
	sq_reader_put(u, c);
	if (ret < 0)
		return -1;
	if (name == NULL)
		return store_set_error(err, STORE_ERR_NOTFOUND,
				       "No such message");
	char *path = sq_blob_path(u, name);
	free(name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat stt;
	if (fd < 0 || fstat(fd, &stt) < 0) {
		log_error("store", NULL, "open %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(path);
		return store_set_error(err, errno == ENOENT ? STORE_ERR_INTERNAL
							    : STORE_ERR_TEMP,
				       "The message file cannot be read");
	}
	free(path);
	struct sq_blob_map *m = xcalloc(1, sizeof(*m));
	m->obj.vf = &store_sqlite_vfuncs;
	m->len = (size_t)stt.st_size;
	if (m->len > 0) {
		m->map = mmap(NULL, m->len, PROT_READ, MAP_SHARED, fd, 0);
		if (m->map == MAP_FAILED) {
			close(fd);
			free(m);
			return store_set_error(err, STORE_ERR_TEMP,
					       "The message file cannot be read");
		}
		madvise(m->map, m->len, MADV_SEQUENTIAL);
	}
	close(fd);
	blob_r->data = m->len > 0 ? m->map : "";
	blob_r->len = m->len;
	blob_r->priv = m;
	return 0;
}

void sq_blob_close(struct store_blob *blob)
{
	struct sq_blob_map *m = blob->priv;
	if (m->len > 0)
		munmap(m->map, m->len);
	free(m);
	blob->priv = NULL;
	blob->data = NULL;
	blob->len = 0;
}

/* ---- in-flight blobs ---------------------------------------------- */

/* The names of blobs this process is writing (file made, index row not
 * yet committed): the sweeper must leave them alone whatever their age. */
void sq_inflight_add(struct sq_store *s, const char *name)
{
	pthread_mutex_lock(&s->inflight_mu);
	if (s->inflight_count == s->inflight_cap) {
		s->inflight_cap = s->inflight_cap ? s->inflight_cap * 2 : 16;
		s->inflight = xrealloc(s->inflight,
				       s->inflight_cap * sizeof(*s->inflight));
	}
	memcpy(s->inflight[s->inflight_count++], name, 33);
	pthread_mutex_unlock(&s->inflight_mu);
}

void sq_inflight_del(struct sq_store *s, const char *name)
{
	pthread_mutex_lock(&s->inflight_mu);
	for (size_t i = 0; i < s->inflight_count; i++) {
		if (strcmp(s->inflight[i], name) == 0) {
			memcpy(s->inflight[i], s->inflight[--s->inflight_count], 33);
			break;
		}
	}
	pthread_mutex_unlock(&s->inflight_mu);
}

static bool inflight_has(struct sq_store *s, const char *name)
{
	bool r = false;
	pthread_mutex_lock(&s->inflight_mu);
	for (size_t i = 0; i < s->inflight_count && !r; i++)
		r = strcmp(s->inflight[i], name) == 0;
	pthread_mutex_unlock(&s->inflight_mu);
	return r;
}

/* ---- orphans ------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct sweep {
	struct sq_store *s;
	struct sq_conn *c;
	char **names;          /* the index's blob names, sorted */
	size_t count;
	int64_t older_than;    /* ns; younger files get a closer look */
	bool live;             /* this process's own sweep: ask the registry */
	bool repair;
	store_report_fn *report;
	void *ctx;
	unsigned found;
};

/* Every blob name the index knows; -1 if the index cannot be read (then
 * nothing may be removed). */
static int sweep_load(struct sweep *sw, const char *dir)
{
	char *path = xasprintf("%s/index.db", dir);
	int r = access(path, F_OK) == 0
			? sq_conn_open(path, false, true, &sw->c, NULL)
			: -1;
	free(path);
	if (r < 0)
		return -1;
	/* An index newer than this build may name its files elsewhere:
	 * what looks orphaned to us may be live mail. */
	unsigned version;
	if (sq_index_version(sw->c, &version) < 0 ||
	    version > sq_schema_known())
		return -1;
	size_t cap = 0;
	sqlite3_stmt *st = sq_stmt(sw->c, "SELECT name FROM blob");
	int rc = SQLITE_ERROR;
	if (st != NULL) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (sw->count == cap) {
				cap = cap ? cap * 2 : 256;
				sw->names = xrealloc(sw->names, cap * sizeof(char *));
			}
			sw->names[sw->count++] =
				xstrdup((const char *)sqlite3_column_text(st, 0));
		}
		sqlite3_reset(st);
	}
	if (rc != SQLITE_DONE)
		return -1;
	if (sw->count > 1)
		qsort(sw->names, sw->count, sizeof(char *), cmp_str);
	return 0;
}

static bool index_has(struct sweep *sw, const char *name)
{
	if (sw->count > 0 &&
	    bsearch(&name, sw->names, sw->count, sizeof(char *), cmp_str))
		return true;
	/* not in the snapshot: committed since? */
	sqlite3_stmt *st = sq_stmt(sw->c, "SELECT 1 FROM blob WHERE name = ?");
	if (st == NULL)
		return true;  /* cannot tell: keep it */
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc != SQLITE_DONE;
}

static void sweep_file(struct sweep *sw, const char *path, const char *name)
{
	struct stat stt;
	if (lstat(path, &stt) < 0 || !S_ISREG(stt.st_mode))
		return;
	int64_t mtime = (int64_t)stt.st_mtim.tv_sec * 1000000000 +
			stt.st_mtim.tv_nsec;
	if (mtime >= sw->older_than) {
		/* Maybe an append in flight: another process's (leave it) or
		 * this one's (the registry knows). */
		if (!sw->live || inflight_has(sw->s, name))
			return;
	}
	/* The registry first, the index second. An append registers its
	 * name before the file exists and leaves the registry only after its
	 * commit, so a file that is not in flight now was either committed
	 * already (the fresh query below sees it) or left by a dead process.
	 * The other order loses mail: a query that runs while the append is
	 * in flight misses it, then the append commits and leaves the
	 * registry before the registry is asked. */
	if ((sw->live && inflight_has(sw->s, name)) || index_has(sw, name))
		return;
	sw->found++;
	char line[512];
	if (sw->repair && unlink(path) == 0)
		snprintf(line, sizeof(line),
			 "orphan message file %s (%lld bytes) removed", name,
			 (long long)stt.st_size);
	else
		snprintf(line, sizeof(line),
			 "orphan message file %s (%lld bytes) %s", name,
			 (long long)stt.st_size,
			 sw->repair ? "could not be removed" : "found");
	if (sw->report != NULL)
		sw->report(sw->ctx, line);
}

static void sweep_dir(struct sweep *sw, const char *sub)
{
	DIR *d = opendir(sub);
	struct dirent *e;
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char *p = xasprintf("%s/%s", sub, e->d_name);
		sweep_file(sw, p, e->d_name);
		free(p);
	}
	if (d != NULL)
		closedir(d);
}

void sq_sweep_user(struct store *store, const char *dir, int64_t older_than,
		   bool live, store_report_fn *report, void *ctx, bool repair,
		   unsigned *found_r)
{
	struct sweep sw;
	memset(&sw, 0, sizeof(sw));
	sw.s = SQS(store);
	sw.older_than = older_than;
	sw.live = live;
	sw.repair = repair;
	sw.report = report;
	sw.ctx = ctx;
	if (sweep_load(&sw, dir) == 0) {
		for (unsigned i = 0; i < 256; i++) {
			char *sub = xasprintf("%s/blobs/%02x", dir, i);
			sweep_dir(&sw, sub);
			free(sub);
		}
		/* tmp/: where older versions wrote unfinished appends */
		char *tmp = xasprintf("%s/tmp", dir);
		sweep_dir(&sw, tmp);
		free(tmp);
	}
	sq_conn_close(sw.c);
	for (size_t i = 0; i < sw.count; i++)
		free(sw.names[i]);
	free(sw.names);
	*found_r = sw.found;
}

static void sweep_log(void *ctx, const char *line)
{
	log_info("store", NULL, "user %lld: %s", *(long long *)ctx, line);
}

/* The background sweep after start: a file that no index row names is
 * left from a crash before a commit, unless this process is writing it
 * (the in-flight registry). */
void *sq_sweeper_main(void *arg)
{
	struct store *store = arg;
	struct sq_store *s = SQS(store);
	for (unsigned shard = 0; shard < 256 && !atomic_load(&s->stop); shard++) {
		char *sdir = xasprintf("%s/%02x", s->mail_dir, shard);
		DIR *d = opendir(sdir);
		struct dirent *e;
		while (d != NULL && (e = readdir(d)) != NULL &&
		       !atomic_load(&s->stop)) {
			char *end;
			long long id = strtoll(e->d_name, &end, 10);
			if (id <= 0 || *end != '\0')
				continue;
			/* The account's handle is held across the sweep: see
			 * sq_sweep_user. An account without an index has no
			 * blobs the sweep could judge. */
			struct store_user *user;
			struct store_error err;
			if (store_user_open_existing(store, id, &user, &err) < 0)
				continue;
			char *udir = xasprintf("%s/%s", sdir, e->d_name);
			unsigned found;
			sq_sweep_user(store, udir, s->started_ns, true, sweep_log,
				      &id, true, &found);
			free(udir);
			store_user_unref(&user);
		}
		if (d != NULL)
			closedir(d);
		free(sdir);
	}
	return NULL;
}
