/*
 * Internals shared by the files of src/auth: the struct auth itself, the
 * pool of SQLite connections, the password-hash schemes, SCRAM key
 * derivation, the verification cache and the failed-login throttle.
 * Nothing outside src/auth (except its unit tests) includes this.
 */
#ifndef LOFT_AUTH_PRIVATE_H
#define LOFT_AUTH_PRIVATE_H

#include "auth.h"

#include "auth-sql.h"

#include <pthread.h>
#include <stdatomic.h>

#define AUTH_ADDRESS_MAX 319
/* The password hash of an account nobody logs into (a shared address). */
#define AUTH_HASH_NOLOGIN "{NOLOGIN}"
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
	STMT_POSTMASTER,
	STMT_COUNT
};

/* A pooled connection to the accounts (auth-sql.h: accounts.db or
 * PostgreSQL) with its prepared lookups. */
struct auth_conn {
	struct asql_conn *db;
	struct asql_stmt *stmts[STMT_COUNT];
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
	char *db_path;              /* data_dir/accounts.db (sqlite) */
	char *pg_conninfo;          /* [auth] postgres: the accounts there */
	struct auth_policy defaults;

	pthread_mutex_t pool_lock;
	struct auth_conn *free_conns;

	uint8_t secret[32];         /* keys the cache and fake SCRAM salts */
	struct auth_map cache;
	struct auth_throttle *throttle;
	struct auth_gate *gate;

	atomic_bool cleartext_remote;   /* set.allow_cleartext_remote, live */
	/* Non-NULL in the mail process: accounts.db is the auth process's;
	 * lookups, credential checks and SCRAM go there (auth-client.c).
	 * The gate and the throttle run here, beside the connections. */
	struct auth_client *client;
};

/* ---- auth-db.c ------------------------------------------------------- */
struct auth_conn *auth_conn_get(struct auth *auth, char **error_r);
void auth_conn_put(struct auth *auth, struct auth_conn *conn);
/* Runs sql (parameter 1: id with bind_id, else text when not NULL) and
 * calls fn(ctx, column 0, column 1) for each row. 0, or -1 with
 * *error_r. */
int auth_db_list(struct auth *auth, const char *sql, bool bind_id,
		 int64_t id, const char *text, auth_list_fn *fn, void *ctx,
		 char **error_r);
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
/* A login name made safe for a log line (printable ASCII, truncated). */
void auth_log_safe(const char *in, char *out, size_t size);
/* The cheap half of a password check, never a hash: 1 answered from the
 * cache (*result_r AUTH_OK or AUTH_DISABLED, user_r filled), 0 the hash
 * is needed (auth_check_password), -1 database trouble (AUTH_TEMPFAIL). */
int auth_check_cached(struct auth *auth, const char *login,
		      const char *password, enum auth_result *result_r,
		      struct auth_user *user_r);
/* The whole check: argon2id (or an imported scheme, or an app password),
 * the dummy hash for an unknown login, the re-hash. Slow on purpose; no
 * throttling. AUTH_OK fills user_r. */
enum auth_result auth_check_password(struct auth *auth, const char *login,
				     const char *password,
				     struct auth_user *user_r);

/* ---- auth-throttle.c ------------------------------------------------- */
#define AUTH_THROTTLE_DEFAULT_MAX_MS 3000
#define AUTH_BAN_DEFAULT_SECS 900
#define AUTH_BAN_AFTER_DEFAULT 10
#define AUTH_THROTTLE_ADDR_MAX 64
#define AUTH_THROTTLE_KEY_MAX (AUTH_THROTTLE_ADDR_MAX + AUTH_ADDRESS_MAX + 4)

struct auth_throttle;

/* What the throttle says about one login attempt, and what it needs to
 * record the outcome. */
struct auth_throttle_ticket {
	char addr[AUTH_THROTTLE_ADDR_MAX];   /* "192.0.2.1", "2001:db8::/64" */
	char account[AUTH_ADDRESS_MAX + 1];  /* canonical or lowercased */
	bool known;                 /* the pair logged in within 30 days */
	bool banned;                /* refuse (never for a known pair) */
	uint32_t delay_ms;          /* before the check */
	uint32_t addr_failures;     /* for the hash queue's priority */
};

/* daemon: loftd (loads throttle.db, a writer thread stores changes each
 * second and applies loftctl's clears); else loftctl (reads and changes
 * throttle.db directly, at the first ban verb). With set->postgres (the
 * accounts in PostgreSQL) the state is shared between nodes instead
 * (auth-throttle-share.c): loftd's mail process sends its changes and
 * reads everyone's through auth_throttle_share's function, once a
 * second; loftctl reads and changes loft_auth.throttle through owner's
 * connections. */
int auth_throttle_open(struct auth *owner, const struct auth_settings *set,
		       const char *data_dir, bool daemon,
		       struct auth_throttle **t_r, char **error_r);
struct auth_throttle_row;
typedef void auth_throttle_row_fn(void *ctx,
				  const struct auth_throttle_row *row);
/* Sends one batch (rows of changes; batch 0 and n 0: only reads) and
 * hands each row of the answer to fn: first the clock row (key "",
 * last_fail_ms the database's time, seq 1 if rows are left past these),
 * then the rows changed past cursor. 0, or -1 (nothing is known about
 * whether the batch was applied). */
typedef int auth_throttle_sync_fn(void *ctx, const char *node, int64_t batch,
				  int64_t cursor,
				  const struct auth_throttle_row *rows,
				  size_t n, auth_throttle_row_fn *fn,
				  void *fn_ctx);
/* The mail process of a node with shared accounts: how its throttle
 * reaches the database (through the auth process). Syncs at once, then
 * each second. */
void auth_throttle_share(struct auth_throttle *t, auth_throttle_sync_fn *fn,
			 void *ctx);
/* The auth process and loftctl (auth-throttle-share.c): applies a node's
 * batch (wire rows; batch 0: none) unless it was applied before, then
 * reads the rows past cursor (the clock row first, as above). 0 or -1. */
int auth_throttle_db_sync(struct auth *auth, const char *node, int64_t batch,
			  const uint8_t *rows, size_t rows_len, int64_t cursor,
			  auth_throttle_row_fn *fn, void *ctx, char **error_r);
/* auth_throttle_sync_fn straight to auth_throttle_db_sync (ctx: the
 * struct auth that holds the connections). */
int auth_throttle_direct_sync(void *ctx, const char *node, int64_t batch,
			      int64_t cursor,
			      const struct auth_throttle_row *rows, size_t n,
			      auth_throttle_row_fn *fn, void *fn_ctx);
/* loftctl ban del without loftd: kind 'a' (address key) or 'u' (account),
 * its row and its pairs'. 0 or -1. */
int auth_throttle_db_clear(struct auth *auth, char kind, const char *name,
			   char **error_r);
/* New settings (SIGHUP): delays, bans. */
void auth_throttle_reload(struct auth_throttle *t,
			  const struct auth_settings *set);
void auth_throttle_close(struct auth_throttle **t);
/* remote: an IP address; account: "" for a token (address only). */
void auth_throttle_admit(struct auth_throttle *t, const char *remote,
			 const char *account, struct auth_throttle_ticket *tk);
void auth_throttle_record(struct auth_throttle *t,
			  const struct auth_throttle_ticket *tk, bool ok);
bool auth_throttle_may_connect(struct auth_throttle *t, const char *remote);
int auth_throttle_list(struct auth_throttle *t, auth_held_fn *fn, void *ctx,
		       char **error_r);
/* 1 something was held back and is cleared, 0 nothing was, -1 error. */
int auth_throttle_clear(struct auth_throttle *t, const char *who,
			char **error_r);
/* The throttle's key of an address: IPv4 as is, IPv6 as its /64
 * ("2001:db8:1:2::/64"), "ADDR/64" or "ADDR/32" taken as given. */
int auth_throttle_addr_key(const char *remote, char *out, size_t size);
/* Wall-clock milliseconds, moved by LOFT_TEST_CLOCK (tests). */
int64_t auth_clock_ms(void);

/* ---- auth-login.c ---------------------------------------------------- */
struct auth_gate;
struct auth_gate *auth_gate_create(struct auth *auth);
/* Stops the hash threads (each finishes the hash it runs) and forgets
 * queued checks; later checks answer AUTH_TEMPFAIL. */
void auth_gate_stop(struct auth_gate *gate);
void auth_gate_destroy(struct auth_gate **gate);

/* ---- auth-sasl.c ----------------------------------------------------- */
/* One step (see auth_login_sasl): may return AUTH_SASL_CHECK, when a
 * credential waits to be checked: PLAIN/LOGIN's password
 * (auth_sasl_login / auth_sasl_password, then auth_sasl_checked) or a
 * SCRAM proof (auth_sasl_check_scram). */
enum auth_sasl_status auth_sasl_step(struct auth_sasl *sasl, const void *in,
				     size_t in_len, char **out_r,
				     size_t *out_len_r, struct auth_user *user_r);
struct auth *auth_sasl_auth(const struct auth_sasl *sasl);
const char *auth_sasl_login(const struct auth_sasl *sasl);
/* The PLAIN or LOGIN password to check; NULL for SCRAM. */
const char *auth_sasl_password(const struct auth_sasl *sasl);
/* PLAIN/LOGIN's check was made: the password is forgotten. */
void auth_sasl_checked(struct auth_sasl *sasl);
bool auth_sasl_checks_proof(const struct auth_sasl *sasl);
/* Checks the SCRAM proof: AUTH_SASL_CONTINUE with server-final (v=...)
 * in *out_r (caller frees), or AUTH_SASL_FAIL. *proof_ok_r: the proof
 * was right (a disabled account fails all the same). Cheap: HMACs. */
enum auth_sasl_status auth_sasl_check_scram(struct auth_sasl *sasl,
					    char **out_r, size_t *out_len_r,
					    bool *proof_ok_r);
enum auth_sasl_status auth_sasl_status_of(enum auth_result r);
/* auth_sasl_step, with any check made at once (tests, fuzzing). */
enum auth_sasl_status auth_sasl_step_now(struct auth_sasl *sasl,
					 const void *in, size_t in_len,
					 char **out_r, size_t *out_len_r,
					 struct auth_user *user_r);

/* ---- auth-token.c ---------------------------------------------------- */
/* 1 if password is a valid token of user_id, 0 if not, -1 on trouble. */
int auth_token_check_user(struct auth *auth, int64_t user_id,
			  const char *password);

/* ---- auth-client.c: the calls of a client struct auth ---------------- */
int auth_client_lookup(struct auth *auth, const char *address,
		       struct auth_user *user_r);
int auth_client_lookup_id(struct auth *auth, int64_t id,
			  struct auth_user *user_r);
int auth_client_lookup_postmaster(struct auth *auth, const char *domain,
				  struct auth_user *user_r);
int auth_client_policy(struct auth *auth, int64_t user_id,
		       struct auth_policy *policy_r);
bool auth_client_domain_exists(struct auth *auth, const char *domain);
int auth_client_user_list(struct auth *auth, auth_list_fn *fn, void *ctx,
			  char **error_r);
int auth_client_send_addresses(struct auth *auth, int64_t user_id,
			       auth_list_fn *fn, void *ctx, char **error_r);
enum auth_result auth_client_check_password(struct auth *auth,
					    const char *login,
					    const char *password,
					    struct auth_user *user_r);
int auth_client_check_cached(struct auth *auth, const char *login,
			     const char *password, enum auth_result *result_r,
			     struct auth_user *user_r);
/* SCRAM-SHA-256 only. -1 if the exchange could not be begun (the auth
 * process is away, or refused); *id_r is then 0 and the first step fails
 * as temporary. */
int auth_client_sasl_begin(struct auth *auth, const char *mech,
			   const char *remote, uint32_t *id_r,
			   uint64_t *gen_r);
/* A step; on AUTH_SASL_CHECK login_r gets the name the exchange parsed. */
enum auth_sasl_status auth_client_sasl_step(struct auth *auth, uint32_t id,
					    uint64_t gen, const void *in,
					    size_t in_len, char **out_r,
					    size_t *out_len_r,
					    struct auth_user *user_r,
					    char *login_r, size_t login_size);
enum auth_sasl_status auth_client_sasl_check(struct auth *auth, uint32_t id,
					     uint64_t gen, char **out_r,
					     size_t *out_len_r,
					     bool *proof_ok_r);
void auth_client_sasl_free(struct auth *auth, uint32_t id, uint64_t gen);
enum auth_result auth_client_token_verify(struct auth *auth,
					  const char *token,
					  const char *remote,
					  struct auth_user *user_r);
int auth_client_session_create(struct auth *auth, int64_t user_id,
			       const struct auth_session_params *params,
			       char id_r[AUTH_SESSION_ID_SIZE],
			       char csrf_r[AUTH_SESSION_ID_SIZE],
			       char **error_r);
enum auth_result auth_client_session_check(struct auth *auth, const char *id,
					   const char *remote,
					   struct auth_user *user_r,
					   char csrf_r[AUTH_SESSION_ID_SIZE]);
int auth_client_session_delete(struct auth *auth, const char *id);
enum auth_passwd_change auth_client_passwd_change(struct auth *auth,
						  const char *address,
						  const char *old_password,
						  const char *new_password,
						  char **error_r);
int auth_client_token_add(struct auth *auth, const char *address,
			  const char *name, time_t expires, char **token_r,
			  char **name_r, char **error_r);
int auth_client_token_list(struct auth *auth, const char *address,
			   auth_token_list_fn *fn, void *ctx, char **error_r);
int auth_client_token_del(struct auth *auth, const char *address,
			  const char *name, char **error_r);
int auth_client_user_groups(struct auth *auth, int64_t user_id,
			    int64_t **ids_r, size_t *count_r);
int auth_client_acl_owners(struct auth *auth, int64_t user_id,
			   int64_t **ids_r, size_t *count_r);
int auth_client_acl_hint(struct auth *auth, int64_t owner_id, int kind,
			 int64_t id);
int auth_client_group_lookup(struct auth *auth, const char *name,
			     const char *domain, int64_t *id_r);
int auth_client_group_name(struct auth *auth, int64_t id, char *out,
			   size_t size);
/* USER_IS_SHARED, USER_SHARED_ADMIN: 1, 0 or -1. */
int auth_client_user_flag(struct auth *auth, uint16_t type, int64_t user_id);
void auth_client_close(struct auth *auth);
/* How long a call waits for a connection (tests shorten it). */
void auth_client_set_connect_wait(struct auth *auth, unsigned ms);

/* ---- auth-sasl.c (for tests) ---------------------------------------- */
/* Replaces the server's random SCRAM nonce part (tests only). */
void auth_sasl_set_test_nonce(struct auth_sasl *sasl, const char *nonce);

#endif
