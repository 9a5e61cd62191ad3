/*
 * The maildrop (RFC 1939 5-6): INBOX as it was at login, minus the
 * messages hidden from POP3, with the commands of the TRANSACTION state
 * and the UPDATE state entered by QUIT. Message numbers refer to the
 * snapshot for the whole session; mail delivered meanwhile waits for the
 * next login. DELE only marks; QUIT applies every mark in one store
 * transaction according to the account's pop3_delete policy, so a
 * dropped connection deletes nothing.
 *
 * UIDL is "%08X%08X" of UID and UIDVALIDITY: stable across sessions and
 * restarts, unique within the account, and the same string as Dovecot's
 * default pop3_uidl_format (%08Xu%08Xv), so a POP3 client moved over from
 * Dovecot with its UIDs kept does not download everything again. A UIDL
 * kept by an import (another POP3 server's, a dovecot-uidlist P field) is
 * given instead.
 */
#include "pop3-private.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "u32.h"

/* last_lines before the first TOP or RETR */
#define LAST_NONE (-2L)

int pop3_maildrop_open(struct pop3_session *s, struct store_error *err)
{
	struct store_view *view = NULL;
	struct store_fetch *fetch = NULL;
	const struct store_msg *m;
	int r;

	if (store_user_open(s->server->store, s->user.id, &s->mail, err) < 0)
		return -1;
	store_subscribe(s->server->store, s->user.id, pop3_store_changed, s,
			&s->sub);
	/* READONLY: POP3 must not take \Recent away from IMAP sessions. */
	if (store_view_open(s->mail, "INBOX", STORE_VIEW_READONLY, &view, err) < 0)
		return -1;
	const struct store_mailbox_info *info = store_view_info(view);
	uint32_t n = store_view_count(view);
	s->uidvalidity = info->uidvalidity;
	s->msgs = xcalloc(n, sizeof(*s->msgs));
	s->count = 0;
	s->last_lines = LAST_NONE;
	if (n == 0) {
		store_view_close(&view);
		s->out = xmalloc(POP3_OUT_CHUNK);
		return 0;
	}
	/* The view fixes which UIDs are in the snapshot; the fetch gives
	 * their sizes and POP3 marks. Messages delivered after the view was
	 * taken are above its last UID and skipped. */
	struct store_uid_range range = {store_view_uid(view, 1), store_view_uid(view, n)};
	if (store_fetch_begin(s->mail, "INBOX", &range, 1,
			      STORE_FETCH_SIZE | STORE_FETCH_POP3, &fetch, err) < 0) {
		store_view_close(&view);
		return -1;
	}
	while ((r = store_fetch_next(fetch, &m, err)) > 0) {
		if (m->pop3_hidden || store_view_seq(view, m->uid) == 0 || s->count >= n)
			continue;
		struct pop3_msg *pm = &s->msgs[s->count++];
		pm->uid = m->uid;
		pm->size = m->size;
		pm->retrieved = m->pop3_first_retr != 0;
		pm->uidl = m->pop3_uidl != NULL ? xstrdup(m->pop3_uidl) : NULL;
		s->total_size += m->size;
	}
	store_fetch_end(&fetch);
	store_view_close(&view);
	if (r < 0)
		return -1;
	s->out = xmalloc(POP3_OUT_CHUNK);
	return 0;
}

void pop3_maildrop_close(struct pop3_session *s)
{
	store_unsubscribe(&s->sub);
	pop3_retr_pending_flush(s);
	free(s->retr_pending);
	s->retr_pending = NULL;
	s->retr_pending_count = s->retr_pending_cap = 0;
	pop3_ahead_clear(s);
	/* What was downloaded was read, whether or not QUIT came. */
	pop3_seen_flush(s);
	free(s->seen);
	s->seen = NULL;
	s->seen_count = s->seen_cap = 0;
	if (s->mail != NULL)
		store_user_unref(&s->mail);
	s->mail = NULL;
	for (uint32_t i = 0; s->msgs != NULL && i < s->count; i++)
		free(s->msgs[i].uidl);
	free(s->msgs);
	s->msgs = NULL;
	s->count = s->deleted_count = 0;
	s->total_size = s->deleted_size = 0;
	free(s->out);
	s->out = NULL;
	s->out_len = 0;
	if (s->locked) {
		pop3_unlock(s->server, s->user.id);
		s->locked = false;
	}
}

/* ---- arguments ------------------------------------------------------ */

/* A decimal number, digits only, without overflow. */
static bool parse_number(const char *p, size_t len, uint64_t max, uint64_t *v_r)
{
	uint64_t v = 0;

	if (len == 0 || len > 20)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(p[i] - '0'), &v))
			return false;
	}
	if (v > max)
		return false;
	*v_r = v;
	return true;
}

/* Parses a message number argument (RFC 1939: "msg"); on error replies
 * and returns NULL. Deleted messages do not exist for the client. */
static struct pop3_msg *arg_message(struct pop3_session *s, const char *arg,
				    size_t len, uint32_t *num_r)
{
	uint64_t num;

	if (!parse_number(arg, len, UINT32_MAX, &num)) {
		pop3_reply(s, "-ERR Invalid message number.");
		return NULL;
	}
	if (num == 0 || num > s->count) {
		pop3_reply(s, "-ERR There is no message %" PRIu64 ".", num);
		return NULL;
	}
	struct pop3_msg *m = &s->msgs[num - 1];
	if (m->deleted) {
		pop3_reply(s, "-ERR Message %" PRIu64 " is already deleted.", num);
		return NULL;
	}
	*num_r = (uint32_t)num;
	return m;
}

/* Splits args into words; returns how many (up to max); -1 if more. */
static int split_args(const char *args, struct slice *words, int max)
{
	int n = 0;
	const char *p = args;

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		size_t len = strcspn(p, " ");
		if (n == max)
			return -1;
		words[n++] = slice_make(p, len);
		p += len;
	}
	return n;
}

/* ---- STAT, LIST, UIDL ----------------------------------------------- */

void pop3_cmd_stat(struct pop3_session *s, const char *args)
{
	if (*args != '\0') {
		pop3_reply(s, "-ERR STAT takes no arguments.");
		return;
	}
	pop3_reply(s, "+OK %u %" PRIu64, s->count - s->deleted_count,
		   s->total_size - s->deleted_size);
}

static void format_uidl(const struct pop3_session *s, const struct pop3_msg *m,
			char *out, size_t size)
{
	if (m->uidl != NULL)
		snprintf(out, size, "%s", m->uidl);
	else
		snprintf(out, size, "%08X%08X", m->uid, s->uidvalidity);
}

/* LIST and UIDL: one message, or a multi-line listing of all that are
 * not deleted, through the session buffer so a 100,000-message maildrop
 * streams in chunks with back-pressure. */
static void list_common(struct pop3_session *s, const char *args, bool uidl)
{
	struct slice w[2];
	int n = split_args(args, w, 1);
	char id[80];
	uint32_t num;

	if (n < 0) {
		pop3_reply(s, "-ERR Too many arguments.");
		return;
	}
	if (n == 1) {
		struct pop3_msg *m = arg_message(s, w[0].ptr, w[0].len, &num);
		if (m == NULL)
			return;
		if (uidl) {
			format_uidl(s, m, id, sizeof(id));
			pop3_reply(s, "+OK %u %s", num, id);
		} else {
			pop3_reply(s, "+OK %u %" PRIu64, num, m->size);
		}
		return;
	}
	pop3_reply(s, "+OK %u messages", s->count - s->deleted_count);
	for (uint32_t i = 0; i < s->count; i++) {
		const struct pop3_msg *m = &s->msgs[i];
		char line[112];
		int len;
		if (m->deleted)
			continue;
		if (uidl) {
			format_uidl(s, m, id, sizeof(id));
			len = snprintf(line, sizeof(line), "%u %s\r\n", i + 1, id);
		} else {
			len = snprintf(line, sizeof(line), "%u %" PRIu64 "\r\n", i + 1, m->size);
		}
		if (pop3_write(s, line, (size_t)len) < 0)
			return;
	}
	pop3_write(s, ".\r\n", 3);
}

void pop3_cmd_list(struct pop3_session *s, const char *args)
{
	list_common(s, args, false);
}

void pop3_cmd_uidl(struct pop3_session *s, const char *args)
{
	list_common(s, args, true);
}

/* ---- RETR, TOP ------------------------------------------------------ */

/* Whether TOP num lines / RETR num (lines -1) is the next step of a walk
 * through the maildrop: the same command for the message after the last
 * one asked for, DELE'd ones skipped. */
static bool walk_next(const struct pop3_session *s, uint32_t num, long lines)
{
	if (lines != s->last_lines || num <= s->last_num ||
	    num - s->last_num > POP3_AHEAD_MAX + 1)
		return false;
	for (uint32_t i = s->last_num + 1; i < num; i++)
		if (!s->msgs[i - 1].deleted)
			return false;
	return true;
}

static void note_walk(struct pop3_session *s, uint32_t num, long lines)
{
	s->walking = walk_next(s, num, lines);
	s->last_num = num;
	s->last_lines = lines;
}

/* The message's bytes as TOP (lines >= 0) or RETR (-1) send them: TOP n
 * 0 reads only the header. */
static int open_message(struct pop3_session *s, const struct pop3_msg *m,
			long lines, struct store_blob *blob,
			struct store_error *err)
{
	return lines == 0
		? store_blob_open_head(s->mail, "INBOX", m->uid, blob, err)
		: store_blob_open(s->mail, "INBOX", m->uid, blob, err);
}

static void status_line(const struct pop3_msg *m, long lines, char *out,
			size_t size)
{
	if (lines < 0)
		snprintf(out, size, "+OK %" PRIu64 " octets", m->size);
	else
		snprintf(out, size, "+OK");
}

/* After a RETR's reply: \Seen at the session's end (mark_seen), and the
 * first retrieval recorded. pop3_retention_days counts from the first
 * RETR; TOP does not count, a download does. Recorded whatever the policy
 * is now, so retention turned on later counts from the real first
 * download. Cheap: the store writes it with the account's next commit.
 * On the I/O thread (a reply from the read-ahead) that store call waits
 * for the next worker task. */
static void retrieved(struct pop3_session *s, struct pop3_msg *m, bool worker)
{
	struct store_error err = {0};

	if (s->server->mark_seen && !m->seen_marked) {
		m->seen_marked = true;
		pop3_seen_add(s, m->uid);
	}
	if (m->retrieved)
		return;
	if (!worker) {
		if (s->retr_pending_count == s->retr_pending_cap) {
			s->retr_pending_cap = s->retr_pending_cap
						      ? s->retr_pending_cap * 2 : 16;
			s->retr_pending = xrealloc(s->retr_pending,
						   s->retr_pending_cap *
							   sizeof(*s->retr_pending));
		}
		s->retr_pending[s->retr_pending_count++] = m->uid;
		m->retrieved = true;
		return;
	}
	if (store_pop3_retrieved(s->mail, m->uid, time(NULL), &err) < 0)
		log_warn("pop3", s->sid, "uid %u: cannot record retrieval: %s",
			 m->uid, err.msg);
	else {
		m->retrieved = true;
		s->retr_marks++;
	}
}

void pop3_retr_pending_flush(struct pop3_session *s)
{
	struct store_error err = {0};

	for (size_t i = 0; s->mail != NULL && i < s->retr_pending_count; i++) {
		uint32_t uid = s->retr_pending[i];
		if (store_pop3_retrieved(s->mail, uid, time(NULL), &err) < 0)
			log_warn("pop3", s->sid, "uid %u: cannot record "
				 "retrieval: %s", uid, err.msg);
		else
			s->retr_marks++;
	}
	s->retr_pending_count = 0;
}

static void send_message(struct pop3_session *s, struct pop3_msg *m,
			 uint32_t num, long lines)
{
	struct store_blob blob;
	struct store_error err = {0};

	note_walk(s, num, lines);
	if (open_message(s, m, lines, &blob, &err) < 0) {
		if (err.kind == STORE_ERR_NOTFOUND) {
			pop3_reply(s, "-ERR Message %u was removed by another session.", num);
		} else {
			log_error("pop3", s->sid, "uid %u: %s", m->uid, err.msg);
			pop3_reply(s, "-ERR [SYS/TEMP] Cannot read message %u (session %s).",
				   num, s->sid);
		}
		return;
	}
	char status[64];
	status_line(m, lines, status, sizeof(status));
	int r = pop3_stream_message(s, status, blob.data, blob.len, lines);
	store_blob_close(&blob);
	if (r < 0 || lines >= 0)
		return;
	retrieved(s, m, true);
}

/* ---- read-ahead ----------------------------------------------------- */

void pop3_ahead_clear(struct pop3_session *s)
{
	free(s->ahead);
	s->ahead = NULL;
	s->ahead_count = s->ahead_next = 0;
	buf_free(&s->ahead_buf);
}

void pop3_ahead_fill(struct pop3_session *s)
{
	if (s->state != POP3_STATE_TRANSACTION || !s->walking) {
		s->ahead_window = 0;
		return;
	}
	if (s->ahead_next < s->ahead_count)
		return;
	pop3_ahead_clear(s);
	/* the batch before was used to its end: the walk goes on */
	uint32_t window = s->ahead_window == 0 ? POP3_AHEAD_MAX
			  : s->ahead_window >= POP3_AHEAD_WINDOW_MAX / 2
				  ? POP3_AHEAD_WINDOW_MAX
				  : s->ahead_window * 2;
	s->ahead_window = window;
	long lines = s->last_lines;
	s->ahead = xcalloc(window, sizeof(*s->ahead));
	for (uint32_t num = s->last_num + 1;
	     num <= s->count && s->ahead_count < window; num++) {
		struct pop3_msg *m = &s->msgs[num - 1];
		struct store_blob blob;
		struct store_error err = {0};
		if (m->deleted)
			continue;
		/* a RETR bigger than what is left streams from its worker */
		if (lines < 0 && m->size > POP3_AHEAD_BYTES - s->ahead_buf.len)
			break;
		/* an error is the command's to report when it comes */
		if (open_message(s, m, lines, &blob, &err) < 0)
			break;
		/* a message (or header) bigger than what is left is not
		 * read ahead: rendering it would hold its size in memory */
		if (blob.len > POP3_AHEAD_BYTES - s->ahead_buf.len) {
			store_blob_close(&blob);
			break;
		}
		char status[64];
		status_line(m, lines, status, sizeof(status));
		size_t off = s->ahead_buf.len;
		pop3_render_message(&s->ahead_buf, status, blob.data, blob.len,
				    lines);
		store_blob_close(&blob);
		if (s->ahead_buf.len > POP3_AHEAD_BYTES) {
			s->ahead_buf.len = off;
			break;
		}
		s->ahead[s->ahead_count++] = (struct pop3_ahead){
			.num = num, .lines = lines, .off = off,
			.len = s->ahead_buf.len - off};
	}
	if (s->ahead_count == 0)
		pop3_ahead_clear(s);
	else
		log_debug("pop3", s->sid, "read-ahead: %u replies, %zu bytes",
			  s->ahead_count, s->ahead_buf.len);
}

bool pop3_ahead_answer(struct pop3_session *s, bool retr, const char *args)
{
	struct slice w[3];
	uint64_t num, lines = 0;
	int n = split_args(args, w, 2);

	if (s->ahead_next >= s->ahead_count || n != (retr ? 1 : 2) ||
	    !parse_number(w[0].ptr, w[0].len, UINT32_MAX, &num) ||
	    (!retr && !parse_number(w[1].ptr, w[1].len, INT32_MAX, &lines)))
		return false;
	const struct pop3_ahead *a = &s->ahead[s->ahead_next];
	long l = retr ? -1 : (long)lines;
	if (a->num != num || a->lines != l || s->msgs[num - 1].deleted) {
		/* the client went elsewhere: its command goes to a worker,
		 * and a walk after it starts with a small batch again */
		pop3_ahead_clear(s);
		s->ahead_window = 0;
		return false;
	}
	metrics_count("loft_commands_total", "Commands answered, per protocol "
		      "and result.", "proto=\"pop3\",result=\"ok\"");
	/* a big reply goes to the connection as it is; small ones gather in
	 * the session buffer, one write for a run of them */
	if (a->len < POP3_OUT_CHUNK / 4)
		pop3_write(s, s->ahead_buf.data + a->off, a->len);
	else if (pop3_flush(s) == 0)
		net_conn_write(s->conn, s->ahead_buf.data + a->off, a->len);
	s->ahead_next++;
	s->walking = true;
	s->last_num = (uint32_t)num;
	s->last_lines = l;
	if (retr)
		retrieved(s, &s->msgs[num - 1], false);
	if (s->ahead_next == s->ahead_count)
		pop3_ahead_clear(s);
	return true;
}

void pop3_cmd_retr(struct pop3_session *s, const char *args)
{
	struct slice w[2];
	uint32_t num;
	int n = split_args(args, w, 1);

	if (n != 1) {
		pop3_reply(s, "-ERR RETR needs a message number.");
		return;
	}
	struct pop3_msg *m = arg_message(s, w[0].ptr, w[0].len, &num);
	if (m != NULL)
		send_message(s, m, num, -1);
}

void pop3_cmd_top(struct pop3_session *s, const char *args)
{
	struct slice w[2];
	uint32_t num;
	uint64_t lines;
	int n = split_args(args, w, 2);

	if (n != 2) {
		pop3_reply(s, "-ERR TOP needs a message number and a line count.");
		return;
	}
	struct pop3_msg *m = arg_message(s, w[0].ptr, w[0].len, &num);
	if (m == NULL)
		return;
	if (!parse_number(w[1].ptr, w[1].len, INT32_MAX, &lines)) {
		pop3_reply(s, "-ERR Invalid line count.");
		return;
	}
	send_message(s, m, num, (long)lines);
}

/* ---- DELE, RSET, NOOP ----------------------------------------------- */

/* Whether the message is still in INBOX and visible to POP3: one that
 * another session (IMAP, a loftctl run) removed cannot be deleted again,
 * and QUIT must not count it. Replies -ERR when it is gone. */
static bool still_there(struct pop3_session *s, struct pop3_msg *m, uint32_t num)
{
	struct store_uid_range r = {m->uid, m->uid};
	struct store_fetch *f = NULL;
	const struct store_msg *sm;
	struct store_error err = {0};

	int got = store_fetch_begin(s->mail, "INBOX", &r, 1, STORE_FETCH_POP3, &f, &err);
	if (got == 0)
		got = store_fetch_next(f, &sm, &err);
	if (got > 0 && sm->pop3_hidden)
		got = 0;
	store_fetch_end(&f);
	if (got < 0) {
		log_error("pop3", s->sid, "uid %u: %s", m->uid, err.msg);
		pop3_reply(s, "-ERR [SYS/TEMP] Cannot read message %u (session %s).",
			   num, s->sid);
		return false;
	}
	if (got == 0) {
		pop3_reply(s, "-ERR Message %u was removed by another session.", num);
		return false;
	}
	return true;
}

void pop3_cmd_dele(struct pop3_session *s, const char *args)
{
	struct slice w[2];
	uint32_t num;
	int n = split_args(args, w, 1);

	if (n != 1) {
		pop3_reply(s, "-ERR DELE needs a message number.");
		return;
	}
	struct pop3_msg *m = arg_message(s, w[0].ptr, w[0].len, &num);
	if (m == NULL || !still_there(s, m, num))
		return;
	m->deleted = true;
	s->deleted_count++;
	s->deleted_size += m->size;
	pop3_reply(s, "+OK Message %u marked for deletion.", num);
}

void pop3_cmd_rset(struct pop3_session *s, const char *args)
{
	if (*args != '\0') {
		pop3_reply(s, "-ERR RSET takes no arguments.");
		return;
	}
	for (uint32_t i = 0; i < s->count; i++)
		s->msgs[i].deleted = false;
	s->deleted_count = 0;
	s->deleted_size = 0;
	pop3_reply(s, "+OK %u messages (%" PRIu64 " octets).", s->count, s->total_size);
}

void pop3_cmd_noop(struct pop3_session *s, const char *args)
{
	if (*args != '\0') {
		pop3_reply(s, "-ERR NOOP takes no arguments.");
		return;
	}
	pop3_reply(s, "+OK");
}

/* ---- QUIT and the UPDATE state -------------------------------------- */

/* The DELE'd messages as UID ranges (the snapshot is in UID order). */
static struct store_uid_range *deleted_ranges(struct pop3_session *s, size_t *count_r,
					      uint32_t **uids_r)
{
	struct store_uid_range *r = xcalloc(s->deleted_count, sizeof(*r));
	uint32_t *uids = xcalloc(s->deleted_count, sizeof(*uids));
	size_t n = 0, k = 0;

	for (uint32_t i = 0; i < s->count; i++) {
		uint32_t uid = s->msgs[i].uid;
		if (!s->msgs[i].deleted)
			continue;
		uids[k++] = uid;
		if (n > 0 && r[n - 1].hi + 1 == uid)
			r[n - 1].hi = uid;
		else
			r[n++] = (struct store_uid_range){uid, uid};
	}
	*count_r = n;
	*uids_r = uids;
	return r;
}

/* Moves to the Trash special-use mailbox, creating it if the user has
 * deleted it. *moved_r: how many were still in INBOX. */
static int update_trash(struct pop3_session *s, const struct store_uid_range *r,
			size_t n, size_t *moved_r, struct store_error *err)
{
	char *trash = store_mailbox_find_special(s->mail, STORE_SPECIAL_TRASH);
	int ret;

	if (trash == NULL) {
		if (store_mailbox_create(s->mail, "Trash", STORE_SPECIAL_TRASH, err) < 0 &&
		    err->kind != STORE_ERR_EXISTS)
			return -1;
		trash = xstrdup("Trash");
	}
	uint32_t *src = NULL, *dst = NULL;
	ret = store_copy(s->mail, "INBOX", r, n, trash, true, NULL, &src, &dst,
			 moved_r, err);
	free(src);
	free(dst);
	free(trash);
	return ret;
}

/* What pop3_delete = auto means for this account now: hide while a
 * syncing client (IMAP, later JMAP and the webmail) logged in within 30
 * days, so its devices keep the mail; else to Trash. */
static enum auth_pop3_delete effective_policy(struct pop3_session *s)
{
	time_t last = 0;
	struct store_error err = {0};

	if (s->policy.pop3_delete != AUTH_POP3_AUTO)
		return s->policy.pop3_delete;
	if (store_last_sync_login(s->mail, &last, &err) < 0) {
		/* Hiding loses nothing: the safe side when unsure. */
		log_warn("pop3", s->sid, "user=%s: last IMAP login unknown (%s): hide",
			 s->user.address, err.msg);
		return AUTH_POP3_HIDE;
	}
	return store_sync_active(last, time(NULL)) ? AUTH_POP3_HIDE : AUTH_POP3_TRASH;
}

/* Applies the DELE marks in one store transaction, as the account's
 * pop3_delete policy says. *removed_r: how many this session removed;
 * a message another session removed meanwhile does not count. */
static int pop3_update(struct pop3_session *s, enum auth_pop3_delete mode,
		       size_t *removed_r, struct store_error *err)
{
	size_t n;
	uint32_t *uids, *gone = NULL;
	struct store_uid_range *r = deleted_ranges(s, &n, &uids);
	int ret = -1;

	*removed_r = 0;
	switch (mode) {
	case AUTH_POP3_EXPUNGE:
		ret = store_expunge(s->mail, "INBOX", r, n, true, &gone, removed_r, err);
		free(gone);
		break;
	case AUTH_POP3_HIDE:
	case AUTH_POP3_AUTO:
		ret = store_pop3_hide(s->mail, uids, s->deleted_count, removed_r, err);
		break;
	case AUTH_POP3_TRASH:
		ret = update_trash(s, r, n, removed_r, err);
		break;
	}
	free(r);
	free(uids);
	return ret;
}

/* ---- \Seen ----------------------------------------------------------- */

void pop3_seen_add(struct pop3_session *s, uint32_t uid)
{
	if (s->seen_count == s->seen_cap) {
		s->seen_cap = s->seen_cap ? s->seen_cap * 2 : 16;
		s->seen = xrealloc(s->seen, s->seen_cap * sizeof(*s->seen));
	}
	s->seen[s->seen_count++] = uid;
}

/* RETR sets \Seen (mark_seen), in one commit per session like Dovecot:
 * at QUIT, or when the session ends otherwise (a dropped connection, a
 * kick), so a download is never a commit per message. Returns whether a
 * commit was made. */
bool pop3_seen_flush(struct pop3_session *s)
{
	struct store_error err = {0};

	if (s->seen_count == 0 || s->mail == NULL)
		return false;
	qsort(s->seen, s->seen_count, sizeof(*s->seen), u32_cmp);
	struct store_uid_range *r = xcalloc(s->seen_count, sizeof(*r));
	size_t n = 0;
	for (size_t i = 0; i < s->seen_count; i++) {
		uint32_t uid = s->seen[i];
		if (n > 0 && r[n - 1].hi + 1 >= uid)
			r[n - 1].hi = uid > r[n - 1].hi ? uid : r[n - 1].hi;
		else
			r[n++] = (struct store_uid_range){uid, uid};
	}
	struct store_flag_change ch = {.mode = STORE_FLAGS_ADD,
				       .flags = STORE_FLAG_SEEN};
	int ret = store_flags_update(s->mail, "INBOX", r, n, &ch, NULL, NULL,
				     NULL, NULL, &err);
	if (ret < 0)
		log_warn("pop3", s->sid, "user=%s: cannot set \\Seen on %zu "
			 "messages: %s", s->user.address, s->seen_count, err.msg);
	free(r);
	s->seen_count = 0;
	return ret == 0;
}

void pop3_cmd_quit(struct pop3_session *s, const char *args)
{
	struct store_error err = {0};
	size_t removed = 0;

	if (*args != '\0') {
		pop3_reply(s, "-ERR QUIT takes no arguments.");
		return;
	}
	/* What earlier pipelined commands said goes out before the session
	 * buffer is freed. */
	pop3_flush(s);
	bool committed = s->state == POP3_STATE_TRANSACTION && pop3_seen_flush(s);
	if (s->state == POP3_STATE_TRANSACTION && s->deleted_count > 0) {
		enum auth_pop3_delete mode = effective_policy(s);
		if (pop3_update(s, mode, &removed, &err) < 0) {
			log_error("pop3", s->sid, "user=%s: QUIT: %u messages not removed: %s",
				  s->user.address, s->deleted_count, err.msg);
			s->state = POP3_STATE_DONE;
			pop3_session_end(s);
			pop3_reply(s, "-ERR [SYS/TEMP] Some deleted messages were not removed (session %s).",
				   s->sid);
			net_conn_close(s->conn);
			return;
		}
		log_info("pop3", s->sid, "user=%s: QUIT removed %zu of %u messages (%s%s)",
			 s->user.address, removed, s->deleted_count,
			 auth_pop3_delete_name(mode),
			 s->policy.pop3_delete == AUTH_POP3_AUTO ? ", auto" : "");
	} else if (s->state == POP3_STATE_TRANSACTION && s->retr_marks > 0 &&
		   !committed) {
		/* A "leave on server" session commits nothing else, and the
		 * store keeps first-RETR marks for the account's next commit:
		 * without one here, `loftctl retention run` (another process)
		 * and a crash would never see these downloads, and
		 * pop3_retention_days would not remove them. An empty hide is
		 * that commit: one per session, not one per RETR. */
		if (store_pop3_hide(s->mail, NULL, 0, NULL, &err) < 0)
			log_warn("pop3", s->sid, "user=%s: QUIT: retrievals not recorded: %s",
				 s->user.address, err.msg);
	}
	/* Unlock before the reply: a client that reconnects at once must
	 * not find its own old session still holding the maildrop. */
	s->state = POP3_STATE_DONE;
	pop3_session_end(s);
	pop3_reply(s, "+OK Logging out, %zu messages deleted.", removed);
	net_conn_close(s->conn);
}
