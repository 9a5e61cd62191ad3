/*
 * DKIM keys shared by every node (auth.h, docs/scale-out.md "Accounts"):
 * with the accounts in PostgreSQL, the keys are rows of loft_auth.dkim_keys
 * (domain, selector, the private key as PEM, created); each node keeps
 * copies in data_dir/dkim, where its signer reads them, made to match the
 * rows by dkim_keys_mirror (src/mailauth) in the auth process every few
 * seconds and by every `loftctl dkim` verb. A deleted key keeps its row
 * with pem NULL, so a node that was down when it went removes its copy
 * too, and a key found only in a node's directory (made before the keys
 * were shared) is added to the rows rather than removed.
 */
#include "auth-private.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"

bool auth_dkim_shared(const struct auth *auth)
{
	return auth->pg_conninfo != NULL;
}

static int not_shared(char **error_r)
{
	*error_r = xstrdup("DKIM keys are shared only with the accounts in"
			   " PostgreSQL ([store] backend = postgres)");
	return -1;
}

int auth_dkim_keys(struct auth *auth, struct auth_dkim_key **keys_r,
		   size_t *count_r, char **error_r)
{
	*keys_r = NULL;
	*count_r = 0;
	if (!auth_dkim_shared(auth))
		return not_shared(error_r);
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	struct asql_stmt *st = asql_prepare(c->db, "SELECT domain, selector,"
					    " pem, created FROM dkim_keys"
					    " ORDER BY domain, selector");
	int rc = ASQL_ERROR;
	size_t cap = 0;
	if (st != NULL) {
		while ((rc = asql_step(st)) == ASQL_ROW) {
			if (*count_r == cap) {
				cap = cap ? cap * 2 : 16;
				*keys_r = xrealloc(*keys_r,
						   cap * sizeof(**keys_r));
			}
			struct auth_dkim_key *k = &(*keys_r)[(*count_r)++];
			const char *pem = asql_text(st, 2);
			k->domain = xstrdup(asql_text(st, 0));
			k->selector = xstrdup(asql_text(st, 1));
			k->pem = pem != NULL ? xstrdup(pem) : NULL;
			k->created = (time_t)asql_int64(st, 3);
		}
	}
	if (rc != ASQL_DONE)
		*error_r = xasprintf("%s: %s", c->db->drv->name,
				     asql_errmsg(c->db));
	asql_finalize(st);
	auth_conn_put(auth, c);
	if (rc != ASQL_DONE) {
		auth_dkim_keys_free(*keys_r, *count_r);
		*keys_r = NULL;
		*count_r = 0;
		return -1;
	}
	return 0;
}

void auth_dkim_keys_free(struct auth_dkim_key *keys, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(keys[i].domain);
		free(keys[i].selector);
		if (keys[i].pem != NULL) {
			explicit_bzero(keys[i].pem, strlen(keys[i].pem));
			free(keys[i].pem);
		}
	}
	free(keys);
}

int auth_dkim_key_add(struct auth *auth, const char *domain,
		      const char *selector, const char *pem, time_t created,
		      char **error_r)
{
	if (!auth_dkim_shared(auth))
		return not_shared(error_r);
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	/* a deleted selector may be used again; a live one is kept (the
	 * same key again, as a node's mirror may have added it first,
	 * counts as added) */
	int n = asql_run(c->db, "INSERT INTO dkim_keys (domain, selector, pem,"
			 " created, deleted) VALUES (?1, ?2, ?3, ?4, NULL)"
			 " ON CONFLICT (domain, selector) DO UPDATE SET"
			 " pem = excluded.pem, created = excluded.created,"
			 " deleted = NULL WHERE dkim_keys.deleted IS NOT NULL"
			 " OR dkim_keys.pem = excluded.pem",
			 "sssi", domain, selector, pem, (int64_t)created);
	if (n < 0)
		*error_r = xasprintf("%s: %s", c->db->drv->name,
				     asql_errmsg(c->db));
	auth_conn_put(auth, c);
	return n < 0 ? -1 : n > 0 ? 1 : 0;
}

int auth_dkim_key_del(struct auth *auth, const char *domain,
		      const char *selector, char **error_r)
{
	if (!auth_dkim_shared(auth))
		return not_shared(error_r);
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	int n = asql_run(c->db, "UPDATE dkim_keys SET pem = NULL, deleted = ?3"
			 " WHERE domain = ?1 AND selector = ?2 AND"
			 " deleted IS NULL", "ssi", domain, selector,
			 (int64_t)time(NULL));
	if (n < 0)
		*error_r = xasprintf("%s: %s", c->db->drv->name,
				     asql_errmsg(c->db));
	auth_conn_put(auth, c);
	return n < 0 ? -1 : n > 0 ? 1 : 0;
}
