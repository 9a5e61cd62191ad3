/*
 * For the session fuzz targets (fuzz-imap-session, fuzz-pop3-session):
 * the argument parsers of many commands are static functions of their
 * command files, reachable only through a session, so these targets run
 * the real front-end in-process: accounts.db and the store in a temp dir
 * made once per process (cheap argon2, fsync off, no throttle sleeps),
 * alice@example.test / "fuzzing-secret-1" with a few messages in INBOX, and the
 * net layer listening on a Unix socket in a thread. Each input is one
 * connection: the bytes are written (while the replies are read, so
 * back-pressure never stalls), the write side is shut, and the replies
 * are read until the server closes. A server that has not closed 8 s
 * after the client's EOF is a hang (abort).
 */
#ifndef LOFT_FUZZ_NET_SESSION_H
#define LOFT_FUZZ_NET_SESSION_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "buf.h"
#include "config.h"
#include "log.h"
#include "net.h"
#include "store.h"

typedef void *fuzz_server_create_fn(const struct config *cfg,
				    struct store *store, struct auth *auth,
				    struct buf *errors);

struct fuzz_session_env {
	char dir[64];
	char sock[128];
	struct config *cfg;
	struct auth *auth;
	struct store *store;
	struct net *net;
	pthread_t thread;
	int64_t alice;
};

static struct fuzz_session_env fuzz_env;

static const char fuzz_message[] =
	"From: Bob <bob@example.test>\r\n"
	"To: alice@example.test\r\n"
	"Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n"
	"Date: Sat, 21 Nov 2026 07:05:15 +0000\r\n"
	"Message-ID: <1@example.test>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=b\r\n"
	"\r\n"
	"--b\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"\r\n"
	"Hello\r\n.dot-stuffed line\r\n"
	"--b\r\n"
	"Content-Type: application/octet-stream\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"AAECAwQ=\r\n"
	"--b--\r\n";

static int fuzz_rm_entry(const char *path, const struct stat *st, int flag,
			 struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void fuzz_session_cleanup(void)
{
	/* the net thread is left running: the process is exiting */
	nftw(fuzz_env.dir, fuzz_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void *fuzz_net_thread(void *arg)
{
	net_run(arg);
	return NULL;
}

static void fuzz_die(const char *what, const char *msg)
{
	fprintf(stderr, "fuzz session setup: %s: %s\n", what, msg ? msg : "?");
	abort();
}

/* Drops the mailboxes the inputs created once there are many (the
 * special-use ones and INBOX stay). */
static void fuzz_session_trim_mailboxes(struct store_user *user)
{
	struct store_mailbox_info *list;
	size_t count;
	struct store_error err = {0};
	if (store_mailbox_list(user, &list, &count, &err) < 0)
		fuzz_die("store_mailbox_list", err.msg);
	for (size_t i = count; count > 32 && i > 0; i--) {
		if (list[i - 1].special_use == 0 &&
		    strcmp(list[i - 1].name, "INBOX") != 0)
			(void)store_mailbox_delete(user, list[i - 1].name, &err);
	}
	store_mailbox_list_free(list, count);
}

/* Keeps 3 to 20 messages in alice's INBOX (POP3 DELE/QUIT and IMAP
 * EXPUNGE/MOVE take them away, APPEND adds), so every input starts from
 * about the same mailbox and stays fast. */
static void fuzz_session_refill(void)
{
	static unsigned calls;
	struct store_user *user;
	struct store_error err = {0};
	struct store_mailbox_info info;
	if (store_user_open(fuzz_env.store, fuzz_env.alice, &user, &err) < 0)
		fuzz_die("store_user_open", err.msg);
	if (calls++ % 64 == 0)
		fuzz_session_trim_mailboxes(user);
	if (store_mailbox_status(user, "INBOX", &info, &err) < 0)
		fuzz_die("store_mailbox_status", err.msg);
	if (info.messages > 20) {
		struct store_uid_range all = {1, UINT32_MAX};
		uint32_t *uids;
		size_t n;
		if (store_expunge(user, "INBOX", &all, 1, true, &uids, &n,
				  &err) < 0)
			fuzz_die("store_expunge", err.msg);
		free(uids);
		info.messages = 0;
	}
	for (uint32_t n = info.messages; n < 3; n++) {
		struct store_append_params params = {0};
		uint32_t uid;
		if (store_append(user, "INBOX", fuzz_message,
				 sizeof(fuzz_message) - 1, &params, &uid, NULL,
				 &err) < 0)
			fuzz_die("store_append", err.msg);
	}
	store_mailbox_info_free(&info);
	store_user_unref(&user);
}

/* config_text: the front-end's section(s); "data_dir" is added. */
static void fuzz_session_start(const char *config_text,
			       fuzz_server_create_fn *create,
			       const struct net_proto *proto)
{
	struct fuzz_session_env *e = &fuzz_env;
	struct auth_settings aset;
	struct store_settings sset;
	struct net_settings nset;
	struct store_error serr = {0};
	struct buf errors;
	char *msg = NULL;

	buf_init(&errors, 0);
	log_set_level(LOG_LVL_ERROR);   /* a login per input is not news */
	snprintf(e->dir, sizeof(e->dir), "/tmp/loft-fuzz-session-XXXXXX");
	if (mkdtemp(e->dir) == NULL)
		fuzz_die("mkdtemp", strerror(errno));
	atexit(fuzz_session_cleanup);
	char *text = xasprintf("data_dir = %s\n%s", e->dir, config_text);
	if (config_parse("fuzz.conf", text, strlen(text), &e->cfg, &errors) < 0)
		fuzz_die("config", errors.data);
	free(text);

	auth_settings_defaults(&aset);
	aset.data_dir = e->dir;
	aset.argon2_t_cost = 1;
	aset.argon2_m_cost_kib = 64;
	aset.argon2_parallelism = 1;
	aset.scram_iterations = 16;
	aset.throttle_disabled = true;
	if (auth_open(&aset, &e->auth, &msg) < 0 ||
	    auth_domain_add(e->auth, "example.test", &msg) < 0 ||
	    auth_user_add(e->auth, "alice@example.test", "fuzzing-secret-1", false, NULL,
			  &msg) < 0)
		fuzz_die("auth", msg);
	struct auth_user user;
	if (auth_lookup(e->auth, "alice@example.test", &user) != 1)
		fuzz_die("auth_lookup", NULL);
	e->alice = user.id;

	memset(&sset, 0, sizeof(sset));
	sset.data_dir = e->dir;
	sset.max_message_size = 1024 * 1024;
	sset.fsync = false;
	if (store_open(&sset, &e->store, &serr) < 0)
		fuzz_die("store_open", serr.msg);
	fuzz_session_refill();

	void *server = create(e->cfg, e->store, e->auth, &errors);
	if (server == NULL)
		fuzz_die("server", errors.data);
	memset(&nset, 0, sizeof(nset));
	nset.io_threads = 1;
	nset.worker_threads = 2;
	nset.write_timeout = 5;
	if (net_create(&nset, &e->net, &msg) < 0)
		fuzz_die("net_create", msg);
	snprintf(e->sock, sizeof(e->sock), "%s/sock", e->dir);
	char *addr = xasprintf("unix:%s", e->sock);
	const char *lerr;
	if (net_listen(e->net, addr, false, proto, server, &lerr) < 0)
		fuzz_die("net_listen", lerr);
	free(addr);
	if (pthread_create(&e->thread, NULL, fuzz_net_thread, e->net) != 0)
		fuzz_die("pthread_create", NULL);
	buf_free(&errors);
}

static uint64_t fuzz_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One connection: writes prefix then data, shuts the write side, reads
 * until the server closes. Returns the bytes read (caller frees). */
static char *fuzz_session_run(const char *prefix, const uint8_t *data,
			      size_t size, size_t *out_len_r)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		fuzz_die("socket", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", fuzz_env.sock);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fuzz_die("connect", strerror(errno));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

	struct buf in, out;
	buf_init(&in, 0);
	buf_init(&out, 0);
	buf_append_str(&in, prefix);
	buf_append(&in, data, size);
	size_t sent = 0;
	bool shut = false;
	uint64_t deadline = 0;
	for (;;) {
		if (!shut && sent == in.len) {
			shutdown(fd, SHUT_WR);
			shut = true;
			deadline = fuzz_now_ms() + 8000;
		}
		struct pollfd pfd = {.fd = fd,
				     .events = POLLIN | (shut ? 0 : POLLOUT)};
		int n = poll(&pfd, 1, 1000);
		if (n < 0 && errno != EINTR)
			fuzz_die("poll", strerror(errno));
		if (shut && fuzz_now_ms() > deadline) {
			fprintf(stderr, "fuzz session: no close 8 s after EOF; "
				"last output:\n%.*s\n", (int)(out.len > 2000 ? 2000 : out.len),
				out.data ? out.data + (out.len > 2000 ? out.len - 2000 : 0) : "");
			abort();
		}
		if (n <= 0)
			continue;
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			char chunk[16384];
			ssize_t r = read(fd, chunk, sizeof(chunk));
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
				break;
			if (r > 0 && out.len < 4 * 1024 * 1024)
				buf_append(&out, chunk, (size_t)r);
		}
		if (!shut && (pfd.revents & POLLOUT)) {
			ssize_t w = send(fd, in.data + sent, in.len - sent,
					 MSG_NOSIGNAL);
			if (w > 0) {
				sent += (size_t)w;
			} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				/* the server closed first (BYE, too many
				 * errors): read what it said */
				sent = in.len;
			}
		}
	}
	close(fd);
	buf_free(&in);
	/* FUZZ_SESSION_DUMP=1 ./fuzz-imap-session crash-file: the replies */
	if (getenv("FUZZ_SESSION_DUMP") != NULL && out.len > 0)
		fwrite(out.data, 1, out.len, stderr);
	*out_len_r = out.len;
	return out.data != NULL ? out.data : xstrdup("");
}

#endif
