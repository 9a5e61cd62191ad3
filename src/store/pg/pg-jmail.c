/*
 * JMAP mail in the PostgreSQL backend (store.h "JMAP"; sqlite/sq-jmap.c
 * is the reference): Mailbox counts and updates, Email reads, query scans,
 * threads, the membership log, account-wide text search, and the reads of
 * a viewer's handle (store-jshare.c). The tables and the plpgsql triggers
 * that keep them are in pg-jmail-schema.h (schema step 8); states and
 * /changes in pg-jmap.c. Every read runs in one REPEATABLE READ snapshot.
 */
#include "pg-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pg-jmail-schema.h"
#include "pg-rows.h"

const char pg_jmail_schema_sql[] = PG_JMAIL_TABLES PG_JMAIL_BACKFILL
	PG_JMAIL_FUNCTIONS PG_JMAIL_TRIGGERS;

/* Step 11 -> 12: a blob row is inserted with its thread (pg-message.c
 * pg_blob_row_add), no longer given it by an UPDATE after the insert (a
 * second row version, every index of the row and both trigram indexes
 * written again): the insert's trigger also makes the thread's jthread
 * row, as the update's did. */
const char pg_jmail_thread_sql[] =
	"CREATE OR REPLACE FUNCTION loft_jblob() RETURNS trigger"
	" LANGUAGE plpgsql AS $f$"
	" DECLARE nx bigint; BEGIN"
	" IF TG_OP = 'INSERT' THEN"
	"  nx := loft_jnext(NEW.user_id);"
	"  INSERT INTO jemail (user_id, id, created, modseq, attach)"
	"  VALUES (NEW.user_id, NEW.id, nx, nx, false)"
	"  ON CONFLICT (user_id, id) DO UPDATE SET created = nx,"
	"  modseq = nx, visible = 0, flags = 0, keywords = NULL,"
	"  received = 0, attach = false;"
	"  IF NEW.thread <> 0 THEN"
	"   INSERT INTO jthread VALUES (NEW.user_id, NEW.thread, nx, nx)"
	"   ON CONFLICT DO NOTHING;"
	"   DELETE FROM jgone WHERE user_id = NEW.user_id AND kind = 2 AND"
	"   id = NEW.thread;"
	"  END IF;"
	" ELSIF TG_OP = 'UPDATE' THEN"
	"  nx := loft_jnext(NEW.user_id);"
	"  INSERT INTO jthread VALUES (NEW.user_id, NEW.thread, nx, nx)"
	"  ON CONFLICT DO NOTHING;"
	"  DELETE FROM jgone WHERE user_id = NEW.user_id AND kind = 2 AND"
	"  id = NEW.thread;"
	" ELSE"
	"  nx := loft_jnext(OLD.user_id);"
	"  INSERT INTO jgone (user_id, kind, id, oid, created, modseq, at)"
	"  SELECT OLD.user_id, 1, id, OLD.thread::text, created, nx,"
	"  loft_jnow() FROM jemail WHERE user_id = OLD.user_id AND"
	"  id = OLD.id ON CONFLICT (user_id, kind, id) DO UPDATE SET"
	"  oid = excluded.oid, created = excluded.created,"
	"  modseq = excluded.modseq, at = excluded.at;"
	"  DELETE FROM jemail WHERE user_id = OLD.user_id AND id = OLD.id;"
	"  IF NOT EXISTS (SELECT 1 FROM blob WHERE user_id = OLD.user_id"
	"  AND thread = OLD.thread) THEN"
	"   INSERT INTO jgone (user_id, kind, id, oid, created, modseq, at)"
	"   SELECT OLD.user_id, 2, id, NULL, created, nx, loft_jnow()"
	"   FROM jthread WHERE user_id = OLD.user_id AND id = OLD.thread"
	"   ON CONFLICT (user_id, kind, id) DO UPDATE SET"
	"   created = excluded.created, modseq = excluded.modseq,"
	"   at = excluded.at;"
	"   DELETE FROM jthread WHERE user_id = OLD.user_id AND"
	"   id = OLD.thread;"
	"  END IF;"
	" END IF; RETURN NULL; END $f$;";

/* A new account's default mailboxes are not changes (the triggers of its
 * subscriptions stamped them one above its counter). */
int pg_jmail_account_created(struct pg_tx *tx, struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	return pg_run(tx->c, "UPDATE jmailbox SET modseq = created,"
		      " meta = created WHERE user_id = $1", &p, err);
}

/* The delivery of blob: hasAttachment from its BODYSTRUCTURE (the
 * trigger made the row with false). */
int pg_jmail_blob_added(struct pg_tx *tx, int64_t blob,
			const char *bodystructure, struct store_error *err)
{
	if (bodystructure == NULL ||
	    !store_bodystructure_has_attachment(bodystructure,
						strlen(bodystructure)))
		return 0;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, blob);
	return pg_run(tx->c, "UPDATE jemail SET attach = true"
		      " WHERE user_id = $1 AND id = $2", &p, err);
}

/* jemail.attach, or (rows from the upgrade: NULL) the BODYSTRUCTURE's
 * answer; col is attach, col + 1 the BODYSTRUCTURE when it is NULL. */
static bool attach_of(const PGresult *r, int row, int col)
{
	if (!PQgetisnull(r, row, col))
		return pg_bool(r, row, col);
	size_t len;
	const char *bs = pg_val(r, row, col + 1, &len);
	return bs != NULL && store_bodystructure_has_attachment(bs, len);
}

/* ids as a bigint[] literal in out (initialised here). */
static void id_array(struct buf *out, const int64_t *ids, size_t n)
{
	buf_init(out, 0);
	buf_append_char(out, '{');
	for (size_t i = 0; i < n; i++)
		buf_printf(out, "%s%lld", i ? "," : "", (long long)ids[i]);
	buf_append_char(out, '}');
}

static int64_t *ids_of(const PGresult *r, size_t *n_r)
{
	size_t n = (size_t)PQntuples(r);
	int64_t *ids = xcalloc(n ? n : 1, sizeof(int64_t));
	for (size_t i = 0; i < n; i++)
		ids[i] = pg_int(r, (int)i, 0);
	*n_r = n;
	return ids;
}

/* The first column of sql's rows, in a read snapshot. */
static int read_ids(struct store_user *user, const char *sql,
		    const struct pg_params *p, int64_t **ids_r,
		    size_t *count_r, struct store_error *err)
{
	*ids_r = NULL;
	*count_r = 0;
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	PGresult *r = pg_exec(c, sql, p, err);
	pg_rend(user, c);
	if (r == NULL)
		return -1;
	*ids_r = ids_of(r, count_r);
	PQclear(r);
	return 0;
}

/* ---- mailboxes ---------------------------------------------------------- */

int pg_jmap_mailboxes(struct store_user *user,
		      struct store_jmap_mailbox **list_r, size_t *count_r,
		      struct store_error *err)
{
	*list_r = NULL;
	*count_r = 0;
	/* the list and its counts in one snapshot */
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct store_mailbox_info *infos;
	size_t n;
	if (pg_mailbox_list_in(user, c, false, &infos, &n, err) < 0) {
		pg_rend(user, c);
		return -1;
	}
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	PGresult *r = pg_exec(c, "SELECT id, emails, unread, threads,"
			      " unread_threads, sort_order FROM jmailbox"
			      " WHERE user_id = $1", &p, err);
	pg_rend(user, c);
	struct store_jmap_mailbox *list = xcalloc(n ? n : 1, sizeof(*list));
	for (size_t i = 0; i < n; i++)
		list[i].info = infos[i];
	free(infos);
	if (r == NULL) {
		store_jmap_mailboxes_free(list, n);
		return -1;
	}
	for (int row = 0; row < PQntuples(r); row++) {
		uint32_t id = (uint32_t)pg_int(r, row, 0);
		for (size_t i = 0; i < n; i++) {
			if (list[i].info.id != id)
				continue;
			/* the triggers never go below zero; be safe anyway */
			int64_t v[5];
			for (int k = 0; k < 5; k++) {
				v[k] = pg_int(r, row, k + 1);
				if (v[k] < 0)
					v[k] = 0;
			}
			list[i].emails = (uint32_t)v[0];
			list[i].unread_emails = (uint32_t)v[1];
			list[i].threads = (uint32_t)v[2];
			list[i].unread_threads = (uint32_t)v[3];
			list[i].sort_order = (uint32_t)v[4];
			break;
		}
	}
	PQclear(r);
	*list_r = list;
	*count_r = n;
	return 0;
}

static int mailbox_update_tx(struct pg_tx *tx, uint32_t id,
			     const uint32_t *sort_order,
			     const unsigned *special_use,
			     struct store_error *err)
{
	struct pg_mbox mb;
	int found = pg_mbox_get(tx->user, tx->c, NULL, id, &mb, err);
	if (found < 0)
		return -1;
	if (found == 0)
		return store_set_error(err, STORE_ERR_NOTFOUND,
				       "Mailbox doesn't exist");
	uint64_t modseq = pg_tx_modseq(tx);
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, id);
	if (special_use != NULL && *special_use != mb.special_use) {
		pg_p_int(&p, *special_use);
		if (*special_use != 0) {
			PGresult *r = pg_exec(tx->c, "SELECT 1 FROM mailbox"
					      " WHERE user_id = $1 AND id <> $2"
					      " AND special_use & $3 <> 0",
					      &p, err);
			if (r == NULL)
				return -1;
			int taken = PQntuples(r);
			PQclear(r);
			if (taken > 0)
				return store_set_error(err, STORE_ERR_EXISTS,
						       "Another mailbox has"
						       " this role");
		}
		if (pg_run(tx->c, "UPDATE mailbox SET special_use = $3"
			   " WHERE user_id = $1 AND id = $2", &p, err) < 0)
			return -1;
		pg_p_init(&p);
		pg_p_int(&p, tx->user->id);
		pg_p_int(&p, id);
	}
	pg_p_int(&p, (int64_t)modseq);
	if (sort_order != NULL)
		pg_p_int(&p, *sort_order);
	else
		pg_p_str(&p, NULL);
	if (pg_run(tx->c, "UPDATE jmailbox SET modseq = $3, meta = $3,"
		   " sort_order = coalesce($4::bigint, sort_order)"
		   " WHERE user_id = $1 AND id = $2", &p, err) < 0)
		return -1;
	pg_tx_change(tx, 0, STORE_CHANGE_MAILBOXES);
	return 0;
}

int pg_jmap_mailbox_update(struct store_user *user, uint32_t mailbox_id,
			   const uint32_t *sort_order,
			   const unsigned *special_use, struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	return pg_wend(&tx, mailbox_update_tx(&tx, mailbox_id, sort_order,
					      special_use, err), err);
}

/* ---- emails ------------------------------------------------------------- */

int pg_email_get(struct store_user *user, const int64_t *ids, size_t count,
		 struct store_email *emails, struct store_error *err)
{
	if (count == 0)
		return 0;
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct buf arr;
	id_array(&arr, ids, count);
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_str(&p, arr.data);
	PGresult *r = pg_exec(c, "SELECT e.id, e.modseq, e.flags, e.keywords,"
			      " e.received, e.attach, CASE WHEN e.attach IS NULL"
			      " THEN b.bodystructure END, b.thread,"
			      " b.body_size + length(b.prefix), b.preview,"
			      " b.sent_date FROM jemail e JOIN blob b ON"
			      " b.user_id = e.user_id AND b.id = e.id"
			      " WHERE e.user_id = $1 AND e.id = ANY ($2::bigint[])"
			      " AND e.visible > 0", &p, err);
	PGresult *m = r == NULL ? NULL
		: pg_exec(c, "SELECT DISTINCT blob, mailbox FROM msg"
			  " WHERE user_id = $1 AND blob = ANY ($2::bigint[])"
			  " AND (flags & 8) = 0 ORDER BY blob, mailbox", &p, err);
	pg_rend(user, c);
	buf_free(&arr);
	if (m == NULL) {
		PQclear(r);
		return -1;
	}
	for (int row = 0; row < PQntuples(r); row++) {
		int64_t id = pg_int(r, row, 0);
		for (size_t i = 0; i < count; i++) {
			struct store_email *e = &emails[i];
			if (ids[i] != id || e->id != 0)
				continue;
			e->id = id;
			e->modseq.modseq = (uint64_t)pg_int(r, row, 1);
			e->flags = (unsigned)pg_int(r, row, 2);
			store_email_keywords_split(e, pg_val(r, row, 3, NULL));
			e->received = (time_t)pg_int(r, row, 4);
			e->has_attachment = attach_of(r, row, 5);
			e->thread = pg_int(r, row, 7);
			e->size = (uint64_t)pg_int(r, row, 8);
			char *preview = pg_strdup(r, row, 9);
			e->preview = preview != NULL ? preview : xstrdup("");
			e->sent_date = (time_t)pg_int(r, row, 10);
			for (int k = 0; k < PQntuples(m); k++) {
				if (pg_int(m, k, 0) != id)
					continue;
				e->mailboxes = xrealloc(e->mailboxes,
							(e->mailbox_count + 1) *
							sizeof(uint32_t));
				e->mailboxes[e->mailbox_count++] =
					(uint32_t)pg_int(m, k, 1);
			}
		}
	}
	PQclear(r);
	PQclear(m);
	return 0;
}

int pg_email_open(struct store_user *user, int64_t id,
		  struct store_blob *blob_r, struct store_error *err)
{
	int ret = pg_blob_open_email(user, id, blob_r, err);
	if (ret < 0 && err != NULL && err->kind == STORE_ERR_NOTFOUND)
		store_set_error(err, STORE_ERR_NOTFOUND, "No such Email");
	return ret;
}

/* The scans of a query (sort and filter in store-jmap.c): a mailbox's
 * visible copies by internal date, or every visible Email by its
 * earliest one; [sort][desc]. Read in pages ($5 rows after the key
 * ($3, $4) of the last row read), all in one snapshot: a query that
 * stops after its first 50 results reads one page, not the mailbox. */
#define SCAN_SORT_COLS " b.sort_subject, b.sort_display_from, b.sort_display_to"
#define SCAN_NO_SORT " NULL::bytea, NULL::bytea, NULL::bytea"
#define SCAN_MAILBOX(cols, after, order)                                     \
	"SELECT m.blob, b.thread, m.internaldate, b.sent_date, m.size,"      \
	" e.flags, e.keywords, e.attach, CASE WHEN e.attach IS NULL THEN"    \
	" b.bodystructure END," cols ", m.uid FROM msg m JOIN jemail e ON"   \
	" e.user_id = m.user_id AND e.id = m.blob JOIN blob b ON"            \
	" b.user_id = m.user_id AND b.id = m.blob WHERE m.user_id = $1"      \
	" AND m.mailbox = $2 AND (m.flags & 8) = 0 AND (m.internaldate,"     \
	" m.uid) " after " ($3, $4) ORDER BY " order " LIMIT $5"
#define SCAN_ALL(cols, after, order)                                         \
	"SELECT e.id, b.thread, e.received, b.sent_date,"                    \
	" b.body_size + length(b.prefix), e.flags, e.keywords, e.attach,"    \
	" CASE WHEN e.attach IS NULL THEN b.bodystructure END," cols         \
	", e.id FROM jemail e JOIN blob b ON b.user_id = e.user_id AND"      \
	" b.id = e.id WHERE e.user_id = $1 AND e.visible > 0"                \
	" AND $2::integer = 0 AND (e.received, e.id) " after " ($3, $4)"     \
	" ORDER BY " order " LIMIT $5"

static const char *const scan_mailbox_sql[2][2] = {
	{SCAN_MAILBOX(SCAN_NO_SORT, ">", "m.internaldate, m.uid"),
	 SCAN_MAILBOX(SCAN_NO_SORT, "<", "m.internaldate DESC, m.uid DESC")},
	{SCAN_MAILBOX(SCAN_SORT_COLS, ">", "m.internaldate, m.uid"),
	 SCAN_MAILBOX(SCAN_SORT_COLS, "<", "m.internaldate DESC, m.uid DESC")},
};
static const char *const scan_all_sql[2][2] = {
	{SCAN_ALL(SCAN_NO_SORT, ">", "e.received, e.id"),
	 SCAN_ALL(SCAN_NO_SORT, "<", "e.received DESC, e.id DESC")},
	{SCAN_ALL(SCAN_SORT_COLS, ">", "e.received, e.id"),
	 SCAN_ALL(SCAN_SORT_COLS, "<", "e.received DESC, e.id DESC")},
};

/* The first page holds a usual window (position 0, limit 50, with
 * collapsed threads and filtered rows); each next one 4 times more. */
#define SCAN_PAGE_FIRST 256
#define SCAN_PAGE_MAX 16384

int pg_email_scan(struct store_user *user, uint32_t mailbox_id,
		  bool newest_first, unsigned fields, store_email_row_fn *cb,
		  void *ctx, struct store_error *err)
{
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	int sort = (fields & STORE_EMAIL_ROW_SORT) != 0, desc = newest_first;
	const char *sql = mailbox_id != 0 ? scan_mailbox_sql[sort][desc]
					  : scan_all_sql[sort][desc];
	/* before the first row of the order */
	int64_t key_date = desc ? INT64_MAX : INT64_MIN;
	int64_t key_id = desc ? INT64_MAX : INT64_MIN;
	int64_t page = SCAN_PAGE_FIRST;
	int ret = 0;
	for (bool more = true; more;) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, mailbox_id);
		pg_p_int(&p, key_date);
		pg_p_int(&p, key_id);
		pg_p_int(&p, page);
		PGresult *r = pg_exec(c, sql, &p, err);
		if (r == NULL) {
			ret = -1;
			break;
		}
		int n = PQntuples(r);
		more = n == page;
		struct store_email_row row;
		for (int i = 0; i < n; i++) {
			row.id = pg_int(r, i, 0);
			row.thread = pg_int(r, i, 1);
			row.received = (time_t)pg_int(r, i, 2);
			row.sent = (time_t)pg_int(r, i, 3);
			if (row.sent == 0)
				row.sent = row.received;
			row.size = (uint64_t)pg_int(r, i, 4);
			row.flags = (unsigned)pg_int(r, i, 5);
			/* libpq ends every value with a NUL, binary ones too */
			row.keywords = pg_val(r, i, 6, NULL);
			row.has_attachment = attach_of(r, i, 7);
			row.subject = pg_val(r, i, 9, NULL);
			row.from = pg_val(r, i, 10, NULL);
			row.to = pg_val(r, i, 11, NULL);
			if (cb(ctx, &row) != 0) {
				more = false;
				break;
			}
		}
		if (more) {
			key_date = pg_int(r, n - 1, 2);
			key_id = pg_int(r, n - 1, 12);
			if (page < SCAN_PAGE_MAX)
				page *= 4;
		}
		PQclear(r);
	}
	pg_rend(user, c);
	return ret;
}

int pg_email_rank(struct store_user *user, uint32_t mailbox_id, int64_t id,
		  uint64_t *rank_r, struct store_error *err)
{
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, mailbox_id);
	pg_p_int(&p, id);
	/* copies later than the Email's latest visible copy there */
	PGresult *r = pg_exec(c, "WITH me AS (SELECT internaldate, uid FROM msg"
			      " WHERE user_id = $1 AND mailbox = $2 AND blob = $3"
			      " AND (flags & 8) = 0 ORDER BY internaldate DESC,"
			      " uid DESC LIMIT 1) SELECT (SELECT count(*) FROM"
			      " msg m, me WHERE m.user_id = $1 AND m.mailbox = $2"
			      " AND (m.internaldate, m.uid) > (me.internaldate,"
			      " me.uid) AND (m.flags & 8) = 0) FROM me",
			      &p, err);
	pg_rend(user, c);
	if (r == NULL)
		return -1;
	int ret = 0;
	if (PQntuples(r) == 0)
		ret = store_set_error(err, STORE_ERR_NOTFOUND,
				      "Not in that mailbox");
	else
		*rank_r = (uint64_t)pg_int(r, 0, 0);
	PQclear(r);
	return ret;
}

int pg_email_moved_since(struct store_user *user, uint32_t mailbox_id,
			 const struct store_jmap_cursor *since, int64_t **ids_r,
			 size_t *count_r, bool *too_old_r,
			 struct store_error *err)
{
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, mailbox_id);
	/* a cursor inside a modseq: that modseq may hold more */
	pg_p_int(&p, (int64_t)since->modseq - (since->id != 0));
	pg_p_int(&p, (int64_t)since->modseq);
	PGresult *r = pg_exec(c, "SELECT DISTINCT j.blob FROM jmember j, account a"
			      " WHERE a.user_id = $1 AND a.jmap_horizon <= $4"
			      " AND j.user_id = $1 AND j.mailbox = $2"
			      " AND j.modseq > $3 UNION ALL SELECT -1 FROM account"
			      " WHERE user_id = $1 AND jmap_horizon > $4"
			      " ORDER BY 1", &p, err);
	pg_rend(user, c);
	if (r == NULL)
		return -1;
	if (PQntuples(r) > 0 && pg_int(r, 0, 0) == -1) {
		*too_old_r = true;
		*ids_r = NULL;
		*count_r = 0;
	} else {
		*ids_r = ids_of(r, count_r);
	}
	PQclear(r);
	return 0;
}

int pg_thread_emails(struct store_user *user, int64_t thread, int64_t **ids_r,
		     size_t *count_r, struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, thread);
	return read_ids(user, "SELECT e.id FROM blob b JOIN jemail e ON"
			" e.user_id = b.user_id AND e.id = b.id"
			" WHERE b.user_id = $1 AND b.thread = $2"
			" AND e.visible > 0 ORDER BY e.received, e.id",
			&p, ids_r, count_r, err);
}

/* ---- text search over the account --------------------------------------- */

int pg_email_search(struct store_user *user, enum store_text_where where,
		    const char *field, const char *needle, int64_t **ids_r,
		    size_t *count_r, struct store_error *err)
{
	struct buf folded, like, ffield;
	pg_needle_prepare(needle, &folded, &like);
	buf_init(&ffield, 0);
	if (field != NULL) {
		store_text_fold(&ffield, field, strlen(field));
		buf_append(&ffield, "", 0);
	}
	PGresult *r = NULL;
	struct pg_conn *c = pg_rbegin(user, err);
	/* planned for this needle (see pg_search_text) */
	if (c != NULL && pg_cmd(c, "SET LOCAL plan_cache_mode ="
				   " force_custom_plan", err) == 0) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_bin(&p, folded.data, folded.len);
		pg_p_str(&p, like.data);
		/* candidates from the trigram indexes, then the exact test on
		 * the stored folded text; a named field is checked here */
#define ESEARCH_FROM "SELECT b.id, b.header_text FROM blob b JOIN jemail e"  \
	" ON e.user_id = b.user_id AND e.id = b.id WHERE b.user_id = $1"     \
	" AND e.visible > 0 AND "
#define ESEARCH_BODY "(loft_text(b.body_text) LIKE $3 AND"                   \
	" position($2::bytea in b.body_text) > 0)"
#define ESEARCH_HEADER "(loft_text(b.header_text) LIKE $3 AND"               \
	" position($2::bytea in b.header_text) > 0)"
		if (field != NULL)
			r = pg_exec(c, ESEARCH_FROM ESEARCH_HEADER
				    " ORDER BY b.id", &p, err);
		else if (where == STORE_TEXT_ALL)
			r = pg_exec(c, ESEARCH_FROM "(" ESEARCH_BODY " OR "
				    ESEARCH_HEADER ") ORDER BY b.id", &p, err);
		else if (where == STORE_TEXT_HEADER)
			r = pg_exec(c, ESEARCH_FROM ESEARCH_HEADER
				    " ORDER BY b.id", &p, err);
		else
			r = pg_exec(c, ESEARCH_FROM ESEARCH_BODY
				    " ORDER BY b.id", &p, err);
#undef ESEARCH_FROM
#undef ESEARCH_BODY
#undef ESEARCH_HEADER
	}
	pg_rend(user, c);
	int ret = -1;
	if (r != NULL) {
		size_t n = (size_t)PQntuples(r), w = 0;
		int64_t *ids = xcalloc(n ? n : 1, sizeof(int64_t));
		for (size_t i = 0; i < n; i++) {
			size_t tlen;
			const char *t = pg_val(r, (int)i, 1, &tlen);
			if (field != NULL &&
			    (t == NULL || !store_header_has(t, tlen, ffield.data,
							    folded.data,
							    folded.len)))
				continue;
			ids[w++] = pg_int(r, (int)i, 0);
		}
		*ids_r = ids;
		*count_r = w;
		ret = 0;
		PQclear(r);
	}
	buf_free(&folded);
	buf_free(&like);
	buf_free(&ffield);
	return ret;
}

/* ---- a viewer's handle (store-jshare.c) --------------------------------- */

int pg_email_copies(struct store_user *user, const int64_t *ids, size_t count,
		    int64_t viewer, struct store_copy_row **rows_r,
		    size_t *count_r, struct store_error *err)
{
	*rows_r = NULL;
	*count_r = 0;
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct buf arr;
	id_array(&arr, ids, count);
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_str(&p, arr.data);
	pg_p_int(&p, viewer);
	PGresult *r = pg_exec(c, "SELECT m.blob, m.mailbox, m.uid, m.flags,"
			      " CASE (SELECT s.seen FROM seen_pvt s WHERE"
			      " s.user_id = m.user_id AND s.mailbox = m.mailbox"
			      " AND s.uid = m.uid AND s.viewer = $3) WHEN true"
			      " THEN 1 WHEN false THEN 0 ELSE -1 END"
			      " FROM msg m WHERE m.user_id = $1 AND"
			      " m.blob = ANY ($2::bigint[]) AND (m.flags & 8) = 0"
			      " ORDER BY m.blob, m.mailbox, m.uid", &p, err);
	pg_rend(user, c);
	buf_free(&arr);
	if (r == NULL)
		return -1;
	/* in the order of ids, as the embedded backend gives them */
	size_t n = (size_t)PQntuples(r), w = 0, cap = n;
	struct store_copy_row *rows = xcalloc(n ? n : 1, sizeof(*rows));
	for (size_t i = 0; i < count; i++) {
		for (size_t k = 0; k < n; k++) {
			if (pg_int(r, (int)k, 0) != ids[i])
				continue;
			if (w == cap) {
				cap = cap * 2 + 16;
				rows = xrealloc(rows, cap * sizeof(*rows));
			}
			struct store_copy_row *x = &rows[w++];
			x->email = ids[i];
			x->mailbox = (uint32_t)pg_int(r, (int)k, 1);
			x->uid = (uint32_t)pg_int(r, (int)k, 2);
			x->flags = (unsigned)pg_int(r, (int)k, 3);
			x->seen_pvt = (int)pg_int(r, (int)k, 4);
		}
	}
	PQclear(r);
	*rows_r = rows;
	*count_r = w;
	return 0;
}

int pg_seen_newest(struct store_user *user, int64_t viewer,
		   uint64_t *modseq_r, struct store_error *err)
{
	*modseq_r = 0;
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, viewer);
	PGresult *r = pg_exec(c, "SELECT max(modseq) FROM seen_pvt"
			      " WHERE user_id = $1 AND viewer = $2", &p, err);
	pg_rend(user, c);
	if (r == NULL)
		return -1;
	*modseq_r = (uint64_t)pg_int(r, 0, 0);
	PQclear(r);
	return 0;
}

int pg_seen_emails_since(struct store_user *user, int64_t viewer,
			 uint64_t modseq, int64_t **ids_r, size_t *count_r,
			 struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, viewer);
	pg_p_int(&p, (int64_t)modseq);
	return read_ids(user, "SELECT DISTINCT m.blob FROM seen_pvt s"
			" JOIN msg m ON m.user_id = s.user_id AND"
			" m.mailbox = s.mailbox AND m.uid = s.uid"
			" WHERE s.user_id = $1 AND s.viewer = $2"
			" AND s.modseq > $3 ORDER BY m.blob", &p, ids_r, count_r,
			err);
}
