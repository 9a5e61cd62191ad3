/*
 * Connections: the bufferevent stack of one client (socket or TLS socket,
 * with a deflate filter on top after COMPRESS), its tasks on the worker
 * pool, writes with back-pressure, STARTTLS, idle timeouts and closing.
 *
 * Life cycle: the I/O thread holds one reference from accept until
 * net_conn_destroy_now (which calls proto->closed); a queued or running
 * task holds one, and so does every post in a thread's queue. A connection
 * is destroyed only on its I/O thread and only while no task is active, so
 * a worker never sees its bufferevent freed, and proto->closed never runs
 * beside a task.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "net-private.h"
#include "net-proxy.h"

/* Callbacks are deferred to the I/O thread's loop. A socket's run with its
 * lock held; so libevent's filter callbacks (COMPRESS) lock the socket's
 * bufferevent before the filter's, and the filter's own callbacks (ours)
 * run unlocked so that our code can take them in the same order (see
 * conn_lock_under). */
#define NET_BEV_OPTS \
	(BEV_OPT_CLOSE_ON_FREE | BEV_OPT_THREADSAFE | BEV_OPT_DEFER_CALLBACKS)
#define NET_FILTER_OPTS (NET_BEV_OPTS | BEV_OPT_UNLOCK_CALLBACKS)
/* How often a closing connection whose output sits below a filter is
 * checked for being flushed, and how often a writer under back-pressure
 * re-checks (a write callback wakes it sooner). */
#define NET_POLL_MS 20

/* The connection whose task this worker thread runs (back-pressure may
 * only block there). */
static _Thread_local struct net_conn *net_task_conn;
/* The output that task has written, held back (net_proto.cork) until
 * cork_flush: one buffer per worker thread, kept between tasks. */
static _Thread_local struct buf net_task_cork;

static void conn_readcb(struct bufferevent *bev, void *ctx);
static void conn_writecb(struct bufferevent *bev, void *ctx);
static void conn_eventcb(struct bufferevent *bev, short what, void *ctx);
static void conn_progress(struct net_conn *conn);
static int cork_flush(struct net_conn *conn);

/* ---- references ----------------------------------------------------- */

void net_conn_ref(struct net_conn *conn)
{
	atomic_fetch_add(&conn->refs, 1);
}

void net_conn_unref(struct net_conn **connp)
{
	struct net_conn *conn = *connp;
	*connp = NULL;
	if (conn == NULL || atomic_fetch_sub(&conn->refs, 1) != 1)
		return;
	free(conn);
}

/* ---- helpers -------------------------------------------------------- */

static bool conn_task_active(struct net_conn *conn)
{
	pthread_mutex_lock(&conn->net->pool_mu);
	bool active = conn->task_active;
	pthread_mutex_unlock(&conn->net->pool_mu);
	return active;
}

/* The idle (read) timeout goes on the top of the stack, the write timeout
 * on the socket's own bufferevent: a filter's write timeout is not
 * cancelled when its output drains (libevent 2.1), so it would drop
 * clients that read everything. */
/* libevent 2.1 gives a filter (COMPRESS) its own lock and its callbacks
 * lock the socket's bufferevent before the filter; so must every caller
 * that reaches the socket through the filter, or a worker writing to a
 * compressed connection deadlocks with the I/O thread. */
static struct bufferevent *conn_lock_under(struct net_conn *conn)
{
	struct bufferevent *under = bufferevent_get_underlying(conn->bev);
	if (under != NULL)
		bufferevent_lock(under);
	return under;
}

static void conn_unlock_under(struct bufferevent *under)
{
	if (under != NULL)
		bufferevent_unlock(under);
}

static void conn_enable(struct net_conn *conn, short what)
{
	struct bufferevent *under = conn_lock_under(conn);
	bufferevent_enable(conn->bev, what);
	conn_unlock_under(under);
}

static void conn_disable(struct net_conn *conn, short what)
{
	struct bufferevent *under = conn_lock_under(conn);
	bufferevent_disable(conn->bev, what);
	conn_unlock_under(under);
}

static void conn_apply_timeouts(struct net_conn *conn)
{
	struct timeval rtv = {(time_t)conn->idle_timeout, 0};
	struct timeval wtv = {(time_t)conn->write_timeout, 0};
	struct bufferevent *bottom = conn->bev, *u;
	while ((u = bufferevent_get_underlying(bottom)) != NULL)
		bottom = u;
	if (bottom == conn->bev) {
		bufferevent_set_timeouts(conn->bev,
					 conn->idle_timeout ? &rtv : NULL, &wtv);
		return;
	}
	bufferevent_set_timeouts(conn->bev, conn->idle_timeout ? &rtv : NULL,
				 NULL);
	bufferevent_set_timeouts(bottom, NULL, &wtv);
}

static void conn_setup_bev(struct net_conn *conn)
{
	bufferevent_setcb(conn->bev, conn_readcb, conn_writecb, conn_eventcb,
			  conn);
	conn_apply_timeouts(conn);
}

static void conn_push_ready(struct net *net, struct net_conn *conn)
{
	/* pool_mu held */
	conn->ready_next = NULL;
	if (net->ready_tail != NULL)
		net->ready_tail->ready_next = conn;
	else
		net->ready_head = conn;
	net->ready_tail = conn;
	pthread_cond_signal(&net->pool_cond);
}

static void conn_post(struct net_conn *conn, enum net_post_kind kind,
		      net_task_fn *fn, void *arg, bool take_ref)
{
	struct net_post *p = xcalloc(1, sizeof(*p));
	p->kind = kind;
	p->conn = conn;
	p->fn = fn;
	p->arg = arg;
	if (take_ref)
		net_conn_ref(conn);
	net_thread_post(conn->th, p);
}

static void conn_log_ssl_errors(struct net_conn *conn)
{
	unsigned long e;
	while ((e = bufferevent_get_openssl_error(conn->bev)) != 0) {
		char msg[256];
		ERR_error_string_n(e, msg, sizeof(msg));
		log_debug("net", conn->id, "tls: %s", msg);
	}
}

/* ---- accept --------------------------------------------------------- */

static bool addr_is_local(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_UNIX)
		return true;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		if (IN6_IS_ADDR_LOOPBACK(a))
			return true;
		return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
	}
	return false;
}

/* An address banned for failed logins gets the protocol's banned_reply
 * and nothing else (no session is made). I/O thread. */
static bool conn_banned(struct net_conn *conn, const struct net_listener *l)
{
	struct net *net = conn->net;
	if (l->proto->banned_reply == NULL || conn->is_unix ||
	    net->admit == NULL || net->admit(net->admit_ctx, conn->peer))
		return false;
	log_info("net", conn->id, "%s: %s is banned for failed logins, refused",
		 l->proto->name, conn->peer);
	net_conn_write(conn, l->proto->banned_reply,
		       strlen(l->proto->banned_reply));
	net_conn_close_io(conn);
	return true;
}

/* ---- the PROXY protocol (net-proxy.h) --------------------------------- */

/* Seconds a trusted proxy has to send its whole header. */
#define NET_PROXY_TIMEOUT 10

struct net_proxy_wait {
	struct net_thread *th;
	struct net_post post;          /* the ACCEPT, addr the proxy's */
	struct event *ev;
	struct timespec start;
	unsigned char *buf;            /* the header so far */
	size_t len, cap;
	struct net_proxy_wait *prev, *next;
};

bool net_proxy_trusted(const struct net *net, const struct sockaddr *sa)
{
	return net->proxy_count > 0 &&
	       net_cidr_match(net->proxy_nets, net->proxy_count, sa);
}

static void proxy_wait_free(struct net_proxy_wait *w, bool close_fd)
{
	struct net_thread *th = w->th;
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		th->proxy_waits = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	if (w->ev != NULL)
		event_free(w->ev);
	if (close_fd)
		close(w->post.fd);
	free(w->buf);
	free(w);
}

void net_proxy_waits_drop(struct net_thread *th)
{
	while (th->proxy_waits != NULL)
		proxy_wait_free(th->proxy_waits, true);
}

static void proxy_refuse(struct net_proxy_wait *w, const char *why)
{
	char ip[46];
	net_sockaddr_ip((struct sockaddr *)&w->post.addr, ip);
	log_warn("net", NULL, "%s: connection from proxy %s refused: %s",
		 w->post.listener->proto->name, ip, why);
	proxy_wait_free(w, true);
}

/* The header is read without taking a byte past it: what follows (a TLS
 * ClientHello, an HTTP request) stays in the socket for the connection.
 * Every byte before the header's end belongs to it, so each call takes
 * what is there up to that end (no busy loop on a partial header). */
static void proxy_read_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct net_proxy_wait *w = ctx;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if ((what & EV_TIMEOUT) ||
	    now.tv_sec - w->start.tv_sec >= NET_PROXY_TIMEOUT) {
		proxy_refuse(w, "no whole PROXY header in time");
		return;
	}
	if (w->cap - w->len < 512) {
		size_t cap = w->cap + 4096;
		if (cap > NET_PROXY_V2_HEAD + 65535)
			cap = NET_PROXY_V2_HEAD + 65535;
		if (cap <= w->len) {
			proxy_refuse(w, "PROXY header too long");
			return;
		}
		w->buf = xrealloc(w->buf, cap);
		w->cap = cap;
	}
	ssize_t n = recv(fd, w->buf + w->len, w->cap - w->len, MSG_PEEK);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		proxy_refuse(w, n == 0 ? "closed before its PROXY header"
				       : strerror(errno));
		return;
	}
	if (n < 0)
		return;
	struct net_proxy_header h;
	const char *why;
	int ret = net_proxy_parse(w->buf, w->len + (size_t)n, &h, &why);
	if (ret < 0) {
		proxy_refuse(w, why);
		return;
	}
	size_t take = ret > 0 ? (size_t)ret - w->len : (size_t)n;
	if (recv(fd, w->buf + w->len, take, 0) != (ssize_t)take) {
		proxy_refuse(w, "the PROXY header could not be read");
		return;
	}
	w->len += take;
	if (ret == 0)
		return;
	/* the client's address stands for the peer from here on */
	struct net_post p = w->post;
	char proxy_ip[46], ip[46];
	net_sockaddr_ip((struct sockaddr *)&p.addr, proxy_ip);
	if (h.has_addr) {
		p.addr = h.src;
		p.addrlen = h.src.ss_family == AF_INET
			    ? sizeof(struct sockaddr_in)
			    : sizeof(struct sockaddr_in6);
	}
	p.proxied = true;
	net_sockaddr_ip((struct sockaddr *)&p.addr, ip);
	struct net *net = w->th->net;
	struct net_thread *th = w->th;
	proxy_wait_free(w, false);
	log_debug("net", NULL, "%s: PROXY v%u from %s: client %s",
		  p.listener->proto->name, h.version, proxy_ip, ip);
	if (net_ip_acquire(net, ip) < 0) {
		log_warn("net", NULL, "%s: too many connections from %s (via"
			 " proxy %s)", p.listener->proto->name, ip, proxy_ip);
		const char *reply = p.listener->proto->busy_reply;
		if (reply != NULL && !p.listener->implicit_tls) {
			ssize_t wr = send(p.fd, reply, strlen(reply),
					  MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)wr;
		}
		close(p.fd);
		return;
	}
	p.ip_counted = true;
	net_conn_accept(th, &p);
}

static void proxy_wait_start(struct net_thread *th, struct net_post *p)
{
	struct net_proxy_wait *w = xcalloc(1, sizeof(*w));
	w->th = th;
	w->post = *p;
	clock_gettime(CLOCK_MONOTONIC, &w->start);
	w->ev = event_new(th->base, p->fd, EV_READ | EV_PERSIST,
			  proxy_read_cb, w);
	w->next = th->proxy_waits;
	if (w->next != NULL)
		w->next->prev = w;
	th->proxy_waits = w;
	struct timeval tv = {NET_PROXY_TIMEOUT, 0};
	if (w->ev == NULL || event_add(w->ev, &tv) < 0)
		proxy_refuse(w, "cannot wait for its PROXY header");
}

/* An untrusted peer whose first bytes are a PROXY header: it claims to
 * speak for another address, which only [proxy] trusted may. true: the
 * connection is refused (closed); false: go on (not a header, or not
 * enough bytes to tell yet: *wait set). io thread. */
static bool proxy_untrusted(struct net_conn *conn, bool *wait)
{
	*wait = false;
	if (conn->proxy_checked)
		return false;
	struct evbuffer *in = bufferevent_get_input(conn->bev);
	unsigned char head[12];
	ev_ssize_t n = evbuffer_copyout(in, head, sizeof(head));
	int start = n > 0 ? net_proxy_start(head, (size_t)n) : 0;
	if (start < 0) {
		conn->proxy_checked = true;
		return false;
	}
	if (start == 0) {
		*wait = true;
		return false;
	}
	log_warn("net", conn->id, "%s: a PROXY header from %s, which is not"
		 " in [proxy] trusted: refused", conn->proto->name, conn->peer);
	conn->proxy_checked = true;
	conn->broken = true;
	net_conn_close_io(conn);
	return true;
}

void net_conn_accept(struct net_thread *th, struct net_post *p)
{
	struct net *net = th->net;
	struct net_listener *l = p->listener;
	if (!p->proxied && p->addr.ss_family != AF_UNIX &&
	    net_proxy_trusted(net, (struct sockaddr *)&p->addr)) {
		proxy_wait_start(th, p);
		return;
	}
	struct net_conn *conn = xcalloc(1, sizeof(*conn));
	conn->net = net;
	conn->th = th;
	conn->proto = l->proto;
	atomic_init(&conn->refs, 1);
	conn->idle_timeout = atomic_load(&net->live.idle_timeout);
	conn->write_timeout = net_write_timeout(net);
	conn->local = addr_is_local(&p->addr);
	net_sockaddr_ip((struct sockaddr *)&p->addr, conn->peer);
	if (p->addr.ss_family == AF_UNIX)
		conn->is_unix = true;
	/* only TCP from an untrusted peer, with proxies configured, is
	 * looked at for a PROXY header it may not send */
	conn->proxy_checked = conn->is_unix || p->proxied ||
			      net->proxy_count == 0;
	log_session_id(conn->id);

	if (l->implicit_tls) {
		SSL *ssl = net_tls_new(net);
		conn->bev = ssl == NULL ? NULL :
			bufferevent_openssl_socket_new(th->base, p->fd, ssl,
				BUFFEREVENT_SSL_ACCEPTING, NET_BEV_OPTS);
		if (conn->bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(conn->bev, 1);
		conn->tls = true;
	} else {
		conn->bev = bufferevent_socket_new(th->base, p->fd, NET_BEV_OPTS);
	}
	if (conn->bev == NULL) {
		log_error("net", conn->id, "cannot set up a connection");
		close(p->fd);
		if (p->ip_counted)
			net_ip_release(net, conn->peer);
		free(conn);
		return;
	}
	conn->next = th->conns;
	if (th->conns != NULL)
		th->conns->prev = conn;
	th->conns = conn;
	th->conn_count++;
	conn_setup_bev(conn);
	conn_enable(conn, EV_READ | EV_WRITE);
	char labels[96];
	snprintf(labels, sizeof(labels), "proto=\"%s\",tls=\"%s\"",
		 conn->proto->name, conn->tls ? "yes" : "no");
	metrics_count("loft_connections_total", "Connections accepted, per "
		      "protocol.", labels);
	conn->m_open = metrics_gauge("loft_connections_open", "Connections "
				     "open now, per protocol.", labels);
	metrics_gauge_add(conn->m_open, 1);
	log_debug("net", conn->id, "%s connection from %s%s", conn->proto->name,
		  conn->peer, conn->tls ? " (TLS)" : "");

	if (conn_banned(conn, l))
		return;
	/* A task queued inside accept waits for the session pointer. */
	pthread_mutex_lock(&net->pool_mu);
	conn->accepting = true;
	pthread_mutex_unlock(&net->pool_mu);
	void *session = conn->proto->accept(conn, l->proto_ctx);
	pthread_mutex_lock(&net->pool_mu);
	conn->session = session;
	conn->accepting = false;
	if (conn->task_active)
		conn_push_ready(net, conn);
	pthread_mutex_unlock(&net->pool_mu);
	if (session == NULL)
		net_conn_close_io(conn);
}

/* ---- destroy / close ------------------------------------------------ */

void net_conn_destroy_now(struct net_conn *conn)
{
	if (conn->closed)
		return;
	conn->closed = true;
	atomic_store(&conn->closing, true);
	if (conn->bev != NULL) {
		bufferevent_setcb(conn->bev, NULL, NULL, NULL, NULL);
		if (conn->zlib != NULL)
			net_zlib_detach(conn->zlib);
		bufferevent_free(conn->bev);
		conn->bev = NULL;
		conn->zlib = NULL;
	}
	if (conn->close_timer != NULL) {
		event_free(conn->close_timer);
		conn->close_timer = NULL;
	}
	struct net_thread *th = conn->th;
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		th->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	th->conn_count--;
	metrics_gauge_add(conn->m_open, -1);
	if (!conn->is_unix)
		net_ip_release(conn->net, conn->peer);
	log_debug("net", conn->id, "closed");
	net_conn_cancel_waits(conn);
	if (conn->session != NULL)
		conn->proto->closed(conn->session, conn);
	net_conn_unref(&conn);
}

/* Close after flushing; waits for a running task first. I/O thread. */
void net_conn_close_io(struct net_conn *conn)
{
	if (conn->closed)
		return;
	atomic_store(&conn->closing, true);
	conn->want_close = true;
	if (conn_task_active(conn))
		return;    /* net_conn_task_done continues */
	conn_progress(conn);
}

static void conn_close_timer_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct net_conn *conn = ctx;
	if (conn->want_close &&
	    time(NULL) > conn->close_deadline) {
		conn->broken = true;
	}
	conn_progress(conn);
}

static void conn_arm_close_timer(struct net_conn *conn)
{
	if (conn->close_timer == NULL) {
		conn->close_timer = evtimer_new(conn->th->base,
						conn_close_timer_cb, conn);
		conn->close_deadline = time(NULL) + conn->write_timeout;
	}
	struct timeval tv = {0, NET_POLL_MS * 1000};
	evtimer_add(conn->close_timer, &tv);
}

/* ---- STARTTLS and COMPRESS ----------------------------------------- */

static void conn_starttls_swap(struct net_conn *conn)
{
	struct bufferevent *old = conn->bev;
	evutil_socket_t fd = bufferevent_getfd(old);
	bufferevent_setcb(old, NULL, NULL, NULL, NULL);
	bufferevent_disable(old, EV_READ | EV_WRITE);
	/* Detach the socket so freeing the plain bufferevent keeps it. */
	bufferevent_setfd(old, -1);
	bufferevent_free(old);
	SSL *ssl = net_tls_new(conn->net);
	conn->bev = ssl == NULL ? NULL :
		bufferevent_openssl_socket_new(conn->th->base, fd, ssl,
					       BUFFEREVENT_SSL_ACCEPTING,
					       NET_BEV_OPTS);
	conn->starttls_pending = false;
	if (conn->bev == NULL) {
		log_error("net", conn->id, "cannot start TLS");
		close(fd);
		conn->broken = true;
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(conn->bev, 1);
	conn->tls = true;
	conn_setup_bev(conn);
	conn_enable(conn, EV_WRITE);
	if (!conn->user_paused)
		conn_enable(conn, EV_READ);
	log_debug("net", conn->id, "starttls");
}

/* RFC 3207 5 / RFC 3501 11.1 / RFC 2595 3.1: nothing the client sent
 * before the handshake may be taken as a command after it. */
static void conn_starttls_begin(struct net_conn *conn)
{
	struct evbuffer *in = bufferevent_get_input(conn->bev);
	size_t n = evbuffer_get_length(in);
	if (n > 0) {
		log_debug("net", conn->id,
			  "discarding %zu bytes sent before TLS", n);
		evbuffer_drain(in, n);
	}
	conn_disable(conn, EV_READ);
	conn->starttls_pending = true;
	conn_progress(conn);
}

static int conn_compress_begin(struct net_conn *conn)
{
	struct bufferevent *old = conn->bev;
	struct bufferevent *nb = net_zlib_wrap(old, NET_FILTER_OPTS, &conn->zlib);
	if (nb == NULL)
		return -1;
	conn->bev = nb;
	conn->compressed = true;
	conn_setup_bev(conn);
	conn_enable(conn, EV_WRITE);
	if (!conn->user_paused)
		conn_enable(conn, EV_READ);
	/* Bytes that came after the COMPRESS command are compressed data. */
	if (evbuffer_get_length(bufferevent_get_input(old)) > 0)
		bufferevent_trigger(old, EV_READ, BEV_TRIG_IGNORE_WATERMARKS |
				    BEV_TRIG_DEFER_CALLBACKS);
	log_debug("net", conn->id, "compress=deflate");
	return 0;
}

/* The deflate filter inflates only up to its input high-water mark and
 * leaves the rest in the socket's buffer; while reading was off (a task,
 * a pause) nothing calls it again for those bytes, so reading is
 * restarted with a read event on the socket's bufferevent. I/O thread. */
static void conn_kick_filter(struct net_conn *conn)
{
	struct bufferevent *under = conn->compressed
		? bufferevent_get_underlying(conn->bev) : NULL;
	if (under != NULL &&
	    evbuffer_get_length(bufferevent_get_input(under)) > 0)
		bufferevent_trigger(under, EV_READ, BEV_TRIG_IGNORE_WATERMARKS |
				    BEV_TRIG_DEFER_CALLBACKS);
}

/* Moves a waiting STARTTLS or close along once output has drained. */
static void conn_progress(struct net_conn *conn)
{
	if (conn->closed)
		return;
	if (conn->broken) {
		net_conn_destroy_now(conn);
		return;
	}
	if (!conn->starttls_pending && !conn->want_close)
		return;
	/* Nothing may stay inside the deflate stream (e.g. a BYE). */
	if (conn->compressed)
		net_zlib_flush(conn->bev);
	if (net_conn_output_pending(conn) > 0) {
		/* The write callback fires when the top buffer empties;
		 * a filter's underlying buffer needs polling. */
		if (evbuffer_get_length(bufferevent_get_output(conn->bev)) == 0 ||
		    conn->close_timer != NULL)
			conn_arm_close_timer(conn);
		return;
	}
	if (conn->want_close) {
		net_conn_destroy_now(conn);
		return;
	}
	conn_starttls_swap(conn);
	if (conn->broken)
		net_conn_destroy_now(conn);
}

/* ---- bufferevent callbacks ----------------------------------------- */

static void conn_readcb(struct bufferevent *bev, void *ctx)
{
	struct net_conn *conn = ctx;
	if (atomic_load(&conn->waits) > 0) {
		/* Reading goes on only to notice a hang-up; input waits. */
		if (evbuffer_get_length(bufferevent_get_input(conn->bev)) >
		    NET_WAIT_INPUT_MAX)
			conn_disable(conn, EV_READ);
		return;
	}
	if (conn->closed || atomic_load(&conn->closing) ||
	    conn->starttls_pending || conn->user_paused ||
	    conn_task_active(conn))
		return;
	bool wait;
	if (proxy_untrusted(conn, &wait) || wait)
		return;
	conn->proto->input(conn->session, conn);
}

static void conn_writecb(struct bufferevent *bev, void *ctx)
{
	struct net_conn *conn = ctx;
	if (atomic_load(&conn->bp_waiting)) {
		pthread_mutex_lock(&conn->net->bp_mu);
		pthread_cond_broadcast(&conn->net->bp_cond);
		pthread_mutex_unlock(&conn->net->bp_mu);
	}
	if (conn->starttls_pending || conn->want_close) {
		if (!conn_task_active(conn))
			conn_progress(conn);
	}
}

static void conn_idle_timeout(struct net_conn *conn)
{
	bool close = conn->proto->timeout == NULL ||
		conn->proto->timeout(conn->session, conn);
	if (close) {
		log_debug("net", conn->id, "idle timeout");
		net_conn_close_io(conn);
	} else if (!conn->user_paused && !atomic_load(&conn->closing)) {
		/* A read timeout disables reading; re-enabling restarts it. */
		conn_enable(conn, EV_READ);
	}
}

static void conn_eventcb(struct bufferevent *bev, short what, void *ctx)
{
	struct net_conn *conn = ctx;
	if (conn->closed)
		return;
	if (what & BEV_EVENT_CONNECTED)
		return;    /* TLS handshake done */
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
		if (atomic_load(&conn->waits) > 0)
			conn_enable(conn, EV_READ);   /* not idle: waiting */
		else if (!conn_task_active(conn))
			conn_idle_timeout(conn);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		log_info("net", conn->id, "client %s did not read for %u s, dropped",
			 conn->peer, conn->write_timeout);
		conn->broken = true;
	} else if (what & BEV_EVENT_ERROR) {
		int err = EVUTIL_SOCKET_ERROR();
		if (conn->tls)
			conn_log_ssl_errors(conn);
		if (err != 0)
			log_debug("net", conn->id, "connection error: %s",
				  strerror(err));
		conn->broken = true;
	} else if (what & BEV_EVENT_EOF) {
		/* The peer may have half-closed after its last commands
		 * (printf ... | nc): the running task and the complete
		 * commands still buffered are answered first. */
		conn->eof = true;
	}
	if (conn->broken)
		atomic_store(&conn->closing, true);
	if (conn_task_active(conn))
		return;
	if (conn->eof && !conn->broken && !net_conn_hangup_closes(conn))
		return;    /* a wait runs to its end; its task closes after */
	if (conn->eof)
		conn->want_close = true;
	conn_progress(conn);
}

/* ---- tasks ---------------------------------------------------------- */

int net_conn_run(struct net_conn *conn, net_task_fn *fn, void *arg)
{
	struct net *net = conn->net;
	if (atomic_load(&conn->closing))
		return -1;
	struct net_task *t = xmalloc(sizeof(*t));
	t->next = NULL;
	t->fn = fn;
	t->arg = arg;
	pthread_mutex_lock(&net->pool_mu);
	if (conn->tasks_tail != NULL)
		conn->tasks_tail->next = t;
	else
		conn->tasks_head = t;
	conn->tasks_tail = t;
	bool was_active = conn->task_active;
	if (!was_active) {
		conn->task_active = true;
		net_conn_ref(conn);     /* released by the TASK_DONE post */
	}
	pthread_mutex_unlock(&net->pool_mu);
	if (was_active)
		return 0;
	/* Stop reading before a worker can start: afterwards this thread
	 * must not take the connection's locks while the task writes. */
	if (net_task_conn != conn)
		conn_disable(conn, EV_READ);
	pthread_mutex_lock(&net->pool_mu);
	if (!conn->accepting)
		conn_push_ready(net, conn);
	pthread_mutex_unlock(&net->pool_mu);
	return 0;
}

void net_conn_worker_run(struct net *net, struct net_conn *conn)
{
	pthread_mutex_lock(&net->pool_mu);
	for (;;) {
		struct net_task *t = conn->tasks_head;
		if (t == NULL) {
			conn->task_active = false;
			break;
		}
		conn->tasks_head = t->next;
		if (conn->tasks_head == NULL)
			conn->tasks_tail = NULL;
		pthread_mutex_unlock(&net->pool_mu);
		net_task_conn = conn;
		t->fn(conn->session, conn, t->arg);
		cork_flush(conn);
		net_task_conn = NULL;
		free(t);
		pthread_mutex_lock(&net->pool_mu);
	}
	pthread_mutex_unlock(&net->pool_mu);
	/* Hands the task reference to the post. */
	conn_post(conn, NET_POST_TASK_DONE, NULL, NULL, false);
}

void net_conn_worker_exit(void)
{
	buf_free(&net_task_cork);
}

void net_conn_task_done(struct net_conn *conn)
{
	if (conn->closed || conn_task_active(conn))
		return;
	if (atomic_load(&conn->write_stalled))
		conn->broken = true;
	if (conn->broken) {
		net_conn_destroy_now(conn);
		return;
	}
	if (conn->compress_requested) {
		conn->compress_requested = false;
		if (conn_compress_begin(conn) < 0)
			conn->broken = true;
	}
	if (conn->starttls_requested) {
		conn->starttls_requested = false;
		conn_starttls_begin(conn);
		return;
	}
	if (conn->want_close || conn->broken || atomic_load(&conn->closing)) {
		conn->want_close = true;
		conn_progress(conn);
		return;
	}
	if (conn->starttls_pending) {
		/* The write that drained the STARTTLS reply may have come
		 * while this task ran (conn_writecb leaves it to us then):
		 * without this the swap waited for a write that never comes
		 * (ManageSieve's capability timer after STARTTLS hung that
		 * way under load). */
		conn_progress(conn);
		return;
	}
	if (conn->user_paused)
		return;
	if (!conn->eof) {
		conn_enable(conn, EV_READ);
		conn_kick_filter(conn);
	}
	if (atomic_load(&conn->waits) > 0) {
		/* The task started a wait: no command is read until it ends;
		 * a client that hung up meanwhile may cancel it. */
		if (conn->eof && net_conn_hangup_closes(conn)) {
			conn->want_close = true;
			conn_progress(conn);
		}
		return;
	}
	/* Pipelining: the next command may already be buffered. */
	if (evbuffer_get_length(bufferevent_get_input(conn->bev)) > 0)
		conn->proto->input(conn->session, conn);
	/* The post holds a reference: conn is valid even if input closed
	 * it. After EOF, close once no complete command is left. */
	if (conn->eof && !conn->closed && !conn_task_active(conn)) {
		conn->want_close = true;
		conn_progress(conn);
	}
}

int net_conn_post(struct net_conn *conn, net_task_fn *fn, void *arg)
{
	if (atomic_load(&conn->closing))
		return -1;
	conn_post(conn, NET_POST_USER, fn, arg, true);
	return 0;
}

/* ---- output --------------------------------------------------------- */

/* Hands the held output of the running task to the bufferevent (on the
 * task's worker; a task is active, so conn->bev stays). */
static int cork_flush(struct net_conn *conn)
{
	if (net_task_conn != conn || net_task_cork.len == 0)
		return 0;
	struct bufferevent *under = conn_lock_under(conn);
	int ret = bufferevent_write(conn->bev, net_task_cork.data,
				    net_task_cork.len);
	conn_unlock_under(under);
	buf_reset(&net_task_cork);
	return ret;
}

/* Bytes in the bufferevents (not what a task holds back). */
static size_t bev_pending(struct net_conn *conn)
{
	size_t n = 0;
	for (struct bufferevent *b = conn->bev; b != NULL;
	     b = bufferevent_get_underlying(b))
		n += evbuffer_get_length(bufferevent_get_output(b));
	return n;
}

size_t net_conn_output_pending(struct net_conn *conn)
{
	cork_flush(conn);
	return bev_pending(conn);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* On the task's worker: waits while more than the high-water mark is
 * queued. A client that takes nothing for write_timeout is dropped. */
static int conn_wait_output(struct net_conn *conn)
{
	struct net *net = conn->net;
	size_t pending = bev_pending(conn);
	size_t high_water = net_output_high_water(net);
	if (pending <= high_water)
		return 0;
	uint64_t timeout = (uint64_t)conn->write_timeout * 1000;
	uint64_t deadline = now_ms() + timeout;
	size_t last = pending;
	atomic_store(&conn->bp_waiting, true);
	while (pending > high_water) {
		if (atomic_load(&conn->closing) || atomic_load(&net->stopping))
			goto fail;
		if (now_ms() >= deadline) {
			log_info("net", conn->id,
				 "client %s did not read for %u s, dropped",
				 conn->peer, conn->write_timeout);
			atomic_store(&conn->write_stalled, true);
			atomic_store(&conn->closing, true);
			goto fail;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += NET_POLL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&net->bp_mu);
		pthread_cond_timedwait(&net->bp_cond, &net->bp_mu, &ts);
		pthread_mutex_unlock(&net->bp_mu);
		pending = bev_pending(conn);
		if (pending < last) {
			last = pending;
			deadline = now_ms() + timeout;
		}
	}
	atomic_store(&conn->bp_waiting, false);
	return 0;
fail:
	atomic_store(&conn->bp_waiting, false);
	return -1;
}

int net_conn_write(struct net_conn *conn, const void *data, size_t len)
{
	if (atomic_load(&conn->closing))
		return -1;
	if (net_task_conn == conn && conn_wait_output(conn) < 0)
		return -1;
	if (len == 0)
		return 0;
	if (net_task_conn == conn && conn->proto->cork) {
		if (net_task_cork.len + len <= NET_CORK_MAX)
			return buf_append(&net_task_cork, data, len) < 0 ? -1 : 0;
		if (cork_flush(conn) < 0)
			return -1;
		if (len < NET_CORK_MAX)
			return buf_append(&net_task_cork, data, len) < 0 ? -1 : 0;
	}
	struct bufferevent *under = conn_lock_under(conn);
	int ret = bufferevent_write(conn->bev, data, len);
	conn_unlock_under(under);
	return ret;
}

int net_conn_vprintf(struct net_conn *conn, const char *fmt, va_list ap)
{
	char stackbuf[512];
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(stackbuf, sizeof(stackbuf), fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(stackbuf))
		return net_conn_write(conn, stackbuf, (size_t)n);
	char *big = xmalloc((size_t)n + 1);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	int ret = net_conn_write(conn, big, (size_t)n);
	free(big);
	return ret;
}

int net_conn_printf(struct net_conn *conn, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int ret = net_conn_vprintf(conn, fmt, ap);
	va_end(ap);
	return ret;
}

int net_conn_probe_peer(struct net_conn *conn)
{
	if (conn->closed || conn->bev == NULL || conn->eof || conn->broken)
		return 1;
	struct bufferevent *bottom = conn->bev, *u;
	while ((u = bufferevent_get_underlying(bottom)) != NULL)
		bottom = u;
	evutil_socket_t fd = bufferevent_getfd(bottom);
	if (fd < 0)
		return 1;
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0)
		return 1;
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
			       ? 0 : 1;
	return -1;
}

/* ---- the rest of the public API ------------------------------------- */

struct evbuffer *net_conn_input(struct net_conn *conn)
{
	return bufferevent_get_input(conn->bev);
}

int net_conn_starttls(struct net_conn *conn)
{
	if (!net_tls_available(conn->net) || conn->tls || conn->compressed ||
	    conn->starttls_pending || conn->starttls_requested)
		return -1;
	if (net_task_conn == conn || !net_on_thread(conn->th) ||
	    conn_task_active(conn))
		conn->starttls_requested = true;    /* at the task's end */
	else
		conn_starttls_begin(conn);
	return 0;
}

int net_conn_compress(struct net_conn *conn)
{
	if (conn->compressed || conn->compress_requested)
		return -1;
	if (net_task_conn == conn || !net_on_thread(conn->th) ||
	    conn_task_active(conn)) {
		conn->compress_requested = true;    /* at the task's end */
		return 0;
	}
	return conn_compress_begin(conn);
}

void net_conn_close(struct net_conn *conn)
{
	cork_flush(conn);   /* what the task wrote goes first */
	atomic_store(&conn->closing, true);
	if (net_on_thread(conn->th))
		net_conn_close_io(conn);
	else
		conn_post(conn, NET_POST_CLOSE, NULL, NULL, true);
}

void net_conn_abort(struct net_conn *conn)
{
	atomic_store(&conn->closing, true);
	conn->broken = true;
	if (conn_task_active(conn))
		return;    /* net_conn_task_done destroys it */
	net_conn_destroy_now(conn);
}

void net_conn_refuse(struct net_conn *conn)
{
	const char *reply = conn->proto->banned_reply;
	if (reply != NULL)
		net_conn_write(conn, reply, strlen(reply));
	net_conn_close(conn);
}

void net_conn_pause(struct net_conn *conn)
{
	conn->user_paused = true;
	conn_disable(conn, EV_READ);
}

void net_conn_resume(struct net_conn *conn)
{
	conn->user_paused = false;
	if (conn->closed || atomic_load(&conn->closing) ||
	    conn->starttls_pending || conn_task_active(conn) ||
	    atomic_load(&conn->waits) > 0)
		return;
	conn_enable(conn, EV_READ);
	conn_kick_filter(conn);
	if (evbuffer_get_length(bufferevent_get_input(conn->bev)) > 0)
		bufferevent_trigger(conn->bev, EV_READ,
				    BEV_TRIG_IGNORE_WATERMARKS |
				    BEV_TRIG_DEFER_CALLBACKS);
}

void net_conn_set_timeout(struct net_conn *conn, unsigned seconds)
{
	conn->idle_timeout = seconds;
	if (conn->bev != NULL)
		conn_apply_timeouts(conn);
}

void net_conn_set_write_timeout(struct net_conn *conn, unsigned seconds)
{
	conn->write_timeout = seconds > 0 ? seconds : net_write_timeout(conn->net);
	if (conn->bev != NULL)
		conn_apply_timeouts(conn);
}

bool net_conn_is_tls(const struct net_conn *conn)
{
	return conn->tls;
}

bool net_conn_is_compressed(const struct net_conn *conn)
{
	return conn->compressed;
}

bool net_conn_is_local(const struct net_conn *conn)
{
	return conn->local;
}

int net_conn_peer_cred(struct net_conn *conn, unsigned *uid_r, int *pid_r)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd = conn->bev != NULL ? bufferevent_getfd(conn->bev) : -1;
	if (!conn->is_unix || fd < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    len != sizeof(cred))
		return -1;
	*uid_r = (unsigned)cred.uid;
	*pid_r = (int)cred.pid;
	return 0;
}

const char *net_conn_peer(const struct net_conn *conn)
{
	return conn->peer;
}

const char *net_conn_id(const struct net_conn *conn)
{
	return conn->id;
}
