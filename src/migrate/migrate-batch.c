/*
 * Messages into the store in batches: the drivers (Maildir, mbox, IMAP,
 * POP3, restore) queue each finished body with migrate_msg_commit, and a
 * batch goes to store_import_append_batch as one commit (one commit per
 * message was most of an import's time). Resume marks commit with their
 * messages, so a run killed -9 leaves whole messages only and the next
 * run continues after the last committed batch.
 *
 * Bodies come written but not finished: a batch finishes them
 * (store_body_finish: MIME analysis, search text folded and compressed)
 * several at once (store_bodies_finish) before its commit; one thread
 * did it all before, while the other cores idled.
 *
 * After the commit each message is counted or reported here; a message
 * whose kept ids are taken (other mail reached the folder, an EMAILID in
 * use) is added again alone with new ones, and one whose POP3 UIDL Loft
 * cannot give is added without it. Over quota the import stops at that
 * message: the later ones of its batch are not tried.
 */
#include "migrate-private.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"

#define BATCH_MESSAGES 128
#define BATCH_BYTES (8u * 1024 * 1024)

struct queued {
	struct store_body *body;
	char *folder, *label, *pop3_uidl, *mark_source, *mark_id;
	char *mark_renumbered;
	char **keywords;
	size_t keyword_count;
	uint64_t size;
	int finish_ret;               /* store_body_finish's */
	struct store_error finish_err;
};

struct migrate_batch {
	struct queued *q;
	struct store_import_item *items;
	size_t n, cap;
	uint64_t bytes;
};

static char *dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static void queued_free(struct queued *q)
{
	store_body_unref(&q->body);
	free(q->folder);
	free(q->label);
	free(q->pop3_uidl);
	free(q->mark_source);
	free(q->mark_id);
	free(q->mark_renumbered);
	for (size_t i = 0; i < q->keyword_count; i++)
		free(q->keywords[i]);
	free(q->keywords);
	memset(q, 0, sizeof(*q));
}

/* After the batch: a failed message alone again, with new ids or
 * without its UIDL, when the failure says that helps; the final result
 * in it. */
static void retry_alone(struct migrate *m, struct store_import_item *it,
			const struct queued *q)
{
	struct store_import_params *p = &it->p;
	enum store_error_kind k = it->err.kind;
	if (k == STORE_ERR_QUOTA || k == STORE_ERR_TEMP ||
	    strncmp(it->err.msg, "Already", 7) == 0)
		return;
	if (k != STORE_ERR_INVALID && (p->uid != 0 || p->email != 0)) {
		/* ids taken (other mail reached the folder, the Email is
		 * another's): added with new ones */
		bool had_uid = p->uid != 0;
		if (had_uid && q->mark_renumbered != NULL)
			p->mark_id = q->mark_renumbered;
		p->uid = 0;
		p->email = p->thread = 0;
		p->modseq = 0;
		it->ret = store_import_append(m->user, it->mailbox, it->body, p,
					      &it->uid, &it->err);
		if (it->ret == 0 && had_uid && m->cur != NULL)
			m->cur->renumbered++;
	}
	if (it->ret < 0 && it->err.kind == STORE_ERR_INVALID &&
	    p->pop3_uidl != NULL) {
		/* a UIDL Loft cannot give: the message without it */
		migrate_error(m, q->folder, q->label, "POP3 UIDL not kept: %s",
			      it->err.msg);
		p->pop3_uidl = NULL;
		it->ret = store_import_append(m->user, it->mailbox, it->body, p,
					      &it->uid, &it->err);
	}
}

static void count_failed(struct migrate *m)
{
	m->failed++;
	if (m->cur != NULL)
		m->cur->failed++;
}

/* A batch the store could not take at all (every item TEMP: its BEGIN
 * or COMMIT failed, the index busy past SQLite's 30 s wait) is tried
 * again after a pause, up to TEMP_TRIES times. Another process's writer
 * can hold an account that long: loftd's indexer, catching up on what
 * an import added once loftd opened the account, runs its batches back
 * to back and a waiting writer elsewhere seldom gets in between. */
#define TEMP_TRIES 6

static bool all_temp(const struct migrate_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->items[i].ret == 0 ||
		    b->items[i].err.kind != STORE_ERR_TEMP)
			return false;
	return b->n > 0;
}

static void commit_batch(struct migrate *m, struct migrate_batch *b)
{
	store_import_append_batch(m->user, b->items, b->n);
	for (unsigned t = 0; t < TEMP_TRIES && all_temp(b); t++) {
		sleep(t < 4 ? 1u << t : 15);
		store_import_append_batch(m->user, b->items, b->n);
	}
}

/* Finishes every queued body, several at once (store_bodies_finish). */
static void finish_all(struct migrate_batch *b)
{
	struct store_body **bodies = xcalloc(b->n, sizeof(*bodies));
	int *ret = xcalloc(b->n, sizeof(*ret));
	struct store_error *errs = xcalloc(b->n, sizeof(*errs));
	for (size_t i = 0; i < b->n; i++)
		bodies[i] = b->q[i].body;
	store_bodies_finish(bodies, b->n, ret, errs);
	for (size_t i = 0; i < b->n; i++) {
		b->q[i].finish_ret = ret[i];
		b->q[i].finish_err = errs[i];
	}
	free(errs);
	free(ret);
	free(bodies);
}

/* The modseqs this commit's messages got, as one mark of their own
 * (one more commit per batch): a restore killed before it finishes a
 * folder finds them on its rerun (migrate-backup.c). Killed before this
 * mark, those messages keep the counter's modseqs. */
static void got_mark(struct migrate *m, size_t from)
{
	struct buf b;
	buf_init(&b, 0);
	for (size_t i = from; i < m->got_n; i++)
		buf_printf(&b, "%s%u=%llu", b.len ? "," : "", m->got[i].uid,
			   (unsigned long long)m->got[i].modseq);
	char *id = buf_steal(&b, NULL);
	struct store_error err;
	if (store_import_mark_add(m->user, m->got_mark_source, id, &err) < 0)
		migrate_error(m, m->cur != NULL ? m->cur->name : NULL, NULL,
			      "the modseqs of a commit not kept for a rerun:"
			      " %s", err.msg);
	free(id);
}

int migrate_msg_flush(struct migrate *m)
{
	struct migrate_batch *b = m->batch;
	if (b == NULL || b->n == 0)
		return m->quota_stop ? -2 : 0;
	finish_all(b);
	/* a body that could not be finished is reported and left out; the
	 * rest keep their order */
	size_t kept = 0;
	for (size_t i = 0; i < b->n; i++) {
		struct queued *q = &b->q[i];
		if (q->finish_ret < 0) {
			migrate_error(m, q->folder, q->label, "%s",
				      q->finish_err.msg);
			count_failed(m);
			queued_free(q);
			continue;
		}
		if (kept != i) {
			b->q[kept] = *q;
			b->items[kept] = b->items[i];
			memset(q, 0, sizeof(*q));
		}
		kept++;
	}
	b->n = kept;
	commit_batch(m, b);
	bool stored = false;
	size_t got_from = m->got_n;
	for (size_t i = 0; i < b->n; i++) {
		struct store_import_item *it = &b->items[i];
		struct queued *q = &b->q[i];
		if (m->quota_stop)
			break;   /* not tried: the next run resumes there */
		if (it->ret < 0)
			retry_alone(m, it, q);
		if (it->ret == 0) {
			stored = true;
			migrate_count(m, q->size, true);
			if (m->got_record && it->p.uid != 0 &&
			    it->uid == it->p.uid) {
				if (m->got_n == m->got_cap) {
					m->got_cap = m->got_cap ? m->got_cap * 2
								: 256;
					m->got = xrealloc(m->got, m->got_cap *
								  sizeof(*m->got));
				}
				m->got[m->got_n++] = (struct migrate_got){
					it->uid, it->modseq};
			}
		} else if (it->err.kind == STORE_ERR_EXISTS) {
			m->skipped++;
			if (m->cur != NULL)
				m->cur->skipped++;
		} else if (it->err.kind == STORE_ERR_QUOTA) {
			migrate_error(m, q->folder, q->label, "over quota:"
				      " nothing more imported; the next run"
				      " resumes at this message");
			count_failed(m);
			m->quota_stop = true;
		} else {
			migrate_error(m, q->folder, q->label, "%s",
				      it->err.msg);
			count_failed(m);
		}
	}
	if (m->got_mark_source != NULL && m->got_n > got_from)
		got_mark(m, got_from);
	for (size_t i = 0; i < b->n; i++)
		queued_free(&b->q[i]);
	b->n = 0;
	b->bytes = 0;
	if (stored && m->committed != NULL)
		m->committed(m->account_ctx, m->user);
	return m->quota_stop ? -2 : 0;
}

int migrate_msg_commit(struct migrate *m, struct store_body **body,
		       const struct migrate_msg *in, bool keep_uids)
{
	if (m->quota_stop) {
		store_body_unref(body);
		return -2;
	}
	if (m->batch == NULL)
		m->batch = xcalloc(1, sizeof(*m->batch));
	struct migrate_batch *b = m->batch;
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 16;
		b->q = xrealloc(b->q, b->cap * sizeof(*b->q));
		b->items = xrealloc(b->items, b->cap * sizeof(*b->items));
	}
	struct queued *q = &b->q[b->n];
	memset(q, 0, sizeof(*q));
	q->body = *body;
	*body = NULL;
	q->folder = xstrdup(in->folder);
	q->label = dup_or_null(in->label);
	q->pop3_uidl = dup_or_null(in->pop3_uidl);
	q->mark_source = dup_or_null(in->mark_source);
	q->mark_id = dup_or_null(in->mark_id);
	q->mark_renumbered = dup_or_null(in->mark_renumbered);
	q->size = in->size;
	if (in->keyword_count > 0) {
		q->keywords = xcalloc(in->keyword_count, sizeof(char *));
		for (size_t i = 0; i < in->keyword_count; i++)
			q->keywords[i] = xstrdup(in->keywords[i]);
		q->keyword_count = in->keyword_count;
	}
	struct store_import_item *it = &b->items[b->n];
	memset(it, 0, sizeof(*it));
	it->mailbox = q->folder;
	it->body = q->body;
	it->p.append.flags = in->flags;
	it->p.append.keywords = (const char *const *)q->keywords;
	it->p.append.keyword_count = q->keyword_count;
	it->p.append.internaldate = in->date;
	it->p.uid = keep_uids ? in->uid : 0;
	it->p.modseq = keep_uids ? in->modseq : 0;
	it->p.email = in->email;
	it->p.thread = in->thread;
	it->p.savedate = in->savedate;
	it->p.pop3_uidl = q->pop3_uidl;
	it->p.pop3_hidden = in->pop3_hidden;
	it->p.pop3_first_retr = in->pop3_first_retr;
	it->p.mark_source = q->mark_source;
	it->p.mark_id = q->mark_id;
	b->n++;
	b->bytes += in->size;
	if (b->n >= BATCH_MESSAGES || b->bytes >= BATCH_BYTES)
		return migrate_msg_flush(m);
	return 0;
}

void migrate_batch_free(struct migrate *m)
{
	free(m->got);
	m->got = NULL;
	m->got_n = m->got_cap = 0;
	struct migrate_batch *b = m->batch;
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++)
		queued_free(&b->q[i]);
	free(b->q);
	free(b->items);
	free(b);
	m->batch = NULL;
}
