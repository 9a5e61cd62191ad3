/*
 * Unit tests of the index schema versioning (sq-db.c): an index written
 * by an older build is upgraded when its user is opened (every step and
 * the new version in one transaction, mail intact); a failed step leaves
 * the index as it was; an index newer than this build is refused with a
 * clear temporary error and not written to (nor its files swept). The real migration table is
 * empty (version 1 is the first released schema), so the tests register
 * fake steps through sq_schema_override.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include <sqlite3.h>

#include "buf.h"
#include "sqlite/sq-private.h"
#include "store.h"
#include "test.h"

static char data_dir[256];

static struct store *store_start(void)
{
	struct store_settings set = {
		.data_dir = data_dir,
		.max_message_size = 1024 * 1024,
	};
	struct store *store;
	struct store_error err;
	if (store_open(&set, &store, &err) < 0) {
		fprintf(stderr, "store_open: %s\n", err.msg);
		abort();
	}
	return store;
}

static char *index_path(int64_t id)
{
	return xasprintf("%s/mail/%02x/%lld/index.db", data_dir,
			 store_user_shard(id), (long long)id);
}

/* Runs sql on a user's index from outside the store (closed by then). */
static int index_exec(int64_t id, const char *sql)
{
	char *path = index_path(id);
	sqlite3 *db;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	free(path);
	return rc;
}

/* One integer from a query on a user's index; -1 on error. */
static long long index_int(int64_t id, const char *sql)
{
	char *path = index_path(id);
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

static char *slurp(const char *path, size_t *len_r)
{
	FILE *fp = fopen(path, "rb");
	if (fp == NULL)
		return NULL;
	struct buf b;
	buf_init(&b, 64 * 1024 * 1024);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		buf_append(&b, chunk, n);
	fclose(fp);
	return buf_steal(&b, len_r);
}

static const char msg[] = "Subject: kept\r\n\r\nstill here\r\n";

/* A user with one message, its store closed again (no open handles). */
static void make_user(int64_t id)
{
	struct store *store = store_start();
	struct store_user *u;
	struct store_error err;
	if (store_user_open(store, id, &u, &err) < 0)
		abort();
	struct store_append_params p = {0};
	uint32_t uid;
	if (store_append(u, "INBOX", msg, strlen(msg), &p, &uid, NULL, &err) < 0)
		abort();
	store_user_unref(&u);
	store_close(&store);
}

/* Opens the user in a fresh store: 0, or the error kind and message. */
static int open_user(int64_t id, struct store_error *err)
{
	struct store *store = store_start();
	struct store_user *u;
	int r = store_user_open(store, id, &u, err);
	if (r == 0) {
		/* the old mail is readable and new mail is accepted */
		struct store_mailbox_info info;
		memset(&info, 0, sizeof(info));
		if (store_mailbox_status(u, "INBOX", &info, err) < 0 ||
		    info.messages < 1)
			r = -2;
		store_mailbox_info_free(&info);
		struct store_append_params p = {0};
		uint32_t uid;
		if (r == 0 && store_append(u, "INBOX", msg, strlen(msg), &p,
					   &uid, NULL, err) < 0)
			r = -3;
		store_user_unref(&u);
	}
	store_close(&store);
	return r;
}

static void setup(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(data_dir, sizeof(data_dir), "%s/loft-test-schema-XXXXXX", tmp);
	if (mkdtemp(data_dir) == NULL)
		abort();
}

static void teardown(void)
{
	sq_schema_override(0, NULL);
	char *cmd = xasprintf("rm -rf '%s'", data_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", data_dir);
	free(cmd);
}

/* A new index has this build's version; store_index_version reads it
 * without creating anything. */
static void test_new_index(void)
{
	setup();
	struct store *store = store_start();
	struct store_error err;
	unsigned found = 99, known = 0;
	CHECK_INT(store_index_version(store, 3, &found, &known, &err), 0);
	CHECK_INT((int)found, 0);
	CHECK_INT((int)known, (int)sq_schema_known());
	char *path = index_path(3);
	CHECK(access(path, F_OK) < 0);
	store_close(&store);
	make_user(3);
	CHECK_INT((int)index_int(3, "SELECT version FROM account"),
		  (int)sq_schema_known());
	store = store_start();
	CHECK_INT(store_index_version(store, 3, &found, &known, &err), 0);
	CHECK_INT((int)found, (int)sq_schema_known());
	store_close(&store);
	free(path);
	teardown();
}

/* Today's bug: an index from before a column was added. Its version is
 * older, so the step that adds the column runs and delivery works. */
static void test_upgrade(void)
{
	setup();
	make_user(5);
	CHECK_INT(index_exec(5, "ALTER TABLE account DROP COLUMN fts_stale;"
			     " UPDATE account SET version = 0"), SQLITE_OK);
	struct store_error err;
	/* the real table has no step from version 0: refused, untouched */
	CHECK_INT(open_user(5, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_INTERNAL);
	CHECK(strstr(err.msg, "version 0") != NULL);
	CHECK_INT((int)index_int(5, "SELECT version FROM account"), 0);

	static const char *const steps[] = {
		"ALTER TABLE account ADD COLUMN fts_stale INTEGER NOT NULL"
		" DEFAULT 0;",
		"CREATE TABLE upgrade_probe(a INTEGER NOT NULL);"
		" INSERT INTO upgrade_probe VALUES (1);",
		"ALTER TABLE upgrade_probe ADD COLUMN b INTEGER NOT NULL"
		" DEFAULT 7;",
	};
	sq_schema_override(3, steps);
	CHECK_INT(open_user(5, &err), 0);
	CHECK_INT((int)index_int(5, "SELECT version FROM account"), 3);
	CHECK_INT((int)index_int(5, "SELECT a + b FROM upgrade_probe"), 8);
	CHECK_INT((int)index_int(5, "SELECT fts_stale FROM account"), 0);
	CHECK_INT((int)index_int(5, "SELECT count(*) FROM msg"), 2);
	/* opening again runs nothing more */
	CHECK_INT(open_user(5, &err), 0);
	CHECK_INT((int)index_int(5, "SELECT count(*) FROM upgrade_probe"), 1);
	CHECK_INT((int)index_int(5, "SELECT count(*) FROM msg"), 3);
	teardown();
}

/* The real step 1 -> 2: an index of version 1 kept each message whole
 * in a file, with no prefix and no checksum. After the upgrade that
 * file is still served as it was, new mail goes into the index, and
 * check gives the old body its checksum. */
static void test_upgrade_v1(void)
{
	setup();
	make_user(10);
	/* turn the inline message into a version 1 file blob */
	char *dir = xasprintf("%s/mail/0a/10/blobs/ab", data_dir);
	char *cmd = xasprintf("mkdir -p '%s'", dir);
	CHECK_INT(system(cmd), 0);
	char *file = xasprintf("%s/abcd1234", dir);
	FILE *fp = fopen(file, "w");
	CHECK(fp != NULL);
	fputs(msg, fp);
	fclose(fp);
	CHECK_INT(index_exec(10, "UPDATE blob SET name = 'abcd1234';"
			     " DROP TABLE body;"
			     " ALTER TABLE blob DROP COLUMN kind;"
			     " ALTER TABLE blob DROP COLUMN prefix;"
			     " ALTER TABLE blob DROP COLUMN crc;"
			     " ALTER TABLE blob DROP COLUMN head;"
			     " ALTER TABLE account DROP COLUMN sync_login;"
			     " ALTER TABLE msg DROP COLUMN uidl;"
			     " DROP TABLE import_mark;"
			     " UPDATE account SET version = 1"), SQLITE_OK);
	struct store_error err;
	CHECK_INT(open_user(10, &err), 0);
	CHECK_INT((int)index_int(10, "SELECT version FROM account"),
		  (int)sq_schema_known());
	CHECK_INT((int)index_int(10, "SELECT count(*) FROM body"), 1);
	struct store *store = store_start();
	struct store_user *u;
	CHECK_INT(store_user_open(store, 10, &u, &err), 0);
	for (uint32_t uid = 1; uid <= 2; uid++) {
		struct store_blob b;
		CHECK_INT(store_blob_open(u, "INBOX", uid, &b, &err), 0);
		CHECK_MEM(b.data, b.len, msg, strlen(msg));
		store_blob_close(&b);
	}
	store_user_unref(&u);
	CHECK_INT(store_check(store, 10, true, NULL, NULL, &err), 0);
	store_close(&store);
	CHECK_INT((int)index_int(10, "SELECT count(*) FROM blob"
				 " WHERE crc IS NULL"), 0);
	free(dir);
	free(cmd);
	free(file);
	teardown();
}

/* A step that fails rolls back the steps before it: the index stays at
 * its old version, whole. */
static void test_failed_step(void)
{
	setup();
	make_user(6);
	CHECK_INT(index_exec(6, "UPDATE account SET version = 0"), SQLITE_OK);
	static const char *const steps[] = {
		"CREATE TABLE upgrade_probe(a INTEGER);",
		"ALTER TABLE no_such_table ADD COLUMN b INTEGER;",
	};
	sq_schema_override(2, steps);
	struct store_error err;
	CHECK_INT(open_user(6, &err), -1);
	CHECK_INT((int)index_int(6, "SELECT version FROM account"), 0);
	CHECK_INT((int)index_int(6, "SELECT count(*) FROM sqlite_master"
				 " WHERE name = 'upgrade_probe'"), 0);
	CHECK_INT((int)index_int(6, "SELECT count(*) FROM msg"), 1);
	teardown();
}

/* An index from a newer build: a temporary error that says what to do,
 * and the file is left exactly as it was (also by the orphan sweep). */
static void test_newer_refused(void)
{
	setup();
	make_user(7);
	CHECK_INT(index_exec(7, "UPDATE account SET version = 99;"
			     " PRAGMA wal_checkpoint(TRUNCATE)"), SQLITE_OK);
	char *path = index_path(7);
	size_t len0, len1;
	char *before = slurp(path, &len0);
	CHECK(before != NULL);
	struct store_error err;
	CHECK_INT(open_user(7, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_TEMP);
	CHECK(strstr(err.msg, "user 7 is version 99") != NULL);
	char knows[32];
	snprintf(knows, sizeof(knows), "knows up to %u", sq_schema_known());
	CHECK(strstr(err.msg, knows) != NULL);
	CHECK(strstr(err.msg, "upgrade") != NULL);
	struct store *store = store_start();
	unsigned found, known;
	CHECK_INT(store_index_version(store, 7, &found, &known, &err), 0);
	CHECK_INT((int)found, 99);
	CHECK_INT((int)known, (int)sq_schema_known());
	/* check must not repair what it cannot read */
	CHECK_INT(store_check(store, 7, true, NULL, NULL, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_TEMP);
	store_close(&store);

	/* the orphan sweep: files only an unknown schema may know of stay;
	 * an old orphan of a current index (user 8) goes */
	make_user(8);
	char *keep = xasprintf("%s/mail/07/7/blobs/cd/cdef01", data_dir);
	char *gone = xasprintf("%s/mail/08/8/blobs/cd/cdef01", data_dir);
	const char *const files[] = {keep, gone};
	for (int i = 0; i < 2; i++) {
		/* blobs/ is made when first needed: make it here */
		char *dir = xstrdup(files[i]);
		*strrchr(dir, '/') = '\0';
		char *cmd = xasprintf("mkdir -p '%s'", dir);
		CHECK_INT(system(cmd), 0);
		free(cmd);
		free(dir);
		FILE *fp = fopen(files[i], "w");
		CHECK(fp != NULL);
		if (fp != NULL) {
			fputs("junk", fp);
			fclose(fp);
		}
		struct utimbuf old = {time(NULL) - 7200, time(NULL) - 7200};
		utime(files[i], &old);
	}
	store = store_start();
	store_start_background(store);
	for (int i = 0; i < 250 && access(gone, F_OK) == 0; i++)
		usleep(20000);
	usleep(200000);
	store_close(&store);
	CHECK(access(gone, F_OK) != 0);
	CHECK(access(keep, F_OK) == 0);
	free(keep);
	free(gone);

	char *after = slurp(path, &len1);
	CHECK(after != NULL);
	CHECK_MEM(after, len1, before, len0);
	CHECK_INT((int)index_int(7, "SELECT count(*) FROM msg"), 1);
	free(before);
	free(after);
	free(path);
	teardown();
}

/* The real steps: an index of version 2 (before account.sync_login)
 * opens as the current version with the column added, mail intact, and
 * the sync login is recorded and read back. */
static void test_real_steps(void)
{
	setup();
	make_user(9);
	CHECK_INT(index_exec(9, "ALTER TABLE account DROP COLUMN sync_login;"
			     " ALTER TABLE blob DROP COLUMN head;"
			     " ALTER TABLE msg DROP COLUMN uidl;"
			     " DROP TABLE import_mark;"
			     " UPDATE account SET version = 2"), SQLITE_OK);
	struct store_error err;
	CHECK_INT(open_user(9, &err), 0);
	CHECK_INT((int)index_int(9, "SELECT version FROM account"),
		  (int)sq_schema_known());
	CHECK_INT((int)index_int(9, "SELECT sync_login FROM account"), 0);
	CHECK_INT((int)index_int(9, "SELECT count(*) FROM msg"), 2);
	struct store *store = store_start();
	struct store_user *u;
	time_t last = 1;
	CHECK_INT(store_user_open(store, 9, &u, &err), 0);
	CHECK_INT(store_last_sync_login(u, &last, &err), 0);
	CHECK_INT((int)last, 0);
	CHECK_INT(store_note_sync_login(u, 1800000000, &err), 0);
	CHECK_INT(store_last_sync_login(u, &last, &err), 0);
	CHECK_INT((long long)last, 1800000000LL);
	/* within the hour: not rewritten; later: rewritten; never back */
	CHECK_INT(store_note_sync_login(u, 1800000000 + 600, &err), 0);
	CHECK_INT(store_last_sync_login(u, &last, &err), 0);
	CHECK_INT((long long)last, 1800000000LL);
	CHECK_INT(store_note_sync_login(u, 1800000000 + 7200, &err), 0);
	CHECK_INT(store_last_sync_login(u, &last, &err), 0);
	CHECK_INT((long long)last, 1800000000LL + 7200);
	CHECK_INT(store_note_sync_login(u, 1700000000, &err), 0);
	CHECK_INT(store_last_sync_login(u, &last, &err), 0);
	CHECK_INT((long long)last, 1800000000LL + 7200);
	CHECK(store_sync_active(last, last + 29 * 86400));
	CHECK(!store_sync_active(last, last + 30 * 86400));
	CHECK(!store_sync_active(0, last));
	store_user_unref(&u);
	store_close(&store);
	teardown();
}

static const struct test_case cases[] = {
	{"real_steps", test_real_steps},
	{"new_index", test_new_index},
	{"upgrade", test_upgrade},
	{"upgrade_v1", test_upgrade_v1},
	{"failed_step", test_failed_step},
	{"newer_refused", test_newer_refused},
	{NULL, NULL},
};

int main(void)
{
	return test_main(cases);
}
