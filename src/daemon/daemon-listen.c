/*
 * The listener table: every address loftd listens on, whichever
 * front-end serves it. `loftd --check` and the start refuse the same
 * things here (listeners that overlap, a socket directory that cannot be
 * made); the parent binds them all before it forks, so ports below 1024
 * and root-only directories work, and hands the descriptors to the mail
 * process. The parent also removes the Unix socket files at the end,
 * only if they are still the ones it made.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "net.h"

void daemon_listener_add(struct daemon *d, const char *addr,
			 const char *section, int line, bool implicit_tls,
			 unsigned unix_mode, struct daemon_frontend *fe)
{
	d->listeners = xrealloc(d->listeners, (d->listener_count + 1) *
				sizeof(*d->listeners));
	struct daemon_listener *l = &d->listeners[d->listener_count++];
	memset(l, 0, sizeof(*l));
	l->addr = xstrdup(addr);
	l->section = section;
	l->line = line;
	l->implicit_tls = implicit_tls;
	l->unix_mode = unix_mode;
	l->fe = fe;
	l->fd = -1;
}

static const char *unix_path(const struct daemon_listener *l)
{
	return strncmp(l->addr, "unix:", 5) == 0 ? l->addr + 5 : NULL;
}

/* The directory of a Unix socket path (caller frees), or NULL for "/x". */
static char *socket_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL || slash == path)
		return NULL;
	return xstrndup(path, (size_t)(slash - path));
}

/* Whether dir exists or can be made: 0, or -1 with why_r (caller frees). */
static int socket_dir_usable(const char *dir, char **why_r)
{
	struct stat st;
	if (stat(dir, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		*why_r = xasprintf("%s is not a directory", dir);
		return -1;
	}
	/* The nearest ancestor that exists decides. */
	char *p = xstrdup(dir);
	int rc = 0;
	while (stat(p, &st) != 0) {
		char *slash = strrchr(p, '/');
		if (slash == NULL || slash == p) {
			strcpy(p, "/");
			(void)stat(p, &st);
			break;
		}
		*slash = '\0';
	}
	if (!S_ISDIR(st.st_mode)) {
		*why_r = xasprintf("directory %s cannot be created: %s is not "
				   "a directory", dir, p);
		rc = -1;
	} else if (access(p, W_OK | X_OK) != 0) {
		*why_r = xasprintf("directory %s cannot be created: %s is not "
				   "writable", dir, p);
		rc = -1;
	}
	free(p);
	return rc;
}

/* "*:143" or "[::]:143" beside an IPv4 address of the same port: on
 * Linux the first already takes IPv4. */
static const char *overlap_hint(const char *a, const char *b)
{
	bool dual_a = strncmp(a, "*:", 2) == 0 || strncmp(a, "[::]:", 5) == 0;
	bool dual_b = strncmp(b, "*:", 2) == 0 || strncmp(b, "[::]:", 5) == 0;
	if (dual_a != dual_b)
		return " (*:PORT and [::]:PORT take IPv4 as well as IPv6: "
		       "list only that one)";
	return "";
}

int daemon_listeners_check(const struct daemon *d, struct buf *errors)
{
	int errs = 0;
	const char *path = d->cfg->path;
	for (size_t i = 0; i < d->listener_count; i++) {
		const struct daemon_listener *a = &d->listeners[i];
		for (size_t j = 0; j < i; j++) {
			const struct daemon_listener *b = &d->listeners[j];
			if (!net_addr_overlap(a->addr, b->addr))
				continue;
			buf_printf(errors, "%s:%d: listen: '%s' overlaps '%s' "
				   "([%s], line %d)%s\n", path, a->line,
				   a->addr, b->addr, b->section, b->line,
				   overlap_hint(a->addr, b->addr));
			errs++;
			break;
		}
		const char *up = unix_path(a);
		char *dir = up != NULL ? socket_dir(up) : NULL;
		char *why = NULL;
		if (dir != NULL && socket_dir_usable(dir, &why) < 0) {
			buf_printf(errors, "%s:%d: listen: '%s': %s\n", path,
				   a->line, a->addr, why);
			free(why);
			errs++;
		}
		free(dir);
	}
	return errs == 0 ? 0 : -1;
}

/* Whether a server answers on the Unix socket path (another loftd on
 * this socket, or anything else): its file must not be replaced. */
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

int daemon_listeners_bind(struct daemon *d)
{
	for (size_t i = 0; i < d->listener_count; i++) {
		struct daemon_listener *l = &d->listeners[i];
		const char *up = unix_path(l);
		char *dir = up != NULL ? socket_dir(up) : NULL;
		char *err = NULL;
		if (dir != NULL && daemon_mkdir_p(dir, 0755, &err) < 0) {
			fprintf(stderr, "%s:%d: listen: '%s': %s\n",
				d->cfg->path, l->line, l->addr, err);
			free(err);
			free(dir);
			return -1;
		}
		free(dir);
		if (up != NULL && socket_answers(up)) {
			fprintf(stderr, "%s:%d: listen: '%s': another server "
				"answers on this socket\n", d->cfg->path, l->line,
				l->addr);
			return -1;
		}
		const char *msg;
		if (net_listen_bind(l->addr, l->unix_mode, &l->fd, &msg) < 0) {
			fprintf(stderr, "%s:%d: %s\n", d->cfg->path, l->line, msg);
			return -1;
		}
		struct stat st;
		if (up != NULL && lstat(up, &st) == 0) {
			l->dev = st.st_dev;
			l->ino = st.st_ino;
			/* Its own socket files are the service user's, so
			 * loftctl run as that user can reach the control
			 * socket (mode 0600). */
			if (d->user.set && geteuid() == 0 &&
			    lchown(up, d->user.uid, d->user.gid) < 0)
				log_warn("loftd", NULL, "chown %s: %s", up,
					 strerror(errno));
		}
	}
	return 0;
}

void daemon_listeners_close(struct daemon *d)
{
	for (size_t i = 0; i < d->listener_count; i++) {
		if (d->listeners[i].fd >= 0)
			close(d->listeners[i].fd);
		d->listeners[i].fd = -1;
	}
}

void daemon_listeners_unlink(struct daemon *d)
{
	for (size_t i = 0; i < d->listener_count; i++) {
		struct daemon_listener *l = &d->listeners[i];
		const char *up = unix_path(l);
		struct stat st;
		if (up != NULL && l->ino != 0 && lstat(up, &st) == 0 &&
		    st.st_dev == l->dev && st.st_ino == l->ino)
			unlink(up);
	}
}

void daemon_listeners_free(struct daemon *d)
{
	for (size_t i = 0; i < d->listener_count; i++) {
		if (d->listeners[i].fd >= 0)
			close(d->listeners[i].fd);
		free(d->listeners[i].addr);
	}
	free(d->listeners);
	d->listeners = NULL;
	d->listener_count = 0;
}
