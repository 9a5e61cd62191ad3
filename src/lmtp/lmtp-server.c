/*
 * The LMTP server object: its settings from the configuration file
 * ([lmtp] and the top-level hostname, see lmtp.h) and the store and auth
 * it delivers with, shared by every session. Sessions live in
 * lmtp-session.c, delivery in lmtp-deliver.c.
 */
#include "lmtp-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

enum setting_kind { SETTING_SIZE, SETTING_UINT, SETTING_DURATION };

/* The [lmtp] keys besides listen (the daemon's). */
static const struct setting {
	const char *key;
	enum setting_kind kind;
	uint64_t min, max;
	const char *expect;
} lmtp_settings[] = {
	{"max_message_size", SETTING_SIZE, 1024, UINT64_MAX,
	 "a size of at least 1K, like 50M"},
	{"max_recipients", SETTING_UINT, 1, 100000, "a number from 1 to 100000"},
	{"timeout", SETTING_DURATION, 1, 86400,
	 "a duration from 1s to 1d, like 5m"},
};
#define SETTING_COUNT (sizeof(lmtp_settings) / sizeof(lmtp_settings[0]))

static const struct setting *setting_find(const char *key)
{
	for (size_t i = 0; i < SETTING_COUNT; i++) {
		if (strcmp(lmtp_settings[i].key, key) == 0)
			return &lmtp_settings[i];
	}
	return NULL;
}

static int setting_parse(const struct setting *set, const char *value,
			 uint64_t *v_r)
{
	int ret;

	switch (set->kind) {
	case SETTING_SIZE:
		ret = config_parse_size(value, v_r);
		break;
	case SETTING_UINT:
		ret = config_parse_uint(value, set->max, v_r);
		break;
	default:
		ret = config_parse_duration(value, v_r);
		break;
	}
	return ret == 0 && *v_r >= set->min && *v_r <= set->max ? 0 : -1;
}

static void apply(struct lmtp_server *srv, const char *key, uint64_t v)
{
	if (strcmp(key, "max_message_size") == 0) {
		/* The store refuses more than [limits] max_message_size
		 * anyway; [lmtp] may only say less. */
		if (v < srv->max_message_size)
			srv->max_message_size = v;
	} else if (strcmp(key, "max_recipients") == 0) {
		srv->max_recipients = (unsigned)v;
	} else if (strcmp(key, "timeout") == 0) {
		srv->timeout = (unsigned)v;
	}
}

/* Reads [lmtp]; every bad line is reported. Returns false if any was. */
static bool read_settings(struct lmtp_server *srv, const struct config *cfg,
			  struct buf *errors)
{
	const char *path = cfg->path ? cfg->path : "config";
	bool ok = true;
	uint64_t v;

	for (size_t i = 0; i < cfg->count; i++) {
		const struct config_entry *e = &cfg->entries[i];
		const struct setting *set;

		if (strcmp(e->section, "lmtp") != 0 ||
		    strcmp(e->key, "listen") == 0)
			continue;
		set = setting_find(e->key);
		if (set == NULL) {
			buf_printf(errors, "%s:%d: [lmtp]: unknown key '%s'\n",
				   path, e->line, e->key);
			ok = false;
		} else if (setting_parse(set, e->value, &v) < 0) {
			buf_printf(errors, "%s:%d: %s: expected %s\n", path,
				   e->line, e->key, set->expect);
			ok = false;
		} else {
			apply(srv, e->key, v);
		}
	}
	return ok;
}

struct lmtp_server *lmtp_server_create(const struct config *cfg,
				       struct store *store, struct auth *auth,
				       struct buf *errors)
{
	struct lmtp_server *srv = xcalloc(1, sizeof(*srv));
	const char *v;
	uint64_t size;

	offload_init(&srv->release);
	srv->store = store;
	srv->auth = auth;
	srv->max_message_size = 50ULL * 1024 * 1024;
	srv->max_recipients = 100;
	srv->timeout = LMTP_IDLE_TIMEOUT;

	v = config_get(cfg, "limits", "max_message_size");
	if (v != NULL && config_parse_size(v, &size) == 0 && size > 0)
		srv->max_message_size = size;
	v = config_get(cfg, "", "hostname");
	if (v != NULL && v[0] != '\0')
		snprintf(srv->hostname, sizeof(srv->hostname), "%s", v);
	else if (gethostname(srv->hostname, sizeof(srv->hostname) - 1) < 0 ||
		 srv->hostname[0] == '\0')
		snprintf(srv->hostname, sizeof(srv->hostname), "localhost");
	if (store != NULL && auth != NULL)
		srv->delivery = delivery_create(store, auth, srv->hostname);
	if (cfg != NULL && !read_settings(srv, cfg, errors)) {
		lmtp_server_destroy(&srv);
		return NULL;
	}
	return srv;
}

void lmtp_server_reload(struct lmtp_server *server, const struct config *cfg)
{
	const char *v = config_get(cfg, "lmtp", "timeout");
	const struct setting *set = setting_find("timeout");
	uint64_t t = LMTP_IDLE_TIMEOUT;
	if (v != NULL && setting_parse(set, v, &t) < 0)
		return;     /* loftd checked it: cannot happen */
	__atomic_store_n(&server->timeout, (unsigned)t, __ATOMIC_RELAXED);
}

void lmtp_server_destroy(struct lmtp_server **server)
{
	struct lmtp_server *srv = *server;

	if (srv == NULL)
		return;
	/* The daemon closes the store after this: no release may still
	 * be using it. */
	offload_finish(&srv->release);
	delivery_destroy(&srv->delivery);
	free(srv);
	*server = NULL;
}
