/*
 * The control socket: how loftctl reaches a running loftd. One Unix
 * socket per instance, found from the configuration (top-level
 * `control_socket`, default DATA_DIR/control.sock), so two loftd with
 * different data_dirs never mix. Only root and loftd's own uid may talk
 * to it (mode 0600 and SO_PEERCRED).
 *
 * Modules add verbs: control_register(ctl, "ban list", ...). A request
 * is a line of words (control-proto.h); the registered verb with the
 * longest run of matching leading words gets the rest as its arguments.
 * Verbs run on a worker thread (they may block on the store or a lock,
 * briefly), one at a time per connection.
 *
 * loftd: control_create, control_register..., control_listen (in the
 * process that serves the sessions), control_destroy after net_destroy.
 * loftctl: control_call (control-client.c).
 */
#ifndef LOFT_CONTROL_H
#define LOFT_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "control-proto.h"

struct config;
struct control;
struct control_reply;
struct net;

/* ---- the server (loftd) -------------------------------------------- */

/* A verb. argv holds the words after the verb's own (NUL-terminated
 * copies); it answers with control_reply_line (any number) and returns
 * 0 for "ok" (the text of control_reply_ok, if it was called) or -1 for
 * "err" (the text given to control_reply_error). */
typedef int control_verb_fn(void *ctx, int argc, char **argv,
			    struct control_reply *reply);

struct control *control_create(void);
/* After net_destroy: no verb can be running then. */
void control_destroy(struct control **ctl);
/* verb: one or more words ("kick", "ban list"); usage: the arguments,
 * for "help" ("ADDRESS|ACCOUNT"). Both must outlive ctl. Registering a
 * verb twice is a bug (abort). */
void control_register(struct control *ctl, const char *verb,
		      const char *usage, control_verb_fn *fn, void *ctx);
/* The pid `ping` answers with (default: the caller's): loftd's main pid,
 * the parent of the process that serves the socket. */
void control_set_pid(struct control *ctl, long pid);
/* The control socket's protocol, for loftd's listener table: the parent
 * binds the socket (mode 0600), the mail process serves it with ctl as
 * the context (net_listen_fd). */
struct net_proto;
extern const struct net_proto control_proto;
/* Listens on unix:path (mode 0600). -1 with a message in *error_r
 * (valid until the next net call on this thread). */
int control_listen(struct control *ctl, struct net *net, const char *path,
		   const char **error_r);

/* One "* TEXT" line of the answer (sanitised: see control_text_append).
 * -1 once the client is gone. */
int control_reply_line(struct control_reply *reply, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The text after "ok" (optional). */
void control_reply_ok(struct control_reply *reply, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The text after "err"; returns -1 so a verb can `return
 * control_reply_error(...)`. */
int control_reply_error(struct control_reply *reply, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The uid of the client (root or loftd's own). */
unsigned control_reply_peer_uid(const struct control_reply *reply);

/* ---- the path --------------------------------------------------------- */

/* The control socket of the instance cfg describes (caller frees):
 * `control_socket` if set, else DATA_DIR/control.sock (data_dir's
 * default /var/lib/loft). NULL with a message (caller frees) when the
 * path is not absolute or too long for a Unix socket. */
char *control_socket_path(const struct config *cfg, char **error_r);

/* ---- the client (loftctl) ------------------------------------------- */

/* Called once per "* TEXT" line of the answer (text NUL-terminated). */
typedef void control_line_fn(void *ctx, const char *text);

enum control_call_result {
	CONTROL_CALL_OK,           /* "ok": *final_r holds its text */
	CONTROL_CALL_ERR,          /* "err": *final_r holds the reason */
	CONTROL_CALL_NOT_RUNNING,  /* no loftd listens on path */
	CONTROL_CALL_FAILED,       /* anything else: *final_r says what */
};

/* Connects to path, sends the request (words, each a valid WORD) and
 * reads the answer, giving up after timeout_ms without progress.
 * *final_r (caller frees) is set in every case. */
enum control_call_result control_call(const char *path,
				      const char *const *words, size_t count,
				      unsigned timeout_ms, control_line_fn *fn,
				      void *ctx, char **final_r);

#endif
