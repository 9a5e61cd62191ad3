/*
 * Internals shared by the files of src/net: the net, its I/O threads, the
 * worker pool and the connection struct. Nothing outside src/net includes
 * this.
 *
 * Threading rules:
 * - A connection belongs to one I/O thread (conn->th). Its bufferevent
 *   pointer, its flags marked "io" and the thread's connection list are
 *   only touched there.
 * - Task queues and task_active are guarded by net->pool_mu.
 * - Cross-thread requests (accept hand-off, task completion, posts) go
 *   through the thread's post queue, which holds a reference on the
 *   connection until the item has run.
 */
#ifndef LOFT_NET_PRIVATE_H
#define LOFT_NET_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/ssl.h>

#include "net.h"

struct event;
struct event_base;
struct bufferevent;
struct evconnlistener;
struct metrics_series;
struct net_cidr;
struct net_proxy_wait;

enum net_post_kind {
	NET_POST_ACCEPT,     /* a new socket for this thread */
	NET_POST_TASK_DONE,  /* a worker finished the connection's tasks */
	NET_POST_USER,       /* net_conn_post */
	NET_POST_CLOSE,      /* net_conn_close from another thread */
	NET_POST_SHUTDOWN,   /* net_stop: close everything */
	NET_POST_WAIT_ADD,   /* net_conn_wait from a worker */
	NET_POST_WAIT_FINISH,/* net_wait_finish from another thread */
};

struct net_post {
	struct net_post *next;
	enum net_post_kind kind;
	struct net_conn *conn;         /* holds a reference (not ACCEPT) */
	net_task_fn *fn;
	void *arg;
	/* WAIT_ADD, WAIT_FINISH: holds a reference on the wait */
	struct net_wait *wait;
	uint32_t delay_ms;
	/* ACCEPT */
	int fd;
	struct net_listener *listener;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool ip_counted;               /* net_ip_acquire'd for addr's IP */
	bool proxied;                  /* addr is from a PROXY header */
};

struct net_thread {
	struct net *net;
	unsigned index;
	struct event_base *base;
	pthread_t tid;
	bool started;                  /* its pthread exists (net_run joins it) */
	pthread_mutex_t mu;            /* guards the post queue */
	struct net_post *post_head, *post_tail;
	struct event *post_ev;
	struct net_conn *conns;        /* io: every open connection */
	/* io: connections from a trusted proxy whose PROXY header is
	 * still coming (net-conn.c) */
	struct net_proxy_wait *proxy_waits;
	struct event *stop_timer;      /* io: waits for goodbyes to flush */
	unsigned stop_polls;
	unsigned conn_count;
};

struct net_listener {
	struct net_listener *next;
	struct net *net;
	char *addr;
	char *unix_path;               /* unlinked when the listener goes */
	bool implicit_tls;
	const struct net_proto *proto;
	void *proto_ctx;
	struct evconnlistener *ev;
	struct event *retry_ev;        /* re-enable after EMFILE */
};

struct net_task {
	struct net_task *next;
	net_task_fn *fn;
	void *arg;
};

/* A wait of a connection (net_conn_wait). */
struct net_wait {
	struct net_conn *conn;         /* a reference */
	net_task_fn *fn;
	void *arg;
	net_cancel_fn *cancel;
	unsigned flags;                /* NET_WAIT_HANGUP_CANCELS */
	atomic_int refs;               /* the handle, conn->waits_list, posts */
	/* io */
	struct event *timer;
	bool linked;                   /* in conn->wait_list */
	bool done;                     /* fn queued or cancel run */
	int64_t pending_ms;            /* finish asked before linked; -1 */
	struct net_wait *prev, *next;
};

/* Input a waiting connection buffers before it stops reading. */
#define NET_WAIT_INPUT_MAX (64 * 1024)

struct net_conn {
	struct net *net;
	struct net_thread *th;
	struct net_listener *listener;
	const struct net_proto *proto;
	void *session;
	atomic_int refs;

	struct bufferevent *bev;       /* io: the top of the stack */
	struct net_conn *prev, *next;  /* io: th->conns */

	/* pool_mu */
	struct net_task *tasks_head, *tasks_tail;
	struct net_conn *ready_next;
	bool task_active;              /* queued or running on a worker */
	bool accepting;                /* proto->accept has not returned */

	atomic_int waits;              /* live net_waits: no proto->input */
	struct net_wait *wait_list;    /* io */
	atomic_bool closing;           /* writes fail; no new tasks */
	atomic_bool bp_waiting;        /* a worker waits for output to drain */
	atomic_bool write_stalled;     /* dropped by back-pressure timeout */
	struct event *close_timer;     /* io: polls a flush (rarely used) */
	time_t close_deadline;
	/* io */
	bool closed;                   /* proto->closed has run */
	bool want_close;               /* close once output is flushed */
	bool eof;
	bool broken;                   /* close without flushing */
	bool user_paused;
	bool starttls_pending;         /* waiting for the reply to flush */
	bool starttls_requested;       /* asked from a worker: do at task end */
	bool compress_requested;
	bool tls;
	bool compressed;
	struct net_zlib *zlib;         /* io: the deflate filter's state */
	bool local;
	bool is_unix;
	bool proxy_checked;            /* io: not a PROXY header from an
					  untrusted peer (first input) */
	unsigned idle_timeout;
	struct metrics_series *m_open;   /* loft_connections_open{proto} */
	unsigned write_timeout;        /* seconds; net_settings' by default */
	char id[9];
	char peer[46];
};

/* The settings that can change while the net runs (net_reload): read
 * without a lock from any thread. */
struct net_live {
	atomic_uint max_conns_per_ip;
	atomic_uint write_timeout;
	atomic_uint idle_timeout;
	atomic_size_t output_high_water;
};

struct net {
	struct net_settings set;       /* as created; see live for the rest */
	struct net_live live;
	pthread_mutex_t tls_mu;        /* guards ssl_ctx (replaced by reload) */
	SSL_CTX *ssl_ctx;
	atomic_bool tls_on;            /* ssl_ctx != NULL */

	unsigned thread_count;
	struct net_thread *threads;
	atomic_uint next_thread;

	unsigned worker_count;
	pthread_t *workers;
	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cond;
	struct net_conn *ready_head, *ready_tail;
	bool pool_stop;

	/* Workers waiting for output to drain (back-pressure). */
	pthread_mutex_t bp_mu;
	pthread_cond_t bp_cond;

	struct net_listener *listeners;
	int stop_pipe[2];
	struct event *stop_ev;
	atomic_bool stopping;

	pthread_mutex_t ip_mu;
	struct net_ip_count **ip_table;   /* NET_IP_BUCKETS chains */

	net_admit_fn *admit;              /* net_set_admit */
	void *admit_ctx;

	/* [proxy] trusted (net_settings.proxy_trusted, parsed) */
	struct net_cidr *proxy_nets;
	size_t proxy_count;
};

#define NET_IP_BUCKETS 1024

/* net.c */
void net_sockaddr_ip(const struct sockaddr *sa, char ip[46]);
void net_thread_post(struct net_thread *th, struct net_post *post);
bool net_on_thread(const struct net_thread *th);
int net_ip_acquire(struct net *net, const char *ip);
void net_ip_release(struct net *net, const char *ip);

/* net-conn.c */
void net_conn_accept(struct net_thread *th, struct net_post *post);
/* Whether a connection from sa must begin with a PROXY header. */
bool net_proxy_trusted(const struct net *net, const struct sockaddr *sa);
/* Drops the connections still waiting for their PROXY header (stop). */
void net_proxy_waits_drop(struct net_thread *th);
void net_conn_task_done(struct net_conn *conn);
void net_conn_destroy_now(struct net_conn *conn);
void net_conn_close_io(struct net_conn *conn);
void net_conn_worker_run(struct net *net, struct net_conn *conn);
/* A worker thread ends: frees what it kept for its tasks (the cork). */
void net_conn_worker_exit(void);

/* net-wait.c */
void net_wait_add_io(struct net_wait *w);
void net_wait_finish_io(struct net_wait *w, uint32_t after_ms);
void net_wait_cancel_io(struct net_wait *w);
/* Cancels every wait of a connection that is being destroyed. */
void net_conn_cancel_waits(struct net_conn *conn);
/* Whether the client's hang-up (EOF) must close the connection now: no
 * wait, or a wait made with NET_WAIT_HANGUP_CANCELS. I/O thread. */
bool net_conn_hangup_closes(struct net_conn *conn);

/* net-tls.c */
SSL_CTX *net_tls_ctx_create(const char *cert, const char *key,
			    char **error_r);
SSL_CTX *net_tls_ctx_create_pem(const char *cert_pem, size_t cert_len,
				const char *key_pem, size_t key_len,
				const char *cert_name, const char *key_name,
				char **error_r);
/* A new SSL from the current context (NULL without TLS). */
SSL *net_tls_new(struct net *net);

static inline unsigned net_write_timeout(struct net *net)
{
	return atomic_load_explicit(&net->live.write_timeout,
				    memory_order_relaxed);
}
static inline size_t net_output_high_water(struct net *net)
{
	return atomic_load_explicit(&net->live.output_high_water,
				    memory_order_relaxed);
}

/* net-zlib.c: wraps bev in a deflate filter; NULL on failure. *z_r is
 * the filter's state, for net_zlib_detach. */
struct net_zlib;
struct bufferevent *net_zlib_wrap(struct bufferevent *bev, int options,
				  struct net_zlib **z_r);
/* Pushes what the deflate stream holds to the socket (Z_SYNC_FLUSH). */
void net_zlib_flush(struct bufferevent *filter);
/* Before the filter is freed (I/O thread, no task running): its own
 * events (flush, resume, fail) and the input drain callback are
 * cancelled, so none of them can reach the filter once bufferevent_free
 * has dropped its last reference (libevent finalizes it later, from the
 * loop: a flush in between revived and freed it twice). */
void net_zlib_detach(struct net_zlib *z);

#endif
