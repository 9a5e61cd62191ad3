/*
 * Settings of src/auth from the configuration file: data_dir (top level),
 * [policy] (server-wide account policies, with the key names `loftctl user
 * set` takes) and [auth] (hash cost, cleartext, cache, throttle). loftd and
 * loftctl both come through here, so they read the file the same way.
 */
#include "auth-private.h"

#include "buf.h"
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_DATA_DIR "/var/lib/loft"
#define MAX_DAYS 36500

const char *const auth_policy_keys[] = {
	"quota_bytes",
	"quota_messages",
	"pop3_delete",
	"pop3_retention_days",
	"trash_retention_days",
	"junk_retention_days",
	"over_quota_tempfail",
	"send_as",
	"sent_copy",
	"sieve_max_scripts",
	"sieve_max_storage",
	"deleted_retention_days",
	"deleted_in_quota",
	NULL,
};

void auth_policy_defaults(struct auth_policy *policy_r)
{
	memset(policy_r, 0, sizeof(*policy_r));
	policy_r->pop3_delete = AUTH_POP3_AUTO;
	policy_r->trash_retention_days = 30;
	policy_r->junk_retention_days = 30;
	policy_r->sieve_max_scripts = 32;
	policy_r->sieve_max_storage = 4 * 1024 * 1024;
	policy_r->deleted_retention_days = 14;
}

const char *auth_pop3_delete_name(enum auth_pop3_delete d)
{
	switch (d) {
	case AUTH_POP3_EXPUNGE: return "expunge";
	case AUTH_POP3_HIDE: return "hide";
	case AUTH_POP3_TRASH: return "trash";
	case AUTH_POP3_AUTO: return "auto";
	}
	return "auto";
}

static int parse_days(const char *key, const char *value, uint32_t *days_r,
		      char **error_r)
{
	uint64_t v;
	if (config_parse_uint(value, MAX_DAYS, &v) < 0) {
		*error_r = xasprintf("%s: expected a number of days (0 = off), "
				     "got '%s'", key, value);
		return -1;
	}
	*days_r = (uint32_t)v;
	return 0;
}

int auth_policy_set(struct auth_policy *policy, const char *key,
		    const char *value, char **error_r)
{
	uint64_t v;
	if (strcmp(key, "quota_bytes") == 0) {
		if (strcasecmp(value, "none") == 0 ||
		    strcasecmp(value, "unlimited") == 0) {
			policy->quota_bytes = 0;
		} else if (config_parse_size(value, &v) == 0) {
			policy->quota_bytes = v;
		} else {
			*error_r = xasprintf("quota_bytes: expected a size like "
					     "500M or 2G, or none; got '%s'",
					     value);
			return -1;
		}
	} else if (strcmp(key, "quota_messages") == 0) {
		if (strcasecmp(value, "none") == 0) {
			policy->quota_messages = 0;
		} else if (config_parse_uint(value, UINT32_MAX, &v) == 0) {
			policy->quota_messages = v;
		} else {
			*error_r = xasprintf("quota_messages: expected a number "
					     "or none, got '%s'", value);
			return -1;
		}
	} else if (strcmp(key, "pop3_delete") == 0) {
		if (strcmp(value, "expunge") == 0)
			policy->pop3_delete = AUTH_POP3_EXPUNGE;
		else if (strcmp(value, "hide") == 0)
			policy->pop3_delete = AUTH_POP3_HIDE;
		else if (strcmp(value, "trash") == 0)
			policy->pop3_delete = AUTH_POP3_TRASH;
		else if (strcmp(value, "auto") == 0)
			policy->pop3_delete = AUTH_POP3_AUTO;
		else {
			*error_r = xasprintf("pop3_delete: expected auto, expunge, "
					     "hide or trash, got '%s'", value);
			return -1;
		}
	} else if (strcmp(key, "pop3_retention_days") == 0) {
		return parse_days(key, value, &policy->pop3_retention_days,
				  error_r);
	} else if (strcmp(key, "trash_retention_days") == 0) {
		return parse_days(key, value, &policy->trash_retention_days,
				  error_r);
	} else if (strcmp(key, "junk_retention_days") == 0) {
		return parse_days(key, value, &policy->junk_retention_days,
				  error_r);
	} else if (strcmp(key, "over_quota_tempfail") == 0) {
		if (config_parse_bool(value, &policy->over_quota_tempfail) < 0) {
			*error_r = xasprintf("over_quota_tempfail: expected yes "
					     "or no, got '%s'", value);
			return -1;
		}
	} else if (strcmp(key, "send_as") == 0) {
		if (strcmp(value, "own") == 0) {
			policy->send_as_any = false;
		} else if (strcmp(value, "any") == 0) {
			policy->send_as_any = true;
		} else {
			*error_r = xasprintf("send_as: expected own or any, got "
					     "'%s'", value);
			return -1;
		}
	} else if (strcmp(key, "sent_copy") == 0) {
		if (config_parse_bool(value, &policy->sent_copy) < 0) {
			*error_r = xasprintf("sent_copy: expected yes or no, got "
					     "'%s'", value);
			return -1;
		}
	} else if (strcmp(key, "sieve_max_scripts") == 0) {
		if (config_parse_uint(value, UINT32_MAX, &v) < 0) {
			*error_r = xasprintf("sieve_max_scripts: expected a "
					     "number, got '%s'", value);
			return -1;
		}
		policy->sieve_max_scripts = (uint32_t)v;
	} else if (strcmp(key, "sieve_max_storage") == 0) {
		if (config_parse_size(value, &v) < 0) {
			*error_r = xasprintf("sieve_max_storage: expected a size "
					     "like 4M, got '%s'", value);
			return -1;
		}
		policy->sieve_max_storage = v;
	} else if (strcmp(key, "deleted_retention_days") == 0) {
		return parse_days(key, value, &policy->deleted_retention_days,
				  error_r);
	} else if (strcmp(key, "deleted_in_quota") == 0) {
		if (config_parse_bool(value, &policy->deleted_in_quota) < 0) {
			*error_r = xasprintf("deleted_in_quota: expected yes or "
					     "no, got '%s'", value);
			return -1;
		}
	} else {
		*error_r = xasprintf("unknown policy key '%s'", key);
		return -1;
	}
	return 0;
}

void auth_settings_defaults(struct auth_settings *set_r)
{
	memset(set_r, 0, sizeof(*set_r));
	auth_policy_defaults(&set_r->defaults);
	set_r->cache_ttl_secs = 60;
	set_r->password_min_length = AUTH_PASSWORD_MIN_LENGTH;
	set_r->ban_after = AUTH_BAN_AFTER_DEFAULT;
	set_r->ban_time_secs = AUTH_BAN_DEFAULT_SECS;
}

/* "1500ms", "2s", "3" (seconds) -> milliseconds. */
static int parse_ms(const char *value, uint32_t *ms_r)
{
	size_t n = strlen(value);
	uint64_t v;
	if (n > 2 && strcmp(value + n - 2, "ms") == 0) {
		char *num = xstrndup(value, n - 2);
		int rc = config_parse_uint(num, 600000, &v);
		free(num);
		if (rc < 0)
			return -1;
		*ms_r = (uint32_t)v;
		return 0;
	}
	if (config_parse_duration(value, &v) < 0 || v > 600)
		return -1;
	*ms_r = (uint32_t)(v * 1000);
	return 0;
}

static int auth_key(struct auth_settings *set, const char *key,
		    const char *value, char **error_r)
{
	uint64_t v;
	if (strcmp(key, "allow_cleartext") == 0) {
		if (config_parse_bool(value, &set->allow_cleartext_remote) == 0)
			return 0;
		*error_r = xasprintf("allow_cleartext: expected yes or no");
	} else if (strcmp(key, "argon2_t_cost") == 0) {
		if (config_parse_uint(value, 100, &v) == 0 && v >= 1) {
			set->argon2_t_cost = (uint32_t)v;
			return 0;
		}
		*error_r = xasprintf("argon2_t_cost: expected 1..100");
	} else if (strcmp(key, "argon2_m_cost") == 0) {
		/* A plain number is KiB, as argon2 counts; "64M" is a size. */
		if (config_parse_uint(value, UINT32_MAX, &v) < 0) {
			if (config_parse_size(value, &v) < 0)
				v = 0;
			v /= 1024;
		}
		if (v >= 8 && v <= 4 * 1024 * 1024) {
			set->argon2_m_cost_kib = (uint32_t)v;
			return 0;
		}
		*error_r = xasprintf("argon2_m_cost: expected KiB (8..4194304) "
				     "or a size like 64M");
	} else if (strcmp(key, "argon2_parallelism") == 0) {
		if (config_parse_uint(value, 64, &v) == 0 && v >= 1) {
			set->argon2_parallelism = (uint32_t)v;
			return 0;
		}
		*error_r = xasprintf("argon2_parallelism: expected 1..64");
	} else if (strcmp(key, "scram_iterations") == 0) {
		if (config_parse_uint(value, 10000000, &v) == 0 && v >= 4096) {
			set->scram_iterations = (uint32_t)v;
			return 0;
		}
		*error_r = xasprintf("scram_iterations: expected at least 4096 "
				     "(RFC 7677)");
	} else if (strcmp(key, "cache_ttl") == 0) {
		if (config_parse_duration(value, &v) == 0 && v <= 3600) {
			set->cache_ttl_secs = (uint32_t)v;
			set->cache_disabled = v == 0;
			return 0;
		}
		*error_r = xasprintf("cache_ttl: expected a duration up to 1h "
				     "(0 = off)");
	} else if (strcmp(key, "password_min_length") == 0) {
		if (config_parse_uint(value, 256, &v) == 0 && v >= 1) {
			set->password_min_length = (uint32_t)v;
			return 0;
		}
		*error_r = xasprintf("password_min_length: expected 1..256 "
				     "(characters)");
	} else if (strcmp(key, "throttle") == 0) {
		bool on;
		if (config_parse_bool(value, &on) == 0) {
			set->throttle_disabled = !on;
			return 0;
		}
		*error_r = xasprintf("throttle: expected yes or no");
	} else if (strcmp(key, "throttle_max_delay") == 0) {
		if (parse_ms(value, &set->throttle_max_delay_ms) == 0 &&
		    set->throttle_max_delay_ms > 0)
			return 0;
		*error_r = xasprintf("throttle_max_delay: expected a duration "
				     "like 3s or 1500ms, up to 600s");
	} else if (strcmp(key, "ban_after") == 0) {
		if (config_parse_uint(value, 1000000, &v) == 0) {
			set->ban_after = (uint32_t)v;
			return 0;
		}
		*error_r = xasprintf("ban_after: expected a number of failed "
				     "logins (0 = never ban)");
	} else if (strcmp(key, "ban_time") == 0) {
		if (config_parse_duration(value, &v) == 0 && v >= 1 &&
		    v <= 24 * 3600) {
			set->ban_time_secs = (uint32_t)v;
			return 0;
		}
		*error_r = xasprintf("ban_time: expected a duration from 1s "
				     "to 24h");
	} else if (strcmp(key, "hash_threads") == 0) {
		if (config_parse_uint(value, 64, &v) == 0 && v >= 1) {
			set->hash_threads = (uint32_t)v;
			return 0;
		}
		*error_r = xasprintf("hash_threads: expected 1..64");
	} else if (strcmp(key, "postgres") == 0) {
		/* libpq's string, checked when it connects (loftd --check
		 * does not connect) */
		if (*value != '\0') {
			set->postgres = value;
			return 0;
		}
		*error_r = xasprintf("postgres: expected a libpq connection "
				     "string");
	} else {
		*error_r = xasprintf("unknown key '%s' in [auth]", key);
	}
	return -1;
}

int auth_settings_from_config(const struct config *cfg,
			      struct auth_settings *set_r, struct buf *errors)
{
	int errs = 0;
	auth_settings_defaults(set_r);
	const char *dd = config_get(cfg, "", "data_dir");
	set_r->data_dir = dd != NULL && *dd != '\0' ? dd : DEFAULT_DATA_DIR;

	for (size_t i = 0; cfg != NULL && i < cfg->count; i++) {
		const struct config_entry *e = &cfg->entries[i];
		char *error = NULL;
		int rc;
		if (strcmp(e->section, "policy") == 0)
			rc = auth_policy_set(&set_r->defaults, e->key, e->value,
					     &error);
		else if (strcmp(e->section, "auth") == 0)
			rc = auth_key(set_r, e->key, e->value, &error);
		else
			continue;
		if (rc < 0) {
			buf_printf(errors, "%s:%d: %s\n", cfg->path, e->line,
				   error);
			free(error);
			errs++;
		}
	}
	/* Accounts go with the store's database unless [auth] says where:
	 * every node then shares them. */
	const char *backend = config_get(cfg, "store", "backend");
	if (set_r->postgres == NULL && backend != NULL &&
	    strcmp(backend, "postgres") == 0)
		set_r->postgres = config_get(cfg, "store", "postgres");
	uint64_t t;
	const char *timeout = config_get(cfg, "store", "postgres_timeout");
	if (timeout != NULL && config_parse_duration(timeout, &t) == 0 &&
	    t > 0 && t <= 3600)
		set_r->postgres_timeout_secs = (uint32_t)t;
	return errs == 0 ? 0 : -1;
}
