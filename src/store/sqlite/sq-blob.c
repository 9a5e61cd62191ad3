/*
 * Message files and reading messages. A body lives in the index (small)
 * or in an immutable file blobs/<xx>/<name> linked there by its delivery
 * (sq-body.c); readers get the copy's prefix and the body as one range,
 * checked against the body's crc32. Files are removed only after the
 * commit that dropped their last row, and only once no reader that could
 * still have looked the row up is between its lookup and its open(). The
 * background sweep removes files that no row names (a crash before a
 * commit), and the spill files of bodies a dead process left in mail/tmp.
 */
#include "sq-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>


#include "log.h"

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

bool sq_head_of(const char *p, size_t len, int64_t *head_r)
{
	size_t pos = 0, n = len;
	while (pos < len) {
		const char *nl = memchr(p + pos, '\n', len - pos);
		if (nl == NULL)
			break;
		size_t k = (size_t)(nl - (p + pos)) + 1;
		if (k == 1 || (k == 2 && p[pos] == '\r')) {
			n = pos + k;
			break;
		}
		pos += k;
	}
	if (n > INT32_MAX)
		return false;
	*head_r = (int64_t)n << 32 | sq_crc32(0, p, n);
	return true;
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

int sq_dirsync(struct sq_store *s, const char *dir)
{
	struct sq_dirsync j;
	memset(&j, 0, sizeof(j));
	j.dir = (char *)dir;
	dirsync_submit(s, &j);
	return dirsync_wait(s, &j);
}

/* ---- deferred removal ---------------------------------------------- */

uint64_t sq_read_enter(struct sq_user *u)
{
	pthread_mutex_lock(&u->unlink_mu);
	uint64_t t = ++u->read_ticket;
	if (u->readers_in_count == u->readers_in_cap) {
		u->readers_in_cap = u->readers_in_cap ? u->readers_in_cap * 2 : 8;
		u->readers_in = xrealloc(u->readers_in, u->readers_in_cap *
								sizeof(uint64_t));
	}
	u->readers_in[u->readers_in_count++] = t;
	pthread_mutex_unlock(&u->unlink_mu);
	return t;
}

static void unlink_blob(struct sq_user *u, const char *name)
{
	char *path = sq_blob_path(u, name);
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("store", NULL, "unlink %s: %s", path, strerror(errno));
	free(path);
}

void sq_read_leave(struct sq_user *u, uint64_t ticket)
{
	pthread_mutex_lock(&u->unlink_mu);
	uint64_t oldest = UINT64_MAX;
	for (size_t i = 0; i < u->readers_in_count; i++) {
		if (u->readers_in[i] == ticket)
			u->readers_in[i--] = u->readers_in[--u->readers_in_count];
		else if (u->readers_in[i] < oldest)
			oldest = u->readers_in[i];
	}
	/* files no reader still inside could have looked up */
	char **go = NULL;
	size_t ngo = 0;
	for (size_t i = 0; i < u->unlink_count; i++) {
		if (u->unlinks[i].after < oldest) {
			go = xrealloc(go, (ngo + 1) * sizeof(char *));
			go[ngo++] = u->unlinks[i].name;
			u->unlinks[i--] = u->unlinks[--u->unlink_count];
		}
	}
	pthread_mutex_unlock(&u->unlink_mu);
	for (size_t i = 0; i < ngo; i++) {
		unlink_blob(u, go[i]);
		free(go[i]);
	}
	free(go);
}

/* After the commit that dropped the file's last row: readers that
 * entered before now may have found the row in their snapshot. */
void sq_unlink_deferred(struct sq_user *u, const char *name)
{
	pthread_mutex_lock(&u->unlink_mu);
	uint64_t now = u->read_ticket;
	bool wait = false;
	for (size_t i = 0; i < u->readers_in_count && !wait; i++)
		wait = u->readers_in[i] <= now;
	if (wait) {
		u->unlinks = xrealloc(u->unlinks, (u->unlink_count + 1) *
							  sizeof(*u->unlinks));
		u->unlinks[u->unlink_count].name = xstrdup(name);
		u->unlinks[u->unlink_count++].after = now;
	}
	pthread_mutex_unlock(&u->unlink_mu);
	if (!wait)
		unlink_blob(u, name);
}

/* When the user is closed: no reader is left. */
void sq_unlink_pending_all(struct sq_user *u)
{
	for (size_t i = 0; i < u->unlink_count; i++) {
		unlink_blob(u, u->unlinks[i].name);
		free(u->unlinks[i].name);
	}
	free(u->unlinks);
	u->unlinks = NULL;
	u->unlink_count = 0;
	free(u->readers_in);
	u->readers_in = NULL;
	u->readers_in_count = u->readers_in_cap = 0;
}

/* ---- reading ------------------------------------------------------ */

/* What a struct store_blob's priv holds: the prefix and the body either
 * copied to the heap (a body in the index), or the prefix on anonymous
 * pages right in front of the mapped file, so the whole message is one
 * range without copying the file. */
struct sq_blob_map {
	struct store_object obj;
	char *heap;
	void *region;
	size_t region_len;
};

static int damaged(struct sq_user *u, const char *what, const char *name,
		   struct store_error *err)
{
	log_error("store", NULL, "user %lld: message %s %s: it is not served;"
		  " run loftctl check", (long long)u->user->id, name, what);
	store_set_error(err, STORE_ERR_TEMP,
			"The message is damaged and cannot be read");
	if (err != NULL)
		err->damaged = true;
	return -1;
}

struct sq_blob_row {
	int64_t id;
	char *name;
	enum sq_body_kind kind;
	char *prefix;
	size_t prefix_len;
	uint64_t size;
	bool has_crc;
	uint32_t crc;
	bool has_head;        /* blob.head: the body's header block */
	size_t head_len;
	uint32_t head_crc;
};

static void blob_row_free(struct sq_blob_row *r)
{
	free(r->name);
	free(r->prefix);
}

/* The body of an inline blob, prefix in front, on the heap. */
static int read_inline(struct sq_user *u, struct sq_conn *c,
		       const struct sq_blob_row *r, struct sq_blob_map *m,
		       size_t *len_r, struct store_error *err)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT data FROM body WHERE id = ?");
	if (st == NULL)
		return sq_db_error(c, err, "body");
	sqlite3_bind_int64(st, 1, r->id);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_db_error(c, err, "body");
		return damaged(u, "has no body", r->name, err);
	}
	const void *data = sqlite3_column_blob(st, 0);
	size_t n = (size_t)sqlite3_column_bytes(st, 0);
	uint32_t crc = sq_crc32(0, data, n);
	if (r->prefix_len + n != r->size || (r->has_crc && crc != r->crc)) {
		sqlite3_reset(st);
		return damaged(u, "fails its checksum", r->name, err);
	}
	m->heap = xmalloc(r->prefix_len + n + 1);
	memcpy(m->heap, r->prefix, r->prefix_len);
	if (n > 0)
		memcpy(m->heap + r->prefix_len, data, n);
	sqlite3_reset(st);
	*len_r = r->prefix_len + n;
	return 0;
}

/* The header block of an inline body, prefix in front, on the heap:
 * only the pages that hold it are read (incremental blob I/O), checked
 * against the block's own crc. */
static int read_inline_head(struct sq_user *u, struct sq_conn *c,
			    const struct sq_blob_row *r, struct sq_blob_map *m,
			    size_t *len_r, struct store_error *err)
{
	sqlite3_blob *h;
	int rc = sqlite3_blob_open(c->db, "main", "body", "data", r->id, 0,
				   &h);
	if (rc == SQLITE_ERROR) {
		/* "no such rowid" */
		return damaged(u, "has no body", r->name, err);
	}
	if (rc != SQLITE_OK)
		return sq_db_error(c, err, "body");
	size_t n = (size_t)sqlite3_blob_bytes(h);
	if (r->prefix_len + n != r->size || r->head_len > n) {
		sqlite3_blob_close(h);
		return damaged(u, "fails its checksum", r->name, err);
	}
	m->heap = xmalloc(r->prefix_len + r->head_len + 1);
	memcpy(m->heap, r->prefix, r->prefix_len);
	rc = r->head_len > 0
		? sqlite3_blob_read(h, m->heap + r->prefix_len,
				    (int)r->head_len, 0)
		: SQLITE_OK;
	sqlite3_blob_close(h);
	if (rc != SQLITE_OK)
		return sq_db_error(c, err, "body");
	if (sq_crc32(0, m->heap + r->prefix_len, r->head_len) != r->head_crc)
		return damaged(u, "fails its checksum", r->name, err);
	*len_r = r->prefix_len + r->head_len;
	return 0;
}

/* The size of an open body file, which its row must agree with. */
static int file_size(struct sq_user *u, int fd, const struct sq_blob_row *r,
		     size_t *flen_r, struct store_error *err)
{
	struct stat stt;
	if (fstat(fd, &stt) < 0)
		return store_set_error(err, STORE_ERR_TEMP,
				       "The message file cannot be read");
	*flen_r = (size_t)stt.st_size;
	if (r->prefix_len + *flen_r != r->size)
		return damaged(u, "has the wrong size", r->name, err);
	return 0;
}

/* The header block of a body file, prefix in front, on the heap. */
static int read_file_head(struct sq_user *u, int fd,
			  const struct sq_blob_row *r, struct sq_blob_map *m,
			  size_t *len_r, struct store_error *err)
{
	size_t flen = 0;
	if (file_size(u, fd, r, &flen, err) < 0)
		return -1;
	if (r->head_len > flen)
		return damaged(u, "fails its checksum", r->name, err);
	m->heap = xmalloc(r->prefix_len + r->head_len + 1);
	memcpy(m->heap, r->prefix, r->prefix_len);
	char *p = m->heap + r->prefix_len;
	for (size_t got = 0; got < r->head_len;) {
		ssize_t k = pread(fd, p + got, r->head_len - got, (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return store_set_error(err, STORE_ERR_TEMP,
					       "The message file cannot be"
					       " read");
		got += (size_t)k;
	}
	if (sq_crc32(0, p, r->head_len) != r->head_crc)
		return damaged(u, "fails its checksum", r->name, err);
	*len_r = r->prefix_len + r->head_len;
	return 0;
}

/* Maps an open body file behind its prefix. */
static int map_file(struct sq_user *u, int fd, const struct sq_blob_row *r,
		    struct sq_blob_map *m, const char **data_r, size_t *len_r,
		    struct store_error *err)
{
	size_t flen = 0;
	if (file_size(u, fd, r, &flen, err) < 0)
		return -1;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t head = (r->prefix_len + pg - 1) / pg * pg;
	m->region_len = head + flen;
	if (m->region_len == 0) {
		*data_r = "";
		*len_r = 0;
		return 0;
	}
	m->region = mmap(NULL, m->region_len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m->region == MAP_FAILED) {
		m->region = NULL;
		return store_set_error(err, STORE_ERR_TEMP,
				       "The message file cannot be read");
	}
	char *base = m->region;
	memcpy(base + head - r->prefix_len, r->prefix, r->prefix_len);
	if (head > 0)
		mprotect(base, head, PROT_READ);
	if (flen > 0 &&
	    mmap(base + head, flen, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0) ==
		    MAP_FAILED)
		return store_set_error(err, STORE_ERR_TEMP,
				       "The message file cannot be read");
	if (flen > 0)
		madvise(base + head, flen, MADV_SEQUENTIAL);
	if (r->has_crc &&
	    sq_crc32(0, base + head, flen) != r->crc)
		return damaged(u, "fails its checksum", r->name, err);
	*data_r = base + head - r->prefix_len;
	*len_r = r->prefix_len + flen;
	return 0;
}

static void blob_map_free(struct sq_blob_map *m)
{
	if (m->region != NULL)
		munmap(m->region, m->region_len);
	free(m->heap);
	free(m);
}

/* The blob row of a message (mailbox, uid) or of a blob id (mailbox
 * NULL), in c's snapshot: 1 found, 0 none, -1 error. */
static int blob_row_get(struct sq_conn *c, const char *mailbox, uint32_t uid,
			int64_t id, struct sq_blob_row *r)
{
	sqlite3_stmt *st;
	if (mailbox != NULL) {
		st = sq_stmt(c, "SELECT b.id, b.name, b.kind, b.prefix,"
				" b.size, b.crc, b.head FROM msg m"
				" JOIN blob b ON b.id = m.blob"
				" JOIN mailbox x ON x.id = m.mailbox"
				" WHERE x.name = ? AND m.uid = ?");
		if (st == NULL)
			return -1;
		sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, uid);
	} else {
		st = sq_stmt(c, "SELECT id, name, kind, prefix, size, crc,"
				" head FROM blob WHERE id = ?");
		if (st == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, id);
	}
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		r->id = sqlite3_column_int64(st, 0);
		r->name = xstrdup((const char *)sqlite3_column_text(st, 1));
		r->kind = sqlite3_column_int(st, 2) == SQ_BODY_INLINE
				  ? SQ_BODY_INLINE : SQ_BODY_FILE;
		r->prefix_len = (size_t)sqlite3_column_bytes(st, 3);
		r->prefix = xmalloc(r->prefix_len + 1);
		if (r->prefix_len > 0)
			memcpy(r->prefix, sqlite3_column_blob(st, 3),
			       r->prefix_len);
		r->size = (uint64_t)sqlite3_column_int64(st, 4);
		r->has_crc = sqlite3_column_type(st, 5) != SQLITE_NULL;
		r->crc = (uint32_t)sqlite3_column_int64(st, 5);
		r->has_head = sqlite3_column_type(st, 6) != SQLITE_NULL;
		int64_t head = sqlite3_column_int64(st, 6);
		r->head_len = (size_t)(head >> 32);
		r->head_crc = (uint32_t)head;
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* Whether a message (any copy) has blob id: a kept one (undelete) has
 * none. 1, 0, -1. */
static int blob_has_copy(struct sq_conn *c, int64_t id)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT 1 FROM msg WHERE blob = ?"
				      " LIMIT 1");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The bytes of a message by (mailbox, uid), or of the Email (blob) id
 * when mailbox is NULL, in one read transaction; head: only its header
 * block where the row has its checksum (store_blob_open_head). */
static int blob_open(struct sq_user *u, const char *mailbox, uint32_t uid,
		     int64_t email, bool head, struct store_blob *blob_r,
		     struct store_error *err);

int sq_blob_open(struct store_user *user, const char *mailbox, uint32_t uid,
		 struct store_blob *blob_r, struct store_error *err)
{
	return blob_open(SQU(user), mailbox, uid, 0, false, blob_r, err);
}

int sq_blob_open_head(struct store_user *user, const char *mailbox,
		      uint32_t uid, struct store_blob *blob_r,
		      struct store_error *err)
{
	return blob_open(SQU(user), mailbox, uid, 0, true, blob_r, err);
}

int sq_blob_open_email(struct store_user *user, int64_t email,
		       struct store_blob *blob_r, struct store_error *err)
{
	return blob_open(SQU(user), NULL, 0, email, false, blob_r, err);
}

static int blob_open(struct sq_user *u, const char *mailbox, uint32_t uid,
		     int64_t email, bool head, struct store_blob *blob_r,
		     struct store_error *err)
{
	struct sq_blob_row r;
	memset(&r, 0, sizeof(r));
	struct sq_blob_map *m = xcalloc(1, sizeof(*m));
	m->obj.vf = &store_sqlite_vfuncs;
	const char *data = NULL;
	size_t len = 0;
	int fd = -1, ret = 0;
	/* from before the lookup until the file is open: see
	 * sq_read_enter */
	uint64_t ticket = sq_read_enter(u);
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL) {
		ret = -1;
	} else if (sq_read_begin(c, err) < 0) {
		ret = -1;
	} else {
		int found = mailbox != NULL || email == 0
				    ? 1 : blob_has_copy(c, email);
		if (found > 0)
			found = blob_row_get(c, mailbox, uid, email, &r);
		if (found < 0)
			ret = sq_db_error(c, err, "blob");
		else if (found == 0)
			ret = store_set_error(err, STORE_ERR_NOTFOUND,
					      "No such message");
		else if (r.kind == SQ_BODY_INLINE) {
			ret = head && r.has_head
				? read_inline_head(u, c, &r, m, &len, err)
				: read_inline(u, c, &r, m, &len, err);
			data = m->heap;
		}
		sq_read_end(c);
	}
	if (c != NULL)
		sq_reader_put(u, c);
	if (ret == 0 && r.kind == SQ_BODY_FILE) {
		char *path = sq_blob_path(u, r.name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			log_error("store", NULL, "open %s: %s", path,
				  strerror(errno));
			ret = errno == ENOENT
				? damaged(u, "has no file", r.name, err)
				: store_set_error(err, STORE_ERR_TEMP,
						  "The message file cannot be read");
		}
		free(path);
	}
	sq_read_leave(u, ticket);
	if (ret == 0 && fd >= 0 && head && r.has_head) {
		ret = read_file_head(u, fd, &r, m, &len, err);
		data = m->heap;
	} else if (ret == 0 && fd >= 0) {
		ret = map_file(u, fd, &r, m, &data, &len, err);
	}
	if (fd >= 0)
		close(fd);
	blob_row_free(&r);
	if (ret < 0) {
		blob_map_free(m);
		return -1;
	}
	blob_r->data = data;
	blob_r->len = len;
	blob_r->priv = m;
	return 0;
}

int sq_blob_read_id(struct sq_user *u, struct sq_conn *c, int64_t id,
		    struct store_blob *blob_r, struct store_error *err)
{
	struct sq_blob_row r;
	memset(&r, 0, sizeof(r));
	int found = blob_row_get(c, NULL, 0, id, &r);
	if (found <= 0) {
		blob_row_free(&r);
		return found < 0 ? sq_db_error(c, err, "blob")
				 : store_set_error(err, STORE_ERR_NOTFOUND,
						   "No such message");
	}
	struct sq_blob_map *m = xcalloc(1, sizeof(*m));
	m->obj.vf = &store_sqlite_vfuncs;
	const char *data = NULL;
	size_t len = 0;
	int ret;
	if (r.kind == SQ_BODY_INLINE) {
		ret = read_inline(u, c, &r, m, &len, err);
		data = m->heap;
	} else {
		char *path = sq_blob_path(u, r.name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		free(path);
		/* gone: another process (loftd, while loftctl backup reads
		 * an older snapshot) collected it after an expunge; this
		 * process's own readers hold theirs (sq_read_enter) */
		if (fd < 0 && errno == ENOENT)
			ret = store_set_error(err, STORE_ERR_NOTFOUND,
					      "The message was removed after"
					      " the snapshot was taken");
		else
			ret = fd < 0 ? store_set_error(err, STORE_ERR_TEMP,
						       "The message file cannot"
						       " be read")
				     : map_file(u, fd, &r, m, &data, &len, err);
		if (fd >= 0)
			close(fd);
	}
	blob_row_free(&r);
	if (ret < 0) {
		blob_map_free(m);
		return -1;
	}
	blob_r->data = data;
	blob_r->len = len;
	blob_r->priv = m;
	return 0;
}

int sq_blob_map_file(const char *path, struct store_blob *blob_r,
		     struct store_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat stt;
	if (fd < 0 || fstat(fd, &stt) < 0) {
		log_error("store", NULL, "open %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return store_set_error(err, STORE_ERR_TEMP,
				       "The file cannot be read");
	}
	struct sq_blob_row r;
	memset(&r, 0, sizeof(r));
	r.name = (char *)path;
	r.prefix = (char *)"";
	r.size = (uint64_t)stt.st_size;
	struct sq_blob_map *m = xcalloc(1, sizeof(*m));
	m->obj.vf = &store_sqlite_vfuncs;
	const char *data = NULL;
	size_t len = 0;
	int ret = map_file(NULL, fd, &r, m, &data, &len, err);
	close(fd);
	if (ret < 0) {
		blob_map_free(m);
		return -1;
	}
	blob_r->data = data;
	blob_r->len = len;
	blob_r->priv = m;
	return 0;
}

void sq_blob_close(struct store_blob *blob)
{
	blob_map_free(blob->priv);
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

/* Spill files of bodies (sq-body.c) left by a process that died: every
 * file there older than this process. Copies that were committed hold
 * links of their own. */
static void sweep_tmp(struct sq_store *s)
{
	char *dir = xasprintf("%s/tmp", s->mail_dir);
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char *p = xasprintf("%s/%s", dir, e->d_name);
		struct stat stt;
		if (lstat(p, &stt) == 0 && S_ISREG(stt.st_mode) &&
		    (int64_t)stt.st_mtim.tv_sec * 1000000000 +
				    stt.st_mtim.tv_nsec < s->started_ns)
			unlink(p);
		free(p);
	}
	if (d != NULL)
		closedir(d);
	free(dir);
}

/* The background sweep after start: a file that no index row names is
 * left from a crash before a commit, unless this process is writing it
 * (the in-flight registry). */
void *sq_sweeper_main(void *arg)
{
	struct store *store = arg;
	struct sq_store *s = SQS(store);
	sweep_tmp(s);
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
			 * blobs the sweep could judge, nor has one that this
			 * side does not serve (migrate-store writing it). */
			struct store_user *user;
			struct store_error err;
			if (store_user_open_served(store, id, &user, &err) < 0)
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
