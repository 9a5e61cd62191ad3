/*
 * Password verification for PLAIN, LOGIN and IMAP LOGIN / POP3 PASS:
 * throttling of failed logins, a short-lived cache of successful
 * verifications, and the re-hash of imported hashes at the first success.
 *
 * Throttle: failures are counted per remote address (IPv6 per /64) and per
 * login name, loopback included. Before a password is checked the caller
 * waits 100 ms * 2^(failures-3), capped (throttle_max_delay, default 3 s);
 * the first two failures cost nothing, so a typo is free, and 30 wrong
 * passwords in a row cost over a minute. A correct password from a
 * throttled address still works, after the wait. Counts are forgotten 10
 * minutes after the last failure; a success clears the account's count and
 * halves the address's.
 *
 * Cache: HMAC-SHA256(secret, user id, stored hash, password) -> expiry.
 * Keyed by the stored hash, a password change (or re-hash) invalidates
 * every entry of the old password at once; the password itself is never
 * kept. The per-process secret makes the entries useless outside it.
 */
#include "auth-private.h"

#include "buf.h"
#include "log.h"
#include "metrics.h"

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

#define THROTTLE_FREE_FAILURES 2
#define THROTTLE_BASE_MS 100
#define THROTTLE_DEFAULT_MAX_MS 3000
#define THROTTLE_WINDOW_MS (10 * 60 * 1000)
#define MAP_BUCKETS 4096

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void auth_sleep_ms(uint32_t ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
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

/* ---- throttle -------------------------------------------------------- */

/* "a:" + address (IPv6 reduced to its /64: one host owns a whole /64). */
static size_t addr_key(const char *remote, char *out, size_t size)
{
	struct in6_addr a6;
	if (remote == NULL || *remote == '\0')
		remote = "unknown";
	if (inet_pton(AF_INET6, remote, &a6) == 1 &&
	    !IN6_IS_ADDR_V4MAPPED(&a6)) {
		memset(a6.s6_addr + 8, 0, 8);
		char txt[INET6_ADDRSTRLEN];
		inet_ntop(AF_INET6, &a6, txt, sizeof(txt));
		return (size_t)snprintf(out, size, "a:%s/64", txt);
	}
	int n = snprintf(out, size, "a:%s", remote);
	return n < 0 ? 0 : (size_t)n >= size ? size - 1 : (size_t)n;
}

static size_t login_key(const char *login, char *out, size_t size)
{
	size_t n = 0;
	out[n++] = 'u';
	out[n++] = ':';
	for (; *login != '\0' && n + 1 < size; login++)
		out[n++] = (char)tolower((unsigned char)*login);
	out[n] = '\0';
	return n;
}

static uint32_t live_count(const struct auth_map_entry *e, uint64_t now)
{
	if (e == NULL || now - e->time_ms > THROTTLE_WINDOW_MS)
		return 0;
	return e->count;
}

uint32_t auth_throttle_delay(struct auth *auth, const char *login,
			     const char *remote)
{
	if (auth->set.throttle_disabled)
		return 0;
	char ak[128], lk[AUTH_ADDRESS_MAX + 8];
	size_t al = addr_key(remote, ak, sizeof(ak));
	size_t ll = login != NULL ? login_key(login, lk, sizeof(lk)) : 0;
	uint64_t now = now_ms();
	pthread_mutex_lock(&auth->throttle.lock);
	uint32_t a = live_count(map_find(&auth->throttle, ak, al), now);
	uint32_t u = login != NULL
			     ? live_count(map_find(&auth->throttle, lk, ll), now)
			     : 0;
	pthread_mutex_unlock(&auth->throttle.lock);
	uint32_t f = a > u ? a : u;
	if (f <= THROTTLE_FREE_FAILURES)
		return 0;
	uint32_t max = auth->set.throttle_max_delay_ms
			       ? auth->set.throttle_max_delay_ms
			       : THROTTLE_DEFAULT_MAX_MS;
	uint32_t shift = f - THROTTLE_FREE_FAILURES - 1;
	uint64_t d = shift >= 20 ? max : (uint64_t)THROTTLE_BASE_MS << shift;
	return d > max ? max : (uint32_t)d;
}

static void bump(struct auth_map *map, const char *key, size_t len,
		 uint64_t now)
{
	struct auth_map_entry *e =
		map_get(map, key, len, now - THROTTLE_WINDOW_MS);
	if (now - e->time_ms > THROTTLE_WINDOW_MS)
		e->count = 0;
	if (e->count < UINT32_MAX)
		e->count++;
	e->time_ms = now;
}

void auth_throttle_failed(struct auth *auth, const char *login,
			  const char *remote)
{
	char ak[128], lk[AUTH_ADDRESS_MAX + 8];
	size_t al = addr_key(remote, ak, sizeof(ak));
	/* login NULL (a bad Bearer token): the address's share only. */
	size_t ll = login != NULL ? login_key(login, lk, sizeof(lk)) : 0;
	uint64_t now = now_ms();
	pthread_mutex_lock(&auth->throttle.lock);
	bump(&auth->throttle, ak, al, now);
	if (login != NULL)
		bump(&auth->throttle, lk, ll, now);
	pthread_mutex_unlock(&auth->throttle.lock);
}

void auth_throttle_succeeded(struct auth *auth, const char *login,
			     const char *remote)
{
	char ak[128], lk[AUTH_ADDRESS_MAX + 8];
	size_t al = addr_key(remote, ak, sizeof(ak));
	size_t ll = login_key(login, lk, sizeof(lk));
	pthread_mutex_lock(&auth->throttle.lock);
	struct auth_map_entry *e = map_find(&auth->throttle, lk, ll);
	if (e != NULL)
		e->count = 0;
	e = map_find(&auth->throttle, ak, al);
	if (e != NULL)
		e->count /= 2;
	pthread_mutex_unlock(&auth->throttle.lock);
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

void auth_throttle_wait(struct auth *auth, const char *login,
			const char *remote, uint32_t waited_ms,
			uint32_t *delay_r)
{
	uint32_t delay = auth_throttle_delay(auth, login, remote);
	if (delay > waited_ms)
		auth_sleep_ms(delay - waited_ms);
	*delay_r = delay;
}

enum auth_result auth_verify_password(struct auth *auth, const char *login,
				      const char *password, const char *remote,
				      uint32_t waited_ms,
				      struct auth_user *user_r)
{
	uint32_t delay;
	auth_throttle_wait(auth, login, remote, waited_ms, &delay);

	struct auth_user_row row;
	int found = 0;
	size_t pl = strlen(password);
	if (pl > 0 && pl <= AUTH_PASSWORD_MAX)
		found = auth_db_user_row(auth, login, &row);
	if (found < 0)
		return AUTH_TEMPFAIL;
	enum auth_result res;
	if (found == 0) {
		/* As slow as a wrong password, so timing does not tell
		 * which accounts exist. */
		auth_hash_dummy(&auth->set, password);
		res = AUTH_FAILED;
	} else if (auth_token_check_user(auth, row.user.id, password) == 1) {
		res = AUTH_OK;    /* an app password (loftctl token add) */
	} else {
		char *prepped = auth_password_prep(password);
		res = check_password(auth, &row, prepped, password);
		OPENSSL_cleanse(prepped, strlen(prepped));
		free(prepped);
	}
	if (res == AUTH_OK && row.user.disabled)
		res = AUTH_DISABLED;
	if (res == AUTH_FAILED) {
		char safe[128];
		auth_log_safe(login, safe, sizeof(safe));
		auth_throttle_failed(auth, login, remote);
		metrics_count("loft_auth_failures_total", "Failed logins "
			      "(wrong user, password or token).", NULL);
		log_info("auth", NULL, "failed login user=%s remote=%s%s", safe,
			 remote ? remote : "-", delay ? " (throttled)" : "");
	} else if (res == AUTH_OK) {
		auth_throttle_succeeded(auth, login, remote);
		*user_r = row.user;
	}
	if (found > 0)
		OPENSSL_cleanse(&row, sizeof(row));
	return res;
}

enum auth_result auth_verify(struct auth *auth, const char *login,
			     const char *password, const char *remote,
			     struct auth_user *user_r)
{
	return auth_verify_password(auth, login, password, remote, 0, user_r);
}

enum auth_result auth_verify_waited(struct auth *auth, const char *login,
				    const char *password, const char *remote,
				    uint32_t waited_ms,
				    struct auth_user *user_r)
{
	return auth_verify_password(auth, login, password, remote, waited_ms,
				    user_r);
}

uint32_t auth_throttle_delay_ms(struct auth *auth, const char *login,
				const char *remote)
{
	return auth_throttle_delay(auth, login, remote);
}

bool auth_cleartext_allowed(struct auth *auth, bool tls, bool local)
{
	return tls || local || auth->set.allow_cleartext_remote;
}

const char *auth_mechanisms(struct auth *auth, bool cleartext_ok)
{
	(void)auth;
	return cleartext_ok ? "PLAIN LOGIN SCRAM-SHA-256" : "SCRAM-SHA-256";
}
