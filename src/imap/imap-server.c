/*
 * The IMAP server object: reads [imap] and counts sessions per user.
 *
 * [imap] keys (besides the daemon's `listen`):
 *   namespace = standard | inbox   "inbox": Courier-style personal
 *                                   namespace "INBOX." with separator "."
 *   append_limit = [limits] max_message_size (50M)
 *                                  APPENDLIMIT and the largest APPEND
 *   max_line = 1M                  command text outside literals
 *   max_literal = 1M               one literal held in memory (APPEND
 *                                  streams to disk and is not bound by it)
 *   timeout = 30m                  autologout when authenticated
 *   timeout_login = 1m             autologout before authentication
 *   idle_keepalive = 2m            "* OK Still here" in IDLE
 *   max_connections_per_user = 1000
 *   max_connections_per_user_ip = 200
 *   compress = yes                 offer COMPRESS=DEFLATE
 */
#include "imap-server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "imap-urlauth.h"

struct imap_user_count {
	int64_t user_id;
	char peer[64];
	unsigned count;
};

static int bad_value(const struct config *cfg, const char *key,
		     const char *why, struct buf *errors)
{
	const struct config_entry *e = config_find(cfg, "imap", key);
	buf_printf(errors, "%s:%d: [imap] %s: %s\n", cfg->path,
		   e != NULL ? e->line : 0, key, why);
	return -1;
}

static int get_size(const struct config *cfg, const char *key, uint64_t def,
		    uint64_t min, uint64_t *v_r, struct buf *errors)
{
	const char *v = config_get(cfg, "imap", key);
	*v_r = def;
	if (v == NULL)
		return 0;
	if (config_parse_size(v, v_r) < 0 || *v_r < min)
		return bad_value(cfg, key, "invalid size", errors);
	return 0;
}

static int get_duration(const struct config *cfg, const char *key,
			uint64_t def, unsigned *v_r, struct buf *errors)
{
	const char *v = config_get(cfg, "imap", key);
	uint64_t s = def;
	if (v != NULL && (config_parse_duration(v, &s) < 0 || s == 0 ||
			  s > 7 * 24 * 3600))
		return bad_value(cfg, key, "invalid duration", errors);
	*v_r = (unsigned)s;
	return 0;
}

static int get_uint(const struct config *cfg, const char *key, uint64_t def,
		    unsigned *v_r, struct buf *errors)
{
	const char *v = config_get(cfg, "imap", key);
	uint64_t n = def;
	if (v != NULL && config_parse_uint(v, 10000000, &n) < 0)
		return bad_value(cfg, key, "invalid number", errors);
	*v_r = (unsigned)n;
	return 0;
}

static const char *const imap_keys[] = {
	"listen", "namespace", "append_limit", "max_line", "max_literal",
	"timeout", "timeout_login", "idle_keepalive",
	"max_connections_per_user", "max_connections_per_user_ip", "compress",
	"other_users_namespace", "shared_namespace",
	NULL,
};

/* [imap] and [imaps] are this module's: unknown keys are errors. imaps
 * shares the [imap] settings and only has its own listen. */
static int check_keys(const struct config *cfg, struct buf *errors)
{
	int ret = 0;
	for (size_t i = 0; i < cfg->count; i++) {
		const struct config_entry *e = &cfg->entries[i];
		bool imaps = strcmp(e->section, "imaps") == 0;
		if (strcmp(e->section, "imap") != 0 && !imaps)
			continue;
		bool known = false;
		for (size_t k = 0; imap_keys[k] != NULL && !known; k++)
			known = strcmp(e->key, imap_keys[k]) == 0 &&
				(!imaps || k == 0);
		if (!known) {
			buf_printf(errors, "%s:%d: [%s] unknown key '%s'%s\n",
				   cfg->path, e->line, e->section, e->key,
				   imaps ? " (set it in [imap])" : "");
			ret = -1;
		}
	}
	return ret;
}

/* Shared mailboxes: the namespaces' names (one component, no "/", no
 * wildcard) and [sharing]. */
static int read_sharing(const struct config *cfg, struct imap_settings *set,
			struct buf *errors)
{
	int ret = 0;
	const char *keys[2] = {"other_users_namespace", "shared_namespace"};
	const char *defs[2] = {"Other Users", "Shared"};
	char **dst[2] = {&set->other_namespace, &set->shared_namespace};
	for (int i = 0; i < 2; i++) {
		const char *v = config_get(cfg, "imap", keys[i]);
		if (v == NULL)
			v = defs[i];
		if (strpbrk(v, "/*%\"\\") != NULL || strchr(v, '.') != NULL)
			ret |= bad_value(cfg, keys[i], "one name without / . *"
					 " % or quotes", errors);
		*dst[i] = xstrdup(v);
	}
	if (set->other_namespace[0] != '\0' &&
	    strcmp(set->other_namespace, set->shared_namespace) == 0)
		ret |= bad_value(cfg, "shared_namespace", "must differ from"
				 " other_users_namespace", errors);
	const char *cd = config_get(cfg, "sharing", "cross_domain");
	set->cross_domain = false;
	if (cd != NULL && config_parse_bool(cd, &set->cross_domain) < 0) {
		buf_printf(errors, "[sharing] cross_domain: expected yes or no\n");
		ret = -1;
	}
	uint64_t max = 1000;
	const char *me = config_get(cfg, "sharing", "max_acl_entries");
	if (me != NULL && config_parse_uint(me, 1000000, &max) < 0) {
		buf_printf(errors, "[sharing] max_acl_entries: invalid number\n");
		ret = -1;
	}
	set->max_acl_entries = (unsigned)max;
	return ret;
}

static int read_settings(const struct config *cfg, struct imap_settings *set,
			 struct buf *errors)
{
	int ret = check_keys(cfg, errors);
	const char *ns = config_get(cfg, "imap", "namespace");
	if (ns != NULL && strcmp(ns, "inbox") == 0)
		set->inbox_namespace = true;
	else if (ns != NULL && strcmp(ns, "standard") != 0)
		ret = bad_value(cfg, "namespace",
				"must be \"standard\" or \"inbox\"", errors);
	uint64_t line, literal, max_message = 50ULL << 20;
	const char *mm = config_get(cfg, "limits", "max_message_size");
	if (mm != NULL && config_parse_size(mm, &max_message) < 0)
		max_message = 50ULL << 20;   /* the store reports it */
	ret |= get_size(cfg, "append_limit", max_message, 1024,
			&set->append_limit, errors);
	ret |= get_size(cfg, "max_line", 1 << 20, 8192, &line, errors);
	ret |= get_size(cfg, "max_literal", 1 << 20, 8192, &literal, errors);
	if (set->append_limit > UINT32_MAX)
		ret |= bad_value(cfg, "append_limit", "at most 4G", errors);
	ret |= get_duration(cfg, "timeout", 30 * 60, &set->timeout, errors);
	ret |= get_duration(cfg, "timeout_login", 60, &set->timeout_login,
			    errors);
	ret |= get_duration(cfg, "idle_keepalive", 120, &set->idle_keepalive,
			    errors);
	ret |= get_uint(cfg, "max_connections_per_user", 1000,
			&set->max_user_conns, errors);
	ret |= get_uint(cfg, "max_connections_per_user_ip", 200,
			&set->max_user_ip_conns, errors);
	const char *comp = config_get(cfg, "imap", "compress");
	set->compress = true;
	if (comp != NULL && config_parse_bool(comp, &set->compress) < 0)
		ret |= bad_value(cfg, "compress", "expected yes or no", errors);
	set->limits = imap_parser_limits_default;
	set->limits.max_line = line;
	set->limits.max_literal = literal;
	if (set->limits.max_command < line + literal)
		set->limits.max_command = line + literal;
	set->limits_prelogin = imap_parser_limits_prelogin;
	set->tls_configured = config_get(cfg, "tls", "cert") != NULL &&
			      config_get(cfg, "tls", "key") != NULL;
	const char *host = config_get(cfg, "", "hostname");
	set->hostname = xstrdup(host != NULL ? host : "localhost");
	ret |= read_sharing(cfg, set, errors);
	return ret == 0 ? 0 : -1;
}

/* What read_settings allocated. */
static void settings_free(struct imap_settings *set)
{
	free(set->hostname);
	free(set->other_namespace);
	free(set->shared_namespace);
}

struct imap_server *imap_server_create(const struct config *cfg,
				       struct store *store, struct auth *auth,
				       struct buf *errors)
{
	struct imap_server *server = xcalloc(1, sizeof(*server));
	if (read_settings(cfg, &server->set, errors) < 0) {
		settings_free(&server->set);
		free(server);
		return NULL;
	}
	server->store = store;
	server->auth = auth;
	imap_urlauth_set_namespace(server->set.inbox_namespace);
	imap_urlauth_set_sharing(server->set.other_namespace,
				 server->set.shared_namespace,
				 server->set.cross_domain);
	pthread_mutex_init(&server->lock, NULL);
	return server;
}

void imap_server_reload(struct imap_server *server, const struct config *cfg)
{
	struct imap_settings set;
	struct buf errors;
	memset(&set, 0, sizeof(set));
	buf_init(&errors, 0);
	if (read_settings(cfg, &set, &errors) == 0) {
		/* Sessions read these with no lock (imap_client_after_command). */
		__atomic_store_n(&server->set.timeout, set.timeout,
				 __ATOMIC_RELAXED);
		__atomic_store_n(&server->set.timeout_login, set.timeout_login,
				 __ATOMIC_RELAXED);
		__atomic_store_n(&server->set.idle_keepalive,
				 set.idle_keepalive, __ATOMIC_RELAXED);
		pthread_mutex_lock(&server->lock);
		server->set.max_user_conns = set.max_user_conns;
		server->set.max_user_ip_conns = set.max_user_ip_conns;
		pthread_mutex_unlock(&server->lock);
	}
	settings_free(&set);
	buf_free(&errors);
}

void imap_server_destroy(struct imap_server **serverp)
{
	struct imap_server *server = *serverp;
	if (server == NULL)
		return;
	pthread_mutex_destroy(&server->lock);
	free(server->counts);
	settings_free(&server->set);
	free(server);
	*serverp = NULL;
}

/* Entries per (user, peer); the user's total is their sum. A linear scan
 * is enough for thousands of sessions; a hash would be the next step. */
bool imap_server_conn_add(struct imap_server *server, int64_t user_id,
			  const char *peer)
{
	bool ok = true;
	pthread_mutex_lock(&server->lock);
	unsigned total = 0;
	struct imap_user_count *mine = NULL;
	for (size_t i = 0; i < server->count_len; i++) {
		struct imap_user_count *e = &server->counts[i];
		if (e->user_id != user_id)
			continue;
		total += e->count;
		if (strcmp(e->peer, peer) == 0)
			mine = e;
	}
	if ((server->set.max_user_conns > 0 &&
	     total >= server->set.max_user_conns) ||
	    (server->set.max_user_ip_conns > 0 && mine != NULL &&
	     mine->count >= server->set.max_user_ip_conns)) {
		ok = false;
	} else if (mine != NULL) {
		mine->count++;
	} else {
		if (server->count_len == server->count_cap) {
			server->count_cap = server->count_cap ? server->count_cap * 2 : 64;
			server->counts = xrealloc(server->counts,
						  server->count_cap * sizeof(*server->counts));
		}
		mine = &server->counts[server->count_len++];
		mine->user_id = user_id;
		snprintf(mine->peer, sizeof(mine->peer), "%s", peer);
		mine->count = 1;
	}
	pthread_mutex_unlock(&server->lock);
	return ok;
}

void imap_server_conn_remove(struct imap_server *server, int64_t user_id,
			     const char *peer)
{
	pthread_mutex_lock(&server->lock);
	for (size_t i = 0; i < server->count_len; i++) {
		struct imap_user_count *e = &server->counts[i];
		if (e->user_id == user_id && strcmp(e->peer, peer) == 0) {
			if (--e->count == 0)
				server->counts[i] = server->counts[--server->count_len];
			break;
		}
	}
	pthread_mutex_unlock(&server->lock);
}
