/*
 * Confinement of loftd's children, applied by each child to itself before
 * it starts a thread (Landlock binds the calling thread and what it
 * creates afterwards):
 *
 * 1. Only as the fallback, when the kernel has no Landlock: a root of its
 *    own (a private mount namespace whose root is a tmpfs holding exactly
 *    the sandbox's trees, each bind-mounted at its own path, read-only
 *    ones read-only), so every path keeps working. It needs root and a
 *    mount namespace whose "/" is a mount point (not a chroot; not a
 *    service without CAP_SYS_ADMIN). Where it cannot be made, a process
 *    whose files all lie in one tree (auth: data_dir) is chrooted there;
 *    any other ([security] sandbox) runs with its files unconfined
 *    (best-effort, the default: "logged, never fatal") or refuses to
 *    start (required: daemon-check.c says so before anything starts).
 *    Logged either way.
 * 2. The service user (setgroups, setgid, setuid), then no_new_privs.
 * 3. Landlock: every file-system right is handled; the read-write trees
 *    get the rights a store needs (no execute, no devices, no sockets),
 *    the read-only trees and files read only. Rights the running kernel
 *    does not know are left out (best effort, as the kernel documents).
 *    Where the kernel has scopes (ABI 6), signals to processes outside and
 *    abstract Unix sockets outside are refused too.
 * 4. seccomp (libseccomp): execve, ptrace, mount and the other calls a
 *    mail server never makes fail with EPERM. A sanitizer build keeps
 *    ptrace (LeakSanitizer stops the world with it).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "daemon.h"
#include "log.h"

/* Newer than Debian 12's headers. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#define LOFT_LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0)
#define LOFT_LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#define LOFT_LANDLOCK_RULE_NET_PORT 2
struct loft_net_port_attr {
	uint64_t allowed_access;
	uint64_t port;
};
#define LOFT_LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LOFT_LANDLOCK_SCOPE_SIGNAL (1ULL << 1)

/* struct landlock_ruleset_attr as of ABI 6; the size passed tells the
 * kernel which fields it gets. */
struct loft_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

#define FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define FS_WRITE (LANDLOCK_ACCESS_FS_WRITE_FILE |                        \
		  LANDLOCK_ACCESS_FS_REMOVE_DIR |                        \
		  LANDLOCK_ACCESS_FS_REMOVE_FILE |                       \
		  LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | \
		  LANDLOCK_ACCESS_FS_REFER | LANDLOCK_ACCESS_FS_TRUNCATE)
#define FS_FILE_ONLY (LANDLOCK_ACCESS_FS_EXECUTE |                       \
		      LANDLOCK_ACCESS_FS_WRITE_FILE |                    \
		      LANDLOCK_ACCESS_FS_READ_FILE |                     \
		      LANDLOCK_ACCESS_FS_TRUNCATE |                      \
		      LANDLOCK_ACCESS_FS_IOCTL_DEV)

/* A full list is a bug in loftd (a path its process needs would be
 * refused): abort, so a test finds it, rather than drop one. */
void daemon_sandbox_rw(struct daemon_sandbox *sb, const char *path)
{
	if (path == NULL)
		return;
	if (sb->rw_count == sizeof(sb->rw) / sizeof(*sb->rw))
		abort();
	sb->rw[sb->rw_count++] = path;
}

void daemon_sandbox_ro(struct daemon_sandbox *sb, const char *path)
{
	if (path == NULL)
		return;
	if (sb->ro_count == sizeof(sb->ro) / sizeof(*sb->ro))
		abort();
	sb->ro[sb->ro_count++] = path;
}

static int landlock_abi(void)
{
#ifdef LOFT_TEST_COMMANDS
	/* test builds: the path of a kernel without Landlock */
	const char *no = getenv("LOFT_TEST_NO_LANDLOCK");
	if (no != NULL && strcmp(no, "1") == 0)
		return 0;
#endif
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0,
			 LANDLOCK_CREATE_RULESET_VERSION);
	return v < 0 ? 0 : (int)v;
}

static uint64_t fs_rights(int abi)
{
	uint64_t all = LANDLOCK_ACCESS_FS_EXECUTE | FS_READ |
		       LANDLOCK_ACCESS_FS_WRITE_FILE |
		       LANDLOCK_ACCESS_FS_REMOVE_DIR |
		       LANDLOCK_ACCESS_FS_REMOVE_FILE |
		       LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
		       LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
		       LANDLOCK_ACCESS_FS_MAKE_FIFO |
		       LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
	if (abi >= 2)
		all |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		all |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		all |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return all;
}

/* Adds a rule for path with rights (cut to what a file takes, if path is
 * one, and to what the ruleset handles). A path that does not exist is
 * skipped: it cannot be opened anyway. */
static int add_rule(int ruleset, const char *path, uint64_t rights,
		    uint64_t handled, char **error_r)
{
	int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		*error_r = xasprintf("landlock: %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
		rights &= FS_FILE_ONLY;
	struct landlock_path_beneath_attr pb = {
		.allowed_access = rights & handled,
		.parent_fd = fd,
	};
	int rc = 0;
	if (pb.allowed_access != 0 &&
	    syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH,
		    &pb, 0) < 0) {
		*error_r = xasprintf("landlock: rule for %s: %s", path,
				     strerror(errno));
		rc = -1;
	}
	close(fd);
	return rc;
}

static bool sanitizer_build(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	return true;
#else
	return false;
#endif
#else
	return false;
#endif
}

/* 0 confined, 1 Landlock missing, -1 error. */
static int landlock_apply(const struct daemon_sandbox *sb, int abi,
			  char **error_r)
{
	struct loft_ruleset_attr attr = {.handled_access_fs = fs_rights(abi)};
	size_t size = sizeof(uint64_t);
	bool net = sb->tcp_confined && abi >= 4;
	if (net) {
		attr.handled_access_net = LOFT_LANDLOCK_ACCESS_NET_BIND_TCP |
					  LOFT_LANDLOCK_ACCESS_NET_CONNECT_TCP;
		size = 2 * sizeof(uint64_t);
	}
	if (abi >= 6) {
		attr.scoped = LOFT_LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET |
			      LOFT_LANDLOCK_SCOPE_SIGNAL;
		size = sizeof(attr);
	}
	int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (ruleset < 0) {
		if (errno == ENOSYS || errno == EOPNOTSUPP)
			return 1;
		*error_r = xasprintf("landlock: %s", strerror(errno));
		return -1;
	}
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < sb->rw_count; i++)
		rc = add_rule(ruleset, sb->rw[i], FS_READ | FS_WRITE,
			      attr.handled_access_fs, error_r);
	for (size_t i = 0; rc == 0 && i < sb->ro_count; i++)
		rc = add_rule(ruleset, sb->ro[i], FS_READ,
			      attr.handled_access_fs, error_r);
	for (size_t i = 0; rc == 0 && net && i < sb->tcp_port_count; i++) {
		struct loft_net_port_attr np = {
			.allowed_access = LOFT_LANDLOCK_ACCESS_NET_CONNECT_TCP,
			.port = sb->tcp_connect_ports[i],
		};
		if (syscall(SYS_landlock_add_rule, ruleset,
			    LOFT_LANDLOCK_RULE_NET_PORT, &np, 0) < 0) {
			*error_r = xasprintf("landlock: rule for TCP port %u: %s",
					     (unsigned)np.port, strerror(errno));
			rc = -1;
		}
	}
	/* Tests move the throttle's clock through a file they replace by
	 * rename (auth-throttle.c): its directory, read-only. */
	const char *clock = getenv("LOFT_TEST_CLOCK");
	if (rc == 0 && clock != NULL && clock[0] == '/') {
		char *dir = xstrdup(clock);
		*strrchr(dir, '/') = '\0';
		rc = add_rule(ruleset, dir[0] ? dir : "/", FS_READ,
			      attr.handled_access_fs, error_r);
		free(dir);
	}
	/* LeakSanitizer reads /proc to stop the world at exit. */
	if (rc == 0 && sanitizer_build())
		rc = add_rule(ruleset, "/proc", FS_READ, attr.handled_access_fs,
			      error_r);
	if (rc == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
		*error_r = xasprintf("landlock: restrict: %s", strerror(errno));
		rc = -1;
	}
	close(ruleset);
	return rc;
}

/* The calls a mail server never makes. Not an allow-list: what glibc,
 * OpenSSL, SQLite and libevent use changes with their versions, and a
 * missing entry would be a crash in production; these never are. */
static const char *const denied_calls[] = {
	"execve", "execveat", "ptrace", "process_vm_readv",
	"process_vm_writev", "mount", "umount2", "pivot_root", "chroot",
	"move_mount", "open_tree", "fsopen", "fsmount", "fsconfig", "fspick",
	"mount_setattr", "unshare", "setns", "kexec_load", "kexec_file_load",
	"init_module", "finit_module", "delete_module", "reboot", "swapon",
	"swapoff", "acct", "bpf", "perf_event_open", "keyctl", "add_key",
	"request_key", "userfaultfd", "settimeofday", "clock_settime",
	"clock_adjtime", "adjtimex", "sethostname", "setdomainname",
	"iopl", "ioperm", "quotactl", "open_by_handle_at",
	"name_to_handle_at", "lookup_dcookie", "vhangup", "uselib", "syslog",
	"personality", "setuid", "setgid", "setreuid", "setregid",
	"setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid",
	"capset", "mknod", "mknodat", "fanotify_init", "pidfd_getfd",
	NULL,
};

static int seccomp_apply(char **error_r)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (ctx == NULL) {
		*error_r = xstrdup("seccomp: cannot create a filter");
		return -1;
	}
	int rc = 0;
	for (size_t i = 0; rc == 0 && denied_calls[i] != NULL; i++) {
		if (sanitizer_build() && strcmp(denied_calls[i], "ptrace") == 0)
			continue;
		int nr = seccomp_syscall_resolve_name(denied_calls[i]);
		if (nr == __NR_SCMP_ERROR)
			continue;     /* not on this architecture */
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
	}
	if (rc == 0)
		rc = seccomp_load(ctx);
	if (rc < 0)
		*error_r = xasprintf("seccomp: %s", strerror(-rc));
	seccomp_release(ctx);
	return rc < 0 ? -1 : 0;
}

/* path's directories made under root (path absolute), and its last
 * component: a directory, or an empty file to mount a file on. */
static int make_under(const char *root, const char *path, bool file)
{
	char *full = xasprintf("%s%s", root, path);
	int rc = 0;
	for (char *p = full + strlen(root) + 1; rc == 0 && *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(full, 0755) < 0 && errno != EEXIST)
			rc = -1;
		*p = '/';
	}
	if (rc == 0 && file) {
		int fd = open(full, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0)
			rc = -1;
		else
			close(fd);
	} else if (rc == 0 && mkdir(full, 0755) < 0 && errno != EEXIST) {
		rc = -1;
	}
	free(full);
	return rc;
}

/* path bind-mounted at root + path (read-only if asked); a path that
 * does not exist is left out, as Landlock's rules leave it out. */
static int bind_into(const char *root, const char *path, bool ro,
		     char **error_r)
{
	struct stat st;
	if (path == NULL || path[0] != '/' || stat(path, &st) < 0)
		return 0;
	char *target = xasprintf("%s%s", root, path);
	int rc = make_under(root, path, !S_ISDIR(st.st_mode));
	if (rc == 0 && mount(path, target, NULL, MS_BIND | MS_REC, NULL) < 0)
		rc = -1;
	if (rc == 0 && ro &&
	    mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY |
		  MS_NOSUID | MS_NODEV, NULL) < 0)
		rc = -1;
	if (rc < 0)
		*error_r = xasprintf("bind %s: %s", path, strerror(errno));
	free(target);
	return rc;
}

#define PRIVATE_ROOT "/run/loft-sandbox"

/* A mount namespace of the process's own whose mounts never reach the
 * host's: unshare, then every mount private. In a chroot "/" is not a
 * mount point and the second step answers EINVAL. */
static int private_ns(char **why_r)
{
#ifdef LOFT_TEST_COMMANDS
	/* test builds: the path of a chroot (LOFT_TEST_NO_MOUNTNS=1) */
	const char *no = getenv("LOFT_TEST_NO_MOUNTNS");
	if (no != NULL && strcmp(no, "1") == 0) {
		*why_r = xstrdup("no mount namespace of its own (\"/\" is not a "
				 "mount point: a chroot?)");
		return -1;
	}
#endif
	if (unshare(CLONE_NEWNS) < 0) {
		*why_r = xasprintf("no mount namespace of its own (unshare: %s)",
				   strerror(errno));
		return -1;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		*why_r = errno == EINVAL
			? xstrdup("no mount namespace of its own (\"/\" is not "
				  "a mount point: a chroot?)")
			: xasprintf("no mount namespace of its own (private "
				    "mounts: %s)", strerror(errno));
		return -1;
	}
	return 0;
}

/* The process's own root: a private mount namespace whose root is a
 * tmpfs holding exactly sb's trees at their own paths. Before the user
 * change (it needs root) and the seccomp filter (which refuses mount,
 * umount2, pivot_root and unshare from then on). */
static int private_root(const struct daemon_sandbox *sb, char **error_r)
{
	if (private_ns(error_r) < 0)
		return -1;
	if ((mkdir(PRIVATE_ROOT, 0700) < 0 && errno != EEXIST) ||
	    mount("tmpfs", PRIVATE_ROOT, "tmpfs", MS_NOSUID | MS_NODEV,
		  "mode=0755,size=1m") < 0) {
		*error_r = xasprintf("private root %s: %s", PRIVATE_ROOT,
				     strerror(errno));
		return -1;
	}
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < sb->rw_count; i++)
		rc = bind_into(PRIVATE_ROOT, sb->rw[i], false, error_r);
	for (size_t i = 0; rc == 0 && i < sb->ro_count; i++)
		rc = bind_into(PRIVATE_ROOT, sb->ro[i], true, error_r);
	if (rc == 0)
		rc = bind_into(PRIVATE_ROOT, "/dev/null", false, error_r);
	if (rc == 0 && getenv("LOFT_TEST_CLOCK") != NULL) {
		char *dir = xstrdup(getenv("LOFT_TEST_CLOCK"));
		char *slash = strrchr(dir, '/');
		if (slash != NULL && slash != dir) {
			*slash = '\0';
			rc = bind_into(PRIVATE_ROOT, dir, true, error_r);
		}
		free(dir);
	}
	/* LeakSanitizer reads /proc to stop the world at exit */
	if (rc == 0 && sanitizer_build())
		rc = bind_into(PRIVATE_ROOT, "/proc", true, error_r);
	if (rc == 0 && (chdir(PRIVATE_ROOT) < 0 ||
			syscall(SYS_pivot_root, ".", ".") < 0 ||
			umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)) {
		*error_r = xasprintf("private root: pivot_root: %s",
				     strerror(errno));
		rc = -1;
	}
	/* nothing new in the root itself */
	if (rc == 0)
		mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
	return rc;
}

/* Whether a child of this loftd can be confined: Landlock, or (root) a
 * mount namespace of its own, tried in a short-lived child so this
 * process's namespace stays as it is. */
bool daemon_sandbox_possible(char **why_r)
{
	if (landlock_abi() > 0)
		return true;
	if (geteuid() != 0) {
		*why_r = xstrdup("no Landlock in this kernel and not root (a "
				 "root of its own needs root)");
		return false;
	}
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		*why_r = xasprintf("no Landlock in this kernel (pipe: %s)",
				   strerror(errno));
		return false;
	}
	pid_t pid = fork();
	if (pid == 0) {
		char *why = NULL;
		close(pfd[0]);
		if (private_ns(&why) < 0 &&
		    write(pfd[1], why, strlen(why)) < 0)
			_exit(2);
		_exit(0);
	}
	close(pfd[1]);
	char msg[512];
	size_t len = 0;
	ssize_t n;
	while (pid > 0 && len < sizeof(msg) - 1 &&
	       (n = read(pfd[0], msg + len, sizeof(msg) - 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		len += (size_t)n;
	}
	msg[len] = '\0';
	close(pfd[0]);
	int status = 0;
	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (pid < 0 || len > 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		*why_r = xasprintf("no Landlock in this kernel and %s",
				   len > 0 ? msg : "no mount namespace of its "
				   "own (the probe failed)");
		return false;
	}
	return true;
}

int daemon_sandbox_enter(const struct daemon_sandbox *sb,
			 const struct daemon_user *u, bool *chrooted_r,
			 char **error_r)
{
	*chrooted_r = false;
	int abi = landlock_abi();
	char *why = NULL;
	bool own_root = false;
	if (abi == 0 && geteuid() != 0)
		why = xstrdup("not root");
	else if (abi == 0 && private_root(sb, &why) == 0)
		own_root = true;
	if (own_root) {
		log_warn("loftd", NULL, "%s process: no Landlock in this "
			 "kernel: confined to a root of its own holding only "
			 "its %zu trees instead", sb->name,
			 sb->rw_count + sb->ro_count);
	} else if (abi == 0 && sb->chroot_dir != NULL && geteuid() == 0) {
		if (chroot(sb->chroot_dir) < 0 || chdir("/") < 0) {
			*error_r = xasprintf("chroot %s: %s", sb->chroot_dir,
					     strerror(errno));
			free(why);
			return -1;
		}
		*chrooted_r = true;
		log_warn("loftd", NULL, "%s process: no Landlock in this "
			 "kernel and %s: confined by chroot to %s instead",
			 sb->name, why, sb->chroot_dir);
	} else if (abi == 0 && !sb->best_effort) {
		*error_r = xasprintf("no Landlock in this kernel and %s: its "
				     "files cannot be confined ([security] "
				     "sandbox = best-effort runs it anyway)",
				     why);
		free(why);
		return -1;
	} else if (abi == 0) {
		log_warn("loftd", NULL, "%s process: no Landlock in this kernel "
			 "and %s: its files are not confined ([security] "
			 "sandbox = best-effort)", sb->name, why);
	}
	free(why);
	if (daemon_user_become(u, error_r) < 0)
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		*error_r = xasprintf("no_new_privs: %s", strerror(errno));
		return -1;
	}
	if (abi > 0) {
		int rc = landlock_apply(sb, abi, error_r);
		if (rc < 0)
			return -1;
		log_debug("loftd", NULL, "%s process: Landlock ABI %d", sb->name,
			  abi);
		if (sb->tcp_confined && abi >= 4)
			log_debug("loftd", NULL, "%s process: TCP connect only to "
				  "%zu port(s) (%u%s)", sb->name,
				  sb->tcp_port_count,
				  sb->tcp_port_count ? sb->tcp_connect_ports[0] : 0,
				  sb->tcp_port_count > 1 ? ", ..." : "");
		if (sb->tcp_confined && abi < 4)
			log_warn("loftd", NULL, "%s process: Landlock ABI %d has no "
				 "network rules (4): it could still open TCP "
				 "connections", sb->name, abi);
	}
	return seccomp_apply(error_r);
}
