/*
 * Password verification for PLAIN, LOGIN and IMAP LOGIN / POP3 PASS /
 * HTTP Basic: a short-lived cache of successful verifications, the
 * argon2id check (also of app passwords), and the re-hash of imported
 * hashes at the first success. No throttling here: the login gate
 * (auth-login.c) decides when a check runs; auth_check_cached is its cheap
 * half (never hashes) and auth_check_password the slow one.
 *
 * Cache: HMAC-SHA256(secret, user id, stored hash, password) -> expiry.
 * Keyed by the stored hash, a password change (or re-hash) invalidates
 * every entry of the old password at once; the password itself is never
 * kept. The per-process secret makes the entries useless outside it.
 */
#include "auth-private.h"

#include "buf.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAP_BUCKETS 4096

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the map --------------------------------------------------------- */

void auth_map_init(struct auth_map *map, size_t max)
{
	pthread_mutex_init(&map->lock, NULL);
	map->bucket_count = MAP_BUCKETS;
	map->buckets = xcalloc(map->bucket_count, sizeof(*map->buckets));
	map->count = 0;
	map->max = max;
}

void auth_map_deinit(struct auth_map *map)
{
	if (map->buckets == NULL)
		return;
	for (size_t i = 0; i < map->bucket_count; i++) {
		struct auth_map_entry *e = map->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(map->buckets);
	map->buckets = NULL;
	pthread_mutex_destroy(&map->lock);
}

static size_t map_hash(const void *key, size_t len)
{
	const uint8_t *p = key;
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return (size_t)h;
}

/* Lock held. */
static struct auth_map_entry **map_slot(struct auth_map *map, const void *key,
					size_t len)
{
	struct auth_map_entry **pp =
		&map->buckets[map_hash(key, len) % map->bucket_count];
	for (; *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->key_len == len && memcmp((*pp)->key, key, len) == 0)
			break;
	}
	return pp;
}

/* Lock held. Drops entries whose time is before cutoff; if the map is
 * still full, drops everything (a flood of distinct keys must not grow
 * memory without bound). */
static void map_sweep(struct auth_map *map, uint64_t cutoff)
{
	for (int pass = 0; pass < 2 && map->count >= map->max; pass++) {
		for (size_t i = 0; i < map->bucket_count; i++) {
			struct auth_map_entry **pp = &map->buckets[i];
			while (*pp != NULL) {
				struct auth_map_entry *e = *pp;
				if (pass == 1 || e->time_ms < cutoff) {
					*pp = e->next;
					free(e);
					map->count--;
				} else {
					pp = &e->next;
				}
			}
		}
	}
}

/* Lock held. Finds or creates the entry for key. */
static struct auth_map_entry *map_get(struct auth_map *map, const void *key,
				      size_t len, uint64_t cutoff)
{
	struct auth_map_entry **pp = map_slot(map, key, len);
	if (*pp != NULL)
		return *pp;
	if (map->count >= map->max) {
		map_sweep(map, cutoff);
		pp = map_slot(map, key, len);
	}
	struct auth_map_entry *e = xcalloc(1, sizeof(*e) + len);
	e->key_len = len;
	memcpy(e->key, key, len);
	*pp = e;
	map->count++;
	return e;
}

static struct auth_map_entry *map_find(struct auth_map *map, const void *key,
				       size_t len)
{
	return *map_slot(map, key, len);
}

/* ---- cache ----------------------------------------------------------- */

static void cache_key(struct auth *auth, const struct auth_user_row *row,
		      const char *password, uint8_t out[AUTH_CACHE_KEY_LEN])
{
	uint8_t id[8];
	for (int i = 0; i < 8; i++)
		id[i] = (uint8_t)((uint64_t)row->user.id >> (8 * i));
	/* One HMAC over id || hash || NUL || password. */
	size_t hl = strlen(row->hash), pl = strlen(password);
	size_t n = sizeof(id) + hl + 1 + pl;
	uint8_t *msg = xmalloc(n);
	memcpy(msg, id, sizeof(id));
	memcpy(msg + sizeof(id), row->hash, hl + 1);
	memcpy(msg + sizeof(id) + hl + 1, password, pl);
	unsigned len = AUTH_CACHE_KEY_LEN;
	HMAC(EVP_sha256(), auth->secret, sizeof(auth->secret), msg, n, out,
	     &len);
	OPENSSL_cleanse(msg, n);
	free(msg);
}

static bool cache_hit(struct auth *auth, const uint8_t key[AUTH_CACHE_KEY_LEN])
{
	if (auth->set.cache_disabled)
		return false;
	uint64_t now = now_ms();
	pthread_mutex_lock(&auth->cache.lock);
	struct auth_map_entry *e = map_find(&auth->cache, key,
					    AUTH_CACHE_KEY_LEN);
	bool hit = e != NULL && e->time_ms > now;
	pthread_mutex_unlock(&auth->cache.lock);
	return hit;
}

static void cache_put(struct auth *auth, const uint8_t key[AUTH_CACHE_KEY_LEN])
{
	if (auth->set.cache_disabled)
		return;
	uint64_t now = now_ms();
	pthread_mutex_lock(&auth->cache.lock);
	struct auth_map_entry *e = map_get(&auth->cache, key,
					   AUTH_CACHE_KEY_LEN, now);
	e->time_ms = now + (uint64_t)auth->set.cache_ttl_secs * 1000;
	pthread_mutex_unlock(&auth->cache.lock);
}

/* ---- verification ---------------------------------------------------- */

void auth_log_safe(const char *in, char *out, size_t size)
{
	size_t n = 0;
	for (; *in != '\0' && n + 4 < size; in++) {
		unsigned char c = (unsigned char)*in;
		out[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (*in != '\0')
		out[n++] = '.', out[n++] = '.', out[n++] = '.';
	out[n] = '\0';
}

/* password is the SASLprep form; raw the bytes the client sent. */
static enum auth_result check_password(struct auth *auth,
				       struct auth_user_row *row,
				       const char *password, const char *raw)
{
	uint8_t key[AUTH_CACHE_KEY_LEN];
	cache_key(auth, row, password, key);
	if (cache_hit(auth, key))
		return AUTH_OK;
	int rc = auth_hash_verify(row->hash, password);
	/* A hash of the unprepared bytes: made before Loft prepared
	 * passwords, or imported from a server that never did. */
	bool unprepared = false;
	if (rc == 0 && strcmp(password, raw) != 0) {
		rc = auth_hash_verify(row->hash, raw);
		unprepared = rc == 1;
	}
	if (rc < 0) {
		log_error("auth", NULL, "user %s: stored hash is malformed",
			  row->user.address);
		return AUTH_FAILED;
	}
	if (rc == 0)
		return AUTH_FAILED;
	/* Imported hashes (and argon2id of another cost, or without SCRAM
	 * keys, or of an unprepared password) become Loft's own at the
	 * first successful login. */
	if (auth_hash_needs_rehash(&auth->set, row->hash) || !row->has_scram ||
	    unprepared) {
		if (auth_db_rehash(auth, row->user.id, row->hash, password) == 0) {
			struct auth_user_row fresh;
			if (auth_db_user_row(auth, row->user.address, &fresh) == 1) {
				cache_key(auth, &fresh, password, key);
				OPENSSL_cleanse(&fresh, sizeof(fresh));
			}
		}
	}
	cache_put(auth, key);
	return AUTH_OK;
}

/* The user row for a login (no alias, as stored); 1, 0 or -1. */
static int login_row(struct auth *auth, const char *login,
		     const char *password, struct auth_user_row *row_r)
{
	size_t pl = strlen(password);
	if (pl == 0 || pl > AUTH_PASSWORD_MAX)
		return 0;
	return auth_db_user_row(auth, login, row_r);
}

int auth_check_cached(struct auth *auth, const char *login,
		      const char *password, enum auth_result *result_r,
		      struct auth_user *user_r)
{
	if (auth->client != NULL)
		return auth_client_check_cached(auth, login, password, result_r,
						user_r);
	struct auth_user_row row;
	int found = login_row(auth, login, password, &row);
	if (found < 0) {
		*result_r = AUTH_TEMPFAIL;
		return -1;
	}
	if (found == 0)
		return 0;      /* the dummy hash, in the slow half */
	char *prepped = auth_password_prep(password);
	uint8_t key[AUTH_CACHE_KEY_LEN];
	cache_key(auth, &row, prepped, key);
	OPENSSL_cleanse(prepped, strlen(prepped));
	free(prepped);
	bool hit = cache_hit(auth, key);
	if (hit) {
		*result_r = row.user.disabled ? AUTH_DISABLED : AUTH_OK;
		*user_r = row.user;
	}
	OPENSSL_cleanse(&row, sizeof(row));
	return hit ? 1 : 0;
}

/* The slow check; tokens: whether an app password counts. */
static enum auth_result check_login(struct auth *auth, const char *login,
				    const char *password, bool tokens,
				    struct auth_user *user_r)
{
	struct auth_user_row row;
	int found = login_row(auth, login, password, &row);
	if (found < 0)
		return AUTH_TEMPFAIL;
	enum auth_result res;
	if (found == 0) {
		/* As slow as a wrong password, so timing does not tell
		 * which accounts exist. */
		auth_hash_dummy(&auth->set, password);
		res = AUTH_FAILED;
	} else if (tokens &&
		   auth_token_check_user(auth, row.user.id, password) == 1) {
		res = AUTH_OK;    /* an app password (loftctl token add) */
	} else {
		char *prepped = auth_password_prep(password);
		res = check_password(auth, &row, prepped, password);
		OPENSSL_cleanse(prepped, strlen(prepped));
		free(prepped);
	}
	if (res == AUTH_OK && row.user.disabled)
		res = AUTH_DISABLED;
	if (res == AUTH_OK)
		*user_r = row.user;
	if (found > 0)
		OPENSSL_cleanse(&row, sizeof(row));
	return res;
}

enum auth_result auth_check_password(struct auth *auth, const char *login,
				     const char *password,
				     struct auth_user *user_r)
{
	if (auth->client != NULL)
		return auth_client_check_password(auth, login, password,
						  user_r);
	return check_login(auth, login, password, true, user_r);
}

enum auth_passwd_change auth_user_passwd_change(struct auth *auth,
						const char *address,
						const char *old_password,
						const char *new_password,
						char **error_r)
{
	*error_r = NULL;
	if (auth->client != NULL)
		return auth_client_passwd_change(auth, address, old_password,
						 new_password, error_r);
	struct auth_user u;
	enum auth_result r = check_login(auth, address, old_password, false,
					 &u);
	if (r == AUTH_TEMPFAIL)
		return AUTH_PASSWD_TEMPFAIL;
	if (r != AUTH_OK) {
		char safe[128];
		auth_log_safe(address, safe, sizeof(safe));
		log_info("auth", NULL, "password change refused: wrong current "
			 "password user=%s", safe);
		return AUTH_PASSWD_WRONG;
	}
	/* The account the old password opened, by its stored address (an
	 * alias as the login changes the account behind it). */
	if (auth_user_passwd(auth, u.address, new_password, false,
			     error_r) < 0)
		return AUTH_PASSWD_REFUSED;
	log_info("auth", NULL, "password changed user=%s", u.address);
	return AUTH_PASSWD_CHANGED;
}

enum auth_result auth_verify(struct auth *auth, const char *login,
			     const char *password, const char *remote,
			     struct auth_user *user_r)
{
	enum auth_result r = auth_check_password(auth, login, password, user_r);
	if (r == AUTH_FAILED) {
		char safe[128];
		auth_log_safe(login, safe, sizeof(safe));
		log_info("auth", NULL, "failed login user=%s remote=%s", safe,
			 remote ? remote : "-");
	}
	return r;
}

bool auth_cleartext_allowed(struct auth *auth, bool tls, bool local)
{
	return tls || local || atomic_load(&auth->cleartext_remote);
}

const char *auth_mechanisms(struct auth *auth, bool cleartext_ok)
{
	(void)auth;
	return cleartext_ok ? "PLAIN LOGIN SCRAM-SHA-256" : "SCRAM-SHA-256";
}
