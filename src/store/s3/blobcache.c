/*
 * The node's cache of object-store bodies (blobcache.h): files named by
 * SHA-256 under two-hex-digit directories, an in-memory index (a hash
 * table of entries on a list from most to least recently used) and a
 * byte total kept at or under the bound by removing from the tail.
 *
 * Files are written aside (dir/tmp-*) and renamed into place, so a name
 * always holds a whole copy; a crash leaves at most a tmp file, removed
 * at the next open. Nothing is fsynced: a copy lost or damaged by a
 * crash is a miss, or a mismatch the caller drops.
 */
#include "blobcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

#define SHA_LEN 64

struct entry {
	char sha[SHA_LEN + 1];
	uint64_t size;
	struct entry *prev, *next;    /* prev: more recently used */
	struct entry *hnext;          /* the hash chain */
};

struct blob_cache {
	char *dir;
	uint64_t max_bytes, bytes, count;
	pthread_mutex_t mu;
	struct entry *head, *tail;    /* most / least recently used */
	struct entry **table;
	size_t table_size;            /* a power of two */
	unsigned long tmp_seq;
};

static bool sha_valid(const char *s)
{
	size_t n = 0;
	for (; s[n] != '\0'; n++)
		if (!((s[n] >= '0' && s[n] <= '9') ||
		      (s[n] >= 'a' && s[n] <= 'f')))
			return false;
	return n == SHA_LEN;
}

/* The name is already a uniform hash: its first 16 digits serve. */
static size_t slot(const struct blob_cache *bc, const char *sha)
{
	uint64_t h = 0;
	for (int i = 0; i < 16; i++)
		h = h << 4 | (uint64_t)(sha[i] <= '9' ? sha[i] - '0'
						      : sha[i] - 'a' + 10);
	return (size_t)(h & (bc->table_size - 1));
}

static struct entry *find(const struct blob_cache *bc, const char *sha)
{
	for (struct entry *e = bc->table[slot(bc, sha)]; e != NULL;
	     e = e->hnext)
		if (memcmp(e->sha, sha, SHA_LEN) == 0)
			return e;
	return NULL;
}

static void list_unlink(struct blob_cache *bc, struct entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		bc->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		bc->tail = e->prev;
	e->prev = e->next = NULL;
}

static void list_push_head(struct blob_cache *bc, struct entry *e)
{
	e->prev = NULL;
	e->next = bc->head;
	if (bc->head != NULL)
		bc->head->prev = e;
	bc->head = e;
	if (bc->tail == NULL)
		bc->tail = e;
}

static void grow(struct blob_cache *bc)
{
	size_t old_size = bc->table_size;
	struct entry **old = bc->table;
	bc->table_size = old_size * 2;
	bc->table = xcalloc(bc->table_size, sizeof(*bc->table));
	for (size_t i = 0; i < old_size; i++) {
		for (struct entry *e = old[i], *next; e != NULL; e = next) {
			next = e->hnext;
			size_t k = slot(bc, e->sha);
			e->hnext = bc->table[k];
			bc->table[k] = e;
		}
	}
	free(old);
}

/* Adds sha as the most recently used (the caller holds mu; absent). */
static void insert(struct blob_cache *bc, const char *sha, uint64_t size)
{
	if (bc->count + 1 > bc->table_size)
		grow(bc);
	struct entry *e = xcalloc(1, sizeof(*e));
	memcpy(e->sha, sha, SHA_LEN);
	e->size = size;
	size_t k = slot(bc, sha);
	e->hnext = bc->table[k];
	bc->table[k] = e;
	list_push_head(bc, e);
	bc->bytes += size;
	bc->count++;
}

/* Takes e out of the index (the caller holds mu and frees e). */
static void forget(struct blob_cache *bc, struct entry *e)
{
	struct entry **pp = &bc->table[slot(bc, e->sha)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	list_unlink(bc, e);
	bc->bytes -= e->size;
	bc->count--;
}

static char *path_of(const struct blob_cache *bc, const char *sha)
{
	return xasprintf("%s/%.2s/%s", bc->dir, sha, sha);
}

/* Removes least recently used copies until the total is within the
 * bound; their names go in *gone for unlinking outside the lock. */
static void trim(struct blob_cache *bc, struct buf *gone)
{
	while (bc->bytes > bc->max_bytes && bc->tail != NULL) {
		struct entry *e = bc->tail;
		forget(bc, e);
		buf_append(gone, e->sha, SHA_LEN);
		free(e);
	}
}

static void unlink_all(struct blob_cache *bc, struct buf *gone)
{
	for (size_t off = 0; off + SHA_LEN <= gone->len; off += SHA_LEN) {
		char sha[SHA_LEN + 1];
		memcpy(sha, gone->data + off, SHA_LEN);
		sha[SHA_LEN] = '\0';
		char *path = path_of(bc, sha);
		if (unlink(path) < 0 && errno != ENOENT)
			log_warn("store", NULL, "blob cache: unlink %s: %s",
				 path, strerror(errno));
		free(path);
	}
	buf_free(gone);
}

/* ---- open: what is on disk ----------------------------------------------- */

struct found {
	char sha[SHA_LEN + 1];
	uint64_t size;
	struct timespec mtime;
};

static int by_mtime(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return 0;
}

static void scan(struct blob_cache *bc)
{
	struct found *f = NULL;
	size_t n = 0, cap = 0;
	DIR *top = opendir(bc->dir);
	if (top == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(top)) != NULL) {
		char *sub = xasprintf("%s/%s", bc->dir, de->d_name);
		if (strncmp(de->d_name, "tmp-", 4) == 0) {
			unlink(sub);   /* a copy a crash cut short */
			free(sub);
			continue;
		}
		bool hex2 = strlen(de->d_name) == 2 &&
			    strspn(de->d_name, "0123456789abcdef") == 2;
		DIR *d = hex2 ? opendir(sub) : NULL;
		struct dirent *fe;
		while (d != NULL && (fe = readdir(d)) != NULL) {
			if (!sha_valid(fe->d_name) ||
			    memcmp(fe->d_name, de->d_name, 2) != 0)
				continue;
			struct stat st;
			if (fstatat(dirfd(d), fe->d_name, &st,
				    AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISREG(st.st_mode))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				f = xrealloc(f, cap * sizeof(*f));
			}
			memcpy(f[n].sha, fe->d_name, SHA_LEN + 1);
			f[n].size = (uint64_t)st.st_size;
			f[n].mtime = st.st_mtim;
			n++;
		}
		if (d != NULL)
			closedir(d);
		free(sub);
	}
	closedir(top);
	/* oldest first, so the newest ends at the head (qsort(NULL, 0): UB) */
	if (n > 0)
		qsort(f, n, sizeof(*f), by_mtime);
	for (size_t i = 0; i < n; i++)
		insert(bc, f[i].sha, f[i].size);
	free(f);
}

struct blob_cache *blob_cache_open(const char *dir, uint64_t max_bytes,
				   char **error_r)
{
	*error_r = NULL;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		*error_r = xasprintf("blob cache: cannot make %s: %s", dir,
				     strerror(errno));
		return NULL;
	}
	if (access(dir, R_OK | W_OK | X_OK) < 0) {
		*error_r = xasprintf("blob cache: %s: %s", dir,
				     strerror(errno));
		return NULL;
	}
	struct blob_cache *bc = xcalloc(1, sizeof(*bc));
	bc->dir = xstrdup(dir);
	bc->max_bytes = max_bytes;
	bc->table_size = 1024;
	bc->table = xcalloc(bc->table_size, sizeof(*bc->table));
	pthread_mutex_init(&bc->mu, NULL);
	scan(bc);
	struct buf gone;
	buf_init(&gone, 0);
	trim(bc, &gone);
	unlink_all(bc, &gone);
	return bc;
}

void blob_cache_close(struct blob_cache **bcp)
{
	struct blob_cache *bc = *bcp;
	if (bc == NULL)
		return;
	for (struct entry *e = bc->head, *next; e != NULL; e = next) {
		next = e->next;
		free(e);
	}
	free(bc->table);
	pthread_mutex_destroy(&bc->mu);
	free(bc->dir);
	free(bc);
	*bcp = NULL;
}

/* ---- use ----------------------------------------------------------------- */

/* size bytes of fd from its start: 0, or -1 (shorter, or an error). */
static int read_all(int fd, char *out, uint64_t size)
{
	uint64_t off = 0;
	while (off < size) {
		ssize_t n = pread(fd, out + off, size - off, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (uint64_t)n;
	}
	return 0;
}

static void drop_entry(struct blob_cache *bc, const char *sha)
{
	pthread_mutex_lock(&bc->mu);
	struct entry *e = find(bc, sha);
	if (e != NULL) {
		forget(bc, e);
		free(e);
	}
	pthread_mutex_unlock(&bc->mu);
}

int blob_cache_get(struct blob_cache *bc, const char *sha, char *out,
		   uint64_t size)
{
	if (bc == NULL || !sha_valid(sha))
		return -1;
	pthread_mutex_lock(&bc->mu);
	struct entry *e = find(bc, sha);
	bool hit = e != NULL && e->size == size;
	if (hit) {
		list_unlink(bc, e);
		list_push_head(bc, e);
	}
	pthread_mutex_unlock(&bc->mu);
	if (!hit)
		return -1;
	/* the file may have gone meanwhile (evicted, or removed by hand):
	 * a miss */
	char *path = path_of(bc, sha);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0) {
		drop_entry(bc, sha);
		return -1;
	}
	int r = read_all(fd, out, size);
	close(fd);
	return r;
}

/* Puts the file written at tmp (or linked) in place as sha's copy and
 * indexes it. */
static void adopt(struct blob_cache *bc, const char *sha, uint64_t size)
{
	struct buf gone;
	buf_init(&gone, 0);
	pthread_mutex_lock(&bc->mu);
	struct entry *e = find(bc, sha);
	if (e != NULL) {
		list_unlink(bc, e);
		list_push_head(bc, e);
	} else {
		insert(bc, sha, size);
	}
	trim(bc, &gone);
	pthread_mutex_unlock(&bc->mu);
	unlink_all(bc, &gone);
}

static char *subdir_made(struct blob_cache *bc, const char *sha)
{
	char *sub = xasprintf("%s/%.2s", bc->dir, sha);
	if (mkdir(sub, 0700) < 0 && errno != EEXIST) {
		log_warn("store", NULL, "blob cache: mkdir %s: %s", sub,
			 strerror(errno));
		free(sub);
		return NULL;
	}
	return sub;
}

static bool keepable(const struct blob_cache *bc, const char *sha,
		     uint64_t size)
{
	return bc != NULL && sha_valid(sha) && size <= bc->max_bytes / 8;
}

void blob_cache_put(struct blob_cache *bc, const char *sha, const char *data,
		    uint64_t size)
{
	if (!keepable(bc, sha, size))
		return;
	char *sub = subdir_made(bc, sha);
	if (sub == NULL)
		return;
	free(sub);
	pthread_mutex_lock(&bc->mu);
	unsigned long seq = ++bc->tmp_seq;
	pthread_mutex_unlock(&bc->mu);
	char *tmp = xasprintf("%s/tmp-%ld-%lu", bc->dir, (long)getpid(), seq);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	bool ok = fd >= 0;
	for (uint64_t off = 0; ok && off < size;) {
		ssize_t n = write(fd, data + off, size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			ok = false;
		else
			off += (uint64_t)n;
	}
	if (fd >= 0 && close(fd) < 0)
		ok = false;
	char *path = path_of(bc, sha);
	if (ok && rename(tmp, path) < 0)
		ok = false;
	if (!ok) {
		/* a full disk is not worth a log line per read */
		if (errno != ENOSPC)
			log_warn("store", NULL, "blob cache: cannot keep %s:"
				 " %s", sha, strerror(errno));
		unlink(tmp);
	}
	free(path);
	free(tmp);
	if (ok)
		adopt(bc, sha, size);
}

void blob_cache_put_file(struct blob_cache *bc, const char *sha,
			 const char *path, int fd, uint64_t size)
{
	if (!keepable(bc, sha, size))
		return;
	char *sub = subdir_made(bc, sha);
	if (sub == NULL)
		return;
	free(sub);
	char *dst = path_of(bc, sha);
	int r = link(path, dst);
	int e = errno;
	free(dst);
	if (r == 0 || e == EEXIST) {
		adopt(bc, sha, size);
		return;
	}
	/* another file system (blob_dir/tmp on a shared mount): a copy */
	char *data = xmalloc(size + 1);
	if (read_all(fd, data, size) == 0)
		blob_cache_put(bc, sha, data, size);
	free(data);
}

void blob_cache_drop(struct blob_cache *bc, const char *sha)
{
	if (bc == NULL || !sha_valid(sha))
		return;
	drop_entry(bc, sha);
	char *path = path_of(bc, sha);
	unlink(path);
	free(path);
}

void blob_cache_usage(struct blob_cache *bc, uint64_t *bytes_r,
		      uint64_t *count_r)
{
	pthread_mutex_lock(&bc->mu);
	*bytes_r = bc->bytes;
	*count_r = bc->count;
	pthread_mutex_unlock(&bc->mu);
}
