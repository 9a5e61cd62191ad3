/*
 * Unit tests of the store API against the embedded backend, each in a
 * fresh temporary data directory: mailboxes, append/fetch, UID and modseq
 * rules, flags, copy/move, expunge log, quota, views, \Recent, search,
 * group commit, the blob writer's crash safety, POP3, retention, check.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <malloc.h>
#include <unistd.h>
#include <utime.h>

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "buf.h"
#include "config.h"
#include "pg/pg-private.h"
#include "s3/s3.h"
#include "sqlite/sq-private.h"
#include "store-private.h"
#include "store.h"
#include "test.h"
#include "test-pg.h"

static char data_dir[256];
static struct store_account_limits test_limits;
/* when not 0: test_limits apply to this user only */
static int64_t test_limits_user;

static int limits_cb(void *ctx, int64_t user_id,
		     struct store_account_limits *limits_r)
{
	(void)ctx;
	memset(limits_r, 0, sizeof(*limits_r));
	if (test_limits_user == 0 || test_limits_user == user_id)
		*limits_r = test_limits;
	return 0;
}

static void rm_rf(const char *path)
{
	char *cmd = xasprintf("rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", path);
	free(cmd);
}

/* LOFT_TEST_PG (a libpq connection string, set by tests/unit/pg_run.py):
 * the tests of pg_cases run against the postgres backend, each on an
 * emptied database, bodies in a blob_dir beside the data directory. */
static const char *pg_conninfo;
static char blob_dir[300];
/* LOFT_TEST_S3 (set by pg_run.py --s3): blobs = s3 against that endpoint
 * (a private s3rver behind tests/lib/s3env.py's proxy), bucket TEST_BUCKET
 * kept across cases (objects are content addressed). */
static const char *s3_endpoint, *s3_key, *s3_secret;
#define TEST_BUCKET "loft-test"
/* [store] blob_cache for the next setup (0: none, as loftctl) */
static uint64_t test_blob_cache;

static void set_backend(struct store_settings *set)
{
	set->backend = STORE_BACKEND_POSTGRES;
	set->postgres = pg_conninfo;
	set->blob_dir = blob_dir;
	if (s3_endpoint != NULL) {
		set->blobs = STORE_BLOBS_S3;
		set->s3_endpoint = s3_endpoint;
		set->s3_bucket = TEST_BUCKET;
		set->s3_access_key = s3_key;
		set->s3_secret_key_file = s3_secret;
		set->s3_timeout = 20;
		set->blob_cache = test_blob_cache;
	}
}

static void pg_reset(void)
{
	test_pg_reset(pg_conninfo);
}

/* Settings for a second store (another process) on the same data. */
static struct store_settings other_settings(void)
{
	struct store_settings set = {.data_dir = data_dir, .fsync = false};
	if (pg_conninfo != NULL)
		set_backend(&set);
	return set;
}

static struct store *setup_fsync(bool fsync)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(data_dir, sizeof(data_dir), "%s/loft-test-store-XXXXXX", tmp);
	if (mkdtemp(data_dir) == NULL)
		abort();
	memset(&test_limits, 0, sizeof(test_limits));
	test_limits_user = 0;
	struct store_settings set = {
		.data_dir = data_dir,
		.max_message_size = 1024 * 1024,
		.limits = limits_cb,
		.fsync = fsync,
	};
	if (pg_conninfo != NULL) {
		snprintf(blob_dir, sizeof(blob_dir), "%s-blobs", data_dir);
		pg_reset();
		set_backend(&set);
	}
	struct store *store;
	struct store_error err;
	if (store_open(&set, &store, &err) < 0) {
		fprintf(stderr, "store_open: %s\n", err.msg);
		abort();
	}
	return store;
}

static struct store *setup(void)
{
	return setup_fsync(false);
}

static void teardown(struct store **store)
{
	store_close(store);
	rm_rf(data_dir);
	if (pg_conninfo != NULL)
		rm_rf(blob_dir);
}

static struct store_user *user_open(struct store *store, int64_t id)
{
	struct store_user *u;
	struct store_error err;
	if (store_user_open(store, id, &u, &err) < 0) {
		fprintf(stderr, "user_open: %s\n", err.msg);
		abort();
	}
	return u;
}

static uint32_t append(struct store_user *u, const char *mbox, const char *msg,
		       unsigned flags)
{
	struct store_append_params p = {.flags = flags};
	uint32_t uid = 0;
	struct store_error err;
	if (store_append(u, mbox, msg, strlen(msg), &p, &uid, NULL, &err) < 0) {
		fprintf(stderr, "append: %s\n", err.msg);
		return 0;
	}
	return uid;
}

static struct store_mailbox_info status(struct store_user *u, const char *name)
{
	struct store_mailbox_info info;
	memset(&info, 0, sizeof(info));
	struct store_error err;
	if (store_mailbox_status(u, name, &info, &err) < 0)
		fprintf(stderr, "status %s: %s\n", name, err.msg);
	return info;
}

/* Counts files under dir (recursively). */
static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char *p = xasprintf("%s/%s", dir, e->d_name);
		struct stat st;
		if (stat(p, &st) == 0)
			n += S_ISDIR(st.st_mode) ? count_files(p) : 1;
		free(p);
	}
	closedir(d);
	return n;
}

static char *user_path(int64_t id, const char *sub)
{
	return xasprintf("%s/mail/%02x/%lld/%s", data_dir,
			 store_user_shard(id), (long long)id, sub);
}

/* One integer from a query on a user's index (another connection). */
static long long index_int(int64_t id, const char *sql)
{
	char *path = user_path(id, "index.db");
	sqlite3 *db;
	sqlite3_stmt *st;
	long long v = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ==
		    SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	free(path);
	return v;
}

/* Bodies a user has stored: in the index and in files. */
static int stored_bodies(int64_t id)
{
	if (pg_conninfo != NULL) {
		/* one blob row per stored copy of a body (COPY shares it) */
		PGconn *db = PQconnectdb(pg_conninfo);
		char sql[96];
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM blob"
			 " WHERE user_id = %lld", (long long)id);
		PGresult *r = PQexec(db, sql);
		int n = PQresultStatus(r) == PGRES_TUPLES_OK
				? atoi(PQgetvalue(r, 0, 0)) : -1;
		PQclear(r);
		PQfinish(db);
		return n;
	}
	char *blobs = user_path(id, "blobs");
	int n = count_files(blobs) +
		(int)index_int(id, "SELECT count(*) FROM body");
	free(blobs);
	return n;
}

/* Spill files of bodies being written (mail/tmp). */
static int spill_files(void)
{
	char *tmp = xasprintf("%s/mail/tmp", data_dir);
	int n = count_files(tmp);
	free(tmp);
	return n;
}

/* A message of n bytes (n > 40): a Subject line, then x's. */
static char *big_message(const char *subject, size_t n)
{
	char *m = xmalloc(n + 1);
	memset(m, 'x', n);
	int h = snprintf(m, n, "Subject: %s\r\n\r\n", subject);
	m[h] = 'x';
	memcpy(m + n - 2, "\r\n", 2);
	m[n] = '\0';
	return m;
}

/* ---- tests -------------------------------------------------------- */

/* A new account's index as its file: a WAL database (header bytes 18
 * and 19), whole, and nothing left beside it from its making. */
static void check_new_index(int64_t id)
{
	char *path = user_path(id, "index.db");
	unsigned char head[20] = {0};
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	if (f != NULL) {
		CHECK_INT((int)fread(head, 1, sizeof(head), f), 20);
		fclose(f);
	}
	CHECK(memcmp(head, "SQLite format 3", 16) == 0);
	CHECK_INT(head[18], 2);
	CHECK_INT(head[19], 2);
	sqlite3 *db;
	sqlite3_stmt *st;
	const char *result = NULL;
	char *dup = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ==
		    SQLITE_OK &&
	    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) ==
		    SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW &&
		    (result = (const char *)sqlite3_column_text(st, 0)) != NULL)
			dup = xstrdup(result);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	CHECK_STR(dup, "ok");
	free(dup);
	free(path);
	char *dir = user_path(id, "");
	DIR *d = opendir(dir);
	struct dirent *e;
	int leftovers = 0;
	while (d != NULL && (e = readdir(d)) != NULL)
		if (strstr(e->d_name, ".new-") != NULL ||
		    strstr(e->d_name, "-journal") != NULL)
			leftovers++;
	if (d != NULL)
		closedir(d);
	CHECK_INT(leftovers, 0);
	free(dir);
}

static void test_defaults(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 1);
	if (pg_conninfo == NULL)
		check_new_index(1);
	struct store_mailbox_info *list;
	size_t n;
	struct store_error err;
	CHECK_INT(store_mailbox_list(u, &list, &n, &err), 0);
	CHECK_INT(n, 6);
	if (n == 6) {
		CHECK_STR(list[0].name, "INBOX");
		CHECK_STR(list[1].name, "Archive");
		CHECK_INT(list[1].special_use, STORE_SPECIAL_ARCHIVE);
		CHECK_STR(list[5].name, "Trash");
		CHECK_INT(list[5].special_use, STORE_SPECIAL_TRASH);
		for (size_t i = 0; i < n; i++) {
			CHECK(list[i].subscribed);
			CHECK(list[i].uidvalidity > 0);
			CHECK_INT(list[i].uidnext, 1);
			CHECK(list[i].objectid[0] == 'F');
		}
		CHECK(list[0].uidvalidity != list[1].uidvalidity);
	}
	store_mailbox_list_free(list, n);
	char *junk = store_mailbox_find_special(u, STORE_SPECIAL_JUNK);
	CHECK_STR(junk, "Junk");
	free(junk);
	/* the same handle for the same user */
	struct store_user *u2 = user_open(store, 1);
	CHECK(u2 == u);
	store_user_unref(&u2);
	store_user_unref(&u);
	/* reopening keeps what a user deleted deleted */
	u = user_open(store, 1);
	CHECK_INT(store_mailbox_delete(u, "Junk", &err), 0);
	store_user_unref(&u);
	u = user_open(store, 1);
	struct store_mailbox_info info;
	CHECK_INT(store_mailbox_status(u, "Junk", &info, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	append(u, "INBOX", "Subject: x\r\n\r\nx\r\n", 0);
	/* deleting an account in use is refused; idle, it goes entirely */
	CHECK_INT(store_user_delete(store, 1, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_TEMP);
	store_user_unref(&u);
	CHECK_INT(store_user_delete(store, 1, &err), 0);
	char *dir = user_path(1, "");
	CHECK(access(dir, F_OK) != 0);
	free(dir);
	u = user_open(store, 1);
	info = status(u, "INBOX");
	CHECK_INT(info.messages, 0);
	store_mailbox_info_free(&info);
	info = status(u, "Junk");
	CHECK_INT(info.special_use, STORE_SPECIAL_JUNK);
	store_mailbox_info_free(&info);
	store_user_unref(&u);
	teardown(&store);
}

static void test_append_fetch(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 7);
	struct store_error err;
	const char msg[] = "From: a@example.test\nSubject: Hello\n\nline1\nline2\r\nend";
	const char crlf[] = "From: a@example.test\r\nSubject: Hello\r\n\r\nline1\r\nline2\r\nend";
	const char *kw[] = {"$Forwarded", "Work"};
	struct store_append_params p = {
		.flags = STORE_FLAG_SEEN | STORE_FLAG_FLAGGED,
		.keywords = kw,
		.keyword_count = 2,
		.internaldate = 1700000000,
	};
	uint32_t uid, uidv;
	CHECK_INT(store_append(u, "inbox", msg, strlen(msg), &p, &uid, &uidv,
			       &err), 0);
	CHECK_INT(uid, 1);
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.uidvalidity, uidv);
	CHECK_INT(info.uidnext, 2);
	CHECK_INT(info.messages, 1);
	CHECK_INT(info.unseen, 0);
	CHECK_INT(info.size, strlen(crlf));
	uint64_t ms1 = info.highestmodseq;
	CHECK(ms1 > 0);
	store_mailbox_info_free(&info);

	/* NUL bytes are kept; the next UID follows */
	const char nul[] = "Subject: x\r\n\r\na\0b\r\n";
	CHECK_INT(store_append(u, "INBOX", nul, sizeof(nul) - 1, NULL, &uid,
			       NULL, &err), 0);
	CHECK_INT(uid, 2);
	struct store_blob blob;
	CHECK_INT(store_blob_open(u, "INBOX", 2, &blob, &err), 0);
	CHECK_MEM(blob.data, blob.len, nul, sizeof(nul) - 1);
	store_blob_close(&blob);
	CHECK_INT(store_blob_open(u, "INBOX", 1, &blob, &err), 0);
	CHECK_MEM(blob.data, blob.len, crlf, strlen(crlf));
	store_blob_close(&blob);
	CHECK_INT(store_blob_open(u, "INBOX", 3, &blob, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);

	struct store_fetch *f;
	const struct store_msg *m;
	CHECK_INT(store_fetch_begin(u, "INBOX", NULL, 0,
				    STORE_FETCH_FLAGS | STORE_FETCH_SIZE |
					    STORE_FETCH_SORT | STORE_FETCH_OBJECTID,
				    &f, &err), 0);
	CHECK_INT(store_fetch_next(f, &m, &err), 1);
	CHECK_INT(m->uid, 1);
	CHECK_INT(m->flags, STORE_FLAG_SEEN | STORE_FLAG_FLAGGED);
	CHECK_INT(m->keyword_count, 2);
	if (m->keyword_count == 2) {
		CHECK_STR(m->keywords[0], "$Forwarded");
		CHECK_STR(m->keywords[1], "Work");
		CHECK(m->keywords[2] == NULL);
	}
	CHECK_INT(m->size, strlen(crlf));
	CHECK_INT(m->internaldate, 1700000000);
	CHECK(m->savedate >= time(NULL) - 5);
	CHECK(m->emailid[0] == 'M');
	CHECK(m->threadid[0] == 'T');
	CHECK(m->sort_subject != NULL && strstr(m->sort_subject, "Hello"));
	CHECK_INT(m->modseq, ms1);
	CHECK_INT(store_fetch_next(f, &m, &err), 1);
	CHECK_INT(m->uid, 2);
	CHECK_INT(m->size, sizeof(nul) - 1);
	CHECK_INT(store_fetch_next(f, &m, &err), 0);
	store_fetch_end(&f);

	/* ranges, including overlapping ones */
	struct store_uid_range r[] = {{2, 5}, {2, 2}};
	CHECK_INT(store_fetch_begin(u, "INBOX", r, 2, STORE_FETCH_FLAGS, &f,
				    &err), 0);
	CHECK_INT(store_fetch_next(f, &m, &err), 1);
	CHECK_INT(m->uid, 2);
	CHECK_INT(store_fetch_next(f, &m, &err), 0);
	store_fetch_end(&f);

	char **kws;
	size_t nk;
	CHECK_INT(store_mailbox_keywords(u, "INBOX", &kws, &nk, &err), 0);
	CHECK_INT(nk, 2);
	store_names_free(kws, nk);

	/* errors: no such mailbox, bad keyword, too big */
	CHECK_INT(store_append(u, "Nope", "x", 1, NULL, NULL, NULL, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	const char *badkw[] = {"a b"};
	struct store_append_params bp = {.keywords = badkw, .keyword_count = 1};
	CHECK_INT(store_append(u, "INBOX", "x", 1, &bp, NULL, NULL, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_INVALID);
	char *big = xmalloc(2 * 1024 * 1024);
	memset(big, 'a', 2 * 1024 * 1024);
	CHECK_INT(store_append(u, "INBOX", big, 2 * 1024 * 1024, NULL, NULL,
			       NULL, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_LIMIT);
	free(big);
	info = status(u, "INBOX");
	CHECK_INT(info.messages, 2);
	CHECK_INT(info.uidnext, 3);
	store_mailbox_info_free(&info);
	char *tmp = user_path(7, "tmp");
	CHECK_INT(count_files(tmp), 0);
	free(tmp);
	store_user_unref(&u);
	teardown(&store);
}

static void test_flags_modseq(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 2);
	struct store_error err;
	for (int i = 0; i < 5; i++)
		append(u, "INBOX", "Subject: m\r\n\r\nbody\r\n", 0);
	struct store_mailbox_info info = status(u, "INBOX");
	uint64_t base = info.highestmodseq;
	CHECK_INT(info.unseen, 5);
	store_mailbox_info_free(&info);

	struct store_uid_range r = {2, 3};
	struct store_flag_change ch = {.mode = STORE_FLAGS_ADD,
				       .flags = STORE_FLAG_SEEN | STORE_FLAG_DELETED};
	uint32_t *changed, *modified;
	size_t nc, nm;
	CHECK_INT(store_flags_update(u, "INBOX", &r, 1, &ch, &changed, &nc,
				     &modified, &nm, &err), 0);
	CHECK_INT(nc, 2);
	CHECK_INT(nm, 0);
	free(changed);
	free(modified);
	info = status(u, "INBOX");
	CHECK(info.highestmodseq > base);
	uint64_t after = info.highestmodseq;
	CHECK_INT(info.unseen, 3);
	CHECK_INT(info.deleted, 2);
	store_mailbox_info_free(&info);

	/* no change: no new modseq */
	CHECK_INT(store_flags_update(u, "INBOX", &r, 1, &ch, &changed, &nc,
				     NULL, NULL, &err), 0);
	CHECK_INT(nc, 0);
	free(changed);
	info = status(u, "INBOX");
	CHECK_INT(info.highestmodseq, after);
	store_mailbox_info_free(&info);

	/* UNCHANGEDSINCE: 2 and 3 changed after base, so they fail */
	struct store_uid_range all = {1, 5};
	struct store_flag_change ch2 = {.mode = STORE_FLAGS_ADD,
					.flags = STORE_FLAG_FLAGGED,
					.unchangedsince = base};
	CHECK_INT(store_flags_update(u, "INBOX", &all, 1, &ch2, &changed, &nc,
				     &modified, &nm, &err), 0);
	CHECK_INT(nc, 3);
	CHECK_INT(nm, 2);
	if (nm == 2) {
		CHECK_INT(modified[0], 2);
		CHECK_INT(modified[1], 3);
	}
	free(changed);
	free(modified);
	/* every message changed after base now; overlapping ranges name
	 * each once */
	struct store_uid_range overlap[2] = {{1, 3}, {2, 5}};
	struct store_flag_change ch3 = {.mode = STORE_FLAGS_REMOVE,
					.flags = STORE_FLAG_FLAGGED,
					.unchangedsince = base};
	CHECK_INT(store_flags_update(u, "INBOX", overlap, 2, &ch3, &changed, &nc,
				     &modified, &nm, &err), 0);
	CHECK_INT(nc, 0);
	CHECK_INT(nm, 5);
	for (size_t i = 0; i < nm && nm == 5; i++)
		CHECK_INT(modified[i], i + 1);
	free(changed);
	free(modified);

	/* keywords: add, remove case-insensitively, replace */
	const char *kw[] = {"Foo", "bar"};
	struct store_flag_change ck = {.mode = STORE_FLAGS_ADD, .keywords = kw,
				       .keyword_count = 2};
	struct store_uid_range one = {1, 1};
	CHECK_INT(store_flags_update(u, "INBOX", &one, 1, &ck, NULL, NULL, NULL,
				     NULL, &err), 0);
	const char *rm[] = {"FOO"};
	struct store_flag_change cr = {.mode = STORE_FLAGS_REMOVE, .keywords = rm,
				       .keyword_count = 1};
	CHECK_INT(store_flags_update(u, "INBOX", &one, 1, &cr, NULL, NULL, NULL,
				     NULL, &err), 0);
	struct store_fetch *f;
	const struct store_msg *m;
	CHECK_INT(store_fetch_begin(u, "INBOX", &one, 1, STORE_FETCH_FLAGS, &f,
				    &err), 0);
	CHECK_INT(store_fetch_next(f, &m, &err), 1);
	CHECK_INT(m->keyword_count, 1);
	if (m->keyword_count == 1)
		CHECK_STR(m->keywords[0], "bar");
	CHECK_INT(m->flags, STORE_FLAG_FLAGGED);
	store_fetch_end(&f);

	/* -FLAGS on overlapping ranges: each message changes once */
	struct store_uid_range two[] = {{1, 3}, {2, 5}};
	struct store_flag_change unseen = {.mode = STORE_FLAGS_REMOVE,
					   .flags = STORE_FLAG_SEEN};
	CHECK_INT(store_flags_update(u, "INBOX", two, 2, &unseen, &changed,
				     &nc, NULL, NULL, &err), 0);
	CHECK_INT(nc, 2);
	if (nc == 2) {
		CHECK_INT(changed[0], 2);
		CHECK_INT(changed[1], 3);
	}
	free(changed);
	info = status(u, "INBOX");
	CHECK_INT(info.unseen, 5);
	CHECK_INT(info.deleted, 2);
	store_mailbox_info_free(&info);

	/* changed_since gives exactly the messages changed after a modseq */
	uint32_t *uids;
	size_t n;
	CHECK_INT(store_changed_since(u, "INBOX", after, NULL, 0, &uids, &n,
				      &err), 0);
	CHECK_INT(n, 5); /* 1 (flagged, keywords), 4, 5; 2, 3 (unseen) */
	free(uids);
	store_user_unref(&u);
	teardown(&store);
}

static void test_mailboxes(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 3);
	struct store_error err;
	CHECK_INT(store_mailbox_create(u, "a/b/c", 0, &err), 0);
	struct store_mailbox_info info = status(u, "a");
	CHECK(info.has_children);
	CHECK(!info.noselect);
	store_mailbox_info_free(&info);
	CHECK_INT(store_mailbox_create(u, "a/b", 0, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_EXISTS);
	CHECK_INT(store_mailbox_create(u, "bad//name", 0, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_INVALID);
	CHECK_INT(store_mailbox_create(u, "bad*", 0, &err), -1);
	CHECK_INT(store_mailbox_create(u, "/x", 0, &err), -1);
	CHECK_INT(store_mailbox_create(u, "\xff", 0, &err), -1);
	CHECK_INT(store_mailbox_create(u, "Ünïcødé", 0, &err), 0);
	CHECK_INT(store_mailbox_delete(u, "INBOX", &err), -1);
	CHECK_INT(err.kind, STORE_ERR_PERM);

	append(u, "a/b", "Subject: in b\r\n\r\nx\r\n", 0);
	append(u, "a/b/c", "Subject: in c\r\n\r\nx\r\n", 0);
	struct store_mailbox_info before = status(u, "a/b");

	/* rename with children keeps ids, UIDVALIDITY and messages */
	CHECK_INT(store_mailbox_rename(u, "a", "z/y", &err), 0);
	CHECK_INT(store_mailbox_status(u, "a/b", &info, &err), -1);
	info = status(u, "z/y/b");
	CHECK_INT(info.id, before.id);
	CHECK_INT(info.uidvalidity, before.uidvalidity);
	CHECK_INT(info.messages, 1);
	CHECK_STR(info.objectid, before.objectid);
	store_mailbox_info_free(&info);
	store_mailbox_info_free(&before);
	info = status(u, "z/y/b/c");
	CHECK_INT(info.messages, 1);
	store_mailbox_info_free(&info);
	info = status(u, "z");
	CHECK(info.has_children);
	store_mailbox_info_free(&info);
	CHECK_INT(store_mailbox_rename(u, "z", "Sent", &err), -1);
	CHECK_INT(err.kind, STORE_ERR_EXISTS);
	CHECK_INT(store_mailbox_rename(u, "z", "z/q", &err), -1);
	CHECK_INT(store_mailbox_rename(u, "nope", "q", &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);

	/* delete a parent: it stays as \Noselect for its children */
	CHECK_INT(store_mailbox_delete(u, "z/y/b", &err), 0);
	CHECK_INT(store_mailbox_status(u, "z/y/b", &info, &err), -1);
	struct store_mailbox_info *list;
	size_t nl;
	CHECK_INT(store_mailbox_list(u, &list, &nl, &err), 0);
	bool found = false;
	for (size_t i = 0; i < nl; i++) {
		if (strcmp(list[i].name, "z/y/b") == 0) {
			found = true;
			CHECK(list[i].noselect);
			CHECK(list[i].has_children);
			CHECK_INT(list[i].messages, 0);
		}
	}
	CHECK(found);
	store_mailbox_list_free(list, nl);
	CHECK_INT(store_append(u, "z/y/b", "x", 1, NULL, NULL, NULL, &err), -1);
	CHECK_INT(store_mailbox_delete(u, "z/y/b", &err), -1);
	CHECK_INT(store_mailbox_delete(u, "z/y/b/c", &err), 0);
	CHECK_INT(store_mailbox_delete(u, "z/y/b", &err), 0);
	CHECK_INT(store_mailbox_status(u, "z/y/b", &info, &err), -1);
	/* recreating gives a new UIDVALIDITY */
	CHECK_INT(store_mailbox_create(u, "z/y/b", 0, &err), 0);
	info = status(u, "z/y/b");
	CHECK(info.uidvalidity != 0);
	CHECK_INT(info.messages, 0);
	store_mailbox_info_free(&info);

	/* INBOX rename: messages move, INBOX stays, empty */
	append(u, "INBOX", "Subject: 1\r\n\r\nx\r\n", STORE_FLAG_SEEN);
	append(u, "INBOX", "Subject: 2\r\n\r\nx\r\n", 0);
	struct store_mailbox_info inbox = status(u, "INBOX");
	CHECK_INT(store_mailbox_rename(u, "INBOX", "Old", &err), 0);
	info = status(u, "INBOX");
	CHECK_INT(info.messages, 0);
	CHECK_INT(info.uidvalidity, inbox.uidvalidity);
	CHECK(info.uidnext >= 3);
	store_mailbox_info_free(&info);
	info = status(u, "Old");
	CHECK_INT(info.messages, 2);
	CHECK_INT(info.unseen, 1);
	store_mailbox_info_free(&info);
	store_mailbox_info_free(&inbox);
	CHECK_INT(append(u, "INBOX", "Subject: 3\r\n\r\nx\r\n", 0), 3);

	/* subscriptions survive deletes (LSUB) and follow renames */
	CHECK_INT(store_mailbox_subscribe(u, "Old", true, &err), 0);
	CHECK_INT(store_mailbox_subscribe(u, "Ghost", true, &err), 0);
	CHECK_INT(store_mailbox_rename(u, "Old", "Older", &err), 0);
	char **names;
	size_t n;
	CHECK_INT(store_subscriptions(u, &names, &n, &err), 0);
	bool older = false, ghost = false, old = false;
	for (size_t i = 0; i < n; i++) {
		older |= strcmp(names[i], "Older") == 0;
		old |= strcmp(names[i], "Old") == 0;
		ghost |= strcmp(names[i], "Ghost") == 0;
	}
	CHECK(older && ghost && !old);
	store_names_free(names, n);
	store_user_unref(&u);
	teardown(&store);
}

static void test_copy_move_expunge(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 4);
	struct store_error err;
	for (int i = 0; i < 4; i++)
		append(u, "INBOX", "Subject: c\r\n\r\nbody\r\n", 0);
	struct store_uid_range r = {2, 3};
	uint32_t uv, *src, *dst;
	size_t n;
	CHECK_INT(store_copy(u, "INBOX", &r, 1, "Archive", false, &uv, &src,
			     &dst, &n, &err), 0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_INT(src[0], 2);
		CHECK_INT(dst[0], 1);
		CHECK_INT(src[1], 3);
		CHECK_INT(dst[1], 2);
	}
	free(src);
	free(dst);
	struct store_mailbox_info a = status(u, "Archive");
	CHECK_INT(a.uidvalidity, uv);
	CHECK_INT(a.messages, 2);
	store_mailbox_info_free(&a);
	struct store_usage usage;
	CHECK_INT(store_user_usage(u, &usage, &err), 0);
	CHECK_INT(usage.messages, 6);

	/* the copy shares the blob: same EMAILID */
	struct store_fetch *f;
	const struct store_msg *m;
	char eid[32];
	struct store_uid_range two = {2, 2}, one = {1, 1};
	store_fetch_begin(u, "INBOX", &two, 1, STORE_FETCH_OBJECTID, &f, &err);
	CHECK_INT(store_fetch_next(f, &m, &err), 1);
	memcpy(eid, m->emailid, sizeof(eid));
	store_fetch_end(&f);
	store_fetch_begin(u, "Archive", &one, 1, STORE_FETCH_OBJECTID, &f, &err);
	CHECK_INT(store_fetch_next(f, &m, &err), 1);
	CHECK_STR(m->emailid, eid);
	store_fetch_end(&f);

	/* move: new UIDs in Drafts, expunged from INBOX with a log entry */
	struct store_mailbox_info in = status(u, "INBOX");
	uint64_t ms = in.highestmodseq;
	store_mailbox_info_free(&in);
	struct store_uid_range r4 = {3, 4};
	CHECK_INT(store_copy(u, "INBOX", &r4, 1, "Drafts", true, NULL, NULL,
			     NULL, &n, &err), 0);
	CHECK_INT(n, 2);
	in = status(u, "INBOX");
	CHECK_INT(in.messages, 2);
	store_mailbox_info_free(&in);
	uint32_t *uids;
	bool complete;
	CHECK_INT(store_expunged_since(u, "INBOX", ms, NULL, 0, &uids, &n,
				       &complete, &err), 0);
	CHECK(complete);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_INT(uids[0], 3);
		CHECK_INT(uids[1], 4);
	}
	free(uids);
	CHECK_INT(store_user_usage(u, &usage, &err), 0);
	CHECK_INT(usage.messages, 6);

	/* expunge: only \Deleted (within ranges for UID EXPUNGE) */
	struct store_flag_change del = {.mode = STORE_FLAGS_ADD,
					.flags = STORE_FLAG_DELETED};
	struct store_uid_range all = {1, 100};
	store_flags_update(u, "Archive", &all, 1, &del, NULL, NULL, NULL, NULL,
			   &err);
	CHECK_INT(store_expunge(u, "Archive", &one, 1, false, &uids, &n, &err), 0);
	CHECK_INT(n, 1);
	free(uids);
	CHECK_INT(store_expunge(u, "Archive", NULL, 0, false, &uids, &n, &err), 0);
	CHECK_INT(n, 1);
	if (n == 1)
		CHECK_INT(uids[0], 2);
	free(uids);
	CHECK_INT(store_expunge(u, "INBOX", NULL, 0, false, &uids, &n, &err), 0);
	CHECK_INT(n, 0);
	free(uids);
	CHECK_INT(store_expunge(u, "INBOX", &two, 1, true, &uids, &n, &err), 0);
	CHECK_INT(n, 1);
	free(uids);
	CHECK_INT(store_user_usage(u, &usage, &err), 0);
	CHECK_INT(usage.messages, 3);
	/* the blob of INBOX 2 / Archive 1 is gone now, the others stay */
	CHECK_INT(stored_bodies(4), 3);
	/* UIDs are never reused */
	CHECK_INT(append(u, "Archive", "Subject: n\r\n\r\nx\r\n", 0), 3);
	store_user_unref(&u);
	teardown(&store);
}

static void test_quota(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 5);
	struct store_error err;
	const char msg[] = "Subject: q\r\n\r\n0123456789\r\n"; /* 26 bytes */
	test_limits.quota_bytes = 60;
	CHECK(append(u, "INBOX", msg, 0) == 1);
	CHECK(append(u, "INBOX", msg, 0) == 2);
	CHECK_INT(store_append(u, "INBOX", msg, strlen(msg), NULL, NULL, NULL,
			       &err), -1);
	CHECK_INT(err.kind, STORE_ERR_QUOTA);
	struct store_usage usage;
	store_user_usage(u, &usage, &err);
	CHECK_INT(usage.bytes, 52);
	CHECK_INT(usage.messages, 2);
	CHECK_INT(stored_bodies(5), 2);
	/* copy over quota: nothing copied; move is always allowed */
	CHECK_INT(store_copy(u, "INBOX", NULL, 0, "Archive", false, NULL, NULL,
			     NULL, NULL, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_QUOTA);
	struct store_mailbox_info a = status(u, "Archive");
	CHECK_INT(a.messages, 0);
	store_mailbox_info_free(&a);
	CHECK_INT(store_copy(u, "INBOX", NULL, 0, "Archive", true, NULL, NULL,
			     NULL, NULL, &err), 0);
	store_user_usage(u, &usage, &err);
	CHECK_INT(usage.bytes, 52);
	test_limits.quota_bytes = 0;
	test_limits.quota_messages = 2;
	CHECK_INT(store_append(u, "INBOX", msg, strlen(msg), NULL, NULL, NULL,
			       &err), -1);
	CHECK_INT(err.kind, STORE_ERR_QUOTA);
	test_limits.quota_messages = 0;
	CHECK(append(u, "INBOX", msg, 0) == 3);
	CHECK_INT(stored_bodies(5), 3);
	store_user_unref(&u);
	teardown(&store);
}

/* ---- views -------------------------------------------------------- */

struct events {
	char log[1024];
};

static void ev_expunged(void *ctx, uint32_t seq, uint32_t uid)
{
	struct events *e = ctx;
	size_t l = strlen(e->log);
	snprintf(e->log + l, sizeof(e->log) - l, "X%u/%u ", seq, uid);
}

static void ev_changed(void *ctx, uint32_t seq, const struct store_msg *m)
{
	struct events *e = ctx;
	size_t l = strlen(e->log);
	snprintf(e->log + l, sizeof(e->log) - l, "F%u/%u:%u ", seq, m->uid,
		 m->flags);
}

static void ev_exists(void *ctx, uint32_t count)
{
	struct events *e = ctx;
	size_t l = strlen(e->log);
	snprintf(e->log + l, sizeof(e->log) - l, "E%u ", count);
}

static const struct store_view_callbacks view_cb = {ev_expunged, ev_changed,
						    ev_exists};

static void test_views(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 6);
	struct store_error err;
	for (int i = 0; i < 4; i++)
		append(u, "INBOX", "Subject: v\r\n\r\nx\r\n", 0);
	struct store_view *v, *ro;
	CHECK_INT(store_view_open(u, "INBOX", 0, &v, &err), 0);
	CHECK_INT(store_view_count(v), 4);
	CHECK_INT(store_view_uid(v, 4), 4);
	CHECK_INT(store_view_uid(v, 5), 0);
	CHECK_INT(store_view_seq(v, 3), 3);
	CHECK_INT(store_view_recent_count(v), 4);
	CHECK(store_view_is_recent(v, 1));
	CHECK(!store_view_has_changes(v));
	/* the second view gets no \Recent: the first took it */
	CHECK_INT(store_view_open(u, "INBOX", STORE_VIEW_READONLY, &ro, &err), 0);
	CHECK_INT(store_view_recent_count(ro), 0);

	append(u, "INBOX", "Subject: v5\r\n\r\nx\r\n", 0);
	struct store_uid_range r2 = {2, 2}, r3 = {3, 3};
	struct store_flag_change seen = {.mode = STORE_FLAGS_ADD,
					 .flags = STORE_FLAG_SEEN};
	store_flags_update(u, "INBOX", &r2, 1, &seen, NULL, NULL, NULL, NULL,
			   &err);
	store_expunge(u, "INBOX", &r3, 1, true, NULL, NULL, &err);
	CHECK(store_view_has_changes(v));

	/* expunges not allowed: the message stays, numbering is kept */
	struct events e = {""};
	CHECK_INT(store_view_sync(v, false, &view_cb, &e, &err), 0);
	CHECK_STR(e.log, "E5 F2/2:1 ");
	CHECK_INT(store_view_count(v), 5);
	CHECK_INT(store_view_uid(v, 3), 3);
	CHECK_INT(store_view_recent_count(v), 5);
	/* later, allowed: reported once */
	e.log[0] = '\0';
	CHECK_INT(store_view_sync(v, true, &view_cb, &e, &err), 0);
	CHECK_STR(e.log, "X3/3 ");
	CHECK_INT(store_view_count(v), 4);
	CHECK_INT(store_view_uid(v, 3), 4);
	CHECK_INT(store_view_seq(v, 5), 4);
	CHECK_INT(store_view_seq_ceil(v, 3), 3);
	CHECK_INT(store_view_seq_ceil(v, 99), 5);
	e.log[0] = '\0';
	CHECK_INT(store_view_sync(v, true, &view_cb, &e, &err), 0);
	CHECK_STR(e.log, "");

	/* several expunges: highest sequence first */
	struct store_uid_range all = {1, 10};
	store_expunge(u, "INBOX", &all, 1, true, NULL, NULL, &err);
	e.log[0] = '\0';
	CHECK_INT(store_view_sync(ro, true, &view_cb, &e, &err), 0);
	CHECK_STR(e.log, "X4/4 X3/3 X2/2 X1/1 ");
	CHECK_INT(store_view_count(ro), 0);
	e.log[0] = '\0';
	CHECK_INT(store_view_sync(v, true, &view_cb, &e, &err), 0);
	CHECK_STR(e.log, "X4/5 X3/4 X2/2 X1/1 ");
	CHECK_INT(store_view_count(v), 0);
	store_view_close(&ro);
	store_view_close(&v);

	/* a deleted mailbox: sync fails with NOTFOUND */
	store_mailbox_create(u, "Gone", 0, &err);
	CHECK_INT(store_view_open(u, "Gone", 0, &v, &err), 0);
	store_mailbox_delete(u, "Gone", &err);
	CHECK_INT(store_view_sync(v, true, NULL, NULL, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	store_view_close(&v);
	store_user_unref(&u);
	teardown(&store);
}

struct bulk {
	uint32_t calls, last_seq;
	bool descending;
};

static void bulk_expunged(void *ctx, uint32_t seq, uint32_t uid)
{
	struct bulk *b = ctx;
	if (b->calls > 0 && seq >= b->last_seq)
		b->descending = false;
	if (seq != uid / 2) /* the view holds the even UIDs 2, 4, ... */
		b->descending = false;
	b->calls++;
	b->last_seq = seq;
}

static void test_view_bulk_and_other_process(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 17);
	struct store_error err;
	enum { N = 400 };
	for (int i = 0; i < N; i++)
		append(u, "INBOX", "Subject: b\r\n\r\nx\r\n", 0);
	struct store_uid_range odd[N / 2];
	for (int i = 0; i < N / 2; i++)
		odd[i].lo = odd[i].hi = (uint32_t)(2 * i + 1);
	store_expunge(u, "INBOX", odd, N / 2, true, NULL, NULL, &err);
	struct store_view *v;
	CHECK_INT(store_view_open(u, "INBOX", 0, &v, &err), 0);
	CHECK_INT(store_view_count(v), N / 2);

	/* another process (a second store on the same files) expunges all;
	 * no hub tells us, the sync still finds it */
	struct store_settings set = other_settings();
	struct store *other;
	CHECK_INT(store_open(&set, &other, &err), 0);
	struct store_user *u2 = user_open(other, 17);
	CHECK_INT(store_expunge(u2, "INBOX", NULL, 0, true, NULL, NULL, &err), 0);
	store_user_unref(&u2);
	store_close(&other);

	struct bulk b = {0, 0, true};
	struct store_view_callbacks cb = {bulk_expunged, NULL, NULL};
	CHECK_INT(store_view_sync(v, true, &cb, &b, &err), 0);
	CHECK_INT(b.calls, N / 2);
	CHECK(b.descending);
	CHECK_INT(b.last_seq, 1);
	CHECK_INT(store_view_count(v), 0);
	/* and the counter moved on in the other process: appends go on */
	CHECK_INT(append(u, "INBOX", "Subject: b\r\n\r\nx\r\n", 0), N + 1);
	store_view_close(&v);
	store_user_unref(&u);
	teardown(&store);
}

static void test_recent_status(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 8);
	struct store_error err;
	append(u, "INBOX", "Subject: r\r\n\r\nx\r\n", 0);
	append(u, "INBOX", "Subject: r\r\n\r\nx\r\n", 0);
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.recent, 2);
	store_mailbox_info_free(&info);
	struct store_view *v;
	store_view_open(u, "INBOX", STORE_VIEW_READONLY, &v, &err);
	CHECK_INT(store_view_recent_count(v), 2); /* EXAMINE sees, keeps */
	store_view_close(&v);
	store_view_open(u, "INBOX", 0, &v, &err);
	CHECK_INT(store_view_recent_count(v), 2);
	store_view_close(&v);
	info = status(u, "INBOX");
	CHECK_INT(info.recent, 0);
	store_mailbox_info_free(&info);
	/* \Recent survives a restart (persisted lazily) */
	append(u, "INBOX", "Subject: r\r\n\r\nx\r\n", 0);
	store_user_unref(&u);
	store_close(&store);
	struct store_settings set = other_settings();
	CHECK_INT(store_open(&set, &store, &err), 0);
	u = user_open(store, 8);
	info = status(u, "INBOX");
	CHECK_INT(info.recent, 1);
	store_mailbox_info_free(&info);
	store_user_unref(&u);
	teardown(&store);
}

/* ---- search ------------------------------------------------------- */

static void search_expect(struct store_user *u, enum store_text_where where,
			  const char *needle, const char *want, int line)
{
	uint32_t *uids;
	size_t n;
	struct store_error err;
	char got[512] = "";
	if (store_search_text(u, "INBOX", where, needle, NULL, 0, &uids, &n,
			      &err) < 0) {
		snprintf(got, sizeof(got), "error %s", err.msg);
	} else {
		for (size_t i = 0; i < n; i++) {
			size_t l = strlen(got);
			snprintf(got + l, sizeof(got) - l, "%s%u", i ? " " : "",
				 uids[i]);
		}
		free(uids);
	}
	if (strcmp(got, want) != 0) {
		fprintf(stderr, "%s:%d: search \"%s\" gave \"%s\", expected \"%s\"\n",
			__FILE__, line, needle, got, want);
		test_failures_in_case++;
	}
}
#define SEARCH(u, w, n, want) search_expect(u, w, n, want, __LINE__)

static void search_all(struct store_user *u)
{
	SEARCH(u, STORE_TEXT_BODY, "numbers", "1");
	SEARCH(u, STORE_TEXT_ALL, "numbers", "1 3");
	SEARCH(u, STORE_TEXT_BODY, "NUMBER", "1 2");
	SEARCH(u, STORE_TEXT_BODY, "number nine", "2");
	SEARCH(u, STORE_TEXT_BODY, "école", "2");
	SEARCH(u, STORE_TEXT_BODY, "ΩΜΈΓΑ", "2");
	SEARCH(u, STORE_TEXT_BODY, "straße", "2");
	SEARCH(u, STORE_TEXT_BODY, "b\"cd", "4");
	SEARCH(u, STORE_TEXT_BODY, "100%", "4");
	SEARCH(u, STORE_TEXT_BODY, "zebra", "");
	SEARCH(u, STORE_TEXT_BODY, "od", "1"); /* short: scanned */
	SEARCH(u, STORE_TEXT_BODY, "n", "1 2 3 4");
	SEARCH(u, STORE_TEXT_ALL, "b64", "5");
	SEARCH(u, STORE_TEXT_BODY, "", "1 2 3 4 5");
	SEARCH(u, STORE_TEXT_ALL, "quarterly", "1");
	SEARCH(u, STORE_TEXT_BODY, "hello world", "5"); /* base64 decoded */
	SEARCH(u, STORE_TEXT_BODY, "aGVsbG8", "");
	/* the trigrams all occur but not in sequence */
	SEARCH(u, STORE_TEXT_BODY, "look numbers", "");
}

static void test_search(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 9);
	append(u, "INBOX", "Subject: Quarterly report\r\n\r\nThe NUMBERS look good.\r\n", 0);
	append(u, "INBOX", "Subject: lunch\r\nContent-Type: text/plain; charset=utf-8\r\n"
	       "\r\nnumber nine, Straße, ÉCOLE, Ωμέγα\r\n", 0);
	append(u, "INBOX", "Subject: numbers\r\n\r\nnothing here\r\n", 0);
	append(u, "INBOX", "Subject: x\r\n\r\nab\"cd\" and 100%\r\n", 0);
	append(u, "INBOX", "Subject: b64\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	       "aGVsbG8gd29ybGQ=\r\n", 0);
	struct store_error err;
	/* exact before the indexer gets there (text rows scanned) ... */
	search_all(u);
	/* ... and after (trigram candidates, verified) */
	CHECK_INT(store_index_flush(u, &err), 0);
	search_all(u);
	uint32_t *uids;
	size_t n;
	struct store_uid_range r = {2, 4};
	CHECK_INT(store_search_text(u, "INBOX", STORE_TEXT_BODY, "number", &r,
				    1, &uids, &n, &err), 0);
	CHECK_INT(n, 1);
	free(uids);
	/* a copy is found in its mailbox; expunged messages leave the index */
	struct store_uid_range one = {1, 1};
	store_copy(u, "INBOX", &one, 1, "Archive", false, NULL, NULL, NULL,
		   NULL, &err);
	CHECK_INT(store_search_text(u, "Archive", STORE_TEXT_BODY, "numbers",
				    NULL, 0, &uids, &n, &err), 0);
	CHECK_INT(n, 1);
	free(uids);
	store_expunge(u, "INBOX", &r, 1, true, NULL, NULL, &err);
	SEARCH(u, STORE_TEXT_BODY, "number", "1");
	append(u, "INBOX", "Subject: new\r\n\r\nmore numbers\r\n", 0);
	SEARCH(u, STORE_TEXT_BODY, "numbers", "1 6");
	CHECK_INT(store_index_flush(u, &err), 0);
	SEARCH(u, STORE_TEXT_BODY, "numbers", "1 6");
	store_expunge(u, "INBOX", NULL, 0, true, NULL, NULL, &err);
	SEARCH(u, STORE_TEXT_BODY, "numbers", "");
	store_user_unref(&u);
	teardown(&store);
}

/* ---- group commit ------------------------------------------------- */

struct writer_arg {
	struct store *store;
	int count;
	int failures;
};

static void *writer_main(void *p)
{
	struct writer_arg *a = p;
	struct store_user *u = user_open(a->store, 10);
	char msg[256];
	for (int i = 0; i < a->count; i++) {
		snprintf(msg, sizeof(msg), "Subject: t%d\r\n\r\nbody %d\r\n", i, i);
		if (append(u, "INBOX", msg, 0) == 0)
			a->failures++;
	}
	store_user_unref(&u);
	return NULL;
}

static void test_group_commit(void)
{
	/* with fsync on: durability is what makes batching matter */
	struct store *store = setup_fsync(true);
	enum { THREADS = 8, EACH = 25 };
	pthread_t t[THREADS];
	struct writer_arg a[THREADS];
	for (int i = 0; i < THREADS; i++) {
		a[i] = (struct writer_arg){store, EACH, 0};
		pthread_create(&t[i], NULL, writer_main, &a[i]);
	}
	int failures = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		failures += a[i].failures;
	}
	CHECK_INT(failures, 0);
	struct store_user *u = user_open(store, 10);
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.messages, THREADS * EACH);
	CHECK_INT(info.uidnext, THREADS * EACH + 1);
	/* the counter starts at 1; each append takes the next value */
	CHECK_INT(info.highestmodseq, 1 + THREADS * EACH);
	store_mailbox_info_free(&info);
	struct store_usage usage;
	struct store_error err;
	store_user_usage(u, &usage, &err);
	CHECK_INT(usage.messages, THREADS * EACH);
	/* every UID once, in order */
	struct store_fetch *f;
	const struct store_msg *m;
	store_fetch_begin(u, "INBOX", NULL, 0, STORE_FETCH_FLAGS, &f, &err);
	uint32_t expect = 1;
	while (store_fetch_next(f, &m, &err) == 1)
		CHECK_INT(m->uid, expect++);
	store_fetch_end(&f);
	CHECK_INT(expect, THREADS * EACH + 1);
	store_user_unref(&u);
	teardown(&store);
}

/* ---- blob writer crash safety ------------------------------------- */

static void test_blob_writer(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 11);
	struct store_error err;
	struct store_blob_writer *w;
	char *tmp = user_path(11, "tmp"), *blobs = user_path(11, "blobs");

	/* streaming, split CRLF across writes */
	CHECK_INT(store_blob_writer_create(u, &w, &err), 0);
	store_blob_writer_write(w, "Subject: s\r", 11, &err);
	store_blob_writer_write(w, "\n\nab\n", 5, &err);
	CHECK_INT(store_blob_writer_size(w), 18);
	uint32_t uid;
	CHECK_INT(store_blob_writer_commit(&w, "INBOX", NULL, &uid, NULL, &err), 0);
	CHECK(w == NULL);
	struct store_blob b;
	store_blob_open(u, "INBOX", uid, &b, &err);
	CHECK_MEM(b.data, b.len, "Subject: s\r\n\r\nab\r\n", 18);
	store_blob_close(&b);

	/* abort leaves nothing: a small body never touches the disk
	 * before its commit, a big one spills to mail/tmp */
	CHECK_INT(store_blob_writer_create(u, &w, &err), 0);
	store_blob_writer_write(w, "Subject: a\r\n\r\nx\r\n", 17, &err);
	CHECK_INT(spill_files(), 0);
	store_blob_writer_abort(&w);
	char *bigm = big_message("big", 300000);
	CHECK_INT(store_blob_writer_create(u, &w, &err), 0);
	store_blob_writer_write(w, bigm, 300000, &err);
	CHECK_INT(spill_files(), 1);
	store_blob_writer_abort(&w);
	CHECK_INT(spill_files(), 0);
	CHECK_INT(stored_bodies(11), 1);

	/* disk full in the middle: TEMP, nothing stored, nothing left */
	atomic_store(&store->test_fail_write_after, 100000);
	CHECK_INT(store_append(u, "INBOX", bigm, 300000, NULL, NULL, NULL, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_TEMP);
	atomic_store(&store->test_fail_write_after, 0);
	CHECK_INT(spill_files(), 0);
	CHECK_INT(stored_bodies(11), 1);
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.messages, 1);
	store_mailbox_info_free(&info);
	struct store_usage usage;
	store_user_usage(u, &usage, &err);
	CHECK_INT(usage.messages, 1);
	CHECK_INT(usage.bytes, 18);

	/* a commit that fails in the index removes what it stored: the
	 * body row with its row, the link of a big body */
	CHECK_INT(store_blob_writer_create(u, &w, &err), 0);
	store_blob_writer_write(w, "x\r\n", 3, &err);
	CHECK_INT(store_blob_writer_commit(&w, "NoSuchBox", NULL, NULL, NULL,
					   &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	CHECK_INT(store_append(u, "NoSuchBox", bigm, 300000, NULL, NULL, NULL,
			       &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	CHECK_INT(spill_files(), 0);
	CHECK_INT(stored_bodies(11), 1);

	/* a big body is a file, read back whole */
	CHECK_INT(store_append(u, "INBOX", bigm, 300000, NULL, &uid, NULL,
			       &err), 0);
	CHECK_INT(stored_bodies(11), 2);
	CHECK_INT(count_files(blobs), 1);
	CHECK_INT(store_blob_open(u, "INBOX", uid, &b, &err), 0);
	CHECK_MEM(b.data, b.len, bigm, 300000);
	store_blob_close(&b);
	free(bigm);
	free(tmp);
	free(blobs);
	store_user_unref(&u);
	teardown(&store);
}

/* ---- the hub ------------------------------------------------------ */

struct hub_log {
	int appends, flags, expunges, mailboxes;
	uint64_t last_modseq;
	unsigned logouts;
};

static void hub_cb(void *ctx, const struct store_change *ch)
{
	struct hub_log *h = ctx;
	switch (ch->kind) {
	case STORE_CHANGE_APPEND: h->appends++; break;
	case STORE_CHANGE_FLAGS: h->flags++; break;
	case STORE_CHANGE_EXPUNGE: h->expunges++; break;
	case STORE_CHANGE_MAILBOXES: h->mailboxes++; break;
	case STORE_CHANGE_LOGOUT: h->logouts++; break;
	default: break;
	}
	h->last_modseq = ch->modseq;
}

static void test_hub(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 12);
	struct store_error err;
	struct hub_log h = {0}, other = {0};
	struct store_subscription *sub, *sub2;
	store_subscribe(store, 12, hub_cb, &h, &sub);
	store_subscribe(store, 12 + 1024, hub_cb, &other, &sub2);
	append(u, "INBOX", "Subject: h\r\n\r\nx\r\n", 0);
	struct store_uid_range r = {1, 1};
	struct store_flag_change ch = {.mode = STORE_FLAGS_ADD,
				       .flags = STORE_FLAG_DELETED};
	store_flags_update(u, "INBOX", &r, 1, &ch, NULL, NULL, NULL, NULL, &err);
	store_expunge(u, "INBOX", NULL, 0, false, NULL, NULL, &err);
	store_mailbox_create(u, "New", 0, &err);
	CHECK_INT(h.appends, 1);
	CHECK_INT(h.flags, 1);
	CHECK_INT(h.expunges, 1);
	CHECK_INT(h.mailboxes, 1);
	CHECK_INT(h.last_modseq, 5);
	CHECK_INT(other.appends, 0);
	/* kick: only the account's own subscribers hear it */
	CHECK_INT(store_subscriber_count(store, 12), 1);
	CHECK_INT(store_end_sessions(store, 12), 1);
	CHECK_INT(h.logouts, 1);
	CHECK_INT(other.logouts, 0);
	CHECK_INT(store_end_sessions(store, 99), 0);
	store_unsubscribe(&sub);
	CHECK(sub == NULL);
	CHECK_INT(store_subscriber_count(store, 12), 0);
	append(u, "INBOX", "Subject: h\r\n\r\nx\r\n", 0);
	CHECK_INT(h.appends, 1);
	store_unsubscribe(&sub2);
	store_user_unref(&u);
	teardown(&store);
}

/* ---- POP3 and retention ------------------------------------------- */

static void test_pop3_retention(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 13);
	struct store_error err;
	for (int i = 0; i < 3; i++)
		append(u, "INBOX", "Subject: p\r\n\r\nx\r\n", 0);
	time_t now = time(NULL);
	struct store_mailbox_info before = status(u, "INBOX");
	CHECK_INT(store_pop3_retrieved(u, 1, now - 20 * 86400, &err), 0);
	CHECK_INT(store_pop3_retrieved(u, 1, now, &err), 0); /* first stays */
	CHECK_INT(store_pop3_retrieved(u, 2, now - 20 * 86400, &err), 0);
	uint32_t hide = 3;
	CHECK_INT(store_pop3_hide(u, &hide, 1, NULL, &err), 0);
	/* POP3 marks are invisible to IMAP: no modseq */
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.highestmodseq, before.highestmodseq);
	store_mailbox_info_free(&info);
	store_mailbox_info_free(&before);
	struct store_fetch *f;
	const struct store_msg *m;
	store_fetch_begin(u, "INBOX", NULL, 0, STORE_FETCH_POP3, &f, &err);
	CHECK_INT(store_fetch_next(f, &m, &err), 1);
	CHECK_INT(m->pop3_first_retr, now - 20 * 86400);
	CHECK(!m->pop3_hidden);
	store_fetch_next(f, &m, &err);
	store_fetch_next(f, &m, &err);
	CHECK(m->pop3_hidden);
	store_fetch_end(&f);

	/* retention: POP3-downloaded INBOX mail goes to Trash after 14 days */
	struct store_retention_policy pol = {
		.pop3_retention_days = 14,
		.pop3_delete = STORE_POP3_TRASH,
		.trash_retention_days = 30,
		.junk_retention_days = 30,
	};
	struct store_retention_report rep;
	CHECK_INT(store_retention_run(u, &pol, now, &rep, &err), 0);
	CHECK_INT(rep.pop3_removed, 2);
	CHECK_INT(rep.trash_expunged, 0);
	info = status(u, "INBOX");
	CHECK_INT(info.messages, 1);
	store_mailbox_info_free(&info);
	info = status(u, "Trash");
	CHECK_INT(info.messages, 2);
	store_mailbox_info_free(&info);
	/* 31 days later Trash is emptied (by the date moved there) */
	CHECK_INT(store_retention_run(u, &pol, now + 31 * 86400, &rep, &err), 0);
	CHECK_INT(rep.trash_expunged, 2);
	info = status(u, "Trash");
	CHECK_INT(info.messages, 0);
	store_mailbox_info_free(&info);
	/* Junk by savedate too */
	append(u, "Junk", "Subject: spam\r\n\r\nx\r\n", 0);
	CHECK_INT(store_retention_run(u, &pol, now + 29 * 86400, &rep, &err), 0);
	CHECK_INT(rep.junk_expunged, 0);
	CHECK_INT(store_retention_run(u, &pol, now + 31 * 86400, &rep, &err), 0);
	CHECK_INT(rep.junk_expunged, 1);
	store_user_unref(&u);
	teardown(&store);
}

/* pop3_delete = auto in retention: trash without a recent sync login,
 * hide with one; store_pop3_hide counts what it newly hid. */
static void test_pop3_auto(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 14);
	struct store_error err;
	time_t now = time(NULL);
	for (int i = 0; i < 4; i++)
		append(u, "INBOX", "Subject: a\r\n\r\nx\r\n", 0);
	for (uint32_t uid = 1; uid <= 4; uid++)
		store_pop3_retrieved(u, uid, now - 20 * 86400, &err);
	size_t hidden = 9;
	uint32_t uids[] = {4, 4, 99};
	CHECK_INT(store_pop3_hide(u, uids, 3, &hidden, &err), 0);
	CHECK_INT((int)hidden, 1);     /* 4 once; 99 does not exist */
	CHECK_INT(store_pop3_hide(u, uids, 1, &hidden, &err), 0);
	CHECK_INT((int)hidden, 0);     /* already hidden */
	struct store_retention_policy pol = {
		.pop3_retention_days = 14,
		.pop3_delete = STORE_POP3_AUTO,
	};
	struct store_retention_report rep;
	/* never an IMAP login: to Trash */
	uint32_t keep = 3;
	CHECK_INT(store_pop3_hide(u, &keep, 0, NULL, &err), 0);
	CHECK_INT(store_retention_run(u, &pol, now, &rep, &err), 0);
	CHECK_INT(rep.pop3_removed, 3);
	struct store_mailbox_info info = status(u, "Trash");
	CHECK_INT(info.messages, 3);
	store_mailbox_info_free(&info);
	/* with a recent login: hidden, INBOX keeps it */
	append(u, "INBOX", "Subject: b\r\n\r\nx\r\n", 0);
	store_pop3_retrieved(u, 5, now - 20 * 86400, &err);
	CHECK_INT(store_note_sync_login(u, now - 86400, &err), 0);
	CHECK_INT(store_retention_run(u, &pol, now, &rep, &err), 0);
	CHECK_INT(rep.pop3_removed, 1);
	info = status(u, "INBOX");
	CHECK_INT(info.messages, 2);   /* 4 (hidden before) and 5 */
	store_mailbox_info_free(&info);
	store_user_unref(&u);
	teardown(&store);
}

/* One mailbox per role: a role that exists cannot be created again;
 * missing roles come back (a plain mailbox of the name takes it). */
static void test_roles(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 15);
	struct store_error err;
	CHECK_INT(store_mailbox_create(u, "Bin", STORE_SPECIAL_TRASH, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_INVALID);
	CHECK_INT(store_mailbox_delete(u, "Trash", &err), 0);
	CHECK_INT(store_mailbox_delete(u, "Junk", &err), 0);
	CHECK_INT(store_mailbox_create(u, "Junk", 0, &err), 0);
	CHECK_INT(store_mailbox_rename(u, "Sent", "Sent Items", &err), 0);
	CHECK_INT(store_mailbox_roles_ensure(u, &err), 0);
	char *n = store_mailbox_find_special(u, STORE_SPECIAL_TRASH);
	CHECK_STR(n, "Trash");
	free(n);
	n = store_mailbox_find_special(u, STORE_SPECIAL_JUNK);
	CHECK_STR(n, "Junk");
	free(n);
	n = store_mailbox_find_special(u, STORE_SPECIAL_SENT);
	CHECK_STR(n, "Sent Items");
	free(n);
	struct store_mailbox_info info;
	CHECK_INT(store_mailbox_status(u, "Sent", &info, &err), -1);
	/* Trash's name taken by a mailbox with another role: "Trash 2" */
	CHECK_INT(store_mailbox_delete(u, "Trash", &err), 0);
	CHECK_INT(store_mailbox_rename(u, "Archive", "Trash", &err), 0);
	CHECK_INT(store_mailbox_roles_ensure(u, &err), 0);
	n = store_mailbox_find_special(u, STORE_SPECIAL_TRASH);
	CHECK_STR(n, "Trash 2");
	free(n);
	n = store_mailbox_find_special(u, STORE_SPECIAL_ARCHIVE);
	CHECK_STR(n, "Trash");
	free(n);
	store_user_unref(&u);
	teardown(&store);
}

/* ---- check -------------------------------------------------------- */

struct lines {
	int n;
	char last[512];
	char all[4096]; /* every line, each ended by a newline (cut) */
};

static void report_cb(void *ctx, const char *line)
{
	struct lines *l = ctx;
	l->n++;
	snprintf(l->last, sizeof(l->last), "%s", line);
	size_t used = strlen(l->all);
	snprintf(l->all + used, sizeof(l->all) - used, "%s\n", line);
}

static void test_check(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 14);
	struct store_error err;
	/* message 1 is big enough for a file of its own */
	char *m1 = big_message("1", 200000);
	append(u, "INBOX", m1, 0);
	free(m1);
	append(u, "INBOX", "Subject: 2\r\n\r\nx\r\n", 0);
	store_copy(u, "INBOX", NULL, 0, "Archive", false, NULL, NULL, NULL,
		   NULL, &err);
	struct lines l = {0};
	CHECK_INT(store_check(store, 14, true, report_cb, &l, &err), 0);
	CHECK_INT(l.n, 0);

	/* remove the blob of message 1; add an old orphan and a young one */
	struct store_blob b;
	store_blob_open(u, "INBOX", 1, &b, &err);
	store_blob_close(&b);
	char *blobs = user_path(14, "blobs");
	struct store_fetch *f;
	const struct store_msg *m;
	/* find the blob file by content */
	DIR *d;
	char victim[512] = "";
	for (unsigned i = 0; i < 256 && !victim[0]; i++) {
		char *sub = xasprintf("%s/%02x", blobs, i);
		d = opendir(sub);
		struct dirent *e;
		while (d && (e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			char *p = xasprintf("%s/%s", sub, e->d_name);
			FILE *fp = fopen(p, "r");
			char line[32] = "";
			if (fp && fgets(line, sizeof(line), fp) &&
			    strncmp(line, "Subject: 1", 10) == 0)
				snprintf(victim, sizeof(victim), "%s", p);
			if (fp)
				fclose(fp);
			free(p);
		}
		if (d)
			closedir(d);
		free(sub);
	}
	CHECK(victim[0] != '\0');
	unlink(victim);
	char *abdir = xasprintf("%s/ab", blobs);
	mkdir(abdir, 0700);
	free(abdir);
	char *orphan = xasprintf("%s/ab/abcdef", blobs);
	char *young = xasprintf("%s/ab/abcd00", blobs);
	FILE *fp = fopen(orphan, "w");
	fputs("junk", fp);
	fclose(fp);
	fp = fopen(young, "w");
	fputs("junk", fp);
	fclose(fp);
	struct utimbuf old = {time(NULL) - 7200, time(NULL) - 7200};
	utime(orphan, &old);

	/* a lost search text row is rebuilt from the file */
	char *idx = user_path(14, "index.db");
	sqlite3 *db;
	CHECK_INT(sqlite3_open(idx, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	CHECK_INT(sqlite3_exec(db, "DELETE FROM text WHERE id ="
			       " (SELECT max(id) FROM text)", NULL, NULL, NULL),
		  SQLITE_OK);
	sqlite3_close(db);
	free(idx);

	struct hub_log h = {0};
	struct store_subscription *sub;
	store_subscribe(store, 14, hub_cb, &h, &sub);
	l.n = 0;
	CHECK_INT(store_check(store, 14, false, report_cb, &l, &err), -1);
	CHECK_INT(l.n, 3);
	l.n = 0;
	CHECK_INT(store_check(store, 14, true, report_cb, &l, &err), 0);
	CHECK_INT(l.n, 3);
	uint32_t *found;
	size_t nfound;
	CHECK_INT(store_search_text(u, "INBOX", STORE_TEXT_ALL, "subject: 2",
				    NULL, 0, &found, &nfound, &err), 0);
	CHECK_INT(nfound, 1);
	free(found);
	CHECK(access(orphan, F_OK) != 0);
	CHECK(access(young, F_OK) == 0);
	CHECK_INT(h.expunges, 2); /* INBOX and Archive saw it go */
	store_unsubscribe(&sub);
	l.n = 0;
	CHECK_INT(store_check(store, 14, true, report_cb, &l, &err), 0);
	CHECK_INT(l.n, 0);
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.messages, 1);
	store_mailbox_info_free(&info);
	struct store_usage usage;
	store_user_usage(u, &usage, &err);
	CHECK_INT(usage.messages, 2);
	store_fetch_begin(u, "Archive", NULL, 0, STORE_FETCH_FLAGS, &f, &err);
	CHECK_INT(store_fetch_next(f, &m, &err), 1);
	CHECK_INT(m->uid, 2);
	store_fetch_end(&f);
	/* an account with no mail yet is consistent */
	CHECK_INT(store_check(store, 999, true, report_cb, &l, &err), 0);
	free(orphan);
	free(young);
	free(blobs);
	store_user_unref(&u);
	teardown(&store);
}

/* A process appending with durability on is killed at a random moment;
 * after a restart every acknowledged message is there exactly once, the
 * index is consistent, and the dead process's unfinished files go. */
static void test_crash(void)
{
	struct store *store = setup_fsync(true);
	store_close(&store);
	int pfd[2];
	if (pipe(pfd) < 0)
		abort();
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		struct store_settings set = {.data_dir = data_dir, .fsync = true};
		struct store *s;
		struct store_error err;
		if (store_open(&set, &s, &err) < 0)
			_exit(1);
		struct store_user *u;
		if (store_user_open(s, 18, &u, &err) < 0)
			_exit(1);
		/* sizes on both sides of SQ_INLINE_MAX: every third
		 * message is a file of its own */
		static char msg[150200];
		for (unsigned n = 1;; n++) {
			int len = snprintf(msg, sizeof(msg), "Subject: crash %u\r\n\r\n", n);
			size_t body = n % 3 == 0 ? 150000 : 4000;
			memset(msg + len, 'a' + n % 26, body);
			if (store_append(u, "INBOX", msg, (size_t)len + body, NULL,
					 NULL, NULL, &err) == 0 &&
			    write(pfd[1], &n, sizeof(n)) != sizeof(n))
				_exit(1);
		}
	}
	close(pfd[1]);
	unsigned n, acked = 0, max_acked = 0;
	/* the account exists and appends run: now kill at a random moment */
	if (read(pfd[0], &n, sizeof(n)) == sizeof(n))
		acked = max_acked = n;
	usleep(100000 + (unsigned)(rand() % 300000));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	while (read(pfd[0], &n, sizeof(n)) == sizeof(n)) {
		acked++;
		if (n > max_acked)
			max_acked = n;
	}
	close(pfd[0]);
	CHECK(acked > 0);

	struct store_settings set = {.data_dir = data_dir, .fsync = true};
	struct store_error err;
	CHECK_INT(store_open(&set, &store, &err), 0);
	store_start_background(store);
	struct store_user *u = user_open(store, 18);
	unsigned char *seen = xcalloc(max_acked + 2, 1);
	struct store_fetch *f;
	const struct store_msg *m;
	unsigned stored = 0, dups = 0, files = 0;
	store_fetch_begin(u, "INBOX", NULL, 0, STORE_FETCH_SORT, &f, &err);
	while (store_fetch_next(f, &m, &err) == 1) {
		unsigned k = 0;
		if (m->sort_subject != NULL)
			sscanf(m->sort_subject, "crash %u", &k);
		stored++;
		files += m->size > 100000;
		if (k <= max_acked + 1 && seen[k]++)
			dups++;
	}
	store_fetch_end(&f);
	unsigned missing = 0;
	for (unsigned k = 1; k <= max_acked; k++)
		missing += !seen[k];
	CHECK_INT(missing, 0);
	CHECK_INT(dups, 0);
	/* at most the one in flight was stored without its answer */
	CHECK(stored == acked || stored == acked + 1);
	free(seen);
	store_user_unref(&u);
	/* the sweep removes the dead process's files; check finds nothing */
	char *blobs = user_path(18, "blobs");
	for (int i = 0; i < 250 && (spill_files() > 0 ||
				    count_files(blobs) > (int)files); i++)
		usleep(20000);
	CHECK_INT(spill_files(), 0);
	CHECK_INT(count_files(blobs), files);
	CHECK_INT(stored_bodies(18), stored);
	free(blobs);
	struct lines l = {0};
	CHECK_INT(store_check(store, 18, false, report_cb, &l, &err), 0);
	CHECK_INT(l.n, 0);
	teardown(&store);
}

static void test_background_sweep(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 15);
	append(u, "INBOX", "Subject: keep\r\n\r\nx\r\n", 0);
	store_user_unref(&u);
	char *blobs = user_path(15, "blobs");
	char *cddir = xasprintf("%s/cd", blobs);
	mkdir(blobs, 0700);
	mkdir(cddir, 0700);
	free(cddir);
	char *orphan = xasprintf("%s/cd/cdef01", blobs);
	/* tmp/ is where older versions left unfinished appends */
	char *tmpdir = user_path(15, "tmp");
	mkdir(tmpdir, 0700);
	free(tmpdir);
	char *tmpf = user_path(15, "tmp/halfwritten");
	FILE *fp = fopen(orphan, "w");
	fputs("junk", fp);
	fclose(fp);
	fp = fopen(tmpf, "w");
	fputs("junk", fp);
	fclose(fp);
	struct utimbuf old = {time(NULL) - 60, time(NULL) - 60};
	utime(orphan, &old);
	utime(tmpf, &old);
	/* a body's spill file left by a dead process */
	char *spill = xasprintf("%s/mail/tmp/0123abcd", data_dir);
	fp = fopen(spill, "w");
	CHECK(fp != NULL);
	if (fp != NULL) {
		fputs("junk", fp);
		fclose(fp);
	}
	utime(spill, &old);
	free(spill);
	CHECK_INT(spill_files(), 1);
	store_close(&store);
	/* a restart: the sweep runs in the background */
	struct store_settings set = other_settings();
	struct store_error err;
	CHECK_INT(store_open(&set, &store, &err), 0);
	store_start_background(store);
	for (int i = 0; i < 250 && (access(orphan, F_OK) == 0 ||
				    access(tmpf, F_OK) == 0); i++)
		usleep(20000);
	CHECK(access(orphan, F_OK) != 0);
	CHECK(access(tmpf, F_OK) != 0);
	CHECK_INT(count_files(blobs), 0);
	CHECK_INT(stored_bodies(15), 1);
	for (int i = 0; i < 250 && spill_files() > 0; i++)
		usleep(20000);
	CHECK_INT(spill_files(), 0);
	free(orphan);
	free(tmpf);
	free(blobs);
	teardown(&store);
}

static void test_config(void)
{
	const char text[] = "data_dir = /srv/loft\n[limits]\nmax_message_size = 10M\n"
			    "[store]\nfsync = no\n";
	struct config *cfg;
	struct buf errors;
	buf_init(&errors, 0);
	CHECK_INT(config_parse("t.conf", text, strlen(text), &cfg, &errors), 0);
	struct store_settings set;
	CHECK_INT(store_settings_from_config(cfg, &set, &errors), 0);
	CHECK_STR(set.data_dir, "/srv/loft");
	CHECK_INT(set.max_message_size, 10 * 1024 * 1024);
	CHECK(!set.fsync);
	config_free(&cfg);
	const char bad[] = "data_dir = relative\n[limits]\nmax_message_size = lots\n";
	CHECK_INT(config_parse("b.conf", bad, strlen(bad), &cfg, &errors), 0);
	CHECK_INT(store_settings_from_config(cfg, &set, &errors), -1);
	CHECK(errors.data != NULL && strstr(errors.data, "b.conf:1: ") != NULL);
	CHECK(errors.data != NULL && strstr(errors.data, "b.conf:3: ") != NULL);
	config_free(&cfg);
	buf_free(&errors);

	/* the postgres backend's keys, checked without connecting */
	const char pg[] = "data_dir = /srv/loft\n[store]\nbackend = postgres\n"
			  "postgres = host=db1,db2 dbname=loft\n"
			  "postgres_pool = 4\npostgres_timeout = 30s\n"
			  "blob_dir = /srv/blobs\n";
	buf_init(&errors, 0);
	CHECK_INT(config_parse("p.conf", pg, strlen(pg), &cfg, &errors), 0);
	CHECK_INT(store_settings_from_config(cfg, &set, &errors), 0);
	CHECK_INT(set.backend, STORE_BACKEND_POSTGRES);
	CHECK_STR(set.postgres, "host=db1,db2 dbname=loft");
	CHECK_INT(set.postgres_pool, 4);
	CHECK_INT(set.postgres_timeout, 30);
	CHECK_STR(set.blob_dir, "/srv/blobs");
	CHECK_INT(set.blobs, STORE_BLOBS_FILE);
	config_free(&cfg);
	/* blobs = s3: blob_dir optional, the [s3] keys */
	const char s3[] = "data_dir = /srv/loft\n[store]\nbackend = postgres\n"
			  "postgres = host=db1 dbname=loft\nblobs = s3\n[s3]\n"
			  "endpoint = https://s3.example:8443\nbucket = loft-mail\n"
			  "access_key = AK\nsecret_key_file = /etc/loft/s3.key\n"
			  "addressing = virtual\ntimeout = 5s\n";
	CHECK_INT(config_parse("s.conf", s3, strlen(s3), &cfg, &errors), 0);
	CHECK_INT(store_settings_from_config(cfg, &set, &errors), 0);
	CHECK_INT(set.blobs, STORE_BLOBS_S3);
	CHECK(set.blob_dir == NULL);
	CHECK_STR(set.s3_endpoint, "https://s3.example:8443");
	CHECK_STR(set.s3_bucket, "loft-mail");
	CHECK(set.s3_region == NULL);
	CHECK_STR(set.s3_access_key, "AK");
	CHECK_STR(set.s3_secret_key_file, "/etc/loft/s3.key");
	CHECK(set.s3_virtual);
	CHECK_INT(set.s3_timeout, 5);
	CHECK(set.blob_cache == (uint64_t)1 << 30);
	uint16_t ports[4];
	CHECK_INT((int)store_backend_ports(&set, ports, 4), 2);
	CHECK_INT(ports[0], 5432);
	CHECK_INT(ports[1], 8443);
	config_free(&cfg);
	static const struct {
		const char *text, *want;
	} wrong[] = {
		{"[store]\nbackend = mysql\n", "p.conf:2: store.backend: expected"},
		{"[store]\nbackend = postgres\nblob_dir = /srv/b\n",
		 "needs [store] postgres"},
		{"[store]\nbackend = postgres\npostgres = dbname=x\n",
		 "needs [store] blob_dir"},
		{"[store]\nblob_dir = blobs\n", "must be an absolute path"},
		{"data_dir = /srv/loft\n[store]\nblob_dir = /srv/loft/b\n",
		 "must be outside data_dir"},
		{"[store]\npostgres_pool = 0\n", "postgres_pool"},
		{"[store]\npostgres_timeout = soon\n", "postgres_timeout"},
		{"[store]\nbackend = postgres\npostgres = x\nblobs = s3\n",
		 "s3 needs [s3] endpoint"},
		{"[store]\nblobs = nfs\n", "expected file or s3"},
		{"[s3]\nendpoint = ftp://s3.example\n", "s3.endpoint"},
		{"[s3]\nendpoint = http://s3.example/path\n", "without a path"},
		{"[s3]\nbucket = Loft_Mail\n", "s3.bucket"},
		{"[s3]\nsecret_key_file = key\n", "absolute path"},
		{"[s3]\naddressing = dns\n", "path or virtual"},
		{"[s3]\ntimeout = 0s\n", "s3.timeout"},
		{"[store]\nblob_cache = lots\n", "store.blob_cache"},
	};
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		buf_reset(&errors);
		CHECK_INT(config_parse("p.conf", wrong[i].text,
				       strlen(wrong[i].text), &cfg, &errors), 0);
		CHECK_INT(store_settings_from_config(cfg, &set, &errors), -1);
		if (errors.data == NULL || strstr(errors.data, wrong[i].want) == NULL)
			CHECK(!"the expected error");
		config_free(&cfg);
	}
	buf_free(&errors);
}

static void test_thread_ids(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 16);
	struct store_error err;
	append(u, "INBOX", "Message-ID: <a@x>\r\nSubject: s\r\n\r\nx\r\n", 0);
	append(u, "INBOX", "Message-ID: <c@x>\r\nReferences: <a@x> <b@x>\r\n\r\nx\r\n", 0);
	append(u, "INBOX", "Message-ID: <z@x>\r\nSubject: other\r\n\r\nx\r\n", 0);
	/* a reply that arrives before its parent */
	append(u, "INBOX", "Message-ID: <r@x>\r\nIn-Reply-To: <p@x>\r\n\r\nx\r\n", 0);
	append(u, "INBOX", "Message-ID: <p@x>\r\n\r\nx\r\n", 0);
	char tid[5][32];
	struct store_fetch *f;
	const struct store_msg *m;
	store_fetch_begin(u, "INBOX", NULL, 0, STORE_FETCH_OBJECTID, &f, &err);
	for (int i = 0; i < 5 && store_fetch_next(f, &m, &err) == 1; i++)
		memcpy(tid[i], m->threadid, 32);
	store_fetch_end(&f);
	CHECK_STR(tid[0], tid[1]);
	CHECK(strcmp(tid[0], tid[2]) != 0);
	CHECK_STR(tid[3], tid[4]);
	CHECK(strcmp(tid[3], tid[0]) != 0);
	store_user_unref(&u);
	teardown(&store);
}

/* ---- one body, several copies ------------------------------------ */

/* Delivers body (already finished) to user with a Delivered-To prefix;
 * returns the UID or 0, the error in *err. */
static uint32_t deliver(struct store_body *body, struct store_user *u,
			const char *to, struct store_error *err)
{
	char prefix[200];
	snprintf(prefix, sizeof(prefix),
		 "Return-Path: <s@x.test>\r\nDelivered-To: %s\r\n", to);
	uint32_t uid = 0;
	if (store_body_deliver(body, u, "INBOX", prefix, strlen(prefix), NULL,
			       &uid, NULL, err) < 0)
		return 0;
	return uid;
}

static void check_copy(struct store_user *u, uint32_t uid, const char *to,
		       const char *body, size_t body_len)
{
	struct buf want;
	buf_init(&want, 0);
	buf_printf(&want, "Return-Path: <s@x.test>\r\nDelivered-To: %s\r\n", to);
	buf_append(&want, body, body_len);
	struct store_blob b;
	struct store_error err;
	CHECK_INT(store_blob_open(u, "INBOX", uid, &b, &err), 0);
	CHECK_MEM(b.data, b.len, want.data, want.len);
	/* RFC822.SIZE and the part map describe exactly these bytes */
	struct store_uid_range r = {uid, uid};
	struct store_fetch *f;
	const struct store_msg *m;
	CHECK_INT(store_fetch_begin(u, "INBOX", &r, 1, STORE_FETCH_SIZE |
				    STORE_FETCH_PARTS, &f, &err), 0);
	CHECK_INT(store_fetch_next(f, &m, &err), 1);
	CHECK_INT(m->size, want.len);
	struct mail_section_spec spec = {.kind = MAIL_SECTION_HEADER};
	struct mail_section sec;
	CHECK_INT(mail_section_get(b.data, b.len, m->parts, m->parts_len, &spec,
				   &sec), 0);
	const char *hdr_end = memmem(want.data, want.len, "\r\n\r\n", 4);
	CHECK(hdr_end != NULL);
	if (hdr_end != NULL)
		CHECK_MEM(sec.ptr, sec.len, want.data,
			  (size_t)(hdr_end + 4 - want.data));
	mail_section_free(&sec);
	spec.kind = MAIL_SECTION_TEXT;
	CHECK_INT(mail_section_get(b.data, b.len, m->parts, m->parts_len, &spec,
				   &sec), 0);
	if (hdr_end != NULL)
		CHECK_MEM(sec.ptr, sec.len, hdr_end + 4,
			  (size_t)(want.data + want.len - hdr_end - 4));
	mail_section_free(&sec);
	store_fetch_end(&f);
	store_blob_close(&b);
	buf_free(&want);
}

static uint32_t search_count(struct store_user *u, const char *needle)
{
	uint32_t *uids;
	size_t n = 0;
	struct store_error err;
	if (store_search_text(u, "INBOX", STORE_TEXT_ALL, needle, NULL, 0,
			      &uids, &n, &err) < 0)
		return 999;
	free(uids);
	return (uint32_t)n;
}

/* One body for three users, small (in the index) and big (one file
 * linked three times): each copy reads as its own prefix and the body,
 * quota charges each copy in full, one over quota fails alone, an
 * expunged copy leaves the others intact, and the space goes with the
 * last copy. */
static void shared_body_round(size_t size)
{
	struct store *store = setup();
	struct store_user *u[3] = {user_open(store, 31), user_open(store, 32),
				   user_open(store, 33)};
	const char *to[3] = {"a@x.test", "b@x.test", "c@x.test"};
	struct store_error err;
	char *msg = big_message("shared", size);
	/* with LF line ends: stored as CRLF */
	struct store_body *body;
	CHECK_INT(store_body_create(store, &body, &err), 0);
	CHECK_INT(store_body_write(body, msg, 10, &err), 0);
	CHECK_INT(store_body_write(body, msg + 10, size - 10, &err), 0);
	CHECK_INT(store_body_size(body), size);
	CHECK_INT(store_body_finish(body, &err), 0);
	/* b has no room for it: that copy fails, the others do not */
	test_limits_user = 32;
	test_limits.quota_bytes = size;
	uint32_t uid[3];
	uid[0] = deliver(body, u[0], to[0], &err);
	uid[1] = deliver(body, u[1], to[1], &err);
	CHECK_INT(uid[1], 0);
	CHECK_INT(err.kind, STORE_ERR_QUOTA);
	uid[2] = deliver(body, u[2], to[2], &err);
	test_limits.quota_bytes = 0;
	uid[1] = deliver(body, u[1], to[1], &err);
	CHECK_INT(uid[0], 1);
	CHECK_INT(uid[1], 1);
	CHECK_INT(uid[2], 1);
	store_body_unref(&body);
	CHECK(body == NULL);
	CHECK_INT(spill_files(), 0);
	for (int i = 0; i < 3; i++) {
		check_copy(u[i], uid[i], to[i], msg, size);
		struct store_usage usage;
		store_user_usage(u[i], &usage, &err);
		CHECK_INT(usage.bytes, size + 41 + strlen(to[i]));
		/* each copy's own trace fields are searchable, only there */
		CHECK_INT(search_count(u[i], to[i]), 1);
		CHECK_INT(search_count(u[i], to[(i + 1) % 3]), 0);
	}
	bool file = size > SQ_INLINE_MAX;
	char *blobs = user_path(31, "blobs");
	if (pg_conninfo != NULL) {
		/* one file in blob_dir, named by its SHA-256, for every copy
		 * (none left in its spool) */
		char *spool = xasprintf("%s/tmp", blob_dir);
		CHECK_INT(count_files(blob_dir) - count_files(spool), 1);
		free(spool);
	} else {
		CHECK_INT(count_files(blobs), file ? 1 : 0);
	}
	if (file && pg_conninfo == NULL) {
		/* one inode for the three copies */
		char *d = user_path(31, "blobs");
		DIR *dir = opendir(d);
		struct dirent *e;
		nlink_t links = 0;
		while (dir != NULL && (e = readdir(dir)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			char *sub = xasprintf("%s/%s", d, e->d_name);
			DIR *sd = opendir(sub);
			struct dirent *f;
			while (sd != NULL && (f = readdir(sd)) != NULL) {
				if (f->d_name[0] == '.')
					continue;
				char *p = xasprintf("%s/%s", sub, f->d_name);
				struct stat st;
				if (stat(p, &st) == 0)
					links = st.st_nlink;
				free(p);
			}
			if (sd != NULL)
				closedir(sd);
			free(sub);
		}
		if (dir != NULL)
			closedir(dir);
		free(d);
		CHECK_INT(links, 3);
	}
	/* COPY in one account shares that account's body, and so does a
	 * MOVE of the copy */
	CHECK_INT(store_copy(u[0], "INBOX", NULL, 0, "Archive", false, NULL,
			     NULL, NULL, NULL, &err), 0);
	CHECK_INT(stored_bodies(31), 1);
	CHECK_INT(store_copy(u[0], "Archive", NULL, 0, "Drafts", true, NULL,
			     NULL, NULL, NULL, &err), 0);
	CHECK_INT(stored_bodies(31), 1);
	struct store_mailbox_info moved = status(u[0], "Drafts");
	CHECK_INT(moved.messages, 1);
	store_mailbox_info_free(&moved);
	/* a's copies go; b and c keep theirs byte for byte */
	CHECK_INT(store_expunge(u[0], "INBOX", NULL, 0, true, NULL, NULL, &err), 0);
	CHECK_INT(stored_bodies(31), 1);
	CHECK_INT(store_expunge(u[0], "Drafts", NULL, 0, true, NULL, NULL, &err), 0);
	CHECK_INT(stored_bodies(31), 0);
	for (int i = 1; i < 3; i++)
		check_copy(u[i], uid[i], to[i], msg, size);
	struct store_usage usage;
	store_user_usage(u[0], &usage, &err);
	CHECK_INT(usage.bytes, 0);
	for (int i = 1; i < 3; i++)
		store_expunge(u[i], "INBOX", NULL, 0, true, NULL, NULL, &err);
	for (int i = 1; i < 3; i++)
		CHECK_INT(stored_bodies(31 + i), 0);
	free(blobs);
	free(msg);
	for (int i = 0; i < 3; i++)
		store_user_unref(&u[i]);
	teardown(&store);
}

/* A big body's steps to disk failing (issue 11: ENOSPC and EIO at each
 * write, fsync and link of a delivery): the spill file's fsync fails the
 * whole body; a link into one user's blobs/ or its directory's fsync
 * fails that copy only, and leaves no file behind; a full disk says so
 * (LMTP 452 4.3.1), an I/O error not (451); the next try works. */
static void test_body_faults(void)
{
	struct store *store = setup_fsync(true);
	struct store_user *a = user_open(store, 71), *b = user_open(store, 72);
	struct store_error err;
	size_t size = SQ_INLINE_MAX + 5000;
	char *msg = big_message("faults", size);
	static const int steps[] = {STORE_TEST_FAIL_SPILL_SYNC,
				    STORE_TEST_FAIL_LINK,
				    STORE_TEST_FAIL_DIRSYNC};
	static const int errnos[] = {ENOSPC, EIO};
	uint32_t want_a = 0, want_b = 0;
	char *blobs_a = user_path(71, "blobs");
	for (size_t si = 0; si < 3; si++) {
		for (size_t ei = 0; ei < 2; ei++) {
			struct store_body *body;
			CHECK_INT(store_body_create(store, &body, &err), 0);
			CHECK_INT(store_body_write(body, msg, size, &err), 0);
			atomic_store(&store->test_fail_body_step, steps[si]);
			atomic_store(&store->test_fail_body_errno, errnos[ei]);
			int files = count_files(blobs_a);
			if (steps[si] == STORE_TEST_FAIL_SPILL_SYNC) {
				/* nothing is stored from a body not on disk */
				CHECK_INT(store_body_finish(body, &err), -1);
				CHECK_INT(err.kind, STORE_ERR_TEMP);
				CHECK_INT(err.full, errnos[ei] == ENOSPC);
				CHECK_INT(deliver(body, a, "a@x.test", &err), 0);
				store_body_unref(&body);
				CHECK_INT(store_body_create(store, &body, &err), 0);
				CHECK_INT(store_body_write(body, msg, size, &err), 0);
			} else {
				CHECK_INT(store_body_finish(body, &err), 0);
				/* a's copy fails, b's does not */
				CHECK_INT(deliver(body, a, "a@x.test", &err), 0);
				CHECK_INT(err.kind, STORE_ERR_TEMP);
				CHECK_INT(err.full, errnos[ei] == ENOSPC);
				CHECK_INT(count_files(blobs_a), files);
				CHECK_INT(deliver(body, b, "b@x.test", &err),
					  ++want_b);
			}
			CHECK_INT(atomic_load(&store->test_fail_body_errno), 0);
			/* the next try works */
			CHECK_INT(store_body_finish(body, &err), 0);
			CHECK_INT(deliver(body, a, "a@x.test", &err), ++want_a);
			store_body_unref(&body);
		}
	}
	for (uint32_t uid = 1; uid <= want_a; uid++)
		check_copy(a, uid, "a@x.test", msg, size);
	for (uint32_t uid = 1; uid <= want_b; uid++)
		check_copy(b, uid, "b@x.test", msg, size);
	struct store_mailbox_info info = status(a, "INBOX");
	CHECK_INT(info.messages, want_a);
	store_mailbox_info_free(&info);
	CHECK_INT(spill_files(), 0);
	struct lines l = {0};
	CHECK_INT(store_check(store, 71, false, report_cb, &l, &err), 0);
	CHECK_INT(l.n, 0);
	free(blobs_a);
	free(msg);
	store_user_unref(&a);
	store_user_unref(&b);
	teardown(&store);
}

/* The message the n-th new account of test_crash_new_accounts gets:
 * every third one too big for the index (a file in blobs/, a directory
 * made for it). */
static size_t new_account_msg(unsigned n, char *out, size_t cap)
{
	size_t body = n % 3 == 0 ? SQ_INLINE_MAX + 5000 : 3000;
	int len = snprintf(out, cap, "Subject: first %u\r\n\r\n", n);
	if (len < 0 || (size_t)len + body + 2 > cap)
		abort();
	memset(out + len, 'a' + n % 26, body);
	memcpy(out + len + body, "\r\n", 2);
	return (size_t)len + body + 2;
}

/* kill -9 during new accounts' first deliveries (issue 11): a process
 * makes account after account and delivers each its first message (the
 * index made and linked into place, a shared body with a prefix) and is
 * killed at a random moment. After a restart every account whose
 * delivery was acknowledged has its message once, byte for byte; the
 * account in flight has it at most once; every index is whole with
 * nothing left beside it, check finds nothing, no spill file stays. */
static void test_crash_new_accounts(void)
{
	struct store *store = setup_fsync(true);
	store_close(&store);
	static char msg[SQ_INLINE_MAX + 5100];
	struct store_settings set = {.data_dir = data_dir, .fsync = true,
				     .max_message_size = 1024 * 1024};
	struct store_error err;
	/* accounts first..last of each round; the one after last was in
	 * flight when the round's process died */
	unsigned first = 1, acked_total = 0;
	for (int round = 0; round < 4; round++) {
		int pfd[2];
		if (pipe(pfd) < 0)
			abort();
		pid_t pid = fork();
		if (pid == 0) {
			close(pfd[0]);
			struct store *s;
			if (store_open(&set, &s, &err) < 0)
				_exit(1);
			for (unsigned n = first;; n++) {
				size_t len = new_account_msg(n, msg, sizeof(msg));
				struct store_user *u;
				struct store_body *body;
				if (store_user_open(s, 600 + n, &u, &err) < 0 ||
				    store_body_create(s, &body, &err) < 0)
					_exit(1);
				char to[40];
				snprintf(to, sizeof(to), "new%u@x.test", n);
				if (store_body_write(body, msg, len, &err) == 0 &&
				    store_body_finish(body, &err) == 0 &&
				    deliver(body, u, to, &err) == 1 &&
				    write(pfd[1], &n, sizeof(n)) != sizeof(n))
					_exit(1);
				store_body_unref(&body);
				store_user_unref(&u);
			}
		}
		close(pfd[1]);
		unsigned n, last = first - 1;
		if (read(pfd[0], &n, sizeof(n)) == sizeof(n))
			last = n;
		usleep(50000 + (unsigned)(rand() % 300000));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		while (read(pfd[0], &n, sizeof(n)) == sizeof(n))
			if (n > last)
				last = n;
		close(pfd[0]);
		CHECK(last >= first);
		acked_total += last - first + 1;

		CHECK_INT(store_open(&set, &store, &err), 0);
		store_start_background(store);
		for (unsigned k = first; k <= last + 1; k++) {
			struct store_user *u = user_open(store, 600 + k);
			struct store_mailbox_info info = status(u, "INBOX");
			if (k <= last) {
				CHECK_INT(info.messages, 1);
				char to[40];
				snprintf(to, sizeof(to), "new%u@x.test", k);
				size_t len = new_account_msg(k, msg, sizeof(msg));
				check_copy(u, 1, to, msg, len);
			} else {
				CHECK(info.messages <= 1);
			}
			store_mailbox_info_free(&info);
			store_user_unref(&u);
			check_new_index(600 + k);
			struct lines l = {0};
			CHECK_INT(store_check(store, 600 + k, false, report_cb,
					      &l, &err), 0);
			CHECK_INT(l.n, 0);
		}
		for (int i = 0; i < 250 && spill_files() > 0; i++)
			usleep(20000);
		CHECK_INT(spill_files(), 0);
		store_close(&store);
		first = last + 2;
	}
	printf("new accounts: %u first deliveries acknowledged over 4 kills\n",
	       acked_total);
	CHECK_INT(store_open(&set, &store, &err), 0);
	teardown(&store);
}

static void test_shared_body(void)
{
	shared_body_round(5000);
	shared_body_round(SQ_INLINE_MAX + 5000);
}

/* A message file outlives every reader whose snapshot may name it: an
 * expunge that commits between a reader's lookup and its open() leaves
 * the file until that reader is through (issue 9, FETCH racing EXPUNGE). */
static void test_deferred_unlink(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 34);
	struct store_error err;
	char *msg = big_message("race", SQ_INLINE_MAX + 100);
	append(u, "INBOX", msg, 0);
	char *blobs = user_path(34, "blobs");
	CHECK_INT(count_files(blobs), 1);
	uint64_t ticket = sq_read_enter(SQU(u));
	CHECK_INT(store_expunge(u, "INBOX", NULL, 0, true, NULL, NULL, &err), 0);
	CHECK_INT(count_files(blobs), 1);
	/* a reader that comes after the commit finds no message */
	struct store_blob b;
	CHECK_INT(store_blob_open(u, "INBOX", 1, &b, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	CHECK_INT(count_files(blobs), 1);
	sq_read_leave(SQU(u), ticket);
	CHECK_INT(count_files(blobs), 0);
	/* with no reader inside, the file goes at once */
	append(u, "INBOX", msg, 0);
	CHECK_INT(store_expunge(u, "INBOX", NULL, 0, true, NULL, NULL, &err), 0);
	CHECK_INT(count_files(blobs), 0);
	free(blobs);
	free(msg);
	store_user_unref(&u);
	teardown(&store);
}

/* A damaged body is never served as if intact, and check names it by
 * mailbox and UID. */
static void test_damaged_body(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 35);
	struct store_error err;
	append(u, "INBOX", "Subject: ok\r\n\r\nfine\r\n", 0);
	append(u, "INBOX", "Subject: bad\r\n\r\nflipped\r\n", 0);
	char *big = big_message("bigbad", SQ_INLINE_MAX + 10);
	append(u, "INBOX", big, 0);
	free(big);
	big = big_message("bigcut", SQ_INLINE_MAX + 10);
	append(u, "INBOX", big, 0);
	free(big);
	append(u, "INBOX", "Subject: gone\r\n\r\nits record is lost\r\n", 0);
	char *idx = user_path(35, "index.db");
	sqlite3 *db;
	CHECK_INT(sqlite3_open(idx, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	CHECK_INT(sqlite3_exec(db, "UPDATE body SET data = CAST(replace("
			       "CAST(data AS TEXT), 'flipped', 'flopped') AS BLOB)",
			       NULL, NULL, NULL), SQLITE_OK);
	/* and a body record no message names */
	CHECK_INT(sqlite3_exec(db, "INSERT INTO body VALUES (9999, x'414243')",
			       NULL, NULL, NULL), SQLITE_OK);
	/* and a message whose record is gone (issue 11: a row naming no
	 * record) */
	CHECK_INT(sqlite3_exec(db, "DELETE FROM body WHERE CAST(data AS TEXT)"
			       " LIKE '%its record is lost%'", NULL, NULL, NULL),
		  SQLITE_OK);
	CHECK_INT(sqlite3_changes(db), 1);
	sqlite3_close(db);
	free(idx);
	/* and one byte of the file */
	char *blobs = user_path(35, "blobs");
	char *cmd = xasprintf("f=$(grep -rl 'Subject: bigbad' '%s');"
			      " printf y | dd of=\"$f\""
			      " bs=1 seek=100 conv=notrunc 2>/dev/null", blobs);
	CHECK_INT(system(cmd), 0);
	free(cmd);
	/* and a file cut short (a crash of a copy tool, a full disk) */
	cmd = xasprintf("f=$(grep -rl 'Subject: bigcut' '%s');"
			" truncate -s 70000 \"$f\"", blobs);
	CHECK_INT(system(cmd), 0);
	free(cmd);
	free(blobs);
	struct store_blob b;
	CHECK_INT(store_blob_open(u, "INBOX", 1, &b, &err), 0);
	store_blob_close(&b);
	for (uint32_t uid = 2; uid <= 5; uid++) {
		CHECK_INT(store_blob_open(u, "INBOX", uid, &b, &err), -1);
		CHECK_INT(err.kind, STORE_ERR_TEMP);
	}
	struct lines l = {0};
	CHECK_INT(store_check(store, 35, true, report_cb, &l, &err), -1);
	CHECK_INT(l.n, 5);
	const char *gone = strstr(l.all, "mailbox INBOX UID 5: body");
	CHECK(gone != NULL && strstr(gone, "is missing: removed") != NULL);
	CHECK(strstr(l.last, "body record 9999 (3 bytes) without a message:"
			     " removed") != NULL);
	CHECK_INT(index_int(35, "SELECT count(*) FROM body WHERE id = 9999"), 0);
	/* the message without its record is gone; the rest stay */
	CHECK_INT(store_blob_open(u, "INBOX", 5, &b, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	/* the damaged ones stay, named again, and are still not served */
	l.n = 0;
	CHECK_INT(store_check(store, 35, true, report_cb, &l, &err), -1);
	CHECK_INT(l.n, 3);
	CHECK(strstr(l.last, "mailbox INBOX UID 4") != NULL);
	CHECK(strstr(l.last, "damaged") != NULL);
	CHECK_INT(store_blob_open(u, "INBOX", 2, &b, &err), -1);
	CHECK_INT(store_blob_open(u, "INBOX", 4, &b, &err), -1);
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.messages, 4); /* kept for a restore */
	store_mailbox_info_free(&info);
	store_user_unref(&u);
	teardown(&store);
}

/* Views of one mailbox share one UID list: opening a second view or
 * syncing to a state another view already reached makes no list; a view
 * that may not report an expunge yet keeps it as a ghost of its own. */
static void test_view_sharing(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 36);
	struct store_error err;
	for (int i = 0; i < 5; i++)
		append(u, "INBOX", "Subject: v\r\n\r\nx\r\n", 0);
	uint64_t made = atomic_load(&store_uidlists_made);
	struct store_view *a, *b;
	CHECK_INT(store_view_open(u, "INBOX", 0, &a, &err), 0);
	CHECK_INT(store_view_open(u, "INBOX", 0, &b, &err), 0);
	CHECK_INT(atomic_load(&store_uidlists_made) - made, 1);
	/* a new message: the first view to sync builds, the second shares */
	append(u, "INBOX", "Subject: v\r\n\r\nx\r\n", 0);
	CHECK_INT(store_view_sync(a, true, NULL, NULL, &err), 0);
	CHECK_INT(store_view_sync(b, true, NULL, NULL, &err), 0);
	CHECK_INT(atomic_load(&store_uidlists_made) - made, 2);
	CHECK_INT(store_view_count(a), 6);
	CHECK_INT(store_view_count(b), 6);
	/* an expunge: b may not report it yet and keeps a ghost */
	struct store_uid_range r2 = {2, 2};
	CHECK_INT(store_expunge(u, "INBOX", &r2, 1, true, NULL, NULL, &err), 0);
	append(u, "INBOX", "Subject: v\r\n\r\nx\r\n", 0);
	struct events ea = {0}, eb = {0};
	CHECK_INT(store_view_sync(a, true, &view_cb, &ea, &err), 0);
	CHECK_INT(store_view_sync(b, false, &view_cb, &eb, &err), 0);
	CHECK_INT(atomic_load(&store_uidlists_made) - made, 3);
	CHECK_INT(store_view_count(a), 6);
	CHECK_INT(store_view_count(b), 7);
	CHECK_INT(store_view_uid(b, 2), 2);
	CHECK_INT(store_view_seq(b, 3), 3);
	CHECK_INT(store_view_uid(b, 7), 7);
	CHECK_INT(store_view_uid(a, 2), 3);
	CHECK_INT(store_view_seq(a, 7), 6);
	CHECK_INT(store_view_seq(a, 2), 0);
	CHECK_INT(store_view_seq_ceil(a, 2), 2);
	/* now b may: EXPUNGE 2, then nothing is private any more */
	CHECK_INT(store_view_sync(b, true, &view_cb, &eb, &err), 0);
	CHECK(strstr(eb.log, "X2/2 ") != NULL);
	CHECK_INT(store_view_count(b), 6);
	CHECK_INT(store_view_uid(b, 2), 3);
	CHECK_INT(atomic_load(&store_uidlists_made) - made, 3);
	store_view_close(&a);
	store_view_close(&b);
	/* the last state's list stays, idle: a new view of that state
	 * reads no UIDs; a newer state makes one, the idle one goes */
	CHECK_INT(store_view_open(u, "INBOX", 0, &a, &err), 0);
	CHECK_INT(atomic_load(&store_uidlists_made) - made, 3);
	CHECK_INT(store_view_count(a), 6);
	CHECK_INT(store_view_uid(a, 2), 3);
	CHECK_INT(store_view_seq(a, 7), 6);
	store_view_close(&a);
	append(u, "INBOX", "Subject: v\r\n\r\nx\r\n", 0);
	CHECK_INT(store_view_open(u, "INBOX", 0, &a, &err), 0);
	CHECK_INT(atomic_load(&store_uidlists_made) - made, 4);
	CHECK_INT(store_view_count(a), 7);
	CHECK_INT(store_view_uid(a, 7), 8);
	store_view_close(&a);
	/* built on the idle list of an older state: its UIDs without the
	 * ones expunged since, then the new ones */
	struct store_uid_range r3 = {3, 4};
	CHECK_INT(store_expunge(u, "INBOX", &r3, 1, true, NULL, NULL, &err), 0);
	append(u, "INBOX", "Subject: v\r\n\r\nx\r\n", 0);
	append(u, "INBOX", "Subject: v\r\n\r\nx\r\n", 0);
	CHECK_INT(store_view_open(u, "INBOX", 0, &a, &err), 0);
	CHECK_INT(store_view_count(a), 7);
	static const uint32_t want_uids[] = {1, 5, 6, 7, 8, 9, 10};
	for (uint32_t s = 1; s <= 7; s++)
		CHECK_INT(store_view_uid(a, s), want_uids[s - 1]);
	CHECK_INT(store_view_seq(a, 3), 0);
	CHECK_INT(store_view_info(a)->messages, 7);
	store_view_close(&a);
	store_user_unref(&u);
	teardown(&store);
}

/* FETCH CHANGEDSINCE: only the messages changed after the modseq, in
 * UID order, within the ranges. */
static void test_fetch_since(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 37);
	struct store_error err;
	for (int i = 0; i < 5; i++)
		append(u, "INBOX", "Subject: c\r\n\r\nx\r\n", 0);
	struct store_mailbox_info info = status(u, "INBOX");
	uint64_t before = info.highestmodseq;
	store_mailbox_info_free(&info);
	struct store_flag_change ch = {.mode = STORE_FLAGS_ADD,
				       .flags = STORE_FLAG_FLAGGED};
	struct store_uid_range r4 = {4, 4}, r2 = {2, 2};
	store_flags_update(u, "INBOX", &r4, 1, &ch, NULL, NULL, NULL, NULL, &err);
	store_flags_update(u, "INBOX", &r2, 1, &ch, NULL, NULL, NULL, NULL, &err);
	struct store_fetch *f;
	const struct store_msg *m;
	char got[64] = "";
	CHECK_INT(store_fetch_begin_since(u, "INBOX", NULL, 0, STORE_FETCH_FLAGS,
					  before, &f, &err), 0);
	while (store_fetch_next(f, &m, &err) == 1)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%u ",
			 m->uid);
	store_fetch_end(&f);
	CHECK_STR(got, "2 4 ");
	struct store_uid_range r35 = {3, 5};
	got[0] = '\0';
	CHECK_INT(store_fetch_begin_since(u, "INBOX", &r35, 1, STORE_FETCH_FLAGS,
					  before, &f, &err), 0);
	while (store_fetch_next(f, &m, &err) == 1)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%u ",
			 m->uid);
	store_fetch_end(&f);
	CHECK_STR(got, "4 ");
	store_user_unref(&u);
	teardown(&store);
}

/* [UNSEEN n] follows what other sessions do: STORE, APPEND, EXPUNGE,
 * MOVE. */
static uint32_t unseen_of(struct store_user *u)
{
	struct store_view *v;
	struct store_error err;
	if (store_view_open(u, "INBOX", STORE_VIEW_READONLY, &v, &err) < 0)
		return 999;
	uint32_t seq = store_view_first_unseen(v, &err);
	store_view_close(&v);
	return seq;
}

static void test_first_unseen(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 38);
	struct store_error err;
	CHECK_INT(unseen_of(u), 0);
	for (int i = 0; i < 4; i++)
		append(u, "INBOX", "Subject: u\r\n\r\nx\r\n", STORE_FLAG_SEEN);
	CHECK_INT(unseen_of(u), 0);
	append(u, "INBOX", "Subject: u\r\n\r\nx\r\n", 0);
	CHECK_INT(unseen_of(u), 5);
	struct store_flag_change unseen = {.mode = STORE_FLAGS_REMOVE,
					   .flags = STORE_FLAG_SEEN};
	struct store_uid_range r3 = {3, 3}, r12 = {1, 2};
	store_flags_update(u, "INBOX", &r3, 1, &unseen, NULL, NULL, NULL, NULL,
			   &err);
	CHECK_INT(unseen_of(u), 3);
	CHECK_INT(store_expunge(u, "INBOX", &r12, 1, true, NULL, NULL, &err), 0);
	CHECK_INT(unseen_of(u), 1);
	CHECK_INT(store_copy(u, "INBOX", &r3, 1, "Archive", true, NULL, NULL,
			     NULL, NULL, &err), 0);
	CHECK_INT(unseen_of(u), 2);
	struct store_flag_change seen = {.mode = STORE_FLAGS_ADD,
					 .flags = STORE_FLAG_SEEN};
	store_flags_update(u, "INBOX", NULL, 0, &seen, NULL, NULL, NULL, NULL,
			   &err);
	CHECK_INT(unseen_of(u), 0);
	store_user_unref(&u);
	teardown(&store);
}

/* The idle trim gives back readers, statements and cache of accounts
 * nobody uses, and everything works on after it, also when it runs
 * while the account is busy. */
struct trim_worker {
	struct store_user *u;
	int done;
};

static void *trim_appender(void *arg)
{
	struct trim_worker *w = arg;
	for (int i = 0; i < 200; i++) {
		append(w->u, "INBOX", "Subject: t\r\n\r\nx\r\n", 0);
		struct store_fetch *f;
		const struct store_msg *m;
		struct store_error err;
		if (store_fetch_begin(w->u, "INBOX", NULL, 0, STORE_FETCH_ENVELOPE,
				      &f, &err) == 0) {
			while (store_fetch_next(f, &m, &err) == 1)
				;
			store_fetch_end(&f);
		}
	}
	atomic_store((_Atomic int *)&w->done, 1);
	return NULL;
}

static void test_idle_trim(void)
{
	struct store *store = setup();
	sqlite3_int64 mem0 = sqlite3_memory_used();
	struct store_user *u = user_open(store, 39);
	struct store_error err;
	append(u, "INBOX", "Subject: t\r\n\r\nx\r\n", 0);
	struct store_mailbox_info info = status(u, "INBOX");
	store_mailbox_info_free(&info);
	CHECK(sqlite3_memory_used() - mem0 > 64 * 1024);
	CHECK_INT(sq_idle_trim(store, 0), 1);
	/* An idle account (its sessions in IDLE) holds no SQLite
	 * connection: no pooled reader, no writer (each is its parsed
	 * schema, ~100 KB, and its pages); SQLite's memory is back near
	 * where it was before the account was opened, which also says no
	 * connection keeps a page-cache slab. */
	CHECK(SQU(u)->readers == NULL);
	CHECK(SQU(u)->writer == NULL);
	CHECK(sqlite3_memory_used() - mem0 < 16 * 1024);
	/* nothing more until it is used again */
	CHECK_INT(sq_idle_trim(store, 0), 0);
	/* A reader out during a trim (a FETCH still streaming, a SELECT on
	 * another worker) goes back to the pool after it: the next trim
	 * takes it (it stayed for good when the first trim counted the
	 * account as done: most accounts under TLS logins). */
	struct store_fetch *f;
	const struct store_msg *m;
	CHECK_INT(store_fetch_begin(u, "INBOX", NULL, 0, STORE_FETCH_ENVELOPE,
				    &f, &err), 0);
	CHECK_INT(store_fetch_next(f, &m, &err), 1);
	sq_idle_trim(store, 0);
	CHECK(SQU(u)->writer == NULL);
	CHECK_INT(store_fetch_next(f, &m, &err), 0);
	store_fetch_end(&f);
	CHECK(SQU(u)->readers != NULL);
	CHECK_INT(sq_idle_trim(store, 0), 1);
	CHECK(SQU(u)->readers == NULL);
	CHECK(sqlite3_memory_used() - mem0 < 16 * 1024);
	CHECK_INT(sq_idle_trim(store, 0), 0);
	CHECK_INT(append(u, "INBOX", "Subject: t\r\n\r\nx\r\n", 0), 2);
	info = status(u, "INBOX");
	CHECK_INT(info.messages, 2);
	store_mailbox_info_free(&info);
	/* a busy account is not trimmed while busy, and a trim between its
	 * calls breaks nothing */
	struct trim_worker w = {u, 0};
	pthread_t t;
	pthread_create(&t, NULL, trim_appender, &w);
	while (!atomic_load((_Atomic int *)&w.done))
		sq_idle_trim(store, 0);
	pthread_join(t, NULL);
	info = status(u, "INBOX");
	CHECK_INT(info.messages, 202);
	store_mailbox_info_free(&info);
	CHECK_INT(sq_idle_trim(store, 3600LL * 1000000000), 0);
	(void)err;
	store_user_unref(&u);
	teardown(&store);
}

/* The indexer thread (sq-index.c) has indexed every text row of account
 * id and is out of its group commit: it commits nothing more until the
 * next message. A condition waited for, at most two minutes. */
static bool wait_indexed(struct store_user *u, int64_t id)
{
	const char *caught_up = "SELECT fts_upto >= (SELECT max(id) FROM text)"
				" FROM account";
	for (int i = 0; i < 12000; i++) {
		if (index_int(id, caught_up) == 1) {
			pthread_mutex_lock(&SQU(u)->mu);
			bool idle = !SQU(u)->leader && SQU(u)->queue == NULL;
			pthread_mutex_unlock(&SQU(u)->mu);
			if (idle)
				return true;
		}
		usleep(10 * 1000);
	}
	return false;
}

/* Memory freed after every account was trimmed (sessions that logged
 * out later, TLS handshakes, a big FETCH's buffers) goes back to the
 * system too: the idle thread trims the heap when 4 MiB more are free
 * in malloc's arenas than after its last trim, not only when an account
 * gave something back (a server busy an hour ago kept its peak). Not
 * under ASan, whose malloc has no arenas (mallinfo2 says 0). */
static void test_idle_heap_trim(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 47);
	append(u, "INBOX", "Subject: t\r\n\r\nx\r\n", 0);
	/* the indexer's batch (~0.65 s after the append) opens the writer
	 * again: on a slow machine the trims below found it to trim */
	CHECK(wait_indexed(u, 47));
	sq_idle_trim(store, 0);
	CHECK_INT(sq_idle_trim(store, 0), 0);
#if !defined(__SANITIZE_ADDRESS__)
	/* 16 MiB of small blocks, the last kept so that the others' free
	 * space is not the heap's top (which free() gives back itself) */
	enum { N = 16384 };
	char **p = xcalloc(N, sizeof(*p));
	for (int i = 0; i < N; i++) {
		p[i] = xmalloc(1000);
		memset(p[i], 1, 1000);
	}
	uint64_t trims = atomic_load(&sq_heap_trims);
	CHECK_INT(sq_idle_trim(store, 0), 0);
	CHECK(atomic_load(&sq_heap_trims) == trims);   /* nothing freed */
	for (int i = 0; i < N - 1; i++)
		free(p[i]);
	CHECK_INT(sq_idle_trim(store, 0), 0);   /* no account to trim ... */
	CHECK(atomic_load(&sq_heap_trims) == trims + 1);   /* ... the heap */
	CHECK_INT(sq_idle_trim(store, 0), 0);
	CHECK(atomic_load(&sq_heap_trims) == trims + 1);   /* once */
	free(p[N - 1]);
	free(p);
	/* glibc's dynamic mmap threshold is off (sq-idle.c malloc_policy):
	 * after a 24 MiB block is freed, a 17 MiB one is still mmapped (and
	 * unmapped when freed), not carved from an arena that keeps it. With
	 * the dynamic threshold glibc would raise it to 24 MiB at the free
	 * and grow the heap instead. (Both sizes are above the 16 MiB freed
	 * above: a smaller block can be served from a free chunk that other
	 * cases' allocations keep off the heap's top, mmap threshold or not,
	 * which made this check fail after crash_new_accounts.) */
	char *big = xmalloc(24 << 20);
	memset(big, 1, 24 << 20);
	free(big);
	size_t hblks = mallinfo2().hblks;
	char *mid = xmalloc(17 << 20);
	CHECK(mallinfo2().hblks == hblks + 1);
	free(mid);
#endif
	store_user_unref(&u);
	teardown(&store);
}

/* An IDLE keepalive opens the index only when someone committed since
 * the view's last sync (store_view_maybe_changed): the idle trim's
 * close and a read of the closed index leave the stamp where it was,
 * another process's commit moves it. (With keepalives read every time,
 * an account with a few sessions in IDLE reopened its index every few
 * seconds and was never trimmed for long.) */
static void test_view_change_stamp(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 45);
	struct store_error err;
	append(u, "INBOX", "Subject: a\r\n\r\nx\r\n", 0);
	/* This store's indexer commits an append's trigrams after its
	 * pause (sq-index.c, ~0.65 s), which moves the stamp as any commit
	 * must; landing between two checks below (a slow machine: 2 runs in
	 * 100 at load 27), it made one fail. After each append of this
	 * store, wait (a condition, bounded) until that commit is in and the
	 * indexer has left the writer. */
	if (pg_conninfo == NULL)
		CHECK(wait_indexed(u, 45));
	struct store_view *v;
	CHECK_INT(store_view_open(u, "INBOX", 0, &v, &err), 0);
	struct store_view_callbacks cb = {0};
	if (pg_conninfo != NULL) {   /* no stamp: every keepalive looks */
		CHECK(store_view_maybe_changed(v));
		goto out;
	}
	CHECK_INT(store_view_sync(v, true, &cb, NULL, &err), 0);
	CHECK(!store_view_maybe_changed(v));
	/* A checkpoint (the idle thread's, past 1,000 WAL frames) and the
	 * trim's close, which deletes the WAL, change no content: the stamp
	 * stays (it moved for both: every session's next keepalive read
	 * the index again, and the next trim closed it again). The pause
	 * puts the checkpoint's write in another tick of the file times. */
	CHECK(SQU(u)->writer != NULL);
	usleep(20000);
	CHECK_INT(sqlite3_wal_checkpoint_v2(SQU(u)->writer->db, NULL,
					    SQLITE_CHECKPOINT_PASSIVE, NULL,
					    NULL), SQLITE_OK);
	CHECK(!store_view_maybe_changed(v));
	CHECK_INT(append(u, "INBOX", "Subject: b\r\n\r\ny\r\n", 0), 2);
	CHECK(wait_indexed(u, 45));     /* as after the first append */
	CHECK(store_view_maybe_changed(v));
	CHECK_INT(store_view_sync(v, true, &cb, NULL, &err), 0);
	CHECK_INT(store_view_count(v), 2);
	CHECK(!store_view_maybe_changed(v));
	usleep(20000);
	sq_idle_trim(store, 0);
	CHECK(SQU(u)->readers == NULL && SQU(u)->writer == NULL);
	CHECK(!store_view_maybe_changed(v));
	sq_idle_trim(store, 0);
	CHECK(!store_view_maybe_changed(v));
	/* nothing committed since: a sync (one after every IMAP command)
	 * leaves the closed index closed */
	CHECK_INT(store_view_sync(v, true, &cb, NULL, &err), 0);
	CHECK(SQU(u)->readers == NULL && SQU(u)->writer == NULL);
	CHECK_INT(store_view_count(v), 2);
	/* a read of the closed index, and the trim closing it again */
	char **kw;
	size_t nkw;
	CHECK_INT(store_mailbox_keywords(u, "INBOX", &kw, &nkw, &err), 0);
	store_names_free(kw, nkw);
	CHECK(SQU(u)->readers != NULL);
	sq_idle_trim(store, 0);
	CHECK(SQU(u)->readers == NULL);
	CHECK(!store_view_maybe_changed(v));
	/* another process (a second store on the same files) appends */
	struct store_settings set = other_settings();
	struct store *other;
	CHECK_INT(store_open(&set, &other, &err), 0);
	struct store_user *u2 = user_open(other, 45);
	for (int i = 0; i < 5; i++) {
		char *m = big_message("other", 20000);
		CHECK(append(u2, "INBOX", m, 0) > 0);
		free(m);
	}
	store_user_unref(&u2);
	store_close(&other);
	CHECK(store_view_maybe_changed(v));
	CHECK_INT(store_view_sync(v, true, &cb, NULL, &err), 0);
	CHECK_INT(store_view_count(v), 7);
	CHECK(!store_view_maybe_changed(v));
	/* Another process's commit while this one holds the index open,
	 * then the trim's close (the last: it deletes the WAL, the other
	 * process's frames in it): the stamp carried across the close is
	 * the one with the other commit, not the view's. */
	CHECK_INT(store_mailbox_keywords(u, "INBOX", &kw, &nkw, &err), 0);
	store_names_free(kw, nkw);
	CHECK(SQU(u)->readers != NULL);
	CHECK_INT(store_open(&set, &other, &err), 0);
	u2 = user_open(other, 45);
	CHECK(append(u2, "INBOX", "Subject: c\r\n\r\nz\r\n", 0) > 0);
	store_user_unref(&u2);
	store_close(&other);
	CHECK(store_view_maybe_changed(v));
	sq_idle_trim(store, 0);
	CHECK(SQU(u)->readers == NULL && SQU(u)->writer == NULL);
	CHECK(store_view_maybe_changed(v));
	CHECK_INT(store_view_sync(v, true, &cb, NULL, &err), 0);
	CHECK_INT(store_view_count(v), 8);
	CHECK(!store_view_maybe_changed(v));
out:
	store_view_close(&v);
	store_user_unref(&u);
	teardown(&store);
}

/* sq-wal.c: with fsync, a group commit's WAL frames are written in one
 * go (gathered), and what another store (another process) then reads is
 * what was committed: a commit under the gather buffer, one past it, and
 * a small one after (the fault_injection test fails the gathered write). */
static void test_wal_gather(void)
{
	struct store *store = setup_fsync(true);
	struct store_user *u = user_open(store, 61);
	struct store_error err;
	if (pg_conninfo != NULL)
		goto out;
	static const char small[] = "Subject: small\r\n\r\nsmall\r\n";
	uint64_t before = atomic_load(&sq_wal_gathered_writes);
	CHECK_INT(append(u, "INBOX", small, 0), 1);
	CHECK(atomic_load(&sq_wal_gathered_writes) > before);
	/* kept in the index (under SQ_INLINE_MAX) but hardly compressible,
	 * and all of it search text: a commit of several gather buffers */
	char *big = big_message("big", 120000);
	uint32_t x = 12345;
	for (size_t i = 20; i < 120000 - 2; i++) {
		x = x * 1103515245 + 12345;
		big[i] = (x >> 16) % 9 == 0 ? ' ' : (char)('a' + (x >> 20) % 26);
	}
	CHECK_INT(append(u, "INBOX", big, 0), 2);
	struct store_uid_range one = {1, 1};
	struct store_flag_change ch = {.mode = STORE_FLAGS_ADD,
				       .flags = STORE_FLAG_SEEN};
	CHECK_INT(store_flags_update(u, "INBOX", &one, 1, &ch, NULL, NULL,
				     NULL, NULL, &err), 0);
	struct store_settings set = other_settings();
	struct store *other;
	CHECK_INT(store_open(&set, &other, &err), 0);
	struct store_user *u2 = user_open(other, 61);
	struct store_mailbox_info info = status(u2, "INBOX");
	CHECK_INT(info.messages, 2);
	CHECK_INT(info.unseen, 1);
	store_mailbox_info_free(&info);
	for (uint32_t uid = 1; uid <= 2; uid++) {
		const char *want = uid == 1 ? small : big;
		struct store_blob b;
		CHECK_INT(store_blob_open(u2, "INBOX", uid, &b, &err), 0);
		CHECK(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0);
		store_blob_close(&b);
	}
	store_user_unref(&u2);
	store_close(&other);
	free(big);
out:
	store_user_unref(&u);
	teardown(&store);
}

/* What a SELECT reads with its view (FLAGS, [UNSEEN]): the keywords are
 * handed over once, and the first unseen message follows a sync that
 * read a change rather than what the open saw. */
static void test_view_open_extras(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 62);
	struct store_error err;
	for (int i = 0; i < 3; i++)
		CHECK_INT(append(u, "INBOX", "Subject: x\r\n\r\nx\r\n", 0),
			  (uint32_t)i + 1);
	static const char *const kw[] = {"$Label1"};
	struct store_uid_range two = {2, 2}, one = {1, 1};
	struct store_flag_change ch = {.mode = STORE_FLAGS_ADD,
				       .keywords = kw, .keyword_count = 1};
	CHECK_INT(store_flags_update(u, "INBOX", &two, 1, &ch, NULL, NULL,
				     NULL, NULL, &err), 0);
	struct store_view *v;
	CHECK_INT(store_view_open(u, "INBOX", 0, &v, &err), 0);
	CHECK_INT(store_view_first_unseen(v, &err), 1);
	char **names;
	size_t n;
	if (store_view_take_keywords(v, &names, &n)) {
		CHECK_INT(n, 1);
		CHECK_STR(names[0], "$Label1");
		free(names[0]);
		free(names);
		CHECK(!store_view_take_keywords(v, &names, &n));
	} else {
		CHECK(pg_conninfo != NULL);   /* sqlite reads them with the view */
	}
	struct store_flag_change seen = {.mode = STORE_FLAGS_ADD,
					 .flags = STORE_FLAG_SEEN};
	CHECK_INT(store_flags_update(u, "INBOX", &one, 1, &seen, NULL, NULL,
				     NULL, NULL, &err), 0);
	struct store_view_callbacks cb = {0};
	CHECK_INT(store_view_sync(v, true, &cb, NULL, &err), 0);
	CHECK_INT(store_view_first_unseen(v, &err), 2);
	CHECK(!store_view_take_keywords(v, &names, &n));
	store_view_close(&v);
	store_user_unref(&u);
	teardown(&store);
}

/* SQLite's allocator (sq-mem.c): what comes back is what was stored,
 * at least as large as asked, aligned; freed slabs go back. Random
 * sizes across the classes and past the largest (those go to malloc),
 * reallocations both ways. */
static void test_sqlite_memory(void)
{
	CHECK(sq_mem_reserve());
	sq_mem_release();
	size_t slabs0 = sq_mem_resident_slabs();
	enum { SLOTS = 512 };
	unsigned char *p[SLOTS] = {0};
	int len[SLOTS] = {0};
	unsigned seed = 7;
	size_t peak = 0;
	for (int op = 0; op < 40000; op++) {
		int i = (int)(rand_r(&seed) % SLOTS);
		int n = 1 + (int)(rand_r(&seed) % (rand_r(&seed) % 4 == 0
						   ? 9000 : 300));
		if (p[i] != NULL) {
			for (int k = 0; k < len[i]; k++)
				if (p[i][k] != (unsigned char)(i + k)) {
					CHECK(!"allocator: contents changed");
					break;
				}
		}
		if (p[i] != NULL && op % 3 == 0) {
			sq_mem_free(p[i]);
			p[i] = NULL;
			len[i] = 0;
			continue;
		}
		unsigned char *q = p[i] != NULL ? sq_mem_realloc(p[i], n)
						: sq_mem_malloc(n);
		CHECK(q != NULL);
		CHECK(((uintptr_t)q & 7) == 0);
		CHECK(sq_mem_size(q) >= n);
		int kept = len[i] < n ? len[i] : n;
		for (int k = 0; k < kept; k++)
			if (q[k] != (unsigned char)(i + k)) {
				CHECK(!"allocator: realloc lost contents");
				break;
			}
		for (int k = 0; k < n; k++)
			q[k] = (unsigned char)(i + k);
		p[i] = q;
		len[i] = n;
		size_t now = sq_mem_resident_slabs();
		if (now > peak)
			peak = now;
	}
	CHECK(peak > slabs0 + 8);
	for (int i = 0; i < SLOTS; i++)
		sq_mem_free(p[i]);
	sq_mem_release();
	CHECK_INT(sq_mem_resident_slabs(), slabs0);
}

/* Idle handles past idle_max are closed outside users_mu, marked
 * closing meanwhile: an open of the same account waits for the close,
 * others go on; a delete waits too. Four threads open, append to and
 * drop 8 accounts with 2 idle handles kept (nearly every drop closes
 * one) while a fifth deletes a ninth account again and again: every
 * append is there afterwards, once. */
#define EVICT_USERS 8
#define EVICT_ROUNDS 60
struct evict_worker {
	struct store *store;
	unsigned seed;
	_Atomic int *appended;     /* per account */
};

static void *evict_appender(void *arg)
{
	struct evict_worker *w = arg;
	for (int i = 0; i < EVICT_ROUNDS; i++) {
		int k = (int)(rand_r(&w->seed) % EVICT_USERS);
		struct store_user *u = user_open(w->store, 300 + k);
		if (append(u, "INBOX", "Subject: e\r\n\r\nx\r\n", 0) > 0)
			atomic_fetch_add(&w->appended[k], 1);
		store_user_unref(&u);
	}
	return NULL;
}

static void *evict_deleter(void *arg)
{
	struct evict_worker *w = arg;
	for (int i = 0; i < EVICT_ROUNDS; i++) {
		struct store_user *u = user_open(w->store, 300 + EVICT_USERS);
		append(u, "INBOX", "Subject: d\r\n\r\nx\r\n", 0);
		store_user_unref(&u);
		struct store_error err;
		/* 0, or TEMP "in use" when a worker of the test holds it */
		if (store_user_delete(w->store, 300 + EVICT_USERS, &err) < 0)
			CHECK_INT(err.kind, STORE_ERR_TEMP);
	}
	return NULL;
}

static void test_handle_eviction(void)
{
	struct store *store = setup();
	store->idle_max = 2;
	_Atomic int appended[EVICT_USERS] = {0};
	struct evict_worker w[5];
	pthread_t t[5];
	for (int i = 0; i < 5; i++) {
		w[i] = (struct evict_worker){store, 17u * (unsigned)i + 1,
					     appended};
		pthread_create(&t[i], NULL,
			       i < 4 ? evict_appender : evict_deleter, &w[i]);
	}
	for (int i = 0; i < 5; i++)
		pthread_join(t[i], NULL);
	int total = 0;
	for (int k = 0; k < EVICT_USERS; k++) {
		struct store_user *u = user_open(store, 300 + k);
		struct store_mailbox_info info = status(u, "INBOX");
		CHECK_INT(info.messages, atomic_load(&appended[k]));
		total += (int)info.messages;
		store_mailbox_info_free(&info);
		store_user_unref(&u);
	}
	CHECK_INT(total, 4 * EVICT_ROUNDS);
	pthread_mutex_lock(&store->users_mu);
	CHECK(store->idle_count <= store->idle_max);
	pthread_mutex_unlock(&store->users_mu);
	teardown(&store);
}

/* Mail going to many accounts in turn (a delivery to 10 of 1,000
 * accounts, the next to the next 10) finds each account's index still
 * open: every reopen parses the schema again. With the 1,024
 * descriptors of a default shell 96 accounts taking mail in turn keep
 * their handles (64 were kept before: a round over 96 reopened every
 * one), and more than the bound still close the oldest: after 300
 * the kept ones are within the bound, and the process within half its
 * descriptors. (Which ones are kept then is the indexer's business
 * too: its own opens of the accounts count as uses.) */
static size_t count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	size_t n = 0;
	if (d == NULL)
		return 0;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n > 2 ? n - 2 : 0;
}

static bool handle_kept(struct store *store, int64_t id)
{
	struct store *where = store->pg != NULL ? store->pg : store;
	bool kept = false;
	pthread_mutex_lock(&where->users_mu);
	for (struct store_user *u = where->users[(uint64_t)id %
						 where->users_size];
	     u != NULL; u = u->next)
		kept |= u->id == id && u->ready;
	pthread_mutex_unlock(&where->users_mu);
	return kept;
}

#define MANY_KEPT 96
#define MANY_TOUCHED 300
static void test_handle_cache_many(void)
{
	struct rlimit was, low;
	CHECK_INT(getrlimit(RLIMIT_NOFILE, &was), 0);
	low = was;
	low.rlim_cur = 1024;
	CHECK_INT(setrlimit(RLIMIT_NOFILE, &low), 0);
	struct store *store = setup();
	CHECK_INT(setrlimit(RLIMIT_NOFILE, &was), 0);
	for (int round = 0; round < 2; round++) {
		for (int k = 0; k < MANY_KEPT; k++) {
			struct store_user *u = user_open(store, 500 + k);
			CHECK(append(u, "INBOX", "Subject: m\r\n\r\nx\r\n",
				     0) > 0);
			store_user_unref(&u);
		}
	}
	int kept = 0;
	for (int k = 0; k < MANY_KEPT; k++)
		kept += handle_kept(store, 500 + k);
	CHECK_INT(kept, MANY_KEPT);
	for (int k = MANY_KEPT; k < MANY_TOUCHED; k++) {
		struct store_user *u = user_open(store, 500 + k);
		CHECK(append(u, "INBOX", "Subject: m\r\n\r\nx\r\n", 0) > 0);
		store_user_unref(&u);
	}
	struct store *where = store->pg != NULL ? store->pg : store;
	pthread_mutex_lock(&where->users_mu);
	CHECK(where->idle_count <= where->idle_max);
	pthread_mutex_unlock(&where->users_mu);
	CHECK(count_fds() < 1024 / 2 + 64);
	teardown(&store);
}

/* SEARCH sees all of a message's text: past the 16 MiB mail's analysis
 * keeps by default too (the store lifts that cap), and the text is kept
 * compressed. */
static void test_search_big_text(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(data_dir, sizeof(data_dir), "%s/loft-test-store-XXXXXX", tmp);
	if (mkdtemp(data_dir) == NULL)
		abort();
	struct store_settings set = {.data_dir = data_dir,
				     .max_message_size = 40u << 20};
	struct store *store;
	struct store_error err;
	CHECK_INT(store_open(&set, &store, &err), 0);
	struct store_user *u = user_open(store, 40);
	size_t n = 17u << 20;
	char *m = big_message("huge", n);
	memcpy(m + n - 40, "needle-past-the-cap", 19);
	CHECK_INT(store_append(u, "INBOX", m, n, NULL, NULL, NULL, &err), 0);
	free(m);
	append(u, "INBOX", "Subject: small\r\n\r\nneedle-past-the-cap too\r\n", 0);
	CHECK_INT(search_count(u, "needle-past-the-cap"), 2);
	CHECK_INT(search_count(u, "NEEDLE-PAST-THE-CAP TOO"), 1);
	CHECK_INT(store_index_flush(u, &err), 0);
	CHECK_INT(search_count(u, "needle-past-the-cap"), 2);
	CHECK_INT(search_count(u, "xxxxxxxneedle"), 1);
	/* the text is stored compressed: far smaller than the message */
	CHECK(index_int(40, "SELECT max(length(body)) FROM text") < (1 << 20));
	store_user_unref(&u);
	teardown(&store);
}

/* A STORE's result is what every later read sees (imap-state's stress
 * test once reported a +FLAGS whose FETCH lacked the keyword: the
 * message had been expunged by another session first). A fetch that
 * holds an older snapshot leaks it to no later reader, views sharing a
 * list each learn of the change, and a STORE on an expunged UID changes
 * nothing and names nothing. */
static bool fetch_has_kw(struct store_user *u, uint32_t uid, const char *kw)
{
	struct store_uid_range r = {uid, uid};
	struct store_fetch *f;
	const struct store_msg *m;
	struct store_error err;
	bool has = false;
	if (store_fetch_begin(u, "INBOX", &r, 1, STORE_FETCH_FLAGS, &f, &err) < 0)
		return false;
	while (store_fetch_next(f, &m, &err) == 1)
		for (size_t i = 0; i < m->keyword_count; i++)
			has |= strcmp(m->keywords[i], kw) == 0;
	store_fetch_end(&f);
	return has;
}

static void kw_changed(void *ctx, uint32_t seq, const struct store_msg *m)
{
	(void)seq;
	for (size_t i = 0; i < m->keyword_count; i++)
		if (strcmp(m->keywords[i], "$k42") == 0)
			*(uint32_t *)ctx = m->uid;
}

static void test_store_then_fetch(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 41);
	struct store_error err;
	for (int i = 0; i < 4; i++)
		append(u, "INBOX", "Subject: s\r\n\r\nx\r\n", 0);
	struct store_view *v1, *v2;
	CHECK_INT(store_view_open(u, "INBOX", 0, &v1, &err), 0);
	CHECK_INT(store_view_open(u, "INBOX", 0, &v2, &err), 0);
	/* a fetch left half way holds its snapshot on a pooled reader */
	struct store_fetch *old;
	const struct store_msg *m;
	CHECK_INT(store_fetch_begin(u, "INBOX", NULL, 0, STORE_FETCH_FLAGS, &old,
				    &err), 0);
	CHECK_INT(store_fetch_next(old, &m, &err), 1);
	const char *kw[] = {"$k42"};
	struct store_flag_change ch = {.mode = STORE_FLAGS_ADD, .keywords = kw,
				       .keyword_count = 1};
	struct store_uid_range r2 = {2, 2};
	uint32_t *changed = NULL;
	size_t nchanged = 0;
	CHECK_INT(store_flags_update(u, "INBOX", &r2, 1, &ch, &changed,
				     &nchanged, NULL, NULL, &err), 0);
	CHECK_INT(nchanged, 1);
	free(changed);
	CHECK(fetch_has_kw(u, 2, "$k42"));
	store_fetch_end(&old);
	for (int i = 0; i < 3; i++)   /* whichever pooled reader comes */
		CHECK(fetch_has_kw(u, 2, "$k42"));
	static const struct store_view_callbacks cb = {.changed = kw_changed};
	uint32_t seen1 = 0, seen2 = 0;
	CHECK_INT(store_view_sync(v1, true, &cb, &seen1, &err), 0);
	CHECK_INT(store_view_sync(v2, true, &cb, &seen2, &err), 0);
	CHECK_INT(seen1, 2);
	CHECK_INT(seen2, 2);
	/* expunged by another session, then +FLAGS on it: nothing */
	struct store_flag_change del = {.mode = STORE_FLAGS_ADD,
					.flags = STORE_FLAG_DELETED};
	struct store_uid_range r3 = {3, 3};
	store_flags_update(u, "INBOX", &r3, 1, &del, NULL, NULL, NULL, NULL, &err);
	CHECK_INT(store_expunge(u, "INBOX", &r3, 1, true, NULL, NULL, &err), 0);
	changed = NULL;
	nchanged = 9;
	CHECK_INT(store_flags_update(u, "INBOX", &r3, 1, &ch, &changed,
				     &nchanged, NULL, NULL, &err), 0);
	CHECK_INT(nchanged, 0);
	free(changed);
	CHECK(!fetch_has_kw(u, 3, "$k42"));
	store_view_close(&v1);
	store_view_close(&v2);
	store_user_unref(&u);
	teardown(&store);
}

/* A pooled reader comes back to the next borrower without a snapshot:
 * one returned with a statement still stepping (a bug, logged) or inside
 * a BEGIN that read nothing is reset; a clean one is pooled as it is. */
static void test_reader_return(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 44);
	struct store_error err = {0};
	append(u, "INBOX", "Subject: s\r\n\r\nx\r\n", 0);
	append(u, "INBOX", "Subject: s\r\n\r\nx\r\n", 0);
	static const char *const sqls[] = {"SELECT uid FROM msg", NULL, ""};
	for (size_t i = 0; i < sizeof(sqls) / sizeof(sqls[0]); i++) {
		struct sq_conn *c = sq_reader_get(SQU(u), &err);
		CHECK(c != NULL);
		if (c == NULL)
			break;
		if (sqls[i] == NULL) {
			CHECK_INT(sq_read_begin(c, &err), 0);
		} else if (sqls[i][0] != '\0') {
			sqlite3_stmt *st = sq_stmt(c, sqls[i]);
			CHECK_INT(sqlite3_step(st), SQLITE_ROW);
			CHECK(sqlite3_txn_state(c->db, NULL) == SQLITE_TXN_READ);
		}
		sq_reader_put(SQU(u), c);
		struct sq_conn *again = sq_reader_get(SQU(u), &err);
		CHECK(again == c);   /* the pool hands back the last one in */
		CHECK(sqlite3_txn_state(again->db, NULL) == SQLITE_TXN_NONE);
		CHECK(sqlite3_get_autocommit(again->db));
		CHECK_INT(sq_read_begin(again, &err), 0);
		sq_read_end(again);
		sq_reader_put(SQU(u), again);
	}
	store_user_unref(&u);
	teardown(&store);
}

/* Compaction: the space of expunged in-index bodies comes back, in
 * bounded steps, without disturbing a FETCH that started before (its
 * snapshot still reads every message, the expunged ones too); an index
 * made before incremental compaction is converted once. */
static void test_compaction(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 43);
	struct store_error err;
	CHECK_INT(index_int(43, "PRAGMA auto_vacuum"), 2);
	char subj[16];
	for (int i = 1; i <= 120; i++) {
		snprintf(subj, sizeof(subj), "c%d", i);
		char *m = big_message(subj, 20000);
		CHECK_INT(append(u, "INBOX", m, 0), (uint32_t)i);
		free(m);
	}
	/* a FETCH that began before the expunge and the compaction */
	struct store_fetch *f;
	const struct store_msg *m;
	CHECK_INT(store_fetch_begin(u, "INBOX", NULL, 0,
				    STORE_FETCH_ENVELOPE | STORE_FETCH_SIZE,
				    &f, &err), 0);
	CHECK_INT(store_fetch_next(f, &m, &err), 1);
	CHECK_INT(m->uid, 1);
	struct store_uid_range gone = {1, 100};
	uint32_t *uids;
	size_t n;
	CHECK_INT(store_expunge(u, "INBOX", &gone, 1, true, &uids, &n, &err), 0);
	CHECK_INT(n, 100);
	free(uids);
	long long free0 = index_int(43, "PRAGMA freelist_count");
	CHECK(free0 > 400);
	/* the idle pass runs a few bounded steps */
	sq_idle_trim(store, 0);
	long long free1 = index_int(43, "PRAGMA freelist_count");
	CHECK(free1 < free0);
	CHECK(free0 - free1 <= SQ_COMPACT_STEP_PAGES * SQ_COMPACT_IDLE_STEPS);
	struct store_compact_report rep;
	CHECK_INT(store_compact(store, 43, &rep, &err), 0);
	CHECK(!rep.converted);
	CHECK_INT(rep.free_pages, free1);
	CHECK(rep.bytes_after < rep.bytes_before);
	CHECK_INT(index_int(43, "PRAGMA freelist_count"), 0);
	/* the FETCH reads on from its snapshot, all 120 of them */
	uint32_t seen = 1;
	int r;
	while ((r = store_fetch_next(f, &m, &err)) == 1) {
		snprintf(subj, sizeof(subj), "\"c%u\"", m->uid);
		CHECK(m->envelope != NULL && strstr(m->envelope, subj) != NULL);
		CHECK_INT(m->size, 20000);
		seen++;
	}
	CHECK_INT(r, 0);
	CHECK_INT(seen, 120);
	store_fetch_end(&f);
	/* the survivors are intact */
	for (uint32_t uid = 101; uid <= 120; uid++) {
		struct store_blob b;
		CHECK_INT(store_blob_open(u, "INBOX", uid, &b, &err), 0);
		snprintf(subj, sizeof(subj), "c%u", uid);
		char *want = big_message(subj, 20000);
		CHECK(b.len == 20000 && memcmp(b.data, want, 20000) == 0);
		free(want);
		store_blob_close(&b);
	}
	struct lines l = {0};
	CHECK_INT(store_check(store, 43, true, report_cb, &l, &err), 0);
	CHECK_INT(l.n, 0);
	store_user_unref(&u);

	/* an index from before: converted by one VACUUM */
	u = user_open(store, 44);
	append(u, "INBOX", "Subject: old\r\n\r\nx\r\n", 0);
	char *idx = user_path(44, "index.db");
	sqlite3 *db;
	CHECK_INT(sqlite3_open(idx, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	CHECK_INT(sqlite3_exec(db, "PRAGMA auto_vacuum = NONE; VACUUM", NULL,
			       NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	free(idx);
	CHECK_INT(index_int(44, "PRAGMA auto_vacuum"), 0);
	CHECK_INT(store_compact(store, 44, &rep, &err), 0);
	CHECK(rep.converted);
	CHECK_INT(index_int(44, "PRAGMA auto_vacuum"), 2);
	CHECK_INT(append(u, "INBOX", "Subject: new\r\n\r\nx\r\n", 0), 2);
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.messages, 2);
	store_mailbox_info_free(&info);
	store_user_unref(&u);
	/* an account without mail has nothing to compact */
	CHECK_INT(store_compact(store, 999, &rep, &err), 0);
	CHECK_INT(rep.bytes_before, 0);
	teardown(&store);
}

/* Fault injection (issue 11): the k-th and later writes, fsyncs or
 * truncations of the index fail (ENOSPC, or EIO) while three appends
 * share a group commit, and for a compaction; k walks until nothing
 * fails any more. Every job either succeeds or fails with a temporary
 * error; after the disk "gets space back" exactly the acknowledged
 * messages are there, byte for byte, nothing else is half visible, the
 * next commit succeeds and check finds nothing to repair. */
struct fault_app {
	struct store_user *u;
	char msg[96];
	int ret;
	struct store_error err;
};

static void *fault_app_main(void *arg)
{
	struct fault_app *a = arg;
	struct store_append_params p = {0};
	a->ret = store_append(a->u, "INBOX", a->msg, strlen(a->msg), &p, NULL,
			      NULL, &a->err);
	return NULL;
}

/* The subjects in INBOX, each message read whole and compared. */
static size_t fault_inbox(struct store_user *u, char (*want)[96], size_t n)
{
	struct store_error err;
	struct store_fetch *f;
	const struct store_msg *m;
	size_t found = 0, extra = 0;
	CHECK_INT(store_fetch_begin(u, "INBOX", NULL, 0, STORE_FETCH_FLAGS, &f,
				    &err), 0);
	while (store_fetch_next(f, &m, &err) == 1) {
		struct store_blob b;
		if (store_blob_open(u, "INBOX", m->uid, &b, &err) < 0) {
			CHECK(!"an acknowledged message cannot be read");
			continue;
		}
		bool known = false;
		for (size_t i = 0; i < n; i++)
			if (b.len == strlen(want[i]) &&
			    memcmp(b.data, want[i], b.len) == 0)
				known = true;
		found += known;
		extra += !known;
		store_blob_close(&b);
	}
	store_fetch_end(&f);
	CHECK_INT(extra, 0);
	return found;
}

static void test_fault_injection(void)
{
	sq_fault_enable();
	struct store *store = setup_fsync(true);
	struct store_user *u = user_open(store, 51);
	struct store_error err;
	static char acked[512][96];
	size_t nacked = 0, failed = 0, rounds = 0;
	snprintf(acked[nacked++], 96, "Subject: base\r\n\r\nbase\r\n");
	CHECK_INT(append(u, "INBOX", acked[0], 0), 1);
	static const int ops[] = {SQ_FAULT_WRITE, SQ_FAULT_SYNC,
				  SQ_FAULT_TRUNCATE};
	for (size_t o = 0; o < 3; o++) {
		for (int io = 0; io < 2; io++) {
			for (long k = 1; k < 60 && nacked < 480; k++) {
				struct fault_app a[3];
				pthread_t t[3];
				memset(a, 0, sizeof(a));
				sq_fault_arm(ops[o], k, io);
				for (int i = 0; i < 3; i++) {
					a[i].u = u;
					snprintf(a[i].msg, sizeof(a[i].msg),
						 "Subject: f%zu-%d-%ld-%d\r\n"
						 "\r\nbody\r\n", o, io, k, i);
					pthread_create(&t[i], NULL,
						       fault_app_main, &a[i]);
				}
				for (int i = 0; i < 3; i++)
					pthread_join(t[i], NULL);
				bool hit = sq_fault_disarm();
				rounds++;
				for (int i = 0; i < 3; i++) {
					if (a[i].ret == 0) {
						memcpy(acked[nacked++],
						       a[i].msg, 96);
						continue;
					}
					failed++;
					CHECK_INT(a[i].err.kind,
						  STORE_ERR_TEMP);
					/* a full disk said so (LMTP 452
					 * 4.3.1), an I/O error not (451) */
					CHECK_INT(a[i].err.full,
						  ops[o] == SQ_FAULT_WRITE &&
							  !io);
				}
				/* space is back: the next commit works */
				char next[96];
				snprintf(next, sizeof(next),
					 "Subject: after%zu-%d-%ld\r\n\r\n"
					 "x\r\n", o, io, k);
				CHECK(append(u, "INBOX", next, 0) > 0);
				memcpy(acked[nacked++], next, 96);
				if (!hit)
					break;
			}
		}
	}
	CHECK(failed > 0);
	CHECK_INT(fault_inbox(u, acked, nacked), nacked);
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.messages, nacked);
	store_mailbox_info_free(&info);

	/* a compaction that fails half way leaves the old data */
	struct store_uid_range half = {1, (uint32_t)(info.uidnext / 2)};
	uint32_t *uids;
	size_t n;
	CHECK_INT(store_expunge(u, "INBOX", &half, 1, true, &uids, &n, &err),
		  0);
	free(uids);
	char *m = big_message("pad", 100000);
	for (int i = 0; i < 20; i++)
		append(u, "INBOX", m, 0);
	free(m);
	struct store_uid_range pad = {info.uidnext, info.uidnext + 19};
	CHECK_INT(store_expunge(u, "INBOX", &pad, 1, true, &uids, &n, &err),
		  0);
	CHECK_INT(n, 20);
	free(uids);
	for (size_t o = 0; o < 3; o++) {
		for (long k = 1; k < 40; k++) {
			struct store_compact_report rep;
			sq_fault_arm(ops[o], k, false);
			int r = store_compact(store, 51, &rep, &err);
			bool hit = sq_fault_disarm();
			if (r < 0)
				CHECK_INT(err.kind, STORE_ERR_TEMP);
			struct lines l = {0};
			CHECK_INT(store_check(store, 51, true, report_cb, &l,
					      &err), 0);
			CHECK_INT(l.n, 0);
			if (!hit)
				break;
		}
	}
	info = status(u, "INBOX");
	size_t left = info.messages;
	store_mailbox_info_free(&info);
	CHECK_INT(fault_inbox(u, acked, nacked), left);
	CHECK_INT(index_int(51, "PRAGMA freelist_count"), 0);
	fprintf(stderr, "fault injection: %zu rounds, %zu jobs failed, %zu"
		" acknowledged\n", rounds, failed, nacked);
	store_user_unref(&u);
	teardown(&store);
}

/* 10,000 views of one mailbox (10,000 IMAP sessions with it selected)
 * while another thread expunges and delivers: every view's sequence
 * numbers stay right (the expunges each reports name the UID its own
 * model has at that sequence number, in an order that keeps them
 * valid; after a last sync every view equals a fresh one), and the
 * views share UID lists: lists made grow with the mailbox's states,
 * not with the number of views. */
#define MANY_VIEWS 10000
#define MODELLED 200

struct view_model {
	uint32_t uids[1024];
	uint32_t n;
	uint32_t known;     /* messages the model had before EXISTS */
	bool bad;
};

static void vm_expunged(void *ctx, uint32_t seq, uint32_t uid)
{
	struct view_model *m = ctx;
	if (seq == 0 || seq > m->n || m->uids[seq - 1] != uid) {
		m->bad = true;
		return;
	}
	memmove(m->uids + seq - 1, m->uids + seq,
		(m->n - seq) * sizeof(uint32_t));
	m->n--;
}

static void vm_exists(void *ctx, uint32_t count)
{
	struct view_model *m = ctx;
	if (count < m->n || count > 1024) {
		m->bad = true;
		return;
	}
	m->known = m->n;
	m->n = count;   /* new UIDs are read below, as a FETCH would */
}

static const struct store_view_callbacks vm_cb = {vm_expunged, NULL,
						  vm_exists};

struct churn {
	struct store_user *u;
	atomic_int done;
	atomic_uint passes;  /* the views' sync passes so far */
	int commits;
};

static void *churn_main(void *arg)
{
	struct churn *c = arg;
	struct store_error err;
	uint32_t next_victim = 1;
	for (unsigned round = 0; round < 8; round++) {
		/* each round lands while the views are in their sync pass */
		while (atomic_load(&c->passes) < round)
			usleep(1000);
		struct store_uid_range r = {next_victim, next_victim + 4};
		next_victim += 37;
		if (store_expunge(c->u, "INBOX", &r, 1, true, NULL, NULL,
				  &err) == 0)
			c->commits++;
		for (int i = 0; i < 4; i++)
			if (append(c->u, "INBOX", "Subject: new\r\n\r\nx\r\n",
				   0) > 0)
				c->commits++;
	}
	atomic_store(&c->done, 1);
	return NULL;
}

static void test_many_views(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 52);
	struct store_error err;
	for (int i = 0; i < 300; i++)
		append(u, "INBOX", "Subject: v\r\n\r\nx\r\n", 0);
	struct store_view **views = xcalloc(MANY_VIEWS, sizeof(*views));
	struct view_model *models = xcalloc(MODELLED, sizeof(*models));
	uint64_t made = atomic_load(&store_uidlists_made);
	for (int i = 0; i < MANY_VIEWS; i++) {
		CHECK_INT(store_view_open(u, "INBOX", STORE_VIEW_READONLY,
					  &views[i], &err), 0);
		if (i < MODELLED) {
			models[i].n = store_view_count(views[i]);
			for (uint32_t s = 1; s <= models[i].n; s++)
				models[i].uids[s - 1] =
					store_view_uid(views[i], s);
		}
	}
	CHECK_INT(atomic_load(&store_uidlists_made) - made, 1);
	struct churn c = {u, 0, 0, 0};
	pthread_t t;
	pthread_create(&t, NULL, churn_main, &c);
	unsigned passes = 0;
	bool last = false;
	while (!last) {
		last = atomic_load(&c.done) != 0;
		for (int i = 0; i < MANY_VIEWS; i++) {
			/* some sessions may not report expunges yet (a FETCH
			 * running, RFC 3501 7.4.1): they keep ghosts */
			bool allow = last || (i + passes) % 3 != 0;
			struct view_model *m = i < MODELLED ? &models[i] : NULL;
			if (m != NULL)
				m->known = m->n;
			CHECK_INT(store_view_sync(views[i], allow,
						  m ? &vm_cb : NULL, m, &err),
				  0);
			if (m == NULL)
				continue;
			for (uint32_t s = m->known + 1; s <= m->n; s++)
				m->uids[s - 1] = store_view_uid(views[i], s);
			bool same = m->n == store_view_count(views[i]);
			for (uint32_t s = 1; same && s <= m->n; s++)
				same = m->uids[s - 1] ==
				       store_view_uid(views[i], s);
			if (!same || m->bad) {
				CHECK(!"a view's sequence numbers went wrong");
				m->bad = false;
			}
		}
		passes++;
		atomic_store(&c.passes, passes);
	}
	pthread_join(t, NULL);
	struct store_view *fresh;
	CHECK_INT(store_view_open(u, "INBOX", STORE_VIEW_READONLY, &fresh,
				  &err), 0);
	uint32_t n = store_view_count(fresh);
	CHECK_INT(n, 300 - 8 * 5 + 8 * 4);
	int wrong = 0;
	for (int i = 0; i < MANY_VIEWS; i++) {
		bool same = store_view_count(views[i]) == n;
		for (uint32_t s = 1; same && s <= n; s++)
			same = store_view_uid(views[i], s) ==
			       store_view_uid(fresh, s);
		wrong += !same;
	}
	CHECK_INT(wrong, 0);
	uint64_t lists = atomic_load(&store_uidlists_made) - made;
	fprintf(stderr, "many views: %d views, %u passes, %d commits, %llu"
		" UID lists made\n", MANY_VIEWS, passes, c.commits,
		(unsigned long long)lists);
	/* one per state the views met (and the ghosts' own), never one
	 * per view */
	CHECK(lists <= (uint64_t)c.commits * 2 + 2);
	store_view_close(&fresh);
	for (int i = 0; i < MANY_VIEWS; i++)
		store_view_close(&views[i]);
	free(views);
	free(models);
	store_user_unref(&u);
	teardown(&store);
}

/* ---- MULTIAPPEND: several writers in one group commit ------------- */

static long multi_commit(struct store_user *u, int n, const char *tag,
			 uint32_t *uids, struct store_error *err, int *ret)
{
	struct store_blob_writer *ws[8];
	struct store_append_params p[8];
	for (int i = 0; i < n; i++) {
		char msg[96];
		int len = snprintf(msg, sizeof(msg),
				   "Subject: %s %d\r\n\r\nbody %d\r\n", tag, i, i);
		CHECK_INT(store_blob_writer_create(u, &ws[i], err), 0);
		CHECK_INT(store_blob_writer_write(ws[i], msg, (size_t)len, err),
			  0);
		p[i] = (struct store_append_params){
			.flags = i == 1 ? STORE_FLAG_FLAGGED : 0};
	}
	sq_fault_arm(SQ_FAULT_SYNC, LONG_MAX, false);
	*ret = store_blob_writers_commit_to(ws, (size_t)n, u, "INBOX", p, uids,
					    NULL, err);
	long syncs = sq_fault_calls();
	sq_fault_disarm();
	for (int i = 0; i < n; i++)
		CHECK(ws[i] == NULL);
	return syncs;
}

static void test_multiappend(void)
{
	sq_fault_enable();
	struct store *store = setup_fsync(true);
	struct store_user *u = user_open(store, 52);
	struct store_error err;
	uint32_t uids[8];
	int ret;
	CHECK_INT(append(u, "INBOX", "Subject: first\r\n\r\nx\r\n", 0), 1);
	/* one at a time: a WAL sync each */
	long single = 0;
	for (int i = 0; i < 3; i++) {
		single += multi_commit(u, 1, "single", uids, &err, &ret);
		CHECK_INT(ret, 0);
	}
	/* five together: one commit, one WAL sync */
	long together = multi_commit(u, 5, "multi", uids, &err, &ret);
	CHECK_INT(ret, 0);
	CHECK(single >= 3);
	CHECK_INT(together, single / 3);
	for (int i = 0; i < 5; i++)
		CHECK_INT(uids[i], 5 + (uint32_t)i);
	struct store_blob b;
	CHECK_INT(store_blob_open(u, "INBOX", 7, &b, &err), 0);
	CHECK_MEM(b.data, b.len, "Subject: multi 2\r\n\r\nbody 2\r\n", 28);
	store_blob_close(&b);
	struct store_fetch *f;
	const struct store_msg *m;
	struct store_uid_range r6 = {6, 6};
	CHECK_INT(store_fetch_begin(u, "INBOX", &r6, 1, STORE_FETCH_FLAGS, &f,
				    &err), 0);
	CHECK_INT(store_fetch_next(f, &m, &err), 1);
	CHECK_INT(m->flags & STORE_FLAG_FLAGGED, STORE_FLAG_FLAGGED);
	store_fetch_end(&f);

	/* over quota half way: those before are stored, the rest not; the
	 * error is the first failure's */
	test_limits.quota_messages = 11;
	multi_commit(u, 4, "quota", uids, &err, &ret);
	CHECK_INT(ret, -1);
	CHECK_INT(err.kind, STORE_ERR_QUOTA);
	CHECK_INT(uids[0], 10);
	CHECK_INT(uids[1], 11);
	CHECK_INT(uids[2], 0);
	CHECK_INT(uids[3], 0);
	test_limits.quota_messages = 0;

	/* disk full at the commit: every message fails, none is visible,
	 * the next commit works */
	struct store_mailbox_info info = status(u, "INBOX");
	uint32_t before = info.messages;
	store_mailbox_info_free(&info);
	struct store_blob_writer *ws[3];
	for (int i = 0; i < 3; i++) {
		CHECK_INT(store_blob_writer_create(u, &ws[i], &err), 0);
		store_blob_writer_write(ws[i], "Subject: full\r\n\r\nx\r\n", 20,
					&err);
	}
	sq_fault_arm(SQ_FAULT_WRITE, 1, false);
	CHECK_INT(store_blob_writers_commit_to(ws, 3, u, "INBOX", NULL, uids,
					       NULL, &err), -1);
	CHECK(sq_fault_disarm());
	CHECK_INT(err.kind, STORE_ERR_TEMP);
	CHECK_INT(uids[0] | uids[1] | uids[2], 0);
	info = status(u, "INBOX");
	CHECK_INT(info.messages, before);
	store_mailbox_info_free(&info);
	multi_commit(u, 2, "after", uids, &err, &ret);
	CHECK_INT(ret, 0);
	info = status(u, "INBOX");
	CHECK_INT(info.messages, before + 2);
	store_mailbox_info_free(&info);
	CHECK_INT(stored_bodies(52), before + 2);

	/* finished as their literals end (store_blob_writer_finish: on the
	 * finisher threads), then committed together: the same messages */
	char *bigm = big_message("early", 300000);
	for (int i = 0; i < 3; i++) {
		CHECK_INT(store_blob_writer_create(u, &ws[i], &err), 0);
		if (i == 1)
			CHECK_INT(store_blob_writer_write(ws[i], bigm, 300000,
							  &err), 0);
		else
			store_blob_writer_write(ws[i], "Subject: early\n\nx\n",
						18, &err);
		CHECK_INT(store_blob_writer_finish(ws[i], &err), 0);
	}
	CHECK_INT(store_blob_writers_commit_to(ws, 3, u, "INBOX", NULL, uids,
					       NULL, &err), 0);
	CHECK_INT(store_blob_open(u, "INBOX", uids[1], &b, &err), 0);
	CHECK_MEM(b.data, b.len, bigm, 300000);
	store_blob_close(&b);
	CHECK_INT(store_blob_open(u, "INBOX", uids[2], &b, &err), 0);
	CHECK_MEM(b.data, b.len, "Subject: early\r\n\r\nx\r\n", 21);
	store_blob_close(&b);
	CHECK_INT(stored_bodies(52), before + 5);
	/* an abort right after (not waiting for a finish that runs):
	 * nothing is left once the finisher is done with it */
	CHECK_INT(store_blob_writer_create(u, &ws[0], &err), 0);
	store_blob_writer_write(ws[0], bigm, 300000, &err);
	CHECK_INT(store_blob_writer_finish(ws[0], &err), 0);
	store_blob_writer_abort(&ws[0]);
	for (int i = 0; i < 1000 && spill_files() > 0; i++)
		usleep(10000);
	CHECK_INT(spill_files(), 0);
	/* disk full in the finish itself (its last write): the commit says
	 * so, nothing is stored */
	CHECK_INT(store_blob_writer_create(u, &ws[0], &err), 0);
	CHECK_INT(store_blob_writer_create(u, &ws[1], &err), 0);
	store_blob_writer_write(ws[0], "Subject: ok\r\n\r\nx\r\n", 19, &err);
	atomic_store(&store->test_fail_write_after, 290000);
	CHECK_INT(store_blob_writer_write(ws[1], bigm, 300000, &err), 0);
	CHECK_INT(store_blob_writer_finish(ws[0], &err), 0);
	CHECK_INT(store_blob_writer_finish(ws[1], &err), 0);
	CHECK_INT(store_blob_writers_commit_to(ws, 2, u, "INBOX", NULL, uids,
					       NULL, &err), -1);
	atomic_store(&store->test_fail_write_after, 0);
	CHECK_INT(err.kind, STORE_ERR_TEMP);
	CHECK(strstr(err.msg, "Disk full") != NULL);
	CHECK(err.full);
	CHECK_INT(uids[0] | uids[1], 0);
	CHECK_INT(stored_bodies(52), before + 5);
	CHECK_INT(spill_files(), 0);
	free(bigm);
	store_user_unref(&u);
	teardown(&store);
}

/* The trigram indexes' tokenizer (sq-tokenize.c) passes ASCII texts on
 * without SQLite's per-character work: the indexes it makes hold the
 * same trigrams for the same rows as SQLite's own tokenizer makes, for
 * ASCII, non-ASCII, NUL-bearing and short texts, with case_sensitive 1
 * (how the indexes are made) and 0. */
static void vocab_dump(sqlite3 *db, const char *vocab, struct buf *out)
{
	char *sql = xasprintf("SELECT term, doc FROM %s ORDER BY term", vocab);
	sqlite3_stmt *st;
	CHECK_INT(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		buf_append(out, sqlite3_column_blob(st, 0),
			   (size_t)sqlite3_column_bytes(st, 0));
		buf_printf(out, "=%d\n", sqlite3_column_int(st, 1));
	}
	sqlite3_finalize(st);
	free(sql);
}

static void test_trigram_ascii(void)
{
	static const char *const fixed[] = {
		"", "a", "ab", "abc", "abcd", "hello world hello world",
		"subject: re: the quick brown fox\nfrom: a@b.example",
		"caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9 abc abc",
		"UPPER lower MiXeD UPPER",
	};
	const size_t nfixed = sizeof(fixed) / sizeof(*fixed);
	sqlite3 *db[2];
	for (int k = 0; k < 2; k++) {
		CHECK_INT(sqlite3_open(":memory:", &db[k]), SQLITE_OK);
		if (k == 1)
			sq_trigram_register(db[k]);
		CHECK_INT(sqlite3_exec(db[k],
			"CREATE VIRTUAL TABLE t1 USING fts5(t, content='',"
			" tokenize='trigram case_sensitive 1', detail=none);"
			"CREATE VIRTUAL TABLE t0 USING fts5(t, content='',"
			" tokenize='trigram', detail=none);"
			"CREATE VIRTUAL TABLE v1 USING fts5vocab(t1, 'row');"
			"CREATE VIRTUAL TABLE v0 USING fts5vocab(t0, 'row');",
			NULL, NULL, NULL), SQLITE_OK);
		unsigned seed = 7;
		for (size_t i = 0; i < nfixed + 40; i++) {
			char doc[600];
			size_t len;
			if (i < nfixed) {
				len = strlen(fixed[i]);
				memcpy(doc, fixed[i], len);
			} else {
				/* random texts over a small alphabet (many
				 * repeats), the last few with a NUL inside */
				static const char al[] = "abcAB de\n:.";
				len = 1 + (i * 37) % (sizeof(doc) - 1);
				for (size_t j = 0; j < len; j++) {
					seed = seed * 1103515245u + 12345u;
					doc[j] = al[(seed >> 16) % (sizeof(al) - 1)];
				}
				if (i >= nfixed + 35)
					doc[len / 2] = '\0';
			}
			for (int tb = 0; tb < 2; tb++) {
				sqlite3_stmt *st;
				CHECK_INT(sqlite3_prepare_v2(db[k], tb ?
					"INSERT INTO t1 (rowid, t) VALUES (?, ?)" :
					"INSERT INTO t0 (rowid, t) VALUES (?, ?)",
					-1, &st, NULL), SQLITE_OK);
				sqlite3_bind_int64(st, 1, (sqlite3_int64)i + 1);
				sqlite3_bind_text(st, 2, doc, (int)len,
						  SQLITE_TRANSIENT);
				CHECK_INT(sqlite3_step(st), SQLITE_DONE);
				sqlite3_finalize(st);
			}
		}
	}
	for (int tb = 0; tb < 2; tb++) {
		struct buf a, b;
		buf_init(&a, 0);
		buf_init(&b, 0);
		vocab_dump(db[0], tb ? "v1" : "v0", &a);
		vocab_dump(db[1], tb ? "v1" : "v0", &b);
		CHECK(a.len > 1000);
		CHECK_MEM(a.data, a.len, b.data, b.len);
		buf_free(&a);
		buf_free(&b);
	}
	/* case_sensitive 1 keeps case, 0 folds: the two differ */
	struct buf a, b;
	buf_init(&a, 0);
	buf_init(&b, 0);
	vocab_dump(db[1], "v1", &a);
	vocab_dump(db[1], "v0", &b);
	CHECK(a.len != b.len || memcmp(a.data, b.data, a.len) != 0);
	buf_free(&a);
	buf_free(&b);
	sqlite3_close(db[0]);
	sqlite3_close(db[1]);
}

/* store_blob_open_head: the prefix and the body's header block, read and
 * checked alone (blob.head); damage there is refused, damage after it
 * is not read; a row without a header checksum (an index from before
 * it) gives the whole message, and check fills it in. */
static void head_is(struct store_user *u, uint32_t uid, const char *want,
		    size_t want_len)
{
	struct store_blob b;
	struct store_error err;
	CHECK_INT(store_blob_open_head(u, "INBOX", uid, &b, &err), 0);
	CHECK_MEM(b.data, b.len, want, want_len);
	store_blob_close(&b);
}

static void index_exec(int64_t id, const char *sql)
{
	char *idx = user_path(id, "index.db");
	sqlite3 *db;
	CHECK_INT(sqlite3_open(idx, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	CHECK_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	free(idx);
}

static void test_blob_head(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 67);
	struct store_error err;
	struct store_body *body;
	const char *msg = "Subject: h\nX-A: 1\n\nline one\n\nline two\n";
	CHECK_INT(store_body_create(store, &body, &err), 0);
	CHECK_INT(store_body_write(body, msg, strlen(msg), &err), 0);
	CHECK_INT(store_body_finish(body, &err), 0);
	uint32_t uid1 = deliver(body, u, "a@x.test", &err);
	store_body_unref(&body);
	CHECK(uid1 != 0);
	const char *head1 = "Return-Path: <s@x.test>\r\nDelivered-To: a@x.test"
			    "\r\nSubject: h\r\nX-A: 1\r\n\r\n";
	head_is(u, uid1, head1, strlen(head1));
	/* no empty line: the whole message is its header */
	uint32_t uid2 = append(u, "INBOX", "Subject: only\r\nX: y\r\n", 0);
	head_is(u, uid2, "Subject: only\r\nX: y\r\n", 21);
	/* a body in a file */
	char *big = big_message("bighead", SQ_INLINE_MAX + 10);
	uint32_t uid3 = append(u, "INBOX", big, 0);
	free(big);
	head_is(u, uid3, "Subject: bighead\r\n\r\n", 20);
	CHECK_INT(index_int(67, "SELECT count(*) FROM blob WHERE kind = 0"), 1);
	/* an index from before blob.head: the whole message; check fills
	 * the column in, and the header is read alone again */
	index_exec(67, "UPDATE blob SET head = NULL");
	struct store_blob b;
	CHECK_INT(store_blob_open_head(u, "INBOX", uid1, &b, &err), 0);
	CHECK_INT(b.len, strlen(head1) + strlen("line one\r\n\r\nline two\r\n"));
	store_blob_close(&b);
	struct lines l = {0};
	CHECK_INT(store_check(store, 67, true, report_cb, &l, &err), 0);
	CHECK_INT(l.n, 0);
	CHECK_INT(index_int(67, "SELECT count(*) FROM blob WHERE head IS NULL"),
		  0);
	head_is(u, uid1, head1, strlen(head1));
	head_is(u, uid3, "Subject: bighead\r\n\r\n", 20);
	/* damage after the header: the header is still served, the whole
	 * message is not */
	index_exec(67, "UPDATE body SET data = CAST(replace(CAST(data AS"
		       " TEXT), 'line two', 'line 2!!') AS BLOB)");
	head_is(u, uid1, head1, strlen(head1));
	CHECK_INT(store_blob_open(u, "INBOX", uid1, &b, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_TEMP);
	/* damage in the header: refused */
	index_exec(67, "UPDATE body SET data = CAST(replace(CAST(data AS"
		       " TEXT), 'X-A: 1', 'X-A: 2') AS BLOB)");
	CHECK_INT(store_blob_open_head(u, "INBOX", uid1, &b, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_TEMP);
	char *blobs = user_path(67, "blobs");
	char *cmd = xasprintf("f=$(grep -rl 'Subject: bighead' '%s');"
			      " printf Z | dd of=\"$f\""
			      " bs=1 seek=3 conv=notrunc 2>/dev/null", blobs);
	CHECK_INT(system(cmd), 0);
	free(cmd);
	free(blobs);
	CHECK_INT(store_blob_open_head(u, "INBOX", uid3, &b, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_TEMP);
	/* a wrong header checksum on a sound body is named and corrected */
	index_exec(67, "UPDATE blob SET head = head + 1 WHERE kind = 1 AND"
		       " size < 30");
	l.n = 0;
	CHECK_INT(store_check(store, 67, true, report_cb, &l, &err), -1);
	CHECK(l.n >= 1);
	head_is(u, uid2, "Subject: only\r\nX: y\r\n", 21);
	store_user_unref(&u);
	teardown(&store);
}

/* A bulk append's text (MULTIAPPEND: SQ_BULK_MIN bodies or more in one
 * commit) is left to the indexer until the stream pauses; SEARCH finds
 * it at once all the same, and the indexes catch up once it stops. */
static void test_bulk_index(void)
{
	struct store *store = setup();
	store_start_background(store);
	struct store_user *u = user_open(store, 68);
	struct store_error err;
	struct store_blob_writer *ws[SQ_BULK_MIN];
	uint32_t uids[SQ_BULK_MIN];
	for (int i = 0; i < SQ_BULK_MIN; i++) {
		char msg[96];
		int len = snprintf(msg, sizeof(msg), "Subject: bulk %d\r\n\r\n"
				   "quokka %d\r\n", i, i);
		CHECK_INT(store_blob_writer_create(u, &ws[i], &err), 0);
		CHECK_INT(store_blob_writer_write(ws[i], msg, (size_t)len,
						  &err), 0);
	}
	CHECK_INT(store_blob_writers_commit_to(ws, SQ_BULK_MIN, u, "INBOX",
					       NULL, uids, NULL, &err), 0);
	uint32_t *found;
	size_t n;
	CHECK_INT(store_search_text(u, "INBOX", STORE_TEXT_BODY, "quokka",
				    NULL, 0, &found, &n, &err), 0);
	CHECK_INT(n, SQ_BULK_MIN);
	free(found);
	/* indexed once the stream has paused (a condition, bounded) */
	const char *caught_up = "SELECT fts_upto >= (SELECT max(id) FROM text)"
				" FROM account";
	for (int i = 0; i < 1200 && index_int(68, caught_up) != 1; i++)
		usleep(100 * 1000);
	CHECK_INT(index_int(68, caught_up), 1);
	CHECK_INT(store_search_text(u, "INBOX", STORE_TEXT_BODY, "quokka 3",
				    NULL, 0, &found, &n, &err), 0);
	CHECK_INT(n, 1);
	free(found);
	store_user_unref(&u);
	teardown(&store);
}

/* Bodies' checksums (sq_crc32) are zlib's crc32 values, so the crc of
 * every body stored before still checks: CRC-32's check value, and a
 * value carried over pieces. */
static void test_body_crc(void)
{
	CHECK_INT(sq_crc32(0, "123456789", 9), 0xCBF43926u);
	CHECK_INT(sq_crc32(sq_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
	CHECK_INT(sq_crc32(0, NULL, 0), 0);
}

static const struct test_case cases[] = {
	{"defaults", test_defaults},
	{"append_fetch", test_append_fetch},
	{"flags_modseq", test_flags_modseq},
	{"mailboxes", test_mailboxes},
	{"copy_move_expunge", test_copy_move_expunge},
	{"quota", test_quota},
	{"views", test_views},
	{"view_bulk_and_other_process", test_view_bulk_and_other_process},
	{"recent_status", test_recent_status},
	{"search", test_search},
	{"group_commit", test_group_commit},
	{"blob_writer", test_blob_writer},
	{"hub", test_hub},
	{"pop3_retention", test_pop3_retention},
	{"pop3_auto", test_pop3_auto},
	{"roles", test_roles},
	{"check", test_check},
	{"crash", test_crash},
	{"shared_body", test_shared_body},
	{"crash_new_accounts", test_crash_new_accounts},
	{"body_faults", test_body_faults},
	{"view_sharing", test_view_sharing},
	{"fetch_since", test_fetch_since},
	{"first_unseen", test_first_unseen},
	{"idle_trim", test_idle_trim},
	{"sqlite_memory", test_sqlite_memory},
	{"idle_heap_trim", test_idle_heap_trim},
	{"view_change_stamp", test_view_change_stamp},
	{"wal_gather", test_wal_gather},
	{"view_open_extras", test_view_open_extras},
	{"handle_eviction", test_handle_eviction},
	{"handle_cache_many", test_handle_cache_many},
	{"search_big_text", test_search_big_text},
	{"deferred_unlink", test_deferred_unlink},
	{"damaged_body", test_damaged_body},
	{"background_sweep", test_background_sweep},
	{"config", test_config},
	{"thread_ids", test_thread_ids},
	{"store_then_fetch", test_store_then_fetch},
	{"reader_return", test_reader_return},
	{"compaction", test_compaction},
	{"fault_injection", test_fault_injection},
	{"many_views", test_many_views},
	{"multiappend", test_multiappend},
	{"trigram_ascii", test_trigram_ascii},
	{"body_crc", test_body_crc},
	{"blob_head", test_blob_head},
	{"bulk_index", test_bulk_index},
	{NULL, NULL},
};

/* ---- postgres only ------------------------------------------------ */

static void count_report(void *ctx, const char *line)
{
	(void)line;
	(*(int *)ctx)++;
}

/* A body file changed under its name: a temporary error, never the
 * wrong bytes, and check names it. */
static void test_pg_damaged_body(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 31);
	struct store_error err;
	const char *msg = "Subject: d\r\n\r\nintact bytes\r\n";
	uint32_t uid = append(u, "INBOX", msg, 0);
	CHECK_INT(uid, 1);
	struct store_blob b;
	CHECK_INT(store_blob_open(u, "INBOX", uid, &b, &err), 0);
	CHECK_MEM(b.data, b.len, msg, strlen(msg));
	store_blob_close(&b);
	int found = 0;
	CHECK_INT(store_check(store, 31, false, count_report, &found, &err), 0);
	CHECK_INT(found, 0);
	char *cmd = xasprintf("for f in '%s'/[0-9a-f][0-9a-f]/*; do printf 'intact bytez\\r\\n'"
			      " > \"$f\"; done", blob_dir);
	CHECK_INT(system(cmd), 0);
	free(cmd);
	CHECK_INT(store_blob_open(u, "INBOX", uid, &b, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_TEMP);
	CHECK_INT(store_check(store, 31, true, count_report, &found, &err), -1);
	CHECK_INT(found, 1);
	store_user_unref(&u);
	teardown(&store);
}

/* Two nodes (two stores on one database) append to one mailbox at once:
 * every UID is taken once, and each node's UIDs grow in its own order. */
struct node_arg {
	struct store *store;
	uint32_t uids[40];
	int n;
};

static void *node_main(void *p)
{
	struct node_arg *a = p;
	struct store_user *u = user_open(a->store, 41);
	for (int i = 0; i < 40; i++)
		a->uids[a->n++] = append(u, "INBOX", "Subject: n\r\n\r\nx\r\n", 0);
	store_user_unref(&u);
	return NULL;
}

static void test_pg_two_nodes(void)
{
	struct store *store = setup();
	struct store_settings set = other_settings();
	struct store *other;
	struct store_error err;
	CHECK_INT(store_open(&set, &other, &err), 0);
	struct store_user *u = user_open(store, 41);
	struct node_arg a[4] = {{store, {0}, 0}, {other, {0}, 0},
				{store, {0}, 0}, {other, {0}, 0}};
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, node_main, &a[i]);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	bool seen[161] = {false};
	int dup = 0, order = 0;
	for (int i = 0; i < 4; i++) {
		for (int k = 0; k < a[i].n; k++) {
			uint32_t x = a[i].uids[k];
			if (x == 0 || x > 160 || seen[x])
				dup++;
			else
				seen[x] = true;
			if (k > 0 && x <= a[i].uids[k - 1])
				order++;
		}
	}
	CHECK_INT(dup, 0);
	CHECK_INT(order, 0);
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.messages, 160);
	CHECK_INT(info.uidnext, 161);
	store_mailbox_info_free(&info);
	store_user_unref(&u);
	store_close(&other);
	teardown(&store);
}

/* The hub across nodes: what store B commits reaches store A's
 * subscribers and views (LISTEN/NOTIFY after the COMMIT). */
struct xhub {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int appends;
	uint64_t modseq;
};

static void xhub_cb(void *ctx, const struct store_change *ch)
{
	struct xhub *h = ctx;
	pthread_mutex_lock(&h->mu);
	if (ch->kind == STORE_CHANGE_APPEND)
		h->appends++;
	h->modseq = ch->modseq;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mu);
}

static void test_pg_hub(void)
{
	struct store *a = setup();
	struct store_settings set = other_settings();
	struct store *b;
	struct store_error err;
	CHECK_INT(store_open(&set, &b, &err), 0);
	store_start_background(a);
	struct store_user *ua = user_open(a, 12), *ub = user_open(b, 12);
	struct store_view *v;
	CHECK_INT(store_view_open(ua, "INBOX", 0, &v, &err), 0);
	struct xhub h = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			 0, 0};
	struct store_subscription *sub;
	CHECK_INT(store_subscribe(a, 12, xhub_cb, &h, &sub), 0);
	/* until A's listener is up and hears one (it connects on its own
	 * thread): B appends every 200 ms, for at most a minute */
	int sent = 0;
	pthread_mutex_lock(&h.mu);
	for (int i = 0; i < 300 && h.appends == 0; i++) {
		pthread_mutex_unlock(&h.mu);
		sent += append(ub, "INBOX", "Subject: x\r\n\r\nx\r\n", 0) != 0;
		pthread_mutex_lock(&h.mu);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 200000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		if (h.appends == 0)
			pthread_cond_timedwait(&h.cond, &h.mu, &until);
	}
	int heard = h.appends;
	pthread_mutex_unlock(&h.mu);
	CHECK(heard > 0);
	/* the view knows there is something to sync, and finds it all */
	CHECK(store_view_has_changes(v));
	CHECK_INT(store_view_sync(v, true, NULL, NULL, &err), 0);
	CHECK(store_view_count(v) >= (uint32_t)heard);
	/* a flag change on B: heard with its modseq */
	pthread_mutex_lock(&h.mu);
	uint64_t before = h.modseq;
	pthread_mutex_unlock(&h.mu);
	struct store_uid_range r = {1, 1};
	struct store_flag_change ch = {.mode = STORE_FLAGS_ADD,
				       .flags = STORE_FLAG_FLAGGED};
	uint64_t m = 0;
	ch.modseq_r = &m;
	CHECK_INT(store_flags_update(ub, "INBOX", &r, 1, &ch, NULL, NULL, NULL,
				     NULL, &err), 0);
	pthread_mutex_lock(&h.mu);
	for (int i = 0; i < 600 && h.modseq < m; i++) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec++;
		pthread_cond_timedwait(&h.cond, &h.mu, &until);
	}
	CHECK(h.modseq == m && m > before);
	pthread_mutex_unlock(&h.mu);
	CHECK(sent >= heard);
	store_unsubscribe(&sub);
	store_view_close(&v);
	store_user_unref(&ua);
	store_user_unref(&ub);
	store_close(&b);
	teardown(&a);
}

/* NOTIFY payloads: only well-formed ones count. */
static void test_pg_notify_parse(void)
{
	struct store_change in[2] = {{7, 3, STORE_CHANGE_APPEND, 42},
				     {7, 0, STORE_CHANGE_MAILBOXES, 42}};
	struct buf b;
	buf_init(&b, 0);
	pg_notify_format(0xabcdefULL, in, 2, &b);
	struct store_change out[4];
	size_t n = 0;
	uint64_t node = 0;
	CHECK_INT(pg_notify_parse(b.data, &node, out, 4, &n), 0);
	CHECK_INT(node, 0xabcdef);
	CHECK_INT(n, 2);
	CHECK_INT(out[0].user_id, 7);
	CHECK_INT(out[0].mailbox_id, 3);
	CHECK_INT(out[0].kind, STORE_CHANGE_APPEND);
	CHECK_INT(out[1].kind, STORE_CHANGE_MAILBOXES);
	CHECK_INT(out[1].modseq, 42);
	CHECK_INT(pg_notify_parse(b.data, &node, out, 1, &n), -1);
	CHECK_INT(pg_notify_parse("00ab 7 0 0:5", &node, out, 4, &n), 0);
	CHECK_INT(out[0].kind, STORE_CHANGE_LOGOUT);
	buf_free(&b);
	static const char *const bad[] = {
		"", "x", "00ab 7 42", "00ab 7 42 ", "00ab 0 42 1:1",
		"00ab 7 42 1:1 ", "00ab 7 42 1:99", "00ab 7 42 1:5", "00ab 7 42 1:8",
		"00ab 7 0 0:5 0:5", "00ab 7 0 0:1 0:5", "00ab 7 42 0:5",
		"00ab 7 42 4294967296:1", "00ab -7 42 1:1", "00AB 7 42 1:1",
		"00ab 7 99999999999999999999999 1:1", "00ab 7 42 1;1",
		"00ab  7 42 1:1", "00ab 7 42 1:1\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (pg_notify_parse(bad[i], &node, out, 4, &n) != -1) {
			fprintf(stderr, "accepted \"%s\"\n", bad[i]);
			CHECK(!"a malformed payload accepted");
		}
	}
}

/* ---- the blob collector (both drivers) ---------------------------- */

static int pg_sql(const char *sql)
{
	PGconn *db = PQconnectdb(pg_conninfo);
	PGresult *r = PQexec(db, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
		 PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "%s: %s\n", sql, PQerrorMessage(db));
	PQclear(r);
	PQfinish(db);
	return ok ? 0 : -1;
}

static bool readable(struct store_user *u, const char *mbox, uint32_t uid,
		     const char *msg)
{
	struct store_blob b;
	struct store_error err;
	if (store_blob_open(u, mbox, uid, &b, &err) < 0) {
		fprintf(stderr, "UID %u: %s\n", uid, err.msg);
		return false;
	}
	bool same = msg == NULL || (b.len == strlen(msg) &&
				    memcmp(b.data, msg, b.len) == 0);
	store_blob_close(&b);
	return same;
}

static void expunge_uid(struct store_user *u, const char *mbox, uint32_t uid)
{
	struct store_uid_range r = {uid, uid};
	uint32_t *uids = NULL;
	size_t n = 0;
	struct store_error err;
	CHECK_INT(store_expunge(u, mbox, &r, 1, true, &uids, &n, &err), 0);
	CHECK_INT((int)n, 1);
	free(uids);
}

/* Bodies no row names are removed past their grace period, never one a
 * row names; an upload whose commit never came is collected; a commit
 * naming a body collected meanwhile is refused (TEMP), and the same bytes
 * stored again are written anew. */
static void test_pg_collect(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 51);
	struct store_error err;
	const char *a = "Subject: a\r\n\r\ncollect me\r\n";
	const char *b = "Subject: b\r\n\r\nkeep me\r\n";
	uint32_t ua = append(u, "INBOX", a, 0), ub = append(u, "INBOX", b, 0);
	CHECK_INT(ua, 1);
	CHECK_INT(ub, 2);
	/* a copy in another mailbox names the same body */
	CHECK_INT(store_mailbox_create(u, "Keep", 0, &err), 0);
	uint32_t uk = append(u, "Keep", b, 0);
	CHECK_INT(uk, 1);
	expunge_uid(u, "INBOX", ua);
	expunge_uid(u, "INBOX", ub);
	struct store_collect_report rep;
	/* in their grace period: nothing goes */
	CHECK_INT(store_blobs_collect(store, 3600, &rep, &err), 0);
	CHECK_INT((int)rep.removed, 0);
	CHECK_INT((int)rep.waiting, 1);
	CHECK(!rep.busy);
	/* past it: a's body goes, b's (still named by Keep) stays */
	CHECK_INT(store_blobs_collect(store, 0, &rep, &err), 0);
	CHECK_INT((int)rep.removed, 1);
	CHECK_INT((int)rep.bytes, (int)strlen(a));
	CHECK_INT((int)rep.waiting, 0);
	CHECK(readable(u, "Keep", uk, b));
	/* the same bytes again: written anew, readable */
	uint32_t ua2 = append(u, "INBOX", a, 0);
	CHECK_INT(ua2, 3);
	CHECK(readable(u, "INBOX", ua2, a));
	/* an upload whose commit never came */
	struct store_body *body;
	const char *orphan = "Subject: o\r\n\r\nnever committed\r\n";
	CHECK_INT(store_body_create(store, &body, &err), 0);
	CHECK_INT(store_body_write(body, orphan, strlen(orphan), &err), 0);
	CHECK_INT(store_body_finish(body, &err), 0);
	store_body_unref(&body);
	CHECK_INT(store_blobs_collect(store, 0, &rep, &err), 0);
	CHECK_INT((int)rep.removed, 1);
	/* a commit naming a body collected after its upload: refused, and
	 * nothing is in the mailbox */
	const char *late = "Subject: l\r\n\r\ncommitted too late\r\n";
	CHECK_INT(store_body_create(store, &body, &err), 0);
	CHECK_INT(store_body_write(body, late, strlen(late), &err), 0);
	CHECK_INT(store_body_finish(body, &err), 0);
	CHECK_INT(store_blobs_collect(store, 0, &rep, &err), 0);
	CHECK_INT((int)rep.removed, 1);
	uint32_t uid = 0;
	CHECK_INT(store_body_deliver(body, u, "INBOX", NULL, 0, NULL, &uid,
				     NULL, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_TEMP);
	store_body_unref(&body);
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.messages, 1);
	store_mailbox_info_free(&info);
	/* ... the client tries again: stored */
	CHECK_INT(append(u, "INBOX", late, 0), 4);
	CHECK(readable(u, "INBOX", 4, late));
	/* the user deleted: the bodies only it named go */
	store_user_unref(&u);
	CHECK_INT(store_user_delete(store, 51, &err), 0);
	CHECK_INT(store_blobs_collect(store, 0, &rep, &err), 0);
	CHECK_INT((int)rep.removed, 3);
	teardown(&store);
}

/* One collector at a time: the lease, held by another node, makes a
 * pass do nothing until it expires (in the database's time). */
static void test_pg_collect_lease(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 52);
	struct store_error err;
	const char *a = "Subject: a\r\n\r\nleased\r\n";
	uint32_t ua = append(u, "INBOX", a, 0);
	expunge_uid(u, "INBOX", ua);
	CHECK_INT(pg_sql("INSERT INTO loft_lease VALUES ('blob_collector', 7,"
			 " now() + interval '1 hour')"), 0);
	struct store_collect_report rep;
	CHECK_INT(store_blobs_collect(store, 0, &rep, &err), 0);
	CHECK(rep.busy);
	CHECK_INT((int)rep.removed, 0);
	CHECK_INT(pg_sql("UPDATE loft_lease SET expires = now() - interval"
			 " '1 second'"), 0);
	CHECK_INT(store_blobs_collect(store, 0, &rep, &err), 0);
	CHECK(!rep.busy);
	CHECK_INT((int)rep.removed, 1);
	store_user_unref(&u);
	teardown(&store);
}

/* Two nodes collecting with no grace at all while a third appends and
 * expunges: every message acknowledged stays readable (an append may be
 * refused, TEMP, when its body was collected before its commit: the
 * client tries again). */
struct collect_arg {
	struct store *store;
	int passes, busy;
	uint64_t removed;
	volatile bool *stop;
};

static void *collect_main(void *p)
{
	struct collect_arg *a = p;
	while (!*a->stop) {
		struct store_collect_report rep;
		struct store_error err;
		if (store_blobs_collect(a->store, 0, &rep, &err) == 0) {
			a->passes++;
			a->busy += rep.busy;
			a->removed += rep.removed;
		}
		/* a pace: with no grace at all a collector that never
		 * rests would take every upload before its commit */
		usleep(20000);
	}
	return NULL;
}

static void test_pg_collect_race(void)
{
	struct store *store = setup();
	struct store_settings set = other_settings();
	struct store *other;
	struct store_error err;
	CHECK_INT(store_open(&set, &other, &err), 0);
	struct store_user *u = user_open(store, 53);
	volatile bool stop = false;
	struct collect_arg ca[2] = {{store, 0, 0, 0, &stop},
				    {other, 0, 0, 0, &stop}};
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, collect_main, &ca[i]);
	char msgs[30][64];
	uint32_t uids[30] = {0};
	int refused = 0, acked = 0;
	for (int i = 0; i < 30; i++) {
		snprintf(msgs[i], sizeof(msgs[i]), "Subject: r%d\r\n\r\nbody"
			 " %d\r\n", i, i % 10);
		struct store_append_params p = {0};
		for (int tries = 0; uids[i] == 0 && tries < 100; tries++) {
			if (store_append(u, "INBOX", msgs[i], strlen(msgs[i]), &p,
					 &uids[i], NULL, &err) < 0) {
				CHECK_INT(err.kind, STORE_ERR_TEMP);
				refused++;
			}
		}
		if (uids[i] != 0)
			acked++;
		if (i % 3 == 0 && uids[i] != 0)
			expunge_uid(u, "INBOX", uids[i]);
	}
	stop = true;
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	int lost = 0;
	for (int i = 0; i < 30; i++)
		if (i % 3 != 0 && uids[i] != 0 &&
		    !readable(u, "INBOX", uids[i], msgs[i]))
			lost++;
	CHECK_INT(lost, 0);
	/* refusals are allowed (TEMP, tried again), not a stalled store */
	CHECK(acked >= 15);
	CHECK(ca[0].passes + ca[1].passes > 2);
	CHECK(ca[0].removed + ca[1].removed > 0);
	fprintf(stderr, "collect race: %d + %d passes (%d + %d busy), %llu"
		" removed, %d of 30 appends acknowledged, %d refusals\n",
		ca[0].passes, ca[1].passes, ca[0].busy, ca[1].busy,
		(unsigned long long)(ca[0].removed + ca[1].removed), acked,
		refused);
	store_user_unref(&u);
	store_close(&other);
	teardown(&store);
}

/* The copies of one delivery (delivery.c: one body, a transaction per
 * recipient, in threads) commit side by side. Recipient 56's copy is
 * held after its claim of the body (its INBOX row locked from outside,
 * which its msg insert needs); recipient 57's copy of the same body
 * still commits meanwhile: the body's blob_object row is claimed FOR
 * KEY SHARE and no count on it is raised per copy. (Claimed FOR UPDATE
 * with refs raised by a trigger, 57 waited for 56's COMMIT.) */
struct rcpt_arg {
	struct store_body *body;
	struct store_user *u;
	uint32_t uid;
	int ret;
	atomic_bool done;
};

static void *rcpt_main(void *p)
{
	struct rcpt_arg *a = p;
	struct store_error err;
	a->ret = store_body_deliver(a->body, a->u, "INBOX", NULL, 0, NULL,
				    &a->uid, NULL, &err);
	if (a->ret < 0)
		fprintf(stderr, "deliver: %s\n", err.msg);
	atomic_store(&a->done, true);
	return NULL;
}

static bool wait_for(atomic_bool *flag, int ms)
{
	for (int i = 0; i < ms / 10 && !atomic_load(flag); i++)
		usleep(10000);
	return atomic_load(flag);
}

static void test_pg_rcpt_overlap(void)
{
	struct store *store = setup();
	struct store_error err;
	struct store_user *held = user_open(store, 56), *free_ = user_open(store, 57);
	/* both accounts and their INBOX made */
	CHECK(append(held, "INBOX", "Subject: x\r\n\r\nfirst\r\n", 0) == 1);
	CHECK(append(free_, "INBOX", "Subject: x\r\n\r\nfirst\r\n", 0) == 1);
	const char *m = "Subject: both\r\n\r\nto two recipients\r\n";
	struct store_body *body;
	CHECK_INT(store_body_create(store, &body, &err), 0);
	CHECK_INT(store_body_write(body, m, strlen(m), &err), 0);
	CHECK_INT(store_body_finish(body, &err), 0);
	PGconn *db = PQconnectdb(pg_conninfo);
	PGresult *r = PQexec(db, "BEGIN; SELECT 1 FROM mailbox WHERE"
			     " user_id = 56 AND name = 'INBOX' FOR UPDATE");
	CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
	PQclear(r);
	struct rcpt_arg a = {.body = body, .u = held}, b = {.body = body,
							    .u = free_};
	atomic_init(&a.done, false);
	atomic_init(&b.done, false);
	pthread_t ta, tb;
	pthread_create(&ta, NULL, rcpt_main, &a);
	/* 56's copy waits on the INBOX row (after its claim) */
	bool waiting = false;
	for (int i = 0; i < 500 && !waiting; i++) {
		/* (its query column may still show the statement before) */
		r = PQexec(db, "SELECT count(*) FROM pg_stat_activity WHERE"
			   " wait_event_type = 'Lock'");
		waiting = PQresultStatus(r) == PGRES_TUPLES_OK &&
			  atoi(PQgetvalue(r, 0, 0)) > 0;
		PQclear(r);
		if (!waiting)
			usleep(10000);
	}
	if (!waiting) {
		r = PQexec(db, "SELECT state || ' ' || coalesce(wait_event_type,"
			   " '-') || ' ' || left(query, 80) FROM pg_stat_activity"
			   " WHERE backend_type = 'client backend'");
		for (int i = 0; i < PQntuples(r); i++)
			fprintf(stderr, "  %s\n", PQgetvalue(r, i, 0));
		PQclear(r);
		fprintf(stderr, "  a done %d ret %d\n", atomic_load(&a.done), a.ret);
	}
	CHECK(waiting);
	pthread_create(&tb, NULL, rcpt_main, &b);
	bool b_first = wait_for(&b.done, 4000);
	CHECK(b_first);
	CHECK(!atomic_load(&a.done));
	r = PQexec(db, "COMMIT");
	PQclear(r);
	PQfinish(db);
	pthread_join(tb, NULL);
	pthread_join(ta, NULL);
	CHECK_INT(a.ret, 0);
	CHECK_INT(b.ret, 0);
	CHECK_INT(a.uid, 2);
	CHECK_INT(b.uid, 2);
	store_body_unref(&body);
	CHECK(readable(held, "INBOX", 2, m));
	CHECK(readable(free_, "INBOX", 2, m));
	/* named twice, counted nowhere: the collector keeps it; once both
	 * copies are expunged it goes */
	struct store_collect_report rep;
	CHECK_INT(store_blobs_collect(store, 0, &rep, &err), 0);
	CHECK_INT((int)rep.removed, 0);
	CHECK_INT((int)rep.waiting, 0);
	CHECK(readable(free_, "INBOX", 2, m));
	expunge_uid(held, "INBOX", 2);
	CHECK_INT(store_blobs_collect(store, 0, &rep, &err), 0);
	CHECK_INT((int)rep.removed, 0);
	CHECK(readable(free_, "INBOX", 2, m));
	expunge_uid(free_, "INBOX", 2);
	CHECK_INT(store_blobs_collect(store, 0, &rep, &err), 0);
	CHECK_INT((int)rep.removed, 1);
	store_user_unref(&held);
	store_user_unref(&free_);
	teardown(&store);
}

/* MULTIAPPEND on postgres: one transaction, a savepoint per message;
 * over quota half way, those before are stored and the rest not. */
static void test_pg_multiappend(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 66);
	struct store_error err;
	uint32_t uids[8];
	int ret;
	multi_commit(u, 5, "multi", uids, &err, &ret);
	CHECK_INT(ret, 0);
	for (int i = 0; i < 5; i++)
		CHECK_INT(uids[i], 1 + (uint32_t)i);
	struct store_blob b;
	CHECK_INT(store_blob_open(u, "INBOX", 3, &b, &err), 0);
	CHECK_MEM(b.data, b.len, "Subject: multi 2\r\n\r\nbody 2\r\n", 28);
	store_blob_close(&b);
	struct store_fetch *f;
	const struct store_msg *m;
	struct store_uid_range r2 = {2, 2};
	CHECK_INT(store_fetch_begin(u, "INBOX", &r2, 1, STORE_FETCH_FLAGS, &f,
				    &err), 0);
	CHECK_INT(store_fetch_next(f, &m, &err), 1);
	CHECK_INT(m->flags & STORE_FLAG_FLAGGED, STORE_FLAG_FLAGGED);
	store_fetch_end(&f);
	test_limits.quota_messages = 7;
	multi_commit(u, 4, "quota", uids, &err, &ret);
	CHECK_INT(ret, -1);
	CHECK_INT(err.kind, STORE_ERR_QUOTA);
	CHECK_INT(uids[0], 6);
	CHECK_INT(uids[1], 7);
	CHECK_INT(uids[2], 0);
	CHECK_INT(uids[3], 0);
	test_limits.quota_messages = 0;
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.messages, 7);
	CHECK_INT(info.uidnext, 8);
	store_mailbox_info_free(&info);
	store_user_unref(&u);
	teardown(&store);
}

/* One integer from a query on the test database. */
static long long pg_ll(const char *sql)
{
	PGconn *db = PQconnectdb(pg_conninfo);
	PGresult *r = PQexec(db, sql);
	long long v = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		v = atoll(PQgetvalue(r, 0, 0));
	else
		fprintf(stderr, "%s: %s\n", sql, PQerrorMessage(db));
	PQclear(r);
	PQfinish(db);
	return v;
}

/* STATUS of mbox against its rows counted now. */
static void counts_match(struct store_user *u, int64_t id, const char *mbox)
{
	struct store_mailbox_info info = status(u, mbox);
	static const char *const what[] = {
		"count(*)", "count(*) FILTER (WHERE (m.flags & 1) = 0)",
		"count(*) FILTER (WHERE (m.flags & 8) <> 0)",
		"coalesce(sum(m.size), 0)"};
	long long got[] = {info.messages, info.unseen, info.deleted,
			   (long long)info.size};
	for (size_t i = 0; i < 4; i++) {
		char sql[320];
		snprintf(sql, sizeof(sql), "SELECT %s FROM msg m JOIN mailbox mb"
			 " ON mb.user_id = m.user_id AND mb.id = m.mailbox"
			 " WHERE mb.user_id = %lld AND mb.name = '%s'", what[i],
			 (long long)id, mbox);
		long long want = pg_ll(sql);
		if (got[i] != want)
			fprintf(stderr, "%s: %s is %lld, not %lld\n", mbox,
				what[i], got[i], want);
		CHECK(got[i] == want);
	}
	store_mailbox_info_free(&info);
}

/* The IMAP counts (messages, unseen, deleted, size) are mailbox columns
 * kept by a trigger on msg (schema step 10), not counted per STATUS:
 * right after appends, flag changes, COPY, MOVE, EXPUNGE and RENAME of
 * INBOX; check names a wrong one and repairs it; a database from before
 * the step gets them at the upgrade. */
static void test_pg_counts(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 67);
	struct store_error err;
	static const char *const boxes[] = {"INBOX", "Archive", "Drafts",
					    "Old"};
	unsigned fl[] = {0, STORE_FLAG_SEEN, STORE_FLAG_DELETED,
			 STORE_FLAG_SEEN | STORE_FLAG_DELETED, 0, 0};
	for (int i = 0; i < 6; i++) {
		/* sizes differ: the size count is checked too */
		char *m = big_message("n", 100 + 10 * (size_t)i);
		append(u, "INBOX", m, fl[i]);
		free(m);
	}
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.messages, 6);
	CHECK_INT(info.unseen, 4);
	CHECK_INT(info.deleted, 2);
	store_mailbox_info_free(&info);
	counts_match(u, 67, "INBOX");
	/* flags: +\Seen on 1:2, -\Deleted on 3, \Flagged alone changes none */
	struct store_uid_range r12 = {1, 2}, r3 = {3, 3}, r46 = {4, 6};
	struct store_flag_change seen = {.mode = STORE_FLAGS_ADD,
					 .flags = STORE_FLAG_SEEN};
	struct store_flag_change undel = {.mode = STORE_FLAGS_REMOVE,
					  .flags = STORE_FLAG_DELETED};
	struct store_flag_change flag = {.mode = STORE_FLAGS_ADD,
					 .flags = STORE_FLAG_FLAGGED};
	CHECK_INT(store_flags_update(u, "INBOX", &r12, 1, &seen, NULL, NULL,
				     NULL, NULL, &err), 0);
	CHECK_INT(store_flags_update(u, "INBOX", &r3, 1, &undel, NULL, NULL,
				     NULL, NULL, &err), 0);
	CHECK_INT(store_flags_update(u, "INBOX", &r46, 1, &flag, NULL, NULL,
				     NULL, NULL, &err), 0);
	info = status(u, "INBOX");
	CHECK_INT(info.unseen, 3);
	CHECK_INT(info.deleted, 1);
	store_mailbox_info_free(&info);
	counts_match(u, 67, "INBOX");
	/* COPY 1:6 to Archive, MOVE 5:6 to Drafts, EXPUNGE INBOX */
	struct store_uid_range all = {1, 6}, r56 = {5, 6};
	uint32_t uv, *src = NULL, *dst = NULL;
	size_t n = 0;
	CHECK_INT(store_copy(u, "INBOX", &all, 1, "Archive", false, &uv, &src,
			     &dst, &n, &err), 0);
	free(src);
	free(dst);
	CHECK_INT(store_copy(u, "INBOX", &r56, 1, "Drafts", true, &uv, &src,
			     &dst, &n, &err), 0);
	free(src);
	free(dst);
	uint32_t *gone = NULL;
	CHECK_INT(store_expunge(u, "INBOX", NULL, 0, false, &gone, &n, &err), 0);
	CHECK_INT((int)n, 1);
	free(gone);
	for (size_t i = 0; i < 3; i++)
		counts_match(u, 67, boxes[i]);
	/* RENAME INBOX: its messages move to Old, INBOX is empty */
	CHECK_INT(store_mailbox_rename(u, "INBOX", "Old", &err), 0);
	for (size_t i = 0; i < 4; i++)
		counts_match(u, 67, boxes[i]);
	info = status(u, "Old");
	CHECK_INT(info.messages, 3);
	store_mailbox_info_free(&info);
	int lines = 0;
	CHECK_INT(store_check(store, 67, false, count_report, &lines, &err), 0);
	CHECK_INT(lines, 0);
	/* a wrong count: named, then repaired */
	CHECK_INT(pg_sql("UPDATE mailbox SET unseen = unseen + 5"
			 " WHERE user_id = 67 AND name = 'Archive'"), 0);
	CHECK_INT(store_check(store, 67, false, count_report, &lines, &err), -1);
	CHECK_INT(lines, 1);
	CHECK_INT(store_check(store, 67, true, count_report, &lines, &err), 0);
	counts_match(u, 67, "Archive");
	store_user_unref(&u);
	/* a database at step 9: the counts made from the rows at the
	 * upgrade, kept from then on */
	store_close(&store);
	CHECK_INT(pg_sql("ALTER TABLE mailbox DROP COLUMN messages,"
			 " DROP COLUMN unseen, DROP COLUMN deleted,"
			 " DROP COLUMN size; DROP TRIGGER mcount ON msg;"
			 " DROP FUNCTION loft_mcount(); DROP INDEX msg_unseen;"
			 " DELETE FROM loft_schema WHERE version = 10"), 0);
	/* and before step 11: each blob row counted in refs by trigger */
	CHECK_INT(pg_sql("DROP TRIGGER blob_gone ON blob;"
			 " DROP FUNCTION loft_blob_gone(); DROP INDEX blob_sha;"
			 " CREATE TRIGGER blob_ref AFTER INSERT OR DELETE ON blob"
			 " FOR EACH ROW EXECUTE FUNCTION loft_blob_ref();"
			 " UPDATE blob_object o SET refs = n.n FROM (SELECT"
			 " sha256, count(*) n FROM blob GROUP BY sha256) n"
			 " WHERE o.sha256 = n.sha256;"
			 " DELETE FROM loft_schema WHERE version >= 11"), 0);
	CHECK(pg_ll("SELECT sum(refs) FROM blob_object") > 0);
	struct store_settings set = other_settings();
	CHECK_INT(store_open(&set, &store, &err), 0);
	CHECK_INT(pg_ll("SELECT max(version) FROM loft_schema"), 12);
	/* step 11: refs no longer counts blob rows; every body still
	 * named is kept */
	CHECK_INT(pg_ll("SELECT sum(refs) FROM blob_object"), 0);
	struct store_collect_report rep;
	CHECK_INT(store_blobs_collect(store, 0, &rep, &err), 0);
	CHECK_INT((int)rep.removed, 0);
	CHECK_INT((int)rep.waiting, 0);
	u = user_open(store, 67);
	for (size_t i = 0; i < 4; i++)
		counts_match(u, 67, boxes[i]);
	append(u, "Archive", "Subject: after\r\n\r\nupgrade\r\n", 0);
	counts_match(u, 67, "Archive");
	store_user_unref(&u);
	teardown(&store);
}

/* A COMMIT whose answer was lost with its connection: resolved on a
 * fresh one once the session that sent it has ended (committed: the
 * APPEND succeeds, once; not committed: TEMP, nothing stored). */
static void test_pg_lost_commit(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 61);
	const char *m1 = "Subject: c\r\n\r\ncommitted, answer lost\r\n";
	const char *m2 = "Subject: c\r\n\r\nnever committed\r\n";
	atomic_store(&PGS(store)->test_cut_commit, 1);
	CHECK_INT(append(u, "INBOX", m1, 0), 1);
	CHECK(readable(u, "INBOX", 1, m1));
	/* known not to have committed: run again (pg-retry.c), once */
	atomic_store(&PGS(store)->test_cut_commit, 2);
	CHECK_INT(append(u, "INBOX", m2, 0), 2);
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.messages, 2);
	CHECK_INT(info.uidnext, 3);
	store_mailbox_info_free(&info);
	CHECK(readable(u, "INBOX", 2, m2));
	store_user_unref(&u);
	teardown(&store);
}

/* A connection lost in the middle of a transaction: the call runs again
 * on a fresh one and succeeds, its effect there once; lost every time,
 * it gives up after postgres_timeout with a temporary error and changes
 * nothing. */
static void test_pg_retry(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 63);
	struct store_error err;
	const char *m = "Subject: r\r\n\r\ncut in the middle\r\n";
	/* the first statement after the account's row lock */
	atomic_store(&PGS(store)->test_cut_statement, 2);
	CHECK_INT(append(u, "INBOX", m, 0), 1);
	CHECK_INT(atomic_load(&PGS(store)->test_cut_statement), 0);
	CHECK(readable(u, "INBOX", 1, m));
	struct store_uid_range one = {1, 1};
	struct store_flag_change ch = {.mode = STORE_FLAGS_ADD,
				       .flags = STORE_FLAG_FLAGGED};
	uint32_t *changed;
	size_t nc;
	atomic_store(&PGS(store)->test_cut_statement, 3);
	CHECK_INT(store_flags_update(u, "INBOX", &one, 1, &ch, &changed, &nc,
				     NULL, NULL, &err), 0);
	CHECK_INT(nc, 1);
	free(changed);
	/* it was done, once: nothing left to change */
	CHECK_INT(store_flags_update(u, "INBOX", &one, 1, &ch, &changed, &nc,
				     NULL, NULL, &err), 0);
	CHECK_INT(nc, 0);
	free(changed);
	CHECK_INT(store_mailbox_create(u, "Cut", 0, &err), 0);
	/* a new account's first open (its default mailboxes) */
	atomic_store(&PGS(store)->test_cut_statement, 2);
	struct store_user *v = user_open(store, 64);
	CHECK_INT(atomic_load(&PGS(store)->test_cut_statement), 0);
	struct store_mailbox_info vi = status(v, "INBOX");
	CHECK_INT(vi.messages, 0);
	store_mailbox_info_free(&vi);
	store_user_unref(&v);
	/* never gets through: after postgres_timeout (1 s here) the
	 * retryable error of a database that cannot be reached */
	unsigned timeout = PGS(store)->timeout;
	PGS(store)->timeout = 1;
	atomic_store(&PGS(store)->test_cut_statement, -1);
	time_t t0 = time(NULL);
	CHECK_INT(store_mailbox_create(u, "Never", 0, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_UNAVAILABLE);
	CHECK(time(NULL) - t0 <= 3);
	atomic_store(&PGS(store)->test_cut_statement, 0);
	PGS(store)->timeout = timeout;
	struct store_mailbox_info info;
	CHECK_INT(store_mailbox_status(u, "Never", &info, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	info = status(u, "INBOX");
	CHECK_INT(info.messages, 1);
	store_mailbox_info_free(&info);
	store_user_unref(&u);
	teardown(&store);
}

/* The server ends every connection of the node (a restart, an admin's
 * pg_terminate_backend): the next calls reconnect, no error reaches the
 * caller. */
static void test_pg_reconnect(void)
{
	struct store *store = setup();
	store_start_background(store);
	struct store_user *u = user_open(store, 62);
	const char *m = "Subject: r\r\n\r\nafter the restart\r\n";
	CHECK_INT(append(u, "INBOX", m, 0), 1);
	/* with a timeout, pg_terminate_backend waits until each backend
	 * has exited, as a restart has them gone before anyone reconnects
	 * (without it the next call could find a connection whose backend
	 * is still on its way out: failed once at load 15) */
	CHECK_INT(pg_sql("SELECT pg_terminate_backend(pid, 30000) FROM"
			 " pg_stat_activity WHERE application_name = 'loftd'"
			 " AND pid <> pg_backend_pid()"), 0);
	CHECK_INT(append(u, "INBOX", m, 0), 2);
	CHECK(readable(u, "INBOX", 1, m));
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.messages, 2);
	store_mailbox_info_free(&info);
	store_user_unref(&u);
	teardown(&store);
}

/* The hex SHA-256 of s (the key of an appended body). */
static void sha_hex(const char *s, size_t len, char out[65])
{
	unsigned char sha[32];
	unsigned n = 0;
	EVP_Digest(s, len, sha, &n, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", sha[i]);
}

/* The test's own client of the private S3 server. */
static struct s3 *s3_client(uint64_t part_size)
{
	FILE *f = fopen(s3_secret, "r");
	char secret[128] = "";
	CHECK(f != NULL && fgets(secret, sizeof(secret), f) != NULL);
	if (f != NULL)
		fclose(f);
	secret[strcspn(secret, "\r\n")] = '\0';
	struct s3_settings ss = {.endpoint = s3_endpoint, .bucket = TEST_BUCKET,
				 .access_key = s3_key, .secret_key = secret,
				 .timeout = 20, .part_size = part_size};
	struct s3 *s3 = NULL;
	char *error = NULL;
	CHECK_INT(s3_open(&ss, &s3, &error), 0);
	free(error);
	return s3;
}

/* PUTs len bytes under key behind the store's back (md5_flip: a
 * Content-MD5 that does not match); the result. */
static enum s3_result s3_put_raw(const char *key, const char *bytes,
				 size_t len, bool md5_flip, char **error_r)
{
	struct s3 *s3 = s3_client(0);
	char tmpl[] = "/tmp/loft-s3-raw-XXXXXX";
	int fd = mkstemp(tmpl);
	CHECK(fd >= 0);
	unlink(tmpl);
	CHECK_INT((int)write(fd, bytes, len), (int)len);
	unsigned char md5[16];
	unsigned n = 0;
	EVP_Digest(bytes, len, md5, &n, EVP_md5(), NULL);
	if (md5_flip)
		md5[0] ^= 1;
	enum s3_result r = s3_put_fd(s3, key, fd, len, md5, error_r);
	close(fd);
	s3_close(&s3);
	return r;
}

/* blobs = s3: an object changed under its name is a temporary error,
 * never the wrong bytes, and check names it. */
static void test_s3_damaged(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 54);
	struct store_error err;
	const char *msg = "Subject: s\r\n\r\nintact object\r\n";
	uint32_t uid = append(u, "INBOX", msg, 0);
	CHECK(readable(u, "INBOX", uid, msg));
	int found = 0;
	CHECK_INT(store_check(store, 54, false, count_report, &found, &err), 0);
	CHECK_INT(found, 0);
	/* the same key (an appended body is the whole message), other
	 * bytes */
	char key[65];
	sha_hex(msg, strlen(msg), key);
	const char *bad = "Subject: s\r\n\r\nintact objecT\r\n";
	char *error = NULL;
	CHECK_INT(s3_put_raw(key, bad, strlen(bad), false, &error), S3_OK);
	free(error);
	/* a Content-MD5 that does not match what is sent: refused */
	CHECK_INT(s3_put_raw(key, bad, strlen(bad), true, &error), S3_FAIL);
	CHECK(error != NULL && strstr(error, "BadDigest") != NULL);
	free(error);
	struct store_blob b;
	CHECK_INT(store_blob_open(u, "INBOX", uid, &b, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_TEMP);
	CHECK_INT(store_check(store, 54, false, count_report, &found, &err), -1);
	CHECK_INT(found, 1);
	store_user_unref(&u);
	teardown(&store);
}

/* Is sha's copy in the node's cache? */
static bool cached(const char *sha)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/blobcache/%.2s/%s", data_dir, sha,
		 sha);
	return access(path, F_OK) == 0;
}

/* The bytes of the files under dir (recursively). */
static uint64_t dir_bytes(const char *dir)
{
	uint64_t total = 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char path[600];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		struct stat st;
		if (lstat(path, &st) < 0)
			continue;
		total += S_ISDIR(st.st_mode) ? dir_bytes(path)
					     : (uint64_t)st.st_size;
	}
	if (d != NULL)
		closedir(d);
	return total;
}

/* blobs = s3 with [store] blob_cache: the node keeps copies of bodies
 * (new ones at once, read ones once read), at most blob_cache bytes,
 * the least recently used going first; a copy is checked on every read
 * (a damaged one is dropped and the object read again); the copies
 * serve again after a restart. */
static void test_s3_cache(void)
{
	enum { N = 12, SIZE = 6000, CACHE = 64 * 1024 };
	test_blob_cache = CACHE;
	struct store *store = setup();
	struct store_user *u = user_open(store, 56);
	char *m[N + 1];
	char sha[N + 1][65];
	uint32_t uid[N + 1];
	for (int i = 0; i <= N; i++) {
		m[i] = xmalloc(SIZE + 1);
		int h = snprintf(m[i], SIZE + 1, "Subject: cache %d\r\n\r\n", i);
		memset(m[i] + h, 'a' + i, SIZE - h);
		m[i][SIZE] = '\0';
		sha_hex(m[i], SIZE, sha[i]);
	}
	for (int i = 0; i < N; i++)
		uid[i] = append(u, "INBOX", m[i], 0);
	char dir[400];
	snprintf(dir, sizeof(dir), "%s/blobcache", data_dir);
	/* ten fit (60,000 bytes), eleven do not: the first two went */
	CHECK(dir_bytes(dir) <= CACHE);
	CHECK(!cached(sha[0]) && !cached(sha[1]));
	for (int i = 2; i < N; i++)
		CHECK(cached(sha[i]));
	/* read from S3, then kept (m[2] goes) */
	CHECK(readable(u, "INBOX", uid[0], m[0]));
	CHECK(cached(sha[0]) && !cached(sha[2]));
	/* m[3] used: m[4] is now the least recently used */
	CHECK(readable(u, "INBOX", uid[3], m[3]));
	uid[N] = append(u, "INBOX", m[N], 0);
	CHECK(cached(sha[N]) && cached(sha[3]) && !cached(sha[4]));
	CHECK(dir_bytes(dir) <= CACHE);
	/* the object replaced behind the store's back: the copy serves */
	char *error = NULL;
	char *other = xstrdup(m[N - 1]);
	other[SIZE - 1] ^= 1;
	CHECK_INT(s3_put_raw(sha[N - 1], other, SIZE, false, &error), S3_OK);
	free(error);
	CHECK(readable(u, "INBOX", uid[N - 1], m[N - 1]));
	/* the copy damaged too: dropped, the object read (damaged: TEMP,
	 * never wrong bytes) */
	char path[600];
	snprintf(path, sizeof(path), "%s/%.2s/%s", dir, sha[N - 1], sha[N - 1]);
	FILE *f = fopen(path, "r+");
	CHECK(f != NULL);
	if (f != NULL) {
		fseek(f, 100, SEEK_SET);
		fputc('#', f);
		fclose(f);
	}
	struct store_blob b;
	struct store_error err;
	CHECK_INT(store_blob_open(u, "INBOX", uid[N - 1], &b, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_TEMP);
	CHECK(!cached(sha[N - 1]));
	/* the object right again: read and kept again */
	CHECK_INT(s3_put_raw(sha[N - 1], m[N - 1], SIZE, false, &error), S3_OK);
	free(error);
	CHECK(readable(u, "INBOX", uid[N - 1], m[N - 1]));
	CHECK(cached(sha[N - 1]));
	store_user_unref(&u);
	/* a restart: the copies found on disk serve (the object of m[N]
	 * replaced first, so only the copy has the right bytes) */
	store_close(&store);
	CHECK_INT(s3_put_raw(sha[N], other, SIZE, false, &error), S3_OK);
	free(error);
	struct store_settings set = other_settings();
	CHECK_INT(store_open(&set, &store, &err), 0);
	u = user_open(store, 56);
	CHECK(readable(u, "INBOX", uid[N], m[N]));
	CHECK(dir_bytes(dir) <= CACHE);
	store_user_unref(&u);
	teardown(&store);
	test_blob_cache = 0;
	free(other);
	for (int i = 0; i <= N; i++)
		free(m[i]);
}

/* blobs = s3: a body past the part size goes up as a multipart upload
 * (each part with its Content-MD5, the query signed: the proxy checks
 * both) and reads back whole. */
static void test_s3_multipart(void)
{
	struct s3 *s3 = s3_client(S3_PART_MIN);
	size_t size = 2 * S3_PART_MIN + 12345;
	char *data = xmalloc(size);
	for (size_t i = 0; i < size; i++)
		data[i] = (char)(i * 7 + i / 4096);
	char tmpl[] = "/tmp/loft-s3-multi-XXXXXX";
	int fd = mkstemp(tmpl);
	CHECK(fd >= 0);
	unlink(tmpl);
	CHECK(write(fd, data, size) == (ssize_t)size);
	char key[65];
	sha_hex(data, size, key);
	char *error = NULL;
	unsigned char md5[16] = {0};
	CHECK_INT(s3_put_fd(s3, key, fd, size, md5, &error), S3_OK);
	if (error != NULL)
		fprintf(stderr, "multipart: %s\n", error);
	free(error);
	char *back = xmalloc(size);
	CHECK_INT(s3_get(s3, key, back, size, &error), S3_OK);
	free(error);
	CHECK(memcmp(back, data, size) == 0);
	/* one byte off in the size the index has: refused, not cut */
	CHECK_INT(s3_get(s3, key, back, size - 1, &error), S3_FAIL);
	free(error);
	/* a small body: one PUT as before */
	CHECK_INT(s3_put_fd(s3, "small-one", fd, 100, NULL, &error), S3_OK);
	free(error);
	CHECK_INT(s3_delete(s3, "small-one", &error), S3_OK);
	free(error);
	CHECK_INT(s3_delete(s3, key, &error), S3_OK);
	free(error);
	CHECK_INT(s3_get(s3, key, back, size, &error), S3_NOTFOUND);
	free(error);
	close(fd);
	free(back);
	free(data);
	s3_close(&s3);
}

/* The fields of S3's answers (expat): the UploadId of a multipart
 * upload, and only under its own root. */
static void test_s3_xml_fields(void)
{
	char id[16], other[8];
	const char ok[] = "<?xml version=\"1.0\"?><InitiateMultipartUploadResult"
			  " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
			  "<Bucket>b</Bucket><Key>k</Key><UploadId>2~abc"
			  "</UploadId></InitiateMultipartUploadResult>";
	CHECK_INT(s3_xml_fields(ok, strlen(ok), "InitiateMultipartUploadResult",
				"UploadId", id, sizeof(id), "Key", other,
				sizeof(other)), 0);
	CHECK_STR(id, "2~abc");
	CHECK_STR(other, "k");
	CHECK_INT(s3_xml_fields(ok, strlen(ok), "Error", "UploadId", id,
				sizeof(id), NULL, NULL, 0), -1);
	CHECK_STR(id, "");
	/* nested deeper: not the field */
	const char deep[] = "<R><X><UploadId>no</UploadId></X></R>";
	CHECK_INT(s3_xml_fields(deep, strlen(deep), "R", "UploadId", id,
				sizeof(id), NULL, NULL, 0), 0);
	CHECK_STR(id, "");
}

/* AWS Signature V4: the example of AWS's documentation ("GET Object",
 * signature calculations for the Authorization header). */
static void test_s3_sign(void)
{
	const char *e3 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca"
			 "495991b7852b855";
	char *headers = xasprintf("host:examplebucket.s3.amazonaws.com\n"
				  "range:bytes=0-9\nx-amz-content-sha256:%s\n"
				  "x-amz-date:20130524T000000Z\n", e3);
	char *auth = s3_sign("GET", "/test.txt", "", headers,
			     "host;range;x-amz-content-sha256;x-amz-date", e3,
			     "20130524T000000Z", "us-east-1",
			     "AKIAIOSFODNN7EXAMPLE",
			     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
	CHECK_STR(auth, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/"
		  "20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;"
		  "x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e"
		  "857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	free(auth);
	free(headers);
}

/* The S3 error document (expat). */
static void test_s3_error_parse(void)
{
	char code[32], msg[64];
	const char ok[] = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code>"
			  "<Message>Please\nreduce</Message><RequestId>1"
			  "</RequestId></Error>";
	CHECK_INT(s3_error_parse(ok, strlen(ok), code, sizeof(code), msg,
				 sizeof(msg)), 0);
	CHECK_STR(code, "SlowDown");
	CHECK_STR(msg, "Please reduce");
	const char *bad[] = {"", "<Error>", "<Other><Code>X</Code></Other>",
			     "<Error><Code>X</Code></Error><x/>", "not xml"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT(s3_error_parse(bad[i], strlen(bad[i]), code,
					 sizeof(code), msg, sizeof(msg)), -1);
		CHECK_STR(code, "");
	}
	/* truncated to the buffer */
	const char longer[] = "<Error><Code>AVeryLongCodeIndeedLongerThanThis"
			      "</Code></Error>";
	char small[8];
	CHECK_INT(s3_error_parse(longer, strlen(longer), small, sizeof(small),
				 msg, sizeof(msg)), 0);
	CHECK_STR(small, "AVeryLo");
}

/* What the postgres backend has so far (docs/scale-out.md); the others
 * look at the embedded backend's files or at parts not there yet. */
static const struct test_case pg_cases[] = {
	{"defaults", test_defaults},
	{"append_fetch", test_append_fetch},
	{"flags_modseq", test_flags_modseq},
	{"mailboxes", test_mailboxes},
	{"copy_move_expunge", test_copy_move_expunge},
	{"quota", test_quota},
	{"shared_body", test_shared_body},
	{"views", test_views},
	{"view_bulk_and_other_process", test_view_bulk_and_other_process},
	{"recent_status", test_recent_status},
	{"search", test_search},
	{"hub", test_hub},
	{"pop3_retention", test_pop3_retention},
	{"pop3_auto", test_pop3_auto},
	{"roles", test_roles},
	{"view_sharing", test_view_sharing},
	{"fetch_since", test_fetch_since},
	{"first_unseen", test_first_unseen},
	{"store_then_fetch", test_store_then_fetch},
	{"config", test_config},
	{"pg_damaged_body", test_pg_damaged_body},
	{"pg_two_nodes", test_pg_two_nodes},
	{"pg_hub", test_pg_hub},
	{"pg_notify_parse", test_pg_notify_parse},
	{"pg_collect", test_pg_collect},
	{"pg_collect_lease", test_pg_collect_lease},
	{"pg_collect_race", test_pg_collect_race},
	{"pg_rcpt_overlap", test_pg_rcpt_overlap},
	{"s3_error_parse", test_s3_error_parse},
	{"s3_xml_fields", test_s3_xml_fields},
	{"s3_sign", test_s3_sign},
	{"pg_lost_commit", test_pg_lost_commit},
	{"pg_reconnect", test_pg_reconnect},
	{"pg_retry", test_pg_retry},
	{"pg_multiappend", test_pg_multiappend},
	{"pg_counts", test_pg_counts},
	{NULL, NULL},
};

/* blobs = s3: the cases that read and write bodies, the collector, a
 * damaged object. */
static const struct test_case s3_cases[] = {
	{"append_fetch", test_append_fetch},
	{"copy_move_expunge", test_copy_move_expunge},
	{"search", test_search},
	{"quota", test_quota},
	{"pg_two_nodes", test_pg_two_nodes},
	{"pg_collect", test_pg_collect},
	{"pg_collect_race", test_pg_collect_race},
	{"s3_damaged", test_s3_damaged},
	{"s3_cache", test_s3_cache},
	{"s3_multipart", test_s3_multipart},
	{NULL, NULL},
};

int main(void)
{
	pg_conninfo = getenv("LOFT_TEST_PG");
	s3_endpoint = getenv("LOFT_TEST_S3");
	s3_key = getenv("LOFT_TEST_S3_KEY");
	s3_secret = getenv("LOFT_TEST_S3_SECRET");
	if (pg_conninfo != NULL && s3_endpoint != NULL)
		return test_main(s3_cases);
	return test_main(pg_conninfo != NULL ? pg_cases : cases);
}
