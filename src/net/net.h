/*
 * The network layer: listeners, connections, TLS and the worker pool.
 *
 * I/O threads (one libevent event_base each) own every socket: they accept,
 * run TLS, read bytes into the connection's input buffer and write its
 * output. A protocol front-end (struct net_proto) parses input on the I/O
 * thread; when it has a whole command it calls net_conn_run(), which stops
 * reading the socket and runs the command on a worker thread, where
 * blocking work (SQLite, fsync, argon2, MIME) is allowed. When the command
 * function returns, reading resumes and proto->input is called again if
 * more input is already buffered (pipelining). An idle connection costs a
 * socket, its buffers and the front-end's session struct: no thread.
 *
 * Output written from a worker goes to the connection's output buffer; when
 * it holds more than the high-water mark the worker waits until the client
 * has read it down (back-pressure), and a client that reads nothing for
 * write_timeout seconds is dropped: memory per session stays bounded.
 */
#ifndef LOFT_NET_H
#define LOFT_NET_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct net;
struct net_conn;

/* A front-end's hooks. All run on the connection's I/O thread unless noted.
 * The session pointer returned by accept is passed back to every hook. */
struct net_proto {
	const char *name;                  /* "imap", "pop3", "lmtp", ... */
	/* A new connection: create the session and write the greeting.
	 * Return NULL to refuse (the connection is closed). */
	void *(*accept)(struct net_conn *conn, void *proto_ctx);
	/* Input is buffered (net_conn_input). Consume what can be parsed. */
	void (*input)(void *session, struct net_conn *conn);
	/* The connection is gone (peer closed, error, timeout, or
	 * net_conn_close finished). Free the session. Never called while a
	 * worker task of this connection runs. */
	void (*closed)(void *session, struct net_conn *conn);
	/* Optional: the idle timeout expired. Return true to close (after
	 * the hook has written e.g. "* BYE Autologout"), false to keep. */
	bool (*timeout)(void *session, struct net_conn *conn);
	/* Optional: sent on a plain connection refused for the per-address
	 * limit before it is closed, e.g. "* BYE Too many connections\r\n"
	 * (implicit-TLS connections are closed without a word). */
	const char *busy_reply;
	/* Optional: the server is stopping (SIGTERM/SIGINT, net_stop). Called
	 * on the I/O thread for each connection with no task running, to
	 * write a last word, e.g. "* BYE Server shutting down" (RFC 9051
	 * 7.1.5). The output is then flushed (for at most
	 * NET_SHUTDOWN_GRACE_MS) and the connection closed. A connection
	 * whose task is running is closed when the task returns, without. */
	void (*shutdown)(void *session, struct net_conn *conn);
	/* Set by every front-end that authenticates users (IMAP, POP3,
	 * SMTP submission, ManageSieve, HTTP): sent to a client whose address
	 * is banned for failed logins (net_set_admit) before the connection
	 * is closed, at connect and at a later login attempt, e.g.
	 * "* BYE [UNAVAILABLE] Too many failed logins, try later\r\n",
	 * "-ERR [SYS/TEMP] ...\r\n", "421 4.7.0 ...\r\n". On an
	 * implicit-TLS port it goes after the handshake. NULL (LMTP, SMTP
	 * from other servers): the protocol is never refused for bans. */
	const char *banned_reply;
	/* Optional: a task's output is held on its worker and handed to the
	 * I/O thread in one piece when the task returns (or past
	 * NET_CORK_MAX, before back-pressure waits, a close or an
	 * output_pending question): a response of many lines (IMAP SELECT,
	 * FETCH) then leaves in one send, not one per line, and the client
	 * wakes once. Only for a protocol whose tasks never wait for the
	 * client after writing something it must see first. */
	bool cork;
};

#define NET_SHUTDOWN_GRACE_MS 1000
#define NET_CORK_MAX (64 * 1024)

struct net_settings {
	unsigned io_threads;        /* 0: one per core */
	unsigned worker_threads;    /* 0: a default (4 x cores, at least 8) */
	const char *tls_cert;       /* PEM files; NULL: no TLS available */
	const char *tls_key;
	size_t output_high_water;   /* default 256 KiB */
	unsigned write_timeout;     /* seconds a worker waits on a client that
				       does not read; default 60 */
	unsigned max_conns_per_ip;  /* 0: no limit */
	unsigned idle_timeout;      /* seconds before proto->timeout, until the
				       front-end sets its own; 0: none */
	/* [proxy] trusted: "ADDRESS/PREFIX, ..." (net-proxy.h). A TCP
	 * connection from one of them must begin with a PROXY protocol
	 * header (v1 or v2), whose client address then stands for the
	 * peer (logs, per-address limits, login bans); one from anywhere
	 * else that sends a PROXY header is closed. NULL: no proxies. */
	const char *proxy_trusted;
};

/* Starts the worker pool and prepares the I/O threads (not running yet).
 * Returns -1 with a message (caller frees) in error_r, e.g. when the TLS
 * certificate or key cannot be loaded. Ignores SIGPIPE process-wide. */
int net_create(const struct net_settings *set, struct net **net_r,
	       char **error_r);
/* Whether cert and key load as a TLS server identity (for `loftd --check`).
 * Returns -1 with a message (caller frees) in error_r. */
int net_tls_check(const char *cert, const char *key, char **error_r);
/* Whether addr is a valid listen address (syntax only, nothing is bound).
 * Returns -1 with a static message in error_r. */
int net_addr_check(const char *addr, const char **error_r);
/* Adds a listener, bound at once (SO_REUSEADDR; IPv6 sockets are
 * V6ONLY; "*:143" is every IPv4 and IPv6 address; a stale Unix socket file
 * is replaced). addr: "127.0.0.1:1143", "[::1]:1143", "*:143" or
 * "unix:/path". implicit_tls: TLS from the first byte (IMAPS, POP3S).
 * Returns -1 with a message in error_r (thread-local storage: valid until
 * the next call on this thread). */
int net_listen(struct net *net, const char *addr, bool implicit_tls,
	       const struct net_proto *proto, void *proto_ctx,
	       const char **error_r);
/* Runs the I/O threads; returns after net_stop() (safe from a signal
 * handler via the self-pipe inside). */
int net_run(struct net *net);
void net_stop(struct net *net);
void net_destroy(struct net **net);
/* Whether TLS is configured (STARTTLS may be offered). */
bool net_tls_available(const struct net *net);

/* Who may connect: admit(ctx, ip) is asked on the I/O thread for each new
 * connection to a protocol with a banned_reply (never for Unix sockets)
 * and must be quick (a table lookup). false: the protocol's banned_reply
 * is written and the connection closed; proto->accept is not called. Set
 * before net_run. The daemon wires the login throttle of src/auth here. */
typedef bool net_admit_fn(void *ctx, const char *ip);
void net_set_admit(struct net *net, net_admit_fn *admit, void *ctx);

/* ---- privilege separation and reload --------------------------------- */

/* Binds addr and listens, without a net (the privileged parent does this
 * before it forks the process that serves it). A Unix socket file gets
 * unix_mode (0666 for LMTP, 0600 for the control socket); a stale one is
 * replaced. "*:P" and "[::]:P" fall back to IPv4 where the host has no
 * IPv6 (logged). Returns -1 with a message in error_r (as net_listen). */
int net_listen_bind(const char *addr, unsigned unix_mode, int *fd_r,
		    const char **error_r);
/* Serves a descriptor from net_listen_bind; addr names it in logs. The
 * net closes the descriptor; a Unix socket's file is left to whoever
 * bound it. Returns -1 with a message in error_r. */
int net_listen_fd(struct net *net, int fd, const char *addr,
		  bool implicit_tls, const struct net_proto *proto,
		  void *proto_ctx, const char **error_r);
/* Whether two listen addresses cannot both be bound: the same Unix path,
 * or the same port where one address covers the other ("*:P" and
 * "[::]:P" take every IPv4 and IPv6 address; "0.0.0.0:P" every IPv4
 * one). Malformed addresses never overlap (net_addr_check says why). */
bool net_addr_overlap(const char *a, const char *b);

/* Reads a certificate or key file (at most 1 MiB) into *text_r (caller
 * frees with net_tls_text_free, which wipes it). -1 with a message. */
int net_tls_read_file(const char *path, char **text_r, size_t *len_r,
		      char **error_r);
void net_tls_text_free(char **text, size_t len);
/* Whether a PEM certificate chain and private key (in memory) make a TLS
 * server identity; names are the files, for messages. A key with a
 * passphrase is refused, never prompted for. -1 with a message. */
int net_tls_check_pem(const char *cert_pem, size_t cert_len,
		      const char *key_pem, size_t key_len,
		      const char *cert_name, const char *key_name,
		      char **error_r);
/* Sets (or replaces) the TLS identity from PEM text: new handshakes use it
 * at once; open TLS sessions keep the one they started with. On error the
 * current identity stays. Safe from any thread. */
int net_tls_set(struct net *net, const char *cert_pem, size_t cert_len,
		const char *key_pem, size_t key_len, const char *cert_name,
		const char *key_name, char **error_r);
/* Applies the settings that can change live: max_conns_per_ip,
 * write_timeout, idle_timeout (new connections), output_high_water. The
 * others (threads, TLS files) are ignored here. Safe from any thread. */
void net_reload(struct net *net, const struct net_settings *set);

/* ---- connections ---------------------------------------------------- */

/* The buffered input, for the front-end's parser (I/O thread, or the
 * worker while a task runs: never both). */
struct evbuffer *net_conn_input(struct net_conn *conn);

/* Command lines, for the line-based front-ends (POP3, LMTP, SMTP). Takes
 * the next line from in, without its CRLF or bare LF, into line (reset
 * first; NUL-terminated). NET_LINE_MORE: no whole line yet. NET_LINE_OK:
 * a line. NET_LINE_TOO_LONG: a line over max bytes, told once per line
 * and as soon as it is known; the rest of it is dropped as it arrives.
 * *skipping is the caller's state for that, false at the start. No buffer
 * ever holds more than max bytes of a line, whatever the client sends. */
struct buf;
enum net_line { NET_LINE_MORE, NET_LINE_OK, NET_LINE_TOO_LONG };
enum net_line net_line_take(struct evbuffer *in, size_t max, bool *skipping,
			    struct buf *line);
/* Whether in holds a whole line (a check before net_line_take, for a
 * front-end that must first let its output drain). */
bool net_line_ready(struct evbuffer *in);

/* Write to the client. Safe from the I/O thread and from the worker that
 * runs this connection's task; on a worker it may block for back-pressure.
 * Returns -1 once the connection is broken or being closed (the command
 * should stop producing output). */
int net_conn_write(struct net_conn *conn, const void *data, size_t len);
int net_conn_printf(struct net_conn *conn, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int net_conn_vprintf(struct net_conn *conn, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Runs fn(session, arg) on a worker. Reading stops until fn returns; then
 * proto->input is called if input is buffered. Tasks of one connection run
 * one at a time, in order. Safe from any thread. Returns -1 if the
 * connection is closing. */
typedef void net_task_fn(void *session, struct net_conn *conn, void *arg);
int net_conn_run(struct net_conn *conn, net_task_fn *fn, void *arg);

/* ---- waiting without a thread ---------------------------------------- *
 *
 * A connection may wait for something that is not a worker: a timer (the
 * delay of a throttled login) or a job in another queue (a password hash).
 * While it waits, proto->input is not called (as while a task runs) and no
 * thread is held; the socket is still read (up to 64 KiB of input), so a
 * client that goes away is noticed. When the wait ends, fn runs as the
 * connection's next task (on a worker). If the connection closes first
 * (net_conn_close, an idle or write timeout, an error, the server
 * stopping), fn never runs: cancel(arg), if not NULL, runs instead on the
 * connection's I/O thread, and the close does not wait. Exactly one of fn
 * and cancel runs. Idle timeouts do not fire while a connection waits.
 *
 * When the client hangs up (EOF: it may have half-closed and still read),
 * a wait made with NET_WAIT_HANGUP_CANCELS is cancelled and the connection
 * closed at once; any other wait runs to its end, and the connection
 * closes after the commands already received are answered, as after a
 * task (`printf 'a LOGIN ...\r\nb LOGOUT\r\n' | nc -N` gets its answers). */
typedef void net_cancel_fn(void *arg);
struct net_wait;

#define NET_WAIT_HANGUP_CANCELS 1u

/* Starts a wait that lasts until net_wait_finish. Call from the worker
 * running one of conn's tasks or from conn's I/O thread. flags: 0 or
 * NET_WAIT_HANGUP_CANCELS. Returns a handle (release it with
 * net_wait_unref), or NULL if the connection is closing: then nothing
 * runs, neither fn nor cancel. */
struct net_wait *net_conn_wait(struct net_conn *conn, unsigned flags,
			       net_task_fn *fn, void *arg,
			       net_cancel_fn *cancel);
/* Ends the wait after_ms from now (0: at once): fn is queued then, unless
 * the connection closed first. Safe from any thread; only the first call
 * counts. Does not release the handle. */
void net_wait_finish(struct net_wait *w, uint32_t after_ms);
void net_wait_unref(struct net_wait **w);
/* A task that starts after delay_ms (a timer on the I/O thread, no thread
 * held meanwhile): net_conn_wait + net_wait_finish. Same threads as
 * net_conn_wait; -1 if the connection is closing (nothing runs). */
int net_conn_run_after(struct net_conn *conn, uint32_t delay_ms,
		       unsigned flags, net_task_fn *fn, void *arg,
		       net_cancel_fn *cancel);

/* Writes the protocol's banned_reply (or nothing, if it has none) and
 * closes the connection (a front-end whose login attempt met a ban). Safe
 * from any thread. */
void net_conn_refuse(struct net_conn *conn);

/* Runs fn on the connection's I/O thread soon (e.g. from a store change
 * callback on another thread, to wake an IDLE session). The connection is
 * kept alive until fn has run; fn is not called if it closed first. */
int net_conn_post(struct net_conn *conn, net_task_fn *fn, void *arg);
/* Keeps conn's memory valid (not the connection open) for a thread that
 * will call net_conn_post later; pair with net_conn_unref. */
void net_conn_ref(struct net_conn *conn);
void net_conn_unref(struct net_conn **conn);

/* STARTTLS/STLS: after the front-end has written its "OK, begin TLS" reply,
 * call this: pending input is discarded (RFC 3207/3501 injection rule), the
 * reply is flushed and the TLS handshake starts. Called from a task, it
 * takes effect when the task returns (before reading resumes); called from
 * proto->input, the front-end must stop parsing (the input is empty).
 * Returns -1 if TLS is not configured, already on, or COMPRESS is on. */
int net_conn_starttls(struct net_conn *conn);
/* COMPRESS=DEFLATE (RFC 4978): call after writing the OK; every later byte
 * in both directions is deflated (raw deflate). From a task it takes effect
 * when the task returns. Output is flushed (Z_SYNC_FLUSH) once per batch
 * of writes, so a client always sees whole responses. Returns -1 if
 * already on. */
int net_conn_compress(struct net_conn *conn);

/* Flushes output, then closes (a client that reads nothing is dropped
 * after write_timeout). proto->closed follows, after a running task has
 * returned. Later writes return -1. Safe from any thread.
 * A peer's half-close (EOF) closes the connection the same way once the
 * running task and every complete command already buffered are done. */
void net_conn_close(struct net_conn *conn);
/* Closes at once, dropping unsent output (e.g. a client that leaves a
 * stream unread). I/O thread only; proto->closed follows as for
 * net_conn_close (after a running task has returned). */
void net_conn_abort(struct net_conn *conn);
/* Stop reading the socket / resume (I/O thread), e.g. while a front-end
 * waits for something other than a worker task. */
void net_conn_pause(struct net_conn *conn);
void net_conn_resume(struct net_conn *conn);

/* Idle timeout in seconds (0: none); restarted by any input. */
void net_conn_set_timeout(struct net_conn *conn, unsigned seconds);
/* This connection's write timeout (net_settings.write_timeout; 0 goes
 * back to it): how long a client may take nothing before it is dropped.
 * I/O thread, or the connection's task. */
void net_conn_set_write_timeout(struct net_conn *conn, unsigned seconds);

bool net_conn_is_tls(const struct net_conn *conn);
bool net_conn_is_compressed(const struct net_conn *conn);
/* Loopback (127.0.0.0/8, ::1) or a Unix socket. */
bool net_conn_is_local(const struct net_conn *conn);
/* The uid and pid of the peer of a Unix socket connection (SO_PEERCRED),
 * for the control socket. -1 on TCP or when the kernel says nothing. */
int net_conn_peer_cred(struct net_conn *conn, unsigned *uid_r, int *pid_r);
/* "203.0.113.5" / "::1" / "unix". */
const char *net_conn_peer(const struct net_conn *conn);
/* A short session id for logs, unique within the process. */
const char *net_conn_id(const struct net_conn *conn);
/* Bytes queued for output and not yet sent. */
size_t net_conn_output_pending(struct net_conn *conn);
/* Looks at the socket without reading (I/O thread, e.g. from a
 * net_conn_post callback): 1 if the peer has closed it (EOF or an error
 * waits there, which the loop will handle), 0 if it is open with nothing
 * unread, -1 if bytes wait unread (ask again once they are handled). */
int net_conn_probe_peer(struct net_conn *conn);

#endif
