/*
 * The store's annotations (RFC 5464 METADATA) and URLAUTH keys (RFC 4467):
 * entries of the server and of mailboxes, depth 0/1/infinity, binary
 * values, removal, the limits (one value, entries, total) leaving nothing
 * half written, a mailbox's annotations going with it, the modseq a
 * mailbox annotation takes, and access keys that last until reset.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "store.h"
#include "test.h"

static char data_dir[256];

static struct store *setup(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(data_dir, sizeof(data_dir), "%s/loft-test-meta-XXXXXX", tmp);
	if (mkdtemp(data_dir) == NULL)
		abort();
	struct store_settings set = {.data_dir = data_dir, .fsync = false};
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
	char *cmd = xasprintf("rm -rf '%s'", data_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", data_dir);
	free(cmd);
}

static int set1(struct store_user *u, const char *mbox, const char *name,
		const char *value, size_t len, struct store_error *err)
{
	struct store_metadata e = {(char *)name, (char *)value, len};
	return store_metadata_set(u, mbox, &e, 1, err);
}

static size_t get(struct store_user *u, const char *mbox, const char *name,
		  int depth, struct store_metadata **out)
{
	struct store_error err;
	size_t n = 0;
	const char *names[] = {name};
	CHECK_INT(store_metadata_get(u, mbox, names, 1, depth, out, &n, &err), 0);
	return n;
}

static void test_entries(void)
{
	struct store *store = setup();
	struct store_user *u;
	struct store_error err;
	struct store_metadata *e;
	CHECK_INT(store_user_open(store, 1, &u, &err), 0);
	CHECK_INT(set1(u, NULL, "/shared/comment", "server note", 11, &err), 0);
	CHECK_INT(set1(u, "INBOX", "/private/comment", "a\0b", 3, &err), 0);
	CHECK_INT(set1(u, "INBOX", "/private/comment/sub", "x", 1, &err), 0);
	CHECK_INT(set1(u, "INBOX", "/private/comment/sub/deep", "y", 1, &err), 0);
	CHECK_INT(set1(u, "INBOX", "/private/commentary", "z", 1, &err), 0);
	size_t n = get(u, NULL, "/shared/comment", 0, &e);
	CHECK_INT(n, 1);
	CHECK(n == 1 && e[0].value_len == 11 && memcmp(e[0].value, "server note", 11) == 0);
	store_metadata_free(e, n);
	n = get(u, "INBOX", "/private/comment", 0, &e);
	CHECK(n == 1 && e[0].value_len == 3 && memcmp(e[0].value, "a\0b", 3) == 0);
	store_metadata_free(e, n);
	/* depth 1: the entry and its children, not "commentary" */
	n = get(u, "INBOX", "/private/comment", 1, &e);
	CHECK_INT(n, 2);
	CHECK(n == 2 && strcmp(e[1].name, "/private/comment/sub") == 0);
	store_metadata_free(e, n);
	n = get(u, "INBOX", "/private/comment", -1, &e);
	CHECK_INT(n, 3);
	store_metadata_free(e, n);
	/* the server's entries are not the mailbox's */
	n = get(u, "INBOX", "/shared/comment", 0, &e);
	CHECK_INT(n, 0);
	store_metadata_free(e, n);
	/* removal */
	CHECK_INT(set1(u, "INBOX", "/private/comment/sub", NULL, 0, &err), 0);
	n = get(u, "INBOX", "/private/comment", -1, &e);
	CHECK_INT(n, 2);
	store_metadata_free(e, n);
	/* no such mailbox */
	CHECK_INT(set1(u, "Nowhere", "/private/x", "1", 1, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	const char *names[] = {"/private/x"};
	CHECK_INT(store_metadata_get(u, "Nowhere", names, 1, 0, &e, &n, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	store_user_unref(&u);
	teardown(&store);
}

static void test_limits_and_modseq(void)
{
	struct store *store = setup();
	struct store_user *u;
	struct store_error err;
	struct store_metadata *e;
	struct store_mailbox_info info;
	CHECK_INT(store_user_open(store, 1, &u, &err), 0);
	CHECK_INT(store_mailbox_status(u, "INBOX", &info, &err), 0);
	uint64_t before = info.highestmodseq;
	store_mailbox_info_free(&info);
	CHECK_INT(set1(u, "INBOX", "/private/a", "1", 1, &err), 0);
	CHECK_INT(store_mailbox_status(u, "INBOX", &info, &err), 0);
	CHECK(info.highestmodseq > before);
	store_mailbox_info_free(&info);
	/* one value over the limit */
	char *big = xcalloc(1, STORE_METADATA_MAX_VALUE + 1);
	CHECK_INT(set1(u, "INBOX", "/private/big", big,
		       STORE_METADATA_MAX_VALUE + 1, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_LIMIT);
	CHECK_INT(set1(u, "INBOX", "/private/big", big, STORE_METADATA_MAX_VALUE,
		       &err), 0);
	/* too many entries: the batch that goes over is not written at all */
	struct store_metadata *many = xcalloc(STORE_METADATA_MAX_ENTRIES, sizeof(*many));
	for (size_t i = 0; i < STORE_METADATA_MAX_ENTRIES; i++) {
		many[i].name = xasprintf("/private/m%zu", i);
		many[i].value = "v";
		many[i].value_len = 1;
	}
	CHECK_INT(store_metadata_set(u, NULL, many, STORE_METADATA_MAX_ENTRIES, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_LIMIT);
	size_t n = get(u, NULL, "/private/m0", 0, &e);
	CHECK_INT(n, 0);
	store_metadata_free(e, n);
	for (size_t i = 0; i < STORE_METADATA_MAX_ENTRIES; i++)
		free(many[i].name);
	free(many);
	/* the total: 16 values of 64 KiB is over 1 MiB */
	struct store_metadata bigs[16];
	for (int i = 0; i < 16; i++) {
		bigs[i].name = xasprintf("/shared/b%d", i);
		bigs[i].value = big;
		bigs[i].value_len = STORE_METADATA_MAX_VALUE;
	}
	CHECK_INT(store_metadata_set(u, NULL, bigs, 16, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_LIMIT);
	for (int i = 0; i < 16; i++)
		free(bigs[i].name);
	free(big);
	/* a mailbox's annotations go with it */
	CHECK_INT(store_mailbox_create(u, "Work", 0, &err), 0);
	CHECK_INT(set1(u, "Work", "/private/comment", "w", 1, &err), 0);
	CHECK_INT(store_mailbox_delete(u, "Work", &err), 0);
	CHECK_INT(store_mailbox_create(u, "Work", 0, &err), 0);
	n = get(u, "Work", "/private/comment", 0, &e);
	CHECK_INT(n, 0);
	store_metadata_free(e, n);
	store_user_unref(&u);
	teardown(&store);
}

static void test_urlauth_keys(void)
{
	struct store *store = setup();
	struct store_user *u;
	struct store_error err;
	unsigned char k1[STORE_URLAUTH_KEY_LEN], k2[STORE_URLAUTH_KEY_LEN],
		k3[STORE_URLAUTH_KEY_LEN], k4[STORE_URLAUTH_KEY_LEN];
	CHECK_INT(store_user_open(store, 1, &u, &err), 0);
	CHECK_INT(store_urlauth_key(u, "INBOX", false, k1, &err), 0);
	CHECK_INT(store_urlauth_key(u, "INBOX", false, k2, &err), 0);
	CHECK(memcmp(k1, k2, sizeof(k1)) == 0);
	CHECK_INT(store_urlauth_key(u, "Sent", false, k3, &err), 0);
	CHECK(memcmp(k1, k3, sizeof(k1)) != 0);
	CHECK_INT(store_urlauth_key(u, "INBOX", true, k4, &err), 0);
	CHECK(memcmp(k1, k4, sizeof(k1)) != 0);
	/* every key reset: a new one next time */
	CHECK_INT(store_urlauth_key(u, NULL, true, k2, &err), 0);
	CHECK_INT(store_urlauth_key(u, "Sent", false, k1, &err), 0);
	CHECK(memcmp(k1, k3, sizeof(k1)) != 0);
	CHECK_INT(store_urlauth_key(u, "Nowhere", false, k1, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	/* they survive the account being closed and opened again */
	CHECK_INT(store_urlauth_key(u, "INBOX", false, k2, &err), 0);
	store_user_unref(&u);
	store_close(&store);
	struct store_settings set = {.data_dir = data_dir, .fsync = false};
	CHECK_INT(store_open(&set, &store, &err), 0);
	CHECK_INT(store_user_open(store, 1, &u, &err), 0);
	CHECK_INT(store_urlauth_key(u, "INBOX", false, k3, &err), 0);
	CHECK(memcmp(k2, k3, sizeof(k2)) == 0);
	store_user_unref(&u);
	teardown(&store);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"entries", test_entries},
		{"limits_and_modseq", test_limits_and_modseq},
		{"urlauth_keys", test_urlauth_keys},
		{NULL, NULL},
	};
	return test_main(cases);
}
