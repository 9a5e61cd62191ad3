/*
 * Internals shared by the files of src/auth: the struct auth itself, the
 * pool of SQLite connections, the password-hash schemes, SCRAM key
 * derivation, the verification cache and the failed-login throttle.
 * Nothing outside src/auth (except its unit tests) includes this.
 */
#ifndef LOFT_AUTH_PRIVATE_H
#define LOFT_AUTH_PRIVATE_H

#include "auth.h"

#include <pthread.h>
#include <sqlite3.h>

#define AUTH_ADDRESS_MAX 319
#define AUTH_PASSWORD_MAX 1024
#define AUTH_SCRAM_KEY_LEN 32      /* SHA-256 */
#define AUTH_SCRAM_SALT_LEN 16
#define AUTH_CACHE_KEY_LEN 32

/* Prepared statements kept per connection. */
enum auth_stmt {
	STMT_USER_BY_ADDRESS,
	STMT_USER_BY_ID,
	STMT_ALIAS_TARGET,
	STMT_DOMAIN_EXISTS,
	STMT_USER_SETTINGS,
	STMT_REHASH,
	STMT_COUNT
};

struct auth_conn {
	sqlite3 *db;
	sqlite3_stmt *stmts[STMT_COUNT];
	struct auth_conn *next;     /* free list */
};

/* A user's row with what verification needs. */
struct auth_user_row {
	struct auth_user user;
	char hash[512];             /* "{SCHEME}..." as stored */
	bool has_scram;
	uint8_t scram_salt[64];
	size_t scram_salt_len;
	uint32_t scram_iterations;
	uint8_t stored_key[AUTH_SCRAM_KEY_LEN];
	uint8_t server_key[AUTH_SCRAM_KEY_LEN];
};

/* A small map from byte strings to counters, guarded by its own mutex;
 * used for the throttle (address / account -> failures) and the cache
 * (HMAC of user, hash and password -> expiry). */
struct auth_map_entry {
	struct auth_map_entry *next;
	uint64_t time_ms;           /* last failure / expiry */
	uint32_t count;
	size_t key_len;
	char key[];
};

struct auth_map {
	pthread_mutex_t lock;
	struct auth_map_entry **buckets;
	size_t bucket_count;
	size_t count;
	size_t max;                 /* entries beyond this evict old ones */
};

struct auth {
	struct auth_settings set;
	char *data_dir;
	char *db_path;
	struct auth_policy defaults;

	pthread_mutex_t pool_lock;
	struct auth_conn *free_conns;

	uint8_t secret[32];         /* keys the cache and fake SCRAM salts */
	struct auth_map cache;
	struct auth_map throttle;
};

/* ---- auth-db.c ------------------------------------------------------- */
struct auth_conn *auth_conn_get(struct auth *auth, char **error_r);
void auth_conn_put(struct auth *auth, struct auth_conn *conn);
/* 1 found, 0 not, -1 error. By canonical address (no aliases). */
int auth_db_user_row(struct auth *auth, const char *address,
		     struct auth_user_row *row_r);
/* Replaces the hash (and SCRAM keys) only if the stored hash is still
 * old_hash, so a concurrent `loftctl user passwd` wins. */
int auth_db_rehash(struct auth *auth, int64_t user_id, const char *old_hash,
		   const char *password);
/* Lowercases and checks an address; -1 with a message if malformed. */
int auth_address_canon(const char *in, char *out, size_t out_size,
		       char **error_r);

/* ---- auth-hash.c ----------------------------------------------------- */
/* New hash "{ARGON2ID}$argon2id$..." with the configured cost. */
int auth_hash_password(const struct auth_settings *set, const char *password,
		       char *out, size_t out_size);
/* Checks a "{SCHEME}..." import line; -1 with a message if unknown or
 * malformed. */
int auth_hash_validate(const char *hash, char **error_r);
/* 1 match, 0 mismatch, -1 malformed hash. Constant time in the password. */
int auth_hash_verify(const char *hash, const char *password);
/* Whether a hash should be replaced at the next successful login (not
 * argon2id with the configured cost). */
bool auth_hash_needs_rehash(const struct auth_settings *set, const char *hash);
/* The scheme name of a stored hash into out ("ARGON2ID"). */
void auth_hash_scheme(const char *hash, char *out, size_t out_size);
/* SaltedPassword -> StoredKey, ServerKey (RFC 5802 3). */
int auth_scram_keys(const char *password, const uint8_t *salt,
		    size_t salt_len, uint32_t iterations,
		    uint8_t stored_key[AUTH_SCRAM_KEY_LEN],
		    uint8_t server_key[AUTH_SCRAM_KEY_LEN]);
/* A dummy argon2id run with the configured cost, so an unknown user costs
 * as much time as a wrong password. */
void auth_hash_dummy(const struct auth_settings *set, const char *password);
uint32_t auth_scram_iterations(const struct auth_settings *set);


/* ---- auth-password.c ------------------------------------------------- */
/* A login's password prepared with SASLprep as a query string, or a copy
 * of it as given when it cannot be (caller frees). */
char *auth_password_prep(const char *password);
/* The form of a new password to hash: SASLprep (stored string) and, when
 * address is not NULL (an admin sets it), auth_password_check. address
 * NULL (a re-hash at login, password already prepared): never refused.
 * 0 with *prepped_r (caller frees), -1 with *error_r. */
int auth_password_stored(const struct auth_settings *set, const char *address,
			 const char *password, char **prepped_r,
			 char **error_r);

/* ---- auth-verify.c --------------------------------------------------- */
void auth_map_init(struct auth_map *map, size_t max);
void auth_map_deinit(struct auth_map *map);
/* The delay to impose before checking a password for login from remote
 * (milliseconds); login NULL: the address's share only. */
uint32_t auth_throttle_delay(struct auth *auth, const char *login,
			     const char *remote);
void auth_throttle_failed(struct auth *auth, const char *login,
			  const char *remote);
void auth_throttle_succeeded(struct auth *auth, const char *login,
			     const char *remote);
/* A login name made safe for a log line (printable ASCII, truncated). */
void auth_log_safe(const char *in, char *out, size_t size);
void auth_sleep_ms(uint32_t ms);
/* Sleeps what is left of the throttle delay after waited_ms; *delay_r is
 * the whole delay. */
void auth_throttle_wait(struct auth *auth, const char *login,
			const char *remote, uint32_t waited_ms,
			uint32_t *delay_r);
/* Verification of a PLAIN/LOGIN password: throttling (minus what the
 * caller already waited), cache, rehash. */
enum auth_result auth_verify_password(struct auth *auth, const char *login,
				      const char *password, const char *remote,
				      uint32_t waited_ms,
				      struct auth_user *user_r);

/* ---- auth-token.c ---------------------------------------------------- */
/* 1 if password is a valid token of user_id, 0 if not, -1 on trouble. */
int auth_token_check_user(struct auth *auth, int64_t user_id,
			  const char *password);

/* ---- auth-sasl.c (for tests) ---------------------------------------- */
/* Replaces the server's random SCRAM nonce part (tests only). */
void auth_sasl_set_test_nonce(struct auth_sasl *sasl, const char *nonce);

#endif
