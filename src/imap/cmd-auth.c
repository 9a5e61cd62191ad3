/*
 * Getting in and out: STARTTLS (RFC 9051 6.2.1), LOGIN, AUTHENTICATE with
 * SASL-IR (RFC 4959), UNAUTHENTICATE (RFC 8437) and COMPRESS (RFC 4978).
 * Credentials go to the login gate (auth_login_*, src/auth): the command
 * returns at once and its reply comes from the gate's done callback, a
 * later task of the connection, after any throttling delay and password
 * hash; no worker waits meanwhile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imap-commands.h"
#include "imap-server.h"
#include "base64.h"
#include "log.h"

/* ---- STARTTLS ---------------------------------------------------------- */

void cmd_starttls(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	if (cmd->args[0].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] STARTTLS takes no arguments");
		return;
	}
	if (c->tls) {
		imap_cmd_bad(cmd, "[CLIENTBUG] TLS is already active");
		return;
	}
	if (!c->server->set.tls_configured) {
		imap_cmd_no(cmd, "[UNAVAILABLE] TLS is not configured");
		return;
	}
	imap_cmd_ok(cmd, "Begin TLS negotiation now");
	/* takes effect when this task ends; bytes the client sent after the
	 * command are discarded (RFC 9051 11.1, the injection attack) */
	if (net_conn_starttls(c->conn) < 0) {
		log_warn("imap", c->sid, "STARTTLS failed to start");
		net_conn_close(c->conn);
		return;
	}
	c->tls = true;
	imap_parser_reset(c->parser);
}

/* ---- login ------------------------------------------------------------- */

/* Turns a verified user into an authenticated session and replies. */
static void login_finish(struct imap_cmd *cmd, const struct auth_user *user)
{
	struct imap_client *c = cmd->client;
	struct store_error err = {0};
	if (!imap_server_conn_add(c->server, user->id, net_conn_peer(c->conn))) {
		log_info("imap", c->sid, "login refused, too many connections user=%s",
			 user->address);
		imap_cmd_no(cmd, "[LIMIT] Too many connections for this user");
		return;
	}
	c->counted = true;
	c->user = *user;
	if (store_user_open(c->server->store, user->id, &c->store_user, &err) < 0) {
		log_error("imap", c->sid, "cannot open mail of %s: %s",
			  user->address, err.msg);
		imap_client_logout_user(c);
		imap_cmd_no(cmd, "[UNAVAILABLE] Mailbox temporarily unavailable (session %s)",
			    c->sid);
		return;
	}
	if (imap_client_subscribe(c) < 0)
		log_warn("imap", c->sid, "no change notifications for %s",
			 user->address);
	c->state = IMAP_STATE_AUTH;
	log_info("imap", c->sid, "login user=%s from %s%s", user->address,
		 net_conn_peer(c->conn), c->tls ? " tls" : "");
	struct buf b;
	buf_init(&b, 0);
	imap_client_capabilities(c, &b);
	imap_cmd_ok(cmd, "[CAPABILITY %s] Logged in", b.data);
	buf_free(&b);
	/* After the reply, still in this task (the client's next command
	 * waits for it): POP3's pop3_delete = auto hides while the account
	 * syncs over IMAP (a commit at most once an hour, which the login
	 * itself need not wait for), and a special folder the user deleted
	 * comes back before any LIST. */
	if (store_note_sync_login(c->store_user, time(NULL), &err) < 0 ||
	    store_mailbox_roles_ensure(c->store_user, &err) < 0)
		log_warn("imap", c->sid, "user=%s: %s", user->address, err.msg);
}

static bool cleartext_ok(struct imap_client *c)
{
	return auth_cleartext_allowed(c->server->auth, c->tls, c->local);
}

/* The tail of a command that finished in a later task (the gate's). */
static void command_end(struct imap_client *c)
{
	c->cmd.continues = false;
	imap_client_abort_streams(c);
	imap_client_after_command(c);
}

static void login_done(void *session, struct net_conn *conn,
		       const struct auth_login_result *res)
{
	struct imap_client *c = session;
	struct imap_cmd *cmd = &c->cmd;
	switch (res->result) {
	case AUTH_OK:
		login_finish(cmd, &res->user);
		break;
	case AUTH_TEMPFAIL:
		imap_cmd_no(cmd, "[UNAVAILABLE] Temporary authentication failure");
		break;
	case AUTH_FAILED:
	case AUTH_DISABLED:
	default:
		log_info("imap", c->sid, "login failed from %s",
			 net_conn_peer(conn));
		imap_cmd_no(cmd, "[AUTHENTICATIONFAILED] Authentication failed");
		break;
	}
	command_end(c);
}

void cmd_login(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	if (!imap_arg_is_astring(&a[0]) || !imap_arg_is_astring(&a[1]) ||
	    a[2].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] LOGIN needs a user name and a password");
		return;
	}
	if (!cleartext_ok(c)) {
		imap_cmd_no(cmd, "[PRIVACYREQUIRED] Plaintext login needs TLS (STARTTLS)");
		return;
	}
	if (imap_arg_has_nul(&a[0]) || imap_arg_has_nul(&a[1])) {
		imap_cmd_no(cmd, "[AUTHENTICATIONFAILED] Authentication failed");
		return;
	}
	cmd->continues = true;
	auth_login_password(c->server->auth, c->conn, NULL, a[0].str.ptr,
			    a[1].str.ptr, login_done);
}

/* ---- AUTHENTICATE -------------------------------------------------------- */

static void sasl_end(struct imap_client *c)
{
	if (c->sasl != NULL)
		auth_sasl_free(&c->sasl);
	c->sasl_final = false;
	c->input_mode = IMAP_MODE_COMMAND;
	c->cmd.continues = false;
}

/* The gate answered a SASL step: a "+ challenge", or the tagged result. */
static void sasl_done(void *session, struct net_conn *conn,
		      const struct auth_login_result *res)
{
	struct imap_client *c = session;
	struct imap_cmd *cmd = &c->cmd;
	if (res->sasl == AUTH_SASL_CONTINUE ||
	    (res->sasl == AUTH_SASL_OK && res->out_len > 0)) {
		/* RFC 9051 6.2.2: server-final data (SCRAM's v=) goes in a
		 * challenge, and the client answers it with an empty line */
		struct buf b;
		buf_init(&b, 0);
		buf_append_str(&b, "+ ");
		base64_encode_buf(&b, res->out, res->out_len);
		buf_append_str(&b, "\r\n");
		imap_client_write(c, b.data, b.len);
		buf_free(&b);
		if (res->sasl == AUTH_SASL_OK) {
			c->sasl_final = true;
			c->user = res->user;
		}
		c->input_mode = IMAP_MODE_SASL;
		imap_client_after_command(c);
		return;
	}
	sasl_end(c);
	if (res->sasl == AUTH_SASL_OK) {
		login_finish(cmd, &res->user);
	} else if (res->sasl == AUTH_SASL_TEMPFAIL) {
		imap_cmd_no(cmd, "[UNAVAILABLE] Temporary authentication failure");
	} else {
		log_info("imap", c->sid, "authentication failed from %s",
			 net_conn_peer(conn));
		imap_cmd_no(cmd, "[AUTHENTICATIONFAILED] Authentication failed");
	}
	command_end(c);
}

/* Hands one SASL step with the client's decoded response to the gate;
 * sasl_done replies. */
static void sasl_step(struct imap_cmd *cmd, const void *in, size_t len)
{
	struct imap_client *c = cmd->client;
	cmd->continues = true;
	auth_login_sasl(c->sasl, c->conn, in, len, sasl_done);
}

void cmd_authenticate(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	if (!imap_arg_is_atom(&a[0]) ||
	    (a[1].type != IMAP_ARG_EOL &&
	     (!imap_arg_is_atom(&a[1]) || a[2].type != IMAP_ARG_EOL))) {
		imap_cmd_bad(cmd, "[CLIENTBUG] AUTHENTICATE needs a mechanism and at most an initial response");
		return;
	}
	bool plain = slice_eq_ci(a[0].str, "PLAIN") || slice_eq_ci(a[0].str, "LOGIN");
	if (plain && !cleartext_ok(c)) {
		imap_cmd_no(cmd, "[PRIVACYREQUIRED] Plaintext authentication needs TLS");
		return;
	}
	char mech[64];
	snprintf(mech, sizeof(mech), "%.*s", (int)a[0].str.len, a[0].str.ptr);
	for (char *p = mech; *p; p++)
		*p = (char)((*p >= 'a' && *p <= 'z') ? *p - 32 : *p);
	if (auth_sasl_begin(c->server->auth, mech, net_conn_peer(c->conn),
			    &c->sasl) < 0) {
		imap_cmd_no(cmd, "[CANNOT] Unsupported authentication mechanism");
		return;
	}
	if (a[1].type == IMAP_ARG_EOL) {
		sasl_step(cmd, NULL, 0);
		return;
	}
	/* SASL-IR: "=" is an empty initial response (RFC 4959 3) */
	struct buf ir;
	buf_init(&ir, 16384);
	if (!slice_eq(a[1].str, "=") &&
	    base64_decode(a[1].str.ptr, a[1].str.len, BASE64_STRICT, &ir) < 0) {
		buf_free(&ir);
		sasl_end(c);
		imap_cmd_bad(cmd, "[CLIENTBUG] Invalid base64 in initial response");
		return;
	}
	sasl_step(cmd, ir.data != NULL ? ir.data : "", ir.len);
	buf_free(&ir);
}

struct sasl_line {
	char *line;
	size_t len;
};

static void sasl_line_task(void *session, struct net_conn *conn, void *arg)
{
	struct imap_client *c = session;
	struct sasl_line *l = arg;
	struct imap_cmd *cmd = &c->cmd;
	if (c->sasl_final) {
		struct auth_user user = c->user;
		bool empty = l->len == 0;
		sasl_end(c);
		memset(&c->user, 0, sizeof(c->user));
		if (empty)
			login_finish(cmd, &user);
		else
			imap_cmd_no(cmd, "[AUTHENTICATIONFAILED] Authentication failed");
	} else {
		struct buf in;
		buf_init(&in, 16384);
		if (base64_decode(l->line, l->len, BASE64_STRICT, &in) < 0) {
			sasl_end(c);
			imap_cmd_bad(cmd, "[CLIENTBUG] Invalid base64 in response");
		} else {
			sasl_step(cmd, in.data != NULL ? in.data : "", in.len);
		}
		buf_free(&in);
	}
	free(l->line);
	free(l);
	imap_client_after_command(c);
	c->task_running = false;
}

/* An AUTHENTICATE response line arrived (I/O thread). */
void imap_client_sasl_line(struct imap_client *c, const char *line, size_t len)
{
	if (len == 1 && line[0] == '*') {
		/* RFC 9051 6.2.2: the client cancels; tagged BAD */
		sasl_end(c);
		c->cmd.replied = true;
		c->input_mode = IMAP_MODE_COMMAND;
		struct buf b;
		buf_init(&b, 0);
		buf_printf(&b, "%s BAD [CLIENTBUG] Authentication cancelled\r\n",
			   c->cmd.tag);
		net_conn_write(c->conn, b.data, b.len);
		buf_free(&b);
		return;
	}
	struct sasl_line *l = xmalloc(sizeof(*l));
	l->line = xstrndup(line, len);
	l->len = len;
	/* the next bytes belong to the next command unless the step asks
	 * for more (the task sets SASL mode again) */
	c->input_mode = IMAP_MODE_COMMAND;
	c->task_running = true;
	if (net_conn_run(c->conn, sasl_line_task, l) < 0) {
		c->task_running = false;
		free(l->line);
		free(l);
	}
}

void cmd_unauthenticate(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	if (cmd->args[0].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] UNAUTHENTICATE takes no arguments");
		return;
	}
	imap_client_logout_user(c);
	c->state = IMAP_STATE_NOT_AUTH;
	c->enabled = 0;   /* RFC 8437 3: back to a fresh session */
	imap_cmd_ok(cmd, "Not authenticated any more");
}

void cmd_compress(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	if (!imap_arg_atom_eq(&cmd->args[0], "DEFLATE") ||
	    cmd->args[1].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] Only COMPRESS DEFLATE is supported");
		return;
	}
	if (!c->server->set.compress) {
		imap_cmd_no(cmd, "[CANNOT] Compression is turned off on this server");
		return;
	}
	if (c->compressed || net_conn_is_compressed(c->conn)) {
		imap_cmd_no(cmd, "[COMPRESSIONACTIVE] Compression is already active");
		return;
	}
	imap_cmd_ok(cmd, "DEFLATE active");
	if (net_conn_compress(c->conn) < 0) {
		log_warn("imap", c->sid, "COMPRESS failed to start");
		net_conn_close(c->conn);
		return;
	}
	c->compressed = true;
}
