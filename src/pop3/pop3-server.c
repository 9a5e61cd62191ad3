/*
 * The POP3 server: configuration, the net_proto hooks, the incremental
 * line reader and the command table. A command line is read on the I/O
 * thread; cheap commands answer there, the rest run on a worker
 * (net_conn_run). While a command runs the net layer stops reading, so
 * pipelined commands (RFC 2449 6.6) are taken one after the other, in
 * order, as soon as the previous reply is written.
 */
#include "pop3-private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "config.h"
#include "log.h"
#include "metrics.h"

/* ---- replies -------------------------------------------------------- */

int pop3_reply(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;
	char line[512];   /* RFC 2449 4: a response line is at most 512 octets */

	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	metrics_count("loft_commands_total", "Commands answered, per protocol "
		      "and result.", line[0] == '+' ?
		      "proto=\"pop3\",result=\"ok\"" :
		      "proto=\"pop3\",result=\"err\"");
	return pop3_write(s, line, (size_t)n);
}

int pop3_flush(struct pop3_session *s)
{
	if (s->out == NULL || s->out_len == 0)
		return 0;
	size_t len = s->out_len;
	s->out_len = 0;
	return net_conn_write(s->conn, s->out, len);
}

int pop3_write(struct pop3_session *s, const void *data, size_t len)
{
	const char *p = data;

	if (s->out == NULL)
		return net_conn_write(s->conn, data, len);
	while (len > 0) {
		if (s->out_len == POP3_OUT_CHUNK && pop3_flush(s) < 0)
			return -1;
		size_t n = POP3_OUT_CHUNK - s->out_len;
		if (n > len)
			n = len;
		memcpy(s->out + s->out_len, p, n);
		s->out_len += n;
		p += n;
		len -= n;
	}
	return 0;
}

bool pop3_cleartext_ok(struct pop3_session *s)
{
	return auth_cleartext_allowed(s->server->auth, net_conn_is_tls(s->conn),
				      net_conn_is_local(s->conn));
}

/* ---- maildrop locks ------------------------------------------------- */

/* How long a login waits for a lock whose holder's peer has gone (its
 * close is on its way through the holder's I/O thread). Generous: on an
 * idle machine it takes a millisecond. */
#define POP3_LOCK_WAIT_MS 10000
/* How soon a probe that found unread bytes is asked again. */
#define POP3_LOCK_REPROBE_MS 20

enum pop3_probe {
	PROBE_NONE,      /* no question pending */
	PROBE_ASKED,     /* posted to the holder's I/O thread */
	PROBE_ALIVE,     /* the holder's peer is there */
	PROBE_GONE,      /* its peer closed: the lock goes soon */
};

struct pop3_lock {
	int64_t user_id;
	struct net_conn *conn;          /* referenced */
	enum pop3_probe probe;
};

static struct pop3_lock *lock_find(struct pop3_server *server, int64_t user_id)
{
	for (size_t i = 0; i < server->locked_count; i++)
		if (server->locked[i].user_id == user_id)
			return &server->locked[i];
	return NULL;
}

/* On the holder's I/O thread: is its client still there? */
static void lock_probe(void *session, struct net_conn *conn, void *arg)
{
	struct pop3_session *s = session;
	struct pop3_server *server = s->server;
	int r = net_conn_probe_peer(conn);
	pthread_mutex_lock(&server->lock_mutex);
	struct pop3_lock *l = s->locked ? lock_find(server, s->user.id) : NULL;
	if (l != NULL && l->conn == conn)
		l->probe = r > 0 ? PROBE_GONE : r == 0 ? PROBE_ALIVE : PROBE_NONE;
	pthread_cond_broadcast(&server->lock_cond);
	pthread_mutex_unlock(&server->lock_mutex);
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Drops this node's entry; across nodes too when cluster. */
static void lock_drop(struct pop3_server *server, int64_t user_id,
		      bool cluster)
{
	struct net_conn *conn = NULL;
	bool found = false;
	pthread_mutex_lock(&server->lock_mutex);
	for (size_t i = 0; i < server->locked_count; i++) {
		if (server->locked[i].user_id == user_id) {
			conn = server->locked[i].conn;
			server->locked[i] = server->locked[--server->locked_count];
			found = true;
			break;
		}
	}
	pthread_cond_broadcast(&server->lock_cond);
	pthread_mutex_unlock(&server->lock_mutex);
	net_conn_unref(&conn);
	if (found && cluster)
		store_maildrop_unlock(server->store, user_id);
}

int pop3_lock(struct pop3_server *server, int64_t user_id,
	      struct net_conn *conn)
{
	struct timespec deadline, now, until;
	bool asked = false;
	deadline_in(&deadline, POP3_LOCK_WAIT_MS);
	pthread_mutex_lock(&server->lock_mutex);
	for (struct pop3_lock *l; (l = lock_find(server, user_id)) != NULL;) {
		clock_gettime(CLOCK_REALTIME, &now);
		if (l->probe == PROBE_ALIVE || !ts_before(&now, &deadline)) {
			l->probe = PROBE_NONE;   /* the next login asks again */
			pthread_mutex_unlock(&server->lock_mutex);
			return 0;
		}
		until = deadline;
		if (l->probe == PROBE_NONE && asked) {
			/* bytes waited unread: ask again once the holder's
			 * loop has had them */
			asked = false;
			deadline_in(&until, POP3_LOCK_REPROBE_MS);
		} else if (l->probe == PROBE_NONE) {
			/* a holder that is closing answers by unlocking */
			l->probe = net_conn_post(l->conn, lock_probe, NULL) == 0
					   ? PROBE_ASKED : PROBE_GONE;
			asked = true;
		}
		pthread_cond_timedwait(&server->lock_cond, &server->lock_mutex,
				       ts_before(&until, &deadline) ? &until
								    : &deadline);
	}
	if (server->locked_count == server->locked_cap) {
		server->locked_cap = server->locked_cap ? server->locked_cap * 2 : 16;
		server->locked = xrealloc(server->locked,
					  server->locked_cap * sizeof(*server->locked));
	}
	struct pop3_lock *l = &server->locked[server->locked_count++];
	l->user_id = user_id;
	l->conn = conn;
	l->probe = PROBE_NONE;
	net_conn_ref(conn);
	pthread_mutex_unlock(&server->lock_mutex);
	/* this node's lock first (no round trip for a local second
	 * session), then the other nodes' */
	struct store_error err = {0};
	int r = store_maildrop_lock(server->store, user_id, &err);
	if (r <= 0)
		lock_drop(server, user_id, false);
	return r;
}

void pop3_unlock(struct pop3_server *server, int64_t user_id)
{
	lock_drop(server, user_id, true);
}

/* ---- the command table ---------------------------------------------- */

enum {
	CMD_AUTHORIZATION = 1 << 0,   /* valid before login */
	CMD_TRANSACTION = 1 << 1,     /* valid after login */
	CMD_WORKER = 1 << 2,          /* may block: run on a worker */
	CMD_STOP = 1 << 3,            /* stop parsing after it (STLS: the
					 input buffer belongs to TLS now) */
};

struct pop3_command {
	const char *name;
	void (*handler)(struct pop3_session *s, const char *args);
	unsigned flags;
};

static const struct pop3_command pop3_commands[] = {
	{"CAPA", pop3_cmd_capa, CMD_AUTHORIZATION | CMD_TRANSACTION},
	{"USER", pop3_cmd_user, CMD_AUTHORIZATION},
	{"PASS", pop3_cmd_pass, CMD_AUTHORIZATION | CMD_WORKER},
	{"AUTH", pop3_cmd_auth, CMD_AUTHORIZATION | CMD_WORKER},
	{"APOP", pop3_cmd_apop, CMD_AUTHORIZATION},
	{"STLS", pop3_cmd_stls, CMD_AUTHORIZATION | CMD_STOP},
	{"QUIT", pop3_cmd_quit, CMD_AUTHORIZATION | CMD_TRANSACTION | CMD_WORKER},
	{"STAT", pop3_cmd_stat, CMD_TRANSACTION},
	{"LIST", pop3_cmd_list, CMD_TRANSACTION | CMD_WORKER},
	{"UIDL", pop3_cmd_uidl, CMD_TRANSACTION | CMD_WORKER},
	{"RETR", pop3_cmd_retr, CMD_TRANSACTION | CMD_WORKER},
	{"TOP", pop3_cmd_top, CMD_TRANSACTION | CMD_WORKER},
	{"DELE", pop3_cmd_dele, CMD_TRANSACTION | CMD_WORKER},
	{"RSET", pop3_cmd_rset, CMD_TRANSACTION},
	{"NOOP", pop3_cmd_noop, CMD_TRANSACTION},
};

static const struct pop3_command *pop3_command_find(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(pop3_commands) / sizeof(pop3_commands[0]); i++) {
		const struct pop3_command *c = &pop3_commands[i];
		if (strlen(c->name) == len && strncasecmp(c->name, name, len) == 0)
			return c;
	}
	return NULL;
}

/* ---- sessions ------------------------------------------------------- */

static void *pop3_accept(struct net_conn *conn, void *proto_ctx)
{
	struct pop3_server *server = proto_ctx;
	struct pop3_session *s = xcalloc(1, sizeof(*s));

	s->server = server;
	s->conn = conn;
	snprintf(s->sid, sizeof(s->sid), "%s", net_conn_id(conn));
	s->state = POP3_STATE_AUTHORIZATION;
	buf_init(&s->line, POP3_MAX_SASL_LINE + 1);
	s->timeout = __atomic_load_n(&server->timeout, __ATOMIC_RELAXED);
	net_conn_set_timeout(conn, s->timeout);
	log_debug("pop3", s->sid, "connect from %s%s", net_conn_peer(conn),
		  net_conn_is_tls(conn) ? " (TLS)" : "");
	/* No APOP timestamp: APOP needs cleartext passwords on the server. */
	pop3_reply(s, "+OK Loft POP3 server ready.");
	return s;
}

/* Called on QUIT and when the connection goes away: releases the maildrop
 * without applying any DELE (RFC 1939 6: only QUIT enters UPDATE). */
void pop3_session_end(struct pop3_session *s)
{
	pop3_sasl_abort(s);
	pop3_maildrop_close(s);
	if (s->user_name != NULL) {
		explicit_bzero(s->user_name, strlen(s->user_name));
		free(s->user_name);
		s->user_name = NULL;
	}
}

/* loftctl kick / user del: after the running command, if any, the
 * session says why and ends without entering UPDATE (nothing DELE'd is
 * removed, RFC 1939 6). */
static void pop3_logout_task(void *session, struct net_conn *conn, void *arg)
{
	static const char bye[] =
		"-ERR [SYS/TEMP] Session ended by the administrator.\r\n";
	struct pop3_session *s = session;

	if (s->state != POP3_STATE_TRANSACTION)
		return;
	log_info("pop3", s->sid, "user=%s: session ended by the administrator",
		 s->user.address);
	pop3_flush(s);
	s->state = POP3_STATE_DONE;
	pop3_session_end(s);
	net_conn_write(conn, bye, sizeof(bye) - 1);
	net_conn_close(conn);
}

static void pop3_logout_post(void *session, struct net_conn *conn, void *arg)
{
	net_conn_run(conn, pop3_logout_task, NULL);
}

void pop3_store_changed(void *ctx, const struct store_change *change)
{
	struct pop3_session *s = ctx;

	/* s->conn is valid here: pop3_closed unsubscribes before it lets
	 * go of the connection, and unsubscribing waits for callbacks. */
	if (change->kind == STORE_CHANGE_LOGOUT)
		net_conn_post(s->conn, pop3_logout_post, NULL);
}

static void pop3_session_free(struct pop3_session *s)
{
	pop3_session_end(s);
	if (s->line.data != NULL)
		explicit_bzero(s->line.data, s->line.cap);
	buf_free(&s->line);
	free(s);
}

/* Letting go of a store handle may close an idle user's index (the
 * store evicts on unref), which must not block an I/O thread: a dropped
 * session in TRANSACTION state is released on a short-lived thread. */
static void pop3_release(void *arg)
{
	pop3_session_free(arg);
}

static void pop3_closed(void *session, struct net_conn *conn)
{
	struct pop3_session *s = session;
	struct pop3_server *server = s->server;

	log_debug("pop3", s->sid, "disconnected");
	store_unsubscribe(&s->sub);
	/* The lock goes at once, here: a client that reconnects must not
	 * wait for the store handle to be let go (RFC 1939 6: a session
	 * that ends without QUIT applies nothing). */
	if (s->locked) {
		pop3_unlock(server, s->user.id);
		s->locked = false;
	}
	s->conn = NULL;
	if (s->mail == NULL) {
		pop3_session_free(s);
		return;
	}
	offload_run(&server->release, pop3_release, s);
}

static bool pop3_timeout(void *session, struct net_conn *conn)
{
	struct pop3_session *s = session;

	/* RFC 1939 3: an autologout timer closes the session without
	 * entering UPDATE: nothing is deleted. */
	log_info("pop3", s->sid, "autologout after %u s idle", s->timeout);
	pop3_reply(s, "-ERR Disconnected for inactivity.");
	pop3_flush(s);
	return true;
}

/* loftd is stopping: RFC 3206's SYS/TEMP says the failure is the
 * server's and temporary, so the client tries again later. Like an
 * autologout, nothing marked with DELE is removed (no UPDATE state). */
static void pop3_shutdown(void *session, struct net_conn *conn)
{
	struct pop3_session *s = session;
	pop3_reply(s, "-ERR [SYS/TEMP] Server shutting down");
	pop3_flush(s);
}

static void pop3_bad_command(struct pop3_session *s, const char *msg)
{
	pop3_reply(s, "-ERR %s", msg);
	if (++s->bad_commands >= POP3_MAX_BAD_COMMANDS) {
		pop3_reply(s, "-ERR Too many invalid commands, closing.");
		pop3_flush(s);
		s->state = POP3_STATE_DONE;
		net_conn_close(s->conn);
	}
}

static int pop3_read_line(struct pop3_session *s, struct evbuffer *in);
static bool pop3_dispatch(struct pop3_session *s, bool on_worker);

static const char *command_args(struct pop3_session *s,
				const struct pop3_command *cmd)
{
	const char *args = s->line.data + strlen(cmd->name);
	while (*args == ' ')
		args++;
	return args;
}

static void pop3_run(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (cmd == NULL) {
		pop3_sasl_input(s, s->line.data);
		return;
	}
	cmd->handler(s, command_args(s, cmd));
}

/* A worker task: the command, then the commands the client pipelined
 * behind it that are already buffered (RFC 2449 6.6), without a round
 * trip through the I/O thread each. Bounded so that one client cannot
 * keep a worker from the others for long. */
static void pop3_task(void *session, struct net_conn *conn, void *arg)
{
	struct pop3_session *s = session;
	struct evbuffer *in = net_conn_input(conn);
	bool more = false;

	if (s->state == POP3_STATE_TRANSACTION)
		pop3_retr_pending_flush(s);
	pop3_run(s, arg);
	for (int i = 0; i < POP3_MAX_PIPELINED && s->state != POP3_STATE_DONE &&
			!s->auth_pending; i++) {
		int r = pop3_read_line(s, in);
		if (r == 0)
			break;
		if (r < 0) {
			if (s->sasl != NULL)
				pop3_sasl_abort(s);
			pop3_bad_command(s, "Line too long.");
			continue;
		}
		if (pop3_dispatch(s, true)) {
			more = true;
			break;
		}
	}
	pop3_flush(s);
	/* The replies are on their way; a client walking the maildrop one
	 * command at a time finds its next ones ready when they come. */
	if (!more)
		pop3_ahead_fill(s);
}

/* One complete line is in s->line: find its command and run it, here
 * or (on_worker false, a command that may block) on a worker. Returns
 * true when the caller must stop parsing (a task was started, or STLS). */
static bool pop3_dispatch(struct pop3_session *s, bool on_worker)
{
	const char *line = s->line.data != NULL ? s->line.data : "";

	if (memchr(line, '\0', s->line.len) != NULL) {
		if (s->sasl != NULL)
			pop3_sasl_abort(s);
		pop3_bad_command(s, "Invalid characters in command.");
		return false;
	}
	if (s->sasl != NULL) {
		if (on_worker) {
			pop3_run(s, NULL);
			return false;
		}
		pop3_flush(s);
		if (net_conn_run(s->conn, pop3_task, NULL) < 0)
			pop3_sasl_abort(s);
		return true;
	}

	size_t n = strcspn(line, " ");
	const struct pop3_command *cmd = pop3_command_find(line, n);
	if (cmd == NULL) {
		pop3_bad_command(s, "Unknown command.");
		return false;
	}
	if (s->state == POP3_STATE_AUTHORIZATION && !(cmd->flags & CMD_AUTHORIZATION)) {
		pop3_bad_command(s, "Command not valid before login (AUTHORIZATION state).");
		return false;
	}
	if (s->state == POP3_STATE_TRANSACTION && !(cmd->flags & CMD_TRANSACTION)) {
		pop3_bad_command(s, "Command not valid after login (TRANSACTION state).");
		return false;
	}
	s->bad_commands = 0;
	if (!on_worker && s->ahead_count > 0 &&
	    (cmd->handler == pop3_cmd_top || cmd->handler == pop3_cmd_retr) &&
	    pop3_ahead_answer(s, cmd->handler == pop3_cmd_retr,
			      command_args(s, cmd)))
		return false;
	if ((cmd->flags & CMD_WORKER) && !on_worker) {
		/* From here the worker owns s->out. */
		pop3_flush(s);
		net_conn_run(s->conn, pop3_task, (void *)cmd);
		return true;
	}
	pop3_run(s, cmd);
	return (cmd->flags & CMD_STOP) != 0;
}

/* Reads one line into s->line. Returns 1 for a line, 0 when more input is
 * needed, -1 for a line over the limit (discarded; the rest of it is
 * dropped as it comes). */
static int pop3_read_line(struct pop3_session *s, struct evbuffer *in)
{
	size_t max = s->sasl != NULL ? POP3_MAX_SASL_LINE : POP3_MAX_LINE;

	switch (net_line_take(in, max, &s->skipping, &s->line)) {
	case NET_LINE_OK:
		return 1;
	case NET_LINE_TOO_LONG:
		return -1;
	case NET_LINE_MORE:
		break;
	}
	return 0;
}

static void pop3_input(void *session, struct net_conn *conn)
{
	struct pop3_session *s = session;
	struct evbuffer *in = net_conn_input(conn);

	while (s->state != POP3_STATE_DONE) {
		int r = pop3_read_line(s, in);
		if (r == 0) {
			pop3_flush(s);
			return;
		}
		if (r < 0) {
			if (s->sasl != NULL)
				pop3_sasl_abort(s);
			pop3_bad_command(s, "Line too long.");
			continue;
		}
		if (pop3_dispatch(s, false))
			return;
	}
	/* After QUIT nothing more is read (RFC 1939 6). */
	evbuffer_drain(in, evbuffer_get_length(in));
}

const struct net_proto pop3_proto = {
	.name = "pop3",
	.accept = pop3_accept,
	.input = pop3_input,
	.closed = pop3_closed,
	.timeout = pop3_timeout,
	/* RFC 3206 SYS/TEMP: a temporary refusal */
	.banned_reply = "-ERR [SYS/TEMP] Too many failed logins from your "
			"address, try again later.\r\n",
	.shutdown = pop3_shutdown,
};

/* ---- the server ----------------------------------------------------- */

/* retention_interval is the store's now ([store]); read here before. */
static const char *const pop3_config_keys[] = {
	"listen", "timeout", "retention_interval", "mark_seen", NULL,
};

static bool pop3_config_key_known(const char *key)
{
	for (size_t i = 0; pop3_config_keys[i] != NULL; i++) {
		if (strcmp(pop3_config_keys[i], key) == 0)
			return true;
	}
	return false;
}

/* A duration from [pop3], falling back to [pop3s]. */
static int pop3_config_duration(const struct config *cfg, const char *key,
				uint64_t def, uint64_t *v_r, struct buf *errors)
{
	const struct config_entry *e = config_find(cfg, "pop3", key);

	if (e == NULL)
		e = config_find(cfg, "pop3s", key);
	*v_r = def;
	if (e == NULL)
		return 0;
	if (config_parse_duration(e->value, v_r) < 0) {
		buf_printf(errors, "%s:%d: %s: invalid duration '%s' (e.g. 10m, 1h)\n",
			   cfg->path, e->line, key, e->value);
		return -1;
	}
	return 0;
}

static int pop3_config_check(const struct config *cfg, struct buf *errors)
{
	int ret = 0;

	for (size_t i = 0; i < cfg->count; i++) {
		const struct config_entry *e = &cfg->entries[i];
		if (strcmp(e->section, "pop3") != 0 && strcmp(e->section, "pop3s") != 0)
			continue;
		if (!pop3_config_key_known(e->key)) {
			buf_printf(errors, "%s:%d: [%s] unknown key '%s'\n", cfg->path,
				   e->line, e->section, e->key);
			ret = -1;
		}
	}
	return ret;
}

static int read_timeout(const struct config *cfg, uint64_t *timeout_r,
			struct buf *errors)
{
	if (pop3_config_duration(cfg, "timeout", 600, timeout_r, errors) < 0)
		return -1;
	if (*timeout_r == 0 || *timeout_r > 86400) {
		const struct config_entry *e = config_find(cfg, "pop3", "timeout");
		if (e == NULL)
			e = config_find(cfg, "pop3s", "timeout");
		buf_printf(errors, "%s:%d: timeout must be between 1s and 1d\n",
			   cfg->path, e != NULL ? e->line : 0);
		return -1;
	}
	return 0;
}

void pop3_server_reload(struct pop3_server *server, const struct config *cfg)
{
	uint64_t timeout;
	struct buf errors;
	buf_init(&errors, 0);
	if (read_timeout(cfg, &timeout, &errors) == 0)
		__atomic_store_n(&server->timeout, (unsigned)timeout,
				 __ATOMIC_RELAXED);
	buf_free(&errors);
}

struct pop3_server *pop3_server_create(const struct config *cfg,
				       struct store *store, struct auth *auth,
				       struct buf *errors)
{
	uint64_t timeout = 600;
	int ret = pop3_config_check(cfg, errors);

	ret |= read_timeout(cfg, &timeout, errors);
	if (ret != 0)
		return NULL;

	struct pop3_server *server = xcalloc(1, sizeof(*server));
	server->store = store;
	server->auth = auth;
	server->timeout = (unsigned)timeout;
	server->tls_configured = config_get(cfg, "tls", "cert") != NULL &&
				 config_get(cfg, "tls", "key") != NULL;
	server->mark_seen = true;
	const struct config_entry *ms = config_find(cfg, "pop3", "mark_seen");
	if (ms == NULL)
		ms = config_find(cfg, "pop3s", "mark_seen");
	if (ms != NULL && config_parse_bool(ms->value, &server->mark_seen) < 0) {
		buf_printf(errors, "%s:%d: mark_seen: expected yes or no, got '%s'\n",
			   cfg->path, ms->line, ms->value);
		free(server);
		return NULL;
	}
	const char *days = config_get(cfg, "policy", "pop3_retention_days");
	uint64_t d = 0;
	if (days != NULL && config_parse_uint(days, UINT32_MAX, &d) == 0)
		server->default_retention_days = (uint32_t)d;
	pthread_mutex_init(&server->lock_mutex, NULL);
	pthread_cond_init(&server->lock_cond, NULL);
	offload_init(&server->release);
	return server;
}

void pop3_server_destroy(struct pop3_server **serverp)
{
	struct pop3_server *server = *serverp;

	if (server == NULL)
		return;
	*serverp = NULL;
	offload_finish(&server->release);
	pthread_mutex_destroy(&server->lock_mutex);
	pthread_cond_destroy(&server->lock_cond);
	free(server->locked);
	free(server);
}
