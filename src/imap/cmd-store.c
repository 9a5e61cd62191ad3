/*
 * STORE / UID STORE (RFC 9051 6.4.6) with CONDSTORE's UNCHANGEDSINCE and
 * MODIFIED (RFC 7162 3.1.3). The FETCH responses for changed messages come
 * from the view sync before the tagged reply (the same path that reports
 * other sessions' changes), so a message is never reported twice; .SILENT
 * leaves this command's own changes out of it.
 */
#include <stdlib.h>
#include <string.h>

#include "imap-commands.h"

static int parse_modifiers(const struct imap_arg *l, uint64_t *unchanged_r)
{
	for (; l->type != IMAP_ARG_EOL; l += 2) {
		if (!imap_arg_atom_eq(l, "UNCHANGEDSINCE") ||
		    l[1].type != IMAP_ARG_ATOM || l[1].str.len == 0 ||
		    l[1].str.len > 20)
			return -1;
		uint64_t v = 0;
		for (size_t i = 0; i < l[1].str.len; i++) {
			char ch = l[1].str.ptr[i];
			if (ch < '0' || ch > '9' || __builtin_mul_overflow(v, 10, &v) ||
			    __builtin_add_overflow(v, (uint64_t)(ch - '0'), &v))
				return -1;
		}
		*unchanged_r = v;
	}
	return 0;
}

/* FLAGS, +FLAGS, -FLAGS, each with an optional .SILENT */
static int parse_item(const struct imap_arg *a, enum store_flag_mode *mode_r,
		      bool *silent_r)
{
	if (a->type != IMAP_ARG_ATOM)
		return -1;
	struct slice s = a->str;
	*mode_r = STORE_FLAGS_REPLACE;
	if (s.len > 0 && (s.ptr[0] == '+' || s.ptr[0] == '-')) {
		*mode_r = s.ptr[0] == '+' ? STORE_FLAGS_ADD : STORE_FLAGS_REMOVE;
		s.ptr++;
		s.len--;
	}
	*silent_r = false;
	if (s.len == 12 && slice_eq_ci(s, "FLAGS.SILENT")) {
		*silent_r = true;
		return 0;
	}
	return slice_eq_ci(s, "FLAGS") ? 0 : -1;
}

/* "* seq FETCH (UID u FLAGS (...) [MODSEQ (m)])" for the messages in r
 * the session knows, as they are now. */
static void send_fetches(struct imap_client *c, const struct store_uid_range *r,
			 size_t rn)
{
	struct store_fetch *f;
	struct store_error err = {0};
	if (rn == 0 || store_fetch_begin(imap_client_sel_user(c), c->mailbox, r, rn,
					 STORE_FETCH_FLAGS, &f, &err) < 0)
		return;
	struct buf b;
	buf_init(&b, 0);
	const struct store_msg *m;
	while (store_fetch_next(f, &m, &err) > 0) {
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
}

static struct store_uid_range *uids_ranges(const uint32_t *uids, size_t n,
					   size_t *count_r)
{
	struct store_uid_range *r = xmalloc((n + 1) * sizeof(*r));
	for (size_t i = 0; i < n; i++)
		r[i].lo = r[i].hi = uids[i];
	*count_r = imap_uid_ranges_normalize(r, n);
	return r;
}

/* The UIDs the view knows within r. */
static uint32_t *view_uids(struct imap_client *c, const struct store_uid_range *r,
			   size_t rn, size_t *count_r)
{
	size_t n = 0, cap = 16;
	uint32_t *uids = xmalloc(cap * sizeof(*uids));
	uint32_t count = store_view_count(c->view);
	for (size_t i = 0; i < rn; i++) {
		for (uint32_t seq = store_view_seq_ceil(c->view, r[i].lo);
		     seq <= count && store_view_uid(c->view, seq) <= r[i].hi; seq++) {
			if (n == cap) {
				cap *= 2;
				uids = xrealloc(uids, cap * sizeof(*uids));
			}
			uids[n++] = store_view_uid(c->view, seq);
		}
	}
	*count_r = n;
	return uids;
}

static void modified_reply(struct imap_cmd *cmd, const uint32_t *uids, size_t n)
{
	struct imap_client *c = cmd->client;
	uint32_t *ids = xmalloc((n + 1) * sizeof(*ids));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t v = cmd->uid ? uids[i] : store_view_seq(c->view, uids[i]);
		if (v != 0)
			ids[k++] = v;
	}
	struct buf b;
	buf_init(&b, 0);
	imap_uids_append_set(&b, ids, k);
	imap_cmd_ok(cmd, "[MODIFIED %s] Conditional STORE failed for some messages",
		    b.data);
	buf_free(&b);
	free(ids);
}

/* .SILENT: the client is not told its own change, so it must be able to
 * work it out: only messages unchanged since `known` (a state the client
 * has been told) are changed silently, in one transaction. The others
 * (changed meanwhile by another session) are changed in a second pass
 * and reported with their flags, as an external change would be. Under
 * CONDSTORE each silent change still gets its MODSEQ (RFC 7162 3.1.3),
 * the one this change gave it. asked: the client's UNCHANGEDSINCE, 0 if
 * none. */
static int store_silent(struct imap_client *c, const struct store_uid_range *r,
			size_t rn, struct store_flag_change *ch, uint64_t known,
			uint64_t asked, uint32_t **modified_r,
			size_t *nmodified_r, struct store_error *err)
{
	uint32_t *changed = NULL, *later = NULL;
	size_t nchanged = 0, nlater = 0;
	uint64_t modseq = 0;
	ch->modseq_r = &modseq;
	ch->unchangedsince = asked != 0 && asked < known ? asked : known;
	if (ch->unchangedsince == 0)
		ch->unchangedsince = 1;   /* an empty mailbox: nothing to keep */
	int ret = store_flags_update(imap_client_sel_user(c), c->mailbox, r, rn, ch,
				     &changed, &nchanged, &later, &nlater, err);
	if (ret < 0)
		return -1;
	struct buf b;
	buf_init(&b, 0);
	for (size_t i = 0; i < nchanged; i++) {
		uint32_t seq = store_view_seq(c->view, changed[i]);
		imap_client_told(c, changed[i], modseq);
		if (seq != 0 && (c->enabled & IMAP_ENABLED_CONDSTORE)) {
			imap_client_fetch_head(c, seq, changed[i], &b);
			buf_printf(&b, "UID %u MODSEQ (%llu))\r\n", changed[i],
				   (unsigned long long)modseq);
		}
	}
	imap_client_write(c, b.data, b.len);
	buf_free(&b);
	free(changed);
	if (nlater == 0 || (asked != 0 && asked <= known)) {
		/* the client's own condition failed for these */
		*modified_r = later;
		*nmodified_r = nlater;
		return 0;
	}
	/* changed since `known` but perhaps not since `asked` */
	size_t lrn;
	struct store_uid_range *lr = uids_ranges(later, nlater, &lrn);
	free(later);
	ch->unchangedsince = asked;
	ch->modseq_r = NULL;
	ret = store_flags_update(imap_client_sel_user(c), c->mailbox, lr, lrn, ch, NULL,
				 NULL, modified_r, nmodified_r, err);
	if (ret == 0)
		send_fetches(c, lr, lrn);
	free(lr);
	return ret;
}

void cmd_store(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	struct store_flag_change ch = {0};
	bool silent;
	if (a[0].type == IMAP_ARG_EOL || a[1].type == IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] STORE needs a set, an item and flags");
		return;
	}
	const struct imap_arg *item = &a[1];
	if (item->type == IMAP_ARG_LIST) {
		if (parse_modifiers(item->list, &ch.unchangedsince) < 0) {
			imap_cmd_bad(cmd, "[CLIENTBUG] Invalid STORE modifier");
			return;
		}
		item++;
	}
	if (parse_item(item, &ch.mode, &silent) < 0 || item[1].type == IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] STORE needs FLAGS, +FLAGS or -FLAGS and flags");
		return;
	}
	/* flags as one list, or as atoms to the end of the line */
	const struct imap_arg *fl = &item[1];
	struct imap_arg wrap = {.type = IMAP_ARG_LIST};
	if (fl->type != IMAP_ARG_LIST) {
		wrap.list = (struct imap_arg *)fl;
		wrap.list_count = imap_args_count(fl);
		fl = &wrap;
	} else if (fl[1].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] Unexpected arguments after the flags");
		return;
	}
	const char *error;
	const char **kw;
	if (imap_parse_flags(fl, &ch.flags, &kw, &ch.keyword_count, &error) < 0) {
		imap_cmd_bad(cmd, "[CLIENTBUG] %s", error);
		return;
	}
	ch.keywords = kw;
	if (c->readonly) {
		free(kw);
		imap_cmd_no(cmd, "[READ-ONLY] Mailbox is read-only");
		return;
	}
	if (item != &a[1])
		c->enabled |= IMAP_ENABLED_CONDSTORE;   /* RFC 7162 3.1 */
	struct store_uid_range *r;
	size_t rn;
	if (imap_cmd_seqset(cmd, &a[0], &r, &rn) < 0) {
		free(kw);
		return;
	}
	/* Other sessions' changes first (RFC 3501 6.4.6: external changes
	 * are reported whatever .SILENT says). Afterwards the client knows
	 * the state of every message at the view's modseq. */
	imap_client_sync(c, cmd->uid);
	uint64_t known = store_view_info(c->view)->highestmodseq;
	uint64_t asked = ch.unchangedsince;
	uint32_t *changed = NULL, *modified = NULL;
	size_t nchanged = 0, nmodified = 0;
	struct store_error err = {0};
	int ret = 0;
	if (item != &a[1] && asked == 0) {
		/* RFC 7162 3.1.3: every message has a modseq above 0, so
		 * UNCHANGEDSINCE 0 fails for all of them (the store reads 0
		 * as "no condition") */
		modified = view_uids(c, r, rn, &nmodified);
	} else if (rn > 0 && !silent) {
		ret = store_flags_update(imap_client_sel_user(c), c->mailbox, r, rn, &ch,
					 &changed, &nchanged, &modified, &nmodified,
					 &err);
		/* the messages' flags as they are now, once each: the sync
		 * before the tagged reply leaves out what they tell */
		if (ret == 0)
			send_fetches(c, r, rn);
	} else if (rn > 0) {
		ret = store_silent(c, r, rn, &ch, known, asked, &modified,
				   &nmodified, &err);
	}
	if (ret < 0)
		imap_cmd_store_error(cmd, &err);
	else if (nmodified > 0)
		modified_reply(cmd, modified, nmodified);
	else
		imap_cmd_ok(cmd, "STORE completed");
	free(changed);
	free(modified);
	free(kw);
	free(r);
}
