/*
 * The LMTP session on the I/O thread: reads command lines (bounded),
 * answers what needs no store (LHLO, MAIL, DATA's 354, NOOP, QUIT, ...)
 * and hands RCPT lookups, message data and the final commits to workers
 * (lmtp-deliver.c) with net_conn_run. While a task runs, the connection
 * reads nothing, so pipelined commands are answered in order (RFC 2920).
 *
 * DATA is decoded here (dot-unstuffing, end-of-data) into a chunk buffer
 * of LMTP_CHUNK bytes; each full chunk goes to a worker that appends it to
 * every recipient's blob writer. A message of any size costs one chunk of
 * memory.
 */
#include "lmtp-private.h"

#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "metrics.h"

/* ---- replies ------------------------------------------------------ */

/* /metrics: one count per reply, by its class (2xx, 4xx, 5xx). */
void lmtp_count_reply(char first_digit)
{
	metrics_count("loft_commands_total", "Commands answered, per protocol "
		      "and result.", first_digit == '2' || first_digit == '3' ?
		      "proto=\"lmtp\",result=\"ok\"" : first_digit == '4' ?
		      "proto=\"lmtp\",result=\"tempfail\"" :
		      "proto=\"lmtp\",result=\"permfail\"");
}

static void reply(struct lmtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void reply(struct lmtp_session *s, const char *fmt, ...)
{
	va_list ap;

	lmtp_count_reply(fmt[0]);
	va_start(ap, fmt);
	net_conn_vprintf(s->conn, fmt, ap);
	va_end(ap);
	net_conn_write(s->conn, "\r\n", 2);
}

/* A refused command. Too many in a row and we hang up: a client that
 * speaks something else should not keep a session forever. */
static void reply_error(struct lmtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void reply_error(struct lmtp_session *s, const char *fmt, ...)
{
	va_list ap;

	lmtp_count_reply(fmt[0]);
	va_start(ap, fmt);
	net_conn_vprintf(s->conn, fmt, ap);
	va_end(ap);
	net_conn_write(s->conn, "\r\n", 2);
	if (++s->errors >= LMTP_MAX_ERRORS) {
		reply(s, "421 4.7.0 %s Too many errors, closing connection",
		      s->server->hostname);
		s->quitting = true;
		net_conn_close(s->conn);
	}
}

/* ---- transaction -------------------------------------------------- */

void lmtp_transaction_reset(struct lmtp_session *s)
{
	if (s->ds != NULL)
		delivery_end(s->ds);
	s->sender[0] = '\0';
	s->null_sender = false;
	s->declared_size = 0;
	s->data_size = 0;
	s->data_started = false;
	s->data_too_big = false;
	/* An idle session keeps no chunk memory. */
	buf_free(&s->chunk);
	buf_init(&s->chunk, 0);
	if (s->state != LMTP_STATE_GREETED)
		s->state = LMTP_STATE_READY;
}

/* Resets on a worker when store handles are held, then sends text. */
static bool reset_and_reply(struct lmtp_session *s, const char *text)
{
	if (delivery_rcpt_count(s->ds) == 0) {
		lmtp_transaction_reset(s);
		reply(s, "%s", text);
		return false;
	}
	char *copy = xstrdup(text);
	if (net_conn_run(s->conn, lmtp_task_reset, copy) < 0) {
		free(copy); /* closing: the handles go at close */
		return false;
	}
	return true;
}

/* ---- commands ----------------------------------------------------- */

static bool cmd_lhlo(struct lmtp_session *s, struct slice args)
{
	char text[512];
	size_t n = 0;

	while (args.len > 0 && args.ptr[args.len - 1] == ' ')
		args.len--;
	if (args.len == 0 || memchr(args.ptr, ' ', args.len) != NULL) {
		reply_error(s, "501 5.5.4 Usage: LHLO hostname");
		return false;
	}
	/* Kept for the Received: header, so only harmless characters. */
	for (size_t i = 0; i < args.len && n < sizeof(s->lhlo) - 1; i++) {
		char c = args.ptr[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || strchr(".-_:[]", c);
		s->lhlo[n++] = ok ? c : '_';
	}
	s->lhlo[n] = '\0';
	if (s->state == LMTP_STATE_GREETED)
		s->state = LMTP_STATE_READY;
	/* RFC 5321 4.1.4: a later LHLO resets the transaction. */
	snprintf(text, sizeof(text),
		 "250-%s\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
		 "250-SIZE %llu\r\n250 PIPELINING",
		 s->server->hostname,
		 (unsigned long long)s->server->max_message_size);
	return reset_and_reply(s, text);
}

static void cmd_mail(struct lmtp_session *s, struct slice args)
{
	struct lmtp_path path;
	struct slice params, key, value;
	const char *why;
	uint64_t size = 0;
	int ret;

	if (s->state == LMTP_STATE_GREETED) {
		reply_error(s, "503 5.5.1 Send LHLO first");
		return;
	}
	if (s->state != LMTP_STATE_READY) {
		reply_error(s, "503 5.5.1 Nested MAIL command");
		return;
	}
	if (lmtp_parse_path(args, "FROM", false, true, &path, &params, &why) < 0) {
		reply_error(s, "501 5.1.7 Invalid sender address: %s", why);
		return;
	}
	while ((ret = lmtp_param_next(&params, &key, &value)) > 0) {
		if (slice_eq_ci(key, "SIZE")) {
			if (lmtp_parse_u64(value, &size) < 0) {
				reply_error(s, "501 5.5.4 Invalid SIZE parameter");
				return;
			}
		} else if (slice_eq_ci(key, "BODY")) {
			if (!slice_eq_ci(value, "7BIT") &&
			    !slice_eq_ci(value, "8BITMIME")) {
				reply_error(s, "501 5.5.4 Unsupported BODY parameter");
				return;
			}
		} else {
			reply_error(s, "555 5.5.4 Unsupported parameter %.*s",
				    (int)key.len, key.ptr);
			return;
		}
	}
	if (ret < 0) {
		reply_error(s, "501 5.5.4 Invalid parameters");
		return;
	}
	/* RFC 1870 6.2: refuse at once what will not fit. */
	if (size > s->server->max_message_size) {
		reply_error(s, "552 5.3.4 Message size exceeds fixed maximum message size");
		return;
	}
	lmtp_path_text(&path, s->sender, sizeof(s->sender));
	s->null_sender = path.null_path;
	s->declared_size = size;
	s->state = LMTP_STATE_MAIL;
	s->txn_counter++;
	snprintf(s->txn_id, sizeof(s->txn_id), "%s-%u", s->sid, s->txn_counter);
	s->errors = 0;
	reply(s, "250 2.1.0 OK");
}

static bool cmd_rcpt(struct lmtp_session *s, struct slice args)
{
	struct lmtp_rcpt_request *req;
	struct slice params, key, value;
	struct lmtp_path path;
	const char *why;
	int ret;

	if (s->state != LMTP_STATE_MAIL) {
		reply_error(s, "503 5.5.1 MAIL needed first");
		return false;
	}
	if (lmtp_parse_path(args, "TO", true, false, &path, &params, &why) < 0) {
		reply_error(s, "501 5.1.3 Invalid recipient address: %s", why);
		return false;
	}
	while ((ret = lmtp_param_next(&params, &key, &value)) > 0) {
		reply_error(s, "555 5.5.4 Unsupported parameter %.*s",
			    (int)key.len, key.ptr);
		return false;
	}
	if (ret < 0) {
		reply_error(s, "501 5.5.4 Invalid parameters");
		return false;
	}
	if (delivery_rcpt_count(s->ds) >= s->server->max_recipients) {
		/* RFC 5321 4.5.3.1.10: 452 and the client sends the rest
		 * in another transaction. */
		reply(s, "452 4.5.3 Too many recipients");
		return false;
	}
	req = xmalloc(sizeof(*req));
	req->path = path;
	if (net_conn_run(s->conn, lmtp_task_rcpt, req) < 0) {
		free(req);
		return false;
	}
	return true;
}

static void cmd_data(struct lmtp_session *s, struct slice args)
{
	if (s->state != LMTP_STATE_MAIL) {
		reply_error(s, "503 5.5.1 MAIL needed first");
		return;
	}
	if (args.len > 0) {
		reply_error(s, "501 5.5.4 DATA takes no arguments");
		return;
	}
	/* RFC 2033 4.2: no accepted recipient, no DATA. */
	if (delivery_rcpt_count(s->ds) == 0) {
		reply_error(s, "503 5.5.1 No valid recipients");
		return;
	}
	lmtp_dot_init(&s->dot, false);
	buf_reset(&s->chunk);
	s->data_size = 0;
	s->data_started = false;
	s->data_too_big = false;
	s->state = LMTP_STATE_DATA;
	s->errors = 0;
	reply(s, "354 Start mail input; end with <CRLF>.<CRLF>");
}

/* Returns true when a worker task was started: stop reading until it is
 * done (net calls input again then). */
static bool handle_line(struct lmtp_session *s, const char *line, size_t len)
{
	struct slice args;
	char verb[16];

	if (lmtp_parse_verb(line, len, verb, &args) < 0) {
		reply_error(s, "500 5.5.2 Syntax error, command unrecognized");
		return false;
	}
	if (strcmp(verb, "LHLO") == 0)
		return cmd_lhlo(s, args);
	if (strcmp(verb, "MAIL") == 0) {
		cmd_mail(s, args);
	} else if (strcmp(verb, "RCPT") == 0) {
		return cmd_rcpt(s, args);
	} else if (strcmp(verb, "DATA") == 0) {
		cmd_data(s, args);
	} else if (strcmp(verb, "RSET") == 0) {
		s->errors = 0;
		return reset_and_reply(s, "250 2.0.0 OK");
	} else if (strcmp(verb, "NOOP") == 0) {
		reply(s, "250 2.0.0 OK");
	} else if (strcmp(verb, "QUIT") == 0) {
		s->quitting = true;
		/* Store handles are let go on a worker, not here. */
		if (net_conn_run(s->conn, lmtp_task_quit, NULL) == 0)
			return true;
		reply(s, "221 2.0.0 %s Bye", s->server->hostname);
		net_conn_close(s->conn);
	} else if (strcmp(verb, "VRFY") == 0 || strcmp(verb, "EXPN") == 0) {
		/* Address probing is not ours to help with; RCPT answers. */
		reply_error(s, "502 5.5.1 %s command is disabled", verb);
	} else if (strcmp(verb, "HELP") == 0) {
		reply(s, "214 2.0.0 Commands: LHLO MAIL RCPT DATA RSET NOOP QUIT");
	} else if (strcmp(verb, "HELO") == 0 || strcmp(verb, "EHLO") == 0) {
		/* RFC 2033 4.1: an LMTP server must not accept them. */
		reply_error(s, "500 5.5.1 This is LMTP: use LHLO");
	} else {
		reply_error(s, "500 5.5.1 Unknown command");
	}
	return false;
}

/* ---- input -------------------------------------------------------- */

static bool run_task(struct lmtp_session *s, net_task_fn *fn)
{
	if (net_conn_run(s->conn, fn, NULL) < 0) {
		s->quitting = true; /* the connection is closing */
		return false;
	}
	return true;
}

/* Feeds buffered DATA bytes to the decoder. Returns true when a worker
 * task was started (a full chunk, or the end of the message). */
static bool data_input(struct lmtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec v;

	while (evbuffer_peek(in, -1, NULL, &v, 1) >= 1 && v.iov_len > 0) {
		size_t room = LMTP_CHUNK - s->chunk.len - 1;
		size_t n = v.iov_len < room ? v.iov_len : room;
		size_t before = s->chunk.len, used = 0;
		int ret = 0;

		if (n > 0) {
			ret = lmtp_dot_feed(&s->dot, v.iov_base, n, &used,
					    &s->chunk);
			evbuffer_drain(in, used);
			s->data_size += s->chunk.len - before;
		}
		/* Too big: read on to the end, keep nothing, refuse then. */
		if (s->data_size > s->server->max_message_size)
			s->data_too_big = true;
		if (s->data_too_big)
			buf_reset(&s->chunk);
		if (ret == 1) {
			s->state = LMTP_STATE_READY;
			return run_task(s, lmtp_task_data_end);
		}
		if (s->chunk.len + 2 > LMTP_CHUNK)
			return run_task(s, lmtp_task_data_chunk);
	}
	return false;
}

/* Reads command lines. Returns true when a worker task was started. */
static bool line_input(struct lmtp_session *s, struct evbuffer *in,
		       bool *more_r)
{
	struct buf line;
	bool started;

	*more_r = false;
	if (net_line_ready(in) &&
	    net_conn_output_pending(s->conn) > LMTP_OUTPUT_MAX) {
		*more_r = true;
		return run_task(s, lmtp_task_drain);
	}
	buf_init(&line, LMTP_MAX_LINE + 1);
	switch (net_line_take(in, LMTP_MAX_LINE, &s->skip_line, &line)) {
	case NET_LINE_MORE:
		buf_free(&line);
		return false;
	case NET_LINE_TOO_LONG:
		buf_free(&line);
		*more_r = !s->skip_line;
		reply_error(s, "500 5.5.2 Line too long");
		return false;
	case NET_LINE_OK:
		break;
	}
	*more_r = true;
	started = handle_line(s, line.data, line.len);
	buf_free(&line);
	return started;
}

static void lmtp_input(void *session, struct net_conn *conn)
{
	struct lmtp_session *s = session;
	struct evbuffer *in = net_conn_input(conn);
	bool more = true;

	while (!s->quitting && more) {
		if (s->state == LMTP_STATE_DATA) {
			if (data_input(s, in))
				return;
			more = s->state != LMTP_STATE_DATA &&
			       evbuffer_get_length(in) > 0;
			continue;
		}
		if (line_input(s, in, &more))
			return;
	}
	if (s->quitting)
		evbuffer_drain(in, evbuffer_get_length(in));
}

/* ---- connection hooks --------------------------------------------- */

static void *lmtp_accept(struct net_conn *conn, void *proto_ctx)
{
	struct lmtp_server *srv = proto_ctx;
	struct lmtp_session *s;

	if (srv == NULL || srv->delivery == NULL)
		return NULL;
	s = xcalloc(1, sizeof(*s));
	s->server = srv;
	s->conn = conn;
	snprintf(s->sid, sizeof(s->sid), "%s", net_conn_id(conn));
	s->state = LMTP_STATE_GREETED;
	s->ds = delivery_session_create(srv->delivery, s->sid);
	buf_init(&s->chunk, 0);
	net_conn_set_timeout(conn, __atomic_load_n(&srv->timeout,
						   __ATOMIC_RELAXED));
	reply(s, "220 %s LMTP Loft ready", srv->hostname);
	return s;
}

static void session_free(struct lmtp_session *s)
{
	lmtp_transaction_reset(s);
	delivery_session_destroy(&s->ds);
	buf_free(&s->chunk);
	free(s);
}

static bool session_holds_store(const struct lmtp_session *s)
{
	return delivery_session_busy(s->ds);
}

static void release_session(void *arg)
{
	session_free(arg);
}

static void lmtp_closed(void *session, struct net_conn *conn)
{
	struct lmtp_session *s = session;

	/* A connection dropped in the middle of DATA lands here: the
	 * writers are aborted and nothing is stored. Letting go of the last
	 * reference to a user closes its index (a commit, an fsync), which
	 * must not stall this I/O thread, and net has no worker for a closed
	 * connection: a short-lived thread does it. (A QUIT does it on the
	 * session's worker.) */
	if (s->state == LMTP_STATE_DATA)
		log_info("lmtp", s->sid,
			 "connection lost during DATA, %llu bytes discarded",
			 (unsigned long long)s->data_size);
	if (!session_holds_store(s)) {
		session_free(s);
		return;
	}
	s->conn = NULL;
	offload_run(&s->server->release, release_session, s);
}

static bool lmtp_timeout(void *session, struct net_conn *conn)
{
	struct lmtp_session *s = session;

	reply(s, "421 4.4.2 %s Timeout, closing connection",
	      s->server->hostname);
	return true;
}

/* loftd is stopping: RFC 5321 3.8, a server that must close says 421. */
static void lmtp_shutdown(void *session, struct net_conn *conn)
{
	struct lmtp_session *s = session;
	reply(s, "421 4.3.2 %s Server shutting down", s->server->hostname);
}

const struct net_proto lmtp_proto = {
	.name = "lmtp",
	.accept = lmtp_accept,
	.input = lmtp_input,
	.closed = lmtp_closed,
	.timeout = lmtp_timeout,
	.shutdown = lmtp_shutdown,
};
