/*
 * The IMAP server object shared by every session: settings from [imap],
 * the store and auth handles, and the per-user connection counts.
 */
#ifndef LOFT_IMAP_SERVER_H
#define LOFT_IMAP_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "imap-parser.h"
#include "imap.h"

struct imap_settings {
	bool inbox_namespace;        /* namespace = inbox: "INBOX." with "." */
	uint64_t append_limit;       /* APPENDLIMIT (RFC 7889), bytes */
	unsigned timeout_login;      /* seconds before authentication */
	unsigned timeout;            /* seconds when authenticated (>= 30 min
					by default, RFC 9051 5.4) */
	unsigned idle_keepalive;     /* "* OK Still here" interval in IDLE */
	unsigned max_user_conns;     /* per user, 0: no limit */
	unsigned max_user_ip_conns;  /* per user and address, 0: no limit */
	struct imap_parser_limits limits, limits_prelogin;
	bool tls_configured;         /* [tls] cert/key exist: offer STARTTLS */
	bool compress;               /* offer COMPRESS=DEFLATE (RFC 4978) */
	char *hostname;
	/* shared mailboxes: [imap] other_users_namespace, shared_namespace
	 * ("" turns one off), [sharing] cross_domain, max_acl_entries */
	char *other_namespace;
	char *shared_namespace;
	bool cross_domain;
	unsigned max_acl_entries;
};

struct imap_server {
	struct imap_settings set;
	struct store *store;
	struct auth *auth;
	pthread_mutex_t lock;
	struct imap_user_count *counts;
	size_t count_len, count_cap;
};

/* Counts a session of user_id from peer; false (nothing counted) if a
 * limit is reached. */
bool imap_server_conn_add(struct imap_server *server, int64_t user_id,
			  const char *peer);
void imap_server_conn_remove(struct imap_server *server, int64_t user_id,
			     const char *peer);

#endif
