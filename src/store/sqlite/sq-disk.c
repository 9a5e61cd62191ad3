/*
 * What an account takes on disk (store_user_disk, loftctl user show):
 * its files by size, and the index split by SQLite's page accounting
 * (the dbstat table) into the bodies stored in it, the search index and
 * the rest; and how many messages the trigram index does not cover yet.
 */
#include "sq-private.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size
							    : 0;
}

/* Sum of the sizes of the files under dir. */
static uint64_t tree_size(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	uint64_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char *p = xasprintf("%s/%s", dir, e->d_name);
		struct stat st;
		if (lstat(p, &st) == 0)
			n += S_ISDIR(st.st_mode) ? tree_size(p)
				: S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
		free(p);
	}
	closedir(d);
	return n;
}

static int64_t one_int(struct sq_conn *c, const char *sql)
{
	sqlite3_stmt *st = sq_stmt(c, sql);
	int64_t v = -1;
	if (st != NULL && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	if (st != NULL)
		sqlite3_reset(st);
	return v;
}

int sq_disk(struct store_user *user, struct store_disk *disk_r,
	    struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	int ret = 0;
	if (sq_read_begin(c, err) < 0) {
		sq_reader_put(u, c);
		return -1;
	}
	/* pages of the bodies' table (overflow pages included), the search
	 * text and its trigram indexes (FTS5 shadow tables text_*), and the
	 * prefixes kept in the blob rows */
	int64_t body = one_int(c, "SELECT coalesce(sum(pgsize), 0) FROM dbstat"
				  " WHERE name = 'body'");
	int64_t search = one_int(c, "SELECT coalesce(sum(pgsize), 0) FROM dbstat"
				    " WHERE name = 'text' OR name LIKE 'text\\_%'"
				    " ESCAPE '\\'");
	int64_t prefix = one_int(c, "SELECT coalesce(sum(length(prefix)), 0)"
				    " FROM blob");
	/* text rows above the indexer's mark (sq-index.c) */
	int64_t unindexed = one_int(c, "SELECT count(*) FROM text WHERE id >"
				       " (SELECT fts_upto FROM account)");
	if (body < 0 || search < 0 || prefix < 0 || unindexed < 0)
		ret = sq_db_error(c, err, "disk");
	sq_read_end(c);
	sq_reader_put(u, c);
	if (ret < 0)
		return -1;
	uint64_t index = 0;
	/* (sieve.version: sq-sieve.c's few bytes beside the index) */
	static const char *const files[] = {"index.db", "index.db-wal",
					    "index.db-shm", "sieve.version"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *p = xasprintf("%s/%s", u->dir, files[i]);
		index += file_size(p);
		free(p);
	}
	char *blobs = xasprintf("%s/blobs", u->dir);
	uint64_t in_index = (uint64_t)body + (uint64_t)prefix;
	disk_r->blob_bytes = tree_size(blobs) + in_index;
	disk_r->index_bytes = index > in_index ? index - in_index : 0;
	disk_r->search_bytes = (uint64_t)search;
	disk_r->unindexed = (uint64_t)unindexed;
	free(blobs);
	return 0;
}
