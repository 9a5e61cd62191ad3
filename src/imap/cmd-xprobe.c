/*
 * XPROBE: a command that exists only in test builds (CMake option
 * LOFT_TEST_COMMANDS, on in `make asan`; never in a release build). It
 * plays an attacker who took over the mail process, to show what the
 * confinement (src/daemon/daemon-sandbox.c) leaves it:
 *
 *   tag XPROBE OPEN path      open(2) for reading
 *   tag XPROBE WRITE path     open(2) for writing (created if missing)
 *   tag XPROBE EXEC path      fork, then execve(2) in the child
 *   tag XPROBE CONNECT a.b.c.d:port   a TCP connect(2) of its own
 *
 *   * XPROBE OPEN "path" OK | EACCES | EPERM | ENOENT | ...
 *   tag OK XPROBE completed
 *
 * The answer is the errno name (or OK), so a test sees which layer said
 * no: Landlock refuses files with EACCES, seccomp refuses execve with
 * EPERM, Landlock refuses a TCP connect with EACCES. Allowed after login only, like any command that touches files.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "imap-commands.h"
#include "log.h"

static const char *probe_open(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC, 0600);
	if (fd < 0)
		return strerrorname_np(errno);
	close(fd);
	return "OK";
}

static const char *probe_connect(const char *where)
{
	const char *colon = strrchr(where, ':');
	struct sockaddr_in sin = {.sin_family = AF_INET};
	char host[64];
	if (colon == NULL || (size_t)(colon - where) >= sizeof(host))
		return "EINVAL";
	memcpy(host, where, (size_t)(colon - where));
	host[colon - where] = '\0';
	sin.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
		return "EINVAL";
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return strerrorname_np(errno);
	int rc = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
	int e = errno;
	close(fd);
	return rc == 0 ? "OK" : strerrorname_np(e);
}

static const char *probe_exec(const char *path)
{
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return strerrorname_np(errno);
	pid_t pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return strerrorname_np(errno);
	}
	if (pid == 0) {
		char *const argv[] = {(char *)path, NULL};
		char *const envp[] = {NULL};
		execve(path, argv, envp);
		int e = errno;
		ssize_t w = write(pipefd[1], &e, sizeof(e));
		(void)w;
		_exit(127);
	}
	close(pipefd[1]);
	int e = 0;
	ssize_t n = read(pipefd[0], &e, sizeof(e));
	close(pipefd[0]);
	waitpid(pid, NULL, 0);
	/* The pipe closed on exec without a word: the program ran. */
	return n == (ssize_t)sizeof(e) ? strerrorname_np(e) : "EXECUTED";
}

void cmd_xprobe(struct imap_cmd *cmd)
{
	const struct imap_arg *a = cmd->args;
	const char *op = imap_arg_is_atom(&a[0]) ? imap_arg_str(&a[0]) : NULL;
	const char *path = imap_arg_is_string(&a[1]) ? imap_arg_str(&a[1]) : NULL;
	if (op == NULL || path == NULL || a[2].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "XPROBE OPEN|WRITE|EXEC|CONNECT path");
		return;
	}
	const char *res;
	if (strcasecmp(op, "OPEN") == 0)
		res = probe_open(path, O_RDONLY);
	else if (strcasecmp(op, "WRITE") == 0)
		res = probe_open(path, O_WRONLY | O_CREAT);
	else if (strcasecmp(op, "EXEC") == 0)
		res = probe_exec(path);
	else if (strcasecmp(op, "CONNECT") == 0)
		res = probe_connect(path);
	else {
		imap_cmd_bad(cmd, "XPROBE OPEN|WRITE|EXEC|CONNECT path");
		return;
	}
	log_warn("imap", cmd->client->sid, "XPROBE %s %s: %s", op, path,
		 res ? res : "?");
	imap_client_untagged(cmd->client, "XPROBE %s \"%s\" %s", op, path,
			     res ? res : "UNKNOWN");
	imap_cmd_ok(cmd, "XPROBE completed");
}
