/*
 * Import on the PostgreSQL backend (store.h "moving mail in and out";
 * sqlite/sq-migrate.c is the reference): mailboxes made as a source had
 * them (UIDVALIDITY, UIDNEXT, MAILBOXID, role), messages appended with a
 * given UID, modseq, EMAILID (the blob row's id), THREADID, save date and
 * POP3 UIDL through the delivery path (pg_deliver_tx_as: quota, search
 * text, threads, JMAP rows by trigger), and resume marks committed with
 * their message. loftctl import and restore into a pg account use it.
 *
 * A batch is one transaction under the account row lock, each message
 * under a savepoint of its own with a modseq of its own (as the embedded
 * backend's group commit gives each job one), so a restore keeps every
 * message's modseq.
 */
#include "pg-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "pg-rows.h"

/* Step 8 -> 9: the marks an import resumes by (with the account), and a
 * message's POP3 UIDL as an import kept it (NULL: from UID and
 * UIDVALIDITY). */
const char pg_import_schema_sql[] =
	"CREATE TABLE import_mark (user_id bigint NOT NULL"
	" REFERENCES account ON DELETE CASCADE, source text NOT NULL,"
	" id text NOT NULL, PRIMARY KEY (user_id, source, id));"
	"ALTER TABLE msg ADD COLUMN uidl text;";

/* ---- mailboxes ---------------------------------------------------- */

/* Whether a mailbox other than id has the column's value: 1, 0, -1. */
static int taken(struct pg_tx *tx, const char *sql, const char *s,
		 int64_t v, uint32_t id, struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	if (s != NULL)
		pg_p_str(&p, s);
	else
		pg_p_int(&p, v);
	pg_p_int(&p, id);
	PGresult *r = pg_exec(tx->c, sql, &p, err);
	if (r == NULL)
		return -1;
	int n = PQntuples(r) > 0;
	PQclear(r);
	return n;
}

static int imbox_tx(struct pg_tx *tx, const struct store_import_mailbox *spec,
		    struct store_error *err)
{
	struct store_user *user = tx->user;
	struct pg_mbox mb;
	int r = pg_mbox_get(user, tx->c, spec->name, 0, &mb, err);
	if (r < 0)
		return -1;
	bool fresh = r == 0 || mb.noselect;
	if (fresh) {
		/* made (with its parents), or a \Noselect parent made a
		 * mailbox: new as any */
		if (pg_mbox_make(tx, spec->name, 0, err) < 0 ||
		    pg_mbox_need(user, tx->c, spec->name, 0, &mb, err) < 0)
			return -1;
	}
	/* one that never held a message: no client can have cached it */
	fresh = fresh || mb.uidnext == 1;
	uint32_t uv = mb.uidvalidity;
	if (fresh && spec->uidvalidity != 0)
		uv = spec->uidvalidity;
	const char *oid = NULL;
	if (fresh && spec->objectid != NULL && spec->objectid[0] != '\0') {
		int t = taken(tx, "SELECT 1 FROM mailbox WHERE user_id = $1"
			      " AND objectid = $2 AND id <> $3", spec->objectid,
			      0, mb.id, err);
		if (t < 0)
			return -1;
		if (!t)
			oid = spec->objectid;
	}
	unsigned role = mb.special_use;
	if (fresh && spec->special_use != 0) {
		int t = taken(tx, "SELECT 1 FROM mailbox WHERE user_id = $1"
			      " AND NOT noselect AND (special_use & $2) <> 0"
			      " AND id <> $3", NULL, spec->special_use, mb.id,
			      err);
		if (t < 0)
			return -1;
		if (!t)
			role = spec->special_use;
	}
	/* UIDs below the source's UIDNEXT stay unused, as at the source */
	uint32_t uidnext = mb.uidnext;
	if (uv == spec->uidvalidity && spec->uidnext > uidnext)
		uidnext = spec->uidnext;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, mb.id);
	pg_p_int(&p, uv);
	pg_p_str(&p, oid);
	pg_p_int(&p, role);
	pg_p_int(&p, uidnext);
	pg_p_int(&p, (int64_t)pg_tx_modseq(tx));
	if (pg_run(tx->c, "UPDATE mailbox SET uidvalidity = $3,"
		   " objectid = coalesce($4, objectid), special_use = $5,"
		   " uidnext = $6, highestmodseq = $7"
		   " WHERE user_id = $1 AND id = $2", &p, err) < 0)
		return -1;
	/* a mailbox made later never repeats it */
	if (uv > tx->last_uidvalidity) {
		tx->last_uidvalidity = uv;
		tx->usage_dirty = true;
	}
	if (spec->subscribe) {
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_str(&p, spec->name);
		if (pg_run(tx->c, "INSERT INTO subscription VALUES ($1, $2)"
			   " ON CONFLICT DO NOTHING", &p, err) < 0)
			return -1;
	}
	pg_tx_change(tx, 0, STORE_CHANGE_MAILBOXES);
	return 0;
}

static int import_mailbox_once(struct store_user *user,
			       const struct store_import_mailbox *spec,
			       struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	return pg_wend(&tx, imbox_tx(&tx, spec, err), err);
}

static int import_mailbox_retry(struct store_user *user,
				const struct store_import_mailbox *spec,
				struct store_error *err)
{
	PG_RETRY(user->store, import_mailbox_once(user, spec, err));
}

int pg_import_mailbox(struct store_user *user,
		      const struct store_import_mailbox *spec,
		      struct store_mailbox_info *info_r,
		      struct store_error *err)
{
	if (info_r != NULL)
		memset(info_r, 0, sizeof(*info_r));
	if (import_mailbox_retry(user, spec, err) < 0)
		return -1;
	if (info_r == NULL)
		return 0;
	return pg_r_mailbox_status(user, spec->name, 0, info_r, err);
}

/* ---- messages ----------------------------------------------------- */

/* 1 the account has (source, id), 0 not, -1 error. */
static int mark_has(struct pg_tx *tx, const char *source, const char *id,
		    struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_str(&p, source);
	pg_p_str(&p, id);
	PGresult *r = pg_exec(tx->c, "SELECT 1 FROM import_mark WHERE"
			      " user_id = $1 AND source = $2 AND id = $3",
			      &p, err);
	if (r == NULL)
		return -1;
	int n = PQntuples(r) > 0;
	PQclear(r);
	return n;
}

static int mark_put(struct pg_conn *c, int64_t user_id, const char *source,
		    const char *id, struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user_id);
	pg_p_str(&p, source);
	pg_p_str(&p, id);
	return pg_run(c, "INSERT INTO import_mark VALUES ($1, $2, $3)"
		      " ON CONFLICT DO NOTHING", &p, err);
}

/* The size of Email n's message (its body and prefix) when the account
 * has that blob row: 1, 0 none, -1 error. */
static int email_size(struct pg_tx *tx, int64_t n, uint64_t *size_r,
		      struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, n);
	PGresult *r = pg_exec(tx->c, "SELECT body_size + length(prefix) FROM"
			      " blob WHERE user_id = $1 AND id = $2", &p, err);
	if (r == NULL)
		return -1;
	int have = PQntuples(r) > 0;
	if (have)
		*size_r = (uint64_t)pg_int(r, 0, 0);
	PQclear(r);
	return have;
}

/* One message of an import inside tx (under the caller's savepoint). */
static int iappend_tx(struct pg_tx *tx, struct store_import_item *it,
		      const struct store_account_limits *limits,
		      struct pg_delivered *d_r, struct store_error *err)
{
	struct store_user *user = tx->user;
	const struct store_import_params *p = &it->p;
	memset(d_r, 0, sizeof(*d_r));
	if (p->mark_source != NULL) {
		int r = mark_has(tx, p->mark_source, p->mark_id, err);
		if (r < 0)
			return -1;
		if (r > 0)
			return store_set_error(err, STORE_ERR_EXISTS,
					       "Already imported");
	}
	struct pg_mbox mb;
	if (pg_mbox_need(user, tx->c, it->mailbox, 0, &mb, err) < 0)
		return -1;
	if (p->uid != 0 && p->uid < mb.uidnext)
		return store_set_error(err, STORE_ERR_EXISTS, "UID %u is taken"
				       " (UIDNEXT is %u)", p->uid, mb.uidnext);
	if (p->uid == UINT32_MAX)
		return store_set_error(err, STORE_ERR_LIMIT,
				       "Mailbox is out of UIDs");
	/* a modseq of its own; the given one when above the counter, or
	 * below it into a move's target (then the counter stays: without
	 * it the target's counter, ahead from making the folders, gave
	 * every message of a 10,000-message folder another modseq, and
	 * store_import_exact's UPDATE of them all ran past
	 * postgres_timeout in the msg triggers) */
	tx->took_modseq = false;
	uint64_t counter = tx->modseq;
	if (p->modseq > 0 && (p->modseq - 1 > tx->modseq ||
			      p->modseq_below))
		tx->modseq = p->modseq - 1;
	/* the given UID becomes UIDNEXT, which the append takes */
	if (p->uid > mb.uidnext && pg_mbox_touch(tx, mb.id, p->uid, err) < 0)
		return -1;
	uint64_t size = 0;
	int have = p->email > 0 ? email_size(tx, p->email, &size, err) : 0;
	if (have < 0)
		return -1;
	uint32_t uid = 0;
	if (have > 0) {
		/* a second copy of an Email the account has: a row naming
		 * the same blob */
		if (pg_over_quota(tx, limits, size, 1))
			return store_set_error(err, STORE_ERR_QUOTA,
					       "Quota exceeded");
		struct pg_mbox cur;
		if (pg_mbox_need(user, tx->c, it->mailbox, 0, &cur, err) < 0)
			return -1;
		char *kw = NULL;
		for (size_t i = 0; i < p->append.keyword_count; i++) {
			size_t len = kw != NULL ? strlen(kw) : 0;
			const char *k = p->append.keywords[i];
			kw = xrealloc(kw, len + strlen(k) + 2);
			if (len > 0)
				kw[len++] = ' ';
			strcpy(kw + len, k);
		}
		struct pg_kept row = {
			.blob = p->email,
			.flags = p->append.flags & 0x1f,
			.keywords = kw,
			.internaldate = p->append.internaldate != 0
				? (int64_t)p->append.internaldate
				: (int64_t)pg_now(tx->user->store),
			.size = size,
		};
		int ret = pg_rows_add(tx, &cur, &row, 1, p->savedate != 0
				      ? p->savedate : pg_now(tx->user->store),
				      0, &uid,
				      err);
		free(kw);
		if (ret < 0)
			return -1;
		if (p->pop3_uidl != NULL) {
			struct pg_params q;
			pg_p_init(&q);
			pg_p_int(&q, user->id);
			pg_p_int(&q, cur.id);
			pg_p_int(&q, uid);
			pg_p_str(&q, p->pop3_uidl);
			if (pg_run(tx->c, "UPDATE msg SET uidl = $4 WHERE"
				   " user_id = $1 AND mailbox = $2 AND uid = $3",
				   &q, err) < 0)
				return -1;
		}
		d_r->user_id = user->id;
		d_r->mailbox = cur.id;
		d_r->uid = uid;
		d_r->blob = p->email;
	} else if (it->body == NULL) {
		return store_set_error(err, STORE_ERR_NOTFOUND, "No such Email,"
				       " and no body given");
	} else {
		struct pg_deliver_want want = {
			.blob = p->email,
			.thread = p->thread,
			.savedate = p->savedate,
			.pop3_uidl = p->pop3_uidl,
		};
		if (pg_deliver_tx_as(tx, it->body, it->mailbox, NULL, 0,
				     &p->append, limits, &want, d_r, NULL,
				     err) < 0)
			return -1;
		uid = d_r->uid;
	}
	/* a thread merge during the append may have taken UIDs */
	if (p->uid != 0 && uid != p->uid)
		return store_set_error(err, STORE_ERR_EXISTS, "UID %u is taken",
				       p->uid);
	if (p->pop3_hidden || p->pop3_first_retr != 0) {
		/* POP3's marks as the source had them */
		struct pg_params q;
		pg_p_init(&q);
		pg_p_int(&q, user->id);
		pg_p_int(&q, d_r->mailbox);
		pg_p_int(&q, uid);
		pg_p_str(&q, p->pop3_hidden ? "t" : "f");
		pg_p_int(&q, (int64_t)p->pop3_first_retr);
		if (pg_run(tx->c, "UPDATE msg SET pop3_hidden = $4,"
			   " pop3_first_retr = $5 WHERE user_id = $1 AND"
			   " mailbox = $2 AND uid = $3", &q, err) < 0)
			return -1;
	}
	if (p->mark_source != NULL &&
	    mark_put(tx->c, user->id, p->mark_source, p->mark_id, err) < 0)
		return -1;
	it->uid = uid;
	it->modseq = tx->modseq;
	if (tx->modseq < counter)
		tx->modseq = counter;
	return 0;
}

/* The whole batch in one transaction: -1 when the transaction itself
 * failed (every item then failed with err, and the call may run again),
 * else 0 with each item's own result. */
static int batch_once(struct store_user *user, struct store_import_item *items,
		      const bool *want, size_t count, struct store_error *err)
{
	for (size_t i = 0; i < count; i++)
		if (want[i]) {
			items[i].ret = 0;
			items[i].uid = 0;
			items[i].modseq = 0;
			memset(&items[i].err, 0, sizeof(items[i].err));
		}
	struct store_account_limits limits;
	if (pg_limits_get(user, &limits, err) < 0)
		return -1;
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	struct pg_delivered first = {0};
	bool quota_stop = false, stored = false;
	int ret = 0;
	for (size_t i = 0; i < count && ret == 0; i++) {
		struct store_import_item *it = &items[i];
		if (!want[i])
			continue;
		if (quota_stop) {
			it->ret = store_set_error(&it->err, STORE_ERR_QUOTA,
						  "Quota exceeded (an earlier"
						  " message)");
			continue;
		}
		if (pg_cmd(tx.c, "SAVEPOINT loft_import", err) < 0) {
			ret = -1;
			break;
		}
		int64_t bytes = tx.bytes, messages = tx.messages;
		bool dirty = tx.usage_dirty;
		struct pg_delivered d;
		if (iappend_tx(&tx, it, &limits, &d, &it->err) == 0) {
			ret = pg_cmd(tx.c, "RELEASE SAVEPOINT loft_import", err);
			if (first.uid == 0)
				first = d;
			stored = true;
			continue;
		}
		it->ret = -1;
		it->uid = 0;
		quota_stop = it->err.kind == STORE_ERR_QUOTA;
		tx.bytes = bytes;
		tx.messages = messages;
		tx.usage_dirty = dirty;
		/* the connection gone: the whole transaction with it */
		if (tx.c->broken ||
		    pg_cmd(tx.c, "ROLLBACK TO SAVEPOINT loft_import", err) < 0)
			ret = -1;
	}
	/* the counter goes back to the account (each item reset it) */
	tx.took_modseq = tx.took_modseq || stored;
	/* a lost COMMIT's answer: the first stored message's row says */
	if (pg_wend_resolve(&tx, ret, first.uid != 0 ? pg_delivered : NULL,
			    &first, err) < 0)
		return -1;
	/* committed: never run again (the messages would be stored twice) */
	pg_retry_mark(false);
	return 0;
}

static int batch_retry(struct store_user *user, struct store_import_item *items,
		       const bool *want, size_t count, struct store_error *err)
{
	PG_RETRY(user->store, batch_once(user, items, want, count, err));
}

void pg_import_append_batch(struct store_user *user,
			    struct store_import_item *items, size_t count)
{
	if (count == 0)
		return;
	bool *want = xcalloc(count, sizeof(*want));
	for (size_t i = 0; i < count; i++)
		want[i] = items[i].ret == 0;
	struct store_error err = {0};
	if (batch_retry(user, items, want, count, &err) < 0) {
		for (size_t i = 0; i < count; i++)
			if (want[i]) {
				items[i].ret = -1;
				items[i].uid = 0;
				items[i].err = err;
			}
	}
	free(want);
}

/* ---- marks and the counter ------------------------------------------ */

static int mark_add_once(struct store_user *user, const char *source,
			 const char *id, struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	return pg_wend(&tx, mark_put(tx.c, user->id, source, id, err), err);
}

int pg_import_mark_add(struct store_user *user, const char *source,
		       const char *id, struct store_error *err)
{
	PG_RETRY(user->store, mark_add_once(user, source, id, err));
}

static int marks_once(struct store_user *user, const char *source,
		      char ***ids_r, size_t *count_r, struct store_error *err)
{
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_str(&p, source);
	PGresult *r = pg_exec(c, "SELECT id FROM import_mark WHERE"
			      " user_id = $1 AND source = $2", &p, err);
	int ret = r != NULL ? 0 : -1;
	if (r != NULL) {
		size_t n = (size_t)PQntuples(r);
		char **ids = xcalloc(n ? n : 1, sizeof(char *));
		for (size_t i = 0; i < n; i++)
			ids[i] = pg_strdup(r, (int)i, 0);
		*ids_r = ids;
		*count_r = n;
	}
	PQclear(r);
	pg_rend(user, c);
	return ret;
}

int pg_import_marks(struct store_user *user, const char *source,
		    char ***ids_r, size_t *count_r, struct store_error *err)
{
	*ids_r = NULL;
	*count_r = 0;
	PG_RETRY(user->store, marks_once(user, source, ids_r, count_r, err));
}

static int raise_once(struct store_user *user, uint64_t modseq,
		      struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	if (modseq > tx.modseq) {
		tx.modseq = modseq;
		tx.took_modseq = true;
	}
	return pg_wend(&tx, 0, err);
}

int pg_modseq_raise(struct store_user *user, uint64_t modseq,
		    struct store_error *err)
{
	PG_RETRY(user->store, raise_once(user, modseq, err));
}

/* ---- a restored folder made exact ---------------------------------- */

/* Messages per UPDATE of their modseqs */
#define EXACT_SLICE 500

/* A PostgreSQL array literal of column col of the messages. */
static char *exact_array(const struct store_import_exact *x, int col)
{
	struct buf b;
	buf_init(&b, 0);
	buf_append_char(&b, '{');
	for (size_t i = 0; i < x->msg_count; i++) {
		const struct store_import_exact_msg *m = &x->msgs[i];
		char n[24];
		snprintf(n, sizeof(n), "%s%llu", i > 0 ? "," : "",
			 (unsigned long long)(col == 0 ? m->uid : col == 1
					      ? m->got : m->modseq));
		buf_append_str(&b, n);
	}
	buf_append_char(&b, '}');
	return buf_steal(&b, NULL);
}

/* POP3's marks the messages lack (store_import_pop3): one statement. */
static int exact_pop3(struct pg_tx *tx, uint32_t mailbox_id,
		      const struct store_import_exact *x,
		      struct store_error *err)
{
	struct buf uids, hidden, retr;
	buf_init(&uids, 0);
	buf_init(&hidden, 0);
	buf_init(&retr, 0);
	for (size_t i = 0; i < x->pop3_count; i++) {
		const struct store_import_pop3 *m = &x->pop3[i];
		const char *sep = i > 0 ? "," : "{";
		buf_printf(&uids, "%s%u", sep, m->uid);
		buf_printf(&hidden, "%s%s", sep, m->hidden ? "t" : "f");
		buf_printf(&retr, "%s%lld", sep, (long long)m->first_retr);
	}
	buf_append_char(&uids, '}');
	buf_append_char(&hidden, '}');
	buf_append_char(&retr, '}');
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, mailbox_id);
	pg_p_str(&p, uids.data);
	pg_p_str(&p, hidden.data);
	pg_p_str(&p, retr.data);
	int r = pg_run(tx->c, "UPDATE msg SET pop3_hidden = msg.pop3_hidden OR"
		       " v.hidden, pop3_first_retr = CASE WHEN"
		       " msg.pop3_first_retr = 0 THEN v.retr ELSE"
		       " msg.pop3_first_retr END FROM unnest($3::bigint[],"
		       " $4::boolean[], $5::bigint[]) AS v(uid, hidden, retr)"
		       " WHERE msg.user_id = $1 AND msg.mailbox = $2 AND"
		       " msg.uid = v.uid", &p, err);
	buf_free(&uids);
	buf_free(&hidden);
	buf_free(&retr);
	return r;
}

/* As sqlite/sq-migrate.c's exact_job: the source's modseqs on messages
 * nothing changed since their append, its expunge log and horizon,
 * HIGHESTMODSEQ; no modseq taken (but for log entries given none), the
 * counter only raised. */
static int exact_tx(struct pg_tx *tx, const struct store_import_exact *x,
		    struct store_error *err)
{
	struct store_user *user = tx->user;
	struct pg_mbox mb;
	if (pg_mbox_need(user, tx->c, x->name, 0, &mb, err) < 0)
		return -1;
	if (mb.uidvalidity != x->uidvalidity)
		return store_set_error(err, STORE_ERR_INVALID, "%s has"
				       " UIDVALIDITY %u, not the source's %u",
				       x->name, mb.uidvalidity,
				       x->uidvalidity);
	/* the counter at least the source's first: a modseq taken below
	 * (messages left out, expunged now) is above every source one */
	if (x->highestmodseq > tx->modseq) {
		tx->modseq = x->highestmodseq;
		tx->usage_dirty = true;
	}
	struct pg_params p;
	/* in slices: each changed row runs the msg triggers (the Email's
	 * merge), and one statement for a whole big folder could outlast
	 * postgres_timeout */
	for (size_t at = 0; at < x->msg_count; at += EXACT_SLICE) {
		size_t n = x->msg_count - at < EXACT_SLICE
			? x->msg_count - at : EXACT_SLICE;
		/* only those that differ */
		size_t k = 0;
		for (size_t i = at; i < at + n; i++)
			k += x->msgs[i].got != x->msgs[i].modseq;
		if (k == 0)
			continue;
		struct store_import_exact slice = *x;
		slice.msgs = x->msgs + at;
		slice.msg_count = n;
		char *uids = exact_array(&slice, 0),
		     *got = exact_array(&slice, 1),
		     *ms = exact_array(&slice, 2);
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, mb.id);
		pg_p_str(&p, uids);
		pg_p_str(&p, got);
		pg_p_str(&p, ms);
		int r = pg_run(tx->c, "UPDATE msg SET modseq = v.modseq FROM"
			       " unnest($3::bigint[], $4::bigint[],"
			       " $5::bigint[]) AS v(uid, got, modseq)"
			       " WHERE msg.user_id = $1 AND msg.mailbox = $2"
			       " AND msg.uid = v.uid AND msg.modseq = v.got"
			       " AND v.modseq <> v.got", &p, err);
		free(uids);
		free(got);
		free(ms);
		if (r < 0)
			return -1;
	}
	if (x->pop3_count > 0 && exact_pop3(tx, mb.id, x, err) < 0)
		return -1;
	for (size_t i = 0; i < x->expunged_count; i++) {
		const struct store_expunged_range *e = &x->expunged[i];
		/* never a UID the folder holds, nor one not yet given */
		if (e->first >= mb.uidnext)
			continue;
		uint32_t last = e->last < mb.uidnext ? e->last
						     : mb.uidnext - 1;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, mb.id);
		pg_p_int(&p, e->first);
		pg_p_int(&p, last);
		pg_p_int(&p, (int64_t)(e->modseq != 0 ? e->modseq
						      : pg_tx_modseq(tx)));
		pg_p_int(&p, (int64_t)e->at);
		pg_p_str(&p, x->log_as_given && e->modseq != 0 ? "t" : "f");
		if (pg_run(tx->c, "INSERT INTO expunged SELECT $1, $2, u, $5, $6"
			   " FROM generate_series($3::bigint, $4::bigint) u"
			   " WHERE NOT EXISTS (SELECT 1 FROM msg m WHERE"
			   " m.user_id = $1 AND m.mailbox = $2 AND m.uid = u)"
			   " ON CONFLICT (user_id, mailbox, uid) DO UPDATE SET"
			   " modseq = CASE WHEN $7::boolean THEN excluded.modseq"
			   " ELSE greatest(expunged.modseq, excluded.modseq)"
			   " END", &p, err) < 0)
			return -1;
	}
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, mb.id);
	pg_p_int(&p, (int64_t)x->expunge_horizon);
	pg_p_int(&p, (int64_t)x->highestmodseq);
	PGresult *r = pg_exec(tx->c, "UPDATE mailbox SET"
			      " expunge_horizon = greatest(expunge_horizon, $3),"
			      " highestmodseq = greatest($4,"
			      "  (SELECT max(modseq) FROM msg WHERE user_id = $1"
			      "   AND mailbox = $2),"
			      "  (SELECT max(modseq) FROM expunged WHERE"
			      "   user_id = $1 AND mailbox = $2))"
			      " WHERE user_id = $1 AND id = $2"
			      " RETURNING highestmodseq", &p, err);
	if (r == NULL)
		return -1;
	uint64_t highest = PQntuples(r) > 0 ? (uint64_t)pg_int(r, 0, 0) : 0;
	PQclear(r);
	/* the counter never goes down, and is never below the folder */
	if (highest > tx->modseq) {
		tx->modseq = highest;
		tx->took_modseq = true;
	}
	if (x->jmap_horizon > 0) {
		uint64_t h = x->jmap_horizon < tx->modseq ? x->jmap_horizon
							  : tx->modseq;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, (int64_t)h);
		if (pg_run(tx->c, "UPDATE account SET jmap_horizon ="
			   " greatest(jmap_horizon, $2) WHERE user_id = $1",
			   &p, err) < 0)
			return -1;
	}
	return 0;
}

static int exact_once(struct store_user *user,
		      const struct store_import_exact *x,
		      struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	return pg_wend(&tx, exact_tx(&tx, x, err), err);
}

int pg_import_exact(struct store_user *user,
		    const struct store_import_exact *x,
		    struct store_error *err)
{
	/* run again whole after a lost connection: it sets values, so a
	 * second run after one that committed changes nothing more */
	PG_RETRY(user->store, exact_once(user, x, err));
}

/* ---- an account's messages removed (pg_user_delete) ------------------ */

#define PURGE_SLICE 500

/* One slice under the account's row lock: how many rows went, or -1. */
static int64_t purge_slice(struct pg_conn *c, int64_t user_id,
			   struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user_id);
	if (pg_run(c, "SELECT 1 FROM account WHERE user_id = $1 FOR UPDATE",
		   &p, err) < 0)
		return -1;
	pg_p_int(&p, PURGE_SLICE);
	PGresult *r = pg_exec(c, "DELETE FROM msg m USING (SELECT mailbox,"
			      " uid FROM msg WHERE user_id = $1 LIMIT $2) s"
			      " WHERE m.user_id = $1 AND m.mailbox = s.mailbox"
			      " AND m.uid = s.uid", &p, err);
	if (r == NULL)
		return -1;
	int64_t n = strtoll(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return n;
}

int pg_import_purge(struct store *store, int64_t user_id,
		    struct store_error *err)
{
	for (;;) {
		struct pg_conn *c = pg_conn_get(store, err);
		if (c == NULL)
			return -1;
		int64_t n = -1;
		if (pg_cmd(c, "BEGIN", err) == 0) {
			c->in_tx = true;
			n = purge_slice(c, user_id, err);
			if (n >= 0 && pg_cmd(c, "COMMIT", err) < 0)
				n = -1;
			else if (n >= 0)
				c->in_tx = false;
		}
		pg_conn_put(store, c);
		if (n < 0)
			return -1;
		if (n < PURGE_SLICE)
			return 0;
	}
}

/* ---- the rest of an account (store_import_extra) -------------------- */

/* The mailbox's id (0 and 1 for the server's, name NULL); 0 when there
 * is no such selectable mailbox, -1 on error. */
static int extra_mbox(struct pg_tx *tx, const char *name, uint32_t *id_r,
		      struct store_error *err)
{
	*id_r = 0;
	if (name == NULL)
		return 1;
	struct pg_mbox mb;
	int r = pg_mbox_get(tx->user, tx->c, name, 0, &mb, err);
	if (r <= 0)
		return r;
	if (mb.noselect)
		return 0;
	*id_r = mb.id;
	return 1;
}

static int extra_tx(struct pg_tx *tx, const struct store_account_extra *x,
		    size_t *skipped_r, struct store_error *err)
{
	int64_t uid = tx->user->id;
	*skipped_r = 0;
	for (size_t i = 0; i < x->annotation_count; i++) {
		const struct store_extra_annotation *a = &x->annotations[i];
		uint32_t id;
		int r = extra_mbox(tx, a->mailbox, &id, err);
		if (r < 0)
			return -1;
		if (r == 0) {
			(*skipped_r)++;
			continue;
		}
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, uid);
		pg_p_int(&p, id);
		pg_p_int(&p, a->viewer);
		pg_p_str(&p, a->name);
		pg_p_bin(&p, a->value, a->value_len);
		if (pg_run(tx->c, "INSERT INTO annotation (user_id, mailbox,"
			   " viewer, name, value) VALUES ($1, $2, $3, $4, $5)"
			   " ON CONFLICT DO NOTHING", &p, err) < 0)
			return -1;
	}
	for (size_t i = 0; i < x->key_count; i++) {
		const struct store_extra_key *k = &x->keys[i];
		uint32_t id;
		int r = extra_mbox(tx, k->mailbox, &id, err);
		if (r < 0)
			return -1;
		if (r == 0) {
			(*skipped_r)++;
			continue;
		}
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, uid);
		pg_p_int(&p, id);
		pg_p_int(&p, k->viewer);
		pg_p_bin(&p, k->key, STORE_URLAUTH_KEY_LEN);
		if (pg_run(tx->c, "INSERT INTO access_key (user_id, mailbox,"
			   " viewer, key) VALUES ($1, $2, $3, $4)"
			   " ON CONFLICT DO NOTHING", &p, err) < 0)
			return -1;
	}
	for (size_t i = 0; i < x->record_count; i++) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, uid);
		pg_p_str(&p, x->records[i].key);
		pg_p_int(&p, (int64_t)x->records[i].expires);
		if (pg_run(tx->c, "INSERT INTO sieve_record (user_id, key,"
			   " expires) VALUES ($1, $2, $3) ON CONFLICT"
			   " DO NOTHING",
			   &p, err) < 0)
			return -1;
	}
	if (x->object_count > 0) {
		/* a change JMAP clients see (its modseq), ids kept */
		int64_t modseq = (int64_t)pg_tx_modseq(tx);
		for (size_t i = 0; i < x->object_count; i++) {
			const struct store_extra_object *o = &x->objects[i];
			struct pg_params p;
			pg_p_init(&p);
			pg_p_int(&p, uid);
			pg_p_int(&p, o->kind);
			pg_p_int(&p, o->id);
			pg_p_int(&p, modseq);
			pg_p_str(&p, o->data);
			if (pg_run(tx->c, "INSERT INTO jobject (user_id, kind,"
				   " id, created, modseq, data) VALUES ($1, $2,"
				   " $3, $4, $4, $5) ON CONFLICT DO NOTHING",
				   &p, err) < 0)
				return -1;
		}
		pg_tx_change(tx, 0, STORE_CHANGE_OBJECTS);
	}
	return 0;
}

static int extra_once(struct store_user *user,
		      const struct store_account_extra *x, size_t *skipped_r,
		      struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	return pg_wend(&tx, extra_tx(&tx, x, skipped_r, err), err);
}

int pg_import_extra(struct store_user *user,
		    const struct store_account_extra *x, size_t *skipped_r,
		    struct store_error *err)
{
	/* it sets values: a second run after one that committed is the
	 * same */
	PG_RETRY(user->store, extra_once(user, x, skipped_r, err));
}

/* store_import_extra_drop: each row by its key, in one transaction. */
static int drop_tx(struct pg_tx *tx, const struct store_account_extra *x,
		   struct store_error *err)
{
	int64_t uid = tx->user->id;
	struct pg_params p;
	for (size_t i = 0; i < x->annotation_count; i++) {
		const struct store_extra_annotation *a = &x->annotations[i];
		uint32_t id;
		int r = extra_mbox(tx, a->mailbox, &id, err);
		if (r < 0)
			return -1;
		if (r == 0)
			continue;
		pg_p_init(&p);
		pg_p_int(&p, uid);
		pg_p_int(&p, id);
		pg_p_int(&p, a->viewer);
		pg_p_str(&p, a->name);
		if (pg_run(tx->c, "DELETE FROM annotation WHERE user_id = $1"
			   " AND mailbox = $2 AND viewer = $3 AND name = $4",
			   &p, err) < 0)
			return -1;
	}
	for (size_t i = 0; i < x->key_count; i++) {
		uint32_t id;
		int r = extra_mbox(tx, x->keys[i].mailbox, &id, err);
		if (r < 0)
			return -1;
		if (r == 0)
			continue;
		pg_p_init(&p);
		pg_p_int(&p, uid);
		pg_p_int(&p, id);
		pg_p_int(&p, x->keys[i].viewer);
		if (pg_run(tx->c, "DELETE FROM access_key WHERE user_id = $1"
			   " AND mailbox = $2 AND viewer = $3", &p, err) < 0)
			return -1;
	}
	for (size_t i = 0; i < x->record_count; i++) {
		pg_p_init(&p);
		pg_p_int(&p, uid);
		pg_p_str(&p, x->records[i].key);
		if (pg_run(tx->c, "DELETE FROM sieve_record WHERE user_id = $1"
			   " AND key = $2", &p, err) < 0)
			return -1;
	}
	for (size_t i = 0; i < x->object_count; i++) {
		pg_p_init(&p);
		pg_p_int(&p, uid);
		pg_p_int(&p, x->objects[i].kind);
		pg_p_int(&p, x->objects[i].id);
		if (pg_run(tx->c, "DELETE FROM jobject WHERE user_id = $1"
			   " AND kind = $2 AND id = $3", &p, err) < 0)
			return -1;
	}
	if (x->object_count > 0)
		pg_tx_change(tx, 0, STORE_CHANGE_OBJECTS);
	return 0;
}

static int drop_once(struct store_user *user,
		     const struct store_account_extra *x,
		     struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	return pg_wend(&tx, drop_tx(&tx, x, err), err);
}

int pg_drop_extra(struct store_user *user,
		  const struct store_account_extra *x, struct store_error *err)
{
	/* a second run after one that committed finds nothing to remove */
	PG_RETRY(user->store, drop_once(user, x, err));
}
