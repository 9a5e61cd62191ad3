/*
 * IMAP sessions: the net_proto hooks, input handling, command dispatch,
 * tagged replies and the untagged updates that keep a session in sync
 * with its mailbox.
 *
 * Input modes: COMMAND feeds the parser; IDLE waits for "DONE"; SASL
 * reads AUTHENTICATE responses line by line. Everything that touches the
 * store or auth runs in a worker task (net_conn_run); the I/O thread only
 * parses. APPEND literals are streamed: the I/O thread gathers a chunk,
 * a worker task writes it to the store's blob writer, and reading resumes
 * when the task is done, so a big message never sits in memory.
 *
 * Pushed changes: the store hub calls client_store_changed on the
 * committing thread; it queues one worker task (coalesced with an atomic
 * flag) that sends the updates if the session is in IDLE. Otherwise they
 * go out before the next tagged reply.
 */
#include "imap-client.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap-commands.h"
#include "imap-context.h"
#include "imap-notify.h"
#include "imap-server.h"
#include "imap.h"
#include "log.h"
#include "metrics.h"
#include "utf7.h"
#include "u32.h"

#define CHUNK_SIZE (256 * 1024)
/* c->out's capacity a sync leaves in place (more is freed after it) */
#define OUT_KEEP 4096
#define OUTPUT_DEFER (64 * 1024)
#define SASL_LINE_MAX 16384
/* Longer names serve no one and make every LIST line long. */
#define IMAP_MAILBOX_NAME_MAX 1000


/* ---- output ---------------------------------------------------------- */

int imap_client_write(struct imap_client *c, const void *data, size_t len)
{
	return net_conn_write(c->conn, data, len);
}

int imap_client_untagged(struct imap_client *c, const char *fmt, ...)
{
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "* ");
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	buf_append_str(&b, "\r\n");
	int r = imap_client_write(c, b.data, b.len);
	buf_free(&b);
	return r;
}

struct line_task {
	char *line;
	size_t len;
};

static void send_line_task(void *session, struct net_conn *conn, void *arg)
{
	struct imap_client *c = session;
	struct line_task *t = arg;
	net_conn_write(conn, t->line, t->len);
	free(t->line);
	free(t);
	c->task_running = false;
}

/* Writes from the I/O thread. When the client is not reading, the line
 * goes through a worker task instead, which blocks on back-pressure and
 * keeps the session from parsing more input meanwhile. Returns true if
 * the caller must stop processing input. */
static bool io_write_line(struct imap_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static bool io_write_line(struct imap_client *c, const char *fmt, ...)
{
	struct buf b;
	buf_init(&b, 0);
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	buf_append_str(&b, "\r\n");
	if (net_conn_output_pending(c->conn) < OUTPUT_DEFER) {
		net_conn_write(c->conn, b.data, b.len);
		buf_free(&b);
		return false;
	}
	struct line_task *t = xmalloc(sizeof(*t));
	t->line = buf_steal(&b, &t->len);
	c->task_running = true;
	if (net_conn_run(c->conn, send_line_task, t) < 0) {
		c->task_running = false;
		free(t->line);
		free(t);
	}
	return true;
}

void imap_client_capabilities(struct imap_client *c, struct buf *out)
{
	const struct imap_settings *set = &c->server->set;
	buf_append_str(out, "IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE IDLE");
	if (c->state == IMAP_STATE_NOT_AUTH) {
		bool cleartext = c->server->auth == NULL ||
				 auth_cleartext_allowed(c->server->auth, c->tls,
							c->local);
		if (!c->tls && set->tls_configured)
			buf_append_str(out, " STARTTLS");
		if (!cleartext)
			buf_append_str(out, " LOGINDISABLED");
		if (c->server->auth != NULL) {
			const char *mechs = auth_mechanisms(c->server->auth, cleartext);
			const char *p = mechs;
			while (p != NULL && *p != '\0') {
				const char *sp = strchr(p, ' ');
				size_t n = sp != NULL ? (size_t)(sp - p) : strlen(p);
				if (n > 0)
					buf_printf(out, " AUTH=%.*s", (int)n, p);
				p = sp != NULL ? sp + 1 : NULL;
			}
		}
		return;
	}
	buf_append_str(out, " NAMESPACE ACL RIGHTS=texk UIDPLUS UNSELECT"
			    " CHILDREN MOVE"
			    " SPECIAL-USE CREATE-SPECIAL-USE LIST-EXTENDED"
			    " LIST-STATUS MULTIAPPEND CONDSTORE QRESYNC QUOTA"
			    " QUOTA=RES-STORAGE QUOTA=RES-MESSAGE STATUS=SIZE"
			    " UTF8=ACCEPT OBJECTID UNAUTHENTICATE SAVEDATE");
	buf_printf(out, " APPENDLIMIT=%llu", (unsigned long long)set->append_limit);
	buf_append_str(out, " UIDONLY");
	buf_append_str(out, " BINARY ESEARCH SEARCHRES WITHIN SORT SORT=DISPLAY"
			    " THREAD=REFERENCES THREAD=ORDEREDSUBJECT ESORT"
			    " CONTEXT=SEARCH CONTEXT=SORT PARTIAL PREVIEW CATENATE"
			    " URLAUTH REPLACE METADATA METADATA-SERVER NOTIFY");
	if (!c->compressed && set->compress)
		buf_append_str(out, " COMPRESS=DEFLATE");
}

/* ---- tagged replies -------------------------------------------------- */

static bool cmd_allows_expunge(const struct imap_cmd *cmd)
{
	if (cmd->def == NULL)
		return false;
	return !(cmd->def->flags & IMAP_CMD_SEQ_NO_EXPUNGE) || cmd->uid;
}

__attribute__((format(printf, 3, 0)))
static void cmd_vreply(struct imap_cmd *cmd, const char *status,
		       const char *fmt, va_list ap)
{
	struct imap_client *c = cmd->client;
	if (cmd->replied) {
		log_error("imap", c->sid, "BUG: second reply to %s", cmd->name);
		return;
	}
	cmd->replied = true;
	metrics_count("loft_commands_total", "Commands answered, per protocol "
		      "and result.", status[0] == 'O' ?
		      "proto=\"imap\",result=\"ok\"" : status[0] == 'N' ?
		      "proto=\"imap\",result=\"no\"" :
		      "proto=\"imap\",result=\"bad\"");
	if (c->view != NULL && !(cmd->def != NULL &&
				 (cmd->def->flags & IMAP_CMD_IO_THREAD)))
		imap_client_sync(c, cmd_allows_expunge(cmd));
	/* RFC 5465: the other mailboxes' events may go out with any reply */
	if (!(cmd->def != NULL && (cmd->def->flags & IMAP_CMD_IO_THREAD)))
		imap_notify_flush(c);
	c->told_count = 0;
	struct buf text;
	buf_init(&text, 0);
	buf_vprintf(&text, fmt, ap);
	bool has_code = text.len > 0 && text.data[0] == '[';
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "%s %s ", cmd->tag, status);
	/* RFC 7162 3.1: a command that turned CONDSTORE on in the selected
	 * state (FETCH MODSEQ, STORE UNCHANGEDSINCE, ...) reports the
	 * mailbox's HIGHESTMODSEQ in its tagged OK */
	if (c->view != NULL && strcmp(status, "OK") == 0 && !has_code &&
	    (c->enabled & IMAP_ENABLED_CONDSTORE) &&
	    !(cmd->enabled_before & IMAP_ENABLED_CONDSTORE)) {
		buf_printf(&b, "[HIGHESTMODSEQ %llu] ",
			   (unsigned long long)c->safe_modseq);
		c->reported_modseq = c->safe_modseq;
	}
	/* RFC 5530: a BAD is the client's mistake; say so when the handler
	 * gave no more specific code */
	if (strcmp(status, "BAD") == 0 && !has_code)
		buf_append_str(&b, "[CLIENTBUG] ");
	buf_append(&b, text.data, text.len);
	buf_append_str(&b, "\r\n");
	imap_client_write(c, b.data, b.len);
	buf_free(&b);
	buf_free(&text);
}

void imap_cmd_ok(struct imap_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cmd_vreply(cmd, "OK", fmt, ap);
	va_end(ap);
}

void imap_cmd_no(struct imap_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cmd_vreply(cmd, "NO", fmt, ap);
	va_end(ap);
}

void imap_cmd_bad(struct imap_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cmd_vreply(cmd, "BAD", fmt, ap);
	va_end(ap);
}

const char *imap_store_error_code(enum store_error_kind kind)
{
	switch (kind) {
	case STORE_ERR_NOTFOUND: return "NONEXISTENT";
	case STORE_ERR_EXISTS: return "ALREADYEXISTS";
	case STORE_ERR_PERM: return "NOPERM";
	case STORE_ERR_NOPERM: return "NOPERM";
	case STORE_ERR_QUOTA: return "OVERQUOTA";
	case STORE_ERR_LIMIT: return "LIMIT";
	case STORE_ERR_TEMP: return "UNAVAILABLE";
	case STORE_ERR_UNAVAILABLE: return "UNAVAILABLE";
	case STORE_ERR_MODIFIED: return "MODIFIED";
	case STORE_ERR_INVALID: return "CANNOT";
	case STORE_ERR_NONE:
	case STORE_ERR_INTERNAL:
	default: return "SERVERBUG";
	}
}

void imap_cmd_store_error(struct imap_cmd *cmd, const struct store_error *err)
{
	struct imap_client *c = cmd->client;
	if (err->kind == STORE_ERR_INTERNAL || err->kind == STORE_ERR_NONE) {
		log_error("imap", c->sid, "%s: %s", cmd->name, err->msg);
		imap_cmd_no(cmd, "[SERVERBUG] Internal error (session %s)", c->sid);
		return;
	}
	imap_cmd_no(cmd, "[%s] %s", imap_store_error_code(err->kind),
		    err->msg[0] != '\0' ? err->msg : "Failed");
}

/* ---- untagged updates ------------------------------------------------ */

static void flush_out(struct imap_client *c, size_t threshold)
{
	if (c->out.len > threshold) {
		imap_client_write(c, c->out.data, c->out.len);
		buf_reset(&c->out);
	}
}

static void flush_vanished(struct imap_client *c)
{
	if (c->vanished_count == 0)
		return;
	qsort(c->vanished, c->vanished_count, sizeof(uint32_t), u32_cmp);
	buf_append_str(&c->out, "* VANISHED ");
	imap_uids_append_set(&c->out, c->vanished, c->vanished_count);
	buf_append_str(&c->out, "\r\n");
	c->vanished_count = 0;
	flush_out(c, 0);
}

static void sync_expunged(void *ctx, uint32_t seq, uint32_t uid)
{
	struct imap_client *c = ctx;
	c->sync_reported++;
	/* RFC 5267: out of the contexts while its number still holds */
	if (c->context_count > 0)
		imap_context_expunged(c, seq, uid, &c->out);
	if (imap_client_vanished(c)) {
		if (c->vanished_count == c->vanished_cap) {
			c->vanished_cap = c->vanished_cap ? c->vanished_cap * 2 : 64;
			c->vanished = xrealloc(c->vanished,
					       c->vanished_cap * sizeof(uint32_t));
		}
		c->vanished[c->vanished_count++] = uid;
		return;
	}
	buf_printf(&c->out, "* %u EXPUNGE\r\n", seq);
	flush_out(c, 8192);
}

static int cmp_told(const void *a, const void *b)
{
	const struct imap_told *x = a, *y = b;
	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

void imap_client_told(struct imap_client *c, uint32_t uid, uint64_t modseq)
{
	if (c->told_count == c->told_cap) {
		c->told_cap = c->told_cap ? c->told_cap * 2 : 64;
		c->told = xrealloc(c->told, c->told_cap * sizeof(*c->told));
	}
	c->told[c->told_count].uid = uid;
	c->told[c->told_count].modseq = modseq;
	c->told_count++;
	c->told_sorted = false;
}

/* Whether the client already knows msg's state (or a newer one). */
static bool was_told(struct imap_client *c, const struct store_msg *msg)
{
	if (c->told_count == 0)
		return false;
	if (!c->told_sorted) {
		qsort(c->told, c->told_count, sizeof(*c->told), cmp_told);
		c->told_sorted = true;
	}
	struct imap_told key = {.uid = msg->uid};
	const struct imap_told *t = bsearch(&key, c->told, c->told_count,
					    sizeof(*c->told), cmp_told);
	/* several entries of one UID: any at or above msg's modseq */
	if (t == NULL)
		return false;
	while (t > c->told && t[-1].uid == msg->uid)
		t--;
	for (; t < c->told + c->told_count && t->uid == msg->uid; t++)
		if (t->modseq >= msg->modseq)
			return true;
	return false;
}

static bool keyword_known(const struct imap_client *c, const char *kw)
{
	for (size_t i = 0; i < c->keyword_count; i++)
		if (strcasecmp(c->keywords[i], kw) == 0)
			return true;
	return false;
}

static const unsigned all_system_flags = STORE_FLAG_ANSWERED |
	STORE_FLAG_FLAGGED | STORE_FLAG_DELETED | STORE_FLAG_SEEN |
	STORE_FLAG_DRAFT;

/* "* FLAGS (...)" and "* OK [PERMANENTFLAGS (...)]" for the session's
 * list; read-only (EXAMINE): no permanent flags (RFC 9051 7.1). */
static void append_flags_responses(struct imap_client *c, struct buf *out)
{
	const char *const *kw = (const char *const *)c->keywords;
	buf_append_str(out, "* FLAGS ");
	imap_append_flags(out, all_system_flags, kw, c->keyword_count, false);
	buf_append_str(out, "\r\n* OK [PERMANENTFLAGS ");
	unsigned rights = STORE_RIGHTS_ALL;
	struct store_error err;
	if (c->sel_user != NULL && c->mailbox != NULL &&
	    store_myrights(c->sel_user, c->mailbox, &rights, &err) < 0)
		rights = 0;
	if (c->readonly) {
		buf_append_str(out, "()");
	} else if (!(rights & STORE_RIGHT_WRITE)) {
		/* another account's mailbox: only what the viewer may
		 * change (RFC 4314 5.1.1); no keywords without w */
		unsigned f = (rights & STORE_RIGHT_SEEN ? STORE_FLAG_SEEN : 0) |
			     (rights & STORE_RIGHT_DELETED ? STORE_FLAG_DELETED
							   : 0);
		imap_append_flags(out, f, NULL, 0, false);
	} else if ((rights & (STORE_RIGHT_SEEN | STORE_RIGHT_DELETED)) !=
		   (STORE_RIGHT_SEEN | STORE_RIGHT_DELETED)) {
		unsigned f = all_system_flags;
		if (!(rights & STORE_RIGHT_SEEN))
			f &= ~(unsigned)STORE_FLAG_SEEN;
		if (!(rights & STORE_RIGHT_DELETED))
			f &= ~(unsigned)STORE_FLAG_DELETED;
		imap_append_flags(out, f, kw, c->keyword_count, false);
		out->len--;
		buf_append_str(out, " \\*)");
	} else {
		imap_append_flags(out, all_system_flags, kw, c->keyword_count,
				  false);
		out->len--;   /* reopen the list for \* */
		buf_append_str(out, " \\*)");
	}
	buf_append_str(out, "] Flags permitted\r\n");
}

static void free_keywords(struct imap_client *c)
{
	store_names_free(c->keywords, c->keyword_count);
	c->keywords = NULL;
	c->keyword_count = 0;
}

void imap_client_set_flags(struct imap_client *c, char **keywords,
			   size_t count)
{
	free_keywords(c);
	c->keywords = keywords;
	c->keyword_count = count;
	struct buf b;
	buf_init(&b, 0);
	append_flags_responses(c, &b);
	imap_client_write(c, b.data, b.len);
	buf_free(&b);
}

void imap_client_announce_keywords(struct imap_client *c,
				   const char *const *keywords, size_t count,
				   struct buf *out)
{
	bool added = false;
	for (size_t i = 0; i < count && keywords != NULL; i++) {
		if (keyword_known(c, keywords[i]))
			continue;
		c->keywords = xrealloc(c->keywords, (c->keyword_count + 2) *
						    sizeof(*c->keywords));
		c->keywords[c->keyword_count++] = xstrdup(keywords[i]);
		c->keywords[c->keyword_count] = NULL;
		added = true;
	}
	if (added)
		append_flags_responses(c, out);
}

void imap_client_fetch_head(const struct imap_client *c, uint32_t seq,
			    uint32_t uid, struct buf *out)
{
	if (c->enabled & IMAP_ENABLED_UIDONLY)
		buf_printf(out, "* %u UIDFETCH (", uid);
	else
		buf_printf(out, "* %u FETCH (", seq);
}

bool imap_client_vanished(const struct imap_client *c)
{
	return (c->enabled & (IMAP_ENABLED_QRESYNC | IMAP_ENABLED_UIDONLY)) != 0;
}

void imap_client_fetch_flags(struct imap_client *c, uint32_t seq,
			     const struct store_msg *msg, bool with_flags,
			     struct buf *out)
{
	bool condstore = (c->enabled & IMAP_ENABLED_CONDSTORE) != 0;
	if (with_flags)
		imap_client_announce_keywords(c, msg->keywords,
					      msg->keyword_count, out);
	imap_client_fetch_head(c, seq, msg->uid, out);
	buf_printf(out, "UID %u", msg->uid);
	if (with_flags) {
		buf_append_str(out, " FLAGS ");
		imap_append_flags(out, msg->flags, msg->keywords,
				  msg->keyword_count, imap_client_recent(c, seq));
	}
	if (condstore)
		buf_printf(out, " MODSEQ (%llu)",
			   (unsigned long long)msg->modseq);
	buf_append_str(out, ")\r\n");
	if (with_flags)
		imap_client_told(c, msg->uid, msg->modseq);
}

static void sync_changed(void *ctx, uint32_t seq, const struct store_msg *msg)
{
	struct imap_client *c = ctx;
	if (was_told(c, msg))
		return;
	c->sync_reported++;
	flush_vanished(c);
	/* RFC 7162 3.2.4: with QRESYNC, unsolicited FETCH carries UID; it is
	 * harmless otherwise and lets every client match the message. */
	imap_client_fetch_flags(c, seq, msg, true, &c->out);
	flush_out(c, 8192);
}

static void sync_exists(void *ctx, uint32_t count)
{
	struct imap_client *c = ctx;
	c->sync_reported++;
	flush_vanished(c);
	buf_printf(&c->out, "* %u EXISTS\r\n", count);
	if (!(c->enabled & IMAP_ENABLED_IMAP4REV2))
		buf_printf(&c->out, "* %u RECENT\r\n",
			   store_view_recent_count(c->view));
	flush_out(c, 8192);
}

int imap_client_sync(struct imap_client *c, bool allow_expunge)
{
	if (c->view == NULL)
		return 0;
	static const struct store_view_callbacks cb = {
		.expunged = sync_expunged,
		.changed = sync_changed,
		.exists = sync_exists,
	};
	struct store_error err = {0};
	atomic_store(&c->change_pending, false);
	/* another account's mailbox whose r is gone ends the session */
	if (c->sel_user != NULL && imap_acl_lost_read(c))
		return -1;
	buf_reset(&c->out);
	c->vanished_count = 0;
	c->sync_reported = 0;
	uint32_t count_before = store_view_count(c->view);
	uint32_t last_uid = count_before ? store_view_uid(c->view, count_before)
					 : 0;
	int r = store_view_sync(c->view, allow_expunge, &cb, c, &err);
	flush_vanished(c);
	if (r < 0)
		log_warn("imap", c->sid, "sync failed: %s", err.msg);
	const struct store_mailbox_info *vi = store_view_info(c->view);
	if (r == 0 && c->context_count > 0 &&
	    (vi->highestmodseq != c->context_modseq ||
	     store_view_count(c->view) != c->context_exists)) {
		imap_context_update(c, &c->out);
		c->context_modseq = vi->highestmodseq;
		c->context_exists = store_view_count(c->view);
	}
	/* RFC 7162 3.2: a HIGHESTMODSEQ may not cover an expunge held back
	 * from the client (a ghost of a command by sequence number). After
	 * a sync that reported every expunge, or with nothing held back,
	 * the view's modseq is a state the client knows in full. */
	if (r == 0 && (allow_expunge || !store_view_has_changes(c->view)))
		c->safe_modseq = store_view_info(c->view)->highestmodseq;
	if ((c->enabled & IMAP_ENABLED_CONDSTORE) && c->sync_reported > 0 &&
	    c->safe_modseq > c->reported_modseq) {
		buf_printf(&c->out, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
			   (unsigned long long)c->safe_modseq);
		c->reported_modseq = c->safe_modseq;
	}
	flush_out(c, 0);
	/* a burst of untagged lines (another client flagged a thousand
	 * messages) grew it past flush_out's 8 KiB: not kept for a session
	 * that goes back to waiting in IDLE */
	if (c->out.cap > OUT_KEEP)
		buf_free(&c->out);
	/* NOTIFY MessageNew (fetch-atts): the new messages' FETCH */
	if (r == 0 && imap_notify_wants_new(c))
		imap_notify_new_messages(c, last_uid);
	return r;
}

/* ---- store change notifications ------------------------------------- */

static void change_task(void *session, struct net_conn *conn, void *arg)
{
	struct imap_client *c = session;
	atomic_store(&c->change_pending, false);
	/* NOTIFY (RFC 5465) pushes without IDLE too, when no command is in
	 * progress: no part of the next one has been read */
	bool between = !c->idling && c->input_mode == IMAP_MODE_COMMAND &&
		       c->state != IMAP_STATE_NOT_AUTH &&
		       c->state != IMAP_STATE_LOGOUT &&
		       imap_parser_between(c->parser);
	bool pushed = c->idling && c->view != NULL;
	if (pushed)
		imap_client_sync(c, true);
	if ((c->idling || between) && imap_notify_push(c, c->idling))
		pushed = true;
	if (pushed)
		metrics_observe_since(metrics_histogram(
			"loft_push_latency_seconds", "From a committed change "
			"to the push written to a waiting client.",
			"proto=\"imap\"", NULL, 0),
			atomic_load(&c->change_ns));
}

static void change_post(void *session, struct net_conn *conn, void *arg)
{
	struct imap_client *c = session;
	if (net_conn_run(conn, change_task, NULL) < 0)
		atomic_store(&c->change_pending, false);
}

/* loftctl kick / user del (STORE_CHANGE_LOGOUT): after the running
 * command, if any, the session says BYE and ends. */
static void logout_task(void *session, struct net_conn *conn, void *arg)
{
	struct imap_client *c = session;
	static const char bye[] = "* BYE Session ended by the administrator\r\n";
	/* loftctl migrate-store: back in a few seconds (RFC 5530) */
	static const char moving[] = "* BYE [UNAVAILABLE] The account is "
				     "being moved; reconnect in a few "
				     "seconds\r\n";
	bool unavailable = arg != NULL;
	log_info("imap", c->sid, "user=%s: session ended %s", c->user.address,
		 unavailable ? "for a move of the account"
			     : "by the administrator");
	c->idling = false;
	if (unavailable)
		net_conn_write(conn, moving, sizeof(moving) - 1);
	else
		net_conn_write(conn, bye, sizeof(bye) - 1);
	net_conn_close(conn);
}

static void logout_post(void *session, struct net_conn *conn, void *arg)
{
	net_conn_run(conn, logout_task, arg);
}

/* On the committing thread: queue at most one wake-up at a time. */
void imap_client_store_changed(void *ctx, const struct store_change *change)
{
	struct imap_client *c = ctx;
	if (change->kind == STORE_CHANGE_LOGOUT) {
		net_conn_post(c->conn, logout_post,
			      change->modseq == STORE_LOGOUT_UNAVAILABLE
				      ? (void *)1 : NULL);
		return;
	}
	uint32_t selected = atomic_load(&c->selected_id);
	bool notify = imap_notify_record(c, change, selected);
	if (!notify && (change->kind == STORE_CHANGE_MAILBOXES ||
			change->kind == STORE_CHANGE_METADATA || selected == 0 ||
			change->mailbox_id != selected))
		return;
	if (atomic_exchange(&c->change_pending, true))
		return;
	atomic_store(&c->change_ns, metrics_now_ns());
	/* via the I/O thread: net_conn_run from a foreign thread races with
	 * the end of a running task over the read-enable state */
	if (net_conn_post(c->conn, change_post, NULL) < 0)
		atomic_store(&c->change_pending, false);
}

int imap_client_subscribe(struct imap_client *c)
{
	if (c->server->store == NULL)
		return 0;
	if (c->notify == NULL)
		c->notify = imap_notify_new();
	return store_subscribe(c->server->store, c->user.id,
			       imap_client_store_changed, c, &c->sub);
}

/* ---- mailbox names --------------------------------------------------- */

bool imap_client_utf8(const struct imap_client *c)
{
	return (c->enabled & (IMAP_ENABLED_UTF8_ACCEPT |
			      IMAP_ENABLED_IMAP4REV2)) != 0;
}

char imap_client_separator(const struct imap_client *c)
{
	return c->server->set.inbox_namespace ? '.' : '/';
}

static bool is_inbox_prefix(const char *s, size_t len, char sep)
{
	return len >= 5 && strncasecmp(s, "INBOX", 5) == 0 &&
	       (len == 5 || s[5] == sep);
}

char *imap_client_mailbox_in(struct imap_client *c, const char *name,
			     size_t len, const char **error_r)
{
	char sep = imap_client_separator(c);
	struct buf b;
	buf_init(&b, 4096);
	if (len == 0 || memchr(name, 0, len) != NULL) {
		*error_r = "[CANNOT] Invalid mailbox name";
		goto fail;
	}
	if (imap_client_utf8(c)) {
		if (!utf8_valid(name, len) || buf_append(&b, name, len) < 0) {
			*error_r = "[CANNOT] Mailbox name is not valid UTF-8";
			goto fail;
		}
	} else if (utf7_decode(name, len, &b) < 0) {
		*error_r = "[CANNOT] Mailbox name is not valid modified UTF-7";
		goto fail;
	}
	char *s = b.data;
	size_t n = b.len;
	if (c->server->set.inbox_namespace) {
		if (!is_inbox_prefix(s, n, '.')) {
			*error_r = "[NONEXISTENT] Mailbox names start with \"INBOX.\"";
			goto fail;
		}
		if (memchr(s, '/', n) != NULL) {
			*error_r = "[CANNOT] \"/\" is not allowed in mailbox names";
			goto fail;
		}
		if (n == 6) {
			*error_r = "[CANNOT] Invalid mailbox name";
			goto fail;
		}
		if (n > 6) {
			memmove(s, s + 6, n - 6);
			n -= 6;
			s[n] = '\0';
			b.len = n;
		}
		for (size_t i = 0; i < n; i++) {
			if (s[i] == '.')
				s[i] = '/';
		}
	}
	if (n > IMAP_MAILBOX_NAME_MAX) {
		*error_r = "[LIMIT] Mailbox name too long";
		goto fail;
	}
	if (is_inbox_prefix(s, n, '/'))
		memcpy(s, "INBOX", 5);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		bool sep_here = ch == '/';
		if (ch < 0x20 || ch == 0x7f || ch == '*' || ch == '%' ||
		    (sep_here && (i == 0 || i + 1 == n || s[i + 1] == '/'))) {
			*error_r = "[CANNOT] Invalid mailbox name";
			goto fail;
		}
	}
	(void)sep;
	return buf_steal(&b, &n);
fail:
	buf_free(&b);
	return NULL;
}

/* A UTF-8 name (b, taken) in the client's encoding, as a new string. */
static char *client_encoding(struct imap_client *c, struct buf *b)
{
	if (!imap_client_utf8(c)) {
		struct buf e;
		buf_init(&e, 0);
		if (utf7_encode(b->data, b->len, &e) < 0) {
			/* not UTF-8 in the store: show it escaped rather than
			 * send invalid bytes */
			buf_reset(&e);
			for (size_t i = 0; i < b->len; i++)
				buf_append_char(&e, (unsigned char)b->data[i] < 0x80
							    ? b->data[i] : '?');
		}
		buf_free(b);
		*b = e;
	}
	size_t n;
	return buf_steal(b, &n);
}

char *imap_client_mailbox_name(struct imap_client *c, const char *store_name)
{
	struct buf b;
	buf_init(&b, 0);
	if (c->server->set.inbox_namespace && strcmp(store_name, "INBOX") != 0) {
		buf_append_str(&b, "INBOX.");
		size_t start = b.len;
		buf_append_str(&b, store_name);
		for (size_t i = start; i < b.len; i++) {
			if (b.data[i] == '/')
				b.data[i] = '.';
		}
	} else {
		buf_append_str(&b, store_name);
	}
	return client_encoding(c, &b);
}

int imap_client_mailbox_out(struct imap_client *c, const char *store_name,
			    struct buf *out)
{
	char *name = imap_client_mailbox_name(c, store_name);
	int r = imap_append_string(out, name, strlen(name), imap_client_utf8(c));
	free(name);
	return r;
}

char *imap_client_ns_name(struct imap_client *c, const char *ns_name)
{
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, ns_name);
	return client_encoding(c, &b);
}

int imap_client_ns_out(struct imap_client *c, const char *ns_name,
		       struct buf *out)
{
	char *name = imap_client_ns_name(c, ns_name);
	int r = imap_append_string(out, name, strlen(name), imap_client_utf8(c));
	free(name);
	return r;
}

bool imap_client_recent(const struct imap_client *c, uint32_t seq)
{
	return c->view != NULL && !(c->enabled & IMAP_ENABLED_IMAP4REV2) &&
	       store_view_is_recent(c->view, seq);
}

/* ---- SEARCHRES and sequence sets ------------------------------------- */

void imap_client_set_searchres(struct imap_client *c, const uint32_t *uids,
			       size_t count)
{
	free(c->searchres);
	c->searchres = NULL;
	c->searchres_count = 0;
	if (count > 0) {
		c->searchres = xmalloc(count * sizeof(*uids));
		memcpy(c->searchres, uids, count * sizeof(*uids));
		c->searchres_count = count;
	}
}

void imap_cmd_sync_uid(struct imap_cmd *cmd, uint32_t uid)
{
	struct imap_client *c = cmd->client;
	if (!cmd->uid || c->view == NULL)
		return;
	uint32_t count = store_view_count(c->view);
	if (uid != 0 && count > 0 && uid <= store_view_uid(c->view, count))
		return;
	if (store_view_maybe_changed(c->view))
		imap_client_sync(c, cmd_allows_expunge(cmd));
}

/* The highest UID a set names, 0 when it says "*" (or is "$", which
 * names only UIDs the session was given). */
static uint32_t seqset_top(const struct imap_seqset *set)
{
	uint32_t top = 1;
	if (set->saved)
		return 1;
	for (size_t i = 0; i < set->count; i++) {
		if (set->ranges[i].lo == 0 || set->ranges[i].hi == 0)
			return 0;
		if (set->ranges[i].lo > top)
			top = set->ranges[i].lo;
		if (set->ranges[i].hi > top)
			top = set->ranges[i].hi;
	}
	return top;
}

int imap_cmd_seqset(struct imap_cmd *cmd, const struct imap_arg *arg,
		    struct store_uid_range **ranges_r, size_t *count_r)
{
	struct imap_client *c = cmd->client;
	struct imap_seqset set;
	const char *error = "Invalid sequence set";
	if (arg->type != IMAP_ARG_ATOM ||
	    imap_seqset_parse(arg->str, true, &set) < 0) {
		imap_cmd_bad(cmd, "[CLIENTBUG] Invalid sequence set");
		return -1;
	}
	imap_cmd_sync_uid(cmd, seqset_top(&set));
	int r = imap_seqset_resolve(&set, c->view, cmd->uid, c->searchres,
				    c->searchres_count, ranges_r, count_r,
				    &error);
	imap_seqset_free(&set);
	if (r < 0) {
		imap_cmd_bad(cmd, "[CLIENTBUG] %s", error);
		return -1;
	}
	return 0;
}

/* ---- output helpers -------------------------------------------------- */

int imap_append_string(struct buf *out, const char *s, size_t len, bool utf8)
{
	bool quote = len <= 1024;
	for (size_t i = 0; i < len && quote; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == 0 || ch == '\r' || ch == '\n' || (ch >= 0x80 && !utf8))
			quote = false;
	}
	if (quote && utf8 && !utf8_valid(s, len))
		quote = false;
	if (!quote) {
		if (buf_printf(out, "{%zu}\r\n", len) < 0)
			return -1;
		return buf_append(out, s, len);
	}
	if (buf_append_char(out, '"') < 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if ((s[i] == '"' || s[i] == '\\') && buf_append_char(out, '\\') < 0)
			return -1;
		if (buf_append_char(out, s[i]) < 0)
			return -1;
	}
	return buf_append_char(out, '"');
}

int imap_append_nstring(struct buf *out, const char *s, bool utf8)
{
	if (s == NULL)
		return buf_append_str(out, "NIL");
	return imap_append_string(out, s, strlen(s), utf8);
}

int imap_append_astring(struct buf *out, const char *s, bool utf8)
{
	size_t len = strlen(s);
	bool atom = len > 0 && strcasecmp(s, "NIL") != 0;
	for (size_t i = 0; i < len && atom; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"\\", ch) != NULL)
			atom = false;
	}
	if (atom)
		return buf_append_str(out, s);
	return imap_append_string(out, s, len, utf8);
}

static const struct {
	unsigned flag;
	const char *name;
} system_flags[] = {
	{STORE_FLAG_ANSWERED, "\\Answered"},
	{STORE_FLAG_FLAGGED, "\\Flagged"},
	{STORE_FLAG_DELETED, "\\Deleted"},
	{STORE_FLAG_SEEN, "\\Seen"},
	{STORE_FLAG_DRAFT, "\\Draft"},
};

int imap_append_flags(struct buf *out, unsigned flags,
		      const char *const *keywords, size_t keyword_count,
		      bool recent)
{
	bool first = true;
	buf_append_char(out, '(');
	for (size_t i = 0; i < sizeof(system_flags) / sizeof(system_flags[0]); i++) {
		if (!(flags & system_flags[i].flag))
			continue;
		if (!first)
			buf_append_char(out, ' ');
		buf_append_str(out, system_flags[i].name);
		first = false;
	}
	if (recent) {
		buf_append_str(out, first ? "\\Recent" : " \\Recent");
		first = false;
	}
	for (size_t i = 0; i < keyword_count && keywords != NULL; i++) {
		if (!first)
			buf_append_char(out, ' ');
		buf_append_str(out, keywords[i]);
		first = false;
	}
	return buf_append_char(out, ')');
}

static bool valid_keyword(const struct imap_arg *a)
{
	if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NIL)
		return false;
	if (a->str.len == 0 || a->str.len > 255)
		return false;
	for (size_t i = 0; i < a->str.len; i++) {
		unsigned char ch = (unsigned char)a->str.ptr[i];
		if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"\\]", ch) != NULL)
			return false;
	}
	return true;
}

int imap_parse_flags(const struct imap_arg *arg, unsigned *flags_r,
		     const char ***keywords_r, size_t *count_r,
		     const char **error_r)
{
	const struct imap_arg *items = arg;
	size_t n = 1;
	if (arg->type == IMAP_ARG_LIST) {
		items = arg->list;
		n = arg->list_count;
	}
	*flags_r = 0;
	*keywords_r = NULL;
	*count_r = 0;
	const char **kw = xcalloc(n + 1, sizeof(*kw));
	size_t kn = 0;
	for (size_t i = 0; i < n; i++) {
		const struct imap_arg *a = &items[i];
		if (!imap_arg_is_atom(a)) {
			*error_r = "Invalid flag";
			goto fail;
		}
		if (a->str.len > 0 && a->str.ptr[0] == '\\') {
			size_t k;
			for (k = 0; k < sizeof(system_flags) / sizeof(system_flags[0]); k++) {
				if (slice_eq_ci(a->str, system_flags[k].name))
					break;
			}
			if (k == sizeof(system_flags) / sizeof(system_flags[0])) {
				*error_r = slice_eq_ci(a->str, "\\Recent")
						   ? "\\Recent cannot be set"
						   : "Unknown system flag";
				goto fail;
			}
			*flags_r |= system_flags[k].flag;
			continue;
		}
		if (!valid_keyword(a)) {
			*error_r = "Invalid keyword";
			goto fail;
		}
		bool dup = false;
		for (size_t j = 0; j < kn && !dup; j++)
			dup = strcasecmp(kw[j], a->str.ptr) == 0;
		if (!dup)
			kw[kn++] = a->str.ptr;
	}
	*keywords_r = kw;
	*count_r = kn;
	return 0;
fail:
	free(kw);
	return -1;
}

/* ---- dispatch -------------------------------------------------------- */

static bool state_allows(const struct imap_client *c, unsigned flags)
{
	switch (c->state) {
	case IMAP_STATE_NOT_AUTH: return (flags & IMAP_CMD_NOT_AUTH) != 0;
	case IMAP_STATE_AUTH: return (flags & IMAP_CMD_AUTH) != 0;
	case IMAP_STATE_SELECTED: return (flags & IMAP_CMD_SELECTED) != 0;
	default: return false;
	}
}

static const char *state_error(const struct imap_client *c, unsigned flags)
{
	if (c->state == IMAP_STATE_NOT_AUTH)
		return "[CLIENTBUG] Command not valid before login";
	if ((flags & IMAP_CMD_SELECTED) && !(flags & IMAP_CMD_AUTH))
		return "[CLIENTBUG] No mailbox selected";
	if (flags & IMAP_CMD_NOT_AUTH)
		return "[CLIENTBUG] Command not valid after login";
	return "[CLIENTBUG] Command not valid in this state";
}

void imap_client_after_command(struct imap_client *c)
{
	imap_parser_set_limits(c->parser, c->state == IMAP_STATE_NOT_AUTH
						  ? &c->server->set.limits_prelogin
						  : &c->server->set.limits);
	/* relaxed loads: SIGHUP may change them (imap_server_reload) */
	const struct imap_settings *set = &c->server->set;
	net_conn_set_timeout(c->conn,
			     c->idling ? __atomic_load_n(&set->idle_keepalive,
							 __ATOMIC_RELAXED)
			     : c->state == IMAP_STATE_NOT_AUTH
				     ? __atomic_load_n(&set->timeout_login,
						       __ATOMIC_RELAXED)
				     : __atomic_load_n(&set->timeout,
						       __ATOMIC_RELAXED));
}

void imap_client_abort_streams(struct imap_client *c)
{
	for (size_t i = 0; i < c->writer_count; i++) {
		if (c->writers[i] != NULL)
			store_blob_writer_abort(&c->writers[i]);
	}
	free(c->writers);
	c->writers = NULL;
	c->writer_count = 0;
	/* freed, not kept: an APPEND grew it to CHUNK_SIZE, and a session
	 * that then sits in IDLE for hours (a client saving to Sent, then
	 * waiting for mail) held 256 KiB for nothing */
	buf_free(&c->chunk);
	c->stream_failed = false;
	memset(&c->stream_err, 0, sizeof(c->stream_err));
}

static void command_task(void *session, struct net_conn *conn, void *arg)
{
	struct imap_client *c = session;
	struct imap_cmd *cmd = &c->cmd;
	cmd->def->fn(cmd);
	if (!cmd->replied && !cmd->continues)
		imap_cmd_no(cmd, "[SERVERBUG] Command gave no reply (session %s)",
			    c->sid);
	/* streamed literals not taken by the command are dropped */
	if (!cmd->continues)
		imap_client_abort_streams(c);
	imap_client_after_command(c);
	if (c->logged_out)
		net_conn_close(conn);
	c->task_running = false;
}

/* A whole command was parsed. Returns true if input processing must stop
 * (a task runs, or the connection changed under us). */
static bool dispatch(struct imap_client *c)
{
	struct imap_cmd *cmd = &c->cmd;
	memset(cmd, 0, sizeof(*cmd));
	cmd->client = c;
	cmd->tag = imap_parser_tag(c->parser).ptr;
	cmd->args = imap_parser_args(c->parser, NULL);
	struct slice name = imap_parser_name(c->parser);
	if (slice_eq_ci(name, "UID")) {
		if (cmd->args[0].type != IMAP_ARG_ATOM)
			return io_write_line(c, "%s BAD [CLIENTBUG] UID needs a command",
					     cmd->tag);
		name = cmd->args[0].str;
		cmd->args++;
		cmd->uid = true;
	}
	const struct imap_command_def *def = imap_command_find(name);
	if (def == NULL || (cmd->uid && !(def->flags & IMAP_CMD_UID))) {
		imap_client_abort_streams(c);
		return io_write_line(c, "%s BAD [CLIENTBUG] Unknown command",
				     cmd->tag);
	}
	cmd->def = def;
	cmd->name = def->name;
	cmd->enabled_before = c->enabled;
	/* RFC 9586 3: once UIDONLY is on, message numbers are refused */
	if ((c->enabled & IMAP_ENABLED_UIDONLY) && !cmd->uid &&
	    (def->flags & IMAP_CMD_UID) && def->fn != cmd_expunge) {
		imap_client_abort_streams(c);
		return io_write_line(c, "%s BAD [UIDREQUIRED] %s takes UIDs only "
				     "(UIDONLY is enabled): use UID %s", cmd->tag,
				     def->name, def->name);
	}
	if (!state_allows(c, def->flags)) {
		imap_client_abort_streams(c);
		return io_write_line(c, "%s BAD %s", cmd->tag,
				     state_error(c, def->flags));
	}
	if (def->flags & IMAP_CMD_IO_THREAD) {
		def->fn(cmd);
		imap_client_after_command(c);
		return false;
	}
	c->task_running = true;
	if (net_conn_run(c->conn, command_task, NULL) < 0)
		c->task_running = false;
	return true;
}

/* ---- literals -------------------------------------------------------- */

/* The message literals of APPEND and REPLACE go to disk; everything else
 * (CATENATE's TEXT parts too: they are put together with the URLs' parts
 * once the command is read) is buffered. */
static bool literal_is_message(struct imap_client *c,
			       const struct imap_literal_info *info)
{
	struct slice name = imap_parser_name(c->parser);
	unsigned first;
	if (c->state == IMAP_STATE_NOT_AUTH)
		return false;
	if (slice_eq_ci(name, "APPEND"))
		first = 1;    /* APPEND mailbox ... */
	else if (slice_eq_ci(name, "REPLACE"))
		first = 2;    /* REPLACE n mailbox ... (RFC 8508) */
	else if (slice_eq_ci(name, "UID") &&
		 slice_eq_ci(imap_parser_top_arg(c->parser, 0), "REPLACE"))
		first = 3;
	else
		return false;
	if (info->arg_index < first || info->depth > 1)
		return false;
	/* RFC 6855 "UTF8 (~{n})" is depth 1; RFC 4469 "CATENATE (...)" is
	 * buffered */
	return info->depth == 0 ||
	       !slice_eq_ci(imap_parser_top_arg(c->parser, info->arg_index - 1),
			    "CATENATE");
}

static bool handle_literal(struct imap_client *c)
{
	struct imap_literal_info info;
	imap_parser_literal(c->parser, &info);
	const char *tag = imap_parser_tag(c->parser).ptr;
	struct slice name = imap_parser_name(c->parser);
	const struct imap_command_def *def = imap_command_find(name);
	if (!slice_eq_ci(name, "UID") &&
	    (def == NULL || !state_allows(c, def->flags))) {
		/* no use reading data for a command that cannot run */
		imap_parser_literal_accept(c->parser, IMAP_LITERAL_REFUSE);
		imap_client_abort_streams(c);
		return io_write_line(c, "%s BAD %s", tag,
				     def == NULL ? "[CLIENTBUG] Unknown command"
						 : state_error(c, def->flags));
	}
	bool message = literal_is_message(c, &info);
	uint64_t limit = message ? c->server->set.append_limit
				 : (c->state == IMAP_STATE_NOT_AUTH
					    ? c->server->set.limits_prelogin.max_literal
					    : c->server->set.limits.max_literal);
	if (info.size > limit) {
		imap_parser_literal_accept(c->parser, IMAP_LITERAL_REFUSE);
		imap_client_abort_streams(c);
		/* RFC 7888 4 / RFC 9051 7.1: NO before "+" for {n}; a
		 * non-synchronising one is read and discarded. */
		return io_write_line(c, "%s %s [TOOBIG] Literal too big (limit %llu)",
				     tag, info.sync ? "NO" : "BAD",
				     (unsigned long long)limit);
	}
	if (message && c->stream_failed && info.sync) {
		/* an earlier message of this MULTIAPPEND already failed:
		 * refuse before the client sends more */
		imap_parser_literal_accept(c->parser, IMAP_LITERAL_REFUSE);
		bool stop = io_write_line(c, "%s NO [%s] %s", tag,
					  imap_store_error_code(c->stream_err.kind),
					  c->stream_err.msg);
		imap_client_abort_streams(c);
		return stop;
	}
	if (imap_parser_literal_accept(c->parser, message ? IMAP_LITERAL_STREAM
							  : IMAP_LITERAL_BUFFER) < 0) {
		/* the literals of this command together are too big */
		imap_client_abort_streams(c);
		return io_write_line(c, "%s %s [TOOBIG] Command too big", tag,
				     info.sync ? "NO" : "BAD");
	}
	c->stream_binary = message && info.literal8;
	if (info.sync)
		return io_write_line(c, "+ Ready for literal data");
	return false;
}

/* stream_task's argument: the literal's stream index, and whether this
 * chunk ends the literal */
#define STREAM_LAST ((uintptr_t)1 << 31)
#define STREAM_INDEX_MASK (STREAM_LAST - 1)

static void stream_task(void *session, struct net_conn *conn, void *arg)
{
	struct imap_client *c = session;
	uint32_t index = (uint32_t)((uintptr_t)arg & STREAM_INDEX_MASK);
	bool last = ((uintptr_t)arg & STREAM_LAST) != 0;
	if (!c->stream_failed) {
		if (index >= c->writer_count) {
			c->writers = xrealloc(c->writers,
					      (index + 1) * sizeof(*c->writers));
			for (size_t i = c->writer_count; i <= index; i++)
				c->writers[i] = NULL;
			c->writer_count = index + 1;
		}
		if (c->writers[index] == NULL &&
		    (store_blob_writer_create(c->store_user, &c->writers[index],
					      &c->stream_err) < 0 ||
		     /* RFC 3516 4.4: literal8 content is stored as sent */
		     (c->stream_binary &&
		      store_blob_writer_set_binary(c->writers[index],
						   &c->stream_err) < 0)))
			c->stream_failed = true;
		if (!c->stream_failed && c->chunk.len > 0 &&
		    store_blob_writer_write(c->writers[index], c->chunk.data,
					    c->chunk.len, &c->stream_err) < 0)
			c->stream_failed = true;
		/* the literal is complete: the message is analysed and made
		 * durable now, while the client sends the next one, not
		 * after the whole command has come (store_blob_writer_finish) */
		if (!c->stream_failed && last &&
		    store_blob_writer_finish(c->writers[index],
					     &c->stream_err) < 0)
			c->stream_failed = true;
	}
	buf_reset(&c->chunk);
	c->task_running = false;
}

static bool handle_literal_data(struct imap_client *c, struct slice data,
				bool last, uint32_t index)
{
	if (!c->stream_failed)
		buf_append(&c->chunk, data.ptr, data.len);
	if (!last && c->chunk.len < CHUNK_SIZE)
		return false;
	c->task_running = true;
	uintptr_t arg = (uintptr_t)index | (last ? STREAM_LAST : 0);
	if (net_conn_run(c->conn, stream_task, (void *)arg) < 0)
		c->task_running = false;
	return true;
}

/* ---- input ----------------------------------------------------------- */

static bool handle_parse_error(struct imap_client *c)
{
	enum imap_parse_error_code code;
	const char *msg = imap_parser_error(c->parser, &code);
	struct slice tag = imap_parser_tag(c->parser);
	const char *rc = code == IMAP_PERR_TOOBIG ? "TOOBIG"
			 : code == IMAP_PERR_LIMIT ? "LIMIT" : "CLIENTBUG";
	imap_client_abort_streams(c);
	if (tag.len == 0)
		return io_write_line(c, "* BAD [%s] %s", rc, msg);
	return io_write_line(c, "%.*s BAD [%s] %s", (int)tag.len, tag.ptr, rc,
			     msg);
}

/* Reads one CRLF line for IDLE / AUTHENTICATE. */
static bool read_line(struct imap_client *c, struct evbuffer *in)
{
	size_t len;
	char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
	if (line == NULL) {
		if (evbuffer_get_length(in) > SASL_LINE_MAX) {
			io_write_line(c, "* BYE [TOOBIG] Line too long");
			net_conn_close(c->conn);
			c->input_mode = IMAP_MODE_LOGOUT;
			return true;
		}
		return true;
	}
	if (c->input_mode == IMAP_MODE_IDLE)
		imap_client_idle_line(c, line, len);
	else
		imap_client_sasl_line(c, line, len);
	free(line);
	return c->task_running;
}

static void client_input(void *session, struct net_conn *conn)
{
	struct imap_client *c = session;
	struct evbuffer *in = net_conn_input(conn);
	while (!c->task_running && c->input_mode != IMAP_MODE_LOGOUT) {
		if (c->input_mode == IMAP_MODE_IDLE || c->input_mode == IMAP_MODE_SASL) {
			if (read_line(c, in))
				break;
			continue;
		}
		size_t n = evbuffer_get_contiguous_space(in);
		if (n == 0)
			break;
		const char *data = (const char *)evbuffer_pullup(in, (ssize_t)n);
		size_t used = 0;
		enum imap_parse_result r = imap_parser_feed(c->parser, data, n,
							    &used);
		bool stop = false;
		switch (r) {
		case IMAP_PARSE_NEED_MORE:
			break;
		case IMAP_PARSE_COMMAND:
			stop = dispatch(c);
			break;
		case IMAP_PARSE_LITERAL:
			stop = handle_literal(c);
			break;
		case IMAP_PARSE_LITERAL_DATA: {
			bool last;
			uint32_t index;
			struct slice d = imap_parser_literal_data(c->parser, &last,
								  &index);
			stop = handle_literal_data(c, d, last, index);
			break;
		}
		case IMAP_PARSE_ERROR:
			stop = handle_parse_error(c);
			break;
		}
		evbuffer_drain(in, used);
		if (stop)
			break;
	}
}

/* ---- connection hooks ------------------------------------------------ */

static void *client_accept(struct net_conn *conn, void *proto_ctx)
{
	struct imap_server *server = proto_ctx;
	struct imap_client *c = xcalloc(1, sizeof(*c));
	c->server = server;
	c->conn = conn;
	c->sid = net_conn_id(conn);
	c->state = IMAP_STATE_NOT_AUTH;
	c->tls = net_conn_is_tls(conn);
	c->local = net_conn_is_local(conn);
	c->parser = imap_parser_create(&server->set.limits_prelogin);
	atomic_init(&c->change_pending, false);
	buf_init(&c->chunk, 0);
	buf_init(&c->out, 0);
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "* OK [CAPABILITY ");
	imap_client_capabilities(c, &b);
	buf_append_str(&b, "] Loft IMAP ready\r\n");
	net_conn_write(conn, b.data, b.len);
	buf_free(&b);
	net_conn_set_timeout(conn, __atomic_load_n(&server->set.timeout_login,
						   __ATOMIC_RELAXED));
	log_debug("imap", c->sid, "connect from %s", net_conn_peer(conn));
	return c;
}

void imap_client_logout_user(struct imap_client *c)
{
	if (c->sub != NULL)
		store_unsubscribe(&c->sub);
	imap_notify_off(c);
	if (c->view != NULL)
		store_view_close(&c->view);
	free(c->mailbox);
	c->mailbox = NULL;
	atomic_store(&c->selected_id, 0);
	imap_acl_unselect(c);
	c->readonly = false;
	imap_context_clear(c);
	imap_client_set_searchres(c, NULL, 0);
	imap_client_abort_streams(c);
	if (c->store_user != NULL)
		store_user_unref(&c->store_user);
	if (c->counted) {
		imap_server_conn_remove(c->server, c->user.id,
					net_conn_peer(c->conn));
		c->counted = false;
	}
	memset(&c->user, 0, sizeof(c->user));
}

static void client_closed(void *session, struct net_conn *conn)
{
	struct imap_client *c = session;
	imap_client_logout_user(c);
	imap_notify_free(&c->notify);
	if (c->sasl != NULL)
		auth_sasl_free(&c->sasl);
	free(c->sasl_tag);
	free(c->idle_tag);
	free(c->vanished);
	free(c->told);
	free_keywords(c);
	buf_free(&c->chunk);
	buf_free(&c->out);
	imap_parser_destroy(&c->parser);
	log_debug("imap", c->sid, "disconnected");
	free(c);
}

static bool client_timeout(void *session, struct net_conn *conn)
{
	struct imap_client *c = session;
	if (c->task_running)
		return false;
	if (c->idling) {
		/* RFC 9051 6.3.13: IDLE keeps the session; a keepalive
		 * finds dead peers */
		net_conn_write(conn, "* OK Still here\r\n", 17);
		/* loftctl (retention, check, user set) writes the index
		 * from another process, unheard by the hub: look for its
		 * changes at each keepalive, as a NOOP would; when the
		 * store can tell nothing was committed since the last
		 * sync, without opening the index (an idle account's
		 * stays closed: a read here kept a connection, ~100 KB,
		 * open for the next 10-15 s, and with several sessions
		 * per account most accounts always held one). */
		if (c->view != NULL && store_view_maybe_changed(c->view) &&
		    !atomic_exchange(&c->change_pending, true) &&
		    net_conn_run(conn, change_task, NULL) < 0)
			atomic_store(&c->change_pending, false);
		return false;
	}
	net_conn_write(conn, "* BYE Autologout; idle for too long\r\n", 37);
	return true;
}

/* loftd is stopping: RFC 9051 7.1.5, the server says BYE before it
 * closes. */
static void client_shutdown(void *session, struct net_conn *conn)
{
	static const char bye[] = "* BYE Server shutting down\r\n";
	net_conn_write(conn, bye, sizeof(bye) - 1);
}

const struct net_proto imap_proto = {
	.name = "imap",
	.accept = client_accept,
	.input = client_input,
	.closed = client_closed,
	.timeout = client_timeout,
	.shutdown = client_shutdown,
	/* RFC 9051 7.1.5 BYE; RFC 5530 UNAVAILABLE: try again later */
	.banned_reply = "* BYE [UNAVAILABLE] Too many failed logins from your "
			"address, try again later\r\n",
	/* a command's response leaves in one piece (tasks never wait for
	 * the client: a continuation ends the task) */
	.cork = true,
};
