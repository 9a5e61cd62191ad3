/*
 * The queue's object store over the store's (queue.h, queue_objects;
 * store.h, store_object_*), for the callers that have both open (loftd's
 * mail process, loftctl): header-only, so the queue library itself
 * depends on nothing above it.
 */
#ifndef LOFT_QUEUE_STORE_H
#define LOFT_QUEUE_STORE_H

#include <stdio.h>

#include "queue.h"
#include "store.h"

static inline int queue_store_put(void *ctx, int fd, const char *path,
				  uint64_t size, char sha_r[65], char *why,
				  size_t why_size)
{
	struct store_error err = {0};
	if (store_object_put(ctx, fd, path, size, sha_r, &err) < 0) {
		snprintf(why, why_size, "%s", err.msg);
		return -1;
	}
	return 0;
}

static inline int queue_store_read(void *ctx, const char *sha, char *out,
				   uint64_t size)
{
	struct store_error err = {0};
	return store_object_read(ctx, sha, out, size, &err);
}

static inline void queue_store_release(void *ctx, const char *sha)
{
	store_object_release(ctx, sha);
}

/* Gives q the store's object store when q keeps its bytes there: 0, or
 * -1 when the store has none (the configurations differ). */
static inline int queue_store_attach(struct queue *q, struct store *store)
{
	unsigned grace = 0;
	if (!queue_uses_objects(q))
		return 0;
	if (store == NULL || !store_objects(store, &grace))
		return -1;
	struct queue_objects o = {
		.put = queue_store_put, .read = queue_store_read,
		.release = queue_store_release, .grace = grace, .ctx = store,
	};
	queue_set_objects(q, &o);
	return 0;
}

#endif
