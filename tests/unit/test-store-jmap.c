/*
 * Unit tests of the store's JMAP section (store.h "JMAP") against the
 * embedded backend: states and /changes after changes made through the
 * IMAP-side calls (append, STORE, COPY, MOVE, EXPUNGE, mailbox create,
 * rename, delete, subscribe), Mailbox counts, merged keywords, \Deleted
 * copies, the membership log, paging of changes, pruning, the upgrade of
 * an index from before JMAP, email transactions, uploads, stored objects
 * and account-wide search. unit/test-store-jmap-pg runs the cases the
 * postgres backend has (pg-jmail.c) there (tests/unit/pg_run.py).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "buf.h"
#include "sqlite/sq-jmap-schema.h"
#include "sqlite/sq-private.h"
#include "store.h"
#include "test.h"
#include "test-pg.h"

#define STR_(x) #x
#define STR(x) STR_(x)

static char data_dir[256];
static char blob_dir[300];
static bool on_pg;   /* LOFT_TEST_PG: the postgres backend (pg_run.py) */
static struct store *store_of_test;
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
	snprintf(data_dir, sizeof(data_dir), "%s/loft-test-jmap-XXXXXX", tmp);
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
	store_of_test = store;
	return store;
}

static void teardown(struct store **store)
{
	store_close(store);
	if (getenv("KEEP")) {
		fprintf(stderr, "kept %s\n", data_dir);
		return;
	}
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

static struct store_jmap_cursor state(struct store_user *u,
				      enum store_jmap_kind kind)
{
	struct store_jmap_cursor s[STORE_JMAP_KINDS];
	struct store_error err;
	if (store_jmap_states(u, s, &err) < 0) {
		fprintf(stderr, "states: %s\n", err.msg);
		abort();
	}
	return s[kind];
}

static struct store_jmap_changes changes(struct store_user *u,
					 enum store_jmap_kind kind,
					 struct store_jmap_cursor since,
					 size_t max)
{
	struct store_jmap_changes ch;
	struct store_error err;
	if (store_jmap_changes(u, kind, &since, max, &ch, &err) < 0) {
		fprintf(stderr, "changes: %s\n", err.msg);
		abort();
	}
	return ch;
}

static struct store_jmap_mailbox mbox(struct store_user *u, const char *name)
{
	struct store_jmap_mailbox *list, r;
	size_t n;
	struct store_error err;
	memset(&r, 0, sizeof(r));
	if (store_jmap_mailboxes(u, &list, &n, &err) < 0)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (strcmp(list[i].info.name, name) == 0) {
			r = list[i];
			r.info.name = NULL;
		}
	}
	store_jmap_mailboxes_free(list, n);
	return r;
}

/* The EMAILID number of (mailbox, uid). */
static int64_t email_of(struct store_user *u, const char *mailbox,
			uint32_t uid)
{
	struct store_fetch *f;
	struct store_error err;
	struct store_uid_range r = {uid, uid};
	int64_t id = 0;
	if (store_fetch_begin(u, mailbox, &r, 1, STORE_FETCH_FLAGS, &f,
			      &err) < 0)
		return 0;
	const struct store_msg *m;
	if (store_fetch_next(f, &m, &err) == 1)
		store_objectid_parse(m->emailid, 'M', store_user_id(u), &id);
	store_fetch_end(&f);
	return id;
}

static bool has_id(const struct store_jmap_change *v, size_t n, int64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].id == id)
			return true;
	return false;
}

static const char *msg_a =
	"From: a@example.test\r\nTo: b@example.test\r\nSubject: first\r\n"
	"Message-ID: <a@x>\r\n\r\nHello there, alpha text.\r\n";
static const char *msg_b =
	"From: b@example.test\r\nTo: a@example.test\r\nSubject: Re: first\r\n"
	"Message-ID: <b@x>\r\nIn-Reply-To: <a@x>\r\nReferences: <a@x>\r\n"
	"\r\nReply, beta text.\r\n";
static const char *msg_c =
	"From: c@example.test\r\nSubject: other\r\nMessage-ID: <c@x>\r\n"
	"Content-Type: multipart/mixed; boundary=xx\r\n\r\n--xx\r\n"
	"Content-Type: text/plain\r\n\r\nSee attached.\r\n--xx\r\n"
	"Content-Type: application/pdf; name=a.pdf\r\n"
	"Content-Disposition: attachment; filename=a.pdf\r\n\r\nPDF\r\n--xx--\r\n";

static void test_ids(void)
{
	char id[32];
	int64_t n;
	store_objectid_format(id, 'M', 0x1a, 0x2b3);
	CHECK_STR(id, "M1a-2b3");
	CHECK(store_objectid_parse(id, 'M', 0x1a, &n));
	CHECK_INT(n, 0x2b3);
	CHECK(!store_objectid_parse(id, 'M', 0x1b, &n));
	CHECK(!store_objectid_parse(id, 'T', 0x1a, &n));
	CHECK(!store_objectid_parse("M1a-02b3", 'M', 0x1a, &n));
	CHECK(!store_objectid_parse("M1a-", 'M', 0x1a, &n));
	CHECK(!store_objectid_parse("M1a-2B3", 'M', 0x1a, &n));
	CHECK(!store_objectid_parse("M1a-0", 'M', 0x1a, &n));
	CHECK(!store_objectid_parse("M1a-2b3-", 'M', 0x1a, &n));
	CHECK(!store_objectid_parse("M1a-11111111111111111", 'M', 0x1a, &n));
	CHECK(!store_objectid_parse(NULL, 'M', 0x1a, &n));
	CHECK(store_bodystructure_has_attachment(
		"((\"text\" \"plain\" NIL NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)"
		"(\"application\" \"pdf\" (\"name\" \"a.pdf\") NIL NIL \"base64\""
		" 10 NIL (\"attachment\" (\"filename\" \"a.pdf\")) NIL NIL)"
		" \"mixed\" (\"boundary\" \"x\") NIL NIL NIL)", 400));
	const char *plain = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL"
			    " NIL \"7bit\" 3 1 NIL NIL NIL NIL)";
	CHECK(!store_bodystructure_has_attachment(plain, strlen(plain)));
	const char *inl = "((\"text\" \"html\" NIL NIL NIL \"7bit\" 3 1 NIL NIL"
			  " NIL NIL)(\"image\" \"png\" NIL \"<x@y>\" NIL"
			  " \"base64\" 10 NIL (\"inline\" NIL) NIL NIL)"
			  " \"related\" NIL NIL NIL NIL)";
	CHECK(!store_bodystructure_has_attachment(inl, strlen(inl)));
	CHECK(!store_bodystructure_has_attachment("((((", 4));
}

/* Counts, merged keywords and /changes as IMAP-side calls change mail. */
static void test_counts_and_changes(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 5);
	struct store_error err;
	struct store_jmap_cursor s0 = state(u, STORE_JMAP_EMAIL);
	struct store_jmap_cursor m0 = state(u, STORE_JMAP_MAILBOX);
	struct store_jmap_cursor t0 = state(u, STORE_JMAP_THREAD);
	/* a fresh account: the default mailboxes are not "changes" */
	struct store_jmap_changes ch = changes(u, STORE_JMAP_MAILBOX, m0, 0);
	CHECK_INT(ch.created_count + ch.updated_count + ch.destroyed_count, 0);
	store_jmap_changes_free(&ch);

	uint32_t ua = append(u, "INBOX", msg_a, 0);
	uint32_t ub = append(u, "INBOX", msg_b, STORE_FLAG_SEEN);
	uint32_t uc = append(u, "INBOX", msg_c, 0);
	int64_t ea = email_of(u, "INBOX", ua), eb = email_of(u, "INBOX", ub),
		ec = email_of(u, "INBOX", uc);
	CHECK(ea > 0 && eb > 0 && ec > 0);
	struct store_jmap_mailbox in = mbox(u, "INBOX");
	CHECK_INT(in.emails, 3);
	CHECK_INT(in.unread_emails, 2);
	CHECK_INT(in.threads, 2);
	CHECK_INT(in.unread_threads, 2);

	ch = changes(u, STORE_JMAP_EMAIL, s0, 0);
	CHECK_INT(ch.created_count, 3);
	CHECK_INT(ch.updated_count, 0);
	CHECK(has_id(ch.created, ch.created_count, eb));
	struct store_jmap_cursor s1 = ch.new_state;
	CHECK_INT(s1.modseq, state(u, STORE_JMAP_EMAIL).modseq);
	store_jmap_changes_free(&ch);
	ch = changes(u, STORE_JMAP_THREAD, t0, 0);
	CHECK_INT(ch.created_count, 2);
	store_jmap_changes_free(&ch);
	ch = changes(u, STORE_JMAP_MAILBOX, m0, 0);
	CHECK_INT(ch.updated_count, 1);
	CHECK(ch.counts_only);
	store_jmap_changes_free(&ch);

	struct store_email *e;
	int64_t ids[2] = {ec, 999999};
	CHECK_INT(store_email_get(u, ids, 2, &e, &err), 0);
	CHECK_INT(e[0].id, ec);
	CHECK(e[0].has_attachment);
	CHECK_INT(e[0].mailbox_count, 1);
	CHECK_INT(e[1].id, 0);
	CHECK(strstr(e[0].preview, "See attached") != NULL);
	store_email_free(e, 2);
	CHECK_INT(store_email_get(u, &eb, 1, &e, &err), 0);
	CHECK(!e[0].has_attachment);
	CHECK_INT(e[0].thread, e[0].thread);
	int64_t thread_ab = e[0].thread;
	store_email_free(e, 1);
	int64_t *tids;
	size_t tn;
	CHECK_INT(store_thread_emails(u, thread_ab, &tids, &tn, &err), 0);
	CHECK_INT(tn, 2);
	free(tids);

	/* IMAP STORE: Email and Mailbox (counts only) change, Thread not */
	struct store_jmap_cursor m1 = state(u, STORE_JMAP_MAILBOX),
				 t1 = state(u, STORE_JMAP_THREAD);
	struct store_uid_range r = {ua, ua};
	const char *kw[] = {"$Forwarded"};
	struct store_flag_change fc = {STORE_FLAGS_ADD,
				       STORE_FLAG_SEEN | STORE_FLAG_FLAGGED,
				       kw, 1, 0, NULL};
	CHECK_INT(store_flags_update(u, "INBOX", &r, 1, &fc, NULL, NULL, NULL,
				     NULL, &err), 0);
	ch = changes(u, STORE_JMAP_EMAIL, s1, 0);
	CHECK_INT(ch.updated_count, 1);
	CHECK_INT(ch.updated[0].id, ea);
	CHECK_INT(ch.created_count, 0);
	struct store_jmap_cursor s2 = ch.new_state;
	store_jmap_changes_free(&ch);
	CHECK_INT(state(u, STORE_JMAP_THREAD).modseq, t1.modseq);
	ch = changes(u, STORE_JMAP_MAILBOX, m1, 0);
	CHECK_INT(ch.updated_count, 1);
	CHECK(ch.counts_only);
	store_jmap_changes_free(&ch);
	in = mbox(u, "INBOX");
	CHECK_INT(in.unread_emails, 1);
	CHECK_INT(in.unread_threads, 1);

	/* COPY to Archive: one more mailbox for the Email, $seen merged */
	uint32_t *dst = NULL;
	size_t dn = 0;
	CHECK_INT(store_copy(u, "INBOX", &r, 1, "Archive", false, NULL, NULL,
			     &dst, &dn, &err), 0);
	struct store_uid_range ra = {dst[0], dst[0]};
	free(dst);
	CHECK_INT(store_email_get(u, &ea, 1, &e, &err), 0);
	CHECK_INT(e[0].mailbox_count, 2);
	CHECK_INT(e[0].flags & (STORE_FLAG_SEEN | STORE_FLAG_FLAGGED),
		  STORE_FLAG_SEEN | STORE_FLAG_FLAGGED);
	CHECK_INT(e[0].keyword_count, 1);
	CHECK_STR(e[0].keywords[0], "$Forwarded");
	store_email_free(e, 1);
	CHECK_INT(state(u, STORE_JMAP_THREAD).modseq, t1.modseq);
	/* the Archive copy unread: the Email is unread (every copy must be
	 * seen), still flagged (one copy is enough) */
	struct store_flag_change unseen = {STORE_FLAGS_REMOVE,
					   STORE_FLAG_SEEN | STORE_FLAG_FLAGGED,
					   NULL, 0, 0, NULL};
	CHECK_INT(store_flags_update(u, "Archive", &ra, 1, &unseen, NULL, NULL,
				     NULL, NULL, &err), 0);
	CHECK_INT(store_email_get(u, &ea, 1, &e, &err), 0);
	CHECK_INT(e[0].flags & STORE_FLAG_SEEN, 0);
	CHECK(e[0].flags & STORE_FLAG_FLAGGED);
	store_email_free(e, 1);

	/* \Deleted hides a copy from JMAP; expunging the last destroys */
	struct store_flag_change del = {STORE_FLAGS_ADD, STORE_FLAG_DELETED,
					NULL, 0, 0, NULL};
	CHECK_INT(store_flags_update(u, "Archive", &ra, 1, &del, NULL, NULL,
				     NULL, NULL, &err), 0);
	CHECK_INT(store_email_get(u, &ea, 1, &e, &err), 0);
	CHECK_INT(e[0].mailbox_count, 1);
	store_email_free(e, 1);
	CHECK_INT(mbox(u, "Archive").emails, 0);
	CHECK_INT(store_expunge(u, "Archive", NULL, 0, false, NULL, NULL,
				&err), 0);
	struct store_jmap_cursor m2 = state(u, STORE_JMAP_MAILBOX);
	t1 = state(u, STORE_JMAP_THREAD);
	struct store_uid_range rb = {ub, ub};
	CHECK_INT(store_flags_update(u, "INBOX", &rb, 1, &del, NULL, NULL,
				     NULL, NULL, &err), 0);
	/* b hidden: its thread lost a member; the Email reads as gone */
	CHECK(state(u, STORE_JMAP_THREAD).modseq > t1.modseq);
	ch = changes(u, STORE_JMAP_EMAIL, s2, 0);
	CHECK(has_id(ch.destroyed, ch.destroyed_count, eb));
	store_jmap_changes_free(&ch);
	CHECK_INT(store_expunge(u, "INBOX", NULL, 0, false, NULL, NULL, &err),
		  0);
	ch = changes(u, STORE_JMAP_EMAIL, s2, 0);
	CHECK(has_id(ch.destroyed, ch.destroyed_count, eb));
	CHECK_INT(ch.created_count, 0);
	store_jmap_changes_free(&ch);
	in = mbox(u, "INBOX");
	CHECK_INT(in.emails, 2);
	CHECK_INT(in.threads, 2);

	/* the membership log of INBOX since s2: b left */
	int64_t *moved;
	size_t mn;
	bool too_old;
	CHECK_INT(store_email_moved_since(u, in.info.id, &s2, &moved, &mn,
					  &too_old, &err), 0);
	CHECK(!too_old);
	CHECK_INT(mn, 1);
	CHECK_INT(moved[0], eb);
	free(moved);
	uint64_t rank;
	CHECK_INT(store_email_rank(u, in.info.id, ea, &rank, &err), 0);
	CHECK_INT(rank, 1);

	/* mailboxes: create, rename, subscribe, delete */
	CHECK_INT(store_mailbox_create(u, "Work", 0, &err), 0);
	ch = changes(u, STORE_JMAP_MAILBOX, m2, 0);
	CHECK_INT(ch.created_count, 1);
	CHECK(ch.created[0].objectid[0] == 'F');
	char work_oid[32];
	memcpy(work_oid, ch.created[0].objectid, 32);
	struct store_jmap_cursor m3 = ch.new_state;
	store_jmap_changes_free(&ch);
	CHECK_INT(store_mailbox_rename(u, "Work", "Job", &err), 0);
	ch = changes(u, STORE_JMAP_MAILBOX, m3, 0);
	CHECK_INT(ch.updated_count, 1);
	CHECK(!ch.counts_only);
	struct store_jmap_cursor m4 = ch.new_state;
	store_jmap_changes_free(&ch);
	CHECK_INT(store_mailbox_subscribe(u, "Job", true, &err), 0);
	ch = changes(u, STORE_JMAP_MAILBOX, m4, 0);
	CHECK_INT(ch.updated_count, 1);
	store_jmap_changes_free(&ch);
	CHECK_INT(store_mailbox_delete(u, "Job", &err), 0);
	ch = changes(u, STORE_JMAP_MAILBOX, m4, 0);
	CHECK_INT(ch.destroyed_count, 1);
	CHECK_STR(ch.destroyed[0].objectid, work_oid);
	store_jmap_changes_free(&ch);
	ch = changes(u, STORE_JMAP_MAILBOX, m2, 0);
	/* created and destroyed since: not reported at all */
	CHECK_INT(ch.created_count + ch.destroyed_count, 0);
	store_jmap_changes_free(&ch);

	/* MOVE: the Email changes mailbox; INBOX and Trash both move */
	struct store_uid_range rc = {uc, uc};
	struct store_jmap_cursor s3 = state(u, STORE_JMAP_EMAIL);
	CHECK_INT(store_copy(u, "INBOX", &rc, 1, "Trash", true, NULL, NULL,
			     NULL, NULL, &err), 0);
	ch = changes(u, STORE_JMAP_EMAIL, s3, 0);
	CHECK_INT(ch.updated_count, 1);
	CHECK_INT(ch.updated[0].id, ec);
	store_jmap_changes_free(&ch);
	CHECK_INT(mbox(u, "Trash").emails, 1);
	CHECK_INT(mbox(u, "INBOX").emails, 1);
	store_user_unref(&u);
	teardown(&store);
}

/* maxChanges pages through one big change (one modseq) with cursors. */
static void test_paging(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 6);
	struct store_error err;
	char msg[200];
	for (int i = 0; i < 7; i++) {
		snprintf(msg, sizeof(msg), "Subject: m%d\r\nMessage-ID: <%d@p>"
			 "\r\n\r\nbody %d\r\n", i, i, i);
		append(u, "INBOX", msg, 0);
	}
	struct store_jmap_cursor s = state(u, STORE_JMAP_EMAIL);
	struct store_flag_change fc = {STORE_FLAGS_ADD, STORE_FLAG_SEEN, NULL,
				       0, 0, NULL};
	CHECK_INT(store_flags_update(u, "INBOX", NULL, 0, &fc, NULL, NULL,
				     NULL, NULL, &err), 0);
	size_t seen = 0, calls = 0;
	for (;;) {
		struct store_jmap_changes ch = changes(u, STORE_JMAP_EMAIL, s, 3);
		CHECK(ch.updated_count <= 3);
		seen += ch.updated_count;
		s = ch.new_state;
		bool more = ch.more;
		store_jmap_changes_free(&ch);
		if (!more || ++calls > 10)
			break;
	}
	CHECK_INT(seen, 7);
	CHECK_INT(s.modseq, state(u, STORE_JMAP_EMAIL).modseq);
	struct store_jmap_changes ch = changes(u, STORE_JMAP_EMAIL, s, 3);
	CHECK_INT(ch.updated_count, 0);
	store_jmap_changes_free(&ch);
	store_user_unref(&u);
	teardown(&store);
}

/* Old states: kept STORE_JMAP_LOG_DAYS, then too_old. */
static void test_prune(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 7);
	struct store_error err;
	uint32_t uid = append(u, "INBOX", msg_a, 0);
	struct store_jmap_cursor s = state(u, STORE_JMAP_EMAIL);
	struct store_uid_range r = {uid, uid};
	CHECK_INT(store_expunge(u, "INBOX", &r, 1, true, NULL, NULL, &err), 0);
	time_t now = time(NULL);
	CHECK_INT(store_jmap_prune(u, now + 29 * 86400, &err), 0);
	struct store_jmap_changes ch = changes(u, STORE_JMAP_EMAIL, s, 0);
	CHECK(!ch.too_old);
	CHECK_INT(ch.destroyed_count, 1);
	store_jmap_changes_free(&ch);
	CHECK_INT(store_jmap_prune(u, now + (STORE_JMAP_LOG_DAYS + 1) * 86400,
				   &err), 0);
	ch = changes(u, STORE_JMAP_EMAIL, s, 0);
	CHECK(ch.too_old);
	store_jmap_changes_free(&ch);
	/* the current state still works */
	ch = changes(u, STORE_JMAP_EMAIL, state(u, STORE_JMAP_EMAIL), 0);
	CHECK(!ch.too_old);
	store_jmap_changes_free(&ch);
	store_user_unref(&u);
	teardown(&store);
}

static struct store_body *body(struct store_user *u, const char *text)
{
	struct store_body *b;
	struct store_error err;
	(void)u;
	if (store_body_create(store_of_test, &b, &err) < 0)
		return NULL;
	if (store_body_write(b, text, strlen(text), &err) < 0 ||
	    store_body_finish(b, &err) < 0) {
		store_body_unref(&b);
		return NULL;
	}
	return b;
}

static int64_t create_email(struct store_user *u, const char *text,
			    const uint32_t *mailboxes, size_t n,
			    struct store_email_result *res_r)
{
	struct store_body *b = body(u, text);
	struct store_error err;
	if (b == NULL)
		return -1;
	struct store_email_tx *tx;
	store_email_tx_begin(u, &tx);
	const char *kw[] = {"$Important"};
	struct store_append_params p = {STORE_FLAG_SEEN, kw, 1, 0};
	store_email_tx_create(tx, &b, mailboxes, n, &p);
	struct store_email_result *res;
	size_t rn;
	if (store_email_tx_commit(&tx, &res, &rn, &err) < 0)
		return -1;
	*res_r = res[0];
	free(res);
	return res_r->id;
}

/* Email/set: creates into several mailboxes, updates of keywords and
 * mailboxes, destroys, each failing alone. */
static void test_email_tx(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 8);
	struct store_error err;
	uint32_t inbox = mbox(u, "INBOX").info.id,
		 archive = mbox(u, "Archive").info.id,
		 trash = mbox(u, "Trash").info.id;
	uint32_t two[2] = {inbox, archive};
	struct store_email_result res = {0};
	int64_t id = create_email(u, msg_a, two, 2, &res);
	CHECK(id > 0);
	CHECK(res.thread > 0);
	CHECK_INT(res.err.kind, STORE_ERR_NONE);
	struct store_email *e;
	CHECK_INT(store_email_get(u, &id, 1, &e, &err), 0);
	CHECK_INT(e[0].mailbox_count, 2);
	CHECK_INT(e[0].keyword_count, 1);
	CHECK(e[0].flags & STORE_FLAG_SEEN);
	store_email_free(e, 1);
	CHECK_INT(mbox(u, "Archive").emails, 1);

	/* update: -$seen +$flagged, move out of Archive into Trash; one bad
	 * update (no such mailbox) and one destroy of a missing Email fail
	 * without undoing the good one */
	struct store_email_tx *tx;
	store_email_tx_begin(u, &tx);
	const char *kwrm[] = {"$important"};
	uint32_t add[] = {trash}, rm[] = {archive}, bad[] = {9999};
	struct store_email_update up = {0};
	up.flags = STORE_FLAG_FLAGGED;
	up.flags_remove = STORE_FLAG_SEEN;
	up.keywords_remove = kwrm;
	up.keyword_remove_count = 1;
	up.mailboxes = add;
	up.mailbox_count = 1;
	up.mailboxes_remove = rm;
	up.mailbox_remove_count = 1;
	store_email_tx_update(tx, id, &up);
	struct store_email_update up2 = {0};
	up2.mailboxes = bad;
	up2.mailbox_count = 1;
	store_email_tx_update(tx, id, &up2);
	store_email_tx_destroy(tx, 123456);
	struct store_email_result *rs;
	size_t rn;
	CHECK_INT(store_email_tx_commit(&tx, &rs, &rn, &err), 0);
	CHECK_INT(rn, 3);
	CHECK_INT(rs[0].err.kind, STORE_ERR_NONE);
	CHECK_INT(rs[1].err.kind, STORE_ERR_NOTFOUND);
	CHECK_INT(rs[2].err.kind, STORE_ERR_NOTFOUND);
	free(rs);
	CHECK_INT(store_email_get(u, &id, 1, &e, &err), 0);
	CHECK_INT(e[0].mailbox_count, 2);
	CHECK(e[0].mailboxes[0] == inbox || e[0].mailboxes[1] == inbox);
	CHECK(e[0].mailboxes[0] == trash || e[0].mailboxes[1] == trash);
	CHECK_INT(e[0].keyword_count, 0);
	CHECK_INT(e[0].flags & (STORE_FLAG_SEEN | STORE_FLAG_FLAGGED),
		  STORE_FLAG_FLAGGED);
	store_email_free(e, 1);
	CHECK_INT(mbox(u, "Archive").emails, 0);
	CHECK_INT(mbox(u, "Trash").emails, 1);
	CHECK_INT(mbox(u, "INBOX").unread_emails, 1);

	/* replacing mailboxes with none fails; quota refuses a copy */
	store_email_tx_begin(u, &tx);
	struct store_email_update up3 = {0};
	up3.replace_mailboxes = true;
	store_email_tx_update(tx, id, &up3);
	CHECK_INT(store_email_tx_commit(&tx, &rs, &rn, &err), 0);
	CHECK_INT(rs[0].err.kind, STORE_ERR_INVALID);
	free(rs);
	test_limits.quota_messages = 2;
	store_email_tx_begin(u, &tx);
	struct store_email_update up4 = {0};
	up4.mailboxes = &archive;
	up4.mailbox_count = 1;
	store_email_tx_update(tx, id, &up4);
	CHECK_INT(store_email_tx_commit(&tx, &rs, &rn, &err), 0);
	CHECK_INT(rs[0].err.kind, STORE_ERR_QUOTA);
	free(rs);
	test_limits.quota_messages = 0;

	/* create + destroy in one transaction (a draft's new version) */
	uint32_t drafts = mbox(u, "Drafts").info.id;
	struct store_body *b = body(u, msg_b);
	CHECK(b != NULL);
	store_email_tx_begin(u, &tx);
	store_email_tx_create(tx, &b, &drafts, 1, NULL);
	store_email_tx_destroy(tx, id);
	CHECK_INT(store_email_tx_commit(&tx, &rs, &rn, &err), 0);
	CHECK_INT(rs[0].err.kind, STORE_ERR_NONE);
	CHECK_INT(rs[1].err.kind, STORE_ERR_NONE);
	int64_t draft = rs[0].id;
	free(rs);
	CHECK_INT(store_email_get(u, &id, 1, &e, &err), 0);
	CHECK_INT(e[0].id, 0);
	store_email_free(e, 1);
	CHECK_INT(mbox(u, "INBOX").emails, 0);
	struct store_blob blob;
	CHECK_INT(store_email_open(u, draft, &blob, &err), 0);
	CHECK(blob.len > 10 && memcmp(blob.data, "From: b@", 8) == 0);
	store_blob_close(&blob);
	CHECK_INT(store_email_open(u, id, &blob, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);
	store_user_unref(&u);
	teardown(&store);
}

/* An index written before JMAP is upgraded with its counts right. */
static void test_upgrade(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 9);
	struct store_error err;
	append(u, "INBOX", msg_a, 0);
	append(u, "INBOX", msg_b, STORE_FLAG_SEEN);
	append(u, "Archive", msg_c, 0);
	store_user_unref(&u);
	store_close(&store);
	char *path = xasprintf("%s/mail/%02x/9/index.db", data_dir,
			       store_user_shard(9));
	sqlite3 *db;
	CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
	sq_jmap_functions(db);
	const char *down =
		"BEGIN;"
		/* what later versions added (import, version 6) */
		"ALTER TABLE msg DROP COLUMN uidl; DROP TABLE import_mark;"
		"ALTER TABLE blob DROP COLUMN head;"
		"DROP TABLE jemail; DROP TABLE jthread; DROP TABLE jmailbox;"
		"DROP TABLE jmbthread; DROP TABLE jmember; DROP TABLE jgone;"
		"DROP TABLE jobject; DROP TABLE jupload; DROP TABLE jmeta;"
		"DROP INDEX blob_thread; DROP INDEX msg_date;"
		"UPDATE account SET version = " STR(SQ_JMAP_SCHEMA_VERSION) " - 1;"
		"COMMIT;";
	char *msg = NULL;
	CHECK_INT(sqlite3_exec(db, down, NULL, NULL, &msg), SQLITE_OK);
	if (msg != NULL)
		fprintf(stderr, "%s\n", msg);
	sqlite3_free(msg);
	/* triggers went with their tables? no: drop them too */
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type ="
			   " 'trigger'", -1, &st, NULL);
	struct buf drops;
	buf_init(&drops, 0);
	while (sqlite3_step(st) == SQLITE_ROW)
		buf_printf(&drops, "DROP TRIGGER %s;", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	buf_append(&drops, "", 0);
	CHECK_INT(sqlite3_exec(db, drops.data, NULL, NULL, NULL), SQLITE_OK);
	buf_free(&drops);
	sqlite3_close(db);
	free(path);

	struct store_settings set = {.data_dir = data_dir, .fsync = false};
	CHECK_INT(store_open(&set, &store, &err), 0);
	u = user_open(store, 9);
	struct store_jmap_mailbox in = mbox(u, "INBOX");
	CHECK_INT(in.emails, 2);
	CHECK_INT(in.unread_emails, 1);
	CHECK_INT(in.threads, 1);
	CHECK_INT(in.unread_threads, 1);
	CHECK_INT(mbox(u, "Archive").emails, 1);
	struct store_jmap_cursor s = state(u, STORE_JMAP_EMAIL);
	/* no history from before the upgrade */
	struct store_jmap_cursor old = {.modseq = s.modseq - 1};
	struct store_jmap_changes ch = changes(u, STORE_JMAP_EMAIL, old, 0);
	CHECK(ch.too_old);
	store_jmap_changes_free(&ch);
	append(u, "INBOX", "Subject: new\r\n\r\nx\r\n", 0);
	ch = changes(u, STORE_JMAP_EMAIL, s, 0);
	CHECK(!ch.too_old);
	CHECK_INT(ch.created_count, 1);
	store_jmap_changes_free(&ch);
	CHECK_INT(mbox(u, "INBOX").emails, 3);
	store_user_unref(&u);
	teardown(&store);
}

static void test_uploads_objects_search(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 10);
	struct store_error err;
	struct store_upload *up;
	CHECK_INT(store_upload_begin(u, 10, &up, &err), 0);
	CHECK_INT(store_upload_write(up, "0123456789", 10, &err), 0);
	CHECK_INT(store_upload_write(up, "x", 1, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_LIMIT);
	store_upload_abort(&up);
	CHECK_INT(store_upload_begin(u, 0, &up, &err), 0);
	CHECK_INT(store_upload_write(up, "a\nb\0c", 5, &err), 0);
	int64_t id;
	uint64_t size;
	time_t now = time(NULL);
	CHECK_INT(store_upload_finish(&up, "text/plain", now + 3600, &id,
				      &size, &err), 0);
	CHECK_INT(size, 5);
	struct store_blob b;
	char *type;
	CHECK_INT(store_upload_open(u, id, &b, &type, &err), 0);
	CHECK_MEM(b.data, b.len, "a\nb\0c", 5);
	CHECK_STR(type, "text/plain");
	free(type);
	store_blob_close(&b);
	CHECK_INT(store_upload_touch(u, id, now + 7200, &err), 0);
	CHECK_INT(store_jmap_prune(u, now + 3700, &err), 0);
	CHECK_INT(store_upload_open(u, id, &b, NULL, &err), 0);
	store_blob_close(&b);
	CHECK_INT(store_jmap_prune(u, now + 7300, &err), 0);
	CHECK_INT(store_upload_open(u, id, &b, NULL, &err), -1);
	CHECK_INT(err.kind, STORE_ERR_NOTFOUND);

	struct store_jmap_cursor s = state(u, STORE_JMAP_IDENTITY);
	int64_t oid;
	CHECK_INT(store_jobject_put(u, STORE_JMAP_IDENTITY, 0, "{\"a\":1}",
				    &oid, &err), 0);
	CHECK_INT(oid, 1);
	struct store_jmap_changes ch = changes(u, STORE_JMAP_IDENTITY, s, 0);
	CHECK_INT(ch.created_count, 1);
	store_jmap_changes_free(&ch);
	CHECK(state(u, STORE_JMAP_IDENTITY).modseq > s.modseq);
	CHECK_INT(state(u, STORE_JMAP_VACATION).modseq, 0);
	struct store_jmap_cursor s2 = state(u, STORE_JMAP_IDENTITY);
	CHECK_INT(store_jobject_delete(u, STORE_JMAP_IDENTITY, oid, &err), 0);
	CHECK_INT(store_jobject_delete(u, STORE_JMAP_IDENTITY, oid, &err), -1);
	ch = changes(u, STORE_JMAP_IDENTITY, s2, 0);
	CHECK_INT(ch.destroyed_count, 1);
	store_jmap_changes_free(&ch);
	CHECK_INT(store_jobject_put(u, STORE_JMAP_IDENTITY, 0, "{}", &oid,
				    &err), 0);
	CHECK_INT(oid, 2);   /* never an id again */
	struct store_jobject *objs;
	size_t on;
	CHECK_INT(store_jobject_list(u, STORE_JMAP_IDENTITY, &objs, &on, &err),
		  0);
	CHECK_INT(on, 1);
	store_jobject_list_free(objs, on);

	uint32_t ua = append(u, "INBOX", msg_a, 0);
	append(u, "Archive", msg_b, 0);
	int64_t ea = 0;
	struct store_fetch *f;
	struct store_uid_range r = {ua, ua};
	CHECK_INT(store_fetch_begin(u, "INBOX", &r, 1, 0, &f, &err), 0);
	const struct store_msg *m;
	if (store_fetch_next(f, &m, &err) == 1)
		store_objectid_parse(m->emailid, 'M', 10, &ea);
	store_fetch_end(&f);
	int64_t *ids;
	size_t n;
	CHECK_INT(store_email_search(u, STORE_TEXT_BODY, NULL, "ALPHA", &ids,
				     &n, &err), 0);
	CHECK_INT(n, 1);
	CHECK_INT(ids[0], ea);
	free(ids);
	CHECK_INT(store_email_search(u, STORE_TEXT_ALL, NULL, "text", &ids, &n,
				     &err), 0);
	CHECK_INT(n, 2);
	free(ids);
	CHECK_INT(store_email_search(u, STORE_TEXT_ALL, "Subject", "first",
				     &ids, &n, &err), 0);
	CHECK_INT(n, 2);   /* "first" and "Re: first" */
	free(ids);
	CHECK_INT(store_email_search(u, STORE_TEXT_ALL, "from", "b@example",
				     &ids, &n, &err), 0);
	CHECK_INT(n, 1);
	free(ids);
	CHECK_INT(store_index_flush(u, &err), 0);
	CHECK_INT(store_email_search(u, STORE_TEXT_ALL, "to", "b@example",
				     &ids, &n, &err), 0);
	CHECK_INT(n, 1);
	CHECK_INT(ids[0], ea);
	free(ids);
	store_user_unref(&u);
	teardown(&store);
}


/* A late reply that links two threads joins them (RFC 8621 3): the
 * smaller thread's messages come back under new ids and new UIDs. */
static void test_thread_merge(void)
{
	struct store *store = setup();
	struct store_user *u = user_open(store, 11);
	struct store_error err;
	uint32_t ua = append(u, "INBOX", "Subject: a\r\nMessage-ID: <a@t>\r\n"
			     "\r\na\r\n", 0);
	uint32_t ua2 = append(u, "INBOX", "Subject: a2\r\nMessage-ID: <a2@t>"
			      "\r\nReferences: <a@t>\r\n\r\na2\r\n", 0);
	uint32_t uc = append(u, "Archive", "Subject: c\r\nMessage-ID: <c@t>"
			     "\r\n\r\nc\r\n", STORE_FLAG_SEEN);
	int64_t ea = email_of(u, "INBOX", ua), ec = email_of(u, "Archive", uc);
	(void)ua2;
	struct store_email *e;
	CHECK_INT(store_email_get(u, &ea, 1, &e, &err), 0);
	int64_t ta = e[0].thread;
	store_email_free(e, 1);
	CHECK_INT(store_email_get(u, &ec, 1, &e, &err), 0);
	int64_t tc = e[0].thread;
	store_email_free(e, 1);
	CHECK(ta != tc);
	struct store_jmap_cursor s = state(u, STORE_JMAP_EMAIL),
				 ts = state(u, STORE_JMAP_THREAD);
	uint32_t ub = append(u, "INBOX", "Subject: b\r\nMessage-ID: <b@t>\r\n"
			     "References: <c@t> <a@t>\r\n\r\nb\r\n", 0);
	int64_t eb = email_of(u, "INBOX", ub);
	CHECK_INT(store_email_get(u, &eb, 1, &e, &err), 0);
	CHECK_INT(e[0].thread, ta);   /* the bigger thread stays */
	store_email_free(e, 1);
	int64_t *ids;
	size_t n;
	CHECK_INT(store_thread_emails(u, ta, &ids, &n, &err), 0);
	CHECK_INT(n, 4);
	free(ids);
	CHECK_INT(store_thread_emails(u, tc, &ids, &n, &err), 0);
	CHECK_INT(n, 0);
	free(ids);
	/* c is a new Email in Archive, with its flags, under a new UID */
	CHECK_INT(store_email_get(u, &ec, 1, &e, &err), 0);
	CHECK_INT(e[0].id, 0);
	store_email_free(e, 1);
	struct store_jmap_changes ch = changes(u, STORE_JMAP_EMAIL, s, 0);
	CHECK(has_id(ch.destroyed, ch.destroyed_count, ec));
	CHECK_INT(ch.created_count, 2);   /* b, and c again */
	int64_t ec2 = 0;
	for (size_t i = 0; i < ch.created_count; i++)
		if (ch.created[i].id != eb)
			ec2 = ch.created[i].id;
	store_jmap_changes_free(&ch);
	CHECK_INT(store_email_get(u, &ec2, 1, &e, &err), 0);
	CHECK_INT(e[0].thread, ta);
	CHECK(e[0].flags & STORE_FLAG_SEEN);
	CHECK_INT(e[0].mailbox_count, 1);
	store_email_free(e, 1);
	CHECK_INT(email_of(u, "Archive", uc), 0);   /* the old UID is gone */
	CHECK_INT(email_of(u, "Archive", uc + 1), ec2);
	struct store_blob blob;
	CHECK_INT(store_email_open(u, ec2, &blob, &err), 0);
	CHECK(blob.len > 0 && memmem(blob.data, blob.len, "Subject: c", 10));
	store_blob_close(&blob);
	ch = changes(u, STORE_JMAP_THREAD, ts, 0);
	CHECK(has_id(ch.destroyed, ch.destroyed_count, tc));
	CHECK(has_id(ch.updated, ch.updated_count, ta));
	store_jmap_changes_free(&ch);
	CHECK_INT(mbox(u, "Archive").emails, 1);
	CHECK_INT(mbox(u, "INBOX").threads, 1);
	/* a later reply to c lands in the joined thread */
	uint32_t ud = append(u, "INBOX", "Subject: d\r\nMessage-ID: <d@t>\r\n"
			     "In-Reply-To: <c@t>\r\n\r\nd\r\n", 0);
	int64_t ed = email_of(u, "INBOX", ud);
	CHECK_INT(store_email_get(u, &ed, 1, &e, &err), 0);
	CHECK_INT(e[0].thread, ta);
	store_email_free(e, 1);
	/* a big body (a file) moves too */
	char *big = xmalloc(300 * 1024);
	memset(big, 'x', 300 * 1024);
	static const char head[] = "Subject: f\r\nMessage-ID: <f@t>\r\n\r\n";
	memcpy(big, head, sizeof(head) - 1);
	big[300 * 1024 - 1] = '\0';
	uint32_t uf = append(u, "INBOX", big, 0);
	free(big);
	CHECK(uf != 0);
	append(u, "INBOX", "Subject: g\r\nMessage-ID: <g@t>\r\n"
	       "References: <a@t> <f@t>\r\n\r\ng\r\n", 0);
	/* the merge ran before g got its UID: f is back as uf + 1 */
	int64_t ef = email_of(u, "INBOX", uf + 1);
	CHECK(ef != 0);
	CHECK_INT(store_email_open(u, ef, &blob, &err), 0);
	CHECK_INT(blob.len, 300 * 1024 - 1);
	store_blob_close(&blob);
	CHECK_INT(store_check(store, 11, false, NULL, NULL, &err), 0);
	store_user_unref(&u);
	teardown(&store);
}

int main(void)
{
	/* the postgres backend (pg-jmail.c): all but the upgrade of a
	 * sqlite index from before JMAP */
	static const struct test_case pg_cases[] = {
		{"ids", test_ids},
		{"counts_and_changes", test_counts_and_changes},
		{"paging", test_paging},
		{"prune", test_prune},
		{"email_tx", test_email_tx},
		{"uploads_objects_search", test_uploads_objects_search},
		{"thread_merge", test_thread_merge},
		{NULL, NULL},
	};
	if (getenv("LOFT_TEST_PG") != NULL)
		return test_main(pg_cases);
	static const struct test_case cases[] = {
		{"ids", test_ids},
		{"counts_and_changes", test_counts_and_changes},
		{"paging", test_paging},
		{"prune", test_prune},
		{"email_tx", test_email_tx},
		{"upgrade", test_upgrade},
		{"uploads_objects_search", test_uploads_objects_search},
		{"thread_merge", test_thread_merge},
		{NULL, NULL},
	};
	return test_main(cases);
}
