/*
 * loftd's configuration: validation of the whole file (`loftd --check`)
 * and the settings the daemon itself uses. Each module reads its own
 * section (auth: [auth] [policy]; store: [store] and [limits]
 * max_message_size; each front-end its [proto] keys); this file checks
 * what belongs to the daemon (top level, [tls], [limits], the listen
 * lists) and that no section or key is unknown to everybody.
 */
#ifndef LOFT_DAEMON_CONFIG_H
#define LOFT_DAEMON_CONFIG_H

#include <stdbool.h>

#include "log.h"
#include "net.h"

struct buf;
struct config;

/* A protocol the daemon can listen for. */
enum daemon_proto {
	DAEMON_IMAP, DAEMON_IMAPS, DAEMON_POP3, DAEMON_POP3S, DAEMON_LMTP,
	DAEMON_HTTP, DAEMON_HTTPS, DAEMON_METRICS,
	DAEMON_SMTP, DAEMON_SUBMISSION, DAEMON_SUBMISSIONS, DAEMON_MANAGESIEVE,
	DAEMON_PROTO_COUNT
};

struct daemon_listen {
	char **addrs;          /* from `listen = a, b, ...` */
	size_t count;
	int line;
};

struct daemon_config {
	const struct config *cfg;
	const char *data_dir;
	const char *hostname;
	enum log_level log_level;
	bool syslog;
	/* [security] sandbox = best-effort (default): a process whose files
	 * cannot be confined runs anyway (logged); required: loftd refuses */
	bool sandbox_best_effort;
	char *control_socket;      /* the control socket's path (owned) */
	struct net_settings net;   /* tls_cert/tls_key point into cfg */
	struct daemon_listen listen[DAEMON_PROTO_COUNT];
};

extern const char *const daemon_proto_names[DAEMON_PROTO_COUNT];

/* Validates cfg as far as the daemon is concerned, filling dc. Errors are
 * appended to errors and warnings to warnings, each "FILE:LINE: message\n".
 * Returns -1 if there was any error. Does not run the modules' own
 * validators (the caller does: auth, store, front-ends). */
int daemon_config_check(const struct config *cfg, struct daemon_config *dc,
			struct buf *errors, struct buf *warnings);
/* The same settings without touching any file (a confined child reading
 * the configuration the parent checked, on reload). */
int daemon_config_read(const struct config *cfg, struct daemon_config *dc,
		       struct buf *errors);
void daemon_config_deinit(struct daemon_config *dc);

#endif
