/*
 * A node's own copies of message bodies kept in an object store
 * ([store] blobs = s3, [store] blob_cache = SIZE; docs/scale-out.md).
 *
 * Bodies never change (each is named by its SHA-256), so a copy cannot
 * go stale; it can be damaged, so the caller checks every hit against
 * the name and drops a copy that does not match (blob_cache_drop), then
 * reads the object store. Files data_dir/blobcache/<xx>/<sha256>, at
 * most max_bytes in all: the least recently used go first. After a
 * restart the files found are ranked by their modification time (when
 * they were cached), as the order of use is not kept on disk.
 * Thread-safe; one process per directory (loftd's mail process: loftctl
 * opens none).
 */
#ifndef LOFT_BLOBCACHE_H
#define LOFT_BLOBCACHE_H

#include <stdint.h>

struct blob_cache;

/* Makes dir when missing and ranks what is in it. NULL with *error_r
 * (malloced) when dir cannot be made or read. */
struct blob_cache *blob_cache_open(const char *dir, uint64_t max_bytes,
				   char **error_r);
void blob_cache_close(struct blob_cache **bc);

/* 0 with the size bytes of sha's copy in out (unchecked: the caller
 * compares them with sha), or -1 when there is none (or its size
 * differs). A hit makes the copy the most recently used. */
int blob_cache_get(struct blob_cache *bc, const char *sha, char *out,
		   uint64_t size);
/* Keeps a copy of size bytes: the spooled file at path hard-linked when
 * it can be (the same file system), else the bytes of fd copied. Bodies
 * larger than an eighth of the cache are not kept. */
void blob_cache_put_file(struct blob_cache *bc, const char *sha,
			 const char *path, int fd, uint64_t size);
/* Keeps a copy of the bytes in data. */
void blob_cache_put(struct blob_cache *bc, const char *sha, const char *data,
		    uint64_t size);
/* Removes sha's copy (damaged, or the body was collected). */
void blob_cache_drop(struct blob_cache *bc, const char *sha);

/* The bytes and copies held now (tests, metrics). */
void blob_cache_usage(struct blob_cache *bc, uint64_t *bytes_r,
		      uint64_t *count_r);

#endif
