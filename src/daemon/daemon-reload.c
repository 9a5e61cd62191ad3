/*
 * SIGHUP: which keys of a new configuration take effect at once and which
 * wait for a restart. Live: log_level, [tls] (the pair is read again),
 * [limits] max_connections_per_ip, output_buffer, write_timeout and
 * idle_timeout, [policy] and [auth] (the auth process), and the keys the
 * front-ends' reload hooks take (main.c's rows: [imap] timeouts and
 * per-user connection limits, [pop3] and [lmtp] timeout, [smtp] and
 * [submission] but listen, [http]'s timeouts, sizes, sessions and CORS),
 * and [sieve] (the admin's scripts, compiled again). Everything
 * else (listen addresses, threads, data_dir, user, ...) is logged as
 * needing a restart when it changed, so a reload never silently ignores
 * a change.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "daemon.h"
#include "log.h"

struct live_key {
	const char *section;
	const char *key;          /* NULL: every key of the section */
};

static const struct live_key live_keys[] = {
	{"", "log_level"},
	{"tls", NULL},
	{"limits", "max_connections_per_ip"},
	{"limits", "output_buffer"},
	{"limits", "write_timeout"},
	{"limits", "idle_timeout"},
	{"policy", NULL},
	{"auth", NULL},
	/* the front-ends' reload hooks */
	{"imap", "timeout"},
	{"imap", "timeout_login"},
	{"imap", "idle_keepalive"},
	{"imap", "max_connections_per_user"},
	{"imap", "max_connections_per_user_ip"},
	{"pop3", "timeout"},
	{"pop3s", "timeout"},
	{"lmtp", "timeout"},
	/* new SMTP sessions take the new settings (smtp_server_reload) */
	{"smtp", NULL},
	{"submission", NULL},
	{"submissions", NULL},
	/* the next HTTP requests (http_server_reload) */
	{"http", "max_body"},
	{"http", "header_timeout"},
	{"http", "body_timeout"},
	{"http", "keepalive_timeout"},
	{"http", "stream_buffer"},
	{"http", "cors_origins"},
	{"http", "session_idle"},
	{"http", "session_remember"},
	{"http", "session_bind_address"},
	{"http", "trust_proxy"},
	/* the admin's Sieve scripts, compiled again (daemon_extras_reload) */
	{"sieve", NULL},
	{NULL, NULL},
};

/* Exceptions inside a live section. */
static const struct live_key restart_keys[] = {
	{"auth", "hash_threads"},     /* the gate's pool is made at start */
	{"smtp", "listen"},
	{"smtp", "check_threads"},    /* the check pool is made at start */
	{"smtp", "mta_sts"},          /* the policy route is made at start */
	{"submission", "listen"},
	{"submissions", "listen"},
	/* readable in the confined mail process only as started (the
	 * before/after scripts' directories too: a script elsewhere fails
	 * to load at the reload, logged, and the running ones stay) */
	{"sieve", "global_dir"},
	{NULL, NULL},
};

bool daemon_reload_is_live(const char *section, const char *key)
{
	for (const struct live_key *k = restart_keys; k->section != NULL; k++)
		if (strcmp(k->section, section) == 0 && strcmp(k->key, key) == 0)
			return false;
	for (const struct live_key *k = live_keys; k->section != NULL; k++)
		if (strcmp(k->section, section) == 0 &&
		    (k->key == NULL || strcmp(k->key, key) == 0))
			return true;
	return false;
}

static bool same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static const char *shown(const char *v)
{
	return v != NULL ? v : "(unset)";
}

/* Calls fn once per (section, key) set in a or b. */
static void each_key(const struct config *a, const struct config *b,
		     void (*fn)(const char *section, const char *key,
				const struct config *a,
				const struct config *b))
{
	for (size_t i = 0; i < a->count; i++) {
		const struct config_entry *e = &a->entries[i];
		if (config_find(a, e->section, e->key) == e)
			fn(e->section, e->key, a, b);
	}
	for (size_t i = 0; i < b->count; i++) {
		const struct config_entry *e = &b->entries[i];
		if (config_find(b, e->section, e->key) == e &&
		    config_find(a, e->section, e->key) == NULL)
			fn(e->section, e->key, a, b);
	}
}

static void restart_key(const char *section, const char *key,
			const struct config *started, const struct config *next)
{
	if (daemon_reload_is_live(section, key))
		return;
	if (!same(config_get(started, section, key), config_get(next, section, key)))
		log_warn("loftd", NULL, "reload: %s%s%s%s changed: it takes "
			 "effect at the next restart", section[0] ? "[" : "",
			 section, section[0] ? "] " : "", key);
}

static void live_key(const char *section, const char *key,
		     const struct config *live, const struct config *next)
{
	if (!daemon_reload_is_live(section, key))
		return;
	const char *a = config_get(live, section, key);
	const char *b = config_get(next, section, key);
	if (!same(a, b))
		log_info("loftd", NULL, "reload: %s%s%s%s: %s -> %s",
			 section[0] ? "[" : "", section, section[0] ? "] " : "",
			 key, shown(a), shown(b));
}

void daemon_reload_diff(const struct config *started,
			const struct config *live, const struct config *next)
{
	each_key(started, next, restart_key);
	each_key(live, next, live_key);
}
