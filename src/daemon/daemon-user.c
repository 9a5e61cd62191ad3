/*
 * The service user (`user = NAME`), data_dir and its lock.
 *
 * Started as root with `user`, loftd runs every child as NAME and keeps
 * data_dir NAME's: a missing data_dir is created owned by NAME, and one
 * owned by someone else is refused (files root made there would lock
 * NAME out). The parent writes its pid file with NAME's effective uid, so
 * it needs no DAC_OVERRIDE to write in a directory that is NAME's.
 * Without `user` every process keeps the uid it was started with.
 *
 * data_dir/loftd.pid holds the parent's pid under an flock(2) lock that
 * the children inherit: a second loftd on the same data_dir is refused,
 * naming the first, until every process of the first is gone. When the
 * named parent is already dead (killed) its children are on their way
 * out (PR_SET_PDEATHSIG): the new loftd waits a moment for them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "daemon.h"
#include "log.h"

#define LOCK_FILE "loftd.pid"
/* How long a new loftd waits for the children of a killed one. */
#define LOCK_WAIT_MS 5000

int daemon_user_resolve(const char *name, struct daemon_user *u,
			char **error_r)
{
	memset(u, 0, sizeof(*u));
	if (name == NULL)
		return 0;
	if (strlen(name) >= sizeof(u->name)) {
		*error_r = xasprintf("user '%s': name too long", name);
		return -1;
	}
	errno = 0;
	struct passwd *pw = getpwnam(name);
	if (pw == NULL) {
		*error_r = errno != 0
			? xasprintf("user '%s': cannot look it up: %s", name,
				    strerror(errno))
			: xasprintf("user '%s': no such user (adduser --system "
				    "%s)", name, name);
		return -1;
	}
	if (pw->pw_uid == 0) {
		*error_r = xasprintf("user '%s' is root: name an unprivileged "
				     "user", name);
		return -1;
	}
	u->set = true;
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	snprintf(u->name, sizeof(u->name), "%s", name);
	return 0;
}

uid_t daemon_user_uid(const struct daemon_user *u)
{
	return u->set ? u->uid : geteuid();
}

int daemon_user_become(const struct daemon_user *u, char **error_r)
{
	if (!u->set || (getuid() == u->uid && geteuid() == u->uid))
		return 0;
	if (setgroups(1, &u->gid) < 0 ||
	    setresgid(u->gid, u->gid, u->gid) < 0 ||
	    setresuid(u->uid, u->uid, u->uid) < 0) {
		*error_r = xasprintf("cannot become user %s: %s", u->name,
				     strerror(errno));
		return -1;
	}
	/* Gone for good: root must not come back. */
	if (u->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		*error_r = xasprintf("could regain root after becoming %s",
				     u->name);
		return -1;
	}
	return 0;
}

/* Runs the parent's file work in data_dir as the user (effective ids
 * only), so what it creates is the user's. */
struct as_user {
	bool switched;
	uid_t euid;
	gid_t egid;
};

static void as_user_begin(const struct daemon_user *u, struct as_user *s)
{
	s->switched = false;
	if (!u->set || geteuid() != 0)
		return;
	s->euid = geteuid();
	s->egid = getegid();
	if (setegid(u->gid) == 0 && seteuid(u->uid) == 0)
		s->switched = true;
	else
		(void)setegid(s->egid);
}

static void as_user_end(struct as_user *s)
{
	if (!s->switched)
		return;
	if (seteuid(s->euid) < 0 || setegid(s->egid) < 0)
		abort();     /* the parent would run with the wrong ids */
}

static const char *owner_name(uid_t uid, char *buf, size_t size)
{
	struct passwd *pw = getpwuid(uid);
	if (pw != NULL)
		snprintf(buf, size, "%s", pw->pw_name);
	else
		snprintf(buf, size, "uid %u", (unsigned)uid);
	return buf;
}

/* The first entry of data_dir (itself, then its top-level files) that is
 * not the user's, as a message. */
static char *foreign_entry(const char *dir, uid_t uid)
{
	char who[64], want[64];
	struct stat st;
	if (stat(dir, &st) < 0)
		return NULL;
	if (st.st_uid != uid)
		return xasprintf("data_dir %s is owned by %s, not %s (chown -R "
				 "%s %s)", dir, owner_name(st.st_uid, who,
							   sizeof(who)),
				 owner_name(uid, want, sizeof(want)),
				 owner_name(uid, want, sizeof(want)), dir);
	if ((st.st_mode & S_IRWXU) != S_IRWXU)
		return xasprintf("data_dir %s is not readable and writable by "
				 "its owner (chmod u+rwx %s)", dir, dir);
	DIR *d = opendir(dir);
	if (d == NULL)
		return NULL;
	char *msg = NULL;
	struct dirent *e;
	while (msg == NULL && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_uid != uid)
			msg = xasprintf("%s/%s is owned by %s, not %s (chown -R "
					"%s %s)", dir, e->d_name,
					owner_name(st.st_uid, who, sizeof(who)),
					owner_name(uid, want, sizeof(want)),
					owner_name(uid, want, sizeof(want)), dir);
	}
	closedir(d);
	return msg;
}

int daemon_data_dir_check(const char *dir, const struct daemon_user *u,
			  char **error_r)
{
	struct stat st;
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			*error_r = xasprintf("data_dir %s is not a directory", dir);
			return -1;
		}
		char *msg = foreign_entry(dir, daemon_user_uid(u));
		if (msg != NULL) {
			*error_r = msg;
			return -1;
		}
		return 0;
	}
	/* Missing: the nearest existing ancestor must let us create it. */
	char *p = xstrdup(dir);
	char *slash;
	while ((slash = strrchr(p, '/')) != NULL && stat(p, &st) != 0) {
		if (slash == p) {
			p[1] = '\0';
			break;
		}
		*slash = '\0';
	}
	int rc = 0;
	if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode) ||
	    access(p, W_OK | X_OK) != 0) {
		*error_r = xasprintf("data_dir %s cannot be created (%s is not "
				     "a writable directory)", dir, p);
		rc = -1;
	}
	free(p);
	return rc;
}

int daemon_mkdir_p(const char *dir, mode_t mode, char **error_r)
{
	char *p = xstrdup(dir);
	int rc = 0;
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char save = *s;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST) {
			*error_r = xasprintf("cannot create %s: %s", p,
					     strerror(errno));
			rc = -1;
			break;
		}
		*s = save;
		if (save == '\0')
			break;
	}
	free(p);
	return rc;
}

int daemon_data_dir_prepare(const char *dir, const struct daemon_user *u,
			    char **error_r)
{
	struct stat st;
	if (stat(dir, &st) != 0) {
		/* The parents as the parent process (root) may, the data_dir
		 * itself the user's. */
		char *parent = xstrdup(dir);
		char *slash = strrchr(parent, '/');
		if (slash != NULL && slash != parent) {
			*slash = '\0';
			if (daemon_mkdir_p(parent, 0755, error_r) < 0) {
				free(parent);
				return -1;
			}
		}
		free(parent);
		if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
			*error_r = xasprintf("cannot create data_dir %s: %s", dir,
					     strerror(errno));
			return -1;
		}
		if (u->set && geteuid() == 0 && chown(dir, u->uid, u->gid) < 0) {
			*error_r = xasprintf("cannot give data_dir %s to %s: %s",
					     dir, u->name, strerror(errno));
			return -1;
		}
		log_info("loftd", NULL, "created data_dir %s", dir);
	}
	/* The trees the mail process writes: they must exist before it is
	 * confined, as it may then create nothing at data_dir's top. */
	static const struct {
		const char *name;
		mode_t mode;
	} subdirs[] = {
		{"mail", 0750}, {"queue", 0750}, {"throttle", 0700},
		{"dkim", 0700},   /* private keys: read, never written, there */
		{NULL, 0},
	};
	struct as_user s;
	as_user_begin(u, &s);
	int rc = 0;
	for (int i = 0; rc == 0 && subdirs[i].name != NULL; i++) {
		char *sub = xasprintf("%s/%s", dir, subdirs[i].name);
		if (mkdir(sub, subdirs[i].mode) < 0 && errno != EEXIST) {
			*error_r = xasprintf("cannot create %s: %s", sub,
					     strerror(errno));
			rc = -1;
		}
		free(sub);
	}
	as_user_end(&s);
	return rc;
}

static bool pid_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static pid_t read_pid(int fd)
{
	char buf[32] = "";
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return (pid_t)strtol(buf, NULL, 10);
}

int daemon_lock(const char *dir, const struct daemon_user *u, int *fd_r,
		char **error_r)
{
	char *path = xasprintf("%s/" LOCK_FILE, dir);
	struct as_user s;
	as_user_begin(u, &s);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	int open_errno = errno;
	as_user_end(&s);
	if (fd < 0) {
		*error_r = xasprintf("cannot open %s: %s", path,
				     strerror(open_errno));
		free(path);
		return -1;
	}
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		pid_t other = read_pid(fd);
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		long waited = (t.tv_sec - t0.tv_sec) * 1000 +
			      (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (errno != EWOULDBLOCK || pid_alive(other) ||
		    waited >= LOCK_WAIT_MS) {
			*error_r = other > 0
				? xasprintf("data_dir %s is in use by another "
					    "loftd (pid %d)", dir, (int)other)
				: xasprintf("data_dir %s is in use by another "
					    "loftd (%s is locked)", dir, path);
			close(fd);
			free(path);
			return -1;
		}
		struct timespec nap = {0, 50 * 1000000L};
		nanosleep(&nap, NULL);
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warn("loftd", NULL, "cannot write %s: %s", path,
			 strerror(errno));
	free(path);
	*fd_r = fd;
	return 0;
}
