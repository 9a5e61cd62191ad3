/*
 * Messages of the embedded backend: the append transaction (message row,
 * cached analysis, search text, thread, counters and quota together),
 * fetch iterators over cached metadata, flag changes with modseq, copy
 * and move (same blob, new UID), and expunge with its log.
 */
#include "sq-private.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "u32.h"

/* RFC 8474 object ids: "<letter><user hex>-<id hex>", unique on the
 * server, stable for the life of the blob (store_objectid_format). */
void sq_emailid(char out[32], int64_t user_id, int64_t blob)
{
	store_objectid_format(out, 'M', user_id, blob);
}

void sq_threadid(char out[32], int64_t user_id, int64_t thread)
{
	store_objectid_format(out, 'T', user_id, thread);
}

bool sq_ranges_contain(const struct store_uid_range *ranges, size_t count,
		       uint32_t uid)
{
	return store_ranges_contain(ranges, count, uid);
}

int sq_mbox_adjust(struct sq_conn *c, uint32_t id, int64_t messages,
		   int64_t unseen, int64_t deleted, int64_t size,
		   uint64_t modseq, uint32_t uidnext)
{
	sqlite3_stmt *st = sq_stmt(c, "UPDATE mailbox SET messages = messages + ?,"
				      " unseen = unseen + ?, deleted = deleted + ?,"
				      " size = size + ?,"
				      " highestmodseq = max(highestmodseq, ?),"
				      " uidnext = max(uidnext, ?) WHERE id = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, messages);
	sqlite3_bind_int64(st, 2, unseen);
	sqlite3_bind_int64(st, 3, deleted);
	sqlite3_bind_int64(st, 4, size);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)modseq);
	sqlite3_bind_int64(st, 6, uidnext);
	sqlite3_bind_int64(st, 7, id);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int keyword_register(struct sq_conn *c, uint32_t mailbox,
			    const char *kw)
{
	sqlite3_stmt *st = sq_stmt(c, "INSERT OR IGNORE INTO keyword VALUES (?, ?)");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox);
	sqlite3_bind_text(st, 2, kw, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Registers every keyword of a space-separated list. */
int sq_keywords_register(struct sq_conn *c, uint32_t mailbox,
			     const char *list)
{
	if (list == NULL)
		return 0;
	char *copy = xstrdup(list), *save = NULL;
	int ret = 0;
	for (char *k = strtok_r(copy, " ", &save); k != NULL && ret == 0;
	     k = strtok_r(NULL, " ", &save))
		ret = keyword_register(c, mailbox, k);
	free(copy);
	return ret;
}

/* ---- rows --------------------------------------------------------- */

int sq_rows_get(struct sq_conn *c, uint32_t mailbox_id,
		const struct store_uid_range *ranges, size_t range_count,
		struct sq_msgrow **rows_r, size_t *count_r)
{
	struct store_uid_range all = {1, UINT32_MAX};
	if (ranges == NULL) {
		ranges = &all;
		range_count = 1;
	}
	struct sq_msgrow *rows = NULL;
	size_t n = 0, cap = 0;
	for (size_t r = 0; r < range_count; r++) {
		sqlite3_stmt *st = sq_stmt(c, "SELECT uid, blob, modseq, flags,"
					      " keywords, internaldate, savedate,"
					      " size, pop3_first_retr, pop3_hidden"
					      " FROM msg WHERE mailbox = ?"
					      " AND uid BETWEEN ? AND ? ORDER BY uid");
		if (st == NULL)
			goto fail;
		sqlite3_bind_int64(st, 1, mailbox_id);
		sqlite3_bind_int64(st, 2, ranges[r].lo);
		sqlite3_bind_int64(st, 3, ranges[r].hi);
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				rows = xrealloc(rows, cap * sizeof(*rows));
			}
			struct sq_msgrow *m = &rows[n++];
			m->uid = (uint32_t)sqlite3_column_int64(st, 0);
			m->blob = sqlite3_column_int64(st, 1);
			m->modseq = (uint64_t)sqlite3_column_int64(st, 2);
			m->flags = (unsigned)sqlite3_column_int(st, 3);
			const char *kw = (const char *)sqlite3_column_text(st, 4);
			m->keywords = kw != NULL ? xstrdup(kw) : NULL;
			m->internaldate = sqlite3_column_int64(st, 5);
			m->savedate = sqlite3_column_int64(st, 6);
			m->size = (uint64_t)sqlite3_column_int64(st, 7);
			m->pop3_first_retr = sqlite3_column_int64(st, 8);
			m->pop3_hidden = sqlite3_column_int(st, 9) != 0;
		}
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			goto fail;
	}
	/* Overlapping ranges from a front-end would repeat rows. */
	if (range_count > 1 && n > 1) {
		size_t w = 1;
		for (size_t i = 1; i < n; i++) {
			if (rows[i].uid == rows[w - 1].uid) {
				free(rows[i].keywords);
				continue;
			}
			rows[w++] = rows[i];
		}
		n = w;
	}
	*rows_r = rows;
	*count_r = n;
	return 0;
fail:
	sq_rows_free(rows, n);
	return -1;
}

void sq_rows_free(struct sq_msgrow *rows, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(rows[i].keywords);
	free(rows);
}

int sq_blob_unref(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		  int64_t blob)
{
	/* a message kept for undelete (sq-undelete.c) uses it too */
	sqlite3_stmt *st = sq_stmt(c, "SELECT 1 FROM msg WHERE blob = ?1"
				      " UNION ALL SELECT 1 FROM deleted"
				      " WHERE blob = ?1 LIMIT 1");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, blob);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc != SQLITE_DONE)
		return -1;
	st = sq_stmt(c, "DELETE FROM blob WHERE id = ? RETURNING name, kind");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, blob);
	rc = sqlite3_step(st);
	bool inline_body = false;
	if (rc == SQLITE_ROW) {
		inline_body = sqlite3_column_int(st, 1) == SQ_BODY_INLINE;
		if (!inline_body)
			sq_job_unlink(job, (const char *)sqlite3_column_text(st, 0));
		rc = sqlite3_step(st);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return -1;
	if (inline_body) {
		/* its pages are free for the next bodies at once: a reader
		 * still in an older snapshot keeps seeing them (WAL) */
		st = sq_stmt(c, "DELETE FROM body WHERE id = ?");
		if (st == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, blob);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return -1;
	}
	return sq_text_delete(u, c, blob);
}

int sq_expunge_rows(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		    uint32_t mailbox_id, const struct sq_msgrow *rows,
		    size_t count, bool log)
{
	if (count == 0)
		return 0;
	uint64_t modseq = sq_job_modseq(u, job);
	int64_t unseen = 0, deleted = 0, size = 0;
	time_t now = time(NULL);
	for (size_t i = 0; i < count; i++) {
		const struct sq_msgrow *m = &rows[i];
		sqlite3_stmt *st = sq_stmt(c, "DELETE FROM msg WHERE mailbox = ?"
					      " AND uid = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, mailbox_id);
		sqlite3_bind_int64(st, 2, m->uid);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
		if (log) {
			st = sq_stmt(c, "INSERT OR REPLACE INTO expunged"
					" VALUES (?, ?, ?, ?)");
			if (st == NULL)
				return sq_job_dberr(job, c);
			sqlite3_bind_int64(st, 1, mailbox_id);
			sqlite3_bind_int64(st, 2, m->uid);
			sqlite3_bind_int64(st, 3, (sqlite3_int64)modseq);
			sqlite3_bind_int64(st, 4, now);
			rc = sqlite3_step(st);
			sqlite3_reset(st);
			if (rc != SQLITE_DONE)
				return sq_job_dberr(job, c);
		}
		if (sq_blob_unref(u, c, job, m->blob) < 0)
			return sq_job_dberr(job, c);
		unseen += !(m->flags & STORE_FLAG_SEEN);
		deleted += (m->flags & STORE_FLAG_DELETED) != 0;
		size += (int64_t)m->size;
		u->tx_bytes -= u->tx_bytes >= m->size ? m->size : u->tx_bytes;
		u->tx_messages -= u->tx_messages > 0;
	}
	u->tx_dirty = true;
	if (sq_mbox_adjust(c, mailbox_id, -(int64_t)count, -unseen, -deleted,
			   -size, modseq, 0) < 0)
		return sq_job_dberr(job, c);
	sq_job_change(job, mailbox_id, STORE_CHANGE_EXPUNGE);
	return 0;
}

static int insert_msg(struct sq_conn *c, uint32_t mailbox, uint32_t uid,
		      int64_t blob, uint64_t modseq, unsigned flags,
		      const char *keywords, int64_t internaldate,
		      int64_t savedate, uint64_t size)
{
	sqlite3_stmt *st = sq_stmt(c, "INSERT INTO msg (mailbox, uid, blob,"
				      " modseq, flags, keywords, internaldate,"
				      " savedate, size) VALUES (?,?,?,?,?,?,?,?,?)");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_int64(st, 3, blob);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)modseq);
	sqlite3_bind_int(st, 5, (int)flags);
	if (keywords != NULL && keywords[0] != '\0')
		sqlite3_bind_text(st, 6, keywords, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, internaldate);
	sqlite3_bind_int64(st, 8, savedate);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)size);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int sq_copy_rows(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		 uint32_t dst_id, const struct sq_msgrow *rows, size_t count,
		 time_t savedate, uint32_t *dst_uids)
{
	struct sq_mbox dst;
	if (count == 0)
		return 0;
	if (sq_mbox_get_id(c, dst_id, &dst) <= 0)
		return sq_job_dberr(job, c);
	uint64_t modseq = sq_job_modseq(u, job);
	uint32_t uid = dst.uidnext;
	int64_t unseen = 0, deleted = 0, size = 0;
	for (size_t i = 0; i < count; i++) {
		const struct sq_msgrow *m = &rows[i];
		if (uid == UINT32_MAX)
			return sq_job_fail(job, STORE_ERR_LIMIT,
					   "Mailbox is out of UIDs");
		if (insert_msg(c, dst_id, uid, m->blob, modseq, m->flags,
			       m->keywords, m->internaldate, savedate,
			       m->size) < 0 ||
		    sq_keywords_register(c, dst_id, m->keywords) < 0)
			return sq_job_dberr(job, c);
		dst_uids[i] = uid++;
		unseen += !(m->flags & STORE_FLAG_SEEN);
		deleted += (m->flags & STORE_FLAG_DELETED) != 0;
		size += (int64_t)m->size;
		u->tx_bytes += m->size;
		u->tx_messages++;
	}
	u->tx_dirty = true;
	if (sq_mbox_adjust(c, dst_id, (int64_t)count, unseen, deleted, size,
			   modseq, uid) < 0)
		return sq_job_dberr(job, c);
	sq_job_change(job, dst_id, STORE_CHANGE_APPEND);
	return 0;
}

/* ---- append ------------------------------------------------------- */

/* Calls fn for each "<id>" in s. */
static int each_msgid(const char *s, int (*fn)(void *, const char *, size_t),
		      void *ctx)
{
	for (const char *p = s; p != NULL && (p = strchr(p, '<')) != NULL;) {
		const char *e = strchr(p, '>');
		if (e == NULL)
			break;
		int r = fn(ctx, p, (size_t)(e - p + 1));
		if (r != 0)
			return r;
		p = e + 1;
	}
	return 0;
}

struct thread_ctx {
	struct sq_conn *c;
	int64_t thread;
	int64_t found[16];     /* the threads the ids name, distinct */
	size_t nfound;
	bool error;
};

static int thread_lookup(void *ctx, const char *id, size_t len)
{
	struct thread_ctx *t = ctx;
	sqlite3_stmt *st = sq_stmt(t->c, "SELECT thread FROM thread_ref"
					 " WHERE msgid = ?");
	if (st == NULL) {
		t->error = true;
		return 1;
	}
	sqlite3_bind_text(st, 1, id, (int)len, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		int64_t th = sqlite3_column_int64(st, 0);
		bool have = false;
		for (size_t i = 0; i < t->nfound && !have; i++)
			have = t->found[i] == th;
		if (!have && t->nfound < sizeof(t->found) / sizeof(*t->found))
			t->found[t->nfound++] = th;
	}
	sqlite3_reset(st);
	return 0;
}

static int thread_insert(void *ctx, const char *id, size_t len)
{
	struct thread_ctx *t = ctx;
	sqlite3_stmt *st = sq_stmt(t->c, "INSERT OR IGNORE INTO thread_ref"
					 " VALUES (?, ?)");
	if (st == NULL) {
		t->error = true;
		return 1;
	}
	sqlite3_bind_text(st, 1, id, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, t->thread);
	if (sqlite3_step(st) != SQLITE_DONE)
		t->error = true;
	sqlite3_reset(st);
	return t->error;
}

/* THREADID (RFC 8474): a message joins the thread of any message it
 * references, or of a reply that arrived before it and referenced it;
 * otherwise it starts its own thread (named after its blob). When it
 * links threads that were apart (a late reply), they become one: the
 * biggest stays, the others' messages move into it under new ids
 * (RFC 8621 3, sq_jmap_thread_merge). */
static int thread_assign(struct sq_user *u, struct sq_conn *c,
			 struct sq_job *job, const struct mail_result *an,
			 int64_t blob, int64_t want, int64_t *thread_r)
{
	struct thread_ctx t;
	memset(&t, 0, sizeof(t));
	t.c = c;
	if (want != 0) {
		/* an import keeping its THREADID: the ids join it */
		t.thread = want;
		each_msgid(an->message_id, thread_insert, &t);
		each_msgid(an->references, thread_insert, &t);
		each_msgid(an->in_reply_to, thread_insert, &t);
		*thread_r = want;
		return t.error ? -1 : 0;
	}
	each_msgid(an->references, thread_lookup, &t);
	each_msgid(an->in_reply_to, thread_lookup, &t);
	each_msgid(an->message_id, thread_lookup, &t);
	if (t.error)
		return -1;
	t.thread = t.nfound > 0 ? sq_jmap_thread_pick(c, t.found, t.nfound)
				: blob;
	if (t.thread < 0)
		return -1;
	for (size_t i = 0; i < t.nfound; i++)
		if (t.found[i] != t.thread &&
		    sq_jmap_thread_merge(u, c, job, t.thread, t.found[i]) < 0)
			return -1;
	each_msgid(an->message_id, thread_insert, &t);
	each_msgid(an->references, thread_insert, &t);
	each_msgid(an->in_reply_to, thread_insert, &t);
	*thread_r = t.thread;
	return t.error ? -1 : 0;
}

static void bind_opt(sqlite3_stmt *st, int i, const char *s)
{
	if (s != NULL)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static int insert_blob(struct sq_user *u, struct sq_conn *c,
		       struct sq_job *job, const struct sq_append_arg *a,
		       int64_t *blob_r)
{
	const struct mail_result *an = a->an;
	sqlite3_stmt *st = sq_stmt(c, "INSERT INTO blob (name, size, envelope,"
				      " bodystructure, body, parts, preview,"
				      " sort_subject, sort_from, sort_to, sort_cc,"
				      " sort_display_from, sort_display_to,"
				      " sent_date, message_id, in_reply_to, refs,"
				      " kind, prefix, crc, id, head)"
				      " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
				      "?,?,?,?,?)");
	if (st == NULL)
		return -1;
	/* NULL: the next id (an import may keep its EMAILID's) */
	if (a->want_blob != 0)
		sqlite3_bind_int64(st, 21, a->want_blob);
	sqlite3_bind_text(st, 1, a->blob_name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)a->size);
	bind_opt(st, 3, an->envelope);
	bind_opt(st, 4, an->bodystructure);
	bind_opt(st, 5, an->body);
	if (an->parts != NULL)
		sqlite3_bind_blob(st, 6, an->parts, (int)an->parts_len,
				  SQLITE_STATIC);
	bind_opt(st, 7, an->preview);
	bind_opt(st, 8, an->sort_subject);
	bind_opt(st, 9, an->sort_from);
	bind_opt(st, 10, an->sort_to);
	bind_opt(st, 11, an->sort_cc);
	bind_opt(st, 12, an->sort_display_from);
	bind_opt(st, 13, an->sort_display_to);
	sqlite3_bind_int64(st, 14, an->sent_date);
	bind_opt(st, 15, an->message_id);
	bind_opt(st, 16, an->in_reply_to);
	bind_opt(st, 17, an->references);
	sqlite3_bind_int(st, 18, a->kind);
	if (a->prefix_len > 0)
		sqlite3_bind_blob(st, 19, a->prefix, (int)a->prefix_len,
				  SQLITE_STATIC);
	sqlite3_bind_int64(st, 20, a->crc);
	if (a->has_head)
		sqlite3_bind_int64(st, 22, a->head);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return -1;
	*blob_r = sqlite3_last_insert_rowid(c->db);
	if (a->kind == SQ_BODY_INLINE) {
		st = sq_stmt(c, "INSERT INTO body (id, data) VALUES (?, ?)");
		if (st == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, *blob_r);
		sqlite3_bind_blob64(st, 2, a->body, a->body_len, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return -1;
	}

	int64_t thread;
	if (thread_assign(u, c, job, an, *blob_r, a->want_thread, &thread) < 0)
		return -1;
	st = sq_stmt(c, "UPDATE blob SET thread = ? WHERE id = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, thread);
	sqlite3_bind_int64(st, 2, *blob_r);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return -1;

	/* the text only: the indexer adds it to the trigram indexes later,
	 * in batches (search scans what it has not reached yet) */
	return sq_text_insert(c, *blob_r, an->header_text, an->header_text_len,
			      an->body_text, an->body_text_len,
			      a->body_text_enc);
}

int sq_blob_insert(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		   const struct sq_append_arg *a, int64_t *blob_r)
{
	return insert_blob(u, c, job, a, blob_r);
}

/* Joins keywords into the stored form: space-separated, each once
 * (keywords compare case-insensitively). */
static char *keywords_join(const char *const *kw, size_t n)
{
	struct buf b;
	buf_init(&b, 0);
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcasecmp(kw[i], kw[j]) == 0;
		if (dup)
			continue;
		if (b.len > 0)
			buf_append_char(&b, ' ');
		buf_append_str(&b, kw[i]);
	}
	return b.len > 0 ? buf_steal(&b, NULL) : (buf_free(&b), NULL);
}

int sq_append_tx(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct sq_append_arg *a = job->arg;
	struct sq_mbox mb;
	if (sq_job_mbox(job, c, a->mailbox, &mb) < 0)
		return -1;
	if (sq_over_quota(u, &a->limits, a->size, 1))
		return sq_job_fail(job, STORE_ERR_QUOTA, "Quota exceeded");
	if (mb.uidnext == UINT32_MAX)
		return sq_job_fail(job, STORE_ERR_LIMIT, "Mailbox is out of UIDs");
	uint64_t modseq = sq_job_modseq(u, job);
	const struct store_append_params *p = a->params;
	unsigned flags = p != NULL ? p->flags & 0x1f : 0;
	char *kw = p != NULL ? keywords_join(p->keywords, p->keyword_count)
			     : NULL;
	int64_t blob;
	time_t idate = p != NULL && p->internaldate != 0 ? p->internaldate
							 : a->now;
	int ret = 0;
	if (insert_blob(u, c, job, a, &blob) < 0 ||
	    /* a thread merge (thread_assign) may have taken UIDs here */
	    sq_mbox_get_id(c, mb.id, &mb) <= 0 ||
	    insert_msg(c, mb.id, mb.uidnext, blob, modseq, flags, kw, idate,
		       a->want_savedate != 0 ? a->want_savedate : a->now,
		       a->size) < 0 ||
	    sq_keywords_register(c, mb.id, kw) < 0 ||
	    sq_mbox_adjust(c, mb.id, 1, !(flags & STORE_FLAG_SEEN),
			   (flags & STORE_FLAG_DELETED) != 0,
			   (int64_t)a->size, modseq, mb.uidnext + 1) < 0)
		ret = sq_job_dberr(job, c);
	free(kw);
	if (ret < 0)
		return -1;
	u->tx_bytes += a->size;
	u->tx_messages++;
	u->tx_dirty = true;
	a->uid = mb.uidnext;
	a->uidvalidity = mb.uidvalidity;
	sq_job_change(job, mb.id, STORE_CHANGE_APPEND);
	return 0;
}

/* ---- fetch -------------------------------------------------------- */

struct store_fetch {
	struct store_object obj;
	struct sq_user *u;
	struct sq_conn *c;
	sqlite3_stmt *st;
	uint32_t mailbox_id;
	struct store_uid_range *ranges;
	size_t range_count, next_range;
	uint32_t last_uid;
	unsigned fields;
	bool join;
	struct store_msg msg;
	struct store_keyword_list kw;
};

#define FETCH_BLOB_FIELDS                                                    \
	(STORE_FETCH_ENVELOPE | STORE_FETCH_STRUCTURE | STORE_FETCH_PARTS |  \
	 STORE_FETCH_SORT | STORE_FETCH_PREVIEW | STORE_FETCH_OBJECTID)

static const char fetch_sql[] =
	"SELECT uid, modseq, flags, keywords, size, internaldate, savedate,"
	" pop3_hidden, pop3_first_retr, blob, uidl FROM msg"
	" WHERE mailbox = ? AND uid BETWEEN ? AND ? ORDER BY uid";
static const char fetch_join_sql[] =
	"SELECT m.uid, m.modseq, m.flags, m.keywords, m.size, m.internaldate,"
	" m.savedate, m.pop3_hidden, m.pop3_first_retr, m.blob, b.thread,"
	" b.envelope, b.bodystructure, b.body, b.parts, b.preview,"
	" b.sort_subject, b.sort_from, b.sort_to, b.sort_cc,"
	" b.sort_display_from, b.sort_display_to, b.sent_date,"
	" b.message_id, b.in_reply_to, b.refs, m.uidl"
	" FROM msg m JOIN blob b ON b.id = m.blob"
	" WHERE m.mailbox = ? AND m.uid BETWEEN ? AND ? ORDER BY m.uid";

/* The UIDs of ranges (NULL: all) whose modseq is above since, as
 * single-UID ranges in UID order: the (mailbox, modseq) index finds them
 * without reading the rest of the mailbox. */
static int changed_ranges(struct sq_conn *c, uint32_t mailbox_id,
			  uint64_t since, const struct store_uid_range *ranges,
			  size_t range_count, struct store_uid_range **out_r,
			  size_t *count_r)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT uid FROM msg INDEXED BY msg_modseq"
				      " WHERE mailbox = ? AND modseq > ?"
				      " ORDER BY uid");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)since);
	struct store_uid_range *out = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint32_t uid = (uint32_t)sqlite3_column_int64(st, 0);
		if (!sq_ranges_contain(ranges, range_count, uid))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			out = xrealloc(out, cap * sizeof(*out));
		}
		out[n].lo = out[n].hi = uid;
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(out);
		return -1;
	}
	*out_r = out;
	*count_r = n;
	return 0;
}

int sq_fetch_begin(struct store_user *user, const char *mailbox,
		   const struct store_uid_range *ranges, size_t range_count,
		   unsigned fields, uint64_t changedsince,
		   struct store_fetch **fetch_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	if (sq_read_begin(c, err) < 0) {
		sq_reader_put(u, c);
		return -1;
	}
	struct sq_mbox mb;
	int r = sq_mbox_get(c, mailbox, &mb);
	if (r <= 0 || mb.noselect) {
		if (r < 0)
			sq_db_error(c, err, "fetch");
		else
			store_set_error(err, STORE_ERR_NOTFOUND,
					"Mailbox doesn't exist: %s", mailbox);
		sq_read_end(c);
		sq_reader_put(u, c);
		return -1;
	}
	struct store_fetch *f = xcalloc(1, sizeof(*f));
	f->obj.vf = &store_sqlite_vfuncs;
	f->u = u;
	f->c = c;
	f->mailbox_id = mb.id;
	f->fields = fields;
	f->join = (fields & FETCH_BLOB_FIELDS) != 0;
	if (changedsince > 0) {
		if (changed_ranges(c, mb.id, changedsince, ranges, range_count,
				   &f->ranges, &f->range_count) < 0) {
			sq_db_error(c, err, "fetch");
			sq_read_end(c);
			sq_reader_put(u, c);
			free(f);
			return -1;
		}
	} else if (ranges == NULL) {
		f->ranges = xmalloc(sizeof(*f->ranges));
		f->ranges[0].lo = 1;
		f->ranges[0].hi = UINT32_MAX;
		f->range_count = 1;
	} else {
		f->ranges = xcalloc(range_count ? range_count : 1,
				    sizeof(*f->ranges));
		memcpy(f->ranges, ranges, range_count * sizeof(*ranges));
		f->range_count = range_count;
	}
	*fetch_r = f;
	return 0;
}

static void fetch_keywords(struct store_fetch *f, const char *kw)
{
	f->msg.keyword_count = store_keywords_split(kw, &f->kw);
	f->msg.keywords = f->kw.list;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

static void fetch_fill(struct store_fetch *f)
{
	sqlite3_stmt *st = f->st;
	struct store_msg *m = &f->msg;
	memset(m, 0, sizeof(*m));
	m->uid = (uint32_t)sqlite3_column_int64(st, 0);
	m->modseq = (uint64_t)sqlite3_column_int64(st, 1);
	m->flags = (unsigned)sqlite3_column_int(st, 2);
	fetch_keywords(f, col_text(st, 3));
	m->size = (uint64_t)sqlite3_column_int64(st, 4);
	m->internaldate = (time_t)sqlite3_column_int64(st, 5);
	m->savedate = (time_t)sqlite3_column_int64(st, 6);
	m->pop3_hidden = sqlite3_column_int(st, 7) != 0;
	m->pop3_first_retr = (time_t)sqlite3_column_int64(st, 8);
	sq_emailid(m->emailid, f->u->user->id, sqlite3_column_int64(st, 9));
	m->pop3_uidl = col_text(st, f->join ? 26 : 10);
	if (!f->join)
		return;
	sq_threadid(m->threadid, f->u->user->id, sqlite3_column_int64(st, 10));
	m->envelope = col_text(st, 11);
	m->bodystructure = col_text(st, 12);
	m->body = col_text(st, 13);
	m->parts = sqlite3_column_blob(st, 14);
	m->parts_len = (size_t)sqlite3_column_bytes(st, 14);
	m->preview = col_text(st, 15);
	m->sort_subject = col_text(st, 16);
	m->sort_from = col_text(st, 17);
	m->sort_to = col_text(st, 18);
	m->sort_cc = col_text(st, 19);
	m->sort_display_from = col_text(st, 20);
	m->sort_display_to = col_text(st, 21);
	m->sent_date = (time_t)sqlite3_column_int64(st, 22);
	if (m->sent_date == 0)
		m->sent_date = m->internaldate;
	m->message_id = col_text(st, 23);
	m->in_reply_to = col_text(st, 24);
	m->references = col_text(st, 25);
}

int sq_fetch_next(struct store_fetch *f, const struct store_msg **msg_r,
		  struct store_error *err)
{
	for (;;) {
		if (f->st == NULL) {
			if (f->next_range == f->range_count)
				return 0;
			const struct store_uid_range *r = &f->ranges[f->next_range++];
			f->st = sq_stmt(f->c, f->join ? fetch_join_sql : fetch_sql);
			if (f->st == NULL)
				return sq_db_error(f->c, err, "fetch");
			/* Overlapping ranges: never return a UID twice. */
			uint32_t lo = r->lo > f->last_uid ? r->lo : f->last_uid + 1;
			if (f->last_uid == UINT32_MAX || lo > r->hi) {
				f->st = NULL;
				continue;
			}
			sqlite3_bind_int64(f->st, 1, f->mailbox_id);
			sqlite3_bind_int64(f->st, 2, lo);
			sqlite3_bind_int64(f->st, 3, r->hi);
		}
		int rc = sqlite3_step(f->st);
		if (rc == SQLITE_ROW) {
			fetch_fill(f);
			f->last_uid = f->msg.uid;
			*msg_r = &f->msg;
			return 1;
		}
		sqlite3_reset(f->st);
		f->st = NULL;
		if (rc != SQLITE_DONE)
			return sq_db_error(f->c, err, "fetch");
	}
}

void sq_fetch_end(struct store_fetch **fetchp)
{
	struct store_fetch *f = *fetchp;
	*fetchp = NULL;
	if (f->st != NULL)
		sqlite3_reset(f->st);
	sq_read_end(f->c);
	sq_reader_put(f->u, f->c);
	free(f->ranges);
	store_keyword_list_free(&f->kw);
	free(f);
}

/* ---- flags -------------------------------------------------------- */

struct flags_arg {
	const char *mailbox;
	const struct store_uid_range *ranges;
	size_t range_count;
	const struct store_flag_change *change;
	uint32_t *changed, *modified;
	size_t changed_count, modified_count;
};

/* The common STORE (+FLAGS or -FLAGS of system flags, no keywords; any
 * UNCHANGEDSINCE, which IMAP's .SILENT always gives) as one UPDATE per
 * range instead of one per message: "STORE 1:* +FLAGS.SILENT (\Seen)"
 * on a big mailbox. */
static bool flags_simple(const struct store_flag_change *ch)
{
	return ch->keyword_count == 0 && ch->mode != STORE_FLAGS_REPLACE;
}

static int flags_job_simple(struct sq_user *u, struct sq_conn *c,
			    struct sq_job *job, const struct sq_mbox *mb)
{
	struct flags_arg *a = job->arg;
	const struct store_flag_change *ch = a->change;
	unsigned set = ch->mode == STORE_FLAGS_ADD ? ch->flags & 0x1f : 0;
	unsigned clear = ch->mode == STORE_FLAGS_REMOVE ? ch->flags & 0x1f : 0;
	struct store_uid_range all = {1, UINT32_MAX};
	const struct store_uid_range *ranges = a->ranges ? a->ranges : &all;
	size_t nranges = a->ranges ? a->range_count : 1, cap = 0, mcap = 0;
	int64_t unseen = 0, deleted = 0;
	uint64_t modseq = 0;
	/* RFC 7162 3.1.3: a message changed after UNCHANGEDSINCE is left
	 * alone and reported, whether or not the change would change it */
	sqlite3_int64 upto = ch->unchangedsince != 0 &&
			     ch->unchangedsince < INT64_MAX
		? (sqlite3_int64)ch->unchangedsince : INT64_MAX;
	/* first, before any row changes (ranges may overlap) */
	for (size_t r = 0; r < nranges && upto != INT64_MAX; r++) {
		sqlite3_stmt *st = sq_stmt(c, "SELECT uid FROM msg WHERE"
					      " mailbox = ? AND uid BETWEEN ?"
					      " AND ? AND modseq > ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, mb->id);
		sqlite3_bind_int64(st, 2, ranges[r].lo);
		sqlite3_bind_int64(st, 3, ranges[r].hi);
		sqlite3_bind_int64(st, 4, upto);
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (a->modified_count == mcap) {
				mcap = mcap ? mcap * 2 : 256;
				a->modified = xrealloc(a->modified,
						       mcap * sizeof(uint32_t));
			}
			a->modified[a->modified_count++] =
				(uint32_t)sqlite3_column_int64(st, 0);
		}
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
	}
	if (a->modified_count > 1) {
		qsort(a->modified, a->modified_count, sizeof(uint32_t),
		      u32_cmp);
		size_t k = 1;
		for (size_t i = 1; i < a->modified_count; i++)
			if (a->modified[i] != a->modified[k - 1])
				a->modified[k++] = a->modified[i];
		a->modified_count = k;
	}
	for (size_t r = 0; r < nranges; r++) {
		/* counter deltas of the rows about to change */
		sqlite3_stmt *st = sq_stmt(c, "SELECT count(*),"
			" coalesce(sum((flags & 1) = 0), 0) - coalesce(sum(((flags | ?1) & ~?2 & 1) = 0), 0),"
			" coalesce(sum(((flags | ?1) & ~?2 & 8) != 0), 0) - coalesce(sum((flags & 8) != 0), 0)"
			" FROM msg WHERE mailbox = ?3 AND uid BETWEEN ?4 AND ?5"
			" AND ((flags | ?1) & ~?2) != flags AND modseq <= ?6");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int(st, 1, (int)set);
		sqlite3_bind_int(st, 2, (int)clear);
		sqlite3_bind_int64(st, 3, mb->id);
		sqlite3_bind_int64(st, 4, ranges[r].lo);
		sqlite3_bind_int64(st, 5, ranges[r].hi);
		sqlite3_bind_int64(st, 6, upto);
		int64_t count = 0;
		if (sqlite3_step(st) == SQLITE_ROW) {
			count = sqlite3_column_int64(st, 0);
			unseen -= sqlite3_column_int64(st, 1);
			deleted += sqlite3_column_int64(st, 2);
		}
		sqlite3_reset(st);
		if (count == 0)
			continue;
		modseq = sq_job_modseq(u, job);
		st = sq_stmt(c, "UPDATE msg SET flags = (flags | ?1) & ~?2, modseq = ?3"
				" WHERE mailbox = ?4 AND uid BETWEEN ?5 AND ?6"
				" AND ((flags | ?1) & ~?2) != flags"
				" AND modseq <= ?7 RETURNING uid");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int(st, 1, (int)set);
		sqlite3_bind_int(st, 2, (int)clear);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)modseq);
		sqlite3_bind_int64(st, 4, mb->id);
		sqlite3_bind_int64(st, 5, ranges[r].lo);
		sqlite3_bind_int64(st, 6, ranges[r].hi);
		sqlite3_bind_int64(st, 7, upto);
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (a->changed_count == cap) {
				cap = cap ? cap * 2 : 256;
				a->changed = xrealloc(a->changed, cap * sizeof(uint32_t));
			}
			a->changed[a->changed_count++] =
				(uint32_t)sqlite3_column_int64(st, 0);
		}
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
	}
	if (a->changed_count == 0)
		return 0;
	qsort(a->changed, a->changed_count, sizeof(uint32_t), u32_cmp);
	if (sq_mbox_adjust(c, mb->id, 0, unseen, deleted, 0, modseq, 0) < 0)
		return sq_job_dberr(job, c);
	sq_job_change(job, mb->id, STORE_CHANGE_FLAGS);
	return 0;
}

static int flags_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct flags_arg *a = job->arg;
	const struct store_flag_change *ch = a->change;
	struct sq_mbox mb;
	if (sq_job_mbox(job, c, a->mailbox, &mb) < 0)
		return -1;
	if (flags_simple(ch)) {
		int r = flags_job_simple(u, c, job, &mb);
		if (r < 0) {
			free(a->changed);
			free(a->modified);
			a->changed = a->modified = NULL;
			a->changed_count = a->modified_count = 0;
		}
		if (ch->modseq_r != NULL)
			*ch->modseq_r = job->modseq;
		return r;
	}
	struct sq_msgrow *rows;
	size_t n;
	if (sq_rows_get(c, mb.id, a->ranges, a->range_count, &rows, &n) < 0)
		return sq_job_dberr(job, c);
	a->changed = xcalloc(n ? n : 1, sizeof(uint32_t));
	a->modified = xcalloc(n ? n : 1, sizeof(uint32_t));
	int64_t unseen = 0, deleted = 0;
	uint64_t modseq = 0;
	int ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct sq_msgrow *m = &rows[i];
		/* RFC 7162 3.1.3: UNCHANGEDSINCE */
		if (ch->unchangedsince != 0 && m->modseq > ch->unchangedsince) {
			a->modified[a->modified_count++] = m->uid;
			continue;
		}
		unsigned nf = ch->mode == STORE_FLAGS_ADD ? m->flags | ch->flags
			    : ch->mode == STORE_FLAGS_REMOVE ? m->flags & ~ch->flags
			    : ch->flags;
		nf &= 0x1f;
		char *nk = store_keywords_apply(m->keywords, ch);
		bool same_kw = (nk == NULL && m->keywords == NULL) ||
			       (nk != NULL && m->keywords != NULL &&
				strcmp(nk, m->keywords) == 0);
		if (nf == m->flags && same_kw) {
			free(nk);
			continue;
		}
		modseq = sq_job_modseq(u, job);
		sqlite3_stmt *st = sq_stmt(c, "UPDATE msg SET flags = ?, keywords = ?,"
					      " modseq = ? WHERE mailbox = ? AND uid = ?");
		if (st == NULL) {
			free(nk);
			ret = sq_job_dberr(job, c);
			break;
		}
		sqlite3_bind_int(st, 1, (int)nf);
		if (nk != NULL)
			sqlite3_bind_text(st, 2, nk, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)modseq);
		sqlite3_bind_int64(st, 4, mb.id);
		sqlite3_bind_int64(st, 5, m->uid);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE ||
		    (!same_kw && sq_keywords_register(c, mb.id, nk) < 0))
			ret = sq_job_dberr(job, c);
		free(nk);
		unseen += (int64_t)!(nf & STORE_FLAG_SEEN) -
			  (int64_t)!(m->flags & STORE_FLAG_SEEN);
		deleted += (int64_t)((nf & STORE_FLAG_DELETED) != 0) -
			   (int64_t)((m->flags & STORE_FLAG_DELETED) != 0);
		a->changed[a->changed_count++] = m->uid;
	}
	sq_rows_free(rows, n);
	if (ret == 0 && a->changed_count > 0) {
		if (sq_mbox_adjust(c, mb.id, 0, unseen, deleted, 0, modseq, 0) < 0)
			ret = sq_job_dberr(job, c);
		sq_job_change(job, mb.id, STORE_CHANGE_FLAGS);
	}
	if (ret < 0) {
		free(a->changed);
		free(a->modified);
		a->changed = a->modified = NULL;
		a->changed_count = a->modified_count = 0;
	}
	if (ch->modseq_r != NULL)
		*ch->modseq_r = job->modseq;
	return ret;
}

int sq_flags_update(struct store_user *user, const char *mailbox,
		    const struct store_uid_range *ranges, size_t range_count,
		    const struct store_flag_change *change,
		    uint32_t **changed_r, size_t *changed_count_r,
		    uint32_t **modified_r, size_t *modified_count_r,
		    struct store_error *err)
{
	struct flags_arg a = {mailbox, ranges, range_count, change,
			      NULL, NULL, 0, 0};
	int ret = sq_run(SQU(user), flags_job, &a, err);
	if (changed_r != NULL)
		*changed_r = a.changed;
	else
		free(a.changed);
	if (changed_count_r != NULL)
		*changed_count_r = a.changed_count;
	if (modified_r != NULL)
		*modified_r = a.modified;
	else
		free(a.modified);
	if (modified_count_r != NULL)
		*modified_count_r = a.modified_count;
	return ret;
}

/* ---- copy / move / expunge ---------------------------------------- */

struct copy_arg {
	const char *src, *dst;
	const struct store_uid_range *ranges;
	size_t range_count;
	bool move;
	struct store_account_limits limits;
	uint32_t uidvalidity;
	uint32_t *src_uids, *dst_uids;
	size_t count;
};

static int copy_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct copy_arg *a = job->arg;
	struct sq_mbox src, dst;
	if (sq_job_mbox(job, c, a->src, &src) < 0 ||
	    sq_job_mbox(job, c, a->dst, &dst) < 0)
		return -1;
	struct sq_msgrow *rows;
	size_t n;
	if (sq_rows_get(c, src.id, a->ranges, a->range_count, &rows, &n) < 0)
		return sq_job_dberr(job, c);
	uint64_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += rows[i].size;
	int ret = 0;
	if (!a->move && sq_over_quota(u, &a->limits, bytes, n))
		ret = sq_job_fail(job, STORE_ERR_QUOTA, "Quota exceeded");
	a->src_uids = xcalloc(n ? n : 1, sizeof(uint32_t));
	a->dst_uids = xcalloc(n ? n : 1, sizeof(uint32_t));
	if (ret == 0)
		ret = sq_copy_rows(u, c, job, dst.id, rows, n, time(NULL),
				   a->dst_uids);
	/* a moved message keeps every reader's own \Seen (the rows go
	 * with the source message) */
	if (ret == 0 && a->move && n > 0 &&
	    sq_seen_move(c, src.id, rows, n, dst.id, a->dst_uids,
			 sq_job_modseq(u, job)) < 0)
		ret = sq_job_dberr(job, c);
	if (ret == 0 && a->move)
		ret = sq_expunge_rows(u, c, job, src.id, rows, n, true);
	for (size_t i = 0; i < n; i++)
		a->src_uids[i] = rows[i].uid;
	sq_rows_free(rows, n);
	if (ret < 0) {
		free(a->src_uids);
		free(a->dst_uids);
		a->src_uids = a->dst_uids = NULL;
		return -1;
	}
	a->count = n;
	a->uidvalidity = dst.uidvalidity;
	return 0;
}

static int limits_get(struct store_user *user,
		      struct store_account_limits *limits,
		      struct store_error *err)
{
	memset(limits, 0, sizeof(*limits));
	const struct store_settings *set = &user->store->set;
	if (set->limits != NULL &&
	    set->limits(set->limits_ctx, user->id, limits) < 0)
		return store_set_error(err, STORE_ERR_TEMP,
				       "Cannot read the account's quota");
	/* messages kept for undelete count when the policy says so: what
	 * they take is not there for new mail */
	limits->kept_bytes = limits->kept_messages = 0;
	struct store_usage kept;
	if (limits->deleted_in_quota &&
	    (limits->quota_bytes != 0 || limits->quota_messages != 0)) {
		if (sq_deleted_usage(user, &kept, err) < 0)
			return -1;
		limits->kept_bytes = kept.bytes;
		limits->kept_messages = kept.messages;
	}
	return 0;
}

int sq_copy(struct store_user *user, const char *src,
	    const struct store_uid_range *ranges, size_t range_count,
	    const char *dst, bool move, uint32_t *dst_uidvalidity_r,
	    uint32_t **src_uids_r, uint32_t **dst_uids_r, size_t *count_r,
	    struct store_error *err)
{
	struct copy_arg a;
	memset(&a, 0, sizeof(a));
	a.src = src;
	a.dst = dst;
	a.ranges = ranges;
	a.range_count = range_count;
	a.move = move;
	if (!move && limits_get(user, &a.limits, err) < 0)
		return -1;
	int ret = sq_run(SQU(user), copy_job, &a, err);
	if (dst_uidvalidity_r != NULL)
		*dst_uidvalidity_r = a.uidvalidity;
	if (src_uids_r != NULL)
		*src_uids_r = a.src_uids;
	else
		free(a.src_uids);
	if (dst_uids_r != NULL)
		*dst_uids_r = a.dst_uids;
	else
		free(a.dst_uids);
	if (count_r != NULL)
		*count_r = a.count;
	return ret;
}

int sq_limits_get(struct store_user *user, struct store_account_limits *limits,
		  struct store_error *err)
{
	return limits_get(user, limits, err);
}

struct expunge_arg {
	const char *mailbox;
	const struct store_uid_range *ranges;
	size_t range_count;
	bool force;
	uint32_t *uids;
	size_t count;
};

static int expunge_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct expunge_arg *a = job->arg;
	struct sq_mbox mb;
	if (sq_job_mbox(job, c, a->mailbox, &mb) < 0)
		return -1;
	struct sq_msgrow *rows;
	size_t n;
	if (sq_rows_get(c, mb.id, a->ranges, a->range_count, &rows, &n) < 0)
		return sq_job_dberr(job, c);
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		if (a->force || (rows[i].flags & STORE_FLAG_DELETED)) {
			struct sq_msgrow tmp = rows[w];
			rows[w++] = rows[i];
			rows[i] = tmp;
		}
	}
	int ret = sq_deleted_keep(u, c, job, mb.id, rows, w);
	if (ret == 0)
		ret = sq_expunge_rows(u, c, job, mb.id, rows, w, true);
	if (ret == 0) {
		a->uids = xcalloc(w ? w : 1, sizeof(uint32_t));
		for (size_t i = 0; i < w; i++)
			a->uids[i] = rows[i].uid;
		a->count = w;
	}
	sq_rows_free(rows, n);
	return ret;
}

int sq_expunge(struct store_user *user, const char *mailbox,
	       const struct store_uid_range *ranges, size_t range_count,
	       bool force, uint32_t **uids_r, size_t *count_r,
	       struct store_error *err)
{
	struct expunge_arg a = {mailbox, ranges, range_count, force, NULL, 0};
	sq_deleted_policy(user);
	int ret = sq_run(SQU(user), expunge_job, &a, err);
	if (uids_r != NULL)
		*uids_r = a.uids;
	else
		free(a.uids);
	if (count_r != NULL)
		*count_r = a.count;
	return ret;
}
