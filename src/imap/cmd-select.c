/*
 * SELECT / EXAMINE (RFC 9051 6.3.2-3) with the CONDSTORE and QRESYNC
 * parameters (RFC 7162 3.1.8, 3.2.5), CLOSE and UNSELECT (RFC 3691).
 *
 * QRESYNC: with the client's (uidvalidity modseq [known-uids]) the reply
 * holds only what changed since modseq: VANISHED (EARLIER) from the
 * store's expunge log and FETCH for messages whose modseq is higher, so
 * the cost follows the changes, not the mailbox size.
 */
#include <stdlib.h>
#include <string.h>

#include "imap-commands.h"
#include "imap-context.h"
#include "imap-server.h"
#include "log.h"
#include "u32.h"

/* Leaves the selected state (without expunging). */
void imap_client_unselect(struct imap_client *c)
{
	if (c->view != NULL)
		store_view_close(&c->view);
	free(c->mailbox);
	c->mailbox = NULL;
	atomic_store(&c->selected_id, 0);
	imap_acl_unselect(c);
	imap_context_clear(c);
	imap_client_set_searchres(c, NULL, 0);
	c->readonly = false;
	if (c->state == IMAP_STATE_SELECTED)
		c->state = IMAP_STATE_AUTH;
}

struct qresync {
	bool given;
	uint32_t uidvalidity;
	uint64_t modseq;
	struct store_uid_range *known;
	size_t known_count;
};

static int parse_u64(const struct imap_arg *a, uint64_t *v_r)
{
	if (a->type != IMAP_ARG_ATOM || a->str.len == 0 || a->str.len > 20)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < a->str.len; i++) {
		char ch = a->str.ptr[i];
		if (ch < '0' || ch > '9' ||
		    __builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(ch - '0'), &v))
			return -1;
	}
	*v_r = v;
	return 0;
}

/* A UID set without "*" or "$" as plain ranges (for known-uids). */
static int parse_uid_set(const struct imap_arg *a,
			 struct store_uid_range **r_r, size_t *n_r)
{
	struct imap_seqset set;
	if (a->type != IMAP_ARG_ATOM || imap_seqset_parse(a->str, false, &set) < 0)
		return -1;
	struct store_uid_range *r = xmalloc((set.count + 1) * sizeof(*r));
	for (size_t i = 0; i < set.count; i++) {
		uint32_t lo = set.ranges[i].lo, hi = set.ranges[i].hi;
		if (lo == 0 || hi == 0) {
			free(r);
			imap_seqset_free(&set);
			return -1;
		}
		r[i].lo = lo < hi ? lo : hi;
		r[i].hi = lo < hi ? hi : lo;
	}
	*n_r = imap_uid_ranges_normalize(r, set.count);
	*r_r = r;
	imap_seqset_free(&set);
	return 0;
}

/* (CONDSTORE) / (QRESYNC (uidvalidity modseq [known-uids [seq-match]])) */
static const char *parse_select_params(struct imap_client *c,
				       const struct imap_arg *list,
				       struct qresync *q)
{
	for (const struct imap_arg *p = list; p->type != IMAP_ARG_EOL; p++) {
		if (imap_arg_atom_eq(p, "CONDSTORE")) {
			c->enabled |= IMAP_ENABLED_CONDSTORE;
			continue;
		}
		if (!imap_arg_atom_eq(p, "QRESYNC"))
			return "Unknown SELECT parameter";
		if (!(c->enabled & IMAP_ENABLED_QRESYNC))
			return "QRESYNC must be enabled first (ENABLE QRESYNC)";
		p++;
		if (p->type != IMAP_ARG_LIST || p->list_count < 2 || q->given)
			return "Invalid QRESYNC parameter";
		const struct imap_arg *l = p->list;
		uint64_t uv;
		if (parse_u64(&l[0], &uv) < 0 || uv == 0 || uv > UINT32_MAX ||
		    parse_u64(&l[1], &q->modseq) < 0 || q->modseq == 0)
			return "Invalid QRESYNC uidvalidity or modseq";
		q->uidvalidity = (uint32_t)uv;
		size_t i = 2;
		if (l[i].type == IMAP_ARG_ATOM) {
			if (parse_uid_set(&l[i], &q->known, &q->known_count) < 0)
				return "Invalid QRESYNC known UIDs";
			i++;
		}
		/* seq-match-data only narrows VANISHED when the expunge log
		 * is incomplete; we report every possible UID instead, which
		 * RFC 7162 3.2.5.2 allows. Its syntax is still checked. */
		if (l[i].type == IMAP_ARG_LIST) {
			if (c->enabled & IMAP_ENABLED_UIDONLY)
				return "[UIDREQUIRED] No sequence match data under UIDONLY";
			if (l[i].list_count != 2 || l[i].list[0].type != IMAP_ARG_ATOM ||
			    l[i].list[1].type != IMAP_ARG_ATOM)
				return "Invalid QRESYNC sequence match data";
			i++;
		}
		if (l[i].type != IMAP_ARG_EOL)
			return "Invalid QRESYNC parameter";
		q->given = true;
	}
	return NULL;
}

/* From the store's index of unseen messages, not a scan. */
static uint32_t first_unseen(struct imap_client *c)
{
	struct store_error err;
	return store_view_first_unseen(c->view, &err);
}

static void send_flags(struct imap_client *c)
{
	char **kw = NULL;
	size_t kn = 0;
	struct store_error err;
	/* read with the view, in the same snapshot */
	if (store_view_take_keywords(c->view, &kw, &kn))
		;
	else if (store_mailbox_keywords(imap_client_sel_user(c), c->mailbox, &kw, &kn, &err) < 0) {
		kw = NULL;
		kn = 0;
	}
	imap_client_set_flags(c, kw, kn);
}

static struct store_uid_range *uids_to_ranges(const uint32_t *uids, size_t n,
					      size_t *count_r)
{
	struct store_uid_range *r = xmalloc((n + 1) * sizeof(*r));
	for (size_t i = 0; i < n; i++)
		r[i].lo = r[i].hi = uids[i];
	*count_r = imap_uid_ranges_normalize(r, n);
	return r;
}

/* Sends "* seq FETCH (UID FLAGS MODSEQ)" for messages in ranges. */
static int send_fetch_flags(struct imap_client *c,
			    const struct store_uid_range *r, size_t n)
{
	struct store_fetch *f;
	struct store_error err = {0};
	if (n == 0)
		return 0;
	if (store_fetch_begin(imap_client_sel_user(c), c->mailbox, r, n,
			      STORE_FETCH_FLAGS, &f, &err) < 0)
		return -1;
	struct buf b;
	buf_init(&b, 0);
	const struct store_msg *m;
	int ret;
	while ((ret = store_fetch_next(f, &m, &err)) > 0) {
		uint32_t seq = store_view_seq(c->view, m->uid);
		if (seq == 0)
			continue;
		imap_client_fetch_flags(c, seq, m, true, &b);
		if (b.len > 16384) {
			imap_client_write(c, b.data, b.len);
			buf_reset(&b);
		}
	}
	store_fetch_end(&f);
	imap_client_write(c, b.data, b.len);
	buf_free(&b);
	return ret < 0 ? -1 : 0;
}

/* RFC 7162 3.2.5.1: VANISHED (EARLIER) and FETCH for what changed since
 * the client's modseq, if its uidvalidity is still ours. */
static int qresync_reply(struct imap_client *c, const struct qresync *q)
{
	const struct store_mailbox_info *info = store_view_info(c->view);
	struct store_error err = {0};
	if (q->uidvalidity != info->uidvalidity)
		return 0;
	uint32_t *uids = NULL;
	size_t n = 0;
	bool complete = true;
	if (store_expunged_since(imap_client_sel_user(c), c->mailbox, q->modseq, q->known,
				 q->known_count, &uids, &n, &complete, &err) < 0)
		return -1;
	/* The log is read after the view was loaded: a message expunged in
	 * between is still in the view (and in the EXISTS just sent). It
	 * is not EARLIER: the sync before the tagged OK reports it as a
	 * plain VANISHED, which also lowers the count. */
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		if (store_view_seq(c->view, uids[i]) == 0)
			uids[w++] = uids[i];
	}
	n = w;
	if (n > 0) {
		qsort(uids, n, sizeof(*uids), u32_cmp);
		struct buf b;
		buf_init(&b, 0);
		buf_append_str(&b, "* VANISHED (EARLIER) ");
		imap_uids_append_set(&b, uids, n);
		buf_append_str(&b, "\r\n");
		imap_client_write(c, b.data, b.len);
		buf_free(&b);
	}
	free(uids);
	uids = NULL;
	if (store_changed_since(imap_client_sel_user(c), c->mailbox, q->modseq, NULL, 0,
				&uids, &n, &err) < 0)
		return -1;
	size_t rn;
	struct store_uid_range *r = uids_to_ranges(uids, n, &rn);
	free(uids);
	int ret = send_fetch_flags(c, r, rn);
	free(r);
	return ret;
}

static void do_select(struct imap_cmd *cmd, bool readonly)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	struct qresync q = {0};
	const char *error = NULL;
	if (!imap_arg_is_astring(&a[0]) ||
	    (a[1].type != IMAP_ARG_EOL &&
	     (a[1].type != IMAP_ARG_LIST || a[2].type != IMAP_ARG_EOL))) {
		imap_cmd_bad(cmd, "[CLIENTBUG] %s needs a mailbox name and optional parameters",
			     cmd->name);
		return;
	}
	if (a[1].type == IMAP_ARG_LIST &&
	    (error = parse_select_params(c, a[1].list, &q)) != NULL) {
		free(q.known);
		imap_cmd_bad(cmd, "%s%s", error[0] == '[' ? "" : "[CLIENTBUG] ",
			     error);
		return;
	}
	bool was_selected = c->view != NULL;
	/* RFC 9051 6.3.2: a failed SELECT leaves no mailbox selected */
	imap_client_unselect(c);
	if (was_selected)
		imap_client_untagged(c, "OK [CLOSED] Previous mailbox closed");
	struct imap_mbref ref;
	if (imap_mbref_resolve(c, a[0].str.ptr, a[0].str.len, &ref, &error) < 0) {
		free(q.known);
		imap_cmd_no(cmd, "%s", error);
		return;
	}
	char *name = ref.name;
	struct store_error err = {0};
	if (store_view_open(ref.user, name,
			    readonly ? STORE_VIEW_READONLY : 0, &c->view, &err) < 0) {
		free(q.known);
		imap_cmd_ref_error(cmd, &ref, &err);
		imap_mbref_free(&ref);
		return;
	}
	/* another account's mailbox: RFC 4314 5.2 (READ-ONLY unless i, e
	 * or a flag right) and its owner's changes */
	if (ref.shared && !readonly)
		readonly = !imap_acl_writable(c, &ref);
	if (ref.shared)
		imap_acl_select(c, &ref);
	ref.name = NULL;
	c->mailbox = name;
	imap_mbref_free(&ref);
	c->readonly = readonly;
	c->state = IMAP_STATE_SELECTED;
	const struct store_mailbox_info *info = store_view_info(c->view);
	atomic_store(&c->selected_owner, store_user_id(imap_client_sel_user(c)));
	atomic_store(&c->selected_id, info->id);
	bool rev2 = (c->enabled & IMAP_ENABLED_IMAP4REV2) != 0;

	c->safe_modseq = c->reported_modseq = info->highestmodseq;
	send_flags(c);
	imap_client_untagged(c, "%u EXISTS", store_view_count(c->view));
	if (!rev2) {
		imap_client_untagged(c, "%u RECENT", store_view_recent_count(c->view));
		/* [UNSEEN n] is a message number: not under UIDONLY */
		uint32_t unseen = (c->enabled & IMAP_ENABLED_UIDONLY) ? 0
				  : first_unseen(c);
		if (unseen > 0)
			imap_client_untagged(c, "OK [UNSEEN %u] First unseen", unseen);
	}
	imap_client_untagged(c, "OK [UIDVALIDITY %u] UIDs valid", info->uidvalidity);
	imap_client_untagged(c, "OK [UIDNEXT %u] Predicted next UID", info->uidnext);
	imap_client_untagged(c, "OK [HIGHESTMODSEQ %llu] Highest",
			     (unsigned long long)info->highestmodseq);
	if (info->objectid[0] != '\0')
		imap_client_untagged(c, "OK [MAILBOXID (%s)] Ok", info->objectid);
	if (rev2) {
		/* RFC 9051 6.3.2: the mailbox name as the server has it */
		struct buf b;
		buf_init(&b, 0);
		buf_printf(&b, "* LIST () \"%c\" ", imap_client_separator(c));
		imap_client_mailbox_out(c, name, &b);
		buf_append_str(&b, "\r\n");
		imap_client_write(c, b.data, b.len);
		buf_free(&b);
	}
	if (q.given && qresync_reply(c, &q) < 0)
		log_warn("imap", c->sid, "QRESYNC: could not read changes");
	free(q.known);
	imap_cmd_ok(cmd, "[%s] %s completed", readonly ? "READ-ONLY" : "READ-WRITE",
		    cmd->name);
}

void cmd_select(struct imap_cmd *cmd)
{
	do_select(cmd, false);
}

void cmd_examine(struct imap_cmd *cmd)
{
	do_select(cmd, true);
}

void cmd_close(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	if (cmd->args[0].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] CLOSE takes no arguments");
		return;
	}
	/* RFC 9051 6.4.1: expunge silently, unless read-only */
	if (!c->readonly) {
		struct store_error err = {0};
		uint32_t *uids = NULL;
		size_t n = 0;
		if (store_expunge(imap_client_sel_user(c), c->mailbox, NULL, 0, false, &uids,
				  &n, &err) < 0)
			log_warn("imap", c->sid, "CLOSE: expunge failed: %s", err.msg);
		free(uids);
	}
	imap_client_unselect(c);
	imap_cmd_ok(cmd, "CLOSE completed");
}

void cmd_unselect(struct imap_cmd *cmd)
{
	if (cmd->args[0].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] UNSELECT takes no arguments");
		return;
	}
	imap_client_unselect(cmd->client);
	imap_cmd_ok(cmd, "UNSELECT completed");
}
