/*
 * ManageSieve sessions (managesieve.h). The I/O thread parses a whole
 * command (managesieve-parser.c) and hands it to a worker task; the net
 * layer reads nothing while a task runs, so pipelined commands are taken
 * in order. A literal over max_script_size is answered NO (QUOTA/MAXSIZE)
 * and its bytes are read and dropped as they come.
 */
#include "managesieve.h"
#include "managesieve-parser.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "base64.h"
#include "config.h"
#include "delivery-sieve.h"
#include "log.h"
#include "net.h"
#include "sieve.h"
#include "store.h"

#define MS_IDLE_TIMEOUT (30 * 60)

struct managesieve_server {
	struct store *store;
	struct auth *auth;
	bool tls_configured;
	struct sieve_limits limits;
};

struct ms_session {
	struct managesieve_server *server;
	struct net_conn *conn;
	char sid[32];
	bool authed;
	struct auth_user user;
	struct store_user *su;
	struct auth_sasl *sasl;
	bool sasl_final;          /* waiting for the empty answer */
	struct auth_user sasl_user;
	bool in_sasl;             /* the next line answers a challenge */
	uint64_t skip;            /* literal bytes still to drop */
	bool skip_line;           /* then the rest of the line */
	bool too_big_pending;     /* answer NO (QUOTA/MAXSIZE) once dropped */
	bool done;
	struct ms_command cmd;
};

/* ---- output --------------------------------------------------------- */

static bool quotable(const char *s, size_t n)
{
	if (n > 1024)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '"' || s[i] == '\\' || s[i] == '\r' || s[i] == '\n' ||
		    s[i] == '\0')
			return false;
	return true;
}

static void put_string(struct buf *b, const char *s, size_t n)
{
	if (quotable(s, n)) {
		buf_append_char(b, '"');
		buf_append(b, s, n);
		buf_append_char(b, '"');
	} else {
		buf_printf(b, "{%zu}\r\n", n);
		buf_append(b, s, n);
	}
}

/* OK/NO/BYE [(code)] "text" */
static void reply(struct ms_session *s, const char *what, const char *code,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void reply(struct ms_session *s, const char *what, const char *code,
		  const char *fmt, ...)
{
	struct buf text, b;
	buf_init(&text, 0);
	buf_init(&b, 0);
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&text, fmt, ap);
	va_end(ap);
	buf_append_str(&b, what);
	if (code != NULL)
		buf_printf(&b, " (%s)", code);
	if (text.len > 0) {
		buf_append_char(&b, ' ');
		put_string(&b, text.data, text.len);
	}
	buf_append(&b, "\r\n", 2);
	net_conn_write(s->conn, b.data, b.len);
	buf_free(&text);
	buf_free(&b);
}

static bool cleartext_ok(struct ms_session *s)
{
	return auth_cleartext_allowed(s->server->auth, net_conn_is_tls(s->conn),
				      net_conn_is_local(s->conn));
}

static void capability(struct ms_session *s, struct buf *b)
{
	const char *mechs = auth_mechanisms(s->server->auth, cleartext_ok(s));
	buf_append_str(b, "\"IMPLEMENTATION\" \"Loft\"\r\n");
	buf_printf(b, "\"SASL\" \"%s\"\r\n", mechs ? mechs : "");
	buf_append_str(b, "\"SIEVE\" \"" SIEVE_EXTENSIONS "\"\r\n");
	if (s->server->tls_configured && !net_conn_is_tls(s->conn))
		buf_append_str(b, "\"STARTTLS\"\r\n");
	buf_printf(b, "\"MAXREDIRECTS\" \"%u\"\r\n", s->server->limits.max_redirects);
	if (s->authed) {
		buf_append_str(b, "\"OWNER\" ");
		put_string(b, s->user.address, strlen(s->user.address));
		buf_append(b, "\r\n", 2);
	}
	buf_append_str(b, "\"VERSION\" \"1.0\"\r\n");
}

static void send_capability(struct ms_session *s, const char *ok_text)
{
	struct buf b;
	buf_init(&b, 0);
	capability(s, &b);
	buf_printf(&b, "OK \"%s\"\r\n", ok_text);
	net_conn_write(s->conn, b.data, b.len);
	buf_free(&b);
}

/* ---- store errors ---------------------------------------------------- */

static void store_failed(struct ms_session *s, const struct store_error *err)
{
	switch (err->kind) {
	case STORE_ERR_NOTFOUND:
		reply(s, "NO", "NONEXISTENT", "There is no script by that name");
		break;
	case STORE_ERR_EXISTS:
		reply(s, "NO", "ALREADYEXISTS", "A script by that name exists");
		break;
	case STORE_ERR_INVALID:
		reply(s, "NO", NULL, "Invalid script name");
		break;
	case STORE_ERR_TEMP:
	case STORE_ERR_UNAVAILABLE:
		reply(s, "NO", "TRYLATER", "Temporary failure, try again later");
		break;
	default:
		log_error("managesieve", s->sid, "store: %s", err->msg);
		reply(s, "NO", "TRYLATER", "Internal error (session %s)", s->sid);
		break;
	}
}

/* ---- login ----------------------------------------------------------- */

static void logged_in(struct ms_session *s, const struct auth_user *u)
{
	struct store_error err = {0};
	if (store_user_open(s->server->store, u->id, &s->su, &err) < 0) {
		log_error("managesieve", s->sid, "opening %s: %s", u->address,
			  err.msg);
		reply(s, "NO", "TRYLATER", "Cannot open your account now");
		return;
	}
	s->authed = true;
	s->user = *u;
	log_info("managesieve", s->sid, "user=%s: logged in from %s",
		 u->address, net_conn_peer(s->conn));
	reply(s, "OK", NULL, "Logged in");
}

static void sasl_end(struct ms_session *s)
{
	auth_sasl_free(&s->sasl);
	s->in_sasl = false;
	s->sasl_final = false;
}

static void sasl_challenge(struct ms_session *s, const char *data, size_t len)
{
	char *enc = base64_encode(data, len);
	net_conn_printf(s->conn, "\"%s\"\r\n", enc);
	free(enc);
	s->in_sasl = true;
}

static void sasl_done(void *session, struct net_conn *conn,
		      const struct auth_login_result *res)
{
	struct ms_session *s = session;
	(void)conn;
	switch (res->sasl) {
	case AUTH_SASL_CONTINUE:
		sasl_challenge(s, res->out ? res->out : "", res->out_len);
		break;
	case AUTH_SASL_OK:
		if (res->out_len > 0) {
			/* RFC 5804 2.1: server data with success */
			char *enc = base64_encode(res->out, res->out_len);
			sasl_end(s);
			s->authed = false;
			struct buf b;
			buf_init(&b, 0);
			buf_printf(&b, "OK (SASL \"%s\") \"Logged in\"\r\n", enc);
			free(enc);
			struct store_error err = {0};
			if (store_user_open(s->server->store, res->user.id, &s->su,
					    &err) < 0) {
				reply(s, "NO", "TRYLATER", "Cannot open your account");
			} else {
				s->authed = true;
				s->user = res->user;
				net_conn_write(s->conn, b.data, b.len);
			}
			buf_free(&b);
		} else {
			sasl_end(s);
			logged_in(s, &res->user);
		}
		break;
	case AUTH_SASL_TEMPFAIL:
		sasl_end(s);
		reply(s, "NO", "TRYLATER", "Authentication temporarily "
		      "unavailable");
		break;
	default:
		sasl_end(s);
		log_info("managesieve", s->sid, "AUTHENTICATE failed from %s",
			 net_conn_peer(s->conn));
		reply(s, "NO", NULL, "Authentication failed");
		break;
	}
}

static void sasl_step(struct ms_session *s, const char *b64, size_t len,
		      bool have)
{
	struct buf data;
	buf_init(&data, 0);
	if (!have) {
		auth_login_sasl(s->sasl, s->conn, NULL, 0, sasl_done);
	} else if (base64_decode(b64, len, BASE64_STRICT, &data) < 0) {
		sasl_end(s);
		reply(s, "NO", NULL, "Invalid base64 data, authentication "
		      "cancelled");
	} else {
		auth_login_sasl(s->sasl, s->conn, data.data ? data.data : "",
				data.len, sasl_done);
	}
	if (data.data)
		explicit_bzero(data.data, data.len);
	buf_free(&data);
}

static void cmd_authenticate(struct ms_session *s, struct ms_command *c)
{
	if (s->authed) {
		reply(s, "NO", NULL, "Already authenticated");
		return;
	}
	size_t ml;
	const char *mech = ms_arg_str(c, 0, &ml);
	if (c->nargs < 1 || c->nargs > 2 || c->args[0].type != MS_STRING) {
		reply(s, "NO", NULL, "Syntax: AUTHENTICATE \"MECHANISM\" "
		      "[\"initial response\"]");
		return;
	}
	char m[32];
	snprintf(m, sizeof(m), "%s", mech);
	for (char *p = m; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	bool clear = cleartext_ok(s);
	if (!clear && (strcmp(m, "PLAIN") == 0 || strcmp(m, "LOGIN") == 0)) {
		reply(s, "NO", "ENCRYPT-NEEDED", "Use STARTTLS first");
		return;
	}
	const char *mechs = auth_mechanisms(s->server->auth, clear);
	bool listed = false;
	for (const char *p = mechs; p && *p;) {
		size_t n = strcspn(p, " ");
		if (n == strlen(m) && strncasecmp(p, m, n) == 0)
			listed = true;
		p += n;
		while (*p == ' ')
			p++;
	}
	if (!listed || auth_sasl_begin(s->server->auth, m, net_conn_peer(s->conn),
				       &s->sasl) < 0) {
		s->sasl = NULL;
		reply(s, "NO", NULL, "Unsupported authentication mechanism");
		return;
	}
	size_t il = 0;
	const char *ir = ms_arg_str(c, 1, &il);
	sasl_step(s, ir, il, c->nargs == 2);
}

/* ---- commands --------------------------------------------------------- */

static bool need_auth(struct ms_session *s)
{
	if (!s->authed)
		reply(s, "NO", NULL, "Authenticate first");
	return s->authed;
}

static bool args_are(struct ms_session *s, struct ms_command *c,
		     unsigned n, const char *usage)
{
	for (unsigned i = 0; i < c->nargs; i++)
		if (c->args[i].type != MS_STRING && !(i == 1 &&
		     strcmp(c->name, "HAVESPACE") == 0))
			goto bad;
	if (c->nargs == n)
		return true;
bad:
	reply(s, "NO", NULL, "Syntax: %s", usage);
	return false;
}

static bool quota_ok(struct ms_session *s, const char *name, uint64_t size)
{
	struct store_error err = {0};
	uint64_t max;
	switch (delivery_sieve_quota(s->server->auth, s->su, s->user.id, name,
				     size, s->server->limits.max_script_size,
				     &max, &err)) {
	case DSIEVE_QUOTA_OK:
		return true;
	case DSIEVE_QUOTA_SIZE:
	case DSIEVE_QUOTA_STORAGE:
		reply(s, "NO", "QUOTA/MAXSIZE", "Not enough room for a script "
		      "of %llu bytes", (unsigned long long)size);
		return false;
	case DSIEVE_QUOTA_SCRIPTS:
		reply(s, "NO", "QUOTA/MAXSCRIPTS", "At most %llu scripts",
		      (unsigned long long)max);
		return false;
	case DSIEVE_QUOTA_ERROR:
		break;
	}
	store_failed(s, &err);
	return false;
}

static void compile_errors(struct ms_session *s, const struct sieve_errors *e)
{
	struct buf t;
	buf_init(&t, 0);
	for (size_t i = 0; i < e->count; i++)
		buf_printf(&t, "%sline %u, column %u: %s", i ? "\r\n" : "",
			   e->items[i].line, e->items[i].column,
			   e->items[i].message);
	reply(s, "NO", NULL, "%s", t.data ? t.data : "");
	buf_free(&t);
}

static void cmd_putscript(struct ms_session *s, struct ms_command *c,
			  bool check_only)
{
	if (!need_auth(s))
		return;
	if (!args_are(s, c, check_only ? 1 : 2, check_only
		      ? "CHECKSCRIPT script" : "PUTSCRIPT \"name\" script"))
		return;
	size_t len;
	const char *src = ms_arg_str(c, check_only ? 0 : 1, &len);
	const char *name = ms_arg_str(c, 0, NULL);
	if (!check_only && !quota_ok(s, name, len))
		return;
	struct sieve_errors e;
	struct sieve_script *sc = sieve_compile(src, len, check_only ? "check"
						: name, &s->server->limits, &e);
	if (sc == NULL) {
		compile_errors(s, &e);
		sieve_errors_free(&e);
		return;
	}
	sieve_errors_free(&e);
	if (!check_only) {
		size_t ilen;
		const void *img = sieve_script_image(sc, &ilen);
		struct store_error err = {0};
		if (store_sieve_put(s->su, name, src, len, img, ilen, &err) < 0) {
			store_failed(s, &err);
			sieve_script_free(&sc);
			return;
		}
		log_info("managesieve", s->sid, "user=%s: script \"%s\" stored "
			 "(%zu bytes)", s->user.address, name, len);
	}
	sieve_script_free(&sc);
	reply(s, "OK", NULL, check_only ? "Script is valid" : "Script stored");
}

static void cmd_listscripts(struct ms_session *s, struct ms_command *c)
{
	if (!need_auth(s) || !args_are(s, c, 0, "LISTSCRIPTS"))
		return;
	struct store_sieve_script *l;
	size_t n;
	struct store_error err = {0};
	if (store_sieve_list(s->su, &l, &n, &err) < 0) {
		store_failed(s, &err);
		return;
	}
	struct buf b;
	buf_init(&b, 0);
	for (size_t i = 0; i < n; i++) {
		put_string(&b, l[i].name, strlen(l[i].name));
		buf_append_str(&b, l[i].active ? " ACTIVE\r\n" : "\r\n");
	}
	buf_append_str(&b, "OK \"Listscripts completed\"\r\n");
	net_conn_write(s->conn, b.data, b.len);
	buf_free(&b);
	store_sieve_list_free(l, n);
}

static void cmd_getscript(struct ms_session *s, struct ms_command *c)
{
	if (!need_auth(s) || !args_are(s, c, 1, "GETSCRIPT \"name\""))
		return;
	char *src = NULL;
	size_t len = 0;
	struct store_error err = {0};
	if (store_sieve_get(s->su, ms_arg_str(c, 0, NULL), &src, &len, NULL,
			    NULL, NULL, &err) < 0) {
		store_failed(s, &err);
		return;
	}
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "{%zu}\r\n", len);
	buf_append(&b, src, len);
	buf_append_str(&b, "\r\nOK \"Getscript completed\"\r\n");
	net_conn_write(s->conn, b.data, b.len);
	buf_free(&b);
	free(src);
}

static void cmd_setactive(struct ms_session *s, struct ms_command *c)
{
	if (!need_auth(s) || !args_are(s, c, 1, "SETACTIVE \"name\""))
		return;
	struct store_error err = {0};
	const char *name = ms_arg_str(c, 0, NULL);
	if (store_sieve_activate(s->su, name, &err) < 0) {
		store_failed(s, &err);
		return;
	}
	reply(s, "OK", NULL, name[0] ? "Script activated"
	      : "No script is active now");
}

static void cmd_deletescript(struct ms_session *s, struct ms_command *c)
{
	if (!need_auth(s) || !args_are(s, c, 1, "DELETESCRIPT \"name\""))
		return;
	struct store_error err = {0};
	if (store_sieve_delete(s->su, ms_arg_str(c, 0, NULL), &err) < 0) {
		if (err.kind == STORE_ERR_EXISTS)
			reply(s, "NO", "ACTIVE", "The script is active");
		else
			store_failed(s, &err);
		return;
	}
	reply(s, "OK", NULL, "Script deleted");
}

static void cmd_renamescript(struct ms_session *s, struct ms_command *c)
{
	if (!need_auth(s) || !args_are(s, c, 2, "RENAMESCRIPT \"old\" \"new\""))
		return;
	struct store_error err = {0};
	if (store_sieve_rename(s->su, ms_arg_str(c, 0, NULL),
			       ms_arg_str(c, 1, NULL), &err) < 0) {
		store_failed(s, &err);
		return;
	}
	reply(s, "OK", NULL, "Script renamed");
}

static void cmd_havespace(struct ms_session *s, struct ms_command *c)
{
	if (!need_auth(s))
		return;
	if (c->nargs != 2 || c->args[0].type != MS_STRING ||
	    c->args[1].type != MS_NUMBER) {
		reply(s, "NO", NULL, "Syntax: HAVESPACE \"name\" size");
		return;
	}
	if (quota_ok(s, ms_arg_str(c, 0, NULL), c->args[1].num))
		reply(s, "OK", NULL, "Putscript would succeed");
}

/* After STARTTLS: once the connection has swapped to TLS (when the OK
 * has left), the capabilities again. A task, retried on a short timer
 * until then (5 ms, growing to 100 ms); the wait it keeps holds the
 * client's next command back until they are sent. It never gives up
 * (it stopped after 2000 tries before, and the client's next command
 * was then answered before the capabilities it waits for): the swap
 * comes once the OK has drained (bounded by the write timeout), and the
 * retries end when the connection closes (run_after refuses then). */
static void capability_task(void *session, struct net_conn *conn, void *arg)
{
	uintptr_t delay = (uintptr_t)arg;
	if (!net_conn_is_tls(conn)) {
		delay = delay < 5 ? 5 : delay * 2 > 100 ? 100 : delay * 2;
		net_conn_run_after(conn, (uint32_t)delay, 0, capability_task,
				   (void *)delay, NULL);
		return;
	}
	send_capability(session, "TLS is on");
}

static void cmd_starttls(struct ms_session *s)
{
	if (net_conn_is_tls(s->conn)) {
		reply(s, "NO", NULL, "TLS is already on");
		return;
	}
	if (!s->server->tls_configured) {
		reply(s, "NO", NULL, "TLS is not available");
		return;
	}
	reply(s, "OK", NULL, "Begin TLS negotiation now");
	if (net_conn_starttls(s->conn) < 0) {
		log_error("managesieve", s->sid, "STARTTLS: cannot start TLS");
		net_conn_close(s->conn);
		return;
	}
	/* RFC 5804 2.2: the capabilities again, over TLS */
	net_conn_run_after(s->conn, 1, 0, capability_task, NULL, NULL);
}

static void unauth(struct ms_session *s)
{
	if (s->su)
		store_user_unref(&s->su);
	s->authed = false;
	memset(&s->user, 0, sizeof(s->user));
}

static void run_command(struct ms_session *s, struct ms_command *c)
{
	const char *n = c->name;
	if (strcmp(n, "CAPABILITY") == 0) {
		send_capability(s, "Capability completed");
	} else if (strcmp(n, "AUTHENTICATE") == 0) {
		cmd_authenticate(s, c);
	} else if (strcmp(n, "STARTTLS") == 0) {
		cmd_starttls(s);
	} else if (strcmp(n, "LOGOUT") == 0) {
		reply(s, "OK", NULL, "Logout completed");
		s->done = true;
		net_conn_close(s->conn);
	} else if (strcmp(n, "NOOP") == 0) {
		if (c->nargs == 1 && c->args[0].type == MS_STRING) {
			struct buf b;
			buf_init(&b, 0);
			buf_append_str(&b, "OK (TAG ");
			put_string(&b, ms_arg_str(c, 0, NULL), c->args[0].len);
			buf_append_str(&b, ") \"Done\"\r\n");
			net_conn_write(s->conn, b.data, b.len);
			buf_free(&b);
		} else {
			reply(s, "OK", NULL, "Done");
		}
	} else if (strcmp(n, "UNAUTHENTICATE") == 0) {
		if (!s->authed) {
			reply(s, "NO", NULL, "Not authenticated");
		} else {
			unauth(s);
			reply(s, "OK", NULL, "Unauthenticate completed");
		}
	} else if (strcmp(n, "HAVESPACE") == 0) {
		cmd_havespace(s, c);
	} else if (strcmp(n, "PUTSCRIPT") == 0) {
		cmd_putscript(s, c, false);
	} else if (strcmp(n, "CHECKSCRIPT") == 0) {
		cmd_putscript(s, c, true);
	} else if (strcmp(n, "LISTSCRIPTS") == 0) {
		cmd_listscripts(s, c);
	} else if (strcmp(n, "GETSCRIPT") == 0) {
		cmd_getscript(s, c);
	} else if (strcmp(n, "SETACTIVE") == 0) {
		cmd_setactive(s, c);
	} else if (strcmp(n, "DELETESCRIPT") == 0) {
		cmd_deletescript(s, c);
	} else if (strcmp(n, "RENAMESCRIPT") == 0) {
		cmd_renamescript(s, c);
	} else {
		reply(s, "NO", NULL, "Unknown command");
	}
}

/* ---- the connection --------------------------------------------------- */

static void command_task(void *session, struct net_conn *conn, void *arg)
{
	struct ms_session *s = session;
	(void)conn;
	(void)arg;
	run_command(s, &s->cmd);
}

static void sasl_task(void *session, struct net_conn *conn, void *arg)
{
	struct ms_session *s = session;
	(void)conn;
	bool cancel = arg != NULL;
	if (cancel) {
		sasl_end(s);
		reply(s, "NO", NULL, "Authentication cancelled");
		return;
	}
	size_t len;
	const char *v = ms_arg_str(&s->cmd, 0, &len);
	if (s->sasl_final) {
		struct auth_user u = s->sasl_user;
		sasl_end(s);
		if (len != 0)
			reply(s, "NO", NULL, "Authentication failed");
		else
			logged_in(s, &u);
		return;
	}
	s->in_sasl = false;
	sasl_step(s, v, len, true);
}

static void *ms_accept(struct net_conn *conn, void *proto_ctx)
{
	struct ms_session *s = xcalloc(1, sizeof(*s));
	s->server = proto_ctx;
	s->conn = conn;
	snprintf(s->sid, sizeof(s->sid), "%s", net_conn_id(conn));
	ms_command_init(&s->cmd);
	net_conn_set_timeout(conn, MS_IDLE_TIMEOUT);
	log_debug("managesieve", s->sid, "connect from %s", net_conn_peer(conn));
	send_capability(s, "Loft ManageSieve ready");
	return s;
}

/* Drops a too-big literal's bytes and the rest of its line. */
static bool drop_input(struct ms_session *s, struct evbuffer *in)
{
	size_t have = evbuffer_get_length(in);
	if (s->skip > 0) {
		size_t n = have < s->skip ? have : (size_t)s->skip;
		evbuffer_drain(in, n);
		s->skip -= n;
		have -= n;
		if (s->skip > 0)
			return false;
	}
	if (s->skip_line) {
		struct evbuffer_ptr p = evbuffer_search(in, "\n", 1, NULL);
		if (p.pos < 0) {
			evbuffer_drain(in, have);
			return false;
		}
		evbuffer_drain(in, (size_t)p.pos + 1);
		s->skip_line = false;
	}
	if (s->too_big_pending) {
		s->too_big_pending = false;
		reply(s, "NO", "QUOTA/MAXSIZE", "The script is bigger than %zu "
		      "bytes", s->server->limits.max_script_size);
	}
	return true;
}

static void ms_input(void *session, struct net_conn *conn)
{
	struct ms_session *s = session;
	struct evbuffer *in = net_conn_input(conn);
	struct ms_limits lim = {8192, s->server->limits.max_script_size};
	while (!s->done) {
		if (!drop_input(s, in))
			return;
		size_t have = evbuffer_get_length(in);
		if (have == 0)
			return;
		const char *p = (const char *)evbuffer_pullup(in, -1);
		size_t consumed = 0;
		uint64_t skip = 0;
		const char *why = NULL;
		enum ms_parse_status st;
		bool cancel = false;
		if (s->in_sasl)
			st = ms_parse_sasl(p, have, &lim, &s->cmd, &cancel,
					   &consumed, &why);
		else
			st = ms_parse(p, have, &lim, &s->cmd, &consumed, &skip,
				      &why);
		if (st == MS_NEED_MORE)
			return;
		bool line_done = consumed > 0 && p[consumed - 1] == '\n';
		evbuffer_drain(in, consumed);
		if (st == MS_ERROR) {
			s->skip_line = !line_done;
			if (s->in_sasl) {
				sasl_end(s);
				reply(s, "NO", NULL, "Authentication cancelled: %s",
				      why ? why : "bad response");
			} else {
				reply(s, "NO", NULL, "%s", why ? why : "Bad command");
			}
			continue;
		}
		if (st == MS_TOO_BIG) {
			s->skip = skip;
			s->skip_line = true;
			s->too_big_pending = true;
			continue;
		}
		if (s->in_sasl) {
			net_conn_run(conn, sasl_task, cancel ? (void *)1 : NULL);
			return;
		}
		net_conn_run(conn, command_task, NULL);
		return;
	}
}

static void ms_closed(void *session, struct net_conn *conn)
{
	struct ms_session *s = session;
	(void)conn;
	auth_sasl_free(&s->sasl);
	unauth(s);
	ms_command_free(&s->cmd);
	free(s);
}

static bool ms_timeout(void *session, struct net_conn *conn)
{
	(void)session;
	net_conn_printf(conn, "BYE \"Idle for too long\"\r\n");
	return true;
}

static void ms_shutdown(void *session, struct net_conn *conn)
{
	(void)session;
	net_conn_printf(conn, "BYE (TRYLATER) \"Server shutting down\"\r\n");
}

const struct net_proto managesieve_proto = {
	.name = "managesieve",
	.accept = ms_accept,
	.input = ms_input,
	.closed = ms_closed,
	.timeout = ms_timeout,
	.shutdown = ms_shutdown,
	.busy_reply = "BYE (TRYLATER) \"Too many connections\"\r\n",
	.banned_reply = "BYE (TRYLATER) \"Too many failed logins from your "
			"address, try again later\"\r\n",
};

struct managesieve_server *managesieve_server_create(const struct config *cfg,
						     struct store *store,
						     struct auth *auth,
						     struct buf *errors)
{
	struct managesieve_server *srv = xcalloc(1, sizeof(*srv));
	srv->store = store;
	srv->auth = auth;
	sieve_limits_default(&srv->limits);
	if (cfg != NULL) {
		for (size_t i = 0; i < cfg->count; i++) {
			const struct config_entry *e = &cfg->entries[i];
			if (strcmp(e->section, "managesieve") == 0 &&
			    strcmp(e->key, "listen") != 0) {
				buf_printf(errors, "%s:%d: [managesieve]: unknown "
					   "key '%s'\n", cfg->path, e->line, e->key);
				free(srv);
				return NULL;
			}
		}
		struct delivery_sieve *ds = delivery_sieve_load(cfg, errors);
		if (ds == NULL) {
			free(srv);
			return NULL;
		}
		srv->limits = *delivery_sieve_limits(ds);
		delivery_sieve_unref(&ds);
		srv->tls_configured = config_get(cfg, "tls", "cert") != NULL &&
				      config_get(cfg, "tls", "key") != NULL;
	}
	return srv;
}

void managesieve_server_destroy(struct managesieve_server **server)
{
	free(*server);
	*server = NULL;
}
