/*
 * The store's part of the configuration file, shared by loftd and loftctl
 * so both open the same data directory with the same limits.
 */
#include "store.h"

#include <stdlib.h>
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

/* [s3] (docs/scale-out.md): needed with [store] blobs = s3. */
static int s3_from_config(const struct config *cfg,
			  struct store_settings *set_r, struct buf *errors)
{
	int ret = 0;
	bool s3 = set_r->blobs == STORE_BLOBS_S3;
	static const char *const needed[] = {"endpoint", "bucket", "access_key",
					     "secret_key_file"};
	const char **dst[] = {&set_r->s3_endpoint, &set_r->s3_bucket,
			      &set_r->s3_access_key, &set_r->s3_secret_key_file};
	for (size_t i = 0; i < 4; i++) {
		*dst[i] = config_get(cfg, "s3", needed[i]);
		if (*dst[i] != NULL && (*dst[i])[0] == '\0') {
			bad(errors, cfg, "s3", needed[i], "is empty");
			ret = -1;
		} else if (s3 && *dst[i] == NULL) {
			char *what = xasprintf("s3 needs [s3] %s", needed[i]);
			bad(errors, cfg, "store", "blobs", what);
			free(what);
			ret = -1;
		}
	}
	const char *v = set_r->s3_endpoint;
	if (v != NULL && strncmp(v, "http://", 7) != 0 &&
	    strncmp(v, "https://", 8) != 0) {
		bad(errors, cfg, "s3", "endpoint",
		    "expected http://HOST[:PORT] or https://HOST[:PORT]");
		ret = -1;
	} else if (v != NULL) {
		const char *auth = strstr(v, "://") + 3;
		size_t n = strcspn(auth, "/");
		if (n == 0 || (auth[n] == '/' && auth[n + 1] != '\0')) {
			bad(errors, cfg, "s3", "endpoint",
			    "expected scheme://HOST[:PORT], without a path");
			ret = -1;
		}
	}
	v = set_r->s3_bucket;
	/* S3's bucket names: 3-63 of a-z 0-9 . - */
	if (v != NULL && v[0] != '\0' &&
	    (strlen(v) < 3 || strlen(v) > 63 ||
	     strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789.-") != strlen(v))) {
		bad(errors, cfg, "s3", "bucket",
		    "expected 3 to 63 of a-z, 0-9, '.' and '-'");
		ret = -1;
	}
	v = set_r->s3_secret_key_file;
	if (v != NULL && v[0] != '\0' && v[0] != '/') {
		bad(errors, cfg, "s3", "secret_key_file",
		    "must be an absolute path");
		ret = -1;
	}
	set_r->s3_region = config_get(cfg, "s3", "region");
	if (set_r->s3_region != NULL && set_r->s3_region[0] == '\0') {
		bad(errors, cfg, "s3", "region", "is empty");
		ret = -1;
	}
	v = config_get(cfg, "s3", "addressing");
	if (v != NULL && strcmp(v, "virtual") == 0) {
		set_r->s3_virtual = true;
	} else if (v != NULL && strcmp(v, "path") != 0) {
		bad(errors, cfg, "s3", "addressing", "expected path or virtual");
		ret = -1;
	}
	uint64_t t = 30;
	v = config_get(cfg, "s3", "timeout");
	if (v != NULL && (config_parse_duration(v, &t) < 0 || t < 1 ||
			  t > 3600)) {
		bad(errors, cfg, "s3", "timeout",
		    "expected a duration like 30s (1s to 1h)");
		ret = -1;
	}
	set_r->s3_timeout = (unsigned)t;
	return ret;
}

/* [store] backend and the PostgreSQL keys (docs/scale-out.md), checked
 * without connecting. */
static int backend_from_config(const struct config *cfg,
			       struct store_settings *set_r, struct buf *errors)
{
	int ret = 0;
	const char *v = config_get(cfg, "store", "backend");
	if (v != NULL && strcmp(v, "postgres") == 0) {
		set_r->backend = STORE_BACKEND_POSTGRES;
	} else if (v != NULL && strcmp(v, "sqlite") != 0) {
		bad(errors, cfg, "store", "backend", "expected sqlite or postgres");
		ret = -1;
	}
	bool pg = set_r->backend == STORE_BACKEND_POSTGRES;
	set_r->postgres = config_get(cfg, "store", "postgres");
	if (set_r->postgres != NULL && set_r->postgres[0] == '\0') {
		bad(errors, cfg, "store", "postgres",
		    "expected a libpq connection string or URI");
		ret = -1;
	} else if (pg && set_r->postgres == NULL) {
		bad(errors, cfg, "store", "backend",
		    "postgres needs [store] postgres = CONNINFO");
		ret = -1;
	}
	v = config_get(cfg, "store", "postgres_pool");
	set_r->postgres_pool = 16;
	if (v != NULL) {
		char *end;
		unsigned long n = strtoul(v, &end, 10);
		if (*v < '0' || *v > '9' || *end != '\0' || n < 1 || n > 1000) {
			bad(errors, cfg, "store", "postgres_pool",
			    "expected a number of connections, 1 to 1000");
			ret = -1;
		}
		set_r->postgres_pool = (unsigned)n;
	}
	uint64_t t = 10;
	v = config_get(cfg, "store", "postgres_timeout");
	if (v != NULL && (config_parse_duration(v, &t) < 0 || t < 1 ||
			  t > 3600)) {
		bad(errors, cfg, "store", "postgres_timeout",
		    "expected a duration like 10s (1s to 1h)");
		ret = -1;
	}
	set_r->postgres_timeout = (unsigned)t;
	v = config_get(cfg, "store", "blobs");
	if (v != NULL && strcmp(v, "s3") == 0) {
		set_r->blobs = STORE_BLOBS_S3;
	} else if (v != NULL && strcmp(v, "file") != 0) {
		bad(errors, cfg, "store", "blobs", "expected file or s3");
		ret = -1;
	}
	if (s3_from_config(cfg, set_r, errors) < 0)
		ret = -1;
	set_r->blob_cache = 1u << 30;
	v = config_get(cfg, "store", "blob_cache");
	if (v != NULL && config_parse_size(v, &set_r->blob_cache) < 0) {
		bad(errors, cfg, "store", "blob_cache",
		    "expected a size like 1G (0: no cache)");
		ret = -1;
	}
	set_r->blob_dir = config_get(cfg, "store", "blob_dir");
	if (set_r->blob_dir != NULL && set_r->blob_dir[0] != '/') {
		bad(errors, cfg, "store", "blob_dir", "must be an absolute path");
		ret = -1;
	} else if (set_r->blob_dir != NULL) {
		size_t n = strlen(set_r->data_dir);
		if (strncmp(set_r->blob_dir, set_r->data_dir, n) == 0 &&
		    (set_r->blob_dir[n] == '/' || set_r->blob_dir[n] == '\0')) {
			bad(errors, cfg, "store", "blob_dir", "must be outside"
			    " data_dir (data_dir keeps only a node's own files)");
			ret = -1;
		}
	} else if (pg && set_r->blobs == STORE_BLOBS_FILE) {
		bad(errors, cfg, "store", "backend",
		    "postgres with blobs = file needs [store] blob_dir = PATH");
		ret = -1;
	} else if (set_r->postgres != NULL && set_r->blobs == STORE_BLOBS_FILE) {
		/* backend = sqlite with [store] postgres: both backends,
		 * accounts moved with loftctl migrate-store */
		bad(errors, cfg, "store", "postgres", "with backend = sqlite "
		    "(both backends: loftctl migrate-store) and blobs = file "
		    "needs [store] blob_dir = PATH");
		ret = -1;
	}
	return ret;
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
	v = config_get(cfg, "sharing", "seen");
	if (v != NULL && strcmp(v, "shared") == 0) {
		set_r->seen_shared = true;
	} else if (v != NULL && strcmp(v, "per-user") != 0) {
		bad(errors, cfg, "sharing", "seen",
		    "expected per-user or shared");
		ret = -1;
	}
	v = config_get(cfg, "store", "fsync");
	if (v != NULL && config_parse_bool(v, &set_r->fsync) < 0) {
		bad(errors, cfg, "store", "fsync", "expected yes or no");
		ret = -1;
	}
	if (backend_from_config(cfg, set_r, errors) < 0)
		ret = -1;
	return ret;
}
