/*
 * Fuzz target for the configuration file parser (src/lib/config.c) and
 * its value parsers.
 *
 * Checks: every error is one "PATH:LINE: message" line with a line that
 * exists; entries have valid names, trimmed values and ascending lines;
 * config_get sees the last value of a key; and the entries written back
 * as a file parse to the same entries. Every value also goes through
 * config_parse_size/_uint/_bool/_duration and config_split_list.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"

static bool valid_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
			return false;
	return true;
}

static void check_errors(const struct buf *errors, int lines)
{
	if (errors->len == 0)
		return;
	const char *p = errors->data, *end = errors->data + errors->len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		int line;
		if (nl == NULL || strncmp(p, "fuzz.conf:", 10) != 0 ||
		    sscanf(p + 10, "%d:", &line) != 1 || line < 1 || line > lines)
			abort();
		p = nl + 1;
	}
}

static void check_values(const char *v)
{
	uint64_t u;
	bool b;
	size_t n;

	(void)config_parse_size(v, &u);
	(void)config_parse_uint(v, UINT32_MAX, &u);
	(void)config_parse_bool(v, &b);
	(void)config_parse_duration(v, &u);
	char **items = config_split_list(v, &n);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(items[i]);
		if (len == 0 || strchr(items[i], ',') != NULL ||
		    isspace((unsigned char)items[i][0]) ||
		    isspace((unsigned char)items[i][len - 1]))
			abort();
		free(items[i]);
	}
	free(items);
}

static void check_entries(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->count; i++) {
		const struct config_entry *e = &cfg->entries[i];
		size_t vlen = strlen(e->value);
		if (!valid_name(e->key) ||
		    (e->section[0] != '\0' && !config_has_section(cfg, e->section)) ||
		    (vlen > 0 && (isspace((unsigned char)e->value[0]) ||
				  isspace((unsigned char)e->value[vlen - 1]))) ||
		    strchr(e->value, '#') != NULL || strchr(e->value, '\n') != NULL ||
		    (i > 0 && e->line <= cfg->entries[i - 1].line))
			abort();
		if (config_find(cfg, e->section, e->key)->line < e->line)
			abort();
		check_values(e->value);
	}
}

/* The entries written as a file, without comments or bad lines. */
static void rewrite(const struct config *cfg, struct buf *out)
{
	const char *section = "";
	for (size_t i = 0; i < cfg->count; i++) {
		const struct config_entry *e = &cfg->entries[i];
		if (strcmp(e->section, section) != 0)
			buf_printf(out, "[%s]\n", e->section);
		section = e->section;
		buf_printf(out, "%s = %s\n", e->key, e->value);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg = NULL, *cfg2 = NULL;
	struct buf errors, text, errors2;
	int lines = 1;

	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	buf_init(&errors, 0);
	buf_init(&errors2, 0);
	buf_init(&text, 0);
	(void)config_parse("fuzz.conf", (const char *)data, size, &cfg, &errors);
	if (cfg == NULL)
		abort();
	check_errors(&errors, lines);
	check_entries(cfg);

	rewrite(cfg, &text);
	if (config_parse("again.conf", text.data ? text.data : "", text.len,
			 &cfg2, &errors2) < 0 ||
	    cfg2->count != cfg->count)
		abort();
	for (size_t i = 0; i < cfg->count; i++)
		if (strcmp(cfg->entries[i].section, cfg2->entries[i].section) != 0 ||
		    strcmp(cfg->entries[i].key, cfg2->entries[i].key) != 0 ||
		    strcmp(cfg->entries[i].value, cfg2->entries[i].value) != 0)
			abort();
	config_free(&cfg);
	config_free(&cfg2);
	buf_free(&errors);
	buf_free(&errors2);
	buf_free(&text);
	return 0;
}
