/*
 * The outbound process, and the mail process's side of it.
 *
 * The mail process parses what the network sends and may not open a TCP
 * connection (Landlock network rules, ABI 4: TCP connect and bind
 * refused but to the resolvers' ports) nor read the DKIM keys. Both are
 * this process's: it connects where the mail process asks (the queue's
 * SMTP client, rspamd, MTA-STS policies, Web Push: lib/outconn.h) and
 * hands the connected socket over, and it signs a message's header with
 * the domain's DKIM keys given the body hash (the keys never leave it).
 * Like the auth process it trusts the mail process no more than a
 * client: every request is parsed strictly, with bounded sizes.
 *
 * It also makes the mail process's HTTP requests (rspamd, MTA-STS
 * policies, Web Push: lib/outhttp.h) with libcurl and returns status,
 * content type and body: Debian 12's libcurl 7.88 cannot be handed a
 * socket connected elsewhere (it connects again, curl issue 10626), so
 * the whole request runs here and the mail process keeps no TCP connect.
 *
 * Transport: the mail process holds a SOCK_SEQPACKET socket to this
 * process. Per request it makes a socketpair and sends one end over that
 * socket (a 4-byte packet "OUT1" with the descriptor), then writes the
 * request on its end and reads the answer (and, for CONNECT, the
 * connected socket): requests run side by side, each on a thread here,
 * and a slow connect holds up no other. The requests and answers, and
 * their parser: lib/outwire.h.
 *
 * A dead outbound process is started again by the parent and its new
 * socket handed to the mail process (as for auth); requests in flight
 * fail (the queue retries later), new ones wait up to 5 s for it.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "buf.h"
#include "config.h"
#include "daemon-chan.h"
#include "daemon.h"
#include "log.h"
#include "net.h"
#include "outconn.h"
#include "outhttp.h"
#include "outwire.h"

#define OUT_MAGIC OUTWIRE_MAGIC
#define OUT_MAX_REQUESTS 256
#define OUT_IO_TIMEOUT_S 30

/* ---- both sides ------------------------------------------------------ */

static int write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_all(int fd, void *data, size_t len)
{
	uint8_t *p = data;
	while (len > 0) {
		ssize_t n = recv(fd, p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void set_io_timeout(int fd, unsigned seconds)
{
	struct timeval tv = {.tv_sec = seconds};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* The 8-byte header and text, with fd riding along (-1: none). */
static int send_answer(int fd, uint32_t status, const void *text, size_t len,
		       int pass_fd)
{
	uint8_t hdr[8];
	outwire_put32(hdr, status);
	outwire_put32(hdr + 4, (uint32_t)len);
	struct iovec iov = {.iov_base = hdr, .iov_len = sizeof(hdr)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	if (pass_fd >= 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(hdr))
		return -1;
	return len > 0 ? write_all(fd, text, len) : 0;
}

/* ---- the outbound process ------------------------------------------- */

struct outbound_proc {
	struct daemon *d;
	int chan;                 /* the parent's */
	int mail_fd;              /* the mail process's requests */
	outbound_sign_fn *sign;
	void *sign_ctx;
	pthread_mutex_t mu;
	unsigned running;         /* request threads */
	struct config **cfgs;
	size_t cfg_count;
};

struct out_request {
	struct outbound_proc *o;
	int fd;
};

static void serve_connect(int fd, const struct outwire_request *r)
{
	char shown[INET6_ADDRSTRLEN];
	unsigned port;
	if (r->addr.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&r->addr;
		inet_ntop(AF_INET, &s4->sin_addr, shown, sizeof(shown));
		port = ntohs(s4->sin_port);
	} else {
		const struct sockaddr_in6 *s6 =
			(const struct sockaddr_in6 *)&r->addr;
		inet_ntop(AF_INET6, &s6->sin6_addr, shown, sizeof(shown));
		port = ntohs(s6->sin6_port);
	}
	char *err = NULL;
	int c = outconn_connect_here((const struct sockaddr *)&r->addr,
				     r->addr_len, r->timeout_ms, &err);
	log_debug("outbound", NULL, "connect %s port %u: %s", shown, port,
		  c >= 0 ? "ok" : err);
	if (c < 0) {
		send_answer(fd, ECONNREFUSED, err, strlen(err), -1);
		free(err);
		return;
	}
	send_answer(fd, 0, NULL, 0, c);
	close(c);
}

static void serve_sign(struct outbound_proc *o, int fd,
		       const struct outwire_request *r)
{
	struct buf out;
	buf_init(&out, 0);
	int rc = o->sign != NULL
		 ? o->sign(o->sign_ctx, r->head, r->head_len, r->hash,
			   r->hash_len, &out)
		 : 0;
	if (rc < 0)
		send_answer(fd, EIO, "a key could not sign (logged)", 29, -1);
	else
		send_answer(fd, 0, out.data, out.len, -1);
	buf_free(&out);
}

/* An HTTP request with libcurl here. Its CA file may only be the one
 * the configuration names ([queue] tls_ca_file): the mail process does
 * not choose what this process reads. */
static void serve_http(struct outbound_proc *o, int fd,
		       const struct outwire_request *r)
{
	const struct outhttp_request *h = &r->http;
	const char *ca = config_get(o->d->cfg, "queue", "tls_ca_file");
	if (h->ca_file != NULL && (ca == NULL || strcmp(ca, h->ca_file) != 0)) {
		send_answer(fd, EPERM, "CA file not in the configuration", 32,
			    -1);
		return;
	}
	struct outhttp_answer a;
	char *err = NULL;
	int rc = outhttp_perform_here(h, &a, &err);
	if (rc == 0)
		log_debug("outbound", NULL, "http %s %s: HTTP %u", h->method,
			  h->url, a.status);
	else
		log_debug("outbound", NULL, "http %s %s: %s", h->method, h->url,
			  err);
	if (rc < 0) {
		send_answer(fd, EIO, err, strlen(err), -1);
		free(err);
		return;
	}
	struct buf out;
	buf_init(&out, 0);
	outwire_http_answer_encode(&a, &out);
	send_answer(fd, 0, out.data, out.len, -1);
	buf_free(&out);
	outhttp_answer_free(&a);
}

static void *request_main(void *ctx)
{
	struct out_request *rq = ctx;
	struct outbound_proc *o = rq->o;
	int fd = rq->fd;
	free(rq);
	set_io_timeout(fd, OUT_IO_TIMEOUT_S);
	uint8_t hdr[8];
	uint32_t type, len;
	if (read_all(fd, hdr, sizeof(hdr)) == 0) {
		uint8_t *p = NULL;
		struct outwire_request r;
		memset(&r, 0, sizeof(r));
		const char *why = "malformed request";
		bool ok = outwire_header_parse(hdr, &type, &len) == 0;
		if (ok) {
			p = xmalloc(len);
			ok = read_all(fd, p, len) == 0 &&
			     outwire_request_parse(type, p, len, &r, &why) == 0;
		}
		if (!ok) {
			log_warn("outbound", NULL, "from the mail process: %s",
				 why);
			send_answer(fd, EINVAL, why, strlen(why), -1);
		} else if (type == OUTWIRE_CONNECT) {
			serve_connect(fd, &r);
		} else if (type == OUTWIRE_SIGN) {
			serve_sign(o, fd, &r);
		} else {
			serve_http(o, fd, &r);
		}
		outwire_request_deinit(&r);
		free(p);
	}
	close(fd);
	pthread_mutex_lock(&o->mu);
	o->running--;
	pthread_mutex_unlock(&o->mu);
	return NULL;
}

/* A thread that leaves SIGTERM to the main thread (its recvmsg must see
 * EINTR). */
static int thread_start(pthread_t *th, const pthread_attr_t *attr,
			void *(*fn)(void *), void *arg)
{
	sigset_t term, old;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	int rc = pthread_create(th, attr, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* A packet from the mail process: "OUT1" and one descriptor. 1 go on,
 * 0 the mail process is gone. */
static int accept_request(struct outbound_proc *o)
{
	uint8_t buf[8];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	union {
		char b[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = u.b, .msg_controllen = sizeof(u.b)};
	ssize_t n = recvmsg(o->mail_fd, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0 && errno == EINTR)
		return 1;
	if (n <= 0)
		return 0;
	int fd = -1, extra = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL;
	     c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int f;
			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (fd < 0) {
				fd = f;
			} else {
				close(f);
				extra++;
			}
		}
	}
	if (n != 4 || memcmp(buf, OUT_MAGIC, 4) != 0 || fd < 0 || extra > 0 ||
	    (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		log_warn("outbound", NULL, "malformed packet from the mail "
			 "process: dropped");
		if (fd >= 0)
			close(fd);
		return 1;
	}
	pthread_mutex_lock(&o->mu);
	bool room = o->running < OUT_MAX_REQUESTS;
	if (room)
		o->running++;
	pthread_mutex_unlock(&o->mu);
	if (!room) {
		send_answer(fd, EAGAIN, "outbound process busy", 21, -1);
		close(fd);
		return 1;
	}
	struct out_request *r = xmalloc(sizeof(*r));
	r->o = o;
	r->fd = fd;
	pthread_t th;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (thread_start(&th, &attr, request_main, r) != 0) {
		close(fd);
		free(r);
		pthread_mutex_lock(&o->mu);
		o->running--;
		pthread_mutex_unlock(&o->mu);
	}
	pthread_attr_destroy(&attr);
	return 1;
}

static volatile sig_atomic_t out_stop;

static void on_term(int sig)
{
	(void)sig;
	out_stop = 1;
}

static void apply_reload(struct outbound_proc *o, int fd)
{
	char *text, *cert, *key;
	size_t text_len, clen, klen;
	int status = 1;
	if (daemon_reload_unpack(fd, &text, &text_len, &cert, &clen, &key,
				 &klen) < 0) {
		daemon_chan_send(o->chan, DAEMON_CHAN_RELOADED, 1, -1);
		return;
	}
	free(cert);
	if (key != NULL)
		OPENSSL_cleanse(key, klen);
	free(key);
	struct buf errors;
	buf_init(&errors, 0);
	struct config *cfg = NULL;
	struct daemon_config dc;
	memset(&dc, 0, sizeof(dc));
	if (config_parse(o->d->config_path, text, text_len, &cfg, &errors) == 0 &&
	    daemon_config_read(cfg, &dc, &errors) == 0) {
		log_set_level(dc.log_level);
		o->cfgs = xrealloc(o->cfgs, (o->cfg_count + 1) * sizeof(*o->cfgs));
		o->cfgs[o->cfg_count++] = cfg;
		cfg = NULL;
		status = 0;
	} else {
		daemon_log_lines(LOG_LVL_ERROR, "outbound process: reload: ",
				 errors.data);
	}
	daemon_config_deinit(&dc);
	config_free(&cfg);
	buf_free(&errors);
	free(text);
	daemon_chan_send(o->chan, DAEMON_CHAN_RELOADED, (uint32_t)status, -1);
}

static void *chan_main(void *ctx)
{
	struct outbound_proc *o = ctx;
	for (;;) {
		struct daemon_chan_msg msg;
		int rc = daemon_chan_recv(o->chan, &msg);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			break;
		if (msg.type == DAEMON_CHAN_RELOAD && msg.fd >= 0)
			apply_reload(o, msg.fd);
		if (msg.fd >= 0)
			close(msg.fd);
	}
	/* the parent is gone or stopping us */
	out_stop = 1;
	shutdown(o->mail_fd, SHUT_RDWR);
	return NULL;
}

static const char *const http_ro_paths[] = {
	"/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf",
	"/etc/host.conf", "/etc/gai.conf", "/etc/ssl", "/usr/lib/ssl",
	"/usr/share/ca-certificates", NULL,
};

int daemon_outbound_main(struct daemon *d, int chan, int mail_fd)
{
	net_tls_text_free(&d->cert_pem, d->cert_len);
	net_tls_text_free(&d->key_pem, d->key_len);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);

	struct outbound_proc o = {.d = d, .chan = chan, .mail_fd = mail_fd};
	pthread_mutex_init(&o.mu, NULL);
	int rc = 1;
	pthread_t th;
	bool th_started = false;
	struct daemon_sandbox sb;
	memset(&sb, 0, sizeof(sb));
	sb.name = "outbound";
	daemon_sandbox_ro(&sb, "/usr/share/zoneinfo");
	daemon_sandbox_ro(&sb, "/etc/localtime");
	daemon_sandbox_ro(&sb, "/dev/urandom");
	daemon_sandbox_ro(&sb, "/sys/devices/system/cpu");
	char *dkim_dir = xasprintf("%s/dkim", d->dc.data_dir);
	daemon_sandbox_ro(&sb, dkim_dir);
	/* HTTP requests: the resolver's files (curl resolves the host), the
	 * CAs (curl verifies the server), OpenSSL's configuration */
	for (int i = 0; http_ro_paths[i] != NULL; i++)
		daemon_sandbox_ro(&sb, http_ro_paths[i]);
	daemon_sandbox_ro(&sb, config_get(d->cfg, "queue", "tls_ca_file"));
	/* no chroot: the keys alone would leave HTTP without a resolver
	 * and CAs */
	sb.best_effort = d->dc.sandbox_best_effort;
	outhttp_init();
	tzset();
	char *err = NULL;
	bool chrooted = false;
	if (daemon_sandbox_enter(&sb, &d->user, &chrooted, &err) < 0) {
		log_error("loftd", NULL, "outbound process: %s", err);
		free(err);
		goto out;
	}
	o.sign = daemon_extras_signer(dkim_dir, &o.sign_ctx);
	if (thread_start(&th, NULL, chan_main, &o) == 0)
		th_started = true;
	while (!out_stop && accept_request(&o))
		;
	rc = 0;
out:
	if (th_started) {
		shutdown(chan, SHUT_RDWR);
		pthread_join(th, NULL);
	}
	/* requests still running end with the process */
	daemon_extras_signer_free(o.sign_ctx);
	for (size_t i = 0; i < o.cfg_count; i++)
		config_free(&o.cfgs[i]);
	free(o.cfgs);
	free(dkim_dir);
	close(mail_fd);
	close(chan);
	return rc;
}

/* ---- the mail process's side ---------------------------------------- */

struct outbound_client {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int fd;                   /* -1: between two outbound processes */
};

struct outbound_client *outbound_client_create(int fd)
{
	struct outbound_client *c = xcalloc(1, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->fd = fd;
	return c;
}

void outbound_client_set_fd(struct outbound_client *c, int fd)
{
	pthread_mutex_lock(&c->mu);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = fd;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
}

void outbound_client_destroy(struct outbound_client **cp)
{
	struct outbound_client *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	if (c->fd >= 0)
		close(c->fd);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* Hands one end of a new socketpair to the outbound process; returns the
 * other end, or -1 with *error_r. Waits up to 5 s for a restarted one. */
static int open_request(struct outbound_client *c, char **error_r)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		*error_r = xasprintf("socketpair: %s", strerror(errno));
		return -1;
	}
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&c->mu);
	int rc = -1;
	for (int tries = 0; tries < 2 && rc < 0; tries++) {
		while (c->fd < 0 &&
		       pthread_cond_timedwait(&c->cond, &c->mu, &until) == 0)
			;
		if (c->fd < 0)
			break;
		struct iovec iov = {.iov_base = OUT_MAGIC, .iov_len = 4};
		union {
			char b[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} u;
		memset(&u, 0, sizeof(u));
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = u.b,
				    .msg_controllen = sizeof(u.b)};
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &sp[1], sizeof(int));
		ssize_t n;
		do
			n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n == 4) {
			rc = 0;
		} else {
			/* that outbound process is gone: wait for the next */
			close(c->fd);
			c->fd = -1;
		}
	}
	pthread_mutex_unlock(&c->mu);
	close(sp[1]);
	if (rc < 0) {
		close(sp[0]);
		*error_r = xstrdup("the outbound process is not available");
		return -1;
	}
	return sp[0];
}

/* One request (encoded by outwire.h, header included); the answer's
 * text in *text_r (caller frees) and its length in *text_len_r, its
 * socket in *fd_r when fd_r is given. Returns the status (0 ok), -1 on a
 * transport failure (*error_r). */
static int request(struct outbound_client *c, const struct buf *req,
		   unsigned timeout_s, char **text_r, size_t *text_len_r,
		   int *fd_r, char **error_r)
{
	*text_r = NULL;
	*text_len_r = 0;
	if (fd_r != NULL)
		*fd_r = -1;
	int fd = open_request(c, error_r);
	if (fd < 0)
		return -1;
	set_io_timeout(fd, timeout_s);
	uint8_t hdr[8];
	if (write_all(fd, req->data, req->len) < 0)
		goto broken;
	struct iovec iov = {.iov_base = hdr, .iov_len = sizeof(hdr)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	ssize_t n;
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_WAITALL);
	while (n < 0 && errno == EINTR);
	int got = -1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL;
	     cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&got, CMSG_DATA(cm), sizeof(int));
	if (n != (ssize_t)sizeof(hdr))
		goto broken_fd;
	uint32_t status = outwire_get32(hdr), len = outwire_get32(hdr + 4);
	if (len > OUTWIRE_ANSWER_MAX ||
	    (got >= 0 && (status != 0 || fd_r == NULL)))
		goto broken_fd;
	char *text = xmalloc(len + 1);
	if (read_all(fd, text, len) < 0) {
		free(text);
		goto broken_fd;
	}
	text[len] = '\0';
	close(fd);
	*text_r = text;
	*text_len_r = len;
	if (fd_r != NULL)
		*fd_r = got;
	return (int)status;
broken_fd:
	if (got >= 0)
		close(got);
broken:
	close(fd);
	*error_r = xstrdup("no answer from the outbound process");
	return -1;
}

/* A failed request's reason: the outbound process's text, else the
 * errno value's. */
static char *failure(int st, char *text)
{
	char *why = xstrdup(text != NULL && text[0] ? text : strerror(st));
	free(text);
	return why;
}

/* outconn_fn: the mail process's TCP connections. */
int outbound_client_connect(void *ctx, const struct sockaddr *sa,
			    socklen_t len, unsigned timeout_ms,
			    char **error_r)
{
	struct outbound_client *c = ctx;
	struct buf req;
	buf_init(&req, 0);
	if (outwire_connect_encode(sa, len, timeout_ms, &req) < 0) {
		buf_free(&req);
		*error_r = xstrdup("not an IP address");
		return -1;
	}
	char *text = NULL;
	size_t text_len;
	int fd = -1;
	int st = request(c, &req, timeout_ms / 1000 + 10, &text, &text_len,
			 &fd, error_r);
	buf_free(&req);
	if (st == 0 && fd >= 0) {
		free(text);
		return fd;
	}
	if (st == 0)
		*error_r = xstrdup("no socket from the outbound process");
	else if (st > 0) {
		*error_r = failure(st, text);
		text = NULL;
	}
	free(text);
	if (fd >= 0)
		close(fd);
	return -1;
}

int outbound_client_sign(struct outbound_client *c, const char *head,
			 size_t head_len, const uint8_t *bh, size_t bh_len,
			 struct buf *out)
{
	struct buf req;
	buf_init(&req, 0);
	if (outwire_sign_encode(bh, bh_len, head, head_len, &req) < 0) {
		buf_free(&req);
		log_warn("outbound", NULL, "DKIM: a header of %zu bytes is not "
			 "signed (at most %d)", head_len, OUTWIRE_HEAD_MAX);
		return -1;
	}
	char *text = NULL, *err = NULL;
	size_t text_len;
	int st = request(c, &req, 30, &text, &text_len, NULL, &err);
	buf_free(&req);
	if (st != 0) {
		log_error("outbound", NULL, "DKIM signing: %s",
			  st < 0 ? err : text);
		free(err);
		free(text);
		return -1;
	}
	buf_append(out, text, text_len);
	free(text);
	return 0;
}

/* outhttp_fn: the mail process's HTTP requests. */
int outbound_client_http(void *ctx, const struct outhttp_request *req,
			 struct outhttp_answer *answer_r, char **error_r)
{
	struct outbound_client *c = ctx;
	memset(answer_r, 0, sizeof(*answer_r));
	struct buf wire;
	buf_init(&wire, 0);
	if (outwire_http_encode(req, &wire) < 0) {
		buf_free(&wire);
		*error_r = xstrdup("request outside the outbound process's "
				   "bounds");
		return -1;
	}
	char *text = NULL;
	size_t text_len;
	int st = request(c, &wire, req->timeout_ms / 1000 + 10, &text,
			 &text_len, NULL, error_r);
	buf_free(&wire);
	if (st > 0) {
		*error_r = failure(st, text);
		text = NULL;
	}
	if (st != 0) {
		free(text);
		return -1;
	}
	int rc = outwire_http_answer_parse((const uint8_t *)text, text_len,
					   req->answer_max, answer_r);
	free(text);
	if (rc < 0)
		*error_r = xstrdup("malformed answer from the outbound process");
	return rc;
}
