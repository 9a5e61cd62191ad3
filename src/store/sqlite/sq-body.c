/*
 * Bodies: a message written once and delivered as any number of copies
 * (store.h "delivery"). A body is kept in memory while it is small; past
 * SQ_INLINE_MAX it spills to a file under mail/tmp/. finish makes it
 * durable (one fsync of the spill file) and analyses it once. Each copy
 * then costs one row in its user's index, inside that user's group
 * commit:
 *
 *   - a small body goes into the index itself (table body, kind 1): no
 *     inode, no file or directory fsync; the commit's one WAL sync makes
 *     it durable with its row;
 *   - a large body is linked into the user's blobs/<xx>/ (kind 0): one
 *     data write for every copy on the server, the link's directory made
 *     durable by the fsync pool before the row commits.
 *
 * The copy's prefix (its trace fields) is stored in its blob row; readers
 * put it in front of the body (sq-blob.c). The cached analysis is the
 * body's, with the part map moved by the prefix's length and the
 * prefix's fields added to the header search text, so every copy reads
 * exactly as if its bytes had been analysed whole. Every body carries a
 * CRC-32 (zlib's crc32 values, sq_crc32), checked whenever it is read.
 */
#include "sq-private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"

#define WRITE_BUF_SIZE (64 * 1024)

struct store_body {
	struct store_object obj;
	struct store *store;
	char name[33];         /* the spill file's name */
	char *tmp_path;        /* NULL while the body is in memory */
	int fd;
	struct buf mem;        /* the body while in memory, then a write buffer */
	uint64_t size;         /* bytes accepted (after normalisation) */
	uint64_t written;      /* bytes written to the spill file */
	uint64_t max;
	uint32_t crc;
	bool has_head;         /* head: blob.head (sq_head_of) */
	int64_t head;
	bool last_cr, failed, finished;
	bool binary;           /* bytes kept as written (no CRLF) */
	struct mail_result an;
	struct buf text_enc;   /* an.body_text as stored, compressed once */
	char *plain;           /* the body text unfolded (store_body_text) */
	size_t plain_len;
};

/* store_body_text keeps the unfolded text of bodies up to this much
 * text (bigger ones: Sieve's body :text analyses the message itself) */
#define SQ_PLAIN_TEXT_MAX (1024 * 1024)

int sq_body_create(struct store *store, struct store_body **body_r,
		   struct store_error *err)
{
	(void)err;
	struct store_body *b = xcalloc(1, sizeof(*b));
	b->obj.vf = &store_sqlite_vfuncs;
	b->store = store;
	b->fd = -1;
	b->max = store->set.max_message_size;
	b->crc = 0;
	buf_init(&b->mem, 0);
	buf_init(&b->text_enc, 0);
	*body_r = b;
	return 0;
}

static int body_error(struct store_body *b, int e, const char *what,
		      struct store_error *err)
{
	b->failed = true;
	if (e == ENOSPC || e == EDQUOT)
		return store_set_full(err);
	log_error("store", NULL, "%s %s: %s", what,
		  b->tmp_path ? b->tmp_path : "body", strerror(e));
	return store_set_error(err, STORE_ERR_TEMP,
			       "Cannot store the message now");
}

/* The errno a test injects into this step of a big body (once), or 0. */
static int test_fault(struct store *st, enum store_test_fail_step step)
{
	int e = atomic_load(&st->test_fail_body_errno);
	if (e == 0 || atomic_load(&st->test_fail_body_step) != (int)step)
		return 0;
	return atomic_compare_exchange_strong(&st->test_fail_body_errno, &e, 0)
		       ? e : 0;
}

/* Writes the buffered bytes to the spill file. */
static int body_flush(struct store_body *b, struct store_error *err)
{
	size_t off = 0;
	while (off < b->mem.len) {
		size_t n = b->mem.len - off;
		uint64_t fail_at = atomic_load(&b->store->test_fail_write_after);
		if (fail_at != 0 && b->written + n >= fail_at)
			return body_error(b, ENOSPC, "write", err);
		ssize_t r = write(b->fd, b->mem.data + off, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return body_error(b, errno, "write", err);
		}
		off += (size_t)r;
		b->written += (uint64_t)r;
	}
	buf_reset(&b->mem);
	return 0;
}

/* Moves the body from memory to a file under mail/tmp/. */
static int body_spill(struct store_body *b, struct store_error *err)
{
	struct sq_store *s = SQS(b->store);
	sq_random_hex(b->name, 16);
	char *dir = xasprintf("%s/tmp", s->mail_dir);
	b->tmp_path = xasprintf("%s/%s", dir, b->name);
	int flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC;
	b->fd = open(b->tmp_path, flags, 0600);
	if (b->fd < 0 && errno == ENOENT &&
	    (mkdir(dir, 0700) == 0 || errno == EEXIST))
		b->fd = open(b->tmp_path, flags, 0600);
	free(dir);
	if (b->fd < 0) {
		int e = errno;
		free(b->tmp_path);
		b->tmp_path = NULL;
		return body_error(b, e, "create", err);
	}
	return body_flush(b, err);
}

static int body_put(struct store_body *b, const char *p, size_t n,
		    struct store_error *err)
{
	b->size += n;
	if (b->max != 0 && b->size > b->max) {
		b->failed = true;
		return store_set_error(err, STORE_ERR_LIMIT,
				       "Message is too large");
	}
	b->crc = sq_crc32(b->crc, p, n);
	if (b->tmp_path == NULL) {
		if (b->size <= SQ_INLINE_MAX) {
			buf_append(&b->mem, p, n);
			return 0;
		}
		if (body_spill(b, err) < 0)
			return -1;
	}
	while (n > 0) {
		if (b->mem.len >= WRITE_BUF_SIZE && body_flush(b, err) < 0)
			return -1;
		size_t k = WRITE_BUF_SIZE - b->mem.len;
		if (k > n)
			k = n;
		buf_append(&b->mem, p, k);
		p += k;
		n -= k;
	}
	return 0;
}

/* Normalises bare LF to CRLF; everything else (NULs included) is kept,
 * and everything in binary mode (sq_body_set_binary). */
int sq_body_write(struct store_body *b, const void *data, size_t len,
		  struct store_error *err)
{
	if (b->failed || b->finished)
		return store_set_error(err, STORE_ERR_TEMP,
				       "The message was not stored");
	if (b->binary)
		return body_put(b, data, len, err);
	const char *p = data, *end = p + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t chunk = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (chunk > 0) {
			if (body_put(b, p, chunk, err) < 0)
				return -1;
			b->last_cr = p[chunk - 1] == '\r';
			p += chunk;
		}
		if (nl == NULL)
			break;
		if (body_put(b, b->last_cr ? "\n" : "\r\n", b->last_cr ? 1 : 2,
			     err) < 0)
			return -1;
		b->last_cr = false;
		p++;
	}
	return 0;
}

const char *sq_body_text(struct store_body *b, size_t *len_r)
{
	*len_r = b->finished ? b->plain_len : 0;
	return b->finished ? b->plain : NULL;
}

uint64_t sq_body_size(const struct store_body *b)
{
	return b->size;
}

void sq_body_set_binary(struct store_body *b)
{
	b->binary = true;
}

int sq_body_finish(struct store_body *b, struct store_error *err)
{
	if (b->finished)
		return 0;
	if (b->failed)
		return store_set_error(err, STORE_ERR_TEMP,
				       "The message was not stored");
	if (b->tmp_path == NULL) {
		const char *data = b->mem.data != NULL ? b->mem.data : "";
		b->has_head = sq_head_of(data, b->mem.len, &b->head);
		store_analyze_plain(data, b->mem.len, &b->an,
				    SQ_PLAIN_TEXT_MAX, &b->plain,
				    &b->plain_len);
		sq_text_encode(b->an.body_text, b->an.body_text_len,
			       &b->text_enc);
		b->finished = true;
		return 0;
	}
	if (body_flush(b, err) < 0)
		return -1;
	int fault = test_fault(b->store, STORE_TEST_FAIL_SPILL_SYNC);
	if (fault != 0)
		return body_error(b, fault, "fsync", err);
	if (b->store->set.fsync && fsync(b->fd) < 0)
		return body_error(b, errno, "fsync", err);
	buf_free(&b->mem);
	void *map = mmap(NULL, b->size, PROT_READ, MAP_SHARED, b->fd, 0);
	if (map == MAP_FAILED)
		return body_error(b, errno, "mmap", err);
	b->has_head = sq_head_of(map, b->size, &b->head);
	store_analyze_plain(map, b->size, &b->an, SQ_PLAIN_TEXT_MAX, &b->plain,
			    &b->plain_len);
	munmap(map, b->size);
	sq_text_encode(b->an.body_text, b->an.body_text_len, &b->text_enc);
	b->finished = true;
	return 0;
}

void sq_body_unref(struct store_body *b)
{
	if (b->fd >= 0)
		close(b->fd);
	/* the copies hold links of their own */
	if (b->tmp_path != NULL)
		unlink(b->tmp_path);
	free(b->tmp_path);
	buf_free(&b->mem);
	buf_free(&b->text_enc);
	free(b->plain);
	if (b->finished)
		mail_result_free(&b->an);
	free(b);
}

/* ---- copies -------------------------------------------------------- */

/* Copies the spill file to path (when a link is not possible). */
static int copy_file(int src, const char *path, uint64_t size, bool fsync_it)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	char *buf = xmalloc(WRITE_BUF_SIZE);
	uint64_t off = 0;
	int ret = 0;
	while (off < size && ret == 0) {
		size_t want = size - off > WRITE_BUF_SIZE ? WRITE_BUF_SIZE
							  : (size_t)(size - off);
		ssize_t n = pread(src, buf, want, (off_t)off);
		if (n <= 0) {
			ret = -1;
			break;
		}
		for (ssize_t w = 0; w < n && ret == 0;) {
			ssize_t k = write(fd, buf + w, (size_t)(n - w));
			if (k < 0 && errno != EINTR)
				ret = -1;
			else if (k > 0)
				w += k;
		}
		off += (uint64_t)n;
	}
	free(buf);
	if (ret == 0 && fsync_it && fsync(fd) < 0)
		ret = -1;
	int e = errno;
	close(fd);
	if (ret < 0) {
		unlink(path);
		errno = e;
	}
	return ret;
}

/* Puts a link to the spill file at blobs/<xx>/<name> of the user and
 * makes its directory entry durable. */
static int body_link(struct store_body *b, struct sq_user *u,
		     const char *name, char **path_r, struct store_error *err)
{
	struct sq_store *s = SQS(b->store);
	char *path = sq_blob_path(u, name);
	char *dir = xasprintf("%s/blobs/%.2s", u->dir, name);
	int fault = test_fault(b->store, STORE_TEST_FAIL_LINK);
	int r = fault != 0 ? (errno = fault, -1) : link(b->tmp_path, path);
	if (r < 0 && errno == ENOENT) {
		/* directories are made when first needed */
		char *blobs = xasprintf("%s/blobs", u->dir);
		if ((mkdir(blobs, 0700) == 0 || errno == EEXIST) &&
		    (mkdir(dir, 0700) == 0 || errno == EEXIST)) {
			if (u->fsync) {
				sq_fsync_dir(blobs);
				sq_fsync_dir(u->dir);
			}
			r = link(b->tmp_path, path);
		}
		free(blobs);
	}
	/* another file system, or too many links: a copy of its own */
	if (r < 0 && (errno == EXDEV || errno == EMLINK || errno == EPERM))
		r = copy_file(b->fd, path, b->size, u->fsync);
	if (r == 0 && (fault = test_fault(b->store, STORE_TEST_FAIL_DIRSYNC)) != 0) {
		errno = fault;
		r = -1;
	}
	if (r == 0 && u->fsync && sq_dirsync(s, dir) < 0)
		r = -1;
	if (r < 0) {
		/* this copy fails; the body stays good for the others */
		int e = errno;
		log_error("store", NULL, "link %s: %s", path, strerror(e));
		unlink(path);
		free(path);
		free(dir);
		if (e == ENOSPC || e == EDQUOT)
			return store_set_full(err);
		return store_set_error(err, STORE_ERR_TEMP,
				       "Cannot store the message now");
	}
	free(dir);
	*path_r = path;
	return 0;
}

int sq_body_copy_begin(struct store_body *b, struct sq_user *u,
		       const char *prefix, size_t prefix_len,
		       struct sq_body_copy *cp, struct store_error *err)
{
	struct sq_store *s = SQS(b->store);
	memset(cp, 0, sizeof(*cp));
	buf_init(&cp->parts, 0);
	buf_init(&cp->hdr, 0);
	if (!b->finished || b->failed)
		return store_set_error(err, STORE_ERR_TEMP,
				       "The message was not stored");
	/* this copy's analysis: the body's, seen behind the prefix */
	cp->an = b->an;
	if (prefix_len > 0) {
		if (b->an.parts != NULL &&
		    mail_parts_shift(b->an.parts, b->an.parts_len, prefix_len,
				     &cp->parts)) {
			cp->an.parts = cp->parts.data;
			cp->an.parts_len = cp->parts.len;
		}
		store_prefix_text(prefix, prefix_len, &cp->hdr);
		buf_append(&cp->hdr, b->an.header_text, b->an.header_text_len);
		cp->an.header_text = cp->hdr.data;
		cp->an.header_text_len = cp->hdr.len;
	}
	sq_random_hex(cp->name, 16);
	struct sq_append_arg *a = &cp->a;
	if (b->tmp_path != NULL) {
		/* the sweeper leaves the link alone until the row commits */
		sq_inflight_add(s, cp->name);
		cp->spilled = true;
		a->kind = SQ_BODY_FILE;
		if (body_link(b, u, cp->name, &cp->path, err) < 0) {
			sq_body_copy_end(b, u, cp, false);
			return -1;
		}
	} else {
		a->kind = SQ_BODY_INLINE;
		a->body = b->mem.data != NULL ? b->mem.data : "";
	}
	a->blob_name = cp->name;
	a->prefix = prefix;
	a->prefix_len = prefix_len;
	a->body_len = b->size;
	a->size = prefix_len + b->size;
	a->crc = b->crc;
	a->has_head = b->has_head;
	a->head = b->head;
	a->body_text_enc = &b->text_enc;
	a->an = &cp->an;
	a->now = time(NULL);
	return 0;
}

void sq_body_copy_end(struct store_body *b, struct sq_user *u,
		      struct sq_body_copy *cp, bool committed)
{
	if (!committed && cp->path != NULL)
		unlink(cp->path);
	if (cp->spilled)
		sq_inflight_del(SQS(b->store), cp->name);
	if (committed)
		sq_indexer_kick(b->store, u->user->id);
	free(cp->path);
	cp->path = NULL;
	cp->spilled = false;
	buf_free(&cp->parts);
	buf_free(&cp->hdr);
}

int sq_body_deliver(struct store_body *b, struct store_user *user,
		    const char *mailbox, const char *prefix, size_t prefix_len,
		    const struct store_append_params *params, uint32_t *uid_r,
		    uint32_t *uidvalidity_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct store_account_limits limits;
	if (sq_limits_get(user, &limits, err) < 0)
		return -1;
	struct sq_body_copy cp;
	if (sq_body_copy_begin(b, u, prefix, prefix_len, &cp, err) < 0)
		return -1;
	cp.a.mailbox = mailbox;
	cp.a.params = params;
	cp.a.limits = limits;
	int ret = sq_run(u, sq_append_tx, &cp.a, err);
	sq_body_copy_end(b, u, &cp, ret == 0);
	if (ret < 0)
		return -1;
	if (uid_r != NULL)
		*uid_r = cp.a.uid;
	if (uidvalidity_r != NULL)
		*uidvalidity_r = cp.a.uidvalidity;
	return 0;
}

/* MULTIAPPEND: every body a copy (no prefix) in the same group commit. */
int sq_bodies_deliver(struct store_body *const *bodies, size_t n,
		      struct store_user *user, const char *mailbox,
		      const struct store_append_params *params,
		      uint32_t *uids, uint32_t *uidvalidity_r,
		      struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct store_account_limits limits;
	if (sq_limits_get(user, &limits, err) < 0)
		return -1;
	struct sq_body_copy *cps = xcalloc(n, sizeof(*cps));
	struct sq_job *jobs = xcalloc(n, sizeof(*jobs));
	size_t begun = 0;
	int ret = 0;
	for (; begun < n; begun++) {
		struct sq_body_copy *cp = &cps[begun];
		if (sq_body_copy_begin(bodies[begun], u, NULL, 0, cp, err) < 0) {
			ret = -1;
			break;
		}
		cp->a.mailbox = mailbox;
		cp->a.params = params != NULL ? &params[begun] : NULL;
		cp->a.limits = limits;
		jobs[begun].fn = sq_append_tx;
		jobs[begun].arg = &cp->a;
	}
	bool run = ret == 0;
	if (run)
		sq_run_jobs(u, jobs, n);
	if (run && n >= SQ_BULK_MIN)
		atomic_store(&u->bulk_ns, metrics_now_ns());
	bool told = !run;    /* copy_begin's error is in err already */
	for (size_t i = 0; i < begun; i++) {
		bool ok = run && jobs[i].ret >= 0;
		sq_body_copy_end(bodies[i], u, &cps[i], ok);
		uids[i] = ok ? cps[i].a.uid : 0;
		if (ok && uidvalidity_r != NULL)
			*uidvalidity_r = cps[i].a.uidvalidity;
		if (!ok) {
			ret = -1;
			if (!told) {
				*err = jobs[i].err;
				told = true;
			}
		}
	}
	free(jobs);
	free(cps);
	return ret;
}
