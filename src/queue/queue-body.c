/*
 * A queued message's bytes, one interface whatever keeps them (queue-
 * private.h): files in msg_dir (the embedded queue, or the nodes of one
 * database sharing blob_dir), or objects in the store's object store
 * ([store] blobs = s3: docs/scale-out.md "The queue"). Every reader and
 * writer of the bytes (enqueue, delivery, DSNs, loftctl) comes here.
 *
 * An object is put (PUT 200 with Content-MD5, its SHA-256 returned)
 * before the row naming it commits, read back checked against that
 * SHA-256 (a damaged or missing one is a temporary failure, never wrong
 * bytes), and released by the node that finishes the message; one left
 * behind (a node killed between its last record and the release, a PUT
 * whose row never committed) is the store's collector's, as an
 * unreferenced message body is.
 */
#include "queue-private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static struct queue_objects objects(struct queue *q)
{
	pthread_mutex_lock(&q->mu);
	struct queue_objects o = q->obj;
	pthread_mutex_unlock(&q->mu);
	return o;
}

void qbody_mark(const struct queue *q, const char *id, struct buf *out)
{
	if (q->objects)
		buf_printf(out, QBODY_MARK "%s\r\n", id);
}

static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int qbody_keep(struct queue *q, int fd, const char *tmp_path,
	       uint64_t file_size, const char *id, char sha_r[65],
	       struct queue_error *err)
{
	sha_r[0] = '\0';
	if (q->objects) {
		struct queue_objects o = objects(q);
		char why[256] = "";
		if (o.put == NULL ||
		    o.put(o.ctx, fd, tmp_path, file_size, sha_r, why,
			  sizeof(why)) < 0) {
			log_error("queue", NULL, "%s: not stored in the object "
				  "store: %s", id, o.put ? why : "not set up");
			queue_set_error(err, QUEUE_ERR_TEMP, "Cannot queue the "
					"message now, try again later");
			return -1;
		}
		return 0;
	}
	char *path = queue_msg_path(q, id);
	int rc = 0;
	if ((q->set.fsync && fsync(fd) < 0) || rename(tmp_path, path) < 0 ||
	    (q->set.fsync && fsync_dir(q->msg_dir) < 0)) {
		int e = errno;
		log_error("queue", NULL, "storing %s: %s", path, strerror(e));
		queue_set_errno(err, e);
		rc = -1;
	}
	free(path);
	return rc;
}

void qbody_unkeep(struct queue *q, const char *id, const char *sha)
{
	(void)sha;
	if (q->objects)
		return;
	char *path = queue_msg_path(q, id);
	unlink(path);
	free(path);
}

static int open_file(struct queue *q, const char *id, struct qbody *b)
{
	char *path = queue_msg_path(q, id);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	free(path);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -1;
	}
	b->len = (size_t)st.st_size;
	if (b->len > 0) {
		void *m = mmap(NULL, b->len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED) {
			close(fd);
			return -1;
		}
		b->base = m;
		b->base_len = b->len;
		b->data = m;
	} else {
		b->data = "";
	}
	close(fd);
	return 0;
}

static int open_object(struct queue *q, const char *id, const char *sha,
		       uint64_t size, struct qbody *b)
{
	struct queue_objects o = objects(q);
	struct buf mark;

	if (o.read == NULL || sha == NULL || sha[0] == '\0' ||
	    size > (uint64_t)SIZE_MAX - 1) {
		log_error("queue", NULL, "%s: its object cannot be read here",
			  id);
		return -2;
	}
	char *data = xmalloc((size_t)size + 1);
	if (o.read(o.ctx, sha, data, size) < 0) {
		/* the store logged why (missing, unreachable, damaged) */
		log_error("queue", NULL, "%s: object %s cannot be read now: "
			  "the message waits", id, sha);
		free(data);
		return -2;
	}
	/* the object of another message would pass its own SHA-256 */
	buf_init(&mark, 0);
	buf_printf(&mark, QBODY_MARK "%s\r\n", id);
	bool ours = size >= mark.len && memcmp(data, mark.data, mark.len) == 0;
	size_t skip = mark.len;
	buf_free(&mark);
	if (!ours) {
		log_error("queue", NULL, "%s: object %s is not this message's: "
			  "the message waits", id, sha);
		free(data);
		return -2;
	}
	b->base = data;
	b->heap = true;
	b->data = data + skip;
	b->len = (size_t)size - skip;
	return 0;
}

int qbody_open(struct queue *q, const char *id, const char *sha,
	       uint64_t size, struct qbody *b)
{
	memset(b, 0, sizeof(*b));
	if (q->objects)
		return open_object(q, id, sha, size, b);
	return open_file(q, id, b);
}

void qbody_close(struct qbody *b)
{
	if (b->heap)
		free(b->base);
	else if (b->base != NULL)
		munmap(b->base, b->base_len);
	memset(b, 0, sizeof(*b));
}

void qbody_remove(struct queue *q, const char *id, const char *sha)
{
	if (!q->objects) {
		char *path = queue_msg_path(q, id);
		unlink(path);
		free(path);
		return;
	}
	struct queue_objects o = objects(q);
	if (o.release != NULL && sha != NULL && sha[0] != '\0')
		o.release(o.ctx, sha);
}

void queue_set_objects(struct queue *q, const struct queue_objects *o)
{
	pthread_mutex_lock(&q->mu);
	if (o != NULL)
		q->obj = *o;
	else
		memset(&q->obj, 0, sizeof(q->obj));
	pthread_mutex_unlock(&q->mu);
}

bool queue_uses_objects(const struct queue *q)
{
	return q->objects;
}
