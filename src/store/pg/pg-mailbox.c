/*
 * Mailboxes of the PostgreSQL backend: list, status, create (with
 * parents), delete (a parent with children stays \Noselect, RFC 3501
 * 6.3.4), rename with children (INBOX: its messages move, 6.3.5),
 * subscriptions, keywords, roles, and \Recent claims (one row per
 * mailbox, so one session in the whole cluster gets each message).
 */
#include "pg-private.h"
#include "pg-rows.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

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
#define N_DEFAULT (sizeof(default_mailboxes) / sizeof(default_mailboxes[0]))

static void random_hex(char *out, size_t bytes)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char buf[32];
	FILE *f = fopen("/dev/urandom", "rb");
	if (f == NULL || fread(buf, 1, bytes, f) != bytes)
		abort();
	fclose(f);
	for (size_t i = 0; i < bytes; i++) {
		out[2 * i] = hex[buf[i] >> 4];
		out[2 * i + 1] = hex[buf[i] & 15];
	}
	out[2 * bytes] = '\0';
}

static int insert_mailbox(struct pg_tx *tx, const char *name,
			  uint32_t uidvalidity, unsigned special_use,
			  uint64_t modseq, uint32_t *id_r,
			  struct store_error *err)
{
	char objectid[32];
	objectid[0] = 'F';
	random_hex(objectid + 1, 12);
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_str(&p, name);
	pg_p_int(&p, uidvalidity);
	pg_p_int(&p, (int64_t)modseq);
	pg_p_int(&p, special_use);
	pg_p_str(&p, objectid);
	PGresult *r = pg_exec(tx->c, "INSERT INTO mailbox (user_id, id, name,"
			      " uidvalidity, highestmodseq, special_use, objectid)"
			      " SELECT $1, coalesce(max(id), 0) + 1, $2, $3, $4, $5, $6"
			      " FROM mailbox WHERE user_id = $1 RETURNING id",
			      &p, err);
	if (r == NULL)
		return -1;
	if (id_r != NULL)
		*id_r = (uint32_t)pg_int(r, 0, 0);
	PQclear(r);
	pg_tx_change(tx, 0, STORE_CHANGE_MAILBOXES);
	return 0;
}

static int subscribe_name(struct pg_tx *tx, const char *name, bool on,
			  struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_str(&p, name);
	return pg_run(tx->c, on ? "INSERT INTO subscription VALUES ($1, $2)"
				  " ON CONFLICT DO NOTHING"
				: "DELETE FROM subscription WHERE user_id = $1"
				  " AND name = $2", &p, err);
}

int pg_create_defaults(struct pg_tx *tx, struct store_error *err)
{
	/* as the embedded backend: UIDVALIDITY spaced by the account's id,
	 * so two accounts made in one second give different POP3 UIDLs */
	uint32_t uv = (uint32_t)time(NULL) + 8u * (uint32_t)(tx->user->id % 4096);
	for (size_t i = 0; i < N_DEFAULT; i++) {
		if (insert_mailbox(tx, default_mailboxes[i].name, uv + (uint32_t)i,
				   default_mailboxes[i].special_use, 1, NULL,
				   err) < 0 ||
		    subscribe_name(tx, default_mailboxes[i].name, true, err) < 0)
			return -1;
	}
	tx->last_uidvalidity = uv + (uint32_t)N_DEFAULT - 1;
	tx->usage_dirty = true;
	tx->change_count = 0;
	return pg_jmail_account_created(tx, err);
}

/* ---- reading ------------------------------------------------------------ */

static void mbox_from_row(const PGresult *r, int row, struct pg_mbox *mb)
{
	mb->id = (uint32_t)pg_int(r, row, 0);
	mb->uidvalidity = (uint32_t)pg_int(r, row, 1);
	mb->uidnext = (uint32_t)pg_int(r, row, 2);
	mb->highestmodseq = (uint64_t)pg_int(r, row, 3);
	mb->special_use = (unsigned)pg_int(r, row, 4);
	mb->noselect = pg_bool(r, row, 5);
}

int pg_mbox_get(struct store_user *user, struct pg_conn *c, const char *name,
		uint32_t id, struct pg_mbox *mb_r, struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	PGresult *r;
	if (name != NULL) {
		pg_p_str(&p, name);
		r = pg_exec(c, "SELECT id, uidvalidity, uidnext, highestmodseq,"
			    " special_use, noselect FROM mailbox"
			    " WHERE user_id = $1 AND name = $2", &p, err);
	} else {
		pg_p_int(&p, id);
		r = pg_exec(c, "SELECT id, uidvalidity, uidnext, highestmodseq,"
			    " special_use, noselect FROM mailbox"
			    " WHERE user_id = $1 AND id = $2", &p, err);
	}
	if (r == NULL)
		return -1;
	int found = PQntuples(r) == 1;
	if (found)
		mbox_from_row(r, 0, mb_r);
	PQclear(r);
	return found;
}

int pg_mbox_need(struct store_user *user, struct pg_conn *c,
		 const char *name, uint32_t id, struct pg_mbox *mb_r,
		 struct store_error *err)
{
	int r = pg_mbox_get(user, c, name, id, mb_r, err);
	if (r < 0)
		return -1;
	if (r == 0 || mb_r->noselect)
		return store_set_error(err, STORE_ERR_NOTFOUND,
				       "Mailbox doesn't exist%s%s",
				       name ? ": " : "", name ? name : "");
	return 0;
}

/* The IMAP counts are columns of the mailbox row, kept by a trigger on
 * msg in every write's own transaction (schema step 10); only \Recent is
 * counted, over the UIDs at or above recent_upto, and only where it is
 * asked for (a view counts its own; JMAP has none). */
#define INFO_COLS_RECENT(recent)                                            \
	"m.id, m.name, m.uidvalidity, m.uidnext, m.highestmodseq,"          \
	" m.special_use, m.objectid, m.noselect, m.recent_upto,"            \
	" m.messages, m.unseen, m.deleted, m.size,"                         \
	" EXISTS (SELECT 1 FROM subscription s WHERE s.user_id = m.user_id" \
	"   AND s.name = m.name)," recent
#define INFO_COLS                                                           \
	INFO_COLS_RECENT(" (SELECT count(*) FROM msg x"                     \
			 "   WHERE x.user_id = m.user_id AND x.mailbox = m.id" \
			 "   AND x.uid >= m.recent_upto)")
#define INFO_COLS_NO_RECENT INFO_COLS_RECENT(" 0")

/* Step 9 -> 10: the counts as columns (sqlite's mailbox has them too),
 * filled once from the rows, and the unseen messages indexed for
 * SELECT's [UNSEEN n] (sqlite's msg_unseen). A msg row's insert, delete
 * or change of flags, size or mailbox moves its mailbox's counts. */
const char pg_mailbox_counts_sql[] =
	"ALTER TABLE mailbox ADD COLUMN messages bigint NOT NULL DEFAULT 0,"
	" ADD COLUMN unseen bigint NOT NULL DEFAULT 0,"
	" ADD COLUMN deleted bigint NOT NULL DEFAULT 0,"
	" ADD COLUMN size bigint NOT NULL DEFAULT 0;"
	"UPDATE mailbox m SET messages = s.n, unseen = s.u, deleted = s.d,"
	" size = s.z FROM (SELECT user_id, mailbox, count(*) n,"
	" count(*) FILTER (WHERE (flags & 1) = 0) u,"
	" count(*) FILTER (WHERE (flags & 8) <> 0) d, sum(size) z"
	" FROM msg GROUP BY user_id, mailbox) s"
	" WHERE m.user_id = s.user_id AND m.id = s.mailbox;"
	"CREATE FUNCTION loft_mcount() RETURNS trigger LANGUAGE plpgsql"
	" AS $f$ BEGIN"
	" IF TG_OP = 'UPDATE' AND NEW.user_id = OLD.user_id"
	" AND NEW.mailbox = OLD.mailbox THEN"
	"  IF (NEW.flags & 9) <> (OLD.flags & 9) OR NEW.size <> OLD.size THEN"
	"   UPDATE mailbox SET"
	"   unseen = unseen + ((NEW.flags & 1) = 0)::int"
	"    - ((OLD.flags & 1) = 0)::int,"
	"   deleted = deleted + ((NEW.flags & 8) <> 0)::int"
	"    - ((OLD.flags & 8) <> 0)::int,"
	"   size = size + NEW.size - OLD.size"
	"   WHERE user_id = NEW.user_id AND id = NEW.mailbox;"
	"  END IF;"
	"  RETURN NULL;"
	" END IF;"
	" IF TG_OP <> 'INSERT' THEN"
	"  UPDATE mailbox SET messages = messages - 1,"
	"  unseen = unseen - ((OLD.flags & 1) = 0)::int,"
	"  deleted = deleted - ((OLD.flags & 8) <> 0)::int,"
	"  size = size - OLD.size"
	"  WHERE user_id = OLD.user_id AND id = OLD.mailbox;"
	" END IF;"
	" IF TG_OP <> 'DELETE' THEN"
	"  UPDATE mailbox SET messages = messages + 1,"
	"  unseen = unseen + ((NEW.flags & 1) = 0)::int,"
	"  deleted = deleted + ((NEW.flags & 8) <> 0)::int,"
	"  size = size + NEW.size"
	"  WHERE user_id = NEW.user_id AND id = NEW.mailbox;"
	" END IF;"
	" RETURN NULL; END $f$;"
	"CREATE TRIGGER mcount AFTER INSERT OR DELETE OR UPDATE OF flags, size,"
	" mailbox, user_id ON msg FOR EACH ROW EXECUTE FUNCTION loft_mcount();"
	"CREATE INDEX msg_unseen ON msg (user_id, mailbox, uid)"
	" WHERE (flags & 1) = 0;";

static void info_from_row(const PGresult *r, int row,
			  struct store_mailbox_info *info, bool want_recent)
{
	memset(info, 0, sizeof(*info));
	info->id = (uint32_t)pg_int(r, row, 0);
	info->name = pg_strdup(r, row, 1);
	info->uidvalidity = (uint32_t)pg_int(r, row, 2);
	info->uidnext = (uint32_t)pg_int(r, row, 3);
	info->highestmodseq = (uint64_t)pg_int(r, row, 4);
	info->special_use = (unsigned)pg_int(r, row, 5);
	size_t len;
	const char *oid = pg_val(r, row, 6, &len);
	snprintf(info->objectid, sizeof(info->objectid), "%.*s", (int)len,
		 oid ? oid : "");
	info->noselect = pg_bool(r, row, 7);
	info->messages = (uint32_t)pg_int(r, row, 9);
	info->unseen = (uint32_t)pg_int(r, row, 10);
	info->deleted = (uint32_t)pg_int(r, row, 11);
	info->size = (uint64_t)pg_int(r, row, 12);
	info->subscribed = pg_bool(r, row, 13);
	if (want_recent)
		info->recent = (uint32_t)pg_int(r, row, 14);
}

/* Children sort right after "name/" and before "name0" ('/' + 1). */
static int has_children(struct store_user *user, struct pg_conn *c,
			const char *name, struct store_error *err)
{
	char *lo = xasprintf("%s/", name), *hi = xasprintf("%s0", name);
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_str(&p, lo);
	pg_p_str(&p, hi);
	PGresult *r = pg_exec(c, "SELECT 1 FROM mailbox WHERE user_id = $1"
			      " AND name COLLATE \"C\" > $2"
			      " AND name COLLATE \"C\" < $3 LIMIT 1", &p, err);
	free(lo);
	free(hi);
	if (r == NULL)
		return -1;
	int n = PQntuples(r) > 0;
	PQclear(r);
	return n;
}

int pg_mbox_info(struct store_user *user, struct pg_conn *c, uint32_t id,
		 struct store_mailbox_info *info_r, bool for_view,
		 struct store_error *err)
{
	bool want_recent = !for_view;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, id);
	PGresult *r = pg_exec(c, want_recent
				       ? "SELECT " INFO_COLS " FROM mailbox m"
					 " WHERE m.user_id = $1 AND m.id = $2"
				       : "SELECT " INFO_COLS_NO_RECENT
					 " FROM mailbox m"
					 " WHERE m.user_id = $1 AND m.id = $2",
			      &p, err);
	if (r == NULL)
		return -1;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return store_set_error(err, STORE_ERR_NOTFOUND,
				       "Mailbox doesn't exist");
	}
	info_from_row(r, 0, info_r, want_recent);
	PQclear(r);
	if (for_view)
		return 0;
	int ch = has_children(user, c, info_r->name, err);
	if (ch < 0) {
		store_mailbox_info_free(info_r);
		return -1;
	}
	info_r->has_children = ch != 0;
	return 0;
}

static int info_cmp(const void *a, const void *b)
{
	const struct store_mailbox_info *x = a, *y = b;
	bool xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;
	if (xi != yi)
		return xi ? -1 : 1;
	return strcmp(x->name, y->name);
}

int pg_mailbox_list(struct store_user *user, struct store_mailbox_info **list_r,
		    size_t *count_r, struct store_error *err)
{
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	int ret = pg_mailbox_list_in(user, c, true, list_r, count_r, err);
	pg_rend(user, c);
	return ret;
}

int pg_mailbox_list_in(struct store_user *user, struct pg_conn *c,
		       bool recent, struct store_mailbox_info **list_r,
		       size_t *count_r, struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	PGresult *r = pg_exec(c, recent ? "SELECT " INFO_COLS " FROM mailbox m"
					  " WHERE m.user_id = $1"
					: "SELECT " INFO_COLS_NO_RECENT
					  " FROM mailbox m WHERE m.user_id = $1",
			      &p, err);
	if (r == NULL)
		return -1;
	size_t n = (size_t)PQntuples(r);
	struct store_mailbox_info *list = xcalloc(n ? n : 1, sizeof(*list));
	for (size_t i = 0; i < n; i++)
		info_from_row(r, (int)i, &list[i], recent);
	PQclear(r);
	if (n > 1)
		qsort(list, n, sizeof(*list), info_cmp);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(list[i].name);
		for (size_t j = i + 1; j < n && !list[i].has_children; j++)
			list[i].has_children = strncmp(list[j].name,
						       list[i].name, len) == 0 &&
					       list[j].name[len] == '/';
	}
	*list_r = list;
	*count_r = n;
	return 0;
}

int pg_subscriptions(struct store_user *user, char ***names_r, size_t *count_r,
		     struct store_error *err)
{
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	PGresult *r = pg_exec(c, "SELECT name FROM subscription WHERE user_id = $1"
			      " ORDER BY name COLLATE \"C\"", &p, err);
	pg_conn_put(user->store, c);
	if (r == NULL)
		return -1;
	size_t n = (size_t)PQntuples(r);
	char **names = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		names[i] = pg_strdup(r, (int)i, 0);
	PQclear(r);
	*names_r = names;
	*count_r = n;
	return 0;
}

int pg_mailbox_status(struct store_user *user, const char *name, uint32_t id,
		      struct store_mailbox_info *info_r,
		      struct store_error *err)
{
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct pg_mbox mb;
	int ret = 0;
	if (name != NULL) {
		int r = pg_mbox_get(user, c, name, 0, &mb, err);
		if (r < 0)
			ret = -1;
		else if (r == 0)
			ret = store_set_error(err, STORE_ERR_NOTFOUND,
					      "Mailbox doesn't exist: %s", name);
		else if (mb.noselect) /* RFC 3501 6.3.10 */
			ret = store_set_error(err, STORE_ERR_NOTFOUND,
					      "Mailbox isn't selectable: %s",
					      name);
		id = mb.id;
	}
	if (ret == 0)
		ret = pg_mbox_info(user, c, id, info_r, false, err);
	pg_rend(user, c);
	return ret;
}

char *pg_mailbox_find_special(struct store_user *user, unsigned special_use)
{
	struct pg_conn *c = pg_conn_get(user->store, NULL);
	if (c == NULL)
		return NULL;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, special_use);
	PGresult *r = pg_exec(c, "SELECT name FROM mailbox WHERE user_id = $1"
			      " AND special_use & $2 <> 0 AND NOT noselect"
			      " ORDER BY id LIMIT 1", &p, NULL);
	pg_conn_put(user->store, c);
	char *name = r != NULL && PQntuples(r) == 1 ? pg_strdup(r, 0, 0) : NULL;
	PQclear(r);
	return name;
}

int pg_mailbox_keywords(struct store_user *user, const char *mailbox,
			char ***keywords_r, size_t *count_r,
			struct store_error *err)
{
	*keywords_r = NULL;
	*count_r = 0;
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct pg_mbox mb;
	int r = pg_mbox_get(user, c, mailbox, 0, &mb, err);
	PGresult *res = NULL;
	if (r == 0)
		store_set_error(err, STORE_ERR_NOTFOUND,
				"Mailbox doesn't exist: %s", mailbox);
	if (r > 0) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, mb.id);
		res = pg_exec(c, "SELECT name FROM keyword WHERE user_id = $1"
			      " AND mailbox = $2 ORDER BY name COLLATE \"C\"",
			      &p, err);
	}
	pg_rend(user, c);
	if (res == NULL)
		return -1;
	size_t n = (size_t)PQntuples(res);
	char **kw = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		kw[i] = pg_strdup(res, (int)i, 0);
	PQclear(res);
	*keywords_r = kw;
	*count_r = n;
	return 0;
}

/* ---- changing ----------------------------------------------------------- */

static int create_in(struct pg_tx *tx, const char *name, unsigned special_use,
		     uint32_t *id_r, struct store_error *err)
{
	return insert_mailbox(tx, name, pg_tx_uidvalidity(tx), special_use,
			      pg_tx_modseq(tx), id_r, err);
}

static int create_parents(struct pg_tx *tx, const char *name,
			  struct store_error *err)
{
	char *p = xstrdup(name);
	int ret = 0;
	for (char *s = strchr(p, '/'); s != NULL && ret == 0;
	     s = strchr(s + 1, '/')) {
		*s = '\0';
		struct pg_mbox mb;
		int r = pg_mbox_get(tx->user, tx->c, p, 0, &mb, err);
		if (r < 0)
			ret = -1;
		else if (r == 0)
			ret = create_in(tx, p, 0, NULL, err);
		*s = '/';
	}
	free(p);
	return ret;
}

static int roles_present(struct pg_tx *tx, unsigned *roles_r,
			 struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	PGresult *r = pg_exec(tx->c, "SELECT special_use FROM mailbox"
			      " WHERE user_id = $1 AND NOT noselect"
			      " AND special_use <> 0", &p, err);
	if (r == NULL)
		return -1;
	*roles_r = 0;
	for (int i = 0; i < PQntuples(r); i++)
		*roles_r |= (unsigned)pg_int(r, i, 0);
	PQclear(r);
	return 0;
}

int pg_mbox_make(struct pg_tx *tx, const char *name, unsigned special_use,
		 struct store_error *err)
{
	struct store_user *user = tx->user;
	struct pg_mbox mb;
	int ret = 0, r = pg_mbox_get(user, tx->c, name, 0, &mb, err);
	unsigned have = 0;
	if (r < 0)
		ret = -1;
	else if (r > 0 && !mb.noselect)
		ret = store_set_error(err, STORE_ERR_EXISTS,
				      "Mailbox already exists");
	else if (special_use != 0 && roles_present(tx, &have, err) < 0)
		ret = -1;
	else if (special_use != 0 && (have & special_use) != 0)
		ret = store_set_error(err, STORE_ERR_INVALID, "Another mailbox"
				      " has that special use already");
	if (ret == 0)
		ret = create_parents(tx, name, err);
	if (ret == 0 && r > 0) {
		/* a \Noselect parent becomes a real mailbox again, with a
		 * new UIDVALIDITY: its old messages are gone */
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, mb.id);
		pg_p_int(&p, pg_tx_uidvalidity(tx));
		pg_p_int(&p, special_use);
		pg_p_int(&p, (int64_t)pg_tx_modseq(tx));
		ret = pg_run(tx->c, "UPDATE mailbox SET noselect = false,"
			     " uidvalidity = $3, special_use = $4,"
			     " highestmodseq = $5 WHERE user_id = $1 AND id = $2",
			     &p, err);
		pg_tx_change(tx, 0, STORE_CHANGE_MAILBOXES);
	} else if (ret == 0) {
		ret = create_in(tx, name, special_use, NULL, err);
	}
	return ret;
}

int pg_mailbox_create(struct store_user *user, const char *name,
		      unsigned special_use, struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	return pg_wend(&tx, pg_mbox_make(&tx, name, special_use, err), err);
}

static int delete_messages(struct pg_tx *tx, uint32_t id, unsigned how,
			   struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, id);
	PGresult *r = pg_exec(tx->c, "SELECT uid FROM msg WHERE user_id = $1"
			      " AND mailbox = $2", &p, err);
	if (r == NULL)
		return -1;
	size_t n = (size_t)PQntuples(r);
	uint32_t *uids = xcalloc(n ? n : 1, sizeof(uint32_t));
	for (size_t i = 0; i < n; i++)
		uids[i] = (uint32_t)pg_int(r, (int)i, 0);
	PQclear(r);
	int ret = pg_expunge_uids(tx, id, uids, n, how, err);
	free(uids);
	if (ret == 0)
		ret = pg_run(tx->c, "DELETE FROM expunged WHERE user_id = $1"
			     " AND mailbox = $2", &p, err);
	if (ret == 0)
		ret = pg_run(tx->c, "DELETE FROM keyword WHERE user_id = $1"
			     " AND mailbox = $2", &p, err);
	return ret;
}

int pg_mailbox_delete(struct store_user *user, const char *name,
		      struct store_error *err)
{
	/* its messages kept for undelete, without expunge log entries (the
	 * mailbox and its log go) */
	unsigned how = pg_deleted_keep(user) ? PG_GONE_KEEP : 0;
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	struct pg_mbox mb;
	int ret = 0, r = pg_mbox_get(user, tx.c, name, 0, &mb, err);
	int children = 0;
	if (r < 0)
		ret = -1;
	else if (r == 0)
		ret = store_set_error(err, STORE_ERR_NOTFOUND,
				      "Mailbox doesn't exist: %s", name);
	if (ret == 0 && (children = has_children(user, tx.c, name, err)) < 0)
		ret = -1;
	if (ret == 0 && children && mb.noselect)
		ret = store_set_error(err, STORE_ERR_EXISTS, "Mailbox has"
				      " children, delete them first");
	if (ret == 0)
		ret = delete_messages(&tx, mb.id, how, err);
	if (ret == 0) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, mb.id);
		if (children) {
			pg_p_int(&p, (int64_t)pg_tx_modseq(&tx));
			ret = pg_run(tx.c, "UPDATE mailbox SET noselect = true,"
				     " special_use = 0, highestmodseq = $3"
				     " WHERE user_id = $1 AND id = $2", &p, err);
		} else {
			pg_tx_modseq(&tx);
			ret = pg_run(tx.c, "DELETE FROM mailbox WHERE user_id = $1"
				     " AND id = $2", &p, err);
		}
		pg_tx_change(&tx, mb.id, STORE_CHANGE_EXPUNGE);
		pg_tx_change(&tx, 0, STORE_CHANGE_MAILBOXES);
	}
	return pg_wend(&tx, ret, err);
}

/* RFC 3501 6.3.5: renaming INBOX moves its messages to a new mailbox and
 * leaves INBOX empty; its children stay where they are. */
static int rename_inbox(struct pg_tx *tx, const struct pg_mbox *inbox,
			const char *to, struct store_error *err)
{
	uint32_t dst;
	if (create_parents(tx, to, err) < 0 ||
	    create_in(tx, to, 0, &dst, err) < 0)
		return -1;
	/* the messages keep the ACL they had (RFC 4314: RENAME keeps it) */
	if (pg_acl_copy(tx, inbox->id, dst, err) < 0)
		return -1;
	uint64_t modseq = pg_tx_modseq(tx);
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, inbox->id);
	pg_p_int(&p, dst);
	pg_p_int(&p, (int64_t)modseq);
	pg_p_int(&p, (int64_t)pg_now(tx->user->store));
	/* new UIDs from 1 in the new mailbox, in the old order; the old
	 * INBOX's UIDs go to its expunge log */
	PGresult *r = pg_exec(tx->c, "WITH moved AS (DELETE FROM msg"
			      " WHERE user_id = $1 AND mailbox = $2 RETURNING *),"
			      " logged AS (INSERT INTO expunged SELECT user_id, $2,"
			      " uid, $4, $5 FROM moved ON CONFLICT DO NOTHING)"
			      " INSERT INTO msg (user_id, mailbox, uid, blob, flags,"
			      " keywords, modseq, size, internaldate, savedate,"
			      " pop3_hidden, pop3_first_retr)"
			      " SELECT user_id, $3, row_number() OVER (ORDER BY uid),"
			      " blob, flags, keywords, $4, size, internaldate, savedate,"
			      " pop3_hidden, pop3_first_retr FROM moved"
			      " RETURNING uid", &p, err);
	if (r == NULL)
		return -1;
	int n = PQntuples(r);
	PQclear(r);
	struct pg_params q;
	pg_p_init(&q);
	pg_p_int(&q, tx->user->id);
	pg_p_int(&q, inbox->id);
	pg_p_int(&q, dst);
	if (n > 0 &&
	    pg_run(tx->c, "INSERT INTO keyword SELECT user_id, $3, name"
		   " FROM keyword WHERE user_id = $1 AND mailbox = $2"
		   " ON CONFLICT DO NOTHING", &q, err) < 0)
		return -1;
	if (pg_mbox_touch(tx, dst, (uint32_t)n + 1, err) < 0 ||
	    pg_mbox_touch(tx, inbox->id, 0, err) < 0)
		return -1;
	pg_tx_change(tx, inbox->id, STORE_CHANGE_EXPUNGE);
	pg_tx_change(tx, dst, STORE_CHANGE_APPEND);
	return 0;
}

int pg_mailbox_rename(struct store_user *user, const char *from, const char *to,
		      struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	struct pg_mbox mf, mt;
	int ret = 0, r = pg_mbox_get(user, tx.c, from, 0, &mf, err);
	if (r < 0)
		ret = -1;
	else if (r == 0)
		ret = store_set_error(err, STORE_ERR_NOTFOUND,
				      "Mailbox doesn't exist: %s", from);
	if (ret == 0) {
		r = pg_mbox_get(user, tx.c, to, 0, &mt, err);
		int ch = r == 0 ? has_children(user, tx.c, to, err) : 0;
		if (r < 0 || ch < 0)
			ret = -1;
		else if (r > 0 || ch > 0)
			ret = store_set_error(err, STORE_ERR_EXISTS,
					      "Mailbox already exists: %s", to);
	}
	if (ret == 0 && strcmp(from, "INBOX") == 0)
		return pg_wend(&tx, rename_inbox(&tx, &mf, to, err), err);
	if (ret == 0)
		ret = create_parents(&tx, to, err);
	if (ret == 0) {
		char *lo = xasprintf("%s/", from), *hi = xasprintf("%s0", from);
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_str(&p, to);
		pg_p_int(&p, (int64_t)strlen(from) + 1);
		pg_p_str(&p, from);
		pg_p_str(&p, lo);
		pg_p_str(&p, hi);
		/* the mailbox and its children; subscriptions follow */
		ret = pg_run(tx.c, "UPDATE mailbox SET name = $2 || substr(name, $3)"
			     " WHERE user_id = $1 AND (name = $4 OR"
			     " (name COLLATE \"C\" > $5 AND name COLLATE \"C\" < $6))",
			     &p, err);
		if (ret == 0)
			ret = pg_run(tx.c, "WITH old AS (DELETE FROM subscription"
				     " WHERE user_id = $1 AND (name = $4 OR"
				     " (name COLLATE \"C\" > $5 AND name COLLATE \"C\" < $6))"
				     " RETURNING name)"
				     " INSERT INTO subscription SELECT $1,"
				     " $2 || substr(name, $3) FROM old"
				     " ON CONFLICT DO NOTHING", &p, err);
		free(lo);
		free(hi);
		pg_tx_modseq(&tx);
		pg_tx_change(&tx, 0, STORE_CHANGE_MAILBOXES);
	}
	return pg_wend(&tx, ret, err);
}

int pg_mailbox_subscribe(struct store_user *user, const char *name,
			 bool subscribe, struct store_error *err)
{
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	int ret = subscribe_name(&tx, name, subscribe, err);
	pg_tx_modseq(&tx);
	pg_tx_change(&tx, 0, STORE_CHANGE_MAILBOXES);
	return pg_wend(&tx, ret, err);
}

/* The mailbox's highestmodseq becomes this transaction's; uidnext grows
 * to at least uidnext (0: unchanged). */
int pg_mbox_touch(struct pg_tx *tx, uint32_t id, uint32_t uidnext,
		  struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, id);
	pg_p_int(&p, (int64_t)pg_tx_modseq(tx));
	pg_p_int(&p, uidnext);
	return pg_run(tx->c, "UPDATE mailbox SET highestmodseq ="
		      " greatest(highestmodseq, $3), uidnext = greatest(uidnext, $4)"
		      " WHERE user_id = $1 AND id = $2", &p, err);
}

/* ---- roles ---------------------------------------------------------------- */

static int role_restore(struct pg_tx *tx, const char *base, unsigned role,
			struct store_error *err)
{
	char name[64];
	for (int k = 1; k < 100; k++) {
		if (k == 1)
			snprintf(name, sizeof(name), "%s", base);
		else
			snprintf(name, sizeof(name), "%s %d", base, k);
		struct pg_mbox mb;
		int r = pg_mbox_get(tx->user, tx->c, name, 0, &mb, err);
		if (r < 0)
			return -1;
		if (r == 0)
			return create_in(tx, name, role, NULL, err) < 0 ||
			       subscribe_name(tx, name, true, err) < 0 ? -1 : 0;
		if (mb.noselect || mb.special_use != 0)
			continue;
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, tx->user->id);
		pg_p_int(&p, mb.id);
		pg_p_int(&p, role);
		pg_tx_modseq(tx);
		pg_tx_change(tx, 0, STORE_CHANGE_MAILBOXES);
		return pg_run(tx->c, "UPDATE mailbox SET special_use = $3"
			      " WHERE user_id = $1 AND id = $2", &p, err);
	}
	log_warn("store", NULL, "user %lld: no name left for the %s role",
		 (long long)tx->user->id, base);
	return 0;
}

int pg_mailbox_roles_ensure(struct store_user *user, struct store_error *err)
{
	unsigned all = 0;
	for (size_t i = 0; i < N_DEFAULT; i++)
		all |= default_mailboxes[i].special_use;
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	unsigned have = 0;
	int ret = roles_present(&tx, &have, err);
	for (size_t i = 0; ret == 0 && (have & all) != all && i < N_DEFAULT; i++) {
		unsigned role = default_mailboxes[i].special_use;
		if (role != 0 && !(have & role))
			ret = role_restore(&tx, default_mailboxes[i].name, role,
					   err);
	}
	return pg_wend(&tx, ret, err);
}

/* ---- \Recent ---------------------------------------------------------------- */

uint32_t pg_recent_claim(struct store_user *user, uint32_t mailbox_id,
			 uint32_t upto, bool peek)
{
	struct pg_conn *c = pg_conn_get(user->store, NULL);
	if (c == NULL)
		return UINT32_MAX;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, mailbox_id);
	/* Every session with the mailbox selected asks after a delivery:
	 * the first takes the new UIDs, the others find them taken by a
	 * read, not by the UPDATE below, whose row lock is held through a
	 * commit that waits for the synchronous standby (the sessions of a
	 * woken account queued one behind the other, 20 of them ~20 commits
	 * long). recent_upto only grows: a value at or above upto stays. */
	PGresult *r = pg_exec(c, "SELECT recent_upto FROM mailbox WHERE"
			      " user_id = $1 AND id = $2", &p, NULL);
	if (!peek && r != NULL && PQntuples(r) == 1 &&
	    (uint32_t)pg_int(r, 0, 0) < upto) {
		PQclear(r);
		pg_p_int(&p, upto);
		/* the old value, and the new one in the same statement: the
		 * row lock makes each UID one session's */
		r = pg_exec(c, "UPDATE mailbox m SET recent_upto ="
			    " greatest(m.recent_upto, $3) FROM (SELECT recent_upto"
			    " FROM mailbox WHERE user_id = $1 AND id = $2"
			    " FOR UPDATE) old WHERE m.user_id = $1 AND m.id = $2"
			    " RETURNING old.recent_upto", &p, NULL);
	}
	uint32_t first = UINT32_MAX;
	if (r != NULL && PQntuples(r) == 1)
		first = (uint32_t)pg_int(r, 0, 0);
	PQclear(r);
	pg_conn_put(user->store, c);
	return first;
}
