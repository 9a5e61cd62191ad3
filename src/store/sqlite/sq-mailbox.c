/*
 * Mailboxes of the embedded backend: list, status, create (with parents),
 * delete (a parent with children stays as \Noselect, RFC 3501 6.3.4),
 * rename with children (INBOX: its messages move, RFC 3501 6.3.5),
 * subscriptions, keywords, and the in-memory \Recent bookkeeping.
 */
#include "sq-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define MBOX_COLS                                                         \
	"id, name, uidvalidity, uidnext, highestmodseq, special_use,"     \
	" objectid, noselect, recent_uid, messages, unseen, deleted, size," \
	" EXISTS (SELECT 1 FROM subscription s WHERE s.name = mailbox.name)"

static const struct {
	const char *name;
	unsigned special_use;
} default_mailboxes[] = {
	{"INBOX", 0},
	{"Sent", STORE_SPECIAL_SENT},
	{"Drafts", STORE_SPECIAL_DRAFTS},
	{"Trash", STORE_SPECIAL_TRASH},
	{"Junk", STORE_SPECIAL_JUNK},
	{"Archive", STORE_SPECIAL_ARCHIVE},
};

static int insert_mailbox(struct sq_conn *c, const char *name,
			  uint32_t uidvalidity, unsigned special_use,
			  uint64_t modseq)
{
	char objectid[32];
	objectid[0] = 'F';
	sq_random_hex(objectid + 1, 12);
	sqlite3_stmt *st = sq_stmt(c, "INSERT INTO mailbox (name, uidvalidity,"
				      " uidnext, highestmodseq, special_use,"
				      " objectid) VALUES (?, ?, 1, ?, ?, ?)");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, uidvalidity);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)modseq);
	sqlite3_bind_int(st, 4, (int)special_use);
	sqlite3_bind_text(st, 5, objectid, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int subscribe_name(struct sq_conn *c, const char *name, bool on)
{
	sqlite3_stmt *st = on ? sq_stmt(c, "INSERT OR IGNORE INTO subscription"
					   " VALUES (?)")
			      : sq_stmt(c, "DELETE FROM subscription"
					   " WHERE name = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int sq_create_defaults(struct sq_conn *c, int64_t user_id)
{
	/* UIDVALIDITY comes from the clock, and POP3's UIDL is UID plus
	 * UIDVALIDITY (Dovecot's format), so two accounts made in the same
	 * second would hand out the same UIDLs. A client that keeps one UIDL
	 * list per server would then skip mail. Spacing new accounts by their
	 * id keeps them apart; later values are max(now, last + 1), so they
	 * still only grow. */
	uint32_t uv = (uint32_t)time(NULL) + 8u * (uint32_t)(user_id % 4096);
	size_t n = sizeof(default_mailboxes) / sizeof(default_mailboxes[0]);
	for (size_t i = 0; i < n; i++) {
		if (insert_mailbox(c, default_mailboxes[i].name, uv + i,
				   default_mailboxes[i].special_use, 1) < 0 ||
		    subscribe_name(c, default_mailboxes[i].name, true) < 0)
			return -1;
	}
	sqlite3_stmt *st = sq_stmt(c, "UPDATE account SET last_uidvalidity = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, uv + n - 1);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- one mailbox per role ------------------------------------------ */

/* The special-use bits some selectable mailbox carries. */
static int roles_present(struct sq_conn *c, unsigned *roles_r)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT special_use FROM mailbox"
				      " WHERE noselect = 0 AND special_use != 0");
	if (st == NULL)
		return -1;
	int rc;
	*roles_r = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*roles_r |= (unsigned)sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static unsigned default_roles(void)
{
	unsigned all = 0;
	for (size_t i = 0; i < sizeof(default_mailboxes) / sizeof(default_mailboxes[0]); i++)
		all |= default_mailboxes[i].special_use;
	return all;
}

/* Gives the role to the first of "Trash", "Trash 2", ... that does not
 * exist (created, subscribed) or exists as a plain mailbox (tagged). */
static int role_restore(struct sq_user *u, struct sq_conn *c,
			struct sq_job *job, const char *base, unsigned role)
{
	char name[64];
	for (int k = 1; k < 100; k++) {
		struct sq_mbox mb;
		if (k == 1)
			snprintf(name, sizeof(name), "%s", base);
		else
			snprintf(name, sizeof(name), "%s %d", base, k);
		int r = sq_mbox_get(c, name, &mb);
		if (r < 0)
			return sq_job_dberr(job, c);
		if (r == 0) {
			uint32_t id;
			if (sq_mbox_create_tx(u, c, job, name, role, &id) < 0)
				return -1;
			return subscribe_name(c, name, true) < 0
				       ? sq_job_dberr(job, c) : 0;
		}
		if (mb.noselect || mb.special_use != 0)
			continue;
		sqlite3_stmt *st = sq_stmt(c, "UPDATE mailbox SET special_use = ?"
					      " WHERE id = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int(st, 1, (int)role);
		sqlite3_bind_int64(st, 2, mb.id);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_job_dberr(job, c);
		sq_job_change(job, 0, STORE_CHANGE_MAILBOXES);
		return 0;
	}
	log_warn("store", NULL, "user %lld: no name left for the %s role",
		 (long long)u->user->id, base);
	return 0;
}

static int roles_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	unsigned have;
	if (roles_present(c, &have) < 0)
		return sq_job_dberr(job, c);
	for (size_t i = 0; i < sizeof(default_mailboxes) / sizeof(default_mailboxes[0]); i++) {
		unsigned role = default_mailboxes[i].special_use;
		if (role != 0 && !(have & role) &&
		    role_restore(u, c, job, default_mailboxes[i].name, role) < 0)
			return -1;
	}
	return 0;
}

int sq_mailbox_roles_ensure(struct store_user *user, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	unsigned have = 0;
	int r = roles_present(c, &have);
	if (r < 0)
		r = sq_db_error(c, err, "roles");
	sq_reader_put(u, c);
	/* The usual case, every role there, costs one read and no commit. */
	if (r < 0 || (have & default_roles()) == default_roles())
		return r;
	return sq_run(u, roles_job, NULL, err);
}

static void mbox_from_row(sqlite3_stmt *st, struct sq_mbox *mb)
{
	mb->id = (uint32_t)sqlite3_column_int64(st, 0);
	mb->uidvalidity = (uint32_t)sqlite3_column_int64(st, 1);
	mb->uidnext = (uint32_t)sqlite3_column_int64(st, 2);
	mb->highestmodseq = (uint64_t)sqlite3_column_int64(st, 3);
	mb->special_use = (unsigned)sqlite3_column_int(st, 4);
	mb->noselect = sqlite3_column_int(st, 5) != 0;
}

int sq_mbox_get(struct sq_conn *c, const char *name, struct sq_mbox *mb_r)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT id, uidvalidity, uidnext,"
				      " highestmodseq, special_use, noselect"
				      " FROM mailbox WHERE name = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		mbox_from_row(st, mb_r);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int sq_mbox_get_id(struct sq_conn *c, uint32_t id, struct sq_mbox *mb_r)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT id, uidvalidity, uidnext,"
				      " highestmodseq, special_use, noselect"
				      " FROM mailbox WHERE id = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		mbox_from_row(st, mb_r);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int sq_job_mbox(struct sq_job *job, struct sq_conn *c, const char *name,
		struct sq_mbox *mb_r)
{
	int r = sq_mbox_get(c, name, mb_r);
	if (r < 0)
		return sq_job_dberr(job, c);
	if (r == 0 || mb_r->noselect)
		return sq_job_fail(job, STORE_ERR_NOTFOUND,
				   "Mailbox doesn't exist: %s", name);
	return 0;
}

/* ---- \Recent ------------------------------------------------------ */

static struct sq_recent *recent_find(struct sq_user *u, uint32_t id)
{
	for (size_t i = 0; i < u->recent_count; i++) {
		if (u->recent[i].mailbox_id == id)
			return &u->recent[i];
	}
	return NULL;
}

uint32_t sq_recent_first(struct sq_user *u, uint32_t mailbox_id,
			 uint32_t db_value)
{
	pthread_mutex_lock(&u->recent_mu);
	struct sq_recent *r = recent_find(u, mailbox_id);
	uint32_t first = r != NULL ? r->first : db_value;
	pthread_mutex_unlock(&u->recent_mu);
	return first;
}

uint32_t sq_recent_claim(struct store_user *user, uint32_t mailbox_id,
			 uint32_t upto, bool peek)
{
	struct sq_user *u = SQU(user);
	uint32_t db_value = 1;
	pthread_mutex_lock(&u->recent_mu);
	bool known = recent_find(u, mailbox_id) != NULL;
	pthread_mutex_unlock(&u->recent_mu);
	if (!known) {
		struct sq_conn *c = sq_reader_get(u, NULL);
		if (c != NULL) {
			sqlite3_stmt *st = sq_stmt(c, "SELECT recent_uid FROM"
						      " mailbox WHERE id = ?");
			if (st != NULL) {
				sqlite3_bind_int64(st, 1, mailbox_id);
				if (sqlite3_step(st) == SQLITE_ROW)
					db_value = (uint32_t)
						sqlite3_column_int64(st, 0);
				sqlite3_reset(st);
			}
			sq_reader_put(u, c);
		}
	}
	pthread_mutex_lock(&u->recent_mu);
	struct sq_recent *r = recent_find(u, mailbox_id);
	if (r == NULL) {
		u->recent = xrealloc(u->recent,
				     (u->recent_count + 1) * sizeof(*u->recent));
		r = &u->recent[u->recent_count++];
		r->mailbox_id = mailbox_id;
		r->first = db_value;
		r->dirty = false;
	}
	uint32_t first = r->first;
	if (!peek && upto > r->first) {
		r->first = upto;
		r->dirty = true;
	}
	pthread_mutex_unlock(&u->recent_mu);
	return first;
}

void sq_recent_forget(struct sq_user *u, uint32_t mailbox_id)
{
	pthread_mutex_lock(&u->recent_mu);
	struct sq_recent *r = recent_find(u, mailbox_id);
	if (r != NULL)
		*r = u->recent[--u->recent_count];
	pthread_mutex_unlock(&u->recent_mu);
}

int sq_recent_flush(struct sq_user *u, struct sq_conn *c)
{
	pthread_mutex_lock(&u->recent_mu);
	int ret = 0;
	for (size_t i = 0; i < u->recent_count && ret == 0; i++) {
		if (!u->recent[i].dirty)
			continue;
		sqlite3_stmt *st = sq_stmt(c, "UPDATE mailbox SET recent_uid ="
					      " max(recent_uid, ?) WHERE id = ?");
		if (st == NULL) {
			ret = -1;
			break;
		}
		sqlite3_bind_int64(st, 1, u->recent[i].first);
		sqlite3_bind_int64(st, 2, u->recent[i].mailbox_id);
		if (sqlite3_step(st) != SQLITE_DONE)
			ret = -1;
		sqlite3_reset(st);
		u->recent[i].dirty = false;
	}
	pthread_mutex_unlock(&u->recent_mu);
	return ret;
}

/* ---- reading ------------------------------------------------------ */

static uint32_t count_recent(struct sq_conn *c, uint32_t id, uint32_t first)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT count(*) FROM msg"
				      " WHERE mailbox = ? AND uid >= ?");
	if (st == NULL)
		return 0;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, first);
	uint32_t n = 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = (uint32_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return n;
}

static void info_from_row(struct sq_user *u, struct sq_conn *c,
			  sqlite3_stmt *st, struct store_mailbox_info *info,
			  bool want_recent)
{
	memset(info, 0, sizeof(*info));
	info->id = (uint32_t)sqlite3_column_int64(st, 0);
	info->name = xstrdup((const char *)sqlite3_column_text(st, 1));
	info->uidvalidity = (uint32_t)sqlite3_column_int64(st, 2);
	info->uidnext = (uint32_t)sqlite3_column_int64(st, 3);
	info->highestmodseq = (uint64_t)sqlite3_column_int64(st, 4);
	info->special_use = (unsigned)sqlite3_column_int(st, 5);
	const char *oid = (const char *)sqlite3_column_text(st, 6);
	snprintf(info->objectid, sizeof(info->objectid), "%s", oid ? oid : "");
	info->noselect = sqlite3_column_int(st, 7) != 0;
	uint32_t recent_db = (uint32_t)sqlite3_column_int64(st, 8);
	info->messages = (uint32_t)sqlite3_column_int64(st, 9);
	info->unseen = (uint32_t)sqlite3_column_int64(st, 10);
	info->deleted = (uint32_t)sqlite3_column_int64(st, 11);
	info->size = (uint64_t)sqlite3_column_int64(st, 12);
	info->subscribed = sqlite3_column_int(st, 13) != 0;
	if (want_recent && info->messages > 0) {
		uint32_t first = sq_recent_first(u, info->id, recent_db);
		if (first < info->uidnext)
			info->recent = count_recent(c, info->id, first);
	}
}

static bool has_children(struct sq_conn *c, const char *name)
{
	/* Children sort right after "name/" and before "name0" ('/' + 1). */
	sqlite3_stmt *st = sq_stmt(c, "SELECT 1 FROM mailbox WHERE name > ?"
				      " AND name < ? LIMIT 1");
	if (st == NULL)
		return false;
	char *lo = xasprintf("%s/", name), *hi = xasprintf("%s0", name);
	sqlite3_bind_text(st, 1, lo, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, hi, -1, SQLITE_TRANSIENT);
	bool r = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	free(lo);
	free(hi);
	return r;
}

int sq_mbox_info_row(struct sq_user *u, struct sq_conn *c, uint32_t id,
		     struct store_mailbox_info *info_r, bool want_recent,
		     bool want_children)
{
	sqlite3_stmt *st = sq_stmt(c, "SELECT " MBOX_COLS " FROM mailbox"
				      " WHERE id = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		info_from_row(u, c, st, info_r, want_recent);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW && want_children)
		info_r->has_children = has_children(c, info_r->name);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int info_cmp(const void *a, const void *b)
{
	const struct store_mailbox_info *x = a, *y = b;
	bool xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;
	if (xi != yi)
		return xi ? -1 : 1;
	return strcmp(x->name, y->name);
}

int sq_mailbox_list(struct store_user *user, struct store_mailbox_info **list_r,
		    size_t *count_r, struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	if (sq_read_begin(c, err) < 0) {
		sq_reader_put(u, c);
		return -1;
	}
	int ret = sq_mailbox_list_in(u, c, list_r, count_r, err);
	sq_read_end(c);
	sq_reader_put(u, c);
	return ret;
}

static int list_in(struct sq_user *u, struct sq_conn *c, bool want_recent,
		   struct store_mailbox_info **list_r, size_t *count_r,
		   struct store_error *err);

int sq_mailbox_list_in(struct sq_user *u, struct sq_conn *c,
		       struct store_mailbox_info **list_r, size_t *count_r,
		       struct store_error *err)
{
	return list_in(u, c, true, list_r, count_r, err);
}

int sq_mailbox_list_norecent_in(struct sq_user *u, struct sq_conn *c,
				struct store_mailbox_info **list_r,
				size_t *count_r, struct store_error *err)
{
	return list_in(u, c, false, list_r, count_r, err);
}

static int list_in(struct sq_user *u, struct sq_conn *c, bool want_recent,
		   struct store_mailbox_info **list_r, size_t *count_r,
		   struct store_error *err)
{
	struct store_mailbox_info *list = NULL;
	size_t n = 0, cap = 0;
	int ret = 0, rc;
	sqlite3_stmt *st = sq_stmt(c, "SELECT " MBOX_COLS " FROM mailbox"
				      " ORDER BY name");
	if (st == NULL) {
		ret = sq_db_error(c, err, "list");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			list = xrealloc(list, cap * sizeof(*list));
		}
		/* count_recent uses another statement: safe while st runs */
		info_from_row(u, c, st, &list[n++], want_recent);
	}
	if (rc != SQLITE_DONE)
		ret = sq_db_error(c, err, "list");
	sqlite3_reset(st);
	if (ret == 0) {
		if (n > 1)
			qsort(list, n, sizeof(*list), info_cmp);
		for (size_t i = 0; i < n; i++) {
			size_t len = strlen(list[i].name);
			for (size_t j = 0; j < n && !list[i].has_children; j++)
				list[i].has_children =
					strncmp(list[j].name, list[i].name,
						len) == 0 &&
					list[j].name[len] == '/';
		}
	}
out:
	if (ret < 0) {
		store_mailbox_list_free(list, n);
		return -1;
	}
	*list_r = list;
	*count_r = n;
	return 0;
}

int sq_subscriptions(struct store_user *user, char ***names_r, size_t *count_r,
		     struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	char **names = NULL;
	size_t n = 0;
	int rc = SQLITE_ERROR;
	sqlite3_stmt *st = sq_stmt(c, "SELECT name FROM subscription"
				      " ORDER BY name");
	if (st != NULL) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			names = xrealloc(names, (n + 1) * sizeof(char *));
			names[n++] = xstrdup(
				(const char *)sqlite3_column_text(st, 0));
		}
		sqlite3_reset(st);
	}
	int ret = rc == SQLITE_DONE ? 0 : sq_db_error(c, err, "subscriptions");
	sq_reader_put(u, c);
	if (ret < 0) {
		store_names_free(names, n);
		return -1;
	}
	*names_r = names;
	*count_r = n;
	return 0;
}

int sq_mailbox_status(struct store_user *user, const char *name, uint32_t id,
		      struct store_mailbox_info *info_r,
		      struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	int ret = 0;
	if (sq_read_begin(c, err) < 0) {
		sq_reader_put(u, c);
		return -1;
	}
	if (name != NULL) {
		struct sq_mbox mb;
		int r = sq_mbox_get(c, name, &mb);
		if (r < 0)
			ret = sq_db_error(c, err, "status");
		else if (r == 0)
			ret = store_set_error(err, STORE_ERR_NOTFOUND,
					      "Mailbox doesn't exist: %s", name);
		else if (mb.noselect) /* RFC 3501 6.3.10: STATUS needs one */
			ret = store_set_error(err, STORE_ERR_NOTFOUND,
					      "Mailbox isn't selectable: %s",
					      name);
		id = mb.id;
	}
	if (ret == 0) {
		int r = sq_mbox_info_row(u, c, id, info_r, true, true);
		if (r < 0)
			ret = sq_db_error(c, err, "status");
		else if (r == 0)
			ret = store_set_error(err, STORE_ERR_NOTFOUND,
					      "Mailbox doesn't exist");
	}
	sq_read_end(c);
	sq_reader_put(u, c);
	return ret;
}

char *sq_mailbox_find_special(struct store_user *user, unsigned special_use)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_reader_get(u, NULL);
	if (c == NULL)
		return NULL;
	char *name = NULL;
	sqlite3_stmt *st = sq_stmt(c, "SELECT name FROM mailbox WHERE"
				      " special_use & ? AND noselect = 0"
				      " ORDER BY id LIMIT 1");
	if (st != NULL) {
		sqlite3_bind_int(st, 1, (int)special_use);
		if (sqlite3_step(st) == SQLITE_ROW)
			name = xstrdup((const char *)sqlite3_column_text(st, 0));
		sqlite3_reset(st);
	}
	sq_reader_put(u, c);
	return name;
}

int sq_mailbox_keywords(struct store_user *user, const char *mailbox,
			char ***keywords_r, size_t *count_r,
			struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	struct sq_mbox mb;
	char **kw = NULL;
	size_t n = 0;
	int ret = 0, r = sq_mbox_get(c, mailbox, &mb);
	if (r <= 0) {
		ret = r < 0 ? sq_db_error(c, err, "keywords")
			    : store_set_error(err, STORE_ERR_NOTFOUND,
					      "Mailbox doesn't exist: %s",
					      mailbox);
		goto out;
	}
	sqlite3_stmt *st = sq_stmt(c, "SELECT name FROM keyword WHERE"
				      " mailbox = ? ORDER BY name");
	if (st == NULL) {
		ret = sq_db_error(c, err, "keywords");
		goto out;
	}
	sqlite3_bind_int64(st, 1, mb.id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		kw = xrealloc(kw, (n + 1) * sizeof(char *));
		kw[n++] = xstrdup((const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_reset(st);
out:
	sq_reader_put(u, c);
	*keywords_r = kw;
	*count_r = n;
	return ret;
}

/* ---- changing ----------------------------------------------------- */

uint32_t sq_next_uidvalidity(struct sq_user *u)
{
	uint32_t now = (uint32_t)time(NULL);
	u->tx_last_uidvalidity = now > u->tx_last_uidvalidity
					 ? now
					 : u->tx_last_uidvalidity + 1;
	u->tx_dirty = true;
	return u->tx_last_uidvalidity;
}

int sq_mbox_create_tx(struct sq_user *u, struct sq_conn *c,
		      struct sq_job *job, const char *name,
		      unsigned special_use, uint32_t *id_r)
{
	uint64_t modseq = sq_job_modseq(u, job);
	if (insert_mailbox(c, name, sq_next_uidvalidity(u), special_use,
			   modseq) < 0)
		return sq_job_dberr(job, c);
	*id_r = (uint32_t)sqlite3_last_insert_rowid(c->db);
	/* RFC 4314 5.1.1 (and Dovecot, Cyrus): a new mailbox starts with
	 * its parent's ACL */
	if (sq_acl_inherit(c, name, *id_r) < 0)
		return sq_job_dberr(job, c);
	sq_job_change(job, 0, STORE_CHANGE_MAILBOXES);
	return 0;
}

/* Creates the missing parents of name (RFC 3501 6.3.3). */
int sq_mbox_create_parents(struct sq_user *u, struct sq_conn *c,
			   struct sq_job *job, const char *name)
{
	char *p = xstrdup(name);
	int ret = 0;
	for (char *s = strchr(p, '/'); s != NULL && ret == 0;
	     s = strchr(s + 1, '/')) {
		*s = '\0';
		struct sq_mbox mb;
		uint32_t id;
		int r = sq_mbox_get(c, p, &mb);
		if (r < 0)
			ret = sq_job_dberr(job, c);
		else if (r == 0)
			ret = sq_mbox_create_tx(u, c, job, p, 0, &id);
		*s = '/';
	}
	free(p);
	return ret;
}

struct create_arg {
	const char *name;
	unsigned special_use;
};

static int create_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct create_arg *a = job->arg;
	struct sq_mbox mb;
	int r = sq_mbox_get(c, a->name, &mb);
	if (r < 0)
		return sq_job_dberr(job, c);
	if (r > 0 && !mb.noselect)
		return sq_job_fail(job, STORE_ERR_EXISTS,
				   "Mailbox already exists");
	/* One mailbox per role (RFC 6154 5.2: the server may refuse). */
	unsigned have;
	if (a->special_use != 0 && roles_present(c, &have) < 0)
		return sq_job_dberr(job, c);
	if (a->special_use != 0 && (have & a->special_use) != 0)
		return sq_job_fail(job, STORE_ERR_INVALID, "Another mailbox "
				   "has that special use already");
	if (sq_mbox_create_parents(u, c, job, a->name) < 0)
		return -1;
	if (r > 0) {
		/* A \Noselect parent becomes a real mailbox again, with a
		 * new UIDVALIDITY: its old messages are gone. */
		sqlite3_stmt *st = sq_stmt(c, "UPDATE mailbox SET noselect = 0,"
					      " uidvalidity = ?, special_use = ?,"
					      " highestmodseq = ? WHERE id = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, sq_next_uidvalidity(u));
		sqlite3_bind_int(st, 2, (int)a->special_use);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)sq_job_modseq(u, job));
		sqlite3_bind_int64(st, 4, mb.id);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE || sq_acl_inherit(c, a->name, mb.id) < 0)
			return sq_job_dberr(job, c);
		sq_job_change(job, 0, STORE_CHANGE_MAILBOXES);
		return 0;
	}
	uint32_t id;
	return sq_mbox_create_tx(u, c, job, a->name, a->special_use, &id);
}

int sq_mailbox_create(struct store_user *user, const char *name,
		      unsigned special_use, struct store_error *err)
{
	struct create_arg a = {name, special_use};
	return sq_run(SQU(user), create_job, &a, err);
}

static int delete_all_messages(struct sq_user *u, struct sq_conn *c,
			       struct sq_job *job, uint32_t id)
{
	struct sq_msgrow *rows;
	size_t n;
	if (sq_rows_get(c, id, NULL, 0, &rows, &n) < 0)
		return sq_job_dberr(job, c);
	int ret = sq_deleted_keep(u, c, job, id, rows, n);
	if (ret == 0)
		ret = sq_expunge_rows(u, c, job, id, rows, n, false);
	sq_rows_free(rows, n);
	if (ret < 0)
		return -1;
	sqlite3_stmt *st = sq_stmt(c, "DELETE FROM expunged WHERE mailbox = ?");
	sqlite3_stmt *st2;
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	st2 = sq_stmt(c, "DELETE FROM keyword WHERE mailbox = ?");
	if (rc != SQLITE_DONE || st2 == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st2, 1, id);
	rc = sqlite3_step(st2);
	sqlite3_reset(st2);
	return rc == SQLITE_DONE ? 0 : sq_job_dberr(job, c);
}

static int delete_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	const char *name = job->arg;
	struct sq_mbox mb;
	int r = sq_mbox_get(c, name, &mb);
	if (r < 0)
		return sq_job_dberr(job, c);
	if (r == 0)
		return sq_job_fail(job, STORE_ERR_NOTFOUND,
				   "Mailbox doesn't exist: %s", name);
	bool children = has_children(c, name);
	if (children && mb.noselect)
		return sq_job_fail(job, STORE_ERR_EXISTS,
				   "Mailbox has children, delete them first");
	if (delete_all_messages(u, c, job, mb.id) < 0)
		return -1;
	uint64_t modseq = sq_job_modseq(u, job);
	sqlite3_stmt *st;
	if (children) {
		st = sq_stmt(c, "UPDATE mailbox SET noselect = 1, special_use = 0,"
				" highestmodseq = ? WHERE id = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, (sqlite3_int64)modseq);
		sqlite3_bind_int64(st, 2, mb.id);
	} else {
		st = sq_stmt(c, "DELETE FROM mailbox WHERE id = ?");
		if (st == NULL)
			return sq_job_dberr(job, c);
		sqlite3_bind_int64(st, 1, mb.id);
	}
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	/* its ACL goes with it (a \Noselect parent left keeps none) */
	if (rc != SQLITE_DONE || sq_acl_drop(c, mb.id) < 0)
		return sq_job_dberr(job, c);
	sq_recent_forget(u, mb.id);
	sq_job_change(job, mb.id, STORE_CHANGE_EXPUNGE);
	sq_job_change(job, 0, STORE_CHANGE_MAILBOXES);
	return 0;
}

int sq_mailbox_delete(struct store_user *user, const char *name,
		      struct store_error *err)
{
	sq_deleted_policy(user);
	return sq_run(SQU(user), delete_job, (void *)name, err);
}

struct rename_arg {
	const char *from, *to;
};

/* RFC 3501 6.3.5: renaming INBOX moves its messages to a new mailbox and
 * leaves INBOX empty; its children stay where they are. */
static int rename_inbox(struct sq_user *u, struct sq_conn *c,
			struct sq_job *job, const struct sq_mbox *inbox,
			const char *to)
{
	uint32_t dst = 0;
	if (sq_mbox_create_parents(u, c, job, to) < 0 ||
	    sq_mbox_create_tx(u, c, job, to, 0, &dst) < 0)
		return -1;
	/* the messages keep the ACL they had (RFC 4314: RENAME keeps it) */
	if (sq_acl_drop(c, dst) < 0 || sq_acl_copy(c, inbox->id, dst) < 0)
		return sq_job_dberr(job, c);
	struct sq_msgrow *rows;
	size_t n;
	if (sq_rows_get(c, inbox->id, NULL, 0, &rows, &n) < 0)
		return sq_job_dberr(job, c);
	uint32_t *uids = xcalloc(n ? n : 1, sizeof(uint32_t));
	int ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		time_t sd = (time_t)rows[i].savedate;
		ret = sq_copy_rows(u, c, job, dst, &rows[i], 1, sd, uids);
	}
	if (ret == 0)
		ret = sq_expunge_rows(u, c, job, inbox->id, rows, n, true);
	free(uids);
	sq_rows_free(rows, n);
	return ret;
}

static int rename_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct rename_arg *a = job->arg;
	struct sq_mbox from, to;
	int r = sq_mbox_get(c, a->from, &from);
	if (r < 0)
		return sq_job_dberr(job, c);
	if (r == 0)
		return sq_job_fail(job, STORE_ERR_NOTFOUND,
				   "Mailbox doesn't exist: %s", a->from);
	r = sq_mbox_get(c, a->to, &to);
	if (r < 0)
		return sq_job_dberr(job, c);
	if (r > 0 || has_children(c, a->to))
		return sq_job_fail(job, STORE_ERR_EXISTS,
				   "Mailbox already exists: %s", a->to);
	if (strcmp(a->from, "INBOX") == 0)
		return rename_inbox(u, c, job, &from, a->to);
	if (sq_mbox_create_parents(u, c, job, a->to) < 0)
		return -1;
	/* The mailbox and its children: "from" and every "from/...". */
	sqlite3_stmt *st = sq_stmt(c, "UPDATE mailbox SET name = ? || substr(name, ?)"
				      " WHERE name = ? OR (name > ? AND name < ?)");
	if (st == NULL)
		return sq_job_dberr(job, c);
	char *lo = xasprintf("%s/", a->from), *hi = xasprintf("%s0", a->from);
	sqlite3_bind_text(st, 1, a->to, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)strlen(a->from) + 1);
	sqlite3_bind_text(st, 3, a->from, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, lo, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 5, hi, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	free(lo);
	free(hi);
	if (rc != SQLITE_DONE) {
		if ((sqlite3_extended_errcode(c->db) & 0xff) == SQLITE_CONSTRAINT)
			return sq_job_fail(job, STORE_ERR_EXISTS,
					   "Mailbox already exists: %s", a->to);
		return sq_job_dberr(job, c);
	}
	/* Subscriptions follow the mailbox (as Dovecot does). */
	st = sq_stmt(c, "UPDATE OR REPLACE subscription SET name = ? || substr(name, ?)"
			" WHERE name = ? OR (name > ? AND name < ?)");
	if (st == NULL)
		return sq_job_dberr(job, c);
	lo = xasprintf("%s/", a->from);
	hi = xasprintf("%s0", a->from);
	sqlite3_bind_text(st, 1, a->to, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)strlen(a->from) + 1);
	sqlite3_bind_text(st, 3, a->from, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, lo, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 5, hi, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	free(lo);
	free(hi);
	if (rc != SQLITE_DONE)
		return sq_job_dberr(job, c);
	sq_job_modseq(u, job);
	sq_job_change(job, 0, STORE_CHANGE_MAILBOXES);
	return 0;
}

int sq_mailbox_rename(struct store_user *user, const char *from, const char *to,
		      struct store_error *err)
{
	struct rename_arg a = {from, to};
	return sq_run(SQU(user), rename_job, &a, err);
}

struct subscribe_arg {
	const char *name;
	bool on;
};

static int subscribe_job(struct sq_user *u, struct sq_conn *c,
			 struct sq_job *job)
{
	struct subscribe_arg *a = job->arg;
	if (subscribe_name(c, a->name, a->on) < 0)
		return sq_job_dberr(job, c);
	sq_job_modseq(u, job);
	sq_job_change(job, 0, STORE_CHANGE_MAILBOXES);
	return 0;
}

int sq_mailbox_subscribe(struct store_user *user, const char *name,
			 bool subscribe, struct store_error *err)
{
	struct subscribe_arg a = {name, subscribe};
	return sq_run(SQU(user), subscribe_job, &a, err);
}
