/*
 * An account's secret for loftctl backup and restore (docs/backup.md):
 * the password hash as stored and, when the account has them, its
 * SCRAM-SHA-256 keys, so a restored account logs in with the same
 * password by every mechanism. One line of text:
 * "HASH" or "HASH\tSALT_HEX:ITERATIONS:STORED_KEY_HEX:SERVER_KEY_HEX".
 * Nothing here hashes: the values are moved as they are.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth-private.h"
#include "buf.h"

static void hex(struct buf *b, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf_printf(b, "%02x", p[i]);
}

static int unhex(const char *s, size_t n, uint8_t *out, size_t max,
		 size_t *len_r)
{
	if (n % 2 != 0 || n / 2 > max)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	*len_r = n / 2;
	return 0;
}

int auth_user_secret(struct auth *auth, int64_t user_id, char **secret_r,
		     char **error_r)
{
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	struct asql_stmt *st;
	int ret = -1;
	if ((st = asql_prepare(c->db, "SELECT password_hash, scram_salt,"
			       " scram_iterations, scram_stored_key,"
			       " scram_server_key FROM users WHERE id = ?")) == NULL) {
		*error_r = xasprintf("%s: %s", c->db->drv->name,
				     asql_errmsg(c->db));
		auth_conn_put(auth, c);
		return -1;
	}
	asql_bind_int64(st, 1, user_id);
	if (asql_step(st) == ASQL_ROW) {
		struct buf b;
		buf_init(&b, 0);
		buf_append_str(&b, asql_text(st, 0));
		size_t salt_len, stored_len, server_len;
		const uint8_t *salt = asql_blob(st, 1, &salt_len);
		const uint8_t *stored = asql_blob(st, 3, &stored_len);
		const uint8_t *server = asql_blob(st, 4, &server_len);
		if (!asql_null(st, 1) && stored_len == AUTH_SCRAM_KEY_LEN &&
		    server_len == AUTH_SCRAM_KEY_LEN) {
			buf_append_char(&b, '\t');
			hex(&b, salt, salt_len);
			buf_printf(&b, ":%lld:", (long long)
				   asql_int64(st, 2));
			hex(&b, stored, AUTH_SCRAM_KEY_LEN);
			buf_append_char(&b, ':');
			hex(&b, server, AUTH_SCRAM_KEY_LEN);
		}
		*secret_r = buf_steal(&b, NULL);
		ret = 0;
	} else {
		*error_r = xasprintf("no account with id %lld",
				     (long long)user_id);
	}
	asql_finalize(st);
	auth_conn_put(auth, c);
	return ret;
}

int auth_user_secret_set(struct auth *auth, const char *address,
			 const char *secret, char **error_r)
{
	char canon[AUTH_ADDRESS_MAX + 1];
	if (auth_address_canon(address, canon, sizeof(canon), error_r) < 0)
		return -1;
	const char *tab = strchr(secret, '\t');
	size_t hlen = tab ? (size_t)(tab - secret) : strlen(secret);
	uint8_t salt[64], stored[AUTH_SCRAM_KEY_LEN], server[AUTH_SCRAM_KEY_LEN];
	size_t salt_len = 0, sl = 0, vl = 0;
	long long iter = 0;
	bool scram = false;
	if (hlen == 0 || hlen >= 512 || secret[0] != '{') {
		*error_r = xasprintf("not a password hash");
		return -1;
	}
	if (tab != NULL) {
		const char *a = tab + 1, *b = strchr(a, ':');
		const char *c2 = b ? strchr(b + 1, ':') : NULL;
		const char *d = c2 ? strchr(c2 + 1, ':') : NULL;
		char *end;
		if (d == NULL ||
		    unhex(a, (size_t)(b - a), salt, sizeof(salt), &salt_len) < 0 ||
		    (iter = strtoll(b + 1, &end, 10)) <= 0 || end != c2 ||
		    unhex(c2 + 1, (size_t)(d - c2 - 1), stored, sizeof(stored),
			  &sl) < 0 || sl != AUTH_SCRAM_KEY_LEN ||
		    unhex(d + 1, strlen(d + 1), server, sizeof(server), &vl) < 0 ||
		    vl != AUTH_SCRAM_KEY_LEN || iter > 100000000) {
			*error_r = xasprintf("damaged SCRAM keys");
			return -1;
		}
		scram = true;
	}
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	struct asql_stmt *st;
	int ret = -1;
	if ((st = asql_prepare(c->db, "UPDATE users SET password_hash = ?,"
			       " scram_salt = ?, scram_iterations = ?,"
			       " scram_stored_key = ?, scram_server_key = ?"
			       " WHERE address = ?")) == NULL) {
		*error_r = xasprintf("%s: %s", c->db->drv->name,
				     asql_errmsg(c->db));
		auth_conn_put(auth, c);
		return -1;
	}
	asql_bind_textn(st, 1, secret, hlen);
	if (scram) {
		asql_bind_blob(st, 2, salt, salt_len);
		asql_bind_int64(st, 3, iter);
		asql_bind_blob(st, 4, stored, AUTH_SCRAM_KEY_LEN);
		asql_bind_blob(st, 5, server, AUTH_SCRAM_KEY_LEN);
	}
	asql_bind_text(st, 6, canon);
	if (asql_step(st) != ASQL_DONE)
		*error_r = xasprintf("%s: %s", c->db->drv->name,
				     asql_errmsg(c->db));
	else if (asql_changes(c->db) == 0)
		*error_r = xasprintf("no account %s", canon);
	else
		ret = 0;
	asql_finalize(st);
	auth_conn_put(auth, c);
	OPENSSL_cleanse(stored, sizeof(stored));
	OPENSSL_cleanse(server, sizeof(server));
	return ret;
}

/* ---- app passwords as stored (backup, restore) --------------------- */

int auth_token_hashes(struct auth *auth, int64_t user_id, auth_list_fn *fn,
		      void *ctx, char **error_r)
{
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	struct asql_stmt *st = asql_prepare(c->db, "SELECT name, hash, created,"
					    " expires FROM tokens WHERE"
					    " user_id = ? ORDER BY name");
	int rc = ASQL_ERROR;
	if (st != NULL) {
		asql_bind_int64(st, 1, user_id);
		while ((rc = asql_step(st)) == ASQL_ROW) {
			size_t hl = 0;
			const uint8_t *h = asql_blob(st, 1, &hl);
			struct buf b;
			buf_init(&b, 0);
			hex(&b, h, hl);
			buf_printf(&b, " %lld %lld", (long long)asql_int64(st, 2),
				   asql_null(st, 3) ? 0LL
						    : (long long)asql_int64(st, 3));
			fn(ctx, asql_text(st, 0), b.data);
			buf_free(&b);
		}
	}
	if (rc != ASQL_DONE)
		*error_r = xasprintf("%s: %s", c->db->drv->name,
				     asql_errmsg(c->db));
	asql_finalize(st);
	auth_conn_put(auth, c);
	return rc == ASQL_DONE ? 0 : -1;
}

int auth_token_hash_add(struct auth *auth, const char *address,
			const char *name, const char *hash_hex, time_t created,
			time_t expires, char **error_r)
{
	uint8_t h[32];
	size_t hl = 0;
	struct auth_user u;
	if (hash_hex == NULL || unhex(hash_hex, strlen(hash_hex), h, sizeof(h),
				      &hl) < 0 || hl != sizeof(h) ||
	    name == NULL || name[0] == '\0' || strlen(name) > 64) {
		*error_r = xasprintf("damaged app password record");
		return -1;
	}
	int r = auth_lookup(auth, address, &u);
	if (r <= 0) {
		*error_r = r < 0 ? xstrdup("accounts.db: lookup failed")
				 : xasprintf("no account %s", address);
		return -1;
	}
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	/* one the account has (the name or the hash) stays as it is */
	struct asql_stmt *st = asql_prepare(c->db, "INSERT INTO tokens (user_id,"
					    " name, hash, created, expires)"
					    " VALUES (?, ?, ?, ?, ?)"
					    " ON CONFLICT DO NOTHING");
	int ret = -1;
	if (st != NULL) {
		asql_bind_int64(st, 1, u.id);
		asql_bind_text(st, 2, name);
		asql_bind_blob(st, 3, h, sizeof(h));
		asql_bind_int64(st, 4, (int64_t)created);
		if (expires > 0)
			asql_bind_int64(st, 5, (int64_t)expires);
		else
			asql_bind_null(st, 5);
		if (asql_step(st) == ASQL_DONE)
			ret = asql_changes(c->db) > 0 ? 1 : 0;
	}
	if (ret < 0)
		*error_r = xasprintf("%s: %s", c->db->drv->name,
				     asql_errmsg(c->db));
	asql_finalize(st);
	auth_conn_put(auth, c);
	return ret;
}
