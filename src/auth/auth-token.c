/*
 * App passwords (bearer tokens) and the webmail's sign-in sessions, both
 * in accounts.db and both kept only as SHA-256 hashes: a token or a
 * session id is 32 random bytes, so a fast hash is enough, and a stolen
 * database gives no working credential.
 *
 * A token ("loft_" + 43 base64url characters) is shown once by
 * `loftctl token add`; it works as an HTTP Bearer token (RFC 6750) and,
 * per device, as the password of IMAP, POP3 (and later SMTP) logins.
 * A session ends when it is signed out, when its idle time runs out, or
 * at its absolute end ("remember me").
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth-private.h"
#include "buf.h"
#include "log.h"

#define TOKEN_PREFIX "loft_"
#define TOKEN_RANDOM 32
#define TOKEN_CHARS 43                 /* base64url of 32 bytes */
#define SESSION_TOUCH_SECS 60          /* last_seen written at most this often */

static const char b64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* n random bytes as unpadded base64url into out (4n/3 + 1 bytes). */
static int random_b64url(size_t n, char *out)
{
	unsigned char raw[64];
	if (n > sizeof(raw) || RAND_bytes(raw, (int)n) != 1)
		return -1;
	size_t o = 0;
	unsigned v = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		v = (v << 8) | raw[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = b64url[(v >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = b64url[(v << (6 - bits)) & 63];
	out[o] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

static void sha256(const char *s, unsigned char out[32])
{
	unsigned int len = 32;
	EVP_Digest(s, strlen(s), out, &len, EVP_sha256(), NULL);
}

bool auth_token_syntax(const char *s)
{
	size_t pl = strlen(TOKEN_PREFIX);
	if (strncmp(s, TOKEN_PREFIX, pl) != 0 ||
	    strlen(s) != pl + TOKEN_CHARS)
		return false;
	for (const char *p = s + pl; *p; p++)
		if (strchr(b64url, *p) == NULL)
			return false;
	return true;
}

/* ---- SQL helpers ---------------------------------------------------- */

static struct asql_stmt *prep(struct auth_conn *c, const char *sql)
{
	struct asql_stmt *st = NULL;
	if ((st = asql_prepare(c->db, sql)) == NULL) {
		log_error("auth", NULL, "%s: %s", c->db->drv->name,
			  asql_errmsg(c->db));
		return NULL;
	}
	return st;
}

static int user_id_of(struct auth *auth, const char *address, int64_t *id_r,
		      char **error_r)
{
	struct auth_user u;
	int rc = auth_lookup(auth, address, &u);
	if (rc < 0) {
		*error_r = xstrdup("accounts.db cannot be read");
		return -1;
	}
	if (rc == 0) {
		*error_r = xasprintf("no user %s", address);
		return -1;
	}
	*id_r = u.id;
	return 0;
}

/* ---- tokens ---------------------------------------------------------- */

static bool token_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 64)
		return false;
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
			return false;
	return true;
}

int auth_token_add(struct auth *auth, const char *address, const char *name,
		   time_t expires, char **token_r, char **name_r,
		   char **error_r)
{
	if (auth->client != NULL)
		return auth_client_token_add(auth, address, name, expires,
					     token_r, name_r, error_r);
	int64_t uid;
	*token_r = NULL;
	if (user_id_of(auth, address, &uid, error_r) < 0)
		return -1;
	if (name != NULL && !token_name_valid(name)) {
		*error_r = xasprintf("token name '%s': 1 to 64 printable "
				     "characters without spaces", name);
		return -1;
	}
	char secret[sizeof(TOKEN_PREFIX) + TOKEN_CHARS + 1];
	memcpy(secret, TOKEN_PREFIX, sizeof(TOKEN_PREFIX));
	if (random_b64url(TOKEN_RANDOM, secret + strlen(TOKEN_PREFIX)) < 0) {
		*error_r = xstrdup("no randomness for a token");
		return -1;
	}
	unsigned char h[32];
	sha256(secret, h);
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	int rc = -1;
	char *chosen = name != NULL ? xstrdup(name) : NULL;
	if (chosen == NULL) {
		/* device-N, the first N not taken */
		struct asql_stmt *st = prep(c, "SELECT count(*) FROM tokens WHERE "
					"user_id = ?");
		int n = 0;
		if (st != NULL) {
			asql_bind_int64(st, 1, uid);
			if (asql_step(st) == ASQL_ROW)
				n = (int)asql_int64(st, 0);
			asql_finalize(st);
		}
		chosen = xasprintf("device-%d", n + 1);
	}
	for (int attempt = 0; attempt < 100; attempt++) {
		struct asql_stmt *st = prep(c, "INSERT INTO tokens (user_id, name, "
					"hash, created, expires) VALUES "
					"(?, ?, ?, ?, ?)");
		if (st == NULL)
			break;
		asql_bind_int64(st, 1, uid);
		asql_bind_text(st, 2, chosen);
		asql_bind_blob(st, 3, h, sizeof(h));
		asql_bind_int64(st, 4, (int64_t)time(NULL));
		if (expires > 0)
			asql_bind_int64(st, 5, (int64_t)expires);
		else
			asql_bind_null(st, 5);
		int s = asql_step(st);
		asql_finalize(st);
		if (s == ASQL_DONE) {
			rc = 0;
			break;
		}
		if (s != ASQL_CONSTRAINT || name != NULL) {
			*error_r = s == ASQL_CONSTRAINT ?
				xasprintf("%s already has a token named '%s'",
					  address, chosen) :
				xasprintf("%s: %s", c->db->drv->name,
					  asql_errmsg(c->db));
			break;
		}
		free(chosen);
		chosen = xasprintf("device-%d", attempt + 2);
	}
	auth_conn_put(auth, c);
	if (rc == 0) {
		*token_r = xstrdup(secret);
		if (name_r != NULL)
			*name_r = chosen;
		else
			free(chosen);
	} else {
		free(chosen);
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	return rc;
}

int auth_token_list(struct auth *auth, const char *address,
		    auth_token_list_fn *fn, void *ctx, char **error_r)
{
	if (auth->client != NULL)
		return auth_client_token_list(auth, address, fn, ctx, error_r);
	int64_t uid;
	if (user_id_of(auth, address, &uid, error_r) < 0)
		return -1;
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	struct asql_stmt *st = prep(c, "SELECT name, created, expires, last_used "
				"FROM tokens WHERE user_id = ? ORDER BY name");
	int rc = -1;
	if (st != NULL) {
		asql_bind_int64(st, 1, uid);
		int s;
		while ((s = asql_step(st)) == ASQL_ROW) {
			struct auth_token_info info;
			memset(&info, 0, sizeof(info));
			snprintf(info.name, sizeof(info.name), "%s",
				 asql_text(st, 0));
			info.created = (time_t)asql_int64(st, 1);
			info.expires = (time_t)asql_int64(st, 2);
			info.last_used = (time_t)asql_int64(st, 3);
			fn(ctx, &info);
		}
		rc = s == ASQL_DONE ? 0 : -1;
		asql_finalize(st);
	}
	if (rc < 0)
		*error_r = xasprintf("%s: %s", c->db->drv->name, asql_errmsg(c->db));
	auth_conn_put(auth, c);
	return rc;
}

int auth_token_del(struct auth *auth, const char *address, const char *name,
		   char **error_r)
{
	if (auth->client != NULL)
		return auth_client_token_del(auth, address, name, error_r);
	int64_t uid;
	if (user_id_of(auth, address, &uid, error_r) < 0)
		return -1;
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	struct asql_stmt *st = prep(c, "DELETE FROM tokens WHERE user_id = ? AND "
				"name = ?");
	int rc = -1;
	if (st != NULL) {
		asql_bind_int64(st, 1, uid);
		asql_bind_text(st, 2, name);
		if (asql_step(st) == ASQL_DONE)
			rc = asql_changes(c->db) > 0 ? 0 : 1;
		asql_finalize(st);
	}
	if (rc < 0)
		*error_r = xasprintf("%s: %s", c->db->drv->name, asql_errmsg(c->db));
	else if (rc == 1)
		*error_r = xasprintf("%s has no token named '%s'", address, name);
	auth_conn_put(auth, c);
	return rc == 0 ? 0 : -1;
}

/* 1 valid (user_id_r set), 0 unknown or expired, -1 database trouble.
 * want_user: only a token of that user counts (0: any). */
static int token_lookup(struct auth *auth, const char *token,
			int64_t want_user, int64_t *user_id_r)
{
	if (!auth_token_syntax(token))
		return 0;
	unsigned char h[32];
	sha256(token, h);
	struct auth_conn *c = auth_conn_get(auth, NULL);
	if (c == NULL)
		return -1;
	int rc = -1;
	time_t now = time(NULL);
	struct asql_stmt *st = prep(c, "SELECT id, user_id, expires, last_used "
				"FROM tokens WHERE hash = ?");
	if (st != NULL) {
		asql_bind_blob(st, 1, h, sizeof(h));
		int s = asql_step(st);
		rc = 0;
		if (s == ASQL_ROW) {
			int64_t id = asql_int64(st, 0);
			int64_t uid = asql_int64(st, 1);
			bool expired = !asql_null(st, 2) &&
				asql_int64(st, 2) <= (int64_t)now;
			int64_t last = asql_int64(st, 3);
			if (!expired && (want_user == 0 || want_user == uid)) {
				*user_id_r = uid;
				rc = 1;
			}
			asql_finalize(st);
			st = NULL;
			/* "last used" for `token list`, to the hour. */
			if (rc == 1 && now - last >= 3600) {
				struct asql_stmt *up = prep(c, "UPDATE tokens SET "
							"last_used = ? WHERE id = ?");
				if (up != NULL) {
					asql_bind_int64(up, 1, (int64_t)now);
					asql_bind_int64(up, 2, id);
					(void)asql_step(up);
					asql_finalize(up);
				}
			}
		} else if (s != ASQL_DONE) {
			rc = -1;
		}
		asql_finalize(st);
	}
	auth_conn_put(auth, c);
	return rc;
}

int auth_token_check_user(struct auth *auth, int64_t user_id,
			  const char *password)
{
	int64_t uid;
	if (!auth_token_syntax(password))
		return 0;
	return token_lookup(auth, password, user_id, &uid);
}

enum auth_result auth_token_verify(struct auth *auth, const char *token,
				   const char *remote, struct auth_user *user_r)
{
	if (auth->client != NULL)
		return auth_client_token_verify(auth, token, remote, user_r);
	int64_t uid = 0;
	int rc = token_lookup(auth, token, 0, &uid);
	if (rc < 0)
		return AUTH_TEMPFAIL;
	struct auth_user u;
	if (rc == 1) {
		int found = auth_lookup_id(auth, uid, &u);
		if (found < 0)
			return AUTH_TEMPFAIL;
		rc = found;
	}
	if (rc == 0) {
		log_info("auth", NULL, "unknown or expired token remote=%s",
			 remote ? remote : "-");
		return AUTH_FAILED;
	}
	if (u.disabled)
		return AUTH_DISABLED;
	*user_r = u;
	return AUTH_OK;
}

/* ---- web sessions ---------------------------------------------------- */

int auth_session_create(struct auth *auth, int64_t user_id,
			const struct auth_session_params *params,
			char id_r[AUTH_SESSION_ID_SIZE],
			char csrf_r[AUTH_SESSION_ID_SIZE], char **error_r)
{
	if (auth->client != NULL)
		return auth_client_session_create(auth, user_id, params, id_r,
						  csrf_r, error_r);
	if (random_b64url(32, id_r) < 0 || random_b64url(24, csrf_r) < 0) {
		*error_r = xstrdup("no randomness for a session");
		return -1;
	}
	unsigned char h[32];
	sha256(id_r, h);
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	time_t now = time(NULL);
	int rc = -1;
	/* Expired sessions are swept whenever someone signs in. */
	struct asql_stmt *st = prep(c, "DELETE FROM web_sessions WHERE expires <= ? "
				"OR (idle > 0 AND last_seen + idle <= ?)");
	if (st != NULL) {
		asql_bind_int64(st, 1, (int64_t)now);
		asql_bind_int64(st, 2, (int64_t)now);
		(void)asql_step(st);
		asql_finalize(st);
	}
	st = prep(c, "INSERT INTO web_sessions (hash, user_id, csrf, created, "
		  "last_seen, expires, idle, address) VALUES "
		  "(?, ?, ?, ?, ?, ?, ?, ?)");
	if (st != NULL) {
		asql_bind_blob(st, 1, h, sizeof(h));
		asql_bind_int64(st, 2, user_id);
		asql_bind_text(st, 3, csrf_r);
		asql_bind_int64(st, 4, (int64_t)now);
		asql_bind_int64(st, 5, (int64_t)now);
		asql_bind_int64(st, 6, (int64_t)now +
				   (int64_t)params->lifetime_secs);
		asql_bind_int64(st, 7, (int64_t)params->idle_secs);
		if (params->bind_address != NULL)
			asql_bind_text(st, 8, params->bind_address);
		else
			asql_bind_null(st, 8);
		if (asql_step(st) == ASQL_DONE)
			rc = 0;
		asql_finalize(st);
	}
	if (rc < 0)
		*error_r = xasprintf("%s: %s", c->db->drv->name, asql_errmsg(c->db));
	auth_conn_put(auth, c);
	return rc;
}

enum auth_result auth_session_check(struct auth *auth, const char *id,
				    const char *remote,
				    struct auth_user *user_r,
				    char csrf_r[AUTH_SESSION_ID_SIZE])
{
	if (auth->client != NULL)
		return auth_client_session_check(auth, id, remote, user_r,
						 csrf_r);
	size_t n = strlen(id);
	if (n < 16 || n >= AUTH_SESSION_ID_SIZE)
		return AUTH_FAILED;
	for (const char *p = id; *p; p++)
		if (strchr(b64url, *p) == NULL)
			return AUTH_FAILED;
	unsigned char h[32];
	sha256(id, h);
	struct auth_conn *c = auth_conn_get(auth, NULL);
	if (c == NULL)
		return AUTH_TEMPFAIL;
	time_t now = time(NULL);
	enum auth_result res = AUTH_TEMPFAIL;
	int64_t uid = 0, last = 0;
	struct asql_stmt *st = prep(c, "SELECT user_id, csrf, last_seen, expires, "
				"idle, address FROM web_sessions WHERE hash = ?");
	if (st != NULL) {
		asql_bind_blob(st, 1, h, sizeof(h));
		int s = asql_step(st);
		res = s == ASQL_DONE ? AUTH_FAILED : AUTH_TEMPFAIL;
		if (s == ASQL_ROW) {
			uid = asql_int64(st, 0);
			const char *csrf = asql_text(st, 1);
			last = asql_int64(st, 2);
			int64_t expires = asql_int64(st, 3);
			int64_t idle = asql_int64(st, 4);
			const char *addr = asql_text(st, 5);
			res = AUTH_OK;
			if (expires <= (int64_t)now ||
			    (idle > 0 && last + idle <= (int64_t)now))
				res = AUTH_FAILED;
			/* A stolen cookie replayed from elsewhere. */
			if (addr != NULL && (remote == NULL ||
					     strcmp(addr, remote) != 0))
				res = AUTH_FAILED;
			if (csrf_r != NULL)
				snprintf(csrf_r, AUTH_SESSION_ID_SIZE, "%s",
					 csrf ? csrf : "");
		}
		asql_finalize(st);
	}
	if (res == AUTH_OK && now - last >= SESSION_TOUCH_SECS) {
		st = prep(c, "UPDATE web_sessions SET last_seen = ? WHERE hash = ?");
		if (st != NULL) {
			asql_bind_int64(st, 1, (int64_t)now);
			asql_bind_blob(st, 2, h, sizeof(h));
			(void)asql_step(st);
			asql_finalize(st);
		}
	}
	auth_conn_put(auth, c);
	if (res != AUTH_OK)
		return res;
	int found = auth_lookup_id(auth, uid, user_r);
	if (found < 0)
		return AUTH_TEMPFAIL;
	if (found == 0)
		return AUTH_FAILED;
	return user_r->disabled ? AUTH_DISABLED : AUTH_OK;
}

int auth_sessions_end(struct auth *auth, int64_t user_id)
{
	if (auth->client != NULL)
		return -1;
	struct auth_conn *c = auth_conn_get(auth, NULL);
	if (c == NULL)
		return -1;
	int rc = -1;
	struct asql_stmt *st = prep(c, "DELETE FROM web_sessions WHERE"
				       " user_id = ?");
	if (st != NULL) {
		asql_bind_int64(st, 1, user_id);
		rc = asql_step(st) == ASQL_DONE ? asql_changes(c->db) : -1;
		asql_finalize(st);
	}
	auth_conn_put(auth, c);
	return rc;
}

int auth_session_delete(struct auth *auth, const char *id)
{
	if (auth->client != NULL)
		return auth_client_session_delete(auth, id);
	unsigned char h[32];
	sha256(id, h);
	struct auth_conn *c = auth_conn_get(auth, NULL);
	if (c == NULL)
		return -1;
	int rc = -1;
	struct asql_stmt *st = prep(c, "DELETE FROM web_sessions WHERE hash = ?");
	if (st != NULL) {
		asql_bind_blob(st, 1, h, sizeof(h));
		rc = asql_step(st) == ASQL_DONE ? 0 : -1;
		asql_finalize(st);
	}
	auth_conn_put(auth, c);
	return rc;
}
