/*
 * SMTP's worker tasks: AUTH exchanges (src/auth SASL, with its throttling),
 * the submission sender check, RCPT resolution (MX: local recipients
 * only, never a relay; submission: any address, local ones must exist),
 * the message written to the store (MX, through src/delivery) or the
 * queue (submission, whose local recipients are stored by the queue at
 * once), and the final reply, sent only once everything is on disk.
 */
#include "smtp-private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "delivery-sendas.h"
#include "log.h"

/* ---- AUTH (RFC 4954) ---------------------------------------------- */

static void auth_done(struct smtp_session *s, const struct auth_user *u)
{
	s->authed = true;
	s->user = *u;
	s->state = SMTP_READY;
	s->errors = 0;
	log_info("smtp", s->sid, "login user=%s from %s", u->address,
		 net_conn_peer(s->conn));
	net_conn_printf(s->conn, "235 2.7.0 Authentication successful\r\n");
}

static void auth_abort(struct smtp_session *s, const char *reply)
{
	if (s->sasl != NULL)
		auth_sasl_free(&s->sasl);
	s->sasl_final = false;
	s->state = SMTP_READY;
	net_conn_printf(s->conn, "%s\r\n", reply);
}

/* The login gate answered a step (a later task of the connection). */
static void sasl_done(void *session, struct net_conn *conn,
		      const struct auth_login_result *res)
{
	struct smtp_session *s = session;
	char *enc;

	switch (res->sasl) {
	case AUTH_SASL_CONTINUE:
		enc = base64_encode(res->out ? res->out : "", res->out_len);
		net_conn_printf(s->conn, "334 %s\r\n", enc);
		free(enc);
		break;
	case AUTH_SASL_OK:
		auth_sasl_free(&s->sasl);
		auth_done(s, &res->user);
		break;
	case AUTH_SASL_FAIL:
	default:
		log_info("smtp", s->sid, "AUTH failed from %s",
			 net_conn_peer(s->conn));
		auth_abort(s, "535 5.7.8 Authentication credentials invalid");
		if (++s->auth_failures >= 5) {
			net_conn_printf(s->conn, "421 4.7.0 %s Too many failed "
					"logins\r\n", s->srv->hostname);
			s->quitting = true;
			net_conn_close(s->conn);
		}
		break;
	case AUTH_SASL_TEMPFAIL:
		auth_abort(s, "454 4.7.0 Temporary authentication failure");
		break;
	}
}

static void sasl_step(struct smtp_session *s, const void *data, size_t len)
{
	auth_login_sasl(s->sasl, s->conn, data, len, sasl_done);
}

static void sasl_answer(struct smtp_session *s, const char *text, bool initial)
{
	size_t len = strlen(text);
	struct buf data;

	if (initial && strcmp(text, "=") == 0) {
		sasl_step(s, "", 0);
		return;
	}
	buf_init(&data, 0);
	if (base64_decode(text, len, BASE64_STRICT, &data) < 0)
		auth_abort(s, "501 5.5.2 Invalid base64 data");
	else
		sasl_step(s, data.data ? data.data : "", data.len);
	if (data.data != NULL)
		explicit_bzero(data.data, data.len);
	buf_free(&data);
}

void smtp_task_auth(void *session, struct net_conn *conn, void *arg)
{
	struct smtp_session *s = session;
	char *line = arg;

	if (s->sasl == NULL) {
		/* "MECH [initial-response]" */
		char *sp = strchr(line, ' ');
		if (sp != NULL)
			*sp++ = '\0';
		for (char *p = line; *p; p++)
			*p = (char)toupper((unsigned char)*p);
		if (auth_sasl_begin(s->srv->auth, line, net_conn_peer(conn),
				    &s->sasl) < 0) {
			s->sasl = NULL;
			auth_abort(s, "504 5.5.4 Unrecognized authentication type");
		} else if (sp != NULL && *sp != '\0') {
			sasl_answer(s, sp, true);
		} else {
			sasl_step(s, NULL, 0);
		}
	} else if (strcmp(line, "*") == 0) {
		auth_abort(s, "501 5.7.0 Authentication cancelled");
	} else {
		sasl_answer(s, line, false);
	}
	explicit_bzero(line, strlen(line));
	free(line);
}

/* ---- MAIL, RCPT --------------------------------------------------- */

/* Whether the authenticated account may send as address (its addresses
 * and aliases, any with send_as = any, and the shared addresses whose
 * INBOX grants it i: delivery-sendas.h). -1: lookup error. */
static int may_send_as(struct smtp_session *s, const char *address)
{
	return sendas_may(s->srv->auth, s->srv->store, &s->user,
			  s->live->cross_domain, address);
}

void smtp_task_sender(void *session, struct net_conn *conn, void *arg)
{
	struct smtp_session *s = session;

	int ok = s->sender_addr[0] == '\0' ? 1 : may_send_as(s, s->sender_addr);

	if (ok < 0) {
		smtp_transaction_reset(s);
		net_conn_printf(conn, "451 4.3.0 Temporary lookup failure\r\n");
		return;
	}
	if (ok == 0) {
		log_info("smtp", s->sid, "user=%s refused as sender <%s>",
			 s->user.address, s->sender_addr);
		smtp_transaction_reset(s);
		net_conn_printf(conn, "553 5.7.1 <%s> Sender address not owned "
				"by user %s\r\n", s->sender, s->user.address);
		return;
	}
	if (s->srv->queue != NULL &&
	    !queue_user_within_limits(s->srv->queue, s->user.id, 1, 0)) {
		smtp_transaction_reset(s);
		net_conn_printf(conn, "451 4.7.1 Sending limit reached, try "
				"again later\r\n");
		return;
	}
	struct auth_policy pol;
	s->sent_copy = auth_user_policy(s->srv->auth, s->user.id, &pol) == 0 &&
		       pol.sent_copy;
	s->errors = 0;
	net_conn_printf(conn, "250 2.1.0 Ok\r\n");
}

static void begin_delivery(struct smtp_session *s, struct net_conn *conn)
{
	struct delivery_envelope env = {
		.sender = s->sender,
		.helo = s->helo,
		.peer = net_conn_peer(conn),
		.with = net_conn_is_tls(conn) ? "ESMTPS" : "ESMTP",
		.id = s->txn_id,
		.declared_size = s->declared_size,
	};
	delivery_begin(s->ds, &env);
}

/* Remembers an accepted recipient with its DSN parameters (MX: index i
 * is the delivery session's recipient i). */
static void rcpt_push(struct smtp_session *s, const char *addr,
		      const char *text, struct smtp_rcpt_request *req)
{
	struct smtp_rcpt *r;

	if (s->rcpt_count == s->rcpt_cap) {
		s->rcpt_cap = s->rcpt_cap ? s->rcpt_cap * 2 : 4;
		s->rcpts = xrealloc(s->rcpts, s->rcpt_cap * sizeof(*s->rcpts));
	}
	r = &s->rcpts[s->rcpt_count++];
	memset(r, 0, sizeof(*r));
	snprintf(r->address, sizeof(r->address), "%s", addr);
	snprintf(r->display, sizeof(r->display), "%s", text);
	r->notify = req->notify;
	r->orcpt = req->orcpt;
	req->orcpt = NULL;
	s->errors = 0;
}

static void rcpt_mx(struct smtp_session *s, struct net_conn *conn,
		    struct smtp_rcpt_request *req, const char *text)
{
	const char *addr = req->path.address;
	const char *domain = addr + req->path.local_len + 1;
	struct delivery_reply rep;

	/* never a relay, whatever the client's address (loopback too) */
	if (!auth_domain_exists(s->srv->auth, domain)) {
		net_conn_printf(conn, "550 5.7.1 <%s> Relay access denied\r\n",
				text);
		return;
	}
	if (delivery_rcpt_count(s->ds) == 0)
		begin_delivery(s, conn);
	delivery_rcpt(s->ds, addr, text, &rep);
	if (rep.code == 250)
		rcpt_push(s, addr, text, req);
	net_conn_printf(conn, "%d %s %s\r\n", rep.code, rep.status, rep.text);
}

static void rcpt_submission(struct smtp_session *s, struct net_conn *conn,
			    struct smtp_rcpt_request *req, const char *text)
{
	const char *addr = req->path.address;
	const char *domain = addr + req->path.local_len + 1;
	struct auth_user u;

	if (s->srv->queue == NULL) {
		net_conn_printf(conn, "451 4.3.0 <%s> Sending is not available\r\n",
				text);
		return;
	}
	if (!queue_user_within_limits(s->srv->queue, s->user.id, 1,
				      s->rcpt_count + 1)) {
		net_conn_printf(conn, "451 4.7.1 <%s> Recipient limit reached, "
				"try again later\r\n", text);
		return;
	}
	if (auth_domain_exists(s->srv->auth, domain)) {
		int ret = delivery_resolve(s->srv->delivery, addr, &u);
		if (ret < 0) {
			net_conn_printf(conn, "451 4.3.0 <%s> Temporary lookup "
					"failure\r\n", text);
			return;
		}
		if (ret == 0) {
			net_conn_printf(conn, "550 5.1.1 <%s> User doesn't "
					"exist\r\n", text);
			return;
		}
	}
	rcpt_push(s, addr, text, req);
	net_conn_printf(conn, "250 2.1.5 <%s> Ok\r\n", text);
}

void smtp_task_rcpt(void *session, struct net_conn *conn, void *arg)
{
	struct smtp_session *s = session;
	struct smtp_rcpt_request *req = arg;
	char text[LMTP_PATH_TEXT];

	lmtp_path_text(&req->path, text, sizeof(text));
	if (smtp_is_submission(s))
		rcpt_submission(s, conn, req, text);
	else
		rcpt_mx(s, conn, req, text);
	free(req->orcpt);
	free(req);
}

/* ---- the message -------------------------------------------------- */

static void received_field(struct smtp_session *s, struct net_conn *conn,
			   struct buf *out)
{
	const char *peer = net_conn_peer(conn);
	char date[64];
	struct tm tm;
	time_t now = time(NULL);

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	buf_printf(out, "Received: from %s (%s%s%s%s)\r\n\tby %s (Loft) with "
		   "%s id %s; %s\r\n", s->helo,
		   strchr(peer, ':') ? "[IPv6:" : "[", peer, "]",
		   "", s->srv->hostname,
		   net_conn_is_tls(conn) ? "ESMTPSA" : "ESMTPA", s->txn_id,
		   date);
}

/* The queue copy: the whole message for a submission, and for MX with
 * several recipients (so one whose store fails after another's
 * succeeded can be retried from the queue instead of a 4xx that would
 * make the sender duplicate the others). */
static bool wants_queue_copy(const struct smtp_session *s)
{
	if (s->srv->queue == NULL)
		return false;
	if (smtp_is_submission(s) || delivery_rcpt_count(s->ds) > 1)
		return true;
	/* a "delivered" DSN quotes the message */
	for (unsigned i = 0; i < s->rcpt_count; i++)
		if (s->rcpts[i].notify & QUEUE_NOTIFY_SUCCESS)
			return true;
	return false;
}

/* [policy] sent_copy: the message as submitted goes to the user's Sent
 * folder too, written while it arrives and kept only if it is sent. */
static void sent_copy_write(struct smtp_session *s, const char *p, size_t n)
{
	struct store_error err = {0};

	if (!s->sent_copy || n == 0)
		return;
	if (s->sent_w == NULL &&
	    (store_user_open(s->srv->store, s->user.id, &s->sent_user,
			     &err) < 0 ||
	     store_blob_writer_create(s->sent_user, &s->sent_w, &err) < 0)) {
		log_warn("smtp", s->sid, "no Sent copy: %s", err.msg);
		s->sent_copy = false;
		return;
	}
	if (store_blob_writer_write(s->sent_w, p, n, &err) < 0) {
		log_warn("smtp", s->sid, "no Sent copy: %s", err.msg);
		store_blob_writer_abort(&s->sent_w);
		s->sent_copy = false;
	}
}

static void sent_copy_commit(struct smtp_session *s)
{
	struct store_append_params params = {.flags = STORE_FLAG_SEEN};
	struct store_error err = {0};
	char *sent;
	uint32_t uid = 0;

	if (s->sent_w == NULL)
		return;
	sent = store_mailbox_find_special(s->sent_user, STORE_SPECIAL_SENT);
	if (sent == NULL && store_mailbox_roles_ensure(s->sent_user, &err) == 0)
		sent = store_mailbox_find_special(s->sent_user,
						  STORE_SPECIAL_SENT);
	if (sent == NULL) {
		log_warn("smtp", s->sid, "no Sent copy: the account has no Sent "
			 "folder");
		store_blob_writer_abort(&s->sent_w);
		return;
	}
	if (store_blob_writer_commit(&s->sent_w, sent, &params, &uid, NULL,
				     &err) < 0)
		log_warn("smtp", s->sid, "no Sent copy: %s", err.msg);
	else
		log_info("smtp", s->sid, "Sent copy: mailbox=%s uid=%u", sent,
			 uid);
	free(sent);
}

/* Bytes of the message to keep: into the store (MX), the queue copy
 * and the Sent copy. */
static void store_bytes(struct smtp_session *s, struct net_conn *conn,
			const char *p, size_t n)
{
	if (wants_queue_copy(s) && s->qw == NULL) {
		if (queue_writer_create(s->srv->queue, &s->qw, &s->qerr) < 0) {
			s->data_failed = smtp_is_submission(s);
		} else if (smtp_is_submission(s)) {
			struct buf rec;
			buf_init(&rec, 0);
			received_field(s, conn, &rec);
			if (queue_writer_write(s->qw, rec.data, rec.len,
					       &s->qerr) < 0)
				s->data_failed = true;
			buf_free(&rec);
		}
	}
	if (n == 0)
		return;
	if (s->ds != NULL)
		delivery_data(s->ds, p, n);
	/* the Sent copy is the message as written, without our Received: */
	sent_copy_write(s, p, n);
	if (s->qw != NULL &&
	    queue_writer_write(s->qw, p, n, &s->qerr) < 0) {
		if (smtp_is_submission(s))
			s->data_failed = true;
		else
			queue_writer_abort(&s->qw);
	}
}

void smtp_write_chunk(struct smtp_session *s, struct net_conn *conn)
{
	struct buf kept;

	buf_init(&kept, 0);
	if (s->data_too_big || s->data_failed)
		goto out;
	if (smtp_check_data(s, s->chunk.data ? s->chunk.data : "",
			    s->chunk.len, &kept))
		store_bytes(s, conn, kept.data, kept.len);
	else
		store_bytes(s, conn, s->chunk.data, s->chunk.len);
out:
	buf_free(&kept);
	buf_reset(&s->chunk);
}

void smtp_task_chunk(void *session, struct net_conn *conn, void *arg)
{
	struct smtp_session *s = session;

	smtp_write_chunk(s, conn);
	if (arg != NULL) /* a BDAT chunk that is not the last */
		net_conn_printf(conn, "250 2.0.0 %llu octets received\r\n",
				(unsigned long long)s->data_size);
}

/* ---- the end of a message: MX ------------------------------------- */

static bool notify_wants(unsigned notify, unsigned bit)
{
	if (notify & QUEUE_NOTIFY_NEVER)
		return false;
	if (notify == QUEUE_NOTIFY_DEFAULT)
		return bit == QUEUE_NOTIFY_FAILURE;
	return (notify & bit) != 0;
}

/* A DSN (through the queue) for the recipients whose outcome after the
 * 250 was "failed" (permanent) or "delivered" with NOTIFY=SUCCESS. */
static void report_outcomes(struct smtp_session *s, bool failed)
{
	unsigned n = delivery_rcpt_count(s->ds);
	struct queue_report_rcpt *rr = xcalloc(n, sizeof(*rr));
	struct queue_error err = {0};
	size_t k = 0;

	for (unsigned i = 0; i < n && i < s->rcpt_count; i++) {
		const struct delivery_reply *r = delivery_result(s->ds, i);
		bool match = failed ? r->code / 100 == 5 : r->code / 100 == 2;
		if (!match || !notify_wants(s->rcpts[i].notify,
					    failed ? QUEUE_NOTIFY_FAILURE
						   : QUEUE_NOTIFY_SUCCESS))
			continue;
		rr[k].address = s->rcpts[i].address;
		rr[k].orcpt = s->rcpts[i].orcpt;
		rr[k].result.status = failed ? QUEUE_RCPT_FAILED
					     : QUEUE_RCPT_DELIVERED;
		rr[k].result.code = r->code;
		snprintf(rr[k].result.enhanced, sizeof(rr[k].result.enhanced),
			 "%s", r->status ? r->status : "");
		snprintf(rr[k].result.text, sizeof(rr[k].result.text), "%.255s",
			 r->text);
		k++;
	}
	if (k > 0 && s->qw != NULL &&
	    queue_writer_report(s->qw, s->sender_addr, s->envid, s->ret, failed,
				rr, k, &err) < 0)
		log_error("smtp", s->sid, "%s DSN for %zu recipients not sent: "
			  "%s", failed ? "failure" : "success", k, err.msg);
	else if (k > 0 && s->qw == NULL)
		log_warn("smtp", s->sid, "%s DSN for %zu recipients not sent: no "
			 "queue", failed ? "failure" : "success", k);
	free(rr);
}

/* The local recipients whose store failed for now are retried from the
 * queue. false if that could not be queued. */
static bool queue_retries(struct smtp_session *s, unsigned temp)
{
	unsigned n = delivery_rcpt_count(s->ds);
	struct queue_rcpt *qr = xcalloc(temp, sizeof(*qr));
	struct queue_error err = {0};
	char id[QUEUE_ID_SIZE];
	size_t k = 0;
	bool ok;

	for (unsigned i = 0; i < n; i++) {
		const struct delivery_reply *r = delivery_result(s->ds, i);
		if (r->code / 100 != 4 || k >= temp)
			continue;
		qr[k].address = delivery_rcpt_address(s->ds, i);
		if (i < s->rcpt_count) {
			qr[k].notify = s->rcpts[i].notify;
			qr[k].orcpt = s->rcpts[i].orcpt;
		}
		k++;
	}
	struct queue_envelope env = {
		.sender = s->sender_addr, .rcpts = qr, .rcpt_count = k,
		.ret = s->ret, .envid = s->envid,
		.flags = QUEUE_F_LOCAL_RETRY |
			 (s->eightbit ? QUEUE_F_8BITMIME : 0) |
			 (s->smtputf8 ? QUEUE_F_SMTPUTF8 : 0),
	};
	ok = queue_writer_commit(&s->qw, &env, id, NULL, &err) == 0;
	if (!ok)
		log_error("smtp", s->sid, "retry copy for %zu local recipients "
			  "not queued: %s", k, err.msg);
	else
		log_info("smtp", s->sid, "%zu local recipients will be retried "
			 "from the queue (%s)", k, id);
	free(qr);
	return ok;
}

/* The message is complete and checked: each recipient's copy is
 * committed, then one reply for the message. */
static void end_mx(struct smtp_session *s, struct net_conn *conn,
		   const struct delivery_verdict *v)
{
	unsigned n = delivery_rcpt_count(s->ds), ok = 0, temp = 0, perm = 0;
	const struct delivery_reply *first_bad = NULL;

	delivery_set_verdict(s->ds, v);
	delivery_commit(s->ds);
	for (unsigned i = 0; i < n; i++) {
		const struct delivery_reply *r = delivery_result(s->ds, i);
		if (r->code / 100 == 2)
			ok++;
		else if (first_bad == NULL)
			first_bad = r;
		temp += r->code / 100 == 4;
		perm += r->code / 100 == 5;
	}
	if (ok == 0) {
		/* nothing stored: the sender keeps it (4xx) or bounces it */
		net_conn_printf(conn, "%d %s %s\r\n", first_bad->code,
				first_bad->status, first_bad->text);
		return;
	}
	/* Some copies are stored: a 4xx now would make the sender duplicate
	 * them, so the rest is ours to finish: temporary failures are
	 * retried from the queue, permanent ones reported in a DSN. */
	if (perm > 0)
		report_outcomes(s, true);
	report_outcomes(s, false);
	if (temp > 0 && (s->qw == NULL || !queue_retries(s, temp))) {
		/* the retry copy is lost: still better than duplicates */
		log_error("smtp", s->sid, "%u of %u recipients not stored and "
			  "not queued for retry", temp, n);
	}
	if (first_bad != NULL)
		log_info("smtp", s->sid, "%u of %u recipients stored; %u to "
			 "retry, %u reported as failed", ok, n, temp, perm);
	smtp_limits_message(s->srv->limits, net_conn_peer(conn));
	net_conn_printf(conn, "250 2.0.0 Ok: %s\r\n", s->txn_id);
}

void smtp_end_mx_checked(struct smtp_session *s, struct net_conn *conn, int rc,
			 const char *reply, const struct delivery_verdict *v)
{
	if (rc < 0)
		/* refused: nothing of it is stored (the reset drops it) */
		net_conn_printf(conn, "%s\r\n", reply);
	else
		end_mx(s, conn, v);
	smtp_transaction_reset(s);
}

/* MX: the last bytes held for the header checks go in, then the checks
 * run on their own threads (the connection waits, no worker held) or,
 * with nothing to check, the message is committed now. */
static void finish_mx(struct smtp_session *s, struct net_conn *conn)
{
	struct delivery_verdict none = {0};
	struct buf rest;

	if (s->data_too_big) {
		delivery_too_big(s->ds);
		net_conn_printf(conn, "552 5.3.4 Message size exceeds fixed "
				"maximum message size\r\n");
		smtp_transaction_reset(s);
		return;
	}
	if (s->hdr_too_big) {
		/* nothing of it was stored */
		net_conn_printf(conn, "552 5.3.4 Message header exceeds %d "
				"octets\r\n", SMTP_HEADER_MAX);
		smtp_transaction_reset(s);
		return;
	}
	buf_init(&rest, 0);
	smtp_check_flush(s, &rest);
	store_bytes(s, conn, rest.data, rest.len);
	buf_free(&rest);
	if (smtp_check_start(s, conn))
		return;
	smtp_end_mx_checked(s, conn, 0, NULL, &none);
}

/* ---- the end of a message: submission ----------------------------- */

/* The addresses of the From: field in the message's head; -1 if there
 * is no From: field. fn is called per address. */
static int from_addresses(const char *head, size_t len,
			  bool (*fn)(void *ctx, const char *addr), void *ctx,
			  bool *all_ok_r)
{
	size_t i = 0;
	int found = -1;

	*all_ok_r = true;
	while (i < len) {
		size_t eol = i;
		while (eol < len && head[eol] != '\n')
			eol++;
		size_t l = eol - i;
		if (l == 0 || (l == 1 && head[i] == '\r'))
			break; /* end of the header */
		if (l >= 5 && strncasecmp(head + i, "From:", 5) == 0) {
			struct buf v;
			buf_init(&v, 0);
			buf_append(&v, head + i + 5, l - 5);
			/* folded continuation lines */
			while (eol + 1 < len &&
			       (head[eol + 1] == ' ' || head[eol + 1] == '\t')) {
				size_t s2 = eol + 1;
				eol = s2;
				while (eol < len && head[eol] != '\n')
					eol++;
				buf_append(&v, head + s2, eol - s2);
			}
			found = 0;
			/* addresses: <...> if any, else comma-separated */
			char *p = v.data;
			bool angle = strchr(p, '<') != NULL;
			while (p != NULL && *p != '\0') {
				char addr[400];
				if (angle) {
					char *lt = strchr(p, '<'), *gt;
					if (lt == NULL)
						break;
					gt = strchr(lt, '>');
					if (gt == NULL)
						break;
					snprintf(addr, sizeof(addr), "%.*s",
						 (int)(gt - lt - 1), lt + 1);
					p = gt + 1;
				} else {
					char *comma = strchr(p, ',');
					size_t n = comma ? (size_t)(comma - p)
							 : strlen(p);
					snprintf(addr, sizeof(addr), "%.*s",
						 (int)n, p);
					p = comma ? comma + 1 : NULL;
				}
				char *a = addr;
				while (*a == ' ' || *a == '\t')
					a++;
				a[strcspn(a, " \t\r\n(")] = '\0';
				if (*a == '\0')
					continue;
				found++;
				if (!fn(ctx, a))
					*all_ok_r = false;
			}
			buf_free(&v);
		}
		i = eol + 1;
	}
	return found;
}

static bool from_ok(void *ctx, const char *addr)
{
	return may_send_as(ctx, addr) == 1;
}

/* The queue could not take the message: 452 4.3.1 only when its disk is
 * full, else a temporary local error (the log has the cause). */
static void queue_failed(struct smtp_session *s, struct net_conn *conn,
			 const struct queue_error *err)
{
	if (err->kind == QUEUE_ERR_RATE)
		net_conn_printf(conn, "451 4.7.1 %s\r\n", err->msg);
	else if (err->kind == QUEUE_ERR_FULL)
		net_conn_printf(conn, "452 4.3.1 %s\r\n", err->msg);
	else
		net_conn_printf(conn, "451 4.3.0 %s (session %s)\r\n",
				err->msg[0] ? err->msg : "Local error in "
				"processing", s->sid);
}

static void end_submission(struct smtp_session *s, struct net_conn *conn)
{
	struct queue_rcpt *qr;
	struct queue_rcpt_result *res;
	struct queue_error err = {0};
	char id[QUEUE_ID_SIZE];
	bool all_ok;
	unsigned n = s->rcpt_count, failed = 0;
	int found;

	if (s->data_too_big) {
		net_conn_printf(conn, "552 5.3.4 Message size exceeds fixed "
				"maximum message size\r\n");
		return;
	}
	if (s->data_failed || s->qw == NULL) {
		queue_failed(s, conn, &s->qerr);
		return;
	}
	found = from_addresses(s->head.data ? s->head.data : "", s->head.len,
			       from_ok, s, &all_ok);
	if (found <= 0 || !all_ok) {
		log_info("smtp", s->sid, "user=%s refused: From: not theirs",
			 s->user.address);
		net_conn_printf(conn, "550 5.7.1 From: address not owned by "
				"user %s\r\n", s->user.address);
		return;
	}
	qr = xcalloc(n, sizeof(*qr));
	res = xcalloc(n, sizeof(*res));
	for (unsigned i = 0; i < n; i++) {
		qr[i].address = s->rcpts[i].address;
		qr[i].notify = s->rcpts[i].notify;
		qr[i].orcpt = s->rcpts[i].orcpt;
	}
	struct queue_envelope env = {
		.sender = s->sender_addr,
		.rcpts = qr,
		.rcpt_count = n,
		.ret = s->ret,
		.envid = s->envid,
		.flags = QUEUE_F_SIGN | QUEUE_F_SUBMISSION |
			 (s->eightbit ? QUEUE_F_8BITMIME : 0) |
			 (s->smtputf8 ? QUEUE_F_SMTPUTF8 : 0) |
			 (s->requiretls ? QUEUE_F_REQUIRETLS : 0),
		.user_id = s->user.id,
	};
	if (queue_writer_commit(&s->qw, &env, id, res, &err) < 0) {
		queue_failed(s, conn, &err);
	} else {
		for (unsigned i = 0; i < n; i++)
			failed += res[i].status == QUEUE_RCPT_FAILED;
		if (failed == n) {
			net_conn_printf(conn, "%d %s %s\r\n", res[0].code,
					res[0].enhanced, res[0].text);
		} else {
			sent_copy_commit(s);
			net_conn_printf(conn, "250 2.0.0 Ok: queued as %s\r\n",
					id[0] ? id : s->txn_id);
		}
		log_info("smtp", s->sid, "submitted: user=%s from=<%s> rcpts=%u "
			 "id=%s", s->user.address, s->sender_addr, n,
			 id[0] ? id : "(local only)");
	}
	free(qr);
	free(res);
}

void smtp_task_end(void *session, struct net_conn *conn, void *arg)
{
	struct smtp_session *s = session;

	smtp_write_chunk(s, conn);
	if (!smtp_is_submission(s)) {
		finish_mx(s, conn);
		return;
	}
	end_submission(s, conn);
	smtp_transaction_reset(s);
}

/* ---- reset, quit, drain ------------------------------------------- */

void smtp_task_reset(void *session, struct net_conn *conn, void *arg)
{
	struct smtp_session *s = session;
	char *text = arg;

	smtp_transaction_reset(s);
	net_conn_printf(conn, "%s\r\n", text);
	free(text);
}

void smtp_task_quit(void *session, struct net_conn *conn, void *arg)
{
	struct smtp_session *s = session;

	smtp_transaction_reset(s);
	delivery_session_destroy(&s->ds);
	net_conn_printf(conn, "221 2.0.0 %s Bye\r\n", s->srv->hostname);
	net_conn_close(conn);
}

void smtp_task_drain(void *session, struct net_conn *conn, void *arg)
{
	for (int i = 0; i < 6000; i++) {
		if (net_conn_output_pending(conn) <= SMTP_OUTPUT_MAX)
			return;
		if (net_conn_write(conn, "", 0) < 0)
			return;
		if (net_conn_output_pending(conn) > SMTP_OUTPUT_MAX)
			usleep(10000);
	}
	net_conn_close(conn);
}
