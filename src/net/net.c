/*
 * The net: I/O threads (one event_base each), listeners, the worker pool,
 * the per-address connection counts and shutdown.
 *
 * Listeners accept on I/O thread 0 and hand each socket to the next thread
 * round-robin through that thread's post queue; everything about the
 * connection then happens on its thread (net-conn.c). Workers take
 * connections with queued tasks from one FIFO; a connection is in the FIFO
 * at most once, so its tasks run one at a time and in order.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "buf.h"
#include "log.h"
#include "net-private.h"
#include "net-proxy.h"

/* How often a stopping I/O thread looks whether its goodbyes have gone. */
#define NET_STOP_POLL_MS 20

struct net_ip_count {
	struct net_ip_count *next;
	unsigned count;
	char ip[46];
};

static _Thread_local char net_error_buf[256];

static const char *net_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static const char *net_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(net_error_buf, sizeof(net_error_buf), fmt, ap);
	va_end(ap);
	return net_error_buf;
}

void net_sockaddr_ip(const struct sockaddr *sa, char ip[46])
{
	ip[0] = '\0';
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
			  ip, 46);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		/* A v4-mapped peer on a dual-stack socket counts as IPv4. */
		if (IN6_IS_ADDR_V4MAPPED(a))
			inet_ntop(AF_INET, &a->s6_addr[12], ip, 46);
		else
			inet_ntop(AF_INET6, a, ip, 46);
	} else {
		strcpy(ip, "unix");
	}
}

/* ---- post queues ---------------------------------------------------- */

/* The I/O thread this thread is (set by the thread itself, so there is
 * no window after pthread_create where it does not know). */
static _Thread_local const struct net_thread *net_current_thread;

bool net_on_thread(const struct net_thread *th)
{
	return net_current_thread == th;
}

void net_thread_post(struct net_thread *th, struct net_post *post)
{
	post->next = NULL;
	pthread_mutex_lock(&th->mu);
	if (th->post_tail != NULL)
		th->post_tail->next = post;
	else
		th->post_head = post;
	th->post_tail = post;
	pthread_mutex_unlock(&th->mu);
	/* Thread-safe with evthread locking; wakes the loop if it sleeps. */
	event_active(th->post_ev, EV_READ, 0);
}

/* Ends the loop once every connection is gone, or after the grace time
 * (the rest are dropped by net_destroy). */
static void net_thread_stop_poll(evutil_socket_t fd, short what, void *ctx)
{
	struct net_thread *th = ctx;
	th->stop_polls++;
	if (th->conns == NULL ||
	    th->stop_polls * NET_STOP_POLL_MS >= NET_SHUTDOWN_GRACE_MS) {
		event_base_loopexit(th->base, NULL);
		return;
	}
	struct timeval tv = {0, NET_STOP_POLL_MS * 1000};
	evtimer_add(th->stop_timer, &tv);
}

static void net_thread_shutdown(struct net_thread *th)
{
	/* An idle connection gets the front-end's goodbye, flushed for a
	 * bounded time. Connections with a task running close when it
	 * returns (their TASK_DONE post), or in net_destroy after the
	 * workers stopped. */
	net_proxy_waits_drop(th);
	struct net_conn *conn = th->conns, *next;
	for (; conn != NULL; conn = next) {
		next = conn->next;
		pthread_mutex_lock(&th->net->pool_mu);
		bool busy = conn->task_active;
		pthread_mutex_unlock(&th->net->pool_mu);
		if (!busy && conn->proto->shutdown != NULL &&
		    conn->session != NULL && !atomic_load(&conn->closing)) {
			conn->proto->shutdown(conn->session, conn);
			net_conn_close_io(conn);
			continue;
		}
		atomic_store(&conn->closing, true);
		conn->broken = true;
		if (!busy)
			net_conn_destroy_now(conn);
	}
	if (th->conns == NULL) {
		event_base_loopexit(th->base, NULL);
		return;
	}
	th->stop_timer = evtimer_new(th->base, net_thread_stop_poll, th);
	if (th->stop_timer == NULL) {
		event_base_loopexit(th->base, NULL);
		return;
	}
	struct timeval tv = {0, NET_STOP_POLL_MS * 1000};
	evtimer_add(th->stop_timer, &tv);
}

/* Runs one post; with shutting_down, only releases what it holds. */
static void net_post_run(struct net_thread *th, struct net_post *p,
			 bool shutting_down)
{
	struct net_conn *conn = p->conn;
	switch (p->kind) {
	case NET_POST_ACCEPT:
		if (shutting_down || atomic_load(&th->net->stopping)) {
			close(p->fd);
			if (p->ip_counted) {
				char ip[46];
				net_sockaddr_ip((struct sockaddr *)&p->addr, ip);
				net_ip_release(th->net, ip);
			}
		} else {
			net_conn_accept(th, p);
		}
		break;
	case NET_POST_TASK_DONE:
		if (shutting_down)
			net_conn_destroy_now(conn);
		else
			net_conn_task_done(conn);
		break;
	case NET_POST_USER:
		if (!shutting_down && !conn->closed)
			p->fn(conn->session, conn, p->arg);
		break;
	case NET_POST_CLOSE:
		if (!shutting_down)
			net_conn_close_io(conn);
		break;
	case NET_POST_SHUTDOWN:
		net_thread_shutdown(th);
		break;
	case NET_POST_WAIT_ADD:
		if (shutting_down)
			net_wait_cancel_io(p->wait);
		else
			net_wait_add_io(p->wait);
		break;
	case NET_POST_WAIT_FINISH:
		if (!shutting_down)
			net_wait_finish_io(p->wait, p->delay_ms);
		break;
	}
	if (p->wait != NULL)
		net_wait_unref(&p->wait);
	if (conn != NULL)
		net_conn_unref(&conn);
	free(p);
}

static void net_thread_drain(struct net_thread *th, bool shutting_down)
{
	for (;;) {
		pthread_mutex_lock(&th->mu);
		struct net_post *p = th->post_head;
		th->post_head = th->post_tail = NULL;
		pthread_mutex_unlock(&th->mu);
		if (p == NULL)
			return;
		while (p != NULL) {
			struct net_post *next = p->next;
			net_post_run(th, p, shutting_down);
			p = next;
		}
	}
}

static void net_post_cb(evutil_socket_t fd, short what, void *ctx)
{
	net_thread_drain(ctx, false);
}

/* ---- worker pool ---------------------------------------------------- */

static void *net_worker_main(void *ctx)
{
	struct net *net = ctx;
	pthread_mutex_lock(&net->pool_mu);
	for (;;) {
		while (net->ready_head == NULL && !net->pool_stop)
			pthread_cond_wait(&net->pool_cond, &net->pool_mu);
		struct net_conn *conn = net->ready_head;
		if (conn == NULL)
			break;    /* stopping, and every queued task has run */
		net->ready_head = conn->ready_next;
		if (net->ready_head == NULL)
			net->ready_tail = NULL;
		conn->ready_next = NULL;
		pthread_mutex_unlock(&net->pool_mu);
		net_conn_worker_run(net, conn);
		pthread_mutex_lock(&net->pool_mu);
	}
	pthread_mutex_unlock(&net->pool_mu);
	net_conn_worker_exit();
	return NULL;
}

/* ---- per-address limits -------------------------------------------- */

static unsigned net_ip_hash(const char *ip)
{
	unsigned h = 5381;
	for (; *ip != '\0'; ip++)
		h = h * 33 + (unsigned char)*ip;
	return h % NET_IP_BUCKETS;
}

/* 0 if ip may open one more connection (counted), -1 if over the limit. */
int net_ip_acquire(struct net *net, const char *ip)
{
	unsigned h = net_ip_hash(ip);
	int ret = 0;
	pthread_mutex_lock(&net->ip_mu);
	struct net_ip_count *c = net->ip_table[h];
	while (c != NULL && strcmp(c->ip, ip) != 0)
		c = c->next;
	if (c == NULL) {
		c = xcalloc(1, sizeof(*c));
		snprintf(c->ip, sizeof(c->ip), "%s", ip);
		c->next = net->ip_table[h];
		net->ip_table[h] = c;
	}
	unsigned max = atomic_load_explicit(&net->live.max_conns_per_ip,
					    memory_order_relaxed);
	if (max != 0 && c->count >= max)
		ret = -1;
	else
		c->count++;
	pthread_mutex_unlock(&net->ip_mu);
	return ret;
}

void net_ip_release(struct net *net, const char *ip)
{
	unsigned h = net_ip_hash(ip);
	pthread_mutex_lock(&net->ip_mu);
	struct net_ip_count **pc = &net->ip_table[h];
	while (*pc != NULL && strcmp((*pc)->ip, ip) != 0)
		pc = &(*pc)->next;
	struct net_ip_count *c = *pc;
	if (c != NULL && --c->count == 0) {
		*pc = c->next;
		free(c);
	}
	pthread_mutex_unlock(&net->ip_mu);
}

/* ---- create / destroy ----------------------------------------------- */

static unsigned net_cores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

static void net_stop_cb(evutil_socket_t fd, short what, void *ctx);

static void net_live_set(struct net *net, const struct net_settings *set)
{
	atomic_store(&net->live.max_conns_per_ip, set->max_conns_per_ip);
	atomic_store(&net->live.write_timeout,
		     set->write_timeout ? set->write_timeout : 60);
	atomic_store(&net->live.idle_timeout, set->idle_timeout);
	atomic_store(&net->live.output_high_water,
		     set->output_high_water ? set->output_high_water
					    : 256 * 1024);
}

void net_reload(struct net *net, const struct net_settings *set)
{
	net_live_set(net, set);
}

static int net_threads_init(struct net *net, char **error_r)
{
	net->threads = xcalloc(net->thread_count, sizeof(*net->threads));
	for (unsigned i = 0; i < net->thread_count; i++) {
		struct net_thread *th = &net->threads[i];
		th->net = net;
		th->index = i;
		pthread_mutex_init(&th->mu, NULL);
		th->base = event_base_new();
		if (th->base == NULL) {
			*error_r = xstrdup("event_base_new failed");
			return -1;
		}
		th->post_ev = event_new(th->base, -1, EV_PERSIST, net_post_cb, th);
	}
	if (pipe2(net->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		*error_r = xasprintf("pipe: %s", strerror(errno));
		return -1;
	}
	net->stop_ev = event_new(net->threads[0].base, net->stop_pipe[0],
				 EV_READ | EV_PERSIST, net_stop_cb, net);
	event_add(net->stop_ev, NULL);
	return 0;
}

int net_create(const struct net_settings *set, struct net **net_r,
	       char **error_r)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, (void (*)(void))evthread_use_pthreads);
	/* A peer that resets while we write must not kill the process. */
	signal(SIGPIPE, SIG_IGN);

	struct net *net = xcalloc(1, sizeof(*net));
	net->set = *set;
	net->stop_pipe[0] = net->stop_pipe[1] = -1;
	if (net->set.output_high_water == 0)
		net->set.output_high_water = 256 * 1024;
	if (net->set.write_timeout == 0)
		net->set.write_timeout = 60;
	net->thread_count = set->io_threads ? set->io_threads : net_cores();
	net->worker_count = set->worker_threads ? set->worker_threads
						: 4 * net_cores();
	if (set->worker_threads == 0 && net->worker_count < 8)
		net->worker_count = 8;
	net->set.tls_cert = net->set.tls_key = NULL;
	net_live_set(net, &net->set);
	pthread_mutex_init(&net->tls_mu, NULL);
	pthread_mutex_init(&net->pool_mu, NULL);
	pthread_cond_init(&net->pool_cond, NULL);
	pthread_mutex_init(&net->bp_mu, NULL);
	pthread_cond_init(&net->bp_cond, NULL);
	pthread_mutex_init(&net->ip_mu, NULL);
	net->ip_table = xcalloc(NET_IP_BUCKETS, sizeof(*net->ip_table));
	*net_r = net;

	const char *why;
	if (set->proxy_trusted != NULL &&
	    net_cidr_parse(set->proxy_trusted, &net->proxy_nets,
			   &net->proxy_count, &why) < 0) {
		*error_r = xasprintf("[proxy] trusted: %s", why);
		goto fail;
	}
	net->set.proxy_trusted = NULL;   /* parsed: the string is not kept */
	if (set->tls_cert != NULL && set->tls_key != NULL) {
		net->ssl_ctx = net_tls_ctx_create(set->tls_cert, set->tls_key,
						  error_r);
		if (net->ssl_ctx == NULL)
			goto fail;
		atomic_store(&net->tls_on, true);
	}
	if (net_threads_init(net, error_r) < 0)
		goto fail;
	net->workers = xcalloc(net->worker_count, sizeof(*net->workers));
	for (unsigned i = 0; i < net->worker_count; i++) {
		if (pthread_create(&net->workers[i], NULL, net_worker_main,
				   net) != 0) {
			net->worker_count = i;
			*error_r = xstrdup("cannot start worker threads");
			goto fail;
		}
	}
	return 0;
fail:
	net_destroy(net_r);
	return -1;
}

void net_set_admit(struct net *net, net_admit_fn *admit, void *ctx)
{
	net->admit = admit;
	net->admit_ctx = ctx;
}

bool net_tls_available(const struct net *net)
{
	return atomic_load(&net->tls_on);
}

int net_tls_check(const char *cert, const char *key, char **error_r)
{
	SSL_CTX *ctx = net_tls_ctx_create(cert, key, error_r);
	if (ctx == NULL)
		return -1;
	SSL_CTX_free(ctx);
	return 0;
}

static void net_listener_free(struct net_listener *l)
{
	if (l->ev != NULL)
		evconnlistener_free(l->ev);
	if (l->retry_ev != NULL)
		event_free(l->retry_ev);
	if (l->unix_path != NULL)
		unlink(l->unix_path);
	free(l->unix_path);
	free(l->addr);
	free(l);
}

static void net_listeners_free(struct net *net)
{
	while (net->listeners != NULL) {
		struct net_listener *l = net->listeners;
		net->listeners = l->next;
		net_listener_free(l);
	}
}

void net_destroy(struct net **netp)
{
	struct net *net = *netp;
	if (net == NULL)
		return;
	*netp = NULL;
	atomic_store(&net->stopping, true);
	net_listeners_free(net);

	/* Workers finish every queued task first (their writes fail fast:
	 * the connections are closing), so no task argument is leaked. */
	pthread_mutex_lock(&net->pool_mu);
	net->pool_stop = true;
	pthread_cond_broadcast(&net->pool_cond);
	pthread_mutex_unlock(&net->pool_mu);
	pthread_mutex_lock(&net->bp_mu);
	pthread_cond_broadcast(&net->bp_cond);
	pthread_mutex_unlock(&net->bp_mu);
	for (unsigned i = 0; i < net->worker_count; i++)
		pthread_join(net->workers[i], NULL);
	free(net->workers);

	for (unsigned i = 0; net->threads != NULL && i < net->thread_count; i++) {
		struct net_thread *th = &net->threads[i];
		/* The loops are gone: this thread acts for them now. */
		net_current_thread = th;
		if (th->post_ev != NULL)
			net_thread_drain(th, true);
		net_proxy_waits_drop(th);
		while (th->conns != NULL) {
			struct net_conn *conn = th->conns;
			atomic_store(&conn->closing, true);
			conn->broken = true;
			net_conn_destroy_now(conn);
			net_thread_drain(th, true);
		}
		if (th->post_ev != NULL)
			event_free(th->post_ev);
		if (th->stop_timer != NULL)
			event_free(th->stop_timer);
		if (i == 0 && net->stop_ev != NULL)
			event_free(net->stop_ev);
		if (th->base != NULL)
			event_base_free(th->base);
		pthread_mutex_destroy(&th->mu);
		net_current_thread = NULL;
	}
	free(net->threads);
	free(net->proxy_nets);
	for (int i = 0; i < 2; i++)
		if (net->stop_pipe[i] >= 0)
			close(net->stop_pipe[i]);
	for (unsigned i = 0; i < NET_IP_BUCKETS; i++) {
		while (net->ip_table[i] != NULL) {
			struct net_ip_count *c = net->ip_table[i];
			net->ip_table[i] = c->next;
			free(c);
		}
	}
	free(net->ip_table);
	SSL_CTX_free(net->ssl_ctx);
	pthread_mutex_destroy(&net->tls_mu);
	pthread_mutex_destroy(&net->pool_mu);
	pthread_cond_destroy(&net->pool_cond);
	pthread_mutex_destroy(&net->bp_mu);
	pthread_cond_destroy(&net->bp_cond);
	pthread_mutex_destroy(&net->ip_mu);
	free(net);
}

/* ---- run / stop ----------------------------------------------------- */

static void *net_thread_main(void *ctx)
{
	struct net_thread *th = ctx;
	net_current_thread = th;
	event_base_loop(th->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

int net_run(struct net *net)
{
	struct net_thread *th0 = &net->threads[0];
	net_current_thread = th0;
	for (unsigned i = 1; i < net->thread_count; i++) {
		struct net_thread *th = &net->threads[i];
		if (pthread_create(&th->tid, NULL, net_thread_main, th) != 0) {
			log_error("net", NULL, "cannot start I/O thread");
			net_stop(net);
			break;
		}
		th->started = true;
	}
	event_base_loop(th0->base, EVLOOP_NO_EXIT_ON_EMPTY);
	net_current_thread = NULL;
	for (unsigned i = 1; i < net->thread_count; i++) {
		if (net->threads[i].started)
			pthread_join(net->threads[i].tid, NULL);
	}
	return 0;
}

void net_stop(struct net *net)
{
	/* Async-signal-safe: only a write to the self-pipe. */
	char c = 's';
	ssize_t r = write(net->stop_pipe[1], &c, 1);
	(void)r;
}

static void net_stop_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct net *net = ctx;
	char tmp[16];
	while (read(fd, tmp, sizeof(tmp)) > 0)
		;
	if (atomic_exchange(&net->stopping, true))
		return;
	net_listeners_free(net);
	for (unsigned i = 0; i < net->thread_count; i++) {
		struct net_post *p = xcalloc(1, sizeof(*p));
		p->kind = NET_POST_SHUTDOWN;
		net_thread_post(&net->threads[i], p);
	}
}

/* ---- listeners ------------------------------------------------------ */

/* Parses addr into a sockaddr. "*" means every address (IPv6 dual-stack).
 * Returns 0, or -1 with a static message. */
static int net_addr_parse(const char *addr, struct sockaddr_storage *ss,
			  socklen_t *len_r, const char **error_r)
{
	memset(ss, 0, sizeof(*ss));
	if (strncmp(addr, "unix:", 5) == 0) {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;
		const char *path = addr + 5;
		if (path[0] != '/') {
			*error_r = "unix socket path must be absolute";
			return -1;
		}
		if (strlen(path) >= sizeof(sun->sun_path)) {
			*error_r = "unix socket path too long";
			return -1;
		}
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, path);
		*len_r = sizeof(*sun);
		return 0;
	}
	const char *colon = strrchr(addr, ':');
	if (colon == NULL || colon[1] == '\0') {
		*error_r = "expected HOST:PORT, [IPV6]:PORT or unix:/PATH";
		return -1;
	}
	char *end;
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || errno != 0 || port == 0 || port > 65535 ||
	    colon[1] < '0' || colon[1] > '9') {
		*error_r = "bad port (1-65535)";
		return -1;
	}
	char host[64];
	size_t hlen = (size_t)(colon - addr);
	if (hlen >= sizeof(host)) {
		*error_r = "bad address";
		return -1;
	}
	memcpy(host, addr, hlen);
	host[hlen] = '\0';
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	if (strcmp(host, "*") == 0 || strcmp(host, "[::]") == 0) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_any;
		sin6->sin6_port = htons((uint16_t)port);
		*len_r = sizeof(*sin6);
		return 0;
	}
	if (host[0] == '[') {
		if (hlen < 3 || host[hlen - 1] != ']') {
			*error_r = "bad IPv6 address (use [ADDR]:PORT)";
			return -1;
		}
		host[hlen - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &sin6->sin6_addr) != 1) {
			*error_r = "bad IPv6 address";
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len_r = sizeof(*sin6);
		return 0;
	}
	if (strchr(host, ':') != NULL) {
		*error_r = "IPv6 addresses need brackets: [ADDR]:PORT";
		return -1;
	}
	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
		*error_r = "bad IPv4 address (a numeric address is needed)";
		return -1;
	}
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	*len_r = sizeof(*sin);
	return 0;
}

int net_addr_check(const char *addr, const char **error_r)
{
	struct sockaddr_storage ss;
	socklen_t len;
	return net_addr_parse(addr, &ss, &len, error_r);
}

static void net_accept_cb(struct evconnlistener *ev, evutil_socket_t fd,
			  struct sockaddr *sa, int salen, void *ctx)
{
	struct net_listener *l = ctx;
	struct net *net = l->net;
	char ip[46];
	net_sockaddr_ip(sa, ip);
	/* a trusted proxy's connections count under the client address its
	 * PROXY header gives (net-conn.c), not under the proxy's */
	bool counted = sa->sa_family != AF_UNIX && !net_proxy_trusted(net, sa);
	if (counted && net_ip_acquire(net, ip) < 0) {
		log_warn("net", NULL, "%s: too many connections from %s",
			 l->proto->name, ip);
		const char *reply = l->proto->busy_reply;
		if (reply != NULL && !l->implicit_tls) {
			/* Best effort: a fresh socket's buffer has room. */
			ssize_t w = send(fd, reply, strlen(reply),
					 MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)w;
		}
		close(fd);
		return;
	}
	if (sa->sa_family != AF_UNIX) {
		/* Replies are written in pieces (a status line, then a literal);
		 * with Nagle each piece can wait for the client's delayed ACK,
		 * 40 ms per command on Linux. */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	struct net_post *p = xcalloc(1, sizeof(*p));
	p->kind = NET_POST_ACCEPT;
	p->fd = fd;
	p->listener = l;
	p->ip_counted = counted;
	if (salen > 0 && (size_t)salen <= sizeof(p->addr))
		memcpy(&p->addr, sa, (size_t)salen);
	else
		p->addr.ss_family = AF_UNIX;
	p->addrlen = (socklen_t)salen;
	unsigned i = atomic_fetch_add(&net->next_thread, 1) % net->thread_count;
	net_thread_post(&net->threads[i], p);
}

static void net_retry_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct net_listener *l = ctx;
	evconnlistener_enable(l->ev);
}

static void net_accept_error_cb(struct evconnlistener *ev, void *ctx)
{
	struct net_listener *l = ctx;
	int err = EVUTIL_SOCKET_ERROR();
	log_error("net", NULL, "accept on %s: %s", l->addr, strerror(err));
	/* Out of descriptors: pause this listener for a second instead of
	 * spinning on a socket that stays readable. */
	evconnlistener_disable(ev);
	struct timeval tv = {1, 0};
	event_add(l->retry_ev, &tv);
}

/* Connections the kernel holds for accept(2) on a listener (capped by
 * net.core.somaxconn, 4096 since Linux 5.4). With a full queue the kernel
 * drops a new client's SYN, and the client tries again 1, 2, 4, 8, 16 s
 * later: during a flood of 1,000 guessers' connections (banned, so each
 * reconnects the moment it is refused) a queue of 128 (libevent's, see
 * net_listen_adopt) filled whenever loftd was short of CPU, and an
 * owner's connection waited 1 s or more, once 28.7 s (test_flood). */
#define NET_LISTEN_BACKLOG 4096

/* One bound socket. A Unix socket file is created with unix_mode. "*"
 * (dual-stack IPv6) falls back to IPv4 only where the kernel has no IPv6.
 * Returns the descriptor, or -1 with a message in error_r. */
static int net_bind(const char *addr, struct sockaddr_storage *ss,
		    socklen_t len, unsigned unix_mode, const char **error_r)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 && errno == EAFNOSUPPORT && ss->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)ss)->sin6_addr)) {
		uint16_t port = ((struct sockaddr_in6 *)ss)->sin6_port;
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		memset(ss, 0, sizeof(*ss));
		sin->sin_family = AF_INET;
		sin->sin_port = port;
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		len = sizeof(*sin);
		log_warn("net", NULL, "%s: no IPv6 on this host: listening "
			 "on IPv4 only", addr);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    0);
	}
	if (fd < 0) {
		*error_r = net_error("%s: socket: %s", addr, strerror(errno));
		return -1;
	}
	int one = 1;
	if (ss->ss_family == AF_UNIX) {
		/* A socket file left by a killed loftd: replace it, but never
		 * remove a file that is not a socket. */
		struct stat st;
		const char *path = ((struct sockaddr_un *)ss)->sun_path;
		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(path);
	} else {
		/* A restart right after kill -9 must bind at once. */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ss->ss_family == AF_INET6) {
			/* [::] and * take IPv4 too (one socket); any other
			 * IPv6 address is IPv6 only, so 127.0.0.1:P beside
			 * [::1]:P works (net_addr_overlap follows the same
			 * rule). */
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
			int v6only = !IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
				   sizeof(v6only));
		}
	}
	if (bind(fd, (struct sockaddr *)ss, len) < 0) {
		*error_r = net_error("%s: bind: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}
	if (ss->ss_family == AF_UNIX)
		chmod(((struct sockaddr_un *)ss)->sun_path, unix_mode);
	if (listen(fd, NET_LISTEN_BACKLOG) < 0) {
		*error_r = net_error("%s: listen: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int net_listen_bind(const char *addr, unsigned unix_mode, int *fd_r,
		    const char **error_r)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *err;
	if (net_addr_parse(addr, &ss, &len, &err) < 0) {
		*error_r = net_error("%s: %s", addr, err);
		return -1;
	}
	int fd = net_bind(addr, &ss, len, unix_mode, error_r);
	if (fd < 0)
		return -1;
	*fd_r = fd;
	return 0;
}

/* Adopts a listening descriptor; unix_path (or NULL) is unlinked when the
 * listener goes. */
static int net_listen_adopt(struct net *net, int fd, const char *addr,
			    const char *unix_path, bool implicit_tls,
			    const struct net_proto *proto, void *proto_ctx,
			    const char **error_r)
{
	if (implicit_tls && !net_tls_available(net)) {
		*error_r = net_error("%s: TLS is not configured ([tls] cert, key)", addr);
		return -1;
	}
	struct net_listener *l = xcalloc(1, sizeof(*l));
	l->net = net;
	l->addr = xstrdup(addr);
	if (unix_path != NULL)
		l->unix_path = xstrdup(unix_path);
	l->implicit_tls = implicit_tls;
	l->proto = proto;
	l->proto_ctx = proto_ctx;
	/* backlog 0: fd listens already (net_bind); -1 would make libevent
	 * listen again with 128 */
	l->ev = evconnlistener_new(net->threads[0].base, net_accept_cb, l,
				   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
				   0, fd);
	if (l->ev == NULL) {
		net_listener_free(l);
		*error_r = net_error("%s: cannot listen", addr);
		return -1;
	}
	evconnlistener_set_error_cb(l->ev, net_accept_error_cb);
	l->retry_ev = evtimer_new(net->threads[0].base, net_retry_cb, l);
	l->next = net->listeners;
	net->listeners = l;
	log_info("net", NULL, "%s listening on %s%s", proto->name, addr,
		 implicit_tls ? " (TLS)" : "");
	return 0;
}

int net_listen_fd(struct net *net, int fd, const char *addr,
		  bool implicit_tls, const struct net_proto *proto,
		  void *proto_ctx, const char **error_r)
{
	return net_listen_adopt(net, fd, addr, NULL, implicit_tls, proto,
				proto_ctx, error_r);
}

int net_listen(struct net *net, const char *addr, bool implicit_tls,
	       const struct net_proto *proto, void *proto_ctx,
	       const char **error_r)
{
	if (implicit_tls && !net_tls_available(net)) {
		*error_r = net_error("%s: TLS is not configured ([tls] cert, key)", addr);
		return -1;
	}
	int fd;
	if (net_listen_bind(addr, 0666, &fd, error_r) < 0)
		return -1;
	const char *path = strncmp(addr, "unix:", 5) == 0 ? addr + 5 : NULL;
	if (net_listen_adopt(net, fd, addr, path, implicit_tls, proto,
			     proto_ctx, error_r) < 0) {
		close(fd);
		if (path != NULL)
			unlink(path);
		return -1;
	}
	return 0;
}

/* ---- overlapping listen addresses ------------------------------------ */

enum net_addr_kind { NET_ADDR_UNIX, NET_ADDR_V4, NET_ADDR_V6, NET_ADDR_DUAL };

static enum net_addr_kind net_addr_kind(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_UNIX)
		return NET_ADDR_UNIX;
	if (ss->ss_family == AF_INET)
		return NET_ADDR_V4;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
	return IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr) ? NET_ADDR_DUAL
							 : NET_ADDR_V6;
}

bool net_addr_overlap(const char *a, const char *b)
{
	struct sockaddr_storage sa, sb;
	socklen_t la, lb;
	const char *err;
	if (net_addr_parse(a, &sa, &la, &err) < 0 ||
	    net_addr_parse(b, &sb, &lb, &err) < 0)
		return false;
	enum net_addr_kind ka = net_addr_kind(&sa), kb = net_addr_kind(&sb);
	if (ka == NET_ADDR_UNIX || kb == NET_ADDR_UNIX)
		return ka == kb &&
		       strcmp(((struct sockaddr_un *)&sa)->sun_path,
			      ((struct sockaddr_un *)&sb)->sun_path) == 0;
	uint16_t pa = ka == NET_ADDR_V4 ? ((struct sockaddr_in *)&sa)->sin_port
					: ((struct sockaddr_in6 *)&sa)->sin6_port;
	uint16_t pb = kb == NET_ADDR_V4 ? ((struct sockaddr_in *)&sb)->sin_port
					: ((struct sockaddr_in6 *)&sb)->sin6_port;
	if (pa != pb)
		return false;
	/* A dual-stack socket takes every address of both families. */
	if (ka == NET_ADDR_DUAL || kb == NET_ADDR_DUAL)
		return true;
	if (ka != kb)
		return false;    /* IPv4 beside IPv6-only */
	if (ka == NET_ADDR_V4) {
		in_addr_t x = ((struct sockaddr_in *)&sa)->sin_addr.s_addr;
		in_addr_t y = ((struct sockaddr_in *)&sb)->sin_addr.s_addr;
		return x == y || x == htonl(INADDR_ANY) ||
		       y == htonl(INADDR_ANY);
	}
	return memcmp(&((struct sockaddr_in6 *)&sa)->sin6_addr,
		      &((struct sockaddr_in6 *)&sb)->sin6_addr,
		      sizeof(struct in6_addr)) == 0;
}
