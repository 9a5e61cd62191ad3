/*
 * Validation of the daemon's part of the configuration file (see
 * daemon-config.h and docs/config.md).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "control.h"
#include "daemon-config.h"
#include "net-proxy.h"

#define DEFAULT_DATA_DIR "/var/lib/loft"

const char *const daemon_proto_names[DAEMON_PROTO_COUNT] = {
	"imap", "imaps", "pop3", "pop3s", "lmtp", "http", "https", "metrics",
	"smtp", "submission", "submissions", "managesieve",
};

/* Sections and the keys the daemon itself knows. NULL keys: the section's
 * keys are checked by the module that owns it. */
static const char *const top_keys[] = {
	"data_dir", "hostname", "log_level", "syslog", "control_socket", "user",
	NULL,
};
static const char *const tls_keys[] = { "cert", "key", NULL };
static const char *const limits_keys[] = {
	"io_threads", "worker_threads", "max_connections_per_ip",
	"output_buffer", "write_timeout", "idle_timeout",
	"max_message_size",     /* the store's */
	NULL,
};
static const char *const store_keys[] = {
	"fsync", "retention_interval",
	/* scale-out (docs/scale-out.md) */
	"backend", "postgres", "postgres_pool", "postgres_timeout", "blobs",
	"blob_dir", "blob_cache", NULL };
/* [store] blobs = s3 (docs/scale-out.md; store-config.c reads them) */
static const char *const s3_keys[] = { "endpoint", "bucket", "region",
				       "access_key", "secret_key_file",
				       "addressing", "timeout", NULL };
/* PROXY protocol v1/v2 from these networks on every TCP listener
 * (src/net/net-proxy.h; docs/scale-out.md) */
static const char *const proxy_keys[] = { "trusted", NULL };
/* shared mailboxes (src/imap/imap-server.c reads them) */
static const char *const sharing_keys[] = { "cross_domain", "max_acl_entries",
					    "seen", NULL };
/* what loftd does where its processes' files cannot be confined
 * (daemon-sandbox.c, daemon-check.c) */
static const char *const security_keys[] = { "sandbox", NULL };

struct section_rule {
	const char *name;
	const char *const *keys;   /* NULL: owned by a module's validator */
	const char *warning;       /* accepted, with this warning */
};

static const struct section_rule section_rules[] = {
	{"", top_keys, NULL},
	{"tls", tls_keys, NULL},
	{"limits", limits_keys, NULL},
	{"store", store_keys, NULL},
	{"s3", s3_keys, NULL},
	{"proxy", proxy_keys, NULL},
	{"policy", NULL, NULL},
	{"auth", NULL, NULL},
	{"imap", NULL, NULL},
	{"imaps", NULL, NULL},
	{"pop3", NULL, NULL},
	{"pop3s", NULL, NULL},
	{"lmtp", NULL, NULL},
	{"queue", NULL, NULL},
	{"dns", NULL, NULL},
	{"smtp", NULL, NULL},
	{"submission", NULL, NULL},
	{"submissions", NULL, NULL},
	{"http", NULL, NULL},
	{"https", NULL, NULL},
	{"metrics", NULL, NULL},
	{"jmap", NULL, NULL},
	{"sieve", NULL, NULL},
	{"managesieve", NULL, NULL},
	{"sharing", sharing_keys, NULL},
	{"security", security_keys, NULL},
};

static const struct section_rule *find_rule(const char *section)
{
	for (size_t i = 0; i < sizeof(section_rules) / sizeof(*section_rules); i++)
		if (strcmp(section_rules[i].name, section) == 0)
			return &section_rules[i];
	return NULL;
}

static bool key_listed(const char *const *keys, const char *key)
{
	for (; *keys != NULL; keys++)
		if (strcmp(*keys, key) == 0)
			return true;
	return false;
}

static int section_line(const struct config *cfg, const char *section)
{
	for (size_t i = 0; i < cfg->section_count; i++)
		if (strcmp(cfg->sections[i], section) == 0)
			return cfg->section_lines[i];
	return 0;
}

/* Unknown sections and keys; warnings for sections not built yet. */
static int check_names(const struct config *cfg, struct buf *errors,
		       struct buf *warnings)
{
	int errs = 0;
	for (size_t i = 0; i < cfg->section_count; i++) {
		const struct section_rule *r = find_rule(cfg->sections[i]);
		if (r == NULL) {
			buf_printf(errors, "%s:%d: unknown section [%s]\n",
				   cfg->path, cfg->section_lines[i],
				   cfg->sections[i]);
			errs++;
		} else if (r->warning != NULL) {
			buf_printf(warnings, "%s:%d: warning: %s\n", cfg->path,
				   cfg->section_lines[i], r->warning);
		}
	}
	for (size_t i = 0; i < cfg->count; i++) {
		const struct config_entry *e = &cfg->entries[i];
		const struct config_entry *last = config_find(cfg, e->section,
							      e->key);
		if (last != NULL && last != e && last->line != e->line)
			buf_printf(warnings, "%s:%d: warning: '%s' is set again "
				   "on line %d, which wins\n", cfg->path,
				   e->line, e->key, last->line);
	}
	for (size_t i = 0; i < cfg->count; i++) {
		const struct config_entry *e = &cfg->entries[i];
		const struct section_rule *r = find_rule(e->section);
		if (r == NULL || r->keys == NULL || key_listed(r->keys, e->key))
			continue;
		if (e->section[0] == '\0')
			buf_printf(errors, "%s:%d: unknown key '%s'\n",
				   cfg->path, e->line, e->key);
		else
			buf_printf(errors, "%s:%d: unknown key '%s' in [%s]\n",
				   cfg->path, e->line, e->key, e->section);
		errs++;
	}
	return errs;
}

static void err_at(struct buf *errors, const struct config *cfg,
		   const struct config_entry *e, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void err_at(struct buf *errors, const struct config *cfg,
		   const struct config_entry *e, const char *fmt, ...)
{
	va_list ap;
	buf_printf(errors, "%s:%d: ", cfg->path, e != NULL ? e->line : 0);
	va_start(ap, fmt);
	buf_vprintf(errors, fmt, ap);
	va_end(ap);
	buf_append_char(errors, '\n');
}

static int get_uint(const struct config *cfg, const char *section,
		    const char *key, uint64_t max, unsigned *v_r,
		    struct buf *errors)
{
	const struct config_entry *e = config_find(cfg, section, key);
	uint64_t v;
	if (e == NULL)
		return 0;
	if (config_parse_uint(e->value, max, &v) < 0) {
		err_at(errors, cfg, e, "%s: expected a number up to %llu, got '%s'",
		       key, (unsigned long long)max, e->value);
		return 1;
	}
	*v_r = (unsigned)v;
	return 0;
}

static int get_duration(const struct config *cfg, const char *section,
			const char *key, uint64_t max, unsigned *v_r,
			struct buf *errors)
{
	const struct config_entry *e = config_find(cfg, section, key);
	uint64_t v;
	if (e == NULL)
		return 0;
	if (config_parse_duration(e->value, &v) < 0 || v > max) {
		err_at(errors, cfg, e, "%s: expected a duration like 30s, 5m "
		       "or 1h (at most %llu s), got '%s'", key,
		       (unsigned long long)max, e->value);
		return 1;
	}
	*v_r = (unsigned)v;
	return 0;
}

static int check_top(const struct config *cfg, struct daemon_config *dc,
		     struct buf *errors)
{
	int errs = 0;
	const struct config_entry *e;
	dc->data_dir = DEFAULT_DATA_DIR;
	/* Whether it can be used (owner, creation) is daemon-user.c's. */
	if ((e = config_find(cfg, "", "data_dir")) != NULL) {
		if (e->value[0] != '/') {
			err_at(errors, cfg, e, "data_dir must be an absolute path");
			errs++;
		}
		dc->data_dir = e->value;
	}
	char *why = NULL;
	dc->control_socket = control_socket_path(cfg, &why);
	if (dc->control_socket == NULL) {
		const struct config_entry *c = config_find(cfg, "", "control_socket");
		err_at(errors, cfg, c != NULL ? c : config_find(cfg, "", "data_dir"),
		       "%s", why);
		free(why);
		errs++;
	}
	dc->hostname = config_get(cfg, "", "hostname");
	if (dc->hostname != NULL && dc->hostname[0] == '\0') {
		err_at(errors, cfg, config_find(cfg, "", "hostname"),
		       "hostname is empty");
		errs++;
	}
	dc->log_level = LOG_LVL_INFO;
	if ((e = config_find(cfg, "", "log_level")) != NULL &&
	    log_level_parse(e->value, &dc->log_level) < 0) {
		err_at(errors, cfg, e, "log_level: expected debug, info, warn "
		       "or error, got '%s'", e->value);
		errs++;
	}
	if ((e = config_find(cfg, "", "syslog")) != NULL &&
	    config_parse_bool(e->value, &dc->syslog) < 0) {
		err_at(errors, cfg, e, "syslog: expected yes or no");
		errs++;
	}
	dc->sandbox_best_effort = true;
	if ((e = config_find(cfg, "security", "sandbox")) != NULL) {
		if (strcmp(e->value, "required") == 0) {
			dc->sandbox_best_effort = false;
		} else if (strcmp(e->value, "best-effort") != 0) {
			err_at(errors, cfg, e, "sandbox: expected required or "
			       "best-effort, got '%s'", e->value);
			errs++;
		}
	}
	return errs;
}

static int check_limits(const struct config *cfg, struct daemon_config *dc,
			struct buf *errors)
{
	int errs = 0;
	struct net_settings *n = &dc->net;
	errs += get_uint(cfg, "limits", "io_threads", 256, &n->io_threads, errors);
	errs += get_uint(cfg, "limits", "worker_threads", 1024,
			 &n->worker_threads, errors);
	errs += get_uint(cfg, "limits", "max_connections_per_ip", 1000000,
			 &n->max_conns_per_ip, errors);
	errs += get_duration(cfg, "limits", "write_timeout", 86400,
			     &n->write_timeout, errors);
	errs += get_duration(cfg, "limits", "idle_timeout", 86400,
			     &n->idle_timeout, errors);
	const struct config_entry *e = config_find(cfg, "limits", "output_buffer");
	uint64_t v;
	if (e != NULL) {
		if (config_parse_size(e->value, &v) < 0 || v < 4096 ||
		    v > (uint64_t)1 << 30) {
			err_at(errors, cfg, e, "output_buffer: expected a size "
			       "from 4K to 1G, got '%s'", e->value);
			errs++;
		} else {
			n->output_high_water = (size_t)v;
		}
	}
	if (n->write_timeout == 0 && config_find(cfg, "limits", "write_timeout")) {
		err_at(errors, cfg, config_find(cfg, "limits", "write_timeout"),
		       "write_timeout must be at least 1s");
		errs++;
	}
	return errs;
}

static int check_tls(const struct config *cfg, struct daemon_config *dc,
		     bool read_files, struct buf *errors)
{
	const struct config_entry *cert = config_find(cfg, "tls", "cert");
	const struct config_entry *key = config_find(cfg, "tls", "key");
	if (cert == NULL && key == NULL)
		return 0;
	if (cert == NULL || key == NULL) {
		err_at(errors, cfg, cert != NULL ? cert : key,
		       "[tls] needs both cert and key");
		return 1;
	}
	dc->net.tls_cert = cert->value;
	dc->net.tls_key = key->value;
	if (!read_files)
		return 0;
	int errs = 0;
	const struct config_entry *files[2] = {cert, key};
	for (int i = 0; i < 2; i++) {
		if (access(files[i]->value, R_OK) != 0) {
			err_at(errors, cfg, files[i], "%s: cannot read '%s': %m",
			       files[i]->key, files[i]->value);
			errs++;
		}
	}
	if (errs == 0) {
		char *msg = NULL;
		if (net_tls_check(cert->value, key->value, &msg) < 0) {
			err_at(errors, cfg, cert, "%s", msg);
			free(msg);
			errs++;
		}
	}
	return errs;
}

static int check_listen(const struct config *cfg, struct daemon_config *dc,
			struct buf *errors)
{
	int errs = 0;
	for (int p = 0; p < DAEMON_PROTO_COUNT; p++) {
		const char *name = daemon_proto_names[p];
		const struct config_entry *e = config_find(cfg, name, "listen");
		struct daemon_listen *l = &dc->listen[p];
		if (e == NULL) {
			if (config_has_section(cfg, name)) {
				buf_printf(errors, "%s:%d: [%s] has no listen "
					   "address\n", cfg->path,
					   section_line(cfg, name), name);
				errs++;
			}
			continue;
		}
		l->line = e->line;
		l->addrs = config_split_list(e->value, &l->count);
		if (l->count == 0) {
			err_at(errors, cfg, e, "listen: no address given");
			errs++;
		}
		for (size_t i = 0; i < l->count; i++) {
			const char *msg;
			if (net_addr_check(l->addrs[i], &msg) < 0) {
				err_at(errors, cfg, e, "listen: '%s': %s",
				       l->addrs[i], msg);
				errs++;
			}
		}
		bool implicit = p == DAEMON_IMAPS || p == DAEMON_POP3S ||
			p == DAEMON_HTTPS;
		if (implicit && l->count > 0 && dc->net.tls_cert == NULL &&
		    config_find(cfg, "tls", "cert") == NULL) {
			err_at(errors, cfg, e, "[%s] needs [tls] cert and key",
			       name);
			errs++;
		}
	}
	return errs;
}

/* [proxy] trusted = ADDRESS/PREFIX, ...: load balancers whose PROXY
 * header is required (and everyone else's refused). */
static int check_proxy(const struct config *cfg, struct daemon_config *dc,
		       struct buf *errors)
{
	const struct config_entry *e = config_find(cfg, "proxy", "trusted");
	if (e == NULL)
		return 0;
	struct net_cidr *nets;
	size_t n;
	const char *why;
	if (net_cidr_parse(e->value, &nets, &n, &why) < 0) {
		err_at(errors, cfg, e, "trusted: %s, in '%s'", why, e->value);
		return 1;
	}
	free(nets);
	dc->net.proxy_trusted = e->value;
	return 0;
}

static int check(const struct config *cfg, struct daemon_config *dc,
		 bool files, struct buf *errors, struct buf *warnings)
{
	memset(dc, 0, sizeof(*dc));
	dc->cfg = cfg;
	int errs = check_names(cfg, errors, warnings);
	errs += check_top(cfg, dc, errors);
	errs += check_limits(cfg, dc, errors);
	errs += check_tls(cfg, dc, files, errors);
	errs += check_listen(cfg, dc, errors);
	errs += check_proxy(cfg, dc, errors);
	return errs == 0 ? 0 : -1;
}

int daemon_config_check(const struct config *cfg, struct daemon_config *dc,
			struct buf *errors, struct buf *warnings)
{
	return check(cfg, dc, true, errors, warnings);
}

int daemon_config_read(const struct config *cfg, struct daemon_config *dc,
		       struct buf *errors)
{
	struct buf warnings;
	buf_init(&warnings, 0);
	int rc = check(cfg, dc, false, errors, &warnings);
	buf_free(&warnings);
	return rc;
}

void daemon_config_deinit(struct daemon_config *dc)
{
	free(dc->control_socket);
	dc->control_socket = NULL;
	for (int p = 0; p < DAEMON_PROTO_COUNT; p++) {
		for (size_t i = 0; i < dc->listen[p].count; i++)
			free(dc->listen[p].addrs[i]);
		free(dc->listen[p].addrs);
		dc->listen[p].addrs = NULL;
		dc->listen[p].count = 0;
	}
}
