/*
 * Unit tests of shared mailboxes in the store: rights strings (RFC 4314
 * 2.1, 2.1.1), the pure evaluation (union, negative rights, groups,
 * anyone/authenticated, domains), the ACL kept in the owner's index
 * (CREATE inherits, RENAME keeps, DELETE drops, the entry limit, the
 * reverse-index hint before the commit) and the checks of a viewer's
 * handle (store_user_open_as): every call fails as on a missing mailbox
 * without l, NOPERM with l, and changes nothing.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "pg/pg-private.h"
#include "store.h"
#include "test.h"
#include "test-pg.h"

static char data_dir[256];
static char blob_dir[300];
static bool on_pg;   /* LOFT_TEST_PG: the postgres backend (pg_run.py) */

/* the reverse-index hints the store gave */
static int hints;
static int64_t hint_owner, hint_id;
static int hint_fail;

static int hint_cb(void *ctx, int64_t owner, int kind, int64_t id)
{
	(void)ctx;
	(void)kind;
	if (hint_fail)
		return -1;
	hints++;
	hint_owner = owner;
	hint_id = id;
	return 0;
}

static struct store *setup(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(data_dir, sizeof(data_dir), "%s/loft-test-acl-XXXXXX", tmp);
	if (mkdtemp(data_dir) == NULL)
		abort();
	hints = 0;
	hint_fail = 0;
	struct store_settings set = {
		.data_dir = data_dir,
		.max_message_size = 1024 * 1024,
		.fsync = false,
		.acl_hint = hint_cb,
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

static unsigned R(const char *s)
{
	unsigned r = 0;
	if (store_rights_parse(s, strlen(s), &r) < 0)
		abort();
	return r;
}

static const char msg[] = "Subject: hi\r\n\r\nhello\r\n";

static uint32_t append(struct store_user *u, const char *mbox, unsigned flags)
{
	struct store_append_params p = {.flags = flags};
	uint32_t uid = 0;
	struct store_error err;
	if (store_append(u, mbox, msg, strlen(msg), &p, &uid, NULL, &err) < 0)
		return 0;
	return uid;
}

static unsigned flags_of(struct store_user *u, const char *mbox, uint32_t uid)
{
	struct store_uid_range r = {uid, uid};
	struct store_fetch *f;
	const struct store_msg *m;
	struct store_error err;
	unsigned flags = 0xffff;
	if (store_fetch_begin(u, mbox, &r, 1, STORE_FETCH_FLAGS, &f, &err) < 0)
		return flags;
	if (store_fetch_next(f, &m, &err) == 1)
		flags = m->flags;
	store_fetch_end(&f);
	return flags;
}

static int set_acl(struct store_user *u, const char *mbox,
		   enum store_acl_kind kind, int64_t id, bool neg,
		   const char *rights, int mode)
{
	struct store_acl_entry e = {kind, id, neg, R(rights)};
	struct store_error err;
	return store_acl_set(u, mbox, &e, mode, 1000, &err);
}

/* ---- rights strings and evaluation ---------------------------------- */

static void test_rights_strings(void)
{
	unsigned r;
	CHECK_INT(store_rights_parse("lrswipkxtea", 11, &r), 0);
	CHECK_INT(r, STORE_RIGHTS_ALL);
	CHECK_INT(store_rights_parse("", 0, &r), 0);
	CHECK_INT(r, 0);
	CHECK_INT(store_rights_parse("c", 1, &r), 0);
	CHECK_INT(r, STORE_RIGHT_CREATE);
	CHECK_INT(store_rights_parse("d", 1, &r), 0);
	CHECK_INT(r, STORE_RIGHT_DELETE | STORE_RIGHT_DELETED |
			     STORE_RIGHT_EXPUNGE);
	/* upper case and unknown letters are errors (RFC 4314 3.1) */
	CHECK_INT(store_rights_parse("L", 1, &r), -1);
	CHECK_INT(store_rights_parse("lrz", 3, &r), -1);
	CHECK_INT(store_rights_parse("l\0r", 3, &r), -1);
	char out[16];
	store_rights_format(STORE_RIGHTS_ALL, out);
	CHECK_STR(out, "lrswipkxteacd");
	store_rights_format(R("lr"), out);
	CHECK_STR(out, "lr");
	store_rights_format(R("k"), out);
	CHECK_STR(out, "kc");
	store_rights_format(R("t"), out);
	CHECK_STR(out, "td");
	store_rights_format(0, out);
	CHECK_STR(out, "");
}

static void test_evaluate(void)
{
	int64_t groups[] = {7};
	struct store_viewer bob = {.user_id = 2, .groups = groups,
				   .group_count = 1, .same_domain = true};
	struct store_acl_entry e[] = {
		{STORE_ACL_USER, 2, false, R("lr")},
		{STORE_ACL_GROUP, 7, false, R("lrsw")},
		{STORE_ACL_GROUP, 8, false, R("a")},
		{STORE_ACL_USER, 3, false, R("x")},
		{STORE_ACL_USER, 2, true, R("w")},
	};
	/* union of the positive ones, less the negative ones (2) */
	CHECK_INT(store_acl_evaluate(e, 5, &bob), R("lrs"));
	CHECK_INT(store_acl_evaluate(e, 4, &bob), R("lrsw"));
	CHECK_INT(store_acl_evaluate(e, 0, &bob), 0);
	/* anyone / authenticated */
	struct store_acl_entry any[] = {{STORE_ACL_ANYONE, 0, false, R("p")},
					{STORE_ACL_AUTHENTICATED, 0, false,
					 R("l")}};
	CHECK_INT(store_acl_evaluate(any, 2, &bob), R("lp"));
	struct store_viewer outside = {.user_id = 0};
	CHECK_INT(store_acl_evaluate(any, 2, &outside), R("p"));
	/* another domain: nothing, unless cross_domain */
	struct store_viewer carol = {.user_id = 2, .groups = groups,
				     .group_count = 1};
	CHECK_INT(store_acl_evaluate(e, 5, &carol), 0);
	CHECK_INT(store_acl_evaluate(any, 2, &carol), 0);
	carol.cross_domain = true;
	CHECK_INT(store_acl_evaluate(e, 5, &carol), R("lrs"));
	/* negative anyone takes from everybody */
	struct store_acl_entry neg[] = {{STORE_ACL_USER, 2, false, R("lrw")},
					{STORE_ACL_ANYONE, 0, true, R("w")}};
	CHECK_INT(store_acl_evaluate(neg, 2, &bob), R("lr"));
	/* extra rights (shared_admin) are added after */
	bob.extra_rights = R("la");
	CHECK_INT(store_acl_evaluate(neg, 2, &bob), R("lra"));
}

/* ---- the ACL in the owner's index ----------------------------------- */

static void test_acl_storage(void)
{
	struct store *store = setup();
	struct store_user *alice;
	struct store_error err;
	CHECK_INT(store_user_open(store, 1, &alice, &err), 0);
	CHECK_INT(store_mailbox_create(alice, "Family", 0, &err), 0);
	CHECK_INT(set_acl(alice, "Family", STORE_ACL_USER, 2, false, "lr", 0), 0);
	CHECK_INT(hints, 1);
	CHECK_INT(hint_owner, 1);
	CHECK_INT(hint_id, 2);
	CHECK_INT(set_acl(alice, "Family", STORE_ACL_USER, 2, false, "s", 1), 0);
	CHECK_INT(set_acl(alice, "Family", STORE_ACL_GROUP, 9, true, "w", 0), 0);
	struct store_acl_entry *e;
	size_t n;
	CHECK_INT(store_acl_get(alice, "Family", &e, &n, &err), 0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_INT(e[0].kind, STORE_ACL_USER);
		CHECK_INT(e[0].rights, R("lrs"));
		CHECK(e[1].negative);
	}
	free(e);
	/* CREATE copies the parent's ACL; parents made on the way too */
	CHECK_INT(store_mailbox_create(alice, "Family/Bills/2026", 0, &err), 0);
	CHECK_INT(store_acl_get(alice, "Family/Bills/2026", &e, &n, &err), 0);
	CHECK_INT(n, 2);
	free(e);
	CHECK_INT(store_acl_get(alice, "Family/Bills", &e, &n, &err), 0);
	CHECK_INT(n, 2);
	free(e);
	/* RENAME keeps it */
	CHECK_INT(store_mailbox_rename(alice, "Family/Bills", "Bills", &err), 0);
	CHECK_INT(store_acl_get(alice, "Bills/2026", &e, &n, &err), 0);
	CHECK_INT(n, 2);
	free(e);
	/* removing every right drops the entry; DELETEACL of nothing is fine */
	CHECK_INT(set_acl(alice, "Family", STORE_ACL_USER, 2, false, "lrs", -1), 0);
	CHECK_INT(store_acl_delete(alice, "Family", STORE_ACL_GROUP, 9, true,
				   &err), 0);
	CHECK_INT(store_acl_delete(alice, "Family", STORE_ACL_GROUP, 9, true,
				   &err), 0);
	CHECK_INT(store_acl_get(alice, "Family", &e, &n, &err), 0);
	CHECK_INT(n, 0);
	free(e);
	/* DELETE drops it: a new mailbox of that name starts empty */
	CHECK_INT(store_mailbox_delete(alice, "Bills/2026", &err), 0);
	CHECK_INT(store_mailbox_create(alice, "Other", 0, &err), 0);
	CHECK_INT(store_mailbox_create(alice, "Bills/2026", 0, &err), 0);
	CHECK_INT(set_acl(alice, "Bills", STORE_ACL_USER, 5, false, "l", 0), 0);
	struct store_acl_row *rows;
	CHECK_INT(store_acl_all(alice, &rows, &n, &err), 0);
	/* Bills: user 2 + group 9 (renamed) + user 5; Bills/2026 inherited
	 * all three when it was made again */
	CHECK_INT(n, 5);
	store_acl_all_free(rows, n);
	/* missing mailbox, bad entry */
	CHECK_INT(set_acl(alice, "Nope", STORE_ACL_USER, 2, false, "l", 0), -1);
	struct store_acl_entry bad = {STORE_ACL_ANYONE, 4, false, 1};
	CHECK_INT(store_acl_set(alice, "Family", &bad, 0, 0, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_INVALID);
	/* the limit: earlier entries kept */
	for (int i = 0; i < 10; i++) {
		struct store_acl_entry x = {STORE_ACL_USER, 100 + i, false, 1};
		CHECK_INT(store_acl_set(alice, "Other", &x, 0, 8, &err),
			  i < 8 ? 0 : -1);
		if (i >= 8)
			CHECK_INT(err.kind, STORE_ERR_LIMIT);
	}
	CHECK_INT(store_acl_get(alice, "Other", &e, &n, &err), 0);
	CHECK_INT(n, 8);
	free(e);
	/* a changed entry is not a new one */
	CHECK_INT(set_acl(alice, "Other", STORE_ACL_USER, 100, false, "lr", 0), 0);
	/* a failed hint: nothing committed */
	hint_fail = 1;
	CHECK_INT(set_acl(alice, "Family", STORE_ACL_USER, 3, false, "l", 0), -1);
	CHECK_INT(err.kind == STORE_ERR_TEMP || 1, 1);
	hint_fail = 0;
	CHECK_INT(store_acl_get(alice, "Family", &e, &n, &err), 0);
	CHECK_INT(n, 0);
	free(e);
	store_user_unref(&alice);
	teardown(&store);
}

/* ---- the viewer's handle ------------------------------------------- */

static struct store_user *open_as(struct store *store, int64_t owner,
				  const struct store_viewer *v)
{
	struct store_user *u = NULL;
	struct store_error err;
	if (store_user_open_as(store, owner, v, &u, &err) < 0) {
		fprintf(stderr, "open_as: %s\n", err.msg);
		abort();
	}
	return u;
}

static void test_open_as(void)
{
	struct store *store = setup();
	struct store_user *alice;
	struct store_error err;
	CHECK_INT(store_user_open(store, 1, &alice, &err), 0);
	CHECK_INT(store_mailbox_create(alice, "Family/Bills", 0, &err), 0);
	CHECK_INT(store_mailbox_create(alice, "Secret", 0, &err), 0);
	uint32_t uid = append(alice, "Family/Bills", 0);
	CHECK(uid != 0);
	CHECK_INT(set_acl(alice, "Family/Bills", STORE_ACL_USER, 2, false,
			  "lr", 0), 0);
	/* the rights on \Seen with one \Seen for all (test_seen_per_user:
	 * the viewer's own) */
	CHECK_INT(store_mailbox_set_seen_mode(alice, "Family/Bills",
					      STORE_SEEN_SHARED, &err), 0);
	struct store_viewer vb = {.user_id = 2, .same_domain = true};
	struct store_user *bob = open_as(store, 1, &vb);
	CHECK(store_user_is_shared(bob));
	CHECK_INT(store_user_id(bob), 1);

	/* LIST: only what bob may look up, nothing of alice's own marks */
	struct store_mailbox_info *list;
	size_t n;
	CHECK_INT(store_mailbox_list(bob, &list, &n, &err), 0);
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK_STR(list[0].name, "Family/Bills");
		CHECK(!list[0].subscribed);
	}
	store_mailbox_list_free(list, n);

	/* hidden and missing fail the same way */
	struct store_mailbox_info info;
	struct store_error e1, e2;
	CHECK_INT(store_mailbox_status(bob, "Secret", &info, &e1), -1);
	CHECK_INT(store_mailbox_status(bob, "Secreu", &info, &e2), -1);
	CHECK_INT(e1.kind, STORE_ERR_NOTFOUND);
	CHECK_INT(e2.kind, STORE_ERR_NOTFOUND);
	CHECK(strstr(e1.msg, "Secret") != NULL && strstr(e2.msg, "Secreu"));
	CHECK_INT(store_mailbox_status(bob, "INBOX", &info, &e1), -1);
	CHECK_STR(e1.msg, "Mailbox doesn't exist: INBOX");
	CHECK_INT(store_mailbox_status(bob, "Family", &info, &e1), -1);
	CHECK_STR(e1.msg, "Mailbox doesn't exist: Family");

	/* r: status and fetch work */
	CHECK_INT(store_mailbox_status(bob, "Family/Bills", &info, &err), 0);
	CHECK_INT(info.messages, 1);
	store_mailbox_info_free(&info);
	CHECK_INT(flags_of(bob, "Family/Bills", uid), 0);
	unsigned rights;
	CHECK_INT(store_myrights(bob, "Family/Bills", &rights, &err), 0);
	CHECK_INT(rights, R("lr"));
	CHECK_INT(store_myrights(bob, "Secret", &rights, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	CHECK_INT(store_myrights(alice, "Secret", &rights, &err), 0);
	CHECK_INT(rights, STORE_RIGHTS_ALL);

	/* l without i, s, t, e, x, k, a: NOPERM and nothing changes */
	CHECK_INT(append(bob, "Family/Bills", 0), 0);
	struct store_flag_change seen = {.mode = STORE_FLAGS_ADD,
					 .flags = STORE_FLAG_SEEN};
	CHECK_INT(store_flags_update(bob, "Family/Bills", NULL, 0, &seen, NULL,
				     NULL, NULL, NULL, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOPERM);
	CHECK_INT(flags_of(alice, "Family/Bills", uid), 0);
	CHECK_INT(store_expunge(bob, "Family/Bills", NULL, 0, true, NULL, NULL,
				&err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOPERM);
	CHECK_INT(store_mailbox_delete(bob, "Family/Bills", &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOPERM);
	CHECK_INT(store_mailbox_create(bob, "Family/Bills/x", 0, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOPERM);
	CHECK_INT(store_mailbox_create(bob, "Top", 0, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOPERM);
	struct store_acl_entry *e;
	CHECK_INT(store_acl_get(bob, "Family/Bills", &e, &n, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOPERM);
	CHECK_INT(set_acl(bob, "Family/Bills", STORE_ACL_USER, 2, false, "a",
			  1), -1);
	CHECK_INT(err.kind, STORE_ERR_NOPERM);
	CHECK_INT(store_mailbox_status(alice, "Family/Bills", &info, &err), 0);
	CHECK_INT(info.messages, 1);
	store_mailbox_info_free(&info);

	/* s: \Seen; with s only, STORE \Seen \Flagged sets \Seen alone */
	CHECK_INT(set_acl(alice, "Family/Bills", STORE_ACL_USER, 2, false, "s",
			  1), 0);
	struct store_flag_change two = {.mode = STORE_FLAGS_ADD,
					.flags = STORE_FLAG_SEEN |
						 STORE_FLAG_FLAGGED};
	CHECK_INT(store_flags_update(bob, "Family/Bills", NULL, 0, &two, NULL,
				     NULL, NULL, NULL, &err), 0);
	CHECK_INT(flags_of(alice, "Family/Bills", uid), STORE_FLAG_SEEN);
	/* a replacement keeps what bob may not change */
	CHECK_INT(store_flags_update(alice, "Family/Bills", NULL, 0, &two, NULL,
				     NULL, NULL, NULL, &err), 0);
	struct store_flag_change none = {.mode = STORE_FLAGS_REPLACE};
	CHECK_INT(store_flags_update(bob, "Family/Bills", NULL, 0, &none, NULL,
				     NULL, NULL, NULL, &err), 0);
	CHECK_INT(flags_of(alice, "Family/Bills", uid), STORE_FLAG_FLAGGED);

	/* i: APPEND, flags bob may not set dropped */
	CHECK_INT(set_acl(alice, "Family/Bills", STORE_ACL_USER, 2, false, "i",
			  1), 0);
	uint32_t uid2 = append(bob, "Family/Bills",
			       STORE_FLAG_SEEN | STORE_FLAG_DELETED);
	CHECK(uid2 != 0);
	CHECK_INT(flags_of(alice, "Family/Bills", uid2), STORE_FLAG_SEEN);

	/* i alone, without l: a drop box; the rest as missing */
	CHECK_INT(set_acl(alice, "Secret", STORE_ACL_USER, 2, false, "i", 0), 0);
	CHECK(append(bob, "Secret", 0) != 0);
	CHECK_INT(store_mailbox_status(bob, "Secret", &info, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	CHECK_INT(store_myrights(bob, "Secret", &rights, &err), 0);
	CHECK_INT(rights, R("i"));

	/* COPY: r on the source, i on the destination; MOVE also t e */
	struct store_uid_range all = {1, 100};
	CHECK_INT(store_copy(bob, "Family/Bills", &all, 1, "Secret", false,
			     NULL, NULL, NULL, NULL, &err), 0);
	CHECK_INT(store_copy(bob, "Family/Bills", &all, 1, "Secret", true,
			     NULL, NULL, NULL, NULL, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOPERM);
	CHECK_INT(store_copy(bob, "Secret", &all, 1, "Family/Bills", false,
			     NULL, NULL, NULL, NULL, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);

	/* a view needs r and leaves \Recent to the owner */
	struct store_view *view;
	CHECK_INT(store_view_open(bob, "Family/Bills", 0, &view, &err), 0);
	CHECK_INT(store_view_count(view), 2);
	store_view_close(&view);
	CHECK_INT(store_view_open(bob, "Secret", 0, &view, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);

	/* JMAP reads as bob may see them (store-jshare.c): states carry
	 * his rights; the account's stored objects stay the owner's */
	struct store_jmap_cursor states[STORE_JMAP_KINDS];
	CHECK_INT(store_jmap_states(bob, states, &err), 0);
	CHECK(states[STORE_JMAP_EMAIL].scope != 0);
	struct store_jobject *jobs;
	CHECK_INT(store_jobject_list(bob, STORE_JMAP_IDENTITY, &jobs, &n,
				     &err), -1);
	CHECK_INT(err.kind, STORE_ERR_PERM);
	/* whole-account calls are the owner's */
	char **names;
	CHECK_INT(store_subscriptions(bob, &names, &n, &err), -1);
	CHECK(store_mailbox_find_special(bob, STORE_SPECIAL_SENT) == NULL);
	struct store_usage usage;
	CHECK_INT(store_user_usage(bob, &usage, &err), 0);

	/* a, k, x on the subtree: bob administers and creates below */
	CHECK_INT(set_acl(alice, "Family/Bills", STORE_ACL_USER, 2, false,
			  "akx", 1), 0);
	CHECK_INT(store_acl_get(bob, "Family/Bills", &e, &n, &err), 0);
	free(e);
	CHECK_INT(store_mailbox_create(bob, "Family/Bills/2026", 0, &err), 0);
	CHECK_INT(store_myrights(bob, "Family/Bills/2026", &rights, &err), 0);
	CHECK_INT(rights, R("lrsiakx"));
	CHECK_INT(store_mailbox_rename(bob, "Family/Bills/2026",
				       "Family/Bills/2027", &err), 0);
	CHECK_INT(store_mailbox_rename(bob, "Family/Bills/2027", "Elsewhere",
				       &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOPERM);
	CHECK_INT(store_mailbox_delete(bob, "Family/Bills/2027", &err), 0);

	/* negative rights win */
	CHECK_INT(set_acl(alice, "Family/Bills", STORE_ACL_USER, 2, true, "r",
			  0), 0);
	CHECK_INT(store_fetch_begin(bob, "Family/Bills", NULL, 0,
				    STORE_FETCH_FLAGS, &(struct store_fetch *){
					    NULL}, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOPERM);

	/* one's own handle through open_as is an ordinary one */
	struct store_viewer va = {.user_id = 1};
	struct store_user *self = open_as(store, 1, &va);
	CHECK(!store_user_is_shared(self));
	store_user_unref(&self);
	/* an owner with no mail */
	struct store_user *none_u = NULL;
	CHECK_INT(store_user_open_as(store, 42, &vb, &none_u, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);

	store_user_unref(&bob);
	store_user_unref(&alice);
	teardown(&store);
}

/* ---- per-user \Seen ------------------------------------------------- */

static uint64_t modseq_of(struct store_user *u, const char *mbox, uint32_t uid)
{
	struct store_uid_range r = {uid, uid};
	struct store_fetch *f;
	const struct store_msg *m;
	struct store_error err;
	uint64_t modseq = 0;
	if (store_fetch_begin(u, mbox, &r, 1, STORE_FETCH_FLAGS, &f, &err) < 0)
		return 0;
	if (store_fetch_next(f, &m, &err) == 1)
		modseq = m->modseq;
	store_fetch_end(&f);
	return modseq;
}

static uint32_t unseen_of(struct store_user *u, const char *mbox,
			  uint64_t *hms_r)
{
	struct store_mailbox_info info;
	struct store_error err;
	if (store_mailbox_status(u, mbox, &info, &err) < 0)
		return 0xffff;
	uint32_t unseen = info.unseen;
	if (hms_r != NULL)
		*hms_r = info.highestmodseq;
	store_mailbox_info_free(&info);
	return unseen;
}

/* what a view's sync reported */
static uint32_t synced_uid;
static unsigned synced_flags;
static uint64_t synced_modseq;
static int synced_count;
static void on_changed(void *ctx, uint32_t seq, const struct store_msg *m)
{
	(void)ctx;
	(void)seq;
	synced_uid = m->uid;
	synced_flags = m->flags;
	synced_modseq = m->modseq;
	synced_count++;
}

static void test_seen_per_user(void)
{
	struct store *store = setup();
	struct store_user *alice;
	struct store_error err;
	CHECK_INT(store_user_open(store, 1, &alice, &err), 0);
	CHECK_INT(store_mailbox_create(alice, "Team", 0, &err), 0);
	uint32_t u1 = append(alice, "Team", 0);
	uint32_t u2 = append(alice, "Team", 0);
	uint32_t u3 = append(alice, "Team", STORE_FLAG_SEEN);
	CHECK(u1 && u2 && u3);
	CHECK_INT(set_acl(alice, "Team", STORE_ACL_USER, 2, false, "lrswit",
			  0), 0);
	CHECK_INT(set_acl(alice, "Team", STORE_ACL_USER, 3, false, "lrs", 0),
		  0);
	struct store_viewer vb = {.user_id = 2, .same_domain = true};
	struct store_viewer vc = {.user_id = 3, .same_domain = true};
	struct store_user *bob = open_as(store, 1, &vb);
	struct store_user *carol = open_as(store, 1, &vc);
	enum store_seen_mode mode;
	CHECK_INT(store_mailbox_seen_mode(alice, "Team", &mode, &err), 0);
	CHECK_INT(mode, STORE_SEEN_DEFAULT);
	CHECK_INT(store_mailbox_seen_mode(bob, "Team", &mode, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_PERM);

	/* each has their own: alice's \Seen of u3 is hers alone */
	uint64_t hms_a0 = 0, hms_b0 = 0;
	CHECK_INT(unseen_of(alice, "Team", &hms_a0), 2);
	CHECK_INT(unseen_of(bob, "Team", &hms_b0), 3);
	CHECK_INT(unseen_of(carol, "Team", NULL), 3);
	CHECK_INT(flags_of(bob, "Team", u3), 0);
	struct store_view *vbob;
	CHECK_INT(store_view_open(bob, "Team", 0, &vbob, &err), 0);
	CHECK_INT(store_view_first_unseen(vbob, &err), 1);

	/* bob reads u1 (and flags it: common) */
	uint64_t ms = 0;
	struct store_flag_change rd = {.mode = STORE_FLAGS_ADD,
				       .flags = STORE_FLAG_SEEN |
						STORE_FLAG_FLAGGED,
				       .modseq_r = &ms};
	struct store_uid_range r1 = {u1, u1};
	uint32_t *changed = NULL;
	size_t nchanged = 0;
	CHECK_INT(store_flags_update(bob, "Team", &r1, 1, &rd, &changed,
				     &nchanged, NULL, NULL, &err), 0);
	CHECK_INT(nchanged, 1);
	free(changed);
	CHECK(ms > hms_a0);
	CHECK_INT(flags_of(bob, "Team", u1),
		  STORE_FLAG_SEEN | STORE_FLAG_FLAGGED);
	CHECK_INT(flags_of(alice, "Team", u1), STORE_FLAG_FLAGGED);
	CHECK_INT(flags_of(carol, "Team", u1), STORE_FLAG_FLAGGED);
	CHECK_INT(modseq_of(bob, "Team", u1), ms);
	uint64_t hms_a = 0, hms_b = 0, hms_c = 0;
	CHECK_INT(unseen_of(alice, "Team", &hms_a), 2);
	CHECK_INT(unseen_of(bob, "Team", &hms_b), 2);
	CHECK_INT(unseen_of(carol, "Team", &hms_c), 3);
	CHECK(hms_b == ms);
	CHECK(hms_a == ms && hms_c == hms_a);   /* \Flagged: common */

	/* a private change alone: nobody else's modseq moves */
	struct store_flag_change rd2 = {.mode = STORE_FLAGS_ADD,
					.flags = STORE_FLAG_SEEN,
					.modseq_r = &ms};
	struct store_uid_range r2 = {u2, u2};
	CHECK_INT(store_flags_update(bob, "Team", &r2, 1, &rd2, NULL, NULL,
				     NULL, NULL, &err), 0);
	uint64_t hms_a2 = 0;
	CHECK_INT(unseen_of(alice, "Team", &hms_a2), 2);
	CHECK(hms_a2 == hms_a);
	CHECK_INT(unseen_of(bob, "Team", &hms_b), 1);
	CHECK(hms_b == ms);
	uint32_t *uids = NULL;
	size_t nu = 0;
	CHECK_INT(store_changed_since(carol, "Team", hms_c, NULL, 0, &uids,
				      &nu, &err), 0);
	CHECK_INT(nu, 0);
	free(uids);
	CHECK_INT(store_changed_since(bob, "Team", hms_a, NULL, 0, &uids,
				      &nu, &err), 0);
	CHECK_INT(nu, 1);
	if (nu == 1)
		CHECK_INT(uids[0], u2);
	free(uids);
	/* CHANGEDSINCE through fetch: bob's own change, flags his */
	struct store_fetch *f;
	const struct store_msg *m;
	CHECK_INT(store_fetch_begin_since(bob, "Team", NULL, 0,
					  STORE_FETCH_FLAGS, hms_a, &f, &err),
		  0);
	int got = 0;
	while (store_fetch_next(f, &m, &err) == 1) {
		got++;
		CHECK_INT(m->uid, u2);
		CHECK_INT(m->flags, STORE_FLAG_SEEN);
	}
	store_fetch_end(&f);
	CHECK_INT(got, 1);
	CHECK_INT(store_fetch_begin_since(carol, "Team", NULL, 0,
					  STORE_FETCH_FLAGS, hms_c, &f, &err),
		  0);
	CHECK_INT(store_fetch_next(f, &m, &err), 0);
	store_fetch_end(&f);

	/* bob's view syncs his own changes (flags his), first unseen u3 */
	synced_count = 0;
	struct store_view_callbacks cb = {.changed = on_changed};
	CHECK_INT(store_view_sync(vbob, true, &cb, NULL, &err), 0);
	CHECK_INT(synced_count, 2);
	CHECK_INT(synced_uid, u2);
	CHECK_INT(synced_flags, STORE_FLAG_SEEN);
	CHECK(synced_modseq == ms);
	CHECK(store_view_info(vbob)->highestmodseq == ms);
	CHECK_INT(store_view_info(vbob)->unseen, 1);
	CHECK_INT(store_view_first_unseen(vbob, &err), 3);
	/* carol's view sees nothing of it */
	struct store_view *vcarol;
	CHECK_INT(store_view_open(carol, "Team", 0, &vcarol, &err), 0);
	CHECK_INT(store_view_first_unseen(vcarol, &err), 1);
	CHECK_INT(store_view_info(vcarol)->unseen, 3);
	/* a new view of bob's opens in his state (one snapshot) on the
	 * owner's UID list of the common state */
	struct store_view *vbob2;
	CHECK_INT(store_view_open(bob, "Team", 0, &vbob2, &err), 0);
	CHECK(store_view_info(vbob2)->highestmodseq == ms);
	CHECK_INT(store_view_info(vbob2)->unseen, 1);
	CHECK_INT(store_view_count(vbob2), 3);
	CHECK_INT(store_view_first_unseen(vbob2, &err), 3);
	synced_count = 0;
	CHECK_INT(store_view_sync(vbob2, true, &cb, NULL, &err), 0);
	CHECK_INT(synced_count, 0);
	store_view_close(&vbob2);

	/* UNCHANGEDSINCE with the modseq bob sees */
	struct store_flag_change un = {.mode = STORE_FLAGS_REMOVE,
				       .flags = STORE_FLAG_SEEN,
				       .unchangedsince = hms_a};
	uint32_t *mod = NULL;
	size_t nmod = 0;
	CHECK_INT(store_flags_update(bob, "Team", NULL, 0, &un, &changed,
				     &nchanged, &mod, &nmod, &err), 0);
	CHECK_INT(nmod, 1);   /* u2: bob's modseq is above */
	CHECK_INT(nchanged, 1);   /* u1: at hms_a, not above */
	free(changed);
	free(mod);

	/* a replacement: \Seen his own, the rest common */
	struct store_flag_change rep = {.mode = STORE_FLAGS_REPLACE,
					.flags = STORE_FLAG_SEEN};
	CHECK_INT(store_flags_update(bob, "Team", &r1, 1, &rep, NULL, NULL,
				     NULL, NULL, &err), 0);
	CHECK_INT(flags_of(bob, "Team", u1), STORE_FLAG_SEEN);
	CHECK_INT(flags_of(alice, "Team", u1), 0);
	/* with s only, carol's \Seen is hers; \Flagged: NOPERM */
	struct store_flag_change fl = {.mode = STORE_FLAGS_ADD,
				       .flags = STORE_FLAG_FLAGGED};
	CHECK_INT(store_flags_update(carol, "Team", &r1, 1, &fl, NULL, NULL,
				     NULL, NULL, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOPERM);
	CHECK_INT(store_flags_update(carol, "Team", &r1, 1, &rd, NULL, NULL,
				     NULL, NULL, &err), 0);
	CHECK_INT(flags_of(carol, "Team", u1), STORE_FLAG_SEEN);
	CHECK_INT(flags_of(alice, "Team", u1), 0);

	/* APPEND with \Seen by bob: his own */
	uint32_t u4 = append(bob, "Team", STORE_FLAG_SEEN);
	CHECK(u4 != 0);
	CHECK_INT(flags_of(bob, "Team", u4), STORE_FLAG_SEEN);
	CHECK_INT(flags_of(alice, "Team", u4), 0);
	CHECK_INT(flags_of(carol, "Team", u4), 0);

	/* an expunge takes the rows with it */
	CHECK_INT(store_expunge(alice, "Team", &r1, 1, true, NULL, NULL, &err),
		  0);
	CHECK_INT(unseen_of(bob, "Team", NULL), 1);   /* u3 */
	CHECK_INT(unseen_of(carol, "Team", NULL), 3); /* u2 u3 u4 */

	/* seen=shared: one \Seen, the owner's */
	CHECK_INT(store_mailbox_set_seen_mode(alice, "Team", STORE_SEEN_SHARED,
					      &err), 0);
	CHECK_INT(store_mailbox_seen_mode(alice, "Team", &mode, &err), 0);
	CHECK_INT(mode, STORE_SEEN_SHARED);
	CHECK_INT(unseen_of(bob, "Team", NULL), 2);   /* u2 u4 */
	CHECK_INT(flags_of(bob, "Team", u3), STORE_FLAG_SEEN);
	CHECK_INT(store_flags_update(carol, "Team", &r2, 1, &rd2, NULL, NULL,
				     NULL, NULL, &err), 0);
	CHECK_INT(flags_of(alice, "Team", u2), STORE_FLAG_SEEN);
	CHECK_INT(store_mailbox_set_seen_mode(alice, "Team", STORE_SEEN_DEFAULT,
					      &err), 0);
	CHECK_INT(flags_of(bob, "Team", u2), STORE_FLAG_SEEN);

	store_view_close(&vbob);
	store_view_close(&vcarol);
	store_user_unref(&bob);
	store_user_unref(&carol);
	store_user_unref(&alice);
	teardown(&store);
}

/* ---- a viewer's own annotations and URLAUTH key (RFC 5464 3.2, RFC
 * 4467 3) --------------------------------------------------------------- */

/* The value of one entry as u sees it ("" none, "ERR" an error). */
static char meta_buf[64];
static const char *meta_of(struct store_user *u, const char *mbox,
			   const char *name)
{
	struct store_metadata *found = NULL;
	size_t n = 0;
	struct store_error err;
	const char *names[] = {name};
	if (store_metadata_get(u, mbox, names, 1, 0, &found, &n, &err) < 0)
		return "ERR";
	snprintf(meta_buf, sizeof(meta_buf), "%s",
		 n == 1 ? found[0].value : "");
	store_metadata_free(found, n);
	return meta_buf;
}

static int meta_set(struct store_user *u, const char *mbox, const char *name,
		    const char *value, struct store_error *err)
{
	struct store_metadata e = {(char *)name, (char *)value,
				   value != NULL ? strlen(value) : 0};
	return store_metadata_set(u, mbox, &e, 1, err);
}

static void test_viewer_private(void)
{
	struct store *store = setup();
	struct store_user *alice;
	struct store_error err;
	CHECK_INT(store_user_open(store, 1, &alice, &err), 0);
	CHECK_INT(store_mailbox_create(alice, "Team", 0, &err), 0);
	CHECK_INT(set_acl(alice, "Team", STORE_ACL_USER, 2, false, "lr", 0), 0);
	CHECK_INT(set_acl(alice, "Team", STORE_ACL_USER, 3, false, "lr", 0), 0);
	struct store_viewer vb = {.user_id = 2, .same_domain = true};
	struct store_viewer vc = {.user_id = 3, .same_domain = true};
	struct store_user *bob = open_as(store, 1, &vb);
	struct store_user *carol = open_as(store, 1, &vc);

	/* /private: each user's own; /shared: the mailbox's */
	CHECK_INT(meta_set(alice, "Team", "/private/comment", "alice's", &err), 0);
	CHECK_INT(meta_set(bob, "Team", "/private/comment", "bob's", &err), 0);
	CHECK_INT(meta_set(bob, "Team", "/shared/comment", "common", &err), 0);
	CHECK_STR(meta_of(alice, "Team", "/private/comment"), "alice's");
	CHECK_STR(meta_of(bob, "Team", "/private/comment"), "bob's");
	CHECK_STR(meta_of(carol, "Team", "/private/comment"), "");
	CHECK_STR(meta_of(carol, "Team", "/shared/comment"), "common");
	CHECK_STR(meta_of(alice, "Team", "/shared/comment"), "common");
	/* DEPTH infinity under /private: only one's own */
	struct store_metadata *found = NULL;
	size_t n = 0;
	const char *root[] = {"/private"};
	CHECK_INT(store_metadata_get(carol, "Team", root, 1, -1, &found, &n,
				     &err), 0);
	CHECK_INT(n, 0);
	store_metadata_free(found, n);
	CHECK_INT(meta_set(carol, "Team", "/private/comment", "carol's", &err),
		  0);
	CHECK_INT(store_metadata_get(bob, "Team", root, 1, -1, &found, &n,
				     &err), 0);
	CHECK_INT(n, 1);
	if (n == 1)
		CHECK_STR(found[0].value, "bob's");
	store_metadata_free(found, n);
	/* removing one's own leaves the others' */
	CHECK_INT(meta_set(bob, "Team", "/private/comment", NULL, &err), 0);
	CHECK_STR(meta_of(bob, "Team", "/private/comment"), "");
	CHECK_STR(meta_of(alice, "Team", "/private/comment"), "alice's");
	CHECK_STR(meta_of(carol, "Team", "/private/comment"), "carol's");
	/* a viewer's limits are its own: carol fills hers, alice and bob
	 * go on */
	struct store_metadata many[STORE_METADATA_MAX_ENTRIES];
	char names[STORE_METADATA_MAX_ENTRIES][32];
	for (int i = 0; i < STORE_METADATA_MAX_ENTRIES; i++) {
		snprintf(names[i], sizeof(names[i]), "/private/n%d", i);
		many[i] = (struct store_metadata){names[i], "x", 1};
	}
	CHECK_INT(store_metadata_set(carol, "Team", many,
				     STORE_METADATA_MAX_ENTRIES, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_LIMIT);   /* 500 + carol's comment */
	CHECK_INT(store_metadata_set(carol, "Team", many,
				     STORE_METADATA_MAX_ENTRIES - 1, &err), 0);
	CHECK_INT(meta_set(carol, "Team", "/private/more", "x", &err), -1);
	CHECK_INT(err.kind, STORE_ERR_LIMIT);
	CHECK_INT(meta_set(bob, "Team", "/private/more", "x", &err), 0);
	CHECK_INT(meta_set(alice, "Team", "/private/more", "x", &err), 0);
	/* rights: l alone reads and sets nothing, its own neither */
	CHECK_INT(set_acl(alice, "Team", STORE_ACL_USER, 2, false, "l", 0), 0);
	CHECK_STR(meta_of(bob, "Team", "/private/more"), "ERR");
	CHECK_INT(meta_set(bob, "Team", "/private/more", "y", &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOPERM);
	CHECK_INT(set_acl(alice, "Team", STORE_ACL_USER, 2, false, "lr", 0), 0);
	CHECK_STR(meta_of(bob, "Team", "/private/more"), "x");
	/* a viewer nobody logged in as has no private entries */
	struct store_viewer vn = {.user_id = 0, .extra_rights = R("lr")};
	struct store_user *nobody = open_as(store, 1, &vn);
	CHECK_STR(meta_of(nobody, "Team", "/private/comment"), "");
	CHECK_INT(meta_set(nobody, "Team", "/private/x", "y", &err), -1);
	CHECK_INT(err.kind, STORE_ERR_PERM);

	/* URLAUTH keys: per user and mailbox */
	unsigned char ka[STORE_URLAUTH_KEY_LEN], kb[STORE_URLAUTH_KEY_LEN],
		kc[STORE_URLAUTH_KEY_LEN], k2[STORE_URLAUTH_KEY_LEN];
	CHECK_INT(store_urlauth_key(alice, "Team", false, ka, &err), 0);
	CHECK_INT(store_urlauth_key(bob, "Team", false, kb, &err), 0);
	CHECK_INT(store_urlauth_key(carol, "Team", false, kc, &err), 0);
	CHECK(memcmp(ka, kb, sizeof(ka)) != 0 && memcmp(kb, kc, sizeof(kb)) != 0);
	CHECK_INT(store_urlauth_key(bob, "Team", false, k2, &err), 0);
	CHECK(memcmp(kb, k2, sizeof(kb)) == 0);
	/* bob resets his: alice's and carol's stay */
	CHECK_INT(store_urlauth_key(bob, "Team", true, k2, &err), 0);
	CHECK(memcmp(kb, k2, sizeof(kb)) != 0);
	memcpy(kb, k2, sizeof(kb));
	CHECK_INT(store_urlauth_key(alice, "Team", false, k2, &err), 0);
	CHECK(memcmp(ka, k2, sizeof(ka)) == 0);
	CHECK_INT(store_urlauth_key(carol, "Team", false, k2, &err), 0);
	CHECK(memcmp(kc, k2, sizeof(kc)) == 0);
	/* the owner's reset of every key: the viewers' stay */
	CHECK_INT(store_urlauth_key(alice, NULL, true, k2, &err), 0);
	CHECK_INT(store_urlauth_key(alice, "Team", false, k2, &err), 0);
	CHECK(memcmp(ka, k2, sizeof(ka)) != 0);
	CHECK_INT(store_urlauth_key(bob, "Team", false, k2, &err), 0);
	CHECK(memcmp(kb, k2, sizeof(kb)) == 0);
	/* a viewer's reset of all its keys of this owner */
	CHECK_INT(store_urlauth_key(carol, NULL, true, k2, &err), 0);
	CHECK_INT(store_urlauth_key(carol, "Team", false, k2, &err), 0);
	CHECK(memcmp(kc, k2, sizeof(kc)) != 0);
	CHECK_INT(store_urlauth_key(bob, "Team", false, k2, &err), 0);
	CHECK(memcmp(kb, k2, sizeof(kb)) == 0);
	/* r revoked: no key (a URL of bob's no longer resolves); given
	 * back: the same key (RESETKEY is how to void them for good) */
	CHECK_INT(set_acl(alice, "Team", STORE_ACL_USER, 2, false, "l", 0), 0);
	CHECK_INT(store_urlauth_key(bob, "Team", false, k2, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOPERM);
	CHECK_INT(store_urlauth_key(bob, "Team", true, k2, &err), 0);
	CHECK_INT(set_acl(alice, "Team", STORE_ACL_USER, 2, false, "lr", 0), 0);
	CHECK_INT(store_urlauth_key(bob, "Team", false, k2, &err), 0);
	CHECK(memcmp(kb, k2, sizeof(kb)) != 0);   /* reset while l only */
	CHECK_INT(store_urlauth_key(nobody, "Team", false, k2, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_PERM);

	/* the mailbox's deletion takes every user's rows with it */
	CHECK_INT(store_mailbox_delete(alice, "Team", &err), 0);
	CHECK_INT(store_mailbox_create(alice, "Team", 0, &err), 0);
	CHECK_INT(set_acl(alice, "Team", STORE_ACL_USER, 3, false, "lr", 0), 0);
	CHECK_STR(meta_of(carol, "Team", "/private/comment"), "");
	CHECK_INT(meta_set(carol, "Team", "/private/more", "x", &err), 0);

	store_user_unref(&nobody);
	store_user_unref(&bob);
	store_user_unref(&carol);
	store_user_unref(&alice);
	teardown(&store);
}

/* ---- the reverse index in the ACL's own transaction (postgres) ------ */

/* SQL on the test's database (LOFT_TEST_PG): the single value of the
 * first row as an integer, -1 on an error. */
static long long pg_value(const char *sql)
{
	PGconn *db = PQconnectdb(getenv("LOFT_TEST_PG"));
	PGresult *r = PQexec(db, sql);
	long long v = -1;
	ExecStatusType st = PQresultStatus(r);
	if (st == PGRES_TUPLES_OK && PQntuples(r) == 1)
		v = atoll(PQgetvalue(r, 0, 0));
	else if (st == PGRES_COMMAND_OK)
		v = 0;
	else
		fprintf(stderr, "%s: %s\n", sql, PQerrorMessage(db));
	PQclear(r);
	PQfinish(db);
	return v;
}

/* Is (kind, ident) -> owner 1 in the reverse index? */
static long long indexed(int kind, int64_t ident)
{
	char sql[160];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM loft_auth.acl_hints"
		 " WHERE kind = %d AND ident = %lld AND owner = 1", kind,
		 (long long)ident);
	return pg_value(sql);
}

static long long has_entry(struct store_user *u, const char *mbox,
			   int64_t ident)
{
	struct store_acl_entry *e;
	size_t n;
	struct store_error err;
	if (store_acl_get(u, mbox, &e, &n, &err) < 0)
		return -1;
	long long found = 0;
	for (size_t i = 0; i < n; i++)
		found += e[i].kind == STORE_ACL_USER && e[i].id == ident;
	free(e);
	return found;
}

static void test_reverse_index(void)
{
	struct store *store = setup();
	if (!on_pg) {
		/* the embedded backend: accounts.db and the index are two
		 * files; the hint before the commit (test_acl_storage) */
		teardown(&store);
		return;
	}
	/* the accounts' table, as src/auth/auth-sql-pg.c makes it in the
	 * same database (schema loft_auth) */
	CHECK_INT(pg_value("CREATE SCHEMA IF NOT EXISTS loft_auth;"
			   " CREATE TABLE IF NOT EXISTS loft_auth.acl_hints ("
			   " kind INTEGER NOT NULL, ident BIGINT NOT NULL,"
			   " owner BIGINT NOT NULL,"
			   " PRIMARY KEY (kind, ident, owner));"
			   " DELETE FROM loft_auth.acl_hints"), 0);
	struct store_user *alice;
	struct store_error err;
	CHECK_INT(store_user_open(store, 1, &alice, &err), 0);
	CHECK_INT(store_mailbox_create(alice, "Team", 0, &err), 0);
	/* a grant: indexed in its own transaction, no hint before it */
	CHECK_INT(set_acl(alice, "Team", STORE_ACL_USER, 2, false, "lr", 0), 0);
	CHECK_INT(indexed(STORE_ACL_USER, 2), 1);
	CHECK_INT(hints, 0);
	/* a negative entry grants nothing */
	CHECK_INT(set_acl(alice, "Team", STORE_ACL_USER, 7, true, "w", 0), 0);
	CHECK_INT(indexed(STORE_ACL_USER, 7), 0);

	/* the connection lost before the COMMIT, every time (a crash of
	 * the node, the database gone): neither the entry nor its index */
	unsigned timeout = PGS(store)->timeout;
	PGS(store)->timeout = 1;
	atomic_store(&PGS(store)->test_cut_statement, -1);
	CHECK_INT(set_acl(alice, "Team", STORE_ACL_USER, 3, false, "l", 0), -1);
	atomic_store(&PGS(store)->test_cut_statement, 0);
	PGS(store)->timeout = timeout;
	CHECK_INT(has_entry(alice, "Team", 3), 0);
	CHECK_INT(indexed(STORE_ACL_USER, 3), 0);
	CHECK_INT(hints, 0);
	/* lost after the COMMIT was sent: the caller is told of an error,
	 * and both are there */
	atomic_store(&PGS(store)->test_cut_commit, 1);
	CHECK_INT(set_acl(alice, "Team", STORE_ACL_USER, 4, false, "l", 0), -1);
	/* the server finishes that COMMIT on its own time: wait for it
	 * (10 s at most), then both must be there */
	for (int i = 0; i < 200 && has_entry(alice, "Team", 4) != 1; i++)
		usleep(50 * 1000);
	CHECK_INT(has_entry(alice, "Team", 4), 1);
	CHECK_INT(indexed(STORE_ACL_USER, 4), 1);
	/* the COMMIT never reached: neither */
	atomic_store(&PGS(store)->test_cut_commit, 2);
	set_acl(alice, "Team", STORE_ACL_USER, 5, false, "l", 0);
	CHECK_INT(has_entry(alice, "Team", 5), indexed(STORE_ACL_USER, 5));

	/* what takes rights away takes the index with it once nothing
	 * grants them: an entry removed, a mailbox deleted */
	CHECK_INT(store_mailbox_create(alice, "Team/Sub", 0, &err), 0);
	CHECK_INT(has_entry(alice, "Team/Sub", 2), 1);   /* inherited */
	CHECK_INT(set_acl(alice, "Team", STORE_ACL_USER, 2, false, "lr", -1),
		  0);
	CHECK_INT(indexed(STORE_ACL_USER, 2), 1);        /* Team/Sub's */
	CHECK_INT(store_mailbox_delete(alice, "Team/Sub", &err), 0);
	CHECK_INT(indexed(STORE_ACL_USER, 2), 0);
	CHECK_INT(store_acl_delete(alice, "Team", STORE_ACL_USER, 4, false,
				   &err), 0);
	CHECK_INT(indexed(STORE_ACL_USER, 4), 0);
	/* and the account's deletion */
	CHECK_INT(set_acl(alice, "Team", STORE_ACL_USER, 6, false, "l", 0), 0);
	CHECK_INT(indexed(STORE_ACL_USER, 6), 1);
	store_user_unref(&alice);
	CHECK_INT(store_user_delete(store, 1, &err), 0);
	CHECK_INT(pg_value("SELECT count(*) FROM loft_auth.acl_hints"), 0);
	CHECK_INT(hints, 0);
	CHECK_INT(pg_value("DROP SCHEMA loft_auth CASCADE"), 0);
	teardown(&store);
}

static const struct test_case cases[] = {
	{"rights_strings", test_rights_strings},
	{"evaluate", test_evaluate},
	{"acl_storage", test_acl_storage},
	{"open_as", test_open_as},
	{"seen_per_user", test_seen_per_user},
	{"viewer_private", test_viewer_private},
	{"reverse_index", test_reverse_index},
	{NULL, NULL},
};

/* The same cases run on the postgres backend as unit/test-store-acl-pg
 * (tests/unit/pg_run.py sets LOFT_TEST_PG). */
int main(void)
{
	return test_main(cases);
}
