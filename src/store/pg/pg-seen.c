/*
 * Per-user \Seen in shared mailboxes in the PostgreSQL backend (store.h
 * "per-user \Seen"; sqlite/sq-seen.c is the reference): a viewer's own
 * \Seen of the owner's messages in seen_pvt (schema step 3), with the
 * owner's modseq its change took. A message without a row is unseen for
 * the viewer. Rows go with their message and mailbox (ON DELETE
 * CASCADE); seen_count (kept by a trigger) counts each viewer's seen
 * messages per mailbox. A viewer's change raises neither the message's
 * modseq nor the mailbox's HIGHESTMODSEQ: only that viewer's reads
 * (which take the higher of the common and its own) see it.
 */
#include "pg-private.h"

#include <stdlib.h>
#include <string.h>

#include "pg-rows.h"
#include "u32.h"

int pg_seen_mode(struct store_user *user, const char *mailbox, int *mode_r,
		 struct store_error *err)
{
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_str(&p, mailbox);
	PGresult *r = pg_exec(c, "SELECT coalesce((SELECT shared::integer FROM"
			      " seen_mode s WHERE s.user_id = m.user_id AND"
			      " s.mailbox = m.id), -1) FROM mailbox m"
			      " WHERE m.user_id = $1 AND m.name = $2", &p, err);
	pg_conn_put(user->store, c);
	if (r == NULL)
		return -1;
	int found = PQntuples(r);
	if (found)
		*mode_r = (int)pg_int(r, 0, 0);
	PQclear(r);
	if (!found)
		return store_set_error(err, STORE_ERR_NOTFOUND,
				       "Mailbox doesn't exist: %s", mailbox);
	return 0;
}

/* The mailbox's setting, and, when it changes, every message's modseq
 * raised: the \Seen each reader sees may change with it, and clients
 * with CONDSTORE learn of it as of a flag change (RFC 7162 3.1). */
static int mode_tx(struct pg_tx *tx, const char *mailbox, int mode,
		   struct store_error *err)
{
	struct pg_mbox mb;
	if (pg_mbox_need(tx->user, tx->c, mailbox, 0, &mb, err) < 0)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, mb.id);
	PGresult *r = pg_exec(tx->c, "SELECT shared::integer FROM seen_mode"
			      " WHERE user_id = $1 AND mailbox = $2", &p, err);
	if (r == NULL)
		return -1;
	int old = PQntuples(r) ? (int)pg_int(r, 0, 0) : -1;
	PQclear(r);
	if (old == (mode < 0 ? -1 : mode))
		return 0;
	pg_p_int(&p, (int64_t)pg_tx_modseq(tx));
	if (pg_run(tx->c, "UPDATE msg SET modseq = $3 WHERE user_id = $1"
		   " AND mailbox = $2", &p, err) < 0 ||
	    pg_mbox_touch(tx, mb.id, 0, err) < 0)
		return -1;
	pg_tx_change(tx, mb.id, STORE_CHANGE_FLAGS);
	struct pg_params q;
	pg_p_init(&q);
	pg_p_int(&q, tx->user->id);
	pg_p_int(&q, mb.id);
	if (mode < 0)
		return pg_run(tx->c, "DELETE FROM seen_mode WHERE user_id = $1"
			      " AND mailbox = $2", &q, err);
	pg_p_str(&q, mode ? "t" : "f");
	return pg_run(tx->c, "INSERT INTO seen_mode (user_id, mailbox, shared)"
		      " VALUES ($1, $2, $3) ON CONFLICT (user_id, mailbox)"
		      " DO UPDATE SET shared = $3", &q, err);
}

int pg_seen_set_mode(struct store_user *user, const char *mailbox, int mode,
		     struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	return pg_wend(&tx, mode_tx(&tx, mailbox, mode, err), err);
}

int pg_seen_info_in(struct store_user *user, struct pg_conn *c,
		    uint32_t mailbox_id, int64_t viewer,
		    struct store_mailbox_info *info, struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, mailbox_id);
	pg_p_int(&p, viewer);
	PGresult *r = pg_exec(c, "SELECT m.messages, m.highestmodseq,"
			      " coalesce((SELECT n FROM seen_count WHERE"
			      " user_id = $1 AND viewer = $3 AND mailbox = $2), 0),"
			      " coalesce((SELECT max(modseq) FROM seen_pvt WHERE"
			      " user_id = $1 AND viewer = $3 AND mailbox = $2), 0)"
			      " FROM mailbox m WHERE m.user_id = $1 AND m.id = $2",
			      &p, err);
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 1) {
		int64_t messages = pg_int(r, 0, 0);
		uint64_t hms = (uint64_t)pg_int(r, 0, 1);
		int64_t seen = pg_int(r, 0, 2);
		uint64_t own = (uint64_t)pg_int(r, 0, 3);
		info->messages = (uint32_t)messages;
		info->unseen = messages > seen ? (uint32_t)(messages - seen) : 0;
		info->highestmodseq = own > hms ? own : hms;
	}
	PQclear(r);
	return 0;
}

int pg_seen_info(struct store_user *user, uint32_t mailbox_id, int64_t viewer,
		 struct store_mailbox_info *info, struct store_error *err)
{
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	int ret = pg_seen_info_in(user, c, mailbox_id, viewer, info, err);
	pg_rend(user, c);
	return ret;
}

int pg_seen_first_unseen(struct store_user *user, uint32_t mailbox_id,
			 int64_t viewer, uint32_t *uid_r,
			 struct store_error *err)
{
	*uid_r = 0;
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, mailbox_id);
	pg_p_int(&p, viewer);
	PGresult *r = pg_exec(c, "SELECT m.uid FROM msg m WHERE m.user_id = $1"
			      " AND m.mailbox = $2 AND NOT EXISTS (SELECT 1 FROM"
			      " seen_pvt p WHERE p.user_id = $1 AND p.mailbox = $2"
			      " AND p.uid = m.uid AND p.viewer = $3 AND p.seen)"
			      " ORDER BY m.uid LIMIT 1", &p, err);
	pg_conn_put(user->store, c);
	if (r == NULL)
		return -1;
	if (PQntuples(r) > 0)
		*uid_r = (uint32_t)pg_int(r, 0, 0);
	PQclear(r);
	return 0;
}

/* A read snapshot with the mailbox's id (by name; NOTFOUND if missing or
 * \Noselect). */
static struct pg_conn *snap(struct store_user *user, const char *name,
			    uint32_t *id_r, struct store_error *err)
{
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return NULL;
	struct pg_mbox mb;
	if (pg_mbox_need(user, c, name, 0, &mb, err) < 0) {
		pg_rend(user, c);
		return NULL;
	}
	*id_r = mb.id;
	return c;
}

int pg_seen_rows(struct store_user *user, const char *mailbox, int64_t viewer,
		 const struct store_uid_range *ranges, size_t range_count,
		 struct store_seen_row **rows_r, size_t *count_r,
		 struct store_error *err)
{
	*rows_r = NULL;
	*count_r = 0;
	uint32_t id;
	struct pg_conn *c = snap(user, mailbox, &id, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, id);
	pg_p_int(&p, viewer);
	PGresult *r = pg_exec(c, "SELECT uid, seen, modseq FROM seen_pvt"
			      " WHERE user_id = $1 AND mailbox = $2 AND"
			      " viewer = $3 ORDER BY uid", &p, err);
	pg_rend(user, c);
	if (r == NULL)
		return -1;
	int n = PQntuples(r);
	struct store_seen_row *rows = xcalloc(n ? (size_t)n : 1, sizeof(*rows));
	size_t w = 0;
	for (int i = 0; i < n; i++) {
		uint32_t uid = (uint32_t)pg_int(r, i, 0);
		if (!store_ranges_contain(ranges, range_count, uid))
			continue;
		rows[w].uid = uid;
		rows[w].seen = pg_bool(r, i, 1);
		rows[w].modseq = (uint64_t)pg_int(r, i, 2);
		w++;
	}
	PQclear(r);
	*rows_r = rows;
	*count_r = w;
	return 0;
}

int pg_seen_changed_since(struct store_user *user, const char *mailbox,
			  int64_t viewer, uint64_t modseq,
			  const struct store_uid_range *ranges,
			  size_t range_count, uint32_t **uids_r,
			  size_t *count_r, struct store_error *err)
{
	*uids_r = NULL;
	*count_r = 0;
	uint32_t id;
	struct pg_conn *c = snap(user, mailbox, &id, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, id);
	pg_p_int(&p, (int64_t)modseq);
	pg_p_int(&p, viewer);
	PGresult *r = pg_exec(c, "SELECT uid FROM msg WHERE user_id = $1 AND"
			      " mailbox = $2 AND modseq > $3 UNION SELECT uid"
			      " FROM seen_pvt WHERE user_id = $1 AND viewer = $4"
			      " AND mailbox = $2 AND modseq > $3 ORDER BY 1",
			      &p, err);
	pg_rend(user, c);
	if (r == NULL)
		return -1;
	uint32_t *uids = NULL;
	size_t n = 0, cap = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		uint32_t uid = (uint32_t)pg_int(r, i, 0);
		if (store_ranges_contain(ranges, range_count, uid))
			u32_push(&uids, &n, &cap, uid);
	}
	PQclear(r);
	*uids_r = uids;
	*count_r = n;
	return 0;
}

static void change_clear(struct store_seen_change *ch)
{
	free(ch->changed);
	free(ch->modified);
	ch->changed = ch->modified = NULL;
	ch->changed_count = ch->modified_count = 0;
}

static int update_tx(struct pg_tx *tx, const char *mailbox, int64_t viewer,
		     const struct store_uid_range *ranges, size_t range_count,
		     struct store_seen_change *ch, struct store_error *err)
{
	struct pg_mbox mb;
	if (pg_mbox_need(tx->user, tx->c, mailbox, 0, &mb, err) < 0)
		return -1;
	/* what to change, read before any write */
	struct store_uid_range all = {1, UINT32_MAX};
	if (ranges == NULL) {
		ranges = &all;
		range_count = 1;
	}
	uint32_t *todo = NULL;
	size_t ntodo = 0, cap_t = 0, cap_m = 0, cap_c = 0;
	for (size_t k = 0; k < range_count; k++) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, tx->user->id);
		pg_p_int(&p, mb.id);
		pg_p_int(&p, viewer);
		pg_p_int(&p, ranges[k].lo);
		pg_p_int(&p, ranges[k].hi);
		PGresult *r = pg_exec(tx->c, "SELECT m.uid, m.modseq,"
				      " coalesce(p.seen, false), coalesce(p.modseq,"
				      " 0) FROM msg m LEFT JOIN seen_pvt p ON"
				      " p.user_id = m.user_id AND p.mailbox ="
				      " m.mailbox AND p.uid = m.uid AND p.viewer = $3"
				      " WHERE m.user_id = $1 AND m.mailbox = $2 AND"
				      " m.uid BETWEEN $4 AND $5 ORDER BY m.uid",
				      &p, err);
		if (r == NULL) {
			free(todo);
			change_clear(ch);
			return -1;
		}
		for (int i = 0; i < PQntuples(r); i++) {
			uint32_t uid = (uint32_t)pg_int(r, i, 0);
			uint64_t common = (uint64_t)pg_int(r, i, 1);
			bool seen = pg_bool(r, i, 2);
			uint64_t own = (uint64_t)pg_int(r, i, 3);
			uint64_t modseq = own > common ? own : common;
			/* RFC 7162 3.1.3, with the modseq this viewer sees */
			if (ch->unchangedsince != 0 &&
			    modseq > ch->unchangedsince) {
				u32_push(&ch->modified, &ch->modified_count,
					 &cap_m, uid);
				continue;
			}
			if (seen != ch->seen)
				u32_push(&todo, &ntodo, &cap_t, uid);
		}
		PQclear(r);
	}
	int ret = 0;
	if (ntodo > 0) {
		struct buf arr;
		pg_uid_array(&arr, todo, ntodo);
		struct pg_params q;
		pg_p_init(&q);
		pg_p_int(&q, tx->user->id);
		pg_p_int(&q, mb.id);
		pg_p_int(&q, viewer);
		pg_p_str(&q, ch->seen ? "t" : "f");
		pg_p_int(&q, (int64_t)pg_tx_modseq(tx));
		pg_p_str(&q, arr.data);
		/* an upsert: seen_count's trigger sees the change */
		ret = pg_run(tx->c, "INSERT INTO seen_pvt (user_id, mailbox,"
			     " uid, viewer, seen, modseq) SELECT $1, $2, u, $3,"
			     " $4, $5 FROM unnest($6::bigint[]) u ON CONFLICT"
			     " (user_id, mailbox, uid, viewer) DO UPDATE SET"
			     " seen = excluded.seen, modseq = excluded.modseq",
			     &q, err);
		buf_free(&arr);
	}
	if (ret == 0) {
		for (size_t i = 0; i < ntodo; i++)
			u32_push(&ch->changed, &ch->changed_count, &cap_c,
				 todo[i]);
	}
	free(todo);
	if (ret == 0 && ch->changed_count > 0) {
		ch->modseq = tx->modseq;
		/* wakes the sessions on the owner's mail; only this viewer's
		 * find something (the others' deltas do not see the rows) */
		pg_tx_change(tx, mb.id, STORE_CHANGE_FLAGS);
	}
	return ret;
}

int pg_seen_update(struct store_user *user, const char *mailbox,
		   int64_t viewer, const struct store_uid_range *ranges,
		   size_t range_count, struct store_seen_change *change,
		   struct store_error *err)
{
	change->changed = change->modified = NULL;
	change->changed_count = change->modified_count = 0;
	change->modseq = 0;
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	int ret = update_tx(&tx, mailbox, viewer, ranges, range_count, change,
			    err);
	if (pg_wend(&tx, ret, err) < 0) {
		change_clear(change);
		return -1;
	}
	return 0;
}

int pg_seen_view_delta(struct store_user *user, uint32_t mailbox_id,
		       int64_t viewer, uint64_t since,
		       struct store_mailbox_info *info_r,
		       uint32_t **expunged_r, size_t *expunged_count_r,
		       bool *complete_r,
		       void (*changed)(void *ctx, const struct store_msg *msg),
		       void *ctx, struct store_error *err)
{
	return pg_view_delta_as(user, mailbox_id, viewer, since, info_r,
				expunged_r, expunged_count_r, complete_r,
				changed, ctx, err);
}

int pg_seen_move(struct pg_tx *tx, uint32_t src, const uint32_t *src_uids,
		 uint32_t dst, const uint32_t *dst_uids, size_t count,
		 struct store_error *err)
{
	if (count == 0)
		return 0;
	struct buf from, to;
	pg_uid_array(&from, src_uids, count);
	pg_uid_array(&to, dst_uids, count);
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, src);
	pg_p_int(&p, dst);
	pg_p_int(&p, (int64_t)pg_tx_modseq(tx));
	pg_p_str(&p, from.data);
	pg_p_str(&p, to.data);
	int ret = pg_run(tx->c, "INSERT INTO seen_pvt (user_id, mailbox, uid,"
			 " viewer, seen, modseq) SELECT $1, $3, x.d, p.viewer,"
			 " p.seen, $4 FROM unnest($5::bigint[], $6::bigint[])"
			 " x(s, d) JOIN seen_pvt p ON p.user_id = $1 AND"
			 " p.mailbox = $2 AND p.uid = x.s ON CONFLICT (user_id,"
			 " mailbox, uid, viewer) DO UPDATE SET seen ="
			 " excluded.seen, modseq = excluded.modseq", &p, err);
	buf_free(&from);
	buf_free(&to);
	return ret;
}
