/*
 * The AUTHORIZATION state: CAPA (RFC 2449), USER/PASS (RFC 1939 7), AUTH
 * (RFC 5034) with the response codes of RFC 2449 8 and RFC 3206, STLS
 * (RFC 2595 4), and the login that locks and snapshots the maildrop.
 * No APOP: it needs the cleartext password on the server.
 *
 * Cleartext passwords (USER/PASS, AUTH PLAIN/LOGIN) are refused on a
 * connection without TLS unless it comes from loopback or the admin has
 * allowed it ([auth] allow_cleartext_remote); the refusal carries [AUTH].
 */
#include "pop3-private.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base64.h"
#include "log.h"

#define POP3_CLEARTEXT_REFUSED \
	"-ERR [AUTH] Plaintext authentication disallowed on non-secure (TLS) connections."

/* ---- login ---------------------------------------------------------- */

/* Authenticated as u: lock the maildrop (RFC 1939 7: a second session
 * gets [IN-USE], RFC 2449 8.1.2), read the account's policy and take the
 * snapshot. Runs on a worker. */
static void pop3_login(struct pop3_session *s, const struct auth_user *u,
		       const char *method)
{
	struct pop3_server *server = s->server;
	struct store_error err = {0};

	int locked = pop3_lock(server, u->id, s->conn);
	if (locked == 0) {
		log_info("pop3", s->sid, "login user=%s refused: maildrop in use",
			 u->address);
		pop3_reply(s, "-ERR [IN-USE] Mailbox is locked by another POP3 session.");
		return;
	}
	if (locked < 0) {
		log_error("pop3", s->sid, "user=%s: cannot lock the maildrop",
			  u->address);
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary failure, try again later (session %s).",
			   s->sid);
		return;
	}
	s->locked = true;
	s->user = *u;
	if (auth_user_policy(server->auth, u->id, &s->policy) < 0) {
		log_error("pop3", s->sid, "user=%s: cannot read the account policy",
			  u->address);
		pop3_maildrop_close(s);
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary failure, try again later (session %s).",
			   s->sid);
		return;
	}
	if (pop3_maildrop_open(s, &err) < 0) {
		log_error("pop3", s->sid, "user=%s: cannot open INBOX: %s",
			  u->address, err.msg);
		pop3_maildrop_close(s);
		pop3_reply(s, "-ERR [SYS/TEMP] Cannot open the mailbox, try again later (session %s).",
			   s->sid);
		return;
	}
	s->state = POP3_STATE_TRANSACTION;
	log_info("pop3", s->sid, "login user=%s method=%s messages=%u tls=%s",
		 u->address, method, s->count,
		 net_conn_is_tls(s->conn) ? "yes" : "no");
	pop3_reply(s, "+OK Logged in, %u messages (%llu octets).", s->count,
		   (unsigned long long)s->total_size);
}

/* ---- CAPA ----------------------------------------------------------- */

static void capa_add_sasl(struct pop3_session *s, struct buf *b)
{
	const char *mechs = auth_mechanisms(s->server->auth, pop3_cleartext_ok(s));

	if (mechs != NULL && *mechs != '\0')
		buf_printf(b, "SASL %s\r\n", mechs);
}

void pop3_cmd_capa(struct pop3_session *s, const char *args)
{
	struct buf b;

	if (*args != '\0') {
		pop3_reply(s, "-ERR CAPA takes no arguments.");
		return;
	}
	buf_init(&b, 0);
	buf_append_str(&b, "+OK Capability list follows\r\n"
			   "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
			   "PIPELINING\r\n");
	/* RFC 2449 6.7: after login the account's own value; before it, one
	 * that may differ per user (USER). 0 days means "off" here, which
	 * is NEVER, not RFC 2449's "EXPIRE 0" (delete at once). */
	if (s->state == POP3_STATE_TRANSACTION) {
		if (s->policy.pop3_retention_days > 0)
			buf_printf(&b, "EXPIRE %u\r\n", s->policy.pop3_retention_days);
		else
			buf_append_str(&b, "EXPIRE NEVER\r\n");
	} else {
		/* Before login: the smallest value of any account (RFC 2449
		 * 6.7), as the retention task last saw it; until its first
		 * pass, the [policy] default. */
		uint32_t days = s->server->default_retention_days;
		if (s->server->store != NULL)
			store_retention_expire_min(s->server->store, &days);
		if (days > 0)
			buf_printf(&b, "EXPIRE %u USER\r\n", days);
		else
			buf_append_str(&b, "EXPIRE NEVER USER\r\n");
	}
	buf_append_str(&b, "IMPLEMENTATION Loft\r\n");
	/* RFC 2449 5: what AUTHORIZATION offers is announced in both states. */
	if (s->server->tls_configured && !net_conn_is_tls(s->conn))
		buf_append_str(&b, "STLS\r\n");
	if (pop3_cleartext_ok(s))
		buf_append_str(&b, "USER\r\n");
	capa_add_sasl(s, &b);
	buf_append_str(&b, ".\r\n");
	pop3_write(s, b.data, b.len);
	buf_free(&b);
}

/* ---- USER / PASS ---------------------------------------------------- */

void pop3_cmd_user(struct pop3_session *s, const char *args)
{
	if (!pop3_cleartext_ok(s)) {
		pop3_reply(s, POP3_CLEARTEXT_REFUSED);
		return;
	}
	if (*args == '\0' || strchr(args, ' ') != NULL) {
		pop3_reply(s, "-ERR USER needs exactly one argument: the mailbox name.");
		return;
	}
	free(s->user_name);
	s->user_name = xstrdup(args);
	pop3_reply(s, "+OK Send PASS.");
}

static void pass_done(void *session, struct net_conn *conn,
		      const struct auth_login_result *res)
{
	struct pop3_session *s = session;

	s->auth_pending = false;
	switch (res->result) {
	case AUTH_OK:
		pop3_login(s, &res->user, "USER");
		break;
	case AUTH_FAILED:
	case AUTH_DISABLED:
		log_info("pop3", s->sid, "login failed from %s",
			 net_conn_peer(conn));
		pop3_reply(s, "-ERR [AUTH] Authentication failed.");
		break;
	case AUTH_TEMPFAIL:
		pop3_reply(s, "-ERR [SYS/TEMP] Authentication temporarily unavailable, try again later.");
		break;
	}
	pop3_flush(s);
}

void pop3_cmd_pass(struct pop3_session *s, const char *args)
{
	char *name = s->user_name;

	if (!pop3_cleartext_ok(s)) {
		pop3_reply(s, POP3_CLEARTEXT_REFUSED);
		return;
	}
	if (name == NULL) {
		pop3_reply(s, "-ERR Send USER first.");
		return;
	}
	/* USER/PASS is one attempt: a failure needs a new USER. RFC 1939 7:
	 * the whole rest of the line is the password, spaces included.
	 * The gate answers in pass_done, a later task. */
	s->user_name = NULL;
	s->auth_pending = true;
	auth_login_password(s->server->auth, s->conn, NULL, name, args,
			    pass_done);
	explicit_bzero(name, strlen(name));
	free(name);
}

void pop3_cmd_apop(struct pop3_session *s, const char *args)
{
	pop3_reply(s, "-ERR APOP is not supported; use AUTH or USER/PASS over TLS.");
}

/* ---- STLS (RFC 2595 4) ---------------------------------------------- */

void pop3_cmd_stls(struct pop3_session *s, const char *args)
{
	if (*args != '\0') {
		pop3_reply(s, "-ERR STLS takes no arguments.");
		return;
	}
	if (net_conn_is_tls(s->conn)) {
		pop3_reply(s, "-ERR TLS is already active.");
		return;
	}
	if (!s->server->tls_configured) {
		pop3_reply(s, "-ERR TLS is not available.");
		return;
	}
	/* A USER given in cleartext does not carry over into TLS. */
	free(s->user_name);
	s->user_name = NULL;
	pop3_reply(s, "+OK Begin TLS negotiation now.");
	if (net_conn_starttls(s->conn) < 0) {
		log_error("pop3", s->sid, "STLS: cannot start TLS");
		net_conn_close(s->conn);
	}
}

/* ---- AUTH (RFC 5034) ------------------------------------------------ */

void pop3_sasl_abort(struct pop3_session *s)
{
	if (s->sasl != NULL)
		auth_sasl_free(&s->sasl);
	s->sasl = NULL;
	s->sasl_final = false;
}

static void pop3_sasl_challenge(struct pop3_session *s, const char *data, size_t len)
{
	char *enc = base64_encode(data, len);
	/* RFC 5034 4: "+" SP base64; an empty challenge is "+ ". */
	net_conn_printf(s->conn, "+ %s\r\n", enc);
	free(enc);
}

static void sasl_done(void *session, struct net_conn *conn,
		      const struct auth_login_result *res)
{
	struct pop3_session *s = session;

	s->auth_pending = false;
	switch (res->sasl) {
	case AUTH_SASL_CONTINUE:
		pop3_sasl_challenge(s, res->out != NULL ? res->out : "",
				    res->out_len);
		break;
	case AUTH_SASL_OK:
		if (res->out_len > 0) {
			/* RFC 5034 4: additional data with success goes in a
			 * last challenge, answered by an empty line. */
			s->sasl_final = true;
			s->sasl_user = res->user;
			pop3_sasl_challenge(s, res->out, res->out_len);
		} else {
			pop3_sasl_abort(s);
			pop3_login(s, &res->user, "AUTH");
		}
		break;
	case AUTH_SASL_FAIL:
	default:
		pop3_sasl_abort(s);
		log_info("pop3", s->sid, "AUTH failed from %s", net_conn_peer(conn));
		pop3_reply(s, "-ERR [AUTH] Authentication failed.");
		break;
	case AUTH_SASL_TEMPFAIL:
		pop3_sasl_abort(s);
		pop3_reply(s, "-ERR [SYS/TEMP] Authentication temporarily unavailable, try again later.");
		break;
	}
	pop3_flush(s);
}

/* The gate takes the step; sasl_done answers in a later task. */
static void pop3_sasl_step(struct pop3_session *s, const void *data, size_t len)
{
	s->auth_pending = true;
	auth_login_sasl(s->sasl, s->conn, data, len, sasl_done);
}

/* Decodes a client answer and steps the exchange. "=" is the explicit
 * empty initial response (RFC 5034 4). */
static void pop3_sasl_answer(struct pop3_session *s, const char *text, bool initial)
{
	size_t len = strlen(text);
	struct buf data;

	if (initial && strcmp(text, "=") == 0) {
		pop3_sasl_step(s, "", 0);
		return;
	}
	buf_init(&data, 0);
	if (base64_decode(text, len, BASE64_STRICT, &data) < 0) {
		pop3_sasl_abort(s);
		pop3_reply(s, "-ERR Invalid base64 data, authentication cancelled.");
	} else {
		pop3_sasl_step(s, data.data ? data.data : "", data.len);
	}
	if (data.data != NULL)
		explicit_bzero(data.data, data.len);
	buf_free(&data);
}

/* Whether word (len bytes) is one of the space-separated mechanisms. */
static bool mech_listed(const char *mechs, const char *word, size_t len)
{
	const char *p = mechs;

	while (p != NULL && *p != '\0') {
		size_t n = strcspn(p, " ");
		if (n == len && strncasecmp(p, word, len) == 0)
			return true;
		p += n;
		while (*p == ' ')
			p++;
	}
	return false;
}

static void pop3_auth_list(struct pop3_session *s, const char *mechs)
{
	struct buf b;

	/* AUTH without a mechanism: the list, as RFC 1734 clients expect. */
	buf_init(&b, 0);
	buf_append_str(&b, "+OK Supported mechanisms follow\r\n");
	for (const char *p = mechs; p != NULL && *p != '\0';) {
		size_t n = strcspn(p, " ");
		buf_append(&b, p, n);
		buf_append_str(&b, "\r\n");
		p += n;
		while (*p == ' ')
			p++;
	}
	buf_append_str(&b, ".\r\n");
	pop3_write(s, b.data, b.len);
	buf_free(&b);
}

void pop3_cmd_auth(struct pop3_session *s, const char *args)
{
	bool cleartext = pop3_cleartext_ok(s);
	const char *mechs = auth_mechanisms(s->server->auth, cleartext);
	size_t n = strcspn(args, " ");
	char mech[64];

	if (n == 0) {
		pop3_auth_list(s, mechs);
		return;
	}
	if (!mech_listed(mechs, args, n)) {
		if (!cleartext && ((n == 5 && strncasecmp(args, "PLAIN", 5) == 0) ||
				   (n == 5 && strncasecmp(args, "LOGIN", 5) == 0)))
			pop3_reply(s, POP3_CLEARTEXT_REFUSED);
		else
			pop3_reply(s, "-ERR Unsupported authentication mechanism.");
		return;
	}
	if (n >= sizeof(mech)) {
		pop3_reply(s, "-ERR Unsupported authentication mechanism.");
		return;
	}
	for (size_t i = 0; i < n; i++)
		mech[i] = (char)toupper((unsigned char)args[i]);
	mech[n] = '\0';
	if (auth_sasl_begin(s->server->auth, mech, net_conn_peer(s->conn), &s->sasl) < 0) {
		s->sasl = NULL;
		pop3_reply(s, "-ERR Unsupported authentication mechanism.");
		return;
	}
	const char *initial = args + n;
	while (*initial == ' ')
		initial++;
	if (*initial != '\0')
		pop3_sasl_answer(s, initial, true);
	else
		pop3_sasl_step(s, NULL, 0);
}

/* A line while an AUTH exchange runs: the client's answer. */
void pop3_sasl_input(struct pop3_session *s, const char *line)
{
	if (strcmp(line, "*") == 0) {
		pop3_sasl_abort(s);
		pop3_reply(s, "-ERR Authentication cancelled.");
		return;
	}
	if (s->sasl_final) {
		struct auth_user u = s->sasl_user;
		pop3_sasl_abort(s);
		if (*line != '\0') {
			pop3_reply(s, "-ERR [AUTH] Authentication failed.");
			return;
		}
		pop3_login(s, &u, "AUTH");
		return;
	}
	pop3_sasl_answer(s, line, false);
}
