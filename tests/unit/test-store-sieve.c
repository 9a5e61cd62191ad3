/*
 * Unit tests for the store's Sieve section: scripts (put keeps the bytes,
 * activate, the active one cannot be deleted, rename, names), records,
 * and a delivery whose copies and records commit together or not at all
 * (a copy over quota leaves no copy and no record); the JMAP ids
 * (RFC 9661) kept by every change, never reused, with their /changes, and
 * given to scripts stored before ids existed. The same cases run on the
 * postgres backend as unit/test-store-sieve-pg (tests/unit/pg_run.py).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "buf.h"
#include "store-private.h"   /* store_user_shard: the index file */
#include "store.h"
#include "test.h"
#include "test-pg.h"

static char data_dir[256];
static char blob_dir[300];
static bool on_pg;   /* LOFT_TEST_PG: the postgres backend (pg_run.py) */
static struct store_account_limits test_limits;

static int limits_cb(void *ctx, int64_t user_id,
		     struct store_account_limits *limits_r)
{
	(void)ctx;
	(void)user_id;
	*limits_r = test_limits;
	return 0;
}

static struct store *setup(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(data_dir, sizeof(data_dir), "%s/loft-test-sieve-XXXXXX", tmp);
	if (mkdtemp(data_dir) == NULL)
		abort();
	memset(&test_limits, 0, sizeof(test_limits));
	struct store_settings set = {
		.data_dir = data_dir,
		.max_message_size = 1024 * 1024,
		.limits = limits_cb,
		.fsync = false,
	};
	on_pg = test_pg_use(&set, data_dir, blob_dir, sizeof(blob_dir));
	struct store *store;
	struct store_error err;
	if (store_open(&set, &store, &err) < 0) {
		fprintf(stderr, "store_open: %s\n", err.msg);
		abort();
	}
	return store;
}

static void teardown(struct store **store)
{
	store_close(store);
	char *cmd = xasprintf("rm -rf '%s' '%s'", data_dir,
			      on_pg ? blob_dir : data_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", data_dir);
	free(cmd);
}

static void test_scripts(void)
{
	struct store *store = setup();
	struct store_user *u;
	struct store_error err;
	CHECK_INT(store_user_open(store, 1, &u, &err), 0);
	const char src[] = "keep;\r\n# \0 byte\n";
	CHECK_INT(store_sieve_put(u, "main", src, sizeof(src) - 1, "IMG", 3,
				  &err), 0);
	CHECK_INT(store_sieve_put(u, "caf\xc3\xa9", "stop;", 5, NULL, 0, &err), 0);
	CHECK_INT(store_sieve_put(u, "bad\x01name", "stop;", 5, NULL, 0, &err),
		  -1);
	CHECK_INT(err.kind, STORE_ERR_INVALID);
	CHECK_INT(store_sieve_put(u, "bad\xffname", "stop;", 5, NULL, 0, &err),
		  -1);
	struct store_sieve_script *list;
	size_t n;
	CHECK_INT(store_sieve_list(u, &list, &n, &err), 0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_STR(list[0].name, "caf\xc3\xa9");
		CHECK_STR(list[1].name, "main");
		CHECK_INT(list[1].size, sizeof(src) - 1);
		CHECK(!list[0].active && !list[1].active);
	}
	store_sieve_list_free(list, n);
	char *s = NULL, *name = NULL;
	size_t len = 0, ilen = 0;
	void *img = NULL;
	bool active = true;
	CHECK_INT(store_sieve_get(u, "main", &s, &len, &img, &ilen, &active,
				  &err), 0);
	CHECK_MEM(s, len, src, sizeof(src) - 1);
	CHECK_MEM(img, ilen, "IMG", 3);
	CHECK(!active);
	free(s);
	free(img);
	CHECK_INT(store_sieve_active(u, &name, NULL, NULL, NULL, NULL, &err), 0);
	CHECK_INT(store_sieve_activate(u, "nope", &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	CHECK_INT(store_sieve_activate(u, "main", &err), 0);
	CHECK_INT(store_sieve_active(u, &name, &s, &len, NULL, NULL, &err), 1);
	CHECK_STR(name, "main");
	free(name);
	free(s);
	CHECK_INT(store_sieve_delete(u, "main", &err), -1);
	CHECK_INT(err.kind, STORE_ERR_EXISTS);
	CHECK_INT(store_sieve_rename(u, "main", "caf\xc3\xa9", &err), -1);
	CHECK_INT(err.kind, STORE_ERR_EXISTS);
	CHECK_INT(store_sieve_rename(u, "main", "renamed", &err), 0);
	CHECK_INT(store_sieve_active(u, &name, NULL, NULL, NULL, NULL, &err), 1);
	CHECK_STR(name, "renamed");
	free(name);
	/* replacing keeps the active flag */
	CHECK_INT(store_sieve_put(u, "renamed", "discard;", 8, NULL, 0, &err), 0);
	CHECK_INT(store_sieve_get(u, "renamed", NULL, NULL, &img, &ilen, &active,
				  &err), 0);
	CHECK(active);
	CHECK(img == NULL);
	CHECK_INT(store_sieve_activate(u, NULL, &err), 0);
	CHECK_INT(store_sieve_active(u, &name, NULL, NULL, NULL, NULL, &err), 0);
	CHECK_INT(store_sieve_delete(u, "renamed", &err), 0);
	CHECK_INT(store_sieve_delete(u, "renamed", &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	store_user_unref(&u);
	teardown(&store);
}

static struct store_body *body_of(struct store *store, const char *msg)
{
	struct store_body *b;
	struct store_error err;
	if (store_body_create(store, &b, &err) < 0 ||
	    store_body_write(b, msg, strlen(msg), &err) < 0 ||
	    store_body_finish(b, &err) < 0)
		abort();
	return b;
}

static uint32_t count_in(struct store_user *u, const char *box)
{
	struct store_mailbox_info info;
	struct store_error err;
	if (store_mailbox_status(u, box, &info, &err) < 0)
		return 9999;
	uint32_t n = info.messages;
	store_mailbox_info_free(&info);
	return n;
}

static void test_deliver(void)
{
	struct store *store = setup();
	struct store_user *u;
	struct store_error err;
	CHECK_INT(store_user_open(store, 1, &u, &err), 0);
	CHECK_INT(store_mailbox_create(u, "A", 0, &err), 0);
	struct store_body *b = body_of(store, "Subject: x\r\n\r\nhello\r\n");
	struct store_body *e = body_of(store, "X-Sieve: edited\r\nSubject: x"
				       "\r\n\r\nhello\r\n");
	const char *kw[] = {"$Work"};
	struct store_append_params seen = {.flags = STORE_FLAG_SEEN,
					   .keywords = kw, .keyword_count = 1};
	struct store_sieve_copy copies[] = {
		{.body = b, .mailbox = "INBOX", .prefix = "Delivered-To: a\r\n",
		 .prefix_len = 17},
		{.body = e, .mailbox = "A", .params = &seen},
	};
	struct store_sieve_record rec[] = {{"vacation:x", time(NULL) + 60},
					   {"old", time(NULL) - 1}};
	CHECK_INT(store_sieve_deliver(u, copies, 2, rec, 2, &err), 0);
	CHECK_INT(count_in(u, "INBOX"), 1);
	CHECK_INT(count_in(u, "A"), 1);
	CHECK_INT(copies[1].uid_r, 1);
	bool seen_r = false;
	CHECK_INT(store_sieve_record_seen(u, "vacation:x", time(NULL), &seen_r,
					  &err), 0);
	CHECK(seen_r);
	CHECK_INT(store_sieve_record_seen(u, "vacation:x", time(NULL) + 61,
					  &seen_r, &err), 0);
	CHECK(!seen_r);
	CHECK_INT(store_sieve_record_seen(u, "old", time(NULL), &seen_r, &err), 0);
	CHECK(!seen_r);
	struct store_blob blob;
	CHECK_INT(store_blob_open(u, "A", 1, &blob, &err), 0);
	CHECK_MEM(blob.data, blob.len, "X-Sieve: edited\r\nSubject: x\r\n\r\n"
		  "hello\r\n", 38);
	store_blob_close(&blob);
	/* a folder that is not there: no copy, no record at all */
	struct store_sieve_copy bad[] = {
		{.body = b, .mailbox = "INBOX"},
		{.body = b, .mailbox = "Missing"},
	};
	struct store_sieve_record rec2[] = {{"vacation:y", time(NULL) + 60}};
	CHECK_INT(store_sieve_deliver(u, bad, 2, rec2, 1, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	CHECK_INT(count_in(u, "INBOX"), 1);
	CHECK_INT(store_sieve_record_seen(u, "vacation:y", time(NULL), &seen_r,
					  &err), 0);
	CHECK(!seen_r);
	/* over quota on the second copy: neither */
	test_limits.quota_messages = 3;
	CHECK_INT(store_sieve_deliver(u, bad, 1, NULL, 0, &err), 0);
	struct store_sieve_copy two[] = {
		{.body = b, .mailbox = "INBOX"},
		{.body = b, .mailbox = "A"},
	};
	CHECK_INT(store_sieve_deliver(u, two, 2, rec2, 1, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_QUOTA);
	CHECK_INT(count_in(u, "INBOX"), 2);
	CHECK_INT(count_in(u, "A"), 1);
	store_body_unref(&b);
	store_body_unref(&e);
	store_user_unref(&u);
	teardown(&store);
}

static int64_t id_of(struct store_user *u, const char *name)
{
	struct store_sieve_script *list;
	size_t n;
	struct store_error err;
	int64_t id = -1;
	if (store_sieve_list(u, &list, &n, &err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i].name, name) == 0)
			id = list[i].jmap_id;
	store_sieve_list_free(list, n);
	return id;
}

static struct store_jmap_cursor sieve_state(struct store_user *u)
{
	struct store_jmap_cursor s[STORE_JMAP_KINDS];
	struct store_error err;
	if (store_jmap_states(u, s, &err) < 0)
		abort();
	return s[STORE_JMAP_SIEVE];
}

static void test_jmap_ids(void)
{
	struct store *store = setup();
	struct store_user *u;
	struct store_error err;
	CHECK_INT(store_user_open(store, 1, &u, &err), 0);
	struct store_jmap_cursor s0 = sieve_state(u);
	CHECK_INT(store_sieve_put(u, "a", "keep;", 5, NULL, 0, &err), 0);
	CHECK_INT(store_sieve_put(u, "b", "keep;", 5, NULL, 0, &err), 0);
	int64_t a = id_of(u, "a"), b = id_of(u, "b");
	CHECK(a > 0 && b > 0 && a != b);
	struct store_jmap_changes ch;
	CHECK_INT(store_jmap_changes(u, STORE_JMAP_SIEVE, &s0, 0, &ch, &err), 0);
	CHECK_INT(ch.created_count, 2);
	struct store_jmap_cursor s1 = ch.new_state;
	store_jmap_changes_free(&ch);
	/* rename keeps the id; activation and content change it */
	CHECK_INT(store_sieve_rename(u, "a", "c", &err), 0);
	CHECK_INT(id_of(u, "c"), a);
	CHECK_INT(store_sieve_activate(u, "b", &err), 0);
	CHECK_INT(store_jmap_changes(u, STORE_JMAP_SIEVE, &s1, 0, &ch, &err), 0);
	CHECK_INT(ch.created_count, 0);
	CHECK_INT(ch.updated_count, 2);
	CHECK_INT(ch.destroyed_count, 0);
	struct store_jmap_cursor s2 = ch.new_state;
	store_jmap_changes_free(&ch);
	/* activating the active one again changes nothing */
	CHECK_INT(store_sieve_activate(u, "b", &err), 0);
	CHECK_INT(sieve_state(u).modseq, s2.modseq);
	CHECK_INT(store_sieve_delete(u, "c", &err), 0);
	CHECK_INT(store_sieve_put(u, "c", "stop;", 5, NULL, 0, &err), 0);
	int64_t c = id_of(u, "c");
	CHECK(c > a && c > b);   /* never a used id */
	CHECK_INT(store_jmap_changes(u, STORE_JMAP_SIEVE, &s2, 0, &ch, &err), 0);
	CHECK_INT(ch.created_count, 1);
	CHECK_INT(ch.destroyed_count, 1);
	if (ch.destroyed_count == 1)
		CHECK_INT(ch.destroyed[0].id, a);
	store_jmap_changes_free(&ch);
	/* a script stored before ids existed (its row gone) gets one */
	if (on_pg) {
		PGconn *pg = PQconnectdb(getenv("LOFT_TEST_PG"));
		PGresult *r = PQexec(pg, "DELETE FROM jobject WHERE data = 'b'");
		CHECK_INT(PQresultStatus(r), PGRES_COMMAND_OK);
		PQclear(r);
		PQfinish(pg);
	} else {
		char *path = xasprintf("%s/mail/%02x/1/index.db", data_dir,
				       store_user_shard(1));
		sqlite3 *db;
		CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
		CHECK_INT(sqlite3_exec(db, "DELETE FROM jobject WHERE data = 'b'",
				       NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
		free(path);
	}
	CHECK_INT(id_of(u, "b"), 0);
	CHECK_INT(store_sieve_ids(u, &err), 0);
	int64_t b2 = id_of(u, "b");
	CHECK(b2 > c);
	CHECK_INT(id_of(u, "c"), c);
	store_user_unref(&u);
	teardown(&store);
}

static const struct test_case cases[] = {
	{"scripts", test_scripts},
	{"jmap ids", test_jmap_ids},
	{"deliver", test_deliver},
	{NULL, NULL},
};

int main(void)
{
	return test_main(cases);
}
