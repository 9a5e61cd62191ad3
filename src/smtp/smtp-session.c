/*
 * The SMTP session on the I/O thread: bounded command lines, the command
 * table, the replies that need nothing blocking, and DATA/BDAT decoding
 * into chunks that workers (smtp-task.c) write to the store (MX) or the
 * queue (submission). While a task runs the connection reads nothing, so
 * pipelined commands are answered in order (RFC 2920). Every reply
 * carries an enhanced status code (RFC 2034).
 */
#include "smtp-private.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

void smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	net_conn_vprintf(s->conn, fmt, ap);
	va_end(ap);
	net_conn_write(s->conn, "\r\n", 2);
}

static void reply_error(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void reply_error(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	net_conn_vprintf(s->conn, fmt, ap);
	va_end(ap);
	net_conn_write(s->conn, "\r\n", 2);
	if (++s->errors >= SMTP_MAX_ERRORS) {
		smtp_reply(s, "421 4.7.0 %s Too many errors, closing connection",
			   s->srv->hostname);
		s->quitting = true;
		net_conn_close(s->conn);
	}
}

bool smtp_is_submission(const struct smtp_session *s)
{
	return s->srv->mode == SMTP_MODE_SUBMISSION;
}

/* ---- transaction -------------------------------------------------- */

void smtp_transaction_reset(struct smtp_session *s)
{
	if (s->ds != NULL)
		delivery_end(s->ds);
	if (s->qw != NULL)
		queue_writer_abort(&s->qw);
	if (s->sent_w != NULL)
		store_blob_writer_abort(&s->sent_w);
	if (s->sent_user != NULL)
		store_user_unref(&s->sent_user);
	s->sent_copy = false;
	for (unsigned i = 0; i < s->rcpt_count; i++)
		free(s->rcpts[i].orcpt);
	s->rcpt_count = 0;
	s->sender[0] = s->sender_addr[0] = '\0';
	s->declared_size = 0;
	s->eightbit = s->smtputf8 = s->requiretls = false;
	s->ret = QUEUE_RET_DEFAULT;
	free(s->envid);
	s->envid = NULL;
	s->data_size = 0;
	s->data_too_big = s->data_failed = s->bdat_used = s->bdat_last = false;
	s->bdat_left = 0;
	memset(&s->qerr, 0, sizeof(s->qerr));
	buf_free(&s->chunk);
	buf_init(&s->chunk, 0);
	buf_free(&s->head);
	buf_init(&s->head, 0);
	smtp_check_reset(s);
	if (s->state != SMTP_GREETED)
		s->state = SMTP_READY;
}

static bool holds_store(const struct smtp_session *s)
{
	return delivery_rcpt_count(s->ds) > 0 || s->qw != NULL ||
	       s->sent_user != NULL;
}

/* Resets (on a worker when store handles are held), then replies. */
static bool reset_and_reply(struct smtp_session *s, const char *text)
{
	char *copy;

	if (!holds_store(s)) {
		smtp_transaction_reset(s);
		smtp_reply(s, "%s", text);
		return false;
	}
	copy = xstrdup(text);
	if (net_conn_run(s->conn, smtp_task_reset, copy) < 0) {
		free(copy);
		return false;
	}
	return true;
}

static bool run_task(struct smtp_session *s, net_task_fn *fn, void *arg)
{
	if (net_conn_run(s->conn, fn, arg) < 0) {
		s->quitting = true;
		return false;
	}
	return true;
}

/* ---- EHLO, STARTTLS, AUTH ----------------------------------------- */

static bool cleartext_ok(const struct smtp_session *s)
{
	return auth_cleartext_allowed(s->srv->auth, net_conn_is_tls(s->conn),
				      net_conn_is_local(s->conn));
}

static bool cmd_hello(struct smtp_session *s, struct slice args, bool ehlo)
{
	struct buf b;
	size_t n = 0;
	bool r;

	while (args.len > 0 && args.ptr[args.len - 1] == ' ')
		args.len--;
	if (args.len == 0 || memchr(args.ptr, ' ', args.len) != NULL) {
		reply_error(s, "501 5.5.4 Usage: %s hostname",
			    ehlo ? "EHLO" : "HELO");
		return false;
	}
	/* kept for Received:, so only harmless characters */
	for (size_t i = 0; i < args.len && n < sizeof(s->helo) - 1; i++) {
		char c = args.ptr[i];
		bool ok = isalnum((unsigned char)c) || strchr(".-_:[]", c);
		s->helo[n++] = ok ? c : '_';
	}
	s->helo[n] = '\0';
	s->esmtp = ehlo;
	s->state = SMTP_READY;
	buf_init(&b, 0);
	if (!ehlo) {
		buf_printf(&b, "250 %s", s->srv->hostname);
	} else {
		buf_printf(&b, "250-%s Hello %s\r\n", s->srv->hostname, s->helo);
		buf_append_str(&b, "250-PIPELINING\r\n");
		buf_printf(&b, "250-SIZE %llu\r\n",
			   (unsigned long long)s->live->max_message_size);
		buf_append_str(&b, "250-8BITMIME\r\n250-SMTPUTF8\r\n"
				   "250-CHUNKING\r\n250-DSN\r\n");
		if (!net_conn_is_tls(s->conn) && s->srv->tls)
			buf_append_str(&b, "250-STARTTLS\r\n");
		/* RFC 8689: honoured here (the queue never sends such a
		 * message in clear; local copies never leave), and only
		 * offered where the message itself came over TLS */
		if (net_conn_is_tls(s->conn))
			buf_append_str(&b, "250-REQUIRETLS\r\n");
		/* never before TLS except from loopback (or where [auth]
		 * allows cleartext): not even SCRAM, whose exchange is
		 * safe, since the mail that follows would go in clear */
		if (smtp_is_submission(s) && !s->authed && cleartext_ok(s)) {
			const char *m = auth_mechanisms(s->srv->auth, true);
			if (m != NULL && m[0] != '\0')
				buf_printf(&b, "250-AUTH %s\r\n", m);
		}
		/* RFC 4468: the URLs are resolved for the authenticated
		 * account, so BURL is offered once AUTH is done */
		if (smtp_is_submission(s) && s->authed)
			buf_append_str(&b, "250-BURL imap\r\n");
		buf_append_str(&b, "250 ENHANCEDSTATUSCODES");
	}
	/* RFC 5321 4.1.4: EHLO resets the transaction */
	r = reset_and_reply(s, b.data);
	buf_free(&b);
	return r;
}

static bool cmd_starttls(struct smtp_session *s, struct slice args)
{
	if (net_conn_is_tls(s->conn)) {
		reply_error(s, "503 5.5.1 TLS already active");
		return false;
	}
	if (args.len > 0) {
		reply_error(s, "501 5.5.4 STARTTLS takes no arguments");
		return false;
	}
	if (!s->srv->tls) {
		reply_error(s, "454 4.7.0 TLS not available");
		return false;
	}
	if (holds_store(s) || s->state == SMTP_MAIL) {
		reply_error(s, "503 5.5.1 Finish the transaction first");
		return false;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	/* RFC 3207 4.2: forget everything learnt before; net discards the
	 * bytes the client pipelined after the command */
	s->state = SMTP_GREETED;
	s->helo[0] = '\0';
	s->esmtp = false;
	if (net_conn_starttls(s->conn) < 0) {
		log_error("smtp", s->sid, "STARTTLS: cannot start TLS");
		net_conn_close(s->conn);
	}
	/* stop parsing: the input is empty now, the next is encrypted */
	return true;
}

static bool cmd_auth(struct smtp_session *s, struct slice args)
{
	char mech[32], *line;
	size_t n = 0;
	const char *mechs;

	if (!smtp_is_submission(s)) {
		reply_error(s, "502 5.5.1 AUTH is not offered here");
		return false;
	}
	if (s->state == SMTP_GREETED) {
		reply_error(s, "503 5.5.1 Send EHLO first");
		return false;
	}
	if (s->authed) {
		reply_error(s, "503 5.5.1 Already authenticated");
		return false;
	}
	if (s->state != SMTP_READY) {
		reply_error(s, "503 5.5.1 AUTH not allowed during a transaction");
		return false;
	}
	while (n < args.len && args.ptr[n] != ' ' && n < sizeof(mech) - 1) {
		mech[n] = (char)toupper((unsigned char)args.ptr[n]);
		n++;
	}
	mech[n] = '\0';
	if (!cleartext_ok(s)) {
		reply_error(s, "538 5.7.11 Encryption required for "
			       "requested authentication mechanism");
		return false;
	}
	mechs = auth_mechanisms(s->srv->auth, true);
	bool listed = false;
	for (const char *p = mechs; p != NULL && *p != '\0';) {
		size_t l = strcspn(p, " ");
		if (l == n && strncmp(p, mech, n) == 0)
			listed = true;
		p += l;
		while (*p == ' ')
			p++;
	}
	if (!listed) {
		reply_error(s, "504 5.5.4 Unrecognized authentication type");
		return false;
	}
	/* "MECH [initial-response]" goes to the worker as one line */
	line = xstrndup(args.ptr, args.len);
	s->state = SMTP_AUTH;
	return run_task(s, smtp_task_auth, line);
}

/* ---- MAIL, RCPT --------------------------------------------------- */

/* RFC 3461 4: xtext decoding; NULL if malformed. */
static char *xtext_decode(struct slice v)
{
	struct buf b;

	buf_init(&b, 0);
	for (size_t i = 0; i < v.len; i++) {
		unsigned char c = (unsigned char)v.ptr[i];
		if (c == '+') {
			unsigned x;
			char hex[3];
			if (i + 2 >= v.len)
				goto bad;
			hex[0] = v.ptr[i + 1];
			hex[1] = v.ptr[i + 2];
			hex[2] = '\0';
			if (!isxdigit((unsigned char)hex[0]) ||
			    !isxdigit((unsigned char)hex[1]) ||
			    sscanf(hex, "%x", &x) != 1 || x < 33 || x > 126)
				goto bad;
			buf_append_char(&b, (char)x);
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			goto bad;
		} else {
			buf_append_char(&b, (char)c);
		}
	}
	buf_append(&b, "", 0);
	return buf_steal(&b, NULL);
bad:
	buf_free(&b);
	return NULL;
}

static bool utf8_valid(const char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];
		size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3
			   : (c >> 3) == 30 ? 4 : 0;
		if (n == 0 || i + n > len || (n == 2 && c < 0xc2))
			return false;
		for (size_t k = 1; k < n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		i += n;
	}
	return true;
}

static bool has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* MAIL FROM's parameters. Returns false after replying. */
static bool mail_params(struct smtp_session *s, struct slice params)
{
	struct slice key, value;
	int ret;

	while ((ret = lmtp_param_next(&params, &key, &value)) > 0) {
		if (slice_eq_ci(key, "SIZE")) {
			if (lmtp_parse_u64(value, &s->declared_size) < 0) {
				reply_error(s, "501 5.5.4 Invalid SIZE parameter");
				return false;
			}
		} else if (slice_eq_ci(key, "BODY")) {
			if (slice_eq_ci(value, "8BITMIME")) {
				s->eightbit = true;
			} else if (!slice_eq_ci(value, "7BIT")) {
				reply_error(s, "501 5.5.4 Unsupported BODY parameter");
				return false;
			}
		} else if (slice_eq_ci(key, "SMTPUTF8") && value.len == 0) {
			s->smtputf8 = true;
		} else if (slice_eq_ci(key, "RET")) {
			if (slice_eq_ci(value, "FULL")) {
				s->ret = QUEUE_RET_FULL;
			} else if (slice_eq_ci(value, "HDRS")) {
				s->ret = QUEUE_RET_HDRS;
			} else {
				reply_error(s, "501 5.5.4 Invalid RET parameter");
				return false;
			}
		} else if (slice_eq_ci(key, "ENVID")) {
			free(s->envid);
			s->envid = value.len <= 100 ? xtext_decode(value) : NULL;
			if (s->envid == NULL) {
				reply_error(s, "501 5.5.4 Invalid ENVID parameter");
				return false;
			}
		} else if (slice_eq_ci(key, "AUTH")) {
			/* RFC 4954 5: accepted, not trusted */
		} else if (slice_eq_ci(key, "REQUIRETLS") && value.len == 0 &&
			   net_conn_is_tls(s->conn)) {
			s->requiretls = true;
		} else {
			reply_error(s, "555 5.5.4 Unsupported parameter %.*s",
				    (int)(key.len > 40 ? 40 : key.len), key.ptr);
			return false;
		}
	}
	if (ret < 0) {
		reply_error(s, "501 5.5.4 Invalid parameters");
		return false;
	}
	return true;
}

static bool cmd_mail(struct smtp_session *s, struct slice args)
{
	struct lmtp_path path;
	struct slice params;
	const char *why;

	if (s->state == SMTP_GREETED) {
		reply_error(s, "503 5.5.1 Send EHLO first");
		return false;
	}
	if (s->state != SMTP_READY) {
		reply_error(s, "503 5.5.1 Nested MAIL command");
		return false;
	}
	if (smtp_is_submission(s) && !s->authed) {
		/* RFC 4954 6 */
		reply_error(s, "530 5.7.0 Authentication required");
		return false;
	}
	if (lmtp_parse_path(args, "FROM", false, true, &path, &params,
			    &why) < 0) {
		reply_error(s, "501 5.1.7 Invalid sender address: %s", why);
		return false;
	}
	smtp_transaction_reset(s);
	if (!mail_params(s, params)) {
		smtp_transaction_reset(s);
		return false;
	}
	if (has_8bit(path.address) &&
	    (!s->smtputf8 || !utf8_valid(path.address, strlen(path.address)))) {
		reply_error(s, "553 5.6.7 Non-ASCII address needs SMTPUTF8 and "
			       "valid UTF-8");
		smtp_transaction_reset(s);
		return false;
	}
	if (s->declared_size > s->live->max_message_size) {
		reply_error(s, "552 5.3.4 Message size exceeds fixed maximum "
			       "message size");
		smtp_transaction_reset(s);
		return false;
	}
	if (!smtp_limits_message_ok(s->srv->limits, net_conn_peer(s->conn))) {
		log_info("smtp", s->sid, "%s: hourly message limit reached",
			 net_conn_peer(s->conn));
		reply_error(s, "451 4.7.1 Too many messages from your address, "
			       "try again later");
		smtp_transaction_reset(s);
		return false;
	}
	lmtp_path_text(&path, s->sender, sizeof(s->sender));
	snprintf(s->sender_addr, sizeof(s->sender_addr), "%s", path.address);
	s->txn_counter++;
	snprintf(s->txn_id, sizeof(s->txn_id), "%s-%u", s->sid, s->txn_counter);
	if (smtp_is_submission(s)) {
		/* the sender check needs accounts.db: a worker */
		s->state = SMTP_MAIL;
		return run_task(s, smtp_task_sender, NULL);
	}
	s->state = SMTP_MAIL;
	s->errors = 0;
	smtp_reply(s, "250 2.1.0 Ok");
	return false;
}

static bool parse_notify(struct slice v, unsigned *notify_r)
{
	unsigned n = 0;

	while (v.len > 0) {
		size_t l = 0;
		while (l < v.len && v.ptr[l] != ',')
			l++;
		struct slice w = slice_make(v.ptr, l);
		if (slice_eq_ci(w, "NEVER")) n |= QUEUE_NOTIFY_NEVER;
		else if (slice_eq_ci(w, "SUCCESS")) n |= QUEUE_NOTIFY_SUCCESS;
		else if (slice_eq_ci(w, "FAILURE")) n |= QUEUE_NOTIFY_FAILURE;
		else if (slice_eq_ci(w, "DELAY")) n |= QUEUE_NOTIFY_DELAY;
		else return false;
		v.ptr += l;
		v.len -= l;
		if (v.len > 0) {
			v.ptr++;
			v.len--;
			if (v.len == 0)
				return false;
		}
	}
	/* RFC 3461 4.1: NEVER stands alone */
	if (n == 0 || ((n & QUEUE_NOTIFY_NEVER) && n != QUEUE_NOTIFY_NEVER))
		return false;
	*notify_r = n;
	return true;
}

static bool cmd_rcpt(struct smtp_session *s, struct slice args)
{
	struct smtp_rcpt_request *req;
	struct slice params, key, value;
	struct lmtp_path path;
	const char *why;
	unsigned notify = 0;
	char *orcpt = NULL;
	int ret;

	if (s->state != SMTP_MAIL) {
		reply_error(s, "503 5.5.1 MAIL needed first");
		return false;
	}
	if (lmtp_parse_path(args, "TO", true, false, &path, &params, &why) < 0) {
		reply_error(s, "501 5.1.3 Invalid recipient address: %s", why);
		return false;
	}
	while ((ret = lmtp_param_next(&params, &key, &value)) > 0) {
		if (slice_eq_ci(key, "NOTIFY") && parse_notify(value, &notify))
			continue;
		if (slice_eq_ci(key, "ORCPT") && orcpt == NULL && value.len <= 500) {
			orcpt = xtext_decode(value);
			if (orcpt != NULL && strchr(orcpt, ';') != NULL)
				continue;
		}
		free(orcpt);
		reply_error(s, "501 5.5.4 Invalid or unsupported parameter %.*s",
			    (int)(key.len > 40 ? 40 : key.len), key.ptr);
		return false;
	}
	if (ret < 0) {
		free(orcpt);
		reply_error(s, "501 5.5.4 Invalid parameters");
		return false;
	}
	if (has_8bit(path.address) &&
	    (!s->smtputf8 || !utf8_valid(path.address, strlen(path.address)))) {
		free(orcpt);
		reply_error(s, "553 5.6.7 Non-ASCII address needs SMTPUTF8 and "
			       "valid UTF-8");
		return false;
	}
	if (s->rcpt_count >= s->live->max_recipients) {
		free(orcpt);
		/* RFC 5321 4.5.3.1.10 */
		smtp_reply(s, "452 4.5.3 Too many recipients");
		return false;
	}
	req = xcalloc(1, sizeof(*req));
	req->path = path;
	req->notify = notify;
	req->orcpt = orcpt;
	if (!run_task(s, smtp_task_rcpt, req)) {
		free(req->orcpt);
		free(req);
		return false;
	}
	return true;
}

static unsigned accepted(const struct smtp_session *s)
{
	return s->rcpt_count;
}

static void cmd_data(struct smtp_session *s, struct slice args)
{
	if (s->state != SMTP_MAIL) {
		reply_error(s, "503 5.5.1 MAIL needed first");
		return;
	}
	if (args.len > 0) {
		reply_error(s, "501 5.5.4 DATA takes no arguments");
		return;
	}
	if (s->bdat_used) {
		reply_error(s, "503 5.5.1 DATA after BDAT");
		return;
	}
	if (accepted(s) == 0) {
		/* RFC 5321 3.3 */
		reply_error(s, "554 5.5.1 No valid recipients");
		return;
	}
	lmtp_dot_init(&s->dot, true);
	buf_reset(&s->chunk);
	s->data_size = 0;
	s->state = SMTP_DATA;
	s->errors = 0;
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* BDAT size [LAST] (RFC 3030). A refused BDAT's bytes are still read and
 * thrown away, so the conversation stays in step. */
static void cmd_bdat(struct smtp_session *s, struct slice args)
{
	struct slice n = args, rest = {0};
	uint64_t size;
	bool last = false;
	const char *refuse = NULL;

	for (size_t i = 0; i < args.len; i++) {
		if (args.ptr[i] == ' ') {
			n.len = i;
			rest = slice_make(args.ptr + i + 1, args.len - i - 1);
			break;
		}
	}
	if (n.len == 0 || n.len > 19 || lmtp_parse_u64(n, &size) < 0 ||
	    (rest.len > 0 && !slice_eq_ci(rest, "LAST"))) {
		/* the chunk size is unknown: the client must start over */
		reply_error(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		smtp_reply(s, "421 4.5.0 %s Closing: BDAT out of step",
			   s->srv->hostname);
		s->quitting = true;
		net_conn_close(s->conn);
		return;
	}
	last = rest.len > 0;
	if (s->state != SMTP_MAIL)
		refuse = "503 5.5.1 MAIL needed first";
	else if (accepted(s) == 0)
		refuse = "554 5.5.1 No valid recipients";
	if (refuse != NULL) {
		/* reply once the bytes are read */
		s->bdat_refuse = refuse;
		s->bdat_back = s->state;
		s->state = SMTP_BDAT;
		s->bdat_left = size;
		s->bdat_last = last;
		return;
	}
	if (!s->bdat_used) {
		s->bdat_used = true;
		buf_reset(&s->chunk);
		s->data_size = 0;
	}
	s->state = SMTP_BDAT;
	s->bdat_left = size;
	s->bdat_last = last;
}

/* BURL imap-url [LAST] (RFC 4468): the octets the URL names are the next
 * piece of the message, as a BDAT chunk's would be (the two mix; DATA
 * does not). The URL is resolved on a worker (smtp-burl.c). */
static bool cmd_burl(struct smtp_session *s, struct slice args)
{
	struct smtp_burl *req;
	size_t n = 0;
	bool last = false;

	if (!smtp_is_submission(s)) {
		reply_error(s, "502 5.5.1 BURL is not offered here");
		return false;
	}
	if (!s->authed) {
		reply_error(s, "530 5.7.0 Authentication required");
		return false;
	}
	while (n < args.len && args.ptr[n] != ' ')
		n++;
	if (n < args.len) {
		struct slice rest = slice_make(args.ptr + n + 1, args.len - n - 1);
		if (!slice_eq_ci(rest, "LAST")) {
			reply_error(s, "501 5.5.4 Syntax: BURL imap-url [LAST]");
			return false;
		}
		last = true;
	}
	if (n == 0) {
		reply_error(s, "501 5.5.4 Syntax: BURL imap-url [LAST]");
		return false;
	}
	if (s->state != SMTP_MAIL) {
		reply_error(s, "503 5.5.1 MAIL needed first");
		return false;
	}
	if (accepted(s) == 0) {
		reply_error(s, "554 5.5.1 No valid recipients");
		return false;
	}
	if (!s->bdat_used) {
		s->bdat_used = true;
		buf_reset(&s->chunk);
		s->data_size = 0;
	}
	req = xcalloc(1, sizeof(*req));
	req->url = xstrndup(args.ptr, n);
	req->last = last;
	return run_task(s, smtp_task_burl, req);
}

/* ---- dispatch ----------------------------------------------------- */

static bool handle_line(struct smtp_session *s, const char *line, size_t len)
{
	struct slice args;
	char verb[16];

	if (s->state == SMTP_AUTH) {
		char *copy = xstrndup(line, len);
		return run_task(s, smtp_task_auth, copy);
	}
	if (lmtp_parse_verb(line, len, verb, &args) < 0) {
		reply_error(s, "500 5.5.2 Syntax error, command unrecognized");
		return false;
	}
	if (strcmp(verb, "EHLO") == 0)
		return cmd_hello(s, args, true);
	if (strcmp(verb, "HELO") == 0)
		return cmd_hello(s, args, false);
	if (strcmp(verb, "MAIL") == 0)
		return cmd_mail(s, args);
	if (strcmp(verb, "RCPT") == 0)
		return cmd_rcpt(s, args);
	if (strcmp(verb, "AUTH") == 0)
		return cmd_auth(s, args);
	if (strcmp(verb, "DATA") == 0) {
		cmd_data(s, args);
	} else if (strcmp(verb, "BDAT") == 0) {
		cmd_bdat(s, args);
	} else if (strcmp(verb, "BURL") == 0) {
		return cmd_burl(s, args);
	} else if (strcmp(verb, "STARTTLS") == 0) {
		return cmd_starttls(s, args);
	} else if (strcmp(verb, "RSET") == 0) {
		s->errors = 0;
		return reset_and_reply(s, "250 2.0.0 Ok");
	} else if (strcmp(verb, "NOOP") == 0) {
		smtp_reply(s, "250 2.0.0 Ok");
	} else if (strcmp(verb, "QUIT") == 0) {
		s->quitting = true;
		if (net_conn_run(s->conn, smtp_task_quit, NULL) == 0)
			return true;
		smtp_reply(s, "221 2.0.0 %s Bye", s->srv->hostname);
		net_conn_close(s->conn);
	} else if (strcmp(verb, "VRFY") == 0) {
		/* RFC 5321 3.5.3: never reveal accounts */
		smtp_reply(s, "252 2.5.2 Cannot VRFY user, but will accept "
			      "message and attempt delivery");
	} else if (strcmp(verb, "EXPN") == 0) {
		reply_error(s, "502 5.5.1 EXPN command is disabled");
	} else if (strcmp(verb, "HELP") == 0) {
		smtp_reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT "
			      "RSET NOOP QUIT VRFY HELP STARTTLS%s",
			   smtp_is_submission(s) ? " AUTH BURL" : "");
	} else if (s->state == SMTP_GREETED) {
		reply_error(s, "503 5.5.1 Send EHLO first");
	} else {
		reply_error(s, "500 5.5.1 Unknown command");
	}
	return false;
}

/* ---- input -------------------------------------------------------- */

void smtp_keep_head(struct smtp_session *s, const char *p, size_t n)
{
	if (s->head.len < SMTP_HEAD_MAX) {
		size_t room = SMTP_HEAD_MAX - s->head.len;
		buf_append(&s->head, p, n < room ? n : room);
	}
}

static bool data_input(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec v;

	while (evbuffer_peek(in, -1, NULL, &v, 1) >= 1 && v.iov_len > 0) {
		size_t room = SMTP_CHUNK - s->chunk.len - 2;
		size_t n = v.iov_len < room ? v.iov_len : room;
		size_t before = s->chunk.len, used = 0;
		int ret = 0;

		if (n > 0) {
			ret = lmtp_dot_feed(&s->dot, v.iov_base, n, &used,
					    &s->chunk);
			evbuffer_drain(in, used);
			s->data_size += s->chunk.len - before;
			smtp_keep_head(s, s->chunk.data + before,
				  s->chunk.len - before);
		}
		/* too big: read on to the end, keep nothing, refuse then */
		if (s->data_size > s->live->max_message_size)
			s->data_too_big = true;
		if (s->data_too_big)
			buf_reset(&s->chunk);
		if (ret == 1) {
			s->state = SMTP_READY;
			return run_task(s, smtp_task_end, NULL);
		}
		if (s->chunk.len + 4 > SMTP_CHUNK)
			return run_task(s, smtp_task_chunk, NULL);
	}
	return false;
}

static bool bdat_input(struct smtp_session *s, struct evbuffer *in)
{
	while (s->bdat_left > 0 && evbuffer_get_length(in) > 0) {
		size_t room = SMTP_CHUNK - s->chunk.len;
		size_t n = evbuffer_get_length(in);
		if (n > s->bdat_left)
			n = (size_t)s->bdat_left;
		if (n > room)
			n = room;
		if (n > 16384)
			n = 16384;
		if (s->bdat_refuse != NULL || s->data_too_big) {
			evbuffer_drain(in, n);
		} else {
			char tmp[16384];
			evbuffer_remove(in, tmp, n);
			buf_append(&s->chunk, tmp, n);
			smtp_keep_head(s, tmp, n);
		}
		s->bdat_left -= n;
		s->data_size += n;
		if (s->data_size > s->live->max_message_size) {
			s->data_too_big = true;
			buf_reset(&s->chunk);
		}
		if (s->chunk.len >= SMTP_CHUNK && s->bdat_left > 0)
			return run_task(s, smtp_task_chunk, NULL);
	}
	if (s->bdat_left > 0)
		return false;
	/* the chunk is complete */
	if (s->bdat_refuse != NULL) {
		const char *why = s->bdat_refuse;
		s->bdat_refuse = NULL;
		s->state = s->bdat_back;
		reply_error(s, "%s", why);
		return false;
	}
	if (s->bdat_last) {
		s->state = SMTP_READY;
		return run_task(s, smtp_task_end, NULL);
	}
	s->state = SMTP_MAIL;
	return run_task(s, smtp_task_chunk, (void *)"250");
}

static bool line_input(struct smtp_session *s, struct evbuffer *in,
		       bool *more_r)
{
	struct buf line;
	bool started;

	*more_r = false;
	if (net_line_ready(in) &&
	    net_conn_output_pending(s->conn) > SMTP_OUTPUT_MAX) {
		*more_r = true;
		return run_task(s, smtp_task_drain, NULL);
	}
	buf_init(&line, SMTP_MAX_LINE + 1);
	switch (net_line_take(in, SMTP_MAX_LINE, &s->skip_line, &line)) {
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

static void smtp_input(void *session, struct net_conn *conn)
{
	struct smtp_session *s = session;
	struct evbuffer *in = net_conn_input(conn);
	bool more = true;

	while (!s->quitting && more) {
		if (s->state == SMTP_DATA) {
			if (data_input(s, in))
				return;
			more = s->state != SMTP_DATA &&
			       evbuffer_get_length(in) > 0;
			continue;
		}
		if (s->state == SMTP_BDAT) {
			if (bdat_input(s, in))
				return;
			more = s->state != SMTP_BDAT &&
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

static void *session_new(struct net_conn *conn, struct smtp_server *srv)
{
	struct smtp_session *s;

	if (srv == NULL || srv->delivery == NULL)
		return NULL;
	s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->live = smtp_server_live(srv);
	s->conn = conn;
	snprintf(s->sid, sizeof(s->sid), "%s", net_conn_id(conn));
	snprintf(s->peer, sizeof(s->peer), "%s", net_conn_peer(conn));
	s->state = SMTP_GREETED;
	if (srv->mode == SMTP_MODE_MX)
		s->ds = delivery_session_create(srv->delivery, s->sid);
	buf_init(&s->chunk, 0);
	buf_init(&s->head, 0);
	buf_init(&s->hdr, SMTP_HEADER_MAX);
	buf_init(&s->scan, 0);
	net_conn_set_timeout(conn, s->live->timeout);
	if (srv->limits != NULL) {
		s->limit_counted = smtp_limits_connect(srv->limits,
						       net_conn_peer(conn));
		if (!s->limit_counted) {
			log_info("smtp", s->sid, "%s: too many connections",
				 net_conn_peer(conn));
			smtp_reply(s, "421 4.7.0 %s Too many connections from "
				      "your address, try again later",
				   srv->hostname);
			s->quitting = true;
			net_conn_close(conn);
			return s;
		}
	}
	smtp_reply(s, "220 %s ESMTP Loft", srv->hostname);
	return s;
}

static void *smtp_accept(struct net_conn *conn, void *proto_ctx)
{
	return session_new(conn, proto_ctx);
}

static void session_free(struct smtp_session *s)
{
	if (s->limit_counted)
		smtp_limits_disconnect(s->srv->limits, s->peer);
	smtp_transaction_reset(s);
	delivery_session_destroy(&s->ds);
	if (s->sasl != NULL)
		auth_sasl_free(&s->sasl);
	buf_free(&s->chunk);
	buf_free(&s->head);
	buf_free(&s->hdr);
	buf_free(&s->scan);
	free(s->rcpts);
	free(s);
}

static void release_session(void *arg)
{
	session_free(arg);
}

static void smtp_closed(void *session, struct net_conn *conn)
{
	struct smtp_session *s = session;

	if (s->state == SMTP_DATA || s->state == SMTP_BDAT)
		log_info("smtp", s->sid, "connection lost during data, %llu "
			 "bytes discarded", (unsigned long long)s->data_size);
	/* letting go of store handles blocks: not on the I/O thread */
	if (!holds_store(s) && !delivery_session_busy(s->ds)) {
		session_free(s);
		return;
	}
	s->conn = NULL;
	offload_run(&s->srv->release, release_session, s);
}

static bool smtp_timeout(void *session, struct net_conn *conn)
{
	struct smtp_session *s = session;

	smtp_reply(s, "421 4.4.2 %s Timeout, closing connection",
		   s->srv->hostname);
	return true;
}

static void smtp_shutdown(void *session, struct net_conn *conn)
{
	struct smtp_session *s = session;

	smtp_reply(s, "421 4.3.2 %s Server shutting down", s->srv->hostname);
}

const struct net_proto smtp_mx_proto = {
	.name = "smtp",
	.accept = smtp_accept,
	.input = smtp_input,
	.closed = smtp_closed,
	.timeout = smtp_timeout,
	.shutdown = smtp_shutdown,
	.busy_reply = "421 4.7.0 Too many connections from your address\r\n",
	/* no banned_reply: other servers' mail is never refused for the
	 * failed logins of someone at their address */
};

const struct net_proto smtp_submission_proto = {
	.name = "submission",
	.accept = smtp_accept,
	.input = smtp_input,
	.closed = smtp_closed,
	.timeout = smtp_timeout,
	.shutdown = smtp_shutdown,
	.busy_reply = "421 4.7.0 Too many connections from your address\r\n",
	/* RFC 3463 X.7.0: a security reason, try later. Port 25 (MX) asks
	 * for no password and is never refused for bans. */
	.banned_reply = "421 4.7.0 Too many failed logins from your address, "
			"try again later\r\n",
};
