/* The configuration file parser: syntax only, see config.h. */
#include "config.h"

#include "buf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *trim(char *s, char *end)
{
	while (s < end && isspace((unsigned char)*s))
		s++;
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

static void add_section(struct config *cfg, const char *name, int line)
{
	cfg->sections = xrealloc(cfg->sections,
				 (cfg->section_count + 1) * sizeof(char *));
	cfg->section_lines = xrealloc(cfg->section_lines,
				      (cfg->section_count + 1) * sizeof(int));
	cfg->sections[cfg->section_count] = xstrdup(name);
	cfg->section_lines[cfg->section_count] = line;
	cfg->section_count++;
}

static bool valid_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' &&
		    *s != '.')
			return false;
	}
	return true;
}

int config_parse(const char *path, const char *text, size_t len,
		 struct config **cfg_r, struct buf *errors)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup(path);
	const char *section = "";
	int errs = 0;
	size_t cap = 0;
	const char *p = text, *end = text + len;

	for (int lineno = 1; p < end; lineno++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		char *line = xstrndup(p, (size_t)(eol - p));
		p = nl ? nl + 1 : end;
		if (memchr(line, '\0', strlen(line)) != NULL) {
			/* unreachable with strndup; kept for clarity */
		}
		char *hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		char *s = trim(line, line + strlen(line));
		if (*s == '\0') {
			free(line);
			continue;
		}
		if (*s == '[') {
			char *close = strchr(s, ']');
			char *name = close ? trim(s + 1, close) : NULL;
			if (close == NULL || close[1] != '\0' || !valid_name(name)) {
				buf_printf(errors, "%s:%d: malformed section header\n",
					   path, lineno);
				errs++;
			} else {
				add_section(cfg, name, lineno);
				section = cfg->sections[cfg->section_count - 1];
			}
			free(line);
			continue;
		}
		char *eq = strchr(s, '=');
		if (eq == NULL) {
			buf_printf(errors, "%s:%d: expected 'key = value'\n", path,
				   lineno);
			errs++;
			free(line);
			continue;
		}
		char *key = trim(s, eq);
		char *value = trim(eq + 1, eq + 1 + strlen(eq + 1));
		if (!valid_name(key)) {
			buf_printf(errors, "%s:%d: invalid key name\n", path, lineno);
			errs++;
			free(line);
			continue;
		}
		if (cfg->count == cap) {
			cap = cap ? cap * 2 : 32;
			cfg->entries = xrealloc(cfg->entries, cap * sizeof(*cfg->entries));
		}
		struct config_entry *e = &cfg->entries[cfg->count++];
		e->section = section;
		e->key = xstrdup(key);
		e->value = xstrdup(value);
		e->line = lineno;
		free(line);
	}
	*cfg_r = cfg;
	return errs == 0 ? 0 : -1;
}

int config_load(const char *path, struct config **cfg_r, struct buf *errors)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		buf_printf(errors, "%s:0: cannot open: %s\n", path, strerror(errno));
		*cfg_r = NULL;
		return -1;
	}
	struct buf text;
	buf_init(&text, 16 * 1024 * 1024);
	char chunk[8192];
	size_t n;
	int r = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf_append(&text, chunk, n) < 0) {
			buf_printf(errors, "%s:0: file too large\n", path);
			r = -1;
			break;
		}
	}
	fclose(f);
	if (r == 0)
		r = config_parse(path, text.data ? text.data : "", text.len, cfg_r,
				 errors);
	else
		*cfg_r = NULL;
	buf_free(&text);
	return r;
}

void config_free(struct config **cfgp)
{
	struct config *cfg = *cfgp;
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->count; i++) {
		free((char *)cfg->entries[i].key);
		free((char *)cfg->entries[i].value);
	}
	for (size_t i = 0; i < cfg->section_count; i++)
		free(cfg->sections[i]);
	free(cfg->sections);
	free(cfg->section_lines);
	free(cfg->entries);
	free(cfg->path);
	free(cfg);
	*cfgp = NULL;
}

const struct config_entry *config_find(const struct config *cfg,
				       const char *section, const char *key)
{
	if (cfg == NULL)
		return NULL;
	for (size_t i = cfg->count; i > 0; i--) {
		const struct config_entry *e = &cfg->entries[i - 1];
		if (strcmp(e->section, section) == 0 && strcmp(e->key, key) == 0)
			return e;
	}
	return NULL;
}

const char *config_get(const struct config *cfg, const char *section,
		       const char *key)
{
	const struct config_entry *e = config_find(cfg, section, key);
	return e ? e->value : NULL;
}

bool config_has_section(const struct config *cfg, const char *section)
{
	if (cfg == NULL)
		return false;
	for (size_t i = 0; i < cfg->section_count; i++) {
		if (strcmp(cfg->sections[i], section) == 0)
			return true;
	}
	return false;
}

int config_parse_uint(const char *s, uint64_t max, uint64_t *v_r)
{
	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*v_r = v;
	return 0;
}

int config_parse_size(const char *s, uint64_t *bytes_r)
{
	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	/* Plain decimal only ("1.5G"): strtod would also take hex and
	 * exponents ("0x10", "1e3K"), which no admin means. */
	const char *p = s;
	while (isdigit((unsigned char)*p))
		p++;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		while (isdigit((unsigned char)*p))
			p++;
	}
	errno = 0;
	char *end;
	double v = strtod(s, &end);
	if (errno != 0 || v < 0 || end != p)
		return -1;
	double mult = 1;
	if (*end != '\0') {
		switch (toupper((unsigned char)*end)) {
		case 'B': mult = 1; break;
		case 'K': mult = 1024.0; break;
		case 'M': mult = 1024.0 * 1024; break;
		case 'G': mult = 1024.0 * 1024 * 1024; break;
		case 'T': mult = 1024.0 * 1024 * 1024 * 1024; break;
		default: return -1;
		}
		end++;
		if (toupper((unsigned char)*end) == 'B' && mult != 1)
			end++;
		else if (strncasecmp(end, "iB", 2) == 0)
			end += 2;
		if (*end != '\0')
			return -1;
	}
	double bytes = v * mult;
	if (bytes >= 18446744073709551615.0)
		return -1;
	*bytes_r = (uint64_t)bytes;
	return 0;
}

int config_parse_bool(const char *s, bool *v_r)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*v_r = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*v_r = false;
			return 0;
		}
	}
	return -1;
}

int config_parse_duration(const char *s, uint64_t *seconds_r)
{
	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	uint64_t mult = 1;
	if (*end != '\0') {
		switch (*end) {
		case 's': mult = 1; break;
		case 'm': mult = 60; break;
		case 'h': mult = 3600; break;
		case 'd': mult = 86400; break;
		default: return -1;
		}
		if (end[1] != '\0')
			return -1;
	}
	uint64_t r;
	if (__builtin_mul_overflow((uint64_t)v, mult, &r))
		return -1;
	*seconds_r = r;
	return 0;
}

char **config_split_list(const char *s, size_t *count_r)
{
	char **items = NULL;
	size_t n = 0;
	const char *p = s;
	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		char *item = xstrndup(p, (size_t)(end - p));
		char *t = trim(item, item + strlen(item));
		if (*t != '\0') {
			items = xrealloc(items, (n + 1) * sizeof(char *));
			items[n++] = xstrdup(t);
		}
		free(item);
		p = comma ? comma + 1 : end;
	}
	*count_r = n;
	return items;
}
