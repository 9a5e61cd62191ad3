/*
 * Tests of src/net with a small line protocol run by a real loop on
 * loopback sockets:
 *   ECHO x      -> "x" (on the I/O thread)
 *   WORK x      -> "DONE x" (on a worker, after 20 ms)
 *   RAND n      -> as BIG, with bytes deflate cannot shrink
 *   WTIMEOUT n  -> this connection's write timeout
 *   BIG n       -> n bytes of 'x' then "END ok|fail" (a worker, with
 *                  back-pressure)
 *   STARTTLS    -> "OK", then TLS      COMPRESS -> "OK", then deflate
 *   STLSTASK    -> "OK", then TLS, while a task of the connection runs
 *                  until the client has read the "OK" (as ManageSieve's
 *                  capability timer after STARTTLS)
 *   POST        -> "POSTED" written by net_conn_post from another thread
 *   TIMEOUT n   -> idle timeout n s; the hook says "BYE idle"
 *   QUIT        -> "BYE", close
 *   DELAY ms x  -> "DELAYING", then "F x" from a task started ms later by
 *                  a timer (net_conn_run_after; a hang-up cancels it)
 *   HOLD        -> "HOLDING", then a wait that only a close ends
 *   WHOLD ms x  -> a task starts a wait that another thread ends ms later;
 *                  then "F x" (a half-close does not cancel it)
 *   REFUSE      -> net_conn_refuse: "BANNED", close
 * The greeting is "HELLO"; while `banned` is set, a new connection gets
 * "BANNED" instead (net_set_admit).
 *
 * LOFT_NET_MEASURE=N (and LOFT_NET_MEASURE_TLS=1) instead measures the
 * memory of N idle connections opened by a child process.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/ssl.h>
#include <zlib.h>

#include "buf.h"
#include "net.h"
#include "test.h"

/* ---- the protocol ----------------------------------------------------- */

struct session {
	struct net_conn *conn;
	char work[64];
	size_t big;
	bool on_io_thread_in_task;
};

static atomic_int accepted, closed_count, big_results_fail;
static atomic_size_t big_peak, input_peak;

static void *p_accept(struct net_conn *conn, void *ctx)
{
	struct session *s = calloc(1, sizeof(*s));
	s->conn = conn;
	atomic_fetch_add(&accepted, 1);
	net_conn_printf(conn, "HELLO\r\n");
	return s;
}

static void task_work(void *session, struct net_conn *conn, void *arg)
{
	struct session *s = session;
	usleep(20000);
	net_conn_printf(conn, "DONE %s\r\n", s->work);
}

static void task_fast(void *session, struct net_conn *conn, void *arg)
{
	net_conn_printf(conn, "F %s\r\n", (char *)arg);
	free(arg);
}

/* LINES n / LINESQ n: n short lines and END, one write each (LINESQ
 * then closes, as an IMAP LOGOUT does). */
static void task_lines(void *session, struct net_conn *conn, void *arg)
{
	(void)session;
	long n = (long)(intptr_t)arg;
	bool quit = n < 0;
	for (long i = 0; i < (quit ? -n : n); i++)
		net_conn_printf(conn, "L %ld\r\n", i);
	net_conn_printf(conn, quit ? "BYE\r\n" : "END\r\n");
	if (quit)
		net_conn_close(conn);
}

static void task_big(void *session, struct net_conn *conn, void *arg)
{
	struct session *s = session;
	static char xs[65536], rnd[65536];
	char *chunk = xs;
	memset(xs, 'x', sizeof(xs));
	size_t left = s->big;
	int rc = 0;
	if (arg != NULL) {
		/* RAND: bytes deflate cannot shrink, so a COMPRESS session's
		 * output piles up as fast as a plain one's */
		uint32_t x = 2463534242u;
		for (size_t i = 0; i < sizeof(rnd); i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			rnd[i] = (char)x;
		}
		chunk = rnd;
	}
	while (left > 0 && rc == 0) {
		size_t n = left < sizeof(xs) ? left : sizeof(xs);
		rc = net_conn_write(conn, chunk, n);
		left -= n;
		size_t pending = net_conn_output_pending(conn);
		size_t peak = atomic_load(&big_peak);
		while (pending > peak &&
		       !atomic_compare_exchange_weak(&big_peak, &peak, pending))
			;
	}
	if (rc < 0)
		atomic_fetch_add(&big_results_fail, 1);
	net_conn_printf(conn, "END %s\r\n", rc == 0 ? "ok" : "fail");
}

static void post_fn(void *session, struct net_conn *conn, void *arg)
{
	net_conn_printf(conn, "POSTED\r\n");
}

static void *poster_main(void *arg)
{
	struct net_conn *conn = arg;
	usleep(10000);
	net_conn_post(conn, post_fn, NULL);
	net_conn_unref(&conn);
	return NULL;
}

static atomic_int cancels;
static atomic_bool banned;

static void wait_cancelled(void *arg)
{
	atomic_fetch_add(&cancels, 1);
	free(arg);
}

struct finisher {
	struct net_wait *w;
	unsigned ms;
};

static void *finisher_main(void *arg)
{
	struct finisher *f = arg;
	usleep(f->ms * 1000);
	net_wait_finish(f->w, 0);
	net_wait_unref(&f->w);
	free(f);
	return NULL;
}

/* On a worker: the task starts a wait another thread ends. */
static void task_whold(void *session, struct net_conn *conn, void *arg)
{
	struct session *s = session;
	struct finisher *f = arg;
	f->w = net_conn_wait(conn, 0, task_fast, strdup(s->work),
			     wait_cancelled);
	pthread_t t;
	pthread_create(&t, NULL, finisher_main, f);
	pthread_detach(t);
}

/* STLSTASK: a task of the connection still runs when the "OK" has
 * drained (the write callback then leaves the TLS swap to the task's
 * end): it returns once the client has read the OK and the output is
 * empty, after a moment for the I/O thread's write callback (the moment
 * only makes the case happen; without it the test passes anyway). */
static atomic_bool stls_ok_read;

static void task_stls(void *session, struct net_conn *conn, void *arg)
{
	(void)session;
	(void)arg;
	for (int i = 0; i < 120000 && (!atomic_load(&stls_ok_read) ||
				       net_conn_output_pending(conn) > 0); i++)
		usleep(1000);
	usleep(50000);
}

static bool admit(void *ctx, const char *ip)
{
	return !atomic_load(&banned) || strcmp(ip, "127.0.0.1") != 0;
}

static void p_input(void *session, struct net_conn *conn)
{
	struct session *s = session;
	struct evbuffer *in = net_conn_input(conn);
	for (;;) {
		size_t len, have = evbuffer_get_length(in);
		size_t peak = atomic_load(&input_peak);
		while (have > peak &&
		       !atomic_compare_exchange_weak(&input_peak, &peak, have))
			;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			/* As a front-end does: a line too long is refused. */
			if (have > 16384) {
				evbuffer_drain(in, have);
				net_conn_printf(conn, "ERR too long\r\n");
				net_conn_close(conn);
			}
			return;
		}
		bool stop = false;
		if (strncmp(line, "ECHO ", 5) == 0) {
			net_conn_printf(conn, "%s\r\n", line + 5);
		} else if (strncmp(line, "WORK ", 5) == 0) {
			snprintf(s->work, sizeof(s->work), "%s", line + 5);
			net_conn_run(conn, task_work, NULL);
			stop = true;
		} else if (strncmp(line, "FAST ", 5) == 0) {
			net_conn_run(conn, task_fast, strdup(line + 5));
			stop = true;
		} else if (strncmp(line, "LINES ", 6) == 0) {
			net_conn_run(conn, task_lines,
				     (void *)(intptr_t)atol(line + 6));
			stop = true;
		} else if (strncmp(line, "LINESQ ", 7) == 0) {
			net_conn_run(conn, task_lines,
				     (void *)(intptr_t)-atol(line + 7));
			stop = true;
		} else if (strncmp(line, "BIG ", 4) == 0) {
			s->big = strtoull(line + 4, NULL, 10);
			net_conn_run(conn, task_big, NULL);
			stop = true;
		} else if (strncmp(line, "RAND ", 5) == 0) {
			s->big = strtoull(line + 5, NULL, 10);
			net_conn_run(conn, task_big, (void *)1);
			stop = true;
		} else if (strcmp(line, "STARTTLS") == 0) {
			net_conn_printf(conn, "OK\r\n");
			net_conn_starttls(conn);
			stop = true;
		} else if (strcmp(line, "STLSTASK") == 0) {
			net_conn_printf(conn, "OK\r\n");
			net_conn_starttls(conn);
			net_conn_run(conn, task_stls, NULL);
			stop = true;
		} else if (strcmp(line, "COMPRESS") == 0) {
			net_conn_printf(conn, "OK\r\n");
			net_conn_compress(conn);
		} else if (strcmp(line, "POST") == 0) {
			pthread_t t;
			net_conn_ref(conn);
			pthread_create(&t, NULL, poster_main, conn);
			pthread_detach(t);
		} else if (strncmp(line, "WTIMEOUT ", 9) == 0) {
			net_conn_set_write_timeout(conn, (unsigned)atoi(line + 9));
		} else if (strncmp(line, "TIMEOUT ", 8) == 0) {
			net_conn_set_timeout(conn, (unsigned)atoi(line + 8));
		} else if (strncmp(line, "DELAY ", 6) == 0) {
			char *word = strchr(line + 6, ' ');
			net_conn_printf(conn, "DELAYING\r\n");
			net_conn_run_after(conn, (uint32_t)atoi(line + 6),
					   NET_WAIT_HANGUP_CANCELS, task_fast,
					   strdup(word ? word + 1 : ""),
					   wait_cancelled);
			stop = true;
		} else if (strcmp(line, "HOLD") == 0) {
			net_conn_printf(conn, "HOLDING\r\n");
			struct net_wait *w = net_conn_wait(conn,
							   NET_WAIT_HANGUP_CANCELS,
							   task_fast,
							   strdup("never"),
							   wait_cancelled);
			net_wait_unref(&w);
			stop = true;
		} else if (strncmp(line, "WHOLD ", 6) == 0) {
			struct finisher *f = calloc(1, sizeof(*f));
			f->ms = (unsigned)atoi(line + 6);
			char *word = strchr(line + 6, ' ');
			snprintf(s->work, sizeof(s->work), "%s", word ? word + 1 : "");
			net_conn_run(conn, task_whold, f);
			stop = true;
		} else if (strcmp(line, "REFUSE") == 0) {
			net_conn_refuse(conn);
			stop = true;
		} else if (strcmp(line, "QUIT") == 0) {
			net_conn_printf(conn, "BYE\r\n");
			net_conn_close(conn);
			stop = true;
		} else {
			net_conn_printf(conn, "ERR\r\n");
		}
		free(line);
		if (stop)
			return;
	}
}

static void p_closed(void *session, struct net_conn *conn)
{
	atomic_fetch_add(&closed_count, 1);
	free(session);
}

static bool p_timeout(void *session, struct net_conn *conn)
{
	net_conn_printf(conn, "BYE idle\r\n");
	return true;
}

static const struct net_proto test_proto = {
	"test", p_accept, p_input, p_closed, p_timeout, "BUSY\r\n", NULL,
	"BANNED\r\n", false,
};

/* The same protocol with its tasks' output corked (IMAP's). */
static const struct net_proto test_proto_cork = {
	"test", p_accept, p_input, p_closed, p_timeout, "BUSY\r\n", NULL,
	"BANNED\r\n", true,
};

/* ---- the server under test --------------------------------------------- */

static struct net *net;
static pthread_t run_thread;
static int port_plain, port_tls, port_limited, port_cork;
static char cert_path[64], key_path[64];
static SSL_CTX *client_ctx;

static void *run_main(void *arg)
{
	net_run(net);
	return NULL;
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	socklen_t len = sizeof(sin);
	getsockname(fd, (struct sockaddr *)&sin, &len);
	close(fd);
	return ntohs(sin.sin_port);
}

static void make_cert(void)
{
	char dir[] = "/tmp/loft-test-net-XXXXXX";
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
		 "-subj /CN=localhost -keyout %s -out %s 2>/dev/null",
		 key_path, cert_path);
	if (system(cmd) != 0)
		abort();
}

static void server_start(unsigned max_per_ip)
{
	make_cert();
	struct net_settings set = {
		.io_threads = getenv("LOFT_NET_IO") ? (unsigned)atoi(getenv("LOFT_NET_IO")) : 2,
		.worker_threads = 2,
		.tls_cert = cert_path, .tls_key = key_path,
		/* long: a client of these tests that reads must never be
		 * dropped, however busy the machine; the drop tests lower
		 * it per connection (WTIMEOUT) */
		.output_high_water = 256 * 1024, .write_timeout = 600,
		.max_conns_per_ip = max_per_ip,
	};
	char *err = NULL;
	if (net_create(&set, &net, &err) < 0) {
		fprintf(stderr, "net_create: %s\n", err);
		abort();
	}
	char addr[64];
	const char *lerr;
	port_plain = free_port();
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port_plain);
	CHECK(net_listen(net, addr, false, &test_proto, NULL, &lerr) == 0);
	port_tls = free_port();
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port_tls);
	CHECK(net_listen(net, addr, true, &test_proto, NULL, &lerr) == 0);
	port_cork = free_port();
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port_cork);
	CHECK(net_listen(net, addr, false, &test_proto_cork, NULL, &lerr) == 0);
	net_set_admit(net, admit, NULL);
	pthread_create(&run_thread, NULL, run_main, NULL);
	client_ctx = SSL_CTX_new(TLS_client_method());
}

static void server_stop(void)
{
	net_stop(net);
	pthread_join(run_thread, NULL);
	net_destroy(&net);
	SSL_CTX_free(client_ctx);
	unlink(cert_path);
	unlink(key_path);
	*strrchr(cert_path, '/') = '\0';
	rmdir(cert_path);
}

/* ---- a blocking client ------------------------------------------------- */

struct cli {
	int fd;
	SSL *ssl;
	bool z;
	z_stream zin, zout;
	char buf[1 << 16];
	size_t len;
	unsigned char raw[16384];
};

static struct cli *cli_open(int port)
{
	struct cli *c = calloc(1, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	/* a bound on a reply that never comes, not a guess of how fast a
	 * busy machine answers */
	struct timeval tv = {120, 0};
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		abort();
	return c;
}

static int cli_tls(struct cli *c, int max_version)
{
	c->ssl = SSL_new(client_ctx);
	if (max_version != 0)
		SSL_set_max_proto_version(c->ssl, max_version);
	SSL_set_fd(c->ssl, c->fd);
	return SSL_connect(c->ssl) == 1 ? 0 : -1;
}

static void cli_close(struct cli *c)
{
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	if (c->z) {
		inflateEnd(&c->zin);
		deflateEnd(&c->zout);
	}
	close(c->fd);
	free(c);
}

/* Bytes read; 0 at EOF (or a reset); -1 when the read timed out. */
static ssize_t cli_raw_read(struct cli *c, void *p, size_t n)
{
	if (c->ssl != NULL) {
		int r = SSL_read(c->ssl, p, (int)n);
		if (r <= 0 && SSL_get_error(c->ssl, r) == SSL_ERROR_SYSCALL &&
		    (errno == EAGAIN || errno == EWOULDBLOCK))
			return -1;
		return r > 0 ? r : 0;
	}
	ssize_t r = read(c->fd, p, n);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return -1;
	return r > 0 ? r : 0;
}

static void cli_raw_write(struct cli *c, const void *p, size_t n)
{
	if (c->ssl != NULL)
		SSL_write(c->ssl, p, (int)n);
	else if (write(c->fd, p, n) != (ssize_t)n)
		fprintf(stderr, "short write\n");
}

static void cli_send(struct cli *c, const char *s)
{
	if (!c->z) {
		cli_raw_write(c, s, strlen(s));
		return;
	}
	unsigned char out[4096];
	c->zout.next_in = (unsigned char *)s;
	c->zout.avail_in = (uInt)strlen(s);
	do {
		c->zout.next_out = out;
		c->zout.avail_out = sizeof(out);
		deflate(&c->zout, Z_SYNC_FLUSH);
		cli_raw_write(c, out, sizeof(out) - c->zout.avail_out);
	} while (c->zout.avail_out == 0);
}

/* Fills c->buf with at least one more byte; false at EOF/timeout. */
static bool cli_fill(struct cli *c)
{
	for (;;) {
		if (c->z && c->zin.avail_in > 0) {
			if (c->len == sizeof(c->buf))
				return true;    /* full: the caller consumes first */
			size_t before = c->len;
			c->zin.next_out = (unsigned char *)c->buf + c->len;
			c->zin.avail_out = (uInt)(sizeof(c->buf) - c->len);
			inflate(&c->zin, Z_SYNC_FLUSH);
			c->len = sizeof(c->buf) - c->zin.avail_out;
			if (c->len > before)
				return true;
			continue;
		}
		ssize_t n = cli_raw_read(c, c->raw, sizeof(c->raw));
		if (n <= 0)
			return false;
		if (!c->z) {
			size_t k = (size_t)n;
			if (k > sizeof(c->buf) - c->len)
				abort();    /* callers keep room */
			memcpy(c->buf + c->len, c->raw, k);
			c->len += k;
			return true;
		}
		c->zin.next_in = c->raw;
		c->zin.avail_in = (uInt)n;
	}
}

/* The next line without CRLF (static buffer), or "" at EOF. */
static const char *cli_line(struct cli *c)
{
	static char line[1024];
	for (;;) {
		char *nl = memmem(c->buf, c->len, "\r\n", 2);
		if (nl != NULL) {
			size_t n = (size_t)(nl - c->buf);
			if (n >= sizeof(line))
				n = sizeof(line) - 1;
			memcpy(line, c->buf, n);
			line[n] = '\0';
			size_t used = (size_t)(nl - c->buf) + 2;
			memmove(c->buf, c->buf + used, c->len - used);
			c->len -= used;
			return line;
		}
		if (c->len > sizeof(c->buf) - sizeof(c->raw) || !cli_fill(c))
			return "";
	}
}

/* Consumes n bytes that must all be 'x'. */
static bool cli_skip_x(struct cli *c, size_t n)
{
	while (n > 0) {
		if (c->len == 0 && !cli_fill(c))
			return false;
		size_t k = c->len < n ? c->len : n;
		for (size_t i = 0; i < k; i++)
			if (c->buf[i] != 'x')
				return false;
		memmove(c->buf, c->buf + k, c->len - k);
		c->len -= k;
		n -= k;
	}
	return true;
}

static bool cli_eof(struct cli *c)
{
	char b;
	return c->len == 0 && cli_raw_read(c, &b, 1) == 0;
}

/* ---- tests ------------------------------------------------------------- */

static void test_pipelining(void)
{
	struct cli *c = cli_open(port_plain);
	CHECK_STR(cli_line(c), "HELLO");
	cli_send(c, "WORK a\r\nECHO b\r\nWORK c\r\nECHO d\r\nECHO e\r\n");
	CHECK_STR(cli_line(c), "DONE a");
	CHECK_STR(cli_line(c), "b");
	CHECK_STR(cli_line(c), "DONE c");
	CHECK_STR(cli_line(c), "d");
	CHECK_STR(cli_line(c), "e");
	cli_send(c, "QUIT\r\n");
	CHECK_STR(cli_line(c), "BYE");
	CHECK(cli_eof(c));
	cli_close(c);
}

static void test_half_close(void)
{
	/* printf 'WORK a\r\nECHO b\r\nWORK c\r\n' | nc: every command is
	 * answered before the server closes. */
	struct cli *c = cli_open(port_plain);
	CHECK_STR(cli_line(c), "HELLO");
	cli_send(c, "WORK a\r\nECHO b\r\nWORK c\r\nECHO d\r\n");
	shutdown(c->fd, SHUT_WR);
	CHECK_STR(cli_line(c), "DONE a");
	CHECK_STR(cli_line(c), "b");
	CHECK_STR(cli_line(c), "DONE c");
	CHECK_STR(cli_line(c), "d");
	CHECK(cli_eof(c));
	cli_close(c);
}

/* Many clients, each pipelining a burst of task and I/O-thread commands:
 * every reply arrives, in order. */
static void test_stress_order(void)
{
	enum { N = 100, K = 30 };
	struct cli *c[N];
	for (int i = 0; i < N; i++) {
		c[i] = cli_open(i % 2 ? port_tls : port_plain);
		if (i % 2)
			CHECK(cli_tls(c[i], 0) == 0);
		CHECK_STR(cli_line(c[i]), "HELLO");
	}
	for (int i = 0; i < N; i++) {
		char burst[K * 32] = "";
		for (int k = 0; k < K; k++) {
			char one[32];
			snprintf(one, sizeof(one), k % 3 ? "FAST %d\r\n" : "ECHO %d\r\n", k);
			strcat(burst, one);
		}
		cli_send(c[i], burst);
	}
	int bad = 0;
	for (int i = 0; i < N; i++) {
		for (int k = 0; k < K; k++) {
			char want[32];
			snprintf(want, sizeof(want), k % 3 ? "F %d" : "%d", k);
			if (strcmp(cli_line(c[i]), want) != 0)
				bad++;
		}
		cli_close(c[i]);
	}
	CHECK_INT(bad, 0);
}

static void test_many_clients_tasks(void)
{
	enum { N = 20 };
	struct cli *c[N];
	for (int i = 0; i < N; i++) {
		c[i] = cli_open(port_plain);
		CHECK_STR(cli_line(c[i]), "HELLO");
	}
	for (int i = 0; i < N; i++)
		cli_send(c[i], "WORK x\r\nWORK y\r\n");
	for (int i = 0; i < N; i++) {
		CHECK_STR(cli_line(c[i]), "DONE x");
		CHECK_STR(cli_line(c[i]), "DONE y");
		cli_close(c[i]);
	}
}

static void test_backpressure(void)
{
	atomic_store(&big_peak, 0);
	atomic_store(&big_results_fail, 0);
	struct cli *c = cli_open(port_plain);
	CHECK_STR(cli_line(c), "HELLO");
	size_t total = 64u << 20;
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "BIG %zu\r\n", total);
	cli_send(c, cmd);
	/* Not reading for a while: the worker must wait, not buffer 64 MB. */
	usleep(1500 * 1000);
	size_t got = 0;
	char b[65536];
	while (got < total) {
		ssize_t n = read(c->fd, b, sizeof(b));
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got > total) {
			/* The tail of this read is the start of "END ok". */
			size_t extra = got - total;
			memcpy(c->buf, b + (size_t)n - extra, extra);
			c->len = extra;
		}
	}
	CHECK(got >= total);
	const char *line = cli_line(c);
	CHECK(strstr(line, "END ok") != NULL);
	size_t peak = atomic_load(&big_peak);
	/* The high-water mark plus one 64 KiB write. */
	CHECK(peak <= 256 * 1024 + 65536 + 4096);
	CHECK_INT(atomic_load(&big_results_fail), 0);
	cli_close(c);
}

/* A corked protocol (net_proto.cork): a task's lines leave in one piece
 * (the first read holds them all), in order with the I/O thread's
 * replies, a big write still under back-pressure, and a close from the
 * task sends what it wrote first. */
static void test_cork(void)
{
	struct cli *c = cli_open(port_cork);
	CHECK_STR(cli_line(c), "HELLO");
	cli_send(c, "LINES 200\r\n");
	char first[8192];
	ssize_t n = cli_raw_read(c, first, sizeof(first) - 1);
	CHECK(n > 0);
	first[n > 0 ? n : 0] = '\0';
	CHECK(n > 0 && strstr(first, "L 0\r\nL 1\r\n") == first &&
	      strstr(first, "L 199\r\nEND\r\n") != NULL);
	cli_send(c, "WORK a\r\nECHO b\r\nLINES 2\r\nFAST c\r\nECHO d\r\n");
	CHECK_STR(cli_line(c), "DONE a");
	CHECK_STR(cli_line(c), "b");
	CHECK_STR(cli_line(c), "L 0");
	CHECK_STR(cli_line(c), "L 1");
	CHECK_STR(cli_line(c), "END");
	CHECK_STR(cli_line(c), "F c");
	CHECK_STR(cli_line(c), "d");
	atomic_store(&big_peak, 0);
	atomic_store(&big_results_fail, 0);
	size_t total = 8u << 20;
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "BIG %zu\r\n", total);
	cli_send(c, cmd);
	CHECK(cli_skip_x(c, total));
	CHECK_STR(cli_line(c), "END ok");
	CHECK(atomic_load(&big_peak) <= 256 * 1024 + 2 * 65536 + 4096);
	cli_send(c, "LINESQ 300\r\n");
	for (int i = 0; i < 300; i++) {
		char want[16];
		snprintf(want, sizeof(want), "L %d", i);
		if (strcmp(cli_line(c), want) != 0) {
			CHECK(!"a line of LINESQ missing");
			break;
		}
	}
	CHECK_STR(cli_line(c), "BYE");
	CHECK(cli_eof(c));
	cli_close(c);
}

static void settle(void)
{
	for (int i = 0; i < 100 && atomic_load(&closed_count) != atomic_load(&accepted); i++)
		usleep(20 * 1000);
}

static void test_never_reads_dropped(void)
{
	settle();
	int before = atomic_load(&closed_count);
	atomic_store(&big_results_fail, 0);
	struct cli *c = cli_open(port_plain);
	int small = 4096;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	CHECK_STR(cli_line(c), "HELLO");
	cli_send(c, "WTIMEOUT 2\r\nBIG 1000000000\r\n");
	/* write_timeout is 2 s: the worker gives up, the client is dropped
	 * (waited for, however long a busy machine takes) */
	for (int i = 0; i < 1200 && (atomic_load(&closed_count) == before ||
				     atomic_load(&big_results_fail) == 0); i++)
		usleep(100 * 1000);
	CHECK(atomic_load(&closed_count) > before);
	CHECK_INT(atomic_load(&big_results_fail), 1);
	cli_close(c);
}

static void test_starttls_discards_injection(void)
{
	struct cli *c = cli_open(port_plain);
	CHECK_STR(cli_line(c), "HELLO");
	/* One segment: the command and an injected one behind it. */
	cli_send(c, "STARTTLS\r\nECHO injected\r\n");
	CHECK_STR(cli_line(c), "OK");
	CHECK(c->len == 0);
	CHECK(cli_tls(c, 0) == 0);
	cli_send(c, "ECHO after\r\n");
	CHECK_STR(cli_line(c), "after");
	/* STARTTLS twice is refused by net (the command then stalls; QUIT). */
	cli_send(c, "QUIT\r\n");
	CHECK_STR(cli_line(c), "BYE");
	cli_close(c);
}

/* The STARTTLS reply drained while a task ran: the swap still happens
 * when the task ends (it used to wait for a write that never came: the
 * handshake then hung). */
static void test_starttls_during_task(void)
{
	struct cli *c = cli_open(port_plain);
	CHECK_STR(cli_line(c), "HELLO");
	atomic_store(&stls_ok_read, false);
	cli_send(c, "STLSTASK\r\n");
	CHECK_STR(cli_line(c), "OK");
	atomic_store(&stls_ok_read, true);
	CHECK(cli_tls(c, 0) == 0);
	cli_send(c, "ECHO after\r\n");
	CHECK_STR(cli_line(c), "after");
	cli_send(c, "QUIT\r\n");
	CHECK_STR(cli_line(c), "BYE");
	cli_close(c);
}

static void test_implicit_tls(void)
{
	struct cli *c = cli_open(port_tls);
	CHECK(cli_tls(c, 0) == 0);
	CHECK(SSL_version(c->ssl) >= TLS1_2_VERSION);
	CHECK_STR(cli_line(c), "HELLO");
	cli_send(c, "WORK tls\r\nECHO t\r\n");
	CHECK_STR(cli_line(c), "DONE tls");
	CHECK_STR(cli_line(c), "t");
	cli_close(c);

	/* TLS 1.1 is refused. */
	c = cli_open(port_tls);
	CHECK(cli_tls(c, TLS1_1_VERSION) < 0);
	cli_close(c);
}

static void cli_start_z(struct cli *c)
{
	c->z = true;
	inflateInit2(&c->zin, -15);
	deflateInit2(&c->zout, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
}

static void test_compress(void)
{
	for (int tls = 0; tls < 2; tls++) {
		struct cli *c = cli_open(tls ? port_tls : port_plain);
		if (tls)
			CHECK(cli_tls(c, 0) == 0);
		CHECK_STR(cli_line(c), "HELLO");
		cli_send(c, "COMPRESS\r\n");
		CHECK_STR(cli_line(c), "OK");
		cli_start_z(c);
		cli_send(c, "ECHO zipped\r\nWORK z\r\n");
		CHECK_STR(cli_line(c), "zipped");
		CHECK_STR(cli_line(c), "DONE z");
		char big[3000];
		memset(big, 'q', sizeof(big));
		memcpy(big, "ECHO ", 5);
		memcpy(big + sizeof(big) - 3, "\r\n", 3);
		cli_send(c, big);
		const char *l = cli_line(c);
		CHECK(strlen(l) == sizeof(big) - 8 || strlen(l) == 1023);
		/* A large response from a worker, through deflate. */
		cli_send(c, "BIG 3000000\r\n");
		CHECK(cli_skip_x(c, 3000000));
		CHECK_STR(cli_line(c), "END ok");
		cli_send(c, "QUIT\r\n");
		CHECK_STR(cli_line(c), "BYE");
		cli_close(c);
	}
}

/* Deflates data repeated reps times into the client's stream (no flush
 * in between), then a sync flush or the end of the stream; the
 * compressed bytes go to *out (malloc'd). */
static size_t deflate_reps(struct cli *c, const char *data, size_t len,
			   size_t reps, bool finish, unsigned char **out)
{
	z_stream *zs = &c->zout;
	size_t cap = 1 << 20, n = 0;
	unsigned char *o = malloc(cap);
	for (size_t i = 0; i <= reps; i++) {
		bool last = i == reps;
		zs->next_in = (unsigned char *)data;
		zs->avail_in = last ? 0 : (uInt)len;
		do {
			if (cap - n < 65536) {
				cap *= 2;
				o = realloc(o, cap);
			}
			zs->next_out = o + n;
			zs->avail_out = (uInt)(cap - n);
			deflate(zs, last ? (finish ? Z_FINISH : Z_SYNC_FLUSH)
					 : Z_NO_FLUSH);
			n = cap - zs->avail_out;
		} while (zs->avail_in > 0 || zs->avail_out == 0);
	}
	*out = o;
	return n;
}

static struct cli *cli_compressed(int port)
{
	struct cli *c = cli_open(port);
	CHECK_STR(cli_line(c), "HELLO");
	cli_send(c, "COMPRESS\r\n");
	CHECK_STR(cli_line(c), "OK");
	cli_start_z(c);
	return c;
}

/* A zip bomb after COMPRESS: 50 MB of zeros in ~50 KB. The session's
 * input never holds more than the filter's bound (64 KiB), and the
 * line-too-long answer comes through before the close. */
static void test_compress_bomb(void)
{
	static char zeros[1 << 20];
	unsigned char *bomb;
	atomic_store(&input_peak, 0);
	struct cli *c = cli_compressed(port_plain);
	size_t n = deflate_reps(c, zeros, sizeof(zeros), 50, false, &bomb);
	CHECK(n < 200 * 1024);
	cli_raw_write(c, bomb, n);
	CHECK_STR(cli_line(c), "ERR too long");
	CHECK(cli_eof(c));
	cli_close(c);
	CHECK(atomic_load(&input_peak) > 16384);
	CHECK(atomic_load(&input_peak) <= 64 * 1024 + 4096);
	free(bomb);

	/* Many small commands in a few KB: inflation stops at the bound and
	 * resumes as the session drains its input; every one is answered. */
	atomic_store(&input_peak, 0);
	c = cli_compressed(port_plain);
	const char *cmd = "ECHO a\r\n";
	size_t count = 200000;
	n = deflate_reps(c, cmd, strlen(cmd), count, false, &bomb);
	cli_raw_write(c, bomb, n);
	cli_send(c, "WORK end\r\nECHO after\r\n");
	size_t answered = 0;
	while (answered < count && strcmp(cli_line(c), "a") == 0)
		answered++;
	CHECK_INT(answered, count);
	CHECK_STR(cli_line(c), "DONE end");
	CHECK_STR(cli_line(c), "after");
	CHECK(atomic_load(&input_peak) <= 64 * 1024 + 4096);
	cli_close(c);
	free(bomb);

	/* Bytes after the end of the deflate stream, and a broken stream:
	 * the connection is dropped. */
	for (int k = 0; k < 2; k++) {
		c = cli_compressed(port_plain);
		if (k == 0) {
			n = deflate_reps(c, cmd, strlen(cmd), 1, true, &bomb);
			cli_raw_write(c, bomb, n);
			cli_raw_write(c, "junk", 4);
			free(bomb);
		} else {
			cli_raw_write(c, "\xff\xff\xff\xff", 4);
		}
		/* dropped by the server: EOF, not the client's read timeout */
		const char *l = cli_line(c);
		CHECK(strcmp(l, "a") == 0 || strcmp(l, "") == 0);
		CHECK(cli_eof(c));
		cli_close(c);
	}
}

/* CPU contention inside the test: busy threads, at least two per core. */
static atomic_bool hog_stop;

static void *hog_main(void *arg)
{
	volatile unsigned long x = 0;
	while (!atomic_load(&hog_stop))
		x++;
	return NULL;
}

/* A compressed flood of identical commands: the I/O thread answers it
 * batch by batch, every answer queueing a deflate flush. */
static void send_flood(struct cli *c)
{
	unsigned char *bomb;
	const char *cmd = "ECHO 0123456789abcdef0123456789abcdef\r\n";
	size_t n = deflate_reps(c, cmd, strlen(cmd), 400000, false, &bomb);
	cli_raw_write(c, bomb, n);
	free(bomb);
}

static void wait_closed(int before)
{
	for (int i = 0; i < 1200 && atomic_load(&closed_count) == before; i++)
		usleep(100 * 1000);
	CHECK(atomic_load(&closed_count) > before);
}

/* Issue 9 item 9: a COMPRESS connection that goes away (the client
 * closes with answers unread, or stops reading and is dropped for its
 * write timeout) while its deflate filter still has a flush queued: the
 * filter was revived and freed twice (libevent's "refcnt > 0" assertion)
 * when that happened on a busy machine. Both kinds of drop, several
 * times, with CPU hogs running; then a session that works. */
static void test_compress_drop_under_load(void)
{
	enum { HOGS = 6, ROUNDS = 3 };
	pthread_t hogs[HOGS];
	atomic_store(&hog_stop, false);
	for (int i = 0; i < HOGS; i++)
		pthread_create(&hogs[i], NULL, hog_main, NULL);
	settle();
	int small = 4096;
	for (int round = 0; round < ROUNDS; round++) {
		/* closed by the client in the middle of the flood */
		int before = atomic_load(&closed_count);
		struct cli *c = cli_compressed(port_plain);
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
		send_flood(c);
		usleep(50 * 1000 * (unsigned)round);
		cli_close(c);
		wait_closed(before);
		/* dropped by the server: it stops reading */
		before = atomic_load(&closed_count);
		atomic_store(&big_results_fail, 0);
		c = cli_compressed(port_plain);
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
		cli_send(c, "WTIMEOUT 1\r\nRAND 200000000\r\n");
		wait_closed(before);
		CHECK_INT(atomic_load(&big_results_fail), 1);
		cli_close(c);
	}
	struct cli *c = cli_compressed(port_plain);
	cli_send(c, "ECHO alive\r\nWORK w\r\n");
	CHECK_STR(cli_line(c), "alive");
	CHECK_STR(cli_line(c), "DONE w");
	cli_close(c);
	atomic_store(&hog_stop, true);
	for (int i = 0; i < HOGS; i++)
		pthread_join(hogs[i], NULL);
}

static void test_post_and_timeout(void)
{
	struct cli *c = cli_open(port_plain);
	CHECK_STR(cli_line(c), "HELLO");
	cli_send(c, "POST\r\n");
	CHECK_STR(cli_line(c), "POSTED");
	cli_send(c, "TIMEOUT 1\r\n");
	CHECK_STR(cli_line(c), "BYE idle");
	CHECK(cli_eof(c));
	cli_close(c);
}

static void test_close_counts(void)
{
	/* Every accepted connection so far was closed by the server side
	 * (the clients are gone). */
	for (int i = 0; i < 50 && atomic_load(&closed_count) != atomic_load(&accepted); i++)
		usleep(50 * 1000);
	CHECK_INT(atomic_load(&closed_count), atomic_load(&accepted));
}

static int connect_unix(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Unix and IPv6 listeners on a second net; a stale socket file (from a
 * killed process) is replaced, and removed again at the end. */
static void test_unix_and_ipv6(void)
{
	char path[108];
	snprintf(path, sizeof(path), "/tmp/loft-test-net-%d.sock", (int)getpid());
	/* A socket file nobody listens on, as kill -9 leaves it. */
	int stale = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	unlink(path);
	CHECK(bind(stale, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	close(stale);

	struct net_settings set = { .io_threads = 1, .worker_threads = 1 };
	struct net *n2;
	char *err;
	CHECK(net_create(&set, &n2, &err) == 0);
	char addr[160];
	const char *lerr = NULL;
	snprintf(addr, sizeof(addr), "unix:%s", path);
	CHECK(net_listen(n2, addr, false, &test_proto, NULL, &lerr) == 0);
	int v6port = free_port();
	snprintf(addr, sizeof(addr), "[::1]:%d", v6port);
	bool have_v6 = net_listen(n2, addr, false, &test_proto, NULL, &lerr) == 0;
	struct net *saved = net;
	pthread_t t;
	net = n2;
	pthread_create(&t, NULL, run_main, NULL);

	struct cli *c = calloc(1, sizeof(*c));
	c->fd = connect_unix(path);
	CHECK(c->fd >= 0);
	CHECK_STR(cli_line(c), "HELLO");
	cli_send(c, "ECHO unix\r\n");
	CHECK_STR(cli_line(c), "unix");
	cli_close(c);

	if (have_v6) {
		c = calloc(1, sizeof(*c));
		c->fd = socket(AF_INET6, SOCK_STREAM, 0);
		struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
		sin6.sin6_addr = in6addr_loopback;
		sin6.sin6_port = htons((uint16_t)v6port);
		CHECK(connect(c->fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0);
		CHECK_STR(cli_line(c), "HELLO");
		cli_close(c);
	}

	net_stop(n2);
	pthread_join(t, NULL);
	net_destroy(&n2);
	net = saved;
	struct stat st;
	CHECK(stat(path, &st) < 0);    /* removed at a clean stop */
}

static void test_addr_check(void)
{
	const char *e;
	CHECK(net_addr_check("127.0.0.1:143", &e) == 0);
	CHECK(net_addr_check("[::1]:143", &e) == 0);
	CHECK(net_addr_check("*:143", &e) == 0);
	CHECK(net_addr_check("unix:/run/x.sock", &e) == 0);
	CHECK(net_addr_check("127.0.0.1", &e) < 0);
	CHECK(net_addr_check("127.0.0.1:0", &e) < 0);
	CHECK(net_addr_check("127.0.0.1:70000", &e) < 0);
	CHECK(net_addr_check("::1:143", &e) < 0);
	CHECK(net_addr_check("mail.example:143", &e) < 0);
	CHECK(net_addr_check("unix:relative", &e) < 0);
}

static void test_per_ip_limit(void)
{
	/* A second net with a limit of 3 connections per address. */
	struct net_settings set = { .io_threads = 1, .worker_threads = 1,
				    .max_conns_per_ip = 3 };
	struct net *n2;
	char *err;
	CHECK(net_create(&set, &n2, &err) == 0);
	port_limited = free_port();
	char addr[64];
	const char *lerr;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port_limited);
	CHECK(net_listen(n2, addr, false, &test_proto, NULL, &lerr) == 0);
	struct net *saved = net;
	pthread_t t;
	net = n2;
	pthread_create(&t, NULL, run_main, NULL);
	struct cli *c[4];
	for (int i = 0; i < 3; i++) {
		c[i] = cli_open(port_limited);
		CHECK_STR(cli_line(c[i]), "HELLO");
	}
	c[3] = cli_open(port_limited);
	CHECK_STR(cli_line(c[3]), "BUSY");
	CHECK(cli_eof(c[3]));
	cli_close(c[3]);
	cli_close(c[0]);
	usleep(100 * 1000);
	c[0] = cli_open(port_limited);
	CHECK_STR(cli_line(c[0]), "HELLO");
	for (int i = 0; i < 3; i++)
		cli_close(c[i]);
	net_stop(n2);
	pthread_join(t, NULL);
	net_destroy(&n2);
	net = saved;
}

/* ---- idle memory ------------------------------------------------------- */

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return kib;
}

static int measure(int n, bool tls)
{
	server_start(0);
	usleep(100 * 1000);
	long before = rss_kib();
	int ready[2];
	if (pipe(ready) < 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
		for (int i = 0; i < n; i++) {
			struct cli *c = cli_open(tls ? port_tls : port_plain);
			if (tls) {
				c->ssl = SSL_new(ctx);
				SSL_set_fd(c->ssl, c->fd);
				if (SSL_connect(c->ssl) != 1)
					_exit(2);
			}
			if (strcmp(cli_line(c), "HELLO") != 0)
				_exit(3);
		}
		if (write(ready[1], "r", 1) != 1)
			_exit(4);
		pause();
		_exit(0);
	}
	char b;
	if (read(ready[0], &b, 1) != 1) {
		fprintf(stderr, "client failed\n");
		return 1;
	}
	usleep(500 * 1000);
	long after = rss_kib();
	printf("%d idle %s connections: RSS %ld KiB -> %ld KiB, "
	       "%.2f KiB per connection\n", n, tls ? "TLS" : "plain",
	       before, after, (double)(after - before) / n);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	server_stop();
	return 0;
}

/* ---- waits ------------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Up to 10 s for the cancel counter to reach n (cancels run on the I/O
 * thread after the client's close arrives). */
static bool cancels_reach(int n)
{
	for (int i = 0; i < 1000 && atomic_load(&cancels) < n; i++)
		usleep(10 * 1000);
	return atomic_load(&cancels) >= n;
}

static void test_wait_delay(void)
{
	struct cli *c = cli_open(port_plain);
	CHECK_STR(cli_line(c), "HELLO");
	double t0 = now_s();
	/* The ECHO is not read while the delayed task waits. */
	cli_send(c, "DELAY 300 a\r\nECHO b\r\n");
	CHECK_STR(cli_line(c), "DELAYING");
	CHECK_STR(cli_line(c), "F a");
	CHECK(now_s() - t0 >= 0.29);
	CHECK_STR(cli_line(c), "b");
	cli_send(c, "WHOLD 100 c\r\nECHO d\r\n");
	CHECK_STR(cli_line(c), "F c");
	CHECK_STR(cli_line(c), "d");
	cli_send(c, "QUIT\r\n");
	CHECK_STR(cli_line(c), "BYE");
	cli_close(c);
}

/* A client that hangs up ends its waits: nothing runs for it later. */
static void test_wait_cancelled_by_hangup(void)
{
	int before = atomic_load(&cancels);
	struct cli *c = cli_open(port_plain);
	CHECK_STR(cli_line(c), "HELLO");
	cli_send(c, "HOLD\r\n");
	CHECK_STR(cli_line(c), "HOLDING");
	cli_close(c);
	c = cli_open(port_tls);
	CHECK(cli_tls(c, 0) == 0);
	CHECK_STR(cli_line(c), "HELLO");
	cli_send(c, "DELAY 600000 z\r\n");
	CHECK_STR(cli_line(c), "DELAYING");
	cli_close(c);
	CHECK(cancels_reach(before + 2));
}

/* A half-closed client (printf ... | nc -N) still gets the answer of a
 * wait made without NET_WAIT_HANGUP_CANCELS, and what follows it. */
static void test_wait_half_close(void)
{
	struct cli *c = cli_open(port_plain);
	CHECK_STR(cli_line(c), "HELLO");
	cli_send(c, "WHOLD 200 half\r\nECHO after\r\n");
	shutdown(c->fd, SHUT_WR);
	CHECK_STR(cli_line(c), "F half");
	CHECK_STR(cli_line(c), "after");
	CHECK(cli_eof(c));
	cli_close(c);
}

/* The idle timeout does not fire while a connection waits. */
static void test_wait_not_idle(void)
{
	struct cli *c = cli_open(port_plain);
	CHECK_STR(cli_line(c), "HELLO");
	cli_send(c, "TIMEOUT 1\r\nDELAY 1500 late\r\n");
	CHECK_STR(cli_line(c), "DELAYING");
	CHECK_STR(cli_line(c), "F late");
	CHECK_STR(cli_line(c), "BYE idle");
	cli_close(c);
}

static void test_banned(void)
{
	atomic_store(&banned, true);
	struct cli *c = cli_open(port_plain);
	CHECK_STR(cli_line(c), "BANNED");
	CHECK(cli_eof(c));
	cli_close(c);
	c = cli_open(port_tls);
	CHECK(cli_tls(c, 0) == 0);
	CHECK_STR(cli_line(c), "BANNED");
	CHECK(cli_eof(c));
	cli_close(c);
	atomic_store(&banned, false);
	c = cli_open(port_plain);
	CHECK_STR(cli_line(c), "HELLO");
	cli_send(c, "REFUSE\r\n");
	CHECK_STR(cli_line(c), "BANNED");
	CHECK(cli_eof(c));
	cli_close(c);
}

/* Stopping the server never waits for a waiting connection: its wait is
 * cancelled. */
/* net_line_take: CRLF and bare LF end lines; a line over max is told once,
 * as soon as it is known, whether it arrives whole or in pieces, and the
 * lines after it are read as usual. */
static void test_line_take(void)
{
	struct evbuffer *in = evbuffer_new();
	struct buf line;
	bool skip = false;

	buf_init(&line, 0);
	evbuffer_add_printf(in, "NOOP\r\nLF only\n\r\npart");
	CHECK_INT(net_line_take(in, 8, &skip, &line), NET_LINE_OK);
	CHECK_STR(line.data, "NOOP");
	CHECK_INT(net_line_take(in, 8, &skip, &line), NET_LINE_OK);
	CHECK_STR(line.data, "LF only");
	CHECK_INT(net_line_take(in, 8, &skip, &line), NET_LINE_OK);
	CHECK_STR(line.data, "");
	CHECK(!net_line_ready(in));
	CHECK_INT(net_line_take(in, 8, &skip, &line), NET_LINE_MORE);
	evbuffer_add_printf(in, "ial\r\n");
	CHECK(net_line_ready(in));
	CHECK_INT(net_line_take(in, 8, &skip, &line), NET_LINE_OK);
	CHECK_STR(line.data, "partial");

	/* too long, whole: told, and the next line is read */
	evbuffer_add_printf(in, "123456789\r\nNEXT\r\n");
	CHECK_INT(net_line_take(in, 8, &skip, &line), NET_LINE_TOO_LONG);
	CHECK(!skip);
	CHECK_INT(net_line_take(in, 8, &skip, &line), NET_LINE_OK);
	CHECK_STR(line.data, "NEXT");

	/* too long, in pieces: told once, at once; what is held stays small */
	evbuffer_add_printf(in, "0123456789");
	CHECK_INT(net_line_take(in, 8, &skip, &line), NET_LINE_TOO_LONG);
	CHECK(skip);
	CHECK_INT(evbuffer_get_length(in), 0);
	evbuffer_add_printf(in, "more and more");
	CHECK_INT(net_line_take(in, 8, &skip, &line), NET_LINE_MORE);
	CHECK_INT(evbuffer_get_length(in), 0);
	evbuffer_add_printf(in, "end\r\nAFTER\r\n");
	CHECK_INT(net_line_take(in, 8, &skip, &line), NET_LINE_OK);
	CHECK_STR(line.data, "AFTER");
	CHECK(!skip);
	CHECK_INT(net_line_take(in, 8, &skip, &line), NET_LINE_MORE);

	/* exactly max is a line */
	evbuffer_add_printf(in, "12345678\r\n");
	CHECK_INT(net_line_take(in, 8, &skip, &line), NET_LINE_OK);
	CHECK_STR(line.data, "12345678");
	buf_free(&line);
	evbuffer_free(in);
}

static void test_wait_at_shutdown(void)
{
	int before = atomic_load(&cancels);
	struct cli *c = cli_open(port_plain);
	CHECK_STR(cli_line(c), "HELLO");
	cli_send(c, "DELAY 600000 z\r\n");
	CHECK_STR(cli_line(c), "DELAYING");
	double t0 = now_s();
	server_stop();
	CHECK(now_s() - t0 < 5);
	CHECK_INT(atomic_load(&cancels), before + 1);
	cli_close(c);
	server_start(0);
}

int main(void)
{
	const char *m = getenv("LOFT_NET_MEASURE");
	if (m != NULL)
		return measure(atoi(m), getenv("LOFT_NET_MEASURE_TLS") != NULL);
	server_start(0);
	static const struct test_case cases[] = {
		{"addr_check", test_addr_check},
		{"pipelining", test_pipelining},
		{"half_close", test_half_close},
		{"many_clients_tasks", test_many_clients_tasks},
		{"stress_order", test_stress_order},
		{"backpressure", test_backpressure},
		{"cork", test_cork},
		{"never_reads_dropped", test_never_reads_dropped},
		{"starttls_discards_injection", test_starttls_discards_injection},
		{"starttls_during_task", test_starttls_during_task},
		{"implicit_tls", test_implicit_tls},
		{"compress", test_compress},
		{"compress_bomb", test_compress_bomb},
		{"compress_drop_under_load", test_compress_drop_under_load},
		{"post_and_timeout", test_post_and_timeout},
		{"close_counts", test_close_counts},
		{"per_ip_limit", test_per_ip_limit},
		{"unix_and_ipv6", test_unix_and_ipv6},
		{"wait_delay", test_wait_delay},
		{"wait_cancelled_by_hangup", test_wait_cancelled_by_hangup},
		{"wait_half_close", test_wait_half_close},
		{"wait_not_idle", test_wait_not_idle},
		{"banned", test_banned},
		{"wait_at_shutdown", test_wait_at_shutdown},
		{"line_take", test_line_take},
		{NULL, NULL},
	};
	int rc = test_main(cases);
	server_stop();
	return rc;
}
