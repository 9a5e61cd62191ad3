/*
 * DKIM keys shared by the nodes (daemon-dkim.h): the rows of
 * auth_dkim_keys made into copies by dkim_keys_mirror.
 */
#include "daemon-dkim.h"

#include <stdlib.h>

#include "buf.h"
#include "mailauth.h"

static int upload(void *ctx, const char *domain, const char *selector,
		  const char *pem, time_t created, char **error_r)
{
	return auth_dkim_key_add(ctx, domain, selector, pem, created,
				 error_r) < 0 ? -1 : 0;
}

int daemon_dkim_mirror(struct auth *auth, const char *dir, char **error_r)
{
	*error_r = NULL;
	if (!auth_dkim_shared(auth))
		return 0;
	struct auth_dkim_key *rows;
	size_t n;
	if (auth_dkim_keys(auth, &rows, &n, error_r) < 0)
		return -1;
	struct dkim_shared_key *keys = xcalloc(n + 1, sizeof(*keys));
	for (size_t i = 0; i < n; i++) {
		keys[i].domain = rows[i].domain;
		keys[i].selector = rows[i].selector;
		keys[i].pem = rows[i].pem;
		keys[i].created = rows[i].created;
	}
	int rc = dkim_keys_mirror(dir, keys, n, upload, auth, error_r);
	free(keys);
	auth_dkim_keys_free(rows, n);
	return rc;
}
