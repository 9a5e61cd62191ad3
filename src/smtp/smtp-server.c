/*
 * The SMTP server objects: settings of [smtp] (MX) or [submission] (see
 * smtp.h), shared by every session of that listener.
 */
#include "smtp-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static int read_settings(struct smtp_server *srv, struct smtp_live *lv,
			 const struct config *cfg, const char *section,
			 struct buf *errors)
{
	const char *path = cfg->path ? cfg->path : "config";
	int rc = 0;

	for (size_t i = 0; i < cfg->count; i++) {
		const struct config_entry *e = &cfg->entries[i];
		uint64_t v;

		if (strcmp(e->section, section) != 0 ||
		    strcmp(e->key, "listen") == 0)
			continue;
		if (strcmp(e->key, "max_message_size") == 0) {
			if (config_parse_size(e->value, &v) < 0 || v < 1024) {
				buf_printf(errors, "%s:%d: max_message_size: "
					   "expected a size of at least 1K, like "
					   "50M\n", path, e->line);
				rc = -1;
			} else if (v < lv->max_message_size) {
				lv->max_message_size = v;
			}
		} else if (strcmp(e->key, "max_recipients") == 0) {
			if (config_parse_uint(e->value, 100000, &v) < 0 || v < 1) {
				buf_printf(errors, "%s:%d: max_recipients: "
					   "expected a number from 1 to 100000\n",
					   path, e->line);
				rc = -1;
			} else {
				lv->max_recipients = (unsigned)v;
			}
		} else if (strcmp(section, "smtp") == 0 &&
			   (strcmp(e->key, "max_connections_per_ip") == 0 ||
			    strcmp(e->key, "max_messages_per_ip_per_hour") == 0)) {
			if (config_parse_uint(e->value, 100000000, &v) < 0) {
				buf_printf(errors, "%s:%d: %s: expected a number "
					   "(0 = no limit)\n", path, e->line,
					   e->key);
				rc = -1;
			} else if (strcmp(e->key, "max_connections_per_ip") == 0) {
				lv->max_conns_per_ip = (unsigned)v;
			} else {
				lv->max_messages_per_ip = (unsigned)v;
			}
		} else if (strcmp(section, "smtp") == 0 &&
			   strcmp(e->key, "mta_sts") == 0) {
			if (strcmp(e->value, "enforce") != 0 &&
			    strcmp(e->value, "testing") != 0 &&
			    strcmp(e->value, "none") != 0) {
				buf_printf(errors, "%s:%d: mta_sts: expected "
					   "enforce, testing or none\n", path,
					   e->line);
				rc = -1;
			}
		} else if (strcmp(section, "smtp") == 0 &&
			   strcmp(e->key, "check_threads") == 0) {
			if (config_parse_uint(e->value, 256, &v) < 0 || v < 1) {
				buf_printf(errors, "%s:%d: check_threads: expected "
					   "a number from 1 to 256\n", path, e->line);
				rc = -1;
			} else {
				srv->check_threads = (unsigned)v;
			}
		} else if (strcmp(section, "smtp") == 0 &&
			   strcmp(e->key, "sender_checks") == 0) {
			if (config_parse_bool(e->value, &lv->sender_checks) < 0) {
				buf_printf(errors, "%s:%d: sender_checks: expected "
					   "yes or no\n", path, e->line);
				rc = -1;
			}
		} else if (strcmp(section, "smtp") == 0 &&
			   strcmp(e->key, "dmarc_reject") == 0) {
			if (strcmp(e->value, "refuse") == 0) {
				lv->dmarc_junk = false;
			} else if (strcmp(e->value, "junk") == 0) {
				lv->dmarc_junk = true;
			} else {
				buf_printf(errors, "%s:%d: dmarc_reject: expected "
					   "refuse or junk\n", path, e->line);
				rc = -1;
			}
		} else if (strcmp(section, "smtp") == 0 &&
			   strcmp(e->key, "rspamd") == 0) {
			if (strncmp(e->value, "http://", 7) != 0 &&
			    strncmp(e->value, "https://", 8) != 0) {
				buf_printf(errors, "%s:%d: rspamd: expected a URL "
					   "like http://127.0.0.1:11333\n", path,
					   e->line);
				rc = -1;
			} else {
				free(lv->rspamd_url);
				lv->rspamd_url = xstrdup(e->value);
			}
		} else if (strcmp(section, "smtp") == 0 &&
			   strcmp(e->key, "rspamd_virus_symbols") == 0) {
			for (size_t k = 0; k < lv->rspamd_virus_symbol_count; k++)
				free(lv->rspamd_virus_symbols[k]);
			free(lv->rspamd_virus_symbols);
			lv->rspamd_virus_symbols = config_split_list(
				e->value, &lv->rspamd_virus_symbol_count);
			for (size_t k = 0; k < lv->rspamd_virus_symbol_count; k++) {
				const char *p = lv->rspamd_virus_symbols[k];
				if (*p == '\0' || strlen(p) > 100 ||
				    strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
					   "abcdefghijklmnopqrstuvwxyz"
					   "0123456789_.-") != strlen(p)) {
					buf_printf(errors, "%s:%d: rspamd_virus_"
						   "symbols: '%s' is not a "
						   "symbol name (like "
						   "CLAM_VIRUS)\n", path,
						   e->line, p);
					rc = -1;
				}
			}
		} else if (strcmp(section, "smtp") == 0 &&
			   strcmp(e->key, "rspamd_timeout") == 0) {
			if (config_parse_duration(e->value, &v) < 0 || v < 1 ||
			    v > 300) {
				buf_printf(errors, "%s:%d: rspamd_timeout: expected "
					   "a duration from 1s to 5m\n", path,
					   e->line);
				rc = -1;
			} else {
				lv->rspamd_timeout_ms = (unsigned)v * 1000;
			}
		} else if (strcmp(section, "smtp") == 0 &&
			   strcmp(e->key, "rspamd_max_size") == 0) {
			if (config_parse_size(e->value, &v) < 0 || v < 1024) {
				buf_printf(errors, "%s:%d: rspamd_max_size: expected "
					   "a size like 2M\n", path, e->line);
				rc = -1;
			} else {
				lv->rspamd_max_size = v;
			}
		} else if (strcmp(e->key, "timeout") == 0) {
			if (config_parse_duration(e->value, &v) < 0 || v < 1 ||
			    v > 86400) {
				buf_printf(errors, "%s:%d: timeout: expected a "
					   "duration from 1s to 1d, like 5m\n",
					   path, e->line);
				rc = -1;
			} else {
				lv->timeout = (unsigned)v;
			}
		} else {
			buf_printf(errors, "%s:%d: [%s]: unknown key '%s'\n",
				   path, e->line, section, e->key);
			rc = -1;
		}
	}
	return rc;
}

/* The defaults, then [limits] max_message_size, then the section(s). */
static void live_free(struct smtp_live *lv)
{
	free(lv->rspamd_url);
	for (size_t i = 0; i < lv->rspamd_virus_symbol_count; i++)
		free(lv->rspamd_virus_symbols[i]);
	free(lv->rspamd_virus_symbols);
	free(lv);
}

static struct smtp_live *live_read(struct smtp_server *srv,
				   const struct config *cfg, struct buf *errors)
{
	struct smtp_live *lv = xcalloc(1, sizeof(*lv));
	bool sub = srv->mode == SMTP_MODE_SUBMISSION;
	const char *v;
	uint64_t size;

	lv->max_message_size = 50ULL * 1024 * 1024;
	lv->max_recipients = 100;
	lv->timeout = SMTP_IDLE_TIMEOUT;
	lv->max_conns_per_ip = SMTP_MX_CONNS_PER_IP;
	lv->max_messages_per_ip = SMTP_MX_MESSAGES_PER_IP;
	lv->sender_checks = true;
	lv->rspamd_timeout_ms = 10000;
	lv->rspamd_max_size = 2 * 1024 * 1024;
	v = config_get(cfg, "limits", "max_message_size");
	if (v != NULL && config_parse_size(v, &size) == 0 && size > 0)
		lv->max_message_size = size;
	/* checked by the IMAP server's settings ([sharing] is theirs) */
	v = config_get(cfg, "sharing", "cross_domain");
	if (v != NULL && config_parse_bool(v, &lv->cross_domain) < 0)
		lv->cross_domain = false;
	if (read_settings(srv, lv, cfg, sub ? "submission" : "smtp", errors) < 0 ||
	    (sub && read_settings(srv, lv, cfg, "submissions", errors) < 0)) {
		live_free(lv);
		return NULL;
	}
	return lv;
}

struct smtp_server *smtp_server_create(const struct config *cfg,
				       enum smtp_mode mode, struct store *store,
				       struct auth *auth, struct buf *errors)
{
	struct smtp_server *srv = xcalloc(1, sizeof(*srv));
	const char *v;

	srv->mode = mode;
	srv->store = store;
	srv->auth = auth;
	srv->check_threads = 8;
	offload_init(&srv->release);
	srv->tls = config_get(cfg, "tls", "cert") != NULL;
	v = config_get(cfg, "", "hostname");
	if (v != NULL && v[0] != '\0')
		snprintf(srv->hostname, sizeof(srv->hostname), "%s", v);
	else if (gethostname(srv->hostname, sizeof(srv->hostname) - 1) < 0 ||
		 srv->hostname[0] == '\0')
		snprintf(srv->hostname, sizeof(srv->hostname), "localhost");
	srv->live = live_read(srv, cfg, errors);
	if (srv->live == NULL) {
		smtp_server_destroy(&srv);
		return NULL;
	}
	if (store != NULL && auth != NULL)
		srv->delivery = delivery_create(store, auth, srv->hostname);
	if (mode == SMTP_MODE_MX && store != NULL)
		srv->checks = smtp_check_pool_create(srv->check_threads);
	/* made even without limits: a reload may set some */
	if (mode == SMTP_MODE_MX)
		srv->limits = smtp_limits_create(srv->live->max_conns_per_ip,
						 srv->live->max_messages_per_ip);
	return srv;
}

const struct smtp_live *smtp_server_live(struct smtp_server *srv)
{
	return __atomic_load_n(&srv->live, __ATOMIC_ACQUIRE);
}

void smtp_server_reload(struct smtp_server *srv, const struct config *cfg)
{
	struct buf errors;
	buf_init(&errors, 0);
	struct smtp_live *lv = live_read(srv, cfg, &errors);
	buf_free(&errors);     /* the parent checked it: not expected */
	if (lv == NULL)
		return;
	/* only the reload thread writes srv->live */
	lv->older = srv->live;
	__atomic_store_n(&srv->live, lv, __ATOMIC_RELEASE);
	if (srv->limits != NULL)
		smtp_limits_set(srv->limits, lv->max_conns_per_ip,
				lv->max_messages_per_ip);
}

void smtp_server_set_queue(struct smtp_server *srv, struct queue *queue)
{
	srv->queue = queue;
	srv->dns = queue != NULL ? queue_dns(queue) : NULL;
}

void smtp_server_destroy(struct smtp_server **server)
{
	struct smtp_server *srv = *server;

	if (srv == NULL)
		return;
	offload_finish(&srv->release);
	delivery_destroy(&srv->delivery);
	smtp_check_pool_destroy(&srv->checks);
	smtp_limits_destroy(&srv->limits);
	while (srv->live != NULL) {
		struct smtp_live *lv = srv->live;
		srv->live = lv->older;
		live_free(lv);
	}
	free(srv);
	*server = NULL;
}
