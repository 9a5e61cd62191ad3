/*
 * The control socket's client side, for loftctl: a blocking call with a
 * timeout, which checks the greeting and parses every reply line as
 * strictly as the server parses requests.
 */
#include "control.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct client {
	int fd;
	unsigned timeout_ms;
	char buf[CONTROL_MAX_LINE + 1];
	size_t len;
	char line[CONTROL_MAX_LINE + 1];
};

/* Reads one line into c->line (NUL-terminated, without the LF). 0, or
 * -1 with a static reason. */
static int read_line(struct client *c, const char **why_r)
{
	for (;;) {
		size_t line_len, used;
		int r = control_line_next(c->buf, c->len, CONTROL_MAX_LINE,
					  &line_len, &used);
		if (r < 0) {
			*why_r = "reply line too long";
			return -1;
		}
		if (r > 0) {
			memcpy(c->line, c->buf, line_len);
			c->line[line_len] = '\0';
			memmove(c->buf, c->buf + used, c->len - used);
			c->len -= used;
			return 0;
		}
		struct pollfd p = {c->fd, POLLIN, 0};
		int n = poll(&p, 1, (int)c->timeout_ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*why_r = n == 0 ? "loftd did not answer in time"
					: "poll failed";
			return -1;
		}
		ssize_t got = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			*why_r = "loftd closed the connection";
			return -1;
		}
		c->len += (size_t)got;
	}
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static int connect_to(const char *path, int *fd_r, char **final_r)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sun.sun_path)) {
		*final_r = xasprintf("control socket path too long: %s", path);
		return CONTROL_CALL_FAILED;
	}
	strcpy(sun.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*final_r = xasprintf("socket: %s", strerror(errno));
		return CONTROL_CALL_FAILED;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;
		close(fd);
		if (e == ENOENT || e == ECONNREFUSED) {
			*final_r = xasprintf("loftd is not running (nothing "
					     "listens on %s)", path);
			return CONTROL_CALL_NOT_RUNNING;
		}
		if (e == EACCES || e == EPERM)
			*final_r = xasprintf("%s: %s (run as root or loftd's "
					     "user)", path, strerror(e));
		else
			*final_r = xasprintf("%s: %s", path, strerror(e));
		return CONTROL_CALL_FAILED;
	}
	*fd_r = fd;
	return CONTROL_CALL_OK;
}

/* The request line; -1 if a word is not a valid WORD. */
static int build_request(const char *const *words, size_t count,
			 struct buf *out)
{
	for (size_t i = 0; i < count; i++) {
		if (i > 0)
			buf_append_char(out, ' ');
		buf_append_str(out, words[i]);
	}
	struct control_request req;
	const char *error;
	if (control_request_parse(out->data != NULL ? out->data : "", out->len,
				  &req, &error) < 0 ||
	    req.count != count)
		return -1;
	buf_append_char(out, '\n');
	return 0;
}

static enum control_call_result converse(struct client *c,
					 const char *const *words, size_t count,
					 control_line_fn *fn, void *ctx,
					 char **final_r)
{
	const char *why;
	struct buf req;
	buf_init(&req, 0);
	if (read_line(c, &why) < 0) {
		*final_r = xasprintf("%s", why);
		buf_free(&req);
		return CONTROL_CALL_FAILED;
	}
	if (strcmp(c->line, CONTROL_GREETING) != 0) {
		/* A refused peer gets "err permission denied" at once. */
		enum control_reply_kind kind;
		struct slice text;
		if (control_reply_parse(c->line, strlen(c->line), &kind, &text,
					&why) == 0 && kind == CONTROL_REPLY_ERR)
			*final_r = xstrndup(text.ptr, text.len);
		else
			*final_r = xasprintf("not a loftd control socket "
					     "(greeting '%.60s')", c->line);
		buf_free(&req);
		return CONTROL_CALL_FAILED;
	}
	if (build_request(words, count, &req) < 0) {
		*final_r = xasprintf("invalid request (an argument is empty, "
				     "has spaces or control characters)");
		buf_free(&req);
		return CONTROL_CALL_FAILED;
	}
	int w = write_all(c->fd, req.data, req.len);
	buf_free(&req);
	if (w < 0) {
		*final_r = xasprintf("cannot send the request: %s",
				     strerror(errno));
		return CONTROL_CALL_FAILED;
	}
	for (;;) {
		enum control_reply_kind kind;
		struct slice text;
		if (read_line(c, &why) < 0 ||
		    control_reply_parse(c->line, strlen(c->line), &kind, &text,
					&why) < 0) {
			*final_r = xasprintf("%s", why);
			return CONTROL_CALL_FAILED;
		}
		if (kind == CONTROL_REPLY_DATA) {
			if (fn != NULL)
				fn(ctx, c->line + 2);
			continue;
		}
		*final_r = xstrndup(text.ptr, text.len);
		return kind == CONTROL_REPLY_OK ? CONTROL_CALL_OK
						: CONTROL_CALL_ERR;
	}
}

enum control_call_result control_call(const char *path,
				      const char *const *words, size_t count,
				      unsigned timeout_ms, control_line_fn *fn,
				      void *ctx, char **final_r)
{
	struct client *c = xcalloc(1, sizeof(*c));
	c->timeout_ms = timeout_ms;
	enum control_call_result r = connect_to(path, &c->fd, final_r);
	if (r == CONTROL_CALL_OK) {
		r = converse(c, words, count, fn, ctx, final_r);
		close(c->fd);
	}
	free(c);
	return r;
}
