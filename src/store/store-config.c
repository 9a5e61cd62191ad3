/*
 * The store's part of the configuration file, shared by loftd and loftctl
 * so both open the same data directory with the same limits.
 */
#include "store.h"

#include <string.h>

#include "buf.h"
#include "config.h"

#define DEFAULT_DATA_DIR "/var/lib/loft"
#define DEFAULT_MAX_MESSAGE_SIZE (50ULL * 1024 * 1024)

static void bad(struct buf *errors, const struct config *cfg,
		const char *section, const char *key, const char *what)
{
	const struct config_entry *e = config_find(cfg, section, key);
	buf_printf(errors, "%s:%d: %s%s%s: %s\n", cfg->path,
		   e != NULL ? e->line : 0, section[0] ? section : "",
		   section[0] ? "." : "", key, what);
}

int store_settings_from_config(const struct config *cfg,
			       struct store_settings *set_r,
			       struct buf *errors)
{
	int ret = 0;
	memset(set_r, 0, sizeof(*set_r));
	set_r->data_dir = DEFAULT_DATA_DIR;
	set_r->max_message_size = DEFAULT_MAX_MESSAGE_SIZE;
	set_r->fsync = true;

	const char *v = config_get(cfg, "", "data_dir");
	if (v != NULL) {
		if (v[0] != '/') {
			bad(errors, cfg, "", "data_dir",
			    "must be an absolute path");
			ret = -1;
		}
		set_r->data_dir = v;
	}
	v = config_get(cfg, "limits", "max_message_size");
	if (v != NULL &&
	    config_parse_size(v, &set_r->max_message_size) < 0) {
		bad(errors, cfg, "limits", "max_message_size",
		    "expected a size like 50M");
		ret = -1;
	}
	/* The retention task was the POP3 server's: its old key counts
	 * when [store] says nothing. */
	const char *section = "store";
	v = config_get(cfg, section, "retention_interval");
	if (v == NULL) {
		section = "pop3";
		v = config_get(cfg, section, "retention_interval");
	}
	uint64_t interval = 3600;
	if (v != NULL && (config_parse_duration(v, &interval) < 0 ||
			  interval > 30 * 86400)) {
		bad(errors, cfg, section, "retention_interval",
		    "expected a duration like 1h (at most 30d; 0: off)");
		ret = -1;
	}
	set_r->retention_interval = (unsigned)interval;
	v = config_get(cfg, "store", "fsync");
	if (v != NULL && config_parse_bool(v, &set_r->fsync) < 0) {
		bad(errors, cfg, "store", "fsync", "expected yes or no");
		ret = -1;
	}
	return ret;
}
