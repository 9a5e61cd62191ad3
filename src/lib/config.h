/*
 * The configuration file: `key = value` lines under `[section]` headers,
 * `#` comments, blank lines ignored. Keys before the first header belong to
 * the section "" (top level). Parsing only checks syntax; which keys and
 * values are valid is decided by the daemon's validator (src/daemon), and
 * every error is reported as "FILE:LINE: message".
 */
#ifndef LOFT_CONFIG_H
#define LOFT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

struct config_entry {
	const char *section;   /* "" for top level */
	const char *key;
	const char *value;     /* trimmed, never NULL */
	int line;
};

struct config {
	char *path;
	struct config_entry *entries;
	size_t count;
	char **sections;       /* every [section] header seen, in order */
	int *section_lines;
	size_t section_count;
};

/* Parses path. Returns 0, or -1 with "FILE:LINE: message" lines appended
 * to errors (a missing file is one such error with line 0). */
int config_load(const char *path, struct config **cfg_r, struct buf *errors);
/* Parses text in memory (path is used in messages only). */
int config_parse(const char *path, const char *text, size_t len,
		 struct config **cfg_r, struct buf *errors);
void config_free(struct config **cfg);

/* The last value of key in section, or NULL. */
const char *config_get(const struct config *cfg, const char *section,
		       const char *key);
const struct config_entry *config_find(const struct config *cfg,
				       const char *section, const char *key);
bool config_has_section(const struct config *cfg, const char *section);

/* Value parsers: 0 on success, -1 if malformed or out of range. */
/* "500M", "2G", "10240", "1.5G"; K/M/G/T are powers of 1024. */
int config_parse_size(const char *s, uint64_t *bytes_r);
int config_parse_uint(const char *s, uint64_t max, uint64_t *v_r);
/* yes/no, true/false, on/off, 1/0 */
int config_parse_bool(const char *s, bool *v_r);
/* "30s", "5m", "2h", "7d", or plain seconds. */
int config_parse_duration(const char *s, uint64_t *seconds_r);
/* Splits a comma-separated list into trimmed items (caller frees the
 * array and each item). */
char **config_split_list(const char *s, size_t *count_r);

#endif
