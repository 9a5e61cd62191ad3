/*
 * Unit tests of the store's import and export calls (store.h "moving
 * mail in and out", sqlite/sq-migrate.c): mailboxes taking a source's
 * UIDVALIDITY and MAILBOXID only while they never held mail, appends
 * with a given UID, EMAILID, THREADID, modseq and POP3 UIDL, resume
 * marks committed with their message, quota, the change counter raised,
 * and the export stream reading one snapshot while mail changes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "store.h"
#include "test-pg.h"
#include "test.h"

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
	snprintf(data_dir, sizeof(data_dir), "%s/loft-test-migrate-XXXXXX",
		 tmp);
	if (mkdtemp(data_dir) == NULL)
		abort();
	memset(&test_limits, 0, sizeof(test_limits));
	struct store_settings set = {
		.data_dir = data_dir,
		.max_message_size = 4 * 1024 * 1024,
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

static struct store_body *body_of(struct store *store, const char *text)
{
	struct store_body *b;
	struct store_error err;
	if (store_body_create(store, &b, &err) < 0 ||
	    store_body_write(b, text, strlen(text), &err) < 0 ||
	    store_body_finish(b, &err) < 0) {
		fprintf(stderr, "body: %s\n", err.msg);
		abort();
	}
	return b;
}

/* Imports text; returns the UID, 0 on failure (err filled). */
static uint32_t import(struct store *store, struct store_user *u,
		       const char *mbox, const char *text,
		       const struct store_import_params *p,
		       struct store_error *err)
{
	struct store_body *b = text != NULL ? body_of(store, text) : NULL;
	uint32_t uid = 0;
	int r = store_import_append(u, mbox, b, p, &uid, err);
	store_body_unref(&b);
	return r < 0 ? 0 : uid;
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

/* One message's metadata (FLAGS, SIZE, POP3, OBJECTID). */
static int fetch_one(struct store_user *u, const char *mbox, uint32_t uid,
		     struct store_msg *m_r, char *uidl, size_t uidl_size,
		     char *kw, size_t kw_size)
{
	struct store_uid_range r = {uid, uid};
	struct store_fetch *f;
	const struct store_msg *m;
	struct store_error err;
	if (store_fetch_begin(u, mbox, &r, 1,
			      STORE_FETCH_FLAGS | STORE_FETCH_SIZE |
				      STORE_FETCH_POP3 | STORE_FETCH_OBJECTID,
			      &f, &err) < 0)
		return -1;
	int n = store_fetch_next(f, &m, &err);
	if (n == 1) {
		*m_r = *m;
		snprintf(uidl, uidl_size, "%s", m->pop3_uidl ? m->pop3_uidl : "");
		kw[0] = '\0';
		for (size_t i = 0; i < m->keyword_count; i++)
			snprintf(kw + strlen(kw), kw_size - strlen(kw), "%s%s",
				 i ? " " : "", m->keywords[i]);
	}
	store_fetch_end(&f);
	return n;
}

static const char msg1[] = "Message-ID: <a@x>\r\nSubject: one\r\n\r\nbody one\r\n";
static const char msg2[] = "Message-ID: <b@x>\r\nSubject: two\r\n\r\nbody two\r\n";
static const char msg3[] = "Message-ID: <c@x>\r\nSubject: three\r\n\r\nthree\r\n";

/* A new account's INBOX never held mail: it takes the source's
 * UIDVALIDITY and MAILBOXID; a new folder is made with its parents; a
 * folder that held mail keeps its own. */
static void test_mailboxes(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 1);
	struct store_error err;
	struct store_mailbox_info info;

	struct store_import_mailbox in = {.name = "inbox", .uidvalidity = 1234,
					  .uidnext = 10, .objectid = "Fsrc1"};
	CHECK_INT(store_import_mailbox(u, &in, &info, &err), 0);
	CHECK_INT(info.uidvalidity, 1234);
	CHECK_INT(info.uidnext, 10);
	CHECK_STR(info.objectid, "Fsrc1");
	store_mailbox_info_free(&info);

	/* a role another mailbox has is not given twice; parents made */
	struct store_import_mailbox sub = {.name = "Lists/Rust",
					   .uidvalidity = 77,
					   .special_use = STORE_SPECIAL_SENT,
					   .subscribe = true};
	CHECK_INT(store_import_mailbox(u, &sub, &info, &err), 0);
	CHECK_INT(info.uidvalidity, 77);
	CHECK_INT(info.special_use, 0);
	CHECK(info.subscribed);
	store_mailbox_info_free(&info);
	info = status(u, "Lists");
	CHECK(info.uidvalidity != 0);
	CHECK(info.uidvalidity != 77);
	store_mailbox_info_free(&info);

	/* the empty default Sent takes a source's Sent as it is */
	struct store_import_mailbox sent = {.name = "Sent", .uidvalidity = 5,
					    .special_use = STORE_SPECIAL_SENT};
	CHECK_INT(store_import_mailbox(u, &sent, &info, &err), 0);
	CHECK_INT(info.uidvalidity, 5);
	CHECK_INT(info.special_use, STORE_SPECIAL_SENT);
	store_mailbox_info_free(&info);

	/* a folder that held a message keeps its UIDVALIDITY */
	struct store_append_params ap = {0};
	CHECK_INT(store_append(u, "Drafts", msg1, strlen(msg1), &ap, NULL,
			       NULL, &err), 0);
	struct store_mailbox_info before = status(u, "Drafts");
	struct store_import_mailbox dr = {.name = "Drafts", .uidvalidity = 9,
					  .uidnext = 50};
	CHECK_INT(store_import_mailbox(u, &dr, &info, &err), 0);
	CHECK_INT(info.uidvalidity, before.uidvalidity);
	CHECK_INT(info.uidnext, 2);
	store_mailbox_info_free(&info);
	store_mailbox_info_free(&before);

	/* a MAILBOXID in use elsewhere is not taken; bad ones refused */
	struct store_import_mailbox dup = {.name = "Other", .objectid = "Fsrc1"};
	CHECK_INT(store_import_mailbox(u, &dup, &info, &err), 0);
	CHECK(strcmp(info.objectid, "Fsrc1") != 0);
	store_mailbox_info_free(&info);
	struct store_import_mailbox bad = {.name = "Bad", .objectid = "a b"};
	CHECK_INT(store_import_mailbox(u, &bad, NULL, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_INVALID);
	struct store_import_mailbox badname = {.name = "a//b"};
	CHECK_INT(store_import_mailbox(u, &badname, NULL, &err), -1);

	/* a mailbox made later never repeats an imported UIDVALIDITY */
	struct store_import_mailbox high = {.name = "High",
					    .uidvalidity = 4000000000u};
	CHECK_INT(store_import_mailbox(u, &high, NULL, &err), 0);
	CHECK_INT(store_mailbox_create(u, "Later", 0, &err), 0);
	info = status(u, "Later");
	CHECK(info.uidvalidity > 4000000000u);
	store_mailbox_info_free(&info);

	store_user_unref(&u);
	teardown(&store);
}

/* UIDs, keywords, dates, POP3 UIDLs, EMAILID and THREADID as given; a
 * UID below UIDNEXT is refused; a copy of an Email needs no body. */
static void test_append(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 2);
	struct store_error err;
	struct store_import_mailbox in = {.name = "INBOX", .uidvalidity = 42};
	CHECK_INT(store_import_mailbox(u, &in, NULL, &err), 0);

	const char *kws[] = {"$Forwarded", "work"};
	struct store_import_params p = {
		.append = {.flags = STORE_FLAG_SEEN | STORE_FLAG_FLAGGED,
			   .keywords = kws, .keyword_count = 2,
			   .internaldate = 1000000000},
		.uid = 5,
		.pop3_uidl = "UID5-abc",
		.savedate = 1000000100,
	};
	CHECK_INT(import(store, u, "INBOX", msg1, &p, &err), 5);
	struct store_import_params p2 = {.uid = 9, .email = 100, .thread = 100,
					 .modseq = 5000};
	CHECK_INT(import(store, u, "INBOX", msg2, &p2, &err), 9);
	/* below UIDNEXT: refused, nothing stored */
	struct store_import_params p3 = {.uid = 7};
	CHECK_INT(import(store, u, "INBOX", msg3, &p3, &err), 0);
	CHECK_INT(err.kind, STORE_ERR_EXISTS);
	/* no UID: UIDNEXT */
	struct store_import_params p4 = {0};
	CHECK_INT(import(store, u, "INBOX", msg3, &p4, &err), 10);

	struct store_msg m;
	char uidl[80], kw[80];
	CHECK_INT(fetch_one(u, "INBOX", 5, &m, uidl, sizeof(uidl), kw,
			    sizeof(kw)), 1);
	CHECK_INT(m.flags, STORE_FLAG_SEEN | STORE_FLAG_FLAGGED);
	CHECK_INT(m.internaldate, 1000000000);
	CHECK_INT(m.savedate, 1000000100);
	CHECK_STR(uidl, "UID5-abc");
	CHECK_STR(kw, "$Forwarded work");
	CHECK_INT(fetch_one(u, "INBOX", 9, &m, uidl, sizeof(uidl), kw,
			    sizeof(kw)), 1);
	char want[32];
	store_objectid_format(want, 'M', 2, 100);
	CHECK_STR(m.emailid, want);
	store_objectid_format(want, 'T', 2, 100);
	CHECK_STR(m.threadid, want);
	CHECK_INT(m.modseq, 5000);
	CHECK_STR(uidl, "");
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.messages, 3);
	CHECK_INT(info.uidnext, 11);
	CHECK_INT(info.uidvalidity, 42);
	CHECK(info.highestmodseq > 5000);
	store_mailbox_info_free(&info);

	/* a second copy of Email 100 in another folder: no body needed */
	struct store_import_params pc = {.email = 100, .uid = 3,
					 .append = {.flags = STORE_FLAG_ANSWERED}};
	CHECK_INT(import(store, u, "Archive", NULL, &pc, &err), 3);
	CHECK_INT(fetch_one(u, "Archive", 3, &m, uidl, sizeof(uidl), kw,
			    sizeof(kw)), 1);
	store_objectid_format(want, 'M', 2, 100);
	CHECK_STR(m.emailid, want);
	CHECK_INT(m.flags, STORE_FLAG_ANSWERED);
	struct store_blob blob;
	CHECK_INT(store_blob_open(u, "Archive", 3, &blob, &err), 0);
	CHECK_MEM(blob.data, blob.len, msg2, strlen(msg2));
	store_blob_close(&blob);
	/* no body and no such Email: refused */
	struct store_import_params pn = {.email = 999};
	CHECK_INT(import(store, u, "Archive", NULL, &pn, &err), 0);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	/* bad keywords and UIDLs */
	const char *badkw[] = {"a b"};
	struct store_import_params pk = {.append = {.keywords = badkw,
						    .keyword_count = 1}};
	CHECK_INT(import(store, u, "INBOX", msg3, &pk, &err), 0);
	CHECK_INT(err.kind, STORE_ERR_INVALID);
	struct store_import_params pu = {.pop3_uidl = "has space"};
	CHECK_INT(import(store, u, "INBOX", msg3, &pu, &err), 0);
	CHECK_INT(err.kind, STORE_ERR_INVALID);

	/* the change counter only goes up */
	CHECK_INT(store_modseq_raise(u, 90000, &err), 0);
	CHECK_INT(store_modseq_raise(u, 10, &err), 0);
	CHECK_INT(import(store, u, "INBOX", msg3, &p4, &err), 11);
	CHECK_INT(fetch_one(u, "INBOX", 11, &m, uidl, sizeof(uidl), kw,
			    sizeof(kw)), 1);
	CHECK_INT(m.modseq, 90001);

	store_user_unref(&u);
	teardown(&store);
}

/* A resume mark commits with its message: the same mark again stores
 * nothing; marks are listed per source. Over quota: nothing stored and
 * no mark, so the next run resumes there. */
static void test_marks_quota(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 3);
	struct store_error err;
	struct store_import_params p = {.mark_source = "maildir:/x",
					.mark_id = "1.M1.host"};
	CHECK_INT(import(store, u, "INBOX", msg1, &p, &err), 1);
	CHECK_INT(import(store, u, "INBOX", msg1, &p, &err), 0);
	CHECK_INT(err.kind, STORE_ERR_EXISTS);
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.messages, 1);
	store_mailbox_info_free(&info);

	test_limits.quota_messages = 1;
	struct store_import_params q = {.mark_source = "maildir:/x",
					.mark_id = "2.M2.host"};
	CHECK_INT(import(store, u, "INBOX", msg2, &q, &err), 0);
	CHECK_INT(err.kind, STORE_ERR_QUOTA);
	test_limits.quota_messages = 0;

	char **ids;
	size_t n;
	CHECK_INT(store_import_marks(u, "maildir:/x", &ids, &n, &err), 0);
	CHECK_INT(n, 1);
	if (n == 1)
		CHECK_STR(ids[0], "1.M1.host");
	store_names_free(ids, n);
	CHECK_INT(import(store, u, "INBOX", msg2, &q, &err), 2);
	CHECK_INT(store_import_marks(u, "other", &ids, &n, &err), 0);
	CHECK_INT(n, 0);
	store_names_free(ids, n);
	/* a mark needs both halves */
	struct store_import_params half = {.mark_source = "x"};
	CHECK_INT(import(store, u, "INBOX", msg3, &half, &err), 0);
	CHECK_INT(err.kind, STORE_ERR_INVALID);

	store_user_unref(&u);
	teardown(&store);
}

/* A batch: one commit, each item alone (a taken UID fails only its
 * item, its mark not written), an invalid item refused before the
 * backend, and after an item over quota the later ones not tried. */
static void test_batch(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 4);
	struct store_error err;
	static const char *const texts[] = {msg1, msg2, msg3,
					    "Subject: four\r\n\r\nfour\r\n"};
	static const char *const ids[] = {"1", "2", "3", "4"};
	struct store_import_item it[4];
	memset(it, 0, sizeof(it));
	for (int i = 0; i < 4; i++) {
		it[i].mailbox = "INBOX";
		it[i].body = body_of(store, texts[i]);
		it[i].p.uid = (uint32_t)(i + 10);
		it[i].p.mark_source = "batch";
		it[i].p.mark_id = ids[i];
	}
	it[2].p.uid = 10;                 /* taken by item 0 */
	it[3].p.append.keywords = (const char *const[]){"bad word"};
	it[3].p.append.keyword_count = 1;
	store_import_append_batch(u, it, 4);
	CHECK_INT(it[0].ret, 0);
	CHECK_INT(it[0].uid, 10);
	CHECK_INT(it[1].ret, 0);
	CHECK_INT(it[1].uid, 11);
	CHECK_INT(it[2].ret, -1);
	CHECK_INT(it[2].err.kind, STORE_ERR_EXISTS);
	CHECK_INT(it[3].ret, -1);
	CHECK_INT(it[3].err.kind, STORE_ERR_INVALID);
	CHECK_STR(it[0].mailbox, "INBOX");
	char **marks;
	size_t n;
	CHECK_INT(store_import_marks(u, "batch", &marks, &n, &err), 0);
	CHECK_INT(n, 2);
	store_names_free(marks, n);
	struct store_mailbox_info info = status(u, "INBOX");
	CHECK_INT(info.messages, 2);
	store_mailbox_info_free(&info);

	/* quota for one more: the first fits, the second is over, the
	 * third (small enough to fit alone) is not tried */
	test_limits.quota_messages = 3;
	it[2].p.uid = 0;
	it[3].p.append.keyword_count = 0;
	struct store_import_item q[3] = {it[2], it[3], it[2]};
	q[2].p.mark_id = "5";
	store_import_append_batch(u, q, 3);
	CHECK_INT(q[0].ret, 0);
	CHECK_INT(q[1].ret, -1);
	CHECK_INT(q[1].err.kind, STORE_ERR_QUOTA);
	CHECK_INT(q[2].ret, -1);
	CHECK_INT(q[2].err.kind, STORE_ERR_QUOTA);
	test_limits.quota_messages = 0;
	info = status(u, "INBOX");
	CHECK_INT(info.messages, 3);
	store_mailbox_info_free(&info);
	/* the same again: the one stored is there, the rest go in */
	store_import_append_batch(u, q, 3);
	CHECK_INT(q[0].ret, -1);
	CHECK_INT(q[0].err.kind, STORE_ERR_EXISTS);
	CHECK_INT(q[1].ret, 0);
	CHECK_INT(q[2].ret, 0);
	info = status(u, "INBOX");
	CHECK_INT(info.messages, 5);
	store_mailbox_info_free(&info);
	for (int i = 0; i < 4; i++)
		store_body_unref(&it[i].body);
	store_user_unref(&u);
	teardown(&store);
}

/* The export stream reads one snapshot: mail delivered, flagged or
 * expunged after begin is not seen, and a body it names (a file body
 * too) stays readable until end. */
static void test_export(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 4);
	struct store_error err;
	struct store_append_params ap = {.flags = STORE_FLAG_SEEN};
	CHECK_INT(store_append(u, "INBOX", msg1, strlen(msg1), &ap, NULL, NULL,
			       &err), 0);
	/* a body past the index's inline limit: a file */
	size_t big_len = 300 * 1024;
	char *big = xmalloc(big_len + 1);
	memset(big, 'y', big_len);
	memcpy(big, "Subject: big\r\n\r\n", 16);
	memcpy(big + big_len - 2, "\r\n", 2);
	big[big_len] = '\0';
	CHECK_INT(store_append(u, "INBOX", big, big_len, &ap, NULL, NULL,
			       &err), 0);
	CHECK_INT(store_mailbox_create(u, "Folder/Sub", 0, &err), 0);
	CHECK_INT(store_mailbox_subscribe(u, "Folder/Sub", true, &err), 0);

	struct store_export *e;
	CHECK_INT(store_export_begin(u, &e, &err), 0);
	/* changes after the snapshot */
	CHECK_INT(store_append(u, "INBOX", msg2, strlen(msg2), NULL, NULL, NULL,
			       &err), 0);
	struct store_uid_range all = {1, 2};
	struct store_flag_change ch = {STORE_FLAGS_ADD, STORE_FLAG_DELETED,
				       NULL, 0, 0, NULL};
	CHECK_INT(store_flags_update(u, "INBOX", &all, 1, &ch, NULL, NULL,
				     NULL, NULL, &err), 0);
	CHECK_INT(store_expunge(u, "INBOX", NULL, 0, false, NULL, NULL, &err),
		  0);

	const struct store_export_info *info = store_export_info(e);
	bool have_sub = false;
	uint32_t inbox = 0;
	for (size_t i = 0; i < info->mailbox_count; i++) {
		if (strcmp(info->mailboxes[i].name, "Folder/Sub") == 0)
			have_sub = info->mailboxes[i].subscribed;
		if (strcmp(info->mailboxes[i].name, "INBOX") == 0)
			inbox = info->mailboxes[i].id;
	}
	CHECK(have_sub);
	CHECK_INT(info->usage.messages, 2);
	bool sub_listed = false;
	for (size_t i = 0; i < info->subscription_count; i++)
		sub_listed |= strcmp(info->subscriptions[i], "Folder/Sub") == 0;
	CHECK(sub_listed);
	CHECK_INT(store_export_messages(e, inbox, &err), 0);
	const struct store_export_msg *m;
	int n = 0, r;
	while ((r = store_export_next(e, &m, &err)) == 1) {
		n++;
		CHECK_INT(m->uid, (uint32_t)n);
		CHECK_INT(m->flags, STORE_FLAG_SEEN);
		struct store_blob b;
		CHECK_INT(store_export_body(e, m->email, &b, &err), 0);
		if (n == 1)
			CHECK_MEM(b.data, b.len, msg1, strlen(msg1));
		else
			CHECK_MEM(b.data, b.len, big, big_len);
		CHECK_INT(b.len, m->size);
		store_blob_close(&b);
	}
	CHECK_INT(r, 0);
	CHECK_INT(n, 2);
	store_export_end(&e);
	CHECK(e == NULL);

	/* now the store sees the account as it is */
	CHECK_INT(store_export_begin(u, &e, &err), 0);
	CHECK_INT(store_export_messages(e, inbox, &err), 0);
	n = 0;
	while (store_export_next(e, &m, &err) == 1)
		n++;
	CHECK_INT(n, 1);
	store_export_end(&e);
	free(big);
	store_user_unref(&u);
	teardown(&store);
}

/* Readers' own \Seen out of a snapshot and back (backup, restore), and
 * a body file gone under the snapshot (another process collected it):
 * NOTFOUND, so a backup reads the account again. */
static void test_seen_gone(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 5);
	struct store_error err;
	for (int i = 0; i < 3; i++)
		CHECK_INT(store_append(u, "INBOX", msg1, strlen(msg1), NULL,
				       NULL, NULL, &err), 0);
	struct store_uid_range r[] = {{1, 1}, {3, 3}};
	CHECK_INT(store_import_seen(u, "INBOX", 9, r, 2, &err), 0);
	CHECK_INT(store_import_seen(u, "INBOX", 0, r, 2, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_INVALID);
	size_t big_len = 200 * 1024;
	char *big = xmalloc(big_len);
	memset(big, 'z', big_len);
	memcpy(big, "Subject: gone\r\n\r\n", 17);
	memcpy(big + big_len - 2, "\r\n", 2);
	uint32_t big_uid = 0;
	CHECK_INT(store_append(u, "INBOX", big, big_len, NULL, &big_uid, NULL,
			       &err), 0);
	struct store_export *e;
	CHECK_INT(store_export_begin(u, &e, &err), 0);
	const struct store_export_info *info = store_export_info(e);
	uint32_t inbox = 0;
	for (size_t i = 0; i < info->mailbox_count; i++)
		if (strcmp(info->mailboxes[i].name, "INBOX") == 0)
			inbox = info->mailboxes[i].id;
	struct store_export_seen *rows = NULL;
	size_t n = 0;
	CHECK_INT(store_export_seen(e, inbox, &rows, &n, &err), 0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_INT(rows[0].viewer, 9);
		CHECK_INT(rows[0].uid, 1);
		CHECK_INT(rows[1].uid, 3);
	}
	free(rows);
	/* the big body's file removed as loftd would after an expunge */
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "find '%s' -path '*/blobs/*' -type f"
		 " -size +100k -delete", data_dir);
	CHECK_INT(system(cmd), 0);
	CHECK_INT(store_export_messages(e, inbox, &err), 0);
	const struct store_export_msg *m;
	int seen_gone = 0;
	while (store_export_next(e, &m, &err) == 1) {
		struct store_blob b;
		int got = store_export_body(e, m->email, &b, &err);
		if (m->uid == big_uid) {
			CHECK_INT(got, -1);
			CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
			seen_gone = 1;
		} else {
			CHECK_INT(got, 0);
			if (got == 0)
				store_blob_close(&b);
		}
	}
	CHECK_INT(seen_gone, 1);
	store_export_end(&e);
	free(big);
	store_user_unref(&u);
	teardown(&store);
}

static uint64_t modseq_of(struct store_user *u, const char *mbox,
			  uint32_t uid)
{
	struct store_msg m;
	char uidl[80], kw[200];
	memset(&m, 0, sizeof(m));
	if (fetch_one(u, mbox, uid, &m, uidl, sizeof(uidl), kw,
		      sizeof(kw)) != 1)
		return 0;
	return m.modseq;
}

/* store_import_exact: a restored folder gets the source's modseqs (two
 * messages sharing one, as one STORE gives them), its expunge log and
 * horizon and HIGHESTMODSEQ; a message changed after its append keeps
 * its newer modseq; a log entry for a UID the folder holds is left out;
 * the counter never goes down; another UIDVALIDITY changes nothing; the
 * export stream gives the log back in ranges. */
static void test_exact(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 6);
	struct store_error err;
	/* the counter well above the source's modseqs, as in an account
	 * that lived on this server a while */
	CHECK_INT(store_modseq_raise(u, 40, &err), 0);
	struct store_import_mailbox spec = {.name = "Box", .uidvalidity = 777};
	CHECK_INT(store_import_mailbox(u, &spec, NULL, &err), 0);
	static const uint32_t uids[] = {1, 2, 3, 5};
	static const uint64_t src[] = {10, 10, 12, 11};
	const char *texts[] = {msg1, msg2, msg3, msg1};
	struct store_import_item it[4];
	struct store_body *bodies[4];
	memset(it, 0, sizeof(it));
	for (int i = 0; i < 4; i++) {
		bodies[i] = body_of(store, texts[i]);
		it[i].mailbox = "Box";
		it[i].body = bodies[i];
		it[i].p.uid = uids[i];
		it[i].p.modseq = src[i];
	}
	store_import_append_batch(u, it, 4);
	for (int i = 0; i < 4; i++) {
		CHECK_INT(it[i].ret, 0);
		CHECK_INT(it[i].uid, uids[i]);
		/* from the counter: above the source's */
		CHECK(it[i].modseq > 40);
		store_body_unref(&bodies[i]);
	}
	CHECK(it[0].modseq != it[1].modseq);
	/* UIDNEXT as at the source, then a change to UID 3 */
	spec.uidnext = 8;
	CHECK_INT(store_import_mailbox(u, &spec, NULL, &err), 0);
	struct store_uid_range three = {3, 3};
	struct store_flag_change ch = {STORE_FLAGS_ADD, STORE_FLAG_FLAGGED,
				       NULL, 0, 0, NULL};
	CHECK_INT(store_flags_update(u, "Box", &three, 1, &ch, NULL, NULL,
				     NULL, NULL, &err), 0);
	uint64_t changed = modseq_of(u, "Box", 3);
	CHECK(changed > it[2].modseq);

	struct store_import_exact_msg xm[4];
	for (int i = 0; i < 4; i++)
		xm[i] = (struct store_import_exact_msg){uids[i], it[i].modseq,
							src[i]};
	struct store_expunged_range log[] = {
		{4, 4, 15, 1700000000},
		{6, 9, 18, 1700000100},   /* 8 and 9: at or above UIDNEXT */
		{2, 2, 19, 1700000200},   /* the folder holds UID 2 */
	};
	struct store_import_exact x = {
		.name = "Box", .uidvalidity = 778, .highestmodseq = 20,
		.expunge_horizon = 3, .msgs = xm, .msg_count = 4,
		.expunged = log, .expunged_count = 3,
	};
	CHECK_INT(store_import_exact(u, &x, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_INVALID);
	CHECK_INT(modseq_of(u, "Box", 1), it[0].modseq);
	x.uidvalidity = 777;
	CHECK_INT(store_import_exact(u, &x, &err), 0);
	CHECK_INT(modseq_of(u, "Box", 1), 10);
	CHECK_INT(modseq_of(u, "Box", 2), 10);
	CHECK_INT(modseq_of(u, "Box", 3), changed);
	CHECK_INT(modseq_of(u, "Box", 5), 11);
	struct store_mailbox_info info = status(u, "Box");
	/* the source's, or the changed message's when higher */
	CHECK_INT(info.highestmodseq, changed > 20 ? changed : 20);
	CHECK_INT(info.uidnext, 8);
	store_mailbox_info_free(&info);
	uint32_t *gone = NULL;
	size_t ngone = 0;
	bool complete = false;
	CHECK_INT(store_expunged_since(u, "Box", 14, NULL, 0, &gone, &ngone,
				       &complete, &err), 0);
	CHECK(complete);
	CHECK_INT(ngone, 3);
	if (ngone == 3) {
		CHECK_INT(gone[0], 4);
		CHECK_INT(gone[1], 6);
		CHECK_INT(gone[2], 7);
	}
	free(gone);
	gone = NULL;
	CHECK_INT(store_expunged_since(u, "Box", 15, NULL, 0, &gone, &ngone,
				       &complete, &err), 0);
	CHECK_INT(ngone, 2);
	free(gone);
	gone = NULL;
	/* below the horizon: not incremental */
	CHECK_INT(store_expunged_since(u, "Box", 2, NULL, 0, &gone, &ngone,
				       &complete, &err), 0);
	CHECK(!complete);
	free(gone);

	struct store_export *e;
	CHECK_INT(store_export_begin(u, &e, &err), 0);
	const struct store_export_info *ei = store_export_info(e);
	/* the counter never went down */
	CHECK(ei->modseq >= changed);
	uint32_t box = 0;
	for (size_t i = 0; i < ei->mailbox_count; i++)
		if (strcmp(ei->mailboxes[i].name, "Box") == 0)
			box = ei->mailboxes[i].id;
	struct store_expunged_range *r = NULL;
	size_t nr = 0;
	uint64_t horizon = 0;
	CHECK_INT(store_export_expunged(e, box, &r, &nr, &horizon, &err), 0);
	CHECK_INT(horizon, 3);
	CHECK_INT(nr, 2);
	if (nr == 2) {
		CHECK_INT(r[0].first, 4);
		CHECK_INT(r[0].last, 4);
		CHECK_INT(r[0].modseq, 15);
		CHECK_INT(r[0].at, 1700000000);
		CHECK_INT(r[1].first, 6);
		CHECK_INT(r[1].last, 7);
		CHECK_INT(r[1].modseq, 18);
	}
	free(r);
	store_export_end(&e);
	/* a later change takes a modseq above every one handed out */
	struct store_uid_range one = {1, 1};
	CHECK_INT(store_flags_update(u, "Box", &one, 1, &ch, NULL, NULL,
				     NULL, NULL, &err), 0);
	CHECK(modseq_of(u, "Box", 1) > changed);

	/* log entries without a modseq (messages a restore left out) take
	 * a new one, above the source's HIGHESTMODSEQ */
	struct store_import_mailbox spec2 = {.name = "Box2", .uidvalidity = 5,
					     .uidnext = 4};
	CHECK_INT(store_import_mailbox(u, &spec2, NULL, &err), 0);
	struct store_expunged_range left = {1, 3, 0, 1700000300};
	struct store_import_exact x2 = {
		.name = "Box2", .uidvalidity = 5, .highestmodseq = 900,
		.expunged = &left, .expunged_count = 1,
	};
	CHECK_INT(store_import_exact(u, &x2, &err), 0);
	info = status(u, "Box2");
	CHECK(info.highestmodseq > 900);
	store_mailbox_info_free(&info);
	CHECK_INT(store_expunged_since(u, "Box2", 900, NULL, 0, &gone, &ngone,
				       &complete, &err), 0);
	CHECK_INT(ngone, 3);
	free(gone);
	store_user_unref(&u);
	teardown(&store);
}

static const struct test_case cases[] = {
	{"seen_gone", test_seen_gone},
	{"mailboxes", test_mailboxes},
	{"append", test_append},
	{"marks_quota", test_marks_quota},
	{"batch", test_batch},
	{"export", test_export},
	{"exact", test_exact},
	{NULL, NULL},
};

int main(void)
{
	/* the postgres run (pg_run.py): the cases of the calls both
	 * backends share */
	static const struct test_case pg_cases[] = {
		{"exact", test_exact},
		{NULL, NULL},
	};
	if (getenv("LOFT_TEST_PG") != NULL)
		return test_main(pg_cases);
	return test_main(cases);
}
