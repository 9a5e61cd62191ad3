/*
 * SEARCH BODY / TEXT without reading blobs. The decoded text of every
 * message is stored case-folded (store_text_fold) in the text table, and
 * trigram indexes (FTS5, headers and body) cover it up to
 * account.fts_upto (sq-index.c fills them in batches). A needle of three
 * or more characters is folded the same way and its trigrams, ANDed, give
 * the candidates among the indexed rows; the rows above fts_upto are all
 * candidates. Each candidate is verified with a plain substring test on
 * its stored folded text, so the answer is exactly the messages whose
 * text contains the needle (IMAP SEARCH, RFC 9051 6.4.4). Shorter needles
 * have no trigram and scan the stored text of the mailbox.
 */
#include "sq-private.h"

#include <stdlib.h>
#include <string.h>

/* Byte offsets of the first code points of s (at most max), with
 * off[n] the end of the last one: off needs max + 1 entries. */
static size_t cp_offsets(const char *s, size_t len, size_t *off, size_t max)
{
	size_t n = 0, i;
	for (i = 0; i < len; i++) {
		if (((unsigned char)s[i] & 0xc0) != 0x80) {
			if (n == max)
				break;
			off[n++] = i;
		}
	}
	off[n] = i;
	return n;
}

/* An FTS5 query ANDing trigrams of the needle ("..." with quotes
 * doubled). A long needle needs only some of them: any subset gives a
 * superset of the answer, and the verification makes it exact. */
static char *trigram_query(const char *s, size_t cps,
			   const size_t *off)
{
	struct buf q;
	buf_init(&q, 0);
	size_t trigrams = cps - 2, want = trigrams < 12 ? trigrams : 12;
	for (size_t k = 0; k < want; k++) {
		size_t i = want == 1 ? 0 : k * (trigrams - 1) / (want - 1);
		size_t a = off[i], b = off[i + 3];
		if (q.len > 0)
			buf_append_str(&q, " AND ");
		buf_append_char(&q, '"');
		for (size_t j = a; j < b; j++) {
			if (s[j] == '"')
				buf_append_char(&q, '"');
			buf_append_char(&q, s[j]);
		}
		buf_append_char(&q, '"');
	}
	return buf_steal(&q, NULL);
}

char *sq_needle_prepare(const char *needle, struct buf *folded)
{
	buf_init(folded, 0);
	store_text_fold(folded, needle, strlen(needle));
	buf_append(folded, "", 0);
	/* the indexed text has C0 controls (but TAB, LF) and DEL as spaces
	 * (mail-text.c clean_controls): so must the needle */
	for (size_t i = 0; i < folded->len; i++) {
		unsigned char ch = (unsigned char)folded->data[i];
		if ((ch < 0x20 && ch != '\t' && ch != '\n') || ch == 0x7f)
			folded->data[i] = ' ';
	}
	size_t off[65];
	size_t cps = cp_offsets(folded->data, folded->len, off, 64);
	return cps >= 3 ? trigram_query(folded->data, cps, off) : NULL;
}

struct hits {
	uint32_t *uids;
	size_t n, cap;
};

static void hit(struct hits *h, uint32_t uid)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 64;
		h->uids = xrealloc(h->uids, h->cap * sizeof(uint32_t));
	}
	h->uids[h->n++] = uid;
}

/* CROSS JOIN keeps the FTS table as the outer loop: otherwise the planner
 * may walk the mailbox and run one FTS query per message. */
static const char *const sql_match[2] = {
	"SELECT m.uid, t.hdr FROM text_hdr CROSS JOIN msg m"
	" ON m.blob = text_hdr.rowid CROSS JOIN text t ON t.id = text_hdr.rowid"
	" WHERE text_hdr MATCH ? AND m.mailbox = ?",
	"SELECT m.uid, t.body FROM text_body CROSS JOIN msg m"
	" ON m.blob = text_body.rowid CROSS JOIN text t ON t.id = text_body.rowid"
	" WHERE text_body MATCH ? AND m.mailbox = ?",
};
/* The rows the indexes do not reach yet (id > fts_upto), or all rows. */
static const char *const sql_scan[2] = {
	"SELECT m.uid, t.hdr FROM text t CROSS JOIN msg m ON m.blob = t.id"
	" WHERE t.id > ? AND m.mailbox = ?",
	"SELECT m.uid, t.body FROM text t CROSS JOIN msg m ON m.blob = t.id"
	" WHERE t.id > ? AND m.mailbox = ?",
};
static const char *const sql_scan_all[2] = {
	"SELECT m.uid, t.hdr FROM msg m JOIN text t ON t.id = m.blob"
	" WHERE m.mailbox = ?",
	"SELECT m.uid, t.body FROM msg m JOIN text t ON t.id = m.blob"
	" WHERE m.mailbox = ?",
};

/* Runs one candidate query and adds to h the UIDs whose text contains
 * the needle. */
static int verify(sqlite3_stmt *st, const char *needle, size_t nlen,
		  const struct store_uid_range *ranges, size_t range_count,
		  struct hits *h)
{
	int rc;
	struct buf tmp;
	buf_init(&tmp, 0);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint32_t uid = (uint32_t)sqlite3_column_int64(st, 0);
		if (!sq_ranges_contain(ranges, range_count, uid))
			continue;
		if (nlen == 0) {
			hit(h, uid);
			continue;
		}
		size_t tlen;
		const char *t = sq_text_column(st, 1, &tmp, &tlen);
		if (t != NULL && memmem(t, tlen, needle, nlen))
			hit(h, uid);
	}
	buf_free(&tmp);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Adds to h the UIDs whose text in table (0 headers, 1 body) contains
 * needle; query is the trigram filter, or NULL to scan everything. */
static int search_table(struct sq_conn *c, int table, uint32_t mailbox_id,
			int64_t fts_upto, const char *query,
			const char *needle, size_t nlen,
			const struct store_uid_range *ranges,
			size_t range_count, struct hits *h)
{
	sqlite3_stmt *st;
	if (query == NULL) {
		st = sq_stmt(c, sql_scan_all[table]);
		if (st == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, mailbox_id);
		return verify(st, needle, nlen, ranges, range_count, h);
	}
	st = sq_stmt(c, sql_match[table]);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, query, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, mailbox_id);
	if (verify(st, needle, nlen, ranges, range_count, h) < 0)
		return -1;
	st = sq_stmt(c, sql_scan[table]);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, fts_upto);
	sqlite3_bind_int64(st, 2, mailbox_id);
	return verify(st, needle, nlen, ranges, range_count, h);
}

static int64_t fts_upto_get(struct sq_conn *c)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT fts_upto FROM account");
	int64_t v = -1;
	if (st != NULL && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	if (st != NULL)
		sqlite3_reset(st);
	return v;
}

int sq_search_text(struct store_user *user, const char *mailbox,
		   enum store_text_where where, const char *needle,
		   const struct store_uid_range *ranges, size_t range_count,
		   uint32_t **uids_r, size_t *count_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct buf folded;
	char *query = sq_needle_prepare(needle, &folded);

	struct sq_conn *c = sq_reader_get(u, err);
	int ret = -1;
	struct hits h = {0};
	if (c == NULL)
		goto out;
	if (sq_read_begin(c, err) < 0) {
		sq_reader_put(u, c);
		goto out;
	}
	struct sq_mbox mb;
	int64_t upto;
	int r = sq_mbox_get(c, mailbox, &mb);
	if (r <= 0 || mb.noselect) {
		if (r < 0)
			sq_db_error(c, err, "search");
		else
			store_set_error(err, STORE_ERR_NOTFOUND,
					"Mailbox doesn't exist: %s", mailbox);
	} else if ((upto = fts_upto_get(c)) < 0 ||
		   (where != STORE_TEXT_HEADER &&
		    search_table(c, 1, mb.id, upto, query, folded.data,
				 folded.len, ranges, range_count, &h) < 0) ||
		   (where != STORE_TEXT_BODY &&
		    search_table(c, 0, mb.id, upto, query, folded.data,
				 folded.len, ranges, range_count, &h) < 0)) {
		sq_db_error(c, err, "search");
	} else {
		ret = 0;
	}
	sq_read_end(c);
	sq_reader_put(u, c);
out:
	free(query);
	buf_free(&folded);
	if (ret < 0) {
		free(h.uids);
		return -1;
	}
	if (h.n > 1)
		qsort(h.uids, h.n, sizeof(uint32_t), u32_cmp);
	size_t w = 0;
	for (size_t i = 0; i < h.n; i++) {
		if (w == 0 || h.uids[w - 1] != h.uids[i])
			h.uids[w++] = h.uids[i];
	}
	*uids_r = h.uids;
	*count_r = w;
	return 0;
}
