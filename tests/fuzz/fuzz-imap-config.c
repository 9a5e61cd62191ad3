/*
 * Fuzz target for the readers of configuration values: the [imap] section
 * (imap_server_create in `loftd --check` mode, without store or auth),
 * [policy]/[auth] (auth_settings_from_config) and data_dir/[limits]/
 * [store] (store_settings_from_config), over files the config parser
 * accepts. Every complaint must be a "FILE:LINE: message" line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "buf.h"
#include "config.h"
#include "imap.h"
#include "store.h"

static void check_errors(const struct buf *errors)
{
	if (errors->len == 0)
		return;
	const char *p = errors->data, *end = p + errors->len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		int line;
		if (nl == NULL || strncmp(p, "fuzz.conf:", 10) != 0 ||
		    sscanf(p + 10, "%d:", &line) != 1 || line < 0)
			abort();
		p = nl + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg = NULL;
	struct buf errors;

	buf_init(&errors, 0);
	if (config_parse("fuzz.conf", (const char *)data, size, &cfg, &errors) < 0) {
		config_free(&cfg);
		buf_free(&errors);
		return 0;
	}
	struct imap_server *server = imap_server_create(cfg, NULL, NULL, &errors);
	if (server == NULL && errors.len == 0)
		abort();
	imap_server_destroy(&server);
	struct auth_settings aset;
	size_t before = errors.len;
	if (auth_settings_from_config(cfg, &aset, &errors) < 0 &&
	    errors.len == before)
		abort();
	struct store_settings sset;
	before = errors.len;
	if (store_settings_from_config(cfg, &sset, &errors) < 0 &&
	    errors.len == before)
		abort();
	check_errors(&errors);
	config_free(&cfg);
	buf_free(&errors);
	return 0;
}
