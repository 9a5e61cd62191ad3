/*
 * The control socket's server side: the verb registry and a net_proto
 * that reads one request line at a time on the I/O thread, runs the
 * verb on a worker and writes its reply. Peers other than root and
 * loftd's own uid are turned away at accept (SO_PEERCRED), whatever the
 * socket file's mode says.
 */
#include "control.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "config.h"
#include "log.h"
#include "net.h"

/* Idle control connections are closed after this long. */
#define CONTROL_TIMEOUT_S 60
/* Malformed requests in a row before the connection is closed. */
#define CONTROL_MAX_ERRORS 10

struct control_verb {
	const char *verb;
	const char *usage;
	struct control_request words;   /* verb split into words */
	control_verb_fn *fn;
	void *ctx;
};

struct control {
	struct control_verb *verbs;
	size_t count;
	long pid;                 /* what ping says: loftd's main pid */
};

struct control_reply {
	struct net_conn *conn;
	unsigned uid;
	struct buf ok_text, err_text;
	bool failed;
};

struct control_session {
	struct control *ctl;
	struct net_conn *conn;
	unsigned uid;
	unsigned errors;
};

/* What a worker task runs: the verb and its argument copies. */
struct control_task {
	const struct control_verb *verb;
	int argc;
	char **argv;
};

static int builtin_help(void *ctx, int argc, char **argv,
			struct control_reply *reply);
static int builtin_ping(void *ctx, int argc, char **argv,
			struct control_reply *reply);

/* ---- the registry ---------------------------------------------------- */

struct control *control_create(void)
{
	struct control *ctl = xcalloc(1, sizeof(*ctl));
	ctl->pid = (long)getpid();
	control_register(ctl, "help", "", builtin_help, ctl);
	control_register(ctl, "ping", "", builtin_ping, ctl);
	return ctl;
}

void control_destroy(struct control **ctlp)
{
	struct control *ctl = *ctlp;
	if (ctl == NULL)
		return;
	*ctlp = NULL;
	free(ctl->verbs);
	free(ctl);
}

void control_register(struct control *ctl, const char *verb,
		      const char *usage, control_verb_fn *fn, void *ctx)
{
	struct control_verb v = {verb, usage, {0}, fn, ctx};
	const char *error;
	if (control_request_parse(verb, strlen(verb), &v.words, &error) < 0) {
		log_error("control", NULL, "bad verb '%s': %s", verb, error);
		abort();
	}
	for (size_t i = 0; i < ctl->count; i++) {
		if (strcmp(ctl->verbs[i].verb, verb) == 0) {
			log_error("control", NULL, "verb '%s' registered twice",
				  verb);
			abort();
		}
	}
	ctl->verbs = xrealloc(ctl->verbs, (ctl->count + 1) * sizeof(*ctl->verbs));
	/* The words point into verb, which outlives ctl. */
	ctl->verbs[ctl->count++] = v;
}

/* The verb whose words begin req, the longest such; NULL if none. */
static const struct control_verb *find_verb(const struct control *ctl,
					    const struct control_request *req)
{
	const struct control_verb *best = NULL;
	for (size_t i = 0; i < ctl->count; i++) {
		const struct control_verb *v = &ctl->verbs[i];
		if (v->words.count > req->count ||
		    (best != NULL && v->words.count <= best->words.count))
			continue;
		size_t k = 0;
		while (k < v->words.count &&
		       v->words.words[k].len == req->words[k].len &&
		       memcmp(v->words.words[k].ptr, req->words[k].ptr,
			      req->words[k].len) == 0)
			k++;
		if (k == v->words.count)
			best = v;
	}
	return best;
}

static int builtin_help(void *ctx, int argc, char **argv,
			struct control_reply *reply)
{
	const struct control *ctl = ctx;
	for (size_t i = 0; i < ctl->count; i++) {
		const struct control_verb *v = &ctl->verbs[i];
		control_reply_line(reply, "%s%s%s", v->verb,
				   v->usage[0] != '\0' ? " " : "", v->usage);
	}
	return 0;
}

static int builtin_ping(void *ctx, int argc, char **argv,
			struct control_reply *reply)
{
	struct control *ctl = ctx;
	if (argc != 0)
		return control_reply_error(reply, "usage: ping");
	control_reply_ok(reply, "pong pid %ld", ctl->pid);
	return 0;
}

void control_set_pid(struct control *ctl, long pid)
{
	ctl->pid = pid;
}

/* ---- replies --------------------------------------------------------- */

int control_reply_line(struct control_reply *reply, const char *fmt, ...)
{
	struct buf text, line;
	va_list ap;
	if (reply->failed)
		return -1;
	buf_init(&text, 0);
	buf_init(&line, 0);
	va_start(ap, fmt);
	buf_vprintf(&text, fmt, ap);
	va_end(ap);
	buf_append_str(&line, "* ");
	control_text_append(&line, text.data != NULL ? text.data : "",
			    text.len < CONTROL_MAX_LINE - 2 ? text.len
							    : CONTROL_MAX_LINE - 2);
	buf_append_char(&line, '\n');
	int r = net_conn_write(reply->conn, line.data, line.len);
	if (r < 0)
		reply->failed = true;
	buf_free(&text);
	buf_free(&line);
	return r;
}

void control_reply_ok(struct control_reply *reply, const char *fmt, ...)
{
	va_list ap;
	buf_reset(&reply->ok_text);
	va_start(ap, fmt);
	buf_vprintf(&reply->ok_text, fmt, ap);
	va_end(ap);
}

int control_reply_error(struct control_reply *reply, const char *fmt, ...)
{
	va_list ap;
	buf_reset(&reply->err_text);
	va_start(ap, fmt);
	buf_vprintf(&reply->err_text, fmt, ap);
	va_end(ap);
	return -1;
}

unsigned control_reply_peer_uid(const struct control_reply *reply)
{
	return reply->uid;
}

/* "ok [TEXT]" or "err TEXT": the last line of every answer. */
static void write_final(struct net_conn *conn, bool ok, const struct buf *text)
{
	struct buf line;
	buf_init(&line, 0);
	size_t len = text->len < CONTROL_MAX_LINE - 4 ? text->len
						      : CONTROL_MAX_LINE - 4;
	if (ok) {
		buf_append_str(&line, "ok");
		if (len > 0)
			buf_append_char(&line, ' ');
	} else {
		buf_append_str(&line, "err ");
		if (len == 0)
			buf_append_str(&line, "failed");
	}
	control_text_append(&line, text->data != NULL ? text->data : "", len);
	buf_append_char(&line, '\n');
	net_conn_write(conn, line.data, line.len);
	buf_free(&line);
}

static void write_error(struct net_conn *conn, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void write_error(struct net_conn *conn, const char *fmt, ...)
{
	struct buf text;
	va_list ap;
	buf_init(&text, 0);
	va_start(ap, fmt);
	buf_vprintf(&text, fmt, ap);
	va_end(ap);
	write_final(conn, false, &text);
	buf_free(&text);
}

/* ---- sessions -------------------------------------------------------- */

static void run_task(void *session, struct net_conn *conn, void *arg)
{
	struct control_session *s = session;
	struct control_task *t = arg;
	struct control_reply reply = {conn, s->uid, {0}, {0}, false};
	buf_init(&reply.ok_text, 0);
	buf_init(&reply.err_text, 0);

	int r = t->verb->fn(t->verb->ctx, t->argc, t->argv, &reply);
	write_final(conn, r == 0, r == 0 ? &reply.ok_text : &reply.err_text);
	buf_free(&reply.ok_text);
	buf_free(&reply.err_text);
	for (int i = 0; i < t->argc; i++)
		free(t->argv[i]);
	free(t->argv);
	free(t);
}

/* Parses one request and starts its verb on a worker. Returns true when
 * a task was started (the net layer reads nothing until it is done). */
static bool handle_line(struct control_session *s, const char *line,
			size_t len)
{
	struct control_request req;
	const char *error;
	if (control_request_parse(line, len, &req, &error) < 0) {
		write_error(s->conn, "%s", error);
		if (++s->errors >= CONTROL_MAX_ERRORS)
			net_conn_close(s->conn);
		return false;
	}
	s->errors = 0;
	const struct control_verb *v = find_verb(s->ctl, &req);
	if (v == NULL) {
		struct buf name;
		buf_init(&name, 0);
		control_text_append(&name, req.words[0].ptr, req.words[0].len);
		write_error(s->conn, "unknown command '%s' (see help)", name.data);
		buf_free(&name);
		return false;
	}
	struct control_task *t = xcalloc(1, sizeof(*t));
	t->verb = v;
	t->argc = (int)(req.count - v->words.count);
	t->argv = xcalloc((size_t)t->argc + 1, sizeof(char *));
	for (int i = 0; i < t->argc; i++) {
		const struct slice *w = &req.words[v->words.count + (size_t)i];
		t->argv[i] = xstrndup(w->ptr, w->len);
	}
	log_info("control", net_conn_id(s->conn), "uid %u: %.*s", s->uid,
		 (int)len, line);
	if (net_conn_run(s->conn, run_task, t) < 0) {
		for (int i = 0; i < t->argc; i++)
			free(t->argv[i]);
		free(t->argv);
		free(t);
		return false;
	}
	return true;
}

static void control_input(void *session, struct net_conn *conn)
{
	struct control_session *s = session;
	struct evbuffer *in = net_conn_input(conn);
	for (;;) {
		size_t have = evbuffer_get_length(in);
		if (have == 0)
			return;
		size_t look = have < CONTROL_MAX_LINE + 1 ? have : CONTROL_MAX_LINE + 1;
		const char *data = (const char *)evbuffer_pullup(in, (ssize_t)look);
		size_t line_len, used;
		int r = control_line_next(data, look, CONTROL_MAX_LINE,
					  &line_len, &used);
		if (r == 0)
			return;
		if (r < 0) {
			write_error(conn, "request too long (at most %d bytes)",
				    CONTROL_MAX_LINE);
			evbuffer_drain(in, have);
			net_conn_close(conn);
			return;
		}
		char line[CONTROL_MAX_LINE + 1];
		memcpy(line, data, line_len);
		line[line_len] = '\0';
		evbuffer_drain(in, used);
		if (handle_line(s, line, line_len))
			return;
	}
}

static void *control_accept(struct net_conn *conn, void *proto_ctx)
{
	unsigned uid;
	int pid;
	if (net_conn_peer_cred(conn, &uid, &pid) < 0) {
		log_warn("control", net_conn_id(conn), "no peer credentials: "
			 "refused");
		return NULL;
	}
	if (uid != 0 && uid != (unsigned)geteuid()) {
		log_warn("control", net_conn_id(conn), "uid %u (pid %d) is "
			 "neither root nor loftd's user: refused", uid, pid);
		static const char refused[] = "err permission denied\n";
		net_conn_write(conn, refused, sizeof(refused) - 1);
		net_conn_close(conn);
		return NULL;
	}
	struct control_session *s = xcalloc(1, sizeof(*s));
	s->ctl = proto_ctx;
	s->conn = conn;
	s->uid = uid;
	net_conn_set_timeout(conn, CONTROL_TIMEOUT_S);
	net_conn_write(conn, CONTROL_GREETING "\n", sizeof(CONTROL_GREETING));
	return s;
}

static void control_closed(void *session, struct net_conn *conn)
{
	free(session);
}

static bool control_timeout(void *session, struct net_conn *conn)
{
	return true;
}

const struct net_proto control_proto = {
	.name = "control",
	.accept = control_accept,
	.input = control_input,
	.closed = control_closed,
	.timeout = control_timeout,
};

/* ---- listening ------------------------------------------------------- */

/* Whether something accepts connections on path: another loftd serving
 * the same instance, whose socket must not be taken over. */
static bool socket_answers(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sun.sun_path))
		return false;
	strcpy(sun.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	bool answers = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	close(fd);
	return answers;
}

int control_listen(struct control *ctl, struct net *net, const char *path,
		   const char **error_r)
{
	static _Thread_local char msg[512];
	if (socket_answers(path)) {
		snprintf(msg, sizeof(msg), "control socket %s: another loftd "
			 "is running on this instance", path);
		*error_r = msg;
		return -1;
	}
	char *addr = xasprintf("unix:%s", path);
	int r = net_listen(net, addr, false, &control_proto, ctl, error_r);
	free(addr);
	if (r < 0)
		return -1;
	/* Root and loftd's user only (SO_PEERCRED checks it again). */
	if (chmod(path, 0600) < 0) {
		snprintf(msg, sizeof(msg), "control socket %s: chmod: %s",
			 path, strerror(errno));
		*error_r = msg;
		return -1;
	}
	return 0;
}

char *control_socket_path(const struct config *cfg, char **error_r)
{
	struct sockaddr_un sun;
	const char *set = config_get(cfg, "", "control_socket");
	char *path;
	if (set != NULL) {
		path = xstrdup(set);
	} else {
		const char *dir = config_get(cfg, "", "data_dir");
		path = xasprintf("%s/control.sock",
				 dir != NULL ? dir : "/var/lib/loft");
	}
	if (path[0] != '/') {
		*error_r = xasprintf("control socket %s: not an absolute path",
				     path);
		free(path);
		return NULL;
	}
	if (strlen(path) >= sizeof(sun.sun_path)) {
		*error_r = xasprintf("control socket %s: longer than %zu bytes;"
				     " set control_socket to a shorter path",
				     path, sizeof(sun.sun_path) - 1);
		free(path);
		return NULL;
	}
	return path;
}
