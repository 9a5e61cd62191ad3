/*
 * Blob files: one immutable file per message under blobs/<xx>/<name>,
 * written as tmp/<name> (line ends normalised to CRLF on the way), fsynced,
 * analysed, renamed into place and the directory fsynced, all on the
 * writer's own thread (so fsyncs of different messages overlap) before
 * the index row joins the group commit. A crash between the rename and
 * the commit leaves an orphan that the sweeper removes: the message was
 * never acknowledged.
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
	char *tmp = xasprintf("%s/tmp", dir), *blobs = xasprintf("%s/blobs", dir);
	int ret = 0;
	if ((mkdir(tmp, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(blobs, 0700) < 0 && errno != EEXIST))
		ret = -1;
	for (unsigned i = 0; i < 256 && ret == 0; i++) {
		char *sub = xasprintf("%s/%02x", blobs, i);
		if (mkdir(sub, 0700) < 0 && errno != EEXIST)
			ret = -1;
		free(sub);
	}
	if (ret == 0 && fsync)
		ret = sq_fsync_dir(blobs) < 0 || sq_fsync_dir(dir) < 0 ? -1 : 0;
	free(tmp);
	free(blobs);
	if (ret < 0)
		store_set_error(err, STORE_ERR_TEMP,
				"Cannot create the mail directory");
	return ret;
}

/* ---- the writer --------------------------------------------------- */

struct store_blob_writer {
	struct store_object obj;
	struct store_user *user;
	int fd;
	char *tmp_path;
	char name[33];
	uint64_t size;      /* bytes accepted (after normalisation) */
	uint64_t written;   /* bytes written to the file */
	uint64_t max;
	bool last_cr;
	bool failed;
	char *buf;
	size_t blen;
};

int sq_blob_writer_create(struct store_user *user,
			  struct store_blob_writer **w_r,
			  struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct store_blob_writer *w = xcalloc(1, sizeof(*w));
	w->obj.vf = &store_sqlite_vfuncs;
	sq_random_hex(w->name, 16);
	w->tmp_path = xasprintf("%s/tmp/%s", u->dir, w->name);
	w->fd = open(w->tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		log_error("store", NULL, "create %s: %s", w->tmp_path,
			  strerror(errno));
		free(w->tmp_path);
		free(w);
		return store_set_error(err, STORE_ERR_TEMP,
				       "Cannot store the message now");
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
	log_error("store", NULL, "write %s: %s", w->tmp_path, strerror(e));
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
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp_path != NULL)
		unlink(w->tmp_path);
	store_user_unref(&w->user);
	free(w->tmp_path);
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

/* Makes the tmp file durable and analyses it. */
static int writer_finish(struct store_blob_writer *w,
			 struct store_analysis *an, struct store_error *err)
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
	struct store_analysis an;
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
	char *final = sq_blob_path(u, w->name);
	char *dir = xasprintf("%s/blobs/%.2s", u->dir, w->name);
	int ret = 0;
	int r = rename(w->tmp_path, final);
	if (r < 0 && errno == ENOENT && mkdir(dir, 0700) == 0)
		r = rename(w->tmp_path, final);
	if (r < 0 || (u->fsync && sq_fsync_dir(dir) < 0)) {
		log_error("store", NULL, "rename %s: %s", final, strerror(errno));
		ret = store_set_error(err, STORE_ERR_TEMP,
				      "Cannot store the message now");
	} else {
		free(w->tmp_path);
		w->tmp_path = NULL;
	}
	if (ret == 0) {
		a.mailbox = mailbox;
		a.params = params;
		a.blob_name = w->name;
		a.size = w->size;
		a.an = &an;
		a.now = time(NULL);
		ret = sq_run(u, sq_append_tx, &a, err);
		if (ret < 0)
			unlink(final);
	}
	if (ret == 0) {
		if (uid_r != NULL)
			*uid_r = a.uid;
		if (uidvalidity_r != NULL)
			*uidvalidity_r = a.uidvalidity;
	}
	store_analysis_free(&an);
	free(final);
	free(dir);
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

/* ---- orphans ------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every blob name the index knows, sorted; -1 if the index cannot be
 * read (then nothing may be removed). */
static int index_blob_names(const char *dir, char ***names_r, size_t *count_r)
{
	char *path = xasprintf("%s/index.db", dir);
	struct sq_conn *c;
	int r = sq_conn_open(path, false, true, &c, NULL);
	free(path);
	if (r < 0)
		return -1;
	char **names = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st = sq_stmt(c, "SELECT name FROM blob");
	int rc = SQLITE_ERROR;
	if (st != NULL) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				names = xrealloc(names, cap * sizeof(char *));
			}
			names[n++] = xstrdup((const char *)sqlite3_column_text(st, 0));
		}
		sqlite3_reset(st);
	}
	sq_conn_close(c);
	if (rc != SQLITE_DONE) {
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return -1;
	}
	if (n > 1)
		qsort(names, n, sizeof(char *), cmp_str);
	*names_r = names;
	*count_r = n;
	return 0;
}

static void sweep_file(const char *path, const char *name, time_t older_than,
		       bool repair, store_report_fn *report, void *ctx,
		       unsigned *found)
{
	struct stat stt;
	if (lstat(path, &stt) < 0 || !S_ISREG(stt.st_mode))
		return;
	/* A young file may belong to an append still in flight. */
	if (stt.st_mtime >= older_than)
		return;
	(*found)++;
	char line[512];
	if (repair && unlink(path) == 0)
		snprintf(line, sizeof(line),
			 "orphan message file %s (%lld bytes) removed", name,
			 (long long)stt.st_size);
	else
		snprintf(line, sizeof(line),
			 "orphan message file %s (%lld bytes) %s", name,
			 (long long)stt.st_size,
			 repair ? "could not be removed" : "found");
	if (report != NULL)
		report(ctx, line);
}

void sq_sweep_user(struct store *store, int64_t user_id, const char *dir,
		   time_t older_than, store_report_fn *report, void *ctx,
		   bool repair, unsigned *found_r)
{
	(void)store;
	(void)user_id;
	*found_r = 0;
	char **names;
	size_t n;
	if (index_blob_names(dir, &names, &n) < 0)
		return;
	for (unsigned i = 0; i < 256; i++) {
		char *sub = xasprintf("%s/blobs/%02x", dir, i);
		DIR *d = opendir(sub);
		struct dirent *e;
		while (d != NULL && (e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			const char *key = e->d_name;
			if (n > 0 && bsearch(&key, names, n, sizeof(char *), cmp_str))
				continue;
			char *p = xasprintf("%s/%s", sub, e->d_name);
			sweep_file(p, e->d_name, older_than, repair, report, ctx,
				   found_r);
			free(p);
		}
		if (d != NULL)
			closedir(d);
		free(sub);
	}
	/* Unfinished appends of a process that died. */
	char *tmp = xasprintf("%s/tmp", dir);
	DIR *d = opendir(tmp);
	struct dirent *e;
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char *p = xasprintf("%s/%s", tmp, e->d_name);
		sweep_file(p, e->d_name, older_than, repair, report, ctx,
			   found_r);
		free(p);
	}
	if (d != NULL)
		closedir(d);
	free(tmp);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static void sweep_log(void *ctx, const char *line)
{
	log_info("store", NULL, "user %lld: %s", *(long long *)ctx, line);
}

/* The background sweep after start: files older than this process that
 * no index row names are left from a crash before a commit. */
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
			char *udir = xasprintf("%s/%s", sdir, e->d_name);
			unsigned found;
			sq_sweep_user(store, id, udir, s->started - 2,
				      sweep_log, &id, true, &found);
			free(udir);
		}
		if (d != NULL)
			closedir(d);
		free(sdir);
	}
	return NULL;
}
