/*
 * loftd's processes, as OpenSMTPD arranges them:
 *
 *   parent (daemon-parent.c)   started as root or not; binds every
 *       listener, reads the TLS certificate and key, takes the data_dir
 *       lock, forks the others, restarts the auth process when it dies,
 *       stops everything when the mail process dies, reloads on SIGHUP,
 *       talks to systemd (sd_notify). Never reads from the network.
 *   auth (daemon-auth.c)       the only process that opens accounts.db
 *       (password hashes, SCRAM keys); answers the mail process over a
 *       socketpair (src/auth/auth-server.c).
 *   outbound (daemon-outbound.c) makes the TCP connections the mail
 *       process asks for and hands them over; holds the DKIM keys and
 *       signs headers given their body hash.
 *   mail (daemon-mail.c)       I/O threads, workers, front-ends, store;
 *       runs as `user`, confined to data_dir/mail (Landlock, or a root
 *       of its own where Landlock is missing) under a seccomp filter, no TCP
 *       connect but to the resolver's ports; its struct auth is a client
 *       of the auth process, its outbound connections (lib/outconn.h)
 *       and DKIM signatures go through the outbound process.
 *
 * Each child talks to the parent over a channel (daemon-chan.c): READY,
 * RELOAD, RELOADED, and a new auth or outbound socket for the mail
 * process. Adding a process: a struct proc in daemon-parent.c with its
 * main, its channel and its restart policy.
 *
 * This header is internal to src/daemon.
 */
#ifndef LOFT_DAEMON_H
#define LOFT_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "auth.h"
#include "daemon-config.h"
#include "store.h"

struct buf;
struct config;
struct daemon;
struct net;
struct queue;

/* ---- front-ends (the table is in main.c) ----------------------------- */

/* What a front-end is created with in the mail process. */
struct outbound_client;

struct daemon_services {
	const struct config *cfg;
	struct outbound_client *outbound;  /* NULL in a check */
	const struct daemon_config *dc;
	struct store *store;          /* NULL in a check */
	struct auth *auth;            /* NULL in a check */
	struct net *net;              /* NULL in a check */
	struct queue *queue;          /* NULL in a check, or without one */
};

struct daemon_listener;
struct daemon_sandbox;

struct daemon_frontend {
	const char *name;
	int plain;                    /* enum daemon_proto, or -1 */
	int tls;                      /* enum daemon_proto, or -1 */
	const struct net_proto *proto;
	void *(*create)(const struct daemon_services *sv, struct buf *errors);
	void (*destroy)(void *server);
	/* Optional: the live keys of a new configuration (SIGHUP). */
	void (*reload)(void *server, const struct config *cfg);
	/* Optional: listeners that are not a section's `listen` (the
	 * control socket); such a front-end is always created. */
	void (*listeners)(struct daemon *d, struct daemon_frontend *fe);
	/* Optional: files it reads at runtime, beyond data_dir/mail, added
	 * to the mail process's confinement (daemon_sandbox_ro/_rw). */
	void (*sandbox)(const struct daemon *d, struct daemon_sandbox *sb);
	void *server;                 /* the mail process's */
};

/* ---- listeners (daemon-listen.c) ------------------------------------- */

struct daemon_listener {
	char *addr;
	const char *section;          /* "imap", for messages */
	int line;
	bool implicit_tls;
	unsigned unix_mode;           /* Unix socket file mode */
	struct daemon_frontend *fe;
	int fd;                       /* bound by the parent; -1 before */
	dev_t dev;                    /* a Unix socket file we made */
	ino_t ino;
};

/* ---- the user the children run as (daemon-user.c) -------------------- */

struct daemon_user {
	bool set;                     /* `user =` given */
	uid_t uid;
	gid_t gid;
	char name[64];
};

/* ---- everything the processes share (forked copies) ------------------ */

struct daemon {
	const char *config_path;
	struct config *cfg;           /* the running configuration */
	struct daemon_config dc;
	struct auth_settings aset;
	struct store_settings sset;
	struct daemon_frontend *frontends;     /* NULL-name terminated */
	struct daemon_listener *listeners;
	size_t listener_count;
	struct daemon_user user;
	int lock_fd;
	int outbound_fd;              /* the mail process's end; -1 */
	/* TLS as the parent read it; wiped once handed over */
	char *cert_pem, *key_pem;
	size_t cert_len, key_len;
};

/* main.c: the front-ends, and the services the mail process runs beside
 * them (the outbound queue and its resolver). Each returns -1 after
 * logging why. */
extern struct daemon_frontend daemon_frontends[];
/* The outbound process's DKIM signer over the keys in dir (NULL when
 * not built): signs a header with the body hash given, as
 * dkim_signer_sign_head. */
typedef int outbound_sign_fn(void *ctx, const char *head, size_t head_len,
			     const uint8_t *bh, size_t bh_len, struct buf *out);
outbound_sign_fn *daemon_extras_signer(const char *dir, void **ctx_r);
void daemon_extras_signer_free(void *ctx);
/* SIGHUP in the mail process: [sieve]'s scripts. -1 (logged): kept. */
int daemon_extras_reload(const struct config *cfg);
int daemon_extras_check(const struct config *cfg, struct buf *errors);
/* Paths they need inside the mail process's confinement. */
struct daemon_sandbox;
void daemon_extras_sandbox(const struct daemon *d, struct daemon_sandbox *sb);
/* Before the front-ends (sets sv->queue), after the listeners, at exit. */
int daemon_extras_open(struct daemon_services *sv);
int daemon_extras_start(struct daemon_services *sv);
void daemon_extras_close(struct daemon_services *sv);

/* daemon-check.c: everything `loftd --check` and the start verify. */
int daemon_check(struct daemon *d, bool check_only, struct buf *errors,
		 struct buf *warnings);
void daemon_deinit(struct daemon *d);
/* Logs each line of text (FILE:LINE messages) with prefix. */
void daemon_log_lines(enum log_level level, const char *prefix,
		      const char *text);

/* daemon-listen.c */
void daemon_listener_add(struct daemon *d, const char *addr,
			 const char *section, int line, bool implicit_tls,
			 unsigned unix_mode, struct daemon_frontend *fe);
/* Overlaps and socket directories; "FILE:LINE: message" lines. */
int daemon_listeners_check(const struct daemon *d, struct buf *errors);
/* Creates socket directories and binds every listener (the parent). */
int daemon_listeners_bind(struct daemon *d);
/* The parent: closes its copies once the mail process has them. */
void daemon_listeners_close(struct daemon *d);
/* Removes the Unix socket files this loftd made (still ours). */
void daemon_listeners_unlink(struct daemon *d);
void daemon_listeners_free(struct daemon *d);

/* daemon-user.c */
int daemon_user_resolve(const char *name, struct daemon_user *u,
			char **error_r);
/* Drops to u for good (setgroups, setgid, setuid); nothing without u. */
int daemon_user_become(const struct daemon_user *u, char **error_r);
/* The uid files in data_dir must belong to. */
uid_t daemon_user_uid(const struct daemon_user *u);
/* Whether data_dir can be used: 0, or -1 with a message (caller frees). */
int daemon_data_dir_check(const char *dir, const struct daemon_user *u,
			  char **error_r);
/* Creates data_dir and the trees the mail process uses (mail, queue,
 * throttle, dkim), owned by u, if missing: Landlock can only allow a
 * path that exists when the process confines itself. */
int daemon_data_dir_prepare(const char *dir, const struct daemon_user *u,
			    char **error_r);
/* Takes data_dir/loftd.pid (flock); another loftd holding it is named. */
int daemon_lock(const char *dir, const struct daemon_user *u, int *fd_r,
		char **error_r);
/* mkdir -p for a socket directory (mode 0755). */
int daemon_mkdir_p(const char *dir, mode_t mode, char **error_r);

/* daemon-sandbox.c */
struct daemon_sandbox {
	const char *rw[16];           /* read-write trees */
	size_t rw_count;
	const char *ro[64];           /* read-only trees and files */
	size_t ro_count;
	/* Where neither Landlock nor a root of its own can be had: a tree
	 * holding every file the process needs (auth: data_dir), or NULL. */
	const char *chroot_dir;
	/* [security] sandbox = best-effort: without any of them, run
	 * unconfined (logged) rather than refuse */
	bool best_effort;
	const char *name;             /* "mail", for the log */
	/* Landlock network rules (ABI 4): TCP bind refused, connect only
	 * to these ports (the resolver's). Kernels without them: logged. */
	bool tcp_confined;
	uint16_t tcp_connect_ports[8];
	size_t tcp_port_count;
};
void daemon_sandbox_rw(struct daemon_sandbox *sb, const char *path);
void daemon_sandbox_ro(struct daemon_sandbox *sb, const char *path);
/* Confines the calling process (before it starts threads): where Landlock
 * is missing, a root of its own (root only), else a chroot to
 * sb->chroot_dir, else -1 (or, with sb->best_effort, unconfined, logged);
 * becomes u; Landlock; the seccomp filter. *chrooted_r says whether
 * paths must now be taken relative to the chroot. */
int daemon_sandbox_enter(const struct daemon_sandbox *sb,
			 const struct daemon_user *u, bool *chrooted_r,
			 char **error_r);
/* Whether a child can be confined here (Landlock, or a mount namespace
 * of its own for a root of its own): false with why (caller frees).
 * daemon_check's, so that --check refuses what the start would. */
bool daemon_sandbox_possible(char **why_r);

/* daemon-reload.c: logs each key of next that differs from the started
 * configuration and needs a restart, and each live key that changed. */
void daemon_reload_diff(const struct config *started,
			const struct config *live, const struct config *next);
bool daemon_reload_is_live(const char *section, const char *key);

/* daemon-notify.c: sd_notify, when NOTIFY_SOCKET is set. */
void daemon_notify(const char *state);

/* daemon-parent.c */
int daemon_parent_run(struct daemon *d);

/* daemon-mail.c, daemon-auth.c, daemon-outbound.c: the children's mains
 * (exit status). */
int daemon_mail_main(struct daemon *d, int chan, int auth_fd);
int daemon_auth_main(struct daemon *d, int chan, int mail_fd);
int daemon_outbound_main(struct daemon *d, int chan, int mail_fd);

/* daemon-outbound.c: the mail process's client of the outbound process
 * (TCP connections, HTTP requests, DKIM signatures). */
struct outbound_client;
struct outbound_client *outbound_client_create(int fd);
/* A restarted outbound process's socket. */
void outbound_client_set_fd(struct outbound_client *c, int fd);
void outbound_client_destroy(struct outbound_client **c);
/* An outconn_fn (lib/outconn.h): ctx is the client. */
int outbound_client_connect(void *ctx, const struct sockaddr *sa,
			    socklen_t len, unsigned timeout_ms,
			    char **error_r);
/* An outhttp_fn (lib/outhttp.h): ctx is the client. */
struct outhttp_request;
struct outhttp_answer;
int outbound_client_http(void *ctx, const struct outhttp_request *req,
			 struct outhttp_answer *answer_r, char **error_r);
/* DKIM-Signature fields for a header given its body hash
 * (dkim_sign_split): 0, or -1 (logged). */
int outbound_client_sign(struct outbound_client *c, const char *head,
			 size_t head_len, const uint8_t *bh, size_t bh_len,
			 struct buf *out);

#endif
