/*
 * Tests of the HTTP server (src/http) with routes of its own, run by a
 * real net loop on a loopback port: streamed uploads (pieces, cut half
 * way, refused in begin() before 100-continue), chunked gzip responses,
 * long-lived streams written from another thread (keep-alive after the
 * end, a client that never reads is dropped, a client that leaves is
 * noticed, ticks), and Content-Disposition for hostile names.
 *
 * LOFT_HTTP_MEASURE=N (LOFT_HTTP_MEASURE_TLS=1 for HTTPS) instead opens N
 * idle event streams from a child process and prints the server's memory
 * per stream (bench/ quotes it).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <zlib.h>

#include "buf.h"
#include "config.h"
#include "http.h"
#include "net.h"
#include "test.h"

static struct net *net;
static struct http_server *server;
static pthread_t run_thread;
static int port, port_tls;
static char cert_path[256], key_path[256];

/* ---- routes ------------------------------------------------------------ */

struct upload {
	uint64_t bytes;
	size_t max_piece;
	uint32_t crc;
};

static atomic_int cleanups_complete, cleanups_cut, begins;

static int up_begin(struct http_request *req, struct http_response *resp,
		    void *ctx)
{
	atomic_fetch_add(&begins, 1);
	const char *refuse = http_request_header(req, "x-refuse");
	if (refuse != NULL) {
		http_response_error(resp, 413, "refused in begin");
		return -1;
	}
	struct upload *u = calloc(1, sizeof(*u));
	u->crc = (uint32_t)crc32(0, NULL, 0);
	http_request_set_data(req, u);
	return 0;
}

static int up_body(struct http_request *req, struct http_response *resp,
		   const void *data, size_t len, void *ctx)
{
	struct upload *u = http_request_data(req);
	u->bytes += len;
	if (len > u->max_piece)
		u->max_piece = len;
	u->crc = (uint32_t)crc32(u->crc, data, (uInt)len);
	return 0;
}

static void up_handle(struct http_request *req, struct http_response *resp,
		      void *ctx)
{
	struct upload *u = http_request_data(req);
	char out[128];
	int n = snprintf(out, sizeof(out), "%llu %zu %08x",
			 (unsigned long long)u->bytes, u->max_piece, u->crc);
	http_response_content_type(resp, "text/plain");
	http_response_send(resp, out, (size_t)n);
}

static void up_cleanup(struct http_request *req, bool complete, void *ctx)
{
	free(http_request_data(req));
	atomic_fetch_add(complete ? &cleanups_complete : &cleanups_cut, 1);
}

static void big_handle(struct http_request *req, struct http_response *resp,
		       void *ctx)
{
	http_response_content_type(resp, "text/plain");
	for (int i = 0; i < 2000; i++)
		if (http_response_printf(resp, "line %d of a long answer\n", i) < 0)
			return;
	http_response_end(resp);
}

/* Streams: the handler opens one; a thread writes to it. */
struct stream_ctx {
	struct http_stream *s;
	atomic_int closed;
	atomic_int ticks;
};
#define MAX_OPENED 4096
static struct stream_ctx *opened[MAX_OPENED];
static size_t opened_head, opened_tail;
static pthread_mutex_t stream_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stream_cond = PTHREAD_COND_INITIALIZER;
static atomic_int streams_open, streams_closed;

static void st_tick(struct http_stream *s, void *ctx)
{
	struct stream_ctx *c = ctx;
	atomic_fetch_add(&c->ticks, 1);
	http_stream_write(s, ": ping\n\n", 8);
}

static void st_closed(struct http_stream *s, void *ctx)
{
	struct stream_ctx *c = ctx;
	atomic_store(&c->closed, 1);
	atomic_fetch_add(&streams_closed, 1);
}

static void stream_handle(struct http_request *req, struct http_response *resp,
			  void *ctx)
{
	struct stream_ctx *c = calloc(1, sizeof(*c));
	char *tick = http_query_param(req, "tick");
	struct http_stream_hooks hooks = {
		.tick = st_tick,
		.tick_secs = tick ? (unsigned)atoi(tick) : 0,
		.closed = st_closed,
		.max_unread = 16384,
	};
	free(tick);
	http_response_content_type(resp, "text/event-stream");
	c->s = http_response_stream(resp, &hooks, c);
	/* Written before the handler returns: must arrive after the head. */
	http_stream_write(c->s, "event: hello\ndata: {}\n\n", 23);
	atomic_fetch_add(&streams_open, 1);
	pthread_mutex_lock(&stream_mu);
	opened[opened_tail++ % MAX_OPENED] = c;
	pthread_cond_broadcast(&stream_cond);
	pthread_mutex_unlock(&stream_mu);
}

static struct stream_ctx *wait_stream(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&stream_mu);
	while (opened_head == opened_tail &&
	       pthread_cond_timedwait(&stream_cond, &stream_mu, &ts) == 0)
		;
	struct stream_ctx *c = NULL;
	if (opened_head != opened_tail)
		c = opened[opened_head++ % MAX_OPENED];
	pthread_mutex_unlock(&stream_mu);
	return c;
}

static void add_routes(struct http_server *srv)
{
	static const struct http_route up = {
		.method = "POST", .prefix = "/up", .max_body = 8 << 20,
		.begin = up_begin, .body = up_body, .handle = up_handle,
		.cleanup = up_cleanup,
	};
	static const struct http_route big = {
		.method = "GET", .prefix = "/big", .handle = big_handle,
	};
	static const struct http_route stream = {
		.method = "GET", .prefix = "/stream", .handle = stream_handle,
		.flags = HTTP_ROUTE_NO_COMPRESS,
	};
	CHECK(http_route_add(srv, &up, NULL) == 0);
	CHECK(http_route_add(srv, &big, NULL) == 0);
	CHECK(http_route_add(srv, &stream, NULL) == 0);
	CHECK(http_route_add(srv, &stream, NULL) == -1);
}

/* ---- the server --------------------------------------------------------- */

static void *run_main(void *arg)
{
	net_run(net);
	return NULL;
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(fd, (struct sockaddr *)&sin, &len);
	close(fd);
	return ntohs(sin.sin_port);
}

static void make_cert(void)
{
	char dir[] = "/tmp/loft-http-test-XXXXXX";
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey rsa:2048 -nodes "
		 "-days 2 -subj /CN=localhost -keyout %s -out %s "
		 ">/dev/null 2>&1", key_path, cert_path);
	if (system(cmd) != 0)
		abort();
}

static void server_start(void)
{
	make_cert();
	struct net_settings set = {
		.io_threads = 2, .worker_threads = 2,
		.tls_cert = cert_path, .tls_key = key_path,
		.output_high_water = 64 * 1024, .write_timeout = 3,
	};
	char *err = NULL;
	if (net_create(&set, &net, &err) < 0) {
		fprintf(stderr, "net_create: %s\n", err);
		abort();
	}
	const char *text = "hostname = mail.example.test\n"
		"[http]\nwebmail = no\nbody_timeout = 2s\n";
	struct config *cfg;
	struct buf errors;
	buf_init(&errors, 0);
	CHECK(config_parse("test.conf", text, strlen(text), &cfg, &errors) == 0);
	server = http_server_create(cfg, NULL, NULL, NULL, 0, &errors);
	if (server == NULL) {
		fprintf(stderr, "%s", errors.data);
		abort();
	}
	config_free(&cfg);
	buf_free(&errors);
	add_routes(server);
	char addr[64];
	const char *lerr;
	port = free_port();
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	CHECK(net_listen(net, addr, false, &http_proto, server, &lerr) == 0);
	port_tls = free_port();
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port_tls);
	CHECK(net_listen(net, addr, true, &http_proto, server, &lerr) == 0);
	pthread_create(&run_thread, NULL, run_main, NULL);
}

static void server_stop(void)
{
	net_stop(net);
	pthread_join(run_thread, NULL);
	net_destroy(&net);
	http_server_destroy(&server);
	unlink(cert_path);
	unlink(key_path);
	*strrchr(cert_path, '/') = '\0';
	rmdir(cert_path);
}

/* ---- a blocking client --------------------------------------------------- */

static int cli_open(int p)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)p),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		abort();
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void cli_send(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

/* Reads until "needle" has been seen (or EOF/timeout); returns all read. */
static char *cli_until(int fd, const char *needle, size_t *len_r)
{
	struct buf b;
	buf_init(&b, 0);
	char tmp[65536];
	while (b.data == NULL || memmem(b.data, b.len, needle, strlen(needle)) == NULL) {
		ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
		if (n <= 0)
			break;
		buf_append(&b, tmp, (size_t)n);
	}
	buf_append(&b, "", 0);
	if (len_r != NULL)
		*len_r = b.len;
	return buf_steal(&b, NULL);
}

static bool wait_for(atomic_int *v, int want, int secs)
{
	for (int i = 0; i < secs * 100; i++) {
		if (atomic_load(v) >= want)
			return true;
		usleep(10000);
	}
	return false;
}

/* ---- tests --------------------------------------------------------------- */

static void test_upload_chunked(void)
{
	int fd = cli_open(port);
	const char *head = "POST /up HTTP/1.1\r\nHost: a\r\n"
		"Transfer-Encoding: chunked\r\n\r\n";
	cli_send(fd, head, strlen(head));
	uint32_t crc = (uint32_t)crc32(0, NULL, 0);
	char data[7000];
	uint64_t total = 0;
	for (int i = 0; i < 300; i++) {
		size_t n = (size_t)(i * 37 % 6999) + 1;
		memset(data, 'a' + i % 26, n);
		crc = (uint32_t)crc32(crc, (const Bytef *)data, (uInt)n);
		char sz[32];
		int l = snprintf(sz, sizeof(sz), "%zx\r\n", n);
		cli_send(fd, sz, (size_t)l);
		cli_send(fd, data, n);
		cli_send(fd, "\r\n", 2);
		total += n;
	}
	cli_send(fd, "0\r\n\r\n", 5);
	char *resp = cli_until(fd, "\r\n\r\n", NULL);
	char *body = strstr(resp, "\r\n\r\n");
	CHECK(strncmp(resp, "HTTP/1.1 200", 12) == 0);
	unsigned long long got;
	size_t piece;
	unsigned gcrc;
	if (body == NULL || strlen(body + 4) == 0) {
		free(resp);
		resp = cli_until(fd, "\n", NULL);
		body = resp - 4;
	}
	CHECK(sscanf(body + 4, "%llu %zu %x", &got, &piece, &gcrc) == 3);
	CHECK_INT(got, total);
	CHECK(piece <= 64 * 1024);
	CHECK_INT(gcrc, crc);
	free(resp);
	close(fd);
	CHECK(wait_for(&cleanups_complete, 1, 5));
}

static void test_upload_cut(void)
{
	int before = atomic_load(&cleanups_cut);
	int fd = cli_open(port);
	const char *head = "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: "
		"1000000\r\n\r\n";
	cli_send(fd, head, strlen(head));
	char data[100000];
	memset(data, 'z', sizeof(data));
	for (int i = 0; i < 3; i++)
		cli_send(fd, data, sizeof(data));
	usleep(200000);
	close(fd);
	CHECK(wait_for(&cleanups_cut, before + 1, 5));
}

static void test_upload_refused_before_continue(void)
{
	int fd = cli_open(port);
	const char *head = "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: "
		"5000000\r\nExpect: 100-continue\r\nX-Refuse: 1\r\n\r\n";
	cli_send(fd, head, strlen(head));
	char *resp = cli_until(fd, "refused in begin", NULL);
	CHECK(strncmp(resp, "HTTP/1.1 413", 12) == 0);
	CHECK(strstr(resp, "100 Continue") == NULL);
	CHECK(strstr(resp, "Connection: close") != NULL);
	free(resp);
	close(fd);
	/* Over max_body: 413 before begin() runs. */
	int b = atomic_load(&begins);
	fd = cli_open(port);
	head = "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n";
	cli_send(fd, head, strlen(head));
	resp = cli_until(fd, "\r\n\r\n", NULL);
	CHECK(strncmp(resp, "HTTP/1.1 413", 12) == 0);
	CHECK_INT(atomic_load(&begins), b);
	free(resp);
	close(fd);
	/* Accepted: 100 Continue comes first. */
	fd = cli_open(port);
	head = "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
		"Expect: 100-continue\r\n\r\n";
	cli_send(fd, head, strlen(head));
	resp = cli_until(fd, "100 Continue\r\n\r\n", NULL);
	CHECK(strncmp(resp, "HTTP/1.1 100 Continue", 21) == 0);
	free(resp);
	cli_send(fd, "abc", 3);
	resp = cli_until(fd, "\r\n\r\n3 3", NULL);
	CHECK(strstr(resp, "HTTP/1.1 200") != NULL);
	free(resp);
	close(fd);
}

static void test_chunked_gzip_response(void)
{
	int fd = cli_open(port);
	const char *req = "GET /big HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip"
		"\r\n\r\n";
	cli_send(fd, req, strlen(req));
	size_t len;
	char *resp = cli_until(fd, "\r\n0\r\n\r\n", &len);
	CHECK(strstr(resp, "Transfer-Encoding: chunked") != NULL);
	CHECK(strstr(resp, "Content-Encoding: gzip") != NULL);
	/* De-chunk, then gunzip. */
	char *p = strstr(resp, "\r\n\r\n") + 4;
	struct buf gz;
	buf_init(&gz, 0);
	for (;;) {
		unsigned long n = strtoul(p, &p, 16);
		p += 2;
		if (n == 0)
			break;
		buf_append(&gz, p, n);
		p += n + 2;
	}
	z_stream z;
	memset(&z, 0, sizeof(z));
	inflateInit2(&z, 15 + 16);
	static char plain[200000];
	z.next_in = (Bytef *)gz.data;
	z.avail_in = (uInt)gz.len;
	z.next_out = (Bytef *)plain;
	z.avail_out = sizeof(plain);
	CHECK_INT(inflate(&z, Z_FINISH), Z_STREAM_END);
	size_t plen = sizeof(plain) - z.avail_out;
	inflateEnd(&z);
	CHECK(plen > 40000);
	CHECK(memcmp(plain, "line 0 of a long answer\n", 24) == 0);
	CHECK(strstr(plain, "line 1999 of a long answer\n") != NULL);
	buf_free(&gz);
	free(resp);
	close(fd);
}

static void test_stream_then_keepalive(void)
{
	int fd = cli_open(port);
	const char *req = "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n";
	cli_send(fd, req, strlen(req));
	struct stream_ctx *c = wait_stream();
	CHECK(c != NULL);
	if (c == NULL)
		return;
	char *resp = cli_until(fd, "data: {}\n\n", NULL);
	CHECK(strstr(resp, "Content-Type: text/event-stream") != NULL);
	CHECK(strstr(resp, "X-Accel-Buffering: no") != NULL);
	CHECK(strstr(resp, "Content-Encoding") == NULL);
	CHECK(strstr(resp, "event: hello") > strstr(resp, "\r\n\r\n"));
	free(resp);
	/* Written from this (another) thread. */
	CHECK(http_stream_write(c->s, "data: 1\n\n", 9) == 0);
	resp = cli_until(fd, "data: 1\n\n", NULL);
	CHECK(strstr(resp, "data: 1") != NULL);
	free(resp);
	http_stream_end(c->s);
	resp = cli_until(fd, "0\r\n\r\n", NULL);
	CHECK(strstr(resp, "0\r\n\r\n") != NULL);
	free(resp);
	CHECK(wait_for(&c->closed, 1, 5));
	CHECK(http_stream_write(c->s, "x", 1) == -1);
	/* The connection goes on. */
	req = "GET /big HTTP/1.1\r\nHost: a\r\n\r\n";
	cli_send(fd, req, strlen(req));
	resp = cli_until(fd, "line 1999", NULL);
	CHECK(strstr(resp, "HTTP/1.1 200") != NULL);
	free(resp);
	http_stream_unref(&c->s);
	free(c);
	close(fd);
}

static void test_stream_never_reads(void)
{
	int fd = cli_open(port);
	int small = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	const char *req = "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n";
	cli_send(fd, req, strlen(req));
	struct stream_ctx *c = wait_stream();
	CHECK(c != NULL);
	if (c == NULL)
		return;
	char event[1024];
	memset(event, 'e', sizeof(event));
	int rc = 0, writes = 0;
	for (int i = 0; i < 20000 && rc == 0 && !atomic_load(&c->closed); i++) {
		rc = http_stream_write(c->s, event, sizeof(event));
		writes++;
		if (i % 64 == 0)
			usleep(1000);
	}
	/* Dropped well before 20 MB were queued. */
	CHECK(wait_for(&c->closed, 1, 10));
	CHECK(writes < 20000);
	CHECK(http_stream_write(c->s, event, 10) == -1);
	http_stream_unref(&c->s);
	free(c);
	close(fd);
}

static void test_stream_client_leaves(void)
{
	int fd = cli_open(port);
	const char *req = "GET /stream?tick=1 HTTP/1.1\r\nHost: a\r\n\r\n";
	cli_send(fd, req, strlen(req));
	struct stream_ctx *c = wait_stream();
	CHECK(c != NULL);
	if (c == NULL)
		return;
	char *resp = cli_until(fd, ": ping", NULL);
	CHECK(strstr(resp, ": ping") != NULL);
	free(resp);
	CHECK(atomic_load(&c->ticks) >= 1);
	close(fd);
	CHECK(wait_for(&c->closed, 1, 5));
	http_stream_unref(&c->s);
	free(c);
}

static void test_stream_tls(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int fd = cli_open(port_tls);
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	CHECK(SSL_connect(ssl) == 1);
	const char *req = "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n";
	SSL_write(ssl, req, (int)strlen(req));
	struct stream_ctx *c = wait_stream();
	CHECK(c != NULL);
	if (c != NULL) {
		http_stream_write(c->s, "data: tls\n\n", 11);
		char buf[4096];
		size_t got = 0;
		while (got < sizeof(buf) - 1) {
			int n = SSL_read(ssl, buf + got, (int)(sizeof(buf) - 1 - got));
			if (n <= 0)
				break;
			got += (size_t)n;
			buf[got] = '\0';
			if (strstr(buf, "data: tls") != NULL)
				break;
		}
		CHECK(strstr(buf, "data: tls") != NULL);
		http_stream_end(c->s);
		CHECK(wait_for(&c->closed, 1, 5));
		http_stream_unref(&c->s);
		free(c);
	}
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
}

/* 1,000 streams at once, each written from this thread (as the change
 * hub would), each client gets its event; then they all leave. */
static void test_many_streams(void)
{
	enum { N = 1000 };
	static int fds[N];
	static struct stream_ctx *ctx[N];
	int closed_before = atomic_load(&streams_closed);
	const char *req = "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n";
	for (int i = 0; i < N; i++) {
		fds[i] = cli_open(port);
		cli_send(fds[i], req, strlen(req));
	}
	int got = 0;
	for (int i = 0; i < N; i++) {
		ctx[i] = wait_stream();
		got += ctx[i] != NULL;
	}
	CHECK_INT(got, N);
	for (int i = 0; i < N; i++)
		if (ctx[i] != NULL)
			CHECK(http_stream_write(ctx[i]->s, "data: all\n\n", 11) == 0);
	int ok = 0;
	for (int i = 0; i < N; i++) {
		char *resp = cli_until(fds[i], "data: all", NULL);
		ok += strstr(resp, "data: all") != NULL;
		free(resp);
	}
	CHECK_INT(ok, N);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	CHECK(wait_for(&streams_closed, closed_before + N, 20));
	for (int i = 0; i < N; i++) {
		if (ctx[i] == NULL)
			continue;
		CHECK(atomic_load(&ctx[i]->closed));
		http_stream_unref(&ctx[i]->s);
		free(ctx[i]);
	}
}

static void test_content_disposition(void)
{
	static const struct {
		const char *name, *want;
	} cases[] = {
		{"report.pdf", "attachment; filename=\"report.pdf\""},
		{"../../etc/passwd", "attachment; filename=\"_._.._etc_passwd\"; "
		 "filename*=UTF-8''_._.._etc_passwd"},
		{"a\r\nSet-Cookie: x", "attachment; filename=\"a__Set-Cookie_ x\"; "
		 "filename*=UTF-8''a__Set-Cookie_%20x"},
		{"say \"hi\".txt", "attachment; filename=\"say _hi_.txt\"; "
		 "filename*=UTF-8''say%20_hi_.txt"},
		{"r\xc3\xa9sum\xc3\xa9.doc", "attachment; filename=\"r_sum_.doc\"; "
		 "filename*=UTF-8''r%C3%A9sum%C3%A9.doc"},
		{"evil\xe2\x80\xaegpj.exe", "attachment; filename=\"evil_gpj.exe\"; "
		 "filename*=UTF-8''evil_gpj.exe"},
		{"\xff\xfe", "attachment; filename=\"__\"; filename*=UTF-8''__"},
		{"..", "attachment; filename=\"download\""},
		{"", "attachment; filename=\"download\""},
		{".bashrc", "attachment; filename=\"_bashrc\""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;
		buf_init(&b, 0);
		http_content_disposition(&b, "attachment", cases[i].name);
		CHECK_STR(b.data, cases[i].want);
		for (size_t k = 0; k < b.len; k++)
			CHECK((unsigned char)b.data[k] >= 0x20 &&
			      (unsigned char)b.data[k] < 0x7f);
		buf_free(&b);
	}
}

/* ---- idle stream memory ------------------------------------------------ */

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
	struct rlimit rl = {(rlim_t)n + 256, (rlim_t)n + 256};
	setrlimit(RLIMIT_NOFILE, &rl);
	server_start();
	usleep(100 * 1000);
	long before = rss_kib();
	int ready[2];
	if (pipe(ready) < 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
		const char *req = "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n";
		char buf[4096];
		for (int i = 0; i < n; i++) {
			int fd = cli_open(tls ? port_tls : port);
			if (tls) {
				SSL *ssl = SSL_new(ctx);
				SSL_set_fd(ssl, fd);
				if (SSL_connect(ssl) != 1)
					_exit(2);
				SSL_write(ssl, req, (int)strlen(req));
				int got = 0, r;
				while ((r = SSL_read(ssl, buf + got,
						     (int)sizeof(buf) - 1 - got)) > 0) {
					got += r;
					buf[got] = '\0';
					if (strstr(buf, "data: {}"))
						break;
				}
			} else {
				cli_send(fd, req, strlen(req));
				free(cli_until(fd, "data: {}", NULL));
			}
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
	printf("%d idle %s event streams: RSS %ld KiB -> %ld KiB, %.2f KiB "
	       "per stream (%d open)\n", n, tls ? "TLS" : "plain", before, after,
	       (double)(after - before) / n, atomic_load(&streams_open));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	server_stop();
	return 0;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const char *m = getenv("LOFT_HTTP_MEASURE");
	if (m != NULL)
		return measure(atoi(m), getenv("LOFT_HTTP_MEASURE_TLS") != NULL);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	server_start();
	static const struct test_case cases[] = {
		{"upload_chunked", test_upload_chunked},
		{"upload_cut", test_upload_cut},
		{"upload_refused_before_continue",
		 test_upload_refused_before_continue},
		{"chunked_gzip_response", test_chunked_gzip_response},
		{"stream_then_keepalive", test_stream_then_keepalive},
		{"stream_never_reads", test_stream_never_reads},
		{"stream_client_leaves", test_stream_client_leaves},
		{"stream_tls", test_stream_tls},
		{"many_streams", test_many_streams},
		{"content_disposition", test_content_disposition},
		{NULL, NULL},
	};
	int rc = test_main(cases);
	server_stop();
	return rc;
}
